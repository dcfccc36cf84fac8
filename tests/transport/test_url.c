/*
 * Channel address parsing: every scheme, canonical formatting, and a clear
 * error (offset and reason) for each kind of bad address.
 */
#include <atbus/atbus.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/un.h>

#include "testing.h"
#include "transport/url.h"

static const struct {
    const char *in;
    enum atb_url_scheme scheme;
    const char *canonical;
} good[] = {
    {"mem://node-a", ATB_URL_MEM, "mem://node-a"},
    {"shm://bus_1.ns", ATB_URL_SHM, "shm://bus_1.ns"},
    {"unix:///tmp/atbus.sock", ATB_URL_UNIX, "unix:///tmp/atbus.sock"},
    {"unix://@atbus-abstract", ATB_URL_UNIX, "unix://@atbus-abstract"},
    {"ipv4://127.0.0.1:7000", ATB_URL_IPV4, "ipv4://127.0.0.1:7000"},
    {"ipv4://0.0.0.0:1", ATB_URL_IPV4, "ipv4://0.0.0.0:1"},
    {"ipv6://[::1]:65535", ATB_URL_IPV6, "ipv6://[::1]:65535"},
    {"ipv6://[fe80:0::1]:80", ATB_URL_IPV6, "ipv6://[fe80::1]:80"},
    {"udp://127.0.0.1:9000", ATB_URL_UDP, "udp://127.0.0.1:9000"},
    {"udp://[::1]:9000", ATB_URL_UDP, "udp://[::1]:9000"},
};
#define NGOOD (sizeof(good) / sizeof(good[0]))

START_TEST(test_url_good)
{
    atb_url u;
    atb_url_error err = {0};
    ck_assert_int_eq(atb_url_parse(good[_i].in, &u, &err), ATBUS_OK);
    ck_assert_int_eq(u.scheme, good[_i].scheme);
    char buf[160];
    ck_assert_int_eq(atb_url_format(&u, buf, sizeof(buf)), ATBUS_OK);
    ck_assert_str_eq(buf, good[_i].canonical);
    /* The canonical form parses to the same address. */
    atb_url again;
    ck_assert_int_eq(atb_url_parse(buf, &again, NULL), ATBUS_OK);
    ck_assert_int_eq(again.scheme, u.scheme);
    ck_assert_str_eq(again.name, u.name);
    ck_assert_int_eq(again.addr_len, u.addr_len);
    ck_assert_mem_eq(&again.addr, &u.addr, u.addr_len);
}
END_TEST

