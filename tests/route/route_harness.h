/*
 * Helpers shared by the route suites: reports written as text, a
 * canonical dump of a registry to compare states, and a small world of
 * node records and connection states for policy and next-hop tests.
 */
#ifndef ATB_TEST_ROUTE_HARNESS_H
#define ATB_TEST_ROUTE_HARNESS_H

#include <atbus/atbus.h>

#include <stddef.h>

#include "route/next_hop.h"
#include "route/policy.h"
#include "route/registry.h"
#include "route/relation.h"

/* rh_report calls atb_route_set_upstreams(name, the comma-separated list
 * ups; "" for none) and returns its result. */
int rh_report(atb_route_registry *reg, const char *name, const char *ups);

/* rh_set is rh_report that must succeed. */
void rh_set(atb_route_registry *reg, const char *name, const char *ups);

/* rh_relation returns relation(x, y), which must succeed. */
atbus_relation rh_relation(atb_route_registry *reg, const char *x,
                           const char *y);

/* rh_dump returns the registry as sorted text, one node a line with its
 * state and list (free() it). */
char *rh_dump(const atb_route_registry *reg);

/* rh_verify fails the test when the registry's invariants are broken. */
void rh_verify(atb_route_registry *reg);

/* ---- a world of records and connections ---- */

#define RH_MAX_NODES 32
#define RH_MAX_ATTRS 8

typedef struct rh_node {
    char name[64];
    char pool[512]; /* the attribute text, cut into keys and values */
    const char *keys[RH_MAX_ATTRS];
    const char *values[RH_MAX_ATTRS];
    size_t nattrs;
    int state; /* enum atb_route_peer, as seen from the local node */
    /* Gateway matches: when any are given, a DIALABLE node is reachable
     * only from a local node whose attribute accept_keys[i] equals
     * accept_values[i] for some i. */
    char accept_pool[256];
    const char *accept_keys[4];
    const char *accept_values[4];
    size_t naccepts;
} rh_node;

typedef struct rh_world {
    rh_node nodes[RH_MAX_NODES];
    size_t count;
    atb_route_env env;
    const char *local; /* the source of the current question */
    /* Every peer_state question, for tests that check what was asked. */
    char asked[64][64];
    size_t nasked;
} rh_world;

/* rh_world_init makes an empty world whose env answers from it. */
void rh_world_init(rh_world *w, const atb_route_policy *policy);

/* rh_world_add adds a record: attrs is "key=value" pairs separated by
 * spaces, copied. "name" is answered from the record's name. The state
 * starts DIALABLE. */
rh_node *rh_world_add(rh_world *w, const char *name, const char *attrs);

/* rh_world_accept adds a gateway match "key=value" to a node. */
void rh_world_accept(rh_world *w, const char *name, const char *match);

/* rh_world_state sets a node's connection state. */
void rh_world_state(rh_world *w, const char *name, int state);

/* rh_hop asks for the next hop; returns the call's result. */
int rh_hop(atb_route_registry *reg, rh_world *w, const char *src,
           const char *dst, atbus_next_hop *hop);

/*
 * rh_route follows next hops from src to dst as relays would, each hop
 * asked as the node it reached, and writes the nodes passed through
 * (src first, dst last) as "a>b>c" into path. Fails the test when a hop
 * errs or the path grows past 16 nodes.
 */
void rh_route(atb_route_registry *reg, rh_world *w, const char *src,
              const char *dst, char *path, size_t size);

/* rh_policy parses text that must be valid. */
atb_route_policy *rh_policy(const char *text);

#endif /* ATB_TEST_ROUTE_HARNESS_H */
