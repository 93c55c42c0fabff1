/* lib/core/log.h — the legacy diagnostics: IPC_LOGMASK, NFY_LOGMASK, IPCTLS_LOGMASK (LOG-1…LOG-7).
 *
 * Each variable is a decimal bit mask of syslog levels (1 = emerg … 128 = debug, G-96);
 * a line is written to stderr iff its level's bit is set. Default: silent.
 * Line layout (LOG-4, G-97): IPC|<file>:<line>|PID=<pid>|<s>.<mmm>|<CHANNEL>:<level>|<text>
 * Any thread may call these functions. */
#pragma once

#include <syslog.h>

#include "core/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum log_channel {
        LOG_CHANNEL_IPC,    /* IPC layer, IPC_LOGMASK */
        LOG_CHANNEL_NFY,    /* notification server, NFY_LOGMASK */
        LOG_CHANNEL_NFYCL,  /* notification client, NFY_LOGMASK */
        LOG_CHANNEL_IPCTLS, /* TLS layer, IPCTLS_LOGMASK */
        _LOG_CHANNEL_MAX,
} log_channel_t;

/* True if a line of this syslog level (LOG_ERR, …) would be written on the channel. */
bool log_enabled(log_channel_t channel, int level);

/* Writes one line atomically to stderr if enabled; returns -errno_value so callers can
 * "return log_...(-EINVAL, ...)". errno_value may be 0. */
int log_write(log_channel_t channel, int level, const char *file, int line, int errno_value,
              const char *fmt, ...) _printf_(6, 7);

/* Re-reads the environment (tests, and after the application called setenv). */
void log_reset(void);

#define log_full(ch, lvl, err, ...)                                                            \
        (log_enabled((ch), (lvl)) ? log_write((ch), (lvl), __FILE__, __LINE__, (err), __VA_ARGS__) \
                                  : -abs(err))

#ifdef __cplusplus
}
#endif

/* Per-channel shorthands used by the modules. */
#define nfy_log(lvl, ...) log_full(LOG_CHANNEL_NFY, (lvl), 0, __VA_ARGS__)
#define nfy_log_errno(lvl, err, ...) log_full(LOG_CHANNEL_NFY, (lvl), (err), __VA_ARGS__)
#define nfycl_log(lvl, ...) log_full(LOG_CHANNEL_NFYCL, (lvl), 0, __VA_ARGS__)
#define nfycl_log_errno(lvl, err, ...) log_full(LOG_CHANNEL_NFYCL, (lvl), (err), __VA_ARGS__)
#define ipc_log(lvl, ...) log_full(LOG_CHANNEL_IPC, (lvl), 0, __VA_ARGS__)
#define ipctls_log(lvl, ...) log_full(LOG_CHANNEL_IPCTLS, (lvl), 0, __VA_ARGS__)
