/*
 * libcurl's multi socket interface on an atb_loop (see etcd_http.h).
 *
 * The pattern is curl's: each socket curl announces gets a small record
 * holding our atb_io, attached with curl_multi_assign and freed on
 * CURL_POLL_REMOVE; the one multi timer is an atb_timer. The timer
 * callback only arms our timer (curl forbids re-entering the multi handle
 * from it); the timer's expiry calls curl_multi_socket_action on the next
 * turn. After every socket action the finished transfers are collected.
 */
#include "etcd/etcd_http.h"

#include <atbus/error.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

/* TCP keep-alive on every connection: an idle watch stream carries no
 * bytes, so a peer that vanished without a FIN is found this way. */
#define HTTP_KEEPIDLE_S 10L
#define HTTP_KEEPINTVL_S 5L

/* Longest Authorization header we build (etcd tokens are ~20 bytes for
 * simple tokens, a few hundred for JWT). */
#define HTTP_AUTH_MAX 2048

struct atb_etcd_sock {
    atb_io io;
    atb_etcd_http *h;
    curl_socket_t fd;
    atb_etcd_sock *next; /* h's list, so fini frees what curl left */
    atb_etcd_sock *prev;
};

static void http_check_done(atb_etcd_http *h);
static void http_abort_fire(atb_deferred *d, void *arg);

static void
http_sock_unlink(atb_etcd_http *h, atb_etcd_sock *hs)
{
    if (hs->prev != NULL) {
        hs->prev->next = hs->next;
    } else {
        h->socks = hs->next;
    }
    if (hs->next != NULL) {
        hs->next->prev = hs->prev;
    }
    h->nsocks--;
}

/* http_reserve keeps two socket records per request in flight (and two
 * more for the one starting), so curl's socket callback never has to
 * allocate. */
static int
http_reserve(atb_etcd_http *h)
{
    while (h->nsocks + h->nspare < 2 * (h->active + 1)) {
        atb_etcd_sock *hs = atb_calloc(1, sizeof(*hs));
        if (hs == NULL) {
            return ATBUS_ENOMEM;
        }
        hs->next = h->spare;
        h->spare = hs;
        h->nspare++;
    }
    return ATBUS_OK;
}

static void
http_io_cb(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    atb_etcd_sock *hs = arg;
    atb_etcd_http *h = hs->h;
    int mask = 0;
    if ((events & ATB_IO_READ) != 0) {
        mask |= CURL_CSELECT_IN;
    }
    if ((events & ATB_IO_WRITE) != 0) {
        mask |= CURL_CSELECT_OUT;
    }
    if ((events & ATB_IO_ERROR) != 0) {
        mask |= CURL_CSELECT_ERR;
    }
    int running = 0;
    /* hs may be released inside (CURL_POLL_REMOVE): not touched after. */
    (void)curl_multi_socket_action(h->multi, hs->fd, mask, &running);
    http_check_done(h);
}

/* http_sock_failed marks the transfer behind easy for ending on the next
 * turn (curl forbids removing it from inside its callback). */
static void
http_sock_failed(atb_etcd_http *h, CURL *easy)
{
    char *priv = NULL;
    if (easy != NULL &&
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) == CURLE_OK &&
        priv != NULL) {
        ((atb_etcd_req *)(void *)priv)->sys_err = ATBUS_ESYSTEM;
        atb_loop_defer(h->loop, &h->abort_defer, http_abort_fire, h);
    }
}

static int
http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
               void *socketp)
{
    atb_etcd_http *h = userp;
    atb_etcd_sock *hs = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (hs != NULL) {
            atb_io_stop(&hs->io);
            http_sock_unlink(h, hs);
            memset(hs, 0, sizeof(*hs));
            hs->next = h->spare;
            h->spare = hs;
            h->nspare++;
        }
        return 0;
    }
    if (hs == NULL) {
        hs = h->spare;
        if (hs == NULL) {
            /* Not reached: http_reserve keeps records ahead of need. */
            http_sock_failed(h, easy);
            return 0;
        }
        h->spare = hs->next;
        h->nspare--;
        memset(hs, 0, sizeof(*hs));
        hs->h = h;
        hs->fd = fd;
        hs->next = h->socks;
        if (h->socks != NULL) {
            h->socks->prev = hs;
        }
        h->socks = hs;
        h->nsocks++;
        curl_multi_assign(h->multi, fd, hs);
    }
    unsigned events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= ATB_IO_READ;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= ATB_IO_WRITE;
    }
    if (events == 0) {
        atb_io_stop(&hs->io);
    } else if (atb_io_start(h->loop, &hs->io, fd, events, http_io_cb, hs) !=
               ATBUS_OK) {
        http_sock_failed(h, easy);
    }
    return 0;
}

