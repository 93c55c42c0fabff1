/* lib/stream/dispatch.c — the one callback thread of the process for data-available callbacks
 * of all streams (legacy-api.md §3.8: SETCB-1…10, STK-1…3; G-06, G-23).
 *
 * A registration is armed when created and after the application read from its stream; the
 * thread polls the descriptors of armed registrations (and counts fresh buffered input as
 * pending), disarms a registration and invokes its callback with no lock held. Registrations
 * are found by token after every callback, never kept as pointers across one, so a callback may
 * close or free any stream, its own included. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "stream/internal.h"

struct reg {
        unsigned long token;
        vfiipc_stream *s;
        vfiipc_stream_cb cb;
        void *data;
        bool armed;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static struct reg *regs;
static size_t n_regs, cap_regs;
static unsigned long next_token = 1;
static int wake_fd = -1;
static atomic_bool started;
static pthread_t thread;
static const vfiipc_stream *running; /* compared, never dereferenced */
static int stack_size = -1;

static void wake(void)
{
        uint64_t one = 1;
        ssize_t n;

        do
                n = write(wake_fd, &one, sizeof(one));
        while (n < 0 && errno == EINTR);
}

static bool on_dispatch_thread(void)
{
        return atomic_load(&started) && pthread_equal(pthread_self(), thread);
}

static struct reg *find_stream(const vfiipc_stream *s)
{
        for (size_t i = 0; i < n_regs; i++)
                if (regs[i].s == s)
                        return &regs[i];
        return NULL;
}

static struct reg *find_token(unsigned long token)
{
        for (size_t i = 0; i < n_regs; i++)
                if (regs[i].token == token)
                        return &regs[i];
        return NULL;
}

/* lock held. Removes s's registration; with `wait`, also waits for its running callback
 * unless called on the callback thread (G-06). */
static void remove_locked(vfiipc_stream *s, bool wait)
{
        struct reg *r = find_stream(s);

        if (r) {
                *r = regs[--n_regs];
                atomic_store(&s->cb_token, 0);
                wake(); /* the thread drops its poll reference to the descriptor */
        }
        if (wait && !on_dispatch_thread())
                while (running == s)
                        pthread_cond_wait(&idle_cond, &lock);
}

static void *dispatch_main(void *unused)
{
        struct pollfd *pfd = NULL;
        unsigned long *tokens = NULL, *ready = NULL;
        size_t cap = 0;

        pthread_mutex_lock(&lock);
        for (;;) {
                size_t n = 1, n_ready = 0;
                int timeout = -1, r;

                if (cap < n_regs + 1) {
                        size_t c = (n_regs + 1) * 2;
                        struct pollfd *p = realloc(pfd, c * sizeof(*pfd));
                        unsigned long *t, *rd;

                        if (p)
                                pfd = p;
                        t = p ? realloc(tokens, c * sizeof(*tokens)) : NULL;
                        if (t)
                                tokens = t;
                        rd = t ? realloc(ready, c * sizeof(*ready)) : NULL;
                        if (rd) {
                                ready = rd;
                                cap = c;
                        } else {
                                /* Out of memory: try again shortly, with what we have. */
                                ipc_log(LOG_CRIT, "callback thread: out of memory");
                                pthread_mutex_unlock(&lock);
                                usleep(10000);
                                pthread_mutex_lock(&lock);
                                continue;
                        }
                }
                pfd[0] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
                for (size_t i = 0; i < n_regs; i++) {
                        vfiipc_stream *s = regs[i].s;

                        if (!regs[i].armed)
                                continue;
                        /* G-14: fresh buffered input is pending even if the socket is quiet. */
                        if ((atomic_load(&s->buffered) > 0 && !atomic_load(&s->buf_stale)) ||
                            atomic_load(&s->io_buffered) > 0) {
                                ready[n_ready++] = regs[i].token;
                                timeout = 0;
                                continue;
                        }
                        pfd[n] = (struct pollfd){.fd = atomic_load(&s->fd), .events = POLLIN};
                        tokens[n++] = regs[i].token;
                }
                pthread_mutex_unlock(&lock);
                do
                        r = poll(pfd, n, timeout);
                while (r < 0 && errno == EINTR);
                pthread_mutex_lock(&lock);
                if (pfd[0].revents) {
                        uint64_t v;

                        if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                                ipc_log(LOG_ERR, "callback thread: wake-up: %s", strerror(errno));
                }
                for (size_t i = 1; r > 0 && i < n; i++)
                        if (pfd[i].revents)
                                ready[n_ready++] = tokens[i];
                for (size_t i = 0; i < n_ready; i++) {
                        struct reg *g = find_token(ready[i]);
                        vfiipc_stream_cb cb;
                        vfiipc_stream *s;
                        void *data;

                        if (!g || !g->armed)
                                continue;
                        g->armed = false; /* SETCB-5 */
                        cb = g->cb;
                        s = g->s;
                        data = g->data;
                        running = s;
                        pthread_mutex_unlock(&lock);
                        cb(data, s);
                        pthread_mutex_lock(&lock);
                        running = NULL;
                        pthread_cond_broadcast(&idle_cond);
                }
        }
        return unused;
}

