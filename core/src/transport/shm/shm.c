/*
 * shm:// — connections between processes of one host over shared-memory
 * rings (shm_ring.h): one ring per reader, so N nodes need N rings, not
 * N².
 *
 * A listener `shm://key` reads the ring "key". A dialing loop reads one
 * inbox ring, shared by every shm connection dialed from that loop. Each
 * reader numbers the connections whose records arrive in its ring; a
 * record's type is that number (0 is a control record: connect, accept,
 * close), so a peer writes to a connection by writing a record of the
 * type the reader gave it. A data record is exactly one frame, checked
 * like any frame from the network.
 *
 * A futex cannot be watched by epoll, so each reader ring has a thread
 * that sleeps in atb_shm_ring_wait and then wakes the loop; the loop
 * reads, and hands the ring back only once it is drained. Crashes are
 * noticed through the reader lock of the peer's ring (a dead process
 * holds no lock) and the ring's stall recovery. docs/internals/shm.md
 * describes the protocol.
 */
#define _GNU_SOURCE
#include <atbus/error.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "transport/shm/shm.h"
#include "transport/shm/shm_ring.h"
#include "transport/transport.h"

extern const atb_transport atb_transport_shm;

/* How often a reader checks that its peers are alive, retries close
 * records that did not fit, and (on the waiter thread) how long a wait
 * lasts before it checks for a stalled writer. */
#define SHM_CHECK_US ((uint64_t)100 * 1000)
/* Retry interval of a refused sender: nothing tells it that the reader
 * made room, so it looks, often at first, then less often. */
#define SHM_RETRY_MIN_US ((uint64_t)100)
#define SHM_RETRY_MAX_US ((uint64_t)5 * 1000)
/* Records per atb_shm_ring_read; the byte budget decides when to yield. */
#define SHM_READ_BATCH 64
#define SHM_DEFAULT_RING_SIZE ((size_t)16 * 1024 * 1024)
/* Attempts at a free name before giving up (races with other processes
 * that create or reclaim the same name). */
#define SHM_NAME_ATTEMPTS 8
#define SHM_INBOX_PREFIX "in-"

/* ---- control records ------------------------------------------------ */

#define SHM_CTL_TYPE 0
#define SHM_CTL_VERSION 1u

enum shm_op {
    SHM_OP_CONNECT = 1, /* dialer -> listener: key is the dialer's inbox */
    SHM_OP_ACCEPT,      /* listener -> dialer */
    SHM_OP_CLOSE,       /* either way */
};

/*
 * The payload of every control record. It comes from another process, so
 * the reader accepts it only if every field is exactly as the op requires
 * (shm_ctl_parse). Host byte order: both ends share the machine.
 */
struct shm_ctl {
    uint32_t version; /* SHM_CTL_VERSION */
    uint32_t op;      /* enum shm_op */
    int64_t pid;      /* the sender, for diagnostics */
    /* The sender's id for this connection: the record type the receiver
     * writes back with. */
    int32_t reply_id;
    /* The receiver's id for this connection. 0 in CONNECT, and in a CLOSE
     * from a dialer that has no answer yet: then key and reply_id name
     * the connection. */
    int32_t ref_id;
    /* The sender's own ring (CONNECT; CLOSE with ref_id 0), NUL padded. */
    char key[ATB_SHM_RING_KEY_MAX + 4];
};
_Static_assert(sizeof(struct shm_ctl) == 128, "control record layout");

/* ---- objects -------------------------------------------------------- */

struct shm_conn;
struct shm_listener;

/* A close record that did not fit into a full peer ring; retried by the
 * reader's check timer while the peer lives. */
struct shm_linger {
    struct shm_linger *next;
    atb_shm_ring *out;
    struct shm_ctl ctl;
};

/*
 * A ring this process reads: a listener's ring or a loop's inbox. Lives
 * on its loop's thread, except the hand-over fields under `lock`.
 */
struct shm_reader {
    atb_loop *loop;
    atb_shm_ring *ring; /* NULL after a listener failed to replace it */
    char key[ATB_SHM_RING_KEY_MAX + 1];
    struct shm_listener *listener; /* NULL for an inbox */
    size_t capacity;
    size_t read_budget;
    size_t batch_bytes;

    /* Connections whose records arrive here, by id (chained hash). */
    struct shm_conn **table;
    size_t table_size; /* power of two; 0 until the first insert */
    size_t count;
    int32_t next_id;
    /* Records dropped: unknown or closed ids, malformed control records,
     * connects that could not be answered (atb_shm_listener_dropped,
     * atb_shm_inbox_dropped). */
    uint64_t dropped;
    struct shm_linger *lingers;

    /* The waiter thread. loop_owns says who may make reader calls on the
     * ring: the waiter (0) or the loop (1). */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int loop_owns;
    int stop;
    int running;
    atb_async async;
    atb_deferred drain;
    atb_timer check;
    int in_drain; /* inside atb_shm_ring_read: the ring stays mapped */
    int doomed;   /* freed while in_drain: the drain frees it */

    /* Inboxes only: the process-wide registry, by loop. */
    int refs;
    pid_t owner; /* a forked child must not use its parent's inboxes */
    int registered;
    struct shm_reader *next;
};

