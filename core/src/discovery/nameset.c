/*
 * The string set of nameset.h: chained buckets, doubled when the load
 * passes one entry per bucket.
 */
#include "discovery/nameset.h"

#include <atbus/error.h>

#include <string.h>

#include <xxhash.h>

#include "common/alloc.h"

void
atb_disc_nameset_init(atb_disc_nameset *s)
{
    memset(s, 0, sizeof(*s));
}

void
atb_disc_nameset_fini(atb_disc_nameset *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        while (s->buckets[i] != NULL) {
            atb_disc_name *e = s->buckets[i];
            s->buckets[i] = e->next;
            atb_free(e);
        }
    }
    atb_free(s->buckets);
    memset(s, 0, sizeof(*s));
}

static uint64_t
nameset_hash(const char *name)
{
    return XXH3_64bits(name, strlen(name));
}

atb_disc_name *
atb_disc_nameset_get(const atb_disc_nameset *s, const char *name)
{
    if (s->nbuckets == 0) {
        return NULL;
    }
    uint64_t h = nameset_hash(name);
    for (atb_disc_name *e = s->buckets[h & (s->nbuckets - 1)]; e != NULL;
         e = e->next) {
        if (e->hash == h && strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* nameset_grow doubles the table; failing leaves it as it was, which is
 * still correct, only slower. */
static void
nameset_grow(atb_disc_nameset *s)
{
    size_t n = s->nbuckets != 0 ? s->nbuckets * 2 : 16;
    atb_disc_name **b = atb_calloc(n, sizeof(*b));
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        while (s->buckets[i] != NULL) {
            atb_disc_name *e = s->buckets[i];
            s->buckets[i] = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    atb_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

int
atb_disc_nameset_put(atb_disc_nameset *s, const char *name, int value)
{
    atb_disc_name *e = atb_disc_nameset_get(s, name);
    if (e != NULL) {
        e->value = value;
        return ATBUS_OK;
    }
    if (s->count >= s->nbuckets) {
        nameset_grow(s);
        if (s->nbuckets == 0) {
            return ATBUS_ENOMEM;
        }
    }
    size_t len = strlen(name);
    e = atb_malloc(sizeof(*e) + len + 1);
    if (e == NULL) {
        return ATBUS_ENOMEM;
    }
    memcpy(e->name, name, len + 1);
    e->hash = nameset_hash(name);
    e->value = value;
    atb_disc_name **b = &s->buckets[e->hash & (s->nbuckets - 1)];
    e->next = *b;
    *b = e;
    s->count++;
    return ATBUS_OK;
}

int
atb_disc_nameset_remove(atb_disc_nameset *s, const char *name)
{
    atb_disc_name *e = atb_disc_nameset_get(s, name);
    if (e == NULL) {
        return 0;
    }
    atb_disc_name **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e) {
        pp = &(*pp)->next;
    }
    *pp = e->next;
    atb_free(e);
    s->count--;
    return 1;
}

size_t
atb_disc_nameset_sweep(atb_disc_nameset *s,
                       int (*fn)(atb_disc_name *e, void *arg), void *arg)
{
    size_t removed = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        atb_disc_name **pp = &s->buckets[i];
        while (*pp != NULL) {
            atb_disc_name *e = *pp;
            if (fn(e, arg)) {
                *pp = e->next;
                atb_free(e);
                s->count--;
                removed++;
            } else {
                pp = &e->next;
            }
        }
    }
    return removed;
}
