/* tests/peer.h — drive vfiipc-peer processes ($VFIIPC_TEST_PEER) from a test. */
#pragma once

#include <stdbool.h>

typedef struct peer peer_t;

/* Starts a peer (with the current VFIIPC_BUS_ADDRESS) and sets its app ID (NULL: none). */
peer_t *peer_new(const char *app_id);
void peer_free(peer_t *p);
/* Its process ID (to stop or kill it). */
int peer_pid(const peer_t *p);
/* Sends one command (fields joined with TABs, NULL-terminated) and returns its result code. */
int peer_cmd(peer_t *p, ...) __attribute__((sentinel));
/* Waits up to timeout_ms for an event line starting with prefix; returns it (g_free) or NULL.
 * Earlier lines with other prefixes stay queued. */
char *peer_wait(peer_t *p, const char *prefix, int timeout_ms);
/* Number of queued or arriving lines with that prefix within ms (drains them). */
unsigned peer_count(peer_t *p, const char *prefix, int ms);
