/*
 * The embedded registry: node, group and route records by name, the
 * discovery a mesh uses when there is no external service.
 *
 * Each table is a chained hash index over entries plus a dense array of
 * their records for iteration and relay scans; removal moves the last
 * record into the hole. A record is the first member of its entry, so a
 * record pointer converts back to its entry.
 *
 * Every change allocates what it needs before touching the table, so
 * ATBUS_ENOMEM leaves the registry as it was. Callbacks run with the
 * registry marked busy; changes attempted from inside them are refused.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "common/alloc.h"

typedef struct reg_entry reg_entry;

struct reg_entry {
    atbus_record rec; /* first: a record pointer is an entry pointer */
    uint64_t hash;
    reg_entry *next; /* bucket chain */
    size_t pos;      /* index in the table's dense array */
};

typedef struct reg_table {
    reg_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    atbus_record **all;
    size_t count;
    size_t cap;
} reg_table;

/* One table per enum atbus_registry_table, at index table - 1. */
#define REG_TABLES 3

struct atbus_registry {
    reg_table tables[REG_TABLES];
    atbus_registry_callbacks cbs;
    void *arg;
    int busy;
};

static reg_table *
reg_table_get(const atbus_registry *reg, enum atbus_registry_table table)
{
    if (reg == NULL) {
        return NULL;
    }
    /* Casting const away only to share the lookup; readers never write. */
    atbus_registry *r = (atbus_registry *)(uintptr_t)reg;
    switch (table) {
    case ATBUS_REGISTRY_NODES:
    case ATBUS_REGISTRY_GROUPS:
    case ATBUS_REGISTRY_ROUTES:
        return &r->tables[table - 1];
    default:
        return NULL;
    }
}

/* reg_table_for returns the table a valid record belongs in. */
static reg_table *
reg_table_for(atbus_registry *reg, const atbus_record *rec)
{
    return &reg->tables[atb_disc_table_of(rec) - 1];
}

static reg_entry *
reg_entry_of(const atbus_record *rec)
{
    return (reg_entry *)(uintptr_t)rec;
}

static uint64_t
reg_hash(const char *name)
{
    return XXH3_64bits(name, strlen(name));
}

