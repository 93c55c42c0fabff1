/* lib/core/child.c — helper processes that must not outlive us (see child.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/child.h"
#include "core/log.h"
#include "core/util.h"

extern char **environ;

#define PRINT_FD 3              /* the child's ready-line descriptor */
#define LINE_MAX_LEN (64 * 1024) /* far longer than any address dbus-daemon prints */

struct child {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* broadcast when forked or exited become true */

        /* Under lock, written by the helper thread. */
        bool forked;    /* fork() has returned: pid > 0, or fork_error */
        bool exited;    /* no kill() any more: the child is a zombie being reaped, or gone */
        int fork_error; /* errno of a failed fork() */
        int status;     /* wait status once exited, -1 if someone else reaped it */

        /* Set before the helper thread starts; read-only afterwards. */
        pid_t pid; /* valid once forked */
        pid_t parent;
        char **argv;
        int print_fd; /* write end of the ready-line pipe; the child's only copy after start */
        int null_fd;
        int err_fd; /* STDERR_FILENO or null_fd */
        int max_fd; /* bound of the close loop, when close_range() is missing */

        char *what; /* for log lines: "dbus-daemon", "nfy-gateway" */
        char *line; /* the ready line, without its newline */
};

static void close_from(int first, int max_fd)
{
#ifdef SYS_close_range
        if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0)
                return;
#endif
        for (int fd = first; fd < max_fd; fd++)
                (void)close(fd);
}

/* Runs in the child of a multi-threaded process: async-signal-safe calls only, until exec. */
static _Noreturn void child_exec(const child_t *d)
{
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;
        int p, n, e;

        /* The bus must not outlive the server: a crashed or killed server takes it along. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(127);
        /* The parent may have died before prctl(): then we are re-parented already and the
         * death signal will never come. */
        if (getppid() != d->parent)
                _exit(127);

        /* exec resets handlers but keeps ignored signals and the mask: the server may ignore
         * SIGPIPE or block SIGTERM, and the child must start with the defaults. */
        for (int sig = 1; sig < NSIG; sig++)
                (void)sigaction(sig, &dfl, NULL); /* SIGKILL, SIGSTOP, libc-reserved: EINVAL */
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);

        /* Its own process group: a terminal's Ctrl-C or SIGHUP reaches only the server, which
         * then stops its bus in order (or, if it dies, PDEATHSIG does). */
        (void)setpgid(0, 0);

        /* Lift our descriptors above the target slots first, so that no dup2() below
         * overwrites one still needed; dup2() clears FD_CLOEXEC on the copies. */
        p = fcntl(d->print_fd, F_DUPFD, PRINT_FD + 1);
        n = fcntl(d->null_fd, F_DUPFD, PRINT_FD + 1);
        if (p < 0 || n < 0)
                _exit(127);
        e = d->err_fd == d->null_fd ? n : fcntl(d->err_fd, F_DUPFD, PRINT_FD + 1);
        if (e < 0)
                e = n; /* our stderr is closed */
        if (dup2(n, STDIN_FILENO) < 0 || dup2(n, STDOUT_FILENO) < 0 || dup2(e, STDERR_FILENO) < 0 ||
            dup2(p, PRINT_FD) < 0)
                _exit(127);
        /* Nothing else of the server's leaks into the bus: sockets, the lock file, pipes. */
        close_from(PRINT_FD + 1, d->max_fd);

        execve(d->argv[0], d->argv, environ);
        _exit(127);
}

/* The helper thread: forks the child and lives until it has exited, because
 * PR_SET_PDEATHSIG fires when the forking *thread* ends, not the process. */
static void *child_thread(void *data)
{
        child_t *d = data;
        siginfo_t si;
        int status = -1, e;
        pid_t pid;

        pid = fork();
        if (pid == 0)
                child_exec(d);
        e = errno;

        pthread_mutex_lock(&d->lock);
        d->forked = true;
        if (pid < 0) {
                d->fork_error = e;
                d->exited = true;
        } else
                d->pid = pid;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        if (pid < 0)
                return NULL;

        /* Wait without reaping: while the zombie exists its pid cannot be reused, so other
         * threads may kill() it as long as they see !exited under the lock. */
        while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&d->lock);
        d->exited = true;
        /* Fails with ECHILD only if the application reaped it (SIGCHLD ignored, wait(-1)). */
        if (waitpid(pid, &status, 0) != pid)
                status = -1;
        d->status = status;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

