/*
 * shm:// across loops and processes: several dialers sharing inboxes,
 * refused dials, a listener name held by a live process and reclaimed
 * from a dead one, the ring's record limit, backpressure, connects and
 * accepts that wait for room, closing a listener (also from inside a
 * callback), a corrupted ring, a child killed mid-stream or inside a
 * claim, a child that writes garbage into its connection, and the sweep
 * of dead inboxes.
 * The generic cases (exchange, refused, duplicate, limits, close with
 * sends pending) run on shm:// in tests/transport/test_stream.c.
 *
 * Children are forked processes that report through their exit status
 * (they never call Check) and leave with _exit. Every wait is bounded by
 * the clock. Names start with KEY_PREFIX and the runner's pid; main
 * removes those whose reader is gone at the end, and only those: a
 * parallel run's deliberately dead rings are its own business.
 */
#define _GNU_SOURCE /* fork, kill */
#include <atbus/atbus.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "loop/loop.h"
#include "testing.h"
#include "transport/shm/shm.h"
#include "transport/shm/shm_ring.h"
#include "transport/transport.h"

#define KEY_PREFIX "atbus-shmtest-"
#define DEADLINE_US ((uint64_t)10 * 1000 * 1000)

/* ---- names ---------------------------------------------------------- */

/* The runner's pid, set in main before Check forks each test. */
static long runner_pid;

static void
make_key(char *buf, size_t n, const char *tag)
{
    static int counter;
    snprintf(buf, n, KEY_PREFIX "%ld-%d-%s-%d", runner_pid, (int)getpid(), tag,
             ++counter);
}

static void
make_url(char *buf, size_t n, const char *key)
{
    snprintf(buf, n, "shm://%s", key);
}

/* count_names counts the objects in /dev/shm whose name starts with
 * "atbus." + prefix. */
static int
count_names(const char *prefix)
{
    char full[160];
    snprintf(full, sizeof(full), "atbus.%s", prefix);
    DIR *dir = opendir("/dev/shm");
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, full, strlen(full)) == 0) {
            n++;
        }
    }
    closedir(dir);
    return n;
}

static int
name_exists(const char *key)
{
    char path[160];
    struct stat st;
    snprintf(path, sizeof(path), "/dev/shm/atbus.%s", key);
    return stat(path, &st) == 0;
}

/* ---- frames --------------------------------------------------------- */

/* A test message: seq (8 bytes), tag (1 byte), then bytes derived from
 * both, so order, origin and content are all checked. Child processes
 * call it too, so it must not use Check: even a passing ck_assert writes
 * a location record into Check's channel, which a child shares with the
 * test and would garble. A failure aborts instead. */
static size_t
frame_make(uint64_t seq, uint8_t tag, size_t mlen, uint8_t *out, size_t cap)
{
    uint8_t *msg = malloc(mlen);
    if (msg == NULL) {
        abort();
    }
    memcpy(msg, &seq, 8);
    msg[8] = tag;
    for (size_t i = 9; i < mlen; i++) {
        msg[i] = (uint8_t)(seq * 31 + i + tag);
    }
    size_t w = 0;
    if (atb_frame_wrap(3, msg, mlen, out, cap, &w) != ATBUS_OK) {
        abort();
    }
    free(msg);
    return w;
}

/* ---- one end of a connection ---------------------------------------- */

struct side {
    atb_conn *conn;
    int opened;
    int closed;
    int close_reason;
    int writable;
    int frames;
    int bad;
    int tag; /* of the first frame; -1 before */
    uint64_t next_seq;
    size_t last_len;
    int echo;                      /* send every frame back */
    int echo_blocked;              /* echoes refused */
    atb_listener **close_on_frame; /* close this listener from on_frame */
    uint64_t first_us;             /* when the first frame arrived */
    uint64_t last_us;
};

static void
side_on_open(atb_conn *c, void *arg)
{
    (void)c;
    ((struct side *)arg)->opened++;
}

static void
side_on_frame(atb_conn *c, const atb_frame_view *f, void *arg)
{
    struct side *s = arg;
    s->last_len = f->message_len;
    if (s->frames == 0) {
        s->first_us = atb_clock_us();
    }
    s->last_us = atb_clock_us();
    s->frames++;
    if (f->message_len < 9) {
        return;
    }
    uint64_t seq;
    memcpy(&seq, f->message, 8);
    uint8_t tag = f->message[8];
    if (s->tag < 0) {
        s->tag = tag;
    }
    if (seq != s->next_seq || tag != s->tag) {
        s->bad++;
    }
    for (size_t i = 9; i < f->message_len; i++) {
        if (f->message[i] != (uint8_t)(seq * 31 + i + tag)) {
            s->bad++;
            break;
        }
    }
    s->next_seq = seq + 1;
    if (s->echo) {
        uint8_t buf[4096];
        size_t w = 0;
        ck_assert_int_eq(
            atb_frame_wrap(3, f->message, f->message_len, buf, sizeof(buf), &w),
            ATBUS_OK);
        struct iovec iov = {.iov_base = buf, .iov_len = w};
        if (atb_conn_send(c, &iov, 1) != ATBUS_OK) {
            s->echo_blocked++;
        }
    }
    if (s->close_on_frame != NULL && *s->close_on_frame != NULL) {
        atb_listener_close(*s->close_on_frame);
        *s->close_on_frame = NULL;
    }
}

static void
side_on_writable(atb_conn *c, void *arg)
{
    (void)c;
    ((struct side *)arg)->writable++;
}

static void
side_on_close(atb_conn *c, int reason, void *arg)
{
    (void)c;
    struct side *s = arg;
    s->closed++;
    s->close_reason = reason;
}

static const atb_conn_cbs side_cbs = {
    .on_open = side_on_open,
    .on_frame = side_on_frame,
    .on_writable = side_on_writable,
    .on_close = side_on_close,
};

static void
side_init(struct side *s)
{
    memset(s, 0, sizeof(*s));
    s->tag = -1;
}

/* A listener and the connections it accepted. */
#define MAX_ACCEPTED 8

