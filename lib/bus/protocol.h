/* lib/bus/protocol.h — the D-Bus contract between the client library and the broker.
 *
 * Stable: these names are what dbus-monitor users see (design.md).
 *
 * Broker: bus name, object and interface VFIIPC_BROKER_NAME, methods
 *   Register(s to, s id, i priority)          -> ()   registrant = calling connection; replaces
 *                                                      the caller's (to,id) registration (REGS-1)
 *   Unregister(s to, s id)                     -> ()
 *   Notify(s from, s to, s id, s json, u flags) -> ()  sent with NO_REPLY by the library
 *   AddObserver() -> (), RemoveObserver() -> ()       one observer flag per connection
 *   Bounce(s from, s to, s id, s json, u flags, t ticket) -> ()
 *       a receiver hands back a Deliver it has no callback for any more (DLV-12, G-89); the
 *       broker re-routes it to the next candidate or raises the unicast error (DLV-13).
 *       The content travels back with the ticket, so the broker keeps no payloads.
 *   Subscribe(s to, s id, i priority) -> ()     Register, and this connection holds the match
 *       rule for id's broadcasts (see "Broadcasts by the bus" below), added before this call.
 *   Sync() -> (b direct, t version)
 *       answered once everything the caller sent before it has been handled, so every signal
 *       the broker sent because of it is on the bus ahead of the reply (see "Broadcasts by the
 *       bus"); direct: whether broadcasts may go by the bus now, as of DirectBroadcasts'
 *       version.
 *   Ack(u count, t mark) -> ()                      sent with NO_REPLY by the library
 *       flow accounting (G-93, stalled receivers): the connection has taken `count` more of
 *       the broker's signals addressed to it off the bus, in order, and the Mark `mark` (0:
 *       none yet), so every Broadcast the broker had seen before it sent that Mark. The
 *       first Ack (0, 0, right after connecting) turns accounting on for the connection;
 *       then the broker keeps, per connection, the unacknowledged signals' sizes and a copy
 *       of each unacknowledged unicast, and the sizes of the Broadcasts of IDs it subscribed
 *       to. A connection with unacknowledged signals that has acknowledged nothing for
 *       VFIIPC_STALL_MS, with a Mark unacknowledged for as long, or whose backlog exceeds
 *       VFIIPC_BACKLOG_BYTES_MAX, is stalled: it is no candidate for unicasts (they go to the
 *       next receiver or become unicast errors), broadcast deliveries, observations and
 *       unicast errors for it are dropped, counted and logged, and, if it subscribed to an
 *       ID, broadcasts go through the broker (DirectBroadcasts false), until it acknowledges
 *       again. When a connection ends, its unacknowledged unicasts are re-routed like a
 *       Bounce (next receiver or unicast error, DLV-13), so a receiver killed mid-stream
 *       loses only what it had taken off the bus (DLV-11). Connections that never Ack (raw
 *       clients, the NFY gateway, which bounds its peers itself) are not accounted.
 *   AckShared(h memory) -> ()
 *       the same accounting without a message per batch: the connection hands the broker a
 *       memfd (sealed against shrinking, at least sizeof(ack_page_t)) that it keeps writing
 *       its acknowledgements into: ack_page_t.count = signals addressed to it taken off the bus
 *       since it shared the page, .mark = the last Mark taken (as Ack's arguments, but
 *       cumulative). It stores them (release order) before the batch's callbacks start;
 *       the broker reads them (acquire) whenever it accounts, checks or forgets that
 *       connection, and while idle. So a receiver's acknowledgement costs no bus traffic and
 *       still precedes anything its callbacks do. Turns accounting on like the first Ack; a
 *       second call is refused. The library uses it where the bus passes file descriptors,
 *       else Ack.
 *   Invalid arguments are answered with org.freedesktop.DBus.Error.InvalidArgs (or, for
 *   NO_REPLY calls, logged and dropped); nothing invalid reaches a receiver.
 *
 * Client side: the broker sends unicast signals (destination = the client's unique name) on
 * object VFIIPC_CLIENT_PATH, interface VFIIPC_CLIENT_INTERFACE:
 *   Deliver(s from, s to, s id, s json, u flags, s receiver, t ticket)
 *       to = as addressed ("1", "*" or a name, DLV-5); receiver = the receiver ID of the
 *       registration it is for; ticket = 0 for broadcasts (never bounced), else unique.
 *   Observed(s from, s to, s id, u flags)        to = resolved receiver or "" (DLV-6, DLV-7)
 *   UnicastError(s from, s to, s id, s json, u flags)   to the submitting connection (DLV-10)
 *   Mark(t mark)       to an accounted connection that subscribed to an ID: after Broadcasts
 *       the broker sent or saw (after VFIIPC_MARK_EVERY of them, else once the broker has read
 *       all its input, 10 ms after the previous Mark at the soonest), and every 100 ms as a
 *       probe while some client's page shows it broadcasting by the bus; one unacknowledged at
 *       a time; acknowledged through Ack/AckShared, not counted in `count`.
 * and, without destination, on VFIIPC_BROKER_PATH, interface VFIIPC_BROKER_INTERFACE:
 *   DirectBroadcasts(b direct, t version)   whether broadcasts may go by the bus; sent when
 *       it changes (version grows with every change; the newest version counts).
 * Clients accept these only from the current owner of VFIIPC_BROKER_NAME.
 *
 * Broadcasts by the bus (issue #7: let the bus fan out, the broker informs observers): the
 * sending client itself emits a broadcast ("*") as one signal
 *   Broadcast(s from, s to, s id, s json, u flags)
 * without destination, on VFIIPC_BROADCAST_PATH and the ID's own interface
 * VFIIPC_BROADCAST_INTERFACE_PREFIX "x" + 16 hex digits of the ID's 64-bit FNV-1a hash
 * (lib/bus/wire.c): dbus-daemon indexes match rules by interface, so routing one costs the
 * same however many IDs others subscribed. Receivers: a client that registers an ID first
 * adds the match rule
 *   type='signal',path=VFIIPC_BROADCAST_PATH,interface=<the ID's>,member='Broadcast'
 * and then calls Subscribe instead of Register (the bus handles a connection's messages in
 * order, so the rule is in place before the broker counts the registration); it removes the
 * rule only after the broker has answered the Unregister of the ID's last registration. It
 * runs the notification for each of its registrations of that ID, as if each had got a
 * Deliver (DLV-1, DLV-4; the bus gives a sender its own signal too), and ignores a Broadcast
 * that has a destination, whose interface is not its ID's, whose `to` is not "*" or that
 * breaks the limits below (the broker ignores the same ones, and the JSON text is parsed
 * before any callback runs). While an observer or a registration that is not subscribed (raw
 * clients, remote peers, IDs beyond a client's VFIIPC_BROADCAST_MATCHES_MAX rules) exists, the
 * broker holds the rule
 *   type='signal',path=VFIIPC_BROADCAST_PATH,member='Broadcast'
 * (added ahead of the reply to the call that made it needed), sees every Broadcast in the order
 * the bus routed it, and does what the bus cannot: Deliver to every registration that is not
 * subscribed (remote ones only with an `out` rule), one Observed per receiving registration or
 * one with "" (DLV-6, DLV-7, G-64). Otherwise the broker does not see them (waking it for each
 * cost a fifth of the throughput); it learns that broadcasts go from the `broadcasts` count in
 * the senders' AckShared pages and probes the subscribers with Marks. A Broadcast sent by a
 * remote peer's connection is ignored (no `in` check could have happened; the bus policy
 * forbids the gateway's user signals anyway).
 *   Senders: a client broadcasts by the bus only with a shared page, while the broker says
 * DirectBroadcasts true, and once a Sync reply has come after its last Notify: a notification
 * sent through the broker is forwarded by the broker, a Broadcast by the bus at once, so one
 * could overtake the other (ORD-3). A broadcast that finds a Notify not yet covered sends a
 * Sync and is held, with everything the process sends after it, until the answer; then they
 * go out in order (more than 1 MiB held makes the sender wait). Without DirectBroadcasts it
 * sends Notify(to "*"), which the broker sends on as its own Broadcast, or as one Deliver per
 * registration while a subscribed connection is stalled: the bus could not leave it out.
 *
 * Remote peers (notification-service.md §6–8, G-82…G-94): the NFY gateway (lib/remote/gateway.c,
 * its own process) opens one bus connection per TCP peer, so that connection is the peer's
 * registrant and its registrations vanish with it (NFYS-5). Such a connection calls interface
 * VFIIPC_REMOTE_INTERFACE on VFIIPC_BROKER_PATH, always with NO_REPLY:
 *   Register(s to, s id, i priority)       NFYS-1; a new registration beyond
 *                                          VFIIPC_REMOTE_REGISTRATIONS_MAX over all remote
 *                                          connections is ignored, logged once per connection
 *                                          (LIM-1, G-87); replacing is allowed at the limit
 *   Unregister(s to, s id)                 NFYS-2
 *   Notify(s from, s to, s id, s json, u flags, t reference)
 *       reference: the frame's `reference` when it is an integer 1…2^64−1, else 0. When it is
 *       a ticket of a Deliver this connection was sent (and still pending), the message is a
 *       return (G-89): a unicast goes to the next candidate or raises the unicast error, a
 *       broadcast is dropped, no `in` check. Otherwise it is new: admitted only if an `in`
 *       rule matches (CFG-6: else dropped, logged at LOG_WARNING), then routed like Notify.
 * The first Remote1 call makes a connection remote for good: the broker then refuses it every
 * Broker1 method (AccessDenied; remote peers never observe, LIM-3/DLV-8), and a connection
 * that already registered or observed through Broker1 may not turn remote. Remote
 * registrations are candidates only when an `out` rule lets the notification out, checked
 * before the priority choice (G-82). To a remote connection the broker sends the same Deliver
 * and UnicastError signals as to a client, except: every Deliver carries a ticket, broadcasts
 * included (so a returned broadcast is recognised and dropped), and a broadcast produces one
 * Deliver per remote connection even if it holds several matching registrations (G-91). The
 * gateway turns Deliver into a `notify` frame with reference = ticket, UnicastError into an
 * `unicast_error` frame with reference 0. Bus policy (generated, see lib/broker/policy.h)
 * confines the gateway's user to this interface when the gateway runs as its own user. */
