/* Defensive readers for etcd gateway JSON (see etcd_json.h). */
#include "etcd/etcd_json.h"

#include <atbus/error.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "etcd/etcd_b64.h"

void
atb_etcd_detail_set(atb_etcd_detail *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof(d->text), fmt, ap);
    va_end(ap);
}

int
atb_etcd_json_parse(const char *p, size_t n, json_t **out, atb_etcd_detail *d)
{
    json_error_t je;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (json_error_code(&je) == json_error_out_of_memory) {
            atb_etcd_detail_set(d, "out of memory parsing JSON");
            return ATBUS_ENOMEM;
        }
        atb_etcd_detail_set(d, "not JSON: %s (line %d, column %d)", je.text,
                            je.line, je.column);
        return ATBUS_EPARSE;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        atb_etcd_detail_set(d, "JSON is not an object");
        return ATBUS_EPARSE;
    }
    *out = root;
    return ATBUS_OK;
}

/* json_strtoi64 parses a whole decimal string; 0 on success. */
static int
json_strtoi64(const char *s, int64_t *out)
{
    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9'))) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int
atb_etcd_json_i64(const json_t *obj, const char *field, int64_t *out,
                  atb_etcd_detail *d)
{
    const json_t *v = json_object_get(obj, field);
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return ATBUS_OK;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return ATBUS_OK;
    }
    if (json_is_string(v) && json_strtoi64(json_string_value(v), out) == 0) {
        return ATBUS_OK;
    }
    atb_etcd_detail_set(d, "field \"%s\": expected an int64 string", field);
    return ATBUS_EPARSE;
}

int
atb_etcd_json_bool(const json_t *obj, const char *field, int *out,
                   atb_etcd_detail *d)
{
    const json_t *v = json_object_get(obj, field);
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return ATBUS_OK;
    }
    if (!json_is_boolean(v)) {
        atb_etcd_detail_set(d, "field \"%s\": expected a boolean", field);
        return ATBUS_EPARSE;
    }
    *out = json_is_true(v);
    return ATBUS_OK;
}

int
atb_etcd_json_object(const json_t *obj, const char *field, const json_t **out,
                     atb_etcd_detail *d)
{
    const json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return ATBUS_OK;
    }
    if (!json_is_object(v)) {
        atb_etcd_detail_set(d, "field \"%s\": expected an object", field);
        return ATBUS_EPARSE;
    }
    *out = v;
    return ATBUS_OK;
}

int
atb_etcd_json_revision(const json_t *obj, int64_t *rev, atb_etcd_detail *d)
{
    const json_t *hdr = NULL;
    *rev = 0;
    int rc = atb_etcd_json_object(obj, "header", &hdr, d);
    if (rc == ATBUS_OK && hdr != NULL) {
        rc = atb_etcd_json_i64(hdr, "revision", rev, d);
        if (rc != ATBUS_OK) {
            atb_etcd_detail_set(d, "field \"header.revision\": expected an "
                                   "int64 string");
        }
    }
    return rc;
}

/* A key-value's base64 field: its text and length, or "" when absent. */
typedef struct json_b64 {
    const char *text;
    size_t len;
} json_b64;

static int
json_b64_get(const json_t *kv, const char *field, json_b64 *out)
{
    const json_t *v = json_object_get(kv, field);
    out->text = "";
    out->len = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    out->text = json_string_value(v);
    out->len = json_string_length(v);
    return 0;
}

/* json_kv_at returns the key-value object of element i, or NULL. */
static const json_t *
json_kv_at(const json_t *arr, size_t i, const char *member)
{
    const json_t *el = json_array_get(arr, i);
    if (member != NULL && json_is_object(el)) {
        el = json_object_get(el, member);
    }
    return json_is_object(el) ? el : NULL;
}

/* json_kv_check validates element i and adds its decoded sizes to *need. */
static int
json_kv_check(const json_t *kv, const char *where, size_t *need,
              atb_etcd_detail *d)
{
    json_b64 key;
    json_b64 value;
    if (json_b64_get(kv, "key", &key) != 0 || key.len == 0) {
        atb_etcd_detail_set(d, "%s.key: missing or not a string", where);
        return ATBUS_EPARSE;
    }
    if (json_b64_get(kv, "value", &value) != 0) {
        atb_etcd_detail_set(d, "%s.value: not a string", where);
        return ATBUS_EPARSE;
    }
    static const char *const ints[] = {"create_revision", "mod_revision",
                                       "version", "lease"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        int64_t v;
        if (atb_etcd_json_i64(kv, ints[i], &v, d) != ATBUS_OK) {
            atb_etcd_detail_set(d, "%s.%s: expected an int64 string", where,
                                ints[i]);
            return ATBUS_EPARSE;
        }
    }
    *need += atb_etcd_b64_decoded_max(key.len) + 1 +
             atb_etcd_b64_decoded_max(value.len) + 1;
    return ATBUS_OK;
}

