/* lib/client/client.c — the notification client (see client.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <dbus/dbus.h>
#include <glib.h>

#include "bus/address.h"
#include "bus/loop.h"
#include "bus/protocol.h"
#include "bus/wire.h"
#include "client/client.h"
#include "client/workers.h"
#include "core/log.h"
#include "json/json-text.h"
#include "vfiipc/notify.h"

#define CALL_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 50   /* G-68: reconnect with back-off, 50 ms doubling … */
#define BACKOFF_MAX_MS 1000 /* … to 1 s: back within 2 s of a restart (issue #8) */
/* Flow accounting (protocol.h, Ack and AckShared): the broker's signals are acknowledged per
 * batch that the dispatcher took off the bus, before the batch's callbacks start: so what the
 * broker has not seen acknowledged has certainly not reached a callback, and re-routing it
 * when this process dies is never a duplicate. Normally that is two stores into the page shared
 * with the broker. Where the bus cannot pass the page (no fd passing), it is an Ack message:
 * then only a batch with a unicast the broker could re-route (a Deliver with a ticket) waits
 * for its Ack to be written; anything else (broadcasts, observations, unicast errors: never
 * re-routed) starts at once and is acknowledged with the next such batch, after ACK_BATCH
 * signals, or ACK_LAZY_MS after it arrived (well inside VFIIPC_STALL_MS). */
#define ACK_BATCH 64u
#define ACK_LAZY_MS 50
/* A sender waits while more than this is queued on its connection: an Ack queued behind a
 * burst of the process's own Notifies would reach the broker seconds late, and the broker
 * would take a busy receiver for a stalled one (VFIIPC_STALL_MS) and drop what is meant for it. */
#define SEND_QUEUE_MAX (1024 * 1024)

#define MATCH_BROKER_OWNER                                                                       \
        "type='signal',sender='" DBUS_SERVICE_DBUS "',interface='" DBUS_INTERFACE_DBUS           \
        "',member='NameOwnerChanged',arg0='" VFIIPC_BROKER_NAME "'"
/* protocol.h "DirectBroadcasts". */
#define MATCH_DIRECT                                                                               \
        "type='signal',sender='" VFIIPC_BROKER_NAME "',path='" VFIIPC_BROKER_PATH                 \
        "',interface='" VFIIPC_BROKER_INTERFACE "',member='DirectBroadcasts'"

typedef enum slot_kind {
        SLOT_NOTIFY,   /* ipcRegisterNotificationCB */
        SLOT_ERROR,    /* ipcRegisterUnicastError */
        SLOT_OBSERVER, /* ipcRegisterObserver */
} slot_kind_t;

/* One registered callback. Its table holds a reference, and so does every queued task, so a
 * task never touches freed memory after an unregister (G-06's "tokens, not raw pointers"). */
typedef struct slot {
        gint ref;
        slot_kind_t kind;
        client_invoke_fn notify;   /* SLOT_NOTIFY, SLOT_ERROR */
        client_observe_fn observe; /* SLOT_OBSERVER */
        client_fn cb;
        void *data;
        unsigned running; /* invocations in progress; client.lock */
        bool removed;     /* no invocation starts any more; client.lock */
        char *to, *id;    /* SLOT_NOTIFY: the registration's key */
        int priority;
} slot_t;

/* A notification ID this process holds registrations of, and its broadcast match rule
 * (protocol.h "Broadcast fast path"). Changed under send_lock and lock, so the rule's
 * AddMatch/RemoveMatch and the Subscribe/Unregister they guard go out in the order decided. */
typedef struct topic {
        char *id;
        GPtrArray *slots;  /* slot_t of this ID in client.regs, no references */
        bool matched;      /* its match rule is on the current connection */
        unsigned releases; /* Unregisters in flight whose answer may remove the rule */
} topic_t;

/* What a worker runs: one callback invocation for one received signal. */
typedef struct task {
        slot_t *slot;
        DBusMessage *msg; /* owns the strings below */
        const char *from, *to, *id, *json;
        unsigned flags;
        uint64_t ticket; /* non-zero: a unicast the broker can re-route (Bounce) */
        struct task *next; /* in tasks_done */
} task_t;

/* Tasks whose callback has run, freed by the dispatcher that allocated them (tasks_reap()):
 * memory freed on another thread than it came from goes the slow way through glibc's arena,
 * which was a sixth of a worker's time. A lock-free stack: workers push, the dispatcher takes
 * all. */
static _Atomic(task_t *) tasks_done;
#define TASK_REAP_MAX 4096 /* bytes of JSON: larger tasks are freed by the worker */

typedef enum conn_state {
        CONN_NONE,         /* never connected, or the last attempt failed: calls try again */
        CONN_UP,           /* connected, dispatcher running */
        CONN_RECONNECTING, /* lost; the dispatcher re-connects with back-off (G-68) */
} conn_state_t;

static struct client {
        pthread_mutex_t lock; /* all state below; never held across callbacks or blocking calls */
        pthread_cond_t changed;       /* some slot's running count dropped */
        pthread_mutex_t connect_lock; /* serialises first connection set-ups */
        /* Held while a change of the tables and the message telling the broker about it are
         * queued together, so the broker hears of changes in the order they happened (a
         * Register and an Unregister of one key from two threads, a re-registration after a
         * reconnect). Taken before `lock`; never held while waiting for a reply. */
        pthread_mutex_t send_lock;
        int sock_fd; /* the connection's socket, closed in a fork()ed child (G-76) */
        conn_state_t state;
        DBusConnection *conn;
        char *broker; /* unique name of the broker: the only accepted signal sender */
        char *app_id;
        GHashTable *regs;     /* (to, id) → slot_t*, SLOT_NOTIFY */
        GHashTable *topics;   /* id → topic_t: the registrations of each ID, its match rule */
        unsigned n_matches;   /* topics with matched set (VFIIPC_BROADCAST_MATCHES_MAX) */
        unsigned gen;         /* counts connections: match rules belong to one */
        GPtrArray *errors;    /* slot_t*, SLOT_ERROR */
        GPtrArray *observers; /* slot_t*, SLOT_OBSERVER */
        workers_t *pool;
} client = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .changed = PTHREAD_COND_INITIALIZER,
        .connect_lock = PTHREAD_MUTEX_INITIALIZER,
        .send_lock = PTHREAD_MUTEX_INITIALIZER,
        .sock_fd = -1,
};

/* The dispatcher thread does its own I/O when it calls the broker (its loop is not running
 * then); every other thread leaves the I/O to the loop and waits for the reply. */
static __thread bool on_dispatcher;

/* The slot whose callback runs on this thread: unregistering it from inside itself must not
 * wait for itself (UNREG-5, G-69). */
static __thread slot_t *current_slot;

static pthread_once_t client_once = PTHREAD_ONCE_INIT;

/* Broker signals received and not acknowledged yet, and the callbacks they produced, held
 * until the Ack is written: dispatcher thread only (before the dispatcher starts, the thread
 * that connects). */
static struct ack_state {
        dbus_uint32_t unacked;         /* signals addressed to this connection */
        unsigned batch;                /* signals of either kind since the last Ack */
        bool urgent;                   /* held: a Deliver with a ticket (see ACK_BATCH) */
        ack_page_t *page;              /* shared with the broker (AckShared), or NULL: Ack */
        uint64_t total;                /* page->count: all signals counted since it was shared */
        int64_t due_ms;                /* when the Ack must go out at the latest; 0: none due */
        dbus_uint64_t mark, mark_acked; /* the last Mark taken off the bus, acknowledged */
        unsigned serial; /* of the last Ack sent */
        GQueue held; /* task_t, in arrival order */
} ack;

/* protocol.h "Broadcasts by the bus", the sending side: whether a broadcast may go out as a
 * Broadcast signal now. `sent` counts the Notify calls queued on the connection; a Sync covers
 * those counted before it was queued, so once `synced` has caught up, the broker has put on
 * the bus everything this process sent it, and a Broadcast cannot overtake any of it (ORD-3).
 * To get there while notifications keep coming, a broadcast that finds `synced` behind is held
 * with everything after it until its Sync is answered (a round trip), then they go out in
 * order. */
static struct direct_state {
        pthread_mutex_t lock; /* recursive; everything here; held while queueing, never waiting */
        bool known;           /* allowed was answered by this broker */
        bool allowed;         /* its DirectBroadcasts, as of version */
        uint64_t version;
        bool usable;          /* the connection watches DirectBroadcasts and shares a page */
        ack_page_t *page;     /* ack.page, where Broadcasts sent are counted for the broker */
        uint64_t sent, synced;
        unsigned epoch; /* one per connection or broker: older answers are ignored */
        unsigned hold;  /* the Sync that ends the current hold (0: none) */
        unsigned n_sync; /* numbers Syncs */
        GQueue held;    /* DBusMessage: Broadcast or Notify, in order */
        size_t held_bytes;
        pthread_cond_t ended; /* a hold ended */
} direct = {.lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, .ended = PTHREAD_COND_INITIALIZER};

/* Held bytes beyond which ipcNotify waits for the hold to end: back-pressure as with
 * SEND_QUEUE_MAX. Sending them through the broker instead would feed the very queue the Sync
 * waits behind, and a fast sender would never get out of it. */
#define HOLD_BYTES_MAX (1024 * 1024)

/* The serial of the last Ack libdbus has let go of (written, or dropped with its connection). */
static atomic_uint ack_written;
static dbus_int32_t ack_slot = -1;

static void ack_gone(void *data)
{
        unsigned n = (unsigned)(uintptr_t)data, old = atomic_load(&ack_written);

        while (old < n && !atomic_compare_exchange_weak(&ack_written, &old, n))
                ;
}

/* ---- slots and the registration table ---------------------------------------------------- */

typedef struct reg_key {
        const char *to, *id;
} reg_key_t;

static guint reg_key_hash(gconstpointer p)
{
        const slot_t *s = p;
        return g_str_hash(s->to) * 31 + g_str_hash(s->id);
}

static gboolean reg_key_equal(gconstpointer a, gconstpointer b)
{
        const slot_t *x = a, *y = b;
        return streq(x->to, y->to) && streq(x->id, y->id);
}