struct server {
    atb_loop *loop;
    atb_listener *listener;
    char key[ATB_SHM_RING_KEY_MAX + 1];
    char url[160];
    struct side accepted[MAX_ACCEPTED];
    int naccepted;
    int errors;
    int last_error;
    int echo;
};

static void
server_on_accept(atb_listener *l, atb_conn *c, void *arg)
{
    (void)l;
    struct server *sv = arg;
    ck_assert_int_lt(sv->naccepted, MAX_ACCEPTED);
    struct side *s = &sv->accepted[sv->naccepted++];
    side_init(s);
    s->conn = c;
    s->echo = sv->echo;
    atb_conn_set_cbs(c, &side_cbs, s);
}

static void
server_on_error(atb_listener *l, int err, void *arg)
{
    (void)l;
    struct server *sv = arg;
    sv->errors++;
    sv->last_error = err;
}

static const atb_listener_cbs server_cbs = {
    .on_accept = server_on_accept,
    .on_error = server_on_error,
};

static void
server_open(struct server *sv, atb_loop *loop, const char *tag,
            const atb_transport_config *cfg)
{
    memset(sv, 0, sizeof(*sv));
    sv->loop = loop;
    make_key(sv->key, sizeof(sv->key), tag);
    make_url(sv->url, sizeof(sv->url), sv->key);
    ck_assert_int_eq(
        atb_listen(loop, sv->url, cfg, &server_cbs, sv, &sv->listener),
        ATBUS_OK);
}

/* server_close frees the accepted connections and the listener. */
static void
server_close(struct server *sv)
{
    for (int i = 0; i < sv->naccepted; i++) {
        atb_conn_free(sv->accepted[i].conn);
    }
    atb_listener_close(sv->listener);
    sv->listener = NULL;
}

static void
side_dial(struct side *s, atb_loop *loop, const char *url,
          const atb_transport_config *cfg)
{
    side_init(s);
    ck_assert_int_eq(atb_dial(loop, url, cfg, &side_cbs, s, &s->conn),
                     ATBUS_OK);
}

/* ---- turning loops -------------------------------------------------- */

/* until turns loops a and b (b may be NULL) until *flag >= want or the
 * deadline passes; returns whether it got there. */
static int
until(atb_loop *a, atb_loop *b, const int *flag, int want)
{
    uint64_t deadline = atb_clock_us() + DEADLINE_US;
    while (*flag < want && atb_clock_us() < deadline) {
        ck_assert_int_eq(atb_loop_poll(a, b != NULL ? 0 : 1), ATBUS_OK);
        if (b != NULL) {
            ck_assert_int_eq(atb_loop_poll(b, 1), ATBUS_OK);
        }
    }
    return *flag >= want;
}

