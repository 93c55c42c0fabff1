/* tests/fuzz-jsobject.cpp — libFuzzer target for JSObject::load() and the writers behind it
 * (lib/compat/jsobject.cpp): dump(), prettyDump(), logdump() and the json_t bridge the C++ API
 * hands parameters through. Built with -Dfuzz=true (see tests/meson.build); seeds in
 * tests/corpus/jsobject/. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <string>

#include <ipc/jsobject.h>

#include "compat/jsobject-json.h"

using vfiipc::JSObject;

static bool hide_b(const std::string &key)
{
        return !key.empty() && key[0] == 'b';
}

/* text must load, and its dump() must be d. */
static void expect_dump(const std::string &text, const std::string &d)
{
        JSObject o;

        if (!o.load(text) || o.dump() != d)
                __builtin_trap();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        std::string text(reinterpret_cast<const char *>(data), size);
        JSObject o;

        if (!o.load(text)) {
                /* G-44: a failed load leaves null; with a NUL byte, load() reports the shorter
                 * length of the text before it (JS-LOAD-3), whatever that held. */
                if (!memchr(data, 0, size) && !o.isNull())
                        __builtin_trap();
                return 0;
        }

        /* dump -> load -> dump is stable, and the other writers write the same value. */
        std::string d = o.dump(), pretty, hidden;
        expect_dump(d, d);
        o.prettyDump(pretty);
        expect_dump(pretty, d);
        hidden = o.logdump(hide_b);
        JSObject h;
        if (!h.load(hidden))
                __builtin_trap();

        /* The bridge to the C core carries the same value. */
        json_t *j = jsobject_to_json(o);
        if (!j)
                __builtin_trap();
        JSObject back;
        jsobject_from_json(back, j);
        json_decref(j);
        if (back.dump() != d)
                __builtin_trap();
        return 0;
}
