/*
 * libFuzzer target for the YAML loader: atbus_registry_load_yaml_string
 * (libyaml, the document tree, the decoder, validation, the registry),
 * and the route feed over the route records it loaded.
 *
 * The input is a records file. Loaded into an empty registry, every
 * record is either stored or reported: what is stored encodes and copies
 * into another registry, the counts agree with the registry and the
 * callbacks, and the first error is the first one reported. The route
 * records go into a route registry: each is applied or refused for a
 * cycle, and refusals are counted. Loading the same text again changes
 * nothing. A third load, into a fresh registry with one allocation
 * failing, must load nothing and say ATBUS_ENOMEM, or end exactly as the
 * first.
 */
#include <atbus/atbus.h>

#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "common/alloc.h"
#include "discovery/disc.h"
#include "discovery/route_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

struct fuzz_seen {
    size_t errors;
    size_t changes;
    atbus_record_error first;
};

static void
fuzz_on_change(atbus_registry *reg, enum atbus_registry_event ev,
               const atbus_record *rec, void *arg)
{
    struct fuzz_seen *s = arg;
    fuzz_require(ev == ATBUS_REGISTRY_PUT);
    const atbus_record *stored = NULL;
    fuzz_require(atbus_registry_get(reg, atb_disc_table_of(rec), rec->name,
                                    &stored) == ATBUS_OK);
    fuzz_require(stored == rec);
    s->changes++;
}

static void
fuzz_on_error(atbus_registry *reg, const atbus_record_error *err, void *arg)
{
    (void)reg;
    struct fuzz_seen *s = arg;
    fuzz_require(err->code != ATBUS_OK);
    fuzz_require(memchr(err->path, '\0', sizeof(err->path)) != NULL);
    fuzz_require(memchr(err->reason, '\0', sizeof(err->reason)) != NULL);
    fuzz_require(err->reason[0] != '\0');
    if (s->errors++ == 0) {
        s->first = *err;
    }
}

static atbus_registry *
fuzz_registry(struct fuzz_seen *s)
{
    atbus_registry *reg = NULL;
    fuzz_require(atbus_registry_new(&reg) == ATBUS_OK);
    memset(s, 0, sizeof(*s));
    atbus_registry_callbacks cbs = {.on_change = fuzz_on_change,
                                    .on_load_error = fuzz_on_error};
    fuzz_require(atbus_registry_set_callbacks(reg, &cbs, s) == ATBUS_OK);
    return reg;
}

/* fuzz_stored checks one stored record: it encodes, and putting it into
 * another registry stores an equal copy. (The JSON round trip of any
 * valid record is fuzz_discovery_json's job.) */
static int
fuzz_stored(const atbus_record *rec, void *arg)
{
    atbus_registry *other = arg;
    char *text = NULL;
    fuzz_require(atbus_record_to_json(rec, &text) == ATBUS_OK);
    atbus_record_json_free(text);
    fuzz_require(atbus_registry_put(other, rec, NULL) == ATBUS_OK);
    const atbus_record *copy = NULL;
    fuzz_require(atbus_registry_get(other, atb_disc_table_of(rec), rec->name,
                                    &copy) == ATBUS_OK);
    fuzz_require(copy != rec && atbus_record_equal(copy, rec));
    return 0;
}

static size_t
fuzz_total(const atbus_registry *reg)
{
    return atbus_registry_count(reg, ATBUS_REGISTRY_NODES) +
           atbus_registry_count(reg, ATBUS_REGISTRY_GROUPS) +
           atbus_registry_count(reg, ATBUS_REGISTRY_ROUTES);
}

static void
fuzz_on_route_reject(const char *name, int err, const char *detail, void *arg)
{
    size_t *rejects = arg;
    fuzz_require(name != NULL && detail != NULL);
    fuzz_require(err == ATBUS_EROUTE_CYCLE);
    (*rejects)++;
}

