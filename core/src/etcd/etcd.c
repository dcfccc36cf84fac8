/*
 * The etcd client: configuration, endpoints and failover, the auth token,
 * gateway calls with their retries, and the one-shot operations.
 */
#define _POSIX_C_SOURCE 200809L
#include "etcd/etcd_internal.h"

#include <atbus/error.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "node/backoff.h"

/* Longest endpoint URL accepted; paths are short, so URLs fit in
 * ETCD_URL_MAX. */
#define ETCD_ENDPOINT_MAX 256
#define ETCD_URL_MAX 320

/* gRPC status codes the gateway reports. */
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_NOT_FOUND 5
#define GRPC_PERMISSION_DENIED 7
#define GRPC_FAILED_PRECONDITION 9
#define GRPC_OUT_OF_RANGE 11
#define GRPC_UNAVAILABLE 14

static const char *const etcd_paths[] = {
    [ATB_ETCD_CALL_RANGE] = "/v3/kv/range",
    [ATB_ETCD_CALL_PUT] = "/v3/kv/put",
    [ATB_ETCD_CALL_TXN] = "/v3/kv/txn",
    [ATB_ETCD_CALL_DELETE] = "/v3/kv/deleterange",
    [ATB_ETCD_CALL_GRANT] = "/v3/lease/grant",
    [ATB_ETCD_CALL_KEEPALIVE] = "/v3/lease/keepalive",
    [ATB_ETCD_CALL_REVOKE] = "/v3/lease/revoke",
    [ATB_ETCD_CALL_AUTH] = "/v3/auth/authenticate",
};

/* ---- configuration ---------------------------------------------------- */

int
atb_etcd_config_default(atb_etcd_config *cfg)
{
    if (cfg == NULL) {
        return ATBUS_EINVAL;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->lease_ttl_s = 10;
    cfg->request_timeout_ms = 5000;
    cfg->backoff_min_ms = 100;
    cfg->backoff_max_ms = 5000;
    cfg->op_rounds = 2;
    cfg->max_response = (size_t)64 * 1024 * 1024;
    return ATBUS_OK;
}

static int
etcd_config_check(const atb_etcd_config *cfg)
{
    if (cfg->endpoint_count == 0 ||
        cfg->endpoint_count > ATB_ETCD_MAX_ENDPOINTS || cfg->lease_ttl_s == 0 ||
        cfg->request_timeout_ms == 0 || cfg->backoff_min_ms == 0 ||
        cfg->backoff_max_ms < cfg->backoff_min_ms || cfg->op_rounds == 0 ||
        cfg->max_response < 1024 ||
        (cfg->username == NULL) != (cfg->password == NULL)) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < cfg->endpoint_count; i++) {
        const char *e = cfg->endpoints[i];
        if (e == NULL || strlen(e) >= ETCD_ENDPOINT_MAX ||
            (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)) {
            return ATBUS_EINVAL;
        }
    }
    return ATBUS_OK;
}

static void
etcd_release(atb_etcd *c)
{
    for (size_t i = 0; i < ATB_ETCD_MAX_ENDPOINTS; i++) {
        atb_free(c->endpoints[i]);
    }
    atb_free(c->prefix);
    atb_free(c->username);
    atb_free(c->password);
    atb_free(c->token);
    atb_free(c);
}

/* etcd_copy duplicates s (NULL stays NULL); sets *oom on failure. */
static char *
etcd_copy(const char *s, int *oom)
{
    if (s == NULL) {
        return NULL;
    }
    char *p = atb_strdup(s);
    if (p == NULL) {
        *oom = 1;
    }
    return p;
}