#define UNTIL(a, b, flag, want)                                                \
    ck_assert_msg(until((a), (b), (flag), (want)), "%s < %d after %d s",       \
                  #flag, (want), (int)(DEADLINE_US / 1000000))

static void
send_ok(atb_conn *c, uint64_t seq, uint8_t tag, size_t mlen)
{
    uint8_t buf[4096];
    size_t flen = frame_make(seq, tag, mlen, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(c, &iov, 1), ATBUS_OK);
}

/* exchange sends n frames each way between two open ends and checks
 * them; the sequence and tag go on from what each end saw before. */
static void
exchange(atb_loop *la, struct side *a, atb_loop *lb, struct side *b, int n)
{
    int fa = a->frames;
    int fb = b->frames;
    uint8_t ta = a->tag >= 0 ? (uint8_t)a->tag : 2;
    uint8_t tb = b->tag >= 0 ? (uint8_t)b->tag : 1;
    for (int i = 0; i < n; i++) {
        send_ok(a->conn, b->next_seq + (uint64_t)i, tb, 100 + (size_t)i);
        send_ok(b->conn, a->next_seq + (uint64_t)i, ta, 50 + (size_t)i);
    }
    UNTIL(la, lb, &b->frames, fb + n);
    UNTIL(la, lb, &a->frames, fa + n);
    ck_assert_int_eq(a->bad, 0);
    ck_assert_int_eq(b->bad, 0);
}

/* ---- child processes ------------------------------------------------- */

static pid_t
spawn(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* No Check here: a passing ck_assert writes into Check's channel,
         * which the child shares with the test. */
        _exit(fn(arg));
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

static int
reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* wait_byte reads one byte from fd, giving up at the deadline. */
static int
wait_byte(int fd)
{
    uint64_t deadline = atb_clock_us() + DEADLINE_US;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    char b;
    while (atb_clock_us() < deadline) {
        if (read(fd, &b, 1) == 1) {
            return 1;
        }
        usleep(1000);
    }
    return 0;
}

/* ---- several dialers ------------------------------------------------ */

START_TEST(test_shm_several_dialers)
{
    atb_loop *la;
    atb_loop *lb;
    ck_assert_int_eq(atb_loop_new(&la), ATBUS_OK);
    ck_assert_int_eq(atb_loop_new(&lb), ATBUS_OK);
    struct server sv;
    server_open(&sv, la, "many", NULL);
    sv.echo = 1;
    /* Three dialers on the listener's loop, two on another loop. */
    enum { N = 5, FRAMES = 300 };
    struct side d[N];
    for (int i = 0; i < N; i++) {
        side_dial(&d[i], i < 3 ? la : lb, sv.url, NULL);
    }
    for (int i = 0; i < N; i++) {
        UNTIL(la, lb, &d[i].opened, 1);
    }
    ck_assert_int_eq(sv.naccepted, N);
    /* One inbox per dialing loop, however many connections. */
    char inbox_prefix[64];
    snprintf(inbox_prefix, sizeof(inbox_prefix), "in-%d-", (int)getpid());
    ck_assert_int_eq(count_names(inbox_prefix), 2);

    for (int f = 0; f < FRAMES; f++) {
        for (int i = 0; i < N; i++) {
            send_ok(d[i].conn, (uint64_t)f, (uint8_t)(10 + i),
                    9 + (size_t)((f * 7 + i * 13) % 2000));
        }
        if (f % 16 == 0) {
            atb_loop_poll(la, 0);
            atb_loop_poll(lb, 0);
        }
    }
    for (int i = 0; i < N; i++) {
        UNTIL(la, lb, &d[i].frames, FRAMES);
    }
    /* Each dialer got its own frames back, in order, and each accepted
     * connection carried exactly one dialer's frames. */
    int tags = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(d[i].bad, 0);
        ck_assert_int_eq(d[i].tag, 10 + i);
        ck_assert_int_eq(sv.accepted[i].bad, 0);
        ck_assert_int_eq(sv.accepted[i].frames, FRAMES);
        ck_assert_int_eq(sv.accepted[i].echo_blocked, 0);
        tags |= 1 << (sv.accepted[i].tag - 10);
        const atb_conn_stats *st = &d[i].conn->stats;
        ck_assert_uint_eq(st->frames_out, FRAMES);
        ck_assert_uint_eq(st->frames_in, FRAMES);
        ck_assert_uint_eq(st->syscalls_out, FRAMES);
        ck_assert_uint_eq(st->bytes_in, st->bytes_out);
    }
    ck_assert_int_eq(tags, (1 << N) - 1);

    /* The last connection of a loop removes its inbox. */
    for (int i = 0; i < N; i++) {
        atb_conn_free(d[i].conn);
    }
    ck_assert_int_eq(count_names(inbox_prefix), 0);
    for (int i = 0; i < N; i++) {
        UNTIL(la, NULL, &sv.accepted[i].closed, 1);
        ck_assert_int_eq(sv.accepted[i].close_reason, ATBUS_ECONNRESET);
    }
    server_close(&sv);
    ck_assert(!name_exists(sv.key));
    atb_loop_free(la);
    atb_loop_free(lb);
}
END_TEST

/* ---- refused dials --------------------------------------------------- */

static void
expect_refused(atb_loop *loop, const char *url)
{
    struct side s;
    side_dial(&s, loop, url, NULL);
    ck_assert_int_eq(s.closed, 0); /* never from inside atb_dial */
    UNTIL(loop, NULL, &s.closed, 1);
    ck_assert_int_eq(s.opened, 0);
    ck_assert_int_eq(s.close_reason, ATBUS_ECONNREFUSED);
    atb_conn_free(s.conn);
}

START_TEST(test_shm_refused)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    char key[ATB_SHM_RING_KEY_MAX + 1];
    char url[160];

    /* A ring whose reader closed it but left the name. */
    make_key(key, sizeof(key), "closed");
    make_url(url, sizeof(url), key);
    atb_shm_ring *ring = NULL;
    ck_assert_int_eq(atb_shm_ring_create(&ring, key, 4096), ATBUS_OK);
    atb_shm_ring_close(ring);
    expect_refused(loop, url);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);

    /* Something in /dev/shm that is not a ring. */
    make_key(key, sizeof(key), "foreign");
    make_url(url, sizeof(url), key);
    char name[160];
    snprintf(name, sizeof(name), "/atbus.%s", key);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 65536), 0);
    ck_assert_int_eq(pwrite(fd, "NOTATBUS", 8, 0), 8);
    close(fd);
    expect_refused(loop, url);
    ck_assert_int_eq(shm_unlink(name), 0);

    /* The listener goes away with the dial not yet answered. */
    struct server sv;
    server_open(&sv, loop, "gone", NULL);
    struct side s;
    side_dial(&s, loop, sv.url, NULL);
    server_close(&sv);
    UNTIL(loop, NULL, &s.closed, 1);
    ck_assert_int_eq(s.opened, 0);
    ck_assert_int_eq(s.close_reason, ATBUS_ECONNREFUSED);
    ck_assert_int_eq(sv.naccepted, 0);
    atb_conn_free(s.conn);
    atb_loop_free(loop);
}
END_TEST

/* ---- listener names across processes -------------------------------- */

struct holder_args {
    const char *url;
    int ready; /* write end: one byte once listening */
};

/* holder_main listens and then waits to be killed. Exit codes: 1 listen
 * failed, 3 nobody killed it. */
static int
holder_main(void *arg)
{
    const struct holder_args *a = arg;
    atb_loop *loop;
    atb_listener *l;
    if (atb_loop_new(&loop) != ATBUS_OK ||
        atb_listen(loop, a->url, NULL, &server_cbs, NULL, &l) != ATBUS_OK) {
        return 1;
    }
    if (write(a->ready, "r", 1) != 1) {
        return 1;
    }
    uint64_t deadline = atb_clock_us() + 3 * DEADLINE_US;
    while (atb_clock_us() < deadline) {
        atb_loop_poll(loop, 10);
    }
    return 3;
}

START_TEST(test_shm_listen_in_use_then_reclaimed)
{
    char key[ATB_SHM_RING_KEY_MAX + 1];
    char url[160];
    make_key(key, sizeof(key), "held");
    make_url(url, sizeof(url), key);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct holder_args args = {url, p[1]};
    pid_t pid = spawn(holder_main, &args);
    int ready = wait_byte(p[0]);
    if (!ready) {
        kill(pid, SIGKILL);
    }
    ck_assert_msg(ready, "the child did not start listening");

    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    atb_listener *l = NULL;
    /* Held by a live process: in use. */
    ck_assert_int_eq(atb_listen(loop, url, NULL, &server_cbs, NULL, &l),
                     ATBUS_EADDRINUSE);
    ck_assert_ptr_null(l);
    ck_assert(name_exists(key));

    /* Its reader died without closing: the name is taken over. */
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert(name_exists(key));
    struct server sv;
    memset(&sv, 0, sizeof(sv));
    ck_assert_int_eq(atb_listen(loop, url, NULL, &server_cbs, &sv, &l),
                     ATBUS_OK);
    sv.listener = l;
    struct side d;
    side_dial(&d, loop, url, NULL);
    UNTIL(loop, NULL, &d.opened, 1);
    ck_assert_int_eq(sv.naccepted, 1);
    exchange(loop, &d, loop, &sv.accepted[0], 10);
    atb_conn_free(d.conn);
    server_close(&sv);
    ck_assert(!name_exists(key));
    close(p[0]);
    close(p[1]);
    atb_loop_free(loop);
}
END_TEST

/* ---- the ring's record limit ---------------------------------------- */

