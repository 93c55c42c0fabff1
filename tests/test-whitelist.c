/* tests/test-whitelist.c — the whitelist file parser and the pattern matcher
 * (notification-service.md §6, G-81…G-86). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "core/log.h"
#include "remote/whitelist.h"

/* The §6.6 example, verbatim. */
static const char example_cfg[] =
    "# Remote payment peer, reachable only over the USB network\n"
    "interface 192.168.7.1\n"
    "\n"
    "# A remote peer may ask exactly one local application to start a payment\n"
    "in  *   1     pay_start\n"
    "# Any local application may send payment results to any remote peer\n"
    "out *   *     pay_result\n"
    "# Event mirroring in both directions for IDs beginning with \"evt_\"\n"
    "in  *   *     evt_*\n"
    "out *   *     evt_*\n"
    "# Only the kiosk app may send the ID that literally is \"cfg*\"\n"
    "out kiosk *   cfg\\*\n";

/* Stands for "not written" in out-parameter checks. */
static int sentinel;
#define WL_SENTINEL ((whitelist_t *)&sentinel)
#define LINE_SENTINEL 4242u

static whitelist_t *parse_ok_len(const char *text, size_t len)
{
        whitelist_t *w = NULL;
        unsigned line = LINE_SENTINEL;

        g_assert_cmpint(whitelist_parse(text, len, &w, &line), ==, 0);
        g_assert_nonnull(w);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
        return w;
}

static whitelist_t *parse_ok(const char *text)
{
        return parse_ok_len(text, strlen(text));
}

/* Asserts -EBADMSG at want_line, and that the whitelist out-parameter was not written. */
static void assert_syntax_error_len(const char *text, size_t len, unsigned want_line)
{
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        g_assert_cmpint(whitelist_parse(text, len, &w, &line), ==, -EBADMSG);
        g_assert_cmpuint(line, ==, want_line);
        g_assert_true(w == WL_SENTINEL);
        /* ret_line may be NULL. */
        g_assert_cmpint(whitelist_parse(text, len, &w, NULL), ==, -EBADMSG);
        g_assert_true(w == WL_SENTINEL);
}

static void assert_syntax_error(const char *text, unsigned want_line)
{
        assert_syntax_error_len(text, strlen(text), want_line);
}

/* A private temp dir per test, so tests can run in parallel. */
typedef struct {
        char *dir;
        char *path;
} tmpfile_t;

static void tmpfile_write(tmpfile_t *t, const char *text, gssize len)
{
        GError *err = NULL;

        t->dir = g_dir_make_tmp("test-whitelist-XXXXXX", &err);
        g_assert_no_error(err);
        t->path = g_build_filename(t->dir, "notify.cfg", NULL);
        if (text) {
                g_file_set_contents(t->path, text, len, &err);
                g_assert_no_error(err);
        }
}

static void tmpfile_remove(tmpfile_t *t)
{
        (void)g_unlink(t->path);
        g_assert_cmpint(g_rmdir(t->dir), ==, 0);
        g_free(t->path);
        g_free(t->dir);
}

/* ---- §6.6 worked example: one test per row of the evaluation table ---------------------- */

typedef struct {
        const char *name;
        whitelist_dir_t dir;
        const char *from, *to, *id;
        bool allowed;
} example_row;

static const example_row example_rows[] = {
    /* in * 1 pay_start */
    {"/whitelist/example/in-pay_start-to-1-allowed", WHITELIST_IN, "peer", "1", "pay_start", true},
    /* <to> is 1 in the only rule for this ID: <to> is compared as written (§6.3) */
    {"/whitelist/example/in-pay_start-to-star-refused", WHITELIST_IN, "peer", "*", "pay_start",
     false},
    /* in * * evt_* */
    {"/whitelist/example/in-evt_door-allowed", WHITELIST_IN, "peer", "pos", "evt_door", true},
    /* PAT-3: case-sensitive */
    {"/whitelist/example/in-EVT_door-refused-case-sensitive", WHITELIST_IN, "peer", "pos",
     "EVT_door", false},
    /* out * * pay_result */
    {"/whitelist/example/out-pay_result-allowed", WHITELIST_OUT, "pos", "*", "pay_result", true},
    /* PAT-1, G-81: * also matches the empty rest */
    {"/whitelist/example/out-evt_-star-matches-empty-rest", WHITELIST_OUT, "pos", "*", "evt_",
     true},
    /* PAT-2: escaped * */
    {"/whitelist/example/out-kiosk-cfg-star-allowed", WHITELIST_OUT, "kiosk", "1", "cfg*", true},
    /* PAT-2: \* is a literal star */
    {"/whitelist/example/out-kiosk-cfgX-refused", WHITELIST_OUT, "kiosk", "1", "cfgX", false},
    /* <from> must be kiosk */
    {"/whitelist/example/out-pos-cfg-star-refused", WHITELIST_OUT, "pos", "1", "cfg*", false},
};

static void test_example_row(gconstpointer data)
{
        const example_row *row = data;
        whitelist_t *w = parse_ok(example_cfg);

        /* CFG-4 */
        g_assert_cmpint(whitelist_allows(w, row->dir, row->from, row->to, row->id), ==,
                        row->allowed);
        whitelist_free(w);
}

static void test_example_counts(void)
{
        whitelist_t *w = parse_ok(example_cfg);

        /* CFG-1: five rules; IF-1: one interface line */
        g_assert_cmpuint(whitelist_n_rules(w), ==, 5);
        g_assert_cmpuint(whitelist_n_interfaces(w), ==, 1);
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "192.168.7.1");
        g_assert_null(whitelist_interface(w, 1));
        whitelist_free(w);
}

