/*
 * The client's parts and how they fit:
 *
 *   atb_etcd       config, endpoints, auth token, the call list (etcd.c)
 *   atb_etcd_call  one gateway request with its retry state: which
 *                  endpoint, how many tried this round, how many rounds,
 *                  the backoff timer; parses the answer into an
 *                  atb_etcd_result (etcd.c)
 *   etcd_session   owned keys on one lease: grant, txn, keep-alive,
 *                  re-grant (etcd_session.c)
 *   etcd_watch     the watched prefix: list, stream, resume, re-list, the
 *                  key -> mod_revision map behind the difference
 *                  (etcd_watch.c)
 *
 * Ownership: the client owns everything. A call lives from
 * atb_etcd_call_new until its callback returns or it is cancelled; the
 * session and the watch keep a pointer to their call in flight and clear
 * it in the callback.
 */
#ifndef ATB_ETCD_ETCD_INTERNAL_H
#define ATB_ETCD_ETCD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd.h"
#include "etcd/etcd_buf.h"
#include "etcd/etcd_http.h"
#include "etcd/etcd_json.h"
#include "loop/loop.h"

typedef struct atb_etcd_call atb_etcd_call;

/* gRPC code of a missing, expired or unknown auth token. */
#define ATB_ETCD_GRPC_UNAUTHENTICATED 16

enum atb_etcd_call_kind {
    ATB_ETCD_CALL_RANGE = 1,
    ATB_ETCD_CALL_PUT,
    ATB_ETCD_CALL_TXN,
    ATB_ETCD_CALL_DELETE,
    ATB_ETCD_CALL_GRANT,
    ATB_ETCD_CALL_KEEPALIVE,
    ATB_ETCD_CALL_REVOKE,
    ATB_ETCD_CALL_AUTH,
};

struct atb_etcd_call {
    atb_etcd *c;
    atb_etcd_call *next; /* c's list */
    atb_etcd_call *prev;
    int kind;
    int internal;      /* the session's or the watch's: no ECLOSED report */
    atb_etcd_buf body; /* the request */
    atb_etcd_req req;
    atb_timer timer;     /* backoff before the next round */
    int ep;              /* endpoint of the attempt in flight */
    unsigned tried;      /* endpoints failed in this round */
    unsigned round;      /* rounds failed */
    unsigned max_rounds; /* 0: retry until done or cancelled */
    int reauthed;        /* already re-authenticated once */
    int waiting_auth;    /* parked until a token arrives */
    uint64_t auth_epoch; /* the authentication it waits for */
    uint64_t token_gen;  /* token the attempt carried */
    atb_etcd_cb cb;
    void *arg;
    atb_etcd_detail detail;
};

typedef struct etcd_owned etcd_owned;

/* An owned key. Dirty while gen != written_gen. */
struct etcd_owned {
    etcd_owned *next;
    char *key;
    char *value;
    size_t value_len;
    uint64_t gen;         /* last change */
    uint64_t sent_gen;    /* gen in the txn in flight */
    uint64_t written_gen; /* gen known written on the current lease */
    int in_txn;
    int removed; /* unset: delete in the next txn, then forget */
};

typedef struct etcd_session {
    etcd_owned *keys;
    size_t nkeys; /* including removed ones */
    int64_t lease;
    int64_t ttl;
    atb_etcd_call *write;     /* grant or txn in flight */
    atb_etcd_call *keepalive; /* keep-alive in flight */
    atb_timer ka_timer;       /* every TTL/3 while a lease is held */
    atb_timer retry_timer;    /* backoff after a failed write */
    uint32_t failures;
    int registered; /* REGISTERED reported for this lease */
    uint64_t gen;
} etcd_session;

typedef struct etcd_wkey etcd_wkey;

typedef struct etcd_watch {
    int active;
    char *key;         /* relative; with the client prefix, the watched range */
    atb_etcd_buf body; /* the stream's request */
    atb_etcd_req req;  /* the stream */
    atb_etcd_call *call; /* listing or authentication in flight */
    atb_timer retry_timer;
    atb_timer created_timer; /* the stream must be confirmed in time */
    int64_t rev;             /* last revision reported */
    int created;
    int need_list;
    int after_list; /* the next stream follows a listing: not a resume */
    int ep;
    unsigned tried; /* endpoints failed in this round */
    unsigned round; /* rounds failed since a stream last held */
    int state;      /* 0 before the first report, then SYNCED or STALE */
    uint64_t since_us;
    uint64_t created_us; /* when the current stream was confirmed */
    uint64_t gen;        /* bumped whenever the stream or the watch ends */
    etcd_wkey **table;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    uint32_t mark;
} etcd_watch;

