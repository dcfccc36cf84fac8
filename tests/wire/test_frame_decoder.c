/*
 * Incremental frame decoder: frames split at every possible point (down
 * to one byte at a time), zero-copy when whole, the length cap enforced
 * before any allocation, sticky framing errors, and an allocation-failure
 * loop that must neither leak nor lose a frame.
 */
#include <atbus/atbus.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "testing.h"
#include "wire/frame_decoder.h"

/* A byte stream of frames with known messages. */
struct stream {
    uint8_t *bytes;
    size_t len;
    size_t nframes;
    size_t *msg_len;
    uint8_t **msg;
};

static void
stream_build(struct stream *s, size_t nframes, size_t max_len, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->nframes = nframes;
    s->msg_len = calloc(nframes, sizeof(size_t));
    s->msg = calloc(nframes, sizeof(uint8_t *));
    for (size_t i = 0; i < nframes; i++) {
        size_t n = (size_t)(atb_test_rng(&seed) % (max_len + 1));
        if (i % 5 == 0) {
            n = 0; /* empty messages are valid frames */
        }
        s->msg_len[i] = n;
        s->msg[i] = malloc(n + 1);
        for (size_t j = 0; j < n; j++) {
            s->msg[i][j] = (uint8_t)atb_test_rng(&seed);
        }
        size_t add = atb_frame_size(3, n);
        s->bytes = realloc(s->bytes, s->len + add);
        size_t w;
        ck_assert_int_eq(
            atb_frame_wrap(3, s->msg[i], n, s->bytes + s->len, add, &w),
            ATBUS_OK);
        s->len += w;
    }
}

static void
stream_free(struct stream *s)
{
    for (size_t i = 0; i < s->nframes; i++) {
        free(s->msg[i]);
    }
    free(s->msg);
    free(s->msg_len);
    free(s->bytes);
}

/*
 * stream_feed pushes s->bytes through d in pieces whose sizes come from
 * piece(); checks every frame against the expected message. Returns the
 * first negative code, or the number of frames decoded.
 */
static long
stream_feed(atb_frame_decoder *d, const struct stream *s, uint64_t seed,
            size_t max_piece)
{
    size_t pos = 0;
    size_t frame = 0;
    while (pos < s->len) {
        size_t piece =
            max_piece <= 1 ? 1 : 1 + (size_t)(atb_test_rng(&seed) % max_piece);
        if (piece > s->len - pos) {
            piece = s->len - pos;
        }
        const uint8_t *in = s->bytes + pos;
        size_t left = piece;
        /* Keep calling while input remains: one call yields one frame. */
        while (left > 0) {
            size_t used;
            atb_frame_view v;
            int rc = atb_frame_decoder_next(d, in, left, &used, &v);
            ck_assert_uint_le(used, left);
            in += used;
            left -= used;
            pos += used;
            if (rc < 0) {
                return rc;
            }
            if (rc == 1) {
                ck_assert_uint_lt(frame, s->nframes);
                ck_assert_uint_eq(v.message_len, s->msg_len[frame]);
                if (v.message_len != 0) {
                    ck_assert_mem_eq(v.message, s->msg[frame], v.message_len);
                }
                frame++;
            } else {
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(left, 0);
            }
        }
    }
    return (long)frame;
}

START_TEST(test_decoder_whole_frames_zero_copy)
{
    struct stream s;
    stream_build(&s, 20, 300, 1);
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    long live = atb_alloc_live();
    size_t pos = 0;
    for (size_t i = 0; i < s.nframes; i++) {
        size_t used;
        atb_frame_view v;
        ck_assert_int_eq(
            atb_frame_decoder_next(&d, s.bytes + pos, s.len - pos, &used, &v),
            1);
        /* The view points into the input: nothing was copied. */
        ck_assert(v.message >= s.bytes + pos);
        ck_assert(v.message + v.message_len <= s.bytes + pos + used);
        ck_assert_uint_eq(v.message_len, s.msg_len[i]);
        ck_assert_uint_eq(used, v.frame_len);
        pos += used;
    }
    ck_assert_uint_eq(pos, s.len);
    ck_assert_int_eq(atb_alloc_live(), live);
    size_t used = 1;
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_decoder_next(&d, NULL, 0, &used, &v), 0);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(atb_frame_decoder_pending(&d), 0);
    atb_frame_decoder_fini(&d);
    stream_free(&s);
}
END_TEST

START_TEST(test_decoder_one_byte_at_a_time)
{
    struct stream s;
    stream_build(&s, 40, 700, 2);
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    ck_assert_int_eq(stream_feed(&d, &s, 0, 1), (long)s.nframes);
    ck_assert_uint_eq(atb_frame_decoder_pending(&d), 0);
    atb_frame_decoder_fini(&d);
    stream_free(&s);
}
END_TEST

