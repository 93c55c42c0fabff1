/* lib/core/util.h — small helpers shared by every module: cleanup attributes, string compare. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline bool isempty(const char *s)
{
        return !s || !*s;
}

/* Milliseconds on a monotonic clock: CLOCK_MONOTONIC, or CLOCK_MONOTONIC_COARSE (a tick's
 * accuracy, no system call) for the per-message clocks of the broker and the acknowledgements. */
static inline int64_t monotonic_ms(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
