/* <vfiipc/stream.h> — the C API of vfiipc byte streams: Pipe (AF_UNIX) and TCP connections
 * with the legacy framed messages and data-available callbacks (legacy-api.md §3).
 *
 * One vfiipc_stream is one legacy IPC object: Closed, Connected or Listening, with sticky eof
 * and error flags cleared by vfiipc_stream_close(). Timeouts are milliseconds on
 * CLOCK_MONOTONIC: negative = without limit, 0 = do not wait.
 *
 * Threads: one thread may read (read, read_msg, peek, poll_in, accept) while another writes
 * (write, write_msg); concurrent writers never interleave their bytes. close() and free() may
 * be called from any thread and wake up blocked calls. Callbacks of all streams run on one
 * library thread (vfiipc_stream_set_callback). Link with `pkg-config --libs vfiipc`. */
#ifndef VFIIPC_STREAM_H
#define VFIIPC_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <vfiipc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vfiipc_stream vfiipc_stream;

typedef enum vfiipc_stream_kind {
        VFIIPC_STREAM_TCP = 1,  /* TCP over IPv4/IPv6 */
        VFIIPC_STREAM_PIPE = 2, /* AF_UNIX stream socket bound to a file-system path */
} vfiipc_stream_kind;

/* Data-available callback: runs on the library's callback thread (SETCB-1…10). */
typedef void (*vfiipc_stream_cb)(void *data, vfiipc_stream *stream);

/* Receives one message from vfiipc_stream_read_msg_cb(): payload is valid during the call only.
 * Return 0 to consume the message, a negative errno to leave it in the stream (the read fails
 * with the error flag untouched). */
typedef int (*vfiipc_msg_sink)(void *ctx, int msg_id, const void *payload, size_t size);

/* A new Closed stream. Returns 0 or -ENOMEM/-EINVAL; nothing written to *ret on failure. */
VFIIPC_PUBLIC int vfiipc_stream_new(vfiipc_stream_kind kind, vfiipc_stream **ret);
/* Closes (as vfiipc_stream_close) and frees. NULL-safe; returns NULL. */
VFIIPC_PUBLIC vfiipc_stream *vfiipc_stream_free(vfiipc_stream *s);
VFIIPC_PUBLIC vfiipc_stream_kind vfiipc_stream_get_kind(const vfiipc_stream *s);

/* Releases the descriptors, clears both flags, drops buffered input and the callback; a
 * listening Pipe removes its path. Idempotent (OBJ-6, CLOSE-1…3). */
VFIIPC_PUBLIC void vfiipc_stream_close(vfiipc_stream *s);
VFIIPC_PUBLIC bool vfiipc_stream_eof(const vfiipc_stream *s);
VFIIPC_PUBLIC bool vfiipc_stream_error(const vfiipc_stream *s);
VFIIPC_PUBLIC bool vfiipc_stream_is_server(const vfiipc_stream *s);
/* The descriptor (listening or connected), -1 when Closed or when TLS runs on it (G-36).
 * Do not read, write or close it. */
VFIIPC_PUBLIC int vfiipc_stream_fd(const vfiipc_stream *s);
/* Never NULL; owned by the stream, valid until it is closed or reconnected (§3.9). */
VFIIPC_PUBLIC const char *vfiipc_stream_remote_addr(const vfiipc_stream *s);
VFIIPC_PUBLIC const char *vfiipc_stream_local_addr(const vfiipc_stream *s);

/* All size bytes or false (+ error flag). Never raises SIGPIPE (WRITE-1…3). */
VFIIPC_PUBLIC bool vfiipc_stream_write(vfiipc_stream *s, const void *data, int size);
/* READ-1…10: bytes read (maxsize reached, timeout, EOF or error); -1 on error before any byte. */
VFIIPC_PUBLIC int vfiipc_stream_read(vfiipc_stream *s, void *data, int maxsize, int timeout_msec,
                                     int timeout_msec2);
