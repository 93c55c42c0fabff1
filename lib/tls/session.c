/* lib/tls/session.c — one TLS session on a connected stream: the handshake with deadline and
 * verification relaxations (G-34, G-35), and the stream I/O hook (lib/stream/io.h) that
 * makes read/read_msg/peek/poll_in/write/callbacks work on decrypted data (TLS-IO-1, -2).
 *
 * The socket is non-blocking from the handshake on; every OpenSSL call on the session runs
 * under the session lock and never waits, so one reader and one writer can share it: waiting
 * happens in poll() outside the lock. Socket I/O uses our own BIO with MSG_NOSIGNAL, so a
 * peer that went away never raises SIGPIPE (G-10). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "stream/io.h"
#include "tls/internal.h"

struct tls_conn {
        pthread_mutex_t lock;
        SSL *ssl;
        vfiipc_tls *owner; /* outlives the session: it owns the stream */
        unsigned check;
        bool broken; /* a fatal error: no close-notify */
};

int64_t tls_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll() one descriptor until the deadline (-1: none): >0 ready, 0 timeout, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left;
        int r;

        for (;;) {
                left = deadline < 0 ? -1 : deadline - tls_now_ms();
                if (deadline >= 0 && left < 0)
                        left = 0;
                r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
        }
}

/* ---- the BIO: recv()/send(MSG_NOSIGNAL) on the descriptor ---- */

static int bio_fd(BIO *b)
{
        return (int)(intptr_t)BIO_get_data(b);
}

static int bio_write(BIO *b, const char *buf, int len)
{
        ssize_t n;

        BIO_clear_retry_flags(b);
        do
                n = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                BIO_set_retry_write(b);
        return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
        ssize_t n;

        BIO_clear_retry_flags(b);
        do
                n = recv(bio_fd(b), buf, (size_t)len, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                BIO_set_retry_read(b);
        return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
        (void)b;
        (void)num;
        (void)ptr;
        return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
        BIO_set_init(b, 1);
        return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vfiipc socket");

        if (!m)
                return;
        if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
                BIO_meth_free(m);
                return;
        }
        bio_method = m;
}

/* ---- verification (G-34) ---- */

int tls_verify_cb(int ok, X509_STORE_CTX *x)
{
        SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        struct tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
        int err = X509_STORE_CTX_get_error(x);
        unsigned f = c ? c->check : 0;
        bool ignore = false;

        if (ok)
                return 1;
        switch (err) {
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
                ignore = f & VFIIPC_TLS_IGNORE_SELF_SIGNED;
                break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
                ignore = f & VFIIPC_TLS_IGNORE_EXPIRED;
                break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
                ignore = f & VFIIPC_TLS_IGNORE_NOT_YET_VALID;
                break;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
                ignore = f & VFIIPC_TLS_IGNORE_HOSTNAME;
                break;
        default:
                break;
        }
        if (f & VFIIPC_TLS_IGNORE_ALL)
                ignore = true;
        ipctls_log(ignore ? LOG_INFO : LOG_ERR, "peer certificate at depth %d: %s%s",
                   X509_STORE_CTX_get_error_depth(x), X509_verify_cert_error_string(err),
                   ignore ? " (ignored by setCheckConfig)" : "");
        return ignore ? 1 : 0;
}

