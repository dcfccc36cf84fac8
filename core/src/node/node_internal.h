/*
 * The node's parts and how they fit:
 *
 *   atbus_node     config, loop, listeners, dial targets, connections,
 *                  the peer table (node.c)
 *   node_conn      one transport connection and its life: register
 *                  exchange, keep-alive, close with a reason (node_conn.c)
 *   node_peer      a registered peer: identity, its connections ranked by
 *                  channel (node_peer.c)
 *   node_stream    a peer's stream engine: its connections are the
 *                  engine's paths; sending, flushing, acks, timers
 *                  (node_stream.c)
 *   node_target    a URL the application asked to keep connected, with
 *                  its redial backoff (node.c)
 *   node_route     the route registry fed by registers and discovery, next
 *                  hop, forwarding as a relay, route notices
 *                  (node_route.c)
 *   discovery      records that say how to reach names: routes pulled
 *                  when a hop is planned, gateways dialed, the etcd sync
 *                  (node_discovery.c)
 *
 * Ownership: the node owns everything. A node_conn lives from dial or
 * accept until its transport's on_close; a node_peer from its first
 * registered connection until peer_linger_ms after its last one is gone
 * (its streams wait there for the peer to come back).
 */
#ifndef ATB_NODE_NODE_INTERNAL_H
#define ATB_NODE_NODE_INTERNAL_H

#include <atbus/discovery.h>
#include <atbus/node.h>

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "route/next_hop.h"
#include "stream/engine.h"
#include "transport/transport.h"
#include "wire/message.h"

/* close_reason_data.code values, by their short names. */
#define ATB_CLOSE_REASON(name)                                                 \
    ATBUS__PROTOCOL__ATBUS__CLOSE__REASON__ATBUS_CLOSE_REASON_##name

/* The internal stream of register and close messages. */
#define ATB_NODE_CONTROL_STREAM ((int64_t)-1)
/* Route notices (ROUTER_NOT_FOUND, TTL_EXPIRED) from relays to a source:
 * one-shot, end to end, not a stream of the engine. */
#define ATB_NODE_ROUTE_STREAM ((int64_t)-2)

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
    int finished;    /* closing: half-closed, waiting for the peer's close */
    atb_timer timer; /* register deadline, keep-alive, close linger */
    atb_deferred close_defer;
    uint64_t last_rx_us;
    uint64_t linger_until_us; /* closing: give up flushing at this time */
    int64_t next_ping_id;
    int64_t rtt_us;   /* smoothed; -1 before the first pong */
    uint32_t path_id; /* the stream engine's name for it, once UP */
    int path_added;
    int blocked; /* the transport refused a frame; on_writable follows */
};

struct node_peer {
    node_peer *hash_next;
    char *name;
    char *hostname;
    char *namespace_name;
    char *type;
    int64_t pid;
    uint64_t incarnation;
    node_conn *conns; /* UP connections, best rank first */
    size_t nconns;
    atbus_node *node;
    atb_sengine *eng;
    atb_timer timer; /* the engine's next deadline, or the linger end */
    atb_deferred flush_defer;
    int flush_pending;
    size_t stripe;            /* the connection whose turn it is */
    int want_writable;        /* a send was refused: tell the application */
    uint64_t linger_until_us; /* no connections: free at this time, or 0 */
    /* Without connections of its own: the connection towards the next
     * hop that carries its traffic, or NULL until one is chosen. */
    node_conn *via;
    int registered; /* it has had a connection of its own */
};

