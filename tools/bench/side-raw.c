/* tools/bench/side-raw.c — the floor: plain libdbus doing the broker's two bus hops.
 *
 * A relay process turns every Notify(s from, s to, s id, s json, u flags) it gets (sent
 * NO_REPLY) into a unicast signal Deliver(s from, s to, s id, s json, u flags, s receiver,
 * t ticket) to the one connection known for `to` — the same names, signatures and sizes as
 * the library's messages, without its rules, threads or JSON parsing. Sender, relay and
 * receiver are separate processes on the same bus as the library's side, each with its own
 * private connection and one thread in a blocking libdbus loop. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bus/protocol.h"
#include "core/util.h"

static DBusConnection *raw_connect(char unique[static DBUS_MAXIMUM_NAME_LENGTH + 1])
{
        DBusConnection *c;
        DBusError err;

        dbus_error_init(&err);
        c = dbus_connection_open_private(bench_opt.address, &err);
        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (dbus_bus_register(c, &err)) {
                        snprintf(unique, DBUS_MAXIMUM_NAME_LENGTH + 1, "%s",
                                 dbus_bus_get_unique_name(c));
                        return c;
                }
                dbus_connection_close(c);
                dbus_connection_unref(c);
        }
        fprintf(stderr, "vfiipc-bench: cannot connect to %s: %s\n", bench_opt.address, err.message);
        dbus_error_free(&err);
        return NULL;
}

static void raw_close(DBusConnection *c)
{
        if (!c)
                return;
        dbus_connection_flush(c);
        dbus_connection_close(c);
        dbus_connection_unref(c);
}

/* The library's Notify: same path, interface, member and signature; NO_REPLY. */
static int raw_notify(DBusConnection *c, const char *relay, const char *from, const char *to,
                      const char *id, const char *json)
{
        DBusMessage *m = dbus_message_new_method_call(relay, VFIIPC_BROKER_PATH,
                                                      VFIIPC_BROKER_INTERFACE, "Notify");
        dbus_uint32_t flags = 0;
        bool ok;

        ok = m && dbus_message_append_args(m, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                           DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                           DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID);
        if (ok) {
                dbus_message_set_no_reply(m, TRUE);
                ok = dbus_connection_send(c, m, NULL);
        }
        if (m)
                dbus_message_unref(m);
        return ok ? 0 : -ENOMEM;
}

typedef struct delivery {
        const char *from, *to, *id, *json, *receiver;
        dbus_uint32_t flags;
        dbus_uint64_t ticket;
} delivery_t;

/* Parses a Deliver signal, as the library's dispatcher does. */
static bool raw_delivery(DBusMessage *m, delivery_t *d)
{
        return dbus_message_is_signal(m, VFIIPC_CLIENT_INTERFACE, "Deliver") &&
               dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &d->from, DBUS_TYPE_STRING, &d->to,
                                     DBUS_TYPE_STRING, &d->id, DBUS_TYPE_STRING, &d->json,
                                     DBUS_TYPE_UINT32, &d->flags, DBUS_TYPE_STRING, &d->receiver,
                                     DBUS_TYPE_UINT64, &d->ticket, DBUS_TYPE_INVALID);
}

static void relay_forward(DBusConnection *c, DBusMessage *m, const report_t *peers,
                          dbus_uint64_t ticket)
{
        const char *from, *to, *id, *json, *dest;
        dbus_uint32_t flags;
        DBusMessage *s;

        if (!dbus_message_is_method_call(m, VFIIPC_BROKER_INTERFACE, "Notify") ||
            !dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                   &flags, DBUS_TYPE_INVALID))
                return;
        dest = streq(to, RX_ID) ? peers->name[0] : streq(to, TX_ID) ? peers->name[1] : NULL;
        if (!dest)
                return;
        s = dbus_message_new_signal(VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "Deliver");
        if (s && dbus_message_set_destination(s, dest) &&
            dbus_message_append_args(s, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                     DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                     DBUS_TYPE_UINT32, &flags, DBUS_TYPE_STRING, &to,
                                     DBUS_TYPE_UINT64, &ticket, DBUS_TYPE_INVALID))
                dbus_connection_send(c, s, NULL);
        if (s)
                dbus_message_unref(s);
}

/* The bus policy lets nobody but the broker own a well-known name, so the relay is addressed
 * by its unique name; dbus-daemon resolves either kind with the same registry lookup. Learns
 * the receiver's and the sender's unique names from the parent, then relays until killed. */
static int relay(const job_t *job, int in, int out)
{
        report_t rep = {0}, peers;
        DBusConnection *c = raw_connect(rep.name[0]);
        dbus_uint64_t ticket = 0;
        DBusMessage *m;
        int r;

        rep.status = c ? 0 : -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || !c)
                return -ENOTCONN;
        r = report_read(in, &peers, -1); /* name[0]: receiver, name[1]: sender */
        if (r < 0 || (r = report_write(out, &rep)) < 0)
                return r;
        do
                while ((m = dbus_connection_pop_message(c))) {
                        relay_forward(c, m, &peers, ++ticket);
                        dbus_message_unref(m);
                }
        while (dbus_connection_read_write(c, -1));
        raw_close(c);
        return 0;
}

/* Throughput: counts deliveries until --count or the deadline, reports, waits for the parent.
 * Echo: answers every ping through the relay until killed. */
