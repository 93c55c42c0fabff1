/* tests/server-fixture.c — see server-fixture.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "bus/protocol.h"
#include "server-fixture.h"

static const char *notifysvc_path(void)
{
        const char *p = g_getenv("VFIIPC_NOTIFYSVC");

        g_assert_nonnull(p);
        return p;
}

bool server_fixture_wait_ready(server_fixture_t *f, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

        do {
                DBusError err;
                DBusConnection *c;
                bool owned = false;

                dbus_error_init(&err);
                c = dbus_connection_open_private(f->address, &err);
                if (c) {
                        dbus_connection_set_exit_on_disconnect(c, FALSE);
                        if (dbus_bus_register(c, &err))
                                owned = dbus_bus_name_has_owner(c, VFIIPC_BROKER_NAME, &err);
                        dbus_connection_close(c);
                        dbus_connection_unref(c);
                }
                dbus_error_free(&err);
                if (owned)
                        return true;
                g_usleep(10 * 1000);
        } while (g_get_monotonic_time() < deadline);
        return false;
}

static void spawn(server_fixture_t *f)
{
        pid_t pid = fork();

        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                /* A test that aborts must not leave its server behind. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                int null = open("/dev/null", O_RDWR);
                if (null >= 0 && !g_getenv("VFIIPC_TEST_SERVER_LOG"))
                        dup2(null, STDERR_FILENO);
                if (null >= 0)
                        dup2(null, STDOUT_FILENO);
                setenv(VFIIPC_ENV_BUS_ADDRESS, f->address, 1);
                if (f->nfy_port > 0) {
                        char port[16];
                        snprintf(port, sizeof(port), "%d", f->nfy_port);
                        setenv(VFIIPC_ENV_NFY_PORT, port, 1);
                }
                if (f->config)
                        execl(notifysvc_path(), "notifysvc", f->config, (char *)NULL);
                else
                        execl(notifysvc_path(), "notifysvc", (char *)NULL);
                _exit(127);
        }
        f->pid = pid;
        g_assert_true(server_fixture_wait_ready(f, 10000));
}

void server_fixture_prepare(server_fixture_t *f)
{
        GError *error = NULL;

        f->dir = g_dir_make_tmp("vfiipc-test-XXXXXX", &error);
        g_assert_no_error(error);
        /* Root's server drops the gateway to an unprivileged user, which must reach the bus
         * socket: traversable, but not listable. */
        if (geteuid() == 0)
                g_assert_cmpint(g_chmod(f->dir, 0711), ==, 0);
        f->address = g_strdup_printf("unix:path=%s/bus", f->dir);
        g_setenv(VFIIPC_ENV_BUS_ADDRESS, f->address, TRUE);
        f->pid = 0;
}

void server_fixture_start(server_fixture_t *f)
{
        server_fixture_prepare(f);
        spawn(f);
}

void server_fixture_restart(server_fixture_t *f)
{
        g_assert_cmpint(f->pid, ==, 0);
        spawn(f);
}

static void reap(server_fixture_t *f, int sig)
{
        int status;

        if (f->pid <= 0)
                return;
        kill(f->pid, sig);
        while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
                ;
        f->pid = 0;
}

void server_fixture_kill(server_fixture_t *f)
{
        reap(f, SIGKILL);
}

static void rm_rf(const char *dir)
{
        GDir *d = g_dir_open(dir, 0, NULL);
        const char *name;

        if (!d)
                return;
        while ((name = g_dir_read_name(d))) {
                char *p = g_build_filename(dir, name, NULL);
                if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
                        rm_rf(p);
                else
                        g_unlink(p);
                g_free(p);
        }
        g_dir_close(d);
        g_rmdir(dir);
}

void server_fixture_stop(server_fixture_t *f)
{
        reap(f, SIGTERM);
        if (f->dir) {
                rm_rf(f->dir);
                g_clear_pointer(&f->dir, g_free);
        }
        g_clear_pointer(&f->address, g_free);
        g_clear_pointer(&f->config, g_free);
}

int server_fixture_run_notifysvc(server_fixture_t *f, const char *const *args)
{
        GPtrArray *argv = g_ptr_array_new();
        char **envp = g_get_environ();
        int status = -1;
        GError *error = NULL;

        g_ptr_array_add(argv, (char *)notifysvc_path());
        for (; args && *args; args++)
                g_ptr_array_add(argv, (char *)*args);
        g_ptr_array_add(argv, NULL);
        envp = g_environ_setenv(envp, VFIIPC_ENV_BUS_ADDRESS, f->address, TRUE);
        g_spawn_sync(NULL, (char **)argv->pdata, envp,
                     G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL,
                     NULL, &status, &error);
        g_assert_no_error(error);
        g_ptr_array_unref(argv);
        g_strfreev(envp);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* True when pid is gone or a zombie (an orphan is reaped by whoever adopts it). */
static bool pid_gone(pid_t pid)
{
        char *path = g_strdup_printf("/proc/%d/stat", (int)pid), *text = NULL, *p;
        bool gone = true;

        if (g_file_get_contents(path, &text, NULL, NULL)) {
                p = strrchr(text, ')');
                gone = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
        }
        g_free(text);
        g_free(path);
        return gone;
}

bool server_fixture_wait_pid_gone(pid_t pid, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

        while (!pid_gone(pid)) {
                if (g_get_monotonic_time() > deadline)
                        return false;
                g_usleep(10 * 1000);
        }
        return true;
}
