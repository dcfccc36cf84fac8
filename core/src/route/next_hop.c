/*
 * Next-hop selection (see next_hop.h for the order of the steps).
 */
#include "route/next_hop.h"

#include <atbus/error.h>

#include <string.h>

#include "common/name.h"
#include "route/relation.h"

typedef struct hop_ctx {
    atb_route_registry *reg;
    const atb_route_env *env;
    const void *src_record;
    atbus_next_hop *hop;
} hop_ctx;

static const void *
hop_record(const hop_ctx *c, const char *name)
{
    if (c->env->record == NULL) {
        return NULL;
    }
    return c->env->record(name, c->env->arg);
}

/* hop_try proposes peer as the next hop: 1 when it is reachable (hop
 * filled), 0 when not (hop keeps it as the last one tried). */
static int
hop_try(hop_ctx *c, atbus_hop_kind kind, const char *peer)
{
    atbus_next_hop *hop = c->hop;
    hop->kind = kind;
    memcpy(hop->peer, peer, strlen(peer) + 1);
    switch (c->env->peer_state(peer, c->env->arg)) {
    case ATB_ROUTE_PEER_CONNECTED:
        hop->state = ATBUS_HOP_READY;
        return 1;
    case ATB_ROUTE_PEER_CONNECTING:
    case ATB_ROUTE_PEER_DIALABLE:
        hop->state = ATBUS_HOP_CONNECTING;
        return 1;
    default:
        hop->state = ATBUS_HOP_UNREACHABLE;
        return 0;
    }
}

static int
hop_direct_allowed(const hop_ctx *c, const char *peer)
{
    atb_route_decision dec;
    atb_route_policy_decide(c->env->policy, c->src_record, hop_record(c, peer),
                            c->env->attr, c->env->arg, &dec);
    return dec.action == ATB_ROUTE_DIRECT;
}

/*
 * hop_target_relay walks D's chain upwards for a relay S may connect to.
 * It stops at the first relay also on S's chain: from there on, going
 * through S's own upstream reaches the same place. r's depth is known from
 * its place on D's fresh chain. Returns 1 (hop filled), 0 or ATBUS_ENOMEM.
 */
static int
hop_target_relay(hop_ctx *c, atb_route_node *s, atb_route_node *d)
{
    if (d == NULL) {
        return 0;
    }
    int rc = atb_route_chain(c->reg, d);
    if (rc == ATBUS_OK && s != NULL) {
        rc = atb_route_chain(c->reg, s);
    }
    if (rc != ATBUS_OK) {
        return rc;
    }
    for (uint32_t i = 0; i < d->depth; i++) {
        atb_route_node *r = d->chain[i];
        uint32_t r_depth = d->depth - 1 - i;
        if (s != NULL && s->depth > r_depth &&
            s->chain[s->depth - r_depth - 1] == r) {
            return 0;
        }
        if (hop_direct_allowed(c, r->name) &&
            hop_try(c, ATBUS_HOP_VIA_TARGET_RELAY, r->name)) {
            return 1;
        }
    }
    return 0;
}

/* hop_relays is step 4: S's upstream and D's relays in the preferred
 * order. Returns 1 (hop filled), 0 or ATBUS_ENOMEM. */
static int
hop_relays(hop_ctx *c, atb_route_node *s, atb_route_node *d)
{
    atb_route_node *up = s != NULL ? atb_route_active(s) : NULL;
    int target_first = c->env->prefer == ATB_ROUTE_PREFER_TARGET_RELAY;
    if (target_first) {
        int rc = hop_target_relay(c, s, d);
        if (rc != 0) {
            return rc;
        }
    }
    if (up != NULL && hop_try(c, ATBUS_HOP_VIA_UPSTREAM, up->name)) {
        return 1;
    }
    return target_first ? 0 : hop_target_relay(c, s, d);
}

/* hop_check_names checks the names the registry does not hold (it holds
 * only valid ones): the common case costs no check. */
static int
hop_check_names(const char *src, const atb_route_node *s, const char *dst,
                const atb_route_node *d)
{
    if ((s == NULL && atb_name_check(src, NULL) != ATBUS_OK) ||
        (d == NULL && atb_name_check(dst, NULL) != ATBUS_OK)) {
        return ATBUS_EINVAL;
    }
    return ATBUS_OK;
}

/* hop_from_chain is steps 1 to 3 for a destination in the registry.
 * Returns 1 (hop filled), 0 (go on with relays), ATBUS_ENOROUTE or
 * ATBUS_ENOMEM. */
static int
hop_from_chain(hop_ctx *c, atb_route_node *s, atb_route_node *d, int direct)
{
    atbus_next_hop *hop = c->hop;
    if (hop->relation == ATBUS_RELATION_IMMEDIATE_UPSTREAM &&
        hop_try(c, ATBUS_HOP_VIA_UPSTREAM, d->name)) {
        return 1;
    }
    if (hop->relation == ATBUS_RELATION_IMMEDIATE_DOWNSTREAM) {
        return hop_try(c, ATBUS_HOP_VIA_DOWNSTREAM, d->name) ? 1
                                                             : ATBUS_ENOROUTE;
    }
    if (direct && hop_try(c, ATBUS_HOP_DIRECT, d->name)) {
        return 1;
    }
    if (hop->relation == ATBUS_RELATION_TRANSITIVE_DOWNSTREAM) {
        /* relation_of left both chains fresh. */
        atb_route_node *below = d->chain[d->depth - s->depth - 2];
        return hop_try(c, ATBUS_HOP_VIA_DOWNSTREAM, below->name)
                   ? 1
                   : ATBUS_ENOROUTE;
    }
    return 0;
}

int
atb_route_next_hop(atb_route_registry *reg, const atb_route_env *env,
                   const char *src, const char *dst, atbus_next_hop *hop)
{
    if (reg == NULL || env == NULL || env->peer_state == NULL || hop == NULL) {
        return ATBUS_EINVAL;
    }
    atb_route_node *s = atb_route_find(reg, src);
    atb_route_node *d = atb_route_find(reg, dst);
    int rc = hop_check_names(src, s, dst, d);
    if (rc != ATBUS_OK) {
        return rc;
    }
    memset(hop, 0, sizeof(*hop));
    hop->version = atb_route_version(reg);
    if (strcmp(src, dst) == 0) {
        hop->kind = ATBUS_HOP_LOCAL;
        hop->state = ATBUS_HOP_READY;
        hop->relation = s != NULL ? ATBUS_RELATION_SELF : 0;
        memcpy(hop->peer, src, strlen(src) + 1);
        return ATBUS_OK;
    }
    hop_ctx c = {reg, env, NULL, hop};
    c.src_record = hop_record(&c, src);
    atb_route_decision dec;
    atb_route_policy_decide(env->policy, c.src_record, hop_record(&c, dst),
                            env->attr, env->arg, &dec);
    hop->encrypt = dec.encrypt;
    int direct = dec.action == ATB_ROUTE_DIRECT;
    if (s != NULL && d != NULL) {
        rc = atb_route_relation_of(reg, s, d, &hop->relation);
        if (rc == ATBUS_OK) {
            rc = hop_from_chain(&c, s, d, direct);
        }
    } else if (direct) {
        rc = hop_try(&c, ATBUS_HOP_DIRECT, dst);
    }
    if (rc == 0) {
        rc = hop_relays(&c, s, d);
    }
    if (rc == 1) {
        return ATBUS_OK;
    }
    hop->state = ATBUS_HOP_UNREACHABLE;
    return rc < 0 ? rc : ATBUS_ENOROUTE;
}
