// lib/tls/tls.cpp — <ipc/tls.h> on the C API <vfiipc/tls.h>: a TLSPrivate behind IPC::d holds
// the vfiipc_tls and exposes its stream as d->s, so the inherited IPC implementation does
// all stream and message I/O (TLS-IO-1). No TLS logic here.
#include <cstddef>
#include <new>
#include <string>

#include <ipc/tls.h>

#include "compat/ipc-private.h"
#include "vfiipc/tls.h"

namespace vfiipc {

class TLSPrivate : public TLS::IpcPrivate {
    public:
        explicit TLSPrivate(vfiipc_tls *tls) : t(tls)
        {
                s = vfiipc_tls_get_stream(t);
        }
        ~TLSPrivate()
        {
                s = 0; // owned by t
                vfiipc_tls_free(t);
        }
        // Takes over another vfiipc_tls (accept): the old one is freed.
        void adopt(vfiipc_tls *tls)
        {
                vfiipc_tls_free(t);
                t = tls;
                s = vfiipc_tls_get_stream(t);
        }
        static IpcPrivate *create()
        {
                vfiipc_tls *tls = 0;

                if (vfiipc_tls_new(&tls) < 0)
                        throw std::bad_alloc();
                try {
                        return new TLSPrivate(tls);
                } catch (...) {
                        vfiipc_tls_free(tls);
                        throw;
                }
        }
        static TLSPrivate *of(const TLS *o)
        {
                return static_cast<TLSPrivate *>(o->d);
        }
        static void drop_binding(TLS *o)
        {
                delete o->d->binding;
                o->d->binding = 0;
        }
        vfiipc_tls *t;
};

TLS::TLS() : IPC(TLSPrivate::create())
{
}

TLS::~TLS()
{
        // Wait for a running callback while the object is still a complete TLS.
        vfiipc_stream_set_callback(d->s, 0, 0);
}

void TLS::setLink(void *l)
{
        // TLS-P-1: implementation hook; here it takes over a connected vfiipc_tls.
        if (l) {
                vfiipc_stream_set_callback(d->s, 0, 0);
                TLSPrivate::drop_binding(this);
                TLSPrivate::of(this)->adopt(static_cast<vfiipc_tls *>(l));
        }
}

void TLS::getAddr(char *&remote, char *&local)
{
        remote = const_cast<char *>(vfiipc_stream_remote_addr(d->s));
        local = const_cast<char *>(vfiipc_stream_local_addr(d->s));
}

bool TLS::eof()
{
        return IPC::eof();
}

bool TLS::error()
{
        return IPC::error();
}

TLS::Error TLS::TLSError(std::string *err)
{
        char buf[1024];
        vfiipc_tls_error e = vfiipc_tls_get_error(TLSPrivate::of(this)->t, buf, sizeof(buf));

        if (err) {
                try {
                        err->assign(buf);
                } catch (...) {
                }
        }
        return static_cast<Error>(e);
}

void TLS::setKeyCert(const char *key, const char *cert)
{
        vfiipc_tls_set_key_cert(TLSPrivate::of(this)->t, key, cert);
}

void TLS::addCA(const char *filename, const char *path)
{
        vfiipc_tls_add_ca(TLSPrivate::of(this)->t, filename, path);
}

void TLS::setCA(const char *filename, const char *path)
{
        addCA(filename, path); // TLS-CA-3
}

void TLS::addDefaultCA()
{
        vfiipc_tls_add_default_ca(TLSPrivate::of(this)->t);
}

void TLS::setClientAuth(bool on)
{
        vfiipc_tls_set_client_auth(TLSPrivate::of(this)->t, on);
}

void TLS::setCheckConfig(unsigned check_flags)
{
        vfiipc_tls_set_check_config(TLSPrivate::of(this)->t, check_flags);
}

bool TLS::hasAuthEx()
{
        return vfiipc_tls_has_authex();
}

bool TLS::connect(const char *hostname, unsigned short port, int timeout_msec)
{
        IPC::close();
        return vfiipc_tls_connect(TLSPrivate::of(this)->t, hostname, port, timeout_msec);
}

bool TLS::listen(unsigned short port, const char *listen_address)
{
        IPC::close();
        return vfiipc_tls_listen(TLSPrivate::of(this)->t, port, listen_address);
}

IPC *TLS::accept(int timeout_msec)
{
        vfiipc_tls *c = 0;
        TLS *o;

        if (vfiipc_tls_accept(TLSPrivate::of(this)->t, timeout_msec, &c) < 0)
                return 0; // TLS-A-2: the reason is in this object's TLSError()
        try {
                o = new TLS;
        } catch (...) {
                o = 0;
        }
        if (!o) {
                vfiipc_tls_free(c);
                return 0;
        }
        TLSPrivate::of(o)->adopt(c); // ACC-6: a TLS, Connected, no callback
        return o;
}

void TLS::close()
{
        IPC::close(); // TLS-X-1: close-notify, then the socket
}

bool TLS::write(const void *data, int size)
{
        return IPC::write(data, size);
}

int TLS::read(void *data, int maxsize, int timeout_msec, int timeout_msec2)
{
        return IPC::read(data, maxsize, timeout_msec, timeout_msec2);
}

bool TLS::write_msg(unsigned prefix, int msg_id, const void *msg, int size)
{
        return IPC::write_msg(prefix, msg_id, msg, size);
}

bool TLS::read_msg(unsigned prefix, int &msg_id, std::vector<unsigned char> &msg,
                   int size_limit, int timeout_msec)
{
        return IPC::read_msg(prefix, msg_id, msg, size_limit, timeout_msec);
}

bool TLS::read_msg(unsigned prefix, int &msg_id, std::vector<char> &msg, int size_limit,
                   int timeout_msec)
{
        return IPC::read_msg(prefix, msg_id, msg, size_limit, timeout_msec);
}

bool TLS::read_msg(unsigned prefix, int &msg_id, IPC::IpcBuffer &msg, int size_limit,
                   int timeout_msec)
{
        return IPC::read_msg(prefix, msg_id, msg, size_limit, timeout_msec);
}

bool TLS::read_msg(unsigned prefix, int &msg_id, std::string &msg, int size_limit,
                   int timeout_msec)
{
        return IPC::read_msg(prefix, msg_id, msg, size_limit, timeout_msec);
}

bool TLS::poll_in(int timeout_msec)
{
        return IPC::poll_in(timeout_msec);
}

const char *TLS::remote_addr() const
{
        return IPC::remote_addr();
}

const char *TLS::local_addr() const
{
        return IPC::local_addr();
}

int TLS::getFD() const
{
        return IPC::getFD(); // G-36: the listening descriptor, -1 otherwise (the stream's rule)
}

bool TLS::set_callback(ipcCallback cb, void *data)
{
        return IPC::set_callback(cb, data);
}

bool TLS::is_server()
{
        return IPC::is_server();
}

} // namespace vfiipc
