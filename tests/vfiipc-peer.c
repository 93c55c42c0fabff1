/* tests/vfiipc-peer.c — one application process for multi-process tests, driven over stdin.
 *
 * Each process is one registrant, as for real applications, so routing tests need several.
 * Commands (one per line, fields separated by TAB; empty field = NULL/""):
 *   appid ID | register ID PRIO TO | unregister ID TO | notify TO ID JSON FROM FLAGS |
 *   observe | unobserve | errors | noerrors | quit
 * Each command answers "result<TAB>N" (a vfiipc_result). Callbacks print, flushed at once:
 *   deliver RECEIVER FROM TO ID JSON FLAGS | observed FROM TO ID FLAGS |
 *   error FROM TO ID JSON FLAGS
 * Uses the public C API only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfiipc/notify.h>

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
        va_list ap;

        pthread_mutex_lock(&out_lock);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        pthread_mutex_unlock(&out_lock);
}

static void on_notify(void *data, const char *from, const char *to, const char *id,
                      const json_t *param, unsigned flags)
{
        char *json = json_dumps(param, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

        out("deliver\t%s\t%s\t%s\t%s\t%s\t%u", (const char *)data, from, to, id,
            json ? json : "?", flags);
        free(json);
}

static void on_error(void *data, const char *from, const char *to, const char *id,
                     const json_t *param, unsigned flags)
{
        char *json = json_dumps(param, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

        out("error\t%s\t%s\t%s\t%s\t%u", from, to, id, json ? json : "?", flags);
        free(json);
}

static void on_observed(void *data, const char *from, const char *to, const char *id,
                        unsigned flags)
{
        out("observed\t%s\t%s\t%s\t%u", from, to, id, flags);
}

int main(void)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        while ((n = getline(&line, &cap, stdin)) > 0) {
                char *f[8] = {0};
                int nf = 0, r = -100;
                char *p = line;

                if (line[n - 1] == '\n')
                        line[n - 1] = '\0';
                while (nf < 8) {
                        f[nf++] = p;
                        p = strchr(p, '\t');
                        if (!p)
                                break;
                        *p++ = '\0';
                }
                if (!strcmp(f[0], "quit"))
                        break;
                if (!strcmp(f[0], "appid") && nf >= 2) {
                        vfiipc_set_app_id(f[1]);
                        r = 0;
                } else if (!strcmp(f[0], "register") && nf >= 4) {
                        /* data names the registration, so the test sees which one got it */
                        char *tag = strdup(*f[3] ? f[3] : "-");
                        r = vfiipc_register(f[1], on_notify, tag, atoi(f[2]), f[3]);
                } else if (!strcmp(f[0], "unregister") && nf >= 3) {
                        r = vfiipc_unregister(f[1], NULL, NULL, f[2]);
                } else if (!strcmp(f[0], "notify") && nf >= 6) {
                        r = vfiipc_notify_text(f[1], f[2], f[3], (unsigned)strtoul(f[5], NULL, 10),
                                               f[4]);
                } else if (!strcmp(f[0], "observe")) {
                        r = vfiipc_observer_add(on_observed, NULL);
                } else if (!strcmp(f[0], "unobserve")) {
                        r = vfiipc_observer_remove(on_observed, NULL);
                } else if (!strcmp(f[0], "errors")) {
                        r = vfiipc_unicast_error_add(on_error, NULL);
                } else if (!strcmp(f[0], "noerrors")) {
                        r = vfiipc_unicast_error_remove(on_error, NULL);
                }
                out("result\t%d", r);
        }
        free(line);
        return 0;
}