int
atb_etcd_new(atb_etcd **out, atb_loop *loop, const atb_etcd_config *cfg,
             const atb_etcd_callbacks *cbs, void *arg)
{
    if (out == NULL || loop == NULL || cfg == NULL) {
        return ATBUS_EINVAL;
    }
    int rc = etcd_config_check(cfg);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd *c = atb_calloc(1, sizeof(*c));
    if (c == NULL) {
        return ATBUS_ENOMEM;
    }
    int oom = 0;
    for (size_t i = 0; i < cfg->endpoint_count; i++) {
        c->endpoints[i] = etcd_copy(cfg->endpoints[i], &oom);
        /* "http://host:port/" and "http://host:port" name one base. */
        size_t len = c->endpoints[i] != NULL ? strlen(c->endpoints[i]) : 0;
        if (len > 0 && c->endpoints[i][len - 1] == '/') {
            c->endpoints[i][len - 1] = '\0';
        }
    }
    c->prefix = etcd_copy(cfg->prefix != NULL ? cfg->prefix : "", &oom);
    c->username = etcd_copy(cfg->username, &oom);
    c->password = etcd_copy(cfg->password, &oom);
    if (oom) {
        etcd_release(c);
        return ATBUS_ENOMEM;
    }
    rc = atb_etcd_http_init(&c->http, loop);
    if (rc != ATBUS_OK) {
        etcd_release(c);
        return rc;
    }
    c->loop = loop;
    c->cfg = *cfg;
    for (size_t i = 0; i < ATB_ETCD_MAX_ENDPOINTS; i++) {
        c->cfg.endpoints[i] = c->endpoints[i];
    }
    c->cfg.prefix = c->prefix;
    c->cfg.username = c->username;
    c->cfg.password = c->password;
    c->prefix_len = strlen(c->prefix);
    if (cbs != NULL) {
        c->cbs = *cbs;
    }
    c->cb_arg = arg;
    c->rng = cfg->seed != 0 ? cfg->seed
                            : atb_clock_us() ^ ((uint64_t)getpid() << 32);
    atb_etcd_session_init(c);
    atb_etcd_watch_init(c);
    *out = c;
    return ATBUS_OK;
}

void
atb_etcd_stats_get(const atb_etcd *c, atb_etcd_stats *out)
{
    *out = c->stats;
}

/* ---- endpoints, backoff, auth -------------------------------------- */

int
atb_etcd_url(const atb_etcd *c, size_t ep, const char *path, char *buf,
             size_t cap)
{
    int n = snprintf(buf, cap, "%s%s", c->endpoints[ep], path);
    return n < 0 || (size_t)n >= cap ? ATBUS_ENOBUFS : ATBUS_OK;
}

void
atb_etcd_endpoint_failed(atb_etcd *c, size_t ep)
{
    if (c->cur_ep == ep && c->cfg.endpoint_count > 1) {
        c->cur_ep = (ep + 1) % c->cfg.endpoint_count;
        c->stats.failovers++;
    }
}

uint64_t
atb_etcd_backoff_us(atb_etcd *c, uint32_t round)
{
    return atb_backoff_delay_us(round, (uint64_t)c->cfg.backoff_min_ms * 1000,
                                (uint64_t)c->cfg.backoff_max_ms * 1000,
                                &c->rng);
}

int
atb_etcd_need_auth(const atb_etcd *c)
{
    return c->username != NULL && c->token == NULL;
}

void
atb_etcd_token_drop(atb_etcd *c, uint64_t token_gen)
{
    if (c->token != NULL && c->token_gen == token_gen) {
        atb_free(c->token);
        c->token = NULL;
    }
}