/* ---- PAT-1…PAT-5 ---------------------------------------------------------------------- */

static void test_pattern_star_matches_empty(void)
{
        /* PAT-1, G-81: `*` matches the empty sequence too */
        g_assert_true(pattern_match("*", ""));
        g_assert_true(pattern_match("evt_*", "evt_"));
        g_assert_true(pattern_match("*x", "x"));
        g_assert_true(pattern_match("a*b", "ab"));
}

static void test_pattern_star_matches_any_sequence(void)
{
        /* PAT-1 */
        g_assert_true(pattern_match("*", "anything at all"));
        g_assert_true(pattern_match("a*c", "abbbc"));
        g_assert_true(pattern_match("*b*", "aaabaaa"));
        g_assert_true(pattern_match("*", "*"));
        g_assert_true(pattern_match("*", "\\"));
        g_assert_false(pattern_match("a*c", "abbb"));
        g_assert_false(pattern_match("a*c", "bbbc"));
}

static void test_pattern_star_backtracks(void)
{
        /* PAT-1: a star must give back characters when a later literal needs them */
        g_assert_true(pattern_match("*aab", "aaab"));
        g_assert_true(pattern_match("*ab", "aab"));
        g_assert_true(pattern_match("a*b*c", "abxbcxc"));
        g_assert_true(pattern_match("*a*b", "ababab"));
        g_assert_false(pattern_match("a*a", "a"));
        g_assert_false(pattern_match("*a*b", "ababa"));
        g_assert_false(pattern_match("*abc", "ababab"));
}

static void test_pattern_double_star(void)
{
        /* PAT-1: consecutive stars are one star */
        g_assert_true(pattern_match("**", ""));
        g_assert_true(pattern_match("**", "abc"));
        g_assert_true(pattern_match("a**b", "ab"));
        g_assert_true(pattern_match("a**b", "axxb"));
        g_assert_false(pattern_match("a**b", "axx"));
}

static void test_pattern_escaped_star_is_literal(void)
{
        /* PAT-2 */
        g_assert_true(pattern_match("cfg\\*", "cfg*"));
        g_assert_false(pattern_match("cfg\\*", "cfgX"));
        g_assert_false(pattern_match("cfg\\*", "cfg"));
        g_assert_false(pattern_match("cfg\\*", "cfg**"));
        g_assert_true(pattern_match("\\**", "*tail"));
        g_assert_false(pattern_match("\\**", "tail"));
}

static void test_pattern_escaped_backslash(void)
{
        /* PAT-2: `\\` matches one `\` */
        g_assert_true(pattern_match("\\\\", "\\"));
        g_assert_false(pattern_match("\\\\", "\\\\"));
        g_assert_true(pattern_match("a\\\\b", "a\\b"));
        g_assert_false(pattern_match("a\\\\b", "ab"));
        g_assert_true(pattern_match("\\\\*", "\\anything"));
        g_assert_false(pattern_match("\\\\*", "anything"));
        /* `\\\*`: a backslash, then a literal star */
        g_assert_true(pattern_match("\\\\\\*", "\\*"));
        g_assert_false(pattern_match("\\\\\\*", "\\x"));
}

static void test_pattern_escape_any_char(void)
{
        /* G-81: `\x` matches x for any character x */
        g_assert_true(pattern_match("\\a", "a"));
        g_assert_false(pattern_match("\\a", "\\a"));
        g_assert_true(pattern_match("\\?\\[", "?["));
        g_assert_true(pattern_match("\\#", "#"));
}

static void test_pattern_lone_trailing_backslash_never_matches(void)
{
        /* CFG-3, G-81: an unpaired trailing `\` is invalid; the matcher never matches it */
        g_assert_false(pattern_match("\\", ""));
        g_assert_false(pattern_match("\\", "\\"));
        g_assert_false(pattern_match("a\\", "a"));
        g_assert_false(pattern_match("a\\", "a\\"));
        g_assert_false(pattern_match("*\\", "anything\\"));
        g_assert_false(pattern_match("*\\", ""));
}

static void test_pattern_question_mark_and_bracket_literal(void)
{
        /* PAT-5: no metacharacters besides `*` and `\` */
        g_assert_true(pattern_match("?", "?"));
        g_assert_false(pattern_match("?", "a"));
        g_assert_true(pattern_match("[ab]", "[ab]"));
        g_assert_false(pattern_match("[ab]", "a"));
        g_assert_false(pattern_match("a.c", "abc"));
        g_assert_true(pattern_match("^x+$", "^x+$"));
        g_assert_false(pattern_match("x+", "xx"));
        g_assert_true(pattern_match("{a,b}", "{a,b}"));
}

static void test_pattern_case_sensitive(void)
{
        /* PAT-3 */
        g_assert_false(pattern_match("evt_*", "EVT_door"));
        g_assert_false(pattern_match("Pay", "pay"));
        g_assert_true(pattern_match("Pay", "Pay"));
}

static void test_pattern_whole_field(void)
{
        /* PAT-4: anchored at both ends; without `*` an exact comparison */
        g_assert_true(pattern_match("pay", "pay"));
        g_assert_false(pattern_match("pay", "pay_start"));
        g_assert_false(pattern_match("pay", "xpay"));
        g_assert_false(pattern_match("pay", "pa"));
        g_assert_false(pattern_match("pay", ""));
        g_assert_true(pattern_match("pay*", "pay_start"));
        g_assert_false(pattern_match("pay*", "xpay_start"));
        g_assert_true(pattern_match("*pay", "xpay"));
        g_assert_false(pattern_match("*pay", "payx"));
        /* The parser never produces an empty pattern, but the matcher's answer is defined. */
        g_assert_true(pattern_match("", ""));
        g_assert_false(pattern_match("", "a"));
}

