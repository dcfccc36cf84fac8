/*
 * nng on the benchmark's cases: pair0 for one-way throughput (push0/pull0
 * runs about ten times slower in nng 1.5), req0/rep0 for round trips;
 * 1000-message socket buffers for throughput. inproc sides are two
 * threads of one process; ipc and tcp sides are two processes.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <string.h>

#define NNG_WAIT_MS 200
#define NNG_BUFFER_MSGS 1000

enum { NSIDE_PAIR, NSIDE_REQ, NSIDE_REP };

/* One side's socket; msg is the last message received (owned). */
typedef struct nside {
    const bench_job *job;
    nng_socket sock;
    nng_msg *msg;
} nside;

static int
nside_open(nside *n, const bench_job *job, int proto, int listen,
           bench_out *out)
{
    memset(n, 0, sizeof(*n));
    n->job = job;
    int rv = proto == NSIDE_PAIR  ? nng_pair0_open(&n->sock)
             : proto == NSIDE_REQ ? nng_req0_open(&n->sock)
                                  : nng_rep0_open(&n->sock);
    if (rv != 0) {
        return bench_fail(out, "nng open: %s", nng_strerror(rv));
    }
    nng_socket_set_ms(n->sock, NNG_OPT_RECVTIMEO, NNG_WAIT_MS);
    nng_socket_set_ms(n->sock, NNG_OPT_SENDTIMEO, NNG_WAIT_MS);
    if (proto == NSIDE_PAIR) {
        nng_socket_set_int(n->sock, NNG_OPT_RECVBUF, NNG_BUFFER_MSGS);
        nng_socket_set_int(n->sock, NNG_OPT_SENDBUF, NNG_BUFFER_MSGS);
    }
    char url[160];
    bench_lib_url(job, "nng", url, sizeof(url));
    rv = listen ? nng_listen(n->sock, url, NULL, 0)
                : nng_dial(n->sock, url, NULL, 0);
    if (rv != 0) {
        return bench_fail(out, "nng_%s %s: %s", listen ? "listen" : "dial", url,
                          nng_strerror(rv));
    }
    return 0;
}

static void
nside_close(nside *n)
{
    if (n->msg != NULL) {
        nng_msg_free(n->msg);
    }
    nng_close(n->sock);
}

/* nside_failed says whether a failed call is final: anything but a
 * timeout, or a timeout past the deadline (then out says so). */
static int
nside_failed(const nside *n, int rv, const char *what, bench_out *out)
{
    if (rv != NNG_ETIMEDOUT && rv != NNG_EINTR) {
        bench_fail(out, "%s: %s", what, nng_strerror(rv));
        return 1;
    }
    return bench_gave_up(n->job, what, out);
}

static int
nside_send(nside *n, const uint8_t *msg, size_t len, bench_out *out)
{
    int rv;
    while ((rv = nng_send(n->sock, (void *)(uintptr_t)msg, len, 0)) != 0) {
        if (nside_failed(n, rv, "nng_send", out)) {
            return -1;
        }
    }
    return 0;
}

static int
nside_recv(nside *n, bench_out *out)
{
    if (n->msg != NULL) {
        nng_msg_free(n->msg);
        n->msg = NULL;
    }
    int rv;
    while ((rv = nng_recvmsg(n->sock, &n->msg, 0)) != 0) {
        n->msg = NULL;
        if (nside_failed(n, rv, "nng_recvmsg", out)) {
            return -1;
        }
    }
    return 0;
}

static int
nb_receiver(const bench_job *job, bench_peer *self, bench_out *out)
{
    nside n;
    int rc = nside_open(&n, job, NSIDE_PAIR, 1, out);
    if (rc == 0) {
        bench_peer_ready(self);
    }
    bench_rx rx;
    memset(&rx, 0, sizeof(rx));
    while (rc == 0 && rx.expected < job->count && !rx.failed) {
        rc = nside_recv(&n, out);
        if (rc == 0) {
            bench_rx_message(&rx, job, nng_msg_body(n.msg), nng_msg_len(n.msg),
                             out);
        }
    }
    rc = bench_rx_done(&rx, job, self, out, rc);
    nside_close(&n);
    return rc;
}

static int
nb_push(void *ctx, const uint8_t *msg, size_t len, bench_out *out)
{
    return nside_send(ctx, msg, len, out);
}

static int
nb_sender(const bench_job *job, bench_peer *peer, bench_out *out)
{
    nside n;
    int rc = nside_open(&n, job, NSIDE_PAIR, 0, out);
    rc = rc == 0 ? bench_send_loop(job, nb_push, &n, out) : rc;
    /* Closing drops what the socket still buffers: wait for the
     * receiver's count first. */
    while (rc == 0 && !bench_peer_done(peer, NNG_WAIT_MS) &&
           bench_now_ns() < job->deadline_ns) {
    }
    nside_close(&n);
    return rc;
}

static int
nb_server(const bench_job *job, bench_peer *self, bench_out *out)
{
    nside n;
    int rc = nside_open(&n, job, NSIDE_REP, 1, out);
    if (rc == 0) {
        bench_peer_ready(self);
    }
    uint64_t total = job->warmup + job->count;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        rc = nside_recv(&n, out);
        /* The request goes back as it came: no copy. On success nng owns
         * the message. */
        int rv;
        while (rc == 0 && (rv = nng_sendmsg(n.sock, n.msg, 0)) != 0) {
            rc = nside_failed(&n, rv, "nng_sendmsg", out) ? -1 : 0;
        }
        if (rc == 0) {
            n.msg = NULL;
        }
    }
    nside_close(&n);
    return rc;
}

static int
nb_trip(void *ctx, const uint8_t *req, size_t len, const uint8_t **reply,
        size_t *reply_len, bench_out *out)
{
    nside *n = ctx;
    if (nside_send(n, req, len, out) != 0 || nside_recv(n, out) != 0) {
        return -1;
    }
    *reply = nng_msg_body(n->msg);
    *reply_len = nng_msg_len(n->msg);
    return 0;
}

static int
nb_client(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    nside n;
    int rc = nside_open(&n, job, NSIDE_REQ, 0, out);
    rc = rc == 0 ? bench_client_loop(job, nb_trip, &n, out) : rc;
    nside_close(&n);
    return rc;
}

int
bench_nng_run(const bench_job *job, bench_out *out)
{
    int threaded = job->transport == BENCH_MEM;
    int rc = job->kind == BENCH_THROUGHPUT
                 ? bench_pair(job, threaded, nb_receiver, nb_sender, out)
                 : bench_pair(job, threaded, nb_server, nb_client, out);
    if (job->transport == BENCH_UNIX) {
        char path[108];
        bench_unix_path(job, "nng", path, sizeof(path));
        remove(path);
    }
    return rc;
}
