/*
 * Routing in the node: the route registry (route/registry.h) fed by the
 * node's own upstreams, by its peers' registers and by discovery
 * (atbus_node_route_set); the next hop towards a node without a
 * connection; forwarding when this node is a relay; and the notices a
 * relay sends back when it cannot forward.
 *
 * Streams stay end to end: a relay forwards packets and acknowledgements
 * unchanged but for the head (hop count, forward_for), so the source and
 * the destination keep the only stream state. A relay never queues: a
 * frame the next connection refuses is dropped and counted, and the
 * source's stream sends it again (relayed paths are treated as lossy).
 */
#include "node/node_internal.h"

#include <atbus/error.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/name.h"
#include "route/relation.h"
#include "wire/frame.h"

/* A forwarded frame up to this size is encoded on the stack. */
#define FORWARD_STACK 4096

static int
route_peer_state(const char *name, void *arg)
{
    atbus_node *node = arg;
    const node_peer *p = node_peer_find(node, name);
    if (p != NULL && p->conns != NULL) {
        return ATB_ROUTE_PEER_CONNECTED;
    }
    for (const node_target *t = node->targets; t != NULL; t = t->next) {
        if ((t->last_peer != NULL && strcmp(t->last_peer, name) == 0) ||
            (t->want_peer != NULL && strcmp(t->want_peer, name) == 0)) {
            return ATB_ROUTE_PEER_CONNECTING; /* being dialed */
        }
    }
    return ATB_ROUTE_PEER_UNREACHABLE;
}

int
node_route_init(atbus_node *node)
{
    atbus_route_error err;
    return atb_route_set_upstreams(&node->routes, node->name,
                                   (const char *const *)node->upstreams,
                                   node->cfg.upstream_count, &err);
}

void
node_route_peer_up(atbus_node *node, const atb_pb_register *reg)
{
    if (reg->n_upstreams > 0 && reg->n_upstreams <= ATBUS_ROUTE_MAX_UPSTREAMS) {
        atbus_route_error err;
        if (atb_route_set_upstreams(&node->routes, reg->name,
                                    (const char *const *)reg->upstreams,
                                    reg->n_upstreams, &err) != ATBUS_OK) {
            node->stats.routes_rejected++;
        }
    }
    (void)atb_route_set_up(&node->routes, reg->name, 1);
}

void
node_route_peer_down(atbus_node *node, const char *name)
{
    (void)atb_route_set_up(&node->routes, name, 0);
}

void
node_route_peer_gone(atbus_node *node, const char *name)
{
    (void)atb_route_set_up(&node->routes, name, 0);
    (void)atb_route_remove(&node->routes, name);
    for (node_target *t = node->targets; t != NULL; t = t->next) {
        if (t->last_peer != NULL && strcmp(t->last_peer, name) == 0) {
            atb_free(t->last_peer);
            t->last_peer = NULL;
        }
    }
}

static int
route_next_hop(atbus_node *node, const char *dst, atbus_next_hop *hop)
{
    atb_route_env env = {
        .peer_state = route_peer_state,
        .arg = node,
        .prefer = node->cfg.prefer_target_relay ? ATB_ROUTE_PREFER_TARGET_RELAY
                                                : ATB_ROUTE_PREFER_UPSTREAM,
    };
    return atb_route_next_hop(&node->routes, &env, node->name, dst, hop);
}

node_conn *
node_route_conn(atbus_node *node, const char *dst, atbus_next_hop *hop)
{
    atbus_next_hop local;
    if (hop == NULL) {
        hop = &local;
    }
    const node_peer *p = node_peer_find(node, dst);
    if (p != NULL && p->conns != NULL) {
        memset(hop, 0, sizeof(*hop));
        hop->kind = ATBUS_HOP_DIRECT;
        hop->state = ATBUS_HOP_READY;
        snprintf(hop->peer, sizeof(hop->peer), "%s", dst);
        if (atb_route_relation(&node->routes, node->name, dst,
                               &hop->relation) != ATBUS_OK) {
            hop->relation = 0;
        }
        hop->version = atb_route_version(&node->routes);
        return p->conns;
    }
    if (route_next_hop(node, dst, hop) != ATBUS_OK ||
        hop->state != ATBUS_HOP_READY || strcmp(hop->peer, dst) == 0) {
        return NULL;
    }
    const node_peer *via = node_peer_find(node, hop->peer);
    return via != NULL ? via->conns : NULL;
}

void
node_route_conn_gone(atbus_node *node, node_conn *nc)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        for (node_peer *p = node->peers[i]; p != NULL; p = p->hash_next) {
            if (p->via == nc) {
                p->via = NULL;
            }
            if (p != nc->peer && p->eng != NULL) {
                /* Relayed traffic of p went over nc: resend elsewhere. */
                atb_sengine_path_remove(p->eng, nc->path_id);
                node_stream_schedule(p);
            }
        }
    }
}

void
node_route_conn_writable(atbus_node *node, node_conn *nc)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        for (node_peer *p = node->peers[i]; p != NULL; p = p->hash_next) {
            if (p->via == nc) {
                node_stream_flush(p);
            }
        }
    }
}

/* route_notice tells the source of a frame that it cannot be forwarded.
 * Notices about notices are never sent: two relays without a route would
 * answer each other forever. */
