/*
 * Nodes: register exchange and identity, messages by peer name on every
 * channel, rejections with close reasons (duplicate name, own name, bad
 * version, malformed register, data before register, garbage), keep-alive
 * RTT and dead-peer timeout, reconnect with backoff, channel choice, a
 * node driven from an outer poll() loop, send errors and backpressure.
 */
#include <atbus/atbus.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "harness.h"
#include "node/backoff.h"
#include "testing.h"
#include "wire/frame.h"
#include "wire/message.h"
#include "wire/packet.h"

#define WAIT_MS 5000

/* ---- exchange on every channel ---- */

START_TEST(test_exchange_every_channel)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, _i, NULL, url, sizeof(url), WAIT_MS);
    ck_assert_str_eq(a.last_up, "node-b");
    ck_assert_str_eq(b.last_up, "node-a");
    ck_assert_str_eq(a.last_channel, h_kind_name(_i));
    ck_assert_str_eq(b.last_channel, h_kind_name(_i));

    atbus_peer_info info;
    ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_OK);
    ck_assert_int_eq(info.pid, getpid());
    ck_assert_str_eq(info.namespace_name, "default");
    ck_assert_str_eq(info.type, "node");
    ck_assert_uint_eq(info.connections, 1);

    /* Datagrams stay below the IPv4 MTU; the rest go up to 3000 bytes. */
    size_t max_len = _i == T_UDP ? 400 : 3000;
    uint64_t n = _i == T_UDP ? 300 : 5000;
    uint64_t rng = 7;
    uint8_t buf[3000];
    hnode *nodes[] = {&a, &b};
    uint64_t sent = 0;
    uint64_t end = atb_clock_us() + 20 * 1000000ull;
    while (sent < n && atb_clock_us() < end) {
        size_t len = 8 + (size_t)(atb_test_rng(&rng) % (max_len - 8));
        h_make_message(sent, buf, len);
        int rc = atbus_node_send(b.node, "node-a", 1, buf, len);
        if (rc == ATBUS_EWOULDBLOCK) {
            h_pump_ms(nodes, 2, 1);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        ck_assert_int_eq(atbus_node_send(a.node, "node-b", 1, buf, len),
                         ATBUS_OK);
        sent++;
        /* Datagrams are paced so loopback buffers never overflow. */
        if (_i == T_UDP || sent % 64 == 0) {
            h_pump_ms(nodes, 2, 0);
        }
    }
    ck_assert_uint_eq(sent, n);
    uint64_t deadline = atb_clock_us() + WAIT_MS * 1000ull;
    while (((uint64_t)a.messages < n || (uint64_t)b.messages < n) &&
           atb_clock_us() < deadline) {
        h_pump_ms(nodes, 2, 1);
    }
    ck_assert_uint_eq((uint64_t)a.messages, n);
    ck_assert_uint_eq((uint64_t)b.messages, n);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(b.bad, 0);

    atbus_node_stats st;
    ck_assert_int_eq(atbus_node_get_stats(b.node, &st), ATBUS_OK);
    ck_assert_uint_eq(st.messages_out, n);
    ck_assert_uint_eq(st.messages_in, n);
    ck_assert_uint_eq(st.connections_dialed, 1);
    ck_assert_uint_eq(st.protocol_errors, 0);

    /* A closing node tells its peer: down with "shut down", not a reset,
     * even when the peer writes into the closed channel before it has read
     * the close message. */
    ck_assert_int_eq(atbus_node_close(a.node), ATBUS_OK);
    h_make_message(n, buf, 64);
    int rc = atbus_node_send(b.node, "node-a", 1, buf, 64);
    ck_assert_msg(rc == ATBUS_OK || rc == ATBUS_ECLOSED, "%s",
                  atbus_err_name(rc));
    ck_assert(h_pump(nodes, 2, &b.peers_down, 1, WAIT_MS));
    ck_assert_int_eq(b.last_down_reason, ATBUS_ECLOSED);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, buf, 8),
                     ATBUS_ENOTCONN);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* ---- identity ---- */

