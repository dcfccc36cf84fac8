/*
 * atbus nodes: a named participant that listens, connects, and exchanges
 * messages with peers by name.
 *
 * A node owns an event loop and every connection it makes or accepts.
 * When two nodes connect they introduce themselves (a register message
 * on an internal stream: name, pid, hostname, namespace, channels and
 * protocol version); only then does the peer exist for the application.
 * A peer reachable over several connections is sent to over the best
 * one: mem (same process) before shm before unix (same host) before TCP
 * and UDP.
 *
 * Driving the loop: atbus_node_run until atbus_node_stop, or from the
 * application's own loop with atbus_node_fd, atbus_node_timeout_ms and
 * atbus_node_poll(node, 0).
 *
 * Threads: a node and everything it hands out belong to the thread that
 * drives it; every callback runs on that thread. Only atbus_node_stop may
 * be called from another thread.
 *
 * Ownership: strings passed in are copied; strings and structures handed
 * to callbacks are borrowed and valid until the callback returns.
 */
#ifndef ATBUS_NODE_H
#define ATBUS_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <atbus/discovery.h>
#include <atbus/error.h>
#include <atbus/export.h>
#include <atbus/route.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct atbus_node atbus_node;

/* Longest node name: a DNS subdomain (RFC 1123, as Kubernetes names). */
#define ATBUS_NAME_MAX 253

/* Listen URLs a config may carry. */
#define ATBUS_NODE_MAX_LISTEN 16

typedef struct atbus_node_config {
    /* Required: the node's name, unique in the mesh; lowercase letters,
     * digits, '-' and '.', labels of 1-63 characters. */
    const char *name;
    /* Where this node runs, sent to peers in the register message (with
     * the pid: same process, same host) for discovery to choose channels
     * by. NULL: the system hostname and "default". */
    const char *hostname;
    const char *namespace_name;
    /* "node" (may dial) or "client" (never dials). NULL: "node". */
    const char *type;
    /* URLs to listen on at atbus_node_start (mem://, shm://, unix://,
     * ipv4://, ipv6://, udp://). */
    const char *listen[ATBUS_NODE_MAX_LISTEN];
    size_t listen_count;
    /* Largest message payload accepted from the application or a peer;
     * default 1 MiB. */
    size_t max_message;
    /* Send window: bytes of one stream queued and not yet acknowledged
     * by the peer before a send returns ATBUS_EWOULDBLOCK; also the bytes
     * a receiving stream holds out of order (twice this), and the queue
     * of one connection. Default 8 MiB; must exceed max_message. Peers
     * should use the same value. */
    size_t send_buffer_limit;
    /* Data area of the node's shm:// rings (its listener's and the inbox
     * of the connections it dials); default 16 MiB. A ring carries
     * messages up to an eighth of it. */
    size_t shm_ring_size;
    /* Keep-alive ping period; default 1000 ms. */
    uint32_t ping_interval_ms;
    /* A connection that receives nothing for this long is declared dead;
     * default 5000 ms. Must exceed ping_interval_ms. With shm://, keep it
     * above 2 s: a writer process that dies in the middle of a record
     * holds up the ring's other writers until the reader's stall
     * recovery (2 s) frees it. */
    uint32_t peer_timeout_ms;
    /* A new connection must register within this time; default 3000 ms. */
    uint32_t register_timeout_ms;
    /* Redial delays of atbus_node_connect: exponential from min to max,
     * with jitter; defaults 100 ms and 10 000 ms. */
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    /* How long a peer's streams wait after its last connection ends, for
     * the peer to come back and get what it has not acknowledged; what
     * is still unacknowledged then is reported by on_undelivered.
     * Default 30 000 ms. */
    uint32_t peer_linger_ms;
    /* Relays this node hangs under, by name, primary first; the first
     * one connected carries traffic to nodes it has no connection to, the
     * others are its backups. Peers learn the list from the register
     * message. The node still has to be connected to them
     * (atbus_node_connect). */
    const char *upstreams[ATBUS_ROUTE_MAX_UPSTREAMS];
    size_t upstream_count;
    /* Non-zero: this node is a relay and forwards frames addressed to
     * other nodes by its next hop towards them. */
    int relay;
    /* Where traffic for a node without a connection goes first: 0 = this
     * node's own upstream, 1 = the relay the destination hangs under. */
    int prefer_target_relay;
    /* Relays a frame may pass; one more is refused with TTL_EXPIRED.
     * Default 16. */
    uint32_t max_hops;
    /* Seed of the reconnect jitter; 0 picks one from the clock and pid. */
    uint64_t seed;
} atbus_node_config;

