/*
 * atbus on the benchmark's cases, through the public API only (as any
 * application would): a receiving node listens, a sending node dials it
 * and sends numbered messages on one stream as fast as atbus_node_send
 * takes them; for round trips a client node sends one message at a time
 * and an echo node sends each back on the same stream.
 *
 * mem:// sides are two threads of one process, each driving its own node;
 * the other channels put the sides in two processes. Through a relay, a
 * third process runs a relaying node both sides dial over unix://; each
 * side is told the other hangs under it (atbus_node_route_set). Every
 * node keeps the library's default configuration otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <atbus/atbus.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AB_RX "bench-rx"
#define AB_TX "bench-tx"
#define AB_RELAY "bench-relay"
#define AB_STREAM 1
/* Sends between two loop turns: a stream transport writes what was
 * queued at the end of a turn, so a turn every few sends keeps it busy
 * without a system call per message. */
#define AB_SEND_BATCH 64
/* Longest sleep in one loop turn, so that deadlines are seen. */
#define AB_WAIT_MS 100
/* How long the echo node stays after the last round trip, for its last
 * echo to be written, when it cannot see the client leave (through a
 * relay). */
#define AB_LINGER_NS (500ull * 1000000ull)

typedef struct ab_node {
    atbus_node *node;
    const bench_job *job;
    bench_out *out;
    const char *peer; /* the other side's name */
    /* The node this one is connected to: the peer, or the relay. */
    const char *neighbour;
    int peer_up; /* the neighbour registered */
    int peer_gone;
    int down_reason;
    int connect_err;
    /* Receiver. */
    bench_rx rx;
    /* Echo node. */
    uint64_t echoed;
    int echo_err;
    /* Sender: messages accepted so far. */
    uint64_t sent;
    /* Client: the last echo (job->size bytes of room), and whether it
     * came. */
    uint8_t *echo;
    size_t echo_len;
    int echo_got;
    int listening; /* the receiver or echo node */
} ab_node;

static void
ab_url(const bench_job *job, char *buf, size_t len)
{
    switch (job->transport) {
    case BENCH_MEM:
        snprintf(buf, len, "mem://bench-%s", job->tag);
        break;
    case BENCH_SHM:
        snprintf(buf, len, "shm://bench-%s", job->tag);
        break;
    case BENCH_UNIX:
    case BENCH_RELAY: {
        char path[108];
        bench_unix_path(job, job->transport == BENCH_UNIX ? "atbus" : "relay",
                        path, sizeof(path));
        snprintf(buf, len, "unix://%s", path);
        break;
    }
    default:
        snprintf(buf, len, "ipv4://127.0.0.1:%d", job->port);
        break;
    }
}

static void
ab_on_message(atbus_node *node, const char *source, int64_t stream_id,
              const void *data, size_t len, void *arg)
{
    ab_node *a = arg;
    const bench_job *job = a->job;
    if (stream_id != AB_STREAM) {
        return;
    }
    if (job->kind == BENCH_THROUGHPUT) {
        /* The only peer: the numbering check would catch any other
         * sender, without a name compare per message. */
        bench_rx_message(&a->rx, job, data, len, a->out);
        return;
    }
    if (strcmp(source, a->peer) != 0) {
        return;
    }
    if (a->listening) {
        int rc = atbus_node_send(node, source, stream_id, data, len);
        if (rc != ATBUS_OK) {
            a->echo_err = rc;
        }
        a->echoed++;
        return;
    }
    /* Borrowed until the callback returns: keep a copy for the check. */
    memcpy(a->echo, data, len < job->size ? len : job->size);
    a->echo_len = len;
    a->echo_got = 1;
}

static void
ab_on_peer_up(atbus_node *node, const atbus_peer_info *peer, void *arg)
{
    (void)node;
    ab_node *a = arg;
    if (strcmp(peer->name, a->neighbour) == 0) {
        a->peer_up = 1;
    }
}

static void
ab_on_peer_down(atbus_node *node, const char *name, int reason, void *arg)
{
    (void)node;
    ab_node *a = arg;
    if (strcmp(name, a->neighbour) == 0) {
        a->peer_up = 0;
        a->peer_gone = 1;
        a->down_reason = reason;
    }
}

