/*
 * Shared-memory ring: names and validation of foreign objects, one writer
 * wrapping the ring many times, claim/commit/abort, four writer processes
 * at once, recovery from writers that die inside a claim, the ENOSPC
 * check at creation, the reader lock (liveness, reclaim, sweep) across
 * processes, the free-space check, and futex sleep and wake-up across
 * threads and processes, including a ping-pong that races commits
 * against the reader's way into the futex, and an interrupted wait.
 *
 * Writers run in forked processes that report through their exit status
 * (they never call Check) and leave with _exit. Every loop that waits for
 * another process has its own deadline and fails instead of hanging.
 * Keys start with the runner's process id, and the runner removes every
 * name of its run at the end, however a test ended.
 */
#define _GNU_SOURCE /* fork, shm_open, statvfs, nanosleep */
#include <atbus/atbus.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "testing.h"
#include "transport/shm/shm_ring.h"

/* Generous: the whole suite normally takes a few seconds. */
#define DEADLINE_US ((uint64_t)25 * 1000 * 1000)

/* The longest a reader may sleep while writers are busy; wake-ups take
 * microseconds. */
#define WAKE_TIMEOUT_US ((int64_t)5 * 1000 * 1000)

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- unique keys, removed at the end ------------------------------- */

/* The runner's pid, set in main before Check forks each test: every key
 * starts with "test-<pid>-", so main can remove whatever a test left
 * behind, even one that failed or was killed on its timeout. */
static long runner_pid;

/* key_make_len returns "test-<runner pid>-<tag>", padded with 'k' to len
 * characters when shorter. Tags are unique across the suite. */
static const char *
key_make_len(const char *tag, size_t len)
{
    /* Reused round robin: a test holds a few keys at most. */
    static char keys[8][ATB_SHM_RING_KEY_MAX + 1];
    static unsigned used;
    ck_assert_uint_lt(len, sizeof(keys[0]));
    char *k = keys[used++ % 8];
    int n = snprintf(k, sizeof(keys[0]), "test-%ld-%s", runner_pid, tag);
    ck_assert(n > 0 && (size_t)n < sizeof(keys[0]));
    if ((size_t)n < len) {
        memset(k + n, 'k', len - (size_t)n);
        k[len] = '\0';
    }
    return k;
}

static const char *
key_make(const char *tag)
{
    return key_make_len(tag, 0);
}

/* keys_cleanup removes every ring of this run from /dev/shm. */
static void
keys_cleanup(void)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof(prefix), "atbus.test-%ld-", runner_pid);
    DIR *dir = opendir("/dev/shm");
    if (dir == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)n) == 0) {
            atb_shm_ring_unlink(e->d_name + strlen("atbus."));
        }
    }
    closedir(dir);
}

static atb_shm_ring *
ring_make(const char *key, size_t capacity)
{
    atb_shm_ring *ring = NULL;
    ck_assert_int_eq(atb_shm_ring_create(&ring, key, capacity), ATBUS_OK);
    ck_assert_ptr_nonnull(ring);
    return ring;
}

static int
write1(atb_shm_ring *ring, int32_t type, const void *p, size_t len)
{
    struct iovec iov = {(void *)(uintptr_t)p, len};
    return atb_shm_ring_write(ring, type, &iov, 1);
}

/* ---- child processes ----------------------------------------------- */

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

/* reap waits for a child and returns its exit status, or 128 + signal. */
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

/* ---- payloads the reader can verify -------------------------------- */

/* A record of the multi-writer tests: this header, then body_len bytes
 * derived from (writer, seq), whose FNV-1a hash is sum. */
struct msg {
    uint32_t writer;
    uint32_t body_len;
    uint64_t seq;
    uint64_t sum;
};

static void
body_fill(uint8_t *p, size_t n, uint32_t writer, uint64_t seq)
{
    uint64_t st = ((uint64_t)writer << 40) ^ seq;
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)atb_test_rng(&st);
    }
}

static uint64_t
fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3u;
    }
    return h;
}

#define BODY_MAX 120
#define MSG_TYPE 42

/* writer_send writes record seq of a writer, retrying while the ring is
 * full. Returns 0, or an exit code for the child. */
static int
writer_send(atb_shm_ring *ring, uint32_t writer, uint64_t seq,
            uint64_t deadline)
{
    uint8_t body[BODY_MAX];
    uint64_t st = ((uint64_t)writer << 40) ^ seq ^ 0x5a5a;
    struct msg m = {.writer = writer, .seq = seq};
    m.body_len = (uint32_t)(atb_test_rng(&st) % (BODY_MAX + 1));
    body_fill(body, m.body_len, writer, seq);
    m.sum = fnv1a(body, m.body_len);
    struct iovec iov[2] = {{&m, sizeof(m)}, {body, m.body_len}};
    for (;;) {
        int rc = atb_shm_ring_write(ring, MSG_TYPE, iov, 2);
        if (rc == ATBUS_OK) {
            return 0;
        }
        if (rc != ATBUS_EWOULDBLOCK) {
            return 2;
        }
        if (now_us() > deadline) {
            return 3;
        }
        sched_yield();
    }
}

struct writer_args {
    const char *key;
    uint32_t writer;
    uint64_t count;
};

/* writer_main: a writer process. Exit codes: 0 done, 1 open failed,
 * 2 write failed, 3 deadline. */
static int
writer_main(void *arg)
{
    const struct writer_args *a = arg;
    atb_shm_ring *ring = NULL;
    if (atb_shm_ring_open(&ring, a->key) != ATBUS_OK) {
        return 1;
    }
    uint64_t deadline = now_us() + DEADLINE_US;
    int rc = 0;
    for (uint64_t seq = 0; seq < a->count && rc == 0; seq++) {
        rc = writer_send(ring, a->writer, seq, deadline);
    }
    atb_shm_ring_close(ring);
    return rc;
}

#define MAX_WRITERS 4

/* What the reader saw of the writers' records. */
struct tally {
    uint64_t next[MAX_WRITERS];
    uint64_t total;
    int other_types; /* records of another type (a crashed claim's) */
    long sleeps;     /* waits that found nothing ready */
    char error[160]; /* first problem, empty when none */
};

