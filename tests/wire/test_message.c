/*
 * frame_message encode/decode: a round trip for every body type with every
 * field set, the protocol rules checked after decoding, malformed protobuf,
 * and an allocation-failure loop over decoding.
 */
#define _GNU_SOURCE /* memmem */
#include <atbus/atbus.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "testing.h"
#include "wire/frame_decoder.h"
#include "wire/message.h"

/* Storage for one test message of each kind, filled by msg_fill. */
struct msg_set {
    char source[16], destination[16], fwd_source[16];
    char label_key[16], label_value[16];
    char fwd_scheme[8], fwd_address[16], close_message[32];
    uint8_t data1[40], data2[3], token[8];
    atb_pb_head head;
    atb_pb_ping ping;
    atb_pb_stream_ack sack[2];
    atb_pb_stream_ack *sacks[2];
    atb_pb_ack ack;
    Atbus__Protocol__PacketOptions options;
    Atbus__Protocol__PacketContent__FragmentType__LabelsEntry label;
    Atbus__Protocol__PacketContent__FragmentType__LabelsEntry *labels[1];
    Atbus__Protocol__ForwardData forward;
    Atbus__Protocol__CloseReasonData close;
    atb_pb_fragment frag[2];
    atb_pb_fragment *frags[2];
    atb_pb_content content;
    uint8_t content_buf[512];
    atb_pb_packet packet;
    atb_pb_frame frame;
};

static void
msg_fill(struct msg_set *m, int body)
{
    memset(m, 0, sizeof(*m));
    strcpy(m->source, "app-1.ns1");
    strcpy(m->destination, "app-2.ns2");
    strcpy(m->fwd_source, "relay-1.ns1");
    atbus__protocol__message_head__init(&m->head);
    m->head.source = m->source;
    m->head.destination = m->destination;
    m->head.forward_for_source = m->fwd_source;
    m->head.forward_for_connection_id = 77;
    m->head.hop_count = 2;

    atbus__protocol__frame_message__init(&m->frame);
    m->frame.head = &m->head;
    m->frame.body_case = (Atbus__Protocol__FrameMessage__BodyCase)body;
    switch (body) {
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING:
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG:
        atbus__protocol__ping_data__init(&m->ping);
        m->ping.ping_id = -5;
        m->ping.timepoint_microseconds = 1234567890123;
        if (body == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING) {
            m->frame.ping = &m->ping;
        } else {
            m->frame.pong = &m->ping;
        }
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE:
        for (int i = 0; i < 2; i++) {
            atbus__protocol__stream_acknowledge__init(&m->sack[i]);
            m->sack[i].stream_id = i == 0 ? 1 : -2;
            m->sack[i].acknowledge_offset = 100 * (i + 1);
            m->sack[i].received_max_offset = 150 * (i + 1);
            m->sacks[i] = &m->sack[i];
        }
        atbus__protocol__acknowledge_data__init(&m->ack);
        m->ack.n_streams = 2;
        m->ack.streams = m->sacks;
        m->ack.timepoint_microseconds = 99;
        m->ack.ack_delay_microseconds = 250;
        m->frame.acknowledge = &m->ack;
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET:
        memset(m->data1, 'a', sizeof(m->data1));
        memcpy(m->data2, "end", 3);
        memcpy(m->token, "tok-1234", 8);
        strcpy(m->label_key, "area.region");
        strcpy(m->label_value, "CN");
        strcpy(m->fwd_scheme, "ipv4");
        strcpy(m->fwd_address, "10.0.0.1");
        strcpy(m->close_message, "bye");
        atbus__protocol__packet_options__init(&m->options);
        m->options.has_token = 1;
        m->options.token.data = m->token;
        m->options.token.len = sizeof(m->token);
        atbus__protocol__packet_content__fragment_type__labels_entry__init(
            &m->label);
        m->label.key = m->label_key;
        m->label.value = m->label_value;
        m->labels[0] = &m->label;
        atbus__protocol__forward_data__init(&m->forward);
        m->forward.source = m->source;
        m->forward.scheme = m->fwd_scheme;
        m->forward.address = m->fwd_address;
        m->forward.port = 7000;
        m->forward.connection_id = 12;
        atbus__protocol__close_reason_data__init(&m->close);
        m->close.code =
            ATBUS__PROTOCOL__ATBUS__CLOSE__REASON__ATBUS_CLOSE_REASON_SHUTDOWN;
        m->close.message = m->close_message;
        for (int i = 0; i < 2; i++) {
            atbus__protocol__packet_content__fragment_type__init(&m->frag[i]);
            m->frags[i] = &m->frag[i];
        }
        m->frag[0].packet_type = 1001;
        m->frag[0].data.data = m->data1;
        m->frag[0].data.len = sizeof(m->data1);
        m->frag[0].fragment_flag = ATB_FRAGMENT_FLAG_HAS_MORE;
        m->frag[0].options = &m->options;
        m->frag[0].n_labels = 1;
        m->frag[0].labels = m->labels;
        m->frag[0].forward_for = &m->forward;
        m->frag[1].data.data = m->data2;
        m->frag[1].data.len = sizeof(m->data2);
        m->frag[1].close_reason = &m->close;
        atbus__protocol__packet_content__init(&m->content);
        m->content.n_fragment = 2;
        m->content.fragment = m->frags;
        atbus__protocol__packet_data__init(&m->packet);
        m->packet.stream_id = 9;
        m->packet.stream_offset = 4096;
        m->packet.content.len =
            atbus__protocol__packet_content__pack(&m->content, m->content_buf);
        m->packet.content.data = m->content_buf;
        m->packet.flags = ATB_PACKET_FLAG_FINISH_STREAM;
        m->packet.padding_size = 2;
        m->packet.timepoint_microseconds = 42;
        m->frame.packet = &m->packet;
        break;
    default:
        break;
    }
}

