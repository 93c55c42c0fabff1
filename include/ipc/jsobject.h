/* <ipc/jsobject.h> — legacy vfiipc JSON value class JSObject (legacy-api.md §5).
 *
 * Declarations, member order and inline bodies are those of the legacy header (§5.1,
 * JS-LAYOUT-1): applications compile the inline members into their own binaries, so the
 * layout and the storage convention (value in the member selected by v_type) are ABI.
 * Deliberate improvements over the legacy inline bodies, all invisible to binaries built
 * against the legacy header:
 *   - the constructor initialises every scalar member (copying a default-constructed value
 *     no longer reads indeterminate bool/double/long);
 *   - every assignment operator also empties v_string, v_object and v_array (G-52);
 *   - getString(const char *defaultval) treats a NULL defaultval as "" (G-57).
 * Threads: no internal locking (JS-THR-1, G-56); concurrent const access is safe. */
#ifndef IPC_JSOBJECT_H_150611
#define IPC_JSOBJECT_H_150611

/* HDR-3: applications may rely on exactly these transitive includes. */
#include <string>
#include <map>
#include <vector>
#include <limits.h>

/* HDR-5: export on when building the library, nothing otherwise; #undef'd at the end. */
#if defined _WIN32
#  if defined VFI_IPC_SHARED_EXPORT
#    define DllSpec __declspec(dllexport)
#  else
#    define DllSpec
#  endif
#elif defined __GNUC__ && defined VFI_IPC_SHARED_EXPORT
#  define DllSpec __attribute__((visibility("default")))
#else
#  define DllSpec
#endif

namespace vfiipc {

class DllSpec JSObject {
 public:
        /* JS-LAYOUT-2: the values are implicit (0 … 6) and part of the ABI. */
        enum JSType {
                JSTNull,
                JSTBool,
                JSTString,
                JSTInt,
                JSTFloat,
                JSTObject,
                JSTArray
        };

 protected:
        /* JS-LAYOUT-1: this order is ABI; the value lives in the member v_type selects. */
        JSType v_type;
        bool v_bool;
        std::string v_string;
        double v_floatnum;
        long v_intnum;
        std::map<std::string, JSObject> v_object;
        std::vector<JSObject> v_array;

        /* JS-LAYOUT-3: what const lookups return for missing members/elements. */
        static JSObject NullObject;

        /* JS-PROT-1: workers behind load()/dump()/logdump()/prettyDump(), called from inline
         * code, so they keep these exact signatures. parse returns the number of characters
         * consumed, or a negative value on failure (JS-LOAD-1). */
        int parse(const char *s);
        int parse(const char *s, unsigned nestinglevel);

        void dump(std::string &s, bool (*filter_cb)(const std::string &key)) const;
        void prettyDump(std::string &out, int indent) const;

 public:
        JSObject() : v_type(JSTNull), v_bool(false), v_floatnum(0.0), v_intnum(0)
        {
        }

        JSType type() const
        {
                return v_type;
        }

        bool isNull() const
        {
                return v_type == JSTNull;
        }

        bool isBool() const
        {
                return v_type == JSTBool;
        }

        bool isString() const
        {
                return v_type == JSTString;
        }

        bool isNumber() const
        {
                return v_type == JSTInt || v_type == JSTFloat;
        }

        bool isObject() const
        {
                return v_type == JSTObject;
        }

        bool isArray() const
        {
                return v_type == JSTArray;
        }

        std::string getString() const;

        /* JS-GET-2; G-57: a NULL default is "" instead of undefined behaviour. */
        std::string getString(const char *defaultval) const
        {
                if (isNull())
                        return defaultval ? defaultval : "";
                return getString();
        }

        const std::string *getStringP() const;
        std::string *getStringP();
        double getNumber() const;
        long getInt() const;
        long long getInt64() const;
        bool getBool() const;

        /* §5.5 conversion operators: getInt()/getInt64()/getNumber() narrowed by a plain C
         * cast (JS-CONV-3). JS-CONV-1/-2 are consequences of this set and stay as they are. */
        operator bool() const
        {
                return getBool();
        }

        operator std::string() const
        {
                return getString();
        }

        operator char() const
        {
                return (char)getInt();
        }

        operator unsigned char() const
        {
                return (unsigned char)getInt();
        }

        operator short() const
        {
                return (short)getInt();
        }

        operator unsigned short() const
        {
                return (unsigned short)getInt();
        }

        operator int() const
        {
                return (int)getInt();
        }

