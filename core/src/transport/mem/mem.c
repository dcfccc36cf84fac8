/*
 * mem:// — connections between nodes of one process, possibly on
 * different threads.
 *
 * Each direction is a single-producer, single-consumer ring of frames in
 * ordinary memory: the sender copies a frame in, the receiver delivers it
 * from the ring and releases the space. No lock and no system call is on
 * the data path while the receiver is busy; a receiver with nothing left
 * to read announces that it is idle, and only then does a sender pay for
 * a wakeup (atb_async_send, one eventfd write). The announce/re-check
 * order on both sides (sequentially consistent atomics) means no frame is
 * left unnoticed.
 *
 * The two ends share one refcounted block. Notifications cross threads
 * under the block's mutex so that an end being freed on its own thread
 * never receives one; the mutex is taken only for notifications, never
 * per frame under load.
 */
#define _GNU_SOURCE
#include <atbus/error.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "transport/transport.h"

extern const atb_transport atb_transport_mem;

/* Records are 8-byte aligned: [uint32 length][uint32 pad][frame bytes]. A
 * length of MEM_WRAP tells the reader to continue at offset 0. */
#define MEM_REC_HEADER 8u
#define MEM_WRAP UINT32_MAX

struct mem_ring {
    uint8_t *buf;
    size_t cap;          /* power of two */
    _Atomic size_t head; /* consumer position (bytes, monotonic) */
    _Atomic size_t tail; /* producer position */
    _Atomic int reader_idle;
    _Atomic int writer_blocked;
};

struct mem_conn;

struct mem_shared {
    pthread_mutex_t lock;
    _Atomic int refs;
    struct mem_conn *end[2]; /* NULL once freed; guarded by lock */
    _Atomic int closed[2];   /* end i closed: the other sees a reset */
    struct mem_ring ring[2]; /* ring[i]: written by end i */
};

struct mem_conn {
    atb_conn base;
    struct mem_shared *sh; /* NULL for a dial that found no listener */
    int side;
    int async_on; /* notify registered with the loop */
    int want_writable;
    atb_async notify;
    atb_deferred kick;
    atb_transport_config cfg;
    struct mem_conn *next_pending; /* listener's accept queue */
};

struct mem_listener {
    atb_listener base;
    struct mem_listener *next;
    char name[ATB_URL_NAME_MAX + 1];
    atb_async accept_async;
    /* Connections dialed (maybe from other threads) waiting for this
     * loop to accept them; guarded by mem_registry_lock. */
    struct mem_conn *pending;
};

static pthread_mutex_t mem_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mem_listener *mem_registry;

static size_t
mem_align(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* ---- rings --------------------------------------------------------- */

static int
ring_init(struct mem_ring *r, size_t cap)
{
    r->buf = atb_malloc(cap);
    if (r->buf == NULL) {
        return ATBUS_ENOMEM;
    }
    r->cap = cap;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->reader_idle, 0);
    atomic_init(&r->writer_blocked, 0);
    return ATBUS_OK;
}

/* ring_put copies one frame in; ATBUS_EWOULDBLOCK when it does not fit. */
static int
ring_put(struct mem_ring *r, const struct iovec *iov, int iovcnt, size_t len)
{
    size_t need = MEM_REC_HEADER + mem_align(len);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t off = tail & (r->cap - 1);
    size_t to_end = r->cap - off;
    size_t pad = to_end < need ? to_end : 0;
    if (r->cap - (tail - head) < pad + need) {
        return ATBUS_EWOULDBLOCK;
    }
    if (pad != 0) {
        uint32_t wrap = MEM_WRAP;
        memcpy(r->buf + off, &wrap, sizeof(wrap));
        tail += pad;
        off = 0;
    }
    uint32_t len32 = (uint32_t)len;
    memcpy(r->buf + off, &len32, sizeof(len32));
    uint8_t *p = r->buf + off + MEM_REC_HEADER;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len != 0) {
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
    }
    /* Release: the reader that sees the new tail sees the bytes. */
    atomic_store_explicit(&r->tail, tail + need, memory_order_seq_cst);
    return ATBUS_OK;
}

