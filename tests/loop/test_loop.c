/*
 * Event loop: timer order and repetition, the heap under random churn, fd
 * events, stopping an io whose event is already collected, deferred calls,
 * cross-thread wakeup, and driving the loop from an outer poll() loop.
 */
#include <atbus/atbus.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "loop/loop.h"
#include "testing.h"

static atb_loop *
loop_make(void)
{
    atb_loop *loop = NULL;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    return loop;
}

/* ---- timers -------------------------------------------------------- */

struct fire_log {
    int order[64];
    int n;
};

struct tagged_timer {
    atb_timer t;
    int tag;
    struct fire_log *log;
};

static void
log_fire(atb_timer *t, void *arg)
{
    struct tagged_timer *tt = arg;
    (void)t;
    tt->log->order[tt->log->n++] = tt->tag;
}

START_TEST(test_timers_fire_in_deadline_order)
{
    atb_loop *loop = loop_make();
    struct fire_log log = {0};
    struct tagged_timer tt[5];
    /* Deadlines 3, 1, 2, 1, 0 ms: equal deadlines fire in start order. */
    static const uint64_t after_us[] = {3000, 1000, 2000, 1000, 0};
    for (int i = 0; i < 5; i++) {
        tt[i].tag = i;
        tt[i].log = &log;
        atb_timer_init(&tt[i].t, log_fire, &tt[i]);
        ck_assert_int_eq(atb_timer_start(loop, &tt[i].t, after_us[i], 0),
                         ATBUS_OK);
    }
    while (log.n < 5) {
        ck_assert_int_eq(atb_loop_poll(loop, -1), ATBUS_OK);
    }
    static const int want[] = {4, 1, 3, 2, 0};
    ck_assert_mem_eq(log.order, want, sizeof(want));
    for (int i = 0; i < 5; i++) {
        ck_assert(!atb_timer_active(&tt[i].t));
    }
    atb_loop_free(loop);
}
END_TEST

struct repeat_state {
    atb_timer t;
    int fired;
    uint64_t first_us;
    uint64_t last_us;
};

static void
repeat_fire(atb_timer *t, void *arg)
{
    struct repeat_state *rs = arg;
    uint64_t now = atb_loop_now_us(t->loop);
    if (rs->fired++ == 0) {
        rs->first_us = now;
    }
    rs->last_us = now;
    if (rs->fired == 5) {
        atb_timer_stop(t);
    }
}

START_TEST(test_timer_repeats_until_stopped)
{
    atb_loop *loop = loop_make();
    struct repeat_state rs = {0};
    atb_timer_init(&rs.t, repeat_fire, &rs);
    ck_assert_int_eq(atb_timer_start(loop, &rs.t, 1000, 2000), ATBUS_OK);
    uint64_t start = atb_loop_now_us(loop);
    while (atb_timer_active(&rs.t)) {
        ck_assert_int_eq(atb_loop_poll(loop, -1), ATBUS_OK);
    }
    ck_assert_int_eq(rs.fired, 5);
    /* Never early: the fifth firing is at least 1 + 4*2 ms after start. */
    ck_assert_uint_ge(rs.first_us - start, 1000);
    ck_assert_uint_ge(rs.last_us - start, 9000);
    atb_loop_free(loop);
}
END_TEST

