/* <vfiipc/tls.h> — the C API of vfiipc TLS streams (libvfiipctls, OpenSSL 3): TLS over TCP
 * with the trust and verification settings of the legacy class TLS (legacy-api.md §4,
 * G-30…G-39).
 *
 * A vfiipc_tls is one legacy TLS object: its configuration, its last error, and the TCP
 * vfiipc_stream it owns. Once connected (or returned by accept) all I/O goes through that
 * stream with the functions of <vfiipc/stream.h> (read, read_msg, peek, poll_in, write,
 * callbacks), which then work on decrypted application data.
 *
 * Threads: configuration and connect/listen/accept/close from one thread at a time (the
 * settings are copied under a lock, so a listener may be reconfigured between accepts);
 * stream I/O as documented in <vfiipc/stream.h>; vfiipc_tls_get_error from any thread.
 * Link with `pkg-config --libs vfiipctls`. */
#ifndef VFIIPC_TLS_H
#define VFIIPC_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <vfiipc/common.h>
#include <vfiipc/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vfiipc_tls vfiipc_tls;

/* The values of TLS::Error (G-30). */
typedef enum vfiipc_tls_error {
        VFIIPC_TLS_OK = 0,
        VFIIPC_TLS_ERR_HOST = 1,           /* missing or invalid host name */
        VFIIPC_TLS_ERR_PORT = 2,           /* invalid port */
        VFIIPC_TLS_ERR_SOCKET = 3,         /* no socket */
        VFIIPC_TLS_ERR_UNKNOWN_HOST = 4,   /* name resolution failed */
        VFIIPC_TLS_ERR_CONNECT = 5,        /* refused, unreachable, listen failed */
        VFIIPC_TLS_ERR_TIMEOUT = 6,        /* connect, accept or handshake timed out */
        VFIIPC_TLS_ERR_AUTHENTICATION = 7, /* certificate or key rejected */
        VFIIPC_TLS_ERR_FAIL = 8,           /* anything else */
} vfiipc_tls_error;

/* The values of TLS::CheckConfig: relaxations of the peer verification (TLS-CHK-1…3). */
enum {
        VFIIPC_TLS_IGNORE_NONE = 0,
        VFIIPC_TLS_IGNORE_ALL = 1,
        VFIIPC_TLS_IGNORE_SELF_SIGNED = 2,
        VFIIPC_TLS_IGNORE_EXPIRED = 4,
        VFIIPC_TLS_IGNORE_NOT_YET_VALID = 8,
        VFIIPC_TLS_IGNORE_HOSTNAME = 16,
};

/* A new Closed TLS object. 0 or -ENOMEM/-EINVAL; nothing written to *ret on failure. */
VFIIPC_PUBLIC int vfiipc_tls_new(vfiipc_tls **ret);
/* Closes and frees, its stream included. NULL-safe; returns NULL. */
VFIIPC_PUBLIC vfiipc_tls *vfiipc_tls_free(vfiipc_tls *t);
/* The stream owned by t (never NULL for a valid t); valid until vfiipc_tls_free(). */
VFIIPC_PUBLIC vfiipc_stream *vfiipc_tls_get_stream(vfiipc_tls *t);

/* Key and certificate to present (PEM files; one file may hold both; either may be NULL,
 * then the other is used for both). "vault:…" and "sdi:…" name keyservice engines, which
 * this build does not have: connect/listen then fail with ERR_AUTHENTICATION (G-31).
 * Copied; checked when connecting or listening. false only when out of memory. */
VFIIPC_PUBLIC bool vfiipc_tls_set_key_cert(vfiipc_tls *t, const char *key, const char *cert);
/* Adds trust anchors: a PEM file and/or a hashed directory (G-32). Accumulates. */
VFIIPC_PUBLIC bool vfiipc_tls_add_ca(vfiipc_tls *t, const char *file, const char *dir);
/* Adds the system's default trust anchors (OpenSSL default verify paths). */
VFIIPC_PUBLIC void vfiipc_tls_add_default_ca(vfiipc_tls *t);
/* Listeners: require a valid client certificate (G-33). No effect on clients. */
VFIIPC_PUBLIC void vfiipc_tls_set_client_auth(vfiipc_tls *t, bool on);
/* Bitwise OR of VFIIPC_TLS_IGNORE_* (G-34). Default VFIIPC_TLS_IGNORE_NONE. */
VFIIPC_PUBLIC void vfiipc_tls_set_check_config(vfiipc_tls *t, unsigned flags);
/* Whether the device's AuthEx key is usable: always false here (G-39). */
VFIIPC_PUBLIC bool vfiipc_tls_has_authex(void);

/* TCP connect (host rules as vfiipc_tcp_connect) and TLS handshake with verification, both
 * within timeout_msec (G-35; negative: system connect timeout, handshake without limit). */
VFIIPC_PUBLIC bool vfiipc_tls_connect(vfiipc_tls *t, const char *hostname, unsigned short port,
                                      int timeout_msec);
/* TCP listen (as vfiipc_tcp_listen); needs a key and certificate (G-31). */
VFIIPC_PUBLIC bool vfiipc_tls_listen(vfiipc_tls *t, unsigned short port,
                                     const char *listen_address);
/* Takes the next connection and performs the server handshake within timeout_msec (negative:
 * no limit for the connection, 30 s for the handshake). 0 and a new connected object with
 * the listener's settings in *ret; else a negative errno and the reason in t's error (G-35). */
VFIIPC_PUBLIC int vfiipc_tls_accept(vfiipc_tls *t, int timeout_msec, vfiipc_tls **ret);
/* Sends close-notify when the session is healthy, then closes like vfiipc_stream_close(). */
VFIIPC_PUBLIC void vfiipc_tls_close(vfiipc_tls *t);

/* The last error (G-30): reset by connect/listen/accept, kept by reading. The description
 * (own text and the TLS library's reason, "" for OK) is copied to buf if not NULL. */
VFIIPC_PUBLIC vfiipc_tls_error vfiipc_tls_get_error(vfiipc_tls *t, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
