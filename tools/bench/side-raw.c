/* tools/bench/side-raw.c — the references: plain libdbus on the same bus, three ways.
 *
 * ROUTE_RELAY: a relay process turns every Notify(s from, s to, s id, s json, u flags) it gets
 *   (sent NO_REPLY) into a unicast signal Deliver(s from, s to, s id, s json, u flags,
 *   s receiver, t ticket) to the one connection known for `to` — the same names, signatures and
 *   sizes as the library's messages and the broker's two bus hops, without its rules, threads
 *   or JSON parsing.
 * ROUTE_DIRECT: the sender sends that Deliver itself, to the receiver's unique name: one hop,
 *   no broker at all (the floor under any brokered design).
 * ROUTE_MATCH: the sender emits one signal without destination, Broadcast(s id, s from, s to,
 *   s json, u flags), and the bus copies it to every receiver whose match rule names its arg0:
 *   the bus's own broadcast, which a broker-less design would use for "*".
 * Every party is its own process with its own private connection and one thread in a blocking
 * libdbus loop; receivers parse every message's arguments, as the library's dispatcher does. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "bench.h"
#include "bus/protocol.h"
#include "core/util.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

#define MATCH_BROADCAST "type='signal',interface='" BENCH_INTERFACE "',arg0='" PING_ID "'"

static DBusConnection *raw_connect(char unique[static NAME_SIZE])
{
        DBusConnection *c;
        DBusError err;

        dbus_error_init(&err);
        c = dbus_connection_open_private(bench_opt.address, &err);
        if (c) {
                dbus_connection_set_exit_on_disconnect(c, FALSE);
                if (dbus_bus_register(c, &err)) {
                        snprintf(unique, NAME_SIZE, "%s", dbus_bus_get_unique_name(c));
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

/* The broker's Deliver, to dest (a unique name). */
static int raw_deliver(DBusConnection *c, const char *dest, const char *from, const char *to,
                       const char *id, const char *json, dbus_uint32_t flags, dbus_uint64_t ticket)
{
        DBusMessage *s =
            dbus_message_new_signal(VFIIPC_CLIENT_PATH, VFIIPC_CLIENT_INTERFACE, "Deliver");
        bool ok;

        ok = s && dbus_message_set_destination(s, dest) &&
             dbus_message_append_args(s, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                      DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json,
                                      DBUS_TYPE_UINT32, &flags, DBUS_TYPE_STRING, &to,
                                      DBUS_TYPE_UINT64, &ticket, DBUS_TYPE_INVALID) &&
             dbus_connection_send(c, s, NULL);
        if (s)
                dbus_message_unref(s);
        return ok ? 0 : -ENOMEM;
}

/* One signal for every receiver that matches arg0 = id. */
static int raw_broadcast(DBusConnection *c, const char *from, const char *id, const char *json)
{
        DBusMessage *s = dbus_message_new_signal(BENCH_PATH, BENCH_INTERFACE, BENCH_BROADCAST);
        const char *to = "*";
        dbus_uint32_t flags = 0;
        bool ok;

        ok = s &&
             dbus_message_append_args(s, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &from,
                                      DBUS_TYPE_STRING, &to, DBUS_TYPE_STRING, &json,
                                      DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID) &&
             dbus_connection_send(c, s, NULL);
        if (s)
                dbus_message_unref(s);
        return ok ? 0 : -ENOMEM;
}

typedef struct delivery {
        const char *from, *to, *id, *json, *receiver;
        dbus_uint32_t flags;
        dbus_uint64_t ticket;
} delivery_t;

