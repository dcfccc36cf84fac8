/*
 * The route registry (see registry.h): reports, removals, up/down states,
 * the cycle check and the version counter.
 *
 * Every change is prepared before anything is touched: names checked,
 * the cycle search done, every node, list and table slot it needs
 * allocated. Only then is it committed, by steps that cannot fail, so an
 * error leaves the registry exactly as it was.
 */
#include "route/registry.h"

#include <atbus/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "common/alloc.h"
#include "common/name.h"

/* One step of the cycle search: a node and the next of its upstreams to
 * look at. The frames on the stack are the path from the first upstream. */
struct atb_route_frame {
    atb_route_node *node;
    uint32_t next;
};

void
atb_route_error_set(atbus_route_error *err, const char *fmt, ...)
{
    if (err == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(err->text)) {
        memcpy(err->text + sizeof(err->text) - 4, "...", 4);
    }
}

static void
registry_error_clear(atbus_route_error *err)
{
    if (err != NULL) {
        err->text[0] = '\0';
    }
}

static void
registry_bump(atb_route_registry *reg)
{
    atomic_fetch_add_explicit(&reg->version, 1, memory_order_release);
}

uint64_t
atb_route_version(const atb_route_registry *reg)
{
    return atomic_load_explicit(&reg->version, memory_order_acquire);
}

void
atb_route_registry_init(atb_route_registry *reg)
{
    memset(reg, 0, sizeof(*reg));
    /* Chain caches start at version 0, so every new node is stale. */
    atomic_init(&reg->version, 1);
}

static uint32_t
registry_hash(const char *name, size_t len)
{
    return (uint32_t)XXH3_64bits(name, len);
}

atb_route_node *
atb_route_find(const atb_route_registry *reg, const char *name)
{
    if (reg->cap == 0 || name == NULL) {
        return NULL;
    }
    size_t len = strlen(name);
    uint32_t h = registry_hash(name, len);
    for (atb_route_node *n = reg->buckets[h & (reg->cap - 1)]; n != NULL;
         n = n->hash_next) {
        if (n->hash == h && strcmp(n->name, name) == 0) {
            return n;
        }
    }
    return NULL;
}

atb_route_node *
atb_route_active(const atb_route_node *node)
{
    for (uint16_t i = 0; i < node->nups; i++) {
        if (node->ups[i]->up) {
            return node->ups[i];
        }
    }
    return NULL;
}

size_t
atb_route_count(const atb_route_registry *reg)
{
    return reg->count;
}

/* registry_reserve makes room for `more` new nodes at a load factor of at
 * most one, before anything changes. */
static int
registry_reserve(atb_route_registry *reg, size_t more)
{
    if (reg->count + more <= reg->cap) {
        return ATBUS_OK;
    }
    size_t cap = reg->cap == 0 ? 16 : reg->cap;
    while (cap < reg->count + more) {
        cap *= 2;
    }
    atb_route_node **table = atb_calloc(cap, sizeof(*table));
    if (table == NULL) {
        return ATBUS_ENOMEM;
    }
    for (size_t i = 0; i < reg->cap; i++) {
        atb_route_node *n = reg->buckets[i];
        while (n != NULL) {
            atb_route_node *next = n->hash_next;
            size_t s = n->hash & (cap - 1);
            n->hash_next = table[s];
            table[s] = n;
            n = next;
        }
    }
    atb_free(reg->buckets);
    reg->buckets = table;
    reg->cap = cap;
    return ATBUS_OK;
}

static atb_route_node *
registry_node_new(const char *name)
{
    size_t len = strlen(name);
    atb_route_node *n = atb_calloc(1, sizeof(*n) + len + 1);
    if (n == NULL) {
        return NULL;
    }
    memcpy(n->name, name, len + 1);
    n->hash = registry_hash(name, len);
    n->up = 1;
    return n;
}

static void
registry_node_free(atb_route_node *n)
{
    atb_free(n->ups);
    atb_free(n->chain);
    atb_free(n);
}

/* registry_link inserts n; registry_reserve made room. */
static void
registry_link(atb_route_registry *reg, atb_route_node *n)
{
    size_t s = n->hash & (reg->cap - 1);
    n->hash_next = reg->buckets[s];
    reg->buckets[s] = n;
    reg->count++;
}

