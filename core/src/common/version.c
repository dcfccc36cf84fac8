/* The version of the library that is actually loaded. */
#include <atbus/version.h>

const char *
atbus_version(void)
{
    return ATBUS_VERSION_STRING;
}
