/* lib/client/workers.c — the threads that run callbacks (see workers.h). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "client/workers.h"
#include "core/log.h"
#include "core/util.h"

struct workers {
        pthread_mutex_t lock;
        pthread_cond_t cond; /* idle threads wait here */
        GQueue queue;        /* tasks not taken yet, oldest first */
        workers_fn run;
        unsigned n_threads; /* alive */
        unsigned n_idle;    /* waiting on cond */
        unsigned n_woken;   /* signalled and not running yet: no second signal for them */
        uint64_t taken;     /* tasks taken so far */
        uint64_t seen;      /* taken at the last check that found the queue waiting */
        int64_t seen_ms;    /* when that check was */
};

static void *worker_main(void *arg)
{
        workers_t *w = arg;
        struct timespec deadline;

        pthread_setname_np(pthread_self(), "vfiipc-callback");
        pthread_mutex_lock(&w->lock);
        for (;;) {
                void *task = g_queue_pop_head(&w->queue);

                if (task) {
                        w->taken++;
                        pthread_mutex_unlock(&w->lock);
                        w->run(task);
                        pthread_mutex_lock(&w->lock);
                        continue;
                }
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += WORKERS_IDLE_MS / 1000;
                deadline.tv_nsec += (long)(WORKERS_IDLE_MS % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
                w->n_idle++;
                int r = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
                w->n_idle--;
                if (w->n_woken)
                        w->n_woken--; /* whoever was meant, one signalled thread is up */
                if (r == ETIMEDOUT && g_queue_is_empty(&w->queue))
                        break;
        }
        w->n_threads--;
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Called with w->lock. */
static void workers_start_locked(workers_t *w)
{
        pthread_attr_t attr;
        pthread_t thread;
        int r;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (r == 0)
                w->n_threads++;
        else
                /* The next check tries again. */
                nfycl_log(LOG_ERR, "cannot start a callback thread: %s", strerror(r));
}

/* One more thread on the queue: an idle one if there is one not yet signalled (returns true:
 * the caller signals w->cond once it has dropped the lock), else a new one. Called with
 * w->lock. */
static bool workers_add_locked(workers_t *w)
{
        if (w->n_idle > w->n_woken) {
                w->n_woken++;
                return true;
        }
        workers_start_locked(w);
        return false;
}

/* After the unlock, so the woken thread does not wake only to wait for the lock (and both
 * sides pay a futex call for it). The idle thread counted is inside its wait: it counted
 * itself under the lock that the wait releases. */
static void workers_signal(workers_t *w, bool signal)
{
        if (signal)
                pthread_cond_signal(&w->cond);
}

int workers_new(workers_fn run, workers_t **ret)
{
        pthread_condattr_t a;
        workers_t *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &a);
        pthread_condattr_destroy(&a);
        g_queue_init(&w->queue);
        w->run = run;
        *ret = w;
        return 0;
}

void workers_push(workers_t *w, void *const *tasks, size_t n)
{
        bool was_empty, signal = false;

        if (!w || n == 0)
                return;
        pthread_mutex_lock(&w->lock);
        was_empty = g_queue_is_empty(&w->queue);
        for (size_t i = 0; i < n; i++)
                g_queue_push_tail(&w->queue, tasks[i]);
        /* A thread already busy with the queue takes these too; workers_check() adds one if
         * it stops making progress. Otherwise one is woken, or started. */
        if (was_empty && w->n_woken == 0 && (w->n_idle > 0 || w->n_threads == w->n_idle))
                signal = workers_add_locked(w);
        if (was_empty) {
                w->seen = w->taken;
                w->seen_ms = monotonic_ms(CLOCK_MONOTONIC);
        }
        pthread_mutex_unlock(&w->lock);
        workers_signal(w, signal);
}

int workers_check(workers_t *w)
{
        bool signal = false;
        int wait = -1;

        if (!w)
                return -1;
        pthread_mutex_lock(&w->lock);
        if (!g_queue_is_empty(&w->queue)) {
                int64_t now = monotonic_ms(CLOCK_MONOTONIC);

                if (w->taken != w->seen) {
                        w->seen = w->taken;
                        w->seen_ms = now;
                } else if (now - w->seen_ms >= WORKERS_STALL_MS) {
                        /* Every thread on it is inside a callback that takes its time. */
                        if (w->n_woken == 0)
                                signal = workers_add_locked(w);
                        w->seen_ms = now;
                }
                wait = WORKERS_STALL_MS;
        }
        pthread_mutex_unlock(&w->lock);
        workers_signal(w, signal);
        return wait;
}
