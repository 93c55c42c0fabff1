// tests/test-ipc-cpp.cpp — <ipc/ipc.h> as legacy applications use it: the header contract
// (HDR-*, LAYOUT-1/2), the conformance checks of legacy-api.md §9 items 1–6, and the
// programmers guide's demo server/client patterns (§10): message mode, stream mode with peek,
// callback server and client, multi-threaded server on detached 32 KiB threads.
// Temp dirs and loopback only.
#include <ipc/ipc.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <glib.h>
#include <glib/gstdio.h>

#ifdef DllSpec
#error "DllSpec leaked out of <ipc/ipc.h>"
#endif
#ifndef DEPRECATED
#error "DEPRECATED must stay defined after <ipc/ipc.h> (HDR-6)"
#endif
#ifndef IPC_H_20140521
#error "include guard (HDR-2)"
#endif

using namespace vfiipc;

// LAYOUT-1: vptr + d, nothing else, in every class.
static_assert(sizeof(IPC) == 2 * sizeof(void *), "IPC layout");
static_assert(sizeof(TCP) == 2 * sizeof(void *), "TCP layout");
static_assert(sizeof(Pipe) == 2 * sizeof(void *), "Pipe layout");
static_assert(Pipe::PC_None == 0 && Pipe::PC_EnableCredentials == 1, "PipeConfig");

static const unsigned PREFIX = 0x49504331;
static const int SIZELIMIT = 4096;

// ---- LAYOUT-2: the vtable slot of each virtual function (Itanium ABI pointer-to-member:
// a virtual function is represented as 1 + its byte offset in the vtable). ----

template <class PM> static long slot_of(PM pm)
{
        struct rep {
                ptrdiff_t ptr, adj;
        } r;
        static_assert(sizeof(PM) == sizeof(rep), "Itanium member pointer");
        std::memcpy(&r, &pm, sizeof(r));
        g_assert_cmpint(r.ptr & 1, ==, 1); // virtual
        return (long)((r.ptr - 1) / (ptrdiff_t)sizeof(void *));
}

// A subclass to reach the protected worker overload.
class Probe : public Pipe {
    public:
        static long worker_slot()
        {
                return slot_of(static_cast<bool (IPC::*)(unsigned, int &, IpcBuffer &, int, int)>(
                        &Probe::read_msg));
        }
};

static void test_vtable_order(void)
{
        g_assert_cmpint(slot_of(&IPC::eof), ==, 2);
        g_assert_cmpint(slot_of(&IPC::error), ==, 3);
        g_assert_cmpint(slot_of(&IPC::accept), ==, 4);
        g_assert_cmpint(slot_of(&IPC::close), ==, 5);
        g_assert_cmpint(slot_of(&IPC::write), ==, 6);
        g_assert_cmpint(slot_of(static_cast<int (IPC::*)(void *, int, int, int)>(&IPC::read)), ==, 7);
        g_assert_cmpint(slot_of(static_cast<int (IPC::*)(void *, int, int)>(&IPC::read)), ==, 8);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int, const void *, int)>(
                                &IPC::write_msg)),
                        ==, 9);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int,
                                                          const std::vector<unsigned char> &)>(
                                &IPC::write_msg)),
                        ==, 10);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int, const std::vector<char> &)>(
                                &IPC::write_msg)),
                        ==, 11);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int &,
                                                          std::vector<unsigned char> &, int, int)>(
                                &IPC::read_msg)),
                        ==, 12);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int &, std::vector<char> &, int,
                                                          int)>(&IPC::read_msg)),
                        ==, 13);
        g_assert_cmpint(slot_of(&IPC::poll_in), ==, 14);
        g_assert_cmpint(slot_of(&IPC::remote_addr), ==, 15);
        g_assert_cmpint(slot_of(&IPC::set_callback), ==, 16);
        g_assert_cmpint(Probe::worker_slot(), ==, 17);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int, const std::string &)>(
                                &IPC::write_msg)),
                        ==, 18);
        g_assert_cmpint(slot_of(static_cast<bool (IPC::*)(unsigned, int &, std::string &, int, int)>(
                                &IPC::read_msg)),
                        ==, 19);
        g_assert_cmpint(slot_of(&IPC::is_server), ==, 20);
        g_assert_cmpint(slot_of(&IPC::local_addr), ==, 21);
}

