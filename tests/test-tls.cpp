// tests/test-tls.cpp — <ipc/tls.h> and libvfiipctls (legacy-api.md §4, G-30…G-39) on loopback:
// certificates are made at test time with the OpenSSL API in a temp dir (a CA, a server and a
// client certificate, and the bad ones: other CA, expired, not yet valid, self-signed, wrong
// host). Messages and streams over TLS, mutual authentication, every CheckConfig relaxation,
// a plain TCP client against a TLS listener, the guide's demo pattern with callbacks.
#include <ipc/tls.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "vfiipc/tls.h"

#ifdef DllSpec
#error "DllSpec leaked out of <ipc/tls.h>"
#endif
#ifndef IPC_TLS_H_20200130
#error "include guard (HDR-2)"
#endif

using namespace vfiipc;

// LAYOUT-1 and §4.2.
static_assert(sizeof(TLS) == 2 * sizeof(void *), "TLS layout");
static_assert(TLS::OK == 0 && TLS::ERR_HOST == 1 && TLS::ERR_PORT == 2 && TLS::ERR_SOCKET == 3 &&
                      TLS::ERR_UNKNOWN_HOST == 4 && TLS::ERR_CONNECT == 5 &&
                      TLS::ERR_TIMEOUT == 6 && TLS::ERR_AUTHENTICATION == 7 && TLS::ERR_FAIL == 8,
              "TLS::Error");
static_assert(TLS::IGNORE_NONE == 0 && TLS::IGNORE_ALL == 1 && TLS::IGNORE_SELF_SIGNED == 2 &&
                      TLS::IGNORE_EXPIRED == 4 && TLS::IGNORE_NOT_YET_VALID == 8 &&
                      TLS::IGNORE_HOSTNAME == 16,
              "TLS::CheckConfig");
static_assert((int)TLS::ERR_FAIL == (int)VFIIPC_TLS_ERR_FAIL, "C and C++ agree");

static const unsigned PREFIX = 0x544c5331;
static const long DAY = 24 * 3600;

// ---- certificates ----

static std::string dir;

static std::string path(const char *name)
{
        return dir + "/" + name;
}

static EVP_PKEY *new_key(void)
{
        EVP_PKEY *k = EVP_EC_gen("P-256");
        g_assert_nonnull(k);
        return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *e;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        g_assert_nonnull(e);
        g_assert_true(X509_add_ext(x, e, -1));
        X509_EXTENSION_free(e);
}

// A certificate for key, signed by issuer (NULL: self-signed), valid [from, to] seconds
// relative to now.
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                      long from, long to, bool ca, const char *san)
{
        static long serial = 1;
        X509 *x = X509_new();

        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        X509_gmtime_adj(X509_getm_notBefore(x), from);
        X509_gmtime_adj(X509_getm_notAfter(x), to);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
        X509_set_pubkey(x, key);
        add_ext(x, issuer ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
        if (ca)
                add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        if (san)
                add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
        g_assert_cmpint(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), >, 0);
        return x;
}

static void write_pem(const char *name, EVP_PKEY *key, X509 *cert)
{
        FILE *f = fopen(path(name).c_str(), "w");

        g_assert_nonnull(f);
        if (key)
                g_assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
        if (cert)
                g_assert_true(PEM_write_X509(f, cert));
        fclose(f);
}

static const char *LOCAL_SAN = "DNS:localhost,IP:127.0.0.1";

