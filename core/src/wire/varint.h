/*
 * Base-128 varints as protobuf writes them: 7 bits per byte, least
 * significant group first, high bit set on every byte but the last.
 *
 * The frame header uses them for the version and the length. The decoder
 * is strict because the header comes from the network: it rejects encodings
 * longer than needed (a redundant zero group) and values above 2^64-1, so a
 * value has exactly one valid encoding.
 */
#ifndef ATB_WIRE_VARINT_H
#define ATB_WIRE_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* The longest encoding of a 64-bit value. */
#define ATB_VARINT_MAX_LEN 10

/* atb_varint_size returns how many bytes atb_varint_encode writes for v
 * (1 to ATB_VARINT_MAX_LEN). */
size_t atb_varint_size(uint64_t v);

/* atb_varint_encode writes v into out, which must hold
 * atb_varint_size(v) bytes, and returns the number of bytes written. */
size_t atb_varint_encode(uint64_t v, uint8_t *out);

/*
 * atb_varint_decode reads one varint from the len bytes at in.
 * On success stores the value in *value and its length in *used.
 * Returns ATBUS_OK, ATBUS_ETRUNCATED (input ends before the last byte; more
 * input may complete it), or ATBUS_EVARINT (overlong or above 2^64-1).
 * *value and *used are untouched on failure.
 */
int atb_varint_decode(const uint8_t *in, size_t len, uint64_t *value,
                      size_t *used);

#endif /* ATB_WIRE_VARINT_H */
