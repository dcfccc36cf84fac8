/*
 * Strict UTF-8 check (RFC 3629 table 3-7 of Unicode), rejecting NUL too.
 */
#include "common/utf8.h"

/* utf8_seq_len returns the length of the sequence led by b, or 0 when b
 * cannot lead one; *lo and *hi bound the second byte, which is where
 * overlong forms, surrogates and values above U+10FFFF show. */
static size_t
utf8_seq_len(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
        return 2;
    }
    if (b >= 0xe0 && b <= 0xef) {
        if (b == 0xe0) {
            *lo = 0xa0;
        } else if (b == 0xed) {
            *hi = 0x9f;
        }
        return 3;
    }
    if (b >= 0xf0 && b <= 0xf4) {
        if (b == 0xf0) {
            *lo = 0x90;
        } else if (b == 0xf4) {
            *hi = 0x8f;
        }
        return 4;
    }
    return 0;
}

int
atb_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            if (b == 0) {
                return 0;
            }
            i++;
            continue;
        }
        uint8_t lo;
        uint8_t hi;
        size_t n = utf8_seq_len(b, &lo, &hi);
        if (n == 0 || len - i < n) {
            return 0;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (size_t k = 2; k < n; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return 0;
            }
        }
        i += n;
    }
    return 1;
}
