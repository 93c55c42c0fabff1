/* tests/test-remote.c — remote peers end to end: the NFY gateway on TCP, the whitelist, the
 * remote registration limit and returned notifications (notification-service.md §4.1, §4.5,
 * §5.2, §6, §7, §8, §10 scenarios 5–10; gaps.md G-82…G-94).
 *
 * Each test starts its own server (notifysvc) with its own whitelist file and a free TCP port
 * (VFIIPC_NFY_PORT). Remote peers are raw TCP clients in this process that write NFY frames
 * and parse what comes back strictly (header, size, message ID 0, a JSON object); local
 * applications are vfiipc-peer processes (peer.h).
 *
 * Negative checks lean on ordering (G-92) wherever possible instead of waiting: a remote
 * peer's frames are processed in order, so when a later `notify` from it has arrived at a
 * local app ("barrier"), everything it sent before has been processed; and the notifications
 * of one local sender reach one remote connection in order, so a later allowed one arriving
 * first proves an earlier one was not delivered. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <jansson.h>

#include "bus/protocol.h"
#include "peer.h"
#include "nfy-frames.h"
#include "remote/nfy.h"
#include "server-fixture.h"

#define WAIT_MS 5000    /* generous deadline for something that must happen */
#define QUIET_MS 300    /* how long we watch for something that must not happen */
#define CONNECT_MS 5000 /* the gateway starts after the broker is ready */
#define SYNC_RULE "in * 1 sync\n"

/* ---- §8.6 worked frames (nfy-frames.h) ----------------------------------------------------- */

/* (d) with its reference (an implementation choice) cut out: before and after "17". */
static const char body_d_head[] = "{\"flags\":0,\"from\":\"kiosk\",\"notification\":\"ext_beep\","
                                  "\"parameter\":{\"count\":2,\"tone\":\"high\"},\"reference\":";
static const char body_d_tail[] = ",\"to\":\"1\",\"type\":\"unicast_error\"}";

/* A frame with any body and any size field (for malformed frames). */
static void append_frame_raw(GByteArray *b, const void *body, size_t len, uint32_t size)
{
        guint8 h[12] = {0x00, 0x4E, 0x46, 0x59};

        h[4] = (guint8)(size >> 24), h[5] = (guint8)(size >> 16), h[6] = (guint8)(size >> 8),
        h[7] = (guint8)size;
        g_byte_array_append(b, h, sizeof(h));
        g_byte_array_append(b, body, (guint)len);
}

static void append_frame_text(GByteArray *b, const char *body)
{
        append_frame_raw(b, body, strlen(body), (uint32_t)(4 + strlen(body)));
}

/* ---- TCP ----------------------------------------------------------------------------- */

/* A port nobody listens on right now (bound once on loopback, then released). */
static int free_port(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
        g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
        close(fd);
        return ntohs(a.sin_port);
}

/* One non-blocking connect attempt; the socket (non-blocking) or -errno. rcvbuf > 0 shrinks
 * the receive buffer first (it bounds the TCP window, so a peer that does not read stalls the
 * sender quickly). */
static int tcp_connect_once(const char *ip, int port, int rcvbuf, int timeout_ms)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        struct pollfd pfd;
        int fd, err = 0, r;
        socklen_t len = sizeof(err);

        g_assert_cmpint(inet_pton(AF_INET, ip, &a.sin_addr), ==, 1);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        g_assert_cmpint(fd, >=, 0);
        if (rcvbuf > 0)
                g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), ==,
                                0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
                return fd;
        if (errno != EINPROGRESS) {
                err = errno;
                close(fd);
                return -err;
        }
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        r = poll(&pfd, 1, timeout_ms);
        if (r <= 0) {
                close(fd);
                return -ETIMEDOUT;
        }
        g_assert_cmpint(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), ==, 0);
        if (err) {
                close(fd);
                return -err;
        }
        return fd;
}

/* True when every connect attempt within ms is refused (nothing listens). */
static bool port_stays_closed(const char *ip, int port, int ms)
{
        gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

        do {
                int fd = tcp_connect_once(ip, port, 0, 1000);
                if (fd >= 0) {
                        close(fd);
                        return false;
                }
                g_assert_cmpint(fd, ==, -ECONNREFUSED);
                g_usleep(50 * 1000);
        } while (g_get_monotonic_time() < end);
        return true;
}

/* True once connecting is refused, within ms. */
static bool port_closes(const char *ip, int port, int ms)
{
        gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

        for (;;) {
                int fd = tcp_connect_once(ip, port, 0, 1000);
                if (fd < 0)
                        return fd == -ECONNREFUSED;
                close(fd);
                if (g_get_monotonic_time() > end)
                        return false;
                g_usleep(20 * 1000);
        }
}

/* The first IPv4 address of an up, non-loopback interface, or NULL. */
static char *non_loopback_ipv4(void)
{
        struct ifaddrs *list, *i;
        char *found = NULL;

        if (getifaddrs(&list) < 0)
                return NULL;
        for (i = list; i && !found; i = i->ifa_next) {
                char buf[INET_ADDRSTRLEN];
                const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;

                if (!a || a->sin_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
                    (i->ifa_flags & IFF_LOOPBACK))
                        continue;
                if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
                        continue;
                if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)))
                        found = g_strdup(buf);
        }
        freeifaddrs(list);
        return found;
}

/* ---- a raw NFY client ----------------------------------------------------------------- */

typedef struct remote {
        int fd;
        GByteArray *in; /* received, not yet parsed */
        bool closed;    /* EOF or reset seen */
} remote_t;

static remote_t *remote_adopt(int fd)
{
        remote_t *r = g_new0(remote_t, 1);

        r->fd = fd;
        r->in = g_byte_array_new();
        return r;
}

/* Connects to 127.0.0.1:port, retrying while nothing listens yet (the gateway is started
 * after the broker is ready). */
static remote_t *remote_connect_ex(int port, int rcvbuf)
{
        gint64 end = g_get_monotonic_time() + (gint64)CONNECT_MS * 1000;
        int fd;

        while ((fd = tcp_connect_once("127.0.0.1", port, rcvbuf, 1000)) < 0) {
                if (fd != -ECONNREFUSED || g_get_monotonic_time() > end)
                        g_error("connect to 127.0.0.1:%d: %s", port, g_strerror(-fd));
                g_usleep(20 * 1000);
        }
        return remote_adopt(fd);
}

static remote_t *remote_connect(int port)
{
        return remote_connect_ex(port, 0);
}

static void remote_free(remote_t *r)
{
        if (!r)
                return;
        close(r->fd);
        g_byte_array_unref(r->in);
        g_free(r);
}

/* Writes everything; false when the gateway closed the connection meanwhile. */
static bool remote_try_send_raw(remote_t *r, const void *data, size_t len)
{
        const guint8 *p = data;
        gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

        while (len > 0) {
                ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        continue;
                }
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return false;
                g_assert_true(n < 0 && (errno == EAGAIN || errno == EINTR));
                g_assert_cmpint(g_get_monotonic_time(), <, end);
                struct pollfd pfd = {.fd = r->fd, .events = POLLOUT};
                poll(&pfd, 1, 100);
        }
        return true;
}

static void remote_send_raw(remote_t *r, const void *data, size_t len)
{
        g_assert_true(remote_try_send_raw(r, data, len));
}

static void remote_send_bytes(remote_t *r, GByteArray *b)
{
        remote_send_raw(r, b->data, b->len);
        g_byte_array_unref(b);
}

/* Sends msg as one frame made by the codec; takes the reference. */
static void remote_send(remote_t *r, json_t *msg)
{
        uint8_t *frame = NULL;
        size_t len = 0;

        g_assert_nonnull(msg);
        g_assert_cmpint(nfy_frame_encode(msg, &frame, &len), ==, 0);
        remote_send_raw(r, frame, len);
        free(frame);
        json_decref(msg);
}

static void remote_register(remote_t *r, const char *to, const char *id, int priority)
{
        json_t *m = NULL;

        g_assert_cmpint(nfy_message_new_register(to, id, priority, &m), ==, 0);
        remote_send(r, m);
}

static void remote_unregister(remote_t *r, const char *to, const char *id)
{
        json_t *m = NULL;

        g_assert_cmpint(nfy_message_new_unregister(to, id, &m), ==, 0);
        remote_send(r, m);
}

static json_t *json_parse(const char *text)
{
        json_error_t e;
        json_t *v = json_loads(text, JSON_DECODE_ANY, &e);

        if (!v)
                g_error("bad JSON in the test: %s: %s", text, e.text);
        return v;
}

static void remote_notify(remote_t *r, const char *from, const char *to, const char *id,
                          const char *param, unsigned flags)
{
        json_t *p = json_parse(param), *m = NULL;

        g_assert_cmpint(nfy_message_new_notify(from, to, id, flags, NULL, p, &m), ==, 0);
        json_decref(p);
        remote_send(r, m);
}

/* Reads until `need` bytes are buffered; false on timeout or close. */
static bool remote_fill(remote_t *r, size_t need, gint64 end)
{
        while (r->in->len < need) {
                guint8 chunk[65536];
                struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
                gint64 left = (end - g_get_monotonic_time()) / 1000;
                ssize_t n;

                if (r->closed)
                        return false;
                /* Past the deadline, still take what has arrived already (timeout 0). */
                if (poll(&pfd, 1, left > 0 ? (int)left : 0) == 0)
                        return false;
                n = read(r->fd, chunk, sizeof(chunk));
                if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                        r->closed = true;
                        return false;
                }
                if (n < 0) {
                        g_assert_true(errno == EAGAIN || errno == EINTR);
                        continue;
                }
                g_byte_array_append(r->in, chunk, (guint)n);
        }
        return true;
}

/* The next frame, parsed strictly: what the gateway sends is always well formed (§8.2, NFYC-1:
 * message ID 0; G-88: a JSON object with a string type). NULL on timeout or close.
 * ret_frame (optional) gets the whole frame as received, ret_body its JSON text. */
