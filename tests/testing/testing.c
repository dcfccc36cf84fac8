/*
 * Check runner and leak-checking fixture shared by every suite.
 */
#include "testing.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fault_sys.h"

static long testing_live_before;

static void
testing_leak_setup(void)
{
    atb_alloc_fail_nth(0);
    atb_fault_reset();
    testing_live_before = atb_alloc_live();
}

static void
testing_leak_teardown(void)
{
    atb_alloc_fail_nth(0);
    atb_fault_reset();
    ck_assert_msg(atb_alloc_live() == testing_live_before,
                  "leak: %ld atb_malloc blocks still live after the test",
                  atb_alloc_live() - testing_live_before);
}

TCase *
atb_test_case(const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, testing_leak_setup, testing_leak_teardown);
    tcase_set_timeout(tc, timeout);
    return tc;
}

int
atb_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

uint64_t
atb_test_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

int
atb_test_free_port(int family, int socktype)
{
    int fd = socket(family, socktype, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    }
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    int port = family == AF_INET
                   ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    close(fd);
    return port;
}