static slot_t *slot_ref(slot_t *s)
{
        g_atomic_int_inc(&s->ref);
        return s;
}

static void slot_unref(slot_t *s)
{
        if (!s || !g_atomic_int_dec_and_test(&s->ref))
                return;
        free(s->to);
        free(s->id);
        free(s);
}

static slot_t *slot_new(slot_kind_t kind, client_fn cb, void *data)
{
        slot_t *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->ref = 1;
        s->kind = kind;
        s->cb = cb;
        s->data = data;
        return s;
}

/* Looks up (to, id) without allocating: the table is keyed by the slots themselves. */
static slot_t *regs_lookup(const char *to, const char *id)
{
        slot_t probe = {.to = (char *)to, .id = (char *)id};

        return client.regs ? g_hash_table_lookup(client.regs, &probe) : NULL;
}

static void topic_free(void *p)
{
        topic_t *t = p;

        if (!t)
                return;
        g_ptr_array_unref(t->slots);
        free(t->id);
        free(t);
}

/* Called with client.lock. NULL when out of memory. */
static topic_t *topic_get_locked(const char *id)
{
        topic_t *t;

        if (!client.topics)
                client.topics = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, topic_free);
        t = g_hash_table_lookup(client.topics, id);
        if (t)
                return t;
        t = calloc(1, sizeof(*t));
        if (!t || !(t->id = strdup(id))) {
                free(t);
                return NULL;
        }
        t->slots = g_ptr_array_new();
        g_hash_table_insert(client.topics, t->id, t);
        return t;
}

/* Its rule is not (or no longer) on the connection. client.lock. */
static void topic_unmatch_locked(topic_t *t)
{
        if (t && t->matched) {
                t->matched = false;
                client.n_matches--;
        }
}

/* Forgets a topic that has no registration, no rule and nothing in flight. client.lock. */
static void topic_gc_locked(topic_t *t)
{
        if (t && t->slots->len == 0 && !t->matched && t->releases == 0)
                g_hash_table_remove(client.topics, t->id);
}

/* AddMatch or RemoveMatch of the rule for id's Broadcast signals, to the bus driver. */
static DBusMessage *match_message_new(const char *method, const char *id)
{
        char iface[WIRE_BROADCAST_INTERFACE_SIZE], rule[256 + WIRE_BROADCAST_INTERFACE_SIZE];
        const char *p = rule;
        DBusMessage *m;

        wire_broadcast_interface(iface, id);
        snprintf(rule, sizeof(rule),
                 "type='signal',path='" VFIIPC_BROADCAST_PATH "',interface='%s',member='Broadcast'",
                 iface);
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         method);
        if (m && !dbus_message_append_args(m, DBUS_TYPE_STRING, &p, DBUS_TYPE_INVALID)) {
                dbus_message_unref(m);
                m = NULL;
        }
        return m;
}

/* UNREG-4, UE-7, OBS-7: returns when none of the slots runs (except on this very thread). */
static void slots_wait(slot_t *const *v, size_t n)
{
        pthread_mutex_lock(&client.lock);
        for (size_t i = 0; i < n; i++)
                while (v[i]->running > (v[i] == current_slot ? 1u : 0u))
                        pthread_cond_wait(&client.changed, &client.lock);
        pthread_mutex_unlock(&client.lock);
}

/* ---- process set-up ---------------------------------------------------------------------- */

static void task_run(void *p);

/* fork() while another thread changes the state would hand the child a half-done change. */
static void client_atfork_prepare(void)
{
        pthread_mutex_lock(&client.connect_lock);
        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        pthread_mutex_lock(&direct.lock);
}

static void client_atfork_parent(void)
{
        pthread_mutex_unlock(&direct.lock);
        pthread_mutex_unlock(&client.lock);
        pthread_mutex_unlock(&client.send_lock);
        pthread_mutex_unlock(&client.connect_lock);
}

/* G-76: the child of fork() has no connection, threads or registrations; it starts afresh.
 * The parent's libdbus objects are left alone (their locks may be held by vanished threads),
 * but the inherited socket is closed: otherwise the parent's registrations would live on in
 * the broker as long as the child does. */
static void client_atfork_child(void)
{
        pthread_mutexattr_t a;

        /* A recursive mutex belongs to a thread id, and this thread has another one now. */
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&direct.lock, &a);
        pthread_mutexattr_destroy(&a);
        pthread_cond_init(&direct.ended, NULL);
        pthread_mutex_unlock(&client.lock);
        pthread_mutex_unlock(&client.send_lock);
        pthread_mutex_unlock(&client.connect_lock);
        pthread_cond_init(&client.changed, NULL);
        if (client.sock_fd >= 0)
                close(client.sock_fd);
        client.sock_fd = -1;
        client.state = CONN_NONE;
        client.conn = NULL;
        client.broker = NULL;
        client.regs = NULL;
        client.topics = NULL;
        client.n_matches = 0;
        client.errors = NULL;
        client.observers = NULL;
        client.pool = NULL;
        current_slot = NULL;
        /* Held messages belong to the parent's connection: left alone like it. */
        g_queue_init(&direct.held);
        direct.held_bytes = 0;
        direct.hold = 0;
        direct.known = direct.allowed = false;
        direct.epoch++;
}

static void client_once_init(void)
{
        dbus_threads_init_default();
        dbus_message_allocate_data_slot(&ack_slot);
        pthread_atfork(client_atfork_prepare, client_atfork_parent, client_atfork_child);
}

/* Tables and worker pool, created on first use (LIFE-1, G-77). Called with client.lock. */
static int client_tables_ensure(void)
{
        if (client.pool)
                return 0;
        if (!client.regs)
                client.regs = g_hash_table_new_full(reg_key_hash, reg_key_equal,
                                                    (GDestroyNotify)slot_unref, NULL);
        if (!client.errors)
                client.errors = g_ptr_array_new_with_free_func((GDestroyNotify)slot_unref);
        if (!client.observers)
                client.observers = g_ptr_array_new_with_free_func((GDestroyNotify)slot_unref);
        /* CBT-1/CBT-2: as many threads as callbacks run at once; one waits for another at most
         * WORKERS_STALL_MS (lib/client/workers.h); idle threads exit. A fork()ed child starts
         * with none (client_atfork_child). */
        if (workers_new(task_run, &client.pool) < 0) {
                nfycl_log(LOG_ERR, "cannot create callback threads: out of memory");
                return -ENOMEM;
        }
        return 0;
}

/* ---- talking to the broker ---------------------------------------------------------------- */

static int dbus_error_to_errno(const DBusError *err)
{
        if (dbus_error_has_name(err, DBUS_ERROR_ACCESS_DENIED) ||
            dbus_error_has_name(err, DBUS_ERROR_AUTH_FAILED))
                return -EACCES;
        if (dbus_error_has_name(err, DBUS_ERROR_NO_MEMORY))
                return -ENOMEM;
        if (dbus_error_has_name(err, DBUS_ERROR_INVALID_ARGS))
                return -EINVAL;
        if (dbus_error_has_name(err, DBUS_ERROR_LIMITS_EXCEEDED))
                return -E2BIG;
        return -ENOTCONN;
}

static int result_from_errno(int r)
{
        if (r >= 0)
                return VFIIPC_OK;
        return r == -EACCES || r == -EPERM ? VFIIPC_ERR_PERMISSION : VFIIPC_ERR_SERVER;
}

/* D-Bus strings must be valid UTF-8 (libdbus aborts on invalid ones), and IDs are bounded. */
static bool id_valid(const char *what, const char *s)
{
        if (strlen(s) > VFIIPC_ID_MAX) {
                nfycl_log(LOG_ERR, "%s is longer than %u bytes", what, VFIIPC_ID_MAX);
                return false;
        }
        if (!dbus_validate_utf8(s, NULL)) {
                nfycl_log(LOG_ERR, "%s is not valid UTF-8", what);
                return false;
        }
        return true;
}

static DBusMessage *broker_call_new(const char *method)
{
        return dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                            VFIIPC_BROKER_INTERFACE, method);
}

/* A call in flight: the loop thread reads its reply and signals the waiter. */
typedef struct call {
        DBusPendingCall *pending;
        struct call_wait *wait;
        DBusMessage *reply; /* dispatcher thread: the reply of a blocking call */
        int error;          /* set when queueing already failed */
} call_t;

typedef struct call_wait {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
} call_wait_t;

static void call_wait_free(void *p)
{
        call_wait_t *w = p;

        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
}

static void call_done(DBusPendingCall *pending, void *data)
{
        call_wait_t *w = data;

        pthread_mutex_lock(&w->lock);
        w->done = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

/* Sends a call without a reply. Takes m. */
static int broker_send(DBusConnection *c, DBusMessage *m)
{
        int r;

        dbus_message_set_no_reply(m, TRUE);
        r = dbus_connection_send(c, m, NULL) ? 0 : -ENOMEM;
        dbus_message_unref(m);
        return r;
}

/* Queues a call whose reply broker_call_finish() waits for; cheap, so callers may hold
 * send_lock. On the dispatcher thread the call completes here (its loop is not running).
 * Takes m. */
static void broker_call_start(DBusConnection *c, DBusMessage *m, call_t *call)
{
        pthread_condattr_t a;
        call_wait_t *w;

        *call = (call_t){0};
        if (on_dispatcher) {
                DBusError err;
                dbus_error_init(&err);
                call->reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS,
                                                                        &err);
                if (!call->reply) {
                        call->error = dbus_error_to_errno(&err);
                        nfycl_log(LOG_ERR, "server call failed: %s", err.message);
                        dbus_error_free(&err);
                }
                dbus_message_unref(m);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                dbus_message_unref(m);
                call->error = -ENOMEM;
                return;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &a);
        pthread_condattr_destroy(&a);
        if (!dbus_connection_send_with_reply(c, m, &call->pending, CALL_TIMEOUT_MS) ||
            !call->pending) {
                /* NULL pending: the connection is gone already. */
                call->error = call->pending ? -ENOMEM : -ENOTCONN;
                dbus_message_unref(m);
                call_wait_free(w);
                return;
        }
        dbus_message_unref(m);
        if (!dbus_pending_call_set_notify(call->pending, call_done, w, call_wait_free)) {
                call_wait_free(w);
                dbus_pending_call_cancel(call->pending);
                call->error = -ENOMEM;
                return;
        }
        call->wait = w;
}

