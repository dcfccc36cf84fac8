/*
 * mem:// across threads: a sender on one loop and a receiver on another
 * thread's loop, a ring small enough that the sender is refused often,
 * so every refusal must be followed by on_writable and every frame must
 * arrive once, in order, intact, without a lost notification.
 */
#include <atbus/atbus.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "loop/loop.h"
#include "testing.h"
#include "transport/transport.h"

#define MEM_FRAMES 200000u

struct receiver {
    atb_loop *loop;
    atb_listener *listener;
    atb_conn *conn;
    uint64_t next_seq;
    uint64_t frames;
    int bad;
    _Atomic int ready;
    _Atomic int go; /* the receiver reads only after this */
    _Atomic int done;
};

static void
recv_on_frame(atb_conn *c, const atb_frame_view *f, void *arg)
{
    (void)c;
    struct receiver *r = arg;
    uint64_t seq = 0;
    if (f->message_len >= 8) {
        memcpy(&seq, f->message, 8);
    }
    if (seq != r->next_seq || f->message_len != 8 + seq % 200) {
        r->bad++;
    }
    for (size_t i = 8; i < f->message_len; i++) {
        if (f->message[i] != (uint8_t)(seq + i)) {
            r->bad++;
            break;
        }
    }
    r->next_seq = seq + 1;
    if (++r->frames == MEM_FRAMES) {
        atb_conn_close(c);
    }
}

static void
recv_on_close(atb_conn *c, int reason, void *arg)
{
    (void)c;
    (void)reason;
    atomic_store(&((struct receiver *)arg)->done, 1);
}

static const atb_conn_cbs recv_cbs = {
    .on_frame = recv_on_frame,
    .on_close = recv_on_close,
};

static void
recv_on_accept(atb_listener *l, atb_conn *c, void *arg)
{
    (void)l;
    struct receiver *r = arg;
    r->conn = c;
    atb_conn_set_cbs(c, &recv_cbs, r);
}

static void *
receiver_main(void *arg)
{
    struct receiver *r = arg;
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.send_buffer_limit = 64 * 1024;
    static const atb_listener_cbs lcbs = {.on_accept = recv_on_accept};
    if (atb_listen(r->loop, "mem://xthread", &cfg, &lcbs, r, &r->listener) !=
        ATBUS_OK) {
        atomic_store(&r->done, -1);
        atomic_store(&r->ready, 1);
        return NULL;
    }
    atomic_store(&r->ready, 1);
    /* Hold back until the sender has been refused once, so the refusal
     * path is always exercised, however fast this thread is. */
    uint64_t deadline = atb_clock_us() + 60u * 1000000u;
    while (!atomic_load(&r->go) && atb_clock_us() < deadline) {
        sched_yield();
    }
    /* Bounded by time, not turns: under load every turn is short. */
    while (!atomic_load(&r->done) && atb_clock_us() < deadline) {
        atb_loop_poll(r->loop, 10);
    }
    atb_conn_free(r->conn);
    atb_listener_close(r->listener);
    return NULL;
}

struct sender {
    atb_conn *conn;
    int opened;
    int closed;
    int close_reason;
    int writable;
};

static void
send_on_open(atb_conn *c, void *arg)
{
    (void)c;
    ((struct sender *)arg)->opened = 1;
}

static void
send_on_writable(atb_conn *c, void *arg)
{
    (void)c;
    ((struct sender *)arg)->writable++;
}

static void
send_on_close(atb_conn *c, int reason, void *arg)
{
    (void)c;
    struct sender *s = arg;
    s->closed = 1;
    s->close_reason = reason;
}

START_TEST(test_mem_cross_thread_backpressure)
{
    struct receiver r = {0};
    ck_assert_int_eq(atb_loop_new(&r.loop), ATBUS_OK);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, receiver_main, &r), 0);
    while (!atomic_load(&r.ready)) {
        sched_yield();
    }
    ck_assert_int_ne(atomic_load(&r.done), -1);

    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.send_buffer_limit = 64 * 1024;
    struct sender s = {0};
    static const atb_conn_cbs cbs = {
        .on_open = send_on_open,
        .on_writable = send_on_writable,
        .on_close = send_on_close,
    };
    ck_assert_int_eq(atb_dial(loop, "mem://xthread", &cfg, &cbs, &s, &s.conn),
                     ATBUS_OK);
    for (int i = 0; i < 1000 && !s.opened; i++) {
        atb_loop_poll(loop, 1);
    }
    ck_assert(s.opened);

    uint8_t frame[256];
    uint8_t msg[256];
    uint64_t seq = 0;
    int refusals = 0;
    for (int turn = 0; turn < 2000000 && seq < MEM_FRAMES; turn++) {
        size_t mlen = 8 + seq % 200;
        memcpy(msg, &seq, 8);
        for (size_t i = 8; i < mlen; i++) {
            msg[i] = (uint8_t)(seq + i);
        }
        size_t flen;
        atb_frame_wrap(3, msg, mlen, frame, sizeof(frame), &flen);
        struct iovec iov = {.iov_base = frame, .iov_len = flen};
        int rc = atb_conn_send(s.conn, &iov, 1);
        if (rc == ATBUS_EWOULDBLOCK) {
            refusals++;
            atomic_store(&r.go, 1);
            int before = s.writable;
            /* Wait for on_writable: it must come, or the test times out. */
            for (int i = 0; i < 5000 && s.writable == before; i++) {
                atb_loop_poll(loop, 1);
            }
            ck_assert_msg(s.writable > before,
                          "no on_writable after refusal %d (frame %lu)",
                          refusals, (unsigned long)seq);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        seq++;
    }
    atomic_store(&r.go, 1);
    ck_assert_uint_eq(seq, MEM_FRAMES);
    ck_assert_int_gt(refusals, 0);
    /* The receiver closes after the last frame: we see a reset. */
    for (int i = 0; i < 5000 && !s.closed; i++) {
        atb_loop_poll(loop, 1);
    }
    ck_assert(s.closed);
    ck_assert_int_eq(s.close_reason, ATBUS_ECONNRESET);
    pthread_join(th, NULL);
    ck_assert_uint_eq(r.frames, MEM_FRAMES);
    ck_assert_int_eq(r.bad, 0);
    atb_conn_free(s.conn);
    atb_loop_free(loop);
    atb_loop_free(r.loop);
}
END_TEST

static Suite *
mem_suite(void)
{
    Suite *s = suite_create("mem_transport");
    TCase *tc = atb_test_case("mem_transport", 120);
    tcase_add_test(tc, test_mem_cross_thread_backpressure);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(mem_suite());
}