static void
tally_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct tally *t = arg;
    if (t->error[0] != '\0') {
        return;
    }
    if (type != MSG_TYPE) {
        t->other_types++;
        return;
    }
    struct msg m;
    uint8_t body[BODY_MAX];
    if (len < sizeof(m)) {
        snprintf(t->error, sizeof(t->error), "short record: %zu", len);
        return;
    }
    memcpy(&m, data, sizeof(m));
    if (m.writer >= MAX_WRITERS || m.body_len > BODY_MAX ||
        len != sizeof(m) + m.body_len) {
        snprintf(t->error, sizeof(t->error), "bad header: writer %u len %zu",
                 m.writer, len);
        return;
    }
    if (m.seq != t->next[m.writer]) {
        snprintf(t->error, sizeof(t->error),
                 "writer %u: seq %llu, expected %llu", m.writer,
                 (unsigned long long)m.seq,
                 (unsigned long long)t->next[m.writer]);
        return;
    }
    const uint8_t *got = (const uint8_t *)data + sizeof(m);
    body_fill(body, m.body_len, m.writer, m.seq);
    if (fnv1a(got, m.body_len) != m.sum || memcmp(got, body, m.body_len)) {
        snprintf(t->error, sizeof(t->error), "writer %u seq %llu: bad body",
                 m.writer, (unsigned long long)m.seq);
        return;
    }
    t->next[m.writer]++;
    t->total++;
}

/* drain reads until want records arrived, sleeping in atb_shm_ring_wait
 * between batches. Returns 0, or -1 on a deadline or a tally error. */
static int
drain(atb_shm_ring *ring, struct tally *t, uint64_t want)
{
    uint64_t deadline = now_us() + DEADLINE_US;
    while (t->total < want && t->error[0] == '\0') {
        int n = atb_shm_ring_read(ring, tally_record, t, 256);
        if (n < 0) {
            snprintf(t->error, sizeof(t->error), "read: %s", atbus_err_name(n));
            return -1;
        }
        if (n == 0) {
            if (now_us() > deadline) {
                snprintf(t->error, sizeof(t->error),
                         "deadline with %llu of %llu records",
                         (unsigned long long)t->total,
                         (unsigned long long)want);
                return -1;
            }
            /* Writers are still running, so a commit must end the
             * wait: running into the timeout means a lost wake-up (or a
             * writer paused for seconds inside a claim). */
            t->sleeps++;
            int rc = atb_shm_ring_wait(ring, WAKE_TIMEOUT_US);
            if (rc != ATBUS_OK) {
                snprintf(t->error, sizeof(t->error),
                         "wait: %s with %llu of %llu records",
                         atbus_err_name(rc), (unsigned long long)t->total,
                         (unsigned long long)want);
                return -1;
            }
        }
    }
    return t->error[0] == '\0' ? 0 : -1;
}

/* spawn_writers starts n writer processes of count records each. */
static void
spawn_writers(pid_t *pids, struct writer_args *args, const char *key, int n,
              uint64_t count)
{
    for (int i = 0; i < n; i++) {
        args[i] = (struct writer_args){key, (uint32_t)i, count};
        pids[i] = spawn(writer_main, &args[i]);
    }
}

/* finish_writers drains the records of n writers started with
 * spawn_writers and checks every record and every exit status. */
static void
finish_writers(atb_shm_ring *ring, struct tally *t, const pid_t *pids, int n,
               uint64_t count)
{
    for (int i = 0; i < n; i++) {
        t->next[i] = 0;
    }
    int rc = drain(ring, t, t->total + (uint64_t)n * count);
    if (rc != 0) {
        /* Do not leave writers spinning behind a failed test. */
        for (int i = 0; i < n; i++) {
            kill(pids[i], SIGKILL);
        }
    }
    for (int i = 0; i < n; i++) {
        int status = reap(pids[i]);
        ck_assert_msg(rc != 0 || status == 0, "writer %d exited with %d", i,
                      status);
    }
    ck_assert_msg(rc == 0, "%s", t->error);
    for (int i = 0; i < n; i++) {
        ck_assert_uint_eq(t->next[i], count);
    }
}

static void
run_writers(atb_shm_ring *ring, const char *key, int n, uint64_t count,
            struct tally *t)
{
    pid_t pids[MAX_WRITERS];
    struct writer_args args[MAX_WRITERS];
    spawn_writers(pids, args, key, n, count);
    finish_writers(ring, t, pids, n, count);
}

/* ---- names and validation ------------------------------------------ */

START_TEST(test_create_open_close_unlink)
{
    const char *key = key_make("basic");
    atb_shm_ring *reader = ring_make(key, 4096);
    ck_assert_uint_eq(atb_shm_ring_capacity(reader), 4096);
    ck_assert_uint_eq(atb_shm_ring_max_length(reader), 512);

    /* The object is /dev/shm/atbus.<key>, header plus data area. */
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "/dev/shm/atbus.%s", key);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, ATB_SHM_RING_HEADER_SIZE + 4096);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    atb_shm_ring *dup = NULL;
    ck_assert_int_eq(atb_shm_ring_create(&dup, key, 4096), ATBUS_EEXIST);
    ck_assert_ptr_null(dup);

    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    ck_assert_uint_eq(atb_shm_ring_capacity(writer), 4096);
    ck_assert_int_eq(write1(writer, 7, "hello", 5), ATBUS_OK);
    ck_assert_int_eq(write1(reader, 8, "self", 4), ATBUS_OK);

    /* Reader calls on a writer handle are refused. */
    struct tally t = {0};
    ck_assert_int_eq(atb_shm_ring_read(writer, tally_record, &t, 1),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_wait(writer, 0), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_unblock(writer), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_recover(writer, 0, 0), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_read(reader, tally_record, &t, 0),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_read(reader, tally_record, &t, 8), 2);
    ck_assert_int_eq(t.other_types, 2);

    /* Once the reader closes, writers learn it; the name stays. */
    atb_shm_ring_close(reader);
    ck_assert_int_eq(write1(writer, 7, "late", 4), ATBUS_ECLOSED);
    atb_shm_ring_close(writer);
    writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_ECLOSED);
    ck_assert_ptr_null(writer);

    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
    ck_assert_int_eq(stat(path, &st), -1);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_ENOTFOUND);

    /* The name is free again. */
    reader = ring_make(key, 8192);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
    atb_shm_ring_close(NULL);
}
END_TEST

