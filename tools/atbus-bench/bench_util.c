/*
 * What every implementation of atbus-bench shares: the other side of a
 * measurement (a forked process or a thread that reports over a pipe),
 * message stamps and checks, the receiver's clock and round-trip
 * percentiles.
 */
#define _GNU_SOURCE /* pipe2, wait4, sched_setaffinity */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Extra time a side gets past the job's deadline to report, before it is
 * given up (and, for a process, killed). */
#define PEER_GRACE_NS (5ull * 1000000000ull)
/* How long a side gets to end after its report. */
#define PEER_EXIT_NS (5ull * 1000000000ull)
/* How long a side gets to report after the other side failed. */
#define PEER_LAST_WORD_NS (1000000000ull)

uint64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
bench_fail(bench_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
    out->ok = 0;
    return -1;
}

/* ---- the other side ---- */

void
bench_peer_report(bench_peer *p, const bench_out *out)
{
    if (p->reported) {
        return;
    }
    p->reported = 1;
    uint8_t msg[1 + sizeof(*out)];
    msg[0] = 'O';
    memcpy(msg + 1, out, sizeof(*out));
    /* Below PIPE_BUF: one write, never split. */
    ssize_t n;
    do {
        n = write(p->wfd, msg, sizeof(msg));
    } while (n < 0 && errno == EINTR);
}

/* pin_self moves the calling thread to one CPU when the job asks for
 * pinned sides (threads it starts later inherit it). */
static void
pin_self(const bench_job *job, int cpu)
{
    if (job->pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void)sched_setaffinity(0, sizeof(set), &set);
    }
}

static void
peer_run(bench_peer *p)
{
    pin_self(&p->job, 1);
    bench_out out;
    memset(&out, 0, sizeof(out));
    out.ok = 1;
    if (p->fn(&p->job, p, &out) != 0) {
        out.ok = 0;
    }
    bench_peer_report(p, &out);
}

static void *
peer_thread(void *arg)
{
    peer_run(arg);
    return NULL;
}

int
bench_peer_start(bench_peer *p, int threaded, bench_side_fn fn,
                 const bench_job *job, bench_out *out)
{
    memset(p, 0, sizeof(*p));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return bench_fail(out, "pipe: %s", strerror(errno));
    }
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->fn = fn;
    p->job = *job;
    p->threaded = threaded;
    if (threaded) {
        int rc = pthread_create(&p->thread, NULL, peer_thread, p);
        if (rc != 0) {
            close(p->rfd);
            close(p->wfd);
            return bench_fail(out, "pthread_create: %s", strerror(rc));
        }
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p->rfd);
        close(p->wfd);
        return bench_fail(out, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(p->rfd);
        peer_run(p);
        exit(0);
    }
    p->pid = pid;
    close(p->wfd);
    p->wfd = -1;
    return 0;
}

void
bench_peer_ready(bench_peer *self)
{
    ssize_t n;
    do {
        n = write(self->wfd, "R", 1);
    } while (n < 0 && errno == EINTR);
}

int
bench_peer_fd(const bench_peer *p)
{
    return p->rfd;
}

