/*
 * epoll event loop with a timer min-heap and a deferred-call queue (see
 * loop.h). The shape follows libuv's uv_run: timers, pending calls, poll,
 * dispatch; the loop never allocates per event.
 */
#define _GNU_SOURCE
#include "loop/loop.h"

#include <atbus/error.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "platform/sys.h"

/* Events collected per epoll call; more simply wait for the next turn. */
#define LOOP_MAX_EVENTS 256

struct atb_loop {
    int epfd;
    int wakefd;
    atb_io wake_io;
    atomic_int stop;
    uint64_t now_us;

    /* Timer min-heap ordered by (deadline, seq). */
    atb_timer **heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t timer_seq;

    /* Registered async handles (loop thread only). */
    atb_async *asyncs;
    /* The next handle loop_wake_cb visits; atb_async_stop moves it past a
     * handle stopped (and perhaps freed) by a callback. */
    atb_async *async_cursor;

    /* Deferred calls, FIFO. */
    atb_deferred *defer_head;
    atb_deferred *defer_tail;

    /* The batch being dispatched, so atb_io_stop can discard its entries. */
    struct epoll_event events[LOOP_MAX_EVENTS];
    int nevents;
    int dispatch_pos;
};

void
atb_loop_update_time(atb_loop *loop)
{
    loop->now_us = atb_clock_us();
}

uint64_t
atb_loop_now_us(const atb_loop *loop)
{
    return loop->now_us;
}

/* ---- timer heap ---------------------------------------------------- */

static int
timer_less(const atb_timer *a, const atb_timer *b)
{
    if (a->deadline_us != b->deadline_us) {
        return a->deadline_us < b->deadline_us;
    }
    return a->seq < b->seq;
}

static void
heap_set(atb_loop *loop, size_t i, atb_timer *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void
heap_sift_up(atb_loop *loop, size_t i)
{
    atb_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, loop->heap[parent])) {
            break;
        }
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void
heap_sift_down(atb_loop *loop, size_t i)
{
    atb_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_len) {
            break;
        }
        if (child + 1 < loop->heap_len &&
            timer_less(loop->heap[child + 1], loop->heap[child])) {
            child++;
        }
        if (!timer_less(loop->heap[child], t)) {
            break;
        }
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

static void
heap_remove(atb_loop *loop, atb_timer *t)
{
    size_t i = t->heap_index;
    atb_timer *last = loop->heap[--loop->heap_len];
    t->heap_index = SIZE_MAX;
    if (last == t) {
        return;
    }
    heap_set(loop, i, last);
    if (i > 0 && timer_less(last, loop->heap[(i - 1) / 2])) {
        heap_sift_up(loop, i);
    } else {
        heap_sift_down(loop, i);
    }
}

void
atb_timer_init(atb_timer *t, atb_timer_cb cb, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->heap_index = SIZE_MAX;
    t->cb = cb;
    t->arg = arg;
}

int
atb_timer_active(const atb_timer *t)
{
    return t->heap_index != SIZE_MAX;
}

