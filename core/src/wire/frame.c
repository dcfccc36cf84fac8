/*
 * Frame header, hash and contiguous parsing. The checks run cheapest and
 * most telling first: version (so a peer speaking another protocol gets a
 * version error, not a hash error), then the length cap (before anyone
 * buffers the frame), then completeness, then the hash.
 */
#include "wire/frame.h"

#include <atbus/error.h>
#include <atbus/version.h>

#include <string.h>
#include <xxhash.h>

uint32_t
atb_frame_hash(const uint8_t *data, size_t len)
{
    return (uint32_t)XXH3_64bits_withSeed(data, len, ATB_FRAME_HASH_SEED);
}

size_t
atb_frame_size(uint32_t version, size_t message_len)
{
    return atb_varint_size(version) + atb_varint_size(message_len) +
           message_len + ATB_FRAME_HASH_LEN;
}

size_t
atb_frame_write_header(uint32_t version, size_t message_len, uint8_t *out)
{
    size_t n = atb_varint_encode(version, out);
    return n + atb_varint_encode(message_len, out + n);
}

void
atb_frame_seal(uint8_t *frame, size_t len)
{
    uint32_t h = atb_frame_hash(frame, len);
    frame[len + 0] = (uint8_t)h;
    frame[len + 1] = (uint8_t)(h >> 8);
    frame[len + 2] = (uint8_t)(h >> 16);
    frame[len + 3] = (uint8_t)(h >> 24);
}

int
atb_frame_wrap(uint32_t version, const uint8_t *message, size_t message_len,
               uint8_t *out, size_t cap, size_t *written)
{
    size_t total = atb_frame_size(version, message_len);
    if (cap < total) {
        return ATBUS_ENOBUFS;
    }
    size_t head = atb_frame_write_header(version, message_len, out);
    if (message_len != 0) {
        memcpy(out + head, message, message_len);
    }
    atb_frame_seal(out, head + message_len);
    *written = total;
    return ATBUS_OK;
}

int
atb_frame_parse_header(const uint8_t *in, size_t len, size_t max_message,
                       uint32_t *version, size_t *message_len,
                       size_t *header_len)
{
    uint64_t v;
    size_t vlen;
    int rc = atb_varint_decode(in, len, &v, &vlen);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (v < ATBUS_PROTOCOL_MINIMAL_VERSION || v > ATBUS_PROTOCOL_VERSION) {
        return ATBUS_EFRAME_VERSION;
    }

    uint64_t mlen;
    size_t llen;
    rc = atb_varint_decode(in + vlen, len - vlen, &mlen, &llen);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (mlen > max_message) {
        return ATBUS_EFRAME_TOO_LARGE;
    }

    *version = (uint32_t)v;
    *message_len = (size_t)mlen;
    *header_len = vlen + llen;
    return ATBUS_OK;
}

int
atb_frame_parse(const uint8_t *in, size_t len, size_t max_message,
                atb_frame_view *view)
{
    uint32_t version;
    size_t mlen;
    size_t hlen;
    int rc =
        atb_frame_parse_header(in, len, max_message, &version, &mlen, &hlen);
    if (rc != ATBUS_OK) {
        return rc;
    }
    /* hlen <= ATB_FRAME_HEADER_MAX and mlen <= max_message, so no overflow
     * unless max_message is near SIZE_MAX; guard anyway. */
    if (mlen > SIZE_MAX - hlen - ATB_FRAME_HASH_LEN) {
        return ATBUS_EFRAME_TOO_LARGE;
    }
    size_t body_end = hlen + mlen;
    if (len - hlen < mlen + ATB_FRAME_HASH_LEN) {
        return ATBUS_ETRUNCATED;
    }
    const uint8_t *h = in + body_end;
    uint32_t got = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                   (uint32_t)h[3] << 24;
    if (got != atb_frame_hash(in, body_end)) {
        return ATBUS_EFRAME_HASH;
    }
    view->version = version;
    view->message = in + hlen;
    view->message_len = mlen;
    view->frame_len = body_end + ATB_FRAME_HASH_LEN;
    return ATBUS_OK;
}
