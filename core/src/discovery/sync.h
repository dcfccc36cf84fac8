/*
 * The etcd sync: an embedded registry kept equal to the records under an
 * etcd prefix, and this node's own records kept in etcd.
 *
 *   watch     every key under the prefix; <prefix>/nodes/<name>,
 *             /groups/<name> and /routes/<name> become registry puts and
 *             removes, other folders are ignored. A value that is not a
 *             valid record of its folder and name is refused: reported
 *             through on_reject with the key and the detail, and the
 *             registry holds no record under that name until a valid
 *             value is written (the registry mirrors the valid records
 *             of etcd, nothing older). Other records never notice.
 *   publish   the node record and its route record go out in one
 *             transaction on the session lease (so watchers see both in
 *             one revision and both vanish when the lease expires), and
 *             are rewritten when they change.
 *   staleness while no etcd endpoint answers the registry keeps its
 *             cached view and the state says since when it may be old.
 *
 * etcd orders the writes of a key, so the registry takes a key's latest
 * value even when its version is below the cached one (the registry's
 * version rule guards against stale writers, which etcd already rules
 * out).
 *
 * The sync owns its etcd client and runs on the loop given; every
 * callback runs on that loop's thread. The registry is borrowed: the
 * application reads it, and its on_change (for example the route feed,
 * route_feed.h) sees every change the sync makes. Records put into the
 * registry by other means stay until etcd reports the same name.
 */
#ifndef ATB_DISCOVERY_SYNC_H
#define ATB_DISCOVERY_SYNC_H

#include <atbus/discovery.h>

#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd.h"
#include "loop/loop.h"

typedef struct atb_disc_sync atb_disc_sync;

enum atb_disc_sync_state {
    ATB_DISC_SYNC_STARTING = 0, /* started, no listing confirmed yet */
    ATB_DISC_SYNC_SYNCED,       /* the watch is confirmed: view current */
    ATB_DISC_SYNC_STALE,        /* no endpoint answers: view may be old */
};

typedef struct atb_disc_sync_status {
    enum atb_disc_sync_state state;
    /* STALE: the loop time (atb_loop_now_us) since which the view may be
     * out of date, and the last failure. 0 and "" otherwise. */
    uint64_t stale_since_us;
    int err;
    char detail[256];
    /* 1 while the published records are all written on the lease. */
    int published;
    int64_t lease;    /* the session lease, 0 while there is none */
    int64_t revision; /* the last etcd revision the view reflects */
    size_t rejected;  /* keys whose value is currently refused */
} atb_disc_sync_status;

typedef struct atb_disc_sync_callbacks {
    /*
     * on_reject: the value at key (relative to the prefix, e.g.
     * "/nodes/app-1") was refused. err->code is ATBUS_EPARSE (not JSON),
     * ATBUS_ERECORD (a rule broken, or the name or type does not fit the
     * key; err->path and err->reason say which) or ATBUS_ENOMEM. Reported
     * once per value written.
     */
    void (*on_reject)(const char *key, const atbus_record_error *err,
                      void *arg);
    /* on_state: the state or the publication changed; st is borrowed. */
    void (*on_state)(const atb_disc_sync_status *st, void *arg);
} atb_disc_sync_callbacks;

/*
 * atb_disc_sync_new makes a sync of reg (borrowed; it must outlive the
 * sync) with an etcd client on loop configured by cfg (copied; its
 * prefix is the registry's root, e.g. "/atbus"; a trailing '/' is
 * dropped, so "/atbus/" names the same keys). cbs may be NULL or
 * have NULL members. Nothing is sent before atb_disc_sync_start or
 * atb_disc_sync_publish. Returns ATBUS_OK and *out (free with
 * atb_disc_sync_free), ATBUS_EINVAL (see atb_etcd_new) or ATBUS_ENOMEM.
 */
int atb_disc_sync_new(atb_disc_sync **out, atb_loop *loop,
                      const atb_etcd_config *cfg, atbus_registry *reg,
                      const atb_disc_sync_callbacks *cbs, void *arg);

