/*
 * The event loop: one per node, single-threaded, epoll underneath.
 *
 * A loop multiplexes three kinds of work, each owned by the caller and
 * embedded in its own structures (the loop allocates nothing per item):
 *   atb_io        a file descriptor and the events wanted on it
 *   atb_timer     a deadline in a min-heap (monotonic microseconds)
 *   atb_deferred  a call to run on the next turn, outside the caller's
 *                 stack (for callbacks that must not run re-entrantly)
 *
 * One turn (atb_loop_poll): run due timers, run deferred calls queued
 * before the turn, wait for events (no longer than the next deadline),
 * dispatch them, run due timers and deferred calls again.
 *
 * Nesting: atb_loop_fd is readable whenever the loop has fd events, and
 * atb_loop_timeout_ms says when it next has timers or deferred work, so an
 * application can drive the loop from its own poll()/epoll loop by calling
 * atb_loop_poll(loop, 0) when either fires.
 *
 * Threads: everything here must be called on the loop's thread, except
 * atb_loop_wakeup and atb_loop_stop, which any thread may call.
 */
#ifndef ATB_LOOP_LOOP_H
#define ATB_LOOP_LOOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct atb_loop atb_loop;
typedef struct atb_io atb_io;
typedef struct atb_timer atb_timer;
typedef struct atb_deferred atb_deferred;
typedef struct atb_async atb_async;

/* Event bits for atb_io. ERROR is always reported, never requested. */
#define ATB_IO_READ 0x1u
#define ATB_IO_WRITE 0x2u
#define ATB_IO_ERROR 0x4u

typedef void (*atb_io_cb)(atb_io *io, unsigned events, void *arg);
typedef void (*atb_timer_cb)(atb_timer *timer, void *arg);
typedef void (*atb_deferred_cb)(atb_deferred *d, void *arg);
typedef void (*atb_async_cb)(atb_async *a, void *arg);

struct atb_io {
    atb_loop *loop;
    int fd;
    unsigned events; /* requested; 0 while stopped */
    atb_io_cb cb;
    void *arg;
};

struct atb_timer {
    atb_loop *loop;
    uint64_t deadline_us;
    uint64_t repeat_us;
    uint64_t seq;      /* start order: equal deadlines fire FIFO */
    size_t heap_index; /* SIZE_MAX while not armed */
    atb_timer_cb cb;
    void *arg;
};

struct atb_deferred {
    atb_deferred *next;
    int queued;
    atb_deferred_cb cb;
    void *arg;
};

/* A notification another thread can send to the loop (libuv's uv_async):
 * sends coalesce, the callback runs on the loop thread. */
struct atb_async {
    atb_loop *loop;
    atb_async *next;
    _Atomic int pending;
    atb_async_cb cb;
    void *arg;
};

/*
 * atb_loop_new creates a loop. Returns ATBUS_OK, ATBUS_ENOMEM or
 * ATBUS_ESYSTEM (epoll or eventfd unavailable: fd limit).
 */
int atb_loop_new(atb_loop **out);

/*
 * atb_loop_free releases a loop; NULL is a no-op. Every io must be stopped
 * and no timer or deferred call may be pending; they are not owned by the
 * loop and it does not touch them.
 */
void atb_loop_free(atb_loop *loop);

/*
 * atb_loop_poll runs one turn, waiting at most timeout_ms for events
 * (-1: until something happens; 0: do not wait). Returns ATBUS_OK or
 * ATBUS_ESYSTEM if epoll failed for a reason other than EINTR.
 */
int atb_loop_poll(atb_loop *loop, int timeout_ms);

/*
 * atb_loop_run turns the loop until atb_loop_stop is called, then clears
 * the stop request. Returns ATBUS_OK or the error of atb_loop_poll.
 */
int atb_loop_run(atb_loop *loop);

/* atb_loop_stop makes atb_loop_run return after the current turn. Safe
 * from any thread and from callbacks. */
void atb_loop_stop(atb_loop *loop);

/* atb_loop_wakeup interrupts a wait in progress, or makes the next one
 * return at once. Safe from any thread, async-signal-safe. */
void atb_loop_wakeup(atb_loop *loop);

/* atb_loop_fd returns a descriptor that polls readable when the loop has
 * fd events to dispatch. */
int atb_loop_fd(const atb_loop *loop);

/*
 * atb_loop_timeout_ms returns how long an outer loop may sleep before it
 * must call atb_loop_poll: 0 when work is ready, -1 when only fd events
 * can create work, else milliseconds to the next timer (rounded up).
 */
int atb_loop_timeout_ms(const atb_loop *loop);

/* atb_loop_now_us returns the loop's cached monotonic time, refreshed at
 * the start of each turn and after each wait. */
uint64_t atb_loop_now_us(const atb_loop *loop);

/* atb_loop_update_time refreshes the cached time. */
void atb_loop_update_time(atb_loop *loop);

/*
 * atb_io_start watches fd for events (ATB_IO_READ and/or ATB_IO_WRITE),
 * calling cb(io, events, arg) on the loop thread. The loop borrows fd; the
 * caller closes it after atb_io_stop. Starting a started io changes its
 * events, fd must then be the same. Returns ATBUS_OK, ATBUS_EINVAL or
 * ATBUS_ESYSTEM (epoll_ctl failed).
 */
int atb_io_start(atb_loop *loop, atb_io *io, int fd, unsigned events,
                 atb_io_cb cb, void *arg);

/*
 * atb_io_stop stops watching; a no-op when stopped. Events of this io
 * already collected in the current turn are discarded, so the io may be
 * freed right after, even from inside another io's callback.
 */
void atb_io_stop(atb_io *io);

/* atb_timer_init prepares t; it is not armed. */
void atb_timer_init(atb_timer *t, atb_timer_cb cb, void *arg);

/*
 * atb_timer_start arms t to fire after timeout_us, then every repeat_us if
 * repeat_us > 0. Re-arms if already armed. Returns ATBUS_OK or
 * ATBUS_ENOMEM (the timer heap could not grow; t stays unarmed).
 */
int atb_timer_start(atb_loop *loop, atb_timer *t, uint64_t timeout_us,
                    uint64_t repeat_us);

/* atb_timer_stop disarms t; a no-op when not armed. */
void atb_timer_stop(atb_timer *t);

/* atb_timer_active reports whether t is armed. */
int atb_timer_active(const atb_timer *t);

/*
 * atb_loop_defer queues cb(d, arg) to run on the loop thread during the
 * next turn. Queuing a queued d is a no-op. Never fails.
 */
void atb_loop_defer(atb_loop *loop, atb_deferred *d, atb_deferred_cb cb,
                    void *arg);

/* atb_loop_cancel removes d from the queue if it is queued. */
void atb_loop_cancel(atb_loop *loop, atb_deferred *d);

/* atb_async_start registers a with loop; cb(a, arg) will run on the loop
 * thread after atb_async_send. Loop thread only. */
void atb_async_start(atb_loop *loop, atb_async *a, atb_async_cb cb, void *arg);

/* atb_async_stop unregisters a; a send that raced with it is dropped.
 * Loop thread only; the caller must ensure no thread sends afterwards. */
void atb_async_stop(atb_async *a);

/*
 * atb_async_send makes a's callback run once on the loop thread soon.
 * Sends before the callback runs coalesce into one call; only the first
 * costs a wakeup (an eventfd write). Safe from any thread.
 */
void atb_async_send(atb_async *a);

#endif /* ATB_LOOP_LOOP_H */