static void
http_timeout_fire(atb_deferred *d, void *arg)
{
    (void)d;
    atb_etcd_http *h = arg;
    int running = 0;
    (void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_done(h);
}

static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    atb_etcd_http *h = userp;
    if (timeout_ms < 0) {
        atb_timer_stop(&h->timer);
        atb_loop_cancel(h->loop, &h->timeout_defer);
        return 0;
    }
    if (atb_timer_start(h->loop, &h->timer, (uint64_t)timeout_ms * 1000, 0) !=
        ATBUS_OK) {
        /* Early is harmless: curl re-arms for the time still left. */
        atb_loop_defer(h->loop, &h->timeout_defer, http_timeout_fire, h);
    }
    return 0;
}

static void
http_timer_fire(atb_timer *t, void *arg)
{
    (void)t;
    http_timeout_fire(NULL, arg);
}

/* http_detach takes req's easy handle out of the multi handle. */
static void
http_detach(atb_etcd_req *req)
{
    atb_etcd_http *h = req->http;
    curl_multi_remove_handle(h->multi, req->easy);
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        h->reqs = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    req->next = NULL;
    req->prev = NULL;
    h->active--;
    atb_timer_stop(&req->stall_timer);
    curl_slist_free_all(req->headers);
    req->headers = NULL;
    atb_loop_cancel(h->loop, &req->data_defer);
}

/* http_error maps a transfer's curl result to an atbus code, making sure
 * errbuf says something. */
static int
http_error(atb_etcd_req *req, CURLcode rc)
{
    if (rc == CURLE_OK) {
        return ATBUS_OK;
    }
    if (req->errbuf[0] == '\0') {
        snprintf(req->errbuf, sizeof(req->errbuf), "%s",
                 curl_easy_strerror(rc));
    }
    switch (rc) {
    case CURLE_WRITE_ERROR:
        if (req->body.err == ATBUS_EMSGSIZE) {
            snprintf(req->errbuf, sizeof(req->errbuf),
                     "response larger than the %zu-byte cap", req->body.max);
        }
        return req->body.err != 0 ? req->body.err : ATBUS_ECONNRESET;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(req->errbuf, sizeof(req->errbuf),
                 "response larger than the %zu-byte cap (Content-Length)",
                 req->body.max);
        return ATBUS_EMSGSIZE;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return ATBUS_ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return ATBUS_ETIMEDOUT;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
        return ATBUS_EPARSE;
    case CURLE_OUT_OF_MEMORY:
        return ATBUS_ENOMEM;
    default:
        return ATBUS_ECONNRESET;
    }
}

static void
http_check_done(atb_etcd_http *h)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* msg dies with the handle: copy what we need first. */
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        atb_etcd_req *req = (atb_etcd_req *)(void *)priv;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        req->status = status;
        http_detach(req);
        req->on_done(req, http_error(req, rc), req->arg);
    }
}

static void
http_data_fire(atb_deferred *d, void *arg)
{
    (void)d;
    atb_etcd_req *req = arg;
    if (req->easy == NULL) {
        return;
    }
    long status = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    req->status = status;
    req->on_data(req, ATBUS_OK, req->arg);
}

static void
http_abort_fire(atb_deferred *d, void *arg)
{
    (void)d;
    atb_etcd_http *h = arg;
    /* Rescan after each: the callback may start or cancel requests. */
    for (;;) {
        atb_etcd_req *req = h->reqs;
        while (req != NULL && req->sys_err == 0) {
            req = req->next;
        }
        if (req == NULL) {
            return;
        }
        http_detach(req);
        snprintf(req->errbuf, sizeof(req->errbuf),
                 "cannot watch the connection's socket");
        req->on_done(req, ATBUS_ESYSTEM, req->arg);
    }
}

/* curl's own low-speed check averages over seconds and counts the
 * request's upload, so "nothing received for stall_ms" is timed here. */
static void
http_stall_fire(atb_timer *t, void *arg)
{
    (void)t;
    atb_etcd_req *req = arg;
    atb_etcd_http *h = req->http;
    uint64_t idle = atb_loop_now_us(h->loop) - req->last_rx_us;
    if (idle < req->stall_us &&
        atb_timer_start(h->loop, &req->stall_timer, req->stall_us - idle, 0) ==
            ATBUS_OK) {
        return;
    }
    http_detach(req);
    snprintf(req->errbuf, sizeof(req->errbuf), "nothing received for %llu ms",
             (unsigned long long)(req->stall_us / 1000));
    req->on_done(req, ATBUS_ETIMEDOUT, req->arg);
}

static size_t
http_write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
    atb_etcd_req *req = userdata;
    size_t n = size * nmemb;
    if (atb_etcd_buf_append(&req->body, p, n) != ATBUS_OK) {
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    req->last_rx_us = atb_loop_now_us(req->http->loop);
    if (req->stream && n > 0) {
        atb_loop_defer(req->http->loop, &req->data_defer, http_data_fire, req);
    }
    return n;
}

int
atb_etcd_http_init(atb_etcd_http *h, atb_loop *loop)
{
    memset(h, 0, sizeof(*h));
    h->loop = loop;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return ATBUS_ENOMEM;
    }
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        curl_global_cleanup();
        return ATBUS_ENOMEM;
    }
    atb_timer_init(&h->timer, http_timer_fire, h);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return ATBUS_OK;
}

