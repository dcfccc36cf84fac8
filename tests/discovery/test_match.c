/*
 * Matching and selection: match rules, same host and same process,
 * gateway selection by priority, match and scheme, the two topologies of
 * the design written as YAML, relay selection, and how many nodes change
 * relay when the relay set changes (rendezvous hashing: about 1/N).
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <string.h>

#include "fixtures.h"
#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

static void
set(char **field, const char *value)
{
    ok(atbus_record_set_string(field, value));
}

static atbus_gateway *
gateway(atbus_record *rec, int32_t priority, const char *a1, const char *a2)
{
    atbus_gateway *gw = NULL;
    ok(atbus_record_add_gateway(rec, priority, &gw));
    ok(atbus_record_list_add(&gw->addresses, a1));
    if (a2 != NULL) {
        ok(atbus_record_list_add(&gw->addresses, a2));
    }
    return gw;
}

START_TEST(test_match_fields_and_subsets)
{
    atbus_record node;
    disc_sample_node(&node);
    /* Matches live in gateways; build them in a scratch record. */
    atbus_record holder;
    disc_node(&holder, "holder", NULL, NULL);
    atbus_match *m = &gateway(&holder, 1, "mem://x", NULL)->match;
    ck_assert(atbus_match_accepts(m, &node)); /* empty: anyone */

    set(&m->metadata.namespace_name, "ns1");
    ck_assert(atbus_match_accepts(m, &node));
    set(&m->metadata.kind, "relay");
    ck_assert(!atbus_match_accepts(m, &node));
    set(&m->metadata.kind, "app");
    set(&m->metadata.group, "game");
    set(&m->metadata.api_version, "atbus.io/v1");
    ck_assert(atbus_match_accepts(m, &node));
    set(&m->metadata.api_version, "atbus.io/v2");
    ck_assert(!atbus_match_accepts(m, &node));
    set(&m->metadata.api_version, NULL);

    /* Labels: a subset, in any order. */
    ok(atbus_record_map_set(&m->metadata.labels, "area.zone_id", "01"));
    ok(atbus_record_map_set(&m->metadata.labels, "area.region", "CN"));
    ck_assert(atbus_match_accepts(m, &node));
    ok(atbus_record_map_set(&m->metadata.labels, "area.zone_id", "02"));
    ck_assert(!atbus_match_accepts(m, &node));
    ok(atbus_record_map_set(&m->metadata.labels, "area.zone_id", "01"));
    ok(atbus_record_map_set(&m->metadata.labels, "area.district", "01"));
    ck_assert(!atbus_match_accepts(m, &node)); /* key absent */
    set(&m->metadata.labels.items[2].key, "example.com/tier");
    set(&m->metadata.labels.items[2].value, "");
    ck_assert(atbus_match_accepts(m, &node)); /* empty value matches "" */

    ok(atbus_record_map_set(&m->metadata.annotations, "owner",
                            "team a, room 2"));
    ck_assert(atbus_match_accepts(m, &node));
    ok(atbus_record_map_set(&m->metadata.annotations, "owner", "team b"));
    ck_assert(!atbus_match_accepts(m, &node));
    set(&m->metadata.annotations.items[0].value, "team a, room 2");

    set(&m->host.hostname, "node-7");
    ck_assert(atbus_match_accepts(m, &node));
    m->host.pid = 4242;
    ck_assert(atbus_match_accepts(m, &node));
    m->host.pid = 1;
    ck_assert(!atbus_match_accepts(m, &node));
    m->host.pid = 0;
    set(&m->host.hostname, "node-8");
    ck_assert(!atbus_match_accepts(m, &node));

    /* A given field never matches a node that lacks it. */
    atbus_record bare;
    disc_node(&bare, "bare", NULL, NULL);
    atbus_match *k = &gateway(&holder, 2, "mem://y", NULL)->match;
    set(&k->metadata.kind, "app");
    ck_assert(!atbus_match_accepts(k, &bare));
    ck_assert(!atbus_match_accepts(NULL, &bare));
    ck_assert(!atbus_match_accepts(k, NULL));
    atbus_record_fini(&bare);
    atbus_record_fini(&holder);
    atbus_record_fini(&node);
}
END_TEST

