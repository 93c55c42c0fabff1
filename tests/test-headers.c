/* tests/test-headers.c — the public C header compiles on its own as strict C11 (-pedantic,
 * see tests/meson.build) and declares what the library exports. */
#include <vfiipc/notify.h>

#include <glib.h>

static void test_c_header_declares_api(void)
{
        /* Taking each function's address checks the declarations link against the library. */
        void (*fns[])(void) = {
                (void (*)(void))vfiipc_set_app_id,        (void (*)(void))vfiipc_get_app_id,
                (void (*)(void))vfiipc_notify,            (void (*)(void))vfiipc_notify_text,
                (void (*)(void))vfiipc_register,          (void (*)(void))vfiipc_unregister,
                (void (*)(void))vfiipc_unicast_error_add, (void (*)(void))vfiipc_unicast_error_remove,
                (void (*)(void))vfiipc_observer_add,      (void (*)(void))vfiipc_observer_remove,
                (void (*)(void))vfiipc_server_run,        (void (*)(void))vfiipc_server_new,
                (void (*)(void))vfiipc_server_start,      (void (*)(void))vfiipc_server_serve,
                (void (*)(void))vfiipc_server_stop,       (void (*)(void))vfiipc_server_free,
                (void (*)(void))vfiipc_bus_address,       (void (*)(void))vfiipc_version,
        };

        for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
                g_assert_nonnull(fns[i]);
        g_assert_cmpint(VFIIPC_ERR_CONFIG_SYNTAX, ==, -5);
        g_assert_cmpuint(VFIIPC_PARAM_MAX_BYTES, ==, 8u * 1024 * 1024);
        g_assert_nonnull(vfiipc_server_free(NULL) == NULL ? "ok" : NULL);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/headers/c-header-declares-api", test_c_header_declares_api);
        return g_test_run();
}
