/*
 * The demo's message format: sequence and run number, then a pattern
 * derived from both, so a receiver can check every byte it gets. And the
 * clock and string functions every part of the demo uses.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "demo.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
demo_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* pattern_seed mixes run into the first byte so a message of another run
 * with the same sequence number does not pass as this one. */
static uint8_t
pattern_seed(uint32_t run, uint64_t seq)
{
    return (uint8_t)(seq * 131u + run * 17u);
}

void
demo_fill(uint8_t *buf, size_t len, uint32_t run, uint64_t seq)
{
    /* Both ends run on this machine, so host byte order is shared. */
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &run, 4);
    uint8_t seed = pattern_seed(run, seq);
    for (size_t i = DEMO_HEADER; i < len; i++) {
        buf[i] = (uint8_t)(seed + i);
    }
}

int
demo_parse(const uint8_t *buf, size_t len, uint32_t *run, uint64_t *seq)
{
    if (len < DEMO_HEADER) {
        return 0;
    }
    memcpy(seq, buf, 8);
    memcpy(run, buf + 8, 4);
    uint8_t seed = pattern_seed(*run, *seq);
    for (size_t i = DEMO_HEADER; i < len; i++) {
        if (buf[i] != (uint8_t)(seed + i)) {
            return 0;
        }
    }
    return 1;
}

char *
demo_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
    return dst;
}

int
demo_failf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return -1;
}