#pragma once

#include <stdint.h>

/* The memory of AckShared, as both sides see it. */
typedef struct ack_page {
        uint64_t count;      /* cumulative */
        uint64_t mark;       /* the last Mark taken */
        uint64_t broadcasts; /* Broadcast signals this connection sent, cumulative */
} ack_page_t;

#define VFIIPC_BROKER_NAME "io.vfiipc.Broker1"
#define VFIIPC_BROKER_PATH "/io/vfiipc/Broker1"
#define VFIIPC_BROKER_INTERFACE "io.vfiipc.Broker1"

#define VFIIPC_REMOTE_INTERFACE "io.vfiipc.Remote1"
#define VFIIPC_BROADCAST_PATH "/io/vfiipc/Broadcast1"
#define VFIIPC_BROADCAST_INTERFACE_PREFIX "io.vfiipc.Broadcast1."

#define VFIIPC_CLIENT_PATH "/io/vfiipc/Client1"
#define VFIIPC_CLIENT_INTERFACE "io.vfiipc.Client1"

#define VFIIPC_ERROR_INVALID_ARGS "org.freedesktop.DBus.Error.InvalidArgs"
#define VFIIPC_ERROR_LIMITS "org.freedesktop.DBus.Error.LimitsExceeded"
#define VFIIPC_ERROR_ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"

