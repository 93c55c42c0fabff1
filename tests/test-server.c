/* tests/test-server.c — the server process: start-up, single instance, exit codes, shutdown,
 * crash, stale endpoints, directory creation, the bus limits (SRVF-1…9, SRV-1…5, G-66, G-67,
 * G-95; notification-service.md §10 scenarios 1 and 9; design.md "The private bus"). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dbus/dbus.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "bus/protocol.h"
#include "server-fixture.h"
#include "vfiipc/notify.h"

#define DEADLINE_MS 5000

/* ---- helpers ---------------------------------------------------------------------------- */

/* A fresh temp dir and address, no server yet (server_fixture_restart() starts one). */
static void fixture_prepare(server_fixture_t *f, const char *subpath)
{
        GError *error = NULL;

        f->dir = g_dir_make_tmp("vfiipc-test-XXXXXX", &error);
        g_assert_no_error(error);
        f->address = g_strdup_printf("unix:path=%s/%s", f->dir, subpath ? subpath : "bus");
        g_setenv(VFIIPC_ENV_BUS_ADDRESS, f->address, TRUE);
        f->pid = 0;
}

static char *fixture_path(server_fixture_t *f, const char *name)
{
        return g_build_filename(f->dir, name, NULL);
}

static void setup_started(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_start(f);
}

static void setup_none(server_fixture_t *f, gconstpointer unused)
{
        fixture_prepare(f, NULL);
}

static void setup_nested(server_fixture_t *f, gconstpointer unused)
{
        fixture_prepare(f, "a/b/bus");
}

static void teardown(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_stop(f);
}

static DBusConnection *bus_open(const char *address)
{
        DBusError err = DBUS_ERROR_INIT;
        DBusConnection *c = dbus_connection_open_private(address, &err);

        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (!dbus_bus_register(c, &err)) {
                        dbus_connection_close(c);
                        dbus_connection_unref(c);
                        c = NULL;
                }
        }
        dbus_error_free(&err);
        return c;
}

static void bus_close(DBusConnection *c)
{
        if (!c)
                return;
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* The pid behind a name on the bus; org.freedesktop.DBus gives the dbus-daemon's own. */
static pid_t bus_name_pid(const char *address, const char *name)
{
        DBusError err = DBUS_ERROR_INIT;
        DBusConnection *c = bus_open(address);
        DBusMessage *m, *reply;
        dbus_uint32_t pid = 0;

        g_assert_nonnull(c);
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "GetConnectionUnixProcessID");
        g_assert_true(dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID));
        reply = dbus_connection_send_with_reply_and_block(c, m, DEADLINE_MS, &err);
        dbus_message_unref(m);
        if (!reply)
                g_error("GetConnectionUnixProcessID(%s): %s", name, err.message);
        g_assert_true(
            dbus_message_get_args(reply, &err, DBUS_TYPE_UINT32, &pid, DBUS_TYPE_INVALID));
        dbus_message_unref(reply);
        bus_close(c);
        return (pid_t)pid;
}

/* True once no bus answers on address any more. */
static bool wait_bus_gone(const char *address, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

        for (;;) {
                DBusConnection *c = bus_open(address);
                if (!c)
                        return true;
                bus_close(c);
                if (g_get_monotonic_time() > deadline)
                        return false;
                g_usleep(10 * 1000);
        }
}

static int wait_exit_status(pid_t pid)
{
        int status;

        while (waitpid(pid, &status, 0) < 0)
                g_assert_cmpint(errno, ==, EINTR);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool file_exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

static ino_t file_ino(const char *path)
{
        struct stat st;

        g_assert_cmpint(lstat(path, &st), ==, 0);
        return st.st_ino;
}

static char *write_temp_config(server_fixture_t *f, const char *text)
{
        char *path = fixture_path(f, "notify.cfg");

        g_assert_true(g_file_set_contents(path, text, -1, NULL));
        return path;
}

/* ---- start-up and single instance ------------------------------------------------------ */

/* SRV-1, SRVF-1: the server owns the broker name on its private bus. */
static void test_start_owns_broker_name(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus"), *lock = fixture_path(f, "bus.lock");
        pid_t daemon;

        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
        g_assert_cmpint(bus_name_pid(f->address, VFIIPC_BROKER_NAME), ==, f->pid);
        daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);
        g_assert_cmpint(daemon, !=, f->pid);
        g_assert_cmpint(getpgid(daemon), ==, daemon); /* own process group: no terminal signals */
        g_assert_true(file_exists(sock));
        g_assert_true(file_exists(lock));
        g_free(sock);
        g_free(lock);
}

/* SRV-5, G-67, scenario 1: a second server fails at once, the first keeps working. */
static void test_second_server_exits_1(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus");
        ino_t before = file_ino(sock);
        gint64 t0 = g_get_monotonic_time();

        g_assert_cmpint(server_fixture_run_notifysvc(f, NULL), ==, 1);
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 3 * G_USEC_PER_SEC);
        g_assert_cmpint(file_ino(sock), ==, before);
        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
        g_assert_cmpint(bus_name_pid(f->address, VFIIPC_BROKER_NAME), ==, f->pid);
        g_free(sock);
}

/* SRV-5 in one process: the lock is per open file, so a second server object fails too. */
static void test_second_server_in_process(server_fixture_t *f, gconstpointer unused)
{
        vfiipc_server *s = NULL;

        g_assert_cmpint(vfiipc_server_new(NULL, &s), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_server_start(s), ==, VFIIPC_ERR_SERVER);
        vfiipc_server_free(s);
        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
}

/* ---- configuration errors (SRV-4, SRVF-7, scenario 9, G-67: nothing started) ------------ */

static void assert_nothing_started(server_fixture_t *f)
{
        char *sock = fixture_path(f, "bus"), *lock = fixture_path(f, "bus.lock");

        g_assert_false(file_exists(sock));
        g_assert_false(file_exists(lock));
        g_free(sock);
        g_free(lock);
}

static void test_missing_config_exits_4(server_fixture_t *f, gconstpointer unused)
{
        char *cfg = fixture_path(f, "no-such.cfg");
        const char *args[] = {cfg, NULL};

        g_assert_cmpint(server_fixture_run_notifysvc(f, args), ==, 4);
        assert_nothing_started(f);
        g_free(cfg);
}

