/*
 * libFuzzer target for the stream engine's input: data packets and
 * acknowledgements as a peer would send them, in any order, against an
 * engine that has data of its own in flight.
 *
 * The input is a sequence of records, each a 2-byte little-endian length
 * and a frame_message (the part of a frame after its header; the hash is
 * left out so the fuzzer can reach the engine). The first byte picks the
 * path kind (byte stream or datagram) and how far the clock moves per
 * record. Each record is decoded as the node decodes it and fed to the
 * engine; after each one the engine writes what it plans and its timers
 * run. The engine must never crash, leak, deliver a message longer than
 * the limit, or acknowledge beyond what it received; input it refuses is
 * what a node answers by closing the connection.
 */
#include <atbus/error.h>

#include <stdint.h>
#include <string.h>

#include "stream/codec.h"
#include "stream/engine.h"
#include "wire/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MESSAGE 4096

static void
fuzz_require(int ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

static void
fuzz_on_message(int64_t stream_id, const uint8_t *data, size_t len, void *arg)
{
    (void)stream_id;
    (void)arg;
    fuzz_require(len <= FUZZ_MAX_MESSAGE);
    if (len > 0) {
        /* Touch every byte: ASan checks the view is valid. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < len; i++) {
            sum = (uint8_t)(sum + data[i]);
        }
        (void)sum;
    }
}

static const atb_sengine_cbs fuzz_cbs = {.on_message = fuzz_on_message};

/* fuzz_drain writes and commits whatever the engine plans on path 1. */
static void
fuzz_drain(atb_sengine *e, uint64_t now)
{
    atb_sout out;
    for (int i = 0; i < 64 && atb_sengine_write(e, 1, now, &out) == 1; i++) {
        if (out.kind == ATB_SOUT_ACK) {
            for (size_t k = 0; k < out.nacks; k++) {
                fuzz_require(out.acks[k].ack_offset <=
                             out.acks[k].received_max);
            }
        }
        out.packet.timepoint_us = (int64_t)now;
        atb_sengine_commit(e, 1, now, &out);
    }
}

static void
fuzz_feed(atb_sengine *e, const uint8_t *msg, size_t len, uint64_t now)
{
    atb_pb_frame *f;
    if (atb_frame_message_unpack(msg, len, &f) != ATBUS_OK) {
        return;
    }
    if (f->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET) {
        atb_pb_content *content;
        atb_sfrag frags[ATB_PACKET_MAX_FRAGS];
        atb_spacket pkt;
        if (atb_scodec_packet(f->packet, &content, frags, &pkt) == ATBUS_OK) {
            (void)atb_sengine_on_packet(e, 1, &pkt, now);
            atb_packet_content_free(content);
        }
    } else if (f->body_case ==
               ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE) {
        atb_sack acks[ATB_PACKET_MAX_FRAGS];
        size_t n;
        if (atb_scodec_ack(f->acknowledge, acks, &n) == ATBUS_OK) {
            (void)atb_sengine_on_ack(
                e, 1, acks, n, f->acknowledge->timepoint_microseconds,
                f->acknowledge->ack_delay_microseconds, now);
        }
    }
    atb_frame_message_free(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    atb_sengine_config cfg;
    atb_sengine_config_default(&cfg);
    cfg.max_message = FUZZ_MAX_MESSAGE;
    cfg.stream_window = 64 * 1024;
    atb_sengine *e;
    if (atb_sengine_new(&e, &cfg, &fuzz_cbs, NULL) != ATBUS_OK) {
        return 0;
    }
    unsigned flags = (data[0] & 1) ? ATB_SPATH_RELIABLE : 0;
    uint64_t step = (uint64_t)(data[0] >> 1) * 1000;
    (void)atb_sengine_path_add(e, 1, 1200, flags);
    /* Something of our own in flight, for acknowledgements to act on. */
    static const uint8_t ours[300];
    for (int i = 0; i < 20; i++) {
        (void)atb_sengine_send(e, 1 + i % 3, ours, (size_t)(i * 15));
    }
    (void)atb_sengine_finish(e, 2);
    uint64_t now = 1000;
    fuzz_drain(e, now);
    size_t at = 1;
    while (at + 2 <= size) {
        size_t len = (size_t)data[at] | ((size_t)data[at + 1] << 8);
        at += 2;
        if (len > size - at) {
            len = size - at;
        }
        fuzz_feed(e, data + at, len, now);
        at += len;
        now += step;
        if (atb_sengine_expiry(e) <= now) {
            atb_sengine_on_expiry(e, now);
        }
        fuzz_drain(e, now);
    }
    for (int64_t id = -2; id < 8; id++) {
        atb_sstream_stats st;
        if (atb_sengine_stream_stats(e, id, &st) == ATBUS_OK) {
            fuzz_require(st.acked >= 0 && st.queued_units >= 0);
        }
    }
    atb_sengine_free(e);
    return 0;
}
