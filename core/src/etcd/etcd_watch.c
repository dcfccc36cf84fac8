/*
 * The watch: one prefix, kept current.
 *
 *   list     range the prefix at the current revision R; report each key
 *            new or changed since the last listing as PUT and each key
 *            gone as DELETE (from the key -> mod_revision map), so a
 *            re-list after compaction misses nothing
 *   stream   POST /v3/watch from R+1; each newline-terminated JSON
 *            message is parsed as it arrives; the revision seen advances
 *            with the events' mod_revision (not the header: a catch-up
 *            batch can carry the current revision before its last
 *            events) and with progress notifications
 *   resume   a lost stream reopens at once on the next endpoint from the
 *            last revision + 1; when every endpoint of a round failed,
 *            report STALE and back off
 *   compact  "canceled" with compact_revision: abort the stream (etcd
 *            leaves it open) and list again
 */
#include "etcd/etcd_internal.h"

#include <atbus/error.h>

#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"

/* What the watch remembers per key: enough to tell a re-list's changes. */
struct etcd_wkey {
    etcd_wkey *next;
    uint64_t hash;
    int64_t mod_rev;
    uint32_t mark;
    size_t len;
    char key[];
};

/* watch_lines: the watch ended or restarted inside a callback. */
#define WATCH_GONE 1

static void watch_connect(atb_etcd *c);
static void watch_failed(atb_etcd *c, int err, const char *detail);

/* ---- the key map ----------------------------------------------------- */

static uint64_t
wkey_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    }
    return h;
}

/* wkey_link returns the link pointing at key's entry, or at the NULL
 * ending its bucket. The table must exist. */
