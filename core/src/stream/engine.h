/*
 * The stream engine: reliable, ordered message streams between this node
 * and one peer, over any number of connections ("paths") to it.
 *
 * Sans-I/O, in the manner of ngtcp2: the engine never touches an fd, a
 * clock or a lock. Its inputs are received packets and acknowledgements,
 * RTT samples and the current time; its outputs are the frames to send,
 * per path, and the time of its next deadline. The node feeds it from
 * the loop; the tests feed it through a simulated lossy network.
 *
 *   send        atb_sengine_send queues a message on a stream (copied)
 *   write       atb_sengine_write plans the next frame for a path: an
 *               acknowledgement, a retransmission or new data;
 *               atb_sengine_commit records it once the transport took it
 *   input       atb_sengine_on_packet / atb_sengine_on_ack
 *   time        atb_sengine_expiry / atb_sengine_on_expiry
 *
 * Offsets count units (sendbuf.h): a message of n bytes takes n + 1, and
 * a finished stream's FIN one more. Each path cuts packets by its own
 * payload size; a packet may carry the end of one message and the start
 * of the next. Loss is found three ways on datagram paths: a later packet
 * of the same path arrived (the ack's received_max_offset ends exactly
 * at it) while an earlier one did not, the ack offset stops at a packet
 * that was overtaken, or the retransmission timer fires. Reliable paths
 * (byte streams, shared memory) never retransmit while they live; when
 * one is removed, what it carried and was not acknowledged is resent on
 * the others. Acknowledged units are final.
 *
 * Stream ids below zero are internal (control) and are always served
 * before user streams, so user data cannot starve them.
 */
#ifndef ATB_STREAM_ENGINE_H
#define ATB_STREAM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "stream/rtt.h"

typedef struct atb_sengine atb_sengine;

/* Worst-case protobuf bytes around one fragment's data in a packet. */
#define ATB_SFRAG_OVERHEAD 12
/* Fragments in one planned packet, and streams in one acknowledgement. */
#define ATB_SPKT_MAX_FRAGS 32
#define ATB_SACK_MAX 16

/* packet_data.flags the engine reads and writes. */
#define ATB_SPKT_FINISH_STREAM 0x1
#define ATB_SPKT_RESET_OFFSET 0x4

/* Path properties. */
#define ATB_SPATH_RELIABLE 0x1u /* in order, no loss while it lives */

typedef struct atb_sengine_config {
    /* Units a stream holds unacknowledged (queued or in flight) before
     * send returns ATBUS_EWOULDBLOCK; also how far beyond its delivery
     * point a receiving stream holds data. Must exceed max_message. */
    size_t stream_window;
    /* Units a receiving stream holds beyond its delivery point; 0: the
     * stream window. Larger than the peer's window, nothing is refused. */
    size_t recv_window;
    size_t max_message;
    /* Units in flight on one datagram path, at most. */
    size_t datagram_inflight;
    /* Longest an acknowledgement waits to be merged with others. */
    uint64_t ack_delay_us;
    /* Packets received before an acknowledgement goes out at once. */
    unsigned ack_every_datagram;
    unsigned ack_every_reliable;
    uint64_t rto_initial_us;
    uint64_t rto_min_us;
    uint64_t rto_max_us;
} atb_sengine_config;

typedef struct atb_sengine_cbs {
    /* A complete message, in order, once. data lives until return. */
    void (*on_message)(int64_t stream_id, const uint8_t *data, size_t len,
                       void *arg);
    /* Acknowledgements freed window space on a stream whose send
     * returned ATBUS_EWOULDBLOCK. */
    void (*on_writable)(int64_t stream_id, void *arg);
    /* The peer finished the stream and everything before was delivered. */
    void (*on_stream_end)(int64_t stream_id, void *arg);
} atb_sengine_cbs;

typedef struct atb_sfrag {
    const uint8_t *data;
    size_t len;
    int has_more; /* the message continues in a later fragment */
} atb_sfrag;

/* A data packet, as planned for sending or as received. */
typedef struct atb_spacket {
    int64_t stream_id;
    int64_t offset;
    int32_t flags;
    int64_t timepoint_us;
    const atb_sfrag *frags;
    size_t nfrags;
} atb_spacket;

