/* Strict base64 codec for etcd keys and values (see etcd_b64.h). */
#include "etcd/etcd_b64.h"

#include <atbus/error.h>

#include <stdint.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_value maps a character to its 6-bit value, or -1. */
static int
b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+') {
        return 62;
    }
    if (ch == '/') {
        return 63;
    }
    return -1;
}

size_t
atb_etcd_b64_encoded_len(size_t n)
{
    size_t groups = n / 3 + (n % 3 != 0);
    if (groups > SIZE_MAX / 4) {
        return 0;
    }
    return groups * 4;
}

void
atb_etcd_b64_encode(char *dst, const void *src, size_t n)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *dst++ = b64_alphabet[v >> 18];
        *dst++ = b64_alphabet[(v >> 12) & 63];
        *dst++ = b64_alphabet[(v >> 6) & 63];
        *dst++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        *dst++ = b64_alphabet[v >> 18];
        *dst++ = b64_alphabet[(v >> 12) & 63];
        *dst++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *dst = '=';
    }
}

size_t
atb_etcd_b64_decoded_max(size_t n)
{
    return n / 4 * 3 + 3;
}

int
atb_etcd_b64_decode(void *dst, const char *src, size_t n, size_t *out_len)
{
    unsigned char *d = dst;
    size_t w = 0;
    if (n % 4 != 0) {
        return ATBUS_EPARSE;
    }
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = 0;
        if (last && src[i + 3] == '=') {
            pad = src[i + 2] == '=' ? 2 : 1;
        }
        uint32_t v = 0;
        for (int j = 0; j < 4 - pad; j++) {
            int x = b64_value((unsigned char)src[i + (size_t)j]);
            if (x < 0) {
                return ATBUS_EPARSE;
            }
            v = v << 6 | (uint32_t)x;
        }
        if (pad == 2) {
            /* 12 bits carry 8: the low 4 must be zero. */
            if ((v & 0xf) != 0) {
                return ATBUS_EPARSE;
            }
            d[w++] = (unsigned char)(v >> 4);
        } else if (pad == 1) {
            if ((v & 0x3) != 0) {
                return ATBUS_EPARSE;
            }
            d[w++] = (unsigned char)(v >> 10);
            d[w++] = (unsigned char)(v >> 2);
        } else {
            d[w++] = (unsigned char)(v >> 16);
            d[w++] = (unsigned char)(v >> 8);
            d[w++] = (unsigned char)v;
        }
    }
    *out_len = w;
    return ATBUS_OK;
}
