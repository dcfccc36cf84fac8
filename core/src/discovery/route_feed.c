/*
 * The route feed (route_feed.h): route records -> route registry, with
 * refused records kept pending and retried after each change that went
 * through.
 */
#include "discovery/route_feed.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"
#include "discovery/nameset.h"
#include "route/registry.h"

/* The two kinds of route registry a feed can fill: the public handle and
 * the internal registry (tools that also need the next hop). */
typedef struct feed_ops {
    int (*set_upstreams)(void *routes, const char *name,
                         const char *const *upstreams, size_t count,
                         atbus_route_error *err);
    int (*remove)(void *routes, const char *name);
} feed_ops;

static int
feed_public_set(void *routes, const char *name, const char *const *upstreams,
                size_t count, atbus_route_error *err)
{
    return atbus_route_registry_set_upstreams(routes, name, upstreams, count,
                                              err);
}

static int
feed_public_remove(void *routes, const char *name)
{
    return atbus_route_registry_remove(routes, name);
}

static int
feed_internal_set(void *routes, const char *name, const char *const *upstreams,
                  size_t count, atbus_route_error *err)
{
    return atb_route_set_upstreams(routes, name, upstreams, count, err);
}

static int
feed_internal_remove(void *routes, const char *name)
{
    return atb_route_remove(routes, name);
}

static const feed_ops feed_public = {feed_public_set, feed_public_remove};
static const feed_ops feed_internal = {feed_internal_set, feed_internal_remove};

struct atb_disc_route_feed {
    const atbus_registry *reg;
    const feed_ops *ops;
    void *routes;
    atb_disc_route_reject_cb on_reject;
    void *arg;
    atb_disc_nameset pending; /* route records refused so far */
};

static int
feed_new(atb_disc_route_feed **out, const atbus_registry *reg,
         const feed_ops *ops, void *routes, atb_disc_route_reject_cb on_reject,
         void *arg)
{
    if (out == NULL || reg == NULL || routes == NULL) {
        return ATBUS_EINVAL;
    }
    atb_disc_route_feed *f = atb_calloc(1, sizeof(*f));
    if (f == NULL) {
        return ATBUS_ENOMEM;
    }
    f->reg = reg;
    f->ops = ops;
    f->routes = routes;
    f->on_reject = on_reject;
    f->arg = arg;
    atb_disc_nameset_init(&f->pending);
    *out = f;
    return ATBUS_OK;
}

int
atb_disc_route_feed_new(atb_disc_route_feed **out, const atbus_registry *reg,
                        atbus_route_registry *routes,
                        atb_disc_route_reject_cb on_reject, void *arg)
{
    return feed_new(out, reg, &feed_public, routes, on_reject, arg);
}

int
atb_disc_route_feed_new_internal(atb_disc_route_feed **out,
                                 const atbus_registry *reg,
                                 atb_route_registry *routes,
                                 atb_disc_route_reject_cb on_reject, void *arg)
{
    return feed_new(out, reg, &feed_internal, routes, on_reject, arg);
}

void
atb_disc_route_feed_free(atb_disc_route_feed *f)
{
    if (f != NULL) {
        atb_disc_nameset_fini(&f->pending);
        atb_free(f);
    }
}

static int
feed_set(atb_disc_route_feed *f, const atbus_record *rec,
         atbus_route_error *err)
{
    return f->ops->set_upstreams(f->routes, rec->name,
                                 (const char *const *)rec->upstreams.items,
                                 rec->upstreams.count, err);
}

/* feed_retry_one tries a pending record again; 1 drops it from the set
 * (applied, or its record is gone). */
static int
feed_retry_one(atb_disc_name *e, void *arg)
{
    atb_disc_route_feed *f = arg;
    const atbus_record *rec = NULL;
    if (atbus_registry_get(f->reg, ATBUS_REGISTRY_ROUTES, e->name, &rec) !=
        ATBUS_OK) {
        return 1;
    }
    return feed_set(f, rec, NULL) == ATBUS_OK;
}

