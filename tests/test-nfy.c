/* tests/test-nfy.c — the NFY frame codec (notification-service.md §8.2, §8.6, §8.7, G-88). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "remote/nfy.h"

#include "nfy-frames.h"

/* A frame with the given body, size field and message ID. */
static void append_frame_raw(GByteArray *b, const void *body, size_t len, uint32_t size,
                             uint32_t id)
{
        guint8 h[12] = {0x00, 0x4E, 0x46, 0x59};

        h[4] = (guint8)(size >> 24), h[5] = (guint8)(size >> 16), h[6] = (guint8)(size >> 8),
        h[7] = (guint8)size;
        h[8] = (guint8)(id >> 24), h[9] = (guint8)(id >> 16), h[10] = (guint8)(id >> 8),
        h[11] = (guint8)id;
        g_byte_array_append(b, h, sizeof(h));
        g_byte_array_append(b, body, (guint)len);
}

static void append_frame(GByteArray *b, const char *body)
{
        append_frame_raw(b, body, strlen(body), (uint32_t)(4 + strlen(body)), 0);
}

static nfy_decoder_t *decoder_new(void)
{
        nfy_decoder_t *d = NULL;

        g_assert_cmpint(nfy_decoder_new(&d), ==, 0);
        g_assert_nonnull(d);
        return d;
}

static void feed(nfy_decoder_t *d, const void *p, size_t len)
{
        g_assert_cmpint(nfy_decoder_feed(d, p, len), ==, 0);
}

/* Asserts one message and returns it (caller decrefs). */
static json_t *next_ok(nfy_decoder_t *d)
{
        json_t *msg = NULL;

        g_assert_cmpint(nfy_decoder_next(d, &msg), ==, 1);
        g_assert_true(json_is_object(msg));
        return msg;
}

static void next_none(nfy_decoder_t *d)
{
        json_t *msg = (json_t *)1;

        g_assert_cmpint(nfy_decoder_next(d, &msg), ==, 0);
        g_assert_true(msg == (json_t *)1);
}

static void assert_type(json_t *msg, const char *type)
{
        g_assert_cmpstr(json_string_value(json_object_get(msg, "type")), ==, type);
        json_decref(msg);
}

/* Decodes one whole buffer; asserts exactly one message and nothing left over. */
static json_t *decode_one(const GByteArray *b)
{
        nfy_decoder_t *d = decoder_new();
        json_t *msg;

        feed(d, b->data, b->len);
        msg = next_ok(d);
        next_none(d);
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, 0);
        nfy_decoder_free(d);
        return msg;
}

static void assert_encodes_to(json_t *msg, const char *hex)
{
        GByteArray *want = hex_bytes(hex);
        uint8_t *frame = NULL;
        size_t len = 0;

        g_assert_cmpint(nfy_frame_encode(msg, &frame, &len), ==, 0);
        g_assert_cmpmem(frame, len, want->data, want->len);
        free(frame);
        g_byte_array_unref(want);
        json_decref(msg);
}

static json_t *example_parameter(void)
{
        json_t *p = json_pack("{s:s, s:i}", "tone", "high", "count", 2);

        g_assert_nonnull(p);
        return p;
}

/* ---- §8.6 worked examples: decode ------------------------------------------------------- */

static void test_example_decode_a(void)
{
        GByteArray *b = hex_bytes(hex_a);
        json_t *msg;
        nfy_message_t m;

        g_assert_cmpuint(b->len, ==, 85);
        msg = decode_one(b);
        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_cmpint(m.type, ==, NFY_TYPE_REGISTER);
        g_assert_cmpstr(m.type_name, ==, "register");
        g_assert_cmpstr(m.to, ==, "kiosk");
        g_assert_cmpstr(m.notification, ==, "ext_status");
        g_assert_cmpint(m.priority, ==, 5);
        g_assert_null(m.from);
        json_decref(msg);
        g_byte_array_unref(b);
}

static void test_example_decode_b(void)
{
        GByteArray *b = hex_bytes(hex_b);
        json_t *msg;
        nfy_message_t m;

        g_assert_cmpuint(b->len, ==, 74);
        msg = decode_one(b);
        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_cmpint(m.type, ==, NFY_TYPE_UNREGISTER);
        g_assert_cmpstr(m.to, ==, "kiosk");
        g_assert_cmpstr(m.notification, ==, "ext_status");
        json_decref(msg);
        g_byte_array_unref(b);
}

