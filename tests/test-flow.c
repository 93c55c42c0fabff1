/* tests/test-flow.c — flow accounting between broker and clients (lib/bus/protocol.h "Ack",
 * G-93): a receiver that stops reading is stalled and costs nobody else anything, and the
 * unicasts a receiver never took off the bus are re-routed when it dies. Nothing is lost
 * silently: every notification sent is delivered once or comes back as a unicast error.
 *
 * The receiver under test is a vfiipc-peer process (so it can be stopped and killed); the
 * sender and the other receivers are this process, through the C API. One server for the
 * program (the client is one per process); each test uses its own notification IDs. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "bus/protocol.h"
#include "peer.h"
#include "server-fixture.h"
#include <vfiipc/notify.h>

#define WAIT_US (30 * G_USEC_PER_SEC)

static server_fixture_t server;

/* What this process received, by the "n" member of the param. */
typedef struct tally {
        const char *id;
        GMutex lock;
        GHashTable *seen; /* n → count */
        atomic_int total;
        atomic_int dups;
        gint64 first_us; /* when the first one arrived */
} tally_t;

static tally_t delivered, errors;

static void tally_init(tally_t *t, const char *id)
{
        t->id = id;
        g_mutex_init(&t->lock);
        t->seen = g_hash_table_new(g_direct_hash, g_direct_equal);
        atomic_store(&t->total, 0);
        atomic_store(&t->dups, 0);
        t->first_us = 0;
}

static void tally_clear(tally_t *t)
{
        g_hash_table_unref(t->seen);
        g_mutex_clear(&t->lock);
}

static void tally_add(tally_t *t, const char *id, const json_t *param)
{
        json_int_t n = json_integer_value(json_object_get(param, "n"));

        if (!t->id || strcmp(id, t->id) != 0)
                return;
        g_mutex_lock(&t->lock);
        if (!t->first_us)
                t->first_us = g_get_monotonic_time();
        if (g_hash_table_contains(t->seen, GINT_TO_POINTER((int)n)))
                atomic_fetch_add(&t->dups, 1);
        g_hash_table_add(t->seen, GINT_TO_POINTER((int)n));
        g_mutex_unlock(&t->lock);
        atomic_fetch_add(&t->total, 1);
}

static void on_deliver(void *data, const char *from, const char *to, const char *id,
                       const json_t *param, unsigned flags)
{
        tally_add(&delivered, id, param);
}

static void on_error(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        tally_add(&errors, id, param);
}

static void send_n(const char *to, const char *id, int n, const char *pad)
{
        char *json = g_strdup_printf("{\"n\":%d,\"pad\":\"%s\"}", n, pad ? pad : "");

        g_assert_cmpint(vfiipc_notify_text(to, id, json, 0, "sender"), ==, VFIIPC_OK);
        g_free(json);
}

/* Counts the peer's deliveries of id until have + local == want or the deadline. */
static unsigned peer_delivered_until(peer_t *p, unsigned want, atomic_int *local,
                                     atomic_int *local2)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_US;
        unsigned have = 0;

        while (g_get_monotonic_time() < deadline) {
                have += peer_count(p, "deliver\t", 50);
                if (have + (unsigned)atomic_load(local) + (unsigned)atomic_load(local2) >= want)
                        break;
        }
        have += peer_count(p, "deliver\t", 300); /* and nothing more arrives */
        return have;
}

/* True when every thread of pid is stopped (state T in /proc/PID/task/TID/stat). */
static bool all_threads_stopped(int pid)
{
        char *dir = g_strdup_printf("/proc/%d/task", pid);
        GDir *d = g_dir_open(dir, 0, NULL);
        const char *tid;
        bool all = d != NULL;

        while (d && all && (tid = g_dir_read_name(d))) {
                char *path = g_strdup_printf("%s/%s/stat", dir, tid), *text = NULL, *rp;

                if (g_file_get_contents(path, &text, NULL, NULL) && (rp = strrchr(text, ')')))
                        all = rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
                g_free(text);
                g_free(path);
        }
        if (d)
                g_dir_close(d);
        g_free(dir);
        return all;
}

/* A signal, and for SIGSTOP the wait until it took effect in every thread: a thread running on
 * the other CPU may otherwise still take one more message off the bus. */