/* Limits on what one peer controls (validated by client and broker alike). */
#define VFIIPC_ID_MAX 4096u                     /* bytes in an app or notification ID */
#define VFIIPC_PARAM_MAX (8u * 1024u * 1024u)   /* bytes of JSON text in one notification */
#define VFIIPC_REGISTRATIONS_PER_PEER_MAX 65536u /* registrations one connection may hold */
#define VFIIPC_PENDING_PER_PEER_MAX 1024u       /* bounceable unicast tickets per receiver */
#define VFIIPC_BOUNCE_TRIES_MAX 64u             /* re-routes of one unicast before it fails */
#define VFIIPC_STALL_MS 2000                   /* no Ack progress for this long: stalled */
#define VFIIPC_MARK_EVERY 64u                   /* Broadcasts to a connection per Mark, at most */
#define VFIIPC_BACKLOG_BYTES_MAX (64u * 1024u * 1024u) /* unacknowledged, per connection; below
                                                        * the bus's max_outgoing_bytes (256 MiB) */
#define VFIIPC_REMOTE_REGISTRATIONS_MAX 256u    /* over all remote connections (LIM-1, G-87) */
#define VFIIPC_REMOTE_CONNECTIONS_MAX 64u       /* TCP peers of the gateway at once (G-94) */
#define VFIIPC_BROADCAST_MATCHES_MAX 1024u      /* a client's broadcast match rules; below the
                                                 * bus's max_match_rules_per_connection */

/* Environment: the bus address (design.md "The private bus") and the bus config override. */
#define VFIIPC_ENV_BUS_ADDRESS "VFIIPC_BUS_ADDRESS"
#define VFIIPC_ENV_BUS_CONFIG "VFIIPC_BUS_CONFIG"
/* The remote gateway: TCP port (default VFIIPC_NFY_PORT_DEFAULT), program, and the user it
 * drops to when the server runs as root (default: the build option gateway_user). */
#define VFIIPC_ENV_NFY_PORT "VFIIPC_NFY_PORT"
#define VFIIPC_ENV_NFY_GATEWAY "VFIIPC_NFY_GATEWAY"
#define VFIIPC_ENV_GATEWAY_USER "VFIIPC_GATEWAY_USER"
#define VFIIPC_NFY_PORT_DEFAULT 5899
