/* lib/broker/server.c — the notification server of the C API: configuration, the private bus,
 * the broker name, serving (SRVF-1…9, SRV-1…5, G-66, G-67; design.md "The private bus").
 *
 * Start-up order (G-67): the configuration is read in vfiipc_server_new(), before anything is
 * created or bound. vfiipc_server_start() then, for unix:path= addresses, creates the socket's
 * directory, takes `<path>.lock` (flock: the single-instance lock, released by the kernel
 * however the server ends), checks that nothing answers on the socket (a live server is left
 * untouched; a stale socket is removed), starts dbus-daemon on the address and owns the broker
 * name with DO_NOT_QUEUE. Any other address has no lock; a bus that answers there with the
 * broker name owned means a server runs already.
 *
 * Threads: new/start/free on any thread, serve and free on the same thread (the loop thread);
 * stop from any thread or a signal handler, but not concurrently with free. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include "broker/broker.h"
#include "bus/address.h"
#include "broker/policy.h"
#include "bus/loop.h"
#include "bus/protocol.h"
#include "config.h"
#include "core/child.h"
#include "core/log.h"
#include "core/util.h"
#include "remote/whitelist.h"
#include "vfiipc/notify.h"

#define DAEMON_READY_TIMEOUT_MS 10000 /* a loaded embedded system may be slow to exec */
#define DAEMON_STOP_GRACE_MS 2000     /* SIGTERM, then SIGKILL */
#define PROBE_TIMEOUT_MS 1000         /* asking a bus found on our address */
#define PROBE_SETTLE_MS 2000 /* how long something that answers may take to turn out stale */
#define LOCK_TRIES 16
#define GATEWAY_READY_TIMEOUT_MS 10000
#define GATEWAY_STOP_GRACE_MS 2000
/* A gateway that ends is started again (remote peers reconnect by themselves, §5.4), but not
 * more than this often per window: one that keeps crashing is a bug to report, not to hide. */
#define GATEWAY_RESTARTS_MAX 5
#define GATEWAY_RESTART_WINDOW_MS 60000
/* After a burst the heap holds what was queued in and out; glibc keeps freed memory, so an
 * idle server gives it back this long after the last call (server_loop_run). */
#define TRIM_IDLE_MS 1000
/* The queues themselves stay short: a burst waits in the bus, not in our heap, whose peak
 * would stay resident (libdbus' list links come from a pool that never shrinks, and what the
 * peak left scattered keeps its pages). Still hundreds of signals, enough to keep the bus'
 * socket full. */
#define OUTPUT_QUEUE_MAX (128 * 1024) /* bytes not yet written (bus_loop_set_output_max) */
#define INPUT_QUEUE_MAX (128 * 1024)  /* bytes read, not yet handled (one larger still whole) */
/* While idle the broker is told every so often that it is caught up (see server_idle). */
#define CAUGHT_UP_TICK_MS 250

struct vfiipc_server {
        whitelist_t *whitelist; /* NULL: no remote access (SRVF-3, SRVF-6) */

        char *address;     /* the address rule's result */
        char *socket_path; /* for unix:path= addresses, else NULL */
        char *lock_path;   /* <socket_path>.lock */
        int lock_fd;       /* held flock, or -1 */

        bool socket_ours; /* the socket file at socket_path is the one our daemon created */
        dev_t socket_dev;
        ino_t socket_ino;

        child_t *daemon;
        child_t *gateway; /* the NFY gateway, while the whitelist has rules (G-84, G-86) */
        char *gateway_name; /* its control connection's unique bus name (its ready line) */
        long long gateway_starts[GATEWAY_RESTARTS_MAX]; /* when, ms, oldest first */
        bool filter_added;
        DBusConnection *conn;
        _Atomic(bus_loop_t *) loop;
        broker_t *broker;

        bool started;
        atomic_bool stop_requested;

        /* The idle heap trim (loop thread). */
        uint64_t trim_seen;     /* broker_n_handled() when last looked at */
        long long trim_busy_ms; /* when it last changed */
        bool trimmed;           /* nothing handled since the last trim */
        long long input_checked_ms; /* the last look at the socket (server_idle) */
        bool input_empty;           /* what it saw */
        uint64_t input_checked_n;   /* broker_n_handled() then */
        long long caught_up_due_ms; /* when the broker wants to be told again (server_idle) */
};

/* Where internal results become the public ones: the one place (style.md). */
enum server_phase {
        PHASE_CONFIG, /* reading the whitelist file */
        PHASE_START,  /* creating the endpoint, starting the bus, owning the name */
        PHASE_SERVE,
};

