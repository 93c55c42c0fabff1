/* tools/bench/party.c — the parties and crews of a measurement (see bench.h), and small
 * helpers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "core/util.h"

int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

struct timespec timespec_of(int64_t ns)
{
        return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

const char *mode_name(bench_mode_t mode)
{
        return mode == MODE_THROUGHPUT ? "throughput"
               : mode == MODE_ECHO     ? "round trip"
                                       : "broadcast";
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* Nearest rank. */
static double percentile(const double *sorted, size_t n, unsigned p)
{
        size_t rank = (n * p + 99) / 100;
        return sorted[rank > 0 ? rank - 1 : 0];
}

void latencies_summarise(double *lat, size_t n, report_t *rep)
{
        qsort(lat, n, sizeof(*lat), cmp_double);
        rep->p50_us = percentile(lat, n, 50);
        rep->p99_us = percentile(lat, n, 99);
}

void app_id_of(char *buf, size_t size, const char *base, unsigned i)
{
        if (i == 0)
                snprintf(buf, size, "%s", base);
        else
                snprintf(buf, size, "%s-%u", base, i);
}

bool median(double *v, size_t n, double *ret)
{
        if (n == 0)
                return false;
        qsort(v, n, sizeof(*v), cmp_double);
        *ret = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        return true;
}

/* ---- reports ---- */

int report_write(int fd, const report_t *rep)
{
        ssize_t n;

        do
                n = write(fd, rep, sizeof(*rep));
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)sizeof(*rep) ? 0 : n < 0 ? -errno : -EIO;
}

int report_read(int fd, report_t *rep, int timeout_ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int r;

        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (r == 0)
                return -ETIMEDOUT;
        do
                n = read(fd, rep, sizeof(*rep));
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return -ECHILD;
        if (n != (ssize_t)sizeof(*rep))
                return n < 0 ? -errno : -EIO;
        return rep->status;
}

int parent_wait(int in)
{
        ssize_t n;
        char c;

        do
                n = read(in, &c, 1);
        while (n < 0 && errno == EINTR);
        return n == 1 ? 0 : -ECANCELED;
}

/* ---- parties ---- */

/* Parent ends of every running party's pipes: a new child closes them, or a party would
 * never see the EOF that tells it to end. */
static int live_fds[4 * PARTIES_MAX + 8];
static size_t n_live_fds;

static void live_fd_close(int fd)
{
        for (size_t i = 0; i < n_live_fds; i++)
                if (live_fds[i] == fd) {
                        live_fds[i] = live_fds[--n_live_fds];
                        break;
                }
        close(fd);
}

int party_start(party_t *p, party_body_fn body, const job_t *job)
{
        int down[2], up[2], r;

        if (n_live_fds + 2 > ELEMENTSOF(live_fds))
                return -EMFILE;
        if (pipe2(down, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(up, O_CLOEXEC) < 0) {
                r = -errno;
                close(down[0]);
                close(down[1]);
                return r;
        }
        fflush(stdout);
        fflush(stderr);
        p->pid = fork();
        if (p->pid < 0) {
                r = -errno;
                close(down[0]);
                close(down[1]);
                close(up[0]);
                close(up[1]);
                p->pid = 0;
                return r;
        }
        if (p->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (size_t i = 0; i < n_live_fds; i++)
                        close(live_fds[i]);
                close(down[1]);
                close(up[0]);
                _exit(body(job, down[0], up[1]) < 0 ? 1 : 0);
        }
        close(down[0]);
        close(up[1]);
        p->to_child = live_fds[n_live_fds++] = down[1];
        p->from_child = live_fds[n_live_fds++] = up[0];
        return 0;
}

int party_go(const party_t *p)
{
        char c = 'g';

        return write(p->to_child, &c, 1) == 1 ? 0 : -errno;
}

int child_reap(pid_t pid, int sig)
{
        int64_t deadline = now_ns() + 5000 * NS_PER_MS;
        int status;
        pid_t w;

        if (sig)
                kill(pid, sig);
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) {
                if (now_ns() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -ETIMEDOUT;
                }
                usleep(2000);
        }
        if (w < 0)
                return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (sig && WIFSIGNALED(status) && WTERMSIG(status) == sig)
                return 0;
        return -ECHILD;
}

