/*
 * etcd discovery benchmark (see bench_etcd.h).
 *
 * Figures, not pass/fail. atbus-bench calls atb_bench_etcd_run; to run
 * it alone against a local etcd:
 *
 *   cc -O2 -DATB_BENCH_ETCD_MAIN -Icore/include -Ibuild/etcd-rel/core/include \
 *      -Icore/src tools/atbus-bench/bench_etcd.c \
 *      build/etcd-rel/core/libatbus_internal.a \
 *      $(pkg-config --libs libcurl jansson libprotobuf-c libxxhash yaml-0.1) \
 *      -o /tmp/bench_etcd
 *   /tmp/bench_etcd http://127.0.0.1:2379 [records] [value_size] [batch]
 */
#define _GNU_SOURCE /* malloc_usable_size */
#include "bench_etcd.h"

#include <atbus/error.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "etcd/etcd.h"
#include "loop/loop.h"

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define BENCH_HAVE_MALLINFO2 1
#endif

#define BENCH_STEP_US (60ull * 1000 * 1000)

/* ---- the simple cache: key -> copy of the value ---- */

typedef struct bench_entry bench_entry;

struct bench_entry {
    bench_entry *next;
    size_t value_len;
    char *value;
    char key[];
};

typedef struct bench_cache {
    bench_entry **table;
    size_t cap; /* power of two */
    size_t n;
} bench_cache;

static uint64_t
bench_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    }
    return h;
}

static int
bench_cache_grow(bench_cache *c)
{
    size_t cap = c->cap == 0 ? 1024 : c->cap * 2;
    bench_entry **t = calloc(cap, sizeof(*t));
    if (t == NULL) {
        return -1;
    }
    for (size_t i = 0; i < c->cap; i++) {
        while (c->table[i] != NULL) {
            bench_entry *e = c->table[i];
            c->table[i] = e->next;
            uint64_t h = bench_hash(e->key, strlen(e->key)) & (cap - 1);
            e->next = t[h];
            t[h] = e;
        }
    }
    free(c->table);
    c->table = t;
    c->cap = cap;
    return 0;
}

static int
bench_cache_put(bench_cache *c, const char *key, size_t key_len,
                const char *value, size_t value_len)
{
    if (c->n >= c->cap && bench_cache_grow(c) != 0) {
        return -1;
    }
    bench_entry **pp = &c->table[bench_hash(key, key_len) & (c->cap - 1)];
    while (*pp != NULL && !(strlen((*pp)->key) == key_len &&
                            memcmp((*pp)->key, key, key_len) == 0)) {
        pp = &(*pp)->next;
    }
    char *v = malloc(value_len + 1);
    if (v == NULL) {
        return -1;
    }
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    bench_entry *e = *pp;
    if (e == NULL) {
        e = malloc(sizeof(*e) + key_len + 1);
        if (e == NULL) {
            free(v);
            return -1;
        }
        memcpy(e->key, key, key_len);
        e->key[key_len] = '\0';
        e->next = NULL;
        e->value = NULL;
        *pp = e;
        c->n++;
    }
    free(e->value);
    e->value = v;
    e->value_len = value_len;
    return 0;
}

static size_t
bench_cache_bytes(const bench_cache *c)
{
    size_t bytes = malloc_usable_size(c->table);
    for (size_t i = 0; i < c->cap; i++) {
        for (const bench_entry *e = c->table[i]; e != NULL; e = e->next) {
            bytes += malloc_usable_size((void *)(uintptr_t)e) +
                     malloc_usable_size(e->value);
        }
    }
    return bytes;
}

static void
bench_cache_free(bench_cache *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        while (c->table[i] != NULL) {
            bench_entry *e = c->table[i];
            c->table[i] = e->next;
            free(e->value);
            free(e);
        }
    }
    free(c->table);
    memset(c, 0, sizeof(*c));
}

/* ---- the run ---- */

typedef struct bench {
    const atb_bench_etcd_config *cfg;
    atb_loop *loop;
    atb_etcd *writer;
    atb_etcd *watcher;
    bench_cache cache;
    char *value;
    size_t issued;    /* records */
    size_t requests;  /* registration requests started */
    size_t completed; /* and answered */
    int cleaned;
    int err;
    char detail[512];
    int synced;
    char probe[64];
    int probe_seen;
} bench;

