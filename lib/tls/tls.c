/* lib/tls/tls.c — the TLS object: settings, contexts, connect/listen/accept/close and the
 * error state (legacy-api.md §4, G-30…G-39). The session itself is session.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "tls/internal.h"

/* Without a limit from the caller, a stalled client cannot hold accept() longer than this. */
#define ACCEPT_HANDSHAKE_MS 30000

/* ---- errors ---- */

int tls_fail(vfiipc_tls *t, vfiipc_tls_error code, bool ssl, const char *fmt, ...)
{
        char text[TLS_ERRTEXT_MAX];
        unsigned long e;
        size_t n;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        while (ssl && (e = ERR_get_error()) != 0) {
                const char *reason = ERR_reason_error_string(e);
                char buf[256];

                if (!reason) {
                        ERR_error_string_n(e, buf, sizeof(buf));
                        reason = buf;
                }
                n = strlen(text);
                if (n + 3 < sizeof(text) && !strstr(text, reason))
                        snprintf(text + n, sizeof(text) - n, ": %s", reason);
        }
        pthread_mutex_lock(&t->lock);
        t->err = code;
        memcpy(t->errtext, text, sizeof(text));
        pthread_mutex_unlock(&t->lock);
        ipctls_log(LOG_ERR, "%s", text);
        return -EPROTO;
}

static void tls_reset_error(vfiipc_tls *t)
{
        pthread_mutex_lock(&t->lock);
        t->err = VFIIPC_TLS_OK;
        t->errtext[0] = '\0';
        pthread_mutex_unlock(&t->lock);
}

vfiipc_tls_error tls_classify(long verify_result)
{
        unsigned long e = ERR_peek_error();

        if (verify_result != X509_V_OK)
                return VFIIPC_TLS_ERR_AUTHENTICATION;
        if (ERR_GET_LIB(e) != ERR_LIB_SSL)
                return VFIIPC_TLS_ERR_FAIL;
        switch (ERR_GET_REASON(e)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        case SSL_R_NO_CERTIFICATES_RETURNED:
                return VFIIPC_TLS_ERR_AUTHENTICATION; /* TLS-AUTH-3: also after connect() */
        default:
                return VFIIPC_TLS_ERR_FAIL;
        }
}

vfiipc_tls_error vfiipc_tls_get_error(vfiipc_tls *t, char *buf, size_t size)
{
        vfiipc_tls_error e;

        if (!t) {
                if (buf && size)
                        buf[0] = '\0';
                return VFIIPC_TLS_ERR_FAIL;
        }
        pthread_mutex_lock(&t->lock);
        e = t->err;
        if (buf && size)
                snprintf(buf, size, "%s", t->errtext);
        pthread_mutex_unlock(&t->lock);
        return e;
}

/* ---- settings ---- */

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void config_clear(struct tls_config *c)
{
        free(c->key);
        free(c->cert);
        strv_free(c->ca_files, c->n_ca_files);
        strv_free(c->ca_dirs, c->n_ca_dirs);
        *c = (struct tls_config){0};
}