START_TEST(test_bad_keys_and_capacities)
{
    char longest[ATB_SHM_RING_KEY_MAX + 2];
    memset(longest, 'k', sizeof(longest));
    longest[ATB_SHM_RING_KEY_MAX + 1] = '\0';
    static const char *const bad[] = {
        "", "a/b", "a b", "..\\x", "caf\xc3\xa9", "a:b", "/x"};
    atb_shm_ring *ring = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(atb_shm_ring_create(&ring, bad[i], 4096),
                         ATBUS_EINVAL);
        ck_assert_int_eq(atb_shm_ring_open(&ring, bad[i]), ATBUS_EINVAL);
        ck_assert_int_eq(atb_shm_ring_unlink(bad[i]), ATBUS_EINVAL);
    }
    ck_assert_int_eq(atb_shm_ring_create(&ring, longest, 4096), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_create(&ring, NULL, 4096), ATBUS_EINVAL);
    ck_assert_ptr_null(ring);

    /* The longest key is fine, and so are all allowed characters. */
    const char *key = key_make_len("Az09._-", ATB_SHM_RING_KEY_MAX);
    ck_assert_int_eq(atb_shm_ring_create(&ring, key, 4096), ATBUS_OK);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);

    key = key_make("cap");
    static const size_t bad_caps[] = {0, 2048, 4095, 12288,
                                      ATB_SHM_RING_MAX_CAPACITY * 2};
    for (size_t i = 0; i < sizeof(bad_caps) / sizeof(bad_caps[0]); i++) {
        ck_assert_int_eq(atb_shm_ring_create(&ring, key, bad_caps[i]),
                         ATBUS_EINVAL);
    }
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_ENOTFOUND);
}
END_TEST

/* raw_object creates "/atbus.<key>" of size bytes by hand and maps it. */
static uint8_t *
raw_object(const char *key, size_t size)
{
    char name[128];
    snprintf(name, sizeof(name), "/atbus.%s", key);
    int fd = shm_open(name, O_RDWR | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    uint8_t *p = NULL;
    if (size > 0) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
    }
    close(fd);
    return p;
}

START_TEST(test_open_refuses_foreign_objects)
{
    const char *key = key_make("foreign");
    const size_t size = ATB_SHM_RING_HEADER_SIZE + 4096;
    atb_shm_ring *ring = NULL;

    /* Size 0: a reader between shm_open and sizing. */
    raw_object(key, 0);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_ENOTFOUND);

    /* Too small to be a ring. */
    uint8_t *p = raw_object(key, 100);
    munmap(p, 100);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_EINVAL);

    /* Right size, someone else's bytes. */
    p = raw_object(key, size);
    memcpy(p, "NOTATBUS", 8);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_EINVAL);
    munmap(p, size);
    ck_assert_ptr_null(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);

    /* A real ring whose header is then damaged (offsets from
     * docs/internals/shm.md). */
    atb_shm_ring *reader = ring_make(key, 4096);
    p = raw_object(key, size);
    ck_assert_mem_eq(p, "atbusshm", 8);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_OK);
    atb_shm_ring_close(ring);

    uint32_t version;
    memcpy(&version, p + 8, 4);
    uint32_t other = version + 1;
    memcpy(p + 8, &other, 4);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_ENOTSUP);
    memcpy(p + 8, &version, 4);

    uint64_t cap;
    memcpy(&cap, p + 16, 8);
    uint64_t wrong = cap * 2;
    memcpy(p + 16, &wrong, 8);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_EINVAL);
    memcpy(p + 16, &cap, 8);

    uint8_t magic[8];
    memcpy(magic, p, 8);
    memset(p, 0, 8); /* as while the reader is still initialising */
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_ENOTFOUND);
    p[0] = 'X';
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_EINVAL);
    memcpy(p, magic, 8);
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_OK);
    atb_shm_ring_close(ring);

    munmap(p, size);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* ---- one writer ------------------------------------------------------ */

/* Record i of the single-writer test: its length (from a replayable
 * stream, with every eighth at the maximum) and its bytes. */
static size_t
seq_len(uint64_t *st, size_t max)
{
    uint64_t r = atb_test_rng(st);
    return r % 8 == 0 ? max : (size_t)(r >> 8) % (max + 1);
}

static uint8_t
seq_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

struct seq_check {
    uint64_t rng; /* replays the writer's lengths */
    uint64_t next;
    size_t max;
    int bad;
};

static void
seq_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct seq_check *c = arg;
    size_t want = seq_len(&c->rng, c->max);
    const uint8_t *p = data;
    if (type != (int32_t)(c->next % 1000) || len != want ||
        ((uintptr_t)data & 7u) != 0) {
        c->bad++;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != seq_byte(c->next, i)) {
            c->bad++;
            break;
        }
    }
    c->next++;
}