static void
bench_fail(bench *b, const atb_etcd_result *res)
{
    if (b->err == ATBUS_OK) {
        b->err = res->err;
        snprintf(b->detail, sizeof(b->detail), "%s", res->detail);
    }
}

static void
bench_on_event(int kind, const char *key, size_t key_len, const char *value,
               size_t value_len, int64_t rev, void *arg)
{
    (void)rev;
    bench *b = arg;
    if (kind == ATB_ETCD_PUT &&
        bench_cache_put(&b->cache, key, key_len, value, value_len) != 0) {
        b->err = ATBUS_ENOMEM;
    }
    if (b->probe[0] != '\0' && strlen(b->probe) == key_len &&
        memcmp(b->probe, key, key_len) == 0) {
        b->probe_seen = 1;
    }
}

static void
bench_on_state(int state, uint64_t since, int err, const char *detail,
               void *arg)
{
    (void)since;
    bench *b = arg;
    if (state == ATB_ETCD_WATCH_SYNCED) {
        b->synced = 1;
    } else {
        fprintf(stderr, "bench_etcd: watch stale: %s (%s)\n", detail,
                atbus_err_name(err));
    }
}

static void bench_issue(bench *b);

static void
bench_done(const atb_etcd_result *res, void *arg)
{
    bench *b = arg;
    b->completed++;
    if (res->err != ATBUS_OK) {
        bench_fail(b, res);
        return;
    }
    bench_issue(b);
}

/* bench_other completes the probes and the clean-ups. */
static void
bench_other(const atb_etcd_result *res, void *arg)
{
    bench *b = arg;
    b->cleaned++;
    if (res->err != ATBUS_OK) {
        bench_fail(b, res);
    }
}

/* bench_issue keeps `window` registration requests in flight. */
static void
bench_issue(bench *b)
{
    const atb_bench_etcd_config *cfg = b->cfg;
    enum { BATCH_MAX = ATB_ETCD_TXN_MAX };
    while (b->err == ATBUS_OK && b->issued < cfg->records &&
           b->requests - b->completed < cfg->window) {
        char keys[BATCH_MAX][40];
        atb_etcd_pair pairs[BATCH_MAX];
        size_t n = 0;
        while (n < cfg->batch && b->issued < cfg->records) {
            snprintf(keys[n], sizeof(keys[n]), "/nodes/node-%06zu", b->issued);
            /* The record's name is the only part that varies. */
            memcpy(b->value + 9, keys[n] + 7, 11);
            pairs[n].key = keys[n];
            pairs[n].value = b->value;
            pairs[n].value_len = cfg->value_size;
            n++;
            b->issued++;
        }
        int rc = n == 1
                     ? atb_etcd_put(b->writer, pairs[0].key, b->value,
                                    cfg->value_size, 0, bench_done, b)
                     : atb_etcd_txn_put(b->writer, pairs, n, 0, bench_done, b);
        b->requests++;
        if (rc != ATBUS_OK) {
            b->err = rc;
            snprintf(b->detail, sizeof(b->detail), "cannot start a request");
        }
    }
}

/* bench_value makes a record-like JSON value of exactly size bytes. */
static char *
bench_value(size_t size)
{
    static const char head[] =
        "{\"name\":\"node-000000\",\"type\":\"node\",\"version\":\"1.4.2\","
        "\"hash_code\":\"9f1c2e\",\"host\":{\"hostname\":\"pod-7d9f\","
        "\"pid\":4242},\"metadata\":{\"namespace_name\":\"ns1\",\"kind\":"
        "\"app\",\"labels\":{\"area.region\":\"CN\",\"area.zone_id\":\"3\"}},"
        "\"gateways\":[{\"priority\":1,\"addresses\":[\"ipv4://10.0.3.17:"
        "7000\"],\"match\":{\"metadata\":{\"namespace_name\":\"ns1\"}}}],"
        "\"custom_data\":\"";
    size_t min = sizeof(head) - 1 + 2;
    if (size < min) {
        size = min;
    }
    char *v = malloc(size + 1);
    if (v == NULL) {
        return NULL;
    }
    memcpy(v, head, sizeof(head) - 1);
    memset(v + sizeof(head) - 1, 'x', size - min);
    memcpy(v + size - 2, "\"}", 2);
    v[size] = '\0';
    /* "node-" sits at offset 9: the name is rewritten per record. */
    return v;
}

