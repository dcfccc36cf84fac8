#include "simnet.h"

#include <atbus/error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rand.h"
#include "stream/codec.h"
#include "wire/frame.h"
#include "wire/message.h"

#define SIM_NSTREAMS (SIM_MAX_STREAMS + 1) /* slot 0 is stream -1 */

typedef struct sim_frame {
    uint64_t at;
    uint64_t order; /* ties keep send order */
    int to;
    size_t path;
    size_t len;
    uint8_t bytes[];
} sim_frame;

typedef struct sim_stream {
    uint64_t to_send;
    uint64_t sent;        /* handed to the engine */
    uint64_t expect_next; /* receiver: index of the next message */
    uint64_t received;
    uint64_t first_received;
    int finish;
    int finished;
    int blocked;
    int ended; /* receiver: on_stream_end seen */
} sim_stream;

typedef struct sim_side {
    sim *s;
    int side;
    atb_sengine *eng;
    sim_stream streams[SIM_NSTREAMS];
    sim_side_stats stats;
} sim_side;

struct sim {
    uint64_t seed;
    uint64_t rng;
    atb_sengine_config cfg;
    sim_path_spec spec[SIM_MAX_PATHS];
    size_t npaths;
    int alive[SIM_MAX_PATHS];
    uint64_t kill_at[SIM_MAX_PATHS];
    uint64_t link_free[2][SIM_MAX_PATHS];
    uint64_t link_last[2][SIM_MAX_PATHS];
    sim_side sides[2];
    uint64_t restart_at;
    int restart_side;
    size_t small_max;
    size_t large_max;
    unsigned large_every;
    sim_frame **heap;
    size_t nheap;
    size_t heap_cap;
    uint64_t order;
    uint64_t now;
};

/* ---- messages ---- */

static uint64_t
sim_mix(uint64_t x)
{
    return atb_rand_next(&x);
}

static size_t
slot_of(int64_t stream)
{
    return (size_t)(stream + 1);
}

static uint64_t
msg_hash(const sim *s, int from, int64_t stream, uint64_t i)
{
    return sim_mix(
        s->seed ^
        sim_mix((uint64_t)from * 7919u + (uint64_t)(stream + 2) * 104729u) ^
        sim_mix(i));
}

static size_t
msg_len(const sim *s, int from, int64_t stream, uint64_t i)
{
    uint64_t h = msg_hash(s, from, stream, i);
    uint64_t h2 = sim_mix(h);
    if (s->large_every != 0 && h % s->large_every == 0) {
        return (size_t)(h2 % (s->large_max + 1));
    }
    return (size_t)(h2 % (s->small_max + 1));
}

static uint8_t
msg_byte(uint64_t h, size_t j)
{
    return (uint8_t)((h >> ((j % 8) * 8)) + j * 131u);
}

static void
msg_fill(const sim *s, int from, int64_t stream, uint64_t i, uint8_t *buf,
         size_t len)
{
    uint64_t h = msg_hash(s, from, stream, i);
    for (size_t j = 0; j < len; j++) {
        buf[j] = msg_byte(h, j);
    }
}

static void
sim_on_message(int64_t stream, const uint8_t *data, size_t len, void *arg)
{
    sim_side *sd = arg;
    sim *s = sd->s;
    if (stream < -1 || stream >= SIM_MAX_STREAMS) {
        sd->stats.bad++;
        return;
    }
    sim_stream *st = &sd->streams[slot_of(stream)];
    uint64_t i = st->expect_next++;
    if (st->received == 0) {
        st->first_received = i;
    }
    st->received++;
    sd->stats.messages_checked++;
    int from = 1 - sd->side;
    if (len != msg_len(s, from, stream, i)) {
        if (getenv("SIM_DEBUG") != NULL) {
            fprintf(stderr, "side %d: stream %lld message %llu: %zu bytes\n",
                    sd->side, (long long)stream, (unsigned long long)i, len);
        }
        sd->stats.bad++;
        return;
    }
    uint64_t h = msg_hash(s, from, stream, i);
    for (size_t j = 0; j < len; j++) {
        if (data[j] != msg_byte(h, j)) {
            sd->stats.bad++;
            return;
        }
    }
}