/* msg_encode frames m and returns a malloc'd frame. */
static uint8_t *
msg_encode(const atb_pb_frame *m, size_t *len)
{
    size_t cap = atb_frame_encoded_size(m);
    uint8_t *buf = malloc(cap);
    ck_assert_int_eq(atb_frame_encode(m, buf, cap, len), ATBUS_OK);
    ck_assert_uint_eq(*len, cap);
    return buf;
}

/* raw_encode frames m without the encoder's checks, as another
 * implementation might. */
static uint8_t *
raw_encode(const atb_pb_frame *m, size_t *len)
{
    size_t mlen = atbus__protocol__frame_message__get_packed_size(m);
    uint8_t *packed = malloc(mlen + 1);
    atbus__protocol__frame_message__pack(m, packed);
    size_t cap = atb_frame_size(ATBUS_PROTOCOL_VERSION, mlen);
    uint8_t *buf = malloc(cap);
    ck_assert_int_eq(
        atb_frame_wrap(ATBUS_PROTOCOL_VERSION, packed, mlen, buf, cap, len),
        ATBUS_OK);
    free(packed);
    return buf;
}

/* msg_decode parses and unpacks a frame with its message validated. */
static int
msg_decode(const uint8_t *buf, size_t len, atb_pb_frame **out)
{
    atb_frame_view v;
    int rc = atb_frame_parse(buf, len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &v);
    if (rc != ATBUS_OK) {
        return rc;
    }
    return atb_frame_message_unpack(v.message, v.message_len, out);
}

static void
check_head(const atb_pb_frame *got)
{
    ck_assert_ptr_nonnull(got->head);
    ck_assert_str_eq(got->head->source, "app-1.ns1");
    ck_assert_str_eq(got->head->destination, "app-2.ns2");
    ck_assert_str_eq(got->head->forward_for_source, "relay-1.ns1");
    ck_assert_int_eq(got->head->forward_for_connection_id, 77);
    ck_assert_uint_eq(got->head->hop_count, 2);
}

static const int bodies[] = {
    ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING,
    ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG,
    ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET,
    ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE,
};