static bool is_ip_literal(const char *host)
{
        unsigned char buf[sizeof(struct in6_addr)];

        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---- the stream I/O hook ---- */

static void conn_free(struct tls_conn *c)
{
        if (!c)
                return;
        SSL_free(c->ssl);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

/* An OpenSSL failure on an established session: recorded as the owner's error (G-30). */
static void conn_failed(struct tls_conn *c, int e, const char *what)
{
        int saved = errno;

        c->broken = true;
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                tls_fail(c->owner, VFIIPC_TLS_ERR_FAIL, false, "TLS %s: %s", what,
                         saved ? strerror(saved) : "connection closed");
        else
                tls_fail(c->owner, tls_classify(X509_V_OK), true, "TLS %s", what);
        errno = saved;
}

static ssize_t conn_recv(void *ctx, int fd, void *buf, size_t len, int flags)
{
        struct tls_conn *c = ctx;
        int want = len > INT_MAX ? INT_MAX : (int)len, n, e, err;

        for (;;) {
                pthread_mutex_lock(&c->lock);
                ERR_clear_error();
                errno = 0;
                n = (flags & MSG_PEEK) ? SSL_peek(c->ssl, buf, want) : SSL_read(c->ssl, buf, want);
                e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
                err = errno;
                if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
                        conn_failed(c, e, "read");
                pthread_mutex_unlock(&c->lock);
                switch (e) {
                case SSL_ERROR_NONE:
                        return n;
                case SSL_ERROR_ZERO_RETURN: /* close-notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
                        return 0;
                case SSL_ERROR_WANT_READ:
                        errno = EAGAIN;
                        return -1;
                case SSL_ERROR_WANT_WRITE: /* a protocol record to send first */
                        if (wait_fd(fd, POLLOUT, -1) < 0)
                                return -1;
                        continue;
                case SSL_ERROR_SYSCALL:
                        errno = err ? err : ECONNRESET;
                        return -1;
                default:
                        errno = EPROTO;
                        return -1;
                }
        }
}

static int conn_write_all(struct tls_conn *c, int fd, const uint8_t *p, size_t len)
{
        int n, e, err;

        while (len > 0) {
                pthread_mutex_lock(&c->lock);
                ERR_clear_error();
                errno = 0;
                n = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
                e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
                err = errno;
                if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
                        conn_failed(c, e, "write");
                pthread_mutex_unlock(&c->lock);
                switch (e) {
                case SSL_ERROR_NONE:
                        p += n;
                        len -= (size_t)n;
                        break;
                case SSL_ERROR_WANT_WRITE:
                        if (wait_fd(fd, POLLOUT, -1) < 0)
                                return -errno;
                        break;
                case SSL_ERROR_WANT_READ: /* the reader will move it on; do not spin */
                        wait_fd(fd, POLLIN, tls_now_ms() + 50);
                        break;
                case SSL_ERROR_SYSCALL:
                        return err ? -err : -EPIPE;
                default:
                        return -EPROTO;
                }
        }
        return 0;
}

static int conn_send(void *ctx, int fd, const struct iovec *iov, int iovcnt)
{
        struct tls_conn *c = ctx;
        uint8_t buf[16384]; /* one TLS record for a small frame: header and payload together */
        size_t total = 0;
        int i, r;

        for (i = 0; i < iovcnt; i++)
                total += iov[i].iov_len;
        if (iovcnt > 1 && total <= sizeof(buf)) {
                total = 0;
                for (i = 0; i < iovcnt; i++) {
                        memcpy(buf + total, iov[i].iov_base, iov[i].iov_len);
                        total += iov[i].iov_len;
                }
                return conn_write_all(c, fd, buf, total);
        }
        for (i = 0; i < iovcnt; i++) {
                r = conn_write_all(c, fd, iov[i].iov_base, iov[i].iov_len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static size_t conn_pending(void *ctx)
{
        struct tls_conn *c = ctx;
        int n;

        pthread_mutex_lock(&c->lock);
        n = SSL_pending(c->ssl);
        pthread_mutex_unlock(&c->lock);
        return n > 0 ? (size_t)n : 0;
}

static void conn_close(void *ctx, int fd)
{
        struct tls_conn *c = ctx;

        (void)fd;
        /* G-35: close-notify when healthy, without waiting for the peer's. */
        if (!c->broken) {
                ERR_clear_error();
                SSL_shutdown(c->ssl);
        }
        ERR_clear_error();
        conn_free(c);
}

static const struct vfiipc_stream_io tls_io = {
        .recv = conn_recv,
        .send = conn_send,
        .pending = conn_pending,
        .close = conn_close,
};

/* ---- the handshake ---- */

/* After a failed server handshake: the alert is sent; read what the client sent meanwhile
 * (briefly), so closing does not answer with a reset that could destroy the alert before a
 * TLS 1.3 client reads it (TLS-AUTH-3). */
static void linger_drain(int fd)
{
        int64_t deadline = tls_now_ms() + 200;
        char buf[4096];
        ssize_t n;

        shutdown(fd, SHUT_WR);
        for (;;) {
                n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n > 0)
                        continue;
                if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                        return;
                if (wait_fd(fd, POLLIN, deadline) <= 0)
                        return;
        }
}

int tls_session_start(vfiipc_tls *t, vfiipc_tls *owner, vfiipc_stream *s, SSL_CTX *ctx, bool server,
                      const char *host, unsigned check, int64_t deadline)
{
        const char *peer = vfiipc_stream_remote_addr(s);
        int fd = vfiipc_stream_fd(s), fl, r, e;
        struct tls_conn *c;
        BIO *bio;

        pthread_once(&bio_once, bio_method_init);
        if (!bio_method)
                return tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot create the socket BIO");
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return tls_fail(t, VFIIPC_TLS_ERR_SOCKET, false, "socket: %s", strerror(errno));
        c = calloc(1, sizeof(*c));
        if (!c)
                return tls_fail(t, VFIIPC_TLS_ERR_FAIL, false, "out of memory");
        pthread_mutex_init(&c->lock, NULL);
        c->owner = owner;
        c->check = check;
        ERR_clear_error();
        c->ssl = SSL_new(ctx);
        bio = c->ssl ? BIO_new(bio_method) : NULL;
        if (!bio) {
                conn_free(c);
                return tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot create a TLS session");
        }
        BIO_set_data(bio, (void *)(intptr_t)fd);
        SSL_set_bio(c->ssl, bio, bio);
        SSL_set_app_data(c->ssl, c);
        if (!server && !isempty(host)) {
                bool ip = is_ip_literal(host);

                if (!(check & (VFIIPC_TLS_IGNORE_HOSTNAME | VFIIPC_TLS_IGNORE_ALL))) {
                        /* TLS-CHK-3: names against DNS names, IP literals against IP SANs. */
                        r = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host)
                               : SSL_set1_host(c->ssl, host);
                        if (r != 1) {
                                conn_free(c);
                                return tls_fail(t, VFIIPC_TLS_ERR_HOST, true,
                                                "cannot verify against host '%s'", host);
                        }
                }
                if (!ip) /* G-38: SNI for name-based connects */
                        SSL_set_tlsext_host_name(c->ssl, host);
        }
        for (;;) {
                ERR_clear_error();
                errno = 0;
                r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
                if (r == 1)
                        break;
                e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                        r = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
                        if (r > 0)
                                continue;
                        conn_free(c);
                        if (r == 0)
                                return tls_fail(t, VFIIPC_TLS_ERR_TIMEOUT, false,
                                                "TLS handshake with %s timed out", peer);
                        return tls_fail(t, VFIIPC_TLS_ERR_FAIL, false,
                                        "TLS handshake with %s: %s", peer, strerror(-r));
                }
                {
                        long v = SSL_get_verify_result(c->ssl);
                        int err = errno;

                        if (v != X509_V_OK)
                                tls_fail(t, VFIIPC_TLS_ERR_AUTHENTICATION, true,
                                         "TLS handshake with %s: certificate verification failed: %s",
                                         peer, X509_verify_cert_error_string(v));
                        else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                                tls_fail(t, VFIIPC_TLS_ERR_FAIL, false,
                                         "TLS handshake with %s: %s", peer,
                                         err ? strerror(err) : "connection closed by the peer");
                        else
                                tls_fail(t, tls_classify(v), true, "TLS handshake with %s failed",
                                         peer);
                }
                conn_free(c);
                if (server)
                        linger_drain(fd);
                return -EPROTO;
        }
        ipctls_log(LOG_INFO, "TLS %s with %s: %s, %s", server ? "accepted" : "connected", peer,
                   SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
        r = vfiipc_stream_set_io(s, &tls_io, c);
        if (r < 0) {
                c->broken = true;
                conn_free(c);
                return tls_fail(t, VFIIPC_TLS_ERR_FAIL, false, "stream closed during the handshake");
        }
        return 0;
}
