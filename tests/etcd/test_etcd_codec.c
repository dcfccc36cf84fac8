/*
 * The etcd client's codecs without a server: base64 (RFC 4648 vectors,
 * round trips, every kind of malformed input), the capped buffer (cap
 * before growth, sticky errors, JSON escaping, consume), and the JSON
 * readers (int64 strings, missing fields as zero, key-value arrays with
 * the field named in every error).
 */
#include <atbus/error.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "etcd/etcd_b64.h"
#include "etcd/etcd_buf.h"
#include "etcd/etcd_json.h"
#include "testing.h"

/* ---- base64 ---- */

static void
b64_check(const char *plain, const char *enc)
{
    size_t n = strlen(plain);
    char out[64];
    ck_assert_uint_eq(atb_etcd_b64_encoded_len(n), strlen(enc));
    atb_etcd_b64_encode(out, plain, n);
    ck_assert_int_eq(memcmp(out, enc, strlen(enc)), 0);
    char dec[64];
    size_t len = 99;
    ck_assert_int_eq(atb_etcd_b64_decode(dec, enc, strlen(enc), &len),
                     ATBUS_OK);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(dec, plain, n), 0);
}

START_TEST(test_b64_vectors)
{
    /* RFC 4648 section 10. */
    b64_check("", "");
    b64_check("f", "Zg==");
    b64_check("fo", "Zm8=");
    b64_check("foo", "Zm9v");
    b64_check("foob", "Zm9vYg==");
    b64_check("fooba", "Zm9vYmE=");
    b64_check("foobar", "Zm9vYmFy");
    /* What etcd sent in the gateway samples. */
    b64_check("/nodes/a", "L25vZGVzL2E=");
}
END_TEST

START_TEST(test_b64_roundtrip)
{
    uint64_t rng = 11;
    unsigned char in[300];
    char enc[400];
    unsigned char out[400];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(atb_test_rng(&rng) % sizeof(in));
        for (size_t i = 0; i < n; i++) {
            in[i] = (unsigned char)atb_test_rng(&rng);
        }
        size_t elen = atb_etcd_b64_encoded_len(n);
        atb_etcd_b64_encode(enc, in, n);
        size_t len = 0;
        ck_assert_uint_le(atb_etcd_b64_decoded_max(elen), sizeof(out));
        ck_assert_int_eq(atb_etcd_b64_decode(out, enc, elen, &len), ATBUS_OK);
        ck_assert_uint_eq(len, n);
        ck_assert_int_eq(memcmp(in, out, n), 0);
    }
}
END_TEST

START_TEST(test_b64_malformed)
{
    static const char *const bad[] = {
        "Zg",       /* unpadded */
        "Zg=",      /* length not a multiple of 4 */
        "Z===",     /* three pads */
        "=Zg=",     /* pad first */
        "Zg==Zg==", /* pad inside */
        "Zm9v!A==", /* not in the alphabet */
        "Zh==",     /* non-zero trailing bits */
        "Zm9=",     /* non-zero trailing bits, one pad */
        "Zm 9v",    /* space */
        "Zm9v\n",   /* newline */
        "Zm-_",     /* URL-safe alphabet */
    };
    unsigned char out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = 0;
        ck_assert_msg(atb_etcd_b64_decode(out, bad[i], strlen(bad[i]), &len) ==
                          ATBUS_EPARSE,
                      "accepted \"%s\"", bad[i]);
    }
}
END_TEST

/* ---- buffer ---- */

