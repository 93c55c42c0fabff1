/* tests/test-broker.c — the broker: registry and ticket data structures directly, then the
 * D-Bus object through raw libdbus clients against a private server per test
 * (notification-service.md §3–4, gaps G-60…G-75, G-89, G-92, lib/bus/protocol.h).
 *
 * Waiting without sleeping: a client's Ping to the broker returns after the broker handled
 * everything that client sent before, and a receiver's Ping returns after every signal the
 * broker sent it before. settle() pings every client twice (first round: all submissions
 * handled; second round: all resulting signals queued), so tests can assert exact counts,
 * including "nothing arrived". */
#include <arpa/inet.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dbus/dbus.h>
#include <glib.h>

#include "broker/pending.h"
#include "broker/registry.h"
#include "bus/wire.h"
#include "bus/protocol.h"
#include "server-fixture.h"

#define S DBUS_TYPE_STRING
#define U DBUS_TYPE_UINT32
#define T DBUS_TYPE_UINT64
#define END DBUS_TYPE_INVALID
#define CALL_TIMEOUT_MS 60000 /* generous: the limit test queues 65536 calls first */

/* ---- registry, directly ------------------------------------------------------------------- */

static registry_t *registry_make(size_t max)
{
        registry_t *r = NULL;

        g_assert_cmpint(registry_new(max, &r), ==, 0);
        return r;
}

static void registry_put(registry_t *r, const char *owner, const char *to, const char *id,
                         int priority)
{
        g_assert_cmpint(registry_add(r, owner, to, id, priority, false, NULL), >=, 0);
}

static const char *pick_owner(registry_t *r, const char *id, const char *to)
{
        const registration_t *g = registry_pick(r, id, to, NULL, 0, NULL, NULL);

        return g ? g->owner : NULL;
}

/* DLV-2: "1" and named unicasts go to the highest priority among their candidates. */
static void test_registry_pick_highest_priority(void)
{
        registry_t *r = registry_make(0);

        /* §4.6: a = P1 shell 0, b = P2 shell 10, c = P3 pay 5 */
        registry_put(r, "P1", "shell", "status", 0);
        registry_put(r, "P2", "shell", "status", 10);
        registry_put(r, "P3", "pay", "status", 5);
        g_assert_cmpstr(pick_owner(r, "status", "1"), ==, "P2");
        g_assert_cmpstr(pick_owner(r, "status", "shell"), ==, "P2");
        g_assert_cmpstr(pick_owner(r, "status", "pay"), ==, "P3");
        g_assert_null(pick_owner(r, "status", "kiosk"));
        g_assert_null(pick_owner(r, "other", "1"));
        g_assert_null(pick_owner(r, "status", "*")); /* "*" is never a receiver (ADR-5) */

        /* §4.6 epilogue, REGS-1: P2 re-registers with -1, "1" now goes to c. */
        g_assert_cmpint(registry_add(r, "P2", "shell", "status", -1, false, NULL), ==, 1);
        g_assert_cmpstr(pick_owner(r, "status", "1"), ==, "P3");
        g_assert_cmpstr(pick_owner(r, "status", "shell"), ==, "P1");
        g_assert_cmpuint(registry_count(r), ==, 3);
        registry_free(r);
}

/* DLV-3, G-72: equal priorities → the most recently created or replaced registration. */
static void test_registry_tie_goes_to_newest(void)
{
        registry_t *r = registry_make(0);

        registry_put(r, "A", "x", "id", 5);
        registry_put(r, "B", "x", "id", 5);
        g_assert_cmpstr(pick_owner(r, "id", "x"), ==, "B");
        g_assert_cmpstr(pick_owner(r, "id", "1"), ==, "B");
        registry_put(r, "A", "x", "id", 5); /* replaced: newest again */
        g_assert_cmpstr(pick_owner(r, "id", "x"), ==, "A");
        g_assert_cmpstr(pick_owner(r, "id", "1"), ==, "A");
        registry_put(r, "C", "y", "id", 5);
        g_assert_cmpstr(pick_owner(r, "id", "1"), ==, "C");
        g_assert_cmpstr(pick_owner(r, "id", "x"), ==, "A");
        registry_free(r);
}

/* REGS-1, G-61: the overwrite rule is scoped to one registrant. */
static void test_registry_overwrite_scoped_per_owner(void)
{
        registry_t *r = registry_make(0);
        const registration_t *g1 = NULL, *g2 = NULL;

        g_assert_cmpint(registry_add(r, "A", "x", "id", 1, false, &g1), ==, 0);
        g_assert_cmpint(registry_add(r, "A", "x", "id", 7, false, &g2), ==, 1);
        g_assert_true(g1 == g2);
        g_assert_cmpint(g2->priority, ==, 7);
        g_assert_cmpuint(registry_count_id(r, "id"), ==, 1);
        g_assert_cmpint(registry_add(r, "B", "x", "id", 3, false, NULL), ==, 0);
        g_assert_cmpuint(registry_count_id(r, "id"), ==, 2);
        g_assert_cmpuint(registry_count_owner(r, "A"), ==, 1);
        g_assert_cmpuint(registry_count_owner(r, "B"), ==, 1);
        /* Same owner, other receiver or other ID: separate registrations. */
        registry_put(r, "A", "y", "id", 0);
        registry_put(r, "A", "x", "id2", 0);
        g_assert_cmpuint(registry_count_owner(r, "A"), ==, 3);
        g_assert_cmpuint(registry_count(r), ==, 4);
        registry_free(r);
}

/* DLV-1, DLV-4: a broadcast walks every registration of the ID, and only those. */
static void test_registry_broadcast_walks_one_id(void)
{
        registry_t *r = registry_make(0);
        const registration_t *g;
        GString *seen = g_string_new(NULL);

        registry_put(r, "P1", "shell", "status", 0);
        registry_put(r, "P2", "shell", "status", 10);
        registry_put(r, "P3", "pay", "status", 5);
        registry_put(r, "P3", "pay", "other", 50);
        registry_put(r, "P1", "pos", "status", 5); /* one owner, two receivers */
        for (g = registry_first(r, "status"); g; g = registry_next(g))
                g_string_append_printf(seen, "%s/%s/%d ", g->owner, g->receiver, g->priority);
        /* Priority order, newest first among equals. */
        g_assert_cmpstr(seen->str, ==, "P2/shell/10 P1/pos/5 P3/pay/5 P1/shell/0 ");
        g_assert_null(registry_first(r, "nothing"));
        g_string_free(seen, TRUE);
        registry_free(r);
}

/* REGS-2, REGS-3: unregistering and a connection's end remove registrations. */
static void test_registry_remove_and_remove_owner(void)
{
        registry_t *r = registry_make(0);

        registry_put(r, "A", "x", "id", 1);
        registry_put(r, "A", "y", "id", 2);
        registry_put(r, "A", "x", "id2", 3);
        registry_put(r, "B", "x", "id", 0);
        g_assert_cmpint(registry_remove(r, "A", "y", "id"), ==, 1);
        g_assert_cmpint(registry_remove(r, "A", "y", "id"), ==, 0);
        g_assert_cmpint(registry_remove(r, "C", "x", "id"), ==, 0);
        g_assert_cmpstr(pick_owner(r, "id", "1"), ==, "A");
        g_assert_cmpuint(registry_remove_owner(r, "A"), ==, 2);
        g_assert_cmpuint(registry_remove_owner(r, "A"), ==, 0);
        g_assert_cmpstr(pick_owner(r, "id", "1"), ==, "B");
        g_assert_null(pick_owner(r, "id2", "1"));
        g_assert_null(registry_first(r, "id2"));
        g_assert_cmpuint(registry_count(r), ==, 1);
        g_assert_cmpuint(registry_count_owner(r, "A"), ==, 0);
        /* Everything can come back after it was gone. */
        registry_put(r, "A", "x", "id2", 3);
        g_assert_cmpstr(pick_owner(r, "id2", "x"), ==, "A");
        registry_free(r);
}

/* DLV-13: a bounce picks the best registration that was not tried yet. */
static void test_registry_pick_skips_tried(void)
{
        registry_t *r = registry_make(0);
        const registration_t *a = NULL, *b = NULL, *c = NULL;
        uint64_t tried[2];

        g_assert_cmpint(registry_add(r, "A", "x", "id", 10, false, &a), ==, 0);
        g_assert_cmpint(registry_add(r, "B", "x", "id", 5, false, &b), ==, 0);
        g_assert_cmpint(registry_add(r, "C", "y", "id", 7, false, &c), ==, 0);
        tried[0] = a->seq;
        g_assert_true(registry_pick(r, "id", "x", tried, 1, NULL, NULL) == b);
        g_assert_true(registry_pick(r, "id", "1", tried, 1, NULL, NULL) == c);
        tried[1] = c->seq;
        g_assert_true(registry_pick(r, "id", "1", tried, 2, NULL, NULL) == b);
        tried[1] = b->seq;
        g_assert_null(registry_pick(r, "id", "x", tried, 2, NULL, NULL));
        registry_free(r);
}

/* A connection holds at most VFIIPC_REGISTRATIONS_PER_PEER_MAX; replacing at the limit is fine
 * (like G-87). */
static void test_registry_limit_per_owner(void)
{
        registry_t *r = registry_make(3);

        registry_put(r, "A", "x", "1d", 0);
        registry_put(r, "A", "x", "2d", 0);
        registry_put(r, "A", "x", "3d", 0);
        g_assert_cmpint(registry_add(r, "A", "x", "4d", 0, false, NULL), ==, -ENOSPC);
        g_assert_cmpint(registry_add(r, "A", "x", "3d", 9, false, NULL), ==, 1);
        g_assert_cmpint(registry_add(r, "B", "x", "4d", 0, false, NULL), ==, 0);
        g_assert_cmpint(registry_remove(r, "A", "x", "1d"), ==, 1);
        g_assert_cmpint(registry_add(r, "A", "x", "4d", 0, false, NULL), ==, 0);
        g_assert_cmpuint(registry_count(r), ==, 4);
        registry_free(r);
}

/* Routing cost must not depend on other IDs' registrations: many IDs, each lookup direct. */
static void test_registry_many_ids(void)
{
        registry_t *r = registry_make(0);
        char id[32], owner[32];

        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof(id), "id%d", i % 5000);
                snprintf(owner, sizeof(owner), ":1.%d", i % 7);
                registry_put(r, owner, "rcv", id, i);
        }
        g_assert_cmpuint(registry_count_id(r, "id42"), ==, 4);
        g_assert_cmpint(registry_pick(r, "id42", "1", NULL, 0, NULL, NULL)->priority, ==, 15042);
        for (int i = 0; i < 7; i++) {
                snprintf(owner, sizeof(owner), ":1.%d", i);
                registry_remove_owner(r, owner);
        }
        g_assert_cmpuint(registry_count(r), ==, 0);
        registry_free(r);
}

/* ---- pending tickets, directly ------------------------------------------------------------ */

static int n_released;

static void count_release(void *p)
{
        g_assert_nonnull(p);
        n_released++;
}

/* G-89: tickets are found while pending, taken once, and the oldest go first when full. */
static void test_pending_ring_find_take_evict(void)
{
        pending_ring_t q;
        pending_t e;
        uint64_t tried[3] = {7, 8, 9};
        int token;

        n_released = 0;
        pending_ring_init(&q, 16, count_release);
        for (uint64_t t = 1; t <= 40; t++)
                g_assert_cmpint(pending_ring_push(&q, t * 3, t, &token, tried, t % 3 + 1), ==, 0);
        g_assert_cmpuint(pending_ring_count(&q), ==, 16);
        g_assert_cmpint(n_released, ==, 24);
        g_assert_null(pending_ring_find(&q, 3));          /* evicted */
        g_assert_null(pending_ring_find(&q, 24 * 3));     /* evicted: the 24th */
        g_assert_null(pending_ring_find(&q, 25 * 3 + 1)); /* never handed out */
        g_assert_nonnull(pending_ring_find(&q, 25 * 3));
        g_assert_nonnull(pending_ring_find(&q, 40 * 3));

        pending_ring_take(&q, pending_ring_find(&q, 30 * 3), &e);
        g_assert_cmpuint(e.fingerprint, ==, 30);
        g_assert_cmpuint(e.n_tried, ==, 1);
        g_assert_cmpuint(pending_tried(&e)[0], ==, 7);
        g_assert_true(e.submitter == &token);
        g_assert_null(pending_ring_find(&q, 30 * 3)); /* taken once */
        g_assert_cmpuint(pending_ring_count(&q), ==, 15);

        pending_ring_take(&q, pending_ring_find(&q, 31 * 3), &e);
        g_assert_cmpuint(e.n_tried, ==, 2);
        g_assert_cmpuint(pending_tried(&e)[1], ==, 8);
        g_free(e.tried_many);

        /* The ends free their slots; new tickets are still found. */
        pending_ring_take(&q, pending_ring_find(&q, 25 * 3), &e);
        g_assert_cmpuint(e.n_tried, ==, 2);
        g_free(e.tried_many);
        pending_ring_take(&q, pending_ring_find(&q, 40 * 3), &e);
        g_assert_cmpuint(e.n_tried, ==, 2);
        g_free(e.tried_many);
        g_assert_cmpint(pending_ring_push(&q, 41 * 3, 41, &token, tried, 3), ==, 0);
        g_assert_nonnull(pending_ring_find(&q, 41 * 3));
        g_assert_nonnull(pending_ring_find(&q, 26 * 3));
        g_assert_cmpuint(pending_ring_count(&q), ==, 13);

        /* References taken out by take() are the caller's: 4 takes, 4 not released here. */
        pending_ring_clear(&q);
        g_assert_cmpint(n_released, ==, 24 + 13);
        g_assert_cmpuint(pending_ring_count(&q), ==, 0);
        g_assert_null(pending_ring_find(&q, 41 * 3));
        pending_ring_clear(&q);
}