/* Parses a Deliver or Broadcast signal, as the library's dispatcher parses a Deliver. */
static bool raw_delivery(DBusMessage *m, delivery_t *d)
{
        if (dbus_message_is_signal(m, BENCH_INTERFACE, BENCH_BROADCAST))
                return dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &d->id, DBUS_TYPE_STRING,
                                             &d->from, DBUS_TYPE_STRING, &d->to, DBUS_TYPE_STRING,
                                             &d->json, DBUS_TYPE_UINT32, &d->flags,
                                             DBUS_TYPE_INVALID);
        return dbus_message_is_signal(m, VFIIPC_CLIENT_INTERFACE, "Deliver") &&
               dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &d->from, DBUS_TYPE_STRING, &d->to,
                                     DBUS_TYPE_STRING, &d->id, DBUS_TYPE_STRING, &d->json,
                                     DBUS_TYPE_UINT32, &d->flags, DBUS_TYPE_STRING, &d->receiver,
                                     DBUS_TYPE_UINT64, &d->ticket, DBUS_TYPE_INVALID);
}

/* ---- the relay ---- */

static void relay_forward(DBusConnection *c, DBusMessage *m, const report_t *peers,
                          dbus_uint64_t ticket)
{
        const char *from, *to, *id, *json, *dest;
        dbus_uint32_t flags;

        if (!dbus_message_is_method_call(m, VFIIPC_BROKER_INTERFACE, "Notify") ||
            !dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &from, DBUS_TYPE_STRING, &to,
                                   DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &json, DBUS_TYPE_UINT32,
                                   &flags, DBUS_TYPE_INVALID))
                return;
        dest = streq(to, RX_ID) ? peers->name[0] : streq(to, TX_ID) ? peers->name[1] : NULL;
        if (dest)
                raw_deliver(c, dest, from, to, id, json, flags, ticket);
}

/* The bus policy lets nobody but the broker own a well-known name, so the relay is addressed
 * by its unique name; dbus-daemon resolves either kind with the same registry lookup. Learns
 * the receiver's and the (first) sender's unique names from the parent, then relays until
 * killed. */
static int relay(const job_t *job, int in, int out)
{
        report_t rep = {0}, peers;
        DBusConnection *c = raw_connect(rep.name[0]);
        dbus_uint64_t ticket = 0;
        DBusMessage *m;
        int r;

        prctl(PR_SET_NAME, "raw-relay");
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

/* ---- receivers and senders ---- */

/* Answers a ping the way it came. */
static void receiver_answer(DBusConnection *c, const job_t *job, DBusMessage *m,
                            const delivery_t *d)
{
        if (job->shape.route == ROUTE_RELAY)
                raw_notify(c, job->relay, RX_ID, d->from, PONG_ID, d->json);
        else
                raw_deliver(c, dbus_message_get_sender(m), RX_ID, d->from, PONG_ID, d->json, 0, 0);
}

/* Throughput and broadcast: counts deliveries until shape.want or the deadline, reports, waits
 * for the parent. Echo: answers every ping until killed. */
static int receiver(const job_t *job, int in, int out)
{
        const shape_t *sh = &job->shape;
        report_t rep = {0};
        DBusConnection *c = raw_connect(rep.name[0]);
        int64_t deadline = now_ns() + bench_opt.timeout_s * 1000 * NS_PER_MS, progress_ns;
        DBusMessage *m;
        int r;

        prctl(PR_SET_NAME, "raw-rx");
        if (c && sh->route == ROUTE_MATCH) {
                DBusError err;

                dbus_error_init(&err);
                dbus_bus_add_match(c, MATCH_BROADCAST, &err); /* waits for the reply */
                if (dbus_error_is_set(&err)) {
                        fprintf(stderr, "vfiipc-bench: AddMatch: %s\n", err.message);
                        dbus_error_free(&err);
                        raw_close(c);
                        c = NULL;
                }
        }
        rep.status = c ? 0 : -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || !c)
                return -ENOTCONN;
        if (sh->mode == MODE_ECHO)
                deadline = INT64_MAX;
        progress_ns = now_ns();
        for (;;) {
                int64_t left_ms;

                while ((m = dbus_connection_pop_message(c))) {
                        delivery_t d;
                        if (raw_delivery(m, &d) && streq(d.id, PING_ID)) {
                                if (sh->mode == MODE_ECHO)
                                        receiver_answer(c, job, m, &d);
                                else {
                                        rep.count++;
                                        rep.t_ns = progress_ns = now_ns();
                                }
                        }
                        dbus_message_unref(m);
                }
                if (sh->mode != MODE_ECHO && rep.count >= sh->want)
                        break;
                left_ms = (deadline - now_ns()) / NS_PER_MS;
                if (sh->mode != MODE_ECHO) /* as the library's receiver: see side-vfiipc.c */
                        left_ms = MIN(left_ms, (progress_ns - now_ns()) / NS_PER_MS + IDLE_STOP_MS);
                if (left_ms <= 0 ||
                    !dbus_connection_read_write(c, left_ms > INT_MAX ? -1 : (int)left_ms))
                        break;
        }
        rep.status = rep.count > 0 ? 0 : -ETIMEDOUT; /* crew_collect() counts losses */
        r = report_write(out, &rep);
        parent_wait(in);
        raw_close(c);
        return r < 0 ? r : rep.status;
}

