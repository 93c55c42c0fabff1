/* tests/test-notify-routing.c — the routing rules end to end through the library, one process
 * per application (vfiipc-peer), each test on its own private server.
 * notification-service.md §3–4, legacy-api.md §6. */
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "peer.h"
#include "server-fixture.h"

#define WAIT_MS 5000 /* generous deadline for something that must arrive */
#define QUIET_MS 300 /* how long we watch for something that must not arrive */

static void fixture_setup(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_start(f);
}

static void fixture_teardown(server_fixture_t *f, gconstpointer unused)
{
        server_fixture_stop(f);
}

/* Waits for one "deliver" line and checks it field by field. */
static void expect_deliver(peer_t *p, const char *receiver, const char *from, const char *to,
                           const char *id, const char *json)
{
        char *line = peer_wait(p, "deliver\t", WAIT_MS);
        char *want = g_strdup_printf("deliver\t%s\t%s\t%s\t%s\t%s\t0", receiver, from, to, id, json);

        g_assert_nonnull(line);
        g_assert_cmpstr(line, ==, want);
        g_free(line);
        g_free(want);
}

static void expect_observed(peer_t *p, const char *from, const char *to, const char *id)
{
        char *line = peer_wait(p, "observed\t", WAIT_MS);
        char *want = g_strdup_printf("observed\t%s\t%s\t%s\t0", from, to, id);

        g_assert_nonnull(line);
        g_assert_cmpstr(line, ==, want);
        g_free(line);
        g_free(want);
}

