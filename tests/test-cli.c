/* tests/test-cli.c — the vfiipc command line ($VFIIPC_CLI) against a private server: send,
 * listen, monitor, status, errors and --help. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

#include "server-fixture.h"

/* ---- running the CLI -------------------------------------------------------------------- */

typedef struct run {
        int status; /* exit status, or 128 + signal */
        char *out, *err;
} run_t;

static void run_clear(run_t *r)
{
        g_free(r->out);
        g_free(r->err);
}

static char **cli_argv(const char *first, va_list ap)
{
        GPtrArray *v = g_ptr_array_new();
        const char *cli = g_getenv("VFIIPC_CLI");

        g_assert_nonnull(cli);
        g_ptr_array_add(v, g_strdup(cli));
        for (const char *a = first; a; a = va_arg(ap, const char *))
                g_ptr_array_add(v, g_strdup(a));
        g_ptr_array_add(v, NULL);
        return (char **)g_ptr_array_free(v, FALSE);
}

/* Runs vfiipc ARGS... (NULL-terminated) to completion. */
static G_GNUC_NULL_TERMINATED run_t cli_run(const char *first, ...)
{
        GError *error = NULL;
        run_t r = {0};
        va_list ap;
        char **argv;
        int wait_status;

        va_start(ap, first);
        argv = cli_argv(first, ap);
        va_end(ap);
        g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &r.out, &r.err, &wait_status,
                     &error);
        g_assert_no_error(error);
        g_strfreev(argv);
        r.status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
        return r;
}

/* A test that aborts must not leave a listener behind (it would reconnect forever). */
static void die_with_parent(gpointer unused)
{
        prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/* A long-running vfiipc (listen, monitor), its output read line by line. */
typedef struct bg {
        GPid pid;
        int out, err;
        GString *outbuf, *errbuf;
} bg_t;

static G_GNUC_NULL_TERMINATED bg_t *cli_start(const char *first, ...)
{
        GError *error = NULL;
        bg_t *b = g_new0(bg_t, 1);
        va_list ap;
        char **argv;

        va_start(ap, first);
        argv = cli_argv(first, ap);
        va_end(ap);
        g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, die_with_parent, NULL,
                                 &b->pid,
                                 NULL, &b->out, &b->err, &error);
        g_assert_no_error(error);
        g_strfreev(argv);
        b->outbuf = g_string_new(NULL);
        b->errbuf = g_string_new(NULL);
        return b;
}

/* Waits up to timeout_ms for a complete line in fd's buffer and returns it (g_free), or NULL. */
static char *bg_line(int fd, GString *buf, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

        for (;;) {
                char *nl = memchr(buf->str, '\n', buf->len), chunk[4096], *line;
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                gint64 left;
                ssize_t n;

                if (nl) {
                        line = g_strndup(buf->str, nl - buf->str);
                        g_string_erase(buf, 0, nl - buf->str + 1);
                        return line;
                }
                left = (deadline - g_get_monotonic_time()) / 1000;
                if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
                        return NULL;
                n = read(fd, chunk, sizeof(chunk));
                if (n <= 0)
                        return NULL;
                g_string_append_len(buf, chunk, n);
        }
}

/* Waits for the stderr line a listener/monitor prints once it is registered. */
static void bg_wait_ready(bg_t *b, const char *prefix)
{
        char *line = bg_line(b->err, b->errbuf, 10000);

        g_assert_nonnull(line);
        g_assert_true(g_str_has_prefix(line, prefix));
        g_free(line);
}