struct shm_listener {
    atb_listener base;
    struct shm_reader reader;
};

struct shm_conn {
    atb_conn base;
    atb_transport_config cfg;
    struct shm_reader *reader; /* in its table; NULL once out of it */
    struct shm_reader *inbox;  /* dialed: referenced until freed */
    struct shm_conn *hnext;
    atb_shm_ring *out; /* the peer's ring, as a writer */
    char peer_key[ATB_SHM_RING_KEY_MAX + 1];
    int32_t id;      /* ours: the type of records addressed to us */
    int32_t peer_id; /* the peer's: the type we write with; 0 until known */
    int64_t peer_pid;
    int pending_ctl; /* CONNECT or ACCEPT that did not fit yet */
    int peer_closed; /* the peer said CLOSE: no need to tell it */
    int want_writable;
    size_t blocked_len;
    uint64_t retry_us;
    atb_timer retry;
    /* The peer's reader is gone: the connection ends once the head of our
     * ring passes dead_mark, so its last records are still delivered. */
    int peer_dead;
    uint64_t dead_mark;
    int dial_error;
    atb_deferred kick;
};

static pthread_mutex_t shm_inbox_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shm_reader *shm_inboxes;
static atomic_uint shm_inbox_seq;

static void reader_drain(atb_deferred *d, void *arg);
static void shm_conn_retry(atb_timer *t, void *arg);

static size_t
shm_ring_size(const atb_transport_config *cfg)
{
    size_t want =
        cfg->shm_ring_size != 0 ? cfg->shm_ring_size : SHM_DEFAULT_RING_SIZE;
    size_t cap = ATB_SHM_RING_MIN_CAPACITY;
    while (cap < want && cap < ATB_SHM_RING_MAX_CAPACITY) {
        cap *= 2;
    }
    return cap;
}

/* shm_ring_take creates the ring `key` as its reader, first removing a
 * ring of the same name whose reader is gone. Returns ATBUS_OK,
 * ATBUS_EADDRINUSE (a live reader has it) or an error of create. */
static int
shm_ring_take(const char *key, size_t capacity, atb_shm_ring **out)
{
    for (int i = 0; i < SHM_NAME_ATTEMPTS; i++) {
        int rc = atb_shm_ring_create(out, key, capacity);
        if (rc != ATBUS_EEXIST) {
            return rc;
        }
        rc = atb_shm_ring_reclaim(key);
        if (rc == ATBUS_EEXIST) {
            return ATBUS_EADDRINUSE;
        }
        if (rc != ATBUS_OK && rc != ATBUS_ENOTFOUND) {
            return rc;
        }
    }
    return ATBUS_EADDRINUSE;
}

/* ---- control records ------------------------------------------------ */

/* shm_ctl_parse copies and checks a control record. Returns 1 if valid. */
static int
shm_ctl_parse(const void *data, size_t len, struct shm_ctl *ctl)
{
    if (len != sizeof(*ctl)) {
        return 0;
    }
    memcpy(ctl, data, sizeof(*ctl));
    if (ctl->version != SHM_CTL_VERSION || ctl->pid <= 0 ||
        ctl->reply_id <= 0 || ctl->ref_id < 0) {
        return 0;
    }
    size_t klen = strnlen(ctl->key, sizeof(ctl->key));
    if (klen > ATB_SHM_RING_KEY_MAX) {
        return 0;
    }
    for (size_t i = klen; i < sizeof(ctl->key); i++) {
        if (ctl->key[i] != '\0') {
            return 0;
        }
    }
    switch (ctl->op) {
    case SHM_OP_CONNECT:
        return ctl->ref_id == 0 && klen > 0;
    case SHM_OP_ACCEPT:
        return ctl->ref_id > 0 && klen == 0;
    case SHM_OP_CLOSE:
        return ctl->ref_id > 0 ? klen == 0 : klen > 0;
    default:
        return 0;
    }
}

/* shm_ctl_make fills a control record from c's point of view. */
static void
shm_ctl_make(const struct shm_conn *c, uint32_t op, struct shm_ctl *ctl)
{
    memset(ctl, 0, sizeof(*ctl));
    ctl->version = SHM_CTL_VERSION;
    ctl->op = op;
    ctl->pid = (int64_t)getpid();
    ctl->reply_id = c->id;
    ctl->ref_id = op == SHM_OP_CONNECT ? 0 : c->peer_id;
    if (ctl->ref_id == 0) {
        /* CONNECT, or CLOSE before the accept: the listener knows this
         * connection by our inbox and our id. */
        size_t n = strlen(c->inbox->key);
        memcpy(ctl->key, c->inbox->key, n);
    }
}

static int
shm_ctl_write(atb_shm_ring *out, const struct shm_ctl *ctl)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)ctl,
                        .iov_len = sizeof(*ctl)};
    return atb_shm_ring_write(out, SHM_CTL_TYPE, &iov, 1);
}

/* ---- the id table --------------------------------------------------- */

static struct shm_conn *
reader_find(const struct shm_reader *r, int32_t id)
{
    if (r->table_size == 0) {
        return NULL;
    }
    struct shm_conn *c = r->table[(size_t)id & (r->table_size - 1)];
    while (c != NULL && c->id != id) {
        c = c->hnext;
    }
    return c;
}