/* Waits for the reply (the loop's timer ends the call after CALL_TIMEOUT_MS; our own deadline
 * is a safety net). 0 for a method return, else a negative errno. */
static int broker_call_finish(call_t *call)
{
        struct timespec deadline;
        DBusMessage *reply = call->reply;
        DBusError err;
        int r = call->error;

        if (call->pending) {
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += CALL_TIMEOUT_MS / 1000 + 5;
                for (;;) {
                        bool done;
                        /* Outside w->lock: the completed flag takes the connection's lock. */
                        if (dbus_pending_call_get_completed(call->pending))
                                break;
                        pthread_mutex_lock(&call->wait->lock);
                        done = call->wait->done;
                        if (!done && pthread_cond_timedwait(&call->wait->cond,
                                                            &call->wait->lock,
                                                            &deadline) == ETIMEDOUT)
                                done = true;
                        pthread_mutex_unlock(&call->wait->lock);
                        if (done)
                                break;
                }
                reply = dbus_pending_call_steal_reply(call->pending);
                if (!reply) {
                        dbus_pending_call_cancel(call->pending);
                        r = -ETIMEDOUT;
                        nfycl_log(LOG_ERR, "server call timed out");
                }
                dbus_pending_call_unref(call->pending); /* frees the wait record */
        }
        if (reply) {
                dbus_error_init(&err);
                if (dbus_set_error_from_message(&err, reply)) {
                        r = dbus_error_to_errno(&err);
                        nfycl_log(LOG_ERR, "server call failed: %s", err.message);
                        dbus_error_free(&err);
                }
                dbus_message_unref(reply);
        }
        *call = (call_t){0};
        return r;
}

/* broker_call_start() for a message that could not be built (NULL: out of memory). */
static void broker_call_start_or_fail(DBusConnection *c, DBusMessage *m, call_t *call)
{
        if (m)
                broker_call_start(c, m, call);
        else
                *call = (call_t){.error = -ENOMEM};
}

/* Sends a call and waits for the broker's answer. Takes m. */
static int broker_call(DBusConnection *c, DBusMessage *m)
{
        call_t call;

        broker_call_start(c, m, &call);
        return broker_call_finish(&call);
}

/* subscribe: Subscribe instead of Register (protocol.h "Broadcast fast path"). */
static DBusMessage *register_message_new(bool subscribe, const char *to, const char *id,
                                         int priority)
{
        DBusMessage *m = broker_call_new(subscribe ? "Subscribe" : "Register");
        dbus_int32_t prio = priority;

        if (m && !dbus_message_append_args(m, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id,
                                           DBUS_TYPE_INT32, &prio, DBUS_TYPE_INVALID)) {
                dbus_message_unref(m);
                m = NULL;
        }
        return m;
}

static int broker_register_send(DBusConnection *c, bool subscribe, const char *to, const char *id,
                                int priority)
{
        DBusMessage *m = register_message_new(subscribe, to, id, priority);

        return m ? broker_send(c, m) : -ENOMEM;
}

static int broker_send_simple(DBusConnection *c, const char *method)
{
        DBusMessage *m = broker_call_new(method);

        return m ? broker_send(c, m) : -ENOMEM;
}

/* DLV-12: a delivery for a registration this process no longer has goes back to the broker,
 * which hands it to the next receiver or raises the unicast error. */
static void broker_bounce(DBusConnection *c, const task_t *t)
{
        DBusMessage *m = broker_call_new("Bounce");
        dbus_uint32_t flags = t->flags;
        dbus_uint64_t ticket = t->ticket;

        if (!m || !dbus_message_append_args(m, DBUS_TYPE_STRING, &t->from, DBUS_TYPE_STRING,
                                            &t->to, DBUS_TYPE_STRING, &t->id, DBUS_TYPE_STRING,
                                            &t->json, DBUS_TYPE_UINT32, &flags, DBUS_TYPE_UINT64,
                                            &ticket, DBUS_TYPE_INVALID)) {
                nfycl_log(LOG_ERR, "out of memory: cannot return '%s' to the server", t->id);
                if (m)
                        dbus_message_unref(m);
                return;
        }
        nfycl_log(LOG_DEBUG, "returning '%s' for '%s' to the server", t->id, t->to);
        broker_send(c, m);
}

/* ---- broadcast match rules (protocol.h "Broadcast fast path") --------------------------------- */

static DBusMessage *unregister_message_new(const char *to, const char *id);

/* An Unregister whose answer may remove the ID's rule: by then the broker counts no
 * subscription of ours any more, and every Broadcast it sent before has arrived. */
typedef struct release {
        atomic_bool ran; /* topic_released() ran, or topic_release_send() did its work */
        unsigned gen;
        char id[]; /* the topic's */
} release_t;

/* Called with send_lock. */
static void topic_released_locked(const release_t *rel)
{
        DBusConnection *c = NULL;
        topic_t *t = NULL;

        pthread_mutex_lock(&client.lock);
        if (rel->gen == client.gen && client.topics)
                t = g_hash_table_lookup(client.topics, rel->id);
        if (t && t->releases > 0 && --t->releases == 0 && t->slots->len == 0 && t->matched) {
                topic_unmatch_locked(t);
                c = client.conn ? dbus_connection_ref(client.conn) : NULL;
        }
        topic_gc_locked(t);
        pthread_mutex_unlock(&client.lock);
        if (c) {
                DBusMessage *m = match_message_new("RemoveMatch", rel->id);
                if (m)
                        broker_send(c, m);
                dbus_connection_unref(c);
        }
}

static void topic_released(DBusPendingCall *pending, void *data)
{
        release_t *rel = data;

        (void)pending;
        if (atomic_exchange(&rel->ran, true))
                return;
        pthread_mutex_lock(&client.send_lock);
        topic_released_locked(rel);
        pthread_mutex_unlock(&client.send_lock);
}

/* Takes s out of its topic. True when that was the last registration of a topic with a rule:
 * the caller must then send its Unregister with topic_release_send() (t->releases counts it
 * already). Called with send_lock and client.lock. */
static bool topic_slot_remove_locked(slot_t *s)
{
        topic_t *t = client.topics ? g_hash_table_lookup(client.topics, s->id) : NULL;

        if (!t)
                return false;
        g_ptr_array_remove(t->slots, s);
        if (t->slots->len == 0 && t->matched) {
                t->releases++;
                return true;
        }
        topic_gc_locked(t);
        return false;
}

/* Unregister(to, id) with topic_released() on its answer. Called with send_lock, not lock. */
static void topic_release_send(DBusConnection *c, const char *to, const char *id, unsigned gen)
{
        DBusMessage *m = unregister_message_new(to, id);
        DBusPendingCall *pending = NULL;
        release_t *rel = malloc(sizeof(*rel) + strlen(id) + 1);

        if (rel) {
                atomic_init(&rel->ran, false);
                rel->gen = gen;
                strcpy(rel->id, id);
        }
        if (m && rel && dbus_connection_send_with_reply(c, m, &pending, CALL_TIMEOUT_MS)) {
                if (pending && dbus_pending_call_set_notify(pending, topic_released, rel, free)) {
                        /* libdbus runs the notification only for an answer read after it was
                         * set; one the dispatcher read in between is handled here (and the
                         * flag keeps a notification racing this from doing it again). */
                        if (dbus_pending_call_get_completed(pending) &&
                            !atomic_exchange(&rel->ran, true))
                                topic_released_locked(rel);
                        dbus_pending_call_unref(pending);
                        dbus_message_unref(m);
                        return;
                }
                if (pending) {
                        dbus_pending_call_cancel(pending);
                        dbus_pending_call_unref(pending);
                }
        } else if (m) {
                broker_send(c, dbus_message_ref(m)); /* at least the Unregister, unanswered */
        }
        /* Not watched: the rule stays until the connection ends (harmless: a Broadcast of an
         * ID without registrations is ignored). */
        free(rel);
        if (m)
                dbus_message_unref(m);
        pthread_mutex_lock(&client.lock);
        if (gen == client.gen && client.topics) {
                topic_t *t = g_hash_table_lookup(client.topics, id);
                if (t && t->releases)
                        t->releases--;
        }
        pthread_mutex_unlock(&client.lock);
}

/* The AddMatch for id failed (out of memory on the bus): its registrations go back to
 * Register, and its broadcasts come as Deliver. Called with send_lock. */
static void topic_match_failed(DBusConnection *c, const char *id, unsigned gen)
{
        GPtrArray *v = g_ptr_array_new_with_free_func((GDestroyNotify)slot_unref);
        topic_t *t = NULL;

        pthread_mutex_lock(&client.lock);
        if (gen == client.gen && client.topics)
                t = g_hash_table_lookup(client.topics, id);
        if (t && t->matched) {
                topic_unmatch_locked(t);
                for (guint i = 0; i < t->slots->len; i++)
                        g_ptr_array_add(v, slot_ref(g_ptr_array_index(t->slots, i)));
        }
        topic_gc_locked(t);
        pthread_mutex_unlock(&client.lock);
        nfycl_log(LOG_WARNING, "cannot add the broadcast rule for '%s': using Register", id);
        for (guint i = 0; i < v->len; i++) {
                slot_t *s = g_ptr_array_index(v, i);
                broker_register_send(c, false, s->to, s->id, s->priority);
        }
        g_ptr_array_unref(v);
}

/* A new connection holds no rules. Called with send_lock and client.lock. */
static void topics_reset_locked(void)
{
        GHashTableIter it;
        topic_t *t;

        client.gen++;
        client.n_matches = 0;
        if (!client.topics)
                return;
        g_hash_table_iter_init(&it, client.topics);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&t)) {
                t->matched = false;
                t->releases = 0;
                if (t->slots->len == 0)
                        g_hash_table_iter_remove(&it);
        }
}