static int strv_copy(char ***ret, char *const *v, size_t n)
{
        char **c;

        *ret = NULL;
        if (n == 0)
                return 0;
        c = calloc(n, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(v[i]);
                if (!c[i]) {
                        strv_free(c, i);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

static int config_copy(struct tls_config *dst, const struct tls_config *src)
{
        struct tls_config c = *src;

        c.key = src->key ? strdup(src->key) : NULL;
        c.cert = src->cert ? strdup(src->cert) : NULL;
        c.ca_files = c.ca_dirs = NULL;
        if ((src->key && !c.key) || (src->cert && !c.cert) ||
            strv_copy(&c.ca_files, src->ca_files, src->n_ca_files) < 0 ||
            strv_copy(&c.ca_dirs, src->ca_dirs, src->n_ca_dirs) < 0) {
                c.n_ca_files = c.ca_files ? c.n_ca_files : 0;
                c.n_ca_dirs = 0;
                config_clear(&c);
                return -ENOMEM;
        }
        *dst = c;
        return 0;
}

static int strv_push(char ***v, size_t *n, const char *s)
{
        char **p, *copy = strdup(s);

        if (!copy)
                return -ENOMEM;
        p = realloc(*v, (*n + 1) * sizeof(*p));
        if (!p) {
                free(copy);
                return -ENOMEM;
        }
        p[(*n)++] = copy;
        *v = p;
        return 0;
}

static int tls_new_with(vfiipc_stream *s, vfiipc_tls **ret)
{
        vfiipc_tls *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        pthread_mutex_init(&t->lock, NULL);
        t->s = s;
        *ret = t;
        return 0;
}

int vfiipc_tls_new(vfiipc_tls **ret)
{
        vfiipc_stream *s = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = vfiipc_stream_new(VFIIPC_STREAM_TCP, &s);
        if (r < 0)
                return r;
        r = tls_new_with(s, ret);
        if (r < 0)
                vfiipc_stream_free(s);
        return r;
}

vfiipc_tls *vfiipc_tls_free(vfiipc_tls *t)
{
        if (!t)
                return NULL;
        vfiipc_stream_free(t->s); /* ends the session, which refers to t */
        SSL_CTX_free(t->srv_ctx);
        config_clear(&t->cfg);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

vfiipc_stream *vfiipc_tls_get_stream(vfiipc_tls *t)
{
        return t ? t->s : NULL;
}

static bool set_string(char **field, const char *v)
{
        char *copy = NULL;

        if (v && !(copy = strdup(v)))
                return false;
        free(*field);
        *field = copy;
        return true;
}

bool vfiipc_tls_set_key_cert(vfiipc_tls *t, const char *key, const char *cert)
{
        bool ok;

        if (!t)
                return false;
        pthread_mutex_lock(&t->lock);
        ok = set_string(&t->cfg.key, key) && set_string(&t->cfg.cert, cert);
        t->cfg_gen++;
        pthread_mutex_unlock(&t->lock);
        return ok;
}

bool vfiipc_tls_add_ca(vfiipc_tls *t, const char *file, const char *dir)
{
        bool ok = true;

        if (!t)
                return false;
        pthread_mutex_lock(&t->lock); /* G-32: accumulates */
        if (!isempty(file))
                ok = strv_push(&t->cfg.ca_files, &t->cfg.n_ca_files, file) == 0;
        if (ok && !isempty(dir))
                ok = strv_push(&t->cfg.ca_dirs, &t->cfg.n_ca_dirs, dir) == 0;
        t->cfg_gen++;
        pthread_mutex_unlock(&t->lock);
        return ok;
}

void vfiipc_tls_add_default_ca(vfiipc_tls *t)
{
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        t->cfg.default_ca = true;
        t->cfg_gen++;
        pthread_mutex_unlock(&t->lock);
}

void vfiipc_tls_set_client_auth(vfiipc_tls *t, bool on)
{
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        t->cfg.client_auth = on;
        t->cfg_gen++;
        pthread_mutex_unlock(&t->lock);
}

void vfiipc_tls_set_check_config(vfiipc_tls *t, unsigned flags)
{
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        t->cfg.check = flags;
        t->cfg_gen++;
        pthread_mutex_unlock(&t->lock);
}

bool vfiipc_tls_has_authex(void)
{
        return false; /* G-39: no keyservice engine in this build */
}

/* ---- contexts ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
        (void)buf;
        (void)size;
        (void)rwflag;
        (void)u;
        return 0; /* never prompt on the terminal: an encrypted key fails to load */
}

static bool is_engine_ref(const char *s)
{
        return s && (strncmp(s, "vault:", 6) == 0 || strncmp(s, "sdi:", 4) == 0);
}

/* A context from a snapshot of the settings: 0, or -errno with t's error set. */
static int ctx_build(vfiipc_tls *t, const struct tls_config *cfg, bool server, SSL_CTX **ret)
{
        const char *key = cfg->key ? cfg->key : cfg->cert;
        const char *cert = cfg->cert ? cfg->cert : cfg->key;
        SSL_CTX *ctx;
        struct stat st;
        int mode;

        ERR_clear_error();
        ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!ctx)
                return tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot create a TLS context");
        /* G-38: TLS 1.2 minimum, 1.3 enabled, the library's default cipher suites. */
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                         SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_default_passwd_cb(ctx, no_password);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        if (server) /* no session tickets: no post-handshake records to wake callbacks for */
                SSL_CTX_set_num_tickets(ctx, 0);

        if (is_engine_ref(key) || is_engine_ref(cert)) { /* G-31 */
                tls_fail(t, VFIIPC_TLS_ERR_AUTHENTICATION, false,
                         "keyservice reference '%s' cannot be used: no keyservice engine "
                         "(vault/sdi) is available in this build",
                         is_engine_ref(key) ? key : cert);
                goto fail;
        }
        if (cert) {
                if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
                        tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot load certificate '%s'", cert);
                        goto fail;
                }
                if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
                        tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot load private key '%s'", key);
                        goto fail;
                }
                if (SSL_CTX_check_private_key(ctx) != 1) {
                        tls_fail(t, VFIIPC_TLS_ERR_FAIL, true,
                                 "private key '%s' does not match certificate '%s'", key, cert);
                        goto fail;
                }
        } else if (server) {
                tls_fail(t, VFIIPC_TLS_ERR_AUTHENTICATION, false,
                         "a TLS listener needs a key and certificate (setKeyCert)");
                goto fail;
        }
        for (size_t i = 0; i < cfg->n_ca_files; i++)
                if (SSL_CTX_load_verify_file(ctx, cfg->ca_files[i]) != 1) {
                        tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot load CA file '%s'",
                                 cfg->ca_files[i]);
                        goto fail;
                }
        for (size_t i = 0; i < cfg->n_ca_dirs; i++)
                if (stat(cfg->ca_dirs[i], &st) < 0 || !S_ISDIR(st.st_mode) ||
                    SSL_CTX_load_verify_dir(ctx, cfg->ca_dirs[i]) != 1) {
                        tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot use CA directory '%s'",
                                 cfg->ca_dirs[i]);
                        goto fail;
                }
        if (cfg->default_ca && SSL_CTX_set_default_verify_paths(ctx) != 1) {
                tls_fail(t, VFIIPC_TLS_ERR_FAIL, true, "cannot load the default CA locations");
                goto fail;
        }
        if (server) /* G-33 */
                mode = cfg->client_auth ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                        : SSL_VERIFY_NONE;
        else /* G-34: verified unless IGNORE_ALL; without anchors that fails */
                mode = cfg->check & VFIIPC_TLS_IGNORE_ALL ? SSL_VERIFY_NONE : SSL_VERIFY_PEER;
        SSL_CTX_set_verify(ctx, mode, mode == SSL_VERIFY_NONE ? NULL : tls_verify_cb);
        *ret = ctx;
        return 0;
