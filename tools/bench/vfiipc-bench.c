/* tools/bench/vfiipc-bench.c — vfiipc against raw libdbus, in one run, on one private bus.
 *
 * Starts one notifysvc (its own dbus-daemon, or dbus-broker: bus-broker.c, in a temp dir) and
 * measures these scenarios, each next to its raw-libdbus reference through the same bus,
 * interleaved, --repeat times, the side that goes first alternating from round to round
 * (design.md "Tests and measurement"; issue #7):
 *   (a) unicast throughput, one sender process → one receiver process, --count notifications
 *       of a ~100-byte JSON object, from the first send to the last receipt; reference: a raw
 *       relay process doing the broker's two bus hops (side-raw.c ROUTE_RELAY); floor: a
 *       direct unicast signal, no relay (ROUTE_DIRECT);
 *   (b) echo round trip, --rounds after --warmup, p50 and p99; same reference and floor;
 *   (c) broadcast "*" to BROADCAST_RECEIVERS receivers, deliveries/s; reference: one signal
 *       without destination that the bus copies to the receivers' arg0 match rules;
 *   (d) (a) while OTHER_PROCESSES other clients hold OTHER_IDS registrations each; compared
 *       with (a), and with the raw relay measured with the same processes present;
 *   (e) FAN_IN_SENDERS sender processes → one receiver, total throughput; reference: as many
 *       raw senders through the relay;
 *   (f) the RSS a client process gains from the library (rss.c), next to a raw libdbus
 *       client, and the VmRSS of the idle server (notifysvc; its bus reported separately).
 * Prints every run and the medians with their ratios and the goals.
 *
 * A measurement, not a test: the exit status says whether it ran, not whether goals were met. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "bench.h"
#include "bus/protocol.h"
#include "config.h"
#include "core/util.h"
#include "vfiipc/notify.h"

struct bench_options bench_opt = {
    .count = 50000,
    .rounds = 5000,
    .warmup = 200,
    .repeat = 4,
    .timeout_s = 120,
    .notifysvc = "build/tools/notifysvc",
    .scenarios = "abcdef",
    .bus_daemon = BUS_DBUS_DAEMON,
    .vfiipc = true,
    .raw = true,
};

/* Before reading an idle server's RSS: longer than the server waits before it gives memory back
 * (server.c TRIM_IDLE_MS, 1 s after the last message). */
#define IDLE_SETTLE_MS 2000

/* ---- the server ---- */

typedef struct server {
        char *dir;
        pid_t pid;        /* notifysvc, or (raw only on dbus-broker) the bus launcher itself */
        bool with_broker; /* notifysvc runs */
} server_t;

/* 1: the bus answers and the broker name has an owner; 0: the bus answers; -1: no bus. */
static int bus_state(void)
{
        DBusConnection *c;
        DBusError err;
        int state = -1;

        dbus_error_init(&err);
        c = dbus_connection_open_private(bench_opt.address, &err);
        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (dbus_bus_register(c, &err))
                        state = dbus_bus_name_has_owner(c, VFIIPC_BROKER_NAME, &err) ? 1 : 0;
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        dbus_error_free(&err);
        return state;
}

static void server_exec(const server_t *s, const char *self)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        int err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (bench_opt.bus_daemon == BUS_DBUS_BROKER) {
                int r = broker_namespace_enter(s->with_broker ? self : NULL);
                if (r < 0) {
                        dprintf(err,
                                "vfiipc-bench: dbus-broker: cannot set up a private mount "
                                "namespace (needs root): %s\n",
                                strerror(-r));
                        _exit(126);
                }
                setenv(BENCH_ENV_SHIM, "1", 1);
                if (bench_opt.verbose)
                        setenv("VFIIPC_BENCH_VERBOSE", "1", 1);
        }
        if (null >= 0) {
                dup2(null, STDOUT_FILENO);
                if (!bench_opt.verbose)
                        dup2(null, STDERR_FILENO);
        }
        if (!s->with_broker) {
                /* Only the bus: the substitute itself, as notifysvc would have started it. */
                g_autofree char *a_config =
                    g_strdup_printf("--config-file=%s", bench_opt.bus_config);
                g_autofree char *a_address = g_strdup_printf("--address=%s", bench_opt.address);
                g_autofree char *a_print = g_strdup_printf("--print-address=%d", null);
                char name[] = "dbus-daemon";
                char *argv[] = {name, a_config, a_address, a_print, NULL};

                fcntl(null, F_SETFD, 0);
                _exit(broker_shim_main(4, argv));
        }
        execl(bench_opt.notifysvc, "notifysvc", (char *)NULL);
        dprintf(err, "vfiipc-bench: cannot run %s: %s\n", bench_opt.notifysvc, strerror(errno));
        _exit(127);
}

