/*
 * A node of the mesh, the same in this process and in a child: created
 * from its spec, fed the mesh's routes, connected to the peers the plan
 * gave it. Every node is also a receiver: it checks numbered messages
 * (order and content, per source), answers "end <run>" with what it saw
 * and echoes pings; relays forward what is not theirs on their own.
 *
 * The nodes of one process share its thread: demo_pump waits on all
 * their descriptors at once (atbus_node_fd, atbus_node_timeout_ms) and
 * turns every loop, so none starves another.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* The nodes of this process, for demo_pump. */
static demo_node *local_nodes[DEMO_MAX_NODES];
static size_t local_count;

/* rx_index returns the slot of source, or -1. */
static int
rx_index(const demo_node *dn, const char *source)
{
    for (int i = 0; i < DEMO_MAX_NODES; i++) {
        if (strcmp(dn->rx[i].source, source) == 0) {
            return i;
        }
    }
    return -1;
}

const demo_rx *
demo_node_rx(const demo_node *dn, const char *source)
{
    int i = rx_index(dn, source);
    return i >= 0 ? &dn->rx[i] : NULL;
}

/* rx_find returns source's slot, taking a free one for a new source;
 * NULL when the table is full. */
static demo_rx *
rx_find(demo_node *dn, const char *source)
{
    int i = rx_index(dn, source);
    if (i < 0) {
        i = rx_index(dn, "");
        if (i < 0) {
            return NULL;
        }
        memset(&dn->rx[i], 0, sizeof(dn->rx[i]));
        demo_copy(dn->rx[i].source, sizeof(dn->rx[i].source), source);
    }
    return &dn->rx[i];
}

static void
node_on_data(demo_node *dn, const char *source, const uint8_t *data, size_t len)
{
    demo_rx *rx = rx_find(dn, source);
    if (rx == NULL) {
        dn->unexpected++;
        return;
    }
    uint32_t run;
    uint64_t seq;
    if (!demo_parse(data, len, &run, &seq)) {
        rx->damaged++;
        return;
    }
    uint64_t now = demo_now_us();
    if (run != rx->run) {
        /* A new run number starts a fresh count. */
        char keep[DEMO_NAME_MAX];
        demo_copy(keep, sizeof(keep), rx->source);
        memset(rx, 0, sizeof(*rx));
        demo_copy(rx->source, sizeof(rx->source), keep);
        rx->run = run;
        rx->last_at_us = now;
    }
    if (now - rx->last_at_us > rx->max_gap_us) {
        rx->max_gap_us = now - rx->last_at_us;
    }
    rx->last_at_us = now;
    rx->received++;
    if (seq != rx->next_seq) {
        rx->out_of_order++;
    }
    if (seq >= rx->next_seq) {
        rx->next_seq = seq + 1;
    }
}

/* The control stream carries text: "end <run>" to a receiver, "done <run>
 * <received> <next> <damaged> <out of order> <max gap>" back. */
static void
node_on_ctrl(demo_node *dn, const char *source, const uint8_t *data, size_t len)
{
    char text[160];
    if (len >= sizeof(text)) {
        dn->unexpected++;
        return;
    }
    memcpy(text, data, len);
    text[len] = '\0';
    uint32_t run;
    demo_rx d;
    memset(&d, 0, sizeof(d));
    if (sscanf(text, "end %" SCNu32, &run) == 1) {
        const demo_rx *rx = demo_node_rx(dn, source);
        if (rx != NULL && rx->run == run) {
            d = *rx;
        }
        char answer[160];
        int n = snprintf(answer, sizeof(answer),
                         "done %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64
                         " %" PRIu64 " %" PRIu64,
                         run, d.received, d.next_seq, d.damaged, d.out_of_order,
                         d.max_gap_us);
        /* The sender repeats "end" until answered, so a refused answer
         * only costs time. */
        (void)atbus_node_send(dn->node, source, DEMO_STREAM_CTRL, answer,
                              (size_t)n);
        return;
    }
    if (sscanf(text,
               "done %" SCNu32 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64,
               &run, &d.received, &d.next_seq, &d.damaged, &d.out_of_order,
               &d.max_gap_us) == 6) {
        d.run = run;
        demo_copy(d.source, sizeof(d.source), source);
        dn->done = d;
        dn->done_run = run;
        return;
    }
    dn->unexpected++;
}

