/*
 * An app node: connects to the hub, measures throughput (numbered
 * messages as fast as the API takes them, until the hub confirms the
 * last) and latency (ping-pong), or shows which channel the library picks
 * among several connections.
 *
 * Everything is written as plain loops bounded by a deadline; demo_app_pump
 * turns the loop in between. An app that shares its thread with the hub
 * (mem://) turns both loops, waiting on both descriptors, so neither side
 * starves the other.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sends between loop turns: stream transports write what was queued at
 * the end of a turn, so a turn every few sends keeps the pipe full
 * without a system call per message. */
#define APP_SEND_BATCH 64
/* "end" is repeated at this interval until the hub answers (it can be
 * lost on udp). */
#define APP_END_RETRY_US 200000u
/* A pong later than this is counted lost (udp) or fails the run. */
#define APP_PING_TIMEOUT_US 500000u

struct demo_app {
    atbus_node *node;
    atbus_node *hub; /* the hub's node when it lives in this thread */
    int hub_up;
    int hub_down_reason;
    int connect_err;
    char connect_url[160];
    /* The hub's answer to "end <run>". */
    uint32_t done_run;
    uint64_t done_at;
    uint64_t done_received;
    uint64_t done_bad;
    uint64_t done_reordered;
    /* The last intact pong. */
    uint64_t pong_seq;
    uint64_t pong_at;
    uint64_t pongs_bad;
    uint32_t run;
};