static void
noop_fire(atb_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

START_TEST(test_timer_heap_random_churn)
{
    /* Random starts, restarts and stops; the heap must always yield the
     * minimum (checked against a linear scan) and stay consistent. */
    atb_loop *loop = loop_make();
    enum { N = 500 };
    static atb_timer timers[N];
    for (int i = 0; i < N; i++) {
        atb_timer_init(&timers[i], noop_fire, NULL);
    }
    uint64_t rng = 77;
    for (int step = 0; step < 20000; step++) {
        atb_timer *t = &timers[atb_test_rng(&rng) % N];
        if (atb_test_rng(&rng) % 3 == 0) {
            atb_timer_stop(t);
        } else {
            uint64_t after = 1000000 + atb_test_rng(&rng) % 1000000;
            ck_assert_int_eq(atb_timer_start(loop, t, after, 0), ATBUS_OK);
        }
        if (step % 97 == 0) {
            const atb_timer *min = NULL;
            for (int i = 0; i < N; i++) {
                const atb_timer *c = &timers[i];
                if (atb_timer_active(c) &&
                    (min == NULL || c->deadline_us < min->deadline_us ||
                     (c->deadline_us == min->deadline_us &&
                      c->seq < min->seq))) {
                    min = c;
                }
            }
            if (min != NULL) {
                ck_assert_uint_eq(min->heap_index, 0);
            }
        }
    }
    for (int i = 0; i < N; i++) {
        atb_timer_stop(&timers[i]);
    }
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_timer_start_out_of_memory)
{
    atb_loop *loop = loop_make();
    enum { N = 17 }; /* one more than the first heap allocation holds */
    atb_timer timers[N];
    int started = 0;
    atb_alloc_fail_nth(2); /* the first growth succeeds, the next fails */
    for (int i = 0; i < N; i++) {
        atb_timer_init(&timers[i], noop_fire, NULL);
        int rc = atb_timer_start(loop, &timers[i], 1000000, 0);
        if (rc == ATBUS_OK) {
            started++;
        } else {
            ck_assert_int_eq(rc, ATBUS_ENOMEM);
            ck_assert(!atb_timer_active(&timers[i]));
        }
    }
    atb_alloc_fail_nth(0);
    ck_assert_int_eq(started, 16);
    for (int i = 0; i < N; i++) {
        atb_timer_stop(&timers[i]);
    }
    atb_loop_free(loop);
}
END_TEST

/* ---- fd events ----------------------------------------------------- */

struct pair_io {
    atb_io io;
    int reads;
    int writes;
    int errors;
    struct pair_io *victim; /* stopped from this io's callback */
};

static void
pair_cb(atb_io *io, unsigned events, void *arg)
{
    struct pair_io *p = arg;
    char buf[64];
    if (events & ATB_IO_READ) {
        p->reads++;
        (void)read(io->fd, buf, sizeof(buf));
    }
    if (events & ATB_IO_WRITE) {
        p->writes++;
        atb_io_start(io->loop, io, io->fd, ATB_IO_READ, pair_cb, arg);
    }
    if (events & ATB_IO_ERROR) {
        p->errors++;
    }
    if (p->victim != NULL) {
        atb_io_stop(&p->victim->io);
        /* Poison it: a stale dispatch would call a NULL callback. */
        p->victim->io.cb = NULL;
    }
}

START_TEST(test_io_read_write_events)
{
    atb_loop *loop = loop_make();
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    struct pair_io a = {0};
    ck_assert_int_eq(atb_io_start(loop, &a.io, sv[0],
                                  ATB_IO_READ | ATB_IO_WRITE, pair_cb, &a),
                     ATBUS_OK);
    ck_assert_int_eq(atb_loop_poll(loop, 1000), ATBUS_OK);
    ck_assert_int_eq(a.writes, 1); /* writable at once, then read only */
    ck_assert_int_eq(a.reads, 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(atb_loop_poll(loop, 1000), ATBUS_OK);
    ck_assert_int_eq(a.reads, 1);
    ck_assert_int_eq(a.writes, 1);
    /* Peer closes: readable (EOF) is reported. */
    close(sv[1]);
    ck_assert_int_eq(atb_loop_poll(loop, 1000), ATBUS_OK);
    ck_assert_int_ge(a.reads, 2);
    atb_io_stop(&a.io);
    atb_io_stop(&a.io); /* idempotent */
    close(sv[0]);
    ck_assert_int_eq(atb_io_start(loop, &a.io, -1, ATB_IO_READ, pair_cb, &a),
                     ATBUS_EINVAL);
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_io_stop_discards_collected_event)
{
    /* Two fds ready in the same batch; whichever callback runs first stops
     * the other, which must then not be called. */
    atb_loop *loop = loop_make();
    int s1[2], s2[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1),
                     0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2),
                     0);
    struct pair_io a = {0}, b = {0};
    a.victim = &b;
    b.victim = &a;
    ck_assert_int_eq(atb_io_start(loop, &a.io, s1[0], ATB_IO_READ, pair_cb, &a),
                     ATBUS_OK);
    ck_assert_int_eq(atb_io_start(loop, &b.io, s2[0], ATB_IO_READ, pair_cb, &b),
                     ATBUS_OK);
    ck_assert_int_eq(write(s1[1], "x", 1), 1);
    ck_assert_int_eq(write(s2[1], "y", 1), 1);
    ck_assert_int_eq(atb_loop_poll(loop, 1000), ATBUS_OK);
    ck_assert_int_eq(a.reads + b.reads, 1);
    atb_io_stop(&a.io);
    atb_io_stop(&b.io);
    close(s1[0]);
    close(s1[1]);
    close(s2[0]);
    close(s2[1]);
    atb_loop_free(loop);
}
END_TEST

