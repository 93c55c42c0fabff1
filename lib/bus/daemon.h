/* lib/bus/daemon.h — the private dbus-daemon: a child of the server that dies with it.
 *
 * The daemon runs in the foreground with --print-address on a pipe; it is ready once it has
 * printed its address. It gets PR_SET_PDEATHSIG(SIGKILL), so a crashed or killed server takes
 * its bus along (design.md "The private bus"). PDEATHSIG follows the *thread* that forked, so
 * the fork happens on a helper thread of this module that lives exactly as long as the child:
 * the thread that called bus_daemon_start() may end without killing the bus.
 *
 * Threads: any thread may call these functions, one at a time per object. */
#pragma once

#include <sys/types.h>

typedef struct bus_daemon bus_daemon_t;

/* Runs `program --config-file=config --address=address --nofork --nopidfile --nosyslog
 * --print-address=3` and waits at most timeout_ms until it printed its address. The child
 * gets no other fds of ours, default signal dispositions and an empty signal mask; its
 * stderr is ours only while NFY_LOGMASK enables warnings (its own messages are not in the
 * NFY log format), else /dev/null. Returns 0; -ETIMEDOUT (the child was killed), -ECHILD
 * (it exited first: bad config, address in use, program missing), or -errno; ret untouched
 * on failure. */
int bus_daemon_start(const char *program, const char *config, const char *address, int timeout_ms,
                     bus_daemon_t **ret);

/* The address the daemon printed (with its guid), to connect to. */
const char *bus_daemon_address(const bus_daemon_t *d);

/* Process ID of the daemon. */
pid_t bus_daemon_pid(const bus_daemon_t *d);

/* SIGTERM (the daemon then removes its socket itself), SIGKILL if it has not exited after
 * grace_ms, reaps it; NULL-safe; returns NULL. */
bus_daemon_t *bus_daemon_free(bus_daemon_t *d, int grace_ms);