START_TEST(test_buf_cap)
{
    atb_etcd_buf b;
    atb_etcd_buf_init(&b, 10);
    ck_assert_int_eq(atb_etcd_buf_str(&b, "0123456789"), ATBUS_OK);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_str_eq(b.data, "0123456789");
    /* One byte more passes the cap: refused, content kept, sticky. */
    ck_assert_int_eq(atb_etcd_buf_append(&b, "x", 1), ATBUS_EMSGSIZE);
    ck_assert_int_eq(atb_etcd_buf_append(&b, "", 0), ATBUS_EMSGSIZE);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_uint_le(b.alloc, 11);
    atb_etcd_buf_reset(&b);
    ck_assert_int_eq(atb_etcd_buf_str(&b, "abc"), ATBUS_OK);
    atb_etcd_buf_consume(&b, 1);
    ck_assert_str_eq(b.data, "bc");
    atb_etcd_buf_consume(&b, 2);
    ck_assert_uint_eq(b.len, 0);
    atb_etcd_buf_fini(&b);

    /* A huge append is refused before any allocation. */
    atb_etcd_buf_init(&b, 1024);
    ck_assert_int_eq(atb_etcd_buf_append(&b, "x", SIZE_MAX), ATBUS_EMSGSIZE);
    ck_assert_ptr_null(b.data);
    atb_etcd_buf_fini(&b);
}
END_TEST

