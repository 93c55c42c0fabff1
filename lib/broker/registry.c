/* lib/broker/registry.c — registrations by owner, receiver and notification ID (see registry.h).
 *
 * Three indexes over one set of registrations:
 *   by_id    notification ID → idnode: every registration of the ID (broadcast, "1")
 *   by_pair  (ID, receiver)  → rcvnode: the registrations for one receiver (named unicast)
 *   owners   owner           → owner: the owner's registrations keyed by (receiver, ID)
 * The idnode and rcvnode lists are kept sorted by (priority desc, seq desc), so a unicast pick
 * is the first entry that is not excluded. List links are embedded in the registration, so
 * linking and unlinking never allocate. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "broker/registry.h"
#include "core/util.h"

struct idnode {
        char *id;
        GQueue all; /* struct reg, sorted */
};

struct rcvnode {
        const char *id; /* the idnode's string */
        char *receiver;
        struct idnode *idn;
        GQueue regs; /* struct reg, sorted */
};

struct owner {
        char *name;
        GHashTable *regs; /* set of struct reg, keyed by (receiver, id) */
};

struct reg {
        registration_t pub; /* first: registration_t * ↔ struct reg * */
        GList all_link;     /* in idn->all */
        GList rcv_link;     /* in rcv->regs */
        struct idnode *idn;
        struct rcvnode *rcv;
        struct owner *own;
};

struct registry {
        GHashTable *by_id;   /* char *id → struct idnode */
        GHashTable *by_pair; /* struct rcvnode (key = value) */
        GHashTable *owners;  /* char *name → struct owner */
        size_t n, max_per_owner;
        uint64_t seq;
};

static inline struct reg *reg_of(const registration_t *p)
{
        return (struct reg *)((char *)p - offsetof(struct reg, pub));
}

static guint pair_hash(const char *a, const char *b)
{
        return g_str_hash(a) * 31u + g_str_hash(b);
}

static guint rcvnode_hash(gconstpointer p)
{
        const struct rcvnode *n = p;

        return pair_hash(n->id, n->receiver);
}

static gboolean rcvnode_equal(gconstpointer a, gconstpointer b)
{
        const struct rcvnode *x = a, *y = b;

        return streq(x->id, y->id) && streq(x->receiver, y->receiver);
}

static guint reg_hash(gconstpointer p)
{
        const struct reg *g = p;

        return pair_hash(g->pub.id, g->pub.receiver);
}

static gboolean reg_equal(gconstpointer a, gconstpointer b)
{
        const struct reg *x = a, *y = b;

        return streq(x->pub.id, y->pub.id) && streq(x->pub.receiver, y->pub.receiver);
}

static void idnode_free(gpointer p)
{
        struct idnode *n = p;

        free(n->id);
        free(n);
}

static void rcvnode_free(gpointer p)
{
        struct rcvnode *n = p;

        free(n->receiver);
        free(n);
}

static void owner_free(gpointer p)
{
        struct owner *o = p;

        if (!o)
                return;
        if (o->regs)
                g_hash_table_unref(o->regs);
        free(o->name);
        free(o);
}

int registry_new(size_t max_per_owner, registry_t **ret)
{
        registry_t *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->by_id = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, idnode_free);
        r->by_pair = g_hash_table_new_full(rcvnode_hash, rcvnode_equal, NULL, rcvnode_free);
        r->owners = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, owner_free);
        r->max_per_owner = max_per_owner;
        *ret = r;
        return 0;
}

/* Unlinks g from the ID and receiver lists and drops nodes that became empty; the owner's set
 * is the caller's business. */
static void reg_detach(registry_t *r, struct reg *g)
{
        g_queue_unlink(&g->idn->all, &g->all_link);
        g_queue_unlink(&g->rcv->regs, &g->rcv_link);
        if (g_queue_is_empty(&g->rcv->regs))
                g_hash_table_remove(r->by_pair, g->rcv);
        if (g_queue_is_empty(&g->idn->all))
                g_hash_table_remove(r->by_id, g->idn->id);
        g->idn = NULL;
        g->rcv = NULL;
        r->n--;
}

registry_t *registry_free(registry_t *r)
{
        GHashTableIter it;
        gpointer v;

        if (!r)
                return NULL;
        /* Each registration is in exactly one owner's set: free it from there. */
        g_hash_table_iter_init(&it, r->owners);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct owner *o = v;
                GHashTableIter jt;
                gpointer g;

                g_hash_table_iter_init(&jt, o->regs);
                while (g_hash_table_iter_next(&jt, &g, NULL))
                        free(g);
        }
        g_hash_table_unref(r->owners);
        g_hash_table_unref(r->by_pair);
        g_hash_table_unref(r->by_id);
        free(r);
        return NULL;
}