START_TEST(test_message_round_trip_every_body)
{
    struct msg_set *m = malloc(sizeof(*m));
    msg_fill(m, bodies[_i]);
    size_t len;
    uint8_t *buf = msg_encode(&m->frame, &len);
    atb_pb_frame *got = NULL;
    ck_assert_int_eq(msg_decode(buf, len, &got), ATBUS_OK);
    ck_assert_int_eq(got->body_case, bodies[_i]);
    check_head(got);
    switch (got->body_case) {
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING:
        ck_assert_int_eq(got->ping->ping_id, -5);
        ck_assert_int_eq(got->ping->timepoint_microseconds, 1234567890123);
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG:
        ck_assert_int_eq(got->pong->ping_id, -5);
        ck_assert_int_eq(got->pong->timepoint_microseconds, 1234567890123);
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE:
        ck_assert_uint_eq(got->acknowledge->n_streams, 2);
        ck_assert_int_eq(got->acknowledge->streams[1]->stream_id, -2);
        ck_assert_int_eq(got->acknowledge->streams[1]->acknowledge_offset, 200);
        ck_assert_int_eq(got->acknowledge->streams[1]->received_max_offset,
                         300);
        ck_assert_int_eq(got->acknowledge->timepoint_microseconds, 99);
        ck_assert_int_eq(got->acknowledge->ack_delay_microseconds, 250);
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET: {
        const atb_pb_packet *p = got->packet;
        ck_assert_int_eq(p->stream_id, 9);
        ck_assert_int_eq(p->stream_offset, 4096);
        ck_assert_int_eq(p->flags, ATB_PACKET_FLAG_FINISH_STREAM);
        ck_assert_int_eq(p->padding_size, 2);
        ck_assert_int_eq(p->timepoint_microseconds, 42);
        atb_pb_content *c = NULL;
        ck_assert_int_eq(
            atb_packet_content_unpack(p->content.data, p->content.len, &c),
            ATBUS_OK);
        ck_assert_uint_eq(c->n_fragment, 2);
        const atb_pb_fragment *f = c->fragment[0];
        ck_assert_int_eq(f->packet_type, 1001);
        ck_assert_uint_eq(f->data.len, 40);
        ck_assert_mem_eq(f->data.data, m->data1, 40);
        ck_assert_int_eq(f->fragment_flag, ATB_FRAGMENT_FLAG_HAS_MORE);
        ck_assert(f->options->has_token);
        ck_assert_mem_eq(f->options->token.data, "tok-1234", 8);
        ck_assert_uint_eq(f->n_labels, 1);
        ck_assert_str_eq(f->labels[0]->key, "area.region");
        ck_assert_str_eq(f->labels[0]->value, "CN");
        ck_assert_str_eq(f->forward_for->address, "10.0.0.1");
        ck_assert_int_eq(f->forward_for->port, 7000);
        ck_assert_int_eq(f->forward_for->connection_id, 12);
        f = c->fragment[1];
        ck_assert_mem_eq(f->data.data, "end", 3);
        ck_assert_int_eq(f->fragment_flag, 0);
        ck_assert_int_eq(
            f->close_reason->code,
            ATBUS__PROTOCOL__ATBUS__CLOSE__REASON__ATBUS_CLOSE_REASON_SHUTDOWN);
        ck_assert_str_eq(f->close_reason->message, "bye");
        atb_packet_content_free(c);
        break;
    }
    default:
        ck_abort_msg("unexpected body");
    }
    atb_frame_message_free(got);
    free(buf);
    free(m);
}
END_TEST

START_TEST(test_register_round_trip)
{
    char name[] = "app-1.ns1", host[] = "host-a", ns[] = "ns1";
    char ch1[] = "shm", ch2[] = "ipv4", lib[] = "0.1.0", type[] = "node";
    char *channels[] = {ch1, ch2};
    atb_pb_register r;
    atbus__protocol__register_data__init(&r);
    r.name = name;
    r.pid = 4242;
    r.hostname = host;
    r.namespace_name = ns;
    r.protocol_version = ATBUS_PROTOCOL_VERSION;
    r.protocol_minimal_version = ATBUS_PROTOCOL_MINIMAL_VERSION;
    r.n_channels = 2;
    r.channels = channels;
    r.library_version = lib;
    r.type = type;
    uint8_t buf[256];
    size_t n = atbus__protocol__register_data__pack(&r, buf);
    atb_pb_register *got = NULL;
    ck_assert_int_eq(atb_register_unpack(buf, n, &got), ATBUS_OK);
    ck_assert_str_eq(got->name, "app-1.ns1");
    ck_assert_int_eq(got->pid, 4242);
    ck_assert_str_eq(got->hostname, "host-a");
    ck_assert_str_eq(got->namespace_name, "ns1");
    ck_assert_uint_eq(got->protocol_version, ATBUS_PROTOCOL_VERSION);
    ck_assert_uint_eq(got->n_channels, 2);
    ck_assert_str_eq(got->channels[1], "ipv4");
    ck_assert_str_eq(got->type, "node");
    atb_register_free(got);
    ck_assert_int_eq(atb_register_unpack((const uint8_t *)"\xff", 1, &got),
                     ATBUS_EFRAME_DECODE);
}
END_TEST

