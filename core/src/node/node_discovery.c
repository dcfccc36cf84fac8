/*
 * Discovery in the node: the records of an embedded registry (kept equal
 * to etcd by a sync, or loaded by the application) tell the node how to
 * reach names.
 *
 * The node pulls what it needs when it plans, instead of following every
 * change: before it picks a next hop towards a name it copies that
 * name's route record, and those of the relays above it, into its route
 * registry; and it dials the name itself when one of the name's gateways
 * accepts this node (atbus_select_gateway: priority, match, the best
 * scheme it can use). Traffic goes through relays meanwhile and moves to
 * the direct connection once it is up. Its own upstream relays are
 * dialed by their records when discovery is set up. Planning happens per
 * destination when a route is needed, never per packet.
 */
#include "node/node_internal.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"
#include "discovery/sync.h"

/* Route records followed upwards from a destination, at most. */
#define DISCOVERY_CHAIN_MAX 16

void
node_discovery_routes(atbus_node *node, const char *name)
{
    if (node->registry == NULL) {
        return;
    }
    const char *at = name;
    for (int depth = 0; depth < DISCOVERY_CHAIN_MAX && at != NULL; depth++) {
        const atbus_record *route;
        if (atbus_registry_get(node->registry, ATBUS_REGISTRY_ROUTES, at,
                               &route) != ATBUS_OK) {
            return;
        }
        if (atbus_node_route_set(node, at,
                                 (const char *const *)route->upstreams.items,
                                 route->upstreams.count, NULL) != ATBUS_OK) {
            return; /* a cycle is counted in routes_rejected */
        }
        at = route->upstreams.count > 0 ? route->upstreams.items[0] : NULL;
    }
}

void
node_discovery_dial(atbus_node *node, const char *name)
{
    if (node->registry == NULL || !node->has_self || node->closed ||
        strcmp(name, node->name) == 0) {
        return;
    }
    const node_peer *p = node_peer_find(node, name);
    if (p != NULL && p->conns != NULL) {
        return;
    }
    const atbus_record *rec;
    atbus_gateway_choice choice;
    if (atbus_registry_get(node->registry, ATBUS_REGISTRY_NODES, name, &rec) !=
            ATBUS_OK ||
        atbus_select_gateway(&node->self, rec, NULL, 0, &choice) != ATBUS_OK) {
        return; /* no address this node may use: relays carry it */
    }
    int rc = atbus_node_connect(node, choice.address);
    if (rc == ATBUS_OK || rc == ATBUS_EEXIST) {
        node_target_expect(node, choice.address, name);
    }
}

static void
discovery_dial_upstreams(atbus_node *node)
{
    for (size_t i = 0; i < node->cfg.upstream_count; i++) {
        node_discovery_routes(node, node->upstreams[i]);
        node_discovery_dial(node, node->upstreams[i]);
    }
}

int
atbus_node_follow_registry(atbus_node *node, atbus_registry *reg,
                           const atbus_record *self)
{
    if (node == NULL || reg == NULL || self == NULL ||
        self->type != ATBUS_RECORD_NODE || self->name == NULL ||
        strcmp(self->name, node->name) != 0) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    atbus_record copy;
    atbus_record_init(&copy);
    int rc = atbus_record_copy(&copy, self);
    if (rc != ATBUS_OK) {
        atbus_record_fini(&copy);
        return rc;
    }
    if (node->has_self) {
        atbus_record_fini(&node->self);
    }
    node->self = copy;
    node->has_self = 1;
    node->registry = reg;
    discovery_dial_upstreams(node);
    return ATBUS_OK;
}

/* discovery_route_record is this node's route record: its upstreams. */
static int
discovery_route_record(const atbus_node *node, atbus_record *route)
{
    atbus_record_init(route);
    route->type = ATBUS_RECORD_ROUTE;
    int rc = atbus_record_set_string(&route->name, node->name);
    for (size_t i = 0; i < node->cfg.upstream_count && rc == ATBUS_OK; i++) {
        rc = atbus_record_list_add(&route->upstreams, node->upstreams[i]);
    }
    return rc;
}

int
atbus_node_use_etcd(atbus_node *node, const char *endpoints, const char *prefix,
                    atbus_registry *reg, const atbus_record *self)
{
    if (node == NULL || endpoints == NULL || reg == NULL || self == NULL ||
        strlen(endpoints) >= 1024) {
        return ATBUS_EINVAL;
    }
    if (node->sync != NULL) {
        return ATBUS_EEXIST;
    }
    int rc = atbus_node_follow_registry(node, reg, self);
    if (rc != ATBUS_OK) {
        return rc;
    }
    /* The endpoint list is "url,url,...": split a copy in place. */
    char list[1024];
    memcpy(list, endpoints, strlen(endpoints) + 1);
    atb_etcd_config cfg;
    atb_etcd_config_default(&cfg);
    cfg.prefix = prefix;
    for (char *tok = list;
         tok != NULL && cfg.endpoint_count < ATB_ETCD_MAX_ENDPOINTS;) {
        char *comma = strchr(tok, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        if (*tok != '\0') {
            cfg.endpoints[cfg.endpoint_count++] = tok;
        }
        tok = comma != NULL ? comma + 1 : NULL;
    }
    rc = atb_disc_sync_new(&node->sync, node->loop, &cfg, reg, NULL, NULL);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atbus_record route;
    rc = discovery_route_record(node, &route);
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_publish(node->sync, &node->self,
                                   node->cfg.upstream_count > 0 ? &route : NULL,
                                   NULL);
    }
    atbus_record_fini(&route);
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_start(node->sync);
    }
    if (rc != ATBUS_OK) {
        atb_disc_sync_free(node->sync);
        node->sync = NULL;
    }
    return rc;
}

int
atbus_node_discovery_status(const atbus_node *node, atbus_discovery_status *out)
{
    if (node == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (node->sync == NULL) {
        return ATBUS_ENOTFOUND;
    }
    atb_disc_sync_status st;
    atb_disc_sync_status_get(node->sync, &st);
    out->synced = st.state == ATB_DISC_SYNC_SYNCED;
    out->stale = st.state == ATB_DISC_SYNC_STALE;
    out->stale_since_us = st.stale_since_us;
    out->published = st.published;
    out->revision = st.revision;
    out->rejected = st.rejected;
    out->err = st.err;
    return ATBUS_OK;
}

void
node_discovery_free(atbus_node *node)
{
    atb_disc_sync_free(node->sync);
    node->sync = NULL;
    if (node->has_self) {
        atbus_record_fini(&node->self);
        node->has_self = 0;
    }
}
