/* tests/test-jsobject.cpp — class JSObject (legacy-api.md §5, gaps G-40…G-57) and the
 * JSObject <-> json_t bridge (lib/compat/jsobject-json.h). No server needed. */
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <glib.h>
#include <jansson.h>

#include <ipc/jsobject.h>

#include "compat/jsobject-json.h"

using vfiipc::JSObject;

/* JS-LAYOUT-2: the enumerator values are ABI. */
static_assert(JSObject::JSTNull == 0, "JSTNull");
static_assert(JSObject::JSTBool == 1, "JSTBool");
static_assert(JSObject::JSTString == 2, "JSTString");
static_assert(JSObject::JSTInt == 3, "JSTInt");
static_assert(JSObject::JSTFloat == 4, "JSTFloat");
static_assert(JSObject::JSTObject == 5, "JSTObject");
static_assert(JSObject::JSTArray == 6, "JSTArray");
/* JS-LAYOUT-1: the documented size for GNU libstdc++, C++11 string ABI, x86-64. */
#if defined __x86_64__ && defined _GLIBCXX_USE_CXX11_ABI && _GLIBCXX_USE_CXX11_ABI
static_assert(sizeof(JSObject) == 128, "JSObject layout changed");
#endif
/* §5.1: the iterator typedefs are the std::map ones. */
static_assert(std::is_same<JSObject::iterator,
                           std::map<std::string, JSObject>::iterator>::value, "iterator");
static_assert(std::is_same<JSObject::const_iterator,
                           std::map<std::string, JSObject>::const_iterator>::value,
              "const_iterator");

/* Reaches the protected parts, as a derived class in an application could. */
struct Peek : JSObject {
        static const JSObject &null_object()
        {
                return NullObject;
        }
        static int parse_at(JSObject &o, const char *s, unsigned level)
        {
                int (JSObject::*p)(const char *, unsigned) = &Peek::parse;
                return (o.*p)(s, level);
        }
        static int parse_plain(JSObject &o, const char *s)
        {
                int (JSObject::*p)(const char *) = &Peek::parse;
                return (o.*p)(s);
        }
        /* What the legacy inline `x = 5` does: type and value only (JS-ASSIGN-7). */
        static void legacy_assign_int(JSObject &o, long v)
        {
                o.*(&Peek::v_type) = JSTInt;
                o.*(&Peek::v_intnum) = v;
        }
        static std::vector<uintptr_t> field_addresses(JSObject &o)
        {
                std::vector<uintptr_t> a;
                a.push_back((uintptr_t)&(o.*(&Peek::v_type)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_bool)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_string)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_floatnum)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_intnum)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_object)));
                a.push_back((uintptr_t)&(o.*(&Peek::v_array)));
                return a;
        }

};

/* Both sides held as std::string, so a temporary's c_str() cannot dangle. */
#define assert_str(a, b)                                                                      \
        do {                                                                                  \
                const std::string a_ = (a), b_ = (b);                                         \
                g_assert_cmpstr(a_.c_str(), ==, b_.c_str());                                  \
        } while (0)

#define assert_bytes(a, b)                                                                    \
        do {                                                                                  \
                const std::string a_ = (a), b_ = (b);                                         \
                g_assert_cmpmem(a_.data(), a_.size(), b_.data(), b_.size());                  \
        } while (0)

static JSObject loaded(const std::string &text)
{
        JSObject o;
        if (!o.load(text))
                g_error("load failed: %s", text.c_str());
        return o;
}

static std::string nested_arrays(unsigned depth)
{
        return std::string(depth, '[') + std::string(depth, ']');
}

/* ---- layout, construction (§5.2, §5.3) ------------------------------------------------------ */

static void test_layout_member_order(void)
{
        JSObject o;
        std::vector<uintptr_t> a = Peek::field_addresses(o);

        /* JS-LAYOUT-1: declaration order is memory order */
        for (size_t i = 1; i < a.size(); i++)
                g_assert_cmpuint(a[i - 1], <, a[i]);
        g_assert_cmpuint(a[0], ==, (uintptr_t)&o);
}

static void test_construct_is_null(void)
{
        JSObject o;

        g_assert_cmpint(o.type(), ==, JSObject::JSTNull);
        g_assert_true(o.isNull());
        g_assert_false(o.isBool() || o.isString() || o.isNumber() || o.isObject() || o.isArray());
        assert_str(o.dump(), "null");
        g_assert_true(o.begin() == o.end());
}

static void test_type_predicates(void)
{
        JSObject o;

        o = true;
        g_assert_true(o.isBool());
        o = "s";
        g_assert_true(o.isString());
        o = 1;
        g_assert_true(o.isNumber() && o.type() == JSObject::JSTInt);
        o = 1.5;
        g_assert_true(o.isNumber() && o.type() == JSObject::JSTFloat);
        o("a");
        g_assert_true(o.isObject());
        o[0];
        g_assert_true(o.isArray());
        o.clear(); /* §5.3 */
        g_assert_true(o.isNull());
        g_assert_cmpuint(o.size(), ==, 0);
        g_assert_true(o.begin() == o.end());
}

/* ---- assignment (§5.4) ---------------------------------------------------------------------- */

static void test_assign_bool_and_strings(void)
{
        JSObject o;
        char buf[] = "mutable";
        char *null_p = NULL;
        const char *null_cp = NULL;

        o = false;
        g_assert_true(o.isBool());
        g_assert_false(o.getBool());
        o = buf; /* operator=(char *) */
        g_assert_true(o.isString());
        assert_str(o.getString(), "mutable");
        o = null_p; /* a null pointer is the empty string, not null */
        g_assert_true(o.isString());
        assert_str(o.getString(), "");
        o = 5;
        o = null_cp;
        g_assert_true(o.isString());
        g_assert_cmpuint(o.getStringP()->size(), ==, 0);
        o = std::string("a\0b", 3); /* embedded NUL preserved */
        assert_bytes(*o.getStringP(), std::string("a\0b", 3));
}

static void test_assign_floats(void)
{
        JSObject o;

        o = 2.5;
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, 2.5);
        o = 0.1f; /* widened: 0.100000001490116… */
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, (double)0.1f);
        g_assert_cmpfloat(o.getNumber(), !=, 0.1);
        o = 3.9L; /* JS-ASSIGN-3: long double goes through the template and truncates */
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, 3);
        o = -3.9L;
        g_assert_cmpint(o.getInt(), ==, -3);
}

static void test_assign_long_long(void)
{
        JSObject o;

        o = (long long)LONG_MIN;
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, LONG_MIN);
        o = LLONG_MAX;
#if LONG_MAX == LLONG_MAX
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt); /* JS-ASSIGN-5, LP64 */
        g_assert_cmpint(o.getInt64(), ==, LLONG_MAX);
#else
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat); /* JS-ASSIGN-5, ILP32 */
#endif
        o = (unsigned long long)LONG_MAX;
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, LONG_MAX);
        o = (unsigned long long)LONG_MAX + 1;
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, (double)((unsigned long long)LONG_MAX + 1));
        o = ULLONG_MAX;
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, 18446744073709551616.0);
}

enum Colour { COLOUR_RED = 2, COLOUR_BLUE = 7 };

static void test_assign_template_integers(void)
{
        JSObject o;

        o = 'A'; /* JS-ASSIGN-1 */
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, 65);
        assert_str(o.dump(), "65");
        o = NULL; /* JS-ASSIGN-2: NULL and the literal 0 are the integer 0, not null */
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        assert_str(o.dump(), "0");
        o.clear();
        o = 0;
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        assert_str(o.dump(), "0");
        o = (signed char)-5;
        g_assert_cmpint(o.getInt(), ==, -5);
        o = (unsigned char)200;
        g_assert_cmpint(o.getInt(), ==, 200);
        o = (short)-300;
        g_assert_cmpint(o.getInt(), ==, -300);
        o = (unsigned short)65535;
        g_assert_cmpint(o.getInt(), ==, 65535);
        o = -7;
        g_assert_cmpint(o.getInt(), ==, -7);
        o = 4000000000u;