START_TEST(test_single_writer_wraps)
{
    const char *key = key_make("wrap");
    const size_t cap = 64 * 1024;
    atb_shm_ring *reader = ring_make(key, cap);
    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    const size_t max = atb_shm_ring_max_length(writer);
    ck_assert_uint_eq(max, cap / 8);

    uint8_t *buf = atb_malloc(max + 1);
    ck_assert_ptr_nonnull(buf);
    uint64_t wst = 1234;
    struct seq_check c = {.rng = 1234, .max = max};
    uint64_t seq = 0;
    uint64_t bytes = 0;
    uint64_t rst = 99;
    int fulls = 0;
    size_t len = seq_len(&wst, max);
    while (bytes < 60 * (uint64_t)cap) {
        for (size_t i = 0; i < len; i++) {
            buf[i] = seq_byte(seq, i);
        }
        /* Gathered from one, two or three pieces. */
        int pieces = 1 + (int)(seq % 3);
        size_t a = pieces == 1 ? len : len / 3;
        size_t b = pieces == 3 ? len / 2 : len;
        struct iovec iov[3] = {{buf, a}, {buf + a, b - a}, {buf + b, len - b}};
        int rc = atb_shm_ring_write(writer, (int32_t)(seq % 1000), iov, pieces);
        if (rc == ATBUS_EWOULDBLOCK) {
            fulls++;
            int limit = 1 + (int)(atb_test_rng(&rst) % 16);
            int n = atb_shm_ring_read(reader, seq_record, &c, limit);
            ck_assert_int_ge(n, 1);
            ck_assert_int_eq(c.bad, 0);
            continue;
        }
        ck_assert_int_eq(rc, ATBUS_OK);
        bytes += len;
        seq++;
        len = seq_len(&wst, max);
    }
    while (c.next < seq) {
        ck_assert_int_ge(atb_shm_ring_read(reader, seq_record, &c, 64), 1);
    }
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_eq(atb_shm_ring_read(reader, seq_record, &c, 64), 0);
    ck_assert_int_gt(fulls, 100);

    /* Size limits: the maximum fits, one byte more does not, also when
     * the excess comes from the sum of the pieces. */
    ck_assert_int_eq(write1(writer, 1, buf, max), ATBUS_OK);
    ck_assert_int_eq(write1(writer, 1, buf, max + 1), ATBUS_EMSGSIZE);
    struct iovec two[2] = {{buf, max}, {buf, 1}};
    ck_assert_int_eq(atb_shm_ring_write(writer, 1, two, 2), ATBUS_EMSGSIZE);
    ck_assert_int_eq(write1(writer, -1, buf, 1), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_write(writer, 1, NULL, 1), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_write(writer, 1, two, -1), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_write(writer, 5, NULL, 0), ATBUS_OK);
    struct tally t = {0};
    ck_assert_int_eq(atb_shm_ring_read(reader, tally_record, &t, 8), 2);
    ck_assert_int_eq(t.other_types, 2);

    atb_free(buf);
    atb_shm_ring_close(writer);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* ---- claim, commit, abort, full ------------------------------------ */

struct rec_log {
    int32_t types[16];
    size_t lens[16];
    int n;
};

static void
log_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct rec_log *log = arg;
    (void)data;
    if (log->n < 16) {
        log->types[log->n] = type;
        log->lens[log->n] = len;
    }
    log->n++;
}

START_TEST(test_claim_commit_abort)
{
    const char *key = key_make("claim");
    atb_shm_ring *reader = ring_make(key, 4096);
    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);

    void *d1 = NULL;
    void *d2 = NULL;
    ck_assert_int_eq(atb_shm_ring_claim(writer, 1, 10, &d1), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_claim(writer, 2, 20, &d2), ATBUS_OK);
    ck_assert_uint_eq((uintptr_t)d1 % 8, 0);
    ck_assert_ptr_eq((uint8_t *)d2, (uint8_t *)d1 + 24);
    ck_assert_int_eq(write1(writer, 3, "x", 1), ATBUS_OK);

    /* Records behind an open claim wait for it, committed or not. */
    struct rec_log log = {0};
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 16), 0);
    ck_assert_int_eq(atb_shm_ring_wait(reader, 0), ATBUS_ETIMEDOUT);
    memset(d2, 2, 20);
    atb_shm_ring_commit(writer, d2);
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 16), 0);
    /* A claim younger than the stall limit is left alone. */
    ck_assert_int_eq(atb_shm_ring_recover(reader, 5000, 1000), 0);
    ck_assert_int_eq(atb_shm_ring_recover(reader, 5999, 1000), 0);
    memset(d1, 1, 10);
    atb_shm_ring_commit(writer, d1);
    ck_assert_int_eq(atb_shm_ring_wait(reader, 0), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_unblock(reader), 0); /* committed */
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 16), 3);
    ck_assert_int_eq(log.types[0], 1);
    ck_assert_uint_eq(log.lens[0], 10);
    ck_assert_int_eq(log.types[1], 2);
    ck_assert_uint_eq(log.lens[1], 20);
    ck_assert_int_eq(log.types[2], 3);
    ck_assert_uint_eq(log.lens[2], 1);
    ck_assert_int_eq(atb_shm_ring_unblock(reader), 0); /* empty */

    /* An aborted claim is skipped. */
    ck_assert_int_eq(atb_shm_ring_claim(writer, 4, 30, &d1), ATBUS_OK);
    ck_assert_int_eq(write1(writer, 5, "yz", 2), ATBUS_OK);
    atb_shm_ring_abort(writer, d1);
    log.n = 0;
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 16), 1);
    ck_assert_int_eq(log.types[0], 5);

    ck_assert_int_eq(atb_shm_ring_claim(writer, 1, 1, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_claim(writer, -2, 1, &d1), ATBUS_EINVAL);
    ck_assert_int_eq(atb_shm_ring_claim(writer, 1, 513, &d1), ATBUS_EMSGSIZE);

    atb_shm_ring_close(writer);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

START_TEST(test_full_then_read)
{
    const char *key = key_make("full");
    atb_shm_ring *ring = ring_make(key, 4096);
    uint8_t buf[512] = {0};
    /* Eight 512-byte records fill 4 KiB exactly. */
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(write1(ring, 1, buf, 512 - 8), ATBUS_OK);
    }
    void *d;
    ck_assert_int_eq(write1(ring, 1, buf, 0), ATBUS_EWOULDBLOCK);
    ck_assert_int_eq(atb_shm_ring_claim(ring, 1, 0, &d), ATBUS_EWOULDBLOCK);
    struct rec_log log = {0};
    ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 1), 1);
    ck_assert_int_eq(write1(ring, 2, buf, 16), ATBUS_OK);
    ck_assert_int_eq(write1(ring, 2, buf, 512), ATBUS_EWOULDBLOCK);
    ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 100), 8);
    ck_assert_int_eq(log.types[8], 2);
    ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 100), 0);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* ---- many writer processes ------------------------------------------ */