struct node_target {
    atbus_node *node;
    node_target *next;
    char *url;
    node_conn *nc;   /* the live connection, or NULL while waiting */
    char *last_peer; /* who answered last time, for peer_incarnation */
    char *want_peer; /* the name discovery dialed this URL for, or NULL */
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
    char *upstreams[ATBUS_ROUTE_MAX_UPSTREAMS];
    atb_route_registry routes;
    atbus_registry *registry; /* borrowed; NULL without discovery */
    atbus_record self;        /* this node's record, when has_self */
    int has_self;
    struct atb_disc_sync *sync; /* the etcd sync, or NULL */
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
    uint64_t incarnation;
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

/* node_conn_send_command sends one COMMAND fragment (a close reason,
 * optional text data) on stream_id with flags, to destination (NULL: the
 * connection's peer). Returns the codes of atb_conn_send. */
int node_conn_send_command(node_conn *nc, const char *destination,
                           int64_t stream_id, int32_t flags, int code,
                           const char *message, const char *data);

/* node_conn_rank maps a scheme to its channel preference. */
int node_conn_rank(enum atb_url_scheme scheme);

/* ---- node_peer.c ---- */

/* node_peer_find returns the registered peer called name, or NULL. */
node_peer *node_peer_find(const atbus_node *node, const char *name);

/*
 * node_peer_attach adds an UP connection to the peer named in reg,
 * creating the peer (and reporting it up) if this is its first one, or
 * taking back a lingering one (its streams resume, or start afresh when
 * either side lost the other's state). Returns ATBUS_OK or ATBUS_ENOMEM
 * (nc is not attached).
 */
int node_peer_attach(atbus_node *node, node_conn *nc,
                     const atb_pb_register *reg);

/* node_peer_detach removes nc from its peer; the last one takes the peer
 * down (reported with err) and leaves it lingering. */
void node_peer_detach(node_conn *nc, int err);

/* node_peer_incarnation_for is the peer_incarnation to put in a register
 * sent on nc: the incarnation of `name` (NULL: the peer nc's target
 * reached last) whose streams this node holds, or 0. */
uint64_t node_peer_incarnation_for(const atbus_node *node, const node_conn *nc,
                                   const char *name);

/* node_peer_answer_incarnation is the peer_incarnation an acceptor
 * answers reg with: 0 when it holds no streams of that peer, or will
 * start them afresh (see node_peer_attach). */
uint64_t node_peer_answer_incarnation(const atbus_node *node,
                                      const atb_pb_register *reg);

/* node_peer_free frees a peer and its streams (no callbacks). */
void node_peer_free(node_peer *p);

/* node_peer_unlink takes p out of the peer table. */
void node_peer_unlink(atbus_node *node, node_peer *p);

/* node_peer_fill_info describes peer in node->info. */
void node_peer_fill_info(atbus_node *node, const node_peer *peer);

/* node_peers_flush writes what every peer's streams have queued. */
void node_peers_flush(atbus_node *node);

/* node_peers_report_undelivered reports every peer's unacknowledged
 * messages (on_undelivered with err). */
void node_peers_report_undelivered(atbus_node *node, int err);

/* node_peers_free frees the peer table (no callbacks). */
void node_peers_free(atbus_node *node);

/* node_peer_remote returns the peer `name` as reached through relays:
 * the known one, or a new one without connections that waits
 * pending_ms for a route. incarnation (0: unknown) is the source's as
 * its frames say; a different one means a restart: its streams start
 * afresh. NULL when out of memory. */
node_peer *node_peer_remote(atbus_node *node, const char *name,
                            uint64_t incarnation);

/* ---- node_route.c ---- */

/* node_route_init enters the node's own upstreams in its registry. */
int node_route_init(atbus_node *node);

/* node_route_peer_up / _down follow a peer's connections: its reported
 * upstreams (from its register) and whether it is reachable. */
void node_route_peer_up(atbus_node *node, const atb_pb_register *reg);
void node_route_peer_down(atbus_node *node, const char *name);

/* node_route_peer_gone forgets a peer that shut down: its route (unless
 * another node still names it as upstream) and the targets' memory of
 * it, so sends to it fail instead of waiting. */
void node_route_peer_gone(atbus_node *node, const char *name);

/* node_route_conn returns the connection a frame for dst leaves on now:
 * the best one of a connected peer, else the next hop's; NULL when there
 * is none yet. *hop (optional) says why. */
node_conn *node_route_conn(atbus_node *node, const char *dst,
                           atbus_next_hop *hop);

/* node_route_forward passes on a frame that came in on nc for another
 * node, or answers its source with a route notice. */
void node_route_forward(node_conn *nc, const atb_pb_frame *msg);

/* node_route_on_notice handles a route notice addressed to this node. */
void node_route_on_notice(node_conn *nc, const atb_pb_frame *msg);

/* node_route_conn_gone forgets nc as the way to any peer. */
void node_route_conn_gone(atbus_node *node, node_conn *nc);

/* node_route_conn_writable flushes the peers relayed over nc. */
void node_route_conn_writable(atbus_node *node, node_conn *nc);

/* ---- node_discovery.c ---- */

/* node_discovery_routes copies name's route record and those above it
 * from the registry into the node's routes. */
void node_discovery_routes(atbus_node *node, const char *name);

/* node_discovery_dial dials name when one of its gateways accepts this
 * node and it is not connected yet. */
void node_discovery_dial(atbus_node *node, const char *name);

/* node_discovery_free ends the etcd sync and forgets the records. */
void node_discovery_free(atbus_node *node);

/* ---- node_stream.c ---- */

/* node_stream_open gives p its stream engine. Returns ATBUS_OK or
 * ATBUS_ENOMEM. */
int node_stream_open(atbus_node *node, node_peer *p);

/* node_stream_close releases p's engine and timers. */
void node_stream_close(node_peer *p);

/* node_stream_path_add / _remove make nc one of its peer's paths. */
int node_stream_path_add(node_peer *p, node_conn *nc);
void node_stream_path_remove(node_peer *p, node_conn *nc);

/* node_stream_flush writes what the engine has for p's connections now;
 * node_stream_schedule does it at the end of this loop turn. */
void node_stream_flush(node_peer *p);
void node_stream_schedule(node_peer *p);

/* node_stream_on_packet / _on_ack feed a frame received on nc to p's
 * streams (p is nc's peer, or the source of a relayed frame). */
void node_stream_on_packet(node_peer *p, node_conn *nc,
                           const atb_pb_frame *msg);
void node_stream_on_ack(node_peer *p, node_conn *nc, const atb_pb_ack *ack);

/* node_stream_relayed_path makes nc a path of p's streams for traffic
 * that crosses relays. Returns ATBUS_OK or ATBUS_ENOMEM. */
int node_stream_relayed_path(node_peer *p, node_conn *nc);

/* node_report_undelivered counts messages given up for peer and tells
 * the application (on_undelivered with err); 0 messages is a no-op. */
void node_report_undelivered(atbus_node *node, const char *peer,
                             uint64_t messages, int err);

/* node_stream_give_up drops the messages p never acknowledged, reporting
 * them with err through on_undelivered; p's streams go on after them. */
void node_stream_give_up(node_peer *p, int err);

/* node_stream_linger keeps a peer without connections until
 * peer_linger_ms passes: both sides keep their streams that long, so a
 * reconnect resumes them. Then it is freed and what it had not
 * acknowledged is reported undelivered. */
void node_stream_linger(node_peer *p);

/* ---- node.c ---- */

/* node_target_expect notes that the target dialing url is expected to
 * reach peer `name` (so a send to it waits for that connection). */
void node_target_expect(atbus_node *node, const char *url, const char *name);

/* node_target_conn_ended schedules the next dial of t. */
void node_target_conn_ended(node_target *t, int registered);

#endif /* ATB_NODE_NODE_INTERNAL_H */