static void test_bad_syntax_exits_5(server_fixture_t *f, gconstpointer unused)
{
        char *cfg = write_temp_config(f, "# three fields only\nin * *\n");
        const char *args[] = {cfg, NULL};

        g_assert_cmpint(server_fixture_run_notifysvc(f, args), ==, 5);
        assert_nothing_started(f);
        g_free(cfg);
}

/* The same through the C API, in process; and usage errors of the program. */
static void test_new_reports_config_errors(server_fixture_t *f, gconstpointer unused)
{
        char *missing = fixture_path(f, "no-such.cfg"), *cfg;
        vfiipc_server *s = NULL;
        const char *args[] = {"--bogus", NULL};

        g_assert_cmpint(vfiipc_server_new(missing, &s), ==, VFIIPC_ERR_CONFIG_FILE);
        g_assert_null(s);
        g_assert_cmpint(vfiipc_server_new(f->dir, &s), ==,
                        VFIIPC_ERR_CONFIG_FILE); /* a directory */
        g_assert_null(s);
        cfg = write_temp_config(f, "in * *\n");
        g_assert_cmpint(vfiipc_server_new(cfg, &s), ==, VFIIPC_ERR_CONFIG_SYNTAX);
        g_assert_null(s);
        g_free(cfg);
        cfg = write_temp_config(f, "# fine\nin * * *\n");
        g_assert_cmpint(vfiipc_server_new(cfg, &s), ==, VFIIPC_OK);
        g_assert_nonnull(s);
        s = vfiipc_server_free(s);
        g_assert_cmpint(vfiipc_server_new(NULL, &s), ==, VFIIPC_OK); /* SRVF-6 */
        s = vfiipc_server_free(s);
        vfiipc_server_free(NULL);
        /* ipcNotificationServer(path) with a bad file returns at once (SRVF-7). */
        g_assert_cmpint(vfiipc_server_run(missing), ==, VFIIPC_ERR_CONFIG_FILE);
        assert_nothing_started(f);

        g_assert_cmpint(server_fixture_run_notifysvc(f, args), ==, 64);
        g_free(missing);
        g_free(cfg);
}

/* ---- shutdown and crash ---------------------------------------------------------------- */

/* G-95: SIGTERM shuts down cleanly: exit 0, socket and lock removed, the bus gone. */
static void test_sigterm_clean_shutdown(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus"), *lock = fixture_path(f, "bus.lock");
        pid_t daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);

        g_assert_cmpint(kill(f->pid, SIGTERM), ==, 0);
        g_assert_cmpint(wait_exit_status(f->pid), ==, 0);
        f->pid = 0;
        g_assert_false(file_exists(sock));
        g_assert_false(file_exists(lock));
        g_assert_true(server_fixture_wait_pid_gone(daemon, DEADLINE_MS));
        g_assert_true(wait_bus_gone(f->address, DEADLINE_MS));
        g_free(sock);
        g_free(lock);
}

/* SIGINT (Ctrl-C) is a clean shutdown too. */
static void test_sigint_clean_shutdown(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus");

        g_assert_cmpint(kill(f->pid, SIGINT), ==, 0);
        g_assert_cmpint(wait_exit_status(f->pid), ==, 0);
        f->pid = 0;
        g_assert_false(file_exists(sock));
        g_free(sock);
}

/* A killed server takes its bus along (PDEATHSIG); the socket it leaves is stale and the next
 * server at the same address replaces it. */
static void test_sigkill_takes_bus_along(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus");
        pid_t daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);

        server_fixture_kill(f);
        g_assert_true(server_fixture_wait_pid_gone(daemon, DEADLINE_MS));
        g_assert_true(wait_bus_gone(f->address, DEADLINE_MS));
        g_assert_true(file_exists(sock)); /* nobody could remove it */

        server_fixture_restart(f); /* asserts readiness */
        g_assert_cmpint(bus_name_pid(f->address, VFIIPC_BROKER_NAME), ==, f->pid);
        g_free(sock);
}

/* G-67: a stale endpoint (a socket file nobody listens on) is replaced. */
static void test_stale_socket_replaced(server_fixture_t *f, gconstpointer unused)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char *sock = fixture_path(f, "bus");
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpuint(strlen(sock), <, sizeof(sa.sun_path));
        strcpy(sa.sun_path, sock);
        g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
        close(fd); /* bound, never listened, abandoned */
        g_assert_true(file_exists(sock));

        server_fixture_restart(f);
        g_assert_cmpint(bus_name_pid(f->address, VFIIPC_BROKER_NAME), ==, f->pid);
        g_free(sock);
}

/* G-67: something alive on the socket that is no notification server is not replaced. */
static void test_foreign_listener_kept(server_fixture_t *f, gconstpointer unused)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char *sock = fixture_path(f, "bus");
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ino_t ino;

        strcpy(sa.sun_path, sock);
        g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
        g_assert_cmpint(listen(fd, 16), ==, 0);
        ino = file_ino(sock);

        g_assert_cmpint(server_fixture_run_notifysvc(f, NULL), ==, 1);
        g_assert_cmpint(file_ino(sock), ==, ino);
        close(fd);
        g_free(sock);
}

/* ---- the endpoint's directory (G-66) ---------------------------------------------------- */

static void test_parent_dir_created(server_fixture_t *f, gconstpointer unused)
{
        char *dir = fixture_path(f, "a/b");
        struct stat st;

        server_fixture_restart(f);
        g_assert_cmpint(stat(dir, &st), ==, 0);
        g_assert_true(S_ISDIR(st.st_mode));
        g_assert_cmpint(st.st_mode & 07777, ==, 0755);
        g_free(dir);
}

