/*
 * Every validation rule, each broken once on an otherwise valid record,
 * with the field path the error must name; and the edges each rule must
 * still accept.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

/* repeat returns c repeated n times (static buffer, n < 300000). */
static char *
repeat(char c, size_t n)
{
    static char buf[300000];
    ck_assert_uint_lt(n, sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void
set(char **field, const char *value)
{
    ok(atbus_record_set_string(field, value));
}

static void
add_labels(atbus_kv_list *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%zu", i);
        ok(atbus_record_map_set(m, key, "v"));
    }
}

/* add_strings appends n strings "<prefix><i><suffix>". */
static void
add_strings(atbus_string_list *l, const char *prefix, const char *suffix,
            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char s[64];
        snprintf(s, sizeof(s), "%s%zu%s", prefix, i, suffix);
        ok(atbus_record_list_add(l, s));
    }
}

/* A broken rule: how to break it and the path the error names. */
struct bad_case {
    const char *path;
    int group; /* start from the sample group instead of the node */
};

static const struct bad_case bad_cases[] = {
    {"name", 0},                                      /* 0 missing */
    {"name", 0},                                      /* 1 uppercase */
    {"name", 0},                                      /* 2 too long */
    {"type", 0},                                      /* 3 */
    {"version", 0},                                   /* 4 */
    {"custom_data", 0},                               /* 5 not UTF-8 */
    {"custom_data", 0},                               /* 6 too long */
    {"hash_code", 0},                                 /* 7 space */
    {"hash_code", 0},                                 /* 8 too long */
    {"tokens", 0},                                    /* 9 too many */
    {"tokens[1]", 0},                                 /* 10 empty */
    {"tokens[1]", 0},                                 /* 11 space */
    {"tokens[0]", 0},                                 /* 12 NULL */
    {"host.hostname", 0},                             /* 13 space */
    {"host.hostname", 0},                             /* 14 empty */
    {"host.pid", 0},                                  /* 15 negative */
    {"host.pid", 0},                                  /* 16 above pid_t */
    {"metadata.namespace_name", 0},                   /* 17 dot */
    {"metadata.namespace_name", 0},                   /* 18 uppercase */
    {"metadata.api_version", 0},                      /* 19 two slashes */
    {"metadata.api_version", 0},                      /* 20 bad prefix */
    {"metadata.kind", 0},                             /* 21 leading '-' */
    {"metadata.kind", 0},                             /* 22 64 chars */
    {"metadata.group", 0},                            /* 23 space */
    {"metadata.labels[\"-bad\"]", 0},                 /* 24 key start */
    {"metadata.labels[\"UPPER.example.com/x\"]", 0},  /* 25 prefix */
    {NULL, 0},                                        /* 26 64-char key */
    {"metadata.labels[\"a/b/c\"]", 0},                /* 27 two slashes */
    {"metadata.labels[\"area.region\"]", 0},          /* 28 value '-x' */
    {"metadata.labels[\"area.zone_id\"]", 0},         /* 29 value 64 */
    {"metadata.labels[\"area.region\"]", 0},          /* 30 repeated */
    {"metadata.labels", 0},                           /* 31 65 labels */
    {"metadata.annotations[\"bad key\"]", 0},         /* 32 key */
    {"metadata.annotations[\"owner\"]", 0},           /* 33 not UTF-8 */
    {"metadata.annotations", 0},                      /* 34 > 256 KiB */
    {"metadata.annotations", 0},                      /* 35 65 entries */
    {"metadata.labels[\"area.region\"]", 0},          /* 36 NULL value */
    {"gateways", 0},                                  /* 37 17 gateways */
    {"gateways[1].priority", 0},                      /* 38 negative */
    {"gateways[1].priority", 0},                      /* 39 65536 */
    {"gateways[3].addresses", 0},                     /* 40 none */
    {"gateways[0].addresses", 0},                     /* 41 17 addresses */
    {"gateways[0].addresses[1]", 0},                  /* 42 no port */
    {"gateways[0].addresses[0]", 0},                  /* 43 scheme */
    {"gateways[1].addresses[1]", 0},                  /* 44 too long */
    {"gateways[1].addresses[1]", 0},                  /* 45 control */
    {"gateways[1].match.host.hostname", 0},           /* 46 */
    {"gateways[1].match.host.pid", 0},                /* 47 */
    {"gateways[0].match.metadata.namespace_name", 0}, /* 48 */
    {"gateways[2].match.metadata.labels[\"area.region\"]", 0}, /* 49 */
    {"advertise_relay.name", 0},                               /* 50 */
    {"advertise_relay.metadata.kind", 0},                      /* 51 */
    {"node_list", 0},                         /* 52 in a node */
    {"gateways", 1},                          /* 53 in a group */
    {"hash_code", 1},                         /* 54 */
    {"host", 1},                              /* 55 */
    {"metadata", 1},                          /* 56 */
    {"advertise_relay", 1},                   /* 57 */
    {"tokens", 1},                            /* 58 */
    {"node_list[1]", 1},                      /* 59 bad member */
    {"node_list[3]", 1},                      /* 60 repeated */
    {"node_list", 1},                         /* 61 > 4096 */
    {"gateways[0].addresses[0]", 0},          /* 62 NULL */
    {"metadata.labels[\"area.zone_id\"]", 0}, /* 63 '_' edge */
};
#define NBAD ((int)(sizeof(bad_cases) / sizeof(bad_cases[0])))