/* What a node knows of a registered peer. */
typedef struct atbus_peer_info {
    const char *name;
    const char *hostname;
    const char *namespace_name;
    const char *type;
    int64_t pid;
    /* Scheme of the connection sends use now ("mem", "shm", "unix",
     * "ipv4", "ipv6", "udp"). */
    const char *channel;
    /* Registered connections to this peer. */
    size_t connections;
    /* Smoothed ping round trip of the channel in microseconds; -1 before
     * the first pong. */
    int64_t rtt_us;
} atbus_peer_info;

typedef struct atbus_node_callbacks {
    /* A message from peer `source` on stream_id (>= 0). */
    void (*on_message)(atbus_node *node, const char *source, int64_t stream_id,
                       const void *data, size_t len, void *arg);
    /* A peer registered: its first connection is usable. */
    void (*on_peer_up)(atbus_node *node, const atbus_peer_info *peer,
                       void *arg);
    /* A peer's last connection ended. reason: ATBUS_ECLOSED (it shut
     * down), ATBUS_ETIMEDOUT (no traffic for peer_timeout_ms),
     * ATBUS_ECONNRESET (connection lost), or the protocol error that
     * closed it (ATBUS_EFRAME_*). */
    void (*on_peer_down)(atbus_node *node, const char *name, int reason,
                         void *arg);
    /* A send to peer returned ATBUS_EWOULDBLOCK earlier and the peer's
     * acknowledgements have opened the stream's window again. */
    void (*on_writable)(atbus_node *node, const char *peer, void *arg);
    /* A connection ended before its peer registered: url is where it was
     * dialed (NULL for an accepted one) and err why (ATBUS_ECONNREFUSED,
     * ATBUS_EEXIST for a duplicate name, ATBUS_ENOTSUP for a protocol
     * version, ATBUS_EFRAME_INVALID for a malformed register,
     * ATBUS_ETIMEDOUT, ...). Dialed URLs are retried with backoff. */
    void (*on_connect_error)(atbus_node *node, const char *url, int err,
                             void *arg);
    /* Messages accepted by atbus_node_send that the peer never
     * acknowledged are given up: the peer stayed away for
     * peer_linger_ms (err ATBUS_ETIMEDOUT), or the node closed first
     * (ATBUS_ECLOSED: some of them may still arrive, as close flushes
     * what the connections take). Nothing is dropped without this
     * call. */
    void (*on_undelivered)(atbus_node *node, const char *peer,
                           uint64_t messages, int err, void *arg);
} atbus_node_callbacks;

/* Counters of one node since it was created. */
typedef struct atbus_node_stats {
    uint64_t messages_in;
    uint64_t messages_out;
    uint64_t bytes_in; /* message payload bytes */
    uint64_t bytes_out;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t sends_would_block;
    uint64_t connections_accepted;
    uint64_t connections_dialed;
    uint64_t connections_closed;
    /* Connections closed because the peer broke the protocol: bad frames,
     * undecodable messages, data before register. */
    uint64_t protocol_errors;
    /* Register messages refused (duplicate name, version, malformed). */
    uint64_t registers_rejected;
    /* Connections declared dead by the keep-alive timeout. */
    uint64_t peer_timeouts;
    /* Redials of atbus_node_connect targets. */
    uint64_t reconnects;
    /* Frames addressed to another node (no relaying yet). */
    uint64_t frames_misaddressed;
    /* Messages given up (see on_undelivered). */
    uint64_t messages_undelivered;
    /* Frames this node forwarded as a relay. */
    uint64_t frames_forwarded;
    /* Frames a relay could not forward: no route, hop limit, or the next
     * connection's queue full (the sender's stream resends those). Each
     * no-route or hop-limit case is reported back to the source. */
    uint64_t frames_unroutable;
    uint64_t frames_ttl_expired;
    uint64_t frames_relay_dropped;
    /* Route reports refused (a cycle through the upstream lists). */
    uint64_t routes_rejected;
} atbus_node_stats;

