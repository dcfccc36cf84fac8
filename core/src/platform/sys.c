/*
 * The real system calls behind atb_sys, and errno translation.
 */
#define _GNU_SOURCE /* accept4, epoll_pwait2 */
#include "platform/sys.h"

#include <atbus/error.h>

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <unistd.h>

/* sys_epoll_wait waits with microsecond resolution where the kernel has
 * epoll_pwait2 (Linux 5.11+), so retransmission timers well under a
 * millisecond fire on time; older kernels get epoll_wait rounded up. */
static int
sys_epoll_wait(int epfd, struct epoll_event *evs, int max,
               const struct timespec *timeout)
{
    static atomic_int no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int n = epoll_pwait2(epfd, evs, max, timeout, NULL);
        if (n >= 0 || errno != ENOSYS) {
            return n;
        }
        atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
    }
    int ms = -1;
    if (timeout != NULL) {
        long long t = (long long)timeout->tv_sec * 1000 +
                      (timeout->tv_nsec + 999999) / 1000000;
        ms = t > INT_MAX ? INT_MAX : (int)t;
    }
    return epoll_wait(epfd, evs, max, ms);
}

/* sys_writev writes to a socket without raising SIGPIPE when the peer
 * is gone: the library must not kill an application that has not
 * ignored the signal; the error comes back as EPIPE instead. */
static ssize_t
sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)(uintptr_t)iov,
                         .msg_iovlen = (size_t)iovcnt};
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* One initializer for both tables: C needs a constant expression for the
 * mutable one, so it cannot copy the const one. */
#define SYS_DEFAULTS                                                           \
    {                                                                          \
        .socket = socket, .bind = bind, .listen = listen, .accept4 = accept4,  \
        .connect = connect, .readv = readv, .writev = sys_writev,              \
        .recvmsg = recvmsg, .sendmsg = sendmsg, .close = close,                \
        .getsockopt = getsockopt, .setsockopt = setsockopt,                    \
        .epoll_ctl = epoll_ctl, .epoll_wait = sys_epoll_wait,                  \
    }

static const struct atb_sys sys_defaults = SYS_DEFAULTS;

struct atb_sys atb_sys = SYS_DEFAULTS;

const struct atb_sys *
atb_sys_defaults(void)
{
    return &sys_defaults;
}

int
atb_sys_error(int errnum)
{
    switch (errnum) {
    case 0:
        return ATBUS_OK;
    case EAGAIN:
        return ATBUS_EWOULDBLOCK;
    case ENOMEM:
    case ENOBUFS:
        return ATBUS_ENOMEM;
    case EINVAL:
        return ATBUS_EINVAL;
    case ECONNREFUSED:
        return ATBUS_ECONNREFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return ATBUS_ECONNRESET;
    case EADDRINUSE:
        return ATBUS_EADDRINUSE;
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
    case ENAMETOOLONG:
        return ATBUS_EADDRINVAL;
    case ENOENT:
        return ATBUS_ENOTFOUND;
    case EEXIST:
        return ATBUS_EEXIST;
    case ENOSPC:
        return ATBUS_ENOSPC;
    case ETIMEDOUT:
        return ATBUS_ETIMEDOUT;
    case EACCES:
    case EPERM:
        return ATBUS_EPERM;
    case ENOTCONN:
        return ATBUS_ENOTCONN;
    case EMSGSIZE:
        return ATBUS_EMSGSIZE;
    case ENETUNREACH:
    case EHOSTUNREACH:
        return ATBUS_ENOROUTE;
    case EOPNOTSUPP:
    case EPROTONOSUPPORT:
        return ATBUS_ENOTSUP;
    default:
        return ATBUS_ESYSTEM;
    }
}
