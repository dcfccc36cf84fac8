/*
 * The operating-system calls libatbus makes, behind one table.
 *
 * Every socket and epoll call in the library goes through atb_sys, so
 * tests can replace an entry to inject EAGAIN, EINTR, ECONNRESET or short
 * writes (SQLite's aSyscall[] idea). Production code never changes the
 * table; tests change it only while no other thread uses the library.
 *
 * atb_sys_error is the one place that turns errno into an atbus_err.
 */
#ifndef ATB_PLATFORM_SYS_H
#define ATB_PLATFORM_SYS_H

#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct atb_sys {
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
    /* Sockets only: sendmsg with MSG_NOSIGNAL, so no SIGPIPE. */
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    int (*close)(int fd);
    int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
    int (*setsockopt)(int fd, int level, int name, const void *val,
                      socklen_t len);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
    int (*epoll_wait)(int epfd, struct epoll_event *evs, int max,
                      const struct timespec *timeout);
};

/* The live table. Tests may swap entries; see tests/testing/fault_sys.h. */
extern struct atb_sys atb_sys;

/* atb_sys_defaults returns the table of real system calls, so a test can
 * restore atb_sys or call through to the real function. */
const struct atb_sys *atb_sys_defaults(void);

/* atb_sys_error maps an errno value to an atbus_err (ATBUS_ESYSTEM for
 * anything without a closer code). */
int atb_sys_error(int errnum);

#endif /* ATB_PLATFORM_SYS_H */
