/*
 * The etcd client against real etcd 3.4 processes on loopback:
 * registration seen by a watcher (node and route in one revision),
 * lease expiry, a lease revoked behind the session's back (re-grant and
 * re-put), etcd SIGKILLed and restarted under two clients (staleness,
 * resume from the last revision, nothing missed), compaction while a
 * watcher is away (re-list, final view equals etcd's), failover between
 * members of a three-member cluster, interop with etcdctl both ways, and
 * etcd auth with token renewal.
 *
 * Every wait turns the loop until a condition or a deadline; nothing
 * asserts timing. Each test starts its own etcd and kills it at the end;
 * a failing test's etcd dies with the test process.
 */
#include <atbus/error.h>

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"
#include "etcd_harness.h"
#include "etcd_server.h"
#include "testing.h"

#define START_MS 30000
#define WAIT_MS H_WAIT_MS

/* ---- common steps --------------------------------------------------- */

static atb_loop *
loop_new(void)
{
    atb_loop *loop = NULL;
    ck_assert_int_eq(atb_loop_new(&loop), ATBUS_OK);
    return loop;
}

/* client_on makes a client of members [first, first+n) of e. */
static void
client_on(h_client *t, atb_loop *loop, const atb_test_etcd *e, size_t first,
          size_t n, const char *prefix, uint32_t ttl)
{
    const char *ep[ATB_TEST_ETCD_MAX];
    for (size_t i = 0; i < n; i++) {
        ep[i] = e->m[first + i].url;
    }
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, n, prefix, ttl);
    ck_assert_int_eq(h_client_new(t, loop, &cfg), ATBUS_OK);
}

static void
op_wait(atb_loop *loop, h_op *op)
{
    ck_assert_msg(h_pump(loop, &op->done, 1, WAIT_MS), "no completion");
}

