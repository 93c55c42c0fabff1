/* <vfiipc/notify.h> — the C API of the vfiipc notification service.
 *
 * The same functionality as the legacy C++ <ipc/notify.h>, for C programs: parameters are
 * jansson values (json_t), strings are NUL-terminated UTF-8. Results are the legacy
 * NotifyResult values. Every function may be called from any thread, also from inside a
 * callback (except that unregistering a callback from inside itself does not wait for
 * itself: G-69). Link with `pkg-config --libs vfiipc`. */
#ifndef VFIIPC_NOTIFY_H
#define VFIIPC_NOTIFY_H

#include <jansson.h>

#include <vfiipc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vfiipc_result {
        VFIIPC_OK = 0,                 /* success */
        VFIIPC_ERR_SERVER = -1,        /* server not reachable; or a second server (SRV-5) */
        VFIIPC_ERR_APP_ID = -2,        /* no usable application ID (G-65) */
        VFIIPC_ERR_PERMISSION = -3,    /* the bus endpoint may not be created/used (G-66) */
        VFIIPC_ERR_CONFIG_FILE = -4,   /* configuration file cannot be opened */
        VFIIPC_ERR_CONFIG_SYNTAX = -5, /* configuration file has invalid lines */
} vfiipc_result;

/* Largest JSON text of one notification's param, in bytes. Larger params are refused with
 * VFIIPC_ERR_SERVER (the server would refuse them) and an NFYCL "err" log line. */
#define VFIIPC_PARAM_MAX_BYTES (8u * 1024u * 1024u)

/* Notification and unicast-error callback. The strings and param are valid until it returns. */
typedef void (*vfiipc_notify_cb)(void *data, const char *from, const char *to,
                                 const char *notification_id, const json_t *param,
                                 unsigned flags);
/* Observer callback: to is the resolved receiver, "" when nobody received it. */
typedef void (*vfiipc_observer_cb)(void *data, const char *from, const char *to,
                                   const char *notification_id, unsigned flags);

/* Application identity (APPID-1…4). "", "1" and "*" leave the process without an ID. */
VFIIPC_PUBLIC void vfiipc_set_app_id(const char *app_id);
/* Returns a malloc'd copy ("" when unset); free() it. NULL only when out of memory. */
VFIIPC_PUBLIC char *vfiipc_get_app_id(void);

/* Sends param (NULL: JSON null) to `to` ("1", "*" or an application ID). from NULL or "":
 * the own application ID. NOTIFY_OK once handed to the server (NTF-4). */
VFIIPC_PUBLIC vfiipc_result vfiipc_notify(const char *to, const char *notification_id,
                                          const json_t *param, unsigned flags, const char *from);
/* The same with the param as JSON text (validated; invalid text gives VFIIPC_ERR_SERVER
 * without sending, and a log line). */
VFIIPC_PUBLIC vfiipc_result vfiipc_notify_text(const char *to, const char *notification_id,
                                               const char *json, unsigned flags,
                                               const char *from);

/* Registers cb for notification_id delivered to `to` (NULL or "": own ID) (REG-1…9).
 * cb NULL removes the registration (REG-4). */
VFIIPC_PUBLIC vfiipc_result vfiipc_register(const char *notification_id, vfiipc_notify_cb cb,
                                            void *data, int priority, const char *to);
/* Removes it (UNREG-1…6): cb NULL = any callback, data NULL = any data. Returns when no
 * matching invocation runs any more (other than the calling one) and none will start. */
VFIIPC_PUBLIC vfiipc_result vfiipc_unregister(const char *notification_id, vfiipc_notify_cb cb,
                                              void *data, const char *to);

/* Unicast-error callbacks (UE-1…7): cb NULL on add removes all of them. */
VFIIPC_PUBLIC vfiipc_result vfiipc_unicast_error_add(vfiipc_notify_cb cb, void *data);
VFIIPC_PUBLIC vfiipc_result vfiipc_unicast_error_remove(vfiipc_notify_cb cb, void *data);

/* Observers (OBS-1…7): cb NULL on add removes all of them. */
VFIIPC_PUBLIC vfiipc_result vfiipc_observer_add(vfiipc_observer_cb cb, void *data);
VFIIPC_PUBLIC vfiipc_result vfiipc_observer_remove(vfiipc_observer_cb cb, void *data);

/* The notification server (SRVF-1…8). config_file NULL: no remote access.
 * vfiipc_server_run() = ipcNotificationServer(): returns only on error. */
VFIIPC_PUBLIC vfiipc_result vfiipc_server_run(const char *config_file);

/* A server that can be stopped, for programs that handle signals themselves (notifysvc).
 * new: reads the configuration (CONFIG_FILE / CONFIG_SYNTAX); start: starts the private bus,
 * owns the broker name (SERVER if one runs already, PERMISSION when the endpoint may not be
 * created); serve: blocks until vfiipc_server_stop() (then VFIIPC_OK) or a failure, while the
 * broker runs on a thread it starts ("vfiipc-broker", with the caller's signal mask; replaced
 * by a new one a second after each burst, to give the burst's memory back);
 * stop: async-signal-safe; free: stops the bus, removes its socket, NULL-safe. */
typedef struct vfiipc_server vfiipc_server;
VFIIPC_PUBLIC vfiipc_result vfiipc_server_new(const char *config_file, vfiipc_server **ret);
VFIIPC_PUBLIC vfiipc_result vfiipc_server_start(vfiipc_server *s);
VFIIPC_PUBLIC vfiipc_result vfiipc_server_serve(vfiipc_server *s);
VFIIPC_PUBLIC void vfiipc_server_stop(vfiipc_server *s);
VFIIPC_PUBLIC vfiipc_server *vfiipc_server_free(vfiipc_server *s);
/* The dbus-daemon configuration the server generates for the remote gateway's principal when
 * started as root with config_file (notifysvc --print-policy): the installed bus configuration
 * plus a policy that confines the gateway's user to the broker's remote-facing methods. Returns
 * CONFIG_FILE / CONFIG_SYNTAX like vfiipc_server_new, SERVER when out of memory; *ret (malloc'd,
 * free()) untouched on failure. */
VFIIPC_PUBLIC vfiipc_result vfiipc_server_policy(const char *config_file, char **ret);
/* The bus address the server listens on / the client uses (malloc'd; free()). */
VFIIPC_PUBLIC char *vfiipc_bus_address(void);

/* Version of the library ("1.28.0"), a static string. */
VFIIPC_PUBLIC const char *vfiipc_version(void);

#ifdef __cplusplus
}
#endif

#endif