/* RTT histogram bucket upper bounds in ms (the last bucket is open). */
#define ATBUS_RTT_BUCKETS 20

/* Counters of one connection to a peer, as the stream layer sees it. */
typedef struct atbus_conn_stats {
    const char *channel; /* scheme; valid until the next call */
    uint64_t packets_in;
    uint64_t packets_out;
    uint64_t fragments_in;
    uint64_t fragments_out;
    uint64_t bytes_in; /* message bytes in packets */
    uint64_t bytes_out;
    uint64_t acks_in;
    uint64_t acks_out;
    uint64_t retransmissions; /* packets sent again on this connection */
    uint64_t losses;          /* packets of this connection found lost */
    double loss_rate;         /* losses / packets_out */
    int64_t srtt_us;          /* smoothed RTT, -1 before a sample */
    double rtt_mean_us;
    double rtt_variance_us2;
    uint64_t rtt_samples;
    /* Samples by RTT: [0,15) [15,30) [30,45) [45,60) [60,90) ... ms, the
     * bounds of DESIGN §12; the last bucket holds 2000 ms and above. */
    uint64_t rtt_buckets[ATBUS_RTT_BUCKETS];
} atbus_conn_stats;

/* Counters of one stream to and from a peer. */
typedef struct atbus_stream_stats {
    uint64_t messages_out;
    uint64_t messages_in;
    uint64_t bytes_out;
    uint64_t bytes_in;
    uint64_t messages_unacked; /* sent, not yet acknowledged */
    uint64_t retransmitted_bytes;
    uint64_t duplicate_bytes; /* received again and dropped */
    uint64_t refused_bytes;   /* beyond the receive window, dropped */
    uint64_t would_block;     /* sends refused: window full */
} atbus_stream_stats;

/*
 * atbus_node_config_default fills cfg with the defaults above; name and
 * listen stay empty. Returns ATBUS_OK or ATBUS_EINVAL (cfg is NULL).
 */
ATBUS_API int atbus_node_config_default(atbus_node_config *cfg);

/*
 * atbus_node_new checks cfg and creates a node with its own event loop;
 * nothing listens until atbus_node_start. Returns ATBUS_OK and *out (free
 * with atbus_node_free), ATBUS_EINVAL (a bad name, type, limit or listen
 * URL count), ATBUS_ENOMEM or ATBUS_ESYSTEM.
 */
ATBUS_API int atbus_node_new(atbus_node **out, const atbus_node_config *cfg);

/*
 * atbus_node_free closes the node if needed (as atbus_node_close) and
 * releases it. No callback runs during or after it. NULL is a no-op.
 */
ATBUS_API void atbus_node_free(atbus_node *node);

/* atbus_node_set_callbacks sets the callbacks (cbs is copied; NULL
 * members are skipped) and their argument. Returns ATBUS_OK or
 * ATBUS_EINVAL. */
ATBUS_API int atbus_node_set_callbacks(atbus_node *node,
                                       const atbus_node_callbacks *cbs,
                                       void *arg);

/* atbus_node_name returns the node's name (owned by the node). */
ATBUS_API const char *atbus_node_name(const atbus_node *node);

/*
 * atbus_node_start listens on every URL of the config. Returns ATBUS_OK
 * or the first listen error (ATBUS_EADDRINVAL, ATBUS_ENOTSUP,
 * ATBUS_EADDRINUSE, ATBUS_EPERM, ...), in which case nothing listens.
 */
ATBUS_API int atbus_node_start(atbus_node *node);

/*
 * atbus_node_listen listens on one more URL. Returns the codes of
 * atbus_node_start, or ATBUS_ECLOSED after atbus_node_close.
 */
ATBUS_API int atbus_node_listen(atbus_node *node, const char *url);

