/* tests/test-notify-threads.c — callbacks, threads and robustness of the client library, in one
 * process with the C API. The client is one per process, so the program shares one private
 * server (started in main) and each test uses its own notification IDs.
 * legacy-api.md §6.3 (CBT-*), §6.6 (UNREG-4/5), G-68, G-69. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdatomic.h>
#include <string.h>

#include <dbus/dbus.h>
#include <glib.h>

#include "bus/protocol.h"
#include "bus/wire.h"
#include "core/util.h"
#include "peer.h"
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

/* ---- 20 sender threads × 10 000 notifications, each delivered exactly once ---- */

#define FLOOD_THREADS 20
#define FLOOD_EACH 10000

static atomic_int flood_seen[FLOOD_THREADS * FLOOD_EACH];
static atomic_int flood_total, flood_bad, flood_errors;

static void cb_flood(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        json_int_t t = json_integer_value(json_object_get(param, "t"));
        json_int_t i = json_integer_value(json_object_get(param, "i"));

        if (t >= 0 && t < FLOOD_THREADS && i >= 0 && i < FLOOD_EACH)
                atomic_fetch_add(&flood_seen[t * FLOOD_EACH + i], 1);
        else
                atomic_fetch_add(&flood_bad, 1);
        atomic_fetch_add(&flood_total, 1);
}

/* A stalled receiver would turn unicasts into unicast errors (G-93): none may come back. */
static void cb_flood_error(void *data, const char *from, const char *to, const char *id,
                           const json_t *param, unsigned flags)
{
        if (strcmp(id, "t.flood") == 0)
                atomic_fetch_add(&flood_errors, 1);
}

static gpointer flood_sender(gpointer p)
{
        int t = GPOINTER_TO_INT(p);
        int failed = 0;

        for (int i = 0; i < FLOOD_EACH; i++) {
                json_t *v = json_pack("{s:i,s:i}", "t", t, "i", i);
                failed += vfiipc_notify("1", "t.flood", v, 0, NULL) != VFIIPC_OK;
                json_decref(v);
        }
        return GINT_TO_POINTER(failed);
}

/* 200 000 unicasts from 20 threads at once to one receiver: every (sender, sequence) pair
 * arrives exactly once, none is missing, none is duplicated, none becomes a unicast error. */
static void test_twenty_senders_counted_exactly_once(void)
{
        const int total = FLOOD_THREADS * FLOOD_EACH;
        GThread *th[FLOOD_THREADS];
        gint64 t0 = g_get_monotonic_time(), deadline = t0 + 120 * G_USEC_PER_SEC;
        int missing = 0, dups = 0, failed = 0;

        g_assert_cmpint(vfiipc_register("t.flood", cb_flood, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_unicast_error_add(cb_flood_error, NULL), ==, VFIIPC_OK);
        for (int t = 0; t < FLOOD_THREADS; t++)
                th[t] = g_thread_new("sender", flood_sender, GINT_TO_POINTER(t));
        for (int t = 0; t < FLOOD_THREADS; t++)
                failed += GPOINTER_TO_INT(g_thread_join(th[t]));
        g_assert_cmpint(failed, ==, 0);
        while (atomic_load(&flood_total) + atomic_load(&flood_errors) < total &&
               g_get_monotonic_time() < deadline)
                g_usleep(10 * 1000);
        g_test_message("%d notifications from %d threads delivered in %.1f s", total,
                       FLOOD_THREADS, (g_get_monotonic_time() - t0) / 1e6);
        g_usleep(200 * 1000); /* anything extra would show now */
        for (int k = 0; k < total; k++) {
                int n = atomic_load(&flood_seen[k]);
                missing += n == 0;
                dups += n > 1;
        }
        g_assert_cmpint(atomic_load(&flood_errors), ==, 0);
        g_assert_cmpint(atomic_load(&flood_bad), ==, 0);
        g_assert_cmpint(missing, ==, 0);
        g_assert_cmpint(dups, ==, 0);
        g_assert_cmpint(atomic_load(&flood_total), ==, total);
        g_assert_cmpint(vfiipc_unicast_error_remove(cb_flood_error, NULL), ==, VFIIPC_OK);
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
        g_clear_pointer(&big_received, g_free);
        vfiipc_unregister("t.big", NULL, NULL, NULL);
}

/* The unique bus names of this process's connections other than `except` (asking the bus
 * driver for each name's process). */
/* The unique names on the bus but except (ListNames); free with g_strfreev(). */
static char **unique_names(DBusConnection *c, const char *except)
{
        DBusMessage *q = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                      DBUS_INTERFACE_DBUS, "ListNames");
        DBusMessage *reply = dbus_connection_send_with_reply_and_block(c, q, 5000, NULL);
        GPtrArray *v = g_ptr_array_new();
        char **names;
        int n;

        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &names,
                                            &n, DBUS_TYPE_INVALID));
        for (int i = 0; i < n; i++)
                if (names[i][0] == ':' && strcmp(names[i], except) != 0)
                        g_ptr_array_add(v, g_strdup(names[i]));
        g_ptr_array_add(v, NULL);
        dbus_free_string_array(names);
        dbus_message_unref(reply);
        dbus_message_unref(q);
        return (char **)g_ptr_array_free(v, FALSE);
}

