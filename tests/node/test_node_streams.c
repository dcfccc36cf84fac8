/*
 * Streams through the node API, over real transports: udp:// made
 * reliable on a lossy, duplicating link; one stream striped over two TCP
 * connections, one of which dies mid-transfer; a connection lost and
 * redialed with messages unacknowledged; the send window and
 * on_writable; what is given up, and said so; FIN; the statistics.
 *
 * Every message is numbered and checked (h_make_message), so a loss, a
 * duplicate or a reordering fails the test.
 */
#include <atbus/atbus.h>

#include <errno.h>
#include <string.h>

#include "common/clock.h"
#include "fault_sys.h"
#include "harness.h"
#include "testing.h"

#define WAIT_MS 20000

/* send_numbered sends messages [first, first + n) of len bytes from b to
 * node-a, pumping both nodes while the window is full. Returns how many
 * went out. */
static uint64_t
send_numbered(hnode *a, hnode *b, uint64_t first, uint64_t n, size_t len,
              int pump_every)
{
    hnode *nodes[] = {a, b};
    uint8_t msg[4096];
    uint64_t sent = 0;
    uint64_t end = atb_clock_us() + 120 * 1000000ull;
    while (sent < n && atb_clock_us() < end) {
        h_make_message(first + sent, msg, len);
        int rc = atbus_node_send(b->node, "node-a", 1, msg, len);
        if (rc == ATBUS_EWOULDBLOCK || rc == ATBUS_ENOTCONN) {
            h_pump_ms(nodes, 2, 1);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        sent++;
        if (sent % (uint64_t)pump_every == 0) {
            h_pump_ms(nodes, 2, 0);
        }
    }
    return sent;
}

START_TEST(test_udp_lossy_link)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, T_UDP, NULL, url, sizeof(url), WAIT_MS);
    /* 5 % of datagrams lost, 1 % doubled, both directions (data and
     * acknowledgements). */
    atb_fault_datagram_loss(50, 10, 7);
    const uint64_t n = 100000;
    ck_assert_uint_eq(send_numbered(&a, &b, 0, n, 48, 64), n);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &a.messages, (int)n, 60000));
    unsigned long dropped, doubled;
    atb_fault_datagram_counts(&dropped, &doubled);
    atb_fault_reset();
    ck_assert_int_eq(a.bad, 0);
    ck_assert_uint_eq(a.next_seq, n);
    ck_assert_int_eq(a.messages, (int)n);
    ck_assert_uint_gt(dropped, 100);
    ck_assert_uint_gt(doubled, 10);
    atbus_conn_stats cs;
    ck_assert_int_eq(atbus_node_conn_stats(b.node, "node-a", 0, &cs), ATBUS_OK);
    ck_assert_str_eq(cs.channel, "udp");
    ck_assert_uint_gt(cs.retransmissions, 0);
    ck_assert_uint_gt(cs.losses, 0);
    ck_assert_uint_gt(cs.rtt_samples, 0);
    atbus_stream_stats ss;
    ck_assert_int_eq(atbus_node_stream_stats(b.node, "node-a", 1, &ss),
                     ATBUS_OK);
    ck_assert_uint_eq(ss.messages_out, n);
    ck_assert_int_eq(atbus_node_stream_stats(a.node, "node-b", 1, &ss),
                     ATBUS_OK);
    ck_assert_uint_eq(ss.messages_in, n);
    ck_assert_uint_gt(ss.duplicate_bytes, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* Two TCP connections to the same peer carry one stream in turn; one
 * dies with a reset while both are loaded. Nothing is lost or doubled. */
START_TEST(test_striped_tcp_one_dies)
{
    hnode a, b;
    char url1[160], url2[160];
    h_url(T_IPV4, url1, sizeof(url1));
    h_url(T_IPV4, url2, sizeof(url2));
    h_new(&a, "node-a", url1);
    ck_assert_int_eq(atbus_node_listen(a.node, url2), ATBUS_OK);
    h_new(&b, "node-b", NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url1), ATBUS_OK);
    ck_assert_int_eq(atbus_node_connect(b.node, url2), ATBUS_OK);
    hnode *nodes[] = {&a, &b};
    atbus_peer_info info;
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    do {
        h_pump_ms(nodes, 2, 1);
    } while ((atbus_node_peer(b.node, "node-a", &info) != ATBUS_OK ||
              info.connections < 2) &&
             atb_clock_us() < end);
    ck_assert_uint_eq(info.connections, 2);

    const uint64_t half = 150000;
    ck_assert_uint_eq(send_numbered(&a, &b, 0, half, 1000, 16), half);
    atbus_conn_stats c0, c1;
    ck_assert_int_eq(atbus_node_conn_stats(b.node, "node-a", 0, &c0), 0);
    ck_assert_int_eq(atbus_node_conn_stats(b.node, "node-a", 1, &c1), 0);
    ck_assert_uint_gt(c0.packets_out, 0);
    ck_assert_uint_gt(c1.packets_out, 0);
    /* The next write of any socket fails with a reset: that connection
     * dies with whatever it had queued. */
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 1, ECONNRESET, 0);
    ck_assert_uint_eq(send_numbered(&a, &b, half, half, 1000, 16), half);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_WRITEV), 1);
    atb_fault_reset();
    ck_assert(h_pump(nodes, 2, &a.messages, (int)(2 * half), WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    ck_assert_uint_eq(a.next_seq, 2 * half);
    /* The peer never went down: the other connection carried on. */
    ck_assert_int_eq(a.peers_down, 0);
    ck_assert_int_eq(b.peers_down, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* The only connection is lost with messages unacknowledged; it is dialed
 * again and they arrive, once, with those sent while it was away. */
START_TEST(test_reconnect_resends)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, T_UNIX, NULL, url, sizeof(url), WAIT_MS);
    hnode *nodes[] = {&a, &b};
    const uint64_t n = 50000;
    ck_assert_uint_eq(send_numbered(&a, &b, 0, n / 2, 200, 1000), n / 2);
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 1, ECONNRESET, 0);
    ck_assert(h_pump(nodes, 2, &b.peers_down, 1, WAIT_MS));
    atb_fault_reset();
    /* While the peer is away its streams wait (peer_linger_ms): sends
     * are queued, within the window, and leave when it is back. */
    ck_assert_uint_eq(send_numbered(&a, &b, n / 2, 100, 200, 1000), 100);
    ck_assert(h_pump(nodes, 2, &b.peers_up, 2, WAIT_MS));
    ck_assert_uint_eq(
        send_numbered(&a, &b, n / 2 + 100, n / 2 - 100, 200, 1000),
        n / 2 - 100);
    ck_assert(h_pump(nodes, 2, &a.messages, (int)n, WAIT_MS));
    h_pump_ms(nodes, 2, 50);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(a.messages, (int)n);
    ck_assert_uint_eq(a.next_seq, n);
    ck_assert_int_eq(b.undelivered, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* A receiver that is not polled fills the window: the sender is told to
 * wait, then that it may write, and nothing is lost. */
START_TEST(test_window_and_writable)
{
    hnode a, b;
    char url[160];
    atbus_node_config cfg;
    h_config(&cfg, "node-b");
    cfg.max_message = 16 * 1024;
    cfg.send_buffer_limit = 128 * 1024;
    h_pair(&a, &b, T_IPV4, &cfg, url, sizeof(url), WAIT_MS);
    hnode *nodes[] = {&a, &b};
    hnode *only_b[] = {&b};
    uint8_t msg[4096];
    uint64_t sent = 0;
    int rc;
    do {
        h_make_message(sent, msg, sizeof(msg));
        rc = atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg));
        if (rc == ATBUS_OK) {
            sent++;
        }
        h_pump_ms(only_b, 1, 0);
    } while (rc == ATBUS_OK && sent < 1000);
    ck_assert_int_eq(rc, ATBUS_EWOULDBLOCK);
    ck_assert_uint_lt(sent, 1000);
    ck_assert_int_eq(b.writable, 0);
    ck_assert(h_pump(nodes, 2, &b.writable, 1, WAIT_MS));
    ck_assert_uint_eq(send_numbered(&a, &b, sent, 200, sizeof(msg), 4), 200);
    ck_assert(h_pump(nodes, 2, &a.messages, (int)sent + 200, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(b.node, &st), ATBUS_OK);
    ck_assert_uint_gt(st.sends_would_block, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* A peer that goes away for good: after peer_linger_ms what it never
 * acknowledged is reported, with a count. */
START_TEST(test_undelivered_reported)
{
    hnode a, b;
    char url[160];
    atbus_node_config cfg;
    h_config(&cfg, "node-b");
    cfg.peer_linger_ms = 300;
    cfg.reconnect_min_ms = 5000; /* do not come back within the test */
    cfg.reconnect_max_ms = 5000;
    h_pair(&a, &b, T_UNIX, &cfg, url, sizeof(url), WAIT_MS);
    hnode *only_b[] = {&b};
    uint8_t msg[100];
    for (uint64_t i = 0; i < 50; i++) {
        h_make_message(i, msg, sizeof(msg));
        ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)),
                         ATBUS_OK);
    }
    /* node-a vanishes without reading or acknowledging. */
    atbus_node_free(a.node);
    ck_assert(h_pump(only_b, 1, &b.undelivered, 1, WAIT_MS));
    ck_assert_int_eq(b.last_undelivered_err, ATBUS_ETIMEDOUT);
    ck_assert_uint_gt(b.undelivered_messages, 0);
    ck_assert_uint_le(b.undelivered_messages, 50);
    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(b.node, &st), ATBUS_OK);
    ck_assert_uint_eq(st.messages_undelivered, b.undelivered_messages);
    /* The peer is gone entirely now. */
    atbus_peer_info info;
    ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_ENOTCONN);
    atbus_node_free(b.node);
}
END_TEST

