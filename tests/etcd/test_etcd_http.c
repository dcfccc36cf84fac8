/*
 * The client against answers etcd never gives, from a scripted server on
 * loopback: not HTTP, not JSON, truncated JSON, wrong field types, bad
 * base64, bodies over the cap (declared and chunked), error statuses,
 * "unavailable" retried over rounds, a refused port, a watch stream that
 * turns to garbage or ends with an in-band error, and failing every
 * allocation in turn. Each must give a clear error (the detail names
 * what was wrong), never a crash or a leak. Also: config validation and
 * the close/free contract.
 */
#include <atbus/error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/alloc.h"
#include "etcd/etcd.h"
#include "etcd_harness.h"
#include "fake_http.h"
#include "testing.h"

#define WAIT_MS 10000

typedef struct fixture {
    atb_loop *loop;
    fake_http srv;
    h_client cl;
    char *owned[8]; /* responses to free */
    size_t nowned;
} fixture;

static void
fx_open(fixture *fx, size_t max_response)
{
    memset(fx, 0, sizeof(*fx));
    ck_assert_int_eq(atb_loop_new(&fx->loop), ATBUS_OK);
    ck_assert_int_eq(fake_http_start(&fx->srv, fx->loop), 0);
    const char *ep[] = {fx->srv.url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 1, "/p", 5);
    cfg.request_timeout_ms = 3000;
    if (max_response != 0) {
        cfg.max_response = max_response;
    }
    ck_assert_int_eq(h_client_new(&fx->cl, fx->loop, &cfg), ATBUS_OK);
}

static void
fx_close(fixture *fx)
{
    atb_etcd_free(fx->cl.c);
    fake_http_stop(&fx->srv);
    atb_loop_free(fx->loop);
    for (size_t i = 0; i < fx->nowned; i++) {
        free(fx->owned[i]);
    }
}

/* fx_route answers path with status and body (Content-Length set). */
static void
fx_route(fixture *fx, const char *path, const char *status, const char *body)
{
    char *r = fake_http_response(status, body);
    ck_assert_ptr_nonnull(r);
    fx->owned[fx->nowned++] = r;
    fake_http_route(&fx->srv, path, r, 0);
}

static void
fx_wait(fixture *fx, h_op *op)
{
    ck_assert_msg(h_pump(fx->loop, &op->done, 1, WAIT_MS), "no completion");
    ck_assert_int_eq(op->done, 1);
}

/* expect_put runs a put and checks its error and detail. */
static void
expect_put(fixture *fx, int err, const char *in_detail)
{
    h_op op;
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_put(fx->cl.c, "/k", "v", 1, 0, h_op_cb, &op),
                     ATBUS_OK);
    fx_wait(fx, &op);
    ck_assert_msg(op.err == err, "err %s, want %s (%s)", atbus_err_name(op.err),
                  atbus_err_name(err), op.detail);
    ck_assert_msg(strstr(op.detail, in_detail) != NULL,
                  "detail \"%s\" lacks \"%s\"", op.detail, in_detail);
}

START_TEST(test_not_http)
{
    fixture fx;
    fx_open(&fx, 0);
    fake_http_route(&fx.srv, "/v3/kv/put", "garbage\r\n\r\n", 0);
    expect_put(&fx, ATBUS_EPARSE, "/v3/kv/put");
    fx_close(&fx);
}
END_TEST