START_TEST(test_duplicate_name_rejected)
{
    hnode a, b, imp;
    char url[160];
    h_pair(&a, &b, T_IPV4, NULL, url, sizeof(url), WAIT_MS);
    /* Same name, another identity (hostname): refused, b unaffected. */
    atbus_node_config cfg;
    h_config(&cfg, "node-b");
    cfg.hostname = "elsewhere";
    h_start(&imp, &cfg, NULL);
    ck_assert_int_eq(atbus_node_connect(imp.node, url), ATBUS_OK);
    hnode *nodes[] = {&a, &b, &imp};
    ck_assert(h_pump(nodes, 3, &imp.connect_errors, 1, WAIT_MS));
    ck_assert_int_eq(imp.last_connect_error, ATBUS_EEXIST);
    ck_assert_int_eq(imp.peers_up, 0);
    atbus_node_stats st;
    atbus_node_get_stats(a.node, &st);
    ck_assert_uint_ge(st.registers_rejected, 1);
    ck_assert_int_eq(a.peers_up, 1);
    ck_assert_int_eq(a.peers_down, 0);
    uint8_t msg[16];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 3, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(h_pump(nodes, 3, &a.messages, 1, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    atbus_node_free(imp.node);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_own_name_rejected)
{
    hnode a;
    char url[160];
    h_url(T_UNIX, url, sizeof(url));
    h_new(&a, "node-a", url);
    ck_assert_int_eq(atbus_node_connect(a.node, url), ATBUS_OK);
    hnode *nodes[] = {&a};
    ck_assert(h_pump(nodes, 1, &a.connect_errors, 2, WAIT_MS));
    ck_assert_int_eq(a.last_connect_error, ATBUS_EEXIST);
    ck_assert_int_eq(a.peers_up, 0);
    atbus_node_free(a.node);
}
END_TEST

/* ---- raw peers that break the rules ---- */

/* raw_frame builds a one-fragment frame from a peer called "raw". */
static size_t
raw_frame(int64_t stream, int32_t type, const uint8_t *data, size_t len,
          uint8_t *out)
{
    atb_packet_desc d = {
        .source = "raw",
        .destination = "node-a",
        .stream_id = stream,
        .packet_type = type,
        .data_len = len,
    };
    size_t n;
    ck_assert_int_eq(atb_packet_prefix(&d, out, &n), ATBUS_OK);
    memcpy(out + n, data, len);
    atb_frame_seal(out, n + len);
    return n + len + ATB_FRAME_HASH_LEN;
}

static size_t
raw_register(const char *name, uint32_t version, uint8_t *out)
{
    atb_pb_register reg;
    atbus__protocol__register_data__init(&reg);
    reg.name = (char *)(uintptr_t)name;
    reg.pid = 4242;
    reg.hostname = (char *)(uintptr_t) "raw-host";
    reg.namespace_name = (char *)(uintptr_t) "default";
    reg.type = (char *)(uintptr_t) "node";
    reg.protocol_version = version;
    reg.protocol_minimal_version = version;
    uint8_t buf[512];
    size_t n = atbus__protocol__register_data__pack(&reg, buf);
    return raw_frame(-1, 2, buf, n, out);
}

/* raw_exchange sends frame bytes to a, then collects what a writes back
 * until a closes the socket. Returns the number of bytes read. */
static size_t
raw_exchange(hnode *a, const char *url, const uint8_t *frame, size_t len,
             uint8_t *in, size_t cap)
{
    int fd = h_raw_socket(T_IPV4, url);
    hnode *nodes[] = {a};
    h_pump_ms(nodes, 1, 20);
    ck_assert_int_eq(send(fd, frame, len, 0), (ssize_t)len);
    size_t got = 0;
    int eof = 0;
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    while (!eof && atb_clock_us() < end) {
        atbus_node_poll(a->node, 1);
        ssize_t r = recv(fd, in + got, cap - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            eof = 1;
        }
    }
    ck_assert_msg(eof, "the node did not close the connection");
    close(fd);
    return got;
}

/* close_reason_of finds the close message among the frames in buf. */
static int
close_reason_of(const uint8_t *buf, size_t len, char *detail, size_t n)
{
    int code = -1;
    while (len > 0) {
        atb_frame_view v;
        ck_assert_int_eq(atb_frame_parse(buf, len, 1 << 20, &v), ATBUS_OK);
        atb_pb_frame *msg;
        ck_assert_int_eq(
            atb_frame_message_unpack(v.message, v.message_len, &msg), ATBUS_OK);
        if (msg->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET &&
            (msg->packet->flags & ATB_PACKET_FLAG_FINISH_CONNECTION)) {
            atb_pb_content *c;
            ck_assert_int_eq(
                atb_packet_content_unpack(msg->packet->content.data,
                                          msg->packet->content.len, &c),
                ATBUS_OK);
            ck_assert_uint_eq(c->n_fragment, 1);
            ck_assert_ptr_nonnull(c->fragment[0]->close_reason);
            code = (int)c->fragment[0]->close_reason->code;
            snprintf(detail, n, "%s", c->fragment[0]->close_reason->message);
            atb_packet_content_free(c);
        }
        atb_frame_message_free(msg);
        buf += v.frame_len;
        len -= v.frame_len;
    }
    return code;
}

enum { RAW_VERSION, RAW_BAD_NAME, RAW_DATA_FIRST, RAW_GARBAGE, RAW_CASES };

START_TEST(test_raw_peer_rejected)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, T_IPV4, NULL, url, sizeof(url), WAIT_MS);
    uint8_t out[1024];
    size_t len = 0;
    switch (_i) {
    case RAW_VERSION:
        len = raw_register("raw-peer", 1, out);
        break;
    case RAW_BAD_NAME:
        len = raw_register("Raw_Peer", 3, out);
        break;
    case RAW_DATA_FIRST:
        len = raw_frame(5, 0, (const uint8_t *)"hello", 5, out);
        break;
    default:
        memcpy(out, "GET / HTTP/1.1\r\n\r\n", 18);
        len = 18;
        break;
    }
    atbus_node_stats before;
    atbus_node_get_stats(a.node, &before);
    uint8_t in[4096];
    size_t got = raw_exchange(&a, url, out, len, in, sizeof(in));
    char detail[256] = "";
    atbus_node_stats after;
    atbus_node_get_stats(a.node, &after);
    switch (_i) {
    case RAW_VERSION:
        ck_assert_int_eq(close_reason_of(in, got, detail, sizeof(detail)),
                         6 /* UNSUPPORTED_VERSION */);
        ck_assert_uint_eq(after.registers_rejected,
                          before.registers_rejected + 1);
        break;
    case RAW_BAD_NAME:
        ck_assert_int_eq(close_reason_of(in, got, detail, sizeof(detail)),
                         5 /* PROTOCOL_ERROR */);
        ck_assert_ptr_nonnull(strstr(detail, "register_data.name"));
        ck_assert_uint_eq(after.registers_rejected,
                          before.registers_rejected + 1);
        break;
    case RAW_DATA_FIRST:
        ck_assert_int_eq(close_reason_of(in, got, detail, sizeof(detail)),
                         5 /* PROTOCOL_ERROR */);
        ck_assert_ptr_nonnull(strstr(detail, "before register"));
        ck_assert_uint_eq(after.protocol_errors, before.protocol_errors + 1);
        break;
    default:
        /* Not even a frame: closed by the transport, counted here. */
        ck_assert_uint_eq(got, 0);
        ck_assert_uint_eq(after.protocol_errors, before.protocol_errors + 1);
        break;
    }
    /* The node and its real peer are unaffected. */
    ck_assert_int_eq(a.peers_down, 0);
    uint8_t msg[64];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* ---- keep-alive ---- */

START_TEST(test_rtt_measured)
{
    hnode a, b;
    char url[160];
    h_pair(&a, &b, T_UNIX, NULL, url, sizeof(url), WAIT_MS);
    hnode *nodes[] = {&a, &b};
    atbus_peer_info info = {.rtt_us = -1};
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    while (info.rtt_us < 0 && atb_clock_us() < end) {
        h_pump_ms(nodes, 2, 5);
        ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_OK);
    }
    ck_assert_int_ge(info.rtt_us, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_dead_peer_timeout)
{
    hnode a, b;
    char url[160];
    h_url(T_MEM, url, sizeof(url));
    atbus_node_config cfg;
    h_config(&cfg, "node-a");
    cfg.peer_timeout_ms = 200;
    h_start(&a, &cfg, url);
    h_new(&b, "node-b", NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_OK);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &a.peers_up, 1, WAIT_MS));
    /* b stops turning its loop: no pongs, no pings. */
    hnode *only_a[] = {&a};
    ck_assert(h_pump(only_a, 1, &a.peers_down, 1, WAIT_MS));
    ck_assert_int_eq(a.last_down_reason, ATBUS_ETIMEDOUT);
    atbus_node_stats st;
    atbus_node_get_stats(a.node, &st);
    ck_assert_uint_eq(st.peer_timeouts, 1);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* ---- reconnect ---- */