#if LONG_MAX > 4294967295L
        g_assert_cmpint(o.getInt64(), ==, 4000000000LL); /* every unsigned fits on LP64 */
#else
        g_assert_cmpint(o.getInt64(), <, 0); /* JS-ASSIGN-4 on ILP32 */
#endif
        o = ULONG_MAX; /* JS-ASSIGN-4: wraps, no switch to JSTFloat */
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, -1);
        o = COLOUR_BLUE; /* enums are integers */
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, 7);
        o = (int64_t)1 << 40; /* JS-ASSIGN-5 */
        g_assert_cmpint(o.getInt64(), ==, (long long)1 << 40);
}

static void test_assign_copy_is_deep(void)
{
        JSObject a, b;

        a("x")[1] = "one";
        b = a;
        b("x")[1] = "changed";
        b("y") = 1;
        assert_str(a.dump(), "{\"x\":[null,\"one\"]}");
        assert_str(b.dump(), "{\"x\":[null,\"changed\"],\"y\":1}");

        JSObject c(a); /* compiler-generated copy constructor */
        a.clear();
        assert_str(c.dump(), "{\"x\":[null,\"one\"]}");
}

/* G-52: our header's assignments empty the containers, so iteration sees nothing. */
static void test_assign_clears_containers(void)
{
        JSObject o;

        o("a") = 1;
        o("b") = 2;
        o = 5;
        g_assert_true(o.begin() == o.end());
        assert_str(o.dump(), "5");
        o("a") = 1;
        o = "str";
        g_assert_true(o.begin() == o.end());
        o = true;
        g_assert_true(o.getStringP() == NULL);
        o[3] = 1;
        o = 1.5;
        g_assert_cmpuint(o.size(), ==, 0);
        o("a") = 1;
        o = (long long)7;
        g_assert_true(o.begin() == o.end());
        o("a") = 1;
        o = (unsigned long long)7;
        g_assert_true(o.begin() == o.end());
        o("a") = 1;
        o = 2.5f;
        g_assert_true(o.begin() == o.end());
}

/* Assigning a value's own string, or a member's string, to it must not lose the text. */
static void test_assign_from_own_parts(void)
{
        JSObject o;

        o = "self";
        o = *o.getStringP();
        assert_str(o.getString(), "self");
        o = o.getStringP()->c_str();
        assert_str(o.getString(), "self");
        o.clear();
        o("m") = "member text";
        o = *o("m").getStringP();
        g_assert_true(o.isString());
        assert_str(o.getString(), "member text");
        o.clear();
        o[0] = "element";
        o = o[0].getStringP()->c_str();
        assert_str(o.getString(), "element");
}

/* JS-ASSIGN-7, G-52: binaries built against the legacy header leave stale containers
 * behind a scalar assignment; the out-of-line members must go by v_type. */
static void test_stale_containers_ignored(void)
{
        JSObject o;
        const JSObject &c = o;

        o("stale") = 1;
        o("other")[2] = 3;
        Peek::legacy_assign_int(o, 5);
        assert_str(o.dump(), "5");
        assert_str(o.getString(), "5");
        g_assert_false(o.exists("stale"));
        g_assert_true(c("stale").isNull());
        g_assert_cmpuint(o.size(), ==, 0);
        o("new") = 2; /* the object is rebuilt from scratch, not from stale members */
        assert_str(o.dump(), "{\"new\":2}");

        o.clear();
        o[1] = 1;
        Peek::legacy_assign_int(o, 6);
        g_assert_true(c[1].isNull());
        o.resize(1);
        assert_str(o.dump(), "[null]");

        json_t *j;
        o.clear();
        o("x") = 1;
        Peek::legacy_assign_int(o, 9);
        j = jsobject_to_json(o);
        g_assert_nonnull(j);
        g_assert_true(json_is_integer(j));
        json_decref(j);
}

/* ---- reading values (§5.5) ------------------------------------------------------------------ */

static void test_get_null_and_containers(void)
{
        JSObject n, obj, arr;

        obj("a") = 1;
        arr[0] = 1;
        const JSObject *all[] = {&n, &obj, &arr};
        for (size_t i = 0; i < 3; i++) {
                const JSObject &o = *all[i];
                assert_str(o.getString(), "");
                g_assert_cmpfloat(o.getNumber(), ==, 0.0);
                g_assert_cmpint(o.getInt(), ==, 0);
                g_assert_cmpint(o.getInt64(), ==, 0);
                g_assert_false(o.getBool());
                g_assert_null(o.getStringP());
        }
        /* JS-GET-2, G-57 */
        assert_str(n.getString("dflt"), "dflt");
        assert_str(n.getString((const char *)NULL), "");
        assert_str(obj.getString("dflt"), "");
}

static void test_get_bool_source(void)
{
        JSObject o;

        o = true;
        assert_str(o.getString(), "true");
        g_assert_cmpfloat(o.getNumber(), ==, 1.0);
        g_assert_cmpint(o.getInt(), ==, 1);
        g_assert_cmpint(o.getInt64(), ==, 1);
        g_assert_true(o.getBool());
        o = false;
        assert_str(o.getString(), "false");
        g_assert_cmpfloat(o.getNumber(), ==, 0.0);
        g_assert_cmpint(o.getInt(), ==, 0);
        g_assert_false(o.getBool());
        assert_str(o.getString("dflt"), "false");
}

static void test_get_int_source(void)
{
        JSObject o;

        o = -1234;
        assert_str(o.getString(), "-1234");
        g_assert_cmpfloat(o.getNumber(), ==, -1234.0); /* [X] */
        g_assert_cmpint(o.getInt(), ==, -1234);
        g_assert_cmpint(o.getInt64(), ==, -1234);
        g_assert_true(o.getBool());
        o = 0;
        g_assert_false(o.getBool());
        o = LONG_MIN;
        g_assert_cmpint(o.getInt(), ==, LONG_MIN);
}

static void test_get_float_source(void)
{
        JSObject o;

        o = 42.5;
        assert_str(o.getString(), "42.5"); /* G-47: the dump() text */
        g_assert_cmpint(o.getInt(), ==, 42);               /* [X] truncation */
        g_assert_cmpint(o.getInt64(), ==, 42);
        g_assert_true(o.getBool());
        o = -42.9;
        g_assert_cmpint(o.getInt(), ==, -42); /* toward zero */
        o = 0.0;
        g_assert_false(o.getBool());
        o = 42.0;
        assert_str(o.getString(), "42");
        /* G-48: saturation, NaN -> 0 */
        o = 1e300;
        g_assert_cmpint(o.getInt(), ==, LONG_MAX);
        g_assert_cmpint(o.getInt64(), ==, LLONG_MAX);
        o = -1e300;
        g_assert_cmpint(o.getInt(), ==, LONG_MIN);
        g_assert_cmpint(o.getInt64(), ==, LLONG_MIN);
        o = 9223372036854775808.0;
        g_assert_cmpint(o.getInt64(), ==, LLONG_MAX);
        o = -9223372036854775808.0;
        g_assert_cmpint(o.getInt64(), ==, LLONG_MIN);
        o = std::numeric_limits<double>::quiet_NaN();
        g_assert_cmpint(o.getInt(), ==, 0);
        g_assert_cmpint(o.getInt64(), ==, 0);
        assert_str(o.getString(), "null");
        o = std::numeric_limits<double>::infinity();
        g_assert_cmpint(o.getInt64(), ==, LLONG_MAX);
}

