/* tests/test-log.c — the legacy diagnostics (lib/core/log.c): *_LOGMASK bit masks and the line
 * layout (legacy-api.md §7, G-96, G-97).
 *
 * Each case runs in a fresh subprocess (g_test_trap_subprocess) that sets the variables before
 * its first log call, as an application would (LOG-3); log.c reads them lazily, so no
 * log_reset() is involved. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>

#include "core/log.h"

static const char *const level_names[8] = {"emerg",   "alert",  "crit", "err",
                                           "warning", "notice", "info", "debug"};

/* Subprocess body: one NFYCL line per level, texts "level-<n>". */
static void log_every_level(void)
{
        for (int level = LOG_EMERG; level <= LOG_DEBUG; level++)
                nfycl_log(level, "level-%d", level);
}

typedef struct mask_case {
        const char *value; /* NFY_LOGMASK, NULL: unset */
        unsigned expect;   /* bit i set: a line of level i is written */
} mask_case_t;

static const mask_case_t mask_cases[] = {
    {NULL, 0},     /* LOG-3: silent by default */
    {"0", 0},      {"8", 1u << LOG_ERR}, /* G-96: 8 = only err, not a threshold */
    {"15", 0x0f},                         /* err and worse */
    {"16", 1u << LOG_WARNING},            /* warning alone, errors not */
    {"255", 0xff}, {"129", 0x81},         /* emerg and debug only */
    {"0x8", 0},    {"eight", 0}, {"8abc", 0}, {"", 0}, {"-8", 0}, {"+8", 0}, {" 8", 0}, /* not decimal: 0 (G-96) */
};

static void test_mask(gconstpointer p)
{
        const mask_case_t *c = p;

        if (g_test_subprocess()) {
                if (c->value)
                        g_setenv("NFY_LOGMASK", c->value, TRUE);
                else
                        g_unsetenv("NFY_LOGMASK");
                g_unsetenv("IPC_LOGMASK");
                g_unsetenv("IPCTLS_LOGMASK");
                log_every_level();
                return;
        }
        g_test_trap_subprocess(NULL, 0, 0);
        g_test_trap_assert_passed();
        for (int level = 0; level < 8; level++) {
                char *pattern = g_strdup_printf("*|NFYCL:%s|level-%d\n*", level_names[level], level);
                if (c->expect & (1u << level))
                        g_test_trap_assert_stderr(pattern);
                else
                        g_test_trap_assert_stderr_unmatched(pattern);
                g_free(pattern);
        }
        if (!c->expect)
                g_test_trap_assert_stderr("");
}

/* LOG-1: NFY_LOGMASK covers the notification client and server, not the IPC layer; and
 * IPC_LOGMASK does not switch on notification lines. */
static void test_channels_have_their_own_variable(void)
{
        if (g_test_subprocess()) {
                g_setenv("NFY_LOGMASK", "8", TRUE);
                g_setenv("IPC_LOGMASK", "16", TRUE);
                g_unsetenv("IPCTLS_LOGMASK");
                nfy_log(LOG_ERR, "server err");
                nfycl_log(LOG_ERR, "client err");
                ipc_log(LOG_ERR, "ipc err");
                ipc_log(LOG_WARNING, "ipc warning");
                nfy_log(LOG_WARNING, "server warning");
                log_full(LOG_CHANNEL_IPCTLS, LOG_ERR, 0, "tls err");
                return;
        }
        g_test_trap_subprocess(NULL, 0, 0);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("*|NFY:err|server err\n*");
        g_test_trap_assert_stderr("*|NFYCL:err|client err\n*");
        g_test_trap_assert_stderr("*|IPC:warning|ipc warning\n*");
        g_test_trap_assert_stderr_unmatched("*ipc err*");
        g_test_trap_assert_stderr_unmatched("*server warning*");
        g_test_trap_assert_stderr_unmatched("*tls err*");
}

