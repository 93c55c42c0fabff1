/* lib/compat/jsobject-json.h — JSObject <-> jansson json_t, for the C++ layer that hands
 * notification parameters to the C core. Internal: not exported from libvfiipc.
 *
 * Both directions walk the tree with a heap stack, not recursion (G-78), and share the
 * rules of JSObject::load()/dump():
 *   - json_t integers outside `long` become JSTFloat (JS-LAYOUT-4);
 *   - JSTFloat NaN/±inf become JSON null (G-40; jansson has no such reals);
 *   - strings and member names that are not valid UTF-8 get each ill-formed sequence
 *     replaced by U+FFFD, as dump() does, because jansson and D-Bus carry UTF-8 only.
 * For JSON *text* prefer JSObject::dump(): jansson's own encoder writes reals as %.17g
 * with ".0" appended (0.1 -> 0.10000000000000001, 42.0 -> 42.0), unlike G-40.
 * Any thread; no shared state (JS-THR-1). */
#pragma once

#include <jansson.h>

namespace vfiipc {
class JSObject;
}

/* Replace `out` by the value of j (NULL -> null). Never throws except std::bad_alloc, and
 * then `out` is unchanged. */
void jsobject_from_json(vfiipc::JSObject &out, const json_t *j);

/* New reference; NULL only on allocation failure (never throws). */
json_t *jsobject_to_json(const vfiipc::JSObject &o);