/* A server spawned by a test ends with the test program, also when an assertion aborts it. */
static void child_die_with_parent(gpointer unused)
{
        prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/* Starts notifysvc without VFIIPC_BUS_ADDRESS and with XDG_RUNTIME_DIR = rt, so it uses the
 * per-user default endpoint; returns once a server answers at probe's address. f->pid is set,
 * so the teardown stops it should an assertion fail. */
static void spawn_default_server(server_fixture_t *f, const char *rt, server_fixture_t *probe)
{
        const char *argv[] = {g_getenv("VFIIPC_NOTIFYSVC"), NULL};
        char **envp = g_get_environ();
        GError *error = NULL;
        GPid pid;

        envp = g_environ_unsetenv(envp, VFIIPC_ENV_BUS_ADDRESS);
        envp = g_environ_setenv(envp, "XDG_RUNTIME_DIR", rt, TRUE);
        g_spawn_async(NULL, (char **)argv, envp,
                      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                          G_SPAWN_STDERR_TO_DEV_NULL,
                      child_die_with_parent, NULL, &pid, &error);
        g_assert_no_error(error);
        f->pid = pid;
        g_strfreev(envp);
        g_assert_true(server_fixture_wait_ready(probe, DEADLINE_MS));
}

/* The per-user default $XDG_RUNTIME_DIR/vfiipc/bus is created private (0700). */
static void test_runtime_dir_default(server_fixture_t *f, gconstpointer unused)
{
        char *rt = fixture_path(f, "rt"), *dir = fixture_path(f, "rt/vfiipc");
        char *address = g_strdup_printf("unix:path=%s/vfiipc/bus", rt);
        server_fixture_t probe = {.address = address};
        struct stat st;

        g_assert_cmpint(g_mkdir(rt, 0700), ==, 0);
        spawn_default_server(f, rt, &probe);
        g_assert_cmpint(stat(dir, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0700);

        /* vfiipc_bus_address() follows the same rule. */
        {
                const char *saved = g_getenv(VFIIPC_ENV_BUS_ADDRESS);
                char *keep = g_strdup(saved), *a, *old_rt = g_strdup(g_getenv("XDG_RUNTIME_DIR"));
                g_unsetenv(VFIIPC_ENV_BUS_ADDRESS);
                g_setenv("XDG_RUNTIME_DIR", rt, TRUE);
                a = vfiipc_bus_address();
                g_assert_cmpstr(a, ==, address);
                free(a);
                g_setenv(VFIIPC_ENV_BUS_ADDRESS, keep, TRUE);
                a = vfiipc_bus_address();
                g_assert_cmpstr(a, ==, keep);
                free(a);
                if (old_rt)
                        g_setenv("XDG_RUNTIME_DIR", old_rt, TRUE);
                else
                        g_unsetenv("XDG_RUNTIME_DIR");
                g_free(keep);
                g_free(old_rt);
        }

        g_assert_cmpint(kill(f->pid, SIGTERM), ==, 0);
        g_assert_cmpint(wait_exit_status(f->pid), ==, 0);
        f->pid = 0;
        g_free(address);
        g_free(dir);
        g_free(rt);
}

/* ---- who may reach the bus ----------------------------------------------------------------- */

/* Runs fn(data) in a child process as the user "nobody" and returns its exit status; -1 when
 * that is not possible here (not root, no such user), and the caller skips. */
static int run_as_nobody(int (*fn)(void *), void *data)
{
        struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
        pid_t pid;

        /* Under valgrind (meson test --setup valgrind) the forked child is leak-checked when it
         * _exit()s, with whatever the parent held in registers counted as lost, and its exit
         * status becomes valgrind's: no use. */
        if (!pw || pw->pw_uid == 0 || g_getenv("VFIIPC_TEST_VALGRIND"))
                return -1;
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(null, STDERR_FILENO); /* the library's refusals, expected here */
                if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                        _exit(126);
                _exit(fn(data));
        }
        return wait_exit_status(pid);
}

/* 0 when a plain connect() to the socket at path works, else the errno. */
static int unix_connect_errno(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r = 0;

        if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
                return EINVAL;
        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                r = errno;
        close(fd);
        return r;
}

typedef struct probe {
        const char *rt, *sock, *address;
} probe_t;

static void on_nobody_notify(void *data, const char *from, const char *to, const char *id,
                             const json_t *param, unsigned flags)
{
}

/* As another user: the runtime dir is reachable, its vfiipc dir is not, so neither is the bus. */
static int probe_private_dir(void *data)
{
        const probe_t *p = data;
        DBusError err = DBUS_ERROR_INIT;
        DBusConnection *c;
        struct stat st;
        int bad = 0;

        bad |= stat(p->rt, &st) == 0 ? 0 : 1; /* it is the vfiipc dir that stops us */
        bad |= unix_connect_errno(p->sock) == EACCES ? 0 : 2;
        c = dbus_connection_open_private(p->address, &err);
        if (c) {
                bad |= 4;
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        dbus_error_free(&err);
        /* G-66: the system denies access to the endpoint → NOTIFY_ERR_PERMISSION. The library
         * finds the bus by the default rule. */
        unsetenv(VFIIPC_ENV_BUS_ADDRESS);
        setenv("XDG_RUNTIME_DIR", p->rt, 1);
        bad |= vfiipc_register("n.id", on_nobody_notify, NULL, 0, "nobody-app") ==
                       VFIIPC_ERR_PERMISSION
                   ? 0
                   : 8;
        return bad;
}

/* The per-user default endpoint ($XDG_RUNTIME_DIR/vfiipc/bus without VFIIPC_BUS_ADDRESS) is in
 * a directory created 0700, so another user cannot even reach the socket: as root, a child
 * running as "nobody" finds the runtime dir (made searchable here on purpose) but cannot
 * connect(), nor open a D-Bus connection. */
static void test_runtime_dir_private_to_user(server_fixture_t *f, gconstpointer unused)
{
        char *rt = fixture_path(f, "rt"), *dir = fixture_path(f, "rt/vfiipc");
        char *sock = fixture_path(f, "rt/vfiipc/bus");
        char *address = g_strdup_printf("unix:path=%s", sock);
        server_fixture_t probe_fx = {.address = address};
        probe_t probe = {.rt = rt, .sock = sock, .address = address};
        struct stat st;
        int status;

        if (geteuid() != 0) {
                g_test_skip("needs root (to run a client as another user)");
                goto out;
        }
        /* Everything above the vfiipc dir searchable: only its own mode can keep others out. */
        g_assert_cmpint(g_chmod(f->dir, 0711), ==, 0);
        g_assert_cmpint(g_mkdir(rt, 0711), ==, 0);
        g_assert_cmpint(g_chmod(rt, 0711), ==, 0);
        spawn_default_server(f, rt, &probe_fx);
        g_assert_cmpint(stat(dir, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0700);
        g_assert_cmpint(st.st_uid, ==, geteuid());

        status = run_as_nobody(probe_private_dir, &probe);
        if (status < 0 || status == 126) {
                g_test_skip("cannot run a child as 'nobody' here");
                goto out;
        }
        g_assert_cmpint(status, ==, 0);
        /* The control: with the directory opened up, the same child reaches the socket and
         * opens a connection, which the bus then refuses to authenticate (see below): that is
         * NOTIFY_ERR_SERVER, a refusing endpoint (G-66). */
        g_assert_cmpint(g_chmod(dir, 0711), ==, 0);
        g_assert_cmpint(run_as_nobody(probe_private_dir, &probe), ==, 2 | 4 | 8);
out:
        g_free(address);
        g_free(sock);
        g_free(dir);
        g_free(rt);
}

/* As another user: the socket is reachable, but the bus refuses us, also through the library,
 * at once. */
static int probe_bus_refuses(void *data)
{
        const probe_t *p = data;
        DBusError err = DBUS_ERROR_INIT;
        DBusConnection *c;
        gint64 t0;
        int bad = 0;

        bad |= unix_connect_errno(p->sock) == 0 ? 0 : 1; /* it is the bus that refuses */
        c = dbus_connection_open_private(p->address, &err);
        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (dbus_bus_register(c, &err))
                        bad |= 2;
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        dbus_error_free(&err);
        t0 = g_get_monotonic_time();
        /* G-66: a refusing endpoint is NOTIFY_ERR_SERVER. */
        bad |= vfiipc_register("n.id", on_nobody_notify, NULL, 0, "nobody-app") ==
                       VFIIPC_ERR_SERVER
                   ? 0
                   : 4;
        bad |= vfiipc_notify_text("x", "n.id", "1", 0, "nobody-app") == VFIIPC_ERR_SERVER ? 0 : 8;
        bad |= g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC ? 0 : 16;
        return bad;
}

/* A server's bus admits only the users its policy allows: started by root without remote
 * rules, only root. A client running as "nobody" reaches the socket (the test's dir is
 * searchable) but cannot authenticate, and the library's calls fail promptly; root's clients
 * are unaffected. (The gateway user's admission with rules: test-broker, policy test.) */
static void test_bus_refuses_other_users(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus");
        probe_t probe = {.sock = sock, .address = f->address};
        int status;

        if (geteuid() != 0) {
                g_test_skip("needs root (to run a client as another user)");
                g_free(sock);
                return;
        }
        g_assert_cmpint(g_chmod(f->dir, 0711), ==, 0);
        status = run_as_nobody(probe_bus_refuses, &probe);
        if (status < 0 || status == 126)
                g_test_skip("cannot run a child as 'nobody' here");
        else
                g_assert_cmpint(status, ==, 0);
        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
        g_free(sock);
}

/* The forked child of test_unwritable_dir_exits_3(): notifysvc on address, as nobody when
 * set; 126 when it cannot become nobody, 127 when it cannot run notifysvc (a build tree nobody
 * may not enter). It frees the test's two strings first: under valgrind the child is
 * leak-checked at _exit(), and a leak would make its status valgrind's error code. */
static _Noreturn void notifysvc_child(const struct passwd *nobody, char *address, char *ro)
{
        int null = open("/dev/null", O_RDWR);

        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        setenv(VFIIPC_ENV_BUS_ADDRESS, address, 1);
        g_free(address);
        g_free(ro);
        if (nobody && (setgroups(0, NULL) < 0 || setgid(nobody->pw_gid) < 0 ||
                       setuid(nobody->pw_uid) < 0))
                _exit(126);
        execl(g_getenv("VFIIPC_NOTIFYSVC"), "notifysvc", (char *)NULL);
        _exit(127);
}

/* G-66: the endpoint may not be created → 3. Root bypasses file permissions, so as root the
 * program runs as "nobody" (when that is possible here). */
static void test_unwritable_dir_exits_3(server_fixture_t *f, gconstpointer unused)
{
        char *ro = NULL, *address;
        struct passwd *nobody = NULL;
        pid_t pid;
        int status;

        if (getuid() == 0) {
                nobody = getpwnam("nobody");
                if (!nobody || nobody->pw_uid == 0) {
                        g_test_skip("running as root and there is no unprivileged user 'nobody'");
                        return;
                }
        }
        /* Outside the 0700 temp dir, so that "nobody" can reach it. */
        ro = g_strdup_printf("/tmp/vfiipc-test-ro-%d-%d", (int)getpid(),
                             g_random_int_range(0, 1 << 30));
        g_assert_cmpint(g_mkdir(ro, 0555), ==, 0);
        g_assert_cmpint(chmod(ro, 0555), ==, 0);
        address = g_strdup_printf("unix:path=%s/sub/bus", ro);

        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0)
                notifysvc_child(nobody, address, ro);
        status = wait_exit_status(pid);
        g_rmdir(ro);
        if (nobody && (status == 126 || status == 127)) {
                g_test_skip("running as root and cannot run notifysvc as 'nobody' here");
        } else {
                g_assert_cmpint(status, ==, 3);
                /* the same with the directory present but read-only */
                g_assert_cmpint(g_mkdir(ro, 0555), ==, 0);
                g_assert_cmpint(chmod(ro, 0555), ==, 0);
                g_free(address);
                address = g_strdup_printf("unix:path=%s/bus", ro);
                pid = fork();
                g_assert_cmpint(pid, >=, 0);
                if (pid == 0)
                        notifysvc_child(nobody, address, ro);
                g_assert_cmpint(wait_exit_status(pid), ==, 3);
                g_rmdir(ro);
        }
        g_free(address);
        g_free(ro);
}

/* ---- the bus configuration's limits ---------------------------------------------------- */

static DBusMessage *big_signal(const char *destination, size_t bytes, char fill)
{
        DBusMessage *m = dbus_message_new_signal("/io/vfiipc/Test", "io.vfiipc.Test", "Big");
        char *text = g_malloc(bytes + 1);

        memset(text, fill, bytes);
        text[bytes] = '\0';
        dbus_message_set_destination(m, destination);
        g_assert_true(dbus_message_append_args(m, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
        g_free(text);
        return m;
}

/* Pops the next "Big" signal of c, reading until deadline; its string length, or -1. */
static long receive_big(DBusConnection *c, gint64 deadline)
{
        while (g_get_monotonic_time() < deadline) {
                DBusMessage *m = dbus_connection_pop_message(c);
                if (!m) {
                        if (!dbus_connection_read_write(c, 100))
                                return -1; /* disconnected */
                        continue;
                }
                if (dbus_message_is_signal(m, "io.vfiipc.Test", "Big")) {
                        const char *s = NULL;
                        long len = -1;
                        if (dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID))
                                len = (long)strlen(s);
                        dbus_message_unref(m);
                        return len;
                }
                dbus_message_unref(m);
        }
        return -1;
}

/* A maximum-size notification (VFIIPC_PARAM_MAX of JSON plus IDs) fits in one message, the
 * broker's connection survives one, and the configured size limit (not the daemon's default
 * of 32 MiB) is the one in force. */
static void test_limits_message_size(server_fixture_t *f, gconstpointer unused)
{
        const size_t big = VFIIPC_PARAM_MAX + 4 * VFIIPC_ID_MAX;
        DBusConnection *c = bus_open(f->address);
        DBusError err = DBUS_ERROR_INIT;
        DBusMessage *m, *reply;
        const char *unique;
        char *text;

        g_assert_nonnull(c);
        dbus_connection_set_max_message_size(c, 64 * 1024 * 1024);
        unique = dbus_bus_get_unique_name(c);

        /* to ourselves, through the daemon */
        m = big_signal(unique, big, 'x');
        g_assert_true(dbus_connection_send(c, m, NULL));
        dbus_message_unref(m);
        g_assert_cmpint(receive_big(c, g_get_monotonic_time() + 30 * G_USEC_PER_SEC), ==,
                        (long)big);
        g_assert_true(dbus_connection_get_is_connected(c));

        /* to the broker: it must get it and answer (return or error), and stay on the bus */
        m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                         DBUS_INTERFACE_INTROSPECTABLE, "Introspect");
        text = g_malloc(big + 1);
        memset(text, 'y', big);
        text[big] = '\0';
        g_assert_true(dbus_message_append_args(m, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
        g_free(text);
        reply = dbus_connection_send_with_reply_and_block(c, m, 30000, &err);
        dbus_message_unref(m);
        if (!reply) {
                g_assert_true(dbus_error_is_set(&err));
                g_assert_cmpstr(err.name, !=, DBUS_ERROR_NO_REPLY);
                g_assert_cmpstr(err.name, !=, DBUS_ERROR_DISCONNECTED);
                g_assert_cmpstr(err.name, !=, DBUS_ERROR_LIMITS_EXCEEDED);
                dbus_error_free(&err);
        } else
                dbus_message_unref(reply);
        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
        g_assert_cmpint(bus_name_pid(f->address, VFIIPC_BROKER_NAME), ==, f->pid);

        /* 20 MiB: above our 16 MiB, below the default 32 MiB → the daemon disconnects us. */
        m = big_signal(unique, 20u * 1024 * 1024, 'z');
        dbus_connection_send(c, m, NULL);
        dbus_message_unref(m);
        g_assert_cmpint(receive_big(c, g_get_monotonic_time() + 30 * G_USEC_PER_SEC), ==, -1);
        g_assert_false(dbus_connection_get_is_connected(c));
        bus_close(c);
}

/* A receiver that does not read for a while gets 24 maximum-size notifications (192 MiB)
 * queued without loss: more than the daemon's default queue limits (127 MiB) allow, both for
 * the receiver's outgoing queue and for the sender's incoming budget (design.md: measure). */
static void test_limits_queue_for_slow_receiver(server_fixture_t *f, gconstpointer unused)
{
        enum { N = 24 };
        const size_t size = VFIIPC_PARAM_MAX;
        DBusConnection *tx = bus_open(f->address), *rx = bus_open(f->address);
        const char *to;
        gint64 deadline;
        int got = 0;

        g_assert_nonnull(tx);
        g_assert_nonnull(rx);
        to = dbus_bus_get_unique_name(rx);
        for (int i = 0; i < N; i++) {
                DBusMessage *m = big_signal(to, size, (char)('a' + i));
                g_assert_true(dbus_connection_send(tx, m, NULL));
                dbus_message_unref(m);
        }
        /* Let the sender write everything while the receiver reads nothing. */
        deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
        while (dbus_connection_has_messages_to_send(tx) && g_get_monotonic_time() < deadline)
                g_assert_true(dbus_connection_read_write(tx, 100));
        g_assert_false(dbus_connection_has_messages_to_send(tx));
        /* Errors the daemon sent back (LimitsExceeded) would be queued on tx now. */
        dbus_connection_read_write(tx, 200);
        for (DBusMessage *m; (m = dbus_connection_pop_message(tx)); dbus_message_unref(m))
                if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_ERROR)
                        g_error("the daemon refused a queued message: %s",
                                dbus_message_get_error_name(m));

        while (got < N) {
                long len = receive_big(rx, deadline);
                g_assert_cmpint(len, ==, (long)size);
                got++;
        }
        bus_close(tx);
        bus_close(rx);
}

/* The bus is inspectable with standard tools (design.md). */
static void test_busctl_introspect(server_fixture_t *f, gconstpointer unused)
{
        char *busctl = g_find_program_in_path("busctl"), *out = NULL, *arg;
        GError *error = NULL;
        int status;

        if (!busctl) {
                g_test_skip("busctl is not installed");
                return;
        }
        arg = g_strdup_printf("--address=%s", f->address);
        {
                const char *argv[] = {
                    busctl, arg, "--no-pager", "introspect", VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                    NULL};
                g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                             &out, NULL, &status, &error);
        }
        g_assert_no_error(error);
        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(out, VFIIPC_BROKER_INTERFACE));
        g_assert_nonnull(strstr(out, ".Notify"));
        g_free(out);
        g_free(arg);
        g_free(busctl);
}

/* ---- resources: many short-lived clients leak nothing ------------------------------------- */

static unsigned proc_fd_count(pid_t pid)
{
        char *path = g_strdup_printf("/proc/%d/fd", (int)pid);
        GDir *d = g_dir_open(path, 0, NULL);
        unsigned n = 0;

        g_assert_nonnull(d);
        while (g_dir_read_name(d))
                n++;
        g_dir_close(d);
        g_free(path);
        return n;
}

static long proc_rss_kib(pid_t pid)
{
        char *path = g_strdup_printf("/proc/%d/status", (int)pid), *text = NULL, *p;
        long kib = -1;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        p = strstr(text, "\nVmRSS:");
        g_assert_nonnull(p);
        kib = strtol(p + 7, NULL, 10);
        g_free(text);
        g_free(path);
        return kib;
}

/* A method call to the broker or the bus driver, with its reply checked. */
static void bus_call_ok(DBusConnection *c, DBusMessage *m)
{
        DBusError err = DBUS_ERROR_INIT;
        DBusMessage *reply = dbus_connection_send_with_reply_and_block(c, m, 30000, &err);

        if (!reply)
                g_error("%s: %s", dbus_message_get_member(m), err.message);
        dbus_message_unref(reply);
        dbus_message_unref(m);
}

static DBusMessage *broker_ping(void)
{
        return dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                            DBUS_INTERFACE_PEER, "Ping");
}

