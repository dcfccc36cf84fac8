/*
 * Discovery benchmark (see bench_discovery.h).
 *
 * Figures, not pass/fail. To run it alone against a local etcd, after
 * building atbus_internal (here in build/sync-rel):
 *
 *   cc -std=c11 -O2 -DATB_BENCH_DISCOVERY_MAIN -Icore/include \
 *      -Ibuild/sync-rel/core/include -Icore/src \
 *      tools/atbus-bench/bench_discovery.c \
 *      build/sync-rel/core/libatbus_internal.a \
 *      $(pkg-config --libs libcurl jansson libprotobuf-c libxxhash yaml-0.1) \
 *      -o /tmp/bench_discovery
 *   /tmp/bench_discovery http://127.0.0.1:2379 [records] [record_size] [batch]
 */
#define _GNU_SOURCE /* mallinfo2 */
#include "bench_discovery.h"

#include <atbus/atbus.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "discovery/sync.h"
#include "etcd/etcd.h"
#include "loop/loop.h"

#define DISC_STEP_US (60ull * 1000 * 1000)

/* The name of record i, and where it sits in the encoded JSON: the
 * encoder writes "name" first, so every record is one text with eleven
 * bytes rewritten. */
#define DISC_NAME_FMT "node-%06zu"
#define DISC_NAME_LEN 11
#define DISC_NAME_AT 9 /* strlen("{\"name\":\"") */

typedef struct disc_bench {
    const atb_bench_discovery_config *cfg;
    atb_loop *loop;
    atb_etcd *writer;
    char *json; /* record 0; the others differ only in their name */
    size_t json_len;
    char *batch;   /* batch * json_len bytes: the values of one txn */
    size_t issued; /* records handed to a txn */
    size_t txns;   /* txns started */
    size_t acked;  /* and answered */
    int cleaned;
    int err;
    char detail[512];
    /* the watching side */
    atbus_registry *reg;
    atb_disc_sync *watch;
    int synced;
    const char *probe; /* name awaited in reg */
    int probe_seen;
} disc_bench;

static void
disc_fail(disc_bench *b, int err, const char *detail)
{
    if (b->err == ATBUS_OK && err != ATBUS_OK) {
        b->err = err;
        snprintf(b->detail, sizeof(b->detail), "%s", detail);
    }
}