static DBusConnection *client_conn_ref(void)
{
        DBusConnection *c;

        pthread_mutex_lock(&client.lock);
        c = client.conn ? dbus_connection_ref(client.conn) : NULL;
        pthread_mutex_unlock(&client.lock);
        return c;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void task_free(task_t *t)
{
        slot_unref(t->slot);
        dbus_message_unref(t->msg);
        free(t);
}

/* Worker thread: hands a finished task back to the dispatcher; a large one is freed at once,
 * so that it never waits for the next message to be freed. */
static void task_done(task_t *t)
{
        task_t *head = atomic_load(&tasks_done);

        if (t->json && strnlen(t->json, TASK_REAP_MAX) == TASK_REAP_MAX) {
                task_free(t);
                return;
        }

        do
                t->next = head;
        while (!atomic_compare_exchange_weak(&tasks_done, &head, t));
}

/* Dispatcher thread. */
static void tasks_reap(void)
{
        task_t *t = atomic_exchange(&tasks_done, NULL);

        while (t) {
                task_t *next = t->next;
                task_free(t);
                t = next;
        }
}

/* Worker thread: one invocation (CBT-1). */
static void task_run(void *p)
{
        task_t *t = p;
        slot_t *s = t->slot;
        json_t *param = NULL;
        client_invoke_fn notify;
        client_observe_fn observe;
        client_fn cb;
        void *data;
        bool removed;

        /* Copied under the lock: a re-registration (REG-3) replaces them meanwhile, and a
         * callback must never get the other registration's data. */
        pthread_mutex_lock(&client.lock);
        removed = s->removed;
        if (!removed)
                s->running++;
        notify = s->notify;
        observe = s->observe;
        cb = s->cb;
        data = s->data;
        pthread_mutex_unlock(&client.lock);

        if (removed) {
                /* Unregistered after the delivery arrived: nothing may be lost (DLV-12). */
                if (s->kind == SLOT_NOTIFY && t->ticket) {
                        DBusConnection *c = client_conn_ref();
                        if (c) {
                                broker_bounce(c, t);
                                dbus_connection_unref(c);
                        }
                }
                task_done(t);
                return;
        }

        current_slot = s;
        if (s->kind == SLOT_OBSERVER)
                observe(cb, data, t->from, t->to, t->id, t->flags);
        else {
                json_error_t err;
                param = json_text_parse(t->json, strlen(t->json), &err);
                if (param)
                        notify(cb, data, t->from, t->to, t->id, param, t->flags);
                else
                        nfycl_log(LOG_ERR, "dropping '%s' from '%s': invalid JSON at %d: %s",
                                  t->id, t->from, err.position, err.text);
                json_decref(param);
        }
        current_slot = NULL;

        pthread_mutex_lock(&client.lock);
        s->running--;
        pthread_cond_broadcast(&client.changed);
        pthread_mutex_unlock(&client.lock);
        task_done(t);
}

static void task_push(slot_t *s, DBusMessage *m, const char *from, const char *to,
                      const char *id, const char *json, unsigned flags, uint64_t ticket)
{
        task_t *t = malloc(sizeof(*t));

        if (!t) {
                nfycl_log(LOG_ERR, "out of memory: dropping '%s' from '%s'", id, from);
                slot_unref(s);
                return;
        }
        *t = (task_t){.slot = s, .msg = dbus_message_ref(m), .from = from, .to = to, .id = id,
                      .json = json, .flags = flags, .ticket = ticket};
        /* Held until its batch is acknowledged (ack_release()). */
        g_queue_push_tail(&ack.held, t);
}

/* Writes the Ack for what was taken off the bus, then starts the held callbacks. ORD-3: pushed
 * in arrival order (only the dispatcher pushes), so callbacks start in that order. Not under
 * client.lock: a push may start a thread, and workers need the lock to begin. */
static DBusMessage *ack_message_new(dbus_uint32_t count, dbus_uint64_t mark)
{
        DBusMessage *m = broker_call_new("Ack");

        if (m && !dbus_message_append_args(m, DBUS_TYPE_UINT32, &count, DBUS_TYPE_UINT64, &mark,
                                           DBUS_TYPE_INVALID)) {
                dbus_message_unref(m);
                m = NULL;
        }
        return m;
}

/* Sends the Ack when it is due (see ACK_BATCH), then starts the held callbacks. With a shared
 * page the acknowledgement is two stores, made at once: no message, no waiting. */
static void ack_release(DBusConnection *c)
{
        workers_t *pool;
        task_t *t;

        if (ack.page) {
                ack.total += ack.unacked;
                __atomic_store_n(&ack.page->mark, ack.mark, __ATOMIC_RELEASE);
                __atomic_store_n(&ack.page->count, ack.total, __ATOMIC_RELEASE);
                ack.unacked = 0;
                ack.mark_acked = ack.mark;
                ack.batch = 0;
                ack.due_ms = 0;
        } else if ((ack.unacked || ack.mark != ack.mark_acked) &&
                   (ack.urgent || ack.batch >= ACK_BATCH ||
                    monotonic_ms(CLOCK_MONOTONIC_COARSE) >= ack.due_ms)) {
                DBusMessage *m = ack_message_new(ack.unacked, ack.mark);

                if (m) {
                        unsigned n = ++ack.serial;
                        bool tracked = dbus_message_set_data(m, ack_slot, (void *)(uintptr_t)n,
                                                             ack_gone);

                        broker_send(c, m);
                        /* Written before any of these callbacks can start. Not a flush, which
                         * also waits for what other threads queue meanwhile: a busy sender
                         * thread would keep this one from ever reading. */
                        while (ack.urgent && tracked && atomic_load(&ack_written) < n &&
                               dbus_connection_get_is_connected(c))
                                dbus_connection_read_write(c, 10);
                        if (ack.urgent && !tracked)
                                dbus_connection_flush(c);
                }
                ack.unacked = 0;
                ack.mark_acked = ack.mark;
                ack.batch = 0;
                ack.due_ms = 0;
        }
        ack.urgent = false;
        if (g_queue_is_empty(&ack.held))
                return;
        pool = client.pool; /* set before the dispatcher started, never changed since */
        while (!g_queue_is_empty(&ack.held)) {
                void *v[ACK_BATCH];
                size_t n = 0;

                while (n < ACK_BATCH && (t = g_queue_pop_head(&ack.held)))
                        v[n++] = t;
                if (pool)
                        workers_push(pool, v, n); /* one hand-off for the batch */
                else
                        for (size_t i = 0; i < n; i++)
                                task_free(v[i]);
        }
}

static void on_deliver(DBusConnection *c, DBusMessage *m)
{
        const char *from, *to, *id, *json, *receiver;
        dbus_uint32_t flags;
        dbus_uint64_t ticket;
        slot_t *s;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                   DBUS_TYPE_UINT32, &flags, DBUS_TYPE_STRING, &receiver,
                                   DBUS_TYPE_UINT64, &ticket, DBUS_TYPE_INVALID)) {
                nfycl_log(LOG_WARNING, "ignoring malformed Deliver");
                return;
        }
        pthread_mutex_lock(&client.lock);
        s = regs_lookup(receiver, id);
        if (s)
                slot_ref(s);
        pthread_mutex_unlock(&client.lock);
        if (s) {
                task_push(s, m, from, to, id, json, flags, ticket);
                if (ticket)
                        ack.urgent = true;
        } else if (ticket) {
                task_t t = {.from = from, .to = to, .id = id, .json = json, .flags = flags,
                            .ticket = ticket};
                broker_bounce(c, &t);
        }
}

/* protocol.h "Broadcasts by the bus": one signal, from whichever process broadcast, for all of
 * this process's registrations of the ID, each run as if it had got its own Deliver (DLV-1,
 * DLV-4). Checked as the broker checks it, which sees the same signal. */
static void on_broadcast(DBusMessage *m)
{
        const char *from, *to, *id, *json, *why;
        dbus_uint32_t flags;
        slot_t **v = NULL;
        topic_t *topic;
        guint n = 0;

        why = wire_broadcast_read(m, &from, &to, &id, &json, &flags);
        if (why) {
                nfycl_log(LOG_WARNING, "ignoring Broadcast '%s' from %s: %s", id,
                          dbus_message_get_sender(m), why);
                return;
        }
        pthread_mutex_lock(&client.lock);
        topic = client.topics ? g_hash_table_lookup(client.topics, id) : NULL;
        if (topic && topic->slots->len) {
                v = g_new(slot_t *, topic->slots->len);
                for (guint i = 0; i < topic->slots->len; i++)
                        v[n++] = slot_ref(g_ptr_array_index(topic->slots, i));
        }
        pthread_mutex_unlock(&client.lock);
        /* None: a hash collision, or a rule that outlives the last registration a little. */
        for (guint i = 0; i < n; i++)
                task_push(v[i], m, from, to, id, json, flags, 0);
        g_free(v);
}

/* Unicast errors and observations go to every callback of the list (UE-5, OBS-4). */
static void on_list_signal(DBusMessage *m, GPtrArray *list, const char *from, const char *to,
                           const char *id, const char *json, unsigned flags)
{
        slot_t **v = NULL;
        guint n = 0;

        pthread_mutex_lock(&client.lock);
        if (list && list->len) {
                v = g_new(slot_t *, list->len);
                for (guint i = 0; i < list->len; i++)
                        v[n++] = slot_ref(g_ptr_array_index(list, i));
        }
        pthread_mutex_unlock(&client.lock);
        for (guint i = 0; i < n; i++)
                task_push(v[i], m, from, to, id, json, flags, 0);
        g_free(v);
}

static void on_unicast_error(DBusMessage *m)
{
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                   DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID)) {
                nfycl_log(LOG_WARNING, "ignoring malformed UnicastError");
                return;
        }
        nfycl_log(LOG_INFO, "unicast error: '%s' from '%s' to '%s'", id, from, to);
        on_list_signal(m, client.errors, from, to, id, json, flags);
}

static void on_observed(DBusMessage *m)
{
        const char *from, *to, *id;
        dbus_uint32_t flags;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_UINT32, &flags,
                                   DBUS_TYPE_INVALID)) {
                nfycl_log(LOG_WARNING, "ignoring malformed Observed");
                return;
        }
        on_list_signal(m, client.observers, from, to, id, NULL, flags);
}

