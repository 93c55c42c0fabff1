/* lib/remote/gateway.c — the NFY remote gateway (see gateway.h).
 *
 * Shape: one poll() loop over the listeners, every TCP peer, every bus connection (the control
 * connection and one per peer), an eventfd (gateway_quit(), finished name look-ups) and the
 * caller's stop fd. libdbus connections are driven without watch functions: their socket is
 * polled directly, dbus_connection_read_write(c, 0) does the I/O and every connection is
 * dispatched until complete in every round, so libdbus never has a full incoming queue and
 * never stops reading behind our back.
 *
 * One bus connection per TCP peer makes that connection the peer's registrant: the broker drops
 * its registrations when the connection's name vanishes (NFYS-5, REGS-3), and the bus keeps
 * one peer's calls in order (G-92). A peer costs the others nothing (design.md, "a bad peer
 * never costs another peer its messages"): reads are bounded per round, a peer whose bus queue
 * is long is not read (back-pressure), and one whose TCP queue overflows is closed (G-93). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>
#include <glib.h>
#include <jansson.h>

#include "bus/protocol.h"
#include "core/log.h"
#include "core/util.h"
#include "remote/gateway.h"
#include "remote/nfy.h"
#include "json/json-text.h"

/* ---- limits (each one bounds what a peer or the environment can cost us) ------------------ */

/* G-85: unresolvable or unbindable interfaces are retried "every few seconds". */
#define LISTENER_RETRY_MS 5000
/* Pending connections the kernel holds per listener: at most 64 peers are served anyway. */
#define LISTEN_BACKLOG 64
/* Connections taken from one listener per round, so a connect flood cannot starve the peers
 * (each accept also opens a bus connection, the one short blocking step). */
#define ACCEPTS_PER_ROUND 16
/* accept() failing for lack of descriptors or memory would make the listener readable
 * forever; pause accepting that long instead of spinning. */
#define ACCEPT_PAUSE_MS 1000
/* G-94: refusals beyond the peer limit are logged, but at most once in this interval (a
 * connect flood must not turn into a log flood). */
#define REFUSE_LOG_INTERVAL_MS 10000
/* G-94: at most this many TCP peers at once; further ones are accepted and closed. */
#define PEERS_MAX VFIIPC_REMOTE_CONNECTIONS_MAX
/* G-93: bytes of frames queued for one peer; a peer that lets more pile up does not read and
 * is closed rather than allowed to grow our memory. */
#define PEER_OUT_MAX (8u * 1024u * 1024u)
/* Back-pressure: a peer is not read while its bus connection holds more than this for the
 * daemon, so a fast sender cannot queue unbounded calls in our process. */
#define PEER_BUS_QUEUE_HIGH (1024 * 1024)
/* After the TCP side closed, the calls a peer sent may still sit in its bus queue; they get
 * this long to reach the bus before the connection is dropped anyway. */
#define PEER_DRAIN_MS 5000
/* Complaints about one peer's input logged individually; then one "suppressed" line. */
#define PEER_COMPLAINTS_MAX 32
/* G-94, setKeepalive(3, 10): first probe after 10 s idle, then every 10 s, dead after 3. */
#define KEEPALIVE_IDLE_S 10
#define KEEPALIVE_INTERVAL_S 10
#define KEEPALIVE_COUNT 3
/* Start-up calls on the control connection (Hello, AddMatch, GetNameOwner): a local bus
 * answers at once; this only bounds a hung daemon. */
#define BUS_CALL_TIMEOUT_MS 10000

/* "a.b.c.d:port" or "[v6%scope]:port" */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 16)

#define MATCH_BROKER_OWNER                                                                         \
        "type='signal',sender='" DBUS_SERVICE_DBUS "',interface='" DBUS_INTERFACE_DBUS             \
        "',member='NameOwnerChanged',arg0='" VFIIPC_BROKER_NAME "'"

/* ---- types --------------------------------------------------------------------------------- */

/* A name look-up for a listener being retried, run on a helper thread (getaddrinfo() may wait
 * for DNS for many seconds, and the loop must not). Shared by the thread and the loop, each
 * holding a reference; the thread signals completion through its own copy of the wake fd, so
 * a job may outlive the gateway without touching it. */
typedef struct resolve_job {
        gint ref;
        char *name;
        int wake_fd; /* the thread's dup of gateway.wake_fd; closed by the thread */
        atomic_bool done;
        int error; /* 0 or -ENOENT / -ENOMEM */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        const char *how; /* "address", "host name", "device" */
} resolve_job_t;

typedef enum listener_state {
        LISTENER_PENDING,   /* not bound yet: retried every LISTENER_RETRY_MS (G-85) */
        LISTENER_BOUND,     /* accepting */
        LISTENER_DUPLICATE, /* resolved to an address another listener serves (IF-3) */
} listener_state_t;

typedef struct listener {
        gateway_t *g;
        char *name;    /* as configured; for the implicit ones the address literal */
        bool implicit; /* 0.0.0.0 or 127.0.0.1, added by us (§5.2): no look-up */
        listener_state_t state;
        int fd;
        struct sockaddr_storage addr; /* bound to (implicit: the fixed address) */
        socklen_t addr_len;
        bool warned; /* G-85: a failing listener is logged once, not every retry */
        resolve_job_t *job;
} listener_t;

/* Frames not yet written to a peer. */
typedef struct chunk {
        uint8_t *data;
        size_t len, off;
} chunk_t;

typedef struct peer {
        gateway_t *g;
        int fd; /* -1 once the TCP side is closed: the peer drains its bus queue, then goes */
        char name[ADDR_TEXT_MAX];
        DBusConnection *bus; /* the peer's own connection: its registrant (NFYS-5) */
        int bus_fd;
        nfy_decoder_t *dec;
        GQueue out; /* chunk_t *, in delivery order */
        size_t out_bytes;
        bool dead; /* freed at the end of the round (never inside a libdbus callback) */
        int64_t drain_deadline;
        unsigned complaints;
} peer_t;

typedef enum slot_kind {
        SLOT_WAKE,
        SLOT_STOP,
        SLOT_CONTROL,
        SLOT_LISTENER,
        SLOT_PEER_TCP,
        SLOT_PEER_BUS,
} slot_kind_t;

/* What the pollfd at the same index belongs to; valid for one round (nothing is freed before
 * the round ends). */
typedef struct slot {
        slot_kind_t kind;
        void *obj;
} slot_t;

struct gateway {
        char *bus_address;
        uint16_t port;
        int stop_fd;
        int wake_fd; /* eventfd: gateway_quit() and finished look-ups */
        atomic_bool quit;
        DBusConnection *control; /* watches the broker's name; sends nothing after start */
        int control_fd;
        bool control_filter; /* added (libdbus aborts on removing one that is not) */
        char *broker;        /* the broker's unique name: the only sender we accept signals from */
        bool bus_gone;       /* the control connection or the broker's name is gone */
        GPtrArray *listeners;
        GPtrArray *peers;
        uint8_t *rbuf; /* NFY_FRAME_MAX: one read of any peer */
        int64_t next_retry_ms;
        int64_t accept_paused_until_ms;
        int64_t refuse_logged_ms;
        unsigned refused_unlogged;
        GArray *pfds;  /* struct pollfd */
        GArray *slots; /* slot_t */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static void addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
        char host[NI_MAXHOST], serv[NI_MAXSERV];