/* ring_peek returns the next frame or NULL; ring_pop releases it. */
static const uint8_t *
ring_peek(struct mem_ring *r, size_t *len)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    if (head == tail) {
        return NULL;
    }
    size_t off = head & (r->cap - 1);
    uint32_t len32;
    memcpy(&len32, r->buf + off, sizeof(len32));
    if (len32 == MEM_WRAP) {
        head += r->cap - off;
        atomic_store_explicit(&r->head, head, memory_order_release);
        if (head == tail) {
            return NULL;
        }
        off = 0;
        memcpy(&len32, r->buf, sizeof(len32));
    }
    *len = len32;
    return r->buf + off + MEM_REC_HEADER;
}

static void
ring_pop(struct mem_ring *r, size_t len)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + MEM_REC_HEADER + mem_align(len),
                          memory_order_release);
}

/* ---- shared block and notifications -------------------------------- */

static void
shared_unref(struct mem_shared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) == 1) {
        pthread_mutex_destroy(&sh->lock);
        atb_free(sh->ring[0].buf);
        atb_free(sh->ring[1].buf);
        atb_free(sh);
    }
}

/* mem_notify wakes end `side` of sh if it still exists. Any thread. */
static void
mem_notify(struct mem_shared *sh, int side)
{
    pthread_mutex_lock(&sh->lock);
    struct mem_conn *c = sh->end[side];
    if (c != NULL && c->async_on) {
        atb_async_send(&c->notify);
    }
    pthread_mutex_unlock(&sh->lock);
}

/* mem_drain delivers what the peer wrote, then announces idleness and
 * checks once more, so a frame written in between is not missed. */
static void
mem_drain(struct mem_conn *c)
{
    struct mem_shared *sh = c->sh;
    struct mem_ring *in = &sh->ring[!c->side];
    for (;;) {
        atomic_store(&in->reader_idle, 0);
        size_t len;
        const uint8_t *p;
        int freed = 0;
        while (c->base.state == ATB_CONN_OPEN &&
               (p = ring_peek(in, &len)) != NULL) {
            atb_frame_view v;
            int rc = atb_frame_parse(p, len, c->cfg.max_frame_message, &v);
            if (rc != ATBUS_OK) {
                atb_conn_fail(&c->base, rc);
                return;
            }
            c->base.stats.frames_in++;
            c->base.stats.bytes_in += len;
            if (c->base.cbs.on_frame != NULL) {
                c->base.cbs.on_frame(&c->base, &v, c->base.arg);
            }
            ring_pop(in, len);
            freed = 1;
        }
        if (c->base.state != ATB_CONN_OPEN) {
            return;
        }
        /* A sender refused for lack of space may go on now. */
        if (freed && atomic_exchange(&in->writer_blocked, 0)) {
            mem_notify(sh, !c->side);
        }
        atomic_store(&in->reader_idle, 1);
        if (ring_peek(in, &len) == NULL) {
            break;
        }
    }
    if (atomic_load(&sh->closed[!c->side])) {
        atb_conn_fail(&c->base, ATBUS_ECONNRESET);
    }
}

static void
mem_on_notify(atb_async *a, void *arg)
{
    (void)a;
    struct mem_conn *c = arg;
    if (c->base.state != ATB_CONN_OPEN) {
        return;
    }
    mem_drain(c);
    if (c->base.state == ATB_CONN_OPEN && c->want_writable &&
        atomic_load(&c->sh->ring[c->side].writer_blocked) == 0) {
        c->want_writable = 0;
        if (c->base.cbs.on_writable != NULL) {
            c->base.cbs.on_writable(&c->base, c->base.arg);
        }
    }
}

/* mem_kick runs on the end's own loop: it reports the outcome of a dial
 * and picks up frames sent before the end was attached. */
static void
mem_kick(atb_deferred *d, void *arg)
{
    (void)d;
    struct mem_conn *c = arg;
    if (c->sh == NULL) {
        atb_conn_fail(&c->base, ATBUS_ECONNREFUSED);
        return;
    }
    if (c->base.state == ATB_CONN_CONNECTING) {
        atb_conn_opened(&c->base);
    }
    if (c->base.state == ATB_CONN_OPEN) {
        mem_drain(c);
    }
}

