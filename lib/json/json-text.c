/* lib/json/json-text.c — JSON text helpers on jansson (see json-text.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json/json-text.h"

json_t *json_text_parse(const char *text, size_t len, json_error_t *err)
{
        json_error_t local;

        if (!text)
                return NULL;
        return json_loadb(text, len, JSON_TEXT_LOAD_FLAGS, err ? err : &local);
}

int json_text_validate(const char *text, size_t len, json_error_t *err)
{
        json_t *j = json_text_parse(text, len, err);

        if (!j)
                return -EINVAL;
        json_decref(j);
        return 0;
}

char *json_text_dump(const json_t *param, size_t *ret_len)
{
        char *s;

        if (!param)
                s = strdup("null");
        else
                s = json_dumps(param, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}
