/* tests/nfy-frames.h — the worked frames (a)–(d) of notification-service.md §8.6, as the
 * specification prints them, for the codec test and the end-to-end test alike. */
#pragma once

#include <glib.h>

G_GNUC_UNUSED
static const char hex_a[] = "00 4E 46 59 00 00 00 4D 00 00 00 00 7B 22 6E 6F"
                            "74 69 66 69 63 61 74 69 6F 6E 22 3A 22 65 78 74"
                            "5F 73 74 61 74 75 73 22 2C 22 70 72 69 6F 72 69"
                            "74 79 22 3A 35 2C 22 74 6F 22 3A 22 6B 69 6F 73"
                            "6B 22 2C 22 74 79 70 65 22 3A 22 72 65 67 69 73"
                            "74 65 72 22 7D";
G_GNUC_UNUSED
static const char hex_b[] = "00 4E 46 59 00 00 00 42 00 00 00 00 7B 22 6E 6F"
                            "74 69 66 69 63 61 74 69 6F 6E 22 3A 22 65 78 74"
                            "5F 73 74 61 74 75 73 22 2C 22 74 6F 22 3A 22 6B"
                            "69 6F 73 6B 22 2C 22 74 79 70 65 22 3A 22 75 6E"
                            "72 65 67 69 73 74 65 72 22 7D";
G_GNUC_UNUSED
static const char hex_c[] = "00 4E 46 59 00 00 00 77 00 00 00 00 7B 22 66 6C"
                            "61 67 73 22 3A 30 2C 22 66 72 6F 6D 22 3A 22 6B"
                            "69 6F 73 6B 22 2C 22 6E 6F 74 69 66 69 63 61 74"
                            "69 6F 6E 22 3A 22 65 78 74 5F 62 65 65 70 22 2C"
                            "22 70 61 72 61 6D 65 74 65 72 22 3A 7B 22 63 6F"
                            "75 6E 74 22 3A 32 2C 22 74 6F 6E 65 22 3A 22 68"
                            "69 67 68 22 7D 2C 22 74 6F 22 3A 22 31 22 2C 22"
                            "74 79 70 65 22 3A 22 6E 6F 74 69 66 79 22 7D";
G_GNUC_UNUSED
static const char hex_d[] = "00 4E 46 59 00 00 00 8D 00 00 00 00 7B 22 66 6C"
                            "61 67 73 22 3A 30 2C 22 66 72 6F 6D 22 3A 22 6B"
                            "69 6F 73 6B 22 2C 22 6E 6F 74 69 66 69 63 61 74"
                            "69 6F 6E 22 3A 22 65 78 74 5F 62 65 65 70 22 2C"
                            "22 70 61 72 61 6D 65 74 65 72 22 3A 7B 22 63 6F"
                            "75 6E 74 22 3A 32 2C 22 74 6F 6E 65 22 3A 22 68"
                            "69 67 68 22 7D 2C 22 72 65 66 65 72 65 6E 63 65"
                            "22 3A 31 37 2C 22 74 6F 22 3A 22 31 22 2C 22 74"
                            "79 70 65 22 3A 22 75 6E 69 63 61 73 74 5F 65 72"
                            "72 6F 72 22 7D";

/* The bytes of a hex dump ("00 4E 46 59 …"). */
G_GNUC_UNUSED
static GByteArray *hex_bytes(const char *hex)
{
        GByteArray *b = g_byte_array_new();

        for (const char *p = hex; *p;) {
                guint8 v;

                if (*p == ' ') {
                        p++;
                        continue;
                }
                g_assert_true(g_ascii_isxdigit(p[0]) && g_ascii_isxdigit(p[1]));
                v = (guint8)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
                g_byte_array_append(b, &v, 1);
                p += 2;
        }
        return b;
}