// ---- helpers ----

struct TempPipe {
        TempPipe()
        {
                dir = g_dir_make_tmp("vfiipc-XXXXXX", NULL);
                path = std::string(dir) + "/pipe";
        }
        ~TempPipe()
        {
                g_unlink(path.c_str());
                g_rmdir(dir);
                g_free(dir);
        }
        char *dir;
        std::string path;
};

// A connected Pipe pair: client c, accepted server side (owned by the caller).
static IPC *pipe_pair(Pipe &listener, Pipe &c, const TempPipe &tp)
{
        g_assert_true(listener.listen(tp.path.c_str()));
        g_assert_true(c.connect(tp.path.c_str()));
        IPC *s = listener.accept(2000);
        g_assert_nonnull(s);
        return s;
}

// ---- §9 items 1–6 ----

// 1. READ-4, READ-5, READ-10: read(buf,10) blocks with 4 bytes there; read(buf,10,100,0) gives 4.
struct BlockedRead {
        IPC *ipc;
        std::atomic<int> result;
};

static void *blocked_read(void *p)
{
        BlockedRead *b = static_cast<BlockedRead *>(p);
        char buf[10];
        b->result = b->ipc->read(buf, 10);
        return 0;
}

static void test_item1_read_semantics(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        char buf[10];

        g_assert_true(c.write("abcd", 4));
        g_assert_cmpint(s->read(buf, 10, 100, 0), ==, 4);
        g_assert_cmpmem(buf, 4, "abcd", 4);

        BlockedRead b;
        b.ipc = s;
        b.result = -100;
        g_assert_true(c.write("efgh", 4));
        pthread_t t;
        pthread_create(&t, 0, blocked_read, &b);
        g_usleep(200 * 1000);
        g_assert_cmpint(b.result.load(), ==, -100); // still blocked with 4 bytes there
        g_assert_true(c.write("ijklmn", 6));
        pthread_join(t, 0);
        g_assert_cmpint(b.result.load(), ==, 10);
        delete s;
}

// 2. PEEK-3, PEEK-4: peek then read give the same bytes; after the peer closes, peek returns 0
// while eof() stays false until a read.
static void test_item2_peek(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        char a[16], b[16];

        g_assert_true(c.write("peekaboo", 8));
        int pn = s->peek(a, sizeof(a), 1000);
        g_assert_cmpint(pn, >, 0);
        int n = s->read(b, sizeof(b), 1000, 0);
        g_assert_cmpint(n, >=, pn);
        g_assert_cmpmem(a, pn, b, pn);
        c.close();
        g_assert_cmpint(s->peek(a, sizeof(a), 1000), ==, 0);
        g_assert_false(s->eof());
        g_assert_cmpint(s->read(b, sizeof(b), 1000, 0), ==, 0);
        g_assert_true(s->eof());
        delete s;
}

// 3. MSG-R-2, MSG-R-3: garbage then a frame; an oversized header is not allocated.
static void test_item3_garbage_and_size_limit(void)
{
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        TCP s;
        g_assert_true(s.setFD(sv[0]));
        const unsigned char garbage[] = {'x', 0x49, 0x50, 0x43, 'y', 0x49, 0x50};
        const unsigned char huge[] = {0x49, 0x50, 0x43, 0x31, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1};
        const unsigned char frame[] = {0x49, 0x50, 0x43, 0x31, 0, 0, 0, 7, 0, 0, 0, 9, 'o', 'k', '!'};
        g_assert_cmpint(::write(sv[1], garbage, sizeof(garbage)), ==, (ssize_t)sizeof(garbage));
        g_assert_cmpint(::write(sv[1], huge, sizeof(huge)), ==, (ssize_t)sizeof(huge));
        g_assert_cmpint(::write(sv[1], frame, sizeof(frame)), ==, (ssize_t)sizeof(frame));
        std::vector<unsigned char> msg(5, 'z');
        int id = 0;
        g_assert_true(s.read_msg(PREFIX, id, msg, 100, 1000));
        g_assert_cmpint(id, ==, 9);
        g_assert_cmpuint(msg.size(), ==, 3);
        g_assert_cmpmem(&msg[0], 3, "ok!", 3);
        ::close(sv[1]);
}