int
atb_etcd_grpc_error(int code, const char *message, int *retry)
{
    *retry = 0;
    switch (code) {
    case GRPC_UNAVAILABLE:
    case GRPC_DEADLINE_EXCEEDED:
        /* No leader, leader changed, member stopping: try another. */
        *retry = 1;
        return ATBUS_EUNAVAILABLE;
    case GRPC_NOT_FOUND:
        return ATBUS_ENOTFOUND;
    case GRPC_PERMISSION_DENIED:
    case ATB_ETCD_GRPC_UNAUTHENTICATED:
        return ATBUS_EPERM;
    case GRPC_OUT_OF_RANGE:
        return strstr(message, "compacted") != NULL ? ATBUS_ECOMPACTED
                                                    : ATBUS_EBACKEND;
    case GRPC_INVALID_ARGUMENT:
    case GRPC_FAILED_PRECONDITION:
        /* Auth on, no or wrong credentials. */
        return strstr(message, "user name") != NULL ||
                       strstr(message, "authentication failed") != NULL
                   ? ATBUS_EPERM
                   : ATBUS_EBACKEND;
    default:
        return ATBUS_EBACKEND;
    }
}

/* ---- calls ----------------------------------------------------------- */

static void call_done(atb_etcd_req *req, int err, void *arg);
static void call_timer_fire(atb_timer *t, void *arg);
static int call_attempt(atb_etcd_call *call);

int
atb_etcd_call_new(atb_etcd *c, int kind, unsigned max_rounds, atb_etcd_cb cb,
                  void *arg, atb_etcd_call **out)
{
    atb_etcd_call *call = atb_calloc(1, sizeof(*call));
    if (call == NULL) {
        return ATBUS_ENOMEM;
    }
    call->c = c;
    call->kind = kind;
    call->max_rounds = max_rounds;
    call->cb = cb;
    call->arg = arg;
    atb_etcd_buf_init(&call->body, c->cfg.max_response);
    atb_etcd_req_init(&call->req, c->cfg.max_response);
    atb_timer_init(&call->timer, call_timer_fire, call);
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    *out = call;
    return ATBUS_OK;
}

int
atb_etcd_call_internal(atb_etcd *c, int kind, unsigned max_rounds,
                       atb_etcd_cb cb, atb_etcd_call **out)
{
    int rc = atb_etcd_call_new(c, kind, max_rounds, cb, c, out);
    if (rc == ATBUS_OK) {
        (*out)->internal = 1;
    }
    return rc;
}

/* call_unlink takes call out of the client's list. */
static void
call_unlink(atb_etcd_call *call)
{
    atb_etcd *c = call->c;
    atb_etcd_http_cancel(&call->req);
    atb_timer_stop(&call->timer);
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else if (c->calls == call) {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->next = NULL;
    call->prev = NULL;
    if (c->auth == call) {
        c->auth = NULL;
    }
}

static void
call_destroy(atb_etcd_call *call)
{
    atb_etcd_req_fini(&call->req);
    atb_etcd_buf_fini(&call->body);
    atb_free(call);
}

void
atb_etcd_call_cancel(atb_etcd_call *call)
{
    if (call != NULL) {
        call_unlink(call);
        call_destroy(call);
    }
}

/* call_finish reports res (its detail taken from the call) and frees.
 * The call is unlinked first: the callback may close the client. */
static void
call_finish(atb_etcd_call *call, atb_etcd_result *res)
{
    res->detail = res->err == ATBUS_OK ? "" : call->detail.text;
    call_unlink(call);
    call->cb(res, call->arg);
    call_destroy(call);
}

/* call_fail finishes call with err; detail already set. */
static void
call_fail(atb_etcd_call *call, int err)
{
    atb_etcd_result res;
    memset(&res, 0, sizeof(res));
    res.err = err;
    call_finish(call, &res);
}

static void auth_done(const atb_etcd_result *res, void *arg);

/* auth_body appends the AuthenticateRequest. */
static int
auth_body(atb_etcd *c, atb_etcd_buf *b)
{
    atb_etcd_buf_str(b, "{\"name\":");
    atb_etcd_buf_json_str(b, c->username);
    atb_etcd_buf_str(b, ",\"password\":");
    atb_etcd_buf_json_str(b, c->password);
    return atb_etcd_buf_str(b, "}");
}

/* auth_start parks call until a token arrives, asking for one if no
 * authentication is in flight. */
static int
auth_start(atb_etcd_call *call)
{
    atb_etcd *c = call->c;
    call->waiting_auth = 1;
    if (c->auth != NULL) {
        call->auth_epoch = c->auth_epoch;
        return ATBUS_OK;
    }
    call->auth_epoch = ++c->auth_epoch;
    atb_etcd_call *auth;
    int rc = atb_etcd_call_internal(c, ATB_ETCD_CALL_AUTH, c->cfg.op_rounds,
                                    auth_done, &auth);
    if (rc != ATBUS_OK) {
        call->waiting_auth = 0;
        return rc;
    }
    c->auth = auth;
    rc = atb_etcd_call_start(auth);
    if (rc != ATBUS_OK) {
        call->waiting_auth = 0;
    }
    return rc;
}

/* auth_done resumes (or fails) every call parked for this
 * authentication. Rescans from the head after each one: a callback may
 * change the list, and park new calls for a newer authentication. */
static void
auth_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    uint64_t epoch = c->auth_epoch;
    for (;;) {
        atb_etcd_call *call = c->calls;
        while (call != NULL &&
               !(call->waiting_auth && call->auth_epoch == epoch)) {
            call = call->next;
        }
        if (call == NULL) {
            return;
        }
        call->waiting_auth = 0;
        int rc = res->err;
        if (rc == ATBUS_OK) {
            rc = call_attempt(call);
            if (rc != ATBUS_OK) {
                atb_etcd_detail_set(&call->detail, "cannot start request");
            }
        } else {
            atb_etcd_detail_set(&call->detail, "authentication: %s",
                                res->detail);
        }
        if (rc != ATBUS_OK) {
            call_fail(call, rc);
        }
    }
}

