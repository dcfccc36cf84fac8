/*
 * Route benchmark: builds a registry shaped like a real mesh (a few top
 * relays, regional relays under them, zone relays under those, apps under
 * zones with a backup each, and two deep chains) and times what the
 * router does: reports, relation queries with warm caches and right after
 * a version bump, next-hop queries, and the memory the registry takes.
 *
 * Times are CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), so
 * a busy machine inflates them less. Figures, not pass/fail: nothing here
 * compares a time with a threshold.
 */
#ifndef ATB_BENCH_ROUTE_H
#define ATB_BENCH_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct atb_bench_route_result {
    size_t nodes;       /* in the registry */
    size_t relays;      /* top, regional, zone relays */
    uint32_t max_depth; /* longest upstream chain */
    double build_ms;
    double build_ns_per_node; /* one report (set_upstreams) */
    /* ns per relation query by name: caches fresh (best of three passes);
     * right after a version bump (both chains rebuilt); and between the
     * deepest node and its root, warm. */
    double relation_warm_ns;
    double relation_bump_ns;
    double relation_deep_ns;
    double next_hop_ns; /* per next-hop query, caches fresh, best pass */
    /* Relation queries timed once each (warm, bumped, deepest), and
     * next-hop queries that found a route over all passes. */
    uint64_t relation_queries;
    uint64_t next_hop_queries;
    /* One warm pass by result, indexed by atbus_relation (0 unused). */
    uint64_t relation_counts[8];
    /* Bytes asked from the allocator per node: right after the build, and
     * after the queries filled the chain caches. */
    double bytes_per_node;
    double bytes_per_node_cached;
    /* Heap growth per node including malloc's own overhead (glibc
     * mallinfo2), after the queries; 0 where it cannot be read. */
    double heap_bytes_per_node;
};

/*
 * atb_bench_route builds a registry of `nodes` nodes (at least 200) from
 * seed and fills *out. Returns ATBUS_OK, ATBUS_EINVAL or ATBUS_ENOMEM.
 */
int atb_bench_route(size_t nodes, unsigned seed,
                    struct atb_bench_route_result *out);

/* atb_bench_route_print writes the result as a small table. */
void atb_bench_route_print(const struct atb_bench_route_result *r, FILE *f);

#endif /* ATB_BENCH_ROUTE_H */
