/*
 * atbus error codes.
 *
 * Every atbus function that can fail returns an int: ATBUS_OK (0) on
 * success or one of the negative codes below. The numbers are part of the
 * ABI: they are never renumbered or reused, and new codes only take new
 * numbers. Each function's comment lists the codes it returns.
 */
#ifndef ATBUS_ERROR_H
#define ATBUS_ERROR_H

#include <atbus/export.h>

#ifdef __cplusplus
extern "C" {
#endif

enum atbus_err {
    ATBUS_OK = 0,

    /* General. */
    ATBUS_EINVAL = -1,      /* an argument is invalid */
    ATBUS_ENOMEM = -2,      /* out of memory */
    ATBUS_EWOULDBLOCK = -3, /* send window full; nothing was queued */
    ATBUS_ECLOSED = -4,     /* the object was closed */
    ATBUS_ETIMEDOUT = -5,   /* a deadline passed */
    ATBUS_ENOTCONN = -6,    /* the peer is not connected */
    ATBUS_ENOROUTE = -7,    /* no route to the destination */
    ATBUS_EEXIST = -8,      /* name or address already in use */
    ATBUS_ENOTFOUND = -9,   /* no such name or object */
    ATBUS_ENOTSUP = -10,    /* operation or scheme not supported */
    ATBUS_EMSGSIZE = -11,   /* message larger than the configured limit */
    ATBUS_ENOBUFS = -12,    /* a caller's output buffer is too small */
    ATBUS_ESYSTEM = -13,    /* an operating system call failed */
    ATBUS_EPERM = -14,      /* not allowed by policy or credentials */
    ATBUS_ECONNREFUSED = -15,
    ATBUS_ECONNRESET = -16,
    ATBUS_EADDRINUSE = -17,
    ATBUS_EADDRINVAL = -18, /* an address URL is malformed */
    ATBUS_ENOSPC = -19,     /* no room: shared memory or disk too small */

    /* Wire format (frames received from a peer). */
    ATBUS_ETRUNCATED = -100,       /* input ends inside a value */
    ATBUS_EVARINT = -101,          /* varint overlong or above 2^64-1 */
    ATBUS_EFRAME_VERSION = -102,   /* unsupported protocol version */
    ATBUS_EFRAME_TOO_LARGE = -103, /* length above the configured limit */
    ATBUS_EFRAME_HASH = -104,      /* frame hash does not match */
    ATBUS_EFRAME_DECODE = -105,    /* message is not valid protobuf */
    ATBUS_EFRAME_INVALID = -106,   /* decodes but breaks a protocol rule */

    /* Streams. */
    ATBUS_ESTREAM_RESET = -150, /* the peer reset or finished the stream */

    /* Routing. */
    ATBUS_EROUTE_CYCLE = -200, /* an upstream report would close a cycle */
    ATBUS_ETTL = -201,         /* hop limit reached while forwarding */

    /* Discovery records and their sources. */
    ATBUS_ERECORD = -300, /* a record breaks a rule; detail names the field */
    ATBUS_EPARSE = -301,  /* JSON or YAML text is not well formed */

    /* Discovery backends (etcd). */
    ATBUS_EBACKEND = -400,     /* the backend answered with an error */
    ATBUS_ECOMPACTED = -401,   /* watched revision compacted; re-list needed */
    ATBUS_EUNAVAILABLE = -402, /* no backend endpoint reachable */
};

/*
 * atbus_strerror returns a static, human-readable description of an atbus
 * error code; unknown codes give "unknown error". Never returns NULL.
 */
ATBUS_API const char *atbus_strerror(int err);

/*
 * atbus_err_name returns the symbolic name of an error code, e.g.
 * "ATBUS_EFRAME_HASH", or "ATBUS_E?" for an unknown code. For logs and
 * metrics labels. Never returns NULL.
 */
ATBUS_API const char *atbus_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* ATBUS_ERROR_H */