/* Counts the Deliver signals that have arrived at c so far. */
static unsigned count_delivers(DBusConnection *c)
{
        unsigned n = 0;
        DBusMessage *m;

        dbus_connection_read_write(c, 0);
        while ((m = dbus_connection_pop_message(c))) {
                n += dbus_message_is_signal(m, VFIIPC_CLIENT_INTERFACE, "Deliver");
                dbus_message_unref(m);
        }
        return n;
}

/* How many unique names the bus has besides c's own (the broker's is one of them). */
static unsigned other_connections(DBusConnection *c)
{
        DBusMessage *m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                      DBUS_INTERFACE_DBUS, "ListNames"), *reply;
        const char *self = dbus_bus_get_unique_name(c);
        unsigned n = 0;
        char **names;
        int len;

        reply = dbus_connection_send_with_reply_and_block(c, m, 30000, NULL);
        dbus_message_unref(m);
        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &names,
                                            &len, DBUS_TYPE_INVALID));
        dbus_message_unref(reply);
        for (int i = 0; i < len; i++)
                n += names[i][0] == ':' && strcmp(names[i], self) != 0;
        dbus_free_string_array(names);
        return n;
}

static void on_short_notify(void *data, const char *from, const char *to, const char *id,
                            const json_t *param, unsigned flags)
{
}