static void check_beep(json_t *msg, nfy_type_t type)
{
        json_t *param = example_parameter();
        nfy_message_t m;

        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_cmpint(m.type, ==, type);
        g_assert_cmpstr(m.from, ==, "kiosk");
        g_assert_cmpstr(m.to, ==, "1");
        g_assert_cmpstr(m.notification, ==, "ext_beep");
        g_assert_cmpuint(m.flags, ==, 0);
        /* §8.4: parameter is embedded as a JSON value */
        g_assert_true(json_equal(m.parameter, param));
        json_decref(param);
}

static void test_example_decode_c(void)
{
        GByteArray *b = hex_bytes(hex_c);
        json_t *msg;
        nfy_message_t m;

        g_assert_cmpuint(b->len, ==, 127);
        msg = decode_one(b);
        check_beep(msg, NFY_TYPE_NOTIFY);
        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_null(m.reference);
        json_decref(msg);
        g_byte_array_unref(b);
}

static void test_example_decode_d(void)
{
        GByteArray *b = hex_bytes(hex_d);
        json_t *msg;
        nfy_message_t m;

        g_assert_cmpuint(b->len, ==, 149);
        msg = decode_one(b);
        check_beep(msg, NFY_TYPE_UNICAST_ERROR);
        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_true(json_is_integer(m.reference));
        g_assert_cmpint(json_integer_value(m.reference), ==, 17);
        json_decref(msg);
        g_byte_array_unref(b);
}

/* ---- §8.6 worked examples: encode byte for byte (NFY-6: compact, sorted members) --------- */

static void test_example_encode_a(void)
{
        json_t *msg = NULL;

        g_assert_cmpint(nfy_message_new_register("kiosk", "ext_status", 5, &msg), ==, 0);
        assert_encodes_to(msg, hex_a);
}

static void test_example_encode_b(void)
{
        json_t *msg = NULL;

        g_assert_cmpint(nfy_message_new_unregister("kiosk", "ext_status", &msg), ==, 0);
        assert_encodes_to(msg, hex_b);
}

static void test_example_encode_c(void)
{
        json_t *param = example_parameter(), *msg = NULL;

        g_assert_cmpint(nfy_message_new_notify("kiosk", "1", "ext_beep", 0, NULL, param, &msg), ==,
                        0);
        json_decref(param);
        assert_encodes_to(msg, hex_c);
}

static void test_example_encode_d(void)
{
        json_t *param = example_parameter(), *ref = json_integer(17), *msg = NULL;

        g_assert_cmpint(
            nfy_message_new_unicast_error("kiosk", "1", "ext_beep", 0, ref, param, &msg), ==, 0);
        json_decref(param);
        json_decref(ref);
        assert_encodes_to(msg, hex_d);
}

/* Encoding a decoded message reproduces the frame (NFYC-3 "as received"). */
static void test_example_roundtrip(void)
{
        const char *const hexes[] = {hex_a, hex_b, hex_c, hex_d};

        for (size_t i = 0; i < G_N_ELEMENTS(hexes); i++) {
                GByteArray *b = hex_bytes(hexes[i]);

                assert_encodes_to(decode_one(b), hexes[i]);
                g_byte_array_unref(b);
        }
}

/* ---- encoder ------------------------------------------------------------------------------ */

static void test_encode_parameter_absent_is_null(void)
{
        json_t *msg = NULL;
        uint8_t *frame = NULL;
        size_t len = 0;
        const char want[] = "{\"flags\":4294967295,\"from\":\"a\",\"notification\":\"n\","
                            "\"parameter\":null,\"to\":\"*\",\"type\":\"notify\"}";

        g_assert_cmpint(nfy_message_new_notify("a", "*", "n", UINT32_MAX, NULL, NULL, &msg), ==, 0);
        g_assert_cmpint(nfy_frame_encode(msg, &frame, &len), ==, 0);
        g_assert_cmpuint(len, ==, 12 + strlen(want));
        g_assert_cmpmem(frame + 12, len - 12, want, strlen(want));
        g_assert_cmpuint(frame[7], ==, (4 + strlen(want)) & 0xff);
        free(frame);
        json_decref(msg);
}