static void test_get_string_source(void)
{
        JSObject o;

        o = "hello";
        assert_str(o.getString(), "hello");
        g_assert_cmpfloat(o.getNumber(), ==, 0.0);
        g_assert_cmpint(o.getInt(), ==, 0);
        g_assert_false(o.getBool());

        o = "3.75xyz"; /* the leading number */
        g_assert_cmpfloat(o.getNumber(), ==, 3.75);
        g_assert_cmpint(o.getInt(), ==, 3);
        o = "  -17abc"; /* leading blanks allowed, integer text exact */
        g_assert_cmpfloat(o.getNumber(), ==, -17.0);
        g_assert_cmpint(o.getInt(), ==, -17);
        o = "1e3";
        g_assert_cmpint(o.getInt(), ==, 1000);
        o = "-1.9";
        g_assert_cmpint(o.getInt64(), ==, -1);
        o = "9007199254740993"; /* exact, not via double */
        g_assert_cmpint(o.getInt64(), ==, 9007199254740993LL);
        o = "123456789012345678901234"; /* saturating */
        g_assert_cmpint(o.getInt64(), ==, LLONG_MAX);
        o = "-123456789012345678901234";
        g_assert_cmpint(o.getInt64(), ==, LLONG_MIN);

        /* G-49 */
        o = "true";
        g_assert_true(o.getBool());
        o = "false";
        g_assert_false(o.getBool());
        o = "TRUE";
        g_assert_false(o.getBool());
        o = "1";
        g_assert_true(o.getBool());
        o = " 2.5 ";
        g_assert_true(o.getBool());
        o = "0";
        g_assert_false(o.getBool());
        o = "0.0";
        g_assert_false(o.getBool());
        o = "1abc";
        g_assert_false(o.getBool());
        o = "";
        g_assert_false(o.getBool());
        assert_str(o.getString("dflt"), ""); /* only null takes the default */
}

static void test_get_string_pointer(void)
{
        JSObject o;
        const JSObject &c = o;

        g_assert_null(o.getStringP());
        o = 5;
        g_assert_null(c.getStringP());
        o = "abc";
        g_assert_nonnull(c.getStringP());
        g_assert_true(c.getStringP() == o.getStringP()); /* no copy (JS-GET-3) */
        o.getStringP()->append("def");
        assert_str(o.getString(), "abcdef");
}

static void test_conversion_operators(void)
{
        JSObject o;

        o("f") = 42.5;
        o("i") = 7;
        o("big") = 300;
        o("s") = "text";
        o("neg") = -1;
        o("zero") = 0;
        o("v64") = 1234567890123456789LL;

        /* §10: (int) of a float member, (float) of an int member, getInt64 of 64 bits */
        g_assert_cmpint((int)o("f"), ==, 42);
        g_assert_cmpfloat((float)o("i"), ==, 7.0f);
        g_assert_cmpfloat((double)o("f"), ==, 42.5);
        g_assert_cmpint(o("v64").getInt64(), ==, 1234567890123456789LL);
        g_assert_cmpint((long long)o("v64"), ==, 1234567890123456789LL);
        g_assert_cmpuint((unsigned long long)o("v64"), ==, 1234567890123456789ULL);
        g_assert_cmpint((long)o("i"), ==, 7);
        g_assert_cmpuint((unsigned long)o("i"), ==, 7);
        g_assert_cmpint((short)o("i"), ==, 7);
        g_assert_cmpint((char)o("i"), ==, 7);

        /* JS-CONV-3: plain C narrowing */
        g_assert_cmpuint((unsigned char)o("big"), ==, 44);
        g_assert_cmpuint((unsigned short)o("neg"), ==, 65535);
        g_assert_cmpuint((unsigned)o("neg"), ==, UINT_MAX);

        /* JS-CONV-2: the cast reads into an existing string; initialisation works too */
        std::string s = "old";
        s = (std::string)o("s");
        assert_str(s, "text");
        std::string init = o("s");
        assert_str(init, "text");

        /* JS-CONV-1: tests the value, not existence */
        g_assert_true(o.exists("zero"));
        g_assert_false((bool)o("zero"));
        bool taken = false;
        if (o("i"))
                taken = true;
        g_assert_true(taken);
}

/* G-40, G-48: number text is C-locale text whatever the process locale. */
static void test_numbers_ignore_locale(void)
{
        static const char *const candidates[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE",
                                                 "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8"};
        const char *found = NULL;

        for (size_t i = 0; i < G_N_ELEMENTS(candidates) && !found; i++)
                if (setlocale(LC_ALL, candidates[i]) &&
                    strcmp(localeconv()->decimal_point, ",") == 0)
                        found = candidates[i];
        if (!found) {
                setlocale(LC_ALL, "C");
                g_test_skip("no locale with a decimal comma is installed");
                return;
        }
        JSObject o;
        o("x") = 1.5;
        o("y") = "2.25";
        assert_str(o.dump(), "{\"x\":1.5,\"y\":\"2.25\"}");
        g_assert_cmpfloat(o("y").getNumber(), ==, 2.25);
        g_assert_true(o.load("[0.5]"));
        g_assert_cmpfloat(o[0].getNumber(), ==, 0.5);
        setlocale(LC_ALL, "C");
}

/* ---- objects (§5.6) ------------------------------------------------------------------------- */

static void test_object_read_creates_member(void)
{
        JSObject o;

        o("a") = 1;
        int v = o("missing"); /* JS-OBJ-3: through a non-const value */
        g_assert_cmpint(v, ==, 0);
        g_assert_true(o.exists("missing"));
        g_assert_true(o("missing").isNull());
        assert_str(o.dump(), "{\"a\":1,\"missing\":null}");

        const JSObject &c = o; /* JS-OBJ-2: const never creates */
        g_assert_true(c("other").isNull());
        g_assert_true(&c("other") == &Peek::null_object());
        g_assert_true(&c(std::string("other")) == &Peek::null_object());
        g_assert_false(o.exists("other"));
        g_assert_cmpint(c("a").getInt(), ==, 1);
        g_assert_cmpint(c(std::string("a")).getInt(), ==, 1);
}

static void test_object_from_null_and_other_types(void)
{
        JSObject o;

        o("x") = 1; /* [X] null becomes an object */
        g_assert_true(o.isObject());
        o = 5;
        o("y") = 2; /* G-50: cleared first */
        assert_str(o.dump(), "{\"y\":2}");
        o.clear();
        o[2] = 1;
        o(std::string("z")) = 3;
        assert_str(o.dump(), "{\"z\":3}");
        o = "s";
        const JSObject &c = o;
        g_assert_true(c("z").isNull()); /* G-50: const on a non-object */
        g_assert_false(o.exists("z"));
        o.erase("z"); /* G-50: no effect */
        assert_str(o.dump(), "\"s\"");
}

static void test_object_exists_erase(void)
{
        JSObject o;

        o("a") = 1;
        o("n"); /* JS-OBJ-4: a null member exists */
        g_assert_true(o.exists("a"));
        g_assert_true(o.exists(std::string("n")));
        g_assert_false(o.exists("A")); /* JS-OBJ-6: case-sensitive */
        g_assert_false(o.exists((const char *)NULL));
        o.erase("nope"); /* JS-OBJ-5: absent is fine */
        o.erase("a");
        o.erase(std::string("n"));
        o.erase((const char *)NULL);
        g_assert_true(o.isObject());
        assert_str(o.dump(), "{}");

        o("Key") = 1;
        o("key") = 2;
        g_assert_cmpint(o("Key").getInt(), ==, 1);
        g_assert_cmpint(o("key").getInt(), ==, 2);
        std::string name("a\0b", 3); /* names are byte strings */
        o(name) = 3;
        g_assert_true(o.exists(name));
        g_assert_false(o.exists("a"));
}