/* Waits for the pong; false at the deadline or when the bus went away. */
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

static int sender_send(DBusConnection *c, const job_t *job, const char *from)
{
        switch (job->shape.route) {
        case ROUTE_RELAY:
                return raw_notify(c, job->relay, from, RX_ID, PING_ID, PARAM);
        case ROUTE_DIRECT:
                return raw_deliver(c, job->receiver, from, RX_ID, PING_ID, PARAM, 0, 0);
        case ROUTE_MATCH:
        default:
                return raw_broadcast(c, from, PING_ID, PARAM);
        }
}

static int sender(const job_t *job, int in, int out)
{
        const shape_t *sh = &job->shape;
        _cleanup_free_ double *lat = NULL;
        report_t rep = {0};
        DBusConnection *c = raw_connect(rep.name[0]);
        char from[64];
        int r;

        prctl(PR_SET_NAME, "raw-tx");
        app_id_of(from, sizeof(from), TX_ID, job->index);
        rep.status = c ? 0 : -ENOTCONN;
        r = report_write(out, &rep);
        if (r < 0 || !c || parent_wait(in) < 0) {
                raw_close(c);
                return -ECANCELED;
        }

        if (sh->mode != MODE_ECHO) {
                rep.t_ns = now_ns();
                for (; rep.count < sh->send; rep.count++)
                        if (sender_send(c, job, from) < 0) {
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
                        if (sender_send(c, job, from) < 0) {
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

int side_raw_measure(const shape_t *shape, sample_t *ret)
{
        crew_t crew = {.side = "raw", .shape = *shape};
        job_t job = {.shape = *shape};
        party_t rl = {0};
        report_t rep, peers = {0};
        int r, k;

        if (shape->route == ROUTE_RELAY) {
                r = party_start(&rl, relay, &job);
                if (r >= 0)
                        r = report_read(rl.from_child, &rep, READY_TIMEOUT_MS);
                if (r < 0) {
                        fprintf(stderr, "vfiipc-bench: raw relay: set-up failed: %s\n",
                                strerror(-r));
                        party_stop(&rl, SIGTERM);
                        return r;
                }
                memcpy(job.relay, rep.name[0], sizeof(job.relay));
        }
        r = crew_start_receivers(&crew, receiver, &job);
        if (r >= 0) {
                memcpy(job.receiver, crew.rx_name[0], sizeof(job.receiver));
                r = crew_start_senders(&crew, sender, &job);
        }
        if (r >= 0 && shape->route == ROUTE_RELAY) {
                memcpy(peers.name[0], crew.rx_name[0], sizeof(peers.name[0]));
                memcpy(peers.name[1], crew.tx_name[0], sizeof(peers.name[1]));
                r = report_write(rl.to_child, &peers);
                if (r >= 0)
                        r = report_read(rl.from_child, &rep, READY_TIMEOUT_MS);
        }
        if (r >= 0)
                r = crew_go(&crew);
        if (r >= 0)
                r = crew_collect(&crew, ret);
        k = crew_stop(&crew, shape->mode == MODE_ECHO ? SIGTERM : 0);
        r = r < 0 ? r : k;
        if (shape->route == ROUTE_RELAY) {
                k = party_stop(&rl, SIGTERM);
                r = r < 0 ? r : k;
        }
        return r;
}
