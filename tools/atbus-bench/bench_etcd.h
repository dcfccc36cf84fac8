/*
 * etcd discovery benchmark: how the etcd client behaves at registry
 * scale against a running etcd.
 *
 *   1. register `records` keys of about `value_size` bytes of record-like
 *      JSON under <prefix>/nodes/, `window` requests in flight, each a
 *      txn of `batch` keys (batch 1: one put per record, as 10 000
 *      nodes each registering themselves would do);
 *   2. start a watching client: time until its initial listing has
 *      delivered every record and its watch is confirmed, and the heap it
 *      and a simple cache of the records (key -> value copy) hold;
 *   3. put `probes` new keys one after another and time each from the
 *      put's start until the watcher reports it.
 *
 * Everything runs on one atb_loop in the calling thread. The keys are
 * deleted at the end.
 */
#ifndef ATB_BENCH_ETCD_H
#define ATB_BENCH_ETCD_H

#include <stddef.h>

typedef struct atb_bench_etcd_config {
    const char *endpoint; /* e.g. "http://127.0.0.1:2379" */
    const char *prefix;   /* e.g. "/atbus-bench" */
    size_t records;       /* default 10000; at most 999999 */
    size_t value_size;    /* default 400 */
    size_t batch;         /* keys per txn; default 1 */
    size_t window;        /* requests in flight; default 32 */
    size_t probes;        /* latency samples; default 200 */
} atb_bench_etcd_config;

typedef struct atb_bench_etcd_result {
    double register_s;     /* writing every record */
    double register_per_s; /* records per second */
    double list_s;         /* watcher start until all seen and synced */
    double latency_p50_ms; /* put start -> watch event */
    double latency_p99_ms;
    double latency_max_ms;
    double cache_bytes_per_record;   /* the simple cache alone */
    double watcher_bytes_per_record; /* heap growth: client + cache */
} atb_bench_etcd_result;

/* atb_bench_etcd_config_default fills the defaults above (endpoint
 * http://127.0.0.1:2379, prefix /atbus-bench). */
void atb_bench_etcd_config_default(atb_bench_etcd_config *cfg);

/*
 * atb_bench_etcd_run runs the benchmark. Returns ATBUS_OK, or an atbus
 * error (ATBUS_EUNAVAILABLE: etcd not reachable; ATBUS_ETIMEDOUT: a step
 * took over a minute) after printing what failed to stderr.
 */
int atb_bench_etcd_run(const atb_bench_etcd_config *cfg,
                       atb_bench_etcd_result *out);

/* atb_bench_etcd_print writes the figures to stdout. */
void atb_bench_etcd_print(const atb_bench_etcd_config *cfg,
                          const atb_bench_etcd_result *res);

#endif /* ATB_BENCH_ETCD_H */
