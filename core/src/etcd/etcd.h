/*
 * An etcd v3 client driven by the node's loop.
 *
 * It speaks HTTP/1.1 + JSON to etcd's v3 gateway through libcurl's multi
 * interface on an atb_loop, so nothing blocks and no thread is started.
 * Three things live in one client:
 *
 *   operations  range, put, txn of puts on a lease, delete, lease grant,
 *               keep-alive and revoke; each completes once through its
 *               callback.
 *   session     keys the client owns (a node's record and its route),
 *               written in one transaction on one lease that the client
 *               keeps alive, re-grants when lost and rewrites on update.
 *   watch       one prefix: an initial range, then a watch from the next
 *               revision, resumed from the last revision seen after a
 *               disconnect, re-listed (and the difference reported) after
 *               compaction; reports "stale" while no endpoint answers.
 *
 * Keys: every key given to or returned by the client is relative to the
 * configured prefix, which the client adds and strips (prefix "/atbus",
 * key "/nodes/a" -> etcd key "/atbus/nodes/a").
 *
 * Endpoints: requests go to the current endpoint; a connection failure,
 * a timeout or "unavailable" from etcd moves the client to the next one.
 * An operation tries every endpoint once per round and gives up after
 * op_rounds rounds (with backoff between them); the session and the watch
 * never give up, backing off exponentially with jitter between rounds.
 *
 * Threads and callbacks: everything runs on the loop's thread. Callbacks
 * may start and cancel work, and call atb_etcd_close, but not
 * atb_etcd_free. Strings and arrays handed to callbacks are borrowed
 * until the callback returns.
 */
#ifndef ATB_ETCD_ETCD_H
#define ATB_ETCD_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

typedef struct atb_etcd atb_etcd;

#define ATB_ETCD_MAX_ENDPOINTS 8

typedef struct atb_etcd_config {
    /* Base URLs of the members, e.g. "http://127.0.0.1:2379"; at least
     * one. Tried in this order. */
    const char *endpoints[ATB_ETCD_MAX_ENDPOINTS];
    size_t endpoint_count;
    /* Prepended to every key, e.g. "/atbus"; NULL or "" for none. */
    const char *prefix;
    /* Session lease TTL; default 10 s. etcd raises tiny values to its
     * minimum (about 2 s); keep-alives go out every TTL/3. */
    uint32_t lease_ttl_s;
    /* Bound of one HTTP attempt (connect + answer; for a range, whose
     * answer grows with the registry: of a pause in receiving it);
     * default 5000 ms. A watch stream must open and be confirmed within
     * it. */
    uint32_t request_timeout_ms;
    /* Delays between failed rounds over all endpoints: exponential from
     * min to max with jitter; default 100 ms and 5000 ms. */
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    /* Rounds over all endpoints an operation makes before it fails with
     * ATBUS_EUNAVAILABLE; default 2. */
    uint32_t op_rounds;
    /* Credentials for etcd auth; both NULL when auth is off. */
    const char *username;
    const char *password;
    /* Largest response body accepted (and largest single watch message);
     * default 64 MiB. Checked before the buffer grows. */
    size_t max_response;
    /* Seed of the backoff jitter; 0: from the clock and pid. */
    uint64_t seed;
} atb_etcd_config;

/* A key-value as etcd reports it. key and value are NUL-terminated (the
 * NUL not counted) and borrowed. */
typedef struct atb_etcd_kv {
    const char *key; /* prefix stripped */
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} atb_etcd_kv;

/*
 * The outcome of an operation. err is ATBUS_OK or:
 *   ATBUS_EUNAVAILABLE  no endpoint answered in op_rounds rounds
 *   ATBUS_EBACKEND      etcd answered with an error (detail: its message)
 *   ATBUS_ENOTFOUND     the lease does not exist (expired or revoked)
 *   ATBUS_EPERM         etcd auth refused the request or credentials
 *   ATBUS_ECOMPACTED    the requested revision was compacted
 *   ATBUS_EPARSE        the answer was malformed (detail: what and where)
 *   ATBUS_EMSGSIZE      the answer passed max_response
 *   ATBUS_ENOMEM, ATBUS_ECLOSED (the client was closed first)
 * detail is never NULL ("" on success). Fields not set by an operation
 * are zero.
 */