START_TEST(test_same_host_and_process)
{
    atbus_record a;
    atbus_record b;
    disc_node(&a, "a", "ns1", NULL);
    disc_node(&b, "b", "ns1", NULL);
    ck_assert(!atbus_same_host(&a, &b)); /* hostnames unknown */
    set(&a.host.hostname, "h1");
    set(&b.host.hostname, "h1");
    ck_assert(atbus_same_host(&a, &b));
    ck_assert(!atbus_same_process(&a, &b)); /* pids unknown */
    a.host.pid = 10;
    b.host.pid = 10;
    ck_assert(atbus_same_process(&a, &b));
    b.host.pid = 11;
    ck_assert(!atbus_same_process(&a, &b));
    /* A hostname repeats across namespaces (pods): not the same host. */
    set(&b.metadata.namespace_name, "ns2");
    b.host.pid = 10;
    ck_assert(!atbus_same_host(&a, &b));
    ck_assert(!atbus_same_process(&a, &b));
    set(&a.metadata.namespace_name, NULL);
    ck_assert(!atbus_same_host(&a, &b));
    set(&b.metadata.namespace_name, NULL);
    ck_assert(atbus_same_host(&a, &b));
    set(&b.host.hostname, "h2");
    ck_assert(!atbus_same_host(&a, &b));
    ck_assert(!atbus_same_host(NULL, &b));
    atbus_record_fini(&a);
    atbus_record_fini(&b);
}
END_TEST

START_TEST(test_gateway_priority_and_match)
{
    atbus_record src;
    atbus_record dst;
    disc_node(&src, "src", "ns1", "app");
    disc_node(&dst, "dst", "ns2", "relay");
    /* Listed out of order: priority decides, lower first. */
    atbus_gateway *g = gateway(&dst, 5, "ipv4://10.0.0.5:1", NULL);
    g = gateway(&dst, 2, "ipv4://10.0.0.2:1", NULL);
    set(&g->match.metadata.kind, "relay"); /* refuses src */
    gateway(&dst, 3, "ipv4://10.0.0.3:1", NULL);
    gateway(&dst, 3, "ipv4://10.0.0.33:1", NULL); /* tie: later */
    atbus_gateway_choice c;
    ok(atbus_select_gateway(&src, &dst, NULL, 0, &c));
    ck_assert_uint_eq(c.gateway_index, 2);
    ck_assert_str_eq(c.address, "ipv4://10.0.0.3:1");
    ck_assert_ptr_eq(c.gateway, &dst.gateways.items[2]);
    ck_assert_int_eq(c.scheme, ATBUS_SCHEME_IPV4);

    /* Accepted by the priority-2 gateway once src is a relay. */
    set(&src.metadata.kind, "relay");
    ok(atbus_select_gateway(&src, &dst, NULL, 0, &c));
    ck_assert_uint_eq(c.gateway_index, 1);

    /* Nothing accepts: no route. */
    for (size_t i = 0; i < dst.gateways.count; i++) {
        set(&dst.gateways.items[i].match.metadata.namespace_name, "ns9");
    }
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, NULL, 0, &c),
                     ATBUS_ENOROUTE);
    ck_assert_ptr_null(c.gateway);
    atbus_record_fini(&src);
    atbus_record_fini(&dst);
}
END_TEST