static size_t
disc_heap(void)
{
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

/* disc_wait turns the loop until *flag (or an error, or a minute). */
static int
disc_wait(disc_bench *b, const int *flag)
{
    uint64_t start = atb_clock_us();
    while (!*flag && b->err == ATBUS_OK) {
        if (atb_clock_us() - start > DISC_STEP_US) {
            disc_fail(b, ATBUS_ETIMEDOUT, "a step took over a minute");
            break;
        }
        atb_loop_poll(b->loop, 20);
    }
    return b->err;
}

/* ---- records ---- */

/* disc_record fills rec with a node record like a workload's: host,
 * metadata with labels, one gateway, a relay selector, and custom_data
 * of pad bytes. */
static int
disc_record(atbus_record *rec, const char *name, size_t pad)
{
    atbus_record_init(rec);
    rec->version = 1;
    rec->host.pid = 4242;
    char *fill = malloc(pad + 1);
    if (fill == NULL) {
        return ATBUS_ENOMEM;
    }
    memset(fill, 'x', pad);
    fill[pad] = '\0';
    atbus_gateway *gw = NULL;
    int rc = atbus_record_set_string(&rec->name, name);
    rc = rc != ATBUS_OK ? rc
                        : atbus_record_set_string(&rec->hash_code, "9f1c2e");
    rc = rc != ATBUS_OK ? rc : atbus_record_set_string(&rec->custom_data, fill);
    rc = rc != ATBUS_OK
             ? rc
             : atbus_record_set_string(&rec->host.hostname, "pod-7d9f-x2kq");
    rc = rc != ATBUS_OK
             ? rc
             : atbus_record_set_string(&rec->metadata.namespace_name, "ns1");
    rc = rc != ATBUS_OK ? rc
                        : atbus_record_set_string(&rec->metadata.kind, "app");
    rc = rc != ATBUS_OK
             ? rc
             : atbus_record_map_set(&rec->metadata.labels, "area.region", "CN");
    rc = rc != ATBUS_OK
             ? rc
             : atbus_record_map_set(&rec->metadata.labels, "area.zone_id", "3");
    rc = rc != ATBUS_OK ? rc : atbus_record_add_gateway(rec, 1, &gw);
    rc = rc != ATBUS_OK
             ? rc
             : atbus_record_list_add(&gw->addresses, "ipv4://10.0.3.17:7000");
    rc = rc != ATBUS_OK ? rc
                        : atbus_record_set_string(
                              &gw->match.metadata.namespace_name, "ns1");
    rc = rc != ATBUS_OK ? rc
                        : atbus_record_set_string(
                              &rec->advertise_relay.metadata.kind, "relay");
    free(fill);
    return rc;
}

/* disc_template encodes record 0 padded to about size bytes of JSON. */
static int
disc_template(disc_bench *b, size_t size)
{
    char name[32];
    snprintf(name, sizeof(name), DISC_NAME_FMT, (size_t)0);
    atbus_record rec;
    char *text = NULL;
    int rc = disc_record(&rec, name, 0);
    if (rc == ATBUS_OK) {
        rc = atbus_record_to_json(&rec, &text);
    }
    size_t bare = text != NULL ? strlen(text) : 0;
    atbus_record_json_free(text);
    atbus_record_fini(&rec);
    text = NULL;
    if (rc == ATBUS_OK) {
        rc = disc_record(&rec, name, size > bare ? size - bare : 0);
    }
    if (rc == ATBUS_OK) {
        rc = atbus_record_to_json(&rec, &text);
    }
    atbus_record_fini(&rec);
    if (rc == ATBUS_OK) {
        b->json = text;
        b->json_len = strlen(text);
    }
    return rc;
}

/* disc_name_record writes record i into dst (json_len bytes): the
 * template with i's name. */
static void
disc_name_record(const disc_bench *b, size_t i, char *dst)
{
    char name[32];
    snprintf(name, sizeof(name), DISC_NAME_FMT, i);
    memcpy(dst, b->json, b->json_len);
    memcpy(dst + DISC_NAME_AT, name, DISC_NAME_LEN);
}

/* ---- registering ---- */

static void disc_issue(disc_bench *b);

static void
disc_txn_done(const atb_etcd_result *res, void *arg)
{
    disc_bench *b = arg;
    b->acked++;
    disc_fail(b, res->err, res->detail);
    disc_issue(b);
}

/* disc_issue keeps `window` txns of `batch` records in flight. A txn
 * copies its values, so one batch buffer serves every txn. */
static void
disc_issue(disc_bench *b)
{
    const atb_bench_discovery_config *cfg = b->cfg;
    while (b->err == ATBUS_OK && b->issued < cfg->records &&
           b->txns - b->acked < cfg->window) {
        char keys[ATB_ETCD_TXN_MAX][48];
        atb_etcd_pair pairs[ATB_ETCD_TXN_MAX];
        size_t n = 0;
        for (; n < cfg->batch && b->issued < cfg->records; n++, b->issued++) {
            char *value = b->batch + n * b->json_len;
            snprintf(keys[n], sizeof(keys[n]), "/nodes/" DISC_NAME_FMT,
                     b->issued);
            disc_name_record(b, b->issued, value);
            pairs[n] = (atb_etcd_pair){keys[n], value, b->json_len};
        }
        int rc = atb_etcd_txn_put(b->writer, pairs, n, 0, disc_txn_done, b);
        if (rc != ATBUS_OK) {
            disc_fail(b, rc, "cannot start a txn");
            return;
        }
        b->txns++;
    }
}

static int
disc_register(disc_bench *b, atb_bench_discovery_result *out)
{
    size_t total = (b->cfg->records + b->cfg->batch - 1) / b->cfg->batch;
    uint64_t t0 = atb_clock_us();
    disc_issue(b);
    while (b->acked < total && b->err == ATBUS_OK) {
        if (atb_clock_us() - t0 > 10 * DISC_STEP_US) {
            disc_fail(b, ATBUS_ETIMEDOUT, "registering took over 10 minutes");
            break;
        }
        atb_loop_poll(b->loop, 20);
    }
    out->register_s = (double)(atb_clock_us() - t0) / 1e6;
    return b->err;
}

static void
disc_cleaned(const atb_etcd_result *res, void *arg)
{
    disc_bench *b = arg;
    b->cleaned = 1;
    disc_fail(b, res->err, res->detail);
}

/* disc_clean empties the prefix. */
static int
disc_clean(disc_bench *b)
{
    b->cleaned = 0;
    int rc = atb_etcd_delete(b->writer, "", 1, disc_cleaned, b);
    if (rc != ATBUS_OK) {
        disc_fail(b, rc, "cannot start the delete");
        return rc;
    }
    return disc_wait(b, &b->cleaned);
}

/* ---- the watching sync ---- */

static void
disc_on_change(atbus_registry *reg, enum atbus_registry_event ev,
               const atbus_record *rec, void *arg)
{
    (void)reg;
    disc_bench *b = arg;
    if (ev == ATBUS_REGISTRY_PUT && b->probe != NULL &&
        strcmp(rec->name, b->probe) == 0 && rec->type == ATBUS_RECORD_NODE) {
        b->probe_seen = 1;
    }
}

static void
disc_on_state(const atb_disc_sync_status *st, void *arg)
{
    disc_bench *b = arg;
    if (st->state == ATB_DISC_SYNC_SYNCED &&
        atbus_registry_count(b->reg, ATBUS_REGISTRY_NODES) >= b->cfg->records) {
        b->synced = 1;
    } else if (st->state == ATB_DISC_SYNC_STALE) {
        fprintf(stderr, "bench_discovery: sync stale: %s (%s)\n", st->detail,
                atbus_err_name(st->err));
    }
}

static void
disc_on_reject(const char *key, const atbus_record_error *err, void *arg)
{
    disc_bench *b = arg;
    char detail[512];
    snprintf(detail, sizeof(detail), "%s refused: %s: %s", key, err->path,
             err->reason);
    disc_fail(b, err->code, detail);
}

/* disc_etcd_config: the benchmark's endpoint and prefix, defaults
 * otherwise. */
static void
disc_etcd_config(const atb_bench_discovery_config *cfg, atb_etcd_config *ecfg)
{
    atb_etcd_config_default(ecfg);
    ecfg->endpoints[0] = cfg->endpoint;
    ecfg->endpoint_count = 1;
    ecfg->prefix = cfg->prefix;
}

/* disc_watch starts the watching sync and waits for every record. The
 * heap it grew by, registry included, is the memory it holds. */
static int
disc_watch(disc_bench *b, atb_bench_discovery_result *out)
{
    atb_etcd_config ecfg;
    disc_etcd_config(b->cfg, &ecfg);
    size_t heap0 = disc_heap();
    uint64_t t0 = atb_clock_us();
    int rc = atbus_registry_new(&b->reg);
    atbus_registry_callbacks rcbs = {.on_change = disc_on_change};
    atb_disc_sync_callbacks scbs = {.on_reject = disc_on_reject,
                                    .on_state = disc_on_state};
    if (rc == ATBUS_OK) {
        rc = atbus_registry_set_callbacks(b->reg, &rcbs, b);
    }
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_new(&b->watch, b->loop, &ecfg, b->reg, &scbs, b);
    }
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_start(b->watch);
    }
    if (rc != ATBUS_OK) {
        disc_fail(b, rc, "cannot start the watching sync");
        return rc;
    }
    if (disc_wait(b, &b->synced) != ATBUS_OK) {
        return b->err;
    }
    out->sync_s = (double)(atb_clock_us() - t0) / 1e6;
    size_t heap1 = disc_heap();
    out->sync_bytes_per_record =
        heap1 > heap0 ? (double)(heap1 - heap0) / (double)b->cfg->records : 0;
    return ATBUS_OK;
}

