/* tests/test-stream.c — the C stream core <vfiipc/stream.h>: framing and resynchronisation,
 * timeouts, flags, closed objects, callbacks, Pipe and TCP endpoints (legacy-api.md §3, G-01…G-29).
 * Peers are raw sockets (socketpair + vfiipc_tcp_setfd) so tests can inject any bytes.
 * Only temp dirs and loopback addresses are used. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "stream/internal.h"
#include "vfiipc/stream.h"

#define PFX 0x12345678u

static vfiipc_stream *new_stream(vfiipc_stream_kind kind)
{
        vfiipc_stream *s = NULL;

        g_assert_cmpint(vfiipc_stream_new(kind, &s), ==, 0);
        g_assert_nonnull(s);
        return s;
}

/* A stream connected to a raw socket the test controls. */
static vfiipc_stream *raw_pair(int *raw)
{
        vfiipc_stream *s = new_stream(VFIIPC_STREAM_TCP);
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_true(vfiipc_tcp_setfd(s, sv[0]));
        *raw = sv[1];
        return s;
}

static void raw_write(int fd, const void *p, size_t n)
{
        g_assert_cmpint(send(fd, p, n, MSG_NOSIGNAL), ==, (ssize_t)n);
}

static size_t raw_read(int fd, void *p, size_t n, int timeout_ms)
{
        size_t got = 0;

        while (got < n) {
                struct pollfd pf = {.fd = fd, .events = POLLIN};
                ssize_t k;

                if (poll(&pf, 1, timeout_ms) <= 0)
                        break;
                k = recv(fd, (char *)p + got, n - got, 0);
                if (k <= 0)
                        break;
                got += (size_t)k;
        }
        return got;
}

static void put_be32(uint8_t *p, uint32_t v)
{
        p[0] = v >> 24;
        p[1] = v >> 16;
        p[2] = v >> 8;
        p[3] = v;
}

static size_t make_frame(uint8_t *buf, uint32_t prefix, uint32_t size_field, int32_t id,
                         const char *payload)
{
        size_t n = payload ? strlen(payload) : 0;

        put_be32(buf, prefix);
        put_be32(buf + 4, size_field);
        put_be32(buf + 8, (uint32_t)id);
        if (n)
                memcpy(buf + 12, payload, n);
        return 12 + n;
}

static gboolean read_one(vfiipc_stream *s, int timeout, int limit, int *id, char **text)
{
        void *msg = NULL;
        size_t size = 0;

        if (!vfiipc_stream_read_msg(s, PFX, id, &msg, &size, limit, timeout))
                return FALSE;
        *text = g_strndup(msg, size);
        free(msg);
        return TRUE;
}

/* FRAME-1, FRAME-2, FRAME-3, the worked examples of §3.7.1. */
static void test_frame_layout(void)
{
        static const uint8_t ex1[] = {0x12, 0x34, 0x56, 0x78, 0, 0, 0, 6, 0, 0, 0, 7, 'h', 'i'};
        static const uint8_t ex2[] = {0xA5, 0xA5, 0xA5, 0xA5, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF};
        uint8_t buf[32];
        int raw;
        vfiipc_stream *s = raw_pair(&raw);

        g_assert_true(vfiipc_stream_write_msg(s, 0x12345678, 7, "hi", 2));
        g_assert_cmpuint(raw_read(raw, buf, sizeof(ex1), 1000), ==, sizeof(ex1));
        g_assert_cmpmem(buf, sizeof(ex1), ex1, sizeof(ex1));
        g_assert_true(vfiipc_stream_write_msg(s, 0xA5A5A5A5, -1, NULL, 0));
        g_assert_cmpuint(raw_read(raw, buf, sizeof(ex2), 1000), ==, sizeof(ex2));
        g_assert_cmpmem(buf, sizeof(ex2), ex2, sizeof(ex2));
        /* MSG-W-3: size < 0 fails without writing and without the error flag. */
        g_assert_false(vfiipc_stream_write_msg(s, PFX, 1, "x", -1));
        g_assert_false(vfiipc_stream_error(s));
        vfiipc_stream_free(s);
        close(raw);
}

/* MSG-R-1, MSG-R-4, G-29: any ID (negative too) comes back unchanged; empty payloads (G-19). */
static void test_frame_ids_and_empty(void)
{
        int raw, id = 0;
        char *text = NULL;
        vfiipc_stream *s = raw_pair(&raw);
        vfiipc_stream *w = NULL;
        uint8_t buf[64];
        size_t n;

        n = make_frame(buf, PFX, 4, INT32_MIN, NULL);
        n += make_frame(buf + n, PFX, 4 + 3, -7, "abc");
        raw_write(raw, buf, n);
        g_assert_true(read_one(s, 1000, 100, &id, &text));
        g_assert_cmpint(id, ==, INT32_MIN);
        g_assert_cmpstr(text, ==, "");
        g_free(text);
        g_assert_true(read_one(s, 1000, 100, &id, &text));
        g_assert_cmpint(id, ==, -7);
        g_assert_cmpstr(text, ==, "abc");
        g_free(text);
        (void)w;
        vfiipc_stream_free(s);
        close(raw);
}