/* breaks applies bad case i to r; for case 26 it writes the expected
 * path into path. */
static void
breaks(atbus_record *r, int i, char *path, size_t size)
{
    atbus_kv_list *labels = &r->metadata.labels;
    atbus_gateway *gws = r->gateways.items;
    atbus_gateway *gw = NULL;
    switch (i) {
    case 0:
        set(&r->name, NULL);
        break;
    case 1:
        set(&r->name, "App-1");
        break;
    case 2:
        set(&r->name, repeat('a', 254));
        break;
    case 3:
        r->type = (enum atbus_record_type)7;
        break;
    case 4:
        r->version = -1;
        break;
    case 5:
        set(&r->custom_data, "caf\xe9");
        break;
    case 6:
        set(&r->custom_data, repeat('x', ATBUS_RECORD_CUSTOM_DATA_MAX + 1));
        break;
    case 7:
        set(&r->hash_code, "ab cd");
        break;
    case 8:
        set(&r->hash_code, repeat('a', ATBUS_RECORD_HASH_CODE_MAX + 1));
        break;
    case 9:
        add_strings(&r->tokens, "t", "", ATBUS_RECORD_TOKENS_MAX - 1);
        break;
    case 10:
        set(&r->tokens.items[1], "");
        break;
    case 11:
        set(&r->tokens.items[1], "a b");
        break;
    case 12:
        set(&r->tokens.items[0], NULL);
        break;
    case 13:
        set(&r->host.hostname, "node 7");
        break;
    case 14:
        set(&r->host.hostname, "");
        break;
    case 15:
        r->host.pid = -1;
        break;
    case 16:
        r->host.pid = ATBUS_RECORD_PID_MAX + 1;
        break;
    case 17:
        set(&r->metadata.namespace_name, "ns.1");
        break;
    case 18:
        set(&r->metadata.namespace_name, "NS1");
        break;
    case 19:
        set(&r->metadata.api_version, "a/b/c");
        break;
    case 20:
        set(&r->metadata.api_version, "Bad_Prefix/v1");
        break;
    case 21:
        set(&r->metadata.kind, "-app");
        break;
    case 22:
        set(&r->metadata.kind, repeat('k', 64));
        break;
    case 23:
        set(&r->metadata.group, "a b");
        break;
    case 24:
        ok(atbus_record_map_set(labels, "-bad", "x"));
        break;
    case 25:
        ok(atbus_record_map_set(labels, "UPPER.example.com/x", "x"));
        break;
    case 26:
        ok(atbus_record_map_set(labels, repeat('a', 64), "x"));
        snprintf(path, size, "metadata.labels[\"%.64s\"]", repeat('a', 64));
        break;
    case 27:
        ok(atbus_record_map_set(labels, "a/b/c", "x"));
        break;
    case 28:
        ok(atbus_record_map_set(labels, "area.region", "-x"));
        break;
    case 29:
        ok(atbus_record_map_set(labels, "area.zone_id", repeat('z', 64)));
        break;
    case 30:
        ok(atbus_record_map_set(labels, "later", "x"));
        set(&labels->items[labels->count - 1].key, "area.region");
        break;
    case 31:
        add_labels(labels, ATBUS_RECORD_LABELS_MAX + 1 - labels->count);
        break;
    case 32:
        ok(atbus_record_map_set(&r->metadata.annotations, "bad key", "x"));
        break;
    case 33:
        ok(atbus_record_map_set(&r->metadata.annotations, "owner", "\xc0\x80"));
        break;
    case 34:
        for (int k = 0; k < 5; k++) {
            char key[8];
            snprintf(key, sizeof(key), "a%d", k);
            ok(atbus_record_map_set(&r->metadata.annotations, key,
                                    repeat('v', 60000)));
        }
        break;
    case 35:
        add_labels(&r->metadata.annotations, ATBUS_RECORD_ANNOTATIONS_MAX);
        break;
    case 36:
        set(&labels->items[0].value, NULL);
        break;
    case 37:
        for (int k = 0; k < ATBUS_RECORD_GATEWAYS_MAX; k++) {
            ok(atbus_record_add_gateway(r, 5, &gw));
            ok(atbus_record_list_add(&gw->addresses, "ipv4://1.2.3.4:5"));
        }
        break;
    case 38:
        gws[1].priority = -1;
        break;
    case 39:
        gws[1].priority = ATBUS_RECORD_PRIORITY_MAX + 1;
        break;
    case 40:
        ok(atbus_record_add_gateway(r, 9, NULL));
        break;
    case 41:
        add_strings(&gws[0].addresses, "ipv4://10.0.0.", ":1",
                    ATBUS_RECORD_ADDRESSES_MAX - 1);
        break;
    case 42:
        set(&gws[0].addresses.items[1], "ipv4://10.0.0.1");
        break;
    case 43:
        set(&gws[0].addresses.items[0], "http://10.0.0.1:80");
        break;
    case 44: {
        char addr[300];
        snprintf(addr, sizeof(addr), "unix:///%.250s", repeat('p', 250));
        set(&gws[1].addresses.items[1], addr);
        break;
    }
    case 45:
        set(&gws[1].addresses.items[1], "unix:///a\tb");
        break;
    case 46:
        set(&gws[1].match.host.hostname, "a/b");
        break;
    case 47:
        gws[1].match.host.pid = -5;
        break;
    case 48:
        set(&gws[0].match.metadata.namespace_name, "");
        break;
    case 49:
        ok(atbus_record_map_set(&gws[2].match.metadata.labels, "area.region",
                                "C N"));
        break;
    case 50:
        set(&r->advertise_relay.name, "relay_1");
        break;
    case 51:
        set(&r->advertise_relay.metadata.kind, "");
        break;
    case 52:
        ok(atbus_record_list_add(&r->node_list, "x"));
        break;
    case 53:
        ok(atbus_record_add_gateway(r, 1, NULL));
        break;
    case 54:
        set(&r->hash_code, "abc");
        break;
    case 55:
        r->host.pid = 5;
        break;
    case 56:
        ok(atbus_record_map_set(&r->metadata.labels, "a", "b"));
        break;
    case 57:
        set(&r->advertise_relay.name, "relay-1");
        break;
    case 58:
        ok(atbus_record_list_add(&r->tokens, "t"));
        break;
    case 59:
        set(&r->node_list.items[1], "App-2");
        break;
    case 60:
        ok(atbus_record_list_add(&r->node_list, "app-2.ns2"));
        break;
    case 61:
        add_strings(&r->node_list, "m-", "", ATBUS_RECORD_NODE_LIST_MAX);
        break;
    case 62:
        set(&gws[0].addresses.items[0], NULL);
        break;
    case 63:
        ok(atbus_record_map_set(labels, "area.zone_id", "z_"));
        break;
    default:
        ck_abort_msg("no case %d", i);
    }
}