/* A NULL name is no member: const lookups get the null object, non-const ones a scratch. */
static void test_object_null_name(void)
{
        JSObject o;
        const JSObject &c = o;

        o("a") = 1;
        g_assert_true(&c((const char *)NULL) == &Peek::null_object());
        JSObject &s = o((const char *)NULL);
        s = 5;
        assert_str(o.dump(), "{\"a\":1}");
        g_assert_true(c("").isNull());
}

/* ---- arrays (§5.7) -------------------------------------------------------------------------- */

static void test_array_grows(void)
{
        JSObject o;
        const JSObject &c = o;

        o[2] = "c"; /* JS-ARR-1: grows with nulls; [X] null becomes an array */
        g_assert_true(o.isArray());
        g_assert_cmpuint(o.size(), ==, 3);
        assert_str(o.dump(), "[null,null,\"c\"]");
        o[0] = 1;
        g_assert_cmpuint(o.size(), ==, 3);
        g_assert_cmpint(c[0].getInt(), ==, 1);
        /* JS-ARR-3 */
        g_assert_true(&c[3] == &Peek::null_object());
        g_assert_true(&c[-1] == &Peek::null_object());
        g_assert_cmpuint(o.size(), ==, 3);

        JSObject s;
        s = "str";
        const JSObject &cs = s;
        g_assert_true(&cs[0] == &Peek::null_object()); /* not an array */
        s[1] = true; /* G-50 */
        assert_str(s.dump(), "[null,true]");
}

/* JS-ARR-2, G-51 */
static void test_array_negative_index_is_harmless(void)
{
        JSObject o;
        const JSObject &c = o;

        o[0] = 1;
        JSObject &bad = o[-1];
        g_assert_true(bad.isNull());
        g_assert_true(&bad != &Peek::null_object());
        bad = "poison";
        bad("x") = 1;
        g_assert_true(Peek::null_object().isNull());
        g_assert_true(c[7].isNull());
        g_assert_true(c("nothing").isNull());
        g_assert_true(o[-5].isNull()); /* reset on every hand-out */
        assert_str(o.dump(), "[1]");

        JSObject other;
        const JSObject &co = other;
        g_assert_true(co[-1].isNull());
        g_assert_true(co("a").isNull());
        g_assert_cmpuint(Peek::null_object().size(), ==, 0);
        g_assert_true(Peek::null_object().begin() == Peek::null_object().end());
}

static void test_array_size_of_other_types(void)
{
        JSObject o;

        g_assert_cmpuint(o.size(), ==, 0);
        o("a") = 1; /* JS-ARR-4: objects too */
        o("b") = 2;
        g_assert_cmpuint(o.size(), ==, 0);
        o = "four";
        g_assert_cmpuint(o.size(), ==, 0);
}

static void test_array_resize(void)
{
        JSObject o;

        o.resize(3); /* JS-ARR-5 */
        assert_str(o.dump(), "[null,null,null]");
        o[0] = 1;
        o[1] = 2;
        o.resize(1);
        assert_str(o.dump(), "[1]");
        o.resize(0);
        g_assert_true(o.isArray());
        assert_str(o.dump(), "[]");
        o = 5;
        o.resize(2);
        assert_str(o.dump(), "[null,null]");
        o.clear();
        o("a") = 1;
        o.resize(1);
        assert_str(o.dump(), "[null]");
}

static void test_array_nested_build(void)
{
        JSObject v;

        v("list")[2]("id") = 7; /* JS-ARR-6 */
        assert_str(v.dump(), "{\"list\":[null,null,{\"id\":7}]}");
        v("list")[0][1] = "x";
        assert_str(v.dump(), "{\"list\":[[null,\"x\"],null,{\"id\":7}]}");
}

/* ---- iteration (§5.8) ----------------------------------------------------------------------- */

static void test_iterate_bytewise_order(void)
{
        JSObject o;
        std::string seen;

        o("b") = 1;
        o("a") = 2;
        o("B") = 3;
        o("\xc3\xa4") = 4; /* ä: bytes >= 0x80 sort after ASCII (JS-IT-2) */
        o("_") = 5;
        for (JSObject::iterator it = o.begin(); it != o.end(); ++it) {
                seen += it->first;
                seen += '=';
                seen += it->second.getString();
                seen += ';';
        }
        assert_str(seen, "B=3;_=5;a=2;b=1;\xc3\xa4=4;");
        const JSObject &c = o;
        size_t n = 0;
        for (JSObject::const_iterator it = c.begin(); it != c.end(); ++it)
                n++;
        g_assert_cmpuint(n, ==, 5);
        /* JS-DUMP-2: same order in the text */
        assert_str(o.dump(), "{\"B\":3,\"_\":5,\"a\":2,\"b\":1,\"\xc3\xa4\":4}");

        JSObject arr; /* JS-IT-3: empty range for arrays */
        arr[0] = 1;
        g_assert_true(arr.begin() == arr.end());
}

/* ---- load (§5.9) ---------------------------------------------------------------------------- */

static void test_load_whitespace_and_top_level(void)
{
        JSObject o;

        g_assert_true(o.load(" {\"a\":1}\n")); /* JS-LOAD-4, G-42 */
        assert_str(o.dump(), "{\"a\":1}");
        g_assert_true(o.load("\t\r\n [ 1 , 2 ] \r\n\t"));
        assert_str(o.dump(), "[1,2]");
        /* JS-LOAD-6: any value at top level */
        g_assert_true(o.load("42"));
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_true(o.load("\"s\""));
        g_assert_true(o.isString());
        g_assert_true(o.load("true"));
        g_assert_true(o.isBool() && o.getBool());
        g_assert_true(o.load("false"));
        g_assert_true(o.isBool() && !o.getBool());
        g_assert_true(o.load("null"));
        g_assert_true(o.isNull());
        g_assert_true(o.load("1.5"));
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_true(o.load("{}"));
        g_assert_true(o.isObject());
        g_assert_true(o.load("[]"));
        g_assert_true(o.isArray());

        /* JS-LOAD-1: parse() returns the characters consumed, negative on failure */
        g_assert_cmpint(Peek::parse_plain(o, " 12 "), ==, 4);
        g_assert_cmpint(Peek::parse_plain(o, "[1,"), <, 0);
        g_assert_cmpint(Peek::parse_plain(o, NULL), <, 0);
}

static void test_load_failures_leave_null(void)
{
        static const char *const bad[] = {
                "", " ", "\n\t ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "{a:1}", "'a'",
                "[1] x", "{} {}", "1 2", "nul", "True", "\"unterminated", "[1]]", "// c\n1",
                "\"tab\there\"", /* raw control characters in strings */
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                JSObject o;
                o("old") = 1;
                if (o.load(bad[i]))
                        g_error("load accepted \"%s\"", bad[i]);
                /* G-44 */
                g_assert_true(o.isNull());
                g_assert_true(o.begin() == o.end());
        }
}

/* JS-LOAD-3 */
static void test_load_nul_byte_fails(void)
{
        JSObject o;

        g_assert_false(o.load(std::string("{}\0", 3)));
        g_assert_false(o.load(std::string("{\"a\":\0 1}", 9)));
        g_assert_false(o.load(std::string("\0", 1)));
        g_assert_true(o.load("\"a\\u0000b\"")); /* the escape is fine */
        assert_bytes(o.getString(), std::string("a\0b", 3));
}

