/*
 * Stream transports (unix path, unix abstract, TCP over IPv4 and IPv6):
 * exchange in order with content checks, refused connects, duplicate
 * binds, a stale unix socket file, garbage from a raw socket, frames at
 * and over the size limit, close with sends pending, and backpressure.
 * Every case runs against every stream transport; the generic ones also
 * run on the message transports mem:// and shm://.
 */
#include <atbus/atbus.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "fault_sys.h"
#include "loop/loop.h"
#include "testing.h"
#include "transport/shm/shm_ring.h"
#include "transport/stream/stream.h"
#include "transport/transport.h"

/* Stream transports first; the generic cases also run on mem:// and
 * shm://. */
enum { T_UNIX, T_ABSTRACT, T_IPV4, T_IPV6, T_STREAM_COUNT };
enum { T_MEM = T_STREAM_COUNT, T_SHM, T_COUNT };

/* shm:// names are SHM_TEST_PREFIX, the runner's pid (set in main before
 * Check forks each test), then the test's: main removes this run's names
 * that a failed test left behind, and no other run's. */
#define SHM_TEST_PREFIX "atbus-test-"
static long runner_pid;

/* Each test gets fresh addresses (pid + counter) so forked tests never
 * collide; TCP ports come from the kernel (atb_test_free_port). */
static void
make_url(int kind, char *buf, size_t n)
{
    static int counter;
    counter++;
    switch (kind) {
    case T_UNIX:
        snprintf(buf, n, "unix:///tmp/atbus-test-%d-%d.sock", (int)getpid(),
                 counter);
        break;
    case T_ABSTRACT:
        snprintf(buf, n, "unix://@atbus-test-%d-%d", (int)getpid(), counter);
        break;
    case T_IPV4:
        snprintf(buf, n, "ipv4://127.0.0.1:%d",
                 atb_test_free_port(AF_INET, SOCK_STREAM));
        break;
    case T_IPV6:
        snprintf(buf, n, "ipv6://[::1]:%d",
                 atb_test_free_port(AF_INET6, SOCK_STREAM));
        break;
    case T_MEM:
        snprintf(buf, n, "mem://atbus-test-%d-%d", (int)getpid(), counter);
        break;
    default:
        snprintf(buf, n, "shm://" SHM_TEST_PREFIX "%ld-%d-%d", runner_pid,
                 (int)getpid(), counter);
        break;
    }
}

/* One side of a test: the connection it holds and what it saw. */
struct side {
    atb_conn *conn;
    int opened;
    int closed;
    int close_reason;
    int writable;
    uint64_t next_seq; /* expected sequence number of the next frame */
    uint64_t frames;
    int bad;
    size_t last_len;
};

struct world {
    atb_loop *loop;
    atb_listener *listener;
    struct side client;
    struct side server;
    int accepted;
    int listen_errors;
};

/* Frames carry (seq, len, pattern from seq) so order and content are
 * checked byte for byte; the message is not protobuf here: the transport
 * only checks framing. */
static size_t
make_frame(uint64_t seq, size_t mlen, uint8_t *out, size_t cap)
{
    uint8_t *msg = malloc(mlen + 8);
    for (size_t i = 0; i < mlen; i++) {
        msg[i] = (uint8_t)(seq * 31 + i);
    }
    if (mlen >= 8) {
        memcpy(msg, &seq, 8);
    }
    size_t w = 0;
    ck_assert_int_eq(atb_frame_wrap(3, msg, mlen, out, cap, &w), ATBUS_OK);
    free(msg);
    return w;
}

static void
side_on_open(atb_conn *c, void *arg)
{
    (void)c;
    ((struct side *)arg)->opened++;
}

static void
side_on_frame(atb_conn *c, const atb_frame_view *f, void *arg)
{
    (void)c;
    struct side *s = arg;
    s->last_len = f->message_len;
    if (f->message_len >= 8) {
        uint64_t seq;
        memcpy(&seq, f->message, 8);
        if (seq != s->next_seq) {
            s->bad++;
        }
        for (size_t i = 8; i < f->message_len; i++) {
            if (f->message[i] != (uint8_t)(seq * 31 + i)) {
                s->bad++;
                break;
            }
        }
        s->next_seq = seq + 1;
    }
    s->frames++;
}

static void
side_on_writable(atb_conn *c, void *arg)
{
    (void)c;
    ((struct side *)arg)->writable++;
}

