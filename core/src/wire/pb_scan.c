/*
 * Wire-format walker that validates string fields (see pb_scan.h).
 */
#include "wire/pb_scan.h"

#include <atbus/error.h>

#include "common/utf8.h"

/* Our messages nest four deep; anything far deeper is hostile. */
#define SCAN_MAX_DEPTH 32
#define SCAN_MAX_FIELD 0x1fffffffu

/* scan_varint reads a protobuf varint, which unlike frame headers may be
 * written longer than needed. Returns bytes used, or 0 if malformed. */
static size_t
scan_varint(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

static int
scan_message(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
             size_t len, int depth)
{
    if (depth > SCAN_MAX_DEPTH) {
        return ATBUS_EFRAME_DECODE;
    }
    while (len > 0) {
        uint64_t key;
        size_t n = scan_varint(p, len, &key);
        /* Field numbers run from 1 to 2^29-1; protobuf-c would skip a
         * larger one as unknown where other implementations fail. */
        if (n == 0 || key >> 3 == 0 || key >> 3 > SCAN_MAX_FIELD) {
            return ATBUS_EFRAME_DECODE;
        }
        p += n;
        len -= n;
        uint64_t skip;
        switch (key & 7) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            n = scan_varint(p, len, &skip);
            if (n == 0) {
                return ATBUS_EFRAME_DECODE;
            }
            skip = n;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            skip = 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            skip = 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            n = scan_varint(p, len, &skip);
            if (n == 0 || skip > len - n) {
                return ATBUS_EFRAME_DECODE;
            }
            p += n;
            len -= n;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(desc,
                                                        (unsigned)(key >> 3));
            int rc = ATBUS_OK;
            if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING) {
                if (!atb_utf8_valid(p, (size_t)skip)) {
                    rc = ATBUS_EFRAME_INVALID;
                }
            } else if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                rc = scan_message(f->descriptor, p, (size_t)skip, depth + 1);
            }
            if (rc != ATBUS_OK) {
                return rc;
            }
            break;
        }
        default:
            /* Groups (3, 4) are not used by proto3; 6 and 7 do not exist. */
            return ATBUS_EFRAME_DECODE;
        }
        if (skip > len) {
            return ATBUS_EFRAME_DECODE;
        }
        p += skip;
        len -= (size_t)skip;
    }
    return ATBUS_OK;
}

int
atb_pb_scan_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                    size_t len)
{
    return scan_message(desc, data, len, 0);
}
