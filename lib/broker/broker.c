/* lib/broker/broker.c — the broker object on the private bus (see broker.h, lib/bus/protocol.h).
 *
 * Per notification: one signature check, a bounded strlen of each string, the one JSON parse,
 * one registry lookup by ID (or by ID and receiver), and per delivery one Deliver and one
 * Observed per observer, written by wire.c (libdbus's own argument appending is the slowest
 * step otherwise). A unicast also takes a bounce ticket in the receiver's ring (no allocation
 * in steady state). Everything runs on the loop thread that dispatches c, which processes each
 * connection's messages in order and emits in that order (ORD-3, G-92). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "broker/broker.h"
#include "broker/pending.h"
#include "broker/registry.h"
#include "bus/wire.h"
#include "bus/protocol.h"
#include "core/log.h"
#include "core/util.h"
#include "json/json-text.h"

/* Only name losses (new owner "") matter: that is how a client's connection ends (REGS-3). */
#define BROKER_MATCH_NAME_LOST                                                                     \
        "type='signal',sender='" DBUS_SERVICE_DBUS "',path='" DBUS_PATH_DBUS                       \
        "',interface='" DBUS_INTERFACE_DBUS "',member='NameOwnerChanged',arg2=''"
/* protocol.h "Broadcasts by the bus": every client's Broadcast, whatever its ID. */
#define BROKER_MATCH_BROADCASTS                                                                    \
        "type='signal',path='" VFIIPC_BROADCAST_PATH "',member='Broadcast'"
/* A Mark goes out after VFIIPC_MARK_EVERY Broadcasts, or this long after the previous one
 * when the broker has nothing else to do: rare enough to cost nothing under load, soon
 * enough for VFIIPC_STALL_MS. */
#define MARK_IDLE_MS 10
/* While broadcasts go by the bus, a subscribed connection gets a Mark this often: it proves the
 * connection still reads (VFIIPC_STALL_MS) at a cost of ten small signals a second. */
#define MARK_PROBE_MS 100

#define INTROSPECT_DOCTYPE                                                                         \
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"       \
        " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"

static const char introspect_broker[] = INTROSPECT_DOCTYPE
    "<node>\n"
    " <interface name=\"" VFIIPC_BROKER_INTERFACE "\">\n"
    "  <method name=\"Register\">\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"priority\" type=\"i\" direction=\"in\"/>\n"
    "  </method>\n"
    "  <method name=\"Subscribe\">\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"priority\" type=\"i\" direction=\"in\"/>\n"
    "  </method>\n"
    "  <method name=\"Unregister\">\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "  </method>\n"
    "  <method name=\"Notify\">\n"
    "   <arg name=\"from\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"json\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"flags\" type=\"u\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    "  <method name=\"Ack\">\n"
    "   <arg name=\"count\" type=\"u\" direction=\"in\"/>\n"
    "   <arg name=\"mark\" type=\"t\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    "  <method name=\"Sync\">\n"
    "   <arg name=\"direct\" type=\"b\" direction=\"out\"/>\n"
    "   <arg name=\"version\" type=\"t\" direction=\"out\"/>\n"
    "  </method>\n"
    "  <signal name=\"DirectBroadcasts\">\n"
    "   <arg name=\"direct\" type=\"b\"/>\n"
    "   <arg name=\"version\" type=\"t\"/>\n"
    "  </signal>\n"
    "  <method name=\"AddObserver\"/>\n"
    "  <method name=\"RemoveObserver\"/>\n"
    "  <method name=\"Bounce\">\n"
    "   <arg name=\"from\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"json\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"flags\" type=\"u\" direction=\"in\"/>\n"
    "   <arg name=\"ticket\" type=\"t\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    " </interface>\n"
    " <interface name=\"" VFIIPC_REMOTE_INTERFACE "\">\n"
    "  <method name=\"Register\">\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"priority\" type=\"i\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    "  <method name=\"Unregister\">\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    "  <method name=\"Notify\">\n"
    "   <arg name=\"from\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"to\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"id\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"json\" type=\"s\" direction=\"in\"/>\n"
    "   <arg name=\"flags\" type=\"u\" direction=\"in\"/>\n"
    "   <arg name=\"reference\" type=\"t\" direction=\"in\"/>\n"
    "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n"
    "  </method>\n"
    " </interface>\n"
    " <interface name=\"" DBUS_INTERFACE_INTROSPECTABLE "\">\n"
    "  <method name=\"Introspect\">\n"
    "   <arg name=\"xml_data\" type=\"s\" direction=\"out\"/>\n"
    "  </method>\n"
    " </interface>\n"
    " <interface name=\"" DBUS_INTERFACE_PEER "\">\n"
    "  <method name=\"Ping\"/>\n"
    "  <method name=\"GetMachineId\">\n"
    "   <arg name=\"machine_uuid\" type=\"s\" direction=\"out\"/>\n"
    "  </method>\n"
    " </interface>\n"
    "</node>\n";

/* The parents of VFIIPC_BROKER_PATH, so that `busctl tree` finds the broker. */
static const struct parent_node {
        const char *path, *xml;
} parent_nodes[] = {
    {"/", INTROSPECT_DOCTYPE "<node>\n <node name=\"io\"/>\n</node>\n"},
    {"/io", INTROSPECT_DOCTYPE "<node>\n <node name=\"vfiipc\"/>\n</node>\n"},
    {"/io/vfiipc", INTROSPECT_DOCTYPE "<node>\n <node name=\"Broker1\"/>\n</node>\n"},
};

/* A unicast sent and not acknowledged yet: re-routed if its receiver ends (protocol.h, Ack). */
typedef struct sent_copy {
        uint64_t ticket;
        char *from, *to, *id, *json; /* one allocation with the struct */
        dbus_uint32_t flags;
} sent_copy_t;

/* One signal sent to an accounted connection and not acknowledged yet. */
typedef struct sent {
        size_t size;       /* approximately its bytes on the bus */
        sent_copy_t *copy; /* unicasts only */
        uint64_t seq;      /* Broadcasts only (peer_t.bbacklog): broker_t.bcast when seen */
} sent_t;

/* The unacknowledged signals of one connection, oldest first: a growable ring. */
typedef struct backlog {
        sent_t *v;
        size_t cap, head, len;
        size_t bytes;
        int64_t progress_ms; /* since then nothing was acknowledged while len > 0 */
        uint64_t dropped;    /* signals not sent to it while it was stalled */
        bool stalled;        /* logged as stalled */
} backlog_t;

/* One client connection, by unique name, as far as the broker needs more than registrations:
 * its observer flag, the unicasts it may still bounce, and (as submitter) being referred to
 * by other connections' tickets after it is gone. */
typedef struct peer {
        unsigned n_ref;
        char *name;
        bool gone;     /* its name was released: no unicast error can reach it */
        bool observer; /* AddObserver() */
        bool flow;     /* sent Ack or AckShared: its signals are accounted (backlog) */
        const ack_page_t *page; /* AckShared: its acknowledgements, read-only, or NULL */
        uint64_t page_count;    /* page->count as last read */
        uint64_t page_broadcasts; /* page->broadcasts as last read */
        backlog_t backlog;  /* the signals addressed to it */
        backlog_t bbacklog; /* the Broadcasts of the IDs it subscribed to, since its last Mark */
        size_t n_subscribed; /* its registrations with registration_t.subscribed */
        uint64_t mark_sent;  /* the last Mark sent to it (a broker_t.bcast value), 0: none */
        uint64_t mark_acked; /* the last Mark it acknowledged */
        int64_t mark_ms;     /* when mark_sent was sent */
        unsigned n_unmarked; /* bbacklog entries newer than mark_sent */
        bool blocks_direct;  /* stalled with a subscription: counted in broker_t.n_blocking */
        bool remote;   /* called Remote1: an NFY peer's connection, for good (protocol.h) */
        bool cap_logged;       /* G-87: the 256 cap is logged once per connection */
        uint64_t bcast_mark;   /* the last broadcast it was sent (G-91: one per connection) */
        pending_ring_t pending;
} peer_t;