// 4. FRAME-3: write_msg with an empty vector<char> emits a 12-byte frame with size 4.
static void test_item4_empty_vector_frame(void)
{
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        TCP s;
        g_assert_true(s.setFD(sv[0]));
        g_assert_true(s.write_msg(PREFIX, 3, std::vector<char>()));
        unsigned char buf[32];
        g_assert_cmpint(::read(sv[1], buf, sizeof(buf)), ==, 12);
        const unsigned char want[] = {0x49, 0x50, 0x43, 0x31, 0, 0, 0, 4, 0, 0, 0, 3};
        g_assert_cmpmem(buf, 12, want, 12);
        // and it reads back as an empty message (G-19), through every overload
        g_assert_true(s.write_msg(PREFIX, 4, std::string()));
        g_assert_true(s.write_msg(PREFIX, 5, std::vector<unsigned char>()));
        TCP r;
        g_assert_true(r.setFD(sv[1]));
        std::string m = "old";
        std::vector<unsigned char> v(3, 1);
        int id = 0;
        g_assert_true(r.read_msg(PREFIX, id, m, 10, 1000));
        g_assert_cmpint(id, ==, 4);
        g_assert_true(m.empty());
        g_assert_true(r.read_msg(PREFIX, id, v, 10, 1000));
        g_assert_cmpint(id, ==, 5);
        g_assert_true(v.empty());
}

// 5. SETCB-5: a second chunk before the application reads causes no second callback; after a
// read it does.
static std::atomic<int> item5_calls(0);

static void item5_cb(void *data, IPC *ipc)
{
        g_assert_true(data == (void *)&item5_calls);
        g_assert_nonnull(ipc);
        item5_calls++;
}

static void wait_for(std::atomic<int> &v, int n)
{
        gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
        while (v.load() < n && g_get_monotonic_time() < end)
                g_usleep(2000);
}

static void test_item5_callback_rearm(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        char buf[16];

        g_assert_true(s->set_callback(item5_cb, &item5_calls));
        g_assert_true(c.write("one", 3));
        wait_for(item5_calls, 1);
        g_assert_cmpint(item5_calls.load(), ==, 1);
        g_assert_true(c.write("two", 3));
        g_usleep(200 * 1000);
        g_assert_cmpint(item5_calls.load(), ==, 1);
        g_assert_cmpint(s->read(buf, 3, 0), ==, 3);
        wait_for(item5_calls, 2);
        g_assert_cmpint(item5_calls.load(), ==, 2);
        g_assert_true(s->set_callback(0));
        delete s;
}

// 6. §3.9: Pipe peers see "<pid> <uid> <gid>" and ""; TCP::listen(0) reports the port.
static void test_item6_addresses(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        char creds[64];
        snprintf(creds, sizeof(creds), "%d %u %u", (int)getpid(), (unsigned)getuid(),
                 (unsigned)getgid());
        g_assert_cmpstr(s->remote_addr(), ==, creds);
        g_assert_cmpstr(c.remote_addr(), ==, creds);
        g_assert_cmpstr(s->local_addr(), ==, "");
        g_assert_cmpstr(c.local_addr(), ==, "");
        delete s;

        TCP t;
        g_assert_true(t.listen(0, "127.0.0.1"));
        g_assert_true(t.is_server());
        const char *la = t.local_addr();
        g_assert_true(g_str_has_prefix(la, "127.0.0.1:"));
        g_assert_cmpint(atoi(strrchr(la, ':') + 1), >, 0);
        TCP tc;
        g_assert_true(tc.connect(la, 0, 2000));
        IPC *ts = t.accept(2000);
        g_assert_nonnull(ts);
        g_assert_cmpstr(ts->remote_addr(), ==, tc.local_addr());
        g_assert_cmpstr(ts->local_addr(), ==, tc.remote_addr());
        delete ts;
}

