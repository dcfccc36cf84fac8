/*
 * unix:// — stream sockets on this host, by filesystem path or abstract
 * name. Everything after the socket is made is the shared stream code.
 *
 * A filesystem path left behind by a listener that died is reused: bind
 * fails with EADDRINUSE, a probe connect is refused, so the stale file is
 * removed and bind retried. A path with a live listener stays
 * ATBUS_EADDRINUSE.
 */
#define _GNU_SOURCE
#include <atbus/error.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform/sys.h"
#include "transport/stream/stream.h"

extern const atb_transport atb_transport_unix;

/* unix_path_stale reports whether nobody listens on the socket path. */
static int
unix_path_stale(const struct sockaddr *addr, socklen_t len)
{
    int fd = atb_sys.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    int r = atb_sys.connect(fd, addr, len);
    int stale = r != 0 && errno == ECONNREFUSED;
    atb_sys.close(fd);
    return stale;
}

static int
unix_listen(const atb_listener *tmpl, atb_listener **out)
{
    const atb_url *url = &tmpl->url;
    struct sockaddr_storage ss;
    socklen_t len;
    atb_url_sockaddr_un(url, &ss, &len);
    int fd =
        atb_sys.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    int r = atb_sys.bind(fd, (struct sockaddr *)&ss, len);
    if (r != 0 && errno == EADDRINUSE && !url->abstract &&
        unix_path_stale((struct sockaddr *)&ss, len)) {
        unlink(url->name);
        r = atb_sys.bind(fd, (struct sockaddr *)&ss, len);
    }
    if (r != 0 || atb_sys.listen(fd, tmpl->cfg.backlog) != 0) {
        int rc = atb_sys_error(errno);
        atb_sys.close(fd);
        return rc;
    }
    return atb_stream_listen(tmpl, fd, url->abstract ? NULL : url->name, out);
}

static int
unix_dial(atb_loop *loop, const atb_url *url, const atb_transport_config *cfg,
          atb_conn **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    atb_url_sockaddr_un(url, &ss, &len);
    int fd =
        atb_sys.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    return atb_stream_dial(&atb_transport_unix, loop, fd,
                           (struct sockaddr *)&ss, len, url, cfg, out);
}

const atb_transport atb_transport_unix = {
    .scheme = ATB_URL_UNIX,
    .flags = ATB_TP_SAME_HOST,
    .listen = unix_listen,
    .listener_free = atb_stream_listener_free,
    .dial = unix_dial,
    .send = atb_stream_send,
    .shutdown = atb_stream_shutdown,
    .conn_free = atb_stream_conn_free,
    .queued = atb_stream_queued,
    .finish = atb_stream_finish,
};
