/* lib/stream/socket.c — the endpoints: TCP (IPv4/IPv6) and Pipe (AF_UNIX) connect, listen,
 * accept, setFD, keepalive, and the address strings (legacy-api.md §3.9–§3.11, G-04, G-08,
 * G-09, G-16, G-24…G-28). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "stream/internal.h"

void sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
        char host[INET6_ADDRSTRLEN];

        buf[0] = '\0';
        if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { /* G-16: plain IPv4 */
                        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
                        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in6->sin6_port));
                } else {
                        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
                }
        }
}

/* Fills remote/local of a stream whose fd and state are set (close_lock held). */
void stream_fill_addresses(vfiipc_stream *s)
{
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = atomic_load(&s->fd);
        int state = atomic_load(&s->state);

        s->remote[0] = s->local[0] = '\0';
        if (s->kind == VFIIPC_STREAM_PIPE) {
                struct ucred cred;

                len = sizeof(cred);
                if (state == STREAM_CONNECTED &&
                    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                        snprintf(s->remote, sizeof(s->remote), "%ld %lu %lu", (long)cred.pid,
                                 (unsigned long)cred.uid, (unsigned long)cred.gid);
                return; /* a pipe's local_addr is always "" */
        }
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                sockaddr_format((struct sockaddr *)&ss, len, s->local, sizeof(s->local));
        len = sizeof(ss);
        if (state == STREAM_CONNECTED && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
                sockaddr_format((struct sockaddr *)&ss, len, s->remote, sizeof(s->remote));
}

static void attach_connected(vfiipc_stream *s, int fd, bool addresses)
{
        pthread_mutex_lock(&s->close_lock);
        stream_attach(s, fd, STREAM_CONNECTED);
        if (addresses)
                stream_fill_addresses(s);
        pthread_mutex_unlock(&s->close_lock);
}

static int set_blocking(int fd, bool blocking)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0)
                return -errno;
        fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
        return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

/* Splits the connect() host argument (G-24) into a heap copy of the host and the port. */
static int parse_host(const char *hostname, unsigned short port, char **ret_host,
                      unsigned short *ret_port)
{
        const char *h = hostname, *end, *portstr = NULL, *c;
        size_t hlen;
        char *copy;

        if (isempty(hostname))
                return -EINVAL;
        if (h[0] == '[') {
                end = strchr(h, ']');
                if (!end)
                        return -EINVAL;
                h++;
                hlen = (size_t)(end - h);
                if (end[1] == ':')
                        portstr = end + 2;
                else if (end[1] != '\0')
                        return -EINVAL;
        } else {
                c = strchr(h, ':');
                if (c && !strchr(c + 1, ':')) { /* exactly one colon: name:port */
                        hlen = (size_t)(c - h);
                        portstr = c + 1;
                } else { /* no colon, or a bare IPv6 literal */
                        hlen = strlen(h);
                }
        }
        if (hlen == 0)
                return -EINVAL;
        if (portstr) {
                char *e;
                unsigned long v;

                if (port != 0 || !*portstr || *portstr < '0' || *portstr > '9') /* TCP-C-3 */
                        return -EINVAL;
                errno = 0;
                v = strtoul(portstr, &e, 10);
                if (errno || *e || v == 0 || v > 65535)
                        return -EINVAL;
                port = (unsigned short)v;
        } else if (port == 0) {
                return -EINVAL;
        }
        copy = strndup(h, hlen);
        if (!copy)
                return -ENOMEM;
        *ret_host = copy;
        *ret_port = port;
        return 0;
}

/* Non-blocking connect bounded by the deadline (G-04): the connected fd, or -errno. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
        int fd, r, err = 0;
        socklen_t len = sizeof(err);

        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                if (errno != EINPROGRESS && errno != EINTR) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                r = stream_wait(fd, POLLOUT, deadline);
                if (r <= 0) {
                        close(fd);
                        return r == 0 ? -ETIMEDOUT : r;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        close(fd);
                        return -err;
                }
        }
        r = set_blocking(fd, true);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

bool vfiipc_tcp_connect(vfiipc_stream *s, const char *hostname, unsigned short port,
                        int timeout_msec)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL, *ai;
        char portstr[8], *host = NULL;
        int64_t deadline;
        int fd = -ETIMEDOUT, r;

        if (!s || s->kind != VFIIPC_STREAM_TCP)
                return false;
        vfiipc_stream_close(s); /* OBJ-6 */
        r = parse_host(hostname, port, &host, &port);
        if (r < 0) {
                ipc_log(LOG_ERR, "connect: invalid host/port '%s' %u", hostname ? hostname : "(null)",
                        (unsigned)port);
                return false;
        }
        deadline = stream_deadline(timeout_msec);
        snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
        r = getaddrinfo(host, portstr, &hints, &res);
        if (r != 0) {
                ipc_log(LOG_ERR, "connect: cannot resolve '%s': %s", host, gai_strerror(r));
                free(host);
                return false;
        }
        /* TCP-C-6: every address in order, within the one overall timeout. */
        for (ai = res; ai; ai = ai->ai_next) {
                fd = connect_one(ai, deadline);
                if (fd >= 0 || fd == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        if (fd < 0) {
                ipc_log(LOG_ERR, "connect to %s:%s failed: %s", host, portstr, strerror(-fd));
                free(host);
                return false;
        }
        free(host);
        attach_connected(s, fd, true);
        ipc_log(LOG_INFO, "connected %s -> %s", s->local, s->remote);
        return true;
}

bool vfiipc_tcp_listen(vfiipc_stream *s, unsigned short port, const char *listen_address)
{
        struct sockaddr_storage ss = {0};
        socklen_t len;
        char host[INET6_ADDRSTRLEN + 2];
        int fd, one = 1, family = AF_INET;

        if (!s || s->kind != VFIIPC_STREAM_TCP)
                return false;
        vfiipc_stream_close(s);
        if (isempty(listen_address)) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;

                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(INADDR_ANY);
                in->sin_port = htons(port);
                len = sizeof(*in);
        } else {
                const char *a = listen_address;
                size_t n = strlen(a);
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

                if (a[0] == '[' && n >= 2 && a[n - 1] == ']') {
                        a++;
                        n -= 2;
                }
                if (n >= sizeof(host))
                        return false;
                memcpy(host, a, n);
                host[n] = '\0';
                if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                        in->sin_family = AF_INET;
                        in->sin_port = htons(port);
                        len = sizeof(*in);
                } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                        in6->sin6_family = AF_INET6;
                        in6->sin6_port = htons(port);
                        len = sizeof(*in6);
                        family = AF_INET6;
                } else { /* G-25: no host names */
                        ipc_log(LOG_ERR, "listen: '%s' is not an IP address", listen_address);
                        return false;
                }
        }
        fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return false;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TCP-L-4 */
        if (family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
                ipc_log(LOG_ERR, "listen on port %u failed: %s", (unsigned)port, strerror(errno));
                close(fd);
                return false;
        }
        pthread_mutex_lock(&s->close_lock);
        stream_attach(s, fd, STREAM_LISTENING);
        stream_fill_addresses(s);
        pthread_mutex_unlock(&s->close_lock);
        ipc_log(LOG_INFO, "listening on %s", s->local);
        return true;
}

