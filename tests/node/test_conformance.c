/*
 * The conformance suite: the same cases against every channel, through
 * the node API.
 *
 *   refused       connecting where nobody listens is reported, retried
 *   dup_bind      a second listener on a live address is refused
 *   close_pending closing with sends queued: no crash, no leak, the peer
 *                 sees an orderly down and an in-order prefix
 *   limits        a message at max_message arrives intact, one byte more
 *                 is refused (udp too: the stream layer fragments it)
 *   million       1 000 000 small messages arrive in order, each checked
 *   killed        a peer process killed with SIGKILL mid-stream is
 *                 reported down; the survivor keeps serving another peer
 *   garbage       bytes that are not frames, from a raw socket: only that
 *                 connection ends, counted; the node serves on
 *
 * mem:// reaches only its own process, so "killed" does not apply to it;
 * its dead-peer path is the keep-alive timeout (test_node.c). shm:// has
 * no socket for raw garbage; its garbage records are fed by hand in
 * tests/transport/shm/test_shm_transport.c. udp:// is made reliable and
 * ordered by the stream layer, so it runs every case; a dead udp peer is
 * found by the keep-alive timeout, as there is no reset.
 */
#include <atbus/atbus.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "harness.h"
#include "testing.h"

#define WAIT_MS 10000

START_TEST(test_refused)
{
    hnode b;
    char url[160];
    h_url(_i, url, sizeof(url));
    h_new(&b, "node-b", NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_OK);
    hnode *nodes[] = {&b};
    if (_i == T_UDP) {
        /* Refusal of a datagram comes back as ICMP, or as silence that
         * the register deadline turns into a timeout. */
        ck_assert(h_pump(nodes, 1, &b.connect_errors, 1, WAIT_MS));
        ck_assert(b.last_connect_error == ATBUS_ECONNREFUSED ||
                  b.last_connect_error == ATBUS_ETIMEDOUT);
    } else {
        ck_assert(h_pump(nodes, 1, &b.connect_errors, 2, WAIT_MS));
        ck_assert_int_eq(b.last_connect_error, ATBUS_ECONNREFUSED);
    }
    ck_assert_int_eq(b.peers_up, 0);
    atbus_node_free(b.node);
}
END_TEST

