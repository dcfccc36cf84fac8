/*
 * Incremental frame decoder for byte-stream transports (unix, TCP).
 *
 * Input arrives in pieces of any size, down to one byte. When a whole frame
 * lies inside one piece the decoder returns a view into that piece and
 * copies nothing. Otherwise it gathers the header, checks the version and
 * the length cap, and only then allocates exactly one buffer for the frame,
 * so a peer announcing a huge frame costs no memory.
 *
 * A framing error (bad varint, version, length or hash) desynchronises the
 * byte stream for good: the decoder keeps returning that error and the
 * connection must be closed. ATBUS_ENOMEM is not sticky: the caller may
 * feed the same unconsumed bytes again later.
 */
#ifndef ATB_WIRE_FRAME_DECODER_H
#define ATB_WIRE_FRAME_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "wire/frame.h"

typedef struct atb_frame_decoder {
    size_t max_message; /* cap on a frame's message length */
    int error;          /* sticky framing error, or 0 */
    /* Header bytes of a frame split across pieces, before its buffer is
     * allocated. */
    uint8_t head[ATB_FRAME_HEADER_MAX];
    size_t head_len;
    /* The frame being gathered: frame_len > 0 while one is pending. */
    uint8_t *buf;
    size_t buf_cap;
    size_t buf_len;
    size_t frame_len;
    /* The last frame returned lives in buf until the next call. */
    int delivered;
} atb_frame_decoder;

/*
 * atb_frame_decoder_init prepares d. max_message caps a frame's message
 * length (0 selects ATB_FRAME_DEFAULT_MAX_MESSAGE). Allocates nothing.
 */
void atb_frame_decoder_init(atb_frame_decoder *d, size_t max_message);

/* atb_frame_decoder_fini releases d's buffer. Views it returned die. */
void atb_frame_decoder_fini(atb_frame_decoder *d);

/*
 * atb_frame_decoder_next consumes bytes from in (len bytes) until one
 * frame is complete or the input runs out, and stores the number of bytes
 * it consumed in *consumed; the caller passes the rest on the next call.
 *
 * Returns 1 when *out holds a frame whose hash checked out. The view points
 * into in (zero-copy) or into d's buffer, and stays valid until the next
 * call on d or until in changes.
 * Returns 0 when all input was consumed and the frame is not complete.
 * Returns ATBUS_ENOMEM (not sticky), or a sticky framing error:
 * ATBUS_EVARINT, ATBUS_EFRAME_VERSION, ATBUS_EFRAME_TOO_LARGE,
 * ATBUS_EFRAME_HASH.
 */
int atb_frame_decoder_next(atb_frame_decoder *d, const uint8_t *in, size_t len,
                           size_t *consumed, atb_frame_view *out);

/* atb_frame_decoder_pending returns how many bytes of an incomplete frame
 * d holds (0 at a frame boundary). */
size_t atb_frame_decoder_pending(const atb_frame_decoder *d);

#endif /* ATB_WIRE_FRAME_DECODER_H */