bool vfiipc_tcp_setfd(vfiipc_stream *s, int socket_fd)
{
        int type = 0;
        socklen_t len = sizeof(type);

        if (!s || socket_fd < 0) /* G-26: descriptor not taken */
                return false;
        if (getsockopt(socket_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return false;
        if (socket_fd == atomic_load(&s->fd))
                return false;
        vfiipc_stream_close(s); /* TCP-FD-2 */
        attach_connected(s, socket_fd, false); /* TCP-FD-4, G-26: both addresses "" */
        return true;
}

bool vfiipc_tcp_set_keepalive(vfiipc_stream *s, int cnt, int interval)
{
        bool ok = false;
        int fd, on = cnt > 0;
        unsigned timeout = 0;

        if (!s || cnt < 0 || (cnt > 0 && interval <= 0))
                return false;
        pthread_mutex_lock(&s->close_lock);
        fd = atomic_load(&s->fd);
        if (fd < 0 || s->kind != VFIIPC_STREAM_TCP) /* TCP-KA-4 */
                goto out;
        if (cnt > 0) {
                unsigned long long ms = (unsigned long long)cnt * (unsigned)interval * 1000ull;

                timeout = ms > UINT_MAX ? UINT_MAX : (unsigned)ms; /* G-27 */
                if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
                    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &interval, sizeof(interval)) < 0 ||
                    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) < 0)
                        goto out;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof(timeout)) < 0)
                goto out;
        ok = true;
out:
        pthread_mutex_unlock(&s->close_lock);
        if (!ok)
                ipc_log(LOG_ERR, "setKeepalive(%d, %d) failed", cnt, interval);
        return ok;
}

static int pipe_address(const char *path, struct sockaddr_un *sun)
{
        size_t n;

        if (isempty(path))
                return -EINVAL;
        n = strlen(path);
        if (n >= sizeof(sun->sun_path)) /* G-09 */
                return -ENAMETOOLONG;
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, n + 1);
        return 0;
}

bool vfiipc_pipe_connect(vfiipc_stream *s, const char *path)
{
        struct sockaddr_un sun;
        int fd;

        if (!s || s->kind != VFIIPC_STREAM_PIPE)
                return false;
        vfiipc_stream_close(s);
        if (pipe_address(path, &sun) < 0)
                return false;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
                ipc_log(LOG_ERR, "connect to pipe %s failed: %s", path, strerror(errno));
                close(fd);
                return false;
        }
        attach_connected(s, fd, true);
        return true;
}