/* put_sync writes key = value through c and waits for success. */
static void
put_sync(atb_loop *loop, atb_etcd *c, const char *key, const char *value)
{
    h_op op;
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(
        atb_etcd_put(c, key, value, strlen(value), 0, h_op_cb, &op), ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_msg(op.err == ATBUS_OK, "put %s: %s", key, op.detail);
}

static void
range_sync(atb_loop *loop, atb_etcd *c, const char *key, int prefix, h_op *op)
{
    memset(op, 0, sizeof(*op));
    ck_assert_int_eq(atb_etcd_range(c, key, prefix, h_op_cb, op), ATBUS_OK);
    op_wait(loop, op);
    ck_assert_msg(op->err == ATBUS_OK, "range %s: %s", key, op->detail);
}

/* ctl runs etcdctl on member i and requires success. */
static void
ctl(const atb_test_etcd *e, size_t i, char *out, size_t cap,
    const char *const *args)
{
    char tmp[4096];
    if (out == NULL) {
        out = tmp;
        cap = sizeof(tmp);
    }
    int rc = atb_test_etcdctl(e, i, out, cap, args);
    ck_assert_msg(rc == 0, "etcdctl %s: exit %d: %s", args[0], rc, out);
}

/* A watcher's view and etcd's content under prefix, compared. */
typedef struct view_check {
    const h_client *t;
    const atb_test_etcd *e;
    size_t member;
    const char *prefix;
    char why[256];
} view_check;

/* view_matches: every etcd key under the prefix is in the view with the
 * same value, and the view holds nothing else. */
static int
view_matches(void *arg)
{
    view_check *vc = arg;
    char out[16384];
    const char *args[] = {"get", "--prefix", vc->prefix, NULL};
    if (atb_test_etcdctl(vc->e, vc->member, out, sizeof(out), args) != 0) {
        snprintf(vc->why, sizeof(vc->why), "etcdctl failed: %.200s", out);
        return 0;
    }
    size_t plen = strlen(vc->prefix);
    size_t seen = 0;
    char *save = NULL;
    for (char *k = strtok_r(out, "\n", &save); k != NULL;
         k = strtok_r(NULL, "\n", &save)) {
        char *v = strtok_r(NULL, "\n", &save);
        const h_entry *en = h_view_get(vc->t, k + plen);
        if (en == NULL || v == NULL || strcmp(en->value, v) != 0) {
            snprintf(vc->why, sizeof(vc->why),
                     "key %.60s: etcd \"%.60s\", view %.60s", k,
                     v != NULL ? v : "", en != NULL ? en->value : "-");
            return 0;
        }
        seen++;
    }
    if (seen != vc->t->nview) {
        snprintf(vc->why, sizeof(vc->why), "etcd has %zu keys, view %zu", seen,
                 vc->t->nview);
        return 0;
    }
    return 1;
}

/* ctl_json runs etcdctl with --write-out=json and reads header.revision
 * and count. Member and cluster ids are uint64 and may not fit jansson's
 * integers: numbers are read as reals (exact for these small ones). */
static void
ctl_json(const atb_test_etcd *e, size_t i, const char *const *args,
         int64_t *revision, int64_t *count)
{
    char out[8192];
    ctl(e, i, out, sizeof(out), args);
    json_error_t je;
    json_t *root = json_loads(out, JSON_DECODE_INT_AS_REAL, &je);
    ck_assert_msg(root != NULL, "etcdctl JSON: %s", je.text);
    json_t *rev = json_object_get(json_object_get(root, "header"), "revision");
    ck_assert(json_is_real(rev));
    *revision = (int64_t)json_real_value(rev);
    json_t *n = json_object_get(root, "count");
    *count = json_is_real(n) ? (int64_t)json_real_value(n) : 0;
    json_decref(root);
}

/* store_revision asks etcd for its current revision. */
static int64_t
store_revision(const atb_test_etcd *e, size_t i)
{
    const char *args[] = {"get", "/", "--write-out=json", NULL};
    int64_t rev = 0;
    int64_t count = 0;
    ctl_json(e, i, args, &rev, &count);
    return rev;
}

/* A one-member etcd, a loop, a watcher w and a registering client a. */
typedef struct pair_fx {
    atb_test_etcd e;
    atb_loop *loop;
    h_client w;
    h_client a;
} pair_fx;

static void
pair_start(pair_fx *f, const char *prefix, uint32_t ttl, const char *watch)
{
    ck_assert_int_eq(atb_test_etcd_start(&f->e, 1, START_MS), 0);
    f->loop = loop_new();
    client_on(&f->w, f->loop, &f->e, 0, 1, prefix, ttl);
    client_on(&f->a, f->loop, &f->e, 0, 1, prefix, ttl);
    ck_assert_int_eq(atb_etcd_watch_start(f->w.c, watch), ATBUS_OK);
}

static void
pair_stop(pair_fx *f)
{
    atb_etcd_free(f->a.c);
    atb_etcd_free(f->w.c);
    atb_loop_free(f->loop);
    atb_test_etcd_stop(&f->e);
}

static int
both_registered_and_seen(void *arg)
{
    h_client *const *pair = arg;
    return pair[0]->registered >= 1 && pair[1]->puts >= 2;
}

/* ---- registration ------------------------------------------------------ */

START_TEST(test_register_watch)
{
    pair_fx f;
    pair_start(&f, "/reg", 5, "");
    ck_assert(h_pump(f.loop, &f.w.synced, 1, WAIT_MS));
    ck_assert_int_eq(f.w.state, ATB_ETCD_WATCH_SYNCED);

    /* DESIGN §8: node record and route in one txn on one lease. */
    static const char node[] = "{\"name\":\"a\",\"type\":\"node\"}";
    static const char route[] = "{\"upstream\":\"relay-1\"}";
    atb_etcd_pair recs[] = {{"/nodes/a", node, sizeof(node) - 1},
                            {"/routes/a", route, sizeof(route) - 1}};
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, recs, 2), ATBUS_OK);
    h_client *pair[] = {&f.a, &f.w};
    atb_loop *loops[] = {f.loop};
    ck_assert(h_pump_until(loops, 1, both_registered_and_seen, pair, WAIT_MS));
    const h_entry *n = h_view_get(&f.w, "/nodes/a");
    const h_entry *r = h_view_get(&f.w, "/routes/a");
    ck_assert_ptr_nonnull(n);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(n->value, node);
    ck_assert_str_eq(r->value, route);
    ck_assert_int_eq(n->rev, r->rev); /* one revision: no window */
    int64_t lease = atb_etcd_session_lease(f.a.c);
    ck_assert_int_ne(lease, 0);
    ck_assert_int_eq(f.a.lease, lease);
    h_op op;
    range_sync(f.loop, f.a.c, "/", 1, &op);
    ck_assert_uint_eq(op.nkvs, 2);
    ck_assert_int_eq(op.kv_lease[0], lease);
    ck_assert_int_eq(op.kv_lease[1], lease);

    /* An update rewrites the key on the same lease. */
    static const char node2[] = "{\"name\":\"a\",\"version\":\"2\"}";
    atb_etcd_pair upd = {"/nodes/a", node2, sizeof(node2) - 1};
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, &upd, 1), ATBUS_OK);
    ck_assert(h_pump(f.loop, &f.w.puts, 3, WAIT_MS));
    ck_assert_str_eq(h_view_get(&f.w, "/nodes/a")->value, node2);
    range_sync(f.loop, f.a.c, "/nodes/a", 0, &op);
    ck_assert_int_eq(op.kv_lease[0], lease);

    /* Unset deletes; revoke removes the rest at once. */
    ck_assert_int_eq(atb_etcd_session_unset(f.a.c, "/routes/a"), ATBUS_OK);
    ck_assert(h_pump(f.loop, &f.w.deletes, 1, WAIT_MS));
    ck_assert_ptr_null(h_view_get(&f.w, "/routes/a"));
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_session_revoke(f.a.c, h_op_cb, &op), ATBUS_OK);
    op_wait(f.loop, &op);
    ck_assert_int_eq(op.err, ATBUS_OK);
    ck_assert(h_pump(f.loop, &f.w.deletes, 2, WAIT_MS));
    ck_assert_uint_eq(f.w.nview, 0);
    ck_assert_int_eq(atb_etcd_session_lease(f.a.c), 0);

    pair_stop(&f);
}
END_TEST