typedef struct atb_etcd_result {
    int err;
    const char *detail;
    int64_t revision; /* the store revision of the answer */
    /* range */
    const atb_etcd_kv *kvs;
    size_t nkvs;
    int64_t count;
    /* txn: 1 when the compare held (always, for txns without compare) */
    int succeeded;
    /* delete */
    int64_t deleted;
    /* lease grant and keep-alive */
    int64_t lease;
    int64_t ttl;
} atb_etcd_result;

typedef void (*atb_etcd_cb)(const atb_etcd_result *res, void *arg);

/* One key to write; value bytes are copied by the call taking them. */
typedef struct atb_etcd_pair {
    const char *key;
    const void *value;
    size_t value_len;
} atb_etcd_pair;

enum atb_etcd_event_kind {
    ATB_ETCD_PUT = 1,
    ATB_ETCD_DELETE = 2,
};

enum atb_etcd_watch_state {
    ATB_ETCD_WATCH_SYNCED = 1, /* stream open, view current */
    ATB_ETCD_WATCH_STALE = 2,  /* no endpoint answers; view may be old */
};

enum atb_etcd_session_state {
    ATB_ETCD_SESSION_REGISTERED = 1, /* every owned key written on lease */
    ATB_ETCD_SESSION_LOST = 2,       /* the lease is gone; re-granting */
};

typedef struct atb_etcd_callbacks {
    /*
     * on_event reports a change under the watched prefix, in revision
     * order. DELETE carries no value (NULL, 0). After a re-list, keys
     * found gone are reported as DELETE with the listing's revision.
     */
    void (*on_event)(int kind, const char *key, size_t key_len,
                     const char *value, size_t value_len, int64_t mod_revision,
                     void *arg);
    /*
     * on_watch_state reports SYNCED when the watch stream is confirmed,
     * and STALE when a whole round of endpoints failed: since_us is the
     * loop time since which the view may be out of date, err and detail
     * the last failure. Keep using the cached view meanwhile.
     */
    void (*on_watch_state)(int state, uint64_t since_us, int err,
                           const char *detail, void *arg);
    /* on_session reports REGISTERED (lease holds every owned key) and
     * LOST (lease gone; err says how it was found). */
    void (*on_session)(int state, int64_t lease, int err, void *arg);
} atb_etcd_callbacks;

/* Counters for tests and metrics. */
typedef struct atb_etcd_stats {
    uint64_t requests;        /* HTTP attempts started */
    uint64_t failovers;       /* moves to the next endpoint */
    uint64_t failed_rounds;   /* rounds in which no endpoint answered */
    uint64_t auths;           /* tokens obtained */
    uint64_t lease_grants;    /* session leases granted */
    uint64_t leases_lost;     /* session leases found gone */
    uint64_t keepalives;      /* session lease renewals answered */
    uint64_t watch_lists;     /* full ranges of the watched prefix */
    uint64_t watch_compacted; /* watches cancelled by compaction */
    uint64_t watch_resumes;   /* streams reopened from a revision */
    uint64_t events;          /* events delivered */
} atb_etcd_stats;

/* atb_etcd_config_default fills cfg with the defaults above and no
 * endpoints. Returns ATBUS_OK or ATBUS_EINVAL (cfg NULL). */
int atb_etcd_config_default(atb_etcd_config *cfg);

/*
 * atb_etcd_new creates a client on loop (borrowed; it must outlive the
 * client). cfg's strings are copied; cbs may be NULL or have NULL
 * members; arg is passed to every callback in cbs. Returns ATBUS_OK,
 * ATBUS_EINVAL (no endpoint, an endpoint not http:// or https://, a zero
 * timeout, backoff min above max, only one of username/password) or
 * ATBUS_ENOMEM.
 */
int atb_etcd_new(atb_etcd **out, atb_loop *loop, const atb_etcd_config *cfg,
                 const atb_etcd_callbacks *cbs, void *arg);

/*
 * atb_etcd_close stops the session (without revoking: the lease then
 * expires on its own) and the watch, and completes every pending
 * operation with ATBUS_ECLOSED, before returning. Later calls return
 * ATBUS_ECLOSED. No callback runs after it returns. Idempotent.
 */
void atb_etcd_close(atb_etcd *c);

/* atb_etcd_free closes c (if needed) and frees it; NULL is a no-op. Not
 * from inside one of c's callbacks. */
void atb_etcd_free(atb_etcd *c);

/* atb_etcd_stats_get copies the counters. */
void atb_etcd_stats_get(const atb_etcd *c, atb_etcd_stats *out);