        if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
                snprintf(buf, size, "(unknown address)");
                return;
        }
        snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static void addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
        if (ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons(port);
        else if (ss->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static uint16_t addr_get_port(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *)ss)->sin_port);
        if (ss->ss_family == AF_INET6)
                return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
        return 0;
}

/* Same host address (ports ignored: all listeners share one port). */
static bool addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6) {
                const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
                return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
                       x->sin6_scope_id == y->sin6_scope_id;
        }
        return false;
}

/* IF-3: "a line naming loopback" — 127.0.0.1, ::1 or ::ffff:127.0.0.1 (what `localhost` and
 * `lo` resolve to); the implicit 127.0.0.1 listener serves it. */
static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        if (ss->ss_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
                return IN6_IS_ADDR_LOOPBACK(a) ||
                       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127 && a->s6_addr[13] == 0 &&
                        a->s6_addr[14] == 0 && a->s6_addr[15] == 1);
        }
        return false;
}

/* libdbus aborts the process on invalid UTF-8 in dbus_message_append_args(), so every string a
 * peer controls is checked here first; the length bound is the broker's own (protocol.h). */
static bool string_ok(const char *s, size_t max)
{
        return strlen(s) <= max && dbus_validate_utf8(s, NULL);
}

/* ---- name resolution (IF-3, G-85) ---------------------------------------------------------- */