START_TEST(test_backoff_schedule)
{
    uint64_t rng = 1;
    const uint64_t min = 100000;
    const uint64_t max = 10000000;
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t d = min << (attempt < 20 ? attempt : 20);
        if (d > max) {
            d = max;
        }
        uint64_t lo = UINT64_MAX;
        uint64_t hi = 0;
        for (int i = 0; i < 200; i++) {
            uint64_t v = atb_backoff_delay_us(attempt, min, max, &rng);
            ck_assert_uint_ge(v, d / 2);
            ck_assert_uint_le(v, d);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        /* Jitter: 200 draws over [d/2, d] do not all coincide. */
        ck_assert_uint_lt(lo, hi);
    }
    /* Reproducible from the seed. */
    uint64_t s1 = 9;
    uint64_t s2 = 9;
    ck_assert_uint_eq(atb_backoff_delay_us(3, min, max, &s1),
                      atb_backoff_delay_us(3, min, max, &s2));
}
END_TEST

START_TEST(test_reconnect_with_backoff)
{
    hnode a, b;
    char url[160];
    h_url(T_IPV4, url, sizeof(url));
    h_new(&b, "node-b", NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_OK);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_EEXIST);
    /* Nothing listens: refused, again and again, with growing delays. */
    hnode *only_b[] = {&b};
    ck_assert(h_pump(only_b, 1, &b.connect_errors, 4, WAIT_MS));
    ck_assert_int_eq(b.last_connect_error, ATBUS_ECONNREFUSED);
    atbus_node_stats st;
    atbus_node_get_stats(b.node, &st);
    ck_assert_uint_ge(st.reconnects, 3);

    /* The listener appears: the next redial succeeds by itself. */
    h_new(&a, "node-a", url);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &b.peers_up, 1, WAIT_MS));

    /* The listener restarts: b sees it go and come back. */
    atbus_node_free(a.node);
    ck_assert(h_pump(only_b, 1, &b.peers_down, 1, WAIT_MS));
    ck_assert_int_eq(b.last_down_reason, ATBUS_ECLOSED);
    h_new(&a, "node-a", url);
    ck_assert(h_pump(nodes, 2, &b.peers_up, 2, WAIT_MS));

    ck_assert_int_eq(atbus_node_disconnect(b.node, url), ATBUS_OK);
    ck_assert_int_eq(atbus_node_disconnect(b.node, url), ATBUS_ENOTFOUND);
    ck_assert(h_pump(nodes, 2, &b.peers_down, 2, WAIT_MS));
    atbus_node_free(a.node);
    atbus_node_free(b.node);
}
END_TEST

