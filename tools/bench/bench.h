/* tools/bench/bench.h — what the parts of vfiipc-bench share: options, the parties (forked
 * processes with a pipe each way) and their reports, and the two sides measured.
 *
 * Threads: the parent is single-threaded; a party runs its side's code in its own process. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <dbus/dbus.h>

#define RX_ID "bench-rx" /* the receiver's application ID, on both sides */
#define TX_ID "bench-tx" /* the sender's */
#define PING_ID "bench"  /* what the sender sends */
#define PONG_ID "bench-pong"
/* ~100 bytes of JSON object, the size of a typical ADK notification. */
#define PARAM                                                                                      \
        "{\"event\":\"bench\",\"seq\":4711,\"source\":\"vfiipc-bench\",\"data\":"                  \
        "{\"temperature\":21.5,\"unit\":\"C\",\"ok\":true}}"

#define READY_TIMEOUT_MS 10000 /* a party connects and registers */
#define ROUND_TIMEOUT_MS 5000  /* one round trip */
#define NS_PER_MS INT64_C(1000000)

struct bench_options {
        unsigned count, rounds, warmup, repeat, timeout_s;
        const char *notifysvc, *bus_config;
        char *address; /* of the private bus, once the server runs */
        bool vfiipc, raw, verbose;
};
extern struct bench_options bench_opt;

typedef enum bench_mode {
        MODE_THROUGHPUT, /* --count notifications sender → receiver */
        MODE_ECHO,       /* --warmup + --rounds round trips */
} bench_mode_t;

/* What one measurement's parties know when they are forked. */
typedef struct job {
        bench_mode_t mode;
        char relay[DBUS_MAXIMUM_NAME_LENGTH + 1]; /* raw: the relay's unique name */
} job_t;

/* One record on a party's pipes, both ways (below PIPE_BUF, so written atomically). */
typedef struct report {
        int32_t status; /* 0, or a negative errno: the party failed */
        uint64_t count; /* notifications sent or received */
        int64_t t_ns;   /* CLOCK_MONOTONIC (system-wide): first send / last receipt */
        double p50_us, p99_us;
        char name[2][DBUS_MAXIMUM_NAME_LENGTH + 1]; /* unique bus names */
} report_t;

/* The result of one measurement. */
typedef struct sample {
        double rate;           /* throughput: notifications/s */
        double p50_us, p99_us; /* round trip */
} sample_t;

int64_t now_ns(void);
struct timespec timespec_of(int64_t ns);
const char *mode_name(bench_mode_t mode);
/* Sorts lat[0..n) (µs) and fills rep's percentiles; n > 0. */
void latencies_summarise(double *lat, size_t n, report_t *rep);
/* Sorts v; false when n is 0. */
bool median(double *v, size_t n, double *ret);

/* The child side of a party: in gets the parent's commands, out takes reports. Returns 0 or a
 * negative errno, which becomes the exit status. */
typedef int (*party_body_fn)(const job_t *job, int in, int out);

typedef struct party {
        pid_t pid; /* 0: not running */
        int to_child, from_child;
} party_t;

int party_start(party_t *p, party_body_fn body, const job_t *job);
/* Tells the party to start (one byte). */
int party_go(const party_t *p);
/* Closes the pipes (the party's sign to end), sends sig first if not 0 (for parties that loop
 * on the bus until killed), reaps it within 5 s or kills it. 0 if it ended as expected. */
int party_stop(party_t *p, int sig);
/* Reads the sender's (and for throughput the receiver's) result once the sender was told
 * to go. */
int party_collect(bench_mode_t mode, const party_t *rx, const party_t *tx, sample_t *ret);

int report_write(int fd, const report_t *rep);
/* timeout_ms < 0: no limit. Returns the report's status, or -ETIMEDOUT, -ECHILD (the party
 * ended without reporting), -errno. */
int report_read(int fd, report_t *rep, int timeout_ms);
/* Child side: blocks until the parent writes a byte (0) or closes the pipe (-ECANCELED). */
int parent_wait(int in);

/* Reaps pid within 5 s after sending sig (if not 0), else kills it. */
int child_reap(pid_t pid, int sig);

/* The two sides: one measurement each, in fresh processes. */
int side_vfiipc_measure(bench_mode_t mode, sample_t *ret);
int side_raw_measure(bench_mode_t mode, sample_t *ret);