static void
registry_unlink_free(atb_route_registry *reg, atb_route_node *n)
{
    atb_route_node **pp = &reg->buckets[n->hash & (reg->cap - 1)];
    while (*pp != n) {
        pp = &(*pp)->hash_next;
    }
    *pp = n->hash_next;
    reg->count--;
    registry_node_free(n);
}

/* registry_unref drops one list's reference to n; a placeholder goes with
 * its last one. */
static void
registry_unref(atb_route_registry *reg, atb_route_node *n)
{
    n->refs--;
    if (n->refs == 0 && !n->reported) {
        registry_unlink_free(reg, n);
    }
}

static int
registry_check_name(const char *what, const char *name, atbus_route_error *err)
{
    const char *why = "NULL";
    if (name == NULL || atb_name_check(name, &why) != ATBUS_OK) {
        atb_route_error_set(err, "%s '%s': %s", what, name != NULL ? name : "",
                            why);
        return ATBUS_EINVAL;
    }
    return ATBUS_OK;
}

/* registry_next_epoch starts a cycle search: marks equal to the epoch
 * mean "seen in this search". */
static void
registry_next_epoch(atb_route_registry *reg)
{
    reg->epoch++;
    if (reg->epoch != 0) {
        return;
    }
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            n->mark = 0;
        }
    }
    reg->epoch = 1;
}

static int
registry_stack_reserve(atb_route_registry *reg, size_t n)
{
    if (n <= reg->stack_cap) {
        return ATBUS_OK;
    }
    size_t cap = reg->stack_cap == 0 ? 64 : reg->stack_cap * 2;
    while (cap < n) {
        cap *= 2;
    }
    atb_route_frame *s = atb_realloc(reg->stack, cap * sizeof(*s));
    if (s == NULL) {
        return ATBUS_ENOMEM;
    }
    reg->stack = s;
    reg->stack_cap = cap;
    return ATBUS_OK;
}

/*
 * registry_path searches depth first from `from` over every listed
 * upstream for `target`, skipping nodes marked in this epoch (they cannot
 * lead to it). Returns 1 when found, with the path from `from` to the node
 * listing `target` in reg->stack[0..*len); 0 when not; ATBUS_ENOMEM.
 */
