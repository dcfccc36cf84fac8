/*
 * Redial delays: exponential backoff with jitter.
 *
 * The delay doubles per failed attempt from min to max; each delay is
 * drawn from [d/2, d] ("equal jitter"). Without jitter, every node that
 * lost the same relay would redial it in lock-step; with full jitter
 * ([0, d]) some would hammer it at once. Half-fixed keeps the schedule's
 * shape and still spreads the herd over half of each period.
 */
#ifndef ATB_NODE_BACKOFF_H
#define ATB_NODE_BACKOFF_H

#include <stdint.h>

/*
 * atb_backoff_delay_us returns the delay before redial number attempt
 * (0 = the first redial): with d = min(min_us * 2^attempt, max_us), a
 * value in [d/2, d], drawing the jitter from *rng. min_us <= max_us.
 */
uint64_t atb_backoff_delay_us(uint32_t attempt, uint64_t min_us,
                              uint64_t max_us, uint64_t *rng);

#endif /* ATB_NODE_BACKOFF_H */
