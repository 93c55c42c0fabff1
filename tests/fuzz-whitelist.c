/* tests/fuzz-whitelist.c — libFuzzer target for the whitelist parser and matcher (§6, G-81).
 * Built with -Dfuzz=true (tests/meson.build, suite 'fuzz'); by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Ilib -I. \
 *         tests/fuzz-whitelist.c lib/remote/whitelist.c lib/core/log.c -o fuzz-whitelist
 *   ./fuzz-whitelist tests/corpus/whitelist */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "remote/whitelist.h"

/* Subjects chosen to reach stars, escapes and the §6.6 example's fields. */
static const char *const subjects[] = {"", "1", "*", "pay_start", "evt_", "cfg*", "\\", "aaaaab"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        whitelist_t *w = NULL;
        unsigned line = 0;
        int r;

        r = whitelist_parse((const char *)data, size, &w, &line);
        if (r < 0) {
                /* Only documented failures; a syntax error always names a line. */
                if (r == -EBADMSG && line == 0)
                        __builtin_trap();
                if (r != -EBADMSG && r != -EFBIG && r != -ENOMEM)
                        __builtin_trap();
                return 0;
        }

        for (size_t i = 0; i < whitelist_n_interfaces(w); i++)
                if (!whitelist_interface(w, i) || !*whitelist_interface(w, i))
                        __builtin_trap();
        for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
                const char *s = subjects[i];

                (void)whitelist_allows(w, WHITELIST_IN, s, "1", s);
                (void)whitelist_allows(w, WHITELIST_OUT, "kiosk", s, s);
        }
        whitelist_free(w);
        return 0;
}