int
atb_timer_start(atb_loop *loop, atb_timer *t, uint64_t timeout_us,
                uint64_t repeat_us)
{
    if (atb_timer_active(t)) {
        heap_remove(t->loop, t);
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap != 0 ? loop->heap_cap * 2 : 16;
        atb_timer **h = atb_realloc(loop->heap, cap * sizeof(*h));
        if (h == NULL) {
            return ATBUS_ENOMEM;
        }
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->loop = loop;
    t->deadline_us = timeout_us > UINT64_MAX - loop->now_us
                         ? UINT64_MAX
                         : loop->now_us + timeout_us;
    t->repeat_us = repeat_us;
    t->seq = loop->timer_seq++;
    loop->heap[loop->heap_len] = t;
    t->heap_index = loop->heap_len++;
    heap_sift_up(loop, t->heap_index);
    return ATBUS_OK;
}

void
atb_timer_stop(atb_timer *t)
{
    if (atb_timer_active(t)) {
        heap_remove(t->loop, t);
    }
}

/* loop_run_timers fires every timer due by now. A repeating timer is
 * re-armed from its deadline, not from now, so it does not drift; one
 * that fell far behind skips the missed periods instead of firing a
 * burst. */
static void
loop_run_timers(atb_loop *loop)
{
    while (loop->heap_len > 0) {
        atb_timer *t = loop->heap[0];
        if (t->deadline_us > loop->now_us) {
            break;
        }
        heap_remove(loop, t);
        if (t->repeat_us != 0) {
            uint64_t next = t->deadline_us + t->repeat_us;
            if (next <= loop->now_us) {
                next = loop->now_us + t->repeat_us;
            }
            t->deadline_us = next;
            t->seq = loop->timer_seq++;
            /* Cannot fail: the slot it just left is free. */
            loop->heap[loop->heap_len] = t;
            t->heap_index = loop->heap_len++;
            heap_sift_up(loop, t->heap_index);
        }
        t->cb(t, t->arg);
    }
}

/* ---- deferred calls ------------------------------------------------ */

void
atb_loop_defer(atb_loop *loop, atb_deferred *d, atb_deferred_cb cb, void *arg)
{
    d->cb = cb;
    d->arg = arg;
    if (d->queued) {
        return;
    }
    d->queued = 1;
    d->next = NULL;
    if (loop->defer_tail != NULL) {
        loop->defer_tail->next = d;
    } else {
        loop->defer_head = d;
    }
    loop->defer_tail = d;
}

void
atb_loop_cancel(atb_loop *loop, atb_deferred *d)
{
    if (!d->queued) {
        return;
    }
    atb_deferred **pp = &loop->defer_head;
    atb_deferred *prev = NULL;
    while (*pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = d->next;
    if (loop->defer_tail == d) {
        loop->defer_tail = prev;
    }
    d->queued = 0;
    d->next = NULL;
}

/* loop_run_deferred runs the calls queued before it started; calls queued
 * meanwhile wait for the next turn, so a callback that re-queues itself
 * cannot starve I/O. */
static void
loop_run_deferred(atb_loop *loop)
{
    atb_deferred *last = loop->defer_tail;
    while (last != NULL && loop->defer_head != NULL) {
        atb_deferred *d = loop->defer_head;
        loop->defer_head = d->next;
        if (loop->defer_head == NULL) {
            loop->defer_tail = NULL;
        }
        d->queued = 0;
        d->next = NULL;
        d->cb(d, d->arg);
        if (d == last) {
            break;
        }
    }
}

/* ---- fd events ----------------------------------------------------- */

static uint32_t
io_epoll_events(unsigned events)
{
    uint32_t ev = 0;
    if (events & ATB_IO_READ) {
        ev |= EPOLLIN | EPOLLRDHUP;
    }
    if (events & ATB_IO_WRITE) {
        ev |= EPOLLOUT;
    }
    return ev;
}

int
atb_io_start(atb_loop *loop, atb_io *io, int fd, unsigned events, atb_io_cb cb,
             void *arg)
{
    if (fd < 0 || cb == NULL || (events & ~(ATB_IO_READ | ATB_IO_WRITE)) != 0 ||
        events == 0) {
        return ATBUS_EINVAL;
    }
    int started = io->events != 0;
    if (started && (io->loop != loop || io->fd != fd)) {
        return ATBUS_EINVAL;
    }
    struct epoll_event ev = {.events = io_epoll_events(events), .data.ptr = io};
    int op = started ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (atb_sys.epoll_ctl(loop->epfd, op, fd, &ev) != 0) {
        return atb_sys_error(errno);
    }
    io->loop = loop;
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->arg = arg;
    return ATBUS_OK;
}

void
atb_io_stop(atb_io *io)
{
    if (io->events == 0) {
        return;
    }
    atb_loop *loop = io->loop;
    /* EPOLL_CTL_DEL fails only if fd was already closed, which removes it
     * from the epoll set anyway. */
    (void)atb_sys.epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
    for (int i = loop->dispatch_pos; i < loop->nevents; i++) {
        if (loop->events[i].data.ptr == io) {
            loop->events[i].data.ptr = NULL;
        }
    }
}

static void
loop_wake_cb(atb_io *io, unsigned events, void *arg)
{
    (void)events;
    atb_loop *loop = arg;
    uint64_t v;
    /* Drain the counter first: a send after this point wakes us again. */
    while (read(io->fd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    /* A callback may stop any handle, not just its own, so the walk
     * keeps its position where atb_async_stop can correct it. */
    for (atb_async *a = loop->asyncs; a != NULL; a = loop->async_cursor) {
        loop->async_cursor = a->next;
        if (atomic_exchange(&a->pending, 0)) {
            a->cb(a, a->arg);
        }
    }
}

void
atb_async_start(atb_loop *loop, atb_async *a, atb_async_cb cb, void *arg)
{
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    atomic_store(&a->pending, 0);
    a->next = loop->asyncs;
    loop->asyncs = a;
}

void
atb_async_stop(atb_async *a)
{
    if (a->loop->async_cursor == a) {
        a->loop->async_cursor = a->next;
    }
    atb_async **pp = &a->loop->asyncs;
    while (*pp != NULL && *pp != a) {
        pp = &(*pp)->next;
    }
    if (*pp == a) {
        *pp = a->next;
    }
    a->next = NULL;
}

void
atb_async_send(atb_async *a)
{
    if (atomic_exchange(&a->pending, 1) == 0) {
        atb_loop_wakeup(a->loop);
    }
}

void
atb_loop_wakeup(atb_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is already non-zero, a wakeup is pending. */
    while (write(loop->wakefd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

void
atb_loop_stop(atb_loop *loop)
{
    atomic_store(&loop->stop, 1);
    atb_loop_wakeup(loop);
}

int
atb_loop_fd(const atb_loop *loop)
{
    return loop->epfd;
}

/* loop_timeout_us returns how long a wait may last: 0 with work ready,
 * UINT64_MAX with nothing scheduled. */
static uint64_t
loop_timeout_us(const atb_loop *loop)
{
    if (loop->defer_head != NULL || atomic_load(&loop->stop)) {
        return 0;
    }
    if (loop->heap_len == 0) {
        return UINT64_MAX;
    }
    uint64_t deadline = loop->heap[0]->deadline_us;
    return deadline <= loop->now_us ? 0 : deadline - loop->now_us;
}

int
atb_loop_timeout_ms(const atb_loop *loop)
{
    /* Measured against the clock, not the cache: an outer loop calls this
     * between turns, when the cached time may be stale. */
    if (loop->defer_head != NULL || atomic_load(&loop->stop)) {
        return 0;
    }
    if (loop->heap_len == 0) {
        return -1;
    }
    uint64_t now = atb_clock_us();
    uint64_t deadline = loop->heap[0]->deadline_us;
    if (deadline <= now) {
        return 0;
    }
    uint64_t ms = (deadline - now + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int
atb_loop_new(atb_loop **out)
{
    atb_loop *loop = atb_calloc(1, sizeof(*loop));
    if (loop == NULL) {
        return ATBUS_ENOMEM;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int rc = atb_sys_error(errno);
        atb_free(loop);
        return rc;
    }
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0) {
        int rc = atb_sys_error(errno);
        close(loop->epfd);
        atb_free(loop);
        return rc;
    }
    int rc = atb_io_start(loop, &loop->wake_io, loop->wakefd, ATB_IO_READ,
                          loop_wake_cb, loop);
    if (rc != ATBUS_OK) {
        close(loop->wakefd);
        close(loop->epfd);
        atb_free(loop);
        return rc;
    }
    atb_loop_update_time(loop);
    *out = loop;
    return ATBUS_OK;
}

void
atb_loop_free(atb_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    atb_io_stop(&loop->wake_io);
    close(loop->wakefd);
    close(loop->epfd);
    atb_free(loop->heap);
    atb_free(loop);
}

static void
loop_dispatch(atb_loop *loop)
{
    for (loop->dispatch_pos = 0; loop->dispatch_pos < loop->nevents;) {
        struct epoll_event *ev = &loop->events[loop->dispatch_pos++];
        atb_io *io = ev->data.ptr;
        if (io == NULL) {
            continue; /* stopped earlier in this batch */
        }
        unsigned events = 0;
        if (ev->events & (EPOLLIN | EPOLLRDHUP)) {
            events |= ATB_IO_READ;
        }
        if (ev->events & EPOLLOUT) {
            events |= ATB_IO_WRITE;
        }
        if (ev->events & (EPOLLERR | EPOLLHUP)) {
            events |= ATB_IO_ERROR;
        }
        io->cb(io, events, io->arg);
    }
    loop->nevents = 0;
    loop->dispatch_pos = 0;
}

int
atb_loop_poll(atb_loop *loop, int timeout_ms)
{
    atb_loop_update_time(loop);
    loop_run_timers(loop);
    loop_run_deferred(loop);

    uint64_t wait_us = loop_timeout_us(loop);
    if (timeout_ms >= 0 && (uint64_t)timeout_ms * 1000u < wait_us) {
        wait_us = (uint64_t)timeout_ms * 1000u;
    }
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (wait_us != UINT64_MAX) {
        ts.tv_sec = (time_t)(wait_us / 1000000u);
        ts.tv_nsec = (long)(wait_us % 1000000u) * 1000;
        tsp = &ts;
    }
    int n = atb_sys.epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, tsp);
    if (n < 0 && errno != EINTR) {
        return atb_sys_error(errno);
    }
    atb_loop_update_time(loop);
    if (n > 0) {
        loop->nevents = n;
        loop_dispatch(loop);
    }
    loop_run_timers(loop);
    loop_run_deferred(loop);
    return ATBUS_OK;
}

int
atb_loop_run(atb_loop *loop)
{
    int rc = ATBUS_OK;
    while (!atomic_load(&loop->stop)) {
        rc = atb_loop_poll(loop, -1);
        if (rc != ATBUS_OK) {
            break;
        }
    }
    atomic_store(&loop->stop, 0);
    return rc;
}
