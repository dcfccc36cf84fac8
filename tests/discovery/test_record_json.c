/*
 * Records as JSON: exact round trips, the canonical encoding, unknown
 * fields, syntax and type errors with their positions and paths, caps,
 * and allocation failures at every step of decoding, encoding and
 * copying.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "testing.h"

/* roundtrip encodes rec, decodes it, and checks that the result equals
 * rec and encodes to the same bytes. */
static void
roundtrip(const atbus_record *rec)
{
    char *text = NULL;
    ck_assert_int_eq(atbus_record_to_json(rec, &text), ATBUS_OK);
    atbus_record back;
    atbus_record_error err;
    int rc = atbus_record_from_json(text, strlen(text), &back, &err);
    ck_assert_msg(rc == ATBUS_OK, "%s: %s (%s)", err.path, err.reason, text);
    ck_assert(atbus_record_equal(rec, &back));
    char *again = NULL;
    ck_assert_int_eq(atbus_record_to_json(&back, &again), ATBUS_OK);
    ck_assert_str_eq(text, again);
    atbus_record_json_free(again);
    atbus_record_json_free(text);
    atbus_record_fini(&back);
}

/* decode_fails decodes text and checks the code and field path. */
static void
decode_fails(const char *text, int code, const char *path)
{
    atbus_record rec;
    atbus_record_error err;
    int rc = atbus_record_from_json(text, strlen(text), &rec, &err);
    ck_assert_msg(rc == code, "%s: got %s (%s: %s)", text, atbus_err_name(rc),
                  err.path, err.reason);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strcmp(err.path, path) == 0, "%s: path '%s', want '%s'", text,
                  err.path, path);
    ck_assert_ptr_null(rec.name);
    ck_assert(err.reason[0] != '\0');
}

START_TEST(test_roundtrip_full_node)
{
    atbus_record rec;
    disc_sample_node(&rec);
    roundtrip(&rec);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_roundtrip_group_client_minimal)
{
    atbus_record rec;
    disc_sample_group(&rec);
    roundtrip(&rec);
    atbus_record_fini(&rec);

    disc_node(&rec, "c-1", NULL, NULL);
    rec.type = ATBUS_RECORD_CLIENT;
    ck_assert_int_eq(atbus_record_list_add(&rec.tokens, "t0k3n"), ATBUS_OK);
    roundtrip(&rec);
    atbus_record_fini(&rec);

    /* Empty strings are kept apart from absent ones. */
    disc_node(&rec, "n", NULL, NULL);
    ck_assert_int_eq(atbus_record_set_string(&rec.custom_data, ""), ATBUS_OK);
    ck_assert_int_eq(atbus_record_set_string(&rec.hash_code, ""), ATBUS_OK);
    roundtrip(&rec);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_canonical_text)
{
    atbus_record rec;
    disc_node(&rec, "relay-1.ns1", "ns1", "relay");
    rec.version = 3;
    rec.host.pid = 9;
    atbus_gateway *gw = NULL;
    ck_assert_int_eq(atbus_record_add_gateway(&rec, 2, &gw), ATBUS_OK);
    ck_assert_int_eq(
        atbus_record_list_add(&gw->addresses, "ipv4://172.16.0.1:7000"),
        ATBUS_OK);
    ck_assert_int_eq(atbus_record_set_string(&gw->match.metadata.kind, "relay"),
                     ATBUS_OK);
    char *text = NULL;
    ck_assert_int_eq(atbus_record_to_json(&rec, &text), ATBUS_OK);
    ck_assert_str_eq(text, "{\"name\":\"relay-1.ns1\",\"type\":\"node\","
                           "\"version\":3,\"host\":{\"pid\":9},"
                           "\"metadata\":{\"namespace_name\":\"ns1\","
                           "\"kind\":\"relay\"},"
                           "\"gateways\":[{\"priority\":2,\"addresses\":"
                           "[\"ipv4://172.16.0.1:7000\"],"
                           "\"match\":{\"metadata\":{\"kind\":\"relay\"}}}]}");
    atbus_record_json_free(text);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_unknown_fields_ignored)
{
    const char *plain = "{\"name\":\"a\",\"metadata\":{\"kind\":\"app\"},"
                        "\"gateways\":[{\"priority\":1,\"addresses\":"
                        "[\"ipv4://10.0.0.1:1\"]}]}";
    const char *extra =
        "{\"zone\":{\"deep\":[1,2,{\"x\":null}]},\"name\":\"a\","
        "\"metadata\":{\"kind\":\"app\",\"owner_ref\":\"x\"},"
        "\"gateways\":[{\"weight\":5,\"priority\":1,\"addresses\":"
        "[\"ipv4://10.0.0.1:1\"],\"tls\":true}],\"future\":1.5}";
    atbus_record a;
    atbus_record b;
    ck_assert_int_eq(atbus_record_from_json(plain, strlen(plain), &a, NULL),
                     ATBUS_OK);
    ck_assert_int_eq(atbus_record_from_json(extra, strlen(extra), &b, NULL),
                     ATBUS_OK);
    ck_assert(atbus_record_equal(&a, &b));
    ck_assert_int_eq(a.type, ATBUS_RECORD_NODE);
    ck_assert_int_eq(a.version, 0);
    atbus_record_fini(&a);
    atbus_record_fini(&b);
}
END_TEST