static void make_certificates(void)
{
        EVP_PKEY *ca_key = new_key(), *other_key = new_key(), *k = new_key();
        X509 *ca = new_cert(ca_key, "test CA", NULL, NULL, -DAY, 10 * DAY, true, NULL);
        X509 *other = new_cert(other_key, "other CA", NULL, NULL, -DAY, 10 * DAY, true, NULL);
        X509 *c;
        char hashed[32];

        write_pem("ca.pem", NULL, ca);
        write_pem("other-ca.pem", NULL, other);
        // The CA as a hashed directory (addCA(0, dir), G-32).
        g_assert_cmpint(g_mkdir(path("ca.d").c_str(), 0700), ==, 0);
        snprintf(hashed, sizeof(hashed), "ca.d/%08lx.0", X509_subject_name_hash(ca));
        write_pem(hashed, NULL, ca);

        struct {
                const char *name, *cn, *san;
                X509 *issuer;
                EVP_PKEY *issuer_key;
                long from, to;
        } certs[] = {
                {"server", "localhost", LOCAL_SAN, ca, ca_key, -DAY, 10 * DAY},
                {"client", "client", NULL, ca, ca_key, -DAY, 10 * DAY},
                {"untrusted", "localhost", LOCAL_SAN, other, other_key, -DAY, 10 * DAY},
                {"expired", "localhost", LOCAL_SAN, ca, ca_key, -10 * DAY, -DAY},
                {"future", "localhost", LOCAL_SAN, ca, ca_key, DAY, 10 * DAY},
                {"selfsigned", "localhost", LOCAL_SAN, NULL, NULL, -DAY, 10 * DAY},
                {"wronghost", "elsewhere.example", "DNS:elsewhere.example", ca, ca_key, -DAY,
                 10 * DAY},
        };
        for (auto &d : certs) {
                c = new_cert(k, d.cn, d.issuer, d.issuer_key, d.from, d.to, false, d.san);
                write_pem((std::string(d.name) + ".pem").c_str(), k, c); // key and cert in one
                write_pem((std::string(d.name) + ".crt").c_str(), NULL, c);
                X509_free(c);
        }
        write_pem("key.pem", k, NULL);
        X509_free(ca);
        X509_free(other);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(other_key);
        EVP_PKEY_free(k);
}

// ---- a one-connection echo server ----

static unsigned short port_of(IPC &ipc)
{
        const char *a = strrchr(ipc.local_addr(), ':');
        g_assert_nonnull(a);
        return (unsigned short)atoi(a + 1);
}

struct EchoServer {
        TLS l;
        std::thread th;
        std::atomic<bool> accepted{false};
        TLS::Error err = TLS::OK;
        std::string errtext;

        // cert: name of a PEM with key and certificate in dir.
        void start(const char *cert, bool client_auth = false, unsigned check = 0,
                   int accept_timeout = 5000)
        {
                l.setKeyCert(path(cert).c_str(), path(cert).c_str());
                if (client_auth) {
                        l.setClientAuth(true);
                        l.addCA(path("ca.pem").c_str(), 0);
                }
                l.setCheckConfig(check);
                g_assert_true(l.listen(0, "127.0.0.1"));
                g_assert_true(l.is_server());
                g_assert_cmpint(l.getFD(), >=, 0);
                th = std::thread([this, accept_timeout] {
                        IPC *c = l.accept(accept_timeout);
                        int id;
                        std::string msg;

                        err = l.TLSError(&errtext);
                        if (!c)
                                return;
                        accepted = true;
                        while (c->read_msg(PREFIX, id, msg, 1 << 20, 5000))
                                if (!c->write_msg(PREFIX, id + 1, msg))
                                        break;
                        delete c;
                });
        }
        unsigned short port()
        {
                return port_of(l);
        }
        void stop()
        {
                if (th.joinable())
                        th.join();
        }
        ~EchoServer()
        {
                stop();
        }
};

static bool echo_once(TLS &c, const std::string &text)
{
        int id = 0;
        std::string back;

        return c.write_msg(PREFIX, 41, text) && c.read_msg(PREFIX, id, back, 1 << 20, 5000) &&
               id == 42 && back == text;
}

