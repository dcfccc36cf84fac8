/*
 * Base64 (RFC 4648, standard alphabet, padded) for etcd's JSON gateway,
 * which carries every key and value as a base64 string. Decoding is
 * strict: etcd always sends the canonical form, so anything else (bad
 * characters, missing or misplaced padding, non-zero trailing bits) is a
 * malformed response, not something to guess around.
 */
#ifndef ATB_ETCD_ETCD_B64_H
#define ATB_ETCD_ETCD_B64_H

#include <stddef.h>

/* atb_etcd_b64_encoded_len returns the encoded length of n bytes, or 0
 * if it would overflow size_t. */
size_t atb_etcd_b64_encoded_len(size_t n);

/*
 * atb_etcd_b64_encode writes the encoding of src[0..n) to dst, which must
 * hold atb_etcd_b64_encoded_len(n) bytes; no NUL is written.
 */
void atb_etcd_b64_encode(char *dst, const void *src, size_t n);

/* atb_etcd_b64_decoded_max returns an upper bound of the decoded length
 * of n base64 characters. */
size_t atb_etcd_b64_decoded_max(size_t n);

/*
 * atb_etcd_b64_decode decodes src[0..n) into dst (room for
 * atb_etcd_b64_decoded_max(n) bytes) and stores the decoded length in
 * *out_len. Returns ATBUS_OK or ATBUS_EPARSE (not canonical padded
 * base64; dst then holds garbage).
 */
int atb_etcd_b64_decode(void *dst, const char *src, size_t n, size_t *out_len);

#endif /* ATB_ETCD_ETCD_B64_H */