/* Fresh temp dir, VFIIPC_BUS_ADDRESS (inherited by every party), the bus configuration and a
 * running broker (or, for the raw side alone on dbus-broker, just the bus). */
static int server_start(server_t *s, char **self)
{
        GError *error = NULL;
        int64_t deadline;
        int status;

        s->dir = g_dir_make_tmp("vfiipc-bench-XXXXXX", &error);
        if (!s->dir) {
                fprintf(stderr, "vfiipc-bench: %s\n", error->message);
                g_error_free(error);
                return -EIO;
        }
        bench_opt.address = g_strdup_printf("unix:path=%s/bus", s->dir);
        setenv(VFIIPC_ENV_BUS_ADDRESS, bench_opt.address, 1);
        s->with_broker = bench_opt.vfiipc || bench_opt.bus_daemon == BUS_DBUS_DAEMON;
        if (bench_opt.bus_daemon == BUS_DBUS_BROKER) {
                char *config = NULL;
                int r;

                *self = realpath("/proc/self/exe", NULL);
                if (!*self)
                        return -errno;
                r = broker_config_write(bench_opt.bus_config ? bench_opt.bus_config
                                                             : VFIIPC_BUS_CONFIG_DEFAULT,
                                        s->dir, &config);
                if (r < 0)
                        return r;
                bench_opt.bus_config = config; /* freed at exit */
        }
        if (bench_opt.bus_config)
                setenv(VFIIPC_ENV_BUS_CONFIG, bench_opt.bus_config, 1);

        fflush(stdout);
        fflush(stderr);
        s->pid = fork();
        if (s->pid < 0)
                return -errno;
        if (s->pid == 0)
                server_exec(s, *self);

        deadline = now_ns() + READY_TIMEOUT_MS * NS_PER_MS;
        while (bus_state() < (s->with_broker ? 1 : 0)) {
                if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                        s->pid = 0;
                        fprintf(stderr,
                                "vfiipc-bench: the server exited (status %d) before serving\n",
                                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                        return -ECHILD;
                }
                if (now_ns() > deadline) {
                        fprintf(stderr, "vfiipc-bench: no server on %s within %d ms\n",
                                bench_opt.address, READY_TIMEOUT_MS);
                        return -ETIMEDOUT;
                }
                usleep(10000);
        }
        return 0;
}

static int server_stop(server_t *s)
{
        int r = 0;

        if (s->pid > 0)
                r = child_reap(s->pid, SIGTERM);
        s->pid = 0;
        if (s->dir) {
                g_autofree char *sock = g_strdup_printf("%s/bus", s->dir);
                g_autofree char *conf = g_strdup_printf("%s/bus-broker.conf", s->dir);
                unlink(sock); /* normally gone already: the server removes it */
                unlink(conf);
                rmdir(s->dir);
                g_clear_pointer(&s->dir, g_free);
        }
        return r;
}

/* ---- processes and their memory ---- */

static bool proc_stat(pid_t pid, char comm[static 32], pid_t *ppid)
{
        char path[64], buf[512], *close_paren;
        FILE *f;
        bool ok = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (fgets(buf, sizeof(buf), f) && (close_paren = strrchr(buf, ')'))) {
                char *open_paren = strchr(buf, '(');
                int ppid_i;
                if (open_paren && sscanf(close_paren + 2, "%*c %d", &ppid_i) == 1) {
                        snprintf(comm, 32, "%.*s", (int)(close_paren - open_paren - 1),
                                 open_paren + 1);
                        *ppid = ppid_i;
                        ok = true;
                }
        }
        fclose(f);
        return ok;
}

/* The bus's processes (descendants of the server, or the server itself when it is the bus),
 * but not the bench's journal drain: their VmRSS summed, their names in names. */
