/*
 * ZeroMQ on the benchmark's cases, used as its documentation shows:
 * PUSH/PULL for one-way throughput, REQ/REP for round trips, default high
 * water marks, one I/O thread. inproc sides are two threads sharing one
 * context; ipc and tcp sides are two processes.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Receive and send timeouts: short, so that a stuck peer is noticed at
 * the job's deadline rather than never. */
#define ZMQ_WAIT_MS 200

/* One side's socket, in the shared context (inproc) or its own; msg
 * holds the last message received. */
typedef struct zside {
    const bench_job *job;
    void *ctx;
    int own_ctx;
    void *sock;
    zmq_msg_t msg;
} zside;

static int
zside_open(zside *z, const bench_job *job, int type, int bind, bench_out *out)
{
    memset(z, 0, sizeof(*z));
    z->job = job;
    zmq_msg_init(&z->msg);
    z->own_ctx = job->transport != BENCH_MEM;
    z->ctx = z->own_ctx ? zmq_ctx_new() : job->shared;
    if (z->ctx == NULL) {
        return bench_fail(out, "zmq_ctx_new: %s", zmq_strerror(errno));
    }
    z->sock = zmq_socket(z->ctx, type);
    if (z->sock == NULL) {
        return bench_fail(out, "zmq_socket: %s", zmq_strerror(errno));
    }
    int ms = ZMQ_WAIT_MS;
    int linger = 0;
    zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &ms, sizeof(ms));
    zmq_setsockopt(z->sock, ZMQ_SNDTIMEO, &ms, sizeof(ms));
    /* Closing happens after the other side reported: nothing is left to
     * deliver. */
    zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof(linger));
    char url[160];
    bench_lib_url(job, "zmq", url, sizeof(url));
    int rc = bind ? zmq_bind(z->sock, url) : zmq_connect(z->sock, url);
    if (rc != 0) {
        return bench_fail(out, "zmq_%s %s: %s", bind ? "bind" : "connect", url,
                          zmq_strerror(errno));
    }
    return 0;
}

static void
zside_close(zside *z)
{
    zmq_msg_close(&z->msg);
    if (z->sock != NULL) {
        zmq_close(z->sock);
    }
    if (z->own_ctx && z->ctx != NULL) {
        zmq_ctx_term(z->ctx);
    }
}

/* zside_failed says whether a failed call is final: anything but a
 * timeout, or a timeout past the deadline (then out says so). */
static int
zside_failed(const zside *z, const char *what, bench_out *out)
{
    if (errno != EAGAIN && errno != EINTR) {
        bench_fail(out, "%s: %s", what, zmq_strerror(errno));
        return 1;
    }
    return bench_gave_up(z->job, what, out);
}

static int
zside_send(zside *z, const uint8_t *msg, size_t len, bench_out *out)
{
    while (zmq_send(z->sock, msg, len, 0) < 0) {
        if (zside_failed(z, "zmq_send", out)) {
            return -1;
        }
    }
    return 0;
}

static int
zside_recv(zside *z, bench_out *out)
{
    while (zmq_msg_recv(&z->msg, z->sock, 0) < 0) {
        if (zside_failed(z, "zmq_msg_recv", out)) {
            return -1;
        }
    }
    return 0;
}

static int
zb_receiver(const bench_job *job, bench_peer *self, bench_out *out)
{
    zside z;
    int rc = zside_open(&z, job, ZMQ_PULL, 1, out);
    if (rc == 0) {
        bench_peer_ready(self);
    }
    bench_rx rx;
    memset(&rx, 0, sizeof(rx));
    while (rc == 0 && rx.expected < job->count && !rx.failed) {
        rc = zside_recv(&z, out);
        if (rc == 0) {
            bench_rx_message(&rx, job, zmq_msg_data(&z.msg),
                             zmq_msg_size(&z.msg), out);
        }
    }
    rc = bench_rx_done(&rx, job, self, out, rc);
    zside_close(&z);
    return rc;
}

static int
zb_push(void *ctx, const uint8_t *msg, size_t len, bench_out *out)
{
    return zside_send(ctx, msg, len, out);
}

static int
zb_sender(const bench_job *job, bench_peer *peer, bench_out *out)
{
    zside z;
    int rc = zside_open(&z, job, ZMQ_PUSH, 0, out);
    rc = rc == 0 ? bench_send_loop(job, zb_push, &z, out) : rc;
    while (rc == 0 && !bench_peer_done(peer, ZMQ_WAIT_MS) &&
           bench_now_ns() < job->deadline_ns) {
    }
    zside_close(&z);
    return rc;
}

static int
zb_server(const bench_job *job, bench_peer *self, bench_out *out)
{
    zside z;
    int rc = zside_open(&z, job, ZMQ_REP, 1, out);
    if (rc == 0) {
        bench_peer_ready(self);
    }
    uint64_t total = job->warmup + job->count;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        rc = zside_recv(&z, out);
        /* The request goes back as it came: no copy. */
        while (rc == 0 && zmq_msg_send(&z.msg, z.sock, 0) < 0) {
            rc = zside_failed(&z, "zmq_msg_send", out) ? -1 : 0;
        }
    }
    zside_close(&z);
    return rc;
}

static int
zb_trip(void *ctx, const uint8_t *req, size_t len, const uint8_t **reply,
        size_t *reply_len, bench_out *out)
{
    zside *z = ctx;
    if (zside_send(z, req, len, out) != 0 || zside_recv(z, out) != 0) {
        return -1;
    }
    *reply = zmq_msg_data(&z->msg);
    *reply_len = zmq_msg_size(&z->msg);
    return 0;
}

static int
zb_client(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    zside z;
    int rc = zside_open(&z, job, ZMQ_REQ, 0, out);
    rc = rc == 0 ? bench_client_loop(job, zb_trip, &z, out) : rc;
    zside_close(&z);
    return rc;
}

int
bench_zmq_run(const bench_job *job, bench_out *out)
{
    bench_job j = *job;
    int threaded = job->transport == BENCH_MEM;
    if (threaded) {
        /* inproc connects sockets of one context only. */
        j.shared = zmq_ctx_new();
        if (j.shared == NULL) {
            return bench_fail(out, "zmq_ctx_new: %s", zmq_strerror(errno));
        }
    }
    int rc = job->kind == BENCH_THROUGHPUT
                 ? bench_pair(&j, threaded, zb_receiver, zb_sender, out)
                 : bench_pair(&j, threaded, zb_server, zb_client, out);
    if (threaded && rc == 0) {
        /* After a failure a side may still hold a socket; the runner
         * exits instead of waiting for it. */
        zmq_ctx_term(j.shared);
    }
    if (job->transport == BENCH_UNIX) {
        char path[108];
        bench_unix_path(job, "zmq", path, sizeof(path));
        remove(path);
    }
    return rc;
}