START_TEST(test_body_errors)
{
    static const struct {
        const char *body;
        int err;
        const char *detail;
    } cases[] = {
        {"this is not json", ATBUS_EPARSE, "not JSON"},
        {"{\"header\":{\"revision\":\"5\"", ATBUS_EPARSE, "not JSON"},
        {"[]", ATBUS_EPARSE, "not an object"},
        {"", ATBUS_EPARSE, "not JSON"},
        {"{\"header\":{\"revision\":{\"x\":1}}}", ATBUS_EPARSE,
         "header.revision"},
        {"{\"header\":{\"revision\":\"12abc\"}}", ATBUS_EPARSE,
         "header.revision"},
        {"{\"header\":\"x\"}", ATBUS_EPARSE, "header"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture fx;
        fx_open(&fx, 0);
        fx_route(&fx, "/v3/kv/put", "200 OK", cases[i].body);
        expect_put(&fx, cases[i].err, cases[i].detail);
        fx_close(&fx);
    }
}
END_TEST

START_TEST(test_range_errors)
{
    static const struct {
        const char *body;
        const char *detail;
    } cases[] = {
        {"{\"kvs\":\"no\"}", "expected an array"},
        {"{\"kvs\":[{\"key\":\"%%%%\"}]}", "kvs[0].key: invalid base64"},
        {"{\"kvs\":[{\"key\":\"YQ==\",\"value\":{}}]}", "kvs[0].value"},
        {"{\"kvs\":[],\"count\":true}", "count"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture fx;
        fx_open(&fx, 0);
        fx_route(&fx, "/v3/kv/range", "200 OK", cases[i].body);
        h_op op;
        memset(&op, 0, sizeof(op));
        ck_assert_int_eq(atb_etcd_range(fx.cl.c, "/", 1, h_op_cb, &op),
                         ATBUS_OK);
        fx_wait(&fx, &op);
        ck_assert_int_eq(op.err, ATBUS_EPARSE);
        ck_assert_msg(strstr(op.detail, cases[i].detail) != NULL,
                      "detail \"%s\" lacks \"%s\"", op.detail, cases[i].detail);
        fx_close(&fx);
    }
}
END_TEST

START_TEST(test_oversized)
{
    /* Declared: refused from the Content-Length before reading. */
    size_t big = 100000;
    char *body = malloc(big + 1);
    ck_assert_ptr_nonnull(body);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    fixture fx;
    fx_open(&fx, 4096);
    fx_route(&fx, "/v3/kv/put", "200 OK", body);
    expect_put(&fx, ATBUS_EMSGSIZE, "4096-byte cap");
    fx_close(&fx);

    /* Chunked, no length: refused when the buffer would pass the cap. */
    size_t cap = big + 4096;
    char *chunked = malloc(cap);
    ck_assert_ptr_nonnull(chunked);
    int n = snprintf(chunked, cap,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n\r\n%zx\r\n",
                     big);
    memcpy(chunked + n, body, big);
    memcpy(chunked + n + big, "\r\n0\r\n\r\n", 7);
    fx_open(&fx, 4096);
    fake_http_route(&fx.srv, "/v3/kv/put", chunked, (size_t)n + big + 7);
    expect_put(&fx, ATBUS_EMSGSIZE, "4096-byte cap");
    fx_close(&fx);
    free(chunked);
    free(body);
}
END_TEST

START_TEST(test_error_statuses)
{
    fixture fx;
    fx_open(&fx, 0);
    fx_route(&fx, "/v3/kv/put", "400 Bad Request",
             "{\"error\":\"etcdserver: key is not provided\","
             "\"message\":\"etcdserver: key is not provided\",\"code\":3}");
    expect_put(&fx, ATBUS_EBACKEND, "key is not provided");
    fx_route(&fx, "/v3/kv/put", "403 Forbidden",
             "{\"error\":\"etcdserver: permission denied\","
             "\"message\":\"etcdserver: permission denied\",\"code\":7}");
    expect_put(&fx, ATBUS_EPERM, "permission denied");
    fx_route(&fx, "/v3/kv/put", "400 Bad Request", "<html>nope</html>");
    expect_put(&fx, ATBUS_EBACKEND, "HTTP 400");

    /* Unavailable: retried once per round, then given up. */
    fx_route(&fx, "/v3/kv/put", "503 Service Unavailable",
             "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver:"
             " no leader\",\"code\":14}");
    int before = fx.srv.requests;
    expect_put(&fx, ATBUS_EUNAVAILABLE, "no leader");
    ck_assert_int_eq(fx.srv.requests - before, 2); /* op_rounds */

    /* Lease calls: 404 for an unknown lease, 200 without TTL for a gone
     * one; a grant without an ID is malformed. */
    h_op op;
    memset(&op, 0, sizeof(op));
    fx_route(&fx, "/v3/lease/revoke", "404 Not Found",
             "{\"error\":\"etcdserver: requested lease not found\","
             "\"message\":\"etcdserver: requested lease not found\","
             "\"code\":5}");
    ck_assert_int_eq(atb_etcd_lease_revoke(fx.cl.c, 77, h_op_cb, &op),
                     ATBUS_OK);
    fx_wait(&fx, &op);
    ck_assert_int_eq(op.err, ATBUS_ENOTFOUND);
    memset(&op, 0, sizeof(op));
    fx_route(&fx, "/v3/lease/keepalive", "200 OK",
             "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"77\"}}\n");
    ck_assert_int_eq(atb_etcd_lease_keepalive(fx.cl.c, 77, h_op_cb, &op),
                     ATBUS_OK);
    fx_wait(&fx, &op);
    ck_assert_int_eq(op.err, ATBUS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(op.detail, "not found or expired"));
    memset(&op, 0, sizeof(op));
    fx_route(&fx, "/v3/lease/grant", "200 OK", "{\"header\":{},\"TTL\":\"5\"}");
    ck_assert_int_eq(atb_etcd_lease_grant(fx.cl.c, 5, h_op_cb, &op), ATBUS_OK);
    fx_wait(&fx, &op);
    ck_assert_int_eq(op.err, ATBUS_EPARSE);
    ck_assert_ptr_nonnull(strstr(op.detail, "without ID"));
    fx_close(&fx);
}
END_TEST

START_TEST(test_silent)
{
    /* Accepted, then nothing: every call ends within its bound. */
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    fake_http srv;
    ck_assert_int_eq(fake_http_start(&srv, loop), 0);
    fake_http_route(&srv, "/v3/kv/range", NULL, 0);
    fake_http_route(&srv, "/v3/kv/put", NULL, 0);
    fake_http_route(&srv, "/v3/watch", NULL, 0);
    const char *ep[] = {srv.url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 1, "/p", 5);
    cfg.request_timeout_ms = 600;
    cfg.op_rounds = 1;
    h_client cl;
    ck_assert_int_eq(h_client_new(&cl, loop, &cfg), ATBUS_OK);
    h_op put;
    h_op range;
    memset(&put, 0, sizeof(put));
    memset(&range, 0, sizeof(range));
    ck_assert_int_eq(atb_etcd_put(cl.c, "/k", "v", 1, 0, h_op_cb, &put),
                     ATBUS_OK);
    ck_assert_int_eq(atb_etcd_range(cl.c, "/", 1, h_op_cb, &range), ATBUS_OK);
    ck_assert(h_pump(loop, &put.done, 1, WAIT_MS));
    ck_assert(h_pump(loop, &range.done, 1, WAIT_MS));
    ck_assert_int_eq(put.err, ATBUS_EUNAVAILABLE);
    ck_assert_int_eq(range.err, ATBUS_EUNAVAILABLE);
    ck_assert_msg(strstr(put.detail, "imed out") != NULL, "%s", put.detail);
    ck_assert_msg(strstr(range.detail, "nothing received for 600 ms") != NULL,
                  "%s", range.detail);
    atb_etcd_free(cl.c);

    /* A watch whose listing works but whose stream is never confirmed. */
    char *list = fake_http_response("200 OK", "{\"header\":{\"revision\":"
                                              "\"7\"}}");
    fake_http_route(&srv, "/v3/kv/range", list, 0);
    ck_assert_int_eq(h_client_new(&cl, loop, &cfg), ATBUS_OK);
    ck_assert_int_eq(atb_etcd_watch_start(cl.c, ""), ATBUS_OK);
    ck_assert(h_pump(loop, &cl.stale, 1, WAIT_MS));
    ck_assert_int_eq(cl.err, ATBUS_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(cl.detail, "not confirmed within 600 ms"));
    atb_etcd_free(cl.c);
    fake_http_stop(&srv);
    free(list);
    atb_loop_free(loop);
}
END_TEST

START_TEST(test_refused)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    char url[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%d",
                 atb_test_free_port(AF_INET, SOCK_STREAM));
    }
    const char *ep[] = {url[0], url[1]};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 2, "/p", 5);
    cfg.op_rounds = 3;
    h_client cl;
    ck_assert_int_eq(h_client_new(&cl, loop, &cfg), ATBUS_OK);
    h_op op;
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_range(cl.c, "/", 1, h_op_cb, &op), ATBUS_OK);
    ck_assert(h_pump(loop, &op.done, 1, WAIT_MS));
    ck_assert_int_eq(op.err, ATBUS_EUNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(op.detail, "3 rounds"));
    ck_assert_ptr_nonnull(strstr(op.detail, "127.0.0.1"));
    atb_etcd_stats st;
    atb_etcd_stats_get(cl.c, &st);
    ck_assert_uint_eq(st.requests, 6);
    ck_assert_uint_eq(st.failed_rounds, 3);
    ck_assert_uint_ge(st.failovers, 5);

    /* The watch never gives up: STALE, then retries with backoff. */
    ck_assert_int_eq(atb_etcd_watch_start(cl.c, ""), ATBUS_OK);
    ck_assert_int_eq(atb_etcd_watch_start(cl.c, ""), ATBUS_EEXIST);
    ck_assert(h_pump(loop, &cl.stale, 1, WAIT_MS));
    ck_assert_int_eq(cl.err, ATBUS_EUNAVAILABLE);
    uint64_t rounds = st.failed_rounds;
    atb_etcd_stats_get(cl.c, &st);
    ck_assert_uint_gt(st.failed_rounds, rounds);

    /* Close completes pending operations with ECLOSED, synchronously. */
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_put(cl.c, "/a", "b", 1, 0, h_op_cb, &op),
                     ATBUS_OK);
    atb_etcd_pair pr = {"/mine", "x", 1};
    ck_assert_int_eq(atb_etcd_session_set(cl.c, &pr, 1), ATBUS_OK);
    atb_etcd_close(cl.c);
    ck_assert_int_eq(op.done, 1);
    ck_assert_int_eq(op.err, ATBUS_ECLOSED);
    ck_assert_int_eq(atb_etcd_put(cl.c, "/a", "b", 1, 0, h_op_cb, &op),
                     ATBUS_ECLOSED);
    ck_assert_int_eq(atb_etcd_watch_start(cl.c, ""), ATBUS_ECLOSED);
    atb_etcd_free(cl.c);
    atb_etcd_free(NULL);
    atb_loop_free(loop);
}
END_TEST

