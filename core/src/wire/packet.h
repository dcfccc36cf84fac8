/*
 * Data frames without protobuf-c: the hot path of every send.
 *
 * A data frame is a frame_message with a head and a packet_data holding
 * one fragment. Building it with protobuf-c would copy the payload into a
 * structure and then into the frame; here the fields are written in an
 * order that leaves the fragment's data last, so a frame is
 *
 *   prefix (header, head, packet fields, nested lengths) | data | hash
 *
 * and the payload is gathered straight from the caller's buffer.
 * Protobuf accepts fields in any order, so the result decodes with any
 * protobuf implementation (tests check it against protobuf-c).
 */
#ifndef ATB_WIRE_PACKET_H
#define ATB_WIRE_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Room for any prefix: two 253-byte names plus fields and lengths. */
#define ATB_PACKET_PREFIX_MAX 640

typedef struct atb_packet_desc {
    const char *source;          /* message_head.source; NULL or "" omits it */
    const char *destination;     /* message_head.destination */
    uint64_t source_incarnation; /* message_head.source_incarnation, 0: none */
    int64_t stream_id;
    int64_t stream_offset; /* >= 0 */
    int32_t flags;         /* packet_data.flags */
    int64_t timepoint_us;  /* packet_data.timepoint_microseconds */
    int32_t packet_type;   /* fragment.packet_type */
    int32_t fragment_flag; /* fragment.fragment_flag */
    size_t data_len;       /* bytes of fragment.data that follow the prefix */
} atb_packet_desc;

/*
 * atb_packet_prefix writes the bytes of the frame before fragment.data
 * into out (ATB_PACKET_PREFIX_MAX bytes) and stores their number in
 * *len. The frame is complete after data_len bytes of data and the hash
 * (atb_frame_hash_iov over prefix and data). Returns ATBUS_OK or
 * ATBUS_EINVAL (a name longer than 253 bytes, a negative offset).
 */
int atb_packet_prefix(const atb_packet_desc *d, uint8_t *out, size_t *len);

/* Fragments in one frame built by atb_packet_frame. */
#define ATB_PACKET_MAX_FRAGS 64

typedef struct atb_packet_frag {
    const void *data;
    size_t len;
    int32_t fragment_flag;
} atb_packet_frag;

/* A data frame as gather buffers: prefix, then per fragment its header
 * and its data, then the hash. Lives on the caller's stack. */
typedef struct atb_frame_iov {
    uint8_t prefix[ATB_PACKET_PREFIX_MAX];
    uint8_t frag_hdr[ATB_PACKET_MAX_FRAGS][40];
    uint8_t ack[1200]; /* a whole acknowledge frame (16 streams) */
    uint8_t hash[4];
    struct iovec iov[2 * ATB_PACKET_MAX_FRAGS + 2];
    int iovcnt;
    size_t len; /* bytes of the whole frame */
} atb_frame_iov;

/*
 * atb_packet_frame builds a data frame carrying n fragments (1 <= n <=
 * ATB_PACKET_MAX_FRAGS, or 0 for a packet with flags only) of type
 * d->packet_type; d->data_len and d->fragment_flag are not used. The
 * fragments' data is referenced, not copied. Returns ATBUS_OK or
 * ATBUS_EINVAL (as atb_packet_prefix, or too many fragments).
 */
int atb_packet_frame(const atb_packet_desc *d, const atb_packet_frag *frags,
                     size_t n, atb_frame_iov *out);

typedef struct atb_ack_entry {
    int64_t stream_id;
    int64_t acknowledge_offset;
    int64_t received_max_offset;
} atb_ack_entry;

/*
 * atb_ack_frame writes a whole acknowledge frame (n stream entries, the
 * echoed timepoint and the ack delay; source_incarnation 0 is omitted)
 * into out (cap bytes) and stores its
 * size in *len. Returns ATBUS_OK, ATBUS_EINVAL (a name longer than 253
 * bytes) or ATBUS_ENOBUFS.
 */
int atb_ack_frame(const char *source, const char *destination,
                  uint64_t source_incarnation, const atb_ack_entry *acks,
                  size_t n, int64_t timepoint_us, int64_t ack_delay_us,
                  uint8_t *out, size_t cap, size_t *len);

/* atb_frame_hash_iov returns the frame hash of the concatenated iov
 * buffers, equal to atb_frame_hash over the same bytes in one piece. */
uint32_t atb_frame_hash_iov(const struct iovec *iov, int iovcnt);

#endif /* ATB_WIRE_PACKET_H */