START_TEST(test_decoder_random_pieces)
{
    /* Many seeds, pieces from 1 byte to larger than a frame. */
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct stream s;
        stream_build(&s, 25, 2000, seed * 7919);
        atb_frame_decoder d;
        atb_frame_decoder_init(&d, 0);
        size_t max_piece = 1 + (size_t)(seed * 37 % 5000);
        ck_assert_int_eq(stream_feed(&d, &s, seed, max_piece), (long)s.nframes);
        atb_frame_decoder_fini(&d);
        stream_free(&s);
    }
}
END_TEST

START_TEST(test_decoder_pending_reports_partial)
{
    struct stream s;
    stream_build(&s, 1, 0, 3);
    free(s.msg[0]);
    s.msg[0] = malloc(100);
    memset(s.msg[0], 'x', 100);
    s.msg_len[0] = 100;
    size_t w;
    s.bytes = realloc(s.bytes, 200);
    ck_assert_int_eq(atb_frame_wrap(3, s.msg[0], 100, s.bytes, 200, &w),
                     ATBUS_OK);
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    size_t used;
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_decoder_next(&d, s.bytes, 1, &used, &v), 0);
    ck_assert_uint_eq(atb_frame_decoder_pending(&d), 1);
    ck_assert_int_eq(atb_frame_decoder_next(&d, s.bytes + 1, 50, &used, &v), 0);
    ck_assert_uint_eq(used, 50);
    ck_assert_uint_eq(atb_frame_decoder_pending(&d), 51);
    ck_assert_int_eq(
        atb_frame_decoder_next(&d, s.bytes + 51, w - 51, &used, &v), 1);
    ck_assert_uint_eq(used, w - 51);
    ck_assert_uint_eq(v.message_len, 100);
    ck_assert_mem_eq(v.message, s.msg[0], 100);
    atb_frame_decoder_fini(&d);
    stream_free(&s);
}
END_TEST

START_TEST(test_decoder_cap_before_allocation)
{
    /* A header announcing max+1 bytes, fed one byte at a time, with every
     * allocation set to fail: the answer must be "too large", not "out of
     * memory", and nothing may have been allocated. */
    const size_t max = 4096;
    uint8_t head[ATB_FRAME_HEADER_MAX];
    size_t hlen = atb_frame_write_header(3, max + 1, head);
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, max);
    long live = atb_alloc_live();
    atb_alloc_fail_nth(1);
    int rc = 0;
    for (size_t i = 0; i < hlen && rc == 0; i++) {
        size_t used;
        atb_frame_view v;
        rc = atb_frame_decoder_next(&d, head + i, 1, &used, &v);
    }
    ck_assert_int_eq(rc, ATBUS_EFRAME_TOO_LARGE);
    ck_assert(!atb_alloc_failed());
    ck_assert_int_eq(atb_alloc_live(), live);
    atb_alloc_fail_nth(0);
    atb_frame_decoder_fini(&d);

    /* Same with a 2^62-byte claim arriving in one piece. */
    hlen = atb_frame_write_header(3, (size_t)1 << 62, head);
    atb_frame_decoder_init(&d, 0);
    atb_alloc_fail_nth(1);
    size_t used;
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_decoder_next(&d, head, hlen, &used, &v),
                     ATBUS_EFRAME_TOO_LARGE);
    ck_assert(!atb_alloc_failed());
    atb_alloc_fail_nth(0);
    atb_frame_decoder_fini(&d);
}
END_TEST

START_TEST(test_decoder_errors_are_sticky)
{
    struct stream s;
    stream_build(&s, 3, 100, 4);
    /* Damage the hash of the second frame. */
    size_t first = atb_frame_size(3, s.msg_len[0]);
    size_t second = atb_frame_size(3, s.msg_len[1]);
    s.bytes[first + second - 1] ^= 0x01;
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    ck_assert_int_eq(stream_feed(&d, &s, 5, 3), ATBUS_EFRAME_HASH);
    /* Good input afterwards changes nothing: the stream is out of sync. */
    struct stream good;
    stream_build(&good, 1, 10, 6);
    size_t used;
    atb_frame_view v;
    ck_assert_int_eq(
        atb_frame_decoder_next(&d, good.bytes, good.len, &used, &v),
        ATBUS_EFRAME_HASH);
    ck_assert_uint_eq(used, 0);
    atb_frame_decoder_fini(&d);
    stream_free(&good);
    stream_free(&s);
}
END_TEST