START_TEST(test_four_writer_processes)
{
    const char *key = key_make("mpsc");
    atb_shm_ring *ring = ring_make(key, 256 * 1024);
    struct tally t = {0};
    run_writers(ring, key, 4, 200000, &t);
    ck_assert_uint_eq(t.total, 4 * 200000);
    ck_assert_int_eq(t.other_types, 0);
    ck_assert_int_eq(atb_shm_ring_read(ring, tally_record, &t, 16), 0);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* ---- writers that die inside a claim -------------------------------- */

enum crash_mode {
    CRASH_AFTER_HEADER,  /* claimed, header written, payload half done */
    CRASH_BEFORE_HEADER, /* died right after the tail CAS */
    CRASH_BEFORE_PADDING /* as above, in a claim that wraps */
};

struct crash_args {
    const char *key;
    enum crash_mode mode;
    size_t len;
    size_t pad_index; /* CRASH_BEFORE_PADDING: where the padding lies */
};

#define CRASH_TYPE 99

/* crasher_main claims a record and exits without committing it. The
 * zeroed modes undo the header stores the claim made, leaving exactly
 * what a writer killed between its tail CAS and those stores leaves. */
static int
crasher_main(void *arg)
{
    const struct crash_args *a = arg;
    atb_shm_ring *ring = NULL;
    if (atb_shm_ring_open(&ring, a->key) != ATBUS_OK) {
        return 1;
    }
    void *d;
    if (atb_shm_ring_claim(ring, CRASH_TYPE, a->len, &d) != ATBUS_OK) {
        return 2;
    }
    uint8_t *hdr = (uint8_t *)d - ATB_SHM_RING_RECORD_HEADER;
    switch (a->mode) {
    case CRASH_AFTER_HEADER:
        memset(d, 0xee, a->len / 2);
        break;
    case CRASH_BEFORE_PADDING:
        /* The record landed at index 0 (hdr), after the padding. */
        memset(hdr + a->pad_index, 0, ATB_SHM_RING_RECORD_HEADER);
        memset(hdr, 0, ATB_SHM_RING_RECORD_HEADER);
        break;
    case CRASH_BEFORE_HEADER:
        memset(hdr, 0, ATB_SHM_RING_RECORD_HEADER);
        break;
    }
    _exit(0); /* no close: the process just ends */
}

START_TEST(test_writer_crash_after_claim)
{
    const char *key = key_make("crash");
    atb_shm_ring *ring = ring_make(key, 16 * 1024);
    struct crash_args ca = {key, CRASH_AFTER_HEADER, 100, 0};
    ck_assert_int_eq(reap(spawn(crasher_main, &ca)), 0);

    /* Two live writers, each with more than the ring holds: they block
     * behind the dead claim until the reader recovers. */
    pid_t pids[2];
    struct writer_args args[2];
    spawn_writers(pids, args, key, 2, 3000);
    struct tally t = {0};
    ck_assert_int_eq(atb_shm_ring_read(ring, tally_record, &t, 16), 0);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 1000), ATBUS_ETIMEDOUT);

    /* The recovery policy, driven by a fake clock: the stall must last
     * stall_us from the first call that saw it. */
    ck_assert_int_eq(atb_shm_ring_recover(ring, 1000, 500), 0);
    ck_assert_int_eq(atb_shm_ring_recover(ring, 1499, 500), 0);
    ck_assert_int_eq(atb_shm_ring_recover(ring, 1500, 500), 1);

    finish_writers(ring, &t, pids, 2, 3000);
    ck_assert_int_eq(t.other_types, 0); /* the dead record never shows */
    ck_assert_int_eq(atb_shm_ring_recover(ring, 999999, 0), 0);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* settle reads and unblocks until neither makes progress; returns the
 * number of records unblock turned into padding. */
static int
settle(atb_shm_ring *ring, struct tally *t)
{
    int unblocked = 0;
    for (int guard = 0; guard < 100; guard++) {
        int n = atb_shm_ring_read(ring, tally_record, t, 256);
        ck_assert_int_ge(n, 0);
        if (n > 0) {
            continue;
        }
        int u = atb_shm_ring_unblock(ring);
        ck_assert_int_ge(u, 0);
        if (u == 0) {
            return unblocked;
        }
        unblocked++;
    }
    ck_abort_msg("settle did not settle");
    return -1;
}

/* advance moves the ring's empty head and tail to data index `to` by
 * writing and reading filler records. */
static void
advance(atb_shm_ring *ring, size_t to)
{
    static uint8_t filler[1024];
    struct rec_log log = {0};
    for (size_t at = 0; at < to;) {
        size_t span = to - at < 1024 ? to - at : 1024;
        ck_assert_int_eq(write1(ring, 1, filler, span - 8), ATBUS_OK);
        ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 1), 1);
        at += span;
    }
}

/*
 * crash_scenario: a writer dies between its tail CAS and its header
 * stores, with the claim at index `at` of a 16 KiB ring. Then one writer
 * commits records behind it and exits. Unblock must be refused while
 * nothing follows the gap (pre), and turn the gap into padding once
 * records follow (post); then every record arrives, and writers that
 * wrap the ring many times afterwards find nothing stuck.
 */
static void
crash_scenario(const char *tag, enum crash_mode mode, size_t at, size_t len,
               int pre, int post)
{
    const char *key = key_make(tag);
    const size_t cap = 16 * 1024;
    atb_shm_ring *ring = ring_make(key, cap);
    advance(ring, at);
    struct crash_args ca = {key, mode, len, at};
    ck_assert_int_eq(reap(spawn(crasher_main, &ca)), 0);

    struct tally t = {0};
    ck_assert_int_eq(settle(ring, &t), pre);
    ck_assert_uint_eq(t.total, 0);

    /* The follower finishes before the reader looks: unblocking a gap is
     * only safe when no live writer can still be inside it. */
    struct writer_args wa = {key, 0, 20};
    ck_assert_int_eq(reap(spawn(writer_main, &wa)), 0);
    ck_assert_int_eq(settle(ring, &t), post);
    ck_assert_uint_eq(t.total, 20);
    ck_assert_uint_eq(t.next[0], 20);
    ck_assert_int_eq(t.other_types, 0);
    ck_assert_msg(t.error[0] == '\0', "%s", t.error);

    run_writers(ring, key, 2, 5000, &t);
    ck_assert_int_eq(t.other_types, 0);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}

