/* lib/compat/jsobject.cpp — JSObject's out-of-line members (legacy-api.md §5) and the
 * JSObject <-> json_t bridge of jsobject-json.h.
 *
 * Reading JSON text is jansson's job (json_loadb); a light pre-scan in front of it only
 * enforces our depth limit and keeps oversized integers loadable (see prescan()).
 * Writing JSON text is done here, by a small serializer: jansson's encoder writes every
 * real as "%.17g" plus a forced ".0" (42.0 -> "42.0", 0.1 -> "0.10000000000000001"),
 * while JS-DUMP-4/G-40 ask for the shortest round-trip form without ".0"; it fails on
 * strings that are not valid UTF-8, which std::string values may well be; and it recurses
 * per nesting level with a large frame (about 300 bytes a level measured with 2.14), where
 * trees built through operator() have no depth bound at all (G-78). The serializer is
 * iterative and follows G-41 to the letter (lowercase \u00xx, no \b/\f short forms).
 *
 * Everything that looks at a value consults v_type first: binaries built against the
 * legacy header leave stale containers behind scalar assignments (JS-ASSIGN-7, G-52). */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <vector>

#include <jansson.h>

#include <ipc/jsobject.h>

#include "compat/jsobject-json.h"
#include "config.h"

using vfiipc::JSObject;

/* G-46: deepest nesting of arrays/objects load() accepts (at least 64 guaranteed). */
#define JSOBJECT_MAX_DEPTH 512u

/* prescan() compares integer literals with json_int_t's range as text. */
static_assert(sizeof(json_int_t) == 8, "jansson must use 64-bit integers");

namespace {

/* The bridge functions and helpers below are not members (the legacy class declaration
 * stays exactly as it is), so they reach the protected fields through pointers to members
 * formed in a derived class, the one route C++ offers without friends. */
struct Fields : JSObject {
        typedef std::map<std::string, JSObject> Map;
        typedef std::vector<JSObject> Vec;

