/* Monotonic time in microseconds (see clock.h). */
#define _POSIX_C_SOURCE 200809L
#include "common/clock.h"

#include <time.h>

uint64_t
atb_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
