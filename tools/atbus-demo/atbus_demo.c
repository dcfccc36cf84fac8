/*
 * atbus-demo: encodes one frame of every body type, streams them through
 * the incremental decoder in uneven pieces, and prints what came out; then
 * shows the decoder refusing a corrupted frame and an oversize one.
 */
#include <atbus/atbus.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame_decoder.h"
#include "wire/message.h"

#define DEMO_STREAM_CAP 4096

static void
demo_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *sep = (i % 16 == 15 || i + 1 == n) ? "\n" : " ";
        printf("%s%02x%s", i % 16 == 0 ? "    " : "", p[i], sep);
    }
}

static const char *
demo_body_name(const atb_pb_frame *m)
{
    switch (m->body_case) {
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING:
        return "ping";
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG:
        return "pong";
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET:
        return "packet";
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE:
        return "acknowledge";
    default:
        return "?";
    }
}

static void
demo_print_message(const atb_pb_frame *m)
{
    printf("  decoded %s from '%s' to '%s'\n", demo_body_name(m),
           m->head != NULL ? m->head->source : "",
           m->head != NULL ? m->head->destination : "");
    if (m->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING ||
        m->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG) {
        const atb_pb_ping *p = m->ping != NULL ? m->ping : m->pong;
        printf("    ping_id=%" PRId64 " timepoint_us=%" PRId64 "\n", p->ping_id,
               p->timepoint_microseconds);
    } else if (m->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET) {
        const atb_pb_packet *p = m->packet;
        printf("    stream_id=%" PRId64 " offset=%" PRId64 " flags=%d\n",
               p->stream_id, p->stream_offset, p->flags);
        atb_pb_content *c;
        if (atb_packet_content_unpack(p->content.data, p->content.len, &c) ==
            ATBUS_OK) {
            for (size_t i = 0; i < c->n_fragment; i++) {
                const atb_pb_fragment *f = c->fragment[i];
                printf("    fragment %zu: %zu bytes \"%.*s\"%s\n", i,
                       f->data.len, (int)f->data.len,
                       (const char *)f->data.data,
                       (f->fragment_flag & ATB_FRAGMENT_FLAG_HAS_MORE)
                           ? " (HAS_MORE)"
                           : "");
            }
            atb_packet_content_free(c);
        }
    } else if (m->body_case ==
               ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE) {
        for (size_t i = 0; i < m->acknowledge->n_streams; i++) {
            const atb_pb_stream_ack *s = m->acknowledge->streams[i];
            printf("    stream %" PRId64 ": acknowledged<%" PRId64
                   " received_max=%" PRId64 "\n",
                   s->stream_id, s->acknowledge_offset, s->received_max_offset);
        }
    }
}

/* demo_append encodes msg at the end of the stream buffer. */
static size_t
demo_append(const atb_pb_frame *msg, uint8_t *stream, size_t used)
{
    size_t n;
    int rc = atb_frame_encode(msg, stream + used, DEMO_STREAM_CAP - used, &n);
    if (rc != ATBUS_OK) {
        fprintf(stderr, "encode: %s\n", atbus_strerror(rc));
        exit(1);
    }
    printf("encoded %s frame: %zu bytes\n", demo_body_name(msg), n);
    demo_hex(stream + used, n);
    return used + n;
}

/* demo_decode feeds the stream to a decoder in pieces of 1, 2, 3, ...
 * bytes and prints each frame; returns the number of frames. */
static int
demo_decode(const uint8_t *stream, size_t len)
{
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    size_t pos = 0;
    size_t piece = 1;
    int frames = 0;
    while (pos < len) {
        size_t n = len - pos < piece ? len - pos : piece;
        const uint8_t *in = stream + pos;
        pos += n;
        piece = piece % 7 + 1;
        while (n > 0) {
            size_t used;
            atb_frame_view v;
            int rc = atb_frame_decoder_next(&d, in, n, &used, &v);
            in += used;
            n -= used;
            if (rc < 0) {
                fprintf(stderr, "decode: %s\n", atbus_strerror(rc));
                atb_frame_decoder_fini(&d);
                return -1;
            }
            if (rc == 1) {
                atb_pb_frame *m;
                rc = atb_frame_message_unpack(v.message, v.message_len, &m);
                if (rc != ATBUS_OK) {
                    fprintf(stderr, "unpack: %s\n", atbus_strerror(rc));
                    atb_frame_decoder_fini(&d);
                    return -1;
                }
                demo_print_message(m);
                atb_frame_message_free(m);
                frames++;
            }
        }
    }
    atb_frame_decoder_fini(&d);
    return frames;
}