/*
 * atbus_node_connect dials url and keeps a connection there: when it
 * fails or ends it is dialed again after a delay growing from
 * reconnect_min_ms to reconnect_max_ms, with jitter, until
 * atbus_node_disconnect or close. The peer appears through on_peer_up.
 * Returns ATBUS_OK, ATBUS_EADDRINVAL, ATBUS_ENOTSUP, ATBUS_EEXIST (url
 * is already a target), ATBUS_EPERM (a client never dials), ATBUS_ECLOSED
 * or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_connect(atbus_node *node, const char *url);

/*
 * atbus_node_disconnect stops keeping url connected and closes its
 * connection. Returns ATBUS_OK or ATBUS_ENOTFOUND.
 */
ATBUS_API int atbus_node_disconnect(atbus_node *node, const char *url);

/*
 * atbus_node_send queues len bytes as one message to the registered peer
 * `peer` on stream_id (>= 0); the bytes are copied. Streams open on
 * first use. The message is delivered once and in order with the
 * stream's other messages: it is cut into packets per connection, spread
 * over the peer's best connections, acknowledged, resent when lost or
 * when its connection dies, and resent to the peer when it reconnects
 * within peer_linger_ms. Small messages sent while a connection is busy
 * share packets; on an idle one a message leaves at once.
 * Returns ATBUS_OK, ATBUS_ENOTCONN (no peer of that name is connected),
 * ATBUS_EWOULDBLOCK (the stream's window is full: nothing was queued,
 * on_writable follows), ATBUS_EMSGSIZE (len above max_message),
 * ATBUS_ECLOSED (the node, or the stream with atbus_node_finish, is
 * closed), ATBUS_EINVAL or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_send(atbus_node *node, const char *peer,
                              int64_t stream_id, const void *data, size_t len);

/*
 * atbus_node_peer fills *info for a registered peer; the strings are valid
 * until the next call into the node. Returns ATBUS_OK, ATBUS_ENOTCONN or
 * ATBUS_EINVAL.
 */
ATBUS_API int atbus_node_peer(atbus_node *node, const char *name,
                              atbus_peer_info *info);

/*
 * atbus_node_finish ends stream_id towards peer after the messages
 * queued on it (FINISH_STREAM); later sends on it return ATBUS_ECLOSED.
 * A stream id is not reused while the peer stays known. Returns
 * ATBUS_OK, ATBUS_ENOTCONN, ATBUS_ECLOSED, ATBUS_EINVAL or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_finish(atbus_node *node, const char *peer,
                                int64_t stream_id);

/*
 * atbus_node_conn_stats fills *out for the index-th connection of a peer
 * (0 is the best). atbus_node_stream_stats fills *out for a stream to
 * and from a peer. Return ATBUS_OK, ATBUS_ENOTCONN (unknown peer),
 * ATBUS_ENOTFOUND (no such connection or stream) or ATBUS_EINVAL.
 */
ATBUS_API int atbus_node_conn_stats(atbus_node *node, const char *peer,
                                    size_t index, atbus_conn_stats *out);
ATBUS_API int atbus_node_stream_stats(atbus_node *node, const char *peer,
                                      int64_t stream_id,
                                      atbus_stream_stats *out);

/*
 * atbus_node_route_set records that node `name` hangs under the relays
 * `upstreams` (primary first), as discovery reports it; an empty list
 * makes it a root. atbus_node_route_remove forgets it. The node uses
 * these reports to find the next hop towards nodes it is not connected
 * to. Return ATBUS_OK, ATBUS_EROUTE_CYCLE (err says where; nothing
 * changed), ATBUS_EINVAL (a bad name or too many upstreams),
 * ATBUS_ENOTFOUND (remove of an unknown name) or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_route_set(atbus_node *node, const char *name,
                                   const char *const *upstreams, size_t count,
                                   atbus_route_error *err);
ATBUS_API int atbus_node_route_remove(atbus_node *node, const char *name);

/*
 * atbus_node_relation says what y is to x in this node's route view.
 * Returns ATBUS_OK, ATBUS_ENOTFOUND (x or y unknown) or ATBUS_EINVAL.
 */
ATBUS_API int atbus_node_relation(atbus_node *node, const char *x,
                                  const char *y, atbus_relation *out);

