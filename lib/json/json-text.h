/* lib/json/json-text.h — JSON text at the edges, on jansson: validating what arrives and
 * writing what leaves. Any thread. */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* Flags every vfiipc parse uses: any top-level value, \u0000 allowed (JS-LOAD-7). */
#define JSON_TEXT_LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* 0 if text[0..len) is one valid JSON value; else -EINVAL, and a message (with the position)
 * in err when err is not NULL. */
int json_text_validate(const char *text, size_t len, json_error_t *err);

/* Parses text; NULL on invalid input (err as above). */
json_t *json_text_parse(const char *text, size_t len, json_error_t *err);

/* Compact text with sorted keys (the JSObject dump order); NULL param is JSON null.
 * Returns a malloc'd string and its length, or NULL when out of memory. */
char *json_text_dump(const json_t *param, size_t *ret_len);

/* jansson >= 2.9 provides json_decrefp() for _cleanup_(json_decrefp). */
