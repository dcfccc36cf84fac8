/*
 * Discovery record codec cost: a node record as a workload would
 * register it (labels, two gateways, tokens, a relay selector) encoded
 * to JSON and decoded back, through the public API. Times are CPU time
 * of the calling thread, so a busy machine inflates them less.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <atbus/atbus.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char codec_record[] =
    "{\"name\":\"battle-1234.ns-7\",\"type\":\"node\",\"version\":42,"
    "\"hash_code\":\"a3f1c2d4e5b60718\",\"custom_data\":\"{\\\"weight\\\":10}"
    "\",\"tokens\":[\"tok-2026-a-5f2e9c\",\"tok-2026-b-81d04a\"],"
    "\"host\":{\"hostname\":\"node-17.zone-b.example\",\"pid\":4242},"
    "\"metadata\":{\"namespace_name\":\"ns-7\",\"api_version\":\"atbus.io/"
    "v1\",\"kind\":\"Game\",\"group\":\"battle\",\"labels\":{\"area.region\":"
    "\"eu-west\",\"area.zone_id\":\"eu-west-2b\",\"app\":\"battle\"},"
    "\"annotations\":{\"owner\":\"team-7\"}},"
    "\"gateways\":[{\"priority\":0,\"addresses\":[\"shm://battle-1234\","
    "\"unix:///run/atbus/battle-1234.sock\"],\"match\":{\"host\":{"
    "\"hostname\":\"node-17.zone-b.example\"}}},{\"priority\":10,"
    "\"addresses\":[\"ipv4://10.1.7.34:7000\",\"ipv6://[fd00::7:34]:7000\"]}"
    "],\"advertise_relay\":{\"metadata\":{\"kind\":\"relay\",\"labels\":{"
    "\"area.zone_id\":\"eu-west-2b\"}}}}";

static uint64_t
codec_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
bench_codec(uint64_t iterations, bench_codec_out *out)
{
    memset(out, 0, sizeof(*out));
    atbus_record rec;
    atbus_record_error err;
    int rc =
        atbus_record_from_json(codec_record, strlen(codec_record), &rec, &err);
    if (rc != ATBUS_OK) {
        fprintf(stderr, "discovery: sample record: %s at %s: %s\n",
                atbus_err_name(rc), err.path, err.reason);
        return -1;
    }
    char *text = NULL;
    uint64_t t0 = codec_cpu_ns();
    for (uint64_t i = 0; rc == ATBUS_OK && i < iterations; i++) {
        atbus_record_json_free(text);
        text = NULL;
        rc = atbus_record_to_json(&rec, &text);
    }
    uint64_t t1 = codec_cpu_ns();
    if (rc != ATBUS_OK) {
        fprintf(stderr, "discovery: encode: %s\n", atbus_err_name(rc));
        atbus_record_fini(&rec);
        return -1;
    }
    size_t len = strlen(text);
    int same = 1;
    for (uint64_t i = 0; rc == ATBUS_OK && same && i < iterations; i++) {
        atbus_record back;
        rc = atbus_record_from_json(text, len, &back, NULL);
        if (rc == ATBUS_OK && i == 0) {
            /* A codec that loses a field would be fast for nothing. */
            same = atbus_record_equal(&rec, &back);
        }
        atbus_record_fini(&back);
    }
    uint64_t t2 = codec_cpu_ns();
    atbus_record_json_free(text);
    atbus_record_fini(&rec);
    if (rc != ATBUS_OK || !same) {
        fprintf(stderr, "discovery: decode: %s\n",
                rc != ATBUS_OK ? atbus_err_name(rc)
                               : "the record changed in a round trip");
        return -1;
    }
    out->encode_ns = (double)(t1 - t0) / (double)iterations;
    out->decode_ns = (double)(t2 - t1) / (double)iterations;
    out->json_bytes = len;
    return 0;
}
