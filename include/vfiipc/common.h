/* <vfiipc/common.h> — definitions shared by the public C headers of vfiipc. */
#ifndef VFIIPC_COMMON_H
#define VFIIPC_COMMON_H

#ifndef VFIIPC_PUBLIC
#if defined(__GNUC__)
#define VFIIPC_PUBLIC __attribute__((visibility("default")))
#else
#define VFIIPC_PUBLIC
#endif
#endif

#endif