struct broker {
        DBusConnection *conn;
        const whitelist_t *wl; /* not owned; NULL: no rules, nothing crosses (§6.1) */
        registry_t *registry;
        GHashTable *peers;    /* name → peer_t, one reference each */
        GPtrArray *observers; /* peer_t, no reference: they leave before the peer does */
        uint64_t ticket;      /* the last ticket handed out */
        uint64_t bcast;       /* counts broadcasts, either way (peer_t.bcast_mark, Marks) */
        size_t n_blocking;    /* peers with blocks_direct: broadcasts go through the broker */
        size_t n_subscribed;  /* registrations with registration_t.subscribed */
        int64_t activity_ms;  /* when broadcasts were last seen going (Marks probe meanwhile) */
        uint64_t direct_version; /* DirectBroadcasts' version: grows with every change */
        int64_t now_ms;       /* the clock for stall checks, read once per message handled */
        uint64_t n_handled;   /* method calls and Broadcasts taken in (broker_take_in) */
        int64_t caught_up_ms; /* when it last had read everything the bus had for it */
        size_t n_remote_regs; /* registrations of remote connections (LIM-1, G-87) */
        wire_t wire;          /* the signals' buffer */
        bool filter_added, match_added, bmatch_added, path_registered;
        unsigned n_parents; /* parent_nodes registered */
};

/* What one Notify or Bounce carries. */
typedef struct note {
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;
} note_t;

/* Why a call is refused: the D-Bus error name and a message for the caller or the log. */
typedef struct refusal {
        const char *error;
        char text[256];
} refusal_t;