static uint64_t bus_rss_kib(const server_t *s, char *names, size_t size)
{
        pid_t todo[32];
        size_t n = 0, head = 0;
        uint64_t kib = 0;

        names[0] = '\0';
        if (s->pid <= 0)
                return 0;
        todo[n++] = s->pid;
        while (head < n) {
                pid_t parent = todo[head++];
                DIR *d = opendir("/proc");
                struct dirent *e;

                while (d && (e = readdir(d))) {
                        char comm[32];
                        pid_t pid = (pid_t)atoi(e->d_name), ppid;

                        if (pid <= 0 || !proc_stat(pid, comm, &ppid) || ppid != parent ||
                            n >= ELEMENTSOF(todo))
                                continue;
                        todo[n++] = pid;
                }
                if (d)
                        closedir(d);
        }
        for (size_t i = s->with_broker ? 1 : 0; i < n; i++) {
                char comm[32];
                pid_t ppid;

                if (!proc_stat(todo[i], comm, &ppid) || streq(comm, "bench-journal"))
                        continue;
                kib += proc_status_kib(todo[i], "VmRSS");
                snprintf(names + strlen(names), size - strlen(names), "%s%s", *names ? " + " : "",
                         comm);
        }
        return kib;
}

/* ---- the results ---- */

enum series_id {
        A_LIB,
        A_RAW,
        A_FLOOR,
        B50_LIB,
        B50_RAW,
        B50_FLOOR,
        B99_LIB,
        B99_RAW,
        B99_FLOOR,
        C_LIB,
        C_RAW,
        D_LIB,
        D_RAW,
        D_SETUP,
        E_LIB,
        E_RAW,
        F_LIB,
        F_RAW,
        F_LIB_BASE,
        F_RAW_BASE,
        SRV_START,
        SRV_LOADED,
        SRV_END,
        ANON_START,
        ANON_LOADED,
        ANON_END,
        BUS_START,
        BUS_LOADED,
        BUS_END,
        SERIES_MAX
};

static struct series {
        const char *name;
        int prec;
        double v[64];
        size_t n;
} series[SERIES_MAX] = {
    [A_LIB] = {"(a) vfiipc unicast [msgs/s]", 0},
    [A_RAW] = {"(a) raw relay [msgs/s]", 0},
    [A_FLOOR] = {"(a) direct signal [msgs/s]", 0},
    [B50_LIB] = {"(b) vfiipc p50 [us]", 1},
    [B50_RAW] = {"(b) raw relay p50 [us]", 1},
    [B50_FLOOR] = {"(b) direct p50 [us]", 1},
    [B99_LIB] = {"(b) vfiipc p99 [us]", 1},
    [B99_RAW] = {"(b) raw relay p99 [us]", 1},
    [B99_FLOOR] = {"(b) direct p99 [us]", 1},
    [C_LIB] = {"(c) vfiipc broadcast [dlv/s]", 0},
    [C_RAW] = {"(c) raw arg0 signal [dlv/s]", 0},
    [D_LIB] = {"(d) vfiipc unicast [msgs/s]", 0},
    [D_RAW] = {"(d) raw relay [msgs/s]", 0},
    [D_SETUP] = {"(d) registering [regs/s]", 0},
    [E_LIB] = {"(e) vfiipc fan-in [msgs/s]", 0},
    [E_RAW] = {"(e) raw relay fan-in [msgs/s]", 0},
    [F_LIB] = {"(f) vfiipc client +RSS [KiB]", 0},
    [F_RAW] = {"(f) raw client +RSS [KiB]", 0},
    [F_LIB_BASE] = {"(f) vfiipc client before [KiB]", 0},
    [F_RAW_BASE] = {"(f) raw client before [KiB]", 0},
    [SRV_START] = {"notifysvc idle, fresh [KiB]", 0},
    [SRV_LOADED] = {"notifysvc during (d) [KiB]", 0},
    [SRV_END] = {"notifysvc idle, after [KiB]", 0},
    [ANON_START] = {"notifysvc RssAnon fresh [KiB]", 0},
    [ANON_LOADED] = {"notifysvc RssAnon (d) [KiB]", 0},
    [ANON_END] = {"notifysvc RssAnon after [KiB]", 0},
    [BUS_START] = {"bus idle, fresh [KiB]", 0},
    [BUS_LOADED] = {"bus during (d) [KiB]", 0},
    [BUS_END] = {"bus idle, after [KiB]", 0},
};

static unsigned failed;
static bool no_floor;