/* ---- deferred calls ------------------------------------------------ */

struct defer_state {
    atb_deferred d[3];
    int order[16];
    int n;
    int requeue; /* d[0] re-queues itself this many times */
    atb_loop *loop;
};

static void
defer_cb(atb_deferred *d, void *arg)
{
    struct defer_state *s = arg;
    int idx = (int)(d - s->d);
    s->order[s->n++] = idx;
    if (idx == 0 && s->requeue > 0) {
        s->requeue--;
        atb_loop_defer(s->loop, d, defer_cb, s);
    }
}

START_TEST(test_deferred_fifo_and_no_starvation)
{
    atb_loop *loop = loop_make();
    struct defer_state s = {.requeue = 2, .loop = loop};
    atb_loop_defer(loop, &s.d[0], defer_cb, &s);
    atb_loop_defer(loop, &s.d[1], defer_cb, &s);
    atb_loop_defer(loop, &s.d[1], defer_cb, &s); /* already queued */
    atb_loop_defer(loop, &s.d[2], defer_cb, &s);
    atb_loop_cancel(loop, &s.d[2]);
    ck_assert_int_eq(atb_loop_timeout_ms(loop), 0);
    /* One turn runs what was queued before it (0, 1) and, after the wait,
     * what was queued in between (0 again): a self-re-queuing call runs
     * at most twice per turn and the wait does not block. */
    ck_assert_int_eq(atb_loop_poll(loop, 10000), ATBUS_OK);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.order[0], 0);
    ck_assert_int_eq(s.order[1], 1);
    ck_assert_int_eq(s.order[2], 0);
    ck_assert_int_eq(atb_loop_poll(loop, 10000), ATBUS_OK);
    ck_assert_int_eq(s.n, 4);
    ck_assert_int_eq(atb_loop_timeout_ms(loop), -1);
    atb_loop_free(loop);
}
END_TEST

/* ---- threads and nesting ------------------------------------------- */

static void *
stopper_thread(void *arg)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000};
    nanosleep(&ts, NULL);
    atb_loop_stop(arg);
    return NULL;
}

START_TEST(test_stop_from_another_thread)
{
    /* run() with nothing scheduled blocks in epoll until another thread
     * stops it; then run() returns and can be entered again. */
    atb_loop *loop = loop_make();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stopper_thread, loop), 0);
    ck_assert_int_eq(atb_loop_run(loop), ATBUS_OK);
    pthread_join(th, NULL);
    ck_assert_int_eq(atb_loop_timeout_ms(loop), -1);
    atb_loop_wakeup(loop);
    ck_assert_int_eq(atb_loop_poll(loop, 10000), ATBUS_OK);
    atb_loop_free(loop);
}
END_TEST

struct nested_state {
    atb_timer t;
    struct pair_io io;
    int fired;
};

static void
nested_fire(atb_timer *t, void *arg)
{
    struct nested_state *s = arg;
    (void)t;
    s->fired++;
}

START_TEST(test_driven_by_outer_poll_loop)
{
    /* An application's own poll() loop watches atb_loop_fd and sleeps no
     * longer than atb_loop_timeout_ms; it never calls a blocking poll. */
    atb_loop *loop = loop_make();
    struct nested_state s = {0};
    atb_timer_init(&s.t, nested_fire, &s);
    ck_assert_int_eq(atb_timer_start(loop, &s.t, 5000, 5000), ATBUS_OK);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    ck_assert_int_eq(
        atb_io_start(loop, &s.io.io, sv[0], ATB_IO_READ, pair_cb, &s.io),
        ATBUS_OK);
    int wrote = 0;
    for (int turn = 0; turn < 1000 && (s.fired < 3 || s.io.reads < 2); turn++) {
        int timeout = atb_loop_timeout_ms(loop);
        ck_assert_int_ge(timeout, 0); /* a timer is always armed here */
        ck_assert_int_le(timeout, 5);
        struct pollfd pfd = {.fd = atb_loop_fd(loop), .events = POLLIN};
        int n = poll(&pfd, 1, timeout);
        ck_assert_int_ge(n, 0);
        ck_assert_int_eq(atb_loop_poll(loop, 0), ATBUS_OK);
        if (s.fired > wrote && wrote < 2) {
            ck_assert_int_eq(write(sv[1], "z", 1), 1);
            wrote++;
        }
    }
    ck_assert_int_ge(s.fired, 3);
    ck_assert_int_eq(s.io.reads, 2);
    atb_timer_stop(&s.t);
    atb_io_stop(&s.io.io);
    close(sv[0]);
    close(sv[1]);
    atb_loop_free(loop);
}
END_TEST