static int
call_attempt(atb_etcd_call *call)
{
    atb_etcd *c = call->c;
    if (call->kind != ATB_ETCD_CALL_AUTH && atb_etcd_need_auth(c)) {
        return auth_start(call);
    }
    char url[ETCD_URL_MAX];
    call->ep = (int)c->cur_ep;
    int rc =
        atb_etcd_url(c, c->cur_ep, etcd_paths[call->kind], url, sizeof(url));
    if (rc != ATBUS_OK) {
        return rc;
    }
    call->token_gen = c->token_gen;
    c->stats.requests++;
    /* A range answer grows with the registry: bound it by progress, not
     * by total time. Everything else is small. */
    uint32_t t = c->cfg.request_timeout_ms;
    int range = call->kind == ATB_ETCD_CALL_RANGE;
    return atb_etcd_http_start(
        &c->http, &call->req, url, call->body.data, call->body.len,
        call->kind == ATB_ETCD_CALL_AUTH ? NULL : c->token, range ? 0 : t,
        range ? t : 0, t, 0, call_done, NULL, call);
}

int
atb_etcd_call_start(atb_etcd_call *call)
{
    if (call->kind == ATB_ETCD_CALL_AUTH && call->body.len == 0) {
        auth_body(call->c, &call->body);
    }
    int rc = call->body.err;
    if (rc == ATBUS_OK) {
        rc = call_attempt(call);
    }
    if (rc != ATBUS_OK) {
        atb_etcd_call_cancel(call);
    }
    return rc;
}

static void
call_timer_fire(atb_timer *t, void *arg)
{
    (void)t;
    atb_etcd_call *call = arg;
    int rc = call_attempt(call);
    if (rc != ATBUS_OK) {
        atb_etcd_detail_set(&call->detail, "cannot start request");
        call_fail(call, rc);
    }
}