/* A bounce must carry what was delivered: the fingerprint tells from, to, id, flags apart. */
static void test_pending_fingerprint_distinguishes_fields(void)
{
        uint64_t f = pending_fingerprint("a", "b", "c", 1);

        g_assert_cmpuint(f, ==, pending_fingerprint("a", "b", "c", 1));
        g_assert_cmpuint(f, !=, pending_fingerprint("a", "b", "c", 2));
        g_assert_cmpuint(f, !=, pending_fingerprint("ab", "", "c", 1));
        g_assert_cmpuint(f, !=, pending_fingerprint("a", "bc", "", 1));
        g_assert_cmpuint(f, !=, pending_fingerprint("a", "b", "d", 1));
}

/* ---- hand-marshalled signals, directly ---------------------------------------------------- */

static GBytes *marshal(DBusMessage *m)
{
        char *buf;
        int len;
        GBytes *b;

        g_assert_nonnull(m);
        g_assert_true(dbus_message_marshal(m, &buf, &len));
        b = g_bytes_new(buf, len);
        dbus_free(buf);
        return b;
}

static DBusMessage *api_signal(const char *dest, const char *member, dbus_uint32_t serial,
                               int first_type, ...)
{
        DBusMessage *m =
            dbus_message_new_signal(VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, member);
        va_list ap;

        g_assert_true(dbus_message_set_destination(m, dest));
        va_start(ap, first_type);
        g_assert_true(dbus_message_append_args_valist(m, first_type, ap));
        va_end(ap);
        dbus_message_set_serial(m, serial);
        return m;
}

static void assert_same_bytes(DBusMessage *ours, DBusMessage *theirs)
{
        GBytes *a = marshal(ours), *b = marshal(theirs);

        g_assert_true(g_bytes_equal(a, b));
        g_bytes_unref(a);
        g_bytes_unref(b);
        dbus_message_unref(ours);
        dbus_message_unref(theirs);
}

/* The three signals of protocol.h come out byte for byte as libdbus would build them, for
 * every alignment of the variable-length strings. */
static void test_wire_matches_libdbus_bytes(void)
{
        wire_t w;
        const char *dest = ":1.42", *rcv = "receiver \u00e9 \xc3\xa9";

        wire_init(&w);
        g_assert_cmpuint(w.serial, ==, WIRE_SERIAL_FIRST);
        for (int k = 0; k < 9; k++) {
                char *from = g_strnfill(k + 1, 'f'), *to = g_strnfill(k, 't');
                char *json = g_strdup_printf("{\"k\":\"%s\"}", to);
                const char *cf = from, *ct = to, *cj = json, *id = k % 2 ? "id" : "";
                dbus_uint32_t flags = 0xfffffff0u + k, serial = w.serial;
                dbus_uint64_t ticket = k ? G_MAXUINT64 - k : 0;

                assert_same_bytes(wire_deliver(&w, dest, from, to, id, json, flags, rcv, ticket),
                                  api_signal(dest, "Deliver", serial, S, &cf, S, &ct, S, &id, S,
                                             &cj, U, &flags, S, &rcv, DBUS_TYPE_UINT64, &ticket,
                                             END));
                assert_same_bytes(wire_observed(&w, dest, from, to, id, flags),
                                  api_signal(dest, "Observed", serial + 1, S, &cf, S, &ct, S, &id,
                                             U, &flags, END));
                assert_same_bytes(wire_unicast_error(&w, dest, from, to, id, json, flags),
                                  api_signal(dest, "UnicastError", serial + 2, S, &cf, S, &ct, S,
                                             &id, S, &cj, U, &flags, END));
                g_free(from);
                g_free(to);
                g_free(json);
        }
        wire_done(&w);
}

/* Serials stay in the upper half and never become 0; a large message does not pin its buffer;
 * what D-Bus would refuse is refused (demarshal validates). */
static void test_wire_serials_buffer_and_validation(void)
{
        wire_t w;
        DBusMessage *m;
        char *big = g_strnfill(3 * 1024 * 1024, 'x');
        char *json = g_strdup_printf("\"%s\"", big);

        wire_init(&w);
        w.serial = G_MAXUINT32;
        m = wire_observed(&w, ":1.1", "a", "b", "c", 0);
        g_assert_cmpuint(dbus_message_get_serial(m), ==, G_MAXUINT32);
        dbus_message_unref(m);
        g_assert_cmpuint(w.serial, ==, WIRE_SERIAL_FIRST);

        m = wire_deliver(&w, ":1.1", "a", "b", "c", json, 0, "r", 1);
        g_assert_nonnull(m);
        g_assert_true(dbus_message_has_signature(m, "ssssust"));
        dbus_message_unref(m);
        g_assert_null(w.buf); /* given back after more than WIRE_KEEP_MAX */

        g_assert_null(wire_observed(&w, "not a bus name", "a", "b", "c", 0));
        g_assert_null(wire_observed(&w, ":1.1", "a", "\xff", "c", 0)); /* not UTF-8 */
        m = wire_observed(&w, ":1.1", "a", "b", "c", 0);               /* and it goes on */
        g_assert_nonnull(m);
        dbus_message_unref(m);
        wire_done(&w);
        g_free(big);
        g_free(json);
}

/* ---- raw libdbus clients ------------------------------------------------------------------ */

typedef struct tc {
        DBusConnection *c;
        char *name;   /* unique bus name */
        GQueue queue; /* signals from the broker not taken yet */
        GQueue taken; /* taken ones, freed with the client */
} tc_t;

typedef struct fx {
        server_fixture_t srv;
        GPtrArray *clients; /* tc_t */
        bool skip;
} fx_t;

static void tc_free(tc_t *t)
{
        DBusMessage *m;

        if (!t)
                return;
        while ((m = g_queue_pop_head(&t->queue)))
                dbus_message_unref(m);
        while ((m = g_queue_pop_head(&t->taken)))
                dbus_message_unref(m);
        if (t->c) {
                dbus_connection_close(t->c);
                dbus_connection_unref(t->c);
        }
        g_free(t->name);
        g_free(t);
}

static tc_t *tc_new(fx_t *f)
{
        tc_t *t = g_new0(tc_t, 1);
        DBusError err;

        dbus_error_init(&err);
        t->c = dbus_connection_open_private(f->srv.address, &err);
        g_assert_nonnull(t->c);
        dbus_connection_set_exit_on_disconnect(t->c, FALSE);
        g_assert_true(dbus_bus_register(t->c, &err));
        t->name = g_strdup(dbus_bus_get_unique_name(t->c));
        g_queue_init(&t->queue);
        g_queue_init(&t->taken);
        g_ptr_array_add(f->clients, t);
        return t;
}

/* Closes a client and waits until the bus has seen it go, so that the broker hears the name
 * lost before anything another client sends afterwards (REGS-3). */
static void tc_disconnect(fx_t *f, tc_t *t, tc_t *witness)
{
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        char *name = g_strdup(t->name);
        guint i;

        g_assert_true(g_ptr_array_find(f->clients, t, &i));
        g_ptr_array_remove_index(f->clients, i); /* frees t */
        for (;;) {
                DBusError err;
                dbus_bool_t has;

                dbus_error_init(&err);
                has = dbus_bus_name_has_owner(witness->c, name, &err);
                g_assert_false(dbus_error_is_set(&err));
                if (!has)
                        break;
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_usleep(1000); /* polling the bus, bounded by the deadline */
        }
        g_free(name);
}

static void tc_drain(tc_t *t)
{
        DBusMessage *m;

        while ((m = dbus_connection_pop_message(t->c))) {
                if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL &&
                    (dbus_message_has_interface(m, VFIIPC_CLIENT_INTERFACE) ||
                     dbus_message_has_member(m, "Broadcast") ||
                     dbus_message_has_member(m, "DirectBroadcasts")))
                        g_queue_push_tail(&t->queue, m);
                else
                        dbus_message_unref(m);
        }
}

/* A round trip through the broker; see the top of the file. */
static void tc_sync(tc_t *t)
{
        DBusMessage *m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                      DBUS_INTERFACE_PEER, "Ping");
        DBusMessage *reply;
        DBusError err;

        dbus_error_init(&err);
        reply = dbus_connection_send_with_reply_and_block(t->c, m, CALL_TIMEOUT_MS, &err);
        g_assert_false(dbus_error_is_set(&err));
        dbus_message_unref(reply);
        dbus_message_unref(m);
        tc_drain(t);
}

static void settle(fx_t *f)
{
        for (int round = 0; round < 2; round++)
                for (guint i = 0; i < f->clients->len; i++)
                        tc_sync(g_ptr_array_index(f->clients, i));
}

static DBusMessage *call_new_iface(const char *iface, const char *method, int first_type,
                                   va_list ap)
{
        DBusMessage *m =
            dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH, iface, method);

        g_assert_nonnull(m);
        g_assert_true(dbus_message_append_args_valist(m, first_type, ap));
        return m;
}

static DBusMessage *call_new(const char *method, int first_type, va_list ap)
{
        DBusMessage *m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                      VFIIPC_BROKER_INTERFACE, method);

        g_assert_nonnull(m);
        g_assert_true(dbus_message_append_args_valist(m, first_type, ap));
        return m;
}

