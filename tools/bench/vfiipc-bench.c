/* tools/bench/vfiipc-bench.c — vfiipc against raw libdbus, in one run, on one private bus.
 *
 * Starts one notifysvc (its own dbus-daemon in a temp dir) and measures, interleaved:
 *   throughput  one sender process → one receiver process, --count unicast notifications,
 *               from the first send to the last receipt;
 *   round trip  the sender sends, the receiver answers, the sender waits for the answer;
 *               --rounds rounds after --warmup, p50 and p99;
 * once through the library (side-vfiipc.c: client → broker → client) and once through a raw
 * libdbus relay doing the same two bus hops with the same messages (side-raw.c: the floor of
 * this design). Each party is its own process with its own connection. Prints the median of
 * --repeat runs (design.md "Tests and measurement").
 *
 * A measurement, not a test: the exit status says whether it ran, not whether goals were met. */
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
#include "core/util.h"
#include "vfiipc/notify.h"

struct bench_options bench_opt = {
    .count = 50000,
    .rounds = 5000,
    .warmup = 200,
    .repeat = 3,
    .timeout_s = 120,
    .notifysvc = "build/tools/notifysvc",
    .vfiipc = true,
    .raw = true,
};

/* ---- the server ---- */

typedef struct server {
        char *dir;
        pid_t pid;
} server_t;

static bool broker_owned(void)
{
        DBusConnection *c;
        DBusError err;
        bool owned = false;

        dbus_error_init(&err);
        c = dbus_connection_open_private(bench_opt.address, &err);
        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (dbus_bus_register(c, &err))
                        owned = dbus_bus_name_has_owner(c, VFIIPC_BROKER_NAME, &err);
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        dbus_error_free(&err);
        return owned;
}

static void server_exec(void)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        int err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (null >= 0) {
                dup2(null, STDOUT_FILENO);
                if (!bench_opt.verbose)
                        dup2(null, STDERR_FILENO);
        }
        execl(bench_opt.notifysvc, "notifysvc", (char *)NULL);
        dprintf(err, "vfiipc-bench: cannot run %s: %s\n", bench_opt.notifysvc, strerror(errno));
        _exit(127);
}

/* Fresh temp dir, VFIIPC_BUS_ADDRESS (inherited by every party) and a running broker. */
static int server_start(server_t *s)
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
        if (bench_opt.bus_config)
                setenv(VFIIPC_ENV_BUS_CONFIG, bench_opt.bus_config, 1);

        fflush(stdout);
        fflush(stderr);
        s->pid = fork();
        if (s->pid < 0)
                return -errno;
        if (s->pid == 0)
                server_exec();

        deadline = now_ns() + READY_TIMEOUT_MS * NS_PER_MS;
        while (!broker_owned()) {
                if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                        s->pid = 0;
                        fprintf(stderr, "vfiipc-bench: %s exited (status %d) before serving\n",
                                bench_opt.notifysvc, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                        return -ECHILD;
                }
                if (now_ns() > deadline) {
                        fprintf(stderr, "vfiipc-bench: %s did not own %s within %d ms\n",
                                bench_opt.notifysvc, VFIIPC_BROKER_NAME, READY_TIMEOUT_MS);
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
                unlink(sock); /* normally gone already: the daemon removes it */
                rmdir(s->dir);
                g_clear_pointer(&s->dir, g_free);
        }
        return r;
}

/* ---- the report ---- */

static void machine_print(void)
{
        char line[512], model[256] = "unknown";
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
        printf("machine: nproc %ld, %s, %s %s %s; libdbus %d.%d.%d; vfiipc %s\n", ncpu, model,
               u.sysname, u.release, u.machine, major, minor, micro, vfiipc_version());
}

enum { THROUGHPUT, P50, P99, METRIC_MAX };

/* One side's runs of each metric. */
typedef struct runs {
        double v[METRIC_MAX][64];
        size_t n[METRIC_MAX];
} runs_t;

static void runs_add(runs_t *r, int metric, double x)
{
        if (r->n[metric] < ELEMENTSOF(r->v[metric]))
                r->v[metric][r->n[metric]++] = x;
}

static void runs_print(const char *what, const runs_t *r, int metric, int prec)
{
        if (r->n[metric] == 0)
                return;
        printf("  %-28s", what);
        for (size_t i = 0; i < r->n[metric]; i++)
                printf(" %10.*f", prec, r->v[metric][i]);
        printf("\n");
}

static void row_print(const char *what, runs_t *lib, runs_t *raw, int metric, int prec,
                      const char *goal)
{
        char a[32] = "n/a", b[32] = "n/a", ratio[32] = "n/a";
        double x, y;
        bool have_x = median(lib->v[metric], lib->n[metric], &x);
        bool have_y = median(raw->v[metric], raw->n[metric], &y);

        if (have_x)
                snprintf(a, sizeof(a), "%.*f", prec, x);
        if (have_y)
                snprintf(b, sizeof(b), "%.*f", prec, y);
        if (have_x && have_y && y > 0)
                snprintf(ratio, sizeof(ratio), "%.2f", x / y);
        printf("%-26s %12s %12s %8s %8s\n", what, a, b, ratio, goal);
}