static json_t *remote_recv(remote_t *r, int timeout_ms, GByteArray **ret_frame, char **ret_body)
{
        static const guint8 magic[4] = {0x00, 0x4E, 0x46, 0x59};
        gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
        const guint8 *h;
        uint32_t size, id;
        json_error_t e;
        json_t *msg;

        if (!remote_fill(r, NFY_HEADER_LEN, end))
                return NULL;
        h = r->in->data;
        g_assert_cmpmem(h, 4, magic, 4);
        size = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        id = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
        g_assert_cmpuint(size, >=, NFY_SIZE_MIN);
        g_assert_cmpuint(size, <=, NFY_SIZE_MAX);
        g_assert_cmpuint(id, ==, 0);
        if (!remote_fill(r, 8 + (size_t)size, end))
                return NULL;
        msg = json_loadb((const char *)r->in->data + NFY_HEADER_LEN, size - 4,
                         JSON_REJECT_DUPLICATES, &e);
        if (!msg)
                g_error("gateway sent invalid JSON: %s", e.text);
        g_assert_true(json_is_object(msg));
        g_assert_true(json_is_string(json_object_get(msg, "type")));
        if (ret_frame) {
                *ret_frame = g_byte_array_new();
                g_byte_array_append(*ret_frame, r->in->data, 8 + size);
        }
        if (ret_body)
                *ret_body = g_strndup((const char *)r->in->data + NFY_HEADER_LEN, size - 4);
        g_byte_array_remove_range(r->in, 0, 8 + size);
        return msg;
}

static const char *member_str(const json_t *msg, const char *key)
{
        const json_t *v = json_object_get(msg, key);

        if (!json_is_string(v))
                g_error("member %s is not a string", key);
        return json_string_value(v);
}

static char *dump(const json_t *v)
{
        char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *g = g_strdup(s ? s : "?");

        free(s);
        return g;
}

/* Checks a received notify/unicast_error against what we expect; parameter compared as JSON.
 * The reference must be there (§8.4): a number for notify (G-89, the protocol's ticket). */
static void check_message(const json_t *msg, const char *type, const char *from, const char *to,
                          const char *id, const char *param, unsigned flags)
{
        json_t *want = json_parse(param);
        const json_t *ref = json_object_get(msg, "reference");
        char *got = dump(msg);

        g_assert_cmpstr(member_str(msg, "type"), ==, type);
        g_assert_cmpstr(member_str(msg, "from"), ==, from);
        g_assert_cmpstr(member_str(msg, "to"), ==, to);
        g_assert_cmpstr(member_str(msg, "notification"), ==, id);
        g_assert_true(json_is_integer(json_object_get(msg, "flags")));
        g_assert_cmpint(json_integer_value(json_object_get(msg, "flags")), ==, (json_int_t)flags);
        if (!json_equal(json_object_get(msg, "parameter"), want))
                g_error("parameter of %s is not %s", got, param);
        g_assert_nonnull(ref);
        if (!strcmp(type, "notify"))
                g_assert_true(json_is_integer(ref));
        json_decref(want);
        g_free(got);
}

/* Waits for a notify frame with these members; returns it (json_decref). */
static json_t *remote_expect_notify_frame(remote_t *r, const char *from, const char *to,
                                          const char *id, const char *param, unsigned flags,
                                          GByteArray **ret_frame)
{
        json_t *m = remote_recv(r, WAIT_MS, ret_frame, NULL);

        if (!m)
                g_error("no notify %s→%s %s (%s)", from, to, id, r->closed ? "closed" : "timeout");
        check_message(m, "notify", from, to, id, param, flags);
        return m;
}

static void remote_expect_notify(remote_t *r, const char *from, const char *to, const char *id,
                                 const char *param, unsigned flags)
{
        json_decref(remote_expect_notify_frame(r, from, to, id, param, flags, NULL));
}

/* Nothing arrives within ms, and the connection stays up. */
static void remote_expect_nothing(remote_t *r, int ms)
{
        json_t *m = remote_recv(r, ms, NULL, NULL);

        if (m) {
                char *s = dump(m);
                g_error("unexpected frame: %s", s);
        }
        g_assert_false(r->closed);
}

/* True once the gateway has closed the connection (EOF or reset), reading and discarding
 * whatever comes before, within ms. */
static bool remote_wait_closed(remote_t *r, int ms)
{
        gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

        while (!r->closed) {
                g_byte_array_set_size(r->in, 0);
                if (!remote_fill(r, 1, end) && !r->closed)
                        return false;
        }
        return true;
}

/* ---- processes ------------------------------------------------------------------------ */

/* pid, parent and command name of every process (from /proc). */
typedef struct proc_info {
        pid_t pid, ppid;
        char comm[32];
} proc_info_t;

static GArray *proc_list(void)
{
        GArray *a = g_array_new(FALSE, TRUE, sizeof(proc_info_t));
        GDir *d = g_dir_open("/proc", 0, NULL);
        const char *name;

        g_assert_nonnull(d);
        while ((name = g_dir_read_name(d))) {
                char *path, *text = NULL, *open, *close_;
                proc_info_t p = {0};

                if (!g_ascii_isdigit(name[0]))
                        continue;
                path = g_strdup_printf("/proc/%s/stat", name);
                if (g_file_get_contents(path, &text, NULL, NULL) && (open = strchr(text, '(')) &&
                    (close_ = strrchr(text, ')')) && close_ > open && close_[1] == ' ') {
                        p.pid = atoi(name);
                        g_strlcpy(p.comm, open + 1, MIN(sizeof(p.comm), (size_t)(close_ - open)));
                        /* ") S ppid ..." */
                        p.ppid = atoi(close_ + 4);
                        if (close_[2] != 'Z' && close_[2] != 'X')
                                g_array_append_val(a, p);
                }
                g_free(text);
                g_free(path);
        }
        g_dir_close(d);
        return a;
}

static bool descends_from(GArray *procs, pid_t pid, pid_t ancestor)
{
        for (int depth = 0; depth < 64 && pid > 1; depth++) {
                pid_t parent = 0;

                for (guint i = 0; i < procs->len; i++)
                        if (g_array_index(procs, proc_info_t, i).pid == pid)
                                parent = g_array_index(procs, proc_info_t, i).ppid;
                if (parent == ancestor)
                        return true;
                pid = parent;
        }
        return false;
}

/* The live nfy-gateway process below the server, or 0. */
static pid_t gateway_pid(pid_t server)
{
        GArray *procs = proc_list();
        pid_t found = 0;

        for (guint i = 0; i < procs->len && !found; i++) {
                proc_info_t *p = &g_array_index(procs, proc_info_t, i);
                if (!strcmp(p->comm, "nfy-gateway") && descends_from(procs, p->pid, server))
                        found = p->pid;
        }
        g_array_unref(procs);
        return found;
}

static pid_t wait_gateway_pid(pid_t server, int ms)
{
        gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
        pid_t pid;

        while (!(pid = gateway_pid(server)) && g_get_monotonic_time() < end)
                g_usleep(20 * 1000);
        return pid;
}

/* ---- fixture -------------------------------------------------------------------------- */

typedef struct rfix {
        server_fixture_t srv;
        peer_t *sync; /* local app "syncer", registered for "sync" (barrier) */
        unsigned sync_n;
} rfix_t;

static void setup(rfix_t *f, gconstpointer unused)
{
        server_fixture_prepare(&f->srv);
        f->srv.nfy_port = free_port();
}

static void teardown(rfix_t *f, gconstpointer unused)
{
        peer_free(f->sync);
        f->sync = NULL;
        server_fixture_stop(&f->srv);
}

/* Starts the server with exactly this configuration file (NULL: none). */
static void start_config(rfix_t *f, const char *text)
{
        if (text) {
                char *path = g_build_filename(f->srv.dir, "notify.cfg", NULL);
                g_assert_true(g_file_set_contents(path, text, -1, NULL));
                f->srv.config = path;
        }
        server_fixture_restart(&f->srv);
        f->sync = peer_new("syncer");
        g_assert_cmpint(peer_cmd(f->sync, "register", "sync", "0", "", NULL), ==, 0);
}

/* Starts the server with these lines plus the barrier's rule. */
static void start_rules(rfix_t *f, const char *rules)
{
        char *text = g_strconcat(rules, SYNC_RULE, NULL);

        start_config(f, text);
        g_free(text);
}

static remote_t *fix_connect(rfix_t *f)
{
        return remote_connect(f->srv.nfy_port);
}

/* Returns when everything r sent so far has been processed by the broker (G-92): a `notify`
 * sent after it has reached the local app "syncer". */
static void barrier(rfix_t *f, remote_t *r)
{
        char param[16], *want, *line;

        snprintf(param, sizeof(param), "%u", ++f->sync_n);
        remote_notify(r, "sync", "1", "sync", param, 0);
        want = g_strdup_printf("deliver\t-\tsync\t1\tsync\t%s\t0", param);
        line = peer_wait(f->sync, want, WAIT_MS);
        if (!line)
                g_error("barrier %s: the remote's notify did not arrive%s", param,
                        r->closed ? " (connection closed)" : "");
        g_assert_cmpstr(line, ==, want);
        g_free(line);
        g_free(want);
}

/* Local helpers. */
static int notify(peer_t *p, const char *to, const char *id, const char *json)
{
        return peer_cmd(p, "notify", to, id, json, "", "0", NULL);
}