static GPtrArray *own_bus_names(DBusConnection *c, const char *except)
{
        GPtrArray *own = g_ptr_array_new_with_free_func(g_free);
        char **names = unique_names(c, except);

        for (int i = 0; names[i]; i++) {
                DBusMessage *m, *r;
                dbus_uint32_t pid = 0;

                m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                 DBUS_INTERFACE_DBUS, "GetConnectionUnixProcessID");
                dbus_message_append_args(m, DBUS_TYPE_STRING, &names[i], DBUS_TYPE_INVALID);
                r = dbus_connection_send_with_reply_and_block(c, m, 5000, NULL);
                if (r && dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &pid, DBUS_TYPE_INVALID) &&
                    pid == (dbus_uint32_t)getpid())
                        g_ptr_array_add(own, g_strdup(names[i]));
                if (r)
                        dbus_message_unref(r);
                dbus_message_unref(m);
        }
        g_strfreev(names);
        return own;
}

static char *limit_received;
static atomic_int limit_count;

static void cb_limit(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        char *text = json_dumps(param, JSON_COMPACT | JSON_ENCODE_ANY);

        g_free(limit_received);
        limit_received = g_strdup(text);
        free(text);
        atomic_fetch_add(&limit_count, 1);
}

/* JSON text of exactly `bytes` bytes: a string of letters in quotes. */
static char *json_string_text(size_t bytes)
{
        char *t = g_malloc(bytes + 1);

        for (size_t i = 1; i + 1 < bytes; i++)
                t[i] = (char)('a' + i % 26);
        t[0] = t[bytes - 1] = '"';
        t[bytes] = '\0';
        return t;
}

/* VFIIPC_PARAM_MAX_BYTES: a param of exactly that many bytes of JSON text is accepted and
 * arrives intact (as text and as json_t); one byte more is refused with VFIIPC_ERR_SERVER, and
 * the sender keeps its connection (the same unique name on the bus) and goes on working. */