// A client with the test CA; returns whether connect and one echo worked.
static bool try_client(EchoServer &srv, const char *host, unsigned check, TLS::Error *err,
                       const char *client_cert = 0)
{
        TLS c;
        std::string text;
        bool ok;

        c.addCA(path("ca.pem").c_str(), 0);
        c.setCheckConfig(check);
        if (client_cert)
                c.setKeyCert(path(client_cert).c_str(), path(client_cert).c_str());
        ok = c.connect(host, srv.port(), 5000) && echo_once(c, "hello");
        *err = c.TLSError(&text);
        if (!ok)
                g_test_message("client error %d: %s", (int)*err, text.c_str());
        else
                g_assert_cmpstr(text.c_str(), ==, "");
        c.close();
        srv.stop();
        return ok;
}

// ---- tests ----

static void test_messages_and_streams(void)
{
        EchoServer srv;
        TLS c;
        std::string big(100000, 'x'), text;
        int id;

        srv.start("server.pem");
        c.addCA(path("ca.pem").c_str(), 0);
        g_assert_true(c.connect("localhost", srv.port(), 5000)); // TLS-C-2
        g_assert_cmpint(c.TLSError(&text), ==, TLS::OK);
        g_assert_cmpstr(text.c_str(), ==, "");
        g_assert_false(c.is_server());
        g_assert_true(g_str_has_prefix(c.remote_addr(), "127.0.0.1:"));
        // G-36: no descriptor for a connected TLS object, also through IPC&.
        g_assert_cmpint(c.getFD(), ==, -1);
        g_assert_cmpint(static_cast<IPC &>(c).getFD(), ==, -1);
        g_assert_true(echo_once(c, "hello"));
        g_assert_true(echo_once(c, big)); // several TLS records per frame
        g_assert_true(echo_once(c, ""));
        // Two frames back to back: the second is pending after the first (TLS-IO-2).
        g_assert_true(c.write_msg(PREFIX, 1, std::string("one")));
        g_assert_true(c.write_msg(PREFIX, 3, std::string("two")));
        g_assert_true(c.read_msg(PREFIX, id, text, 100, 5000));
        g_assert_cmpstr(text.c_str(), ==, "one");
        g_assert_true(c.poll_in(5000));
        // Stream mode through IPC& (TLS-IO-3): peek then read the raw frame.
        {
                IPC &ipc = c;
                unsigned char buf[15];

                g_assert_cmpint(ipc.peek(buf, 4, 5000), ==, 4);
                g_assert_cmpint(ipc.read(buf, 15), ==, 15);
                g_assert_cmpint(memcmp(buf + 12, "two", 3), ==, 0);
                g_assert_false(c.poll_in(100));
        }
        c.close(); // close-notify: the server sees EOF
        g_assert_false(c.eof());
        g_assert_false(c.error());
        srv.stop();
        g_assert_true(srv.accepted);
}

static void test_ip_and_hostname(void)
{
        TLS::Error e;

        {
                EchoServer srv; // the server certificate names 127.0.0.1 (TLS-CHK-3)
                srv.start("server.pem");
                g_assert_true(try_client(srv, "127.0.0.1", 0, &e));
        }
        {
                EchoServer srv;
                srv.start("wronghost.pem");
                g_assert_false(try_client(srv, "localhost", 0, &e));
                g_assert_cmpint(e, ==, TLS::ERR_AUTHENTICATION);
        }
        {
                EchoServer srv;
                srv.start("wronghost.pem");
                g_assert_true(try_client(srv, "localhost", TLS::IGNORE_HOSTNAME, &e));
        }
        {
                EchoServer srv; // host:port form, port 0 (G-24)
                srv.start("server.pem");
                TLS c;
                char hp[32];
                c.addCA(path("ca.pem").c_str(), 0);
                snprintf(hp, sizeof(hp), "localhost:%u", srv.port());
                g_assert_true(c.connect(hp, 0, 5000));
                g_assert_true(echo_once(c, "x"));
        }
}

