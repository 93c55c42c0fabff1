/* tests/test-notify-threads.c — callbacks, threads and robustness of the client library, in one
 * process with the C API. The client is one per process, so the program shares one private
 * server (started in main) and each test uses its own notification IDs.
 * legacy-api.md §6.3 (CBT-*), §6.6 (UNREG-4/5), G-68, G-69. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdatomic.h>
#include <string.h>

#include <dbus/dbus.h>
#include <glib.h>

#include "bus/protocol.h"
#include "server-fixture.h"
#include <vfiipc/notify.h>

#define DEADLINE_US (20 * G_USEC_PER_SEC)

static server_fixture_t server;

/* Waits until *v >= want or the deadline passes; returns the last value. */
static int wait_atomic(atomic_int *v, int want)
{
        gint64 deadline = g_get_monotonic_time() + DEADLINE_US;

        while (atomic_load(v) < want && g_get_monotonic_time() < deadline)
                g_usleep(1000);
        return atomic_load(v);
}

/* ---- CBT-1: callbacks run on library threads, not the caller's ---- */

static GThread *seen_thread;
static atomic_int seen_count;

static void cb_record_thread(void *data, const char *from, const char *to, const char *id,
                             const json_t *param, unsigned flags)
{
        seen_thread = g_thread_self();
        atomic_fetch_add(&seen_count, 1);
}