/* ---- channel choice ---- */

START_TEST(test_best_channel_chosen)
{
    hnode a, b;
    char tcp[160], uds[160], mem[160];
    h_url(T_IPV4, tcp, sizeof(tcp));
    h_url(T_UNIX, uds, sizeof(uds));
    h_url(T_MEM, mem, sizeof(mem));
    atbus_node_config cfg;
    h_config(&cfg, "node-a");
    cfg.listen[cfg.listen_count++] = tcp;
    cfg.listen[cfg.listen_count++] = uds;
    cfg.listen[cfg.listen_count++] = mem;
    h_start(&a, &cfg, NULL);
    h_new(&b, "node-b", NULL);
    hnode *nodes[] = {&a, &b};
    atbus_peer_info info;

    ck_assert_int_eq(atbus_node_connect(b.node, tcp), ATBUS_OK);
    ck_assert(h_pump(nodes, 2, &b.peers_up, 1, WAIT_MS));
    ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_OK);
    ck_assert_str_eq(info.channel, "ipv4");

    /* Better channels take over as they come up; the peer stays up. */
    ck_assert_int_eq(atbus_node_connect(b.node, uds), ATBUS_OK);
    ck_assert_int_eq(atbus_node_connect(b.node, mem), ATBUS_OK);
    uint64_t end = atb_clock_us() + WAIT_MS * 1000ull;
    do {
        h_pump_ms(nodes, 2, 1);
        ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_OK);
    } while (info.connections < 3 && atb_clock_us() < end);
    ck_assert_uint_eq(info.connections, 3);
    ck_assert_str_eq(info.channel, "mem");
    ck_assert_int_eq(b.peers_up, 1);

    /* Messages take the best channel. */
    uint8_t msg[32];
    h_make_message(0, msg, sizeof(msg));
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg)),
                     ATBUS_OK);
    ck_assert(h_pump(nodes, 2, &a.messages, 1, WAIT_MS));

    /* Losing the best channel falls back to the next one. */
    ck_assert_int_eq(atbus_node_disconnect(b.node, mem), ATBUS_OK);
    end = atb_clock_us() + WAIT_MS * 1000ull;
    do {
        h_pump_ms(nodes, 2, 1);
        ck_assert_int_eq(atbus_node_peer(b.node, "node-a", &info), ATBUS_OK);
    } while (info.connections > 2 && atb_clock_us() < end);
    ck_assert_str_eq(info.channel, "unix");
    ck_assert_int_eq(b.peers_down, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* ---- an outer poll() loop drives the nodes ---- */

START_TEST(test_outer_poll_loop)
{
    hnode a, b;
    char url[160];
    h_url(T_IPV4, url, sizeof(url));
    h_new(&a, "node-a", url);
    h_new(&b, "node-b", NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_OK);
    const uint64_t n = 2000;
    uint64_t sent = 0;
    uint8_t msg[100];
    uint64_t end = atb_clock_us() + 20 * 1000000ull;
    while ((uint64_t)a.messages < n && atb_clock_us() < end) {
        if (b.peers_up && sent < n) {
            h_make_message(sent, msg, sizeof(msg));
            int rc = atbus_node_send(b.node, "node-a", 1, msg, sizeof(msg));
            ck_assert(rc == ATBUS_OK || rc == ATBUS_EWOULDBLOCK);
            sent += rc == ATBUS_OK;
        }
        /* Only the exported fd and timeout, as an application would. */
        struct pollfd fds[2] = {
            {.fd = atbus_node_fd(a.node), .events = POLLIN},
            {.fd = atbus_node_fd(b.node), .events = POLLIN},
        };
        int ta = atbus_node_timeout_ms(a.node);
        int tb = atbus_node_timeout_ms(b.node);
        int timeout = ta < 0 ? tb : (tb < 0 ? ta : (ta < tb ? ta : tb));
        if (b.peers_up && sent < n) {
            timeout = 0;
        }
        if (timeout < 0 || timeout > 100) {
            timeout = 100;
        }
        ck_assert_int_ge(poll(fds, 2, timeout), 0);
        ck_assert_int_eq(atbus_node_poll(a.node, 0), ATBUS_OK);
        ck_assert_int_eq(atbus_node_poll(b.node, 0), ATBUS_OK);
    }
    ck_assert_int_eq(a.peers_up, 1);
    ck_assert_uint_eq((uint64_t)a.messages, n);
    ck_assert_int_eq(a.bad, 0);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

/* ---- send results ---- */

START_TEST(test_send_errors_and_backpressure)
{
    hnode a, b;
    char url[160];
    h_url(T_UNIX, url, sizeof(url));
    atbus_node_config cfg;
    h_config(&cfg, "node-b");
    cfg.max_message = 64 * 1024;
    cfg.send_buffer_limit = 256 * 1024;
    h_new(&a, "node-a", url);
    h_start(&b, &cfg, NULL);
    ck_assert_int_eq(atbus_node_connect(b.node, url), ATBUS_OK);
    hnode *nodes[] = {&a, &b};
    ck_assert(h_pump(nodes, 2, &b.peers_up, 1, WAIT_MS));

    static uint8_t big[64 * 1024 + 1];
    ck_assert_int_eq(atbus_node_send(b.node, "nobody", 1, big, 8),
                     ATBUS_ENOTCONN);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", -1, big, 8),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, NULL, 8),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, big, sizeof(big)),
                     ATBUS_EMSGSIZE);
    /* At the limit it goes through. */
    h_make_message(0, big, sizeof(big) - 1);
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 1, big, sizeof(big) - 1),
                     ATBUS_OK);
    /* An empty message is a message too. */
    ck_assert_int_eq(atbus_node_send(b.node, "node-a", 2, big, 0), ATBUS_OK);
    ck_assert(h_pump(nodes, 2, &a.messages, 2, WAIT_MS));
    ck_assert_uint_eq(a.bytes, sizeof(big) - 1);
    ck_assert_int_eq(a.bad, 0);

    /* Fill the queue without letting a read: would-block, then writable. */
    uint64_t seq = 1;
    int rc;
    do {
        h_make_message(seq, big, 16 * 1024);
        rc = atbus_node_send(b.node, "node-a", 1, big, 16 * 1024);
        seq += rc == ATBUS_OK;
    } while (rc == ATBUS_OK && seq < 100000);
    ck_assert_int_eq(rc, ATBUS_EWOULDBLOCK);
    ck_assert(h_pump(nodes, 2, &b.writable, 1, WAIT_MS));
    ck_assert(h_pump(nodes, 2, &a.messages, (int)seq + 1, WAIT_MS));
    ck_assert_int_eq(a.bad, 0);
    atbus_node_stats st;
    atbus_node_get_stats(b.node, &st);
    ck_assert_uint_ge(st.sends_would_block, 1);
    atbus_node_free(b.node);
    atbus_node_free(a.node);
}
END_TEST