/* demo_reject feeds one frame and prints the error the decoder gives. */
static void
demo_reject(const char *what, const uint8_t *frame, size_t len, size_t max)
{
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, max);
    size_t used;
    atb_frame_view v;
    int rc = atb_frame_decoder_next(&d, frame, len, &used, &v);
    printf("%s: %s (%s)\n", what, atbus_err_name(rc), atbus_strerror(rc));
    atb_frame_decoder_fini(&d);
}

int
main(void)
{
    static uint8_t stream[DEMO_STREAM_CAP];
    size_t used = 0;
    printf("atbus %s, protocol version %d\n\n", atbus_version(),
           ATBUS_PROTOCOL_VERSION);

    static char source[] = "app-1.ns1";
    static char destination[] = "app-2.ns1";
    static uint8_t part1[] = "hello, ";
    static uint8_t part2[] = "mesh";
    atb_pb_head head;
    atbus__protocol__message_head__init(&head);
    head.source = source;
    head.destination = destination;

    atb_pb_ping ping;
    atbus__protocol__ping_data__init(&ping);
    ping.ping_id = 1;
    ping.timepoint_microseconds = 1700000000000000;
    atb_pb_frame msg;
    atbus__protocol__frame_message__init(&msg);
    msg.head = &head;
    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING;
    msg.ping = &ping;
    used = demo_append(&msg, stream, used);

    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG;
    msg.pong = &ping;
    used = demo_append(&msg, stream, used);

    /* A packet carrying the end of one message and a whole second one. */
    atb_pb_fragment f1;
    atbus__protocol__packet_content__fragment_type__init(&f1);
    f1.data.data = part1;
    f1.data.len = sizeof(part1) - 1;
    f1.fragment_flag = ATB_FRAGMENT_FLAG_HAS_MORE;
    atb_pb_fragment f2;
    atbus__protocol__packet_content__fragment_type__init(&f2);
    f2.data.data = part2;
    f2.data.len = sizeof(part2) - 1;
    atb_pb_fragment *frags[] = {&f1, &f2};
    atb_pb_content content;
    atbus__protocol__packet_content__init(&content);
    content.n_fragment = 2;
    content.fragment = frags;
    uint8_t cbuf[128];
    atb_pb_packet packet;
    atbus__protocol__packet_data__init(&packet);
    packet.stream_id = 1;
    packet.content.len = atbus__protocol__packet_content__pack(&content, cbuf);
    packet.content.data = cbuf;
    packet.timepoint_microseconds = 1700000000000100;
    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET;
    msg.packet = &packet;
    used = demo_append(&msg, stream, used);

    atb_pb_stream_ack sack;
    atbus__protocol__stream_acknowledge__init(&sack);
    sack.stream_id = 1;
    sack.acknowledge_offset = 11;
    sack.received_max_offset = 11;
    atb_pb_stream_ack *sacks[] = {&sack};
    atb_pb_ack ack;
    atbus__protocol__acknowledge_data__init(&ack);
    ack.n_streams = 1;
    ack.streams = sacks;
    ack.timepoint_microseconds = packet.timepoint_microseconds;
    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE;
    msg.acknowledge = &ack;
    used = demo_append(&msg, stream, used);

    printf("\nstreaming %zu bytes through the decoder in 1..7-byte pieces\n",
           used);
    int frames = demo_decode(stream, used);
    if (frames != 4) {
        fprintf(stderr, "expected 4 frames, got %d\n", frames);
        return 1;
    }
    printf("decoded %d frames\n\n", frames);

    /* The first frame again, with one bit flipped in its message. */
    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING;
    msg.ping = &ping;
    size_t first = atb_frame_encoded_size(&msg);
    stream[5] ^= 0x10;
    demo_reject("frame with one flipped bit", stream, first, 0);
    stream[5] ^= 0x10;
    demo_reject("frame over a 16-byte limit", stream, first, 16);
    return 0;
}
