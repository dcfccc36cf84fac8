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
#define HEAD_SOURCE TAG(1, 2)
#define HEAD_DESTINATION TAG(2, 2)
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

int
atb_packet_prefix(const atb_packet_desc *d, uint8_t *out, size_t *len)
{
    size_t src_len = d->source != NULL ? strlen(d->source) : 0;
    size_t dst_len = d->destination != NULL ? strlen(d->destination) : 0;
    if (src_len > NAME_MAX_LEN || dst_len > NAME_MAX_LEN ||
        d->stream_offset < 0) {
        return ATBUS_EINVAL;
    }

    /* Sizes inside out: fragment, content, packet, head, message. */
    size_t fragment = field_int_size(d->packet_type) +
                      field_int_size(d->fragment_flag) + 1 +
                      atb_varint_size(d->data_len) + d->data_len;
    size_t content = 1 + atb_varint_size(fragment) + fragment;
    size_t packet = field_int_size(d->stream_id) +
                    field_int_size(d->stream_offset) +
                    field_int_size(d->flags) + field_int_size(d->timepoint_us) +
                    1 + atb_varint_size(content) + content;
    size_t head = field_str_size(src_len) + field_str_size(dst_len);
    size_t message =
        1 + atb_varint_size(head) + head + 1 + atb_varint_size(packet) + packet;

    uint8_t *p = out;
    p += atb_frame_write_header(ATBUS_PROTOCOL_VERSION, message, p);
    *p++ = FRAME_HEAD;
    p = put_varint(p, head);
    p = put_field_str(p, HEAD_SOURCE, d->source, src_len);
    p = put_field_str(p, HEAD_DESTINATION, d->destination, dst_len);
    *p++ = FRAME_PACKET;
    p = put_varint(p, packet);
    p = put_field_int(p, PACKET_STREAM_ID, d->stream_id);
    p = put_field_int(p, PACKET_OFFSET, d->stream_offset);
    p = put_field_int(p, PACKET_FLAGS, d->flags);
    p = put_field_int(p, PACKET_TIMEPOINT, d->timepoint_us);
    *p++ = PACKET_CONTENT;
    p = put_varint(p, content);
    *p++ = CONTENT_FRAGMENT;
    p = put_varint(p, fragment);
    p = put_field_int(p, FRAGMENT_TYPE, d->packet_type);
    p = put_field_int(p, FRAGMENT_FLAG, d->fragment_flag);
    *p++ = FRAGMENT_DATA;
    p = put_varint(p, d->data_len);
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
