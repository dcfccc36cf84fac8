/*
 * udp:// — one frame per datagram, no reliability: loss, duplication and
 * reordering are repaired by the stream layer above, which also cuts
 * messages to the connection's MTU (atb_transport_config.udp_mtu).
 *
 * A dialed connection owns a connected socket, so the kernel drops
 * datagrams from other sources and reports ICMP port-unreachable as
 * ATBUS_ECONNREFUSED. A listener owns one socket for all peers and makes a
 * connection per peer address on its first valid frame. A datagram that
 * is not exactly one valid frame is dropped and counted; it does not end
 * the connection, because anyone can send a datagram with a forged source.
 */
#define _GNU_SOURCE
#include <atbus/error.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "common/alloc.h"
#include "platform/sys.h"
#include "transport/transport.h"

extern const atb_transport atb_transport_udp;

#define UDP_MTU_V4 548u
#define UDP_MTU_V6 1232u
/* A datagram can be up to 64 KiB; read whole ones so a too-large frame is
 * recognised and counted instead of silently truncated. */
#define UDP_RECV_MAX 65536u
/* Datagrams read per readiness event, for fairness between sockets. */
#define UDP_READ_BATCH 64

struct udp_listener;

struct udp_conn {
    atb_conn base;
    int fd;                      /* own socket (dialed) or the listener's */
    struct udp_listener *server; /* set for accepted connections */
    struct udp_conn *next;       /* in the listener's peer list */
    atb_io io;                   /* dialed only */
    atb_deferred open_defer;
    atb_transport_config cfg;
    size_t mtu;
    uint8_t *rbuf; /* dialed only */
};

struct udp_listener {
    atb_listener base;
    int fd;
    atb_io io;
    size_t mtu;
    uint8_t *rbuf;
    struct udp_conn *peers;
    uint64_t dropped; /* bad datagrams from unknown peers */
};

static size_t
udp_mtu(const atb_transport_config *cfg, int family)
{
    if (cfg->udp_mtu != 0) {
        return cfg->udp_mtu;
    }
    return family == AF_INET6 ? UDP_MTU_V6 : UDP_MTU_V4;
}

/* udp_frame checks that a datagram is exactly one valid frame. */
static int
udp_frame(const uint8_t *p, size_t n, const atb_transport_config *cfg,
          atb_frame_view *v)
{
    int rc = atb_frame_parse(p, n, cfg->max_frame_message, v);
    if (rc == ATBUS_OK && v->frame_len != n) {
        rc = ATBUS_EFRAME_INVALID;
    }
    return rc;
}

static void
udp_deliver(struct udp_conn *c, const atb_frame_view *v, size_t n)
{
    c->base.stats.frames_in++;
    c->base.stats.bytes_in += n;
    if (c->base.cbs.on_frame != NULL) {
        c->base.cbs.on_frame(&c->base, v, c->base.arg);
    }
}

static struct udp_conn *
udp_conn_new(atb_loop *loop, int fd, const atb_url *peer,
             const atb_transport_config *cfg)
{
    struct udp_conn *c = atb_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    atb_conn_init_common(&c->base, &atb_transport_udp, loop, peer);
    c->fd = fd;
    c->cfg = *cfg;
    c->mtu = udp_mtu(cfg, peer->addr.ss_family);
    return c;
}

/* ---- dialed connections -------------------------------------------- */

static void
udp_dial_read(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    struct udp_conn *c = arg;
    int refused = 0;
    for (int i = 0; i < UDP_READ_BATCH && c->base.state == ATB_CONN_OPEN; i++) {
        struct iovec iov = {.iov_base = c->rbuf, .iov_len = UDP_RECV_MAX};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = atb_sys.recvmsg(c->fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == ECONNREFUSED && !refused) {
                /* ICMP port-unreachable is reported ahead of datagrams
                 * that arrived before it (often the peer's last words,
                 * such as a close message): read those first. */
                refused = 1;
                continue;
            }
            if (errno != EAGAIN) {
                /* ICMP errors arrive here on a connected socket. */
                atb_conn_fail(&c->base, atb_sys_error(errno));
            }
            break;
        }
        atb_frame_view v;
        if (udp_frame(c->rbuf, (size_t)n, &c->cfg, &v) != ATBUS_OK) {
            c->base.stats.frames_dropped++;
            continue;
        }
        udp_deliver(c, &v, (size_t)n);
    }
    if (refused) {
        atb_conn_fail(&c->base, ATBUS_ECONNREFUSED);
    }
}

