/* lib/stream/stream.c — the stream object: flags, close, reading with timeouts and the input
 * buffer, writing, and the legacy framing (legacy-api.md §3.6, §3.7; G-01…G-22). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "stream/internal.h"

#define FRAME_HEADER 12u          /* prefix, size, message ID */
#define IBUF_CHUNK 4096u          /* smallest read into the input buffer */
#define IBUF_KEEP (256u * 1024u) /* larger buffers are released once empty */

static uint32_t be32_get(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_put(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

int stream_wait(int fd, short events, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = events};
        int r;

        for (;;) {
                r = poll(&p, 1, stream_remaining(deadline));
                if (r > 0)
                        return p.revents ? p.revents : events;
                if (r == 0)
                        return 0;
                if (errno != EINTR)
                        return -errno;
        }
}

int vfiipc_stream_new(vfiipc_stream_kind kind, vfiipc_stream **ret)
{
        vfiipc_stream *s;

        if (!ret || (kind != VFIIPC_STREAM_TCP && kind != VFIIPC_STREAM_PIPE))
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->kind = kind;
        atomic_init(&s->fd, -1);
        atomic_init(&s->state, STREAM_CLOSED);
        pthread_mutex_init(&s->close_lock, NULL);
        pthread_mutex_init(&s->rlock, NULL);
        pthread_mutex_init(&s->wlock, NULL);
        *ret = s;
        return 0;
}

vfiipc_stream *vfiipc_stream_free(vfiipc_stream *s)
{
        if (!s)
                return NULL;
        vfiipc_stream_close(s);
        pthread_mutex_destroy(&s->close_lock);
        pthread_mutex_destroy(&s->rlock);
        pthread_mutex_destroy(&s->wlock);
        free(s->ibuf);
        free(s);
        return NULL;
}

vfiipc_stream_kind vfiipc_stream_get_kind(const vfiipc_stream *s)
{
        return s ? s->kind : (vfiipc_stream_kind)0;
}

/* Called with close_lock held on a Closed stream. */
void stream_attach(vfiipc_stream *s, int fd, enum stream_state state)
{
        atomic_store(&s->eof, false);
        atomic_store(&s->error, false);
        s->remote[0] = s->local[0] = '\0';
        atomic_store(&s->fd, fd);
        atomic_store(&s->state, state);
}

void stream_set_error(vfiipc_stream *s)
{
        atomic_store(&s->error, true);
}

void vfiipc_stream_close(vfiipc_stream *s)
{
        bool shut = false;
        int fd;

        if (!s)
                return;
        /* First the callback (G-06: waits for a running invocation unless on its thread), so
         * the callback thread holds no reference to the descriptor we are about to close. */
        dispatch_unregister(s);

        pthread_mutex_lock(&s->close_lock);
        atomic_store(&s->closing, true);
        fd = atomic_load(&s->fd);
        /* CLOSE-3: a call blocked on the descriptor holds rlock or wlock; shutdown() wakes it.
         * Only then, so a descriptor shared with other processes is not shut down needlessly. */
        if (pthread_mutex_trylock(&s->rlock) != 0) {
                if (fd >= 0)
                        shutdown(fd, SHUT_RDWR);
                shut = true;
                pthread_mutex_lock(&s->rlock);
        }
        if (pthread_mutex_trylock(&s->wlock) != 0) {
                if (fd >= 0 && !shut)
                        shutdown(fd, SHUT_RDWR);
                pthread_mutex_lock(&s->wlock);
        }
        if (s->io) {
                s->io->close(s->io_ctx, fd);
                s->io = NULL;
                s->io_ctx = NULL;
                atomic_store(&s->io_layered, false);
        }
        atomic_store(&s->io_buffered, 0);
        if (fd >= 0) {
                close(fd);
                ipc_log(LOG_DEBUG, "stream %p: closed fd %d", (void *)s, fd);
        }
        stream_pipe_unlink(s);
        atomic_store(&s->fd, -1);
        atomic_store(&s->state, STREAM_CLOSED);
        s->ipos = s->ilen = 0;
        if (s->icap > IBUF_KEEP) {
                free(s->ibuf);
                s->ibuf = NULL;
                s->icap = 0;
        }
        atomic_store(&s->buffered, 0);
        atomic_store(&s->buf_stale, false);
        s->remote[0] = s->local[0] = '\0';
        atomic_store(&s->eof, false);
        atomic_store(&s->error, false);
        atomic_store(&s->closing, false);
        pthread_mutex_unlock(&s->wlock);
        pthread_mutex_unlock(&s->rlock);
        pthread_mutex_unlock(&s->close_lock);
}

bool vfiipc_stream_eof(const vfiipc_stream *s)
{
        return s && atomic_load(&s->eof);
}

bool vfiipc_stream_error(const vfiipc_stream *s)
{
        return s && atomic_load(&s->error);
}

bool vfiipc_stream_is_server(const vfiipc_stream *s)
{
        return s && atomic_load(&s->state) == STREAM_LISTENING;
}

int vfiipc_stream_fd(const vfiipc_stream *s)
{
        /* G-36: a layered (TLS) connection does not hand out its descriptor. */
        return s && !atomic_load(&s->io_layered) ? atomic_load(&s->fd) : -1;
}

const char *vfiipc_stream_remote_addr(const vfiipc_stream *s)
{
        return s ? s->remote : "";
}

const char *vfiipc_stream_local_addr(const vfiipc_stream *s)
{
        return s ? s->local : "";
}

/* With rlock held: is the stream usable for reading? */
static bool reader_ready(vfiipc_stream *s, enum stream_state want)
{
        return atomic_load(&s->state) == (int)want && !atomic_load(&s->closing);
}

/* recv(), or the layered transport's. With rlock held. */
static ssize_t io_recv(vfiipc_stream *s, int fd, void *buf, size_t len, int flags)
{
        ssize_t n;
        int saved;

        if (!s->io)
                return recv(fd, buf, len, flags);
        n = s->io->recv(s->io_ctx, fd, buf, len, flags);
        saved = errno;
        atomic_store(&s->io_buffered, s->io->pending(s->io_ctx));
        errno = saved;
        return n;
}

/* One recv() with an idle timeout: >0 bytes, 0 EOF, -ETIMEDOUT, or -errno. A negative timeout
 * uses a blocking recv() (one system call; close() wakes it with shutdown()). */
static ssize_t recv_some(vfiipc_stream *s, int fd, void *buf, size_t len, int timeout_msec,
                         int flags)
{
        int64_t deadline = -1;
        bool waited = false;
        ssize_t n;
        int r;

        for (;;) {
                n = io_recv(s, fd, buf, len, flags | (timeout_msec < 0 ? 0 : MSG_DONTWAIT));
                if (n > 0)
                        return n;
                if (n == 0)
                        return atomic_load(&s->closing) ? -ECANCELED : 0;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return -errno;
                if (timeout_msec == 0)
                        return -ETIMEDOUT;
                if (!waited) {
                        deadline = stream_deadline(timeout_msec);
                        waited = true;
                }
                r = stream_wait(fd, POLLIN, deadline);
                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0)
                        return r;
                if (atomic_load(&s->closing))
                        return -ECANCELED;
        }
}

