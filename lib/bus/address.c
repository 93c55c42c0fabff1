/* lib/bus/address.c — the bus address rule (design.md), parsed with libdbus. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dbus/dbus.h>

#include "bus/address.h"
#include "bus/protocol.h"
#include "core/util.h"

int bus_address_get(char **ret)
{
        const char *env = getenv(VFIIPC_ENV_BUS_ADDRESS);
        const char *rt = getenv("XDG_RUNTIME_DIR");
        char *a = NULL;

        if (!isempty(env))
                a = strdup(env);
        else if (!isempty(rt) && rt[0] == '/') {
                /* Escape the path as D-Bus addresses require (',' ';' '=' and non-ASCII). */
                char *esc = dbus_address_escape_value(rt);
                if (!esc)
                        return -ENOMEM;
                if (asprintf(&a, "unix:path=%s/vfiipc/bus", esc) < 0)
                        a = NULL;
                dbus_free(esc);
        } else
                a = strdup("unix:path=/run/vfiipc/bus");
        if (!a)
                return -ENOMEM;
        *ret = a;
        return 0;
}

int bus_address_unix_path(const char *address, char **ret)
{
        DBusAddressEntry **entries = NULL;
        const char *path;
        int n = 0, r = 0;
        DBusError err;

        dbus_error_init(&err);
        if (!address || !dbus_parse_address(address, &entries, &n, &err)) {
                dbus_error_free(&err);
                return -EINVAL;
        }
        if (n > 0 && streq(dbus_address_entry_get_method(entries[0]), "unix") &&
            (path = dbus_address_entry_get_value(entries[0], "path"))) {
                char *p = strdup(path);
                if (!p)
                        r = -ENOMEM;
                else {
                        *ret = p;
                        r = 1;
                }
        }
        dbus_address_entries_free(entries);
        return r;
}
