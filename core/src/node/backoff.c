/* Exponential backoff with equal jitter (see backoff.h). */
#include "node/backoff.h"

#include "common/rand.h"

uint64_t
atb_backoff_delay_us(uint32_t attempt, uint64_t min_us, uint64_t max_us,
                     uint64_t *rng)
{
    uint64_t d = min_us;
    for (uint32_t i = 0; i < attempt && d < max_us; i++) {
        d = d > max_us / 2 ? max_us : d * 2;
    }
    if (d > max_us) {
        d = max_us;
    }
    uint64_t half = d / 2;
    return half + atb_rand_below(rng, d - half + 1);
}