START_TEST(test_config_checked)
{
    atbus_node_config cfg;
    atbus_node *n = NULL;
    ck_assert_int_eq(atbus_node_config_default(NULL), ATBUS_EINVAL);
    h_config(&cfg, "Bad_Name");
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_EINVAL);
    h_config(&cfg, "ok");
    cfg.type = "server";
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_EINVAL);
    h_config(&cfg, "ok");
    cfg.peer_timeout_ms = cfg.ping_interval_ms;
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_EINVAL);
    h_config(&cfg, "ok");
    cfg.listen_count = 1;
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_EINVAL);
    h_config(&cfg, "ok");
    cfg.listen[cfg.listen_count++] = "tcp://nowhere";
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_OK);
    ck_assert_int_eq(atbus_node_start(n), ATBUS_ENOTSUP);
    ck_assert_int_eq(atbus_node_connect(n, "ipv4://1.2.3"), ATBUS_EADDRINVAL);
    atbus_node_free(n);
    h_config(&cfg, "cli");
    cfg.type = "client";
    ck_assert_int_eq(atbus_node_new(&n, &cfg), ATBUS_OK);
    ck_assert_int_eq(atbus_node_connect(n, "ipv4://127.0.0.1:1"), ATBUS_EPERM);
    atbus_node_free(n);
}
END_TEST