static int resolve_literal(const char *name, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        struct addrinfo hints = {
            .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
        struct addrinfo *ai = NULL;

        /* inet_pton, not inet_aton: "127.1" or "1" are not the literal the admin meant. */
        if (inet_pton(AF_INET, name, &sin.sin_addr) == 1) {
                memcpy(ret, &sin, sizeof(sin));
                *ret_len = sizeof(sin);
                return 0;
        }
        /* getaddrinfo for IPv6, so that a scope ("fe80::1%usb0") is understood. */
        if (getaddrinfo(name, NULL, &hints, &ai) != 0 || !ai)
                return -ENOENT;
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

static int resolve_host(const char *name, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        int r = -ENOENT;

        if (getaddrinfo(name, NULL, &hints, &ai) != 0)
                return -ENOENT;
        /* G-85: the first address. */
        for (struct addrinfo *i = ai; i; i = i->ai_next)
                if ((i->ai_family == AF_INET || i->ai_family == AF_INET6) &&
                    i->ai_addrlen <= sizeof(*ret)) {
                        memcpy(ret, i->ai_addr, i->ai_addrlen);
                        *ret_len = i->ai_addrlen;
                        r = 0;
                        break;
                }
        freeaddrinfo(ai);
        return r;
}

static int resolve_device(const char *name, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        struct ifaddrs *ifa = NULL;
        int r = -ENOENT;

        if (getifaddrs(&ifa) < 0)
                return -errno;
        /* G-85: the device's first IPv4 address. */
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && streq(i->ifa_name, name)) {
                        memcpy(ret, i->ifa_addr, sizeof(struct sockaddr_in));
                        *ret_len = sizeof(struct sockaddr_in);
                        r = 0;
                        break;
                }
        freeifaddrs(ifa);
        return r;
}

/* IF-3, G-85: an IPv4/IPv6 literal, else a host name (hosts file or DNS), else a network
 * device. May block (DNS): the loop runs it on a helper thread. Thread-safe. */
static int listener_resolve(const char *name, struct sockaddr_storage *ret, socklen_t *ret_len,
                            const char **ret_how)
{
        if (resolve_literal(name, ret, ret_len) == 0) {
                *ret_how = "address";
                return 0;
        }
        if (resolve_host(name, ret, ret_len) == 0) {
                *ret_how = "host name";
                return 0;
        }
        if (resolve_device(name, ret, ret_len) == 0) {
                *ret_how = "device";
                return 0;
        }
        return -ENOENT;
}

static void resolve_job_unref(resolve_job_t *j)
{
        if (j && g_atomic_int_dec_and_test(&j->ref)) {
                if (j->wake_fd >= 0)
                        close(j->wake_fd);
                free(j->name);
                free(j);
        }
}

static gpointer resolve_job_thread(gpointer data)
{
        resolve_job_t *j = data;
        uint64_t one = 1;

        j->error = listener_resolve(j->name, &j->addr, &j->addr_len, &j->how);
        atomic_store(&j->done, true);
        (void)!write(j->wake_fd, &one, sizeof(one));
        close(j->wake_fd);
        j->wake_fd = -1;
        resolve_job_unref(j);
        return NULL;
}

/* Starts a look-up on a helper thread; -errno when no thread could be started (the caller then
 * resolves in place: late is better than never). */
static int resolve_job_start(gateway_t *g, const char *name, resolve_job_t **ret)
{
        resolve_job_t *j;
        GThread *t;
        GError *err = NULL;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->ref = 1;
        j->name = strdup(name);
        j->wake_fd = fcntl(g->wake_fd, F_DUPFD_CLOEXEC, 3);
        if (!j->name || j->wake_fd < 0) {
                int r = j->name ? -errno : -ENOMEM;
                resolve_job_unref(j);
                return r;
        }
        j->ref = 2; /* the loop's and the thread's */
        t = g_thread_try_new("nfy-resolve", resolve_job_thread, j, &err);
        if (!t) {
                nfy_log(LOG_WARNING, "cannot start a thread to resolve %s: %s", name, err->message);
                g_error_free(err);
                j->ref = 1;
                resolve_job_unref(j);
                return -EAGAIN;
        }
        g_thread_unref(t); /* detached: it ends by itself */
        *ret = j;
        return 0;
}

/* ---- listeners ------------------------------------------------------------------------------ */

static listener_t *listener_free(listener_t *l)
{
        if (!l)
                return NULL;
        if (l->fd >= 0)
                close(l->fd);
        resolve_job_unref(l->job);
        free(l->name);
        free(l);
        return NULL;
}

static void listener_free_void(gpointer p)
{
        listener_free(p);
}

static int listener_new(gateway_t *g, const char *name, bool implicit, listener_t **ret)
{
        listener_t *l;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->g = g;
        l->fd = -1;
        l->implicit = implicit;
        l->state = LISTENER_PENDING;
        l->name = strdup(name);
        if (!l->name) {
                free(l);
                return -ENOMEM;
        }
        if (implicit) {
                const char *how;
                /* Our own literals: cannot fail. */
                if (listener_resolve(name, &l->addr, &l->addr_len, &how) < 0) {
                        listener_free(l);
                        return -EINVAL;
                }
        }
        *ret = l;
        return 0;
}

/* Who serves this address already (IF-3: duplicates and loopback create no second listener). */
static const listener_t *listener_find_same(const listener_t *l,
                                            const struct sockaddr_storage *addr)
{
        const gateway_t *g = l->g;

        for (guint i = 0; i < g->listeners->len; i++) {
                const listener_t *o = g_ptr_array_index(g->listeners, i);
                if (o == l)
                        continue;
                /* Implicit listeners own their address even while not bound yet. */
                if ((o->state == LISTENER_BOUND || o->implicit) && addr_same_host(&o->addr, addr))
                        return o;
                if (o->implicit && addr_is_loopback(&o->addr) && addr_is_loopback(addr))
                        return o;
        }
        return NULL;
}

static int listener_bind(listener_t *l, const struct sockaddr_storage *addr, socklen_t len)
{
        gateway_t *g = l->g;
        struct sockaddr_storage ss = *addr, bound;
        socklen_t bound_len = sizeof(bound);
        int one = 1, fd, r;

        addr_set_port(&ss, g->port);
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A restarted gateway must not wait for TIME_WAIT connections of its predecessor. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                goto fail;
        /* "::" serves IPv6 only: IPv4 has its own listeners (0.0.0.0 / 127.0.0.1). */
        if (ss.ss_family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                goto fail;
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
                goto fail;
        if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0)
                goto fail;
        if (g->port == 0)
                g->port = addr_get_port(&bound); /* port 0: every listener shares the first */
        l->fd = fd;
        l->addr = bound;
        l->addr_len = bound_len;
        return 0;
fail:
        r = -errno;
        close(fd);
        return r;
}

/* One attempt with a resolved address (or a failed look-up, error < 0). */
static void listener_attempt(listener_t *l, int error, const struct sockaddr_storage *addr,
                             socklen_t len, const char *how)
{
        char text[ADDR_TEXT_MAX];
        const listener_t *same;
        int r;

        if (error < 0) {
                /* G-85: logged once, retried quietly. */
                if (!l->warned)
                        nfy_log(LOG_WARNING,
                                "interface %s: not an address, host name or network device (yet); "
                                "retrying every %d s",
                                l->name, LISTENER_RETRY_MS / 1000);
                l->warned = true;
                return;
        }
        same = listener_find_same(l, addr);
        if (same) {
                nfy_log(LOG_INFO, "interface %s: served by the listener for %s already", l->name,
                        same->name);
                l->state = LISTENER_DUPLICATE;
                return;
        }
        r = listener_bind(l, addr, len);
        if (r < 0) {
                struct sockaddr_storage ss = *addr;
                addr_set_port(&ss, l->g->port);
                addr_format((struct sockaddr *)&ss, len, text, sizeof(text));
                if (!l->warned)
                        nfy_log_errno(LOG_WARNING, r,
                                      "interface %s: cannot listen on %s; retrying every %d s",
                                      l->name, text, LISTENER_RETRY_MS / 1000);
                l->warned = true;
                return;
        }
        l->state = LISTENER_BOUND;
        addr_format((struct sockaddr *)&l->addr, l->addr_len, text, sizeof(text));
        nfy_log(l->warned ? LOG_NOTICE : LOG_INFO, "listening for NFY peers on %s (%s %s)", text,
                l->implicit ? "implicit" : how, l->name);
}

/* One attempt, the look-up done in place (start-up, and when no helper thread can be had). */
static void listener_attempt_now(listener_t *l)
{
        struct sockaddr_storage addr;
        socklen_t len = 0;
        const char *how = "address";
        int r = 0;

        if (l->implicit) {
                addr = l->addr;
                len = l->addr_len;
        } else {
                r = listener_resolve(l->name, &addr, &len, &how);
        }
        listener_attempt(l, r, &addr, len, how);
}

/* The retry timer fired: literals and implicit listeners at once, names on a helper thread. */
static void listener_retry(listener_t *l)
{
        struct sockaddr_storage addr;
        socklen_t len;

        if (l->state != LISTENER_PENDING || l->job)
                return;
        if (l->implicit || resolve_literal(l->name, &addr, &len) == 0 ||
            resolve_job_start(l->g, l->name, &l->job) < 0)
                listener_attempt_now(l);
}

/* A helper thread finished (its wake-up arrived). */
static void listener_job_check(listener_t *l)
{
        resolve_job_t *j = l->job;

        if (!j || !atomic_load(&j->done))
                return;
        l->job = NULL;
        listener_attempt(l, j->error, &j->addr, j->addr_len, j->how);
        resolve_job_unref(j);
}

/* ---- peers: logging ------------------------------------------------------------------------- */

static void peer_logv(peer_t *p, int level, int line, bool complaint, const char *fmt, va_list ap)
{
        char text[768];

        if (!log_enabled(LOG_CHANNEL_NFY, level))
                return;
        /* Bad input is logged, but a peer sending nothing else must not flood the log. */
        if (complaint) {
                if (p->complaints > PEER_COMPLAINTS_MAX)
                        return;
                if (++p->complaints > PEER_COMPLAINTS_MAX) {
                        log_write(LOG_CHANNEL_NFY, level, __FILE__, line, 0,
                                  "NFY peer %s: further problems with its input are not logged",
                                  p->name);
                        return;
                }
        }
        vsnprintf(text, sizeof(text), fmt, ap);
        log_write(LOG_CHANNEL_NFY, level, __FILE__, line, 0, "NFY peer %s: %s", p->name, text);
}

static void peer_logf(peer_t *p, int level, int line, bool complaint, const char *fmt, ...)
    _printf_(5, 6);
static void peer_logf(peer_t *p, int level, int line, bool complaint, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        peer_logv(p, level, line, complaint, fmt, ap);
        va_end(ap);
}

#define peer_log(p, lvl, ...) peer_logf((p), (lvl), __LINE__, false, __VA_ARGS__)
/* Problems with what the peer sent: rate-limited per peer. */
#define peer_complain(p, lvl, ...) peer_logf((p), (lvl), __LINE__, true, __VA_ARGS__)

/* ---- peers: life cycle ---------------------------------------------------------------------- */

static void chunk_free(gpointer p)
{
        chunk_t *c = p;

        free(c->data);
        free(c);
}

static void peer_out_clear(peer_t *p)
{
        g_queue_clear_full(&p->out, chunk_free);
        p->out_bytes = 0;
}

static DBusHandlerResult peer_filter(DBusConnection *c, DBusMessage *m, void *userdata);

static peer_t *peer_free(peer_t *p)
{
        if (!p)
                return NULL;
        if (p->bus) {
                /* Closing drops the peer's name on the bus: the broker removes its
                 * registrations (NFYS-5). Never called from inside a dispatch. */
                dbus_connection_remove_filter(p->bus, peer_filter, p);
                dbus_connection_close(p->bus);
                dbus_connection_unref(p->bus);
        }
        if (p->fd >= 0)
                close(p->fd);
        nfy_decoder_free(p->dec);
        peer_out_clear(p);
        free(p);
        return NULL;
}

static void peer_free_void(gpointer p)
{
        peer_free(p);
}

/* Ends the TCP side. What the peer sent before stays queued on its bus connection and is
 * flushed by the loop (a peer may send a notify and hang up at once); then the peer is freed.
 * Safe inside a libdbus callback: the bus connection is only closed by the reaper. */
static void peer_close(peer_t *p, int level, const char *why)
{
        if (p->fd < 0)
                return;
        peer_log(p, level, "disconnected (%s)", why);
        close(p->fd);
        p->fd = -1;
        peer_out_clear(p);
        p->dec = nfy_decoder_free(p->dec);
        p->drain_deadline = monotonic_ms(CLOCK_MONOTONIC) + PEER_DRAIN_MS;
}

/* True when the reaper may free it. */
static bool peer_done(peer_t *p, int64_t now)
{
        if (p->dead)
                return true;
        if (p->fd >= 0)
                return false;
        return !dbus_connection_get_is_connected(p->bus) ||
               !dbus_connection_has_messages_to_send(p->bus) || now >= p->drain_deadline;
}

/* G-94: three keepalive probes 10 s apart; no Nagle delay for small frames. Failures only cost
 * the feature, not the peer. */
static void peer_setup_socket(peer_t *p)
{
        static const struct {
                int level, name, value;
                const char *what;
        } opts[] = {
            {SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
            {IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_IDLE_S, "TCP_KEEPIDLE"},
            {IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S, "TCP_KEEPINTVL"},
            {IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_COUNT, "TCP_KEEPCNT"},
            {IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
        };

        for (size_t i = 0; i < ELEMENTSOF(opts); i++)
                if (setsockopt(p->fd, opts[i].level, opts[i].name, &opts[i].value,
                               sizeof(opts[i].value)) < 0)
                        nfy_log_errno(LOG_DEBUG, -errno, "NFY peer %s: %s", p->name, opts[i].what);
}

/* The peer's own bus connection. Blocking (connect and Hello on a local socket): the one short
 * wait the loop accepts. */
static int peer_bus_open(peer_t *p)
{
        gateway_t *g = p->g;
        DBusError err;
        int r;

        dbus_error_init(&err);
        p->bus = dbus_connection_open_private(g->bus_address, &err);
        if (!p->bus)
                goto fail;
        /* libdbus would _exit() the gateway when this connection drops. */
        dbus_connection_set_exit_on_disconnect(p->bus, FALSE);
        if (!dbus_bus_register(p->bus, &err))
                goto fail;
        if (!dbus_connection_get_unix_fd(p->bus, &p->bus_fd)) {
                dbus_set_error_const(&err, DBUS_ERROR_FAILED, "no socket");
                goto fail;
        }
        if (!dbus_connection_add_filter(p->bus, peer_filter, p, NULL)) {
                dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        return 0;
fail:
        r = dbus_error_has_name(&err, DBUS_ERROR_NO_MEMORY) ? -ENOMEM : -ENOTCONN;
        peer_log(p, LOG_WARNING, "cannot connect to the bus at %s: %s", g->bus_address,
                 err.message);
        dbus_error_free(&err);
        if (p->bus) {
                dbus_connection_close(p->bus);
                dbus_connection_unref(p->bus);
                p->bus = NULL;
        }
        return r;
}

/* Takes over fd. */
static int peer_new(gateway_t *g, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
        peer_t *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p) {
                close(fd);
                return -ENOMEM;
        }
        p->g = g;
        p->fd = fd;
        p->bus_fd = -1;
        g_queue_init(&p->out);
        addr_format((const struct sockaddr *)addr, len, p->name, sizeof(p->name));
        peer_setup_socket(p);

        r = nfy_decoder_new(&p->dec);
        if (r < 0) {
                peer_free(p);
                return r;
        }
        r = peer_bus_open(p);
        if (r < 0) {
                peer_free(p);
                return r;
        }
        g_ptr_array_add(g->peers, p);
        peer_log(p, LOG_INFO, "connected (%u of at most %u)", g->peers->len, PEERS_MAX);
        return 0;
}

/* ---- peers: bus → TCP ----------------------------------------------------------------------- */

static void peer_write(peer_t *p)
{
        while (p->fd >= 0 && !g_queue_is_empty(&p->out)) {
                chunk_t *c = g_queue_peek_head(&p->out);
                ssize_t n;

                n = send(p->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        peer_close(p, LOG_INFO, strerror(errno));
                        return;
                }
                c->off += (size_t)n;
                p->out_bytes -= (size_t)n;
                if (c->off == c->len)
                        chunk_free(g_queue_pop_head(&p->out));
        }
}

/* Queues an encoded frame (taken over). G-93: a peer that lets PEER_OUT_MAX pile up is closed. */
static int peer_enqueue(peer_t *p, uint8_t *frame, size_t len)
{
        chunk_t *c;

        if (p->out_bytes + len > PEER_OUT_MAX) {
                free(frame);
                peer_close(p, LOG_WARNING, "it does not read: outbound queue full (G-93)");
                return -ENOBUFS;
        }
        c = malloc(sizeof(*c));
        if (!c) {
                free(frame);
                return -ENOMEM;
        }
        *c = (chunk_t){.data = frame, .len = len};
        g_queue_push_tail(&p->out, c);
        p->out_bytes += len;
        return 0;
}

static int peer_call(peer_t *p, const char *member, int first_type, ...);

/* Deliver → `notify`, UnicastError → `unicast_error` (protocol.h "Remote peers", §8.4). */
static void peer_send_delivery(peer_t *p, bool notify, const char *from, const char *to,
                               const char *id, const char *json, uint32_t flags, uint64_t ticket)
{
        _cleanup_(json_decrefp) json_t *param = NULL, *ref = NULL, *msg = NULL;
        _cleanup_free_ uint8_t *frame = NULL;
        json_error_t jerr;
        size_t len;
        int r;

        /* NFY-6, G-88: the parameter is embedded as a JSON value, not as a quoted string. */
        param = json_text_parse(json, strlen(json), &jerr);
        if (!param) {
                peer_log(p, LOG_WARNING, "dropping %s %s: invalid JSON from the broker: %s",
                         notify ? "notification" : "unicast error", id, jerr.text);
                return;
        }
        /* G-89: the ticket is the reference a returning peer echoes. jansson integers are
         * signed 64 bit; the broker's tickets count up and never get near 2^63. */
        if (ticket > (uint64_t)INT64_MAX) {
                peer_log(p, LOG_ERR, "ticket %" PRIu64 " not representable in JSON, sent without",
                         ticket);
        } else {
                ref = json_integer((json_int_t)ticket);
                if (!ref)
                        goto oom;
        }
        r = notify ? nfy_message_new_notify(from, to, id, flags, ref, param, &msg)
                   : nfy_message_new_unicast_error(from, to, id, flags, ref, param, &msg);
        if (r < 0)
                goto oom;
        r = nfy_frame_encode(msg, &frame, &len);
        if (r == -EMSGSIZE) {
                /* NFY-6: the peer cannot take a body over 1 MiB, while the bus carries up to
                 * VFIIPC_PARAM_MAX. Hand a delivery back like a peer that has no receiver
                 * for it (G-89): a unicast goes to the next candidate or becomes a unicast
                 * error for its sender instead of vanishing; a broadcast is dropped. */
                peer_log(p, LOG_WARNING,
                         "%s %s from %s is larger than an NFY frame allows (G-88)%s",
                         notify ? "notification" : "unicast error", id, from,
                         notify && ticket ? ", handed back to the broker" : ", dropped");
                if (notify && ticket)
                        peer_call(p, "Notify", DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                  DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                  &flags, DBUS_TYPE_UINT64, &ticket, DBUS_TYPE_INVALID);
                return;
        }
        if (r < 0)
                goto oom;
        peer_enqueue(p, frame, len);
        frame = NULL;
        return;
oom:
        peer_log(p, LOG_ERR, "out of memory, dropping %s %s",
                 notify ? "notification" : "unicast error", id);
}

static void peer_on_deliver(peer_t *p, DBusMessage *m)
{
        const char *from, *to, *id, *json, *receiver;
        dbus_uint32_t flags;
        dbus_uint64_t ticket;
        DBusError err;

        dbus_error_init(&err);
        if (!dbus_message_get_args(m, &err, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                   &flags, DBUS_TYPE_STRING, &receiver, DBUS_TYPE_UINT64, &ticket,
                                   DBUS_TYPE_INVALID)) {
                peer_log(p, LOG_WARNING, "ignoring a malformed Deliver: %s", err.message);
                dbus_error_free(&err);
                return;
        }
        /* G-91: the frame carries `to` as addressed; the receiver ID is not sent. */
        peer_send_delivery(p, true, from, to, id, json, flags, ticket);
}

static void peer_on_unicast_error(peer_t *p, DBusMessage *m)
{
        const char *from, *to, *id, *json;
        dbus_uint32_t flags;
        DBusError err;

        dbus_error_init(&err);
        if (!dbus_message_get_args(m, &err, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                   &flags, DBUS_TYPE_INVALID)) {
                peer_log(p, LOG_WARNING, "ignoring a malformed UnicastError: %s", err.message);
                dbus_error_free(&err);
                return;
        }
        /* DLV-9, NFYC-4: reference 0 — an error is never returned. */
        peer_send_delivery(p, false, from, to, id, json, flags, 0);
}

/* Runs inside dbus_connection_dispatch(): nothing here may free the peer or close its bus
 * connection (peer_close() only ends the TCP side; the reaper does the rest). */
static DBusHandlerResult peer_filter(DBusConnection *c, DBusMessage *m, void *userdata)
{
        peer_t *p = userdata;
        const char *sender, *member;

        if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL)
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        if (dbus_message_is_signal(m, DBUS_INTERFACE_LOCAL, "Disconnected")) {
                if (p->fd >= 0)
                        peer_close(p, LOG_WARNING, "its bus connection was closed");
                p->dead = true;
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        if (!dbus_message_has_interface(m, VFIIPC_CLIENT_INTERFACE))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        /* Only the broker delivers: any other bus client could forge frames otherwise
         * (as the client library does, lib/client/client.c). */
        sender = dbus_message_get_sender(m);
        if (!sender || !streq(sender, p->g->broker) ||
            !dbus_message_has_path(m, VFIIPC_CLIENT_PATH)) {
                peer_log(p, LOG_WARNING, "ignoring %s from %s: not the broker",
                         dbus_message_get_member(m), sender ? sender : "(nobody)");
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        if (p->dead || p->fd < 0)
                return DBUS_HANDLER_RESULT_HANDLED; /* nobody to deliver to any more */
        member = dbus_message_get_member(m);
        if (streq(member, "Deliver"))
                peer_on_deliver(p, m);
        else if (streq(member, "UnicastError"))
                peer_on_unicast_error(p, m);
        return DBUS_HANDLER_RESULT_HANDLED;
}

/* ---- peers: TCP → bus ----------------------------------------------------------------------- */

/* A Remote1 method call, NO_REPLY (protocol.h "Remote peers"). Strings must be checked by the
 * caller: libdbus aborts on invalid UTF-8. Sending only queues; the loop writes (POLLOUT). */
static int peer_call(peer_t *p, const char *member, int first_type, ...)
{
        DBusMessage *m;
        dbus_bool_t ok;
        va_list ap;

        m = dbus_message_new_method_call(VFIIPC_BROKER_NAME, VFIIPC_BROKER_PATH,
                                         VFIIPC_REMOTE_INTERFACE, member);
        if (!m)
                return -ENOMEM;
        dbus_message_set_no_reply(m, TRUE);
        va_start(ap, first_type);
        ok = dbus_message_append_args_valist(m, first_type, ap);
        va_end(ap);
        if (ok)
                ok = dbus_connection_send(p->bus, m, NULL);
        dbus_message_unref(m);
        if (!ok) {
                peer_log(p, LOG_ERR, "out of memory, dropping a %s call", member);
                return -ENOMEM;
        }
        return 0;
}

/* The IDs of a message: bounded and valid UTF-8 (see string_ok()). */
static bool peer_ids_ok(peer_t *p, const nfy_message_t *m)
{
        if (string_ok(m->to, VFIIPC_ID_MAX) && string_ok(m->notification, VFIIPC_ID_MAX) &&
            (!m->from || string_ok(m->from, VFIIPC_ID_MAX)))
                return true;
        peer_complain(p, LOG_WARNING,
                      "discarding %s message: an ID is longer than %u bytes or not UTF-8",
                      m->type_name, VFIIPC_ID_MAX);
        return false;
}

static void peer_forward_notify(peer_t *p, const nfy_message_t *m)
{
        _cleanup_free_ char *json = NULL;
        const char *json_arg;
        dbus_uint64_t reference = 0;

        /* The parameter travels as JSON text (design.md), encoded once here. */
        json = json_dumps(m->parameter, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!json) {
                peer_log(p, LOG_ERR, "out of memory, dropping notify %s", m->notification);
                return;
        }
        if (!string_ok(json, VFIIPC_PARAM_MAX)) {
                peer_complain(p, LOG_WARNING, "discarding notify %s: parameter not usable",
                              m->notification);
                return;
        }
        /* G-89: an integer reference ≥ 1 may be a ticket we delivered (a return); anything
         * else marks a new notification. */
        if (json_is_integer(m->reference) && json_integer_value(m->reference) >= 1)
                reference = (dbus_uint64_t)json_integer_value(m->reference);
        json_arg = json;
        peer_call(p, "Notify", DBUS_TYPE_STRING, &m->from, DBUS_TYPE_STRING, &m->to,
                  DBUS_TYPE_STRING, &m->notification, DBUS_TYPE_STRING, &json_arg, DBUS_TYPE_UINT32,
                  &m->flags, DBUS_TYPE_UINT64, &reference, DBUS_TYPE_INVALID);
}

static void peer_handle_message(peer_t *p, const json_t *msg)
{
        nfy_message_t m;
        dbus_int32_t priority;

        if (nfy_message_check(msg, &m) < 0) {
                /* G-88: discarded and logged; the connection stays up. */
                peer_complain(p, LOG_WARNING,
                              "discarding %s message: a member is missing or has the wrong type "
                              "(G-88)",
                              json_string_value(json_object_get(msg, "type")));
                return;
        }
        switch (m.type) {
        case NFY_TYPE_REGISTER:
                if (!peer_ids_ok(p, &m))
                        return;
                priority = m.priority;
                peer_call(p, "Register", DBUS_TYPE_STRING, &m.to, DBUS_TYPE_STRING, &m.notification,
                          DBUS_TYPE_INT32, &priority, DBUS_TYPE_INVALID);
                break;
        case NFY_TYPE_UNREGISTER:
                if (!peer_ids_ok(p, &m))
                        return;
                peer_call(p, "Unregister", DBUS_TYPE_STRING, &m.to, DBUS_TYPE_STRING,
                          &m.notification, DBUS_TYPE_INVALID);
                break;
        case NFY_TYPE_NOTIFY:
                if (!peer_ids_ok(p, &m))
                        return;
                peer_forward_notify(p, &m);
                break;
        case NFY_TYPE_UNICAST_ERROR: /* server → client only (§8.4) */
        case NFY_TYPE_UNKNOWN:       /* §8.3, G-88: ignored and logged */
                peer_complain(p, LOG_INFO, "ignoring a message of type \"%s\"", m.type_name);
                break;
        }
}

/* One read of at most NFY_FRAME_MAX bytes (bounded work per peer and round), then every
 * complete frame in the order received (G-92). */
static void peer_read(peer_t *p)
{
        gateway_t *g = p->g;
        ssize_t n;
        int r;

        n = recv(p->fd, g->rbuf, NFY_FRAME_MAX, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return;
                peer_close(p, LOG_INFO, strerror(errno));
                return;
        }
        if (n == 0) {
                peer_close(p, LOG_INFO, "closed by the peer");
                return;
        }
        /* Cannot overflow: after draining, the decoder holds less than NFY_FRAME_MAX. */
        r = nfy_decoder_feed(p->dec, g->rbuf, (size_t)n);
        if (r < 0) {
                peer_close(p, LOG_WARNING, strerror(-r));
                return;
        }
        for (;;) {
                _cleanup_(json_decrefp) json_t *msg = NULL;

                r = nfy_decoder_next(p->dec, &msg);
                if (r == 0)
                        return;
                if (r < 0) {
                        /* LIM-5, G-88: more than 1 MiB of garbage without a frame. */
                        peer_close(p, LOG_WARNING, "too much data that is not NFY");
                        return;
                }
                peer_handle_message(p, msg);
        }
}

/* G-94: the peer limit. The connection was accepted; it is closed at once. */
static void gateway_refuse(gateway_t *g, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
        int64_t now = monotonic_ms(CLOCK_MONOTONIC);
        char text[ADDR_TEXT_MAX];

        close(fd);
        if (g->refuse_logged_ms && now - g->refuse_logged_ms < REFUSE_LOG_INTERVAL_MS) {
                g->refused_unlogged++;
                return;
        }
        addr_format((const struct sockaddr *)addr, len, text, sizeof(text));
        nfy_log(LOG_WARNING, "refusing NFY peer %s: %u peers connected already (G-94)", text,
                PEERS_MAX);
        if (g->refused_unlogged > 0)
                nfy_log(LOG_WARNING, "%u more NFY peers were refused in the last %d s",
                        g->refused_unlogged, REFUSE_LOG_INTERVAL_MS / 1000);
        g->refuse_logged_ms = now;
        g->refused_unlogged = 0;
}

static void listener_accept(listener_t *l)
{
        gateway_t *g = l->g;

        if (g->accept_paused_until_ms > monotonic_ms(CLOCK_MONOTONIC))
                return;
        for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
                struct sockaddr_storage addr;
                socklen_t len = sizeof(addr);
                int fd;

                fd = accept4(l->fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        nfy_log_errno(LOG_WARNING, -errno, "cannot accept on %s; pausing for %d ms",
                                      l->name, ACCEPT_PAUSE_MS);
                        g->accept_paused_until_ms = monotonic_ms(CLOCK_MONOTONIC) + ACCEPT_PAUSE_MS;
                        return;
                }
                if (g->peers->len >= PEERS_MAX) {
                        gateway_refuse(g, fd, &addr, len);
                        continue;
                }
                peer_new(g, fd, &addr, len); /* logs its own failures */
        }
}

/* ---- the control connection ----------------------------------------------------------------- */

static DBusHandlerResult gateway_control_filter(DBusConnection *c, DBusMessage *m, void *userdata)
{
        gateway_t *g = userdata;
        const char *name, *old_owner, *new_owner;

        if (dbus_message_is_signal(m, DBUS_INTERFACE_LOCAL, "Disconnected")) {
                if (!g->bus_gone)
                        nfy_log(LOG_NOTICE, "the bus at %s went away", g->bus_address);
                g->bus_gone = true;
                return DBUS_HANDLER_RESULT_HANDLED;
        }
        if (!dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameOwnerChanged") ||
            !streq(dbus_message_get_sender(m) ? dbus_message_get_sender(m) : "", DBUS_SERVICE_DBUS))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &old_owner,
                                   DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID) ||
            !streq(name, VFIIPC_BROKER_NAME))
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
        /* A broker that went (or was replaced) knows nothing of our peers' registrations; the
         * server is gone, and so are we (remote peers reconnect by themselves, §5.4). */
        if (!streq(new_owner, g->broker)) {
                if (!g->bus_gone)
                        nfy_log(LOG_NOTICE, "the broker %s left the bus", g->broker);
                g->bus_gone = true;
        }
        return DBUS_HANDLER_RESULT_HANDLED;
}

static int gateway_control_open(gateway_t *g)
{
        DBusMessage *call = NULL, *reply = NULL;
        const char *name = VFIIPC_BROKER_NAME, *owner;
        DBusError err;
        int r = -ENOTCONN;

        dbus_error_init(&err);
        g->control = dbus_connection_open_private(g->bus_address, &err);
        if (!g->control)
                goto fail;
        dbus_connection_set_exit_on_disconnect(g->control, FALSE);
        if (!dbus_bus_register(g->control, &err))
                goto fail;
        /* The match first, then the owner: a change in between is not missed. */
        dbus_bus_add_match(g->control, MATCH_BROKER_OWNER, &err);
        if (dbus_error_is_set(&err))
                goto fail;
        call = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                            "GetNameOwner");
        if (!call || !dbus_message_append_args(call, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID)) {
                dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        reply =
            dbus_connection_send_with_reply_and_block(g->control, call, BUS_CALL_TIMEOUT_MS, &err);
        if (!reply) {
                if (dbus_error_has_name(&err, DBUS_ERROR_NAME_HAS_NO_OWNER))
                        r = -ENXIO;
                goto fail;
        }
        if (!dbus_message_get_args(reply, &err, DBUS_TYPE_STRING, &owner, DBUS_TYPE_INVALID))
                goto fail;
        g->broker = strdup(owner);
        g->control_filter =
            g->broker && dbus_connection_add_filter(g->control, gateway_control_filter, g, NULL);
        if (!g->control_filter) {
                dbus_set_error_const(&err, DBUS_ERROR_NO_MEMORY, "out of memory");
                goto fail;
        }
        if (!dbus_connection_get_unix_fd(g->control, &g->control_fd)) {
                dbus_set_error_const(&err, DBUS_ERROR_FAILED, "no socket");
                goto fail;
        }
        dbus_message_unref(call);
        dbus_message_unref(reply);
        nfy_log(LOG_DEBUG, "broker %s on %s", g->broker, g->bus_address);
        return 0;
fail:
        if (dbus_error_has_name(&err, DBUS_ERROR_NO_MEMORY))
                r = -ENOMEM;
        if (r == -ENXIO)
                nfy_log(LOG_ERR,
                        "no broker on the bus at %s: %s is not owned (is the server "
                        "running?)",
                        g->bus_address, VFIIPC_BROKER_NAME);
        else
                nfy_log(LOG_ERR, "cannot use the bus at %s: %s", g->bus_address,
                        err.message ? err.message : "failed");
        dbus_error_free(&err);
        if (call)
                dbus_message_unref(call);
        if (reply)
                dbus_message_unref(reply);
        return r;
}

/* ---- the gateway ---------------------------------------------------------------------------- */

int gateway_drop_privileges(const char *user)
{
        struct passwd pwbuf, *pw = NULL;
        _cleanup_free_ char *buf = NULL;
        long size = sysconf(_SC_GETPW_R_SIZE_MAX);
        int r;

        if (isempty(user))
                return -EINVAL;
        if (geteuid() != 0) {
                nfy_log(LOG_DEBUG, "not root: running as uid %u, not as %s", (unsigned)geteuid(),
                        user);
                return 0;
        }
        if (size <= 0)
                size = 16384;
        buf = malloc((size_t)size);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(user, &pwbuf, buf, (size_t)size, &pw);
        if (r != 0)
                return nfy_log_errno(LOG_ERR, -r, "cannot look up user %s", user);
        if (!pw) {
                nfy_log(LOG_ERR, "cannot run as user %s: no such user", user);
                return -ESRCH;
        }
        /* Groups first: once the uid is gone, they can no longer be changed. */
        if (initgroups(pw->pw_name, pw->pw_gid) < 0)
                return nfy_log_errno(LOG_ERR, -errno, "cannot set the groups of user %s", user);
        if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0)
                return nfy_log_errno(LOG_ERR, -errno, "cannot set the group of user %s", user);
        if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                return nfy_log_errno(LOG_ERR, -errno, "cannot become user %s", user);
        /* It must not be undoable: a way back to root would void the bus policy that confines
         * the gateway's user. */
        if (geteuid() != pw->pw_uid || getuid() != pw->pw_uid || getegid() != pw->pw_gid ||
            getgid() != pw->pw_gid || (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))) {
                nfy_log(LOG_ERR, "dropping privileges to user %s did not stick", user);
                return -EPERM;
        }
        nfy_log(LOG_INFO, "running as user %s (uid %u, gid %u)", user, (unsigned)pw->pw_uid,
                (unsigned)pw->pw_gid);
        return 0;
}