/* MSG-R-2, G-20: garbage (including a broken prefix) before a frame is skipped. */
static void test_frame_resync_garbage(void)
{
        static const uint8_t garbage[] = {0x00, 0x12, 0x34, 0x12, 0x34, 0x56, 0xFF, 0x12, 'z'};
        int raw, id = 0;
        char *text = NULL;
        vfiipc_stream *s = raw_pair(&raw);
        uint8_t buf[64];
        size_t n;

        raw_write(raw, garbage, sizeof(garbage));
        n = make_frame(buf, PFX, 4 + 5, 42, "hello");
        raw_write(raw, buf, n);
        g_assert_true(read_one(s, 1000, 100, &id, &text));
        g_assert_cmpint(id, ==, 42);
        g_assert_cmpstr(text, ==, "hello");
        g_free(text);
        /* G-20: skipped bytes are gone, not returned to read(). */
        g_assert_cmpint(vfiipc_stream_read(s, buf, 1, 0, 0), ==, 0);
        g_assert_false(vfiipc_stream_error(s) || vfiipc_stream_eof(s));
        vfiipc_stream_free(s);
        close(raw);
}

/* MSG-R-3, G-21: a size field beyond size_limit (or below 4) is a false prefix match: skipped
 * without allocating it; the next real frame is found. */
static void test_frame_oversized_and_undersized(void)
{
        int raw, id = 0;
        char *text = NULL;
        vfiipc_stream *s = raw_pair(&raw);
        uint8_t buf[128];
        size_t n;

        n = make_frame(buf, PFX, 0x7ffffff0u, 1, NULL); /* ~2 GiB announced */
        n += make_frame(buf + n, PFX, 2, 2, NULL);        /* below 4 */
        n += make_frame(buf + n, PFX, 0x80000004u, 3, NULL);
        n += make_frame(buf + n, PFX, 4 + 17, 4, "seventeen bytes!!"); /* > limit 16 */
        n += make_frame(buf + n, PFX, 4 + 16, 5, "sixteen bytes!!!");  /* == limit */
        raw_write(raw, buf, n);
        g_assert_true(read_one(s, 1000, 16, &id, &text));
        g_assert_cmpint(id, ==, 5);
        g_assert_cmpstr(text, ==, "sixteen bytes!!!");
        g_free(text);
        g_assert_cmpuint(s->icap, <=, 64 * 1024); /* nothing near the announced size */

        /* Negative size_limit counts as 0: only empty payloads pass. */
        n = make_frame(buf, PFX, 5, 6, "x");
        n += make_frame(buf + n, PFX, 4, 7, NULL);
        raw_write(raw, buf, n);
        g_assert_true(read_one(s, 1000, -5, &id, &text));
        g_assert_cmpint(id, ==, 7);
        g_free(text);
        vfiipc_stream_free(s);
        close(raw);
}

/* The peer disconnecting mid-frame: eof, and no partial message is delivered. */
static void test_frame_eof_mid_frame(void)
{
        int raw, id = 99;
        char *text = NULL;
        vfiipc_stream *s = raw_pair(&raw);
        uint8_t buf[64];
        size_t n = make_frame(buf, PFX, 4 + 10, 1, "0123456789");

        raw_write(raw, buf, n - 4);
        close(raw);
        g_assert_false(read_one(s, 1000, 100, &id, &text));
        g_assert_true(vfiipc_stream_eof(s));
        g_assert_false(vfiipc_stream_error(s));
        g_assert_cmpint(id, ==, 99); /* MSG-R-5: outputs untouched */
        g_assert_null(text);
        /* EOF-4: sticky until close; OBJ-5: close clears it. */
        g_assert_false(read_one(s, 0, 100, &id, &text));
        g_assert_true(vfiipc_stream_eof(s));
        vfiipc_stream_close(s);
        g_assert_false(vfiipc_stream_eof(s));
        vfiipc_stream_free(s);
}

/* MSG-R-7, MSG-R-8, G-14: a timeout mid-frame keeps the partial frame; nothing is lost. */
static void test_frame_partial_timeout_kept(void)
{
        int raw, id = 0;
        char *text = NULL;
        vfiipc_stream *s = raw_pair(&raw);
        uint8_t buf[64];
        size_t n = make_frame(buf, PFX, 4 + 10, 3, "0123456789");
        gint64 t0;

        raw_write(raw, buf, 7);
        t0 = g_get_monotonic_time();
        g_assert_false(read_one(s, 100, 100, &id, &text));
        g_assert_cmpint(g_get_monotonic_time() - t0, >=, 90 * 1000);
        g_assert_false(vfiipc_stream_eof(s) || vfiipc_stream_error(s)); /* MSG-R-6: timeout */
        g_assert_true(vfiipc_stream_poll_in(s, 0));                     /* POLL-5 */
        raw_write(raw, buf + 7, 9);
        g_assert_false(read_one(s, 0, 100, &id, &text)); /* timeout 0: still incomplete */
        raw_write(raw, buf + 16, n - 16);
        g_assert_true(read_one(s, 1000, 100, &id, &text));
        g_assert_cmpstr(text, ==, "0123456789");
        g_free(text);
        vfiipc_stream_free(s);
        close(raw);
}

