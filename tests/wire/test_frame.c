/*
 * Contiguous frames: header and hash layout, round trips, and the error
 * for every kind of damage (truncation, version, length cap, bit flips).
 */
#include <atbus/atbus.h>

#include <stdlib.h>
#include <string.h>

#include "testing.h"
#include "wire/frame.h"

static uint8_t *
frame_make(uint32_t version, size_t mlen, uint64_t seed, size_t *flen)
{
    uint8_t *msg = malloc(mlen + 1);
    for (size_t i = 0; i < mlen; i++) {
        msg[i] = (uint8_t)atb_test_rng(&seed);
    }
    size_t cap = atb_frame_size(version, mlen);
    uint8_t *f = malloc(cap);
    ck_assert_int_eq(atb_frame_wrap(version, msg, mlen, f, cap, flen),
                     ATBUS_OK);
    ck_assert_uint_eq(*flen, cap);
    free(msg);
    return f;
}

START_TEST(test_frame_hash_known_answers)
{
    /* Computed independently with python3-xxhash:
     * xxh3_64_intdigest(data, seed=0x01000193) & 0xffffffff. */
    ck_assert_uint_eq(atb_frame_hash(NULL, 0), 0xbdc8cc00u);
    uint8_t data[768];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)i;
    }
    ck_assert_uint_eq(atb_frame_hash(data, sizeof(data)), 0x8c001adfu);
}
END_TEST

START_TEST(test_frame_layout)
{
    static const uint8_t msg[] = {0x2a, 0x00};
    uint8_t out[16];
    size_t n;
    ck_assert_int_eq(atb_frame_wrap(3, msg, sizeof(msg), out, sizeof(out), &n),
                     ATBUS_OK);
    ck_assert_uint_eq(n, 1 + 1 + 2 + 4);
    ck_assert_uint_eq(out[0], 3);
    ck_assert_uint_eq(out[1], 2);
    ck_assert_mem_eq(out + 2, msg, 2);
    uint32_t h = atb_frame_hash(out, 4);
    ck_assert_uint_eq(out[4], h & 0xff);
    ck_assert_uint_eq(out[5], (h >> 8) & 0xff);
    ck_assert_uint_eq(out[6], (h >> 16) & 0xff);
    ck_assert_uint_eq(out[7], h >> 24);
}
END_TEST

static const size_t round_trip_sizes[] = {0, 1, 127, 128, 1000, 16384, 70000};

START_TEST(test_frame_round_trip)
{
    size_t mlen = round_trip_sizes[_i];
    size_t flen;
    uint8_t *f = frame_make(3, mlen, mlen, &flen);
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_parse(f, flen, mlen, &v), ATBUS_OK);
    ck_assert_uint_eq(v.version, 3);
    ck_assert_uint_eq(v.message_len, mlen);
    ck_assert_uint_eq(v.frame_len, flen);
    ck_assert_ptr_eq(v.message, f + (flen - mlen - ATB_FRAME_HASH_LEN));
    free(f);
}
END_TEST

START_TEST(test_frame_every_prefix_truncated)
{
    size_t flen;
    uint8_t *f = frame_make(3, 300, 7, &flen);
    for (size_t n = 0; n < flen; n++) {
        atb_frame_view v;
        ck_assert_int_eq(atb_frame_parse(f, n, 1024, &v), ATBUS_ETRUNCATED);
    }
    free(f);
}
END_TEST

START_TEST(test_frame_bad_version)
{
    static const uint32_t bad[] = {0, 1, 2, 4, 1000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t flen;
        uint8_t *f = frame_make(bad[i], 10, i, &flen);
        atb_frame_view v;
        ck_assert_int_eq(atb_frame_parse(f, flen, 1024, &v),
                         ATBUS_EFRAME_VERSION);
        /* The version alone is enough to refuse. */
        ck_assert_int_eq(atb_frame_parse(f, 1, 1024, &v),
                         bad[i] < 128 ? ATBUS_EFRAME_VERSION
                                      : ATBUS_ETRUNCATED);
        free(f);
    }
}
END_TEST

