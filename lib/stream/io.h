/* lib/stream/io.h — the hook for a transport layered on a connected stream's socket (TLS,
 * lib/tls): the stream keeps its buffering, framing, timeouts, locks and callbacks, and does
 * its socket I/O through these functions instead of recv()/sendmsg(). Not an installed
 * header: exported from libvfiipc for libvfiipctls only.
 *
 * The hooks run with the stream's reader lock (recv, pending) or writer lock (send) held, one
 * reader and one writer possibly at the same time, so an implementation serialises its own
 * state. close runs with both locks held, nothing else in flight. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vfiipc/stream.h"

struct vfiipc_stream_io {
        /* Like recv(2) (flags: MSG_PEEK, MSG_DONTWAIT): >0 bytes, 0 on EOF, -1 with errno;
         * EAGAIN makes the stream wait for POLLIN on the descriptor and call again. */
        ssize_t (*recv)(void *ctx, int fd, void *buf, size_t len, int flags);
        /* Writes all of iov; 0 or -errno. */
        int (*send)(void *ctx, int fd, const struct iovec *iov, int iovcnt);
        /* Input already decoded and waiting inside the transport (TLS-IO-2). */
        size_t (*pending)(void *ctx);
        /* Ends the session before the descriptor is closed, and frees ctx. */
        void (*close)(void *ctx, int fd);
};

/* Layers io (ctx) on a Connected stream; it stays until the stream is closed, which calls
 * io->close(ctx). 0, or -ENOTCONN (io->close is not called then). */
VFIIPC_PUBLIC int vfiipc_stream_set_io(vfiipc_stream *s, const struct vfiipc_stream_io *io,
                                       void *ctx);
