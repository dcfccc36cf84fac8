/*
 * A small seeded PRNG (splitmix64) for jitter and sampling: fast,
 * reproducible from its seed, not for secrets (crypto/ has those).
 */
#ifndef ATB_COMMON_RAND_H
#define ATB_COMMON_RAND_H

#include <stdint.h>

/* atb_rand_next advances *state and returns 64 random bits. */
static inline uint64_t
atb_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* atb_rand_below returns a number in [0, n) (n > 0); the modulo bias is
 * below 2^-32 for the n used here (delays in microseconds). */
static inline uint64_t
atb_rand_below(uint64_t *state, uint64_t n)
{
    return atb_rand_next(state) % n;
}

#endif /* ATB_COMMON_RAND_H */