/* A method call that waits for the answer; returns the error name or NULL on success. */
static char *tc_call(tc_t *t, const char *method, int first_type, ...)
{
        DBusMessage *m, *reply;
        DBusError err;
        va_list ap;
        char *r = NULL;

        va_start(ap, first_type);
        m = call_new(method, first_type, ap);
        va_end(ap);
        dbus_error_init(&err);
        reply = dbus_connection_send_with_reply_and_block(t->c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        if (reply) {
                g_assert_cmpint(dbus_message_get_type(reply), ==, DBUS_MESSAGE_TYPE_METHOD_RETURN);
                g_assert_cmpstr(dbus_message_get_signature(reply), ==, "");
                dbus_message_unref(reply);
        } else {
                r = g_strdup(err.name);
                dbus_error_free(&err);
        }
        tc_drain(t);
        return r;
}

/* Fire and forget, as the client library sends Notify and Bounce (ORD-1). */
static void tc_send(tc_t *t, const char *method, int first_type, ...)
{
        DBusMessage *m;
        va_list ap;

        va_start(ap, first_type);
        m = call_new(method, first_type, ap);
        va_end(ap);
        dbus_message_set_no_reply(m, TRUE);
        g_assert_true(dbus_connection_send(t->c, m, NULL));
        dbus_connection_flush(t->c);
        dbus_message_unref(m);
}

/* io.vfiipc.Remote1, as the NFY gateway calls it for one TCP peer (protocol.h): fire and
 * forget, or with a reply when reply is set (returns the error name or NULL). */
static char *tc_remote(tc_t *t, bool reply, const char *method, int first_type, ...)
{
        DBusMessage *m, *r;
        DBusError err;
        va_list ap;
        char *e = NULL;

        va_start(ap, first_type);
        m = call_new_iface(VFIIPC_REMOTE_INTERFACE, method, first_type, ap);
        va_end(ap);
        if (!reply) {
                dbus_message_set_no_reply(m, TRUE);
                g_assert_true(dbus_connection_send(t->c, m, NULL));
                dbus_connection_flush(t->c);
                dbus_message_unref(m);
                return NULL;
        }
        dbus_error_init(&err);
        r = dbus_connection_send_with_reply_and_block(t->c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        if (r)
                dbus_message_unref(r);
        else {
                e = g_strdup(err.name);
                dbus_error_free(&err);
        }
        tc_drain(t);
        return e;
}

static void tc_remote_register(tc_t *t, const char *to, const char *id, int priority)
{
        dbus_int32_t p = priority;

        tc_remote(t, false, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END);
}

static void tc_remote_notify(tc_t *t, const char *from, const char *to, const char *id,
                             const char *json, dbus_uint32_t flags, dbus_uint64_t reference)
{
        tc_remote(t, false, "Notify", S, &from, S, &to, S, &id, S, &json, U, &flags,
                  DBUS_TYPE_UINT64, &reference, END);
}

static void tc_register(tc_t *t, const char *to, const char *id, int priority)
{
        dbus_int32_t p = priority;
        char *e = tc_call(t, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END);

        g_assert_cmpstr(e, ==, NULL);
}

/* protocol.h "Ack", as the library sends it. */
static void tc_ack(tc_t *t, dbus_uint32_t count, dbus_uint64_t broadcast)
{
        tc_send(t, "Ack", U, &count, T, &broadcast, END);
}

static void tc_observe(tc_t *t)
{
        char *e = tc_call(t, "AddObserver", END);

        g_assert_null(e);
}

static void tc_notify(tc_t *t, const char *from, const char *to, const char *id, const char *json,
                      dbus_uint32_t flags)
{
        tc_send(t, "Notify", S, &from, S, &to, S, &id, S, &json, U, &flags, END);
}

static void tc_bounce(tc_t *t, const char *from, const char *to, const char *id, const char *json,
                      dbus_uint32_t flags, dbus_uint64_t ticket)
{
        tc_send(t, "Bounce", S, &from, S, &to, S, &id, S, &json, U, &flags, DBUS_TYPE_UINT64,
                &ticket, END);
}

static guint tc_count(tc_t *t, const char *member)
{
        guint n = 0;

        for (GList *l = t->queue.head; l; l = l->next)
                if (dbus_message_has_member(l->data, member))
                        n++;
        return n;
}

/* The oldest queued signal of that kind, or NULL; stays valid until the client is freed. */
static DBusMessage *tc_take(tc_t *t, const char *member)
{
        for (GList *l = t->queue.head; l; l = l->next) {
                DBusMessage *m = l->data;
                if (!dbus_message_has_member(m, member))
                        continue;
                g_queue_delete_link(&t->queue, l);
                g_queue_push_tail(&t->taken, m);
                g_assert_cmpstr(dbus_message_get_path(m), ==, VFIIPC_CLIENT_PATH);
                g_assert_cmpstr(dbus_message_get_destination(m), ==, t->name);
                return m;
        }
        return NULL;
}

/* Waits until a signal of that kind arrives, with a deadline (for long streams). */
static DBusMessage *tc_wait(tc_t *t, const char *member, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

        do {
                DBusMessage *m = tc_take(t, member);
                if (m)
                        return m;
                dbus_connection_read_write(t->c, 10);
                tc_drain(t);
        } while (g_get_monotonic_time() < deadline);
        return tc_take(t, member);
}

typedef struct deliver {
        const char *from, *to, *id, *json, *receiver;
        dbus_uint32_t flags;
        dbus_uint64_t ticket;
} deliver_t;

static deliver_t take_deliver(tc_t *t)
{
        DBusMessage *m = tc_take(t, "Deliver");
        deliver_t d;

        g_assert_nonnull(m);
        g_assert_true(dbus_message_get_args(m, NULL, S, &d.from, S, &d.to, S, &d.id, S, &d.json, U,
                                            &d.flags, S, &d.receiver, DBUS_TYPE_UINT64, &d.ticket,
                                            END));
        return d;
}

static gint cmp_strp(gconstpointer a, gconstpointer b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The receiver IDs of all queued Observed signals (taken), sorted, joined by ",". */
static char *take_observed(tc_t *t, const char *from, const char *id)
{
        GPtrArray *v = g_ptr_array_new();
        DBusMessage *m;
        char *joined;

        while ((m = tc_take(t, "Observed"))) {
                const char *f, *to, *i;
                dbus_uint32_t flags;
                g_assert_true(dbus_message_get_args(m, NULL, S, &f, S, &to, S, &i, U, &flags, END));
                g_assert_cmpstr(f, ==, from);
                g_assert_cmpstr(i, ==, id);
                g_ptr_array_add(v, (char *)to);
        }
        g_ptr_array_sort(v, cmp_strp);
        g_ptr_array_add(v, NULL);
        joined = g_strjoinv(",", (char **)v->pdata);
        g_ptr_array_free(v, TRUE);
        return joined;
}

static void assert_quiet(tc_t *t)
{
        g_assert_cmpuint(g_queue_get_length(&t->queue), ==, 0);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static void fx_setup(fx_t *f, gconstpointer unused)
{
        f->clients = g_ptr_array_new_with_free_func((GDestroyNotify)tc_free);
        if (!g_getenv("VFIIPC_NOTIFYSVC")) {
                f->skip = true;
                g_test_skip("VFIIPC_NOTIFYSVC not set (notifysvc not built)");
                return;
        }
        server_fixture_start(&f->srv);
}

static void fx_teardown(fx_t *f, gconstpointer unused)
{
        g_ptr_array_unref(f->clients);
        if (!f->skip)
                server_fixture_stop(&f->srv);
}

#define SERVER_TEST(path, fn) g_test_add(path, fx_t, NULL, fx_setup, fn, fx_teardown)

/* A server with the whitelist below, so that it also runs the NFY gateway (on a free port that
 * nobody connects to here: these tests play the gateway's part on the bus themselves). */
static const char remote_config[] = "# test-broker remote rules\n"
                                    "in  *     1   ext_*\n"
                                    "in  kiosk *   evt_*\n"
                                    "out *     *   ext_*\n"
                                    "out *     *   evt_*\n";

static int free_tcp_port(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
        g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
        port = ntohs(sa.sin_port);
        close(fd);
        return port;
}

static void fx_setup_remote(fx_t *f, gconstpointer unused)
{
        f->clients = g_ptr_array_new_with_free_func((GDestroyNotify)tc_free);
        if (!g_getenv("VFIIPC_NOTIFYSVC") || !g_getenv("VFIIPC_NFY_GATEWAY")) {
                f->skip = true;
                g_test_skip("notifysvc or nfy-gateway not built");
                return;
        }
        server_fixture_prepare(&f->srv);
        f->srv.config = g_build_filename(f->srv.dir, "notify.cfg", NULL);
        g_assert_true(g_file_set_contents(f->srv.config, remote_config, -1, NULL));
        f->srv.nfy_port = free_tcp_port();
        server_fixture_restart(&f->srv);
}

#define REMOTE_TEST(path, fn) g_test_add(path, fx_t, NULL, fx_setup_remote, fn, fx_teardown)
#define NEEDS_SERVER(f)                                                                            \
        do {                                                                                       \
                if ((f)->skip)                                                                     \
                        return;                                                                    \
        } while (0)

/* §4.6: a = P1 shell 0, b = P2 shell 10, c = P3 pay 5; S sends, O observes. */
typedef struct example {
        tc_t *p1, *p2, *p3, *s, *o;
} example_t;

static example_t example_setup(fx_t *f)
{
        example_t e = {tc_new(f), tc_new(f), tc_new(f), tc_new(f), tc_new(f)};

        tc_register(e.p1, "shell", "status", 0);
        tc_register(e.p2, "shell", "status", 10);
        tc_register(e.p3, "pay", "status", 5);
        tc_observe(e.o);
        return e;
}

/* ---- §4.6 row by row ---------------------------------------------------------------------- */

/* §4.6 row 1, DLV-1, DLV-5, DLV-6, G-64: "*" reaches a, b, c with to "*", observers see each
 * receiver, no unicast error. */
static void test_example_broadcast_reaches_all(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        deliver_t d;
        char *obs;

        tc_notify(e.s, "app", "*", "status", "{\"v\":1}", 3);
        settle(f);
        d = take_deliver(e.p1);
        g_assert_cmpstr(d.from, ==, "app");
        g_assert_cmpstr(d.to, ==, "*");
        g_assert_cmpstr(d.id, ==, "status");
        g_assert_cmpstr(d.json, ==, "{\"v\":1}");
        g_assert_cmpuint(d.flags, ==, 3);
        g_assert_cmpstr(d.receiver, ==, "shell");
        g_assert_cmpuint(d.ticket, ==, 0); /* broadcasts are never bounced */
        d = take_deliver(e.p2);
        g_assert_cmpstr(d.to, ==, "*");
        g_assert_cmpstr(d.receiver, ==, "shell");
        g_assert_cmpuint(d.ticket, ==, 0);
        d = take_deliver(e.p3);
        g_assert_cmpstr(d.to, ==, "*");
        g_assert_cmpstr(d.receiver, ==, "pay");
        obs = take_observed(e.o, "app", "status");
        g_assert_cmpstr(obs, ==, "pay,shell,shell");
        g_free(obs);
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.p3);
        assert_quiet(e.s); /* DLV-9: never a unicast error for a broadcast */
        assert_quiet(e.o);
}

/* §4.6 row 2, DLV-2: "1" → b (priority 10) only, to "1". */
static void test_example_one_goes_to_highest_priority(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        deliver_t d;
        char *obs;

        tc_notify(e.s, "app", "1", "status", "[1,2]", 0);
        settle(f);
        d = take_deliver(e.p2);
        g_assert_cmpstr(d.to, ==, "1");
        g_assert_cmpstr(d.receiver, ==, "shell");
        g_assert_cmpstr(d.json, ==, "[1,2]");
        g_assert_cmpuint(d.ticket, !=, 0);
        obs = take_observed(e.o, "app", "status");
        g_assert_cmpstr(obs, ==, "shell");
        g_free(obs);
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.p3);
        assert_quiet(e.s);
}

/* §4.6 row 3, DLV-2: "shell" → b, the highest among a and b, to "shell". */
static void test_example_named_goes_to_highest_of_receiver(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        deliver_t d;
        char *obs;

        tc_notify(e.s, "app", "shell", "status", "null", 0);
        settle(f);
        d = take_deliver(e.p2);
        g_assert_cmpstr(d.to, ==, "shell");
        g_assert_cmpstr(d.receiver, ==, "shell");
        obs = take_observed(e.o, "app", "status");
        g_assert_cmpstr(obs, ==, "shell");
        g_free(obs);
        assert_quiet(e.p1);
        assert_quiet(e.p3);
        assert_quiet(e.s);
}

/* §4.6 row 4: "pay" → c. */
static void test_example_named_single_receiver(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        deliver_t d;
        char *obs;

        tc_notify(e.s, "app", "pay", "status", "\"x\"", 0);
        settle(f);
        d = take_deliver(e.p3);
        g_assert_cmpstr(d.to, ==, "pay");
        g_assert_cmpstr(d.receiver, ==, "pay");
        obs = take_observed(e.o, "app", "status");
        g_assert_cmpstr(obs, ==, "pay");
        g_free(obs);
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.s);
}

/* §4.6 row 5, DLV-7, DLV-9, DLV-10 (G-63): nobody; observers see ""; the unicast error carries
 * the notification unchanged to the submitting connection. */
static void test_example_unknown_receiver_gives_unicast_error(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        DBusMessage *m;
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;
        char *obs;

        tc_notify(e.s, "someone-else", "kiosk", "status", "{\"a\":[true]}", 0xffffffffu);
        settle(f);
        m = tc_take(e.s, "UnicastError");
        g_assert_nonnull(m);
        g_assert_true(
            dbus_message_get_args(m, NULL, S, &from, S, &to, S, &id, S, &json, U, &flags, END));
        g_assert_cmpstr(from, ==, "someone-else");
        g_assert_cmpstr(to, ==, "kiosk");
        g_assert_cmpstr(id, ==, "status");
        g_assert_cmpstr(json, ==, "{\"a\":[true]}");
        g_assert_cmpuint(flags, ==, 0xffffffffu); /* G-75 */
        obs = take_observed(e.o, "someone-else", "status");
        g_assert_cmpstr(obs, ==, "");
        g_free(obs);
        g_assert_cmpuint(tc_count(e.o, "Observed"), ==, 0);
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.p3);
        assert_quiet(e.s);
}

/* §4.6 row 6, DLV-7, G-64: a broadcast without receivers is observed with "", no error. */
static void test_example_broadcast_without_receivers(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        DBusMessage *m;
        const char *from, *to, *id;
        dbus_uint32_t flags;

        tc_notify(e.s, "app", "*", "other", "{}", 0);
        settle(f);
        m = tc_take(e.o, "Observed");
        g_assert_nonnull(m);
        g_assert_true(dbus_message_get_args(m, NULL, S, &from, S, &to, S, &id, U, &flags, END));
        g_assert_cmpstr(to, ==, "");
        g_assert_cmpstr(id, ==, "other");
        assert_quiet(e.o);
        assert_quiet(e.s);
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.p3);
}

