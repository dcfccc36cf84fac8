/*
 * Strict UTF-8 validation for text received from outside (protobuf
 * strings, names, labels).
 */
#ifndef ATB_COMMON_UTF8_H
#define ATB_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * atb_utf8_valid returns 1 when the len bytes at s are well-formed UTF-8
 * (RFC 3629: shortest form, no surrogates, nothing above U+10FFFF) and
 * contain no NUL byte, else 0. NUL is refused because every consumer keeps
 * text as C strings, where a NUL would silently cut it short.
 */
int atb_utf8_valid(const uint8_t *s, size_t len);

#endif /* ATB_COMMON_UTF8_H */