        static JSType &type(JSObject &o)
        {
                return o.*(&Fields::v_type);
        }
        static JSType type(const JSObject &o)
        {
                return o.*(&Fields::v_type);
        }
        static bool &boolean(JSObject &o)
        {
                return o.*(&Fields::v_bool);
        }
        static bool boolean(const JSObject &o)
        {
                return o.*(&Fields::v_bool);
        }
        static std::string &str(JSObject &o)
        {
                return o.*(&Fields::v_string);
        }
        static const std::string &str(const JSObject &o)
        {
                return o.*(&Fields::v_string);
        }
        static double &real(JSObject &o)
        {
                return o.*(&Fields::v_floatnum);
        }
        static double real(const JSObject &o)
        {
                return o.*(&Fields::v_floatnum);
        }
        static long &integer(JSObject &o)
        {
                return o.*(&Fields::v_intnum);
        }
        static long integer(const JSObject &o)
        {
                return o.*(&Fields::v_intnum);
        }
        static Map &object(JSObject &o)
        {
                return o.*(&Fields::v_object);
        }
        static const Map &object(const JSObject &o)
        {
                return o.*(&Fields::v_object);
        }
        static Vec &array(JSObject &o)
        {
                return o.*(&Fields::v_array);
        }
        static const Vec &array(const JSObject &o)
        {
                return o.*(&Fields::v_array);
        }
};

typedef Fields F;

/* Owns one jansson reference; frees it on every path, exceptions included. */
class JsonRef {
public:
        explicit JsonRef(json_t *j) : j_(j)
        {
        }
        ~JsonRef()
        {
                json_decref(j_);
        }
        json_t *get() const
        {
                return j_;
        }
        json_t *release()
        {
                json_t *j = j_;
                j_ = NULL;
                return j;
        }

private:
        JsonRef(const JsonRef &);
        JsonRef &operator=(const JsonRef &);
        json_t *j_;
};

/* ---- numbers and the C locale --------------------------------------------------------------- */

/* G-40/G-48: number text is C-locale text whatever the process locale says (no "42,5").
 * Created once; NULL only if newlocale() failed, and then the process locale is used. */
locale_t c_locale()
{
        static locale_t loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        return loc;
}

/* Switches the calling thread to the C locale for snprintf/strtod, and back. */
class CLocaleScope {
public:
        CLocaleScope() : old_(c_locale() ? uselocale(c_locale()) : (locale_t)0)
        {
        }
        ~CLocaleScope()
        {
                if (old_)
                        uselocale(old_);
        }

private:
        CLocaleScope(const CLocaleScope &);
        CLocaleScope &operator=(const CLocaleScope &);
        locale_t old_;
};

double strtod_c(const char *s, char **end)
{
        if (c_locale())
                return strtod_l(s, end, c_locale());
        return strtod(s, end);
}

long long strtoll_c(const char *s, char **end)
{
        if (c_locale())
                return strtoll_l(s, end, 10, c_locale());
        return strtoll(s, end, 10);
}

/* JS-DUMP-4, G-40: NaN/±inf -> null; integral values below 2^63 as exact integers (so
 * 42.0 -> "42", which reloads as JSTInt with the same value); all others with the fewest
 * significant digits that read back to the identical double, in fixed or exponent form
 * like std::to_chars (whichever is shorter, fixed on a tie: 0.1, 1e+21, 1.5e-07) — except
 * that from 2^63 on the exponent form is always used: std::to_chars would write 2^63 as
 * "9223372036854776000", an integer literal that jansson (our C core, many peers) refuses
 * as "too big integer", while "9.223372036854776e+18" is read as a real everywhere. */
void put_double(std::string &out, double v)
{
        char buf[40];
        std::string fixed, sci;
        char digits[24];
        int nd = 0, exp10, p;
        double a = std::fabs(v);

        if (!std::isfinite(v)) {
                out += "null";
                return;
        }
        if (a < 9223372036854775808.0 && v == std::trunc(v)) {
                /* "-0" would reload as the integer 0; "-0.0" keeps the sign and reloads
                 * as the same double, so dump -> load -> dump stays stable. */
                if (v == 0.0 && std::signbit(v)) {
                        out += "-0.0";
                        return;
                }
                /* "%.0f" has no radix character, so the locale cannot show here. */
                snprintf(buf, sizeof(buf), "%.0f", v);
                out += buf;
                return;
        }

        {
                CLocaleScope c;

                for (p = 1; p < 17; p++) {
                        snprintf(buf, sizeof(buf), "%.*e", p - 1, a);
                        if (strtod(buf, NULL) == a)
                                break;
                }
                if (p == 17)
                        snprintf(buf, sizeof(buf), "%.16e", a);
        }

        /* buf is "d[.ddd]e±XX"; take the digits and the decimal exponent apart. */
        const char *q = buf;
        for (; *q && *q != 'e'; q++)
                if (*q >= '0' && *q <= '9' && nd < (int)sizeof(digits))
                        digits[nd++] = *q;
        exp10 = *q ? atoi(q + 1) : 0;
        while (nd > 1 && digits[nd - 1] == '0')
                nd--;

        sci.assign(digits, 1);
        if (nd > 1) {
                sci += '.';
                sci.append(digits + 1, nd - 1);
        }
        snprintf(buf, sizeof(buf), "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        sci += buf;

        if (exp10 >= 0) {
                if (nd <= exp10 + 1) {
                        fixed.assign(digits, nd);
                        fixed.append(exp10 + 1 - nd, '0');
                } else {
                        fixed.assign(digits, exp10 + 1);
                        fixed += '.';
                        fixed.append(digits + exp10 + 1, nd - exp10 - 1);
                }
        } else {
                fixed = "0.";
                fixed.append(-exp10 - 1, '0');
                fixed.append(digits, nd);
        }

        if (v < 0)
                out += '-';
        out += fixed.size() <= sci.size() && a < 9223372036854775808.0 ? fixed : sci;
}

void put_long(std::string &out, long v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%ld", v);
        out += buf;
}

/* ---- UTF-8 and string escaping -------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p[0..n) (Unicode table 3-7), or 0 if it is
 * ill-formed; then *bad is the length of its maximal ill-formed subpart, which becomes one
 * U+FFFD (the Unicode "best practice", so a truncated sequence costs one replacement). */
size_t utf8_sequence(const unsigned char *p, size_t n, size_t *bad)
{
        unsigned char c = p[0], lo = 0x80, hi = 0xBF;
        size_t need;

        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                need = 1;
        else if (c == 0xE0) {
                need = 2;
                lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
                need = 2;
        else if (c == 0xED) {
                need = 2;
                hi = 0x9F; /* no UTF-16 surrogates */
        } else if (c == 0xF0) {
                need = 3;
                lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3)
                need = 3;
        else if (c == 0xF4) {
                need = 3;
                hi = 0x8F; /* nothing above U+10FFFF */
        } else {
                *bad = 1;
                return 0;
        }
        for (size_t i = 1; i <= need; i++) {
                if (i >= n || p[i] < lo || p[i] > hi) {
                        *bad = i;
                        return 0;
                }
                lo = 0x80;
                hi = 0xBF;
        }
        return need + 1;
}

bool utf8_valid(const std::string &s)
{
        const unsigned char *p = (const unsigned char *)s.data();
        size_t n = s.size(), i = 0, bad;

        while (i < n) {
                size_t len = utf8_sequence(p + i, n - i, &bad);
                if (!len)
                        return false;
                i += len;
        }
        return true;
}

#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* A copy of s with each ill-formed UTF-8 sequence replaced by U+FFFD. */
std::string utf8_sanitized(const std::string &s)
{
        const unsigned char *p = (const unsigned char *)s.data();
        size_t n = s.size(), i = 0, bad;
        std::string r;

        r.reserve(n + 8);
        while (i < n) {
                size_t len = utf8_sequence(p + i, n - i, &bad);
                if (len) {
                        r.append((const char *)p + i, len);
                        i += len;
                } else {
                        r += UTF8_REPLACEMENT;
                        i += bad;
                }
        }
        return r;
}

/* A JSON string literal. JS-DUMP-3: " \ LF CR TAB as \" \\ \n \r \t, NUL as \u0000.
 * G-41: every other byte below 0x20 as \u00xx in lowercase; '/' and DEL unescaped; UTF-8
 * copied unchanged. Deviation from G-41's byte transparency: an ill-formed UTF-8 sequence
 * is written as U+FFFD, because dump() text travels as a D-Bus string (UTF-8 only) and
 * jansson, our reader, refuses such bytes, so load(dump()) could never succeed anyway. */
void put_string(std::string &out, const std::string &s)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s.data();
        size_t n = s.size(), i = 0, bad;

        out += '"';
        while (i < n) {
                unsigned char c = p[i];

                if (c >= 0x20 && c != '"' && c != '\\') {
                        size_t j = i;
                        /* the common case: a run of printable ASCII */
                        while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\')
                                j++;
                        if (j > i) {
                                out.append((const char *)p + i, j - i);
                                i = j;
                                continue;
                        }
                        size_t len = utf8_sequence(p + i, n - i, &bad);
                        if (len) {
                                out.append((const char *)p + i, len);
                                i += len;
                        } else {
                                out += UTF8_REPLACEMENT;
                                i += bad;
                        }
                        continue;
                }
                switch (c) {
                case '"':
                        out += "\\\"";
                        break;
                case '\\':
                        out += "\\\\";
                        break;
                case '\n':
                        out += "\\n";
                        break;
                case '\r':
                        out += "\\r";
                        break;
                case '\t':
                        out += "\\t";
                        break;
                default:
                        out += "\\u00";
                        out += hex[c >> 4];
                        out += hex[c & 0xF];
                        break;
                }
                i++;
        }
        out += '"';
}

/* ---- the serializer ------------------------------------------------------------------------- */

bool is_filled_container(const JSObject &o)
{
        switch (F::type(o)) {
        case JSObject::JSTObject:
                return !F::object(o).empty();
        case JSObject::JSTArray:
                return !F::array(o).empty();
        default:
                return false;
        }
}

/* Everything but a non-empty container. JS-DUMP-5: null/true/false; unknown type values
 * (memory not written by this class) as null rather than garbage. */
void put_scalar(std::string &out, const JSObject &o)
{
        switch (F::type(o)) {
        case JSObject::JSTBool:
                out += F::boolean(o) ? "true" : "false";
                break;
        case JSObject::JSTString:
                put_string(out, F::str(o));
                break;
        case JSObject::JSTInt:
                put_long(out, F::integer(o));
                break;
        case JSObject::JSTFloat:
                put_double(out, F::real(o));
                break;
        case JSObject::JSTObject:
                out += "{}";
                break;
        case JSObject::JSTArray:
                out += "[]";
                break;
        case JSObject::JSTNull:
        default:
                out += "null";
                break;
        }
}

void put_newline(std::string &out, size_t indent)
{
        out += '\n';
        out.append(indent, ' ');
}

/* Appends root as JSON text: compact (JS-DUMP-2) when indent < 0, else pretty-printed with
 * two spaces per level starting at `indent` spaces (JS-PRETTY-2, G-54). filter_cb as in
 * logdump() (JS-LOG-1, JS-LOG-3, G-53). Walks with a heap stack: no recursion (G-78). */
void write_json(std::string &out, const JSObject &root, bool (*filter_cb)(const std::string &key),
                int indent)
{
        struct Frame {
                const JSObject *o;
                F::Map::const_iterator it; /* next member, objects only */
                size_t done;               /* members/elements written so far */
        };
        const bool pretty = indent >= 0;
        const size_t base = pretty ? (size_t)indent : 0;
        std::vector<Frame> stack;
        const JSObject *next = &root;

        for (;;) {
                if (next) {
                        if (!is_filled_container(*next)) {
                                put_scalar(out, *next);
                        } else {
                                bool obj = F::type(*next) == JSObject::JSTObject;
                                Frame f = {next, F::object(*next).begin(), 0};
                                out += obj ? '{' : '[';
                                stack.push_back(f);
                        }
                        next = NULL;
                }
                if (stack.empty())
                        break;

                Frame &f = stack.back();
                bool obj = F::type(*f.o) == JSObject::JSTObject;
                size_t total = obj ? F::object(*f.o).size() : F::array(*f.o).size();

                if (f.done == total) {
                        stack.pop_back();
                        if (pretty)
                                put_newline(out, base + 2 * stack.size());
                        out += obj ? '}' : ']';
                        continue;
                }
                if (f.done > 0)
                        out += ',';
                if (pretty)
                        put_newline(out, base + 2 * stack.size());
                f.done++;
                if (!obj) {
                        next = &F::array(*f.o)[f.done - 1];
                        continue;
                }
                const std::string &name = f.it->first;
                const JSObject &value = f.it->second;
                ++f.it;
                put_string(out, name);
                out += pretty ? ": " : ":";
                /* G-53: a string, so the line stays JSON; the hidden content is not
                 * visited, so the filter never sees names below it. */
                if (filter_cb && filter_cb(name))
                        out += "\"<<HIDDEN>>\"";
                else
                        next = &value;
        }
}

/* ---- parsing -------------------------------------------------------------------------------- */

/* True if the integer literal p[0..n) ("-"? digits) lies outside json_int_t. */
bool int_literal_too_big(const char *p, size_t n)
{
        bool neg = p[0] == '-';

        if (neg) {
                p++;
                n--;
        }
        if (n != 19)
                return n > 19;
        return memcmp(p, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* One pass over the text before jansson sees it, for two things jansson does differently:
 *  - G-46: jansson recurses once per nesting level (about 90 bytes of stack a level) and
 *    allows 2048 levels; we refuse more than maxdepth before any recursion (G-78).
 *  - G-43: jansson refuses integer literals outside json_int_t ("too big integer"), while
 *    they must load as JSTFloat; such literals get ".0" appended in a private copy, so
 *    jansson reads them as reals.
 * Not a parser: it tracks string boundaries, brackets and integer literals only, and all
 * syntax checking stays with jansson (a rewrite never turns invalid text into valid text:
 * it only touches complete digit runs that jansson then still checks).
 * Returns -1 if too deep, 1 if *fixed holds the rewritten text, 0 to use s as it is. */
int prescan(const char *s, size_t len, unsigned maxdepth, std::string *fixed)
{
        unsigned depth = 0;
        size_t copied = 0, i = 0;

        while (i < len) {
                char c = s[i];

                if (c == '"') {
                        for (i++; i < len && s[i] != '"'; i++)
                                if (s[i] == '\\')
                                        i++;
                        i++;
                } else if (c == '[' || c == '{') {
                        if (++depth > maxdepth)
                                return -1;
                        i++;
                } else if (c == ']' || c == '}') {
                        if (depth > 0)
                                depth--;
                        i++;
                } else if (c == '-' || is_digit(c)) {
                        size_t start = i, first_digit;

                        if (c == '-')
                                i++;
                        first_digit = i;
                        while (i < len && is_digit(s[i]))
                                i++;
                        if (i < len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) {
                                /* a real already; skip the rest of the number */
                                while (i < len &&
                                       (is_digit(s[i]) || (s[i] && strchr(".eE+-", s[i]))))
                                        i++;
                                continue;
                        }
                        if (i > first_digit && int_literal_too_big(s + start, i - start)) {
                                fixed->append(s + copied, i - copied);
                                fixed->append(".0");
                                copied = i;
                        }
                } else {
                        i++;
                }
        }
        if (copied == 0)
                return 0;
        fixed->append(s + copied, len - copied);
        return 1;
}

/* json_t -> JSObject into a fresh value, with a heap stack instead of recursion. */
void convert_from_json(JSObject &out, const json_t *root)
{
        struct Item {
                const json_t *j;
                JSObject *dst;
        };
        std::vector<Item> todo;
        Item first = {root, &out};

        todo.push_back(first);
        while (!todo.empty()) {
                Item it = todo.back();
                JSObject &d = *it.dst;
                json_t *j = (json_t *)it.j; /* jansson's iterators take non-const */

                todo.pop_back();
                switch (j ? json_typeof(j) : JSON_NULL) {
                case JSON_OBJECT: {
                        F::Map &m = F::object(d);
                        F::type(d) = JSObject::JSTObject;
                        for (void *i = json_object_iter(j); i; i = json_object_iter_next(j, i)) {
                                /* std::map nodes never move, so &member stays valid */
                                JSObject &member = m[std::string(json_object_iter_key(i),
                                                                 json_object_iter_key_len(i))];
                                Item child = {json_object_iter_value(i), &member};
                                todo.push_back(child);
                        }
                        break;
                }
                case JSON_ARRAY: {
                        F::Vec &v = F::array(d);
                        size_t n = json_array_size(j);
                        F::type(d) = JSObject::JSTArray;
                        v.resize(n); /* the only resize: element addresses stay valid */
                        for (size_t i = 0; i < n; i++) {
                                Item child = {json_array_get(j, i), &v[i]};
                                todo.push_back(child);
                        }
                        break;
                }
                case JSON_STRING:
                        F::str(d).assign(json_string_value(j), json_string_length(j));
                        F::type(d) = JSObject::JSTString;
                        break;
                case JSON_INTEGER: {
                        json_int_t v = json_integer_value(j);
                        /* JS-LAYOUT-4: beyond long (ILP32) -> JSTFloat, like operator= */
                        if (v > LONG_MAX || v < LONG_MIN) {
                                F::real(d) = (double)v;
                                F::type(d) = JSObject::JSTFloat;
                        } else {
                                F::integer(d) = (long)v;
                                F::type(d) = JSObject::JSTInt;
                        }
                        break;
                }
                case JSON_REAL:
                        F::real(d) = json_real_value(j);
                        F::type(d) = JSObject::JSTFloat;
                        break;
                case JSON_TRUE:
                case JSON_FALSE:
                        F::boolean(d) = json_is_true(j);
                        F::type(d) = JSObject::JSTBool;
                        break;
                case JSON_NULL:
                default:
                        F::type(d) = JSObject::JSTNull;
                        break;
                }
        }
}

/* Parses s[0..len) into out (a fresh null value). 0 on success, -1 on invalid or too deeply
 * nested text; throws std::bad_alloc when jansson or we run out of memory. */
int parse_text(JSObject &out, const char *s, size_t len, unsigned maxdepth)
{
        std::string fixed;
        json_error_t err;
        int r;

        r = prescan(s, len, maxdepth, &fixed);
        if (r < 0)
                return -1;
        if (r > 0) {
                s = fixed.data();
                len = fixed.size();
        }
        /* JS-LOAD-6, G-42: any top-level value, JSON whitespace around it, nothing else;
         * JS-LOAD-7, G-55: \uXXXX to UTF-8 incl. surrogate pairs, \u0000 kept as a byte.
         * G-45: jansson keeps the last of duplicate names. */
        JsonRef j(json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err));
        if (!j.get()) {
                if (json_error_code(&err) == json_error_out_of_memory)
                        throw std::bad_alloc();
                return -1;
        }
        convert_from_json(out, j.get());
        return 0;
}

/* ---- reading values (§5.5, G-47…G-49) ------------------------------------------------------- */

/* G-48: float -> integer truncated toward zero, saturated to I, NaN -> 0 (no UB casts). */
template <typename I> I saturate(double v)
{
        /* -(min) is 2^31 or 2^63 exactly; max itself would round up as a double */
        const double lim = -(double)std::numeric_limits<I>::min();

        if (v != v)
                return 0;
        if (v >= lim)
                return std::numeric_limits<I>::max();
        if (v < -lim)
                return std::numeric_limits<I>::min();
        return (I)v;
}

/* G-48: the longest leading C-locale number (leading blanks allowed), 0.0 if none. */
double string_number(const std::string &s)
{
        return strtod_c(s.c_str(), NULL);
}

/* G-48: a leading decimal integer converted exactly (saturating); when the text goes on
 * like a real ("1.5", "1e3", "0x10") or has no integer, the getNumber() value truncated. */
template <typename I> I string_integer(const std::string &s)
{
        const char *p = s.c_str();
        char *end;
        long long v = strtoll_c(p, &end);

        if (end != p && *end != '.' && *end != 'e' && *end != 'E' && *end != 'x' &&
            *end != 'X') {
                if (v > std::numeric_limits<I>::max())
                        return std::numeric_limits<I>::max();
                if (v < std::numeric_limits<I>::min())
                        return std::numeric_limits<I>::min();
                return (I)v;
        }
        return saturate<I>(string_number(s));
}

template <typename I> I integer_value(const JSObject &o)
{
        switch (F::type(o)) {
        case JSObject::JSTBool:
                return F::boolean(o) ? 1 : 0;
        case JSObject::JSTString:
                return string_integer<I>(F::str(o));
        case JSObject::JSTInt:
                return F::integer(o);
        case JSObject::JSTFloat:
                return saturate<I>(F::real(o));
        default:
                return 0;
        }
}

bool is_json_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* G-49: "true", or the whole string (blanks around allowed) is a non-zero number. */
bool string_bool(const std::string &s)
{
        const char *p = s.c_str();
        char *end;
        double v;

        if (s == "true")
                return true;
        v = strtod_c(p, &end);
        if (end == p)
                return false;
        while (is_json_space(*end))
                end++;
        return (size_t)(end - p) == s.size() && v != 0.0;
}

/* G-51: what non-const lookups that cannot name an element hand out instead of NullObject,
 * so that writes through them stay local; reset on every hand-out, one per thread
 * (JS-THR-1). */
JSObject &scratch_value()
{
        static thread_local JSObject scratch;

        scratch.clear();
        return scratch;
}

} // namespace

namespace vfiipc {

/* JS-LAYOUT-3. Constructed before ordinary static constructors of other translation units,
 * so their const lookups already find a proper null value. */
#if defined __GNUC__
__attribute__((init_priority(200)))
#endif
JSObject JSObject::NullObject;

/* ---- parsing (§5.9) ------------------------------------------------------------------------- */

int JSObject::parse(const char *s)
{
        return parse(s, 0);
}

/* nestinglevel: how many levels of nesting surround the text already; they count against
 * the limit of G-46. Returns strlen(s) on success: leading and trailing JSON whitespace is
 * consumed (G-42), and text after the value fails the whole parse rather than returning a
 * shorter count, so that a failed load() leaves the value null (G-44) even though the
 * inline load() cannot clean up after us. */
int JSObject::parse(const char *s, unsigned nestinglevel)
{
        JSObject tmp;
        size_t len;

        /* s may point into this very value (its own string, a member's string): read it
         * completely before this value changes. */
        if (!s || nestinglevel > JSOBJECT_MAX_DEPTH || (len = strlen(s)) > (size_t)INT_MAX ||
            parse_text(tmp, s, len, JSOBJECT_MAX_DEPTH - nestinglevel) < 0) {
                clear(); /* G-44 */
                return -1;
        }
        swap(tmp); /* JS-LOAD-5: replaces the old content */
        return (int)len;
}

/* ---- reading values (§5.5) ------------------------------------------------------------------ */

/* G-47 */
std::string JSObject::getString() const
{
        std::string s;

        switch (v_type) {
        case JSTBool:
                return v_bool ? "true" : "false";
        case JSTString:
                return v_string;
        case JSTInt:
                put_long(s, v_intnum);
                return s;
        case JSTFloat:
                put_double(s, v_floatnum); /* the dump() text, "null" for NaN/inf */
                return s;
        default:
                return s;
        }
}

/* JS-GET-3 */
const std::string *JSObject::getStringP() const
{
        return v_type == JSTString ? &v_string : NULL;
}

std::string *JSObject::getStringP()
{
        return v_type == JSTString ? &v_string : NULL;
}

/* G-48 */
double JSObject::getNumber() const
{
        switch (v_type) {
        case JSTBool:
                return v_bool ? 1.0 : 0.0;
        case JSTString:
                return string_number(v_string);
        case JSTInt:
                return (double)v_intnum;
        case JSTFloat:
                return v_floatnum;
        default:
                return 0.0;
        }
}

long JSObject::getInt() const
{
        return integer_value<long>(*this);
}

long long JSObject::getInt64() const
{
        return integer_value<long long>(*this);
}

/* G-49 */
bool JSObject::getBool() const
{
        switch (v_type) {
        case JSTBool:
                return v_bool;
        case JSTString:
                return string_bool(v_string);
        case JSTInt:
                return v_intnum != 0;
        case JSTFloat:
                return v_floatnum != 0.0;
        default:
                return false;
        }
}

/* ---- objects (§5.6) ------------------------------------------------------------------------- */

/* JS-OBJ-4, G-50. A NULL name names no member. */
bool JSObject::exists(const char *elem) const
{
        return elem && v_type == JSTObject && v_object.count(elem) != 0;
}

bool JSObject::exists(const std::string &elem) const
{
        return v_type == JSTObject && v_object.count(elem) != 0;
}

/* JS-OBJ-5, G-50 */
void JSObject::erase(const char *elem)
{
        if (elem && v_type == JSTObject)
                v_object.erase(elem);
}

void JSObject::erase(const std::string &elem)
{
        if (v_type == JSTObject)
                v_object.erase(elem);
}

/* JS-OBJ-1, JS-OBJ-3, G-50: a missing member is created as null; a non-object (stale
 * containers included) first becomes an empty object. A NULL name cannot be created: like
 * a negative index it gets the per-thread scratch value (G-51). */
JSObject &JSObject::operator()(const char *elem)
{
        if (!elem)
                return scratch_value();
        return (*this)(std::string(elem));
}

JSObject &JSObject::operator()(const std::string &elem)
{
        if (v_type != JSTObject) {
                clear();
                v_type = JSTObject;
        }
        return v_object[elem];
}

/* JS-OBJ-2, G-50: never modifies; NullObject for anything missing. */
const JSObject &JSObject::operator()(const char *elem) const
{
        if (!elem)
                return NullObject;
        return (*this)(std::string(elem));
}

const JSObject &JSObject::operator()(const std::string &elem) const
{
        if (v_type != JSTObject)
                return NullObject;
        std::map<std::string, JSObject>::const_iterator it = v_object.find(elem);
        return it == v_object.end() ? NullObject : it->second;
}

/* ---- arrays (§5.7) -------------------------------------------------------------------------- */

/* JS-ARR-1, G-50; JS-ARR-2 with G-51: a negative index gets the per-thread scratch value,
 * never the shared NullObject, so writing through it cannot change later lookups. */
JSObject &JSObject::operator[](int idx)
{
        if (idx < 0)
                return scratch_value();
        if (v_type != JSTArray) {
                clear();
                v_type = JSTArray;
        }
        if ((size_t)idx >= v_array.size())
                v_array.resize((size_t)idx + 1);
        return v_array[idx];
}

/* JS-ARR-3 */
const JSObject &JSObject::operator[](int idx) const
{
        if (v_type != JSTArray || idx < 0 || (size_t)idx >= v_array.size())
                return NullObject;
        return v_array[idx];
}

/* JS-ARR-5 */
void JSObject::resize(unsigned new_size)
{
        if (v_type != JSTArray) {
                clear();
                v_type = JSTArray;
        }
        v_array.resize(new_size);
}

/* ---- serialisation (§5.10) ------------------------------------------------------------------ */

void JSObject::dump(std::string &s, bool (*filter_cb)(const std::string &key)) const
{
        write_json(s, *this, filter_cb, -1);
}

/* JS-DUMP-1: appends */
void JSObject::dump(std::string &s) const
{
        dump(s, NULL);
}

std::string JSObject::dump() const
{
        std::string s;

        dump(s, NULL);
        return s;
}

/* JS-LOG-1, JS-LOG-3: a NULL filter is plain dump() */
std::string JSObject::logdump(bool (*filter_cb)(const std::string &key)) const
{
        std::string s;

        dump(s, filter_cb);
        return s;
}

/* indent: the indentation in spaces of the line this value starts on (that line's own
 * indentation is the caller's); members go two spaces deeper, the closing bracket at indent. */
void JSObject::prettyDump(std::string &out, int indent) const
{
        write_json(out, *this, NULL, indent < 0 ? 0 : indent);
}

/* JS-PRETTY-1, G-54: ends with a newline */
void JSObject::prettyDump(std::string &s) const
{
        prettyDump(s, 0);
        s += '\n';
}

/* ---- miscellaneous (§5.3, §5.11) ------------------------------------------------------------ */

void JSObject::swap(JSObject &o)
{
        JSType t = v_type;
        bool b = v_bool;
        double d = v_floatnum;
        long l = v_intnum;

        v_type = o.v_type;
        o.v_type = t;
        v_bool = o.v_bool;
        o.v_bool = b;
        v_floatnum = o.v_floatnum;
        o.v_floatnum = d;
        v_intnum = o.v_intnum;
        o.v_intnum = l;
        v_string.swap(o.v_string);
        v_object.swap(o.v_object);
        v_array.swap(o.v_array);
}

/* JS-VER-1 */
const char *JSObject::getVersion()
{
        return "vfiipc JSObject " VFIIPC_VERSION " (jansson " JANSSON_VERSION ")";
}

} // namespace vfiipc

/* ---- the json_t bridge (jsobject-json.h) ---------------------------------------------------- */

void jsobject_from_json(JSObject &out, const json_t *j)
{
        JSObject tmp;

        convert_from_json(tmp, j);
        out.swap(tmp);
}

namespace {

/* A json_t for o: scalars complete, containers empty (filled by the caller). NULL when out
 * of memory. Strings and names that are not UTF-8 are sanitized like dump() does. */
json_t *json_shell(const JSObject &o)
{
        switch (F::type(o)) {
        case JSObject::JSTBool:
                return json_boolean(F::boolean(o));
        case JSObject::JSTString: {
                const std::string &s = F::str(o);
                if (utf8_valid(s))
                        return json_stringn_nocheck(s.data(), s.size());
                std::string clean = utf8_sanitized(s);
                return json_stringn_nocheck(clean.data(), clean.size());
        }
        case JSObject::JSTInt:
                return json_integer(F::integer(o));
        case JSObject::JSTFloat:
                /* G-40: no JSON for NaN/inf (and jansson refuses them) */
                return std::isfinite(F::real(o)) ? json_real(F::real(o)) : json_null();
        case JSObject::JSTObject:
                return json_object();
        case JSObject::JSTArray:
                return json_array();
        case JSObject::JSTNull:
        default:
                return json_null();
        }
}

json_t *convert_to_json(const JSObject &root)
{
        struct Item {
                const JSObject *src;
                json_t *dst; /* owned by its parent (or by result) */
        };
        std::vector<Item> todo;
        JsonRef result(json_shell(root));

        if (!result.get())
                return NULL;
        if (is_filled_container(root)) {
                Item first = {&root, result.get()};
                todo.push_back(first);
        }
        while (!todo.empty()) {
                Item it = todo.back();

                todo.pop_back();
                if (F::type(*it.src) == JSObject::JSTObject) {
                        const F::Map &m = F::object(*it.src);
                        for (F::Map::const_iterator i = m.begin(); i != m.end(); ++i) {
                                json_t *c = json_shell(i->second);
                                int r;
                                if (!c)
                                        return NULL;
                                /* setn_new* takes c over, also when it fails */
                                if (utf8_valid(i->first)) {
                                        r = json_object_setn_new_nocheck(
                                                it.dst, i->first.data(), i->first.size(), c);
                                } else {
                                        std::string key = utf8_sanitized(i->first);
                                        r = json_object_setn_new_nocheck(it.dst, key.data(),
                                                                         key.size(), c);
                                }
                                if (r < 0)
                                        return NULL;
                                if (is_filled_container(i->second)) {
                                        Item child = {&i->second, c};
                                        todo.push_back(child);
                                }
                        }
                } else {
                        const F::Vec &v = F::array(*it.src);
                        for (size_t i = 0; i < v.size(); i++) {
                                json_t *c = json_shell(v[i]);
                                if (!c || json_array_append_new(it.dst, c) < 0)
                                        return NULL;
                                if (is_filled_container(v[i])) {
                                        Item child = {&v[i], c};
                                        todo.push_back(child);
                                }
                        }
                }
        }
        return result.release();
}

} // namespace

json_t *jsobject_to_json(const JSObject &o)
{
        try {
                return convert_to_json(o);
        } catch (const std::bad_alloc &) {
                return NULL;
        }
}
