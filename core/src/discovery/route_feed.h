/*
 * The route feed: keeps a route registry (atbus/route.h) equal to the
 * route records of an embedded registry, whatever fills that registry (a
 * YAML file, the API, the etcd sync).
 *
 * A route record put becomes atbus_route_registry_set_upstreams(name,
 * upstreams); a route record removed becomes atbus_route_registry_remove
 * (the node stays a down placeholder while others list it, so they fail
 * over to their backups). Records arrive one at a time and in any order,
 * so a record may close a cycle with records already applied: the route
 * registry refuses it and keeps what it had for that name. The feed
 * reports it once through on_reject and keeps it pending; after every
 * later change that went through, pending records are tried again, so
 * once the cycle is broken (a record of it changed or removed) the
 * upstream lists in the route registry are the records', whatever order
 * they came in. (Up/down states follow the route registry's rules: a
 * name whose record was removed while others list it stays down, one
 * first listed after its removal starts up.)
 *
 * Wiring: pass atb_disc_route_feed_on_change, with the feed as arg, as
 * the registry's on_change, or call it from the application's own
 * on_change. Single-threaded, like both registries.
 */
#ifndef ATB_DISCOVERY_ROUTE_FEED_H
#define ATB_DISCOVERY_ROUTE_FEED_H

#include <atbus/discovery.h>
#include <atbus/route.h>

#include <stddef.h>

#include "route/registry.h"

typedef struct atb_disc_route_feed atb_disc_route_feed;

/* A route record that could not be applied: err is ATBUS_EROUTE_CYCLE
 * (detail names the cycle, "cycle: a -> b -> a") or ATBUS_ENOMEM. name
 * and detail are borrowed for the call. */
typedef void (*atb_disc_route_reject_cb)(const char *name, int err,
                                         const char *detail, void *arg);

/*
 * atb_disc_route_feed_new makes a feed from reg's route records into
 * routes (both borrowed: they must outlive the feed). Nothing is applied
 * yet: call atb_disc_route_feed_load for records reg already holds.
 * on_reject may be NULL. Returns ATBUS_OK and *out (free with
 * atb_disc_route_feed_free), ATBUS_EINVAL or ATBUS_ENOMEM.
 */
int atb_disc_route_feed_new(atb_disc_route_feed **out,
                            const atbus_registry *reg,
                            atbus_route_registry *routes,
                            atb_disc_route_reject_cb on_reject, void *arg);

/* atb_disc_route_feed_new_internal is atb_disc_route_feed_new into an
 * internal route registry, for callers that also ask atb_route_next_hop
 * (which works on the internal registry). */
int atb_disc_route_feed_new_internal(atb_disc_route_feed **out,
                                     const atbus_registry *reg,
                                     atb_route_registry *routes,
                                     atb_disc_route_reject_cb on_reject,
                                     void *arg);

/* atb_disc_route_feed_free releases the feed; the route registry keeps
 * what was applied. NULL is a no-op. */
void atb_disc_route_feed_free(atb_disc_route_feed *f);

/*
 * atb_disc_route_feed_on_change applies one registry change (arg is the
 * feed); records of other tables are ignored. It has the signature of
 * atbus_registry_callbacks.on_change.
 */
void atb_disc_route_feed_on_change(atbus_registry *reg,
                                   enum atbus_registry_event event,
                                   const atbus_record *rec, void *arg);

/*
 * atb_disc_route_feed_load applies every route record the registry holds
 * (refusals go to on_reject). Returns ATBUS_OK when all were applied,
 * ATBUS_EROUTE_CYCLE when some wait, refused for a cycle or for memory
 * (see atb_disc_route_feed_pending), or ATBUS_EINVAL.
 */
int atb_disc_route_feed_load(atb_disc_route_feed *f);

/* atb_disc_route_feed_pending returns how many route records wait to be
 * applied. */
size_t atb_disc_route_feed_pending(const atb_disc_route_feed *f);

/* atb_disc_route_feed_is_pending returns 1 when name's route record
 * waits, else 0. */
int atb_disc_route_feed_is_pending(const atb_disc_route_feed *f,
                                   const char *name);

/*
 * atb_disc_record_attr is an atb_route_attr_cb (route/policy.h) over
 * atbus_record: the attributes a direct-connect policy reads from a
 * discovery record. Keys: "name", "type", "host.hostname",
 * "metadata.namespace_name", "metadata.api_version", "metadata.kind",
 * "metadata.group", "labels.<key>" and "annotations.<key>". Returns the
 * value (borrowed from record) or NULL when the record lacks it; arg is
 * unused.
 */
const char *atb_disc_record_attr(const void *record, const char *key,
                                 void *arg);

#endif /* ATB_DISCOVERY_ROUTE_FEED_H */