static void on_short_observe(void *data, const char *from, const char *to, const char *id,
                             unsigned flags)
{
}

/* One short-lived application, in a fork()ed child that has never used the library: it
 * connects, registers, observes, sends a unicast to itself (which it may not live to take: the
 * broker re-routes it when the connection ends) and one to "keeper", and exits without
 * unregistering anything. The last Register returns after the broker handled all before it. */
static pid_t short_client_spawn(unsigned i)
{
        pid_t pid = fork();

        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                char app[32], json[32];
                int bad = 0;

                snprintf(app, sizeof(app), "short-%u", i);
                snprintf(json, sizeof(json), "{\"i\":%u}", i);
                vfiipc_set_app_id(app);
                bad |= vfiipc_register("s.self", on_short_notify, NULL, 0, NULL) != VFIIPC_OK;
                bad |= vfiipc_observer_add(on_short_observe, NULL) != VFIIPC_OK;
                bad |= vfiipc_notify_text(app, "s.self", json, 0, NULL) != VFIIPC_OK;
                bad |= vfiipc_notify_text("keeper", "s.leak", json, 0, NULL) != VFIIPC_OK;
                bad |= vfiipc_register("s.last", on_short_notify, NULL, 0, NULL) != VFIIPC_OK;
                _exit(bad);
        }
        return pid;
}