static void series_add(enum series_id id, double x)
{
        struct series *s = &series[id];

        if (s->n < ELEMENTSOF(s->v))
                s->v[s->n++] = x;
}

static bool series_median(enum series_id id, double *ret)
{
        double copy[64];
        struct series *s = &series[id];

        memcpy(copy, s->v, sizeof(copy));
        return median(copy, s->n, ret);
}

static void runs_print(void)
{
        printf("\nruns, in order:\n");
        for (int i = 0; i < SERIES_MAX; i++) {
                if (series[i].n == 0)
                        continue;
                printf("  %-32s", series[i].name);
                for (size_t k = 0; k < series[i].n; k++)
                        printf(" %10.*f", series[i].prec, series[i].v[k]);
                printf("\n");
        }
}

typedef enum goal_kind { GOAL_NONE, GOAL_RATIO_MIN, GOAL_RATIO_MAX, GOAL_VALUE_MAX } goal_kind_t;

/* One line: x against y (y < 0: none) and the goal on the ratio or on x. */
static void row_print(const char *what, enum series_id x_id, int y_id, goal_kind_t kind,
                      double goal, const char *ref)
{
        char a[32] = "n/a", b[32] = "", ratio[32] = "", goal_s[32] = "", met[8] = "";
        bool have_x, have_y = false;
        double x = 0, y = 0;
        int prec = series[x_id].prec;

        have_x = series_median(x_id, &x);
        if (y_id >= 0) {
                have_y = series_median((enum series_id)y_id, &y);
                snprintf(b, sizeof(b), "n/a");
        }
        if (have_x)
                snprintf(a, sizeof(a), "%.*f", prec, x);
        if (have_y)
                snprintf(b, sizeof(b), "%.*f", prec, y);
        if (have_x && have_y && y > 0)
                snprintf(ratio, sizeof(ratio), "%.2f", x / y);
        switch (kind) {
        case GOAL_RATIO_MIN:
                snprintf(goal_s, sizeof(goal_s), ">= %.1f", goal);
                if (*ratio)
                        snprintf(met, sizeof(met), "%s", x / y >= goal ? "yes" : "NO");
                break;
        case GOAL_RATIO_MAX:
                snprintf(goal_s, sizeof(goal_s), "<= %.1f", goal);
                if (*ratio)
                        snprintf(met, sizeof(met), "%s", x / y <= goal ? "yes" : "NO");
                break;
        case GOAL_VALUE_MAX:
                snprintf(goal_s, sizeof(goal_s), "<= %.0f", goal);
                if (have_x)
                        snprintf(met, sizeof(met), "%s", x <= goal ? "yes" : "NO");
                break;
        case GOAL_NONE:
                break;
        }
        printf("%-40s %11s %11s %6s %8s %4s  %s\n", what, a, b, ratio, goal_s, met, ref);
}

