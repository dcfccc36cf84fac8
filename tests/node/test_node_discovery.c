/*
 * The node driven by discovery records, with no atbus_node_connect call:
 * apps dial their relay by its record; a send by name dials the
 * destination when its gateway accepts the sender, and goes through the
 * relay when it does not (a gateway matched to another namespace); and,
 * against a real etcd, two nodes that only share an etcd find each other,
 * keep working while etcd is killed, and the view comes back after.
 */
#include <atbus/atbus.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd_server.h"
#include "common/clock.h"
#include "harness.h"
#include "testing.h"

#define WAIT_MS 20000

typedef struct dnode {
    const char *name;
    const char *ns;
    int relay;
    char url[160];
} dnode;

/* records_yaml writes the records of nodes: each listens on its url,
 * matched to its own namespace, except relays (anyone may dial them);
 * apps hang under relay-1. */
static void
records_yaml(const dnode *nodes, size_t n, char *out, size_t cap)
{
    size_t at = (size_t)snprintf(out, cap, "nodes:\n");
    for (size_t i = 0; i < n; i++) {
        char match[96] = "{}";
        if (!nodes[i].relay) {
            snprintf(match, sizeof(match), "{metadata: {namespace_name: %s}}",
                     nodes[i].ns);
        }
        at += (size_t)snprintf(
            out + at, cap - at,
            "  - name: %s\n"
            "    host: {hostname: test-host, pid: %d}\n"
            "    metadata: {namespace_name: %s, kind: %s}\n"
            "    gateways:\n"
            "      - {priority: 1, addresses: [\"%s\"], match: %s}\n",
            nodes[i].name, (int)getpid(), nodes[i].ns,
            nodes[i].relay ? "relay" : "app", nodes[i].url, match);
    }
    at += (size_t)snprintf(out + at, cap - at, "routes:\n");
    for (size_t i = 0; i < n; i++) {
        if (!nodes[i].relay) {
            at += (size_t)snprintf(out + at, cap - at,
                                   "  - {name: %s, upstreams: [relay-1]}\n",
                                   nodes[i].name);
        }
    }
}

/* self_record finds name's record in reg. */
static const atbus_record *
self_record(atbus_registry *reg, const char *name)
{
    const atbus_record *rec;
    ck_assert_int_eq(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, name, &rec),
                     ATBUS_OK);
    return rec;
}

static void
start_node(hnode *h, const dnode *d)
{
    atbus_node_config cfg;
    h_config(&cfg, d->name);
    cfg.relay = d->relay;
    if (!d->relay) {
        cfg.upstreams[cfg.upstream_count++] = "relay-1";
    }
    h_start(h, &cfg, d->url);
}

