/*
 * Route benchmark (see bench_route.h). The mesh, for n nodes:
 *
 *   top-0 .. top-3                       roots (transit relays)
 *   region-i  -> top, top backup         max(4, n / 5000) relays
 *   zone-i    -> region, region backup   max(8, n / 250) relays
 *   deep-c-k  -> deep-c-(k-1) .. zone    two chains of min(1000, n / 40)
 *   app-i.ns-j -> zone, zone backup      the rest, in 64 namespaces
 *
 * Queries mix random pairs with pairs that hit each relation: an app and
 * its zone, two apps of one zone, a node and a top relay.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_route.h"

#include <atbus/error.h>
#include <atbus/route.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define BENCH_HAVE_MALLINFO2 1
#endif

#include "common/rand.h"
#include "route/next_hop.h"
#include "route/policy.h"
#include "route/registry.h"
#include "route/relation.h"

#define BENCH_NAME 40
#define BENCH_TOPS 4
#define BENCH_QUERIES 200000
#define BENCH_BUMPS 50
#define BENCH_PASSES 3 /* timed passes over warm caches; the best counts */

typedef struct bench {
    atb_route_registry reg;
    char *names; /* node i's name at names + i * BENCH_NAME */
    size_t n;
    size_t regions;
    size_t zones;
    size_t deep;       /* length of each deep chain */
    size_t first_deep; /* index of deep-0-0 */
    size_t first_app;
    uint32_t *qa; /* query pairs */
    uint32_t *qb;
    uint64_t rng;
} bench;

/* bench_now_ns reads the thread's CPU clock: on a shared machine, time
 * spent descheduled would otherwise count as query time. */
