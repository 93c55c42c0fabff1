/* lib/remote/whitelist.h — the remote-access whitelist file (notification-service.md §6,
 * G-81…G-86): `in`/`out` rules with `*`/`\` patterns, and `interface` lines.
 * Parsed once at server start; read-only afterwards, so any thread may query it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct whitelist whitelist_t;

/* Limits on what the file controls (not in the legacy documentation; chosen so that a hostile or
 * broken file costs bounded memory and bounded time per whitelist_allows() call).
 * - A longer file (or text) is refused as a whole with -EFBIG (→ NOTIFY_ERR_CONFIG_FILE, like a
 *   file that cannot be read: there is no line to blame), logged.
 * - Every other limit is a syntax error (-EBADMSG) with the number of the offending line:
 *   a line (without its LF / CR LF) longer than WHITELIST_MAX_LINE bytes, comments included;
 *   more than WHITELIST_MAX_RULES rules (in + out); more than WHITELIST_MAX_INTERFACES distinct
 *   interface names; an interface name longer than WHITELIST_MAX_INTERFACE_NAME bytes. */
#define WHITELIST_MAX_FILE_SIZE (1024 * 1024)
#define WHITELIST_MAX_LINE 4096
#define WHITELIST_MAX_RULES 4096
#define WHITELIST_MAX_INTERFACES 64
#define WHITELIST_MAX_INTERFACE_NAME 255 /* a DNS name has at most 253 */

typedef enum whitelist_dir {
        WHITELIST_IN,  /* remote → local */
        WHITELIST_OUT, /* local → remote */
} whitelist_dir_t;

/* Reads and parses a file. Returns 0 and the whitelist; -errno when the file cannot be opened
 * or read (→ NOTIFY_ERR_CONFIG_FILE); -EBADMSG for invalid content (→ NOTIFY_ERR_CONFIG_SYNTAX),
 * with the 1-based line number in *ret_line and one NFY "err" log line naming file and line.
 * ret_line may be NULL; ret is untouched on failure. */
int whitelist_load(const char *path, whitelist_t **ret, unsigned *ret_line);

/* Parses text already in memory (len bytes, need not be NUL-terminated); same results. */
int whitelist_parse(const char *text, size_t len, whitelist_t **ret, unsigned *ret_line);

whitelist_t *whitelist_free(whitelist_t *w); /* NULL-safe; returns NULL */

/* CFG-4: true iff at least one rule of that direction matches all three fields. */
bool whitelist_allows(const whitelist_t *w, whitelist_dir_t dir, const char *from, const char *to,
                      const char *notification_id);

size_t whitelist_n_rules(const whitelist_t *w);      /* in + out rules */
size_t whitelist_n_rules_dir(const whitelist_t *w, whitelist_dir_t dir);
size_t whitelist_n_interfaces(const whitelist_t *w); /* interface lines (duplicates folded) */
const char *whitelist_interface(const whitelist_t *w, size_t i);

/* PAT-1…5: `*` any sequence (also empty), `\x` literal x, whole-field, case-sensitive. */
bool pattern_match(const char *pattern, const char *subject);
