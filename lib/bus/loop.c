/* lib/bus/loop.c — poll(2) main-loop integration for one libdbus connection (see loop.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "bus/loop.h"
#include "core/util.h"

struct timer {
        DBusTimeout *timeout;
        int64_t due_ms;
};

struct bus_loop {
        DBusConnection *conn;
        int wake_fd;
        atomic_bool quit;
        atomic_bool woken; /* an eventfd write is pending: later wakeups are free */
        bool self_woken;   /* loop thread only: a wakeup it asked for itself (loop_wake) */
        pthread_mutex_t lock; /* guards watches and timers; never held across libdbus calls */
        GPtrArray *watches;   /* DBusWatch * */
        GArray *timers;       /* struct timer */
        bus_loop_idle_fn idle; /* loop thread only */
        void *idle_data;
        long output_max; /* bus_loop_set_output_max(); 0: none */
};

void bus_loop_set_idle(bus_loop_t *l, bus_loop_idle_fn fn, void *data)
{
        if (!l)
                return;
        l->idle = fn;
        l->idle_data = data;
}

void bus_loop_set_output_max(bus_loop_t *l, long bytes)
{
        if (l)
                l->output_max = bytes > 0 ? bytes : 0;
}

/* Too much waits to be written: dispatching more would only queue more (output_max). Not once
 * disconnected, when nothing gets written any more but the Disconnected signal must come. */
static bool output_full(const bus_loop_t *l)
{
        return l->output_max && dbus_connection_get_outgoing_size(l->conn) > l->output_max &&
               dbus_connection_get_is_connected(l->conn);
}

void bus_loop_wakeup(bus_loop_t *l)
{
        uint64_t one = 1;

        /* Coalesced: a burst of sends costs one eventfd write and one wakeup, not one each. */
        if (l && !atomic_exchange(&l->woken, true))
                (void)!write(l->wake_fd, &one, sizeof(one));
}

/* The loop the calling thread is running, if any. */
static __thread bus_loop_t *loop_here;

/* A wakeup libdbus asks for. On the loop thread itself (it reads, and the dispatch status
 * changes; it sends, and the write watch toggles) the eventfd round trip would only cost a
 * write, a poll and a read per message: the loop looks again before it waits instead. */
static void loop_wake(bus_loop_t *l)
{
        if (loop_here == l)
                l->self_woken = true;
        else
                bus_loop_wakeup(l);
}

void bus_loop_quit(bus_loop_t *l)
{
        if (!l)
                return;
        atomic_store(&l->quit, true);
        bus_loop_wakeup(l);
}

static dbus_bool_t watch_add(DBusWatch *w, void *data)
{
        bus_loop_t *l = data;

        pthread_mutex_lock(&l->lock);
        g_ptr_array_add(l->watches, w);
        pthread_mutex_unlock(&l->lock);
        loop_wake(l);
        return TRUE;
}

static void watch_remove(DBusWatch *w, void *data)
{
        bus_loop_t *l = data;

        pthread_mutex_lock(&l->lock);
        g_ptr_array_remove(l->watches, w);
        pthread_mutex_unlock(&l->lock);
        loop_wake(l);
}

static void watch_toggled(DBusWatch *w, void *data)
{
        /* Writing is decided from dbus_connection_has_messages_to_send(), and libdbus calls
         * the wakeup function whenever a message stays queued; the write watch, switched on
         * and off around every message another thread sends, needs no wakeup of its own. */
        if (dbus_watch_get_flags(w) & DBUS_WATCH_READABLE)
                loop_wake(data);
}

static void timer_arm(struct timer *t)
{
        t->due_ms = monotonic_ms(CLOCK_MONOTONIC) + dbus_timeout_get_interval(t->timeout);
}

static dbus_bool_t timeout_add(DBusTimeout *to, void *data)
{
        bus_loop_t *l = data;
        struct timer t = {.timeout = to};

        timer_arm(&t);
        pthread_mutex_lock(&l->lock);
        g_array_append_val(l->timers, t);
        pthread_mutex_unlock(&l->lock);
        loop_wake(l);
        return TRUE;
}

static void timeout_remove(DBusTimeout *to, void *data)
{
        bus_loop_t *l = data;

        pthread_mutex_lock(&l->lock);
        for (guint i = 0; i < l->timers->len; i++)
                if (g_array_index(l->timers, struct timer, i).timeout == to) {
                        g_array_remove_index_fast(l->timers, i);
                        break;
                }
        pthread_mutex_unlock(&l->lock);
        loop_wake(l);
}

