/*
 * Route records (docs/discovery.md "Route records"): validation by field
 * path, the JSON form and its round trip, the routes: list of YAML
 * files, the registry's route table; the etcd key form of records
 * (atb_disc_sync_key, atb_disc_sync_decode) and what a sync checks before
 * it talks to etcd, without an etcd; the name set behind refused keys
 * and pending records; and the route feed into a route registry: both
 * §8.1 topologies, cycles refused and retried whatever the order,
 * deletes, allocation failures, the policy attributes of a record.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <atbus/atbus.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "discovery/nameset.h"
#include "discovery/route_feed.h"
#include "discovery/sync.h"
#include "fixtures.h"
#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

/* route fills rec (initialised here) with a route record. */
static void
route(atbus_record *rec, const char *name, const char *const *ups, size_t n)
{
    atbus_record_init(rec);
    rec->type = ATBUS_RECORD_ROUTE;
    ok(atbus_record_set_string(&rec->name, name));
    for (size_t i = 0; i < n; i++) {
        ok(atbus_record_list_add(&rec->upstreams, ups[i]));
    }
}

/* refused validates rec, expects ATBUS_ERECORD at path, and frees it. */
static void
refused(atbus_record *rec, const char *path, const char *reason)
{
    atbus_record_error err;
    ck_assert_int_eq(atbus_record_validate(rec, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, path);
    ck_assert_msg(strstr(err.reason, reason) != NULL, "reason '%s'",
                  err.reason);
    atbus_record_fini(rec);
}

/* ---- validation ---------------------------------------------------------
 */

START_TEST(test_validate)
{
    static const char *const two[] = {"relay-a.ns1", "relay-b.ns1"};
    atbus_record r;
    route(&r, "app-1.ns1", two, 2);
    ok(atbus_record_validate(&r, NULL));
    atbus_record_fini(&r);
    route(&r, "relay-0.transit", NULL, 0); /* a root */
    ok(atbus_record_validate(&r, NULL));
    ck_assert_str_eq(atbus_record_type_name(r.type), "route");
    atbus_record_fini(&r);

    static const char *const bad_name[] = {"relay-a", "Relay_B"};
    route(&r, "a", bad_name, 2);
    refused(&r, "upstreams[1]", "upstream: only lowercase");
    static const char *const twice[] = {"x", "y", "x"};
    route(&r, "a", twice, 3);
    refused(&r, "upstreams[2]", "listed twice");
    static const char *const self[] = {"x", "a"};
    route(&r, "a", self, 2);
    refused(&r, "upstreams[1]", "the record itself");
    route(&r, "a", NULL, 0);
    for (int i = 0; i < ATBUS_RECORD_UPSTREAMS_MAX + 1; i++) {
        char n[16];
        snprintf(n, sizeof(n), "r%d", i);
        ok(atbus_record_list_add(&r.upstreams, n));
    }
    refused(&r, "upstreams", "more than 16");

    /* Fields a route does not have: the encoder would drop them. */
    route(&r, "a", NULL, 0);
    ok(atbus_record_set_string(&r.metadata.kind, "app"));
    refused(&r, "metadata", "a route record has no metadata");
    route(&r, "a", NULL, 0);
    ok(atbus_record_set_string(&r.custom_data, "x"));
    refused(&r, "custom_data", "a route record has no custom_data");
    route(&r, "a", NULL, 0);
    ok(atbus_record_list_add(&r.node_list, "b"));
    refused(&r, "node_list", "a route record has no node_list");
    route(&r, "a", NULL, 0);
    ok(atbus_record_add_gateway(&r, 1, NULL));
    refused(&r, "gateways", "a route record has no gateways");

    /* And the other way round. */
    disc_node(&r, "a", "ns1", "app");
    ok(atbus_record_list_add(&r.upstreams, "relay"));
    refused(&r, "upstreams", "only route records have upstreams");
    disc_sample_group(&r);
    ok(atbus_record_list_add(&r.upstreams, "relay"));
    refused(&r, "upstreams", "a group record has no upstreams");
    route(&r, "a", NULL, 0);
    r.type = (enum atbus_record_type)4;
    refused(&r, "type", "node, client, group or route");
}
END_TEST

/* ---- JSON -------------------------------------------------------------
 */

static void
json_refused(const char *text, int code, const char *path, const char *reason)
{
    atbus_record r;
    atbus_record_error err;
    ck_assert_int_eq(atbus_record_from_json(text, strlen(text), &r, &err),
                     code);
    ck_assert_str_eq(err.path, path);
    ck_assert_msg(strstr(err.reason, reason) != NULL, "reason '%s'",
                  err.reason);
    ck_assert_ptr_null(r.name);
}

START_TEST(test_json)
{
    static const char canon[] = "{\"name\":\"app-1.ns1\",\"type\":\"route\","
                                "\"version\":3,\"upstreams\":[\"relay-a\","
                                "\"relay-b\"]}";
    atbus_record r;
    ok(atbus_record_from_json(canon, strlen(canon), &r, NULL));
    ck_assert_int_eq(r.type, ATBUS_RECORD_ROUTE);
    ck_assert_int_eq(r.version, 3);
    ck_assert_uint_eq(r.upstreams.count, 2);
    ck_assert_str_eq(r.upstreams.items[0], "relay-a");
    char *text = NULL;
    ok(atbus_record_to_json(&r, &text));
    ck_assert_str_eq(text, canon);
    atbus_record back;
    ok(atbus_record_from_json(text, strlen(text), &back, NULL));
    ck_assert(atbus_record_equal(&r, &back));
    atbus_record_json_free(text);
    atbus_record_fini(&back);
    atbus_record_fini(&r);

    /* A root: no upstreams, none written. */
    static const char root[] = "{\"name\":\"t\",\"type\":\"route\","
                               "\"version\":0}";
    ok(atbus_record_from_json(root, strlen(root), &r, NULL));
    ok(atbus_record_to_json(&r, &text));
    ck_assert_str_eq(text, root);
    atbus_record_json_free(text);
    atbus_record_fini(&r);

    /* On its own, a record without a type is a node. */
    json_refused("{\"name\":\"a\",\"upstreams\":[\"r\"]}", ATBUS_ERECORD,
                 "upstreams", "only route records have upstreams");
    json_refused("{\"name\":\"a\",\"type\":\"path\"}", ATBUS_ERECORD, "type",
                 "node, client, group or route");
    json_refused("{\"name\":\"a\",\"type\":\"route\",\"upstreams\":\"r\"}",
                 ATBUS_ERECORD, "upstreams", "must be a list");
    json_refused("{\"name\":\"a\",\"type\":\"route\",\"upstreams\":[1]}",
                 ATBUS_ERECORD, "upstreams[0]", "must be a string");
    json_refused("{\"name\":\"a\",\"type\":\"route\",\"upstreams\":"
                 "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
                 "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}",
                 ATBUS_ERECORD, "upstreams", "more than 16 entries");
    json_refused("{\"name\":\"a\",\"type\":\"route\",\"upstreams\":[\"a\"]}",
                 ATBUS_ERECORD, "upstreams[0]", "the record itself");
}
END_TEST

/* ---- YAML and the registry ----------------------------------------------
 */

START_TEST(test_yaml_routes)
{
    static const char text[] =
        "nodes:\n"
        "  - {name: app-1}\n"
        "routes:\n"
        "  - {name: app-1, upstreams: [relay-a, relay-b]}\n" /* 4 */
        "  - {name: app-2, upstreams: [Relay]}\n"            /* 5 */
        "  - {name: app-3, type: node}\n"                    /* 6 */
        "  - {name: app-1, upstreams: []}\n"                 /* 7 */
        "  - name: relay-a\n"                                /* 8 */
        "    type: route\n"
        "groups:\n"
        "  - {name: g, node_list: [app-1]}\n";
    disc_log l;
    atbus_registry *reg = disc_log_registry(&l);
    atbus_load_result res;
    ck_assert_int_eq(
        atbus_registry_load_yaml_string(reg, text, strlen(text), &res),
        ATBUS_ERECORD);
    ck_assert_uint_eq(res.loaded, 4);
    ck_assert_uint_eq(res.skipped, 3);
    ck_assert_uint_eq(l.count, 3);
    ck_assert_str_eq(l.e[0].path, "routes[1].upstreams[0]");
    ck_assert_uint_eq(l.e[0].line, 5);
    ck_assert_str_eq(l.e[0].name, "app-2");
    ck_assert_str_eq(l.e[1].path, "routes[2].type");
    ck_assert_uint_eq(l.e[1].line, 6);
    ck_assert_msg(strstr(l.e[1].reason, "a node record does not belong "
                                        "under routes") != NULL,
                  "%s", l.e[1].reason);
    ck_assert_str_eq(l.e[2].path, "routes[3].name");
    ck_assert_uint_eq(l.e[2].line, 7);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), 1);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_GROUPS), 1);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_ROUTES), 2);
    /* One name in two tables: the node and its route. */
    const atbus_record *r = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_ROUTES, "app-1", &r));
    ck_assert_int_eq(r->type, ATBUS_RECORD_ROUTE);
    ck_assert_uint_eq(r->upstreams.count, 2);
    ck_assert_str_eq(r->upstreams.items[1], "relay-b");
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1", &r));
    ck_assert_int_eq(r->type, ATBUS_RECORD_NODE);
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_ROUTES, "relay-a", &r));
    ck_assert_uint_eq(r->upstreams.count, 0);

    /* A route under nodes: is refused too. */
    static const char misplaced[] = "nodes:\n  - {name: x, type: route}\n";
    ck_assert_int_eq(atbus_registry_load_yaml_string(reg, misplaced,
                                                     strlen(misplaced), &res),
                     ATBUS_ERECORD);
    ck_assert_str_eq(res.first.path, "nodes[0].type");
    static const char notlist[] = "routes: {name: x}\n";
    ck_assert_int_eq(
        atbus_registry_load_yaml_string(reg, notlist, strlen(notlist), &res),
        ATBUS_ERECORD);
    ck_assert_str_eq(res.first.path, "routes");

    /* The route table has its own puts and removes. */
    int changes = l.changes;
    static const char *const up[] = {"relay-b"};
    atbus_record rec;
    route(&rec, "app-1", up, 1);
    rec.version = 1;
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(l.changes, changes + 1);
    ck_assert_str_eq(l.last, "route:app-1");
    rec.version = 0;
    ck_assert_int_eq(atbus_registry_put(reg, &rec, NULL), ATBUS_EEXIST);
    atbus_record_fini(&rec);
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_ROUTES, "app-1"));
    ck_assert_int_eq(l.deletes, 1);
    ck_assert_str_eq(l.last, "route:app-1");
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1", &r));
    ck_assert_int_eq(atbus_registry_remove(reg, ATBUS_REGISTRY_ROUTES, "app-1"),
                     ATBUS_ENOTFOUND);
    atbus_registry_free(reg);
}
END_TEST