START_TEST(test_finish_and_errors)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, T_MEM, NULL, url, sizeof(url), WAIT_MS);
    hnode *nodes[] = {&a, &b};
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 3, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert_int_eq(atbus_node_finish(b.node, "node-a", 3), ATBUS_OK);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 3, msg, sizeof(msg)),
                     ATBUS_ECLOSED);
    ck_assert_int_eq(atbus_node_finish(b.node, "node-a", 3), ATBUS_ECLOSED);
    ck_assert_int_eq(atbus_node_finish(b.node, "nobody", 3), ATBUS_ENOTCONN);
    ck_assert_int_eq(atbus_node_finish(b.node, "node-a", -1), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_node_send(b.node, "nobody", 3, msg, sizeof(msg)),
                     ATBUS_ENOTCONN);
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));
    atbus_stream_stats ss;
    ck_assert_int_eq(atbus_node_stream_stats(b.node, "node-a", 9, &ss),
                     ATBUS_ENOTFOUND);
    atbus_conn_stats cs;
    ck_assert_int_eq(atbus_node_conn_stats(b.node, "node-a", 5, &cs),
                     ATBUS_ENOTFOUND);
    ck_assert_int_eq(atbus_node_conn_stats(b.node, "nobody", 0, &cs),
                     ATBUS_ENOTCONN);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("node_streams");
    TCase *tc = atb_test_case("streams", 600);
    tcase_add_test(tc, test_finish_and_errors);
    tcase_add_test(tc, test_window_and_writable);
    tcase_add_test(tc, test_undelivered_reported);
    tcase_add_test(tc, test_reconnect_resends);
    tcase_add_test(tc, test_striped_tcp_one_dies);
    tcase_add_test(tc, test_udp_lossy_link);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
