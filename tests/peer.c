/* tests/peer.c — see peer.h. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "peer.h"

struct peer {
        GPid pid;
        int in, out;
        GString *buf;
        GQueue lines; /* char *, not yet consumed */
};

/* Reads what is available within timeout_ms into complete lines. */
static void peer_pump(peer_t *p, int timeout_ms)
{
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        char chunk[4096];
        ssize_t n;
        char *nl;

        if (poll(&pfd, 1, timeout_ms) <= 0)
                return;
        n = read(p->out, chunk, sizeof(chunk));
        if (n <= 0)
                return;
        g_string_append_len(p->buf, chunk, n);
        while ((nl = memchr(p->buf->str, '\n', p->buf->len))) {
                g_queue_push_tail(&p->lines, g_strndup(p->buf->str, nl - p->buf->str));
                g_string_erase(p->buf, 0, nl - p->buf->str + 1);
        }
}

/* A test that aborts while a peer is stopped (SIGSTOP, test-flow) must not leave it behind: a
 * stopped orphan ignores SIGTERM and keeps the test's stderr open, so meson would wait for it
 * until the timeout and show a TIMEOUT instead of the failed assertion. */
static void peer_die_with_test(gpointer unused)
{
        prctl(PR_SET_PDEATHSIG, SIGKILL);
}

peer_t *peer_new(const char *app_id)
{
        const char *argv[] = {g_getenv("VFIIPC_TEST_PEER"), NULL};
        GError *error = NULL;
        peer_t *p = g_new0(peer_t, 1);

        g_assert_nonnull(argv[0]);
        g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                 peer_die_with_test, NULL, &p->pid, &p->in, &p->out, NULL, &error);
        g_assert_no_error(error);
        p->buf = g_string_new(NULL);
        g_queue_init(&p->lines);
        if (app_id)
                g_assert_cmpint(peer_cmd(p, "appid", app_id, NULL), ==, 0);
        return p;
}

int peer_pid(const peer_t *p)
{
        return (int)p->pid;
}

void peer_free(peer_t *p)
{
        int status;

        if (!p)
                return;
        (void)!write(p->in, "quit\n", 5);
        close(p->in);
        close(p->out);
        kill(p->pid, SIGTERM);
        waitpid(p->pid, &status, 0);
        g_spawn_close_pid(p->pid);
        g_string_free(p->buf, TRUE);
        g_queue_clear_full(&p->lines, g_free);
        g_free(p);
}

static char *take(peer_t *p, const char *prefix)
{
        for (GList *l = p->lines.head; l; l = l->next)
                if (g_str_has_prefix(l->data, prefix)) {
                        char *s = l->data;
                        g_queue_delete_link(&p->lines, l);
                        return s;
                }
        return NULL;
}

char *peer_wait(peer_t *p, const char *prefix, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
        char *s;

        while (!(s = take(p, prefix))) {
                gint64 left = (deadline - g_get_monotonic_time()) / 1000;
                if (left <= 0)
                        return NULL;
                peer_pump(p, (int)left);
        }
        return s;
}

unsigned peer_count(peer_t *p, const char *prefix, int ms)
{
        unsigned n = 0;
        char *s;

        while ((s = peer_wait(p, prefix, ms))) {
                g_free(s);
                n++;
        }
        return n;
}

int peer_cmd(peer_t *p, ...)
{
        GString *cmd = g_string_new(NULL);
        const char *f;
        va_list ap;
        char *res;
        int r;

        va_start(ap, p);
        for (bool first = true; (f = va_arg(ap, const char *)); first = false) {
                if (!first)
                        g_string_append_c(cmd, '\t');
                g_string_append(cmd, f);
        }
        va_end(ap);
        g_string_append_c(cmd, '\n');
        g_assert_cmpint(write(p->in, cmd->str, cmd->len), ==, (gssize)cmd->len);
        g_string_free(cmd, TRUE);
        res = peer_wait(p, "result\t", 20000);
        g_assert_nonnull(res);
        r = atoi(res + 7);
        g_free(res);
        return r;
}