static void test_pattern_bytes_beyond_ascii(void)
{
        /* PAT-3/PAT-4 apply byte by byte; UTF-8 needs nothing special */
        g_assert_true(pattern_match("z\xc3\xa4hler_*", "z\xc3\xa4hler_1"));
        g_assert_false(pattern_match("z\xc3\xa4hler_*", "z\xc3\x84hler_1"));
        g_assert_true(pattern_match("\\\xc3\xa4", "\xc3\xa4"));
}

static void test_pattern_null_never_matches(void)
{
        g_assert_false(pattern_match(NULL, "x"));
        g_assert_false(pattern_match("*", NULL));
        g_assert_false(pattern_match(NULL, NULL));
}

static void test_pattern_many_stars_linear_time(void)
{
        /* §6.4 reference matcher: naive backtracking needs about C(20000, 30) steps here;
         * the last-star algorithm about |pattern|·|subject|. The 60 s test timeout is the
         * real guard; the bound below only makes a regression obvious. */
        GString *pat = g_string_new(NULL);
        char *subject = g_malloc(20002);
        GTimer *timer = g_timer_new();

        for (int i = 0; i < 30; i++)
                g_string_append(pat, "*a");
        g_string_append(pat, "*b");
        memset(subject, 'a', 20000);
        subject[20000] = '\0';

        g_assert_false(pattern_match(pat->str, subject));
        subject[20000] = 'b';
        subject[20001] = '\0';
        g_assert_true(pattern_match(pat->str, subject));
        /* Same shape with escapes in every segment. */
        g_string_assign(pat, "");
        for (int i = 0; i < 30; i++)
                g_string_append(pat, "*\\a");
        g_string_append(pat, "*\\c");
        g_assert_false(pattern_match(pat->str, subject));

        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 5.0);
        g_timer_destroy(timer);
        g_free(subject);
        g_string_free(pat, TRUE);
}

/* Plain recursive backtracking straight from the §6.4 wording, for small inputs only. */
static bool reference_match(const char *p, const char *s)
{
        if (*p == '\0')
                return *s == '\0';
        if (*p == '*')
                return reference_match(p + 1, s) || (*s && reference_match(p, s + 1));
        if (*p == '\\')
                return p[1] && *s == p[1] && reference_match(p + 2, s + 1);
        return *s == *p && reference_match(p + 1, s + 1);
}

static void random_string(char *buf, size_t max, const char *alphabet)
{
        size_t n = (size_t)g_test_rand_int_range(0, (gint32)max + 1), k = strlen(alphabet);

        for (size_t i = 0; i < n; i++)
                buf[i] = alphabet[g_test_rand_int_range(0, (gint32)k)];
        buf[n] = '\0';
}

static void test_pattern_agrees_with_backtracking_reference(void)
{
        /* §6.4: the iterative matcher must give the reference matcher's answers. Seeded by
         * the GLib test seed, so a failure is reproducible with --seed. */
        char p[10], s[10];

        for (int i = 0; i < 200000; i++) {
                random_string(p, 8, "ab*\\");
                random_string(s, 8, "ab*\\");
                if (pattern_match(p, s) != reference_match(p, s))
                        g_error("pattern_match(\"%s\", \"%s\") = %d, reference says %d", p, s,
                                pattern_match(p, s), reference_match(p, s));
        }
}

/* ---- CFG-4: rule evaluation -------------------------------------------------------------- */

static void test_allows_direction_separates_rules(void)
{
        whitelist_t *w = parse_ok("in * * x\n");

        /* CFG-4: only rules of that direction count */
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "a", "b", "x"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "a", "b", "x"));
        whitelist_free(w);
}

static void test_allows_needs_all_three_fields(void)
{
        whitelist_t *w = parse_ok("out app 1 job\n");

        /* CFG-4: one rule must match from, to and ID together */
        g_assert_true(whitelist_allows(w, WHITELIST_OUT, "app", "1", "job"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "other", "1", "job"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "app", "*", "job"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "app", "1", "jobs"));
        whitelist_free(w);
}

static void test_allows_fields_not_combined_across_rules(void)
{
        whitelist_t *w = parse_ok("in a 1 x\nin b 2 y\n");

        /* CFG-4: "at least one rule matches all three" — not three rules matching one each */
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "a", "1", "x"));
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "b", "2", "y"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "a", "2", "y"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "b", "1", "x"));
        whitelist_free(w);
}

static void test_allows_no_rules_allows_nothing(void)
{
        whitelist_t *w = parse_ok("interface eth0\n");

        /* §6.1: by default nothing crosses the boundary */
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "a", "1", "x"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "a", "1", "x"));
        whitelist_free(w);
}

static void test_allows_fails_closed_on_bad_arguments(void)
{
        whitelist_t *w = parse_ok("in * * *\nout * * *\n");

        g_assert_true(whitelist_allows(w, WHITELIST_IN, "", "", ""));
        g_assert_false(whitelist_allows(NULL, WHITELIST_IN, "a", "1", "x"));
        g_assert_false(whitelist_allows(w, (whitelist_dir_t)7, "a", "1", "x"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, NULL, "1", "x"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "a", NULL, "x"));
        g_assert_false(whitelist_allows(w, WHITELIST_OUT, "a", "1", NULL));
        whitelist_free(w);
}