static int gateway_config_check(const gateway_config_t *c)
{
        if (!c || isempty(c->bus_address) || (c->n_interfaces > 0 && !c->interfaces) ||
            c->n_interfaces > GATEWAY_INTERFACES_MAX)
                return -EINVAL;
        for (size_t i = 0; i < c->n_interfaces; i++)
                if (isempty(c->interfaces[i]) ||
                    strlen(c->interfaces[i]) > GATEWAY_INTERFACE_NAME_MAX)
                        return -EINVAL;
        return 0;
}

static int gateway_listeners_new(gateway_t *g, const gateway_config_t *c)
{
        listener_t *l;
        int r;

        /* §5.2: no interface → all interfaces; interfaces → those plus loopback (IF-1). */
        r = listener_new(g, c->n_interfaces == 0 ? "0.0.0.0" : "127.0.0.1", true, &l);
        if (r < 0)
                return r;
        g_ptr_array_add(g->listeners, l);
        for (size_t i = 0; i < c->n_interfaces; i++) {
                bool dup = false;

                /* IF-3: a repeated name creates no second listener. */
                for (size_t k = 0; k < i && !dup; k++)
                        dup = streq(c->interfaces[k], c->interfaces[i]);
                if (dup)
                        continue;
                r = listener_new(g, c->interfaces[i], false, &l);
                if (r < 0)
                        return r;
                g_ptr_array_add(g->listeners, l);
        }
        /* First attempt now, the look-ups in place: readiness means "every listener tried". */
        for (guint i = 0; i < g->listeners->len; i++)
                listener_attempt_now(g_ptr_array_index(g->listeners, i));
        g->next_retry_ms = monotonic_ms(CLOCK_MONOTONIC) + LISTENER_RETRY_MS;
        return 0;
}