START_TEST(test_shm_ring_record_limit)
{
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.shm_ring_size = 60000; /* rounded up to 64 KiB: records <= 8 KiB */
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    struct server sv;
    server_open(&sv, loop, "limit", &cfg);
    struct side d;
    side_dial(&d, loop, sv.url, &cfg);
    UNTIL(loop, NULL, &d.opened, 1);

    const size_t max = 65536 / 8;
    size_t mlen = max;
    while (atb_frame_size(3, mlen) > max) {
        mlen--;
    }
    ck_assert_uint_eq(atb_frame_size(3, mlen), max);
    uint8_t *buf = malloc(max + 16);
    ck_assert_ptr_nonnull(buf);
    /* A frame of exactly the largest record passes, both ways. */
    size_t flen = frame_make(0, 1, mlen, buf, max + 16);
    ck_assert_uint_eq(flen, max);
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(d.conn, &iov, 1), ATBUS_OK);
    UNTIL(loop, NULL, &sv.naccepted, 1);
    struct side *a = &sv.accepted[0];
    UNTIL(loop, NULL, &a->frames, 1);
    ck_assert_uint_eq(a->last_len, mlen);
    ck_assert_int_eq(a->bad, 0);
    ck_assert_int_eq(atb_conn_send(a->conn, &iov, 1), ATBUS_OK);
    UNTIL(loop, NULL, &d.frames, 1);
    /* One byte more does not fit the ring, far below max_frame_message. */
    flen = frame_make(1, 1, mlen + 1, buf, max + 16);
    iov.iov_len = flen;
    ck_assert_int_eq(atb_conn_send(d.conn, &iov, 1), ATBUS_EMSGSIZE);
    ck_assert_int_eq(atb_conn_send(a->conn, &iov, 1), ATBUS_EMSGSIZE);
    /* Nothing was sent, nothing broke. */
    exchange(loop, &d, loop, a, 3);
    free(buf);
    atb_conn_free(d.conn);
    server_close(&sv);
    atb_loop_free(loop);
}
END_TEST

/* ---- backpressure --------------------------------------------------- */

START_TEST(test_shm_backpressure)
{
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.shm_ring_size = 64 * 1024;
    /* The listener's loop is turned only when the test says so, which
     * stops its reading without touching the transport. */
    atb_loop *la;
    atb_loop *lb;
    ck_assert_int_eq(atb_loop_new(&la), ATBUS_OK);
    ck_assert_int_eq(atb_loop_new(&lb), ATBUS_OK);
    struct server sv;
    server_open(&sv, la, "bp", &cfg);
    struct side d;
    side_dial(&d, lb, sv.url, &cfg);
    UNTIL(lb, la, &d.opened, 1);
    struct side *a = &sv.accepted[0];

    const uint64_t n = 3000;
    uint8_t buf[2048];
    uint64_t seq = 0;
    int refusals = 0;
    /* Fill the ring: it holds about 32 such frames. */
    for (;;) {
        size_t flen = frame_make(seq, 1, 2000, buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        int rc = atb_conn_send(d.conn, &iov, 1);
        if (rc == ATBUS_EWOULDBLOCK) {
            break;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        seq++;
        ck_assert_uint_lt(seq, 64);
        atb_loop_poll(lb, 0);
    }
    ck_assert_uint_ge(d.conn->stats.sends_would_block, 1);
    /* The sender's loop alone cannot make room. */
    for (int i = 0; i < 20; i++) {
        atb_loop_poll(lb, 1);
    }
    ck_assert_int_eq(d.writable, 0);
    ck_assert_int_eq(a->frames, 0);
    /* The reader reads again: on_writable follows, and so on until every
     * frame is through. */
    while (seq < n) {
        size_t flen =
            frame_make(seq, 1, 9 + (size_t)(seq % 2000), buf, sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        int before = d.writable;
        int rc = atb_conn_send(d.conn, &iov, 1);
        if (rc == ATBUS_EWOULDBLOCK) {
            refusals++;
            UNTIL(la, lb, &d.writable, before + 1);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        seq++;
        if (seq % 8 == 0) {
            atb_loop_poll(lb, 0);
        }
    }
    UNTIL(la, lb, &a->frames, (int)n);
    ck_assert_int_eq(a->bad, 0);
    ck_assert_uint_eq(a->next_seq, n);
    ck_assert_uint_eq(d.conn->stats.frames_out, n);
    ck_assert_uint_eq(d.conn->stats.sends_would_block, (uint64_t)refusals + 1);
    atb_conn_free(d.conn);
    server_close(&sv);
    atb_loop_free(la);
    atb_loop_free(lb);
}
END_TEST

/* ---- connect and accept that wait for room -------------------------- */

/* fill writes junk records (an id nobody has) into ring `key` until it is
 * full and returns how many; the reader counts and drops them. */
static int
fill(const char *key)
{
    atb_shm_ring *w = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&w, key), ATBUS_OK);
    uint8_t junk[200] = {0};
    struct iovec iov = {.iov_base = junk, .iov_len = sizeof(junk)};
    int n = 0;
    while (atb_shm_ring_write(w, 999999, &iov, 1) == ATBUS_OK) {
        n++;
        ck_assert_int_lt(n, 1000);
    }
    /* Then the smallest records, so that not even a control record
     * fits. */
    while (atb_shm_ring_write(w, 999999, NULL, 0) == ATBUS_OK) {
        n++;
        ck_assert_int_lt(n, 2000);
    }
    atb_shm_ring_close(w);
    return n;
}

/* inbox_key finds the inbox of this process in /dev/shm (there must be
 * exactly one). */
static void
inbox_key(char *key, size_t n)
{
    char prefix[64];
    int plen = snprintf(prefix, sizeof(prefix), "atbus.in-%d-", (int)getpid());
    DIR *dir = opendir("/dev/shm");
    ck_assert_ptr_nonnull(dir);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)plen) == 0) {
            snprintf(key, n, "%s", e->d_name + strlen("atbus."));
            found++;
        }
    }
    closedir(dir);
    ck_assert_int_eq(found, 1);
}

