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

/* How many method calls it has handled so far (the server trims its heap once this stops
 * changing). */
uint64_t broker_n_handled(const broker_t *b);

/* Unregisters the object path and filters; NULL-safe; returns NULL. */
broker_t *broker_free(broker_t *b);