static void test_encode_refuses(void)
{
        json_t *arr = json_array(), *big = json_object(), *msg = NULL;
        char *s = g_malloc(NFY_BODY_MAX + 1);
        uint8_t *frame = (uint8_t *)1;
        size_t len = 7;

        g_assert_cmpint(nfy_frame_encode(arr, &frame, &len), ==, -EINVAL);
        g_assert_cmpint(nfy_frame_encode(NULL, &frame, &len), ==, -EINVAL);
        /* NFY-6: a body over 1 MiB would be corrupt for the receiver */
        memset(s, 'a', NFY_BODY_MAX);
        s[NFY_BODY_MAX] = '\0';
        json_object_set_new(big, "type", json_string(s));
        g_assert_cmpint(nfy_frame_encode(big, &frame, &len), ==, -EMSGSIZE);
        g_assert_true(frame == (uint8_t *)1);
        g_assert_cmpuint(len, ==, 7);

        g_assert_cmpint(nfy_message_new_notify(NULL, "1", "n", 0, NULL, NULL, &msg), ==, -EINVAL);
        g_assert_cmpint(nfy_message_new_register("k", NULL, 0, &msg), ==, -EINVAL);
        g_assert_cmpint(nfy_message_new_unregister(NULL, "n", &msg), ==, -EINVAL);
        g_assert_null(msg);
        g_free(s);
        json_decref(arr);
        json_decref(big);
}

/* ---- decoder: framing --------------------------------------------------------------------- */

/* NFYC-1: the message ID is ignored. */
static void test_decode_message_id_ignored(void)
{
        GByteArray *b = g_byte_array_new();
        const char body[] = "{\"type\":\"x\"}";

        append_frame_raw(b, body, strlen(body), 4 + strlen(body), 0xDEADBEEF);
        assert_type(decode_one(b), "x");
        g_byte_array_unref(b);
}

/* NFY-6: any JSON whitespace and member order. */
static void test_decode_whitespace_and_order(void)
{
        GByteArray *b = g_byte_array_new();
        json_t *msg;
        nfy_message_t m;

        append_frame(b, " \r\n\t{ \"type\" : \"register\",\n\"priority\": -3, \"to\":\"k\", "
                        "\"notification\" :\"n\" }\n ");
        msg = decode_one(b);
        g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
        g_assert_cmpint(m.type, ==, NFY_TYPE_REGISTER);
        g_assert_cmpint(m.priority, ==, -3);
        json_decref(msg);
        g_byte_array_unref(b);
}

static void test_stream_two_frames_one_feed(void)
{
        GByteArray *b = hex_bytes(hex_a), *c = hex_bytes(hex_c);
        nfy_decoder_t *d = decoder_new();

        g_byte_array_append(b, c->data, c->len);
        feed(d, b->data, b->len);
        assert_type(next_ok(d), "register");
        assert_type(next_ok(d), "notify");
        next_none(d);
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, 0);
        nfy_decoder_free(d);
        g_byte_array_unref(b);
        g_byte_array_unref(c);
}

/* Every frame boundary may fall anywhere: feed one byte at a time. */
static void test_stream_one_byte_at_a_time(void)
{
        const char *const hexes[] = {hex_a, hex_b, hex_c, hex_d};
        const char *const types[] = {"register", "unregister", "notify", "unicast_error"};
        nfy_decoder_t *d = decoder_new();

        for (size_t i = 0; i < G_N_ELEMENTS(hexes); i++) {
                GByteArray *b = hex_bytes(hexes[i]);

                for (guint k = 0; k + 1 < b->len; k++) {
                        feed(d, b->data + k, 1);
                        next_none(d);
                        g_assert_cmpuint(nfy_decoder_buffered(d), ==, k + 1);
                }
                feed(d, b->data + b->len - 1, 1);
                assert_type(next_ok(d), types[i]);
                next_none(d);
                g_byte_array_unref(b);
        }
        nfy_decoder_free(d);
}

static void test_stream_truncated_waits(void)
{
        GByteArray *b = hex_bytes(hex_c);
        nfy_decoder_t *d = decoder_new();

        /* header only, then header + size, then all but the last byte */
        feed(d, b->data, 4);
        next_none(d);
        feed(d, b->data + 4, 4);
        next_none(d);
        feed(d, b->data + 8, b->len - 9);
        next_none(d);
        next_none(d);
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, b->len - 1);
        feed(d, b->data + b->len - 1, 1);
        assert_type(next_ok(d), "notify");
        nfy_decoder_free(d);
        g_byte_array_unref(b);
}

