/*
 * A peer's streams: the stream engine (stream/engine.h) driven by the
 * node's loop.
 *
 * Every registered connection of a peer is one of the engine's paths.
 * Sending queues a message in the engine and flushes: the engine plans
 * frames, the node encodes them and hands them to the transports. A
 * flush writes over the peer's best-ranked connections in turn (two TCP
 * connections stripe one stream); worse channels carry data only when
 * the better ones are gone. A connection whose transport refuses a frame
 * sits out until its on_writable.
 *
 * When the connections are idle a send is flushed at once; when one is
 * busy (bytes still queued in the transport) the flush waits for the end
 * of the loop turn, so the messages sent meanwhile share packets.
 *
 * A peer without connections of its own is reached through the next hop
 * (node_route.c): the connection towards it becomes a path of the peer's
 * streams, marked lossy since a relay drops what it cannot pass on, and
 * frames carry this node's incarnation. A new next hop after a failover
 * is just another path; what the old one did not deliver is resent.
 */
#include "node/node_internal.h"

#include <atbus/error.h>

#include <string.h>
#include <sys/socket.h>

#include "common/alloc.h"
#include "common/name.h"
#include "stream/codec.h"

/* Payload of a packet that crosses relays: bounded, since a relay may
 * drop it and the source then sends it whole again; the relays' head
 * fields (forward_for, hop count) fit in the rest of the frame. */
#define RELAYED_PAYLOAD (64u * 1024u)

static void
stream_on_message(int64_t stream_id, const uint8_t *data, size_t len, void *arg)
{
    node_peer *p = arg;
    atbus_node *node = p->node;
    node->stats.messages_in++;
    node->stats.bytes_in += len;
    if (node->cbs.on_message != NULL && !node->freeing) {
        node->cbs.on_message(node, p->name, stream_id, data, len, node->cb_arg);
    }
}

static void
stream_on_writable(int64_t stream_id, void *arg)
{
    (void)stream_id;
    node_peer *p = arg;
    atbus_node *node = p->node;
    if (p->want_writable && node->cbs.on_writable != NULL && !node->freeing) {
        p->want_writable = 0;
        node->cbs.on_writable(node, p->name, node->cb_arg);
    }
}

static const atb_sengine_cbs stream_cbs = {
    .on_message = stream_on_message,
    .on_writable = stream_on_writable,
};

static void
stream_on_timer(atb_timer *t, void *arg)
{
    (void)t;
    node_peer *p = arg;
    atbus_node *node = p->node;
    uint64_t now = atb_loop_now_us(node->loop);
    if (p->conns == NULL && p->linger_until_us != 0 &&
        now >= p->linger_until_us) {
        /* A peer that had connections timed out; one only ever reached
         * through relays has no route. */
        p->linger_until_us = 0;
        node_stream_give_up(p,
                            p->registered ? ATBUS_ETIMEDOUT : ATBUS_ENOROUTE);
        return;
    }
    atb_sengine_on_expiry(p->eng, now);
    node_stream_flush(p);
}

int
node_stream_open(atbus_node *node, node_peer *p)
{
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    cfg.max_message = node->cfg.max_message;
    cfg.stream_window = node->cfg.send_buffer_limit;
    cfg.recv_window = 2 * node->cfg.send_buffer_limit;
    p->node = node;
    atb_timer_init(&p->timer, stream_on_timer, p);
    return atb_sengine_new(&p->eng, &cfg, &stream_cbs, p);
}

void
node_stream_close(node_peer *p)
{
    if (p->node == NULL) {
        return;
    }
    atb_timer_stop(&p->timer);
    atb_loop_cancel(p->node->loop, &p->flush_defer);
    atb_sengine_free(p->eng);
    p->eng = NULL;
}

static size_t
conn_max_payload(const atbus_node *node, const node_conn *nc)
{
    if (nc->conn->tp->scheme != ATB_URL_UDP) {
        return node->cfg.max_message + 1024;
    }
    size_t mtu = node->tcfg.udp_mtu;
    if (mtu == 0) {
        mtu = nc->conn->peer.addr.ss_family == AF_INET6 ? 1232 : 548;
    }
    /* Names are part of every packet: a long pair leaves less room. */
    size_t names = strlen(node->name) + strlen(nc->peer->name);
    size_t overhead = 48 + names;
    return mtu > overhead + 64 ? mtu - overhead : 64;
}

int
node_stream_path_add(node_peer *p, node_conn *nc)
{
    unsigned flags =
        nc->conn->tp->scheme == ATB_URL_UDP ? 0 : ATB_SPATH_RELIABLE;
    nc->path_id = (uint32_t)nc->conn->id;
    int rc = atb_sengine_path_add(p->eng, nc->path_id,
                                  conn_max_payload(p->node, nc), flags);
    if (rc == ATBUS_OK) {
        nc->path_added = 1;
        /* Queued data may wait for a path (a peer coming back). */
        node_stream_schedule(p);
    }
    return rc;
}

