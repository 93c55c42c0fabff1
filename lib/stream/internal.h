/* lib/stream/internal.h — the inside of a vfiipc_stream, shared by the stream modules:
 * stream.c (object, I/O, framing), socket.c (TCP and Pipe endpoints), dispatch.c (callbacks).
 *
 * Locks: close_lock serialises close/connect/listen/setfd/accept-setup; rlock is held by the
 * one reader (read, read_msg, peek, poll_in, accept), wlock by a writer. close() takes both
 * after shutdown() has woken blocked calls, so the descriptor never changes under an I/O call.
 * Flags and the buffered-bytes count are atomics so the callback thread reads them lock-free. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <time.h>

#include "stream/io.h"
#include "vfiipc/stream.h"

/* Milliseconds on CLOCK_MONOTONIC (G-05). */
static inline int64_t stream_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline for a timeout: -1 for "without limit". */
static inline int64_t stream_deadline(int timeout_msec)
{
        return timeout_msec < 0 ? -1 : stream_now_ms() + timeout_msec;
}

/* What is left of a deadline, as a poll() timeout. */
static inline int stream_remaining(int64_t deadline)
{
        int64_t left;

        if (deadline < 0)
                return -1;
        left = deadline - stream_now_ms();
        return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

enum stream_state {
        STREAM_CLOSED,
        STREAM_CONNECTED,
        STREAM_LISTENING,
};

/* Room for "[<IPv6>%<scope>]:65535" and "<pid> <uid> <gid>". */
#define STREAM_ADDR_MAX 96

struct vfiipc_stream {
        vfiipc_stream_kind kind;
        atomic_int fd;
        atomic_int state; /* enum stream_state */
        atomic_bool eof, error, closing;

        pthread_mutex_t close_lock, rlock, wlock;

        /* Input buffer (G-14): bytes [ipos, ipos + ilen) of ibuf; reader only. */
        uint8_t *ibuf;
        size_t ipos, ilen, icap;
        atomic_size_t buffered; /* = ilen, published for the callback thread */
        atomic_bool buf_stale;  /* buffer holds only an incomplete frame: wait for the socket */

        char remote[STREAM_ADDR_MAX], local[STREAM_ADDR_MAX];

        /* Listening Pipe: the path it created and its identity (G-09). */
        char *pipe_path;
        dev_t pipe_dev;
        ino_t pipe_ino;

        atomic_ulong cb_token; /* 0: no callback registered */

        /* A transport layered on the socket (TLS), NULL for plain sockets. Changed only with
         * close_lock, rlock and wlock held, so readers and writers see it stable. */
        const struct vfiipc_stream_io *io;
        void *io_ctx;
        atomic_size_t io_buffered; /* input decoded inside io, published after each recv */
        atomic_bool io_layered;    /* io is set: the descriptor is not the application's */
};

/* stream.c */
/* Waits on CLOCK_MONOTONIC, EINTR retried: revents (>0) when ready, 0 on timeout, -errno. */
int stream_wait(int fd, short events, int64_t deadline);
void stream_attach(vfiipc_stream *s, int fd, enum stream_state state);
void stream_set_error(vfiipc_stream *s);

/* socket.c */
void sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
void stream_pipe_unlink(vfiipc_stream *s);
int stream_accept_fd(vfiipc_stream *s, int timeout_msec, int *ret_fd);
void stream_fill_addresses(vfiipc_stream *s);

/* dispatch.c */
bool dispatch_register(vfiipc_stream *s, vfiipc_stream_cb cb, void *data);
void dispatch_unregister(vfiipc_stream *s);
void dispatch_rearm(vfiipc_stream *s); /* cheap when s has no callback */
void dispatch_set_stacksize(int size);