struct atb_etcd {
    atb_loop *loop;
    atb_etcd_config cfg; /* strings point at the copies below */
    char *endpoints[ATB_ETCD_MAX_ENDPOINTS];
    char *prefix;
    size_t prefix_len;
    char *username;
    char *password;
    atb_etcd_callbacks cbs;
    void *cb_arg;
    atb_etcd_http http;
    atb_etcd_call *calls;
    atb_etcd_call *auth; /* authentication in flight */
    uint64_t auth_epoch; /* authentications started */
    char *token;
    uint64_t token_gen;
    size_t cur_ep;
    uint64_t rng;
    atb_etcd_stats stats;
    etcd_session session;
    etcd_watch watch;
    int closed;
};

/* ---- etcd.c ---- */

/*
 * atb_etcd_call_new creates a call of kind; the caller appends its JSON
 * body to call->body, then atb_etcd_call_start. max_rounds 0 retries
 * until done. Returns ATBUS_OK or ATBUS_ENOMEM.
 */
int atb_etcd_call_new(atb_etcd *c, int kind, unsigned max_rounds,
                      atb_etcd_cb cb, void *arg, atb_etcd_call **out);

/* atb_etcd_call_internal is atb_etcd_call_new for the session and the
 * watch: cb gets c as arg, and closing the client drops the call
 * without calling back. */
int atb_etcd_call_internal(atb_etcd *c, int kind, unsigned max_rounds,
                           atb_etcd_cb cb, atb_etcd_call **out);

/* atb_etcd_call_start sends call. On failure (a body that failed to
 * build, ATBUS_ENOMEM) the call is freed without callback. */
int atb_etcd_call_start(atb_etcd_call *call);

/* atb_etcd_call_cancel frees call without calling back. */
void atb_etcd_call_cancel(atb_etcd_call *call);

/* atb_etcd_body_key appends "key":"…" for the relative key (and
 * ,"range_end":"…" covering every key it starts, with prefix set). */
int atb_etcd_body_key(atb_etcd *c, atb_etcd_buf *b, const char *key,
                      int prefix);

/* atb_etcd_body_put appends a PutRequest object. */
int atb_etcd_body_put(atb_etcd *c, atb_etcd_buf *b, const char *key,
                      const void *value, size_t value_len, int64_t lease);

/* atb_etcd_body_int appends {"<field>":"<v>"} (lease requests). */
int atb_etcd_body_int(atb_etcd_buf *b, const char *field, int64_t v);

/* atb_etcd_url writes endpoint ep + path into buf. Returns ATBUS_OK or
 * ATBUS_ENOBUFS. */
int atb_etcd_url(const atb_etcd *c, size_t ep, const char *path, char *buf,
                 size_t cap);

/* atb_etcd_endpoint_failed moves the client off ep (if still on it). */
void atb_etcd_endpoint_failed(atb_etcd *c, size_t ep);

/* atb_etcd_backoff_us returns the delay after failed round number round
 * (0: the first). */
uint64_t atb_etcd_backoff_us(atb_etcd *c, uint32_t round);

/* atb_etcd_need_auth reports whether requests must first get a token. */
int atb_etcd_need_auth(const atb_etcd *c);

/* atb_etcd_token_drop forgets the token an attempt carried when etcd
 * called it invalid (a newer one is kept). */
void atb_etcd_token_drop(atb_etcd *c, uint64_t token_gen);

/* atb_etcd_grpc_error maps a gateway error (gRPC code and message) to an
 * atbus code; *retry is set when another endpoint may do better. */
int atb_etcd_grpc_error(int code, const char *message, int *retry);

/* ---- etcd_session.c ---- */

/* atb_etcd_session_init prepares the session's timers. */
void atb_etcd_session_init(atb_etcd *c);

/* atb_etcd_session_close cancels the session's work and forgets it. */
void atb_etcd_session_close(atb_etcd *c);

/* ---- etcd_watch.c ---- */

/* atb_etcd_watch_init prepares the watch's timers and buffers. */
void atb_etcd_watch_init(atb_etcd *c);

/* atb_etcd_watch_close ends the watch without reporting. */
void atb_etcd_watch_close(atb_etcd *c);

#endif /* ATB_ETCD_ETCD_INTERNAL_H */