static int reregister_all(DBusConnection *c);
static void ack_start(DBusConnection *c);

/* protocol.h "Mark": acknowledged with the next Ack or page write. */
static void on_mark(DBusMessage *m)
{
        dbus_uint64_t mark;

        if (dbus_message_get_args(m, NULL, DBUS_TYPE_UINT64, &mark, DBUS_TYPE_INVALID))
                ack.mark = mark;
        else
                nfycl_log(LOG_WARNING, "ignoring malformed Mark");
}

/* ---- broadcasts by the bus, sending side (protocol.h "Broadcasts by the bus") -------------- */

static DBusMessage *notify_message_new(bool by_bus, const char *from, const char *to,
                                       const char *id, const char *json, uint32_t flags);

/* Queues m as it is, or, when it is a Broadcast that may not go by the bus now, as Notify.
 * Takes m. Called with direct.lock. */
static int direct_send_locked(DBusConnection *c, DBusMessage *m)
{
        int r;

        if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL &&
            !(direct.known && direct.allowed && direct.synced >= direct.sent)) {
                const char *from, *to, *id, *json;
                dbus_uint32_t flags;
                DBusMessage *n = NULL;

                if (dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                          DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                          DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID))
                        n = notify_message_new(false, from, to, id, json, flags);
                dbus_message_unref(m);
                if (!n)
                        return -ENOMEM;
                m = n;
        }
        if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL) {
                r = dbus_connection_send(c, m, NULL) ? 0 : -ENOMEM;
                dbus_message_unref(m);
                /* The broker does not see them: this tells it to check the subscribers. */
                if (r >= 0 && direct.page)
                        __atomic_fetch_add(&direct.page->broadcasts, 1, __ATOMIC_RELAXED);
                return r;
        }
        r = broker_send(c, m);
        direct.sent++; /* queued: a Sync queued from now on covers it */
        return r;
}

/* Ends the hold: what was held goes out in order, broadcasts by the bus as long as nothing
 * went through the broker before them. Called with direct.lock. */
static void direct_release_locked(DBusConnection *c)
{
        DBusMessage *m;

        direct.hold = 0;
        while ((m = g_queue_pop_head(&direct.held)))
                if (direct_send_locked(c, m) < 0)
                        nfycl_log(LOG_ERR, "out of memory: a held notification is lost");
        direct.held_bytes = 0;
        pthread_cond_broadcast(&direct.ended);
}

/* The broker's DirectBroadcasts, from its signal or a Sync answer: the newest version wins, as
 * a Sync answer is handled when it is read, maybe before a DirectBroadcasts that came earlier
 * is dispatched. Called with direct.lock. */
static void direct_learn_locked(dbus_bool_t allowed, dbus_uint64_t version)
{
        if (direct.usable && (!direct.known || version >= direct.version)) {
                direct.known = true;
                direct.allowed = allowed;
                direct.version = version;
        }
}

typedef struct sync_call {
        atomic_bool ran;      /* sync_done() ran (see direct_hold_locked()) */
        DBusConnection *conn; /* a reference */
        unsigned epoch, n;
        uint64_t target; /* direct.sent when the Sync was queued */
} sync_call_t;

static void sync_call_free(void *p)
{
        sync_call_t *s = p;

        dbus_connection_unref(s->conn);
        free(s);
}

static void sync_done(DBusPendingCall *pending, void *data)
{
        sync_call_t *s = data;
        DBusMessage *reply;
        dbus_bool_t allowed;
        dbus_uint64_t version;

        if (atomic_exchange(&s->ran, true))
                return;
        reply = dbus_pending_call_steal_reply(pending);
        pthread_mutex_lock(&direct.lock);
        if (s->epoch == direct.epoch) {
                if (reply && dbus_message_get_args(reply, NULL, DBUS_TYPE_BOOLEAN, &allowed,
                                                   DBUS_TYPE_UINT64, &version, DBUS_TYPE_INVALID)) {
                        direct_learn_locked(allowed, version);
                        if (s->target > direct.synced)
                                direct.synced = s->target;
                }
                /* An error (no answer in time): the held ones go through the broker. */
                if (direct.hold == s->n)
                        direct_release_locked(s->conn);
        }
        pthread_mutex_unlock(&direct.lock);
        if (reply)
                dbus_message_unref(reply);
}

/* Holds m (taken; size: about its bytes) behind a Sync. Called with direct.lock, which is
 * recursive: sync_done() runs here when the answer is already there. */
static int direct_hold_locked(DBusConnection *c, DBusMessage *m, size_t size)
{
        DBusPendingCall *pending = NULL;
        sync_call_t *s;
        DBusMessage *call;

        if (direct.hold) {
                g_queue_push_tail(&direct.held, m);
                direct.held_bytes += size;
                return 0;
        }
        s = malloc(sizeof(*s));
        call = s ? broker_call_new("Sync") : NULL;
        if (!call) {
                free(s);
                return direct_send_locked(c, m);
        }
        if (++direct.n_sync == 0)
                direct.n_sync = 1;
        *s = (sync_call_t){.conn = dbus_connection_ref(c), .epoch = direct.epoch,
                           .n = direct.n_sync, .target = direct.sent};
        atomic_init(&s->ran, false);
        if (!dbus_connection_send_with_reply(c, call, &pending, CALL_TIMEOUT_MS) || !pending) {
                dbus_message_unref(call);
                sync_call_free(s);
                return direct_send_locked(c, m);
        }
        dbus_message_unref(call);
        direct.hold = s->n;
        g_queue_push_tail(&direct.held, m);
        direct.held_bytes = size;
        if (!dbus_pending_call_set_notify(pending, sync_done, s, sync_call_free)) {
                dbus_pending_call_cancel(pending);
                sync_call_free(s);
                direct_release_locked(c);
        } else if (dbus_pending_call_get_completed(pending))
                sync_done(pending, s); /* answered before the notification was set: libdbus
                                        * runs it only for answers read afterwards */
        dbus_pending_call_unref(pending);
        return 0;
}

/* ipcNotify's way out: by the bus, through the broker, or held (see struct direct_state).
 * Takes m; size: about its bytes. */
static int direct_submit(DBusConnection *c, bool broadcast, DBusMessage *m, size_t size)
{
        int r;

        pthread_mutex_lock(&direct.lock);
        if (direct.hold)
                r = direct_hold_locked(c, m, size); /* nothing overtakes what is held */
        else if (broadcast && direct.usable && (!direct.known || direct.allowed) &&
                 !(direct.known && direct.synced >= direct.sent))
                r = direct_hold_locked(c, m, size);
        else
                r = direct_send_locked(c, m);
        if (direct.hold && direct.held_bytes > HOLD_BYTES_MAX) {
                struct timespec deadline;
                unsigned hold = direct.hold;

                clock_gettime(CLOCK_REALTIME, &deadline);
                deadline.tv_sec += CALL_TIMEOUT_MS / 1000 + 1;
                /* The dispatcher reads the answer; it never runs application code. */
                while (!on_dispatcher && direct.hold == hold &&
                       pthread_cond_timedwait(&direct.ended, &direct.lock, &deadline) == 0)
                        ;
                if (direct.hold == hold)
                        direct_release_locked(c); /* no answer: through the broker */
        }
        pthread_mutex_unlock(&direct.lock);
        return r;
}

/* A new connection or a new broker: nothing is known, nothing is held any more (the old
 * connection's messages go with it; for a new broker they go to it, through the broker). */
static void direct_reset(DBusConnection *c, bool usable)
{
        pthread_mutex_lock(&direct.lock);
        direct.page = usable ? ack.page : NULL;
        usable = direct.page != NULL; /* else the broker could not tell a stalled subscriber */
        direct.epoch++;
        direct.known = direct.allowed = false;
        if (c && direct.hold)
                direct_release_locked(c); /* not known: all through the broker */
        while (!g_queue_is_empty(&direct.held))
                dbus_message_unref(g_queue_pop_head(&direct.held));
        direct.held_bytes = 0;
        direct.hold = 0;
        direct.version = 0;
        direct.usable = usable;
        direct.sent = direct.synced = 0;
        pthread_mutex_unlock(&direct.lock);
}

static void on_direct(DBusMessage *m)
{
        dbus_bool_t allowed;
        dbus_uint64_t version;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_BOOLEAN, &allowed, DBUS_TYPE_UINT64,
                                   &version, DBUS_TYPE_INVALID)) {
                nfycl_log(LOG_WARNING, "ignoring malformed DirectBroadcasts");
                return;
        }
        pthread_mutex_lock(&direct.lock);
        direct_learn_locked(allowed, version);
        pthread_mutex_unlock(&direct.lock);
}

static void on_broker_owner_changed(DBusConnection *c, DBusMessage *m)
{
        const char *name, *old_owner, *new_owner;
        bool restarted;

        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &old_owner,
                                   DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID) ||
            !streq(name, VFIIPC_BROKER_NAME))
                return;
        pthread_mutex_lock(&client.lock);
        restarted = *new_owner && (!client.broker || !streq(client.broker, new_owner));
        free(client.broker);
        client.broker = *new_owner ? strdup(new_owner) : NULL;
        pthread_mutex_unlock(&client.lock);
        /* A new broker on the same bus knows nothing of us: accounting starts afresh (its
         * Broadcasts count from 1 again) and everything is registered again. */
        if (restarted) {
                ack_release(c); /* what the old one sent still runs */
                ack_start(c);
                direct_reset(c, direct.usable);
                nfycl_log(LOG_NOTICE, "server restarted on the bus, registering again");
                pthread_mutex_lock(&client.send_lock);
                reregister_all(c);
                pthread_mutex_unlock(&client.send_lock);
        }
}

static void ack_count(DBusConnection *c)
{
        if (!ack.page && ack.due_ms == 0) /* a shared page is written at every release */
                ack.due_ms = monotonic_ms(CLOCK_MONOTONIC_COARSE) + ACK_LAZY_MS;
        if (++ack.batch >= ACK_BATCH)
                ack_release(c);
}

/* The loop's idle hook: everything queued is dispatched, so the batch ends here; and while
 * callbacks wait to start, the workers are checked every WORKERS_STALL_MS. */