/* §4.6 epilogue, REGS-1: P2 re-registers with priority -1; b is replaced, "1" goes to c. */
static void test_example_reregister_lower_priority(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        example_t e = example_setup(f);
        deliver_t d;

        tc_register(e.p2, "shell", "status", -1);
        tc_notify(e.s, "app", "1", "status", "1", 0);
        tc_notify(e.s, "app", "shell", "status", "2", 0);
        tc_notify(e.s, "app", "*", "status", "3", 0);
        settle(f);
        d = take_deliver(e.p3);
        g_assert_cmpstr(d.json, ==, "1");
        d = take_deliver(e.p1); /* shell: a (0) beats b (-1) now */
        g_assert_cmpstr(d.json, ==, "2");
        d = take_deliver(e.p1);
        g_assert_cmpstr(d.json, ==, "3");
        d = take_deliver(e.p2); /* replaced, not added: one delivery for the broadcast */
        g_assert_cmpstr(d.json, ==, "3");
        d = take_deliver(e.p3);
        g_assert_cmpstr(d.json, ==, "3");
        assert_quiet(e.p1);
        assert_quiet(e.p2);
        assert_quiet(e.p3);
        assert_quiet(e.s);
}

/* ---- more routing rules ------------------------------------------------------------------- */

/* DLV-3, G-72: with equal priorities the newest (created or replaced) registration wins. */
static void test_tie_goes_to_newest_registration(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f);

        tc_register(a, "x", "id", 5);
        tc_register(b, "x", "id", 5);
        tc_notify(s, "app", "x", "id", "1", 0);
        tc_notify(s, "app", "1", "id", "2", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(b).json, ==, "1");
        g_assert_cmpstr(take_deliver(b).json, ==, "2");
        assert_quiet(a);

        tc_register(a, "x", "id", 5); /* replaced: newest now */
        tc_notify(s, "app", "x", "id", "3", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(a).json, ==, "3");
        assert_quiet(b);
}

/* REGS-1, G-61: registering again replaces only the caller's own registration. */
static void test_overwrite_scoped_per_connection(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f);

        tc_register(a, "x", "id", 1);
        tc_register(b, "x", "id", 3);
        tc_register(a, "x", "id", 7); /* replaces a's, leaves b's */
        tc_notify(s, "app", "x", "id", "1", 0);
        tc_notify(s, "app", "*", "id", "2", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(a).json, ==, "1");
        g_assert_cmpstr(take_deliver(a).json, ==, "2");
        g_assert_cmpstr(take_deliver(b).json, ==, "2");
        assert_quiet(a);
        assert_quiet(b);
}

/* DLV-4, G-73: a broadcast reaches every registration, several of one connection and the
 * sender's own, each with its receiver ID. */
static void test_broadcast_reaches_sender_and_each_registration(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *s = tc_new(f), *o = tc_new(f);
        deliver_t d1, d2;
        char *obs;

        tc_register(s, "r1", "id", 0);
        tc_register(s, "r2", "id", 0);
        tc_observe(o);
        tc_notify(s, "app", "*", "id", "{}", 0);
        settle(f);
        g_assert_cmpuint(tc_count(s, "Deliver"), ==, 2);
        d1 = take_deliver(s);
        d2 = take_deliver(s);
        g_assert_cmpstr(d1.to, ==, "*");
        g_assert_cmpstr(d2.to, ==, "*");
        g_assert_true((g_str_equal(d1.receiver, "r1") && g_str_equal(d2.receiver, "r2")) ||
                      (g_str_equal(d1.receiver, "r2") && g_str_equal(d2.receiver, "r1")));
        obs = take_observed(o, "app", "id");
        g_assert_cmpstr(obs, ==, "r1,r2"); /* G-64: one call per delivery */
        g_free(obs);
        assert_quiet(s);
}

/* DLV-6, G-64: every observer connection sees every delivery once; RemoveObserver stops it;
 * observers need no registration. */
static void test_observers_each_see_each_delivery(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *o1 = tc_new(f), *o2 = tc_new(f), *s = tc_new(f);
        char *obs;
        char *e;

        tc_register(a, "x", "id", 0);
        tc_observe(o1);
        tc_observe(o1); /* one flag per connection: no double observation */
        tc_observe(o2);
        tc_notify(s, "app", "x", "id", "1", 0);
        settle(f);
        obs = take_observed(o1, "app", "id");
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);
        obs = take_observed(o2, "app", "id");
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);

        e = tc_call(o1, "RemoveObserver", END);
        g_assert_null(e);
        tc_notify(s, "app", "*", "id", "2", 0);
        settle(f);
        assert_quiet(o1);
        obs = take_observed(o2, "app", "id");
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);
        g_assert_cmpuint(tc_count(a, "Deliver"), ==, 2);
}

/* ORD-3, G-92: one sender's notifications reach one receiver in the order they were sent. */
static void test_order_of_one_sender_is_kept(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        char json[16];

        tc_register(a, "x", "id", 0);
        for (int i = 0; i < 500; i++) {
                snprintf(json, sizeof(json), "%d", i);
                tc_notify(s, "app", i % 2 ? "x" : "*", "id", json, 0);
        }
        for (int i = 0; i < 500; i++) {
                DBusMessage *m = tc_wait(a, "Deliver", 10000);
                const char *from, *to, *id, *j;

                g_assert_nonnull(m);
                snprintf(json, sizeof(json), "%d", i);
                g_assert_true(dbus_message_get_args(m, NULL, S, &from, S, &to, S, &id, S, &j, U,
                                                    &(dbus_uint32_t){0}, S, &from, DBUS_TYPE_UINT64,
                                                    &(dbus_uint64_t){0}, END));
                g_assert_cmpstr(j, ==, json);
        }
}

/* ---- bounces (DLV-12, DLV-13, G-89) ------------------------------------------------------- */

/* DLV-13: a returned named unicast goes to the next candidate (new ticket, observed again);
 * when none is left, the unicast error goes to the original submitter and observers see "". */
static void test_bounce_goes_to_next_then_unicast_error(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f), *o = tc_new(f);
        deliver_t d, d2;
        char *obs;
        DBusMessage *m;
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;

        tc_register(a, "x", "id", 10);
        tc_register(b, "x", "id", 5);
        tc_observe(o);
        tc_notify(s, "app", "x", "id", "{\"k\":1}", 9);
        settle(f);
        d = take_deliver(a);
        g_assert_cmpuint(d.ticket, !=, 0);
        obs = take_observed(o, "app", "id");
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);

        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        d2 = take_deliver(b);
        g_assert_cmpstr(d2.from, ==, "app");
        g_assert_cmpstr(d2.to, ==, "x");
        g_assert_cmpstr(d2.json, ==, "{\"k\":1}");
        g_assert_cmpuint(d2.flags, ==, 9);
        g_assert_cmpuint(d2.ticket, !=, 0);
        g_assert_cmpuint(d2.ticket, !=, d.ticket);
        obs = take_observed(o, "app", "id"); /* G-64: each attempt is observed */
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);
        assert_quiet(a);
        assert_quiet(s);

        tc_bounce(b, d2.from, d2.to, d2.id, d2.json, d2.flags, d2.ticket);
        settle(f);
        m = tc_take(s, "UnicastError");
        g_assert_nonnull(m);
        g_assert_true(
            dbus_message_get_args(m, NULL, S, &from, S, &to, S, &id, S, &json, U, &flags, END));
        g_assert_cmpstr(to, ==, "x");
        g_assert_cmpstr(json, ==, "{\"k\":1}");
        g_assert_cmpuint(flags, ==, 9);
        obs = take_observed(o, "app", "id");
        g_assert_cmpstr(obs, ==, "");
        g_free(obs);
        assert_quiet(a); /* tried already: never again */
        assert_quiet(b);
        assert_quiet(s);
}

/* DLV-13, G-89: for "1" the priority choice runs again among all untried registrations. */
static void test_bounce_of_one_reruns_priority_choice(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *c = tc_new(f), *s = tc_new(f);
        deliver_t d;

        tc_register(a, "ra", "id", 10);
        tc_register(b, "rb", "id", 1);
        tc_register(c, "rc", "id", 5);
        tc_notify(s, "app", "1", "id", "0", 0);
        settle(f);
        d = take_deliver(a);
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        d = take_deliver(c);
        g_assert_cmpstr(d.to, ==, "1");
        g_assert_cmpstr(d.receiver, ==, "rc");
        tc_bounce(c, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        d = take_deliver(b);
        g_assert_cmpstr(d.receiver, ==, "rb");
        assert_quiet(a);
        assert_quiet(c);
        assert_quiet(s);
}

/* G-89: only the connection a ticket was delivered to may return it; unknown tickets, ticket 0
 * (broadcasts), a second return and altered content are dropped. */
static void test_bounce_of_foreign_or_unknown_ticket_is_ignored(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f), *o = tc_new(f);
        deliver_t d;
        char *obs;

        tc_register(a, "x", "id", 10);
        tc_register(b, "x", "id", 5);
        tc_observe(o);
        tc_notify(s, "app", "x", "id", "1", 0);
        settle(f);
        d = take_deliver(a);
        obs = take_observed(o, "app", "id");
        g_free(obs);

        tc_bounce(b, d.from, d.to, d.id, d.json, d.flags, d.ticket);        /* foreign */
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket + 1000); /* unknown */
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, 0);               /* broadcast */
        tc_bounce(a, d.from, d.to, "other", d.json, d.flags, d.ticket);     /* altered */
        tc_bounce(a, d.from, "1", d.id, d.json, d.flags, d.ticket);         /* altered */
        tc_bounce(s, d.from, d.to, d.id, d.json, d.flags, d.ticket); /* not even a receiver */
        settle(f);
        assert_quiet(a);
        assert_quiet(b);
        assert_quiet(s);
        assert_quiet(o);

        /* The rightful return still works, once. */
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        g_assert_cmpuint(tc_count(b, "Deliver"), ==, 1);
        assert_quiet(a);
        assert_quiet(s);
}

/* protocol.h VFIIPC_BOUNCE_TRIES_MAX: a unicast returned again and again ends in the unicast
 * error after that many registrations were tried, even if more are left. */
static void test_bounce_gives_up_after_tries_max(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        char rcv[16];
        guint n = 0;

        for (unsigned i = 0; i < VFIIPC_BOUNCE_TRIES_MAX + 6; i++) {
                snprintf(rcv, sizeof(rcv), "r%u", i);
                tc_register(a, rcv, "id", (int)i);
        }
        tc_notify(s, "app", "1", "id", "0", 0);
        for (;;) {
                deliver_t d;

                settle(f);
                if (tc_count(a, "Deliver") == 0)
                        break;
                d = take_deliver(a);
                n++;
                /* Highest priority first, each registration once (DLV-13). */
                snprintf(rcv, sizeof(rcv), "r%u", VFIIPC_BOUNCE_TRIES_MAX + 6 - n);
                g_assert_cmpstr(d.receiver, ==, rcv);
                tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        }
        g_assert_cmpuint(n, ==, VFIIPC_BOUNCE_TRIES_MAX);
        g_assert_nonnull(tc_take(s, "UnicastError"));
        assert_quiet(s);
}

/* DLV-10 with G-89: a bounce whose submitter has gone ends quietly (observers still see ""). */
static void test_bounce_after_submitter_left(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f), *o = tc_new(f);
        deliver_t d;
        char *obs;

        tc_register(a, "x", "id", 0);
        tc_observe(o);
        tc_notify(s, "app", "x", "id", "7", 0);
        settle(f);
        d = take_deliver(a);
        obs = take_observed(o, "app", "id");
        g_free(obs);
        tc_disconnect(f, s, a);
        tc_bounce(a, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        obs = take_observed(o, "app", "id");
        g_assert_cmpstr(obs, ==, "");
        g_free(obs);
        assert_quiet(a);
}

/* ---- connections ending (REGS-3, G-68) ---------------------------------------------------- */

/* REGS-3: a connection's registrations and observer flag vanish with it. */
static void test_disconnect_removes_registrations(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f), *o = tc_new(f);
        deliver_t d;

        tc_register(a, "x", "id", 10);
        tc_register(a, "y", "id", 10);
        tc_register(b, "x", "id", 1);
        tc_observe(o);
        tc_notify(s, "app", "x", "id", "1", 0); /* a holds a pending ticket when it goes */
        settle(f);
        d = take_deliver(a);
        g_assert_cmpuint(d.ticket, !=, 0);
        tc_disconnect(f, a, s);
        tc_disconnect(f, o, s);

        tc_notify(s, "app", "x", "id", "2", 0);
        tc_notify(s, "app", "y", "id", "3", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(b).json, ==, "2");
        g_assert_nonnull(tc_take(s, "UnicastError"));
        assert_quiet(b);
        assert_quiet(s);
}

/* ---- input at the edge -------------------------------------------------------------------- */

static void assert_error(char *e, const char *name)
{
        g_assert_cmpstr(e, ==, name);
        g_free(e);
}

