/* lib/bus/wire.h — the messages sent once per notification (the client's Notify, the broker's
 * Deliver, Observed and UnicastError) written in D-Bus wire format and turned into a DBusMessage with dbus_message_demarshal().
 *
 * Why: libdbus rewrites the SIGNATURE header field after every dbus_message_append_args()
 * argument; for a 7-argument Deliver that measured ~20 µs per message, the broker's largest
 * cost per notification (and most of a sender's, for the 5-argument Notify), against ~3 µs for demarshalling the same bytes (which validates them
 * fully, so nothing malformed can leave). The layout follows the D-Bus specification, "Message
 * Format"; the header fields come in libdbus's order (PATH, INTERFACE, MEMBER, DESTINATION,
 * SIGNATURE), so the bytes equal what libdbus itself would send (tests compare them).
 *
 * Serials: a demarshalled message keeps the serial written into it, and libdbus numbers only
 * messages without one, so these signals take theirs from the upper half of the 32-bit range
 * (libdbus counts its own from 1 for the broker's few replies): nothing answers signals, and
 * the numbers stay distinct for anyone reading dbus-monitor.
 *
 * Threads: a wire_t belongs to one thread at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dbus/dbus.h>

#include "bus/protocol.h"

#define WIRE_SERIAL_FIRST 0x80000000u

typedef struct wire {
        char *buf; /* reused from message to message */
        size_t len, cap;
        size_t fields_end, body_start; /* of the message being written */
        uint32_t serial;               /* next serial to use, ≥ WIRE_SERIAL_FIRST */
        bool oom;
} wire_t;

void wire_init(wire_t *w);
void wire_done(wire_t *w); /* frees the buffer; w can be initialised again */

/* Each returns a new message (unref it) addressed to dest, on VFIIPC_CLIENT_PATH and
 * VFIIPC_CLIENT_INTERFACE, with the arguments of lib/bus/protocol.h; NULL when out of memory or
 * when an argument is not valid for D-Bus (not UTF-8, bad destination), which is logged. */
/* Notify(from, to, id, json, flags) to the broker, NO_REPLY_EXPECTED. Same return rules. */
DBusMessage *wire_notify(wire_t *w, const char *from, const char *to, const char *id,
                         const char *json, uint32_t flags);
DBusMessage *wire_deliver(wire_t *w, const char *dest, const char *from, const char *to,
                          const char *id, const char *json, uint32_t flags, const char *receiver,
                          uint64_t ticket);
/* Broadcast(from, to, id, json, flags) without destination, on VFIIPC_BROADCAST_PATH and the
 * notification ID's broadcast interface (protocol.h "Broadcasts by the bus"). */
DBusMessage *wire_broadcast(wire_t *w, const char *from, const char *to, const char *id,
                            const char *json, uint32_t flags);
/* The interface a notification ID's Broadcast signals use: the prefix and a 64-bit hash. */
#define WIRE_BROADCAST_INTERFACE_SIZE (sizeof(VFIIPC_BROADCAST_INTERFACE_PREFIX) + 17)
void wire_broadcast_interface(char buf[WIRE_BROADCAST_INTERFACE_SIZE], const char *id);
/* A received Broadcast's arguments (pointing into m) and checks (protocol.h "Broadcasts by the
 * bus"), the same for the broker and the library: signature ssssu, no destination, the ID's own
 * interface, to "*", every limit kept. The JSON text is checked by whoever parses it. NULL when
 * it may be taken, else why not (the strings are then "" where unread). */
const char *wire_broadcast_read(DBusMessage *m, const char **from, const char **to,
                                const char **id, const char **json, uint32_t *flags);
DBusMessage *wire_mark(wire_t *w, const char *dest, uint64_t mark);
DBusMessage *wire_observed(wire_t *w, const char *dest, const char *from, const char *to,
                           const char *id, uint32_t flags);
DBusMessage *wire_unicast_error(wire_t *w, const char *dest, const char *from, const char *to,
                                const char *id, const char *json, uint32_t flags);
