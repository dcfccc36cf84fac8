/*
 * The monotonic clock every layer reads (microseconds), so deadlines from
 * the loop, the shm ring and later the engines' `now` share one source.
 */
#ifndef ATB_COMMON_CLOCK_H
#define ATB_COMMON_CLOCK_H

#include <stdint.h>

/* atb_clock_us returns CLOCK_MONOTONIC in microseconds. */
uint64_t atb_clock_us(void);

#endif /* ATB_COMMON_CLOCK_H */
