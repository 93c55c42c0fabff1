/* lib/bus/address.h — which private bus to use: one rule for server and clients alike.
 *
 * VFIIPC_BUS_ADDRESS when set (any D-Bus address), else unix:path=$XDG_RUNTIME_DIR/vfiipc/bus,
 * else unix:path=/run/vfiipc/bus. Any thread. */
#pragma once

/* Hands out the address (malloc'd). 0 or -ENOMEM. */
int bus_address_get(char **ret);

/* If the address's first entry is unix:path=..., hands out that path (malloc'd) and returns 1;
 * returns 0 (ret untouched) for other transports, -EINVAL for an unparsable address. */
int bus_address_unix_path(const char *address, char **ret);