static void test_param_limit_exact_accepted_one_more_refused(void)
{
        const size_t max = VFIIPC_PARAM_MAX_BYTES;
        DBusConnection *w = dbus_connection_open_private(server.address, NULL);
        char *exact = json_string_text(max), *over = json_string_text(max + 1);
        GPtrArray *before, *after;
        json_t *v;

        g_assert_nonnull(w);
        g_assert_true(dbus_bus_register(w, NULL));
        atomic_store(&limit_count, 0);
        g_assert_cmpint(vfiipc_register("t.limit", cb_limit, NULL, 0, NULL), ==, VFIIPC_OK);
        before = own_bus_names(w, dbus_bus_get_unique_name(w));
        g_assert_cmpuint(before->len, ==, 1); /* the library's one connection */

        /* Exactly at the limit, as text and as a json_t that serialises to that many bytes. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.limit", exact, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&limit_count, 1), ==, 1);
        g_assert_cmpuint(strlen(limit_received), ==, max);
        g_assert_true(strcmp(limit_received, exact) == 0);
        exact[max - 1] = '\0';
        v = json_string(exact + 1);
        g_assert_cmpint(vfiipc_notify("*", "t.limit", v, 0, NULL), ==, VFIIPC_OK);
        json_decref(v);
        exact[max - 1] = '"';
        g_assert_cmpint(wait_atomic(&limit_count, 2), ==, 2);
        g_assert_true(strcmp(limit_received, exact) == 0);

        /* One byte more: refused, both ways. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.limit", over, 0, NULL), ==, VFIIPC_ERR_SERVER);
        over[max] = '\0';
        v = json_string(over + 1);
        g_assert_cmpint(vfiipc_notify("*", "t.limit", v, 0, NULL), ==, VFIIPC_ERR_SERVER);
        json_decref(v);

        /* Still the same connection, and it works; nothing refused arrived before this. */
        g_assert_cmpint(vfiipc_notify_text("*", "t.limit", "\"ok\"", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&limit_count, 3), ==, 3);
        g_assert_cmpstr(limit_received, ==, "\"ok\"");
        g_usleep(200 * 1000); /* anything extra would show now */
        g_assert_cmpint(atomic_load(&limit_count), ==, 3);
        after = own_bus_names(w, dbus_bus_get_unique_name(w));
        g_assert_cmpuint(after->len, ==, 1);
        g_assert_cmpstr(g_ptr_array_index(after, 0), ==, g_ptr_array_index(before, 0));

        vfiipc_unregister("t.limit", NULL, NULL, NULL);
        g_clear_pointer(&limit_received, g_free);
        g_ptr_array_unref(before);
        g_ptr_array_unref(after);
        g_free(exact);
        g_free(over);
        dbus_connection_close(w);
        dbus_connection_unref(w);
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
static void forge_to_all(DBusConnection *c, const char *path, const char *iface,
                         const char *member, int first_type, ...);

static void test_forged_delivery_ignored(void)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        const char *from = "evil", *to = "*", *id = "t.forge", *json = "1", *rcv;
        char *own = vfiipc_get_app_id();
        dbus_uint32_t flags = 0;
        dbus_uint64_t ticket = 0;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        atomic_store(&raw_count, 0);
        g_assert_cmpint(vfiipc_register("t.forge", cb_raw, NULL, 0, NULL), ==, VFIIPC_OK);
        rcv = own;
        /* Rather than find our own unique name, to every connection. */
        forge_to_all(c, VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "Deliver", DBUS_TYPE_STRING,
                     &from, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                     DBUS_TYPE_UINT32, &flags, DBUS_TYPE_STRING, &rcv, DBUS_TYPE_UINT64, &ticket,
                     DBUS_TYPE_INVALID);
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

/* Sends one signal, as c, to every unique name on the bus but c's own. */
static void forge_to_all(DBusConnection *c, const char *path, const char *iface,
                         const char *member, int first_type, ...)
{
        char **names = unique_names(c, dbus_bus_get_unique_name(c));

        for (int i = 0; names[i]; i++) {
                DBusMessage *m;
                va_list ap;

                m = dbus_message_new_signal(path, iface, member);
                dbus_message_set_destination(m, names[i]);
                va_start(ap, first_type);
                g_assert_true(dbus_message_append_args_valist(m, first_type, ap));
                va_end(ap);
                g_assert_true(dbus_connection_send(c, m, NULL));
                dbus_message_unref(m);
        }
        g_strfreev(names);
        /* The bus has routed them once it answers a later call of c. */
        g_assert_true(dbus_bus_name_has_owner(c, VFIIPC_BROKER_NAME, NULL));
}

static atomic_int forge_errors, forge_observed, forge_delivered;

static void cb_forge_error(void *data, const char *from, const char *to, const char *id,
                           const json_t *param, unsigned flags)
{
        if (strcmp(id, "t.forge2") == 0)
                atomic_fetch_add(&forge_errors, 1);
}

static void cb_forge_observed(void *data, const char *from, const char *to, const char *id,
                              unsigned flags)
{
        if (strcmp(id, "t.forge2") == 0)
                atomic_fetch_add(&forge_observed, 1);
}

static void cb_forge_deliver(void *data, const char *from, const char *to, const char *id,
                             const json_t *param, unsigned flags)
{
        atomic_fetch_add(&forge_delivered, 1);
}

/* protocol.h "Clients accept these only from the current owner of VFIIPC_BROKER_NAME": another
 * client cannot impersonate the broker. A forged UnicastError and Observed are ignored, and so
 * is a forged NameOwnerChanged that names the forger as the new broker (only the bus driver
 * sends those): a Deliver forged after it is still ignored, and the real broker's signals still
 * count. */
static void test_forged_broker_signals_ignored(void)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        const char *from = "evil", *to = "nobody-at-all", *id = "t.forge2", *json = "1";
        const char *bname = VFIIPC_BROKER_NAME, *me, *rcv = "threads-test", *empty = "";
        const char *broker = NULL, *fid = "t.forge3";
        dbus_uint32_t flags = 0;
        dbus_uint64_t ticket = 0;
        DBusMessage *q, *owner;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        me = dbus_bus_get_unique_name(c);
        q = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "GetNameOwner");
        dbus_message_append_args(q, DBUS_TYPE_STRING, &bname, DBUS_TYPE_INVALID);
        owner = dbus_connection_send_with_reply_and_block(c, q, 5000, NULL);
        g_assert_nonnull(owner);
        g_assert_true(
            dbus_message_get_args(owner, NULL, DBUS_TYPE_STRING, &broker, DBUS_TYPE_INVALID));
        atomic_store(&forge_errors, 0);
        atomic_store(&forge_observed, 0);
        atomic_store(&forge_delivered, 0);
        g_assert_cmpint(vfiipc_unicast_error_add(cb_forge_error, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_observer_add(cb_forge_observed, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_register("t.forge3", cb_forge_deliver, NULL, 0, NULL), ==,
                        VFIIPC_OK);

        forge_to_all(c, VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "UnicastError",
                     DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id,
                     DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID);
        forge_to_all(c, VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "Observed", DBUS_TYPE_STRING,
                     &from, DBUS_TYPE_STRING, &empty, DBUS_TYPE_STRING, &id, DBUS_TYPE_UINT32,
                     &flags, DBUS_TYPE_INVALID);
        forge_to_all(c, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS, "NameOwnerChanged", DBUS_TYPE_STRING,
                     &bname, DBUS_TYPE_STRING, &broker, DBUS_TYPE_STRING, &me,
                     DBUS_TYPE_INVALID);
        forge_to_all(c, VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "Deliver", DBUS_TYPE_STRING,
                     &from, DBUS_TYPE_STRING, &rcv, DBUS_TYPE_STRING, &fid, DBUS_TYPE_STRING,
                     &json, DBUS_TYPE_UINT32, &flags, DBUS_TYPE_STRING, &rcv, DBUS_TYPE_UINT64,
                     &ticket, DBUS_TYPE_INVALID);

        /* The real ones, queued after the forged ones: one unicast error and one observation
         * (nobody received it), and one delivery. */
        g_assert_cmpint(vfiipc_notify_text(to, id, "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.forge3", "3", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&forge_errors, 1), ==, 1);
        g_assert_cmpint(wait_atomic(&forge_observed, 1), ==, 1);
        g_assert_cmpint(wait_atomic(&forge_delivered, 1), ==, 1);
        g_usleep(200 * 1000); /* a forged one accepted would show now */
        g_assert_cmpint(atomic_load(&forge_errors), ==, 1);
        g_assert_cmpint(atomic_load(&forge_observed), ==, 1);
        g_assert_cmpint(atomic_load(&forge_delivered), ==, 1);

        g_assert_cmpint(vfiipc_unicast_error_remove(cb_forge_error, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_observer_remove(cb_forge_observed, NULL), ==, VFIIPC_OK);
        vfiipc_unregister("t.forge3", NULL, NULL, NULL);
        dbus_message_unref(owner);
        dbus_message_unref(q);
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* ---- protocol.h "Broadcast fast path", as dbus-monitor sees it ---- */

static atomic_int fan_a, fan_b, forged_fan;

static void cb_fan(void *data, const char *from, const char *to, const char *id,
                   const json_t *param, unsigned flags)
{
        g_assert_cmpstr(to, ==, "*");
        atomic_fetch_add((atomic_int *)data, 1);
}

/* A monitor connection (what dbus-monitor does) that sees Broadcast and Deliver signals and
 * Subscribe calls. */
static DBusConnection *monitor_new(void)
{
        const char *rules[] = {
            "type='signal',member='Broadcast'",
            "type='signal',interface='" VFIIPC_CLIENT_INTERFACE "',member='Deliver'",
            "type='method_call',interface='" VFIIPC_BROKER_INTERFACE "',member='Subscribe'",
        };
        const char **p = rules;
        dbus_uint32_t zero = 0;
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        DBusMessage *m, *reply;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                         DBUS_INTERFACE_MONITORING, "BecomeMonitor");
        g_assert_true(dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &p,
                                               (int)G_N_ELEMENTS(rules), DBUS_TYPE_UINT32, &zero,
                                               DBUS_TYPE_INVALID));
        reply = dbus_connection_send_with_reply_and_block(c, m, 5000, NULL);
        g_assert_nonnull(reply);
        dbus_message_unref(reply);
        dbus_message_unref(m);
        return c;
}

/* How many messages of that member about notification ID id the monitor has seen (for a
 * Subscribe: id is its second argument; *sender: who sent the last one). */
static int monitor_count(DBusConnection *c, const char *member, const char *id, char **sender)
{
        DBusMessage *m;
        int n = 0;

        while (dbus_connection_read_write(c, 100) && (m = dbus_connection_pop_message(c))) {
                const char *a0 = NULL, *a1 = NULL, *a2 = NULL;
                dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a0, DBUS_TYPE_STRING, &a1,
                                      DBUS_TYPE_STRING, &a2, DBUS_TYPE_INVALID);
                if (dbus_message_has_member(m, member) &&
                    g_strcmp0(streq(member, "Subscribe") ? a1 : a2, id) == 0) {
                        n++;
                        if (sender) {
                                g_free(*sender);
                                *sender = g_strdup(dbus_message_get_sender(m));
                        }
                }
                dbus_message_unref(m);
        }
        return n;
}