/* frame_of wraps raw message bytes and decodes them. */
static int
decode_raw(const uint8_t *msg, size_t len)
{
    uint8_t buf[256];
    size_t w;
    ck_assert_int_eq(atb_frame_wrap(3, msg, len, buf, sizeof(buf), &w),
                     ATBUS_OK);
    atb_pb_frame *got = NULL;
    int rc = msg_decode(buf, w, &got);
    atb_frame_message_free(got);
    return rc;
}

START_TEST(test_message_not_protobuf)
{
    /* Field 1 as a length-delimited value longer than the input. */
    static const uint8_t overrun[] = {0x0a, 0x7f, 0x01};
    /* Wire type 7 does not exist. */
    static const uint8_t bad_wire_type[] = {0x0f, 0x00};
    /* Truncated varint at the end. */
    static const uint8_t truncated[] = {0x28, 0xff};
    ck_assert_int_eq(decode_raw(overrun, sizeof(overrun)), ATBUS_EFRAME_DECODE);
    ck_assert_int_eq(decode_raw(bad_wire_type, sizeof(bad_wire_type)),
                     ATBUS_EFRAME_DECODE);
    ck_assert_int_eq(decode_raw(truncated, sizeof(truncated)),
                     ATBUS_EFRAME_DECODE);
    /* Field number 2^29 (one above the protobuf maximum) before a valid
     * ping: protobuf-c alone would skip it, other implementations fail. */
    static const uint8_t big_field[] = {0x80, 0x80, 0x80, 0x80,
                                        0x10, 0x01, 0x2a, 0x00};
    ck_assert_int_eq(decode_raw(big_field, sizeof(big_field)),
                     ATBUS_EFRAME_DECODE);
    /* The same ping with field number 2^29-1 is an unknown field: fine. */
    static const uint8_t max_field[] = {0xf8, 0xff, 0xff, 0xff,
                                        0x0f, 0x01, 0x2a, 0x00};
    ck_assert_int_eq(decode_raw(max_field, sizeof(max_field)), ATBUS_OK);
}
END_TEST

START_TEST(test_message_without_body)
{
    struct msg_set *m = malloc(sizeof(*m));
    msg_fill(m, ATBUS__PROTOCOL__FRAME_MESSAGE__BODY__NOT_SET);
    uint8_t out[256];
    size_t len;
    ck_assert_int_eq(atb_frame_encode(&m->frame, out, sizeof(out), &len),
                     ATBUS_EINVAL);
    uint8_t *buf = raw_encode(&m->frame, &len);
    atb_pb_frame *got = NULL;
    ck_assert_int_eq(msg_decode(buf, len, &got), ATBUS_EFRAME_INVALID);
    ck_assert_ptr_null(got);
    /* A body case without its body is refused, not dereferenced. */
    static const int cases[] = {
        ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING,
        ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG,
        ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET,
        ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE,
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m->frame.body_case = (Atbus__Protocol__FrameMessage__BodyCase)cases[i];
        ck_assert_int_eq(atb_frame_encode(&m->frame, out, sizeof(out), &len),
                         ATBUS_EINVAL);
    }
    /* An empty message has no body either. */
    ck_assert_int_eq(decode_raw(NULL, 0), ATBUS_EFRAME_INVALID);
    free(buf);
    free(m);
}
END_TEST

/* Each case breaks one protocol rule of a valid message. */
enum rule_case {
    RULE_NEGATIVE_OFFSET,
    RULE_PADDING_OVER_CONTENT,
    RULE_NEGATIVE_PADDING,
    RULE_NEGATIVE_TIMEPOINT,
    RULE_ACK_MAX_BELOW_ACK,
    RULE_ACK_NEGATIVE,
    RULE_ACK_NEGATIVE_DELAY,
    RULE_PING_NEGATIVE_TIMEPOINT,
    RULE_COUNT
};