// One bad server certificate: fails by default and with other flags, works with its flag.
static void check_relaxation(const char *cert, unsigned flag)
{
        TLS::Error e;

        {
                EchoServer srv;
                srv.start(cert);
                g_assert_false(try_client(srv, "localhost", 0, &e));
                g_assert_cmpint(e, ==, TLS::ERR_AUTHENTICATION);
                g_assert_false(srv.accepted);
        }
        {
                EchoServer srv;
                srv.start(cert);
                g_assert_false(try_client(srv, "localhost", TLS::IGNORE_HOSTNAME, &e));
        }
        {
                EchoServer srv;
                srv.start(cert);
                g_assert_true(try_client(srv, "localhost", flag, &e));
        }
        {
                EchoServer srv;
                srv.start(cert);
                g_assert_true(try_client(srv, "localhost", TLS::IGNORE_ALL, &e));
        }
}

static void test_expired(void)
{
        check_relaxation("expired.pem", TLS::IGNORE_EXPIRED);
}

static void test_not_yet_valid(void)
{
        check_relaxation("future.pem", TLS::IGNORE_NOT_YET_VALID);
}

static void test_self_signed(void)
{
        check_relaxation("selfsigned.pem", TLS::IGNORE_SELF_SIGNED);
}

static void test_untrusted_ca(void)
{
        TLS::Error e;
        EchoServer srv;

        srv.start("untrusted.pem");
        g_assert_false(try_client(srv, "localhost", TLS::IGNORE_SELF_SIGNED, &e));
        g_assert_cmpint(e, ==, TLS::ERR_AUTHENTICATION);
}

static void test_no_anchor_fails(void)
{
        EchoServer srv;
        TLS c;
        std::string text;

        srv.start("server.pem");
        g_assert_false(c.connect("localhost", srv.port(), 5000)); // G-34: secure default
        g_assert_cmpint(c.TLSError(&text), ==, TLS::ERR_AUTHENTICATION);
        g_assert_true(strstr(text.c_str(), "certificate") != NULL);
}

static void test_ca_directory_and_default(void)
{
        EchoServer srv;
        TLS c;

        srv.start("server.pem");
        c.addDefaultCA();
        c.setCA(0, path("ca.d").c_str()); // TLS-CA-3: accumulates
        g_assert_true(c.connect("localhost", srv.port(), 5000));
        g_assert_true(echo_once(c, "dir"));
}

static void test_missing_ca_file(void)
{
        TLS c;
        std::string text;

        c.addCA(path("nonexistent.pem").c_str(), 0);
        g_assert_false(c.connect("localhost", 9, 1000));
        g_assert_cmpint(c.TLSError(&text), ==, TLS::ERR_FAIL); // G-32
        g_assert_true(strstr(text.c_str(), "nonexistent.pem") != NULL);
        g_assert_cmpint(c.TLSError(0), ==, TLS::ERR_FAIL); // G-30: reading keeps it
}

static void test_mutual_auth(void)
{
        TLS::Error e;

        {
                EchoServer srv;
                srv.start("server.pem", true);
                g_assert_true(try_client(srv, "localhost", 0, &e, "client.pem"));
                g_assert_true(srv.accepted);
        }
        {
                // Key and certificate in two files (TLS-KC-1).
                EchoServer srv;
                srv.start("server.pem", true);
                TLS c;
                c.addCA(path("ca.pem").c_str(), 0);
                c.setKeyCert(path("key.pem").c_str(), path("client.crt").c_str());
                g_assert_true(c.connect("localhost", srv.port(), 5000));
                g_assert_true(echo_once(c, "two files"));
        }
        {
                EchoServer srv; // without a client certificate (TLS-AUTH-2, -3)
                srv.start("server.pem", true);
                g_assert_false(try_client(srv, "localhost", 0, &e));
                g_assert_cmpint(e, ==, TLS::ERR_AUTHENTICATION);
                g_assert_false(srv.accepted);
                g_assert_cmpint(srv.err, ==, TLS::ERR_AUTHENTICATION); // TLS-A-2
        }
        {
                EchoServer srv; // a client certificate from another CA
                srv.start("server.pem", true);
                g_assert_false(try_client(srv, "localhost", 0, &e, "untrusted.pem"));
                g_assert_false(srv.accepted);
                g_assert_cmpint(srv.err, ==, TLS::ERR_AUTHENTICATION);
        }
        {
                EchoServer srv; // an expired client certificate, accepted with the flag (G-34)
                srv.start("server.pem", true, TLS::IGNORE_EXPIRED);
                g_assert_true(try_client(srv, "localhost", 0, &e, "expired.pem"));
        }
}

