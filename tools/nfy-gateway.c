/* tools/nfy-gateway.c — the NFY remote gateway as a process (lib/remote/gateway.h).
 *
 *   nfy-gateway --bus ADDRESS --port N [--interface NAME]... [--user NAME] [--ready-fd FD]
 *
 * The server starts it for a whitelist with rules (§5.2, G-84) and waits for
 * "READY <bus name>\n" on FD; the command line is that contract, keep it stable. Diagnostics: NFY_LOGMASK on stderr
 * (nothing is ever written to stdout except --help and --version).
 *
 * Exit status: 0 after SIGTERM/SIGINT, and when the bus or the broker goes away (the server is
 * gone); 1 for fatal errors (bus unreachable or no broker at start, the user drop failed);
 * 64 for a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include "config.h"
#include "core/log.h"
#include "remote/gateway.h"

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: nfy-gateway --bus ADDRESS --port N [--interface NAME]... [--user NAME]\n"
                "                   [--ready-fd FD]\n"
                "Bridges NFY peers on TCP to the vfiipc broker on the private bus. Started by the\n"
                "notification server; not meant to be run by hand.\n"
                "\n"
                "  --bus ADDRESS      D-Bus address of the private bus (required)\n"
                "  --port N           TCP port, 1-65535 (required)\n"
                "  --interface NAME   listen on this address, host name or network device (and\n"
                "                     on 127.0.0.1); repeatable; none: all IPv4 interfaces\n"
                "  --user NAME        when started as root, run as this user\n"
                "  --ready-fd FD      write \"READY <bus name>\\n\" to FD once set up, then close\n"
                "  -h, --help         show this help\n"
                "  -V, --version      show the version\n"
                "\n"
                "Environment: NFY_LOGMASK (diagnostics on stderr, e.g. 8 for errors, 255 for "
                "all).\n"
                "Exit status: 0 stopped (signal, or the server went away), 1 error, 64 usage.\n");
}

/* Strict decimal in [min, max]; -1 otherwise. */
static long parse_number(const char *s, long min, long max)
{
        char *end;
        long v;

        if (!s || !*s || strspn(s, "0123456789") != strlen(s))
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        return v;
}

static int usage_error(const char *fmt, const char *arg)
{
        fprintf(stderr, "nfy-gateway: ");
        fprintf(stderr, fmt, arg ? arg : "");
        fprintf(stderr, "\n");
        usage(stderr);
        return EX_USAGE;
}