/* call_failover moves call to the next endpoint, or ends the round. */
static void
call_failover(atb_etcd_call *call)
{
    atb_etcd *c = call->c;
    atb_etcd_endpoint_failed(c, (size_t)call->ep);
    call->tried++;
    int rc;
    if (call->tried < c->cfg.endpoint_count) {
        rc = call_attempt(call);
    } else {
        call->tried = 0;
        call->round++;
        c->stats.failed_rounds++;
        if (call->max_rounds != 0 && call->round >= call->max_rounds) {
            char last[ATB_ETCD_DETAIL_MAX];
            memcpy(last, call->detail.text, sizeof(last));
            atb_etcd_detail_set(&call->detail,
                                "no endpoint answered in %u round%s; last: %s",
                                call->round, call->round == 1 ? "" : "s", last);
            call_fail(call, ATBUS_EUNAVAILABLE);
            return;
        }
        rc = atb_timer_start(c->loop, &call->timer,
                             atb_etcd_backoff_us(c, call->round - 1), 0);
    }
    if (rc != ATBUS_OK) {
        call_fail(call, rc);
    }
}

/* call_parse_ok reads a 200 answer of call's kind into res. */
static int
call_parse_ok(atb_etcd_call *call, const json_t *root, atb_etcd_result *res,
              atb_etcd_kv **kvs)
{
    atb_etcd *c = call->c;
    atb_etcd_detail *d = &call->detail;
    int rc = atb_etcd_json_revision(root, &res->revision, d);
    switch (call->kind) {
    case ATB_ETCD_CALL_RANGE:
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_kvs(root, "kvs", NULL, c->prefix, c->prefix_len,
                                   kvs, &res->nkvs, d);
        }
        res->kvs = *kvs;
        return rc == ATBUS_OK ? atb_etcd_json_i64(root, "count", &res->count, d)
                              : rc;
    case ATB_ETCD_CALL_TXN:
        return rc == ATBUS_OK
                   ? atb_etcd_json_bool(root, "succeeded", &res->succeeded, d)
                   : rc;
    case ATB_ETCD_CALL_DELETE:
        return rc == ATBUS_OK
                   ? atb_etcd_json_i64(root, "deleted", &res->deleted, d)
                   : rc;
    case ATB_ETCD_CALL_GRANT:
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_i64(root, "ID", &res->lease, d);
        }
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_i64(root, "TTL", &res->ttl, d);
        }
        if (rc == ATBUS_OK && (res->lease == 0 || res->ttl <= 0)) {
            atb_etcd_detail_set(d, "lease grant answered without ID or TTL");
            rc = ATBUS_EPARSE;
        }
        return rc;
    case ATB_ETCD_CALL_KEEPALIVE: {
        const json_t *result = NULL;
        rc = atb_etcd_json_object(root, "result", &result, d);
        if (rc == ATBUS_OK && result == NULL) {
            atb_etcd_detail_set(d, "keep-alive answered without \"result\"");
            rc = ATBUS_EPARSE;
        }
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_revision(result, &res->revision, d);
        }
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_i64(result, "ID", &res->lease, d);
        }
        if (rc == ATBUS_OK) {
            rc = atb_etcd_json_i64(result, "TTL", &res->ttl, d);
        }
        if (rc == ATBUS_OK && res->ttl <= 0) {
            /* An expired or revoked lease answers 200 without a TTL. */
            atb_etcd_detail_set(d, "lease %" PRId64 " not found or expired",
                                res->lease);
            rc = ATBUS_ENOTFOUND;
        }
        return rc;
    }
    case ATB_ETCD_CALL_AUTH: {
        const json_t *tok = json_object_get(root, "token");
        if (!json_is_string(tok) || json_string_length(tok) == 0) {
            atb_etcd_detail_set(d, "authenticate answered without a token");
            return ATBUS_EPARSE;
        }
        char *copy = atb_strdup(json_string_value(tok));
        if (copy == NULL) {
            return ATBUS_ENOMEM;
        }
        atb_free(c->token);
        c->token = copy;
        c->token_gen++;
        c->stats.auths++;
        return ATBUS_OK;
    }
    default:
        return rc;
    }
}

