/* lib/broker/policy.h — the bus policy for the NFY gateway's principal, generated from the
 * whitelist configuration (design.md "Remote access", issue #3).
 *
 * Two layers enforce the whitelist, each doing what it can:
 * - D-Bus policy (this file) confines *who*: the gateway's user may connect, may call only the
 *   broker's remote-facing methods (io.vfiipc.Remote1; Register/Unregister only when the file
 *   has `out` rules, as a remote registration can receive nothing otherwise), and may never
 *   own names, become a monitor, eavesdrop, or call Broker1 (AddObserver: LIM-3) or any other
 *   connection. D-Bus policy cannot look into message arguments nor match glob patterns, so
 * - the broker checks *what*: every notification against the `in`/`out` patterns and the
 *   256-registration cap (lib/broker/broker.c).
 * A policy needs a principal of its own: it applies when the server runs as root and drops the
 * gateway to a dedicated user. A gateway running as the server's own user cannot be told apart
 * from local applications by the bus; then the broker's checks are the only ones. */
#pragma once

#include "remote/whitelist.h"

/* A complete dbus-daemon configuration: <include> of base_config (the installed
 * vfiipc-bus.conf) plus the policy for gateway_user, or, with gateway_user NULL, the include
 * and a comment saying why there is no gateway policy. *ret is malloc'd. -ENOMEM. */
int policy_bus_config(const whitelist_t *wl, const char *base_config, const char *gateway_user,
                      char **ret);