/* lock held */
static bool start_locked(void)
{
        pthread_attr_t attr;
        sigset_t all, old;
        int r;

        if (atomic_load(&started))
                return true;
        if (wake_fd < 0) {
                wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (wake_fd < 0)
                        return false;
        }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (stack_size >= 0) /* STK-2 */
                pthread_attr_setstacksize(&attr, stack_size < PTHREAD_STACK_MIN
                                                         ? (size_t)PTHREAD_STACK_MIN
                                                         : (size_t)stack_size);
        /* Signals stay with the application's threads. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&thread, &attr, dispatch_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                ipc_log(LOG_ERR, "cannot start the callback thread: %s", strerror(r));
                return false;
        }
        atomic_store(&started, true);
        return true;
}

bool dispatch_register(vfiipc_stream *s, vfiipc_stream_cb cb, void *data)
{
        struct reg *g;

        pthread_mutex_lock(&lock);
        if (!start_locked()) { /* SETCB-9 */
                pthread_mutex_unlock(&lock);
                return false;
        }
        remove_locked(s, false); /* G-23: replaces an earlier registration */
        if (n_regs == cap_regs) {
                size_t c = cap_regs ? cap_regs * 2 : 8;
                struct reg *p = realloc(regs, c * sizeof(*regs));

                if (!p) {
                        pthread_mutex_unlock(&lock);
                        return false;
                }
                regs = p;
                cap_regs = c;
        }
        g = &regs[n_regs++];
        *g = (struct reg){.token = next_token++, .s = s, .cb = cb, .data = data, .armed = true};
        atomic_store(&s->cb_token, g->token);
        wake();
        pthread_mutex_unlock(&lock);
        return true;
}

void dispatch_unregister(vfiipc_stream *s)
{
        if (!atomic_load(&started))
                return;
        pthread_mutex_lock(&lock);
        remove_locked(s, true);
        pthread_mutex_unlock(&lock);
}

void dispatch_rearm(vfiipc_stream *s)
{
        unsigned long token = atomic_load(&s->cb_token);
        struct reg *g;

        if (token == 0)
                return;
        pthread_mutex_lock(&lock);
        g = find_token(token);
        if (g && !g->armed) {
                g->armed = true;
                wake();
        }
        pthread_mutex_unlock(&lock);
}

void dispatch_set_stacksize(int size)
{
        pthread_mutex_lock(&lock);
        if (!atomic_load(&started)) /* STK-3 */
                stack_size = size < 0 ? -1 : size;
        pthread_mutex_unlock(&lock);
}

bool vfiipc_stream_set_callback(vfiipc_stream *s, vfiipc_stream_cb cb, void *data)
{
        bool ok;

        if (!s)
                return false;
        if (!cb) { /* SETCB-2: always true */
                dispatch_unregister(s);
                return true;
        }
        /* A replaced callback has finished before the new one is in place (waiting without
         * close_lock: the running callback may close the stream). close_lock then keeps the
         * stream from being closed between the check and the registration. */
        dispatch_unregister(s);
        pthread_mutex_lock(&s->close_lock);
        ok = atomic_load(&s->state) != STREAM_CLOSED && dispatch_register(s, cb, data);
        pthread_mutex_unlock(&s->close_lock);
        return ok;
}

void vfiipc_stream_set_callback_stacksize(int size)
{
        dispatch_set_stacksize(size);
}