fail:
        SSL_CTX_free(ctx);
        return -EPROTO;
}

static int config_snapshot(vfiipc_tls *t, struct tls_config *c)
{
        int r;

        pthread_mutex_lock(&t->lock);
        r = config_copy(c, &t->cfg);
        pthread_mutex_unlock(&t->lock);
        if (r < 0)
                tls_fail(t, VFIIPC_TLS_ERR_FAIL, false, "out of memory");
        return r;
}

/* ---- connections ---- */

/* The host part of connect()'s argument (G-24, G-34) and the port, as vfiipc_tcp_connect
 * will take them: 0, or the error code. */
static vfiipc_tls_error split_host(const char *hostname, unsigned short port, char **ret_host)
{
        const char *h = hostname, *end, *portstr = NULL, *c;
        size_t hlen;
        char *e;
        unsigned long v;

        if (isempty(hostname))
                return VFIIPC_TLS_ERR_HOST;
        if (h[0] == '[') {
                end = strchr(h, ']');
                if (!end || (end[1] != '\0' && end[1] != ':'))
                        return VFIIPC_TLS_ERR_HOST;
                h++;
                hlen = (size_t)(end - h);
                if (end[1] == ':')
                        portstr = end + 2;
        } else {
                c = strchr(h, ':');
                if (c && !strchr(c + 1, ':')) {
                        hlen = (size_t)(c - h);
                        portstr = c + 1;
                } else {
                        hlen = strlen(h);
                }
        }
        if (hlen == 0)
                return VFIIPC_TLS_ERR_HOST;
        if (portstr) {
                if (port != 0 || *portstr < '0' || *portstr > '9')
                        return VFIIPC_TLS_ERR_PORT;
                errno = 0;
                v = strtoul(portstr, &e, 10);
                if (errno || *e || v == 0 || v > 65535)
                        return VFIIPC_TLS_ERR_PORT;
        } else if (port == 0) {
                return VFIIPC_TLS_ERR_PORT;
        }
        *ret_host = strndup(h, hlen);
        return *ret_host ? VFIIPC_TLS_OK : VFIIPC_TLS_ERR_FAIL;
}