static void test_callback_off_caller_thread(void)
{
        g_assert_cmpint(vfiipc_register("t.thread", cb_record_thread, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.thread", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&seen_count, 1), ==, 1);
        g_assert_true(seen_thread != g_thread_self());
        vfiipc_unregister("t.thread", NULL, NULL, NULL);
}

/* ---- CBT-2: two slow callbacks overlap ---- */

static atomic_int overlap_now, overlap_max, overlap_done;

static void cb_slow(void *data, const char *from, const char *to, const char *id,
                    const json_t *param, unsigned flags)
{
        int n = atomic_fetch_add(&overlap_now, 1) + 1;
        int m = atomic_load(&overlap_max);

        while (n > m && !atomic_compare_exchange_weak(&overlap_max, &m, n))
                ;
        g_usleep(300 * 1000);
        atomic_fetch_sub(&overlap_now, 1);
        atomic_fetch_add(&overlap_done, 1);
}

static void test_slow_callbacks_overlap(void)
{
        g_assert_cmpint(vfiipc_register("t.slow", cb_slow, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.slow", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.slow", "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&overlap_done, 2), ==, 2);
        g_assert_cmpint(atomic_load(&overlap_max), ==, 2);
        vfiipc_unregister("t.slow", NULL, NULL, NULL);
}

/* ---- UNREG-4: unregister waits for a running callback, and no call follows ---- */

static atomic_int guard_started, guard_finished, guard_calls;

static void cb_guarded(void *data, const char *from, const char *to, const char *id,
                       const json_t *param, unsigned flags)
{
        atomic_fetch_add(&guard_calls, 1);
        atomic_store(&guard_started, 1);
        g_usleep(300 * 1000);
        atomic_store(&guard_finished, 1);
}

static void test_unregister_waits_for_running_callback(void)
{
        int calls;

        g_assert_cmpint(vfiipc_register("t.guard", cb_guarded, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.guard", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&guard_started, 1), ==, 1);
        g_assert_cmpint(vfiipc_unregister("t.guard", cb_guarded, NULL, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(atomic_load(&guard_finished), ==, 1);
        calls = atomic_load(&guard_calls);
        g_assert_cmpint(vfiipc_notify_text("*", "t.guard", "2", 0, NULL), ==, VFIIPC_OK);
        g_usleep(300 * 1000);
        g_assert_cmpint(atomic_load(&guard_calls), ==, calls);
}

/* UNREG-3: a different callback does not remove the registration. */
static void test_unregister_other_callback_keeps_registration(void)
{
        atomic_store(&seen_count, 0);
        g_assert_cmpint(vfiipc_register("t.keep", cb_record_thread, &seen_count, 0, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(vfiipc_unregister("t.keep", cb_slow, NULL, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_unregister("t.keep", cb_record_thread, &overlap_max, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.keep", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&seen_count, 1), ==, 1);
        g_assert_cmpint(vfiipc_unregister("t.keep", cb_record_thread, NULL, NULL), ==, VFIIPC_OK);
}

/* ---- G-69: unregistering from inside its own callback does not deadlock ---- */

static atomic_int self_done;

static void cb_self_unregister(void *data, const char *from, const char *to, const char *id,
                               const json_t *param, unsigned flags)
{
        vfiipc_unregister("t.self", cb_self_unregister, NULL, NULL);
        atomic_store(&self_done, 1);
}

static void test_self_unregister_does_not_deadlock(void)
{
        g_assert_cmpint(vfiipc_register("t.self", cb_self_unregister, NULL, 0, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.self", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&self_done, 1), ==, 1);
}

/* ---- 20 sender threads × 1000 notifications, each counted exactly once ---- */

#define FLOOD_THREADS 20
#define FLOOD_EACH 1000

static atomic_int flood_seen[FLOOD_THREADS * FLOOD_EACH];
static atomic_int flood_total;

static void cb_flood(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        json_int_t t = json_integer_value(json_object_get(param, "t"));
        json_int_t i = json_integer_value(json_object_get(param, "i"));

        if (t >= 0 && t < FLOOD_THREADS && i >= 0 && i < FLOOD_EACH)
                atomic_fetch_add(&flood_seen[t * FLOOD_EACH + i], 1);
        atomic_fetch_add(&flood_total, 1);
}

static gpointer flood_sender(gpointer p)
{
        int t = GPOINTER_TO_INT(p);

        for (int i = 0; i < FLOOD_EACH; i++) {
                json_t *v = json_pack("{s:i,s:i}", "t", t, "i", i);
                g_assert_cmpint(vfiipc_notify("1", "t.flood", v, 0, NULL), ==, VFIIPC_OK);
                json_decref(v);
        }
        return NULL;
}

static void test_twenty_senders_counted_exactly_once(void)
{
        GThread *th[FLOOD_THREADS];
        gint64 deadline = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;

        g_assert_cmpint(vfiipc_register("t.flood", cb_flood, NULL, 0, NULL), ==, VFIIPC_OK);
        for (int t = 0; t < FLOOD_THREADS; t++)
                th[t] = g_thread_new("sender", flood_sender, GINT_TO_POINTER(t));
        for (int t = 0; t < FLOOD_THREADS; t++)
                g_thread_join(th[t]);
        while (atomic_load(&flood_total) < FLOOD_THREADS * FLOOD_EACH &&
               g_get_monotonic_time() < deadline)
                g_usleep(10 * 1000);
        g_usleep(200 * 1000); /* anything extra would show now */
        g_assert_cmpint(atomic_load(&flood_total), ==, FLOOD_THREADS * FLOOD_EACH);
        for (int k = 0; k < FLOOD_THREADS * FLOOD_EACH; k++)
                g_assert_cmpint(atomic_load(&flood_seen[k]), ==, 1);
        vfiipc_unregister("t.flood", NULL, NULL, NULL);
}

/* ---- a 1 MiB param arrives intact; one above the limit is refused, the sender stays ---- */

static char *big_received;
static atomic_int big_count;

static void cb_big(void *data, const char *from, const char *to, const char *id,
                   const json_t *param, unsigned flags)
{
        big_received = g_strdup(json_string_value(json_object_get(param, "blob")));
        atomic_fetch_add(&big_count, 1);
}

static void test_one_mib_param_intact(void)
{
        size_t n = 1024 * 1024;
        char *blob = g_malloc(n + 1);
        json_t *v;

        for (size_t i = 0; i < n; i++)
                blob[i] = (char)('a' + i % 26);
        blob[n] = '\0';
        v = json_pack("{s:s}", "blob", blob);
        g_assert_cmpint(vfiipc_register("t.big", cb_big, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify("*", "t.big", v, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&big_count, 1), ==, 1);
        g_assert_cmpuint(strlen(big_received), ==, n);
        g_assert_true(strcmp(big_received, blob) == 0);
        json_decref(v);
        g_free(blob);
        g_free(big_received);
}

static void test_oversized_param_refused_sender_stays(void)
{
        size_t n = VFIIPC_PARAM_MAX_BYTES; /* + 2 quotes > limit */
        char *blob = g_malloc(n + 1);
        json_t *v;

        memset(blob, 'x', n);
        blob[n] = '\0';
        v = json_string(blob);
        g_assert_cmpint(vfiipc_notify("*", "t.big", v, 0, NULL), ==, VFIIPC_ERR_SERVER);
        json_decref(v);
        g_free(blob);
        /* Still connected: a small one goes through. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.big", "{\"blob\":\"ok\"}", 0, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&big_count, 2), ==, 2);
        g_assert_cmpstr(big_received, ==, "ok");
        g_free(big_received);
        big_received = NULL;
        vfiipc_unregister("t.big", NULL, NULL, NULL);
}

/* vfiipc_notify_text refuses text that is not JSON, naming nothing on the bus. */
static void test_invalid_json_text_refused(void)
{
        g_assert_cmpint(vfiipc_notify_text("*", "t.x", "{", 0, NULL), ==, VFIIPC_ERR_SERVER);
        g_assert_cmpint(vfiipc_notify_text("*", "t.x", "", 0, NULL), ==, VFIIPC_ERR_SERVER);
        g_assert_cmpint(vfiipc_notify_text("*", "t.x", NULL, 0, NULL), ==, VFIIPC_ERR_SERVER);
        g_assert_cmpint(vfiipc_notify_text("*", "t.x", "[1] x", 0, NULL), ==, VFIIPC_ERR_SERVER);
}

/* ---- nothing invalid from a raw D-Bus client reaches a receiver ---- */

static atomic_int raw_count;
static char *raw_last;

static void cb_raw(void *data, const char *from, const char *to, const char *id,
                   const json_t *param, unsigned flags)
{
        g_free(raw_last);
        raw_last = json_dumps(param, JSON_ENCODE_ANY | JSON_COMPACT);
        atomic_fetch_add(&raw_count, 1);
}

static void raw_notify(DBusConnection *c, const char *from, const char *json)
{
        DBusMessage *m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                      VFIIPC_BROKER_INTERFACE, "Notify");
        const char *to = "*", *id = "t.raw";
        dbus_uint32_t flags = 0;

        dbus_message_append_args(m, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                 DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                 &flags, DBUS_TYPE_INVALID);
        dbus_message_set_no_reply(m, TRUE);
        dbus_connection_send(c, m, NULL);
        dbus_message_unref(m);
        dbus_connection_flush(c);
}

static void test_raw_client_invalid_json_not_delivered(void)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        g_assert_cmpint(vfiipc_register("t.raw", cb_raw, NULL, 0, NULL), ==, VFIIPC_OK);
        raw_notify(c, "raw", "{\"broken\":");
        raw_notify(c, "raw", "nul\\u0000l");
        raw_notify(c, "", "1"); /* empty from */
        raw_notify(c, "raw", "{\"ok\":true}");
        g_assert_cmpint(wait_atomic(&raw_count, 1), ==, 1);
        g_usleep(200 * 1000);
        g_assert_cmpint(atomic_load(&raw_count), ==, 1);
        g_assert_cmpstr(raw_last, ==, "{\"ok\":true}");
        vfiipc_unregister("t.raw", NULL, NULL, NULL);
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* A forged Deliver from another client (not the broker) is ignored. */
static void test_forged_delivery_ignored(void)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        DBusMessage *m;
        const char *from = "evil", *to = "*", *id = "t.forge", *json = "1", *rcv;
        char *own = vfiipc_get_app_id();
        dbus_uint32_t flags = 0;
        dbus_uint64_t ticket = 0;
        DBusMessage *q, *reply;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        atomic_store(&raw_count, 0);
        g_assert_cmpint(vfiipc_register("t.forge", cb_raw, NULL, 0, NULL), ==, VFIIPC_OK);
        rcv = own;
        /* Find our own unique name: the only other connection besides broker and c. Instead
         * of guessing, broadcast the forged signal to every name that is not the broker. */
        q = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "ListNames");
        reply = dbus_connection_send_with_reply_and_block(c, q, 5000, NULL);
        g_assert_nonnull(reply);
        {
                char **names;
                int n;
                g_assert_true(dbus_message_get_args(reply, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
                                                    &names, &n, DBUS_TYPE_INVALID));
                for (int i = 0; i < n; i++) {
                        if (names[i][0] != ':')
                                continue;
                        m = dbus_message_new_signal(VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE,
                                                    "Deliver");
                        dbus_message_set_destination(m, names[i]);
                        dbus_message_append_args(m, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING,
                                                 &to, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING,
                                                 &json, DBUS_TYPE_UINT32, &flags,
                                                 DBUS_TYPE_STRING, &rcv, DBUS_TYPE_UINT64,
                                                 &ticket, DBUS_TYPE_INVALID);
                        dbus_connection_send(c, m, NULL);
                        dbus_message_unref(m);
                }
                dbus_free_string_array(names);
        }
        dbus_message_unref(reply);
        dbus_message_unref(q);
        dbus_connection_flush(c);
        g_usleep(300 * 1000);
        g_assert_cmpint(atomic_load(&raw_count), ==, 0);
        /* The real path still works. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.forge", "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&raw_count, 1), ==, 1);
        vfiipc_unregister("t.forge", NULL, NULL, NULL);
        dbus_connection_close(c);
        dbus_connection_unref(c);
        free(own);
}

/* ---- G-68: server killed and restarted; a registered client receives again ---- */

static atomic_int restart_count;

static void cb_restart(void *data, const char *from, const char *to, const char *id,
                       const json_t *param, unsigned flags)
{
        atomic_fetch_add(&restart_count, 1);
}

static void test_server_restart_reregisters(void)
{
        gint64 t0, deadline;
        int r;

        g_assert_cmpint(vfiipc_register("t.restart", cb_restart, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.restart", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&restart_count, 1), ==, 1);

        server_fixture_kill(&server);
        /* While it is gone, calls fail with NOTIFY_ERR_SERVER (G-68). */
        deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        do {
                r = vfiipc_notify_text("*", "t.restart", "0", 0, NULL);
                if (r == VFIIPC_ERR_SERVER)
                        break;
                g_usleep(10 * 1000);
        } while (g_get_monotonic_time() < deadline);
        g_assert_cmpint(r, ==, VFIIPC_ERR_SERVER);

        server_fixture_restart(&server);
        t0 = g_get_monotonic_time();
        deadline = t0 + 15 * G_USEC_PER_SEC; /* design target 2 s; generous for slow CI */
        while (g_get_monotonic_time() < deadline) {
                int before = atomic_load(&restart_count);
                if (vfiipc_notify_text("*", "t.restart", "2", 0, NULL) == VFIIPC_OK) {
                        gint64 d = g_get_monotonic_time() + 200 * 1000;
                        while (atomic_load(&restart_count) == before && g_get_monotonic_time() < d)
                                g_usleep(1000);
                        if (atomic_load(&restart_count) > before)
                                break;
                }
                g_usleep(20 * 1000);
        }
        g_assert_cmpint(atomic_load(&restart_count), >=, 2);
        g_test_message("receiving again %.0f ms after the restart",
                       (g_get_monotonic_time() - t0) / 1000.0);
        vfiipc_unregister("t.restart", NULL, NULL, NULL);
}

/* ---- G-76: a fork()ed child starts afresh, even when the parent's callback threads idled ---- */

static atomic_int fork_count;

static void cb_fork(void *data, const char *from, const char *to, const char *id,
                    const json_t *param, unsigned flags)
{
        atomic_fetch_add(&fork_count, 1);
}

static void test_forked_child_starts_afresh(void)
{
        pid_t pid;
        int status;

        g_assert_cmpint(vfiipc_register("t.fork", cb_fork, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.fork", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&fork_count, 1), ==, 1);
        g_usleep(800 * 1000); /* the callback thread has gone idle */
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
                atomic_store(&fork_count, 0);
                vfiipc_set_app_id("fork-child");
                if (vfiipc_register("t.fork.child", cb_fork, NULL, 0, NULL) != VFIIPC_OK)
                        _exit(2);
                if (vfiipc_notify_text("fork-child", "t.fork.child", "2", 0, NULL) != VFIIPC_OK)
                        _exit(3);
                while (atomic_load(&fork_count) < 1 && g_get_monotonic_time() < deadline)
                        g_usleep(1000);
                _exit(atomic_load(&fork_count) == 1 ? 0 : 4);
        }
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        /* The parent is unaffected. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.fork", "3", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&fork_count, 2), ==, 2);
        vfiipc_unregister("t.fork", NULL, NULL, NULL);
}

/* ---- the server dies while a thread sends large notifications: no crash, back after ---- */

static atomic_int flood_stop;

static gpointer big_sender(gpointer unused)
{
        char *blob = g_malloc(16 * 1024 + 3);

        memset(blob, 'y', 16 * 1024 + 2);
        blob[0] = blob[16 * 1024 + 1] = '"';
        blob[16 * 1024 + 2] = '\0';
        while (!atomic_load(&flood_stop)) {
                vfiipc_notify_text("nobody-listens", "t.killflood", blob, 0, NULL);
                g_usleep(500);
        }
        g_free(blob);
        return NULL;
}

static void test_server_killed_during_flood(void)
{
        GThread *th = g_thread_new("flood", big_sender, NULL);
        gint64 deadline;
        int before;

        g_usleep(300 * 1000);
        server_fixture_kill(&server);
        g_usleep(200 * 1000);
        server_fixture_restart(&server);
        g_usleep(300 * 1000);
        atomic_store(&flood_stop, 1);
        g_thread_join(th);

        deadline = g_get_monotonic_time() + 15 * G_USEC_PER_SEC;
        before = atomic_load(&restart_count);
        while (atomic_load(&restart_count) == before && g_get_monotonic_time() < deadline) {
                if (vfiipc_register("t.afterflood", cb_restart, NULL, 0, NULL) == VFIIPC_OK)
                        vfiipc_notify_text("*", "t.afterflood", "1", 0, NULL);
                g_usleep(50 * 1000);
        }
        g_assert_cmpint(atomic_load(&restart_count), >, before);
        vfiipc_unregister("t.afterflood", NULL, NULL, NULL);
}

/* ---- observers in-process (OBS-1, OBS-2, UE-5 list semantics) ---- */

static atomic_int obs_a, obs_b;

static void obs_cb(void *data, const char *from, const char *to, const char *id, unsigned flags)
{
        if (strcmp(id, "t.obs") == 0)
                atomic_fetch_add((atomic_int *)data, 1);
}

static void cb_nop(void *data, const char *from, const char *to, const char *id,
                   const json_t *param, unsigned flags)
{
}

static void test_observer_list_semantics(void)
{
        g_assert_cmpint(vfiipc_observer_add(obs_cb, &obs_a), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_observer_add(obs_cb, &obs_a), ==, VFIIPC_OK); /* once only */
        g_assert_cmpint(vfiipc_observer_add(obs_cb, &obs_b), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_register("t.obs", cb_nop, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.obs", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&obs_a, 1), ==, 1);
        g_assert_cmpint(wait_atomic(&obs_b, 1), ==, 1);
        g_usleep(200 * 1000);
        g_assert_cmpint(atomic_load(&obs_a), ==, 1);
        /* OBS-6: data given → only that pair goes. */
        g_assert_cmpint(vfiipc_observer_remove(obs_cb, &obs_a), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.obs", "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&obs_b, 2), ==, 2);
        g_usleep(200 * 1000);
        g_assert_cmpint(atomic_load(&obs_a), ==, 1);
        /* cb NULL on add removes all (OBS-D-1). */
        g_assert_cmpint(vfiipc_observer_add(NULL, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.obs", "3", 0, NULL), ==, VFIIPC_OK);
        g_usleep(300 * 1000);
        g_assert_cmpint(atomic_load(&obs_b), ==, 2);
        vfiipc_unregister("t.obs", NULL, NULL, NULL);
}

int main(int argc, char **argv)
{
        int r;

        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);
        server_fixture_start(&server);
        vfiipc_set_app_id("threads-test");

        g_test_add_func("/threads/callback-off-caller-thread", test_callback_off_caller_thread);
        g_test_add_func("/threads/slow-callbacks-overlap", test_slow_callbacks_overlap);
        g_test_add_func("/threads/unregister-waits-for-running-callback",
                        test_unregister_waits_for_running_callback);
        g_test_add_func("/threads/unregister-other-callback-keeps-registration",
                        test_unregister_other_callback_keeps_registration);
        g_test_add_func("/threads/self-unregister-does-not-deadlock",
                        test_self_unregister_does_not_deadlock);
        g_test_add_func("/threads/twenty-senders-counted-exactly-once",
                        test_twenty_senders_counted_exactly_once);
        g_test_add_func("/threads/one-mib-param-intact", test_one_mib_param_intact);
        g_test_add_func("/threads/oversized-param-refused-sender-stays",
                        test_oversized_param_refused_sender_stays);
        g_test_add_func("/threads/invalid-json-text-refused", test_invalid_json_text_refused);
        g_test_add_func("/threads/raw-client-invalid-json-not-delivered",
                        test_raw_client_invalid_json_not_delivered);
        g_test_add_func("/threads/forged-delivery-ignored", test_forged_delivery_ignored);
        g_test_add_func("/threads/observer-list-semantics", test_observer_list_semantics);
        g_test_add_func("/threads/server-restart-reregisters", test_server_restart_reregisters);
        g_test_add_func("/threads/server-killed-during-flood", test_server_killed_during_flood);
        g_test_add_func("/threads/forked-child-starts-afresh", test_forked_child_starts_afresh);
        r = g_test_run();
        server_fixture_stop(&server);
        return r;
}