static void ibuf_publish(vfiipc_stream *s)
{
        if (s->ilen == 0)
                s->ipos = 0;
        atomic_store(&s->buffered, s->ilen);
}

static void ibuf_consume(vfiipc_stream *s, size_t n)
{
        s->ipos += n;
        s->ilen -= n;
        if (s->ilen == 0 && s->icap > IBUF_KEEP) {
                free(s->ibuf);
                s->ibuf = NULL;
                s->icap = 0;
        }
        ibuf_publish(s);
}

/* Makes room for `need` bytes from ipos and at least one free byte after the data. */
static int ibuf_reserve(vfiipc_stream *s, size_t need)
{
        uint8_t *p;
        size_t cap;

        if (need < s->ilen + 1)
                need = s->ilen + 1;
        if (s->ipos + need <= s->icap)
                return 0;
        if (need <= s->icap) {
                memmove(s->ibuf, s->ibuf + s->ipos, s->ilen);
                s->ipos = 0;
                return 0;
        }
        cap = need < IBUF_CHUNK ? IBUF_CHUNK : need;
        if (s->ipos > 0 && s->ilen > 0)
                memmove(s->ibuf, s->ibuf + s->ipos, s->ilen);
        s->ipos = 0;
        p = realloc(s->ibuf, cap);
        if (!p)
                return -ENOMEM;
        s->ibuf = p;
        s->icap = cap;
        return 0;
}

