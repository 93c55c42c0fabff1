/* tests/fuzz-nfy.c — libFuzzer target for the NFY frame codec (§8.2, §8.7, G-88).
 * Built with -Dfuzz=true (tests/meson.build, suite 'fuzz'); by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Ilib -I. \
 *         tests/fuzz-nfy.c lib/remote/nfy.c lib/json/json-text.c lib/core/log.c \
 *         -ljansson -o fuzz-nfy
 *   ./fuzz-nfy tests/corpus/nfy */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote/nfy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every message must survive check → encode → decode unchanged (NFYC-3 "as received"). */
static void check_message(json_t *msg)
{
        nfy_decoder_t *d = NULL;
        nfy_message_t m;
        uint8_t *frame = NULL;
        size_t len = 0;
        json_t *back = NULL;
        int r;

        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "type")))
                __builtin_trap();
        r = nfy_message_check(msg, &m);
        if (r < 0 && r != -EINVAL)
                __builtin_trap();
        if (r == 0 && m.type != NFY_TYPE_UNKNOWN && (!m.to || !m.notification))
                __builtin_trap();

        r = nfy_frame_encode(msg, &frame, &len);
        if (r == -EMSGSIZE || r == -ENOMEM)
                return;
        if (r < 0 || len < NFY_HEADER_LEN || len > NFY_FRAME_MAX)
                __builtin_trap();
        if (nfy_decoder_new(&d) < 0)
                return;
        if (nfy_decoder_feed(d, frame, len) < 0 || nfy_decoder_next(d, &back) != 1 ||
            !json_equal(msg, back) || nfy_decoder_buffered(d) != 0)
                __builtin_trap();
        json_decref(back);
        nfy_decoder_free(d);
        free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        nfy_decoder_t *d = NULL;
        size_t chunk, off = 0;

        if (size < 1)
                return 0;
        /* The first byte (still part of the stream, so the seeds are plain frames) picks the
         * feed size, so that frame boundaries fall everywhere. */
        chunk = (size_t)data[0] + 1;

        if (nfy_decoder_new(&d) < 0)
                return 0;
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                json_t *msg = NULL;
                int r;

                if (nfy_decoder_feed(d, data + off, n) < 0)
                        __builtin_trap();
                off += n;
                while ((r = nfy_decoder_next(d, &msg)) == 1) {
                        check_message(msg);
                        json_decref(msg);
                        msg = NULL;
                }
                if (r == -EPROTO)
                        break;
                if (r != 0 || nfy_decoder_buffered(d) >= NFY_FRAME_MAX)
                        __builtin_trap();
        }
        nfy_decoder_free(d);
        return 0;
}