static void
udp_open_deferred(atb_deferred *d, void *arg)
{
    (void)d;
    struct udp_conn *c = arg;
    int rc = atb_io_start(c->base.loop, &c->io, c->fd, ATB_IO_READ,
                          udp_dial_read, c);
    if (rc != ATBUS_OK) {
        atb_conn_fail(&c->base, rc);
        return;
    }
    atb_conn_opened(&c->base);
}

static int
udp_dial(atb_loop *loop, const atb_url *url, const atb_transport_config *cfg,
         atb_conn **out)
{
    int fd = atb_sys.socket(url->addr.ss_family,
                            SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    if (atb_sys.connect(fd, (const struct sockaddr *)&url->addr,
                        url->addr_len) != 0) {
        int rc = atb_sys_error(errno);
        atb_sys.close(fd);
        return rc;
    }
    struct udp_conn *c = udp_conn_new(loop, fd, url, cfg);
    uint8_t *rbuf = atb_malloc(UDP_RECV_MAX);
    if (c == NULL || rbuf == NULL) {
        atb_free(c);
        atb_free(rbuf);
        atb_sys.close(fd);
        return ATBUS_ENOMEM;
    }
    c->rbuf = rbuf;
    atb_loop_defer(loop, &c->open_defer, udp_open_deferred, c);
    *out = &c->base;
    return ATBUS_OK;
}

/* ---- sending ------------------------------------------------------- */

static int
udp_send(atb_conn *conn, const struct iovec *iov, int iovcnt)
{
    struct udp_conn *c = (struct udp_conn *)conn;
    size_t total;
    int rc = atb_transport_check_frame(iov, iovcnt, c->cfg.max_frame_message,
                                       &total);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (total > c->mtu) {
        return ATBUS_EMSGSIZE;
    }
    struct msghdr msg = {
        .msg_iov = (struct iovec *)(uintptr_t)iov,
        .msg_iovlen = (size_t)iovcnt,
    };
    if (c->server != NULL) {
        msg.msg_name = &c->base.peer.addr;
        msg.msg_namelen = c->base.peer.addr_len;
    }
    ssize_t n;
    do {
        n = atb_sys.sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) {
            /* Datagrams are not queued here: the stream layer above
             * retransmits what is lost, so a full socket buffer is
             * reported, not hidden. */
            conn->stats.sends_would_block++;
            return ATBUS_EWOULDBLOCK;
        }
        if (errno == ECONNREFUSED) {
            atb_conn_fail(conn, ATBUS_ECONNREFUSED);
            return ATBUS_ECLOSED;
        }
        return atb_sys_error(errno);
    }
    conn->stats.frames_out++;
    conn->stats.bytes_out += (uint64_t)n;
    conn->stats.syscalls_out++;
    return ATBUS_OK;
}

/* ---- listeners ----------------------------------------------------- */

static int
udp_same_addr(const atb_url *u, const struct sockaddr_storage *ss,
              socklen_t len)
{
    return u->addr_len == len && memcmp(&u->addr, ss, len) == 0;
}

