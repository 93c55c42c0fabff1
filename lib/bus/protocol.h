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
 *       rule for id's broadcasts (see "Broadcast fast path" below), added before this call.
 *   Ack(u count, t broadcast) -> ()                 sent with NO_REPLY by the library
 *       flow accounting (G-93, stalled receivers): the connection has taken `count` more of
 *       the broker's signals addressed to it off the bus, in order, and every Broadcast up to
 *       sequence number `broadcast` (0: none yet). The first Ack (0, 0, right after
 *       connecting) turns accounting on for the connection; then the broker keeps, per
 *       connection, the unacknowledged signals' sizes and a copy of each unacknowledged
 *       unicast. A connection with unacknowledged signals that has acknowledged nothing for
 *       VFIIPC_STALL_MS, or whose backlog exceeds VFIIPC_BACKLOG_BYTES_MAX, is stalled: it is no
 *       candidate for unicasts (they go to the next receiver or become unicast errors), and
 *       broadcast deliveries, observations and unicast errors for it are dropped, counted and
 *       logged, until it acknowledges again. When a connection ends, its unacknowledged
 *       unicasts are re-routed like a Bounce (next receiver or unicast error, DLV-13), so a
 *       receiver killed mid-stream loses only what it had taken off the bus (DLV-11).
 *       Connections that never Ack (raw clients, the NFY gateway, which bounds its peers
 *       itself) are not accounted.
 *   AckShared(h memory) -> ()
 *       the same accounting without a message per batch: the connection hands the broker a
 *       memfd (sealed against shrinking, at least sizeof(ack_page_t)) that it keeps writing
 *       its acknowledgements into: ack_page_t.count = signals addressed to it taken off the bus
 *       since it shared the page, .broadcast = the last Broadcast taken (as Ack's arguments,
 *       but cumulative). It stores them (release order) before the batch's callbacks start;
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
 * Clients accept these only from the current owner of VFIIPC_BROKER_NAME.
 *
 * Broadcast fast path (issue #7: let the bus fan out): a broadcast ("*") is one signal
 *   Broadcast(s from, s to, s id, s json, u flags, t seq)
 * without destination, on VFIIPC_BROKER_PATH and the ID's own interface
 * VFIIPC_BROADCAST_INTERFACE_PREFIX "x" + 16 hex digits of the ID's 64-bit FNV-1a hash
 * (lib/bus/wire.c): dbus-daemon indexes match rules by interface, so routing one costs the
 * same however many IDs others subscribed. seq grows with every broadcast. A client that
 * registers an ID first adds the match rule
 *   type='signal',sender=VFIIPC_BROKER_NAME,path=VFIIPC_BROKER_PATH,interface=<the ID's>,
 *   member='Broadcast'
 * and then calls Subscribe instead of Register (the bus handles a connection's messages in
 * order, so the rule is in place before the broker counts the registration); it removes the
 * rule only after the broker has answered the Unregister of the ID's last registration, so
 * every Broadcast sent while the broker counted it has arrived. The receiving client runs the
 * notification for each of its registrations of that ID, as if each had got a Deliver (DLV-1,
 * DLV-4), and ignores a Broadcast of an ID it holds no registration for (the hash may
 * collide, and a rule outlives the last registration a little). The broker sends the
 * Broadcast when a subscribed registration of an accounted connection is among the ID's
 * receivers and none of those connections is stalled; else, and for every registration
 * that is not subscribed (raw clients, remote peers), it sends Deliver as before. Observers
 * get one Observed per receiving registration either way (DLV-6). A client keeps at most
 * VFIIPC_BROADCAST_MATCHES_MAX such rules and registers further IDs with Register (and falls
 * back to Register for an ID whose AddMatch failed). When a connection's last subscribed
 * registration goes, the broker forgets the Broadcasts it had not acknowledged.
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
        uint64_t count;     /* cumulative */
        uint64_t broadcast; /* the last Broadcast's seq */
} ack_page_t;

#define VFIIPC_BROKER_NAME "io.vfiipc.Broker1"
#define VFIIPC_BROKER_PATH "/io/vfiipc/Broker1"
#define VFIIPC_BROKER_INTERFACE "io.vfiipc.Broker1"

#define VFIIPC_REMOTE_INTERFACE "io.vfiipc.Remote1"
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
