/* Capped growable buffer (see etcd_buf.h). */
#include "etcd/etcd_buf.h"

#include <atbus/error.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "etcd/etcd_b64.h"

void
atb_etcd_buf_init(atb_etcd_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void
atb_etcd_buf_fini(atb_etcd_buf *b)
{
    atb_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->err = 0;
}

void
atb_etcd_buf_reset(atb_etcd_buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

/* buf_reserve makes room for n more bytes plus the NUL. */
static int
buf_reserve(atb_etcd_buf *b, size_t n)
{
    if (b->err != 0) {
        return b->err;
    }
    if (n > b->max || b->len > b->max - n) {
        b->err = ATBUS_EMSGSIZE;
        return b->err;
    }
    size_t need = b->len + n + 1;
    if (need <= b->alloc) {
        return ATBUS_OK;
    }
    size_t size = b->alloc < 256 ? 256 : b->alloc;
    while (size < need) {
        size = size > SIZE_MAX / 2 ? need : size * 2;
    }
    /* Never allocate much past the cap: a capped body needs max + 1. */
    if (b->max < SIZE_MAX && size > b->max + 1) {
        size = b->max + 1;
    }
    char *p = atb_realloc(b->data, size);
    if (p == NULL) {
        b->err = ATBUS_ENOMEM;
        return b->err;
    }
    b->data = p;
    b->alloc = size;
    return ATBUS_OK;
}

int
atb_etcd_buf_append(atb_etcd_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return ATBUS_OK;
}

int
atb_etcd_buf_str(atb_etcd_buf *b, const char *s)
{
    return atb_etcd_buf_append(b, s, strlen(s));
}

int
atb_etcd_buf_b64(atb_etcd_buf *b, const void *p, size_t n)
{
    size_t enc = atb_etcd_b64_encoded_len(n);
    if (enc == 0 && n != 0) {
        b->err = b->err != 0 ? b->err : ATBUS_EMSGSIZE;
        return b->err;
    }
    int rc = buf_reserve(b, enc);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd_b64_encode(b->data + b->len, p, n);
    b->len += enc;
    b->data[b->len] = '\0';
    return ATBUS_OK;
}

int
atb_etcd_buf_i64(atb_etcd_buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return atb_etcd_buf_append(b, tmp, (size_t)n);
}

int
atb_etcd_buf_json_str(atb_etcd_buf *b, const char *s)
{
    atb_etcd_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            atb_etcd_buf_append(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            int n = snprintf(esc, sizeof(esc), "\\u%04x", *p);
            atb_etcd_buf_append(b, esc, (size_t)n);
        } else {
            atb_etcd_buf_append(b, p, 1);
        }
    }
    return atb_etcd_buf_append(b, "\"", 1);
}

void
atb_etcd_buf_consume(atb_etcd_buf *b, size_t n)
{
    if (n >= b->len) {
        atb_etcd_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