/* Is someone accepting on this path? (G-09) 1 yes, 0 stale, <0 cannot tell. */
static int pipe_is_live(const struct sockaddr_un *sun)
{
        struct stat st;
        int fd, r;

        if (lstat(sun->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST; /* never remove what is not a socket */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ? 1
            : errno == ECONNREFUSED                                   ? 0
            : errno == EAGAIN                                          ? 1 /* backlog full */
                                                                       : -errno;
        close(fd);
        return r;
}

bool vfiipc_pipe_listen(vfiipc_stream *s, const char *path)
{
        struct sockaddr_un sun;
        struct stat st;
        char *copy;
        int fd, r;

        if (!s || s->kind != VFIIPC_STREAM_PIPE)
                return false;
        vfiipc_stream_close(s);
        if (pipe_address(path, &sun) < 0)
                return false;
        copy = strdup(path);
        if (!copy)
                return false;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                goto fail;
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
                if (errno != EADDRINUSE)
                        goto fail;
                r = pipe_is_live(&sun);
                if (r != 0) {
                        ipc_log(LOG_ERR, "listen: pipe %s is in use", path);
                        goto fail;
                }
                ipc_log(LOG_NOTICE, "listen: removing stale pipe %s", path);
                if (unlink(path) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
                        goto fail;
        }
        if (stat(path, &st) < 0 || listen(fd, SOMAXCONN) < 0) {
                unlink(path);
                goto fail;
        }
        pthread_mutex_lock(&s->close_lock);
        stream_attach(s, fd, STREAM_LISTENING);
        s->pipe_path = copy;
        s->pipe_dev = st.st_dev;
        s->pipe_ino = st.st_ino;
        pthread_mutex_unlock(&s->close_lock);
        ipc_log(LOG_INFO, "listening on pipe %s", path);
        return true;
fail:
        ipc_log(LOG_ERR, "listen on pipe %s failed: %s", path, strerror(errno));
        if (fd >= 0)
                close(fd);
        free(copy);
        return false;
}

/* close_lock held: removes the listener's path if it is still ours (G-09). */
void stream_pipe_unlink(vfiipc_stream *s)
{
        struct stat st;

        if (!s->pipe_path)
                return;
        if (lstat(s->pipe_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->pipe_dev &&
            st.st_ino == s->pipe_ino)
                unlink(s->pipe_path);
        free(s->pipe_path);
        s->pipe_path = NULL;
}

/* Transient accept failures leave the listener untouched (G-08). */
static bool accept_transient(int err)
{
        switch (err) {
        case ECONNABORTED:
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
        case EPROTO:
        case EPERM:
        case ETIMEDOUT:
                return true;
        default:
                return false;
        }
}

int vfiipc_stream_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret)
{
        vfiipc_stream *c = NULL;
        int64_t deadline;
        int fd, cfd, r;

        if (!s || !ret)
                return -EINVAL;
        pthread_mutex_lock(&s->rlock);
        if (atomic_load(&s->state) != STREAM_LISTENING || atomic_load(&s->closing)) {
                if (atomic_load(&s->state) == STREAM_CLOSED)
                        stream_set_error(s); /* G-07 */
                pthread_mutex_unlock(&s->rlock);
                return -ENOTCONN;
        }
        fd = atomic_load(&s->fd);
        deadline = stream_deadline(timeout_msec);
        for (;;) {
                cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                if (cfd >= 0)
                        break;
                r = -errno;
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN || r == -EWOULDBLOCK) {
                        if (atomic_load(&s->closing))
                                r = -ECANCELED;
                        else if (timeout_msec != 0 && (r = stream_wait(fd, POLLIN, deadline)) > 0)
                                continue;
                        else if (r == 0 || timeout_msec == 0)
                                r = -ETIMEDOUT;
                }
                if (r != -ETIMEDOUT && atomic_load(&s->closing))
                        r = -ECANCELED; /* CLOSE-3: woken by close() */
                if (r != -ETIMEDOUT && r != -ECANCELED && !accept_transient(-r)) {
                        stream_set_error(s);
                        ipc_log(LOG_ERR, "accept: %s", strerror(-r));
                }
                pthread_mutex_unlock(&s->rlock);
                return r;
        }
        pthread_mutex_unlock(&s->rlock);
        dispatch_rearm(s); /* SETCB-10 */
        r = vfiipc_stream_new(s->kind, &c);
        if (r < 0) {
                close(cfd);
                return r;
        }
        attach_connected(c, cfd, true);
        ipc_log(LOG_INFO, "accepted connection from '%s'", c->remote);
        *ret = c;
        return 0;
}

int vfiipc_tcp_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret)
{
        return s && s->kind == VFIIPC_STREAM_TCP ? vfiipc_stream_accept(s, timeout_msec, ret)
                                                 : -EINVAL;
}

int vfiipc_pipe_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret)
{
        return s && s->kind == VFIIPC_STREAM_PIPE ? vfiipc_stream_accept(s, timeout_msec, ret)
                                                  : -EINVAL;
}
