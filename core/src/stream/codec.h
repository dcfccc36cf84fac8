/*
 * Between the stream engine's frames and the wire: planned frames to
 * gather buffers (wire/packet.h writes them without protobuf-c), decoded
 * frames to engine input.
 */
#ifndef ATB_STREAM_CODEC_H
#define ATB_STREAM_CODEC_H

#include "stream/engine.h"
#include "wire/message.h"
#include "wire/packet.h"

/*
 * atb_scodec_encode builds the frame for a planned packet or ack from
 * source to destination in *out (the packet's fragments are referenced,
 * valid as long as the plan is); source_incarnation goes in the head
 * when not 0 (frames that cross relays). Returns ATBUS_OK or
 * ATBUS_EINVAL (a name longer than 253 bytes).
 */
int atb_scodec_encode(const atb_sout *o, const char *source,
                      const char *destination, uint64_t source_incarnation,
                      atb_frame_iov *out);

/*
 * atb_scodec_packet describes a received packet_data for the engine:
 * its content is unpacked into *content (free it with
 * atb_packet_content_free after the engine took the packet) and the
 * fragments are listed in frags (ATB_PACKET_MAX_FRAGS entries).
 * Returns ATBUS_OK, ATBUS_ENOMEM, ATBUS_EFRAME_DECODE or
 * ATBUS_EFRAME_INVALID (too many fragments, or one of another type than
 * data).
 */
int atb_scodec_packet(const atb_pb_packet *pk, atb_pb_content **content,
                      atb_sfrag *frags, atb_spacket *out);

/*
 * atb_scodec_ack lists a received acknowledge_data's entries in acks
 * (ATB_PACKET_MAX_FRAGS entries) and their number in *n. Returns
 * ATBUS_OK or ATBUS_EFRAME_INVALID (too many entries).
 */
int atb_scodec_ack(const atb_pb_ack *a, atb_sack *acks, size_t *n);

#endif /* ATB_STREAM_CODEC_H */
