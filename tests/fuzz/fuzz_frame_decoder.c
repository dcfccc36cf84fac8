/*
 * libFuzzer target for the frame layer: atb_frame_parse, the incremental
 * frame decoder and the protobuf-c unpackers behind it.
 *
 * The input is a byte stream as a peer would send it. A reference reading
 * walks it with atb_frame_parse alone; the decoder then reads it whole, one
 * byte at a time, in pieces whose sizes come from a generator seeded with
 * the input's own hash (so the fuzzer explores splits along with content),
 * and once more with allocations failing. Every reading must find the same
 * frames at the same offsets and end the same way, because a transport
 * cannot choose how the network cuts its bytes. Each frame is unpacked;
 * what unpacks is encoded again and must decode to the same bytes. Any
 * broken invariant traps, so libFuzzer reports it like a crash.
 */
#include <atbus/error.h>
#include <atbus/version.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "wire/frame.h"
#include "wire/frame_decoder.h"
#include "wire/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_require traps when an invariant does not hold. */
static void
fuzz_require(int ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

/* fuzz_rng is splitmix64: a fixed, tiny generator, so a reproducer file
 * replays exactly the same splits and allocation failures. */
static uint64_t
fuzz_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* fuzz_mix folds v into a running digest. Comparing digests compares the
 * whole sequence of events without storing it. */
static uint64_t
fuzz_mix(uint64_t digest, uint64_t v)
{
    uint64_t s = digest ^ v;
    return fuzz_rng(&s);
}

/* How the decoder is fed in one reading. */
enum fuzz_feed {
    FUZZ_FEED_WHOLE,  /* the whole input in one piece */
    FUZZ_FEED_BYTES,  /* one byte per call */
    FUZZ_FEED_PIECES, /* pseudo-random piece sizes, some empty */
};

/* What one reading of the input saw. */
struct fuzz_reading {
    size_t frames;      /* frames found */
    uint64_t geometry;  /* digest of each frame's offset, length, version */
    uint64_t unpacked;  /* digest of the unpack results, when unpacking */
    int end;            /* 0, or the framing error that stopped it */
    size_t end_pending; /* bytes of an incomplete last frame */
};

/* Settings shared by every reading of one input. */
struct fuzz_input {
    const uint8_t *data;
    size_t size;
    size_t max_message; /* the cap the decoder is initialised with */
    size_t parse_cap;   /* the same cap as atb_frame_parse takes it */
    uint64_t seed;
};

static void
fuzz_record_frame(struct fuzz_reading *r, size_t offset,
                  const atb_frame_view *v)
{
    r->frames++;
    r->geometry = fuzz_mix(r->geometry, offset);
    r->geometry = fuzz_mix(r->geometry, v->frame_len);
    r->geometry = fuzz_mix(r->geometry, v->version);
    r->geometry = fuzz_mix(r->geometry, v->message_len);
}

/* fuzz_arm makes one of the next allocations fail when allocation faults
 * are on. A retry runs unarmed, so every call eventually gets through. */
static void
fuzz_arm(int faults, int retry, uint64_t *rng)
{
    if (faults && !retry) {
        atb_alloc_fail_nth(1 + fuzz_rng(rng) % 16);
    }
}

/* fuzz_after checks an unpack result under fault injection and tells
 * whether to retry: ATBUS_ENOMEM is only allowed when the hook fired, and
 * the call is then repeated with allocation working. */
static int
fuzz_after(int faults, int rc)
{
    int retry = 0;
    if (rc == ATBUS_ENOMEM) {
        fuzz_require(faults && atb_alloc_failed());
        retry = 1;
    }
    if (faults) {
        atb_alloc_fail_nth(0);
    }
    return retry;
}

/* fuzz_roundtrip encodes an unpacked message again; the frame must parse
 * and unpack, and encoding that result must give the same bytes. */
static void
fuzz_roundtrip(const atb_pb_frame *m)
{
    size_t size = atb_frame_encoded_size(m);
    uint8_t *buf = malloc(size);
    uint8_t *again = malloc(size);
    fuzz_require(buf != NULL && again != NULL);

    size_t written = 0;
    fuzz_require(atb_frame_encode(m, buf, size - 1, &written) == ATBUS_ENOBUFS);
    fuzz_require(atb_frame_encode(m, buf, size, &written) == ATBUS_OK);
    fuzz_require(written == size);

    atb_frame_view v;
    fuzz_require(atb_frame_parse(buf, size, size, &v) == ATBUS_OK);
    fuzz_require(v.frame_len == size);
    fuzz_require(v.version == ATBUS_PROTOCOL_VERSION);
    atb_pb_frame *m2 = NULL;
    fuzz_require(atb_frame_message_unpack(v.message, v.message_len, &m2) ==
                 ATBUS_OK);
    fuzz_require(m2->body_case == m->body_case);
    /* The first encoding normalises (duplicate fields merged, defaults
     * dropped); from then on encoding must be stable. */
    fuzz_require(atb_frame_encoded_size(m2) == size);
    fuzz_require(atb_frame_encode(m2, again, size, &written) == ATBUS_OK);
    fuzz_require(memcmp(buf, again, size) == 0);
    atb_frame_message_free(m2);
    free(again);
    free(buf);
}

/* fuzz_unpack_fragment unpacks what a fragment carries; only register data
 * has a fixed schema. */
static uint64_t
fuzz_unpack_fragment(const atb_pb_fragment *f, int faults, uint64_t *rng)
{
    if (f->packet_type !=
        ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER) {
        return 0;
    }
    atb_pb_register *reg = NULL;
    int rc;
    for (int retry = 0;; retry = 1) {
        fuzz_arm(faults, retry, rng);
        rc = atb_register_unpack(f->data.data, f->data.len, &reg);
        if (!fuzz_after(faults, rc)) {
            break;
        }
    }
    if (rc != ATBUS_OK) {
        fuzz_require(rc == ATBUS_EFRAME_DECODE);
        return (uint64_t)rc;
    }
    uint64_t seen = (uint64_t)reg->n_channels + reg->protocol_version;
    atb_register_free(reg);
    return seen;
}

/* fuzz_unpack_content unpacks a packet's content and the fragments in it,
 * and returns a digest of what happened. */
static uint64_t
fuzz_unpack_content(const atb_pb_packet *p, int faults, uint64_t *rng)
{
    atb_pb_content *c = NULL;
    int rc;
    for (int retry = 0;; retry = 1) {
        fuzz_arm(faults, retry, rng);
        rc = atb_packet_content_unpack(p->content.data, p->content.len, &c);
        if (!fuzz_after(faults, rc)) {
            break;
        }
    }
    if (rc != ATBUS_OK) {
        fuzz_require(rc == ATBUS_EFRAME_DECODE);
        return (uint64_t)rc;
    }
    uint64_t digest = c->n_fragment;
    for (size_t i = 0; i < c->n_fragment; i++) {
        const atb_pb_fragment *f = c->fragment[i];
        digest = fuzz_mix(digest, (uint64_t)f->fragment_flag);
        digest = fuzz_mix(digest, f->n_labels);
        digest = fuzz_mix(digest, fuzz_unpack_fragment(f, faults, rng));
    }
    atb_packet_content_free(c);
    return digest;
}

/* fuzz_unpack_frame unpacks one frame's message and everything inside it;
 * the returned digest must not depend on allocation faults. */
static uint64_t
fuzz_unpack_frame(const atb_frame_view *v, int faults, int roundtrip,
                  uint64_t *rng)
{
    atb_pb_frame *m = NULL;
    int rc;
    for (int retry = 0;; retry = 1) {
        fuzz_arm(faults, retry, rng);
        rc = atb_frame_message_unpack(v->message, v->message_len, &m);
        if (!fuzz_after(faults, rc)) {
            break;
        }
    }
    if (rc != ATBUS_OK) {
        fuzz_require(rc == ATBUS_EFRAME_DECODE || rc == ATBUS_EFRAME_INVALID);
        return (uint64_t)rc;
    }
    uint64_t digest = (uint64_t)m->body_case;
    if (m->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET) {
        /* The validation after unpack promises these. */
        fuzz_require(m->packet->stream_offset >= 0);
        fuzz_require(m->packet->padding_size >= 0 &&
                     (size_t)m->packet->padding_size <= m->packet->content.len);
        digest = fuzz_mix(digest, fuzz_unpack_content(m->packet, faults, rng));
    } else if (m->body_case ==
               ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE) {
        for (size_t i = 0; i < m->acknowledge->n_streams; i++) {
            const atb_pb_stream_ack *s = m->acknowledge->streams[i];
            fuzz_require(s->acknowledge_offset >= 0 &&
                         s->received_max_offset >= s->acknowledge_offset);
        }
        digest = fuzz_mix(digest, m->acknowledge->n_streams);
    }
    if (roundtrip) {
        fuzz_roundtrip(m);
    }
    atb_frame_message_free(m);
    return digest;
}

/*
 * fuzz_reference reads the input with atb_frame_parse alone, frame after
 * frame: the behaviour every decoder reading must reproduce. It also
 * unpacks each frame and round-trips what unpacks.
 */
static void
fuzz_reference(const struct fuzz_input *in, struct fuzz_reading *r)
{
    memset(r, 0, sizeof(*r));
    size_t off = 0;
    uint64_t rng = in->seed;
    for (;;) {
        atb_frame_view v;
        int rc =
            atb_frame_parse(in->data + off, in->size - off, in->parse_cap, &v);
        if (rc == ATBUS_ETRUNCATED) {
            r->end_pending = in->size - off;
            return;
        }
        if (rc != ATBUS_OK) {
            r->end = rc;
            return;
        }
        fuzz_require(v.frame_len <= in->size - off);
        fuzz_require(v.message == in->data + off + v.frame_len - v.message_len -
                                      ATB_FRAME_HASH_LEN);
        fuzz_require(v.message_len <= in->parse_cap);
        /* Any shorter prefix of a good frame is merely incomplete. */
        atb_frame_view scratch;
        size_t cut = (size_t)(fuzz_rng(&rng) % v.frame_len);
        fuzz_require(atb_frame_parse(in->data + off, cut, in->parse_cap,
                                     &scratch) == ATBUS_ETRUNCATED);
        fuzz_require(atb_frame_parse(in->data + off, v.frame_len - 1,
                                     in->parse_cap,
                                     &scratch) == ATBUS_ETRUNCATED);
        fuzz_record_frame(r, off, &v);
        r->unpacked = fuzz_mix(r->unpacked, fuzz_unpack_frame(&v, 0, 1, &rng));
        off += v.frame_len;
    }
}

/* fuzz_piece_size picks the next piece for FUZZ_FEED_PIECES: mostly small,
 * sometimes empty, sometimes large, so headers, messages and hashes are
 * all cut at every place. */
static size_t
fuzz_piece_size(uint64_t *rng, size_t left)
{
    uint64_t r = fuzz_rng(rng);
    size_t n;
    switch (r & 7) {
    case 0:
        n = 0;
        break;
    case 1:
    case 2:
        n = 1 + (size_t)((r >> 8) % 4);
        break;
    case 3:
    case 4:
        n = 1 + (size_t)((r >> 8) % 32);
        break;
    case 5:
        n = 1 + (size_t)((r >> 8) % 256);
        break;
    default:
        n = 1 + (size_t)((r >> 8) % (left + 1));
        break;
    }
    return n < left ? n : left;
}

/*
 * fuzz_decode reads the input with the incremental decoder fed as feed
 * says. With faults, allocations fail now and then: the decoder must
 * report ATBUS_ENOMEM without losing its place, and feeding the same
 * bytes again must carry on as if nothing had happened.
 */
static void
fuzz_decode(const struct fuzz_input *in, enum fuzz_feed feed, int faults,
            struct fuzz_reading *r)
{
    memset(r, 0, sizeof(*r));
    uint64_t rng = in->seed ^ (uint64_t)feed ^ ((uint64_t)faults << 8);
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, in->max_message);

    size_t pos = 0;         /* bytes of input handed out so far */
    size_t frame_start = 0; /* stream offset where the next frame starts */
    int retry = 0;
    while (pos < in->size || feed == FUZZ_FEED_PIECES) {
        size_t left = in->size - pos;
        size_t n = left;
        if (feed == FUZZ_FEED_BYTES) {
            n = 1;
        } else if (feed == FUZZ_FEED_PIECES) {
            n = fuzz_piece_size(&rng, left);
        }
        const uint8_t *p = in->data + pos;
        pos += n;
        /* The decoder may return several frames from one piece. */
        for (;;) {
            size_t used = SIZE_MAX;
            atb_frame_view v;
            fuzz_arm(faults, retry, &rng);
            int rc = atb_frame_decoder_next(&d, p, n, &used, &v);
            int tripped = atb_alloc_failed();
            if (faults) {
                atb_alloc_fail_nth(0);
            }
            fuzz_require(used <= n);
            p += used;
            n -= used;
            retry = rc == ATBUS_ENOMEM;
            if (retry) {
                fuzz_require(faults && tripped);
                continue;
            }
            if (rc < 0) {
                /* Framing errors are sticky and consume nothing more. */
                size_t again = SIZE_MAX;
                fuzz_require(atb_frame_decoder_next(&d, p, n, &again, &v) ==
                             rc);
                fuzz_require(again == 0);
                r->end = rc;
                atb_frame_decoder_fini(&d);
                return;
            }
            if (rc == 0) {
                fuzz_require(n == 0);
                break;
            }
            fuzz_require(rc == 1);
            /* The frame ends exactly where the decoder stopped reading,
             * and reads the same when parsed in place. */
            size_t end = (size_t)(p - in->data);
            fuzz_require(end - frame_start == v.frame_len);
            atb_frame_view c;
            fuzz_require(atb_frame_parse(in->data + frame_start,
                                         in->size - frame_start, in->parse_cap,
                                         &c) == ATBUS_OK);
            fuzz_require(c.frame_len == v.frame_len);
            fuzz_require(c.version == v.version);
            fuzz_require(c.message_len == v.message_len);
            fuzz_require(memcmp(c.message, v.message, v.message_len) == 0);
            fuzz_record_frame(r, frame_start, &v);
            if (faults) {
                /* Unpack straight from the decoder's view (it may point
                 * into the decoder's own buffer) with faults injected. */
                r->unpacked =
                    fuzz_mix(r->unpacked, fuzz_unpack_frame(&v, 1, 0, &rng));
            }
            frame_start = end;
            fuzz_require(atb_frame_decoder_pending(&d) == 0);
        }
        if (feed == FUZZ_FEED_PIECES && pos == in->size) {
            break;
        }
    }
    r->end_pending = atb_frame_decoder_pending(&d);
    fuzz_require(r->end_pending == in->size - frame_start);
    atb_frame_decoder_fini(&d);
}

