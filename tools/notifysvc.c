/* tools/notifysvc.c — the notification server as its own process (SVC-1…5, G-95).
 *
 *   notifysvc [--log-level LEVEL] [CONFIG]    runs the server in the foreground until
 *                                             SIGTERM/SIGINT
 *   notifysvc --print-policy CONFIG           prints the bus configuration it would generate
 *                                             for the NFY gateway's user (started as root)
 *
 * Diagnostics go to stderr (LOG-3); under systemd (JOURNAL_STREAM set) stderr is already
 * connected to the journal, so nothing else is needed for journal logging.
 *
 * Exit status (G-95): 0 after a clean shutdown, else the absolute NotifyResult: 1 server error
 * (also "a server runs already", SRV-5), 3 permission, 4 configuration file, 5 syntax; 64 for
 * a usage error. Uses only the public C API. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <syslog.h>
#include <unistd.h>

#include <vfiipc/notify.h>

#include "config.h"

static void report(vfiipc_result r, const char *config);

/* The server the signal handlers stop; NULL before it exists and once it is being freed. */
static _Atomic(vfiipc_server *) running;

static void on_stop_signal(int sig)
{
        int saved = errno;
        vfiipc_server *s = atomic_load(&running);

        (void)sig;
        if (s)
                vfiipc_server_stop(s); /* async-signal-safe */
        errno = saved;
}

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: notifysvc [OPTION]... [CONFIG]\n"
                "Runs the vfiipc notification server in the foreground: starts the private\n"
                "bus and serves until SIGTERM or SIGINT.\n"
                "\n"
                "  CONFIG             remote-access whitelist file; without it\n"
                "                     %s (or a legacy V/OS\n"
                "                     location) when it exists, else no remote access\n"
                "  --print-policy CONFIG\n"
                "                     print the dbus-daemon configuration generated for the\n"
                "                     remote gateway's user (when started as root) and exit\n"
                "  --log-level LEVEL  log this syslog level and all more severe ones: emerg,\n"
                "                     alert, crit, err, warning, notice, info, debug or 0-7\n"
                "                     (sets NFY_LOGMASK; err = 15)\n"
                "  -h, --help         show this help\n"
                "  -V, --version      show the version\n"
                "\n"
                "Environment: VFIIPC_BUS_ADDRESS (bus address), VFIIPC_BUS_CONFIG (dbus-daemon\n"
                "configuration), VFIIPC_NFY_PORT (remote TCP port, default 5899),\n"
                "VFIIPC_GATEWAY_USER (the remote gateway's user when run as root, default %s),\n"
                "NFY_LOGMASK (diagnostics, e.g. 8 for errors, 255 for all).\n"
                "Diagnostics go to stderr, which systemd connects to the journal.\n"
                "Exit status: 0 clean shutdown, 1 server error or already running, 3 permission,\n"
                "4 configuration file, 5 configuration syntax, 64 usage.\n",
                VFIIPC_NOTIFY_CFG_DEFAULT, VFIIPC_GATEWAY_USER_DEFAULT);
}

/* --print-policy: what the server would hand dbus-daemon for this configuration. */
static int print_policy(const char *config)
{
        char *text = NULL;
        vfiipc_result r = vfiipc_server_policy(config, &text);

        if (r != VFIIPC_OK) {
                report(r, config);
                return -(int)r;
        }
        fputs(text, stdout);
        free(text);
        return fflush(stdout) == 0 ? 0 : 1;
}

/* SVC-2, G-95: the build-time default, then the legacy V/OS 3 and V/OS locations. */
static const char *default_config(void)
{
        static const char *const candidates[] = {
            VFIIPC_NOTIFY_CFG_DEFAULT,
            "/home/sys_ipc/notify.cfg",
            "/home/sys12/notify.cfg",
        };

        for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
                /* A relative default would depend on the working directory: never use one. */
                if (candidates[i][0] == '/' && access(candidates[i], F_OK) == 0)
                        return candidates[i];
        return NULL; /* SVC-3: no remote access */
}

/* --log-level: a syslog level name or number; the mask has that level's bit and every more
 * severe one (LOG-2, G-96: the mask itself is a pure bit mask). Returns the mask or -1. */
static int log_level_mask(const char *s)
{
        static const char *const names[] = {"emerg",   "alert",  "crit", "err",
                                            "warning", "notice", "info", "debug"};
        int level = -1;

        if (s[0] >= '0' && s[0] <= '7' && !s[1])
                level = s[0] - '0';
        for (int i = 0; i < 8 && level < 0; i++)
                if (!strcmp(s, names[i]))
                        level = i;
        if (level < 0 && !strcmp(s, "error"))
                level = LOG_ERR;
        if (level < 0 && !strcmp(s, "warn"))
                level = LOG_WARNING;
        return level < 0 ? -1 : (1 << (level + 1)) - 1;
}

