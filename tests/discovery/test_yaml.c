/*
 * Loading YAML into the registry: block and flow style, a bad record
 * among good ones (reported with line and path, skipped, the rest
 * loaded), every error of a file collected in order, syntax errors,
 * anchors and aliases, scalar typing, version conflicts, file errors, and
 * allocation failures that must load nothing.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

static int
load_str(atbus_registry *reg, const char *text, atbus_load_result *res)
{
    return atbus_registry_load_yaml_string(reg, text, strlen(text), res);
}

static size_t
nodes(const atbus_registry *reg)
{
    return atbus_registry_count(reg, ATBUS_REGISTRY_NODES);
}

/* expect checks one reported error: code, path, line. */
static void
expect(const atbus_record_error *e, int code, const char *path, size_t line)
{
    ck_assert_msg(e->code == code, "%s: code %s", e->path,
                  atbus_err_name(e->code));
    ck_assert_msg(strcmp(e->path, path) == 0, "path '%s', want '%s' (%s)",
                  e->path, path, e->reason);
    ck_assert_msg(e->line == line, "%s: line %zu, want %zu", path, e->line,
                  line);
    ck_assert_uint_gt(e->column, 0);
    ck_assert(e->reason[0] != '\0');
}

START_TEST(test_topologies_load)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ok(atbus_registry_load_yaml(reg, disc_data("cross_namespace.yaml"), &res));
    ck_assert_uint_eq(res.loaded, 9);
    ck_assert_uint_eq(res.skipped, 0);
    ck_assert_int_eq(res.first.code, 0);
    ck_assert_uint_eq(nodes(reg), 5);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_GROUPS), 1);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_ROUTES), 3);
    ck_assert_int_eq(l.changes, 9);
    ck_assert_uint_eq(l.count, 0);

    /* The block-style relay reads exactly like a flow-style one. */
    const atbus_record *r2 = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "relay-2.ns2", &r2));
    ck_assert_uint_eq(r2->gateways.count, 2);
    ck_assert_int_eq(r2->gateways.items[1].priority, 2);
    ck_assert_str_eq(r2->gateways.items[1].addresses.items[0],
                     "ipv4://172.16.0.2:7000");
    ck_assert_str_eq(r2->gateways.items[1].match.metadata.kind, "relay");
    ck_assert_int_eq(r2->host.pid, 1);

    /* Loading the same file again changes nothing. */
    ok(atbus_registry_load_yaml(reg, disc_data("cross_namespace.yaml"), &res));
    ck_assert_uint_eq(res.loaded, 9);
    ck_assert_int_eq(l.changes, 9);

    ok(atbus_registry_load_yaml(reg, disc_data("cross_region.yaml"), NULL));
    ck_assert_uint_eq(nodes(reg), 6);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_flow_block_and_json_agree)
{
    const char *block = "nodes:\n"
                        "  - name: a\n"
                        "    version: 3\n"
                        "    metadata:\n"
                        "      kind: app\n"
                        "      labels:\n"
                        "        area.region: CN\n"
                        "    gateways:\n"
                        "      - priority: 1\n"
                        "        addresses:\n"
                        "          - ipv4://10.0.0.1:7000\n";
    const char *flow = "{nodes: [{name: a, version: 3, metadata: {kind: app, "
                       "labels: {area.region: CN}}, gateways: [{priority: 1, "
                       "addresses: [\"ipv4://10.0.0.1:7000\"]}]}]}";
    const char *json = "{\"nodes\": [{\"name\": \"a\", \"version\": 3, "
                       "\"metadata\": {\"kind\": \"app\", \"labels\": "
                       "{\"area.region\": \"CN\"}}, \"gateways\": "
                       "[{\"priority\": 1, \"addresses\": "
                       "[\"ipv4://10.0.0.1:7000\"]}]}]}";
    const char *texts[3] = {block, flow, json};
    atbus_record first;
    atbus_record_init(&first);
    for (int i = 0; i < 3; i++) {
        disc_log l;
        atbus_registry *reg = disc_log_registry(&l);
        ok(load_str(reg, texts[i], NULL));
        const atbus_record *a = NULL;
        ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "a", &a));
        if (i == 0) {
            ok(atbus_record_copy(&first, a));
        } else {
            ck_assert(atbus_record_equal(&first, a));
        }
        atbus_registry_free(reg);
    }
    ck_assert_int_eq(first.version, 3);
    atbus_record_fini(&first);
}
END_TEST

