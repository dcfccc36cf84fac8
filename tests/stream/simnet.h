/*
 * A simulated network between two stream engines, for tests: virtual
 * time, and per path a link each way that loses, reorders, duplicates,
 * delays, corrupts and partitions frames, all drawn from one seeded PRNG
 * so a failing run replays exactly from its seed.
 *
 * Frames cross as bytes: the sender's planned frames are encoded
 * (stream/codec.h), faults act on the bytes, and the receiver parses,
 * checks the hash and decodes them as the node does. A corrupted frame
 * therefore fails its hash and is dropped, as on a real link.
 *
 * Each side sends numbered messages on its streams and checks what it
 * receives: message i of stream s has a length and bytes that are a
 * function of (seed, s, i), so order, content and exactly-once delivery
 * are verified without keeping copies.
 */
#ifndef ATB_TEST_SIMNET_H
#define ATB_TEST_SIMNET_H

#include <stddef.h>
#include <stdint.h>

#include "stream/engine.h"

#define SIM_MAX_PATHS 4
#define SIM_MAX_STREAMS 8

typedef struct sim_faults {
    double loss;      /* probability a frame is dropped */
    double reorder;   /* probability a frame is held back extra_us */
    double duplicate; /* probability a frame is delivered twice */
    double corrupt;   /* probability one byte of a frame is flipped */
    uint64_t delay_us;
    uint64_t jitter_us;  /* added uniformly in [0, jitter_us] */
    uint64_t extra_us;   /* hold-back of a reordered frame */
    uint64_t part_start; /* a partition: everything dropped in */
    uint64_t part_end;   /* [part_start, part_end) */
} sim_faults;

typedef struct sim_path_spec {
    size_t mtu;          /* frame bytes the link carries */
    int reliable;        /* in order, no faults but delay (a byte stream) */
    double bytes_per_us; /* 0: unlimited */
    sim_faults faults;
} sim_path_spec;

typedef struct sim_side_stats {
    uint64_t messages_checked;
    uint64_t bad; /* wrong order, content or length */
    uint64_t frames_dropped_hash;
    uint64_t frames_lost;
    uint64_t would_block;
    uint64_t writable_calls;
    uint64_t stream_ends;
} sim_side_stats;

typedef struct sim sim;

/*
 * sim_new builds two engines (side 0 and 1) with cfg and the given
 * paths, and a generator of message sizes: most in [0, small_max],
 * one in large_every in [0, large_max]. Returns NULL when out of memory.
 */
sim *sim_new(uint64_t seed, const atb_sengine_config *cfg,
             const sim_path_spec *paths, size_t npaths, size_t small_max,
             size_t large_max, unsigned large_every);
void sim_free(sim *s);

/* sim_queue sets how many messages side sends on stream (ids 0..7 are
 * user streams 0..7; -1 is a control stream). */
void sim_queue(sim *s, int side, int64_t stream, uint64_t count);

/* sim_run runs until every queued message is delivered and acknowledged
 * or virtual time passes limit_us; returns 1 when everything arrived. */
int sim_run(sim *s, uint64_t limit_us);

/* sim_kill_path removes path k on both sides at virtual time at_us;
 * frames in flight on it are lost. */
void sim_kill_path(sim *s, size_t k, uint64_t at_us);

/* sim_restart_side replaces side's engine with a fresh one at at_us (the
 * peer process restarted); the other side is told with peer_reset. */
void sim_restart_side(sim *s, int side, uint64_t at_us);

/* sim_finish_after finishes the stream once all its messages are queued. */
void sim_finish_after(sim *s, int side, int64_t stream);

/* Accessors. */
atb_sengine *sim_engine(sim *s, int side);
const sim_side_stats *sim_stats(const sim *s, int side);
uint64_t sim_now(const sim *s);
uint64_t sim_received(const sim *s, int side, int64_t stream);
uint64_t sim_first_received(const sim *s, int side, int64_t stream);

#endif /* ATB_TEST_SIMNET_H */
