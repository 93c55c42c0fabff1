/* lib/remote/whitelist.c — the remote-access whitelist file (notification-service.md §6,
 * G-81…G-86): a strict line parser and the reference pattern matcher.
 *
 * Byte-level decisions the grammar leaves open (all fail closed, G-81 "anything else is a
 * syntax error"):
 * - a NUL byte anywhere is invalid: the file is not text;
 * - a CR that is not directly followed by LF is invalid anywhere, comments included, so that a
 *   file with old Mac line ends is refused rather than read as one long comment;
 * - in rule and interface lines, C0 control characters other than TAB, and DEL, are invalid;
 *   comment lines may contain them;
 * - bytes >= 0x80 are ordinary characters, compared byte by byte (no UTF-8 validation), so a
 *   `\` before a multi-byte character escapes its first byte, which changes nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "remote/whitelist.h"

/* How much of a field a log line quotes; fields may be WHITELIST_MAX_LINE bytes long. */
#define FIELD_SHOWN 40

struct rule {
        /* One allocation holding "from\0to\0id\0"; to and id point into it. */
        char *from, *to, *id;
};

struct rule_set {
        struct rule *rules;
        size_t n, allocated;
};

struct whitelist {
        struct rule_set set[2]; /* indexed by whitelist_dir_t */
        char *interfaces[WHITELIST_MAX_INTERFACES];
        size_t n_interfaces;
};

struct field {
        const char *s;
        size_t len;
};

struct parser {
        const char *name; /* file name for log lines */
        unsigned line;    /* 1-based number of the line being parsed */
        whitelist_t *w;
};

whitelist_t *whitelist_free(whitelist_t *w)
{
        if (!w)
                return NULL;
        for (size_t d = 0; d < ELEMENTSOF(w->set); d++) {
                for (size_t i = 0; i < w->set[d].n; i++)
                        free(w->set[d].rules[i].from);
                free(w->set[d].rules);
        }
        for (size_t i = 0; i < w->n_interfaces; i++)
                free(w->interfaces[i]);
        free(w);
        return NULL;
}

static void whitelist_freep(whitelist_t **w)
{
        whitelist_free(*w);
}

bool pattern_match(const char *pattern, const char *subject)
{
        /* Iterative "last star" matching (§6.4 reference matcher): on a mismatch only the most
         * recent `*` needs to absorb one more subject character, because whatever an earlier
         * star could still absorb, the later star can absorb as well. O(|pattern|·|subject|)
         * at worst, no recursion, so a hostile pattern cannot blow the stack or the clock. */
        const char *p = pattern, *s = subject, *star_p = NULL, *star_s = NULL;

        if (!pattern || !subject)
                return false;

        for (;;) {
                if (*p == '*') { /* PAT-1 */
                        star_p = ++p;
                        star_s = s;
                        continue;
                }
                if (*s) {
                        const char *next = p + 1;
                        char c = *p;

                        if (c == '\\') { /* PAT-2 */
                                c = p[1];
                                /* A lone trailing `\` can never be satisfied (the parser
                                 * rejects it; this keeps direct callers safe too). */
                                if (!c)
                                        return false;
                                next = p + 2;
                        }
                        if (c && c == *s) { /* PAT-3: case-sensitive; PAT-5: no other metas */
                                p = next;
                                s++;
                                continue;
                        }
                } else if (!*p)
                        return true; /* PAT-4: both exhausted */

                if (!star_p || !*star_s)
                        return false;
                p = star_p;
                s = ++star_s;
        }
}

bool whitelist_allows(const whitelist_t *w, whitelist_dir_t dir, const char *from, const char *to,
                      const char *notification_id)
{
        /* Fail closed on anything unexpected: no whitelist means no remote traffic (§6.1). */
        if (!w || (unsigned)dir >= ELEMENTSOF(w->set) || !from || !to || !notification_id)
                return false;

        /* CFG-4: allow-only rules, order irrelevant (G-82). The ID is the most selective field,
         * so it is tried first. */
        for (size_t i = 0; i < w->set[dir].n; i++) {
                const struct rule *rule = &w->set[dir].rules[i];

                if (pattern_match(rule->id, notification_id) && pattern_match(rule->to, to) &&
                    pattern_match(rule->from, from))
                        return true;
        }
        return false;
}

size_t whitelist_n_rules(const whitelist_t *w)
{
        return w ? w->set[WHITELIST_IN].n + w->set[WHITELIST_OUT].n : 0;
}

size_t whitelist_n_rules_dir(const whitelist_t *w, whitelist_dir_t dir)
{
        return w && (unsigned)dir < ELEMENTSOF(w->set) ? w->set[dir].n : 0;
}

size_t whitelist_n_interfaces(const whitelist_t *w)
{
        return w ? w->n_interfaces : 0;
}