static reg_entry *
reg_find(const reg_table *t, const char *name, uint64_t hash)
{
    if (t->nbuckets == 0) {
        return NULL;
    }
    for (reg_entry *e = t->buckets[hash & (t->nbuckets - 1)]; e != NULL;
         e = e->next) {
        if (e->hash == hash && strcmp(e->rec.name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* New arrays for a table that is about to grow, allocated before either
 * table changes so that a failure leaves both as they were. */
struct reg_growth {
    atbus_record **all; /* NULL: the current array has room */
    size_t cap;
    reg_entry **buckets; /* NULL: enough buckets */
    size_t nbuckets;
};

static size_t
reg_round_up(size_t have, size_t need)
{
    size_t n = have != 0 ? have : 16;
    while (n < need) {
        n *= 2;
    }
    return n;
}

/* reg_grow_alloc allocates what t needs to take extra more entries. */
static int
reg_grow_alloc(const reg_table *t, size_t extra, struct reg_growth *g)
{
    memset(g, 0, sizeof(*g));
    if (extra > SIZE_MAX / 4 - t->count) {
        return ATBUS_ENOMEM;
    }
    size_t need = t->count + extra;
    if (need > t->cap) {
        g->cap = reg_round_up(t->cap, need);
        g->all = atb_calloc(g->cap, sizeof(*g->all));
        if (g->all == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    if (need > t->nbuckets) {
        g->nbuckets = reg_round_up(t->nbuckets, need);
        g->buckets = atb_calloc(g->nbuckets, sizeof(*g->buckets));
        if (g->buckets == NULL) {
            atb_free(g->all);
            g->all = NULL;
            return ATBUS_ENOMEM;
        }
    }
    return ATBUS_OK;
}

static void
reg_grow_abort(struct reg_growth *g)
{
    atb_free(g->all);
    atb_free(g->buckets);
    memset(g, 0, sizeof(*g));
}

/* reg_grow_commit installs the new arrays; nothing can fail here. */
static void
reg_grow_commit(reg_table *t, struct reg_growth *g)
{
    if (g->all != NULL) {
        if (t->count > 0) {
            memcpy(g->all, t->all, t->count * sizeof(*g->all));
        }
        atb_free(t->all);
        t->all = g->all;
        t->cap = g->cap;
    }
    if (g->buckets != NULL) {
        for (size_t i = 0; i < t->count; i++) {
            reg_entry *e = reg_entry_of(t->all[i]);
            size_t b = e->hash & (g->nbuckets - 1);
            e->next = g->buckets[b];
            g->buckets[b] = e;
        }
        atb_free(t->buckets);
        t->buckets = g->buckets;
        t->nbuckets = g->nbuckets;
    }
    memset(g, 0, sizeof(*g));
}

/* reg_insert adds e; room was reserved. */
static void
reg_insert(reg_table *t, reg_entry *e)
{
    size_t b = e->hash & (t->nbuckets - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    e->pos = t->count;
    t->all[t->count++] = &e->rec;
}

static void
reg_unlink(reg_table *t, reg_entry *e)
{
    reg_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp != e) {
        pp = &(*pp)->next;
    }
    *pp = e->next;
    atbus_record *last = t->all[--t->count];
    t->all[e->pos] = last;
    reg_entry_of(last)->pos = e->pos;
}

static void
reg_entry_free(reg_entry *e)
{
    if (e != NULL) {
        atbus_record_fini(&e->rec);
        atb_free(e);
    }
}

static void
reg_table_fini(reg_table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        reg_entry_free(reg_entry_of(t->all[i]));
    }
    atb_free(t->all);
    atb_free(t->buckets);
    memset(t, 0, sizeof(*t));
}

int
atbus_registry_new(atbus_registry **out)
{
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    *out = atb_calloc(1, sizeof(**out));
    return *out != NULL ? ATBUS_OK : ATBUS_ENOMEM;
}

void
atbus_registry_free(atbus_registry *reg)
{
    if (reg == NULL) {
        return;
    }
    for (size_t i = 0; i < REG_TABLES; i++) {
        reg_table_fini(&reg->tables[i]);
    }
    atb_free(reg);
}

int
atbus_registry_set_callbacks(atbus_registry *reg,
                             const atbus_registry_callbacks *cbs, void *arg)
{
    if (reg == NULL) {
        return ATBUS_EINVAL;
    }
    memset(&reg->cbs, 0, sizeof(reg->cbs));
    if (cbs != NULL) {
        reg->cbs = *cbs;
    }
    reg->arg = arg;
    return ATBUS_OK;
}

int
atb_disc_registry_enter(atbus_registry *reg)
{
    if (reg == NULL || reg->busy) {
        return ATBUS_EINVAL;
    }
    reg->busy = 1;
    return ATBUS_OK;
}

void
atb_disc_registry_leave(atbus_registry *reg)
{
    reg->busy = 0;
}

void
atb_disc_registry_report(atbus_registry *reg, const atbus_record_error *err)
{
    if (reg->cbs.on_load_error != NULL) {
        reg->cbs.on_load_error(reg, err, reg->arg);
    }
}

static void
reg_notify(atbus_registry *reg, enum atbus_registry_event ev,
           const atbus_record *rec)
{
    if (reg->cbs.on_change != NULL) {
        reg->cbs.on_change(reg, ev, rec, reg->arg);
    }
}

/* reg_store moves *rec into the table: into the existing entry when the
 * name is there (the old contents go after the callback), else into
 * fresh, which the caller allocated and the table reserved room for.
 * Returns 1 when fresh was used. */
static int
reg_store(atbus_registry *reg, atbus_record *rec, reg_entry *fresh)
{
    reg_table *t = reg_table_for(reg, rec);
    uint64_t hash = reg_hash(rec->name);
    reg_entry *e = reg_find(t, rec->name, hash);
    if (e != NULL) {
        if (atbus_record_equal(&e->rec, rec)) {
            atbus_record_fini(rec);
            return 0;
        }
        atbus_record old = e->rec;
        e->rec = *rec;
        atbus_record_init(rec);
        reg_notify(reg, ATBUS_REGISTRY_PUT, &e->rec);
        atbus_record_fini(&old);
        return 0;
    }
    fresh->rec = *rec;
    fresh->hash = hash;
    atbus_record_init(rec);
    reg_insert(t, fresh);
    reg_notify(reg, ATBUS_REGISTRY_PUT, &fresh->rec);
    return 1;
}

/* reg_stale reports (in err) a record older than the stored one. */
static int
reg_stale(const atbus_registry *reg, const atbus_record *rec,
          atbus_record_error *err)
{
    const atbus_record *old = NULL;
    if (atbus_registry_get(reg, atb_disc_table_of(rec), rec->name, &old) !=
            ATBUS_OK ||
        rec->version >= old->version) {
        return ATBUS_OK;
    }
    if (err != NULL) {
        atb_disc_error_set(err, ATBUS_EEXIST,
                           "version %lld is older than the stored version "
                           "%lld",
                           (long long)rec->version, (long long)old->version);
        strcpy(err->path, "version");
        atb_disc_error_name(err, rec->name, strlen(rec->name));
    }
    return ATBUS_EEXIST;
}

int
atbus_registry_put(atbus_registry *reg, const atbus_record *rec,
                   atbus_record_error *err)
{
    atb_disc_error_clear(err);
    if (rec == NULL || atb_disc_registry_enter(reg) != ATBUS_OK) {
        return atb_disc_error_set(err, ATBUS_EINVAL,
                                  "no registry or record, or called from a "
                                  "callback");
    }
    int rc = atbus_record_validate(rec, err);
    if (rc == ATBUS_OK) {
        rc = reg_stale(reg, rec, err);
    }
    if (rc == ATBUS_OK) {
        atbus_record copy;
        rc = atbus_record_copy(&copy, rec);
        if (rc == ATBUS_OK) {
            rc = atb_disc_registry_put_batch(reg, &copy, 1);
            atbus_record_fini(&copy);
        }
    }
    atb_disc_registry_leave(reg);
    return rc;
}

int
atb_disc_registry_put_batch(atbus_registry *reg, atbus_record *recs, size_t n)
{
    size_t fresh_count[REG_TABLES] = {0};
    for (size_t i = 0; i < n; i++) {
        const reg_table *t = reg_table_for(reg, &recs[i]);
        if (reg_find(t, recs[i].name, reg_hash(recs[i].name)) == NULL) {
            fresh_count[t - reg->tables]++;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < REG_TABLES; i++) {
        total += fresh_count[i];
    }
    reg_entry **fresh = NULL;
    if (total > 0) {
        fresh = atb_calloc(total, sizeof(*fresh));
        if (fresh == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    int rc = ATBUS_OK;
    for (size_t i = 0; i < total && rc == ATBUS_OK; i++) {
        fresh[i] = atb_calloc(1, sizeof(*fresh[i]));
        rc = fresh[i] != NULL ? ATBUS_OK : ATBUS_ENOMEM;
    }
    struct reg_growth grow[REG_TABLES];
    memset(grow, 0, sizeof(grow));
    for (size_t i = 0; i < REG_TABLES && rc == ATBUS_OK; i++) {
        rc = reg_grow_alloc(&reg->tables[i], fresh_count[i], &grow[i]);
    }
    for (size_t i = 0; i < REG_TABLES; i++) {
        if (rc == ATBUS_OK) {
            reg_grow_commit(&reg->tables[i], &grow[i]);
        } else {
            reg_grow_abort(&grow[i]);
        }
    }
    size_t used = 0;
    for (size_t i = 0; i < n && rc == ATBUS_OK; i++) {
        reg_entry *next = used < total ? fresh[used] : NULL;
        used += (size_t)reg_store(reg, &recs[i], next);
    }
    for (size_t i = used; i < total; i++) {
        atb_free(fresh[i]);
    }
    atb_free(fresh);
    return rc;
}

int
atb_disc_registry_mirror(atbus_registry *reg, atbus_record *rec)
{
    int rc = atb_disc_registry_enter(reg);
    if (rc == ATBUS_OK) {
        rc = atb_disc_registry_put_batch(reg, rec, 1);
        atb_disc_registry_leave(reg);
    }
    return rc;
}

int
atbus_registry_remove(atbus_registry *reg, enum atbus_registry_table table,
                      const char *name)
{
    reg_table *t = reg_table_get(reg, table);
    if (t == NULL || name == NULL || atb_disc_registry_enter(reg) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    reg_entry *e = reg_find(t, name, reg_hash(name));
    if (e == NULL) {
        atb_disc_registry_leave(reg);
        return ATBUS_ENOTFOUND;
    }
    reg_unlink(t, e);
    reg_notify(reg, ATBUS_REGISTRY_DELETE, &e->rec);
    reg_entry_free(e);
    atb_disc_registry_leave(reg);
    return ATBUS_OK;
}

int
atbus_registry_get(const atbus_registry *reg, enum atbus_registry_table table,
                   const char *name, const atbus_record **out)
{
    const reg_table *t = reg_table_get(reg, table);
    if (t == NULL || name == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    reg_entry *e = reg_find(t, name, reg_hash(name));
    *out = e != NULL ? &e->rec : NULL;
    return e != NULL ? ATBUS_OK : ATBUS_ENOTFOUND;
}

size_t
atbus_registry_count(const atbus_registry *reg, enum atbus_registry_table table)
{
    const reg_table *t = reg_table_get(reg, table);
    return t != NULL ? t->count : 0;
}

int
atbus_registry_foreach(const atbus_registry *reg,
                       enum atbus_registry_table table,
                       int (*fn)(const atbus_record *rec, void *arg), void *arg)
{
    const reg_table *t = reg_table_get(reg, table);
    if (t == NULL || fn == NULL) {
        return ATBUS_EINVAL;
    }
    /* Busy while iterating: a change from fn would move entries under
     * the loop. Nested reads keep it set until the outermost ends. */
    atbus_registry *r = (atbus_registry *)(uintptr_t)reg;
    int was_busy = r->busy;
    r->busy = 1;
    int rc = ATBUS_OK;
    for (size_t i = 0; i < t->count && rc == ATBUS_OK; i++) {
        rc = fn(t->all[i], arg);
    }
    r->busy = was_busy;
    return rc;
}

int
atbus_registry_select_relay(const atbus_registry *reg, const atbus_record *node,
                            const atbus_record **out)
{
    const reg_table *t = reg_table_get(reg, ATBUS_REGISTRY_NODES);
    if (t == NULL || node == NULL || out == NULL) {
        return ATBUS_EINVAL;
    }
    *out = NULL;
    size_t index = 0;
    int rc = atbus_select_relay(node, (const atbus_record *const *)t->all,
                                t->count, &index);
    if (rc == ATBUS_OK) {
        *out = t->all[index];
    }
    return rc;
}