/* Sorts the runs. */
static void table_print(runs_t *lib, runs_t *raw)
{
        printf("\n%-26s %12s %12s %8s %8s\n", "median of runs", "vfiipc", "raw relay", "ratio",
               "goal");
        row_print("throughput [msgs/s]", lib, raw, THROUGHPUT, 0, ">= 1.0");
        row_print("round trip p50 [us]", lib, raw, P50, 1, "<= 1.2");
        row_print("round trip p99 [us]", lib, raw, P99, 1, "");
}

/* ---- main ---- */

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: vfiipc-bench [OPTION]...\n"
                "Measures vfiipc notifications against a raw libdbus relay on one private bus.\n\n"
                "  --notifysvc PATH   server program (default %s)\n"
                "  --bus-config PATH  dbus-daemon config (default $VFIIPC_BUS_CONFIG, else\n"
                "                     bus-policy/vfiipc-bus.conf when it exists)\n"
                "  --count N          notifications per throughput run (default %u)\n"
                "  --rounds N         round trips per run (default %u)\n"
                "  --warmup N         unmeasured round trips first (default %u)\n"
                "  --repeat N         runs of each measurement, medians reported (default %u)\n"
                "  --timeout S        give up on a throughput run after S seconds (default %u)\n"
                "  --only vfiipc|raw  measure one side only (for profiling)\n"
                "  --verbose          show the server's log\n",
                bench_opt.notifysvc, bench_opt.count, bench_opt.rounds, bench_opt.warmup,
                bench_opt.repeat, bench_opt.timeout_s);
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
            {"count", required_argument, NULL, 'c'},
            {"rounds", required_argument, NULL, 'r'},
            {"warmup", required_argument, NULL, 'w'},
            {"repeat", required_argument, NULL, 'R'},
            {"timeout", required_argument, NULL, 't'},
            {"only", required_argument, NULL, 'o'},
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
                case 't':
                        ok = parse_unsigned(optarg, 1, 3600, &bench_opt.timeout_s);
                        break;
                case 'o':
                        bench_opt.vfiipc = streq(optarg, "vfiipc");
                        bench_opt.raw = streq(optarg, "raw");
                        ok = bench_opt.vfiipc || bench_opt.raw;
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
        _cleanup_free_ char *config = NULL;
        runs_t lib = {0}, raw = {0};
        server_t server = {0};
        unsigned failed = 0;

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
               "after %u warm-up; %u run(s) of each\n",
               bench_opt.count, strlen(PARAM), bench_opt.rounds, bench_opt.warmup,
               bench_opt.repeat);
        if (server_start(&server) < 0) {
                server_stop(&server);
                return 1;
        }
        printf("server: %s on %s\n", bench_opt.notifysvc, bench_opt.address);

        for (unsigned i = 0; i < bench_opt.repeat; i++) {
                sample_t s;

                /* Interleaved, so drift on a busy machine hits both sides alike. */
                if (bench_opt.vfiipc && side_vfiipc_measure(MODE_THROUGHPUT, &s) >= 0)
                        runs_add(&lib, THROUGHPUT, s.rate);
                else
                        failed += bench_opt.vfiipc;
                if (bench_opt.raw && side_raw_measure(MODE_THROUGHPUT, &s) >= 0)
                        runs_add(&raw, THROUGHPUT, s.rate);
                else
                        failed += bench_opt.raw;
                if (bench_opt.vfiipc && side_vfiipc_measure(MODE_ECHO, &s) >= 0) {
                        runs_add(&lib, P50, s.p50_us);
                        runs_add(&lib, P99, s.p99_us);
                } else
                        failed += bench_opt.vfiipc;
                if (bench_opt.raw && side_raw_measure(MODE_ECHO, &s) >= 0) {
                        runs_add(&raw, P50, s.p50_us);
                        runs_add(&raw, P99, s.p99_us);
                } else
                        failed += bench_opt.raw;
        }
        if (server_stop(&server) < 0) {
                fprintf(stderr, "vfiipc-bench: the server did not stop cleanly\n");
                failed++;
        }

        printf("\nruns, in order:\n");
        runs_print("vfiipc throughput [msgs/s]", &lib, THROUGHPUT, 0);
        runs_print("raw throughput [msgs/s]", &raw, THROUGHPUT, 0);
        runs_print("vfiipc round trip p50 [us]", &lib, P50, 1);
        runs_print("raw round trip p50 [us]", &raw, P50, 1);
        runs_print("vfiipc round trip p99 [us]", &lib, P99, 1);
        runs_print("raw round trip p99 [us]", &raw, P99, 1);
        table_print(&lib, &raw);
        g_free(bench_opt.address);
        if (failed)
                fprintf(stderr, "vfiipc-bench: %u measurement(s) failed\n", failed);
        return failed ? 1 : 0;
}