static void peer_signal(peer_t *p, int sig)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_US;

        g_assert_cmpint(kill(peer_pid(p), sig), ==, 0);
        while (sig == SIGSTOP && !all_threads_stopped(peer_pid(p))) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_usleep(1000);
        }
}

/* G-93: with the preferred receiver stopped, unicasts for "1" go to the next receiver once
 * it is stalled (VFIIPC_STALL_MS without an Ack), promptly; after it resumes, every
 * notification was delivered exactly once or returned as a unicast error. */
static void test_stalled_receiver_unicasts_go_to_next(void)
{
        const char *id = "f.stall";
        const int total = 3000;
        peer_t *a = peer_new("a");
        gint64 start;
        unsigned got_a;

        tally_init(&delivered, id);
        tally_init(&errors, id);
        g_assert_cmpint(peer_cmd(a, "register", id, "10", "ra", NULL), ==, 0);
        g_assert_cmpint(vfiipc_register(id, on_deliver, NULL, 0, "rb"), ==, VFIIPC_OK);

        /* Healthy: the higher priority gets everything. */
        for (int i = 0; i < 100; i++)
                send_n("1", id, i, NULL);
        g_assert_cmpuint(peer_delivered_until(a, 100, &delivered.total, &errors.total), ==, 100);
        g_assert_cmpint(atomic_load(&delivered.total), ==, 0);

        peer_signal(a, SIGSTOP);
        start = g_get_monotonic_time();
        for (int i = 100; i < total; i++) {
                send_n("1", id, i, NULL);
                g_usleep(1500); /* a stream over ~4.5 s, longer than VFIIPC_STALL_MS */
        }
        /* The rest went to rb, beginning soon after the stall was seen. */
        g_assert_cmpint(atomic_load(&delivered.total), >, 0);
        g_assert_cmpint(delivered.first_us - start, <,
                        (VFIIPC_STALL_MS + 1500) * (gint64)1000);
        peer_signal(a, SIGCONT);

        got_a = 100 + peer_delivered_until(a, total - 100, &delivered.total, &errors.total);
        g_assert_cmpint(atomic_load(&delivered.dups), ==, 0);
        g_assert_cmpint(atomic_load(&errors.total), ==, 0); /* rb was always there */
        g_assert_cmpuint(got_a + (unsigned)atomic_load(&delivered.total), ==, (unsigned)total);

        vfiipc_unregister(id, on_deliver, NULL, "rb");
        peer_free(a);
        tally_clear(&delivered);
        tally_clear(&errors);
}

/* G-93: a stopped receiver's backlog is bounded (VFIIPC_BACKLOG_BYTES_MAX): beyond it the
 * notifications for it come back as unicast errors, and meanwhile everybody else is served at
 * speed. Sent = delivered + unicast errors. */
static void test_stalled_receiver_bounded_and_others_served(void)
{
        const char *id = "f.big", *fast = "f.fast";
        const int total = 80, n_fast = 200;
        char *pad = g_malloc(1024 * 1024 + 1);
        peer_t *a = peer_new("a");
        gint64 t0, t_fast;
        unsigned got_a;

        memset(pad, 'x', 1024 * 1024);
        pad[1024 * 1024] = '\0';
        tally_init(&delivered, fast);
        tally_init(&errors, id);
        g_assert_cmpint(peer_cmd(a, "register", id, "0", "ra", NULL), ==, 0);
        g_assert_cmpint(vfiipc_register(fast, on_deliver, NULL, 0, "rc"), ==, VFIIPC_OK);
        peer_signal(a, SIGSTOP);

        for (int i = 0; i < total; i++)
                send_n("ra", id, i, pad);
        /* The rest of the system does not wait for ra. */
        t0 = g_get_monotonic_time();
        for (int i = 0; i < n_fast; i++)
                send_n("*", fast, i, NULL);
        while (atomic_load(&delivered.total) < n_fast && g_get_monotonic_time() - t0 < WAIT_US)
                g_usleep(1000);
        t_fast = g_get_monotonic_time() - t0;
        g_assert_cmpint(atomic_load(&delivered.total), ==, n_fast);
        g_test_message("%d broadcasts to another receiver took %.0f ms with ra stopped", n_fast,
                       t_fast / 1000.0);
        g_assert_cmpint(t_fast, <, 5 * G_USEC_PER_SEC);

        /* Past the bound, unicast errors (not silence, not a stalled broker). */
        while (atomic_load(&errors.total) == 0 && g_get_monotonic_time() - t0 < WAIT_US)
                g_usleep(1000);
        g_assert_cmpint(atomic_load(&errors.total), >, 0);

        peer_signal(a, SIGCONT);
        got_a = peer_delivered_until(a, total, &errors.total, &delivered.dups);
        g_assert_cmpint(atomic_load(&errors.dups), ==, 0);
        g_assert_cmpuint(got_a + (unsigned)atomic_load(&errors.total), ==, (unsigned)total);

        vfiipc_unregister(fast, on_deliver, NULL, "rc");
        peer_free(a);
        g_free(pad);
        tally_clear(&delivered);
        tally_clear(&errors);
}