static gint cmp_strp(gconstpointer a, gconstpointer b)
{
        return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Collects n observer lines and returns their `to` fields sorted, joined by ",". */
static char *observed_tos(peer_t *p, unsigned n)
{
        GPtrArray *tos = g_ptr_array_new_with_free_func(g_free);
        GString *s = g_string_new(NULL);

        for (unsigned i = 0; i < n; i++) {
                char *line = peer_wait(p, "observed\t", WAIT_MS);
                char **f;
                g_assert_nonnull(line);
                f = g_strsplit(line, "\t", -1);
                g_ptr_array_add(tos, g_strdup(f[2]));
                g_strfreev(f);
                g_free(line);
        }
        g_ptr_array_sort(tos, cmp_strp);
        for (guint i = 0; i < tos->len; i++)
                g_string_append_printf(s, "%s%s", i ? "," : "", (char *)g_ptr_array_index(tos, i));
        g_ptr_array_unref(tos);
        return g_string_free(s, FALSE);
}

static int notify(peer_t *p, const char *to, const char *id, const char *json)
{
        return peer_cmd(p, "notify", to, id, json, "", "0", NULL);
}

/* §4.6, row by row: three registrations for "status", an observer and a sender. */
static void test_routing_table(server_fixture_t *f, gconstpointer unused)
{
        peer_t *p1 = peer_new("shell"), *p2 = peer_new("shell"), *p3 = peer_new("pay");
        peer_t *snd = peer_new("sender"), *obs = peer_new("watcher");
        char *tos;

        g_assert_cmpint(peer_cmd(p1, "register", "status", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(p2, "register", "status", "10", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(p3, "register", "status", "5", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(obs, "observe", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(snd, "errors", NULL), ==, 0);

        /* DLV-1, DLV-5: "*" reaches a, b, c with to "*"; N observer calls (G-64). */
        g_assert_cmpint(notify(snd, "*", "status", "{\"v\":1}"), ==, 0);
        expect_deliver(p1, "-", "sender", "*", "status", "{\"v\":1}");
        expect_deliver(p2, "-", "sender", "*", "status", "{\"v\":1}");
        expect_deliver(p3, "-", "sender", "*", "status", "{\"v\":1}");
        tos = observed_tos(obs, 3);
        g_assert_cmpstr(tos, ==, "pay,shell,shell"); /* DLV-6: resolved receivers */
        g_free(tos);

        /* DLV-2: "1" → the highest priority only (b). */
        g_assert_cmpint(notify(snd, "1", "status", "2"), ==, 0);
        expect_deliver(p2, "-", "sender", "1", "status", "2");
        expect_observed(obs, "sender", "shell", "status");

        /* Named: highest among a and b. */
        g_assert_cmpint(notify(snd, "shell", "status", "3"), ==, 0);
        expect_deliver(p2, "-", "sender", "shell", "status", "3");
        expect_observed(obs, "sender", "shell", "status");

        g_assert_cmpint(notify(snd, "pay", "status", "4"), ==, 0);
        expect_deliver(p3, "-", "sender", "pay", "status", "4");
        expect_observed(obs, "sender", "pay", "status");

        /* DLV-7, DLV-9: nobody → observer with empty to, unicast error to the sender. */
        g_assert_cmpint(notify(snd, "kiosk", "status", "[5]"), ==, 0);
        {
                char *line = peer_wait(snd, "error\t", WAIT_MS);
                g_assert_cmpstr(line, ==, "error\tsender\tkiosk\tstatus\t[5]\t0"); /* DLV-10 */
                g_free(line);
        }
        expect_observed(obs, "sender", "", "status");

        /* Broadcast without receivers: observer "", no unicast error (DLV-9). */
        g_assert_cmpint(notify(snd, "*", "other", "null"), ==, 0);
        expect_observed(obs, "sender", "", "other");
        g_assert_cmpuint(peer_count(snd, "error\t", QUIET_MS), ==, 0);

        /* Nothing else arrived anywhere. */
        g_assert_cmpuint(peer_count(p1, "deliver\t", 0), ==, 0);
        g_assert_cmpuint(peer_count(p2, "deliver\t", 0), ==, 0);
        g_assert_cmpuint(peer_count(p3, "deliver\t", 0), ==, 0);

        /* REGS-1: b re-registered with priority −1 is replaced; "1" now goes to c. */
        g_assert_cmpint(peer_cmd(p2, "register", "status", "-1", "", NULL), ==, 0);
        g_assert_cmpint(notify(snd, "1", "status", "6"), ==, 0);
        expect_deliver(p3, "-", "sender", "1", "status", "6");
        g_assert_cmpuint(peer_count(p2, "deliver\t", QUIET_MS), ==, 0);

        peer_free(p1);
        peer_free(p2);
        peer_free(p3);
        peer_free(snd);
        peer_free(obs);
}

/* DLV-3, G-72: equal priorities → the most recently created or replaced registration. */
static void test_tie_goes_to_newest(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new("app"), *b = peer_new("app"), *s = peer_new("s");

        g_assert_cmpint(peer_cmd(a, "register", "job", "3", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(b, "register", "job", "3", "", NULL), ==, 0);
        g_assert_cmpint(notify(s, "1", "job", "1"), ==, 0);
        expect_deliver(b, "-", "s", "1", "job", "1");
        g_assert_cmpint(notify(s, "app", "job", "2"), ==, 0);
        expect_deliver(b, "-", "s", "app", "job", "2");

        g_assert_cmpint(peer_cmd(a, "register", "job", "3", "", NULL), ==, 0); /* replaced: newest */
        g_assert_cmpint(notify(s, "1", "job", "3"), ==, 0);
        expect_deliver(a, "-", "s", "1", "job", "3");
        g_assert_cmpuint(peer_count(b, "deliver\t", QUIET_MS), ==, 0);
        g_assert_cmpuint(peer_count(a, "deliver\t", 0), ==, 0);
        peer_free(a);
        peer_free(b);
        peer_free(s);
}

/* REG-3, G-61: registering (ID, receiver) again in one process replaces, never duplicates. */
static void test_register_twice_replaces(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new("app");

        g_assert_cmpint(peer_cmd(a, "register", "x", "1", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "register", "x", "7", "", NULL), ==, 0);
        g_assert_cmpint(notify(a, "*", "x", "true"), ==, 0);
        expect_deliver(a, "-", "app", "*", "x", "true");
        g_assert_cmpuint(peer_count(a, "deliver\t", QUIET_MS), ==, 0);
        peer_free(a);
}

/* DLV-4, G-73: a broadcast reaches the sender and each of its registrations. */
static void test_broadcast_reaches_sender_and_each_registration(server_fixture_t *f,
                                                                 gconstpointer unused)
{
        peer_t *a = peer_new("me");
        char *l1, *l2;

        g_assert_cmpint(peer_cmd(a, "register", "evt", "0", "alpha", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "register", "evt", "0", "beta", NULL), ==, 0);
        g_assert_cmpint(notify(a, "*", "evt", "{}"), ==, 0);
        l1 = peer_wait(a, "deliver\t", WAIT_MS);
        l2 = peer_wait(a, "deliver\t", WAIT_MS);
        g_assert_nonnull(l1);
        g_assert_nonnull(l2);
        if (strcmp(l1, l2) > 0) {
                char *t = l1;
                l1 = l2;
                l2 = t;
        }
        g_assert_cmpstr(l1, ==, "deliver\talpha\tme\t*\tevt\t{}\t0");
        g_assert_cmpstr(l2, ==, "deliver\tbeta\tme\t*\tevt\t{}\t0");
        g_free(l1);
        g_free(l2);

        /* A named unicast reaches only the matching registration of the process. */
        g_assert_cmpint(notify(a, "beta", "evt", "1"), ==, 0);
        expect_deliver(a, "beta", "me", "beta", "evt", "1");
        g_assert_cmpuint(peer_count(a, "deliver\t", QUIET_MS), ==, 0);
        peer_free(a);
}

/* G-65, NTF-4, REG-7: calls that need an application ID before one is set. */
static void test_app_id_required(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new(NULL), *r = peer_new("rcv");

        g_assert_cmpint(notify(a, "rcv", "x", "1"), ==, -2);
        g_assert_cmpint(peer_cmd(a, "register", "x", "0", "", NULL), ==, -2);
        g_assert_cmpint(peer_cmd(a, "register", "x", "0", "1", NULL), ==, -2);
        g_assert_cmpint(peer_cmd(a, "register", "x", "0", "*", NULL), ==, -2);
        /* Impersonation needs no own ID (ADR-3). */
        g_assert_cmpint(peer_cmd(r, "register", "x", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "notify", "rcv", "x", "1", "ctrl", "0", NULL), ==, 0);
        expect_deliver(r, "-", "ctrl", "rcv", "x", "1");
        g_assert_cmpint(peer_cmd(a, "register", "y", "0", "other", NULL), ==, 0);
        /* "", "1" and "*" leave the process without an ID (APPID-3). */
        g_assert_cmpint(peer_cmd(a, "appid", "*", NULL), ==, 0);
        g_assert_cmpint(notify(a, "rcv", "x", "1"), ==, -2);
        peer_free(a);
        peer_free(r);
}

/* DLV-9, UE-2, G-60, G-75: "1", a name and "" without receivers; data and flags unchanged. */
static void test_unicast_errors(server_fixture_t *f, gconstpointer unused)
{
        peer_t *s = peer_new("s");
        char *line;

        g_assert_cmpint(peer_cmd(s, "errors", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(s, "errors", NULL), ==, 0); /* UE-5: same pair once */
        g_assert_cmpint(peer_cmd(s, "notify", "1", "none", "{\"a\":[1,2]}", "", "4294967295",
                                 NULL), ==, 0);
        line = peer_wait(s, "error\t", WAIT_MS);
        g_assert_cmpstr(line, ==, "error\ts\t1\tnone\t{\"a\":[1,2]}\t4294967295");
        g_free(line);
        g_assert_cmpint(peer_cmd(s, "notify", "", "none", "0", "as-other", "7", NULL), ==, 0);
        line = peer_wait(s, "error\t", WAIT_MS);
        g_assert_cmpstr(line, ==, "error\tas-other\t\tnone\t0\t7");
        g_free(line);
        g_assert_cmpuint(peer_count(s, "error\t", QUIET_MS), ==, 0);

        /* UE-6: removed callbacks are not called any more. */
        g_assert_cmpint(peer_cmd(s, "noerrors", NULL), ==, 0);
        g_assert_cmpint(notify(s, "1", "none", "0"), ==, 0);
        g_assert_cmpuint(peer_count(s, "error\t", QUIET_MS), ==, 0);
        peer_free(s);
}

/* REGS-3, G-68: registrations vanish with their process. */
static void test_registrations_vanish_with_process(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new("gone"), *s = peer_new("s");
        char *line;

        g_assert_cmpint(peer_cmd(a, "register", "ping", "0", "", NULL), ==, 0);
        g_assert_cmpint(notify(s, "gone", "ping", "1"), ==, 0);
        expect_deliver(a, "-", "s", "gone", "ping", "1");
        peer_free(a);
        g_assert_cmpint(peer_cmd(s, "errors", NULL), ==, 0);
        /* The broker learns of the disconnect asynchronously; retry until it has. */
        for (int i = 0;; i++) {
                g_assert_cmpint(i, <, 50);
                g_assert_cmpint(notify(s, "gone", "ping", "2"), ==, 0);
                line = peer_wait(s, "error\t", 1000);
                if (line)
                        break;
        }
        g_assert_cmpstr(line, ==, "error\ts\tgone\tping\t2\t0");
        g_free(line);
        peer_free(s);
}

/* UNREG-1: unregistering removes the registration; others of the process stay. */
static void test_unregister(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new("a"), *s = peer_new("s");

        g_assert_cmpint(peer_cmd(a, "register", "one", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "register", "two", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "unregister", "one", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "unregister", "never", "", NULL), ==, 0); /* UNREG-6 */
        g_assert_cmpint(peer_cmd(s, "errors", NULL), ==, 0);
        g_assert_cmpint(notify(s, "a", "one", "1"), ==, 0);
        g_assert_cmpint(notify(s, "a", "two", "2"), ==, 0);
        expect_deliver(a, "-", "s", "a", "two", "2");
        g_assert_cmpuint(peer_count(a, "deliver\t", QUIET_MS), ==, 0);
        {
                char *line = peer_wait(s, "error\t", WAIT_MS);
                g_assert_cmpstr(line, ==, "error\ts\ta\tone\t1\t0");
                g_free(line);
        }
        peer_free(a);
        peer_free(s);
}

/* OBS-6: an unregistered observer hears nothing more; observers need no app ID (G-64). */
static void test_observer_unregister(server_fixture_t *f, gconstpointer unused)
{
        peer_t *o = peer_new(NULL), *s = peer_new("s");

        g_assert_cmpint(peer_cmd(o, "observe", NULL), ==, 0);
        g_assert_cmpint(notify(s, "*", "x", "1"), ==, 0);
        expect_observed(o, "s", "", "x");
        g_assert_cmpint(peer_cmd(o, "unobserve", NULL), ==, 0);
        g_assert_cmpint(notify(s, "*", "x", "1"), ==, 0);
        g_assert_cmpuint(peer_count(o, "observed\t", QUIET_MS), ==, 0);
        peer_free(o);
        peer_free(s);
}

/* G-60, G-74: the empty notification ID is an ordinary ID; IDs are case-sensitive. */
static void test_empty_and_case_sensitive_ids(server_fixture_t *f, gconstpointer unused)
{
        peer_t *a = peer_new("a"), *s = peer_new("s");

        g_assert_cmpint(peer_cmd(a, "register", "", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(a, "register", "Job", "0", "", NULL), ==, 0);
        g_assert_cmpint(notify(s, "a", "", "1"), ==, 0);
        expect_deliver(a, "-", "s", "a", "", "1");
        g_assert_cmpint(notify(s, "*", "job", "2"), ==, 0);
        g_assert_cmpint(notify(s, "A", "Job", "3"), ==, 0);
        g_assert_cmpuint(peer_count(a, "deliver\t", QUIET_MS), ==, 0);
        peer_free(a);
        peer_free(s);
}

/* SRV-2, REG-6, NTF-4: without a server, calls fail with NOTIFY_ERR_SERVER. */
static void test_no_server(void)
{
        char *dir = g_dir_make_tmp("vfiipc-none-XXXXXX", NULL);
        char *addr = g_strdup_printf("unix:path=%s/bus", dir);
        peer_t *a;

        g_setenv("VFIIPC_BUS_ADDRESS", addr, TRUE);
        a = peer_new("a");
        g_assert_cmpint(peer_cmd(a, "register", "x", "0", "", NULL), ==, -1);
        g_assert_cmpint(notify(a, "*", "x", "1"), ==, -1);
        g_assert_cmpint(peer_cmd(a, "observe", NULL), ==, -1);
        g_assert_cmpint(peer_cmd(a, "unregister", "x", "", NULL), ==, 0); /* UNREG-6 */
        peer_free(a);
        g_rmdir(dir);
        g_free(dir);
        g_free(addr);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) \
        g_test_add(path, server_fixture_t, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/routing/table-of-4.6", test_routing_table);
        ADD("/routing/tie-goes-to-newest", test_tie_goes_to_newest);
        ADD("/routing/register-twice-replaces", test_register_twice_replaces);
        ADD("/routing/broadcast-reaches-sender-and-each-registration",
            test_broadcast_reaches_sender_and_each_registration);
        ADD("/routing/app-id-required", test_app_id_required);
        ADD("/routing/unicast-errors", test_unicast_errors);
        ADD("/routing/registrations-vanish-with-process", test_registrations_vanish_with_process);
        ADD("/routing/unregister", test_unregister);
        ADD("/routing/observer-unregister", test_observer_unregister);
        ADD("/routing/empty-and-case-sensitive-ids", test_empty_and_case_sensitive_ids);
        g_test_add_func("/routing/no-server", test_no_server);
        return g_test_run();
}