/* disc_registry_alone measures a registry holding the same records,
 * put through the public API: the sync's share is the difference. */
static int
disc_registry_alone(disc_bench *b, atb_bench_discovery_result *out)
{
    char *text = malloc(b->json_len);
    atbus_registry *reg = NULL;
    size_t heap0 = disc_heap();
    int rc = text != NULL ? atbus_registry_new(&reg) : ATBUS_ENOMEM;
    for (size_t i = 0; i < b->cfg->records && rc == ATBUS_OK; i++) {
        atbus_record rec;
        disc_name_record(b, i, text);
        rc = atbus_record_from_json(text, b->json_len, &rec, NULL);
        if (rc == ATBUS_OK) {
            rc = atbus_registry_put(reg, &rec, NULL);
            atbus_record_fini(&rec);
        }
    }
    size_t heap1 = disc_heap();
    if (rc == ATBUS_OK && heap1 > heap0) {
        /* text is counted in the growth; it is one record's worth. */
        out->registry_bytes_per_record =
            (double)(heap1 - heap0) / (double)b->cfg->records;
    }
    atbus_registry_free(reg);
    free(text);
    if (rc != ATBUS_OK) {
        disc_fail(b, rc, "cannot fill a registry");
    }
    return rc;
}

/* ---- probes ---- */