int vfiipc_stream_read(vfiipc_stream *s, void *data, int maxsize, int timeout_msec,
                       int timeout_msec2)
{
        uint8_t *out = data;
        size_t n = 0, want;
        ssize_t r;
        int fd;

        if (!s)
                return -1;
        if (maxsize <= 0) /* READ-8 */
                return 0;
        if (!data)
                return -1;
        pthread_mutex_lock(&s->rlock);
        if (!reader_ready(s, STREAM_CONNECTED)) {
                stream_set_error(s); /* G-07 */
                pthread_mutex_unlock(&s->rlock);
                return -1;
        }
        want = (size_t)maxsize;
        if (s->ilen > 0) { /* READ-9 */
                n = s->ilen < want ? s->ilen : want;
                memcpy(out, s->ibuf + s->ipos, n);
                ibuf_consume(s, n);
                atomic_store(&s->buf_stale, false);
        }
        fd = atomic_load(&s->fd);
        while (n < want) {
                r = recv_some(s, fd, out + n, want - n, n == 0 ? timeout_msec : timeout_msec2, 0);
                if (r > 0) {
                        n += (size_t)r;
                        continue;
                }
                if (r == 0) {
                        atomic_store(&s->eof, true);
                        ipc_log(LOG_INFO, "stream %p: eof", (void *)s);
                } else if (r != -ETIMEDOUT) {
                        stream_set_error(s);
                        ipc_log(LOG_ERR, "stream %p: read: %s", (void *)s, strerror((int)-r));
                        if (n == 0) {
                                pthread_mutex_unlock(&s->rlock);
                                return -1; /* G-12 */
                        }
                }
                break;
        }
        pthread_mutex_unlock(&s->rlock);
        if (n > 0)
                dispatch_rearm(s);
        return (int)n;
}

int vfiipc_stream_peek(vfiipc_stream *s, void *data, int maxsize, int timeout_msec)
{
        ssize_t r;
        int n;

        if (!s || !data || maxsize <= 0) /* PEEK-6 */
                return -1;
        pthread_mutex_lock(&s->rlock);
        if (!reader_ready(s, STREAM_CONNECTED)) {
                pthread_mutex_unlock(&s->rlock);
                return -1; /* G-07: no flag */
        }
        if (s->ilen > 0) {
                n = s->ilen < (size_t)maxsize ? (int)s->ilen : maxsize;
                memcpy(data, s->ibuf + s->ipos, (size_t)n);
                pthread_mutex_unlock(&s->rlock);
                return n;
        }
        r = recv_some(s, atomic_load(&s->fd), data, (size_t)maxsize, timeout_msec, MSG_PEEK);
        pthread_mutex_unlock(&s->rlock);
        /* PEEK-3/PEEK-4: flags untouched; the following read finds the condition itself. */
        if (r >= 0)
                return (int)r;
        return r == -ETIMEDOUT ? -2 : -1;
}

bool vfiipc_stream_poll_in(vfiipc_stream *s, int timeout_msec)
{
        int64_t deadline;
        uint8_t byte;
        ssize_t n;
        int fd, r;

        if (!s)
                return true;
        pthread_mutex_lock(&s->rlock);
        fd = atomic_load(&s->fd);
        if (atomic_load(&s->closing) || atomic_load(&s->state) == STREAM_CLOSED) {
                stream_set_error(s); /* POLL-6, G-07 */
                pthread_mutex_unlock(&s->rlock);
                return true;
        }
        if (atomic_load(&s->state) == STREAM_LISTENING) {
                r = stream_wait(fd, POLLIN, stream_deadline(timeout_msec));
                if (r < 0 || (r & (POLLERR | POLLNVAL)))
                        stream_set_error(s);
                pthread_mutex_unlock(&s->rlock);
                return r != 0;
        }
        if (s->ilen > 0 || atomic_load(&s->io_buffered) > 0 || atomic_load(&s->eof) ||
            atomic_load(&s->error)) { /* POLL-5, TLS-IO-2 */
                pthread_mutex_unlock(&s->rlock);
                return true;
        }
        deadline = stream_deadline(timeout_msec);
        for (;;) {
                r = stream_wait(fd, POLLIN, deadline);
                if (r == 0) {
                        pthread_mutex_unlock(&s->rlock);
                        return false;
                }
                if (r < 0) {
                        stream_set_error(s);
                        pthread_mutex_unlock(&s->rlock);
                        return true;
                }
                do
                        n = io_recv(s, fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
                while (n < 0 && errno == EINTR);
                /* A layered transport may have read only protocol records: wait on. */
                if (!s->io || n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ||
                    atomic_load(&s->closing))
                        break;
        }
        if (n == 0) /* POLL-2 */
                atomic_store(atomic_load(&s->closing) ? &s->error : &s->eof, true);
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                stream_set_error(s);
        pthread_mutex_unlock(&s->rlock);
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Writes all iovecs (MSG_NOSIGNAL, G-10); 0 or -errno. wlock held. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n;
        int r;

        while (mh.msg_iovlen > 0) {
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                return -errno;
                        /* A descriptor from setFD() may be non-blocking: wait without limit. */
                        r = stream_wait(fd, POLLOUT, -1);
                        if (r < 0)
                                return r;
                        continue;
                }
                while (mh.msg_iovlen > 0 && (size_t)n >= mh.msg_iov->iov_len) {
                        n -= (ssize_t)mh.msg_iov->iov_len;
                        mh.msg_iov++;
                        mh.msg_iovlen--;
                }
                if (mh.msg_iovlen > 0) {
                        mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + n;
                        mh.msg_iov->iov_len -= (size_t)n;
                }
        }
        return 0;
}