START_TEST(test_shm_connect_and_accept_wait_for_room)
{
    atb_transport_config cfg;
    atb_transport_config_default(&cfg);
    cfg.shm_ring_size = 4096;
    atb_loop *la;
    atb_loop *lb;
    ck_assert_int_eq(atb_loop_new(&la), ATBUS_OK);
    ck_assert_int_eq(atb_loop_new(&lb), ATBUS_OK);
    struct server sv;
    server_open(&sv, la, "room", &cfg);

    /* The listener's ring is full: the CONNECT waits. */
    int junk = fill(sv.key);
    struct side d1;
    side_dial(&d1, lb, sv.url, &cfg);
    for (int i = 0; i < 20; i++) {
        atb_loop_poll(lb, 1);
    }
    ck_assert_int_eq(d1.opened, 0);
    ck_assert_int_eq(d1.closed, 0);
    ck_assert_int_eq(sv.naccepted, 0);
    UNTIL(lb, la, &d1.opened, 1);
    ck_assert_int_eq(sv.naccepted, 1);
    ck_assert_uint_eq(atb_shm_listener_dropped(sv.listener), (uint64_t)junk);

    /* The dialer's inbox is full: the ACCEPT waits, and the accepted end
     * may not send before it. */
    char ikey[ATB_SHM_RING_KEY_MAX + 1];
    inbox_key(ikey, sizeof(ikey));
    junk = fill(ikey);
    struct side d2;
    side_dial(&d2, lb, sv.url, &cfg);
    UNTIL(la, NULL, &sv.naccepted, 2);
    struct side *a2 = &sv.accepted[1];
    uint8_t buf[256];
    size_t flen = frame_make(0, 2, 100, buf, sizeof(buf));
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(a2->conn, &iov, 1), ATBUS_EWOULDBLOCK);
    ck_assert_int_eq(d2.opened, 0);
    UNTIL(la, lb, &a2->writable, 1);
    UNTIL(la, lb, &d2.opened, 1);
    ck_assert_uint_eq(atb_shm_inbox_dropped(d2.conn), (uint64_t)junk);
    ck_assert_uint_eq(atb_shm_inbox_dropped(d1.conn), (uint64_t)junk);
    ck_assert_int_eq(atb_conn_send(a2->conn, &iov, 1), ATBUS_OK);
    UNTIL(la, lb, &d2.frames, 1);
    ck_assert_int_eq(d2.bad, 0);
    exchange(lb, &d1, la, &sv.accepted[0], 5);
    exchange(lb, &d2, la, a2, 5);

    atb_conn_free(d1.conn);
    atb_conn_free(d2.conn);
    server_close(&sv);
    atb_loop_free(la);
    atb_loop_free(lb);
}
END_TEST

/* ---- closing a listener --------------------------------------------- */

START_TEST(test_shm_listener_close_ends_connections)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    struct server sv;
    server_open(&sv, loop, "lclose", NULL);
    struct side d;
    side_dial(&d, loop, sv.url, NULL);
    UNTIL(loop, NULL, &d.opened, 1);
    exchange(loop, &d, loop, &sv.accepted[0], 3);
    atb_listener_close(sv.listener);
    sv.listener = NULL;
    ck_assert(!name_exists(sv.key));
    /* The accepted end read from the listener's ring: it ends locally;
     * the dialer is told. */
    UNTIL(loop, NULL, &sv.accepted[0].closed, 1);
    ck_assert_int_eq(sv.accepted[0].close_reason, ATBUS_ECLOSED);
    UNTIL(loop, NULL, &d.closed, 1);
    ck_assert_int_eq(d.close_reason, ATBUS_ECONNRESET);
    atb_conn_free(d.conn);
    server_close(&sv);

    /* Closed from inside on_frame, with the ring being read. */
    server_open(&sv, loop, "lclose2", NULL);
    side_dial(&d, loop, sv.url, NULL);
    UNTIL(loop, NULL, &d.opened, 1);
    sv.accepted[0].close_on_frame = &sv.listener;
    for (int i = 0; i < 10; i++) {
        send_ok(d.conn, (uint64_t)i, 1, 64);
    }
    UNTIL(loop, NULL, &sv.accepted[0].closed, 1);
    ck_assert_ptr_null(sv.listener);
    ck_assert_int_eq(sv.accepted[0].frames, 1);
    ck_assert_int_eq(sv.accepted[0].close_reason, ATBUS_ECLOSED);
    UNTIL(loop, NULL, &d.closed, 1);
    ck_assert_int_eq(d.close_reason, ATBUS_ECONNRESET);
    ck_assert(!name_exists(sv.key));
    atb_conn_free(d.conn);
    server_close(&sv);
    atb_loop_free(loop);
}
END_TEST

/* ---- a corrupted ring ----------------------------------------------- */

START_TEST(test_shm_corrupt_ring_starts_over)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    struct server sv;
    server_open(&sv, loop, "corrupt", NULL);
    struct side d;
    side_dial(&d, loop, sv.url, NULL);
    UNTIL(loop, NULL, &d.opened, 1);
    exchange(loop, &d, loop, &sv.accepted[0], 3);

    /* Another process writes a record length that points outside the
     * ring: the reader cannot go on in this ring. */
    atb_shm_ring *w = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&w, sv.key), ATBUS_OK);
    void *p = NULL;
    ck_assert_int_eq(atb_shm_ring_claim(w, 7, 8, &p), ATBUS_OK);
    int32_t bogus = 1 << 30;
    memcpy((uint8_t *)p - ATB_SHM_RING_RECORD_HEADER, &bogus, sizeof(bogus));
    struct iovec iov = {.iov_base = &bogus, .iov_len = sizeof(bogus)};
    ck_assert_int_eq(atb_shm_ring_write(w, 7, &iov, 1), ATBUS_OK); /* wake */
    atb_shm_ring_close(w);

    UNTIL(loop, NULL, &sv.errors, 1);
    ck_assert_int_eq(sv.last_error, ATBUS_EFRAME_INVALID);
    UNTIL(loop, NULL, &sv.accepted[0].closed, 1);
    ck_assert_int_eq(sv.accepted[0].close_reason, ATBUS_EFRAME_INVALID);
    UNTIL(loop, NULL, &d.closed, 1);
    ck_assert_int_eq(d.close_reason, ATBUS_ECONNRESET);
    atb_conn_free(d.conn);

    /* The listener goes on with a new ring under the same name. */
    struct side d2;
    side_dial(&d2, loop, sv.url, NULL);
    UNTIL(loop, NULL, &d2.opened, 1);
    ck_assert_int_eq(sv.naccepted, 2);
    exchange(loop, &d2, loop, &sv.accepted[1], 3);
    atb_conn_free(d2.conn);
    server_close(&sv);
    ck_assert(!name_exists(sv.key));
    atb_loop_free(loop);
}
END_TEST