/* ADR-5, G-65: "", "1" and "*" are never receiver IDs. */
static void test_register_refuses_keyword_receivers(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        const char *bad[] = {"", "1", "*"}, *id = "id";
        dbus_int32_t p = 0;

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                assert_error(tc_call(a, "Register", S, &bad[i], S, &id, DBUS_TYPE_INT32, &p, END),
                             VFIIPC_ERROR_INVALID_ARGS);
                assert_error(tc_call(a, "Unregister", S, &bad[i], S, &id, END),
                             VFIIPC_ERROR_INVALID_ARGS);
        }
        tc_notify(s, "app", "*", "id", "1", 0);
        settle(f);
        assert_quiet(a);
}

/* protocol.h: wrong signatures, oversize IDs, empty `from`, invalid or oversize JSON are
 * refused with InvalidArgs when a reply is expected; valid calls get an empty return. */
static void test_invalid_calls_get_invalid_args(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        const char *from = "app", *to = "x", *id = "id", *json = "{}", *empty = "";
        const char *bad_json = "{\"a\":", *two_values = "1 2";
        dbus_uint32_t flags = 0;
        dbus_int32_t p = 0;
        char *long_id = g_strnfill(VFIIPC_ID_MAX + 1, 'i');
        char *max_id = g_strnfill(VFIIPC_ID_MAX, 'i');
        char *big_json = g_malloc(VFIIPC_PARAM_MAX + 2);
        const char *cl = long_id, *cm = max_id, *cb = big_json;

        memset(big_json, ' ', VFIIPC_PARAM_MAX + 1); /* whitespace around a valid value */
        big_json[0] = '0';
        big_json[VFIIPC_PARAM_MAX + 1] = '\0';

        tc_register(a, "x", "id", 0);
        tc_register(a, max_id, max_id, 0); /* the limit itself is fine */

        /* Wrong signatures. */
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(
            tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &json, DBUS_TYPE_INT32, &p, END),
            VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Register", S, &to, S, &id, END), VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "AddObserver", S, &to, END), VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Bounce", S, &from, S, &to, S, &id, S, &json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        /* Oversize IDs. */
        assert_error(tc_call(s, "Register", S, &cl, S, &id, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Register", S, &to, S, &cl, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &cl, S, &to, S, &id, S, &json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &from, S, &cl, S, &id, S, &json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &cl, S, &json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        /* G-60: an empty `from` has no sender. */
        assert_error(tc_call(s, "Notify", S, &empty, S, &to, S, &id, S, &json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        /* Invalid and oversize JSON. */
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &bad_json, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &two_values, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &empty, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &cb, U, &flags, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(s, "Bounce", S, &from, S, &to, S, &id, S, &bad_json, U, &flags,
                             DBUS_TYPE_UINT64, &(dbus_uint64_t){1}, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        settle(f);
        assert_quiet(a); /* nothing invalid reached a receiver */
        assert_quiet(s);

        /* The largest valid JSON text passes. */
        big_json[VFIIPC_PARAM_MAX] = '\0';
        assert_error(tc_call(s, "Notify", S, &from, S, &to, S, &id, S, &cb, U, &flags, END), NULL);
        assert_error(tc_call(s, "Notify", S, &cm, S, &cm, S, &cm, S, &json, U, &flags, END), NULL);
        settle(f);
        g_assert_cmpuint(strlen(take_deliver(a).json), ==, VFIIPC_PARAM_MAX);
        g_assert_cmpstr(take_deliver(a).receiver, ==, max_id);
        assert_quiet(a);
        assert_quiet(s);
        g_free(long_id);
        g_free(max_id);
        g_free(big_json);
}

/* protocol.h: a NO_REPLY call with invalid content is dropped: no receiver, no observer, no
 * unicast error, no reply. */
static void test_noreply_invalid_notify_reaches_nobody(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f), *o = tc_new(f);
        char *long_id = g_strnfill(VFIIPC_ID_MAX + 1, 'i');

        tc_register(a, "x", "id", 0);
        tc_observe(o);
        tc_notify(s, "app", "x", "id", "{nope}", 0);
        tc_notify(s, "app", "*", "id", "", 0);
        tc_notify(s, "app", "kiosk", "id", "[", 0);
        tc_notify(s, "", "x", "id", "1", 0);
        tc_notify(s, "app", "x", long_id, "1", 0);
        tc_send(s, "Notify", S, &(const char *){"app"}, S, &(const char *){"x"}, END);
        settle(f);
        assert_quiet(a);
        assert_quiet(s);
        assert_quiet(o);
        g_free(long_id);
}

/* Unknown methods are refused like any D-Bus object does. */
static void test_unknown_method(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *s = tc_new(f);

        assert_error(tc_call(s, "Frobnicate", END), DBUS_ERROR_UNKNOWN_METHOD);
}

/* A registration cap per connection: the next new one is LimitsExceeded, replacing is fine. */
static void test_registration_limit_per_connection(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        const char *to = "x";
        char id[32];
        const char *cid = id;
        dbus_int32_t p = 0;

        for (unsigned i = 0; i < VFIIPC_REGISTRATIONS_PER_PEER_MAX; i++) {
                snprintf(id, sizeof(id), "id%u", i);
                tc_send(a, "Register", S, &to, S, &cid, DBUS_TYPE_INT32, &p, END);
        }
        snprintf(id, sizeof(id), "one-more");
        assert_error(tc_call(a, "Register", S, &to, S, &cid, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_LIMITS);
        snprintf(id, sizeof(id), "id7");
        p = 3;
        assert_error(tc_call(a, "Register", S, &to, S, &cid, DBUS_TYPE_INT32, &p, END), NULL);
        tc_register(s, "x", "one-more", 0); /* the cap is per connection */
}

/* busctl introspect/tree: the object, its interface and the parents of its path. */
static void test_introspect_describes_broker(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *s = tc_new(f);
        const char *paths[] = {VFIIPC_BROKER_PATH, "/", "/io", "/io/vfiipc"};
        const char *expect[] = {"<interface name=\"io.vfiipc.Broker1\">", "<node name=\"io\"/>",
                                "<node name=\"vfiipc\"/>", "<node name=\"Broker1\"/>"};

        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
                DBusMessage *m = dbus_message_new_method_call(
                    VFIIPC_BROKER_NAME, paths[i], DBUS_INTERFACE_INTROSPECTABLE, "Introspect");
                DBusMessage *reply;
                DBusError err;
                const char *xml;

                dbus_error_init(&err);
                reply = dbus_connection_send_with_reply_and_block(s->c, m, CALL_TIMEOUT_MS, &err);
                g_assert_false(dbus_error_is_set(&err));
                g_assert_true(dbus_message_get_args(reply, NULL, S, &xml, END));
                g_assert_nonnull(strstr(xml, expect[i]));
                if (i == 0) {
                        g_assert_nonnull(strstr(xml, "<method name=\"Notify\">"));
                        g_assert_nonnull(strstr(xml, "<arg name=\"ticket\" type=\"t\""));
                        g_assert_nonnull(strstr(xml, "<method name=\"Register\">"));
                }
                dbus_message_unref(reply);
                dbus_message_unref(m);
        }
}

/* ---- remote peers (io.vfiipc.Remote1) ----------------------------------------------------- */

/* CFG-4, CFG-6 (G-83): a remote notification enters only through an `in` rule (matched on to as
 * written); one that does not is dropped without a unicast error. */
static void test_remote_in_rules(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f), *l = tc_new(f), *o = tc_new(f);
        deliver_t d;
        char *obs;

        tc_register(l, "pos", "ext_beep", 0);
        tc_register(l, "pos", "evt_door", 0);
        tc_observe(o);
        tc_remote_notify(r, "kiosk", "1", "ext_beep", "{\"count\":2}", 3, 0);
        settle(f);
        d = take_deliver(l);
        g_assert_cmpstr(d.from, ==, "kiosk");
        g_assert_cmpstr(d.to, ==, "1");
        g_assert_cmpstr(d.json, ==, "{\"count\":2}");
        g_assert_cmpuint(d.flags, ==, 3);
        obs = take_observed(o, "kiosk", "ext_beep");
        g_assert_cmpstr(obs, ==, "pos");
        g_free(obs);

        /* `in * 1 ext_*`: "*" and a name are other `to`s; evt_* only from kiosk. */
        tc_remote_notify(r, "kiosk", "*", "ext_beep", "1", 0, 0);
        tc_remote_notify(r, "kiosk", "pos", "ext_beep", "1", 0, 0);
        tc_remote_notify(r, "other", "pos", "evt_door", "1", 0, 0);
        tc_remote_notify(r, "kiosk", "1", "EXT_beep", "1", 0, 0);
        tc_remote_notify(r, "kiosk", "1", "nope", "1", 0, 0); /* would be a unicast error */
        settle(f);
        assert_quiet(l);
        assert_quiet(r);
        assert_quiet(o); /* dropped before routing: nothing to observe */

        tc_remote_notify(r, "kiosk", "pos", "evt_door", "true", 0, 0);
        settle(f);
        d = take_deliver(l);
        g_assert_cmpstr(d.id, ==, "evt_door");
}

/* G-82: a remote registration that no out rule lets out is no candidate, so it never shadows
 * a local one of lower priority; an allowed one competes normally. */
static void test_remote_out_before_priority(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f), *l = tc_new(f), *s = tc_new(f);
        deliver_t d;

        tc_remote_register(r, "x", "secret", 100);
        tc_remote_register(r, "x", "ext_a", 100);
        tc_register(l, "x", "secret", 0);
        tc_register(l, "x", "ext_a", 0);
        settle(f);
        tc_notify(s, "app", "1", "secret", "1", 0);
        tc_notify(s, "app", "x", "secret", "2", 0);
        tc_notify(s, "app", "*", "secret", "3", 0);
        settle(f);
        g_assert_cmpuint(tc_count(l, "Deliver"), ==, 3);
        assert_quiet(r);
        g_assert_cmpuint(tc_count(s, "UnicastError"), ==, 0);

        tc_notify(s, "app", "1", "ext_a", "4", 0);
        settle(f);
        d = take_deliver(r);
        g_assert_cmpstr(d.json, ==, "4");
        g_assert_cmpuint(d.ticket, !=, 0);
}

/* G-91, G-89: a broadcast reaches a remote connection once, however many of its registrations
 * match, with a ticket; returned, it is dropped (no duplicate for anyone). */
static void test_remote_broadcast_once_and_return_dropped(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f), *l = tc_new(f), *s = tc_new(f);
        deliver_t d;

        tc_remote_register(r, "a", "ext_s", 0);
        tc_remote_register(r, "b", "ext_s", 0);
        tc_register(l, "pos", "ext_s", 0);
        settle(f);
        tc_notify(s, "app", "*", "ext_s", "[1]", 0);
        settle(f);
        g_assert_cmpuint(tc_count(r, "Deliver"), ==, 1);
        g_assert_cmpuint(tc_count(l, "Deliver"), ==, 1);
        d = take_deliver(r);
        g_assert_cmpstr(d.to, ==, "*");
        g_assert_cmpuint(d.ticket, !=, 0);
        (void)take_deliver(l);

        tc_remote_notify(r, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        assert_quiet(l);
        assert_quiet(r);
        assert_quiet(s);
}

/* NFYS-3, G-89: a unicast handed back with its reference goes to the next candidate (no `in`
 * check: `in` has no rule for a named `to`), then the unicast error reaches the local sender. */
static void test_remote_return_reroutes(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f), *l = tc_new(f), *s = tc_new(f);
        deliver_t d, d2;

        tc_remote_register(r, "x", "ext_u", 10);
        tc_register(l, "x", "ext_u", 0);
        settle(f);
        tc_notify(s, "app", "x", "ext_u", "{\"k\":1}", 5);
        settle(f);
        d = take_deliver(r);
        assert_quiet(l);
        /* A wrong reference is an ordinary new notification: `in` does not admit it. */
        tc_remote_notify(r, d.from, d.to, d.id, d.json, d.flags, d.ticket + 1000);
        settle(f);
        assert_quiet(l);
        tc_remote_notify(r, d.from, d.to, d.id, d.json, d.flags, d.ticket);
        settle(f);
        d2 = take_deliver(l);
        g_assert_cmpstr(d2.from, ==, "app");
        g_assert_cmpstr(d2.json, ==, "{\"k\":1}");
        g_assert_cmpuint(d2.flags, ==, 5);

        tc_bounce(l, d2.from, d2.to, d2.id, d2.json, d2.flags, d2.ticket);
        settle(f);
        g_assert_cmpuint(tc_count(s, "UnicastError"), ==, 1);
        assert_quiet(r); /* tried already */
}

/* A remote peer's unicast that nobody takes: UnicastError to its connection (DLV-9). */
static void test_remote_unicast_error(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f);
        DBusMessage *m;
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;

        tc_remote_notify(r, "kiosk", "1", "ext_none", "{\"a\":[]}", 7, 0);
        settle(f);
        m = tc_take(r, "UnicastError");
        g_assert_nonnull(m);
        g_assert_true(
            dbus_message_get_args(m, NULL, S, &from, S, &to, S, &id, S, &json, U, &flags, END));
        g_assert_cmpstr(from, ==, "kiosk");
        g_assert_cmpstr(to, ==, "1");
        g_assert_cmpstr(id, ==, "ext_none");
        g_assert_cmpstr(json, ==, "{\"a\":[]}");
        g_assert_cmpuint(flags, ==, 7);
}