static void test_load_replaces_content(void)
{
        JSObject o;

        o("old") = 1;
        o("arr")[3] = 1;
        g_assert_true(o.load("{\"new\":2}")); /* JS-LOAD-5 */
        assert_str(o.dump(), "{\"new\":2}");
        g_assert_true(o.load("[5]"));
        g_assert_true(o.begin() == o.end());
        assert_str(o.dump(), "[5]");

        o = "[7, 8]"; /* loading the value's own string */
        g_assert_true(o.load(o.getString()));
        assert_str(o.dump(), "[7,8]");
}

static void test_load_duplicate_names_last_wins(void)
{
        JSObject o = loaded("{\"a\":1,\"b\":0,\"a\":{\"x\":true},\"a\":3}"); /* G-45 */

        assert_str(o.dump(), "{\"a\":3,\"b\":0}");
        o = loaded("{\"a\":[1],\"a\":\"s\"}");
        assert_str(o.dump(), "{\"a\":\"s\"}");
}

static void test_load_depth_limit(void)
{
        JSObject o;
        std::string objs;

        /* JS-LOAD-6, G-46 */
        g_assert_true(o.load(nested_arrays(64)));
        g_assert_true(o.load(nested_arrays(512)));
        g_assert_false(o.load(nested_arrays(513)));
        g_assert_true(o.isNull());
        g_assert_false(o.load(nested_arrays(100000)));

        for (int i = 0; i < 513; i++)
                objs += "{\"a\":";
        objs += "1";
        objs += std::string(513, '}');
        g_assert_false(o.load(objs));
        g_assert_true(o.load(objs.substr(5, objs.size() - 6))); /* 512 levels */

        /* depth, not count: many siblings are fine */
        std::string wide = "[";
        for (int i = 0; i < 2000; i++)
                wide += i ? ",[[]]" : "[[]]";
        wide += "]";
        g_assert_true(o.load(wide));
        g_assert_cmpuint(o.size(), ==, 2000);

        /* brackets inside strings do not count */
        std::string in_string = "[\"" + std::string(600, '[') + "\\\"{{{\"]";
        g_assert_true(o.load(in_string));
        g_assert_cmpuint(o[0].getString().size(), ==, 604);

        /* the protected parse counts levels that surround the text already */
        g_assert_cmpint(Peek::parse_at(o, "[[1]]", 510), ==, 5);
        g_assert_cmpint(Peek::parse_at(o, "[[1]]", 511), <, 0);
        g_assert_cmpint(Peek::parse_at(o, "1", 512), ==, 1);
        g_assert_cmpint(Peek::parse_at(o, "1", 513), <, 0);
}

static void test_load_unicode(void)
{
        JSObject o;

        /* JS-LOAD-7, G-55 */
        o = loaded("\"\\u00e4\\u20AC\\ud83d\\ude00\\u0041\"");
        assert_bytes(o.getString(), "\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80" "A");
        o = loaded("\"\\u0000\"");
        assert_bytes(o.getString(), std::string("\0", 1));
        o = loaded("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
        assert_bytes(o.getString(), "\"\\/\b\f\n\r\t");
        o = loaded("\"\xc3\xa4 raw \xf0\x9f\x98\x80\""); /* raw UTF-8 */
        assert_bytes(o.getString(), "\xc3\xa4 raw \xf0\x9f\x98\x80");
        o = loaded("{\"\\u00e4\":1}");
        g_assert_true(o.exists("\xc3\xa4"));
        g_assert_false(o.load("\"\\u12\""));
        g_assert_false(o.load("\"\\x41\""));
}

/* Deviations from G-55 that jansson imposes (see the report): lone surrogates, ill-formed
 * UTF-8 and \u0000 inside member names are refused rather than passed through. */
static void test_load_refuses_what_jansson_refuses(void)
{
        JSObject o;

        g_assert_false(o.load("\"\\ud800\""));
        g_assert_false(o.load("\"\\udc00\""));
        g_assert_false(o.load("\"\\ud83dx\""));
        g_assert_false(o.load("\"\xff\""));
        g_assert_false(o.load("\"\xc3\""));
        g_assert_false(o.load("\"\xed\xa0\x80\""));
        g_assert_false(o.load("{\"a\\u0000b\":1}"));
        g_assert_false(o.load("1e400")); /* overflows double */
        g_assert_true(o.isNull());
}

static void test_load_numbers(void)
{
        JSObject o;

        /* JS-LOAD-6, G-43 */
        o = loaded("-42");
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, -42);
        o = loaded("-0");
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        o = loaded("42.0");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        o = loaded("4.2e1");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, 42.0);
        o = loaded("1E-2");
        g_assert_cmpfloat(o.getNumber(), ==, 0.01);
        o = loaded("1e+2");
        g_assert_cmpfloat(o.getNumber(), ==, 100.0);
        o = loaded("1e-400"); /* underflow is zero */
        g_assert_cmpfloat(o.getNumber(), ==, 0.0);
#if LONG_MAX == LLONG_MAX
        o = loaded("9223372036854775807");
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, LONG_MAX);
        o = loaded("-9223372036854775808");
        g_assert_cmpint(o.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o.getInt(), ==, LONG_MIN);
#else
        o = loaded("2147483648");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
#endif
        /* outside long: JSTFloat, not an error */
        o = loaded("9223372036854775808");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, 9223372036854775808.0);
        o = loaded("-9223372036854775809");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, -9223372036854775808.0);
        o = loaded("123456789012345678901234567890");
        g_assert_cmpint(o.type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o.getNumber(), ==, 123456789012345678901234567890.0);
        o = loaded(" [1, -99999999999999999999 ,{\"k\":99999999999999999999}] ");
        g_assert_cmpint(o[0].type(), ==, JSObject::JSTInt);
        g_assert_cmpint(o[1].type(), ==, JSObject::JSTFloat);
        g_assert_cmpfloat(o[1].getNumber(), ==, -1e20);
        g_assert_cmpfloat(o[2]("k").getNumber(), ==, 1e20);
        g_assert_cmpint(o.size(), ==, 3);
        g_assert_false(o.load(std::string(400, '9'))); /* beyond double */

        /* strict JSON number syntax */
        static const char *const bad[] = {"+1", "01", "-01", ".5", "1.", "0x10", "NaN",
                                          "Infinity", "-Infinity", "-", "1e", "--1", "1.e5",
                                          "0123456789012345678901234"};
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                if (o.load(bad[i]))
                        g_error("load accepted %s", bad[i]);
}

static void test_int64_round_trip(void)
{
        JSObject o;
        std::string text;

        o("id") = 1234567890123456789LL;
        o("neg") = -1234567890123456789LL;
        o("max") = LLONG_MAX;
        o("min") = LLONG_MIN;
        text = o.dump();
#if LONG_MAX == LLONG_MAX
        assert_str(text,
                        "{\"id\":1234567890123456789,\"max\":9223372036854775807,"
                        "\"min\":-9223372036854775808,\"neg\":-1234567890123456789}");
#endif
        JSObject back = loaded(text);
        g_assert_cmpint(back("id").getInt64(), ==, 1234567890123456789LL);
        g_assert_cmpint(back("neg").getInt64(), ==, -1234567890123456789LL);
        g_assert_cmpint(back("max").getInt64(), ==, LLONG_MAX);
        g_assert_cmpint(back("min").getInt64(), ==, LLONG_MIN);
}

/* ---- dump (§5.10) --------------------------------------------------------------------------- */

