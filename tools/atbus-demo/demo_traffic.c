/*
 * Traffic between two nodes: bounded streams of numbered messages sent
 * as fast as atbus_node_send takes them, checked by the receiver, and
 * ping-pong round trips. The sender is a node of this process; the
 * receiver may live anywhere, and reports what it saw on the control
 * stream ("end <run>" / "done ...").
 *
 * Every wait is a loop bounded by a deadline, turning this process's
 * nodes in between.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sends between loop turns: a turn every few sends keeps the connection
 * busy without a system call per message. */
#define SEND_BATCH 64
/* "end" is repeated at this interval until the receiver answers. */
#define END_RETRY_US 200000u
/* A pong later than this fails the run. */
#define PING_TIMEOUT_US 1000000u

static uint32_t next_run = 1;

void
demo_flow_init(demo_flow *f, demo_node *src, const char *dst, size_t size,
               uint64_t count)
{
    memset(f, 0, sizeof(*f));
    f->src = src;
    f->dst = dst;
    f->run = next_run++;
    f->size = size < DEMO_HEADER ? DEMO_HEADER : size;
    if (f->size > DEMO_MAX_MESSAGE) {
        f->size = DEMO_MAX_MESSAGE;
    }
    f->count = count;
}

int
demo_flow_step(demo_flow *f, uint64_t batch)
{
    uint8_t buf[DEMO_MAX_MESSAGE];
    for (uint64_t i = 0; i < batch && f->accepted < f->count; i++) {
        demo_fill(buf, f->size, f->run, f->accepted);
        int rc = atbus_node_send(f->src->node, f->dst, DEMO_STREAM_DATA, buf,
                                 f->size);
        if (rc == ATBUS_EWOULDBLOCK) {
            break; /* on_writable wakes the loop once acks open it */
        }
        if (rc != ATBUS_OK) {
            f->refused++;
            f->last_refusal = rc;
            if (f->give_up) {
                f->count = f->accepted;
            }
            break;
        }
        if (f->accepted == 0) {
            f->first_us = demo_now_us();
        }
        f->accepted++;
    }
    return f->accepted < f->count;
}

uint64_t
demo_flow_unacked(const demo_flow *f)
{
    atbus_stream_stats st;
    if (atbus_node_stream_stats(f->src->node, f->dst, DEMO_STREAM_DATA, &st) !=
        ATBUS_OK) {
        return UINT64_MAX;
    }
    return st.messages_unacked;
}

int
demo_rx_check(const demo_rx *rx, uint32_t run, uint64_t count)
{
    return rx->run == run && rx->received == count && rx->next_seq == count &&
           rx->damaged == 0 && rx->out_of_order == 0;
}

/* ask_receiver sends "end <run>" until the receiver's count shows all
 * count messages, or something wrong, or the deadline passes; then
 * src->done holds the last count. An early count can be short even after
 * the sender saw every message acknowledged: messages taken off a dead
 * path wait to be sent again without counting as unacknowledged. Returns
 * 0, or -1 when no count came at all. */