static void
side_on_close(atb_conn *c, int reason, void *arg)
{
    (void)c;
    struct side *s = arg;
    s->closed++;
    s->close_reason = reason;
}

static const atb_conn_cbs side_cbs = {
    .on_open = side_on_open,
    .on_frame = side_on_frame,
    .on_writable = side_on_writable,
    .on_close = side_on_close,
};

static void
world_on_accept(atb_listener *l, atb_conn *c, void *arg)
{
    (void)l;
    struct world *w = arg;
    w->accepted++;
    if (w->server.conn != NULL) {
        atb_conn_close(c); /* tests use one server connection */
        atb_conn_set_cbs(c, &(atb_conn_cbs){0}, NULL);
        return;
    }
    w->server.conn = c;
    atb_conn_set_cbs(c, &side_cbs, &w->server);
}

static void
world_on_error(atb_listener *l, int err, void *arg)
{
    (void)l;
    (void)err;
    ((struct world *)arg)->listen_errors++;
}

static const atb_listener_cbs world_lcbs = {
    .on_accept = world_on_accept,
    .on_error = world_on_error,
};

/* world_until turns the loop until *flag is reached or 5 s pass (by the
 * clock: shm:// timers make some turns much shorter than 1 ms). */
static void
world_until(struct world *w, const int *flag, int want)
{
    uint64_t deadline = atb_clock_us() + 5u * 1000u * 1000u;
    while (*flag < want && atb_clock_us() < deadline) {
        ck_assert_int_eq(atb_loop_poll(w->loop, 1), ATBUS_OK);
    }
    ck_assert_msg(*flag >= want, "condition not reached");
}

static void
world_open(struct world *w, int kind, const atb_transport_config *cfg)
{
    memset(w, 0, sizeof(*w));
    ck_assert_int_eq(atb_loop_new(&w->loop), ATBUS_OK);
    char url[160];
    make_url(kind, url, sizeof(url));
    ck_assert_int_eq(
        atb_listen(w->loop, url, cfg, &world_lcbs, w, &w->listener), ATBUS_OK);
    ck_assert_int_eq(
        atb_dial(w->loop, url, cfg, &side_cbs, &w->client, &w->client.conn),
        ATBUS_OK);
    world_until(w, &w->client.opened, 1);
    world_until(w, &w->accepted, 1);
}

static void
world_close(struct world *w)
{
    atb_conn_free(w->client.conn);
    atb_conn_free(w->server.conn);
    atb_listener_close(w->listener);
    /* Let deferred closes of other accepted connections run, then free. */
    atb_loop_poll(w->loop, 0);
    atb_loop_free(w->loop);
}

START_TEST(test_exchange_in_order)
{
    struct world w;
    world_open(&w, _i, NULL);
    uint8_t buf[4096];
    uint64_t rng = 1;
    const uint64_t n = 20000;
    uint64_t sent = 0;
    while (sent < n) {
        /* Bursts of up to 64 frames per turn, 8 to 3000 bytes each. */
        for (int b = 0; b < 64 && sent < n; b++) {
            size_t mlen = 8 + (size_t)(atb_test_rng(&rng) % 3000);
            size_t flen = make_frame(sent, mlen, buf, sizeof(buf));
            struct iovec iov = {.iov_base = buf, .iov_len = flen};
            int rc = atb_conn_send(w.client.conn, &iov, 1);
            if (rc == ATBUS_EWOULDBLOCK) {
                break;
            }
            ck_assert_int_eq(rc, ATBUS_OK);
            /* Echo direction too: the server sends the same sequence. A
             * stream queue drains on this thread, but an shm:// reader
             * depends on its waiter thread being scheduled, so a full
             * ring is possible there: wait for on_writable. */
            int writable = w.server.writable;
            while ((rc = atb_conn_send(w.server.conn, &iov, 1)) ==
                   ATBUS_EWOULDBLOCK) {
                ck_assert_int_eq(_i, T_SHM);
                world_until(&w, &w.server.writable, writable + 1);
                writable = w.server.writable;
            }
            ck_assert_int_eq(rc, ATBUS_OK);
            sent++;
        }
        ck_assert_int_eq(atb_loop_poll(w.loop, 0), ATBUS_OK);
    }
    for (int i = 0; i < 10000 && (w.server.frames < n || w.client.frames < n);
         i++) {
        ck_assert_int_eq(atb_loop_poll(w.loop, 1), ATBUS_OK);
    }
    ck_assert_uint_eq(w.server.frames, n);
    ck_assert_uint_eq(w.client.frames, n);
    ck_assert_int_eq(w.server.bad, 0);
    ck_assert_int_eq(w.client.bad, 0);
    if (_i == T_SHM) {
        /* No batching to measure: each frame is one ring record, written
         * without a system call, and syscalls_out counts those writes. */
        ck_assert_uint_eq(w.client.conn->stats.syscalls_out, n);
    } else {
        /* Batching: far fewer writes than frames. */
        ck_assert_uint_lt(w.client.conn->stats.syscalls_out, n / 4);
    }
    ck_assert_uint_eq(w.client.conn->stats.frames_out, n);
    ck_assert_uint_eq(w.server.conn->stats.frames_in, n);
    world_close(&w);
}
END_TEST