static void timespec_after_ms(struct timespec *ts, int ms)
{
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void status_log(const child_t *d, int status, const char *when)
{
        if (status == -1)
                nfy_log(LOG_ERR, "%s exited %s (reaped elsewhere)", d->what, when);
        else if (WIFEXITED(status))
                nfy_log(LOG_ERR, "%s exited %s with status %d%s", d->what, when,
                        WEXITSTATUS(status),
                        WEXITSTATUS(status) == 127 ? " (could not be executed)" : "");
        else if (WIFSIGNALED(status))
                nfy_log(LOG_ERR, "%s was killed by signal %d %s", d->what, WTERMSIG(status), when);
}

/* Sends sig (unless it is gone), then waits grace_ms for its exit, then SIGKILLs it and waits
 * for good. Returns with the child exited. */
static void child_terminate(child_t *d, int sig, int grace_ms)
{
        struct timespec deadline;

        timespec_after_ms(&deadline, grace_ms > 0 ? grace_ms : 0);
        pthread_mutex_lock(&d->lock);
        if (!d->exited)
                (void)kill(d->pid, sig);
        while (!d->exited && sig != SIGKILL)
                if (pthread_cond_timedwait(&d->cond, &d->lock, &deadline) == ETIMEDOUT)
                        break;
        if (!d->exited) {
                if (sig != SIGKILL)
                        nfy_log(LOG_WARNING,
                                "%s %d ignored signal %d for %d ms; killing it", d->what,
                                (int)d->pid, sig, grace_ms);
                (void)kill(d->pid, SIGKILL);
                while (!d->exited)
                        pthread_cond_wait(&d->cond, &d->lock);
        }
        pthread_mutex_unlock(&d->lock);
}

static void child_destroy(child_t *d)
{
        if (d->thread_started)
                pthread_join(d->thread, NULL);
        if (d->argv)
                for (char **a = d->argv; *a; a++)
                        free(*a);
        free(d->argv);
        if (d->print_fd >= 0)
                close(d->print_fd);
        if (d->null_fd >= 0)
                close(d->null_fd);
        free(d->line);
        free(d->what);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d);
}

static int child_argv(child_t *d, char *const argv[])
{
        size_t n = 0;

        while (argv[n])
                n++;
        d->argv = calloc(n + 1, sizeof(char *));
        if (!d->argv)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(d->argv[i] = strdup(argv[i])))
                        return -ENOMEM;
        return 0;
}

/* Reads up to the first newline from fd until the deadline. */
static int line_read(int fd, int timeout_ms, char **ret)
{
        struct timespec deadline, now;
        size_t len = 0, cap = 256;
        char *buf = malloc(cap), *nl;

        if (!buf)
                return -ENOMEM;
        timespec_after_ms(&deadline, timeout_ms);
        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                long long left;
                ssize_t n;

                clock_gettime(CLOCK_MONOTONIC, &now);
                left = (long long)(deadline.tv_sec - now.tv_sec) * 1000 +
                       (deadline.tv_nsec - now.tv_nsec) / 1000000;
                if (left <= 0) {
                        free(buf);
                        return -ETIMEDOUT;
                }
                if (poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left)) < 0) {
                        if (errno == EINTR)
                                continue;
                        free(buf);
                        return -errno;
                }
                if (!pfd.revents)
                        continue;
                if (len + 1 >= cap) {
                        char *b;
                        if (cap >= LINE_MAX_LEN) {
                                free(buf);
                                return -E2BIG;
                        }
                        b = realloc(buf, cap * 2);
                        if (!b) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = b;
                        cap *= 2;
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        /* EOF: every copy of the write end is closed, i.e. the child exited. */
                        int r = n < 0 ? -errno : -ECHILD;
                        free(buf);
                        return r;
                }
                len += (size_t)n;
                buf[len] = '\0';
                nl = strchr(buf, '\n');
                if (nl) {
                        *nl = '\0';
                        if (!*buf) {
                                free(buf);
                                return -EPROTO;
                        }
                        *ret = buf;
                        return 0;
                }
        }
}

