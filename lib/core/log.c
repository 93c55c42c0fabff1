/* lib/core/log.c — legacy *_LOGMASK logging to stderr (LOG-1…LOG-7, G-96, G-97). */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static const char *const channel_name[_LOG_CHANNEL_MAX] = {"IPC", "NFY", "NFYCL", "IPCTLS"};
static const char *const channel_env[_LOG_CHANNEL_MAX] = {"IPC_LOGMASK", "NFY_LOGMASK",
                                                          "NFY_LOGMASK", "IPCTLS_LOGMASK"};
static const char *const level_name[8] = {"emerg",  "alert", "crit", "err",
                                          "warning", "notice", "info", "debug"};

/* -1: not read yet. Reading getenv() lazily lets applications setenv() before first use (LOG-3). */
static atomic_int channel_mask[_LOG_CHANNEL_MAX] = {-1, -1, -1, -1};
/* First-use time per channel in ms (LOG-4: time counted from the component's first use). */
static atomic_llong channel_start[_LOG_CHANNEL_MAX];

static int mask_parse(const char *s)
{
        char *end;
        long v;

        /* strtol() alone would also take " 8" and "+8"; only plain digits are a decimal mask. */
        if (!s || !*s || strspn(s, "0123456789") != strlen(s))
                return 0;
        errno = 0;
        v = strtol(s, &end, 10);
        /* G-96: a value that is not a decimal number counts as 0. */
        if (errno || *end || v < 0)
                return 0;
        return (int)(v & 0xff);
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_enabled(log_channel_t channel, int level)
{
        int m;

        if ((unsigned)channel >= _LOG_CHANNEL_MAX || level < 0 || level > 7)
                return false;
        m = atomic_load_explicit(&channel_mask[channel], memory_order_relaxed);
        if (m < 0) {
                m = mask_parse(getenv(channel_env[channel]));
                atomic_store(&channel_mask[channel], m);
        }
        return m & (1 << level);
}

void log_reset(void)
{
        for (int i = 0; i < _LOG_CHANNEL_MAX; i++)
                atomic_store(&channel_mask[i], -1);
}

int log_write(log_channel_t channel, int level, const char *file, int line, int errno_value,
              const char *fmt, ...)
{
        char buf[1024]; /* small: callers may run on 32 KiB stacks (G-78) */
        const char *base;
        long long start, t, zero = 0;
        va_list ap;
        int n;

        if (!log_enabled(channel, level))
                return -abs(errno_value);

        t = now_ms();
        start = atomic_load(&channel_start[channel]);
        if (start == 0 && atomic_compare_exchange_strong(&channel_start[channel], &zero, t))
                start = t;
        else if (start == 0)
                start = atomic_load(&channel_start[channel]);
        t -= start;

        base = strrchr(file, '/');
        base = base ? base + 1 : file;
        n = snprintf(buf, sizeof(buf), "IPC|%s:%d|PID=%d|%lld.%03lld|%s:%s|", base, line,
                     (int)getpid(), t / 1000, t % 1000, channel_name[channel], level_name[level]);
        if (n < 0 || (size_t)n >= sizeof(buf))
                n = 0;
        va_start(ap, fmt);
        n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
        va_end(ap);
        if ((size_t)n > sizeof(buf) - 2)
                n = sizeof(buf) - 2;
        if (errno_value) {
                int k = snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(abs(errno_value)));
                if (k > 0)
                        n = (size_t)(n + k) > sizeof(buf) - 2 ? (int)sizeof(buf) - 2 : n + k;
        }
        buf[n++] = '\n';
        /* One write(2) per line so lines of concurrent threads never interleave (G-97). */
        (void)!write(STDERR_FILENO, buf, (size_t)n);
        return -abs(errno_value);
}