static void timeout_toggled(DBusTimeout *to, void *data)
{
        bus_loop_t *l = data;

        pthread_mutex_lock(&l->lock);
        for (guint i = 0; i < l->timers->len; i++) {
                struct timer *t = &g_array_index(l->timers, struct timer, i);
                if (t->timeout == to)
                        timer_arm(t);
        }
        pthread_mutex_unlock(&l->lock);
        loop_wake(l);
}

static void dispatch_status_changed(DBusConnection *c, DBusDispatchStatus s, void *data)
{
        if (s == DBUS_DISPATCH_DATA_REMAINS)
                loop_wake(data);
}

static void wakeup_main(void *data)
{
        loop_wake(data);
}

/* libdbus calls the dispatch-status function after it has dropped the connection's lock, so a
 * thread that sends (it holds a reference to the connection meanwhile) can still be inside
 * dispatch_status_changed() when bus_loop_free() has removed the function on the loop thread.
 * So the loop's memory and its eventfd live as long as the connection: they hang in a data
 * slot of it, freed when the connection is finalized, not by bus_loop_free(). */
static dbus_int32_t loop_slot = -1;
static pthread_once_t loop_slot_once = PTHREAD_ONCE_INIT;

static void loop_slot_allocate(void)
{
        if (!dbus_connection_allocate_data_slot(&loop_slot))
                loop_slot = -1;
}

static void loop_destroy(void *data)
{
        bus_loop_t *l = data;

        g_ptr_array_unref(l->watches);
        g_array_unref(l->timers);
        pthread_mutex_destroy(&l->lock);
        close(l->wake_fd);
        free(l);
}

int bus_loop_new(DBusConnection *c, bus_loop_t **ret)
{
        bus_loop_t *l;

        pthread_once(&loop_slot_once, loop_slot_allocate);
        if (loop_slot < 0)
                return -ENOMEM;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->wake_fd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        pthread_mutex_init(&l->lock, NULL);
        l->watches = g_ptr_array_new();
        l->timers = g_array_new(FALSE, FALSE, sizeof(struct timer));
        if (!dbus_connection_set_data(c, loop_slot, l, loop_destroy)) {
                loop_destroy(l);
                return -ENOMEM;
        }
        l->conn = dbus_connection_ref(c);

        if (!dbus_connection_set_watch_functions(c, watch_add, watch_remove, watch_toggled, l,
                                                 NULL) ||
            !dbus_connection_set_timeout_functions(c, timeout_add, timeout_remove,
                                                   timeout_toggled, l, NULL)) {
                bus_loop_free(l);
                return -ENOMEM;
        }
        dbus_connection_set_wakeup_main_function(c, wakeup_main, l, NULL);
        dbus_connection_set_dispatch_status_function(c, dispatch_status_changed, l, NULL);
        *ret = l;
        return 0;
}

bus_loop_t *bus_loop_free(bus_loop_t *l)
{
        if (!l)
                return NULL;
        dbus_connection_set_watch_functions(l->conn, NULL, NULL, NULL, NULL, NULL);
        dbus_connection_set_timeout_functions(l->conn, NULL, NULL, NULL, NULL, NULL);
        dbus_connection_set_wakeup_main_function(l->conn, NULL, NULL, NULL);
        dbus_connection_set_dispatch_status_function(l->conn, NULL, NULL, NULL);
        /* The rest goes with the connection (loop_destroy). */
        dbus_connection_unref(l->conn);
        return NULL;
}

static int loop_iterate(bus_loop_t *l);

int bus_loop_run(bus_loop_t *l)
{
        bus_loop_t *outer = loop_here;
        int r;

        loop_here = l;
        r = loop_iterate(l);
        loop_here = outer;
        return r;
}