static int ack_idle(void *data)
{
        workers_t *pool;
        int wait;

        tasks_reap();
        ack_release(data);
        pool = client.pool; /* see ack_release() */
        wait = workers_check(pool);
        if (ack.due_ms) {
                int64_t left = ack.due_ms - monotonic_ms(CLOCK_MONOTONIC_COARSE);
                int due = left > 0 ? (int)left : 0;

                if (wait < 0 || due < wait)
                        wait = due;
        }
        return wait;
}

/* Dispatcher thread: routes signals; application code never runs here. */
static DBusHandlerResult client_filter(DBusConnection *c, DBusMessage *m, void *userdata)
{
        const char *sender = dbus_message_get_sender(m);
        const char *member, *iface;
        bool trusted, broker_wide;

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL || !sender)
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        if (streq(sender, DBUS_SERVICE_DBUS) &&
            dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameOwnerChanged")) {
                on_broker_owner_changed(c, m);
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        }
        iface = dbus_message_get_interface(m);
        /* protocol.h "Broadcasts by the bus": from any process, as the broker sees them too. */
        if (iface && g_str_has_prefix(iface, VFIIPC_BROADCAST_INTERFACE_PREFIX) &&
            dbus_message_has_member(m, "Broadcast") &&
            dbus_message_has_path(m, VFIIPC_BROADCAST_PATH)) {
                on_broadcast(m); /* acknowledged through the broker's next Mark */
                ack_count(c);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        broker_wide = dbus_message_is_signal(m, VFIIPC_BROKER_INTERFACE, "DirectBroadcasts");
        if (!broker_wide && !dbus_message_has_interface(m, VFIIPC_CLIENT_INTERFACE))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;

        /* Only the broker may deliver: another client could otherwise forge notifications.
         * No lock: client.broker changes only on this thread, or before it started. */
        trusted = client.broker && streq(client.broker, sender);
        if (!trusted) {
                nfycl_log(LOG_WARNING, "ignoring %s from %s: not the server",
                          dbus_message_get_member(m), sender);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        member = dbus_message_get_member(m);
        if (broker_wide) {
                on_direct(m);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        if (streq(member, "Mark")) {
                on_mark(m); /* not counted: it is acknowledged by its value */
                ack_count(c);
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        ack.unacked++; /* every signal of the broker counts, whatever becomes of it */
        ack_count(c);
        if (streq(member, "Deliver"))
                on_deliver(c, m);
        else if (streq(member, "Observed"))
                on_observed(m);
        else if (streq(member, "UnicastError"))
                on_unicast_error(m);
        return DBUS_HANDLER_RESULT_HANDLED;
}

/* ---- connection life cycle ---------------------------------------------------------------- */

/* protocol.h "AckShared": a sealed memfd page both sides map; NULL where that is impossible. */
static ack_page_t *ack_page_share(DBusConnection *c)
{
        DBusMessage *m, *reply;
        DBusError err;
        ack_page_t *page = MAP_FAILED;
        int fd;

        if (!dbus_connection_can_send_type(c, DBUS_TYPE_UNIX_FD))
                return NULL;
        fd = memfd_create("vfiipc-ack", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return NULL;
        if (ftruncate(fd, sizeof(ack_page_t)) == 0 &&
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
                page = mmap(NULL, sizeof(ack_page_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        m = page != MAP_FAILED ? broker_call_new("AckShared") : NULL;
        if (m && !dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_INVALID))
                g_clear_pointer(&m, dbus_message_unref);
        close(fd); /* the message holds its own duplicate */
        if (!m) {
                if (page != MAP_FAILED)
                        munmap(page, sizeof(ack_page_t));
                return NULL;
        }
        dbus_error_init(&err);
        reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        if (reply)
                dbus_message_unref(reply);
        if (!reply || dbus_error_is_set(&err)) {
                nfycl_log(LOG_INFO, "acknowledging by message: %s",
                          dbus_error_is_set(&err) ? err.message : "no answer");
                dbus_error_free(&err);
                munmap(page, sizeof(ack_page_t));
                return NULL;
        }
        return page;
}

/* Starts flow accounting with a (new) broker (protocol.h, Ack): a shared page, else a first
 * Ack of 0. Tasks held from an earlier connection were released when it ended. */
static void ack_start(DBusConnection *c)
{
        pthread_mutex_lock(&direct.lock); /* senders count into the page (direct_reset()) */
        direct.page = NULL;
        pthread_mutex_unlock(&direct.lock);
        if (ack.page)
                munmap(ack.page, sizeof(ack_page_t));
        ack.unacked = 0;
        ack.total = 0;
        ack.batch = 0;
        ack.urgent = false;
        ack.due_ms = 0;
        ack.mark = ack.mark_acked = 0;
        ack.page = ack_page_share(c);
        if (!ack.page) {
                DBusMessage *a = ack_message_new(0, 0);
                if (a)
                        broker_send(c, a);
        }
}

/* Opens a private connection (never the shared one: libdbus would _exit() the application when
 * the bus goes away) and finds the broker. */
static int connection_open(DBusConnection **ret_conn, char **ret_broker)
{
        _cleanup_free_ char *address = NULL;
        DBusConnection *c;
        DBusMessage *m, *reply;
        const char *owner, *name = VFIIPC_BROKER_NAME;
        char *broker;
        DBusError err;
        bool watch_direct;
        int r;

        r = bus_address_get(&address);
        if (r < 0)
                return r;
        dbus_error_init(&err);
        c = dbus_connection_open_private(address, &err);
        if (!c) {
                r = dbus_error_to_errno(&err);
                nfycl_log(LOG_DEBUG, "no server at %s: %s", address, err.message);
                dbus_error_free(&err);
                return r;
        }
        dbus_connection_set_exit_on_disconnect(c, FALSE);
        if (!dbus_bus_register(c, &err))
                goto fail;
        dbus_bus_add_match(c, MATCH_BROKER_OWNER, &err);
        if (dbus_error_is_set(&err))
                goto fail;
        /* Without it the broker could not stop our broadcasts by the bus: then none go so. */
        dbus_bus_add_match(c, MATCH_DIRECT, &err);
        watch_direct = !dbus_error_is_set(&err);
        if (dbus_error_is_set(&err)) {
                nfycl_log(LOG_WARNING, "broadcasts go through the server: %s", err.message);
                dbus_error_free(&err);
        }
        m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                         "GetNameOwner");
        if (!m || !dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID)) {
                if (m)
                        dbus_message_unref(m);
                dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        reply = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        if (!reply)
                goto fail;
        broker = dbus_message_get_args(reply, &err, DBUS_TYPE_STRING, &owner, DBUS_TYPE_INVALID)
                         ? strdup(owner)
                         : NULL;
        dbus_message_unref(reply);
        if (!broker) {
                if (!dbus_error_is_set(&err))
                        dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        if (!dbus_connection_add_filter(c, client_filter, NULL, NULL)) {
                free(broker);
                dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        ack_start(c);
        direct_reset(NULL, watch_direct);
        *ret_conn = c;
        *ret_broker = broker;
        return 0;

fail:
        r = dbus_error_to_errno(&err);
        if (r == -EACCES || r == -ENOMEM)
                nfycl_log(LOG_ERR, "cannot use the server at %s: %s", address, err.message);
        else
                nfycl_log(LOG_DEBUG, "no server at %s: %s", address, err.message);
        dbus_error_free(&err);
        dbus_connection_close(c);
        dbus_connection_unref(c);
        return r == -EACCES ? r : -ENOTCONN;
}

/* Makes c the process's connection. Called with client.lock. */
static void client_conn_set_locked(DBusConnection *c)
{
        client.conn = dbus_connection_ref(c);
        client.state = CONN_UP;
        if (!dbus_connection_get_socket(c, &client.sock_fd))
                client.sock_fd = -1;
}

/* Forgets the process's connection; the caller drops it. Called with client.lock. */
static void client_conn_clear_locked(conn_state_t state)
{
        if (client.conn)
                dbus_connection_unref(client.conn);
        client.conn = NULL;
        g_clear_pointer(&client.broker, free);
        client.sock_fd = -1;
        client.state = state;
}

static void connection_drop(DBusConnection *c)
{
        dbus_connection_remove_filter(c, client_filter, NULL);
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* LIFE-2, G-68: tells a (new) broker about every registration and the observer flag. The calls
 * go out without waiting; a final Ping returns once the broker has processed them all. */
static int reregister_all(DBusConnection *c)
{
        GPtrArray *v = g_ptr_array_new_with_free_func((GDestroyNotify)slot_unref);
        GPtrArray *add = g_ptr_array_new_with_free_func(free);
        GHashTableIter it;
        gpointer key;
        topic_t *t;
        bool observe;
        DBusMessage *ping;
        int r = 0;

        pthread_mutex_lock(&client.lock);
        if (client.regs) {
                g_hash_table_iter_init(&it, client.regs);
                while (g_hash_table_iter_next(&it, &key, NULL))
                        g_ptr_array_add(v, slot_ref(key));
        }
        /* protocol.h "Broadcast fast path": rules the connection lacks (a new bus) first. */
        if (client.topics) {
                g_hash_table_iter_init(&it, client.topics);
                while (g_hash_table_iter_next(&it, NULL, (gpointer *)&t))
                        if (!t->matched && t->slots->len &&
                            client.n_matches < VFIIPC_BROADCAST_MATCHES_MAX) {
                                t->matched = true;
                                client.n_matches++;
                                g_ptr_array_add(add, strdup(t->id));
                        }
        }
        observe = client.observers && client.observers->len > 0;
        pthread_mutex_unlock(&client.lock);

        for (guint i = 0; i < add->len; i++) {
                const char *id = g_ptr_array_index(add, i);
                DBusMessage *m = id ? match_message_new("AddMatch", id) : NULL;

                if (id && (!m || broker_call(c, m) < 0)) {
                        pthread_mutex_lock(&client.lock);
                        t = client.topics ? g_hash_table_lookup(client.topics, id) : NULL;
                        topic_unmatch_locked(t);
                        pthread_mutex_unlock(&client.lock);
                }
        }
        for (guint i = 0; i < v->len && r >= 0; i++) {
                slot_t *s = g_ptr_array_index(v, i);
                bool subscribe;

                pthread_mutex_lock(&client.lock);
                t = client.topics ? g_hash_table_lookup(client.topics, s->id) : NULL;
                subscribe = t && t->matched;
                pthread_mutex_unlock(&client.lock);
                r = broker_register_send(c, subscribe, s->to, s->id, s->priority);
        }
        g_ptr_array_unref(add);
        if (r >= 0 && observe)
                r = broker_send_simple(c, "AddObserver");
        if (r >= 0) {
                ping = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                                    DBUS_INTERFACE_PEER, "Ping");
                r = ping ? broker_call(c, ping) : -ENOMEM;
        }
        nfycl_log(r < 0 ? LOG_WARNING : LOG_INFO, "registered %u notification IDs again%s",
                  v->len, r < 0 ? ": failed" : "");
        g_ptr_array_unref(v);
        return r;
}

/* Runs the connection until it breaks, then re-connects with back-off and re-registers, for
 * the life of the process (G-77: never joined). */
static void *dispatcher_run(void *arg)
{
        DBusConnection *c = arg;

        on_dispatcher = true;
        for (;;) {
                bus_loop_t *loop = NULL;
                unsigned delay = BACKOFF_MIN_MS;
                char *broker = NULL;
                int r;

                r = bus_loop_new(c, &loop);
                if (r >= 0) {
                        bus_loop_set_idle(loop, ack_idle, c);
                        bus_loop_run(loop);
                } else
                        nfycl_log(LOG_ERR, "cannot watch the server connection: %s", strerror(-r));
                bus_loop_free(loop);
                ack_release(c); /* what was received still runs */

                pthread_mutex_lock(&client.lock);
                client_conn_clear_locked(CONN_RECONNECTING);
                pthread_mutex_unlock(&client.lock);
                connection_drop(c);
                nfycl_log(LOG_WARNING, "lost the server; reconnecting");

                for (;;) {
                        g_usleep(delay * 1000);
                        if (connection_open(&c, &broker) >= 0) {
                                /* send_lock: changes made meanwhile come before or after the
                                 * snapshot reregister_all() takes, never lost in between. */
                                pthread_mutex_lock(&client.send_lock);
                                pthread_mutex_lock(&client.lock);
                                free(client.broker);
                                client.broker = broker;
                                topics_reset_locked();
                                pthread_mutex_unlock(&client.lock);
                                if (reregister_all(c) >= 0) {
                                        pthread_mutex_lock(&client.lock);
                                        client_conn_set_locked(c);
                                        pthread_mutex_unlock(&client.lock);
                                        pthread_mutex_unlock(&client.send_lock);
                                        break;
                                }
                                pthread_mutex_unlock(&client.send_lock);
                                connection_drop(c);
                        }
                        delay = MIN(delay * 2, BACKOFF_MAX_MS);
                }
                nfycl_log(LOG_NOTICE, "reconnected to the server");
        }
        return NULL;
}

/* The connection for an API call, set up on first use. While the dispatcher re-connects,
 * calls fail at once with -ENOTCONN (G-68: NOTIFY_ERR_SERVER while disconnected). */
static int client_conn_get(DBusConnection **ret)
{
        DBusConnection *c = NULL;
        char *broker = NULL;
        pthread_attr_t attr;
        pthread_t thread;
        int r;

        pthread_once(&client_once, client_once_init);

        pthread_mutex_lock(&client.lock);
        r = client_tables_ensure();
        if (r >= 0 && client.state == CONN_UP)
                c = dbus_connection_ref(client.conn);
        else if (r >= 0 && client.state == CONN_RECONNECTING)
                r = -ENOTCONN;
        pthread_mutex_unlock(&client.lock);
        if (r < 0 || c) {
                if (c)
                        *ret = c;
                return r;
        }

        pthread_mutex_lock(&client.connect_lock);
        pthread_mutex_lock(&client.lock);
        if (client.state != CONN_NONE) {
                /* Someone else connected meanwhile. */
                c = client.conn ? dbus_connection_ref(client.conn) : NULL;
                pthread_mutex_unlock(&client.lock);
                pthread_mutex_unlock(&client.connect_lock);
                if (!c)
                        return -ENOTCONN;
                *ret = c;
                return 0;
        }
        pthread_mutex_unlock(&client.lock);

        r = connection_open(&c, &broker);
        if (r >= 0) {
                pthread_mutex_lock(&client.lock);
                client_conn_set_locked(c);
                client.broker = broker;
                pthread_mutex_unlock(&client.lock);

                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                /* The dispatcher owns one reference of c for its whole life. */
                r = -pthread_create(&thread, &attr, dispatcher_run, dbus_connection_ref(c));
                pthread_attr_destroy(&attr);
                if (r < 0) {
                        nfycl_log(LOG_ERR, "cannot start the dispatcher thread: %s", strerror(-r));
                        pthread_mutex_lock(&client.lock);
                        dbus_connection_unref(client.conn); /* the thread's reference */
                        client_conn_clear_locked(CONN_NONE);
                        pthread_mutex_unlock(&client.lock);
                        connection_drop(c);
                        c = NULL;
                }
        }
        pthread_mutex_unlock(&client.connect_lock);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}

/* ---- the API ------------------------------------------------------------------------------ */

static bool app_id_usable(const char *id)
{
        return !isempty(id) && !streq(id, "1") && !streq(id, "*");
}

void client_app_id_set(const char *app_id)
{
        char *copy = strdup(app_id ? app_id : "");

        pthread_mutex_lock(&client.lock);
        free(client.app_id);
        client.app_id = copy;
        pthread_mutex_unlock(&client.lock);
}

char *client_app_id_get(void)
{
        char *s;

        pthread_mutex_lock(&client.lock);
        s = strdup(client.app_id ? client.app_id : "");
        pthread_mutex_unlock(&client.lock);
        return s;
}

/* APPID-3/G-65: the own ID, or NULL when there is no usable one. */
static char *app_id_effective(void)
{
        char *s = client_app_id_get();

        if (s && !app_id_usable(s))
                g_clear_pointer(&s, free);
        return s;
}

/* Notify is built in wire format (lib/bus/wire.h: a quarter of the cost of appending five
 * arguments with libdbus) and validated by libdbus's demarshaller, which also refuses text
 * that is not UTF-8. Serials come from one counter, so each message has its own. */
/* by_bus: a Broadcast signal (protocol.h "Broadcasts by the bus"), else Notify. */
static DBusMessage *notify_message_new(bool by_bus, const char *from, const char *to,
                                       const char *id, const char *json, uint32_t flags)
{
        static atomic_uint serial = WIRE_SERIAL_FIRST;
        DBusMessage *m;
        wire_t w;

        wire_init(&w);
        w.serial = atomic_fetch_add(&serial, 1) | WIRE_SERIAL_FIRST;
        m = by_bus ? wire_broadcast(&w, from, to, id, json, flags)
                   : wire_notify(&w, from, to, id, json, flags);
        wire_done(&w);
        return m;
}

int client_notify(const char *to, const char *notification_id, const char *json, size_t len,
                  unsigned flags, const char *from)
{
        _cleanup_free_ char *own = NULL;
        DBusConnection *c;
        DBusMessage *m;
        dbus_uint32_t f = flags;
        bool broadcast;
        int r;

        to = to ? to : "";
        notification_id = notification_id ? notification_id : "";
        if (isempty(from)) {
                own = app_id_effective();
                if (!own)
                        return VFIIPC_ERR_APP_ID; /* NTF-4 */
                from = own;
        }
        if (!id_valid("from", from) || !id_valid("to", to) ||
            !id_valid("notification ID", notification_id))
                return VFIIPC_ERR_SERVER;
        if (!json || len > VFIIPC_PARAM_MAX || strlen(json) != len) {
                nfycl_log(LOG_ERR, "refusing '%s': param is not JSON text of at most %u bytes",
                          notification_id, VFIIPC_PARAM_MAX);
                return VFIIPC_ERR_SERVER;
        }

        r = client_conn_get(&c);
        if (r < 0)
                return result_from_errno(r);
        broadcast = streq(to, "*");
        m = notify_message_new(broadcast, from, to, notification_id, json, f);
        if (!m) {
                nfycl_log(LOG_ERR, "cannot send '%s': out of memory or param not UTF-8",
                          notification_id);
                dbus_connection_unref(c);
                return VFIIPC_ERR_SERVER;
        }
        /* ORD-1: fire and forget; undeliverable unicasts come back as UnicastError (NTF-5). */
        r = direct_submit(c, broadcast, m, len + strlen(notification_id) + strlen(from) + 256);
        if (r >= 0 && dbus_connection_get_outgoing_size(c) > SEND_QUEUE_MAX)
                dbus_connection_flush(c); /* back-pressure, see SEND_QUEUE_MAX */
        if (r >= 0 && !dbus_connection_get_is_connected(c))
                r = -ENOTCONN;
        dbus_connection_unref(c);
        return result_from_errno(r);
}

int client_register(const char *notification_id, client_invoke_fn invoke, client_fn cb,
                    void *data, int priority, const char *to)
{
        _cleanup_free_ char *own = NULL;
        slot_t *s, old = {0};
        bool replaced = false, add_match, subscribe, release = false;
        DBusConnection *c;
        call_t call, match_call;
        topic_t *topic;
        unsigned gen;
        int r;

        if (!cb)
                return client_unregister(notification_id, NULL, NULL, to); /* REG-4 */
        notification_id = notification_id ? notification_id : "";
        if (isempty(to)) {
                own = app_id_effective();
                if (!own)
                        return VFIIPC_ERR_APP_ID; /* REG-7 */
                to = own;
        }
        if (!app_id_usable(to))
                return VFIIPC_ERR_APP_ID; /* G-65: "1" and "*" are no receiver IDs */
        if (!id_valid("receiver ID", to) || !id_valid("notification ID", notification_id))
                return VFIIPC_ERR_SERVER;

        r = client_conn_get(&c);
        if (r < 0)
                return result_from_errno(r); /* REG-6, SRV-2 */

        /* Stored before the broker knows it, so a delivery racing the reply finds it. */
        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        topic = topic_get_locked(notification_id);
        s = topic ? regs_lookup(to, notification_id) : NULL;
        if (!topic) {
                pthread_mutex_unlock(&client.lock);
                pthread_mutex_unlock(&client.send_lock);
                dbus_connection_unref(c);
                return VFIIPC_ERR_SERVER;
        }
        if (s) {
                /* REG-3: same (ID, receiver) in this process: callback, data, priority replaced. */
                old = *s;
                replaced = true;
                s->notify = invoke;
                s->cb = cb;
                s->data = data;
                s->priority = priority;
        } else {
                s = slot_new(SLOT_NOTIFY, cb, data);
                if (s) {
                        s->notify = invoke;
                        s->priority = priority;
                        s->to = strdup(to);
                        s->id = strdup(notification_id);
                }
                if (!s || !s->to || !s->id) {
                        slot_unref(s);
                        topic_gc_locked(topic);
                        pthread_mutex_unlock(&client.lock);
                        pthread_mutex_unlock(&client.send_lock);
                        dbus_connection_unref(c);
                        return VFIIPC_ERR_SERVER;
                }
                g_hash_table_add(client.regs, s);
                g_ptr_array_add(topic->slots, s);
        }
        /* protocol.h "Broadcast fast path": the ID's rule first, then Subscribe. */
        add_match = !topic->matched && client.n_matches < VFIIPC_BROADCAST_MATCHES_MAX;
        if (add_match) {
                topic->matched = true;
                client.n_matches++;
        }
        subscribe = topic->matched;
        gen = client.gen;
        pthread_mutex_unlock(&client.lock);
        if (add_match)
                broker_call_start_or_fail(c, match_message_new("AddMatch", notification_id),
                                          &match_call);
        broker_call_start_or_fail(c, register_message_new(subscribe, to, notification_id, priority),
                                  &call);
        pthread_mutex_unlock(&client.send_lock);

        if (add_match && broker_call_finish(&match_call) < 0) {
                pthread_mutex_lock(&client.send_lock);
                topic_match_failed(c, notification_id, gen);
                pthread_mutex_unlock(&client.send_lock);
        }
        r = broker_call_finish(&call);
        if (r >= 0) {
                nfycl_log(LOG_INFO, "registered '%s' for '%s' (priority %d)", notification_id, to,
                          priority);
                dbus_connection_unref(c);
                return VFIIPC_OK;
        }

        /* REG-9: on error nothing was registered (or the old registration stays). */
        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        if (regs_lookup(to, notification_id) == s && !s->removed) {
                if (replaced) {
                        s->notify = old.notify;
                        s->cb = old.cb;
                        s->data = old.data;
                        s->priority = old.priority;
                } else {
                        s->removed = true;
                        release = topic_slot_remove_locked(s);
                        g_hash_table_remove(client.regs, s);
                }
        }
        gen = client.gen;
        pthread_mutex_unlock(&client.lock);
        if (release)
                topic_release_send(c, to, notification_id, gen);
        pthread_mutex_unlock(&client.send_lock);
        dbus_connection_unref(c);
        return result_from_errno(r);
}

static DBusMessage *unregister_message_new(const char *to, const char *id)
{
        DBusMessage *m = broker_call_new("Unregister");

        if (m && !dbus_message_append_args(m, DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &id,
                                           DBUS_TYPE_INVALID)) {
                dbus_message_unref(m);
                m = NULL;
        }
        return m;
}

int client_unregister(const char *notification_id, client_fn cb, void *data, const char *to)
{
        _cleanup_free_ char *own = NULL;
        DBusConnection *c = NULL;
        bool release = false;
        unsigned gen;
        slot_t *s;

        notification_id = notification_id ? notification_id : "";
        if (isempty(to)) {
                own = app_id_effective();
                if (!own)
                        return VFIIPC_OK; /* nothing can be registered under no ID (UNREG-6) */
                to = own;
        }

        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        s = regs_lookup(to, notification_id);
        /* UNREG-2/3: cb NULL matches any; data NULL matches any data of cb. */
        if (s && (!cb || (s->cb == cb && (!data || s->data == data)))) {
                s->removed = true;
                slot_ref(s);
                release = topic_slot_remove_locked(s);
                g_hash_table_remove(client.regs, s);
                c = client.conn ? dbus_connection_ref(client.conn) : NULL;
        } else
                s = NULL;
        gen = client.gen;
        pthread_mutex_unlock(&client.lock);
        /* Deliveries already on their way are bounced by us (DLV-12). Nobody waits for the
         * answer, so an unreachable server cannot delay the clean-up (UNREG-6); the answer to
         * the last registration of an ID with a broadcast rule removes the rule. */
        if (c) {
                if (release)
                        topic_release_send(c, to, notification_id, gen);
                else {
                        DBusMessage *m = unregister_message_new(to, notification_id);
                        if (m)
                                broker_send(c, m);
                }
                dbus_connection_unref(c);
        }
        pthread_mutex_unlock(&client.send_lock);
        if (!s)
                return VFIIPC_OK;

        slots_wait(&s, 1); /* UNREG-4, UNREG-5 */
        slot_unref(s);
        nfycl_log(LOG_INFO, "unregistered '%s' for '%s'", notification_id, to);
        return VFIIPC_OK;
}

/* Takes the matching slots out of a list (they start no invocation any more). Called with
 * client.lock. Returns them for list_wait(); *ret_left is how many stay. */
static GPtrArray *list_take_locked(GPtrArray *list, client_fn cb, void *data, guint *ret_left)
{
        GPtrArray *gone = g_ptr_array_new_with_free_func((GDestroyNotify)slot_unref);

        for (guint i = 0; list && i < list->len;) {
                slot_t *s = g_ptr_array_index(list, i);
                if (!cb || (s->cb == cb && (!data || s->data == data))) {
                        s->removed = true;
                        g_ptr_array_add(gone, slot_ref(s));
                        g_ptr_array_remove_index(list, i);
                } else
                        i++;
        }
        *ret_left = list ? list->len : 0;
        return gone;
}

/* UE-7, OBS-7: returns when none of them runs any more (except on this thread). */
static void list_wait(GPtrArray *gone)
{
        slots_wait((slot_t *const *)gone->pdata, gone->len);
        g_ptr_array_unref(gone);
}

/* Adds (cb, data) unless present (UE-5). Returns 1 if added, 0 if present, <0 on error.
 * Called with client.lock. */
static int list_add_locked(GPtrArray **listp, slot_kind_t kind, client_invoke_fn notify,
                           client_observe_fn observe, client_fn cb, void *data, guint *ret_len)
{
        slot_t *s;

        if (client_tables_ensure() < 0)
                return -ENOMEM;
        for (guint i = 0; i < (*listp)->len; i++) {
                s = g_ptr_array_index(*listp, i);
                if (s->cb == cb && s->data == data)
                        return 0;
        }
        s = slot_new(kind, cb, data);
        if (!s)
                return -ENOMEM;
        s->notify = notify;
        s->observe = observe;
        g_ptr_array_add(*listp, s);
        *ret_len = (*listp)->len;
        return 1;
}

int client_unicast_error_add(client_invoke_fn invoke, client_fn cb, void *data)
{
        guint n;
        int r;

        if (!cb)
                return client_unicast_error_remove(NULL, NULL); /* UE-4 */
        /* Error callbacks are local: the broker reports every failed unicast to its sender. */
        pthread_once(&client_once, client_once_init);
        pthread_mutex_lock(&client.lock);
        r = list_add_locked(&client.errors, SLOT_ERROR, invoke, NULL, cb, data, &n);
        pthread_mutex_unlock(&client.lock);
        return r < 0 ? VFIIPC_ERR_SERVER : VFIIPC_OK;
}

int client_unicast_error_remove(client_fn cb, void *data)
{
        GPtrArray *gone;
        guint left;

        pthread_mutex_lock(&client.lock);
        gone = list_take_locked(client.errors, cb, data, &left); /* UE-6 */
        pthread_mutex_unlock(&client.lock);
        list_wait(gone);
        return VFIIPC_OK;
}

int client_observer_add(client_observe_fn invoke, client_fn cb, void *data)
{
        DBusConnection *c;
        call_t call = {0};
        bool first = false;
        guint n = 0;
        int r;

        if (!cb)
                return client_observer_remove(NULL, NULL); /* OBS-D-1 */
        r = client_conn_get(&c); /* OBS-4: needs a reachable server */
        if (r < 0)
                return result_from_errno(r);

        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        r = list_add_locked(&client.observers, SLOT_OBSERVER, NULL, invoke, cb, data, &n);
        pthread_mutex_unlock(&client.lock);
        if (r > 0 && n == 1) {
                DBusMessage *m = broker_call_new("AddObserver");
                first = true;
                if (m)
                        broker_call_start(c, m, &call);
                else
                        call.error = -ENOMEM;
        }
        pthread_mutex_unlock(&client.send_lock);
        dbus_connection_unref(c);

        if (first) {
                r = broker_call_finish(&call);
                if (r < 0) {
                        GPtrArray *gone;
                        guint left;
                        pthread_mutex_lock(&client.lock);
                        gone = list_take_locked(client.observers, cb, data, &left);
                        pthread_mutex_unlock(&client.lock);
                        list_wait(gone);
                }
        }
        return r < 0 ? result_from_errno(r) : VFIIPC_OK;
}

int client_observer_remove(client_fn cb, void *data)
{
        GPtrArray *gone;
        guint left;

        pthread_mutex_lock(&client.send_lock);
        pthread_mutex_lock(&client.lock);
        gone = list_take_locked(client.observers, cb, data, &left); /* OBS-6 */
        /* The broker stops sending Observed once the last observer is gone. */
        if (gone->len && left == 0 && client.conn) {
                DBusMessage *m = broker_call_new("RemoveObserver");
                if (m)
                        broker_send(client.conn, m);
        }
        pthread_mutex_unlock(&client.lock);
        pthread_mutex_unlock(&client.send_lock);
        list_wait(gone); /* OBS-7 */
        return VFIIPC_OK;
}