static void expect_line(peer_t *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void expect_line(peer_t *p, const char *fmt, ...)
{
        va_list ap;
        char *want, *line;

        va_start(ap, fmt);
        want = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        line = peer_wait(p, want, WAIT_MS);
        if (!line)
                g_error("local app did not print: %s", want);
        g_assert_cmpstr(line, ==, want);
        g_free(line);
        g_free(want);
}

/* A registered remote that gets a local broadcast: it is served. */
static void assert_remote_served(rfix_t *f, remote_t *r, peer_t *snd, const char *id)
{
        remote_register(r, "srv", id, 0);
        barrier(f, r);
        g_assert_cmpint(notify(snd, "*", id, "\"served\""), ==, 0);
        remote_expect_notify(r, "sender", "*", id, "\"served\"", 0);
}

/* ---- scenario 5: out ------------------------------------------------------------------ */

/* Scenario 5, NFYS-1, NFYS-4, DLV-5, G-88: frame (a) byte for byte registers; a local broadcast
 * allowed by `out * * ext_*` arrives as a compact, sorted notify frame with to "*" and a
 * numeric reference; named and "1" unicasts arrive too; frame (b) unregisters. */
static void test_out_broadcast_reaches_remote(rfix_t *f, gconstpointer unused)
{
        peer_t *pos;
        remote_t *r;
        json_t *m, *ref;
        char *body = NULL, *want, *refs;

        start_rules(f, "out * * ext_*\n");
        pos = peer_new("pos");
        r = fix_connect(f);
        remote_send_bytes(r, hex_bytes(hex_a));
        remote_register(r, "kiosk", "ext_other", 0);
        barrier(f, r);

        g_assert_cmpint(peer_cmd(pos, "notify", "*", "ext_status", "{\"b\":[1,\"x\"],\"a\":null}",
                                 "", "7", NULL),
                        ==, 0);
        m = remote_recv(r, WAIT_MS, NULL, &body);
        g_assert_nonnull(m);
        check_message(m, "notify", "pos", "*", "ext_status", "{\"a\":null,\"b\":[1,\"x\"]}", 7);
        ref = json_incref(json_object_get(m, "reference")); /* compared after m is gone */
        g_assert_cmpint(json_integer_value(ref), >, 0);
        refs = dump(ref);
        want = g_strdup_printf("{\"flags\":7,\"from\":\"pos\",\"notification\":\"ext_status\","
                               "\"parameter\":{\"a\":null,\"b\":[1,\"x\"]},\"reference\":%s,"
                               "\"to\":\"*\",\"type\":\"notify\"}",
                               refs);
        g_assert_cmpstr(body, ==, want);
        g_free(want);
        g_free(refs);
        g_free(body);
        json_decref(m);

        /* Named unicast and "1": to as addressed (DLV-5); each with its own reference. */
        g_assert_cmpint(notify(pos, "kiosk", "ext_status", "1"), ==, 0);
        m = remote_expect_notify_frame(r, "pos", "kiosk", "ext_status", "1", 0, NULL);
        g_assert_false(json_equal(json_object_get(m, "reference"), ref));
        json_decref(m);
        json_decref(ref);
        g_assert_cmpint(notify(pos, "1", "ext_status", "2"), ==, 0);
        remote_expect_notify(r, "pos", "1", "ext_status", "2", 0);

        /* Frame (b) unregisters: ext_status no longer arrives, the later ext_other does. */
        remote_send_bytes(r, hex_bytes(hex_b));
        barrier(f, r);
        g_assert_cmpint(notify(pos, "*", "ext_status", "3"), ==, 0);
        g_assert_cmpint(notify(pos, "*", "ext_other", "4"), ==, 0);
        remote_expect_notify(r, "pos", "*", "ext_other", "4", 0);
        remote_expect_nothing(r, QUIET_MS);
        remote_free(r);
        peer_free(pos);
}

/* Scenario 5, CFG-4, CFG-5: without a matching out rule the registration exists but gets
 * nothing; a later allowed notification from the same sender arrives first (G-92). */
static void test_out_without_rule_nothing_arrives(rfix_t *f, gconstpointer unused)
{
        peer_t *pos;
        remote_t *r;

        start_rules(f, "out * * probe\nout * * ext_statu\nout * ext_status *\n");
        pos = peer_new("pos");
        r = fix_connect(f);
        remote_send_bytes(r, hex_bytes(hex_a));
        remote_register(r, "kiosk", "probe", 0);
        barrier(f, r);
        g_assert_cmpint(notify(pos, "*", "ext_status", "1"), ==, 0);
        g_assert_cmpint(notify(pos, "kiosk", "ext_status", "2"), ==, 0);
        g_assert_cmpint(notify(pos, "1", "ext_status", "3"), ==, 0);
        g_assert_cmpint(notify(pos, "*", "probe", "4"), ==, 0);
        remote_expect_notify(r, "pos", "*", "probe", "4", 0);
        remote_expect_nothing(r, QUIET_MS);
        remote_free(r);
        peer_free(pos);
}

/* NFYS-4, G-91: a broadcast gives one frame per connection even when the connection holds
 * several matching registrations (the frame carries to "*", not the registration). */
static void test_out_one_frame_per_connection(rfix_t *f, gconstpointer unused)
{
        peer_t *snd;
        remote_t *r;

        start_rules(f, "out * * multi\n");
        snd = peer_new("snd");
        r = fix_connect(f);
        remote_register(r, "x", "multi", 0);
        remote_register(r, "y", "multi", 3);
        barrier(f, r);
        g_assert_cmpint(notify(snd, "*", "multi", "1"), ==, 0);
        g_assert_cmpint(notify(snd, "*", "multi", "2"), ==, 0);
        remote_expect_notify(r, "snd", "*", "multi", "1", 0);
        remote_expect_notify(r, "snd", "*", "multi", "2", 0);
        g_assert_cmpint(notify(snd, "x", "multi", "3"), ==, 0);
        remote_expect_notify(r, "snd", "x", "multi", "3", 0);
        remote_expect_nothing(r, QUIET_MS);
        remote_free(r);
        peer_free(snd);
}

/* ---- scenario 6: in ------------------------------------------------------------------- */

/* Scenario 6, NFYS-3, DLV-5: frame (c) with `in * 1 ext_*` reaches the local receiver with
 * from "kiosk", to "1" and the parameter intact; no unicast error comes back. */
static void test_in_admitted_reaches_local(rfix_t *f, gconstpointer unused)
{
        peer_t *app;
        remote_t *r;

        start_rules(f, "in * 1 ext_*\n");
        app = peer_new("app");
        g_assert_cmpint(peer_cmd(app, "register", "ext_beep", "0", "", NULL), ==, 0);
        r = fix_connect(f);
        remote_send_bytes(r, hex_bytes(hex_c));
        expect_line(app, "deliver\t-\tkiosk\t1\text_beep\t{\"count\":2,\"tone\":\"high\"}\t0");
        barrier(f, r);
        remote_expect_nothing(r, QUIET_MS);
        g_assert_cmpuint(peer_count(app, "deliver\t", 0), ==, 0);
        remote_free(r);
        peer_free(app);
}

/* Scenario 6, CFG-6, G-83: with only `in * * other` frame (c) is dropped: the receiver gets
 * the later `other` but never ext_beep, and without a receiver no unicast_error comes back. */
static void test_in_without_rule_dropped_silently(rfix_t *f, gconstpointer unused)
{
        peer_t *app;
        remote_t *r;

        start_rules(f, "in * * other\n");
        app = peer_new("app");
        g_assert_cmpint(peer_cmd(app, "register", "ext_beep", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(app, "register", "other", "0", "", NULL), ==, 0);
        r = fix_connect(f);
        remote_send_bytes(r, hex_bytes(hex_c));
        remote_notify(r, "kiosk", "1", "other", "1", 0);
        expect_line(app, "deliver\t-\tkiosk\t1\tother\t1\t0");
        g_assert_cmpuint(peer_count(app, "deliver\t", QUIET_MS), ==, 0);

        /* Nobody registered: if it were admitted, a unicast error would come back. */
        g_assert_cmpint(peer_cmd(app, "unregister", "ext_beep", "", NULL), ==, 0);
        remote_send_bytes(r, hex_bytes(hex_c));
        barrier(f, r);
        remote_expect_nothing(r, QUIET_MS);
        remote_free(r);
        peer_free(app);
}

/* Scenario (d), DLV-9, DLV-10, NFYC-4: a remote unicast that nobody receives is answered with
 * unicast_error carrying the original members, compact and sorted like frame (d). */
static void test_in_unicast_error_to_remote(rfix_t *f, gconstpointer unused)
{
        remote_t *r, *other;
        json_t *m;
        char *body = NULL, *refs, *want;

        start_rules(f, "in * 1 ext_*\n");
        r = fix_connect(f);
        other = fix_connect(f);
        remote_send_bytes(r, hex_bytes(hex_c));
        m = remote_recv(r, WAIT_MS, NULL, &body);
        g_assert_nonnull(m);
        check_message(m, "unicast_error", "kiosk", "1", "ext_beep",
                      "{\"count\":2,\"tone\":\"high\"}", 0);
        refs = dump(json_object_get(m, "reference"));
        want = g_strconcat(body_d_head, refs, body_d_tail, NULL);
        g_assert_cmpstr(body, ==, want);
        g_free(want);
        g_free(refs);
        g_free(body);
        json_decref(m);

        /* A named unicast too; and only the submitting connection hears of it. */
        remote_notify(r, "kiosk", "1", "ext_x", "[true]", 4);
        m = remote_recv(r, WAIT_MS, NULL, NULL);
        g_assert_nonnull(m);
        check_message(m, "unicast_error", "kiosk", "1", "ext_x", "[true]", 4);
        json_decref(m);
        remote_expect_nothing(other, QUIET_MS);
        remote_free(r);
        remote_free(other);
}

/* ---- §6 the whitelist, table-driven ---------------------------------------------------- */

/* §6.6 plus rules for `to` as written, escapes and case (CFG-4, PAT-1…5, §6.3 note). */
static const char matrix_rules[] = "in  *   1     pay_start\n"
                                   "out *   *     pay_result\n"
                                   "in  *   *     evt_*\n"
                                   "out *   *     evt_*\n"
                                   "out kiosk *   cfg\\*\n"
                                   "in  *   pos   named_*\n"
                                   "out *   pos   named_*\n"
                                   "in  *   \\*    star\n"
                                   "in  a\\*b *   esc\n"
                                   "in  *   *     x\\\\y\n"
                                   "out *   *     Case\n"
                                   "out *   *     outsync\n";

typedef struct row {
        const char *from, *to, *id;
        bool allowed;
} row_t;

/* in: a remote sends it; the local app "pos" is registered for every ID. */
/* clang-format off */
static const row_t in_rows[] = {
    {"peer", "1", "pay_start", true},
    {"peer", "*", "pay_start", false}, /* <to> is "1" in the only rule */
    {"peer", "pos", "pay_start", false},
    {"peer", "pos", "evt_door", true},
    {"peer", "pos", "EVT_door", false}, /* case-sensitive */
    {"peer", "*", "evt_", true},        /* `*` matches the empty rest */
    {"peer", "1", "named_b", false},    /* the rule names "pos": "1" is not "pos" */
    {"peer", "pos", "named_b", true},
    {"peer", "*", "named_b", false},
    {"peer", "*", "star", true}, /* `\*` is a literal star */
    {"peer", "1", "star", false},
    {"a*b", "1", "esc", true},
    {"axb", "1", "esc", false},
    {"peer", "1", "x\\y", true}, /* `\\` is one backslash */
    {"peer", "1", "xy", false},
    {"peer", "pos", "pay_result", false}, /* out rules do not admit anything in */
    {"kiosk", "1", "cfg*", false},
};
/* clang-format on */

/* out: a local app sends it; the remote is registered as "pos" for every ID. */
/* clang-format off */
static const row_t out_rows[] = {
    {"pos", "*", "pay_result", true},
    {"pos", "1", "pay_result", true},
    {"pos", "pos", "pay_result", true},
    {"pos", "*", "evt_", true},
    {"kiosk", "1", "cfg*", true},
    {"kiosk", "*", "cfg*", true},
    {"kiosk", "1", "cfgX", false},
    {"pos", "1", "cfg*", false}, /* <from> must be kiosk */
    {"pos", "*", "pay_start", false}, /* in rules let nothing out */
    {"x", "pos", "named_a", true},
    {"x", "*", "named_a", false},
    {"x", "1", "named_a", false},
    {"pos", "*", "Case", true},
    {"pos", "*", "case", false},
    {"pos", "*", "CASE", false},
};
/* clang-format on */

static gint cmp_strp(gconstpointer a, gconstpointer b)
{
        return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* The lines sorted and joined, so that a failure shows every wrong row at once. */
static char *sorted_join(GPtrArray *lines)
{
        GString *s = g_string_new(NULL);

        g_ptr_array_sort(lines, cmp_strp);
        for (guint i = 0; i < lines->len; i++)
                g_string_append_printf(s, "%s\n", (char *)g_ptr_array_index(lines, i));
        return g_string_free(s, FALSE);
}

/* CFG-4, CFG-6, PAT-1…5, §6.3 note, §6.6 table: `in` rows. Everything is sent at once; after
 * the barrier the set of deliveries must be exactly the allowed rows, and the remote gets no
 * unicast_error for the dropped ones. */
static void test_whitelist_matrix_in(rfix_t *f, gconstpointer unused)
{
        GHashTable *ids = g_hash_table_new(g_str_hash, g_str_equal);
        GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
        GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
        char *ws, *gs, *line;
        peer_t *pos;
        remote_t *r;

        start_rules(f, matrix_rules);
        pos = peer_new("pos");
        for (size_t i = 0; i < G_N_ELEMENTS(in_rows); i++)
                if (g_hash_table_add(ids, (gpointer)in_rows[i].id))
                        g_assert_cmpint(peer_cmd(pos, "register", in_rows[i].id, "0", "", NULL), ==,
                                        0);
        r = fix_connect(f);
        for (size_t i = 0; i < G_N_ELEMENTS(in_rows); i++) {
                char param[16];

                snprintf(param, sizeof(param), "%zu", i);
                remote_notify(r, in_rows[i].from, in_rows[i].to, in_rows[i].id, param, 0);
                if (in_rows[i].allowed)
                        g_ptr_array_add(want, g_strdup_printf("deliver\t-\t%s\t%s\t%s\t%zu\t0",
                                                              in_rows[i].from, in_rows[i].to,
                                                              in_rows[i].id, i));
        }
        barrier(f, r);
        /* Callbacks start in order but run in threads of their own (ORD-2): let them print. */
        while ((line = peer_wait(pos, "deliver\t", QUIET_MS)))
                g_ptr_array_add(got, line);
        ws = sorted_join(want);
        gs = sorted_join(got);
        g_assert_cmpstr(gs, ==, ws);
        remote_expect_nothing(r, 0);
        g_free(ws);
        g_free(gs);
        g_hash_table_unref(ids);
        g_ptr_array_unref(want);
        g_ptr_array_unref(got);
        remote_free(r);
        peer_free(pos);
}

/* CFG-4, PAT-1…5, §6.6 table: `out` rows. A local app sends every row (impersonating `from`,
 * ADR-3), then an allowed marker; the frames before the marker must be exactly the allowed
 * rows (G-92). */
static void test_whitelist_matrix_out(rfix_t *f, gconstpointer unused)
{
        GHashTable *ids = g_hash_table_new(g_str_hash, g_str_equal);
        GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
        GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
        char *ws, *gs;
        peer_t *snd;
        remote_t *r;

        start_rules(f, matrix_rules);
        snd = peer_new("snd");
        r = fix_connect(f);
        for (size_t i = 0; i < G_N_ELEMENTS(out_rows); i++)
                if (g_hash_table_add(ids, (gpointer)out_rows[i].id))
                        remote_register(r, "pos", out_rows[i].id, 0);
        remote_register(r, "pos", "outsync", 0);
        barrier(f, r);
        for (size_t i = 0; i < G_N_ELEMENTS(out_rows); i++) {
                char param[16];

                snprintf(param, sizeof(param), "%zu", i);
                g_assert_cmpint(peer_cmd(snd, "notify", out_rows[i].to, out_rows[i].id, param,
                                         out_rows[i].from, "0", NULL),
                                ==, 0);
                if (out_rows[i].allowed)
                        g_ptr_array_add(want, g_strdup_printf("%s\t%s\t%s\t%zu", out_rows[i].from,
                                                              out_rows[i].to, out_rows[i].id, i));
        }
        g_assert_cmpint(notify(snd, "*", "outsync", "0"), ==, 0);
        for (;;) {
                json_t *m = remote_recv(r, WAIT_MS, NULL, NULL);
                char *p;

                g_assert_nonnull(m);
                g_assert_cmpstr(member_str(m, "type"), ==, "notify");
                if (!strcmp(member_str(m, "notification"), "outsync")) {
                        json_decref(m);
                        break;
                }
                p = dump(json_object_get(m, "parameter"));
                g_ptr_array_add(got, g_strdup_printf("%s\t%s\t%s\t%s", member_str(m, "from"),
                                                     member_str(m, "to"),
                                                     member_str(m, "notification"), p));
                g_free(p);
                json_decref(m);
        }
        ws = sorted_join(want);
        gs = sorted_join(got);
        g_assert_cmpstr(gs, ==, ws);
        g_free(ws);
        g_free(gs);
        g_hash_table_unref(ids);
        g_ptr_array_unref(want);
        g_ptr_array_unref(got);
        remote_free(r);
        peer_free(snd);
}

/* ---- G-82: out before priority ---------------------------------------------------------- */

/* §4.1, G-82: a remote registration that no out rule lets out is no candidate, so with a higher
 * priority it still does not shadow the local one; with an out rule (job2) it does win. */
static void test_out_checked_before_priority(rfix_t *f, gconstpointer unused)
{
        peer_t *app, *snd;
        remote_t *r;

        start_rules(f, "out * * job2\n");
        app = peer_new("app");
        snd = peer_new("snd");
        g_assert_cmpint(peer_cmd(app, "register", "job", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(app, "register", "job2", "0", "", NULL), ==, 0);
        r = fix_connect(f);
        remote_register(r, "app", "job", 100);
        remote_register(r, "app", "job2", 100);
        barrier(f, r);

        g_assert_cmpint(notify(snd, "1", "job", "1"), ==, 0);
        expect_line(app, "deliver\t-\tsnd\t1\tjob\t1\t0");
        g_assert_cmpint(notify(snd, "app", "job", "2"), ==, 0);
        expect_line(app, "deliver\t-\tsnd\tapp\tjob\t2\t0");
        g_assert_cmpint(notify(snd, "1", "job2", "3"), ==, 0); /* control: the remote wins */
        remote_expect_notify(r, "snd", "1", "job2", "3", 0);
        g_assert_cmpint(notify(snd, "app", "job2", "4"), ==, 0);
        remote_expect_notify(r, "snd", "app", "job2", "4", 0);
        g_assert_cmpint(notify(snd, "*", "job", "5"), ==, 0);
        g_assert_cmpint(notify(snd, "*", "job2", "6"), ==, 0);
        remote_expect_notify(r, "snd", "*", "job2", "6", 0); /* and not job before it */
        expect_line(app, "deliver\t-\tsnd\t*\tjob\t5\t0");
        expect_line(app, "deliver\t-\tsnd\t*\tjob2\t6\t0");
        g_assert_cmpuint(peer_count(app, "deliver\t", QUIET_MS), ==, 0);
        remote_expect_nothing(r, 0);
        remote_free(r);
        peer_free(app);
        peer_free(snd);
}

/* ---- scenario 7: the 256 limit ----------------------------------------------------------- */

/* Broadcasts each ID of `ids` from snd, then "outsync", and returns which of them reached r
 * (sorted, joined by ","). r must be registered for "outsync". */
static char *reached(remote_t *r, peer_t *snd, const char *const *ids, size_t n)
{
        GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
        char *s, *p;

        for (size_t i = 0; i < n; i++)
                g_assert_cmpint(notify(snd, "*", ids[i], "0"), ==, 0);
        g_assert_cmpint(notify(snd, "*", "outsync", "0"), ==, 0);
        for (;;) {
                json_t *m = remote_recv(r, WAIT_MS, NULL, NULL);

                g_assert_nonnull(m);
                if (!strcmp(member_str(m, "notification"), "outsync")) {
                        json_decref(m);
                        break;
                }
                g_ptr_array_add(got, g_strdup(member_str(m, "notification")));
                json_decref(m);
        }
        s = sorted_join(got);
        g_strdelimit(s, "\n", ',');
        if ((p = strrchr(s, ',')) && !p[1])
                *p = '\0';
        g_ptr_array_unref(got);
        return s;
}

/* Scenario 7, LIM-1, LIM-2, G-87: 300 distinct registrations from one connection → the first
 * 256 exist (one of them is the marker "outsync"); replacing works at the limit, unregistering
 * frees a slot, a second connection counts toward the same limit, closing frees all. */
static void test_remote_registration_cap(rfix_t *f, gconstpointer unused)
{
        enum { N = 300 };
        char *ids[N + 1] = {NULL}, *s;
        GString *want = g_string_new(NULL);
        peer_t *snd, *app;
        remote_t *a, *b;
        bool ok = false;

        start_rules(f, "out * * cap_*\nout * * outsync\n");
        snd = peer_new("snd");
        app = peer_new("app");
        g_assert_cmpint(peer_cmd(app, "register", "cap_000", "5", "", NULL), ==, 0);
        a = fix_connect(f);
        remote_register(a, "a", "outsync", 0);
        for (int i = 0; i < N; i++) {
                ids[i] = g_strdup_printf("cap_%03d", i);
                remote_register(a, "a", ids[i], 0);
                if (i < (int)VFIIPC_REMOTE_REGISTRATIONS_MAX - 1)
                        g_string_append_printf(want, "%s%s", i ? "," : "", ids[i]);
        }
        barrier(f, a);
        s = reached(a, snd, (const char *const *)ids, N);
        g_assert_cmpstr(s, ==, want->str);
        g_free(s);

        /* At the limit: replacing is accepted (the new priority now beats the local app's),
         * a new one is not. */
        g_assert_cmpint(notify(snd, "1", "cap_000", "1"), ==, 0);
        expect_line(app, "deliver\t-\tsnd\t1\tcap_000\t1\t0");
        remote_register(a, "a", "cap_000", 9);
        remote_register(a, "a", "cap_299", 0);
        barrier(f, a);
        g_assert_cmpint(notify(snd, "1", "cap_000", "2"), ==, 0);
        remote_expect_notify(a, "snd", "1", "cap_000", "2", 0);
        {
                const char *const probe[] = {"cap_000", "cap_299"};
                s = reached(a, snd, probe, 2);
                g_assert_cmpstr(s, ==, "cap_000");
                g_free(s);
        }
        /* Unregistering frees a slot. */
        remote_unregister(a, "a", "cap_001");
        remote_register(a, "a", "cap_299", 0);
        barrier(f, a);
        {
                const char *const probe[] = {"cap_001", "cap_299"};
                s = reached(a, snd, probe, 2);
                g_assert_cmpstr(s, ==, "cap_299");
                g_free(s);
        }

        /* A second connection shares the limit: ignored now, accepted once a slot is free. */
        b = fix_connect(f);
        remote_register(b, "b", "cap_b", 0);
        barrier(f, b);
        g_assert_cmpint(notify(snd, "*", "cap_b", "1"), ==, 0);
        remote_expect_nothing(b, QUIET_MS);
        remote_unregister(a, "a", "cap_002");
        barrier(f, a);
        remote_register(b, "b", "cap_b", 0);
        barrier(f, b);
        g_assert_cmpint(notify(snd, "*", "cap_b", "2"), ==, 0);
        remote_expect_notify(b, "snd", "*", "cap_b", "2", 0);
        remote_register(b, "b", "cap_c", 0);
        barrier(f, b);
        g_assert_cmpint(notify(snd, "*", "cap_c", "3"), ==, 0);
        remote_expect_nothing(b, QUIET_MS);

        /* NFYS-5, G-87: closing a frees its slots (the gateway notices asynchronously). */
        remote_free(a);
        for (int attempt = 0; attempt < 50 && !ok; attempt++) {
                json_t *m;

                remote_register(b, "b", "cap_c", 0);
                barrier(f, b);
                g_assert_cmpint(notify(snd, "*", "cap_c", "4"), ==, 0);
                m = remote_recv(b, 100, NULL, NULL);
                if (m) {
                        check_message(m, "notify", "snd", "*", "cap_c", "4", 0);
                        json_decref(m);
                        ok = true;
                }
        }
        g_assert_true(ok);

        for (int i = 0; i < N; i++)
                g_free(ids[i]);
        g_string_free(want, TRUE);
        remote_free(b);
        peer_free(snd);
        peer_free(app);
}

/* ---- scenario 8: returned notifications ------------------------------------------------- */

/* Scenario 8, §4.5, NFYC-3, DLV-13, G-89: a remote that unregistered sends a delivery back
 * unchanged: a unicast goes to the next candidate (without an `in` check: there is no in rule
 * for it) or, with none left, becomes the sender's unicast error; a returned broadcast is
 * dropped (there is an in rule for it, so a return taken for new would be delivered again). */
static void test_returned_notifications(rfix_t *f, gconstpointer unused)
{
        GByteArray *frame = NULL;
        peer_t *app, *snd;
        remote_t *r;
        json_t *m;

        start_rules(f, "out * * bounce\nout * * lone\nout * * bc\nin * * bc\n");
        app = peer_new("app");
        snd = peer_new("snd");
        g_assert_cmpint(peer_cmd(snd, "errors", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(app, "register", "bounce", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(app, "register", "bc", "0", "", NULL), ==, 0);
        r = fix_connect(f);
        remote_register(r, "far", "bounce", 10);
        remote_register(r, "far", "lone", 0);
        remote_register(r, "far", "bc", 0);
        barrier(f, r);

        /* The remote (priority 10) gets the "1"; it returns it → the local app (priority 0). */
        g_assert_cmpint(peer_cmd(snd, "notify", "1", "bounce", "{\"k\":1}", "", "3", NULL), ==, 0);
        m = remote_expect_notify_frame(r, "snd", "1", "bounce", "{\"k\":1}", 3, &frame);
        json_decref(m);
        g_assert_cmpuint(peer_count(app, "deliver\t", 0), ==, 0);
        remote_unregister(r, "far", "bounce");
        remote_send_raw(r, frame->data, frame->len);
        g_byte_array_unref(frame);
        expect_line(app, "deliver\t-\tsnd\t1\tbounce\t{\"k\":1}\t3");

        /* No other candidate: the original sender gets the unicast error (DLV-10). */
        g_assert_cmpint(peer_cmd(snd, "notify", "1", "lone", "{\"k\":2}", "", "0", NULL), ==, 0);
        m = remote_expect_notify_frame(r, "snd", "1", "lone", "{\"k\":2}", 0, &frame);
        json_decref(m);
        g_assert_cmpuint(peer_count(snd, "error\t", 0), ==, 0);
        remote_unregister(r, "far", "lone");
        remote_send_raw(r, frame->data, frame->len);
        g_byte_array_unref(frame);
        expect_line(snd, "error\tsnd\t1\tlone\t{\"k\":2}\t0");

        /* A returned broadcast is dropped: the local app does not get it twice. */
        g_assert_cmpint(notify(snd, "*", "bc", "{\"k\":3}"), ==, 0);
        m = remote_expect_notify_frame(r, "snd", "*", "bc", "{\"k\":3}", 0, &frame);
        json_decref(m);
        expect_line(app, "deliver\t-\tsnd\t*\tbc\t{\"k\":3}\t0");
        remote_unregister(r, "far", "bc");
        remote_send_raw(r, frame->data, frame->len);
        g_byte_array_unref(frame);
        barrier(f, r);
        g_assert_cmpuint(peer_count(app, "deliver\t", QUIET_MS), ==, 0);
        g_assert_cmpuint(peer_count(snd, "error\t", 0), ==, 0);
        remote_expect_nothing(r, 0);
        remote_free(r);
        peer_free(app);
        peer_free(snd);
}

/* ---- scenario 10: resynchronisation ----------------------------------------------------- */

static GByteArray *notify_frame(const char *from, const char *to, const char *id, const char *param)
{
        json_t *p = json_parse(param), *m = NULL;
        GByteArray *b = g_byte_array_new();
        uint8_t *frame = NULL;
        size_t len = 0;

        g_assert_cmpint(nfy_message_new_notify(from, to, id, 0, NULL, p, &m), ==, 0);
        g_assert_cmpint(nfy_frame_encode(m, &frame, &len), ==, 0);
        g_byte_array_append(b, frame, (guint)len);
        free(frame);
        json_decref(m);
        json_decref(p);
        return b;
}

/* `len` bytes that contain no 0x00, hence no 00 4E 46 59. */
static void append_garbage(GByteArray *b, size_t len, guint32 seed)
{
        GRand *rnd = g_rand_new_with_seed(seed);

        for (size_t i = 0; i < len; i++) {
                guint8 v = (guint8)g_rand_int_range(rnd, 1, 256);
                g_byte_array_append(b, &v, 1);
        }
        g_rand_free(rnd);
}

/* Scenario 10, NFY-4, §8.7, NFYC-1: garbage, a partial header, false headers (size below 4 or
 * above the limit) and a message ID other than 0 before valid frames: each frame is processed. */
static void test_resync_after_garbage(rfix_t *f, gconstpointer unused)
{
        static const guint8 partial[] = {0x00, 0x4E, 0x46};
        static const guint8 small[] = {0x00, 0x4E, 0x46, 0x59, 0x00, 0x00, 0x00, 0x01};
        static const guint8 big[] = {0x00, 0x4E, 0x46, 0x59, 0x00, 0x20, 0x00, 0x00};
        GByteArray *b, *c;
        peer_t *app;
        remote_t *r;

        start_rules(f, "in * 1 ext_*\n");
        app = peer_new("app");
        g_assert_cmpint(peer_cmd(app, "register", "ext_beep", "0", "", NULL), ==, 0);
        r = fix_connect(f);

        b = g_byte_array_new();
        append_garbage(b, 4096, 1);
        c = hex_bytes(hex_c);
        g_byte_array_append(b, c->data, c->len);
        g_byte_array_unref(c);
        remote_send_bytes(r, b);
        expect_line(app, "deliver\t-\tkiosk\t1\text_beep\t{\"count\":2,\"tone\":\"high\"}\t0");

        b = g_byte_array_new();
        g_byte_array_append(b, partial, sizeof(partial));
        c = notify_frame("kiosk", "1", "ext_beep", "3");
        g_byte_array_append(b, c->data, c->len);
        g_byte_array_unref(c);
        remote_send_bytes(r, b);
        expect_line(app, "deliver\t-\tkiosk\t1\text_beep\t3\t0");

        b = g_byte_array_new();
        g_byte_array_append(b, small, sizeof(small));
        g_byte_array_append(b, big, sizeof(big));
        c = notify_frame("kiosk", "1", "ext_beep", "4");
        g_byte_array_append(b, c->data, c->len);
        g_byte_array_unref(c);
        remote_send_bytes(r, b);
        expect_line(app, "deliver\t-\tkiosk\t1\text_beep\t4\t0");

        /* Split across writes, with a message ID of DEADBEEF (ignored). */
        b = g_byte_array_new();
        append_garbage(b, 1000, 2);
        remote_send_bytes(r, b);
        g_usleep(50 * 1000);
        c = notify_frame("kiosk", "1", "ext_beep", "5");
        c->data[8] = 0xDE, c->data[9] = 0xAD, c->data[10] = 0xBE, c->data[11] = 0xEF;
        remote_send_raw(r, c->data, 7);
        g_usleep(50 * 1000);
        remote_send_raw(r, c->data + 7, c->len - 7);
        g_byte_array_unref(c);
        expect_line(app, "deliver\t-\tkiosk\t1\text_beep\t5\t0");

        barrier(f, r);
        g_assert_cmpuint(peer_count(app, "deliver\t", QUIET_MS), ==, 0);
        remote_expect_nothing(r, 0);
        remote_free(r);
        peer_free(app);
}

/* ---- bad peers ------------------------------------------------------------------------- */

typedef enum bad_kind {
        BAD_TRUNCATED_THEN_CLOSE,
        BAD_INVALID_JSON,
        BAD_WRONG_MEMBER_TYPES,
        BAD_FALSE_HEADER,
        BAD_OVERSIZED_FRAME,
        BAD_GARBAGE,
} bad_kind_t;

/* Does the bad thing on a; returns whether the gateway must close a for it. */
static bool misbehave(remote_t **a, bad_kind_t kind)
{
        static const char *const invalid_json[] = {
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":\"bad_j\"",
            "[\"register\"]",
            "{\"to\":\"a\",\"notification\":\"bad_j\"}",
            "{\"type\":5,\"to\":\"a\",\"notification\":\"bad_j\"}",
            "\"register\"",
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":\"bad_\xff\"}",
            "",
        };
        static const char *const wrong_types[] = {
            "{\"type\":\"register\",\"to\":5,\"notification\":\"bad_w\"}",
            "{\"type\":\"register\",\"notification\":\"bad_w\"}",
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":[\"bad_w\"]}",
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":\"bad_w\",\"priority\":\"9\"}",
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":\"bad_w\",\"priority\":1.5}",
            "{\"type\":\"register\",\"to\":\"a\",\"notification\":\"bad_w\","
            "\"priority\":4294967296}",
            "{\"type\":\"notify\",\"from\":7,\"to\":\"1\",\"notification\":\"bad_w\"}",
            "{\"type\":\"notify\",\"to\":\"1\",\"notification\":\"bad_w\"}",
            "{\"type\":\"notify\",\"from\":\"x\",\"to\":\"1\",\"notification\":\"bad_w\","
            "\"flags\":-1}",
            "{\"type\":\"notify\",\"from\":\"x\",\"to\":\"1\",\"notification\":\"bad_w\","
            "\"flags\":\"0\"}",
            "{\"type\":\"notify\",\"from\":\"x\",\"to\":null,\"notification\":\"bad_w\"}",
        };
        GByteArray *b = g_byte_array_new();

        switch (kind) {
        case BAD_TRUNCATED_THEN_CLOSE: {
                static const char part[] = "{\"type\":\"register\",\"to\":\"a\"";
                append_frame_raw(b, part, strlen(part), 104);
                remote_send_bytes(*a, b);
                remote_free(*a);
                *a = NULL;
                return true;
        }
        case BAD_INVALID_JSON:
                for (size_t i = 0; i < G_N_ELEMENTS(invalid_json); i++)
                        append_frame_text(b, invalid_json[i]);
                break;
        case BAD_WRONG_MEMBER_TYPES:
                for (size_t i = 0; i < G_N_ELEMENTS(wrong_types); i++)
                        append_frame_text(b, wrong_types[i]);
                break;
        case BAD_FALSE_HEADER: {
                /* Size fields 3, NFY_SIZE_MAX + 1, 2 MiB and 2^32 − 1, each without a body. */
                static const uint32_t sizes[] = {3, NFY_SIZE_MAX + 1, 2u << 20, 0xFFFFFFFFu};
                for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
                        append_frame_raw(b, "", 0, sizes[i]);
                break;
        }
        case BAD_OVERSIZED_FRAME: {
                /* A well-formed JSON body one byte over the limit: corrupt (NFY-6), and the
                 * body then counts as garbage, more than NFY_GARBAGE_MAX of it (G-88). */
                GString *body = g_string_new("{\"type\":\"register\",\"to\":\"a\","
                                             "\"notification\":\"bad_o\",\"pad\":\"");
                while (body->len < NFY_BODY_MAX - 1)
                        g_string_append_c(body, 'x');
                g_string_append(body, "\"}");
                g_assert_cmpuint(body->len, ==, NFY_BODY_MAX + 1);
                append_frame_raw(b, body->str, body->len, (uint32_t)(4 + body->len));
                g_string_free(body, TRUE);
                (void)remote_try_send_raw(*a, b->data, b->len);
                g_byte_array_unref(b);
                return true;
        }
        case BAD_GARBAGE:
                append_garbage(b, NFY_GARBAGE_MAX + 64 * 1024, 3);
                (void)remote_try_send_raw(*a, b->data, b->len);
                g_byte_array_unref(b);
                return true;
        }
        remote_send_bytes(*a, b);
        return false;
}

/* §8.7, G-88, LIM-5: a misbehaving peer either stays up (bad frames are discarded) or is
 * closed (too much garbage); either way a second peer connected at the same time and the
 * local apps are still served, and nothing of the bad frames took effect. */
static void test_bad_peer(rfix_t *f, gconstpointer data)
{
        bad_kind_t kind = (bad_kind_t)GPOINTER_TO_INT(data);
        peer_t *snd, *lr;
        remote_t *a, *b;
        bool closes;

        start_rules(f, "out * * good*\nout * * bad_*\nin * * bad_*\n");
        snd = peer_new("sender");
        lr = peer_new("lr");
        g_assert_cmpint(peer_cmd(lr, "register", "loc", "0", "", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(lr, "register", "bad_w", "0", "", NULL), ==, 0);
        b = fix_connect(f);
        remote_register(b, "b", "good", 0);
        barrier(f, b);
        a = fix_connect(f);
        barrier(f, a);

        closes = misbehave(&a, kind);
        if (a && closes)
                g_assert_true(remote_wait_closed(a, WAIT_MS));
        if (a && !closes) {
                /* Still up and served; nothing of the bad frames was registered or sent. */
                remote_register(a, "a", "bad_ok", 0);
                barrier(f, a);
                g_assert_cmpint(notify(snd, "*", "bad_j", "0"), ==, 0);
                g_assert_cmpint(notify(snd, "*", "bad_w", "0"), ==, 0);
                g_assert_cmpint(notify(snd, "*", "bad_ok", "1"), ==, 0);
                remote_expect_notify(a, "sender", "*", "bad_ok", "1", 0);
                expect_line(lr, "deliver\t-\tsender\t*\tbad_w\t0\t0");
                g_assert_cmpuint(peer_count(lr, "deliver\t", QUIET_MS), ==, 0);
        }

        /* The other peer: its old registration and a new one both work. */
        g_assert_cmpint(notify(snd, "*", "good", "2"), ==, 0);
        remote_expect_notify(b, "sender", "*", "good", "2", 0);
        assert_remote_served(f, b, snd, "good2");
        /* Local apps. */
        g_assert_cmpint(notify(snd, "lr", "loc", "3"), ==, 0);
        expect_line(lr, "deliver\t-\tsender\tlr\tloc\t3\t0");
        remote_expect_nothing(b, 0);
        remote_free(a);
        remote_free(b);
        peer_free(snd);
        peer_free(lr);
}

/* ---- slow peers, connection limit ----------------------------------------------------- */

/* LIM-4, G-93: a remote that never reads while a local app floods it (256 × 100 KiB) does not
 * stall anybody: another remote and a local app keep getting deliveries promptly, and the
 * gateway eventually closes the stuck connection. */
static void test_never_reading_peer_closed(rfix_t *f, gconstpointer unused)
{
        enum { N = 256, SIZE = 100 * 1024, PROMPT_MS = 2000 };
        GString *param = g_string_new("\"");
        peer_t *flooder, *snd, *lr;
        remote_t *stuck, *b;

        start_rules(f, "out * * big\nout * * small*\n");
        flooder = peer_new("flooder");
        snd = peer_new("sender");
        lr = peer_new("lr");
        g_assert_cmpint(peer_cmd(lr, "register", "loc", "0", "", NULL), ==, 0);
        stuck = remote_connect_ex(f->srv.nfy_port, 4096);
        remote_register(stuck, "s", "big", 0);
        barrier(f, stuck);
        b = fix_connect(f);
        remote_register(b, "b", "small", 0);
        barrier(f, b);
        while (param->len < SIZE)
                g_string_append_c(param, 'x');
        g_string_append_c(param, '"');

        for (int i = 0; i < N; i++) {
                g_assert_cmpint(notify(flooder, "*", "big", param->str), ==, 0);
                if (i == N / 2 || i == N - 1) {
                        json_t *m;
                        char n[16], *line;

                        snprintf(n, sizeof(n), "%d", i);
                        g_assert_cmpint(notify(snd, "*", "small", n), ==, 0);
                        m = remote_recv(b, PROMPT_MS, NULL, NULL);
                        if (!m)
                                g_error("another remote waited more than %d ms during the flood",
                                        PROMPT_MS);
                        check_message(m, "notify", "sender", "*", "small", n, 0);
                        json_decref(m);
                        g_assert_cmpint(notify(snd, "lr", "loc", n), ==, 0);
                        line = peer_wait(lr, "deliver\t-\tsender\tlr\tloc\t", PROMPT_MS);
                        g_assert_nonnull(line);
                        g_free(line);
                }
        }
        if (!remote_wait_closed(stuck, 30000))
                g_error("the gateway did not close a remote that read nothing of %d × %d bytes", N,
                        SIZE);
        assert_remote_served(f, b, snd, "small2");
        g_string_free(param, TRUE);
        remote_free(stuck);
        remote_free(b);
        peer_free(flooder);
        peer_free(snd);
        peer_free(lr);
}

/* G-94: 64 remote connections at once are all served; the 65th is closed at once; once one of
 * the 64 has gone, a new one is served. */
static void test_connection_cap(rfix_t *f, gconstpointer unused)
{
        enum { MAX = VFIIPC_REMOTE_CONNECTIONS_MAX };
        remote_t *conns[MAX], *extra = NULL;
        peer_t *snd;

        start_rules(f, "out * * cap\nout * * cap2\n");
        snd = peer_new("sender");
        for (int i = 0; i < MAX; i++) {
                char to[16];

                snprintf(to, sizeof(to), "p%d", i);
                conns[i] = fix_connect(f);
                remote_register(conns[i], to, "cap", 0);
        }
        for (int i = 0; i < MAX; i++)
                barrier(f, conns[i]);
        g_assert_cmpint(notify(snd, "*", "cap", "1"), ==, 0);
        for (int i = 0; i < MAX; i++)
                remote_expect_notify(conns[i], "sender", "*", "cap", "1", 0);

        extra = fix_connect(f);
        if (!remote_wait_closed(extra, 1000))
                g_error("connection %d was not closed within a second", MAX + 1);
        remote_free(extra);

        remote_free(conns[0]);
        conns[0] = NULL;
        /* The gateway may see the new connection before the close: allow a few retries. */
        for (int attempt = 0;; attempt++) {
                g_assert_cmpint(attempt, <, 20);
                extra = fix_connect(f);
                if (!remote_wait_closed(extra, 200))
                        break;
                remote_free(extra);
        }
        assert_remote_served(f, extra, snd, "cap2");
        for (int i = 1; i < MAX; i++)
                remote_expect_nothing(conns[i], 0);
        remote_free(extra);
        for (int i = 0; i < MAX; i++)
                remote_free(conns[i]);
        peer_free(snd);
}

/* ---- observers ------------------------------------------------------------------------ */

/* DLV-6, DLV-7, DLV-8, LIM-3: a local observer sees deliveries to a remote registration with the
 * resolved receiver as `to`, and "" when the out rules keep the remote out; a remote asking to
 * observe (there is no such message) gets nothing and stays connected. */
static void test_observer_sees_remote_deliveries(rfix_t *f, gconstpointer unused)
{
        static const char *const observe_attempts[] = {
            "{\"type\":\"observe\"}",
            "{\"type\":\"observer\",\"to\":\"x\",\"notification\":\"loc\"}",
            "{\"type\":\"AddObserver\"}",
            "{\"type\":\"add_observer\",\"to\":\"*\",\"notification\":\"*\"}",
        };
        GByteArray *b = g_byte_array_new();
        peer_t *obs, *snd, *lr;
        remote_t *r;

        start_rules(f, "out * * obs_x\n");
        obs = peer_new("watcher");
        snd = peer_new("snd");
        lr = peer_new("lr");
        g_assert_cmpint(peer_cmd(obs, "observe", NULL), ==, 0);
        g_assert_cmpint(peer_cmd(lr, "register", "loc", "0", "", NULL), ==, 0);
        r = fix_connect(f);
        remote_register(r, "far", "obs_x", 0);
        remote_register(r, "far", "obs_y", 0);
        barrier(f, r);

        g_assert_cmpint(notify(snd, "1", "obs_x", "1"), ==, 0);
        remote_expect_notify(r, "snd", "1", "obs_x", "1", 0);
        expect_line(obs, "observed\tsnd\tfar\tobs_x\t0");
        g_assert_cmpint(notify(snd, "*", "obs_x", "2"), ==, 0);
        remote_expect_notify(r, "snd", "*", "obs_x", "2", 0);
        expect_line(obs, "observed\tsnd\tfar\tobs_x\t0");
        g_assert_cmpint(notify(snd, "far", "obs_x", "3"), ==, 0);
        remote_expect_notify(r, "snd", "far", "obs_x", "3", 0);
        expect_line(obs, "observed\tsnd\tfar\tobs_x\t0");
        g_assert_cmpint(notify(snd, "*", "obs_y", "4"), ==, 0);
        expect_line(obs, "observed\tsnd\t\tobs_y\t0");

        for (size_t i = 0; i < G_N_ELEMENTS(observe_attempts); i++)
                append_frame_text(b, observe_attempts[i]);
        remote_send_bytes(r, b);
        barrier(f, r);
        g_assert_cmpint(notify(snd, "lr", "loc", "5"), ==, 0);
        expect_line(lr, "deliver\t-\tsnd\tlr\tloc\t5\t0");
        expect_line(obs, "observed\tsnd\tlr\tloc\t0");
        remote_expect_nothing(r, QUIET_MS);
        remote_free(r);
        peer_free(obs);
        peer_free(snd);
        peer_free(lr);
}

/* ---- listeners and the gateway's life ----------------------------------------------------- */

/* §5.2, G-84, G-86: a file with only comments and interface lines opens no TCP listener and
 * starts no gateway. */
static void test_no_listener_without_rules(rfix_t *f, gconstpointer unused)
{
        start_config(f, "# only comments\n\n   # indented\ninterface 127.0.0.1\n\t\n");
        g_assert_true(port_stays_closed("127.0.0.1", f->srv.nfy_port, 1000));
        g_assert_cmpint(gateway_pid(f->srv.pid), ==, 0);
}

/* §5.2, SVC-3: no configuration file, no listener. */
static void test_no_listener_without_config(rfix_t *f, gconstpointer unused)
{
        /* Without an argument notifysvc reads a default file when there is one (SVC-2). */
        static const char *const defaults[] = {
            "/etc/vfiipc/notify.cfg", "/usr/local/etc/vfiipc/notify.cfg",
            "/home/sys_ipc/notify.cfg", "/home/sys12/notify.cfg"};

        for (size_t i = 0; i < G_N_ELEMENTS(defaults); i++)
                if (g_file_test(defaults[i], G_FILE_TEST_EXISTS)) {
                        g_test_skip("a default configuration file exists on this host");
                        return;
                }
        start_config(f, NULL);
        g_assert_true(port_stays_closed("127.0.0.1", f->srv.nfy_port, 1000));
        g_assert_cmpint(gateway_pid(f->srv.pid), ==, 0);
}

/* The gateway goes away with the server, its peers see EOF and the port closes. */
static void check_gateway_gone(rfix_t *f, pid_t gw, remote_t *r)
{
        /* Whether, not how fast: generous for a loaded CI machine. */
        g_assert_true(remote_wait_closed(r, 10000));
        g_assert_true(port_closes("127.0.0.1", f->srv.nfy_port, 10000));
        g_assert_true(server_fixture_wait_pid_gone(gw, 10000));
}

static void test_gateway_stops_on_sigterm(rfix_t *f, gconstpointer unused)
{
        remote_t *r;
        pid_t gw;
        int status;

        start_rules(f, "out * * x\n");
        r = fix_connect(f);
        barrier(f, r);
        gw = wait_gateway_pid(f->srv.pid, WAIT_MS);
        g_assert_cmpint(gw, >, 0);
        g_assert_cmpint(kill(f->srv.pid, SIGTERM), ==, 0);
        g_assert_cmpint(waitpid(f->srv.pid, &status, 0), ==, f->srv.pid);
        f->srv.pid = 0;
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        check_gateway_gone(f, gw, r);
        remote_free(r);
}

static void test_gateway_stops_on_sigkill(rfix_t *f, gconstpointer unused)
{
        remote_t *r;
        pid_t gw;

        start_rules(f, "out * * x\n");
        r = fix_connect(f);
        barrier(f, r);
        gw = wait_gateway_pid(f->srv.pid, WAIT_MS);
        g_assert_cmpint(gw, >, 0);
        server_fixture_kill(&f->srv);
        check_gateway_gone(f, gw, r);
        remote_free(r);
}

/* server.c (GATEWAY_RESTARTS_MAX), §5.4: kill -9 of the NFY gateway ends its peers'
 * connections; the server notices, starts a new gateway (its own child again) on the same port,
 * and a new raw NFY client connects, registers, sends (barrier: an `in` rule) and receives again
 * within a few seconds. The server itself keeps running. Twice, so a restarted gateway is
 * restarted too. */
static void test_gateway_restarted_after_sigkill(rfix_t *f, gconstpointer unused)
{
        peer_t *snd;
        remote_t *r;
        pid_t gw;

        start_rules(f, "out * * x\n");
        snd = peer_new("sender");
        r = fix_connect(f);
        assert_remote_served(f, r, snd, "x");
        gw = wait_gateway_pid(f->srv.pid, WAIT_MS);
        g_assert_cmpint(gw, >, 0);
        for (int round = 1; round <= 2; round++) {
                gint64 t0 = g_get_monotonic_time(), end = t0 + (gint64)WAIT_MS * 1000;
                pid_t next;

                g_assert_cmpint(kill(gw, SIGKILL), ==, 0);
                g_assert_true(remote_wait_closed(r, WAIT_MS));
                g_assert_true(server_fixture_wait_pid_gone(gw, WAIT_MS));
                remote_free(r);
                while ((next = gateway_pid(f->srv.pid)) == 0 || next == gw) {
                        g_assert_cmpint(g_get_monotonic_time(), <, end);
                        g_usleep(20 * 1000);
                }
                r = fix_connect(f); /* retries while nothing listens yet */
                assert_remote_served(f, r, snd, "x");
                g_test_message("round %d: gateway %d replaced by %d, a new peer served %.0f ms "
                               "after the kill",
                               round, (int)gw, (int)next, (g_get_monotonic_time() - t0) / 1e3);
                g_assert_cmpint(kill(f->srv.pid, 0), ==, 0);
                gw = next;
        }
        remote_free(r);
        peer_free(snd);
}

/* A root server runs the gateway as VFIIPC_GATEWAY_USER (meson test: nobody), without root's
 * supplementary groups. */
static void test_gateway_runs_as_gateway_user(rfix_t *f, gconstpointer unused)
{
        const char *user = g_getenv(VFIIPC_ENV_GATEWAY_USER);
        char *path, *text = NULL, **lines;
        struct passwd *pw;
        remote_t *r;
        pid_t gw;

        if (geteuid() != 0 || !user) {
                g_test_skip("needs root and VFIIPC_GATEWAY_USER");
                return;
        }
        pw = getpwnam(user);
        g_assert_nonnull(pw);
        start_rules(f, "out * * x\n");
        r = fix_connect(f);
        barrier(f, r); /* it is serving, so it has dropped privileges for good */
        gw = wait_gateway_pid(f->srv.pid, WAIT_MS);
        g_assert_cmpint(gw, >, 0);
        path = g_strdup_printf("/proc/%d/status", (int)gw);
        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
                char *want;
                if (g_str_has_prefix(*l, "Uid:")) {
                        want = g_strdup_printf("Uid:\t%u\t%u\t%u\t%u", (unsigned)pw->pw_uid,
                                               (unsigned)pw->pw_uid, (unsigned)pw->pw_uid,
                                               (unsigned)pw->pw_uid);
                        g_assert_cmpstr(*l, ==, want);
                        g_free(want);
                } else if (g_str_has_prefix(*l, "Gid:")) {
                        want = g_strdup_printf("Gid:\t%u\t%u\t%u\t%u", (unsigned)pw->pw_gid,
                                               (unsigned)pw->pw_gid, (unsigned)pw->pw_gid,
                                               (unsigned)pw->pw_gid);
                        g_assert_cmpstr(*l, ==, want);
                        g_free(want);
                } else if (g_str_has_prefix(*l, "Groups:")) {
                        char **g = g_strsplit_set(*l + 7, " \t", -1);
                        for (char **x = g; *x; x++)
                                if (**x)
                                        g_assert_cmpstr(*x, !=, "0");
                        g_strfreev(g);
                }
        }
        g_strfreev(lines);
        g_free(text);
        g_free(path);
        remote_free(r);
}

/* IF-1, IF-3, §5.2: `interface 127.0.0.1` with rules listens on loopback (once) and, having an
 * interface line, not on the other addresses. */
static void test_interface_loopback_line(rfix_t *f, gconstpointer unused)
{
        char *ip = non_loopback_ipv4();
        peer_t *snd;
        remote_t *r;

        start_rules(f, "interface 127.0.0.1\nout * * x\n");
        snd = peer_new("sender");
        r = fix_connect(f);
        assert_remote_served(f, r, snd, "x");
        if (ip)
                g_assert_true(port_stays_closed(ip, f->srv.nfy_port, 200));
        g_free(ip);
        remote_free(r);
        peer_free(snd);
}

/* SRV-8, G-85: an interface that does not exist does not stop the server; loopback works. */
static void test_interface_unknown_keeps_loopback(rfix_t *f, gconstpointer unused)
{
        peer_t *snd;
        remote_t *r;

        start_rules(f, "interface does-not-exist-xyz\nout * * x\n");
        snd = peer_new("sender");
        r = fix_connect(f);
        assert_remote_served(f, r, snd, "x");
        g_assert_cmpint(kill(f->srv.pid, 0), ==, 0);
        remote_free(r);
        peer_free(snd);
}

/* §5.2: rules without interface lines listen on all interfaces. */
static void test_no_interface_lines_listen_everywhere(rfix_t *f, gconstpointer unused)
{
        char *ip = non_loopback_ipv4();
        gint64 end;
        peer_t *snd;
        remote_t *r;
        int fd;

        if (!ip) {
                g_test_skip("no non-loopback IPv4 address");
                return;
        }
        start_rules(f, "out * * x\n");
        snd = peer_new("sender");
        end = g_get_monotonic_time() + (gint64)CONNECT_MS * 1000;
        while ((fd = tcp_connect_once(ip, f->srv.nfy_port, 0, 1000)) < 0) {
                g_assert_cmpint(fd, ==, -ECONNREFUSED);
                g_assert_cmpint(g_get_monotonic_time(), <, end);
                g_usleep(20 * 1000);
        }
        r = remote_adopt(fd);
        assert_remote_served(f, r, snd, "x");
        g_free(ip);
        remote_free(r);
        peer_free(snd);
}

/* ---- G-90: remote to remote ------------------------------------------------------------- */

/* CFG-7, G-90: a notification from remote A passes `in`, then `out` towards remote B; it never
 * comes back to A unless A registered itself; without an out rule B is no candidate. */
static void test_remote_to_remote(rfix_t *f, gconstpointer unused)
{
        peer_t *loc;
        remote_t *a, *b;

        start_rules(f, "in * * r2r\nout * * r2r\nin * * r2r_noout\n");
        loc = peer_new("loc");
        g_assert_cmpint(peer_cmd(loc, "register", "r2r_noout", "0", "", NULL), ==, 0);
        a = fix_connect(f);
        b = fix_connect(f);
        remote_register(b, "b", "r2r", 5);
        remote_register(b, "b", "r2r_noout", 5);
        barrier(f, b);

        remote_notify(a, "a", "*", "r2r", "{\"n\":1}", 2);
        remote_expect_notify(b, "a", "*", "r2r", "{\"n\":1}", 2);
        barrier(f, a);
        remote_expect_nothing(a, QUIET_MS);

        remote_register(a, "a", "r2r", 0);
        barrier(f, a);
        remote_notify(a, "a", "*", "r2r", "{\"n\":2}", 0);
        remote_expect_notify(b, "a", "*", "r2r", "{\"n\":2}", 0);
        remote_expect_notify(a, "a", "*", "r2r", "{\"n\":2}", 0); /* DLV-4 */

        remote_notify(a, "a", "1", "r2r", "{\"n\":3}", 0); /* B has the higher priority */
        remote_expect_notify(b, "a", "1", "r2r", "{\"n\":3}", 0);
        remote_notify(a, "a", "b", "r2r", "{\"n\":4}", 0);
        remote_expect_notify(b, "a", "b", "r2r", "{\"n\":4}", 0);

        remote_notify(a, "a", "1", "r2r_noout", "{\"n\":5}", 0); /* B filtered: the local app */
        expect_line(loc, "deliver\t-\ta\t1\tr2r_noout\t{\"n\":5}\t0");
        barrier(f, a);
        remote_expect_nothing(a, QUIET_MS);
        remote_expect_nothing(b, 0);
        remote_free(a);
        remote_free(b);
        peer_free(loc);
}

/* ---- main ----------------------------------------------------------------------------- */

static void skip_without_gateway(gconstpointer unused)
{
        g_test_skip("VFIIPC_NFY_GATEWAY is not set (no nfy-gateway in this build)");
}

int main(int argc, char **argv)
{
        bool have_gateway = g_getenv(VFIIPC_ENV_NFY_GATEWAY) != NULL;

        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);

#define ADD_DATA(path, data, fn)                                                                   \
        do {                                                                                       \
                if (have_gateway)                                                                  \
                        g_test_add(path, rfix_t, data, setup, fn, teardown);                       \
                else                                                                               \
                        g_test_add_data_func(path, NULL, skip_without_gateway);                    \
        } while (0)
#define ADD(path, fn) ADD_DATA(path, NULL, fn)
        ADD("/remote/out/broadcast-reaches-registered-remote", test_out_broadcast_reaches_remote);
        ADD("/remote/out/without-rule-nothing-arrives", test_out_without_rule_nothing_arrives);
        ADD("/remote/out/checked-before-priority", test_out_checked_before_priority);
        ADD("/remote/out/one-frame-per-connection", test_out_one_frame_per_connection);
        ADD("/remote/in/admitted-reaches-local", test_in_admitted_reaches_local);
        ADD("/remote/in/without-rule-dropped-silently", test_in_without_rule_dropped_silently);
        ADD("/remote/in/unicast-error-to-remote", test_in_unicast_error_to_remote);
        ADD("/remote/whitelist/matrix-in", test_whitelist_matrix_in);
        ADD("/remote/whitelist/matrix-out", test_whitelist_matrix_out);
        ADD("/remote/limit/256-registrations", test_remote_registration_cap);
        ADD("/remote/limit/64-connections", test_connection_cap);
        ADD("/remote/limit/never-reading-peer-closed", test_never_reading_peer_closed);
        ADD("/remote/return/unicast-next-candidate-or-error-broadcast-dropped",
            test_returned_notifications);
        ADD("/remote/frames/resync-after-garbage", test_resync_after_garbage);
        ADD_DATA("/remote/bad-peer/truncated-frame-then-close",
                 GINT_TO_POINTER(BAD_TRUNCATED_THEN_CLOSE), test_bad_peer);
        ADD_DATA("/remote/bad-peer/invalid-json-discarded", GINT_TO_POINTER(BAD_INVALID_JSON),
                 test_bad_peer);
        ADD_DATA("/remote/bad-peer/wrong-member-types-discarded",
                 GINT_TO_POINTER(BAD_WRONG_MEMBER_TYPES), test_bad_peer);
        ADD_DATA("/remote/bad-peer/false-header-resyncs", GINT_TO_POINTER(BAD_FALSE_HEADER),
                 test_bad_peer);
        ADD_DATA("/remote/bad-peer/oversized-frame-closes", GINT_TO_POINTER(BAD_OVERSIZED_FRAME),
                 test_bad_peer);
        ADD_DATA("/remote/bad-peer/garbage-over-1mib-closes", GINT_TO_POINTER(BAD_GARBAGE),
                 test_bad_peer);
        ADD("/remote/observer/sees-remote-deliveries", test_observer_sees_remote_deliveries);
        ADD("/remote/listener/none-without-rules", test_no_listener_without_rules);
        ADD("/remote/listener/none-without-config", test_no_listener_without_config);
        ADD("/remote/listener/all-interfaces-without-interface-lines",
            test_no_interface_lines_listen_everywhere);
        ADD("/remote/listener/interface-loopback-line", test_interface_loopback_line);
        ADD("/remote/listener/unknown-interface-keeps-loopback",
            test_interface_unknown_keeps_loopback);
        ADD("/remote/gateway/stops-on-server-sigterm", test_gateway_stops_on_sigterm);
        ADD("/remote/gateway/stops-on-server-sigkill", test_gateway_stops_on_sigkill);
        ADD("/remote/gateway/restarted-after-sigkill", test_gateway_restarted_after_sigkill);
        ADD("/remote/gateway/runs-as-gateway-user", test_gateway_runs_as_gateway_user);
        ADD("/remote/remote-to-remote/in-then-out", test_remote_to_remote);
#undef ADD
#undef ADD_DATA
        return g_test_run();
}
