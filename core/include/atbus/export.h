/*
 * ATBUS_API marks the symbols libatbus exports. The library is built with
 * hidden visibility, so only what carries this macro is reachable from a
 * program linking the shared library; everything else is internal and may
 * change without notice.
 */
#ifndef ATBUS_EXPORT_H
#define ATBUS_EXPORT_H

#if defined(ATBUS_STATIC)
#define ATBUS_API
#elif defined(ATBUS_BUILDING_LIBRARY)
#define ATBUS_API __attribute__((visibility("default")))
#else
#define ATBUS_API
#endif

#endif /* ATBUS_EXPORT_H */