static void
ab_on_connect_error(atbus_node *node, const char *url, int err, void *arg)
{
    (void)node;
    (void)url;
    ab_node *a = arg;
    a->connect_err = err;
}

/* ab_open creates node `name` that talks to `peer`: it listens on the
 * job's URL when listen is set, else dials it; through a relay, both
 * dial the relay. */
static int
ab_open(ab_node *a, const bench_job *job, const char *name, const char *peer,
        int listen, bench_out *out)
{
    memset(a, 0, sizeof(*a));
    a->job = job;
    a->out = out;
    a->peer = peer;
    a->listening = listen;
    int relayed = job->transport == BENCH_RELAY;
    a->neighbour = relayed ? AB_RELAY : peer;
    static const char *const relays[1] = {AB_RELAY};
    if (!listen && job->kind == BENCH_LATENCY &&
        (a->echo = malloc(job->size)) == NULL) {
        return bench_fail(out, "out of memory");
    }
    char url[160];
    ab_url(job, url, sizeof(url));
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = name;
    if (listen && !relayed) {
        cfg.listen[0] = url;
        cfg.listen_count = 1;
    }
    if (relayed) {
        cfg.upstreams[0] = AB_RELAY;
        cfg.upstream_count = 1;
    }
    int rc = atbus_node_new(&a->node, &cfg);
    if (rc != ATBUS_OK) {
        return bench_fail(out, "atbus_node_new: %s", atbus_strerror(rc));
    }
    atbus_node_callbacks cbs = {
        .on_message = ab_on_message,
        .on_peer_up = ab_on_peer_up,
        .on_peer_down = ab_on_peer_down,
        .on_connect_error = ab_on_connect_error,
    };
    atbus_node_set_callbacks(a->node, &cbs, a);
    /* The peer is not a neighbour: say where it hangs, as discovery
     * would. */
    rc = relayed ? atbus_node_route_set(a->node, peer, relays, 1, NULL)
                 : ATBUS_OK;
    if (rc != ATBUS_OK) {
        return bench_fail(out, "atbus_node_route_set: %s", atbus_strerror(rc));
    }
    int serve = listen && !relayed;
    rc = serve ? atbus_node_start(a->node) : atbus_node_connect(a->node, url);
    if (rc != ATBUS_OK) {
        return bench_fail(out, "%s %s: %s",
                          serve ? "atbus_node_start" : "atbus_node_connect",
                          url, atbus_strerror(rc));
    }
    return 0;
}

/* ab_counters copies what the node counted into out: frames received
 * and packets sent again (retransmissions show a struggling channel). */
static void
ab_counters(ab_node *a)
{
    atbus_node_stats st;
    if (a->node == NULL || atbus_node_get_stats(a->node, &st) != ATBUS_OK) {
        return;
    }
    a->out->frames = st.frames_in;
    uint64_t resent = 0;
    atbus_conn_stats cs;
    for (size_t i = 0;
         atbus_node_conn_stats(a->node, a->peer, i, &cs) == ATBUS_OK; i++) {
        resent += cs.retransmissions;
    }
    a->out->resent = resent;
}

static void
ab_close(ab_node *a)
{
    ab_counters(a);
    atbus_node_free(a->node);
    a->node = NULL;
    free(a->echo);
    a->echo = NULL;
    if (a->job->transport == BENCH_UNIX) {
        char path[108];
        bench_unix_path(a->job, "atbus", path, sizeof(path));
        remove(path);
    }
}

/* ab_alive fails out when the peer left, the other side stopped or the
 * deadline passed. */
static int
ab_alive(ab_node *a, const char *what)
{
    if (a->peer_gone) {
        return bench_fail(a->out, "%s: peer went away: %s", what,
                          atbus_strerror(a->down_reason));
    }
    return bench_gave_up(a->job, what, a->out) ? -1 : 0;
}