struct delayed_write {
        int fd;
        int delay_ms;
        const char *data;
};

static gpointer delayed_writer(gpointer p)
{
        struct delayed_write *w = p;

        g_usleep(w->delay_ms * 1000);
        raw_write(w->fd, w->data, strlen(w->data));
        return NULL;
}

/* READ-2…READ-6, READ-10, G-03, G-11, G-12. */
static void test_read_timeouts(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        struct delayed_write w = {0};
        GThread *t;
        char buf[16];
        gint64 t0;

        /* Timeout 0 with nothing there: 0 at once, no flags. */
        t0 = g_get_monotonic_time();
        g_assert_cmpint(vfiipc_stream_read(s, buf, 10, 0, 0), ==, 0);
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 50 * 1000);
        g_assert_false(vfiipc_stream_eof(s) || vfiipc_stream_error(s));
        /* Bounded first-byte timeout. */
        t0 = g_get_monotonic_time();
        g_assert_cmpint(vfiipc_stream_read(s, buf, 10, 100, 100), ==, 0);
        g_assert_cmpint(g_get_monotonic_time() - t0, >=, 90 * 1000);
        /* timeout -1 waits for all bytes, arriving in two parts. */
        raw_write(raw, "abcd", 4);
        w = (struct delayed_write){raw, 150, "efghij"};
        t = g_thread_new("w", delayed_writer, &w);
        g_assert_cmpint(vfiipc_stream_read(s, buf, 10, -1, -1), ==, 10);
        g_assert_cmpmem(buf, 10, "abcdefghij", 10);
        g_thread_join(t);
        /* G-11: the second timeout is an idle timeout restarting with each chunk. */
        raw_write(raw, "12", 2);
        w = (struct delayed_write){raw, 60, "34"};
        t = g_thread_new("w", delayed_writer, &w);
        g_assert_cmpint(vfiipc_stream_read(s, buf, 10, 1000, 120), ==, 4);
        g_thread_join(t);
        /* maxsize <= 0: 0 at once (READ-8). */
        g_assert_cmpint(vfiipc_stream_read(s, buf, 0, -1, -1), ==, 0);
        /* EOF before any byte: 0 and eof (READ-6). */
        close(raw);
        g_assert_cmpint(vfiipc_stream_read(s, buf, 10, -1, -1), ==, 0);
        g_assert_true(vfiipc_stream_eof(s));
        g_assert_false(vfiipc_stream_error(s));
        vfiipc_stream_free(s);
}

/* PEEK-1…PEEK-6, POLL-1…POLL-5. */
static void test_peek_and_poll(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        char a[8], b[8];

        g_assert_cmpint(vfiipc_stream_peek(s, a, sizeof(a), 0), ==, -2);
        g_assert_cmpint(vfiipc_stream_peek(s, a, 0, 0), ==, -1);
        g_assert_cmpint(vfiipc_stream_peek(s, NULL, 4, 0), ==, -1);
        g_assert_false(vfiipc_stream_poll_in(s, 0));
        g_assert_false(vfiipc_stream_poll_in(s, 50));
        raw_write(raw, "xyz", 3);
        g_assert_true(vfiipc_stream_poll_in(s, 1000));
        g_assert_cmpint(vfiipc_stream_peek(s, a, sizeof(a), 1000), ==, 3); /* PEEK-2 */
        g_assert_cmpint(vfiipc_stream_read(s, b, 3, 0, 0), ==, 3);
        g_assert_cmpmem(a, 3, b, 3);
        close(raw);
        g_assert_cmpint(vfiipc_stream_peek(s, a, sizeof(a), 1000), ==, 0); /* EOF */
        g_assert_false(vfiipc_stream_eof(s));                              /* PEEK-4 */
        g_assert_true(vfiipc_stream_poll_in(s, 1000));                     /* POLL-2 */
        g_assert_true(vfiipc_stream_eof(s));
        vfiipc_stream_free(s);
}

