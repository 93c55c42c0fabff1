/* tools/bench/bus-broker.c — running the suite on dbus-broker instead of dbus-daemon.
 *
 * notifysvc cannot be pointed at an existing bus: vfiipc_server_start() always runs the
 * dbus-daemon compiled in (config.h VFIIPC_DBUS_DAEMON, found by meson at configure time) on
 * the address and refuses a socket on which some other bus answers (server_clear_socket():
 * "something answers on … that is no notification server"). So the bench puts a substitute at
 * that path, in a private mount namespace of the server only (root only; nothing changes
 * outside): this program, bind-mounted over VFIIPC_DBUS_DAEMON, called with the same
 * arguments as dbus-daemon. It listens on the address, prints it on the --print-address fd as
 * dbus-daemon would, and becomes dbus-broker-launch with that socket passed the systemd way
 * (LISTEN_FDS). The launcher insists on logging to /run/systemd/journal/socket and on a "user
 * bus" for itself; the substitute provides a datagram socket there (on a tmpfs private to the
 * namespace, drained by a small child) and points DBUS_SESSION_BUS_ADDRESS at the new bus.
 *
 * The launcher reads the same XML configuration. It turns per-connection limits into per-user
 * quotas (max_connections_per_user × max_outgoing_bytes): with vfiipc-bus.conf's values that
 * is 2^40 bytes, and dbus-broker 33 then refuses every message ("UID 0 exceeded its 'bytes'
 * quota"), so broker_config_write() lowers max_outgoing_bytes until the product fits 32 bits. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "config.h"
#include "core/util.h"

#define JOURNAL_DIR "/run/systemd/journal"
#define JOURNAL_SOCKET JOURNAL_DIR "/socket"
#define LAUNCHER "dbus-broker-launch"
#define QUOTA_MAX UINT64_C(0xffffffff) /* dbus-broker keeps --max-bytes in 32 bits */

/* ---- the configuration ---- */

/* The value of <limit name="NAME">…</limit>: its digits' offset and length in text, or false. */
static bool limit_find(const char *text, const char *name, size_t *off, size_t *len)
{
        char key[128];
        const char *p, *v;

        snprintf(key, sizeof(key), "<limit name=\"%s\">", name);
        p = strstr(text, key);
        if (!p)
                return false;
        v = p + strlen(key);
        *off = (size_t)(v - text);
        *len = strspn(v, "0123456789");
        return *len > 0;
}