_printf_(3, 4) static int refuse(refusal_t *x, const char *error, const char *fmt, ...)
{
        va_list ap;

        x->error = error;
        va_start(ap, fmt);
        vsnprintf(x->text, sizeof(x->text), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* ---- peers -------------------------------------------------------------------------------- */

/* ---- flow accounting (protocol.h, Ack; G-93) ------------------------------------------------ */

static void backlog_pop(backlog_t *q, sent_t *ret)
{
        *ret = q->v[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        q->bytes -= ret->size;
}

static void backlog_clear(backlog_t *q)
{
        sent_t e;

        while (q->len) {
                backlog_pop(q, &e);
                free(e.copy);
        }
        free(q->v);
        *q = (backlog_t){0};
}

/* copy is taken over (also on failure). -ENOMEM: not accounted (logged by the caller). */
static int backlog_push(backlog_t *q, size_t size, sent_copy_t *copy, uint64_t seq, int64_t now)
{
        if (q->len == q->cap) {
                size_t cap = q->cap ? q->cap * 2 : 64;
                sent_t *v = malloc(cap * sizeof(*v));

                if (!v) {
                        free(copy);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < q->len; i++)
                        v[i] = q->v[(q->head + i) % q->cap];
                free(q->v);
                q->v = v;
                q->cap = cap;
                q->head = 0;
        }
        if (q->len == 0)
                q->progress_ms = now; /* a backlog starts: the stall clock starts */
        q->v[(q->head + q->len) % q->cap] = (sent_t){.size = size, .copy = copy, .seq = seq};
        q->len++;
        q->bytes += size;
        return 0;
}

static void peer_direct_update(broker_t *b, peer_t *p);

/* protocol.h "Ack": count more of the signals addressed to p were taken, and the Mark `mark`
 * (with every Broadcast seen before it was sent). */
static void peer_acknowledge(broker_t *b, peer_t *p, uint64_t count, uint64_t mark)
{
        sent_t e;
        size_t k = 0, j;

        /* More than it was sent (a confused client) acknowledges everything, nothing more. */
        for (; k < count && p->backlog.len; k++) {
                backlog_pop(&p->backlog, &e);
                free(e.copy);
        }
        if (k || !p->backlog.len)
                p->backlog.progress_ms = b->now_ms;
        /* The bus routes to every receiver in one order, and a Mark leaves the broker after
         * the Broadcasts it has seen: taking the Mark, p took them. More than was sent (a
         * confused client) acknowledges what was sent. */
        if (mark > p->mark_sent)
                mark = p->mark_sent;
        if (mark > p->mark_acked) {
                p->mark_acked = mark;
                for (j = 0; p->bbacklog.len && p->bbacklog.v[p->bbacklog.head].seq <= mark; j++)
                        backlog_pop(&p->bbacklog, &e);
                p->bbacklog.progress_ms = b->now_ms;
                k += j + 1;
        }
        if (k && p->backlog.stalled) {
                nfy_log(LOG_WARNING,
                        "%s reads again; %" PRIu64 " signal(s) to it were dropped while it was "
                        "stalled",
                        p->name, p->backlog.dropped);
                p->backlog.stalled = false;
                p->backlog.dropped = 0;
                peer_direct_update(b, p);
        }
}

/* protocol.h "AckShared": takes in what the connection wrote into its page since last time. */
static void peer_sync(broker_t *b, peer_t *p)
{
        uint64_t count, mark, bcasts;

        if (!p->page)
                return;
        count = __atomic_load_n(&p->page->count, __ATOMIC_ACQUIRE);
        mark = __atomic_load_n(&p->page->mark, __ATOMIC_ACQUIRE);
        bcasts = __atomic_load_n(&p->page->broadcasts, __ATOMIC_RELAXED);
        if (bcasts != p->page_broadcasts) {
                p->page_broadcasts = bcasts;
                b->activity_ms = b->now_ms; /* it broadcast by the bus: probe the subscribers */
        }
        if (count == p->page_count && mark <= p->mark_acked)
                return;
        /* A count that went back (a confused client) acknowledges nothing. */
        peer_acknowledge(b, p, count > p->page_count ? count - p->page_count : 0, mark);
        p->page_count = count;
}

static bool backlog_stalled(const broker_t *b, const backlog_t *q)
{
        /* Time counts only once the broker has caught up with its input after the backlog
         * began: an Ack queued behind a flood that the broker itself has not read yet is no
         * sign of a stalled receiver. */
        return q->len > 0 && (b->caught_up_ms - q->progress_ms > VFIIPC_STALL_MS ||
                              q->bytes > VFIIPC_BACKLOG_BYTES_MAX);
}

/* Its Broadcasts: a Mark unacknowledged for VFIIPC_STALL_MS (time counted as above; the Mark
 * may be a probe, sent while others broadcast by the bus), or too many bytes of those the
 * broker saw. Broadcasts not followed by a Mark yet prove nothing: p could not acknowledge. */
static bool bbacklog_stalled(const broker_t *b, const peer_t *p)
{
        return (p->mark_sent > p->mark_acked && b->caught_up_ms - p->mark_ms > VFIIPC_STALL_MS) ||
               p->bbacklog.bytes > VFIIPC_BACKLOG_BYTES_MAX;
}

/* Stalled: it has unacknowledged signals and has acknowledged none for VFIIPC_STALL_MS, or its
 * backlog is above VFIIPC_BACKLOG_BYTES_MAX (protocol.h). Logged once per episode. */
static bool peer_stalled(broker_t *b, peer_t *p)
{
        backlog_t *q = &p->backlog;

        if (!p->flow)
                return false;
        peer_sync(b, p);
        if (!backlog_stalled(b, q)) {
                q = &p->bbacklog;
                if (!bbacklog_stalled(b, p))
                        return false;
        }
        if (!p->backlog.stalled) {
                p->backlog.stalled = true; /* the episode's flag and count live in backlog */
                nfy_log(LOG_WARNING,
                        "%s is stalled (%zu signals, %zu bytes unacknowledged for %lld ms): it "
                        "gets no unicasts (next receiver or unicast error) and its broadcasts, "
                        "observations and unicast errors are dropped until it reads again",
                        p->name, q->len, q->bytes, (long long)(b->now_ms - q->progress_ms));
                peer_direct_update(b, p);
        }
        return true;
}

static size_t signal_size(const char *a, const char *b, const char *c, const char *json)
{
        /* Header and fixed fields of the Client1 signals are well under 256 bytes. */
        return 256 + strlen(a) + strlen(b) + strlen(c) + (json ? strlen(json) : 0);
}

static sent_copy_t *sent_copy_new(uint64_t ticket, const char *from, const char *to,
                                  const char *id, const char *json, dbus_uint32_t flags)
{
        size_t lf = strlen(from) + 1, lt = strlen(to) + 1, li = strlen(id) + 1,
               lj = strlen(json) + 1;
        sent_copy_t *c = malloc(sizeof(*c) + lf + lt + li + lj);
        char *p;

        if (!c)
                return NULL;
        p = (char *)(c + 1);
        c->ticket = ticket;
        c->flags = flags;
        c->from = memcpy(p, from, lf);
        c->to = memcpy(p += lf, to, lt);
        c->id = memcpy(p += lt, id, li);
        c->json = memcpy(p + li, json, lj);
        return c;
}

static void peer_unmap(peer_t *p)
{
        if (p->page)
                munmap((void *)p->page, sizeof(ack_page_t));
        p->page = NULL;
}

static peer_t *peer_ref(peer_t *p)
{
        p->n_ref++;
        return p;
}

static void peer_unref(void *data)
{
        peer_t *p = data;

        if (!p || --p->n_ref > 0)
                return;
        pending_ring_clear(&p->pending);
        backlog_clear(&p->backlog);
        backlog_clear(&p->bbacklog);
        peer_unmap(p);
        free(p->name);
        free(p);
}

/* The peer for a connection that is on the bus now (it sent us something, or holds a
 * registration); its entry goes when the bus reports the name lost. */
static peer_t *peer_get(broker_t *b, const char *name)
{
        peer_t *p = g_hash_table_lookup(b->peers, name);

        if (p)
                return p;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->name = strdup(name);
        if (!p->name) {
                free(p);
                return NULL;
        }
        p->n_ref = 1;
        pending_ring_init(&p->pending, VFIIPC_PENDING_PER_PEER_MAX, peer_unref);
        g_hash_table_insert(b->peers, p->name, p);
        return p;
}

static void broker_reroute(broker_t *b, peer_t *self, const sent_copy_t *c);
static void broker_bmatch_update(broker_t *b);

/* REGS-3: a connection ended; its registrations, observer flag and tickets go with it, and the
 * unicasts it had not acknowledged go on to the next receiver or become unicast errors. */
static void broker_forget(broker_t *b, const char *name)
{
        size_t n = registry_remove_owner(b->registry, name);
        peer_t *p = g_hash_table_lookup(b->peers, name);

        if (p) {
                sent_t e;
                size_t k = 0;

                if (p->remote)
                        b->n_remote_regs -= n; /* NFYS-5, G-87: the slots are free again */
                g_hash_table_steal(b->peers, name);
                p->gone = true;
                b->n_subscribed -= p->n_subscribed; /* registry_remove_owner() took them */
                p->n_subscribed = 0;
                peer_direct_update(b, p);
                if (p->observer)
                        g_ptr_array_remove(b->observers, p);
                p->observer = false;
                b->now_ms = monotonic_ms(CLOCK_MONOTONIC_COARSE);
                peer_sync(b, p); /* its last word: what it took is not re-routed */
                peer_unmap(p);
                while (p->backlog.len) {
                        backlog_pop(&p->backlog, &e);
                        if (e.copy) {
                                broker_reroute(b, p, e.copy);
                                free(e.copy);
                                k++;
                        }
                }
                backlog_clear(&p->backlog); /* tickets elsewhere may keep p for a long time */
                backlog_clear(&p->bbacklog);
                if (k)
                        nfy_log(LOG_NOTICE, "%s ended with %zu unicast(s) unacknowledged: re-routed",
                                name, k);
                /* Its tickets may hold references to p itself (it sent to itself). */
                pending_ring_clear(&p->pending);
                peer_unref(p);
        }
        if (n)
                nfy_log(LOG_INFO, "%s disconnected: %zu registration(s) removed", name, n);
        broker_bmatch_update(b);
}

/* protocol.h "Broadcasts by the bus": the broker watches every Broadcast while an observer or
 * a registration that is not subscribed could need it. The AddMatch goes out ahead of the
 * reply to the call that made it necessary, and the bus handles both in that order, so no
 * Broadcast sent after that reply is missed. Without an answer: a failure shows as missing
 * observations and is logged by the bus. */
static void broker_bmatch_update(broker_t *b)
{
        bool want = b->observers->len > 0 || registry_count(b->registry) > b->n_subscribed;

        if (want == b->bmatch_added)
                return;
        if (want)
                dbus_bus_add_match(b->conn, BROKER_MATCH_BROADCASTS, NULL);
        else
                dbus_bus_remove_match(b->conn, BROKER_MATCH_BROADCASTS, NULL);
        b->bmatch_added = want;
        nfy_log(LOG_DEBUG, "%s every Broadcast", want ? "watching" : "no longer watching");
}

/* ---- emitting ----------------------------------------------------------------------------- */

/* Sends and drops a signal built by wire.c (NULL: it could not be built, logged there). */
static void signal_send(broker_t *b, DBusMessage *s, const char *member, const char *dest)
{
        if (!s) {
                nfy_log(LOG_ERR, "%s to %s dropped: cannot build it", member, dest);
                return;
        }
        if (!dbus_connection_send(b->conn, s, NULL))
                nfy_log(LOG_ERR, "out of memory: %s to %s dropped", member, dest);
        dbus_message_unref(s);
}

/* protocol.h "DirectBroadcasts": false while a connection that subscribed to an ID is stalled,
 * since the bus would still hand it every Broadcast of that ID. */
static void broker_direct_send(broker_t *b)
{
        dbus_bool_t direct = b->n_blocking == 0;
        dbus_uint64_t version = ++b->direct_version;
        DBusMessage *s = dbus_message_new_signal(VFIIPC_BROKER_PATH, VFIIPC_BROKER_INTERFACE,
                                                 "DirectBroadcasts");

        if (s && !dbus_message_append_args(s, DBUS_TYPE_BOOLEAN, &direct, DBUS_TYPE_UINT64,
                                           &version, DBUS_TYPE_INVALID)) {
                dbus_message_unref(s);
                s = NULL;
        }
        nfy_log(LOG_NOTICE, "broadcasts go %s", direct ? "by the bus again" : "through the broker");
        signal_send(b, s, "DirectBroadcasts", "everybody");
}

static void peer_direct_update(broker_t *b, peer_t *p)
{
        bool block = !p->gone && p->backlog.stalled && p->n_subscribed > 0;

        if (block == p->blocks_direct)
                return;
        p->blocks_direct = block;
        if (block ? b->n_blocking++ == 0 : --b->n_blocking == 0)
                broker_direct_send(b);
}

/* protocol.h "Mark": when p is due one (a time in b->now_ms' terms; INT64_MAX: not before
 * something else happens). One in flight per connection; due at once when VFIIPC_MARK_EVERY
 * Broadcasts the broker saw await one; while the broker has caught up with its input (idle),
 * MARK_IDLE_MS after the previous Mark, or, as a probe, every MARK_PROBE_MS to a subscribed
 * connection while broadcasts go by the bus, which the broker does not see. */
static int64_t peer_mark_due(const broker_t *b, const peer_t *p, bool idle)
{
        int64_t due = INT64_MAX;

        if (!p->flow || p->mark_sent > p->mark_acked)
                return INT64_MAX; /* one in flight: the next waits for its Ack */
        if (p->n_unmarked >= VFIIPC_MARK_EVERY)
                return b->now_ms;
        if (!idle)
                return INT64_MAX;
        if (p->n_unmarked > 0)
                due = p->mark_ms + MARK_IDLE_MS;
        if (p->n_subscribed) { /* a probe: MARK_PROBE_MS after the last Mark, while active */
                int64_t t = p->mark_ms + MARK_PROBE_MS;

                if (t < b->now_ms)
                        t = b->now_ms;
                if (t < b->activity_ms + MARK_PROBE_MS && t < due)
                        due = t;
        }
        return due;
}

/* Sends p's Mark if it is due; returns when the next one will be (peer_mark_due()'s terms):
 * after a send, one is in flight, so not before its Ack. */
static int64_t peer_mark(broker_t *b, peer_t *p, bool idle)
{
        int64_t due = peer_mark_due(b, p, idle);

        if (due > b->now_ms)
                return due;
        p->mark_sent = ++b->bcast; /* after every Broadcast accounted so far */
        p->mark_ms = b->now_ms;
        p->n_unmarked = 0;
        signal_send(b, wire_mark(&b->wire, p->name, p->mark_sent), "Mark", p->name);
        return INT64_MAX;
}

/* Accounts a signal about to be sent to p (protocol.h, Ack); copy: a unicast's, taken over. */
static void peer_account(broker_t *b, peer_t *p, size_t size, sent_copy_t *copy)
{
        /* No peer_sync() here: every caller asked peer_stalled() first, which read the page. */
        if (p && p->flow && backlog_push(&p->backlog, size, copy, 0, b->now_ms) < 0)
                nfy_log(LOG_ERR, "out of memory: a signal to %s is not accounted", p->name);
        else if (!p || !p->flow)
                free(copy);
}

/* DLV-5: `to` as addressed; receiver says which of the connection's registrations it is for.
 * rp: the receiver's peer when known (NULL: looked up). */
static void broker_deliver(broker_t *b, peer_t *rp, const registration_t *reg, const note_t *n,
                           uint64_t ticket)
{
        if (!rp)
                rp = g_hash_table_lookup(b->peers, reg->owner);
        if (rp && rp->flow) {
                sent_copy_t *copy = NULL;

                /* A unicast is kept until acknowledged, to re-route it if rp ends first. */
                if (ticket && !(copy = sent_copy_new(ticket, n->from, n->to, n->id, n->json,
                                                     n->flags)))
                        nfy_log(LOG_ERR, "out of memory: '%s' to %s cannot be re-routed", n->id,
                                reg->owner);
                peer_account(b, rp, signal_size(n->from, n->to, n->id, n->json), copy);
        }
        signal_send(b,
                    wire_deliver(&b->wire, reg->owner, n->from, n->to, n->id, n->json, n->flags,
                                 reg->receiver, ticket),
                    "Deliver", reg->owner);
}

/* DLV-6, DLV-7: resolved receiver ID, or "" when nobody got it; no data. */
static void broker_observe(broker_t *b, const note_t *n, const char *receiver)
{
        for (guint i = 0; i < b->observers->len; i++) {
                peer_t *o = g_ptr_array_index(b->observers, i);

                if (peer_stalled(b, o)) {
                        o->backlog.dropped++;
                        continue;
                }
                peer_account(b, o, signal_size(n->from, receiver, n->id, NULL), NULL);
                signal_send(b, wire_observed(&b->wire, o->name, n->from, receiver, n->id, n->flags),
                            "Observed", o->name);
        }
}

/* DLV-9, DLV-10: the notification unchanged, to the connection that submitted it. */
static void broker_unicast_error(broker_t *b, const char *submitter, const note_t *n)
{
        peer_t *p = g_hash_table_lookup(b->peers, submitter);

        if (p && peer_stalled(b, p)) {
                p->backlog.dropped++;
                return;
        }
        peer_account(b, p, signal_size(n->from, n->to, n->id, n->json), NULL);
        signal_send(
            b, wire_unicast_error(&b->wire, submitter, n->from, n->to, n->id, n->json, n->flags),
            "UnicastError", submitter);
}

/* ---- routing ------------------------------------------------------------------------------ */

/* A ticket in the receiver's ring that remembers the submitter and every registration tried
 * so far, reg included (DLV-13). 0 when none could be kept: the delivery still goes out, it
 * just cannot be bounced. */
static uint64_t broker_ticket_issue(broker_t *b, peer_t *rp, const registration_t *reg,
                                    peer_t *submitter, const note_t *n, const uint64_t *tried,
                                    uint32_t n_tried)
{
        uint64_t all[VFIIPC_BOUNCE_TRIES_MAX];

        /* broker_unicast() picks only while n_tried < VFIIPC_BOUNCE_TRIES_MAX. */
        g_assert(n_tried < VFIIPC_BOUNCE_TRIES_MAX);
        if (!rp || !submitter) {
                nfy_log(LOG_ERR, "out of memory: '%s' to %s cannot be bounced", n->id, reg->owner);
                return 0;
        }
        if (n_tried)
                memcpy(all, tried, sizeof(uint64_t) * n_tried);
        all[n_tried] = reg->seq;
        if (pending_ring_push(&rp->pending, b->ticket + 1,
                              pending_fingerprint(n->from, n->to, n->id, n->flags),
                              peer_ref(submitter), all, n_tried + 1) < 0) {
                nfy_log(LOG_ERR, "out of memory: '%s' to %s cannot be bounced", n->id, reg->owner);
                return 0;
        }
        return ++b->ticket;
}

/* §6.3, CFG-4: may this notification leave the device? Asked only when a remote registration
 * is a candidate, at most once per notification (*out: -1 not asked yet, 0 no, 1 yes). */
static bool broker_out_allowed(broker_t *b, const note_t *n, int *out)
{
        if (*out < 0)
                *out = whitelist_allows(b->wl, WHITELIST_OUT, n->from, n->to, n->id);
        return *out;
}

/* For a Notify "*": one Broadcast signal of the broker's own serves every subscribed
 * registration of the ID, when there is one and none of their connections is stalled (a
 * stalled one must not get it, and the bus cannot leave it out). */
static bool broker_broadcast_fan_out(broker_t *b, const note_t *n)
{
        bool any = false;

        for (const registration_t *reg = registry_first(b->registry, n->id); reg;
             reg = registry_next(reg)) {
                peer_t *rp;

                if (!reg->subscribed)
                        continue;
                rp = g_hash_table_lookup(b->peers, reg->owner);
                if (rp && peer_stalled(b, rp))
                        return false;
                any = true;
        }
        return any;
}

static int check_note(refusal_t *x, const note_t *n);

/* A sender's Broadcast was checked on arrival except for its JSON text, which costs a parse:
 * checked only once somebody besides its subscribers (who parse it anyway) would get it.
 * *valid: -1 not checked yet, else the verdict. */
static bool broadcast_valid(const note_t *n, const char *sender, int *valid)
{
        refusal_t x;

        if (*valid < 0) {
                *valid = check_note(&x, n) == 0;
                if (!*valid)
                        nfy_log(LOG_WARNING, "Broadcast '%s' from %s ignored: %s", n->id, sender,
                                x.text);
        }
        return *valid;
}

/* DLV-1, DLV-4, DLV-7 (G-64): every registration of the ID, the sender's own included; remote
 * ones only if an out rule lets the notification out (§4.1), once per remote connection (G-91),
 * each with a ticket so that a returned broadcast is recognised and dropped (G-89).
 * by_bus: the sender sent it as a Broadcast signal (protocol.h "Broadcasts by the bus"), so
 * the connections that subscribed to the ID have it already: they are only accounted and
 * observed. A Notify "*" becomes the broker's own Broadcast for them when it can
 * (broker_broadcast_fan_out()), else a Deliver for each registration. */
static void broker_broadcast(broker_t *b, const char *sender, const note_t *n, bool by_bus)
{
        const registration_t *reg;
        peer_t *submitter = NULL;
        uint64_t mark = ++b->bcast;
        bool fanned = by_bus || broker_broadcast_fan_out(b, n);
        size_t k = 0, size = 0;
        int out = -1, valid = by_bus ? -1 : 1;

        if (!by_bus && fanned)
                signal_send(b, wire_broadcast(&b->wire, n->from, n->to, n->id, n->json, n->flags),
                            "Broadcast", "subscribers");
        for (reg = registry_first(b->registry, n->id); reg; reg = registry_next(reg)) {
                peer_t *rp = g_hash_table_lookup(b->peers, reg->owner);
                uint64_t ticket = 0;

                if (fanned && reg->subscribed) {
                        /* Accounted once per connection (G-91), stalled or not: it has it. */
                        if (rp && rp->flow && rp->bcast_mark != mark) {
                                if (!size)
                                        size = signal_size(n->from, n->to, n->id, n->json);
                                (void)peer_stalled(b, rp); /* reads its page; may block direct */
                                if (backlog_push(&rp->bbacklog, size, NULL, mark, b->now_ms) < 0)
                                        nfy_log(LOG_ERR,
                                                "out of memory: a broadcast to %s is not accounted",
                                                rp->name);
                                else
                                        rp->n_unmarked++;
                                peer_mark(b, rp, false);
                        }
                        if (rp)
                                rp->bcast_mark = mark;
                        if (b->observers->len && !broadcast_valid(n, sender, &valid))
                                return;
                        broker_observe(b, n, reg->receiver);
                        k++;
                        continue;
                }
                if (rp && peer_stalled(b, rp)) {
                        rp->backlog.dropped++; /* G-93: counted, logged on recovery */
                        continue;
                }
                if (reg->remote) {
                        if (!rp || rp->bcast_mark == mark || !broker_out_allowed(b, n, &out))
                                continue;
                        if (!broadcast_valid(n, sender, &valid))
                                return;
                        rp->bcast_mark = mark;
                        if (!submitter)
                                submitter = peer_get(b, sender);
                        ticket = broker_ticket_issue(b, rp, reg, submitter, n, NULL, 0);
                }
                if (!broadcast_valid(n, sender, &valid))
                        return;
                broker_deliver(b, rp, reg, n, ticket);
                broker_observe(b, n, reg->receiver);
                k++;
        }
        if (k == 0 && b->observers->len && broadcast_valid(n, sender, &valid))
                broker_observe(b, n, "");
        nfy_log(LOG_DEBUG, "'%s' from '%s' to '*': %zu receiver(s)%s", n->id, n->from, k,
                by_bus ? ", by the sender's Broadcast" : fanned ? ", by Broadcast" : "");
}

/* A call or Broadcast taken in: the time what it does is stamped with, and one more handled
 * (the server trims its heap once the count stops changing). */
static void broker_take_in(broker_t *b)
{
        b->now_ms = monotonic_ms(CLOCK_MONOTONIC_COARSE);
        b->n_handled++;
}

/* protocol.h "Broadcasts by the bus": a Broadcast signal some connection sent. Checked like a
 * Notify; the subscribers ignore what is refused here just the same. */
static void broker_broadcast_seen(broker_t *b, DBusMessage *m)
{
        const char *sender = dbus_message_get_sender(m), *why;
        const peer_t *p;
        note_t n;

        if (!sender || streq(sender, dbus_bus_get_unique_name(b->conn)))
                return;
        /* The JSON text: broadcast_valid(). */
        why = wire_broadcast_read(m, &n.from, &n.to, &n.id, &n.json, &n.flags);
        p = g_hash_table_lookup(b->peers, sender);
        if (!why && p && p->remote)
                why = "a remote peer's connection may only call " VFIIPC_REMOTE_INTERFACE;
        if (why) {
                nfy_log(LOG_WARNING, "Broadcast '%s' from %s ignored: %s", n.id, sender, why);
                return;
        }
        broker_take_in(b);
        broker_broadcast(b, sender, &n, true);
}

/* DLV-2, DLV-3, DLV-9, DLV-13: the best registration not tried yet, or the unicast error.
 * submitter is the submitting connection's name (NULL: gone, no error can reach it);
 * submitter_peer its peer when known already (a bounce), else looked up on delivery. */
typedef struct pick {
        broker_t *b;
        const note_t *n;
        int out;
} pick_t;

/* Who is no candidate for a unicast: a remote registration that no out rule lets out (G-82:
 * before the priority choice, so it never shadows an allowed local one), and a stalled
 * receiver (G-93: the next one gets it, or the sender the unicast error). */
static bool pick_skip(const registration_t *reg, void *data)
{
        pick_t *k = data;
        peer_t *p;

        if (reg->remote && !broker_out_allowed(k->b, k->n, &k->out))
                return true;
        p = g_hash_table_lookup(k->b->peers, reg->owner);
        return p && peer_stalled(k->b, p);
}

static void broker_unicast(broker_t *b, const char *submitter, peer_t *submitter_peer,
                           const note_t *n, const uint64_t *tried, uint32_t n_tried)
{
        const registration_t *reg = NULL;
        pick_t k = {.b = b, .n = n, .out = -1};
        uint64_t ticket;
        peer_t *rp;

        if (n_tried < VFIIPC_BOUNCE_TRIES_MAX)
                reg = registry_pick(b->registry, n->id, n->to, tried, n_tried, pick_skip, &k);
        if (!reg) {
                if (submitter)
                        broker_unicast_error(b, submitter, n);
                broker_observe(b, n, "");
                nfy_log(LOG_DEBUG, "'%s' from '%s' to '%s': no receiver, unicast error to %s",
                        n->id, n->from, n->to, submitter ? submitter : "(gone)");
                return;
        }
        if (!submitter_peer)
                submitter_peer = peer_get(b, submitter);
        rp = peer_get(b, reg->owner);
        ticket = rp ? broker_ticket_issue(b, rp, reg, submitter_peer, n, tried, n_tried) : 0;
        broker_deliver(b, rp, reg, n, ticket);
        broker_observe(b, n, reg->receiver);
        nfy_log(LOG_DEBUG,
                "'%s' from '%s' to '%s': 1 receiver (%s, priority %d, ticket %" PRIu64 ")", n->id,
                n->from, n->to, reg->owner, reg->priority, ticket);
}

/* ---- methods ------------------------------------------------------------------------------ */

static int check_id(refusal_t *x, const char *what, const char *s)
{
        if (strnlen(s, VFIIPC_ID_MAX + 1) > VFIIPC_ID_MAX)
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "%s is longer than %u bytes", what,
                              VFIIPC_ID_MAX);
        return 0;
}

/* ADR-5, G-65: "", "1" and "*" address, they never receive. */
static int check_receiver(refusal_t *x, const char *to)
{
        if (isempty(to) || streq(to, "1") || streq(to, "*"))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS,
                              "receiver ID '%s' is not valid (\"\", \"1\" and \"*\" are not)", to);
        return check_id(x, "receiver ID", to);
}

/* Nothing invalid reaches a receiver: the one JSON parse per message happens here. */
static int check_note(refusal_t *x, const note_t *n)
{
        json_error_t err;
        size_t len;
        int r;

        if (isempty(n->from))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "sender ID (from) is empty");
        if ((r = check_id(x, "sender ID (from)", n->from)) < 0 ||
            (r = check_id(x, "destination (to)", n->to)) < 0 ||
            (r = check_id(x, "notification ID", n->id)) < 0)
                return r;
        len = strnlen(n->json, VFIIPC_PARAM_MAX + 1);
        if (len > VFIIPC_PARAM_MAX)
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "JSON text is longer than %u bytes",
                              VFIIPC_PARAM_MAX);
        if (json_text_validate(n->json, len, &err) < 0)
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS,
                              "invalid JSON text at line %d, column %d: %s", err.line, err.column,
                              err.text);
        return 0;
}

