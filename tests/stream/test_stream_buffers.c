/*
 * The sender buffer and the receiver's reassembly, alone: units and end
 * marks, boundaries, contained and overlapping ranges, the window, and
 * skipping on RESET_OFFSET.
 */
#include <atbus/error.h>

#include <string.h>

#include "stream/rob.h"
#include "stream/sendbuf.h"
#include "testing.h"

START_TEST(test_sendbuf_units_and_fragments)
{
    atb_sendbuf sb;
    atb_sendbuf_init(&sb);
    ck_assert_int_eq(atb_sendbuf_append(&sb, "hello", 5), ATBUS_OK);
    ck_assert_int_eq(atb_sendbuf_append(&sb, NULL, 0), ATBUS_OK);
    ck_assert_int_eq(atb_sendbuf_append(&sb, "xy", 2), ATBUS_OK);
    /* 5+1, 0+1, 2+1 units. */
    ck_assert_int_eq(sb.end, 10);
    atb_sendbuf_frag f;
    atb_sendbuf_frag_at(&sb, 0, 100, &f);
    ck_assert_uint_eq(f.len, 5);
    ck_assert(f.end_mark);
    ck_assert_mem_eq(f.data, "hello", 5);
    atb_sendbuf_frag_at(&sb, 2, 3, &f); /* "llo" without its mark */
    ck_assert_uint_eq(f.len, 3);
    ck_assert(!f.end_mark);
    atb_sendbuf_frag_at(&sb, 6, 1, &f); /* the empty message: its mark */
    ck_assert_uint_eq(f.len, 0);
    ck_assert(f.end_mark);
    ck_assert_int_eq(atb_sendbuf_boundary(&sb, 0), 0);
    ck_assert_int_eq(atb_sendbuf_boundary(&sb, 3), 0);
    ck_assert_int_eq(atb_sendbuf_boundary(&sb, 6), 6);
    ck_assert_int_eq(atb_sendbuf_boundary(&sb, 8), 7);
    ck_assert_uint_eq(atb_sendbuf_messages_from(&sb, 0), 3);
    ck_assert_uint_eq(atb_sendbuf_messages_from(&sb, 6), 2);
    atb_sendbuf_release(&sb, 7);
    ck_assert_uint_eq(atb_sendbuf_units(&sb), 3);
    atb_sendbuf_frag_at(&sb, 7, 10, &f);
    ck_assert_mem_eq(f.data, "xy", 2);
    atb_sendbuf_fini(&sb);
}
END_TEST

START_TEST(test_sendbuf_large_and_many)
{
    atb_sendbuf sb;
    atb_sendbuf_init(&sb);
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)i;
    }
    for (int i = 0; i < 3000; i++) {
        ck_assert_int_eq(atb_sendbuf_append(&sb, big, (size_t)i % 97), 0);
    }
    int64_t mid = sb.end;
    ck_assert_int_eq(atb_sendbuf_append(&sb, big, sizeof(big)), ATBUS_OK);
    atb_sendbuf_frag f;
    atb_sendbuf_frag_at(&sb, mid + 100, 1u << 30, &f);
    ck_assert_uint_eq(f.len, sizeof(big) - 100);
    ck_assert(f.end_mark);
    ck_assert_mem_eq(f.data, big + 100, f.len);
    atb_sendbuf_release(&sb, sb.end);
    ck_assert_uint_eq(atb_sendbuf_units(&sb), 0);
    ck_assert_ptr_null(sb.head);
    atb_sendbuf_fini(&sb);
}
END_TEST

typedef struct got {
    char msgs[16][32];
    size_t lens[16];
    int n;
} got;

static void
got_deliver(const uint8_t *data, size_t len, void *arg)
{
    got *g = arg;
    ck_assert_int_lt(g->n, 16);
    if (len > 0) {
        memcpy(g->msgs[g->n], data, len);
    }
    g->lens[g->n++] = len;
}

