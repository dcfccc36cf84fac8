/*
 * Writing data frames field by field (see packet.h). Field numbers come
 * from proto/atbus_protocol.proto; wire types: 0 varint, 2 length-delimited.
 */
#include "wire/packet.h"

#include <atbus/error.h>
#include <atbus/version.h>

#include <string.h>
/* The streaming state lives on the stack, so its layout must be the one
 * compiled here, not the shared library's: inline the implementation. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "wire/frame.h"
#include "wire/varint.h"

#define NAME_MAX_LEN 253

#define TAG(field, wt) ((uint8_t)(((field) << 3) | (wt)))

/* Tags, by message. */
#define FRAME_HEAD TAG(1, 2)
#define FRAME_PACKET TAG(7, 2)
#define FRAME_ACK TAG(8, 2)
#define ACK_STREAMS TAG(1, 2)
#define ACK_TIMEPOINT TAG(2, 0)
#define ACK_DELAY TAG(3, 0)
#define SACK_STREAM_ID TAG(1, 0)
#define SACK_OFFSET TAG(2, 0)
#define SACK_MAX TAG(3, 0)
#define HEAD_SOURCE TAG(1, 2)
#define HEAD_DESTINATION TAG(2, 2)
#define HEAD_INCARNATION TAG(6, 0)
#define PACKET_STREAM_ID TAG(1, 0)
#define PACKET_OFFSET TAG(2, 0)
#define PACKET_CONTENT TAG(3, 2)
#define PACKET_FLAGS TAG(4, 0)
#define PACKET_TIMEPOINT TAG(6, 0)
#define CONTENT_FRAGMENT TAG(1, 2)
#define FRAGMENT_TYPE TAG(1, 0)
#define FRAGMENT_DATA TAG(2, 2)
#define FRAGMENT_FLAG TAG(3, 0)

/* Signed protobuf ints (int32/int64) are varints of the two's-complement
 * 64-bit value: a negative int32 takes ten bytes like an int64. */
static size_t
int_size(int64_t v)
{
    return atb_varint_size((uint64_t)v);
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
    return p + atb_varint_encode(v, p);
}

/* Size of an optional varint field: proto3 omits zero. */
static size_t
field_int_size(int64_t v)
{
    return v == 0 ? 0 : 1 + int_size(v);
}

static uint8_t *
put_field_int(uint8_t *p, uint8_t tag, int64_t v)
{
    if (v != 0) {
        *p++ = tag;
        p = put_varint(p, (uint64_t)v);
    }
    return p;
}

static size_t
field_str_size(size_t n)
{
    return n == 0 ? 0 : 1 + atb_varint_size(n) + n;
}

static uint8_t *
put_field_str(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    if (n != 0) {
        *p++ = tag;
        p = put_varint(p, n);
        memcpy(p, s, n);
        p += n;
    }
    return p;
}

/* frame_head_size returns the size of a message_head with two names and
 * an incarnation (0: omitted). */
static size_t
frame_head_size(size_t src_len, size_t dst_len, uint64_t incarnation)
{
    return field_str_size(src_len) + field_str_size(dst_len) +
           field_int_size((int64_t)incarnation);
}

static uint8_t *
put_frame_head(uint8_t *p, const char *src, size_t src_len, const char *dst,
               size_t dst_len, uint64_t incarnation, size_t head)
{
    *p++ = FRAME_HEAD;
    p = put_varint(p, head);
    p = put_field_str(p, HEAD_SOURCE, src, src_len);
    p = put_field_str(p, HEAD_DESTINATION, dst, dst_len);
    return put_field_int(p, HEAD_INCARNATION, (int64_t)incarnation);
}

static size_t
fragment_size(const atb_packet_desc *d, int32_t flag, size_t data_len)
{
    return field_int_size(d->packet_type) + field_int_size(flag) + 1 +
           atb_varint_size(data_len) + data_len;
}

/* packet_write_prefix writes everything before the first fragment of a
 * frame whose packet content is `content` bytes. */
static int
packet_write_prefix(const atb_packet_desc *d, size_t content, uint8_t *out,
                    size_t *len)
{
    size_t src_len = d->source != NULL ? strlen(d->source) : 0;
    size_t dst_len = d->destination != NULL ? strlen(d->destination) : 0;
    if (src_len > NAME_MAX_LEN || dst_len > NAME_MAX_LEN ||
        d->stream_offset < 0) {
        return ATBUS_EINVAL;
    }
    size_t packet = field_int_size(d->stream_id) +
                    field_int_size(d->stream_offset) +
                    field_int_size(d->flags) + field_int_size(d->timepoint_us) +
                    (content != 0 ? 1 + atb_varint_size(content) + content : 0);
    size_t head = frame_head_size(src_len, dst_len, d->source_incarnation);
    size_t message =
        1 + atb_varint_size(head) + head + 1 + atb_varint_size(packet) + packet;

    uint8_t *p = out;
    p += atb_frame_write_header(ATBUS_PROTOCOL_VERSION, message, p);
    p = put_frame_head(p, d->source, src_len, d->destination, dst_len,
                       d->source_incarnation, head);
    *p++ = FRAME_PACKET;
    p = put_varint(p, packet);
    p = put_field_int(p, PACKET_STREAM_ID, d->stream_id);
    p = put_field_int(p, PACKET_OFFSET, d->stream_offset);
    p = put_field_int(p, PACKET_FLAGS, d->flags);
    p = put_field_int(p, PACKET_TIMEPOINT, d->timepoint_us);
    if (content != 0) {
        *p++ = PACKET_CONTENT;
        p = put_varint(p, content);
    }
    *len = (size_t)(p - out);
    return ATBUS_OK;
}

