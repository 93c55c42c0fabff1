// lib/compat/ipc.cpp — <ipc/ipc.h> on the C core <vfiipc/stream.h>: one vfiipc_stream per
// object behind `d` (LAYOUT-1), std::vector/std::string conversion, and the callback boundary
// (exceptions never cross into C). No stream logic here.
#include <cerrno>
#include <cstddef>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <ipc/ipc.h>

#include "compat/ipc-private.h"
#include "core/log.h"
#include "vfiipc/stream.h"

#include "config.h"

namespace {

template <class Container> int assign_to(void *obj, const void *payload, size_t size)
{
        typedef typename Container::value_type T;
        const T *p = static_cast<const T *>(payload);

        try {
                static_cast<Container *>(obj)->assign(p, p + size); // MSG-R-5: replaced
                return 0;
        } catch (...) {
                return -ENOMEM;
        }
}

struct SinkContext {
        int (*assign)(void *, const void *, size_t);
        void *obj;
        int msg_id;
};

int sink(void *ctx, int msg_id, const void *payload, size_t size)
{
        SinkContext *c = static_cast<SinkContext *>(ctx);
        int r = c->assign(c->obj, payload, size);

        if (r == 0)
                c->msg_id = msg_id;
        return r;
}

void invoke(void *data, vfiipc_stream *)
{
        // Copied before the call: the callback may replace or drop its own binding.
        vfiipc::CallbackBinding b = *static_cast<vfiipc::CallbackBinding *>(data);

        try {
                b.cb(b.data, b.self);
        } catch (const std::exception &e) {
                ipc_log(LOG_ERR, "data-available callback threw: %s", e.what());
        } catch (...) {
                ipc_log(LOG_ERR, "data-available callback threw an exception");
        }
}

} // namespace

