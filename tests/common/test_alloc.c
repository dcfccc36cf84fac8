/*
 * The internal allocator and its fault hook: the Nth allocation fails and
 * so do later ones until re-armed; live blocks are counted.
 */
#include <atbus/atbus.h>

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "testing.h"

START_TEST(test_alloc_counts_live_blocks)
{
    long before = atb_alloc_live();
    void *a = atb_malloc(10);
    void *b = atb_calloc(4, 8);
    void *z = atb_malloc(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(atb_alloc_live(), before + 3);
    for (size_t i = 0; i < 32; i++) {
        ck_assert_int_eq(((unsigned char *)b)[i], 0);
    }
    a = atb_realloc(a, 4096);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(atb_alloc_live(), before + 3);
    atb_free(a);
    atb_free(b);
    atb_free(z);
    atb_free(NULL);
    ck_assert_int_eq(atb_alloc_live(), before);
}
END_TEST

START_TEST(test_alloc_fail_nth)
{
    atb_alloc_fail_nth(3);
    void *a = atb_malloc(1);
    void *b = atb_malloc(1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(!atb_alloc_failed());
    ck_assert_ptr_null(atb_malloc(1));
    ck_assert(atb_alloc_failed());
    /* Once tripped, every later allocation fails too. */
    ck_assert_ptr_null(atb_calloc(1, 1));
    ck_assert_ptr_null(atb_strdup("x"));
    /* A failed realloc leaves the block with the caller. */
    ck_assert_ptr_null(atb_realloc(a, 100));
    atb_alloc_fail_nth(0);
    ck_assert(!atb_alloc_failed());
    void *c = atb_malloc(1);
    ck_assert_ptr_nonnull(c);
    atb_free(a);
    atb_free(b);
    atb_free(c);
}
END_TEST

START_TEST(test_calloc_overflow)
{
    ck_assert_ptr_null(atb_calloc(SIZE_MAX / 2, 3));
}
END_TEST

START_TEST(test_strdup)
{
    char *s = atb_strdup("atbus");
    ck_assert_str_eq(s, "atbus");
    atb_free(s);
}
END_TEST

static Suite *
alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = atb_test_case("alloc", 10);
    tcase_add_test(tc, test_alloc_counts_live_blocks);
    tcase_add_test(tc, test_alloc_fail_nth);
    tcase_add_test(tc, test_calloc_overflow);
    tcase_add_test(tc, test_strdup);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(alloc_suite());
}