static void test_dump_compact_example(void)
{
        JSObject o;

        o("b")[0] = true;
        o("b")[1];
        o("b")[2] = "x";
        o("a") = 1;
        assert_str(o.dump(), "{\"a\":1,\"b\":[true,null,\"x\"]}"); /* JS-DUMP-2 */

        std::string s = "prefix:"; /* JS-DUMP-1: appends */
        o.dump(s);
        assert_str(s, "prefix:{\"a\":1,\"b\":[true,null,\"x\"]}");

        JSObject e;
        e("o")("inner");
        e("o").erase("inner");
        e("a").resize(0);
        assert_str(e.dump(), "{\"a\":[],\"o\":{}}"); /* JS-DUMP-5 */
}

/* JS-DUMP-3: the documentation's JSON sample checks exactly these bytes. */
static void test_dump_escape_vector(void)
{
        JSObject o;
        const std::string value("abc\n\r\t\"\\hallo\0", 14);

        o("foo") = value;
        assert_str(o.dump(), "{\"foo\":\"abc\\n\\r\\t\\\"\\\\hallo\\u0000\"}");
        JSObject back = loaded(o.dump());
        assert_bytes(back("foo").getString(), value);
        g_assert_cmpuint(back("foo").getStringP()->size(), ==, 14);
}

/* G-41 */
static void test_dump_other_controls(void)
{
        JSObject o;

        o = std::string("\x01\x08\x0c\x1b\x1f\x7f/ ~", 9);
        assert_str(o.dump(), "\"\\u0001\\u0008\\u000c\\u001b\\u001f\x7f/ ~\"");
        o = "\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"; /* valid UTF-8 unchanged */
        assert_str(o.dump(), "\"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");
        JSObject k;
        k("q\"\\\n") = 1; /* names are escaped alike */
        assert_str(k.dump(), "{\"q\\\"\\\\\\n\":1}");
}

/* Deviation from G-41: ill-formed UTF-8 becomes U+FFFD (one per maximal subpart), so the
 * text is valid UTF-8 for D-Bus and loads again. */
