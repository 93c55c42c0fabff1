/* tools/bench/side-vfiipc.c — the library's side: sender and receiver processes using
 * <vfiipc/notify.h> as applications do, through notifysvc's broker; and the other processes
 * of scenario (d), which only hold registrations. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

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
static _Atomic int64_t last_receipt_ns;

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
        int64_t t = now_ns();

        atomic_store(&last_receipt_ns, t);
        if (n == tally.want)
                tally_set(n, t);
}

/* Waits for want callbacks, but not past the deadline nor once nothing has arrived for
 * IDLE_STOP_MS: the broker's flow control may turn some unicasts into unicast errors (a
 * receiver it considers stalled), and the run then reports what arrived. */
static uint64_t count_wait(uint64_t want, int64_t deadline_ns, int64_t *ret_last_ns)
{
        int64_t progress_ns = now_ns();
        uint64_t prev = 0;

        for (;;) {
                int64_t t = now_ns();
                uint64_t n;

                if (tally_wait(want, t + 100 * NS_PER_MS < deadline_ns ? t + 100 * NS_PER_MS
                                                                       : deadline_ns) >= want) {
                        *ret_last_ns = tally.last_ns;
                        return want;
                }
                n = atomic_load(&counted);
                t = now_ns();
                if (n != prev) {
                        prev = n;
                        progress_ns = t;
                }
                if (t >= deadline_ns || t - progress_ns >= IDLE_STOP_MS * NS_PER_MS) {
                        *ret_last_ns = atomic_load(&last_receipt_ns);
                        return n;
                }
        }
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
        const shape_t *sh = &job->shape;
        char app_id[64];
        report_t rep = {0};
        int r;

        prctl(PR_SET_NAME, "vfiipc-rx"); /* for profiles; threads inherit it */
        tally_init(sh->want);
        app_id_of(app_id, sizeof(app_id), RX_ID, job->index);
        vfiipc_set_app_id(app_id);
        if (vfiipc_register(PING_ID, sh->mode == MODE_ECHO ? on_echo : on_count, NULL, 0, NULL) !=
            VFIIPC_OK)
                rep.status = -ENOTCONN;
        r = report_write(out, &rep); /* ready */
        if (r < 0 || rep.status < 0)
                return r < 0 ? r : rep.status;
        if (sh->mode != MODE_ECHO) {
                /* The senders start right after this; the parent's deadline is later. */
                int64_t deadline = now_ns() + bench_opt.timeout_s * 1000 * NS_PER_MS;
                rep.count = count_wait(sh->want, deadline, &rep.t_ns);
                rep.status = rep.count > 0 ? 0 : -ETIMEDOUT; /* crew_collect() counts losses */
                r = report_write(out, &rep);
        }
        parent_wait(in);
        return r < 0 ? r : rep.status;
}

static int sender(const job_t *job, int in, int out)
{
        const shape_t *sh = &job->shape;
        _cleanup_free_ double *lat = NULL;
        const char *to = sh->mode == MODE_BROADCAST ? "*" : RX_ID;
        char app_id[64];
        report_t rep = {0};
        /* The C form of ipcNotify(to, id, JSObject): the application holds a value. */
        json_t *param = json_loads(PARAM, 0, NULL);
        int r;

        if (!param)
                return -ENOMEM;
        prctl(PR_SET_NAME, "vfiipc-tx");
        tally_init(0);
        app_id_of(app_id, sizeof(app_id), TX_ID, job->index);
        vfiipc_set_app_id(app_id);
        /* Also connects, so no measurement includes setting up the connection. */
        if (vfiipc_register(PONG_ID, on_pong, NULL, 0, NULL) != VFIIPC_OK)
                rep.status = -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || rep.status < 0 || parent_wait(in) < 0) {
                json_decref(param);
                return -ECANCELED;
        }

        if (sh->mode != MODE_ECHO) {
                rep.t_ns = now_ns();
                for (; rep.count < sh->send; rep.count++)
                        if (vfiipc_notify(to, PING_ID, param, 0, NULL) != VFIIPC_OK) {
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

int side_vfiipc_measure(const shape_t *shape, sample_t *ret)
{
        crew_t crew = {.side = "vfiipc", .shape = *shape};
        job_t job = {.shape = *shape};
        int r, k;

        r = crew_start_receivers(&crew, receiver, &job);
        if (r >= 0)
                r = crew_start_senders(&crew, sender, &job);
        if (r >= 0)
                r = crew_go(&crew);
        if (r >= 0)
                r = crew_collect(&crew, ret);
        k = crew_stop(&crew, 0);
        return r < 0 ? r : k;
}

/* ---- the other processes of (d) ---- */

static void on_other(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
}

static int other(const job_t *job, int in, int out)
{
        char app_id[64], id[64];
        report_t rep = {0};
        int r;

        prctl(PR_SET_NAME, "vfiipc-other");
        snprintf(app_id, sizeof(app_id), "bench-other-%u", job->index);
        vfiipc_set_app_id(app_id);
        for (unsigned i = 0; i < OTHER_IDS && rep.status == 0; i++) {
                snprintf(id, sizeof(id), "bench-other-%u", i);
                if (vfiipc_register(id, on_other, NULL, 0, NULL) != VFIIPC_OK)
                        rep.status = -ENOTCONN;
                else
                        rep.count++;
        }
        r = report_write(out, &rep);
        if (r < 0 || rep.status < 0)
                return r < 0 ? r : rep.status;
        parent_wait(in);
        return 0;
}

int others_start(party_t others[OTHER_PROCESSES])
{
        job_t job = {0};
        int r = 0;

        /* All at once: they register in parallel, as applications starting together do. */
        for (unsigned i = 0; i < OTHER_PROCESSES && r >= 0; i++) {
                job.index = i;
                r = party_start(&others[i], other, &job);
        }
        for (unsigned i = 0; i < OTHER_PROCESSES && r >= 0; i++) {
                report_t rep;
                r = report_read(others[i].from_child, &rep, OTHERS_TIMEOUT_MS);
        }
        if (r < 0) {
                fprintf(stderr, "vfiipc-bench: (d) other processes: set-up failed: %s\n",
                        strerror(-r));
                others_stop(others);
        }
        return r;
}

void others_stop(party_t others[OTHER_PROCESSES])
{
        for (unsigned i = 0; i < OTHER_PROCESSES; i++)
                party_stop(&others[i], 0);
}