/* NFY-4: garbage, including pieces of the header, before a frame is skipped. */
static void test_resync_garbage_before_frame(void)
{
        static const guint8 junk[] = {'x', 0x00, 0x4E, 0x46, 'y', 0x00, 0x00, 0x4E, 0x00,
                                      0x4E, 0x46, 0x00, 'N',  'F',  0xff, 0x00, 0x4E};
        GByteArray *a = hex_bytes(hex_a);
        nfy_decoder_t *d = decoder_new();

        feed(d, junk, sizeof(junk));
        next_none(d);
        /* only a possible beginning of a header is kept */
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, 2);
        feed(d, a->data, a->len);
        assert_type(next_ok(d), "register");
        next_none(d);

        /* garbage between frames */
        feed(d, junk, sizeof(junk));
        feed(d, a->data, a->len);
        feed(d, "garbage", 7);
        feed(d, a->data, a->len);
        assert_type(next_ok(d), "register");
        assert_type(next_ok(d), "register");
        next_none(d);
        nfy_decoder_free(d);
        g_byte_array_unref(a);
}

/* §8.7, G-88: a size field < 4 or > 1 048 580 is a false header; one byte is skipped. */
static void test_resync_false_size(void)
{
        static const uint32_t sizes[] = {0, 1, 3, NFY_SIZE_MAX + 1, 0x7fffffff, UINT32_MAX};
        GByteArray *a = hex_bytes(hex_a);

        for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
                GByteArray *b = g_byte_array_new();
                nfy_decoder_t *d = decoder_new();

                append_frame_raw(b, "", 0, sizes[i], 0);
                g_byte_array_append(b, a->data, a->len);
                feed(d, b->data, b->len);
                assert_type(next_ok(d), "register");
                next_none(d);
                g_assert_cmpuint(nfy_decoder_buffered(d), ==, 0);
                nfy_decoder_free(d);
                g_byte_array_unref(b);
        }
        g_byte_array_unref(a);
}

/* A false header whose size bytes hide the real header: resync finds it one byte later. */
static void test_resync_false_header_overlapping_frame(void)
{
        GByteArray *a = hex_bytes(hex_a), *b = g_byte_array_new();
        nfy_decoder_t *d = decoder_new();
        static const guint8 lead[] = {0x00, 0x4E, 0x46, 0x59, 0xff};

        /* 00 4E 46 59 FF 00 4E 46 | 59 …: the size would be 0xFF004E46 */
        g_byte_array_append(b, lead, sizeof(lead));
        g_byte_array_append(b, a->data, a->len);
        feed(d, b->data, b->len);
        assert_type(next_ok(d), "register");
        nfy_decoder_free(d);
        g_byte_array_unref(a);
        g_byte_array_unref(b);
}

/* Size 4 (empty body) and size 1 048 580 (1 MiB body) are frame sizes, not false headers. */
static void test_resync_size_edges(void)
{
        nfy_decoder_t *d = decoder_new();
        GByteArray *b = g_byte_array_new(), *a = hex_bytes(hex_a);
        char *body = g_malloc(NFY_BODY_MAX);
        static const char head[] = "{\"type\":\"big\",\"pad\":\"";
        json_t *msg;

        /* the empty body is an empty (invalid) JSON text: discarded, not resynchronised */
        append_frame_raw(b, "", 0, NFY_SIZE_MIN, 0);
        memset(body, 'a', NFY_BODY_MAX);
        memcpy(body, head, strlen(head));
        memcpy(body + NFY_BODY_MAX - 2, "\"}", 2);
        append_frame_raw(b, body, NFY_BODY_MAX, NFY_SIZE_MAX, 0);
        g_byte_array_append(b, a->data, a->len);
        feed(d, b->data, b->len);
        msg = next_ok(d);
        g_assert_cmpuint(strlen(json_string_value(json_object_get(msg, "pad"))), ==,
                         NFY_BODY_MAX - strlen(head) - 2);
        assert_type(msg, "big");
        assert_type(next_ok(d), "register");
        next_none(d);
        nfy_decoder_free(d);
        g_free(body);
        g_byte_array_unref(a);
        g_byte_array_unref(b);
}

/* ---- decoder: discarded bodies (§8.7) ----------------------------------------------------- */

