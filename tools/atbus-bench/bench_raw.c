/*
 * The physical limits atbus is measured against, written for the
 * benchmark with nothing on top:
 *
 *   ring      a single-producer, single-consumer ring in memory shared by
 *             two processes; a side that must wait spins (with a pause)
 *             and sleeps on a futex only after a few microseconds, so a
 *             busy machine slows it down instead of stalling it; the
 *             message is copied in and copied out;
 *   writev    many length-prefixed messages per writev on a Unix or TCP
 *             stream socket, read in large chunks and checked in place;
 *   pingpong  a length-prefixed request and its echo over a blocking Unix
 *             or TCP stream socket (TCP_NODELAY).
 */
#define _GNU_SOURCE /* accept4 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- the shared-memory ring ---- */

/* Data bytes of one ring: a power of two, L2-sized so that copies stay
 * in cache. */
#define RING_BYTES ((uint64_t)1 << 20)
/* Record header: payload length; WRAP pads to the end of the lap. */
#define RING_HDR 8u
#define RING_WRAP UINT32_MAX
/* Pauses before a waiting side sleeps: some microseconds, far longer
 * than a message takes, so a side sleeps only when the other is not
 * running (descheduled by a busy machine). */
#define RING_SPINS 4096u
/* A sleep is cut short after this, to look at the deadline. */
#define RING_SLEEP_NS 10000000L

typedef struct ring {
    /* Producer and consumer positions (bytes ever written and read), on
     * cache lines of their own. */
    alignas(64) _Atomic uint64_t head;
    alignas(64) _Atomic uint64_t tail;
    /* Set by a side about to sleep on it: the reader waiting for data,
     * the writer waiting for room. */
    alignas(64) _Atomic uint32_t reader_sleeps;
    alignas(64) _Atomic uint32_t writer_sleeps;
    alignas(64) uint8_t data[RING_BYTES];
} ring;

/* One side's end of a ring: its own position and a cached copy of the
 * other's, so the shared line is read only when the cache says stop. */
typedef struct ring_end {
    ring *r;
    uint64_t mine;
    uint64_t theirs;
    const bench_job *job; /* its deadline */
} ring_end;

static inline void
ring_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t
ring_record(size_t len)
{
    return RING_HDR + (((uint64_t)len + 7u) & ~(uint64_t)7u);
}

/*
 * ring_wait is called while a side finds the ring empty (full): it spins,
 * then announces itself in *sleeps and sleeps until the other side wakes
 * it (ring_wake) or a short timeout. ready() re-checks the ring after the
 * announcement, so a wake-up between the check and the sleep is not
 * lost (the fences pair with the ones in ring_wake). Returns 0 while
 * there is time.
 */
static int
ring_wait(unsigned *spins, _Atomic uint32_t *sleeps, int (*ready)(void *),
          void *arg, const bench_job *job)
{
    if (++*spins < RING_SPINS) {
        ring_pause();
        return 0;
    }
    *spins = 0;
    if (bench_gave_up(job, "ring", NULL)) {
        return -1;
    }
    atomic_store_explicit(sleeps, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (!ready(arg)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = RING_SLEEP_NS};
        syscall(SYS_futex, sleeps, FUTEX_WAIT, 1, &ts, NULL, 0);
    }
    atomic_store_explicit(sleeps, 0, memory_order_relaxed);
    return 0;
}

/* ring_wake wakes the other side if it sleeps on *sleeps; called after
 * publishing a position. */