typedef struct atb_sack {
    int64_t stream_id;
    int64_t ack_offset;   /* every unit below is received */
    int64_t received_max; /* one past the highest unit received */
} atb_sack;

enum atb_sout_kind {
    ATB_SOUT_PACKET = 1,
    ATB_SOUT_ACK,
};

/* One planned frame. The fragments point into the engine's buffers and
 * stay valid until the next call that takes input or commits. */
typedef struct atb_sout {
    enum atb_sout_kind kind;
    atb_spacket packet;
    atb_sack acks[ATB_SACK_MAX];
    size_t nacks;
    int64_t echo_timepoint_us; /* 0: nothing to echo */
    int64_t ack_delay_us;
    /* The plan, for commit. */
    atb_sfrag frag_store[ATB_SPKT_MAX_FRAGS];
    void *plan_stream;
    void *plan_rec; /* the lost range being resent, or NULL */
    int64_t plan_end;
    size_t payload; /* bytes of fragment data */
} atb_sout;

typedef struct atb_spath_stats {
    uint64_t packets_out;
    uint64_t packets_in;
    uint64_t fragments_out;
    uint64_t fragments_in;
    uint64_t bytes_out; /* fragment data */
    uint64_t bytes_in;
    uint64_t acks_out;
    uint64_t acks_in;
    uint64_t retransmissions; /* packets sent again on this path */
    uint64_t losses;          /* packets of this path declared lost */
    uint64_t rto_expiries;
    atb_rtt rtt;
} atb_spath_stats;

typedef struct atb_sstream_stats {
    uint64_t messages_out;
    uint64_t messages_in;
    uint64_t bytes_out; /* message bytes queued */
    uint64_t bytes_in;  /* message bytes delivered */
    uint64_t retransmitted_units;
    uint64_t dup_units;        /* received again and dropped */
    uint64_t refused_units;    /* beyond the receive window, dropped */
    uint64_t would_block;      /* sends refused: window full */
    int64_t acked;             /* send side: acknowledged offset */
    int64_t queued_units;      /* send side: held, not yet acknowledged */
    uint64_t messages_unacked; /* send side: not wholly acknowledged */
    int64_t received;          /* receive side: in-order offset */
} atb_sstream_stats;

/* atb_sengine_config_default: 8 MiB window, 1 MiB messages, 256 KiB in
 * flight per datagram path, 1 ms ack delay, acks every 2 datagrams or 32
 * reliable packets, RTO 200 ms initially, within [2 ms, 5 s]. */
void atb_sengine_config_default(atb_sengine_config *cfg);

/*
 * atb_sengine_new creates an engine for one peer. cfg is copied; cbs and
 * arg are kept. Returns ATBUS_OK, ATBUS_EINVAL (window not above
 * max_message, zero limits) or ATBUS_ENOMEM.
 */
int atb_sengine_new(atb_sengine **out, const atb_sengine_config *cfg,
                    const atb_sengine_cbs *cbs, void *arg);

/* atb_sengine_free releases e and every message it holds; NULL is a
 * no-op. Callbacks must not free their engine. */
void atb_sengine_free(atb_sengine *e);

/*
 * atb_sengine_path_add adds a path: max_payload bytes of fragments and
 * their overhead per packet (>= 64), flags ATB_SPATH_*. Returns
 * ATBUS_OK, ATBUS_EEXIST, ATBUS_EINVAL or ATBUS_ENOMEM.
 */
int atb_sengine_path_add(atb_sengine *e, uint32_t id, size_t max_payload,
                         unsigned flags);

/* atb_sengine_path_remove forgets a path; what it carried and was not
 * acknowledged is resent on the others. Unknown ids are ignored. */
void atb_sengine_path_remove(atb_sengine *e, uint32_t id);

/*
 * atb_sengine_send copies a message onto a stream (opened by its first
 * send). Returns ATBUS_OK, ATBUS_EWOULDBLOCK (window full: nothing
 * queued; on_writable follows), ATBUS_EMSGSIZE, ATBUS_ECLOSED (the
 * stream was finished) or ATBUS_ENOMEM.
 */
