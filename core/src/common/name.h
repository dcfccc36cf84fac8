/*
 * Node names: DNS subdomains (RFC 1123), the rule Kubernetes applies to
 * object names, so a pod's name can be its node's name unchanged.
 */
#ifndef ATB_COMMON_NAME_H
#define ATB_COMMON_NAME_H

#include <stddef.h>

/* Longest name (the same as ATBUS_NAME_MAX). */
#define ATB_NAME_MAX 253

/*
 * atb_name_check checks s: 1 to 253 characters of lowercase letters,
 * digits, '-' and '.', dot-separated labels of 1 to 63 characters that
 * start and end with a letter or digit. Returns ATBUS_OK or ATBUS_EINVAL;
 * *why (if not NULL) then names the broken rule.
 */
int atb_name_check(const char *s, const char **why);

#endif /* ATB_COMMON_NAME_H */