static char *file_read(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;
        int r;

        if (!f)
                return NULL;
        r = fseek(f, 0, SEEK_END);
        if (r == 0) {
                long n = ftell(f);
                if (n >= 0 && n < 16 * 1024 * 1024)
                        size = (size_t)n;
        }
        rewind(f);
        buf = size ? malloc(size + 1) : NULL;
        if (buf && fread(buf, 1, size, f) == size)
                buf[size] = '\0';
        else {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        return buf;
}

int broker_config_write(const char *config, const char *dir, char **ret)
{
        _cleanup_free_ char *text = file_read(config), *path = NULL;
        size_t o_off, o_len, c_off, c_len;
        unsigned long long out = 0, conns = 0;
        FILE *f;

        if (!text) {
                fprintf(stderr, "vfiipc-bench: cannot read %s\n", config);
                return -EIO;
        }
        if (asprintf(&path, "%s/bus-broker.conf", dir) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        f = fopen(path, "we");
        if (!f)
                return -errno;
        if (limit_find(text, "max_outgoing_bytes", &o_off, &o_len) &&
            limit_find(text, "max_connections_per_user", &c_off, &c_len)) {
                out = strtoull(text + o_off, NULL, 10);
                conns = strtoull(text + c_off, NULL, 10);
        }
        if (conns > 0 && out > QUOTA_MAX / conns) {
                unsigned long long lowered = QUOTA_MAX / conns;
                printf("bus config: max_outgoing_bytes %llu x max_connections_per_user %llu "
                       "overflows dbus-broker's 32-bit byte quota; lowered to %llu for this run\n",
                       out, conns, lowered);
                fprintf(f, "%.*s%llu%s", (int)o_off, text, lowered, text + o_off + o_len);
        } else
                fputs(text, f);
        if (fclose(f) != 0)
                return -EIO;
        *ret = path;
        path = NULL;
        return 0;
}

/* ---- the namespace ---- */

int broker_namespace_enter(const char *self)
{
        const char *run = access("/run/systemd", F_OK) == 0 ? "/run/systemd" : "/run";

        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        /* Nothing mounted from here on may show outside. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        if (mount("tmpfs", run, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                return -errno;
        if (self && mount(self, VFIIPC_DBUS_DAEMON, NULL, MS_BIND, NULL) < 0)
                return -errno;
        return 0;
}

/* ---- the substitute ---- */

/* A datagram socket at the journal's path and a child that reads it (printing the MESSAGE=
 * fields with --verbose), for as long as the launcher lives. */
static int journal_provide(bool verbose)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET};
        int fd;
        pid_t pid;

        (void)mkdir("/run/systemd", 0755);
        if (mkdir(JOURNAL_DIR, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(JOURNAL_SOCKET);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if (pid == 0) {
                static char buf[64 * 1024];

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                prctl(PR_SET_NAME, "bench-journal");
                for (;;) {
                        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                        char *m;

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                _exit(0);
                        buf[n] = '\0';
                        m = strstr(buf, "MESSAGE=");
                        if (verbose && m && (m == buf || m[-1] == '\n'))
                                fprintf(stderr, "dbus-broker: %.*s\n", (int)strcspn(m + 8, "\n"),
                                        m + 8);
                }
        }
        close(fd);
        return 0;
}

static const char *arg_value(int argc, char **argv, const char *prefix)
{
        size_t n = strlen(prefix);

        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], prefix, n) == 0)
                        return argv[i] + n;
        return NULL;
}

int broker_shim_main(int argc, char **argv)
{
        const char *config = arg_value(argc, argv, "--config-file=");
        const char *address = arg_value(argc, argv, "--address=");
        const char *print = arg_value(argc, argv, "--print-address=");
        bool verbose = !isempty(getenv("VFIIPC_BENCH_VERBOSE"));
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *path;
        char pid_s[16];
        int fd, print_fd, r;

        if (!config || !address || !print || strncmp(address, "unix:path=", 10) != 0 ||
            strchr(address, ',')) {
                fprintf(stderr, "vfiipc-bench: bus substitute: unsupported arguments\n");
                return 1;
        }
        path = address + 10;
        print_fd = atoi(print);
        if (strlen(path) >= sizeof(sa.sun_path))
                return 1;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
                fprintf(stderr, "vfiipc-bench: bus substitute: cannot listen on %s: %s\n", path,
                        strerror(errno));
                return 1;
        }
        r = journal_provide(verbose);
        if (r < 0) {
                fprintf(stderr, "vfiipc-bench: bus substitute: no journal socket: %s\n",
                        strerror(-r));
                return 1;
        }
        /* The socket listens already: whoever connects now waits in the backlog until the
         * broker accepts, as with a dbus-daemon that is still starting. */
        if (dprintf(print_fd, "%s\n", address) < 0)
                return 1;
        if (print_fd != 3)
                close(print_fd);
        if (dup2(fd, 3) < 0) /* SD_LISTEN_FDS_START, without O_CLOEXEC */
                return 1;
        if (fd != 3)
                close(fd);
        snprintf(pid_s, sizeof(pid_s), "%d", (int)getpid());
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", pid_s, 1);
        unsetenv("LISTEN_FDNAMES");
        unsetenv(BENCH_ENV_SHIM);
        /* The launcher connects to "the user bus" for activation requests: this one. */
        setenv("DBUS_SESSION_BUS_ADDRESS", address, 1);
        execlp(LAUNCHER, LAUNCHER, "--scope", "user", "--config-file", config, (char *)NULL);
        fprintf(stderr, "vfiipc-bench: bus substitute: cannot run %s: %s\n", LAUNCHER,
                strerror(errno));
        return 127;
}