void
node_stream_path_remove(node_peer *p, node_conn *nc)
{
    if (nc->path_added) {
        atb_sengine_path_remove(p->eng, nc->path_id);
        nc->path_added = 0;
        node_stream_schedule(p);
    }
}

/* stream_arm sets the timer to the engine's next deadline. */
static void
stream_arm(node_peer *p)
{
    atb_loop *loop = p->node->loop;
    uint64_t t = atb_sengine_expiry(p->eng);
    if (p->conns == NULL && p->linger_until_us != 0 && p->linger_until_us < t) {
        t = p->linger_until_us;
    }
    if (t == UINT64_MAX) {
        atb_timer_stop(&p->timer);
        return;
    }
    uint64_t now = atb_loop_now_us(loop);
    /* Called after a flush: work still due now waits for a transport
     * that refused a frame (its on_writable flushes again). Look again
     * in a millisecond rather than spin. */
    uint64_t delay = t > now ? t - now : 1000;
    if (atb_timer_start(loop, &p->timer, delay, 0) != ATBUS_OK) {
        /* The timer heap could not grow: retry on the next turn. */
        node_stream_schedule(p);
    }
}

/* stream_write_one sends one planned frame of p on nc (incarnation: 0
 * for a neighbour, ours for frames that cross relays). Returns 1 when a
 * frame went out, 0 when nc has nothing or cannot take more. */
static int
stream_write_one(node_peer *p, node_conn *nc, uint64_t now,
                 uint64_t incarnation)
{
    atbus_node *node = p->node;
    atb_sout out;
    if (nc->blocked || nc->state != NCONN_UP ||
        atb_sengine_write(p->eng, nc->path_id, now, &out) != 1) {
        return 0;
    }
    if (out.kind == ATB_SOUT_PACKET) {
        out.packet.timepoint_us = (int64_t)now;
    }
    atb_frame_iov fi;
    if (atb_scodec_encode(&out, node->name, p->name, incarnation, &fi) !=
        ATBUS_OK) {
        return 0;
    }
    int rc = atb_conn_send(nc->conn, fi.iov, fi.iovcnt);
    if (rc == ATBUS_EWOULDBLOCK) {
        nc->blocked = 1;
        node->stats.sends_would_block++;
        return 0;
    }
    if (rc != ATBUS_OK) {
        /* The transport is failing; its on_close takes the path away and
         * the engine resends elsewhere. */
        nc->blocked = 1;
        return 0;
    }
    atb_sengine_commit(p->eng, nc->path_id, now, &out);
    node->stats.frames_out++;
    return 1;
}

int
node_stream_relayed_path(node_peer *p, node_conn *nc)
{
    int rc = atb_sengine_path_add(p->eng, nc->path_id, RELAYED_PAYLOAD, 0);
    if (rc != ATBUS_OK && rc != ATBUS_EEXIST) {
        return rc;
    }
    if (p->conns == NULL && p->via == NULL) {
        p->via = nc; /* answer the way it came */
        p->linger_until_us = 0;
    }
    return ATBUS_OK;
}

/* stream_flush_relayed sends p's frames towards its next hop, choosing
 * one when there is none; without a route p waits (peer_linger_ms) and
 * is then given up. */
static void
stream_flush_relayed(node_peer *p, uint64_t now)
{
    atbus_node *node = p->node;
    if (p->via == NULL || p->via->state != NCONN_UP) {
        p->via = NULL;
        node_discovery_routes(node, p->name);
        node_discovery_dial(node, p->name);
        node_conn *nc = node_route_conn(node, p->name, NULL);
        if (nc != NULL && node_stream_relayed_path(p, nc) == ATBUS_OK) {
            p->via = nc;
        }
    }
    if (p->via == NULL) {
        if (p->linger_until_us == 0) {
            node_stream_linger(p);
        }
        return;
    }
    p->linger_until_us = 0;
    while (stream_write_one(p, p->via, now, node->incarnation)) {
    }
}

void
node_stream_flush(node_peer *p)
{
    if (p->eng == NULL) {
        return;
    }
    atbus_node *node = p->node;
    uint64_t now = atb_loop_now_us(node->loop);
    if (p->conns == NULL) {
        stream_flush_relayed(p, now);
        stream_arm(p);
        return;
    }
    /* Frames go round the connections of the best rank, one each, so a
     * stream spreads over all of them; the turn carries over between
     * flushes, or every single-packet flush would use the first. */
    node_conn *best[16];
    size_t n = 0;
    for (node_conn *nc = p->conns;
         nc != NULL && n < 16 && nc->rank == p->conns->rank;
         nc = nc->peer_next) {
        best[n++] = nc;
    }
    size_t idle = 0;
    while (n > 0 && idle < n) {
        if (stream_write_one(p, best[p->stripe++ % n], now, 0)) {
            idle = 0;
        } else {
            idle++;
        }
    }
    stream_arm(p);
}

