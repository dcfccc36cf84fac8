/*
 * A check of serialized protobuf, run before protobuf-c unpacks it.
 *
 * protobuf-c keeps strings as C strings and does not validate them: a
 * string with an embedded NUL arrives cut short (a source name
 * "node-a\0x" would read as "node-a"), and invalid UTF-8 passes although
 * other protobuf implementations reject the whole message. This walker
 * visits every string field, nested messages and map entries included,
 * and refuses both.
 */
#ifndef ATB_WIRE_PB_SCAN_H
#define ATB_WIRE_PB_SCAN_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/*
 * atb_pb_scan_strings walks the len bytes at data as a message of type
 * desc. Returns ATBUS_OK, ATBUS_EFRAME_DECODE (the bytes are not valid
 * protobuf wire format, or nest deeper than protobuf-c would follow) or
 * ATBUS_EFRAME_INVALID (a string holds a NUL or invalid UTF-8).
 * Allocates nothing.
 */
int atb_pb_scan_strings(const ProtobufCMessageDescriptor *desc,
                        const uint8_t *data, size_t len);

#endif /* ATB_WIRE_PB_SCAN_H */
