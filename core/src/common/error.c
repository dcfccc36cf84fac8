/*
 * Names and descriptions of atbus error codes: the one table that turns an
 * atbus_err into text.
 */
#include <atbus/error.h>

#include <stddef.h>

struct err_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct err_entry err_table[] = {
    {ATBUS_OK, "ATBUS_OK", "success"},
    {ATBUS_EINVAL, "ATBUS_EINVAL", "invalid argument"},
    {ATBUS_ENOMEM, "ATBUS_ENOMEM", "out of memory"},
    {ATBUS_EWOULDBLOCK, "ATBUS_EWOULDBLOCK",
     "send window full, try again when writable"},
    {ATBUS_ECLOSED, "ATBUS_ECLOSED", "object closed"},
    {ATBUS_ETIMEDOUT, "ATBUS_ETIMEDOUT", "timed out"},
    {ATBUS_ENOTCONN, "ATBUS_ENOTCONN", "peer not connected"},
    {ATBUS_ENOROUTE, "ATBUS_ENOROUTE", "no route to destination"},
    {ATBUS_EEXIST, "ATBUS_EEXIST", "already exists"},
    {ATBUS_ENOTFOUND, "ATBUS_ENOTFOUND", "not found"},
    {ATBUS_ENOTSUP, "ATBUS_ENOTSUP", "not supported"},
    {ATBUS_EMSGSIZE, "ATBUS_EMSGSIZE", "message too large"},
    {ATBUS_ENOBUFS, "ATBUS_ENOBUFS", "output buffer too small"},
    {ATBUS_ESYSTEM, "ATBUS_ESYSTEM", "operating system error"},
    {ATBUS_EPERM, "ATBUS_EPERM", "not permitted"},
    {ATBUS_ECONNREFUSED, "ATBUS_ECONNREFUSED", "connection refused"},
    {ATBUS_ECONNRESET, "ATBUS_ECONNRESET", "connection reset by peer"},
    {ATBUS_EADDRINUSE, "ATBUS_EADDRINUSE", "address already in use"},
    {ATBUS_EADDRINVAL, "ATBUS_EADDRINVAL", "malformed address"},
    {ATBUS_ENOSPC, "ATBUS_ENOSPC",
     "no space left (shared memory or disk too small)"},
    {ATBUS_ETRUNCATED, "ATBUS_ETRUNCATED", "input ends inside a value"},
    {ATBUS_EVARINT, "ATBUS_EVARINT", "malformed varint"},
    {ATBUS_EFRAME_VERSION, "ATBUS_EFRAME_VERSION",
     "unsupported frame protocol version"},
    {ATBUS_EFRAME_TOO_LARGE, "ATBUS_EFRAME_TOO_LARGE",
     "frame length exceeds the configured limit"},
    {ATBUS_EFRAME_HASH, "ATBUS_EFRAME_HASH", "frame hash mismatch"},
    {ATBUS_EFRAME_DECODE, "ATBUS_EFRAME_DECODE",
     "frame message is not decodable"},
    {ATBUS_EFRAME_INVALID, "ATBUS_EFRAME_INVALID",
     "frame message breaks a protocol rule"},
    {ATBUS_ESTREAM_RESET, "ATBUS_ESTREAM_RESET",
     "stream reset or finished by the peer"},
    {ATBUS_EROUTE_CYCLE, "ATBUS_EROUTE_CYCLE",
     "upstream report would create a routing cycle"},
    {ATBUS_ETTL, "ATBUS_ETTL", "hop limit reached while forwarding"},
    {ATBUS_ERECORD, "ATBUS_ERECORD", "discovery record is invalid"},
    {ATBUS_EPARSE, "ATBUS_EPARSE", "malformed JSON or YAML text"},
    {ATBUS_EBACKEND, "ATBUS_EBACKEND", "discovery backend returned an error"},
    {ATBUS_ECOMPACTED, "ATBUS_ECOMPACTED",
     "watched revision was compacted, re-list required"},
    {ATBUS_EUNAVAILABLE, "ATBUS_EUNAVAILABLE",
     "no discovery backend endpoint reachable"},
};

static const struct err_entry *
err_find(int code)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
        if (err_table[i].code == code) {
            return &err_table[i];
        }
    }
    return NULL;
}

const char *
atbus_strerror(int err)
{
    const struct err_entry *e = err_find(err);
    return e != NULL ? e->text : "unknown error";
}

const char *
atbus_err_name(int err)
{
    const struct err_entry *e = err_find(err);
    return e != NULL ? e->name : "ATBUS_E?";
}
