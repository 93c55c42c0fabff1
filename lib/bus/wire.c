/* lib/bus/wire.c — vfiipc's per-notification messages in D-Bus wire format (see wire.h).
 *
 * Message = fixed header (endianness, type, flags, version, body length, serial), the header
 * field array a(yv), padding to 8, the body. Every value is aligned to its size relative to
 * the message start; the body starts 8-aligned, so that is also body-relative. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/wire.h"
#include "bus/protocol.h"
#include "core/log.h"

/* The buffer grows as needed; after an unusually large message it is given back. */
#define WIRE_KEEP_MAX (1024u * 1024u)

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WIRE_ENDIAN 'l'
#else
#define WIRE_ENDIAN 'B'
#endif

enum {
        WIRE_TYPE_METHOD_CALL = 1,         /* DBUS_MESSAGE_TYPE_METHOD_CALL */
        WIRE_TYPE_SIGNAL = 4,              /* DBUS_MESSAGE_TYPE_SIGNAL */
        WIRE_FLAG_NO_REPLY_EXPECTED = 0x1, /* set on signals, as dbus_message_new_signal() does */
        WIRE_FIELD_PATH = 1,
        WIRE_FIELD_INTERFACE = 2,
        WIRE_FIELD_MEMBER = 3,
        WIRE_FIELD_DESTINATION = 6,
        WIRE_FIELD_SIGNATURE = 8,
};

void wire_init(wire_t *w)
{
        *w = (wire_t){.serial = WIRE_SERIAL_FIRST};
}

void wire_done(wire_t *w)
{
        free(w->buf);
        wire_init(w);
}

static bool wire_reserve(wire_t *w, size_t n)
{
        size_t cap;
        char *p;

        if (w->oom)
                return false;
        if (w->len + n <= w->cap)
                return true;
        cap = w->cap ? w->cap : 512;
        while (cap < w->len + n)
                cap *= 2;
        p = realloc(w->buf, cap);
        if (!p) {
                w->oom = true;
                return false;
        }
        w->buf = p;
        w->cap = cap;
        return true;
}

static void put_align(wire_t *w, size_t a)
{
        size_t pad = (a - w->len % a) % a;

        if (pad && wire_reserve(w, pad)) {
                memset(w->buf + w->len, 0, pad);
                w->len += pad;
        }
}

static void put_bytes(wire_t *w, const void *p, size_t n)
{
        if (wire_reserve(w, n)) {
                memcpy(w->buf + w->len, p, n);
                w->len += n;
        }
}

static void put_u8(wire_t *w, uint8_t v)
{
        put_bytes(w, &v, 1);
}

static void put_u32(wire_t *w, uint32_t v)
{
        put_align(w, 4);
        put_bytes(w, &v, 4);
}

static void put_u64(wire_t *w, uint64_t v)
{
        put_align(w, 8);
        put_bytes(w, &v, 8);
}

/* 's' and 'o': length, bytes, NUL. Callers' strings are bounded far below 4 GiB (protocol.h). */
static void put_str(wire_t *w, const char *s)
{
        size_t n = strlen(s);

        put_u32(w, (uint32_t)n);
        put_bytes(w, s, n + 1);
}

/* 'g': one length byte, bytes, NUL. */
static void put_sig(wire_t *w, const char *s)
{
        put_u8(w, (uint8_t)strlen(s));
        put_bytes(w, s, strlen(s) + 1);
}

static void put_field(wire_t *w, uint8_t code, const char *type, const char *value)
{
        put_align(w, 8);
        put_u8(w, code);
        put_sig(w, type);
        if (type[0] == 'g')
                put_sig(w, value);
        else
                put_str(w, value);
}

/* Writes the fixed header and the header fields; the body follows. Both message kinds carry
 * NO_REPLY_EXPECTED: signals always (as dbus_message_new_signal() sets it), Notify by design. */
static void wire_begin(wire_t *w, uint8_t type, const char *path, const char *interface,
                       const char *dest, const char *member, const char *signature)
{
        /* dest NULL: a signal to every connection whose match rule selects it (Broadcast). */
        const uint8_t fixed[4] = {WIRE_ENDIAN, type, WIRE_FLAG_NO_REPLY_EXPECTED, 1};

        w->len = 0;
        w->oom = false;
        put_bytes(w, fixed, sizeof(fixed));
        put_u32(w, 0); /* body length, filled in by wire_end() */
        put_u32(w, w->serial);
        put_u32(w, 0); /* header field array length, filled in by wire_end() */
        put_field(w, WIRE_FIELD_PATH, "o", path);
        put_field(w, WIRE_FIELD_INTERFACE, "s", interface);
        put_field(w, WIRE_FIELD_MEMBER, "s", member);
        if (dest)
                put_field(w, WIRE_FIELD_DESTINATION, "s", dest);
        put_field(w, WIRE_FIELD_SIGNATURE, "g", signature);
        /* The header ends with the signature field; padding to 8 separates the body. */
        w->fields_end = w->len;
        put_align(w, 8);
        w->body_start = w->len;
}