static uint64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t
bench_heap_bytes(void)
{
#ifdef BENCH_HAVE_MALLINFO2
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

static char *
bench_name(const bench *b, size_t i)
{
    return b->names + i * BENCH_NAME;
}

/* bench_layout names every node; index order is report order. */
static void
bench_layout(bench *b)
{
    size_t i = 0;
    for (size_t k = 0; k < BENCH_TOPS; k++) {
        snprintf(bench_name(b, i++), BENCH_NAME, "top-%zu", k);
    }
    for (size_t k = 0; k < b->regions; k++) {
        snprintf(bench_name(b, i++), BENCH_NAME, "region-%zu", k);
    }
    for (size_t k = 0; k < b->zones; k++) {
        snprintf(bench_name(b, i++), BENCH_NAME, "zone-%zu", k);
    }
    b->first_deep = i;
    for (size_t c = 0; c < 2; c++) {
        for (size_t k = 0; k < b->deep; k++) {
            snprintf(bench_name(b, i++), BENCH_NAME, "deep-%zu-%zu", c, k);
        }
    }
    b->first_app = i;
    for (size_t k = 0; i < b->n; k++) {
        snprintf(bench_name(b, i++), BENCH_NAME, "app-%zu.ns-%zu", k, k % 64);
    }
}

/* bench_report sends node i's report: its upstreams by index. */
static int
bench_report(bench *b, size_t i, size_t up, size_t backup, size_t count)
{
    const char *ups[2] = {bench_name(b, up), bench_name(b, backup)};
    if (count == 2 && up == backup) {
        count = 1;
    }
    return atb_route_set_upstreams(&b->reg, bench_name(b, i), ups, count, NULL);
}

static int
bench_build(bench *b)
{
    size_t region0 = BENCH_TOPS;
    size_t zone0 = region0 + b->regions;
    int rc = ATBUS_OK;
    for (size_t i = 0; i < b->n && rc == ATBUS_OK; i++) {
        if (i < region0) {
            rc = bench_report(b, i, 0, 0, 0);
        } else if (i < zone0) {
            size_t k = i - region0;
            rc = bench_report(b, i, k % BENCH_TOPS, (k + 1) % BENCH_TOPS, 2);
        } else if (i < b->first_deep) {
            size_t k = i - zone0;
            rc = bench_report(b, i, region0 + k % b->regions,
                              region0 + (k + 3) % b->regions, 2);
        } else if (i < b->first_app) {
            size_t k = (i - b->first_deep) % b->deep;
            size_t up = k == 0 ? zone0 + (i - b->first_deep) / b->deep : i - 1;
            rc = bench_report(b, i, up, up, 1);
        } else {
            size_t k = i - b->first_app;
            rc = bench_report(b, i, zone0 + k % b->zones,
                              zone0 + (k * 31 + 5) % b->zones, 2);
        }
    }
    return rc;
}

static void
bench_pairs(bench *b)
{
    size_t apps = b->n - b->first_app;
    size_t zone0 = BENCH_TOPS + b->regions;
    for (size_t q = 0; q < BENCH_QUERIES; q++) {
        size_t x = (size_t)atb_rand_below(&b->rng, b->n);
        size_t y = (size_t)atb_rand_below(&b->rng, b->n);
        size_t app = b->first_app + (size_t)atb_rand_below(&b->rng, apps);
        switch (q % 4) {
        case 1: /* an app and its primary zone */
            x = app;
            y = zone0 + (app - b->first_app) % b->zones;
            break;
        case 2: /* two apps of one zone */
            x = app;
            y = app + b->zones < b->n ? app + b->zones : app;
            break;
        case 3: /* a node and a top relay */
            y = (size_t)atb_rand_below(&b->rng, BENCH_TOPS);
            break;
        default:
            break;
        }
        b->qa[q] = (uint32_t)x;
        b->qb[q] = (uint32_t)y;
    }
}

/* bench_relations runs queries [from, to) and counts the results. */
static int
bench_relations(bench *b, size_t from, size_t to, uint64_t *counts)
{
    for (size_t q = from; q < to; q++) {
        atbus_relation r;
        int rc = atb_route_relation(&b->reg, bench_name(b, b->qa[q]),
                                    bench_name(b, b->qb[q]), &r);
        if (rc != ATBUS_OK) {
            return rc;
        }
        counts[r]++;
    }
    return ATBUS_OK;
}

/* ---- the caller's side of next hop: records are the names ---- */

static const void *
bench_record(const char *name, void *arg)
{
    (void)arg;
    return name;
}

/* Apps are in the namespace after the dot; every other node is a relay
 * (relays, like the old root relays, may connect to each other). */
static const char *
bench_attr(const void *record, const char *key, void *arg)
{
    (void)arg;
    const char *name = record;
    int app = strncmp(name, "app-", 4) == 0;
    if (strcmp(key, "type") == 0) {
        return app ? "app" : "relay";
    }
    if (strcmp(key, "metadata.namespace_name") != 0 || !app) {
        return NULL;
    }
    return strchr(name, '.') + 1;
}

static int
bench_peer_state(const char *name, void *arg)
{
    (void)arg;
    return strncmp(name, "app-", 4) == 0 ? ATB_ROUTE_PEER_DIALABLE
                                         : ATB_ROUTE_PEER_CONNECTED;
}

static int
bench_next_hops(bench *b, const atb_route_env *env, uint64_t *routed)
{
    for (size_t q = 0; q < BENCH_QUERIES; q++) {
        atbus_next_hop hop;
        int rc = atb_route_next_hop(&b->reg, env, bench_name(b, b->qa[q]),
                                    bench_name(b, b->qb[q]), &hop);
        if (rc != ATBUS_OK && rc != ATBUS_ENOROUTE) {
            return rc;
        }
        *routed += rc == ATBUS_OK;
    }
    return ATBUS_OK;
}

static double
bench_per(uint64_t ns, uint64_t count)
{
    return count > 0 ? (double)ns / (double)count : 0.0;
}

static int
bench_queries(bench *b, struct atb_bench_route_result *out)
{
    uint64_t scratch[8] = {0};
    int rc = bench_relations(b, 0, BENCH_QUERIES, out->relation_counts);
    uint64_t best = UINT64_MAX;
    for (int pass = 0; pass < BENCH_PASSES && rc == ATBUS_OK; pass++) {
        uint64_t t0 = bench_now_ns();
        rc = bench_relations(b, 0, BENCH_QUERIES, scratch);
        uint64_t spent = bench_now_ns() - t0;
        best = spent < best ? spent : best;
    }
    out->relation_warm_ns = bench_per(best, BENCH_QUERIES);
    out->relation_queries += BENCH_QUERIES;

    /* Each bump makes every chain stale; the queries after it rebuild. */
    const char *zone = bench_name(b, BENCH_TOPS + b->regions);
    size_t chunk = BENCH_QUERIES / BENCH_BUMPS;
    uint64_t spent = 0;
    for (size_t k = 0; k < BENCH_BUMPS && rc == ATBUS_OK; k++) {
        rc = atb_route_set_up(&b->reg, zone, (int)(k % 2));
        uint64_t t0 = bench_now_ns();
        if (rc == ATBUS_OK) {
            rc = bench_relations(b, k * chunk, (k + 1) * chunk, scratch);
        }
        spent += bench_now_ns() - t0;
    }
    if (rc == ATBUS_OK) {
        rc = atb_route_set_up(&b->reg, zone, 1);
    }
    out->relation_bump_ns = bench_per(spent, BENCH_BUMPS * chunk);
    out->relation_queries += BENCH_BUMPS * chunk;
    if (rc != ATBUS_OK) {
        return rc;
    }

    /* The deepest node and its root. */
    atb_route_node *leaf =
        atb_route_find(&b->reg, bench_name(b, b->first_app - 1));
    rc = atb_route_chain(&b->reg, leaf);
    if (rc != ATBUS_OK) {
        return rc;
    }
    out->max_depth = leaf->depth;
    const char *root = leaf->chain[leaf->depth - 1]->name;
    uint64_t t0 = bench_now_ns();
    for (size_t q = 0; q < BENCH_QUERIES && rc == ATBUS_OK; q++) {
        atbus_relation r = 0;
        rc = atb_route_relation(&b->reg, leaf->name, root, &r);
        scratch[r]++;
    }
    out->relation_deep_ns = bench_per(bench_now_ns() - t0, BENCH_QUERIES);
    out->relation_queries += BENCH_QUERIES;
    return rc;
}

static int
bench_hops(bench *b, struct atb_bench_route_result *out)
{
    atb_route_policy *policy = NULL;
    int rc = atb_route_policy_parse("same metadata.namespace_name -> direct\n"
                                    "both type=relay -> direct\n"
                                    "default -> relay\n",
                                    &policy, NULL);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_route_env env = {
        .policy = policy,
        .record = bench_record,
        .attr = bench_attr,
        .peer_state = bench_peer_state,
        .prefer = ATB_ROUTE_PREFER_UPSTREAM,
    };
    uint64_t routed = 0;
    rc = bench_next_hops(b, &env, &routed); /* warm up */
    uint64_t best = UINT64_MAX;
    for (int pass = 0; pass < BENCH_PASSES && rc == ATBUS_OK; pass++) {
        uint64_t t0 = bench_now_ns();
        rc = bench_next_hops(b, &env, &routed);
        uint64_t spent = bench_now_ns() - t0;
        best = spent < best ? spent : best;
    }
    out->next_hop_ns = bench_per(best, BENCH_QUERIES);
    out->next_hop_queries = routed;
    atb_route_policy_free(policy);
    return rc;
}

int
atb_bench_route(size_t nodes, unsigned seed, struct atb_bench_route_result *out)
{
    if (out == NULL || nodes < 200 || nodes > UINT32_MAX) {
        return ATBUS_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    bench b = {.n = nodes, .rng = seed};
    b.regions = nodes / 5000 > 4 ? nodes / 5000 : 4;
    b.zones = nodes / 250 > 8 ? nodes / 250 : 8;
    b.deep = nodes / 40 < 1000 ? nodes / 40 : 1000;
    b.names = malloc(nodes * BENCH_NAME);
    b.qa = malloc(BENCH_QUERIES * sizeof(*b.qa));
    b.qb = malloc(BENCH_QUERIES * sizeof(*b.qb));
    int rc = ATBUS_ENOMEM;
    if (b.names != NULL && b.qa != NULL && b.qb != NULL) {
        bench_layout(&b);
        bench_pairs(&b);
        atb_route_registry_init(&b.reg);
        size_t heap0 = bench_heap_bytes();
        uint64_t t0 = bench_now_ns();
        rc = bench_build(&b);
        uint64_t built = bench_now_ns() - t0;
        out->nodes = atb_route_count(&b.reg);
        out->relays = BENCH_TOPS + b.regions + b.zones;
        out->build_ms = (double)built / 1e6;
        out->build_ns_per_node = bench_per(built, nodes);
        out->bytes_per_node =
            (double)atb_route_registry_bytes(&b.reg) / (double)nodes;
        if (rc == ATBUS_OK) {
            rc = bench_queries(&b, out);
        }
        if (rc == ATBUS_OK) {
            rc = bench_hops(&b, out);
        }
        out->bytes_per_node_cached =
            (double)atb_route_registry_bytes(&b.reg) / (double)nodes;
        size_t heap1 = bench_heap_bytes();
        out->heap_bytes_per_node =
            heap1 > heap0 ? (double)(heap1 - heap0) / (double)nodes : 0.0;
        atb_route_registry_fini(&b.reg);
    }
    free(b.names);
    free(b.qa);
    free(b.qb);
    return rc;
}

void
atb_bench_route_print(const struct atb_bench_route_result *r, FILE *f)
{
    fprintf(f, "route registry: %zu nodes (%zu relays), deepest chain %u\n",
            r->nodes, r->relays, r->max_depth);
    fprintf(f, "  build              %10.1f ms  (%.0f ns per report)\n",
            r->build_ms, r->build_ns_per_node);
    fprintf(f, "  relation, warm     %10.1f ns per query\n",
            r->relation_warm_ns);
    fprintf(f, "  relation, bumped   %10.1f ns per query (chains rebuilt)\n",
            r->relation_bump_ns);
    fprintf(f, "  relation, deepest  %10.1f ns per query (warm)\n",
            r->relation_deep_ns);
    fprintf(f, "  next hop, warm     %10.1f ns per query\n", r->next_hop_ns);
    fprintf(f,
            "  memory             %10.1f bytes per node asked, %.1f with "
            "chain caches, %.1f heap\n",
            r->bytes_per_node, r->bytes_per_node_cached,
            r->heap_bytes_per_node);
    fprintf(f, "  warm queries by relation:");
    for (int i = 1; i < 8; i++) {
        fprintf(f, " %s %llu", atbus_relation_name((atbus_relation)i),
                (unsigned long long)r->relation_counts[i]);
    }
    fprintf(f, "\n");
}