void
atb_etcd_http_fini(atb_etcd_http *h)
{
    if (h->multi == NULL) {
        return;
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks != NULL) {
        atb_etcd_sock *hs = h->socks;
        atb_io_stop(&hs->io);
        http_sock_unlink(h, hs);
        atb_free(hs);
    }
    while (h->spare != NULL) {
        atb_etcd_sock *hs = h->spare;
        h->spare = hs->next;
        atb_free(hs);
    }
    h->nspare = 0;
    atb_timer_stop(&h->timer);
    atb_loop_cancel(h->loop, &h->timeout_defer);
    atb_loop_cancel(h->loop, &h->abort_defer);
    curl_global_cleanup();
}

void
atb_etcd_req_init(atb_etcd_req *req, size_t max_body)
{
    memset(req, 0, sizeof(*req));
    atb_etcd_buf_init(&req->body, max_body);
    atb_timer_init(&req->stall_timer, http_stall_fire, req);
}

void
atb_etcd_req_fini(atb_etcd_req *req)
{
    atb_etcd_http_cancel(req);
    atb_etcd_buf_fini(&req->body);
}

void
atb_etcd_http_cancel(atb_etcd_req *req)
{
    if (req->easy != NULL) {
        http_detach(req);
    }
}

/* http_headers builds the request's header list. */
static int
http_headers(atb_etcd_req *req, const char *auth)
{
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: "
                                                   "application/json");
    /* No "Expect: 100-continue" round trip for large bodies. */
    struct curl_slist *t = l != NULL ? curl_slist_append(l, "Expect:") : NULL;
    if (t == NULL) {
        curl_slist_free_all(l);
        return ATBUS_ENOMEM;
    }
    l = t;
    if (auth != NULL) {
        char line[HTTP_AUTH_MAX];
        int n = snprintf(line, sizeof(line), "Authorization: %s", auth);
        if (n < 0 || (size_t)n >= sizeof(line)) {
            curl_slist_free_all(l);
            return ATBUS_EINVAL;
        }
        t = curl_slist_append(l, line);
        if (t == NULL) {
            curl_slist_free_all(l);
            return ATBUS_ENOMEM;
        }
        l = t;
    }
    req->headers = l;
    return ATBUS_OK;
}

/* http_setup sets every option of a new easy handle; 0 on success. */
static int
http_setup(CURL *e, atb_etcd_req *req, const char *url, const char *body,
           size_t body_len, uint32_t timeout_ms, uint32_t connect_ms,
           int stream)
{
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                            (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
    /* etcd endpoints are dialed directly, whatever http_proxy says. */
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t)body_len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers) != CURLE_OK;
    bad |=
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, req) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, req) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf) != CURLE_OK;
    bad |=
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms) !=
           CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad |=
        curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, HTTP_KEEPIDLE_S) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, HTTP_KEEPINTVL_S) !=
           CURLE_OK;
    if (!stream) {
        /* Refuse a declared oversized body before reading any of it. */
        bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                                (curl_off_t)req->body.max) != CURLE_OK;
    }
    return bad;
}

int
atb_etcd_http_start(atb_etcd_http *h, atb_etcd_req *req, const char *url,
                    const char *body, size_t body_len, const char *auth,
                    uint32_t timeout_ms, uint32_t stall_ms, uint32_t connect_ms,
                    int stream, atb_etcd_req_cb on_done,
                    atb_etcd_req_cb on_data, void *arg)
{
    if (req->easy != NULL || on_done == NULL || (stream && on_data == NULL)) {
        return ATBUS_EINVAL;
    }
    int rc = http_reserve(h);
    if (rc != ATBUS_OK) {
        return rc;
    }
    req->http = h;
    req->sys_err = 0;
    req->stream = stream;
    req->status = 0;
    req->errbuf[0] = '\0';
    req->on_done = on_done;
    req->on_data = on_data;
    req->arg = arg;
    atb_etcd_buf_reset(&req->body);
    rc = http_headers(req, auth);
    if (rc != ATBUS_OK) {
        return rc;
    }
    CURL *e = curl_easy_init();
    if (e == NULL || http_setup(e, req, url, body, body_len, timeout_ms,
                                connect_ms, stream) != 0) {
        curl_easy_cleanup(e);
        curl_slist_free_all(req->headers);
        req->headers = NULL;
        return ATBUS_ENOMEM;
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(req->headers);
        req->headers = NULL;
        return ATBUS_ENOMEM;
    }
    req->easy = e;
    req->prev = NULL;
    req->next = h->reqs;
    if (h->reqs != NULL) {
        h->reqs->prev = req;
    }
    h->reqs = req;
    h->active++;
    req->stall_us = (uint64_t)stall_ms * 1000;
    req->last_rx_us = atb_loop_now_us(h->loop);
    if (stall_ms != 0 && atb_timer_start(h->loop, &req->stall_timer,
                                         req->stall_us, 0) != ATBUS_OK) {
        http_detach(req);
        return ATBUS_ENOMEM;
    }
    return ATBUS_OK;
}