/* Keeps a list sorted by (priority desc, seq desc). g is the newest registration, so it goes
 * in front of every entry of equal priority (G-72). */
static void list_insert(GQueue *q, GList *link, int priority)
{
        for (GList *l = q->head; l; l = l->next) {
                const struct reg *o = l->data;
                if (o->pub.priority <= priority) {
                        g_queue_insert_before_link(q, l, link);
                        return;
                }
        }
        g_queue_push_tail_link(q, link);
}

static void reg_link(struct reg *g)
{
        list_insert(&g->idn->all, &g->all_link, g->pub.priority);
        list_insert(&g->rcv->regs, &g->rcv_link, g->pub.priority);
}

static int idnode_get(registry_t *r, const char *id, struct idnode **ret)
{
        struct idnode *n = g_hash_table_lookup(r->by_id, id);

        if (!n) {
                n = calloc(1, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                n->id = strdup(id);
                if (!n->id) {
                        free(n);
                        return -ENOMEM;
                }
                g_queue_init(&n->all);
                g_hash_table_insert(r->by_id, n->id, n);
        }
        *ret = n;
        return 0;
}

static int rcvnode_get(registry_t *r, struct idnode *idn, const char *to, struct rcvnode **ret)
{
        struct rcvnode key = {.id = idn->id, .receiver = (char *)to};
        struct rcvnode *n = g_hash_table_lookup(r->by_pair, &key);

        if (!n) {
                n = calloc(1, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                n->receiver = strdup(to);
                if (!n->receiver) {
                        free(n);
                        return -ENOMEM;
                }
                n->id = idn->id;
                n->idn = idn;
                g_queue_init(&n->regs);
                g_hash_table_add(r->by_pair, n);
        }
        *ret = n;
        return 0;
}

static int owner_get(registry_t *r, const char *name, struct owner **ret)
{
        struct owner *o = g_hash_table_lookup(r->owners, name);

        if (!o) {
                o = calloc(1, sizeof(*o));
                if (!o)
                        return -ENOMEM;
                o->name = strdup(name);
                if (!o->name) {
                        free(o);
                        return -ENOMEM;
                }
                o->regs = g_hash_table_new(reg_hash, reg_equal);
                g_hash_table_insert(r->owners, o->name, o);
        }
        *ret = o;
        return 0;
}

/* Drops nodes that an add created but could not use (allocation failure half way). */
static void registry_gc(registry_t *r, struct idnode *idn, struct rcvnode *rcv, struct owner *o)
{
        if (rcv && g_queue_is_empty(&rcv->regs))
                g_hash_table_remove(r->by_pair, rcv);
        if (idn && g_queue_is_empty(&idn->all))
                g_hash_table_remove(r->by_id, idn->id);
        if (o && g_hash_table_size(o->regs) == 0)
                g_hash_table_remove(r->owners, o->name);
}

const registration_t *registry_find(const registry_t *r, const char *owner, const char *to,
                                    const char *id)
{
        struct reg key = {.pub = {.receiver = to, .id = id}};
        const struct owner *o = g_hash_table_lookup(r->owners, owner);
        const struct reg *g = o ? g_hash_table_lookup(o->regs, &key) : NULL;

        return g ? &g->pub : NULL;
}

int registry_add(registry_t *r, const char *owner, const char *to, const char *id, int priority,
                 bool remote, const registration_t **ret)
{
        struct reg key = {.pub = {.receiver = to, .id = id}};
        struct owner *o = g_hash_table_lookup(r->owners, owner);
        struct idnode *idn = NULL;
        struct rcvnode *rcv = NULL;
        struct reg *g;
        int k;

        g = o ? g_hash_table_lookup(o->regs, &key) : NULL;
        if (g) {
                /* REGS-1: same owner, same pair: new priority, and it is the newest now. */
                g_queue_unlink(&g->idn->all, &g->all_link);
                g_queue_unlink(&g->rcv->regs, &g->rcv_link);
                g->pub.priority = priority;
                g->pub.seq = ++r->seq;
                reg_link(g);
                if (ret)
                        *ret = &g->pub;
                return 1;
        }
        if (o && r->max_per_owner && g_hash_table_size(o->regs) >= r->max_per_owner)
                return -ENOSPC;

        k = owner_get(r, owner, &o);
        if (k >= 0)
                k = idnode_get(r, id, &idn);
        if (k >= 0)
                k = rcvnode_get(r, idn, to, &rcv);
        if (k >= 0) {
                g = calloc(1, sizeof(*g));
                if (!g)
                        k = -ENOMEM;
        }
        if (k < 0) {
                registry_gc(r, idn, rcv, o);
                return k;
        }
        g->idn = idn;
        g->rcv = rcv;
        g->own = o;
        g->pub.owner = o->name;
        g->pub.receiver = rcv->receiver;
        g->pub.id = idn->id;
        g->pub.priority = priority;
        g->pub.seq = ++r->seq;
        g->pub.remote = remote;
        g->all_link.data = g;
        g->rcv_link.data = g;
        reg_link(g);
        g_hash_table_add(o->regs, g);
        r->n++;
        if (ret)
                *ret = &g->pub;
        return 0;
}

void registry_set_subscribed(registry_t *r, const registration_t *reg, bool subscribed)
{
        /* Every registration_t handed out is the pub member of a struct reg of r. */
        struct reg *g = (struct reg *)((char *)reg - offsetof(struct reg, pub));

        (void)r;
        g->pub.subscribed = subscribed;
}

int registry_remove(registry_t *r, const char *owner, const char *to, const char *id)
{
        struct reg key = {.pub = {.receiver = to, .id = id}};
        struct owner *o = g_hash_table_lookup(r->owners, owner);
        struct reg *g = o ? g_hash_table_lookup(o->regs, &key) : NULL;

        if (!g)
                return 0;
        g_hash_table_remove(o->regs, g);
        reg_detach(r, g);
        free(g);
        if (g_hash_table_size(o->regs) == 0)
                g_hash_table_remove(r->owners, o->name);
        return 1;
}

size_t registry_remove_owner(registry_t *r, const char *owner)
{
        struct owner *o = g_hash_table_lookup(r->owners, owner);
        GHashTableIter it;
        gpointer g;
        size_t n;

        if (!o)
                return 0;
        n = g_hash_table_size(o->regs);
        g_hash_table_iter_init(&it, o->regs);
        while (g_hash_table_iter_next(&it, &g, NULL)) {
                reg_detach(r, g);
                free(g);
        }
        g_hash_table_remove(r->owners, owner);
        return n;
}

static bool excluded(uint64_t seq, const uint64_t *exclude, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (exclude[i] == seq)
                        return true;
        return false;
}

const registration_t *registry_pick(const registry_t *r, const char *id, const char *to,
                                    const uint64_t *exclude, size_t n_exclude,
                                    registry_skip_fn skip, void *data)
{
        const GQueue *q;
        bool any = streq(to, "1");

        if (any) {
                const struct idnode *idn = g_hash_table_lookup(r->by_id, id);
                q = idn ? &idn->all : NULL;
        } else {
                struct rcvnode key = {.id = id, .receiver = (char *)to};
                const struct rcvnode *rcv = g_hash_table_lookup(r->by_pair, &key);
                q = rcv ? &rcv->regs : NULL;
        }
        if (!q)
                return NULL;
        /* The lists are sorted, so the first candidate not tried yet is the choice. */
        for (const GList *l = q->head; l; l = l->next) {
                const struct reg *g = l->data;
                if (!excluded(g->pub.seq, exclude, n_exclude) && !(skip && skip(&g->pub, data)))
                        return &g->pub;
        }
        return NULL;
}

const registration_t *registry_first(const registry_t *r, const char *id)
{
        const struct idnode *idn = g_hash_table_lookup(r->by_id, id);

        return idn && idn->all.head ? &((const struct reg *)idn->all.head->data)->pub : NULL;
}

const registration_t *registry_next(const registration_t *reg)
{
        const GList *l = reg_of(reg)->all_link.next;

        return l ? &((const struct reg *)l->data)->pub : NULL;
}

size_t registry_count(const registry_t *r)
{
        return r->n;
}

size_t registry_count_owner(const registry_t *r, const char *owner)
{
        const struct owner *o = g_hash_table_lookup(r->owners, owner);

        return o ? g_hash_table_size(o->regs) : 0;
}

size_t registry_count_id(const registry_t *r, const char *id)
{
        const struct idnode *idn = g_hash_table_lookup(r->by_id, id);

        return idn ? g_queue_get_length((GQueue *)&idn->all) : 0;
}