START_TEST(test_gateway_schemes_and_reach)
{
    atbus_record src;
    atbus_record dst;
    disc_node(&src, "src", "ns1", "app");
    disc_node(&dst, "dst", "ns1", "app");
    set(&src.host.hostname, "h1");
    set(&dst.host.hostname, "h2");
    src.host.pid = 7;
    dst.host.pid = 7;
    /* Priority 0: local channels only; priority 1: the network. */
    gateway(&dst, 0, "mem://dst", "shm://dst");
    gateway(&dst, 0, "unix:///run/dst.sock", NULL);
    gateway(&dst, 1, "udp://10.0.0.2:7001", "ipv4://10.0.0.2:7000");
    atbus_gateway_choice c;

    /* Another host: the local gateways are skipped, not a dead end. */
    ok(atbus_select_gateway(&src, &dst, NULL, 0, &c));
    ck_assert_str_eq(c.address, "ipv4://10.0.0.2:7000");
    ck_assert_uint_eq(c.address_index, 1);
    /* The caller's preference order decides within a gateway. */
    enum atbus_scheme udp_first[] = {ATBUS_SCHEME_UDP, ATBUS_SCHEME_IPV4};
    ok(atbus_select_gateway(&src, &dst, udp_first, 2, &c));
    ck_assert_str_eq(c.address, "udp://10.0.0.2:7001");
    enum atbus_scheme v6_only[] = {ATBUS_SCHEME_IPV6};
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, v6_only, 1, &c),
                     ATBUS_ENOROUTE);

    /* Same host: shm, not mem (another process). */
    set(&dst.host.hostname, "h1");
    dst.host.pid = 8;
    ok(atbus_select_gateway(&src, &dst, NULL, 0, &c));
    ck_assert_str_eq(c.address, "shm://dst");
    enum atbus_scheme unix_first[] = {ATBUS_SCHEME_UNIX, ATBUS_SCHEME_SHM};
    ok(atbus_select_gateway(&src, &dst, unix_first, 2, &c));
    /* The first gateway still comes first: it has a usable shm address. */
    ck_assert_str_eq(c.address, "shm://dst");
    enum atbus_scheme unix_only[] = {ATBUS_SCHEME_UNIX};
    ok(atbus_select_gateway(&src, &dst, unix_only, 1, &c));
    ck_assert_str_eq(c.address, "unix:///run/dst.sock");
    ck_assert_uint_eq(c.gateway_index, 1);

    /* Same process: mem. */
    dst.host.pid = 7;
    ok(atbus_select_gateway(&src, &dst, NULL, 0, &c));
    ck_assert_str_eq(c.address, "mem://dst");
    ck_assert_int_eq(c.scheme, ATBUS_SCHEME_MEM);

    /* Clients never dial; groups are not dialled; schemes are checked. */
    src.type = ATBUS_RECORD_CLIENT;
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, NULL, 0, &c),
                     ATBUS_EPERM);
    src.type = ATBUS_RECORD_NODE;
    dst.type = ATBUS_RECORD_GROUP;
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, NULL, 0, &c),
                     ATBUS_EINVAL);
    dst.type = ATBUS_RECORD_NODE;
    enum atbus_scheme bogus[] = {(enum atbus_scheme)42};
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, bogus, 1, &c),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atbus_select_gateway(NULL, &dst, NULL, 0, &c),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atbus_select_gateway(&src, &dst, NULL, 0, NULL),
                     ATBUS_EINVAL);
    atbus_record_fini(&src);
    atbus_record_fini(&dst);
}
END_TEST

/* ---- the two topologies ---- */

static atbus_registry *
load(const char *file)
{
    atbus_registry *reg = NULL;
    ok(atbus_registry_new(&reg));
    atbus_load_result res;
    int rc = atbus_registry_load_yaml(reg, disc_data(file), &res);
    ck_assert_msg(rc == ATBUS_OK, "%s:%zu: %s: %s", file, res.first.line,
                  res.first.path, res.first.reason);
    ck_assert_uint_eq(res.skipped, 0);
    return reg;
}

static const atbus_record *
get(atbus_registry *reg, const char *name)
{
    const atbus_record *rec = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, name, &rec));
    return rec;
}

/* dials checks which gateway (by priority) and address src uses for dst;
 * NULL address: no route. */