/* One call's arguments, read and checked before its method runs (call_check): only the
 * fields of the method's signature are set. */
typedef struct call {
        note_t n;              /* Notify, Bounce */
        const char *to, *id;   /* Register, Unregister */
        dbus_int32_t priority; /* Register */
        dbus_uint32_t count;   /* Ack */
        int fd;                /* AckShared: received, closed by the method */
        dbus_uint64_t ticket;  /* Bounce; Remote1.Notify: the reference; Ack: the Mark */
        dbus_bool_t direct;    /* Sync's answer */
        dbus_uint64_t version;
} call_t;

/* ssssu */
static int args_note(DBusMessage *m, call_t *a, refusal_t *x)
{
        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a->n.from, DBUS_TYPE_STRING,
                                   &a->n.to, DBUS_TYPE_STRING, &a->n.id, DBUS_TYPE_STRING,
                                   &a->n.json, DBUS_TYPE_UINT32, &a->n.flags, DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        return check_note(x, &a->n);
}

/* ssssut */
static int args_note_ticket(DBusMessage *m, call_t *a, refusal_t *x)
{
        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a->n.from, DBUS_TYPE_STRING,
                                   &a->n.to, DBUS_TYPE_STRING, &a->n.id, DBUS_TYPE_STRING,
                                   &a->n.json, DBUS_TYPE_UINT32, &a->n.flags, DBUS_TYPE_UINT64,
                                   &a->ticket, DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        return check_note(x, &a->n);
}