static void report(vfiipc_result r, const char *config)
{
        char *address = vfiipc_bus_address();
        const char *where = address ? address : "the bus address";

        switch (r) {
        case VFIIPC_ERR_SERVER:
                fprintf(stderr,
                        "notifysvc: server error on %s: another notification server runs there "
                        "already, or the private bus could not be started or went away\n",
                        where);
                break;
        case VFIIPC_ERR_PERMISSION:
                fprintf(stderr, "notifysvc: no permission to create the bus endpoint %s\n", where);
                break;
        case VFIIPC_ERR_CONFIG_FILE: {
                /* The library only says "cannot be read"; find out why, for the admin. */
                FILE *f = fopen(config, "r");
                const char *why = f ? "not a regular file, or too large" : strerror(errno);
                if (f)
                        fclose(f);
                fprintf(stderr, "notifysvc: cannot read the configuration file %s: %s\n", config,
                        why);
                break;
        }
        case VFIIPC_ERR_CONFIG_SYNTAX:
                fprintf(stderr, "notifysvc: invalid content in the configuration file %s\n",
                        config);
                break;
        default:
                fprintf(stderr, "notifysvc: failed with result %d\n", (int)r);
                break;
        }
        if (!getenv("NFY_LOGMASK"))
                fprintf(stderr, "notifysvc: run with NFY_LOGMASK=8 to see the details%s\n",
                        r == VFIIPC_ERR_CONFIG_SYNTAX ? " (the offending line)" : "");
        free(address);
}

int main(int argc, char **argv)
{
        struct sigaction sa = {.sa_handler = on_stop_signal};
        const char *config = NULL;
        vfiipc_server *s = NULL;
        vfiipc_result r;
        bool no_more_options = false, want_policy = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!no_more_options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
                        usage(stdout);
                        return 0;
                }
                if (!no_more_options && (!strcmp(a, "-V") || !strcmp(a, "--version"))) {
                        printf("notifysvc (vfiipc) %s\n", vfiipc_version());
                        return 0;
                }
                if (!no_more_options && (!strcmp(a, "--log-level") ||
                                         !strncmp(a, "--log-level=", 12))) {
                        const char *v = a[11] == '=' ? a + 12 : (i + 1 < argc ? argv[++i] : NULL);
                        int mask = v ? log_level_mask(v) : -1;
                        char buf[8];

                        if (mask < 0) {
                                fprintf(stderr, "notifysvc: --log-level needs a syslog level "
                                                "(emerg ... debug, or 0-7)%s%s\n",
                                        v ? ", not " : "", v ? v : "");
                                usage(stderr);
                                return EX_USAGE;
                        }
                        /* Before the first library call, which reads it (LOG-3). */
                        snprintf(buf, sizeof(buf), "%d", mask);
                        setenv("NFY_LOGMASK", buf, 1);
                        continue;
                }
                if (!no_more_options && !strcmp(a, "--print-policy")) {
                        want_policy = true;
                        continue;
                }
                if (!no_more_options && !strcmp(a, "--")) {
                        no_more_options = true;
                        continue;
                }
                if (!no_more_options && a[0] == '-' && a[1]) {
                        fprintf(stderr, "notifysvc: unknown option %s\n", a);
                        usage(stderr);
                        return EX_USAGE;
                }
                if (config) {
                        fprintf(stderr, "notifysvc: only one configuration file\n");
                        usage(stderr);
                        return EX_USAGE;
                }
                config = a; /* SVC-1: then the default locations are not consulted */
        }
        if (want_policy) {
                if (!config) {
                        fprintf(stderr, "notifysvc: --print-policy needs a configuration file\n");
                        usage(stderr);
                        return EX_USAGE;
                }
                return print_policy(config);
        }
        if (!config)
                config = default_config();

        /* A client that goes away mid-write must not kill the server. */
        signal(SIGPIPE, SIG_IGN);

        r = vfiipc_server_new(config, &s);
        if (r == VFIIPC_OK) {
                /* Handlers only once there is a server to stop; a signal before that simply
                 * ends the process, which has nothing to clean up yet. No SA_RESTART: the
                 * loop's poll() should see EINTR (it also gets woken by the stop itself). */
                atomic_store(&running, s);
                sigemptyset(&sa.sa_mask);
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGINT, &sa, NULL);

                r = vfiipc_server_start(s);
                if (r == VFIIPC_OK)
                        r = vfiipc_server_serve(s);
                /* A handler runs on this thread; once running is NULL none touches s. */
                atomic_store(&running, NULL);
                vfiipc_server_free(s);
        }
        if (r != VFIIPC_OK)
                report(r, config);
        return r == VFIIPC_OK ? 0 : -(int)r; /* G-95 */
}
