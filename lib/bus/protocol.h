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
 * Clients accept these only from the current owner of VFIIPC_BROKER_NAME. */
#pragma once

#define VFIIPC_BROKER_NAME "io.vfiipc.Broker1"
#define VFIIPC_BROKER_PATH "/io/vfiipc/Broker1"
#define VFIIPC_BROKER_INTERFACE "io.vfiipc.Broker1"

#define VFIIPC_CLIENT_PATH "/io/vfiipc/Client1"
#define VFIIPC_CLIENT_INTERFACE "io.vfiipc.Client1"

#define VFIIPC_ERROR_INVALID_ARGS "org.freedesktop.DBus.Error.InvalidArgs"
#define VFIIPC_ERROR_LIMITS "org.freedesktop.DBus.Error.LimitsExceeded"

/* Limits on what one peer controls (validated by client and broker alike). */
#define VFIIPC_ID_MAX 4096u                     /* bytes in an app or notification ID */
#define VFIIPC_PARAM_MAX (8u * 1024u * 1024u)   /* bytes of JSON text in one notification */
#define VFIIPC_REGISTRATIONS_PER_PEER_MAX 65536u /* registrations one connection may hold */
#define VFIIPC_PENDING_PER_PEER_MAX 1024u       /* bounceable unicast tickets per receiver */
#define VFIIPC_BOUNCE_TRIES_MAX 64u             /* re-routes of one unicast before it fails */

/* Environment: the bus address (design.md "The private bus") and the bus config override. */
#define VFIIPC_ENV_BUS_ADDRESS "VFIIPC_BUS_ADDRESS"
#define VFIIPC_ENV_BUS_CONFIG "VFIIPC_BUS_CONFIG"
