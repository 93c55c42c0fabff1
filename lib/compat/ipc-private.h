// lib/compat/ipc-private.h — what is behind IPC::d (LAYOUT-1): the C stream and the registered
// callback. Shared by lib/compat/ipc.cpp and libvfiipctls (lib/tls/tls.cpp, which derives its
// TLSPrivate from it). Not installed.
#pragma once

#include <cstddef>
#include <new>

#include <ipc/ipc.h>

#include "vfiipc/stream.h"

namespace vfiipc {

struct CallbackBinding {
        ipcCallback cb;
        void *data;
        IPC *self;
};

class IPC::IpcPrivate {
    public:
        explicit IpcPrivate(vfiipc_stream_kind kind) : s(0), binding(0)
        {
                if (vfiipc_stream_new(kind, &s) < 0)
                        throw std::bad_alloc();
        }
        // Virtual: IPC::~IPC deletes a TLSPrivate through this type.
        virtual ~IpcPrivate()
        {
                vfiipc_stream_free(s);
                delete binding;
        }
        vfiipc_stream *s;
        CallbackBinding *binding; // the registered application callback, if any

    protected:
        IpcPrivate() : s(0), binding(0) // a subclass supplies s
        {
        }

    private:
        IpcPrivate(const IpcPrivate &);
        void operator=(const IpcPrivate &);
};

// The worker behind the public read_msg overloads receives the payload through this.
class IPC::IpcBuffer {
    public:
        IpcBuffer(int (*assign_fn)(void *, const void *, size_t), void *target)
                : assign(assign_fn), obj(target)
        {
        }
        int (*assign)(void *, const void *, size_t);
        void *obj;
};

} // namespace vfiipc