/* The bus's count of match rules of one connection (dbus-daemon's Debug.Stats). */
static int match_rules_of(const char *name)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        DBusMessage *m, *reply;
        DBusMessageIter it, dict, entry, v;
        dbus_uint32_t n = 0;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                         "org.freedesktop.DBus.Debug.Stats", "GetConnectionStats");
        dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
        reply = dbus_connection_send_with_reply_and_block(c, m, 5000, NULL);
        dbus_message_unref(m);
        g_assert_nonnull(reply);
        dbus_message_iter_init(reply, &it);
        dbus_message_iter_recurse(&it, &dict);
        while (dbus_message_iter_get_arg_type(&dict) == DBUS_TYPE_DICT_ENTRY) {
                const char *key;
                dbus_message_iter_recurse(&dict, &entry);
                dbus_message_iter_get_basic(&entry, &key);
                dbus_message_iter_next(&entry);
                dbus_message_iter_recurse(&entry, &v);
                if (streq(key, "MatchRules"))
                        dbus_message_iter_get_basic(&v, &n);
                dbus_message_iter_next(&dict);
        }
        dbus_message_unref(reply);
        dbus_connection_close(c);
        dbus_connection_unref(c);
        return (int)n;
}

/* DLV-1, DLV-4 by the fast path: two registrations of one ID in this process (both sent as
 * Subscribe), ten "*" notifications: each registration's callback runs exactly ten times; the
 * ID's match rule is added once and, once both registrations are gone, removed again (none
 * leaks over register/unregister cycles). What crosses the bus: the next test. */
static void test_broadcast_by_bus_fan_out(void)
{
        DBusConnection *mon = monitor_new();
        char *me = NULL;
        int rules, subscribes;

        atomic_store(&fan_a, 0);
        atomic_store(&fan_b, 0);
        g_assert_cmpint(vfiipc_register("t.fan", cb_fan, &fan_a, 0, "fan-a"), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_register("t.fan", cb_fan, &fan_b, 0, "fan-b"), ==, VFIIPC_OK);
        for (int i = 0; i < 10; i++)
                g_assert_cmpint(vfiipc_notify_text("*", "t.fan", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&fan_a, 10), ==, 10);
        g_assert_cmpint(wait_atomic(&fan_b, 10), ==, 10);
        g_usleep(200 * 1000); /* a duplicate would show now */
        g_assert_cmpint(atomic_load(&fan_a), ==, 10);
        g_assert_cmpint(atomic_load(&fan_b), ==, 10);

        subscribes = monitor_count(mon, "Subscribe", "t.fan", &me);
        g_assert_cmpint(subscribes, ==, 2);
        g_assert_nonnull(me);
        /* monitor_count() consumed the Subscribes; the signals came after them. */
        dbus_connection_close(mon);
        dbus_connection_unref(mon);

        rules = match_rules_of(me);
        for (int round = 0; round < 20; round++) {
                g_assert_cmpint(vfiipc_unregister("t.fan", NULL, NULL, "fan-a"), ==, VFIIPC_OK);
                g_assert_cmpint(vfiipc_unregister("t.fan", NULL, NULL, "fan-b"), ==, VFIIPC_OK);
                g_assert_cmpint(vfiipc_register("t.fan", cb_fan, &fan_a, 0, "fan-a"), ==,
                                VFIIPC_OK);
                g_assert_cmpint(vfiipc_register("t.fan", cb_fan, &fan_b, 0, "fan-b"), ==,
                                VFIIPC_OK);
        }
        g_assert_cmpint(match_rules_of(me), ==, rules);
        g_assert_cmpint(vfiipc_unregister("t.fan", NULL, NULL, "fan-a"), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_unregister("t.fan", NULL, NULL, "fan-b"), ==, VFIIPC_OK);
        {
                gint64 deadline = g_get_monotonic_time() + DEADLINE_US;
                while (match_rules_of(me) != rules - 1 && g_get_monotonic_time() < deadline)
                        g_usleep(10 * 1000);
        }
        g_assert_cmpint(match_rules_of(me), ==, rules - 1);
        g_free(me);
}

