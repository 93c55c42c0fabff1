/* lib/bus/loop.h — a small poll(2) main loop for one libdbus connection.
 *
 * Why: libdbus only writes a message sent from another thread promptly when the connection
 * has main-loop integration; with dbus_connection_read_write_dispatch(-1) a send from an API
 * thread can sit queued until something arrives. This loop installs watch, timeout, wakeup
 * and dispatch-status functions, so any thread may send and the loop thread dispatches.
 *
 * Threads: bus_loop_run() and bus_loop_free() on the loop thread only (one at a time: a run
 * that returned may be followed by one on another thread); bus_loop_quit() from
 * any thread, also from a signal handler. */
#pragma once

#include <dbus/dbus.h>

typedef struct bus_loop bus_loop_t;

/* Takes over the connection's watch/timeout/wakeup/dispatch-status functions. */
int bus_loop_new(DBusConnection *c, bus_loop_t **ret);

/* Removes the functions again; NULL-safe; returns NULL. The loop's memory is freed with the
 * connection, as a thread sending on it may still be in one of them (loop.c). */
bus_loop_t *bus_loop_free(bus_loop_t *l);

/* Dispatches until bus_loop_quit() (returns 0), until the idle hook returns BUS_LOOP_YIELD
 * (returns 1; running it again goes on where it left off), or until the connection is gone,
 * after its queued messages (including the Disconnected signal) were dispatched (returns
 * -ECONNRESET). */
int bus_loop_run(bus_loop_t *l);

/* Makes bus_loop_run() return 0 soon. Async-signal-safe. */
void bus_loop_quit(bus_loop_t *l);

/* A hook the loop thread calls whenever it has dispatched everything and is about to wait: it
 * returns how many ms later it wants to be called again at the latest (-1: only on the next
 * wakeup), or BUS_LOOP_YIELD to make bus_loop_run() return 1 (the server moves its loop to a
 * new thread this way, lib/broker/server.c). Set before bus_loop_run(); NULL removes it. The
 * client acknowledges deliveries from here (lib/bus/protocol.h, Ack). */
#define BUS_LOOP_YIELD (-2)
typedef int (*bus_loop_idle_fn)(void *data);
void bus_loop_set_idle(bus_loop_t *l, bus_loop_idle_fn fn, void *data);

/* While more than `bytes` (> 0) wait in the connection's outgoing queue, the loop dispatches
 * nothing and only writes: back-pressure, so when the bus takes our messages slower than we
 * make them, the backlog waits in the bus rather than in our heap (libdbus keeps its list
 * links' pool at its peak for good). What libdbus reads meanwhile is bounded apart, by
 * dbus_connection_set_max_received_size(). Set before bus_loop_run(); 0 (default): no limit. */
void bus_loop_set_output_max(bus_loop_t *l, long bytes);

/* Wakes the loop once (it re-checks dispatch status and its watches). Any thread. */
void bus_loop_wakeup(bus_loop_t *l);