static int app_fail(demo_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
app_fail(demo_result *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

static void
app_on_message(atbus_node *node, const char *source, int64_t stream_id,
               const void *data, size_t len, void *arg)
{
    (void)node;
    demo_app *app = arg;
    if (strcmp(source, DEMO_HUB_NAME) != 0) {
        return;
    }
    if (stream_id == DEMO_STREAM_PONG) {
        uint32_t run;
        uint64_t seq;
        if (demo_parse(data, len, &run, &seq) && run == app->run) {
            app->pong_seq = seq;
            app->pong_at = demo_now_us();
        } else {
            app->pongs_bad++;
        }
        return;
    }
    char text[128];
    if (stream_id != DEMO_STREAM_CTRL || len >= sizeof(text)) {
        return;
    }
    memcpy(text, data, len);
    text[len] = '\0';
    uint32_t run;
    uint64_t received, bad, reordered;
    if (sscanf(text, "done %" SCNu32 " %" SCNu64 " %" SCNu64 " %" SCNu64, &run,
               &received, &bad, &reordered) == 4 &&
        run == app->run && app->done_run != run) {
        app->done_run = run;
        app->done_at = demo_now_us();
        app->done_received = received;
        app->done_bad = bad;
        app->done_reordered = reordered;
    }
}

static void
app_on_peer_up(atbus_node *node, const atbus_peer_info *peer, void *arg)
{
    (void)node;
    demo_app *app = arg;
    if (strcmp(peer->name, DEMO_HUB_NAME) == 0) {
        app->hub_up = 1;
    }
}

static void
app_on_peer_down(atbus_node *node, const char *name, int reason, void *arg)
{
    (void)node;
    demo_app *app = arg;
    if (strcmp(name, DEMO_HUB_NAME) == 0) {
        app->hub_up = 0;
        app->hub_down_reason = reason;
    }
}

static void
app_on_connect_error(atbus_node *node, const char *url, int err, void *arg)
{
    (void)node;
    demo_app *app = arg;
    app->connect_err = err;
    snprintf(app->connect_url, sizeof(app->connect_url), "%s",
             url != NULL ? url : "?");
}

int
demo_app_new(demo_app **out, const char *name, atbus_node *hub_in_thread,
             demo_result *r)
{
    memset(r, 0, sizeof(*r));
    r->large_mb_s = -1;
    demo_app *app = calloc(1, sizeof(*app));
    if (app == NULL) {
        app_fail(r, DEMO_ESETUP, "out of memory");
        return ATBUS_ENOMEM;
    }
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = name;
    int rc = atbus_node_new(&app->node, &cfg);
    if (rc != ATBUS_OK) {
        app_fail(r, DEMO_ESETUP, "atbus_node_new(%s): %s", name,
                 atbus_strerror(rc));
        free(app);
        return rc;
    }
    atbus_node_callbacks cbs = {
        .on_message = app_on_message,
        .on_peer_up = app_on_peer_up,
        .on_peer_down = app_on_peer_down,
        .on_connect_error = app_on_connect_error,
    };
    atbus_node_set_callbacks(app->node, &cbs, app);
    app->hub = hub_in_thread;
    *out = app;
    return ATBUS_OK;
}

void
demo_app_free(demo_app *app)
{
    if (app == NULL) {
        return;
    }
    atbus_node_free(app->node);
    free(app);
}

/* poll_wait_ms shortens a wait to a node's own deadline (-1: none). */
static int
poll_wait_ms(int wait_ms, int node_ms)
{
    return node_ms >= 0 && node_ms < wait_ms ? node_ms : wait_ms;
}

void
demo_app_pump(demo_app *app, int wait_ms)
{
    if (app->hub == NULL) {
        atbus_node_poll(app->node, wait_ms);
        return;
    }
    if (wait_ms > 0) {
        /* Each node exports a descriptor and a deadline exactly so that an
         * outer loop can sleep on several of them. */
        struct pollfd fds[2] = {
            {.fd = atbus_node_fd(app->node), .events = POLLIN},
            {.fd = atbus_node_fd(app->hub), .events = POLLIN},
        };
        int ms = poll_wait_ms(wait_ms, atbus_node_timeout_ms(app->node));
        ms = poll_wait_ms(ms, atbus_node_timeout_ms(app->hub));
        (void)poll(fds, 2, ms);
    }
    atbus_node_poll(app->node, 0);
    atbus_node_poll(app->hub, 0);
}

/* app_check_hub fails r if the hub is gone or the deadline passed. */
static int
app_check_hub(demo_app *app, uint64_t deadline_us, const char *what,
              demo_result *r)
{
    if (!app->hub_up) {
        return app_fail(r, DEMO_EPEER, "hub went away during %s: %s", what,
                        atbus_strerror(app->hub_down_reason));
    }
    if (demo_now_us() >= deadline_us) {
        return app_fail(r, DEMO_ETIMEOUT, "%s did not finish in time", what);
    }
    return DEMO_OK;
}

/* app_send sends one message, turning the loop while the connection's
 * queue is full. */
static int
app_send(demo_app *app, int64_t stream, const void *buf, size_t len,
         uint64_t deadline_us, const char *what, demo_result *r)
{
    for (;;) {
        int rc = atbus_node_send(app->node, DEMO_HUB_NAME, stream, buf, len);
        if (rc == ATBUS_OK) {
            return DEMO_OK;
        }
        if (rc != ATBUS_EWOULDBLOCK) {
            return app_fail(r, DEMO_EPEER, "%s: atbus_node_send: %s", what,
                            atbus_strerror(rc));
        }
        /* on_writable wakes the loop once the queue drains. */
        demo_app_pump(app, 1);
        if (app_check_hub(app, deadline_us, what, r) != DEMO_OK) {
            return r->status;
        }
    }
}

static int
app_wait_hub(demo_app *app, size_t connections, uint64_t deadline_us,
             demo_result *r)
{
    for (;;) {
        atbus_peer_info info;
        if (atbus_node_peer(app->node, DEMO_HUB_NAME, &info) == ATBUS_OK &&
            info.connections >= connections) {
            snprintf(r->chosen, sizeof(r->chosen), "%s", info.channel);
            r->connections = info.connections;
            return DEMO_OK;
        }
        if (demo_now_us() >= deadline_us) {
            if (app->connect_err != 0) {
                return app_fail(r, DEMO_ENOPEER, "hub not reachable: %s: %s",
                                app->connect_url,
                                atbus_strerror(app->connect_err));
            }
            return app_fail(r, DEMO_ENOPEER,
                            "hub did not register %zu connection(s) in time",
                            connections);
        }
        demo_app_pump(app, 5);
    }
}

/* app_throughput sends count messages of size bytes and waits for the
 * hub's count. Fills *seconds, and r's loss and order fields. */
static int
app_throughput(demo_app *app, size_t size, uint64_t count,
               const demo_plan *plan, uint64_t deadline_us, double *seconds,
               demo_result *r)
{
    static uint8_t buf[DEMO_MAX_MESSAGE];
    uint32_t run = ++app->run;
    char what[64];
    snprintf(what, sizeof(what), "throughput run of %zu B messages", size);
    uint64_t start = demo_now_us();
    uint64_t tick = start;
    for (uint64_t seq = 0; seq < count; seq++) {
        demo_fill(buf, size, run, seq);
        if (app_send(app, DEMO_STREAM_DATA, buf, size, deadline_us, what, r) !=
            DEMO_OK) {
            return r->status;
        }
        if (plan->pace_per_ms != 0 && (seq + 1) % plan->pace_per_ms == 0) {
            /* A datagram channel drops what the receiver's socket cannot
             * hold; pacing keeps the loss to what the channel itself
             * loses. */
            tick += 1000;
            for (uint64_t now = demo_now_us(); now < tick;
                 now = demo_now_us()) {
                /* Sleep rather than spin: the receiver needs the core. */
                demo_app_pump(app, (int)((tick - now + 999) / 1000));
            }
        }
        if ((seq + 1) % APP_SEND_BATCH == 0) {
            demo_app_pump(app, 0);
            if (app_check_hub(app, deadline_us, what, r) != DEMO_OK) {
                return r->status;
            }
        }
    }
    /* Streams are independent: "end" on the control stream could pass
     * data still queued on the data stream. Wait until the hub has
     * acknowledged every data message first. */
    for (;;) {
        atbus_stream_stats st;
        if (atbus_node_stream_stats(app->node, DEMO_HUB_NAME, DEMO_STREAM_DATA,
                                    &st) == ATBUS_OK &&
            st.messages_unacked == 0) {
            break;
        }
        demo_app_pump(app, 1);
        if (app_check_hub(app, deadline_us, what, r) != DEMO_OK) {
            return r->status;
        }
    }
    char end[32];
    int n = snprintf(end, sizeof(end), "end %" PRIu32, run);
    uint64_t next_end = 0;
    while (app->done_run != run) {
        uint64_t now = demo_now_us();
        if (now >= next_end) {
            /* A full queue just means the next repetition carries it. */
            (void)atbus_node_send(app->node, DEMO_HUB_NAME, DEMO_STREAM_CTRL,
                                  end, (size_t)n);
            next_end = now + APP_END_RETRY_US;
        }
        demo_app_pump(app, 1);
        if (app_check_hub(app, deadline_us, what, r) != DEMO_OK) {
            return r->status;
        }
    }
    *seconds = (double)(app->done_at - start) / 1e6;
    if (app->done_bad != 0 || (!plan->lossy && (app->done_received != count ||
                                                app->done_reordered != 0))) {
        return app_fail(r, DEMO_ECHECK,
                        "%s: hub got %" PRIu64 " of %" PRIu64
                        " messages, %" PRIu64 " corrupted, %" PRIu64
                        " out of order",
                        what, app->done_received, count, app->done_bad,
                        app->done_reordered);
    }
    r->reordered += app->done_reordered;
    if (size < DEMO_MAX_MESSAGE) {
        r->small_sent = count;
        r->small_lost =
            app->done_received < count ? count - app->done_received : 0;
    }
    return DEMO_OK;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* percentile_us takes the nearest-rank percentile of sorted v. */
static double
percentile_us(const uint32_t *v, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

/* app_latency runs plan->pings round trips of 64 B, one at a time. */
static int
app_latency(demo_app *app, const demo_plan *plan, uint64_t deadline_us,
            demo_result *r)
{
    const char *what = "latency run";
    uint32_t *rtt = calloc((size_t)plan->pings, sizeof(*rtt));
    if (rtt == NULL) {
        return app_fail(r, DEMO_ESETUP, "out of memory");
    }
    uint32_t run = ++app->run;
    size_t got = 0;
    uint8_t buf[64];
    for (int i = 0; i < plan->pings; i++) {
        demo_fill(buf, sizeof(buf), run, (uint64_t)i);
        app->pong_seq = UINT64_MAX;
        uint64_t sent = demo_now_us();
        if (app_send(app, DEMO_STREAM_PING, buf, sizeof(buf), deadline_us, what,
                     r) != DEMO_OK) {
            free(rtt);
            return r->status;
        }
        while (app->pong_seq != (uint64_t)i &&
               demo_now_us() - sent < APP_PING_TIMEOUT_US) {
            demo_app_pump(app, 10);
            if (app_check_hub(app, deadline_us, what, r) != DEMO_OK) {
                free(rtt);
                return r->status;
            }
        }
        if (app->pong_seq != (uint64_t)i) {
            if (!plan->lossy) {
                free(rtt);
                return app_fail(r, DEMO_ETIMEOUT,
                                "%s: no pong for ping %d within %u ms", what, i,
                                APP_PING_TIMEOUT_US / 1000);
            }
            r->pings_lost++;
            continue;
        }
        rtt[got++] = (uint32_t)(app->pong_at - sent);
    }
    if (app->pongs_bad != 0 || got == 0) {
        free(rtt);
        return app_fail(r, DEMO_ECHECK,
                        "%s: %" PRIu64 " corrupted pongs, %zu answered", what,
                        app->pongs_bad, got);
    }
    qsort(rtt, got, sizeof(*rtt), cmp_u32);
    r->rtt_p50_us = percentile_us(rtt, got, 50);
    r->rtt_p99_us = percentile_us(rtt, got, 99);
    free(rtt);
    return DEMO_OK;
}

int
demo_app_bench(demo_app *app, const char *url, const demo_plan *plan,
               uint64_t deadline_us, demo_result *r)
{
    int rc = atbus_node_connect(app->node, url);
    if (rc != ATBUS_OK) {
        return app_fail(r, DEMO_ESETUP, "atbus_node_connect(%s): %s", url,
                        atbus_strerror(rc));
    }
    if (app_wait_hub(app, 1, deadline_us, r) != DEMO_OK) {
        return r->status;
    }
    double secs;
    if (app_throughput(app, 64, plan->small_count, plan, deadline_us, &secs,
                       r) != DEMO_OK) {
        return r->status;
    }
    uint64_t delivered = plan->small_count - r->small_lost;
    r->small_msgs_s = (double)delivered / secs;
    r->small_mb_s = (double)delivered * 64 / secs / 1e6;
    if (plan->large_count != 0) {
        if (app_throughput(app, DEMO_MAX_MESSAGE, plan->large_count, plan,
                           deadline_us, &secs, r) != DEMO_OK) {
            return r->status;
        }
        r->large_mb_s =
            (double)plan->large_count * DEMO_MAX_MESSAGE / secs / 1e6;
    }
    return app_latency(app, plan, deadline_us, r);
}

/* app_settle waits until the hub is reached over exactly `connections`
 * connections and fills channel with the library's pick. */
static int
app_settle(demo_app *app, size_t connections, uint64_t deadline_us,
           char *channel, size_t channel_size, demo_result *r)
{
    for (;;) {
        atbus_peer_info info;
        if (atbus_node_peer(app->node, DEMO_HUB_NAME, &info) == ATBUS_OK &&
            info.connections == connections) {
            snprintf(channel, channel_size, "%s", info.channel);
            return DEMO_OK;
        }
        if (demo_now_us() >= deadline_us) {
            return app_fail(r, DEMO_ETIMEOUT,
                            "the hub was not reached over %zu connection(s) "
                            "in time",
                            connections);
        }
        demo_app_pump(app, 5);
    }
}

int
demo_app_choice(demo_app *app, const char *const *urls, size_t n,
                uint64_t deadline_us, demo_result *r)
{
    for (size_t i = 0; i < n; i++) {
        int rc = atbus_node_connect(app->node, urls[i]);
        if (rc != ATBUS_OK) {
            return app_fail(r, DEMO_ESETUP, "atbus_node_connect(%s): %s",
                            urls[i], atbus_strerror(rc));
        }
    }
    if (app_wait_hub(app, n, deadline_us, r) != DEMO_OK ||
        app_settle(app, n, deadline_us, r->chosen, sizeof(r->chosen), r) !=
            DEMO_OK) {
        return r->status;
    }
    if (n < 2) {
        return DEMO_OK;
    }
    /* Take away the connection in use: sends must move to the next best
     * one without the application doing anything. */
    size_t len = strlen(r->chosen);
    const char *drop = NULL;
    for (size_t i = 0; i < n && drop == NULL; i++) {
        if (strncmp(urls[i], r->chosen, len) == 0 &&
            strncmp(urls[i] + len, "://", 3) == 0) {
            drop = urls[i];
        }
    }
    if (drop == NULL) {
        return app_fail(r, DEMO_ECHECK,
                        "the library picked %s, which was not dialed",
                        r->chosen);
    }
    snprintf(r->dropped, sizeof(r->dropped), "%s", r->chosen);
    int rc = atbus_node_disconnect(app->node, drop);
    if (rc != ATBUS_OK) {
        return app_fail(r, DEMO_ESETUP, "atbus_node_disconnect(%s): %s", drop,
                        atbus_strerror(rc));
    }
    r->fallback_connections = n - 1;
    if (app_settle(app, n - 1, deadline_us, r->fallback, sizeof(r->fallback),
                   r) != DEMO_OK) {
        return r->status;
    }
    /* One round trip proves the new pick carries messages. */
    demo_plan one = {.pings = 1};
    return app_latency(app, &one, deadline_us, r);
}