bool vfiipc_tls_connect(vfiipc_tls *t, const char *hostname, unsigned short port,
                        int timeout_msec)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
        struct tls_config cfg = {0};
        struct addrinfo *res = NULL;
        _cleanup_free_ char *host = NULL;
        SSL_CTX *ctx = NULL;
        int64_t deadline;
        vfiipc_tls_error e;
        int r;

        if (!t)
                return false;
        vfiipc_stream_close(t->s); /* OBJ-6 */
        tls_reset_error(t);
        deadline = timeout_msec < 0 ? -1 : tls_now_ms() + timeout_msec;
        e = split_host(hostname, port, &host);
        if (e != VFIIPC_TLS_OK) {
                tls_fail(t, e, false, "connect: invalid %s in '%s' (port %u)",
                         e == VFIIPC_TLS_ERR_PORT ? "port" : "host",
                         hostname ? hostname : "(null)", (unsigned)port);
                return false;
        }
        if (config_snapshot(t, &cfg) < 0)
                return false;
        r = ctx_build(t, &cfg, false, &ctx);
        if (r < 0) {
                config_clear(&cfg);
                return false;
        }
        r = getaddrinfo(host, NULL, &hints, &res);
        if (r != 0) {
                tls_fail(t, VFIIPC_TLS_ERR_UNKNOWN_HOST, false, "cannot resolve '%s': %s", host,
                         gai_strerror(r));
                goto fail;
        }
        freeaddrinfo(res);
        if (!vfiipc_tcp_connect(t->s, hostname, port, timeout_msec)) {
                if (deadline >= 0 && tls_now_ms() >= deadline)
                        tls_fail(t, VFIIPC_TLS_ERR_TIMEOUT, false, "connect to '%s' timed out",
                                 hostname);
                else
                        tls_fail(t, VFIIPC_TLS_ERR_CONNECT, false, "cannot connect to '%s' port %u",
                                 hostname, (unsigned)port);
                goto fail;
        }
        /* G-35: the handshake gets what is left of the one timeout. */
        if (tls_session_start(t, t, t->s, ctx, false, host, cfg.check, deadline) < 0) {
                vfiipc_stream_close(t->s);
                goto fail;
        }
        SSL_CTX_free(ctx);
        config_clear(&cfg);
        return true;
fail:
        SSL_CTX_free(ctx);
        config_clear(&cfg);
        return false;
}