static void
dials(atbus_registry *reg, const char *src, const char *dst, int priority,
      const char *address)
{
    atbus_gateway_choice c;
    int rc = atbus_select_gateway(get(reg, src), get(reg, dst), NULL, 0, &c);
    if (address == NULL) {
        ck_assert_msg(rc == ATBUS_ENOROUTE, "%s -> %s: %s", src, dst,
                      rc == ATBUS_OK ? c.address : atbus_err_name(rc));
        return;
    }
    ck_assert_msg(rc == ATBUS_OK, "%s -> %s: %s", src, dst, atbus_err_name(rc));
    ck_assert_int_eq(c.gateway->priority, priority);
    ck_assert_str_eq(c.address, address);
}

static void
relay_of(atbus_registry *reg, const char *node, const char *relay)
{
    const atbus_record *r = NULL;
    int rc = atbus_registry_select_relay(reg, get(reg, node), &r);
    if (relay == NULL) {
        ck_assert_int_eq(rc, ATBUS_ENOTFOUND);
        return;
    }
    ck_assert_msg(rc == ATBUS_OK, "%s: %s", node, atbus_err_name(rc));
    ck_assert_str_eq(r->name, relay);
}

START_TEST(test_topology_across_namespaces)
{
    atbus_registry *reg = load("cross_namespace.yaml");
    /* Inside ns1: direct, on the internal address. */
    dials(reg, "app-1.ns1", "app-3.ns1", 1, "ipv4://10.0.0.3:7000");
    dials(reg, "app-1.ns1", "relay-1.ns1", 1, "ipv4://10.0.1.1:7000");
    /* ns1 app -> ns2 app: never direct ... */
    dials(reg, "app-1.ns1", "app-2.ns2", 0, NULL);
    dials(reg, "app-1.ns1", "relay-2.ns2", 0, NULL);
    /* ... but app -> its relay -> (ingress) the other relay -> app. */
    relay_of(reg, "app-1.ns1", "relay-1.ns1");
    relay_of(reg, "app-3.ns1", "relay-1.ns1");
    relay_of(reg, "app-2.ns2", "relay-2.ns2");
    dials(reg, "relay-1.ns1", "relay-2.ns2", 2, "ipv4://172.16.0.2:7000");
    dials(reg, "relay-2.ns2", "relay-1.ns1", 2, "ipv4://172.16.0.1:7000");
    dials(reg, "relay-2.ns2", "app-2.ns2", 1, "ipv4://10.1.0.2:7000");
    /* Relays advertise no relay of their own here. */
    relay_of(reg, "relay-1.ns1", NULL);
    const atbus_record *g = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_GROUPS, "all-apps", &g));
    ck_assert_uint_eq(g->node_list.count, 3);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_topology_across_regions)
{
    atbus_registry *reg = load("cross_region.yaml");
    dials(reg, "app-1.ns1", "relay-1.ns1", 1, "ipv4://10.0.1.1:7000");
    dials(reg, "app-1.ns1", "app-2.ns2", 0, NULL);
    /* Regional relays hang under the transit relay and reach it on its
     * priority-3 gateway (IPv4 before UDP by default). */
    relay_of(reg, "app-1.ns1", "relay-1.ns1");
    relay_of(reg, "relay-1.ns1", "relay-0.transit");
    relay_of(reg, "relay-2.ns2", "relay-0.transit");
    relay_of(reg, "relay-0.transit", NULL);
    dials(reg, "relay-1.ns1", "relay-0.transit", 3, "ipv4://192.0.2.1:7000");
    dials(reg, "relay-2.ns2", "relay-0.transit", 3, "ipv4://192.0.2.1:7000");
    /* The transit relay reaches each region on its priority-3 gateway. */
    dials(reg, "relay-0.transit", "relay-1.ns1", 3, "ipv4://203.0.113.1:7000");
    dials(reg, "relay-0.transit", "relay-2.ns2", 3, "ipv4://198.51.100.2:7000");
    /* CN and US relays never accept each other. */
    dials(reg, "relay-1.ns1", "relay-2.ns2", 0, NULL);
    dials(reg, "relay-2.ns2", "relay-1.ns1", 0, NULL);
    dials(reg, "relay-2.ns2", "app-2.ns2", 1, "ipv4://10.1.0.2:7000");
    atbus_registry_free(reg);
}
END_TEST

