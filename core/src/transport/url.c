/*
 * Strict parser and formatter for channel addresses (see url.h).
 */
#include "transport/url.h"

#include <atbus/error.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static const struct {
    const char *name;
    enum atb_url_scheme scheme;
} url_schemes[] = {
    {"mem", ATB_URL_MEM},   {"shm", ATB_URL_SHM},   {"unix", ATB_URL_UNIX},
    {"ipv4", ATB_URL_IPV4}, {"ipv6", ATB_URL_IPV6}, {"udp", ATB_URL_UDP},
};
#define URL_NSCHEMES (sizeof(url_schemes) / sizeof(url_schemes[0]))

const char *
atb_url_scheme_name(enum atb_url_scheme scheme)
{
    for (size_t i = 0; i < URL_NSCHEMES; i++) {
        if (url_schemes[i].scheme == scheme) {
            return url_schemes[i].name;
        }
    }
    return "?";
}

static int
url_fail(atb_url_error *err, size_t offset, const char *reason)
{
    if (err != NULL) {
        err->offset = offset;
        err->reason = reason;
    }
    return ATBUS_EADDRINVAL;
}

/* url_name_char: the characters allowed in mem/shm/abstract names, which
 * also become shm object names and log fields. */
static int
url_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int
url_parse_name(const char *s, size_t off, atb_url *out, atb_url_error *err)
{
    size_t n = strlen(s + off);
    if (n == 0) {
        return url_fail(err, off, "empty name");
    }
    if (n > ATB_URL_NAME_MAX) {
        return url_fail(err, off + ATB_URL_NAME_MAX, "name too long");
    }
    for (size_t i = 0; i < n; i++) {
        if (!url_name_char(s[off + i])) {
            return url_fail(err, off + i,
                            "name may hold only letters, digits, '.', '_' "
                            "and '-'");
        }
    }
    memcpy(out->name, s + off, n + 1);
    return ATBUS_OK;
}

static int
url_parse_unix(const char *s, size_t off, atb_url *out, atb_url_error *err)
{
    if (s[off] == '@') {
        out->abstract = 1;
        return url_parse_name(s, off + 1, out, err);
    }
    size_t n = strlen(s + off);
    if (n == 0 || s[off] != '/') {
        return url_fail(err, off,
                        "unix address needs an absolute path "
                        "(unix:///path) or @name");
    }
    if (n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        return url_fail(err, off, "unix path longer than 107 bytes");
    }
    memcpy(out->name, s + off, n + 1);
    return ATBUS_OK;
}

/* url_parse_port reads ":<1-65535>" at the end of the input. */
static int
url_parse_port(const char *s, size_t off, uint16_t *port, atb_url_error *err)
{
    if (s[off] != ':') {
        return url_fail(err, off, "expected ':port'");
    }
    off++;
    if (s[off] == '\0') {
        return url_fail(err, off, "empty port");
    }
    unsigned long v = 0;
    for (size_t i = off; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return url_fail(err, i, "port must be decimal digits");
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
        if (v > 65535) {
            return url_fail(err, off, "port out of range (1-65535)");
        }
    }
    if (v == 0) {
        return url_fail(err, off, "port out of range (1-65535)");
    }
    *port = (uint16_t)v;
    return ATBUS_OK;
}

/* url_parse_inet parses "a.b.c.d:port" or "[v6]:port"; family 0 accepts
 * either (udp), else only that family. */