START_TEST(test_lease_expiry)
{
    pair_fx f;
    pair_start(&f, "/exp", 2, "/nodes/");
    atb_etcd_pair rec = {"/nodes/a", "x", 1};
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, &rec, 1), ATBUS_OK);
    ck_assert(h_pump(f.loop, &f.a.registered, 1, WAIT_MS));
    ck_assert(h_pump(f.loop, &f.w.puts, 1, WAIT_MS));
    /* The node dies without a word: no revoke, no more keep-alives. */
    atb_etcd_free(f.a.c);
    f.a.c = NULL;
    ck_assert(h_pump(f.loop, &f.w.deletes, 1, WAIT_MS));
    ck_assert_uint_eq(f.w.nview, 0);
    pair_stop(&f);
}
END_TEST

static int
regranted(void *arg)
{
    h_client *const *pair = arg;
    return pair[0]->lost >= 1 && pair[0]->registered >= 2 &&
           h_view_get(pair[1], "/nodes/a") != NULL &&
           h_view_get(pair[1], "/routes/a") != NULL && pair[1]->deletes >= 2;
}

START_TEST(test_lease_lost)
{
    pair_fx f;
    pair_start(&f, "/lost", 3, "");
    atb_etcd_pair recs[] = {{"/nodes/a", "n", 1}, {"/routes/a", "r", 1}};
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, recs, 2), ATBUS_OK);
    h_client *pair[] = {&f.a, &f.w};
    atb_loop *loops[] = {f.loop};
    ck_assert(h_pump_until(loops, 1, both_registered_and_seen, pair, WAIT_MS));
    int64_t first = atb_etcd_session_lease(f.a.c);

    /* Someone revokes the lease: keys gone, keep-alive finds out. */
    char id[32];
    snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)first);
    const char *args[] = {"lease", "revoke", id, NULL};
    ctl(&f.e, 0, NULL, 0, args);
    ck_assert(h_pump_until(loops, 1, regranted, pair, WAIT_MS));
    int64_t second = atb_etcd_session_lease(f.a.c);
    ck_assert_int_ne(second, 0);
    ck_assert_int_ne(second, first);
    h_op op;
    range_sync(f.loop, f.a.c, "/", 1, &op);
    ck_assert_uint_eq(op.nkvs, 2);
    ck_assert_int_eq(op.kv_lease[0], second);
    ck_assert_int_eq(op.kv_lease[1], second);
    atb_etcd_stats st;
    atb_etcd_stats_get(f.a.c, &st);
    ck_assert_uint_eq(st.lease_grants, 2);
    ck_assert_uint_eq(st.leases_lost, 1);

    pair_stop(&f);
}
END_TEST

/* ---- restart ------------------------------------------------------------ */

typedef struct restart_state {
    h_client *w;
    view_check vc;
} restart_state;