/* ---- relay selection ---- */

START_TEST(test_relay_selection_rules)
{
    atbus_record app;
    atbus_record relays[5];
    disc_node(&app, "app-1.ns1", "ns1", "app");
    disc_node(&relays[0], "relay-a.ns1", "ns1", "relay");
    disc_node(&relays[1], "relay-b.ns1", "ns1", "relay");
    disc_node(&relays[2], "relay-c.ns2", "ns2", "relay"); /* other ns */
    disc_node(&relays[3], "relay-d.ns1", "ns1", "relay");
    relays[3].type = ATBUS_RECORD_CLIENT; /* clients never relay */
    disc_node(&relays[4], "app-9.ns1", "ns1", "app");
    const atbus_record *list[6] = {&relays[0], &relays[1], &relays[2],
                                   &relays[3], &relays[4], &app};
    size_t idx = 99;
    /* Nothing advertised: no relay. */
    ck_assert_int_eq(atbus_select_relay(&app, list, 6, &idx), ATBUS_ENOTFOUND);
    set(&app.advertise_relay.metadata.namespace_name, "ns1");
    set(&app.advertise_relay.metadata.kind, "relay");
    ok(atbus_select_relay(&app, list, 6, &idx));
    ck_assert_uint_lt(idx, 2);
    /* The winner has the higher score. */
    uint64_t sa = atbus_relay_score(app.name, "relay-a.ns1");
    uint64_t sb = atbus_relay_score(app.name, "relay-b.ns1");
    ck_assert_uint_eq(idx, sa > sb ? 0u : 1u);
    ck_assert(atbus_relay_accepts(&app, &relays[0]));
    ck_assert(!atbus_relay_accepts(&app, &relays[2]));
    ck_assert(!atbus_relay_accepts(&app, &relays[3]));
    ck_assert(!atbus_relay_accepts(&app, &app));
    /* By name: only that one. */
    set(&app.advertise_relay.name, "relay-b.ns1");
    ok(atbus_select_relay(&app, list, 6, &idx));
    ck_assert_uint_eq(idx, 1);
    set(&app.advertise_relay.name, "relay-c.ns2");
    ck_assert_int_eq(atbus_select_relay(&app, list, 6, &idx), ATBUS_ENOTFOUND);
    /* A node never picks itself, even when it matches. */
    set(&app.advertise_relay.name, NULL);
    set(&app.advertise_relay.metadata.kind, "app");
    ok(atbus_select_relay(&app, list, 6, &idx));
    ck_assert_uint_eq(idx, 4);
    ck_assert_int_eq(atbus_select_relay(&app, NULL, 1, &idx), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_select_relay(NULL, list, 6, &idx), ATBUS_EINVAL);
    ck_assert_uint_eq(atbus_relay_score(NULL, "x"), 0);
    /* Scores are stable: they are part of how a mesh agrees. */
    ck_assert_uint_eq(atbus_relay_score("app-1.ns1", "relay-a.ns1"),
                      atbus_relay_score("app-1.ns1", "relay-a.ns1"));
    ck_assert_uint_ne(atbus_relay_score("app-1.ns1", "relay-a.ns1"),
                      atbus_relay_score("app-2.ns1", "relay-a.ns1"));
    for (int i = 0; i < 5; i++) {
        atbus_record_fini(&relays[i]);
    }
    atbus_record_fini(&app);
}
END_TEST

#define MOVE_NODES 20000
#define MOVE_RELAYS_MAX 17

struct move_setup {
    atbus_record relays[MOVE_RELAYS_MAX];
    const atbus_record *list[MOVE_RELAYS_MAX];
    atbus_record node;
};

/* pick returns the relay index the node with this number gets among the
 * first n relays, with relay `gone` left out (-1: none). */
