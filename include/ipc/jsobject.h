/* placeholder: replaced by the JSObject module */
#ifndef IPC_JSOBJECT_H_150611
#define IPC_JSOBJECT_H_150611
#include <string>
namespace vfiipc { class JSObject { public: std::string dump() const; }; }
#endif