/* Stream "abc|" "" "|defg|": units a0 b1 c2 |3 |4 d5 e6 f7 g8 |9 */
START_TEST(test_rob_out_of_order_and_overlap)
{
    atb_rob rob;
    got g = {0};
    atb_rob_init(&rob, 0, 1000, 100);
    ck_assert_int_eq(
        atb_rob_push(&rob, 5, (const uint8_t *)"defg", 4, 1, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(rob.next, 0);
    ck_assert_int_eq(rob.max_end, 10);
    /* Contained in the held segment: dropped. */
    ck_assert_int_eq(
        atb_rob_push(&rob, 6, (const uint8_t *)"efg", 3, 1, got_deliver, &g),
        ATBUS_OK);
    ck_assert_uint_eq(rob.dup_units, 4);
    /* Overlapping it: only the gap (unit 4, the empty message) is kept. */
    ck_assert_int_eq(atb_rob_push(&rob, 4, NULL, 0, 1, got_deliver, &g),
                     ATBUS_OK);
    ck_assert_int_eq(
        atb_rob_push(&rob, 3, (const uint8_t *)"", 0, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(
        atb_rob_push(&rob, 1, (const uint8_t *)"bc", 2, 1, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(
        atb_rob_push(&rob, 0, (const uint8_t *)"a", 1, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(rob.next, 10);
    ck_assert_int_eq(g.n, 3);
    ck_assert_uint_eq(g.lens[0], 3);
    ck_assert_mem_eq(g.msgs[0], "abc", 3);
    ck_assert_uint_eq(g.lens[1], 0);
    ck_assert_uint_eq(g.lens[2], 4);
    ck_assert_mem_eq(g.msgs[2], "defg", 4);
    /* Everything again: contained, dropped. */
    ck_assert_int_eq(
        atb_rob_push(&rob, 0, (const uint8_t *)"abc", 3, 1, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(g.n, 3);
    ck_assert_ptr_null(rob.head);
    atb_rob_fini(&rob);
}
END_TEST

START_TEST(test_rob_window_and_size)
{
    atb_rob rob;
    got g = {0};
    atb_rob_init(&rob, 0, 8, 5);
    ck_assert_int_eq(
        atb_rob_push(&rob, 6, (const uint8_t *)"xyz", 3, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_uint_eq(rob.refused_units, 3); /* 9 > window 8 */
    ck_assert_ptr_null(rob.head);
    ck_assert_int_eq(rob.max_end, 0); /* refused units are not reported */
    ck_assert_int_eq(
        atb_rob_push(&rob, 0, (const uint8_t *)"abcd", 4, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(
        atb_rob_push(&rob, 4, (const uint8_t *)"ef", 2, 0, got_deliver, &g),
        ATBUS_EMSGSIZE);
    atb_rob_fini(&rob);
}
END_TEST

START_TEST(test_rob_skip_to)
{
    atb_rob rob;
    got g = {0};
    atb_rob_init(&rob, 0, 100, 100);
    ck_assert_int_eq(
        atb_rob_push(&rob, 0, (const uint8_t *)"ab", 2, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(
        atb_rob_push(&rob, 12, (const uint8_t *)"zz", 2, 1, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(
        atb_rob_push(&rob, 6, (const uint8_t *)"qq", 2, 1, got_deliver, &g),
        ATBUS_OK);
    /* Skip to 9: the partial "ab" and the held "qq|" are dropped. */
    ck_assert_int_eq(atb_rob_skip_to(&rob, 9, got_deliver, &g), ATBUS_OK);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(
        atb_rob_push(&rob, 9, (const uint8_t *)"yyy", 3, 0, got_deliver, &g),
        ATBUS_OK);
    ck_assert_int_eq(g.n, 1);
    ck_assert_uint_eq(g.lens[0], 5);
    ck_assert_mem_eq(g.msgs[0], "yyyzz", 5);
    atb_rob_fini(&rob);
}
END_TEST

static Suite *
buffers_suite(void)
{
    Suite *s = suite_create("stream_buffers");
    TCase *tc = atb_test_case("buffers", 30);
    tcase_add_test(tc, test_sendbuf_units_and_fragments);
    tcase_add_test(tc, test_sendbuf_large_and_many);
    tcase_add_test(tc, test_rob_out_of_order_and_overlap);
    tcase_add_test(tc, test_rob_window_and_size);
    tcase_add_test(tc, test_rob_skip_to);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(buffers_suite());
}