static size_t
pick(struct move_setup *s, size_t num, size_t n, int gone)
{
    char name[32];
    snprintf(name, sizeof(name), "app-%zu.ns1", num);
    set(&s->node.name, name);
    const atbus_record *list[MOVE_RELAYS_MAX];
    size_t map[MOVE_RELAYS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)i != gone) {
            map[k] = i;
            list[k++] = s->list[i];
        }
    }
    size_t idx = 0;
    ok(atbus_select_relay(&s->node, list, k, &idx));
    return map[idx];
}

/* movement measures, for n relays, the fraction of nodes that change
 * relay when relay `gone` leaves, and checks that only its nodes move. */
static double
movement(struct move_setup *s, size_t n, int gone, size_t *max_load)
{
    size_t moved = 0;
    size_t load[MOVE_RELAYS_MAX] = {0};
    for (size_t i = 0; i < MOVE_NODES; i++) {
        size_t before = pick(s, i, n, -1);
        size_t after = pick(s, i, n, gone);
        load[before]++;
        if (before != after) {
            ck_assert_int_eq((int)before, gone);
            moved++;
        }
    }
    *max_load = 0;
    for (size_t i = 0; i < n; i++) {
        *max_load = load[i] > *max_load ? load[i] : *max_load;
    }
    return (double)moved / MOVE_NODES;
}

START_TEST(test_relay_movement_fraction)
{
    struct move_setup s;
    for (size_t i = 0; i < MOVE_RELAYS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof(name), "relay-%zu.ns1", i);
        disc_node(&s.relays[i], name, "ns1", "relay");
        s.list[i] = &s.relays[i];
    }
    disc_node(&s.node, "app", "ns1", "app");
    set(&s.node.advertise_relay.metadata.kind, "relay");

    static const size_t sizes[] = {2, 4, 8, 16};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        size_t max_load = 0;
        double f = movement(&s, n, (int)(n / 2), &max_load);
        double expect = 1.0 / (double)n;
        printf("relay movement: %zu relays, one leaves: %.4f of %d nodes "
               "moved (1/N = %.4f); busiest relay %.3f of the mean\n",
               n, f, MOVE_NODES, expect,
               (double)max_load * (double)n / MOVE_NODES);
        ck_assert_msg(f > expect * 0.85 && f < expect * 1.15,
                      "%zu relays: %.4f moved", n, f);
        ck_assert_msg((double)max_load * (double)n / MOVE_NODES < 1.1,
                      "%zu relays: unbalanced", n);
    }
    /* A relay joining takes about 1/(N+1), and only for itself. */
    size_t moved = 0;
    for (size_t i = 0; i < MOVE_NODES; i++) {
        size_t before = pick(&s, i, 16, -1);
        size_t after = pick(&s, i, 17, -1);
        if (before != after) {
            ck_assert_uint_eq(after, 16);
            moved++;
        }
    }
    double f = (double)moved / MOVE_NODES;
    printf("relay movement: 16 relays, one joins: %.4f moved (1/17 = "
           "%.4f)\n",
           f, 1.0 / 17);
    ck_assert(f > 0.85 / 17 && f < 1.15 / 17);
    for (size_t i = 0; i < MOVE_RELAYS_MAX; i++) {
        atbus_record_fini(&s.relays[i]);
    }
    atbus_record_fini(&s.node);
}
END_TEST

static Suite *
match_suite(void)
{
    Suite *s = suite_create("match");
    TCase *tc = atb_test_case("match", 120);
    tcase_add_test(tc, test_match_fields_and_subsets);
    tcase_add_test(tc, test_same_host_and_process);
    tcase_add_test(tc, test_gateway_priority_and_match);
    tcase_add_test(tc, test_gateway_schemes_and_reach);
    tcase_add_test(tc, test_topology_across_namespaces);
    tcase_add_test(tc, test_topology_across_regions);
    tcase_add_test(tc, test_relay_selection_rules);
    tcase_add_test(tc, test_relay_movement_fraction);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(match_suite());
}
