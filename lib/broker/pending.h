/* lib/broker/pending.h — bounce tickets: the unicasts a receiver connection was handed and may
 * still return (DLV-12, DLV-13, G-89), as a bounded ring per receiver.
 *
 * An entry remembers who submitted the unicast and which registrations were tried, plus a
 * fingerprint of (from, to, id, flags) so a returned message can be matched against what was
 * delivered; the payload travels back with the Bounce, so no payload is stored.
 *
 * Tickets are handed out in increasing order (the broker's counter), so a ring holds them
 * sorted and finding one is a binary search; the ring grows on demand up to its bound and then
 * evicts the oldest entry. Steady state costs no allocation per ticket unless more than one
 * registration was tried (a bounce).
 *
 * Threads: none of its own; the caller serialises (the broker's loop thread). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pending {
        uint64_t ticket;      /* kept after take (a hole until it ages out), for the search */
        uint64_t fingerprint; /* pending_fingerprint() of the delivered notification */
        void *submitter;      /* one reference, dropped with release() */
        uint32_t n_tried;     /* ≥ 1 */
        bool live;            /* false once taken */
        uint64_t tried_one;   /* n_tried == 1 */
        uint64_t *tried_many; /* n_tried > 1: malloc'd array of n_tried seqs */
} pending_t;

typedef struct pending_ring {
        pending_t *v;
        uint32_t cap, head, len, max, live;
        void (*release)(void *submitter);
} pending_ring_t;

/* An empty ring holding at most max entries (VFIIPC_PENDING_PER_PEER_MAX); release drops the
 * submitter reference of entries that leave the ring (may be NULL). No allocation yet. */
void pending_ring_init(pending_ring_t *q, uint32_t max, void (*release)(void *submitter));
/* Drops every entry and the storage; the ring is empty and usable again. */
void pending_ring_clear(pending_ring_t *q);

/* Appends a ticket greater than every ticket in the ring. tried[0..n_tried) is copied; the
 * submitter reference is taken over (also on failure it is released). Evicts the oldest entry
 * when the ring is full. 0 or -ENOMEM. */
int pending_ring_push(pending_ring_t *q, uint64_t ticket, uint64_t fingerprint, void *submitter,
                      const uint64_t *tried, uint32_t n_tried);

/* The live entry with this ticket, or NULL (never handed out, taken, or evicted). */
pending_t *pending_ring_find(pending_ring_t *q, uint64_t ticket);

/* Removes a live entry found above; its submitter reference and tried array go to *ret (the
 * caller frees ret->tried_many and releases the submitter). */
void pending_ring_take(pending_ring_t *q, pending_t *p, pending_t *ret);

/* Live entries (for tests). */
size_t pending_ring_count(const pending_ring_t *q);

static inline const uint64_t *pending_tried(const pending_t *p)
{
        return p->n_tried > 1 ? p->tried_many : &p->tried_one;
}

/* Hash of what the broker routed on: from, to, id, flags. Bounce content must match. */
uint64_t pending_fingerprint(const char *from, const char *to, const char *id, uint32_t flags);