START_TEST(test_nulls_are_absent)
{
    const char *text = "{\"name\":\"a\",\"type\":null,\"custom_data\":null,"
                       "\"host\":{\"hostname\":null,\"pid\":null},"
                       "\"tokens\":null,\"metadata\":null}";
    atbus_record rec;
    ck_assert_int_eq(atbus_record_from_json(text, strlen(text), &rec, NULL),
                     ATBUS_OK);
    ck_assert_ptr_null(rec.custom_data);
    ck_assert_ptr_null(rec.host.hostname);
    ck_assert_int_eq(rec.tokens.count, 0);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_syntax_errors)
{
    const char *text = "{\"name\": \"a\",\n  \"type\": }";
    atbus_record rec;
    atbus_record_error err;
    ck_assert_int_eq(atbus_record_from_json(text, strlen(text), &rec, &err),
                     ATBUS_EPARSE);
    ck_assert_int_eq(err.code, ATBUS_EPARSE);
    ck_assert_int_eq(err.line, 2);
    ck_assert_uint_gt(err.column, 0);
    ck_assert_str_eq(err.path, "");

    decode_fails("", ATBUS_EPARSE, "");
    decode_fails("{\"name\":\"a\",\"name\":\"b\"}", ATBUS_EPARSE, "");
    decode_fails("{\"name\":\"a\\u0000b\"}", ATBUS_EPARSE, "");
    decode_fails("{\"name\":\"a\",\"version\":9223372036854775808}",
                 ATBUS_EPARSE, "");

    /* Nesting is capped, even inside fields nobody reads. */
    char deep[400];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "{\"name\":\"a\",\"x\":");
    for (int i = 0; i < 80; i++) {
        deep[n++] = '[';
    }
    for (int i = 0; i < 80; i++) {
        deep[n++] = ']';
    }
    deep[n++] = '}';
    deep[n] = '\0';
    decode_fails(deep, ATBUS_EPARSE, "");
}
END_TEST

START_TEST(test_size_cap)
{
    size_t len = ATBUS_RECORD_JSON_MAX + 1;
    char *text = malloc(len);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', len);
    text[0] = '{';
    text[len - 1] = '}';
    atbus_record rec;
    atbus_record_error err;
    long live = atb_alloc_live();
    ck_assert_int_eq(atbus_record_from_json(text, len, &rec, &err),
                     ATBUS_EPARSE);
    ck_assert_int_eq(atb_alloc_live(), live);
    ck_assert(strstr(err.reason, "larger") != NULL);
    free(text);
}
END_TEST

