/* lib/remote/nfy.h — the NFY frame codec of the remote protocol (notification-service.md §8.2,
 * §8.7, G-88): a streaming decoder, member checks, and the encoder for frames we send.
 * No I/O here: the connection code feeds received bytes in and writes encoded frames out.
 * A decoder belongs to one connection and is used by one thread at a time; the other
 * functions may be called from any thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* §8.2: 00 4E 46 59 | size (BE, = 4 + body length) | message ID (BE, written 0, ignored) | body */
#define NFY_HEADER_LEN 12
#define NFY_BODY_MAX (1024 * 1024)                    /* NFY-6, G-88: larger is corrupt */
#define NFY_SIZE_MIN 4u                               /* the message ID alone */
#define NFY_SIZE_MAX (4u + NFY_BODY_MAX)              /* 1 048 580 */
#define NFY_FRAME_MAX (NFY_HEADER_LEN + NFY_BODY_MAX) /* size field + 8 */

/* G-88: more than this many bytes of garbage without a valid frame closes the connection. */
#define NFY_GARBAGE_MAX (1024 * 1024)

/* What a decoder holds at most. After nfy_decoder_next() returned 0 (or failed), fewer than
 * NFY_FRAME_MAX bytes are buffered, so feeding at most NFY_FRAME_MAX bytes at a time between
 * draining calls always fits. */
#define NFY_DECODER_MAX_BUFFERED (2 * NFY_FRAME_MAX)

typedef struct nfy_decoder nfy_decoder_t;

int nfy_decoder_new(nfy_decoder_t **ret);
nfy_decoder_t *nfy_decoder_free(nfy_decoder_t *d); /* NULL-safe; returns NULL */

/* Appends received bytes (copied). -ENOBUFS when the buffer would exceed
 * NFY_DECODER_MAX_BUFFERED (nothing is appended); -EPROTO after the decoder failed. */
int nfy_decoder_feed(nfy_decoder_t *d, const void *bytes, size_t len);

/* Takes the next message out of the buffer:
 *   1  *ret_msg is a new reference to a JSON object with a string member "type";
 *   0  more bytes are needed (*ret_msg untouched);
 *   -EPROTO  more than NFY_GARBAGE_MAX bytes of garbage since the last well-formed frame:
 *            close the connection. Sticky: later calls fail the same way.
 * Garbage (§8.7) is the bytes skipped while looking for the next 00 4E 46 59, and the first
 * byte of a false header (size field < 4 or > NFY_SIZE_MAX), which is skipped to resynchronise.
 * A well-formed frame whose body is not a JSON object with a string "type" is discarded and
 * logged (NFY, LOG_WARNING), ends the garbage run like any frame, and decoding continues.
 * The message ID is ignored (NFYC-1). */
int nfy_decoder_next(nfy_decoder_t *d, json_t **ret_msg);

/* Bytes currently held (for tests and accounting). */
size_t nfy_decoder_buffered(const nfy_decoder_t *d);

typedef enum nfy_type {
        NFY_TYPE_UNKNOWN, /* §8.3: ignored (the server logs it); other members not checked */
        NFY_TYPE_REGISTER,
        NFY_TYPE_UNREGISTER,
        NFY_TYPE_NOTIFY,
        NFY_TYPE_UNICAST_ERROR, /* server → client only; a server treats it like UNKNOWN */
} nfy_type_t;

/* One message's members, checked per G-88. Pointers borrow from the json_t they came from. */
typedef struct nfy_message {
        nfy_type_t type;
        const char *type_name;    /* as received */
        const char *to;           /* always set for known types */
        const char *notification; /* always set for known types */
        const char *from;         /* NOTIFY, UNICAST_ERROR: set; otherwise NULL */
        int priority;             /* REGISTER: absent → 0 */
        uint32_t flags;           /* NOTIFY, UNICAST_ERROR: absent → 0 */
        const json_t *parameter;  /* NOTIFY, UNICAST_ERROR: never NULL, absent → JSON null */
        const json_t *reference;  /* NOTIFY, UNICAST_ERROR: NULL when absent; any value */
} nfy_message_t;

/* Fills *ret from msg. -EINVAL (ret untouched) when msg is not an object with a string "type",
 * or for a known type when a member of that type is missing or wrongly typed: "to" and
 * "notification" (and for notify/unicast_error "from") must be strings without NUL characters;
 * "priority" an integer in int range; "flags" an integer 0…4294967295. Members a type does not
 * define are ignored. */
int nfy_message_check(const json_t *msg, nfy_message_t *ret);

/* The frame for msg (an object): header, size, message ID 0, compact JSON with sorted member
 * names (NFY-6, the JSObject dump order). *ret is malloc'd. -EINVAL if msg is not an object,
 * -EMSGSIZE if the body exceeds NFY_BODY_MAX, -ENOMEM. */
int nfy_frame_encode(const json_t *msg, uint8_t **ret, size_t *ret_len);

/* Message builders (§8.4). parameter: embedded as a JSON value, NULL → null; reference: NULL →
 * absent. Both are borrowed (a reference is taken). -EINVAL for NULL strings, -ENOMEM. */
int nfy_message_new_notify(const char *from, const char *to, const char *notification,
                           uint32_t flags, json_t *reference, json_t *parameter, json_t **ret);
int nfy_message_new_unicast_error(const char *from, const char *to, const char *notification,
                                  uint32_t flags, json_t *reference, json_t *parameter,
                                  json_t **ret);
int nfy_message_new_register(const char *to, const char *notification, int priority,
                             json_t **ret);
int nfy_message_new_unregister(const char *to, const char *notification, json_t **ret);