START_TEST(test_writer_crash_before_header)
{
    /* A gap in the middle of the area, ended by the next record. */
    crash_scenario("gap", CRASH_BEFORE_HEADER, 0, 200, 0, 1);
    /* A gap that ends exactly at the end of the area; the next record
     * starts at index 0. */
    crash_scenario("gapend", CRASH_BEFORE_HEADER, 16 * 1024 - 512, 504, 0, 1);
    /* A wrapping claim that died before writing its padding record: the
     * tail of the area is padded at once, the claim at index 0 once a
     * record follows it. */
    crash_scenario("gapwrap", CRASH_BEFORE_PADDING, 16 * 1024 - 256, 504, 1, 1);
}
END_TEST

/* ---- sizing --------------------------------------------------------- */

START_TEST(test_enospc_at_create)
{
    struct statvfs vfs;
    ck_assert_int_eq(statvfs("/dev/shm", &vfs), 0);
    uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    if (total == 0) {
        return; /* an unlimited tmpfs cannot be overfilled */
    }
    /* Beyond the whole file system, so it fails without first filling
     * /dev/shm (tmpfs refuses such a request up front). */
    size_t cap = ATB_SHM_RING_MIN_CAPACITY;
    while ((uint64_t)cap <= total + ((uint64_t)1 << 30)) {
        cap *= 2;
    }
    if (cap > ATB_SHM_RING_MAX_CAPACITY) {
        return;
    }
    const char *key = key_make("enospc");
    atb_shm_ring *ring = NULL;
    ck_assert_int_eq(atb_shm_ring_create(&ring, key, cap), ATBUS_ENOSPC);
    ck_assert_ptr_null(ring);
    /* Nothing is left behind. */
    ck_assert_int_eq(atb_shm_ring_open(&ring, key), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_ENOTFOUND);
}
END_TEST

/* ---- the reader lock ------------------------------------------------ */

struct holder {
    const char *key;
    int ready; /* write end: a byte once the ring exists */
};

/* holder_main creates a ring and waits to be killed; exit 1 on failure,
 * 3 when nobody killed it. */
static int
holder_main(void *arg)
{
    const struct holder *h = arg;
    atb_shm_ring *ring = NULL;
    if (atb_shm_ring_create(&ring, h->key, 4096) != ATBUS_OK ||
        write(h->ready, "r", 1) != 1) {
        return 1;
    }
    sleep_us((long)DEADLINE_US);
    return 3;
}

static pid_t
spawn_holder(const char *key, int fds[2])
{
    ck_assert_int_eq(pipe(fds), 0);
    struct holder h = {key, fds[1]};
    pid_t pid = spawn(holder_main, &h);
    char b;
    ck_assert_int_eq(read(fds[0], &b, 1), 1);
    return pid;
}

START_TEST(test_reader_lock_liveness_and_reclaim)
{
    /* In one process: a writer handle on one's own ring sees the reader
     * alive; a reclaim leaves a live ring alone. */
    const char *key = key_make("lock");
    atb_shm_ring *reader = ring_make(key, 4096);
    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_reader_alive(reader), 1);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 1);
    ck_assert_int_eq(atb_shm_ring_reclaim(key), ATBUS_EEXIST);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 1);
    /* A closed reader is not alive, and its name can be reclaimed. */
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 0);
    ck_assert_int_eq(atb_shm_ring_reclaim(key), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_reclaim(key), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_shm_ring_reclaim("a/b"), ATBUS_EINVAL);
    atb_shm_ring_close(writer);

    /* Across processes: alive while the creator lives, dead once it is
     * killed (it never closed), then reclaimed and created anew. */
    key = key_make("lockproc");
    int fds[2];
    pid_t pid = spawn_holder(key, fds);
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 1);
    atb_shm_ring *dup = NULL;
    ck_assert_int_eq(atb_shm_ring_create(&dup, key, 4096), ATBUS_EEXIST);
    ck_assert_int_eq(atb_shm_ring_reclaim(key), ATBUS_EEXIST);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 0);
    ck_assert_int_eq(atb_shm_ring_reclaim(key), ATBUS_OK);
    reader = ring_make(key, 4096);
    /* The old writer still maps the dead ring, not the new one. */
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 0);
    atb_shm_ring_close(writer);
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_reader_alive(writer), 1);
    atb_shm_ring_close(writer);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_sweep_takes_only_dead_rings)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "test-%ld-sweep-", runner_pid);
    const char *dead1 = key_make("sweep-dead1");
    const char *dead2 = key_make("sweep-dead2");
    const char *live = key_make("sweep-live");
    const char *other = key_make("swept-not");
    int fds[2][2];
    pid_t p1 = spawn_holder(dead1, fds[0]);
    pid_t p2 = spawn_holder(dead2, fds[1]);
    atb_shm_ring *mine = ring_make(live, 4096);
    atb_shm_ring *closed = ring_make(other, 4096);
    atb_shm_ring_close(closed); /* dead, but another prefix */
    ck_assert_int_eq(atb_shm_ring_sweep(prefix), 0);
    kill(p1, SIGKILL);
    kill(p2, SIGKILL);
    ck_assert_int_eq(reap(p1), 128 + SIGKILL);
    ck_assert_int_eq(reap(p2), 128 + SIGKILL);
    ck_assert_int_eq(atb_shm_ring_sweep(prefix), 2);
    atb_shm_ring *w = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&w, dead1), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_shm_ring_open(&w, live), ATBUS_OK);
    atb_shm_ring_close(w);
    ck_assert_int_eq(atb_shm_ring_open(&w, other), ATBUS_ECLOSED);
    atb_shm_ring_close(mine);
    ck_assert_int_eq(atb_shm_ring_unlink(live), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_unlink(other), ATBUS_OK);
    for (int i = 0; i < 2; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
}
END_TEST

/* ---- free space and positions ---------------------------------------- */

