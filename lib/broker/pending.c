/* lib/broker/pending.c — bounce tickets per receiver connection (see pending.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/pending.h"

#define PENDING_RING_MIN 8u

void pending_ring_init(pending_ring_t *q, uint32_t max, void (*release)(void *submitter))
{
        *q = (pending_ring_t){.max = max ? max : 1, .release = release};
}

static pending_t *slot(const pending_ring_t *q, uint32_t i)
{
        return &q->v[(q->head + i) % q->cap];
}

static void entry_drop(pending_ring_t *q, pending_t *p)
{
        if (!p->live)
                return;
        if (p->n_tried > 1)
                free(p->tried_many);
        if (q->release && p->submitter)
                q->release(p->submitter);
        p->live = false;
        p->submitter = NULL;
        p->tried_many = NULL;
        q->live--;
}

void pending_ring_clear(pending_ring_t *q)
{
        for (uint32_t i = 0; i < q->len; i++)
                entry_drop(q, slot(q, i));
        free(q->v);
        q->v = NULL;
        q->cap = q->head = q->len = q->live = 0;
}

static int ring_grow(pending_ring_t *q)
{
        uint32_t cap = q->cap ? q->cap * 2 : PENDING_RING_MIN;
        pending_t *v;

        if (cap > q->max)
                cap = q->max;
        v = malloc(sizeof(*v) * cap);
        if (!v)
                return -ENOMEM;
        for (uint32_t i = 0; i < q->len; i++)
                v[i] = *slot(q, i);
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
        return 0;
}

static void ring_pop_head(pending_ring_t *q)
{
        entry_drop(q, slot(q, 0));
        q->head = (q->head + 1) % q->cap;
        q->len--;
}

int pending_ring_push(pending_ring_t *q, uint64_t ticket, uint64_t fingerprint, void *submitter,
                      const uint64_t *tried, uint32_t n_tried)
{
        pending_t e = {.ticket = ticket,
                       .fingerprint = fingerprint,
                       .submitter = submitter,
                       .n_tried = n_tried,
                       .live = true};

        if (n_tried > 1) {
                e.tried_many = malloc(sizeof(uint64_t) * n_tried);
                if (!e.tried_many)
                        goto fail;
                memcpy(e.tried_many, tried, sizeof(uint64_t) * n_tried);
        } else
                e.tried_one = n_tried ? tried[0] : 0;

        if (q->len == q->cap && q->cap < q->max && ring_grow(q) < 0) {
                free(e.tried_many);
                goto fail;
        }
        if (q->len == q->cap)
                ring_pop_head(q); /* full: the oldest ticket cannot be bounced any more */
        *slot(q, q->len) = e;
        q->len++;
        q->live++;
        return 0;
fail:
        if (q->release && submitter)
                q->release(submitter);
        return -ENOMEM;
}

pending_t *pending_ring_find(pending_ring_t *q, uint64_t ticket)
{
        uint32_t lo = 0, hi = q->len;

        /* Tickets grow along the ring (holes keep theirs), so bisect. */
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                pending_t *p = slot(q, mid);
                if (p->ticket == ticket)
                        return p->live ? p : NULL;
                if (p->ticket < ticket)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

void pending_ring_take(pending_ring_t *q, pending_t *p, pending_t *ret)
{
        *ret = *p;
        p->live = false;
        p->submitter = NULL;
        p->tried_many = NULL;
        q->live--;
        /* Holes at the old end free their slots at once; others wait until they age out. */
        while (q->len && !slot(q, 0)->live)
                ring_pop_head(q);
        while (q->len && !slot(q, q->len - 1)->live)
                q->len--;
}

size_t pending_ring_count(const pending_ring_t *q)
{
        return q->live;
}

/* FNV-1a, 64 bit: fields separated by a NUL so "ab"+"c" differs from "a"+"bc". */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
        const unsigned char *p = data;

        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

uint64_t pending_fingerprint(const char *from, const char *to, const char *id, uint32_t flags)
{
        uint64_t h = 0xcbf29ce484222325ull;

        h = fnv1a(h, from, strlen(from) + 1);
        h = fnv1a(h, to, strlen(to) + 1);
        h = fnv1a(h, id, strlen(id) + 1);
        return fnv1a(h, &flags, sizeof(flags));
}
