/* tests/server-fixture.h — a private notification server per test, in its own temp dir.
 *
 * Starts the notifysvc program ($VFIIPC_NOTIFYSVC, set by meson test) as a child with
 * VFIIPC_BUS_ADDRESS=unix:path=<tmpdir>/bus, exports that address into this process's
 * environment (so the library under test finds it), and waits until the broker name is owned
 * on the bus. Never a shared or system bus, never a fixed path. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct server_fixture {
        char *dir;     /* temp dir, removed by stop */
        char *address; /* unix:path=<dir>/bus */
        char *config;  /* optional whitelist file passed to notifysvc, or NULL */
        pid_t pid;     /* notifysvc, or 0 when not running */
        int nfy_port;  /* > 0: passed to notifysvc as VFIIPC_NFY_PORT (the NFY gateway's port) */
} server_fixture_t;

/* Fresh temp dir + server. Asserts (g_assert) on failure. */
void server_fixture_start(server_fixture_t *f);
/* Fresh temp dir and address only (exported like start does); server_fixture_restart() then
 * starts the server, so a test can write f->config into f->dir first. When running as root the
 * dir is 0711, so that a helper the server runs as another user (the NFY gateway) can reach
 * the bus socket in it. */
void server_fixture_prepare(server_fixture_t *f);
/* Starts the server again at the same address (after kill). */
void server_fixture_restart(server_fixture_t *f);
/* SIGKILL the server (its bus dies with it) and reap it. */
void server_fixture_kill(server_fixture_t *f);
/* SIGTERM, reap, remove the temp dir. Safe to call twice. */
void server_fixture_stop(server_fixture_t *f);
/* True once the broker name is owned on f->address, waiting at most timeout_ms. */
bool server_fixture_wait_ready(server_fixture_t *f, int timeout_ms);
/* Runs notifysvc with extra arguments in the foreground environment of f and returns its
 * exit status (for exit-code tests); stdout/stderr are discarded. */
int server_fixture_run_notifysvc(server_fixture_t *f, const char *const *args);

/* True once pid has exited (gone or a zombie: not necessarily our child), waiting at most
 * timeout_ms. */
bool server_fixture_wait_pid_gone(pid_t pid, int timeout_ms);

#ifdef __cplusplus
}
#endif