/* A watch whose list succeeds but whose stream misbehaves. */
static void
watch_misbehaves(const char *stream, const char *want_detail)
{
    fixture fx;
    fx_open(&fx, 0);
    fx_route(&fx, "/v3/kv/range", "200 OK",
             "{\"header\":{\"revision\":\"10\"},\"kvs\":[{\"key\":"
             "\"L3AvYQ==\",\"value\":\"djE=\",\"mod_revision\":\"9\"}],"
             "\"count\":\"1\"}");
    fx_route(&fx, "/v3/watch", "200 OK", stream);
    ck_assert_int_eq(atb_etcd_watch_start(fx.cl.c, ""), ATBUS_OK);
    ck_assert(h_pump(fx.loop, &fx.cl.stale, 1, WAIT_MS));
    ck_assert_msg(strstr(fx.cl.detail, want_detail) != NULL,
                  "detail \"%s\" lacks \"%s\"", fx.cl.detail, want_detail);
    /* The listing reached the view; the bad stream changed nothing. */
    ck_assert_int_eq(fx.cl.puts, 1);
    ck_assert_ptr_nonnull(h_view_get(&fx.cl, "/a"));
    ck_assert_int_eq(atb_etcd_watch_revision(fx.cl.c), 10);
    atb_etcd_watch_stop(fx.cl.c);
    atb_etcd_watch_stop(fx.cl.c);
    fx_close(&fx);
}

