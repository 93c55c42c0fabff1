/* tools/vfiipc.c — the vfiipc command line: send, listen, monitor, status.
 *
 *   vfiipc send [--from ID] TO NOTIFICATION_ID [JSON]
 *   vfiipc listen [--as APP_ID] [--priority N] NOTIFICATION_ID...
 *   vfiipc monitor
 *   vfiipc status
 *
 * An application like any other: only the public C API <vfiipc/notify.h> and jansson. Output
 * is one compact JSON object per line (sorted keys), flushed at once. listen and monitor run
 * until SIGINT/SIGTERM, which they take with sigwait() on the main thread (blocked before the
 * first library call, so the library's threads inherit the mask and never see them).
 *
 * Exit status: 0 success; 1 the server is not reachable or refused the call; 64 usage error;
 * 65 the JSON param is invalid. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>
#include <vfiipc/notify.h>

/* The application ID of send (sender) and listen (receiver) without --from / --as. */
#define DEFAULT_APP_ID "vfiipc-cli"

/* Callbacks run concurrently on the library's worker threads: one line at a time. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *usage; /* printed by --help and on usage errors */
} command_t;

static const command_t *current;

static void usage(FILE *f)
{
        fprintf(f, "%s", current->usage);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "vfiipc %s: ", current->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        usage(stderr);
        return EX_USAGE;
}

/* What a failed call means, for a person: always names the bus address. what: "" or a
 * prefix like "cannot register 'x': ". */
static int fail(const char *what, vfiipc_result r)
{
        char *address = vfiipc_bus_address();
        const char *where = address ? address : "the bus address";

        switch (r) {
        case VFIIPC_ERR_SERVER:
                fprintf(stderr,
                        "vfiipc %s: %sno notification server reachable at %s, or it "
                        "refused the call (start one with `notifysvc` or `systemctl --user start "
                        "vfiipc`; NFY_LOGMASK=8 shows details)\n",
                        current->name, what, where);
                break;
        case VFIIPC_ERR_PERMISSION:
                fprintf(stderr, "vfiipc %s: %sno permission to use the bus at %s\n",
                        current->name, what, where);
                break;
        case VFIIPC_ERR_APP_ID:
                fprintf(stderr,
                        "vfiipc %s: %snot a usable application ID (\"\", \"1\" and \"*\" "
                        "are not)\n",
                        current->name, what);
                break;
        default:
                fprintf(stderr, "vfiipc %s: %sfailed with result %d\n", current->name, what,
                        (int)r);
                break;
        }
        free(address);
        return 1;
}

/* Prints obj as one line and consumes it. */
static void print_line(json_t *obj)
{
        char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        pthread_mutex_lock(&out_lock);
        if (text) {
                fputs(text, stdout);
                fputc('\n', stdout);
                fflush(stdout);
        } else
                fprintf(stderr, "vfiipc %s: cannot print a notification as JSON\n",
                        current->name);
        pthread_mutex_unlock(&out_lock);
        free(text);
        json_decref(obj);
}

static void on_notification(void *data, const char *from, const char *to, const char *id,
                            const json_t *param, unsigned flags)
{
        print_line(json_pack("{s:s,s:s,s:s,s:o,s:I}", "from", from, "to", to, "notification", id,
                             "param", param ? json_deep_copy(param) : json_null(), "flags",
                             (json_int_t)flags));
}

static void on_observed(void *data, const char *from, const char *to, const char *id,
                        unsigned flags)
{
        print_line(json_pack("{s:s,s:s,s:s,s:I}", "from", from, "to", to, "notification", id,
                             "flags", (json_int_t)flags));
}

/* Blocks SIGINT/SIGTERM in this thread and every thread created later (call before the
 * library starts its threads); wait_for_stop() then takes them synchronously. */
static void block_stop_signals(sigset_t *set)
{
        sigemptyset(set);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, set, NULL);
}

static void wait_for_stop(const sigset_t *set)
{
        int sig;

        while (sigwait(set, &sig) != 0)
                ;
}