        operator unsigned() const
        {
                return (unsigned)getInt();
        }

        operator long() const
        {
                return (long)getInt();
        }

        operator unsigned long() const
        {
                return (unsigned long)getInt();
        }

        operator long long() const
        {
                return (long long)getInt64();
        }

        operator unsigned long long() const
        {
                return (unsigned long long)getInt64();
        }

        operator float() const
        {
                return (float)getNumber();
        }

        operator double() const
        {
                return (double)getNumber();
        }

        /* §5.3 */
        void clear()
        {
                v_type = JSTNull;
                v_string.clear();
                v_object.clear();
                v_array.clear();
        }

        /* §5.4. G-52: each assignment also empties the containers, so begin()/end() of a
         * former object see nothing. The string forms assign before clearing because val
         * may point into this value's own string or members. */
        JSObject &operator=(bool val)
        {
                v_type = JSTBool;
                v_bool = val;
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        JSObject &operator=(char *val)
        {
                v_string = val ? val : "";
                v_type = JSTString;
                v_object.clear();
                v_array.clear();
                return *this;
        }

        JSObject &operator=(const char *val)
        {
                v_string = val ? val : "";
                v_type = JSTString;
                v_object.clear();
                v_array.clear();
                return *this;
        }

        JSObject &operator=(const std::string &val)
        {
                v_string = val;
                v_type = JSTString;
                v_object.clear();
                v_array.clear();
                return *this;
        }

        JSObject &operator=(double val)
        {
                v_type = JSTFloat;
                v_floatnum = val;
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        /* Widened to double: 0.1f is stored as 0.100000001490116… */
        JSObject &operator=(float val)
        {
                v_type = JSTFloat;
                v_floatnum = val;
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        /* JS-LAYOUT-4: integers outside long become JSTFloat (JS-ASSIGN-5). */
        JSObject &operator=(long long val)
        {
                if (val > LONG_MAX || val < LONG_MIN) {
                        v_type = JSTFloat;
                        v_floatnum = (double)val;
                } else {
                        v_type = JSTInt;
                        v_intnum = (long)val;
                }
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        JSObject &operator=(unsigned long long val)
        {
                if (val > (unsigned long long)LONG_MAX) {
                        v_type = JSTFloat;
                        v_floatnum = (double)val;
                } else {
                        v_type = JSTInt;
                        v_intnum = (long)val;
                }
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        /* Every other type: the implicit conversion to long, with no range switch
         * (JS-ASSIGN-1 'A' -> 65, -2 NULL/0 -> 0, -3 long double truncates, -4 unsigned
         * long wraps). The conversion must stay implicit: an explicit cast would make
         * pointers assignable, which the legacy header rejects (JS-ASSIGN-6). */
        template <typename T> JSObject &operator=(T val)
        {
                v_type = JSTInt;
                v_intnum = val;
                v_string.clear();
                v_object.clear();
                v_array.clear();
                return *this;
        }

        bool exists(const char *elem) const;
        bool exists(const std::string &elem) const;
        void erase(const char *elem);
        void erase(const std::string &elem);

        JSObject &operator()(const char *elem);
        const JSObject &operator()(const char *elem) const;
        JSObject &operator()(const std::string &elem);
        const JSObject &operator()(const std::string &elem) const;

        JSObject &operator[](int idx);
        const JSObject &operator[](int idx) const;

        /* JS-ARR-4: 0 for everything but arrays, objects included. */
        unsigned size() const
        {
                return v_type == JSTArray ? (unsigned)v_array.size() : 0;
        }

        void resize(unsigned new_size);

        typedef std::map<std::string, JSObject>::iterator iterator;
        typedef std::map<std::string, JSObject>::const_iterator const_iterator;

        /* JS-IT-3: always v_object, whatever the type. */
        iterator begin()
        {
                return v_object.begin();
        }

        iterator end()
        {
                return v_object.end();
        }

        const_iterator begin() const
        {
                return v_object.begin();
        }

        const_iterator end() const
        {
                return v_object.end();
        }

        /* JS-LOAD-1, JS-LOAD-3: a NUL byte anywhere in s makes the lengths differ. */
        bool load(const std::string &s)
        {
                return parse(s.c_str()) == (int)s.length();
        }

        std::string dump() const;
        void dump(std::string &s) const;
        void swap(JSObject &o);
        std::string logdump(bool (*filter_cb)(const std::string &key)) const;
        void prettyDump(std::string &s) const;

        static const char *getVersion();
};

} // namespace vfiipc

#undef DllSpec

#endif