/* Captures what fn writes to fd 2 (the log writes with write(2), not stdio). */
static char *capture_stderr(void (*fn)(int *line), int *line)
{
        char path[] = "/tmp/vfiipc-test-log-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        char *text = NULL;

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(saved, >=, 0);
        unlink(path);
        g_assert_cmpint(dup2(fd, STDERR_FILENO), ==, STDERR_FILENO);
        fn(line);
        g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
        close(saved);

        off_t size = lseek(fd, 0, SEEK_END);
        g_assert_cmpint(size, >, 0);
        text = g_malloc0((gsize)size + 1);
        g_assert_cmpint(pread(fd, text, (size_t)size, 0), ==, size);
        close(fd);
        return text;
}

static void log_two_lines(int *line)
{
        line[0] = __LINE__ + 1;
        nfycl_log(LOG_ERR, "hello %d|%s", 42, "world");
        line[1] = __LINE__ + 1;
        nfycl_log_errno(LOG_ERR, -ENOENT, "cannot open %s", "x.cfg");
}

/* LOG-4, G-97: IPC|<file>:<line>|PID=<pid>|<s>.<mmm>|<CHANNEL>:<level>|<text>, the time
 * counted from the component's first log call, one line per message. */
static void test_line_layout(void)
{
        if (g_test_subprocess()) {
                GRegex *re = g_regex_new("^IPC\\|test-log\\.c:([0-9]+)\\|PID=([0-9]+)\\|"
                                         "([0-9]+)\\.([0-9]{3})\\|NFYCL:err\\|(.*)$",
                                         G_REGEX_MULTILINE, 0, NULL);
                GMatchInfo *m = NULL;
                char **lines;
                char *text, *want_pid = g_strdup_printf("%d", (int)getpid());
                int line[2];

                g_setenv("NFY_LOGMASK", "8", TRUE);
                text = capture_stderr(log_two_lines, line);
                g_assert_true(g_str_has_suffix(text, "\n"));
                lines = g_strsplit(text, "\n", -1);
                g_assert_cmpuint(g_strv_length(lines), ==, 3); /* two lines and "" */
                for (int i = 0; i < 2; i++) {
                        char *s;

                        g_assert_true(g_regex_match(re, lines[i], 0, &m));
                        s = g_match_info_fetch(m, 1);
                        g_assert_cmpint(atoi(s), ==, line[i]);
                        g_free(s);
                        s = g_match_info_fetch(m, 2);
                        g_assert_cmpstr(s, ==, want_pid);
                        g_free(s);
                        s = g_match_info_fetch(m, 3); /* first use was just now */
                        g_assert_cmpstr(s, ==, "0");
                        g_free(s);
                        s = g_match_info_fetch(m, 5);
                        g_assert_cmpstr(s, ==, i == 0 ? "hello 42|world"
                                                      : "cannot open x.cfg: No such file or "
                                                        "directory");
                        g_free(s);
                        g_clear_pointer(&m, g_match_info_free);
                }
                g_strfreev(lines);
                g_free(text);
                g_free(want_pid);
                g_regex_unref(re);
                return;
        }
        g_test_trap_subprocess(NULL, 0, 0);
        g_test_trap_assert_passed();
}

/* A message longer than the line buffer is cut, but still one line ending in '\n'. */
static void test_long_message_is_one_line(void)
{
        if (g_test_subprocess()) {
                char *big = g_strnfill(5000, 'x');

                g_setenv("NFY_LOGMASK", "8", TRUE);
                nfycl_log(LOG_ERR, "%s", big);
                g_free(big);
                return;
        }
        g_test_trap_subprocess(NULL, 0, 0);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("IPC|test-log.c:*|NFYCL:err|xxxxxxxx*x\n");
        g_test_trap_assert_stderr_unmatched("*\n*\n*");
}

int main(int argc, char **argv)
{
        g_test_init(&argc, &argv, NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(mask_cases); i++) {
                char *name = g_strdup_printf("/log/mask/%s", mask_cases[i].value
                                                                 ? (*mask_cases[i].value
                                                                            ? mask_cases[i].value
                                                                            : "empty")
                                                                 : "unset");
                g_test_add_data_func(name, &mask_cases[i], test_mask);
                g_free(name);
        }
        g_test_add_func("/log/channels-have-their-own-variable",
                        test_channels_have_their_own_variable);
        g_test_add_func("/log/line-layout", test_line_layout);
        g_test_add_func("/log/long-message-is-one-line", test_long_message_is_one_line);
        return g_test_run();
}