static etcd_wkey **
wkey_link(etcd_watch *w, const char *k, size_t n, uint64_t h)
{
    etcd_wkey **pp = &w->table[h & (w->cap - 1)];
    while (*pp != NULL && !((*pp)->hash == h && (*pp)->len == n &&
                            memcmp((*pp)->key, k, n) == 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

static int
wkey_grow(etcd_watch *w)
{
    size_t cap = w->cap == 0 ? 64 : w->cap * 2;
    etcd_wkey **t = atb_calloc(cap, sizeof(*t));
    if (t == NULL) {
        return ATBUS_ENOMEM;
    }
    for (size_t i = 0; i < w->cap; i++) {
        etcd_wkey *e = w->table[i];
        while (e != NULL) {
            etcd_wkey *next = e->next;
            e->next = t[e->hash & (cap - 1)];
            t[e->hash & (cap - 1)] = e;
            e = next;
        }
    }
    atb_free(w->table);
    w->table = t;
    w->cap = cap;
    return ATBUS_OK;
}

/* wkey_set records key at mod_rev; *changed says whether that is news.
 * Returns ATBUS_OK or ATBUS_ENOMEM. */
static int
wkey_set(etcd_watch *w, const char *k, size_t n, int64_t mod_rev, int *changed)
{
    if (w->n >= w->cap && wkey_grow(w) != ATBUS_OK) {
        return ATBUS_ENOMEM;
    }
    uint64_t h = wkey_hash(k, n);
    etcd_wkey **pp = wkey_link(w, k, n, h);
    etcd_wkey *e = *pp;
    if (e == NULL) {
        e = atb_malloc(sizeof(*e) + n + 1);
        if (e == NULL) {
            return ATBUS_ENOMEM;
        }
        e->next = NULL;
        e->hash = h;
        e->len = n;
        memcpy(e->key, k, n);
        e->key[n] = '\0';
        e->mod_rev = 0;
        *pp = e;
        w->n++;
    }
    *changed = e->mod_rev != mod_rev;
    e->mod_rev = mod_rev;
    e->mark = w->mark;
    return ATBUS_OK;
}

static void
wkey_remove(etcd_watch *w, const char *k, size_t n)
{
    if (w->cap == 0) {
        return;
    }
    etcd_wkey **pp = wkey_link(w, k, n, wkey_hash(k, n));
    etcd_wkey *e = *pp;
    if (e != NULL) {
        *pp = e->next;
        w->n--;
        atb_free(e);
    }
}

static void
wkey_clear(etcd_watch *w)
{
    for (size_t i = 0; i < w->cap; i++) {
        while (w->table[i] != NULL) {
            etcd_wkey *e = w->table[i];
            w->table[i] = e->next;
            atb_free(e);
        }
    }
    atb_free(w->table);
    w->table = NULL;
    w->cap = 0;
    w->n = 0;
}

/* ---- reporting ------------------------------------------------------- */

static void
watch_deliver(atb_etcd *c, int kind, const char *key, size_t key_len,
              const char *value, size_t value_len, int64_t rev)
{
    c->stats.events++;
    if (c->cbs.on_event != NULL) {
        c->cbs.on_event(kind, key, key_len, value, value_len, rev, c->cb_arg);
    }
}

static void
watch_state(atb_etcd *c, int state, int err, const char *detail)
{
    etcd_watch *w = &c->watch;
    if (w->state == state) {
        return;
    }
    w->state = state;
    if (c->cbs.on_watch_state != NULL) {
        c->cbs.on_watch_state(state, w->since_us, err, detail, c->cb_arg);
    }
}

/* ---- stream ---------------------------------------------------------- */

static void
watch_teardown(etcd_watch *w)
{
    atb_etcd_http_cancel(&w->req);
    atb_timer_stop(&w->created_timer);
    w->created = 0;
    w->gen++;
}

/* watch_events reports the events of one message and advances rev. */
static int
watch_events(atb_etcd *c, const json_t *result, atb_etcd_detail *d)
{
    etcd_watch *w = &c->watch;
    atb_etcd_kv *kvs = NULL;
    size_t n = 0;
    int rc = atb_etcd_json_kvs(result, "events", "kv", c->prefix, c->prefix_len,
                               &kvs, &n, d);
    if (rc != ATBUS_OK) {
        return rc;
    }
    const json_t *events = json_object_get(result, "events");
    for (size_t i = 0; i < n; i++) {
        const json_t *type = json_object_get(json_array_get(events, i), "type");
        if (type != NULL && !json_is_string(type)) {
            atb_etcd_detail_set(d, "events[%zu].type: not a string", i);
            atb_free(kvs);
            return ATBUS_EPARSE;
        }
        const char *t = type != NULL ? json_string_value(type) : "PUT";
        if (strcmp(t, "PUT") != 0 && strcmp(t, "DELETE") != 0) {
            atb_etcd_detail_set(d, "events[%zu].type: unknown \"%.32s\"", i, t);
            atb_free(kvs);
            return ATBUS_EPARSE;
        }
    }
    uint64_t gen = w->gen;
    for (size_t i = 0; i < n; i++) {
        const atb_etcd_kv *kv = &kvs[i];
        const json_t *type = json_object_get(json_array_get(events, i), "type");
        int del =
            type != NULL && strcmp(json_string_value(type), "DELETE") == 0;
        if (kv->mod_revision > w->rev) {
            w->rev = kv->mod_revision;
        }
        if (del) {
            wkey_remove(w, kv->key, kv->key_len);
            watch_deliver(c, ATB_ETCD_DELETE, kv->key, kv->key_len, NULL, 0,
                          kv->mod_revision);
        } else {
            int changed = 0;
            if (wkey_set(w, kv->key, kv->key_len, kv->mod_revision, &changed) !=
                ATBUS_OK) {
                /* The map is behind: only a re-list can repair it. */
                atb_free(kvs);
                atb_etcd_detail_set(d, "out of memory for the key map");
                return ATBUS_ENOMEM;
            }
            watch_deliver(c, ATB_ETCD_PUT, kv->key, kv->key_len, kv->value,
                          kv->value_len, kv->mod_revision);
        }
        if (w->gen != gen) {
            break;
        }
    }
    atb_free(kvs);
    return w->gen != gen ? WATCH_GONE : ATBUS_OK;
}

/* watch_message handles one parsed stream message. */
static int
watch_message(atb_etcd *c, const json_t *root, atb_etcd_detail *d)
{
    etcd_watch *w = &c->watch;
    int code = 0;
    const char *msg = NULL;
    if (atb_etcd_json_error(root, &code, &msg)) {
        int retry = 0;
        atb_etcd_detail_set(d, "watch stream error %d: %s", code, msg);
        return atb_etcd_grpc_error(code, msg, &retry);
    }
    const json_t *result = NULL;
    int rc = atb_etcd_json_object(root, "result", &result, d);
    if (rc == ATBUS_OK && result == NULL) {
        atb_etcd_detail_set(d, "watch message without \"result\"");
        rc = ATBUS_EPARSE;
    }
    int64_t rev = 0;
    int64_t compact = 0;
    int created = 0;
    int canceled = 0;
    if (rc == ATBUS_OK) {
        rc = atb_etcd_json_revision(result, &rev, d);
    }
    if (rc == ATBUS_OK) {
        rc = atb_etcd_json_bool(result, "created", &created, d);
    }
    if (rc == ATBUS_OK) {
        rc = atb_etcd_json_bool(result, "canceled", &canceled, d);
    }
    if (rc == ATBUS_OK) {
        rc = atb_etcd_json_i64(result, "compact_revision", &compact, d);
    }
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (canceled) {
        if (compact > 0) {
            atb_etcd_detail_set(d,
                                "revision %" PRId64 " compacted (oldest kept "
                                "%" PRId64 ")",
                                w->rev + 1, compact);
            return ATBUS_ECOMPACTED;
        }
        const json_t *why = json_object_get(result, "cancel_reason");
        const char *reason = json_is_string(why) ? json_string_value(why) : "";
        atb_etcd_detail_set(d, "watch canceled: %s", reason);
        /* A refused token cancels the watch with the gRPC code in the
         * reason ("rpc error: code = Unauthenticated desc = ..."). */
        return strstr(reason, "Unauthenticated") != NULL ||
                       strstr(reason, "PermissionDenied") != NULL
                   ? ATBUS_EPERM
                   : ATBUS_EBACKEND;
    }
    if (created) {
        w->created = 1;
        w->created_us = atb_loop_now_us(c->loop);
        w->tried = 0;
        atb_timer_stop(&w->created_timer);
        uint64_t gen = w->gen;
        watch_state(c, ATB_ETCD_WATCH_SYNCED, ATBUS_OK, "");
        if (w->gen != gen) {
            return WATCH_GONE;
        }
    }
    if (json_object_get(result, "events") != NULL) {
        return watch_events(c, result, d);
    }
    if (!created && rev > w->rev) {
        /* A progress notification: etcd sends it only to watchers that
         * have caught up, so everything up to rev has been seen. */
        w->rev = rev;
    }
    return ATBUS_OK;
}

/*
 * watch_lines handles every complete line in the stream buffer, and with
 * final the unterminated rest (etcd ends a stream with an error object
 * that has no newline). Returns ATBUS_OK, WATCH_GONE or an error with
 * detail in *d.
 */
static int
watch_lines(atb_etcd *c, int final, atb_etcd_detail *d)
{
    etcd_watch *w = &c->watch;
    atb_etcd_buf *b = &w->req.body;
    uint64_t gen = w->gen;
    while (b->len > 0) {
        const char *nl = memchr(b->data, '\n', b->len);
        if (nl == NULL && !final) {
            return ATBUS_OK;
        }
        size_t n = nl != NULL ? (size_t)(nl - b->data) : b->len;
        size_t skip = 0;
        while (skip < n && (b->data[skip] == ' ' || b->data[skip] == '\r' ||
                            b->data[skip] == '\t')) {
            skip++;
        }
        if (skip == n) {
            atb_etcd_buf_consume(b, n + (nl != NULL));
            continue;
        }
        json_t *root = NULL;
        int rc = atb_etcd_json_parse(b->data, n, &root, d);
        /* Consumed before handling: a callback may end the stream. */
        atb_etcd_buf_consume(b, n + (nl != NULL));
        if (rc != ATBUS_OK) {
            return rc;
        }
        rc = watch_message(c, root, d);
        json_decref(root);
        if (rc != ATBUS_OK) {
            return rc;
        }
        if (w->gen != gen) {
            return WATCH_GONE;
        }
    }
    return ATBUS_OK;
}

static void
watch_data(atb_etcd_req *req, int err, void *arg)
{
    (void)err;
    atb_etcd *c = arg;
    if (req->status != 200) {
        return; /* an error body: read whole at the end */
    }
    atb_etcd_detail d;
    int rc = watch_lines(c, 0, &d);
    if (rc < 0) {
        watch_failed(c, rc, d.text);
    }
}

static void
watch_done(atb_etcd_req *req, int err, void *arg)
{
    atb_etcd *c = arg;
    etcd_watch *w = &c->watch;
    atb_timer_stop(&w->created_timer);
    atb_etcd_detail d;
    if (err != ATBUS_OK) {
        atb_etcd_detail_set(&d, "watch on %s: %s", c->endpoints[w->ep],
                            req->errbuf);
        watch_failed(c, err, d.text);
        return;
    }
    if (req->status == 200) {
        int rc = watch_lines(c, 1, &d);
        if (rc == WATCH_GONE) {
            return;
        }
        if (rc == ATBUS_OK) {
            atb_etcd_detail_set(&d, "watch on %s: stream ended",
                                c->endpoints[w->ep]);
            rc = ATBUS_ECONNRESET;
        }
        watch_failed(c, rc, d.text);
        return;
    }
    json_t *root = NULL;
    int code = 0;
    const char *msg = "";
    int rc = ATBUS_EBACKEND;
    if (atb_etcd_json_parse(req->body.data != NULL ? req->body.data : "",
                            req->body.len, &root, &d) == ATBUS_OK &&
        atb_etcd_json_error(root, &code, &msg)) {
        int retry = 0;
        rc = atb_etcd_grpc_error(code, msg, &retry);
    }
    atb_etcd_detail_set(&d, "watch on %s: HTTP %ld, etcd error %d: %s",
                        c->endpoints[w->ep], req->status, code, msg);
    json_decref(root);
    watch_failed(c, rc, d.text);
}

static void
watch_stream(atb_etcd *c)
{
    etcd_watch *w = &c->watch;
    atb_etcd_buf *b = &w->body;
    atb_etcd_buf_reset(b);
    atb_etcd_buf_str(b, "{\"create_request\":{");
    atb_etcd_body_key(c, b, w->key, 1);
    atb_etcd_buf_str(b, ",\"start_revision\":\"");
    atb_etcd_buf_i64(b, w->rev + 1);
    atb_etcd_buf_str(b, "\",\"progress_notify\":true}}");
    char url[ATB_ETCD_DETAIL_MAX];
    int rc = b->err;
    if (rc == ATBUS_OK) {
        rc = atb_etcd_url(c, c->cur_ep, "/v3/watch", url, sizeof(url));
    }
    if (rc == ATBUS_OK) {
        w->ep = (int)c->cur_ep;
        rc = atb_etcd_http_start(&c->http, &w->req, url, b->data, b->len,
                                 c->token, 0, 0, c->cfg.request_timeout_ms, 1,
                                 watch_done, watch_data, c);
    }
    if (rc == ATBUS_OK) {
        rc = atb_timer_start(c->loop, &w->created_timer,
                             (uint64_t)c->cfg.request_timeout_ms * 1000, 0);
    }
    if (rc != ATBUS_OK) {
        atb_etcd_http_cancel(&w->req);
        watch_failed(c, rc, "cannot start the watch request");
        return;
    }
    c->stats.requests++;
    if (!w->after_list) {
        c->stats.watch_resumes++;
    }
    w->after_list = 0;
    w->created = 0;
}

static void
watch_created_fire(atb_timer *t, void *arg)
{
    (void)t;
    atb_etcd *c = arg;
    char d[96];
    snprintf(d, sizeof(d), "watch not confirmed within %" PRIu32 " ms",
             c->cfg.request_timeout_ms);
    watch_failed(c, ATBUS_ETIMEDOUT, d);
}

/* ---- rounds and backoff ---------------------------------------------- */

static void
watch_round_failed(atb_etcd *c, int err, const char *detail, int counted)
{
    etcd_watch *w = &c->watch;
    w->tried = 0;
    if (!counted) {
        c->stats.failed_rounds++;
    }
    uint64_t delay = atb_etcd_backoff_us(c, w->round);
    w->round++;
    if (atb_timer_start(c->loop, &w->retry_timer, delay, 0) != ATBUS_OK) {
        /* Out of memory: the loop cannot hold the timer; try at once on
         * the next failure rather than stopping for good. */
        watch_connect(c);
        return;
    }
    watch_state(c, ATB_ETCD_WATCH_STALE, err, detail);
}

static void
watch_failed(atb_etcd *c, int err, const char *detail)
{
    etcd_watch *w = &c->watch;
    int was_created = w->created;
    watch_teardown(w);
    if (err == ATBUS_EPERM || err == ATBUS_EBACKEND) {
        /* Refused or canceled: etcd reports a stale token in several
         * ways here (an HTTP error, an in-band error, a cancel reason), so
         * sign in again before the next try. */
        atb_etcd_token_drop(c, c->token_gen);
    }
    if (err == ATBUS_ECOMPACTED) {
        c->stats.watch_compacted++;
        w->need_list = 1;
        watch_connect(c);
        return;
    }
    atb_etcd_endpoint_failed(c, (size_t)w->ep);
    if (was_created) {
        /* The view was current until now. A stream that stayed up for a
         * while was healthy: reconnect at once, from a fresh round. One
         * that died right after opening (a member that confirms, then
         * fails) counts as a failed attempt, so it backs off. */
        uint64_t now = atb_loop_now_us(c->loop);
        w->since_us = now;
        w->tried = 0;
        if (now - w->created_us >= (uint64_t)c->cfg.backoff_max_ms * 1000) {
            w->round = 0;
            watch_connect(c);
            return;
        }
    }
    w->tried++;
    if (w->tried < c->cfg.endpoint_count) {
        watch_connect(c);
        return;
    }
    watch_round_failed(c, err, detail, 0);
}

/* ---- listing --------------------------------------------------------- */

/* watch_sweep reports every key the listing did not mark as DELETE. */
static int
watch_sweep(atb_etcd *c, int64_t rev)
{
    etcd_watch *w = &c->watch;
    uint64_t gen = w->gen;
    for (size_t i = 0; i < w->cap; i++) {
        etcd_wkey **pp = &w->table[i];
        while (*pp != NULL) {
            etcd_wkey *e = *pp;
            if (e->mark == w->mark) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            w->n--;
            watch_deliver(c, ATB_ETCD_DELETE, e->key, e->len, NULL, 0, rev);
            atb_free(e);
            if (w->gen != gen) {
                return WATCH_GONE;
            }
        }
    }
    return ATBUS_OK;
}

static void
watch_list_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    etcd_watch *w = &c->watch;
    w->call = NULL;
    if (res->err != ATBUS_OK) {
        watch_round_failed(c, res->err, res->detail, 1);
        return;
    }
    uint64_t gen = w->gen;
    w->mark++;
    for (size_t i = 0; i < res->nkvs; i++) {
        const atb_etcd_kv *kv = &res->kvs[i];
        int changed = 0;
        if (wkey_set(w, kv->key, kv->key_len, kv->mod_revision, &changed) !=
            ATBUS_OK) {
            watch_round_failed(c, ATBUS_ENOMEM, "out of memory for the key map",
                               1);
            return;
        }
        if (changed) {
            watch_deliver(c, ATB_ETCD_PUT, kv->key, kv->key_len, kv->value,
                          kv->value_len, kv->mod_revision);
            if (w->gen != gen) {
                return;
            }
        }
    }
    if (watch_sweep(c, res->revision) != ATBUS_OK) {
        return;
    }
    w->rev = res->revision;
    w->need_list = 0;
    w->after_list = 1;
    watch_connect(c);
}

static void
watch_list(atb_etcd *c)
{
    etcd_watch *w = &c->watch;
    atb_etcd_call *call;
    int rc = atb_etcd_call_internal(c, ATB_ETCD_CALL_RANGE, 1, watch_list_done,
                                    &call);
    if (rc == ATBUS_OK) {
        atb_etcd_buf_str(&call->body, "{");
        atb_etcd_body_key(c, &call->body, w->key, 1);
        atb_etcd_buf_str(&call->body, "}");
        rc = atb_etcd_call_start(call);
    }
    if (rc != ATBUS_OK) {
        watch_round_failed(c, rc, "cannot start the listing", 0);
        return;
    }
    c->stats.watch_lists++;
    w->call = call;
}

static void
watch_auth_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    c->watch.call = NULL;
    if (res->err != ATBUS_OK) {
        watch_round_failed(c, res->err, res->detail, 1);
        return;
    }
    watch_connect(c);
}

/* watch_auth gets a token first: the stream does not go through calls. */
static void
watch_auth(atb_etcd *c)
{
    atb_etcd_call *call;
    int rc = atb_etcd_call_internal(c, ATB_ETCD_CALL_AUTH, 1, watch_auth_done,
                                    &call);
    if (rc == ATBUS_OK) {
        rc = atb_etcd_call_start(call);
    }
    if (rc != ATBUS_OK) {
        watch_round_failed(c, rc, "cannot start authentication", 0);
        return;
    }
    c->watch.call = call;
}

static void
watch_connect(atb_etcd *c)
{
    etcd_watch *w = &c->watch;
    if (w->need_list) {
        watch_list(c);
    } else if (atb_etcd_need_auth(c)) {
        watch_auth(c);
    } else {
        watch_stream(c);
    }
}

static void
watch_retry_fire(atb_timer *t, void *arg)
{
    (void)t;
    watch_connect(arg);
}

/* ---- API ------------------------------------------------------------- */

void
atb_etcd_watch_init(atb_etcd *c)
{
    etcd_watch *w = &c->watch;
    atb_timer_init(&w->retry_timer, watch_retry_fire, c);
    atb_timer_init(&w->created_timer, watch_created_fire, c);
    atb_etcd_buf_init(&w->body, c->cfg.max_response);
    atb_etcd_req_init(&w->req, c->cfg.max_response);
}

int
atb_etcd_watch_start(atb_etcd *c, const char *key)
{
    if (c == NULL || key == NULL) {
        return ATBUS_EINVAL;
    }
    if (c->closed) {
        return ATBUS_ECLOSED;
    }
    etcd_watch *w = &c->watch;
    if (w->active) {
        return ATBUS_EEXIST;
    }
    w->key = atb_strdup(key);
    if (w->key == NULL) {
        return ATBUS_ENOMEM;
    }
    /* Connect on the next turn: no callback from inside this call. */
    int rc = atb_timer_start(c->loop, &w->retry_timer, 0, 0);
    if (rc != ATBUS_OK) {
        atb_free(w->key);
        w->key = NULL;
        return rc;
    }
    w->active = 1;
    w->need_list = 1;
    w->after_list = 0;
    w->rev = 0;
    w->tried = 0;
    w->round = 0;
    w->state = 0;
    w->since_us = atb_loop_now_us(c->loop);
    return ATBUS_OK;
}

void
atb_etcd_watch_stop(atb_etcd *c)
{
    etcd_watch *w = &c->watch;
    if (!w->active) {
        return;
    }
    watch_teardown(w);
    atb_etcd_call_cancel(w->call);
    w->call = NULL;
    atb_timer_stop(&w->retry_timer);
    wkey_clear(w);
    atb_free(w->key);
    w->key = NULL;
    w->active = 0;
    w->state = 0;
    w->rev = 0;
}

int64_t
atb_etcd_watch_revision(const atb_etcd *c)
{
    return c->watch.rev;
}

void
atb_etcd_watch_close(atb_etcd *c)
{
    atb_etcd_watch_stop(c);
    atb_etcd_buf_fini(&c->watch.body);
    atb_etcd_req_fini(&c->watch.req);
}