static int receiver(const job_t *job, int in, int out)
{
        report_t rep = {0};
        DBusConnection *c = raw_connect(rep.name[0]);
        int64_t deadline = now_ns() + bench_opt.timeout_s * 1000 * NS_PER_MS;
        DBusMessage *m;
        int r;

        rep.status = c ? 0 : -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || !c)
                return -ENOTCONN;
        if (job->mode == MODE_ECHO)
                deadline = INT64_MAX;
        for (;;) {
                int64_t left_ms;

                while ((m = dbus_connection_pop_message(c))) {
                        delivery_t d;
                        if (raw_delivery(m, &d) && streq(d.id, PING_ID)) {
                                if (job->mode == MODE_ECHO)
                                        raw_notify(c, job->relay, RX_ID, d.from, PONG_ID, d.json);
                                else if (++rep.count == bench_opt.count)
                                        rep.t_ns = now_ns();
                        }
                        dbus_message_unref(m);
                }
                if (job->mode == MODE_THROUGHPUT && rep.count >= bench_opt.count)
                        break;
                left_ms = (deadline - now_ns()) / NS_PER_MS;
                if (left_ms <= 0 ||
                    !dbus_connection_read_write(c, left_ms > INT_MAX ? -1 : (int)left_ms))
                        break;
        }
        rep.status = rep.count == bench_opt.count ? 0 : -ETIMEDOUT;
        r = report_write(out, &rep);
        parent_wait(in);
        raw_close(c);
        return r < 0 ? r : rep.status;
}

/* Waits for the Deliver of PONG_ID; false at the deadline or when the bus went away. */
static bool pong_wait(DBusConnection *c, int64_t deadline)
{
        for (;;) {
                DBusMessage *m;
                int64_t left_ms;
                bool got = false;

                while (!got && (m = dbus_connection_pop_message(c))) {
                        delivery_t d;
                        got = raw_delivery(m, &d) && streq(d.id, PONG_ID);
                        dbus_message_unref(m);
                }
                if (got)
                        return true;
                left_ms = (deadline - now_ns()) / NS_PER_MS;
                if (left_ms <= 0 || !dbus_connection_read_write(c, (int)left_ms))
                        return false;
        }
}

static int sender(const job_t *job, int in, int out)
{
        _cleanup_free_ double *lat = NULL;
        report_t rep = {0};
        DBusConnection *c = raw_connect(rep.name[0]);
        int r;

        rep.status = c ? 0 : -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || !c || parent_wait(in) < 0) {
                raw_close(c);
                return -ECANCELED;
        }

        if (job->mode == MODE_THROUGHPUT) {
                rep.t_ns = now_ns();
                for (; rep.count < bench_opt.count; rep.count++)
                        if (raw_notify(c, job->relay, TX_ID, RX_ID, PING_ID, PARAM) < 0) {
                                rep.status = -EIO;
                                break;
                        }
                dbus_connection_flush(c);
        } else {
                lat = calloc(bench_opt.rounds, sizeof(*lat));
                if (!lat)
                        rep.status = -ENOMEM;
                for (unsigned i = 0; lat && i < bench_opt.warmup + bench_opt.rounds; i++) {
                        int64_t t0 = now_ns();
                        if (raw_notify(c, job->relay, TX_ID, RX_ID, PING_ID, PARAM) < 0) {
                                rep.status = -EIO;
                                break;
                        }
                        if (!pong_wait(c, t0 + ROUND_TIMEOUT_MS * NS_PER_MS)) {
                                rep.status = -ETIMEDOUT;
                                break;
                        }
                        if (i >= bench_opt.warmup)
                                lat[i - bench_opt.warmup] = (double)(now_ns() - t0) / 1e3;
                        rep.count = i + 1;
                }
                if (rep.status == 0)
                        latencies_summarise(lat, bench_opt.rounds, &rep);
        }
        r = report_write(out, &rep);
        parent_wait(in);
        raw_close(c);
        return r < 0 ? r : rep.status;
}

int side_raw_measure(bench_mode_t mode, sample_t *ret)
{
        job_t job = {.mode = mode};
        party_t rl = {0}, rx = {0}, tx = {0};
        report_t rep, peers = {0};
        int r, k;

        r = party_start(&rl, relay, &job);
        if (r >= 0)
                r = report_read(rl.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0) {
                memcpy(job.relay, rep.name[0], sizeof(job.relay));
                r = party_start(&rx, receiver, &job);
        }
        if (r >= 0)
                r = report_read(rx.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0) {
                memcpy(peers.name[0], rep.name[0], sizeof(peers.name[0]));
                r = party_start(&tx, sender, &job);
        }
        if (r >= 0)
                r = report_read(tx.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0) {
                memcpy(peers.name[1], rep.name[0], sizeof(peers.name[1]));
                r = report_write(rl.to_child, &peers);
        }
        if (r >= 0)
                r = report_read(rl.from_child, &rep, READY_TIMEOUT_MS);
        if (r >= 0)
                r = party_go(&tx);
        if (r >= 0)
                r = party_collect(mode, &rx, &tx, ret);
        else
                fprintf(stderr, "vfiipc-bench: raw %s: set-up failed: %s\n", mode_name(mode),
                        strerror(-r));
        k = party_stop(&tx, 0);
        r = r < 0 ? r : k;
        k = party_stop(&rx, mode == MODE_ECHO ? SIGTERM : 0);
        r = r < 0 ? r : k;
        k = party_stop(&rl, SIGTERM);
        return r < 0 ? r : k;
}