START_TEST(test_registry_dials_and_routes)
{
    dnode d[] = {
        {"relay-1", "transit", 1, ""},
        {"app-a", "ns1", 0, ""},
        {"app-b", "ns1", 0, ""},
        {"app-c", "ns2", 0, ""},
    };
    enum { N = sizeof(d) / sizeof(d[0]) };
    for (size_t i = 0; i < N; i++) {
        h_url(T_IPV4, d[i].url, sizeof(d[i].url));
    }
    static char yaml[8192];
    records_yaml(d, N, yaml, sizeof(yaml));
    atbus_registry *reg;
    ck_assert_int_eq(atbus_registry_new(&reg), ATBUS_OK);
    atbus_load_result res;
    ck_assert_int_eq(
        atbus_registry_load_yaml_string(reg, yaml, strlen(yaml), &res),
        ATBUS_OK);
    hnode h[N];
    hnode *all[N];
    for (size_t i = 0; i < N; i++) {
        start_node(&h[i], &d[i]);
        all[i] = &h[i];
        ck_assert_int_eq(atbus_node_follow_registry(
                             h[i].node, reg, self_record(reg, d[i].name)),
                         ATBUS_OK);
    }
    /* Each app found relay-1 by its record. */
    ck_assert(h_pump(all, N, &h[0].peers_up, 3, WAIT_MS));

    /* Same namespace: app-b's gateway accepts app-a, so app-a dials it. */
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(h[1].node, "app-b", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(h_pump(all, N, &h[2].messages, 1, WAIT_MS));
    atbus_peer_info info;
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    while (atbus_node_peer(h[1].node, "app-b", &info) != ATBUS_OK &&
           atb_clock_us() < end) {
        h_pump_ms(all, N, 1);
    }
    ck_assert_int_eq(atbus_node_peer(h[1].node, "app-b", &info), ATBUS_OK);
    ck_assert_uint_ge(info.connections, 1);
    atbus_next_hop hop;
    ck_assert_int_eq(atbus_node_next_hop(h[1].node, "app-b", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_DIRECT);

    /* Another namespace: app-c's gateway refuses app-a; relay-1 carries
     * the messages, and no direct connection is made. */
    for (uint64_t i = 0; i < 50; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(
            atbus_node_send(h[1].node, "app-c", 1, msg, sizeof(msg)), ATBUS_OK);
    }
    ck_assert(h_pump(all, N, &h[3].messages, 50, WAIT_MS));
    ck_assert_int_eq(h[3].bad, 0);
    ck_assert_int_eq(atbus_node_next_hop(h[1].node, "app-c", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_VIA_UPSTREAM);
    ck_assert_str_eq(hop.peer, "relay-1");
    atbus_relation rel;
    ck_assert_int_eq(atbus_node_relation(h[1].node, "app-a", "app-c", &rel),
                     ATBUS_OK);
    ck_assert_int_eq(rel, ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(h[3].peers_up, 1); /* only relay-1 */
    for (size_t i = N; i-- > 0;) {
        atbus_node_free(h[i].node);
    }
    atbus_registry_free(reg);
}
END_TEST

/* ---- with a real etcd ---- */

static void
etcd_node(hnode *h, const char *name, const char *url, const char *endpoint,
          atbus_registry **reg)
{
    atbus_node_config cfg;
    h_config(&cfg, name);
    h_start(h, &cfg, url);
    ck_assert_int_eq(atbus_registry_new(reg), ATBUS_OK);
    atbus_record self;
    atbus_record_init(&self);
    self.type = ATBUS_RECORD_NODE;
    ck_assert_int_eq(atbus_record_set_string(&self.name, name), ATBUS_OK);
    ck_assert_int_eq(
        atbus_record_set_string(&self.metadata.namespace_name, "ns1"),
        ATBUS_OK);
    atbus_gateway *gw;
    ck_assert_int_eq(atbus_record_add_gateway(&self, 1, &gw), ATBUS_OK);
    ck_assert_int_eq(atbus_record_list_add(&gw->addresses, url), ATBUS_OK);
    ck_assert_int_eq(
        atbus_node_use_etcd(h->node, endpoint, "/atbus-test", *reg, &self),
        ATBUS_OK);
    atbus_record_fini(&self);
}

static int
wait_status(hnode **nodes, int n, atbus_node *node, int want_synced)
{
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    while (atb_clock_us() < end) {
        atbus_discovery_status st;
        if (atbus_node_discovery_status(node, &st) == ATBUS_OK &&
            (want_synced ? st.synced && st.published : st.stale)) {
            return 1;
        }
        h_pump_ms(nodes, n, 5);
    }
    return 0;
}

START_TEST(test_etcd_nodes_find_each_other)
{
    atb_test_etcd srv;
    ck_assert_int_eq(atb_test_etcd_start(&srv, 1, WAIT_MS), 0);
    const char *endpoint = srv.m[0].url;
    char url_a[160], url_b[160];
    h_url(T_IPV4, url_a, sizeof(url_a));
    h_url(T_IPV4, url_b, sizeof(url_b));
    hnode a, b;
    atbus_registry *reg_a, *reg_b;
    etcd_node(&a, "app-a", url_a, endpoint, &reg_a);
    etcd_node(&b, "app-b", url_b, endpoint, &reg_b);
    hnode *nodes[] = {&a, &b};
    ck_assert(wait_status(nodes, 2, a.node, 1));
    ck_assert(wait_status(nodes, 2, b.node, 1));
    /* b knows nothing of a but its name: etcd tells the address. */
    const atbus_record *rec;
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    while (atbus_registry_get(reg_b, ATBUS_REGISTRY_NODES, "app-a", &rec) !=
               ATBUS_OK &&
           atb_clock_us() < end) {
        h_pump_ms(nodes, 2, 5);
    }
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "app-a", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));

    /* etcd dies: the nodes keep serving from what they know. */
    atb_test_etcd_kill(&srv, 0, SIGKILL);
    ck_assert(wait_status(nodes, 2, b.node, 0));
    for (uint64_t i = 1; i < 100; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(b.node, "app-a", 1, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    ck_assert(h_pump(nodes, 2, &a.messages, 100, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    /* ... and the view is current again once it is back. */
    ck_assert_int_eq(atb_test_etcd_restart(&srv, 0, WAIT_MS), 0);
    ck_assert(wait_status(nodes, 2, b.node, 1));
    atbus_node_free(a.node);
    atbus_node_free(b.node);
    atbus_registry_free(reg_a);
    atbus_registry_free(reg_b);
    atb_test_etcd_stop(&srv);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("node_discovery");
    TCase *tc = atb_test_case("discovery", 300);
    tcase_add_test(tc, test_registry_dials_and_routes);
    int etcd = atb_test_etcd_available();
    if (etcd && atb_test_etcd_root_create() != 0) {
        printf("cannot create a directory for etcd data\n");
        return EXIT_FAILURE;
    }
    if (etcd) {
        tcase_add_test(tc, test_etcd_nodes_find_each_other);
    } else {
        printf("SKIP test_etcd_nodes_find_each_other: no etcd in PATH\n");
    }
    suite_add_tcase(s, tc);
    int rc = atb_test_run(s);
    if (etcd) {
        atb_test_etcd_root_remove();
    }
    return rc;
}