static bool write_iov(vfiipc_stream *s, struct iovec *iov, int iovcnt)
{
        int r;

        pthread_mutex_lock(&s->wlock);
        if (atomic_load(&s->state) != STREAM_CONNECTED || atomic_load(&s->closing)) {
                stream_set_error(s); /* G-07 */
                pthread_mutex_unlock(&s->wlock);
                return false;
        }
        r = s->io ? s->io->send(s->io_ctx, atomic_load(&s->fd), iov, iovcnt)
                  : send_all(atomic_load(&s->fd), iov, iovcnt);
        pthread_mutex_unlock(&s->wlock);
        if (r < 0) {
                stream_set_error(s); /* WRITE-2; never eof (EOF-2) */
                ipc_log(LOG_ERR, "stream %p: write: %s", (void *)s, strerror(-r));
                return false;
        }
        return true;
}

bool vfiipc_stream_write(vfiipc_stream *s, const void *data, int size)
{
        struct iovec iov = {.iov_base = (void *)data, .iov_len = size > 0 ? (size_t)size : 0};

        if (!s)
                return false;
        if (atomic_load(&s->state) != STREAM_CONNECTED) {
                stream_set_error(s);
                return false;
        }
        if (size == 0)
                return true;
        if (size < 0 || !data) /* WRITE-3: no flag */
                return false;
        return write_iov(s, &iov, 1);
}

bool vfiipc_stream_write_msg(vfiipc_stream *s, unsigned prefix, int msg_id, const void *msg,
                             int size)
{
        uint8_t hdr[FRAME_HEADER];
        struct iovec iov[2];

        if (!s)
                return false;
        if (atomic_load(&s->state) != STREAM_CONNECTED) {
                stream_set_error(s);
                return false;
        }
        if (size < 0 || (size > 0 && !msg) || (unsigned)size > 0x7fffffffu - 4u)
                return false; /* MSG-W-3 */
        be32_put(hdr, prefix);
        be32_put(hdr + 4, (uint32_t)size + 4u); /* FRAME-2 */
        be32_put(hdr + 8, (uint32_t)msg_id);    /* G-29: two's complement, unchanged */
        iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
        iov[1] = (struct iovec){.iov_base = (void *)msg, .iov_len = (size_t)size};
        return write_iov(s, iov, size > 0 ? 2 : 1);
}

/* Skips input that cannot start a frame with this prefix (G-20): returns bytes skipped. */
static size_t skip_to_prefix(vfiipc_stream *s, const uint8_t pfx[4], size_t from)
{
        const uint8_t *p = s->ibuf + s->ipos, *q;
        size_t skip;

        q = s->ilen > from ? memchr(p + from, pfx[0], s->ilen - from) : NULL;
        skip = q ? (size_t)(q - p) : s->ilen;
        ibuf_consume(s, skip);
        return skip;
}