const char *whitelist_interface(const whitelist_t *w, size_t i)
{
        if (!w || i >= w->n_interfaces)
                return NULL;
        return w->interfaces[i];
}

static int parser_error(const struct parser *p, const char *fmt, ...) _printf_(2, 3);
static int parser_error(const struct parser *p, const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        nfy_log(LOG_ERR, "%s:%u: %s", p->name, p->line, msg);
        return -EBADMSG;
}

/* For "'%.*s%s'" in log lines: quote at most FIELD_SHOWN bytes of a field. */
static int field_shown(const struct field *f)
{
        return (int)(f->len > FIELD_SHOWN ? FIELD_SHOWN : f->len);
}

static const char *field_more(const struct field *f)
{
        return f->len > FIELD_SHOWN ? "..." : "";
}

static bool field_is(const struct field *f, const char *word)
{
        return f->len == strlen(word) && memcmp(f->s, word, f->len) == 0;
}

static bool is_blank(char c)
{
        return c == ' ' || c == '\t'; /* WSP, G-81 */
}

/* Splits at runs of blanks; stores at most max fields and returns how many there are. */
static size_t line_split(const char *s, size_t len, struct field *fields, size_t max)
{
        size_t n = 0, i = 0;

        for (;;) {
                size_t start;

                while (i < len && is_blank(s[i]))
                        i++;
                if (i >= len)
                        return n;
                start = i;
                while (i < len && !is_blank(s[i]))
                        i++;
                if (n < max)
                        fields[n] = (struct field){s + start, i - start};
                n++;
        }
}

static int parser_check_pattern(const struct parser *p, const struct field *f)
{
        for (size_t i = 0; i < f->len; i++)
                if (f->s[i] == '\\' && ++i == f->len) /* CFG-3, G-81 */
                        return parser_error(p, "pattern '%.*s%s' ends in an unpaired backslash",
                                            field_shown(f), f->s, field_more(f));
        return 0;
}

static int parser_add_rule(struct parser *p, whitelist_dir_t dir, const struct field *pat)
{
        struct rule_set *set = &p->w->set[dir];
        struct rule *rule;
        char *buf;
        int r;

        for (size_t i = 0; i < 3; i++) {
                r = parser_check_pattern(p, &pat[i]);
                if (r < 0)
                        return r;
        }
        if (whitelist_n_rules(p->w) >= WHITELIST_MAX_RULES)
                return parser_error(p, "more than %d rules", WHITELIST_MAX_RULES);

        if (set->n == set->allocated) {
                /* Bounded by WHITELIST_MAX_RULES, so the multiplication cannot overflow. */
                size_t a = set->allocated ? set->allocated * 2 : 8;
                struct rule *rules = realloc(set->rules, a * sizeof(*rules));

                if (!rules)
                        return -ENOMEM;
                set->rules = rules;
                set->allocated = a;
        }

        /* Each length is < WHITELIST_MAX_LINE, so the sum cannot overflow. */
        buf = malloc(pat[0].len + pat[1].len + pat[2].len + 3);
        if (!buf)
                return -ENOMEM;
        rule = &set->rules[set->n++];
        rule->from = buf;
        rule->to = rule->from + pat[0].len + 1;
        rule->id = rule->to + pat[1].len + 1;
        memcpy(rule->from, pat[0].s, pat[0].len);
        rule->from[pat[0].len] = '\0';
        memcpy(rule->to, pat[1].s, pat[1].len);
        rule->to[pat[1].len] = '\0';
        memcpy(rule->id, pat[2].s, pat[2].len);
        rule->id[pat[2].len] = '\0';
        return 0;
}

static int parser_add_interface(struct parser *p, const struct field *name)
{
        whitelist_t *w = p->w;
        char *s;

        if (name->len > WHITELIST_MAX_INTERFACE_NAME)
                return parser_error(p, "interface name '%.*s%s' is longer than %d bytes",
                                    field_shown(name), name->s, field_more(name),
                                    WHITELIST_MAX_INTERFACE_NAME);

        /* G-85: a duplicate line must not create a second listener; fold it here so every
         * consumer sees each name once. The list is short (bounded), a linear scan will do. */
        for (size_t i = 0; i < w->n_interfaces; i++)
                if (field_is(name, w->interfaces[i]))
                        return 0;

        if (w->n_interfaces >= WHITELIST_MAX_INTERFACES)
                return parser_error(p, "more than %d interface names", WHITELIST_MAX_INTERFACES);

        s = strndup(name->s, name->len);
        if (!s)
                return -ENOMEM;
        w->interfaces[w->n_interfaces++] = s;
        return 0;
}