/* "READY <unique bus name>\n": the server watches that name to notice when we end. */
static int ready_write(int fd, const char *name)
{
        char line[256];
        size_t done = 0, len;
        int n0 = snprintf(line, sizeof(line), "READY %s\n", name ? name : "");

        if (n0 < 0 || (size_t)n0 >= sizeof(line)) {
                close(fd);
                return -EINVAL;
        }
        len = (size_t)n0;
        while (done < len) {
                ssize_t n = write(fd, line + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                done += (size_t)n;
        }
        return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

/* Go with the server: SIGTERM when it dies. False if it is gone already. The parent is
 * compared with the one recorded at start rather than with 1, so a server that died in between
 * is noticed while a server that legitimately runs as PID 1 (a container) is not mistaken for
 * a dead one. */
static bool parent_watch(pid_t parent)
{
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
                nfy_log_errno(LOG_WARNING, -errno, "PR_SET_PDEATHSIG");
        if (getppid() != parent) {
                nfy_log(LOG_NOTICE, "the server is gone already, exiting");
                return false;
        }
        return true;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"bus", required_argument, NULL, 'b'},       {"port", required_argument, NULL, 'p'},
            {"interface", required_argument, NULL, 'i'}, {"user", required_argument, NULL, 'u'},
            {"ready-fd", required_argument, NULL, 'r'},  {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
        };
        const char *interfaces[GATEWAY_INTERFACES_MAX];
        gateway_config_t config = {.stop_fd = -1, .interfaces = interfaces};
        const char *user = NULL;
        gateway_t *g = NULL;
        int ready_fd = -1, sfd, c, r;
        long port = -1;
        sigset_t stop;
        pid_t parent;

        opterr = 0; /* our own messages */
        while ((c = getopt_long(argc, argv, "+hV", options, NULL)) != -1) {
                switch (c) {
                case 'b':
                        if (!*optarg)
                                return usage_error("--bus needs an address", NULL);
                        config.bus_address = optarg;
                        break;
                case 'p':
                        port = parse_number(optarg, 1, 65535);
                        if (port < 0)
                                return usage_error("--port needs a number 1-65535, not \"%s\"",
                                                   optarg);
                        break;
                case 'i':
                        if (!*optarg || strlen(optarg) > GATEWAY_INTERFACE_NAME_MAX)
                                return usage_error("--interface needs a name of 1-255 bytes", NULL);
                        if (config.n_interfaces >= GATEWAY_INTERFACES_MAX)
                                return usage_error("at most 64 --interface options", NULL);
                        interfaces[config.n_interfaces++] = optarg;
                        break;
                case 'u':
                        if (!*optarg)
                                return usage_error("--user needs a user name", NULL);
                        user = optarg;
                        break;
                case 'r':
                        ready_fd = (int)parse_number(optarg, 0, INT_MAX);
                        if (ready_fd < 0 || fcntl(ready_fd, F_GETFD) < 0)
                                return usage_error("--ready-fd needs an open file descriptor, "
                                                   "not \"%s\"",
                                                   optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("nfy-gateway (vfiipc) %s\n", VFIIPC_VERSION);
                        return 0;
                default:
                        return usage_error("unknown option, or option without its argument: %s",
                                           argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument \"%s\"", argv[optind]);
        if (!config.bus_address)
                return usage_error("--bus is required", NULL);
        if (port < 0)
                return usage_error("--port is required", NULL);
        config.port = (uint16_t)port;

        /* SIGTERM/SIGINT through a signalfd the loop polls: no work in signal handlers. Blocked
         * from here on, so a signal during set-up (the parent-death one too) is held and stops
         * the loop at once. */
        sigemptyset(&stop);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGINT);
        if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0 ||
            (sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
                nfy_log_errno(LOG_ERR, -errno, "cannot set up signal handling");
                return 1;
        }
        config.stop_fd = sfd;
        /* A peer that hangs up mid-write must not kill the gateway. */
        signal(SIGPIPE, SIG_IGN);

        parent = getppid();
        if (!parent_watch(parent))
                return 0;

        /* Before the bus: the bus must see the gateway's own user (its policy). */
        if (user) {
                if (geteuid() != 0)
                        nfy_log(LOG_DEBUG, "--user %s ignored: not running as root", user);
                else if (gateway_drop_privileges(user) < 0)
                        return 1;
                /* The kernel clears the parent-death signal when the credentials change. */
                else if (!parent_watch(parent))
                        return 0;
        }

        r = gateway_new(&config, &g);
        if (r < 0) {
                if (r == -EINVAL)
                        nfy_log(LOG_ERR, "invalid gateway configuration");
                else if (r == -ENOMEM)
                        nfy_log(LOG_ERR, "out of memory");
                /* Others were logged where they happened (no bus, no broker). */
                return 1;
        }
        nfy_log(LOG_INFO, "NFY gateway serving on port %u", (unsigned)gateway_port(g));

        if (ready_fd >= 0) {
                r = ready_write(ready_fd, gateway_bus_name(g));
                if (r < 0) {
                        nfy_log_errno(LOG_ERR, r, "cannot report readiness on fd %d", ready_fd);
                        gateway_free(g);
                        return 1;
                }
        }

        r = gateway_run(g);
        if (r == 0)
                nfy_log(LOG_INFO, "stopping");
        else if (r == -ECONNRESET)
                nfy_log(LOG_NOTICE, "the server is gone, stopping");
        else
                nfy_log_errno(LOG_ERR, r, "stopping after an error");
        gateway_free(g);
        close(sfd);
        dbus_shutdown(); /* frees libdbus's globals: valgrind sees no leaks */
        return r == 0 || r == -ECONNRESET ? 0 : 1;
}