int gateway_new(const gateway_config_t *config, gateway_t **ret)
{
        gateway_t *g;
        int r;

        if (!ret || gateway_config_check(config) < 0)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->port = config->port;
        g->stop_fd = config->stop_fd;
        g->control_fd = -1;
        g->listeners = g_ptr_array_new_with_free_func(listener_free_void);
        g->peers = g_ptr_array_new_with_free_func(peer_free_void);
        g->pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
        g->slots = g_array_new(FALSE, FALSE, sizeof(slot_t));
        g->bus_address = strdup(config->bus_address);
        g->rbuf = malloc(NFY_FRAME_MAX);
        g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!g->bus_address || !g->rbuf || g->wake_fd < 0) {
                r = g->wake_fd < 0 ? -errno : -ENOMEM;
                gateway_free(g);
                return r;
        }
        r = gateway_control_open(g);
        if (r < 0) {
                gateway_free(g);
                return r;
        }
        r = gateway_listeners_new(g, config);
        if (r < 0) {
                gateway_free(g);
                return r;
        }
        *ret = g;
        return 0;
}

gateway_t *gateway_free(gateway_t *g)
{
        if (!g)
                return NULL;
        /* Peers before the control connection: each closes its own bus connection. */
        if (g->peers)
                g_ptr_array_unref(g->peers);
        if (g->listeners)
                g_ptr_array_unref(g->listeners);
        if (g->control) {
                if (g->control_filter)
                        dbus_connection_remove_filter(g->control, gateway_control_filter, g);
                dbus_connection_close(g->control);
                dbus_connection_unref(g->control);
        }
        if (g->pfds)
                g_array_unref(g->pfds);
        if (g->slots)
                g_array_unref(g->slots);
        if (g->wake_fd >= 0)
                close(g->wake_fd);
        free(g->broker);
        free(g->rbuf);
        free(g->bus_address);
        free(g);
        return NULL;
}

