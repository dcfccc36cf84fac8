/*
 * atbus-demo: a hub node and one app node per channel exchange messages on
 * this machine (atbus_demo.c runs it; docs/demo.md explains the output).
 *
 * This header is what the hub (demo_hub.c), the apps (demo_app.c) and the
 * run share: a small protocol of the demo's own on top of atbus messages,
 * and the result an app hands back. Only <atbus/atbus.h> is used: the demo
 * doubles as proof that the public API is enough to build on.
 */
#ifndef ATBUS_DEMO_H
#define ATBUS_DEMO_H

#include <atbus/atbus.h>

#include <stddef.h>
#include <stdint.h>

#define DEMO_HUB_NAME "hub"

/*
 * Streams of the demo protocol. Data and pings start with a header of
 * sequence number and run number, then a pattern derived from both, so
 * the receiver can tell loss, reordering and corruption apart.
 */
enum {
    DEMO_STREAM_DATA = 1, /* app -> hub: numbered messages, checked */
    DEMO_STREAM_CTRL = 2, /* text: "end <run>" and its answer "done ..." */
    DEMO_STREAM_PING = 3, /* app -> hub */
    DEMO_STREAM_PONG = 4, /* hub -> app: the ping's bytes, unchanged */
};

/* Bytes of sequence (8) and run (4) number at the start of a message. */
#define DEMO_HEADER 12

/* Largest message of the demo (the 1 KiB throughput run). */
#define DEMO_MAX_MESSAGE 1024

/* Exit statuses of an app process; the parent reports them by name. */
enum {
    DEMO_OK = 0,
    DEMO_ESETUP = 10,   /* node or connect refused by the library */
    DEMO_ENOPEER = 11,  /* the hub never registered */
    DEMO_ECHECK = 12,   /* the hub saw loss, reordering or corruption */
    DEMO_ETIMEOUT = 13, /* a step did not finish in its time */
    DEMO_EPEER = 14,    /* the hub went away in the middle */
    DEMO_EPIPE = 15,    /* talking to the parent failed */
    DEMO_EDIED = 16,    /* (parent only) the app process ended early */
};

/* How much an app sends; counts are bounded so the demo ends quickly. */
typedef struct demo_plan {
    uint64_t small_count; /* 64 B messages */
    uint64_t large_count; /* 1 KiB messages; 0 skips the run */
    /* Lossy channel (udp): loss is counted, not an error, and sends are
     * paced to this many messages per millisecond. */
    int lossy;
    uint32_t pace_per_ms;
    int pings; /* 64 B round trips */
} demo_plan;

/* What an app measured; crosses a pipe as plain bytes (same binary). */
typedef struct demo_result {
    int status; /* DEMO_OK or one of the exit statuses above */
    char error[200];
    /* The channel atbus_node_peer reports for the hub. */
    char chosen[8];
    size_t connections;
    /* Throughput, payload bytes only. */
    double small_msgs_s;
    double small_mb_s;
    double large_mb_s; /* < 0: not run */
    uint64_t small_sent;
    uint64_t small_lost;
    uint64_t reordered;
    /* Latency. */
    double rtt_p50_us;
    double rtt_p99_us;
    int pings_lost;
    /* Channel choice: which connection was dropped and what the library
     * picked after it. */
    char dropped[8];
    char fallback[8];
    size_t fallback_connections;
} demo_result;

/* demo_now_us reads CLOCK_MONOTONIC in microseconds. */
uint64_t demo_now_us(void);

/* demo_fill writes message seq of run into buf (len >= DEMO_HEADER). */
void demo_fill(uint8_t *buf, size_t len, uint32_t run, uint64_t seq);

/* demo_parse reads the header of a message into *run and *seq and checks
 * the pattern. Returns 1 if the message is intact, 0 if not. */
int demo_parse(const uint8_t *buf, size_t len, uint32_t *run, uint64_t *seq);

/* ---- the hub (demo_hub.c) ---- */

typedef struct demo_hub demo_hub;

/* demo_hub_new creates the hub node "hub", listening on nothing yet.
 * Returns an atbus code. */
int demo_hub_new(demo_hub **out);

/* demo_hub_listen adds a listen URL. Returns atbus_node_listen's code. */
int demo_hub_listen(demo_hub *hub, const char *url);

/* demo_hub_node returns the hub's node, for polling and inspection. */
atbus_node *demo_hub_node(demo_hub *hub);

/* demo_hub_anomalies returns how many requests the hub could not serve
 * (answers it could not send, peers beyond its table). */
uint64_t demo_hub_anomalies(const demo_hub *hub);

/* demo_hub_free frees the hub and its node; NULL is a no-op. */
void demo_hub_free(demo_hub *hub);

/* ---- an app (demo_app.c) ---- */

typedef struct demo_app demo_app;

/*
 * demo_app_new creates app node `name`. hub_in_thread is the hub's node
 * when both live in this thread (the app then turns the hub's loop too
 * while it waits), or NULL. Returns an atbus code; the reason is also in
 * r->error and r->status.
 */
int demo_app_new(demo_app **out, const char *name, atbus_node *hub_in_thread,
                 demo_result *r);

/* demo_app_bench connects to url and runs plan against the hub, filling
 * r. Returns r->status. */
int demo_app_bench(demo_app *app, const char *url, const demo_plan *plan,
                   uint64_t deadline_us, demo_result *r);

/* demo_app_choice connects to every url, reports the channel the library
 * picks, then drops that connection and reports the next pick. Returns
 * r->status. */
int demo_app_choice(demo_app *app, const char *const *urls, size_t n,
                    uint64_t deadline_us, demo_result *r);

/* demo_app_pump turns the app's loop (and the hub's, if it shares the
 * thread), sleeping at most wait_ms when there is nothing to do. */
void demo_app_pump(demo_app *app, int wait_ms);

/* demo_app_free frees the app and its node; NULL is a no-op. */
void demo_app_free(demo_app *app);

#endif
