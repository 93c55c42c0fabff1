/* tests/fuzz-broker.c — libFuzzer target for the broker's checks of a method call
 * (broker_check_call(): member, signature, ID lengths, receiver IDs, the JSON text) on D-Bus
 * messages demarshalled from the fuzzer's bytes, as a client could send them. Built with
 * -Dfuzz=true (see tests/meson.build); seeds (marshalled calls) in tests/corpus/broker/. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <dbus/dbus.h>

#include "broker/broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        DBusMessage *m, *reply;
        DBusError err;
        int r;

        if (size > INT_MAX)
                return 0;
        dbus_error_init(&err);
        m = dbus_message_demarshal((const char *)data, (int)size, &err);
        if (!m) {
                dbus_error_free(&err);
                return 0;
        }
        r = broker_check_call(m, &err);
        if (r == -EINVAL) {
                /* The refusal is what the caller gets as an error reply: it must make one. */
                if (!dbus_error_is_set(&err) || !dbus_validate_error_name(err.name, NULL) ||
                    !dbus_validate_utf8(err.message, NULL))
                        __builtin_trap();
                reply = dbus_message_new_error(m, err.name, err.message);
                if (!reply)
                        __builtin_trap();
                dbus_message_unref(reply);
                dbus_error_free(&err);
        } else if ((r != 0 && r != -ENOENT) || dbus_error_is_set(&err)) {
                __builtin_trap();
        }
        dbus_message_unref(m);
        return 0;
}