START_TEST(test_bad_rule)
{
    const struct bad_case *c = &bad_cases[_i];
    atbus_record rec;
    if (c->group) {
        disc_sample_group(&rec);
    } else {
        disc_sample_node(&rec);
    }
    char want[512];
    snprintf(want, sizeof(want), "%s", c->path != NULL ? c->path : "");
    breaks(&rec, _i, want, sizeof(want));
    atbus_record_error err;
    memset(&err, 0x5a, sizeof(err));
    int rc = atbus_record_validate(&rec, &err);
    ck_assert_msg(rc == ATBUS_ERECORD, "case %d: accepted", _i);
    ck_assert_int_eq(err.code, ATBUS_ERECORD);
    ck_assert_msg(strcmp(err.path, want) == 0, "case %d: path '%s', want '%s'",
                  _i, err.path, want);
    ck_assert_msg(err.reason[0] != '\0', "case %d: no reason", _i);
    ck_assert_int_eq(err.line, 0);
    /* Invalid records are not encoded either. */
    char *text = NULL;
    ck_assert_int_eq(atbus_record_to_json(&rec, &text), ATBUS_ERECORD);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_edges_accepted)
{
    atbus_record rec;
    disc_sample_node(&rec);
    set(&rec.name, repeat('a', 63));
    rec.host.pid = 0;
    rec.version = INT64_MAX;
    rec.gateways.items[0].priority = 0;
    rec.gateways.items[1].priority = ATBUS_RECORD_PRIORITY_MAX;
    ok(atbus_record_map_set(&rec.metadata.labels, "empty", ""));
    ok(atbus_record_map_set(&rec.metadata.labels, "a.b-c_d", "A.b-c_D"));
    ok(atbus_record_map_set(&rec.metadata.labels, "sub.example.com/Name_1",
                            "v"));
    add_labels(&rec.metadata.labels,
               ATBUS_RECORD_LABELS_MAX - rec.metadata.labels.count);
    ok(atbus_record_map_set(&rec.metadata.annotations, "note",
                            "any text: \xe4\xb8\xad\xe6\x96\x87\n ok"));
    set(&rec.host.hostname, "fd00::1");
    set(&rec.metadata.api_version, "v1");
    set(&rec.metadata.kind, "Relay");
    ok(atbus_record_list_add(&rec.gateways.items[0].addresses,
                             "unix://@atbus.app-1"));
    ok(atbus_record_list_add(&rec.gateways.items[0].addresses, "mem://app-1"));
    set(&rec.custom_data, repeat('x', ATBUS_RECORD_CUSTOM_DATA_MAX));
    add_strings(&rec.tokens, "t-", "", ATBUS_RECORD_TOKENS_MAX - 2);
    atbus_record_error err;
    int rc = atbus_record_validate(&rec, &err);
    ck_assert_msg(rc == ATBUS_OK, "%s: %s", err.path, err.reason);
    atbus_record_fini(&rec);

    /* 253 characters in labels of 63. */
    char name[260];
    memset(name, 'a', 253);
    name[63] = name[127] = name[191] = '.';
    name[253] = '\0';
    disc_node(&rec, name, NULL, NULL);
    ck_assert_int_eq(atbus_record_validate(&rec, NULL), ATBUS_OK);
    atbus_record_fini(&rec);

    disc_sample_group(&rec);
    add_strings(&rec.node_list, "member-", "", ATBUS_RECORD_NODE_LIST_MAX - 3);
    ck_assert_int_eq(atbus_record_validate(&rec, NULL), ATBUS_OK);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_error_carries_name)
{
    atbus_record rec;
    disc_sample_node(&rec);
    rec.host.pid = -3;
    atbus_record_error err;
    ck_assert_int_eq(atbus_record_validate(&rec, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.name, "app-1.ns1");
    ck_assert(strstr(err.reason, "pid") != NULL);
    ck_assert_int_eq(atbus_record_validate(NULL, &err), ATBUS_EINVAL);
    ck_assert_int_eq(err.code, ATBUS_EINVAL);
    atbus_record_fini(&rec);
}
END_TEST

START_TEST(test_hostile_key_is_escaped)
{
    atbus_record rec;
    disc_sample_node(&rec);
    ok(atbus_record_map_set(&rec.metadata.labels, "a\"b\x01", "x"));
    atbus_record_error err;
    ck_assert_int_eq(atbus_record_validate(&rec, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "metadata.labels[\"a\\\"b\\x01\"]");
    atbus_record_fini(&rec);

    disc_sample_node(&rec);
    ok(atbus_record_map_set(&rec.metadata.labels, repeat('q', 200), "x"));
    ck_assert_int_eq(atbus_record_validate(&rec, &err), ATBUS_ERECORD);
    ck_assert(strstr(err.path, "...\"]") != NULL);
    ck_assert_uint_lt(strlen(err.path), sizeof(err.path));
    atbus_record_fini(&rec);
}
END_TEST

static Suite *
record_validate_suite(void)
{
    Suite *s = suite_create("record_validate");
    TCase *tc = atb_test_case("validate", 60);
    tcase_add_loop_test(tc, test_bad_rule, 0, NBAD);
    tcase_add_test(tc, test_edges_accepted);
    tcase_add_test(tc, test_error_carries_name);
    tcase_add_test(tc, test_hostile_key_is_escaped);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(record_validate_suite());
}
