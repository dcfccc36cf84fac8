/*
 * Stream reassembly of frames: zero-copy when a frame is whole in the
 * input, one exactly-sized buffer (allocated only after the length passed
 * the cap) when it is split.
 */
#include "wire/frame_decoder.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"

/* A buffer larger than this is released after its frame is delivered, so a
 * connection that once carried a large frame does not keep the memory. */
#define DECODER_KEEP_BYTES ((size_t)64 * 1024)

void
atb_frame_decoder_init(atb_frame_decoder *d, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->max_message =
        max_message != 0 ? max_message : ATB_FRAME_DEFAULT_MAX_MESSAGE;
}

void
atb_frame_decoder_fini(atb_frame_decoder *d)
{
    atb_free(d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
    d->buf_len = 0;
    d->frame_len = 0;
    d->head_len = 0;
}

size_t
atb_frame_decoder_pending(const atb_frame_decoder *d)
{
    if (d->delivered) {
        return 0;
    }
    return d->frame_len != 0 ? d->buf_len : d->head_len;
}

/* decoder_reset_delivered forgets the frame returned by the previous call
 * from the buffer. */
static void
decoder_reset_delivered(atb_frame_decoder *d)
{
    if (!d->delivered) {
        return;
    }
    d->delivered = 0;
    d->buf_len = 0;
    d->frame_len = 0;
    if (d->buf_cap > DECODER_KEEP_BYTES) {
        atb_free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
}

/* decoder_fail records a framing error; the stream cannot be resynced. */
static int
decoder_fail(atb_frame_decoder *d, int rc)
{
    d->error = rc;
    return rc;
}

/* decoder_start_frame sizes the buffer for a frame whose header is now
 * complete in d->head. */
static int
decoder_start_frame(atb_frame_decoder *d, size_t header_len, size_t message_len)
{
    size_t total = header_len + message_len + ATB_FRAME_HASH_LEN;
    if (d->buf_cap < total) {
        uint8_t *nb = atb_malloc(total);
        if (nb == NULL) {
            return ATBUS_ENOMEM;
        }
        atb_free(d->buf);
        d->buf = nb;
        d->buf_cap = total;
    }
    memcpy(d->buf, d->head, header_len);
    d->buf_len = header_len;
    d->frame_len = total;
    d->head_len = 0;
    return ATBUS_OK;
}

int
atb_frame_decoder_next(atb_frame_decoder *d, const uint8_t *in, size_t len,
                       size_t *consumed, atb_frame_view *out)
{
    *consumed = 0;
    if (d->error != 0) {
        return d->error;
    }
    decoder_reset_delivered(d);

    int rc;
    if (d->head_len == 0 && d->frame_len == 0) {
        rc = atb_frame_parse(in, len, d->max_message, out);
        if (rc == ATBUS_OK) {
            *consumed = out->frame_len;
            return 1;
        }
        if (rc != ATBUS_ETRUNCATED) {
            return decoder_fail(d, rc);
        }
    }

    size_t pos = 0;
    /* The header may straddle pieces: gather it byte by byte (at most
     * ATB_FRAME_HEADER_MAX bytes) so the cap is checked before allocating. */
    while (d->frame_len == 0) {
        if (pos == len) {
            *consumed = pos;
            return 0;
        }
        d->head[d->head_len++] = in[pos++];
        uint32_t version;
        size_t mlen;
        size_t hlen;
        rc = atb_frame_parse_header(d->head, d->head_len, d->max_message,
                                    &version, &mlen, &hlen);
        if (rc == ATBUS_ETRUNCATED) {
            continue;
        }
        if (rc != ATBUS_OK) {
            return decoder_fail(d, rc);
        }
        rc = decoder_start_frame(d, hlen, mlen);
        if (rc != ATBUS_OK) {
            /* Give the byte back so a retry sees the same input. */
            d->head_len--;
            *consumed = pos - 1;
            return rc;
        }
    }

    size_t want = d->frame_len - d->buf_len;
    size_t take = len - pos < want ? len - pos : want;
    if (take != 0) {
        memcpy(d->buf + d->buf_len, in + pos, take);
    }
    d->buf_len += take;
    pos += take;
    *consumed = pos;
    if (d->buf_len < d->frame_len) {
        return 0;
    }

    rc = atb_frame_parse(d->buf, d->frame_len, d->max_message, out);
    if (rc != ATBUS_OK) {
        return decoder_fail(d, rc);
    }
    d->delivered = 1;
    return 1;
}
