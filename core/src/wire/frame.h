/*
 * Frames: the unit every transport carries.
 *
 *   varint version | varint length | message (length bytes) | hash (4 bytes)
 *
 * hash is the low 4 bytes, little-endian, of XXH3-64 seeded with
 * ATB_FRAME_HASH_SEED over every byte before it. This file handles frames
 * held contiguously in memory; frame_decoder.h reassembles them from a
 * byte stream, and message.h turns the message bytes into protobuf-c
 * structures.
 */
#ifndef ATB_WIRE_FRAME_H
#define ATB_WIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire/varint.h"

#define ATB_FRAME_HASH_SEED 0x01000193u
#define ATB_FRAME_HASH_LEN 4
/* The longest header: two 64-bit varints. */
#define ATB_FRAME_HEADER_MAX (2 * ATB_VARINT_MAX_LEN)
/* Default cap on a frame's message length when a caller gives none. */
#define ATB_FRAME_DEFAULT_MAX_MESSAGE ((size_t)2 * 1024 * 1024)

/* A frame found in memory. Pointers borrow the caller's bytes. */
typedef struct atb_frame_view {
    uint32_t version;       /* protocol version from the header */
    const uint8_t *message; /* the serialized frame_message */
    size_t message_len;
    size_t frame_len; /* header + message + hash: bytes the frame takes */
} atb_frame_view;

/* atb_frame_hash returns the frame hash of len bytes at data. */
uint32_t atb_frame_hash(const uint8_t *data, size_t len);

/* atb_frame_size returns the bytes a frame with a message_len-byte message
 * takes in the given version. */
size_t atb_frame_size(uint32_t version, size_t message_len);

/*
 * atb_frame_write_header writes the version and length varints at out
 * (which must hold ATB_FRAME_HEADER_MAX bytes) and returns their length.
 */
size_t atb_frame_write_header(uint32_t version, size_t message_len,
                              uint8_t *out);

/*
 * atb_frame_seal appends the hash of the first len bytes of frame at
 * frame + len. The caller has written header and message there and leaves
 * room for ATB_FRAME_HASH_LEN more bytes.
 */
void atb_frame_seal(uint8_t *frame, size_t len);

/*
 * atb_frame_wrap writes a complete frame around an already serialized
 * message into out (cap bytes) and stores its size in *written.
 * Returns ATBUS_OK or ATBUS_ENOBUFS (out too small; nothing written).
 * Any version may be written, so tests can produce frames a reader must
 * reject.
 */
int atb_frame_wrap(uint32_t version, const uint8_t *message, size_t message_len,
                   uint8_t *out, size_t cap, size_t *written);

/*
 * atb_frame_parse_header reads the header at in (len bytes): it checks
 * the version against the supported range and the message length against
 * max_message, so a reader can refuse a frame before buffering any of it.
 * On success stores the version, the message length and the header length.
 * Returns ATBUS_OK, ATBUS_ETRUNCATED (the header is not complete yet),
 * ATBUS_EVARINT, ATBUS_EFRAME_VERSION or ATBUS_EFRAME_TOO_LARGE.
 */
int atb_frame_parse_header(const uint8_t *in, size_t len, size_t max_message,
                           uint32_t *version, size_t *message_len,
                           size_t *header_len);

/*
 * atb_frame_parse finds the frame at the start of in (len bytes) and checks
 * its hash; nothing is copied or allocated. On success *view points into
 * in. Returns ATBUS_OK, ATBUS_ETRUNCATED (in holds only part of a frame),
 * or the header errors of atb_frame_parse_header, or ATBUS_EFRAME_HASH.
 */
int atb_frame_parse(const uint8_t *in, size_t len, size_t max_message,
                    atb_frame_view *view);

#endif /* ATB_WIRE_FRAME_H */