/* ---- etcd keys ----------------------------------------------------------
 */

static int
decode(const char *key, const char *value, enum atbus_registry_table *table,
       atbus_record *rec, atbus_record_error *err)
{
    return atb_disc_sync_decode(key, strlen(key), value, strlen(value), table,
                                rec, err);
}

START_TEST(test_etcd_keys)
{
    char key[64];
    ok(atb_disc_sync_key(ATBUS_REGISTRY_ROUTES, "app-1", key, sizeof(key)));
    ck_assert_str_eq(key, "/routes/app-1");
    ok(atb_disc_sync_key(ATBUS_REGISTRY_GROUPS, "g", key, sizeof(key)));
    ck_assert_str_eq(key, "/groups/g");
    ck_assert_int_eq(atb_disc_sync_key(ATBUS_REGISTRY_NODES, "abc", key, 9),
                     ATBUS_ENOBUFS);
    ck_assert_int_eq(
        atb_disc_sync_key((enum atbus_registry_table)0, "a", key, sizeof(key)),
        ATBUS_EINVAL);

    enum atbus_registry_table t = 0;
    atbus_record r;
    atbus_record_error err;
    /* The type goes without saying in its folder. */
    ok(decode("/routes/a", "{\"name\":\"a\",\"upstreams\":[\"r\"]}", &t, &r,
              &err));
    ck_assert_int_eq(t, ATBUS_REGISTRY_ROUTES);
    ck_assert_int_eq(r.type, ATBUS_RECORD_ROUTE);
    atbus_record_fini(&r);
    ok(decode("/groups/g", "{\"name\":\"g\",\"node_list\":[\"a\"]}", &t, &r,
              NULL));
    ck_assert_int_eq(r.type, ATBUS_RECORD_GROUP);
    atbus_record_fini(&r);
    ok(decode("/nodes/c", "{\"name\":\"c\",\"type\":\"client\"}", &t, &r,
              NULL));
    ck_assert_int_eq(t, ATBUS_REGISTRY_NODES);
    ck_assert_int_eq(r.type, ATBUS_RECORD_CLIENT);
    atbus_record_fini(&r);

    /* Not record keys. */
    const char *others[] = {"/topology/x", "/nodes/",     "/nodesx/a",
                            "nodes/a",     "/policies/p", "/routes"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ck_assert_int_eq(decode(others[i], "{}", &t, &r, NULL), ATBUS_ENOTSUP);
        ck_assert_ptr_null(r.name);
    }

    /* Refused values; the table is known anyway. */
    t = 0;
    ck_assert_int_eq(decode("/nodes/a", "{\"name\":", &t, &r, &err),
                     ATBUS_EPARSE);
    ck_assert_int_eq(t, ATBUS_REGISTRY_NODES);
    ck_assert_uint_eq(err.line, 1);
    ck_assert_int_eq(decode("/nodes/a", "{\"name\":\"b\"}", &t, &r, &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "name");
    ck_assert_str_eq(err.name, "b");
    ck_assert_msg(strstr(err.reason, "does not match the key (a)") != NULL,
                  "%s", err.reason);
    ck_assert_int_eq(
        decode("/nodes/g", "{\"name\":\"g\",\"type\":\"group\"}", &t, &r, &err),
        ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "type");
    ck_assert_int_eq(decode("/routes/a",
                            "{\"name\":\"a\",\"upstreams\":[\"a\"]}", &t, &r,
                            &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "upstreams[0]");
    ck_assert_int_eq(decode("/nodes/a", "", &t, &r, &err), ATBUS_EPARSE);
    ck_assert_int_eq(atb_disc_sync_decode("/nodes/a", 8, NULL, 0, &t, &r, &err),
                     ATBUS_EPARSE);
    ck_assert_int_eq(atb_disc_sync_decode(NULL, 0, "", 0, &t, &r, &err),
                     ATBUS_EINVAL);
}
END_TEST

/* What a sync checks before it talks to etcd: its configuration and
 * the records it is asked to publish. Nothing here reaches a server. */
START_TEST(test_sync_offline)
{
    atb_loop *loop = NULL;
    ok(atb_loop_new(&loop));
    atbus_registry *reg = NULL;
    ok(atbus_registry_new(&reg));
    atb_etcd_config cfg;
    ok(atb_etcd_config_default(&cfg));
    atb_disc_sync *s = NULL;
    ck_assert_int_eq(atb_disc_sync_new(&s, loop, &cfg, reg, NULL, NULL),
                     ATBUS_EINVAL); /* no endpoint */
    cfg.endpoints[0] = "http://127.0.0.1:1";
    cfg.endpoint_count = 1;
    cfg.prefix = "/atbus//";
    ck_assert_int_eq(atb_disc_sync_new(&s, loop, &cfg, NULL, NULL, NULL),
                     ATBUS_EINVAL);
    ok(atb_disc_sync_new(&s, loop, &cfg, reg, NULL, NULL));
    atb_disc_sync_status st;
    atb_disc_sync_status_get(s, &st);
    ck_assert_int_eq(st.state, ATB_DISC_SYNC_STARTING);
    ck_assert_int_eq(st.published, 0);
    ck_assert_uint_eq(st.rejected, 0);

    atbus_record node;
    atbus_record bad;
    atbus_record_error err;
    disc_node(&node, "app-1", "ns1", "app");
    disc_node(&bad, "app-1", "ns1", "app");
    ok(atbus_record_set_string(&bad.metadata.kind, "-x"));
    ck_assert_int_eq(atb_disc_sync_publish(s, &bad, NULL, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "metadata.kind");
    ck_assert_int_eq(atb_disc_sync_publish(s, NULL, NULL, &err), ATBUS_EINVAL);
    ck_assert_int_eq(atb_disc_sync_publish(s, &node, &node, &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "type");
    static const char *const up[] = {"relay-1"};
    atbus_record r;
    route(&r, "app-2", up, 1);
    ck_assert_int_eq(atb_disc_sync_publish(s, &node, &r, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "name");
    ck_assert_str_eq(err.name, "app-2");
    ck_assert_int_eq(atb_disc_sync_publish(s, &r, NULL, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "type");
    /* Nothing was handed to the session, so there is no lease to end. */
    ck_assert_int_eq(atb_disc_sync_unpublish(s), ATBUS_ENOTFOUND);
    ck_assert_ptr_nonnull(atb_disc_sync_client(s));
    atb_disc_sync_free(s);
    atb_disc_sync_free(NULL);
    atbus_record_fini(&r);
    atbus_record_fini(&bad);
    atbus_record_fini(&node);
    atbus_registry_free(reg);
    atb_loop_free(loop);
}
END_TEST

static int
sweep_thirds(atb_disc_name *e, void *arg)
{
    (void)arg;
    return e->value % 3 == 0;
}

START_TEST(test_nameset)
{
    long live = atb_alloc_live();
    atb_disc_nameset set;
    atb_disc_nameset_init(&set);
    ck_assert_ptr_null(atb_disc_nameset_get(&set, "x"));
    ck_assert_int_eq(atb_disc_nameset_remove(&set, "x"), 0);
    atb_alloc_fail_nth(1);
    ck_assert_int_eq(atb_disc_nameset_put(&set, "x", 1), ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    ck_assert_uint_eq(set.count, 0);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "/nodes/n-%d", i);
        ok(atb_disc_nameset_put(&set, name, i));
    }
    ok(atb_disc_nameset_put(&set, "/nodes/n-7", 7)); /* already there */
    ck_assert_uint_eq(set.count, 1000);
    ck_assert_int_eq(atb_disc_nameset_get(&set, "/nodes/n-999")->value, 999);
    for (int i = 1; i < 1000; i += 2) {
        snprintf(name, sizeof(name), "/nodes/n-%d", i);
        ck_assert_int_eq(atb_disc_nameset_remove(&set, name), 1);
    }
    ck_assert_uint_eq(set.count, 500);
    /* Of the even ones, those divisible by 3 go: 0, 6, ..., 996. */
    ck_assert_uint_eq(atb_disc_nameset_sweep(&set, sweep_thirds, NULL), 167);
    ck_assert_uint_eq(set.count, 333);
    ck_assert_ptr_null(atb_disc_nameset_get(&set, "/nodes/n-6"));
    ck_assert_ptr_nonnull(atb_disc_nameset_get(&set, "/nodes/n-8"));
    atb_disc_nameset_fini(&set);
    ck_assert_int_eq(atb_alloc_live(), live);
}
END_TEST

/* ---- the route feed -----------------------------------------------------
 */

/* A registry feeding a route registry, and what the feed refused. */
struct feed_fx {
    atbus_registry *reg;
    atbus_route_registry *routes;
    atb_disc_route_feed *feed;
    int rejects;
    int last_err;
    char last_name[64];
    char last_detail[256];
};

static void
fx_on_reject(const char *name, int err, const char *detail, void *arg)
{
    struct feed_fx *fx = arg;
    fx->rejects++;
    fx->last_err = err;
    snprintf(fx->last_name, sizeof(fx->last_name), "%s", name);
    snprintf(fx->last_detail, sizeof(fx->last_detail), "%s", detail);
}

static void
fx_init(struct feed_fx *fx)
{
    memset(fx, 0, sizeof(*fx));
    ok(atbus_registry_new(&fx->reg));
    ok(atbus_route_registry_new(&fx->routes));
    ok(atb_disc_route_feed_new(&fx->feed, fx->reg, fx->routes, fx_on_reject,
                               fx));
    atbus_registry_callbacks cbs = {.on_change = atb_disc_route_feed_on_change};
    ok(atbus_registry_set_callbacks(fx->reg, &cbs, fx->feed));
}

static void
fx_fini(struct feed_fx *fx)
{
    atb_disc_route_feed_free(fx->feed);
    atbus_route_registry_free(fx->routes);
    atbus_registry_free(fx->reg);
}

/* fx_put puts the route record "name: up..." (up: space-separated). */
static void
fx_put(struct feed_fx *fx, const char *name, const char *ups)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", ups);
    const char *list[ATBUS_RECORD_UPSTREAMS_MAX];
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        list[n++] = t;
    }
    atbus_record r;
    route(&r, name, list, n);
    ok(atbus_registry_put(fx->reg, &r, NULL));
    atbus_record_fini(&r);
}

static atbus_relation
rel(struct feed_fx *fx, const char *x, const char *y)
{
    atbus_relation r = 0;
    ok(atbus_route_registry_relation(fx->routes, x, y, &r));
    return r;
}

START_TEST(test_feed_topologies)
{
    struct feed_fx fx;
    fx_init(&fx);
    ok(atbus_registry_load_yaml(fx.reg, disc_data("cross_region.yaml"), NULL));
    ck_assert_int_eq(fx.rejects, 0);
    ck_assert_int_eq(rel(&fx, "app-1.ns1", "relay-1.ns1"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(rel(&fx, "app-1.ns1", "relay-0.transit"),
                     ATBUS_RELATION_TRANSITIVE_UPSTREAM);
    ck_assert_int_eq(rel(&fx, "relay-1.ns1", "relay-2.ns2"),
                     ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(rel(&fx, "relay-0.transit", "app-2.ns2"),
                     ATBUS_RELATION_TRANSITIVE_DOWNSTREAM);
    ck_assert_int_eq(rel(&fx, "app-1.ns1", "app-2.ns2"),
                     ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    fx_fini(&fx);

    /* A feed started on a filled registry catches up with _load. */
    fx_init(&fx);
    ok(atbus_registry_set_callbacks(fx.reg, NULL, NULL));
    ok(atbus_registry_load_yaml(fx.reg, disc_data("cross_namespace.yaml"),
                                NULL));
    ck_assert_int_eq(atbus_route_registry_relation(fx.routes, "app-1.ns1",
                                                   "relay-1.ns1", NULL),
                     ATBUS_EINVAL);
    ok(atb_disc_route_feed_load(fx.feed));
    ck_assert_int_eq(rel(&fx, "app-1.ns1", "app-3.ns1"),
                     ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(rel(&fx, "relay-2.ns2", "app-2.ns2"),
                     ATBUS_RELATION_IMMEDIATE_DOWNSTREAM);
    ck_assert_int_eq(rel(&fx, "relay-1.ns1", "relay-2.ns2"),
                     ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_feed_cycle)
{
    struct feed_fx fx;
    fx_init(&fx);
    fx_put(&fx, "a", "b");
    fx_put(&fx, "b", "c");
    fx_put(&fx, "c", "a"); /* closes a -> b -> c -> a */
    ck_assert_int_eq(fx.rejects, 1);
    ck_assert_int_eq(fx.last_err, ATBUS_EROUTE_CYCLE);
    ck_assert_str_eq(fx.last_name, "c");
    ck_assert_msg(strstr(fx.last_detail, "cycle:") != NULL, "%s",
                  fx.last_detail);
    ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 1);
    ck_assert(atb_disc_route_feed_is_pending(fx.feed, "c"));
    /* The discovery registry holds it; the route registry does not. */
    ck_assert_uint_eq(atbus_registry_count(fx.reg, ATBUS_REGISTRY_ROUTES), 3);
    ck_assert_int_eq(rel(&fx, "a", "c"), ATBUS_RELATION_TRANSITIVE_UPSTREAM);

    /* Another change that leaves the cycle closed: still pending, not
     * reported again. */
    fx_put(&fx, "d", "a");
    ck_assert_int_eq(fx.rejects, 1);
    ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 1);

    /* b moves away: the cycle is gone and c goes in. */
    fx_put(&fx, "b", "e");
    ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 0);
    ck_assert_int_eq(rel(&fx, "c", "a"), ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(rel(&fx, "c", "e"), ATBUS_RELATION_TRANSITIVE_UPSTREAM);

    /* An update that would close a cycle keeps the previous report. */
    fx_put(&fx, "e", "d");
    ck_assert_int_eq(fx.rejects, 2);
    ck_assert_str_eq(fx.last_name, "e");
    ck_assert_int_eq(rel(&fx, "b", "e"), ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    /* Removing the route record of a pending name drops it. */
    ok(atbus_registry_remove(fx.reg, ATBUS_REGISTRY_ROUTES, "e"));
    ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 0);
    fx_fini(&fx);
}
END_TEST

/* The same records in every order end in one route registry state,
 * with the record that closed the cycle pending until the cycle breaks. */
START_TEST(test_feed_order)
{
    static const char *const names[] = {"a", "b", "c"};
    static const char *const ups[] = {"b", "c", "a"};
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        struct feed_fx fx;
        fx_init(&fx);
        for (int i = 0; i < 3; i++) {
            fx_put(&fx, names[orders[o][i]], ups[orders[o][i]]);
        }
        ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 1);
        /* The last one in closed the cycle. */
        ck_assert(atb_disc_route_feed_is_pending(fx.feed, names[orders[o][2]]));
        /* a's record goes: both others are in. (Whether a itself is up
         * depends on the route registry's rules for a name removed while
         * listed, so only b and c are compared.) */
        ok(atbus_registry_remove(fx.reg, ATBUS_REGISTRY_ROUTES, "a"));
        ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 0);
        ck_assert_int_eq(rel(&fx, "c", "b"),
                         ATBUS_RELATION_IMMEDIATE_DOWNSTREAM);
        ck_assert_int_eq(rel(&fx, "b", "c"), ATBUS_RELATION_IMMEDIATE_UPSTREAM);
        fx_fini(&fx);
    }
}
END_TEST

START_TEST(test_feed_delete)
{
    struct feed_fx fx;
    fx_init(&fx);
    fx_put(&fx, "app", "relay-a relay-b");
    fx_put(&fx, "relay-a", "");
    fx_put(&fx, "relay-b", "");
    ck_assert_int_eq(rel(&fx, "app", "relay-a"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    /* relay-a's route record goes (its lease expired): app fails over. */
    ok(atbus_registry_remove(fx.reg, ATBUS_REGISTRY_ROUTES, "relay-a"));
    ck_assert_int_eq(rel(&fx, "app", "relay-b"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(rel(&fx, "app", "relay-a"),
                     ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    /* It comes back: up again, primary again. */
    fx_put(&fx, "relay-a", "");
    ck_assert_int_eq(rel(&fx, "app", "relay-a"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ok(atbus_registry_remove(fx.reg, ATBUS_REGISTRY_ROUTES, "app"));
    ck_assert_int_eq(
        atbus_route_registry_relation(fx.routes, "app", "relay-a", NULL),
        ATBUS_EINVAL);
    atbus_relation r;
    ck_assert_int_eq(
        atbus_route_registry_relation(fx.routes, "app", "relay-a", &r),
        ATBUS_ENOTFOUND);
    /* Node and group records do not reach the route registry. */
    atbus_record n;
    disc_node(&n, "relay-c", "ns1", "relay");
    ok(atbus_registry_put(fx.reg, &n, NULL));
    ok(atbus_registry_remove(fx.reg, ATBUS_REGISTRY_NODES, "relay-c"));
    atbus_record_fini(&n);
    ck_assert_int_eq(
        atbus_route_registry_relation(fx.routes, "relay-c", "relay-a", &r),
        ATBUS_ENOTFOUND);
    fx_fini(&fx);
}
END_TEST

/* Every allocation of a load through the feed failed in turn: whatever
 * the route registry could not take is pending, and a later load
 * applies it. */
START_TEST(test_feed_alloc_sweep)
{
    long live = atb_alloc_live();
    unsigned long n;
    for (n = 1;; n++) {
        struct feed_fx fx;
        fx_init(&fx);
        ok(atbus_registry_set_callbacks(fx.reg, NULL, NULL));
        ok(atbus_registry_load_yaml(fx.reg, disc_data("cross_region.yaml"),
                                    NULL));
        atb_alloc_fail_nth(n);
        int rc = atb_disc_route_feed_load(fx.feed);
        int fired = atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (!fired) {
            ok(rc);
            fx_fini(&fx);
            break;
        }
        ck_assert(rc == ATBUS_OK || rc == ATBUS_EROUTE_CYCLE);
        ck_assert(fx.rejects == 0 || fx.last_err == ATBUS_ENOMEM);
        ok(atb_disc_route_feed_load(fx.feed));
        ck_assert_uint_eq(atb_disc_route_feed_pending(fx.feed), 0);
        ck_assert_int_eq(rel(&fx, "app-2.ns2", "relay-0.transit"),
                         ATBUS_RELATION_TRANSITIVE_UPSTREAM);
        fx_fini(&fx);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert_uint_gt(n, 5);
}
END_TEST

START_TEST(test_record_attr)
{
    atbus_record r;
    disc_sample_node(&r);
    ck_assert_str_eq(atb_disc_record_attr(&r, "name", NULL), r.name);
    ck_assert_str_eq(atb_disc_record_attr(&r, "type", NULL), "node");
    ck_assert_str_eq(atb_disc_record_attr(&r, "metadata.namespace_name", NULL),
                     r.metadata.namespace_name);
    ck_assert_str_eq(atb_disc_record_attr(&r, "metadata.kind", NULL),
                     r.metadata.kind);
    ck_assert_str_eq(atb_disc_record_attr(&r, "host.hostname", NULL),
                     r.host.hostname);
    const atbus_kv *l = &r.metadata.labels.items[1];
    char key[128];
    snprintf(key, sizeof(key), "labels.%s", l->key);
    ck_assert_str_eq(atb_disc_record_attr(&r, key, NULL), l->value);
    const atbus_kv *a = &r.metadata.annotations.items[0];
    snprintf(key, sizeof(key), "annotations.%s", a->key);
    ck_assert_str_eq(atb_disc_record_attr(&r, key, NULL), a->value);
    ck_assert_ptr_null(atb_disc_record_attr(&r, "labels.nope", NULL));
    ck_assert_ptr_null(atb_disc_record_attr(&r, "metadata", NULL));
    ck_assert_ptr_null(atb_disc_record_attr(&r, "", NULL));
    atbus_record_fini(&r);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("route_record");
    TCase *tc = atb_test_case("record", 30);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_yaml_routes);
    tcase_add_test(tc, test_etcd_keys);
    tcase_add_test(tc, test_sync_offline);
    tcase_add_test(tc, test_nameset);
    suite_add_tcase(s, tc);
    tc = atb_test_case("feed", 30);
    tcase_add_test(tc, test_feed_topologies);
    tcase_add_test(tc, test_feed_cycle);
    tcase_add_test(tc, test_feed_order);
    tcase_add_test(tc, test_feed_delete);
    tcase_add_test(tc, test_feed_alloc_sweep);
    tcase_add_test(tc, test_record_attr);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
