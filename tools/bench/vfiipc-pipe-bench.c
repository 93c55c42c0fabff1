/* vfiipc-pipe-bench — message ping-pong over a vfiipc Pipe (C API: write_msg/read_msg) next to
 * a raw socketpair ping-pong of the same frame bytes, in one run: 3 repeats, median, ratio.
 * A measurement, not a test. Usage: vfiipc-pipe-bench [round-trips] [payload-bytes] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vfiipc/stream.h>

#define PFX 0x42454e43u
#define REPEATS 3

static int rounds = 20000;
static int payload = 64;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int msg_echo(void *ctx, int id, const void *p, size_t n)
{
        return vfiipc_stream_write_msg(ctx, PFX, id, p, (int)n) ? 0 : -1;
}

static int msg_drop(void *ctx, int id, const void *p, size_t n)
{
        (void)ctx, (void)id, (void)p, (void)n;
        return 0;
}

static void *pipe_server(void *p)
{
        vfiipc_stream *a = p;

        while (vfiipc_stream_read_msg_cb(a, PFX, 1 << 20, -1, msg_echo, a))
                ;
        return NULL;
}

static double run_pipe(const char *path)
{
        vfiipc_stream *l = NULL, *c = NULL, *a = NULL;
        char *buf = calloc(1, (size_t)payload);
        pthread_t t;
        double t0, dt;

        vfiipc_stream_new(VFIIPC_STREAM_PIPE, &l);
        vfiipc_stream_new(VFIIPC_STREAM_PIPE, &c);
        if (!vfiipc_pipe_listen(l, path) || !vfiipc_pipe_connect(c, path) ||
            vfiipc_pipe_accept(l, 1000, &a) < 0) {
                fprintf(stderr, "pipe setup failed\n");
                exit(1);
        }
        pthread_create(&t, NULL, pipe_server, a);
        t0 = now_s();
        for (int i = 0; i < rounds; i++)
                if (!vfiipc_stream_write_msg(c, PFX, i, buf, payload) ||
                    !vfiipc_stream_read_msg_cb(c, PFX, 1 << 20, -1, msg_drop, NULL))
                        exit(1);
        dt = now_s() - t0;
        vfiipc_stream_free(c);
        pthread_join(t, NULL);
        vfiipc_stream_free(a);
        vfiipc_stream_free(l);
        free(buf);
        return dt;
}

static int read_full(int fd, char *p, size_t n)
{
        while (n) {
                ssize_t k = read(fd, p, n);
                if (k <= 0)
                        return -1;
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

static void *raw_server(void *p)
{
        int fd = *(int *)p;
        size_t n = 12 + (size_t)payload;
        char *buf = malloc(n);

        while (read_full(fd, buf, n) == 0)
                if (write(fd, buf, n) != (ssize_t)n)
                        break;
        free(buf);
        return NULL;
}

static double run_raw(void)
{
        int sv[2];
        size_t n = 12 + (size_t)payload;
        char *buf = calloc(1, n);
        pthread_t t;
        double t0, dt;

        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        pthread_create(&t, NULL, raw_server, &sv[1]);
        t0 = now_s();
        for (int i = 0; i < rounds; i++)
                if (write(sv[0], buf, n) != (ssize_t)n || read_full(sv[0], buf, n) < 0)
                        exit(1);
        dt = now_s() - t0;
        close(sv[0]);
        pthread_join(t, NULL);
        close(sv[1]);
        free(buf);
        return dt;
}

static int cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
        char dir[] = "/tmp/vfiipc-bench-XXXXXX", path[64];
        double p[REPEATS], r[REPEATS];

        if (argc > 1)
                rounds = atoi(argv[1]);
        if (argc > 2)
                payload = atoi(argv[2]);
        if (rounds <= 0 || payload < 0 || !mkdtemp(dir)) {
                fprintf(stderr, "usage: %s [round-trips] [payload-bytes]\n", argv[0]);
                return 2;
        }
        snprintf(path, sizeof(path), "%s/pipe", dir);
        for (int i = 0; i < REPEATS; i++) {
                r[i] = run_raw();
                p[i] = run_pipe(path);
                printf("repeat %d: raw %.2f us/rt, vfiipc Pipe %.2f us/rt\n", i + 1,
                       r[i] / rounds * 1e6, p[i] / rounds * 1e6);
        }
        rmdir(dir);
        qsort(p, REPEATS, sizeof(double), cmp);
        qsort(r, REPEATS, sizeof(double), cmp);
        printf("%d round trips, %d-byte payload (frame %d bytes)\n", rounds, payload, payload + 12);
        printf("median raw socketpair: %.2f us/rt\n", r[1] / rounds * 1e6);
        printf("median vfiipc Pipe:    %.2f us/rt\n", p[1] / rounds * 1e6);
        printf("ratio: %.2fx (goal <= 1.30x)\n", p[1] / r[1]);
        return 0;
}