START_TEST(test_message_rules)
{
    struct msg_set *m = malloc(sizeof(*m));
    int body = _i <= RULE_NEGATIVE_TIMEPOINT
                   ? ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET
               : _i == RULE_PING_NEGATIVE_TIMEPOINT
                   ? ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING
                   : ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE;
    msg_fill(m, body);
    switch (_i) {
    case RULE_NEGATIVE_OFFSET:
        m->packet.stream_offset = -1;
        break;
    case RULE_PADDING_OVER_CONTENT:
        m->packet.padding_size = (int32_t)m->packet.content.len + 1;
        break;
    case RULE_NEGATIVE_PADDING:
        m->packet.padding_size = -1;
        break;
    case RULE_NEGATIVE_TIMEPOINT:
        m->packet.timepoint_microseconds = -1;
        break;
    case RULE_ACK_MAX_BELOW_ACK:
        m->sack[1].received_max_offset = m->sack[1].acknowledge_offset - 1;
        break;
    case RULE_ACK_NEGATIVE:
        m->sack[0].acknowledge_offset = -3;
        m->sack[0].received_max_offset = 0;
        break;
    case RULE_ACK_NEGATIVE_DELAY:
        m->ack.ack_delay_microseconds = -1;
        break;
    case RULE_PING_NEGATIVE_TIMEPOINT:
        m->ping.timepoint_microseconds = -1;
        break;
    default:
        break;
    }
    /* The encoder refuses to write it... */
    uint8_t out[1024];
    size_t len = 0;
    ck_assert_int_eq(atb_frame_encode(&m->frame, out, sizeof(out), &len),
                     ATBUS_EINVAL);
    ck_assert_uint_eq(len, 0);
    /* ...and a reader refuses it when another implementation sends it. */
    uint8_t *buf = raw_encode(&m->frame, &len);
    atb_pb_frame *got = NULL;
    ck_assert_int_eq(msg_decode(buf, len, &got), ATBUS_EFRAME_INVALID);
    ck_assert_ptr_null(got);
    free(buf);
    free(m);
}
END_TEST

/* Strings that protobuf-c would accept but must not be: each is put in
 * head.source, a fragment's label and a forwarded address. */
static const struct {
    const char *what;
    const char *bytes;
    size_t len;
} bad_strings[] = {
    {"embedded NUL", "node-a\0evil", 11},
    {"lone continuation byte",
     "a\x80"
     "b",
     3},
    {"overlong slash", "\xc0\xaf", 2},
    {"surrogate", "\xed\xa0\x80", 3},
    {"above U+10FFFF", "\xf4\x90\x80\x80", 4},
    {"truncated sequence", "ab\xe2\x82", 4},
};

START_TEST(test_message_bad_strings)
{
    struct msg_set *m = malloc(sizeof(*m));
    int where = _i % 3;
    size_t which = (size_t)_i / 3;
    msg_fill(m, ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET);
    /* protobuf-c packs strings with strlen, so write the field by hand:
     * a valid frame whose string is a same-length placeholder, then the
     * placeholder bytes overwritten on the wire. */
    char placeholder[16];
    memset(placeholder, 'Z', bad_strings[which].len);
    placeholder[bad_strings[which].len] = 0;
    if (where == 0) {
        m->head.source = placeholder;
    } else {
        if (where == 1) {
            m->label.value = placeholder;
        } else {
            m->forward.address = placeholder;
        }
        m->packet.content.len =
            atbus__protocol__packet_content__pack(&m->content, m->content_buf);
    }
    size_t len;
    uint8_t *buf = msg_encode(&m->frame, &len);
    uint8_t *hit = memmem(buf, len, placeholder, bad_strings[which].len);
    ck_assert_ptr_nonnull(hit);
    memcpy(hit, bad_strings[which].bytes, bad_strings[which].len);
    atb_frame_seal(buf, len - ATB_FRAME_HASH_LEN);

    atb_pb_frame *got = NULL;
    int rc = msg_decode(buf, len, &got);
    if (where == 0) {
        ck_assert_msg(rc == ATBUS_EFRAME_INVALID, "%s in head.source: %s",
                      bad_strings[which].what, atbus_err_name(rc));
    } else {
        /* The frame is fine; the content inside it is not. */
        ck_assert_int_eq(rc, ATBUS_OK);
        atb_pb_content *c = NULL;
        rc = atb_packet_content_unpack(got->packet->content.data,
                                       got->packet->content.len, &c);
        ck_assert_msg(rc == ATBUS_EFRAME_INVALID, "%s in content: %s",
                      bad_strings[which].what, atbus_err_name(rc));
        ck_assert_ptr_null(c);
    }
    atb_frame_message_free(got);
    free(buf);
    free(m);
}
END_TEST