static int
restart_caught_up(void *arg)
{
    restart_state *rs = arg;
    const h_entry *x2 = h_view_get(rs->w, "/data/x2");
    const h_entry *na = h_view_get(rs->w, "/nodes/a");
    return rs->w->synced >= 2 && x2 != NULL && na != NULL &&
           strcmp(na->value, "after") == 0 && view_matches(&rs->vc);
}

START_TEST(test_restart)
{
    pair_fx f;
    pair_start(&f, "/rs", 4, "");
    atb_etcd_pair rec = {"/nodes/a", "before", 6};
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, &rec, 1), ATBUS_OK);
    put_sync(f.loop, f.a.c, "/data/x1", "v1");
    ck_assert(h_pump(f.loop, &f.a.registered, 1, WAIT_MS));
    ck_assert(h_pump(f.loop, &f.w.puts, 2, WAIT_MS));
    ck_assert(h_pump(f.loop, &f.w.synced, 1, WAIT_MS));

    atb_test_etcd_kill(&f.e, 0, SIGKILL);
    ck_assert(h_pump(f.loop, &f.w.stale, 1, WAIT_MS));
    ck_assert_int_eq(f.w.state, ATB_ETCD_WATCH_STALE);
    ck_assert_uint_ne(f.w.since, 0);
    ck_assert_uint_le(f.w.since, atb_loop_now_us(f.loop));
    /* While down the cached view stays as it was. */
    ck_assert_ptr_nonnull(h_view_get(&f.w, "/data/x1"));

    ck_assert_int_eq(atb_test_etcd_restart(&f.e, 0, START_MS), 0);
    /* A change made right after the restart, before the watcher is back,
     * must arrive through the resumed watch. */
    const char *args[] = {"put", "/rs/data/x2", "v2", NULL};
    ctl(&f.e, 0, NULL, 0, args);
    rec.value = "after";
    rec.value_len = 5;
    ck_assert_int_eq(atb_etcd_session_set(f.a.c, &rec, 1), ATBUS_OK);
    restart_state rs = {.w = &f.w,
                        .vc = {.t = &f.w, .e = &f.e, .prefix = "/rs"}};
    atb_loop *loops[] = {f.loop};
    ck_assert_msg(h_pump_until(loops, 1, restart_caught_up, &rs, WAIT_MS),
                  "watcher behind: %s", rs.vc.why);
    ck_assert_int_eq(f.w.state, ATB_ETCD_WATCH_SYNCED);

    atb_etcd_stats st;
    atb_etcd_stats_get(f.w.c, &st);
    ck_assert_uint_eq(st.watch_lists, 1); /* resumed, never re-listed */
    ck_assert_uint_ge(st.watch_resumes, 1);
    ck_assert_uint_eq(st.watch_compacted, 0);
    /* The session holds its key on its (maybe re-granted) lease. */
    h_op op;
    range_sync(f.loop, f.a.c, "/nodes/a", 0, &op);
    ck_assert_uint_eq(op.nkvs, 1);
    ck_assert_str_eq(op.value[0], "after");
    ck_assert_int_eq(op.kv_lease[0], atb_etcd_session_lease(f.a.c));

    pair_stop(&f);
}
END_TEST

/* ---- compaction -----------------------------------------------------------
 */

typedef struct compact_state {
    h_client *w;
    view_check vc;
} compact_state;

static int
compact_caught_up(void *arg)
{
    compact_state *cs = arg;
    atb_etcd_stats st;
    atb_etcd_stats_get(cs->w->c, &st);
    return st.watch_compacted >= 1 && cs->w->state == ATB_ETCD_WATCH_SYNCED &&
           view_matches(&cs->vc);
}