static void table_print(const char *bus_names)
{
        char what[64];

        printf("\n%-40s %11s %11s %6s %8s %4s  %s\n", "median of runs", "vfiipc", "reference",
               "ratio", "goal", "met", "reference is");
        row_print("(a) unicast 1->1 [notifications/s]", A_LIB, A_RAW, GOAL_RATIO_MIN, 1.0,
                  "raw relay (broker's two hops)");
        row_print("    floor", A_LIB, A_FLOOR, GOAL_NONE, 0, "direct unicast signal, no broker");
        row_print("(b) echo round trip p50 [us]", B50_LIB, B50_RAW, GOAL_RATIO_MAX, 1.2,
                  "raw relay ping-pong");
        row_print("    echo round trip p99 [us]", B99_LIB, B99_RAW, GOAL_NONE, 0,
                  "raw relay ping-pong");
        row_print("    floor p50 [us]", B50_LIB, B50_FLOOR, GOAL_NONE, 0,
                  "direct signal ping-pong, no broker");
        row_print("    floor p99 [us]", B99_LIB, B99_FLOOR, GOAL_NONE, 0,
                  "direct signal ping-pong, no broker");
        snprintf(what, sizeof(what), "(c) broadcast 1->%d [deliveries/s]", BROADCAST_RECEIVERS);
        row_print(what, C_LIB, C_RAW, GOAL_RATIO_MIN, 0.8, "raw signal, arg0 match rules");
        snprintf(what, sizeof(what), "(d) (a) + %d regs on %d IDs [n/s]",
                 OTHER_PROCESSES * OTHER_IDS, OTHER_IDS);
        row_print(what, D_LIB, A_LIB, GOAL_RATIO_MIN, 0.9, "(a) vfiipc, no other registrations");
        row_print("    same", D_LIB, D_RAW, GOAL_NONE, 0, "raw relay, same processes present");
        row_print("    raw relay with them", D_RAW, A_RAW, GOAL_NONE, 0, "(a) raw relay");
        snprintf(what, sizeof(what), "(e) fan-in %d->1 [notifications/s]", FAN_IN_SENDERS);
        row_print(what, E_LIB, E_RAW, GOAL_NONE, 0, "raw relay, as many senders");
        row_print("(f) client, added VmRSS [KiB]", F_LIB, F_RAW, GOAL_VALUE_MAX, 2048,
                  "raw libdbus client (connect, match, signal)");
        row_print("    client VmRSS before [KiB]", F_LIB_BASE, F_RAW_BASE, GOAL_NONE, 0,
                  "the same process before libdbus");
        row_print("    notifysvc VmRSS, idle fresh [KiB]", SRV_START, -1, GOAL_VALUE_MAX, 5119, "");
        row_print("    notifysvc VmRSS, during (d) [KiB]", SRV_LOADED, -1, GOAL_NONE, 0,
                  "10 000 registrations held");
        row_print("    notifysvc VmRSS, idle after [KiB]", SRV_END, -1, GOAL_VALUE_MAX, 5119,
                  "after every scenario");
        row_print("    notifysvc RssAnon, idle fresh [KiB]", ANON_START, -1, GOAL_NONE, 0,
                  "its own memory; the rest is shared libraries");
        row_print("    notifysvc RssAnon, during (d) [KiB]", ANON_LOADED, -1, GOAL_NONE, 0, "");
        row_print("    notifysvc RssAnon, idle after [KiB]", ANON_END, -1, GOAL_NONE, 0, "");
        snprintf(what, sizeof(what), "    bus VmRSS, idle fresh [KiB]");
        row_print(what, BUS_START, -1, GOAL_NONE, 0, bus_names);
        row_print("    bus VmRSS, during (d) [KiB]", BUS_LOADED, -1, GOAL_NONE, 0, bus_names);
        row_print("    bus VmRSS, idle after [KiB]", BUS_END, -1, GOAL_NONE, 0, bus_names);
}

/* ---- the measurements ---- */

static bool scenario(char letter)
{
        return strchr(bench_opt.scenarios, letter) != NULL;
}

/* One measurement of one side; for echo, metric is p50 and metric + 3 (the p99 series). */
static void measure(bool vfiipc, const shape_t *shape, enum series_id metric)
{
        sample_t s = {0};
        int r;

        if (!(vfiipc ? bench_opt.vfiipc : bench_opt.raw))
                return;
        r = vfiipc ? side_vfiipc_measure(shape, &s) : side_raw_measure(shape, &s);
        if (r < 0) {
                failed++;
                return;
        }
        if (shape->mode == MODE_ECHO) {
                series_add(metric, s.p50_us);
                series_add((enum series_id)(metric + 3), s.p99_us);
        } else
                series_add(metric, s.rate);
}

/* Both sides of one comparison; which goes first alternates from round to round, so whatever
 * the first of a pair gains or loses (a broker that just trimmed, a cache the other side
 * warmed) falls on each side in half the rounds. */
static void measure_pair(unsigned round, const shape_t *shape, enum series_id lib,
                         enum series_id raw)
{
        bool raw_first = round % 2 == 1;

        measure(!raw_first, shape, raw_first ? raw : lib);
        measure(raw_first, shape, raw_first ? lib : raw);
}

static void measure_rss(bool vfiipc)
{
        sample_t s = {0};

        if (!(vfiipc ? bench_opt.vfiipc : bench_opt.raw))
                return;
        if (rss_probe_measure(vfiipc, &s) < 0) {
                failed++;
                return;
        }
        series_add(vfiipc ? F_LIB : F_RAW, s.added_kib);
        series_add(vfiipc ? F_LIB_BASE : F_RAW_BASE, s.before_kib);
}