static void
route_notice(node_conn *in, const atb_pb_frame *msg, int code, const char *why)
{
    const atb_pb_head *h = msg->head;
    if (msg->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET &&
        msg->packet->stream_id == ATB_NODE_ROUTE_STREAM) {
        return;
    }
    (void)node_conn_send_command(in, h->source, ATB_NODE_ROUTE_STREAM, 0, code,
                                 why, h->destination);
}

void
node_route_forward(node_conn *in, const atb_pb_frame *msg)
{
    atbus_node *node = in->node;
    const atb_pb_head *h = msg->head;
    if (!node->cfg.relay) {
        node->stats.frames_misaddressed++;
        route_notice(in, msg, ATB_CLOSE_REASON(ROUTER_NOT_FOUND),
                     "not a relay");
        return;
    }
    if (h->hop_count + 1 > node->cfg.max_hops) {
        node->stats.frames_ttl_expired++;
        route_notice(in, msg, ATB_CLOSE_REASON(TTL_EXPIRED),
                     "hop limit reached");
        return;
    }
    node_conn *out = node_route_conn(node, h->destination, NULL);
    if (out == NULL || out == in) {
        node->stats.frames_unroutable++;
        route_notice(in, msg, ATB_CLOSE_REASON(ROUTER_NOT_FOUND),
                     "no route to the destination");
        return;
    }
    /* The head changes on the way; the rest is passed on as it came. The
     * first relay says whom and which connection it forwards for. */
    atb_pb_head head = *h;
    head.hop_count = h->hop_count + 1;
    if (head.forward_for_source == NULL || head.forward_for_source[0] == 0) {
        head.forward_for_source = in->peer->name;
        head.forward_for_connection_id = (int64_t)in->conn->id;
    }
    atb_pb_frame copy = *msg;
    copy.head = &head;
    size_t size = atb_frame_encoded_size(&copy);
    uint8_t stack[FORWARD_STACK];
    uint8_t *buf = size <= sizeof(stack) ? stack : atb_malloc(size);
    if (buf == NULL) {
        node->stats.frames_relay_dropped++;
        return;
    }
    size_t n;
    int rc = atb_frame_encode(&copy, buf, size, &n);
    if (rc == ATBUS_OK) {
        struct iovec iov = {.iov_base = buf, .iov_len = n};
        rc = atb_conn_send(out->conn, &iov, 1);
    }
    if (buf != stack) {
        atb_free(buf);
    }
    if (rc != ATBUS_OK) {
        node->stats.frames_relay_dropped++;
        return;
    }
    node->stats.frames_forwarded++;
    node->stats.frames_out++;
}

void
node_route_on_notice(node_conn *nc, const atb_pb_frame *msg)
{
    atbus_node *node = nc->node;
    atb_pb_content *content;
    const atb_pb_packet *pk = msg->packet;
    if (atb_packet_content_unpack(pk->content.data, pk->content.len,
                                  &content) != ATBUS_OK) {
        return;
    }
    for (size_t i = 0; i < content->n_fragment; i++) {
        const atb_pb_fragment *f = content->fragment[i];
        char dst[ATBUS_NAME_MAX + 1];
        if (f->close_reason == NULL || f->data.len == 0 ||
            f->data.len > ATBUS_NAME_MAX) {
            continue;
        }
        memcpy(dst, f->data.data, f->data.len);
        dst[f->data.len] = '\0';
        node_peer *p = node_peer_find(node, dst);
        if (p == NULL || p->conns != NULL) {
            continue; /* unknown, or reachable directly after all */
        }
        /* Only the sending side is given up: what p sent us stays
         * (this notice may answer our acknowledgements). */
        node_stream_give_up(p, f->close_reason->code ==
                                       ATB_CLOSE_REASON(TTL_EXPIRED)
                                   ? ATBUS_ETTL
                                   : ATBUS_ENOROUTE);
    }
    atb_packet_content_free(content);
}

/* ---- the application's side ---- */

int
atbus_node_route_set(atbus_node *node, const char *name,
                     const char *const *upstreams, size_t count,
                     atbus_route_error *err)
{
    if (node == NULL || name == NULL || (upstreams == NULL && count != 0) ||
        count > ATBUS_ROUTE_MAX_UPSTREAMS) {
        return ATBUS_EINVAL;
    }
    atbus_route_error local;
    int rc = atb_route_set_upstreams(&node->routes, name, upstreams, count,
                                     err != NULL ? err : &local);
    if (rc == ATBUS_EROUTE_CYCLE) {
        node->stats.routes_rejected++;
    }
    return rc;
}

int
atbus_node_route_remove(atbus_node *node, const char *name)
{
    if (node == NULL || name == NULL) {
        return ATBUS_EINVAL;
    }
    return atb_route_remove(&node->routes, name);
}

int
atbus_node_relation(atbus_node *node, const char *x, const char *y,
                    atbus_relation *out)
{
    if (node == NULL || x == NULL || y == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    return atb_route_relation(&node->routes, x, y, out);
}

int
atbus_node_next_hop(atbus_node *node, const char *dst, atbus_next_hop *hop)
{
    if (node == NULL || dst == NULL || hop == NULL ||
        atb_name_check(dst, NULL) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    node_discovery_routes(node, dst);
    if (node_route_conn(node, dst, hop) != NULL) {
        return ATBUS_OK;
    }
    return route_next_hop(node, dst, hop);
}