bool vfiipc_stream_read_msg_cb(vfiipc_stream *s, unsigned prefix, int size_limit,
                               int timeout_msec, vfiipc_msg_sink sink, void *ctx)
{
        uint32_t limit = size_limit < 0 ? 0 : (uint32_t)size_limit; /* G-21 */
        size_t skipped = 0, need;
        bool pulled = false, ok = false;
        uint8_t pfx[4];
        ssize_t r;
        int fd;

        if (!s || !sink)
                return false;
        pthread_mutex_lock(&s->rlock);
        if (!reader_ready(s, STREAM_CONNECTED)) {
                stream_set_error(s); /* G-07 */
                pthread_mutex_unlock(&s->rlock);
                return false;
        }
        be32_put(pfx, prefix);
        fd = atomic_load(&s->fd);
        for (;;) {
                need = FRAME_HEADER;
                /* Search the buffer for a complete frame (MSG-R-2, MSG-R-3). */
                while (s->ilen >= 4) {
                        const uint8_t *p = s->ibuf + s->ipos;
                        uint32_t size;

                        if (memcmp(p, pfx, 4) != 0) {
                                skipped += skip_to_prefix(s, pfx, 1);
                                continue;
                        }
                        if (s->ilen < 8) {
                                need = 8;
                                break;
                        }
                        size = be32_get(p + 4);
                        if (size < 4 || size - 4 > limit || size >= 0x80000000u) {
                                /* A false prefix match: slide on by one byte (G-21). */
                                skipped += skip_to_prefix(s, pfx, 1);
                                continue;
                        }
                        need = 8 + (size_t)size;
                        if (s->ilen < need)
                                break;
                        r = sink(ctx, (int)be32_get(p + 8), p + FRAME_HEADER, size - 4);
                        if (r < 0) {
                                ipc_log(LOG_ERR, "stream %p: message of %u bytes not stored",
                                        (void *)s, size - 4);
                                goto out;
                        }
                        ibuf_consume(s, need);
                        atomic_store(&s->buf_stale, false);
                        pulled = ok = true;
                        goto out;
                }
                if (ibuf_reserve(s, need < IBUF_CHUNK ? IBUF_CHUNK : need) < 0) {
                        stream_set_error(s);
                        ipc_log(LOG_ERR, "stream %p: out of memory for a %zu byte frame",
                                (void *)s, need);
                        goto out;
                }
                r = recv_some(s, fd, s->ibuf + s->ipos + s->ilen, s->icap - s->ipos - s->ilen,
                              timeout_msec, 0);
                if (r > 0) {
                        s->ilen += (size_t)r;
                        ibuf_publish(s);
                        atomic_store(&s->buf_stale, false);
                        pulled = true;
                        continue;
                }
                if (r == 0) {
                        /* A frame cut short by the peer is never delivered. */
                        atomic_store(&s->eof, true);
                        if (s->ilen > 0)
                                ipc_log(LOG_WARNING, "stream %p: eof inside a frame, %zu bytes dropped",
                                        (void *)s, s->ilen);
                } else if (r == -ETIMEDOUT) {
                        /* MSG-R-8: keep the partial frame; wake callbacks only for new input. */
                        if (s->ilen > 0) {
                                atomic_store(&s->buf_stale, true);
                                pulled = true;
                        }
                } else {
                        stream_set_error(s);
                        ipc_log(LOG_ERR, "stream %p: read_msg: %s", (void *)s, strerror((int)-r));
                }
                break;
        }
out:
        pthread_mutex_unlock(&s->rlock);
        if (skipped > 0)
                ipc_log(LOG_WARNING, "stream %p: resynchronised, %zu bytes skipped", (void *)s,
                        skipped);
        if (pulled || skipped > 0)
                dispatch_rearm(s);
        return ok;
}

struct msg_copy {
        int msg_id;
        void *msg;
        size_t size;
};

static int msg_copy_sink(void *ctx, int msg_id, const void *payload, size_t size)
{
        struct msg_copy *c = ctx;

        c->msg = malloc(size ? size : 1);
        if (!c->msg)
                return -ENOMEM;
        if (size)
                memcpy(c->msg, payload, size);
        c->size = size;
        c->msg_id = msg_id;
        return 0;
}

bool vfiipc_stream_read_msg(vfiipc_stream *s, unsigned prefix, int *msg_id, void **msg,
                            size_t *size, int size_limit, int timeout_msec)
{
        struct msg_copy c = {0};

        if (!msg_id || !msg || !size)
                return false;
        if (!vfiipc_stream_read_msg_cb(s, prefix, size_limit, timeout_msec, msg_copy_sink, &c))
                return false;
        *msg_id = c.msg_id;
        *msg = c.msg;
        *size = c.size;
        return true;
}

int vfiipc_stream_set_io(vfiipc_stream *s, const struct vfiipc_stream_io *io, void *ctx)
{
        int r = 0;

        if (!s || !io)
                return -EINVAL;
        pthread_mutex_lock(&s->close_lock);
        pthread_mutex_lock(&s->rlock);
        pthread_mutex_lock(&s->wlock);
        if (atomic_load(&s->state) != STREAM_CONNECTED || s->io) {
                r = -ENOTCONN;
        } else {
                s->io = io;
                s->io_ctx = ctx;
                atomic_store(&s->io_layered, true);
                atomic_store(&s->io_buffered, io->pending(ctx));
        }
        pthread_mutex_unlock(&s->wlock);
        pthread_mutex_unlock(&s->rlock);
        pthread_mutex_unlock(&s->close_lock);
        return r;
}