START_TEST(test_frame_length_cap)
{
    size_t flen;
    uint8_t *f = frame_make(3, 200, 1, &flen);
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_parse(f, flen, 200, &v), ATBUS_OK);
    ck_assert_int_eq(atb_frame_parse(f, flen, 199, &v), ATBUS_EFRAME_TOO_LARGE);
    /* Refused from the header alone, before the body arrives. */
    ck_assert_int_eq(atb_frame_parse(f, 3, 199, &v), ATBUS_EFRAME_TOO_LARGE);
    free(f);

    /* A length of 2^64-1 never overflows the arithmetic. */
    uint8_t huge[ATB_FRAME_HEADER_MAX];
    huge[0] = 3;
    size_t n = 1 + atb_varint_encode(UINT64_MAX, huge + 1);
    ck_assert_int_eq(atb_frame_parse(huge, n, SIZE_MAX, &v),
                     ATBUS_EFRAME_TOO_LARGE);
    ck_assert_int_eq(atb_frame_parse(huge, n, 1024, &v),
                     ATBUS_EFRAME_TOO_LARGE);
}
END_TEST

START_TEST(test_frame_bad_header_varint)
{
    /* Version written with a redundant zero group. */
    static const uint8_t f1[] = {0x83, 0x00, 0x01, 0x00, 0, 0, 0, 0};
    /* Length with eleven bytes. */
    static const uint8_t f2[] = {0x03, 0x80, 0x80, 0x80, 0x80, 0x80,
                                 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    atb_frame_view v;
    ck_assert_int_eq(atb_frame_parse(f1, sizeof(f1), 1024, &v), ATBUS_EVARINT);
    ck_assert_int_eq(atb_frame_parse(f2, sizeof(f2), 1024, &v), ATBUS_EVARINT);
}
END_TEST

START_TEST(test_frame_no_bit_flip_passes)
{
    size_t flen;
    uint8_t *f = frame_make(3, 64, 99, &flen);
    size_t head = flen - 64 - ATB_FRAME_HASH_LEN;
    for (size_t byte = 0; byte < flen; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            f[byte] ^= (uint8_t)(1u << bit);
            atb_frame_view v;
            int rc = atb_frame_parse(f, flen, 1024, &v);
            f[byte] ^= (uint8_t)(1u << bit);
            ck_assert_msg(rc < 0, "flip of byte %zu bit %d accepted", byte,
                          bit);
            if (byte >= head) {
                /* Message or hash damaged: only the hash can tell. */
                ck_assert_int_eq(rc, ATBUS_EFRAME_HASH);
            }
        }
    }
    free(f);
}
END_TEST

START_TEST(test_frame_wrap_small_buffer)
{
    static const uint8_t msg[] = {1, 2, 3};
    uint8_t out[7];
    memset(out, 0xee, sizeof(out));
    size_t n = 99;
    ck_assert_int_eq(atb_frame_wrap(3, msg, sizeof(msg), out, sizeof(out), &n),
                     ATBUS_ENOBUFS);
    ck_assert_uint_eq(n, 99);
    for (size_t i = 0; i < sizeof(out); i++) {
        ck_assert_uint_eq(out[i], 0xee);
    }
}
END_TEST

static Suite *
frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = atb_test_case("frame", 30);
    tcase_add_test(tc, test_frame_hash_known_answers);
    tcase_add_test(tc, test_frame_layout);
    tcase_add_loop_test(
        tc, test_frame_round_trip, 0,
        (int)(sizeof(round_trip_sizes) / sizeof(round_trip_sizes[0])));
    tcase_add_test(tc, test_frame_every_prefix_truncated);
    tcase_add_test(tc, test_frame_bad_version);
    tcase_add_test(tc, test_frame_length_cap);
    tcase_add_test(tc, test_frame_bad_header_varint);
    tcase_add_test(tc, test_frame_no_bit_flip_passes);
    tcase_add_test(tc, test_frame_wrap_small_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(frame_suite());
}