static vfiipc_result server_result(int r, enum server_phase phase)
{
        if (r >= 0)
                return VFIIPC_OK;
        if (r == -ENOMEM)
                return VFIIPC_ERR_SERVER;
        switch (phase) {
        case PHASE_CONFIG:
                /* SRV-4, SRVF-7: invalid content vs. a file that cannot be opened or read. */
                return r == -EBADMSG ? VFIIPC_ERR_CONFIG_SYNTAX : VFIIPC_ERR_CONFIG_FILE;
        case PHASE_START:
                /* G-66: the endpoint may not be created. Everything else, a running server
                 * (-EBUSY) included, is a server error (G-67). */
                return r == -EACCES || r == -EPERM ? VFIIPC_ERR_PERMISSION : VFIIPC_ERR_SERVER;
        case PHASE_SERVE:
        default:
                return VFIIPC_ERR_SERVER;
        }
}

/* ---- the socket's directory ------------------------------------------------------------ */

/* mkdir -p; the last component gets `mode` exactly (not reduced by the umask) when we create
 * it, missing ancestors 0755. An existing directory is left as it is. */
static int dir_make(const char *dir, mode_t mode)
{
        _cleanup_free_ char *p = strdup(dir);
        struct stat st;

        if (!p)
                return -ENOMEM;
        for (char *slash = p + 1;; slash++) {
                bool last;

                slash = strchr(slash, '/');
                last = !slash || slash[strspn(slash, "/")] == '\0';
                if (slash)
                        *slash = '\0';
                if (mkdir(p, last ? mode : 0755) == 0) {
                        if (last && chmod(p, mode) < 0)
                                return -errno;
                } else if (errno != EEXIST)
                        return -errno;
                if (last)
                        break;
                *slash = '/';
        }
        if (stat(p, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int server_make_dir(vfiipc_server *s)
{
        _cleanup_free_ char *dir = strdup(s->socket_path), *own = NULL;
        const char *rt = getenv("XDG_RUNTIME_DIR");
        mode_t mode = 0755;
        char *slash;
        int r;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0; /* relative name in the working directory, or a socket in / */
        *slash = '\0';
        /* The per-user default directory is private to its user; /run/vfiipc (the system-wide
         * default) and directories named by VFIIPC_BUS_ADDRESS are searchable by all, the
         * socket being what the bus policy guards. */
        if (!isempty(rt) && rt[0] == '/') {
                if (asprintf(&own, "%s/vfiipc", rt) < 0) {
                        own = NULL;
                        return -ENOMEM;
                }
                if (streq(own, dir))
                        mode = 0700;
        }
        r = dir_make(dir, mode);
        if (r < 0)
                return nfy_log_errno(LOG_ERR, r, "cannot create the bus directory %s", dir);
        return 0;
}

/* ---- the single-instance lock (SRV-5, G-67) --------------------------------------------- */

static int server_lock(vfiipc_server *s)
{
        if (asprintf(&s->lock_path, "%s.lock", s->socket_path) < 0) {
                s->lock_path = NULL;
                return -ENOMEM;
        }
        for (int i = 0; i < LOCK_TRIES; i++) {
                struct stat a, b;
                int fd;

                fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (fd < 0) {
                        int r = -errno;
                        return nfy_log_errno(LOG_ERR, r, "cannot open the lock file %s",
                                             s->lock_path);
                }
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                        close(fd);
                        if (r == -EBUSY)
                                nfy_log(LOG_ERR, "a notification server runs already on %s",
                                        s->address);
                        else
                                nfy_log_errno(LOG_ERR, r, "cannot lock %s", s->lock_path);
                        return r;
                }
                /* A server that shuts down unlinks its lock file while holding it; if we
                 * opened that file just before, our lock is on an orphan inode. Only the
                 * lock on the file that the path names counts. */
                if (fstat(fd, &a) == 0 && stat(s->lock_path, &b) == 0 && a.st_dev == b.st_dev &&
                    a.st_ino == b.st_ino) {
                        s->lock_fd = fd;
                        return 0;
                }
                close(fd);
        }
        return nfy_log(LOG_ERR, "cannot take the lock %s: it keeps being replaced", s->lock_path),
               -EBUSY;
}

/* ---- is somebody there already? --------------------------------------------------------- */

/* One call to the bus driver, bounded by the deadline also while authenticating: the
 * blocking libdbus calls (dbus_bus_register(), send_with_reply_and_block()) first flush
 * without a timeout, which never returns against a listener that does not speak D-Bus. */
static DBusMessage *bus_call(DBusConnection *c, const char *method, const char *arg,
                             long long deadline)
{
        DBusPendingCall *pending = NULL;
        DBusMessage *m, *reply = NULL;

        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         method);
        if (!m)
                return NULL;
        if ((arg && !dbus_message_append_args(m, DBUS_TYPE_STRING, &arg, DBUS_TYPE_INVALID)) ||
            !dbus_connection_send_with_reply(c, m, &pending, PROBE_TIMEOUT_MS) || !pending) {
                dbus_message_unref(m);
                return NULL;
        }
        dbus_message_unref(m);
        while (!dbus_pending_call_get_completed(pending)) {
                long long left = deadline - monotonic_ms(CLOCK_MONOTONIC);
                if (left <= 0 || !dbus_connection_read_write(c, (int)left))
                        break;
        }
        if (dbus_pending_call_get_completed(pending))
                reply = dbus_pending_call_steal_reply(pending);
        else
                dbus_pending_call_cancel(pending);
        dbus_pending_call_unref(pending);
        if (reply && dbus_message_get_type(reply) != DBUS_MESSAGE_TYPE_METHOD_RETURN) {
                dbus_message_unref(reply);
                reply = NULL;
        }
        return reply;
}

/* 1: a bus answers on address and the broker name has an owner; 0: a bus answers without
 * one; -ECONNREFUSED: no bus answers (nothing listens, it is no D-Bus, or it refuses us),
 * all within PROBE_TIMEOUT_MS. */
static int bus_probe(const char *address)
{
        long long deadline = monotonic_ms(CLOCK_MONOTONIC) + PROBE_TIMEOUT_MS;
        DBusError err = DBUS_ERROR_INIT;
        const char *name = VFIIPC_BROKER_NAME;
        DBusConnection *c;
        DBusMessage *reply;
        dbus_bool_t owned = FALSE;
        int r = -ECONNREFUSED;

        c = dbus_connection_open_private(address, &err);
        if (!c)
                goto out;
        dbus_connection_set_exit_on_disconnect(c, FALSE);
        reply = bus_call(c, "Hello", NULL, deadline);
        if (!reply)
                goto out;
        dbus_message_unref(reply);
        reply = bus_call(c, "NameHasOwner", name, deadline);
        if (!reply)
                goto out;
        if (dbus_message_get_args(reply, &err, DBUS_TYPE_BOOLEAN, &owned, DBUS_TYPE_INVALID))
                r = owned ? 1 : 0;
        dbus_message_unref(reply);
out:
        if (c) {
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        dbus_error_free(&err);
        return r;
}

/* 0: nothing at path; 1: something listens; 2: something listens with a full backlog (a
 * blocking connect, as libdbus does, would hang); -ECONNREFUSED: a socket file nobody listens
 * on; -ENOTSOCK: not a socket; -errno. */
static int socket_probe(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                return 1;
        if (errno == EAGAIN || errno == EINPROGRESS)
                return 2;
        return errno == ENOENT ? 0 : -errno;
}

/* Leaves socket_path free for our daemon: 0 when nothing is there (a stale socket is
 * removed), -EBUSY when a server or another live bus answers (left untouched, G-67). */
static int server_clear_socket(vfiipc_server *s)
{
        long long settle = monotonic_ms(CLOCK_MONOTONIC) + PROBE_SETTLE_MS;
        int r;

        for (;;) {
                r = socket_probe(s->socket_path);
                if (r == 0)
                        return 0;
                if (r == -ECONNREFUSED) {
                        /* Left behind by a server that was killed (its bus died with it). */
                        if (unlink(s->socket_path) < 0 && errno != ENOENT) {
                                r = -errno;
                                return nfy_log_errno(LOG_ERR, r,
                                                     "cannot remove the stale socket %s",
                                                     s->socket_path);
                        }
                        nfy_log(LOG_NOTICE, "removed the stale socket %s", s->socket_path);
                        return 0;
                }
                if (r == -ENOTSOCK)
                        return nfy_log(LOG_ERR, "%s exists and is no socket; not replacing it",
                                       s->socket_path),
                               -EEXIST;
                if (r < 0)
                        return nfy_log_errno(LOG_ERR, r, "cannot probe %s", s->socket_path);

                if (r == 1 && bus_probe(s->address) == 1)
                        return nfy_log(LOG_ERR, "a notification server runs already on %s",
                                       s->address),
                               -EBUSY;
                /* Something listens but is no server: most likely the bus of a server killed
                 * a moment ago, which PDEATHSIG is taking down right now. Give it time; if it
                 * stays, it is someone else's bus, and we do not steal its address. */
                if (monotonic_ms(CLOCK_MONOTONIC) >= settle)
                        return nfy_log(LOG_ERR,
                                       "something answers on %s that is no notification server; "
                                       "not replacing it",
                                       s->address),
                               -EBUSY;
                usleep(50 * 1000);
        }
}

/* ---- the bus and the broker ------------------------------------------------------------- */

/* The gateway's dedicated user: VFIIPC_GATEWAY_USER, else the build option gateway_user. */
static const char *gateway_user_name(void)
{
        const char *u = getenv(VFIIPC_ENV_GATEWAY_USER);

        return isempty(u) ? VFIIPC_GATEWAY_USER_DEFAULT : u;
}

/* The user the gateway drops to: only when the server runs as root (design.md "Remote
 * access"); NULL otherwise, or when there are no rules (no gateway at all). */
static const char *server_gateway_user(const vfiipc_server *s)
{
        if (whitelist_n_rules(s->whitelist) == 0 || geteuid() != 0)
                return NULL;
        return gateway_user_name();
}

static const char *server_bus_config(void)
{
        const char *config = getenv(VFIIPC_ENV_BUS_CONFIG);

        return isempty(config) ? VFIIPC_BUS_CONFIG_DEFAULT : config;
}

/* With a gateway user the daemon gets a generated configuration: the installed one plus the
 * gateway's policy (lib/broker/policy.h). Written next to the socket (or in the temp dir for
 * other addresses), read by dbus-daemon at start, removed right after. *ret NULL: none needed. */
static int server_write_config(vfiipc_server *s, const char *base, char **ret)
{
        const char *user = server_gateway_user(s);
        _cleanup_free_ char *text = NULL, *dir = NULL, *path = NULL;
        _cleanup_close_ int fd = -1;
        size_t len, off = 0;
        int r;

        *ret = NULL;
        if (!user)
                return 0;
        /* Fail here with a clear message rather than with a gateway that cannot start. */
        if (!getpwnam(user))
                return nfy_log(LOG_ERR,
                               "the NFY gateway's user '%s' does not exist: create it (the Debian "
                               "package does) or name another one in %s",
                               user, VFIIPC_ENV_GATEWAY_USER),
                       -ENOENT;
        r = policy_bus_config(s->whitelist, base, user, &text);
        if (r < 0)
                return r;
        if (s->socket_path && strrchr(s->socket_path, '/')) {
                dir = strndup(s->socket_path, (size_t)(strrchr(s->socket_path, '/') - s->socket_path));
        } else {
                const char *t = getenv("TMPDIR");
                dir = strdup(isempty(t) ? "/tmp" : t);
        }
        if (!dir || asprintf(&path, "%s/.vfiipc-bus-XXXXXX", dir) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                return nfy_log_errno(LOG_ERR, r, "cannot write the bus configuration in %s", dir);
        }
        len = strlen(text);
        while (off < len) {
                ssize_t n = write(fd, text + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        (void)unlink(path);
                        return nfy_log_errno(LOG_ERR, r, "cannot write %s", path);
                }
                off += (size_t)n;
        }
        *ret = path;
        path = NULL;
        return 0;
}

static int server_spawn(vfiipc_server *s)
{
        const char *base = server_bus_config();
        _cleanup_free_ char *generated = NULL, *a_config = NULL, *a_address = NULL;
        char print[] = "--print-address=3", nofork[] = "--nofork", nopid[] = "--nopidfile",
             nosys[] = "--nosyslog";
        struct stat st;
        int r;

        /* dbus-daemon would only say "exited with 1"; name the file. Not -EACCES: that would
         * read as "may not create the endpoint" (G-66). */
        if (access(base, R_OK) < 0) {
                r = -errno;
                nfy_log_errno(LOG_ERR, r, "bus configuration %s", base);
                return -ENOENT;
        }
        r = server_write_config(s, base, &generated);
        if (r < 0)
                return r;
        if (asprintf(&a_config, "--config-file=%s", generated ? generated : base) < 0)
                a_config = NULL;
        if (asprintf(&a_address, "--address=%s", s->address) < 0)
                a_address = NULL;
        if (!a_config || !a_address) {
                r = -ENOMEM;
        } else {
                char *argv[] = {(char *)VFIIPC_DBUS_DAEMON, a_config, a_address, nofork, nopid,
                                nosys, print, NULL};
                r = child_start("dbus-daemon", argv, DAEMON_READY_TIMEOUT_MS, &s->daemon);
        }
        if (generated)
                (void)unlink(generated); /* read at start; a reload keeps the running policy */
        if (r < 0)
                return nfy_log_errno(LOG_ERR, r, "cannot start %s on %s", VFIIPC_DBUS_DAEMON,
                                     s->address);
        /* Remember which socket file is ours: free() removes only that one. */
        if (s->socket_path && lstat(s->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                s->socket_ours = true;
                s->socket_dev = st.st_dev;
                s->socket_ino = st.st_ino;
        }
        return 0;
}

/* VFIIPC_NFY_PORT, or 5899 (NFY-1). */
static int server_nfy_port(unsigned *ret)
{
        const char *v = getenv(VFIIPC_ENV_NFY_PORT);
        char *end;
        unsigned long p;

        if (isempty(v)) {
                *ret = VFIIPC_NFY_PORT_DEFAULT;
                return 0;
        }
        errno = 0;
        p = strtoul(v, &end, 10);
        if (errno || *end || v[0] < '0' || v[0] > '9' || p == 0 || p > 65535)
                return nfy_log(LOG_ERR, "%s=\"%s\" is not a TCP port (1…65535)",
                               VFIIPC_ENV_NFY_PORT, v),
                       -EINVAL;
        *ret = (unsigned)p;
        return 0;
}

/* G-84, G-86: the gateway runs only when the configuration has at least one in/out rule. It
 * is its own process and bus principal (the network-facing parser stays out of this
 * process), dies with the server (PDEATHSIG) and is stopped before the bus. */
static int server_start_gateway(vfiipc_server *s)
{
        const char *program = getenv(VFIIPC_ENV_NFY_GATEWAY), *user = server_gateway_user(s);
        size_t n_if = whitelist_n_interfaces(s->whitelist), k = 0;
        char port_s[16], a_bus[] = "--bus", a_port[] = "--port", a_if[] = "--interface",
                         a_user[] = "--user", a_ready[] = "--ready-fd", three[] = "3";
        _cleanup_free_ char **argv = NULL;
        unsigned port;
        int r;

        if (whitelist_n_rules(s->whitelist) == 0)
                return 0;
        if (isempty(program))
                program = VFIIPC_NFY_GATEWAY_DEFAULT;
        r = server_nfy_port(&port);
        if (r < 0)
                return r;
        snprintf(port_s, sizeof(port_s), "%u", port);
        argv = calloc(12 + 2 * n_if, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        argv[k++] = (char *)program;
        argv[k++] = a_bus;
        argv[k++] = (char *)child_line(s->daemon);
        argv[k++] = a_port;
        argv[k++] = port_s;
        for (size_t i = 0; i < n_if; i++) {
                argv[k++] = a_if;
                argv[k++] = (char *)whitelist_interface(s->whitelist, i);
        }
        if (user) {
                argv[k++] = a_user;
                argv[k++] = (char *)user;
        }
        argv[k++] = a_ready;
        argv[k++] = three;
        argv[k] = NULL;
        r = child_start("nfy-gateway", argv, GATEWAY_READY_TIMEOUT_MS, &s->gateway);
        if (r < 0)
                return nfy_log_errno(LOG_ERR, r, "cannot start the NFY gateway %s%s", program,
                                     user ? " (is the bus socket reachable for its user?)" : ""),
                       r == -ENOMEM ? r : -ECHILD;
        /* "READY <unique name>": the name whose end tells us that the gateway ended. */
        free(s->gateway_name);
        s->gateway_name = NULL;
        if (strncmp(child_line(s->gateway), "READY :", 7) == 0)
                s->gateway_name = strdup(child_line(s->gateway) + 6);
        memmove(s->gateway_starts, s->gateway_starts + 1,
                sizeof(s->gateway_starts) - sizeof(s->gateway_starts[0]));
        s->gateway_starts[GATEWAY_RESTARTS_MAX - 1] = monotonic_ms(CLOCK_MONOTONIC);
        nfy_log(LOG_NOTICE, "NFY gateway %d serves TCP port %u%s%s", (int)child_pid(s->gateway),
                port, user ? " as user " : "", user ? user : "");
        return 0;
}

/* The gateway's bus connection ended: it crashed, was killed, or lost the bus. Start a new one
 * unless that has happened GATEWAY_RESTARTS_MAX times within the window. On the loop thread,
 * which blocks while the new gateway starts (its start needs the bus driver, not the broker). */
static void server_gateway_lost(vfiipc_server *s)
{
        long long now = monotonic_ms(CLOCK_MONOTONIC);
        int r;

        nfy_log(LOG_ERR, "the NFY gateway %d ended; remote peers were disconnected",
                (int)child_pid(s->gateway));
        s->gateway = child_free(s->gateway, GATEWAY_STOP_GRACE_MS);
        free(s->gateway_name);
        s->gateway_name = NULL;
        if (s->gateway_starts[0] && now - s->gateway_starts[0] < GATEWAY_RESTART_WINDOW_MS) {
                nfy_log(LOG_ERR,
                        "the NFY gateway ended %d times within %d s: not starting it again; "
                        "remote access is off until the server restarts",
                        GATEWAY_RESTARTS_MAX, GATEWAY_RESTART_WINDOW_MS / 1000);
                return;
        }
        r = server_start_gateway(s);
        if (r < 0)
                nfy_log_errno(LOG_ERR, r, "cannot restart the NFY gateway; remote access is off");
}

static DBusHandlerResult server_filter(DBusConnection *c, DBusMessage *m, void *userdata)
{
        vfiipc_server *s = userdata;
        const char *sender, *name, *old_owner, *new_owner;

        if (!s->gateway_name || dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL ||
            !dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameOwnerChanged"))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        sender = dbus_message_get_sender(m);
        /* The broker's match rule (names lost) brings these; only the driver may send them. */
        if (sender && streq(sender, DBUS_SERVICE_DBUS) &&
            dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &old_owner,
                                  DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID) &&
            streq(name, s->gateway_name) && isempty(new_owner))
                server_gateway_lost(s);
        return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static int server_connect(vfiipc_server *s)
{
        DBusError err = DBUS_ERROR_INIT;
        int r = -ECONNREFUSED, rn;

        s->conn = dbus_connection_open_private(child_line(s->daemon), &err);
        if (!s->conn)
                goto fail;
        /* The library decides what a lost bus means (serve returns), never libdbus' exit(). */
        dbus_connection_set_exit_on_disconnect(s->conn, FALSE);
        if (!dbus_bus_register(s->conn, &err))
                goto fail;
        rn = dbus_bus_request_name(s->conn, VFIIPC_BROKER_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
        if (rn < 0)
                goto fail;
        if (rn != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
                /* Our own fresh bus, so someone raced us to it: still "a second server". */
                nfy_log(LOG_ERR, "%s is owned by someone else on %s", VFIIPC_BROKER_NAME,
                        s->address);
                return -EBUSY;
        }
        nfy_log(LOG_INFO, "%s owned by %s", VFIIPC_BROKER_NAME, dbus_bus_get_unique_name(s->conn));
        return 0;
fail:
        if (dbus_error_is_set(&err)) {
                if (dbus_error_has_name(&err, DBUS_ERROR_NO_MEMORY))
                        r = -ENOMEM;
                nfy_log(LOG_ERR, "cannot own %s on %s: %s", VFIIPC_BROKER_NAME, s->address,
                        err.message);
        }
        dbus_error_free(&err);
        return r;
}

/* Undoes start, in reverse order; leaves s as after new(). Loop thread (bus_loop_free). */
static void server_teardown(vfiipc_server *s)
{
        /* The gateway first: its peers' connections end while the broker still listens. */
        if (s->filter_added)
                dbus_connection_remove_filter(s->conn, server_filter, s);
        s->filter_added = false;
        s->gateway = child_free(s->gateway, GATEWAY_STOP_GRACE_MS);
        free(s->gateway_name);
        s->gateway_name = NULL;
        memset(s->gateway_starts, 0, sizeof(s->gateway_starts));
        s->broker = broker_free(s->broker);
        bus_loop_free(atomic_exchange(&s->loop, NULL));
        if (s->conn) {
                dbus_connection_close(s->conn);
                dbus_connection_unref(s->conn);
                s->conn = NULL;
        }
        s->daemon = child_free(s->daemon, DAEMON_STOP_GRACE_MS);
        if (s->socket_ours) {
                struct stat st;
                /* dbus-daemon removes its socket on SIGTERM; after a SIGKILL it is left. A
                 * file of the same name that is not ours (someone replaced it) stays. */
                if (lstat(s->socket_path, &st) == 0 && st.st_dev == s->socket_dev &&
                    st.st_ino == s->socket_ino)
                        (void)unlink(s->socket_path);
                s->socket_ours = false;
        }
        if (s->lock_fd >= 0) {
                /* Unlink while still holding it: see server_lock() for the race it creates and
                 * how the next server copes with it. */
                (void)unlink(s->lock_path);
                close(s->lock_fd);
                s->lock_fd = -1;
        }
        free(s->lock_path);
        s->lock_path = NULL;
        free(s->socket_path);
        s->socket_path = NULL;
        free(s->address);
        s->address = NULL;
        s->started = false;
}

static int server_start(vfiipc_server *s)
{
        bus_loop_t *loop = NULL;
        int r;

        if (s->started)
                return -EALREADY;
        r = bus_address_get(&s->address);
        if (r < 0)
                return r;
        r = bus_address_unix_path(s->address, &s->socket_path);
        if (r < 0) {
                nfy_log(LOG_ERR, "unusable bus address \"%s\"", s->address);
                server_teardown(s);
                return r;
        }

        if (s->socket_path) {
                r = server_make_dir(s);
                if (r >= 0)
                        r = server_lock(s);
                if (r >= 0)
                        r = server_clear_socket(s);
        } else {
                /* No lock without a file system path: ask whoever answers there. */
                r = bus_probe(s->address);
                if (r == 1) {
                        nfy_log(LOG_ERR, "a notification server runs already on %s", s->address);
                        r = -EBUSY;
                } else
                        r = 0;
        }
        if (r >= 0)
                r = server_spawn(s);
        if (r >= 0)
                r = server_connect(s);
        if (r >= 0)
                r = bus_loop_new(s->conn, &loop);
        if (r >= 0) {
                atomic_store(&s->loop, loop);
                bus_loop_set_output_max(loop, OUTPUT_QUEUE_MAX);
                dbus_connection_set_max_received_size(s->conn, INPUT_QUEUE_MAX);
                r = broker_new(s->conn, s->whitelist, &s->broker);
                if (r < 0)
                        nfy_log_errno(LOG_ERR, r, "cannot set up the broker");
        }
        if (r >= 0 && whitelist_n_rules(s->whitelist) > 0) {
                s->filter_added = dbus_connection_add_filter(s->conn, server_filter, s, NULL);
                r = s->filter_added ? server_start_gateway(s) : -ENOMEM;
        }
        if (r < 0) {
                server_teardown(s);
                return r;
        }
        s->started = true;
        nfy_log(LOG_NOTICE, "notification server running on %s (remote access %s)", s->address,
                s->whitelist ? "configured" : "disabled");
        return 0;
}

/* ---- the public API --------------------------------------------------------------------- */

VFIIPC_PUBLIC vfiipc_result vfiipc_server_new(const char *config_file, vfiipc_server **ret)
{
        vfiipc_server *s;
        int r;

        if (!ret)
                return VFIIPC_ERR_SERVER;
        s = calloc(1, sizeof(*s));
        if (!s)
                return VFIIPC_ERR_SERVER;
        s->lock_fd = -1;
        atomic_init(&s->loop, NULL);
        atomic_init(&s->stop_requested, false);

        /* SRVF-6/SVC-3a: NULL is "no configuration". G-67: read before anything is bound;
         * the whitelist module logs the file and line. */
        if (config_file) {
                r = whitelist_load(config_file, &s->whitelist, NULL);
                if (r < 0) {
                        free(s);
                        return server_result(r, PHASE_CONFIG);
                }
        }
        *ret = s;
        return VFIIPC_OK;
}

VFIIPC_PUBLIC vfiipc_result vfiipc_server_start(vfiipc_server *s)
{
        if (!s)
                return VFIIPC_ERR_SERVER;
        return server_result(server_start(s), PHASE_START);
}

/* The loop's idle hook: tells the broker when it has read all its input (stall times count
 * from there, protocol.h "Ack"; Marks go out), at most once per ms; while idle, every
 * CAUGHT_UP_TICK_MS or sooner when the broker has a Mark due; and, once the broker has been
 * idle for TRIM_IDLE_MS, yields for the heap trim. */
static int server_idle(void *data)
{
        vfiipc_server *s = data;
        uint64_t n = broker_n_handled(s->broker);
        long long now = monotonic_ms(CLOCK_MONOTONIC);
        int wait;

        if (now != s->input_checked_ms) {
                struct pollfd pfd = {.events = POLLIN};

                s->input_checked_ms = now;
                s->input_checked_n = n;
                /* A unix or tcp bus address alike; without a socket, what libdbus read is all. */
                s->input_empty = !dbus_connection_get_socket(s->conn, &pfd.fd) ||
                                 poll(&pfd, 1, 0) == 0;
                if (s->input_empty) {
                        int next = broker_caught_up(s->broker);

                        if (next < 0 || next > CAUGHT_UP_TICK_MS)
                                next = CAUGHT_UP_TICK_MS;
                        s->caught_up_due_ms = now + next;
                }
        }
        /* Looked at already this ms: if input was waiting then, or the broker has handled some
         * since, look again next ms (or a Mark it made due waits for the tick, issue #7's CI). */
        if (!s->input_empty || n != s->input_checked_n)
                wait = 1;
        else
                wait = s->caught_up_due_ms > now ? (int)(s->caught_up_due_ms - now) : 1;

        if (n != s->trim_seen) {
                s->trim_seen = n;
                s->trim_busy_ms = now;
                s->trimmed = false;
        }
        if (s->trimmed)
                return wait;
        if (now - s->trim_busy_ms < TRIM_IDLE_MS) {
                int left = (int)(TRIM_IDLE_MS - (now - s->trim_busy_ms)) + 1;
                return left < wait ? left : wait;
        }
        s->trimmed = true;
        return BUS_LOOP_YIELD; /* to vfiipc_server_serve(), which trims */
}

static void *server_loop_thread(void *data)
{
        vfiipc_server *s = data;

        return (void *)(intptr_t)bus_loop_run(atomic_load(&s->loop));
}

/* Runs the loop on a thread of its own until it returns. Why a thread, and a new one after
 * each idle trim: glibc keeps up to 7 freed chunks of each size up to 1 KiB in a cache per
 * thread (tcache), which malloc_trim() cannot return, as to the arena they are in use. After a
 * burst the cached ones are the last freed, scattered over the pages the burst grew the heap
 * to, and keep those resident: measured on the idle server after the benchmark, 443 cached
 * chunks (237 KB) kept ~180 of the heap's 228 resident pages, where the live data needed ~50
 * (issue #7). A thread that ends hands its cache back, so the trim after it returns them too.
 * The loop's state lives in the server and the connection, not on the thread; the broker is
 * never on two threads at once. Without a thread (pthread_create failed): on this one. */
static int server_loop_run(vfiipc_server *s)
{
        pthread_t t;
        void *r;

        if (pthread_create(&t, NULL, server_loop_thread, s) != 0)
                return (int)(intptr_t)server_loop_thread(s);
        pthread_setname_np(t, "vfiipc-broker"); /* for top -H and gdb; best effort */
        pthread_join(t, &r);
        return (int)(intptr_t)r;
}

VFIIPC_PUBLIC vfiipc_result vfiipc_server_serve(vfiipc_server *s)
{
        bus_loop_t *loop;
        int r;

        if (!s || !s->started)
                return VFIIPC_ERR_SERVER;
        /* A stop that came before the loop existed (signal during start). */
        if (atomic_load(&s->stop_requested))
                return VFIIPC_OK;
        loop = atomic_load(&s->loop);
        bus_loop_set_idle(loop, server_idle, s);
        /* 1: the loop yielded to trim, with the cache of the thread it ran on returned. */
        while ((r = server_loop_run(s)) == 1)
                malloc_trim(0);
        if (r < 0)
                nfy_log_errno(LOG_ERR, r, "the bus %s went away", s->address);
        else
                nfy_log(LOG_NOTICE, "notification server stopping");
        return server_result(r, PHASE_SERVE);
}

VFIIPC_PUBLIC void vfiipc_server_stop(vfiipc_server *s)
{
        bus_loop_t *loop;

        /* Async-signal-safe: lock-free atomics and bus_loop_quit() (an eventfd write). */
        if (!s)
                return;
        atomic_store(&s->stop_requested, true);
        loop = atomic_load(&s->loop);
        if (loop)
                bus_loop_quit(loop);
}

VFIIPC_PUBLIC vfiipc_server *vfiipc_server_free(vfiipc_server *s)
{
        if (!s)
                return NULL;
        server_teardown(s);
        whitelist_free(s->whitelist);
        free(s);
        return NULL;
}

VFIIPC_PUBLIC vfiipc_result vfiipc_server_policy(const char *config_file, char **ret)
{
        whitelist_t *wl = NULL;
        int r;

        if (!config_file || !ret)
                return VFIIPC_ERR_CONFIG_FILE;
        r = whitelist_load(config_file, &wl, NULL);
        if (r < 0)
                return server_result(r, PHASE_CONFIG);
        /* As a server started as root would write it (server_write_config). */
        r = policy_bus_config(wl, server_bus_config(), gateway_user_name(), ret);
        whitelist_free(wl);
        return r < 0 ? VFIIPC_ERR_SERVER : VFIIPC_OK;
}

VFIIPC_PUBLIC vfiipc_result vfiipc_server_run(const char *config_file)
{
        vfiipc_server *s = NULL;
        vfiipc_result r;

        /* ipcNotificationServer(): returns only on error (SRVF-2), with everything freed. */
        r = vfiipc_server_new(config_file, &s);
        if (r != VFIIPC_OK)
                return r;
        r = vfiipc_server_start(s);
        if (r == VFIIPC_OK)
                r = vfiipc_server_serve(s);
        vfiipc_server_free(s);
        /* serve returns OK only after vfiipc_server_stop(), which nobody can call on this
         * server; should it still happen, an error is the only thing this function returns. */
        return r == VFIIPC_OK ? VFIIPC_ERR_SERVER : r;
}

VFIIPC_PUBLIC char *vfiipc_bus_address(void)
{
        char *a = NULL;

        if (bus_address_get(&a) < 0)
                return NULL;
        return a;
}