/* One line without its line end. */
static int parser_line(struct parser *p, const char *s, size_t len)
{
        struct field f[5]; /* one more than any valid line has, to tell "too many" */
        size_t i, n;

        if (len > WHITELIST_MAX_LINE)
                return parser_error(p, "line is longer than %d bytes", WHITELIST_MAX_LINE);

        for (i = 0; i < len; i++) {
                if (s[i] == '\0')
                        return parser_error(p, "NUL byte at column %zu", i + 1);
                if (s[i] == '\r')
                        return parser_error(
                            p, "carriage return not followed by a line feed at column %zu", i + 1);
        }

        for (i = 0; i < len && is_blank(s[i]); i++)
                ;
        if (i == len || s[i] == '#') /* CFG-2, CFG-3: blank or comment */
                return 0;

        for (i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return parser_error(p, "control character 0x%02x at column %zu", c, i + 1);
        }

        n = line_split(s, len, f, ELEMENTSOF(f));
        if (field_is(&f[0], "in") || field_is(&f[0], "out")) {
                if (n != 4) /* CFG-1 */
                        return parser_error(p, "a rule needs 4 fields (%.*s FROM TO ID), found %zu",
                                            (int)f[0].len, f[0].s, n);
                return parser_add_rule(p, field_is(&f[0], "in") ? WHITELIST_IN : WHITELIST_OUT,
                                       f + 1);
        }
        if (field_is(&f[0], "interface")) {
                if (n != 2) /* IF-1, G-81 */
                        return parser_error(
                            p, "an interface line needs exactly one name, found %zu", n - 1);
                return parser_add_interface(p, &f[1]);
        }
        /* G-81: keywords are lower case only; say so, it is the likely mistake. */
        if ((f[0].len == 2 && strncasecmp(f[0].s, "in", 2) == 0) ||
            (f[0].len == 3 && strncasecmp(f[0].s, "out", 3) == 0) ||
            (f[0].len == 9 && strncasecmp(f[0].s, "interface", 9) == 0))
                return parser_error(p, "unknown keyword '%.*s' (keywords are lower case)",
                                    (int)f[0].len, f[0].s);
        return parser_error(p, "unknown keyword '%.*s%s' (expected in, out or interface)",
                            field_shown(&f[0]), f[0].s, field_more(&f[0]));
}

static int whitelist_parse_named(const char *name, const char *text, size_t len, whitelist_t **ret,
                                 unsigned *ret_line)
{
        _cleanup_(whitelist_freep) whitelist_t *w = NULL;
        struct parser p = {.name = name};
        size_t pos = 0;
        int r;

        if (!ret || (!text && len > 0))
                return -EINVAL;
        if (len > WHITELIST_MAX_FILE_SIZE) {
                nfy_log(LOG_ERR, "%s: larger than %d bytes", name, WHITELIST_MAX_FILE_SIZE);
                return -EFBIG;
        }

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        p.w = w;

        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) /* G-81: UTF-8 BOM */
                pos = 3;

        /* Line numbers stay small: the size limit bounds them far below UINT_MAX. */
        while (pos < len) {
                const char *s = text + pos;
                const char *lf = memchr(s, '\n', len - pos);
                size_t n = lf ? (size_t)(lf - s) : len - pos;

                p.line++;
                pos += n + 1;
                if (lf && n > 0 && s[n - 1] == '\r') /* G-81: CR LF */
                        n--;
                r = parser_line(&p, s, n);
                if (r < 0) {
                        if (r == -EBADMSG && ret_line)
                                *ret_line = p.line;
                        return r;
                }
        }

        *ret = w;
        w = NULL;
        return 0;
}

int whitelist_parse(const char *text, size_t len, whitelist_t **ret, unsigned *ret_line)
{
        return whitelist_parse_named("(whitelist text)", text, len, ret, ret_line);
}

/* Reads at most WHITELIST_MAX_FILE_SIZE + 1 bytes, enough to tell "too large". */
static int file_read(int fd, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, allocated = 0;

        for (;;) {
                ssize_t k;

                if (len == allocated) {
                        size_t a = allocated ? allocated * 2 : 4096;
                        char *b;

                        if (a > WHITELIST_MAX_FILE_SIZE + 1)
                                a = WHITELIST_MAX_FILE_SIZE + 1;
                        if (a == allocated)
                                break; /* full: one byte over the limit, caller refuses it */
                        b = realloc(buf, a);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        allocated = a;
                }
                k = read(fd, buf + len, allocated - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        *ret = buf;
        buf = NULL;
        *ret_len = len;
        return 0;
}

int whitelist_load(const char *path, whitelist_t **ret, unsigned *ret_line)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno; /* before logging, which may touch errno */
                return nfy_log_errno(LOG_ERR, r, "%s: cannot open", path);
        }
        /* A directory opens fine and fails here with EISDIR. */
        r = file_read(fd, &text, &len);
        if (r < 0)
                return nfy_log_errno(LOG_ERR, r, "%s: cannot read", path);
        return whitelist_parse_named(path, text, len, ret, ret_line);
}