/* n short-lived clients, at most `parallel` at a time; returns the keeper's Deliver count. */
static unsigned run_short_clients(DBusConnection *keeper, unsigned first, unsigned n,
                                  unsigned parallel)
{
        unsigned started = 0, running = 0, got = 0;

        while (started < n || running > 0) {
                int status;
                pid_t pid;

                while (started < n && running < parallel) {
                        short_client_spawn(first + started++);
                        running++;
                }
                while ((pid = waitpid(-1, &status, 0)) < 0)
                        g_assert_cmpint(errno, ==, EINTR);
                g_assert_true(WIFEXITED(status));
                g_assert_cmpint(WEXITSTATUS(status), ==, 0);
                running--;
                got += count_delivers(keeper);
        }
        return got;
}

/* Waits until the bus has seen every short-lived client go and the broker has handled that (a
 * Ping from the keeper is answered after the name-lost signals the bus sent before it). */
static void wait_clients_gone(server_fixture_t *f, DBusConnection *keeper)
{
        gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

        while (other_connections(keeper) > 1) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_usleep(10 * 1000); /* polling the bus, bounded by the deadline */
        }
        bus_call_ok(keeper, broker_ping());
}

/* A raw connection registered as "keeper" for s.leak, which the short-lived clients notify. */
static DBusConnection *keeper_open(server_fixture_t *f)
{
        DBusConnection *keeper = bus_open(f->address);
        const char *to = "keeper", *id = "s.leak";
        dbus_int32_t prio = 0;
        DBusMessage *m;

        g_assert_nonnull(keeper);
        m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                         VFIIPC_BROKER_INTERFACE, "Register");
        dbus_message_append_args(m, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id, DBUS_TYPE_INT32,
                                 &prio, DBUS_TYPE_INVALID);
        bus_call_ok(keeper, m);
        return keeper;
}

/* n short-lived clients, 4 at a time, all gone and handled by the broker when this returns;
 * checks that the keeper got one notification from each. */
static void keeper_clients(server_fixture_t *f, DBusConnection *keeper, unsigned first,
                           unsigned n)
{
        unsigned got = run_short_clients(keeper, first, n, 4);

        wait_clients_gone(f, keeper);
        got += count_delivers(keeper);
        g_assert_cmpuint(got, ==, n); /* every one of them really did its work */
}