/* feed_retry tries pending records until a round applies none: an
 * applied record can unblock another, and each round shrinks the set or
 * ends the loop. */
static void
feed_retry(atb_disc_route_feed *f)
{
    while (f->pending.count > 0 &&
           atb_disc_nameset_sweep(&f->pending, feed_retry_one, f) > 0) {
    }
}

/* feed_put applies one record; a refusal is reported and kept. */
static int
feed_put(atb_disc_route_feed *f, const atbus_record *rec)
{
    atbus_route_error err;
    memset(&err, 0, sizeof(err));
    int rc = feed_set(f, rec, &err);
    if (rc == ATBUS_OK) {
        atb_disc_nameset_remove(&f->pending, rec->name);
        return rc;
    }
    /* Out of memory here loses the retry, not the report. */
    (void)atb_disc_nameset_put(&f->pending, rec->name, 0);
    if (f->on_reject != NULL) {
        f->on_reject(rec->name, rc, err.text, f->arg);
    }
    return rc;
}

void
atb_disc_route_feed_on_change(atbus_registry *reg,
                              enum atbus_registry_event event,
                              const atbus_record *rec, void *arg)
{
    (void)reg;
    atb_disc_route_feed *f = arg;
    if (f == NULL || rec == NULL || rec->type != ATBUS_RECORD_ROUTE) {
        return;
    }
    if (event == ATBUS_REGISTRY_PUT) {
        if (feed_put(f, rec) != ATBUS_OK) {
            return;
        }
    } else {
        atb_disc_nameset_remove(&f->pending, rec->name);
        /* ENOTFOUND: nothing of it was applied and nobody lists it. */
        if (f->ops->remove(f->routes, rec->name) != ATBUS_OK) {
            return;
        }
    }
    feed_retry(f);
}

static int
feed_load_one(const atbus_record *rec, void *arg)
{
    (void)feed_put(arg, rec);
    return 0;
}

int
atb_disc_route_feed_load(atb_disc_route_feed *f)
{
    if (f == NULL) {
        return ATBUS_EINVAL;
    }
    atbus_registry_foreach(f->reg, ATBUS_REGISTRY_ROUTES, feed_load_one, f);
    feed_retry(f);
    return f->pending.count == 0 ? ATBUS_OK : ATBUS_EROUTE_CYCLE;
}

size_t
atb_disc_route_feed_pending(const atb_disc_route_feed *f)
{
    return f != NULL ? f->pending.count : 0;
}

int
atb_disc_route_feed_is_pending(const atb_disc_route_feed *f, const char *name)
{
    return f != NULL && name != NULL &&
           atb_disc_nameset_get(&f->pending, name) != NULL;
}

static const char *
feed_map_get(const atbus_kv_list *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            return m->items[i].value;
        }
    }
    return NULL;
}

const char *
atb_disc_record_attr(const void *record, const char *key, void *arg)
{
    (void)arg;
    const atbus_record *rec = record;
    const atbus_metadata *md = &rec->metadata;
    static const char labels[] = "labels.";
    static const char annotations[] = "annotations.";
    if (strncmp(key, labels, sizeof(labels) - 1) == 0) {
        return feed_map_get(&md->labels, key + sizeof(labels) - 1);
    }
    if (strncmp(key, annotations, sizeof(annotations) - 1) == 0) {
        return feed_map_get(&md->annotations, key + sizeof(annotations) - 1);
    }
    const struct {
        const char *key;
        const char *value;
    } fields[] = {
        {"name", rec->name},
        {"type", atbus_record_type_name(rec->type)},
        {"host.hostname", rec->host.hostname},
        {"metadata.namespace_name", md->namespace_name},
        {"metadata.api_version", md->api_version},
        {"metadata.kind", md->kind},
        {"metadata.group", md->group},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(key, fields[i].key) == 0) {
            return fields[i].value;
        }
    }
    return NULL;
}
