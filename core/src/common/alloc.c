/*
 * libatbus's allocator: libc malloc, plus (in the ATBUS_TESTING build) a
 * countdown that makes allocations fail on demand and a count of live
 * blocks so tests can prove that every error path frees what it took.
 */
#include "common/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef ATBUS_TESTING
#include <stdatomic.h>

/* 0: disarmed; k > 0: the kth allocation from now fails. */
static atomic_ulong alloc_countdown;
static atomic_int alloc_tripped;
static atomic_long alloc_live;

void
atb_alloc_fail_nth(unsigned long n)
{
    atomic_store(&alloc_countdown, n);
    atomic_store(&alloc_tripped, 0);
}

int
atb_alloc_failed(void)
{
    return atomic_load(&alloc_tripped);
}

long
atb_alloc_live(void)
{
    return atomic_load(&alloc_live);
}

/* alloc_should_fail consumes one step of the countdown. Once tripped, the
 * hook keeps failing until re-armed. */
static int
alloc_should_fail(void)
{
    if (atomic_load(&alloc_tripped)) {
        return 1;
    }
    unsigned long left = atomic_load(&alloc_countdown);
    while (left != 0) {
        if (atomic_compare_exchange_weak(&alloc_countdown, &left, left - 1)) {
            if (left == 1) {
                atomic_store(&alloc_tripped, 1);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

static void
alloc_count(long delta)
{
    atomic_fetch_add(&alloc_live, delta);
}
#else
static int
alloc_should_fail(void)
{
    return 0;
}

static void
alloc_count(long delta)
{
    (void)delta;
}
#endif

void *
atb_malloc(size_t n)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    /* malloc(0) may return NULL, which callers would read as ENOMEM. */
    void *p = malloc(n != 0 ? n : 1);
    if (p != NULL) {
        alloc_count(1);
    }
    return p;
}

void *
atb_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    if (alloc_should_fail()) {
        return NULL;
    }
    void *p = calloc(count != 0 ? count : 1, size != 0 ? size : 1);
    if (p != NULL) {
        alloc_count(1);
    }
    return p;
}

void *
atb_realloc(void *p, size_t n)
{
    if (p == NULL) {
        return atb_malloc(n);
    }
    if (alloc_should_fail()) {
        return NULL;
    }
    return realloc(p, n != 0 ? n : 1);
}

void
atb_free(void *p)
{
    if (p != NULL) {
        alloc_count(-1);
        free(p);
    }
}

char *
atb_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = atb_malloc(n);
    if (copy != NULL) {
        memcpy(copy, s, n);
    }
    return copy;
}