static void
stream_flush_deferred(atb_deferred *d, void *arg)
{
    (void)d;
    node_peer *p = arg;
    p->flush_pending = 0;
    node_stream_flush(p);
}

void
node_stream_schedule(node_peer *p)
{
    if (!p->flush_pending && p->eng != NULL) {
        p->flush_pending = 1;
        atb_loop_defer(p->node->loop, &p->flush_defer, stream_flush_deferred,
                       p);
    }
}

void
node_stream_give_up(node_peer *p, int err)
{
    uint64_t messages;
    /* The streams go on after what is given up (RESET_OFFSET tells the
     * peer), and the receiving side stays: offsets never restart, so a
     * peer that comes back is not fed old offsets as new data. */
    atb_sengine_abandon(p->eng, &messages);
    node_report_undelivered(p->node, p->name, messages, err);
    stream_arm(p);
}

void
node_report_undelivered(atbus_node *node, const char *peer, uint64_t messages,
                        int err)
{
    if (messages == 0) {
        return;
    }
    node->stats.messages_undelivered += messages;
    if (node->cbs.on_undelivered != NULL && !node->freeing) {
        node->cbs.on_undelivered(node, peer, messages, err, node->cb_arg);
    }
}

void
node_stream_linger(node_peer *p)
{
    atbus_node *node = p->node;
    p->linger_until_us =
        atb_loop_now_us(node->loop) + (uint64_t)node->cfg.peer_linger_ms * 1000;
    stream_arm(p);
}

/* ---- input ---- */

static void
stream_input_error(node_conn *nc, int rc, const char *what)
{
    if (rc == ATBUS_ENOMEM) {
        /* Dropped; the peer sends it again. */
        return;
    }
    nc->node->stats.protocol_errors++;
    node_conn_end(nc, rc, ATB_CLOSE_REASON(PROTOCOL_ERROR), what);
}

void
node_stream_on_packet(node_peer *p, node_conn *nc, const atb_pb_frame *msg)
{
    atb_pb_content *content;
    atb_sfrag frags[ATB_PACKET_MAX_FRAGS];
    atb_spacket pkt;
    int rc = atb_scodec_packet(msg->packet, &content, frags, &pkt);
    if (rc != ATBUS_OK) {
        stream_input_error(nc, rc, "packet_content is not stream data");
        return;
    }
    rc = atb_sengine_on_packet(p->eng, nc->path_id, &pkt,
                               atb_loop_now_us(nc->node->loop));
    atb_packet_content_free(content);
    if (rc != ATBUS_OK) {
        stream_input_error(nc, rc, "stream packet breaks the protocol");
        return;
    }
    node_stream_schedule(p);
}

void
node_stream_on_ack(node_peer *p, node_conn *nc, const atb_pb_ack *ack)
{
    atb_sack acks[ATB_PACKET_MAX_FRAGS];
    size_t n;
    int rc = atb_scodec_ack(ack, acks, &n);
    if (rc == ATBUS_OK) {
        rc = atb_sengine_on_ack(
            p->eng, nc->path_id, acks, n, ack->timepoint_microseconds,
            ack->ack_delay_microseconds, atb_loop_now_us(nc->node->loop));
    }
    if (rc != ATBUS_OK) {
        stream_input_error(nc, rc, "acknowledgement breaks the protocol");
        return;
    }
    node_stream_schedule(p);
}

/* ---- the application's side ---- */

/* stream_peer finds the peer a send goes to: a known one (connected, or
 * waiting for its connection or route to come back), or a new one
 * reached through the next hop. */
static node_peer *
stream_peer(atbus_node *node, const char *peer, int *rc)
{
    node_peer *p = node_peer_find(node, peer);
    if (p != NULL) {
        *rc = ATBUS_OK;
        return p;
    }
    if (atb_name_check(peer, NULL) != ATBUS_OK) {
        *rc = ATBUS_EINVAL;
        return NULL;
    }
    /* Discovery first: the name's routes, and a direct connection when
     * one of its gateways accepts this node (used once it is up). */
    node_discovery_routes(node, peer);
    node_discovery_dial(node, peer);
    atbus_next_hop hop;
    if (node_route_conn(node, peer, &hop) == NULL &&
        hop.state != ATBUS_HOP_CONNECTING) {
        /* Distinct answers: a name the routes know but cannot reach,
         * and a name nothing here knows. */
        *rc = atb_route_find(&node->routes, peer) != NULL ? ATBUS_ENOROUTE
                                                          : ATBUS_ENOTCONN;
        return NULL;
    }
    p = node_peer_remote(node, peer, 0);
    *rc = p != NULL ? ATBUS_OK : ATBUS_ENOMEM;
    return p;
}