/* LIM-1, G-87: 256 registrations over all remote connections; replacing at the limit is fine;
 * unregistering and disconnecting free slots; local registrations do not count. */
static void test_remote_registration_cap(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r1 = tc_new(f), *r2 = tc_new(f), *l = tc_new(f), *s = tc_new(f);
        char id[32];
        guint n = 0;

        for (unsigned i = 0; i < 200; i++) {
                snprintf(id, sizeof(id), "ext_%u", i);
                tc_remote_register(r1, "x", id, 0);
        }
        settle(f); /* r1's first: the order between two connections is not defined */
        for (unsigned i = 200; i < 300; i++) {
                snprintf(id, sizeof(id), "ext_%u", i);
                tc_remote_register(r2, "x", id, 0);
        }
        tc_register(l, "x", "ext_299", 0);
        settle(f);
        for (unsigned i = 0; i < 300; i++) {
                snprintf(id, sizeof(id), "ext_%u", i);
                tc_notify(s, "app", "*", id, "0", 0);
        }
        settle(f);
        n = tc_count(r1, "Deliver") + tc_count(r2, "Deliver");
        g_assert_cmpuint(n, ==, VFIIPC_REMOTE_REGISTRATIONS_MAX);
        g_assert_cmpuint(tc_count(r1, "Deliver"), ==, 200);
        g_assert_cmpuint(tc_count(l, "Deliver"), ==, 1);

        /* Replacing (priority) at the limit is accepted: r2's ext_200 now beats l for "1". */
        tc_register(l, "x", "ext_200", 50);
        tc_remote_register(r2, "x", "ext_200", 99);
        /* A new one is not: ext_299 stays local only. */
        tc_remote_register(r2, "x", "ext_299", 99);
        settle(f);
        g_queue_clear_full(&r2->queue, (GDestroyNotify)dbus_message_unref);
        g_queue_clear_full(&l->queue, (GDestroyNotify)dbus_message_unref);
        tc_notify(s, "app", "1", "ext_200", "1", 0);
        tc_notify(s, "app", "1", "ext_299", "2", 0);
        settle(f);
        g_assert_cmpuint(tc_count(r2, "Deliver"), ==, 1);
        g_assert_cmpuint(tc_count(l, "Deliver"), ==, 1);

        /* Closing r1 frees its 200 slots at once. */
        tc_disconnect(f, r1, s);
        tc_remote_register(r2, "x", "ext_299", 99);
        settle(f);
        g_queue_clear_full(&r2->queue, (GDestroyNotify)dbus_message_unref);
        g_queue_clear_full(&l->queue, (GDestroyNotify)dbus_message_unref);
        tc_notify(s, "app", "1", "ext_299", "3", 0);
        settle(f);
        g_assert_cmpuint(tc_count(r2, "Deliver"), ==, 1);
        assert_quiet(l);
}

/* LIM-3, DLV-8: once remote, a connection gets no Broker1 (no observing, no unchecked Notify);
 * a local connection with registrations cannot turn remote. */
static void test_remote_connection_confined(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *r = tc_new(f), *l = tc_new(f);
        const char *to = "x", *id = "ext_q";
        dbus_int32_t p = 0;

        assert_error(tc_remote(r, true, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END),
                     NULL);
        assert_error(tc_call(r, "AddObserver", END), VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_call(r, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        tc_register(l, "y", "ext_q", 0);
        assert_error(tc_remote(l, true, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        to = "*";
        assert_error(tc_remote(r, true, "Register", S, &to, S, &id, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_INVALID_ARGS);
}

/* The generated bus policy (root only: the gateway's principal is another user, here the test
 * environment's VFIIPC_GATEWAY_USER): that user may connect and call Remote1, but not own a
 * name, observe, monitor, or call Broker1. Checked by dbus-daemon, not by the broker. */
static void test_remote_policy_confines_gateway_user(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        const char *user = g_getenv("VFIIPC_GATEWAY_USER");
        struct passwd *pw;
        int status;
        pid_t pid;

        if (geteuid() != 0 || !user || !(pw = getpwnam(user))) {
                g_test_skip("needs root and VFIIPC_GATEWAY_USER");
                return;
        }
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                DBusError err = DBUS_ERROR_INIT;
                DBusConnection *c;
                DBusMessage *m, *reply;
                const char *to = "x", *id = "ext_p", *name = "io.vfiipc.Squat";
                dbus_int32_t p = 0;
                int bad = 0;

                if (setgid(pw->pw_gid) < 0 || setgroups(0, NULL) < 0 || setuid(pw->pw_uid) < 0)
                        _exit(100);
                c = dbus_connection_open_private(f->srv.address, &err);
                if (!c || !dbus_bus_register(c, &err))
                        _exit(101);
                /* Allowed: Remote1.Register (with a reply here, to see the broker's answer). */
                m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                 VFIIPC_REMOTE_INTERFACE, "Register");
                dbus_message_append_args(m, S, &to, S, &id, DBUS_TYPE_INT32, &p, END);
                reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
                bad |= reply ? 0 : 1;
                if (reply)
                        dbus_message_unref(reply);
                dbus_error_free(&err);
                dbus_message_unref(m);
                /* Denied by the bus itself. */
                m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                 VFIIPC_BROKER_INTERFACE, "AddObserver");
                reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
                bad |= !reply && dbus_error_has_name(&err, DBUS_ERROR_ACCESS_DENIED) ? 0 : 2;
                if (reply)
                        dbus_message_unref(reply);
                dbus_error_free(&err);
                dbus_message_unref(m);
                bad |= dbus_bus_request_name(c, name, 0, &err) < 0 &&
                               dbus_error_has_name(&err, DBUS_ERROR_ACCESS_DENIED)
                           ? 0
                           : 4;
                dbus_error_free(&err);
                m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                 DBUS_INTERFACE_MONITORING, "BecomeMonitor");
                {
                        DBusMessageIter it, arr;
                        dbus_uint32_t zero = 0;
                        dbus_message_iter_init_append(m, &it);
                        dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &arr);
                        dbus_message_iter_close_container(&it, &arr);
                        dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &zero);
                }
                reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
                bad |= reply ? 8 : 0;
                if (reply)
                        dbus_message_unref(reply);
                dbus_error_free(&err);
                dbus_message_unref(m);
                /* Also without an interface (the broker reads that as Broker1's), from a
                 * connection that never called Remote1, which the broker alone would admit. */
                c = dbus_connection_open_private(f->srv.address, &err);
                if (!c || !dbus_bus_register(c, &err))
                        _exit(102);
                m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH, NULL,
                                                 "AddObserver");
                reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
                bad |= !reply && dbus_error_has_name(&err, DBUS_ERROR_ACCESS_DENIED) ? 0 : 16;
                if (reply)
                        dbus_message_unref(reply);
                dbus_error_free(&err);
                dbus_message_unref(m);
                _exit(bad);
        }
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

/* ---- what a raw client cannot make the broker do (6c) ------------------------------------- */

/* SRV-5: nobody else can take the broker's name while the broker holds it. A raw client's
 * RequestName, with any flags, never makes it the primary owner (the bus policy lets this bus's
 * user ask: the broker owns without ALLOW_REPLACEMENT), the owner stays the broker, calls to the
 * name still reach the broker and never the client. */
static void test_broker_name_cannot_be_taken(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        const unsigned flags[] = {0, DBUS_NAME_FLAG_DO_NOT_QUEUE, DBUS_NAME_FLAG_REPLACE_EXISTING,
                                  DBUS_NAME_FLAG_REPLACE_EXISTING | DBUS_NAME_FLAG_DO_NOT_QUEUE,
                                  DBUS_NAME_FLAG_REPLACE_EXISTING |
                                      DBUS_NAME_FLAG_ALLOW_REPLACEMENT};
        tc_t *a = tc_new(f), *s = tc_new(f);
        DBusError err = DBUS_ERROR_INIT;
        DBusConnection *squat = dbus_connection_open_private(f->srv.address, &err);
        const char *name = VFIIPC_BROKER_NAME;
        unsigned calls = 0, acquired = 0;
        DBusMessage *m, *reply;
        char *owner = NULL;

        g_assert_nonnull(squat);
        dbus_connection_set_exit_on_disconnect(squat, FALSE);
        g_assert_true(dbus_bus_register(squat, &err));
        for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
                int r = dbus_bus_request_name(squat, name, flags[i], &err);

                g_assert_false(dbus_error_is_set(&err));
                g_assert_true(r == DBUS_REQUEST_NAME_REPLY_IN_QUEUE ||
                              r == DBUS_REQUEST_NAME_REPLY_EXISTS);
        }
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "GetNameOwner");
        dbus_message_append_args(m, S, &name, END);
        reply = dbus_connection_send_with_reply_and_block(s->c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, S, &owner, END));
        g_assert_cmpstr(owner, !=, dbus_bus_get_unique_name(squat));
        dbus_message_unref(reply);

        tc_register(a, "x", "id", 0); /* answered: by the broker */
        tc_notify(s, "app", "x", "id", "1", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(a).json, ==, "1");
        assert_quiet(s);
        /* Whatever reached the squatter by now: no call for the broker, no name acquired. */
        dbus_connection_read_write(squat, 0);
        while ((m = dbus_connection_pop_message(squat))) {
                calls += dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_METHOD_CALL;
                acquired += dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameAcquired") &&
                            dbus_message_get_args(m, NULL, S, &owner, END) &&
                            strcmp(owner, name) == 0;
                dbus_message_unref(m);
        }
        g_assert_cmpuint(calls, ==, 0);
        g_assert_cmpuint(acquired, ==, 0);
        dbus_connection_close(squat);
        dbus_connection_unref(squat);
}

/* REGS-3: only the bus driver reports that a connection ended. A NameOwnerChanged "victim lost
 * its name" forged by another client and sent to the broker (by unique and by well-known name)
 * changes nothing: the victim keeps its registration and its observer flag. */
static void test_forged_name_lost_ignored(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *v = tc_new(f), *e = tc_new(f), *s = tc_new(f);
        DBusError err = DBUS_ERROR_INIT;
        const char *empty = "", *victim = v->name, *bname = VFIIPC_BROKER_NAME;
        const char *dest[2] = {bname, NULL};
        DBusMessage *m, *reply;
        char *obs;

        tc_register(v, "x", "id", 0);
        tc_observe(v);
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "GetNameOwner");
        dbus_message_append_args(m, S, &bname, END);
        reply = dbus_connection_send_with_reply_and_block(e->c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, S, &dest[1], END));
        for (size_t i = 0; i < G_N_ELEMENTS(dest); i++) {
                m = dbus_message_new_signal(DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                            "NameOwnerChanged");
                dbus_message_set_destination(m, dest[i]);
                dbus_message_append_args(m, S, &victim, S, &victim, S, &empty, END);
                g_assert_true(dbus_connection_send(e->c, m, NULL));
                dbus_message_unref(m);
        }
        dbus_message_unref(reply);
        settle(f); /* the broker has handled them: e's Ping came after */

        tc_notify(s, "app", "x", "id", "1", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(v).json, ==, "1");
        obs = take_observed(v, "app", "id");
        g_assert_cmpstr(obs, ==, "x");
        g_free(obs);
        assert_quiet(v);
        assert_quiet(s);
}

/* protocol.h "Ack": an Ack counts only what was sent. One for more than is outstanding
 * acknowledges all of it and nothing more (no credit for later signals, also not before any
 * was sent), so the unicasts unacknowledged when the connection ends are still re-routed to the
 * next receiver, and the acknowledged ones are not. */
static void test_ack_huge_count_acknowledges_no_more_than_sent(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f);

        tc_ack(a, 0, 0);          /* accounting on */
        tc_ack(a, UINT32_MAX, 0); /* nothing outstanding: no credit either */
        tc_register(a, "x", "id", 10);
        tc_register(b, "x", "id", 0);
        tc_notify(s, "app", "1", "id", "1", 0);
        tc_notify(s, "app", "1", "id", "2", 0);
        settle(f);
        g_assert_cmpuint(tc_count(a, "Deliver"), ==, 2);
        tc_ack(a, UINT32_MAX, 0); /* "1" and "2", no more */
        tc_notify(s, "app", "1", "id", "3", 0);
        tc_notify(s, "app", "1", "id", "4", 0);
        settle(f);
        g_assert_cmpuint(tc_count(a, "Deliver"), ==, 4);
        tc_ack(a, 1, 0); /* "3" */
        settle(f);
        assert_quiet(b);

        tc_disconnect(f, a, s);
        settle(f);
        g_assert_cmpstr(take_deliver(b).json, ==, "4");
        assert_quiet(b);
        assert_quiet(s);
}

