/* lib/remote/gateway.h — the NFY remote gateway: TCP listeners for NFY peers (§5.2, §8), one
 * private bus connection per peer, frames ⇄ io.vfiipc.Remote1 calls / Client1 signals
 * (lib/bus/protocol.h, "Remote peers").
 *
 * It runs as its own process (tools/nfy-gateway.c), so the network-facing parser lives outside
 * the broker (design.md "The private bus"), and under its own user when started by root.
 * Everything is driven by one single-threaded poll() loop; only the first connect of a peer's
 * bus connection (a local Unix socket) may block it briefly.
 *
 * Threads: every function on one thread, except gateway_quit() (any thread, signal handlers
 * too). Name resolution for listeners that are retried runs on short-lived helper threads that
 * touch nothing but their own job (see gateway.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct gateway gateway_t;

/* Names after --interface (IF-3); the same bound as the whitelist's interface lines. */
#define GATEWAY_INTERFACES_MAX 64
#define GATEWAY_INTERFACE_NAME_MAX 255

typedef struct gateway_config {
        const char *bus_address; /* the private bus (required) */
        uint16_t port;           /* TCP port; 0 = an ephemeral one (tests, see gateway_port()) */
        /* §5.2, IF-1…3: none → one listener on 0.0.0.0; some → one per name plus 127.0.0.1. */
        const char *const *interfaces;
        size_t n_interfaces;
        int stop_fd; /* -1, or an fd whose readability makes gateway_run() return 0 (a signalfd);
                        it is polled, never read */
} gateway_config_t;

/* Runs the process as `user` when it is root (euid 0): supplementary groups, gid and uid of the
 * user, checked to be irreversible. Not root: nothing to do, returns 0 (logged at LOG_DEBUG).
 * -ESRCH when the user does not exist, -EPERM when dropping did not stick, other -errno from
 * the system calls; each failure is logged at LOG_ERR. Call it before gateway_new(), so the
 * bus sees the gateway's own principal (its bus policy). */
int gateway_drop_privileges(const char *user);

/* Sets the gateway up: the control bus connection, the broker's unique name (-ENXIO when
 * VFIIPC_BROKER_NAME has no owner), and one attempt at every listener (a listener that cannot
 * be resolved or bound is logged once and retried every few seconds by gateway_run(), G-85;
 * never an error here). Other failures: -EINVAL (config), -ENOTCONN (bus unreachable),
 * -ENOMEM. On success the caller may announce readiness. */
int gateway_new(const gateway_config_t *config, gateway_t **ret);

/* Serves until stopped: 0 after gateway_quit() or when stop_fd became readable; -ECONNRESET
 * when the bus connection is gone or the broker lost its name (the server is gone); other
 * -errno for fatal loop errors (poll failing, out of memory). */
int gateway_run(gateway_t *g);

/* Makes gateway_run() return 0 soon. Async-signal-safe, any thread. */
void gateway_quit(gateway_t *g);

/* Closes every peer, listener and bus connection; NULL-safe; returns NULL. */
gateway_t *gateway_free(gateway_t *g);

/* The TCP port every listener uses: the configured one, or with port 0 the ephemeral port the
 * first bound listener got (0 while none is bound). */
uint16_t gateway_port(const gateway_t *g);

/* The control connection's unique bus name: the server watches it to notice the gateway end
 * (it is announced on the ready line, tools/nfy-gateway.c). */
const char *gateway_bus_name(const gateway_t *g);

/* TCP peers currently connected (tests). */
size_t gateway_n_peers(const gateway_t *g);