// ---- object model ----

// ACC-1, ACC-6, SRV-2, OBJ-3: accept returns the listener's dynamic type; delete via IPC*.
static void test_accept_types(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        g_assert_nonnull(dynamic_cast<Pipe *>(s));
        g_assert_false(s->is_server());
        g_assert_true(l.is_server());
        g_assert_null(static_cast<IPC &>(c).accept(0)); // not listening
        g_assert_false(c.error());
        delete s;

        TCP t;
        g_assert_true(t.listen(0, "127.0.0.1"));
        IPC *ipc = new TCP;
        g_assert_true(static_cast<TCP *>(ipc)->connect(t.local_addr(), 0, 2000));
        IPC *a = static_cast<IPC &>(t).accept(2000);
        g_assert_nonnull(dynamic_cast<TCP *>(a));
        g_assert_null(t.accept(0)); // G-03: nothing pending
        g_assert_false(t.error());  // ACC-7
        delete a;
        delete ipc;
        g_assert_cmpint(t.getFD(), >=, 0);
        t.close();
        g_assert_cmpint(t.getFD(), ==, -1);
        g_assert_false(t.is_server());
}

// OBJ-5/OBJ-6, the guide's "close, then reconnect": flags cleared, object reusable.
static void test_close_and_reconnect(void)
{
        TempPipe tp;
        Pipe l, c;
        IPC *s = pipe_pair(l, c, tp);
        char buf[4];
        delete s; // peer gone
        g_assert_cmpint(c.read(buf, 4, 1000), ==, 0);
        g_assert_true(c.eof());
        c.close();
        g_assert_false(c.eof());
        g_assert_true(c.connect(tp.path.c_str()));
        s = l.accept(2000);
        g_assert_nonnull(s);
        g_assert_true(s->write("hey", 3));
        g_assert_cmpint(c.read(buf, 3, 1000), ==, 3);
        // connect() on an open object closes it first
        g_assert_true(c.connect(tp.path.c_str()));
        IPC *s2 = l.accept(2000);
        g_assert_nonnull(s2);
        g_assert_cmpint(s->read(buf, 1, 1000), ==, 0);
        g_assert_true(s->eof());
        delete s;
        delete s2;
}

static void test_versions(void)
{
        const char *v = IPC::getVersion(), *av = IPC::ipc_GetVersion();
        unsigned maj = 0, min = 0, pat = 0, build = 0;
        g_assert_nonnull(v);
        g_assert_cmpint(sscanf(av, "%u.%u.%u-%u", &maj, &min, &pat, &build), ==, 4);
        g_assert_true(maj > 1 || (maj == 1 && min >= 28)); // G-18
        g_assert_true(g_str_has_prefix(av, v));
}

// ---- the programmers guide's demo server and client ----

// The guide's response(): read a message (or bytes) and echo it.
static int response(IPC *r, int timeout_msec, bool messages)
{
        if (messages) {
                std::vector<char> buf;
                int id;
                if (!r->read_msg(PREFIX, id, buf, SIZELIMIT, timeout_msec))
                        return (r->error() || r->eof()) ? -1 : 0;
                buf.push_back(0);
                return r->write_msg(PREFIX, id, buf) ? 1 : -1;
        }
        char buf[256];
        int n = r->read(buf, sizeof(buf) - 1, timeout_msec, 0);
        if (n <= 0)
                return (r->error() || r->eof()) ? -1 : 0;
        return r->write(buf, n) ? 1 : -1;
}

struct Session {
        IPC *r;
        bool messages;
        std::atomic<bool> callback;
        std::atomic<int> *finished;
};

static void server_callback(void *data, IPC *ipc)
{
        Session *s = static_cast<Session *>(data);
        // timeout 0: the callback says data is there (SETCB-6, MSG-R-9)
        if (response(ipc, 0, s->messages) < 0)
                s->callback = false; // leave loop on error
}

