/*
 * Registered peers: a hash table by name, each peer with its connections
 * kept best channel first so a send takes the head of the list.
 */
#include "node/node_internal.h"

#include <atbus/error.h>

#include <string.h>
#include <xxhash.h>

#include "common/alloc.h"

static size_t
slot_of(const atbus_node *node, const char *name)
{
    return (size_t)XXH3_64bits(name, strlen(name)) & (node->peers_cap - 1);
}

node_peer *
node_peer_find(const atbus_node *node, const char *name)
{
    if (node->peers_cap == 0) {
        return NULL;
    }
    for (node_peer *p = node->peers[slot_of(node, name)]; p != NULL;
         p = p->hash_next) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* peers_grow keeps the load factor at or below one. */
static int
peers_grow(atbus_node *node)
{
    if (node->npeers < node->peers_cap) {
        return ATBUS_OK;
    }
    size_t cap = node->peers_cap == 0 ? 16 : node->peers_cap * 2;
    node_peer **table = atb_calloc(cap, sizeof(*table));
    if (table == NULL) {
        return ATBUS_ENOMEM;
    }
    size_t old_cap = node->peers_cap;
    node_peer **old = node->peers;
    node->peers = table;
    node->peers_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        node_peer *p = old[i];
        while (p != NULL) {
            node_peer *next = p->hash_next;
            size_t s = slot_of(node, p->name);
            p->hash_next = table[s];
            table[s] = p;
            p = next;
        }
    }
    atb_free(old);
    return ATBUS_OK;
}

void
node_peer_free(node_peer *p)
{
    node_stream_close(p);
    atb_free(p->name);
    atb_free(p->hostname);
    atb_free(p->namespace_name);
    atb_free(p->type);
    atb_free(p);
}

/* peer_identity copies reg's identity into p. Returns ATBUS_OK or
 * ATBUS_ENOMEM (p unchanged). */
static int
peer_identity(node_peer *p, const atb_pb_register *reg)
{
    char *hostname = atb_strdup(reg->hostname);
    char *ns = atb_strdup(reg->namespace_name);
    char *type = atb_strdup(reg->type);
    if (hostname == NULL || ns == NULL || type == NULL) {
        atb_free(hostname);
        atb_free(ns);
        atb_free(type);
        return ATBUS_ENOMEM;
    }
    atb_free(p->hostname);
    atb_free(p->namespace_name);
    atb_free(p->type);
    p->hostname = hostname;
    p->namespace_name = ns;
    p->type = type;
    p->pid = reg->pid;
    p->incarnation = reg->incarnation;
    return ATBUS_OK;
}

static node_peer *
peer_new(atbus_node *node, const atb_pb_register *reg)
{
    node_peer *p = atb_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->name = atb_strdup(reg->name);
    if (p->name == NULL || peer_identity(p, reg) != ATBUS_OK ||
        node_stream_open(node, p) != ATBUS_OK) {
        node_peer_free(p);
        return NULL;
    }
    return p;
}

/* peer_must_reset: a peer without connections comes back. If it is
 * another process, or says it lost this node's streams, both sides start
 * their streams afresh; the acceptor's answer tells the dialer. */
static int
peer_must_reset(const atbus_node *node, const node_peer *p,
                const atb_pb_register *reg)
{
    return p->conns == NULL && (reg->incarnation != p->incarnation ||
                                reg->peer_incarnation != node->incarnation);
}

node_peer *
node_peer_remote(atbus_node *node, const char *name, uint64_t incarnation)
{
    node_peer *p = node_peer_find(node, name);
    if (p != NULL) {
        if (incarnation != 0 && p->conns == NULL) {
            if (p->incarnation != 0 && p->incarnation != incarnation) {
                /* The source restarted: its old streams are gone. */
                atb_sengine_peer_reset(p->eng);
            }
            p->incarnation = incarnation;
        }
        return p;
    }
    if (peers_grow(node) != ATBUS_OK) {
        return NULL;
    }
    p = atb_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->name = atb_strdup(name);
    p->hostname = atb_strdup("");
    p->namespace_name = atb_strdup("");
    p->type = atb_strdup("node");
    p->incarnation = incarnation;
    if (p->name == NULL || p->hostname == NULL || p->namespace_name == NULL ||
        p->type == NULL || node_stream_open(node, p) != ATBUS_OK) {
        node_peer_free(p);
        return NULL;
    }
    size_t s = slot_of(node, p->name);
    p->hash_next = node->peers[s];
    node->peers[s] = p;
    node->npeers++;
    /* It waits for a route at most this long. */
    node_stream_linger(p);
    return p;
}

uint64_t
node_peer_incarnation_for(const atbus_node *node, const node_conn *nc,
                          const char *name)
{
    if (name == NULL) {
        name = nc->target != NULL ? nc->target->last_peer : NULL;
    }
    const node_peer *p = name != NULL ? node_peer_find(node, name) : NULL;
    return p != NULL ? p->incarnation : 0;
}

uint64_t
node_peer_answer_incarnation(const atbus_node *node, const atb_pb_register *reg)
{
    const node_peer *p = node_peer_find(node, reg->name);
    return p != NULL && !peer_must_reset(node, p, reg) ? p->incarnation : 0;
}

/* insert_conn keeps the list sorted by rank; equal ranks keep arrival
 * order, so the first connection of a channel stays the one in use. */
static void
insert_conn(node_peer *p, node_conn *nc)
{
    node_conn **pp = &p->conns;
    while (*pp != NULL && (*pp)->rank <= nc->rank) {
        pp = &(*pp)->peer_next;
    }
    nc->peer_next = *pp;
    *pp = nc;
    p->nconns++;
}