static void
sim_on_writable(int64_t stream, void *arg)
{
    sim_side *sd = arg;
    sd->stats.writable_calls++;
    if (stream >= -1 && stream < SIM_MAX_STREAMS) {
        sd->streams[slot_of(stream)].blocked = 0;
    }
}

static void
sim_on_stream_end(int64_t stream, void *arg)
{
    sim_side *sd = arg;
    sd->stats.stream_ends++;
    if (stream >= -1 && stream < SIM_MAX_STREAMS) {
        sd->streams[slot_of(stream)].ended = 1;
    }
}

static const atb_sengine_cbs sim_cbs = {
    .on_message = sim_on_message,
    .on_writable = sim_on_writable,
    .on_stream_end = sim_on_stream_end,
};

/* ---- the event heap ---- */

static int
frame_before(const sim_frame *a, const sim_frame *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static int
heap_push(sim *s, sim_frame *f)
{
    if (s->nheap == s->heap_cap) {
        size_t cap = s->heap_cap != 0 ? s->heap_cap * 2 : 256;
        sim_frame **h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL) {
            return -1;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->nheap++;
    while (i > 0 && frame_before(f, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = f;
    return 0;
}

static sim_frame *
heap_pop(sim *s)
{
    sim_frame *top = s->heap[0];
    sim_frame *last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap) {
            break;
        }
        if (c + 1 < s->nheap && frame_before(s->heap[c + 1], s->heap[c])) {
            c++;
        }
        if (!frame_before(s->heap[c], last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* ---- links ---- */

static double
sim_uniform(sim *s)
{
    return (double)(atb_rand_next(&s->rng) >> 11) / (double)(1ull << 53);
}

static void
link_enqueue(sim *s, int to, size_t k, const uint8_t *bytes, size_t len,
             uint64_t at)
{
    sim_frame *f = malloc(sizeof(*f) + len);
    if (f == NULL) {
        return;
    }
    f->at = at;
    f->order = s->order++;
    f->to = to;
    f->path = k;
    f->len = len;
    memcpy(f->bytes, bytes, len);
    if (heap_push(s, f) != 0) {
        free(f);
    }
}

/* link_send puts a frame from side `from` on path k through its faults. */
static void
link_send(sim *s, int from, size_t k, const uint8_t *bytes, size_t len)
{
    const sim_path_spec *sp = &s->spec[k];
    const sim_faults *ft = &sp->faults;
    int to = 1 - from;
    uint64_t start = s->now;
    if (sp->bytes_per_us > 0) {
        if (s->link_free[from][k] > start) {
            start = s->link_free[from][k];
        }
        start += (uint64_t)((double)len / sp->bytes_per_us);
        s->link_free[from][k] = start;
    }
    uint64_t at = start + ft->delay_us;
    if (sp->reliable) {
        if (at < s->link_last[from][k]) {
            at = s->link_last[from][k];
        }
        s->link_last[from][k] = at;
        link_enqueue(s, to, k, bytes, len, at);
        return;
    }
    if ((s->now >= ft->part_start && s->now < ft->part_end) ||
        sim_uniform(s) < ft->loss) {
        s->sides[from].stats.frames_lost++;
        return;
    }
    if (ft->jitter_us > 0) {
        at += atb_rand_below(&s->rng, ft->jitter_us + 1);
    }
    if (sim_uniform(s) < ft->reorder) {
        at += ft->extra_us;
    }
    uint8_t tmp[65536];
    const uint8_t *out = bytes;
    if (sim_uniform(s) < ft->corrupt && len <= sizeof(tmp)) {
        memcpy(tmp, bytes, len);
        tmp[atb_rand_below(&s->rng, len)] ^=
            (uint8_t)(1u << atb_rand_below(&s->rng, 8));
        out = tmp;
    }
    link_enqueue(s, to, k, out, len, at);
    if (sim_uniform(s) < ft->duplicate) {
        link_enqueue(s, to, k, out, len,
                     at + 1 + atb_rand_below(&s->rng, ft->delay_us + 1));
    }
}

/* ---- sides ---- */

static int
side_open(sim *s, int side)
{
    sim_side *sd = &s->sides[side];
    sd->s = s;
    sd->side = side;
    if (atb_sengine_new(&sd->eng, &s->cfg, &sim_cbs, sd) != ATBUS_OK) {
        return -1;
    }
    for (size_t k = 0; k < s->npaths; k++) {
        if (!s->alive[k]) {
            continue;
        }
        unsigned flags = s->spec[k].reliable ? ATB_SPATH_RELIABLE : 0;
        /* Room for the frame header, names and packet fields. */
        if (atb_sengine_path_add(sd->eng, (uint32_t)k, s->spec[k].mtu - 48,
                                 flags) != ATBUS_OK) {
            return -1;
        }
    }
    return 0;
}

static void
side_feed(sim *s, sim_side *sd)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t slot = 0; slot < SIM_NSTREAMS; slot++) {
        sim_stream *st = &sd->streams[slot];
        int64_t id = (int64_t)slot - 1;
        while (st->sent < st->to_send && !st->blocked) {
            size_t len = msg_len(s, sd->side, id, st->sent);
            if (len > cap) {
                free(buf);
                cap = len;
                buf = malloc(cap);
                if (buf == NULL) {
                    return;
                }
            }
            msg_fill(s, sd->side, id, st->sent, buf, len);
            int rc = atb_sengine_send(sd->eng, id, buf, len);
            if (rc == ATBUS_EWOULDBLOCK) {
                st->blocked = 1;
                sd->stats.would_block++;
                break;
            }
            if (rc != ATBUS_OK) {
                if (getenv("SIM_DEBUG") != NULL) {
                    fprintf(stderr, "side %d: send refused: %s\n", sd->side,
                            atbus_err_name(rc));
                }
                sd->stats.bad++;
                break;
            }
            st->sent++;
        }
        if (st->finish && !st->finished && st->sent == st->to_send) {
            if (atb_sengine_finish(sd->eng, id) == ATBUS_OK) {
                st->finished = 1;
            }
        }
    }
    free(buf);
}

/* side_pump sends what the engine plans, one frame per path in turn so a
 * stream spreads over all of them, and leaves a path alone while its
 * link has more than a millisecond queued (the transport's backpressure). */
static void
side_pump(sim *s, sim_side *sd)
{
    int more = 1;
    while (more) {
        more = 0;
        for (size_t k = 0; k < s->npaths; k++) {
            if (!s->alive[k] || s->link_free[sd->side][k] > s->now + 1000) {
                continue;
            }
            atb_sout out;
            atb_frame_iov fi;
            if (atb_sengine_write(sd->eng, (uint32_t)k, s->now, &out) != 1) {
                continue;
            }
            more = 1;
            if (out.kind == ATB_SOUT_PACKET) {
                out.packet.timepoint_us = (int64_t)s->now + 1;
            }
            if (atb_scodec_encode(&out, "a", "b", 0, &fi) != ATBUS_OK ||
                fi.len > s->spec[k].mtu) {
                if (getenv("SIM_DEBUG") != NULL) {
                    fprintf(stderr, "side %d: frame of %zu bytes > mtu\n",
                            sd->side, fi.len);
                }
                sd->stats.bad++;
                return;
            }
            uint8_t *flat = malloc(fi.len);
            if (flat == NULL) {
                return;
            }
            size_t at = 0;
            for (int i = 0; i < fi.iovcnt; i++) {
                memcpy(flat + at, fi.iov[i].iov_base, fi.iov[i].iov_len);
                at += fi.iov[i].iov_len;
            }
            atb_sengine_commit(sd->eng, (uint32_t)k, s->now, &out);
            link_send(s, sd->side, k, flat, fi.len);
            free(flat);
        }
    }
}

static void
side_receive(sim *s, sim_side *sd, size_t k, const uint8_t *bytes, size_t len)
{
    atb_frame_view v;
    int rc = atb_frame_parse(bytes, len, 4u << 20, &v);
    if (rc != ATBUS_OK) {
        sd->stats.frames_dropped_hash++;
        return;
    }
    atb_pb_frame *msg;
    rc = atb_frame_message_unpack(v.message, v.message_len, &msg);
    if (rc != ATBUS_OK) {
        if (getenv("SIM_DEBUG") != NULL) {
            fprintf(stderr, "side %d: undecodable frame: %s\n", sd->side,
                    atbus_err_name(rc));
        }
        sd->stats.bad++;
        return;
    }
    if (msg->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET) {
        atb_pb_content *content;
        atb_sfrag frags[ATB_PACKET_MAX_FRAGS];
        atb_spacket pkt;
        rc = atb_scodec_packet(msg->packet, &content, frags, &pkt);
        if (rc == ATBUS_OK) {
            rc = atb_sengine_on_packet(sd->eng, (uint32_t)k, &pkt, s->now);
            atb_packet_content_free(content);
        }
    } else if (msg->body_case ==
               ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE) {
        atb_sack acks[ATB_PACKET_MAX_FRAGS];
        size_t n;
        rc = atb_scodec_ack(msg->acknowledge, acks, &n);
        if (rc == ATBUS_OK) {
            rc = atb_sengine_on_ack(sd->eng, (uint32_t)k, acks, n,
                                    msg->acknowledge->timepoint_microseconds,
                                    msg->acknowledge->ack_delay_microseconds,
                                    s->now);
        }
    }
    if (rc != ATBUS_OK) {
        if (getenv("SIM_DEBUG") != NULL) {
            fprintf(stderr, "side %d: input refused: %s\n", sd->side,
                    atbus_err_name(rc));
        }
        sd->stats.bad++;
    }
    atb_frame_message_free(msg);
}

/* ---- the run ---- */

sim *
sim_new(uint64_t seed, const atb_sengine_config *cfg,
        const sim_path_spec *paths, size_t npaths, size_t small_max,
        size_t large_max, unsigned large_every)
{
    sim *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->seed = seed;
    s->rng = seed ^ 0x5157a11cull;
    s->cfg = *cfg;
    s->npaths = npaths;
    memcpy(s->spec, paths, npaths * sizeof(*paths));
    for (size_t k = 0; k < npaths; k++) {
        s->alive[k] = 1;
        s->kill_at[k] = UINT64_MAX;
    }
    s->restart_at = UINT64_MAX;
    s->small_max = small_max;
    s->large_max = large_max;
    s->large_every = large_every;
    if (side_open(s, 0) != 0 || side_open(s, 1) != 0) {
        sim_free(s);
        return NULL;
    }
    return s;
}

void
sim_free(sim *s)
{
    if (s == NULL) {
        return;
    }
    atb_sengine_free(s->sides[0].eng);
    atb_sengine_free(s->sides[1].eng);
    for (size_t i = 0; i < s->nheap; i++) {
        free(s->heap[i]);
    }
    free(s->heap);
    free(s);
}

void
sim_queue(sim *s, int side, int64_t stream, uint64_t count)
{
    s->sides[side].streams[slot_of(stream)].to_send = count;
}

void
sim_finish_after(sim *s, int side, int64_t stream)
{
    s->sides[side].streams[slot_of(stream)].finish = 1;
}

void
sim_kill_path(sim *s, size_t k, uint64_t at_us)
{
    s->kill_at[k] = at_us;
}

void
sim_restart_side(sim *s, int side, uint64_t at_us)
{
    s->restart_side = side;
    s->restart_at = at_us;
}

static void
sim_drop_in_flight(sim *s, size_t path_or_all)
{
    size_t keep = 0;
    for (size_t i = 0; i < s->nheap; i++) {
        if (path_or_all == SIZE_MAX || s->heap[i]->path == path_or_all) {
            free(s->heap[i]);
        } else {
            s->heap[keep++] = s->heap[i];
        }
    }
    /* Re-heapify what is left. */
    size_t n = keep;
    s->nheap = 0;
    for (size_t i = 0; i < n; i++) {
        (void)heap_push(s, s->heap[i]);
    }
}

static void
sim_do_restart(sim *s)
{
    int side = s->restart_side;
    sim_side *sd = &s->sides[side];
    sim_side *other = &s->sides[1 - side];
    s->restart_at = UINT64_MAX;
    /* Every connection died with the process: nothing in flight
     * survives, and the old engine's state is gone. */
    sim_drop_in_flight(s, SIZE_MAX);
    atb_sengine_free(sd->eng);
    sd->eng = NULL;
    atb_sengine_peer_reset(other->eng);
    for (size_t slot = 0; slot < SIM_NSTREAMS; slot++) {
        int64_t id = (int64_t)slot - 1;
        sim_stream *mine = &sd->streams[slot];
        /* What the dead side had not delivered is gone with it. */
        mine->to_send = mine->sent = other->streams[slot].expect_next;
        mine->blocked = 0;
        /* It receives again from the first message the other side has
         * not had wholly acknowledged. */
        atb_sstream_stats st;
        if (atb_sengine_stream_stats(other->eng, id, &st) == ATBUS_OK) {
            mine->expect_next = other->streams[slot].sent - st.messages_unacked;
        }
        mine->received = 0;
    }
    if (side_open(s, side) != 0) {
        sd->stats.bad++;
    }
}

static int
sim_done(const sim *s)
{
    for (int side = 0; side < 2; side++) {
        const sim_side *sd = &s->sides[side];
        const sim_side *peer = &s->sides[1 - side];
        for (size_t slot = 0; slot < SIM_NSTREAMS; slot++) {
            const sim_stream *st = &sd->streams[slot];
            if (st->sent != st->to_send ||
                peer->streams[slot].expect_next != st->to_send ||
                (st->finish && !peer->streams[slot].ended)) {
                return 0;
            }
        }
        uint64_t m, u;
        atb_sengine_unacked(sd->eng, &m, &u);
        if (u != 0) {
            return 0;
        }
    }
    return 1;
}

int
sim_run(sim *s, uint64_t limit_us)
{
    while (s->now <= limit_us) {
        for (int side = 0; side < 2; side++) {
            side_feed(s, &s->sides[side]);
            side_pump(s, &s->sides[side]);
        }
        if (sim_done(s)) {
            return 1;
        }
        uint64_t next = UINT64_MAX;
        if (s->nheap > 0) {
            next = s->heap[0]->at;
        }
        for (int side = 0; side < 2; side++) {
            uint64_t t = atb_sengine_expiry(s->sides[side].eng);
            if (t < next) {
                next = t;
            }
        }
        for (size_t k = 0; k < s->npaths; k++) {
            if (s->alive[k] && s->kill_at[k] < next) {
                next = s->kill_at[k];
            }
            for (int side = 0; side < 2; side++) {
                uint64_t free_at = s->link_free[side][k];
                if (s->alive[k] && free_at > s->now + 1000 &&
                    free_at - 1000 < next) {
                    next = free_at - 1000; /* the link can take more */
                }
            }
        }
        if (s->restart_at < next) {
            next = s->restart_at;
        }
        if (next == UINT64_MAX) {
            return 0; /* nothing can happen any more */
        }
        s->now = next > s->now ? next : s->now + 1;
        for (size_t k = 0; k < s->npaths; k++) {
            if (s->alive[k] && s->kill_at[k] <= s->now) {
                s->alive[k] = 0;
                sim_drop_in_flight(s, k);
                atb_sengine_path_remove(s->sides[0].eng, (uint32_t)k);
                atb_sengine_path_remove(s->sides[1].eng, (uint32_t)k);
            }
        }
        if (s->restart_at <= s->now) {
            sim_do_restart(s);
        }
        while (s->nheap > 0 && s->heap[0]->at <= s->now) {
            sim_frame *f = heap_pop(s);
            if (s->alive[f->path]) {
                side_receive(s, &s->sides[f->to], f->path, f->bytes, f->len);
            }
            free(f);
        }
        for (int side = 0; side < 2; side++) {
            atb_sengine *e = s->sides[side].eng;
            if (atb_sengine_expiry(e) <= s->now) {
                atb_sengine_on_expiry(e, s->now);
            }
        }
    }
    return 0;
}

atb_sengine *
sim_engine(sim *s, int side)
{
    return s->sides[side].eng;
}

const sim_side_stats *
sim_stats(const sim *s, int side)
{
    return &s->sides[side].stats;
}

uint64_t
sim_now(const sim *s)
{
    return s->now;
}

uint64_t
sim_received(const sim *s, int side, int64_t stream)
{
    return s->sides[side].streams[slot_of(stream)].received;
}

uint64_t
sim_first_received(const sim *s, int side, int64_t stream)
{
    return s->sides[side].streams[slot_of(stream)].first_received;
}
