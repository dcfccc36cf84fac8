/*
 * Records as JSON, the form they take in etcd. Decoding goes through the
 * document tree shared with YAML; encoding builds a jansson tree in the
 * field order of docs/discovery.md and leaves absent fields out, so
 * decode(encode(r)) equals r and encoding that again gives the same
 * bytes.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <jansson.h>
#include <string.h>

#include "common/alloc.h"

int
atbus_record_from_json(const char *text, size_t len, atbus_record *rec,
                       atbus_record_error *err)
{
    return atb_disc_record_from_json_in(text, len, 0, rec, err);
}

int
atb_disc_record_from_json_in(const char *text, size_t len,
                             enum atbus_registry_table table, atbus_record *rec,
                             atbus_record_error *err)
{
    atb_disc_error_clear(err);
    if (rec == NULL) {
        return atb_disc_error_set(err, ATBUS_EINVAL, "no record");
    }
    atbus_record_init(rec);
    if (text == NULL) {
        return atb_disc_error_set(err, ATBUS_EINVAL, "no text");
    }
    if (len > ATBUS_RECORD_JSON_MAX) {
        return atb_disc_error_set(err, ATBUS_EPARSE,
                                  "record is larger than %zu bytes",
                                  ATBUS_RECORD_JSON_MAX);
    }
    atb_disc_doc doc;
    atb_disc_doc_init(&doc);
    int rc = atb_disc_doc_from_json(&doc, text, len, err);
    if (rc == ATBUS_OK) {
        atb_disc_fault f;
        rc = atb_disc_decode(doc.root, table, rec, &f);
        if (rc == ATBUS_OK) {
            rc = atb_disc_check(rec, &f);
        }
        if (rc == ATBUS_ERECORD) {
            atb_disc_error_from_fault(err, &f, NULL);
            if (rec->name != NULL) {
                atb_disc_error_name(err, rec->name, strlen(rec->name));
            }
        }
        if (rc != ATBUS_OK) {
            atbus_record_fini(rec);
        }
    }
    if (rc == ATBUS_ENOMEM) {
        atb_disc_error_set(err, rc, "out of memory");
    }
    atb_disc_doc_fini(&doc);
    return rc;
}

/* ---- encoding ---- */

/* Every json_object_set_new below steals its value even when it fails,
 * so a failed build only has to release the object being built. */

static int
enc_set(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0
               ? ATBUS_OK
               : ATBUS_ENOMEM;
}

static int
enc_string(json_t *obj, const char *key, const char *value)
{
    return value == NULL
               ? ATBUS_OK
               : enc_set(obj, key, json_stringn(value, strlen(value)));
}

static json_t *
enc_list(const atbus_string_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->count; i++) {
        if (json_array_append_new(a, json_string(l->items[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static int
enc_strings(json_t *obj, const char *key, const atbus_string_list *l)
{
    return l->count == 0 ? ATBUS_OK : enc_set(obj, key, enc_list(l));
}

static int
enc_map(json_t *obj, const char *key, const atbus_kv_list *m)
{
    if (m->count == 0) {
        return ATBUS_OK;
    }
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < m->count; i++) {
        if (enc_string(o, m->items[i].key, m->items[i].value) != ATBUS_OK) {
            json_decref(o);
            o = NULL;
        }
    }
    return enc_set(obj, key, o);
}

/* enc_sub adds obj[key] = sub when sub has members, and drops it when it
 * is empty, so absent structures stay absent. */
static int
enc_sub(json_t *obj, const char *key, json_t *sub, int rc)
{
    if (sub == NULL || rc != ATBUS_OK) {
        json_decref(sub);
        return ATBUS_ENOMEM;
    }
    if (json_object_size(sub) == 0) {
        json_decref(sub);
        return ATBUS_OK;
    }
    return enc_set(obj, key, sub);
}

static int
enc_host(json_t *obj, const atbus_host *h)
{
    json_t *o = json_object();
    int rc = o != NULL ? enc_string(o, "hostname", h->hostname) : ATBUS_ENOMEM;
    if (rc == ATBUS_OK && h->pid != 0) {
        rc = enc_set(o, "pid", json_integer((json_int_t)h->pid));
    }
    return enc_sub(obj, "host", o, rc);
}

static int
enc_metadata(json_t *obj, const char *key, const atbus_metadata *md)
{
    json_t *o = json_object();
    int rc = o != NULL ? ATBUS_OK : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "namespace_name", md->namespace_name);
    }
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "api_version", md->api_version);
    }
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "kind", md->kind);
    }
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "group", md->group);
    }
    if (rc == ATBUS_OK) {
        rc = enc_map(o, "labels", &md->labels);
    }
    if (rc == ATBUS_OK) {
        rc = enc_map(o, "annotations", &md->annotations);
    }
    return enc_sub(obj, key, o, rc);
}

