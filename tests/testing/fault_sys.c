/*
 * System-call fault scripts behind atb_sys (see fault_sys.h).
 */
#include "fault_sys.h"

#include <errno.h>
#include <string.h>

#include "platform/sys.h"

struct fault_script {
    unsigned skip;
    unsigned count;
    int err;
    size_t short_bytes;
    unsigned fired;
};

static struct fault_script scripts[ATB_FAULT_OP_COUNT];

/* fault_take decides whether this call is faulted. */
static struct fault_script *
fault_take(enum atb_fault_op op)
{
    struct fault_script *f = &scripts[op];
    if (f->skip > 0) {
        f->skip--;
        return NULL;
    }
    if (f->count == 0) {
        return NULL;
    }
    f->count--;
    f->fired++;
    return f;
}

/* fault_clip limits an iovec array to at most n bytes in total. */
static int
fault_clip(const struct iovec *iov, int iovcnt, size_t n, struct iovec *out)
{
    int k = 0;
    for (int i = 0; i < iovcnt && n > 0 && k < 16; i++) {
        out[k] = iov[i];
        if (out[k].iov_len > n) {
            out[k].iov_len = n;
        }
        n -= out[k].iov_len;
        k++;
    }
    return k;
}

static ssize_t
fault_readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct fault_script *f = fault_take(ATB_FAULT_READV);
    if (f == NULL) {
        return atb_sys_defaults()->readv(fd, iov, iovcnt);
    }
    if (f->err != 0) {
        errno = f->err;
        return -1;
    }
    struct iovec clipped[16];
    int k = fault_clip(iov, iovcnt, f->short_bytes, clipped);
    return atb_sys_defaults()->readv(fd, clipped, k);
}

static ssize_t
fault_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct fault_script *f = fault_take(ATB_FAULT_WRITEV);
    if (f == NULL) {
        return atb_sys_defaults()->writev(fd, iov, iovcnt);
    }
    if (f->err != 0) {
        errno = f->err;
        return -1;
    }
    struct iovec clipped[16];
    int k = fault_clip(iov, iovcnt, f->short_bytes, clipped);
    return atb_sys_defaults()->writev(fd, clipped, k);
}

static int
fault_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct fault_script *f = fault_take(ATB_FAULT_ACCEPT4);
    if (f != NULL && f->err != 0) {
        errno = f->err;
        return -1;
    }
    return atb_sys_defaults()->accept4(fd, addr, len, flags);
}

static int
fault_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct fault_script *f = fault_take(ATB_FAULT_CONNECT);
    if (f != NULL && f->err != 0) {
        errno = f->err;
        return -1;
    }
    return atb_sys_defaults()->connect(fd, addr, len);
}

static struct {
    unsigned loss;
    unsigned dup;
    uint64_t rng;
    unsigned long dropped;
    unsigned long doubled;
} lossy;

static unsigned
lossy_draw(void)
{
    /* splitmix64, as everywhere else in the tests */
    uint64_t z = (lossy.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (unsigned)((z ^ (z >> 31)) % 1000);
}

static ssize_t
fault_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (lossy_draw() < lossy.loss) {
        lossy.dropped++;
        size_t n = 0;
        for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++) {
            n += msg->msg_iov[i].iov_len;
        }
        return (ssize_t)n;
    }
    if (lossy_draw() < lossy.dup) {
        lossy.doubled++;
        (void)atb_sys_defaults()->sendmsg(fd, msg, flags);
    }
    return atb_sys_defaults()->sendmsg(fd, msg, flags);
}

void
atb_fault_datagram_loss(unsigned loss_per_mille, unsigned dup_per_mille,
                        uint64_t seed)
{
    lossy.loss = loss_per_mille;
    lossy.dup = dup_per_mille;
    lossy.rng = seed;
    lossy.dropped = lossy.doubled = 0;
    atb_sys.sendmsg = fault_sendmsg;
}

void
atb_fault_datagram_counts(unsigned long *dropped, unsigned long *doubled)
{
    *dropped = lossy.dropped;
    *doubled = lossy.doubled;
}

void
atb_fault_arm(enum atb_fault_op op, unsigned skip, unsigned count, int err,
              size_t short_bytes)
{
    scripts[op] = (struct fault_script){
        .skip = skip,
        .count = count,
        .err = err,
        .short_bytes = short_bytes,
    };
    atb_sys.readv = fault_readv;
    atb_sys.writev = fault_writev;
    atb_sys.accept4 = fault_accept4;
    atb_sys.connect = fault_connect;
}

unsigned
atb_fault_fired(enum atb_fault_op op)
{
    return scripts[op].fired;
}

void
atb_fault_reset(void)
{
    memset(scripts, 0, sizeof(scripts));
    atb_sys = *atb_sys_defaults();
}