void gateway_quit(gateway_t *g)
{
        uint64_t one = 1;

        if (!g)
                return;
        atomic_store(&g->quit, true);
        (void)!write(g->wake_fd, &one, sizeof(one));
}

const char *gateway_bus_name(const gateway_t *g)
{
        return g && g->control ? dbus_bus_get_unique_name(g->control) : NULL;
}

uint16_t gateway_port(const gateway_t *g)
{
        return g ? g->port : 0;
}

size_t gateway_n_peers(const gateway_t *g)
{
        size_t n = 0;

        if (!g)
                return 0;
        for (guint i = 0; i < g->peers->len; i++)
                if (((const peer_t *)g_ptr_array_index(g->peers, i))->fd >= 0)
                        n++;
        return n;
}

static void gateway_poll_add(gateway_t *g, int fd, short events, slot_kind_t kind, void *obj)
{
        struct pollfd pfd = {.fd = fd, .events = events};
        slot_t slot = {.kind = kind, .obj = obj};

        g_array_append_val(g->pfds, pfd);
        g_array_append_val(g->slots, slot);
}

static short bus_events(DBusConnection *c)
{
        /* libdbus wrote what it could when the message was sent; the rest goes out here. */
        return POLLIN | (dbus_connection_has_messages_to_send(c) ? POLLOUT : 0);
}

