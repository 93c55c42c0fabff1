/* lib/tls/internal.h — the inside of libvfiipctls: the TLS object (tls.c) and the TLS session
 * layered on a connected stream through the stream I/O hook (session.c). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/util.h"
#include "vfiipc/tls.h"

#define TLS_ERRTEXT_MAX 512

/* Settings of a TLS object, copied into objects returned by accept (TLS-CFG-2). */
struct tls_config {
        char *key, *cert;
        char **ca_files, **ca_dirs;
        size_t n_ca_files, n_ca_dirs;
        bool default_ca, client_auth;
        unsigned check; /* VFIIPC_TLS_IGNORE_* */
};

struct vfiipc_tls {
        vfiipc_stream *s; /* owned */

        /* lock guards everything below; never held across I/O. */
        pthread_mutex_t lock;
        struct tls_config cfg;
        unsigned long cfg_gen;   /* bumped by every setting */
        SSL_CTX *srv_ctx;        /* a listener's context ... */
        unsigned long srv_gen;   /* ... built from this cfg_gen */
        vfiipc_tls_error err;
        char errtext[TLS_ERRTEXT_MAX];
};

/* tls.c: records the last error (G-30); with `ssl`, OpenSSL's queued reasons are appended
 * (and the queue cleared). Logs it. Returns -EPROTO for convenience. */
int tls_fail(vfiipc_tls *t, vfiipc_tls_error code, bool ssl, const char *fmt, ...) _printf_(4, 5);
/* The error code for what OpenSSL's queue (peeked) says went wrong in a handshake or I/O. */
vfiipc_tls_error tls_classify(long verify_result);

/* session.c: handshake on the connected stream s within deadline (tls_now_ms based, -1:
 * none), then layers the session on s; later I/O errors are recorded on owner. 0, or -errno
 * with t's error set. */
int tls_session_start(vfiipc_tls *t, vfiipc_tls *owner, vfiipc_stream *s, SSL_CTX *ctx, bool server,
                      const char *host, unsigned check, int64_t deadline);
int64_t tls_now_ms(void);
/* The certificate check with the IGNORE_* relaxations of the session's owner. */
int tls_verify_cb(int ok, X509_STORE_CTX *x);