START_TEST(test_decoder_each_framing_error)
{
    uint8_t buf[64];
    static const uint8_t msg[] = {1, 2, 3, 4};
    size_t w;
    atb_frame_view v;
    size_t used;
    atb_frame_decoder d;

    /* Version 4, split: refused as soon as the version byte arrives. */
    ck_assert_int_eq(atb_frame_wrap(4, msg, 4, buf, sizeof(buf), &w), ATBUS_OK);
    atb_frame_decoder_init(&d, 0);
    ck_assert_int_eq(atb_frame_decoder_next(&d, buf, 1, &used, &v),
                     ATBUS_EFRAME_VERSION);
    atb_frame_decoder_fini(&d);

    /* Overlong length varint, fed byte by byte. */
    static const uint8_t overlong[] = {0x03, 0x84, 0x00};
    atb_frame_decoder_init(&d, 0);
    int rc = 0;
    for (size_t i = 0; i < sizeof(overlong) && rc == 0; i++) {
        rc = atb_frame_decoder_next(&d, overlong + i, 1, &used, &v);
    }
    ck_assert_int_eq(rc, ATBUS_EVARINT);
    atb_frame_decoder_fini(&d);

    /* Bad hash on a frame split in two. */
    ck_assert_int_eq(atb_frame_wrap(3, msg, 4, buf, sizeof(buf), &w), ATBUS_OK);
    buf[3] ^= 0x80;
    atb_frame_decoder_init(&d, 0);
    ck_assert_int_eq(atb_frame_decoder_next(&d, buf, 5, &used, &v), 0);
    ck_assert_int_eq(atb_frame_decoder_next(&d, buf + 5, w - 5, &used, &v),
                     ATBUS_EFRAME_HASH);
    atb_frame_decoder_fini(&d);
}
END_TEST

START_TEST(test_decoder_large_buffer_released)
{
    struct stream s;
    stream_build(&s, 1, 0, 8);
    free(s.msg[0]);
    s.msg_len[0] = 200000;
    s.msg[0] = malloc(s.msg_len[0]);
    memset(s.msg[0], 0x5a, s.msg_len[0]);
    s.bytes = realloc(s.bytes, atb_frame_size(3, s.msg_len[0]));
    ck_assert_int_eq(atb_frame_wrap(3, s.msg[0], s.msg_len[0], s.bytes,
                                    atb_frame_size(3, s.msg_len[0]), &s.len),
                     ATBUS_OK);
    long live = atb_alloc_live();
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    ck_assert_int_eq(stream_feed(&d, &s, 9, 65536), 1);
    /* The next call drops the 200 kB buffer instead of keeping it. */
    size_t used;
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_decoder_next(&d, NULL, 0, &used, &v), 0);
    ck_assert_int_eq(atb_alloc_live(), live);
    atb_frame_decoder_fini(&d);
    stream_free(&s);
}
END_TEST

START_TEST(test_decoder_allocation_failure_loop)
{
    /* Three frames, fed one byte at a time; allocation N fails for N = 1,
     * 2, ... until a run needs no failing allocation. Every run must end
     * with ENOMEM or all frames, leak nothing, and after ENOMEM the same
     * remaining bytes, fed again with memory back, must give every frame. */
    struct stream s;
    stream_build(&s, 3, 3000, 10);
    long live = atb_alloc_live();
    int completed = 0;
    for (unsigned long n = 1; n < 1000 && !completed; n++) {
        atb_frame_decoder d;
        atb_frame_decoder_init(&d, 0);
        atb_alloc_fail_nth(n);
        size_t pos = 0;
        size_t frames = 0;
        int rc = 0;
        while (pos < s.len) {
            size_t used;
            atb_frame_view v;
            rc = atb_frame_decoder_next(&d, s.bytes + pos, 1, &used, &v);
            pos += used;
            if (rc == ATBUS_ENOMEM) {
                ck_assert_uint_eq(used, 0);
                /* Memory comes back; retry the unconsumed byte. */
                atb_alloc_fail_nth(0);
                continue;
            }
            ck_assert_int_ge(rc, 0);
            if (rc == 1) {
                ck_assert_uint_eq(v.message_len, s.msg_len[frames]);
                if (v.message_len != 0) {
                    ck_assert_mem_eq(v.message, s.msg[frames], v.message_len);
                }
                frames++;
            }
        }
        ck_assert_uint_eq(frames, s.nframes);
        completed = !atb_alloc_failed();
        atb_alloc_fail_nth(0);
        atb_frame_decoder_fini(&d);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert(completed);
    stream_free(&s);
}
END_TEST

static Suite *
frame_decoder_suite(void)
{
    Suite *s = suite_create("frame_decoder");
    TCase *tc = atb_test_case("frame_decoder", 60);
    tcase_add_test(tc, test_decoder_whole_frames_zero_copy);
    tcase_add_test(tc, test_decoder_one_byte_at_a_time);
    tcase_add_test(tc, test_decoder_random_pieces);
    tcase_add_test(tc, test_decoder_pending_reports_partial);
    tcase_add_test(tc, test_decoder_cap_before_allocation);
    tcase_add_test(tc, test_decoder_errors_are_sticky);
    tcase_add_test(tc, test_decoder_each_framing_error);
    tcase_add_test(tc, test_decoder_large_buffer_released);
    tcase_add_test(tc, test_decoder_allocation_failure_loop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(frame_decoder_suite());
}
