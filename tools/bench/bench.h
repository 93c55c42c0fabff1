/* tools/bench/bench.h — what the parts of vfiipc-bench share: options, the parties (forked
 * processes with a pipe each way) and their reports, the crews of parties that make one
 * measurement, the two sides measured, the RSS probes and the dbus-broker substitute.
 *
 * Threads: the parent is single-threaded; a party runs its side's code in its own process. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <dbus/dbus.h>

#define RX_ID "bench-rx" /* the (first) receiver's application ID, on both sides */
#define TX_ID "bench-tx" /* the (first) sender's */
#define PING_ID "bench"  /* what the senders send */
#define PONG_ID "bench-pong"
/* ~100 bytes of JSON object, the size of a typical ADK notification. */
#define PARAM                                                                                      \
        "{\"event\":\"bench\",\"seq\":4711,\"source\":\"vfiipc-bench\",\"data\":"                  \
        "{\"temperature\":21.5,\"unit\":\"C\",\"ok\":true}}"

/* The raw broadcast reference: one signal without destination, arg0 = the notification ID. */
#define BENCH_PATH "/io/vfiipc/Bench1"
#define BENCH_INTERFACE "io.vfiipc.Bench1"
#define BENCH_BROADCAST "Broadcast" /* (s id, s from, s to, s json, u flags) */

#define BROADCAST_RECEIVERS 4 /* (c) */
#define FAN_IN_SENDERS 20     /* (e) */
#define OTHER_PROCESSES 10    /* (d): each registers every one of OTHER_IDS ... */
#define OTHER_IDS 1000        /* ... so OTHER_PROCESSES * OTHER_IDS registrations */
#define PARTIES_MAX (FAN_IN_SENDERS + OTHER_PROCESSES + 4)

#define READY_TIMEOUT_MS 10000   /* a party connects and registers */
#define OTHERS_TIMEOUT_MS 120000 /* the other processes of (d) register OTHER_IDS each */
#define ROUND_TIMEOUT_MS 5000    /* one round trip */
/* A throughput receiver stops waiting when nothing arrived for this long (more than the
 * broker's VFIIPC_STALL_MS): what did not arrive is counted as lost, not waited for. */
#define IDLE_STOP_MS 5000
#define NS_PER_MS INT64_C(1000000)

#define NAME_SIZE (DBUS_MAXIMUM_NAME_LENGTH + 1)

typedef enum bus_daemon {
        BUS_DBUS_DAEMON, /* notifysvc starts dbus-daemon, as deployed */
        BUS_DBUS_BROKER, /* dbus-broker-launch in its place (bus-broker.c) */
} bus_daemon_t;

struct bench_options {
        unsigned count, rounds, warmup, repeat, timeout_s;
        const char *notifysvc, *bus_config, *scenarios;
        char *address; /* of the private bus, once the server runs */
        bus_daemon_t bus_daemon;
        bool vfiipc, raw, verbose;
};
extern struct bench_options bench_opt;

typedef enum bench_mode {
        /* senders → one receiver, unicast; from the first send to the last receipt */
        MODE_THROUGHPUT,
        /* one sender, one receiver answering; --warmup + --rounds round trips */
        MODE_ECHO,
        /* one sender → every receiver ("*"); deliveries from the first send to the last receipt */
        MODE_BROADCAST,
} bench_mode_t;

/* How the raw side carries a notification (the library always goes through its broker). */
typedef enum raw_route {
        ROUTE_RELAY,  /* sender → relay process → receiver: the broker's two bus hops */
        ROUTE_DIRECT, /* a unicast signal sender → receiver, one hop: the floor */
        ROUTE_MATCH,  /* one signal without destination, fanned out by the bus to arg0 matches */
} raw_route_t;

/* What one measurement is. */
typedef struct shape {
        bench_mode_t mode;
        raw_route_t route;
        unsigned senders, receivers;
        uint64_t send; /* notifications per sender */
        uint64_t want; /* deliveries per receiver */
} shape_t;

/* What a party knows when it is forked. */
typedef struct job {
        shape_t shape;
        unsigned index;           /* among the senders, or among the receivers */
        char relay[NAME_SIZE];    /* ROUTE_RELAY: the relay's unique name */
        char receiver[NAME_SIZE]; /* ROUTE_DIRECT: the receiver's unique name */
} job_t;