static void test_discard_bad_bodies(void)
{
        static const char *const bodies[] = {
            "{\"type\":\"register\"",          /* invalid JSON */
            "{\"type\":\"x\"} {}",             /* two values */
            "[\"type\",\"notify\"]",           /* not an object */
            "\"notify\"",                      /* not an object */
            "42",                              /* not an object */
            "null",                            /* not an object */
            "{}",                              /* no type */
            "{\"to\":\"k\"}",                  /* no type */
            "{\"type\":5}",                    /* type not a string */
            "{\"type\":null}",                 /* type not a string */
            "{\"type\":[\"register\"]}",       /* type not a string */
            "{\"type\":\"\xff\"}",             /* not UTF-8 */
            "",                                /* empty */
        };
        GByteArray *a = hex_bytes(hex_a);
        nfy_decoder_t *d = decoder_new();

        for (size_t i = 0; i < G_N_ELEMENTS(bodies); i++) {
                GByteArray *b = g_byte_array_new();

                append_frame(b, bodies[i]);
                feed(d, b->data, b->len);
                next_none(d);
                g_assert_cmpuint(nfy_decoder_buffered(d), ==, 0);
                /* the connection stays usable */
                feed(d, b->data, b->len);
                feed(d, a->data, a->len);
                assert_type(next_ok(d), "register");
                next_none(d);
                g_byte_array_unref(b);
        }
        nfy_decoder_free(d);
        g_byte_array_unref(a);
}

/* ---- decoder: garbage limit and bounded memory (G-88) ------------------------------------- */

static void feed_garbage(nfy_decoder_t *d, size_t n, int want_last)
{
        static guint8 chunk[64 * 1024];
        int r = 0;

        memset(chunk, 'x', sizeof(chunk));
        while (n > 0) {
                size_t k = MIN(n, sizeof(chunk));
                json_t *msg = NULL;

                feed(d, chunk, k);
                n -= k;
                r = nfy_decoder_next(d, &msg);
                g_assert_null(msg);
                if (n > 0)
                        g_assert_cmpint(r, ==, 0);
        }
        g_assert_cmpint(r, ==, want_last);
}

static void test_garbage_limit_exact(void)
{
        GByteArray *a = hex_bytes(hex_a);
        nfy_decoder_t *d = decoder_new();

        /* exactly 1 MiB of garbage is still tolerated, and a message resets the count */
        feed_garbage(d, NFY_GARBAGE_MAX, 0);
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, 0);
        feed(d, a->data, a->len);
        assert_type(next_ok(d), "register");
        feed_garbage(d, NFY_GARBAGE_MAX, 0);
        feed(d, a->data, a->len);
        assert_type(next_ok(d), "register");
        nfy_decoder_free(d);
        g_byte_array_unref(a);
}

static void test_garbage_limit_exceeded(void)
{
        GByteArray *a = hex_bytes(hex_a);
        nfy_decoder_t *d = decoder_new();
        json_t *msg = NULL;

        feed_garbage(d, NFY_GARBAGE_MAX + 1, -EPROTO);
        /* sticky: a valid frame afterwards does not revive the connection */
        g_assert_cmpint(nfy_decoder_feed(d, a->data, a->len), ==, -EPROTO);
        g_assert_cmpint(nfy_decoder_next(d, &msg), ==, -EPROTO);
        g_assert_null(msg);
        nfy_decoder_free(d);

        /* in a single feed, with the frame right behind the garbage */
        d = decoder_new();
        {
                GByteArray *b = g_byte_array_new();
                guint8 *junk = g_malloc(NFY_GARBAGE_MAX + 1);

                memset(junk, 0xAA, NFY_GARBAGE_MAX + 1);
                g_byte_array_append(b, junk, NFY_GARBAGE_MAX + 1);
                g_byte_array_append(b, a->data, a->len);
                feed(d, b->data, b->len);
                g_assert_cmpint(nfy_decoder_next(d, &msg), ==, -EPROTO);
                g_assert_null(msg);
                g_free(junk);
                g_byte_array_unref(b);
        }
        nfy_decoder_free(d);
        g_byte_array_unref(a);
}

/* §8.7: a frame with a bad body is discarded but is a frame: it ends a garbage run, so garbage
 * on both sides of it is counted separately. */