/* srv + 3 is the same moment's RssAnon series. */
static void server_rss(const server_t *s, enum series_id srv, enum series_id bus, char *names,
                       size_t size)
{
        if (s->with_broker) {
                series_add(srv, (double)proc_status_kib(s->pid, "VmRSS"));
                series_add((enum series_id)(srv + 3), (double)proc_status_kib(s->pid, "RssAnon"));
        }
        series_add(bus, (double)bus_rss_kib(s, names, size));
}

static void round_run(unsigned round, const server_t *server, char *bus_names, size_t size)
{
        const unsigned c = bench_opt.count;
        shape_t a = {.mode = MODE_THROUGHPUT, .route = ROUTE_RELAY, .senders = 1, .receivers = 1};
        shape_t b = {.mode = MODE_ECHO, .route = ROUTE_RELAY, .senders = 1, .receivers = 1};
        shape_t bc = {.mode = MODE_BROADCAST,
                      .route = ROUTE_MATCH,
                      .senders = 1,
                      .receivers = BROADCAST_RECEIVERS};
        shape_t e = {.mode = MODE_THROUGHPUT,
                     .route = ROUTE_RELAY,
                     .senders = FAN_IN_SENDERS,
                     .receivers = 1};
        shape_t floor_a, floor_b;

        a.send = a.want = c;
        bc.send = bc.want = MAX(c / BROADCAST_RECEIVERS, 1u);
        e.send = MAX(c / FAN_IN_SENDERS, 1u);
        e.want = e.send * FAN_IN_SENDERS;
        floor_a = a;
        floor_b = b;
        floor_a.route = floor_b.route = ROUTE_DIRECT;

        /* Interleaved, so drift on a busy machine hits both sides alike; (d) right after (a),
         * which it is compared with. */
        if (scenario('a')) {
                measure_pair(round, &a, A_LIB, A_RAW);
                if (!no_floor)
                        measure(false, &floor_a, A_FLOOR);
        }
        /* The other processes are library clients: they need the broker. */
        if (scenario('d') && server->with_broker) {
                party_t others[OTHER_PROCESSES] = {0};
                int64_t t0 = now_ns();

                if (others_start(others) < 0)
                        failed++;
                else {
                        series_add(D_SETUP,
                                   OTHER_PROCESSES * OTHER_IDS / ((double)(now_ns() - t0) / 1e9));
                        measure_pair(round, &a, D_LIB, D_RAW);
                        server_rss(server, SRV_LOADED, BUS_LOADED, bus_names, size);
                        others_stop(others);
                }
        }
        if (scenario('b')) {
                measure_pair(round, &b, B50_LIB, B50_RAW);
                if (!no_floor)
                        measure(false, &floor_b, B50_FLOOR);
        }
        if (scenario('c'))
                measure_pair(round, &bc, C_LIB, C_RAW);
        if (scenario('e'))
                measure_pair(round, &e, E_LIB, E_RAW);
        if (scenario('f')) {
                measure_rss(true);
                measure_rss(false);
        }
}

/* ---- the report's head ---- */

static void version_of(const char *cmd, char *buf, size_t size)
{
        FILE *p = popen(cmd, "re");

        snprintf(buf, size, "unknown");
        if (p && fgets(buf, (int)size, p))
                buf[strcspn(buf, "\n")] = '\0';
        if (p)
                pclose(p);
}

static void machine_print(void)
{
        char line[512], model[256] = "unknown", bus[128];
        FILE *f = fopen("/proc/cpuinfo", "re");
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int major, minor, micro;
        struct utsname u;
        cpu_set_t set;

        if (sched_getaffinity(0, sizeof(set), &set) == 0)
                ncpu = CPU_COUNT(&set); /* what nproc(1) prints */
        while (f && fgets(line, sizeof(line), f)) {
                char *v = strchr(line, ':');
                /* x86 has "model name"; many ARM kernels only "Hardware" or "Model". */
                if (!v || !(g_str_has_prefix(line, "model name") ||
                            g_str_has_prefix(line, "Hardware") || g_str_has_prefix(line, "Model")))
                        continue;
                snprintf(model, sizeof(model), "%s", g_strstrip(v + 1));
                if (g_str_has_prefix(line, "model name"))
                        break;
        }
        if (f)
                fclose(f);
        uname(&u);
        dbus_get_version(&major, &minor, &micro);
        if (bench_opt.bus_daemon == BUS_DBUS_BROKER)
                version_of("dbus-broker --version 2>/dev/null", bus, sizeof(bus));
        else
                version_of(VFIIPC_DBUS_DAEMON " --version 2>/dev/null", bus, sizeof(bus));
        printf("machine: nproc %ld, %s, %s %s %s; libdbus %d.%d.%d; vfiipc %s\nbus: %s\n", ncpu,
               model, u.sysname, u.release, u.machine, major, minor, micro, vfiipc_version(), bus);
}