/*
 * atbus_node_next_hop fills *hop with where a message to dst would go
 * now: the kind of hop, the peer, and whether it is connected (READY) or
 * not yet (CONNECTING). Returns ATBUS_OK, ATBUS_ENOROUTE (hop->state
 * UNREACHABLE), ATBUS_EINVAL or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_next_hop(atbus_node *node, const char *dst,
                                  atbus_next_hop *hop);

/*
 * atbus_node_follow_registry makes the node use reg's records (borrowed:
 * reg must outlive the node, and is read on the node's thread). When it
 * plans a hop towards a name it takes that name's route record, and those
 * of the relays above it, into its routes; and it dials the name when
 * one of its gateways accepts `self` (atbus_select_gateway): traffic goes
 * through relays until the direct connection is up. Its own upstream
 * relays are dialed by their records now. self (copied) is this node's
 * record: the metadata and host gateways match against. Returns
 * ATBUS_OK, ATBUS_EINVAL (NULL, or self is not a node record of this
 * node's name), ATBUS_ECLOSED or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_node_follow_registry(atbus_node *node, atbus_registry *reg,
                                         const atbus_record *self);

/*
 * atbus_node_use_etcd keeps reg equal to the records under prefix in
 * etcd (endpoints: "http://host:port[,http://host:port...]"), publishes
 * self and this node's route record (its upstreams) in one transaction
 * on a lease kept alive, and follows reg as atbus_node_follow_registry.
 * All of it runs on the node's loop. While etcd is unreachable the node
 * keeps routing on what reg holds (atbus_node_discovery_status says since
 * when). Returns ATBUS_OK, ATBUS_EEXIST (already using etcd), the codes
 * of atbus_node_follow_registry, or ATBUS_ERECORD (self is invalid).
 */
ATBUS_API int atbus_node_use_etcd(atbus_node *node, const char *endpoints,
                                  const char *prefix, atbus_registry *reg,
                                  const atbus_record *self);

typedef struct atbus_discovery_status {
    int synced;              /* the view is confirmed current */
    int stale;               /* no etcd endpoint answers: the view may be old */
    uint64_t stale_since_us; /* the loop's clock, when stale */
    int published;           /* this node's records are on the lease */
    int64_t revision;        /* etcd revision the view reflects */
    size_t rejected;         /* records refused as invalid */
    int err;                 /* the last failure, when stale */
} atbus_discovery_status;

/* atbus_node_discovery_status copies the etcd sync's state. Returns
 * ATBUS_OK, ATBUS_ENOTFOUND (no etcd) or ATBUS_EINVAL. */
ATBUS_API int atbus_node_discovery_status(const atbus_node *node,
                                          atbus_discovery_status *out);

/* atbus_node_get_stats copies the counters. Returns ATBUS_OK or
 * ATBUS_EINVAL. */
ATBUS_API int atbus_node_get_stats(const atbus_node *node,
                                   atbus_node_stats *stats);

/*
 * atbus_node_close shuts the node down: peers are told (close reason
 * shutdown), listeners and reconnects stop, on_peer_down runs for every
 * peer. The node can still be polled and freed. Returns ATBUS_OK.
 */
ATBUS_API int atbus_node_close(atbus_node *node);

/* atbus_node_run turns the loop until atbus_node_stop. Returns ATBUS_OK
 * or ATBUS_ESYSTEM. */
ATBUS_API int atbus_node_run(atbus_node *node);

/* atbus_node_poll runs one loop turn, waiting at most timeout_ms (-1:
 * until something happens). Returns ATBUS_OK or ATBUS_ESYSTEM. */
ATBUS_API int atbus_node_poll(atbus_node *node, int timeout_ms);

/* atbus_node_stop makes atbus_node_run return; safe from any thread and
 * from callbacks. Returns ATBUS_OK. */
ATBUS_API int atbus_node_stop(atbus_node *node);

/* atbus_node_fd returns a descriptor that polls readable when the node has
 * events; an outer loop then calls atbus_node_poll(node, 0). */
ATBUS_API int atbus_node_fd(const atbus_node *node);

/* atbus_node_timeout_ms returns how long an outer loop may sleep before
 * calling atbus_node_poll: 0 for now, -1 for no deadline. */
ATBUS_API int atbus_node_timeout_ms(const atbus_node *node);

#ifdef __cplusplus
}
#endif

#endif /* ATBUS_NODE_H */