int
node_peer_attach(atbus_node *node, node_conn *nc, const atb_pb_register *reg)
{
    node_peer *p = node_peer_find(node, reg->name);
    int was_down = p == NULL || p->conns == NULL;
    if (p != NULL && p->conns == NULL) {
        /* Back within peer_linger_ms. */
        int reset = peer_must_reset(node, p, reg);
        if (peer_identity(p, reg) != ATBUS_OK) {
            return ATBUS_ENOMEM;
        }
        if (reset) {
            atb_sengine_peer_reset(p->eng);
        }
        p->linger_until_us = 0;
    } else if (p == NULL) {
        if (peers_grow(node) != ATBUS_OK) {
            return ATBUS_ENOMEM;
        }
        p = peer_new(node, reg);
        if (p == NULL) {
            return ATBUS_ENOMEM;
        }
        size_t s = slot_of(node, p->name);
        p->hash_next = node->peers[s];
        node->peers[s] = p;
        node->npeers++;
    }
    nc->peer = p;
    if (node_stream_path_add(p, nc) != ATBUS_OK) {
        nc->peer = NULL;
        if (p->conns == NULL) {
            node_stream_linger(p); /* a new peer with nothing goes soon */
        }
        return ATBUS_ENOMEM;
    }
    insert_conn(p, nc);
    p->via = NULL; /* its own connections carry it now */
    p->registered = 1;
    node_route_peer_up(node, reg);
    /* A new neighbour may be the way to peers that wait for a route. */
    for (size_t i = 0; i < node->peers_cap; i++) {
        for (node_peer *q = node->peers[i]; q != NULL; q = q->hash_next) {
            if (q->conns == NULL && q->eng != NULL) {
                node_stream_schedule(q);
            }
        }
    }
    if (nc->target != NULL && (nc->target->last_peer == NULL ||
                               strcmp(nc->target->last_peer, p->name) != 0)) {
        char *name = atb_strdup(p->name);
        if (name != NULL) {
            atb_free(nc->target->last_peer);
            nc->target->last_peer = name;
        }
    }
    if (was_down && node->cbs.on_peer_up != NULL && !node->freeing) {
        node_peer_fill_info(node, p);
        node->cbs.on_peer_up(node, &node->info, node->cb_arg);
    }
    return ATBUS_OK;
}

void
node_peer_detach(node_conn *nc, int err)
{
    node_peer *p = nc->peer;
    atbus_node *node = nc->node;
    for (node_conn **pp = &p->conns; *pp != NULL; pp = &(*pp)->peer_next) {
        if (*pp == nc) {
            *pp = nc->peer_next;
            p->nconns--;
            break;
        }
    }
    node_stream_path_remove(p, nc);
    nc->peer = NULL;
    nc->peer_next = NULL;
    if (p->conns != NULL) {
        return;
    }
    node_route_peer_down(node, p->name);
    if (node->cbs.on_peer_down != NULL && !node->freeing) {
        node->cbs.on_peer_down(node, p->name, err, node->cb_arg);
    }
    if (err == ATBUS_ECLOSED) {
        /* It shut down (or this node closed it): nobody comes back for
         * its streams. */
        uint64_t messages;
        uint64_t units;
        atb_sengine_unacked(p->eng, &messages, &units);
        node_peer_unlink(node, p);
        node_route_peer_gone(node, p->name);
        if (!node->closed) { /* atbus_node_close reported them */
            node_report_undelivered(node, p->name, messages, err);
        }
        node_peer_free(p);
        return;
    }
    /* Lost rather than closed: its streams wait for it to come back. */
    node_stream_linger(p);
}

void
node_peer_unlink(atbus_node *node, node_peer *p)
{
    node_peer **pp = &node->peers[slot_of(node, p->name)];
    while (*pp != p) {
        pp = &(*pp)->hash_next;
    }
    *pp = p->hash_next;
    node->npeers--;
}

void
node_peer_fill_info(atbus_node *node, const node_peer *p)
{
    const node_conn *best = p->conns;
    node->info = (atbus_peer_info){
        .name = p->name,
        .hostname = p->hostname,
        .namespace_name = p->namespace_name,
        .type = p->type,
        .pid = p->pid,
        .channel = best ? atb_url_scheme_name(best->conn->tp->scheme) : "",
        .connections = p->nconns,
        .rtt_us = best ? best->rtt_us : -1,
    };
}

void
node_peers_flush(atbus_node *node)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        for (node_peer *p = node->peers[i]; p != NULL; p = p->hash_next) {
            node_stream_flush(p);
        }
    }
}

void
node_peers_report_undelivered(atbus_node *node, int err)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        for (node_peer *p = node->peers[i]; p != NULL; p = p->hash_next) {
            uint64_t messages;
            uint64_t units;
            atb_sengine_unacked(p->eng, &messages, &units);
            node_report_undelivered(node, p->name, messages, err);
        }
    }
}

void
node_peers_free(atbus_node *node)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        node_peer *p = node->peers[i];
        while (p != NULL) {
            node_peer *next = p->hash_next;
            uint64_t messages;
            uint64_t units;
            atb_sengine_unacked(p->eng, &messages, &units);
            if (!node->closed) { /* atbus_node_close reported them */
                node->stats.messages_undelivered += messages;
            }
            node_peer_free(p);
            p = next;
        }
    }
    atb_free(node->peers);
    node->peers = NULL;
    node->peers_cap = 0;
    node->npeers = 0;
}