/* G-07, ERR-4, OBJ-5/6: operations on a Closed object; close() clears the flags. */
static void test_closed_object(void)
{
        vfiipc_stream *s = new_stream(VFIIPC_STREAM_PIPE), *c = NULL;
        char buf[4];
        int id;
        void *m;
        size_t n;

        g_assert_cmpint(vfiipc_stream_peek(s, buf, 4, 0), ==, -1);
        g_assert_false(vfiipc_stream_error(s)); /* peek sets no flag */
        g_assert_false(vfiipc_stream_set_callback(s, (vfiipc_stream_cb)1, NULL));
        g_assert_true(vfiipc_stream_set_callback(s, NULL, NULL));
        g_assert_cmpstr(vfiipc_stream_remote_addr(s), ==, "");
        g_assert_cmpstr(vfiipc_stream_local_addr(s), ==, "");
        g_assert_cmpint(vfiipc_stream_fd(s), ==, -1);
        g_assert_false(vfiipc_stream_is_server(s));
        g_assert_false(vfiipc_stream_error(s));
        g_assert_cmpint(vfiipc_stream_read(s, buf, 4, -1, -1), ==, -1);
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        g_assert_false(vfiipc_stream_error(s));
        g_assert_false(vfiipc_stream_write(s, "x", 1));
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        g_assert_false(vfiipc_stream_write_msg(s, PFX, 0, "x", 1));
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        g_assert_false(vfiipc_stream_read_msg(s, PFX, &id, &m, &n, 10, -1));
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        g_assert_true(vfiipc_stream_poll_in(s, -1)); /* POLL-6: true at once */
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        g_assert_cmpint(vfiipc_stream_accept(s, -1, &c), <, 0);
        g_assert_null(c);
        g_assert_true(vfiipc_stream_error(s));
        vfiipc_stream_close(s);
        vfiipc_stream_close(s); /* CLOSE-2: no-op */
        g_assert_false(vfiipc_stream_error(s));
        vfiipc_stream_free(s);
        g_assert_null(vfiipc_stream_free(NULL));
}

/* WRITE-3, G-10: a vanished peer gives false + error, never SIGPIPE (default action kills). */
static void test_write_no_sigpipe(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        char big[65536] = {0};

        signal(SIGPIPE, SIG_DFL);
        close(raw);
        for (int i = 0; i < 10 && vfiipc_stream_write(s, big, sizeof(big)); i++)
                ;
        g_assert_false(vfiipc_stream_write(s, big, sizeof(big)));
        g_assert_true(vfiipc_stream_error(s));
        g_assert_false(vfiipc_stream_eof(s)); /* EOF-2 */
        vfiipc_stream_close(s);
        vfiipc_stream_free(s);
}

struct blocked {
        vfiipc_stream *s;
        int result;
        atomic_bool done;
};

static gpointer blocked_reader(gpointer p)
{
        struct blocked *b = p;
        char c;

        b->result = vfiipc_stream_read(b->s, &c, 1, -1, -1);
        atomic_store(&b->done, true);
        return NULL;
}

static gpointer blocked_acceptor(gpointer p)
{
        struct blocked *b = p;
        vfiipc_stream *c = NULL;

        b->result = vfiipc_stream_accept(b->s, -1, &c);
        vfiipc_stream_free(c);
        atomic_store(&b->done, true);
        return NULL;
}

/* CLOSE-3, G-02: close() from another thread wakes a blocked read and a blocked accept. */
static void test_close_wakes_blocked(void)
{
        int raw;
        struct blocked b = {.s = raw_pair(&raw)};
        g_autofree char *dir = g_dir_make_tmp("vfiipc-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "p", NULL);
        GThread *t = g_thread_new("r", blocked_reader, &b);

        g_usleep(100 * 1000);
        g_assert_false(atomic_load(&b.done));
        vfiipc_stream_close(b.s);
        g_thread_join(t);
        g_assert_cmpint(b.result, ==, -1);
        vfiipc_stream_free(b.s);
        close(raw);

        b = (struct blocked){.s = new_stream(VFIIPC_STREAM_PIPE)};
        g_assert_true(vfiipc_pipe_listen(b.s, path));
        t = g_thread_new("a", blocked_acceptor, &b);
        g_usleep(100 * 1000);
        g_assert_false(atomic_load(&b.done));
        vfiipc_stream_close(b.s);
        g_thread_join(t);
        g_assert_cmpint(b.result, <, 0);
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS)); /* CLOSE-2 */
        vfiipc_stream_free(b.s);
        g_rmdir(dir);
}

#define WRITERS 4
#define FRAMES 500

struct writer {
        vfiipc_stream *s;
        int id;
};

static gpointer frame_writer(gpointer p)
{
        struct writer *w = p;
        char payload[300];

        memset(payload, 'a' + w->id, sizeof(payload));
        for (int i = 0; i < FRAMES; i++)
                g_assert_true(vfiipc_stream_write_msg(w->s, PFX, w->id, payload,
                                                      (int)(1 + (i * 7) % sizeof(payload))));
        return NULL;
}