/* ssi */
static int args_register(DBusMessage *m, call_t *a, refusal_t *x)
{
        int r;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a->to, DBUS_TYPE_STRING, &a->id,
                                   DBUS_TYPE_INT32, &a->priority, DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        if ((r = check_receiver(x, a->to)) < 0)
                return r;
        return check_id(x, "notification ID", a->id);
}

/* ss */
static int args_unregister(DBusMessage *m, call_t *a, refusal_t *x)
{
        int r;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &a->to, DBUS_TYPE_STRING, &a->id,
                                   DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        if ((r = check_receiver(x, a->to)) < 0)
                return r;
        return check_id(x, "notification ID", a->id);
}

/* ut */
static int args_ack(DBusMessage *m, call_t *a, refusal_t *x)
{
        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_UINT32, &a->count, DBUS_TYPE_UINT64,
                                   &a->ticket, DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        return 0;
}

static int method_notify(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        if (streq(a->n.to, "*"))
                broker_broadcast(b, sender, &a->n, false);
        else
                broker_unicast(b, sender, NULL, &a->n, NULL, 0);
        return 0;
}

/* A delivery handed back (DLV-12, DLV-13, G-89): 1 when ticket is one self was handed for this
 * very content and it was re-routed (or, for a broadcast, dropped); 0 when it matches nothing
 * (the caller decides: a client's is dropped, a remote peer's is a new notification). sender
 * NULL: self ended without acknowledging it (broker_reroute). */
