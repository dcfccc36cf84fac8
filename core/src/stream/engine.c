#include "stream/engine.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"
#include "stream/rob.h"
#include "stream/sendbuf.h"

/* A datagram packet is lost once this many later packets of its path
 * arrived (the reordering a path tolerates without a false resend). */
#define ENGINE_REORDER_PACKETS 3
/* Streams one peer may open towards us; a stream's state lives as long
 * as its peer, so this bounds what a peer can make us hold. */
#define ENGINE_MAX_STREAMS 4096
/* Offsets a peer may use: far beyond any stream's life (2^62 units),
 * and low enough that offset + a frame's units never overflows. */
#define ENGINE_MAX_OFFSET ((int64_t)1 << 62)

enum rec_state {
    REC_INFLIGHT = 1, /* sent on rec->path, fate unknown */
    REC_LOST,         /* to be sent again */
    REC_RECEIVED,     /* the peer reported its last unit; not yet acked */
};

typedef struct sstream sstream;
typedef struct spath spath;

/*
 * A range of units of one stream, [off, end). The ranges of a stream
 * tile [acked, sent_max) in offset order (stream list). An INFLIGHT
 * range on a datagram path is also on its path's list in send order; a
 * LOST one is on its stream's lost list in offset order.
 */
typedef struct srec {
    struct srec *snext, *sprev; /* stream list */
    struct srec *onext, *oprev; /* path list or lost list */
    sstream *st;
    int64_t off;
    int64_t end;
    uint64_t seq; /* send order, engine-wide */
    uint64_t sent_us;
    uint32_t path;
    uint8_t state;
    uint8_t on_path_list;
} srec;

struct sstream {
    int64_t id;
    /* Send side. */
    atb_sendbuf buf;
    int64_t acked;      /* every unit below is acknowledged */
    int64_t sent_max;   /* next new unit */
    int64_t fin_offset; /* the FIN unit, or -1 */
    srec *rhead, *rtail;
    srec *lhead, *ltail; /* lost ranges */
    int blocked;         /* a send was refused: report writable */
    int reset_pending;   /* mark the packet at `acked` RESET_OFFSET */
    int send_done;       /* FIN acknowledged */
    /* Receive side. */
    int rob_open;
    atb_rob rob;
    int64_t fin_at; /* the peer's FIN unit, or -1 */
    int recv_done;  /* FIN delivered */
    int ack_pending;
    int64_t acked_reported; /* the ack offset last sent */
    atb_sstream_stats stats;
};

struct spath {
    uint32_t id;
    size_t max_payload;
    unsigned flags;
    srec *head, *tail; /* INFLIGHT datagram ranges, send order */
    size_t inflight_units;
    uint64_t largest_received_seq;
    unsigned rto_backoff;
    int64_t last_rx_tp; /* timepoint of the last packet received */
    uint64_t last_rx_us;
    atb_spath_stats stats;
};

struct atb_sengine {
    atb_sengine_config cfg;
    atb_sengine_cbs cbs;
    void *arg;
    sstream **streams; /* sorted by id: control streams come first */
    size_t nstreams;
    size_t streams_cap;
    size_t rr; /* next user stream to serve */
    spath *paths;
    size_t npaths;
    uint64_t next_seq;
    /* Acknowledgements owed. */
    unsigned unacked_packets;
    int ack_now;
    uint64_t ack_deadline; /* UINT64_MAX: none */
    uint64_t max_ack_delay_seen;
    /* A range allocated while planning, so commit never fails. */
    struct srec *spare;
};

void
atb_sengine_config_default(atb_sengine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->stream_window = 8u * 1024u * 1024u;
    cfg->max_message = 1024u * 1024u;
    cfg->datagram_inflight = 256u * 1024u;
    cfg->ack_delay_us = 1000;
    cfg->ack_every_datagram = 2;
    cfg->ack_every_reliable = 32;
    cfg->rto_initial_us = 200000;
    cfg->rto_min_us = 2000;
    cfg->rto_max_us = 5000000;
}

int
atb_sengine_new(atb_sengine **out, const atb_sengine_config *cfg,
                const atb_sengine_cbs *cbs, void *arg)
{
    *out = NULL;
    if (cfg->stream_window <= cfg->max_message + 1 ||
        cfg->datagram_inflight == 0 || cfg->ack_every_datagram == 0 ||
        cfg->ack_every_reliable == 0 || cfg->rto_min_us == 0 ||
        cfg->rto_min_us > cfg->rto_max_us) {
        return ATBUS_EINVAL;
    }
    atb_sengine *e = atb_calloc(1, sizeof(*e));
    if (e == NULL) {
        return ATBUS_ENOMEM;
    }
    e->cfg = *cfg;
    e->cbs = *cbs;
    e->arg = arg;
    e->ack_deadline = UINT64_MAX;
    *out = e;
    return ATBUS_OK;
}