static int
disc_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* disc_publish has pub register node `name` under relay-0: node record
 * and route record in one txn on pub's lease. */
static int
disc_publish(atb_disc_sync *pub, const char *name)
{
    atbus_record node;
    atbus_record route;
    atbus_record_init(&route);
    route.type = ATBUS_RECORD_ROUTE;
    int rc = disc_record(&node, name, 0);
    rc = rc != ATBUS_OK ? rc : atbus_record_set_string(&route.name, name);
    rc = rc != ATBUS_OK ? rc
                        : atbus_record_list_add(&route.upstreams, "relay-0");
    rc = rc != ATBUS_OK ? rc : atb_disc_sync_publish(pub, &node, &route, NULL);
    atbus_record_fini(&node);
    atbus_record_fini(&route);
    return rc;
}

/* disc_probe publishes name and waits until the watching registry has
 * it; *us gets the time from the publish call. */
static int
disc_probe(disc_bench *b, atb_disc_sync *pub, const char *name, uint64_t *us)
{
    b->probe = name;
    b->probe_seen = 0;
    uint64_t t0 = atb_clock_us();
    int rc = disc_publish(pub, name);
    if (rc != ATBUS_OK) {
        disc_fail(b, rc, "cannot publish a probe");
    } else {
        rc = disc_wait(b, &b->probe_seen);
    }
    *us = atb_clock_us() - t0;
    b->probe = NULL;
    return rc;
}

static int
disc_probes(disc_bench *b, atb_bench_discovery_result *out)
{
    atb_etcd_config ecfg;
    disc_etcd_config(b->cfg, &ecfg);
    atb_disc_sync *pub = NULL;
    size_t n = b->cfg->probes;
    uint64_t *lat = calloc(n + 1, sizeof(*lat));
    int rc = lat != NULL ? ATBUS_OK : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_new(&pub, b->loop, &ecfg, b->reg, NULL, NULL);
    }
    /* The first publish also grants the lease: not a sample. */
    uint64_t warm = 0;
    if (rc == ATBUS_OK) {
        rc = disc_probe(b, pub, "probe-warm", &warm);
    }
    for (size_t i = 0; i < n && rc == ATBUS_OK; i++) {
        char name[32];
        snprintf(name, sizeof(name), "probe-%06zu", i);
        rc = disc_probe(b, pub, name, &lat[i]);
    }
    if (rc == ATBUS_OK && n > 0) {
        qsort(lat, n, sizeof(*lat), disc_cmp_u64);
        out->visible_p50_ms = (double)lat[n / 2] / 1000.0;
        out->visible_p99_ms = (double)lat[(n * 99) / 100] / 1000.0;
        out->visible_max_ms = (double)lat[n - 1] / 1000.0;
    }
    if (pub != NULL) {
        (void)atb_disc_sync_unpublish(pub);
    }
    atb_disc_sync_free(pub);
    free(lat);
    if (rc != ATBUS_OK) {
        disc_fail(b, rc, "probes failed");
    }
    return rc;
}

/* ---- the run ---- */