/* OBJ-7, MSG-W-3: concurrent writers never interleave frames; a reader runs at the same time. */
static void test_concurrent_writers(void)
{
        int sv[2], counts[WRITERS] = {0};
        vfiipc_stream *a = new_stream(VFIIPC_STREAM_TCP), *b = new_stream(VFIIPC_STREAM_TCP);
        struct writer w[WRITERS];
        GThread *t[WRITERS];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        g_assert_true(vfiipc_tcp_setfd(a, sv[0]));
        g_assert_true(vfiipc_tcp_setfd(b, sv[1]));
        for (int i = 0; i < WRITERS; i++) {
                w[i] = (struct writer){a, i};
                t[i] = g_thread_new("w", frame_writer, &w[i]);
        }
        for (int n = 0; n < WRITERS * FRAMES; n++) {
                int id = -1;
                void *m = NULL;
                size_t size = 0;

                g_assert_true(vfiipc_stream_read_msg(b, PFX, &id, &m, &size, 1000, 5000));
                g_assert_cmpint(id, >=, 0);
                g_assert_cmpint(id, <, WRITERS);
                for (size_t k = 0; k < size; k++)
                        g_assert_cmpint(((char *)m)[k], ==, 'a' + id);
                counts[id]++;
                free(m);
        }
        for (int i = 0; i < WRITERS; i++) {
                g_thread_join(t[i]);
                g_assert_cmpint(counts[i], ==, FRAMES);
        }
        vfiipc_stream_free(a);
        vfiipc_stream_free(b);
}

/* ---- callbacks ---- */

struct cbstate {
        atomic_int calls;
        atomic_bool in_cb;
        int sleep_ms;
        int read_n;   /* bytes the callback reads (0: none) */
        bool free_self;
};

static void count_cb(void *data, vfiipc_stream *s)
{
        struct cbstate *c = data;
        char buf[64];

        atomic_store(&c->in_cb, true);
        if (c->sleep_ms)
                g_usleep(c->sleep_ms * 1000);
        if (c->read_n)
                vfiipc_stream_read(s, buf, c->read_n, 0, 0);
        atomic_fetch_add(&c->calls, 1);
        atomic_store(&c->in_cb, false);
        if (c->free_self)
                vfiipc_stream_free(s); /* G-06: from inside its own callback */
}

static bool wait_calls(struct cbstate *c, int n, int ms)
{
        gint64 end = g_get_monotonic_time() + ms * 1000;

        while (atomic_load(&c->calls) < n && g_get_monotonic_time() < end)
                g_usleep(2000);
        return atomic_load(&c->calls) >= n;
}

/* SETCB-1, SETCB-5, SETCB-7: no second callback before the application read; after a read, yes.
 * peek and poll_in do not re-arm. EOF triggers the callback once. */
static void test_callback_rearm(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        struct cbstate c = {0};
        char buf[8];

        g_assert_true(vfiipc_stream_set_callback(s, count_cb, &c));
        raw_write(raw, "ab", 2);
        g_assert_true(wait_calls(&c, 1, 2000));
        raw_write(raw, "cd", 2);
        g_usleep(150 * 1000);
        g_assert_cmpint(atomic_load(&c.calls), ==, 1);
        g_assert_cmpint(vfiipc_stream_peek(s, buf, 8, 0), >, 0);
        g_assert_true(vfiipc_stream_poll_in(s, 0));
        g_usleep(100 * 1000);
        g_assert_cmpint(atomic_load(&c.calls), ==, 1);
        g_assert_cmpint(vfiipc_stream_read(s, buf, 1, 0, 0), ==, 1); /* re-arms */
        g_assert_true(wait_calls(&c, 2, 2000));
        g_assert_cmpint(vfiipc_stream_read(s, buf, 8, 0, 0), ==, 3);
        g_usleep(100 * 1000);
        g_assert_cmpint(atomic_load(&c.calls), ==, 2); /* nothing pending: no callback */
        close(raw);
        g_assert_true(wait_calls(&c, 3, 2000)); /* EOF reported */
        g_assert_cmpint(vfiipc_stream_read(s, buf, 8, 0, 0), ==, 0);
        g_assert_true(vfiipc_stream_eof(s));
        g_usleep(150 * 1000);
        g_assert_cmpint(atomic_load(&c.calls), ==, 3); /* and only once */
        vfiipc_stream_free(s);
}

/* SETCB-8, G-06: set_callback(NULL) from another thread waits for the running callback;
 * afterwards none starts. A callback may free its own stream. */
static void test_callback_unregister_waits(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        struct cbstate c = {.sleep_ms = 300};

        g_assert_true(vfiipc_stream_set_callback(s, count_cb, &c));
        raw_write(raw, "x", 1);
        while (!atomic_load(&c.in_cb))
                g_usleep(1000);
        g_assert_true(vfiipc_stream_set_callback(s, NULL, NULL));
        g_assert_false(atomic_load(&c.in_cb));
        g_assert_cmpint(atomic_load(&c.calls), ==, 1);
        /* Same for free() while the callback runs. */
        c = (struct cbstate){.sleep_ms = 200, .read_n = 8};
        g_assert_true(vfiipc_stream_set_callback(s, count_cb, &c));
        while (!atomic_load(&c.in_cb))
                g_usleep(1000);
        vfiipc_stream_free(s);
        g_assert_false(atomic_load(&c.in_cb));
        close(raw);

        /* The callback frees its own stream: no deadlock, no use after free. */
        s = raw_pair(&raw);
        c = (struct cbstate){.free_self = true};
        g_assert_true(vfiipc_stream_set_callback(s, count_cb, &c));
        raw_write(raw, "y", 1);
        g_assert_true(wait_calls(&c, 1, 2000));
        g_usleep(50 * 1000);
        close(raw);
}