/* ---- ranges ---- */

static void rec_path_unlink(atb_sengine *e, srec *r);

static spath *
engine_path(const atb_sengine *e, uint32_t id)
{
    for (size_t i = 0; i < e->npaths; i++) {
        if (e->paths[i].id == id) {
            return &e->paths[i];
        }
    }
    return NULL;
}

static void
rec_lost_unlink(sstream *st, srec *r)
{
    if (r->oprev != NULL) {
        r->oprev->onext = r->onext;
    } else {
        st->lhead = r->onext;
    }
    if (r->onext != NULL) {
        r->onext->oprev = r->oprev;
    } else {
        st->ltail = r->oprev;
    }
    r->onext = r->oprev = NULL;
}

static void
rec_path_unlink(atb_sengine *e, srec *r)
{
    if (!r->on_path_list) {
        return;
    }
    /* A record is on a path's list only while that path exists
     * (path_remove takes every record off first). */
    spath *p = engine_path(e, r->path);
    if (p == NULL) {
        return;
    }
    if (r->oprev != NULL) {
        r->oprev->onext = r->onext;
    } else {
        p->head = r->onext;
    }
    if (r->onext != NULL) {
        r->onext->oprev = r->oprev;
    } else {
        p->tail = r->oprev;
    }
    p->inflight_units -= (size_t)(r->end - r->off);
    r->onext = r->oprev = NULL;
    r->on_path_list = 0;
}

/* rec_detach takes r off its path or lost list. */
static void
rec_detach(atb_sengine *e, srec *r)
{
    if (r->state == REC_LOST) {
        rec_lost_unlink(r->st, r);
    } else {
        rec_path_unlink(e, r);
    }
}

static void
rec_free(atb_sengine *e, srec *r)
{
    rec_detach(e, r);
    sstream *st = r->st;
    if (r->sprev != NULL) {
        r->sprev->snext = r->snext;
    } else {
        st->rhead = r->snext;
    }
    if (r->snext != NULL) {
        r->snext->sprev = r->sprev;
    } else {
        st->rtail = r->sprev;
    }
    if (e->spare == NULL) {
        e->spare = r; /* the next range costs no allocation */
    } else {
        atb_free(r);
    }
}

/* rec_mark_lost queues r for sending again, in offset order. */
static void
rec_mark_lost(atb_sengine *e, srec *r)
{
    if (r->state == REC_LOST) {
        return;
    }
    rec_detach(e, r);
    r->state = REC_LOST;
    sstream *st = r->st;
    srec *after = st->ltail;
    while (after != NULL && after->off > r->off) {
        after = after->oprev;
    }
    r->oprev = after;
    r->onext = after != NULL ? after->onext : st->lhead;
    if (r->onext != NULL) {
        r->onext->oprev = r;
    } else {
        st->ltail = r;
    }
    if (after != NULL) {
        after->onext = r;
    } else {
        st->lhead = r;
    }
}

/* ---- streams ---- */