static void test_plain_tcp_client_does_not_hang_accept(void)
{
        TLS l;
        TCP plain;
        std::string text;
        gint64 t0;

        l.setKeyCert(path("server.pem").c_str(), 0); // one file for both (TLS-KC-3)
        g_assert_true(l.listen(0, "127.0.0.1"));
        // Silent client: the handshake stalls, accept gives up at its timeout (G-35).
        g_assert_true(plain.connect("127.0.0.1", port_of(l), 2000));
        t0 = g_get_monotonic_time();
        g_assert_null(l.accept(500));
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 3 * G_USEC_PER_SEC);
        g_assert_cmpint(l.TLSError(&text), ==, TLS::ERR_TIMEOUT);
        // A client speaking plain framed messages: the handshake fails at once.
        plain.close();
        g_assert_true(plain.connect("127.0.0.1", port_of(l), 2000));
        g_assert_true(plain.write_msg(PREFIX, 1, std::string("not TLS at all, sorry")));
        g_assert_null(l.accept(5000));
        g_assert_cmpint(l.TLSError(&text), ==, TLS::ERR_FAIL);
        g_test_message("plain client: %s", text.c_str());
        plain.close();
        // The listener stays usable (TLS-A-3).
        {
                std::thread th([&] {
                        TLS c;
                        c.addCA(path("ca.pem").c_str(), 0);
                        g_assert_true(c.connect("127.0.0.1", port_of(l), 5000));
                        g_assert_true(c.write_msg(PREFIX, 7, std::string("after")));
                });
                IPC *s = l.accept(5000);
                int id;
                std::string msg;
                g_assert_nonnull(s);
                g_assert_cmpint(l.TLSError(0), ==, TLS::OK);
                g_assert_true(s->read_msg(PREFIX, id, msg, 100, 5000));
                g_assert_cmpstr(msg.c_str(), ==, "after");
                th.join();
                delete s;
        }
        // Nobody at all: ERR_TIMEOUT, bounded.
        g_assert_null(l.accept(100));
        g_assert_cmpint(l.TLSError(0), ==, TLS::ERR_TIMEOUT);
}