/* protocol.h "AckShared": only a memfd sealed against shrinking (else reading it could fault
 * the broker) of at least a page's size, only once per connection. Then what the connection
 * writes into it acknowledges like Ack: when it ends, the unicasts it counted are not
 * re-routed and the others are. */
static int memfd_page(bool seal, size_t size)
{
        int fd = memfd_create("test-ack", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
        if (seal)
                g_assert_cmpint(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), ==, 0);
        return fd;
}

static void test_ack_shared_page(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f);
        int bad = memfd_page(false, sizeof(ack_page_t));
        int small = memfd_page(true, sizeof(ack_page_t) - 1);
        int good = memfd_page(true, sizeof(ack_page_t));
        int second = memfd_page(true, sizeof(ack_page_t));
        ack_page_t *page;

        assert_error(tc_call(a, "AckShared", DBUS_TYPE_UNIX_FD, &bad, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(a, "AckShared", DBUS_TYPE_UNIX_FD, &small, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        assert_error(tc_call(a, "AckShared", DBUS_TYPE_UNIX_FD, &good, END), NULL);
        assert_error(tc_call(a, "AckShared", DBUS_TYPE_UNIX_FD, &second, END),
                     VFIIPC_ERROR_INVALID_ARGS);
        page = mmap(NULL, sizeof(*page), PROT_READ | PROT_WRITE, MAP_SHARED, good, 0);
        g_assert_true(page != MAP_FAILED);
        close(bad);
        close(small);
        close(good);
        close(second);

        tc_register(a, "x", "sh", 10);
        tc_register(b, "x", "sh", 0);
        tc_notify(s, "app", "1", "sh", "1", 0);
        tc_notify(s, "app", "1", "sh", "2", 0);
        tc_notify(s, "app", "1", "sh", "3", 0);
        settle(f);
        g_assert_cmpuint(tc_count(a, "Deliver"), ==, 3);
        __atomic_store_n(&page->count, 2, __ATOMIC_RELEASE); /* "1" and "2" taken */
        tc_disconnect(f, a, s);
        settle(f);
        g_assert_cmpstr(take_deliver(b).json, ==, "3");
        assert_quiet(b);
        assert_quiet(s);
        munmap(page, sizeof(*page));
}

/* ---- protocol.h "Broadcasts by the bus" --------------------------------------------------- */

/* The broker's unique name. */
static const char *broker_owner(tc_t *t)
{
        static char owner[256];
        const char *name = VFIIPC_BROKER_NAME, *o;
        DBusMessage *m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                      DBUS_INTERFACE_DBUS, "GetNameOwner");
        DBusMessage *reply;

        g_assert_true(dbus_message_append_args(m, S, &name, END));
        reply = dbus_connection_send_with_reply_and_block(t->c, m, 5000, NULL);
        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, S, &o, END));
        g_strlcpy(owner, o, sizeof(owner));
        dbus_message_unref(reply);
        dbus_message_unref(m);
        return owner;
}

/* Takes every queued Mark (protocol.h); returns the last one's value, 0 if none. */
static dbus_uint64_t take_marks(tc_t *t)
{
        dbus_uint64_t v = 0;
        DBusMessage *m;

        while ((m = tc_take(t, "Mark")))
                g_assert_true(dbus_message_get_args(m, NULL, T, &v, END));
        return v;
}

/* Waits for the next Mark (the broker sends one soon after it caught up: CI machines can be
 * slow) and returns it, with any that came with it. */
static dbus_uint64_t wait_mark(tc_t *t)
{
        DBusMessage *m = tc_wait(t, "Mark", 5000);
        dbus_uint64_t v, later;

        g_assert_nonnull(m);
        g_assert_true(dbus_message_get_args(m, NULL, T, &v, END));
        later = take_marks(t);
        return later ? later : v;
}

/* A Broadcast signal as a client sends it by the bus; dest: none, unless a test forges one. */
static void tc_broadcast(tc_t *t, const char *dest, const char *iface_id, const char *from,
                         const char *to, const char *id, const char *json)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE];
        dbus_uint32_t flags = 0;
        DBusMessage *m;

        wire_broadcast_interface(iface, iface_id);
        m = dbus_message_new_signal(VFIIPC_BROADCAST_PATH, iface, "Broadcast");
        g_assert_true(dbus_message_append_args(m, S, &from, S, &to, S, &id, S, &json, U, &flags,
                                               END));
        if (dest)
                g_assert_true(dbus_message_set_destination(m, dest));
        g_assert_true(dbus_connection_send(t->c, m, NULL));
        dbus_connection_flush(t->c);
        dbus_message_unref(m);
}

/* As the library subscribes: the ID's match rule on the bus first, then Subscribe. */
static void tc_subscribe(tc_t *t, const char *to, const char *id, int priority)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE], *rule, *e;
        dbus_int32_t p = priority;
        DBusError err;

        wire_broadcast_interface(iface, id);
        rule = g_strdup_printf("type='signal',path='%s',interface='%s',member='Broadcast'",
                               VFIIPC_BROADCAST_PATH, iface);
        dbus_error_init(&err);
        dbus_bus_add_match(t->c, rule, &err);
        g_assert_false(dbus_error_is_set(&err));
        g_free(rule);
        e = tc_call(t, "Subscribe", S, &to, S, &id, DBUS_TYPE_INT32, &p, END);
        g_assert_null(e);
}

typedef struct bcast {
        const char *from, *to, *id, *json, *sender;
        dbus_uint32_t flags;
} bcast_t;

/* The oldest queued Broadcast: on the broadcast object, to nobody in particular, on the ID's
 * own interface. */
static bcast_t take_broadcast(tc_t *t)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE];
        DBusMessage *m = NULL;
        bcast_t b;

        for (GList *l = t->queue.head; l; l = l->next)
                if (dbus_message_has_member(l->data, "Broadcast")) {
                        m = l->data;
                        g_queue_delete_link(&t->queue, l);
                        g_queue_push_tail(&t->taken, m);
                        break;
                }
        g_assert_nonnull(m);
        g_assert_cmpstr(dbus_message_get_path(m), ==, VFIIPC_BROADCAST_PATH);
        g_assert_null(dbus_message_get_destination(m));
        g_assert_true(dbus_message_get_args(m, NULL, S, &b.from, S, &b.to, S, &b.id, S, &b.json, U,
                                            &b.flags, END));
        b.sender = dbus_message_get_sender(m);
        wire_broadcast_interface(iface, b.id);
        g_assert_cmpstr(dbus_message_get_interface(m), ==, iface);
        return b;
}

/* DLV-1, DLV-4, DLV-6 by the fast path: a "*" notification reaches a subscribed connection as
 * one Broadcast however many of its registrations match (the library runs each), a connection
 * that registered plainly still as one Deliver per registration, and observers still see every
 * receiving registration. A unicast to a subscribed registration stays a Deliver, and a
 * connection without the rule gets nothing. */
static void test_broadcast_fast_path(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *o = tc_new(f), *s = tc_new(f), *n = tc_new(f);
        bcast_t x;
        char *obs;

        tc_ack(a, 0, 0);
        tc_subscribe(a, "x", "fan", 0);
        tc_subscribe(a, "y", "fan", 5);
        tc_register(b, "z", "fan", 1);
        tc_subscribe(n, "w", "other", 0);
        tc_observe(o);
        tc_notify(s, "app", "*", "fan", "{\"k\":1}", 3);
        settle(f);
        g_assert_cmpuint(tc_count(a, "Broadcast"), ==, 1);
        g_assert_cmpuint(tc_count(a, "Deliver"), ==, 0);
        x = take_broadcast(a);
        g_assert_cmpstr(x.from, ==, "app");
        g_assert_cmpstr(x.to, ==, "*");
        g_assert_cmpstr(x.id, ==, "fan");
        g_assert_cmpstr(x.json, ==, "{\"k\":1}");
        g_assert_cmpuint(x.flags, ==, 3);
        g_assert_cmpstr(x.sender, ==, broker_owner(s));
        g_assert_cmpstr(take_deliver(b).receiver, ==, "z");
        obs = take_observed(o, "app", "fan");
        g_assert_cmpstr(obs, ==, "x,y,z");
        g_free(obs);
        take_marks(a); /* it is accounted (Ack), and took a Broadcast */
        assert_quiet(a);
        assert_quiet(b);
        assert_quiet(n);
        assert_quiet(s);

        tc_notify(s, "app", "x", "fan", "2", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(a).receiver, ==, "x");
        take_marks(a);
        assert_quiet(a);
        assert_quiet(b);
}

/* protocol.h "Broadcasts by the bus": a client's own Broadcast signal reaches the subscribed
 * connection from the bus (from its sender, not the broker), while the broker, which watches
 * Broadcasts because a plain registration and an observer exist, delivers to the plain
 * registration and has the observer see every receiver (DLV-6). One with a destination, with
 * `to` other than "*", or on another ID's interface reaches nobody through the broker. */
static void test_broadcast_by_sender(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *o = tc_new(f), *s = tc_new(f);
        bcast_t x;
        char *obs;

        tc_subscribe(a, "x", "bb", 0);
        tc_register(b, "z", "bb", 0);
        tc_observe(o);
        tc_broadcast(s, NULL, "bb", "app", "*", "bb", "{\"k\":2}");
        settle(f);
        x = take_broadcast(a);
        g_assert_cmpstr(x.sender, ==, s->name);
        g_assert_cmpstr(x.json, ==, "{\"k\":2}");
        g_assert_cmpstr(take_deliver(b).json, ==, "{\"k\":2}");
        obs = take_observed(o, "app", "bb");
        g_assert_cmpstr(obs, ==, "x,z");
        g_free(obs);
        assert_quiet(a);
        assert_quiet(b);
        assert_quiet(o);

        tc_broadcast(s, b->name, "bb", "app", "*", "bb", "1"); /* addressed: b drops it itself */
        tc_broadcast(s, NULL, "bb", "app", "z", "bb", "2");
        tc_broadcast(s, NULL, "other", "app", "*", "bb", "3");
        tc_broadcast(s, NULL, "bb", "app", "*", "bb", "{bad");
        settle(f);
        g_assert_cmpuint(tc_count(b, "Deliver"), ==, 0);
        g_assert_cmpuint(tc_count(o, "Observed"), ==, 0);
}

/* The newest DirectBroadcasts a watcher got: 1 true, 0 false, -1 none. */
static int take_direct(tc_t *t)
{
        dbus_bool_t v;
        DBusMessage *m;
        int r = -1;

        for (GList *l = t->queue.head, *next; l; l = next) {
                dbus_uint64_t version;

                next = l->next;
                m = l->data;
                if (!dbus_message_has_member(m, "DirectBroadcasts"))
                        continue;
                g_assert_cmpstr(dbus_message_get_path(m), ==, VFIIPC_BROKER_PATH);
                g_assert_null(dbus_message_get_destination(m));
                g_assert_true(dbus_message_get_args(m, NULL, DBUS_TYPE_BOOLEAN, &v, T, &version,
                                                    END));
                r = v ? 1 : 0;
                g_queue_delete_link(&t->queue, l);
                g_queue_push_tail(&t->taken, m);
        }
        return r;
}

static bool tc_sync_direct(tc_t *t)
{
        DBusMessage *m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                      VFIIPC_BROKER_INTERFACE, "Sync");
        DBusMessage *reply = dbus_connection_send_with_reply_and_block(t->c, m, 5000, NULL);
        dbus_bool_t direct;
        dbus_uint64_t version;

        g_assert_nonnull(reply);
        g_assert_true(dbus_message_get_args(reply, NULL, DBUS_TYPE_BOOLEAN, &direct, T, &version,
                                            END));
        dbus_message_unref(reply);
        dbus_message_unref(m);
        return direct;
}

/* G-93 with broadcasts by the bus: a subscribed connection that leaves its Mark unacknowledged
 * for VFIIPC_STALL_MS is stalled: the broker says DirectBroadcasts false (Sync too), sends a
 * broadcast as Deliver to the others and drops it for the stalled one; once it acknowledges,
 * broadcasts may go by the bus again and one Broadcast serves all. */
