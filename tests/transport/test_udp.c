/*
 * udp://: one frame per datagram over IPv4 and IPv6 loopback; peers become
 * connections on their first valid frame; replies go back to the sender;
 * the MTU is enforced; garbage datagrams are dropped and counted without
 * ending anything; ICMP port-unreachable ends a dialed connection; closing
 * the listener ends its accepted connections.
 */
#include <atbus/atbus.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop.h"
#include "testing.h"
#include "transport/transport.h"

static void
udp_url(int v6, char *buf, size_t n)
{
    if (v6) {
        snprintf(buf, n, "udp://[::1]:%d",
                 atb_test_free_port(AF_INET6, SOCK_DGRAM));
    } else {
        snprintf(buf, n, "udp://127.0.0.1:%d",
                 atb_test_free_port(AF_INET, SOCK_DGRAM));
    }
}

struct end {
    atb_conn *conn;
    int opened;
    int closed;
    int reason;
    uint64_t frames;
    uint64_t next_seq;
    int bad;
};

struct net {
    atb_loop *loop;
    atb_listener *listener;
    struct end client;
    struct end server;
    int accepted;
};

static void
end_open(atb_conn *c, void *arg)
{
    (void)c;
    ((struct end *)arg)->opened++;
}

static void
end_frame(atb_conn *c, const atb_frame_view *f, void *arg)
{
    (void)c;
    struct end *e = arg;
    uint64_t seq = 0;
    if (f->message_len >= 8) {
        memcpy(&seq, f->message, 8);
    }
    if (seq != e->next_seq) {
        e->bad++;
    }
    for (size_t i = 8; i < f->message_len; i++) {
        if (f->message[i] != (uint8_t)(seq ^ i)) {
            e->bad++;
            break;
        }
    }
    e->next_seq = seq + 1;
    e->frames++;
}

static void
end_close(atb_conn *c, int reason, void *arg)
{
    (void)c;
    struct end *e = arg;
    e->closed++;
    e->reason = reason;
}

static const atb_conn_cbs end_cbs = {
    .on_open = end_open,
    .on_frame = end_frame,
    .on_close = end_close,
};

static void
net_accept(atb_listener *l, atb_conn *c, void *arg)
{
    (void)l;
    struct net *n = arg;
    n->accepted++;
    n->server.conn = c;
    atb_conn_set_cbs(c, &end_cbs, &n->server);
}

static const atb_listener_cbs net_lcbs = {.on_accept = net_accept};

static void
net_until(struct net *n, const void *flag, int is64, uint64_t want)
{
    for (int i = 0; i < 5000; i++) {
        uint64_t v =
            is64 ? *(const uint64_t *)flag : (uint64_t) * (const int *)flag;
        if (v >= want) {
            return;
        }
        ck_assert_int_eq(atb_loop_poll(n->loop, 1), ATBUS_OK);
    }
    ck_abort_msg("condition not reached");
}

static size_t
frame_of(uint64_t seq, size_t mlen, uint8_t *out, size_t cap)
{
    uint8_t msg[2048];
    memcpy(msg, &seq, 8);
    for (size_t i = 8; i < mlen; i++) {
        msg[i] = (uint8_t)(seq ^ i);
    }
    size_t w;
    ck_assert_int_eq(atb_frame_wrap(3, msg, mlen, out, cap, &w), ATBUS_OK);
    return w;
}

static void
net_open(struct net *n, int v6)
{
    memset(n, 0, sizeof(*n));
    ck_assert_int_eq(atb_loop_new(&n->loop), ATBUS_OK);
    char url[80];
    udp_url(v6, url, sizeof(url));
    ck_assert_int_eq(atb_listen(n->loop, url, NULL, &net_lcbs, n, &n->listener),
                     ATBUS_OK);
    ck_assert_int_eq(
        atb_dial(n->loop, url, NULL, &end_cbs, &n->client, &n->client.conn),
        ATBUS_OK);
    net_until(n, &n->client.opened, 0, 1);
}

static void
net_close(struct net *n)
{
    atb_conn_free(n->client.conn);
    atb_conn_free(n->server.conn);
    atb_listener_close(n->listener);
    atb_loop_free(n->loop);
}

