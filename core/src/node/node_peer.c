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

static void
peer_free(node_peer *p)
{
    atb_free(p->name);
    atb_free(p->hostname);
    atb_free(p->namespace_name);
    atb_free(p->type);
    atb_free(p->streams);
    atb_free(p);
}

static node_peer *
peer_new(const atb_pb_register *reg)
{
    node_peer *p = atb_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->name = atb_strdup(reg->name);
    p->hostname = atb_strdup(reg->hostname);
    p->namespace_name = atb_strdup(reg->namespace_name);
    p->type = atb_strdup(reg->type);
    p->pid = reg->pid;
    if (p->name == NULL || p->hostname == NULL || p->namespace_name == NULL ||
        p->type == NULL) {
        peer_free(p);
        return NULL;
    }
    return p;
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
    if (p != NULL) {
        nc->peer = p;
        insert_conn(p, nc);
        return ATBUS_OK;
    }
    if (peers_grow(node) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    p = peer_new(reg);
    if (p == NULL) {
        return ATBUS_ENOMEM;
    }
    size_t s = slot_of(node, p->name);
    p->hash_next = node->peers[s];
    node->peers[s] = p;
    node->npeers++;
    nc->peer = p;
    insert_conn(p, nc);
    if (node->cbs.on_peer_up != NULL && !node->freeing) {
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
    nc->peer = NULL;
    nc->peer_next = NULL;
    if (p->conns != NULL) {
        return;
    }
    node_peer **pp = &node->peers[slot_of(node, p->name)];
    while (*pp != p) {
        pp = &(*pp)->hash_next;
    }
    *pp = p->hash_next;
    node->npeers--;
    if (node->cbs.on_peer_down != NULL && !node->freeing) {
        node->cbs.on_peer_down(node, p->name, err, node->cb_arg);
    }
    peer_free(p);
}

node_stream *
node_peer_stream(node_peer *peer, int64_t id)
{
    size_t lo = 0;
    size_t hi = peer->nstreams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (peer->streams[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < peer->nstreams && peer->streams[lo].id == id) {
        return &peer->streams[lo];
    }
    if (peer->nstreams == peer->streams_cap) {
        size_t cap = peer->streams_cap == 0 ? 4 : peer->streams_cap * 2;
        node_stream *s = atb_realloc(peer->streams, cap * sizeof(*s));
        if (s == NULL) {
            return NULL;
        }
        peer->streams = s;
        peer->streams_cap = cap;
    }
    memmove(&peer->streams[lo + 1], &peer->streams[lo],
            (peer->nstreams - lo) * sizeof(*peer->streams));
    peer->nstreams++;
    peer->streams[lo] = (node_stream){.id = id};
    return &peer->streams[lo];
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
node_peers_free(atbus_node *node)
{
    for (size_t i = 0; i < node->peers_cap; i++) {
        node_peer *p = node->peers[i];
        while (p != NULL) {
            node_peer *next = p->hash_next;
            peer_free(p);
            p = next;
        }
    }
    atb_free(node->peers);
    node->peers = NULL;
    node->peers_cap = 0;
    node->npeers = 0;
}