static int broker_return(broker_t *b, peer_t *self, const char *sender, const note_t *n,
                         uint64_t ticket)
{
        pending_t e;
        pending_t *p;
        peer_t *submitter;

        p = ticket && self ? pending_ring_find(&self->pending, ticket) : NULL;
        if (!p || p->fingerprint != pending_fingerprint(n->from, n->to, n->id, n->flags))
                return 0;
        pending_ring_take(&self->pending, p, &e);
        submitter = e.submitter;
        if (!sender) {
                /* Its receiver ended before acknowledging it (protocol.h, Ack). */
                nfy_log(LOG_DEBUG, "'%s' (ticket %" PRIu64 ") re-routed from %s", n->id, ticket,
                        self->name);
                broker_unicast(b, submitter->gone ? NULL : submitter->name, submitter, n,
                               pending_tried(&e), e.n_tried);
        } else if (streq(n->to, "*")) {
                /* G-89: a returned broadcast is dropped; everyone else had it already. */
                nfy_log(LOG_DEBUG, "%s returned broadcast '%s' (ticket %" PRIu64 "): dropped",
                        sender, n->id, ticket);
        } else {
                nfy_log(LOG_DEBUG, "%s returned '%s' (ticket %" PRIu64 ", %u tried)", sender,
                        n->id, ticket, e.n_tried);
                /* DLV-13: next candidate without any tried registration, or the unicast error
                 * to the original submitter if it is still connected (G-64: observers see every
                 * attempt). */
                broker_unicast(b, submitter->gone ? NULL : submitter->name, submitter, n,
                               pending_tried(&e), e.n_tried);
        }
        if (e.n_tried > 1)
                free(e.tried_many);
        peer_unref(submitter);
        return 1;
}

/* A unicast its receiver had not acknowledged when it ended: as if bounced (DLV-13). */
static void broker_reroute(broker_t *b, peer_t *self, const sent_copy_t *c)
{
        note_t n = {.from = c->from, .to = c->to, .id = c->id, .json = c->json, .flags = c->flags};

        (void)broker_return(b, self, NULL, &n, c->ticket);
}

static int method_bounce(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        /* G-89: only a ticket this connection was handed, for this content, still pending. Not
         * an error for the caller: a ticket may have been evicted in the meantime. */
        if (!broker_return(b, g_hash_table_lookup(b->peers, sender), sender, &a->n, a->ticket))
                nfy_log(LOG_WARNING,
                        "%s returned '%s' with unknown ticket %" PRIu64
                        " (or other from/to/id/flags than delivered): dropped",
                        sender, a->n.id, (uint64_t)a->ticket);
        return 0;
}

/* Keeps peer_t.n_subscribed. When a connection's last subscribed registration goes, its
 * Broadcast backlog goes too: no Broadcast it has not acknowledged yet can keep it looking
 * stalled now that it gets none (say it never held the match rule: the library falls back to
 * Register when AddMatch fails), and a stalled one no longer keeps broadcasts off the bus. */
static void broker_subscribed_set(broker_t *b, const char *owner, const registration_t *reg,
                                  bool subscribed)
{
        peer_t *p;

        if (reg->subscribed == subscribed)
                return;
        registry_set_subscribed(b->registry, reg, subscribed);
        p = peer_get(b, owner);
        if (!p)
                return; /* out of memory: only the clean-up below is missed */
        if (subscribed)
                b->n_subscribed++;
        else
                b->n_subscribed--;
        if (subscribed)
                p->n_subscribed++;
        else if (p->n_subscribed && --p->n_subscribed == 0) {
                backlog_clear(&p->bbacklog);
                p->n_unmarked = 0;
                p->mark_acked = p->mark_sent; /* a Mark it never got no longer counts */
        }
        peer_direct_update(b, p);
}

static int broker_register(broker_t *b, call_t *a, const char *sender, bool subscribed,
                           refusal_t *x)
{
        const char *to = a->to, *id = a->id;
        dbus_int32_t priority = a->priority;
        const registration_t *reg;
        int r;

        r = registry_add(b->registry, sender, to, id, priority, false, &reg);
        if (r == -ENOSPC)
                return refuse(x, VFIIPC_ERROR_LIMITS,
                              "a connection may hold at most %u registrations",
                              VFIIPC_REGISTRATIONS_PER_PEER_MAX);
        if (r < 0)
                return r;
        broker_subscribed_set(b, sender, reg, subscribed);
        nfy_log(LOG_INFO, "%s %s '%s' for '%s' with priority %d%s", sender,
                r > 0 ? "re-registered" : "registered", id, to, (int)priority,
                subscribed ? ", broadcasts by its match rule" : "");
        return 0;
}

static int method_register(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        return broker_register(b, a, sender, false, x);
}

/* protocol.h "Broadcast fast path". */
static int method_subscribe(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        return broker_register(b, a, sender, true, x);
}

static int method_unregister(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        const registration_t *reg = registry_find(b->registry, sender, a->to, a->id);

        if (reg)
                broker_subscribed_set(b, sender, reg, false);
        if (registry_remove(b->registry, sender, a->to, a->id) > 0)
                nfy_log(LOG_INFO, "%s unregistered '%s' for '%s'", sender, a->id, a->to);
        return 0;
}

/* protocol.h "Sync": by the time this runs, everything the caller sent before has been handled
 * and its signals queued ahead of the reply. */
static int method_sync(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        a->direct = b->n_blocking == 0; /* answered by reply_sync() */
        a->version = b->direct_version;
        return 0;
}

/* protocol.h, Ack: the connection took count more signals off the bus. */
static int method_ack(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        peer_t *p = peer_get(b, sender);

        if (!p)
                return -ENOMEM;
        p->flow = true;
        peer_acknowledge(b, p, a->count, a->ticket);
        return 0;
}

/* protocol.h "AckShared": validated so that reading it can never fault (a memfd sealed against
 * shrinking) and mapped read-only; the descriptor is not kept. */
static int method_ack_shared(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        int fd = a->fd, seals = fcntl(fd, F_GET_SEALS);
        struct stat st;
        peer_t *p = peer_get(b, sender);
        void *mem = MAP_FAILED;

        if (p && !p->page && seals >= 0 && (seals & F_SEAL_SHRINK) && fstat(fd, &st) == 0 &&
            S_ISREG(st.st_mode) && st.st_size >= (off_t)sizeof(ack_page_t))
                mem = mmap(NULL, sizeof(ack_page_t), PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (!p)
                return -ENOMEM;
        if (p->page)
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "acknowledgements are shared already");
        if (mem == MAP_FAILED)
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS,
                              "the memory must be a memfd of at least %zu bytes sealed against "
                              "shrinking",
                              sizeof(ack_page_t));
        p->page = mem;
        p->page_count = __atomic_load_n(&p->page->count, __ATOMIC_ACQUIRE);
        p->flow = true;
        return 0;
}

/* h */
static int args_ack_shared(DBusMessage *m, call_t *a, refusal_t *x)
{
        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_UNIX_FD, &a->fd, DBUS_TYPE_INVALID))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "malformed arguments");
        return 0;
}

static int method_add_observer(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        peer_t *p = peer_get(b, sender);

        if (!p)
                return -ENOMEM;
        if (!p->observer) {
                p->observer = true;
                g_ptr_array_add(b->observers, p);
                nfy_log(LOG_INFO, "%s observes", sender);
        }
        return 0;
}

static int method_remove_observer(broker_t *b, call_t *a, const char *sender,
                                  refusal_t *x)
{
        peer_t *p = g_hash_table_lookup(b->peers, sender);

        if (p && p->observer) {
                p->observer = false;
                g_ptr_array_remove(b->observers, p);
                nfy_log(LOG_INFO, "%s stopped observing", sender);
        }
        return 0;
}

/* ---- remote peers (io.vfiipc.Remote1, protocol.h) ----------------------------------------- */

/* The caller as a remote peer: the first Remote1 call makes it one for good; a connection that
 * registered or observes through Broker1 is local and stays so. */
static int peer_remote(broker_t *b, const char *sender, refusal_t *x, peer_t **ret)
{
        peer_t *p = peer_get(b, sender);

        if (!p)
                return -ENOMEM;
        if (!p->remote) {
                if (p->observer || registry_count_owner(b->registry, sender) > 0)
                        return refuse(x, VFIIPC_ERROR_ACCESS_DENIED,
                                      "a local connection cannot act as a remote peer");
                p->remote = true;
                nfy_log(LOG_INFO, "%s is a remote peer", sender);
        }
        *ret = p;
        return 0;
}

