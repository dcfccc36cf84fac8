/*
 * Shared helpers for the Check suites: a runner that prints Check's
 * summary, a leak-checking test case, and small utilities.
 *
 * Every test case made with atb_test_case checks, after each test, that
 * the test returned every block it took from atb_malloc.
 */
#ifndef ATB_TESTING_H
#define ATB_TESTING_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* atb_test_case creates a test case whose tests must not leak atb_malloc
 * blocks; the timeout is in seconds. */
TCase *atb_test_case(const char *name, double timeout);

/* atb_test_run runs s (each test in its own process unless CK_FORK=no)
 * and returns the process exit status. */
int atb_test_run(Suite *s);

/* atb_test_rng is a small deterministic PRNG (splitmix64) for tests that
 * want reproducible "random" input from a seed. */
uint64_t atb_test_rng(uint64_t *state);

/*
 * atb_test_free_port returns a loopback port (127.0.0.1 or ::1 by family)
 * that the kernel just handed out for socktype (SOCK_STREAM or
 * SOCK_DGRAM). URLs cannot say port 0, so tests ask the kernel with a
 * probe bind instead of guessing.
 */
int atb_test_free_port(int family, int socktype);

#endif /* ATB_TESTING_H */