/* call_answer handles a complete HTTP answer. */
static void
call_answer(atb_etcd_call *call, const char *where)
{
    atb_etcd *c = call->c;
    atb_etcd_req *req = &call->req;
    json_t *root = NULL;
    atb_etcd_detail jd;
    int rc = atb_etcd_json_parse(req->body.data != NULL ? req->body.data : "",
                                 req->body.len, &root, &jd);
    int code = 0;
    const char *msg = NULL;
    if (rc == ATBUS_OK && atb_etcd_json_error(root, &code, &msg)) {
        int retry = 0;
        rc = atb_etcd_grpc_error(code, msg, &retry);
        atb_etcd_detail_set(&call->detail, "%s: HTTP %ld, etcd error %d: %s",
                            where, req->status, code, msg);
        json_decref(root);
        if (code == ATB_ETCD_GRPC_UNAUTHENTICATED && c->username != NULL &&
            !call->reauthed && call->kind != ATB_ETCD_CALL_AUTH) {
            /* Tokens die with a restart or after idling: get a new one. */
            call->reauthed = 1;
            atb_etcd_token_drop(c, call->token_gen);
            rc = call_attempt(call);
            if (rc == ATBUS_OK) {
                return;
            }
        }
        if (retry) {
            call_failover(call);
        } else {
            call_fail(call, rc);
        }
        return;
    }
    if (req->status != 200) {
        if (rc == ATBUS_OK) {
            json_decref(root);
        }
        atb_etcd_detail_set(&call->detail, "%s: HTTP %ld without an etcd error",
                            where, req->status);
        if (req->status >= 500) {
            call_failover(call);
        } else {
            call_fail(call, ATBUS_EBACKEND);
        }
        return;
    }
    if (rc != ATBUS_OK) {
        atb_etcd_detail_set(&call->detail, "%s: response %s", where, jd.text);
        call_fail(call, rc);
        return;
    }
    atb_etcd_result res;
    memset(&res, 0, sizeof(res));
    atb_etcd_kv *kvs = NULL;
    atb_etcd_detail_set(&call->detail, "%s", "");
    res.err = call_parse_ok(call, root, &res, &kvs);
    json_decref(root);
    if (res.err != ATBUS_OK) {
        char why[ATB_ETCD_DETAIL_MAX];
        memcpy(why, call->detail.text, sizeof(why));
        atb_etcd_detail_set(&call->detail, "%s: %s", where, why);
    }
    call_finish(call, &res);
    atb_free(kvs);
}

static void
call_done(atb_etcd_req *req, int err, void *arg)
{
    atb_etcd_call *call = arg;
    char where[ETCD_URL_MAX];
    if (atb_etcd_url(call->c, (size_t)call->ep, etcd_paths[call->kind], where,
                     sizeof(where)) != ATBUS_OK) {
        where[0] = '\0';
    }
    if (err == ATBUS_OK) {
        call_answer(call, where);
        return;
    }
    atb_etcd_detail_set(&call->detail, "%s: %s", where, req->errbuf);
    if (err == ATBUS_ECONNREFUSED || err == ATBUS_ETIMEDOUT ||
        err == ATBUS_ECONNRESET) {
        call_failover(call);
    } else {
        call_fail(call, err);
    }
}

/* ---- request bodies -------------------------------------------------- */

/* etcd_full_key returns prefix + key in a new buffer (NUL-terminated). */
static int
etcd_full_key(atb_etcd *c, const char *key, atb_etcd_buf *out)
{
    atb_etcd_buf_init(out, c->cfg.max_response);
    atb_etcd_buf_append(out, c->prefix, c->prefix_len);
    return atb_etcd_buf_str(out, key);
}