static size_t
engine_stream_index(const atb_sengine *e, int64_t id)
{
    size_t lo = 0, hi = e->nstreams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->streams[mid]->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static sstream *
engine_stream_find(const atb_sengine *e, int64_t id)
{
    size_t i = engine_stream_index(e, id);
    return i < e->nstreams && e->streams[i]->id == id ? e->streams[i] : NULL;
}

static sstream *
engine_stream_get(atb_sengine *e, int64_t id)
{
    size_t i = engine_stream_index(e, id);
    if (i < e->nstreams && e->streams[i]->id == id) {
        return e->streams[i];
    }
    if (e->nstreams == e->streams_cap) {
        size_t cap = e->streams_cap != 0 ? e->streams_cap * 2 : 4;
        sstream **n = atb_realloc(e->streams, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        e->streams = n;
        e->streams_cap = cap;
    }
    sstream *st = atb_calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->id = id;
    st->fin_offset = -1;
    st->fin_at = -1;
    atb_sendbuf_init(&st->buf);
    memmove(&e->streams[i + 1], &e->streams[i],
            (e->nstreams - i) * sizeof(*e->streams));
    e->streams[i] = st;
    e->nstreams++;
    if (id >= 0 && i < e->rr) {
        e->rr++;
    }
    return st;
}

static void
stream_free(atb_sengine *e, sstream *st)
{
    while (st->rhead != NULL) {
        rec_free(e, st->rhead);
    }
    atb_sendbuf_fini(&st->buf);
    if (st->rob_open) {
        atb_rob_fini(&st->rob);
    }
    atb_free(st);
}

void
atb_sengine_free(atb_sengine *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->nstreams; i++) {
        stream_free(e, e->streams[i]);
    }
    atb_free(e->streams);
    atb_free(e->paths);
    atb_free(e->spare);
    atb_free(e);
}

/* ---- paths ---- */

int
atb_sengine_path_add(atb_sengine *e, uint32_t id, size_t max_payload,
                     unsigned flags)
{
    if (max_payload < 64) {
        return ATBUS_EINVAL;
    }
    if (engine_path(e, id) != NULL) {
        return ATBUS_EEXIST;
    }
    spath *n = atb_realloc(e->paths, (e->npaths + 1) * sizeof(*n));
    if (n == NULL) {
        return ATBUS_ENOMEM;
    }
    e->paths = n;
    spath *p = &e->paths[e->npaths++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->max_payload = max_payload;
    p->flags = flags;
    atb_rtt_init(&p->stats.rtt);
    return ATBUS_OK;
}

void
atb_sengine_path_remove(atb_sengine *e, uint32_t id)
{
    spath *p = engine_path(e, id);
    if (p == NULL) {
        return;
    }
    /* Everything the path carried and the peer did not acknowledge goes
     * out again elsewhere; RECEIVED ranges too, since only an ack is
     * final. */
    for (size_t i = 0; i < e->nstreams; i++) {
        for (srec *r = e->streams[i]->rhead; r != NULL; r = r->snext) {
            if (r->path == id && r->state != REC_LOST) {
                rec_mark_lost(e, r);
            }
        }
    }
    size_t idx = (size_t)(p - e->paths);
    memmove(&e->paths[idx], &e->paths[idx + 1],
            (e->npaths - idx - 1) * sizeof(*e->paths));
    e->npaths--;
}

/* ---- sending ---- */

int
atb_sengine_send(atb_sengine *e, int64_t stream_id, const void *data,
                 size_t len)
{
    if (len > e->cfg.max_message) {
        return ATBUS_EMSGSIZE;
    }
    sstream *st = engine_stream_get(e, stream_id);
    if (st == NULL) {
        return ATBUS_ENOMEM;
    }
    if (st->fin_offset >= 0) {
        return ATBUS_ECLOSED;
    }
    if ((size_t)(st->buf.end - st->acked) + len + 1 > e->cfg.stream_window) {
        st->blocked = 1;
        st->stats.would_block++;
        return ATBUS_EWOULDBLOCK;
    }
    int rc = atb_sendbuf_append(&st->buf, data, len);
    if (rc != ATBUS_OK) {
        return rc;
    }
    st->stats.messages_out++;
    st->stats.bytes_out += len;
    return ATBUS_OK;
}

int
atb_sengine_finish(atb_sengine *e, int64_t stream_id)
{
    sstream *st = engine_stream_get(e, stream_id);
    if (st == NULL) {
        return ATBUS_ENOMEM;
    }
    if (st->fin_offset >= 0) {
        return ATBUS_ECLOSED;
    }
    st->fin_offset = st->buf.end;
    return ATBUS_OK;
}

/* stream_send_end is one past the last unit the stream will send. */
static int64_t
stream_send_end(const sstream *st)
{
    return st->fin_offset >= 0 ? st->fin_offset + 1 : st->buf.end;
}

/*
 * stream_cut plans a packet of st's units from off, stopping before
 * limit, within max_payload bytes: fragments of the messages there, and
 * FINISH_STREAM when it reaches the FIN unit. Returns the end offset.
 */
static int64_t
stream_cut(sstream *st, int64_t off, int64_t limit, size_t max_payload,
           atb_sout *out)
{
    size_t budget = max_payload;
    size_t n = 0;
    out->payload = 0;
    out->packet.flags = 0;
    while (off < limit && off < st->buf.end && n < ATB_SPKT_MAX_FRAGS &&
           budget > ATB_SFRAG_OVERHEAD) {
        size_t room = budget - ATB_SFRAG_OVERHEAD;
        size_t units = (size_t)(limit - off);
        if (units > room + 1) {
            units = room + 1; /* room bytes plus possibly the end mark */
        }
        atb_sendbuf_frag f;
        atb_sendbuf_frag_at(&st->buf, off, units, &f);
        if (!f.end_mark && f.len > room) {
            f.len = room;
        }
        if (!f.end_mark && f.len == 0) {
            break;
        }
        out->frag_store[n].data = f.data;
        out->frag_store[n].len = f.len;
        out->frag_store[n].has_more = !f.end_mark;
        n++;
        off += (int64_t)f.len + (f.end_mark ? 1 : 0);
        budget -= f.len + ATB_SFRAG_OVERHEAD;
        out->payload += f.len;
    }
    if (st->fin_offset >= 0 && off == st->fin_offset && limit > off) {
        out->packet.flags |= ATB_SPKT_FINISH_STREAM;
        off++;
    }
    out->packet.frags = out->frag_store;
    out->packet.nfrags = n;
    return off;
}

/* stream_plan plans st's next packet for path p; 0 when it has none. */
static int
stream_plan(atb_sengine *e, sstream *st, spath *p, atb_sout *out)
{
    int datagram = !(p->flags & ATB_SPATH_RELIABLE);
    if (datagram && p->inflight_units >= e->cfg.datagram_inflight) {
        return 0;
    }
    int64_t off;
    int64_t end;
    if (st->lhead != NULL) {
        srec *r = st->lhead;
        off = r->off;
        end = stream_cut(st, off, r->end, p->max_payload, out);
        out->plan_rec = r;
    } else if (st->sent_max < stream_send_end(st)) {
        off = st->sent_max;
        end = stream_cut(st, off, stream_send_end(st), p->max_payload, out);
        out->plan_rec = NULL;
    } else {
        return 0;
    }
    if (end == off) {
        return 0;
    }
    out->kind = ATB_SOUT_PACKET;
    out->packet.stream_id = st->id;
    out->packet.offset = off;
    if (st->reset_pending && off == st->acked) {
        out->packet.flags |= ATB_SPKT_RESET_OFFSET;
    }
    out->plan_stream = st;
    out->plan_end = end;
    return 1;
}

/* engine_plan_ack fills an acknowledgement of every stream that owes
 * one. */
static int
engine_plan_ack(atb_sengine *e, spath *p, uint64_t now, atb_sout *out)
{
    if (!e->ack_now && now < e->ack_deadline) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < e->nstreams && n < ATB_SACK_MAX; i++) {
        sstream *st = e->streams[i];
        if (!st->ack_pending) {
            continue;
        }
        int64_t fin = st->fin_at >= 0 && st->rob.next == st->fin_at ? 1 : 0;
        out->acks[n].stream_id = st->id;
        out->acks[n].ack_offset = st->rob.next + fin;
        out->acks[n].received_max =
            (st->rob.max_end > st->rob.next ? st->rob.max_end : st->rob.next) +
            fin;
        n++;
    }
    if (n == 0) {
        e->ack_now = 0;
        e->ack_deadline = UINT64_MAX;
        return 0;
    }
    out->kind = ATB_SOUT_ACK;
    out->nacks = n;
    out->echo_timepoint_us = 0;
    out->ack_delay_us = 0;
    if (p->last_rx_tp > 0) {
        out->echo_timepoint_us = p->last_rx_tp;
        out->ack_delay_us =
            now > p->last_rx_us ? (int64_t)(now - p->last_rx_us) : 0;
    }
    return 1;
}

int
atb_sengine_write(atb_sengine *e, uint32_t path, uint64_t now_us, atb_sout *out)
{
    spath *p = engine_path(e, path);
    if (p == NULL) {
        return 0;
    }
    if (engine_plan_ack(e, p, now_us, out)) {
        return 1;
    }
    if (e->spare == NULL && (e->spare = atb_malloc(sizeof(srec))) == NULL) {
        return ATBUS_ENOMEM;
    }
    /* Control streams (negative ids) first, in id order. */
    size_t first_user = engine_stream_index(e, 0);
    for (size_t i = 0; i < first_user; i++) {
        if (stream_plan(e, e->streams[i], p, out)) {
            return 1;
        }
    }
    size_t users = e->nstreams - first_user;
    size_t start =
        e->rr >= first_user && e->rr < e->nstreams ? e->rr - first_user : 0;
    for (size_t k = 0; k < users; k++) {
        size_t i = first_user + (start + k) % users;
        if (stream_plan(e, e->streams[i], p, out)) {
            return 1;
        }
    }
    return 0;
}

/* rec_insert_before puts a new range before `before` (NULL: at the tail)
 * in st's list. */
static srec *
rec_insert_before(atb_sengine *e, sstream *st, srec *before, int64_t off,
                  int64_t end)
{
    srec *r = e->spare;
    if (r != NULL) {
        e->spare = NULL;
        memset(r, 0, sizeof(*r));
    } else if ((r = atb_calloc(1, sizeof(*r))) == NULL) {
        return NULL;
    }
    r->st = st;
    r->off = off;
    r->end = end;
    r->snext = before;
    r->sprev = before != NULL ? before->sprev : st->rtail;
    if (r->sprev != NULL) {
        r->sprev->snext = r;
    } else {
        st->rhead = r;
    }
    if (before != NULL) {
        before->sprev = r;
    } else {
        st->rtail = r;
    }
    return r;
}

static void
rec_send(atb_sengine *e, spath *p, srec *r, uint64_t now)
{
    r->state = REC_INFLIGHT;
    r->path = p->id;
    r->seq = ++e->next_seq;
    r->sent_us = now;
    if (!(p->flags & ATB_SPATH_RELIABLE)) {
        r->on_path_list = 1;
        r->oprev = p->tail;
        r->onext = NULL;
        if (p->tail != NULL) {
            p->tail->onext = r;
        } else {
            p->head = r;
        }
        p->tail = r;
        p->inflight_units += (size_t)(r->end - r->off);
    }
}

void
atb_sengine_commit(atb_sengine *e, uint32_t path, uint64_t now_us,
                   atb_sout *out)
{
    spath *p = engine_path(e, path);
    if (p == NULL) {
        return;
    }
    if (out->kind == ATB_SOUT_ACK) {
        for (size_t i = 0; i < out->nacks; i++) {
            sstream *st = engine_stream_find(e, out->acks[i].stream_id);
            if (st != NULL) {
                st->ack_pending = 0;
                st->acked_reported = out->acks[i].ack_offset;
            }
        }
        e->unacked_packets = 0;
        e->ack_now = 0;
        e->ack_deadline = UINT64_MAX;
        for (size_t i = 0; i < e->nstreams; i++) {
            if (e->streams[i]->ack_pending) {
                e->ack_now = 1; /* more than one frame's worth */
                break;
            }
        }
        p->last_rx_tp = 0;
        p->stats.acks_out++;
        return;
    }
    sstream *st = out->plan_stream;
    int64_t off = out->packet.offset;
    int64_t end = out->plan_end;
    srec *lost = out->plan_rec;
    srec *r;
    if (lost != NULL) {
        if (end < lost->end) {
            r = rec_insert_before(e, st, lost, off, end);
            if (r == NULL) {
                return; /* cannot happen: write reserved e->spare */
            }
            lost->off = end;
        } else {
            rec_lost_unlink(st, lost);
            r = lost;
        }
        p->stats.retransmissions++;
        st->stats.retransmitted_units += (uint64_t)(end - off);
        rec_send(e, p, r, now_us);
    } else if ((p->flags & ATB_SPATH_RELIABLE) && st->rtail != NULL &&
               st->rtail->end == off && st->rtail->state == REC_INFLIGHT &&
               st->rtail->path == p->id) {
        /* A reliable path loses nothing while it lives: one range per
         * run of packets is enough to resend it if it dies. */
        st->rtail->end = end;
        st->sent_max = end;
    } else {
        r = rec_insert_before(e, st, NULL, off, end);
        if (r == NULL) {
            return; /* cannot happen: write reserved e->spare */
        }
        rec_send(e, p, r, now_us);
        st->sent_max = end;
    }
    p->stats.packets_out++;
    p->stats.fragments_out += out->packet.nfrags;
    p->stats.bytes_out += out->payload;
    if (st->id >= 0) {
        size_t first_user = engine_stream_index(e, 0);
        size_t users = e->nstreams - first_user;
        size_t idx = engine_stream_index(e, st->id);
        e->rr = users != 0 ? first_user + (idx - first_user + 1) % users : 0;
    }
}

/* ---- receiving ---- */

static void
engine_deliver(const uint8_t *data, size_t len, void *arg)
{
    void **ctx = arg;
    atb_sengine *e = ctx[0];
    sstream *st = ctx[1];
    st->stats.messages_in++;
    st->stats.bytes_in += len;
    e->cbs.on_message(st->id, data, len, e->arg);
}

static void
engine_ack_owed(atb_sengine *e, spath *p, int now_flag, uint64_t now)
{
    unsigned every = (p->flags & ATB_SPATH_RELIABLE)
                         ? e->cfg.ack_every_reliable
                         : e->cfg.ack_every_datagram;
    e->unacked_packets++;
    if (now_flag || e->unacked_packets >= every) {
        e->ack_now = 1;
    } else if (e->ack_deadline == UINT64_MAX) {
        e->ack_deadline = now + e->cfg.ack_delay_us;
    }
}

static void
stream_check_end(atb_sengine *e, sstream *st)
{
    if (!st->recv_done && st->fin_at >= 0 && st->rob.next == st->fin_at) {
        st->recv_done = 1;
        if (e->cbs.on_stream_end != NULL) {
            e->cbs.on_stream_end(st->id, e->arg);
        }
    }
}

int
atb_sengine_on_packet(atb_sengine *e, uint32_t path, const atb_spacket *pkt,
                      uint64_t now_us)
{
    spath *p = engine_path(e, path);
    if (p == NULL || pkt->offset < 0 || pkt->offset > ENGINE_MAX_OFFSET) {
        return ATBUS_EFRAME_INVALID;
    }
    sstream *st = engine_stream_find(e, pkt->stream_id);
    if (st == NULL) {
        if (e->nstreams >= ENGINE_MAX_STREAMS) {
            return ATBUS_EFRAME_INVALID;
        }
        st = engine_stream_get(e, pkt->stream_id);
        if (st == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    if (!st->rob_open) {
        atb_rob_init(&st->rob, 0,
                     e->cfg.recv_window != 0 ? e->cfg.recv_window
                                             : e->cfg.stream_window,
                     e->cfg.max_message);
        st->rob_open = 1;
    }
    p->stats.packets_in++;
    p->stats.fragments_in += pkt->nfrags;
    if (pkt->timepoint_us > 0) {
        p->last_rx_tp = pkt->timepoint_us;
        p->last_rx_us = now_us;
    }
    void *ctx[2] = {e, st};
    int rc;
    int out_of_order = 0;
    if ((pkt->flags & ATB_SPKT_RESET_OFFSET) && pkt->offset > st->rob.next) {
        rc = atb_rob_skip_to(&st->rob, pkt->offset, engine_deliver, ctx);
        if (rc != ATBUS_OK) {
            return rc == ATBUS_ENOMEM ? rc : ATBUS_EFRAME_INVALID;
        }
        out_of_order = 1;
    }
    int64_t off = pkt->offset;
    for (size_t i = 0; i < pkt->nfrags; i++) {
        const atb_sfrag *f = &pkt->frags[i];
        int64_t units = (int64_t)f->len + (f->has_more ? 0 : 1);
        if (st->fin_at >= 0 && off + units > st->fin_at) {
            return ATBUS_EFRAME_INVALID; /* data after the FIN */
        }
        if (off != st->rob.next) {
            out_of_order = 1;
        }
        size_t before = (size_t)st->rob.dup_units;
        rc = atb_rob_push(&st->rob, off, f->data, f->len, !f->has_more,
                          engine_deliver, ctx);
        if (rc != ATBUS_OK) {
            return rc == ATBUS_ENOMEM ? rc : ATBUS_EFRAME_INVALID;
        }
        if ((size_t)st->rob.dup_units != before) {
            out_of_order = 1; /* a resend: the peer may miss our ack */
        }
        p->stats.bytes_in += f->len;
        off += units;
    }
    if (pkt->flags & ATB_SPKT_FINISH_STREAM) {
        if (st->fin_at >= 0 && st->fin_at != off) {
            return ATBUS_EFRAME_INVALID;
        }
        st->fin_at = off;
        out_of_order = 1;
    }
    st->stats.dup_units = st->rob.dup_units;
    st->stats.refused_units = st->rob.refused_units;
    st->ack_pending = 1;
    stream_check_end(e, st);
    engine_ack_owed(e, p, out_of_order || st->rob.head != NULL, now_us);
    return ATBUS_OK;
}

/* stream_acked drops what the peer acknowledged below ack. */
static void
stream_acked(atb_sengine *e, sstream *st, int64_t ack)
{
    if (ack <= st->acked) {
        return;
    }
    st->acked = ack;
    while (st->rhead != NULL && st->rhead->end <= ack) {
        rec_free(e, st->rhead);
    }
    if (st->rhead != NULL && st->rhead->off < ack) {
        srec *r = st->rhead;
        spath *p = r->on_path_list ? engine_path(e, r->path) : NULL;
        if (p != NULL) {
            p->inflight_units -= (size_t)(ack - r->off);
        }
        r->off = ack;
    }
    /* The current message stays whole: a peer that loses its state gets
     * it again from its start. */
    int64_t keep = ack <= st->buf.end ? ack : st->buf.end;
    atb_sendbuf_release(&st->buf, atb_sendbuf_boundary(&st->buf, keep));
    if (st->fin_offset >= 0 && ack > st->fin_offset) {
        st->send_done = 1;
    }
}

/* path_detect_loss declares lost the datagrams of p that later ones
 * overtook by more than the reordering allowance. */
static void
path_detect_loss(atb_sengine *e, spath *p)
{
    while (p->head != NULL &&
           p->head->seq + ENGINE_REORDER_PACKETS <= p->largest_received_seq) {
        p->stats.losses++;
        rec_mark_lost(e, p->head);
    }
}

static int
engine_on_stream_ack(atb_sengine *e, const atb_sack *a)
{
    sstream *st = engine_stream_find(e, a->stream_id);
    if (st == NULL) {
        return ATBUS_OK; /* an old ack of a stream already gone */
    }
    if (a->ack_offset > st->sent_max || a->received_max > st->sent_max ||
        a->ack_offset < 0) {
        return ATBUS_EFRAME_INVALID;
    }
    if (st->reset_pending && a->ack_offset >= st->acked) {
        st->reset_pending = 0;
    }
    stream_acked(e, st, a->ack_offset);
    /* The range that ends exactly at received_max arrived: ranges of the
     * same path sent before it are overtaken. */
    if (a->received_max > st->acked) {
        srec *r = st->rtail;
        while (r != NULL && r->end > a->received_max) {
            r = r->sprev;
        }
        if (r != NULL && r->end == a->received_max &&
            r->state == REC_INFLIGHT && r->on_path_list) {
            spath *p = engine_path(e, r->path);
            rec_path_unlink(e, r);
            r->state = REC_RECEIVED;
            if (p != NULL && r->seq > p->largest_received_seq) {
                p->largest_received_seq = r->seq;
                path_detect_loss(e, p);
            }
        }
        /* The gap at the ack offset: resend it at once if something sent
         * after it on its path has arrived. */
        srec *h = st->rhead;
        if (h != NULL && h->off == st->acked && h->state == REC_INFLIGHT &&
            h->on_path_list) {
            spath *hp = engine_path(e, h->path);
            if (hp != NULL && h->seq < hp->largest_received_seq) {
                hp->stats.losses++;
                rec_mark_lost(e, h);
            }
        }
    }
    if (st->blocked &&
        (size_t)(st->buf.end - st->acked) + 1 < e->cfg.stream_window) {
        st->blocked = 0;
        if (e->cbs.on_writable != NULL) {
            e->cbs.on_writable(st->id, e->arg);
        }
    }
    return ATBUS_OK;
}

int
atb_sengine_on_ack(atb_sengine *e, uint32_t path, const atb_sack *acks,
                   size_t nacks, int64_t echo_timepoint_us,
                   int64_t ack_delay_us, uint64_t now_us)
{
    spath *p = engine_path(e, path);
    if (p == NULL) {
        return ATBUS_EFRAME_INVALID;
    }
    p->stats.acks_in++;
    if (echo_timepoint_us > 0 && ack_delay_us >= 0 &&
        (uint64_t)echo_timepoint_us <= now_us) {
        int64_t rtt =
            (int64_t)(now_us - (uint64_t)echo_timepoint_us) - ack_delay_us;
        atb_rtt_sample(&p->stats.rtt, rtt > 0 ? rtt : 0);
        if ((uint64_t)ack_delay_us > e->max_ack_delay_seen &&
            (uint64_t)ack_delay_us <= e->cfg.rto_max_us) {
            e->max_ack_delay_seen = (uint64_t)ack_delay_us;
        }
    }
    for (size_t i = 0; i < nacks; i++) {
        int rc = engine_on_stream_ack(e, &acks[i]);
        if (rc != ATBUS_OK) {
            return rc;
        }
    }
    /* Progress resets the backoff of every path. */
    for (size_t i = 0; i < e->npaths; i++) {
        e->paths[i].rto_backoff = 0;
    }
    return ATBUS_OK;
}

void
atb_sengine_rtt_sample(atb_sengine *e, uint32_t path, int64_t rtt_us)
{
    spath *p = engine_path(e, path);
    if (p != NULL) {
        atb_rtt_sample(&p->stats.rtt, rtt_us);
    }
}

/* ---- time ---- */

static uint64_t
path_rto(const atb_sengine *e, const spath *p)
{
    uint64_t rto =
        atb_rtt_rto(&p->stats.rtt, e->max_ack_delay_seen, e->cfg.rto_initial_us,
                    e->cfg.rto_min_us, e->cfg.rto_max_us);
    unsigned shift = p->rto_backoff < 16 ? p->rto_backoff : 16;
    rto <<= shift;
    return rto < e->cfg.rto_max_us ? rto : e->cfg.rto_max_us;
}

/* stream_stall_deadline: a head range the peer seemed to receive but
 * never acknowledged is resent after two RTOs (the report was about its
 * last unit only). */
static uint64_t
stream_stall_deadline(const atb_sengine *e, const sstream *st)
{
    const srec *h = st->rhead;
    if (h == NULL || h->state != REC_RECEIVED) {
        return UINT64_MAX;
    }
    const spath *p = engine_path(e, h->path);
    uint64_t rto = p != NULL ? path_rto(e, p) : e->cfg.rto_min_us;
    return h->sent_us + 2 * rto;
}

uint64_t
atb_sengine_expiry(const atb_sengine *e)
{
    if (e->npaths == 0) {
        return UINT64_MAX; /* nothing can leave before a path comes */
    }
    uint64_t t = e->ack_deadline;
    if (e->ack_now) {
        t = 0;
    }
    for (size_t i = 0; i < e->npaths; i++) {
        const spath *p = &e->paths[i];
        if (p->head != NULL) {
            uint64_t d = p->head->sent_us + path_rto(e, p);
            if (d < t) {
                t = d;
            }
        }
    }
    for (size_t i = 0; i < e->nstreams; i++) {
        uint64_t d = stream_stall_deadline(e, e->streams[i]);
        if (d < t) {
            t = d;
        }
    }
    return t;
}

void
atb_sengine_on_expiry(atb_sengine *e, uint64_t now_us)
{
    if (e->ack_deadline <= now_us) {
        e->ack_now = 1;
    }
    for (size_t i = 0; i < e->npaths; i++) {
        spath *p = &e->paths[i];
        if (p->head != NULL && p->head->sent_us + path_rto(e, p) <= now_us) {
            /* Tail loss or a dead path: resend the oldest packet and wait
             * longer next time. */
            p->stats.rto_expiries++;
            p->stats.losses++;
            rec_mark_lost(e, p->head);
            p->rto_backoff++;
        }
    }
    for (size_t i = 0; i < e->nstreams; i++) {
        sstream *st = e->streams[i];
        if (stream_stall_deadline(e, st) <= now_us) {
            rec_mark_lost(e, st->rhead);
        }
    }
}

/* ---- peer state ---- */

void
atb_sengine_peer_reset(atb_sengine *e)
{
    for (size_t i = 0; i < e->nstreams; i++) {
        sstream *st = e->streams[i];
        if (st->rob_open) {
            atb_rob_fini(&st->rob);
            st->rob_open = 0;
        }
        st->fin_at = -1;
        st->recv_done = 0;
        st->ack_pending = 0;
        while (st->rhead != NULL) {
            rec_free(e, st->rhead);
        }
        /* Back to the first message not wholly acknowledged: the new
         * peer never saw its start. */
        int64_t from = atb_sendbuf_boundary(
            &st->buf, st->acked < st->buf.end ? st->acked : st->buf.end);
        if (st->acked > st->buf.end) {
            from = st->acked; /* only the FIN was left */
        }
        st->acked = from;
        if (st->sent_max > from) {
            srec *r = rec_insert_before(e, st, NULL, from, st->sent_max);
            if (r != NULL) {
                rec_mark_lost(e, r);
            } else {
                st->sent_max = from; /* resent as new data instead */
            }
        }
        st->reset_pending = 1;
    }
    e->unacked_packets = 0;
    e->ack_now = 0;
    e->ack_deadline = UINT64_MAX;
}

void
atb_sengine_abandon(atb_sengine *e, uint64_t *messages)
{
    uint64_t m = 0;
    for (size_t i = 0; i < e->nstreams; i++) {
        sstream *st = e->streams[i];
        if (st->id < 0 || stream_send_end(st) == st->acked) {
            continue;
        }
        m += atb_sendbuf_messages_from(&st->buf, st->acked);
        while (st->rhead != NULL) {
            rec_free(e, st->rhead);
        }
        int64_t end = stream_send_end(st);
        atb_sendbuf_release(&st->buf, st->buf.end);
        st->acked = end;
        st->sent_max = end;
        if (st->fin_offset >= 0) {
            st->send_done = 1;
        }
        /* The next packet starts at `acked`: it tells the peer to skip. */
        st->reset_pending = 1;
        if (st->blocked) {
            st->blocked = 0;
            if (e->cbs.on_writable != NULL) {
                e->cbs.on_writable(st->id, e->arg);
            }
        }
    }
    *messages = m;
}

void
atb_sengine_unacked(const atb_sengine *e, uint64_t *messages, uint64_t *units)
{
    uint64_t m = 0, u = 0;
    for (size_t i = 0; i < e->nstreams; i++) {
        const sstream *st = e->streams[i];
        if (st->id < 0) {
            continue;
        }
        m += atb_sendbuf_messages_from(&st->buf, st->acked);
        u += (uint64_t)(stream_send_end(st) - st->acked);
    }
    *messages = m;
    *units = u;
}

int
atb_sengine_stream_stats(const atb_sengine *e, int64_t stream_id,
                         atb_sstream_stats *out)
{
    const sstream *st = engine_stream_find(e, stream_id);
    if (st == NULL) {
        return ATBUS_ENOTFOUND;
    }
    *out = st->stats;
    out->acked = st->acked;
    out->queued_units = stream_send_end(st) - st->acked;
    out->messages_unacked = atb_sendbuf_messages_from(&st->buf, st->acked);
    out->received = st->rob_open ? st->rob.next : 0;
    return ATBUS_OK;
}

int
atb_sengine_path_stats(const atb_sengine *e, uint32_t path,
                       atb_spath_stats *out)
{
    const spath *p = engine_path(e, path);
    if (p == NULL) {
        return ATBUS_ENOTFOUND;
    }
    *out = p->stats;
    return ATBUS_OK;
}