/* ---- a child killed mid-stream -------------------------------------- */

#define STREAM_TAG 7

/* streamer_main dials url and sends frames 0, 1, 2, ... until killed.
 * Exit codes: 1 dial failed, 2 not opened, 3 send failed, 4 deadline. */
static int
streamer_main(void *arg)
{
    const char *url = arg;
    atb_loop *loop;
    struct side s;
    if (atb_loop_new(&loop) != ATBUS_OK) {
        return 1;
    }
    side_init(&s);
    if (atb_dial(loop, url, NULL, &side_cbs, &s, &s.conn) != ATBUS_OK) {
        return 1;
    }
    uint64_t deadline = atb_clock_us() + 3 * DEADLINE_US;
    while (!s.opened && !s.closed && atb_clock_us() < deadline) {
        atb_loop_poll(loop, 1);
    }
    if (!s.opened) {
        return 2;
    }
    uint8_t buf[2048];
    for (uint64_t seq = 0; atb_clock_us() < deadline;) {
        size_t flen = frame_make(seq, STREAM_TAG, 9 + (size_t)(seq % 1500), buf,
                                 sizeof(buf));
        struct iovec iov = {.iov_base = buf, .iov_len = flen};
        int rc = atb_conn_send(s.conn, &iov, 1);
        if (rc == ATBUS_EWOULDBLOCK) {
            int before = s.writable;
            while (s.writable == before && !s.closed &&
                   atb_clock_us() < deadline) {
                atb_loop_poll(loop, 1);
            }
            continue;
        }
        if (rc != ATBUS_OK) {
            return 3;
        }
        seq++;
        if (seq % 32 == 0) {
            atb_loop_poll(loop, 0);
        }
    }
    return 4;
}

START_TEST(test_shm_child_killed_mid_stream)
{
    atb_loop *la;
    atb_loop *lb;
    ck_assert_int_eq(atb_loop_new(&la), ATBUS_OK);
    ck_assert_int_eq(atb_loop_new(&lb), ATBUS_OK);
    struct server sv;
    server_open(&sv, la, "kill", NULL);
    /* An in-process connection that must outlive the child's. */
    struct side local;
    side_dial(&local, lb, sv.url, NULL);
    UNTIL(lb, la, &local.opened, 1);
    struct side *la_local = &sv.accepted[0];

    pid_t pid = spawn(streamer_main, sv.url);
    UNTIL(la, NULL, &sv.naccepted, 2);
    struct side *child = &sv.accepted[1];
    /* Enough frames that the kill lands mid-stream. */
    int got = until(la, lb, &child->frames, 20000);
    kill(pid, SIGKILL);
    int status = reap(pid);
    ck_assert_msg(got, "the child sent %d frames, then exited with %d",
                  child->frames, status);
    ck_assert_int_eq(status, 128 + SIGKILL);
    uint64_t span = child->last_us - child->first_us;
    fprintf(stderr,
            "shm: %d frames from a child process in %.1f ms (%.0f frames/s)\n",
            child->frames, (double)span / 1000.0,
            span > 0 ? (double)child->frames * 1e6 / (double)span : 0.0);

    /* Every frame committed before the kill arrives, in order; then the
     * connection ends as reset. A kill inside a claim stalls the ring
     * until recovery (ATB_SHM_RING_STALL_US). */
    UNTIL(la, lb, &child->closed, 1);
    ck_assert_int_eq(child->close_reason, ATBUS_ECONNRESET);
    ck_assert_int_eq(child->bad, 0);
    ck_assert_int_eq(child->tag, STREAM_TAG);
    ck_assert_uint_eq(child->next_seq, (uint64_t)child->frames);
    ck_assert_int_ge(child->frames, 20000);

    /* The other connection did not notice. */
    ck_assert_int_eq(local.closed, 0);
    ck_assert_int_eq(la_local->closed, 0);
    exchange(lb, &local, la, la_local, 50);
    atb_conn_free(local.conn);
    server_close(&sv);
    atb_loop_free(la);
    atb_loop_free(lb);
}
END_TEST

/* ---- garbage from a child ------------------------------------------- */

/* The control record as docs/internals/shm.md lays it out. */
struct wire_ctl {
    uint32_t version;
    uint32_t op;
    int64_t pid;
    int32_t reply_id;
    int32_t ref_id;
    char key[104];
};
_Static_assert(sizeof(struct wire_ctl) == 128, "control record size");

enum { WIRE_CONNECT = 1, WIRE_ACCEPT = 2, WIRE_CLOSE = 3 };

struct ctl_box {
    struct wire_ctl ctl;
    int32_t type;
    size_t len;
    int n;
};

static void
ctl_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct ctl_box *b = arg;
    b->type = type;
    b->len = len;
    if (len == sizeof(b->ctl)) {
        memcpy(&b->ctl, data, sizeof(b->ctl));
    }
    b->n++;
}

/* ctl_next waits for the next record in ring. */
static int
ctl_next(atb_shm_ring *ring, struct ctl_box *b)
{
    memset(b, 0, sizeof(*b));
    if (atb_shm_ring_wait(ring, (int64_t)DEADLINE_US) != ATBUS_OK) {
        return 0;
    }
    return atb_shm_ring_read(ring, ctl_record, b, 1) == 1;
}

struct raw_args {
    const char *listener_key;
    char own_key[ATB_SHM_RING_KEY_MAX + 1];
    int die_in_claim; /* send frames, claim a record, wait to be killed */
    int ready;        /* die_in_claim: one byte once the claim is held */
};