/* bus_loop_run() on its thread (loop_here). */
static int loop_iterate(bus_loop_t *l)
{
        for (;;) {
                struct pollfd fds[2];
                unsigned n = 1;
                int64_t next = -1, t, idle_due = -1;
                int fd = -1;
                bool want_read = false, full;
                int r;

                /* What it asked for itself so far, this look covers. */
                l->self_woken = false;
                while (!(full = output_full(l)) &&
                       dbus_connection_dispatch(l->conn) == DBUS_DISPATCH_DATA_REMAINS)
                        if (atomic_load(&l->quit))
                                break;
                if (atomic_load(&l->quit))
                        return 0;
                if (!dbus_connection_get_is_connected(l->conn) &&
                    dbus_connection_get_dispatch_status(l->conn) == DBUS_DISPATCH_COMPLETE)
                        return -ECONNRESET;

                /* Full: only write until it is not (the idle hook sees everything dispatched). */
                if (l->idle && !full) {
                        int ms = l->idle(l->idle_data);
                        if (ms == BUS_LOOP_YIELD)
                                return 1;
                        if (ms >= 0)
                                idle_due = monotonic_ms(CLOCK_MONOTONIC) + ms;
                }

                /* Messages other threads queued but could not write (libdbus woke us). */
                if (dbus_connection_has_messages_to_send(l->conn))
                        dbus_connection_read_write(l->conn, 0);
                /* That may have made room: dispatch on, rather than wait for nothing. */
                if (full && !output_full(l))
                        continue;

                pthread_mutex_lock(&l->lock);
                /* The watches tell the socket and whether reading is allowed (libdbus turns
                 * reading off when its incoming queue is full); they are only read under our
                 * lock, since another thread may remove and free them at any time. */
                for (guint i = 0; i < l->watches->len; i++) {
                        DBusWatch *w = g_ptr_array_index(l->watches, i);
                        fd = dbus_watch_get_unix_fd(w);
                        if (dbus_watch_get_enabled(w) &&
                            (dbus_watch_get_flags(w) & DBUS_WATCH_READABLE) && !full)
                                want_read = true;
                }
                for (guint i = 0; i < l->timers->len; i++) {
                        struct timer *tm = &g_array_index(l->timers, struct timer, i);
                        if (dbus_timeout_get_enabled(tm->timeout) &&
                            (next < 0 || tm->due_ms < next))
                                next = tm->due_ms;
                }
                pthread_mutex_unlock(&l->lock);
                if (idle_due >= 0 && (next < 0 || idle_due < next))
                        next = idle_due;

                fds[0] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
                if (fd >= 0) {
                        short ev = want_read ? POLLIN : 0;
                        if (dbus_connection_has_messages_to_send(l->conn))
                                ev |= POLLOUT;
                        fds[n++] = (struct pollfd){.fd = fd, .events = ev};
                }

                /* Something since the top (the idle hook read or sent) wants another look. */
                if (l->self_woken)
                        continue;
                t = next < 0 ? -1 : next - monotonic_ms(CLOCK_MONOTONIC);
                r = poll(fds, n, next < 0 ? -1 : (t < 0 ? 0 : (int)MIN(t, INT32_MAX)));
                if (r < 0 && errno != EINTR)
                        return -errno;

                if (fds[0].revents & POLLIN) {
                        uint64_t v;
                        /* Read first, then re-arm: state is examined only after this, so a
                         * wakeup asked for in between is not lost. */
                        (void)!read(l->wake_fd, &v, sizeof(v));
                        atomic_store(&l->woken, false);
                }
                /* The I/O itself goes through the connection, under its own locks, rather than
                 * dbus_watch_handle() on a watch pointer that may have been freed meanwhile
                 * (a send failing on another thread disconnects and frees the watches). */
                if (n > 1 && fds[1].revents)
                        dbus_connection_read_write(l->conn, 0);

                if (next >= 0) {
                        DBusTimeout *due[8];
                        unsigned nd = 0;
                        int64_t now = monotonic_ms(CLOCK_MONOTONIC);
                        pthread_mutex_lock(&l->lock);
                        for (guint i = 0; i < l->timers->len && nd < ELEMENTSOF(due); i++) {
                                struct timer *tm = &g_array_index(l->timers, struct timer, i);
                                if (dbus_timeout_get_enabled(tm->timeout) && tm->due_ms <= now) {
                                        due[nd++] = tm->timeout;
                                        timer_arm(tm);
                                }
                        }
                        pthread_mutex_unlock(&l->lock);
                        /* Residual race: a timeout removed by another thread right now. Only
                         * pending-call timeouts exist, and with the client's calls completed on
                         * this thread (lib/client) they are removed here too. */
                        for (unsigned i = 0; i < nd; i++)
                                dbus_timeout_handle(due[i]);
                }
        }
}