// A raw OpenSSL client limited to one protocol version; true if its handshake succeeded.
static bool raw_client_handshake(unsigned short port, int version)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        struct sockaddr_in a = {};
        bool ok = false;
        SSL *ssl;
        int fd;

        g_assert_nonnull(ctx);
        SSL_CTX_set_min_proto_version(ctx, version);
        SSL_CTX_set_max_proto_version(ctx, version);
        SSL_CTX_set_security_level(ctx, 0); // let the client offer old protocols at all
        SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        g_assert_cmpint(::connect(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        ok = SSL_connect(ssl) == 1;
        SSL_free(ssl);
        close(fd);
        SSL_CTX_free(ctx);
        return ok;
}

// TLS 1.2 and newer only: a TLS 1.1 client is refused, a TLS 1.2 client accepted.
static void test_old_protocols_refused(void)
{
        TLS l;

        l.setKeyCert(path("server.pem").c_str(), 0);
        g_assert_true(l.listen(0, "127.0.0.1"));
        for (int version : {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION}) {
                std::atomic<bool> ok(false);
                std::thread th([&] { ok = raw_client_handshake(port_of(l), version); });
                IPC *s = l.accept(5000);
                th.join();
                if (version == TLS1_2_VERSION) {
                        g_assert_true(ok.load());
                        g_assert_nonnull(s);
                } else {
                        g_assert_false(ok.load());
                        g_assert_null(s);
                }
                delete s;
        }
}

static void test_engine_references(void)
{
        const char *refs[] = {"sdi:", "vault:", "sdi:usr1/mykey"};

        g_assert_false(TLS::hasAuthEx()); // G-39
        for (const char *r : refs) {
                TLS l, c;
                std::string text;

                l.setKeyCert(r, r);
                g_assert_false(l.listen(0, "127.0.0.1")); // G-31
                g_assert_cmpint(l.TLSError(&text), ==, TLS::ERR_AUTHENTICATION);
                g_assert_true(strstr(text.c_str(), r) != NULL);
                c.setKeyCert(r, r);
                c.setCheckConfig(TLS::IGNORE_ALL);
                g_assert_false(c.connect("127.0.0.1", 9, 1000));
                g_assert_cmpint(c.TLSError(0), ==, TLS::ERR_AUTHENTICATION);
        }
}

static void test_errors(void)
{
        TLS c, l;
        std::string text;

        g_assert_false(c.connect(0, 1, 1000));
        g_assert_cmpint(c.TLSError(&text), ==, TLS::ERR_HOST);
        g_assert_false(c.connect("localhost", 0, 1000));
        g_assert_cmpint(c.TLSError(0), ==, TLS::ERR_PORT);
        g_assert_false(c.connect("no-such-host.invalid", 443, 2000));
        g_assert_cmpint(c.TLSError(0), ==, TLS::ERR_UNKNOWN_HOST);
        c.setCheckConfig(TLS::IGNORE_ALL);
        {
                TCP probe; // a free port: listen, note it, close
                g_assert_true(probe.listen(0, "127.0.0.1"));
                unsigned short p = port_of(probe);
                probe.close();
                g_assert_false(c.connect("127.0.0.1", p, 2000));
                g_assert_cmpint(c.TLSError(0), ==, TLS::ERR_CONNECT);
        }
        g_assert_false(l.listen(0, "127.0.0.1")); // no key (G-31)
        g_assert_cmpint(l.TLSError(0), ==, TLS::ERR_AUTHENTICATION);
        l.setKeyCert(path("nonexistent.pem").c_str(), 0);
        g_assert_false(l.listen(0, "127.0.0.1"));
        g_assert_cmpint(l.TLSError(&text), ==, TLS::ERR_FAIL);
        g_assert_true(strstr(text.c_str(), "nonexistent.pem") != NULL);
        l.setKeyCert(path("key.pem").c_str(), path("ca.pem").c_str()); // mismatch
        g_assert_false(l.listen(0, "127.0.0.1"));
        g_assert_cmpint(l.TLSError(0), ==, TLS::ERR_FAIL);
        l.setKeyCert(path("server.pem").c_str(), path("server.pem").c_str());
        g_assert_true(l.listen(0, "127.0.0.1")); // G-30: reset by a successful listen
        g_assert_cmpint(l.TLSError(&text), ==, TLS::OK);
        g_assert_cmpstr(text.c_str(), ==, "");
        g_assert_null(c.accept(0)); // not a listener
}

// The guide's demo: a callback server (--client-auth, --ca) answering each message.
struct DemoServer {
        TLS *conn;
        std::atomic<int> answered{0};
};

static void demo_cb(void *data, IPC *ipc)
{
        DemoServer *d = static_cast<DemoServer *>(data);
        int id;
        std::string msg;

        while (ipc->poll_in(0) && !ipc->eof() && !ipc->error()) {
                if (!ipc->read_msg(PREFIX, id, msg, 4096, 100))
                        break;
                ipc->write_msg(PREFIX, id, "re: " + msg);
                d->answered++;
        }
        if (!ipc->eof() && !ipc->error())
                ipc->set_callback(demo_cb, data);
}

static void test_demo_callbacks(void)
{
        TLS l;
        DemoServer d;
        std::thread th;

        l.setKeyCert(path("server.pem").c_str(), path("server.pem").c_str());
        l.setClientAuth(true);          // --client-auth
        l.addCA(path("ca.pem").c_str(), 0); // --ca
        g_assert_true(l.listen(0, "127.0.0.1"));
        th = std::thread([&] {
                IPC *c = l.accept(5000);
                g_assert_nonnull(c);
                d.conn = static_cast<TLS *>(c);
                g_assert_true(c->set_callback(demo_cb, &d));
        });
        TLS c;
        c.setKeyCert(path("client.pem").c_str(), path("client.pem").c_str());
        c.setCA(path("ca.pem").c_str(), 0);
        g_assert_true(c.connect("localhost", port_of(l), 5000));
        th.join();
        for (int i = 0; i < 20; i++) {
                int id;
                std::string msg, want = "re: msg " + std::to_string(i);
                g_assert_true(c.write_msg(PREFIX, i, "msg " + std::to_string(i)));
                g_assert_true(c.read_msg(PREFIX, id, msg, 4096, 5000));
                g_assert_cmpint(id, ==, i);
                g_assert_cmpstr(msg.c_str(), ==, want.c_str());
        }
        // A burst: several frames in one go, answered through the callback (TLS-IO-2).
        for (int i = 0; i < 10; i++)
                g_assert_true(c.write_msg(PREFIX, 100 + i, std::string("burst")));
        for (int i = 0; i < 10; i++) {
                int id;
                std::string msg;
                g_assert_true(c.read_msg(PREFIX, id, msg, 4096, 5000));
                g_assert_cmpint(id, ==, 100 + i);
        }
        g_assert_cmpint(d.answered.load(), ==, 30);
        // A client-side callback on TLS too.
        {
                std::atomic<int> fired{0};
                struct Ctx {
                        std::atomic<int> *fired;
                } ctx = {&fired};
                g_assert_true(c.set_callback(
                        [](void *p, IPC *) { (*static_cast<Ctx *>(p)->fired)++; }, &ctx));
                g_assert_true(c.write_msg(PREFIX, 500, std::string("ping")));
                for (int i = 0; i < 500 && fired.load() == 0; i++)
                        g_usleep(10000);
                g_assert_cmpint(fired.load(), >=, 1);
                g_assert_true(c.set_callback(0));
        }
        c.close();
        delete d.conn;
}

int main(int argc, char **argv)
{
        gchar *tmp;
        int r;

        g_test_init(&argc, &argv, NULL);
        tmp = g_dir_make_tmp("vfiipc-tls-XXXXXX", NULL);
        g_assert_nonnull(tmp);
        dir = tmp;
        make_certificates();

        g_test_add_func("/tls/messages-and-streams", test_messages_and_streams);
        g_test_add_func("/tls/ip-and-hostname", test_ip_and_hostname);
        g_test_add_func("/tls/expired-fails-unless-ignored", test_expired);
        g_test_add_func("/tls/not-yet-valid-fails-unless-ignored", test_not_yet_valid);
        g_test_add_func("/tls/self-signed-fails-unless-ignored", test_self_signed);
        g_test_add_func("/tls/untrusted-ca-fails", test_untrusted_ca);
        g_test_add_func("/tls/no-anchor-fails", test_no_anchor_fails);
        g_test_add_func("/tls/ca-directory-and-default", test_ca_directory_and_default);
        g_test_add_func("/tls/missing-ca-file", test_missing_ca_file);
        g_test_add_func("/tls/mutual-auth", test_mutual_auth);
        g_test_add_func("/tls/plain-tcp-client-does-not-hang-accept",
                        test_plain_tcp_client_does_not_hang_accept);
        g_test_add_func("/tls/old-protocols-refused", test_old_protocols_refused);
        g_test_add_func("/tls/engine-references", test_engine_references);
        g_test_add_func("/tls/errors", test_errors);
        g_test_add_func("/tls/demo-callbacks", test_demo_callbacks);
        r = g_test_run();
        std::string cmd = "rm -rf '" + dir + "'";
        if (system(cmd.c_str()) != 0)
                r = r ? r : 1;
        g_free(tmp);
        return r;
}