START_TEST(test_type_errors_name_the_field)
{
    decode_fails("[]", ATBUS_ERECORD, "");
    decode_fails("{\"name\":5}", ATBUS_ERECORD, "name");
    decode_fails("{\"name\":\"a\",\"type\":\"relay\"}", ATBUS_ERECORD, "type");
    decode_fails("{\"name\":\"a\",\"version\":-1}", ATBUS_ERECORD, "version");
    decode_fails("{\"name\":\"a\",\"version\":1.5}", ATBUS_ERECORD, "version");
    decode_fails("{\"name\":\"a\",\"tokens\":\"t\"}", ATBUS_ERECORD, "tokens");
    decode_fails("{\"name\":\"a\",\"tokens\":[\"t\",null]}", ATBUS_ERECORD,
                 "tokens[1]");
    decode_fails("{\"name\":\"a\",\"host\":[]}", ATBUS_ERECORD, "host");
    decode_fails("{\"name\":\"a\",\"host\":{\"pid\":\"1\"}}", ATBUS_ERECORD,
                 "host.pid");
    decode_fails("{\"name\":\"a\",\"host\":{\"pid\":2147483648}}",
                 ATBUS_ERECORD, "host.pid");
    decode_fails("{\"name\":\"a\",\"metadata\":{\"labels\":{\"k\":5}}}",
                 ATBUS_ERECORD, "metadata.labels[\"k\"]");
    decode_fails("{\"name\":\"a\",\"metadata\":{\"labels\":{\"k\":null}}}",
                 ATBUS_ERECORD, "metadata.labels[\"k\"]");
    decode_fails("{\"name\":\"a\",\"gateways\":[{\"priority\":\"1\"}]}",
                 ATBUS_ERECORD, "gateways[0].priority");
    decode_fails("{\"name\":\"a\",\"gateways\":[{\"priority\":1,"
                 "\"addresses\":[\"ipv4://1.2.3.4:1\"]},7]}",
                 ATBUS_ERECORD, "gateways[1]");
    decode_fails("{\"name\":\"a\",\"gateways\":[{\"priority\":1,"
                 "\"addresses\":[\"ipv4://1.2.3.4:1\"],"
                 "\"match\":{\"metadata\":{\"kind\":[]}}}]}",
                 ATBUS_ERECORD, "gateways[0].match.metadata.kind");
    decode_fails("{\"name\":\"a\",\"advertise_relay\":{\"name\":1}}",
                 ATBUS_ERECORD, "advertise_relay.name");
    decode_fails("{\"name\":\"g\",\"type\":\"group\",\"node_list\":[1]}",
                 ATBUS_ERECORD, "node_list[0]");
}
END_TEST

START_TEST(test_caps_before_allocation)
{
    /* 17 gateways: refused by count, before any gateway is allocated. */
    char text[4096];
    size_t n =
        (size_t)snprintf(text, sizeof(text), "{\"name\":\"a\",\"gateways\":[");
    for (int i = 0; i < ATBUS_RECORD_GATEWAYS_MAX + 1; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{}",
                              i != 0 ? "," : "");
    }
    snprintf(text + n, sizeof(text) - n, "]}");
    decode_fails(text, ATBUS_ERECORD, "gateways");

    n = (size_t)snprintf(text, sizeof(text), "{\"name\":\"a\",\"tokens\":[");
    for (int i = 0; i < ATBUS_RECORD_TOKENS_MAX + 1; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"t\"",
                              i != 0 ? "," : "");
    }
    snprintf(text + n, sizeof(text) - n, "]}");
    decode_fails(text, ATBUS_ERECORD, "tokens");
}
END_TEST

START_TEST(test_rules_apply_after_decoding)
{
    decode_fails("{\"name\":\"App\"}", ATBUS_ERECORD, "name");
    decode_fails("{\"name\":\"a\",\"gateways\":[{\"priority\":1,"
                 "\"addresses\":[\"ipv4://10.0.0.1:1\",\"tcp://x:1\"]}]}",
                 ATBUS_ERECORD, "gateways[0].addresses[1]");
}
END_TEST