/* ab_wait_peer turns the loop until the peer has registered. */
static int
ab_wait_peer(ab_node *a)
{
    while (!a->peer_up) {
        if (bench_now_ns() >= a->job->deadline_ns) {
            return bench_fail(a->out, "peer did not register in time (%s)",
                              a->connect_err != 0
                                  ? atbus_strerror(a->connect_err)
                                  : "no connect error");
        }
        atbus_node_poll(a->node, 10);
    }
    return 0;
}

static int
ab_side(const bench_job *job, bench_peer *self, bench_out *out)
{
    ab_node a;
    int rc = ab_open(&a, job, AB_RX, AB_TX, 1, out);
    if (rc == 0 && job->transport == BENCH_RELAY) {
        /* Ready only once the relay can reach this node. */
        rc = ab_wait_peer(&a);
    }
    if (rc == 0) {
        bench_peer_ready(self);
    }
    if (job->kind == BENCH_THROUGHPUT) {
        while (rc == 0 && a.rx.expected < job->count && !a.rx.failed &&
               bench_now_ns() < job->deadline_ns) {
            atbus_node_poll(a.node, AB_WAIT_MS);
        }
        ab_counters(&a);
        rc = bench_rx_done(&a.rx, job, self, out, rc);
    } else {
        uint64_t total = job->warmup + job->count;
        uint64_t done_at = 0;
        /* Served: stay until the client leaves, so the last echo is
         * written. */
        while (rc == 0 && a.echo_err == 0 && !a.peer_gone &&
               bench_now_ns() < job->deadline_ns) {
            if (a.echoed >= total && done_at == 0) {
                done_at = bench_now_ns();
            }
            if (done_at != 0 && bench_now_ns() - done_at > AB_LINGER_NS) {
                break;
            }
            atbus_node_poll(a.node, AB_WAIT_MS);
        }
        if (rc == 0 && (a.echo_err != 0 || a.echoed < total)) {
            rc = bench_fail(out, "echoed %llu of %llu (%s)",
                            (unsigned long long)a.echoed,
                            (unsigned long long)total,
                            a.echo_err != 0 ? atbus_strerror(a.echo_err)
                                            : "no more requests");
        }
    }
    ab_close(&a);
    return rc;
}

/* ab_pump turns the loop once, waking for the node or the other side's
 * report. Returns 1 once the report is there. */
static int
ab_pump(ab_node *a, const bench_peer *peer, int wait_ms)
{
    struct pollfd fds[2] = {
        {.fd = atbus_node_fd(a->node), .events = POLLIN},
        {.fd = bench_peer_fd(peer), .events = POLLIN},
    };
    int ms = atbus_node_timeout_ms(a->node);
    ms = ms >= 0 && ms < wait_ms ? ms : wait_ms;
    (void)poll(fds, 2, ms);
    atbus_node_poll(a->node, 0);
    return (fds[1].revents & (POLLIN | POLLHUP)) != 0;
}

static int
ab_push(void *ctx, const uint8_t *msg, size_t len, bench_out *out)
{
    ab_node *a = ctx;
    for (;;) {
        int err = atbus_node_send(a->node, AB_RX, AB_STREAM, msg, len);
        if (err == ATBUS_OK) {
            if (++a->sent % AB_SEND_BATCH == 0) {
                atbus_node_poll(a->node, 0);
            }
            return 0;
        }
        if (err != ATBUS_EWOULDBLOCK) {
            return bench_fail(out, "atbus_node_send: %s", atbus_strerror(err));
        }
        /* The window is full: acknowledgements open it again. */
        atbus_node_poll(a->node, 1);
        if (ab_alive(a, "sending") != 0) {
            return -1;
        }
    }
}

static int
ab_sender(const bench_job *job, bench_peer *peer, bench_out *out)
{
    ab_node a;
    int rc = ab_open(&a, job, AB_TX, AB_RX, 0, out);
    rc = rc == 0 ? ab_wait_peer(&a) : rc;
    rc = rc == 0 ? bench_send_loop(job, ab_push, &a, out) : rc;
    /* The receiver needs this node's loop until its last message. */
    while (rc == 0 && !ab_pump(&a, peer, AB_WAIT_MS) &&
           bench_now_ns() < job->deadline_ns) {
    }
    ab_close(&a);
    return rc;
}

