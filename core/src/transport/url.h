/*
 * Channel addresses: the URLs nodes listen on, dial and publish in
 * discovery.
 *
 *   mem://name               same process
 *   shm://key                same host, shared-memory ring of the reader
 *   unix:///path/to.sock     same host, filesystem Unix socket
 *   unix://@name             same host, abstract Unix socket (Linux)
 *   ipv4://host:port         TCP over IPv4 (host: dotted quad)
 *   ipv6://[host]:port       TCP over IPv6 (host: literal in brackets)
 *   udp://host:port          UDP, IPv4 or IPv6 ([host] for IPv6)
 *
 * Addresses come from configuration and from other nodes' discovery
 * records, so parsing is strict and reports which part was wrong. Hosts
 * are numeric literals: name resolution belongs to discovery, not here.
 */
#ifndef ATB_TRANSPORT_URL_H
#define ATB_TRANSPORT_URL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum atb_url_scheme {
    ATB_URL_MEM = 1,
    ATB_URL_SHM,
    ATB_URL_UNIX,
    ATB_URL_IPV4,
    ATB_URL_IPV6,
    ATB_URL_UDP,
};

/* Longest name of mem://, shm:// and abstract unix:// addresses. */
#define ATB_URL_NAME_MAX 100

typedef struct atb_url {
    enum atb_url_scheme scheme;
    /* mem and shm: the name; unix: the path, or the abstract name without
     * its '@'. */
    char name[108];
    int abstract; /* unix://@name */
    /* ipv4, ipv6, udp: the socket address. */
    struct sockaddr_storage addr;
    socklen_t addr_len;
} atb_url;

/* Detail of a parse failure, filled by atb_url_parse. */
typedef struct atb_url_error {
    size_t offset;      /* byte offset in the input where it went wrong */
    const char *reason; /* static text, e.g. "port out of range" */
} atb_url_error;

/*
 * atb_url_parse parses a NUL-terminated address into *out. On failure
 * returns ATBUS_EADDRINVAL and, when err is not NULL, says where and why;
 * ATBUS_ENOTSUP for a well-formed URL of an unknown scheme.
 */
int atb_url_parse(const char *s, atb_url *out, atb_url_error *err);

/* atb_url_scheme_name returns "mem", "shm", ... for a scheme. */
const char *atb_url_scheme_name(enum atb_url_scheme scheme);

/*
 * atb_url_format writes the canonical text of u into buf (size bytes,
 * NUL-terminated). Returns ATBUS_OK or ATBUS_ENOBUFS.
 */
int atb_url_format(const atb_url *u, char *buf, size_t size);

/*
 * atb_url_sockaddr_un fills a sockaddr_un for a unix URL and its length
 * (abstract names have no terminating NUL). Returns ATBUS_OK or
 * ATBUS_EINVAL for a URL of another scheme.
 */
int atb_url_sockaddr_un(const atb_url *u, struct sockaddr_storage *ss,
                        socklen_t *len);

#endif /* ATB_TRANSPORT_URL_H */