int atb_sengine_send(atb_sengine *e, int64_t stream_id, const void *data,
                     size_t len);

/* atb_sengine_finish ends a stream after what is queued (FINISH_STREAM).
 * Returns ATBUS_OK, ATBUS_ECLOSED (already finished) or ATBUS_ENOMEM. */
int atb_sengine_finish(atb_sengine *e, int64_t stream_id);

/*
 * atb_sengine_on_packet takes a data packet received on a path and
 * delivers the messages it completes. Returns ATBUS_OK, ATBUS_ENOMEM
 * (the packet is dropped and will come again) or ATBUS_EFRAME_INVALID
 * (the packet breaks a protocol rule: close the connection).
 */
int atb_sengine_on_packet(atb_sengine *e, uint32_t path, const atb_spacket *pkt,
                          uint64_t now_us);

/*
 * atb_sengine_on_ack takes an acknowledgement received on a path:
 * echo_timepoint_us (0: none) and ack_delay_us give an RTT sample.
 * Returns ATBUS_OK or ATBUS_EFRAME_INVALID (it acknowledges units never
 * sent).
 */
int atb_sengine_on_ack(atb_sengine *e, uint32_t path, const atb_sack *acks,
                       size_t nacks, int64_t echo_timepoint_us,
                       int64_t ack_delay_us, uint64_t now_us);

/* atb_sengine_rtt_sample adds an RTT measured outside the engine (ping). */
void atb_sengine_rtt_sample(atb_sengine *e, uint32_t path, int64_t rtt_us);

/*
 * atb_sengine_write plans the next frame for a path into *out: a due
 * acknowledgement first, then control streams, then retransmissions and
 * new data, user streams in turn. Returns 1 when a frame was planned, 0
 * when the path has nothing to send now, or ATBUS_ENOMEM (try again
 * later). Nothing changes until atb_sengine_commit, so a frame the
 * transport refused is planned again.
 */
int atb_sengine_write(atb_sengine *e, uint32_t path, uint64_t now_us,
                      atb_sout *out);

/* atb_sengine_commit records a planned frame as sent on path, with no
 * other engine call in between; it cannot fail (write reserved what it
 * needs). out->packet.timepoint_us is what went on the wire. */
void atb_sengine_commit(atb_sengine *e, uint32_t path, uint64_t now_us,
                        atb_sout *out);

/* atb_sengine_expiry returns the time of the next deadline, or
 * UINT64_MAX when nothing waits. */
uint64_t atb_sengine_expiry(const atb_sengine *e);

/* atb_sengine_on_expiry handles every deadline at or before now; frames
 * it makes due come from atb_sengine_write. */
void atb_sengine_on_expiry(atb_sengine *e, uint64_t now_us);

/*
 * atb_sengine_peer_reset tells the engine the peer lost its state (a new
 * process took the name): receiving streams start afresh, and every send
 * stream goes back to its first unacknowledged message, which is resent
 * with RESET_OFFSET so the new peer starts there.
 */
void atb_sengine_peer_reset(atb_sengine *e);

/*
 * atb_sengine_abandon gives up every user stream's unacknowledged
 * messages (their count goes to *messages): they are dropped and the
 * streams go on after them. The next packet of each such stream carries
 * RESET_OFFSET, so the peer skips what it may have half received and
 * the offsets of both sides keep agreeing; a FIN not yet acknowledged is
 * given up too (the stream stays finished).
 */
void atb_sengine_abandon(atb_sengine *e, uint64_t *messages);

/* atb_sengine_unacked returns the messages and units queued on user
 * streams and not yet acknowledged (what would be lost if the peer never
 * came back). */
void atb_sengine_unacked(const atb_sengine *e, uint64_t *messages,
                         uint64_t *units);

/* atb_sengine_stream_stats / atb_sengine_path_stats copy counters.
 * Return ATBUS_OK or ATBUS_ENOTFOUND. */
int atb_sengine_stream_stats(const atb_sengine *e, int64_t stream_id,
                             atb_sstream_stats *out);
int atb_sengine_path_stats(const atb_sengine *e, uint32_t path,
                           atb_spath_stats *out);

#endif /* ATB_STREAM_ENGINE_H */