/* Parses the common --help; returns -1 to continue, else the exit status. */
static int parse_options(int argc, char **argv, const char *shortopts,
                         const struct option *longopts, int (*on_option)(int c, void *), void *ud)
{
        int c;

        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                if (c == 'h') {
                        usage(stdout);
                        return 0;
                }
                if (c == '?')
                        return usage_error("unknown option or missing argument: %s",
                                           argv[optind - 1]);
                if (on_option) {
                        int r = on_option(c, ud);
                        if (r >= 0)
                                return r;
                }
        }
        return -1;
}

/* ---- send ------------------------------------------------------------------------------- */

static int send_option(int c, void *ud)
{
        if (c == 'f')
                *(const char **)ud = optarg;
        return -1;
}

static int cmd_send(int argc, char **argv)
{
        static const struct option opts[] = {
            {"from", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
        const char *from = DEFAULT_APP_ID, *text;
        json_error_t err;
        json_t *param;
        vfiipc_result r;
        int n;

        n = parse_options(argc, argv, "+f:h", opts, send_option, &from);
        if (n >= 0)
                return n;
        n = argc - optind;
        if (n < 2 || n > 3)
                return usage_error("%s", n < 2 ? "TO and NOTIFICATION_ID are required"
                                               : "too many arguments");
        text = n == 3 ? argv[optind + 2] : "{}";
        param = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!param) {
                fprintf(stderr,
                        "vfiipc send: invalid JSON at position %d (line %d, column %d): %s\n",
                        err.position, err.line, err.column, err.text);
                return EX_DATAERR;
        }
        r = vfiipc_notify(argv[optind], argv[optind + 1], param, 0, from);
        json_decref(param);
        return r == VFIIPC_OK ? 0 : fail("", r);
}

/* ---- listen ----------------------------------------------------------------------------- */

struct listen_options {
        const char *as;
        int priority;
};

static int listen_option(int c, void *ud)
{
        struct listen_options *o = ud;
        char *end;
        long v;

        if (c == 'a')
                o->as = optarg;
        else if (c == 'p') {
                errno = 0;
                v = strtol(optarg, &end, 10);
                if (errno || end == optarg || *end || v < INT_MIN || v > INT_MAX)
                        return usage_error("--priority needs an integer, not '%s'", optarg);
                o->priority = (int)v;
        }
        return -1;
}

static int cmd_listen(int argc, char **argv)
{
        static const struct option opts[] = {{"as", required_argument, NULL, 'a'},
                                             {"priority", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
        struct listen_options o = {.as = DEFAULT_APP_ID};
        sigset_t stop;
        int n;

        n = parse_options(argc, argv, "+a:p:h", opts, listen_option, &o);
        if (n >= 0)
                return n;
        if (optind >= argc)
                return usage_error("%s", "at least one NOTIFICATION_ID is required");

        block_stop_signals(&stop);
        for (int i = optind; i < argc; i++) {
                /* On failure, exiting drops the connection and so the earlier registrations. */
                vfiipc_result r = vfiipc_register(argv[i], on_notification, NULL, o.priority, o.as);
                if (r != VFIIPC_OK) {
                        char what[256];

                        snprintf(what, sizeof(what), "cannot register '%s' as %s: ", argv[i],
                                 o.as);
                        return fail(what, r);
                }
        }
        /* On stderr, so stdout stays pure JSON lines; tests wait for it. */
        fprintf(stderr, "vfiipc listen: listening as %s for %d notification ID(s)\n", o.as,
                argc - optind);
        wait_for_stop(&stop);
        for (int i = optind; i < argc; i++)
                vfiipc_unregister(argv[i], on_notification, NULL, o.as);
        return 0;
}

/* ---- monitor ---------------------------------------------------------------------------- */

static int cmd_monitor(int argc, char **argv)
{
        static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
        vfiipc_result r;
        sigset_t stop;
        int n;

        n = parse_options(argc, argv, "+h", opts, NULL, NULL);
        if (n >= 0)
                return n;
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);

        block_stop_signals(&stop);
        r = vfiipc_observer_add(on_observed, NULL);
        if (r != VFIIPC_OK)
                return fail("", r);
        fprintf(stderr, "vfiipc monitor: observing\n");
        wait_for_stop(&stop);
        vfiipc_observer_remove(on_observed, NULL);
        return 0;
}

/* ---- status ----------------------------------------------------------------------------- */

static void on_nothing(void *data, const char *from, const char *to, const char *id,
                       unsigned flags)
{
}

static int cmd_status(int argc, char **argv)
{
        static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
        char *address;
        vfiipc_result r;
        int n;

        n = parse_options(argc, argv, "+h", opts, NULL, NULL);
        if (n >= 0)
                return n;
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);

        /* The C API has no probe of its own: adding an observer needs an answer from the
         * broker (OBS-4), and removing it again leaves nothing behind. */
        r = vfiipc_observer_add(on_nothing, NULL);
        if (r != VFIIPC_OK)
                return fail("", r);
        vfiipc_observer_remove(on_nothing, NULL);
        address = vfiipc_bus_address();
        printf("vfiipc server reachable at %s\n", address ? address : "(unknown address)");
        free(address);
        return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static const command_t commands[] = {
    {"send", cmd_send,
     "Usage: vfiipc send [--from ID] TO NOTIFICATION_ID [JSON]\n"
     "Sends one notification to TO (an application ID, \"1\" or \"*\") with JSON as its param\n"
     "(any JSON value; default {}). Exits 0 once the server accepted it.\n"
     "\n"
     "  -f, --from ID  sender application ID (default " DEFAULT_APP_ID ")\n"
     "  -h, --help     show this help\n"},
    {"listen", cmd_listen,
     "Usage: vfiipc listen [--as APP_ID] [--priority N] NOTIFICATION_ID...\n"
     "Registers for the notification IDs and prints each received notification as one JSON\n"
     "line {\"flags\",\"from\",\"notification\",\"param\",\"to\"} until SIGINT or SIGTERM.\n"
     "\n"
     "  -a, --as APP_ID    receiving application ID (default " DEFAULT_APP_ID ")\n"
     "  -p, --priority N   registration priority (default 0; highest gets unicasts)\n"
     "  -h, --help         show this help\n"},
    {"monitor", cmd_monitor,
     "Usage: vfiipc monitor\n"
     "Observes every notification and prints one JSON line {\"flags\",\"from\",\n"
     "\"notification\",\"to\"} each (to is \"\" when nobody received it), until SIGINT or\n"
     "SIGTERM.\n"
     "\n"
     "  -h, --help  show this help\n"},
    {"status", cmd_status,
     "Usage: vfiipc status\n"
     "Says whether a notification server is reachable at the bus address, and which\n"
     "address that is. Exits 0 when it is, 1 when not.\n"
     "\n"
     "  -h, --help  show this help\n"},
};

static void main_usage(FILE *f)
{
        fprintf(f, "Usage: vfiipc COMMAND [OPTION]... [ARG]...\n"
                   "Sends, receives and watches vfiipc notifications.\n"
                   "\n"
                   "Commands:\n"
                   "  send     send one notification\n"
                   "  listen   print the notifications received for some IDs\n"
                   "  monitor  print every notification (observer)\n"
                   "  status   is a notification server reachable?\n"
                   "\n"
                   "  -h, --help     show this help (COMMAND --help: that command's)\n"
                   "  -V, --version  show the version\n"
                   "\n"
                   "Environment: VFIIPC_BUS_ADDRESS (bus address; default\n"
                   "unix:path=$XDG_RUNTIME_DIR/vfiipc/bus, else unix:path=/run/vfiipc/bus),\n"
                   "NFY_LOGMASK (library diagnostics, e.g. 8 for errors).\n"
                   "Exit status: 0 success, 1 server not reachable or call refused, 64 usage,\n"
                   "65 invalid JSON.\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                main_usage(stderr);
                return EX_USAGE;
        }
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
                main_usage(stdout);
                return 0;
        }
        if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
                printf("vfiipc %s\n", vfiipc_version());
                return 0;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (!strcmp(argv[1], commands[i].name)) {
                        current = &commands[i];
                        return commands[i].run(argc - 1, argv + 1);
                }
        fprintf(stderr, "vfiipc: unknown command '%s'\n", argv[1]);
        main_usage(stderr);
        return EX_USAGE;
}