/* json_kv_decode fills kv from obj, writing strings at *pos. */
static int
json_kv_decode(const json_t *obj, const char *where, const char *strip,
               size_t strip_len, atb_etcd_kv *kv, char **pos,
               atb_etcd_detail *d)
{
    json_b64 key;
    json_b64 value;
    size_t len = 0;
    (void)json_b64_get(obj, "key", &key);
    (void)json_b64_get(obj, "value", &value);
    char *p = *pos;
    if (atb_etcd_b64_decode(p, key.text, key.len, &len) != ATBUS_OK) {
        atb_etcd_detail_set(d, "%s.key: invalid base64", where);
        return ATBUS_EPARSE;
    }
    p[len] = '\0';
    kv->key = p;
    kv->key_len = len;
    if (strip_len > 0 && len >= strip_len && memcmp(p, strip, strip_len) == 0) {
        kv->key += strip_len;
        kv->key_len -= strip_len;
    }
    p += len + 1;
    if (atb_etcd_b64_decode(p, value.text, value.len, &len) != ATBUS_OK) {
        atb_etcd_detail_set(d, "%s.value: invalid base64", where);
        return ATBUS_EPARSE;
    }
    p[len] = '\0';
    kv->value = p;
    kv->value_len = len;
    *pos = p + len + 1;
    /* Checked by json_kv_check already. */
    (void)atb_etcd_json_i64(obj, "create_revision", &kv->create_revision, d);
    (void)atb_etcd_json_i64(obj, "mod_revision", &kv->mod_revision, d);
    (void)atb_etcd_json_i64(obj, "version", &kv->version, d);
    (void)atb_etcd_json_i64(obj, "lease", &kv->lease, d);
    return ATBUS_OK;
}

static void
json_where(char *buf, size_t cap, const char *field, size_t i,
           const char *member)
{
    snprintf(buf, cap, "%s[%zu]%s%s", field, i, member != NULL ? "." : "",
             member != NULL ? member : "");
}

int
atb_etcd_json_kvs(const json_t *obj, const char *field, const char *member,
                  const char *strip, size_t strip_len, atb_etcd_kv **out,
                  size_t *n, atb_etcd_detail *d)
{
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(obj, field);
    if (arr == NULL || json_is_null(arr)) {
        return ATBUS_OK;
    }
    if (!json_is_array(arr)) {
        atb_etcd_detail_set(d, "field \"%s\": expected an array", field);
        return ATBUS_EPARSE;
    }
    size_t count = json_array_size(arr);
    if (count == 0) {
        return ATBUS_OK;
    }
    /* Pass 1: validate and size, so one allocation holds everything. */
    char where[96];
    size_t need = count * sizeof(atb_etcd_kv);
    for (size_t i = 0; i < count; i++) {
        json_where(where, sizeof(where), field, i, member);
        const json_t *kv = json_kv_at(arr, i, member);
        if (kv == NULL) {
            atb_etcd_detail_set(d, "%s: expected an object", where);
            return ATBUS_EPARSE;
        }
        int rc = json_kv_check(kv, where, &need, d);
        if (rc != ATBUS_OK) {
            return rc;
        }
    }
    atb_etcd_kv *kvs = atb_calloc(1, need);
    if (kvs == NULL) {
        atb_etcd_detail_set(d, "out of memory for %zu key-values", count);
        return ATBUS_ENOMEM;
    }
    char *pos = (char *)(kvs + count);
    for (size_t i = 0; i < count; i++) {
        json_where(where, sizeof(where), field, i, member);
        int rc = json_kv_decode(json_kv_at(arr, i, member), where, strip,
                                strip_len, &kvs[i], &pos, d);
        if (rc != ATBUS_OK) {
            atb_free(kvs);
            return rc;
        }
    }
    *out = kvs;
    *n = count;
    return ATBUS_OK;
}

int
atb_etcd_json_error(const json_t *obj, int *code, const char **message)
{
    const json_t *err = json_object_get(obj, "error");
    if (err == NULL) {
        return 0;
    }
    const json_t *src = obj;
    const char *code_field = "code";
    if (json_is_object(err)) {
        src = err;
        code_field = "grpc_code";
    } else if (!json_is_string(err)) {
        return 0;
    }
    const json_t *c = json_object_get(src, code_field);
    *code = json_is_integer(c) ? (int)json_integer_value(c) : 0;
    const json_t *m = json_object_get(src, "message");
    if (!json_is_string(m) && json_is_string(err)) {
        m = err;
    }
    *message = json_is_string(m) ? json_string_value(m) : "";
    return 1;
}