/* LIM: a client holds at most VFIIPC_BROADCAST_MATCHES_MAX broadcast rules; IDs beyond get their
 * broadcasts as Deliver, and all of them still arrive. The rules go with the registrations. */
static atomic_int cap_first, cap_last;

static void test_broadcast_rules_capped(void)
{
        DBusConnection *mon = monitor_new();
        const unsigned n = VFIIPC_BROADCAST_MATCHES_MAX + 4;
        char *me = NULL, id[32];
        int before, during;

        atomic_store(&cap_first, 0);
        atomic_store(&cap_last, 0);
        g_assert_cmpint(vfiipc_register("t.cap.0", cb_fan, &cap_first, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(monitor_count(mon, "Subscribe", "t.cap.0", &me), ==, 1);
        dbus_connection_close(mon);
        dbus_connection_unref(mon);
        before = match_rules_of(me) - 1;
        for (unsigned i = 1; i < n; i++) {
                snprintf(id, sizeof(id), "t.cap.%u", i);
                g_assert_cmpint(vfiipc_register(id, cb_fan, i == n - 1 ? &cap_last : &cap_first,
                                                0, NULL),
                                ==, VFIIPC_OK);
        }
        during = match_rules_of(me);
        /* Other tests' registrations hold rules too: at most the cap, and these took the rest. */
        g_assert_cmpint(during, >, before);
        g_assert_cmpint(during - before, <=, (int)VFIIPC_BROADCAST_MATCHES_MAX);
        snprintf(id, sizeof(id), "t.cap.%u", n - 1);
        g_assert_cmpint(vfiipc_notify_text("*", "t.cap.0", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", id, "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&cap_first, 1), ==, 1);
        g_assert_cmpint(wait_atomic(&cap_last, 1), ==, 1);
        for (unsigned i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "t.cap.%u", i);
                g_assert_cmpint(vfiipc_unregister(id, NULL, NULL, NULL), ==, VFIIPC_OK);
        }
        {
                gint64 deadline = g_get_monotonic_time() + DEADLINE_US;
                while (match_rules_of(me) != before && g_get_monotonic_time() < deadline)
                        g_usleep(10 * 1000);
        }
        g_assert_cmpint(match_rules_of(me), ==, before);
        g_free(me);
}

/* The counts on the bus, separately: ten Broadcasts, no Deliver, and the Broadcasts come from
 * this process itself (protocol.h "Broadcasts by the bus"), not from the broker. */
static void test_broadcast_no_deliver_on_the_bus(void)
{
        DBusConnection *mon, *w = dbus_connection_open_private(server.address, NULL);
        GPtrArray *own;
        int n = 0, d = 0, mine = 0;

        atomic_store(&fan_a, 0);
        g_assert_cmpint(vfiipc_register("t.fan2", cb_fan, &fan_a, 0, "fan-a"), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_register("t.fan2", cb_fan, &fan_a, 0, "fan-b"), ==, VFIIPC_OK);
        g_assert_nonnull(w);
        g_assert_true(dbus_bus_register(w, NULL));
        own = own_bus_names(w, dbus_bus_get_unique_name(w)); /* the library's connection */
        mon = monitor_new();
        for (int i = 0; i < 10; i++)
                g_assert_cmpint(vfiipc_notify_text("*", "t.fan2", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&fan_a, 20), ==, 20);
        for (int round = 0; round < 5; round++) {
                DBusMessage *m;
                while (dbus_connection_read_write(mon, 100) &&
                       (m = dbus_connection_pop_message(mon))) {
                        const char *a0, *a1, *a2;
                        if (dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a0, DBUS_TYPE_STRING,
                                                  &a1, DBUS_TYPE_STRING, &a2, DBUS_TYPE_INVALID) &&
                            streq(a2, "t.fan2")) {
                                n += dbus_message_has_member(m, "Broadcast");
                                d += dbus_message_has_member(m, "Deliver");
                                for (guint i = 0; i < own->len; i++)
                                        mine += dbus_message_has_member(m, "Broadcast") &&
                                                streq(dbus_message_get_sender(m),
                                                      g_ptr_array_index(own, i));
                        }
                        dbus_message_unref(m);
                }
        }
        g_assert_cmpint(n, ==, 10);
        g_assert_cmpint(mine, ==, 10);
        g_assert_cmpint(d, ==, 0);
        g_assert_cmpint(atomic_load(&fan_a), ==, 20);
        vfiipc_unregister("t.fan2", NULL, NULL, "fan-a");
        vfiipc_unregister("t.fan2", NULL, NULL, "fan-b");
        g_ptr_array_unref(own);
        dbus_connection_close(mon);
        dbus_connection_unref(mon);
        dbus_connection_close(w);
        dbus_connection_unref(w);
}

/* ORD-3 across the switch between the broker's path and the bus: a raw receiver subscribed as
 * the library subscribes gets one sender's unicasts (Deliver, through the broker) and
 * broadcasts (Broadcast, from the sender) in the order they were sent, whatever the mix: a
 * broadcast after a unicast waits for the broker (Sync) instead of overtaking it. */