static int remote_register(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        const char *to = a->to, *id = a->id;
        dbus_int32_t priority = a->priority;
        peer_t *p;
        int r;

        if ((r = peer_remote(b, sender, x, &p)) < 0)
                return r;
        /* LIM-1, G-87: a new registration beyond the cap is discarded without reply; replacing
         * one of this connection's is fine at the limit. */
        if (b->n_remote_regs >= VFIIPC_REMOTE_REGISTRATIONS_MAX &&
            !registry_find(b->registry, sender, to, id)) {
                if (!p->cap_logged)
                        nfy_log(LOG_WARNING,
                                "remote %s: registration of '%s' for '%s' discarded: remote peers "
                                "hold %u registrations already (logged once per connection)",
                                sender, id, to, VFIIPC_REMOTE_REGISTRATIONS_MAX);
                p->cap_logged = true;
                return 0;
        }
        r = registry_add(b->registry, sender, to, id, priority, true, NULL);
        if (r < 0)
                return r == -ENOSPC ? -EINVAL : r; /* cannot happen below the cap */
        if (r == 0)
                b->n_remote_regs++;
        nfy_log(LOG_INFO, "remote %s %s '%s' for '%s' with priority %d", sender,
                r > 0 ? "re-registered" : "registered", id, to, (int)priority);
        return 0;
}

static int remote_unregister(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        peer_t *p;
        int r;

        if ((r = peer_remote(b, sender, x, &p)) < 0)
                return r;
        if (registry_remove(b->registry, sender, a->to, a->id) > 0) {
                b->n_remote_regs--; /* G-87: frees a slot at once */
                nfy_log(LOG_INFO, "remote %s unregistered '%s' for '%s'", sender, a->id, a->to);
        }
        return 0;
}

/* NFYS-3: a return (its reference is a pending ticket of this connection, G-89), else a new
 * notification that an `in` rule must admit (CFG-4; CFG-6/G-83: dropped silently, logged). */
static int remote_notify(broker_t *b, call_t *a, const char *sender, refusal_t *x)
{
        const note_t *n = &a->n;
        peer_t *p;
        int r;

        if ((r = peer_remote(b, sender, x, &p)) < 0)
                return r;
        if (broker_return(b, p, sender, n, a->ticket))
                return 0;
        if (!whitelist_allows(b->wl, WHITELIST_IN, n->from, n->to, n->id)) {
                nfy_log(LOG_WARNING,
                        "remote %s: '%s' from '%s' to '%s' matches no `in` rule: dropped", sender,
                        n->id, n->from, n->to);
                return 0;
        }
        if (streq(n->to, "*"))
                broker_broadcast(b, sender, n, false);
        else
                broker_unicast(b, sender, p, n, NULL, 0);
        return 0;
}

/* args reads and checks the arguments (NULL: none), fn acts on them. */
typedef int (*args_fn)(DBusMessage *m, call_t *a, refusal_t *x);
typedef int (*method_fn)(broker_t *b, call_t *a, const char *sender, refusal_t *x);
typedef bool (*reply_fn)(DBusMessage *reply, const call_t *a);

struct method {
        const char *name, *signature;
        args_fn args;
        method_fn fn;
        reply_fn reply; /* appends the out-arguments; NULL: none */
};

/* (b direct, t version) */
static bool reply_sync(DBusMessage *reply, const call_t *a)
{
        return dbus_message_append_args(reply, DBUS_TYPE_BOOLEAN, &a->direct, DBUS_TYPE_UINT64,
                                        &a->version, DBUS_TYPE_INVALID);
}

static const struct method methods[] = {
    {"Notify", "ssssu", args_note, method_notify}, /* first: the hot path */
    {"Bounce", "ssssut", args_note_ticket, method_bounce},
    {"Register", "ssi", args_register, method_register},
    {"Subscribe", "ssi", args_register, method_subscribe},
    {"Unregister", "ss", args_unregister, method_unregister},
    {"Ack", "ut", args_ack, method_ack},
    {"AckShared", "h", args_ack_shared, method_ack_shared},
    {"Sync", "", NULL, method_sync, reply_sync},
    {"AddObserver", "", NULL, method_add_observer},
    {"RemoveObserver", "", NULL, method_remove_observer},
};

static const struct method remote_methods[] = {
    {"Notify", "ssssut", args_note_ticket, remote_notify},
    {"Register", "ssi", args_register, remote_register},
    {"Unregister", "ss", args_unregister, remote_unregister},
};

/* ---- dispatch ----------------------------------------------------------------------------- */

static void reply_send(broker_t *b, DBusMessage *reply, const char *what)
{
        if (!reply || !dbus_connection_send(b->conn, reply, NULL))
                nfy_log(LOG_ERR, "out of memory: reply to %s dropped", what);
        if (reply)
                dbus_message_unref(reply);
}

/* An error reply when the caller waits for one; otherwise a log line (protocol.h). */
static DBusHandlerResult reply_refusal(broker_t *b, DBusMessage *m, const refusal_t *x)
{
        const char *sender = dbus_message_get_sender(m), *member = dbus_message_get_member(m);

        if (dbus_message_get_no_reply(m)) {
                nfy_log(LOG_WARNING, "%s from %s dropped: %s", member, sender ? sender : "?",
                        x->text);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        nfy_log(LOG_INFO, "%s from %s refused: %s", member, sender ? sender : "?", x->text);
        reply_send(b, dbus_message_new_error(m, x->error, x->text), member);
        return DBUS_HANDLER_RESULT_HANDLED;
}

/* h: the method, when it answers with out-arguments (h->reply). */
static DBusHandlerResult reply_ok(broker_t *b, DBusMessage *m, const struct method *h,
                                  const call_t *a)
{
        DBusMessage *reply;

        if (dbus_message_get_no_reply(m))
                return DBUS_HANDLER_RESULT_HANDLED;
        reply = dbus_message_new_method_return(m);
        if (reply && h && h->reply && !h->reply(reply, a)) {
                dbus_message_unref(reply);
                reply = NULL;
        }
        reply_send(b, reply, dbus_message_get_member(m));
        return DBUS_HANDLER_RESULT_HANDLED;
}

static DBusHandlerResult reply_introspect(broker_t *b, DBusMessage *m, const char *xml)
{
        DBusMessage *reply;

        if (dbus_message_get_no_reply(m))
                return DBUS_HANDLER_RESULT_HANDLED;
        reply = dbus_message_new_method_return(m);
        if (reply && !dbus_message_append_args(reply, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID)) {
                dbus_message_unref(reply);
                reply = NULL;
        }
        reply_send(b, reply, "Introspect");
        return DBUS_HANDLER_RESULT_HANDLED;
}

static bool is_introspect(DBusMessage *m, const char *iface, const char *member)
{
        return (!iface || streq(iface, DBUS_INTERFACE_INTROSPECTABLE)) &&
               streq(member, "Introspect");
}

static const struct method *method_find(const char *iface, const char *member, bool *remote)
{
        const struct method *t = methods;
        size_t n = ELEMENTSOF(methods);

        /* The interface is optional in a method call (D-Bus specification); without one, the
         * names are Broker1's. */
        *remote = iface && streq(iface, VFIIPC_REMOTE_INTERFACE);
        if (*remote) {
                t = remote_methods;
                n = ELEMENTSOF(remote_methods);
        } else if (iface && !streq(iface, VFIIPC_BROKER_INTERFACE))
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (streq(member, t[i].name))
                        return &t[i];
        return NULL;
}

/* Everything about a call that does not depend on the broker's state. Exact signature first,
 * so that dbus_message_get_args() cannot see other types. */
static int call_check(DBusMessage *m, const struct method *h, call_t *a, refusal_t *x)
{
        if (!dbus_message_has_signature(m, h->signature))
                return refuse(x, VFIIPC_ERROR_INVALID_ARGS, "%s expects arguments '%s', not '%s'",
                              h->name, h->signature, dbus_message_get_signature(m));
        return h->args ? h->args(m, a, x) : 0;
}

static DBusHandlerResult method_call(broker_t *b, DBusMessage *m, const struct method *h,
                                     const char *sender)
{
        refusal_t x;
        call_t a;
        int r;

        x.error = NULL;
        a.fd = -1;
        r = call_check(m, h, &a, &x);
        if (r >= 0)
                r = h->fn(b, &a, sender, &x);
        broker_bmatch_update(b); /* before the reply */
        if (r == -ENOMEM && !x.error)
                refuse(&x, DBUS_ERROR_NO_MEMORY, "out of memory");
        if (r < 0)
                return reply_refusal(b, m, &x);
        return reply_ok(b, m, h, &a);
}

static DBusHandlerResult broker_message(DBusConnection *c, DBusMessage *m, void *userdata)
{
        broker_t *b = userdata;
        const char *iface, *member, *sender;
        const struct method *h;
        refusal_t x;
        bool remote;

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_METHOD_CALL)
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        iface = dbus_message_get_interface(m);
        member = dbus_message_get_member(m);
        sender = dbus_message_get_sender(m);
        if (!member || !sender)
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        broker_take_in(b);

        h = method_find(iface, member, &remote);
        if (h && !remote) {
                /* A remote peer's connection never uses Broker1: no observing (LIM-3, DLV-8),
                 * no unchecked notifications. */
                const peer_t *p = g_hash_table_lookup(b->peers, sender);

                if (p && p->remote) {
                        refuse(&x, VFIIPC_ERROR_ACCESS_DENIED,
                               "a remote peer's connection may only call %s",
                               VFIIPC_REMOTE_INTERFACE);
                        return reply_refusal(b, m, &x);
                }
        }
        if (h)
                return method_call(b, m, h, sender);
        if (is_introspect(m, iface, member))
                return reply_introspect(b, m, introspect_broker);
        refuse(&x, DBUS_ERROR_UNKNOWN_METHOD, "no method %s.%s with arguments '%s'",
               iface ? iface : "(any interface)", member, dbus_message_get_signature(m));
        return reply_refusal(b, m, &x);
}