START_TEST(test_compaction)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 1, START_MS), 0);
    for (int i = 1; i <= 3; i++) {
        char k[32];
        char v[32];
        snprintf(k, sizeof(k), "/cp/k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        const char *args[] = {"put", k, v, NULL};
        ctl(&e, 0, NULL, 0, args);
    }
    atb_loop *loop = loop_new();
    h_client w;
    client_on(&w, loop, &e, 0, 1, "/cp", 5);
    ck_assert_int_eq(atb_etcd_watch_start(w.c, ""), ATBUS_OK);
    ck_assert(h_pump(loop, &w.synced, 1, WAIT_MS));
    ck_assert_int_eq(w.puts, 3);

    /* The watcher stops consuming (its loop is not turned) and loses its
     * connection; meanwhile keys change and history is compacted. */
    atb_test_etcd_kill(&e, 0, SIGKILL);
    ck_assert_int_eq(atb_test_etcd_restart(&e, 0, START_MS), 0);
    const char *del[] = {"del", "/cp/k1", NULL};
    const char *put2[] = {"put", "/cp/k2", "v2b", NULL};
    const char *put4[] = {"put", "/cp/k4", "v4", NULL};
    const char *put2c[] = {"put", "/cp/k2", "v2c", NULL};
    ctl(&e, 0, NULL, 0, del);
    ctl(&e, 0, NULL, 0, put2);
    ctl(&e, 0, NULL, 0, put4);
    ctl(&e, 0, NULL, 0, put2c);
    char rev[32];
    snprintf(rev, sizeof(rev), "%" PRId64, store_revision(&e, 0));
    const char *compact[] = {"compact", rev, NULL};
    ctl(&e, 0, NULL, 0, compact);

    compact_state cs = {.w = &w, .vc = {.t = &w, .e = &e, .prefix = "/cp"}};
    atb_loop *loops[] = {loop};
    ck_assert_msg(h_pump_until(loops, 1, compact_caught_up, &cs, WAIT_MS),
                  "view differs: %s", cs.vc.why);
    ck_assert_ptr_null(h_view_get(&w, "/cp/k1"));
    ck_assert_ptr_null(h_view_get(&w, "/k1"));
    ck_assert_str_eq(h_view_get(&w, "/k2")->value, "v2c");
    ck_assert_str_eq(h_view_get(&w, "/k3")->value, "v3");
    ck_assert_str_eq(h_view_get(&w, "/k4")->value, "v4");
    ck_assert_int_eq(w.deletes, 1); /* k1, found gone by the re-list */
    atb_etcd_stats st;
    atb_etcd_stats_get(w.c, &st);
    ck_assert_uint_eq(st.watch_lists, 2);
    /* Later changes flow through the new watch. */
    const char *put5[] = {"put", "/cp/k5", "v5", NULL};
    ctl(&e, 0, NULL, 0, put5);
    ck_assert_msg(h_pump_until(loops, 1, view_matches, &cs.vc, WAIT_MS),
                  "view differs: %s", cs.vc.why);

    atb_etcd_free(w.c);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

/* ---- failover ---------------------------------------------------------------
 */

typedef struct failover_state {
    h_client *c;
    uint64_t keepalives;
} failover_state;

static int
failover_renewed(void *arg)
{
    failover_state *fs = arg;
    atb_etcd_stats st;
    atb_etcd_stats_get(fs->c->c, &st);
    return st.keepalives >= fs->keepalives + 2 &&
           h_view_get(fs->c, "/data/after") != NULL;
}

START_TEST(test_failover)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 3, START_MS), 0);
    atb_loop *loop = loop_new();
    const char *ep[] = {e.m[0].url, e.m[1].url, e.m[2].url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 3, "/fo", 4);
    cfg.op_rounds = 4;
    h_client c;
    ck_assert_int_eq(h_client_new(&c, loop, &cfg), ATBUS_OK);
    ck_assert_int_eq(atb_etcd_watch_start(c.c, ""), ATBUS_OK);
    atb_etcd_pair rec = {"/nodes/c", "c", 1};
    ck_assert_int_eq(atb_etcd_session_set(c.c, &rec, 1), ATBUS_OK);
    ck_assert(h_pump(loop, &c.registered, 1, WAIT_MS));
    ck_assert(h_pump(loop, &c.puts, 1, WAIT_MS));
    int64_t lease = atb_etcd_session_lease(c.c);
    atb_etcd_stats st;
    atb_etcd_stats_get(c.c, &st);
    ck_assert_uint_eq(st.failovers, 0); /* everything went to member 0 */

    atb_test_etcd_kill(&e, 0, SIGKILL);
    put_sync(loop, c.c, "/data/after", "1");
    failover_state fs = {.c = &c, .keepalives = st.keepalives};
    atb_loop *loops[] = {loop};
    ck_assert(h_pump_until(loops, 1, failover_renewed, &fs, WAIT_MS));
    atb_etcd_stats_get(c.c, &st);
    ck_assert_uint_ge(st.failovers, 1);
    ck_assert_uint_eq(st.leases_lost, 0);
    ck_assert_int_eq(atb_etcd_session_lease(c.c), lease);
    ck_assert_int_eq(c.state, ATB_ETCD_WATCH_SYNCED);
    h_op op;
    range_sync(loop, c.c, "/", 1, &op);
    ck_assert_uint_eq(op.nkvs, 2);

    atb_etcd_free(c.c);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