static void test_order_across_broadcasts_by_the_bus(void)
{
        DBusConnection *r = dbus_connection_open_private(server.address, NULL);
        const char *to = "ord-rx", *id = "t.ord";
        char iface[WIRE_BROADCAST_INTERFACE_SIZE], *rule, json[16];
        dbus_int32_t prio = 0;
        DBusMessage *m, *reply;
        const int total = 600;
        int next = 0;
        gint64 deadline;

        g_assert_nonnull(r);
        g_assert_true(dbus_bus_register(r, NULL));
        wire_broadcast_interface(iface, id);
        rule = g_strdup_printf("type='signal',path='%s',interface='%s',member='Broadcast'",
                               VFIIPC_BROADCAST_PATH, iface);
        dbus_bus_add_match(r, rule, NULL);
        g_free(rule);
        m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                         VFIIPC_BROKER_INTERFACE, "Subscribe");
        dbus_message_append_args(m, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id, DBUS_TYPE_INT32,
                                 &prio, DBUS_TYPE_INVALID);
        reply = dbus_connection_send_with_reply_and_block(r, m, 5000, NULL);
        g_assert_nonnull(reply);
        dbus_message_unref(reply);
        dbus_message_unref(m);

        /* Runs of broadcasts of varying length between single unicasts. */
        for (int i = 0; i < total; i++) {
                snprintf(json, sizeof(json), "%d", i);
                g_assert_cmpint(vfiipc_notify_text(i % 7 == 0 || i % 11 == 3 ? to : "*", id,
                                                   json, 0, "ord"),
                                ==, VFIIPC_OK);
        }
        deadline = g_get_monotonic_time() + DEADLINE_US;
        while (next < total && g_get_monotonic_time() < deadline) {
                const char *from, *t, *i, *j;

                dbus_connection_read_write(r, 100);
                while (next < total && (m = dbus_connection_pop_message(r))) {
                        if ((dbus_message_has_member(m, "Deliver") ||
                             dbus_message_has_member(m, "Broadcast")) &&
                            dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from,
                                                  DBUS_TYPE_STRING, &t, DBUS_TYPE_STRING, &i,
                                                  DBUS_TYPE_STRING, &j, DBUS_TYPE_INVALID) &&
                            streq(i, id)) {
                                snprintf(json, sizeof(json), "%d", next);
                                g_assert_cmpstr(j, ==, json);
                                next++;
                        }
                        dbus_message_unref(m);
                }
        }
        g_assert_cmpint(next, ==, total);
        dbus_connection_close(r);
        dbus_connection_unref(r);
}