static void
fuzz_same(const struct fuzz_reading *a, const struct fuzz_reading *b)
{
    fuzz_require(a->frames == b->frames);
    fuzz_require(a->geometry == b->geometry);
    fuzz_require(a->end == b->end);
    fuzz_require(a->end_pending == b->end_pending);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = atb_alloc_live();
    struct fuzz_input in = {
        .data = data,
        .size = size,
        .seed = atb_frame_hash(data, size),
    };
    /* One input in four gets a small cap, so the length check meets real
     * frames and not only absurd headers. */
    if ((in.seed & 3) == 0) {
        in.max_message = 1 + (size_t)((in.seed >> 2) % 96);
        in.parse_cap = in.max_message;
    } else {
        in.max_message = 0;
        in.parse_cap = ATB_FRAME_DEFAULT_MAX_MESSAGE;
    }

    struct fuzz_reading ref;
    fuzz_reference(&in, &ref);

    struct fuzz_reading got;
    fuzz_decode(&in, FUZZ_FEED_WHOLE, 0, &got);
    fuzz_same(&ref, &got);
    fuzz_decode(&in, FUZZ_FEED_BYTES, 0, &got);
    fuzz_same(&ref, &got);
    fuzz_decode(&in, FUZZ_FEED_PIECES, 0, &got);
    fuzz_same(&ref, &got);
    fuzz_decode(&in, FUZZ_FEED_PIECES, 1, &got);
    fuzz_same(&ref, &got);
    fuzz_require(got.unpacked == ref.unpacked);

    /* Every block the library took for this input has come back. */
    fuzz_require(atb_alloc_live() == live);
    return 0;
}