static void test_garbage_discarded_frame_ends_run(void)
{
        GByteArray *a = hex_bytes(hex_a), *bad = g_byte_array_new();
        nfy_decoder_t *d = decoder_new();

        append_frame(bad, "[\"not\", \"a\", \"message\"]");
        feed_garbage(d, NFY_GARBAGE_MAX, 0);
        feed(d, bad->data, bad->len);
        next_none(d);
        feed_garbage(d, NFY_GARBAGE_MAX, 0);
        feed(d, a->data, a->len);
        assert_type(next_ok(d), "register");
        /* a maximal frame with a bad body does not count as garbage either */
        {
                GByteArray *big = g_byte_array_new();
                guint8 *body = g_malloc(NFY_BODY_MAX);

                memset(body, ' ', NFY_BODY_MAX);
                append_frame_raw(big, body, NFY_BODY_MAX, NFY_SIZE_MAX, 0);
                feed(d, big->data, big->len);
                next_none(d);
                feed(d, a->data, a->len);
                assert_type(next_ok(d), "register");
                g_free(body);
                g_byte_array_unref(big);
        }
        nfy_decoder_free(d);
        g_byte_array_unref(a);
        g_byte_array_unref(bad);
}

/* A header announcing 1 MiB is held, nothing more; a peer cannot make the buffer grow past
 * NFY_DECODER_MAX_BUFFERED. */
static void test_bounded_buffer(void)
{
        nfy_decoder_t *d = decoder_new();
        GByteArray *b = g_byte_array_new();
        guint8 *junk = g_malloc0(NFY_FRAME_MAX);

        append_frame_raw(b, "{", 1, NFY_SIZE_MAX, 0);
        feed(d, b->data, b->len);
        next_none(d);
        /* draining after each feed of at most NFY_FRAME_MAX bytes always fits */
        feed(d, junk, NFY_FRAME_MAX);
        g_assert_cmpint(nfy_decoder_feed(d, junk, NFY_DECODER_MAX_BUFFERED), ==, -ENOBUFS);
        g_assert_cmpuint(nfy_decoder_buffered(d), ==, b->len + NFY_FRAME_MAX);
        /* the frame is complete now (invalid JSON): discarded, the rest is zero bytes */
        next_none(d);
        g_assert_cmpuint(nfy_decoder_buffered(d), <, 4);
        nfy_decoder_free(d);
        g_free(junk);
        g_byte_array_unref(b);
}

static void test_decoder_api(void)
{
        nfy_decoder_t *d = decoder_new();
        json_t *msg = NULL;

        g_assert_null(nfy_decoder_free(NULL));
        g_assert_cmpint(nfy_decoder_new(NULL), ==, -EINVAL);
        g_assert_cmpint(nfy_decoder_feed(NULL, "x", 1), ==, -EINVAL);
        g_assert_cmpint(nfy_decoder_feed(d, NULL, 1), ==, -EINVAL);
        g_assert_cmpint(nfy_decoder_feed(d, NULL, 0), ==, 0);
        g_assert_cmpint(nfy_decoder_next(NULL, &msg), ==, -EINVAL);
        g_assert_cmpint(nfy_decoder_next(d, NULL), ==, -EINVAL);
        g_assert_cmpuint(nfy_decoder_buffered(NULL), ==, 0);
        next_none(d);
        g_assert_null(nfy_decoder_free(d));
}

/* ---- nfy_message_check (G-88) ------------------------------------------------------------- */

/* *m borrows from the message, so the last one is kept until the next call. */
static json_t *last_checked;

static int check_text(const char *text, nfy_message_t *m)
{
        json_error_t err;

        json_decref(last_checked);
        last_checked = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        g_assert_nonnull(last_checked);
        return nfy_message_check(last_checked, m);
}

static void assert_check_fails(const char *text)
{
        nfy_message_t m = {.priority = 4242};

        if (check_text(text, &m) != -EINVAL)
                g_error("accepted: %s", text);
        g_assert_cmpint(m.priority, ==, 4242); /* untouched */
}

static void assert_check_ok(const char *text, nfy_type_t want)
{
        nfy_message_t m;

        if (check_text(text, &m) != 0)
                g_error("refused: %s", text);
        g_assert_cmpint(m.type, ==, want);
}