static void
node_on_message(atbus_node *node, const char *source, int64_t stream_id,
                const void *data, size_t len, void *arg)
{
    demo_node *dn = arg;
    switch (stream_id) {
    case DEMO_STREAM_DATA:
        node_on_data(dn, source, data, len);
        break;
    case DEMO_STREAM_CTRL:
        node_on_ctrl(dn, source, data, len);
        break;
    case DEMO_STREAM_PING:
        /* A lost pong is the sender's to time out. */
        (void)atbus_node_send(node, source, DEMO_STREAM_PONG, data, len);
        break;
    case DEMO_STREAM_PONG: {
        uint32_t run;
        uint64_t seq;
        if (demo_parse(data, len, &run, &seq) && run == dn->pong_run) {
            dn->pong_seq = seq;
            dn->pong_at_us = demo_now_us();
        } else {
            dn->pongs_bad++;
        }
        break;
    }
    default:
        dn->unexpected++;
        break;
    }
}

static void
node_on_undelivered(atbus_node *node, const char *peer, uint64_t messages,
                    int err, void *arg)
{
    (void)node;
    demo_node *dn = arg;
    dn->undelivered_calls++;
    dn->undelivered += messages;
    dn->undelivered_err = err;
    dn->undelivered_at_us = demo_now_us();
    demo_copy(dn->undelivered_peer, sizeof(dn->undelivered_peer), peer);
}

