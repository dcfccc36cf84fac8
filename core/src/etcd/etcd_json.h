/*
 * Reading etcd's JSON gateway answers with jansson, defensively.
 *
 * The gateway writes proto3 JSON: int64 fields are strings ("7"), bytes
 * are base64, and zero values are left out (a missing field reads as 0,
 * false or empty). Every reader here checks the type it finds and says
 * which field was wrong in a caller-owned atb_etcd_detail, the way
 * jansson's json_error_t does; none of them trusts a field's presence.
 */
#ifndef ATB_ETCD_ETCD_JSON_H
#define ATB_ETCD_ETCD_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd.h"

#define ATB_ETCD_DETAIL_MAX 320

/* What went wrong, for a human. Empty ("") when nothing did. */
typedef struct atb_etcd_detail {
    char text[ATB_ETCD_DETAIL_MAX];
} atb_etcd_detail;

/* atb_etcd_detail_set formats d's text (truncated to fit). */
void atb_etcd_detail_set(atb_etcd_detail *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * atb_etcd_json_parse parses p[0..n) as one JSON object into *out (owned
 * by the caller: json_decref). Returns ATBUS_OK, ATBUS_EPARSE (not JSON,
 * or not an object: d says where) or ATBUS_ENOMEM.
 */
int atb_etcd_json_parse(const char *p, size_t n, json_t **out,
                        atb_etcd_detail *d);

/*
 * atb_etcd_json_i64 reads obj.field as an int64 given as a decimal
 * string or a JSON integer; missing or null reads 0. Returns ATBUS_OK or
 * ATBUS_EPARSE (another type, not a number, out of range).
 */
int atb_etcd_json_i64(const json_t *obj, const char *field, int64_t *out,
                      atb_etcd_detail *d);

/* atb_etcd_json_bool reads obj.field (missing: 0). Returns ATBUS_OK or
 * ATBUS_EPARSE. */
int atb_etcd_json_bool(const json_t *obj, const char *field, int *out,
                       atb_etcd_detail *d);

/* atb_etcd_json_object returns obj.field in *out, NULL when missing or
 * null. Returns ATBUS_OK or ATBUS_EPARSE (not an object). */
int atb_etcd_json_object(const json_t *obj, const char *field,
                         const json_t **out, atb_etcd_detail *d);

/* atb_etcd_json_revision reads obj.header.revision (missing: 0).
 * Returns ATBUS_OK or ATBUS_EPARSE. */
int atb_etcd_json_revision(const json_t *obj, int64_t *rev, atb_etcd_detail *d);

/*
 * atb_etcd_json_kvs decodes obj.field, an array of key-values (or, with
 * member set, of objects whose member is the key-value, as watch events
 * hold theirs in "kv"), into *out: one atb_malloc block holding the
 * array and every key and value (free with atb_free). Keys starting with
 * strip[0..strip_len) have it removed. Missing field: *out NULL, *n 0.
 * Returns ATBUS_OK, ATBUS_EPARSE (d names the element and field) or
 * ATBUS_ENOMEM.
 */
int atb_etcd_json_kvs(const json_t *obj, const char *field, const char *member,
                      const char *strip, size_t strip_len, atb_etcd_kv **out,
                      size_t *n, atb_etcd_detail *d);

/*
 * atb_etcd_json_error recognises the gateway's two error shapes:
 * {"error":"…","message":"…","code":N} for unary calls, and
 * {"error":{"grpc_code":N,"message":"…",…}} inside streams. Returns 1
 * with the gRPC code and message (borrowed from obj; "" if absent) when
 * obj is one, else 0.
 */
int atb_etcd_json_error(const json_t *obj, int *code, const char **message);

#endif /* ATB_ETCD_ETCD_JSON_H */
