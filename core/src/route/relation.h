/*
 * Relations between nodes of the route registry: what Y is to X, over
 * active upstreams (DESIGN §7).
 *
 * The immediate relations need only the two nodes' active upstreams. The
 * transitive ones use each node's cached upstream chain: an array of the
 * nodes above it plus its depth, tagged with the registry version and
 * rebuilt only after the version moved (O(depth), reusing the active
 * upstream's chain when that one is fresh). With both chains fresh, "Y is
 * k hops above X" is one comparison: k = depth(X) - depth(Y) and
 * chain(X)[k - 1] == Y.
 */
#ifndef ATB_ROUTE_RELATION_H
#define ATB_ROUTE_RELATION_H

#include <atbus/route.h>

#include "route/registry.h"

/*
 * atb_route_chain makes node's cached chain fresh: node->chain[0..depth)
 * from its active upstream to the root, valid until the registry changes.
 * Returns ATBUS_OK or ATBUS_ENOMEM (the cache could not grow; it stays
 * stale and nothing else changed).
 */
int atb_route_chain(atb_route_registry *reg, atb_route_node *node);

/* atb_route_relation_of stores in *out what y is to x. Returns ATBUS_OK or
 * ATBUS_ENOMEM (from atb_route_chain). */
int atb_route_relation_of(atb_route_registry *reg, atb_route_node *x,
                          atb_route_node *y, atbus_relation *out);

/*
 * atb_route_relation is atb_route_relation_of by name. Returns ATBUS_OK,
 * ATBUS_EINVAL (a NULL argument or a name that is not a DNS subdomain),
 * ATBUS_ENOTFOUND (x or y is not in the registry) or ATBUS_ENOMEM.
 */
int atb_route_relation(atb_route_registry *reg, const char *x, const char *y,
                       atbus_relation *out);

/* atb_route_relation_name returns a static name of a relation, or "?". */
const char *atb_route_relation_name(atbus_relation relation);

#endif /* ATB_ROUTE_RELATION_H */