int broker_check_call(DBusMessage *m, DBusError *error)
{
        const char *member = dbus_message_get_member(m);
        const struct method *h;
        refusal_t x;
        call_t a;
        bool remote;
        int r;

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_METHOD_CALL || !member)
                return -ENOENT;
        h = method_find(dbus_message_get_interface(m), member, &remote);
        if (!h)
                return -ENOENT;
        a.fd = -1;
        r = call_check(m, h, &a, &x);
        if (r < 0)
                dbus_set_error(error, x.error, "%s", x.text);
        if (a.fd >= 0)
                close(a.fd);
        return r;
}

static DBusHandlerResult parent_message(DBusConnection *c, DBusMessage *m, void *userdata)
{
        const char *path = dbus_message_get_path(m);

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_METHOD_CALL || !path ||
            !is_introspect(m, dbus_message_get_interface(m), dbus_message_get_member(m)))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        for (size_t i = 0; i < ELEMENTSOF(parent_nodes); i++)
                if (streq(path, parent_nodes[i].path))
                        return reply_introspect(userdata, m, parent_nodes[i].xml);
        return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

/* REGS-3: the bus driver reports a unique name without owner when a connection ends. Only the
 * driver can send as org.freedesktop.DBus, and the broker hears only its own bus. */
static DBusHandlerResult broker_filter(DBusConnection *c, DBusMessage *m, void *userdata)
{
        const char *sender, *name, *old_owner, *new_owner;

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL)
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        if (dbus_message_has_member(m, "Broadcast") &&
            dbus_message_has_path(m, VFIIPC_BROADCAST_PATH)) {
                broker_broadcast_seen(userdata, m);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        if (!dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameOwnerChanged"))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        sender = dbus_message_get_sender(m);
        if (!sender || !streq(sender, DBUS_SERVICE_DBUS) ||
            !dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &old_owner,
                                   DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        if (name[0] == ':' && isempty(new_owner))
                broker_forget(userdata, name);
        /* Others on this connection (the server) may want it too. */
        return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static const DBusObjectPathVTable broker_vtable = {.message_function = broker_message};
static const DBusObjectPathVTable parent_vtable = {.message_function = parent_message};

/* ---- life cycle --------------------------------------------------------------------------- */

/* Also takes in the shared acknowledgements of connections with a backlog, so that what they
 * took is freed even when nothing more is sent to them. */
int broker_caught_up(broker_t *b)
{
        GHashTableIter it;
        peer_t *p;
        int64_t due = INT64_MAX;

        if (!b)
                return -1;
        b->caught_up_ms = monotonic_ms(CLOCK_MONOTONIC_COARSE);
        b->now_ms = b->caught_up_ms;
        g_hash_table_iter_init(&it, b->peers);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&p)) {
                int64_t d;

                peer_sync(b, p);
                d = peer_mark(b, p, true);
                if (d < due)
                        due = d;
        }
        if (due == INT64_MAX)
                return -1;
        due -= b->now_ms;
        /* At least 1: the coarse clock may not have reached a time the real one has. */
        return due < 1 ? 1 : due > INT_MAX ? INT_MAX : (int)due;
}

uint64_t broker_n_handled(const broker_t *b)
{
        return b ? b->n_handled : 0;
}

broker_t *broker_free(broker_t *b)
{
        GHashTableIter it;
        gpointer v;

        if (!b)
                return NULL;
        if (b->filter_added)
                dbus_connection_remove_filter(b->conn, broker_filter, b);
        if (b->match_added)
                dbus_bus_remove_match(b->conn, BROKER_MATCH_NAME_LOST, NULL); /* no wait */
        if (b->bmatch_added)
                dbus_bus_remove_match(b->conn, BROKER_MATCH_BROADCASTS, NULL);
        if (b->path_registered)
                dbus_connection_unregister_object_path(b->conn, VFIIPC_BROKER_PATH);
        for (unsigned i = 0; i < b->n_parents; i++)
                dbus_connection_unregister_object_path(b->conn, parent_nodes[i].path);

        /* Tickets hold references to other peers: drop them all before the peers. */
        if (b->peers) {
                g_hash_table_iter_init(&it, b->peers);
                while (g_hash_table_iter_next(&it, NULL, &v))
                        pending_ring_clear(&((peer_t *)v)->pending);
                g_hash_table_unref(b->peers);
        }
        if (b->observers)
                g_ptr_array_unref(b->observers);
        registry_free(b->registry);
        wire_done(&b->wire);
        dbus_connection_unref(b->conn);
        free(b);
        return NULL;
}

static int dbus_error_errno(const DBusError *err)
{
        if (dbus_error_has_name(err, DBUS_ERROR_NO_MEMORY))
                return -ENOMEM;
        if (dbus_error_has_name(err, DBUS_ERROR_OBJECT_PATH_IN_USE))
                return -EEXIST;
        if (dbus_error_has_name(err, DBUS_ERROR_DISCONNECTED) ||
            dbus_error_has_name(err, DBUS_ERROR_NO_REPLY))
                return -ECONNRESET;
        return -EIO;
}

int broker_new(DBusConnection *c, const whitelist_t *wl, broker_t **ret)
{
        broker_t *b;
        DBusError err;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->conn = dbus_connection_ref(c);
        b->wl = wl;
        b->peers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, peer_unref);
        b->observers = g_ptr_array_new();
        wire_init(&b->wire);
        r = registry_new(VFIIPC_REGISTRATIONS_PER_PEER_MAX, &b->registry);
        if (r < 0)
                goto fail;

        /* The match first: a connection that ends after this is seen ending (REGS-3). Messages
         * are dispatched only later, by the loop, so none is handled before it is in place. */
        if (!dbus_connection_add_filter(c, broker_filter, b, NULL)) {
                r = -ENOMEM;
                goto fail;
        }
        b->filter_added = true;
        dbus_error_init(&err);
        dbus_bus_add_match(c, BROKER_MATCH_NAME_LOST, &err);
        if (dbus_error_is_set(&err)) {
                r = nfy_log_errno(LOG_ERR, dbus_error_errno(&err),
                                  "cannot watch connections ending: %s", err.message);
                dbus_error_free(&err);
                goto fail;
        }
        b->match_added = true;

        if (!dbus_connection_try_register_object_path(c, VFIIPC_BROKER_PATH, &broker_vtable, b,
                                                      &err)) {
                r = nfy_log_errno(LOG_ERR, dbus_error_errno(&err), "cannot serve %s: %s",
                                  VFIIPC_BROKER_PATH, err.message);
                dbus_error_free(&err);
                goto fail;
        }
        b->path_registered = true;
        for (; b->n_parents < ELEMENTSOF(parent_nodes); b->n_parents++)
                if (!dbus_connection_try_register_object_path(c, parent_nodes[b->n_parents].path,
                                                              &parent_vtable, b, &err)) {
                        r = nfy_log_errno(LOG_ERR, dbus_error_errno(&err), "cannot serve %s: %s",
                                          parent_nodes[b->n_parents].path, err.message);
                        dbus_error_free(&err);
                        goto fail;
                }

        nfy_log(LOG_INFO, "broker serving %s on %s", VFIIPC_BROKER_INTERFACE, VFIIPC_BROKER_PATH);
        *ret = b;
        return 0;
fail:
        broker_free(b);
        return r;
}
