/* tools/bench/rss.c — (f): what a client process's memory grows by when it uses the library,
 * next to a process that does the same with plain libdbus.
 *
 * The probe is this program re-executed (--rss-probe), so it starts as a fresh process that
 * has touched neither the library nor libdbus, as an application does; a forked party would
 * start with the parent's pages. It reads VmRSS, then: vfiipc — registers one notification ID
 * and notifies itself once (waiting for the callback); raw — connects, adds one match rule and
 * sends itself one signal (waiting for it). Then it idles for a second (the library's callback
 * thread exits after half a second without work) and reads VmRSS again. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bus/protocol.h"
#include "core/util.h"
#include "vfiipc/notify.h"

#define PROBE_APP_ID "bench-rss"
#define PROBE_IDLE_MS 1000

uint64_t proc_status_kib(pid_t pid, const char *key)
{
        char path[64], line[256];
        size_t klen = strlen(key);
        uint64_t v = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
                        v = strtoull(line + klen + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = timespec_of((int64_t)ms * NS_PER_MS);

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- the probe ---- */

static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t got_cond = PTHREAD_COND_INITIALIZER;
static bool got;

static void on_probe(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        pthread_mutex_lock(&got_lock);
        got = true;
        pthread_cond_signal(&got_cond);
        pthread_mutex_unlock(&got_lock);
}

static int probe_vfiipc(void)
{
        struct timespec deadline;
        json_t *param;
        int r = 0;

        vfiipc_set_app_id(PROBE_APP_ID);
        if (vfiipc_register(PING_ID, on_probe, NULL, 0, NULL) != VFIIPC_OK)
                return -ENOTCONN;
        param = json_loads(PARAM, 0, NULL);
        if (!param)
                return -ENOMEM;
        if (vfiipc_notify(PROBE_APP_ID, PING_ID, param, 0, NULL) != VFIIPC_OK)
                r = -EIO;
        json_decref(param);
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += ROUND_TIMEOUT_MS / 1000;
        pthread_mutex_lock(&got_lock);
        while (r == 0 && !got)
                if (pthread_cond_timedwait(&got_cond, &got_lock, &deadline) != 0)
                        r = -ETIMEDOUT;
        pthread_mutex_unlock(&got_lock);
        return r;
}

static int probe_raw(void)
{
        const char *address = getenv(VFIIPC_ENV_BUS_ADDRESS), *from = PROBE_APP_ID;
        const char *id = PING_ID, *json = PARAM, *to = PROBE_APP_ID;
        int64_t deadline = now_ns() + ROUND_TIMEOUT_MS * NS_PER_MS;
        DBusConnection *c;
        DBusMessage *m;
        DBusError err;
        dbus_uint32_t flags = 0;
        bool ok;

        dbus_error_init(&err);
        c = address ? dbus_connection_open_private(address, &err) : NULL;
        if (!c) {
                dbus_error_free(&err);
                return -ENOTCONN;
        }
        dbus_connection_set_exit_on_disconnect(c, FALSE);
        ok = dbus_bus_register(c, &err);
        if (ok)
                dbus_bus_add_match(c, "type='signal',interface='" BENCH_INTERFACE "'", &err);
        ok = ok && !dbus_error_is_set(&err);
        dbus_error_free(&err);
        m = dbus_message_new_signal(BENCH_PATH, BENCH_INTERFACE, BENCH_BROADCAST);
        ok = ok && m && dbus_message_set_destination(m, dbus_bus_get_unique_name(c)) &&
             dbus_message_append_args(m, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &from,
                                      DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &json,
                                      DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID) &&
             dbus_connection_send(c, m, NULL);
        if (m)
                dbus_message_unref(m);
        for (bool seen = false; ok && !seen;) {
                int64_t left_ms = (deadline - now_ns()) / NS_PER_MS;
                DBusMessage *in;

                if (left_ms <= 0 || !dbus_connection_read_write(c, (int)left_ms)) {
                        ok = false;
                        break;
                }
                while ((in = dbus_connection_pop_message(c))) {
                        seen = seen || dbus_message_is_signal(in, BENCH_INTERFACE, BENCH_BROADCAST);
                        dbus_message_unref(in);
                }
        }
        /* The connection stays open: an idle client holds one. */
        return ok ? 0 : -EIO;
}

int rss_probe_main(int argc, char **argv)
{
        report_t rep = {0};
        int in, out, r;

        if (argc != 5)
                return 2;
        in = atoi(argv[3]);
        out = atoi(argv[4]);
        rep.rss_kib[0] = proc_status_kib(getpid(), "VmRSS");
        rep.status = streq(argv[2], "vfiipc") ? probe_vfiipc() : probe_raw();
        sleep_ms(PROBE_IDLE_MS);
        rep.rss_kib[1] = proc_status_kib(getpid(), "VmRSS");
        r = report_write(out, &rep);
        parent_wait(in);
        return r < 0 || rep.status < 0 ? 1 : 0;
}

/* ---- the parent's side ---- */

static int probe_exec(const job_t *job, int in, int out)
{
        char a_in[16], a_out[16];

        /* The pipes survive the exec; nothing else of ours needs to. */
        if (fcntl(in, F_SETFD, 0) < 0 || fcntl(out, F_SETFD, 0) < 0)
                return -errno;
        snprintf(a_in, sizeof(a_in), "%d", in);
        snprintf(a_out, sizeof(a_out), "%d", out);
        execl("/proc/self/exe", "vfiipc-bench", "--rss-probe", job->index ? "vfiipc" : "raw", a_in,
              a_out, (char *)NULL);
        fprintf(stderr, "vfiipc-bench: cannot re-execute /proc/self/exe: %s\n", strerror(errno));
        return -errno;
}

int rss_probe_measure(bool vfiipc, sample_t *ret)
{
        job_t job = {.index = vfiipc};
        party_t p = {0};
        report_t rep = {0};
        int r, k;

        r = party_start(&p, probe_exec, &job);
        if (r >= 0)
                r = report_read(p.from_child, &rep, READY_TIMEOUT_MS + PROBE_IDLE_MS);
        if (r < 0)
                fprintf(stderr, "vfiipc-bench: %s RSS probe failed: %s\n",
                        vfiipc ? "vfiipc" : "raw", strerror(-r));
        else {
                ret->before_kib = (double)rep.rss_kib[0];
                ret->added_kib = (double)rep.rss_kib[1] - (double)rep.rss_kib[0];
        }
        k = party_stop(&p, 0);
        return r < 0 ? r : k;
}
