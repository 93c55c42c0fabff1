/* lib/remote/nfy.c — the NFY frame codec (notification-service.md §8.2, §8.7, G-88).
 *
 * The decoder keeps one buffer [start, end) of received bytes. nfy_decoder_next() looks at its
 * front: it skips to the next header (keeping a tail that may be the beginning of one), treats a
 * header with an impossible size as false (skip one byte, search again), and waits until a whole
 * frame is there; the size field is checked before anything depends on it, so memory stays
 * bounded by NFY_DECODER_MAX_BUFFERED whatever the peer sends. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "json/json-text.h"
#include "remote/nfy.h"

static const uint8_t nfy_magic[4] = {0x00, 0x4E, 0x46, 0x59};

/* An empty buffer larger than this is released, so an idle connection does not keep a
 * megabyte around after one large frame. */
#define DECODER_KEEP_CAPACITY (64 * 1024)

struct nfy_decoder {
        uint8_t *buf;
        size_t cap, start, end;
        size_t garbage; /* bytes skipped since the last well-formed frame */
        bool failed;
};

static uint32_t be32_read(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void be32_write(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

int nfy_decoder_new(nfy_decoder_t **ret)
{
        nfy_decoder_t *d;

        if (!ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

nfy_decoder_t *nfy_decoder_free(nfy_decoder_t *d)
{
        if (d) {
                free(d->buf);
                free(d);
        }
        return NULL;
}

size_t nfy_decoder_buffered(const nfy_decoder_t *d)
{
        return d ? d->end - d->start : 0;
}

int nfy_decoder_feed(nfy_decoder_t *d, const void *bytes, size_t len)
{
        size_t held;

        if (!d || (!bytes && len > 0))
                return -EINVAL;
        if (d->failed)
                return -EPROTO;
        if (len == 0)
                return 0;

        held = d->end - d->start;
        if (len > NFY_DECODER_MAX_BUFFERED - held)
                return -ENOBUFS;

        if (len > d->cap - d->end) {
                /* Move what is held to the front first; grow only if that is not enough. */
                if (d->start > 0) {
                        memmove(d->buf, d->buf + d->start, held);
                        d->start = 0;
                        d->end = held;
                }
                if (len > d->cap - d->end) {
                        size_t want = held + len, cap = d->cap ? d->cap : 4096;
                        uint8_t *b;

                        while (cap < want)
                                cap *= 2;
                        if (cap > NFY_DECODER_MAX_BUFFERED)
                                cap = NFY_DECODER_MAX_BUFFERED;
                        b = realloc(d->buf, cap);
                        if (!b)
                                return -ENOMEM;
                        d->buf = b;
                        d->cap = cap;
                }
        }
        memcpy(d->buf + d->end, bytes, len);
        d->end += len;
        return 0;
}

/* Counts n bytes as garbage; true if that crosses the limit (the decoder is then failed). */
static bool decoder_add_garbage(nfy_decoder_t *d, size_t n)
{
        d->garbage += n;
        if (d->garbage <= NFY_GARBAGE_MAX)
                return false;
        d->failed = true;
        nfy_log(LOG_ERR, "more than %d bytes without a valid NFY message", NFY_GARBAGE_MAX);
        return true;
}

/* Advances start to the next header, or keeps only the tail that may begin one. Returns the
 * number of bytes skipped. */
static size_t decoder_skip_to_magic(nfy_decoder_t *d)
{
        const uint8_t *p = d->buf + d->start;
        size_t avail = d->end - d->start, keep, skip;
        const uint8_t *m;

        m = avail >= sizeof(nfy_magic) ? memmem(p, avail, nfy_magic, sizeof(nfy_magic)) : NULL;
        if (m) {
                skip = (size_t)(m - p);
        } else {
                keep = avail < sizeof(nfy_magic) - 1 ? avail : sizeof(nfy_magic) - 1;
                while (keep > 0 && memcmp(p + avail - keep, nfy_magic, keep) != 0)
                        keep--;
                skip = avail - keep;
        }
        d->start += skip;
        return skip;
}

/* A body is a message iff it is a JSON object with a string "type" (§8.3, §8.7). */
static json_t *body_parse(const uint8_t *body, size_t len)
{
        json_error_t err;
        json_t *msg;

        msg = json_text_parse((const char *)body, len, &err);
        if (!msg) {
                nfy_log(LOG_WARNING, "discarding NFY frame: invalid JSON at %d: %s", err.position,
                        err.text);
                return NULL;
        }
        if (!json_is_object(msg)) {
                nfy_log(LOG_WARNING, "discarding NFY frame: body is not a JSON object");
                json_decref(msg);
                return NULL;
        }
        if (!json_is_string(json_object_get(msg, "type"))) {
                nfy_log(LOG_WARNING, "discarding NFY frame: no string member \"type\"");
                json_decref(msg);
                return NULL;
        }
        return msg;
}

int nfy_decoder_next(nfy_decoder_t *d, json_t **ret_msg)
{
        if (!d || !ret_msg)
                return -EINVAL;

        while (!d->failed) {
                const uint8_t *p;
                size_t avail, skipped;
                uint32_t size;
                json_t *msg;

                skipped = decoder_skip_to_magic(d);
                if (skipped > 0) {
                        nfy_log(LOG_DEBUG, "skipped %zu bytes looking for an NFY header", skipped);
                        if (decoder_add_garbage(d, skipped))
                                break;
                }

                p = d->buf + d->start;
                avail = d->end - d->start;
                if (avail < 8)
                        break; /* need more: a header (or its beginning) waits for its size */

                size = be32_read(p + 4);
                if (size < NFY_SIZE_MIN || size > NFY_SIZE_MAX) {
                        nfy_log(LOG_DEBUG, "false NFY header (size %" PRIu32 "), resynchronising",
                                size);
                        d->start++;
                        if (decoder_add_garbage(d, 1))
                                break;
                        continue;
                }
                if (avail - 8 < size)
                        break; /* need more: the frame is incomplete */

                /* A well-formed frame ends a garbage run even when its body is discarded:
                 * §8.7 keeps the connection up for bad bodies, and each costs a bounded
                 * frame, not unbounded scanning. */
                d->start += 8 + (size_t)size;
                d->garbage = 0;
                msg = body_parse(p + NFY_HEADER_LEN, size - 4);
                if (!msg)
                        continue;
                *ret_msg = msg;
                return 1;
        }

        if (d->start == d->end) {
                d->start = d->end = 0;
                if (d->cap > DECODER_KEEP_CAPACITY) {
                        free(d->buf);
                        d->buf = NULL;
                        d->cap = 0;
                }
        }
        return d->failed ? -EPROTO : 0;
}

/* A string member without NUL characters (a NUL would cut the C string short and make it
 * compare as something else than what was sent). */
static int member_string(const json_t *msg, const char *name, const char **ret)
{
        const json_t *v = json_object_get(msg, name);
        const char *s;

        if (!json_is_string(v))
                return -EINVAL;
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
                return -EINVAL;
        *ret = s;
        return 0;
}

/* An optional integer member in [min, max]; absent → 0. */
static int member_integer(const json_t *msg, const char *name, json_int_t min, json_int_t max,
                          json_int_t *ret)
{
        const json_t *v = json_object_get(msg, name);
        json_int_t i;

        if (!v) {
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v))
                return -EINVAL;
        i = json_integer_value(v);
        if (i < min || i > max)
                return -EINVAL;
        *ret = i;
        return 0;
}

static nfy_type_t type_from_json(const json_t *t)
{
        static const struct {
                const char *name;
                nfy_type_t type;
        } types[] = {
            {"register", NFY_TYPE_REGISTER},
            {"unregister", NFY_TYPE_UNREGISTER},
            {"notify", NFY_TYPE_NOTIFY},
            {"unicast_error", NFY_TYPE_UNICAST_ERROR},
        };
        const char *s = json_string_value(t);
        size_t len = json_string_length(t);

        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (len == strlen(types[i].name) && memcmp(s, types[i].name, len) == 0)
                        return types[i].type;
        return NFY_TYPE_UNKNOWN;
}

int nfy_message_check(const json_t *msg, nfy_message_t *ret)
{
        nfy_message_t m = {0};
        const json_t *t;
        json_int_t i;
        int r;

        if (!ret || !json_is_object(msg))
                return -EINVAL;
        t = json_object_get(msg, "type");
        if (!json_is_string(t))
                return -EINVAL;
        m.type = type_from_json(t);
        m.type_name = json_string_value(t);
        if (m.type == NFY_TYPE_UNKNOWN) {
                *ret = m;
                return 0;
        }

        r = member_string(msg, "to", &m.to);
        if (r < 0)
                return r;
        r = member_string(msg, "notification", &m.notification);
        if (r < 0)
                return r;

        switch (m.type) {
        case NFY_TYPE_REGISTER:
                r = member_integer(msg, "priority", INT_MIN, INT_MAX, &i);
                if (r < 0)
                        return r;
                m.priority = (int)i;
                break;
        case NFY_TYPE_UNREGISTER:
                break;
        case NFY_TYPE_NOTIFY:
        case NFY_TYPE_UNICAST_ERROR:
                r = member_string(msg, "from", &m.from);
                if (r < 0)
                        return r;
                r = member_integer(msg, "flags", 0, UINT32_MAX, &i);
                if (r < 0)
                        return r;
                m.flags = (uint32_t)i;
                m.parameter = json_object_get(msg, "parameter");
                if (!m.parameter)
                        m.parameter = json_null();
                m.reference = json_object_get(msg, "reference");
                break;
        case NFY_TYPE_UNKNOWN:
                break;
        }
        *ret = m;
        return 0;
}

int nfy_frame_encode(const json_t *msg, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ char *text = NULL;
        uint8_t *frame;
        size_t len;

        if (!json_is_object(msg) || !ret || !ret_len)
                return -EINVAL;
        text = json_text_dump(msg, &len);
        if (!text)
                return -ENOMEM;
        if (len > NFY_BODY_MAX)
                return -EMSGSIZE;

        frame = malloc(NFY_HEADER_LEN + len);
        if (!frame)
                return -ENOMEM;
        memcpy(frame, nfy_magic, sizeof(nfy_magic));
        be32_write(frame + 4, (uint32_t)(4 + len));
        be32_write(frame + 8, 0); /* NFYC-1: message ID 0 */
        memcpy(frame + NFY_HEADER_LEN, text, len);
        *ret = frame;
        *ret_len = NFY_HEADER_LEN + len;
        return 0;
}

/* Sets a new value; takes over the reference even on failure. */
static int object_set_new(json_t *o, const char *name, json_t *v)
{
        if (!v)
                return -ENOMEM;
        return json_object_set_new(o, name, v) < 0 ? -ENOMEM : 0;
}

static int message_new(const char *type, const char *to, const char *notification, json_t **ret)
{
        json_t *o;

        if (!to || !notification || !ret)
                return -EINVAL;
        o = json_object();
        if (!o)
                return -ENOMEM;
        if (object_set_new(o, "type", json_string(type)) < 0 ||
            object_set_new(o, "to", json_string(to)) < 0 ||
            object_set_new(o, "notification", json_string(notification)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static int delivery_new(const char *type, const char *from, const char *to,
                        const char *notification, uint32_t flags, json_t *reference,
                        json_t *parameter, json_t **ret)
{
        json_t *o = NULL;
        int r;

        if (!from)
                return -EINVAL;
        r = message_new(type, to, notification, &o);
        if (r < 0)
                return r;
        if (object_set_new(o, "from", json_string(from)) < 0 ||
            object_set_new(o, "flags", json_integer(flags)) < 0 ||
            object_set_new(o, "parameter", parameter ? json_incref(parameter) : json_null()) < 0 ||
            (reference && object_set_new(o, "reference", json_incref(reference)) < 0)) {
                json_decref(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

int nfy_message_new_notify(const char *from, const char *to, const char *notification,
                           uint32_t flags, json_t *reference, json_t *parameter, json_t **ret)
{
        return delivery_new("notify", from, to, notification, flags, reference, parameter, ret);
}

int nfy_message_new_unicast_error(const char *from, const char *to, const char *notification,
                                  uint32_t flags, json_t *reference, json_t *parameter,
                                  json_t **ret)
{
        return delivery_new("unicast_error", from, to, notification, flags, reference, parameter,
                            ret);
}

int nfy_message_new_register(const char *to, const char *notification, int priority,
                             json_t **ret)
{
        json_t *o = NULL;
        int r;

        r = message_new("register", to, notification, &o);
        if (r < 0)
                return r;
        if (object_set_new(o, "priority", json_integer(priority)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

int nfy_message_new_unregister(const char *to, const char *notification, json_t **ret)
{
        return message_new("unregister", to, notification, ret);
}