static void
ring_wake(_Atomic uint32_t *sleeps)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleeps, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(sleeps, 0, memory_order_relaxed) != 0) {
        syscall(SYS_futex, sleeps, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

/* What a waiting writer needs before it can go on. */
typedef struct ring_room {
    ring_end *w;
    uint64_t need; /* bytes past its position */
} ring_room;

static int
ring_has_room(void *arg)
{
    ring_room *rm = arg;
    ring_end *w = rm->w;
    w->theirs = atomic_load_explicit(&w->r->tail, memory_order_acquire);
    return w->mine + rm->need - w->theirs <= RING_BYTES;
}

static int
ring_has_data(void *arg)
{
    ring_end *rd = arg;
    rd->theirs = atomic_load_explicit(&rd->r->head, memory_order_acquire);
    return rd->mine != rd->theirs;
}

static int
ring_write(ring_end *w, const uint8_t *msg, size_t len)
{
    uint64_t need = ring_record(len);
    uint64_t off = w->mine & (RING_BYTES - 1);
    uint64_t pad = RING_BYTES - off < need ? RING_BYTES - off : 0;
    unsigned spins = 0;
    ring_room room = {w, pad + need};
    if (w->mine + pad + need - w->theirs > RING_BYTES) {
        while (!ring_has_room(&room)) {
            if (ring_wait(&spins, &w->r->writer_sleeps, ring_has_room, &room,
                          w->job) != 0) {
                return -1;
            }
        }
    }
    uint8_t *d = w->r->data;
    if (pad != 0) {
        uint32_t wrap = RING_WRAP;
        memcpy(d + off, &wrap, sizeof(wrap));
        w->mine += pad;
        off = 0;
    }
    uint32_t l32 = (uint32_t)len;
    memcpy(d + off, &l32, sizeof(l32));
    memcpy(d + off + RING_HDR, msg, len);
    w->mine += need;
    atomic_store_explicit(&w->r->head, w->mine, memory_order_release);
    ring_wake(&w->r->reader_sleeps);
    return 0;
}

/* ring_read copies the next message into buf (cap bytes). Returns its
 * length, or -1 at the deadline or for a record larger than cap. */
static long
ring_read(ring_end *rd, uint8_t *buf, size_t cap)
{
    unsigned spins = 0;
    for (;;) {
        while (rd->mine == rd->theirs && !ring_has_data(rd)) {
            if (ring_wait(&spins, &rd->r->reader_sleeps, ring_has_data, rd,
                          rd->job) != 0) {
                return -1;
            }
        }
        uint64_t off = rd->mine & (RING_BYTES - 1);
        uint32_t len;
        memcpy(&len, rd->r->data + off, sizeof(len));
        if (len == RING_WRAP) {
            rd->mine += RING_BYTES - off;
            continue;
        }
        if (len > cap) {
            return -1;
        }
        memcpy(buf, rd->r->data + off + RING_HDR, len);
        rd->mine += ring_record(len);
        atomic_store_explicit(&rd->r->tail, rd->mine, memory_order_release);
        ring_wake(&rd->r->writer_sleeps);
        return (long)len;
    }
}

static int
ring_receiver(const bench_job *job, bench_peer *self, bench_out *out)
{
    uint8_t *buf = malloc(job->size);
    if (buf == NULL) {
        return bench_fail(out, "out of memory");
    }
    ring_end rd = {.r = job->shared, .job = job};
    bench_peer_ready(self);
    bench_rx rx;
    memset(&rx, 0, sizeof(rx));
    while (rx.expected < job->count && !rx.failed) {
        long n = ring_read(&rd, buf, job->size);
        if (n < 0) {
            free(buf);
            return bench_fail(out, "ring: no message in time, or too long");
        }
        bench_rx_message(&rx, job, buf, (size_t)n, out);
    }
    free(buf);
    return bench_rx_done(&rx, job, self, out, 0);
}

static int
ring_push(void *ctx, const uint8_t *msg, size_t len, bench_out *out)
{
    if (ring_write(ctx, msg, len) != 0) {
        return bench_fail(out, "ring: no room in time");
    }
    return 0;
}

static int
ring_sender(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    ring_end w = {.r = job->shared, .job = job};
    return bench_send_loop(job, ring_push, &w, out);
}

/* Round trips use two rings: requests in the first, echoes in the
 * second. */
static int
ring_server(const bench_job *job, bench_peer *self, bench_out *out)
{
    uint8_t *buf = malloc(job->size);
    if (buf == NULL) {
        return bench_fail(out, "out of memory");
    }
    ring *rings = job->shared;
    ring_end rd = {.r = &rings[0], .job = job};
    ring_end w = {.r = &rings[1], .job = job};
    bench_peer_ready(self);
    int rc = 0;
    uint64_t total = job->warmup + job->count;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        long n = ring_read(&rd, buf, job->size);
        if (n < 0 || ring_write(&w, buf, (size_t)n) != 0) {
            rc = bench_fail(out, "ring: request %llu not served in time",
                            (unsigned long long)i);
        }
    }
    free(buf);
    return rc;
}

/* A client's two ends and where the echo lands. */
typedef struct ring_client_ctx {
    ring_end w;
    ring_end rd;
    uint8_t *back;
} ring_client_ctx;

static int
ring_trip(void *ctx, const uint8_t *req, size_t len, const uint8_t **reply,
          size_t *reply_len, bench_out *out)
{
    ring_client_ctx *c = ctx;
    long n =
        ring_write(&c->w, req, len) == 0 ? ring_read(&c->rd, c->back, len) : -1;
    if (n < 0) {
        return bench_fail(out, "ring: no echo in time");
    }
    *reply = c->back;
    *reply_len = (size_t)n;
    return 0;
}

static int
ring_client(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    ring *rings = job->shared;
    ring_client_ctx c = {
        .w = {.r = &rings[0], .job = job},
        .rd = {.r = &rings[1], .job = job},
        .back = malloc(job->size),
    };
    int rc = c.back != NULL ? bench_client_loop(job, ring_trip, &c, out)
                            : bench_fail(out, "out of memory");
    free(c.back);
    return rc;
}

int
bench_ring_run(const bench_job *job, bench_out *out)
{
    bench_job j = *job;
    j.shared_size = (job->kind == BENCH_THROUGHPUT ? 1 : 2) * sizeof(ring);
    /* Made before the fork, so both processes map the same pages. */
    j.shared = mmap(NULL, j.shared_size, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (j.shared == MAP_FAILED) {
        return bench_fail(out, "mmap: %s", strerror(errno));
    }
    int rc = job->kind == BENCH_THROUGHPUT
                 ? bench_pair(&j, 0, ring_receiver, ring_sender, out)
                 : bench_pair(&j, 0, ring_server, ring_client, out);
    munmap(j.shared, j.shared_size);
    return rc;
}

/* ---- stream sockets ---- */

/* Socket timeouts: blocking calls return now and then so that the
 * deadline is seen. */
#define SOCK_WAIT_MS 200
/* A writev batch: at most this many messages or bytes (IOV_MAX is
 * 1024 iovecs: two per message). */
#define BATCH_MSGS 512u
#define BATCH_BYTES ((size_t)256 << 10)
#define READ_CHUNK ((size_t)256 << 10)

static void
sock_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = SOCK_WAIT_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* sock_addr fills the address of a job's raw socket. */
static socklen_t
sock_addr(const bench_job *job, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (job->transport == BENCH_TCP) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)job->port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*in);
    }
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    un->sun_family = AF_UNIX;
    bench_unix_path(job, "raw", un->sun_path, sizeof(un->sun_path));
    return sizeof(*un);
}