/* Every fd of this round, and how long poll() may wait. */
static int gateway_poll_prepare(gateway_t *g)
{
        int64_t now = monotonic_ms(CLOCK_MONOTONIC), due = -1;
        bool pending = false;

        g_array_set_size(g->pfds, 0);
        g_array_set_size(g->slots, 0);
        gateway_poll_add(g, g->wake_fd, POLLIN, SLOT_WAKE, NULL);
        if (g->stop_fd >= 0)
                gateway_poll_add(g, g->stop_fd, POLLIN, SLOT_STOP, NULL);
        gateway_poll_add(g, g->control_fd, bus_events(g->control), SLOT_CONTROL, NULL);

        for (guint i = 0; i < g->listeners->len; i++) {
                listener_t *l = g_ptr_array_index(g->listeners, i);
                if (l->state == LISTENER_PENDING)
                        pending = true;
                else if (l->state == LISTENER_BOUND && g->accept_paused_until_ms <= now)
                        gateway_poll_add(g, l->fd, POLLIN, SLOT_LISTENER, l);
        }
        if (pending)
                due = g->next_retry_ms;
        if (g->accept_paused_until_ms > now && (due < 0 || g->accept_paused_until_ms < due))
                due = g->accept_paused_until_ms;

        for (guint i = 0; i < g->peers->len; i++) {
                peer_t *p = g_ptr_array_index(g->peers, i);

                if (p->fd >= 0) {
                        short ev = 0;
                        /* Back-pressure: not read while its calls wait for the bus. */
                        if (dbus_connection_get_outgoing_size(p->bus) <= PEER_BUS_QUEUE_HIGH)
                                ev |= POLLIN;
                        if (!g_queue_is_empty(&p->out))
                                ev |= POLLOUT;
                        gateway_poll_add(g, p->fd, ev, SLOT_PEER_TCP, p);
                } else if (due < 0 || p->drain_deadline < due) {
                        due = p->drain_deadline;
                }
                gateway_poll_add(g, p->bus_fd, bus_events(p->bus), SLOT_PEER_BUS, p);
        }
        if (due < 0)
                return -1;
        return due <= now ? 0 : (int)MIN(due - now, (int64_t)INT_MAX);
}

