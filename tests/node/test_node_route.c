/*
 * Routing through the node API: messages to nodes without a connection
 * go through one, two and three relays, in order and checked; the hop
 * limit and an unreachable destination are reported back to the sender;
 * relations and next hops as a node sees them; and failover: the active
 * relay killed (SIGKILL, another process) while messages flow through it,
 * with a backup upstream configured, loses none of them.
 *
 * Every node learns the mesh's routes the way discovery would feed them
 * (atbus_node_route_set); relays also learn their children from the
 * children's registers.
 */
#include <atbus/atbus.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "harness.h"
#include "testing.h"

#define WAIT_MS 20000

/* One node of a test mesh: its name, relay or not, upstreams. */
typedef struct mesh_spec {
    const char *name;
    int relay;
    const char *ups[2];
    size_t nups;
} mesh_spec;

typedef struct mesh {
    hnode nodes[8];
    char urls[8][160];
    const mesh_spec *spec;
    size_t n;
} mesh;

static hnode *
mesh_node(mesh *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->spec[i].name, name) == 0) {
            return &m->nodes[i];
        }
    }
    ck_abort_msg("no node %s", name);
    return NULL;
}

static void
mesh_pump(mesh *m, int ms)
{
    hnode *all[8];
    for (size_t i = 0; i < m->n; i++) {
        all[i] = &m->nodes[i];
    }
    h_pump_ms(all, (int)m->n, ms);
}

/* mesh_wait pumps until *flag >= want. */
static int
mesh_wait(mesh *m, const int *flag, int want)
{
    hnode *all[8];
    for (size_t i = 0; i < m->n; i++) {
        all[i] = &m->nodes[i];
    }
    return h_pump(all, (int)m->n, flag, want, WAIT_MS);
}

/* mesh_start starts every node on a unix URL, has each dial its
 * upstreams, feeds every node the whole route table, and waits until
 * every link is up. max_hops applies to the relays. */
static void
mesh_start(mesh *m, const mesh_spec *spec, size_t n, uint32_t max_hops)
{
    memset(m, 0, sizeof(*m));
    m->spec = spec;
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        atbus_node_config cfg;
        h_config(&cfg, spec[i].name);
        cfg.relay = spec[i].relay;
        cfg.max_hops = max_hops;
        for (size_t k = 0; k < spec[i].nups; k++) {
            cfg.upstreams[cfg.upstream_count++] = spec[i].ups[k];
        }
        h_url(T_UNIX, m->urls[i], sizeof(m->urls[i]));
        h_start(&m->nodes[i], &cfg, m->urls[i]);
    }
    int links = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < spec[i].nups; k++) {
            for (size_t j = 0; j < n; j++) {
                if (strcmp(spec[j].name, spec[i].ups[k]) == 0) {
                    ck_assert_int_eq(
                        atbus_node_connect(m->nodes[i].node, m->urls[j]),
                        ATBUS_OK);
                    links++;
                }
            }
        }
        for (size_t j = 0; j < n; j++) {
            ck_assert_int_eq(atbus_node_route_set(m->nodes[i].node,
                                                  spec[j].name, spec[j].ups,
                                                  spec[j].nups, NULL),
                             ATBUS_OK);
        }
    }
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    int up;
    do {
        mesh_pump(m, 1);
        up = 0;
        for (size_t i = 0; i < n; i++) {
            up += m->nodes[i].peers_up;
        }
    } while (up < 2 * links && atb_clock_us() < end);
    ck_assert_int_eq(up, 2 * links);
}

static void
mesh_free(mesh *m)
{
    for (size_t i = 0; i < m->n; i++) {
        atbus_node_free(m->nodes[i].node);
    }
}

/* send_through sends n numbered messages from one node to another,
 * pumping the mesh while the window is full, then waits for all. */