int
bench_read_full(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    uint8_t *b = buf;
    size_t got = 0;
    while (got < len) {
        uint64_t now = bench_now_ns();
        if (now >= deadline_ns) {
            errno = ETIMEDOUT;
            return -1;
        }
        uint64_t ms = (deadline_ns - now) / 1000000u + 1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, ms > 60000 ? 60000 : (int)ms);
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
        if (rc <= 0) {
            continue;
        }
        ssize_t n = read(fd, b + got, len - got);
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* peer_reap waits for a process side (killing it first when kill_it),
 * or joins a thread side that reported. */
/* peer_wait waits for a process side to exit, until deadline_ns. Returns
 * its pid, 0 if it is still running, or -1. */
static pid_t
peer_wait(bench_peer *p, int *status, uint64_t deadline_ns)
{
    for (;;) {
        pid_t r = wait4(p->pid, status, WNOHANG, &p->usage);
        if (r != 0 && !(r < 0 && errno == EINTR)) {
            return r;
        }
        if (bench_now_ns() >= deadline_ns) {
            return 0;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

/* peer_hung says on stderr that a side which had reported did not end:
 * the figures stand, but its library's close hangs in this situation. */
static void
peer_hung(const bench_peer *p)
{
    fprintf(stderr,
            "atbus-bench: a %s side did not end within %llu s of its "
            "report (stuck closing); %s\n",
            p->threaded ? "thread" : "process",
            (unsigned long long)(PEER_EXIT_NS / 1000000000ull),
            p->threaded ? "left behind" : "killed");
}

/* peer_reap waits for a process side (killing it first when kill_it, or
 * when it does not exit in time), or joins a thread side. */
static void
peer_reap(bench_peer *p, int kill_it, bench_out *out)
{
    if (p->reaped) {
        return;
    }
    p->reaped = 1;
    if (p->threaded) {
        /* pthread_timedjoin_np takes a CLOCK_REALTIME instant. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(PEER_EXIT_NS / 1000000000ull);
        /* A thread cannot be stopped; the runner process exits after
         * the measurement, which ends it. */
        if (kill_it || pthread_timedjoin_np(p->thread, NULL, &ts) != 0) {
            if (!kill_it) {
                peer_hung(p);
            }
            pthread_detach(p->thread);
        } else {
            close(p->wfd);
        }
        close(p->rfd);
        return;
    }
    int status = 0;
    pid_t r =
        kill_it ? 0 : peer_wait(p, &status, bench_now_ns() + PEER_EXIT_NS);
    if (r == 0) {
        if (!kill_it) {
            peer_hung(p);
            kill_it = 1;
        }
        kill(p->pid, SIGKILL);
        do {
            r = wait4(p->pid, &status, 0, &p->usage);
        } while (r < 0 && errno == EINTR);
    }
    close(p->rfd);
    if (out != NULL && out->ok && r == p->pid && WIFSIGNALED(status) &&
        !kill_it) {
        bench_fail(out, "side died with signal %d", WTERMSIG(status));
    }
}

/* peer_lost fills out for a side that stopped talking. */
static int
peer_lost(bench_peer *p, const char *when, bench_out *out)
{
    int timed_out = errno == ETIMEDOUT;
    peer_reap(p, timed_out, NULL);
    return bench_fail(out, "%s %s", p->threaded ? "thread" : "process",
                      timed_out ? "did not answer in time" : when);
}

int
bench_peer_wait_ready(bench_peer *p, bench_out *out)
{
    uint8_t tag;
    if (bench_read_full(p->rfd, &tag, 1, p->job.deadline_ns) != 0) {
        return peer_lost(p, "ended before it was ready", out);
    }
    if (tag == 'R') {
        return 0;
    }
    if (bench_read_full(p->rfd, out, sizeof(*out), p->job.deadline_ns) != 0) {
        return peer_lost(p, "ended in the middle of its report", out);
    }
    peer_reap(p, 0, out);
    if (out->ok) {
        return bench_fail(out, "side finished before it was ready");
    }
    return -1;
}

/* peer_finish_by reads the side's report until deadline (a side that
 * has not reported by then is given up), then reaps it. */
static int
peer_finish_by(bench_peer *p, bench_out *out, uint64_t deadline)
{
    uint8_t tag = 'R';
    while (tag == 'R') {
        if (bench_read_full(p->rfd, &tag, 1, deadline) != 0) {
            return peer_lost(p, "ended without a report", out);
        }
    }
    if (tag != 'O' ||
        bench_read_full(p->rfd, out, sizeof(*out), deadline) != 0) {
        return peer_lost(p, "sent a garbled report", out);
    }
    peer_reap(p, 0, out);
    return out->ok ? 0 : -1;
}

int
bench_peer_finish(bench_peer *p, bench_out *out)
{
    return peer_finish_by(p, out, p->job.deadline_ns + PEER_GRACE_NS);
}

/* The report pipe of the side the calling process's main side is paired
 * with, while bench_pair runs it; -1 otherwise. */
static int watch_fd = -1;

int
bench_gave_up(const bench_job *job, const char *what, bench_out *out)
{
    const char *why = NULL;
    struct pollfd pfd = {.fd = watch_fd, .events = POLLIN};
    if (bench_now_ns() >= job->deadline_ns) {
        why = "not done by the deadline";
    } else if (watch_fd >= 0 && poll(&pfd, 1, 0) > 0) {
        why = "the other side stopped";
    }
    if (why != NULL && out != NULL) {
        bench_fail(out, "%s: %s", what, why);
    }
    return why != NULL;
}

int
bench_peer_done(const bench_peer *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->rfd, .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    return rc > 0 ? 1 : 0;
}

int
bench_pair(const bench_job *job, int threaded, bench_side_fn side,
           bench_main_fn main_fn, bench_out *out)
{
    bench_peer peer;
    if (bench_peer_start(&peer, threaded, side, job, out) != 0 ||
        bench_peer_wait_ready(&peer, out) != 0) {
        return -1;
    }
    pin_self(job, 0);
    bench_out mine;
    memset(&mine, 0, sizeof(mine));
    mine.ok = 1;
    const char *role = job->kind == BENCH_THROUGHPUT ? "receiver" : "server";
    bench_out theirs;
    memset(&theirs, 0, sizeof(theirs));
    watch_fd = peer.rfd;
    int failed = main_fn(job, &peer, &mine) != 0;
    watch_fd = -1;
    if (failed) {
        /* The side often knows the cause (a message out of order made it
         * stop, and then the sender's writes failed): give it a moment
         * to say so, then stop waiting for messages that never come. */
        *out = mine;
        out->ok = 0;
        if (peer_finish_by(&peer, &theirs,
                           bench_now_ns() + PEER_LAST_WORD_NS) != 0 &&
            theirs.error[0] != '\0') {
            snprintf(out->error, sizeof(out->error), "%s: %.100s (then %.60s)",
                     role, theirs.error, mine.error);
        }
        return -1;
    }
    int rc = bench_peer_finish(&peer, &theirs);
    *out = job->kind == BENCH_THROUGHPUT ? theirs : mine;
    out->resent = mine.resent + theirs.resent;
    if (rc != 0) {
        out->ok = 0;
        snprintf(out->error, sizeof(out->error), "%s: %.170s", role,
                 theirs.error);
        return -1;
    }
    return 0;
}

/* ---- messages ---- */

void
bench_fill(uint8_t *msg, size_t size, uint64_t seq)
{
    memcpy(msg, &seq, sizeof(seq));
    if (size >= 2 * sizeof(seq)) {
        memcpy(msg + size - sizeof(seq), &seq, sizeof(seq));
    }
}

int
bench_check(const uint8_t *msg, size_t len, size_t size, uint64_t seq,
            bench_out *out)
{
    if (len != size) {
        bench_fail(out, "message %" PRIu64 " has %zu bytes, expected %zu", seq,
                   len, size);
        return 0;
    }
    uint64_t head;
    uint64_t tail = seq;
    memcpy(&head, msg, sizeof(head));
    if (size >= 2 * sizeof(seq)) {
        memcpy(&tail, msg + size - sizeof(tail), sizeof(tail));
    }
    if (head != seq || tail != seq) {
        bench_fail(out,
                   "expected message %" PRIu64 ", got %" PRIu64
                   " (tail %" PRIu64 "): lost, reordered or damaged",
                   seq, head, tail);
        return 0;
    }
    return 1;
}

uint8_t *
bench_template(size_t size)
{
    uint8_t *b = malloc(size);
    if (b != NULL) {
        for (size_t i = 0; i < size; i++) {
            b[i] = (uint8_t)(i * 131u + 7u);
        }
    }
    return b;
}

int
bench_rx_message(bench_rx *rx, const bench_job *job, const void *msg,
                 size_t len, bench_out *out)
{
    if (rx->failed) {
        return 0;
    }
    /* The clock is read at the first and last message only: at tens of
     * millions of messages a second a read per message would show. */
    if (rx->expected == 0) {
        rx->first_ns = bench_now_ns();
    }
    if (rx->expected >= job->count) {
        bench_fail(out, "message beyond the %" PRIu64 " sent", job->count);
        rx->failed = 1;
        return 0;
    }
    if (!bench_check(msg, len, job->size, rx->expected, out)) {
        rx->failed = 1;
        return 0;
    }
    rx->expected++;
    if (rx->expected == job->count) {
        rx->last_ns = bench_now_ns();
    }
    return 1;
}

static int
rx_result(const bench_rx *rx, const bench_job *job, bench_out *out)
{
    out->messages = rx->expected;
    if (rx->failed) {
        return -1;
    }
    if (rx->expected < job->count || job->count < 2) {
        return bench_fail(out, "received %" PRIu64 " of %" PRIu64 " messages",
                          rx->expected, job->count);
    }
    uint64_t ns = rx->last_ns > rx->first_ns ? rx->last_ns - rx->first_ns : 1;
    out->seconds = (double)ns / 1e9;
    /* The clock starts at message 0's arrival: count - 1 intervals. */
    out->msgs_per_s = (double)(job->count - 1) / out->seconds;
    out->mb_per_s = out->msgs_per_s * (double)job->size / 1e6;
    return 0;
}

/* ---- the two loops ---- */

int
bench_send_loop(const bench_job *job, bench_push_fn push, void *ctx,
                bench_out *out)
{
    uint8_t *buf = bench_template(job->size);
    if (buf == NULL) {
        return bench_fail(out, "out of memory");
    }
    int rc = 0;
    for (uint64_t seq = 0; rc == 0 && seq < job->count; seq++) {
        bench_fill(buf, job->size, seq);
        rc = push(ctx, buf, job->size, out);
    }
    free(buf);
    return rc;
}

static int
rtt_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* rtt_rank takes the nearest-rank percentile (per mille) of sorted v,
 * in microseconds. */
static double
rtt_rank(const uint64_t *v, uint64_t n, unsigned per_mille)
{
    uint64_t rank = (n * per_mille + 999) / 1000;
    return (double)v[rank > 0 ? rank - 1 : 0] / 1000.0;
}

int
bench_client_loop(const bench_job *job, bench_trip_fn trip, void *ctx,
                  bench_out *out)
{
    uint8_t *buf = bench_template(job->size);
    uint64_t *ns = calloc(job->count, sizeof(*ns));
    int rc = buf != NULL && ns != NULL ? 0 : bench_fail(out, "out of memory");
    uint64_t n = 0;
    uint64_t total = job->warmup + job->count;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        bench_fill(buf, job->size, i);
        const uint8_t *reply = NULL;
        size_t reply_len = 0;
        uint64_t t0 = bench_now_ns();
        rc = trip(ctx, buf, job->size, &reply, &reply_len, out);
        uint64_t t1 = bench_now_ns();
        if (rc == 0 && !bench_check(reply, reply_len, job->size, i, out)) {
            rc = -1;
        }
        if (rc == 0 && i >= job->warmup) {
            ns[n++] = t1 - t0;
        }
    }
    out->messages = n;
    if (rc == 0 && n > 0) {
        qsort(ns, n, sizeof(*ns), rtt_cmp);
        out->p50_us = rtt_rank(ns, n, 500);
        out->p99_us = rtt_rank(ns, n, 990);
        out->p999_us = rtt_rank(ns, n, 999);
        uint64_t sum = 0;
        for (uint64_t i = 0; i < n; i++) {
            sum += ns[i];
        }
        out->seconds = (double)sum / 1e9;
    }
    free(ns);
    free(buf);
    return rc;
}

void
bench_unix_path(const bench_job *job, const char *what, char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/atbus-bench-%s-%s.sock", job->tag, what);
}

void
bench_lib_url(const bench_job *job, const char *lib, char *buf, size_t len)
{
    char path[108];
    switch (job->transport) {
    case BENCH_MEM:
        snprintf(buf, len, "inproc://bench-%s", job->tag);
        break;
    case BENCH_UNIX:
        bench_unix_path(job, lib, path, sizeof(path));
        snprintf(buf, len, "ipc://%s", path);
        break;
    default:
        snprintf(buf, len, "tcp://127.0.0.1:%d", job->port);
        break;
    }
}

int
bench_rx_done(const bench_rx *rx, const bench_job *job, bench_peer *self,
              bench_out *out, int rc)
{
    rc = rc == 0 && out->error[0] == '\0' ? rx_result(rx, job, out) : -1;
    out->messages = rx->expected;
    out->ok = rc == 0;
    bench_peer_report(self, out);
    return rc;
}