/* ---- main ---- */

static void usage(FILE *f)
{
        fprintf(
            f,
            "Usage: vfiipc-bench [OPTION]...\n"
            "Measures vfiipc notifications against raw libdbus references on one private bus:\n"
            "(a) unicast, (b) echo, (c) broadcast to %d, (d) unicast among %d other\n"
            "registrations, (e) %d senders to 1, (f) memory.\n\n"
            "  --notifysvc PATH   server program (default %s)\n"
            "  --bus-config PATH  bus config (default $VFIIPC_BUS_CONFIG, else\n"
            "                     bus-policy/vfiipc-bus.conf when it exists)\n"
            "  --bus-daemon NAME  dbus-daemon (default: as notifysvc starts it) or dbus-broker\n"
            "                     (dbus-broker-launch in its place; needs root, see "
            "BENCHMARKS.md)\n"
            "  --scenarios LIST   letters of the scenarios to run (default %s)\n"
            "  --count N          notifications per throughput run (default %u); broadcast\n"
            "                     sends N/%d, fan-in N/%d per sender\n"
            "  --rounds N         round trips per run (default %u)\n"
            "  --warmup N         unmeasured round trips first (default %u)\n"
            "  --repeat N         runs of each measurement, medians reported (default %u)\n"
            "  --quick            --count 10000 --rounds 1000 --warmup 100 --repeat 1\n"
            "  --timeout S        give up on a throughput run after S seconds (default %u)\n"
            "  --only vfiipc|raw  measure one side only (for profiling)\n"
            "  --no-floor         skip the direct-signal floor of (a) and (b) (for profiling)\n"
            "  --verbose          show the server's and the bus's log\n",
            BROADCAST_RECEIVERS, OTHER_PROCESSES * OTHER_IDS, FAN_IN_SENDERS, bench_opt.notifysvc,
            bench_opt.scenarios, bench_opt.count, BROADCAST_RECEIVERS, FAN_IN_SENDERS,
            bench_opt.rounds, bench_opt.warmup, bench_opt.repeat, bench_opt.timeout_s);
}

static bool parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret)
{
        unsigned long v;
        char *end;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || *s == '-' || v < min || v > max)
                return false;
        *ret = (unsigned)v;
        return true;
}