static int
reader_grow(struct shm_reader *r)
{
    size_t size = r->table_size == 0 ? 16 : r->table_size * 2;
    struct shm_conn **t = atb_calloc(size, sizeof(*t));
    if (t == NULL) {
        return ATBUS_ENOMEM;
    }
    for (size_t i = 0; i < r->table_size; i++) {
        struct shm_conn *c = r->table[i];
        while (c != NULL) {
            struct shm_conn *next = c->hnext;
            size_t b = (size_t)c->id & (size - 1);
            c->hnext = t[b];
            t[b] = c;
            c = next;
        }
    }
    atb_free(r->table);
    r->table = t;
    r->table_size = size;
    return ATBUS_OK;
}

/* reader_insert gives c the next free id of r. */
static int
reader_insert(struct shm_reader *r, struct shm_conn *c)
{
    if (r->count >= r->table_size && reader_grow(r) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    /* Ids only grow (wrapping after 2^31): a record a peer wrote to a
     * connection that has since ended is dropped, not delivered to a new
     * connection that happened to get the same id. */
    int32_t id;
    do {
        id = r->next_id;
        r->next_id = id == INT32_MAX ? 1 : id + 1;
    } while (reader_find(r, id) != NULL);
    c->id = id;
    size_t b = (size_t)id & (r->table_size - 1);
    c->hnext = r->table[b];
    r->table[b] = c;
    r->count++;
    c->reader = r;
    return ATBUS_OK;
}

static void
reader_remove(struct shm_reader *r, struct shm_conn *c)
{
    struct shm_conn **pp = &r->table[(size_t)c->id & (r->table_size - 1)];
    while (*pp != NULL && *pp != c) {
        pp = &(*pp)->hnext;
    }
    if (*pp == c) {
        *pp = c->hnext;
        r->count--;
    }
    c->hnext = NULL;
    c->reader = NULL;
}

/* reader_pop removes and returns any connection of r, or NULL. */
static struct shm_conn *
reader_pop(struct shm_reader *r)
{
    for (size_t i = 0; i < r->table_size && r->count > 0; i++) {
        if (r->table[i] != NULL) {
            struct shm_conn *c = r->table[i];
            reader_remove(r, c);
            return c;
        }
    }
    return NULL;
}

/* ---- connections ---------------------------------------------------- */

static struct shm_conn *
shm_conn_new(atb_loop *loop, const atb_url *peer,
             const atb_transport_config *cfg)
{
    struct shm_conn *c = atb_calloc(1, sizeof(*c));
    if (c != NULL) {
        atb_conn_init_common(&c->base, &atb_transport_shm, loop, peer);
        c->cfg = *cfg;
        atb_timer_init(&c->retry, shm_conn_retry, c);
    }
    return c;
}

/* shm_conn_retry_arm schedules the next retry, backing off. */
static int
shm_conn_retry_arm(struct shm_conn *c, int first)
{
    if (first || c->retry_us == 0) {
        c->retry_us = SHM_RETRY_MIN_US;
    } else if (c->retry_us < SHM_RETRY_MAX_US) {
        c->retry_us *= 2;
        if (c->retry_us > SHM_RETRY_MAX_US) {
            c->retry_us = SHM_RETRY_MAX_US;
        }
    }
    return atb_timer_start(c->base.loop, &c->retry, c->retry_us, 0);
}

/* shm_conn_ended picks the reason for a peer that went away: a dial that
 * never got its answer was refused, an open connection was reset. */
static int
shm_conn_ended(const struct shm_conn *c)
{
    return c->base.state == ATB_CONN_CONNECTING ? ATBUS_ECONNREFUSED
                                                : ATBUS_ECONNRESET;
}

/* shm_conn_flush_ctl writes the CONNECT or ACCEPT that did not fit. */
static int
shm_conn_flush_ctl(struct shm_conn *c)
{
    struct shm_ctl ctl;
    shm_ctl_make(c, (uint32_t)c->pending_ctl, &ctl);
    int rc = shm_ctl_write(c->out, &ctl);
    if (rc == ATBUS_OK) {
        c->pending_ctl = 0;
    }
    return rc;
}

static void
shm_conn_retry(atb_timer *t, void *arg)
{
    (void)t;
    struct shm_conn *c = arg;
    if (c->base.state != ATB_CONN_CONNECTING &&
        c->base.state != ATB_CONN_OPEN) {
        return;
    }
    int rc = ATBUS_OK;
    if (c->pending_ctl != 0) {
        rc = shm_conn_flush_ctl(c);
    }
    if (rc == ATBUS_OK && c->want_writable) {
        /* The refused frame would fit now. */
        rc = atb_shm_ring_writable(c->out, c->blocked_len);
        rc = rc == 1 ? ATBUS_OK : rc == 0 ? ATBUS_EWOULDBLOCK : rc;
    }
    if (rc == ATBUS_EWOULDBLOCK) {
        if (shm_conn_retry_arm(c, 0) != ATBUS_OK) {
            atb_conn_fail(&c->base, ATBUS_ENOMEM);
        }
        return;
    }
    if (rc != ATBUS_OK) {
        atb_conn_fail(&c->base, rc == ATBUS_ECLOSED ? shm_conn_ended(c) : rc);
        return;
    }
    if (c->want_writable) {
        c->want_writable = 0;
        if (c->base.cbs.on_writable != NULL) {
            c->base.cbs.on_writable(&c->base, c->base.arg);
        }
    }
}

/* shm_conn_blocked records a refused send; on_writable follows. */
static int
shm_conn_blocked(struct shm_conn *c, size_t len)
{
    c->want_writable = 1;
    c->blocked_len = len;
    c->base.stats.sends_would_block++;
    if (!atb_timer_active(&c->retry) && shm_conn_retry_arm(c, 1) != ATBUS_OK) {
        /* No timer, no on_writable: refuse for good instead. */
        c->want_writable = 0;
        return ATBUS_ENOMEM;
    }
    return ATBUS_EWOULDBLOCK;
}

static int
shm_send(atb_conn *conn, const struct iovec *iov, int iovcnt)
{
    struct shm_conn *c = (struct shm_conn *)conn;
    size_t total;
    int rc = atb_transport_check_frame(iov, iovcnt, c->cfg.max_frame_message,
                                       &total);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (total > atb_shm_ring_max_length(c->out)) {
        return ATBUS_EMSGSIZE;
    }
    if (c->pending_ctl != 0) {
        /* Our ACCEPT must reach the dialer before any frame. */
        rc = shm_conn_flush_ctl(c);
        if (rc == ATBUS_EWOULDBLOCK) {
            return shm_conn_blocked(c, total);
        }
    }
    if (rc == ATBUS_OK) {
        rc = atb_shm_ring_write(c->out, c->peer_id, iov, iovcnt);
    }
    switch (rc) {
    case ATBUS_OK:
        conn->stats.frames_out++;
        conn->stats.bytes_out += total;
        conn->stats.syscalls_out++;
        return ATBUS_OK;
    case ATBUS_EWOULDBLOCK:
        return shm_conn_blocked(c, total);
    case ATBUS_ECLOSED:
        /* The peer's reader closed its ring. What it wrote to us before
         * (often a close message saying why) may still wait in our ring:
         * end the connection once the head passes it, as for a peer
         * found dead (reader_check), not now, which would drop it. */
        if (c->reader != NULL && c->reader->ring != NULL) {
            if (!c->peer_dead) {
                c->peer_dead = 1;
                c->dead_mark = atb_shm_ring_tail(c->reader->ring);
            }
        } else {
            atb_conn_fail(conn, ATBUS_ECONNRESET);
        }
        return ATBUS_ECLOSED;
    default:
        return rc;
    }
}

/* shm_conn_say_close tells the peer, best effort; a close record that
 * does not fit waits on the reader's linger list. Takes c->out. */
static void
shm_conn_say_close(struct shm_conn *c)
{
    atb_shm_ring *out = c->out;
    c->out = NULL;
    if (out == NULL) {
        return;
    }
    /* Nothing to say when the peer closed first, or when our CONNECT
     * never went out. */
    if (c->peer_closed || c->pending_ctl == SHM_OP_CONNECT) {
        atb_shm_ring_close(out);
        return;
    }
    struct shm_ctl ctl;
    shm_ctl_make(c, SHM_OP_CLOSE, &ctl);
    if (shm_ctl_write(out, &ctl) == ATBUS_EWOULDBLOCK && c->reader != NULL) {
        struct shm_linger *lg = atb_malloc(sizeof(*lg));
        if (lg != NULL) {
            lg->out = out;
            lg->ctl = ctl;
            lg->next = c->reader->lingers;
            c->reader->lingers = lg;
            return;
        }
    }
    atb_shm_ring_close(out);
}

static void
shm_shutdown(atb_conn *conn)
{
    struct shm_conn *c = (struct shm_conn *)conn;
    atb_loop_cancel(conn->loop, &c->kick);
    atb_timer_stop(&c->retry);
    c->want_writable = 0;
    shm_conn_say_close(c);
    if (c->reader != NULL) {
        reader_remove(c->reader, c);
    }
}

static void inbox_unref(struct shm_reader *r);

static void
shm_conn_free(atb_conn *conn)
{
    struct shm_conn *c = (struct shm_conn *)conn;
    atb_loop_cancel(conn->loop, &c->kick);
    atb_timer_stop(&c->retry);
    if (c->reader != NULL) {
        reader_remove(c->reader, c);
    }
    atb_shm_ring_close(c->out);
    if (c->inbox != NULL) {
        inbox_unref(c->inbox);
    }
    atb_free(c);
}

/* ---- reading -------------------------------------------------------- */

static void
listener_accept(struct shm_listener *l, const struct shm_ctl *ctl)
{
    struct shm_reader *r = &l->reader;
    atb_shm_ring *out = NULL;
    if (atb_shm_ring_open(&out, ctl->key) != ATBUS_OK) {
        r->dropped++; /* no inbox to answer to */
        return;
    }
    struct shm_conn *c = shm_conn_new(r->loop, NULL, &l->base.cfg);
    if (c == NULL || reader_insert(r, c) != ATBUS_OK) {
        /* The dialer hears nothing and stays connecting until it gives
         * up; the owner learns that accepting failed. */
        atb_free(c);
        atb_shm_ring_close(out);
        r->dropped++;
        if (l->base.cbs.on_error != NULL) {
            l->base.cbs.on_error(&l->base, ATBUS_ENOMEM, l->base.arg);
        }
        return;
    }
    c->out = out;
    c->peer_id = ctl->reply_id;
    c->peer_pid = ctl->pid;
    memcpy(c->peer_key, ctl->key, sizeof(c->peer_key) - 1);
    struct shm_ctl accept;
    shm_ctl_make(c, SHM_OP_ACCEPT, &accept);
    int rc = shm_ctl_write(out, &accept);
    if (rc == ATBUS_EWOULDBLOCK) {
        c->pending_ctl = SHM_OP_ACCEPT;
        rc = shm_conn_retry_arm(c, 1);
    }
    if (rc != ATBUS_OK) {
        /* The dialer's inbox is closed (it gave up), or no timer. */
        reader_remove(r, c);
        atb_shm_ring_close(out);
        atb_free(c);
        r->dropped++;
        return;
    }
    c->base.state = ATB_CONN_OPEN;
    l->base.cbs.on_accept(&l->base, &c->base, l->base.arg);
}

/* reader_find_dialer finds the connection a dialer names by its inbox and
 * its id, for a CLOSE sent before our ACCEPT reached it. Rare: a scan. */
static struct shm_conn *
reader_find_dialer(const struct shm_reader *r, const struct shm_ctl *ctl)
{
    for (size_t i = 0; i < r->table_size; i++) {
        for (struct shm_conn *c = r->table[i]; c != NULL; c = c->hnext) {
            if (c->peer_id == ctl->reply_id &&
                strcmp(c->peer_key, ctl->key) == 0) {
                return c;
            }
        }
    }
    return NULL;
}

static void
reader_control(struct shm_reader *r, const void *data, size_t len)
{
    struct shm_ctl ctl;
    if (!shm_ctl_parse(data, len, &ctl)) {
        r->dropped++;
        return;
    }
    struct shm_conn *c = NULL;
    switch (ctl.op) {
    case SHM_OP_CONNECT:
        if (r->listener == NULL) {
            break;
        }
        listener_accept(r->listener, &ctl);
        return;
    case SHM_OP_ACCEPT:
        c = r->listener == NULL ? reader_find(r, ctl.ref_id) : NULL;
        if (c == NULL || c->base.state != ATB_CONN_CONNECTING ||
            c->pending_ctl != 0) {
            break;
        }
        c->peer_id = ctl.reply_id;
        c->peer_pid = ctl.pid;
        atb_conn_opened(&c->base);
        return;
    case SHM_OP_CLOSE:
        if (ctl.ref_id != 0) {
            c = reader_find(r, ctl.ref_id);
        } else if (r->listener != NULL) {
            c = reader_find_dialer(r, &ctl);
        }
        /* The sender must be the connection's peer; a dial still waiting
         * for its answer does not know the peer's id yet. */
        if (c == NULL ||
            (c->peer_id != ctl.reply_id &&
             !(c->base.state == ATB_CONN_CONNECTING && c->peer_id == 0))) {
            break;
        }
        c->peer_closed = 1;
        atb_conn_fail(&c->base, shm_conn_ended(c));
        return;
    default:
        break;
    }
    r->dropped++;
}

/* reader_record handles one record, on the loop thread, inside
 * atb_shm_ring_read. */
static void
reader_record(int32_t type, const void *data, size_t len, void *arg)
{
    struct shm_reader *r = arg;
    r->batch_bytes += ATB_SHM_RING_RECORD_HEADER + len;
    if (r->doomed) {
        return;
    }
    if (type == SHM_CTL_TYPE) {
        reader_control(r, data, len);
        return;
    }
    struct shm_conn *c = reader_find(r, type);
    if (c == NULL || c->base.state != ATB_CONN_OPEN) {
        r->dropped++;
        return;
    }
    /* A record is exactly one frame, checked like bytes from a socket: a
     * bad one ends this connection only, as garbage on a TCP connection
     * would. */
    atb_frame_view v;
    int rc = atb_frame_parse(data, len, c->cfg.max_frame_message, &v);
    if (rc == ATBUS_OK && v.frame_len != len) {
        rc = ATBUS_EFRAME_INVALID;
    }
    if (rc != ATBUS_OK) {
        atb_conn_fail(&c->base, rc);
        return;
    }
    c->base.stats.frames_in++;
    c->base.stats.bytes_in += len;
    if (c->base.cbs.on_frame != NULL) {
        c->base.cbs.on_frame(&c->base, &v, c->base.arg);
    }
}

/* ---- the waiter thread and the hand-over ---------------------------- */

/*
 * reader_waiter sleeps until the ring has a record, then hands the ring
 * to the loop and waits until the loop gives it back. Reader calls never
 * run on both threads at once: atb_shm_ring_wait returns at once while a
 * record is ready, so waiting again before the loop has drained would
 * spin, and read must not run concurrently with wait or recover.
 */
static void *
reader_waiter(void *arg)
{
    struct shm_reader *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        if (r->loop_owns) {
            pthread_cond_wait(&r->cond, &r->lock);
            continue;
        }
        pthread_mutex_unlock(&r->lock);
        int rc = atb_shm_ring_wait(r->ring, (int64_t)SHM_CHECK_US);
        if (rc == ATBUS_ETIMEDOUT) {
            /* A writer that died inside a claim blocks the head and no
             * commit will wake us: the stall clock runs here, where the
             * reader calls are. */
            atb_shm_ring_recover(r->ring, atb_clock_us(),
                                 ATB_SHM_RING_STALL_US);
        } else if (rc != ATBUS_OK && rc != ATBUS_ECLOSED) {
            struct timespec ts = {0, (long)SHM_CHECK_US * 1000};
            nanosleep(&ts, NULL); /* not a spin when futex fails */
        }
        pthread_mutex_lock(&r->lock);
        if (rc == ATBUS_OK && !r->stop) {
            r->loop_owns = 1;
            atb_async_send(&r->async);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void
reader_hand_back(struct shm_reader *r)
{
    pthread_mutex_lock(&r->lock);
    r->loop_owns = 0;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* The loop's side of the wake-up only queues the drain: user callbacks
 * then run from the deferred queue, never from inside the loop's walk of
 * its async handles, which they might change. */
static void
reader_on_async(atb_async *a, void *arg)
{
    (void)a;
    struct shm_reader *r = arg;
    atb_loop_defer(r->loop, &r->drain, reader_drain, r);
}

/* reader_check runs every SHM_CHECK_US on the loop: peers that died,
 * close records that did not fit. */
static void
reader_check(atb_timer *t, void *arg)
{
    (void)t;
    struct shm_reader *r = arg;
    for (struct shm_linger **pp = &r->lingers; *pp != NULL;) {
        struct shm_linger *lg = *pp;
        int rc = shm_ctl_write(lg->out, &lg->ctl);
        if (rc == ATBUS_EWOULDBLOCK &&
            atb_shm_ring_reader_alive(lg->out) != 0) {
            pp = &lg->next;
            continue;
        }
        *pp = lg->next;
        atb_shm_ring_close(lg->out);
        atb_free(lg);
    }
    if (r->ring == NULL) {
        return;
    }
    uint64_t head = atb_shm_ring_head(r->ring);
    for (size_t i = 0; i < r->table_size; i++) {
        struct shm_conn *next;
        for (struct shm_conn *c = r->table[i]; c != NULL; c = next) {
            next = c->hnext; /* failing c takes it out of the table */
            if (c->out == NULL) {
                continue;
            }
            if (!c->peer_dead) {
                /* An error (the kernel cannot say) counts as alive: a
                 * live connection is not ended on a guess. */
                if (atb_shm_ring_reader_alive(c->out) != 0) {
                    continue;
                }
                if (c->base.state == ATB_CONN_CONNECTING) {
                    atb_conn_fail(&c->base, ATBUS_ECONNREFUSED);
                    continue;
                }
                /* Whatever the peer wrote before it died lies below the
                 * tail seen now: deliver that first. */
                c->peer_dead = 1;
                c->dead_mark = atb_shm_ring_tail(r->ring);
            }
            if (head >= c->dead_mark) {
                c->peer_closed = 1;
                atb_conn_fail(&c->base, ATBUS_ECONNRESET);
            }
        }
    }
}

/* reader_start runs the waiter thread and the loop's side of r->ring. */
static int
reader_start(struct shm_reader *r)
{
    r->stop = 0;
    r->loop_owns = 0;
    atb_async_start(r->loop, &r->async, reader_on_async, r);
    atb_timer_init(&r->check, reader_check, r);
    if (atb_timer_start(r->loop, &r->check, SHM_CHECK_US, SHM_CHECK_US) !=
        ATBUS_OK) {
        atb_async_stop(&r->async);
        return ATBUS_ENOMEM;
    }
    int err = pthread_create(&r->thread, NULL, reader_waiter, r);
    if (err != 0) {
        atb_timer_stop(&r->check);
        atb_async_stop(&r->async);
        return ATBUS_ESYSTEM;
    }
    r->running = 1;
    return ATBUS_OK;
}

/* reader_stop joins the waiter thread: it is parked or sleeping in a wait
 * that the interrupt ends, so this does not block for long. */
static void
reader_stop(struct shm_reader *r)
{
    if (!r->running) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    atb_shm_ring_interrupt(r->ring);
    pthread_join(r->thread, NULL);
    atb_async_stop(&r->async);
    atb_loop_cancel(r->loop, &r->drain);
    atb_timer_stop(&r->check);
    r->running = 0;
}

static int
reader_init(struct shm_reader *r, atb_loop *loop, const char *key,
            atb_shm_ring *ring, size_t capacity, size_t read_budget)
{
    r->loop = loop;
    r->ring = ring;
    memcpy(r->key, key, strlen(key) + 1);
    r->capacity = capacity;
    r->read_budget = read_budget != 0 ? read_budget : 1;
    r->next_id = 1;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        return ATBUS_ESYSTEM;
    }
    if (pthread_cond_init(&r->cond, NULL) != 0) {
        pthread_mutex_destroy(&r->lock);
        return ATBUS_ESYSTEM;
    }
    int rc = reader_start(r);
    if (rc != ATBUS_OK) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
    }
    return rc;
}

/* reader_free releases a stopped reader whose name is already removed. */
static void
reader_free(struct shm_reader *r)
{
    while (r->lingers != NULL) {
        struct shm_linger *lg = r->lingers;
        r->lingers = lg->next;
        atb_shm_ring_close(lg->out);
        atb_free(lg);
    }
    atb_shm_ring_close(r->ring);
    atb_free(r->table);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    if (r->listener != NULL) {
        atb_free(r->listener);
    } else {
        atb_free(r);
    }
}

/* reader_release frees r now, or after the read in progress returns. */
static void
reader_release(struct shm_reader *r)
{
    if (r->in_drain) {
        r->doomed = 1;
        return;
    }
    reader_free(r);
}

static void inbox_unregister(struct shm_reader *r);

/*
 * reader_corrupt handles a ring that another process damaged (a record
 * length outside the ring): its records are lost, so every connection
 * reading from it ends with err. A listener starts over on a new ring of
 * the same name; an inbox leaves the registry, so the next dial makes a
 * new one.
 */
static void
reader_corrupt(struct shm_reader *r, int err)
{
    reader_stop(r);
    struct shm_conn *c;
    while ((c = reader_pop(r)) != NULL) {
        atb_conn_fail(&c->base, err);
    }
    struct shm_listener *l = r->listener;
    if (l == NULL) {
        inbox_unregister(r);
        return;
    }
    atb_shm_ring_unlink(r->key);
    atb_shm_ring_close(r->ring);
    r->ring = NULL;
    int rc = shm_ring_take(r->key, r->capacity, &r->ring);
    if (rc == ATBUS_OK) {
        rc = reader_start(r);
        if (rc != ATBUS_OK) {
            atb_shm_ring_unlink(r->key);
            atb_shm_ring_close(r->ring);
            r->ring = NULL;
        }
    }
    /* Last: the owner may close the listener from the callback. */
    if (l->base.cbs.on_error != NULL) {
        l->base.cbs.on_error(&l->base, rc == ATBUS_OK ? err : rc, l->base.arg);
    }
}

static void
reader_drain(atb_deferred *d, void *arg)
{
    (void)d;
    struct shm_reader *r = arg;
    int more = 0;
    int rc = ATBUS_OK;
    r->in_drain = 1;
    r->batch_bytes = 0;
    for (;;) {
        int n = atb_shm_ring_read(r->ring, reader_record, r, SHM_READ_BATCH);
        if (n < 0) {
            rc = n;
            break;
        }
        if (r->doomed || n < SHM_READ_BATCH) {
            break;
        }
        if (r->batch_bytes >= r->read_budget) {
            more = 1;
            break;
        }
    }
    r->in_drain = 0;
    if (r->doomed) {
        reader_free(r);
        return;
    }
    if (!r->running) {
        return; /* stopped from a callback (an inbox left behind) */
    }
    if (rc != ATBUS_OK) {
        reader_corrupt(r, rc);
    } else if (more) {
        /* Budget spent: keep the ring and go on next turn, after other
         * work has had its turn. */
        atb_loop_defer(r->loop, &r->drain, reader_drain, r);
    } else {
        reader_hand_back(r);
    }
}

/* ---- inboxes -------------------------------------------------------- */

static void
inbox_unregister(struct shm_reader *r)
{
    if (!r->registered) {
        return;
    }
    pthread_mutex_lock(&shm_inbox_lock);
    for (struct shm_reader **pp = &shm_inboxes; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&shm_inbox_lock);
    r->registered = 0;
}

/*
 * inbox_get returns the inbox of loop, creating it on the first dial:
 * "in-<pid>-<n>", sized by that dial's configuration. Creating one first
 * removes the inboxes of processes that died without closing theirs.
 */
static int
inbox_get(atb_loop *loop, const atb_transport_config *cfg,
          struct shm_reader **out)
{
    pid_t self = getpid();
    pthread_mutex_lock(&shm_inbox_lock);
    struct shm_reader *r = shm_inboxes;
    while (r != NULL && (r->loop != loop || r->owner != self)) {
        r = r->next;
    }
    pthread_mutex_unlock(&shm_inbox_lock);
    if (r != NULL) {
        r->refs++; /* only this loop's thread touches its inbox */
        *out = r;
        return ATBUS_OK;
    }

    atb_shm_ring_sweep(SHM_INBOX_PREFIX);
    size_t capacity = shm_ring_size(cfg);
    char key[ATB_SHM_RING_KEY_MAX + 1];
    atb_shm_ring *ring = NULL;
    int rc = ATBUS_EEXIST;
    /* A name can be taken by a live process of another pid namespace
     * with our pid: then try the next number. */
    for (int i = 0; i < SHM_NAME_ATTEMPTS && rc == ATBUS_EEXIST; i++) {
        snprintf(key, sizeof(key), SHM_INBOX_PREFIX "%ld-%u", (long)self,
                 atomic_fetch_add(&shm_inbox_seq, 1) + 1);
        rc = atb_shm_ring_create(&ring, key, capacity);
    }
    if (rc != ATBUS_OK) {
        return rc == ATBUS_EEXIST ? ATBUS_ESYSTEM : rc;
    }
    r = atb_calloc(1, sizeof(*r));
    if (r == NULL) {
        rc = ATBUS_ENOMEM;
    } else {
        rc = reader_init(r, loop, key, ring, capacity, cfg->read_budget);
    }
    if (rc != ATBUS_OK) {
        atb_free(r);
        atb_shm_ring_unlink(key);
        atb_shm_ring_close(ring);
        return rc;
    }
    r->refs = 1;
    r->owner = self;
    r->registered = 1;
    pthread_mutex_lock(&shm_inbox_lock);
    r->next = shm_inboxes;
    shm_inboxes = r;
    pthread_mutex_unlock(&shm_inbox_lock);
    *out = r;
    return ATBUS_OK;
}

static void
inbox_unref(struct shm_reader *r)
{
    if (--r->refs > 0) {
        return;
    }
    inbox_unregister(r);
    reader_stop(r);
    if (r->ring != NULL) {
        /* Before closing: the name is removed while we hold its lock. */
        atb_shm_ring_unlink(r->key);
    }
    reader_release(r);
}

/* ---- dial ----------------------------------------------------------- */

/* shm_kick reports a dial that failed at once, from the loop. */
static void
shm_kick(atb_deferred *d, void *arg)
{
    (void)d;
    struct shm_conn *c = arg;
    atb_conn_fail(&c->base, c->dial_error);
}

static int
shm_dial(atb_loop *loop, const atb_url *url, const atb_transport_config *cfg,
         atb_conn **out)
{
    struct shm_reader *in;
    int rc = inbox_get(loop, cfg, &in);
    if (rc != ATBUS_OK) {
        return rc;
    }
    struct shm_conn *c = shm_conn_new(loop, url, cfg);
    if (c == NULL || reader_insert(in, c) != ATBUS_OK) {
        atb_free(c);
        inbox_unref(in);
        return ATBUS_ENOMEM;
    }
    c->inbox = in;
    memcpy(c->peer_key, url->name, strlen(url->name) + 1);
    rc = atb_shm_ring_open(&c->out, url->name);
    if (rc == ATBUS_OK) {
        struct shm_ctl ctl;
        shm_ctl_make(c, SHM_OP_CONNECT, &ctl);
        rc = shm_ctl_write(c->out, &ctl);
        if (rc == ATBUS_EWOULDBLOCK) {
            c->pending_ctl = SHM_OP_CONNECT;
            rc = shm_conn_retry_arm(c, 1);
        }
    }
    if (rc != ATBUS_OK) {
        /* No ring, its reader has closed it, or the name holds
         * something we cannot talk to: nobody listens there. */
        c->peer_closed = 1;
        c->dial_error = rc == ATBUS_ENOTFOUND || rc == ATBUS_ECLOSED ||
                                rc == ATBUS_EINVAL || rc == ATBUS_ENOTSUP
                            ? ATBUS_ECONNREFUSED
                            : rc;
        atb_loop_defer(loop, &c->kick, shm_kick, c);
    }
    *out = &c->base;
    return ATBUS_OK;
}

/* ---- listeners ------------------------------------------------------ */

static int
shm_listen(const atb_listener *tmpl, atb_listener **out)
{
    struct shm_listener *l = atb_calloc(1, sizeof(*l));
    if (l == NULL) {
        return ATBUS_ENOMEM;
    }
    l->base = *tmpl;
    size_t capacity = shm_ring_size(&tmpl->cfg);
    atb_shm_ring *ring = NULL;
    int rc = shm_ring_take(tmpl->url.name, capacity, &ring);
    if (rc == ATBUS_OK) {
        l->reader.listener = l;
        rc = reader_init(&l->reader, tmpl->loop, tmpl->url.name, ring, capacity,
                         tmpl->cfg.read_budget);
        if (rc != ATBUS_OK) {
            atb_shm_ring_unlink(tmpl->url.name);
            atb_shm_ring_close(ring);
        }
    }
    if (rc != ATBUS_OK) {
        atb_free(l);
        return rc;
    }
    *out = &l->base;
    return ATBUS_OK;
}

static void
shm_listener_free(atb_listener *base)
{
    struct shm_listener *l = (struct shm_listener *)base;
    struct shm_reader *r = &l->reader;
    /* Accepted connections read from this ring: they end now, and their
     * peers are told. */
    struct shm_conn *c;
    while ((c = reader_pop(r)) != NULL) {
        atb_conn_fail(&c->base, ATBUS_ECLOSED);
    }
    reader_stop(r);
    if (r->ring != NULL) {
        atb_shm_ring_unlink(r->key);
    }
    reader_release(r);
}

uint64_t
atb_shm_listener_dropped(const atb_listener *l)
{
    return ((const struct shm_listener *)l)->reader.dropped;
}

uint64_t
atb_shm_inbox_dropped(const atb_conn *c)
{
    const struct shm_conn *sc = (const struct shm_conn *)c;
    return sc->inbox != NULL ? sc->inbox->dropped : 0;
}

const atb_transport atb_transport_shm = {
    .scheme = ATB_URL_SHM,
    .flags = ATB_TP_SAME_HOST,
    .listen = shm_listen,
    .listener_free = shm_listener_free,
    .dial = shm_dial,
    .send = shm_send,
    .shutdown = shm_shutdown,
    .conn_free = shm_conn_free,
};