int
atbus_node_send(atbus_node *node, const char *peer, int64_t stream_id,
                const void *data, size_t len)
{
    if (node == NULL || peer == NULL || stream_id < 0 ||
        (data == NULL && len != 0)) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    if (len > node->cfg.max_message) {
        return ATBUS_EMSGSIZE;
    }
    int rc;
    node_peer *p = stream_peer(node, peer, &rc);
    if (p == NULL) {
        return rc;
    }
    rc = atb_sengine_send(p->eng, stream_id, data, len);
    if (rc == ATBUS_EWOULDBLOCK) {
        p->want_writable = 1;
        node->stats.sends_would_block++;
        return rc;
    }
    if (rc != ATBUS_OK) {
        return rc;
    }
    node->stats.messages_out++;
    node->stats.bytes_out += len;
    /* Idle: out now. Busy: later in this turn, together with whatever
     * else is sent meanwhile. */
    node_conn *first = p->conns != NULL ? p->conns : p->via;
    if (p->flush_pending ||
        (first != NULL && atb_conn_queued(first->conn) != 0)) {
        node_stream_schedule(p);
    } else {
        node_stream_flush(p);
    }
    return ATBUS_OK;
}

int
atbus_node_finish(atbus_node *node, const char *peer, int64_t stream_id)
{
    if (node == NULL || peer == NULL || stream_id < 0) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    int rc;
    node_peer *p = stream_peer(node, peer, &rc);
    if (p == NULL) {
        return rc;
    }
    rc = atb_sengine_finish(p->eng, stream_id);
    if (rc == ATBUS_OK) {
        node_stream_schedule(p);
    }
    return rc;
}

int
atbus_node_conn_stats(atbus_node *node, const char *peer, size_t index,
                      atbus_conn_stats *out)
{
    if (node == NULL || peer == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    node_peer *p = node_peer_find(node, peer);
    if (p == NULL) {
        return ATBUS_ENOTCONN;
    }
    node_conn *nc = p->conns;
    for (size_t i = 0; nc != NULL && i < index; i++) {
        nc = nc->peer_next;
    }
    atb_spath_stats ps;
    if (nc == NULL ||
        atb_sengine_path_stats(p->eng, nc->path_id, &ps) != ATBUS_OK) {
        return ATBUS_ENOTFOUND;
    }
    memset(out, 0, sizeof(*out));
    out->channel = atb_url_scheme_name(nc->conn->tp->scheme);
    out->packets_in = ps.packets_in;
    out->packets_out = ps.packets_out;
    out->fragments_in = ps.fragments_in;
    out->fragments_out = ps.fragments_out;
    out->bytes_in = ps.bytes_in;
    out->bytes_out = ps.bytes_out;
    out->acks_in = ps.acks_in;
    out->acks_out = ps.acks_out;
    out->retransmissions = ps.retransmissions;
    out->losses = ps.losses;
    out->loss_rate =
        ps.packets_out != 0 ? (double)ps.losses / (double)ps.packets_out : 0.0;
    out->srtt_us = ps.rtt.srtt_us;
    out->rtt_samples = ps.rtt.samples;
    if (ps.rtt.samples != 0) {
        double n = (double)ps.rtt.samples;
        out->rtt_mean_us = ps.rtt.sum_us / n;
        out->rtt_variance_us2 =
            ps.rtt.sum_sq_us / n - out->rtt_mean_us * out->rtt_mean_us;
    }
    memcpy(out->rtt_buckets, ps.rtt.buckets, sizeof(out->rtt_buckets));
    return ATBUS_OK;
}

int
atbus_node_stream_stats(atbus_node *node, const char *peer, int64_t stream_id,
                        atbus_stream_stats *out)
{
    if (node == NULL || peer == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    node_peer *p = node_peer_find(node, peer);
    if (p == NULL) {
        return ATBUS_ENOTCONN;
    }
    atb_sstream_stats ss;
    if (atb_sengine_stream_stats(p->eng, stream_id, &ss) != ATBUS_OK) {
        return ATBUS_ENOTFOUND;
    }
    /* Units count one end mark per message on top of its bytes. */
    memset(out, 0, sizeof(*out));
    out->messages_out = ss.messages_out;
    out->messages_in = ss.messages_in;
    out->bytes_out = ss.bytes_out;
    out->bytes_in = ss.bytes_in;
    out->messages_unacked = ss.messages_unacked;
    out->retransmitted_bytes = ss.retransmitted_units;
    out->duplicate_bytes = ss.dup_units;
    out->refused_bytes = ss.refused_units;
    out->would_block = ss.would_block;
    return ATBUS_OK;
}