static int parse_args(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"notifysvc", required_argument, NULL, 'n'},
            {"bus-config", required_argument, NULL, 'b'},
            {"bus-daemon", required_argument, NULL, 'B'},
            {"scenarios", required_argument, NULL, 's'},
            {"count", required_argument, NULL, 'c'},
            {"rounds", required_argument, NULL, 'r'},
            {"warmup", required_argument, NULL, 'w'},
            {"repeat", required_argument, NULL, 'R'},
            {"quick", no_argument, NULL, 'q'},
            {"timeout", required_argument, NULL, 't'},
            {"only", required_argument, NULL, 'o'},
            {"no-floor", no_argument, NULL, 'F'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const unsigned big = INT_MAX / 1000;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                bool ok = true;

                switch (c) {
                case 'n':
                        bench_opt.notifysvc = optarg;
                        break;
                case 'b':
                        bench_opt.bus_config = optarg;
                        break;
                case 'B':
                        if (streq(optarg, "dbus-daemon"))
                                bench_opt.bus_daemon = BUS_DBUS_DAEMON;
                        else if (streq(optarg, "dbus-broker"))
                                bench_opt.bus_daemon = BUS_DBUS_BROKER;
                        else
                                ok = false;
                        break;
                case 's':
                        bench_opt.scenarios = optarg;
                        ok = *optarg && strspn(optarg, "abcdef") == strlen(optarg);
                        break;
                case 'c':
                        ok = parse_unsigned(optarg, 1, big, &bench_opt.count);
                        break;
                case 'r':
                        ok = parse_unsigned(optarg, 1, big, &bench_opt.rounds);
                        break;
                case 'w':
                        ok = parse_unsigned(optarg, 0, big, &bench_opt.warmup);
                        break;
                case 'R':
                        ok = parse_unsigned(optarg, 1, 64, &bench_opt.repeat);
                        break;
                case 'q':
                        bench_opt.count = 10000;
                        bench_opt.rounds = 1000;
                        bench_opt.warmup = 100;
                        bench_opt.repeat = 1;
                        break;
                case 't':
                        ok = parse_unsigned(optarg, 1, 3600, &bench_opt.timeout_s);
                        break;
                case 'o':
                        bench_opt.vfiipc = streq(optarg, "vfiipc");
                        bench_opt.raw = streq(optarg, "raw");
                        ok = bench_opt.vfiipc || bench_opt.raw;
                        break;
                case 'F':
                        no_floor = true;
                        break;
                case 'v':
                        bench_opt.verbose = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
                if (!ok) {
                        fprintf(stderr, "vfiipc-bench: invalid argument '%s'\n", optarg);
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return -EINVAL;
        }
        if (!bench_opt.bus_config)
                bench_opt.bus_config = getenv(VFIIPC_ENV_BUS_CONFIG);
        if (!bench_opt.bus_config && access("bus-policy/vfiipc-bus.conf", R_OK) == 0)
                bench_opt.bus_config = "bus-policy/vfiipc-bus.conf";
        return 0;
}

int main(int argc, char **argv)
{
        _cleanup_free_ char *config = NULL, *self = NULL;
        char bus_names[128] = "";
        server_t server = {0};
        int64_t t0 = now_ns();

        /* This program in its other roles: the bus substitute, an RSS probe. */
        if (!isempty(getenv(BENCH_ENV_SHIM)))
                return broker_shim_main(argc, argv);
        if (argc > 1 && streq(argv[1], "--rss-probe"))
                return rss_probe_main(argc, argv);

        if (parse_args(argc, argv) < 0)
                return 2;
        if (bench_opt.bus_config && !(config = realpath(bench_opt.bus_config, NULL))) {
                fprintf(stderr, "vfiipc-bench: %s: %s\n", bench_opt.bus_config, strerror(errno));
                return 1;
        }
        bench_opt.bus_config = config;
        signal(SIGPIPE, SIG_IGN); /* a dead party is an error to report, not our end */

        machine_print();
        printf("unicast: %u notifications of a %zu-byte JSON object; round trip: %u rounds "
               "after %u warm-up; broadcast: %u to %d receivers; fan-in: %u from each of %d "
               "senders; %u run(s) of each\n",
               bench_opt.count, strlen(PARAM), bench_opt.rounds, bench_opt.warmup,
               MAX(bench_opt.count / BROADCAST_RECEIVERS, 1u), BROADCAST_RECEIVERS,
               MAX(bench_opt.count / FAN_IN_SENDERS, 1u), FAN_IN_SENDERS, bench_opt.repeat);
        if (server_start(&server, &self) < 0) {
                server_stop(&server);
                return 1;
        }
        if (bench_opt.bus_daemon == BUS_DBUS_BROKER && !server.with_broker)
                printf("server: none (raw side only), bus on %s\n", bench_opt.address);
        else
                printf("server: %s on %s\n", bench_opt.notifysvc, bench_opt.address);
        fflush(stdout);

        usleep(IDLE_SETTLE_MS * 1000);
        server_rss(&server, SRV_START, BUS_START, bus_names, sizeof(bus_names));
        for (unsigned i = 0; i < bench_opt.repeat; i++)
                round_run(i, &server, bus_names, sizeof(bus_names));
        usleep(IDLE_SETTLE_MS * 1000);
        server_rss(&server, SRV_END, BUS_END, bus_names, sizeof(bus_names));

        if (server_stop(&server) < 0) {
                fprintf(stderr, "vfiipc-bench: the server did not stop cleanly\n");
                failed++;
        }
        runs_print();
        table_print(bus_names);
        printf("\n(%.0f s)\n", (double)(now_ns() - t0) / 1e9);
        if (bench_opt.bus_daemon == BUS_DBUS_BROKER)
                free((char *)bench_opt.bus_config);
        g_free(bench_opt.address);
        if (failed)
                fprintf(stderr, "vfiipc-bench: %u measurement(s) failed\n", failed);
        return failed ? 1 : 0;
}
