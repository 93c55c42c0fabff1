/* lib/core/child.h — helper processes of the server that die with it: the private dbus-daemon
 * and the NFY gateway.
 *
 * The child runs argv[0] (an absolute path) with fd 3 the write end of a pipe; it is ready once
 * it has written one line there (dbus-daemon --print-address=3 prints its address; the gateway
 * writes "READY"). It gets PR_SET_PDEATHSIG(SIGKILL), so a crashed or killed server takes it
 * along (design.md "The private bus"). PDEATHSIG follows the *thread* that forked, so the fork
 * happens on a helper thread of this module that lives exactly as long as the child: the
 * thread that called child_start() may end without killing the child.
 *
 * Threads: any thread may call these functions, one at a time per object. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

typedef struct child child_t;

/* Runs argv (copied; NULL-terminated) and waits at most timeout_ms for its ready line. The
 * child gets no other fds of ours, default signal dispositions, an empty signal mask and its
 * own process group; its stderr is ours only while NFY_LOGMASK enables warnings (its messages
 * may not be in the NFY log format), else /dev/null. what names it in log lines. Returns 0;
 * -ETIMEDOUT (the child was killed), -ECHILD (it exited first: bad arguments, program missing),
 * or -errno; ret untouched on failure. */
int child_start(const char *what, char *const argv[], int timeout_ms, child_t **ret);

/* The ready line, without its newline. */
const char *child_line(const child_t *d);

pid_t child_pid(const child_t *d);

/* True once the child has exited (or d is NULL). */
bool child_exited(child_t *d);

/* SIGTERM, SIGKILL if it has not exited after grace_ms, reaps it; NULL-safe; returns NULL. */
child_t *child_free(child_t *d, int grace_ms);
