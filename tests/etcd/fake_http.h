/*
 * A tiny HTTP server on the test's own loop, for answers etcd never
 * gives: garbage, truncated or oversized bodies, wrong types, error
 * statuses. Each route maps a request path to the exact bytes written
 * back (status line, headers, body); the connection is closed after.
 * Loopback only, single-threaded, no Check calls inside.
 */
#ifndef ATB_TEST_FAKE_HTTP_H
#define ATB_TEST_FAKE_HTTP_H

#include <stddef.h>

#include "loop/loop.h"

#define FAKE_HTTP_ROUTES 8

typedef struct fake_conn fake_conn;

typedef struct fake_route {
    const char *path;
    const char *response; /* borrowed; NULL: never answer */
    size_t len;
} fake_route;

typedef struct fake_http {
    atb_loop *loop;
    int fd;
    atb_io io;
    int port;
    char url[64];
    fake_route routes[FAKE_HTTP_ROUTES];
    size_t nroutes;
    fake_conn *conns;
    int requests; /* requests answered */
} fake_http;

/* fake_http_start listens on 127.0.0.1 (a kernel-chosen port). Returns 0
 * or -1. */
int fake_http_start(fake_http *f, atb_loop *loop);

/* fake_http_route answers path with response[0..len) (len 0: strlen);
 * a NULL response never answers (the connection stays open, silent). */
void fake_http_route(fake_http *f, const char *path, const char *response,
                     size_t len);

/* fake_http_stop closes the listener and every connection. */
void fake_http_stop(fake_http *f);

/* fake_http_response formats "HTTP/1.1 <status>" with Content-Length and
 * body into a malloc'd string (the caller frees it). */
char *fake_http_response(const char *status, const char *body);

#endif /* ATB_TEST_FAKE_HTTP_H */
