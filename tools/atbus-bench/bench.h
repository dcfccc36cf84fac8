/*
 * atbus-bench: atbus next to ZeroMQ, nng and raw system calls on the same
 * cases, in one run (bench.c drives it; docs/benchmarks.md explains the
 * output).
 *
 * One measurement is a bench_job run by one implementation. The driver
 * forks a fresh process (the runner) for each measurement, so that no
 * library state, thread pool or socket survives from one measurement to
 * the next and a stuck case can be killed. The runner is the sender (or
 * the client of a round trip); the receiver (or echo server) is a second
 * process forked by the runner, or a thread of it for in-process channels
 * (mem://, inproc). Both sides talk back over a pipe: "ready" once bound,
 * then the result.
 *
 * Every message carries its sequence number at its start and, for
 * messages of 16 bytes or more, again at its end; receivers check both,
 * and the length, so a run that loses, reorders, truncates or duplicates
 * a message fails instead of reporting a figure.
 */
#ifndef ATBUS_BENCH_H
#define ATBUS_BENCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

enum bench_kind {
    BENCH_THROUGHPUT,
    BENCH_LATENCY,
};

/* The channel a case compares on; each implementation maps it to its own
 * (mem -> inproc, unix -> ipc, tcp -> ipv4:// or tcp://127.0.0.1). */
enum bench_transport {
    BENCH_MEM,
    BENCH_UNIX,
    BENCH_TCP,
    BENCH_SHM,
    /* atbus only: unix:// to a relay node that forwards to the peer. */
    BENCH_RELAY,
    BENCH_TRANSPORTS,
};

/* One measurement. */
typedef struct bench_job {
    int kind;        /* enum bench_kind */
    int transport;   /* enum bench_transport, as the implementation reads it */
    size_t size;     /* message bytes, >= 8 */
    uint64_t count;  /* messages (throughput) or timed round trips */
    uint64_t warmup; /* untimed round trips first (latency) */
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; the side gives up after it */
    char tag[48];         /* unique per measurement, for addresses */
    int port;             /* a free loopback TCP port */
    /* What both sides share: an anonymous shared mapping made before the
     * receiver is forked (raw ring), or the library context of an
     * in-process channel (zmq inproc); NULL otherwise. */
    void *shared;
    size_t shared_size;
    /* Pin the sender (client) to CPU 0 and the receiver (server) to
     * CPU 1 (--pin, and the placement probe). */
    int pin;
} bench_job;

/* What one side reports; crosses a pipe as plain bytes (same binary). */
typedef struct bench_out {
    int ok;
    char error[200];
    uint64_t messages; /* received and checked */
    double seconds;
    double msgs_per_s;
    double mb_per_s; /* payload bytes, MB = 10^6 B */
    double p50_us;
    double p99_us;
    double p999_us;
    /* Where the implementation can tell (atbus): frames the receiver
     * took in, and packets the sender sent again; 0 otherwise. */
    uint64_t frames;
    uint64_t resent;
} bench_out;

/* ---- the other side of a measurement (bench_util.c) ---- */

typedef struct bench_peer bench_peer;

/* A side's main function: runs job, calls bench_peer_ready once it
 * listens, fills out. Returns 0 or -1 (out->error says why). */
typedef int (*bench_side_fn)(const bench_job *job, bench_peer *self,
                             bench_out *out);

struct bench_peer {
    pid_t pid; /* process mode; 0 otherwise */
    int threaded;
    pthread_t thread;
    int rfd; /* the starter reads "ready" and the result here */
    int wfd; /* the side writes them here */
    bench_side_fn fn;
    bench_job job;
    int reaped;
    int reported;
    struct rusage usage; /* of a process side and what it waited for */
};

/*
 * bench_peer_start runs fn(job) in a forked process, or in a thread when
 * threaded is set. Returns 0, or -1 with out->error set.
 */
int bench_peer_start(bench_peer *p, int threaded, bench_side_fn fn,
                     const bench_job *job, bench_out *out);

/* bench_peer_ready tells the starter the side listens (called by the
 * side, once). */
void bench_peer_ready(bench_peer *self);

/* bench_peer_report hands out to the starter now rather than when the
 * side returns, so that a library that takes its time closing does not
 * hold the other side up; out->ok must be final. Later reports of the
 * side are dropped. */
void bench_peer_report(bench_peer *self, const bench_out *out);

/*
 * bench_peer_wait_ready waits until the side called bench_peer_ready or
 * job->deadline_ns. Returns 0, or -1 with out filled (the side ended
 * early with its error, died, or timed out).
 */
int bench_peer_wait_ready(bench_peer *p, bench_out *out);

/* bench_peer_fd is readable once the side has written its result. */
int bench_peer_fd(const bench_peer *p);

/*
 * bench_peer_finish reads the side's result (waiting until the deadline
 * plus a grace period), then reaps or joins it; a process that does not
 * answer in time is killed. Returns 0 when the side reported success,
 * else -1 with out->error set.
 */
int bench_peer_finish(bench_peer *p, bench_out *out);

/* ---- what the implementations share (bench_util.c) ---- */

/* bench_now_ns reads CLOCK_MONOTONIC, which every process shares. */
uint64_t bench_now_ns(void);

/* bench_read_full reads len bytes from fd before deadline_ns. Returns 0,
 * or -1 at end of file (errno EPIPE), timeout (ETIMEDOUT) or error. */
int bench_read_full(int fd, void *buf, size_t len, uint64_t deadline_ns);

