/*
 * The one allocator every part of libatbus uses.
 *
 * Going through one place lets tests fail the Nth allocation and count
 * what is still live (the fault-injection hooks exist only in the
 * ATBUS_TESTING build, so the shipped library pays nothing for them). The
 * library never aborts on out-of-memory: callers get NULL and return
 * ATBUS_ENOMEM.
 */
#ifndef ATB_COMMON_ALLOC_H
#define ATB_COMMON_ALLOC_H

#include <stddef.h>

/* atb_malloc returns n bytes (n may be 0) or NULL when memory is short. */
void *atb_malloc(size_t n);

/* atb_calloc returns count*size zeroed bytes, or NULL on overflow or when
 * memory is short. */
void *atb_calloc(size_t count, size_t size);

/* atb_realloc resizes p (NULL: allocate) to n bytes. On failure it returns
 * NULL and p is untouched and still owned by the caller. */
void *atb_realloc(void *p, size_t n);

/* atb_free releases p; NULL is a no-op. */
void atb_free(void *p);

/* atb_strdup copies a NUL-terminated string, or returns NULL. */
char *atb_strdup(const char *s);

#ifdef ATBUS_TESTING
/*
 * atb_alloc_fail_nth arms the fault hook: the nth allocation from now
 * (1 = the next one) fails, and so does every later one until the hook is
 * re-armed or disarmed with 0. Failing all later allocations, not just one,
 * makes error paths that retry allocation visible too.
 */
void atb_alloc_fail_nth(unsigned long n);

/* atb_alloc_failed reports whether the armed hook has fired. */
int atb_alloc_failed(void);

/* atb_alloc_live returns the number of allocations not yet freed. */
long atb_alloc_live(void);
#endif

#endif /* ATB_COMMON_ALLOC_H */