START_TEST(test_connect_refused)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    char url[160];
    make_url(_i, url, sizeof(url));
    struct side s = {0};
    ck_assert_int_eq(atb_dial(loop, url, NULL, &side_cbs, &s, &s.conn),
                     ATBUS_OK);
    for (int i = 0; i < 5000 && s.closed == 0; i++) {
        atb_loop_poll(loop, 1);
    }
    ck_assert_int_eq(s.closed, 1);
    ck_assert_int_eq(s.opened, 0);
    ck_assert_int_eq(s.close_reason, ATBUS_ECONNREFUSED);
    uint8_t b[16];
    struct iovec iov = {.iov_base = b, .iov_len = 8};
    ck_assert_int_eq(atb_conn_send(s.conn, &iov, 1), ATBUS_ECLOSED);
    atb_conn_free(s.conn);
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_duplicate_bind)
{
    struct world w;
    world_open(&w, _i, NULL);
    char url[160];
    atb_url_format(&w.listener->url, url, sizeof(url));
    atb_listener *second = NULL;
    ck_assert_int_eq(atb_listen(w.loop, url, NULL, &world_lcbs, &w, &second),
                     ATBUS_EADDRINUSE);
    ck_assert_ptr_null(second);
    world_close(&w);
}
END_TEST

START_TEST(test_unix_stale_socket_reused)
{
    char url[160];
    make_url(T_UNIX, url, sizeof(url));
    const char *path = url + strlen("unix://");
    /* A socket file whose listener is gone. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    ck_assert_int_eq(access(path, F_OK), 0);
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    atb_listener *l = NULL;
    ck_assert_int_eq(atb_listen(loop, url, NULL, &world_lcbs, NULL, &l),
                     ATBUS_OK);
    atb_listener_close(l);
    /* Closing the listener removes the path. */
    ck_assert_int_ne(access(path, F_OK), 0);
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_garbage_closes_only_that_connection)
{
    struct world w;
    char url[160];
    atb_url u;
    struct sockaddr_storage ss;
    socklen_t len;
    world_open(&w, _i, NULL);
    atb_url_format(&w.listener->url, url, sizeof(url));
    ck_assert_int_eq(atb_url_parse(url, &u, NULL), ATBUS_OK);
    if (u.scheme == ATB_URL_UNIX) {
        atb_url_sockaddr_un(&u, &ss, &len);
    } else {
        ss = u.addr;
        len = u.addr_len;
    }
    /* The established pair moves aside; the raw socket's server side
     * becomes w.server. */
    atb_conn *keep = w.server.conn;
    struct side keep_side = w.server;
    atb_conn_set_cbs(keep, &side_cbs, &keep_side);
    memset(&w.server, 0, sizeof(w.server));
    int raw = socket(ss.ss_family, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(raw, (struct sockaddr *)&ss, len), 0);
    world_until(&w, &w.accepted, 2);
    static const char junk[] = "GET / HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(write(raw, junk, sizeof(junk) - 1),
                     (ssize_t)sizeof(junk) - 1);
    world_until(&w, &w.server.closed, 1);
    /* 'G' (0x47) is read as version 71. */
    ck_assert_int_eq(w.server.close_reason, ATBUS_EFRAME_VERSION);
    /* The other connection still works. */
    uint8_t buf[64];
    size_t flen = make_frame(0, 16, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    world_until(&w, (const int *)&keep_side.frames, 1);
    ck_assert_int_eq(keep_side.bad, 0);
    close(raw);
    atb_conn_free(keep);
    world_close(&w);
}
END_TEST

