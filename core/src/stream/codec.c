#include "stream/codec.h"

#include <atbus/error.h>

int
atb_scodec_encode(const atb_sout *o, const char *source,
                  const char *destination, uint64_t source_incarnation,
                  atb_frame_iov *out)
{
    if (o->kind == ATB_SOUT_ACK) {
        atb_ack_entry acks[ATB_SACK_MAX];
        for (size_t i = 0; i < o->nacks; i++) {
            acks[i].stream_id = o->acks[i].stream_id;
            acks[i].acknowledge_offset = o->acks[i].ack_offset;
            acks[i].received_max_offset = o->acks[i].received_max;
        }
        size_t len;
        int rc = atb_ack_frame(source, destination, source_incarnation, acks,
                               o->nacks, o->echo_timepoint_us, o->ack_delay_us,
                               out->ack, sizeof(out->ack), &len);
        if (rc != ATBUS_OK) {
            return rc;
        }
        out->iov[0].iov_base = out->ack;
        out->iov[0].iov_len = len;
        out->iovcnt = 1;
        out->len = len;
        return ATBUS_OK;
    }
    atb_packet_desc d = {
        .source = source,
        .destination = destination,
        .source_incarnation = source_incarnation,
        .stream_id = o->packet.stream_id,
        .stream_offset = o->packet.offset,
        .flags = o->packet.flags,
        .timepoint_us = o->packet.timepoint_us,
    };
    atb_packet_frag frags[ATB_SPKT_MAX_FRAGS];
    for (size_t i = 0; i < o->packet.nfrags; i++) {
        frags[i].data = o->packet.frags[i].data;
        frags[i].len = o->packet.frags[i].len;
        frags[i].fragment_flag =
            o->packet.frags[i].has_more ? ATB_FRAGMENT_FLAG_HAS_MORE : 0;
    }
    return atb_packet_frame(&d, frags, o->packet.nfrags, out);
}

int
atb_scodec_packet(const atb_pb_packet *pk, atb_pb_content **content,
                  atb_sfrag *frags, atb_spacket *out)
{
    *content = NULL;
    atb_pb_content *c = NULL;
    if (pk->content.len > 0) {
        int rc =
            atb_packet_content_unpack(pk->content.data, pk->content.len, &c);
        if (rc != ATBUS_OK) {
            return rc;
        }
        if (c->n_fragment > ATB_PACKET_MAX_FRAGS) {
            atb_packet_content_free(c);
            return ATBUS_EFRAME_INVALID;
        }
        for (size_t i = 0; i < c->n_fragment; i++) {
            const atb_pb_fragment *f = c->fragment[i];
            if (f->packet_type != 0 ||
                (f->fragment_flag & ~ATB_FRAGMENT_FLAG_HAS_MORE) != 0) {
                atb_packet_content_free(c);
                return ATBUS_EFRAME_INVALID;
            }
            frags[i].data = f->data.data;
            frags[i].len = f->data.len;
            frags[i].has_more = (f->fragment_flag & ATB_FRAGMENT_FLAG_HAS_MORE);
        }
    }
    out->stream_id = pk->stream_id;
    out->offset = pk->stream_offset;
    out->flags = pk->flags;
    out->timepoint_us = pk->timepoint_microseconds;
    out->frags = frags;
    out->nfrags = c != NULL ? c->n_fragment : 0;
    *content = c;
    return ATBUS_OK;
}

int
atb_scodec_ack(const atb_pb_ack *a, atb_sack *acks, size_t *n)
{
    if (a->n_streams > ATB_PACKET_MAX_FRAGS) {
        return ATBUS_EFRAME_INVALID;
    }
    for (size_t i = 0; i < a->n_streams; i++) {
        acks[i].stream_id = a->streams[i]->stream_id;
        acks[i].ack_offset = a->streams[i]->acknowledge_offset;
        acks[i].received_max = a->streams[i]->received_max_offset;
    }
    *n = a->n_streams;
    return ATBUS_OK;
}