START_TEST(test_dup_bind)
{
    hnode a;
    char url[160];
    h_url(_i, url, sizeof(url));
    h_new(&a, "node-a", url);
    atbus_node_config cfg;
    h_config(&cfg, "node-c");
    cfg.listen[cfg.listen_count++] = url;
    atbus_node *c;
    ck_assert_int_eq(atbus_node_new(&c, &cfg), ATBUS_OK);
    ck_assert_int_eq(atbus_node_start(c), ATBUS_EADDRINUSE);
    atbus_node_free(c);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_close_pending)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, _i, NULL, url, sizeof(url), WAIT_MS);
    uint8_t msg[512];
    int queued = 0;
    for (uint64_t seq = 0; seq < 20000; seq++) {
        h_make_message(seq, msg, sizeof(msg));
        if (atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)) !=
            ATBUS_OK) {
            break;
        }
        queued++;
    }
    ck_assert_int_gt(queued, 0);
    ck_assert_int_eq(atbus_node_close(b.node), ATBUS_OK);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)),
                     ATBUS_ECLOSED);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &a.peers_down, 1, WAIT_MS));
    /* A udp close message can be lost behind the flood; the keep-alive
     * then finds the peer gone. */
    ck_assert(a.last_down_reason == ATBUS_ECLOSED ||
              a.last_down_reason == ATBUS_ECONNRESET ||
              (_i == T_UDP && a.last_down_reason == ATBUS_ETIMEDOUT));
    /* Whatever arrived is a prefix of what was sent, in order. */
    ck_assert_int_le(a.messages, queued);
    ck_assert_int_eq(a.bad, 0);
    /* b's side ends when a has read to the end and closed too. */
    ck_assert(h_pump(nodes, 2, &b.peers_down, 1, WAIT_MS));
    ck_assert_int_eq(b.peers_down, 1);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_limits)
{
    hnode a, b;
    char url[160];
    atbus_node_config cfg;
    h_config(&cfg, "node-b");
    cfg.max_message = 256 * 1024;
    h_pair(&a, &b, _i, &cfg, url, sizeof(url), WAIT_MS);
    static uint8_t big[256 * 1024 + 1];
    /* Every channel carries max_message: udp:// through the stream
     * layer's fragments. */
    size_t limit = cfg.max_message;
    h_make_message(0, big, limit);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, big, limit),
                     ATBUS_OK);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, big, limit + 1),
                     ATBUS_EMSGSIZE);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));
    ck_assert_uint_eq(a.last_len, limit);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(a.peers_down, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_million)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, _i, NULL, url, sizeof(url), WAIT_MS);
    const uint64_t n = 1000000;
    uint64_t rng = 3;
    uint8_t msg[64];
    uint64_t sent = 0;
    hnode *nodes[] = {&a, &b};
    uint64_t end = atb_clock_us() + 300 * 1000000ull;
    while (sent < n && atb_clock_us() < end) {
        size_t len = 8 + (size_t)(atb_test_rng(&rng) % 57);
        h_make_message(sent, msg, len);
        int rc = atbus_node_send(b.node, "node-a", 1, msg, len);
        if (rc == ATBUS_EWOULDBLOCK) {
            h_pump_ms(nodes, 2, 0);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        sent++;
        if (sent % 256 == 0) {
            h_pump_ms(nodes, 2, 0);
        }
    }
    ck_assert_uint_eq(sent, n);
    ck_assert(h_pump(nodes, 2, &a.messages, (int)n, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    ck_assert_uint_eq(a.next_seq, n);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* child_stream is the peer process of "killed": it connects and sends
 * numbered messages until it is killed (or a time limit passes). */
static void
child_stream(const char *url)
{
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = "node-child";
    cfg.ping_interval_ms = 50;
    cfg.peer_timeout_ms = 1000;
    atbus_node *node;
    if (atbus_node_new(&node, &cfg) != ATBUS_OK ||
        atbus_node_connect(node, url) != ATBUS_OK) {
        _exit(2);
    }
    uint8_t msg[200];
    uint64_t seq = 0;
    uint64_t end = atb_clock_us() + 30 * 1000000ull;
    while (atb_clock_us() < end) {
        h_make_message(seq, msg, sizeof(msg));
        int rc = atbus_node_send(node, "node-a", 1, msg, sizeof(msg));
        if (rc == ATBUS_OK) {
            seq++;
            atbus_node_poll(node, 0);
        } else {
            atbus_node_poll(node, 1);
        }
    }
    _exit(3);
}

START_TEST(test_killed)
{
    hnode a, c;
    char url[160];
    h_url(_i, url, sizeof(url));
    atbus_node_config cfg;
    h_config(&cfg, "node-a");
    /* udp has no reset: the keep-alive finds the dead peer, so keep it
     * short. On shm a writer killed inside a record holds the ring's
     * head until stall recovery (ATB_SHM_RING_STALL_US, 2 s); the
     * timeout stays above that so the live peer behind it is not
     * mistaken for dead. */
    cfg.peer_timeout_ms = _i == T_SHM ? 4000 : 500;
    h_start(&a, &cfg, url);
    /* A second peer, in this process, that must keep working. */
    h_new(&c, "node-c", NULL);
    ck_assert_int_eq(atbus_node_connect(c.node, url), ATBUS_OK);
    hnode *nodes[] = {&a, &c};
    ck_assert(h_pump(nodes, 2, &c.peers_up, 1, WAIT_MS));

    pid_t pid = fork();
    if (pid == 0) {
        /* The child never calls Check (even a passing assertion writes
         * into the channel it shares with this test). */
        child_stream(url);
    }
    ck_assert_int_gt(pid, 0);
    ck_assert(h_pump(nodes, 2, &a.peers_up, 2, WAIT_MS));
    ck_assert(h_pump(nodes, 2, &a.messages, 2000, WAIT_MS));
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));

    ck_assert(h_pump(nodes, 2, &a.peers_down, 1, WAIT_MS));
    ck_assert_int_eq(a.last_down_reason,
                     _i == T_UDP ? ATBUS_ETIMEDOUT : ATBUS_ECONNRESET);
    /* Every channel, udp included, delivered an in-order prefix. */
    ck_assert_int_eq(a.bad, 0);
    a.bad = 0;
    /* The survivor and its other peer carry on. */
    int before = a.messages;
    uint8_t msg[100];
    a.next_seq = 0;
    for (uint64_t i = 0; i < 100; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(c.node, "node-a", 1, msg, sizeof(msg)),
                         ATBUS_OK);
        h_pump_ms(nodes, 2, 0);
    }
    ck_assert(h_pump(nodes, 2, &a.messages, before + 100, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(c.peers_down, 0);
    atbus_node_free(c.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_garbage)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, _i, NULL, url, sizeof(url), WAIT_MS);
    hnode *nodes[] = {&a, &b};
    atbus_node_stats before;
    atbus_node_get_stats(a.node, &before);
    int fd = h_raw_socket(_i, url);
    h_pump_ms(nodes, 2, 20);
    static const char junk[] = "\x07garbage that is not an atbus frame";
    ck_assert_int_eq(send(fd, junk, sizeof(junk), MSG_NOSIGNAL),
                     (ssize_t)sizeof(junk));
    if (_i != T_UDP) {
        /* The node ends that connection: the socket sees EOF or reset. */
        int closed = 0;
        uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
        while (!closed && atb_clock_us() < end) {
            h_pump_ms(nodes, 2, 1);
            char buf[256];
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            closed = r == 0 || (r < 0 && errno != EAGAIN);
        }
        ck_assert(closed);
        atbus_node_stats after;
        atbus_node_get_stats(a.node, &after);
        ck_assert_uint_eq(after.protocol_errors, before.protocol_errors + 1);
        ck_assert_uint_eq(after.connections_closed,
                          before.connections_closed + 1);
    } else {
        /* A datagram can come from anyone: it is dropped (and counted by
         * the transport), no connection is made or ended. */
        h_pump_ms(nodes, 2, 50);
        atbus_node_stats after;
        atbus_node_get_stats(a.node, &after);
        ck_assert_uint_eq(after.connections_accepted,
                          before.connections_accepted);
        ck_assert_uint_eq(after.connections_closed, before.connections_closed);
    }
    close(fd);
    /* The real peer is unaffected. */
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(a.peers_down, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("conformance");
    TCase *tc = atb_test_case("every channel", 600);
    tcase_add_loop_test(tc, test_refused, 0, T_KINDS);
    tcase_add_loop_test(tc, test_dup_bind, 0, T_KINDS);
    tcase_add_loop_test(tc, test_close_pending, 0, T_KINDS);
    tcase_add_loop_test(tc, test_limits, 0, T_KINDS);
    tcase_add_loop_test(tc, test_million, 0, T_KINDS);
    /* Channels that span processes. */
    tcase_add_loop_test(tc, test_killed, T_SHM, T_KINDS);
    /* Channels a raw socket can reach. */
    tcase_add_loop_test(tc, test_garbage, T_UNIX, T_KINDS);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
