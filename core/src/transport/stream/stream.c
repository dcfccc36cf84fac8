/*
 * Stream-socket connections and listeners (see stream.h).
 */
#define _GNU_SOURCE
#include "transport/stream/stream.h"

#include <atbus/error.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "platform/sys.h"

/* Retry accepting this long after running out of file descriptors; a
 * readable listening socket would otherwise spin the loop. */
#define ACCEPT_RETRY_US 100000u
/* Size of each connection's read buffer. */
#define READ_CHUNK ((size_t)64 * 1024)

static void stream_io_cb(atb_io *io, unsigned events, void *arg);

void
atb_stream_tune(int fd, int tcp)
{
    if (tcp) {
        int one = 1;
        /* Frames are written whole and batched per loop turn; Nagle would
         * only add latency. */
        (void)atb_sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                 sizeof(one));
    }
}

static int
stream_conn_new(const atb_transport *tp, atb_loop *loop, int fd,
                const atb_url *peer, const atb_transport_config *cfg,
                atb_stream_conn **out)
{
    atb_stream_conn *s = atb_calloc(1, sizeof(*s));
    if (s == NULL) {
        return ATBUS_ENOMEM;
    }
    s->rbuf = atb_malloc(READ_CHUNK);
    if (s->rbuf == NULL) {
        atb_free(s);
        return ATBUS_ENOMEM;
    }
    s->rcap = READ_CHUNK;
    atb_conn_init_common(&s->base, tp, loop, peer);
    s->fd = fd;
    s->cfg = *cfg;
    atb_frame_decoder_init(&s->decoder, cfg->max_frame_message);
    *out = s;
    return ATBUS_OK;
}

/* ---- output -------------------------------------------------------- */

static void
stream_set_events(atb_stream_conn *s)
{
    unsigned ev = ATB_IO_READ;
    if (s->waiting_output) {
        ev |= ATB_IO_WRITE;
    }
    int rc = atb_io_start(s->base.loop, &s->io, s->fd, ev, stream_io_cb, s);
    if (rc != ATBUS_OK) {
        atb_conn_fail(&s->base, rc);
    }
}

/* stream_flush writes what is queued; returns 0, or -1 if the connection
 * failed. */
static int
stream_flush(atb_stream_conn *s)
{
    while (s->shead < s->slen) {
        struct iovec iov = {.iov_base = s->sbuf + s->shead,
                            .iov_len = s->slen - s->shead};
        ssize_t n = atb_sys.writev(s->fd, &iov, 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!s->waiting_output) {
                    s->waiting_output = 1;
                    stream_set_events(s);
                }
                return 0;
            }
            atb_conn_fail(&s->base, atb_sys_error(errno));
            return -1;
        }
        s->base.stats.syscalls_out++;
        s->base.stats.bytes_out += (uint64_t)n;
        s->shead += (size_t)n;
    }
    s->shead = 0;
    s->slen = 0;
    if (s->waiting_output) {
        s->waiting_output = 0;
        stream_set_events(s);
    }
    if (s->want_writable && s->base.state == ATB_CONN_OPEN) {
        s->want_writable = 0;
        if (s->base.cbs.on_writable != NULL) {
            s->base.cbs.on_writable(&s->base, s->base.arg);
        }
    }
    return 0;
}

static void
stream_flush_deferred(atb_deferred *d, void *arg)
{
    (void)d;
    atb_stream_conn *s = arg;
    if (s->base.state == ATB_CONN_OPEN && !s->waiting_output) {
        (void)stream_flush(s);
    }
}

/* stream_reserve makes room for n more bytes, compacting before growing. */
static int
stream_reserve(atb_stream_conn *s, size_t n)
{
    if (s->shead > 0 && s->slen - s->shead + n > s->scap - s->slen) {
        memmove(s->sbuf, s->sbuf + s->shead, s->slen - s->shead);
        s->slen -= s->shead;
        s->shead = 0;
    }
    if (s->scap - s->slen >= n) {
        return ATBUS_OK;
    }
    size_t cap = s->scap != 0 ? s->scap : 64 * 1024;
    while (cap - s->slen < n) {
        cap *= 2;
    }
    uint8_t *nb = atb_realloc(s->sbuf, cap);
    if (nb == NULL) {
        return ATBUS_ENOMEM;
    }
    s->sbuf = nb;
    s->scap = cap;
    return ATBUS_OK;
}

int
atb_stream_send(atb_conn *c, const struct iovec *iov, int iovcnt)
{
    atb_stream_conn *s = (atb_stream_conn *)c;
    size_t total;
    int rc = atb_transport_check_frame(iov, iovcnt, s->cfg.max_frame_message,
                                       &total);
    if (rc != ATBUS_OK) {
        return rc;
    }
    size_t queued = s->slen - s->shead;
    /* An empty queue always takes one frame, so a frame larger than the
     * limit still goes through alone. */
    if (queued != 0 && queued + total > s->cfg.send_buffer_limit) {
        s->want_writable = 1;
        c->stats.sends_would_block++;
        return ATBUS_EWOULDBLOCK;
    }
    rc = stream_reserve(s, total);
    if (rc != ATBUS_OK) {
        return rc;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len != 0) {
            memcpy(s->sbuf + s->slen, iov[i].iov_base, iov[i].iov_len);
            s->slen += iov[i].iov_len;
        }
    }
    c->stats.frames_out++;
    if (!s->waiting_output) {
        atb_loop_defer(c->loop, &s->flush_defer, stream_flush_deferred, s);
    }
    return ATBUS_OK;
}

