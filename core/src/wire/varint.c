/*
 * Strict base-128 varint codec (see varint.h for the rules it enforces).
 */
#include "wire/varint.h"

#include <atbus/error.h>

size_t
atb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t
atb_varint_encode(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

int
atb_varint_decode(const uint8_t *in, size_t len, uint64_t *value, size_t *used)
{
    uint64_t v = 0;
    for (size_t i = 0; i < ATB_VARINT_MAX_LEN; i++) {
        if (i == len) {
            return ATBUS_ETRUNCATED;
        }
        uint8_t b = in[i];
        /* The tenth byte holds bit 63 only. */
        if (i == ATB_VARINT_MAX_LEN - 1 && b > 1) {
            return ATBUS_EVARINT;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            /* A zero last group after others is a longer-than-needed
             * encoding of a smaller value. */
            if (b == 0 && i > 0) {
                return ATBUS_EVARINT;
            }
            *value = v;
            *used = i + 1;
            return ATBUS_OK;
        }
    }
    return ATBUS_EVARINT;
}
