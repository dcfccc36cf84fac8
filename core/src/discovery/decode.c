/*
 * Document tree -> record. Types and caps are checked here, before any
 * allocation (counts of lists and maps, lengths of strings); the rules on
 * values are left to validate.c, so records built in C and records read
 * from text meet the same checks. Fields the decoder does not know are
 * skipped without being looked at, which keeps old readers working with
 * newer writers and keeps decoding bounded whatever the input holds.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"

/* Strings longer than this are refused before they are copied; the
 * largest field (custom_data, annotation values) fits. */
#define DECODE_STRING_MAX ATBUS_RECORD_ANNOTATIONS_BYTES

struct decode {
    atb_disc_path path;
    atb_disc_fault *fault;
};

static int decode_fail(struct decode *d, const atb_disc_node *n,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
decode_fail(struct decode *d, const atb_disc_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = atb_disc_fault_vset(d->fault, &d->path, n, fmt, ap);
    va_end(ap);
    return rc;
}

/* decode_string copies a scalar that reads as a string; null stays NULL.
 * max caps the length before anything is allocated. */
static int
decode_string(struct decode *d, const atb_disc_node *n, size_t max, char **out)
{
    if (n == NULL || n->kind == ATB_DISC_NULL) {
        return ATBUS_OK;
    }
    if (!atb_disc_doc_readable(n)) {
        return decode_fail(d, n, "must be a string");
    }
    if (n->len > max) {
        return decode_fail(d, n, "longer than %zu bytes", max);
    }
    if (memchr(n->text, '\0', n->len) != NULL) {
        return decode_fail(d, n, "holds a NUL byte");
    }
    *out = atb_disc_strndup(n->text, n->len);
    return *out != NULL ? ATBUS_OK : ATBUS_ENOMEM;
}

/* decode_lookup finds field in map and pushes it on the path; a repeated
 * key is an error (a reader could not know which one was meant). */
static int
decode_lookup(struct decode *d, const atb_disc_node *map, const char *field,
              const atb_disc_node **out)
{
    const atb_disc_item *dup = NULL;
    const atb_disc_item *it = atb_disc_doc_get(map, field, &dup);
    atb_disc_path_field(&d->path, field);
    *out = it != NULL ? it->value : NULL;
    if (dup != NULL) {
        return decode_fail(d, dup->key, "repeated key");
    }
    return ATBUS_OK;
}

static int
decode_field_string(struct decode *d, const atb_disc_node *map,
                    const char *field, size_t max, char **out)
{
    const atb_disc_node *n;
    int rc = decode_lookup(d, map, field, &n);
    if (rc == ATBUS_OK) {
        rc = decode_string(d, n, max, out);
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

/* decode_field_int reads an integer field in [min, max]; absent or null
 * leaves *out as it is. */
static int
decode_field_int(struct decode *d, const atb_disc_node *map, const char *field,
                 int64_t min, int64_t max, int64_t *out)
{
    const atb_disc_node *n;
    int rc = decode_lookup(d, map, field, &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (n != NULL && n->kind != ATB_DISC_NULL) {
        if (n->kind != ATB_DISC_INT) {
            return decode_fail(d, n, "must be an integer");
        }
        if (n->ival < min || n->ival > max) {
            return decode_fail(d, n, "must be %lld to %lld", (long long)min,
                               (long long)max);
        }
        *out = n->ival;
    }
    atb_disc_path_pop(&d->path);
    return ATBUS_OK;
}

/* decode_container looks up a field that must be a list (seq) or a
 * mapping, with at most max entries. *out is NULL when it is absent. */
static int
decode_container(struct decode *d, const atb_disc_node *map, const char *field,
                 enum atb_disc_kind kind, size_t max, const atb_disc_node **out)
{
    const atb_disc_node *n;
    int rc = decode_lookup(d, map, field, &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    *out = NULL;
    if (n == NULL || n->kind == ATB_DISC_NULL) {
        return ATBUS_OK;
    }
    if (n->kind != kind) {
        return decode_fail(d, n,
                           kind == ATB_DISC_SEQ ? "must be a list"
                                                : "must be a mapping");
    }
    if (n->count > max) {
        return decode_fail(d, n, "more than %zu entries", max);
    }
    *out = n;
    return ATBUS_OK;
}

/* decode_entries reads a list or mapping field into a new array of
 * elements of size bytes, one fn call per entry. The array and the number
 * of elements that may hold anything come back even on failure, so the
 * caller stores them and fini releases them. */
static int
decode_entries(struct decode *d, const atb_disc_node *map, const char *field,
               enum atb_disc_kind kind, size_t max, size_t size,
               int (*fn)(struct decode *d, const atb_disc_item *it, size_t i,
                         void *elem),
               void **items, size_t *count)
{
    const atb_disc_node *c;
    *items = NULL;
    *count = 0;
    int rc = decode_container(d, map, field, kind, max, &c);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (c != NULL && c->count > 0) {
        char *array = atb_calloc(c->count, size);
        if (array == NULL) {
            return ATBUS_ENOMEM;
        }
        *items = array;
        size_t i = 0;
        for (const atb_disc_item *it = c->first; it != NULL; it = it->next) {
            *count = i + 1;
            rc = fn(d, it, i, array + i * size);
            if (rc != ATBUS_OK) {
                return rc;
            }
            i++;
        }
    }
    atb_disc_path_pop(&d->path);
    return ATBUS_OK;
}

static int
decode_string_entry(struct decode *d, const atb_disc_item *it, size_t i,
                    void *elem)
{
    atb_disc_path_index(&d->path, i);
    if (it->value->kind == ATB_DISC_NULL) {
        return decode_fail(d, it->value, "must be a string");
    }
    int rc = decode_string(d, it->value, DECODE_STRING_MAX, elem);
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

static int
decode_strings(struct decode *d, const atb_disc_node *map, const char *field,
               size_t max, atbus_string_list *out)
{
    void *items;
    int rc =
        decode_entries(d, map, field, ATB_DISC_SEQ, max, sizeof(*out->items),
                       decode_string_entry, &items, &out->count);
    out->items = items;
    return rc;
}

/* Repeated keys are left to validation, which reports them by path. */
static int
decode_pair_entry(struct decode *d, const atb_disc_item *it, size_t i,
                  void *elem)
{
    atbus_kv *kv = elem;
    const atb_disc_node *k = it->key;
    int readable = atb_disc_doc_readable(k);
    atb_disc_path_key(&d->path, i, readable ? k->text : "",
                      readable ? k->len : 0);
    if (!readable) {
        return decode_fail(d, k, "keys must be strings");
    }
    if (it->value->kind == ATB_DISC_NULL) {
        return decode_fail(d, it->value, "value must be a string");
    }
    int rc = decode_string(d, k, DECODE_STRING_MAX, &kv->key);
    if (rc == ATBUS_OK) {
        rc = decode_string(d, it->value, DECODE_STRING_MAX, &kv->value);
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

/* decode_map reads a string-to-string mapping. */
static int
decode_map(struct decode *d, const atb_disc_node *map, const char *field,
           size_t max, atbus_kv_list *out)
{
    void *items;
    int rc =
        decode_entries(d, map, field, ATB_DISC_MAP, max, sizeof(*out->items),
                       decode_pair_entry, &items, &out->count);
    out->items = items;
    return rc;
}

/* decode_object looks up a field that must be a mapping if present. */
static int
decode_object(struct decode *d, const atb_disc_node *map, const char *field,
              const atb_disc_node **out)
{
    return decode_container(d, map, field, ATB_DISC_MAP, SIZE_MAX, out);
}

static int
decode_metadata(struct decode *d, const atb_disc_node *map, const char *field,
                atbus_metadata *md)
{
    const atb_disc_node *m;
    int rc = decode_object(d, map, field, &m);
    if (rc != ATBUS_OK || m == NULL) {
        if (rc == ATBUS_OK) {
            atb_disc_path_pop(&d->path);
        }
        return rc;
    }
    rc = decode_field_string(d, m, "namespace_name", DECODE_STRING_MAX,
                             &md->namespace_name);
    if (rc == ATBUS_OK) {
        rc = decode_field_string(d, m, "api_version", DECODE_STRING_MAX,
                                 &md->api_version);
    }
    if (rc == ATBUS_OK) {
        rc = decode_field_string(d, m, "kind", DECODE_STRING_MAX, &md->kind);
    }
    if (rc == ATBUS_OK) {
        rc = decode_field_string(d, m, "group", DECODE_STRING_MAX, &md->group);
    }
    if (rc == ATBUS_OK) {
        rc = decode_map(d, m, "labels", ATBUS_RECORD_LABELS_MAX, &md->labels);
    }
    if (rc == ATBUS_OK) {
        rc = decode_map(d, m, "annotations", ATBUS_RECORD_ANNOTATIONS_MAX,
                        &md->annotations);
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

static int
decode_host(struct decode *d, const atb_disc_node *map, atbus_host *h)
{
    const atb_disc_node *m;
    int rc = decode_object(d, map, "host", &m);
    if (rc == ATBUS_OK && m != NULL) {
        rc = decode_field_string(d, m, "hostname", DECODE_STRING_MAX,
                                 &h->hostname);
        if (rc == ATBUS_OK) {
            rc =
                decode_field_int(d, m, "pid", 0, ATBUS_RECORD_PID_MAX, &h->pid);
        }
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

static int
decode_gateway(struct decode *d, const atb_disc_node *n, atbus_gateway *gw)
{
    if (n->kind != ATB_DISC_MAP) {
        return decode_fail(d, n, "a gateway must be a mapping");
    }
    int64_t priority = 0;
    int rc = decode_field_int(d, n, "priority", 0, ATBUS_RECORD_PRIORITY_MAX,
                              &priority);
    gw->priority = (int32_t)priority;
    if (rc == ATBUS_OK) {
        rc = decode_strings(d, n, "addresses", ATBUS_RECORD_ADDRESSES_MAX,
                            &gw->addresses);
    }
    const atb_disc_node *match = NULL;
    if (rc == ATBUS_OK) {
        rc = decode_object(d, n, "match", &match);
    }
    if (rc == ATBUS_OK && match != NULL) {
        rc = decode_host(d, match, &gw->match.host);
        if (rc == ATBUS_OK) {
            rc = decode_metadata(d, match, "metadata", &gw->match.metadata);
        }
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

static int
decode_gateway_entry(struct decode *d, const atb_disc_item *it, size_t i,
                     void *elem)
{
    atb_disc_path_index(&d->path, i);
    int rc = decode_gateway(d, it->value, elem);
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

static int
decode_gateways(struct decode *d, const atb_disc_node *map,
                atbus_gateway_list *out)
{
    void *items;
    int rc = decode_entries(d, map, "gateways", ATB_DISC_SEQ,
                            ATBUS_RECORD_GATEWAYS_MAX, sizeof(*out->items),
                            decode_gateway_entry, &items, &out->count);
    out->items = items;
    return rc;
}

static int
decode_relay(struct decode *d, const atb_disc_node *map,
             atbus_relay_selector *r)
{
    const atb_disc_node *m;
    int rc = decode_object(d, map, "advertise_relay", &m);
    if (rc == ATBUS_OK && m != NULL) {
        rc = decode_field_string(d, m, "name", DECODE_STRING_MAX, &r->name);
        if (rc == ATBUS_OK) {
            rc = decode_metadata(d, m, "metadata", &r->metadata);
        }
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&d->path);
    }
    return rc;
}

/* decode_type reads the type; a record that does not give it takes the
 * one its table implies, and one that belongs in another table is
 * refused (a group under nodes: would be stored where no reader looks). */
static int
decode_type(struct decode *d, const atb_disc_node *map,
            enum atbus_registry_table table, atbus_record *rec)
{
    static const enum atbus_record_type types[] = {
        ATBUS_RECORD_NODE,
        ATBUS_RECORD_CLIENT,
        ATBUS_RECORD_GROUP,
        ATBUS_RECORD_ROUTE,
    };
    const atb_disc_node *n;
    int rc = decode_lookup(d, map, "type", &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (n == NULL || n->kind == ATB_DISC_NULL) {
        rec->type = table == ATBUS_REGISTRY_GROUPS   ? ATBUS_RECORD_GROUP
                    : table == ATBUS_REGISTRY_ROUTES ? ATBUS_RECORD_ROUTE
                                                     : ATBUS_RECORD_NODE;
        atb_disc_path_pop(&d->path);
        return ATBUS_OK;
    }
    size_t i = 0;
    while (i < sizeof(types) / sizeof(types[0]) &&
           !atb_disc_doc_text_is(n, atbus_record_type_name(types[i]))) {
        i++;
    }
    if (i == sizeof(types) / sizeof(types[0])) {
        return decode_fail(d, n, "type must be node, client, group or route");
    }
    rec->type = types[i];
    if (table != 0 && atb_disc_table_of(rec) != table) {
        return decode_fail(d, n, "a %s record does not belong under %s",
                           atbus_record_type_name(rec->type),
                           atb_disc_table_name(table));
    }
    atb_disc_path_pop(&d->path);
    return ATBUS_OK;
}

static int
decode_record(struct decode *d, const atb_disc_node *map,
              enum atbus_registry_table table, atbus_record *rec)
{
    int rc = decode_field_string(d, map, "name", DECODE_STRING_MAX, &rec->name);
    if (rc == ATBUS_OK) {
        rc = decode_type(d, map, table, rec);
    }
    if (rc == ATBUS_OK) {
        rc = decode_field_int(d, map, "version", 0, INT64_MAX, &rec->version);
    }
    if (rc == ATBUS_OK) {
        rc = decode_field_string(d, map, "hash_code", DECODE_STRING_MAX,
                                 &rec->hash_code);
    }
    if (rc == ATBUS_OK) {
        rc = decode_field_string(d, map, "custom_data", DECODE_STRING_MAX,
                                 &rec->custom_data);
    }
    if (rc == ATBUS_OK) {
        rc = decode_strings(d, map, "tokens", ATBUS_RECORD_TOKENS_MAX,
                            &rec->tokens);
    }
    if (rc == ATBUS_OK) {
        rc = decode_host(d, map, &rec->host);
    }
    if (rc == ATBUS_OK) {
        rc = decode_metadata(d, map, "metadata", &rec->metadata);
    }
    if (rc == ATBUS_OK) {
        rc = decode_gateways(d, map, &rec->gateways);
    }
    if (rc == ATBUS_OK) {
        rc = decode_relay(d, map, &rec->advertise_relay);
    }
    if (rc == ATBUS_OK) {
        rc = decode_strings(d, map, "node_list", ATBUS_RECORD_NODE_LIST_MAX,
                            &rec->node_list);
    }
    if (rc == ATBUS_OK) {
        rc = decode_strings(d, map, "upstreams", ATBUS_RECORD_UPSTREAMS_MAX,
                            &rec->upstreams);
    }
    return rc;
}

int
atb_disc_decode(const atb_disc_node *node, enum atbus_registry_table table,
                atbus_record *rec, atb_disc_fault *f)
{
    struct decode d;
    memset(&d, 0, sizeof(d));
    d.fault = f;
    atbus_record_init(rec);
    if (node == NULL || node->kind != ATB_DISC_MAP) {
        return decode_fail(&d, node, "a record must be a mapping (object)");
    }
    int rc = decode_record(&d, node, table, rec);
    if (rc != ATBUS_OK) {
        atbus_record_fini(rec);
    }
    return rc;
}