/* One record on a party's pipes, both ways (below PIPE_BUF, so written atomically). */
typedef struct report {
        int32_t status; /* 0, or a negative errno: the party failed */
        uint64_t count; /* notifications sent or received */
        int64_t t_ns;   /* CLOCK_MONOTONIC (system-wide): first send / last receipt */
        double p50_us, p99_us;
        uint64_t rss_kib[2];     /* RSS probes: VmRSS before and after */
        char name[2][NAME_SIZE]; /* unique bus names */
} report_t;

/* The result of one measurement. */
typedef struct sample {
        double rate;                  /* notifications (or deliveries) received per second */
        uint64_t lost;                /* sent (times receivers for broadcasts) but not received */
        double p50_us, p99_us;        /* round trip */
        double before_kib, added_kib; /* RSS probe */
} sample_t;

int64_t now_ns(void);
struct timespec timespec_of(int64_t ns);
const char *mode_name(bench_mode_t mode);
/* Sorts lat[0..n) (µs) and fills rep's percentiles; n > 0. */
void latencies_summarise(double *lat, size_t n, report_t *rep);
/* Sorts v; false when n is 0. */
bool median(double *v, size_t n, double *ret);
/* "bench-tx", "bench-tx-1", …: the application ID of party i. */
void app_id_of(char *buf, size_t size, const char *base, unsigned i);

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

int report_write(int fd, const report_t *rep);
/* timeout_ms < 0: no limit. Returns the report's status, or -ETIMEDOUT, -ECHILD (the party
 * ended without reporting), -errno. */
int report_read(int fd, report_t *rep, int timeout_ms);
/* Child side: blocks until the parent writes a byte (0) or closes the pipe (-ECANCELED). */
int parent_wait(int in);

/* Reaps pid within 5 s after sending sig (if not 0), else kills it. */
int child_reap(pid_t pid, int sig);

/* The receivers and senders of one measurement. Receivers start first (each ready once it
 * reports, its bus name in name[0]), then senders; go starts every sender; collect reads
 * the senders' reports, then (but for echo) the receivers'. */
typedef struct crew {
        const char *side; /* for messages */
        shape_t shape;
        party_t rx[PARTIES_MAX], tx[PARTIES_MAX];
        char rx_name[PARTIES_MAX][NAME_SIZE], tx_name[PARTIES_MAX][NAME_SIZE];
} crew_t;

int crew_start_receivers(crew_t *c, party_body_fn body, job_t *job);
int crew_start_senders(crew_t *c, party_body_fn body, job_t *job);
int crew_go(crew_t *c);
int crew_collect(crew_t *c, sample_t *ret);
/* Stops senders, then receivers (with rx_sig). */
int crew_stop(crew_t *c, int rx_sig);

/* The two sides: one measurement each, in fresh processes. */
int side_vfiipc_measure(const shape_t *shape, sample_t *ret);
int side_raw_measure(const shape_t *shape, sample_t *ret);

/* (d): OTHER_PROCESSES library clients holding OTHER_IDS registrations each, until stopped. */
int others_start(party_t others[OTHER_PROCESSES]);
void others_stop(party_t others[OTHER_PROCESSES]);

/* (f): a fresh process (this program re-executed) reports its VmRSS before initialising the
 * library or libdbus and after one registration (match rule) and one notification (signal) to
 * itself, idle. */
int rss_probe_measure(bool vfiipc, sample_t *ret);
/* The re-executed probe: argv = {prog, "--rss-probe", "vfiipc"|"raw", IN, OUT}. */
int rss_probe_main(int argc, char **argv);
/* VmRSS (or another "Key:" line of /proc/PID/status) in KiB; 0 if unreadable. */
uint64_t proc_status_kib(pid_t pid, const char *key);

/* ---- dbus-broker instead of dbus-daemon (bus-broker.c) ---- */

#define BENCH_ENV_SHIM "VFIIPC_BENCH_SHIM" /* set: this program runs as the bus substitute */

/* Writes a copy of config into dir that dbus-broker-launch accepts (limits whose per-user
 * product overflows dbus-broker's quota are lowered, and a line says so); *ret malloc'd. */
int broker_config_write(const char *config, const char *dir, char **ret);
/* In a forked child: a private mount namespace with a tmpfs on /run/systemd (the launcher
 * logs to the journal socket, which the substitute provides) and, if self is not NULL, self
 * bind-mounted over the dbus-daemon that notifysvc runs (config.h VFIIPC_DBUS_DAEMON). */
int broker_namespace_enter(const char *self);
/* The substitute, in place of `dbus-daemon --config-file=C --address=A ... --print-address=FD`:
 * listens on A, prints A on FD and becomes dbus-broker-launch with that socket. Returns only
 * on failure (exit status). */
int broker_shim_main(int argc, char **argv);
