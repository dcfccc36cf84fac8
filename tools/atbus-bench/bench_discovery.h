/*
 * Discovery benchmark: the etcd sync at registry scale against a running
 * etcd.
 *
 *   1. register `records` valid node records of about `record_size`
 *      bytes of JSON under <prefix>/nodes/, `batch` per transaction,
 *      `window` transactions in flight;
 *   2. start a watching sync into an empty embedded registry: time until
 *      the registry holds every record and the watch is confirmed, and
 *      the heap that registry and sync hold per record (the sync's etcd
 *      client included); for comparison, the heap per record of a second
 *      registry filled with atbus_registry_put alone;
 *   3. `probes` times, a publishing sync (its own client and lease)
 *      registers a new node (node record and route record in one
 *      transaction): time from atb_disc_sync_publish until the watching
 *      registry reports the node record.
 *
 * Everything runs on one atb_loop in the calling thread. The prefix is
 * emptied before and after.
 */
#ifndef ATB_BENCH_DISCOVERY_H
#define ATB_BENCH_DISCOVERY_H

#include <stddef.h>

typedef struct atb_bench_discovery_config {
    const char *endpoint; /* e.g. "http://127.0.0.1:2379" */
    const char *prefix;   /* e.g. "/atbus-bench-disc" */
    size_t records;       /* default 10000; at most 999999 */
    size_t record_size;   /* bytes of JSON per record; default 400 */
    size_t batch;         /* records per txn; default 64 (at most 64) */
    size_t window;        /* txns in flight; default 8 */
    size_t probes;        /* latency samples; default 100 */
} atb_bench_discovery_config;

typedef struct atb_bench_discovery_result {
    double register_s;     /* writing every record */
    double sync_s;         /* sync start until every record is in the registry
                              and the watch is confirmed */
    double visible_p50_ms; /* publish -> in the watching registry */
    double visible_p99_ms;
    double visible_max_ms;
    double sync_bytes_per_record;     /* heap: registry + sync + client */
    double registry_bytes_per_record; /* heap: a registry alone */
    size_t record_json_bytes;         /* size of one record's JSON */
} atb_bench_discovery_result;

/* atb_bench_discovery_config_default fills the defaults above (endpoint
 * http://127.0.0.1:2379, prefix /atbus-bench-disc). */
void atb_bench_discovery_config_default(atb_bench_discovery_config *cfg);

/*
 * atb_bench_discovery_run runs the benchmark. Returns ATBUS_OK, or an
 * atbus error after printing what failed to stderr: ATBUS_EINVAL (bad
 * config), ATBUS_EUNAVAILABLE (etcd not reachable), ATBUS_ETIMEDOUT (a
 * step took over a minute), ATBUS_ENOMEM.
 */
int atb_bench_discovery_run(const atb_bench_discovery_config *cfg,
                            atb_bench_discovery_result *out);

/* atb_bench_discovery_print writes the figures to stdout. */
void atb_bench_discovery_print(const atb_bench_discovery_config *cfg,
                               const atb_bench_discovery_result *res);

#endif /* ATB_BENCH_DISCOVERY_H */
