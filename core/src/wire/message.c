/*
 * protobuf-c glue: allocation through atb_malloc, encode into frames,
 * decode with protocol validation.
 */
#include "wire/message.h"

#include <atbus/error.h>
#include <atbus/version.h>

#include <assert.h>

#include "common/alloc.h"
#include "wire/pb_scan.h"

/* The generated enums must agree with the names the library uses. */
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PROTOCOL__CONST__ATBUS_PROTOCOL_CONST_VERSION ==
        ATBUS_PROTOCOL_VERSION,
    "protocol version");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PROTOCOL__CONST__ATBUS_PROTOCOL_CONST_MINIMAL_VERSION ==
        ATBUS_PROTOCOL_MINIMAL_VERSION,
    "minimal protocol version");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PROTOCOL__CONST__ATBUS_PROTOCOL_CONST_MAGIC_NUMBER ==
        ATB_FRAME_HASH_SEED,
    "hash seed");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PACKET__FLAG__TYPE__ATBUS_PACKET_FLAG_TYPE_FINISH_STREAM ==
        ATB_PACKET_FLAG_FINISH_STREAM,
    "FINISH_STREAM");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PACKET__FLAG__TYPE__ATBUS_PACKET_FLAG_TYPE_FINISH_CONNECTION ==
        ATB_PACKET_FLAG_FINISH_CONNECTION,
    "FINISH_CONNECTION");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PACKET__FLAG__TYPE__ATBUS_PACKET_FLAG_TYPE_RESET_OFFSET ==
        ATB_PACKET_FLAG_RESET_OFFSET,
    "RESET_OFFSET");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__PACKET__FLAG__TYPE__ATBUS_PACKET_FLAG_TYPE_TLS_HANDSHAKE ==
        ATB_PACKET_FLAG_TLS_HANDSHAKE,
    "TLS_HANDSHAKE");
_Static_assert(
    ATBUS__PROTOCOL__ATBUS__FRAGMENT__FLAG__TYPE__ATBUS_FRAGMENT_FLAG_TYPE_HAS_MORE ==
        ATB_FRAGMENT_FLAG_HAS_MORE,
    "HAS_MORE");

/* Remembers whether an allocation failed during one protobuf-c call. */
struct pb_alloc_state {
    int failed;
};

/*
 * protobuf-c allocates every string, byte field and nested message of an
 * unpacked frame separately, and frees them one by one: on the receive
 * path that is most of the allocator's work. Small pieces come from a
 * per-thread scratch area instead, reset when the last piece in it is
 * freed (frames are unpacked, used and freed before the next one); what
 * does not fit goes to atb_malloc. Test builds (ATBUS_TESTING) leave the
 * area out, so every piece stays visible to the allocation-failure and
 * leak checks; the demo and the benchmarks run the area under the
 * sanitizers.
 */
#define PB_ARENA_SIZE ((size_t)64 * 1024)
#define PB_ARENA_PIECE_MAX ((size_t)4096)

#ifndef ATBUS_TESTING
struct pb_arena {
    size_t used;
    size_t live;
    _Alignas(16) uint8_t buf[PB_ARENA_SIZE];
};

static _Thread_local struct pb_arena pb_arena;

static int
pb_arena_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t base = (uintptr_t)pb_arena.buf;
    return a >= base && a < base + PB_ARENA_SIZE;
}
#endif

static void *
pb_alloc(void *data, size_t size)
{
#ifndef ATBUS_TESTING
    size_t need = (size + 15) & ~(size_t)15;
    if (size <= PB_ARENA_PIECE_MAX && need <= PB_ARENA_SIZE - pb_arena.used) {
        void *p = pb_arena.buf + pb_arena.used;
        pb_arena.used += need;
        pb_arena.live++;
        return p;
    }
#endif
    void *p = atb_malloc(size);
    if (p == NULL) {
        ((struct pb_alloc_state *)data)->failed = 1;
    }
    return p;
}

static void
pb_free(void *data, void *p)
{
    (void)data;
#ifndef ATBUS_TESTING
    if (pb_arena_owns(p)) {
        if (--pb_arena.live == 0) {
            pb_arena.used = 0;
        }
        return;
    }
#endif
    atb_free(p);
}

static ProtobufCAllocator
pb_allocator(struct pb_alloc_state *state)
{
    ProtobufCAllocator a = {
        .alloc = pb_alloc,
        .free = pb_free,
        .allocator_data = state,
    };
    return a;
}

/* message_check_packet applies the rules protobuf cannot express. */
static int
message_check_packet(const atb_pb_packet *p)
{
    if (p->stream_offset < 0) {
        return ATBUS_EFRAME_INVALID;
    }
    if (p->padding_size < 0 || (size_t)p->padding_size > p->content.len) {
        return ATBUS_EFRAME_INVALID;
    }
    if (p->timepoint_microseconds < 0) {
        return ATBUS_EFRAME_INVALID;
    }
    return ATBUS_OK;
}

