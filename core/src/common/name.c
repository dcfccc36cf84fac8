/* DNS-subdomain names (see name.h). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "common/name.h"

#include <atbus/error.h>

#include <string.h>

static int
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int
fail(const char **why, const char *text)
{
    if (why != NULL) {
        *why = text;
    }
    return ATBUS_EINVAL;
}

int
atb_name_check(const char *s, const char **why)
{
    if (s == NULL || s[0] == '\0') {
        return fail(why, "empty");
    }
    size_t n = strnlen(s, ATB_NAME_MAX + 1);
    if (n > ATB_NAME_MAX) {
        return fail(why, "longer than 253 characters");
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') {
                return fail(why, "a label is empty or ends with '-'");
            }
            label = 0;
            continue;
        }
        if (!is_alnum(c) && c != '-') {
            return fail(why, "only lowercase letters, digits, '-' and '.' "
                             "are allowed");
        }
        if (label == 0 && c == '-') {
            return fail(why, "a label starts with '-'");
        }
        if (++label > 63) {
            return fail(why, "a label is longer than 63 characters");
        }
    }
    if (label == 0 || s[n - 1] == '-') {
        return fail(why, "a label is empty or ends with '-'");
    }
    return ATBUS_OK;
}
