/* lib/client/api.c — the public C API of <vfiipc/notify.h>, client part: type conversion only,
 * the rules live in client.c. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "core/log.h"
#include "json/json-text.h"
#include "vfiipc/notify.h"

#include "config.h"

static void invoke_c(client_fn cb, void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        ((vfiipc_notify_cb)cb)(data, from, to, id, param, flags);
}

static void observe_c(client_fn cb, void *data, const char *from, const char *to, const char *id,
                      unsigned flags)
{
        ((vfiipc_observer_cb)cb)(data, from, to, id, flags);
}

VFIIPC_PUBLIC void vfiipc_set_app_id(const char *app_id)
{
        client_app_id_set(app_id);
}

VFIIPC_PUBLIC char *vfiipc_get_app_id(void)
{
        return client_app_id_get();
}

VFIIPC_PUBLIC vfiipc_result vfiipc_notify(const char *to, const char *notification_id,
                                          const json_t *param, unsigned flags, const char *from)
{
        size_t len;
        char *text = json_text_dump(param, &len);
        int r;

        if (!text) {
                nfycl_log(LOG_ERR, "cannot serialise the param of '%s'",
                          notification_id ? notification_id : "");
                return VFIIPC_ERR_SERVER;
        }
        r = client_notify(to, notification_id, text, len, flags, from);
        free(text);
        return (vfiipc_result)r;
}

VFIIPC_PUBLIC vfiipc_result vfiipc_notify_text(const char *to, const char *notification_id,
                                               const char *json, unsigned flags, const char *from)
{
        json_error_t err;
        size_t len = json ? strlen(json) : 0;

        if (!json || len > VFIIPC_PARAM_MAX_BYTES || json_text_validate(json, len, &err) < 0) {
                nfycl_log(LOG_ERR, "refusing '%s': invalid JSON param%s%s",
                          notification_id ? notification_id : "", json ? ": " : "",
                          json ? err.text : "");
                return VFIIPC_ERR_SERVER;
        }
        return (vfiipc_result)client_notify(to, notification_id, json, len, flags, from);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_register(const char *notification_id, vfiipc_notify_cb cb,
                                            void *data, int priority, const char *to)
{
        return (vfiipc_result)client_register(notification_id, invoke_c, (client_fn)cb, data,
                                              priority, to);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_unregister(const char *notification_id, vfiipc_notify_cb cb,
                                              void *data, const char *to)
{
        return (vfiipc_result)client_unregister(notification_id, (client_fn)cb, data, to);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_unicast_error_add(vfiipc_notify_cb cb, void *data)
{
        return (vfiipc_result)client_unicast_error_add(invoke_c, (client_fn)cb, data);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_unicast_error_remove(vfiipc_notify_cb cb, void *data)
{
        return (vfiipc_result)client_unicast_error_remove((client_fn)cb, data);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_observer_add(vfiipc_observer_cb cb, void *data)
{
        return (vfiipc_result)client_observer_add(observe_c, (client_fn)cb, data);
}

VFIIPC_PUBLIC vfiipc_result vfiipc_observer_remove(vfiipc_observer_cb cb, void *data)
{
        return (vfiipc_result)client_observer_remove((client_fn)cb, data);
}

VFIIPC_PUBLIC const char *vfiipc_version(void)
{
        return VFIIPC_VERSION;
}