/* SETCB-4: callbacks of different streams never run concurrently (one thread). */
static atomic_int concurrent, max_concurrent;

static void slow_cb(void *data, vfiipc_stream *s)
{
        int now = atomic_fetch_add(&concurrent, 1) + 1;
        char buf[4];

        if (now > atomic_load(&max_concurrent))
                atomic_store(&max_concurrent, now);
        g_usleep(30 * 1000);
        vfiipc_stream_read(s, buf, 4, 0, 0);
        atomic_fetch_sub(&concurrent, 1);
        atomic_fetch_add((atomic_int *)data, 1);
}

static void test_callback_one_thread(void)
{
        int raw[3];
        vfiipc_stream *s[3];
        atomic_int calls = 0;
        gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;

        for (int i = 0; i < 3; i++) {
                s[i] = raw_pair(&raw[i]);
                g_assert_true(vfiipc_stream_set_callback(s[i], slow_cb, &calls));
        }
        for (int i = 0; i < 3; i++)
                raw_write(raw[i], "abc", 3);
        while (atomic_load(&calls) < 3 && g_get_monotonic_time() < end)
                g_usleep(2000);
        g_assert_cmpint(atomic_load(&calls), ==, 3);
        g_assert_cmpint(atomic_load(&max_concurrent), ==, 1);
        for (int i = 0; i < 3; i++) {
                vfiipc_stream_free(s[i]);
                close(raw[i]);
        }
}