START_TEST(test_writable_and_positions)
{
    const char *key = key_make("writable");
    atb_shm_ring *reader = ring_make(key, 4096);
    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    const size_t max = atb_shm_ring_max_length(writer);
    ck_assert_int_eq(atb_shm_ring_writable(writer, max + 1), ATBUS_EMSGSIZE);
    ck_assert_uint_eq(atb_shm_ring_head(writer), 0);
    ck_assert_uint_eq(atb_shm_ring_tail(writer), 0);
    uint8_t buf[512] = {0};
    /* writable agrees with write as the ring fills, record by record. */
    uint64_t written = 0;
    for (;;) {
        int fits = atb_shm_ring_writable(writer, 100);
        ck_assert(fits == 0 || fits == 1);
        int rc = write1(writer, 1, buf, 100);
        ck_assert_int_eq(rc, fits ? ATBUS_OK : ATBUS_EWOULDBLOCK);
        if (!fits) {
            break;
        }
        written++;
    }
    ck_assert_uint_eq(atb_shm_ring_tail(reader), written * 112);
    /* The rest takes empty records, 8 bytes each. */
    uint64_t empty = 0;
    while (atb_shm_ring_writable(writer, 0) == 1) {
        ck_assert_int_eq(write1(writer, 1, buf, 0), ATBUS_OK);
        empty++;
    }
    ck_assert_uint_eq(written * 112 + empty * 8, 4096);
    ck_assert_int_eq(write1(writer, 1, buf, 0), ATBUS_EWOULDBLOCK);
    struct rec_log log = {0};
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 1000),
                     (int)(written + empty));
    ck_assert_uint_eq(atb_shm_ring_head(writer), atb_shm_ring_tail(writer));
    /* A record that does not fit before the end of the area also needs
     * the rest of it as padding: writable counts that, as the claim does.
     * Head at index 496, tail at 4032: 560 bytes free, 64 of them before
     * the end. */
    ck_assert_int_eq(write1(writer, 1, buf, 488), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_read(reader, log_record, &log, 1), 1);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(write1(writer, 1, buf, 512), ATBUS_OK);
    }
    ck_assert_int_eq(write1(writer, 1, buf, 408), ATBUS_OK);
    ck_assert_uint_eq(atb_shm_ring_tail(writer) - atb_shm_ring_head(writer),
                      4096 - 560);
    ck_assert_uint_eq(max, 512);
    ck_assert_int_eq(atb_shm_ring_writable(writer, 512), 0); /* 64 + 520 */
    ck_assert_int_eq(write1(writer, 1, buf, 512), ATBUS_EWOULDBLOCK);
    ck_assert_int_eq(atb_shm_ring_writable(writer, 48), 1); /* before end */
    ck_assert_int_eq(write1(writer, 1, buf, 48), ATBUS_OK);
    atb_shm_ring_close(reader);
    ck_assert_int_eq(atb_shm_ring_writable(writer, 1), ATBUS_ECLOSED);
    atb_shm_ring_close(writer);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* ---- sleep and wake-up ---------------------------------------------- */

START_TEST(test_wait_times_out)
{
    const char *key = key_make("timeout");
    atb_shm_ring *ring = ring_make(key, 4096);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 0), ATBUS_ETIMEDOUT);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 20000), ATBUS_ETIMEDOUT);
    ck_assert_int_eq(atb_shm_ring_reader_waiting(ring), 0);

    ck_assert_int_eq(write1(ring, 1, "a", 1), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_wait(ring, -1), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 0), ATBUS_OK);
    struct rec_log log = {0};
    ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 4), 1);

    /* An uncommitted record at the head is not "ready". */
    void *d;
    ck_assert_int_eq(atb_shm_ring_claim(ring, 1, 8, &d), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 1000), ATBUS_ETIMEDOUT);
    atb_shm_ring_commit(ring, d);
    ck_assert_int_eq(atb_shm_ring_wait(ring, 0), ATBUS_OK);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* waker_write waits until the reader has announced its sleep, then
 * commits one record. Returns 0, or 3 on the deadline, 2 if the write
 * fails. */
static int
waker_write(atb_shm_ring *ring)
{
    uint64_t deadline = now_us() + DEADLINE_US;
    while (!atb_shm_ring_reader_waiting(ring)) {
        if (now_us() > deadline) {
            return 3;
        }
        sleep_us(500);
    }
    sleep_us(2000); /* let it reach the futex, though either way is fine */
    return write1(ring, 77, "wake", 4) == ATBUS_OK ? 0 : 2;
}

static int
waker_process(void *arg)
{
    atb_shm_ring *ring = NULL;
    if (atb_shm_ring_open(&ring, arg) != ATBUS_OK) {
        return 1;
    }
    int rc = waker_write(ring);
    atb_shm_ring_close(ring);
    return rc;
}

static void *
waker_thread(void *arg)
{
    return (void *)(intptr_t)waker_write(arg);
}

static void
expect_wake(atb_shm_ring *ring)
{
    /* The timeout only bounds a broken wake-up: a reader that slept
     * through the commit still finds the record when it times out, so
     * check that the timeout did not end the wait. */
    uint64_t start = now_us();
    ck_assert_int_eq(atb_shm_ring_wait(ring, (int64_t)DEADLINE_US), ATBUS_OK);
    ck_assert_msg(now_us() - start < DEADLINE_US,
                  "the reader slept until its timeout: wake-up lost");
    struct rec_log log = {0};
    ck_assert_int_eq(atb_shm_ring_read(ring, log_record, &log, 4), 1);
    ck_assert_int_eq(log.types[0], 77);
}

START_TEST(test_wait_woken_by_thread)
{
    const char *key = key_make("wakethr");
    atb_shm_ring *ring = ring_make(key, 4096);
    atb_shm_ring *writer = NULL;
    ck_assert_int_eq(atb_shm_ring_open(&writer, key), ATBUS_OK);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, waker_thread, writer), 0);
    expect_wake(ring);
    void *res;
    ck_assert_int_eq(pthread_join(th, &res), 0);
    ck_assert_int_eq((int)(intptr_t)res, 0);
    atb_shm_ring_close(writer);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