namespace vfiipc {

IPC::IPC(IpcPrivate *_d) : d(_d)
{
}

IPC::~IPC()
{
        delete d; // OBJ-4, DTOR-1/2: closes; waits for a running callback (G-06)
}

bool IPC::eof()
{
        return vfiipc_stream_eof(d->s);
}

bool IPC::error()
{
        return vfiipc_stream_error(d->s);
}

void IPC::close()
{
        vfiipc_stream_close(d->s);
        delete d->binding;
        d->binding = 0;
}

bool IPC::write(const void *data, int size)
{
        return vfiipc_stream_write(d->s, data, size);
}

int IPC::read(void *data, int maxsize, int timeout_msec, int timeout_msec2)
{
        return vfiipc_stream_read(d->s, data, maxsize, timeout_msec, timeout_msec2);
}

int IPC::peek(void *data, int maxsize, int timeout_msec)
{
        return vfiipc_stream_peek(d->s, data, maxsize, timeout_msec);
}

bool IPC::write_msg(unsigned prefix, int msg_id, const void *msg, int size)
{
        return vfiipc_stream_write_msg(d->s, prefix, msg_id, msg, size);
}

bool IPC::read_msg(unsigned prefix, int &msg_id, IpcBuffer &msg, int size_limit,
                   int timeout_msec)
{
        SinkContext c = {msg.assign, msg.obj, 0};

        if (!vfiipc_stream_read_msg_cb(d->s, prefix, size_limit, timeout_msec, sink, &c))
                return false;
        msg_id = c.msg_id;
        return true;
}

bool IPC::read_msg(unsigned prefix, int &msg_id, std::vector<unsigned char> &msg,
                   int size_limit, int timeout_msec)
{
        IpcBuffer b(assign_to<std::vector<unsigned char> >, &msg);
        return read_msg(prefix, msg_id, b, size_limit, timeout_msec);
}

bool IPC::read_msg(unsigned prefix, int &msg_id, std::vector<char> &msg, int size_limit,
                   int timeout_msec)
{
        IpcBuffer b(assign_to<std::vector<char> >, &msg);
        return read_msg(prefix, msg_id, b, size_limit, timeout_msec);
}

bool IPC::read_msg(unsigned prefix, int &msg_id, std::string &msg, int size_limit,
                   int timeout_msec)
{
        IpcBuffer b(assign_to<std::string>, &msg);
        return read_msg(prefix, msg_id, b, size_limit, timeout_msec);
}

bool IPC::poll_in(int timeout_msec)
{
        return vfiipc_stream_poll_in(d->s, timeout_msec);
}

const char *IPC::remote_addr() const
{
        return vfiipc_stream_remote_addr(d->s);
}

const char *IPC::local_addr() const
{
        return vfiipc_stream_local_addr(d->s);
}

int IPC::getFD() const
{
        return vfiipc_stream_fd(d->s);
}

bool IPC::set_callback(ipcCallback cb, void *data)
{
        CallbackBinding *b;

        if (!cb) { // SETCB-2
                vfiipc_stream_set_callback(d->s, 0, 0);
                delete d->binding;
                d->binding = 0;
                return true;
        }
        b = new (std::nothrow) CallbackBinding;
        if (!b)
                return false;
        b->cb = cb;
        b->data = data;
        b->self = this;
        if (!vfiipc_stream_set_callback(d->s, invoke, b)) { // SETCB-3, SETCB-9
                delete b;
                return false;
        }
        delete d->binding; // replaced (G-23); its invocation has finished or copied it
        d->binding = b;
        return true;
}

void IPC::set_callback_stacksize(int size)
{
        vfiipc_stream_set_callback_stacksize(size);
}

const char *IPC::getVersion()
{
        return VFIIPC_VERSION; // G-18
}

const char *IPC::ipc_GetVersion()
{
        return VFIIPC_VERSION "-1"; // VER-2: <major>.<minor>.<patch>-<build>
}

bool IPC::is_server()
{
        return vfiipc_stream_is_server(d->s);
}

// ---- TCP ----

TCP::TCP() : IPC(new IpcPrivate(VFIIPC_STREAM_TCP))
{
}

TCP::~TCP()
{
        // Wait for a running callback while the object is still a complete TCP.
        vfiipc_stream_set_callback(d->s, 0, 0);
}

bool TCP::connect(const char *hostname, unsigned short port, int timeout_msec)
{
        IPC::close();
        return vfiipc_tcp_connect(d->s, hostname, port, timeout_msec);
}

bool TCP::listen(unsigned short port, const char *listen_address)
{
        IPC::close();
        return vfiipc_tcp_listen(d->s, port, listen_address);
}

IPC *TCP::accept(int timeout_msec)
{
        vfiipc_stream *c = 0;
        TCP *t;

        if (vfiipc_stream_accept(d->s, timeout_msec, &c) < 0)
                return 0;
        try {
                t = new TCP;
        } catch (...) {
                t = 0;
        }
        if (!t) {
                vfiipc_stream_free(c);
                return 0;
        }
        vfiipc_stream_free(t->d->s);
        t->d->s = c; // ACC-6: the listener's type, Connected, no callback
        return t;
}

void TCP::close()
{
        IPC::close();
}

bool TCP::setFD(int socket_fd)
{
        if (socket_fd >= 0 && socket_fd != getFD()) {
                // The stream closes the old socket itself; only the binding goes here.
                vfiipc_stream_set_callback(d->s, 0, 0);
                delete d->binding;
                d->binding = 0;
        }
        return vfiipc_tcp_setfd(d->s, socket_fd);
}

bool TCP::setKeepalive(int cnt, int interval)
{
        return vfiipc_tcp_set_keepalive(d->s, cnt, interval);
}

// ---- Pipe ----

Pipe::Pipe() : IPC(new IpcPrivate(VFIIPC_STREAM_PIPE))
{
}

Pipe::Pipe(int config) : IPC(new IpcPrivate(VFIIPC_STREAM_PIPE))
{
        (void)config; // PIPE-2, G-28: PC_EnableCredentials has no effect; unknown bits ignored
}

Pipe::~Pipe()
{
        vfiipc_stream_set_callback(d->s, 0, 0);
}

bool Pipe::connect(const char *pipe)
{
        IPC::close();
        return vfiipc_pipe_connect(d->s, pipe);
}

bool Pipe::listen(const char *pipe)
{
        IPC::close();
        return vfiipc_pipe_listen(d->s, pipe);
}

IPC *Pipe::accept(int timeout_msec)
{
        vfiipc_stream *c = 0;
        Pipe *p;

        if (vfiipc_stream_accept(d->s, timeout_msec, &c) < 0)
                return 0;
        try {
                p = new Pipe;
        } catch (...) {
                p = 0;
        }
        if (!p) {
                vfiipc_stream_free(c);
                return 0;
        }
        vfiipc_stream_free(p->d->s);
        p->d->s = c;
        return p;
}

void Pipe::close()
{
        IPC::close();
}

} // namespace vfiipc