/* SIGTERM; returns the exit status and frees b. */
static int bg_stop(bg_t *b)
{
        int status;

        kill(b->pid, SIGTERM);
        while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR)
                ;
        g_spawn_close_pid(b->pid);
        close(b->out);
        close(b->err);
        g_string_free(b->outbuf, TRUE);
        g_string_free(b->errbuf, TRUE);
        g_free(b);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static json_t *parse_line(const char *line)
{
        json_error_t err;
        json_t *v = json_loads(line, 0, &err);

        if (!v)
                g_error("not a JSON line: '%s': %s", line, err.text);
        g_assert_true(json_is_object(v));
        return v;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void setup(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_start(f);
}

static void teardown(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_stop(f);
}

/* What send sends, listen prints: the same JSON value, sender and receiver. */
static void test_send_listen_round_trip(server_fixture_t *f, gconstpointer unused)
{
        static const char param[] =
            "{\"text\":\"h\\u00e4llo \\\"x\\\"\\n\",\"n\":[1,2.5,-3,null,true],"
            "\"big\":9007199254740993,\"o\":{\"z\":{},\"a\":[]}}";
        bg_t *l = cli_start("listen", "--as", "cli-app", "--priority", "5", "cli.ping",
                            "cli.other", NULL);
        json_t *got, *want;
        char *line;
        run_t r;

        bg_wait_ready(l, "vfiipc listen: listening as cli-app");
        r = cli_run("send", "--from", "tester", "cli-app", "cli.ping", param, NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_cmpstr(r.err, ==, "");
        run_clear(&r);

        line = bg_line(l->out, l->outbuf, 10000);
        g_assert_nonnull(line);
        got = parse_line(line);
        want = json_pack("{s:s,s:s,s:s,s:o,s:i}", "from", "tester", "to", "cli-app",
                         "notification", "cli.ping", "param", json_loads(param, 0, NULL),
                         "flags", 0);
        g_assert_nonnull(want);
        if (!json_equal(got, want))
                g_error("listen printed %s", line);
        json_decref(got);
        json_decref(want);
        g_free(line);

        /* Default param {} and default sender; "1" picks the (only) registrant, whose callback
         * sees the destination as it was addressed. */
        r = cli_run("send", "1", "cli.other", NULL);
        g_assert_cmpint(r.status, ==, 0);
        run_clear(&r);
        line = bg_line(l->out, l->outbuf, 10000);
        g_assert_nonnull(line);
        got = parse_line(line);
        want = json_pack("{s:s,s:s,s:s,s:{},s:i}", "from", "vfiipc-cli", "to", "1",
                         "notification", "cli.other", "param", "flags", 0);
        if (!json_equal(got, want))
                g_error("listen printed %s", line);
        json_decref(got);
        json_decref(want);
        g_free(line);

        g_assert_cmpint(bg_stop(l), ==, 0);
}

/* monitor prints every notification: to the receiver, and with to "" when nobody got it. */
static void test_monitor(server_fixture_t *f, gconstpointer unused)
{
        bg_t *m = cli_start("monitor", NULL);
        bg_t *l = cli_start("listen", "--as", "mon-app", "mon.id", NULL);
        json_t *got, *want;
        char *line;
        run_t r;

        bg_wait_ready(m, "vfiipc monitor: observing");
        bg_wait_ready(l, "vfiipc listen: listening as mon-app");
        r = cli_run("send", "--from", "mon-sender", "mon-app", "mon.id", "[1]", NULL);
        g_assert_cmpint(r.status, ==, 0);
        run_clear(&r);
        r = cli_run("send", "--from", "mon-sender", "not-running", "mon.lost", NULL);
        g_assert_cmpint(r.status, ==, 0);
        run_clear(&r);

        want = json_pack("[{s:s,s:s,s:s,s:i},{s:s,s:s,s:s,s:i}]", "from", "mon-sender", "to",
                         "mon-app", "notification", "mon.id", "flags", 0, "from", "mon-sender",
                         "to", "", "notification", "mon.lost", "flags", 0);
        /* Two senders, two processes: accept either order. */
        for (int i = 0; i < 2; i++) {
                size_t k;

                line = bg_line(m->out, m->outbuf, 10000);
                g_assert_nonnull(line);
                got = parse_line(line);
                for (k = 0; k < json_array_size(want); k++)
                        if (json_equal(got, json_array_get(want, k)))
                                break;
                if (k == json_array_size(want))
                        g_error("monitor printed %s", line);
                json_array_remove(want, k);
                json_decref(got);
                g_free(line);
        }
        json_decref(want);
        g_assert_cmpint(bg_stop(l), ==, 0);
        g_assert_cmpint(bg_stop(m), ==, 0);
}

static void test_status_reachable(server_fixture_t *f, gconstpointer unused)
{
        run_t r = cli_run("status", NULL);

        g_assert_cmpint(r.status, ==, 0);
        g_assert_nonnull(strstr(r.out, f->address));
        run_clear(&r);
}

/* Invalid JSON is refused before anything is sent, with jansson's text and position. */
static void test_bad_json(server_fixture_t *f, gconstpointer unused)
{
        static const char *const bad[] = {"{\"a\":1,", "{\"a\":1,\"a\":2}", "[1,,2]", "nul"};

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                json_error_t err;
                char *want;
                run_t r;

                g_assert_null(json_loads(bad[i], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err));
                want = g_strdup_printf("position %d", err.position);
                r = cli_run("send", "app", "id", bad[i], NULL);
                g_assert_cmpint(r.status, !=, 0);
                g_assert_nonnull(strstr(r.err, want));
                g_assert_nonnull(strstr(r.err, err.text));
                g_free(want);
                run_clear(&r);
        }
}

static void test_no_server(void)
{
        char *dir = g_dir_make_tmp("vfiipc-test-XXXXXX", NULL);
        char *address = g_strdup_printf("unix:path=%s/bus", dir);
        run_t r;

        g_setenv("VFIIPC_BUS_ADDRESS", address, TRUE);
        r = cli_run("send", "app", "id", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_nonnull(strstr(r.err, "no notification server reachable at"));
        g_assert_nonnull(strstr(r.err, address));
        run_clear(&r);

        r = cli_run("status", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_nonnull(strstr(r.err, "no notification server reachable at"));
        g_assert_cmpstr(r.out, ==, "");
        run_clear(&r);

        r = cli_run("listen", "id", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_nonnull(strstr(r.err, address));
        run_clear(&r);

        r = cli_run("monitor", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_nonnull(strstr(r.err, address));
        run_clear(&r);

        g_rmdir(dir);
        g_free(dir);
        g_free(address);
}

static void test_help_and_usage(void)
{
        static const char *const cmds[] = {"send", "listen", "monitor", "status"};
        run_t r;

        for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
                char *want = g_strdup_printf("Usage: vfiipc %s", cmds[i]);

                r = cli_run(cmds[i], "--help", NULL);
                g_assert_cmpint(r.status, ==, 0);
                g_assert_true(g_str_has_prefix(r.out, want));
                run_clear(&r);
                r = cli_run(cmds[i], "--no-such-option", NULL);
                g_assert_cmpint(r.status, ==, 64);
                g_assert_nonnull(strstr(r.err, want));
                run_clear(&r);
                g_free(want);
        }
        r = cli_run("--help", NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_true(g_str_has_prefix(r.out, "Usage: vfiipc COMMAND"));
        run_clear(&r);

        r = cli_run("frobnicate", NULL);
        g_assert_cmpint(r.status, ==, 64);
        g_assert_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
        run_clear(&r);

        r = cli_run("send", "only-to", NULL);
        g_assert_cmpint(r.status, ==, 64);
        run_clear(&r);
        r = cli_run("listen", NULL);
        g_assert_cmpint(r.status, ==, 64);
        run_clear(&r);
        r = cli_run("listen", "--priority", "high", "id", NULL);
        g_assert_cmpint(r.status, ==, 64);
        g_assert_nonnull(strstr(r.err, "'high'"));
        run_clear(&r);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        g_test_add("/cli/send-listen-round-trip", server_fixture_t, NULL, setup,
                   test_send_listen_round_trip, teardown);
        g_test_add("/cli/monitor", server_fixture_t, NULL, setup, test_monitor, teardown);
        g_test_add("/cli/status-reachable", server_fixture_t, NULL, setup, test_status_reachable,
                   teardown);
        g_test_add("/cli/bad-json", server_fixture_t, NULL, setup, test_bad_json, teardown);
        g_test_add_func("/cli/no-server", test_no_server);
        g_test_add_func("/cli/help-and-usage", test_help_and_usage);
        return g_test_run();
}