static void
sock_nodelay(const bench_job *job, int fd)
{
    if (job->transport == BENCH_TCP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

/* sock_accept listens, reports ready and accepts one connection before
 * the deadline. Returns the connection or -1. */
static int
sock_accept(const bench_job *job, bench_peer *self, bench_out *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sock_addr(job, &ss);
    int family = ss.ss_family;
    int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        return bench_fail(out, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_UNIX) {
        remove(((struct sockaddr_un *)&ss)->sun_path);
    }
    if (bind(lfd, (struct sockaddr *)&ss, len) != 0 || listen(lfd, 4) != 0) {
        bench_fail(out, "bind/listen: %s", strerror(errno));
        close(lfd);
        return -1;
    }
    bench_peer_ready(self);
    int fd = -1;
    while (fd < 0 && bench_now_ns() < job->deadline_ns) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (poll(&pfd, 1, SOCK_WAIT_MS) > 0) {
            fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        }
    }
    close(lfd);
    if (family == AF_UNIX) {
        remove(((struct sockaddr_un *)&ss)->sun_path);
    }
    if (fd < 0) {
        return bench_fail(out, "no connection in time");
    }
    sock_timeouts(fd);
    sock_nodelay(job, fd);
    return fd;
}

static int
sock_connect(const bench_job *job, bench_out *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sock_addr(job, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return bench_fail(out, "socket: %s", strerror(errno));
    }
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        bench_fail(out, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    sock_timeouts(fd);
    sock_nodelay(job, fd);
    return fd;
}

/* sock_again says whether a failed call timed out and may be tried
 * again. */
static int
sock_again(const bench_job *job)
{
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return 0;
    }
    int saved = errno;
    int again = !bench_gave_up(job, "socket", NULL);
    errno = saved;
    return again;
}

/* sock_writev writes every byte of iov (consumed as it goes). */
static int
sock_writev(int fd, struct iovec *iov, int cnt, const bench_job *job)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (sock_again(job)) {
                continue;
            }
            return -1;
        }
        size_t done = (size_t)n;
        while (cnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static int
sock_read_full(int fd, void *buf, size_t len, const bench_job *job)
{
    uint8_t *b = buf;
    while (len > 0) {
        ssize_t n = read(fd, b, len);
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        if (n < 0) {
            if (sock_again(job)) {
                continue;
            }
            return -1;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
writev_receiver(const bench_job *job, bench_peer *self, bench_out *out)
{
    uint8_t *buf = malloc(READ_CHUNK + job->size + 4);
    int fd = buf != NULL ? sock_accept(job, self, out)
                         : bench_fail(out, "out of memory");
    bench_rx rx;
    memset(&rx, 0, sizeof(rx));
    size_t have = 0;
    while (fd >= 0 && rx.expected < job->count && !rx.failed) {
        ssize_t n = read(fd, buf + have, READ_CHUNK);
        if (n <= 0) {
            if (n < 0 && sock_again(job)) {
                continue;
            }
            bench_fail(out, "read: %s",
                       n == 0 ? "end of stream" : strerror(errno));
            break;
        }
        have += (size_t)n;
        size_t at = 0;
        for (;;) {
            uint32_t len;
            if (have - at < sizeof(len)) {
                break;
            }
            memcpy(&len, buf + at, sizeof(len));
            if (len != job->size) {
                bench_fail(out, "record of %u bytes, expected %zu", len,
                           job->size);
                rx.failed = 1;
                break;
            }
            if (have - at < sizeof(len) + len) {
                break;
            }
            bench_rx_message(&rx, job, buf + at + sizeof(len), len, out);
            at += sizeof(len) + len;
        }
        memmove(buf, buf + at, have - at);
        have -= at;
    }
    int rc = bench_rx_done(&rx, job, self, out, fd >= 0 ? 0 : -1);
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

static int
writev_sender(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    size_t per = BATCH_BYTES / job->size + 1;
    per = per < BATCH_MSGS ? per : BATCH_MSGS;
    /* Each message of a batch needs its own bytes (its own number); the
     * bodies are filled once, only the numbers change. */
    uint8_t *slots = malloc(per * job->size);
    uint32_t len32 = (uint32_t)job->size;
    struct iovec *iov = calloc(2 * per, sizeof(*iov));
    uint8_t *tmpl = bench_template(job->size);
    int fd = slots != NULL && iov != NULL && tmpl != NULL
                 ? sock_connect(job, out)
                 : bench_fail(out, "out of memory");
    for (size_t i = 0; fd >= 0 && i < per; i++) {
        memcpy(slots + i * job->size, tmpl, job->size);
    }
    int rc = fd >= 0 ? 0 : -1;
    for (uint64_t seq = 0; rc == 0 && seq < job->count;) {
        size_t k = 0;
        for (; k < per && seq < job->count; k++, seq++) {
            uint8_t *m = slots + k * job->size;
            bench_fill(m, job->size, seq);
            iov[2 * k] = (struct iovec){&len32, sizeof(len32)};
            iov[2 * k + 1] = (struct iovec){m, job->size};
        }
        if (sock_writev(fd, iov, (int)(2 * k), job) != 0) {
            rc = bench_fail(out, "writev: %s", strerror(errno));
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(tmpl);
    free(iov);
    free(slots);
    return rc;
}

int
bench_writev_run(const bench_job *job, bench_out *out)
{
    return bench_pair(job, 0, writev_receiver, writev_sender, out);
}

static int
pingpong_server(const bench_job *job, bench_peer *self, bench_out *out)
{
    uint8_t *buf = malloc(job->size + 4);
    int fd = buf != NULL ? sock_accept(job, self, out)
                         : bench_fail(out, "out of memory");
    int rc = fd >= 0 ? 0 : -1;
    uint64_t total = job->warmup + job->count;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        uint32_t len;
        if (sock_read_full(fd, &len, sizeof(len), job) != 0 ||
            len != job->size || sock_read_full(fd, buf + 4, len, job) != 0) {
            rc = bench_fail(out, "request %llu: %s", (unsigned long long)i,
                            len != job->size ? "bad length" : strerror(errno));
            break;
        }
        memcpy(buf, &len, sizeof(len));
        struct iovec iov = {buf, 4 + (size_t)len};
        if (sock_writev(fd, &iov, 1, job) != 0) {
            rc = bench_fail(out, "write: %s", strerror(errno));
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

/* A client's socket and its message buffer: length prefix, then the
 * request, then (overwritten) the echo. */
typedef struct pingpong_ctx {
    const bench_job *job;
    int fd;
    uint8_t *buf;
} pingpong_ctx;

static int
pingpong_trip(void *ctx, const uint8_t *req, size_t len, const uint8_t **reply,
              size_t *reply_len, bench_out *out)
{
    pingpong_ctx *c = ctx;
    uint32_t len32 = (uint32_t)len;
    uint32_t back;
    memcpy(c->buf, &len32, sizeof(len32));
    memcpy(c->buf + 4, req, len);
    struct iovec iov = {c->buf, 4 + len};
    if (sock_writev(c->fd, &iov, 1, c->job) != 0 ||
        sock_read_full(c->fd, &back, sizeof(back), c->job) != 0 ||
        back != len32 || sock_read_full(c->fd, c->buf + 4, len, c->job) != 0) {
        return bench_fail(out, "round trip: %s",
                          back != len32 ? "bad length" : strerror(errno));
    }
    *reply = c->buf + 4;
    *reply_len = back;
    return 0;
}

static int
pingpong_client(const bench_job *job, bench_peer *peer, bench_out *out)
{
    (void)peer;
    pingpong_ctx c = {.job = job, .fd = -1, .buf = malloc(job->size + 4)};
    int rc = c.buf != NULL ? 0 : bench_fail(out, "out of memory");
    if (rc == 0 && (c.fd = sock_connect(job, out)) < 0) {
        rc = -1;
    }
    rc = rc == 0 ? bench_client_loop(job, pingpong_trip, &c, out) : rc;
    if (c.fd >= 0) {
        close(c.fd);
    }
    free(c.buf);
    return rc;
}

int
bench_pingpong_run(const bench_job *job, bench_out *out)
{
    return bench_pair(job, 0, pingpong_server, pingpong_client, out);
}