/* ---- out of memory ---- */

START_TEST(test_out_of_memory)
{
    /* Fail the nth allocation of creating, starting and connecting a node
     * for every n until it succeeds: each failure is reported as
     * ATBUS_ENOMEM and leaks nothing (the test case checks). */
    char url[160];
    h_url(T_IPV4, url, sizeof(url));
    int succeeded = 0;
    for (unsigned long n = 1; n < 200 && !succeeded; n++) {
        atbus_node_config cfg;
        h_config(&cfg, "node-oom");
        cfg.listen[cfg.listen_count++] = url;
        atbus_node *node = NULL;
        atb_alloc_fail_nth(n);
        int rc = atbus_node_new(&node, &cfg);
        if (rc == ATBUS_OK) {
            rc = atbus_node_start(node);
        }
        if (rc == ATBUS_OK) {
            rc = atbus_node_connect(node, url);
        }
        atb_alloc_fail_nth(0);
        ck_assert_msg(rc == ATBUS_OK || rc == ATBUS_ENOMEM,
                      "allocation %lu: %s", n, atbus_err_name(rc));
        succeeded = rc == ATBUS_OK;
        atbus_node_free(node);
    }
    ck_assert(succeeded);
}
END_TEST

/* ---- the packet encoder against protobuf-c ---- */

