/*
 * atbus: a message bus that routes messages between named nodes.
 *
 * This is the one header applications include. Only what is declared under
 * core/include/atbus/ is supported API; everything else is internal.
 *
 * Threading: an atbus node and everything attached to it belong to the
 * thread that drives its loop. Functions without a node (atbus_strerror,
 * atbus_version) may be called from any thread.
 */
#ifndef ATBUS_ATBUS_H
#define ATBUS_ATBUS_H

#include <atbus/discovery.h>
#include <atbus/error.h>
#include <atbus/export.h>
#include <atbus/node.h>
#include <atbus/route.h>
#include <atbus/version.h>

#endif /* ATBUS_ATBUS_H */