static int
ask_receiver(demo_node *src, const char *dst, uint32_t run, uint64_t count,
             uint64_t deadline_us)
{
    char end[32];
    int n = snprintf(end, sizeof(end), "end %" PRIu32, run);
    uint64_t next = 0;
    demo_rx last;
    int answered = 0;
    for (;;) {
        if (src->done_run == run) {
            last = src->done;
            answered = 1;
            if (last.received >= count || last.damaged != 0 ||
                last.out_of_order != 0) {
                return 0;
            }
            src->done_run = 0; /* short: ask again */
        }
        uint64_t now = demo_now_us();
        if (now >= deadline_us) {
            if (answered) {
                src->done = last;
                src->done_run = run;
            }
            return answered ? 0 : -1;
        }
        if (now >= next) {
            /* A full window just means the next repetition carries it. */
            (void)atbus_node_send(src->node, dst, DEMO_STREAM_CTRL, end,
                                  (size_t)n);
            next = now + END_RETRY_US;
        }
        demo_pump(1);
    }
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* percentile takes the nearest-rank percentile of sorted v. */
static double
percentile(const uint32_t *v, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

static int
measure_rtt(demo_node *src, const char *dst, int pings, uint64_t deadline_us,
            demo_measure *out)
{
    uint32_t *rtt = calloc((size_t)pings, sizeof(*rtt));
    if (rtt == NULL) {
        return demo_failf(out->error, sizeof(out->error), "out of memory");
    }
    src->pong_run = next_run++;
    src->pongs_bad = 0;
    uint8_t buf[64];
    int rc = 0;
    for (int i = 0; i < pings && rc == 0; i++) {
        demo_fill(buf, sizeof(buf), src->pong_run, (uint64_t)i);
        src->pong_seq = UINT64_MAX;
        uint64_t sent = demo_now_us();
        int err =
            atbus_node_send(src->node, dst, DEMO_STREAM_PING, buf, sizeof(buf));
        if (err != ATBUS_OK) {
            rc = demo_failf(out->error, sizeof(out->error),
                            "ping %d: atbus_node_send: %s", i,
                            atbus_err_name(err));
            break;
        }
        while (src->pong_seq != (uint64_t)i) {
            uint64_t now = demo_now_us();
            if (now - sent >= PING_TIMEOUT_US || now >= deadline_us) {
                rc = demo_failf(out->error, sizeof(out->error),
                                "no answer to ping %d within %u ms", i,
                                PING_TIMEOUT_US / 1000);
                break;
            }
            demo_pump(10);
        }
        rtt[i] = (uint32_t)(src->pong_at_us - sent);
    }
    if (rc == 0 && src->pongs_bad != 0) {
        rc = demo_failf(out->error, sizeof(out->error),
                        "%" PRIu64 " damaged pongs", src->pongs_bad);
    }
    if (rc == 0) {
        qsort(rtt, (size_t)pings, sizeof(*rtt), cmp_u32);
        out->pings = pings;
        out->rtt_p50_us = percentile(rtt, (size_t)pings, 50);
        out->rtt_p99_us = percentile(rtt, (size_t)pings, 99);
    }
    free(rtt);
    return rc;
}

int
demo_measure_pair(demo_node *src, const char *dst, uint64_t count, size_t size,
                  int pings, uint64_t deadline_us, demo_measure *out)
{
    memset(out, 0, sizeof(*out));
    demo_flow f;
    demo_flow_init(&f, src, dst, size, count);
    out->messages = count;
    while (demo_flow_step(&f, SEND_BATCH)) {
        if (f.refused != 0) {
            return demo_failf(out->error, sizeof(out->error),
                              "atbus_node_send: %s",
                              atbus_err_name(f.last_refusal));
        }
        if (demo_now_us() >= deadline_us) {
            return demo_failf(out->error, sizeof(out->error),
                              "sent %" PRIu64 " of %" PRIu64
                              " messages in the time given",
                              f.accepted, count);
        }
        demo_pump(0);
    }
    /* Every message acknowledged end to end: the receiver has them all.
     * Only then is "end" sent: the control stream is independent of the
     * data stream and could overtake it. */
    uint64_t unacked;
    while ((unacked = demo_flow_unacked(&f)) != 0) {
        if (demo_now_us() >= deadline_us) {
            return demo_failf(out->error, sizeof(out->error),
                              "%" PRIu64 " messages still unacknowledged",
                              unacked);
        }
        demo_pump(1);
    }
    out->seconds = (double)(demo_now_us() - f.first_us) / 1e6;
    out->msgs_s = (double)count / out->seconds;
    out->mb_s = (double)count * (double)f.size / out->seconds / 1e6;
    if (ask_receiver(src, dst, f.run, count, deadline_us) != 0) {
        return demo_failf(out->error, sizeof(out->error),
                          "the receiver did not report in time");
    }
    out->seen = src->done;
    if (!demo_rx_check(&src->done, f.run, count)) {
        return demo_failf(out->error, sizeof(out->error),
                          "receiver saw %" PRIu64 " of %" PRIu64
                          " (next %" PRIu64 "), %" PRIu64 " damaged, %" PRIu64
                          " out of order",
                          src->done.received, count, src->done.next_seq,
                          src->done.damaged, src->done.out_of_order);
    }
    return measure_rtt(src, dst, pings, deadline_us, out);
}