/* ---- input --------------------------------------------------------- */

/* stream_deliver cuts frames from n bytes of rbuf; returns -1 if the
 * connection ended (framing error or closed by a callback). */
static int
stream_deliver(atb_stream_conn *s, size_t n)
{
    const uint8_t *p = s->rbuf;
    while (n > 0) {
        size_t used;
        atb_frame_view v;
        int rc = atb_frame_decoder_next(&s->decoder, p, n, &used, &v);
        p += used;
        n -= used;
        if (rc == 0) {
            return 0;
        }
        if (rc < 0) {
            atb_conn_fail(&s->base, rc);
            return -1;
        }
        s->base.stats.frames_in++;
        if (s->base.cbs.on_frame != NULL) {
            s->base.cbs.on_frame(&s->base, &v, s->base.arg);
        }
        if (s->base.state != ATB_CONN_OPEN) {
            return -1;
        }
    }
    return 0;
}

static void
stream_read(atb_stream_conn *s)
{
    size_t budget = s->cfg.read_budget;
    while (budget > 0 && s->base.state == ATB_CONN_OPEN) {
        struct iovec iov = {.iov_base = s->rbuf, .iov_len = s->rcap};
        ssize_t n = atb_sys.readv(s->fd, &iov, 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                atb_conn_fail(&s->base, atb_sys_error(errno));
            }
            return;
        }
        if (n == 0) {
            /* The peer closed its end. A frame cut short by it is lost
             * with the connection, like any unacknowledged data. */
            atb_conn_fail(&s->base, ATBUS_ECONNRESET);
            return;
        }
        s->base.stats.bytes_in += (uint64_t)n;
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if (stream_deliver(s, (size_t)n) != 0) {
            return;
        }
        if ((size_t)n < s->rcap) {
            return; /* drained: no need for a read that says EAGAIN */
        }
    }
}

/* stream_connect_done finishes a non-blocking connect. */
static void
stream_connect_done(atb_stream_conn *s)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (atb_sys.getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        int rc = atb_sys_error(err);
        atb_conn_fail(&s->base,
                      rc == ATBUS_ENOTFOUND ? ATBUS_ECONNREFUSED : rc);
        return;
    }
    s->waiting_output = 0;
    stream_set_events(s);
    if (s->base.state == ATB_CONN_CONNECTING) {
        atb_conn_opened(&s->base);
    }
}

static void
stream_io_cb(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    atb_stream_conn *s = arg;
    if (s->base.state == ATB_CONN_CONNECTING) {
        stream_connect_done(s);
        return;
    }
    if (events & (ATB_IO_READ | ATB_IO_ERROR)) {
        stream_read(s);
    }
    if ((events & ATB_IO_WRITE) && s->base.state == ATB_CONN_OPEN) {
        (void)stream_flush(s);
    }
}

/* stream_open_deferred reports a connect that finished (or failed) inside
 * atb_stream_dial, so callbacks never run before dial returns. */
static void
stream_open_deferred(atb_deferred *d, void *arg)
{
    (void)d;
    atb_stream_conn *s = arg;
    if (s->open_error != 0) {
        atb_conn_fail(&s->base, s->open_error);
        return;
    }
    stream_set_events(s);
    if (s->base.state == ATB_CONN_CONNECTING) {
        atb_conn_opened(&s->base);
    }
}

int
atb_stream_dial(const atb_transport *tp, atb_loop *loop, int fd,
                const struct sockaddr *addr, socklen_t len, const atb_url *peer,
                const atb_transport_config *cfg, atb_conn **out)
{
    atb_stream_conn *s;
    int rc = stream_conn_new(tp, loop, fd, peer, cfg, &s);
    if (rc != ATBUS_OK) {
        atb_sys.close(fd);
        return rc;
    }
    int r;
    do {
        r = atb_sys.connect(fd, addr, len);
    } while (r != 0 && errno == EINTR);
    if (r == 0) {
        atb_loop_defer(loop, &s->open_defer, stream_open_deferred, s);
    } else if (errno == EINPROGRESS || errno == EAGAIN) {
        /* Writable means connected or failed; SO_ERROR tells which. */
        rc = atb_io_start(loop, &s->io, fd, ATB_IO_WRITE, stream_io_cb, s);
        if (rc != ATBUS_OK) {
            s->open_error = rc;
            atb_loop_defer(loop, &s->open_defer, stream_open_deferred, s);
        }
    } else {
        rc = atb_sys_error(errno);
        s->open_error = rc == ATBUS_ENOTFOUND ? ATBUS_ECONNREFUSED : rc;
        atb_loop_defer(loop, &s->open_defer, stream_open_deferred, s);
    }
    *out = &s->base;
    return ATBUS_OK;
}