int child_start(const char *what, char *const argv[], int timeout_ms, child_t **ret)
{
        pthread_condattr_t ca;
        sigset_t all, old;
        struct rlimit rl;
        child_t *d;
        int pfd[2], r;

        if (!what || !argv || !argv[0] || !ret)
                return -EINVAL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->print_fd = d->null_fd = -1;
        pthread_mutex_init(&d->lock, NULL);
        pthread_condattr_init(&ca);
        /* Deadlines must not jump with the wall clock. */
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d->cond, &ca);
        pthread_condattr_destroy(&ca);

        d->what = strdup(what);
        r = d->what ? child_argv(d, argv) : -ENOMEM;
        if (r < 0)
                goto fail;
        if (pipe2(pfd, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        d->print_fd = pfd[1];
        d->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (d->null_fd < 0) {
                r = -errno;
                close(pfd[0]);
                goto fail;
        }
        /* The library writes to stderr only through the log masks (LOG-3); the child's own
         * warnings are useful when diagnosing, so they are let through exactly then. */
        d->err_fd = log_enabled(LOG_CHANNEL_NFY, LOG_WARNING) ? STDERR_FILENO : d->null_fd;
        d->max_fd = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                     rl.rlim_cur < 1024 * 1024)
                        ? (int)rl.rlim_cur
                        : 1024 * 1024;
        d->parent = getpid();

        /* The helper thread takes no process-directed signals (the application's handlers run
         * on its own threads), and its fork child starts from a known mask anyway. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&d->thread, NULL, child_thread, d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                close(pfd[0]);
                goto fail;
        }
        d->thread_started = true;

        pthread_mutex_lock(&d->lock);
        while (!d->forked)
                pthread_cond_wait(&d->cond, &d->lock);
        r = -d->fork_error;
        pthread_mutex_unlock(&d->lock);
        /* Only the child keeps the write end now, so its exit shows as EOF. */
        close(d->print_fd);
        d->print_fd = -1;
        close(d->null_fd);
        d->null_fd = -1;
        if (r < 0) {
                close(pfd[0]);
                nfy_log_errno(LOG_ERR, r, "cannot fork %s", d->what);
                goto fail;
        }

        r = line_read(pfd[0], timeout_ms, &d->line);
        close(pfd[0]);
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        nfy_log(LOG_ERR, "%s %d not ready after %d ms; killing it", d->what,
                                (int)d->pid, timeout_ms);
                child_terminate(d, SIGKILL, 0);
                if (r != -ETIMEDOUT)
                        status_log(d, d->status, "before it was ready");
                goto fail;
        }
        nfy_log(LOG_INFO, "%s %d ready: %s", d->what, (int)d->pid, d->line);
        *ret = d;
        return 0;

fail:
        child_destroy(d);
        return r;
}

const char *child_line(const child_t *d)
{
        return d->line;
}

pid_t child_pid(const child_t *d)
{
        return d->pid;
}

child_t *child_free(child_t *d, int grace_ms)
{
        if (!d)
                return NULL;
        child_terminate(d, SIGTERM, grace_ms);
        pthread_mutex_lock(&d->lock);
        if (d->status != 0 && !(WIFSIGNALED(d->status) && WTERMSIG(d->status) == SIGTERM))
                status_log(d, d->status, "at shutdown");
        pthread_mutex_unlock(&d->lock);
        child_destroy(d);
        return NULL;
}

bool child_exited(child_t *d)
{
        bool exited;

        if (!d)
                return true;
        pthread_mutex_lock(&d->lock);
        exited = d->exited;
        pthread_mutex_unlock(&d->lock);
        return exited;
}
