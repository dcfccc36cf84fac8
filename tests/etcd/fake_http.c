/*
 * A scripted HTTP server on an atb_loop (see fake_http.h).
 */
#define _GNU_SOURCE /* strcasestr, accept4 */
#include "fake_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_REQ_MAX (1024 * 1024)

struct fake_conn {
    fake_http *f;
    fake_conn *next;
    int fd;
    atb_io io;
    char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
    size_t out_off;
    int replying;
};

static void
fake_conn_close(fake_conn *c)
{
    fake_http *f = c->f;
    for (fake_conn **pp = &f->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    atb_io_stop(&c->io);
    close(c->fd);
    free(c->in);
    free(c);
}

static const char fake_404[] =
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* fake_pick chooses the route of a complete request. */
static void
fake_pick(fake_conn *c)
{
    fake_http *f = c->f;
    c->out = fake_404;
    c->out_len = sizeof(fake_404) - 1;
    const char *sp = memchr(c->in, ' ', c->in_len);
    if (sp != NULL) {
        const char *path = sp + 1;
        for (size_t i = 0; i < f->nroutes; i++) {
            size_t n = strlen(f->routes[i].path);
            if (strncmp(path, f->routes[i].path, n) == 0 && path[n] == ' ') {
                c->out = f->routes[i].response;
                c->out_len = f->routes[i].len;
                break;
            }
        }
    }
    c->replying = 1;
    f->requests++;
}

/* fake_request_done reports whether c->in holds a whole request. */
static int
fake_request_done(const fake_conn *c)
{
    const char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }
    size_t head = (size_t)(end - c->in) + 4;
    size_t body = 0;
    const char *cl = strcasestr(c->in, "content-length:");
    if (cl != NULL && cl < end) {
        body = (size_t)strtoul(cl + 15, NULL, 10);
    }
    return c->in_len >= head + body;
}

static void
fake_conn_cb(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    fake_conn *c = arg;
    if (!c->replying && (events & (ATB_IO_READ | ATB_IO_ERROR)) != 0) {
        char buf[4096];
        ssize_t r = read(c->fd, buf, sizeof(buf));
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                fake_conn_close(c);
            }
            return;
        }
        if (c->in_len + (size_t)r >= FAKE_REQ_MAX) {
            fake_conn_close(c);
            return;
        }
        char *in = realloc(c->in, c->in_len + (size_t)r + 1);
        if (in == NULL) {
            fake_conn_close(c);
            return;
        }
        c->in = in;
        memcpy(c->in + c->in_len, buf, (size_t)r);
        c->in_len += (size_t)r;
        c->in[c->in_len] = '\0';
        if (!fake_request_done(c)) {
            return;
        }
        fake_pick(c);
        if (c->out == NULL) {
            /* Silent route: keep reading (until EOF), never answer. */
            c->replying = 0;
            c->in_len = 0;
            return;
        }
        if (atb_io_start(c->f->loop, &c->io, c->fd, ATB_IO_WRITE, fake_conn_cb,
                         c) != 0) {
            fake_conn_close(c);
        }
        return;
    }
    if (c->replying && (events & ATB_IO_WRITE) != 0) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (w > 0) {
            c->out_off += (size_t)w;
        }
        if (w < 0 || c->out_off == c->out_len) {
            fake_conn_close(c);
        }
    }
}

static void
fake_accept_cb(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    fake_http *f = arg;
    int fd = accept4(f->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    fake_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->f = f;
    c->fd = fd;
    c->next = f->conns;
    f->conns = c;
    if (atb_io_start(f->loop, &c->io, fd, ATB_IO_READ, fake_conn_cb, c) != 0) {
        fake_conn_close(c);
    }
}

int
fake_http_start(fake_http *f, atb_loop *loop)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->fd < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(f->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(f->fd, 16) != 0 ||
        getsockname(f->fd, (struct sockaddr *)&a, &len) != 0 ||
        atb_io_start(loop, &f->io, f->fd, ATB_IO_READ, fake_accept_cb, f) !=
            0) {
        close(f->fd);
        return -1;
    }
    f->port = ntohs(a.sin_port);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
    return 0;
}

void
fake_http_route(fake_http *f, const char *path, const char *response,
                size_t len)
{
    for (size_t i = 0; i < f->nroutes; i++) {
        if (strcmp(f->routes[i].path, path) == 0) {
            f->routes[i].response = response;
            f->routes[i].len =
                len != 0 || response == NULL ? len : strlen(response);
            return;
        }
    }
    if (f->nroutes < FAKE_HTTP_ROUTES) {
        f->routes[f->nroutes].path = path;
        f->routes[f->nroutes].response = response;
        f->routes[f->nroutes].len =
            len != 0 || response == NULL ? len : strlen(response);
        f->nroutes++;
    }
}

void
fake_http_stop(fake_http *f)
{
    while (f->conns != NULL) {
        fake_conn_close(f->conns);
    }
    atb_io_stop(&f->io);
    close(f->fd);
}

char *
fake_http_response(const char *status, const char *body)
{
    size_t n = strlen(body);
    size_t cap = n + 256;
    char *s = malloc(cap);
    if (s != NULL) {
        snprintf(s, cap,
                 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 status, n, body);
    }
    return s;
}