static void test_broadcast_stalled_subscriber_falls_back(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *b = tc_new(f), *s = tc_new(f), *w = tc_new(f);
        dbus_uint64_t mark_a, mark_b;
        DBusError err = DBUS_ERROR_INIT;

        dbus_bus_add_match(w->c,
                           "type='signal',path='" VFIIPC_BROKER_PATH "',interface='" VFIIPC_BROKER_INTERFACE
                           "',member='DirectBroadcasts'",
                           &err);
        g_assert_false(dbus_error_is_set(&err));
        tc_ack(a, 0, 0);
        tc_ack(b, 0, 0);
        tc_subscribe(a, "x", "st", 0);
        tc_subscribe(b, "y", "st", 0);
        g_assert_true(tc_sync_direct(s));
        tc_notify(s, "app", "*", "st", "1", 0);
        mark_a = wait_mark(a); /* the broker's idle Mark */
        mark_b = wait_mark(b);
        settle(f);
        g_assert_cmpstr(take_broadcast(a).json, ==, "1");
        g_assert_cmpstr(take_broadcast(b).json, ==, "1");
        g_assert_cmpuint(mark_a, >, 0);
        g_assert_cmpuint(mark_b, >, 0);
        tc_ack(b, 0, mark_b); /* a acknowledges nothing */
        g_usleep((VFIIPC_STALL_MS + 500) * 1000);

        tc_notify(s, "app", "*", "st", "2", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(b).json, ==, "2");
        assert_quiet(a); /* dropped for it, counted and logged */
        g_assert_false(tc_sync_direct(s));
        g_assert_cmpint(take_direct(w), ==, 0);

        tc_ack(a, 0, mark_a);
        tc_notify(s, "app", "*", "st", "3", 0);
        settle(f);
        g_assert_true(tc_sync_direct(s));
        g_assert_cmpint(take_direct(w), ==, 1);
        g_assert_cmpstr(take_broadcast(a).json, ==, "3");
        g_assert_cmpstr(take_broadcast(b).json, ==, "3");
        take_marks(a);
        take_marks(b);
        assert_quiet(a);
        assert_quiet(b);
}

/* protocol.h "Mark": once the broker has caught up, the Mark that follows a broadcast goes out
 * soon (MARK_IDLE_MS after the previous one), not on the idle server's slow tick, also when the
 * broadcast arrives right behind another call. Each round: a Sync, at once a Notify to "*"
 * (both handled within the same millisecond, mostly), then the Mark is awaited and
 * acknowledged. The bound is 40 % of the 250 ms tick, far above the few ms it takes here. */
static void test_broadcast_idle_mark_follows_soon(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        gint64 worst = 0;

        tc_ack(a, 0, 0);
        tc_subscribe(a, "x", "im", 0);
        for (int i = 0; i < 12; i++) {
                dbus_uint64_t mark;
                gint64 t0;

                g_assert_true(tc_sync_direct(s));
                tc_notify(s, "app", "*", "im", "1", 0);
                t0 = g_get_monotonic_time();
                mark = wait_mark(a);
                worst = MAX(worst, g_get_monotonic_time() - t0);
                tc_ack(a, 0, mark);
                g_assert_cmpstr(take_broadcast(a).json, ==, "1");
                g_usleep(15 * 1000); /* past MARK_IDLE_MS: the next Mark may go at once */
        }
        g_test_message("slowest Mark after its broadcast: %" G_GINT64_FORMAT " us", worst);
        if (!g_getenv("VFIIPC_TEST_VALGRIND"))
                g_assert_cmpint(worst, <, 100 * 1000);
}

/* A connection that subscribed without holding the match rule (the library's fallback when
 * AddMatch fails) never gets the Broadcasts counted for it; once it registers plainly again,
 * they no longer count, so it is not taken for stalled: 2.5 s later a unicast still reaches it. */
static void test_broadcast_backlog_goes_with_last_subscription(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *a = tc_new(f), *s = tc_new(f);
        const char *to = "x", *id = "nm";
        dbus_int32_t p = 0;

        tc_ack(a, 0, 0);
        assert_error(tc_call(a, "Subscribe", S, &to, S, &id, DBUS_TYPE_INT32, &p, END), NULL);
        tc_notify(s, "app", "*", "nm", "1", 0); /* a Broadcast nobody receives */
        wait_mark(a); /* the broker's idle Mark, left unacknowledged */
        settle(f);
        take_marks(a);
        assert_quiet(a);
        tc_register(a, "x", "nm", 0);
        g_usleep((VFIIPC_STALL_MS + 500) * 1000);
        tc_notify(s, "app", "x", "nm", "2", 0);
        settle(f);
        g_assert_cmpstr(take_deliver(a).json, ==, "2");
        assert_quiet(a);
        assert_quiet(s); /* no unicast error */
}

/* LIM-3, DLV-8, protocol.h "Remote peers": a connection that observes is local for good:
 * Remote1 is refused (AccessDenied) and nothing it sends that way is routed; a local registrant
 * cannot send as a remote peer either; and a remote connection gets no Broker1 method at all,
 * Ack, Bounce and Notify included, also when it leaves out the interface. */
static void test_remote_confinement_both_ways(fx_t *f, gconstpointer unused)
{
        NEEDS_SERVER(f);
        tc_t *o = tc_new(f), *l = tc_new(f), *r = tc_new(f);
        const char *to = "1", *x = "x", *id = "ext_q", *rid = "ext_r", *from = "kiosk";
        const char *json = "1";
        dbus_int32_t p = 0;
        dbus_uint32_t flags = 0, count = 0;
        dbus_uint64_t ref = 0;
        DBusMessage *m, *reply;
        DBusError err = DBUS_ERROR_INIT;

        tc_register(l, "x", "ext_q", 0); /* whom a wrongly admitted notification would reach */
        tc_observe(o);
        assert_error(tc_remote(o, true, "Register", S, &x, S, &id, DBUS_TYPE_INT32, &p, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_remote(o, true, "Notify", S, &from, S, &to, S, &id, S, &json, U, &flags,
                               DBUS_TYPE_UINT64, &ref, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_remote(l, true, "Notify", S, &from, S, &to, S, &id, S, &json, U, &flags,
                               DBUS_TYPE_UINT64, &ref, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_remote(l, true, "Unregister", S, &x, S, &id, END),
                     VFIIPC_ERROR_ACCESS_DENIED);

        assert_error(tc_remote(r, true, "Register", S, &x, S, &rid, DBUS_TYPE_INT32, &p, END),
                     NULL);
        assert_error(tc_call(r, "Ack", U, &count, DBUS_TYPE_UINT64, &ref, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_call(r, "Bounce", S, &from, S, &to, S, &id, S, &json, U, &flags,
                             DBUS_TYPE_UINT64, &ref, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_call(r, "Notify", S, &from, S, &to, S, &id, S, &json, U, &flags, END),
                     VFIIPC_ERROR_ACCESS_DENIED);
        assert_error(tc_call(r, "RemoveObserver", END), VFIIPC_ERROR_ACCESS_DENIED);
        m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH, NULL,
                                         "AddObserver");
        reply = dbus_connection_send_with_reply_and_block(r->c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        g_assert_null(reply);
        g_assert_cmpstr(err.name, ==, VFIIPC_ERROR_ACCESS_DENIED);
        dbus_error_free(&err);

        settle(f);
        assert_quiet(l); /* nothing refused was routed */
        assert_quiet(o); /* and nothing was observed */
        assert_quiet(r);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/broker/registry/pick-highest-priority",
                        test_registry_pick_highest_priority);
        g_test_add_func("/broker/registry/tie-goes-to-newest", test_registry_tie_goes_to_newest);
        g_test_add_func("/broker/registry/overwrite-scoped-per-owner",
                        test_registry_overwrite_scoped_per_owner);
        g_test_add_func("/broker/registry/broadcast-walks-one-id",
                        test_registry_broadcast_walks_one_id);
        g_test_add_func("/broker/registry/remove-and-remove-owner",
                        test_registry_remove_and_remove_owner);
        g_test_add_func("/broker/registry/pick-skips-tried", test_registry_pick_skips_tried);
        g_test_add_func("/broker/registry/limit-per-owner", test_registry_limit_per_owner);
        g_test_add_func("/broker/registry/many-ids", test_registry_many_ids);
        g_test_add_func("/broker/pending/find-take-evict", test_pending_ring_find_take_evict);
        g_test_add_func("/broker/pending/fingerprint-distinguishes-fields",
                        test_pending_fingerprint_distinguishes_fields);
        g_test_add_func("/broker/wire/matches-libdbus-bytes", test_wire_matches_libdbus_bytes);
        g_test_add_func("/broker/wire/serials-buffer-and-validation",
                        test_wire_serials_buffer_and_validation);

        SERVER_TEST("/broker/example/broadcast-reaches-all", test_example_broadcast_reaches_all);
        SERVER_TEST("/broker/example/one-goes-to-highest-priority",
                    test_example_one_goes_to_highest_priority);
        SERVER_TEST("/broker/example/named-goes-to-highest-of-receiver",
                    test_example_named_goes_to_highest_of_receiver);
        SERVER_TEST("/broker/example/named-single-receiver", test_example_named_single_receiver);
        SERVER_TEST("/broker/example/unknown-receiver-gives-unicast-error",
                    test_example_unknown_receiver_gives_unicast_error);
        SERVER_TEST("/broker/example/broadcast-without-receivers",
                    test_example_broadcast_without_receivers);
        SERVER_TEST("/broker/example/reregister-lower-priority",
                    test_example_reregister_lower_priority);
        SERVER_TEST("/broker/routing/tie-goes-to-newest-registration",
                    test_tie_goes_to_newest_registration);
        SERVER_TEST("/broker/routing/overwrite-scoped-per-connection",
                    test_overwrite_scoped_per_connection);
        SERVER_TEST("/broker/routing/broadcast-reaches-sender-and-each-registration",
                    test_broadcast_reaches_sender_and_each_registration);
        SERVER_TEST("/broker/routing/observers-each-see-each-delivery",
                    test_observers_each_see_each_delivery);
        SERVER_TEST("/broker/routing/order-of-one-sender-is-kept",
                    test_order_of_one_sender_is_kept);
        SERVER_TEST("/broker/bounce/goes-to-next-then-unicast-error",
                    test_bounce_goes_to_next_then_unicast_error);
        SERVER_TEST("/broker/bounce/one-reruns-priority-choice",
                    test_bounce_of_one_reruns_priority_choice);
        SERVER_TEST("/broker/bounce/foreign-or-unknown-ticket-is-ignored",
                    test_bounce_of_foreign_or_unknown_ticket_is_ignored);
        SERVER_TEST("/broker/bounce/gives-up-after-tries-max",
                    test_bounce_gives_up_after_tries_max);
        SERVER_TEST("/broker/bounce/after-submitter-left", test_bounce_after_submitter_left);
        SERVER_TEST("/broker/connection/disconnect-removes-registrations",
                    test_disconnect_removes_registrations);
        SERVER_TEST("/broker/input/register-refuses-keyword-receivers",
                    test_register_refuses_keyword_receivers);
        SERVER_TEST("/broker/input/invalid-calls-get-invalid-args",
                    test_invalid_calls_get_invalid_args);
        SERVER_TEST("/broker/input/noreply-invalid-notify-reaches-nobody",
                    test_noreply_invalid_notify_reaches_nobody);
        SERVER_TEST("/broker/input/unknown-method", test_unknown_method);
        SERVER_TEST("/broker/input/registration-limit-per-connection",
                    test_registration_limit_per_connection);
        SERVER_TEST("/broker/introspect/describes-broker", test_introspect_describes_broker);
        SERVER_TEST("/broker/access/name-cannot-be-taken", test_broker_name_cannot_be_taken);
        SERVER_TEST("/broker/access/forged-name-lost-ignored", test_forged_name_lost_ignored);
        SERVER_TEST("/broker/access/ack-huge-count-acknowledges-no-more-than-sent",
                    test_ack_huge_count_acknowledges_no_more_than_sent);
        SERVER_TEST("/broker/access/ack-shared-page", test_ack_shared_page);
        SERVER_TEST("/broker/routing/broadcast-by-sender", test_broadcast_by_sender);
        SERVER_TEST("/broker/routing/broadcast-fast-path", test_broadcast_fast_path);
        SERVER_TEST("/broker/routing/broadcast-idle-mark-follows-soon",
                    test_broadcast_idle_mark_follows_soon);
        SERVER_TEST("/broker/routing/broadcast-stalled-subscriber-falls-back",
                    test_broadcast_stalled_subscriber_falls_back);
        SERVER_TEST("/broker/routing/broadcast-backlog-goes-with-last-subscription",
                    test_broadcast_backlog_goes_with_last_subscription);
        REMOTE_TEST("/broker/remote/in-rules", test_remote_in_rules);
        REMOTE_TEST("/broker/remote/out-before-priority", test_remote_out_before_priority);
        REMOTE_TEST("/broker/remote/broadcast-once-and-return-dropped",
                    test_remote_broadcast_once_and_return_dropped);
        REMOTE_TEST("/broker/remote/return-reroutes", test_remote_return_reroutes);
        REMOTE_TEST("/broker/remote/unicast-error", test_remote_unicast_error);
        REMOTE_TEST("/broker/remote/registration-cap", test_remote_registration_cap);
        REMOTE_TEST("/broker/remote/connection-confined", test_remote_connection_confined);
        REMOTE_TEST("/broker/remote/confinement-both-ways", test_remote_confinement_both_ways);
        REMOTE_TEST("/broker/remote/policy-confines-gateway-user",
                    test_remote_policy_confines_gateway_user);
        return g_test_run();
}