START_TEST(test_url_inet_fields)
{
    atb_url u;
    ck_assert_int_eq(atb_url_parse("ipv4://10.1.2.3:7001", &u, NULL), ATBUS_OK);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&u.addr;
    ck_assert_int_eq(a->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(a->sin_port), 7001);
    ck_assert_uint_eq(ntohl(a->sin_addr.s_addr), 0x0a010203u);
    ck_assert_int_eq(u.addr_len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(atb_url_parse("udp://[::1]:53", &u, NULL), ATBUS_OK);
    ck_assert_int_eq(u.addr.ss_family, AF_INET6);
}
END_TEST

START_TEST(test_url_unix_sockaddr)
{
    atb_url u;
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(atb_url_parse("unix:///run/a.sock", &u, NULL), ATBUS_OK);
    ck_assert_int_eq(atb_url_sockaddr_un(&u, &ss, &len), ATBUS_OK);
    const struct sockaddr_un *a = (const struct sockaddr_un *)&ss;
    ck_assert_str_eq(a->sun_path, "/run/a.sock");
    ck_assert_int_eq(u.abstract, 0);

    ck_assert_int_eq(atb_url_parse("unix://@abs", &u, NULL), ATBUS_OK);
    ck_assert_int_eq(u.abstract, 1);
    ck_assert_int_eq(atb_url_sockaddr_un(&u, &ss, &len), ATBUS_OK);
    ck_assert_int_eq(a->sun_path[0], '\0');
    ck_assert_mem_eq(a->sun_path + 1, "abs", 3);
    ck_assert_int_eq(len, offsetof(struct sockaddr_un, sun_path) + 4);

    ck_assert_int_eq(atb_url_parse("mem://x", &u, NULL), ATBUS_OK);
    ck_assert_int_eq(atb_url_sockaddr_un(&u, &ss, &len), ATBUS_EINVAL);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    size_t offset;
    const char *reason_part;
} bad[] = {
    {"", ATBUS_EADDRINVAL, 0, "scheme://"},
    {"127.0.0.1:80", ATBUS_EADDRINVAL, 0, "scheme://"},
    {"://x", ATBUS_EADDRINVAL, 0, "scheme://"},
    {"tcp://127.0.0.1:80", ATBUS_ENOTSUP, 0, "unknown scheme"},
    {"mem://", ATBUS_EADDRINVAL, 6, "empty name"},
    {"mem://a/b", ATBUS_EADDRINVAL, 7, "letters"},
    {"shm://a b", ATBUS_EADDRINVAL, 7, "letters"},
    {"unix://relative.sock", ATBUS_EADDRINVAL, 7, "absolute path"},
    {"unix://@", ATBUS_EADDRINVAL, 8, "empty name"},
    {"ipv4://127.0.0.1", ATBUS_EADDRINVAL, 16, "':port'"},
    {"ipv4://127.0.0.1:", ATBUS_EADDRINVAL, 17, "empty port"},
    {"ipv4://127.0.0.1:0", ATBUS_EADDRINVAL, 17, "out of range"},
    {"ipv4://127.0.0.1:65536", ATBUS_EADDRINVAL, 17, "out of range"},
    {"ipv4://127.0.0.1:80x", ATBUS_EADDRINVAL, 19, "decimal"},
    {"ipv4://127.0.0.256:80", ATBUS_EADDRINVAL, 7, "IPv4"},
    {"ipv4://localhost:80", ATBUS_EADDRINVAL, 7, "numeric"},
    {"ipv4://:80", ATBUS_EADDRINVAL, 7, "missing host"},
    {"ipv4://[::1]:80", ATBUS_EADDRINVAL, 7, "ipv4 address expected"},
    {"ipv6://::1:80", ATBUS_EADDRINVAL, 7, "brackets"},
    {"ipv6://[::1:80", ATBUS_EADDRINVAL, 7, "']'"},
    {"ipv6://[]:80", ATBUS_EADDRINVAL, 8, "IPv6"},
    {"ipv6://[::g]:80", ATBUS_EADDRINVAL, 8, "IPv6"},
    {"ipv6://[::1]80", ATBUS_EADDRINVAL, 12, "':port'"},
    {"udp://1.2.3.4:99999", ATBUS_EADDRINVAL, 14, "out of range"},
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(test_url_bad)
{
    atb_url u;
    atb_url_error err = {0};
    ck_assert_int_eq(atb_url_parse(bad[_i].in, &u, &err), bad[_i].rc);
    ck_assert_ptr_nonnull(err.reason);
    ck_assert_msg(strstr(err.reason, bad[_i].reason_part) != NULL,
                  "'%s': reason '%s' lacks '%s'", bad[_i].in, err.reason,
                  bad[_i].reason_part);
    ck_assert_msg(err.offset == bad[_i].offset, "'%s': offset %zu, want %zu",
                  bad[_i].in, err.offset, bad[_i].offset);
}
END_TEST

START_TEST(test_url_length_limits)
{
    char s[300];
    atb_url u;
    atb_url_error err;
    /* 100-byte names are fine, 101 are not. */
    strcpy(s, "mem://");
    memset(s + 6, 'n', ATB_URL_NAME_MAX);
    s[6 + ATB_URL_NAME_MAX] = '\0';
    ck_assert_int_eq(atb_url_parse(s, &u, &err), ATBUS_OK);
    strcat(s, "n");
    ck_assert_int_eq(atb_url_parse(s, &u, &err), ATBUS_EADDRINVAL);
    ck_assert(strstr(err.reason, "too long") != NULL);
    /* sun_path holds 107 bytes plus the NUL. */
    strcpy(s, "unix:///");
    memset(s + 8, 'p', 106);
    s[8 + 106] = '\0';
    ck_assert_int_eq(atb_url_parse(s, &u, &err), ATBUS_OK);
    strcat(s, "p");
    ck_assert_int_eq(atb_url_parse(s, &u, &err), ATBUS_EADDRINVAL);
    ck_assert(strstr(err.reason, "107") != NULL);
    /* Formatting into a short buffer fails cleanly. */
    ck_assert_int_eq(atb_url_parse("ipv4://127.0.0.1:7000", &u, NULL),
                     ATBUS_OK);
    char small[10];
    ck_assert_int_eq(atb_url_format(&u, small, sizeof(small)), ATBUS_ENOBUFS);
}
END_TEST

static Suite *
url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = atb_test_case("url", 10);
    tcase_add_loop_test(tc, test_url_good, 0, (int)NGOOD);
    tcase_add_test(tc, test_url_inet_fields);
    tcase_add_test(tc, test_url_unix_sockaddr);
    tcase_add_loop_test(tc, test_url_bad, 0, (int)NBAD);
    tcase_add_test(tc, test_url_length_limits);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(url_suite());
}