#define RAW_FRAMES 50

/* raw_frames sends RAW_FRAMES valid frames (tag 9) to listener_id.
 * Returns 0 or an exit code. */
static int
raw_frames(atb_shm_ring *out, int32_t listener_id)
{
    uint8_t msg[300];
    uint8_t frame[400];
    for (uint64_t seq = 0; seq < RAW_FRAMES; seq++) {
        size_t mlen = 9 + (size_t)seq * 5;
        memcpy(msg, &seq, 8);
        msg[8] = 9;
        for (size_t i = 9; i < mlen; i++) {
            msg[i] = (uint8_t)(seq * 31 + i + 9);
        }
        size_t flen;
        if (atb_frame_wrap(3, msg, mlen, frame, sizeof(frame), &flen) !=
            ATBUS_OK) {
            return 7;
        }
        struct iovec iov = {.iov_base = frame, .iov_len = flen};
        if (atb_shm_ring_write(out, listener_id, &iov, 1) != ATBUS_OK) {
            return 4;
        }
    }
    return 0;
}

/*
 * raw_main speaks the protocol by hand: a malformed control record, a
 * CONNECT, then, once accepted, a record that is not a frame; the
 * listener must answer with CLOSE. Or (die_in_claim) valid frames, then a
 * claim it never commits. Exit codes: 1 set-up, 2 no ACCEPT, 3 bad
 * ACCEPT, 4 write failed, 5 no CLOSE, 6 bad CLOSE, 7 frame, 8 not
 * killed.
 */
static int
raw_main(void *arg)
{
    const struct raw_args *a = arg;
    atb_shm_ring *in = NULL;
    atb_shm_ring *out = NULL;
    if (atb_shm_ring_create(&in, a->own_key, 4096) != ATBUS_OK ||
        atb_shm_ring_open(&out, a->listener_key) != ATBUS_OK) {
        return 1;
    }
    const int32_t my_id = 42;
    struct wire_ctl ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.version = 1;
    ctl.op = WIRE_CONNECT;
    ctl.pid = (int64_t)getpid();
    ctl.reply_id = my_id;
    memcpy(ctl.key, a->own_key, strlen(a->own_key));
    struct iovec bad = {.iov_base = &ctl, .iov_len = sizeof(ctl) - 1};
    struct iovec good = {.iov_base = &ctl, .iov_len = sizeof(ctl)};
    if (atb_shm_ring_write(out, 0, &bad, 1) != ATBUS_OK ||
        atb_shm_ring_write(out, 0, &good, 1) != ATBUS_OK) {
        return 4;
    }
    struct ctl_box b;
    if (!ctl_next(in, &b)) {
        return 2;
    }
    if (b.type != 0 || b.len != sizeof(ctl) || b.ctl.op != WIRE_ACCEPT ||
        b.ctl.ref_id != my_id || b.ctl.reply_id <= 0 ||
        b.ctl.pid != (int64_t)getppid()) {
        return 3;
    }
    int32_t listener_id = b.ctl.reply_id;
    if (a->die_in_claim) {
        int rc = raw_frames(out, listener_id);
        void *p;
        if (rc != 0 ||
            atb_shm_ring_claim(out, listener_id, 64, &p) != ATBUS_OK) {
            return rc != 0 ? rc : 4;
        }
        if (write(a->ready, "c", 1) != 1) {
            return 1;
        }
        sleep(30);
        return 8;
    }
    static const char junk[] = "GET / HTTP/1.1\r\n\r\n";
    struct iovec g = {.iov_base = (void *)(uintptr_t)junk,
                      .iov_len = sizeof(junk) - 1};
    if (atb_shm_ring_write(out, listener_id, &g, 1) != ATBUS_OK) {
        return 4;
    }
    if (!ctl_next(in, &b)) {
        return 5;
    }
    if (b.type != 0 || b.ctl.op != WIRE_CLOSE || b.ctl.ref_id != my_id ||
        b.ctl.reply_id != listener_id) {
        return 6;
    }
    /* No close: the listener must cope with a peer that just vanishes. */
    atb_shm_ring_unlink(a->own_key);
    return 0;
}

START_TEST(test_shm_garbage_closes_only_that_connection)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    struct server sv;
    server_open(&sv, loop, "garbage", NULL);
    struct side good;
    side_dial(&good, loop, sv.url, NULL);
    UNTIL(loop, NULL, &good.opened, 1);

    struct raw_args args = {.listener_key = sv.key};
    make_key(args.own_key, sizeof(args.own_key), "raw");
    pid_t pid = spawn(raw_main, &args);
    UNTIL(loop, NULL, &sv.naccepted, 2);
    struct side *raw = &sv.accepted[1];
    UNTIL(loop, NULL, &raw->closed, 1);
    /* 'G' (0x47) is read as version 71. */
    ck_assert_int_eq(raw->close_reason, ATBUS_EFRAME_VERSION);
    ck_assert_int_eq(raw->frames, 0);
    ck_assert_int_eq(reap(pid), 0);
    /* The malformed control record was counted; the bad frame was not
     * dropped but ended its connection. */
    ck_assert_uint_eq(atb_shm_listener_dropped(sv.listener), 1);

    /* A frame whose hash is wrong, from an in-process dialer: the frame
     * check before sending looks at the header only. */
    struct side hashed;
    side_dial(&hashed, loop, sv.url, NULL);
    UNTIL(loop, NULL, &hashed.opened, 1);
    uint8_t buf[256];
    size_t flen = frame_make(0, 3, 100, buf, sizeof(buf));
    buf[flen - 1] ^= 0xff;
    struct iovec iov = {.iov_base = buf, .iov_len = flen};
    ck_assert_int_eq(atb_conn_send(hashed.conn, &iov, 1), ATBUS_OK);
    UNTIL(loop, NULL, &sv.accepted[2].closed, 1);
    ck_assert_int_eq(sv.accepted[2].close_reason, ATBUS_EFRAME_HASH);
    UNTIL(loop, NULL, &hashed.closed, 1);
    ck_assert_int_eq(hashed.close_reason, ATBUS_ECONNRESET);

    /* The first connection still works. */
    ck_assert_int_eq(good.closed, 0);
    exchange(loop, &good, loop, &sv.accepted[0], 20);
    atb_conn_free(good.conn);
    atb_conn_free(hashed.conn);
    server_close(&sv);
    atb_loop_free(loop);
}
END_TEST