static void
udp_listen_read(atb_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    struct udp_listener *ul = arg;
    for (int i = 0; i < UDP_READ_BATCH; i++) {
        struct sockaddr_storage from;
        struct iovec iov = {.iov_base = ul->rbuf, .iov_len = UDP_RECV_MAX};
        struct msghdr msg = {
            .msg_name = &from,
            .msg_namelen = sizeof(from),
            .msg_iov = &iov,
            .msg_iovlen = 1,
        };
        ssize_t n = atb_sys.recvmsg(ul->fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && ul->base.cbs.on_error != NULL) {
                ul->base.cbs.on_error(&ul->base, atb_sys_error(errno),
                                      ul->base.arg);
            }
            return;
        }
        struct udp_conn *c = ul->peers;
        while (c != NULL &&
               !udp_same_addr(&c->base.peer, &from, msg.msg_namelen)) {
            c = c->next;
        }
        atb_frame_view v;
        if (udp_frame(ul->rbuf, (size_t)n, &ul->base.cfg, &v) != ATBUS_OK) {
            if (c != NULL) {
                c->base.stats.frames_dropped++;
            } else {
                ul->dropped++;
            }
            continue;
        }
        if (c == NULL) {
            /* A new peer, known only once it sent a valid frame. */
            atb_url peer = ul->base.url;
            memcpy(&peer.addr, &from, msg.msg_namelen);
            peer.addr_len = msg.msg_namelen;
            c = udp_conn_new(ul->base.loop, ul->fd, &peer, &ul->base.cfg);
            if (c == NULL) {
                if (ul->base.cbs.on_error != NULL) {
                    ul->base.cbs.on_error(&ul->base, ATBUS_ENOMEM,
                                          ul->base.arg);
                }
                continue;
            }
            c->server = ul;
            c->next = ul->peers;
            ul->peers = c;
            c->base.state = ATB_CONN_OPEN;
            ul->base.cbs.on_accept(&ul->base, &c->base, ul->base.arg);
        }
        if (c->base.state == ATB_CONN_OPEN) {
            udp_deliver(c, &v, (size_t)n);
        }
    }
}

static int
udp_listen(const atb_listener *tmpl, atb_listener **out)
{
    const atb_url *url = &tmpl->url;
    int fd = atb_sys.socket(url->addr.ss_family,
                            SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    if (url->addr.ss_family == AF_INET6) {
        int one = 1;
        (void)atb_sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
                                 sizeof(one));
    }
    if (atb_sys.bind(fd, (const struct sockaddr *)&url->addr, url->addr_len) !=
        0) {
        int rc = atb_sys_error(errno);
        atb_sys.close(fd);
        return rc;
    }
    struct udp_listener *ul = atb_calloc(1, sizeof(*ul));
    uint8_t *rbuf = atb_malloc(UDP_RECV_MAX);
    if (ul == NULL || rbuf == NULL) {
        atb_free(ul);
        atb_free(rbuf);
        atb_sys.close(fd);
        return ATBUS_ENOMEM;
    }
    ul->base = *tmpl;
    ul->fd = fd;
    ul->rbuf = rbuf;
    int rc =
        atb_io_start(tmpl->loop, &ul->io, fd, ATB_IO_READ, udp_listen_read, ul);
    if (rc != ATBUS_OK) {
        atb_free(rbuf);
        atb_free(ul);
        atb_sys.close(fd);
        return rc;
    }
    *out = &ul->base;
    return ATBUS_OK;
}

/* udp_unlink removes an accepted connection from its listener. */
static void
udp_unlink(struct udp_conn *c)
{
    if (c->server == NULL) {
        return;
    }
    for (struct udp_conn **pp = &c->server->peers; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->server = NULL;
    c->fd = -1;
}

static void
udp_listener_free(atb_listener *l)
{
    struct udp_listener *ul = (struct udp_listener *)l;
    /* Accepted connections share this socket: they end now. */
    while (ul->peers != NULL) {
        struct udp_conn *c = ul->peers;
        udp_unlink(c);
        atb_conn_fail(&c->base, ATBUS_ECLOSED);
    }
    atb_io_stop(&ul->io);
    atb_sys.close(ul->fd);
    atb_free(ul->rbuf);
    atb_free(ul);
}

static void
udp_shutdown(atb_conn *conn)
{
    struct udp_conn *c = (struct udp_conn *)conn;
    atb_loop_cancel(conn->loop, &c->open_defer);
    if (c->server != NULL) {
        udp_unlink(c);
        return;
    }
    atb_io_stop(&c->io);
    if (c->fd >= 0) {
        atb_sys.close(c->fd);
        c->fd = -1;
    }
}

static void
udp_conn_free(atb_conn *conn)
{
    struct udp_conn *c = (struct udp_conn *)conn;
    atb_free(c->rbuf);
    atb_free(c);
}

const atb_transport atb_transport_udp = {
    .scheme = ATB_URL_UDP,
    .flags = ATB_TP_DATAGRAM,
    .listen = udp_listen,
    .listener_free = udp_listener_free,
    .dial = udp_dial,
    .send = udp_send,
    .shutdown = udp_shutdown,
    .conn_free = udp_conn_free,
};
