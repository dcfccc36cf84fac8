/*
 * Records as owned plain data: init, fini, deep copy, equality and the
 * setters that keep every string on the library's allocator.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"

char *
atb_disc_strndup(const char *s, size_t n)
{
    char *copy = atb_malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

enum atbus_registry_table
atb_disc_table_of(const atbus_record *rec)
{
    switch (rec->type) {
    case ATBUS_RECORD_GROUP:
        return ATBUS_REGISTRY_GROUPS;
    case ATBUS_RECORD_ROUTE:
        return ATBUS_REGISTRY_ROUTES;
    default:
        return ATBUS_REGISTRY_NODES;
    }
}

const char *
atb_disc_table_name(enum atbus_registry_table table)
{
    switch (table) {
    case ATBUS_REGISTRY_NODES:
        return "nodes";
    case ATBUS_REGISTRY_GROUPS:
        return "groups";
    case ATBUS_REGISTRY_ROUTES:
        return "routes";
    default:
        return "?";
    }
}

const char *
atbus_record_type_name(enum atbus_record_type type)
{
    switch (type) {
    case ATBUS_RECORD_NODE:
        return "node";
    case ATBUS_RECORD_CLIENT:
        return "client";
    case ATBUS_RECORD_GROUP:
        return "group";
    case ATBUS_RECORD_ROUTE:
        return "route";
    default:
        return "?";
    }
}

/* ---- fini ---- */

static void
record_list_fini(atbus_string_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        atb_free(l->items[i]);
    }
    atb_free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void
record_map_fini(atbus_kv_list *m)
{
    for (size_t i = 0; i < m->count; i++) {
        atb_free(m->items[i].key);
        atb_free(m->items[i].value);
    }
    atb_free(m->items);
    m->items = NULL;
    m->count = 0;
}

static void
record_metadata_fini(atbus_metadata *md)
{
    atb_free(md->namespace_name);
    atb_free(md->api_version);
    atb_free(md->kind);
    atb_free(md->group);
    record_map_fini(&md->labels);
    record_map_fini(&md->annotations);
    memset(md, 0, sizeof(*md));
}

static void
record_match_fini(atbus_match *m)
{
    atb_free(m->host.hostname);
    m->host.hostname = NULL;
    record_metadata_fini(&m->metadata);
}

void
atbus_record_init(atbus_record *rec)
{
    if (rec != NULL) {
        memset(rec, 0, sizeof(*rec));
        rec->type = ATBUS_RECORD_NODE;
    }
}

void
atbus_record_fini(atbus_record *rec)
{
    if (rec == NULL) {
        return;
    }
    atb_free(rec->name);
    atb_free(rec->custom_data);
    atb_free(rec->hash_code);
    record_list_fini(&rec->tokens);
    atb_free(rec->host.hostname);
    record_metadata_fini(&rec->metadata);
    for (size_t i = 0; i < rec->gateways.count; i++) {
        record_list_fini(&rec->gateways.items[i].addresses);
        record_match_fini(&rec->gateways.items[i].match);
    }
    atb_free(rec->gateways.items);
    atb_free(rec->advertise_relay.name);
    record_metadata_fini(&rec->advertise_relay.metadata);
    record_list_fini(&rec->node_list);
    record_list_fini(&rec->upstreams);
    atbus_record_init(rec);
}

/* ---- copy ---- */

/* record_str_copy copies src into *dst (NULL stays NULL). */
static int
record_str_copy(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL) {
        return ATBUS_OK;
    }
    *dst = atb_strdup(src);
    return *dst != NULL ? ATBUS_OK : ATBUS_ENOMEM;
}

/* The copy helpers fill a zeroed destination and may leave it partly
 * filled on failure; the caller's fini releases what was copied. */

/* record_array_copy makes a zeroed array of count elements of size bytes
 * at *items (NULL when count is 0), sets *n once it exists, and copies
 * each element with fn. */
static int
record_array_copy(void **items, size_t *n, const void *src, size_t count,
                  size_t size, int (*fn)(void *dst, const void *src))
{
    *items = NULL;
    if (count == 0) {
        return ATBUS_OK;
    }
    char *array = atb_calloc(count, size);
    if (array == NULL) {
        return ATBUS_ENOMEM;
    }
    *items = array;
    *n = count;
    for (size_t i = 0; i < count; i++) {
        if (fn(array + i * size, (const char *)src + i * size) != ATBUS_OK) {
            return ATBUS_ENOMEM;
        }
    }
    return ATBUS_OK;
}

static int
record_str_elem(void *dst, const void *src)
{
    return record_str_copy(dst, *(char *const *)src);
}