/* mem_attach registers end c with its own loop. Loop thread only. */
static void
mem_attach(struct mem_conn *c)
{
    atb_async_start(c->base.loop, &c->notify, mem_on_notify, c);
    pthread_mutex_lock(&c->sh->lock);
    c->async_on = 1;
    c->sh->end[c->side] = c;
    pthread_mutex_unlock(&c->sh->lock);
    atb_loop_defer(c->base.loop, &c->kick, mem_kick, c);
}

static struct mem_conn *
mem_conn_new(atb_loop *loop, const atb_url *peer,
             const atb_transport_config *cfg)
{
    struct mem_conn *c = atb_calloc(1, sizeof(*c));
    if (c != NULL) {
        atb_conn_init_common(&c->base, &atb_transport_mem, loop, peer);
        c->cfg = *cfg;
    }
    return c;
}

static size_t
mem_ring_size(const atb_transport_config *cfg)
{
    size_t cap = 64 * 1024;
    while (cap < cfg->send_buffer_limit && cap < ((size_t)1 << 30)) {
        cap *= 2;
    }
    return cap;
}

static int
mem_send(atb_conn *conn, const struct iovec *iov, int iovcnt)
{
    struct mem_conn *c = (struct mem_conn *)conn;
    size_t total;
    int rc = atb_transport_check_frame(iov, iovcnt, c->cfg.max_frame_message,
                                       &total);
    if (rc != ATBUS_OK) {
        return rc;
    }
    struct mem_ring *out = &c->sh->ring[c->side];
    if (MEM_REC_HEADER + mem_align(total) > out->cap / 2) {
        return ATBUS_EMSGSIZE;
    }
    rc = ring_put(out, iov, iovcnt, total);
    if (rc == ATBUS_EWOULDBLOCK) {
        /* Announce, then try once more: the reader may have made room
         * between the two, and would not have seen the announcement. */
        atomic_store(&out->writer_blocked, 1);
        rc = ring_put(out, iov, iovcnt, total);
        if (rc == ATBUS_EWOULDBLOCK) {
            c->want_writable = 1;
            conn->stats.sends_would_block++;
            return rc;
        }
    }
    conn->stats.frames_out++;
    conn->stats.bytes_out += total;
    if (atomic_load(&out->reader_idle) &&
        atomic_exchange(&out->reader_idle, 0)) {
        conn->stats.syscalls_out++;
        mem_notify(c->sh, !c->side);
    }
    return ATBUS_OK;
}

static void
mem_shutdown(atb_conn *conn)
{
    struct mem_conn *c = (struct mem_conn *)conn;
    atb_loop_cancel(conn->loop, &c->kick);
    if (c->sh != NULL && !atomic_exchange(&c->sh->closed[c->side], 1)) {
        mem_notify(c->sh, !c->side);
    }
}

static void
mem_conn_free(atb_conn *conn)
{
    struct mem_conn *c = (struct mem_conn *)conn;
    atb_loop_cancel(conn->loop, &c->kick);
    if (c->sh != NULL) {
        if (!atomic_exchange(&c->sh->closed[c->side], 1)) {
            mem_notify(c->sh, !c->side);
        }
        pthread_mutex_lock(&c->sh->lock);
        c->sh->end[c->side] = NULL;
        pthread_mutex_unlock(&c->sh->lock);
        if (c->async_on) {
            atb_async_stop(&c->notify);
        }
        shared_unref(c->sh);
    }
    atb_free(c);
}

/* ---- listeners ----------------------------------------------------- */

static void
mem_accept_cb(atb_async *a, void *arg)
{
    (void)a;
    struct mem_listener *ml = arg;
    for (;;) {
        pthread_mutex_lock(&mem_registry_lock);
        struct mem_conn *c = ml->pending;
        if (c != NULL) {
            ml->pending = c->next_pending;
        }
        pthread_mutex_unlock(&mem_registry_lock);
        if (c == NULL) {
            return;
        }
        c->next_pending = NULL;
        c->base.state = ATB_CONN_OPEN;
        mem_attach(c);
        ml->base.cbs.on_accept(&ml->base, &c->base, ml->base.arg);
    }
}