/* ---- G-81: accepted line shapes ------------------------------------------------------------ */

static void test_syntax_comments_and_blank_lines(void)
{
        /* CFG-2, CFG-3, G-81 */
        whitelist_t *w = parse_ok("#\n"
                                  "# comment\n"
                                  "   # indented comment\n"
                                  "\t# tab-indented comment\n"
                                  "\n"
                                  "   \n"
                                  "\t \t\n"
                                  "#in * * x\n"
                                  "# comment may hold \x01\x1b\x7f control bytes\n"
                                  "in * * y\n");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "a", "1", "x"));
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "a", "1", "y"));
        whitelist_free(w);
}

static void test_syntax_blank_runs_separate_fields(void)
{
        /* G-81: runs of spaces/tabs separate; leading and trailing blanks are ignored */
        whitelist_t *w = parse_ok("\t  in \t *\t\t1   pay_start \t \n"
                                  "  interface\t\teth0  \n");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "peer", "1", "pay_start"));
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "eth0");
        whitelist_free(w);
}

static void test_syntax_hash_inside_line_is_ordinary(void)
{
        /* CFG-3: `#` only starts a comment as the first non-blank character */
        whitelist_t *w = parse_ok("in # * x#y\n");

        g_assert_true(whitelist_allows(w, WHITELIST_IN, "#", "1", "x#y"));
        whitelist_free(w);
        /* …so a trailing "comment" adds fields */
        assert_syntax_error("in * * x # allow x\n", 1);
}

static void test_syntax_crlf_line_ends(void)
{
        /* G-81: CR LF accepted */
        whitelist_t *w = parse_ok("# comment\r\n"
                                  "\r\n"
                                  "in * 1 pay_start\r\n"
                                  "interface eth0\r\n");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "peer", "1", "pay_start"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "peer", "1", "pay_start\r"));
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "eth0");
        whitelist_free(w);
}

static void test_syntax_mixed_line_ends(void)
{
        whitelist_t *w = parse_ok("in * * a\nin * * b\r\nin * * c");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 3);
        whitelist_free(w);
}

static void test_syntax_no_final_newline(void)
{
        /* G-81: a missing final newline is fine */
        whitelist_t *w = parse_ok("in * * x\nout * * y");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 2);
        g_assert_true(whitelist_allows(w, WHITELIST_OUT, "a", "b", "y"));
        whitelist_free(w);

        w = parse_ok("interface eth0");
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "eth0");
        whitelist_free(w);
}

static void test_syntax_bom_ignored(void)
{
        /* G-81: a UTF-8 BOM at the start is ignored */
        whitelist_t *w = parse_ok("\xef\xbb\xbfin * * x\n");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        g_assert_true(whitelist_allows(w, WHITELIST_IN, "a", "b", "x"));
        whitelist_free(w);

        w = parse_ok("\xef\xbb\xbf# comment first\r\nin * * x\r\n");
        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        whitelist_free(w);

        w = parse_ok("\xef\xbb\xbf");
        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        whitelist_free(w);
}

static void test_syntax_bom_only_at_start(void)
{
        /* G-81: only at the start; elsewhere the bytes are part of a keyword */
        assert_syntax_error("in * * x\n\xef\xbb\xbfin * * y\n", 2);
        assert_syntax_error("\xef\xbb\xbf\xef\xbb\xbfin * * y\n", 1);
}

static void test_syntax_empty_text(void)
{
        /* G-86: empty is valid and allows nothing */
        whitelist_t *w = parse_ok("");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        g_assert_cmpuint(whitelist_n_interfaces(w), ==, 0);
        whitelist_free(w);

        w = parse_ok_len(NULL, 0);
        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        whitelist_free(w);

        w = parse_ok("\n\n# only comments\n");
        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        whitelist_free(w);
}

static void test_syntax_interfaces_only(void)
{
        /* G-86: interface lines alone give 0 rules and N interfaces */
        whitelist_t *w =
            parse_ok("interface 192.168.7.1\ninterface eth0\ninterface vfi-terminal\n");

        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        g_assert_cmpuint(whitelist_n_interfaces(w), ==, 3);
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "192.168.7.1");
        g_assert_cmpstr(whitelist_interface(w, 1), ==, "eth0");
        g_assert_cmpstr(whitelist_interface(w, 2), ==, "vfi-terminal");
        g_assert_null(whitelist_interface(w, 3));
        whitelist_free(w);
}

static void test_syntax_duplicate_interfaces_folded(void)
{
        /* IF-3, G-85: duplicates do not create duplicate listeners; first-seen order kept */
        whitelist_t *w = parse_ok("interface eth0\n"
                                  "interface 10.0.0.1\n"
                                  "interface eth0\n"
                                  "in * * x\n"
                                  "interface 10.0.0.1\n"
                                  "interface eth1\n"
                                  "interface ETH0\n");

        g_assert_cmpuint(whitelist_n_interfaces(w), ==, 4);
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "eth0");
        g_assert_cmpstr(whitelist_interface(w, 1), ==, "10.0.0.1");
        g_assert_cmpstr(whitelist_interface(w, 2), ==, "eth1");
        g_assert_cmpstr(whitelist_interface(w, 3), ==, "ETH0");
        whitelist_free(w);
}