/* ---- a child killed inside a claim ---------------------------------- */

START_TEST(test_shm_child_killed_inside_claim)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    struct server sv;
    server_open(&sv, loop, "claim", NULL);
    struct side local;
    side_dial(&local, loop, sv.url, NULL);
    UNTIL(loop, NULL, &local.opened, 1);

    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct raw_args args = {
        .listener_key = sv.key, .die_in_claim = 1, .ready = p[1]};
    make_key(args.own_key, sizeof(args.own_key), "claimer");
    pid_t pid = spawn(raw_main, &args);
    UNTIL(loop, NULL, &sv.naccepted, 2);
    struct side *child = &sv.accepted[1];
    int ready = wait_byte(p[0]);
    /* Frames sent now queue behind the claim that will never be
     * committed. */
    for (uint64_t i = 0; i < 20; i++) {
        send_ok(local.conn, i, 4, 200);
    }
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert(ready);

    /* The stall recovery turns the claim into padding: the child's frames
     * before it arrive, the connection is reset, and the frames behind it
     * are delivered. */
    UNTIL(loop, NULL, &child->closed, 1);
    ck_assert_int_eq(child->close_reason, ATBUS_ECONNRESET);
    ck_assert_int_eq(child->frames, RAW_FRAMES);
    ck_assert_int_eq(child->bad, 0);
    struct side *a = &sv.accepted[0];
    UNTIL(loop, NULL, &a->frames, 20);
    ck_assert_int_eq(a->bad, 0);
    exchange(loop, &local, loop, a, 10);
    atb_shm_ring_unlink(args.own_key);
    close(p[0]);
    close(p[1]);
    atb_conn_free(local.conn);
    server_close(&sv);
    atb_loop_free(loop);
}
END_TEST

/* ---- the sweep of dead inboxes -------------------------------------- */

struct dialer_args {
    const char *url;
    int ready;
};

/* dialer_main makes an inbox (a dial, refused or not), says so, and waits
 * to be killed. Exit codes: 1 set-up, 3 nobody killed it. */
static int
dialer_main(void *arg)
{
    const struct dialer_args *a = arg;
    atb_loop *loop;
    struct side s;
    side_init(&s);
    if (atb_loop_new(&loop) != ATBUS_OK ||
        atb_dial(loop, a->url, NULL, &side_cbs, &s, &s.conn) != ATBUS_OK ||
        write(a->ready, "r", 1) != 1) {
        return 1;
    }
    uint64_t deadline = atb_clock_us() + 3 * DEADLINE_US;
    while (atb_clock_us() < deadline) {
        atb_loop_poll(loop, 10);
    }
    return 3;
}

START_TEST(test_shm_dead_inboxes_swept)
{
    char key[ATB_SHM_RING_KEY_MAX + 1];
    char url[160];
    make_key(key, sizeof(key), "nobody");
    make_url(url, sizeof(url), key);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct dialer_args args = {url, p[1]};
    pid_t pid = spawn(dialer_main, &args);
    int ready = wait_byte(p[0]);
    char child_prefix[64];
    snprintf(child_prefix, sizeof(child_prefix), "in-%d-", (int)pid);
    /* Counted while the child lives: a live inbox is never swept, by
     * this process or by any other running at the same time. */
    int before = count_names(child_prefix);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert(ready);
    ck_assert_int_eq(before, 1);

    /* The child's inbox outlived it, until some process makes an inbox
     * of its own. Ours must survive the next one's sweep. */
    char own_prefix[64];
    snprintf(own_prefix, sizeof(own_prefix), "in-%d-", (int)getpid());
    atb_loop *l1;
    atb_loop *l2;
    ck_assert_int_eq(atb_loop_new(&l1), ATBUS_OK);
    ck_assert_int_eq(atb_loop_new(&l2), ATBUS_OK);
    struct side s1;
    struct side s2;
    side_dial(&s1, l1, url, NULL);
    ck_assert_int_eq(count_names(child_prefix), 0);
    side_dial(&s2, l2, url, NULL);
    ck_assert_int_eq(count_names(own_prefix), 2);
    UNTIL(l1, NULL, &s1.closed, 1);
    UNTIL(l2, NULL, &s2.closed, 1);
    atb_conn_free(s1.conn);
    atb_conn_free(s2.conn);
    ck_assert_int_eq(count_names(own_prefix), 0);
    close(p[0]);
    close(p[1]);
    atb_loop_free(l1);
    atb_loop_free(l2);
}
END_TEST

static Suite *
shm_transport_suite(void)
{
    Suite *s = suite_create("shm_transport");
    TCase *tc = atb_test_case("shm_transport", 60);
    tcase_add_test(tc, test_shm_several_dialers);
    tcase_add_test(tc, test_shm_refused);
    tcase_add_test(tc, test_shm_listen_in_use_then_reclaimed);
    tcase_add_test(tc, test_shm_ring_record_limit);
    tcase_add_test(tc, test_shm_backpressure);
    tcase_add_test(tc, test_shm_connect_and_accept_wait_for_room);
    tcase_add_test(tc, test_shm_listener_close_ends_connections);
    tcase_add_test(tc, test_shm_corrupt_ring_starts_over);
    tcase_add_test(tc, test_shm_child_killed_mid_stream);
    tcase_add_test(tc, test_shm_child_killed_inside_claim);
    tcase_add_test(tc, test_shm_garbage_closes_only_that_connection);
    tcase_add_test(tc, test_shm_dead_inboxes_swept);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    runner_pid = (long)getpid();
    int status = atb_test_run(shm_transport_suite());
    /* Names of this run whose reader is gone (a failed test's). */
    char prefix[64];
    snprintf(prefix, sizeof(prefix), KEY_PREFIX "%ld-", runner_pid);
    atb_shm_ring_sweep(prefix);
    return status;
}