START_TEST(test_packet_prefix_decodes)
{
    static const size_t lens[] = {0, 1, 127, 128, 2048, 70000};
    static const int64_t streams[] = {0, 1, -1, INT64_MAX, INT64_MIN};
    static uint8_t data[70000];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7);
    }
    for (size_t li = 0; li < 6; li++) {
        for (size_t si = 0; si < 5; si++) {
            atb_packet_desc d = {
                .source = si == 1 ? "" : "src.ns",
                .destination = "dst",
                .stream_id = streams[si],
                .stream_offset = (int64_t)li * 1000,
                .flags = (int32_t)si,
                .timepoint_us = (int64_t)si * 99999,
                .packet_type = si == 2 ? 2 : (si == 3 ? 1000 : 0),
                .fragment_flag = (int32_t)(si & 1),
                .data_len = lens[li],
            };
            uint8_t prefix[ATB_PACKET_PREFIX_MAX];
            size_t n;
            ck_assert_int_eq(atb_packet_prefix(&d, prefix, &n), ATBUS_OK);
            size_t total = n + lens[li] + 4;
            uint8_t *frame = malloc(total);
            memcpy(frame, prefix, n);
            memcpy(frame + n, data, lens[li]);
            struct iovec iov[2] = {{prefix, n}, {data, lens[li]}};
            uint32_t h = atb_frame_hash_iov(iov, 2);
            atb_frame_seal(frame, n + lens[li]);
            ck_assert_uint_eq(h, (uint32_t)frame[n + lens[li]] |
                                     (uint32_t)frame[n + lens[li] + 1] << 8 |
                                     (uint32_t)frame[n + lens[li] + 2] << 16 |
                                     (uint32_t)frame[n + lens[li] + 3] << 24);
            atb_frame_view v;
            ck_assert_int_eq(atb_frame_parse(frame, total, 1 << 20, &v),
                             ATBUS_OK);
            ck_assert_uint_eq(v.frame_len, total);
            atb_pb_frame *m;
            ck_assert_int_eq(
                atb_frame_message_unpack(v.message, v.message_len, &m),
                ATBUS_OK);
            ck_assert_str_eq(m->head->source, d.source);
            ck_assert_str_eq(m->head->destination, "dst");
            ck_assert_int_eq(m->body_case,
                             ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET);
            ck_assert_int_eq(m->packet->stream_id, d.stream_id);
            ck_assert_int_eq(m->packet->stream_offset, d.stream_offset);
            ck_assert_int_eq(m->packet->flags, d.flags);
            ck_assert_int_eq(m->packet->timepoint_microseconds, d.timepoint_us);
            atb_pb_content *c;
            ck_assert_int_eq(atb_packet_content_unpack(m->packet->content.data,
                                                       m->packet->content.len,
                                                       &c),
                             ATBUS_OK);
            ck_assert_uint_eq(c->n_fragment, 1);
            ck_assert_int_eq(c->fragment[0]->packet_type, d.packet_type);
            ck_assert_int_eq(c->fragment[0]->fragment_flag, d.fragment_flag);
            ck_assert_uint_eq(c->fragment[0]->data.len, lens[li]);
            ck_assert(lens[li] == 0 ||
                      memcmp(c->fragment[0]->data.data, data, lens[li]) == 0);
            atb_packet_content_free(c);
            atb_frame_message_free(m);
            free(frame);
        }
    }
    atb_packet_desc bad = {.destination = "x", .stream_offset = -1};
    uint8_t prefix[ATB_PACKET_PREFIX_MAX];
    size_t n;
    ck_assert_int_eq(atb_packet_prefix(&bad, prefix, &n), ATBUS_EINVAL);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("node");
    TCase *tc = atb_test_case("node", 60);
    tcase_add_loop_test(tc, test_exchange_every_channel, 0, T_KINDS);
    tcase_add_test(tc, test_duplicate_name_rejected);
    tcase_add_test(tc, test_own_name_rejected);
    tcase_add_loop_test(tc, test_raw_peer_rejected, 0, RAW_CASES);
    tcase_add_test(tc, test_rtt_measured);
    tcase_add_test(tc, test_dead_peer_timeout);
    tcase_add_test(tc, test_backoff_schedule);
    tcase_add_test(tc, test_reconnect_with_backoff);
    tcase_add_test(tc, test_best_channel_chosen);
    tcase_add_test(tc, test_outer_poll_loop);
    tcase_add_test(tc, test_send_errors_and_backpressure);
    tcase_add_test(tc, test_config_checked);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_packet_prefix_decodes);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