// The guide's server(): the session runs on a detached 32 KiB thread and deletes its object.
static void *server(void *p)
{
        Session *s = static_cast<Session *>(p);
        IPC *r = s->r;
        if (s->callback) {
                if (!r->set_callback(server_callback, s))
                        s->callback = false;
                while (s->callback)
                        usleep(10000);
        } else {
                while (response(r, 2000, s->messages) >= 0)
                        ;
        }
        delete r; // waits for a running callback (G-06)
        (*s->finished)++;
        delete s;
        return 0;
}

struct Demo {
        IPC *listener;
        bool messages, callback;
        int sessions;
        std::atomic<int> finished;
};

static void *accept_loop(void *p)
{
        Demo *d = static_cast<Demo *>(p);
        for (int i = 0; i < d->sessions;) {
                IPC *r = d->listener->accept();
                if (!r)
                        continue;
                Session *s = new Session;
                s->r = r;
                s->messages = d->messages;
                s->callback = d->callback;
                s->finished = &d->finished;
                pthread_t th;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&attr, 32 * 1024); // as the demo (G-78)
                g_assert_cmpint(pthread_create(&th, &attr, server, s), ==, 0);
                pthread_attr_destroy(&attr);
                i++;
        }
        return 0;
}

static void client_cb(void *data, IPC *)
{
        *static_cast<std::atomic<int> *>(data) = 1;
}

// The guide's client(): write "Hello world!", receive the echo (peek + read in stream mode),
// optionally waiting for a callback first, then set_callback(0).
static void client(IPC *r, bool messages, bool callback, int rounds)
{
        for (int i = 0; i < rounds; i++) {
                const char hello[] = "Hello world!";
                std::atomic<int> invoked(0);
                if (callback)
                        g_assert_true(r->set_callback(client_cb, &invoked));
                if (messages)
                        g_assert_true(r->write_msg(PREFIX, i, hello, (int)strlen(hello)));
                else
                        g_assert_true(r->write(hello, (int)strlen(hello)));
                int timeout = 2000;
                if (callback) {
                        wait_for(invoked, 1);
                        g_assert_cmpint(invoked.load(), ==, 1);
                        timeout = 0;
                }
                if (messages) {
                        std::vector<char> buf;
                        int id = -1;
                        g_assert_true(r->read_msg(PREFIX, id, buf, SIZELIMIT, timeout));
                        g_assert_cmpint(id, ==, i);
                        g_assert_cmpstr(&buf[0], ==, hello); // the server appended a NUL
                } else {
                        char peekbuf[256], buf[256];
                        int peekn = r->peek(peekbuf, sizeof(peekbuf) - 1, timeout);
                        int n = r->read(buf, sizeof(buf) - 1, timeout, 0);
                        g_assert_cmpint(peekn, >, 0);
                        g_assert_cmpint(n, >=, peekn);
                        g_assert_cmpmem(peekbuf, peekn, buf, peekn);
                        // the echo may arrive in parts; collect the rest
                        while (n < (int)strlen(hello)) {
                                int k = r->read(buf + n, (int)strlen(hello) - n, 2000, 0);
                                g_assert_cmpint(k, >, 0);
                                n += k;
                        }
                        g_assert_cmpmem(buf, n, hello, strlen(hello));
                }
                if (callback)
                        r->set_callback(0); // protect `invoked` from later callbacks
        }
}

static void run_demo(bool use_tcp, bool messages, bool server_cb, bool client_cb_mode)
{
        TempPipe tp;
        Pipe pl;
        TCP tl;
        IPC *listener;
        std::string tcp_addr;
        if (use_tcp) {
                g_assert_true(tl.listen(0, "127.0.0.1"));
                tcp_addr = tl.local_addr();
                listener = &tl;
        } else {
                g_assert_true(pl.listen(tp.path.c_str()));
                listener = &pl;
        }
        const int sessions = 4;
        Demo d;
        d.listener = listener;
        d.messages = messages;
        d.callback = server_cb;
        d.sessions = sessions;
        d.finished = 0;
        pthread_t acc;
        pthread_create(&acc, 0, accept_loop, &d);
        IPC *clients[sessions];
        for (int i = 0; i < sessions; i++) {
                if (use_tcp) {
                        TCP *t = new TCP;
                        g_assert_true(t->connect(tcp_addr.c_str(), 0, 2000));
                        clients[i] = t;
                } else {
                        Pipe *p = new Pipe;
                        g_assert_true(p->connect(tp.path.c_str()));
                        clients[i] = p;
                }
        }
        pthread_join(acc, 0);
        for (int i = 0; i < sessions; i++)
                client(clients[i], messages, client_cb_mode, 3);
        for (int i = 0; i < sessions; i++)
                delete clients[i]; // the sessions see EOF and end
        gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (d.finished.load() < sessions && g_get_monotonic_time() < end)
                g_usleep(5000);
        g_assert_cmpint(d.finished.load(), ==, sessions);
}