static int
message_check_ack(const atb_pb_ack *a)
{
    for (size_t i = 0; i < a->n_streams; i++) {
        const atb_pb_stream_ack *s = a->streams[i];
        if (s == NULL || s->acknowledge_offset < 0 ||
            s->received_max_offset < s->acknowledge_offset) {
            return ATBUS_EFRAME_INVALID;
        }
    }
    if (a->timepoint_microseconds < 0 || a->ack_delay_microseconds < 0) {
        return ATBUS_EFRAME_INVALID;
    }
    return ATBUS_OK;
}

/* message_check applies the protocol rules to a whole frame_message. The
 * NULL checks matter only for messages built by hand before encoding;
 * protobuf-c never unpacks a set oneof without its body. */
static int
message_check(const atb_pb_frame *m)
{
    switch (m->body_case) {
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING:
        return m->ping == NULL || m->ping->timepoint_microseconds < 0
                   ? ATBUS_EFRAME_INVALID
                   : ATBUS_OK;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG:
        return m->pong == NULL || m->pong->timepoint_microseconds < 0
                   ? ATBUS_EFRAME_INVALID
                   : ATBUS_OK;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET:
        return m->packet == NULL ? ATBUS_EFRAME_INVALID
                                 : message_check_packet(m->packet);
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE:
        return m->acknowledge == NULL ? ATBUS_EFRAME_INVALID
                                      : message_check_ack(m->acknowledge);
    default:
        /* No body (or one this version does not know): nothing to do with
         * it, and silently ignoring it would hide a broken peer. */
        return ATBUS_EFRAME_INVALID;
    }
}

size_t
atb_frame_encoded_size(const atb_pb_frame *msg)
{
    size_t mlen = atbus__protocol__frame_message__get_packed_size(msg);
    return atb_frame_size(ATBUS_PROTOCOL_VERSION, mlen);
}

int
atb_frame_encode(const atb_pb_frame *msg, uint8_t *out, size_t cap,
                 size_t *written)
{
    /* Never put on the wire what a reader must reject. */
    if (message_check(msg) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    size_t mlen = atbus__protocol__frame_message__get_packed_size(msg);
    size_t total = atb_frame_size(ATBUS_PROTOCOL_VERSION, mlen);
    if (cap < total) {
        return ATBUS_ENOBUFS;
    }
    size_t head = atb_frame_write_header(ATBUS_PROTOCOL_VERSION, mlen, out);
    size_t packed = atbus__protocol__frame_message__pack(msg, out + head);
    assert(packed == mlen);
    (void)packed;
    atb_frame_seal(out, head + mlen);
    *written = total;
    return ATBUS_OK;
}

/* pb_unpack decodes any message with atb_malloc, telling ENOMEM apart from
 * malformed input. */
static int
pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
          size_t len, ProtobufCMessage **out)
{
    int rc = atb_pb_scan_strings(desc, data, len);
    if (rc != ATBUS_OK) {
        return rc;
    }
    struct pb_alloc_state st = {0};
    ProtobufCAllocator a = pb_allocator(&st);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, data);
    if (m == NULL) {
        return st.failed ? ATBUS_ENOMEM : ATBUS_EFRAME_DECODE;
    }
    *out = m;
    return ATBUS_OK;
}

static void
pb_free_unpacked(ProtobufCMessage *m)
{
    if (m != NULL) {
        struct pb_alloc_state st = {0};
        ProtobufCAllocator a = pb_allocator(&st);
        protobuf_c_message_free_unpacked(m, &a);
    }
}

int
atb_frame_message_unpack(const uint8_t *data, size_t len, atb_pb_frame **out)
{
    ProtobufCMessage *m;
    int rc =
        pb_unpack(&atbus__protocol__frame_message__descriptor, data, len, &m);
    if (rc != ATBUS_OK) {
        return rc;
    }
    rc = message_check((const atb_pb_frame *)m);
    if (rc != ATBUS_OK) {
        pb_free_unpacked(m);
        return rc;
    }
    *out = (atb_pb_frame *)m;
    return ATBUS_OK;
}

void
atb_frame_message_free(atb_pb_frame *msg)
{
    pb_free_unpacked((ProtobufCMessage *)msg);
}

int
atb_packet_content_unpack(const uint8_t *data, size_t len, atb_pb_content **out)
{
    ProtobufCMessage *m;
    int rc =
        pb_unpack(&atbus__protocol__packet_content__descriptor, data, len, &m);
    if (rc == ATBUS_OK) {
        *out = (atb_pb_content *)m;
    }
    return rc;
}

void
atb_packet_content_free(atb_pb_content *content)
{
    pb_free_unpacked((ProtobufCMessage *)content);
}

int
atb_register_unpack(const uint8_t *data, size_t len, atb_pb_register **out)
{
    ProtobufCMessage *m;
    int rc =
        pb_unpack(&atbus__protocol__register_data__descriptor, data, len, &m);
    if (rc == ATBUS_OK) {
        *out = (atb_pb_register *)m;
    }
    return rc;
}

void
atb_register_free(atb_pb_register *reg)
{
    pb_free_unpacked((ProtobufCMessage *)reg);
}