/* protocol.h "Ack": the unicasts a receiver had not taken off the bus when it was killed go to
 * the next receiver, or, without one, back to the sender as unicast errors: none is lost and
 * none is duplicated (it was stopped, so it had taken none). */
static void run_killed_receiver(bool with_next)
{
        const char *id = with_next ? "f.kill1" : "f.kill2";
        const int total = 500;
        peer_t *a = peer_new("a");
        gint64 deadline;
        int status;

        tally_init(&delivered, id);
        tally_init(&errors, id);
        g_assert_cmpint(peer_cmd(a, "register", id, "10", "ra", NULL), ==, 0);
        if (with_next)
                g_assert_cmpint(vfiipc_register(id, on_deliver, NULL, 0, "rb"), ==, VFIIPC_OK);
        peer_signal(a, SIGSTOP);
        for (int i = 0; i < total; i++)
                send_n("1", id, i, NULL);
        /* All went to ra (not stalled yet): nothing here. */
        g_usleep(200 * 1000);
        g_assert_cmpint(atomic_load(&delivered.total) + atomic_load(&errors.total), ==, 0);

        peer_signal(a, SIGKILL);
        g_assert_cmpint(waitpid(peer_pid(a), &status, 0), ==, peer_pid(a));
        deadline = g_get_monotonic_time() + WAIT_US;
        while (atomic_load(&delivered.total) + atomic_load(&errors.total) < total &&
               g_get_monotonic_time() < deadline)
                g_usleep(1000);
        g_usleep(200 * 1000); /* and no more */
        g_assert_cmpint(atomic_load(&delivered.dups) + atomic_load(&errors.dups), ==, 0);
        g_assert_cmpint(atomic_load(with_next ? &delivered.total : &errors.total), ==, total);
        g_assert_cmpint(atomic_load(with_next ? &errors.total : &delivered.total), ==, 0);

        if (with_next)
                vfiipc_unregister(id, on_deliver, NULL, "rb");
        peer_free(a); /* reaped already: only its pipes and memory */
        tally_clear(&delivered);
        tally_clear(&errors);
}

static void test_killed_receiver_unicasts_go_to_next(void)
{
        run_killed_receiver(true);
}

static void test_killed_receiver_unicasts_become_errors(void)
{
        run_killed_receiver(false);
}

int main(int argc, char **argv)
{
        int r;

        g_test_init(&argc, &argv, NULL);
        /* peer_free() writes "quit" to peers this program killed. */
        signal(SIGPIPE, SIG_IGN);
        if (!g_getenv("VFIIPC_NOTIFYSVC") || !g_getenv("VFIIPC_TEST_PEER")) {
                g_test_skip("VFIIPC_NOTIFYSVC / VFIIPC_TEST_PEER not set");
                return g_test_run();
        }
        server_fixture_start(&server);
        vfiipc_set_app_id("sender");
        g_assert_cmpint(vfiipc_unicast_error_add(on_error, NULL), ==, VFIIPC_OK);

        g_test_add_func("/flow/stalled-receiver/unicasts-go-to-next",
                        test_stalled_receiver_unicasts_go_to_next);
        g_test_add_func("/flow/stalled-receiver/bounded-and-others-served",
                        test_stalled_receiver_bounded_and_others_served);
        g_test_add_func("/flow/killed-receiver/unicasts-go-to-next",
                        test_killed_receiver_unicasts_go_to_next);
        g_test_add_func("/flow/killed-receiver/unicasts-become-errors",
                        test_killed_receiver_unicasts_become_errors);
        r = g_test_run();
        server_fixture_stop(&server);
        return r;
}