/* A Broadcast that the broker would not see or accept reaches no callback. */
static void test_forged_broadcast_ignored(void)
{
        DBusConnection *c = dbus_connection_open_private(server.address, NULL);
        const char *from = "evil", *star = "*", *named = "x", *id = "t.fan3", *json = "1";
        dbus_uint32_t flags = 0;
        char iface[WIRE_BROADCAST_INTERFACE_SIZE], other[WIRE_BROADCAST_INTERFACE_SIZE];
        DBusMessage *m;

        g_assert_nonnull(c);
        g_assert_true(dbus_bus_register(c, NULL));
        atomic_store(&forged_fan, 0);
        g_assert_cmpint(vfiipc_register(id, cb_fan, &forged_fan, 0, NULL), ==, VFIIPC_OK);
        wire_broadcast_interface(iface, id);
        wire_broadcast_interface(other, "t.other");
        /* protocol.h "Broadcasts by the bus": what the broker would not see or accept is
         * ignored: a `to` other than "*", another ID's interface, and one addressed to a
         * single connection. */
        for (int i = 0; i < 2; i++) {
                m = dbus_message_new_signal(VFIIPC_BROADCAST_PATH, i ? other : iface, "Broadcast");
                dbus_message_append_args(m, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING,
                                         i ? &star : &named, DBUS_TYPE_STRING, &id,
                                         DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32, &flags,
                                         DBUS_TYPE_INVALID);
                dbus_connection_send(c, m, NULL);
                dbus_message_unref(m);
        }
        forge_to_all(c, VFIIPC_BROADCAST_PATH, iface, "Broadcast", DBUS_TYPE_STRING, &from,
                     DBUS_TYPE_STRING, &star, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                     DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID);
        g_assert_cmpint(vfiipc_notify_text("*", id, "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&forged_fan, 1), ==, 1);
        g_usleep(200 * 1000);
        g_assert_cmpint(atomic_load(&forged_fan), ==, 1);
        vfiipc_unregister(id, NULL, NULL, NULL);
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* CBT-2 with the worker threads of lib/client/workers.h: a callback that blocks does not hold
 * up the next one for more than a moment (the next starts on another thread). */
static atomic_int block_release, blocked_started, after_block;
static gint64 after_block_at;

static void cb_block_then_count(void *data, const char *from, const char *to, const char *id,
                                const json_t *param, unsigned flags)
{
        if (atomic_fetch_add(&blocked_started, 1) == 0) {
                while (!atomic_load(&block_release))
                        g_usleep(1000);
                return;
        }
        after_block_at = g_get_monotonic_time();
        atomic_fetch_add(&after_block, 1);
}

static void test_blocking_callback_does_not_hold_up_next(void)
{
        gint64 sent;

        atomic_store(&block_release, 0);
        atomic_store(&blocked_started, 0);
        atomic_store(&after_block, 0);
        g_assert_cmpint(vfiipc_register("t.block", cb_block_then_count, NULL, 0, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(vfiipc_notify_text("*", "t.block", "1", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&blocked_started, 1), ==, 1);
        sent = g_get_monotonic_time();
        for (int i = 0; i < 5; i++)
                g_assert_cmpint(vfiipc_notify_text("*", "t.block", "2", 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_atomic(&after_block, 5), ==, 5);
        g_assert_cmpint(atomic_load(&block_release), ==, 0); /* still blocked meanwhile */
        /* Bounded by WORKERS_STALL_MS plus a thread start; generous for a loaded machine. */
        g_assert_cmpint(after_block_at - sent, <, 2 * G_USEC_PER_SEC);
        atomic_store(&block_release, 1);
        vfiipc_unregister("t.block", NULL, NULL, NULL);
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

/* ---- G-68: the server killed (SIGKILL) during a stream, 20 times over ---- */

#define KILL_ROUNDS 20
/* The clients retry with a back-off of 50 ms doubling to 1 s (lib/client/client.c), so each
 * is back within 1 s of the server's return plus the reconnection itself (connect, register
 * again): the 2 s leave about a second for that on a loaded machine. */
#define BACK_WITHIN_US (2000 * (gint64)1000)
#define CALL_PROMPT_US (2 * G_USEC_PER_SEC) /* "does not hang": far above a normal call */

static atomic_int stream_stop, stream_seq, stream_ok, stream_err, stream_odd, stream_high;
static atomic_int back_round;
static _Atomic gint64 stream_slowest_us;

static void atomic_max(atomic_int *v, int n)
{
        int old = atomic_load(v);

        while (old < n && !atomic_compare_exchange_weak(v, &old, n))
                ;
}

static void cb_stream(void *data, const char *from, const char *to, const char *id,
                      const json_t *param, unsigned flags)
{
        atomic_max(&stream_high, (int)json_integer_value(json_object_get(param, "n")));
}

static void cb_back(void *data, const char *from, const char *to, const char *id,
                    const json_t *param, unsigned flags)
{
        atomic_max(&back_round, (int)json_integer_value(param));
}

static void stream_count(int r, gint64 t0)
{
        gint64 d = g_get_monotonic_time() - t0, old = atomic_load(&stream_slowest_us);

        if (r == VFIIPC_OK)
                atomic_fetch_add(&stream_ok, 1);
        else if (r == VFIIPC_ERR_SERVER)
                atomic_fetch_add(&stream_err, 1);
        else
                atomic_fetch_add(&stream_odd, 1);
        while (old < d && !atomic_compare_exchange_weak(&stream_slowest_us, &old, d))
                ;
}

/* Numbered unicasts to our own registration, and 16 KiB broadcasts nobody receives. */
static gpointer stream_sender(gpointer unused)
{
        char *blob = g_malloc(16 * 1024 + 3);

        memset(blob, 'y', 16 * 1024 + 2);
        blob[0] = blob[16 * 1024 + 1] = '"';
        blob[16 * 1024 + 2] = '\0';
        while (!atomic_load(&stream_stop)) {
                int n = atomic_fetch_add(&stream_seq, 1) + 1;
                char json[32];
                gint64 t0 = g_get_monotonic_time();

                snprintf(json, sizeof(json), "{\"n\":%d}", n);
                stream_count(vfiipc_notify_text("threads-test", "t.stream", json, 0, NULL), t0);
                t0 = g_get_monotonic_time();
                stream_count(vfiipc_notify_text("*", "t.killflood", blob, 0, NULL), t0);
                g_usleep(500);
        }
        g_free(blob);
        return NULL;
}

/* A call while no server runs: VFIIPC_ERR_SERVER, promptly. */
#define ASSERT_REFUSED_PROMPTLY(call)                                                              \
        do {                                                                                       \
                gint64 t0_ = g_get_monotonic_time();                                               \
                g_assert_cmpint((call), ==, VFIIPC_ERR_SERVER);                                    \
                g_assert_cmpint(g_get_monotonic_time() - t0_, <, CALL_PROMPT_US);                  \
        } while (0)

/* While the server is gone (for at least outage_ms, so that the clients' back-off grows), the
 * in-process client and the peer process refuse every call. */
static void assert_server_gone(peer_t *peer, int outage_ms)
{
        gint64 t0 = g_get_monotonic_time(), deadline = t0 + 5 * G_USEC_PER_SEC;
        json_t *v = json_pack("{s:i}", "n", 0);

        /* The dispatcher notices the bus going at once, but asynchronously. */
        while (vfiipc_notify_text("*", "t.none", "0", 0, NULL) != VFIIPC_ERR_SERVER)
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        while (peer_cmd(peer, "notify", "threads-test", "t.back", "0", "", "0", NULL) !=
               VFIIPC_ERR_SERVER)
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        for (int i = 0; i < 10 || g_get_monotonic_time() - t0 < outage_ms * (gint64)1000; i++) {
                ASSERT_REFUSED_PROMPTLY(vfiipc_notify_text("*", "t.none", "0", 0, NULL));
                ASSERT_REFUSED_PROMPTLY(vfiipc_notify("kill-peer", "t.peer", v, 0, NULL));
                ASSERT_REFUSED_PROMPTLY(vfiipc_register("t.during", cb_back, NULL, 0, NULL));
                ASSERT_REFUSED_PROMPTLY(
                    peer_cmd(peer, "notify", "threads-test", "t.back", "0", "", "0", NULL));
                g_usleep(10 * 1000); /* pacing only: the calls must not depend on it */
        }
        json_decref(v);
}

/* After the restart: how long until the in-process client (as sender and receiver) and the
 * peer process (as sender and receiver) all work again, with their registrations. */
static gint64 wait_all_back(peer_t *peer, int round, gint64 t0)
{
        gint64 deadline = t0 + 15 * G_USEC_PER_SEC, t_self = 0, t_peer_rx = 0, t_peer_tx = 0;
        int seq0 = atomic_load(&stream_seq);
        char param[32], *want = NULL;

        snprintf(param, sizeof(param), "{\"round\":%d}", round);
        want = g_strdup_printf("deliver\t-\tthreads-test\tkill-peer\tt.peer\t%s\t0", param);
        while (!(t_self && t_peer_rx && t_peer_tx)) {
                char r[16], *line;

                if (g_get_monotonic_time() > deadline)
                        g_error("round %d: not back after 15 s (self %d, peer receives %d, peer "
                                "sends %d)",
                                round, t_self > 0, t_peer_rx > 0, t_peer_tx > 0);
                /* Numbers above seq0 were sent after the restart, so on a new connection. */
                if (!t_self && atomic_load(&stream_high) > seq0)
                        t_self = g_get_monotonic_time();
                if (!t_peer_rx) {
                        /* A unicast error (ignored here) until the peer has registered again. */
                        vfiipc_notify_text("kill-peer", "t.peer", param, 0, NULL);
                        line = peer_wait(peer, want, 10);
                        if (line)
                                t_peer_rx = g_get_monotonic_time();
                        g_free(line);
                }
                if (!t_peer_tx) {
                        snprintf(r, sizeof(r), "%d", round);
                        peer_cmd(peer, "notify", "threads-test", "t.back", r, "", "0", NULL);
                        if (atomic_load(&back_round) >= round)
                                t_peer_tx = g_get_monotonic_time();
                }
                g_usleep(5 * 1000);
        }
        g_free(want);
        return MAX(t_self, MAX(t_peer_rx, t_peer_tx)) - t0;
}

/* G-68, design.md "Client library internals": kill -9 of the server while a thread streams
 * notifications (numbered unicasts to this process, 16 KiB broadcasts) and a peer process is
 * registered: while it is gone, every call of both clients returns VFIIPC_ERR_SERVER promptly
 * (no hang, no crash); after a restart at the same address both are back, registrations
 * restored, within BACK_WITHIN_US. 20 rounds, all must pass. */
static void test_server_killed_during_stream_20_times(void)
{
        /* Outages that end just after a retry in each phase of the back-off (retries 50, 150,
         * 350, 750, 1550, 3150, 5150 ms after the loss), the worst case of each phase. */
        static const int outage_ms[] = {0, 400, 800, 1600, 3200};
        peer_t *peer = peer_new("kill-peer");
        gint64 worst = 0, sum = 0, deadline;
        GThread *th;

        atomic_store(&stream_stop, 0);
        g_assert_cmpint(vfiipc_register("t.stream", cb_stream, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_register("t.back", cb_back, NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(peer_cmd(peer, "register", "t.peer", "0", "", NULL), ==, VFIIPC_OK);
        th = g_thread_new("stream", stream_sender, NULL);
        deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (atomic_load(&stream_high) == 0)
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);

        for (int round = 1; round <= KILL_ROUNDS; round++) {
                gint64 t0, back;

                server_fixture_kill(&server);
                assert_server_gone(peer, outage_ms[round % G_N_ELEMENTS(outage_ms)]);
                server_fixture_restart(&server);
                t0 = g_get_monotonic_time();
                back = wait_all_back(peer, round, t0);
                g_test_message("round %d: all back %.0f ms after the restart", round, back / 1e3);
                worst = MAX(worst, back);
                sum += back;
                g_assert_cmpint(back, <=, BACK_WITHIN_US);
        }
        atomic_store(&stream_stop, 1);
        g_thread_join(th);
        g_test_message("back within %.0f ms at most, %.0f ms on average; stream: %d OK, %d "
                       "refused, slowest call %.1f ms",
                       worst / 1e3, sum / 1e3 / KILL_ROUNDS, atomic_load(&stream_ok),
                       atomic_load(&stream_err), atomic_load(&stream_slowest_us) / 1e3);
        g_assert_cmpint(atomic_load(&stream_odd), ==, 0);
        g_assert_cmpint(atomic_load(&stream_err), >, 0); /* it did run into the outages */
        g_assert_cmpint(atomic_load(&stream_slowest_us), <, CALL_PROMPT_US);
        vfiipc_unregister("t.stream", NULL, NULL, NULL);
        vfiipc_unregister("t.back", NULL, NULL, NULL);
        peer_free(peer);
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
        g_test_add_func("/threads/param-limit-exact-accepted-one-more-refused",
                        test_param_limit_exact_accepted_one_more_refused);
        g_test_add_func("/threads/invalid-json-text-refused", test_invalid_json_text_refused);
        g_test_add_func("/threads/raw-client-invalid-json-not-delivered",
                        test_raw_client_invalid_json_not_delivered);
        g_test_add_func("/threads/forged-delivery-ignored", test_forged_delivery_ignored);
        g_test_add_func("/threads/forged-broker-signals-ignored",
                        test_forged_broker_signals_ignored);
        g_test_add_func("/threads/observer-list-semantics", test_observer_list_semantics);
        g_test_add_func("/threads/server-restart-reregisters", test_server_restart_reregisters);
        g_test_add_func("/threads/broadcast-by-bus-fan-out", test_broadcast_by_bus_fan_out);
        g_test_add_func("/threads/broadcast-no-deliver-on-the-bus",
                        test_broadcast_no_deliver_on_the_bus);
        g_test_add_func("/threads/forged-broadcast-ignored", test_forged_broadcast_ignored);
        g_test_add_func("/threads/order-across-broadcasts-by-the-bus",
                        test_order_across_broadcasts_by_the_bus);
        g_test_add_func("/threads/broadcast-rules-capped", test_broadcast_rules_capped);
        g_test_add_func("/threads/blocking-callback-does-not-hold-up-next",
                        test_blocking_callback_does_not_hold_up_next);
        g_test_add_func("/threads/server-killed-during-stream-20-times",
                        test_server_killed_during_stream_20_times);
        g_test_add_func("/threads/forked-child-starts-afresh", test_forked_child_starts_afresh);
        r = g_test_run();
        server_fixture_stop(&server);
        return r;
}