static int
registry_path(atb_route_registry *reg, atb_route_node *from,
              const atb_route_node *target, size_t *len)
{
    if (from->mark == reg->epoch) {
        return 0;
    }
    if (registry_stack_reserve(reg, 1) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    from->mark = reg->epoch;
    reg->stack[0] = (atb_route_frame){from, 0};
    size_t sp = 1;
    while (sp > 0) {
        atb_route_frame *f = &reg->stack[sp - 1];
        if (f->next == f->node->nups) {
            sp--;
            continue;
        }
        atb_route_node *n = f->node->ups[f->next++];
        if (n == target) {
            *len = sp;
            return 1;
        }
        if (n->mark == reg->epoch) {
            continue;
        }
        if (registry_stack_reserve(reg, sp + 1) != ATBUS_OK) {
            return ATBUS_ENOMEM;
        }
        n->mark = reg->epoch;
        reg->stack[sp++] = (atb_route_frame){n, 0};
    }
    return 0;
}

/* registry_cycle_text writes "cycle: A -> path... -> A" into err. */
static void
registry_cycle_text(const atb_route_registry *reg, const char *name, size_t len,
                    atbus_route_error *err)
{
    if (err == NULL) {
        return;
    }
    char *out = err->text;
    size_t cap = sizeof(err->text);
    int n = snprintf(out, cap, "cycle: %s", name);
    size_t used = (size_t)n < cap ? (size_t)n : cap;
    for (size_t i = 0; i <= len && used < cap; i++) {
        const char *next = i < len ? reg->stack[i].node->name : name;
        n = snprintf(out + used, cap - used, " -> %s", next);
        used += (size_t)n < cap - used ? (size_t)n : cap - used;
    }
    if (used >= cap) {
        memcpy(out + cap - 4, "...", 4);
    }
}

/*
 * registry_check_cycle tells whether listing ups under self closes a
 * cycle: whether self is reachable from one of them. Only a node that
 * something hangs under can be reached, which spares the search for the
 * common report of a leaf.
 */
static int
registry_check_cycle(atb_route_registry *reg, const atb_route_node *self,
                     atb_route_node *const *ups, size_t count,
                     atbus_route_error *err)
{
    if (self == NULL || self->refs == 0) {
        return ATBUS_OK;
    }
    registry_next_epoch(reg);
    for (size_t i = 0; i < count; i++) {
        if (ups[i] == NULL) {
            continue; /* new: lists nothing yet */
        }
        size_t len = 0;
        int rc = registry_path(reg, ups[i], self, &len);
        if (rc < 0) {
            atb_route_error_set(err, "out of memory");
            return rc;
        }
        if (rc == 1) {
            registry_cycle_text(reg, self->name, len, err);
            return ATBUS_EROUTE_CYCLE;
        }
    }
    return ATBUS_OK;
}

/* registry_check_report checks the names and the shape of a report. */
static int
registry_check_report(const char *name, const char *const *upstreams,
                      size_t count, atbus_route_error *err)
{
    int rc = registry_check_name("node", name, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (count > ATBUS_ROUTE_MAX_UPSTREAMS) {
        atb_route_error_set(err, "%zu upstreams, more than %d", count,
                            ATBUS_ROUTE_MAX_UPSTREAMS);
        return ATBUS_EINVAL;
    }
    if (count > 0 && upstreams == NULL) {
        atb_route_error_set(err, "upstream list is NULL");
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < count; i++) {
        rc = registry_check_name("upstream", upstreams[i], err);
        if (rc != ATBUS_OK) {
            return rc;
        }
        if (strcmp(upstreams[i], name) == 0) {
            atb_route_error_set(err, "cycle: %s lists itself as upstream",
                                name);
            return ATBUS_EROUTE_CYCLE;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(upstreams[i], upstreams[j]) == 0) {
                atb_route_error_set(err, "upstream '%s' listed twice",
                                    upstreams[i]);
                return ATBUS_EINVAL;
            }
        }
    }
    return ATBUS_OK;
}

/* What a report needs allocated before it can be committed. */
typedef struct registry_prep {
    atb_route_node *self_new;
    atb_route_node *ups_new[ATBUS_ROUTE_MAX_UPSTREAMS];
    atb_route_node **list; /* a new list array, when the old is too small */
} registry_prep;

static void
registry_prep_free(registry_prep *p, size_t count)
{
    atb_free(p->self_new);
    for (size_t i = 0; i < count; i++) {
        atb_free(p->ups_new[i]);
    }
    atb_free(p->list);
}

static int
registry_prepare(atb_route_registry *reg, const char *name,
                 atb_route_node *self, const char *const *upstreams,
                 atb_route_node *const *found, size_t count, registry_prep *p)
{
    memset(p, 0, sizeof(*p));
    size_t more = self == NULL ? 1 : 0;
    for (size_t i = 0; i < count; i++) {
        more += found[i] == NULL ? 1 : 0;
    }
    if (registry_reserve(reg, more) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    if (self == NULL) {
        p->self_new = registry_node_new(name);
        if (p->self_new == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (found[i] == NULL) {
            p->ups_new[i] = registry_node_new(upstreams[i]);
            if (p->ups_new[i] == NULL) {
                registry_prep_free(p, count);
                return ATBUS_ENOMEM;
            }
        }
    }
    size_t have = self != NULL ? self->ups_cap : 0;
    if (count > have) {
        p->list = atb_malloc(count * sizeof(*p->list));
        if (p->list == NULL) {
            registry_prep_free(p, count);
            return ATBUS_ENOMEM;
        }
    }
    return ATBUS_OK;
}

/* registry_commit installs a prepared report; nothing here can fail. */
static void
registry_commit(atb_route_registry *reg, atb_route_node *self,
                atb_route_node **found, size_t count, registry_prep *p)
{
    int changed = self == NULL; /* relations to a new node now exist */
    if (self == NULL) {
        self = p->self_new;
        registry_link(reg, self);
    }
    for (size_t i = 0; i < count; i++) {
        if (found[i] == NULL) {
            found[i] = p->ups_new[i];
            registry_link(reg, found[i]);
        }
        found[i]->refs++;
    }
    changed |= self->nups != count;
    for (size_t i = 0; i < count && self->nups == count; i++) {
        changed |= self->ups[i] != found[i];
    }
    /* Old references go after the new ones are counted, so a node on both
     * lists is never freed in between. */
    atb_route_node *old[ATBUS_ROUTE_MAX_UPSTREAMS];
    size_t nold = self->nups;
    if (nold > 0) {
        memcpy(old, self->ups, nold * sizeof(*old));
    }
    if (p->list != NULL) {
        atb_free(self->ups);
        self->ups = p->list;
        self->ups_cap = (uint16_t)count;
    }
    if (count > 0) {
        memcpy(self->ups, found, count * sizeof(*found));
    }
    self->nups = (uint16_t)count;
    for (size_t i = 0; i < nold; i++) {
        registry_unref(reg, old[i]);
    }
    if (!self->reported) {
        /* A node that reports again after a removal is back. */
        self->reported = 1;
        if (!self->up) {
            self->up = 1;
            changed |= self->refs > 0;
        }
    }
    if (changed) {
        registry_bump(reg);
    }
}

int
atb_route_set_upstreams(atb_route_registry *reg, const char *name,
                        const char *const *upstreams, size_t count,
                        atbus_route_error *err)
{
    registry_error_clear(err);
    if (reg == NULL) {
        atb_route_error_set(err, "registry is NULL");
        return ATBUS_EINVAL;
    }
    int rc = registry_check_report(name, upstreams, count, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_route_node *self = atb_route_find(reg, name);
    atb_route_node *found[ATBUS_ROUTE_MAX_UPSTREAMS];
    for (size_t i = 0; i < count; i++) {
        found[i] = atb_route_find(reg, upstreams[i]);
    }
    rc = registry_check_cycle(reg, self, found, count, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    registry_prep prep;
    rc = registry_prepare(reg, name, self, upstreams, found, count, &prep);
    if (rc != ATBUS_OK) {
        atb_route_error_set(err, "out of memory");
        return rc;
    }
    registry_commit(reg, self, found, count, &prep);
    return ATBUS_OK;
}

int
atb_route_remove(atb_route_registry *reg, const char *name)
{
    if (reg == NULL || registry_check_name("node", name, NULL) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    atb_route_node *n = atb_route_find(reg, name);
    if (n == NULL) {
        return ATBUS_ENOTFOUND;
    }
    for (uint16_t i = 0; i < n->nups; i++) {
        registry_unref(reg, n->ups[i]);
    }
    n->nups = 0;
    n->reported = 0;
    if (n->refs == 0) {
        registry_unlink_free(reg, n);
    } else {
        n->up = 0;
    }
    registry_bump(reg);
    return ATBUS_OK;
}

int
atb_route_set_up(atb_route_registry *reg, const char *name, int up)
{
    if (reg == NULL || registry_check_name("node", name, NULL) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    uint8_t state = up != 0;
    atb_route_node *n = atb_route_find(reg, name);
    if (n == NULL) {
        if (registry_reserve(reg, 1) != ATBUS_OK) {
            return ATBUS_ENOMEM;
        }
        n = registry_node_new(name);
        if (n == NULL) {
            return ATBUS_ENOMEM;
        }
        registry_link(reg, n);
        registry_bump(reg);
    }
    n->reported = 1;
    if (n->up != state) {
        n->up = state;
        /* Only the chains of nodes listing n can change. */
        if (n->refs > 0) {
            registry_bump(reg);
        }
    }
    return ATBUS_OK;
}

void
atb_route_foreach(const atb_route_registry *reg,
                  void (*fn)(const atb_route_node *node, void *arg), void *arg)
{
    for (size_t i = 0; i < reg->cap; i++) {
        for (const atb_route_node *n = reg->buckets[i]; n != NULL;
             n = n->hash_next) {
            fn(n, arg);
        }
    }
}

size_t
atb_route_registry_bytes(const atb_route_registry *reg)
{
    size_t bytes =
        reg->cap * sizeof(*reg->buckets) + reg->stack_cap * sizeof(*reg->stack);
    for (size_t i = 0; i < reg->cap; i++) {
        for (const atb_route_node *n = reg->buckets[i]; n != NULL;
             n = n->hash_next) {
            bytes += sizeof(*n) + strlen(n->name) + 1;
            bytes += (size_t)n->ups_cap * sizeof(*n->ups);
            bytes += (size_t)n->chain_cap * sizeof(*n->chain);
        }
    }
    return bytes;
}

static int
registry_broken(const char **why, const char *text)
{
    if (why != NULL) {
        *why = text;
    }
    return ATBUS_EINVAL;
}

/* registry_verify_node checks one node's list and counts its references
 * into the marks (reset to zero by the caller). */
static int
registry_verify_node(const atb_route_registry *reg, atb_route_node *n,
                     const char **why)
{
    if (atb_route_find(reg, n->name) != n) {
        return registry_broken(why, "a node is not found by its name");
    }
    if (!n->reported && n->nups > 0) {
        return registry_broken(why, "a placeholder has an upstream list");
    }
    if (n->nups > n->ups_cap) {
        return registry_broken(why, "a list is longer than its array");
    }
    for (uint16_t i = 0; i < n->nups; i++) {
        if (n->ups[i] == n) {
            return registry_broken(why, "a node lists itself");
        }
        for (uint16_t j = 0; j < i; j++) {
            if (n->ups[i] == n->ups[j]) {
                return registry_broken(why, "a list names a node twice");
            }
        }
        n->ups[i]->mark++;
    }
    return ATBUS_OK;
}

/*
 * registry_verify_acyclic peels nodes nobody lists, then the nodes only
 * they listed, and so on (Kahn's algorithm on the reversed edges): every
 * node is peeled exactly when the lists have no cycle.
 */
static int
registry_verify_acyclic(atb_route_registry *reg, const char **why)
{
    if (registry_stack_reserve(reg, reg->count) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    size_t queued = 0;
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            n->mark = n->refs;
            if (n->refs == 0) {
                reg->stack[queued++].node = n;
            }
        }
    }
    for (size_t head = 0; head < queued; head++) {
        atb_route_node *n = reg->stack[head].node;
        for (uint16_t k = 0; k < n->nups; k++) {
            if (--n->ups[k]->mark == 0) {
                reg->stack[queued++].node = n->ups[k];
            }
        }
    }
    if (queued != reg->count) {
        return registry_broken(why, "a cycle");
    }
    return ATBUS_OK;
}

static int
registry_verify_all(atb_route_registry *reg, const char **why)
{
    size_t count = 0;
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            n->mark = 0;
            count++;
        }
    }
    if (count != reg->count) {
        return registry_broken(why, "count differs from the table");
    }
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            int rc = registry_verify_node(reg, n, why);
            if (rc != ATBUS_OK) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            if (n->mark != n->refs) {
                return registry_broken(why, "a reference count is wrong");
            }
            if (n->refs == 0 && !n->reported) {
                return registry_broken(why, "a placeholder nobody lists");
            }
        }
    }
    return registry_verify_acyclic(reg, why);
}

int
atb_route_registry_verify(atb_route_registry *reg, const char **why)
{
    int rc = registry_verify_all(reg, why);
    /* The checks used the marks as counters: clear them, and the next
     * cycle search starts a fresh epoch. */
    for (size_t i = 0; i < reg->cap; i++) {
        for (atb_route_node *n = reg->buckets[i]; n != NULL; n = n->hash_next) {
            n->mark = 0;
        }
    }
    reg->epoch = 0;
    return rc;
}

void
atb_route_registry_fini(atb_route_registry *reg)
{
    for (size_t i = 0; i < reg->cap; i++) {
        atb_route_node *n = reg->buckets[i];
        while (n != NULL) {
            atb_route_node *next = n->hash_next;
            registry_node_free(n);
            n = next;
        }
    }
    atb_free(reg->buckets);
    atb_free(reg->stack);
    memset(reg, 0, sizeof(*reg));
}