/* 1 000 short-lived clients (connect, register, observe, notify, exit without goodbye) leave
 * nothing behind: after a warm-up of 100, the server's open fds and the bus daemon's open fds
 * are what they were, and the server's VmRSS has grown by at most 1 MiB. (The keeper never
 * returns its tickets, so its ring of VFIIPC_PENDING_PER_PEER_MAX bounceable tickets fills
 * meanwhile, each holding what the broker keeps of its gone submitter: bounded by design,
 * about 250 KiB here.) */
static void test_short_lived_clients_leak_nothing(server_fixture_t *f, gconstpointer unused)
{
        enum { WARMUP = 100, CYCLES = 1000 };
        pid_t daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);
        DBusConnection *keeper;
        unsigned fds_srv, fds_bus;
        long rss, rss_after;
        gint64 t0;

        if (g_getenv("VFIIPC_TEST_VALGRIND")) {
                /* Minutes for 1 100 forked clients; the AddressSanitizer run checks them. */
                g_test_skip("too slow under valgrind");
                return;
        }
        keeper = keeper_open(f);
        keeper_clients(f, keeper, 0, WARMUP);
        fds_srv = proc_fd_count(f->pid);
        fds_bus = proc_fd_count(daemon);
        rss = proc_rss_kib(f->pid);

        t0 = g_get_monotonic_time();
        keeper_clients(f, keeper, WARMUP, CYCLES);
        rss_after = proc_rss_kib(f->pid);
        g_test_message("%d clients in %.1f s; notifysvc: %u fds, VmRSS %ld -> %ld KiB; "
                       "dbus-daemon: %u fds",
                       CYCLES, (g_get_monotonic_time() - t0) / 1e6, fds_srv, rss, rss_after,
                       fds_bus);
        g_assert_cmpuint(proc_fd_count(f->pid), ==, fds_srv);
        g_assert_cmpuint(proc_fd_count(daemon), ==, fds_bus);
#if !defined __SANITIZE_ADDRESS__
        /* Not under AddressSanitizer, whose quarantine holds on to freed memory (its leak
         * checker covers the server instead). */
        g_assert_cmpint(rss_after, <=, rss + 1024);
#endif
        bus_close(keeper);
}

/* The thread the server's loop runs on (named vfiipc-broker), 0 when there is none; fails when
 * there are two. */
static pid_t broker_thread(pid_t pid)
{
        char *dir = g_strdup_printf("/proc/%d/task", (int)pid);
        GDir *d = g_dir_open(dir, 0, NULL);
        const char *tid;
        pid_t found = 0;

        g_assert_nonnull(d);
        while ((tid = g_dir_read_name(d))) {
                char *path = g_build_filename(dir, tid, "comm", NULL), *comm = NULL;

                /* A thread may end between the listing and the read. */
                if (g_file_get_contents(path, &comm, NULL, NULL) &&
                    g_str_has_prefix(comm, "vfiipc-broker")) {
                        g_assert_cmpint(found, ==, 0);
                        found = (pid_t)atoi(tid);
                }
                g_free(comm);
                g_free(path);
        }
        g_dir_close(d);
        g_free(dir);
        return found;
}

/* Issue #7: once idle after work (server.c TRIM_IDLE_MS), the server trims its heap after
 * moving its loop to a new thread, so the ended thread's allocator cache is returned too. The
 * loop thread is replaced, never doubled, and the server serves on without losing anything. */
static void test_idle_trim_moves_loop(server_fixture_t *f, gconstpointer unused)
{
        enum { CLIENTS = 20 };
        DBusConnection *keeper = keeper_open(f);
        gint64 deadline;
        pid_t before, after;
        char *old;

        keeper_clients(f, keeper, 0, CLIENTS);
        before = broker_thread(f->pid);
        g_assert_cmpint(before, >, 0);
        /* Idle now: the trim comes a second after the last message. */
        deadline = g_get_monotonic_time() + DEADLINE_MS * 1000;
        while ((after = broker_thread(f->pid)) == before || after == 0) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_usleep(20 * 1000); /* polling /proc, bounded by the deadline */
        }
        old = g_strdup_printf("/proc/%d/task/%d", (int)f->pid, (int)before);
        g_assert_false(g_file_test(old, G_FILE_TEST_EXISTS)); /* joined before the next began */
        g_free(old);

        keeper_clients(f, keeper, CLIENTS, CLIENTS); /* serving on, on the new thread */
        bus_close(keeper);
}

/* ---- the C API in process -------------------------------------------------------------- */

struct inproc {
        vfiipc_server *s;
        vfiipc_result r;
};

static void *start_thread(void *data)
{
        struct inproc *p = data;

        p->r = vfiipc_server_new(NULL, &p->s);
        if (p->r == VFIIPC_OK)
                p->r = vfiipc_server_start(p->s);
        return NULL;
}

static void *serve_thread(void *data)
{
        struct inproc *p = data;

        p->r = vfiipc_server_serve(p->s);
        return NULL;
}

/* SRVF-5: the server may run in any thread of an application. The thread that started it may
 * end (the bus must survive it: PDEATHSIG follows threads), stop works from another thread,
 * and free removes everything. */
static void test_in_process_lifecycle(server_fixture_t *f, gconstpointer unused)
{
        char *sock = fixture_path(f, "bus"), *lock = fixture_path(f, "bus.lock");
        struct inproc p = {0};
        pthread_t t;
        pid_t daemon;

        g_assert_cmpint(pthread_create(&t, NULL, start_thread, &p), ==, 0);
        g_assert_cmpint(pthread_join(t, NULL), ==, 0);
        g_assert_cmpint(p.r, ==, VFIIPC_OK);
        g_usleep(200 * 1000); /* time for a wrongly bound death signal to strike */
        g_assert_true(server_fixture_wait_ready(f, DEADLINE_MS));
        daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);
        g_assert_false(server_fixture_wait_pid_gone(daemon, 0));

        g_assert_cmpint(pthread_create(&t, NULL, serve_thread, &p), ==, 0);
        g_usleep(50 * 1000);
        vfiipc_server_stop(p.s);
        g_assert_cmpint(pthread_join(t, NULL), ==, 0);
        g_assert_cmpint(p.r, ==, VFIIPC_OK);
        p.s = vfiipc_server_free(p.s);
        g_assert_false(file_exists(sock));
        g_assert_false(file_exists(lock));
        g_assert_true(server_fixture_wait_pid_gone(daemon, DEADLINE_MS));

        /* A stop before serve makes serve return at once. */
        g_assert_cmpint(vfiipc_server_new(NULL, &p.s), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_server_start(p.s), ==, VFIIPC_OK);
        vfiipc_server_stop(p.s);
        g_assert_cmpint(vfiipc_server_serve(p.s), ==, VFIIPC_OK);
        p.s = vfiipc_server_free(p.s);
        g_assert_false(file_exists(sock));
        g_free(sock);
        g_free(lock);
}

