#include "stream/rtt.h"

#include <string.h>

const uint32_t atb_rtt_bucket_ms[ATB_RTT_BUCKETS - 1] = {
    15,  30,  45,  60,  90,  120,  150,  180,  240,  300,
    320, 440, 560, 680, 800, 1100, 1400, 1700, 2000,
};

void
atb_rtt_init(atb_rtt *r)
{
    memset(r, 0, sizeof(*r));
    r->srtt_us = -1;
    r->min_us = -1;
}

void
atb_rtt_sample(atb_rtt *r, int64_t rtt_us)
{
    if (rtt_us < 0) {
        return;
    }
    r->latest_us = rtt_us;
    if (r->min_us < 0 || rtt_us < r->min_us) {
        r->min_us = rtt_us;
    }
    if (r->srtt_us < 0) {
        r->srtt_us = rtt_us;
        r->rttvar_us = rtt_us / 2;
    } else {
        /* RFC 6298 gains: 1/8 for the mean, 1/4 for the deviation. */
        int64_t dev = r->srtt_us - rtt_us;
        if (dev < 0) {
            dev = -dev;
        }
        r->rttvar_us = (3 * r->rttvar_us + dev) / 4;
        r->srtt_us = (7 * r->srtt_us + rtt_us) / 8;
    }
    r->samples++;
    r->sum_us += (double)rtt_us;
    r->sum_sq_us += (double)rtt_us * (double)rtt_us;
    size_t b = 0;
    while (b < ATB_RTT_BUCKETS - 1 &&
           (uint64_t)rtt_us >= (uint64_t)atb_rtt_bucket_ms[b] * 1000u) {
        b++;
    }
    r->buckets[b]++;
}

uint64_t
atb_rtt_rto(const atb_rtt *r, uint64_t ack_delay_us, uint64_t initial_us,
            uint64_t min_us, uint64_t max_us)
{
    uint64_t rto = initial_us;
    if (r->srtt_us >= 0) {
        rto = (uint64_t)r->srtt_us + (uint64_t)r->srtt_us / 4 +
              4 * (uint64_t)r->rttvar_us + ack_delay_us;
    }
    if (rto < min_us) {
        rto = min_us;
    }
    if (rto > max_us) {
        rto = max_us;
    }
    return rto;
}
