/*
 * A growable byte buffer with a hard cap, for request bodies built piece
 * by piece and response bodies received piece by piece (the shape of
 * curl's dynbuf). The cap is checked before the buffer grows, so a peer
 * that sends too much costs at most the cap. An error is sticky: appends
 * after a failure do nothing, and the builder checks once at the end.
 * The content is always NUL-terminated (the NUL is not counted in len
 * nor in the cap).
 */
#ifndef ATB_ETCD_ETCD_BUF_H
#define ATB_ETCD_ETCD_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct atb_etcd_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t alloc;
    size_t max; /* len never exceeds it */
    int err;    /* first failure: ATBUS_ENOMEM or ATBUS_EMSGSIZE */
} atb_etcd_buf;

/* atb_etcd_buf_init prepares an empty buffer holding at most max bytes. */
void atb_etcd_buf_init(atb_etcd_buf *b, size_t max);

/* atb_etcd_buf_fini frees the storage; b is empty and reusable after. */
void atb_etcd_buf_fini(atb_etcd_buf *b);

/* atb_etcd_buf_reset empties b and clears its error; keeps the storage. */
void atb_etcd_buf_reset(atb_etcd_buf *b);

/*
 * atb_etcd_buf_append appends n bytes. Returns ATBUS_OK, ATBUS_EMSGSIZE
 * (len would pass max) or ATBUS_ENOMEM; after a failure b keeps its
 * content and every later append returns the same error.
 */
int atb_etcd_buf_append(atb_etcd_buf *b, const void *p, size_t n);

/* atb_etcd_buf_str appends a NUL-terminated string (as append). */
int atb_etcd_buf_str(atb_etcd_buf *b, const char *s);

/* atb_etcd_buf_b64 appends the base64 encoding of p[0..n) (as append). */
int atb_etcd_buf_b64(atb_etcd_buf *b, const void *p, size_t n);

/* atb_etcd_buf_i64 appends v in decimal (as append). */
int atb_etcd_buf_i64(atb_etcd_buf *b, int64_t v);

/* atb_etcd_buf_json_str appends s as a quoted JSON string, escaping
 * quotes, backslashes and control characters (as append). */
int atb_etcd_buf_json_str(atb_etcd_buf *b, const char *s);

/* atb_etcd_buf_consume drops the first n bytes (n <= len). */
void atb_etcd_buf_consume(atb_etcd_buf *b, size_t n);

#endif /* ATB_ETCD_ETCD_BUF_H */
