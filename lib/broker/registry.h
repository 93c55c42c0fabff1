/* lib/broker/registry.h — who listens to which notification ID: the broker's registrations as a
 * pure data structure (no D-Bus), keyed by registrant, receiver ID and notification ID.
 *
 * Model (notification-service.md §3.3, §4): a registrant (owner: a connection's unique bus
 * name) holds at most one registration per (receiver ID, notification ID); adding the same pair
 * again replaces its priority and makes it the newest (REGS-1, G-61). Several owners may hold
 * the same pair (ADR-4). Routing picks the highest priority, ties to the most recently created
 * or replaced registration (DLV-2, DLV-3, G-72).
 *
 * Cost: every lookup is one hash lookup; picking walks only the registrations of that one
 * notification ID (already sorted by priority, newest first), never those of other IDs.
 * Adding walks the registrations of its ID (to keep them sorted); removing is O(1).
 *
 * Threads: none of its own; the caller serialises (the broker's loop thread). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct registry registry_t;

/* What the broker sees of one registration. The strings live as long as the registration. */
typedef struct registration {
        const char *owner;    /* the registrant's unique bus name */
        const char *receiver; /* receiver ID (never "", "1" or "*": the broker checks, ADR-5) */
        const char *id;       /* notification ID */
        int priority;         /* higher wins */
        uint64_t seq;         /* > 0, unique, grows with every add: identity and tie-break */
        bool remote;          /* the owner is a remote peer's connection (out rules apply) */
        bool subscribed;      /* the owner gets this ID's broadcasts by its own match rule */
} registration_t;

/* max_per_owner bounds the registrations one owner may hold (VFIIPC_REGISTRATIONS_PER_PEER_MAX
 * in the broker); 0 means no bound. */
int registry_new(size_t max_per_owner, registry_t **ret);
registry_t *registry_free(registry_t *r); /* NULL-safe; returns NULL */

/* Creates owner's (to, id) registration, or replaces its priority and makes it the newest
 * (REGS-1). remote marks a new registration as a remote peer's (an owner is one or the other).
 * Returns 0 when created, 1 when replaced, -ENOSPC when owner already holds max_per_owner
 * others (replacing is allowed at the limit), -ENOMEM. ret may be NULL. */
int registry_add(registry_t *r, const char *owner, const char *to, const char *id, int priority,
                 bool remote, const registration_t **ret);

/* Sets what registration_t.subscribed says (the broker's, protocol.h "Broadcast fast path"). */
void registry_set_subscribed(registry_t *r, const registration_t *reg, bool subscribed);

/* owner's (to, id) registration, or NULL. */
const registration_t *registry_find(const registry_t *r, const char *owner, const char *to,
                                    const char *id);

/* Removes owner's (to, id) registration: 1 if there was one, else 0. */
int registry_remove(registry_t *r, const char *owner, const char *to, const char *id);

/* Removes every registration of owner (REGS-3) and returns how many there were. */
size_t registry_remove_owner(registry_t *r, const char *owner);

/* The unicast choice (DLV-2, DLV-3): to "1" → among all registrations of id, else among those
 * with receiver == to; highest priority, newest first; registrations whose seq is in
 * exclude[0..n_exclude) are skipped (bounces, DLV-13), and those for which skip (may be NULL)
 * says so: the broker filters remote registrations no `out` rule lets out (before the choice,
 * G-82) and stalled receivers (G-93). NULL when there is no candidate. */
typedef bool (*registry_skip_fn)(const registration_t *reg, void *data);
const registration_t *registry_pick(const registry_t *r, const char *id, const char *to,
                                    const uint64_t *exclude, size_t n_exclude,
                                    registry_skip_fn skip, void *data);

/* Broadcast iteration (DLV-1, DLV-4): every registration of id, in priority order.
 *   for (reg = registry_first(r, id); reg; reg = registry_next(reg)) …
 * The registry must not change during the walk. */
const registration_t *registry_first(const registry_t *r, const char *id);
const registration_t *registry_next(const registration_t *reg);

size_t registry_count(const registry_t *r);                          /* all registrations */
size_t registry_count_owner(const registry_t *r, const char *owner); /* one owner's */
size_t registry_count_id(const registry_t *r, const char *id);       /* one notification ID's */
