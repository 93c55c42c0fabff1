/* tests/test-c-api.c — a C program that uses only the public C API <vfiipc/notify.h>: echo
 * with jansson values, observer, unicast error, identity. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <vfiipc/notify.h>

#include "server-fixture.h"

static server_fixture_t server;
static atomic_int got, observed, failed;
static json_t *got_param;
static char got_from[64], got_to[64];

static void on_reply(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        g_strlcpy(got_from, from, sizeof(got_from));
        g_strlcpy(got_to, to, sizeof(got_to));
        json_decref(got_param);
        got_param = json_deep_copy(param);
        atomic_fetch_add(&got, 1);
}

static void on_observe(void *data, const char *from, const char *to, const char *id,
                       unsigned flags)
{
        if (strcmp(id, "c.echo") == 0 && strcmp(to, "c-app") == 0 && flags == 3)
                atomic_fetch_add(&observed, 1);
}

static void on_error(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        if (strcmp(to, "nobody") == 0 && json_is_true(json_object_get(param, "x")))
                atomic_fetch_add(&failed, 1);
}

static int wait_for(atomic_int *v, int want)
{
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

        while (atomic_load(v) < want && g_get_monotonic_time() < deadline)
                g_usleep(1000);
        return atomic_load(v);
}

static void test_c_api_round_trip(void)
{
        json_t *v = json_pack("{s:s,s:I,s:[b,n,f]}", "s", "\xc3\xa4\n\"", "big",
                              (json_int_t)INT64_MAX, "a", 1, 2.5);
        char *id;

        id = vfiipc_get_app_id();
        g_assert_cmpstr(id, ==, "");
        free(id);
        g_assert_cmpint(vfiipc_notify("*", "c.echo", v, 0, NULL), ==, VFIIPC_ERR_APP_ID);
        vfiipc_set_app_id("c-app");
        id = vfiipc_get_app_id();
        g_assert_cmpstr(id, ==, "c-app");
        free(id);

        g_assert_cmpint(vfiipc_register("c.echo", on_reply, NULL, 3, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_observer_add(on_observe, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_unicast_error_add(on_error, NULL), ==, VFIIPC_OK);

        g_assert_cmpint(vfiipc_notify("c-app", "c.echo", v, 3, "someone"), ==, VFIIPC_OK);
        g_assert_cmpint(wait_for(&got, 1), ==, 1);
        g_assert_cmpstr(got_from, ==, "someone");
        g_assert_cmpstr(got_to, ==, "c-app");
        g_assert_true(json_equal(got_param, v));
        g_assert_cmpint(wait_for(&observed, 1), ==, 1);

        g_assert_cmpint(vfiipc_notify_text("nobody", "c.none", "{\"x\":true}", 0, NULL), ==,
                        VFIIPC_OK);
        g_assert_cmpint(wait_for(&failed, 1), ==, 1);

        /* NULL param travels as JSON null. */
        g_assert_cmpint(vfiipc_notify("1", "c.echo", NULL, 0, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(wait_for(&got, 2), ==, 2);
        g_assert_true(json_is_null(got_param));

        g_assert_cmpint(vfiipc_unregister("c.echo", on_reply, NULL, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_observer_remove(on_observe, NULL), ==, VFIIPC_OK);
        g_assert_cmpint(vfiipc_unicast_error_remove(NULL, NULL), ==, VFIIPC_OK);
        g_assert_cmpstr(vfiipc_version(), !=, "");
        json_decref(v);
        json_decref(got_param);
}

int main(int argc, char **argv)
{
        int r;

        g_test_init(&argc, &argv, NULL);
        server_fixture_start(&server);
        g_test_add_func("/c-api/round-trip", test_c_api_round_trip);
        r = g_test_run();
        server_fixture_stop(&server);
        return r;
}
