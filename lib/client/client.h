/* lib/client/client.h — the notification client: one private bus connection per process, a
 * dispatcher thread, callbacks on a worker pool, local registrations that survive a server
 * restart (design.md "Client library internals"; legacy-api.md §6; G-60…G-69, G-76, G-77).
 *
 * Callbacks are kept as (invoker, cb, data): `cb`/`data` are what the application passed and
 * what unregistering matches on (UNREG-3, UE-6, OBS-6); the invoker calls cb with the right
 * types, so the C API and the C++ layer share every rule here.
 *
 * Threads: every function may be called from any thread, also from inside a callback.
 * Results are vfiipc_result values. */
#pragma once

#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*client_fn)(void);
typedef void (*client_invoke_fn)(client_fn cb, void *data, const char *from, const char *to,
                                 const char *notification_id, const json_t *param,
                                 unsigned flags);
typedef void (*client_observe_fn)(client_fn cb, void *data, const char *from, const char *to,
                                  const char *notification_id, unsigned flags);

void client_app_id_set(const char *app_id);
/* malloc'd copy, "" when unset; NULL when out of memory. */
char *client_app_id_get(void);

/* json: len bytes of valid JSON text (the caller validated or produced it). */
int client_notify(const char *to, const char *notification_id, const char *json, size_t len,
                  unsigned flags, const char *from);

/* cb NULL: same as client_unregister(notification_id, NULL, NULL, to) (REG-4). */
int client_register(const char *notification_id, client_invoke_fn invoke, client_fn cb,
                    void *data, int priority, const char *to);
int client_unregister(const char *notification_id, client_fn cb, void *data, const char *to);

/* cb NULL on add: remove all (UE-4, OBS-D-1). */
int client_unicast_error_add(client_invoke_fn invoke, client_fn cb, void *data);
int client_unicast_error_remove(client_fn cb, void *data);
int client_observer_add(client_observe_fn invoke, client_fn cb, void *data);
int client_observer_remove(client_fn cb, void *data);

#ifdef __cplusplus
}
#endif