START_TEST(test_buf_oom)
{
    atb_etcd_buf b;
    atb_etcd_buf_init(&b, 1 << 20);
    atb_alloc_fail_nth(1);
    ck_assert_int_eq(atb_etcd_buf_str(&b, "abc"), ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    ck_assert_int_eq(atb_etcd_buf_str(&b, "abc"), ATBUS_ENOMEM);
    atb_etcd_buf_reset(&b);
    ck_assert_int_eq(atb_etcd_buf_str(&b, "abc"), ATBUS_OK);
    atb_etcd_buf_fini(&b);
}
END_TEST

START_TEST(test_buf_json)
{
    atb_etcd_buf b;
    atb_etcd_buf_init(&b, 1024);
    atb_etcd_buf_json_str(&b, "a\"b\\c\n\x01");
    atb_etcd_buf_str(&b, " ");
    atb_etcd_buf_i64(&b, INT64_MIN);
    atb_etcd_buf_str(&b, " ");
    atb_etcd_buf_b64(&b, "foo", 3);
    ck_assert_int_eq(b.err, ATBUS_OK);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\" "
                             "-9223372036854775808 Zm9v");
    /* jansson reads back what we escaped. */
    json_t *v = json_loads("[\"a\\\"b\\\\c\\u000a\\u0001\"]", 0, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(json_string_value(json_array_get(v, 0)), "a\"b\\c\n\x01");
    json_decref(v);
    atb_etcd_buf_fini(&b);
}
END_TEST

/* ---- JSON readers ---- */

static json_t *
parse_ok(const char *text)
{
    json_t *root = NULL;
    atb_etcd_detail d;
    ck_assert_int_eq(atb_etcd_json_parse(text, strlen(text), &root, &d),
                     ATBUS_OK);
    return root;
}

START_TEST(test_json_parse_errors)
{
    atb_etcd_detail d;
    json_t *root = NULL;
    ck_assert_int_eq(atb_etcd_json_parse("garbage", 7, &root, &d),
                     ATBUS_EPARSE);
    ck_assert_ptr_nonnull(strstr(d.text, "not JSON"));
    ck_assert_ptr_nonnull(strstr(d.text, "line 1"));
    ck_assert_int_eq(atb_etcd_json_parse("[1]", 3, &root, &d), ATBUS_EPARSE);
    ck_assert_ptr_nonnull(strstr(d.text, "not an object"));
    ck_assert_int_eq(atb_etcd_json_parse("{\"a\":", 5, &root, &d),
                     ATBUS_EPARSE);
    ck_assert_int_eq(atb_etcd_json_parse("", 0, &root, &d), ATBUS_EPARSE);
    ck_assert_int_eq(atb_etcd_json_parse("{\"a\":1,\"a\":2}", 13, &root, &d),
                     ATBUS_EPARSE);
}
END_TEST

START_TEST(test_json_i64)
{
    json_t *o =
        parse_ok("{\"s\":\"42\",\"n\":-7,\"big\":\"9223372036854775807\","
                 "\"over\":\"9223372036854775808\",\"x\":\"12ab\","
                 "\"e\":\"\",\"plus\":\"+1\",\"f\":1.5,\"b\":true,"
                 "\"z\":null}");
    atb_etcd_detail d;
    int64_t v = -1;
    ck_assert_int_eq(atb_etcd_json_i64(o, "s", &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(atb_etcd_json_i64(o, "n", &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(atb_etcd_json_i64(o, "big", &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(atb_etcd_json_i64(o, "missing", &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(atb_etcd_json_i64(o, "z", &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, 0);
    static const char *const bad[] = {"over", "x", "e", "plus", "f", "b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(atb_etcd_json_i64(o, bad[i], &v, &d), ATBUS_EPARSE);
        ck_assert_ptr_nonnull(strstr(d.text, bad[i]));
    }
    int b = 0;
    ck_assert_int_eq(atb_etcd_json_bool(o, "b", &b, &d), ATBUS_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(atb_etcd_json_bool(o, "s", &b, &d), ATBUS_EPARSE);
    json_decref(o);

    o = parse_ok("{\"header\":{\"revision\":{}}}");
    ck_assert_int_eq(atb_etcd_json_revision(o, &v, &d), ATBUS_EPARSE);
    ck_assert_ptr_nonnull(strstr(d.text, "header.revision"));
    json_decref(o);
    o = parse_ok("{\"header\":[]}");
    ck_assert_int_eq(atb_etcd_json_revision(o, &v, &d), ATBUS_EPARSE);
    json_decref(o);
    o = parse_ok("{\"header\":{\"revision\":\"77\"}}");
    ck_assert_int_eq(atb_etcd_json_revision(o, &v, &d), ATBUS_OK);
    ck_assert_int_eq(v, 77);
    json_decref(o);
}
END_TEST

START_TEST(test_json_kvs)
{
    /* "/p/nodes/a" = "v1", "/p/x" = "" (value omitted), "/other" kept. */
    json_t *o = parse_ok(
        "{\"kvs\":[{\"key\":\"L3Avbm9kZXMvYQ==\",\"value\":\"djE=\","
        "\"mod_revision\":\"5\",\"create_revision\":\"4\",\"version\":\"2\","
        "\"lease\":\"123\"},{\"key\":\"L3AveA==\"},"
        "{\"key\":\"L290aGVy\",\"value\":\"\"}]}");
    atb_etcd_detail d;
    atb_etcd_kv *kvs = NULL;
    size_t n = 0;
    ck_assert_int_eq(atb_etcd_json_kvs(o, "kvs", NULL, "/p", 2, &kvs, &n, &d),
                     ATBUS_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(kvs[0].key, "/nodes/a");
    ck_assert_uint_eq(kvs[0].key_len, 8);
    ck_assert_str_eq(kvs[0].value, "v1");
    ck_assert_int_eq(kvs[0].mod_revision, 5);
    ck_assert_int_eq(kvs[0].create_revision, 4);
    ck_assert_int_eq(kvs[0].version, 2);
    ck_assert_int_eq(kvs[0].lease, 123);
    ck_assert_str_eq(kvs[1].key, "/x");
    ck_assert_uint_eq(kvs[1].value_len, 0);
    ck_assert_str_eq(kvs[1].value, "");
    ck_assert_str_eq(kvs[2].key, "/other");
    atb_free(kvs);
    /* Missing array: nothing, no error. */
    ck_assert_int_eq(atb_etcd_json_kvs(o, "none", NULL, "", 0, &kvs, &n, &d),
                     ATBUS_OK);
    ck_assert_ptr_null(kvs);
    ck_assert_uint_eq(n, 0);
    json_decref(o);

    static const struct {
        const char *json;
        const char *where;
    } bad[] = {
        {"{\"kvs\":{}}", "expected an array"},
        {"{\"kvs\":[1]}", "kvs[0]: expected an object"},
        {"{\"kvs\":[{\"value\":\"\"}]}", "kvs[0].key"},
        {"{\"kvs\":[{\"key\":\"\"}]}", "kvs[0].key"},
        {"{\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"!!!!\"}]}",
         "kvs[1].key: invalid base64"},
        {"{\"kvs\":[{\"key\":\"YQ==\",\"value\":7}]}", "kvs[0].value"},
        {"{\"kvs\":[{\"key\":\"YQ==\",\"value\":\"Y\"}]}",
         "kvs[0].value: invalid base64"},
        {"{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"x\"}]}",
         "kvs[0].mod_revision"},
        {"{\"kvs\":[{\"key\":\"YQ==\",\"lease\":[]}]}", "kvs[0].lease"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = parse_ok(bad[i].json);
        ck_assert_int_eq(atb_etcd_json_kvs(o, "kvs", NULL, "", 0, &kvs, &n, &d),
                         ATBUS_EPARSE);
        ck_assert_msg(strstr(d.text, bad[i].where) != NULL,
                      "case %zu: detail \"%s\" lacks \"%s\"", i, d.text,
                      bad[i].where);
        json_decref(o);
    }

    /* Watch events hold their key-value in "kv". */
    o = parse_ok("{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\","
                 "\"mod_revision\":\"9\"}},{\"kv\":[]}]}");
    ck_assert_int_eq(atb_etcd_json_kvs(o, "events", "kv", "", 0, &kvs, &n, &d),
                     ATBUS_EPARSE);
    ck_assert_ptr_nonnull(strstr(d.text, "events[1].kv"));
    json_decref(o);
}
END_TEST

START_TEST(test_json_kvs_oom)
{
    json_t *o = parse_ok("{\"kvs\":[{\"key\":\"YQ==\",\"value\":\"Yg==\"}]}");
    atb_etcd_detail d;
    atb_etcd_kv *kvs = NULL;
    size_t n = 0;
    atb_alloc_fail_nth(1);
    ck_assert_int_eq(atb_etcd_json_kvs(o, "kvs", NULL, "", 0, &kvs, &n, &d),
                     ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    json_decref(o);
}
END_TEST

START_TEST(test_json_errors)
{
    int code = 0;
    const char *msg = NULL;
    json_t *o = parse_ok("{\"error\":\"etcdserver: requested lease not found\","
                         "\"message\":\"etcdserver: requested lease not "
                         "found\",\"code\":5}");
    ck_assert_int_eq(atb_etcd_json_error(o, &code, &msg), 1);
    ck_assert_int_eq(code, 5);
    ck_assert_str_eq(msg, "etcdserver: requested lease not found");
    json_decref(o);
    o = parse_ok("{\"error\":{\"grpc_code\":14,\"http_code\":503,"
                 "\"message\":\"transport is closing\"}}");
    ck_assert_int_eq(atb_etcd_json_error(o, &code, &msg), 1);
    ck_assert_int_eq(code, 14);
    ck_assert_str_eq(msg, "transport is closing");
    json_decref(o);
    o = parse_ok("{\"header\":{}}");
    ck_assert_int_eq(atb_etcd_json_error(o, &code, &msg), 0);
    json_decref(o);
    o = parse_ok("{\"error\":7}");
    ck_assert_int_eq(atb_etcd_json_error(o, &code, &msg), 0);
    json_decref(o);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("etcd_codec");
    TCase *tc = atb_test_case("b64", 10);
    tcase_add_test(tc, test_b64_vectors);
    tcase_add_test(tc, test_b64_roundtrip);
    tcase_add_test(tc, test_b64_malformed);
    suite_add_tcase(s, tc);
    tc = atb_test_case("buf", 10);
    tcase_add_test(tc, test_buf_cap);
    tcase_add_test(tc, test_buf_oom);
    tcase_add_test(tc, test_buf_json);
    suite_add_tcase(s, tc);
    tc = atb_test_case("json", 10);
    tcase_add_test(tc, test_json_parse_errors);
    tcase_add_test(tc, test_json_i64);
    tcase_add_test(tc, test_json_kvs);
    tcase_add_test(tc, test_json_kvs_oom);
    tcase_add_test(tc, test_json_errors);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