static json_t *
enc_gateway(const atbus_gateway *gw)
{
    json_t *o = json_object();
    json_t *match = json_object();
    int rc = o != NULL && match != NULL ? ATBUS_OK : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        rc = enc_set(o, "priority", json_integer(gw->priority));
    }
    if (rc == ATBUS_OK) {
        rc = enc_strings(o, "addresses", &gw->addresses);
    }
    if (rc == ATBUS_OK) {
        rc = enc_host(match, &gw->match.host);
    }
    if (rc == ATBUS_OK) {
        rc = enc_metadata(match, "metadata", &gw->match.metadata);
    }
    if (o != NULL) {
        rc = enc_sub(o, "match", match, rc);
    } else {
        json_decref(match);
    }
    if (rc != ATBUS_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int
enc_gateways(json_t *obj, const atbus_gateway_list *gws)
{
    if (gws->count == 0) {
        return ATBUS_OK;
    }
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < gws->count; i++) {
        if (json_array_append_new(a, enc_gateway(&gws->items[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return enc_set(obj, "gateways", a);
}

static int
enc_relay(json_t *obj, const atbus_relay_selector *r)
{
    json_t *o = json_object();
    int rc = o != NULL ? enc_string(o, "name", r->name) : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        rc = enc_metadata(o, "metadata", &r->metadata);
    }
    return enc_sub(obj, "advertise_relay", o, rc);
}

static int
enc_record(json_t *o, const atbus_record *rec)
{
    int rc = enc_string(o, "name", rec->name);
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "type", atbus_record_type_name(rec->type));
    }
    if (rc == ATBUS_OK) {
        rc = enc_set(o, "version", json_integer((json_int_t)rec->version));
    }
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "hash_code", rec->hash_code);
    }
    if (rc == ATBUS_OK) {
        rc = enc_string(o, "custom_data", rec->custom_data);
    }
    if (rc == ATBUS_OK) {
        rc = enc_strings(o, "tokens", &rec->tokens);
    }
    if (rc == ATBUS_OK) {
        rc = enc_host(o, &rec->host);
    }
    if (rc == ATBUS_OK) {
        rc = enc_metadata(o, "metadata", &rec->metadata);
    }
    if (rc == ATBUS_OK) {
        rc = enc_gateways(o, &rec->gateways);
    }
    if (rc == ATBUS_OK) {
        rc = enc_relay(o, &rec->advertise_relay);
    }
    if (rc == ATBUS_OK) {
        rc = enc_strings(o, "node_list", &rec->node_list);
    }
    if (rc == ATBUS_OK) {
        rc = enc_strings(o, "upstreams", &rec->upstreams);
    }
    return rc;
}

int
atbus_record_to_json(const atbus_record *rec, char **text)
{
    if (text == NULL) {
        return ATBUS_EINVAL;
    }
    *text = NULL;
    if (rec == NULL) {
        return ATBUS_EINVAL;
    }
    atb_disc_fault f;
    int rc = atb_disc_check(rec, &f);
    if (rc != ATBUS_OK) {
        return rc;
    }
    json_t *o = json_object();
    rc = o != NULL ? enc_record(o, rec) : ATBUS_ENOMEM;
    if (rc == ATBUS_OK) {
        /* Sized first so the text can live on the library's allocator. */
        size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT);
        char *buf = n != 0 ? atb_malloc(n + 1) : NULL;
        if (buf != NULL && json_dumpb(o, buf, n, JSON_COMPACT) == n) {
            buf[n] = '\0';
            *text = buf;
        } else {
            atb_free(buf);
            rc = ATBUS_ENOMEM;
        }
    }
    json_decref(o);
    return rc;
}

void
atbus_record_json_free(char *text)
{
    atb_free(text);
}