/* PEEK-1…7: >0 bytes copied, 0 EOF, -1 error, -2 timeout. Flags untouched. */
VFIIPC_PUBLIC int vfiipc_stream_peek(vfiipc_stream *s, void *data, int maxsize, int timeout_msec);
/* One frame: prefix, big-endian size (4 + size), msg_id, payload (§3.7). */
VFIIPC_PUBLIC bool vfiipc_stream_write_msg(vfiipc_stream *s, unsigned prefix, int msg_id,
                                           const void *msg, int size);
/* Reads the next frame with this prefix (resynchronising on garbage, payload ≤ size_limit)
 * and hands it to sink. false on timeout (partial frame kept), EOF or error (MSG-R-1…9). */
VFIIPC_PUBLIC bool vfiipc_stream_read_msg_cb(vfiipc_stream *s, unsigned prefix, int size_limit,
                                             int timeout_msec, vfiipc_msg_sink sink, void *ctx);
/* The same, the payload in a malloc'd buffer (*msg, free() it; never NULL on success). */
VFIIPC_PUBLIC bool vfiipc_stream_read_msg(vfiipc_stream *s, unsigned prefix, int *msg_id,
                                          void **msg, size_t *size, int size_limit,
                                          int timeout_msec);
/* POLL-1…6: true when input (or EOF/error, or on a listener a connection) is pending. */
VFIIPC_PUBLIC bool vfiipc_stream_poll_in(vfiipc_stream *s, int timeout_msec);

/* cb NULL unregisters (always true). From a thread other than the callback thread this waits
 * for a running invocation for s; from the callback thread it does not (G-06). */
VFIIPC_PUBLIC bool vfiipc_stream_set_callback(vfiipc_stream *s, vfiipc_stream_cb cb, void *data);
/* Stack size of the callback thread; only before it starts (STK-1…3). Negative: default. */
VFIIPC_PUBLIC void vfiipc_stream_set_callback_stacksize(int size);

/* Takes the oldest pending connection of a listening stream: 0 and a new Connected stream of
 * the same kind in *ret; -ETIMEDOUT, or another negative errno. */
VFIIPC_PUBLIC int vfiipc_stream_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret);

/* vfiipc_stream_accept() for a TCP resp. Pipe listener (-EINVAL for another kind). */
VFIIPC_PUBLIC int vfiipc_tcp_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret);
VFIIPC_PUBLIC int vfiipc_pipe_accept(vfiipc_stream *s, int timeout_msec, vfiipc_stream **ret);

/* TCP. hostname: name, a.b.c.d, IPv6 literal, optionally with ":port" / "[v6]:port" when port
 * is 0 (TCP-C-1…6). timeout_msec < 0: the system's connect timeout. */
VFIIPC_PUBLIC bool vfiipc_tcp_connect(vfiipc_stream *s, const char *hostname,
                                      unsigned short port, int timeout_msec);
/* listen_address NULL: 0.0.0.0; else an IPv4 or IPv6 literal (TCP-L-1…4). */
VFIIPC_PUBLIC bool vfiipc_tcp_listen(vfiipc_stream *s, unsigned short port,
                                     const char *listen_address);
/* Takes ownership of a connected stream socket (TCP-FD-1…5). */
VFIIPC_PUBLIC bool vfiipc_tcp_setfd(vfiipc_stream *s, int socket_fd);
VFIIPC_PUBLIC bool vfiipc_tcp_set_keepalive(vfiipc_stream *s, int cnt, int interval);

/* Pipe: AF_UNIX stream socket at a file-system path (PIPE-C-1, PIPE-L-1…2). */
VFIIPC_PUBLIC bool vfiipc_pipe_connect(vfiipc_stream *s, const char *path);
VFIIPC_PUBLIC bool vfiipc_pipe_listen(vfiipc_stream *s, const char *path);

#ifdef __cplusplus
}
#endif

#endif
