/*
 * What every transport shares: the scheme registry, URL dispatch,
 * callbacks and the close protocol (on_close always from the loop).
 */
#include "transport/transport.h"

#include <atbus/error.h>

#include <stdatomic.h>
#include <string.h>

extern const atb_transport atb_transport_mem;
extern const atb_transport atb_transport_unix;
extern const atb_transport atb_transport_ipv4;
extern const atb_transport atb_transport_ipv6;
extern const atb_transport atb_transport_udp;
extern const atb_transport atb_transport_shm;

static const atb_transport *const transports[] = {
    &atb_transport_mem,  &atb_transport_unix, &atb_transport_ipv4,
    &atb_transport_ipv6, &atb_transport_udp,  &atb_transport_shm,
};

static atomic_uint_fast64_t conn_next_id = 1;

void
atb_transport_config_default(atb_transport_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_frame_message = ATB_FRAME_DEFAULT_MAX_MESSAGE;
    cfg->send_buffer_limit = (size_t)8 * 1024 * 1024;
    cfg->read_budget = (size_t)256 * 1024;
    cfg->backlog = 128;
    cfg->shm_ring_size = (size_t)16 * 1024 * 1024;
}

const atb_transport *
atb_transport_find(enum atb_url_scheme scheme)
{
    for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
        if (transports[i]->scheme == scheme) {
            return transports[i];
        }
    }
    return NULL;
}

/* transport_resolve parses url and finds its transport. */
static int
transport_resolve(const char *url, const atb_transport_config *cfg,
                  atb_transport_config *cfg_out, atb_url *u,
                  const atb_transport **tp)
{
    int rc = atb_url_parse(url, u, NULL);
    if (rc != ATBUS_OK) {
        return rc;
    }
    *tp = atb_transport_find(u->scheme);
    if (*tp == NULL) {
        return ATBUS_ENOTSUP;
    }
    if (cfg != NULL) {
        *cfg_out = *cfg;
    } else {
        atb_transport_config_default(cfg_out);
    }
    return ATBUS_OK;
}

int
atb_listen(atb_loop *loop, const char *url, const atb_transport_config *cfg,
           const atb_listener_cbs *cbs, void *arg, atb_listener **out)
{
    atb_url u;
    atb_transport_config c;
    const atb_transport *tp;
    int rc = transport_resolve(url, cfg, &c, &u, &tp);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_listener tmpl = {
        .tp = tp,
        .loop = loop,
        .cbs = *cbs,
        .arg = arg,
        .cfg = c,
        .url = u,
    };
    return tp->listen(&tmpl, out);
}

void
atb_listener_close(atb_listener *l)
{
    if (l != NULL) {
        l->tp->listener_free(l);
    }
}

int
atb_dial(atb_loop *loop, const char *url, const atb_transport_config *cfg,
         const atb_conn_cbs *cbs, void *arg, atb_conn **out)
{
    atb_url u;
    atb_transport_config c;
    const atb_transport *tp;
    int rc = transport_resolve(url, cfg, &c, &u, &tp);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_conn *conn;
    rc = tp->dial(loop, &u, &c, &conn);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_conn_set_cbs(conn, cbs, arg);
    *out = conn;
    return ATBUS_OK;
}

void
atb_conn_init_common(atb_conn *c, const atb_transport *tp, atb_loop *loop,
                     const atb_url *peer)
{
    c->tp = tp;
    c->loop = loop;
    c->state = ATB_CONN_CONNECTING;
    c->id = atomic_fetch_add(&conn_next_id, 1);
    if (peer != NULL) {
        c->peer = *peer;
    }
}

void
atb_conn_set_cbs(atb_conn *c, const atb_conn_cbs *cbs, void *arg)
{
    c->cbs = *cbs;
    c->arg = arg;
}

int
atb_conn_send(atb_conn *c, const struct iovec *iov, int iovcnt)
{
    switch (c->state) {
    case ATB_CONN_OPEN:
        return c->tp->send(c, iov, iovcnt);
    case ATB_CONN_CONNECTING:
        return ATBUS_ENOTCONN;
    default:
        return ATBUS_ECLOSED;
    }
}

static void
conn_deliver_close(atb_deferred *d, void *arg)
{
    atb_conn *c = arg;
    (void)d;
    c->state = ATB_CONN_CLOSED;
    if (c->cbs.on_close != NULL) {
        c->cbs.on_close(c, c->close_reason, c->arg);
    }
}

void
atb_conn_fail(atb_conn *c, int err)
{
    if (c->state == ATB_CONN_CLOSING || c->state == ATB_CONN_CLOSED) {
        return;
    }
    c->state = ATB_CONN_CLOSING;
    c->close_reason = err;
    c->tp->shutdown(c);
    atb_loop_defer(c->loop, &c->close_defer, conn_deliver_close, c);
}

void
atb_conn_close(atb_conn *c)
{
    atb_conn_fail(c, ATBUS_ECLOSED);
}

void
atb_conn_opened(atb_conn *c)
{
    if (c->state != ATB_CONN_CONNECTING) {
        return;
    }
    c->state = ATB_CONN_OPEN;
    if (c->cbs.on_open != NULL) {
        c->cbs.on_open(c, c->arg);
    }
}

size_t
atb_conn_queued(const atb_conn *c)
{
    if (c->state != ATB_CONN_OPEN || c->tp->queued == NULL) {
        return 0;
    }
    return c->tp->queued(c);
}

int
atb_conn_finish(atb_conn *c)
{
    if (c->state != ATB_CONN_OPEN || c->tp->finish == NULL) {
        return 0;
    }
    c->tp->finish(c);
    return 1;
}

void
atb_conn_free(atb_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->state != ATB_CONN_CLOSED) {
        /* Freed without waiting for on_close: shut down quietly. */
        if (c->state != ATB_CONN_CLOSING) {
            c->tp->shutdown(c);
        }
        atb_loop_cancel(c->loop, &c->close_defer);
    }
    c->tp->conn_free(c);
}

int
atb_transport_check_frame(const struct iovec *iov, int iovcnt,
                          size_t max_message, size_t *total)
{
    size_t sum = 0;
    uint8_t head[ATB_FRAME_HEADER_MAX];
    size_t hn = 0;
    for (int i = 0; i < iovcnt; i++) {
        sum += iov[i].iov_len;
        size_t take = iov[i].iov_len < sizeof(head) - hn ? iov[i].iov_len
                                                         : sizeof(head) - hn;
        if (take != 0) {
            memcpy(head + hn, iov[i].iov_base, take);
            hn += take;
        }
    }
    /* The header says how long the frame is: it must match what was
     * handed over, and its message must fit the limit the peer applies,
     * so an oversize frame fails here, not by closing the connection at
     * the far end. */
    uint32_t version;
    size_t mlen;
    size_t hlen;
    int rc =
        atb_frame_parse_header(head, hn, max_message, &version, &mlen, &hlen);
    if (rc == ATBUS_EFRAME_TOO_LARGE) {
        return ATBUS_EMSGSIZE;
    }
    if (rc != ATBUS_OK || hlen + mlen + ATB_FRAME_HASH_LEN != sum) {
        return ATBUS_EINVAL;
    }
    *total = sum;
    return ATBUS_OK;
}
