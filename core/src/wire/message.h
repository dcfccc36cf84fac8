/*
 * The frame_message layer: protobuf-c structures <-> frames.
 *
 * protobuf-c allocates through atb_malloc here, and a NULL from protobuf-c
 * unpack is split into "out of memory" and "not protobuf", which protobuf-c
 * alone cannot tell apart. After decoding, the message is checked against
 * the protocol rules that protobuf cannot express (a body must be present,
 * offsets are non-negative, padding fits in the content).
 */
#ifndef ATB_WIRE_MESSAGE_H
#define ATB_WIRE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "atbus_protocol.pb-c.h"
#include "wire/frame.h"

/* Short names for the generated types used across the library. */
typedef Atbus__Protocol__FrameMessage atb_pb_frame;
typedef Atbus__Protocol__MessageHead atb_pb_head;
typedef Atbus__Protocol__PingData atb_pb_ping;
typedef Atbus__Protocol__PacketData atb_pb_packet;
typedef Atbus__Protocol__AcknowledgeData atb_pb_ack;
typedef Atbus__Protocol__StreamAcknowledge atb_pb_stream_ack;
typedef Atbus__Protocol__PacketContent atb_pb_content;
typedef Atbus__Protocol__PacketContent__FragmentType atb_pb_fragment;
typedef Atbus__Protocol__RegisterData atb_pb_register;

/* packet_data.flags */
#define ATB_PACKET_FLAG_FINISH_STREAM 0x1
#define ATB_PACKET_FLAG_FINISH_CONNECTION 0x2
#define ATB_PACKET_FLAG_RESET_OFFSET 0x4
#define ATB_PACKET_FLAG_TLS_HANDSHAKE 0x8

/* fragment_type.fragment_flag */
#define ATB_FRAGMENT_FLAG_HAS_MORE 0x1

/*
 * atb_frame_encoded_size returns the bytes atb_frame_encode writes for msg.
 */
size_t atb_frame_encoded_size(const atb_pb_frame *msg);

/*
 * atb_frame_encode serializes msg into a complete frame of the current
 * protocol version at out (cap bytes) and stores its size in *written.
 * msg is only read. Returns ATBUS_OK or ATBUS_ENOBUFS (nothing written).
 */
int atb_frame_encode(const atb_pb_frame *msg, uint8_t *out, size_t cap,
                     size_t *written);

/*
 * atb_frame_message_unpack decodes the message of a frame (see
 * atb_frame_parse / atb_frame_decoder_next) and validates it. On success
 * *out owns a new message, freed with atb_frame_message_free; it copies
 * what it needs, so data may be released afterwards.
 * Returns ATBUS_OK, ATBUS_ENOMEM, ATBUS_EFRAME_DECODE (not a valid
 * frame_message) or ATBUS_EFRAME_INVALID (valid protobuf, breaks a
 * protocol rule).
 */
int atb_frame_message_unpack(const uint8_t *data, size_t len,
                             atb_pb_frame **out);

/* atb_frame_message_free frees a message from atb_frame_message_unpack;
 * NULL is a no-op. */
void atb_frame_message_free(atb_pb_frame *msg);

/*
 * atb_packet_content_unpack decodes packet_data.content. Same ownership and
 * codes as atb_frame_message_unpack.
 */
int atb_packet_content_unpack(const uint8_t *data, size_t len,
                              atb_pb_content **out);

/* atb_packet_content_free frees a content from atb_packet_content_unpack;
 * NULL is a no-op. */
void atb_packet_content_free(atb_pb_content *content);

/*
 * atb_register_unpack decodes a register_data. Same ownership and codes as
 * atb_frame_message_unpack.
 */
int atb_register_unpack(const uint8_t *data, size_t len, atb_pb_register **out);

/* atb_register_free frees a register from atb_register_unpack. */
void atb_register_free(atb_pb_register *reg);

#endif /* ATB_WIRE_MESSAGE_H */
