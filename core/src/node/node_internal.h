/*
 * The node's parts and how they fit:
 *
 *   atbus_node     config, loop, listeners, dial targets, connections,
 *                  the peer table (node.c)
 *   node_conn      one transport connection and its life: register
 *                  exchange, keep-alive, close with a reason (node_conn.c)
 *   node_peer      a registered peer: identity, its connections ranked by
 *                  channel, per-stream send offsets (node_peer.c)
 *   node_target    a URL the application asked to keep connected, with
 *                  its redial backoff (node.c)
 *
 * Ownership: the node owns everything. A node_conn lives from dial or
 * accept until its transport's on_close; a node_peer from its first
 * registered connection until its last one is gone.
 */
#ifndef ATB_NODE_NODE_INTERNAL_H
#define ATB_NODE_NODE_INTERNAL_H

#include <atbus/node.h>

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "transport/transport.h"
#include "wire/message.h"

/* close_reason_data.code values, by their short names. */
#define ATB_CLOSE_REASON(name)                                                 \
    ATBUS__PROTOCOL__ATBUS__CLOSE__REASON__ATBUS_CLOSE_REASON_##name

/* The internal stream of register and close messages. */
#define ATB_NODE_CONTROL_STREAM ((int64_t)-1)

typedef struct node_conn node_conn;
typedef struct node_peer node_peer;
typedef struct node_target node_target;
typedef struct node_listener node_listener;

enum node_conn_state {
    NCONN_CONNECTING = 1, /* dialed, transport not open yet */
    NCONN_REGISTERING,    /* open, waiting for the peer's register */
    NCONN_UP,             /* registered: carries the peer's messages */
    NCONN_CLOSING,        /* closing; on_close from the transport pending */
};

struct node_conn {
    atbus_node *node;
    atb_conn *conn;
    node_target *target; /* the connect target it serves, or NULL */
    node_peer *peer;     /* set once UP */
    node_conn *next;     /* node's list */
    node_conn *prev;
    node_conn *peer_next; /* peer's list, best channel first */
    enum node_conn_state state;
    int accepted;
    int rank; /* channel preference: lower is better */
    /* Why the connection is ending; 0 until decided. */
    int close_err;
    int want_writable;
    int finished;    /* closing: half-closed, waiting for the peer's close */
    atb_timer timer; /* register deadline, keep-alive, close linger */
    atb_deferred close_defer;
    uint64_t last_rx_us;
    uint64_t linger_until_us; /* closing: give up flushing at this time */
    int64_t next_ping_id;
    int64_t rtt_us; /* smoothed; -1 before the first pong */
};

typedef struct node_stream {
    int64_t id;
    int64_t send_offset;
    int64_t recv_offset;
} node_stream;

struct node_peer {
    node_peer *hash_next;
    char *name;
    char *hostname;
    char *namespace_name;
    char *type;
    int64_t pid;
    node_conn *conns; /* UP connections, best rank first */
    size_t nconns;
    node_stream *streams; /* few per peer: a sorted array */
    size_t nstreams;
    size_t streams_cap;
};

struct node_target {
    atbus_node *node;
    node_target *next;
    char *url;
    node_conn *nc; /* the live connection, or NULL while waiting */
    uint32_t attempt;
    atb_timer timer; /* redial */
};

struct node_listener {
    atbus_node *node;
    node_listener *next;
    atb_listener *listener;
    char *url;
};

struct atbus_node {
    atb_loop *loop;
    atbus_node_config cfg; /* strings point at the copies below */
    char *name;
    char *hostname;
    char *namespace_name;
    char *type;
    char *listen[ATBUS_NODE_MAX_LISTEN];
    atb_transport_config tcfg;
    atbus_node_callbacks cbs;
    void *cb_arg;
    atbus_node_stats stats;
    node_listener *listeners;
    node_target *targets;
    node_conn *conns;
    node_peer **peers; /* hash table, chained */
    size_t peers_cap;  /* a power of two */
    size_t npeers;
    uint64_t rng;
    int closed;
    int freeing;          /* no callbacks any more */
    atbus_peer_info info; /* storage for atbus_node_peer */
};

/* ---- node_conn.c ---- */

/* node_conn_new wraps a dialed or accepted transport connection. */
int node_conn_new(atbus_node *node, atb_conn *conn, int accepted,
                  node_target *target, node_conn **out);

/* node_conn_start begins the register exchange of an open connection. */
void node_conn_start(node_conn *nc);

/*
 * node_conn_end closes nc because of err. A reason code other than
 * UNKNOWN is sent to the peer first (with message as detail) and the
 * transport is closed on the next turn so the frame is flushed.
 */
void node_conn_end(node_conn *nc, int err, int reason_code,
                   const char *message);

/* node_conn_cbs is the transport callback table of node connections. */
extern const atb_conn_cbs node_conn_cbs;

/* node_conn_rank maps a scheme to its channel preference. */
int node_conn_rank(enum atb_url_scheme scheme);

/* ---- node_peer.c ---- */

/* node_peer_find returns the registered peer called name, or NULL. */
node_peer *node_peer_find(const atbus_node *node, const char *name);

/*
 * node_peer_attach adds an UP connection to the peer named in reg,
 * creating the peer (and reporting it up) if this is its first one.
 * Returns ATBUS_OK, ATBUS_EEXIST (another process holds the name) or
 * ATBUS_ENOMEM.
 */
int node_peer_attach(atbus_node *node, node_conn *nc,
                     const atb_pb_register *reg);

/* node_peer_detach removes nc from its peer; the last one takes the peer
 * down (reported with err) and frees it. */
void node_peer_detach(node_conn *nc, int err);

/* node_peer_stream returns the stream state of id, adding it if new;
 * NULL when out of memory. */
node_stream *node_peer_stream(node_peer *peer, int64_t id);

/* node_peer_fill_info describes peer in node->info. */
void node_peer_fill_info(atbus_node *node, const node_peer *peer);

/* node_peers_free frees the peer table (no callbacks). */
void node_peers_free(atbus_node *node);

/* ---- node.c ---- */

/* node_target_conn_ended schedules the next dial of t. */
void node_target_conn_ended(node_target *t, int registered);

#endif /* ATB_NODE_NODE_INTERNAL_H */