START_TEST(test_frame_size_limits)
{
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.max_frame_message = 100000;
    struct world w;
    world_open(&w, _i, &cfg);
    size_t cap = 200100;
    uint8_t *buf = malloc(cap);
    /* Exactly at the limit: delivered. */
    size_t flen = make_frame(0, 100000, buf, cap);
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    world_until(&w, (const int *)&w.server.frames, 1);
    ck_assert_uint_eq(w.server.last_len, 100000);
    ck_assert_int_eq(w.server.bad, 0);
    /* Over the limit: the sender refuses it. */
    flen = make_frame(1, 100001, buf, cap);
    iov.iov_len = flen;
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_EMSGSIZE);
    world_close(&w);

    /* A receiver with a smaller limit than the sender closes with
     * TOO_LARGE. */
    atb_transport_config small = cfg;
    small.max_frame_message = 1000;
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(atb_loop_new(&w.loop), ATBUS_OK);
    char url[160];
    make_url(_i, url, sizeof(url));
    ck_assert_int_eq(
        atb_listen(w.loop, url, &small, &world_lcbs, &w, &w.listener),
        ATBUS_OK);
    ck_assert_int_eq(
        atb_dial(w.loop, url, &cfg, &side_cbs, &w.client, &w.client.conn),
        ATBUS_OK);
    world_until(&w, &w.accepted, 1);
    world_until(&w, &w.client.opened, 1);
    flen = make_frame(0, 5000, buf, cap);
    iov.iov_len = flen;
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    world_until(&w, &w.server.closed, 1);
    ck_assert_int_eq(w.server.close_reason, ATBUS_EFRAME_TOO_LARGE);
    ck_assert_uint_eq(w.server.frames, 0);
    /* The client sees its peer go away. */
    world_until(&w, &w.client.closed, 1);
    ck_assert_int_eq(w.client.close_reason, ATBUS_ECONNRESET);
    free(buf);
    world_close(&w);
}
END_TEST

START_TEST(test_close_with_sends_pending)
{
    struct world w;
    world_open(&w, _i, NULL);
    uint8_t buf[256];
    struct iovec iov = {.iov_base = buf};
    for (uint64_t i = 0; i < 100; i++) {
        iov.iov_len = make_frame(i, 200, buf, sizeof(buf));
        ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    }
    /* Closed before the loop turned: nothing was written. */
    atb_conn_close(w.client.conn);
    atb_conn_close(w.client.conn);        /* idempotent */
    ck_assert_int_eq(w.client.closed, 0); /* on_close comes from the loop */
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_ECLOSED);
    world_until(&w, &w.client.closed, 1);
    ck_assert_int_eq(w.client.close_reason, ATBUS_ECLOSED);
    world_until(&w, &w.server.closed, 1);
    ck_assert_int_eq(w.server.close_reason, ATBUS_ECONNRESET);
    if (_i == T_MEM || _i == T_SHM) {
        /* mem:// and shm:// write into the peer's ring at send time:
         * those frames were written and arrive before the reset,
         * intact. */
        ck_assert_uint_eq(w.server.frames, 100);
        ck_assert_int_eq(w.server.bad, 0);
    } else {
        ck_assert_uint_eq(w.server.frames, 0);
    }
    world_close(&w);
}
END_TEST