static void test_check_required_members(void)
{
        /* to and notification are required strings */
        assert_check_fails("{\"type\":\"register\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"register\",\"to\":\"k\"}");
        assert_check_fails("{\"type\":\"unregister\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"unregister\",\"to\":\"k\"}");
        assert_check_fails("{\"type\":\"register\",\"to\":5,\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"register\",\"to\":\"k\",\"notification\":null}");
        assert_check_fails("{\"type\":\"unregister\",\"to\":[\"k\"],\"notification\":\"n\"}");
        /* for notify also from */
        assert_check_fails("{\"type\":\"notify\",\"to\":\"1\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"notify\",\"from\":1,\"to\":\"1\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"notify\",\"from\":\"a\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"1\"}");
        assert_check_fails("{\"type\":\"unicast_error\",\"to\":\"1\",\"notification\":\"n\"}");
        /* a NUL would cut the name short */
        assert_check_fails("{\"type\":\"register\",\"to\":\"k\\u0000x\",\"notification\":\"n\"}");
        assert_check_fails("{\"type\":\"notify\",\"from\":\"a\\u0000\",\"to\":\"1\","
                           "\"notification\":\"n\"}");
        /* not a message at all */
        assert_check_fails("[]");
        assert_check_fails("{}");
        assert_check_fails("{\"type\":1}");

        assert_check_ok("{\"type\":\"register\",\"to\":\"\",\"notification\":\"\"}",
                        NFY_TYPE_REGISTER);
        assert_check_ok("{\"type\":\"unregister\",\"to\":\"k\",\"notification\":\"n\"}",
                        NFY_TYPE_UNREGISTER);
}

static void test_check_member_types(void)
{
        assert_check_fails(
            "{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\",\"priority\":\"5\"}");
        assert_check_fails(
            "{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\",\"priority\":5.0}");
        assert_check_fails(
            "{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\",\"priority\":null}");
        assert_check_fails("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"1\",\"notification\":"
                           "\"n\",\"flags\":true}");
        assert_check_fails("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"1\",\"notification\":"
                           "\"n\",\"flags\":1.5}");
        /* members a type does not define, and unknown members, are not checked */
        assert_check_ok("{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\",\"from\":1,"
                        "\"flags\":-1,\"extra\":{}}",
                        NFY_TYPE_REGISTER);
        assert_check_ok("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"1\",\"notification\":\"n\","
                        "\"priority\":\"high\"}",
                        NFY_TYPE_NOTIFY);
}

static void test_check_defaults(void)
{
        nfy_message_t m;
        json_t *ref;

        g_assert_cmpint(check_text("{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\"}",
                                   &m),
                        ==, 0);
        g_assert_cmpint(m.priority, ==, 0);

        g_assert_cmpint(
            check_text("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"*\",\"notification\":\"n\"}",
                       &m),
            ==, 0);
        g_assert_cmpuint(m.flags, ==, 0);
        g_assert_true(json_is_null(m.parameter));
        g_assert_null(m.reference);

        /* reference: any JSON value, kept as it is */
        {
                json_t *msg = json_loads("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"*\","
                                         "\"notification\":\"n\",\"reference\":{\"r\":[1,\"x\"]},"
                                         "\"parameter\":\"text\"}",
                                         0, NULL);

                g_assert_cmpint(nfy_message_check(msg, &m), ==, 0);
                ref = json_loads("{\"r\":[1,\"x\"]}", 0, NULL);
                g_assert_true(json_equal(m.reference, ref));
                g_assert_cmpstr(json_string_value(m.parameter), ==, "text");
                json_decref(ref);
                json_decref(msg);
        }
}

/* §8.3, G-88: unknown types are ignored, not refused; their members are not checked. */
static void test_check_unknown_type(void)
{
        nfy_message_t m;

        g_assert_cmpint(check_text("{\"type\":\"subscribe\",\"to\":5}", &m), ==, 0);
        g_assert_cmpint(m.type, ==, NFY_TYPE_UNKNOWN);
        g_assert_cmpstr(m.type_name, ==, "subscribe");
        g_assert_null(m.to);
        assert_check_ok("{\"type\":\"\"}", NFY_TYPE_UNKNOWN);
        assert_check_ok("{\"type\":\"Register\"}", NFY_TYPE_UNKNOWN);
        assert_check_ok("{\"type\":\"register\\u0000\",\"to\":1}", NFY_TYPE_UNKNOWN);
}

static void assert_priority(const char *value, bool ok, int want)
{
        char *text = g_strdup_printf(
            "{\"type\":\"register\",\"to\":\"k\",\"notification\":\"n\",\"priority\":%s}", value);
        nfy_message_t m;

        if (ok) {
                g_assert_cmpint(check_text(text, &m), ==, 0);
                g_assert_cmpint(m.priority, ==, want);
        } else {
                assert_check_fails(text);
        }
        g_free(text);
}