START_TEST(test_bad_arguments)
{
    atbus_record rec;
    char *text = (char *)1;
    ck_assert_int_eq(atbus_record_from_json(NULL, 0, &rec, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_record_from_json("{}", 2, NULL, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_record_to_json(NULL, &text), ATBUS_EINVAL);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(atbus_record_to_json(&rec, NULL), ATBUS_EINVAL);
    /* Invalid records are not encoded. */
    atbus_record_init(&rec);
    ck_assert_int_eq(atbus_record_to_json(&rec, &text), ATBUS_ERECORD);
    ck_assert_ptr_null(text);
    atbus_record_json_free(NULL);
}
END_TEST

/* sweep_decode fails each allocation of a decode in turn. */
START_TEST(test_alloc_sweep_decode)
{
    atbus_record sample;
    disc_sample_node(&sample);
    char *text = NULL;
    ck_assert_int_eq(atbus_record_to_json(&sample, &text), ATBUS_OK);
    long live = atb_alloc_live();
    unsigned long n;
    for (n = 1;; n++) {
        atbus_record rec;
        atbus_record_error err;
        atb_alloc_fail_nth(n);
        int rc = atbus_record_from_json(text, strlen(text), &rec, &err);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (!fired) {
            ck_assert_int_eq(rc, ATBUS_OK);
            ck_assert(atbus_record_equal(&rec, &sample));
            atbus_record_fini(&rec);
            break;
        }
        ck_assert_int_eq(rc, ATBUS_ENOMEM);
        ck_assert_int_eq(err.code, ATBUS_ENOMEM);
        ck_assert_ptr_null(rec.name);
        ck_assert_int_eq(rec.gateways.count, 0);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert_uint_gt(n, 20);
    atbus_record_json_free(text);
    atbus_record_fini(&sample);
}
END_TEST

START_TEST(test_alloc_sweep_encode_and_copy)
{
    atbus_record sample;
    disc_sample_node(&sample);
    long live = atb_alloc_live();
    for (unsigned long n = 1;; n++) {
        char *text = (char *)1;
        atb_alloc_fail_nth(n);
        int rc = atbus_record_to_json(&sample, &text);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (!fired) {
            ck_assert_int_eq(rc, ATBUS_OK);
            atbus_record_json_free(text);
            break;
        }
        ck_assert_int_eq(rc, ATBUS_ENOMEM);
        ck_assert_ptr_null(text);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    for (unsigned long n = 1;; n++) {
        atbus_record copy;
        atb_alloc_fail_nth(n);
        int rc = atbus_record_copy(&copy, &sample);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (!fired) {
            ck_assert_int_eq(rc, ATBUS_OK);
            ck_assert(atbus_record_equal(&copy, &sample));
            atbus_record_fini(&copy);
            break;
        }
        ck_assert_int_eq(rc, ATBUS_ENOMEM);
        ck_assert_ptr_null(copy.name);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    atbus_record_fini(&sample);
}
END_TEST

START_TEST(test_setters)
{
    atbus_record rec;
    atbus_record_init(&rec);
    ck_assert_int_eq(atbus_record_set_string(&rec.name, "a"), ATBUS_OK);
    ck_assert_int_eq(atbus_record_set_string(&rec.name, "b"), ATBUS_OK);
    ck_assert_str_eq(rec.name, "b");
    ck_assert_int_eq(atbus_record_set_string(&rec.name, NULL), ATBUS_OK);
    ck_assert_ptr_null(rec.name);
    ck_assert_int_eq(atbus_record_set_string(NULL, "x"), ATBUS_EINVAL);
    atbus_kv_list *labels = &rec.metadata.labels;
    ck_assert_int_eq(atbus_record_map_set(labels, "k", "1"), ATBUS_OK);
    ck_assert_int_eq(atbus_record_map_set(labels, "j", "2"), ATBUS_OK);
    ck_assert_int_eq(atbus_record_map_set(labels, "k", "3"), ATBUS_OK);
    ck_assert_uint_eq(labels->count, 2);
    ck_assert_str_eq(labels->items[0].value, "3");
    ck_assert_int_eq(atbus_record_map_set(labels, NULL, "3"), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_record_list_add(&rec.tokens, NULL), ATBUS_EINVAL);
    /* A failed append leaves the list as it was. */
    ck_assert_int_eq(atbus_record_list_add(&rec.tokens, "a"), ATBUS_OK);
    atb_alloc_fail_nth(2);
    ck_assert_int_eq(atbus_record_list_add(&rec.tokens, "b"), ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    ck_assert_uint_eq(rec.tokens.count, 1);
    atb_alloc_fail_nth(1);
    ck_assert_int_eq(atbus_record_add_gateway(&rec, 1, NULL), ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    ck_assert_uint_eq(rec.gateways.count, 0);
    atbus_record_fini(&rec);
    atbus_record_fini(NULL);
}
END_TEST

static Suite *
record_json_suite(void)
{
    Suite *s = suite_create("record_json");
    TCase *tc = atb_test_case("json", 30);
    tcase_add_test(tc, test_roundtrip_full_node);
    tcase_add_test(tc, test_roundtrip_group_client_minimal);
    tcase_add_test(tc, test_canonical_text);
    tcase_add_test(tc, test_unknown_fields_ignored);
    tcase_add_test(tc, test_nulls_are_absent);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_size_cap);
    tcase_add_test(tc, test_type_errors_name_the_field);
    tcase_add_test(tc, test_caps_before_allocation);
    tcase_add_test(tc, test_rules_apply_after_decoding);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_alloc_sweep_decode);
    tcase_add_test(tc, test_alloc_sweep_encode_and_copy);
    tcase_add_test(tc, test_setters);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(record_json_suite());
}