START_TEST(test_backpressure_and_writable)
{
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.send_buffer_limit = 64 * 1024;
    struct world w;
    world_open(&w, _i, &cfg);
    /* The server stops reading: the client must hit EWOULDBLOCK once the
     * kernel buffers and its own queue are full. */
    atb_stream_conn *server = (atb_stream_conn *)w.server.conn;
    atb_io_cb server_cb = server->io.cb;
    atb_io_stop(&server->io);
    uint8_t buf[2048];
    uint64_t seq = 0;
    int blocked = 0;
    for (int turn = 0; turn < 100000 && !blocked; turn++) {
        size_t flen = make_frame(seq, 2000, buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        int rc = atb_conn_send(w.client.conn, &iov, 1);
        if (rc == ATBUS_EWOULDBLOCK) {
            blocked = 1;
        } else {
            ck_assert_int_eq(rc, ATBUS_OK);
            seq++;
        }
        if (turn % 16 == 0) {
            atb_loop_poll(w.loop, 0);
        }
    }
    ck_assert(blocked);
    ck_assert_uint_ge(w.client.conn->stats.sends_would_block, 1);
    ck_assert_int_eq(w.client.writable, 0);
    /* The server reads again: everything arrives, then writable fires. */
    ck_assert_int_eq(atb_io_start(w.loop, &server->io, server->fd, ATB_IO_READ,
                                  server_cb, server),
                     ATBUS_OK);
    world_until(&w, &w.client.writable, 1);
    for (int i = 0; i < 5000 && w.server.frames < seq; i++) {
        atb_loop_poll(w.loop, 1);
    }
    ck_assert_uint_eq(w.server.frames, seq);
    ck_assert_int_eq(w.server.bad, 0);
    world_close(&w);
}
END_TEST

/* fault_exchange sends n frames client -> server under whatever faults
 * are armed and checks that all arrive intact and in order. */
static void
fault_exchange(struct world *w, uint64_t n)
{
    uint8_t buf[2048];
    for (uint64_t seq = 0; seq < n; seq++) {
        size_t flen =
            make_frame(seq, 100 + (size_t)(seq % 1500), buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        ck_assert_int_eq(atb_conn_send(w->client.conn, &iov, 1), ATBUS_OK);
        if (seq % 8 == 0) {
            ck_assert_int_eq(atb_loop_poll(w->loop, 0), ATBUS_OK);
        }
    }
    for (int i = 0; i < 5000 && w->server.frames < n; i++) {
        ck_assert_int_eq(atb_loop_poll(w->loop, 1), ATBUS_OK);
    }
    ck_assert_uint_eq(w->server.frames, n);
    ck_assert_int_eq(w->server.bad, 0);
    ck_assert_int_eq(w->server.closed, 0);
    ck_assert_int_eq(w->client.closed, 0);
}

START_TEST(test_fault_write_eagain_eintr_short)
{
    struct world w;
    world_open(&w, _i, NULL);
    /* EAGAIN twice, EINTR twice, then 40 writes of at most 7 bytes. */
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 2, EAGAIN, 0);
    fault_exchange(&w, 50);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_WRITEV), 2);
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 2, EINTR, 0);
    w.server.frames = 0;
    w.server.next_seq = 0;
    fault_exchange(&w, 50);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_WRITEV), 2);
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 40, 0, 7);
    w.server.frames = 0;
    w.server.next_seq = 0;
    fault_exchange(&w, 50);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_WRITEV), 40);
    world_close(&w);
}
END_TEST

START_TEST(test_fault_read_eintr_short)
{
    struct world w;
    world_open(&w, _i, NULL);
    /* Reads of 1..3 bytes split every header and hash. */
    atb_fault_arm(ATB_FAULT_READV, 0, 3, EINTR, 0);
    fault_exchange(&w, 20);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_READV), 3);
    atb_fault_arm(ATB_FAULT_READV, 0, 100000, 0, 3);
    w.server.frames = 0;
    w.server.next_seq = 0;
    fault_exchange(&w, 30);
    ck_assert_uint_gt(atb_fault_fired(ATB_FAULT_READV), 1000);
    world_close(&w);
}
END_TEST