void
atb_bench_discovery_config_default(atb_bench_discovery_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->endpoint = "http://127.0.0.1:2379";
    cfg->prefix = "/atbus-bench-disc";
    cfg->records = 10000;
    cfg->record_size = 400;
    cfg->batch = 64;
    cfg->window = 8;
    cfg->probes = 100;
}

int
atb_bench_discovery_run(const atb_bench_discovery_config *cfg,
                        atb_bench_discovery_result *out)
{
    if (cfg == NULL || out == NULL || cfg->records == 0 ||
        cfg->records > 999999 || cfg->batch == 0 ||
        cfg->batch > ATB_ETCD_TXN_MAX || cfg->window == 0 ||
        cfg->endpoint == NULL) {
        return ATBUS_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    disc_bench b;
    memset(&b, 0, sizeof(b));
    b.cfg = cfg;
    atb_etcd_config ecfg;
    disc_etcd_config(cfg, &ecfg);
    int rc = disc_template(&b, cfg->record_size);
    if (rc == ATBUS_OK) {
        out->record_json_bytes = b.json_len;
        b.batch = malloc(cfg->batch * b.json_len);
        rc = b.batch != NULL ? atb_loop_new(&b.loop) : ATBUS_ENOMEM;
    }
    if (rc == ATBUS_OK) {
        rc = atb_etcd_new(&b.writer, b.loop, &ecfg, NULL, NULL);
    }
    if (rc == ATBUS_OK) {
        rc = disc_clean(&b);
    }
    if (rc == ATBUS_OK) {
        rc = disc_register(&b, out);
    }
    if (rc == ATBUS_OK) {
        rc = disc_watch(&b, out);
    }
    if (rc == ATBUS_OK) {
        rc = disc_registry_alone(&b, out);
    }
    if (rc == ATBUS_OK) {
        rc = disc_probes(&b, out);
    }
    if (rc != ATBUS_OK) {
        fprintf(stderr, "bench_discovery: %s: %s\n", atbus_err_name(rc),
                b.detail);
    }
    atb_disc_sync_free(b.watch);
    if (b.writer != NULL) {
        b.err = ATBUS_OK;
        (void)disc_clean(&b);
    }
    atbus_registry_free(b.reg);
    atb_etcd_free(b.writer);
    atb_loop_free(b.loop);
    atbus_record_json_free(b.json);
    free(b.batch);
    return rc;
}

void
atb_bench_discovery_print(const atb_bench_discovery_config *cfg,
                          const atb_bench_discovery_result *res)
{
    printf("etcd %s: %zu node records of %zu B JSON, %zu per txn, %zu txns "
           "in flight\n",
           cfg->endpoint, cfg->records, res->record_json_bytes, cfg->batch,
           cfg->window);
    printf("  register               %8.2f s\n", res->register_s);
    printf("  sync start -> all in   %8.3f s  (listing, decoding, "
           "registry)\n",
           res->sync_s);
    printf("  publish -> visible     p50 %.2f ms  p99 %.2f ms  max %.2f ms  "
           "(%zu new nodes)\n",
           res->visible_p50_ms, res->visible_p99_ms, res->visible_max_ms,
           cfg->probes);
    printf("  memory / record        %8.0f B registry + sync (client key "
           "map included), %.0f B registry alone\n",
           res->sync_bytes_per_record, res->registry_bytes_per_record);
}

#ifdef ATB_BENCH_DISCOVERY_MAIN
int
main(int argc, char **argv)
{
    atb_bench_discovery_config cfg;
    atb_bench_discovery_config_default(&cfg);
    size_t *const counts[] = {&cfg.records, &cfg.record_size, &cfg.batch};
    cfg.endpoint = argc > 1 ? argv[1] : cfg.endpoint;
    for (int i = 2; i < argc && i - 2 < 3; i++) {
        *counts[i - 2] = (size_t)strtoul(argv[i], NULL, 10);
    }
    atb_bench_discovery_result res;
    int rc = atb_bench_discovery_run(&cfg, &res);
    if (rc == ATBUS_OK) {
        atb_bench_discovery_print(&cfg, &res);
    }
    return rc == ATBUS_OK ? 0 : 1;
}
#endif