static void test_syntax_escaped_backslash_at_end_accepted(void)
{
        /* PAT-2: `\\` at the end of a pattern is a complete escape */
        whitelist_t *w = parse_ok("in a\\\\ * x\\\\\n");

        g_assert_true(whitelist_allows(w, WHITELIST_IN, "a\\", "1", "x\\"));
        whitelist_free(w);
}

/* ---- G-81: syntax errors and their line numbers ----------------------------------------- */

static void test_syntax_three_field_rule(void)
{
        /* §10 item 9, CFG-1 */
        assert_syntax_error("in * *\n", 1);
        assert_syntax_error("in * *", 1);
        assert_syntax_error("out * *\n", 1);
}

static void test_syntax_keyword_alone(void)
{
        /* CFG-1 */
        assert_syntax_error("in\n", 1);
        assert_syntax_error("out\n", 1);
        assert_syntax_error("in *\n", 1);
}

static void test_syntax_five_field_rule(void)
{
        /* CFG-1, G-81: exactly four fields */
        assert_syntax_error("out a b c d\n", 1);
        assert_syntax_error("in * * * * * * * *\n", 1);
}

static void test_syntax_unknown_keyword(void)
{
        /* CFG-3 */
        assert_syntax_error("# comment\n\nallow * * x\n", 3);
        assert_syntax_error("ins * * x\n", 1);
        assert_syntax_error("i * * x\n", 1);
        assert_syntax_error("interfaces eth0\n", 1);
        assert_syntax_error("* * * x\n", 1);
        assert_syntax_error("[in] * * x\n", 1);
        assert_syntax_error("in|out * * x\n", 1);
}

static void test_syntax_upper_case_keyword(void)
{
        /* G-81: keywords are lower case only */
        assert_syntax_error("IN * * x\n", 1);
        assert_syntax_error("in * * x\nOut * * x\n", 2);
        assert_syntax_error("INTERFACE eth0\n", 1);
        assert_syntax_error("Interface eth0\n", 1);
}

static void test_syntax_lone_trailing_backslash(void)
{
        /* CFG-3, G-81: a pattern ending in an unpaired `\` makes the file invalid */
        assert_syntax_error("in * * abc\\\n", 1);
        assert_syntax_error("in * * \\\n", 1);
        assert_syntax_error("out a\\ * x\n", 1); /* `\ ` is no escaped blank (PAT-5) */
        assert_syntax_error("out * 1\\ x\n", 1);
        assert_syntax_error("in * * a\\\\\\\n", 1); /* `\\` then a lone `\` */
        assert_syntax_error("in * * ok\nin * * bad\\\r\n", 2);
}

static void test_syntax_interface_without_name(void)
{
        /* IF-1, G-81: exactly two fields */
        assert_syntax_error("interface\n", 1);
        assert_syntax_error("interface  \t \n", 1);
        assert_syntax_error("in * * x\ninterface", 2);
}

static void test_syntax_interface_two_names(void)
{
        /* IF-1, G-81 */
        assert_syntax_error("interface eth0 eth1\n", 1);
        assert_syntax_error("interface eth0 # USB\n", 1);
}

static void test_syntax_nul_byte(void)
{
        /* NUL is not text: invalid anywhere, also inside a comment */
        static const char rule[] = "in * * a\0b\n";
        static const char comment[] = "in * * x\n# \0\n";
        static const char lone[] = "\0";

        assert_syntax_error_len(rule, sizeof(rule) - 1, 1);
        assert_syntax_error_len(comment, sizeof(comment) - 1, 2);
        assert_syntax_error_len(lone, 1, 1);
}

static void test_syntax_lone_carriage_return(void)
{
        /* G-81: only LF and CR LF end lines; a lone CR is invalid, even in a comment, so a file
         * with old Mac line ends is not read as one long comment */
        assert_syntax_error("in * * x\rin * * y\n", 1);
        assert_syntax_error("# comment\rin * * y\n", 1);
        assert_syntax_error("in * * x\nin * * y\r", 2);
        assert_syntax_error("in * * x\r\r\n", 1);
}

static void test_syntax_control_character_in_field(void)
{
        assert_syntax_error("in * * a\x01"
                            "b\n",
                            1);
        assert_syntax_error("in * * x\ninterface eth\x1b\n", 2);
        assert_syntax_error("in * * a\x7f\n", 1);
        assert_syntax_error("in\v* * x\n", 1); /* only space and tab separate (G-81) */
        assert_syntax_error("in\f* * x\n", 1);
}

static void test_syntax_error_line_counts_every_line(void)
{
        /* G-81: the line number counts comments, blank lines and CR LF lines */
        assert_syntax_error("# 1\r\n\r\n   \n\tin * * ok\r\nin * *\r\n", 5);
        assert_syntax_error("\xef\xbb\xbf\nout\n", 2);
}

static void test_syntax_first_error_wins(void)
{
        assert_syntax_error("in * * ok\nbad\nIN * * x\nin *\n", 2);
}

/* ---- limits ------------------------------------------------------------------------------- */

static char *line_of(char c, size_t n, const char *prefix)
{
        GString *s = g_string_new(prefix);

        while (s->len < n)
                g_string_append_c(s, c);
        return g_string_free(s, FALSE);
}