START_TEST(test_fault_reset_by_peer)
{
    struct world w;
    world_open(&w, _i, NULL);
    /* A read fails with ECONNRESET: that connection ends with the reason,
     * the listener and the other side carry on. */
    atb_fault_arm(ATB_FAULT_READV, 0, 1, ECONNRESET, 0);
    uint8_t buf[128];
    size_t flen = make_frame(0, 64, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    world_until(&w, &w.server.closed, 1);
    ck_assert_int_eq(w.server.close_reason, ATBUS_ECONNRESET);
    world_until(&w, &w.client.closed, 1);
    ck_assert_int_eq(w.client.close_reason, ATBUS_ECONNRESET);
    world_close(&w);

    /* A write fails with EPIPE: reported as ECONNRESET too. */
    world_open(&w, _i, NULL);
    atb_fault_arm(ATB_FAULT_WRITEV, 0, 1, EPIPE, 0);
    ck_assert_int_eq(atb_conn_send(w.client.conn, &iov, 1), ATBUS_OK);
    world_until(&w, &w.client.closed, 1);
    ck_assert_int_eq(w.client.close_reason, ATBUS_ECONNRESET);
    world_close(&w);
}
END_TEST

START_TEST(test_fault_accept_out_of_descriptors)
{
    /* accept4 fails with EMFILE: the listener reports it, pauses, and
     * accepts the waiting connection afterwards. */
    struct world w;
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(atb_loop_new(&w.loop), ATBUS_OK);
    char url[160];
    make_url(_i, url, sizeof(url));
    ck_assert_int_eq(
        atb_listen(w.loop, url, NULL, &world_lcbs, &w, &w.listener), ATBUS_OK);
    atb_fault_arm(ATB_FAULT_ACCEPT4, 0, 1, EMFILE, 0);
    ck_assert_int_eq(
        atb_dial(w.loop, url, NULL, &side_cbs, &w.client, &w.client.conn),
        ATBUS_OK);
    world_until(&w, &w.listen_errors, 1);
    ck_assert_int_eq(w.accepted, 0);
    world_until(&w, &w.accepted, 1);
    ck_assert_uint_eq(atb_fault_fired(ATB_FAULT_ACCEPT4), 1);
    world_until(&w, &w.client.opened, 1);
    fault_exchange(&w, 5);
    world_close(&w);
}
END_TEST

START_TEST(test_fault_connect_error)
{
    /* connect fails at once (ENETUNREACH): on_close reports it from the
     * loop, never from inside atb_dial. */
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    char url[160];
    make_url(_i, url, sizeof(url));
    atb_fault_arm(ATB_FAULT_CONNECT, 0, 1, ENETUNREACH, 0);
    struct side s = {0};
    ck_assert_int_eq(atb_dial(loop, url, NULL, &side_cbs, &s, &s.conn),
                     ATBUS_OK);
    ck_assert_int_eq(s.closed, 0);
    for (int i = 0; i < 100 && s.closed == 0; i++) {
        atb_loop_poll(loop, 1);
    }
    ck_assert_int_eq(s.closed, 1);
    ck_assert_int_eq(s.close_reason, ATBUS_ENOROUTE);
    atb_conn_free(s.conn);
    atb_loop_free(loop);
}
END_TEST

static Suite *
stream_suite(void)
{
    Suite *s = suite_create("stream_transport");
    TCase *tc = atb_test_case("stream_transport", 60);
    tcase_add_loop_test(tc, test_exchange_in_order, 0, T_COUNT);
    tcase_add_loop_test(tc, test_connect_refused, 0, T_COUNT);
    tcase_add_loop_test(tc, test_duplicate_bind, 0, T_COUNT);
    tcase_add_test(tc, test_unix_stale_socket_reused);
    /* Garbage comes from a raw socket; the message transports have no
     * bytes to garble (tests/transport/shm writes a bad record). */
    tcase_add_loop_test(tc, test_garbage_closes_only_that_connection, 0,
                        T_STREAM_COUNT);
    tcase_add_loop_test(tc, test_frame_size_limits, 0, T_COUNT);
    tcase_add_loop_test(tc, test_close_with_sends_pending, 0, T_COUNT);
    /* Backpressure stops the reader through the stream connection's io;
     * tests/transport/shm has the shm:// version. */
    tcase_add_loop_test(tc, test_backpressure_and_writable, 0, T_STREAM_COUNT);
    suite_add_tcase(s, tc);
    /* Socket calls through atb_sys: mem:// and shm:// make none. */
    TCase *faults = atb_test_case("syscall_faults", 60);
    tcase_add_loop_test(faults, test_fault_write_eagain_eintr_short, 0,
                        T_STREAM_COUNT);
    tcase_add_loop_test(faults, test_fault_read_eintr_short, 0, T_STREAM_COUNT);
    tcase_add_loop_test(faults, test_fault_reset_by_peer, 0, T_STREAM_COUNT);
    tcase_add_loop_test(faults, test_fault_accept_out_of_descriptors, 0,
                        T_STREAM_COUNT);
    tcase_add_loop_test(faults, test_fault_connect_error, 0, T_STREAM_COUNT);
    suite_add_tcase(s, faults);
    return s;
}

int
main(void)
{
    runner_pid = (long)getpid();
    int status = atb_test_run(stream_suite());
    char prefix[64];
    snprintf(prefix, sizeof(prefix), SHM_TEST_PREFIX "%ld-", runner_pid);
    atb_shm_ring_sweep(prefix);
    return status;
}
