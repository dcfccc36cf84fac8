/*
 * ipv4:// and ipv6:// — TCP with TCP_NODELAY. Everything after the socket
 * is made is the shared stream code.
 */
#define _GNU_SOURCE
#include <atbus/error.h>

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "platform/sys.h"
#include "transport/stream/stream.h"

extern const atb_transport atb_transport_ipv4;
extern const atb_transport atb_transport_ipv6;

static int
tcp_socket(const atb_url *url)
{
    return atb_sys.socket(url->addr.ss_family,
                          SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static int
tcp_listen(const atb_listener *tmpl, atb_listener **out)
{
    const atb_url *url = &tmpl->url;
    int fd = tcp_socket(url);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    int one = 1;
    /* Restarting a listener must not wait out TIME_WAIT; a second live
     * listener on the port still fails (no SO_REUSEPORT). */
    (void)atb_sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (url->addr.ss_family == AF_INET6) {
        /* ipv6:// means IPv6 only; IPv4 has its own scheme. */
        (void)atb_sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
                                 sizeof(one));
    }
    if (atb_sys.bind(fd, (const struct sockaddr *)&url->addr, url->addr_len) !=
            0 ||
        atb_sys.listen(fd, tmpl->cfg.backlog) != 0) {
        int rc = atb_sys_error(errno);
        atb_sys.close(fd);
        return rc;
    }
    return atb_stream_listen(tmpl, fd, NULL, out);
}

static int
tcp_dial(atb_loop *loop, const atb_url *url, const atb_transport_config *cfg,
         atb_conn **out)
{
    int fd = tcp_socket(url);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    atb_stream_tune(fd, 1);
    const atb_transport *tp = url->addr.ss_family == AF_INET6
                                  ? &atb_transport_ipv6
                                  : &atb_transport_ipv4;
    return atb_stream_dial(tp, loop, fd, (const struct sockaddr *)&url->addr,
                           url->addr_len, url, cfg, out);
}

const atb_transport atb_transport_ipv4 = {
    .scheme = ATB_URL_IPV4,
    .listen = tcp_listen,
    .listener_free = atb_stream_listener_free,
    .dial = tcp_dial,
    .send = atb_stream_send,
    .shutdown = atb_stream_shutdown,
    .conn_free = atb_stream_conn_free,
    .queued = atb_stream_queued,
    .finish = atb_stream_finish,
};

const atb_transport atb_transport_ipv6 = {
    .scheme = ATB_URL_IPV6,
    .listen = tcp_listen,
    .listener_free = atb_stream_listener_free,
    .dial = tcp_dial,
    .send = atb_stream_send,
    .shutdown = atb_stream_shutdown,
    .conn_free = atb_stream_conn_free,
    .queued = atb_stream_queued,
    .finish = atb_stream_finish,
};