START_TEST(test_one_bad_record_loads_the_rest)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ck_assert_int_eq(
        atbus_registry_load_yaml(reg, disc_data("one_bad.yaml"), &res),
        ATBUS_ERECORD);
    ck_assert_uint_eq(res.loaded, 3);
    ck_assert_uint_eq(res.skipped, 1);
    expect(&res.first, ATBUS_ERECORD, "nodes[1].gateways[0].addresses[1]", 12);
    ck_assert_str_eq(res.first.name, "app-2.ns1");
    ck_assert_uint_eq(l.count, 1);
    ck_assert_uint_eq(nodes(reg), 2);
    const atbus_record *r = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &r));
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-3.ns1", &r));
    ck_assert_int_eq(
        atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-2.ns1", &r),
        ATBUS_ENOTFOUND);
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_GROUPS, "apps", &r));
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_every_error_reported_in_order)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ck_assert_int_eq(atbus_registry_load_yaml(reg, disc_data("bad.yaml"), &res),
                     ATBUS_ERECORD);
    ck_assert_uint_eq(res.loaded, 1);
    ck_assert_uint_eq(res.skipped, 6);
    ck_assert_uint_eq(l.count, 6);
    expect(&l.e[0], ATBUS_ERECORD, "nodes[1].name", 10);
    ck_assert_str_eq(l.e[0].name, "App_2");
    expect(&l.e[1], ATBUS_ERECORD, "nodes[2].metadata.labels[\"-tier\"]", 15);
    expect(&l.e[2], ATBUS_ERECORD, "nodes[3].gateways[1].addresses[0]", 22);
    expect(&l.e[3], ATBUS_ERECORD, "nodes[4].gateways[0].priority", 27);
    expect(&l.e[4], ATBUS_ERECORD, "nodes[5].name", 30);
    ck_assert(strstr(l.e[4].reason, "line 4") != NULL);
    expect(&l.e[5], ATBUS_ERECORD, "groups[0].node_list[1]", 36);
    ck_assert(memcmp(&res.first, &l.e[0], sizeof(res.first)) == 0);
    ck_assert_uint_eq(nodes(reg), 1);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_syntax_errors_load_nothing)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    const char *text = "nodes:\n"
                       "  - name: a\n"
                       "  - name: b\n"
                       "    metadata: {kind: app\n"
                       "  - name: c\n";
    ck_assert_int_eq(load_str(reg, text, &res), ATBUS_EPARSE);
    ck_assert_int_eq(res.first.code, ATBUS_EPARSE);
    ck_assert_uint_ge(res.first.line, 4);
    ck_assert_uint_gt(res.first.column, 0);
    ck_assert_uint_eq(res.loaded, 0);
    ck_assert_uint_eq(l.count, 1);
    ck_assert_uint_eq(nodes(reg), 0);

    const char *bad[] = {
        "nodes: [{name: a}]\n---\nnodes: [{name: b}]\n", /* 2 documents */
        "nodes: [*nowhere]\n",                           /* unknown alias */
        "x: &loop [*loop]\n",                            /* self alias */
        "nodes: [{name: a}\n",                           /* unclosed */
        "\tnodes: []\n",                                 /* tab */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(load_str(reg, bad[i], &res) == ATBUS_EPARSE, "%s",
                      bad[i]);
        ck_assert_uint_gt(res.first.line, 0);
        ck_assert_uint_eq(nodes(reg), 0);
    }
    /* Nesting is capped. */
    char deep[400];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "x: ");
    for (int i = 0; i < 100; i++) {
        deep[n++] = '[';
    }
    for (int i = 0; i < 100; i++) {
        deep[n++] = ']';
    }
    deep[n] = '\0';
    ck_assert_int_eq(load_str(reg, deep, &res), ATBUS_EPARSE);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_structure_errors)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ck_assert_int_eq(load_str(reg, "- name: a\n", &res), ATBUS_ERECORD);
    ck_assert_str_eq(res.first.path, "");
    ck_assert_int_eq(load_str(reg, "nodes: {name: a}\n", &res), ATBUS_ERECORD);
    ck_assert_str_eq(res.first.path, "nodes");
    ck_assert_uint_eq(res.first.line, 1);
    ck_assert_int_eq(load_str(reg,
                              "nodes:\n  - {name: g, type: group}\n"
                              "groups:\n  - {name: n, type: node}\n"
                              "  - just-a-string\n",
                              &res),
                     ATBUS_ERECORD);
    ck_assert_uint_eq(res.skipped, 3);
    expect(&res.first, ATBUS_ERECORD, "nodes[0].type", 2);
    expect(&l.e[l.count - 2], ATBUS_ERECORD, "groups[0].type", 4);
    expect(&l.e[l.count - 1], ATBUS_ERECORD, "groups[1]", 5);
    /* Empty inputs load nothing, successfully. */
    const char *empty[] = {"", "---\n", "# only a comment\n", "nodes:\n",
                           "other: 1\n"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        ok(load_str(reg, empty[i], &res));
        ck_assert_uint_eq(res.loaded, 0);
    }
    ck_assert_uint_eq(nodes(reg), 0);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_scalars_and_aliases)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    const char *text =
        "common: &gw\n"
        "  - {priority: 1, addresses: ['ipv4://10.0.0.1:7000']}\n"
        "meta: &meta {namespace_name: ns1, kind: app}\n"
        "nodes:\n"
        "  - name: a\n"
        "    metadata:\n"
        "      kind: app\n"
        "      labels: {zone: 01, flag: true, n: 12, quoted: '7', "
        "num: 3}\n"
        "    gateways: *gw\n"
        "  - {name: b, gateways: *gw, metadata: *meta}\n"
        "  - {name: c, custom_data: !!str 5, version: 0}\n";
    int rc = load_str(reg, text, &res);
    ck_assert_msg(rc == ATBUS_OK, "%s: %s", res.first.path, res.first.reason);
    const atbus_record *a = NULL;
    const atbus_record *b = NULL;
    const atbus_record *c = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "a", &a));
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "b", &b));
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "c", &c));
    /* Plain scalars keep their text where a string is wanted. */
    const char *want[][2] = {{"zone", "01"},
                             {"flag", "true"},
                             {"n", "12"},
                             {"quoted", "7"},
                             {"num", "3"}};
    ck_assert_uint_eq(a->metadata.labels.count, 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(a->metadata.labels.items[i].key, want[i][0]);
        ck_assert_str_eq(a->metadata.labels.items[i].value, want[i][1]);
    }
    ck_assert_str_eq(c->custom_data, "5");
    /* Aliases share the anchored content. */
    ck_assert_uint_eq(b->gateways.count, 1);
    ck_assert_str_eq(b->gateways.items[0].addresses.items[0],
                     "ipv4://10.0.0.1:7000");
    ck_assert_str_eq(b->metadata.namespace_name, "ns1");

    /* Where an integer is wanted, only an integer does. */
    const char *bad[][2] = {
        {"nodes: [{name: d, version: '1'}]", "nodes[0].version"},
        {"nodes: [{name: d, version: 1.0}]", "nodes[0].version"},
        {"nodes: [{name: d, host: {pid: true}}]", "nodes[0].host.pid"},
        {"nodes: [{name: d, version: 99999999999999999999}]",
         "nodes[0].version"},
        {"nodes: [{name: d, metadata: {labels: {k: [1]}}}]",
         "nodes[0].metadata.labels[\"k\"]"},
        {"nodes: [{name: d, metadata: {labels: {[k]: v}}}]",
         "nodes[0].metadata.labels[\"\"]"},
        {"nodes: [{name: d, metadata: {labels: {k: }}}]",
         "nodes[0].metadata.labels[\"k\"]"},
        {"nodes: [{name: d, name: e}]", "nodes[0].name"},
        {"nodes: [{name: \"d\\0e\"}]", "nodes[0].name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(load_str(reg, bad[i][0], &res), ATBUS_ERECORD);
        ck_assert_msg(strcmp(res.first.path, bad[i][1]) == 0,
                      "%s: path '%s' (%s)", bad[i][0], res.first.path,
                      res.first.reason);
        ck_assert_uint_eq(res.first.line, 1);
    }
    ck_assert_uint_eq(nodes(reg), 3);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_versions_against_the_registry)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_record rec;
    disc_node(&rec, "a", "ns1", "app");
    rec.version = 5;
    ok(atbus_registry_put(reg, &rec, NULL));
    atbus_record_fini(&rec);
    atbus_load_result res;
    const char *text = "nodes:\n"
                       "  - {name: b, version: 1}\n"
                       "  - name: a\n"
                       "    version: 3\n";
    ck_assert_int_eq(load_str(reg, text, &res), ATBUS_EEXIST);
    expect(&res.first, ATBUS_EEXIST, "nodes[1].version", 4);
    ck_assert_uint_eq(res.loaded, 1);
    const atbus_record *a = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "a", &a));
    ck_assert_int_eq(a->version, 5);
    ok(load_str(reg, "nodes: [{name: a, version: 6}]", &res));
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "a", &a));
    ck_assert_int_eq(a->version, 6);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_file_errors)
{
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ck_assert_int_eq(
        atbus_registry_load_yaml(reg, disc_data("missing.yaml"), &res),
        ATBUS_ENOTFOUND);
    ck_assert_int_eq(res.first.code, ATBUS_ENOTFOUND);
    ck_assert_uint_eq(l.count, 1);
    /* A directory opens but does not read. */
    ck_assert_int_eq(atbus_registry_load_yaml(reg, ATB_DISC_DATA, &res),
                     ATBUS_ESYSTEM);
    ck_assert_int_eq(atbus_registry_load_yaml(reg, NULL, &res), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_load_yaml(NULL, "x", &res), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_load_yaml_string(reg, NULL, 0, &res),
                     ATBUS_EINVAL);
    /* Above the cap: refused before parsing. */
    size_t len = ATBUS_RECORD_YAML_MAX + 1;
    char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    memset(big, '#', len);
    ck_assert_int_eq(atbus_registry_load_yaml_string(reg, big, len, &res),
                     ATBUS_EPARSE);
    free(big);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_examples_match_test_data)
{
    const char *files[] = {"cross_namespace.yaml", "cross_region.yaml",
                           "bad.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char example[4096];
        snprintf(example, sizeof(example), "%s/%s", ATB_DISC_EXAMPLES,
                 files[i]);
        size_t a_len = 0;
        size_t b_len = 0;
        char *a = disc_read_file(example, &a_len);
        char *b = disc_read_file(disc_data(files[i]), &b_len);
        ck_assert_msg(a_len == b_len && memcmp(a, b, a_len) == 0,
                      "examples/discovery/%s differs from the test data",
                      files[i]);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(test_alloc_sweep_load)
{
    size_t len = 0;
    char *text = disc_read_file(disc_data("cross_region.yaml"), &len);
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    long live = atb_alloc_live();
    unsigned long n;
    for (n = 1;; n++) {
        atbus_load_result res;
        atb_alloc_fail_nth(n);
        int rc = atbus_registry_load_yaml_string(reg, text, len, &res);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (!fired) {
            ok(rc);
            ck_assert_uint_eq(res.loaded, 11);
            break;
        }
        ck_assert_int_eq(rc, ATBUS_ENOMEM);
        ck_assert_int_eq(res.first.code, ATBUS_ENOMEM);
        ck_assert_uint_eq(res.loaded, 0);
        ck_assert_uint_eq(nodes(reg), 0);
        ck_assert_int_eq(l.changes, 0);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert_uint_gt(n, 50);
    ck_assert_uint_eq(nodes(reg), 5);
    ck_assert_int_eq(l.changes, 11);
    atbus_registry_free(reg);
    free(text);
}
END_TEST

static Suite *
yaml_suite(void)
{
    Suite *s = suite_create("yaml");
    TCase *tc = atb_test_case("yaml", 120);
    tcase_add_test(tc, test_topologies_load);
    tcase_add_test(tc, test_flow_block_and_json_agree);
    tcase_add_test(tc, test_one_bad_record_loads_the_rest);
    tcase_add_test(tc, test_every_error_reported_in_order);
    tcase_add_test(tc, test_syntax_errors_load_nothing);
    tcase_add_test(tc, test_structure_errors);
    tcase_add_test(tc, test_scalars_and_aliases);
    tcase_add_test(tc, test_versions_against_the_registry);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_examples_match_test_data);
    tcase_add_test(tc, test_alloc_sweep_load);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(yaml_suite());
}