/* fuzz_routes feeds the loaded route records into a route registry:
 * each is applied or refused for a cycle, and every refused one waits;
 * every applied one answers relation queries. */
static void
fuzz_routes(const atbus_registry *reg)
{
    atbus_route_registry *routes = NULL;
    atb_disc_route_feed *feed = NULL;
    size_t rejects = 0;
    fuzz_require(atbus_route_registry_new(&routes) == ATBUS_OK);
    fuzz_require(atb_disc_route_feed_new(&feed, reg, routes,
                                         fuzz_on_route_reject,
                                         &rejects) == ATBUS_OK);
    int rc = atb_disc_route_feed_load(feed);
    size_t pending = atb_disc_route_feed_pending(feed);
    fuzz_require(rc == (pending == 0 ? ATBUS_OK : ATBUS_EROUTE_CYCLE));
    fuzz_require(pending <= rejects);
    fuzz_require(rejects <= atbus_registry_count(reg, ATBUS_REGISTRY_ROUTES));
    atb_disc_route_feed_free(feed);
    atbus_route_registry_free(routes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = atb_alloc_live();
    const char *text = (const char *)data;
    struct fuzz_seen s;
    atbus_registry *reg = fuzz_registry(&s);
    atbus_load_result res;
    int rc = atbus_registry_load_yaml_string(reg, text, size, &res);
    fuzz_require(rc == ATBUS_OK || rc == ATBUS_ERECORD || rc == ATBUS_EPARSE);
    fuzz_require(res.first.code == rc);
    fuzz_require(s.changes == res.loaded);
    fuzz_require(fuzz_total(reg) == res.loaded);
    if (rc == ATBUS_OK) {
        fuzz_require(s.errors == 0 && res.skipped == 0);
    } else {
        fuzz_require(s.errors >= 1);
        fuzz_require(memcmp(&s.first, &res.first, sizeof(s.first)) == 0);
    }
    if (rc == ATBUS_EPARSE) {
        fuzz_require(res.loaded == 0 && s.errors == 1);
    }
    atbus_registry *other = NULL;
    fuzz_require(atbus_registry_new(&other) == ATBUS_OK);
    fuzz_require(atbus_registry_foreach(reg, ATBUS_REGISTRY_NODES, fuzz_stored,
                                        other) == ATBUS_OK);
    fuzz_require(atbus_registry_foreach(reg, ATBUS_REGISTRY_GROUPS, fuzz_stored,
                                        other) == ATBUS_OK);
    fuzz_require(atbus_registry_foreach(reg, ATBUS_REGISTRY_ROUTES, fuzz_stored,
                                        other) == ATBUS_OK);
    fuzz_require(fuzz_total(other) == res.loaded);
    atbus_registry_free(other);
    fuzz_routes(reg);

    /* The same text again: the same answer, and nothing changes. */
    size_t changes = s.changes;
    atbus_load_result res2;
    fuzz_require(atbus_registry_load_yaml_string(reg, text, size, &res2) == rc);
    fuzz_require(res2.loaded == res.loaded && res2.skipped == res.skipped);
    fuzz_require(s.changes == changes);
    atbus_registry_free(reg);

    /* A fresh registry with one allocation failing. */
    reg = fuzz_registry(&s);
    uint64_t h = XXH3_64bits(data, size);
    atb_alloc_fail_nth(1 + h % 256);
    int rc3 = atbus_registry_load_yaml_string(reg, text, size, &res2);
    int fired = atb_alloc_failed();
    atb_alloc_fail_nth(0);
    if (rc3 == ATBUS_ENOMEM) {
        fuzz_require(fired);
        fuzz_require(fuzz_total(reg) == 0 && s.changes == 0);
    } else {
        fuzz_require(rc3 == rc);
        fuzz_require(res2.loaded == res.loaded);
        fuzz_require(fuzz_total(reg) == res.loaded);
    }
    atbus_registry_free(reg);
    fuzz_require(atb_alloc_live() == live);
    return 0;
}