START_TEST(test_message_good_utf8)
{
    struct msg_set *m = malloc(sizeof(*m));
    msg_fill(m, ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING);
    char name[] = "n\xc3\xa9ud-\xe4\xb8\xad-\xf0\x9f\x9a\x80";
    m->head.source = name;
    size_t len;
    uint8_t *buf = msg_encode(&m->frame, &len);
    atb_pb_frame *got = NULL;
    ck_assert_int_eq(msg_decode(buf, len, &got), ATBUS_OK);
    ck_assert_str_eq(got->head->source, name);
    atb_frame_message_free(got);
    free(buf);
    free(m);
}
END_TEST

START_TEST(test_message_encode_small_buffer)
{
    struct msg_set *m = malloc(sizeof(*m));
    msg_fill(m, ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET);
    size_t need = atb_frame_encoded_size(&m->frame);
    uint8_t *buf = malloc(need);
    size_t w = 0;
    ck_assert_int_eq(atb_frame_encode(&m->frame, buf, need - 1, &w),
                     ATBUS_ENOBUFS);
    ck_assert_uint_eq(w, 0);
    free(buf);
    free(m);
}
END_TEST

START_TEST(test_message_allocation_failure_loop)
{
    /* Decoder + unpack of every body type, with allocation N failing for
     * N = 1, 2, ... until a run completes without a failure. ENOMEM must
     * never be reported as a decode error, and nothing may leak. */
    uint8_t *stream = NULL;
    size_t len = 0;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct msg_set *m = malloc(sizeof(*m));
        msg_fill(m, bodies[i]);
        size_t n;
        uint8_t *f = msg_encode(&m->frame, &n);
        stream = realloc(stream, len + n);
        memcpy(stream + len, f, n);
        len += n;
        free(f);
        free(m);
    }
    long live = atb_alloc_live();
    int completed = 0;
    unsigned long n;
    for (n = 1; n < 10000 && !completed; n++) {
        atb_frame_decoder d;
        atb_frame_decoder_init(&d, 0);
        atb_alloc_fail_nth(n);
        size_t pos = 0;
        int frames = 0;
        int rc = 0;
        /* Pieces of 7 bytes force the decoder to buffer. */
        while (pos < len && rc >= 0) {
            size_t piece = len - pos < 7 ? len - pos : 7;
            size_t used;
            atb_frame_view v;
            rc = atb_frame_decoder_next(&d, stream + pos, piece, &used, &v);
            pos += used;
            if (rc == 1) {
                atb_pb_frame *msg = NULL;
                rc = atb_frame_message_unpack(v.message, v.message_len, &msg);
                if (rc == ATBUS_OK) {
                    ck_assert_int_eq(msg->body_case, bodies[frames]);
                    atb_frame_message_free(msg);
                    frames++;
                }
            }
        }
        ck_assert_msg(rc >= 0 || rc == ATBUS_ENOMEM,
                      "allocation %lu: got %s instead of ENOMEM", n,
                      atbus_err_name(rc));
        completed = !atb_alloc_failed();
        if (completed) {
            ck_assert_int_eq(frames, 4);
        }
        atb_alloc_fail_nth(0);
        atb_frame_decoder_fini(&d);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert(completed);
    /* Decoding all four takes many allocations: the loop really ran. */
    ck_assert_uint_gt(n, 10);
    free(stream);
}
END_TEST

static Suite *
message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc = atb_test_case("message", 60);
    tcase_add_loop_test(tc, test_message_round_trip_every_body, 0,
                        (int)(sizeof(bodies) / sizeof(bodies[0])));
    tcase_add_test(tc, test_register_round_trip);
    tcase_add_test(tc, test_message_not_protobuf);
    tcase_add_test(tc, test_message_without_body);
    tcase_add_loop_test(tc, test_message_rules, 0, RULE_COUNT);
    tcase_add_loop_test(
        tc, test_message_bad_strings, 0,
        (int)(3 * sizeof(bad_strings) / sizeof(bad_strings[0])));
    tcase_add_test(tc, test_message_good_utf8);
    tcase_add_test(tc, test_message_encode_small_buffer);
    tcase_add_test(tc, test_message_allocation_failure_loop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(message_suite());
}
