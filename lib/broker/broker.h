/* lib/broker/broker.h — the broker object on the private bus: registrations, routing,
 * observers, unicast errors, bounces (notification-service.md §3–4, lib/bus/protocol.h).
 *
 * Threads: everything on the loop thread that dispatches the broker's connection. */
#pragma once

#include <stdint.h>

#include <dbus/dbus.h>

#include "remote/whitelist.h"

typedef struct broker broker_t;

/* Serves VFIIPC_BROKER_PATH (interface VFIIPC_BROKER_INTERFACE and
 * org.freedesktop.DBus.Introspectable) on c, and watches NameOwnerChanged so that a client's
 * registrations vanish with its connection (REGS-3). c must be registered on the bus and own
 * VFIIPC_BROKER_NAME already. wl may be NULL (no remote access); the broker does not own it. */
int broker_new(DBusConnection *c, const whitelist_t *wl, broker_t **ret);

/* The server tells the broker whenever it has read everything the bus had for it: stall
 * times (protocol.h, Ack) count only from such moments on, so a broker that lags behind a
 * flood does not take the receivers whose Acks it has not read yet for stalled ones; and
 * Marks (protocol.h) due by then go out. Returns in how many ms (>= 1) the broker wants to be
 * told again if nothing else happens, for the next Mark due, or -1: not before it is busy. */
int broker_caught_up(broker_t *b);

/* How many method calls and Broadcasts it has taken in (the server trims its heap once this
 * stops changing). */
uint64_t broker_n_handled(const broker_t *b);

/* Unregisters the object path and filters; NULL-safe; returns NULL. */
broker_t *broker_free(broker_t *b);

/* The checks the broker makes on a method call before it acts on one (member and interface,
 * exact signature, ID lengths, receiver IDs, the JSON text), made without a broker: 0 when it
 * would act on m; -ENOENT when m calls none of its methods; -EINVAL when it would refuse m,
 * with the error it would answer in error (may be NULL). Whether the caller may call Broker1
 * (a remote peer may not) depends on state and is not checked. Any thread (fuzz-broker). */
int broker_check_call(DBusMessage *m, DBusError *error);