START_TEST(test_watch_garbage)
{
    watch_misbehaves("{\"result\":{\"header\":{\"revision\":\"10\"},"
                     "\"created\":true}}\nnot json at all\n",
                     "not JSON");
    watch_misbehaves("{\"result\":{\"header\":{\"revision\":\"10\"},"
                     "\"created\":true}}\n{\"result\":{\"events\":[{\"type\":"
                     "\"BOGUS\",\"kv\":{\"key\":\"L3AvYQ==\"}}]}}\n",
                     "unknown \"BOGUS\"");
    watch_misbehaves("{\"result\":{\"header\":{\"revision\":\"10\"},"
                     "\"created\":true}}\n{\"error\":{\"grpc_code\":14,"
                     "\"http_code\":503,\"message\":\"transport is closing\","
                     "\"http_status\":\"Service Unavailable\"}}",
                     "transport is closing");
    watch_misbehaves("{\"result\":{\"header\":{\"revision\":\"10\"},"
                     "\"created\":true}}\n{\"nothing\":1}\n",
                     "without \"result\"");
}
END_TEST

/* ---- allocation failures ---- */

static const char *const ok_put = "{\"header\":{\"revision\":\"3\"}}";
static const char *const ok_range =
    "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"L3AvYQ==\","
    "\"value\":\"djE=\",\"mod_revision\":\"2\"}],\"count\":\"1\"}";