static void assert_flags(const char *value, bool ok, uint32_t want)
{
        char *text = g_strdup_printf("{\"type\":\"notify\",\"from\":\"a\",\"to\":\"1\","
                                     "\"notification\":\"n\",\"flags\":%s}",
                                     value);
        nfy_message_t m;

        if (ok) {
                g_assert_cmpint(check_text(text, &m), ==, 0);
                g_assert_cmpuint(m.flags, ==, want);
        } else {
                assert_check_fails(text);
        }
        g_free(text);
}

/* G-88: priority in int range, flags 0…4294967295. */
static void test_check_ranges(void)
{
        assert_priority("0", true, 0);
        assert_priority("-1", true, -1);
        assert_priority("2147483647", true, INT_MAX);
        assert_priority("-2147483648", true, INT_MIN);
        assert_priority("2147483648", false, 0);
        assert_priority("-2147483649", false, 0);
        assert_priority("9223372036854775807", false, 0);

        assert_flags("0", true, 0);
        assert_flags("1", true, 1);
        assert_flags("4294967295", true, UINT32_MAX);
        assert_flags("4294967296", false, 0);
        assert_flags("-1", false, 0);
        assert_flags("-9223372036854775808", false, 0);
}

int main(int argc, char **argv)
{
        int r;

        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/nfy/example/decode-a-register", test_example_decode_a);
        g_test_add_func("/nfy/example/decode-b-unregister", test_example_decode_b);
        g_test_add_func("/nfy/example/decode-c-notify", test_example_decode_c);
        g_test_add_func("/nfy/example/decode-d-unicast-error", test_example_decode_d);
        g_test_add_func("/nfy/example/encode-a-register", test_example_encode_a);
        g_test_add_func("/nfy/example/encode-b-unregister", test_example_encode_b);
        g_test_add_func("/nfy/example/encode-c-notify", test_example_encode_c);
        g_test_add_func("/nfy/example/encode-d-unicast-error", test_example_encode_d);
        g_test_add_func("/nfy/example/decode-encode-roundtrip", test_example_roundtrip);

        g_test_add_func("/nfy/encode/parameter-absent-is-null",
                        test_encode_parameter_absent_is_null);
        g_test_add_func("/nfy/encode/refuses-non-object-and-oversized", test_encode_refuses);

        g_test_add_func("/nfy/decode/message-id-ignored", test_decode_message_id_ignored);
        g_test_add_func("/nfy/decode/any-whitespace-and-member-order",
                        test_decode_whitespace_and_order);
        g_test_add_func("/nfy/stream/two-frames-in-one-feed", test_stream_two_frames_one_feed);
        g_test_add_func("/nfy/stream/one-byte-at-a-time", test_stream_one_byte_at_a_time);
        g_test_add_func("/nfy/stream/truncated-frame-waits", test_stream_truncated_waits);
        g_test_add_func("/nfy/resync/garbage-before-and-between-frames",
                        test_resync_garbage_before_frame);
        g_test_add_func("/nfy/resync/false-size-skips-one-byte", test_resync_false_size);
        g_test_add_func("/nfy/resync/false-header-overlapping-frame",
                        test_resync_false_header_overlapping_frame);
        g_test_add_func("/nfy/resync/size-4-and-1048580-are-frames", test_resync_size_edges);
        g_test_add_func("/nfy/discard/bad-body-discarded-next-frame-decodes",
                        test_discard_bad_bodies);
        g_test_add_func("/nfy/garbage/1MiB-tolerated-and-reset-by-message",
                        test_garbage_limit_exact);
        g_test_add_func("/nfy/garbage/over-1MiB-is-EPROTO", test_garbage_limit_exceeded);
        g_test_add_func("/nfy/garbage/discarded-frame-ends-garbage-run",
                        test_garbage_discarded_frame_ends_run);
        g_test_add_func("/nfy/decode/bounded-buffer", test_bounded_buffer);
        g_test_add_func("/nfy/decode/api-arguments", test_decoder_api);

        g_test_add_func("/nfy/check/required-members", test_check_required_members);
        g_test_add_func("/nfy/check/member-types", test_check_member_types);
        g_test_add_func("/nfy/check/defaults", test_check_defaults);
        g_test_add_func("/nfy/check/unknown-type", test_check_unknown_type);
        g_test_add_func("/nfy/check/priority-and-flags-ranges", test_check_ranges);

        r = g_test_run();
        json_decref(last_checked);
        return r;
}