int
atb_etcd_body_key(atb_etcd *c, atb_etcd_buf *b, const char *key, int prefix)
{
    atb_etcd_buf full;
    int rc = etcd_full_key(c, key, &full);
    if (rc != ATBUS_OK) {
        atb_etcd_buf_fini(&full);
        b->err = b->err != 0 ? b->err : rc;
        return rc;
    }
    atb_etcd_buf_str(b, "\"key\":\"");
    if (full.len == 0) {
        /* The empty key: "\0" starts the whole keyspace. */
        atb_etcd_buf_b64(b, "", 1);
    } else {
        atb_etcd_buf_b64(b, full.data, full.len);
    }
    atb_etcd_buf_str(b, "\"");
    if (prefix) {
        /* range_end: the prefix with its last byte below 0xff raised;
         * "\0" (everything after key) when there is none. */
        size_t n = full.len;
        unsigned char *p = (unsigned char *)full.data;
        while (n > 0 && p[n - 1] == 0xff) {
            n--;
        }
        atb_etcd_buf_str(b, ",\"range_end\":\"");
        if (n == 0) {
            atb_etcd_buf_b64(b, "", 1);
        } else {
            p[n - 1]++;
            atb_etcd_buf_b64(b, p, n);
        }
        atb_etcd_buf_str(b, "\"");
    }
    atb_etcd_buf_fini(&full);
    return b->err;
}

int
atb_etcd_body_put(atb_etcd *c, atb_etcd_buf *b, const char *key,
                  const void *value, size_t value_len, int64_t lease)
{
    atb_etcd_buf_str(b, "{");
    atb_etcd_body_key(c, b, key, 0);
    atb_etcd_buf_str(b, ",\"value\":\"");
    atb_etcd_buf_b64(b, value_len > 0 ? value : "", value_len);
    atb_etcd_buf_str(b, "\"");
    if (lease != 0) {
        atb_etcd_buf_str(b, ",\"lease\":\"");
        atb_etcd_buf_i64(b, lease);
        atb_etcd_buf_str(b, "\"");
    }
    return atb_etcd_buf_str(b, "}");
}

int
atb_etcd_body_int(atb_etcd_buf *b, const char *field, int64_t v)
{
    atb_etcd_buf_str(b, "{\"");
    atb_etcd_buf_str(b, field);
    atb_etcd_buf_str(b, "\":\"");
    atb_etcd_buf_i64(b, v);
    return atb_etcd_buf_str(b, "\"}");
}

/* ---- operations ------------------------------------------------------ */

/* op_new checks the common arguments and makes a user call. */
static int
op_new(atb_etcd *c, int kind, atb_etcd_cb cb, void *arg, atb_etcd_call **out)
{
    if (c == NULL || cb == NULL) {
        return ATBUS_EINVAL;
    }
    if (c->closed) {
        return ATBUS_ECLOSED;
    }
    return atb_etcd_call_new(c, kind, c->cfg.op_rounds, cb, arg, out);
}

static int
op_key_ok(const char *key, int prefix)
{
    return key != NULL && (prefix || key[0] != '\0');
}

/* op_keyed sends {key[, range_end]} to a range or delete endpoint. */
static int
op_keyed(atb_etcd *c, int kind, const char *key, int prefix, atb_etcd_cb cb,
         void *arg)
{
    if (!op_key_ok(key, prefix)) {
        return ATBUS_EINVAL;
    }
    atb_etcd_call *call;
    int rc = op_new(c, kind, cb, arg, &call);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd_buf_str(&call->body, "{");
    atb_etcd_body_key(c, &call->body, key, prefix);
    atb_etcd_buf_str(&call->body, "}");
    return atb_etcd_call_start(call);
}

int
atb_etcd_range(atb_etcd *c, const char *key, int prefix, atb_etcd_cb cb,
               void *arg)
{
    return op_keyed(c, ATB_ETCD_CALL_RANGE, key, prefix, cb, arg);
}

