/*
 * Error codes: every code has a distinct name and description, and unknown
 * codes still give printable text.
 */
#include <atbus/atbus.h>

#include <string.h>

#include "testing.h"

static const int all_codes[] = {
    ATBUS_OK,
    ATBUS_EINVAL,
    ATBUS_ENOMEM,
    ATBUS_EWOULDBLOCK,
    ATBUS_ECLOSED,
    ATBUS_ETIMEDOUT,
    ATBUS_ENOTCONN,
    ATBUS_ENOROUTE,
    ATBUS_EEXIST,
    ATBUS_ENOTFOUND,
    ATBUS_ENOTSUP,
    ATBUS_EMSGSIZE,
    ATBUS_ENOBUFS,
    ATBUS_ESYSTEM,
    ATBUS_EPERM,
    ATBUS_ECONNREFUSED,
    ATBUS_ECONNRESET,
    ATBUS_EADDRINUSE,
    ATBUS_EADDRINVAL,
    ATBUS_ENOSPC,
    ATBUS_ETRUNCATED,
    ATBUS_EVARINT,
    ATBUS_EFRAME_VERSION,
    ATBUS_EFRAME_TOO_LARGE,
    ATBUS_EFRAME_HASH,
    ATBUS_EFRAME_DECODE,
    ATBUS_EFRAME_INVALID,
    ATBUS_ESTREAM_RESET,
    ATBUS_EROUTE_CYCLE,
    ATBUS_ETTL,
    ATBUS_ERECORD,
    ATBUS_EPARSE,
    ATBUS_EBACKEND,
    ATBUS_ECOMPACTED,
    ATBUS_EUNAVAILABLE,
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

START_TEST(test_every_code_named_and_distinct)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *name = atbus_err_name(all_codes[i]);
        const char *text = atbus_strerror(all_codes[i]);
        ck_assert_msg(strcmp(name, "ATBUS_E?") != 0, "code %d has no name",
                      all_codes[i]);
        ck_assert_msg(strcmp(text, "unknown error") != 0, "code %d has no text",
                      all_codes[i]);
        ck_assert_int_le(all_codes[i], 0);
        for (size_t j = 0; j < i; j++) {
            ck_assert_int_ne(all_codes[i], all_codes[j]);
            ck_assert_str_ne(name, atbus_err_name(all_codes[j]));
            ck_assert_str_ne(text, atbus_strerror(all_codes[j]));
        }
    }
}
END_TEST

START_TEST(test_unknown_code)
{
    ck_assert_str_eq(atbus_strerror(-9999), "unknown error");
    ck_assert_str_eq(atbus_err_name(12345), "ATBUS_E?");
    ck_assert_str_eq(atbus_err_name(ATBUS_EFRAME_HASH), "ATBUS_EFRAME_HASH");
}
END_TEST

START_TEST(test_version)
{
    ck_assert_str_eq(atbus_version(), ATBUS_VERSION_STRING);
    ck_assert_int_ge(ATBUS_PROTOCOL_VERSION, ATBUS_PROTOCOL_MINIMAL_VERSION);
}
END_TEST

static Suite *
error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = atb_test_case("codes", 10);
    tcase_add_test(tc, test_every_code_named_and_distinct);
    tcase_add_test(tc, test_unknown_code);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(error_suite());
}
