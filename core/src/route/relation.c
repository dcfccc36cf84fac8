/*
 * Relations over the registry's active upstreams, with the per-node chain
 * cache described in relation.h.
 */
#include "route/relation.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"
#include "common/name.h"

int
atb_route_chain(atb_route_registry *reg, atb_route_node *node)
{
    uint64_t version = atb_route_version(reg);
    if (node->chain_version == version) {
        return ATBUS_OK;
    }
    atb_route_node *up = atb_route_active(node);
    int reuse = up != NULL && up->chain_version == version;
    uint32_t depth = 0;
    if (reuse) {
        depth = up->depth + 1;
    } else {
        for (atb_route_node *n = up; n != NULL; n = atb_route_active(n)) {
            depth++;
        }
    }
    if (depth > node->chain_cap) {
        atb_route_node **chain =
            atb_realloc(node->chain, (size_t)depth * sizeof(*chain));
        if (chain == NULL) {
            return ATBUS_ENOMEM;
        }
        node->chain = chain;
        node->chain_cap = depth;
    }
    if (reuse) {
        node->chain[0] = up;
        if (up->depth > 0) {
            memcpy(node->chain + 1, up->chain,
                   (size_t)up->depth * sizeof(*up->chain));
        }
    } else {
        uint32_t i = 0;
        for (atb_route_node *n = up; n != NULL; n = atb_route_active(n)) {
            node->chain[i++] = n;
        }
    }
    node->depth = depth;
    node->chain_version = version;
    return ATBUS_OK;
}

/* relation_above tells whether y is on x's fresh chain, k >= 2 hops up. */
static int
relation_above(const atb_route_node *x, const atb_route_node *y)
{
    if (x->depth < y->depth + 2) {
        return 0;
    }
    return x->chain[x->depth - y->depth - 1] == y;
}

/* relation_up is the active upstream, from the chain when it is fresh: one
 * memory access fewer than scanning the list, and the transitive check
 * reads the same array next. */
static atb_route_node *
relation_up(const atb_route_node *node, uint64_t version)
{
    if (node->chain_version == version) {
        return node->depth > 0 ? node->chain[0] : NULL;
    }
    return atb_route_active(node);
}

int
atb_route_relation_of(atb_route_registry *reg, atb_route_node *x,
                      atb_route_node *y, atbus_relation *out)
{
    if (x == y) {
        *out = ATBUS_RELATION_SELF;
        return ATBUS_OK;
    }
    uint64_t version = atb_route_version(reg);
    atb_route_node *ux = relation_up(x, version);
    atb_route_node *uy = relation_up(y, version);
    if (ux == y) {
        *out = ATBUS_RELATION_IMMEDIATE_UPSTREAM;
        return ATBUS_OK;
    }
    if (uy == x) {
        *out = ATBUS_RELATION_IMMEDIATE_DOWNSTREAM;
        return ATBUS_OK;
    }
    if (ux != NULL && ux == uy) {
        *out = ATBUS_RELATION_SAME_UPSTREAM_PEER;
        return ATBUS_OK;
    }
    /* Two nodes without an active upstream are on no chain. */
    *out = ATBUS_RELATION_OTHER_UPSTREAM_PEER;
    if (ux == NULL && uy == NULL) {
        return ATBUS_OK;
    }
    int rc = atb_route_chain(reg, x);
    if (rc == ATBUS_OK) {
        rc = atb_route_chain(reg, y);
    }
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (relation_above(x, y)) {
        *out = ATBUS_RELATION_TRANSITIVE_UPSTREAM;
    } else if (relation_above(y, x)) {
        *out = ATBUS_RELATION_TRANSITIVE_DOWNSTREAM;
    }
    return ATBUS_OK;
}

int
atb_route_relation(atb_route_registry *reg, const char *x, const char *y,
                   atbus_relation *out)
{
    if (reg == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    atb_route_node *nx = atb_route_find(reg, x);
    atb_route_node *ny = atb_route_find(reg, y);
    if (nx == NULL || ny == NULL) {
        /* Only valid names get into the registry, so only a miss needs
         * the check. */
        if (atb_name_check(x, NULL) != ATBUS_OK ||
            atb_name_check(y, NULL) != ATBUS_OK) {
            return ATBUS_EINVAL;
        }
        return ATBUS_ENOTFOUND;
    }
    return atb_route_relation_of(reg, nx, ny, out);
}

const char *
atb_route_relation_name(atbus_relation relation)
{
    switch (relation) {
    case ATBUS_RELATION_SELF:
        return "SELF";
    case ATBUS_RELATION_IMMEDIATE_UPSTREAM:
        return "IMMEDIATE_UPSTREAM";
    case ATBUS_RELATION_IMMEDIATE_DOWNSTREAM:
        return "IMMEDIATE_DOWNSTREAM";
    case ATBUS_RELATION_SAME_UPSTREAM_PEER:
        return "SAME_UPSTREAM_PEER";
    case ATBUS_RELATION_TRANSITIVE_UPSTREAM:
        return "TRANSITIVE_UPSTREAM";
    case ATBUS_RELATION_TRANSITIVE_DOWNSTREAM:
        return "TRANSITIVE_DOWNSTREAM";
    case ATBUS_RELATION_OTHER_UPSTREAM_PEER:
        return "OTHER_UPSTREAM_PEER";
    }
    return "?";
}