START_TEST(test_udp_exchange_and_reply)
{
    struct net n;
    net_open(&n, _i);
    uint8_t buf[2048];
    const uint64_t count = 2000;
    size_t max_msg = _i ? 1232 - 7 : 548 - 7; /* header 3 + hash 4 */
    for (uint64_t seq = 0; seq < count; seq++) {
        size_t mlen = 8 + (size_t)(seq * 7919 % (max_msg - 8 + 1));
        size_t flen = frame_of(seq, mlen, buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_OK);
        if (seq % 16 == 15) {
            atb_loop_poll(n.loop, 0);
        }
    }
    net_until(&n, &n.server.frames, 1, count);
    ck_assert_int_eq(n.accepted, 1);
    ck_assert_int_eq(n.server.bad, 0);
    /* The accepted connection answers the dialer. */
    for (uint64_t seq = 0; seq < 100; seq++) {
        size_t flen = frame_of(seq, 100, buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        ck_assert_int_eq(atb_conn_send(n.server.conn, &iov, 1), ATBUS_OK);
    }
    net_until(&n, &n.client.frames, 1, 100);
    ck_assert_int_eq(n.client.bad, 0);
    net_close(&n);
}
END_TEST

START_TEST(test_udp_mtu)
{
    struct net n;
    net_open(&n, _i);
    size_t mtu = _i ? 1232 : 548;
    uint8_t buf[2048];
    /* A frame of exactly the MTU goes; one byte more is refused. */
    size_t flen = frame_of(0, mtu - 7, buf, sizeof(buf));
    ck_assert_uint_eq(flen, mtu);
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_OK);
    flen = frame_of(1, mtu - 6, buf, sizeof(buf));
    iov.iov_len = flen;
    ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_EMSGSIZE);
    net_until(&n, &n.server.frames, 1, 1);
    net_close(&n);
}
END_TEST

START_TEST(test_udp_garbage_dropped)
{
    struct net n;
    net_open(&n, _i);
    uint8_t buf[2048];
    size_t flen = frame_of(0, 64, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_OK);
    net_until(&n, &n.server.frames, 1, 1);
    /* A raw socket sends junk and a frame with a bad hash: no connection
     * is made for it and the existing one is untouched. */
    int raw = socket(n.listener->url.addr.ss_family, SOCK_DGRAM, 0);
    ck_assert_int_ge(raw, 0);
    static const char junk[] = "not a frame";
    ck_assert_int_eq(sendto(raw, junk, sizeof(junk), 0,
                            (struct sockaddr *)&n.listener->url.addr,
                            n.listener->url.addr_len),
                     (ssize_t)sizeof(junk));
    buf[flen - 1] ^= 1;
    ck_assert_int_eq(sendto(raw, buf, flen, 0,
                            (struct sockaddr *)&n.listener->url.addr,
                            n.listener->url.addr_len),
                     (ssize_t)flen);
    buf[flen - 1] ^= 1;
    /* The client's second frame proves the listener kept going. */
    flen = frame_of(1, 64, buf, sizeof(buf));
    iov.iov_len = flen;
    ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_OK);
    net_until(&n, &n.server.frames, 1, 2);
    ck_assert_int_eq(n.accepted, 1);
    ck_assert_int_eq(n.server.closed, 0);
    ck_assert_int_eq(n.server.bad, 0);
    close(raw);
    net_close(&n);
}
END_TEST

START_TEST(test_udp_port_unreachable)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    char url[80];
    udp_url(_i, url, sizeof(url));
    struct end e = {0};
    ck_assert_int_eq(atb_dial(loop, url, NULL, &end_cbs, &e, &e.conn),
                     ATBUS_OK);
    for (int i = 0; i < 1000 && !e.opened; i++) {
        atb_loop_poll(loop, 1);
    }
    uint8_t buf[128];
    size_t flen = frame_of(0, 32, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    /* Nobody listens: the ICMP answer ends the connection. */
    for (int i = 0; i < 5000 && !e.closed; i++) {
        int rc = atb_conn_send(e.conn, &iov, 1);
        ck_assert(rc == ATBUS_OK || rc == ATBUS_ECLOSED);
        atb_loop_poll(loop, 1);
    }
    ck_assert_int_eq(e.closed, 1);
    ck_assert_int_eq(e.reason, ATBUS_ECONNREFUSED);
    atb_conn_free(e.conn);
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_udp_listener_close_ends_peers)
{
    struct net n;
    net_open(&n, _i);
    uint8_t buf[128];
    size_t flen = frame_of(0, 32, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(n.client.conn, &iov, 1), ATBUS_OK);
    net_until(&n, &n.server.frames, 1, 1);
    atb_listener_close(n.listener);
    n.listener = NULL;
    net_until(&n, &n.server.closed, 0, 1);
    ck_assert_int_eq(n.server.reason, ATBUS_ECLOSED);
    ck_assert_int_eq(atb_conn_send(n.server.conn, &iov, 1), ATBUS_ECLOSED);
    net_close(&n);
}
END_TEST

static Suite *
udp_suite(void)
{
    Suite *s = suite_create("udp_transport");
    TCase *tc = atb_test_case("udp_transport", 60);
    tcase_add_loop_test(tc, test_udp_exchange_and_reply, 0, 2);
    tcase_add_loop_test(tc, test_udp_mtu, 0, 2);
    tcase_add_loop_test(tc, test_udp_garbage_dropped, 0, 2);
    tcase_add_loop_test(tc, test_udp_port_unreachable, 0, 2);
    tcase_add_loop_test(tc, test_udp_listener_close_ends_peers, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(udp_suite());
}