static DBusMessage *wire_end(wire_t *w)
{
        DBusMessage *m = NULL;
        DBusError err;
        uint32_t v;

        if (!w->oom) {
                v = (uint32_t)(w->len - w->body_start);
                memcpy(w->buf + 4, &v, 4);
                v = (uint32_t)(w->fields_end - 16);
                memcpy(w->buf + 12, &v, 4);
                dbus_error_init(&err);
                m = dbus_message_demarshal(w->buf, (int)w->len, &err);
                if (!m) {
                        /* Our arguments come validated from D-Bus itself: this is a bug. */
                        nfy_log(LOG_ERR, "cannot build a message: %s", err.message);
                        dbus_error_free(&err);
                }
        }
        if (m && ++w->serial == 0)
                w->serial = WIRE_SERIAL_FIRST;
        if (w->cap > WIRE_KEEP_MAX) {
                free(w->buf);
                w->buf = NULL;
                w->cap = 0;
        }
        w->len = 0;
        return m;
}

static void wire_signal_begin(wire_t *w, const char *dest, const char *member,
                              const char *signature)
{
        wire_begin(w, WIRE_TYPE_SIGNAL, VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, dest, member,
                   signature);
}

DBusMessage *wire_notify(wire_t *w, const char *from, const char *to, const char *id,
                         const char *json, uint32_t flags)
{
        wire_begin(w, WIRE_TYPE_METHOD_CALL, VFIIPC_BROKER_PATH, VFIIPC_BROKER_INTERFACE,
                   VFIIPC_BROKER_NAME, "Notify", "ssssu");
        put_str(w, from);
        put_str(w, to);
        put_str(w, id);
        put_str(w, json);
        put_u32(w, flags);
        return wire_end(w);
}

DBusMessage *wire_deliver(wire_t *w, const char *dest, const char *from, const char *to,
                          const char *id, const char *json, uint32_t flags, const char *receiver,
                          uint64_t ticket)
{
        wire_signal_begin(w, dest, "Deliver", "ssssust");
        put_str(w, from);
        put_str(w, to);
        put_str(w, id);
        put_str(w, json);
        put_u32(w, flags);
        put_str(w, receiver);
        put_u64(w, ticket);
        return wire_end(w);
}

void wire_broadcast_interface(char buf[WIRE_BROADCAST_INTERFACE_SIZE], const char *id)
{
        uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, 64 bits */

        for (const unsigned char *p = (const unsigned char *)id; *p; p++)
                h = (h ^ *p) * 0x100000001b3u;
        snprintf(buf, WIRE_BROADCAST_INTERFACE_SIZE, "%sx%016" PRIx64,
                 VFIIPC_BROADCAST_INTERFACE_PREFIX, h);
}

DBusMessage *wire_broadcast(wire_t *w, const char *from, const char *to, const char *id,
                            const char *json, uint32_t flags)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE];

        wire_broadcast_interface(iface, id);
        wire_begin(w, WIRE_TYPE_SIGNAL, VFIIPC_BROADCAST_PATH, iface, NULL, "Broadcast", "ssssu");
        put_str(w, from);
        put_str(w, to);
        put_str(w, id);
        put_str(w, json);
        put_u32(w, flags);
        return wire_end(w);
}

const char *wire_broadcast_read(DBusMessage *m, const char **from, const char **to,
                                const char **id, const char **json, uint32_t *flags)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE];
        const char *have = dbus_message_get_interface(m);

        *from = *to = *id = *json = ""; /* for the caller's log line */
        if (!dbus_message_has_signature(m, "ssssu") ||
            !dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, from, DBUS_TYPE_STRING, to,
                                   DBUS_TYPE_STRING, id, DBUS_TYPE_STRING, json,
                                   DBUS_TYPE_UINT32, flags, DBUS_TYPE_INVALID))
                return "its arguments are not 'ssssu'";
        /* Addressed to one connection, it would reach it without the broker seeing it. */
        if (dbus_message_get_destination(m))
                return "it has a destination";
        if (strcmp(*to, "*") != 0)
                return "its destination (to) is not \"*\"";
        if (!**from)
                return "its sender ID (from) is empty";
        if (strnlen(*from, VFIIPC_ID_MAX + 1) > VFIIPC_ID_MAX ||
            strnlen(*id, VFIIPC_ID_MAX + 1) > VFIIPC_ID_MAX)
                return "an ID is too long";
        if (strnlen(*json, VFIIPC_PARAM_MAX + 1) > VFIIPC_PARAM_MAX)
                return "its JSON text is too long";
        /* Else it reached the subscribers of another ID than it names. */
        wire_broadcast_interface(iface, *id);
        if (!have || strcmp(have, iface) != 0)
                return "its interface is not its notification ID's";
        return NULL;
}

DBusMessage *wire_mark(wire_t *w, const char *dest, uint64_t mark)
{
        wire_signal_begin(w, dest, "Mark", "t");
        put_u64(w, mark);
        return wire_end(w);
}

DBusMessage *wire_observed(wire_t *w, const char *dest, const char *from, const char *to,
                           const char *id, uint32_t flags)
{
        wire_signal_begin(w, dest, "Observed", "sssu");
        put_str(w, from);
        put_str(w, to);
        put_str(w, id);
        put_u32(w, flags);
        return wire_end(w);
}

DBusMessage *wire_unicast_error(wire_t *w, const char *dest, const char *from, const char *to,
                                const char *id, const char *json, uint32_t flags)
{
        wire_signal_begin(w, dest, "UnicastError", "ssssu");
        put_str(w, from);
        put_str(w, to);
        put_str(w, id);
        put_str(w, json);
        put_u32(w, flags);
        return wire_end(w);
}