void
atb_stream_shutdown(atb_conn *c)
{
    atb_stream_conn *s = (atb_stream_conn *)c;
    atb_io_stop(&s->io);
    atb_loop_cancel(c->loop, &s->flush_defer);
    atb_loop_cancel(c->loop, &s->open_defer);
    if (s->fd >= 0) {
        atb_sys.close(s->fd);
        s->fd = -1;
    }
    s->shead = 0;
    s->slen = 0;
}

size_t
atb_stream_queued(const atb_conn *c)
{
    const atb_stream_conn *s = (const atb_stream_conn *)c;
    return s->slen - s->shead;
}

void
atb_stream_finish(atb_conn *c)
{
    atb_stream_conn *s = (atb_stream_conn *)c;
    (void)shutdown(s->fd, SHUT_WR);
}

void
atb_stream_conn_free(atb_conn *c)
{
    atb_stream_conn *s = (atb_stream_conn *)c;
    atb_frame_decoder_fini(&s->decoder);
    atb_free(s->rbuf);
    atb_free(s->sbuf);
    atb_free(s);
}

/* ---- listener ------------------------------------------------------ */

static void stream_accept_cb(atb_io *io, unsigned events, void *arg);

static void
stream_accept_retry(atb_timer *t, void *arg)
{
    (void)t;
    atb_stream_listener *sl = arg;
    int rc = atb_io_start(sl->base.loop, &sl->io, sl->fd, ATB_IO_READ,
                          stream_accept_cb, sl);
    if (rc != ATBUS_OK && sl->base.cbs.on_error != NULL) {
        sl->base.cbs.on_error(&sl->base, rc, sl->base.arg);
    }
}

static void
stream_accept_cb(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    atb_stream_listener *sl = arg;
    for (int i = 0; i < 64; i++) {
        int fd =
            atb_sys.accept4(sl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EAGAIN) {
                return;
            }
            int rc = atb_sys_error(errno);
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
                errno == ENOBUFS) {
                atb_io_stop(&sl->io);
                (void)atb_timer_start(sl->base.loop, &sl->retry,
                                      ACCEPT_RETRY_US, 0);
            }
            if (sl->base.cbs.on_error != NULL) {
                sl->base.cbs.on_error(&sl->base, rc, sl->base.arg);
            }
            return;
        }
        atb_stream_tune(fd, sl->base.url.scheme != ATB_URL_UNIX);
        atb_stream_conn *s;
        int rc = stream_conn_new(sl->base.tp, sl->base.loop, fd, NULL,
                                 &sl->base.cfg, &s);
        if (rc != ATBUS_OK) {
            atb_sys.close(fd);
            if (sl->base.cbs.on_error != NULL) {
                sl->base.cbs.on_error(&sl->base, rc, sl->base.arg);
            }
            continue;
        }
        s->base.state = ATB_CONN_OPEN;
        rc = atb_io_start(sl->base.loop, &s->io, fd, ATB_IO_READ, stream_io_cb,
                          s);
        if (rc != ATBUS_OK) {
            atb_stream_shutdown(&s->base);
            atb_stream_conn_free(&s->base);
            if (sl->base.cbs.on_error != NULL) {
                sl->base.cbs.on_error(&sl->base, rc, sl->base.arg);
            }
            continue;
        }
        sl->base.cbs.on_accept(&sl->base, &s->base, sl->base.arg);
    }
}

int
atb_stream_listen(const atb_listener *tmpl, int fd, const char *unlink_path,
                  atb_listener **out)
{
    atb_stream_listener *sl = atb_calloc(1, sizeof(*sl));
    if (sl == NULL) {
        atb_sys.close(fd);
        return ATBUS_ENOMEM;
    }
    sl->base = *tmpl;
    sl->fd = fd;
    atb_loop *loop = tmpl->loop;
    atb_timer_init(&sl->retry, stream_accept_retry, sl);
    if (unlink_path != NULL) {
        strncpy(sl->unlink_path, unlink_path, sizeof(sl->unlink_path) - 1);
    }
    int rc = atb_io_start(loop, &sl->io, fd, ATB_IO_READ, stream_accept_cb, sl);
    if (rc != ATBUS_OK) {
        atb_sys.close(fd);
        atb_free(sl);
        return rc;
    }
    *out = &sl->base;
    return ATBUS_OK;
}

void
atb_stream_listener_free(atb_listener *l)
{
    atb_stream_listener *sl = (atb_stream_listener *)l;
    atb_io_stop(&sl->io);
    atb_timer_stop(&sl->retry);
    atb_sys.close(sl->fd);
    if (sl->unlink_path[0] != '\0') {
        unlink(sl->unlink_path);
    }
    atb_free(sl);
}