static void test_limits_line_length(void)
{
        /* header: a line (without its line end) may be WHITELIST_MAX_LINE bytes long */
        char *max_rule = line_of('x', WHITELIST_MAX_LINE, "in * * ");
        char *max_comment = line_of('x', WHITELIST_MAX_LINE, "# ");
        char *long_rule = line_of('x', WHITELIST_MAX_LINE + 1, "in * * ");
        char *long_comment = line_of('x', WHITELIST_MAX_LINE + 1, "# ");
        char *text;
        whitelist_t *w;

        g_assert_cmpuint(strlen(max_rule), ==, WHITELIST_MAX_LINE);
        w = parse_ok(max_rule);
        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        whitelist_free(w);

        text = g_strconcat(max_rule, "\r\n", max_comment, "\n", NULL);
        w = parse_ok(text);
        whitelist_free(w);
        g_free(text);

        text = g_strconcat("in * * x\n", long_rule, "\n", NULL);
        assert_syntax_error(text, 2);
        g_free(text);

        text = g_strconcat("\n\n", long_comment, NULL);
        assert_syntax_error(text, 3);
        g_free(text);

        g_free(max_rule);
        g_free(max_comment);
        g_free(long_rule);
        g_free(long_comment);
}

static void test_limits_rule_count(void)
{
        /* header: at most WHITELIST_MAX_RULES rules, in and out together */
        GString *s = g_string_new(NULL);
        whitelist_t *w;

        for (unsigned i = 0; i < WHITELIST_MAX_RULES; i++)
                g_string_append_printf(s, "%s * * id%u\n", i % 2 ? "out" : "in", i);
        w = parse_ok(s->str);
        g_assert_cmpuint(whitelist_n_rules(w), ==, WHITELIST_MAX_RULES);
        g_assert_true(whitelist_allows(w, WHITELIST_OUT, "a", "b", "id4095"));
        g_assert_false(whitelist_allows(w, WHITELIST_IN, "a", "b", "id4095"));
        whitelist_free(w);

        g_string_append(s, "# comments do not count\ninterface eth0\nin * * one-too-many\n");
        assert_syntax_error(s->str, WHITELIST_MAX_RULES + 3);
        g_string_free(s, TRUE);
}

static void test_limits_interface_count(void)
{
        /* header: at most WHITELIST_MAX_INTERFACES distinct names; duplicates do not count */
        GString *s = g_string_new(NULL);
        whitelist_t *w;

        for (unsigned i = 0; i < WHITELIST_MAX_INTERFACES; i++)
                g_string_append_printf(s, "interface if%u\n", i);
        g_string_append(s, "interface if0\n");
        w = parse_ok(s->str);
        g_assert_cmpuint(whitelist_n_interfaces(w), ==, WHITELIST_MAX_INTERFACES);
        whitelist_free(w);

        g_string_append(s, "interface one-too-many\n");
        assert_syntax_error(s->str, WHITELIST_MAX_INTERFACES + 2);
        g_string_free(s, TRUE);
}

static void test_limits_interface_name_length(void)
{
        char *ok = line_of('h', WHITELIST_MAX_INTERFACE_NAME, "");
        char *text = g_strconcat("interface ", ok, "\n", NULL);
        whitelist_t *w = parse_ok(text);

        g_assert_cmpstr(whitelist_interface(w, 0), ==, ok);
        whitelist_free(w);
        g_free(text);

        text = g_strconcat("\ninterface ", ok, "h\n", NULL);
        assert_syntax_error(text, 2);
        g_free(text);
        g_free(ok);
}

/* Comment lines filling exactly size bytes. */
static char *comments_of_size(size_t size)
{
        char *text = g_malloc(size + 1);

        memset(text, 'x', size);
        for (size_t i = 0; i < size; i += 1000) {
                text[i] = '#';
                if (i > 0)
                        text[i - 1] = '\n';
        }
        text[size] = '\0';
        return text;
}

static void test_limits_text_size(void)
{
        /* header: text longer than WHITELIST_MAX_FILE_SIZE is refused whole with -EFBIG */
        char *text = comments_of_size(WHITELIST_MAX_FILE_SIZE + 1);
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        g_assert_cmpint(whitelist_parse(text, WHITELIST_MAX_FILE_SIZE + 1, &w, &line), ==, -EFBIG);
        g_assert_true(w == WL_SENTINEL);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);

        w = parse_ok_len(text, WHITELIST_MAX_FILE_SIZE);
        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        whitelist_free(w);
        g_free(text);
}

/* ---- whitelist_load ----------------------------------------------------------------------- */

static void test_load_example_file(void)
{
        tmpfile_t t;
        whitelist_t *w = NULL;
        unsigned line = LINE_SENTINEL;

        tmpfile_write(&t, example_cfg, -1);
        g_assert_cmpint(whitelist_load(t.path, &w, &line), ==, 0);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
        g_assert_cmpuint(whitelist_n_rules(w), ==, 5);
        g_assert_cmpstr(whitelist_interface(w, 0), ==, "192.168.7.1");
        g_assert_true(whitelist_allows(w, WHITELIST_OUT, "kiosk", "1", "cfg*"));
        whitelist_free(w);
        tmpfile_remove(&t);
}

static void test_load_missing_file(void)
{
        /* §10 item 9: a missing file is a file error (NOTIFY_ERR_CONFIG_FILE), not a syntax one */
        tmpfile_t t;
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        tmpfile_write(&t, NULL, 0);
        g_assert_cmpint(whitelist_load(t.path, &w, &line), ==, -ENOENT);
        g_assert_true(w == WL_SENTINEL);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
        tmpfile_remove(&t);
}

static void test_load_directory(void)
{
        tmpfile_t t;
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        tmpfile_write(&t, NULL, 0);
        g_assert_cmpint(whitelist_load(t.dir, &w, &line), ==, -EISDIR);
        g_assert_true(w == WL_SENTINEL);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
        tmpfile_remove(&t);
}