struct async_state {
    atb_async a;
    _Atomic unsigned long produced;
    unsigned long seen;
    unsigned long calls;
};

static void
async_cb(atb_async *a, void *arg)
{
    (void)a;
    struct async_state *s = arg;
    s->calls++;
    s->seen = atomic_load(&s->produced);
}

static void *
async_producer(void *arg)
{
    struct async_state *s = arg;
    for (int i = 0; i < 100000; i++) {
        atomic_fetch_add(&s->produced, 1);
        atb_async_send(&s->a);
    }
    return NULL;
}

START_TEST(test_async_from_another_thread)
{
    /* Another thread publishes 100 000 increments, each followed by a
     * send. The loop must see the final value (no lost notification)
     * with far fewer callbacks than sends (coalescing). */
    atb_loop *loop = loop_make();
    struct async_state s = {0};
    atb_async_start(loop, &s.a, async_cb, &s);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, async_producer, &s), 0);
    for (int i = 0; i < 100000 && s.seen < 100000; i++) {
        ck_assert_int_eq(atb_loop_poll(loop, 100), ATBUS_OK);
    }
    pthread_join(th, NULL);
    ck_assert_uint_eq(s.seen, 100000);
    ck_assert_uint_ge(s.calls, 1);
    ck_assert_uint_le(s.calls, 100000);
    atb_async_stop(&s.a);
    /* Stopped: a send no longer runs the callback. */
    unsigned long calls = s.calls;
    atb_async_send(&s.a);
    ck_assert_int_eq(atb_loop_poll(loop, 0), ATBUS_OK);
    ck_assert_uint_eq(s.calls, calls);
    atb_loop_free(loop);
}
END_TEST

/* One async handle whose callback stops and frees another. */
struct async_pair {
    atb_async *victim;
    int killer_calls;
};

static void
async_killer_cb(atb_async *a, void *arg)
{
    (void)a;
    struct async_pair *p = arg;
    p->killer_calls++;
    if (p->victim != NULL) {
        atb_async_stop(p->victim);
        atb_free(p->victim);
        p->victim = NULL;
    }
}

static void
async_victim_cb(atb_async *a, void *arg)
{
    (void)a;
    (void)arg;
    ck_abort_msg("a stopped handle ran");
}

START_TEST(test_async_callback_stops_another)
{
    /* Both pending in one wakeup; the first visited stops and frees the
     * next one in the walk, which must then be skipped, not touched. */
    atb_loop *loop = loop_make();
    struct async_pair p = {0};
    atb_async killer;
    p.victim = atb_malloc(sizeof(*p.victim));
    ck_assert_ptr_nonnull(p.victim);
    atb_async_start(loop, p.victim, async_victim_cb, NULL);
    atb_async_start(loop, &killer, async_killer_cb, &p);
    atb_async_send(p.victim);
    atb_async_send(&killer);
    ck_assert_int_eq(atb_loop_poll(loop, 100), ATBUS_OK);
    ck_assert_int_eq(p.killer_calls, 1);
    ck_assert_ptr_null(p.victim);
    atb_async_stop(&killer);
    atb_loop_free(loop);
}
END_TEST

static Suite *
loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = atb_test_case("loop", 30);
    tcase_add_test(tc, test_timers_fire_in_deadline_order);
    tcase_add_test(tc, test_timer_repeats_until_stopped);
    tcase_add_test(tc, test_timer_heap_random_churn);
    tcase_add_test(tc, test_timer_start_out_of_memory);
    tcase_add_test(tc, test_io_read_write_events);
    tcase_add_test(tc, test_io_stop_discards_collected_event);
    tcase_add_test(tc, test_deferred_fifo_and_no_starvation);
    tcase_add_test(tc, test_stop_from_another_thread);
    tcase_add_test(tc, test_driven_by_outer_poll_loop);
    tcase_add_test(tc, test_async_from_another_thread);
    tcase_add_test(tc, test_async_callback_stops_another);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(loop_suite());
}