bool vfiipc_tls_listen(vfiipc_tls *t, unsigned short port, const char *listen_address)
{
        struct tls_config cfg = {0};
        unsigned long gen;
        SSL_CTX *ctx = NULL;
        int r;

        if (!t)
                return false;
        vfiipc_stream_close(t->s);
        tls_reset_error(t);
        pthread_mutex_lock(&t->lock);
        gen = t->cfg_gen;
        pthread_mutex_unlock(&t->lock);
        if (config_snapshot(t, &cfg) < 0)
                return false;
        r = ctx_build(t, &cfg, true, &ctx);
        config_clear(&cfg);
        if (r < 0)
                return false;
        if (!vfiipc_tcp_listen(t->s, port, listen_address)) {
                SSL_CTX_free(ctx);
                tls_fail(t, VFIIPC_TLS_ERR_SOCKET, false, "cannot listen on %s port %u",
                         isempty(listen_address) ? "0.0.0.0" : listen_address, (unsigned)port);
                return false;
        }
        pthread_mutex_lock(&t->lock);
        SSL_CTX_free(t->srv_ctx);
        t->srv_ctx = ctx;
        t->srv_gen = gen;
        pthread_mutex_unlock(&t->lock);
        return true;
}

/* The listener's context, rebuilt when settings changed since (TLS-CFG-2); a reference. */
static int listener_ctx(vfiipc_tls *t, SSL_CTX **ret, struct tls_config *cfg)
{
        unsigned long gen;
        SSL_CTX *ctx = NULL;
        bool fresh;
        int r;

        pthread_mutex_lock(&t->lock);
        gen = t->cfg_gen;
        fresh = t->srv_ctx && t->srv_gen == gen;
        if (fresh) {
                SSL_CTX_up_ref(t->srv_ctx);
                ctx = t->srv_ctx;
        }
        pthread_mutex_unlock(&t->lock);
        r = config_snapshot(t, cfg);
        if (r < 0) {
                SSL_CTX_free(ctx);
                return r;
        }
        if (!fresh) {
                r = ctx_build(t, cfg, true, &ctx);
                if (r < 0) {
                        config_clear(cfg);
                        return r;
                }
                SSL_CTX_up_ref(ctx);
                pthread_mutex_lock(&t->lock);
                SSL_CTX_free(t->srv_ctx);
                t->srv_ctx = ctx;
                t->srv_gen = gen;
                pthread_mutex_unlock(&t->lock);
        }
        *ret = ctx;
        return 0;
}

int vfiipc_tls_accept(vfiipc_tls *t, int timeout_msec, vfiipc_tls **ret)
{
        struct tls_config cfg = {0};
        vfiipc_stream *c = NULL;
        vfiipc_tls *n = NULL;
        SSL_CTX *ctx = NULL;
        int64_t deadline;
        int r;

        if (!t || !ret)
                return -EINVAL;
        tls_reset_error(t);
        deadline = timeout_msec < 0 ? -1 : tls_now_ms() + timeout_msec;
        r = vfiipc_stream_accept(t->s, timeout_msec, &c);
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        tls_fail(t, VFIIPC_TLS_ERR_TIMEOUT, false, "accept: timed out");
                else
                        tls_fail(t, VFIIPC_TLS_ERR_SOCKET, false, "accept: %s", strerror(-r));
                return r;
        }
        r = listener_ctx(t, &ctx, &cfg);
        if (r < 0) {
                vfiipc_stream_free(c);
                return r;
        }
        r = tls_new_with(c, &n);
        if (r < 0) {
                vfiipc_stream_free(c);
                SSL_CTX_free(ctx);
                config_clear(&cfg);
                tls_fail(t, VFIIPC_TLS_ERR_FAIL, false, "out of memory");
                return r;
        }
        n->cfg = cfg; /* TLS-CFG-2: inherits the listener's settings */
        if (deadline < 0)
                deadline = tls_now_ms() + ACCEPT_HANDSHAKE_MS;
        /* G-35, TLS-A-2: a failed handshake is reported on the listener; it stays usable. */
        r = tls_session_start(t, n, c, ctx, true, NULL, cfg.check, deadline);
        SSL_CTX_free(ctx);
        if (r < 0) {
                vfiipc_tls_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

void vfiipc_tls_close(vfiipc_tls *t)
{
        if (t)
                vfiipc_stream_close(t->s);
}