START_TEST(test_wait_woken_by_process)
{
    const char *key = key_make("wakeproc");
    atb_shm_ring *ring = ring_make(key, 4096);
    pid_t pid = spawn(waker_process, (void *)(uintptr_t)key);
    expect_wake(ring);
    ck_assert_int_eq(reap(pid), 0);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

/* Ping-pong between two processes, each sleeping in wait for the other:
 * every round gives a commit the chance to race the reader's way into
 * the futex, the window a lost wake-up would fall into. */
#define PING_ROUNDS 20000

struct u64_box {
    uint64_t value;
    int n;
};

static void
u64_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct u64_box *b = arg;
    (void)type;
    if (len == sizeof(b->value)) {
        memcpy(&b->value, data, sizeof(b->value));
    }
    b->n++;
}

/* pingpong_recv waits for the value `expect` on `in`, returning 0, or an
 * exit code: 3 wait failed, 4 wrong record. */
static int
pingpong_recv(atb_shm_ring *in, uint64_t expect)
{
    struct u64_box b = {0};
    if (atb_shm_ring_wait(in, WAKE_TIMEOUT_US) != ATBUS_OK) {
        return 3;
    }
    if (atb_shm_ring_read(in, u64_record, &b, 4) != 1 || b.value != expect) {
        return 4;
    }
    return 0;
}

struct pingpong {
    atb_shm_ring *ping; /* the child reads it, the parent writes */
    atb_shm_ring *pong; /* the parent reads it, the child writes */
};

static int
ponger_main(void *arg)
{
    const struct pingpong *pp = arg;
    for (uint64_t i = 0; i < PING_ROUNDS; i++) {
        int rc = pingpong_recv(pp->ping, i);
        if (rc != 0) {
            return rc;
        }
        if (write1(pp->pong, 1, &i, sizeof(i)) != ATBUS_OK) {
            return 2;
        }
    }
    return 0; /* no close: the parent still owns both rings */
}

START_TEST(test_wait_ping_pong)
{
    const char *ping_key = key_make("ping");
    const char *pong_key = key_make("pong");
    /* Both rings are made here; the child inherits the mappings and acts
     * as the reader of ping, this process as the reader of pong. */
    struct pingpong pp = {ring_make(ping_key, 4096), ring_make(pong_key, 4096)};
    pid_t pid = spawn(ponger_main, &pp);
    int rc = 0;
    uint64_t i;
    for (i = 0; i < PING_ROUNDS && rc == 0; i++) {
        ck_assert_int_eq(write1(pp.ping, 1, &i, sizeof(i)), ATBUS_OK);
        rc = pingpong_recv(pp.pong, i);
    }
    if (rc != 0) {
        kill(pid, SIGKILL);
    }
    int status = reap(pid);
    ck_assert_msg(rc == 0, "round %llu: %s", (unsigned long long)i - 1,
                  rc == 3 ? "wait timed out (wake-up lost)" : "bad record");
    ck_assert_int_eq(status, 0);
    atb_shm_ring_close(pp.ping);
    atb_shm_ring_close(pp.pong);
    ck_assert_int_eq(atb_shm_ring_unlink(ping_key), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_unlink(pong_key), ATBUS_OK);
}
END_TEST

static void *
waiter_thread(void *arg)
{
    return (void *)(intptr_t)atb_shm_ring_wait(arg, (int64_t)DEADLINE_US);
}

START_TEST(test_wait_interrupted)
{
    const char *key = key_make("interrupt");
    atb_shm_ring *ring = ring_make(key, 4096);
    pthread_t th;
    uint64_t start = now_us();
    ck_assert_int_eq(pthread_create(&th, NULL, waiter_thread, ring), 0);
    /* Interrupt before, during or after its way into the futex: it ends
     * the wait in every case. */
    while (!atb_shm_ring_reader_waiting(ring) && now_us() - start < 2000) {
        sched_yield();
    }
    atb_shm_ring_interrupt(ring);
    void *res;
    ck_assert_int_eq(pthread_join(th, &res), 0);
    ck_assert_int_eq((int)(intptr_t)res, ATBUS_ECLOSED);
    ck_assert_msg(now_us() - start < DEADLINE_US, "the interrupt was lost");
    /* Sticky: later waits return at once, records or not. */
    ck_assert_int_eq(atb_shm_ring_wait(ring, -1), ATBUS_ECLOSED);
    ck_assert_int_eq(write1(ring, 1, "x", 1), ATBUS_OK);
    ck_assert_int_eq(atb_shm_ring_wait(ring, -1), ATBUS_ECLOSED);
    atb_shm_ring_close(ring);
    ck_assert_int_eq(atb_shm_ring_unlink(key), ATBUS_OK);
}
END_TEST

static Suite *
shm_ring_suite(void)
{
    Suite *s = suite_create("shm_ring");
    TCase *tc = atb_test_case("shm_ring", 60);
    tcase_add_test(tc, test_create_open_close_unlink);
    tcase_add_test(tc, test_bad_keys_and_capacities);
    tcase_add_test(tc, test_open_refuses_foreign_objects);
    tcase_add_test(tc, test_single_writer_wraps);
    tcase_add_test(tc, test_claim_commit_abort);
    tcase_add_test(tc, test_full_then_read);
    tcase_add_test(tc, test_four_writer_processes);
    tcase_add_test(tc, test_writer_crash_after_claim);
    tcase_add_test(tc, test_writer_crash_before_header);
    tcase_add_test(tc, test_enospc_at_create);
    tcase_add_test(tc, test_reader_lock_liveness_and_reclaim);
    tcase_add_test(tc, test_sweep_takes_only_dead_rings);
    tcase_add_test(tc, test_writable_and_positions);
    tcase_add_test(tc, test_wait_times_out);
    tcase_add_test(tc, test_wait_woken_by_thread);
    tcase_add_test(tc, test_wait_woken_by_process);
    tcase_add_test(tc, test_wait_ping_pong);
    tcase_add_test(tc, test_wait_interrupted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    runner_pid = (long)getpid();
    int status = atb_test_run(shm_ring_suite());
    keys_cleanup();
    return status;
}
