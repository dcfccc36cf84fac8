/*
 * The next hop of a message from the local node S to destination D, from
 * the registry, the direct-connect policy and what the caller knows of its
 * connections (DESIGN §7 "Next hop"):
 *
 *   1. D = S: LOCAL.
 *      D is S's active upstream or an immediate downstream: that link
 *      (VIA_UPSTREAM / VIA_DOWNSTREAM); registry links are not gated by
 *      the policy.
 *   2. The policy says DIRECT for S to D and D is reachable: DIRECT.
 *   3. D is downstream of S: the node below S on D's chain
 *      (VIA_DOWNSTREAM). If that one is unreachable there is no route:
 *      going up would only come back down through S.
 *   4. By the relay preference, in that order or the other:
 *      - S's active upstream (VIA_UPSTREAM);
 *      - a relay on D's chain (VIA_TARGET_RELAY): the nearest one above D
 *        that the policy lets S connect to directly and that is
 *        reachable, looking no higher than the first relay that is also
 *        on S's chain (from there on S's own upstream is as good).
 *   5. Nothing reachable: ATBUS_ENOROUTE.
 *
 * "Reachable" is the caller's peer_state: connected, being connected, or
 * dialable (the caller has an address of that peer it may use, e.g. a
 * gateway whose match accepts S). A destination missing from the registry
 * has no chain: it is reached directly or through S's upstream, which may
 * know more.
 *
 * Sans-I/O and evaluated when a route or connection is planned, not per
 * packet: the answer holds while the registry version, the policy, the
 * records and the connections stay as they were.
 */
#ifndef ATB_ROUTE_NEXT_HOP_H
#define ATB_ROUTE_NEXT_HOP_H

#include <atbus/route.h>

#include "route/policy.h"
#include "route/registry.h"

/* What the caller knows of a peer (peer_state). */
enum atb_route_peer {
    ATB_ROUTE_PEER_UNREACHABLE = 0, /* no connection and no usable address */
    ATB_ROUTE_PEER_CONNECTED,       /* a connection is up */
    ATB_ROUTE_PEER_CONNECTING,      /* a connection is being set up */
    ATB_ROUTE_PEER_DIALABLE,        /* no connection; S may dial one */
};

/* Which relay step 4 tries first. */
enum atb_route_prefer {
    ATB_ROUTE_PREFER_UPSTREAM = 0, /* S's own upstream, then D's relays */
    ATB_ROUTE_PREFER_TARGET_RELAY, /* D's relays, then S's own upstream */
};

typedef struct atb_route_env {
    /* The direct-connect policy; NULL acts as an empty one (DIRECT). */
    const atb_route_policy *policy;
    /* The caller's record of a node for the policy's attr, or NULL when
     * it has none (then the node has no attributes). NULL: no records. */
    const void *(*record)(const char *name, void *arg);
    atb_route_attr_cb attr;
    /* Required: an enum atb_route_peer for the named peer. */
    int (*peer_state)(const char *name, void *arg);
    void *arg; /* passed to the three callbacks */
    enum atb_route_prefer prefer;
} atb_route_env;

/*
 * atb_route_next_hop fills *hop for a message from src (the local node)
 * to dst. The callbacks run before it returns and must not change the
 * registry. Returns ATBUS_OK (hop->state READY or CONNECTING),
 * ATBUS_ENOROUTE (hop->state UNREACHABLE; hop->kind and hop->peer name the
 * last hop tried, if any), ATBUS_EINVAL (a NULL argument or no peer_state,
 * a name that is not a DNS subdomain) or ATBUS_ENOMEM (a chain cache could
 * not grow).
 */
int atb_route_next_hop(atb_route_registry *reg, const atb_route_env *env,
                       const char *src, const char *dst, atbus_next_hop *hop);

#endif /* ATB_ROUTE_NEXT_HOP_H */
