// lib/compat/notify.cpp — <ipc/notify.h> on the C core: converts std::string and JSObject to C
// strings and json_t, catches exceptions at the callback boundary (G-69). No routing rules here.
#include <cstdlib>
#include <exception>
#include <string>

#include <ipc/notify.h>

#include "client/client.h"
#include "compat/jsobject-json.h"
#include "core/log.h"
#include "vfiipc/notify.h"

namespace {

// A std::string with an embedded NUL cannot cross the C API (nor D-Bus) without being cut.
bool has_nul(const std::string &s)
{
        return s.find('\0') != std::string::npos;
}

void invoke_cpp(client_fn cb, void *data, const char *from, const char *to, const char *id,
                const json_t *param, unsigned flags)
{
        try {
                vfiipc::JSObject p;
                jsobject_from_json(p, param);
                reinterpret_cast<vfiipc::NotifyCallback>(cb)(data, from, to, id, p, flags);
        } catch (const std::exception &e) {
                nfycl_log(LOG_ERR, "callback for '%s' threw: %s", id, e.what());
        } catch (...) {
                nfycl_log(LOG_ERR, "callback for '%s' threw an exception", id);
        }
}

void observe_cpp(client_fn cb, void *data, const char *from, const char *to, const char *id,
                 unsigned flags)
{
        try {
                reinterpret_cast<vfiipc::NotifyObserver>(cb)(data, from, to, id, flags);
        } catch (const std::exception &e) {
                nfycl_log(LOG_ERR, "observer threw for '%s': %s", id, e.what());
        } catch (...) {
                nfycl_log(LOG_ERR, "observer threw an exception for '%s'", id);
        }
}

vfiipc::NotifyResult to_result(int r)
{
        return static_cast<vfiipc::NotifyResult>(r);
}

} // namespace

namespace vfiipc {

void ipcSetAppID(const std::string &app_id)
{
        client_app_id_set(has_nul(app_id) ? "" : app_id.c_str());
}

std::string ipcGetAppID()
{
        char *s = client_app_id_get();
        std::string r(s ? s : "");
        free(s);
        return r;
}

enum NotifyResult ipcNotify(const std::string &to, const std::string &notification_id,
                            const JSObject &param, unsigned flags, const std::string &from)
{
        if (has_nul(to) || has_nul(notification_id) || has_nul(from))
                return NOTIFY_ERR_SERVER;
        std::string text = param.dump();
        return to_result(client_notify(to.c_str(), notification_id.c_str(), text.c_str(),
                                       text.size(), flags, from.c_str()));
}

enum NotifyResult ipcRegisterNotificationCB(const std::string &notification_id, NotifyCallback cb,
                                            void *data, int priority, const std::string &to)
{
        if (has_nul(notification_id) || has_nul(to))
                return NOTIFY_ERR_SERVER;
        return to_result(client_register(notification_id.c_str(), invoke_cpp,
                                         reinterpret_cast<client_fn>(cb), data, priority,
                                         to.c_str()));
}

enum NotifyResult ipcUnregisterNotificationCB(const std::string &notification_id,
                                              NotifyCallback cb, void *data, const std::string &to)
{
        if (has_nul(notification_id) || has_nul(to))
                return NOTIFY_OK; // nothing can be registered under such a name
        return to_result(client_unregister(notification_id.c_str(),
                                           reinterpret_cast<client_fn>(cb), data, to.c_str()));
}

enum NotifyResult ipcRegisterUnicastError(NotifyCallback cb, void *data)
{
        return to_result(
                client_unicast_error_add(invoke_cpp, reinterpret_cast<client_fn>(cb), data));
}

enum NotifyResult ipcUnregisterUnicastError(NotifyCallback cb, void *data)
{
        return to_result(client_unicast_error_remove(reinterpret_cast<client_fn>(cb), data));
}

enum NotifyResult ipcRegisterObserver(NotifyObserver cb, void *data)
{
        return to_result(client_observer_add(observe_cpp, reinterpret_cast<client_fn>(cb), data));
}

enum NotifyResult ipcUnregisterObserver(NotifyObserver cb, void *data)
{
        return to_result(client_observer_remove(reinterpret_cast<client_fn>(cb), data));
}

enum NotifyResult ipcNotificationServer()
{
        return to_result(vfiipc_server_run(NULL));
}

enum NotifyResult ipcNotificationServer(const char *config_file)
{
        return to_result(vfiipc_server_run(config_file)); // SRVF-6: NULL is the same as ()
}

} // namespace vfiipc