/*
 * Operations. Each returns ATBUS_OK and later calls cb(res, arg) exactly
 * once (never from inside the call), or returns an error and never calls
 * cb: ATBUS_EINVAL (NULL or empty key where one is needed, a NULL cb),
 * ATBUS_ECLOSED, ATBUS_ENOMEM. Data given is copied.
 */

/* atb_etcd_range reads key, or every key starting with it when prefix
 * is set ("" with prefix: everything under the client's prefix). */
int atb_etcd_range(atb_etcd *c, const char *key, int prefix, atb_etcd_cb cb,
                   void *arg);

/* atb_etcd_put writes key = value, attached to lease (0: none). */
int atb_etcd_put(atb_etcd *c, const char *key, const void *value,
                 size_t value_len, int64_t lease, atb_etcd_cb cb, void *arg);

/* atb_etcd_txn_put writes n keys (1..64) in one transaction, all on
 * lease (0: none): a watcher sees them in one revision. */
int atb_etcd_txn_put(atb_etcd *c, const atb_etcd_pair *puts, size_t n,
                     int64_t lease, atb_etcd_cb cb, void *arg);

/* atb_etcd_delete removes key, or every key starting with it when prefix
 * is set; res->deleted counts them. */
int atb_etcd_delete(atb_etcd *c, const char *key, int prefix, atb_etcd_cb cb,
                    void *arg);

/* atb_etcd_lease_grant creates a lease of ttl_s seconds: res->lease and
 * res->ttl (as granted). */
int atb_etcd_lease_grant(atb_etcd *c, uint32_t ttl_s, atb_etcd_cb cb,
                         void *arg);

/* atb_etcd_lease_keepalive renews a lease once: res->ttl, or
 * ATBUS_ENOTFOUND when the lease is gone. */
int atb_etcd_lease_keepalive(atb_etcd *c, int64_t lease, atb_etcd_cb cb,
                             void *arg);

/* atb_etcd_lease_revoke ends a lease and deletes its keys. */
int atb_etcd_lease_revoke(atb_etcd *c, int64_t lease, atb_etcd_cb cb,
                          void *arg);

/* Most keys one transaction carries (etcd's default limit is 128). */
#define ATB_ETCD_TXN_MAX 64

/*
 * atb_etcd_session_set makes the client own n keys with these values
 * (adding or updating them): they are written on the session lease in
 * one transaction (several, above ATB_ETCD_TXN_MAX keys), granting the
 * lease first if there is none. Returns ATBUS_OK, ATBUS_EINVAL,
 * ATBUS_ECLOSED or ATBUS_ENOMEM (nothing changed).
 */
int atb_etcd_session_set(atb_etcd *c, const atb_etcd_pair *puts, size_t n);

/*
 * atb_etcd_session_unset stops owning key and deletes it from etcd (in
 * the session's next transaction). Returns ATBUS_OK, ATBUS_ENOTFOUND (not
 * owned), ATBUS_EINVAL or ATBUS_ECLOSED.
 */
int atb_etcd_session_unset(atb_etcd *c, const char *key);

/* atb_etcd_session_lease returns the lease holding the owned keys, or 0
 * while there is none. */
int64_t atb_etcd_session_lease(const atb_etcd *c);

/*
 * atb_etcd_session_revoke ends the session: forgets every owned key and
 * revokes the lease, so etcd deletes the keys at once; cb reports the
 * revoke. Returns ATBUS_OK, ATBUS_ENOTFOUND (no lease: cb is not called),
 * ATBUS_ECLOSED or ATBUS_ENOMEM.
 */
int atb_etcd_session_revoke(atb_etcd *c, atb_etcd_cb cb, void *arg);

/*
 * atb_etcd_watch_start watches every key starting with key ("" for the
 * whole client prefix), reporting through on_event and on_watch_state:
 * first the current keys as PUT events, then changes. One watch per
 * client. Returns ATBUS_OK, ATBUS_EEXIST (already watching),
 * ATBUS_EINVAL, ATBUS_ECLOSED or ATBUS_ENOMEM.
 */
int atb_etcd_watch_start(atb_etcd *c, const char *key);

/* atb_etcd_watch_stop ends the watch and forgets its view; a no-op when
 * not watching. */
void atb_etcd_watch_stop(atb_etcd *c);

/* atb_etcd_watch_revision returns the last revision the watch has
 * reported (0 before the first listing). */
int64_t atb_etcd_watch_revision(const atb_etcd *c);

#endif /* ATB_ETCD_ETCD_H */