/* bench_fail sets out->error and out->ok = 0; returns -1. */
int bench_fail(bench_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* bench_fill stamps seq into msg (size bytes: at the start and end). */
void bench_fill(uint8_t *msg, size_t size, uint64_t seq);

/*
 * bench_check reads a received message: it must be size bytes long and
 * carry seq at both places. Returns 1 when it does, else 0 with
 * out->error describing what arrived instead.
 */
int bench_check(const uint8_t *msg, size_t len, size_t size, uint64_t seq,
                bench_out *out);

/* bench_template returns a size-byte message buffer with a fixed
 * pattern (free with free); NULL when out of memory. */
uint8_t *bench_template(size_t size);

/*
 * A receiver's clock: throughput runs from the first message received to
 * the last, so connection set-up and the sender's start do not count.
 */
typedef struct bench_rx {
    uint64_t expected; /* next sequence number */
    uint64_t first_ns;
    uint64_t last_ns;
    int failed;
} bench_rx;

/* bench_rx_message checks one message against rx->expected and advances
 * it. Returns 1 while all is well, 0 once a check failed. */
int bench_rx_message(bench_rx *rx, const bench_job *job, const void *msg,
                     size_t len, bench_out *out);

/*
 * bench_rx_done ends a receive: unless rc or out->error says it failed
 * already, it turns rx into out's figures (failing when fewer than
 * job->count messages arrived), then reports out to the sender at once
 * (bench_peer_report), before the receiver closes anything. Returns 0 or
 * -1.
 */
int bench_rx_done(const bench_rx *rx, const bench_job *job, bench_peer *self,
                  bench_out *out, int rc);

/*
 * The sender's loop, the same for every implementation: count messages,
 * each stamped with its number, handed to push (which copies or queues
 * them; the buffer is reused). push returns 0, or -1 with out->error set,
 * which ends the loop. Returns 0 or -1.
 */
typedef int (*bench_push_fn)(void *ctx, const uint8_t *msg, size_t len,
                             bench_out *out);
int bench_send_loop(const bench_job *job, bench_push_fn push, void *ctx,
                    bench_out *out);

/*
 * The client's loop: warmup + count round trips, one at a time. trip
 * sends req and waits for its echo, pointing *reply at it (valid until
 * the next call); the loop checks the echo and times the round trip.
 * Fills out's percentiles. Returns 0 or -1.
 */
typedef int (*bench_trip_fn)(void *ctx, const uint8_t *req, size_t len,
                             const uint8_t **reply, size_t *reply_len,
                             bench_out *out);
int bench_client_loop(const bench_job *job, bench_trip_fn trip, void *ctx,
                      bench_out *out);

/*
 * bench_pair runs one measurement: side (the receiver or echo server) in
 * a forked process, or a thread when threaded, and, once it listens,
 * main_fn (the sender or client) here. main_fn must keep its end open
 * until bench_peer_done says the side has reported. The result is the
 * receiver's for throughput and the client's for latency; a failure of
 * either side fails the measurement.
 */
typedef int (*bench_main_fn)(const bench_job *job, bench_peer *peer,
                             bench_out *out);
int bench_pair(const bench_job *job, int threaded, bench_side_fn side,
               bench_main_fn main_fn, bench_out *out);

/*
 * bench_gave_up says whether a wait of the calling side should end: when
 * job's deadline passed, or the other side of bench_pair has already
 * reported (it stopped: a failed check, an error). Then it returns 1 with
 * out->error (if out is not NULL) naming `what`; else 0. Call it when a
 * wait times out, not per message: it may make a system call.
 */
int bench_gave_up(const bench_job *job, const char *what, bench_out *out);

/* bench_peer_done waits up to timeout_ms for the side's report. Returns
 * 1 once it is there (or the side is gone), else 0. */
int bench_peer_done(const bench_peer *p, int timeout_ms);

/* bench_unix_path writes the Unix socket path of a job. */
void bench_unix_path(const bench_job *job, const char *what, char *buf,
                     size_t len);

/* bench_lib_url writes the address of a job in the URL syntax ZeroMQ and
 * nng share (inproc://, ipc://, tcp://); lib names the socket file. */
void bench_lib_url(const bench_job *job, const char *lib, char *buf,
                   size_t len);

/* ---- implementations ---- */

/* Each runs one measurement in the runner process and fills out; returns
 * 0 or -1. */
int bench_atbus_run(const bench_job *job, bench_out *out);
/* Round trips between two atbus nodes that are not connected to each
 * other, through a third, relaying node (three processes, unix://). */
int bench_atbus_relay_run(const bench_job *job, bench_out *out);
int bench_zmq_run(const bench_job *job, bench_out *out);
int bench_nng_run(const bench_job *job, bench_out *out);
/* Raw limits: a single-producer ring in shared memory (shm), batched
 * writev on a stream socket (unix, tcp) and a blocking socket ping-pong
 * (unix, tcp). */
int bench_ring_run(const bench_job *job, bench_out *out);
int bench_writev_run(const bench_job *job, bench_out *out);
int bench_pingpong_run(const bench_job *job, bench_out *out);

/* ---- codec (bench_codec.c) ---- */

typedef struct bench_codec_out {
    double encode_ns; /* per atbus_record_to_json */
    double decode_ns; /* per atbus_record_from_json */
    size_t json_bytes;
} bench_codec_out;

/* bench_codec runs iterations encodes and decodes of a typical node
 * record. Returns 0 or -1 (message on stderr). */
int bench_codec(uint64_t iterations, bench_codec_out *out);

#endif