static int
record_kv_elem(void *dst, const void *src)
{
    atbus_kv *d = dst;
    const atbus_kv *s = src;
    return record_str_copy(&d->key, s->key) == ATBUS_OK
               ? record_str_copy(&d->value, s->value)
               : ATBUS_ENOMEM;
}

static int
record_list_copy(atbus_string_list *dst, const atbus_string_list *src)
{
    void *items;
    int rc = record_array_copy(&items, &dst->count, src->items, src->count,
                               sizeof(*src->items), record_str_elem);
    dst->items = items;
    return rc;
}

static int
record_map_copy(atbus_kv_list *dst, const atbus_kv_list *src)
{
    void *items;
    int rc = record_array_copy(&items, &dst->count, src->items, src->count,
                               sizeof(*src->items), record_kv_elem);
    dst->items = items;
    return rc;
}

static int
record_metadata_copy(atbus_metadata *dst, const atbus_metadata *src)
{
    if (record_str_copy(&dst->namespace_name, src->namespace_name) !=
            ATBUS_OK ||
        record_str_copy(&dst->api_version, src->api_version) != ATBUS_OK ||
        record_str_copy(&dst->kind, src->kind) != ATBUS_OK ||
        record_str_copy(&dst->group, src->group) != ATBUS_OK ||
        record_map_copy(&dst->labels, &src->labels) != ATBUS_OK ||
        record_map_copy(&dst->annotations, &src->annotations) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    return ATBUS_OK;
}

static int
record_gateway_elem(void *dst, const void *src)
{
    atbus_gateway *d = dst;
    const atbus_gateway *s = src;
    d->priority = s->priority;
    d->match.host.pid = s->match.host.pid;
    if (record_list_copy(&d->addresses, &s->addresses) != ATBUS_OK ||
        record_str_copy(&d->match.host.hostname, s->match.host.hostname) !=
            ATBUS_OK ||
        record_metadata_copy(&d->match.metadata, &s->match.metadata) !=
            ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    return ATBUS_OK;
}

static int
record_gateways_copy(atbus_gateway_list *dst, const atbus_gateway_list *src)
{
    void *items;
    int rc = record_array_copy(&items, &dst->count, src->items, src->count,
                               sizeof(*src->items), record_gateway_elem);
    dst->items = items;
    return rc;
}

int
atbus_record_copy(atbus_record *dst, const atbus_record *src)
{
    if (dst == NULL) {
        return ATBUS_EINVAL;
    }
    atbus_record_init(dst);
    if (src == NULL) {
        return ATBUS_EINVAL;
    }
    dst->type = src->type;
    dst->version = src->version;
    dst->host.pid = src->host.pid;
    if (record_str_copy(&dst->name, src->name) != ATBUS_OK ||
        record_str_copy(&dst->custom_data, src->custom_data) != ATBUS_OK ||
        record_str_copy(&dst->hash_code, src->hash_code) != ATBUS_OK ||
        record_list_copy(&dst->tokens, &src->tokens) != ATBUS_OK ||
        record_str_copy(&dst->host.hostname, src->host.hostname) != ATBUS_OK ||
        record_metadata_copy(&dst->metadata, &src->metadata) != ATBUS_OK ||
        record_gateways_copy(&dst->gateways, &src->gateways) != ATBUS_OK ||
        record_str_copy(&dst->advertise_relay.name,
                        src->advertise_relay.name) != ATBUS_OK ||
        record_metadata_copy(&dst->advertise_relay.metadata,
                             &src->advertise_relay.metadata) != ATBUS_OK ||
        record_list_copy(&dst->node_list, &src->node_list) != ATBUS_OK ||
        record_list_copy(&dst->upstreams, &src->upstreams) != ATBUS_OK) {
        atbus_record_fini(dst);
        return ATBUS_ENOMEM;
    }
    return ATBUS_OK;
}

/* ---- equality ---- */

static int
record_str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static int
record_list_eq(const atbus_string_list *a, const atbus_string_list *b)
{
    if (a->count != b->count) {
        return 0;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (!record_str_eq(a->items[i], b->items[i])) {
            return 0;
        }
    }
    return 1;
}

static int
record_map_eq(const atbus_kv_list *a, const atbus_kv_list *b)
{
    if (a->count != b->count) {
        return 0;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (!record_str_eq(a->items[i].key, b->items[i].key) ||
            !record_str_eq(a->items[i].value, b->items[i].value)) {
            return 0;
        }
    }
    return 1;
}

static int
record_metadata_eq(const atbus_metadata *a, const atbus_metadata *b)
{
    return record_str_eq(a->namespace_name, b->namespace_name) &&
           record_str_eq(a->api_version, b->api_version) &&
           record_str_eq(a->kind, b->kind) &&
           record_str_eq(a->group, b->group) &&
           record_map_eq(&a->labels, &b->labels) &&
           record_map_eq(&a->annotations, &b->annotations);
}

static int
record_host_eq(const atbus_host *a, const atbus_host *b)
{
    return a->pid == b->pid && record_str_eq(a->hostname, b->hostname);
}

static int
record_gateways_eq(const atbus_gateway_list *a, const atbus_gateway_list *b)
{
    if (a->count != b->count) {
        return 0;
    }
    for (size_t i = 0; i < a->count; i++) {
        const atbus_gateway *x = &a->items[i];
        const atbus_gateway *y = &b->items[i];
        if (x->priority != y->priority ||
            !record_list_eq(&x->addresses, &y->addresses) ||
            !record_host_eq(&x->match.host, &y->match.host) ||
            !record_metadata_eq(&x->match.metadata, &y->match.metadata)) {
            return 0;
        }
    }
    return 1;
}

int
atbus_record_equal(const atbus_record *a, const atbus_record *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return a->type == b->type && a->version == b->version &&
           record_str_eq(a->name, b->name) &&
           record_str_eq(a->custom_data, b->custom_data) &&
           record_str_eq(a->hash_code, b->hash_code) &&
           record_list_eq(&a->tokens, &b->tokens) &&
           record_host_eq(&a->host, &b->host) &&
           record_metadata_eq(&a->metadata, &b->metadata) &&
           record_gateways_eq(&a->gateways, &b->gateways) &&
           record_str_eq(a->advertise_relay.name, b->advertise_relay.name) &&
           record_metadata_eq(&a->advertise_relay.metadata,
                              &b->advertise_relay.metadata) &&
           record_list_eq(&a->node_list, &b->node_list) &&
           record_list_eq(&a->upstreams, &b->upstreams);
}

/* ---- setters ---- */

int
atbus_record_set_string(char **field, const char *value)
{
    if (field == NULL) {
        return ATBUS_EINVAL;
    }
    char *copy = NULL;
    if (value != NULL) {
        copy = atb_strdup(value);
        if (copy == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    atb_free(*field);
    *field = copy;
    return ATBUS_OK;
}

/* record_grow makes room for one more element of size bytes in *items;
 * on failure *items is untouched. */
static int
record_grow(void **items, size_t count, size_t size)
{
    if (count >= SIZE_MAX / size - 1) {
        return ATBUS_ENOMEM;
    }
    void *p = atb_realloc(*items, (count + 1) * size);
    if (p == NULL) {
        return ATBUS_ENOMEM;
    }
    *items = p;
    return ATBUS_OK;
}

int
atbus_record_list_add(atbus_string_list *list, const char *value)
{
    if (list == NULL || value == NULL) {
        return ATBUS_EINVAL;
    }
    char *copy = atb_strdup(value);
    if (copy == NULL) {
        return ATBUS_ENOMEM;
    }
    void *items = list->items;
    if (record_grow(&items, list->count, sizeof(*list->items)) != ATBUS_OK) {
        atb_free(copy);
        return ATBUS_ENOMEM;
    }
    list->items = items;
    list->items[list->count++] = copy;
    return ATBUS_OK;
}

int
atbus_record_map_set(atbus_kv_list *map, const char *key, const char *value)
{
    if (map == NULL || key == NULL || value == NULL) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < map->count; i++) {
        if (map->items[i].key != NULL && strcmp(map->items[i].key, key) == 0) {
            return atbus_record_set_string(&map->items[i].value, value);
        }
    }
    char *k = atb_strdup(key);
    char *v = atb_strdup(value);
    void *items = map->items;
    if (k == NULL || v == NULL ||
        record_grow(&items, map->count, sizeof(*map->items)) != ATBUS_OK) {
        atb_free(k);
        atb_free(v);
        return ATBUS_ENOMEM;
    }
    map->items = items;
    map->items[map->count].key = k;
    map->items[map->count].value = v;
    map->count++;
    return ATBUS_OK;
}

int
atbus_record_add_gateway(atbus_record *rec, int32_t priority,
                         atbus_gateway **out)
{
    if (rec == NULL) {
        return ATBUS_EINVAL;
    }
    void *items = rec->gateways.items;
    if (record_grow(&items, rec->gateways.count,
                    sizeof(*rec->gateways.items)) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    rec->gateways.items = items;
    atbus_gateway *gw = &rec->gateways.items[rec->gateways.count++];
    memset(gw, 0, sizeof(*gw));
    gw->priority = priority;
    if (out != NULL) {
        *out = gw;
    }
    return ATBUS_OK;
}