/* Reads and writes what poll() reported, then dispatches until complete (inside, filters may
 * end a peer's TCP side; nothing is freed until the round is over). */
static void bus_io(DBusConnection *c, short revents)
{
        if (revents)
                dbus_connection_read_write(c, 0);
        while (dbus_connection_dispatch(c) == DBUS_DISPATCH_DATA_REMAINS)
                ;
}

static void gateway_reap(gateway_t *g)
{
        int64_t now = monotonic_ms(CLOCK_MONOTONIC);

        for (guint i = g->peers->len; i > 0; i--) {
                peer_t *p = g_ptr_array_index(g->peers, i - 1);
                if (!peer_done(p, now))
                        continue;
                if (p->fd < 0 && !p->dead && dbus_connection_has_messages_to_send(p->bus))
                        peer_log(p, LOG_WARNING, "gave up sending its last calls to the bus");
                g_ptr_array_remove_index(g->peers, i - 1); /* frees it */
        }
}

int gateway_run(gateway_t *g)
{
        if (!g)
                return -EINVAL;
        for (;;) {
                struct pollfd *pfds;
                slot_t *slots;
                int timeout, n;
                guint count;

                if (atomic_load(&g->quit))
                        return 0;
                if (g->bus_gone || !dbus_connection_get_is_connected(g->control))
                        return -ECONNRESET;

                timeout = gateway_poll_prepare(g);
                pfds = (struct pollfd *)(void *)g->pfds->data;
                slots = (slot_t *)(void *)g->slots->data;
                count = g->pfds->len;
                n = poll(pfds, count, timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return nfy_log_errno(LOG_ERR, -errno, "poll");
                }

                /* The control connection first: without a broker nothing else matters. */
                for (guint i = 0; i < count; i++) {
                        switch (slots[i].kind) {
                        case SLOT_STOP:
                                if (pfds[i].revents)
                                        return 0;
                                break;
                        case SLOT_WAKE:
                                if (pfds[i].revents & POLLIN) {
                                        uint64_t v;
                                        (void)!read(g->wake_fd, &v, sizeof(v));
                                        for (guint k = 0; k < g->listeners->len; k++)
                                                listener_job_check(
                                                    g_ptr_array_index(g->listeners, k));
                                }
                                break;
                        case SLOT_CONTROL:
                                bus_io(g->control, pfds[i].revents);
                                break;
                        default:
                                break;
                        }
                }
                if (atomic_load(&g->quit))
                        return 0;
                if (g->bus_gone || !dbus_connection_get_is_connected(g->control))
                        return -ECONNRESET;

                for (guint i = 0; i < count; i++) {
                        peer_t *p = slots[i].obj;
                        short re = pfds[i].revents;

                        switch (slots[i].kind) {
                        case SLOT_PEER_TCP:
                                if (p->fd >= 0 && (re & POLLOUT))
                                        peer_write(p);
                                /* POLLHUP/POLLERR without POLLIN: read to learn what
                                 * happened (EOF or the error), or poll() would spin. */
                                if (p->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)))
                                        peer_read(p);
                                break;
                        case SLOT_PEER_BUS:
                                bus_io(p->bus, re);
                                if (!dbus_connection_get_is_connected(p->bus)) {
                                        if (p->fd >= 0)
                                                peer_close(p, LOG_WARNING,
                                                           "its bus connection was closed");
                                        p->dead = true;
                                }
                                break;
                        default:
                                break;
                        }
                }
                /* Deliveries dispatched this round go out now, not one poll() later. */
                for (guint i = 0; i < g->peers->len; i++) {
                        peer_t *p = g_ptr_array_index(g->peers, i);
                        if (p->fd >= 0 && !g_queue_is_empty(&p->out))
                                peer_write(p);
                }

                for (guint i = 0; i < count; i++)
                        if (slots[i].kind == SLOT_LISTENER && (pfds[i].revents & POLLIN))
                                listener_accept(slots[i].obj);

                if (monotonic_ms(CLOCK_MONOTONIC) >= g->next_retry_ms) {
                        for (guint k = 0; k < g->listeners->len; k++)
                                listener_retry(g_ptr_array_index(g->listeners, k));
                        g->next_retry_ms = monotonic_ms(CLOCK_MONOTONIC) + LISTENER_RETRY_MS;
                }
                gateway_reap(g);
        }
}