static void test_demo_pipe_messages(void)
{
        run_demo(false, true, false, false);
}

static void test_demo_pipe_stream(void)
{
        run_demo(false, false, false, false);
}

static void test_demo_tcp_messages(void)
{
        run_demo(true, true, false, false);
}

static void test_demo_tcp_stream(void)
{
        run_demo(true, false, false, false);
}

static void test_demo_callback_server(void)
{
        run_demo(false, true, true, false);
        run_demo(true, false, true, false);
}

static void test_demo_callback_client(void)
{
        run_demo(false, true, false, true);
        run_demo(true, false, true, true);
}

// G-02, G-07 on the C++ surface: a closed object.
static void test_closed_cpp(void)
{
        Pipe p(Pipe::PC_EnableCredentials | 0x40); // G-28: unknown bits ignored
        char buf[4];
        g_assert_cmpint(p.read(buf, 4), ==, -1);
        g_assert_true(p.error());
        p.close();
        g_assert_false(p.write_msg(PREFIX, 1, std::string("x")));
        g_assert_true(p.error());
        p.close();
        g_assert_cmpint(p.peek(buf, 4, 0), ==, -1);
        g_assert_false(p.error());
        g_assert_true(p.poll_in(-1));
        g_assert_true(p.error());
        g_assert_false(p.set_callback(item5_cb, 0));
        g_assert_cmpstr(p.remote_addr(), ==, "");
        g_assert_cmpint(p.getFD(), ==, -1);
        TCP t;
        g_assert_false(t.setKeepalive(1, 1));
        g_assert_false(t.connect("127.0.0.1:1", 1, 100)); // G-24: two ports
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/ipc-cpp/layout/vtable-order", test_vtable_order);
        g_test_add_func("/ipc-cpp/checklist/1-read-blocks-for-all-bytes", test_item1_read_semantics);
        g_test_add_func("/ipc-cpp/checklist/2-peek-then-read", test_item2_peek);
        g_test_add_func("/ipc-cpp/checklist/3-garbage-and-size-limit",
                        test_item3_garbage_and_size_limit);
        g_test_add_func("/ipc-cpp/checklist/4-empty-vector-frame", test_item4_empty_vector_frame);
        g_test_add_func("/ipc-cpp/checklist/5-callback-rearm", test_item5_callback_rearm);
        g_test_add_func("/ipc-cpp/checklist/6-addresses", test_item6_addresses);
        g_test_add_func("/ipc-cpp/accept-returns-listener-type", test_accept_types);
        g_test_add_func("/ipc-cpp/close-and-reconnect", test_close_and_reconnect);
        g_test_add_func("/ipc-cpp/closed-object", test_closed_cpp);
        g_test_add_func("/ipc-cpp/versions", test_versions);
        g_test_add_func("/ipc-cpp/demo/pipe-messages", test_demo_pipe_messages);
        g_test_add_func("/ipc-cpp/demo/pipe-stream", test_demo_pipe_stream);
        g_test_add_func("/ipc-cpp/demo/tcp-messages", test_demo_tcp_messages);
        g_test_add_func("/ipc-cpp/demo/tcp-stream", test_demo_tcp_stream);
        g_test_add_func("/ipc-cpp/demo/callback-server", test_demo_callback_server);
        g_test_add_func("/ipc-cpp/demo/callback-client", test_demo_callback_client);
        return g_test_run();
}