/* SETCB-10: on a listener the callback reports a pending connection; accept re-arms. */
static void test_callback_listener(void)
{
        g_autofree char *dir = g_dir_make_tmp("vfiipc-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "p", NULL);
        vfiipc_stream *l = new_stream(VFIIPC_STREAM_PIPE), *c1 = new_stream(VFIIPC_STREAM_PIPE);
        vfiipc_stream *a = NULL;
        struct cbstate c = {0};

        g_assert_true(vfiipc_pipe_listen(l, path));
        g_assert_true(vfiipc_stream_set_callback(l, count_cb, &c));
        g_assert_true(vfiipc_pipe_connect(c1, path));
        g_assert_true(wait_calls(&c, 1, 2000));
        g_assert_true(vfiipc_stream_poll_in(l, 0)); /* POLL-6 */
        g_assert_cmpint(vfiipc_pipe_accept(l, 0, &a), ==, 0);
        g_assert_false(vfiipc_stream_is_server(a));
        g_assert_cmpint(vfiipc_pipe_accept(l, 0, &a), ==, -ETIMEDOUT); /* G-03 */
        vfiipc_stream_free(a);
        vfiipc_stream_free(l);
        vfiipc_stream_free(c1);
        g_rmdir(dir);
}

/* MSG-R-9 with a frame arriving in two parts: the callback's read_msg(0) keeps the first part,
 * and the second part triggers the callback again (the application did read). */
static void msg_cb(void *data, vfiipc_stream *s)
{
        int id;
        void *m = NULL;
        size_t n;

        if (vfiipc_stream_read_msg(s, PFX, &id, &m, &n, 100, 0)) {
                free(m);
                atomic_fetch_add((atomic_int *)data, 100);
        } else {
                atomic_fetch_add((atomic_int *)data, 1);
        }
}

static void test_callback_partial_frame(void)
{
        int raw;
        vfiipc_stream *s = raw_pair(&raw);
        atomic_int got = 0;
        uint8_t buf[64];
        size_t n = make_frame(buf, PFX, 4 + 4, 1, "data");
        gint64 end;

        g_assert_true(vfiipc_stream_set_callback(s, msg_cb, &got));
        raw_write(raw, buf, 6);
        end = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
        while (atomic_load(&got) < 1 && g_get_monotonic_time() < end)
                g_usleep(2000);
        g_assert_cmpint(atomic_load(&got), ==, 1);
        raw_write(raw, buf + 6, n - 6);
        while (atomic_load(&got) < 101 && g_get_monotonic_time() < end)
                g_usleep(2000);
        g_assert_cmpint(atomic_load(&got), ==, 101);
        vfiipc_stream_free(s);
        close(raw);
}

/* ---- Pipe ---- */

/* §3.9, PIPE-L-2, G-09: credentials; stale path replaced; live server kept; path removed. */
static void test_pipe_endpoints(void)
{
        g_autofree char *dir = g_dir_make_tmp("vfiipc-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "p", NULL);
        g_autofree char *creds = g_strdup_printf("%d %u %u", (int)getpid(), (unsigned)getuid(),
                                                 (unsigned)getgid());
        vfiipc_stream *l = new_stream(VFIIPC_STREAM_PIPE), *l2 = new_stream(VFIIPC_STREAM_PIPE);
        vfiipc_stream *c = new_stream(VFIIPC_STREAM_PIPE), *a = NULL;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        char longpath[200];
        int fd;

        /* A stale socket file, as left by a crashed server. */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
        g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
        close(fd);
        g_assert_true(vfiipc_pipe_listen(l, path));
        g_assert_true(vfiipc_stream_is_server(l));
        g_assert_cmpint(vfiipc_stream_fd(l), >=, 0);
        g_assert_cmpstr(vfiipc_stream_local_addr(l), ==, "");
        g_assert_cmpstr(vfiipc_stream_remote_addr(l), ==, "");
        g_assert_true(vfiipc_pipe_connect(c, path));
        g_assert_cmpint(vfiipc_stream_accept(l, 1000, &a), ==, 0);
        g_assert_cmpint(vfiipc_stream_get_kind(a), ==, VFIIPC_STREAM_PIPE);
        g_assert_cmpstr(vfiipc_stream_remote_addr(a), ==, creds);
        g_assert_cmpstr(vfiipc_stream_remote_addr(c), ==, creds);
        g_assert_cmpstr(vfiipc_stream_local_addr(a), ==, "");
        g_assert_cmpstr(vfiipc_stream_local_addr(c), ==, "");
        g_assert_true(vfiipc_stream_write(c, "ping", 4));
        {
                char buf[4];
                g_assert_cmpint(vfiipc_stream_read(a, buf, 4, 1000, 1000), ==, 4);
        }
        vfiipc_stream_free(a);
        /* A live server answers the probe (which the server sees as a connection closed at once). */
        g_assert_false(vfiipc_pipe_listen(l2, path));
        g_assert_false(vfiipc_stream_is_server(l2));
        vfiipc_stream_close(l);
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
        /* After re-use by someone else, close() does not remove the other's path. */
        g_assert_true(vfiipc_pipe_listen(l, path));
        g_assert_cmpint(g_unlink(path), ==, 0);
        g_assert_true(vfiipc_pipe_listen(l2, path));
        vfiipc_stream_close(l);
        g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
        vfiipc_stream_free(l2);
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
        /* A regular file is never removed; paths beyond sun_path fail. */
        g_assert_true(g_file_set_contents(path, "x", 1, NULL));
        g_assert_false(vfiipc_pipe_listen(l, path));
        g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
        g_unlink(path);
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        g_assert_false(vfiipc_pipe_listen(l, longpath));
        g_assert_false(vfiipc_pipe_connect(c, longpath));
        g_assert_false(vfiipc_pipe_connect(c, path)); /* PIPE-C-1 */
        vfiipc_stream_free(l);
        vfiipc_stream_free(c);
        g_rmdir(dir);
}

/* ---- TCP ---- */

static unsigned short port_of(const char *addr)
{
        const char *c = strrchr(addr, ':');

        g_assert_nonnull(c);
        return (unsigned short)atoi(c + 1);
}

/* TCP-L-1…4, TCP-C-1…6, §3.9, G-16, G-24, G-25. */
static void test_tcp_endpoints(void)
{
        vfiipc_stream *l = new_stream(VFIIPC_STREAM_TCP), *c = new_stream(VFIIPC_STREAM_TCP);
        vfiipc_stream *a = NULL;
        g_autofree char *target = NULL;
        unsigned short port;

        g_assert_true(vfiipc_tcp_listen(l, 0, "127.0.0.1"));
        g_assert_true(g_str_has_prefix(vfiipc_stream_local_addr(l), "127.0.0.1:"));
        g_assert_cmpstr(vfiipc_stream_remote_addr(l), ==, "");
        port = port_of(vfiipc_stream_local_addr(l));
        g_assert_cmpuint(port, !=, 0);
        g_assert_true(vfiipc_tcp_connect(c, "127.0.0.1", port, 1000));
        g_assert_cmpint(vfiipc_tcp_accept(l, 1000, &a), ==, 0);
        g_assert_cmpstr(vfiipc_stream_remote_addr(a), ==, vfiipc_stream_local_addr(c));
        g_assert_cmpstr(vfiipc_stream_local_addr(a), ==, vfiipc_stream_remote_addr(c));
        g_assert_true(vfiipc_tcp_set_keepalive(a, 3, 5));
        g_assert_true(vfiipc_tcp_set_keepalive(a, 0, 0));
        g_assert_false(vfiipc_tcp_set_keepalive(a, -1, 5));
        g_assert_false(vfiipc_tcp_set_keepalive(a, 1, 0));
        vfiipc_stream_free(a);
        a = NULL;
        /* host:port forms; port given twice, or nowhere, fails (G-24). */
        target = g_strdup_printf("127.0.0.1:%u", port);
        g_assert_true(vfiipc_tcp_connect(c, target, 0, 1000));
        g_assert_false(vfiipc_tcp_connect(c, target, port, 1000));
        g_assert_false(vfiipc_tcp_connect(c, "127.0.0.1", 0, 1000));
        g_assert_false(vfiipc_tcp_connect(c, "", port, 1000));
        g_assert_false(vfiipc_tcp_connect(c, NULL, port, 1000));
        g_assert_false(vfiipc_tcp_connect(c, "[127.0.0.1", port, 1000));
        /* G-04: timeout 0 on loopback; the listener is still usable (G-08). */
        vfiipc_tcp_connect(c, "127.0.0.1", port, 0);
        g_assert_false(vfiipc_stream_error(l));
        vfiipc_stream_close(c);
        g_assert_false(vfiipc_tcp_listen(l, 0, "localhost")); /* G-25: no host names */
        g_assert_false(vfiipc_tcp_set_keepalive(l, 1, 1));    /* closed */
        g_assert_true(vfiipc_tcp_listen(l, 0, NULL));
        g_assert_true(g_str_has_prefix(vfiipc_stream_local_addr(l), "0.0.0.0:"));
        g_assert_true(vfiipc_tcp_set_keepalive(l, 2, 2)); /* TCP-KA-4 */
        /* IPv6 loopback, when the host has it. */
        if (vfiipc_tcp_listen(l, 0, "::1")) {
                port = port_of(vfiipc_stream_local_addr(l));
                g_assert_true(g_str_has_prefix(vfiipc_stream_local_addr(l), "[::1]:"));
                g_free(target);
                target = g_strdup_printf("[::1]:%u", port);
                g_assert_true(vfiipc_tcp_connect(c, target, 0, 1000));
                g_assert_true(g_str_has_prefix(vfiipc_stream_remote_addr(c), "[::1]:"));
                g_assert_true(vfiipc_tcp_connect(c, "::1", port, 1000)); /* bare literal */
                g_assert_true(vfiipc_tcp_connect(c, "[::1]", port, 1000));
        } else {
                g_test_message("no IPv6 loopback; IPv6 part skipped");
        }
        vfiipc_stream_free(l);
        vfiipc_stream_free(c);
}

/* TCP-FD-1…5, G-26. */
static void test_tcp_setfd(void)
{
        vfiipc_stream *s = new_stream(VFIIPC_STREAM_TCP);
        int sv[2], dg[2];
        char buf[4];

        g_assert_false(vfiipc_tcp_setfd(s, -1));
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg), ==, 0);
        g_assert_false(vfiipc_tcp_setfd(s, dg[0])); /* not a stream socket: not taken */
        g_assert_cmpint(fcntl(dg[0], F_GETFD), >=, 0);
        close(dg[0]);
        close(dg[1]);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        g_assert_true(vfiipc_tcp_setfd(s, sv[0]));
        g_assert_cmpint(vfiipc_stream_fd(s), ==, sv[0]);
        g_assert_cmpstr(vfiipc_stream_remote_addr(s), ==, "");
        g_assert_cmpstr(vfiipc_stream_local_addr(s), ==, "");
        raw_write(sv[1], "ok", 2);
        g_assert_cmpint(vfiipc_stream_read(s, buf, 2, 1000, 1000), ==, 2);
        vfiipc_stream_free(s); /* closes sv[0] */
        g_assert_cmpint(fcntl(sv[0], F_GETFD), ==, -1);
        close(sv[1]);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/stream/frame/layout", test_frame_layout);
        g_test_add_func("/stream/frame/ids-and-empty-payload", test_frame_ids_and_empty);
        g_test_add_func("/stream/frame/resync-skips-garbage", test_frame_resync_garbage);
        g_test_add_func("/stream/frame/size-out-of-bounds-is-skipped",
                        test_frame_oversized_and_undersized);
        g_test_add_func("/stream/frame/eof-mid-frame-no-partial-message", test_frame_eof_mid_frame);
        g_test_add_func("/stream/frame/timeout-keeps-partial-frame", test_frame_partial_timeout_kept);
        g_test_add_func("/stream/read/timeouts", test_read_timeouts);
        g_test_add_func("/stream/peek-and-poll-in", test_peek_and_poll);
        g_test_add_func("/stream/closed-object", test_closed_object);
        g_test_add_func("/stream/write/no-sigpipe", test_write_no_sigpipe);
        g_test_add_func("/stream/close-wakes-blocked-calls", test_close_wakes_blocked);
        g_test_add_func("/stream/concurrent-writers-do-not-interleave", test_concurrent_writers);
        g_test_add_func("/stream/callback/rearm-only-after-read", test_callback_rearm);
        g_test_add_func("/stream/callback/unregister-waits", test_callback_unregister_waits);
        g_test_add_func("/stream/callback/one-thread", test_callback_one_thread);
        g_test_add_func("/stream/callback/listener", test_callback_listener);
        g_test_add_func("/stream/callback/partial-frame", test_callback_partial_frame);
        g_test_add_func("/stream/pipe/endpoints", test_pipe_endpoints);
        g_test_add_func("/stream/tcp/endpoints", test_tcp_endpoints);
        g_test_add_func("/stream/tcp/setfd", test_tcp_setfd);
        return g_test_run();
}
