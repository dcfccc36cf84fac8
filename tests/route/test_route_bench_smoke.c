/*
 * The route benchmark code, run small: it builds, its query loops run,
 * and its figures are sane. No time is compared with anything.
 */
#include <atbus/atbus.h>

#include <stdio.h>

#include "bench_route.h"
#include "testing.h"

START_TEST(test_bench_route_smoke)
{
    struct atb_bench_route_result r;
    ck_assert_int_eq(atb_bench_route(2000, 7, &r), ATBUS_OK);
    atb_bench_route_print(&r, stdout);
    ck_assert_uint_eq(r.nodes, 2000);
    ck_assert_uint_gt(r.relays, 0);
    /* The leaf of a 50-node chain: 49 above it in the chain, then a zone,
     * a region and a top relay. */
    ck_assert_uint_eq(r.max_depth, 52);
    ck_assert(r.build_ms >= 0 && r.build_ns_per_node >= 0);
    ck_assert(r.relation_warm_ns >= 0 && r.relation_bump_ns >= 0);
    ck_assert(r.relation_deep_ns >= 0 && r.next_hop_ns >= 0);
    ck_assert(r.heap_bytes_per_node >= 0);
    ck_assert(r.bytes_per_node > 0);
    ck_assert(r.bytes_per_node_cached >= r.bytes_per_node);
    /* The loops ran: warm, after bumps and the deep pair. */
    ck_assert_uint_eq(r.relation_queries, 3 * 200000);
    uint64_t counted = 0;
    for (int i = 1; i < 8; i++) {
        ck_assert_msg(r.relation_counts[i] > 0, "no %s",
                      atbus_relation_name((atbus_relation)i));
        counted += r.relation_counts[i];
    }
    ck_assert_uint_eq(counted, 200000);
    /* Everything in this mesh is routable: a warm-up and three passes. */
    ck_assert_uint_eq(r.next_hop_queries, 4 * 200000);

    ck_assert_int_eq(atb_bench_route(10, 7, &r), ATBUS_EINVAL);
    ck_assert_int_eq(atb_bench_route(2000, 7, NULL), ATBUS_EINVAL);
}
END_TEST

static Suite *
bench_suite(void)
{
    Suite *s = suite_create("route_bench_smoke");
    TCase *tc = atb_test_case("bench", 120);
    tcase_add_test(tc, test_bench_route_smoke);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(bench_suite());
}