int party_stop(party_t *p, int sig)
{
        int r;

        if (p->pid <= 0)
                return 0;
        live_fd_close(p->to_child);
        live_fd_close(p->from_child);
        r = child_reap(p->pid, sig);
        p->pid = 0;
        return r;
}

/* ---- crews ---- */

static int crew_start(party_t *parties, char (*names)[NAME_SIZE], unsigned n, const char *what,
                      party_body_fn body, job_t *job)
{
        for (unsigned i = 0; i < n; i++) {
                report_t rep;
                int r;

                job->index = i;
                r = party_start(&parties[i], body, job);
                if (r >= 0)
                        r = report_read(parties[i].from_child, &rep, READY_TIMEOUT_MS);
                if (r < 0) {
                        fprintf(stderr, "vfiipc-bench: %s %u: set-up failed: %s\n", what, i,
                                strerror(-r));
                        return r;
                }
                memcpy(names[i], rep.name[0], NAME_SIZE);
                names[i][NAME_SIZE - 1] = '\0';
        }
        return 0;
}

int crew_start_receivers(crew_t *c, party_body_fn body, job_t *job)
{
        return crew_start(c->rx, c->rx_name, c->shape.receivers, "receiver", body, job);
}

int crew_start_senders(crew_t *c, party_body_fn body, job_t *job)
{
        return crew_start(c->tx, c->tx_name, c->shape.senders, "sender", body, job);
}

int crew_go(crew_t *c)
{
        for (unsigned i = 0; i < c->shape.senders; i++) {
                int r = party_go(&c->tx[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int crew_collect(crew_t *c, sample_t *ret)
{
        int timeout_ms = (int)bench_opt.timeout_s * 1000 + READY_TIMEOUT_MS;
        const shape_t *sh = &c->shape;
        int64_t first = INT64_MAX, last = INT64_MIN;
        uint64_t sent = 0, got = 0, expected;
        int r;

        for (unsigned i = 0; i < sh->senders; i++) {
                report_t s = {0};

                r = report_read(c->tx[i].from_child, &s, timeout_ms);
                if (r < 0) {
                        fprintf(stderr, "vfiipc-bench: %s: sender %u failed after %llu: %s\n",
                                mode_name(sh->mode), i, (unsigned long long)s.count, strerror(-r));
                        return r;
                }
                if (sh->mode == MODE_ECHO) {
                        ret->p50_us = s.p50_us;
                        ret->p99_us = s.p99_us;
                        return 0;
                }
                if (s.t_ns < first)
                        first = s.t_ns;
                sent += s.count;
        }
        for (unsigned i = 0; i < sh->receivers; i++) {
                report_t d = {0};

                r = report_read(c->rx[i].from_child, &d, timeout_ms);
                if (r < 0) {
                        fprintf(stderr,
                                "vfiipc-bench: %s: receiver %u got %llu of %llu (%llu sent): %s\n",
                                mode_name(sh->mode), i, (unsigned long long)d.count,
                                (unsigned long long)sh->want, (unsigned long long)sent,
                                strerror(-r));
                        return r;
                }
                if (d.t_ns > last)
                        last = d.t_ns;
                got += d.count;
        }
        if (last <= first)
                return -ERANGE;
        ret->rate = (double)got / ((double)(last - first) / 1e9);
        expected = sh->mode == MODE_BROADCAST ? sent * sh->receivers : sent;
        ret->lost = expected > got ? expected - got : 0;
        if (ret->lost)
                printf("  note: %s %s: %llu of %llu deliveries did not arrive (flow control: "
                       "unicast errors, dropped broadcasts)\n",
                       c->side, mode_name(sh->mode), (unsigned long long)ret->lost,
                       (unsigned long long)expected);
        return 0;
}

int crew_stop(crew_t *c, int rx_sig)
{
        int r = 0, k;

        for (unsigned i = 0; i < c->shape.senders; i++) {
                k = party_stop(&c->tx[i], 0);
                r = r < 0 ? r : k;
        }
        for (unsigned i = 0; i < c->shape.receivers; i++) {
                k = party_stop(&c->rx[i], rx_sig);
                r = r < 0 ? r : k;
        }
        return r;
}