static int
ab_trip(void *ctx, const uint8_t *req, size_t len, const uint8_t **reply,
        size_t *reply_len, bench_out *out)
{
    ab_node *a = ctx;
    a->echo_got = 0;
    int err = atbus_node_send(a->node, AB_RX, AB_STREAM, req, len);
    if (err != ATBUS_OK) {
        return bench_fail(out, "atbus_node_send: %s", atbus_strerror(err));
    }
    while (!a->echo_got) {
        atbus_node_poll(a->node, AB_WAIT_MS);
        if (ab_alive(a, "round trip") != 0) {
            return -1;
        }
    }
    *reply = a->echo;
    *reply_len = a->echo_len;
    return 0;
}

static int
ab_client(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    ab_node a;
    int rc = ab_open(&a, job, AB_TX, AB_RX, 0, out);
    rc = rc == 0 ? ab_wait_peer(&a) : rc;
    rc = rc == 0 ? bench_client_loop(job, ab_trip, &a, out) : rc;
    ab_close(&a);
    return rc;
}

/* The relay's node: it counts its neighbours, to end when both left. */
typedef struct ab_relay_state {
    int up;
    int seen;
} ab_relay_state;

static void
ab_relay_up(atbus_node *node, const atbus_peer_info *peer, void *arg)
{
    (void)node;
    (void)peer;
    ab_relay_state *r = arg;
    r->up++;
    r->seen++;
}

static void
ab_relay_down(atbus_node *node, const char *name, int reason, void *arg)
{
    (void)node;
    (void)name;
    (void)reason;
    ab_relay_state *r = arg;
    r->up--;
}

static int
ab_relay(const bench_job *job, bench_peer *self, bench_out *out)
{
    char url[160];
    ab_url(job, url, sizeof(url));
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = AB_RELAY;
    cfg.relay = 1;
    cfg.listen[0] = url;
    cfg.listen_count = 1;
    atbus_node *node = NULL;
    int rc = atbus_node_new(&node, &cfg);
    ab_relay_state r = {0, 0};
    atbus_node_callbacks cbs = {
        .on_peer_up = ab_relay_up,
        .on_peer_down = ab_relay_down,
    };
    if (rc == ATBUS_OK) {
        atbus_node_set_callbacks(node, &cbs, &r);
        rc = atbus_node_start(node);
    }
    if (rc != ATBUS_OK) {
        atbus_node_free(node);
        return bench_fail(out, "relay: %s", atbus_strerror(rc));
    }
    bench_peer_ready(self);
    /* Both sides came and went: the measurement is over. */
    while (!(r.seen >= 2 && r.up <= 0) && bench_now_ns() < job->deadline_ns) {
        atbus_node_poll(node, AB_WAIT_MS);
    }
    atbus_node_stats st;
    if (atbus_node_get_stats(node, &st) == ATBUS_OK) {
        out->frames = st.frames_forwarded;
    }
    atbus_node_free(node);
    bench_unix_path(job, "relay", url, sizeof(url));
    remove(url);
    return 0;
}

int
bench_atbus_relay_run(const bench_job *job, bench_out *out)
{
    bench_peer relay;
    if (bench_peer_start(&relay, 0, ab_relay, job, out) != 0 ||
        bench_peer_wait_ready(&relay, out) != 0) {
        return -1;
    }
    int rc = job->kind == BENCH_THROUGHPUT
                 ? bench_pair(job, 0, ab_side, ab_sender, out)
                 : bench_pair(job, 0, ab_side, ab_client, out);
    bench_out rout;
    memset(&rout, 0, sizeof(rout));
    if (bench_peer_finish(&relay, &rout) != 0 && rc == 0) {
        return bench_fail(out, "relay: %.180s", rout.error);
    }
    if (rc == 0 && rout.frames == 0) {
        return bench_fail(out, "the relay forwarded nothing");
    }
    return rc;
}

int
bench_atbus_run(const bench_job *job, bench_out *out)
{
    int threaded = job->transport == BENCH_MEM;
    return job->kind == BENCH_THROUGHPUT
               ? bench_pair(job, threaded, ab_side, ab_sender, out)
               : bench_pair(job, threaded, ab_side, ab_client, out);
}