/* serve returns VFIIPC_ERR_SERVER when the bus goes away under it. */
static void test_in_process_bus_lost(server_fixture_t *f, gconstpointer unused)
{
        vfiipc_server *s = NULL;
        pid_t daemon;

        g_assert_cmpint(vfiipc_server_new(NULL, &s), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_server_start(s), ==, VFIIPC_OK);
        daemon = bus_name_pid(f->address, DBUS_SERVICE_DBUS);
        g_assert_cmpint(kill(daemon, SIGKILL), ==, 0);
        g_assert_cmpint(vfiipc_server_serve(s), ==, VFIIPC_ERR_SERVER);
        vfiipc_server_free(s);
}

/* Issue #3, design.md "Remote access": notifysvc --print-policy CONFIG prints the generated bus
 * configuration (the gateway user confined to Remote1; Register only with out rules), and
 * reports configuration errors with the usual exit codes. */
static char *print_policy(const char *text, int *status)
{
        char *dir = g_dir_make_tmp("vfiipc-policy-XXXXXX", NULL), *cfg, *out = NULL;
        const char *argv[] = {g_getenv("VFIIPC_NOTIFYSVC"), "--print-policy", NULL, NULL};

        g_assert_nonnull(dir);
        cfg = g_build_filename(dir, "notify.cfg", NULL);
        if (text)
                g_assert_true(g_file_set_contents(cfg, text, -1, NULL));
        argv[2] = cfg;
        g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                                   NULL, &out, NULL, status, NULL));
        (void)unlink(cfg);
        (void)rmdir(dir);
        g_free(cfg);
        g_free(dir);
        return out;
}

static void test_print_policy(server_fixture_t *f, gconstpointer unused)
{
        int status;
        char *out;

        g_setenv("VFIIPC_GATEWAY_USER", "gw-user", TRUE);
        out = print_policy("in * 1 ext_*\nout * * ext_*\n", &status);
        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(out, "<busconfig>"));
        g_assert_nonnull(strstr(out, "<allow user=\"gw-user\"/>"));
        g_assert_nonnull(strstr(out, "<policy user=\"gw-user\">"));
        g_assert_nonnull(strstr(out, "<deny own=\"*\"/>"));
        g_assert_nonnull(strstr(out, "send_interface=\"io.vfiipc.Remote1\" send_member=\"Register\""));
        g_assert_null(strstr(out, "send_interface=\"io.vfiipc.Broker1\""));
        g_free(out);

        /* Only in rules: registrations could never receive, so they stay denied. */
        out = print_policy("in * 1 ext_*\n", &status);
        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(out, "send_member=\"Notify\""));
        g_assert_null(strstr(out, "send_member=\"Register\""));
        g_free(out);

        out = print_policy("in * *\n", &status);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 5);
        g_free(out);
        out = print_policy(NULL, &status);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 4);
        g_free(out);
        g_unsetenv("VFIIPC_GATEWAY_USER");
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        /* Our own children are reaped by us; the daemon of a killed server goes to init. */
        signal(SIGPIPE, SIG_IGN);

#define ADD(path, setup, fn) g_test_add(path, server_fixture_t, NULL, setup, fn, teardown)
        ADD("/server/start/owns-broker-name", setup_started, test_start_owns_broker_name);
        ADD("/server/start/second-server-exits-1", setup_started, test_second_server_exits_1);
        ADD("/server/start/second-server-in-process", setup_started, test_second_server_in_process);
        ADD("/server/config/missing-exits-4", setup_none, test_missing_config_exits_4);
        ADD("/server/config/bad-syntax-exits-5", setup_none, test_bad_syntax_exits_5);
        ADD("/server/config/new-reports-errors", setup_none, test_new_reports_config_errors);
        ADD("/server/stop/sigterm-clean", setup_started, test_sigterm_clean_shutdown);
        ADD("/server/stop/sigint-clean", setup_started, test_sigint_clean_shutdown);
        ADD("/server/stop/sigkill-takes-bus-along", setup_started, test_sigkill_takes_bus_along);
        ADD("/server/endpoint/stale-socket-replaced", setup_none, test_stale_socket_replaced);
        ADD("/server/endpoint/foreign-listener-kept", setup_none, test_foreign_listener_kept);
        ADD("/server/endpoint/parent-dir-created", setup_nested, test_parent_dir_created);
        ADD("/server/endpoint/runtime-dir-default", setup_none, test_runtime_dir_default);
        ADD("/server/endpoint/unwritable-dir-exits-3", setup_none, test_unwritable_dir_exits_3);
        ADD("/server/access/runtime-dir-private-to-user", setup_none,
            test_runtime_dir_private_to_user);
        ADD("/server/access/bus-refuses-other-users", setup_started, test_bus_refuses_other_users);
        ADD("/server/limits/message-size", setup_started, test_limits_message_size);
        ADD("/server/limits/queue-for-slow-receiver", setup_started,
            test_limits_queue_for_slow_receiver);
        ADD("/server/resources/short-lived-clients-leak-nothing", setup_started,
            test_short_lived_clients_leak_nothing);
        ADD("/server/resources/idle-trim-moves-loop", setup_started, test_idle_trim_moves_loop);
        ADD("/server/tools/busctl-introspect", setup_started, test_busctl_introspect);
        ADD("/server/tools/print-policy", setup_none, test_print_policy);
        ADD("/server/api/in-process-lifecycle", setup_none, test_in_process_lifecycle);
        ADD("/server/api/bus-lost", setup_none, test_in_process_bus_lost);
#undef ADD
        return g_test_run();
}
