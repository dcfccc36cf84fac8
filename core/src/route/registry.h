/*
 * The route registry: per node an ordered list of upstream relays (primary
 * first, then backups) and an up/down state, in a hash table by name.
 * Sans-I/O: no fd, clock or lock; the caller feeds reports and states.
 *
 * Nodes come into being three ways: a report by the node itself
 * (atb_route_set_upstreams), a state set by the caller (atb_route_set_up),
 * or being named in someone's upstream list. A node known only from lists
 * (not "reported") is freed with the last list naming it. New nodes start
 * up. atb_route_remove drops a node's report; if lists still name it, it
 * stays as a down placeholder so its downstreams fail over to backups, and
 * a later report brings it back up.
 *
 * Invariant: the graph of every listed upstream (active or not) has no
 * cycle. Checking all edges, not just active ones, is what lets
 * atb_route_set_up never fail: no up/down change can make a backup close
 * a cycle.
 *
 * The version counter moves on every change that can alter an upstream
 * chain or a relation: a list that changed, a node added or removed, the
 * state of a listed node. relation.c tags its chain caches with it.
 *
 * Threads: one thread owns a registry; atb_route_version may be read from
 * any thread.
 */
#ifndef ATB_ROUTE_REGISTRY_H
#define ATB_ROUTE_REGISTRY_H

#include <atbus/route.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct atb_route_node atb_route_node;
typedef struct atb_route_registry atb_route_registry;
typedef struct atb_route_frame atb_route_frame;

struct atb_route_node {
    atb_route_node *hash_next;
    atb_route_node **ups; /* the reported list, primary first */
    /* Cache of relation.c: the active upstream chain, chain[0] the active
     * upstream and chain[depth - 1] the root; valid while chain_version
     * equals the registry version. */
    atb_route_node **chain;
    uint64_t chain_version;
    uint32_t depth;
    uint32_t chain_cap;
    uint32_t refs; /* upstream lists naming this node */
    uint32_t mark; /* cycle search epoch */
    uint32_t hash;
    uint16_t nups;
    uint16_t ups_cap;
    uint8_t up;
    uint8_t reported; /* reported or state set: kept without refs */
    char name[];
};

struct atb_route_registry {
    atb_route_node **buckets; /* chained; cap is a power of two */
    size_t cap;
    size_t count;
    atomic_uint_fast64_t version;
    uint32_t epoch;
    atb_route_frame *stack; /* cycle search scratch */
    size_t stack_cap;
};

/* atb_route_registry_init makes an empty registry (version 1). Allocates
 * nothing. */
void atb_route_registry_init(atb_route_registry *reg);

/* atb_route_registry_fini frees every node and the scratch space. */
void atb_route_registry_fini(atb_route_registry *reg);

/*
 * atb_route_set_upstreams replaces name's upstream list with
 * upstreams[0..count). Returns ATBUS_OK, ATBUS_EINVAL, ATBUS_EROUTE_CYCLE
 * or ATBUS_ENOMEM (see atbus_route_registry_set_upstreams); on failure
 * nothing changed and err (if not NULL) says why.
 */
int atb_route_set_upstreams(atb_route_registry *reg, const char *name,
                            const char *const *upstreams, size_t count,
                            atbus_route_error *err);

/* atb_route_remove drops name's report. Returns ATBUS_OK, ATBUS_EINVAL or
 * ATBUS_ENOTFOUND; allocates nothing. */
int atb_route_remove(atb_route_registry *reg, const char *name);

/* atb_route_set_up sets name's state, adding it if unknown. Returns
 * ATBUS_OK, ATBUS_EINVAL or ATBUS_ENOMEM. */
int atb_route_set_up(atb_route_registry *reg, const char *name, int up);

/* atb_route_find returns the node called name (any string), or NULL. */
atb_route_node *atb_route_find(const atb_route_registry *reg, const char *name);

/* atb_route_active returns node's active upstream (the first listed one
 * that is up), or NULL. O(list length), at most ATBUS_ROUTE_MAX_UPSTREAMS. */
atb_route_node *atb_route_active(const atb_route_node *node);

/* atb_route_version reads the version counter. */
uint64_t atb_route_version(const atb_route_registry *reg);

/* atb_route_count returns how many nodes the registry holds. */
size_t atb_route_count(const atb_route_registry *reg);

/* atb_route_foreach calls fn for every node, in no particular order. fn
 * must not change the registry. */
void atb_route_foreach(const atb_route_registry *reg,
                       void (*fn)(const atb_route_node *node, void *arg),
                       void *arg);

/* atb_route_registry_bytes adds up the bytes the registry asked the
 * allocator for (nodes, lists, chain caches, table), without the
 * allocator's own overhead. */
size_t atb_route_registry_bytes(const atb_route_registry *reg);

/*
 * atb_route_registry_verify checks the invariants: reference counts match
 * the lists, placeholders are named by some list, the count matches the
 * table, no list names a node twice or closes a cycle. For tests. Returns
 * ATBUS_OK, or ATBUS_EINVAL with *why (if not NULL) naming the broken one.
 */
int atb_route_registry_verify(atb_route_registry *reg, const char **why);

/* atb_route_error_set writes a printf-style message into err (if not
 * NULL), truncated with "...". */
void atb_route_error_set(atbus_route_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* ATB_ROUTE_REGISTRY_H */