static int
mem_listen(const atb_listener *tmpl, atb_listener **out)
{
    struct mem_listener *ml = atb_calloc(1, sizeof(*ml));
    if (ml == NULL) {
        return ATBUS_ENOMEM;
    }
    ml->base = *tmpl;
    memcpy(ml->name, tmpl->url.name, strlen(tmpl->url.name) + 1);
    pthread_mutex_lock(&mem_registry_lock);
    for (struct mem_listener *l = mem_registry; l != NULL; l = l->next) {
        if (strcmp(l->name, ml->name) == 0) {
            pthread_mutex_unlock(&mem_registry_lock);
            atb_free(ml);
            return ATBUS_EADDRINUSE;
        }
    }
    atb_async_start(tmpl->loop, &ml->accept_async, mem_accept_cb, ml);
    ml->next = mem_registry;
    mem_registry = ml;
    pthread_mutex_unlock(&mem_registry_lock);
    *out = &ml->base;
    return ATBUS_OK;
}

static void
mem_listener_free(atb_listener *l)
{
    struct mem_listener *ml = (struct mem_listener *)l;
    pthread_mutex_lock(&mem_registry_lock);
    for (struct mem_listener **pp = &mem_registry; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == ml) {
            *pp = ml->next;
            break;
        }
    }
    struct mem_conn *pending = ml->pending;
    ml->pending = NULL;
    pthread_mutex_unlock(&mem_registry_lock);
    atb_async_stop(&ml->accept_async);
    /* Dials never accepted: their dialers see the connection reset. */
    while (pending != NULL) {
        struct mem_conn *c = pending;
        pending = c->next_pending;
        mem_conn_free(&c->base);
    }
    atb_free(ml);
}

static int
mem_dial(atb_loop *loop, const atb_url *url, const atb_transport_config *cfg,
         atb_conn **out)
{
    struct mem_conn *client = mem_conn_new(loop, url, cfg);
    if (client == NULL) {
        return ATBUS_ENOMEM;
    }
    pthread_mutex_lock(&mem_registry_lock);
    struct mem_listener *ml = mem_registry;
    while (ml != NULL && strcmp(ml->name, url->name) != 0) {
        ml = ml->next;
    }
    if (ml == NULL) {
        pthread_mutex_unlock(&mem_registry_lock);
        /* Refused, reported from the loop like other transports. */
        atb_loop_defer(loop, &client->kick, mem_kick, client);
        *out = &client->base;
        return ATBUS_OK;
    }
    struct mem_shared *sh = atb_calloc(1, sizeof(*sh));
    struct mem_conn *server = mem_conn_new(ml->base.loop, NULL, &ml->base.cfg);
    int rc = ATBUS_ENOMEM;
    if (sh != NULL && server != NULL) {
        rc = ring_init(&sh->ring[0], mem_ring_size(cfg));
        if (rc == ATBUS_OK) {
            rc = ring_init(&sh->ring[1], mem_ring_size(&ml->base.cfg));
        }
    }
    if (rc != ATBUS_OK) {
        pthread_mutex_unlock(&mem_registry_lock);
        if (sh != NULL) {
            atb_free(sh->ring[0].buf);
            atb_free(sh->ring[1].buf);
        }
        atb_free(sh);
        atb_free(server);
        atb_free(client);
        return rc;
    }
    pthread_mutex_init(&sh->lock, NULL);
    atomic_init(&sh->refs, 2);
    client->sh = sh;
    client->side = 0;
    server->sh = sh;
    server->side = 1;
    struct mem_conn **tail = &ml->pending;
    while (*tail != NULL) {
        tail = &(*tail)->next_pending;
    }
    *tail = server;
    atb_async_send(&ml->accept_async);
    pthread_mutex_unlock(&mem_registry_lock);
    mem_attach(client);
    *out = &client->base;
    return ATBUS_OK;
}

const atb_transport atb_transport_mem = {
    .scheme = ATB_URL_MEM,
    .flags = ATB_TP_SAME_PROCESS,
    .listen = mem_listen,
    .listener_free = mem_listener_free,
    .dial = mem_dial,
    .send = mem_send,
    .shutdown = mem_shutdown,
    .conn_free = mem_conn_free,
};