/* put_fragment_header writes a fragment's tag, length and fields up to
 * its data. */
static uint8_t *
put_fragment_header(uint8_t *p, const atb_packet_desc *d, int32_t flag,
                    size_t data_len)
{
    *p++ = CONTENT_FRAGMENT;
    p = put_varint(p, fragment_size(d, flag, data_len));
    p = put_field_int(p, FRAGMENT_TYPE, d->packet_type);
    p = put_field_int(p, FRAGMENT_FLAG, flag);
    *p++ = FRAGMENT_DATA;
    return put_varint(p, data_len);
}

int
atb_packet_prefix(const atb_packet_desc *d, uint8_t *out, size_t *len)
{
    size_t fragment = fragment_size(d, d->fragment_flag, d->data_len);
    size_t content = 1 + atb_varint_size(fragment) + fragment;
    size_t n;
    int rc = packet_write_prefix(d, content, out, &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    uint8_t *p = put_fragment_header(out + n, d, d->fragment_flag, d->data_len);
    *len = (size_t)(p - out);
    return ATBUS_OK;
}

int
atb_packet_frame(const atb_packet_desc *d, const atb_packet_frag *frags,
                 size_t n, atb_frame_iov *out)
{
    if (n > ATB_PACKET_MAX_FRAGS) {
        return ATBUS_EINVAL;
    }
    size_t content = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = fragment_size(d, frags[i].fragment_flag, frags[i].len);
        content += 1 + atb_varint_size(f) + f;
    }
    size_t len;
    int rc = packet_write_prefix(d, content, out->prefix, &len);
    if (rc != ATBUS_OK) {
        return rc;
    }
    int k = 0;
    out->iov[k].iov_base = out->prefix;
    out->iov[k++].iov_len = len;
    out->len = len;
    for (size_t i = 0; i < n; i++) {
        uint8_t *h = out->frag_hdr[i];
        uint8_t *e =
            put_fragment_header(h, d, frags[i].fragment_flag, frags[i].len);
        out->iov[k].iov_base = h;
        out->iov[k++].iov_len = (size_t)(e - h);
        out->len += (size_t)(e - h);
        if (frags[i].len > 0) {
            /* iovec has no const; the data is only read. */
            out->iov[k].iov_base = (void *)(uintptr_t)frags[i].data;
            out->iov[k++].iov_len = frags[i].len;
            out->len += frags[i].len;
        }
    }
    uint32_t hash = atb_frame_hash_iov(out->iov, k);
    for (int i = 0; i < 4; i++) {
        out->hash[i] = (uint8_t)(hash >> (8 * i));
    }
    out->iov[k].iov_base = out->hash;
    out->iov[k++].iov_len = 4;
    out->len += 4;
    out->iovcnt = k;
    return ATBUS_OK;
}

int
atb_ack_frame(const char *source, const char *destination,
              uint64_t source_incarnation, const atb_ack_entry *acks, size_t n,
              int64_t timepoint_us, int64_t ack_delay_us, uint8_t *out,
              size_t cap, size_t *len)
{
    size_t src_len = source != NULL ? strlen(source) : 0;
    size_t dst_len = destination != NULL ? strlen(destination) : 0;
    if (src_len > NAME_MAX_LEN || dst_len > NAME_MAX_LEN) {
        return ATBUS_EINVAL;
    }
    size_t ack = field_int_size(timepoint_us) + field_int_size(ack_delay_us);
    for (size_t i = 0; i < n; i++) {
        size_t e = field_int_size(acks[i].stream_id) +
                   field_int_size(acks[i].acknowledge_offset) +
                   field_int_size(acks[i].received_max_offset);
        ack += 1 + atb_varint_size(e) + e;
    }
    size_t head = frame_head_size(src_len, dst_len, source_incarnation);
    size_t message =
        1 + atb_varint_size(head) + head + 1 + atb_varint_size(ack) + ack;
    if (ATB_FRAME_HEADER_MAX + message + 4 > cap) {
        return ATBUS_ENOBUFS;
    }
    uint8_t *p = out;
    p += atb_frame_write_header(ATBUS_PROTOCOL_VERSION, message, p);
    p = put_frame_head(p, source, src_len, destination, dst_len,
                       source_incarnation, head);
    *p++ = FRAME_ACK;
    p = put_varint(p, ack);
    for (size_t i = 0; i < n; i++) {
        size_t e = field_int_size(acks[i].stream_id) +
                   field_int_size(acks[i].acknowledge_offset) +
                   field_int_size(acks[i].received_max_offset);
        *p++ = ACK_STREAMS;
        p = put_varint(p, e);
        p = put_field_int(p, SACK_STREAM_ID, acks[i].stream_id);
        p = put_field_int(p, SACK_OFFSET, acks[i].acknowledge_offset);
        p = put_field_int(p, SACK_MAX, acks[i].received_max_offset);
    }
    p = put_field_int(p, ACK_TIMEPOINT, timepoint_us);
    p = put_field_int(p, ACK_DELAY, ack_delay_us);
    uint32_t hash = atb_frame_hash(out, (size_t)(p - out));
    for (int i = 0; i < 4; i++) {
        *p++ = (uint8_t)(hash >> (8 * i));
    }
    *len = (size_t)(p - out);
    return ATBUS_OK;
}

uint32_t
atb_frame_hash_iov(const struct iovec *iov, int iovcnt)
{
    if (iovcnt == 1) {
        return atb_frame_hash(iov[0].iov_base, iov[0].iov_len);
    }
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset_withSeed(&st, ATB_FRAME_HASH_SEED);
    for (int i = 0; i < iovcnt; i++) {
        XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
    }
    return (uint32_t)XXH3_64bits_digest(&st);
}