/* One run of an allocation-failure loop: a scripted server with two
 * routes and a client created with the nth allocation failing. */
typedef struct oom_run {
    long live;
    atb_loop *loop;
    fake_http srv;
    char *answer[2];
    h_client cl;
    int created; /* cl.c exists */
} oom_run;

static void
oom_open(oom_run *r, unsigned long nth, const char *const paths[2],
         const char *const bodies[2])
{
    r->live = atb_alloc_live();
    ck_assert_int_eq(atb_loop_new(&r->loop), ATBUS_OK);
    ck_assert_int_eq(fake_http_start(&r->srv, r->loop), 0);
    for (int i = 0; i < 2; i++) {
        r->answer[i] = fake_http_response("200 OK", bodies[i]);
        fake_http_route(&r->srv, paths[i], r->answer[i], 0);
    }
    const char *ep[] = {r->srv.url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 1, "/p", 5);
    atb_alloc_fail_nth(nth);
    int rc = h_client_new(&r->cl, r->loop, &cfg);
    ck_assert(rc == ATBUS_OK || rc == ATBUS_ENOMEM);
    r->created = rc == ATBUS_OK;
}

/* oom_close frees everything and returns whether the run was clean (no
 * allocation failed: every one has had its turn). */
static int
oom_close(oom_run *r, unsigned long nth)
{
    int clean = !atb_alloc_failed();
    if (r->created) {
        atb_etcd_free(r->cl.c);
    }
    atb_alloc_fail_nth(0);
    fake_http_stop(&r->srv);
    free(r->answer[0]);
    free(r->answer[1]);
    atb_loop_free(r->loop);
    ck_assert_msg(atb_alloc_live() == r->live, "nth %lu: %ld blocks leaked",
                  nth, atb_alloc_live() - r->live);
    return clean;
}

START_TEST(test_oom)
{
    static const char *const paths[2] = {"/v3/kv/put", "/v3/kv/range"};
    const char *const bodies[2] = {ok_put, ok_range};
    int clean = 0;
    for (unsigned long nth = 1; nth < 500 && !clean; nth++) {
        oom_run r;
        oom_open(&r, nth, paths, bodies);
        h_op a;
        h_op b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        if (r.created) {
            if (atb_etcd_put(r.cl.c, "/a", "v1", 2, 0, h_op_cb, &a) !=
                ATBUS_OK) {
                a.done = 1;
            }
            if (atb_etcd_range(r.cl.c, "/", 1, h_op_cb, &b) != ATBUS_OK) {
                b.done = 1;
            }
            for (int i = 0; i < 400 && !(a.done && b.done); i++) {
                atb_loop_poll(r.loop, 10);
            }
            ck_assert_msg(a.done && b.done, "nth %lu: no completion", nth);
            ck_assert(a.err == ATBUS_OK || a.err == ATBUS_ENOMEM);
            ck_assert(b.err == ATBUS_OK || b.err == ATBUS_ENOMEM);
        }
        clean = oom_close(&r, nth);
        if (clean) {
            ck_assert_int_eq(a.err, ATBUS_OK);
            ck_assert_int_eq(b.err, ATBUS_OK);
            ck_assert_str_eq(b.value[0], "v1");
        }
    }
    ck_assert(clean);
}
END_TEST

