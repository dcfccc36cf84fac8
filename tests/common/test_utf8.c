/*
 * Strict UTF-8 validation: the boundaries of every sequence length, and
 * each kind of malformed input.
 */
#include <atbus/atbus.h>

#include <string.h>

#include "common/utf8.h"
#include "testing.h"

static int
valid(const char *s, size_t len)
{
    return atb_utf8_valid((const uint8_t *)s, len);
}

START_TEST(test_utf8_accepts)
{
    ck_assert(valid("", 0));
    ck_assert(valid("plain ascii app-1.ns1", 21));
    ck_assert(valid("\x7f", 1));
    ck_assert(valid("\xc2\x80", 2));         /* U+0080 */
    ck_assert(valid("\xdf\xbf", 2));         /* U+07FF */
    ck_assert(valid("\xe0\xa0\x80", 3));     /* U+0800 */
    ck_assert(valid("\xed\x9f\xbf", 3));     /* U+D7FF */
    ck_assert(valid("\xee\x80\x80", 3));     /* U+E000 */
    ck_assert(valid("\xef\xbf\xbf", 3));     /* U+FFFF */
    ck_assert(valid("\xf0\x90\x80\x80", 4)); /* U+10000 */
    ck_assert(valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    ck_assert(valid("\xe4\xb8\xad\xe6\x96\x87", 6));
}
END_TEST

START_TEST(test_utf8_rejects)
{
    ck_assert(!valid("a\0b", 3));             /* NUL */
    ck_assert(!valid("\x80", 1));             /* lone continuation */
    ck_assert(!valid("\xc0\x80", 2));         /* overlong NUL */
    ck_assert(!valid("\xc1\xbf", 2));         /* overlong */
    ck_assert(!valid("\xe0\x9f\xbf", 3));     /* overlong 3-byte */
    ck_assert(!valid("\xf0\x8f\xbf\xbf", 4)); /* overlong 4-byte */
    ck_assert(!valid("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    ck_assert(!valid("\xed\xbf\xbf", 3));     /* surrogate U+DFFF */
    ck_assert(!valid("\xf4\x90\x80\x80", 4)); /* U+110000 */
    ck_assert(!valid("\xf5\x80\x80\x80", 4)); /* lead byte F5 */
    ck_assert(!valid("\xff", 1));
    ck_assert(!valid("\xe2\x82", 2));         /* truncated */
    ck_assert(!valid("\xe2\x28\xa1", 3));     /* bad continuation */
    ck_assert(!valid("\xf0\x90\x80\x7f", 4)); /* bad last byte */
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = atb_test_case("utf8", 10);
    tcase_add_test(tc, test_utf8_accepts);
    tcase_add_test(tc, test_utf8_rejects);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(utf8_suite());
}