static void test_load_empty_file(void)
{
        /* G-86 */
        tmpfile_t t;
        whitelist_t *w = NULL;

        tmpfile_write(&t, "", 0);
        g_assert_cmpint(whitelist_load(t.path, &w, NULL), ==, 0);
        g_assert_cmpuint(whitelist_n_rules(w), ==, 0);
        g_assert_cmpuint(whitelist_n_interfaces(w), ==, 0);
        whitelist_free(w);
        tmpfile_remove(&t);
}

static void test_load_syntax_error(void)
{
        /* §10 item 9 */
        tmpfile_t t;
        whitelist_t *w = WL_SENTINEL;
        unsigned line = 0;

        tmpfile_write(&t, "# three fields\n\nin * *\n", -1);
        g_assert_cmpint(whitelist_load(t.path, &w, &line), ==, -EBADMSG);
        g_assert_cmpuint(line, ==, 3);
        g_assert_true(w == WL_SENTINEL);
        tmpfile_remove(&t);
}

static void test_load_oversized_file(void)
{
        tmpfile_t t;
        char *text = comments_of_size(WHITELIST_MAX_FILE_SIZE + 1);
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        tmpfile_write(&t, text, WHITELIST_MAX_FILE_SIZE + 1);
        g_assert_cmpint(whitelist_load(t.path, &w, &line), ==, -EFBIG);
        g_assert_true(w == WL_SENTINEL);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
        tmpfile_remove(&t);
        g_free(text);
}

static void test_load_syntax_error_logged_once(void)
{
        /* G-81: one NFY "err" line naming file and line */
        if (g_test_subprocess()) {
                tmpfile_t t;
                whitelist_t *w = NULL;

                g_setenv("NFY_LOGMASK", "8", TRUE); /* bit 3: LOG_ERR */
                log_reset();
                tmpfile_write(&t, "in * * x\n# comment\nIN * * x\n", -1);
                g_assert_cmpint(whitelist_load(t.path, &w, NULL), ==, -EBADMSG);
                tmpfile_remove(&t);
                return;
        }
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("*|NFY:err|*/notify.cfg:3: unknown keyword 'IN' (keywords are "
                                  "lower case)\n");
        g_test_trap_assert_stderr_unmatched("*\n*\n*");
}

static void test_load_missing_file_logged(void)
{
        if (g_test_subprocess()) {
                whitelist_t *w = NULL;

                g_setenv("NFY_LOGMASK", "8", TRUE);
                log_reset();
                g_assert_cmpint(whitelist_load("/nonexistent/vfiipc-test/notify.cfg", &w, NULL), ==,
                                -ENOENT);
                return;
        }
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("*NFY:err|/nonexistent/vfiipc-test/notify.cfg: cannot open: *\n");
}

/* ---- API conventions ---------------------------------------------------------------------- */

static void test_api_null_safe(void)
{
        g_assert_null(whitelist_free(NULL));
        g_assert_cmpuint(whitelist_n_rules(NULL), ==, 0);
        g_assert_cmpuint(whitelist_n_interfaces(NULL), ==, 0);
        g_assert_null(whitelist_interface(NULL, 0));
}

static void test_api_invalid_arguments(void)
{
        whitelist_t *w = WL_SENTINEL;
        unsigned line = LINE_SENTINEL;

        g_assert_cmpint(whitelist_parse("in * * x", 8, NULL, &line), ==, -EINVAL);
        g_assert_cmpint(whitelist_parse(NULL, 1, &w, &line), ==, -EINVAL);
        g_assert_cmpint(whitelist_load(NULL, &w, &line), ==, -EINVAL);
        g_assert_true(w == WL_SENTINEL);
        g_assert_cmpuint(line, ==, LINE_SENTINEL);
}