static void test_dump_replaces_ill_formed_utf8(void)
{
        static const struct {
                const char *in;
                const char *out;
        } cases[] = {
                {"a\xff" "b", "\"a\xef\xbf\xbd" "b\""},
                {"a\xc3", "\"a\xef\xbf\xbd\""},                          /* truncated */
                {"\xe2\x82x", "\"\xef\xbf\xbdx\""},                      /* one for the pair */
                {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},            /* overlong */
                {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
                {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
                {"\x80", "\"\xef\xbf\xbd\""},
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                JSObject o;
                o = cases[i].in;
                assert_str(o.dump(), cases[i].out);
                g_assert_true(o.load(o.dump()));
        }
        JSObject k;
        k("\xff") = 1;
        assert_str(k.dump(), "{\"\xef\xbf\xbd\":1}");
}

static void expect_double_text(double v, const char *text)
{
        JSObject o;

        o = v;
        assert_str(o.dump(), text);
}

/* JS-DUMP-4, G-40 */
static void test_dump_numbers(void)
{
        JSObject o;

        expect_double_text(42.0, "42");
        expect_double_text(-7.0, "-7");
        expect_double_text(0.0, "0");
        expect_double_text(-0.0, "-0.0");
        expect_double_text(42.5, "42.5");
        expect_double_text(0.1, "0.1");
        expect_double_text(-2.5, "-2.5");
        expect_double_text(1.0 / 3, "0.3333333333333333");
        expect_double_text(2.0 / 3, "0.6666666666666666");
        expect_double_text(123456.789, "123456.789");
        expect_double_text(0.001, "0.001");
        expect_double_text(1.5e-7, "1.5e-07");
        expect_double_text(1e21, "1e+21");
        expect_double_text(1e15, "1000000000000000");
        expect_double_text(9007199254740994.0, "9007199254740994");
        /* from 2^63 on, never an integer literal that int64 parsers refuse */
        expect_double_text(9223372036854775808.0, "9.223372036854776e+18");
        expect_double_text(18446744073709551616.0, "1.8446744073709552e+19");
        expect_double_text(-1e19, "-1e+19");
        expect_double_text(5e-324, "5e-324");
        expect_double_text(1.7976931348623157e308, "1.7976931348623157e+308");
        expect_double_text((double)0.1f, "0.10000000149011612");
        expect_double_text(std::numeric_limits<double>::quiet_NaN(), "null");
        expect_double_text(std::numeric_limits<double>::infinity(), "null");
        expect_double_text(-std::numeric_limits<double>::infinity(), "null");
        o = LONG_MIN;
        assert_str(o.dump(), std::to_string(LONG_MIN));

        /* 42.0 reloads as the integer 42 */
        o = 42.0;
        JSObject back = loaded(o.dump());
        g_assert_cmpint(back.type(), ==, JSObject::JSTInt);
        g_assert_cmpint(back.getInt(), ==, 42);

        /* shortest form, yet the identical double comes back */
        const double samples[] = {0.1,    1.0 / 3,  2.0 / 3, M_PI,     1e-300, 123.456e200,
                                  5e-324, 2.2e-308, 1e22,    1.5e300, 4.35,   0.3,
                                  -1e-7,  1e16,     1e17 + 16, 18446744073709551616.0,
                                  9223372036854775808.0};
        for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
                o = samples[i];
                JSObject r = loaded(o.dump());
                g_assert_cmpfloat(r.getNumber(), ==, samples[i]);
                assert_str(r.dump(), o.dump());
        }
        o = -0.0;
        JSObject z = loaded(o.dump());
        g_assert_cmpint(z.type(), ==, JSObject::JSTFloat);
        g_assert_true(std::signbit(z.getNumber()));
}

/* §10: dump -> load -> dump yields the same text. */
static void test_dump_load_dump_identical(void)
{
        JSObject o;

        o("name") = "T\xc3\xa4st \"q\" \\ /";
        o("ctrl") = std::string("\0\x01\x1f\n", 4);
        o("n")("i") = -12;
        o("n")("f") = 0.25;
        o("n")("big") = 1e300;
        o("n")("whole") = 3.0;
        o("list")[0] = true;
        o("list")[1] = false;
        o("list")[3]("deep")[1] = "x";
        o("empty_o")("x");
        o("empty_o").erase("x");
        o("empty_a").resize(0);
        o("nan") = std::numeric_limits<double>::quiet_NaN();
        const std::string first = o.dump();
        JSObject back = loaded(first);
        assert_str(back.dump(), first);
        JSObject again = loaded(back.dump());
        assert_str(again.dump(), first);
}

/* A tree deeper than load() accepts still dumps: the writer does not recurse (G-78). */
static void test_dump_deep_tree(void)
{
        JSObject root;
        JSObject *p = &root;
        const int depth = 3000;

        for (int i = 0; i < depth; i++)
                p = &(*p)[0];
        *p = 1;
        std::string text = root.dump();
        assert_str(text,
                        (std::string(depth, '[') + "1" + std::string(depth, ']')));
        JSObject again;
        g_assert_false(again.load(text)); /* G-46 */
        json_t *j = jsobject_to_json(root);
        g_assert_nonnull(j);
        json_decref(j);
}

/* ---- logdump (§5.10) ------------------------------------------------------------------------ */

static std::vector<std::string> filter_seen;

static bool hide_password(const std::string &key)
{
        filter_seen.push_back(key);
        return key == "Password";
}

static void test_logdump_hides_password(void)
{
        JSObject o;

        o("user") = "bob";
        o("Password") = "secret"; /* JS-LOG-2 */
        o("nested")("Password")("x") = 1;
        o("nested")("keep") = 2;
        o("list")[0]("Password") = "p";
        o("list")[1] = "Password"; /* array elements are not names */
        filter_seen.clear();
        assert_str(o.logdump(hide_password),
                        "{\"Password\":\"<<HIDDEN>>\",\"list\":[{\"Password\":\"<<HIDDEN>>\"},"
                        "\"Password\"],\"nested\":{\"Password\":\"<<HIDDEN>>\",\"keep\":2},"
                        "\"user\":\"bob\"}");
        /* G-53: every member at every depth is asked, hidden content is not visited */
        std::string names;
        for (size_t i = 0; i < filter_seen.size(); i++)
                names += filter_seen[i] + ",";
        assert_str(names, "Password,list,Password,nested,Password,keep,user,");

        /* JS-LOG-3: a NULL filter is dump(); JS-LOG-1: dump() shows everything */
        assert_str(o.logdump(NULL), o.dump());
        g_assert_nonnull(strstr(o.dump().c_str(), "secret"));
        JSObject r;
        g_assert_true(r.load(o.logdump(hide_password)));
}

static void test_logdump_scalar_root(void)
{
        JSObject o;

        o = "Password";
        assert_str(o.logdump(hide_password), "\"Password\"");
}

/* ---- prettyDump (§5.10) --------------------------------------------------------------------- */

static void test_pretty_dump(void)
{
        JSObject o;
        std::string s = ">";

        o("a") = 1;
        o("b")[0] = true;
        o("b")[1];
        o("c")("x");
        o("c").erase("x");
        o("d").resize(0);
        o("e")("k") = "v";
        o.prettyDump(s); /* JS-PRETTY-1: appends; G-54 layout */
        assert_str(s,
                        ">{\n"
                        "  \"a\": 1,\n"
                        "  \"b\": [\n"
                        "    true,\n"
                        "    null\n"
                        "  ],\n"
                        "  \"c\": {},\n"
                        "  \"d\": [],\n"
                        "  \"e\": {\n"
                        "    \"k\": \"v\"\n"
                        "  }\n"
                        "}\n");
        JSObject back = loaded(s.substr(1)); /* JS-PRETTY-2: valid JSON */
        assert_str(back.dump(), o.dump());

        std::string scalar;
        JSObject n;
        n.prettyDump(scalar);
        assert_str(scalar, "null\n");
}

/* ---- miscellaneous (§5.3, §5.11) ------------------------------------------------------------ */

static void test_swap(void)
{
        JSObject a, b;

        a("x")[1] = 2.5;
        b = "text";
        a.swap(b);
        assert_str(a.dump(), "\"text\"");
        assert_str(b.dump(), "{\"x\":[null,2.5]}");
        b.swap(b);
        assert_str(b.dump(), "{\"x\":[null,2.5]}");
        JSObject c;
        c = 5;
        a.swap(c);
        g_assert_cmpint(a.getInt(), ==, 5);
        assert_str(c.getString(), "text");
}

static void test_version(void)
{
        const char *v = JSObject::getVersion(); /* JS-VER-1 */

        g_assert_nonnull(v);
        g_assert_cmpuint(strlen(v), >, 0);
        g_assert_nonnull(strstr(v, "jansson"));
        g_assert_true(v == JSObject::getVersion());
}

/* ---- threads and stacks (JS-THR-1, G-56, G-51, G-78) ---------------------------------------- */

static const JSObject *shared_value;

static gpointer thread_worker(gpointer data)
{
        long id = (long)(intptr_t)data;

        for (int i = 0; i < 2000; i++) {
                JSObject mine;
                const JSObject &c = *shared_value;
                JSObject &scratch = mine[-1];
                scratch = id;
                scratch("k") = i;
                g_assert_true(c("missing").isNull());
                g_assert_true(c("list")[99].isNull());
                g_assert_cmpint(c("list")[1].getInt(), ==, 2);
                assert_str(c.dump(), "{\"list\":[1,2,3]}");
                g_assert_true(mine.isNull());
        }
        return NULL;
}

static void test_threads_share_null_object(void)
{
        JSObject shared = loaded("{\"list\":[1,2,3]}");
        GThread *t[8];

        shared_value = &shared;
        for (long i = 0; i < 8; i++)
                t[i] = g_thread_new("jsobject", thread_worker, (gpointer)(intptr_t)i);
        for (int i = 0; i < 8; i++)
                g_thread_join(t[i]);
        g_assert_true(Peek::null_object().isNull());
}

/* Sanitizers multiply stack frames; the limit is only meaningful without them. */
#if defined __SANITIZE_ADDRESS__
#define SMALL_STACK (512 * 1024)
#elif defined __has_feature
#if __has_feature(address_sanitizer)
#define SMALL_STACK (512 * 1024)
#endif
#endif
#ifndef SMALL_STACK
#define SMALL_STACK (32 * 1024)
#endif

static void *small_stack_worker(void *arg)
{
        std::string *text = (std::string *)arg;
        JSObject o;

        if (!o.load(*text))
                return (void *)"load";
        JSObject copy = o;
        std::string out = copy.dump();
        if (out != *text)
                return (void *)"dump";
        out.clear();
        copy.prettyDump(out);
        if (!o.load(out))
                return (void *)"pretty";
        json_t *j = jsobject_to_json(o);
        if (!j)
                return (void *)"to_json";
        jsobject_from_json(copy, j);
        json_decref(j);
        return NULL;
}

/* G-78: the documentation's session threads have 32 KiB stacks; G-46 promises 64 levels. */
static void test_small_stack_64_levels(void)
{
        std::string text;
        pthread_attr_t attr;
        pthread_t t;
        void *result = (void *)"not run";

        for (int i = 0; i < 32; i++)
                text += "{\"k\":[";
        text += "\"leaf\"";
        for (int i = 0; i < 32; i++)
                text += "]}";
        g_assert_cmpint(pthread_attr_init(&attr), ==, 0);
        g_assert_cmpint(pthread_attr_setstacksize(&attr, SMALL_STACK), ==, 0);
        g_assert_cmpint(pthread_create(&t, &attr, small_stack_worker, &text), ==, 0);
        g_assert_cmpint(pthread_join(t, &result), ==, 0);
        pthread_attr_destroy(&attr);
        g_assert_null(result);
}

/* ---- jsobject-json.h ------------------------------------------------------------------------ */

static std::string jansson_text(const json_t *j)
{
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        std::string r = s ? s : "(dump failed)";
        free(s);
        return r;
}

static void test_bridge_to_json(void)
{
        JSObject o;
        json_t *j;

        o("a")[0] = 1;
        o("a")[1] = 2.5;
        o("a")[2] = "x";
        o("a")[3] = true;
        o("a")[4];
        o("b")("c") = false;
        o("e")("x");
        o("e").erase("x");
        o("nan") = std::numeric_limits<double>::quiet_NaN();
        o("nul") = std::string("a\0b", 3);
        o(std::string("k\0ey", 4)) = 1;
        j = jsobject_to_json(o);
        g_assert_nonnull(j);
        assert_str(jansson_text(j),
                        "{\"a\":[1,2.5,\"x\",true,null],\"b\":{\"c\":false},\"e\":{},"
                        "\"k\\u0000ey\":1,\"nan\":null,\"nul\":\"a\\u0000b\"}");
        g_assert_true(json_is_null(json_object_get(j, "nan")));
        g_assert_cmpuint(json_string_length(json_object_get(j, "nul")), ==, 3);
        g_assert_cmpint(json_integer_value(json_array_get(json_object_get(j, "a"), 0)), ==, 1);
        g_assert_cmpfloat(json_real_value(json_array_get(json_object_get(j, "a"), 1)), ==, 2.5);
        g_assert_cmpuint(json_object_size(j), ==, 6);
        json_decref(j);

        JSObject s;
        s = "\xff";
        j = jsobject_to_json(s);
        assert_str(json_string_value(j), "\xef\xbf\xbd");
        json_decref(j);
        s = 7;
        j = jsobject_to_json(s);
        g_assert_true(json_is_integer(j));
        g_assert_cmpint(json_integer_value(j), ==, 7);
        json_decref(j);
        s.clear();
        j = jsobject_to_json(s);
        g_assert_true(json_is_null(j));
        json_decref(j);
}

/* The C core parses with plain jansson: whatever dump() writes must be acceptable to it. */
static void test_bridge_dump_text_is_jansson_text(void)
{
        JSObject o;
        json_error_t err;
        json_t *j;

        o("big") = 9223372036854775808.0;
        o("huge") = 1e300;
        o("neg") = -18446744073709551616.0;
        o("min") = LLONG_MIN;
        o("nan") = std::numeric_limits<double>::quiet_NaN();
        o("bad") = "\xff\xc3";
        o("ctl") = std::string("\0\x01", 2);
        o("deep")[0][0][0]("x") = -0.0;
        std::string text = o.dump();
        j = json_loadb(text.data(), text.size(), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j)
                g_error("jansson refused dump() text %s: %s", text.c_str(), err.text);
        g_assert_true(json_is_real(json_object_get(j, "big")));
        g_assert_cmpfloat(json_real_value(json_object_get(j, "big")), ==, 9223372036854775808.0);
        json_decref(j);
}

static void test_bridge_from_json(void)
{
        JSObject o;
        json_error_t err;
        json_t *j = json_loads("{\"b\":[1,2.5,\"x\",true,false,null,{}],\"a\":{\"c\":[]},"
                               "\"i\":9223372036854775807}",
                               0, &err);

        g_assert_nonnull(j);
        o("old") = 1;
        jsobject_from_json(o, j);
        assert_str(o.dump(),
                        "{\"a\":{\"c\":[]},\"b\":[1,2.5,\"x\",true,false,null,{}],"
                        "\"i\":9223372036854775807}");
        g_assert_cmpint(o("b")[1].type(), ==, JSObject::JSTFloat);
        g_assert_cmpint(o("b")[0].type(), ==, JSObject::JSTInt);
        json_decref(j);

        jsobject_from_json(o, NULL);
        g_assert_true(o.isNull());

        j = json_stringn("a\0b", 3);
        jsobject_from_json(o, j);
        assert_bytes(o.getString(), std::string("a\0b", 3));
        json_decref(j);

        /* round trip through json_t keeps the value */
        JSObject src = loaded("{\"x\":[1,{\"y\":\"z\"},-0.5,1e300],\"t\":true}");
        j = jsobject_to_json(src);
        jsobject_from_json(o, j);
        json_decref(j);
        assert_str(o.dump(), src.dump());
}

int main(int argc, char **argv)
{
        setlocale(LC_ALL, "C");
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/jsobject/layout/member-order", test_layout_member_order);
        g_test_add_func("/jsobject/construct/is-null", test_construct_is_null);
        g_test_add_func("/jsobject/construct/type-predicates-and-clear", test_type_predicates);

        g_test_add_func("/jsobject/assign/bool-and-strings", test_assign_bool_and_strings);
        g_test_add_func("/jsobject/assign/floats", test_assign_floats);
        g_test_add_func("/jsobject/assign/long-long-range-switch", test_assign_long_long);
        g_test_add_func("/jsobject/assign/template-integers", test_assign_template_integers);
        g_test_add_func("/jsobject/assign/copy-is-deep", test_assign_copy_is_deep);
        g_test_add_func("/jsobject/assign/clears-containers", test_assign_clears_containers);
        g_test_add_func("/jsobject/assign/from-own-parts", test_assign_from_own_parts);
        g_test_add_func("/jsobject/assign/stale-containers-ignored", test_stale_containers_ignored);

        g_test_add_func("/jsobject/get/null-and-containers", test_get_null_and_containers);
        g_test_add_func("/jsobject/get/from-bool", test_get_bool_source);
        g_test_add_func("/jsobject/get/from-int", test_get_int_source);
        g_test_add_func("/jsobject/get/from-float", test_get_float_source);
        g_test_add_func("/jsobject/get/from-string", test_get_string_source);
        g_test_add_func("/jsobject/get/string-pointer", test_get_string_pointer);
        g_test_add_func("/jsobject/get/conversion-operators", test_conversion_operators);
        g_test_add_func("/jsobject/get/numbers-ignore-locale", test_numbers_ignore_locale);

        g_test_add_func("/jsobject/object/non-const-read-creates", test_object_read_creates_member);
        g_test_add_func("/jsobject/object/other-types-become-object",
                        test_object_from_null_and_other_types);
        g_test_add_func("/jsobject/object/exists-erase", test_object_exists_erase);
        g_test_add_func("/jsobject/object/null-name", test_object_null_name);

        g_test_add_func("/jsobject/array/grows-with-nulls", test_array_grows);
        g_test_add_func("/jsobject/array/negative-index-harmless",
                        test_array_negative_index_is_harmless);
        g_test_add_func("/jsobject/array/size-of-other-types", test_array_size_of_other_types);
        g_test_add_func("/jsobject/array/resize", test_array_resize);
        g_test_add_func("/jsobject/array/nested-build", test_array_nested_build);

        g_test_add_func("/jsobject/iterate/bytewise-order", test_iterate_bytewise_order);

        g_test_add_func("/jsobject/load/whitespace-and-top-level",
                        test_load_whitespace_and_top_level);
        g_test_add_func("/jsobject/load/failures-leave-null", test_load_failures_leave_null);
        g_test_add_func("/jsobject/load/nul-byte-fails", test_load_nul_byte_fails);
        g_test_add_func("/jsobject/load/replaces-content", test_load_replaces_content);
        g_test_add_func("/jsobject/load/duplicate-names-last-wins",
                        test_load_duplicate_names_last_wins);
        g_test_add_func("/jsobject/load/depth-limit", test_load_depth_limit);
        g_test_add_func("/jsobject/load/unicode", test_load_unicode);
        g_test_add_func("/jsobject/load/refuses-what-jansson-refuses",
                        test_load_refuses_what_jansson_refuses);
        g_test_add_func("/jsobject/load/numbers", test_load_numbers);
        g_test_add_func("/jsobject/load/int64-round-trip", test_int64_round_trip);

        g_test_add_func("/jsobject/dump/compact-example", test_dump_compact_example);
        g_test_add_func("/jsobject/dump/escape-vector", test_dump_escape_vector);
        g_test_add_func("/jsobject/dump/other-controls", test_dump_other_controls);
        g_test_add_func("/jsobject/dump/ill-formed-utf8", test_dump_replaces_ill_formed_utf8);
        g_test_add_func("/jsobject/dump/numbers", test_dump_numbers);
        g_test_add_func("/jsobject/dump/dump-load-dump-identical", test_dump_load_dump_identical);
        g_test_add_func("/jsobject/dump/deep-tree", test_dump_deep_tree);
        g_test_add_func("/jsobject/logdump/hides-password", test_logdump_hides_password);
        g_test_add_func("/jsobject/logdump/scalar-root", test_logdump_scalar_root);
        g_test_add_func("/jsobject/prettydump/layout", test_pretty_dump);

        g_test_add_func("/jsobject/misc/swap", test_swap);
        g_test_add_func("/jsobject/misc/version", test_version);
        g_test_add_func("/jsobject/threads/shared-null-object", test_threads_share_null_object);
        g_test_add_func("/jsobject/threads/small-stack-64-levels", test_small_stack_64_levels);

        g_test_add_func("/jsobject/bridge/to-json", test_bridge_to_json);
        g_test_add_func("/jsobject/bridge/from-json", test_bridge_from_json);
        g_test_add_func("/jsobject/bridge/dump-text-is-jansson-text",
                        test_bridge_dump_text_is_jansson_text);

        return g_test_run();
}