static int
url_parse_inet(const char *s, size_t off, int family, atb_url *out,
               atb_url_error *err)
{
    char host[INET6_ADDRSTRLEN];
    size_t end;
    int v6 = s[off] == '[';
    if (v6) {
        if (family == AF_INET) {
            return url_fail(err, off, "ipv4 address expected, not [ipv6]");
        }
        const char *close = strchr(s + off, ']');
        if (close == NULL) {
            return url_fail(err, off, "missing ']' after IPv6 address");
        }
        size_t n = (size_t)(close - (s + off + 1));
        if (n == 0 || n >= sizeof(host)) {
            return url_fail(err, off + 1, "bad IPv6 address");
        }
        memcpy(host, s + off + 1, n);
        host[n] = '\0';
        end = off + 1 + n + 1;
    } else {
        if (family == AF_INET6) {
            return url_fail(err, off,
                            "ipv6 address must be in brackets: [addr]:port");
        }
        const char *colon = strchr(s + off, ':');
        size_t n =
            colon != NULL ? (size_t)(colon - (s + off)) : strlen(s + off);
        if (n == 0 || n >= sizeof(host)) {
            return url_fail(err, off, "missing host");
        }
        memcpy(host, s + off, n);
        host[n] = '\0';
        end = off + n;
    }
    uint16_t port;
    int rc = url_parse_port(s, end, &port, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    memset(&out->addr, 0, sizeof(out->addr));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->addr;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            return url_fail(err, off + 1, "bad IPv6 address");
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        out->addr_len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->addr;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            return url_fail(err, off,
                            "bad IPv4 address (numeric a.b.c.d expected)");
        }
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        out->addr_len = sizeof(*a);
    }
    return ATBUS_OK;
}

int
atb_url_parse(const char *s, atb_url *out, atb_url_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s) {
        return url_fail(err, 0, "expected scheme://address");
    }
    size_t slen = (size_t)(sep - s);
    size_t off = slen + 3;
    for (size_t i = 0; i < URL_NSCHEMES; i++) {
        if (strlen(url_schemes[i].name) == slen &&
            memcmp(url_schemes[i].name, s, slen) == 0) {
            out->scheme = url_schemes[i].scheme;
        }
    }
    switch (out->scheme) {
    case ATB_URL_MEM:
    case ATB_URL_SHM:
        return url_parse_name(s, off, out, err);
    case ATB_URL_UNIX:
        return url_parse_unix(s, off, out, err);
    case ATB_URL_IPV4:
        return url_parse_inet(s, off, AF_INET, out, err);
    case ATB_URL_IPV6:
        return url_parse_inet(s, off, AF_INET6, out, err);
    case ATB_URL_UDP:
        return url_parse_inet(s, off, 0, out, err);
    default:
        url_fail(err, 0, "unknown scheme");
        return ATBUS_ENOTSUP;
    }
}

int
atb_url_format(const atb_url *u, char *buf, size_t size)
{
    const char *scheme = atb_url_scheme_name(u->scheme);
    int n;
    if (u->scheme == ATB_URL_MEM || u->scheme == ATB_URL_SHM ||
        u->scheme == ATB_URL_UNIX) {
        n = snprintf(buf, size, "%s://%s%s", scheme, u->abstract ? "@" : "",
                     u->name);
    } else {
        char host[INET6_ADDRSTRLEN];
        unsigned port;
        int v6 = u->addr.ss_family == AF_INET6;
        if (v6) {
            const struct sockaddr_in6 *a =
                (const struct sockaddr_in6 *)&u->addr;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&u->addr;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        }
        n = snprintf(buf, size, "%s://%s%s%s:%u", scheme, v6 ? "[" : "", host,
                     v6 ? "]" : "", port);
    }
    return n < 0 || (size_t)n >= size ? ATBUS_ENOBUFS : ATBUS_OK;
}

int
atb_url_sockaddr_un(const atb_url *u, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    if (u->scheme != ATB_URL_UNIX) {
        return ATBUS_EINVAL;
    }
    struct sockaddr_un *a = (struct sockaddr_un *)ss;
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    size_t n = strlen(u->name);
    if (u->abstract) {
        /* Abstract names start with a NUL and are not terminated. */
        memcpy(a->sun_path + 1, u->name, n);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    } else {
        memcpy(a->sun_path, u->name, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return ATBUS_OK;
}
