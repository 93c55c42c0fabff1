/* tests/fuzz-json.c — libFuzzer target for JSON text at the edges (lib/json/json-text.c): what
 * the broker validates, the client parses and both write. Built with -Dfuzz=true (see
 * tests/meson.build); seeds in tests/corpus/json/. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        json_error_t err;
        json_t *j, *back;
        char *out, *again;
        size_t len, len2;
        int r;

        /* validate() and parse() agree, and a refusal is -EINVAL with a message. */
        r = json_text_validate(text, size, &err);
        j = json_text_parse(text, size, NULL);
        if ((r == 0) != (j != NULL))
                __builtin_trap();
        if (r < 0) {
                if (r != -EINVAL || !err.text[0])
                        __builtin_trap();
                return 0;
        }

        /* What vfiipc writes, it reads back as the same value, and writes the same again. */
        out = json_text_dump(j, &len);
        if (!out)
                __builtin_trap();
        if (strlen(out) != len || json_text_validate(out, len, NULL) < 0)
                __builtin_trap();
        back = json_text_parse(out, len, &err);
        if (!back || !json_equal(j, back))
                __builtin_trap();
        again = json_text_dump(back, &len2);
        if (!again || len2 != len || memcmp(out, again, len) != 0)
                __builtin_trap();

        free(again);
        free(out);
        json_decref(back);
        json_decref(j);
        return 0;
}