START_TEST(test_watch_oom)
{
    static const char stream[] =
        "{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}\n"
        "{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"kv\":"
        "{\"key\":\"L3AvYg==\",\"value\":\"djI=\",\"mod_revision\":\"4\"}},"
        "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3AvYQ==\","
        "\"mod_revision\":\"4\"}}]}}\n";
    static const char *const paths[2] = {"/v3/kv/range", "/v3/watch"};
    const char *const bodies[2] = {ok_range, stream};
    int clean = 0;
    for (unsigned long nth = 1; nth < 500 && !clean; nth++) {
        oom_run r;
        oom_open(&r, nth, paths, bodies);
        int synced = 0;
        int deletes = 0;
        int64_t rev = 0;
        const h_entry *b = NULL;
        const h_entry *a = NULL;
        if (r.created && atb_etcd_watch_start(r.cl.c, "") == ATBUS_OK) {
            /* Listed a, then the stream: b put, a deleted. */
            for (int i = 0; i < 100 && r.cl.deletes == 0; i++) {
                atb_loop_poll(r.loop, 5);
            }
            synced = r.cl.synced;
            deletes = r.cl.deletes;
            rev = atb_etcd_watch_revision(r.cl.c);
            a = h_view_get(&r.cl, "/a");
            b = h_view_get(&r.cl, "/b");
        }
        clean = oom_close(&r, nth);
        if (clean) {
            ck_assert_int_eq(synced, 1);
            ck_assert_int_eq(deletes, 1);
            ck_assert_ptr_null(a);
            ck_assert_ptr_nonnull(b);
            ck_assert_str_eq(b->value, "v2");
            ck_assert_int_eq(rev, 4);
        }
    }
    ck_assert(clean);
}
END_TEST

START_TEST(test_config)
{
    atb_loop *loop;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    atb_etcd *c = NULL;
    atb_etcd_config cfg;
    ck_assert_int_eq(atb_etcd_config_default(NULL), ATBUS_EINVAL);
    atb_etcd_config_default(&cfg);
    ck_assert_int_eq(atb_etcd_new(&c, loop, &cfg, NULL, NULL), ATBUS_EINVAL);
    cfg.endpoints[0] = "127.0.0.1:2379";
    cfg.endpoint_count = 1;
    ck_assert_int_eq(atb_etcd_new(&c, loop, &cfg, NULL, NULL), ATBUS_EINVAL);
    cfg.endpoints[0] = "http://127.0.0.1:2379/";
    cfg.username = "root";
    ck_assert_int_eq(atb_etcd_new(&c, loop, &cfg, NULL, NULL), ATBUS_EINVAL);
    cfg.username = NULL;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 5;
    ck_assert_int_eq(atb_etcd_new(&c, loop, &cfg, NULL, NULL), ATBUS_EINVAL);
    cfg.backoff_max_ms = 10;
    ck_assert_int_eq(atb_etcd_new(&c, loop, &cfg, NULL, NULL), ATBUS_OK);
    h_op op;
    ck_assert_int_eq(atb_etcd_put(c, "", "v", 1, 0, h_op_cb, &op),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_put(c, "/k", NULL, 1, 0, h_op_cb, &op),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_range(c, "/k", 0, NULL, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_txn_put(c, NULL, 0, 0, h_op_cb, &op),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_lease_grant(c, 0, h_op_cb, &op), ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_lease_keepalive(c, 0, h_op_cb, &op),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_etcd_session_unset(c, "/nope"), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_etcd_session_revoke(c, h_op_cb, &op), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_etcd_session_lease(c), 0);
    atb_etcd_free(c);
    atb_loop_free(loop);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("etcd_http");
    TCase *tc = atb_test_case("malformed", 60);
    tcase_add_test(tc, test_not_http);
    tcase_add_test(tc, test_body_errors);
    tcase_add_test(tc, test_range_errors);
    tcase_add_test(tc, test_oversized);
    tcase_add_test(tc, test_error_statuses);
    tcase_add_test(tc, test_watch_garbage);
    suite_add_tcase(s, tc);
    tc = atb_test_case("client", 60);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_silent);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_watch_oom);
    tcase_add_test(tc, test_config);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