int
atb_etcd_put(atb_etcd *c, const char *key, const void *value, size_t value_len,
             int64_t lease, atb_etcd_cb cb, void *arg)
{
    if (!op_key_ok(key, 0) || (value == NULL && value_len > 0)) {
        return ATBUS_EINVAL;
    }
    atb_etcd_call *call;
    int rc = op_new(c, ATB_ETCD_CALL_PUT, cb, arg, &call);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd_body_put(c, &call->body, key, value, value_len, lease);
    return atb_etcd_call_start(call);
}

int
atb_etcd_txn_put(atb_etcd *c, const atb_etcd_pair *puts, size_t n,
                 int64_t lease, atb_etcd_cb cb, void *arg)
{
    if (puts == NULL || n == 0 || n > ATB_ETCD_TXN_MAX) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!op_key_ok(puts[i].key, 0) ||
            (puts[i].value == NULL && puts[i].value_len > 0)) {
            return ATBUS_EINVAL;
        }
    }
    atb_etcd_call *call;
    int rc = op_new(c, ATB_ETCD_CALL_TXN, cb, arg, &call);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd_buf *b = &call->body;
    atb_etcd_buf_str(b, "{\"success\":[");
    for (size_t i = 0; i < n; i++) {
        atb_etcd_buf_str(b,
                         i == 0 ? "{\"request_put\":" : ",{\"request_put\":");
        atb_etcd_body_put(c, b, puts[i].key, puts[i].value, puts[i].value_len,
                          lease);
        atb_etcd_buf_str(b, "}");
    }
    atb_etcd_buf_str(b, "]}");
    return atb_etcd_call_start(call);
}

int
atb_etcd_delete(atb_etcd *c, const char *key, int prefix, atb_etcd_cb cb,
                void *arg)
{
    return op_keyed(c, ATB_ETCD_CALL_DELETE, key, prefix, cb, arg);
}

/* op_lease sends {"<field>":"<v>"} to a lease endpoint. */
static int
op_lease(atb_etcd *c, int kind, const char *field, int64_t v, atb_etcd_cb cb,
         void *arg)
{
    atb_etcd_call *call;
    int rc = op_new(c, kind, cb, arg, &call);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atb_etcd_body_int(&call->body, field, v);
    return atb_etcd_call_start(call);
}

int
atb_etcd_lease_grant(atb_etcd *c, uint32_t ttl_s, atb_etcd_cb cb, void *arg)
{
    if (ttl_s == 0) {
        return ATBUS_EINVAL;
    }
    return op_lease(c, ATB_ETCD_CALL_GRANT, "TTL", ttl_s, cb, arg);
}

int
atb_etcd_lease_keepalive(atb_etcd *c, int64_t lease, atb_etcd_cb cb, void *arg)
{
    if (lease == 0) {
        return ATBUS_EINVAL;
    }
    return op_lease(c, ATB_ETCD_CALL_KEEPALIVE, "ID", lease, cb, arg);
}

int
atb_etcd_lease_revoke(atb_etcd *c, int64_t lease, atb_etcd_cb cb, void *arg)
{
    if (lease == 0) {
        return ATBUS_EINVAL;
    }
    return op_lease(c, ATB_ETCD_CALL_REVOKE, "ID", lease, cb, arg);
}

/* ---- close and free -------------------------------------------------- */

void
atb_etcd_close(atb_etcd *c)
{
    if (c == NULL || c->closed) {
        return;
    }
    c->closed = 1;
    atb_etcd_session_close(c);
    atb_etcd_watch_close(c);
    atb_etcd_call_cancel(c->auth);
    while (c->calls != NULL) {
        atb_etcd_call *call = c->calls;
        if (call->internal) {
            atb_etcd_call_cancel(call);
            continue;
        }
        atb_etcd_detail_set(&call->detail, "client closed");
        call_fail(call, ATBUS_ECLOSED);
    }
}

void
atb_etcd_free(atb_etcd *c)
{
    if (c == NULL) {
        return;
    }
    atb_etcd_close(c);
    atb_etcd_http_fini(&c->http);
    etcd_release(c);
}
