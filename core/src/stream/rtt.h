/*
 * Round-trip time of one connection: smoothed mean and variance from
 * samples (ping/pong and timepoints echoed in acknowledgements), the
 * retransmission timeout derived from them, and the histogram DESIGN
 * §12 asks for.
 */
#ifndef ATB_STREAM_RTT_H
#define ATB_STREAM_RTT_H

#include <stdint.h>

/* Histogram upper bounds in milliseconds: 0-60 by 15, 60-180 by 30,
 * 180-320 by 60 (the last step is 20), 320-800 by 120, 800-2000 by 300,
 * then one bucket for everything above. */
#define ATB_RTT_BUCKETS 20
extern const uint32_t atb_rtt_bucket_ms[ATB_RTT_BUCKETS - 1];

typedef struct atb_rtt {
    int64_t srtt_us;   /* smoothed; -1 before the first sample */
    int64_t rttvar_us; /* mean deviation */
    int64_t latest_us;
    int64_t min_us;
    uint64_t samples;
    double sum_us; /* for the mean and variance over all samples */
    double sum_sq_us;
    uint64_t buckets[ATB_RTT_BUCKETS];
} atb_rtt;

/* atb_rtt_init starts with no samples. */
void atb_rtt_init(atb_rtt *r);

/* atb_rtt_sample adds one measurement (negative ones are ignored). */
void atb_rtt_sample(atb_rtt *r, int64_t rtt_us);

/*
 * atb_rtt_rto returns the retransmission timeout: 1.25 x the smoothed
 * RTT plus four deviations and the peer's ack delay, clamped to
 * [min_us, max_us]; initial_us before any sample. The deviation term
 * keeps a jittery link from firing early; on a steady one it is near 0.
 */
uint64_t atb_rtt_rto(const atb_rtt *r, uint64_t ack_delay_us,
                     uint64_t initial_us, uint64_t min_us, uint64_t max_us);

#endif /* ATB_STREAM_RTT_H */