int
demo_node_start(demo_node *dn, const demo_spec *spec)
{
    memset(dn, 0, sizeof(*dn));
    dn->spec = *spec;
    const demo_spec *s = &dn->spec;
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = s->name;
    cfg.hostname = s->hostname;
    cfg.namespace_name = s->namespace_name;
    cfg.type = s->client ? "client" : "node";
    cfg.relay = s->relay;
    cfg.prefer_target_relay = s->prefer_target_relay;
    cfg.ping_interval_ms = DEMO_PING_MS;
    cfg.peer_timeout_ms = DEMO_PEER_TIMEOUT_MS;
    cfg.reconnect_min_ms = DEMO_RECONNECT_MIN_MS;
    cfg.reconnect_max_ms = DEMO_RECONNECT_MAX_MS;
    cfg.peer_linger_ms = DEMO_LINGER_MS;
    for (size_t i = 0; i < s->nups; i++) {
        cfg.upstreams[cfg.upstream_count++] = s->ups[i];
    }
    for (size_t i = 0; i < s->nlisten; i++) {
        cfg.listen[cfg.listen_count++] = s->listen[i];
    }
    int rc = atbus_node_new(&dn->node, &cfg);
    if (rc != ATBUS_OK) {
        snprintf(dn->error, sizeof(dn->error), "atbus_node_new(%s): %s",
                 s->name, atbus_strerror(rc));
        return rc;
    }
    atbus_node_callbacks cbs = {
        .on_message = node_on_message,
        .on_undelivered = node_on_undelivered,
    };
    atbus_node_set_callbacks(dn->node, &cbs, dn);
    if (local_count < DEMO_MAX_NODES) {
        local_nodes[local_count++] = dn;
    }
    rc = atbus_node_start(dn->node);
    if (rc != ATBUS_OK) {
        snprintf(dn->error, sizeof(dn->error), "%s: listen: %s", s->name,
                 atbus_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        const demo_route *r = &s->routes[i];
        const char *ups[DEMO_MAX_UPS];
        for (size_t k = 0; k < r->nups; k++) {
            ups[k] = r->ups[k];
        }
        atbus_route_error err;
        rc = atbus_node_route_set(dn->node, r->name, ups, r->nups, &err);
        if (rc != ATBUS_OK) {
            snprintf(dn->error, sizeof(dn->error),
                     "%s: atbus_node_route_set(%s): %s (%.80s)", s->name,
                     r->name, atbus_strerror(rc), err.text);
            return rc;
        }
    }
    for (size_t i = 0; i < s->ndial; i++) {
        rc = atbus_node_connect(dn->node, s->dial[i]);
        if (rc != ATBUS_OK) {
            snprintf(dn->error, sizeof(dn->error),
                     "%s: atbus_node_connect(%s): %s", s->name, s->dial[i],
                     atbus_strerror(rc));
            return rc;
        }
    }
    return ATBUS_OK;
}

void
demo_node_free(demo_node *dn)
{
    for (size_t i = 0; i < local_count; i++) {
        if (local_nodes[i] == dn) {
            local_nodes[i] = local_nodes[--local_count];
            break;
        }
    }
    atbus_node_free(dn->node);
    dn->node = NULL;
}

int
demo_node_ready(demo_node *dn, char *missing, size_t size)
{
    for (size_t i = 0; i < dn->spec.nexpect; i++) {
        atbus_peer_info info;
        if (atbus_node_peer(dn->node, dn->spec.expect[i], &info) != ATBUS_OK) {
            demo_copy(missing, size, dn->spec.expect[i]);
            return 0;
        }
    }
    return 1;
}

void
demo_node_hop(demo_node *dn, const char *dst, demo_hop *out)
{
    memset(out, 0, sizeof(*out));
    atbus_next_hop hop;
    out->rc = atbus_node_next_hop(dn->node, dst, &hop);
    if (out->rc == ATBUS_OK && hop.kind == ATBUS_HOP_DIRECT &&
        hop.peer[0] == '\0') {
        /* A destination with a connection of its own comes back without
         * its name in peer; DIRECT means the destination itself. */
        demo_copy(hop.peer, sizeof(hop.peer), dst);
    }
    out->kind = hop.kind;
    out->state = hop.state;
    demo_copy(out->peer, sizeof(out->peer), hop.peer[0] ? hop.peer : "-");
    out->relation_rc =
        atbus_node_relation(dn->node, dn->spec.name, dst, &out->relation);
    atbus_peer_info info;
    demo_copy(out->channel, sizeof(out->channel),
              hop.peer[0] != '\0' &&
                      atbus_node_peer(dn->node, hop.peer, &info) == ATBUS_OK
                  ? info.channel
                  : "-");
}

void
demo_hop_format(const demo_hop *h, char *buf, size_t size)
{
    snprintf(buf, size, "hop %d %d %d %s %d %d %s", h->rc, (int)h->kind,
             (int)h->state, h->peer, h->relation_rc, (int)h->relation,
             h->channel);
}

int
demo_hop_scan(const char *line, demo_hop *h)
{
    memset(h, 0, sizeof(*h));
    int kind;
    int state;
    int relation;
    /* The widths follow DEMO_NAME_MAX and the channel field. */
    if (sscanf(line, "hop %d %d %d %63s %d %d %7s", &h->rc, &kind, &state,
               h->peer, &h->relation_rc, &relation, h->channel) != 7) {
        return 0;
    }
    h->kind = (atbus_hop_kind)kind;
    h->state = (atbus_hop_state)state;
    h->relation = (atbus_relation)relation;
    return 1;
}

/* pump_wait_ms shortens a wait to a node's own deadline (-1: none). */
static int
pump_wait_ms(int wait_ms, int node_ms)
{
    return node_ms >= 0 && node_ms < wait_ms ? node_ms : wait_ms;
}

void
demo_pump(int wait_ms)
{
    if (wait_ms > 0 && local_count > 0) {
        struct pollfd fds[DEMO_MAX_NODES];
        int ms = wait_ms;
        for (size_t i = 0; i < local_count; i++) {
            fds[i] = (struct pollfd){
                .fd = atbus_node_fd(local_nodes[i]->node),
                .events = POLLIN,
            };
            ms = pump_wait_ms(ms, atbus_node_timeout_ms(local_nodes[i]->node));
        }
        (void)poll(fds, (nfds_t)local_count, ms);
    }
    for (size_t i = 0; i < local_count; i++) {
        atbus_node_poll(local_nodes[i]->node, 0);
    }
}

void
demo_pump_for(int ms)
{
    uint64_t end = demo_now_us() + (uint64_t)ms * 1000;
    do {
        demo_pump(1);
    } while (demo_now_us() < end);
}