static void test_api_parse_honours_len(void)
{
        /* Text need not be NUL-terminated: bytes past len are not read. */
        static const char text[] = "in * * x\nthis is garbage";
        whitelist_t *w = parse_ok_len(text, 9);

        g_assert_cmpuint(whitelist_n_rules(w), ==, 1);
        whitelist_free(w);
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);

        for (size_t i = 0; i < G_N_ELEMENTS(example_rows); i++)
                g_test_add_data_func(example_rows[i].name, &example_rows[i], test_example_row);
        g_test_add_func("/whitelist/example/counts", test_example_counts);

        g_test_add_func("/whitelist/pattern/star-matches-empty", test_pattern_star_matches_empty);
        g_test_add_func("/whitelist/pattern/star-matches-any-sequence",
                        test_pattern_star_matches_any_sequence);
        g_test_add_func("/whitelist/pattern/star-backtracks", test_pattern_star_backtracks);
        g_test_add_func("/whitelist/pattern/double-star", test_pattern_double_star);
        g_test_add_func("/whitelist/pattern/escaped-star-is-literal",
                        test_pattern_escaped_star_is_literal);
        g_test_add_func("/whitelist/pattern/escaped-backslash", test_pattern_escaped_backslash);
        g_test_add_func("/whitelist/pattern/escape-any-char", test_pattern_escape_any_char);
        g_test_add_func("/whitelist/pattern/lone-trailing-backslash-never-matches",
                        test_pattern_lone_trailing_backslash_never_matches);
        g_test_add_func("/whitelist/pattern/question-mark-and-bracket-literal",
                        test_pattern_question_mark_and_bracket_literal);
        g_test_add_func("/whitelist/pattern/case-sensitive", test_pattern_case_sensitive);
        g_test_add_func("/whitelist/pattern/whole-field", test_pattern_whole_field);
        g_test_add_func("/whitelist/pattern/bytes-beyond-ascii", test_pattern_bytes_beyond_ascii);
        g_test_add_func("/whitelist/pattern/null-never-matches", test_pattern_null_never_matches);
        g_test_add_func("/whitelist/pattern/many-stars-linear-time",
                        test_pattern_many_stars_linear_time);
        g_test_add_func("/whitelist/pattern/agrees-with-backtracking-reference",
                        test_pattern_agrees_with_backtracking_reference);

        g_test_add_func("/whitelist/allows/direction-separates-rules",
                        test_allows_direction_separates_rules);
        g_test_add_func("/whitelist/allows/needs-all-three-fields",
                        test_allows_needs_all_three_fields);
        g_test_add_func("/whitelist/allows/fields-not-combined-across-rules",
                        test_allows_fields_not_combined_across_rules);
        g_test_add_func("/whitelist/allows/no-rules-allows-nothing",
                        test_allows_no_rules_allows_nothing);
        g_test_add_func("/whitelist/allows/fails-closed-on-bad-arguments",
                        test_allows_fails_closed_on_bad_arguments);

        g_test_add_func("/whitelist/syntax/comments-and-blank-lines",
                        test_syntax_comments_and_blank_lines);
        g_test_add_func("/whitelist/syntax/blank-runs-separate-fields",
                        test_syntax_blank_runs_separate_fields);
        g_test_add_func("/whitelist/syntax/hash-inside-line-is-ordinary",
                        test_syntax_hash_inside_line_is_ordinary);
        g_test_add_func("/whitelist/syntax/crlf-line-ends", test_syntax_crlf_line_ends);
        g_test_add_func("/whitelist/syntax/mixed-line-ends", test_syntax_mixed_line_ends);
        g_test_add_func("/whitelist/syntax/no-final-newline", test_syntax_no_final_newline);
        g_test_add_func("/whitelist/syntax/bom-ignored", test_syntax_bom_ignored);
        g_test_add_func("/whitelist/syntax/bom-only-at-start", test_syntax_bom_only_at_start);
        g_test_add_func("/whitelist/syntax/empty-text", test_syntax_empty_text);
        g_test_add_func("/whitelist/syntax/interfaces-only", test_syntax_interfaces_only);
        g_test_add_func("/whitelist/syntax/duplicate-interfaces-folded",
                        test_syntax_duplicate_interfaces_folded);
        g_test_add_func("/whitelist/syntax/escaped-backslash-at-end-accepted",
                        test_syntax_escaped_backslash_at_end_accepted);
        g_test_add_func("/whitelist/syntax/three-field-rule", test_syntax_three_field_rule);
        g_test_add_func("/whitelist/syntax/keyword-alone", test_syntax_keyword_alone);
        g_test_add_func("/whitelist/syntax/five-field-rule", test_syntax_five_field_rule);
        g_test_add_func("/whitelist/syntax/unknown-keyword", test_syntax_unknown_keyword);
        g_test_add_func("/whitelist/syntax/upper-case-keyword", test_syntax_upper_case_keyword);
        g_test_add_func("/whitelist/syntax/lone-trailing-backslash",
                        test_syntax_lone_trailing_backslash);
        g_test_add_func("/whitelist/syntax/interface-without-name",
                        test_syntax_interface_without_name);
        g_test_add_func("/whitelist/syntax/interface-two-names", test_syntax_interface_two_names);
        g_test_add_func("/whitelist/syntax/nul-byte", test_syntax_nul_byte);
        g_test_add_func("/whitelist/syntax/lone-carriage-return", test_syntax_lone_carriage_return);
        g_test_add_func("/whitelist/syntax/control-character-in-field",
                        test_syntax_control_character_in_field);
        g_test_add_func("/whitelist/syntax/error-line-counts-every-line",
                        test_syntax_error_line_counts_every_line);
        g_test_add_func("/whitelist/syntax/first-error-wins", test_syntax_first_error_wins);

        g_test_add_func("/whitelist/limits/line-length", test_limits_line_length);
        g_test_add_func("/whitelist/limits/rule-count", test_limits_rule_count);
        g_test_add_func("/whitelist/limits/interface-count", test_limits_interface_count);
        g_test_add_func("/whitelist/limits/interface-name-length",
                        test_limits_interface_name_length);
        g_test_add_func("/whitelist/limits/text-size", test_limits_text_size);

        g_test_add_func("/whitelist/load/example-file", test_load_example_file);
        g_test_add_func("/whitelist/load/missing-file", test_load_missing_file);
        g_test_add_func("/whitelist/load/directory", test_load_directory);
        g_test_add_func("/whitelist/load/empty-file", test_load_empty_file);
        g_test_add_func("/whitelist/load/syntax-error", test_load_syntax_error);
        g_test_add_func("/whitelist/load/oversized-file", test_load_oversized_file);
        g_test_add_func("/whitelist/load/syntax-error-logged-once",
                        test_load_syntax_error_logged_once);
        g_test_add_func("/whitelist/load/missing-file-logged", test_load_missing_file_logged);

        g_test_add_func("/whitelist/api/null-safe", test_api_null_safe);
        g_test_add_func("/whitelist/api/invalid-arguments", test_api_invalid_arguments);
        g_test_add_func("/whitelist/api/parse-honours-len", test_api_parse_honours_len);

        return g_test_run();
}
