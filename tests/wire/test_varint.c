/*
 * Varint codec: exact encodings at the size boundaries, round trips, and
 * rejection of overlong, overflowing and truncated input.
 */
#include <atbus/atbus.h>

#include <string.h>

#include "testing.h"
#include "wire/varint.h"

struct varint_vector {
    uint64_t value;
    size_t len;
    uint8_t bytes[ATB_VARINT_MAX_LEN];
};

/* Encodings as protobuf defines them, written out by hand. */
static const struct varint_vector vectors[] = {
    {0, 1, {0x00}},
    {1, 1, {0x01}},
    {127, 1, {0x7f}},
    {128, 2, {0x80, 0x01}},
    {300, 2, {0xac, 0x02}},
    {16383, 2, {0xff, 0x7f}},
    {16384, 3, {0x80, 0x80, 0x01}},
    {UINT32_MAX, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
    {INT64_MAX, 9, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
    {(uint64_t)INT64_MAX + 1,
     10,
     {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
    {UINT64_MAX,
     10,
     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

START_TEST(test_varint_vectors)
{
    const struct varint_vector *v = &vectors[_i];
    uint8_t out[ATB_VARINT_MAX_LEN + 2];
    memset(out, 0xee, sizeof(out));
    ck_assert_uint_eq(atb_varint_size(v->value), v->len);
    ck_assert_uint_eq(atb_varint_encode(v->value, out), v->len);
    ck_assert_mem_eq(out, v->bytes, v->len);
    ck_assert_uint_eq(out[v->len], 0xee); /* nothing written past the end */

    uint64_t got = 0;
    size_t used = 0;
    ck_assert_int_eq(atb_varint_decode(v->bytes, v->len, &got, &used),
                     ATBUS_OK);
    ck_assert_uint_eq(got, v->value);
    ck_assert_uint_eq(used, v->len);
}
END_TEST

START_TEST(test_varint_truncated)
{
    /* Every strict prefix of every vector is incomplete, not an error. */
    for (size_t i = 0; i < NVECTORS; i++) {
        for (size_t n = 0; n < vectors[i].len; n++) {
            uint64_t got = 42;
            size_t used = 7;
            ck_assert_int_eq(
                atb_varint_decode(vectors[i].bytes, n, &got, &used),
                ATBUS_ETRUNCATED);
            ck_assert_uint_eq(got, 42);
            ck_assert_uint_eq(used, 7);
        }
    }
    ck_assert_int_eq(atb_varint_decode(NULL, 0, &(uint64_t){0}, &(size_t){0}),
                     ATBUS_ETRUNCATED);
}
END_TEST

START_TEST(test_varint_overlong)
{
    uint64_t got = 42;
    size_t used = 7;
    /* 0 and 127 with a redundant zero group. */
    static const uint8_t zero2[] = {0x80, 0x00};
    static const uint8_t v127[] = {0xff, 0x00};
    static const uint8_t one3[] = {0x81, 0x80, 0x00};
    ck_assert_int_eq(atb_varint_decode(zero2, sizeof(zero2), &got, &used),
                     ATBUS_EVARINT);
    ck_assert_int_eq(atb_varint_decode(v127, sizeof(v127), &got, &used),
                     ATBUS_EVARINT);
    ck_assert_int_eq(atb_varint_decode(one3, sizeof(one3), &got, &used),
                     ATBUS_EVARINT);
    /* Eleven bytes. */
    static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x01};
    ck_assert_int_eq(atb_varint_decode(eleven, sizeof(eleven), &got, &used),
                     ATBUS_EVARINT);
    /* Ten bytes whose last carries more than bit 63: above 2^64-1. */
    static const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0x02};
    ck_assert_int_eq(atb_varint_decode(over, sizeof(over), &got, &used),
                     ATBUS_EVARINT);
    /* Ten bytes and the tenth still says "more". */
    static const uint8_t more[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0x81, 0x00};
    ck_assert_int_eq(atb_varint_decode(more, sizeof(more), &got, &used),
                     ATBUS_EVARINT);
    ck_assert_uint_eq(got, 42);
    ck_assert_uint_eq(used, 7);
}
END_TEST

START_TEST(test_varint_trailing_bytes)
{
    static const uint8_t in[] = {0xac, 0x02, 0x05, 0xff};
    uint64_t got;
    size_t used;
    ck_assert_int_eq(atb_varint_decode(in, sizeof(in), &got, &used), ATBUS_OK);
    ck_assert_uint_eq(got, 300);
    ck_assert_uint_eq(used, 2);
}
END_TEST

START_TEST(test_varint_random_round_trip)
{
    uint64_t rng = 0x5eed;
    for (int i = 0; i < 100000; i++) {
        /* Spread values over all bit lengths, not just large ones. */
        uint64_t v = atb_test_rng(&rng) >> (atb_test_rng(&rng) % 64);
        uint8_t buf[ATB_VARINT_MAX_LEN];
        size_t n = atb_varint_encode(v, buf);
        ck_assert_uint_eq(n, atb_varint_size(v));
        uint64_t got;
        size_t used;
        ck_assert_int_eq(atb_varint_decode(buf, n, &got, &used), ATBUS_OK);
        ck_assert_uint_eq(got, v);
        ck_assert_uint_eq(used, n);
    }
}
END_TEST

static Suite *
varint_suite(void)
{
    Suite *s = suite_create("varint");
    TCase *tc = atb_test_case("varint", 30);
    tcase_add_loop_test(tc, test_varint_vectors, 0, (int)NVECTORS);
    tcase_add_test(tc, test_varint_truncated);
    tcase_add_test(tc, test_varint_overlong);
    tcase_add_test(tc, test_varint_trailing_bytes);
    tcase_add_test(tc, test_varint_random_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(varint_suite());
}