static void
send_through(mesh *m, const char *from, const char *to, uint64_t n)
{
    hnode *src = mesh_node(m, from);
    hnode *dst = mesh_node(m, to);
    uint8_t msg[300];
    uint64_t base = dst->next_seq;
    int before = dst->messages;
    uint64_t sent = 0;
    uint64_t end = atb_clock_us() + 120 * 1000000ull;
    while (sent < n && atb_clock_us() < end) {
        size_t len = 8 + (size_t)(sent % 280);
        h_make_message(base + sent, msg, len);
        int rc = atbus_node_send(src->node, to, 1, msg, len);
        if (rc == ATBUS_EWOULDBLOCK) {
            mesh_pump(m, 1);
            continue;
        }
        ck_assert_msg(rc == ATBUS_OK, "send: %s", atbus_err_name(rc));
        sent++;
        if (sent % 200 == 0) {
            mesh_pump(m, 0);
        }
    }
    ck_assert_uint_eq(sent, n);
    ck_assert(mesh_wait(m, &dst->messages, before + (int)n));
    ck_assert_int_eq(dst->bad, 0);
    ck_assert_uint_eq(dst->next_seq, base + n);
}

static const mesh_spec one_relay[] = {
    {"relay-1", 1, {NULL}, 0},
    {"app-a", 0, {"relay-1"}, 1},
    {"app-b", 0, {"relay-1"}, 1},
};