/* ---- interop ----------------------------------------------------------------
 */

START_TEST(test_interop)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 1, START_MS), 0);
    atb_loop *loop = loop_new();
    h_client c;
    client_on(&c, loop, &e, 0, 1, "/io", 5);

    /* etcdctl writes, we read. */
    static const char rec[] = "{\"name\":\"x\",\"tokens\":[\"t1\"]}";
    const char *put[] = {"put", "/io/nodes/x", rec, NULL};
    ctl(&e, 0, NULL, 0, put);
    h_op op;
    range_sync(loop, c.c, "/nodes/x", 0, &op);
    ck_assert_uint_eq(op.nkvs, 1);
    ck_assert_str_eq(op.key[0], "/nodes/x");
    ck_assert_str_eq(op.value[0], rec);
    ck_assert_int_gt(op.kv_mod[0], 0);

    /* We write, etcdctl reads: plain put, txn, binary-ish bytes. */
    put_sync(loop, c.c, "/nodes/y", "{\"name\":\"y\"}");
    char out[4096];
    const char *get[] = {"get", "/io/nodes/y", "--print-value-only", NULL};
    ctl(&e, 0, out, sizeof(out), get);
    ck_assert_str_eq(out, "{\"name\":\"y\"}\n");
    atb_etcd_pair pairs[] = {{"/routes/x", "rx", 2}, {"/routes/y", "r\ty", 3}};
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_txn_put(c.c, pairs, 2, 0, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.err, ATBUS_OK);
    ck_assert_int_eq(op.succeeded, 1);
    const char *getp[] = {"get", "--prefix", "/io/routes/", NULL};
    ctl(&e, 0, out, sizeof(out), getp);
    ck_assert_str_eq(out, "/io/routes/x\nrx\n/io/routes/y\nr\ty\n");

    /* Prefix range and delete agree with etcdctl's count. */
    range_sync(loop, c.c, "/nodes/", 1, &op);
    ck_assert_uint_eq(op.nkvs, 2);
    ck_assert_int_eq(op.count, 2);
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_delete(c.c, "/nodes/", 1, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.deleted, 2);
    const char *count[] = {"get", "--prefix", "/io/", "--write-out=json", NULL};
    int64_t rev = 0;
    int64_t n = 0;
    ctl_json(&e, 0, count, &rev, &n);
    ck_assert_int_eq(n, 2); /* the two routes */

    /* Leases: ours are etcdctl's. */
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_lease_grant(c.c, 30, h_op_cb, &op), ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.err, ATBUS_OK);
    ck_assert_int_eq(op.ttl, 30);
    int64_t lease = op.lease;
    char id[32];
    snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)lease);
    const char *list[] = {"lease", "list", NULL};
    ctl(&e, 0, out, sizeof(out), list);
    ck_assert_ptr_nonnull(strstr(out, id));
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_lease_keepalive(c.c, lease, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.err, ATBUS_OK);
    ck_assert_int_gt(op.ttl, 0);
    const char *revoke[] = {"lease", "revoke", id, NULL};
    ctl(&e, 0, NULL, 0, revoke);
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_lease_keepalive(c.c, lease, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.err, ATBUS_ENOTFOUND);
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_put(c.c, "/z", "z", 1, lease, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_int_eq(op.err, ATBUS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(op.detail, "lease not found"));

    atb_etcd_free(c.c);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

/* ---- auth -----------------------------------------------------------------
 */

START_TEST(test_auth)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 1, START_MS), 0);
    const char *add[] = {"user", "add", "root", "--new-user-password=s3cret",
                         NULL};
    const char *enable[] = {"auth", "enable", NULL};
    ctl(&e, 0, NULL, 0, add);
    ctl(&e, 0, NULL, 0, enable);
    atb_loop *loop = loop_new();
    const char *ep[] = {e.m[0].url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 1, "/au", 5);
    cfg.username = "root";
    cfg.password = "s3cret";
    h_client c;
    ck_assert_int_eq(h_client_new(&c, loop, &cfg), ATBUS_OK);
    ck_assert_int_eq(atb_etcd_watch_start(c.c, ""), ATBUS_OK);
    atb_etcd_pair rec = {"/nodes/a", "a", 1};
    ck_assert_int_eq(atb_etcd_session_set(c.c, &rec, 1), ATBUS_OK);
    put_sync(loop, c.c, "/data/k", "v");
    ck_assert(h_pump(loop, &c.registered, 1, WAIT_MS));
    ck_assert(h_pump(loop, &c.puts, 2, WAIT_MS));
    char out[1024];
    const char *get[] = {"--user=root:s3cret", "get", "/au/data/k",
                         "--print-value-only", NULL};
    ctl(&e, 0, out, sizeof(out), get);
    ck_assert_str_eq(out, "v\n");

    /* Re-enabling auth invalidates every token. With etcd restarted
     * meanwhile, the watch's reconnect is the first request to carry the
     * dead token (lease calls are not checked): it must sign in again and
     * resume. Then a put meets the same and does too. */
    const char *disable[] = {"--user=root:s3cret", "auth", "disable", NULL};
    ctl(&e, 0, NULL, 0, disable);
    ctl(&e, 0, NULL, 0, enable);
    atb_test_etcd_kill(&e, 0, SIGKILL);
    ck_assert_int_eq(atb_test_etcd_restart(&e, 0, START_MS), 0);
    const char *put2[] = {"--user=root:s3cret", "put", "/au/data/k2", "v2",
                          NULL};
    ctl(&e, 0, NULL, 0, put2);
    ck_assert(h_pump(loop, &c.puts, 3, WAIT_MS));
    ck_assert_str_eq(h_view_get(&c, "/data/k2")->value, "v2");
    atb_etcd_stats st;
    atb_etcd_stats_get(c.c, &st);
    ck_assert_uint_eq(st.watch_lists, 1); /* resumed */
    ck_assert_uint_ge(st.auths, 2);
    put_sync(loop, c.c, "/data/k3", "v3");
    ck_assert(h_pump(loop, &c.puts, 4, WAIT_MS));
    ck_assert_ptr_nonnull(h_view_get(&c, "/nodes/a"));

    /* No credentials, or wrong ones: refused, with etcd's reason. */
    h_client anon;
    h_client_config(&cfg, ep, 1, "/au", 5);
    ck_assert_int_eq(h_client_new(&anon, loop, &cfg), ATBUS_OK);
    h_op op;
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_put(anon.c, "/x", "x", 1, 0, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_msg(op.err == ATBUS_EPERM, "%s", op.detail);
    ck_assert_ptr_nonnull(strstr(op.detail, "user name is empty"));
    atb_etcd_free(anon.c);
    cfg.username = "root";
    cfg.password = "wrong";
    ck_assert_int_eq(h_client_new(&anon, loop, &cfg), ATBUS_OK);
    memset(&op, 0, sizeof(op));
    ck_assert_int_eq(atb_etcd_put(anon.c, "/x", "x", 1, 0, h_op_cb, &op),
                     ATBUS_OK);
    op_wait(loop, &op);
    ck_assert_msg(op.err == ATBUS_EPERM, "%s", op.detail);
    ck_assert_ptr_nonnull(strstr(op.detail, "authentication"));
    atb_etcd_free(anon.c);

    atb_etcd_free(c.c);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

int
main(void)
{
    if (!atb_test_etcd_available()) {
        printf("SKIP: etcd or etcdctl not found in PATH (Debian packages "
               "etcd-server and etcd-client)\n");
        return 77;
    }
    if (atb_test_etcd_root_create() != 0) {
        printf("cannot create a directory for etcd data\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("etcd");
    TCase *tc = atb_test_case("session", 60);
    tcase_add_test(tc, test_register_watch);
    tcase_add_test(tc, test_lease_expiry);
    tcase_add_test(tc, test_lease_lost);
    suite_add_tcase(s, tc);
    tc = atb_test_case("outage", 90);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_compaction);
    tcase_add_test(tc, test_failover);
    suite_add_tcase(s, tc);
    tc = atb_test_case("interop", 60);
    tcase_add_test(tc, test_interop);
    tcase_add_test(tc, test_auth);
    suite_add_tcase(s, tc);
    int rc = atb_test_run(s);
    atb_test_etcd_root_remove();
    return rc;
}