static size_t
bench_heap(void)
{
#ifdef BENCH_HAVE_MALLINFO2
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

/* bench_turn polls until *flag or the step deadline; 0 on success. */
static int
bench_turn(bench *b, const int *flag, uint64_t start)
{
    while (!*flag && b->err == ATBUS_OK) {
        if (atb_clock_us() - start > BENCH_STEP_US) {
            b->err = ATBUS_ETIMEDOUT;
            snprintf(b->detail, sizeof(b->detail), "step took over a minute");
            break;
        }
        atb_loop_poll(b->loop, 50);
    }
    return b->err;
}

static int
bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int
bench_register(bench *b, atb_bench_etcd_result *out)
{
    size_t total = (b->cfg->records + b->cfg->batch - 1) / b->cfg->batch;
    uint64_t t0 = atb_clock_us();
    bench_issue(b);
    while (b->completed < total && b->err == ATBUS_OK) {
        if (atb_clock_us() - t0 > 10 * BENCH_STEP_US) {
            b->err = ATBUS_ETIMEDOUT;
            snprintf(b->detail, sizeof(b->detail), "registration too slow");
            break;
        }
        atb_loop_poll(b->loop, 50);
    }
    out->register_s = (double)(atb_clock_us() - t0) / 1e6;
    out->register_per_s = (double)b->cfg->records / out->register_s;
    return b->err;
}

/* bench_clean deletes the prefix and waits (bounded) for the answer. */
static int
bench_clean(bench *b)
{
    int before = b->cleaned;
    int rc = atb_etcd_delete(b->writer, "", 1, bench_other, b);
    uint64_t t0 = atb_clock_us();
    while (rc == ATBUS_OK && b->cleaned == before &&
           atb_clock_us() - t0 < BENCH_STEP_US) {
        atb_loop_poll(b->loop, 50);
    }
    return rc;
}

static int
bench_watch(bench *b, const atb_etcd_config *ecfg, atb_bench_etcd_result *out)
{
    static const atb_etcd_callbacks cbs = {
        .on_event = bench_on_event,
        .on_watch_state = bench_on_state,
    };
    size_t heap0 = bench_heap();
    uint64_t t0 = atb_clock_us();
    int rc = atb_etcd_new(&b->watcher, b->loop, ecfg, &cbs, b);
    if (rc == ATBUS_OK) {
        rc = atb_etcd_watch_start(b->watcher, "");
    }
    if (rc != ATBUS_OK) {
        b->err = rc;
        return rc;
    }
    if (bench_turn(b, &b->synced, t0) != ATBUS_OK) {
        return b->err;
    }
    out->list_s = (double)(atb_clock_us() - t0) / 1e6;
    size_t n = b->cache.n > 0 ? b->cache.n : 1;
    out->cache_bytes_per_record = (double)bench_cache_bytes(&b->cache) / n;
    size_t heap1 = bench_heap();
    out->watcher_bytes_per_record =
        heap1 > heap0 ? (double)(heap1 - heap0) / (double)n : 0;
    return ATBUS_OK;
}

static int
bench_probes(bench *b, atb_bench_etcd_result *out)
{
    size_t n = b->cfg->probes;
    uint64_t *lat = calloc(n > 0 ? n : 1, sizeof(*lat));
    if (lat == NULL) {
        return ATBUS_ENOMEM;
    }
    for (size_t i = 0; i < n && b->err == ATBUS_OK; i++) {
        snprintf(b->probe, sizeof(b->probe), "/probe/%zu", i);
        b->probe_seen = 0;
        uint64_t t0 = atb_clock_us();
        int rc = atb_etcd_put(b->writer, b->probe, b->value, b->cfg->value_size,
                              0, bench_other, b);
        if (rc != ATBUS_OK) {
            b->err = rc;
            break;
        }
        if (bench_turn(b, &b->probe_seen, t0) != ATBUS_OK) {
            break;
        }
        lat[i] = atb_clock_us() - t0;
    }
    if (b->err == ATBUS_OK && n > 0) {
        qsort(lat, n, sizeof(*lat), bench_cmp_u64);
        out->latency_p50_ms = (double)lat[n / 2] / 1000.0;
        out->latency_p99_ms = (double)lat[(n * 99) / 100] / 1000.0;
        out->latency_max_ms = (double)lat[n - 1] / 1000.0;
    }
    free(lat);
    return b->err;
}

void
atb_bench_etcd_config_default(atb_bench_etcd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->endpoint = "http://127.0.0.1:2379";
    cfg->prefix = "/atbus-bench";
    cfg->records = 10000;
    cfg->value_size = 400;
    cfg->batch = 1;
    cfg->window = 32;
    cfg->probes = 200;
}

int
atb_bench_etcd_run(const atb_bench_etcd_config *cfg, atb_bench_etcd_result *out)
{
    /* Names have six digits, rewritten in place in one value. */
    if (cfg == NULL || out == NULL || cfg->records == 0 ||
        cfg->records > 999999 || cfg->batch == 0 ||
        cfg->batch > ATB_ETCD_TXN_MAX || cfg->window == 0) {
        return ATBUS_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    bench b;
    memset(&b, 0, sizeof(b));
    b.cfg = cfg;
    b.value = bench_value(cfg->value_size);
    atb_etcd_config ecfg;
    atb_etcd_config_default(&ecfg);
    ecfg.endpoints[0] = cfg->endpoint;
    ecfg.endpoint_count = 1;
    ecfg.prefix = cfg->prefix;
    int rc = b.value != NULL ? atb_loop_new(&b.loop) : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        rc = atb_etcd_new(&b.writer, b.loop, &ecfg, NULL, NULL);
    }
    if (rc == ATBUS_OK) {
        /* Start from an empty prefix. */
        rc = bench_clean(&b);
        rc = rc == ATBUS_OK ? b.err : rc;
    }
    if (rc == ATBUS_OK) {
        rc = bench_register(&b, out);
    }
    if (rc == ATBUS_OK) {
        rc = bench_watch(&b, &ecfg, out);
    }
    if (rc == ATBUS_OK) {
        rc = bench_probes(&b, out);
    }
    if (rc != ATBUS_OK) {
        fprintf(stderr, "bench_etcd: %s: %s\n", atbus_err_name(rc), b.detail);
    }
    if (b.writer != NULL) {
        (void)bench_clean(&b);
    }
    atb_etcd_free(b.watcher);
    atb_etcd_free(b.writer);
    atb_loop_free(b.loop);
    bench_cache_free(&b.cache);
    free(b.value);
    return rc;
}

void
atb_bench_etcd_print(const atb_bench_etcd_config *cfg,
                     const atb_bench_etcd_result *res)
{
    printf("etcd %s, %zu records of %zu B, %zu per request, %zu in flight\n",
           cfg->endpoint, cfg->records, cfg->value_size, cfg->batch,
           cfg->window);
    printf("  register         %8.2f s  (%.0f records/s)\n", res->register_s,
           res->register_per_s);
    printf("  watcher synced   %8.3f s  (initial list of every record)\n",
           res->list_s);
    printf("  put -> event     p50 %.2f ms  p99 %.2f ms  max %.2f ms  "
           "(%zu probes)\n",
           res->latency_p50_ms, res->latency_p99_ms, res->latency_max_ms,
           cfg->probes);
    printf("  memory / record  %8.0f B in the cache, %.0f B heap growth of "
           "the watcher (client + cache)\n",
           res->cache_bytes_per_record, res->watcher_bytes_per_record);
}

#ifdef ATB_BENCH_ETCD_MAIN
int
main(int argc, char **argv)
{
    atb_bench_etcd_config cfg;
    atb_bench_etcd_config_default(&cfg);
    if (argc > 1) {
        cfg.endpoint = argv[1];
    }
    if (argc > 2) {
        cfg.records = (size_t)strtoul(argv[2], NULL, 10);
    }
    if (argc > 3) {
        cfg.value_size = (size_t)strtoul(argv[3], NULL, 10);
    }
    if (argc > 4) {
        cfg.batch = (size_t)strtoul(argv[4], NULL, 10);
    }
    atb_bench_etcd_result res;
    int rc = atb_bench_etcd_run(&cfg, &res);
    if (rc != ATBUS_OK) {
        return 1;
    }
    atb_bench_etcd_print(&cfg, &res);
    return 0;
}
#endif
