/* tools/bench/side-vfiipc.c — the library's side: a sender and a receiver process using
 * <vfiipc/notify.h> as an application does, through notifysvc's broker. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/util.h"
#include "vfiipc/notify.h"

/* Callbacks count here; the main thread waits for a number. */
static struct tally {
        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC: tally_init() */
        uint64_t n, want;
        int64_t last_ns;
} tally = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_uint_fast64_t counted; /* throughput receiver: lock-free */

static void tally_init(uint64_t want)
{
        pthread_condattr_t a;

        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&tally.cond, &a);
        pthread_condattr_destroy(&a);
        tally.want = want;
}

static void tally_set(uint64_t n, int64_t t_ns)
{
        pthread_mutex_lock(&tally.lock);
        tally.n = n;
        tally.last_ns = t_ns;
        pthread_cond_signal(&tally.cond);
        pthread_mutex_unlock(&tally.lock);
}

/* Returns the count reached by the deadline. */
static uint64_t tally_wait(uint64_t n, int64_t deadline_ns)
{
        struct timespec ts = timespec_of(deadline_ns);
        uint64_t got;
        int r = 0;

        pthread_mutex_lock(&tally.lock);
        while (tally.n < n && r == 0)
                r = pthread_cond_timedwait(&tally.cond, &tally.lock, &ts);
        got = tally.n;
        pthread_mutex_unlock(&tally.lock);
        return got;
}

static void on_count(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        uint64_t n = atomic_fetch_add(&counted, 1) + 1;

        if (n == tally.want)
                tally_set(n, now_ns());
}

static void on_echo(void *data, const char *from, const char *to, const char *id,
                    const json_t *param, unsigned flags)
{
        /* An echo as applications write it: the received value goes back. */
        if (vfiipc_notify(from, PONG_ID, param, 0, NULL) != VFIIPC_OK)
                fprintf(stderr, "vfiipc-bench: receiver: cannot answer %s\n", from);
}

static void on_pong(void *data, const char *from, const char *to, const char *id,
                    const json_t *param, unsigned flags)
{
        pthread_mutex_lock(&tally.lock);
        tally.n++;
        pthread_cond_signal(&tally.cond);
        pthread_mutex_unlock(&tally.lock);
}

static int receiver(const job_t *job, int in, int out)
{
        report_t rep = {0};
        int r;

        tally_init(bench_opt.count);
        vfiipc_set_app_id(RX_ID);
        if (vfiipc_register(PING_ID, job->mode == MODE_ECHO ? on_echo : on_count, NULL, 0, NULL) !=
            VFIIPC_OK)
                rep.status = -ENOTCONN;
        r = report_write(out, &rep); /* ready */
        if (r < 0 || rep.status < 0)
                return r < 0 ? r : rep.status;
        if (job->mode == MODE_THROUGHPUT) {
                /* The sender starts right after this; the parent's deadline is later. */
                int64_t deadline = now_ns() + bench_opt.timeout_s * 1000 * NS_PER_MS;
                rep.count = tally_wait(bench_opt.count, deadline);
                rep.t_ns = tally.last_ns;
                rep.status = rep.count == bench_opt.count ? 0 : -ETIMEDOUT;
                if (rep.status < 0)
                        rep.count = atomic_load(&counted);
                r = report_write(out, &rep);
        }
        parent_wait(in);
        return r < 0 ? r : rep.status;
}

static int sender(const job_t *job, int in, int out)
{
        _cleanup_free_ double *lat = NULL;
        report_t rep = {0};
        /* The C form of ipcNotify(to, id, JSObject): the application holds a value. */
        json_t *param = json_loads(PARAM, 0, NULL);
        int r;

        if (!param)
                return -ENOMEM;
        tally_init(0);
        vfiipc_set_app_id(TX_ID);
        /* Also connects, so no measurement includes setting up the connection. */
        if (vfiipc_register(PONG_ID, on_pong, NULL, 0, NULL) != VFIIPC_OK)
                rep.status = -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || rep.status < 0 || parent_wait(in) < 0) {
                json_decref(param);
                return -ECANCELED;
        }

        if (job->mode == MODE_THROUGHPUT) {
                rep.t_ns = now_ns();
                for (; rep.count < bench_opt.count; rep.count++)
                        if (vfiipc_notify(RX_ID, PING_ID, param, 0, NULL) != VFIIPC_OK) {
                                rep.status = -EIO;
                                break;
                        }
        } else {
                lat = calloc(bench_opt.rounds, sizeof(*lat));
                if (!lat)
                        rep.status = -ENOMEM;
                for (unsigned i = 0; lat && i < bench_opt.warmup + bench_opt.rounds; i++) {
                        int64_t t0 = now_ns();
                        if (vfiipc_notify(RX_ID, PING_ID, param, 0, NULL) != VFIIPC_OK) {
                                rep.status = -EIO;
                                break;
                        }
                        if (tally_wait(i + 1, t0 + ROUND_TIMEOUT_MS * NS_PER_MS) < i + 1) {
                                rep.status = -ETIMEDOUT;
                                break;
                        }
                        if (i >= bench_opt.warmup)
                                lat[i - bench_opt.warmup] = (double)(now_ns() - t0) / 1e3;
                        rep.count = i + 1;
                }
                if (rep.status == 0)
                        latencies_summarise(lat, bench_opt.rounds, &rep);
        }
        r = report_write(out, &rep);
        parent_wait(in); /* exiting now could lose notifications still queued for the bus */
        json_decref(param);
        return r < 0 ? r : rep.status;
}

int side_vfiipc_measure(bench_mode_t mode, sample_t *ret)
{
        job_t job = {.mode = mode};
        party_t rx = {0}, tx = {0};
        report_t rep;
        int r, k;

        r = party_start(&rx, receiver, &job);
        if (r >= 0)
                r = report_read(rx.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0)
                r = party_start(&tx, sender, &job);
        if (r >= 0)
                r = report_read(tx.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0)
                r = party_go(&tx);
        if (r >= 0)
                r = party_collect(mode, &rx, &tx, ret);
        else
                fprintf(stderr, "vfiipc-bench: vfiipc %s: set-up failed: %s\n", mode_name(mode),
                        strerror(-r));
        k = party_stop(&tx, 0);
        r = r < 0 ? r : k;
        k = party_stop(&rx, 0);
        return r < 0 ? r : k;
}