/*
 * atb_disc_sync_start watches the prefix: first every record as it is
 * now, then every change. Returns ATBUS_OK, ATBUS_EEXIST (already
 * started), ATBUS_ECLOSED, ATBUS_EINVAL or ATBUS_ENOMEM.
 */
int atb_disc_sync_start(atb_disc_sync *s);

/*
 * atb_disc_sync_publish makes node (a node or client record) and route
 * (a route record of the same name, or NULL for none) this node's own
 * records: written as <prefix>/nodes/<name> and /routes/<name> in one
 * transaction on the session lease, kept alive, written again after the
 * lease is lost. Calling it again with changed records rewrites what
 * changed (a route now NULL is deleted, a new name replaces the old
 * keys); unchanged records are not rewritten. The records are encoded
 * during the call; the caller keeps them. Returns ATBUS_OK, ATBUS_ERECORD
 * (a record is invalid, of the wrong type, or the names differ; err, if
 * not NULL, says which), ATBUS_EINVAL, ATBUS_ECLOSED or ATBUS_ENOMEM
 * (nothing changed).
 */
int atb_disc_sync_publish(atb_disc_sync *s, const atbus_record *node,
                          const atbus_record *route, atbus_record_error *err);

/*
 * atb_disc_sync_unpublish revokes the session lease, so etcd deletes the
 * published records at once (a clean shutdown; closing without it lets
 * them expire with the lease). Returns ATBUS_OK, ATBUS_ENOTFOUND (no
 * lease), ATBUS_ECLOSED or ATBUS_ENOMEM.
 */
int atb_disc_sync_unpublish(atb_disc_sync *s);

/* atb_disc_sync_status_get copies the current status into *out. */
void atb_disc_sync_status_get(const atb_disc_sync *s,
                              atb_disc_sync_status *out);

/* atb_disc_sync_client returns the sync's etcd client, for its
 * statistics; it must not be given callbacks, a watch or a session. */
atb_etcd *atb_disc_sync_client(const atb_disc_sync *s);

/* atb_disc_sync_free closes the client (no callback runs after it; the
 * lease is not revoked) and frees the sync; the registry keeps its
 * records. NULL is a no-op. Not from inside a callback of the sync. */
void atb_disc_sync_free(atb_disc_sync *s);

/*
 * atb_disc_sync_key writes the etcd key, relative to the prefix, of
 * name in table ("/nodes/<name>", "/groups/<name>", "/routes/<name>").
 * Returns ATBUS_OK, ATBUS_ENOBUFS (size too small) or ATBUS_EINVAL.
 */
int atb_disc_sync_key(enum atbus_registry_table table, const char *name,
                      char *buf, size_t size);

/*
 * atb_disc_sync_decode reads the record at an etcd key (relative to the
 * prefix; key_len bytes) from value_len bytes of JSON. A record that
 * does not say its type takes its folder's (nodes: node, groups: group,
 * routes: route). *rec is initialised by the call. Returns:
 *   ATBUS_OK        *rec owns a valid record named as the key, of a type
 *                   that belongs in the key's folder
 *   ATBUS_ENOTSUP   the key is not a record key (outside nodes/,
 *                   groups/, routes/): nothing to do
 *   ATBUS_EPARSE    the value is not JSON (err: line, column)
 *   ATBUS_ERECORD   a rule is broken, or the record's name or type does
 *                   not fit the key (err: path, reason)
 *   ATBUS_ENOMEM, ATBUS_EINVAL
 * *table (if not NULL) gets the key's table whenever the key is a record
 * key, even when the value is refused. err may be NULL.
 */
int atb_disc_sync_decode(const char *key, size_t key_len, const char *value,
                         size_t value_len, enum atbus_registry_table *table,
                         atbus_record *rec, atbus_record_error *err);

#endif /* ATB_DISCOVERY_SYNC_H */