START_TEST(test_one_relay)
{
    mesh m;
    mesh_start(&m, one_relay, 3, 16);
    send_through(&m, "app-a", "app-b", 20000);
    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(mesh_node(&m, "relay-1")->node, &st),
                     ATBUS_OK);
    ck_assert_uint_gt(st.frames_forwarded, 0);
    ck_assert_uint_eq(st.frames_unroutable, 0);
    /* As app-a sees it. */
    atbus_node *a = mesh_node(&m, "app-a")->node;
    atbus_relation rel;
    ck_assert_int_eq(atbus_node_relation(a, "app-a", "app-b", &rel), 0);
    ck_assert_int_eq(rel, ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(atbus_node_relation(a, "app-a", "relay-1", &rel), 0);
    ck_assert_int_eq(rel, ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(atbus_node_relation(a, "relay-1", "app-b", &rel), 0);
    ck_assert_int_eq(rel, ATBUS_RELATION_IMMEDIATE_DOWNSTREAM);
    atbus_next_hop hop;
    ck_assert_int_eq(atbus_node_next_hop(a, "app-b", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_VIA_UPSTREAM);
    ck_assert_int_eq(hop.state, ATBUS_HOP_READY);
    ck_assert_str_eq(hop.peer, "relay-1");
    ck_assert_int_eq(atbus_node_next_hop(a, "relay-1", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_DIRECT);
    /* Replies go back the same way. */
    hnode *b = mesh_node(&m, "app-b");
    hnode *ha = mesh_node(&m, "app-a");
    uint8_t msg[64];
    for (uint64_t i = 0; i < 100; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(b->node, "app-a", 2, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    ck_assert(mesh_wait(&m, &ha->messages, 100));
    ck_assert_int_eq(ha->bad, 0);
    mesh_free(&m);
}
END_TEST

/* Two relays (app-b under the root) and three (a chain both sides). */
static const mesh_spec chain[] = {
    {"relay-root", 1, {NULL}, 0},          {"relay-left", 1, {"relay-root"}, 1},
    {"relay-right", 1, {"relay-root"}, 1}, {"app-a", 0, {"relay-left"}, 1},
    {"app-b", 0, {"relay-right"}, 1},      {"app-c", 0, {"relay-root"}, 1},
};

START_TEST(test_two_and_three_relays)
{
    mesh m;
    mesh_start(&m, chain, 6, 16);
    send_through(&m, "app-a", "app-c", 5000); /* left, root */
    send_through(&m, "app-a", "app-b", 5000); /* left, root, right */
    atbus_node *a = mesh_node(&m, "app-a")->node;
    atbus_relation rel;
    ck_assert_int_eq(atbus_node_relation(a, "app-a", "relay-root", &rel), 0);
    ck_assert_int_eq(rel, ATBUS_RELATION_TRANSITIVE_UPSTREAM);
    ck_assert_int_eq(atbus_node_relation(a, "app-a", "app-b", &rel), 0);
    ck_assert_int_eq(rel, ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    for (size_t i = 0; i < 3; i++) {
        atbus_node_stats st;
        ck_assert_int_eq(atbus_node_get_stats(m.nodes[i].node, &st), 0);
        ck_assert_uint_gt(st.frames_forwarded, 0);
    }
    mesh_free(&m);
}
END_TEST

/* The root allows fewer hops than the path to app-b needs: the sender
 * hears TTL_EXPIRED and gives the messages up, with a count. */
START_TEST(test_hop_limit)
{
    mesh m;
    mesh_start(&m, chain, 6, 1);
    hnode *a = mesh_node(&m, "app-a");
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(a->node, "app-b", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(mesh_wait(&m, &a->undelivered, 1));
    ck_assert_int_eq(a->last_undelivered_err, ATBUS_ETTL);
    ck_assert_uint_eq(a->undelivered_messages, 1);
    atbus_node_stats st;
    ck_assert_int_eq(
        atbus_node_get_stats(mesh_node(&m, "relay-root")->node, &st), 0);
    ck_assert_uint_gt(st.frames_ttl_expired, 0);
    ck_assert_int_eq(mesh_node(&m, "app-b")->messages, 0);
    mesh_free(&m);
}
END_TEST

/* A destination the routes know but that is not connected anywhere: the
 * relay answers ROUTER_NOT_FOUND and the sender reports it. */
START_TEST(test_unreachable)
{
    mesh m;
    mesh_start(&m, one_relay, 3, 16);
    hnode *a = mesh_node(&m, "app-a");
    static const char *const under_relay[] = {"relay-1"};
    ck_assert_int_eq(
        atbus_node_route_set(a->node, "app-gone", under_relay, 1, NULL), 0);
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(a->node, "app-gone", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(mesh_wait(&m, &a->undelivered, 1));
    ck_assert_int_eq(a->last_undelivered_err, ATBUS_ENOROUTE);
    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(mesh_node(&m, "relay-1")->node, &st),
                     0);
    ck_assert_uint_gt(st.frames_unroutable, 0);
    /* A name this node's routes do not know goes up to its upstream,
     * which may know more; here it does not either, and says so. */
    ck_assert_int_eq(atbus_node_send(a->node, "app-unknown", 1, msg, 8),
                     ATBUS_OK);
    ck_assert(mesh_wait(&m, &a->undelivered, 2));
    ck_assert_int_eq(a->last_undelivered_err, ATBUS_ENOROUTE);
    /* A node with no upstream and no connection to the name refuses at
     * once: nothing is queued. */
    ck_assert_int_eq(atbus_node_send(mesh_node(&m, "relay-1")->node,
                                     "app-unknown", 1, msg, 8),
                     ATBUS_ENOTCONN);
    atbus_next_hop hop;
    ck_assert_int_eq(atbus_node_next_hop(a->node, "Not A Name", &hop),
                     ATBUS_EINVAL);
    /* A cycle reported by discovery is refused with the reason. */
    static const char *const under_b[] = {"app-b"};
    static const char *const under_a[] = {"app-a"};
    atbus_route_error err;
    ck_assert_int_eq(atbus_node_route_set(a->node, "app-a", under_b, 1, &err),
                     ATBUS_OK);
    ck_assert_int_eq(atbus_node_route_set(a->node, "app-b", under_a, 1, &err),
                     ATBUS_EROUTE_CYCLE);
    ck_assert_ptr_nonnull(strstr(err.text, "cycle"));
    mesh_free(&m);
}
END_TEST

/* The only relay goes away: messages waiting for it are given up after
 * peer_linger_ms and reported; when a relay is back under the same name,
 * the stream goes on after them (RESET_OFFSET) and new messages arrive,
 * none lost, none of the given-up ones replayed as new. */
START_TEST(test_relay_gone_and_back)
{
    hnode r, a, b;
    char url[160];
    h_url(T_UNIX, url, sizeof(url));
    atbus_node_config cfg;
    h_config(&cfg, "relay-1");
    cfg.relay = 1;
    h_start(&r, &cfg, url);
    static const char *const ups[] = {"relay-1"};
    h_config(&cfg, "app-a");
    cfg.upstreams[0] = ups[0];
    cfg.upstream_count = 1;
    cfg.peer_linger_ms = 300;
    h_start(&a, &cfg, NULL);
    h_config(&cfg, "app-b");
    cfg.upstreams[0] = ups[0];
    cfg.upstream_count = 1;
    h_start(&b, &cfg, NULL);
    ck_assert_int_eq(atbus_node_connect(a.node, url), 0);
    ck_assert_int_eq(atbus_node_connect(b.node, url), 0);
    ck_assert_int_eq(atbus_node_route_set(a.node, "app-b", ups, 1, NULL), 0);
    hnode *three[] = {&r, &a, &b};
    ck_assert(h_pump(three, 3, &r.peers_up, 2, WAIT_MS));
    uint8_t msg[100];
    for (uint64_t i = 0; i < 1000; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(a.node, "app-b", 1, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    ck_assert(h_pump(three, 3, &b.messages, 1000, WAIT_MS));
    atbus_stream_stats ss;
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    do {
        h_pump_ms(three, 3, 1);
        ck_assert_int_eq(atbus_node_stream_stats(a.node, "app-b", 1, &ss), 0);
    } while (ss.messages_unacked != 0 && atb_clock_us() < end);
    ck_assert_uint_eq(ss.messages_unacked, 0);

    atbus_node_free(r.node);
    hnode *two[] = {&a, &b};
    ck_assert(h_pump(two, 2, &a.peers_down, 1, WAIT_MS));
    for (uint64_t i = 1000; i < 1200; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(a.node, "app-b", 1, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    ck_assert(h_pump(two, 2, &a.undelivered, 1, WAIT_MS));
    ck_assert_int_eq(a.last_undelivered_err, ATBUS_ENOROUTE);
    ck_assert_uint_eq(a.undelivered_messages, 200);

    /* A relay under the same name and address again. */
    h_config(&cfg, "relay-1");
    cfg.relay = 1;
    h_start(&r, &cfg, url);
    ck_assert(h_pump(three, 3, &r.peers_up, 2, WAIT_MS));
    b.next_seq = 1200; /* 1000..1199 were given up */
    for (uint64_t i = 1200; i < 1500; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(a.node, "app-b", 1, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    ck_assert(h_pump(three, 3, &b.messages, 1300, WAIT_MS));
    h_pump_ms(three, 3, 50);
    ck_assert_int_eq(b.messages, 1300);
    ck_assert_int_eq(b.bad, 0);
    ck_assert_uint_eq(b.next_seq, 1500);
    atbus_node_free(a.node);
    atbus_node_free(b.node);
    atbus_node_free(r.node);
}
END_TEST

/* ---- failover across processes ---- */

/* relay_child runs relay-1 until killed (or a time limit passes). Never
 * calls Check: it shares the test's channel. */
static void
relay_child(const char *url)
{
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = "relay-1";
    cfg.relay = 1;
    cfg.ping_interval_ms = 50;
    cfg.peer_timeout_ms = 2000;
    cfg.listen[cfg.listen_count++] = url;
    atbus_node *node;
    if (atbus_node_new(&node, &cfg) != ATBUS_OK ||
        atbus_node_start(node) != ATBUS_OK) {
        _exit(2);
    }
    uint64_t end = atb_clock_us() + 120 * 1000000ull;
    while (atb_clock_us() < end) {
        atbus_node_poll(node, 10);
    }
    _exit(3);
}

START_TEST(test_failover_relay_killed)
{
    char url1[160], url2[160];
    h_url(T_UNIX, url1, sizeof(url1));
    h_url(T_UNIX, url2, sizeof(url2));
    pid_t pid = fork();
    if (pid == 0) {
        relay_child(url1);
    }
    ck_assert_int_gt(pid, 0);
    hnode r2, a, b;
    atbus_node_config cfg;
    h_config(&cfg, "relay-2");
    cfg.relay = 1;
    h_start(&r2, &cfg, url2);
    static const char *const ups[] = {"relay-1", "relay-2"};
    h_config(&cfg, "app-a");
    cfg.upstreams[0] = ups[0];
    cfg.upstreams[1] = ups[1];
    cfg.upstream_count = 2;
    h_start(&a, &cfg, NULL);
    h_config(&cfg, "app-b");
    cfg.upstreams[0] = ups[0];
    cfg.upstreams[1] = ups[1];
    cfg.upstream_count = 2;
    h_start(&b, &cfg, NULL);
    hnode *nodes[] = {&r2, &a, &b};
    /* The child may not listen yet: the targets redial until it does. */
    ck_assert_int_eq(atbus_node_connect(a.node, url1), 0);
    ck_assert_int_eq(atbus_node_connect(a.node, url2), 0);
    ck_assert_int_eq(atbus_node_connect(b.node, url1), 0);
    ck_assert_int_eq(atbus_node_connect(b.node, url2), 0);
    ck_assert_int_eq(atbus_node_route_set(a.node, "app-b", ups, 2, NULL), 0);
    ck_assert_int_eq(atbus_node_route_set(b.node, "app-a", ups, 2, NULL), 0);
    ck_assert(h_pump(nodes, 3, &a.peers_up, 2, WAIT_MS));
    ck_assert(h_pump(nodes, 3, &b.peers_up, 2, WAIT_MS));
    atbus_next_hop hop;
    ck_assert_int_eq(atbus_node_next_hop(a.node, "app-b", &hop), ATBUS_OK);
    ck_assert_str_eq(hop.peer, "relay-1");

    /* 100 000 messages; relay-1 dies a third of the way. */
    const uint64_t n = 100000;
    uint8_t msg[128];
    uint64_t sent = 0;
    int killed = 0;
    uint64_t end = atb_clock_us() + 120 * 1000000ull;
    while (sent < n && atb_clock_us() < end) {
        if (!killed && sent == n / 3) {
            ck_assert_int_eq(kill(pid, SIGKILL), 0);
            int status;
            ck_assert_int_eq(waitpid(pid, &status, 0), pid);
            killed = 1;
        }
        h_make_message(sent, msg, sizeof(msg));
        int rc = atbus_node_send(a.node, "app-b", 1, msg, sizeof(msg));
        if (rc == ATBUS_EWOULDBLOCK) {
            h_pump_ms(nodes, 3, 1);
            continue;
        }
        ck_assert_msg(rc == ATBUS_OK, "send: %s", atbus_err_name(rc));
        sent++;
        if (sent % 256 == 0) {
            h_pump_ms(nodes, 3, 0);
        }
    }
    ck_assert_uint_eq(sent, n);
    ck_assert(h_pump(nodes, 3, &b.messages, (int)n, 60000));
    h_pump_ms(nodes, 3, 50);
    ck_assert_int_eq(b.bad, 0);
    ck_assert_int_eq(b.messages, (int)n);
    ck_assert_uint_eq(b.next_seq, n);
    ck_assert_int_eq(a.undelivered, 0);
    ck_assert_int_eq(atbus_node_next_hop(a.node, "app-b", &hop), ATBUS_OK);
    ck_assert_str_eq(hop.peer, "relay-2");
    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(r2.node, &st), 0);
    ck_assert_uint_gt(st.frames_forwarded, 0);
    atbus_node_free(a.node);
    atbus_node_free(b.node);
    atbus_node_free(r2.node);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("node_route");
    TCase *tc = atb_test_case("route", 600);
    tcase_add_test(tc, test_one_relay);
    tcase_add_test(tc, test_two_and_three_relays);
    tcase_add_test(tc, test_hop_limit);
    tcase_add_test(tc, test_unreachable);
    tcase_add_test(tc, test_relay_gone_and_back);
    tcase_add_test(tc, test_failover_relay_killed);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
