/*
 * The etcd sync against real etcd 3.4 on loopback: two syncs see each
 * other's node and route records and their route registries agree;
 * invalid values written by etcdctl are reported and skipped while valid
 * ones next to them are used; an owner's lease expiring removes its
 * records from the other's view; etcd SIGKILLed and restarted (cached
 * view kept, staleness reported, view converges, own records back);
 * compaction while a sync is away (re-list, view equals etcd).
 *
 * Every wait turns the loop until a condition or a deadline; nothing
 * asserts timing. Each test starts its own etcd and kills it at the end.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <atbus/atbus.h>

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/route_feed.h"
#include "discovery/sync.h"
#include "etcd_harness.h"
#include "etcd_server.h"
#include "fixtures.h"
#include "testing.h"

#define START_MS 30000
#define WAIT_MS H_WAIT_MS
#define PREFIX "/mesh"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

/* ---- a node's discovery: registry, route registry, feed, sync ------------
 */

#define PEER_REJECTS 16

typedef struct peer {
    atbus_registry *reg;
    atbus_route_registry *routes;
    atb_disc_route_feed *feed;
    atb_disc_sync *sync;
    int changes;
    int deletes;
    size_t nrejects;
    char reject_key[PEER_REJECTS][128];
    atbus_record_error reject[PEER_REJECTS];
    int route_rejects;
    int states;
    atb_disc_sync_status st;
} peer;

static void
peer_on_change(atbus_registry *reg, enum atbus_registry_event ev,
               const atbus_record *rec, void *arg)
{
    peer *p = arg;
    p->changes++;
    p->deletes += ev == ATBUS_REGISTRY_DELETE;
    atb_disc_route_feed_on_change(reg, ev, rec, p->feed);
}

static void
peer_on_reject(const char *key, const atbus_record_error *err, void *arg)
{
    peer *p = arg;
    if (p->nrejects < PEER_REJECTS) {
        snprintf(p->reject_key[p->nrejects], sizeof(p->reject_key[0]), "%s",
                 key);
        p->reject[p->nrejects] = *err;
    }
    p->nrejects++;
}

static void
peer_on_route_reject(const char *name, int err, const char *detail, void *arg)
{
    (void)name;
    (void)detail;
    peer *p = arg;
    ck_assert_int_eq(err, ATBUS_EROUTE_CYCLE);
    p->route_rejects++;
}

static void
peer_on_state(const atb_disc_sync_status *st, void *arg)
{
    peer *p = arg;
    p->states++;
    p->st = *st;
}

/* peer_start starts a sync of a new registry under prefix (PREFIX,
 * maybe with a trailing '/'). */
static void
peer_start_at(peer *p, atb_loop *loop, const atb_test_etcd *e, uint32_t ttl,
              const char *prefix)
{
    memset(p, 0, sizeof(*p));
    ok(atbus_registry_new(&p->reg));
    ok(atbus_route_registry_new(&p->routes));
    ok(atb_disc_route_feed_new(&p->feed, p->reg, p->routes,
                               peer_on_route_reject, p));
    atbus_registry_callbacks rcbs = {.on_change = peer_on_change};
    ok(atbus_registry_set_callbacks(p->reg, &rcbs, p));
    const char *ep[] = {e->m[0].url};
    atb_etcd_config cfg;
    h_client_config(&cfg, ep, 1, prefix, ttl);
    atb_disc_sync_callbacks cbs = {.on_reject = peer_on_reject,
                                   .on_state = peer_on_state};
    ok(atb_disc_sync_new(&p->sync, loop, &cfg, p->reg, &cbs, p));
    ok(atb_disc_sync_start(p->sync));
    ck_assert_int_eq(atb_disc_sync_start(p->sync), ATBUS_EEXIST);
}

static void
peer_start(peer *p, atb_loop *loop, const atb_test_etcd *e, uint32_t ttl)
{
    peer_start_at(p, loop, e, ttl, PREFIX);
}

/* peer_stop frees everything; a second call does nothing. */
static void
peer_stop(peer *p)
{
    atb_disc_sync_free(p->sync);
    atb_disc_route_feed_free(p->feed);
    atbus_route_registry_free(p->routes);
    atbus_registry_free(p->reg);
    memset(p, 0, sizeof(*p));
}

/* peer_publish publishes node `name` (namespace ns1, kind app) with a
 * route under `up` (NULL: a root; "-": no route record at all). */
static void
peer_publish(peer *p, const char *name, const char *up, int64_t version)
{
    atbus_record node;
    atbus_record route;
    disc_node(&node, name, "ns1", "app");
    node.version = version;
    atbus_record_init(&route);
    route.type = ATBUS_RECORD_ROUTE;
    route.version = version;
    ok(atbus_record_set_string(&route.name, name));
    if (up != NULL && strcmp(up, "-") != 0) {
        ok(atbus_record_list_add(&route.upstreams, up));
    }
    int with_route = up == NULL || strcmp(up, "-") != 0;
    atbus_record_error err;
    ck_assert_int_eq(
        atb_disc_sync_publish(p->sync, &node, with_route ? &route : NULL, &err),
        ATBUS_OK);
    atbus_record_fini(&node);
    atbus_record_fini(&route);
}

static const atbus_record *
get(const peer *p, enum atbus_registry_table t, const char *name)
{
    const atbus_record *r = NULL;
    atbus_registry_get(p->reg, t, name, &r);
    return r;
}

static int
relation(const peer *p, const char *x, const char *y)
{
    atbus_relation r = 0;
    int rc = atbus_route_registry_relation(p->routes, x, y, &r);
    return rc == ATBUS_OK ? (int)r : rc;
}

static atb_loop *
loop_new(void)
{
    atb_loop *loop = NULL;
    ok(atb_loop_new(&loop));
    return loop;
}

/* ctl runs etcdctl on member 0 and requires success. */
static void
ctl(const atb_test_etcd *e, const char *const *args, char *out, size_t cap)
{
    char tmp[4096];
    if (out == NULL) {
        out = tmp;
        cap = sizeof(tmp);
    }
    int rc = atb_test_etcdctl(e, 0, out, cap, args);
    ck_assert_msg(rc == 0, "etcdctl %s: exit %d: %s", args[0], rc, out);
}

static void
ctl_put(const atb_test_etcd *e, const char *key, const char *value)
{
    char k[256];
    snprintf(k, sizeof(k), PREFIX "%s", key);
    const char *args[] = {"put", k, value, NULL};
    ctl(e, args, NULL, 0);
}

static void
ctl_del(const atb_test_etcd *e, const char *key)
{
    char k[256];
    snprintf(k, sizeof(k), PREFIX "%s", key);
    const char *args[] = {"del", k, NULL};
    ctl(e, args, NULL, 0);
}

/* store_revision asks etcd for its current revision. Member and cluster
 * ids may not fit jansson's integers, so numbers are read as reals
 * (exact for revisions this small). */
static int64_t
store_revision(const atb_test_etcd *e)
{
    char out[8192];
    const char *args[] = {"get", "/", "--write-out=json", NULL};
    ctl(e, args, out, sizeof(out));
    json_t *root = json_loads(out, JSON_DECODE_INT_AS_REAL, NULL);
    ck_assert_ptr_nonnull(root);
    json_t *rev = json_object_get(json_object_get(root, "header"), "revision");
    ck_assert(json_is_real(rev));
    int64_t r = (int64_t)json_real_value(rev);
    json_decref(root);
    return r;
}

/* ---- the view against etcd ------------------------------------------------
 */

typedef struct view_check {
    const peer *p;
    const atb_test_etcd *e;
    char why[256];
} view_check;

/* view_equals: every valid record etcd holds under the prefix is in the
 * registry, equal, and the registry holds nothing else; invalid values
 * are counted as rejected. */
static int
view_equals(void *arg)
{
    view_check *vc = arg;
    static char out[1 << 16];
    const char *args[] = {"get", "--prefix", PREFIX "/", NULL};
    if (atb_test_etcdctl(vc->e, 0, out, sizeof(out), args) != 0) {
        snprintf(vc->why, sizeof(vc->why), "etcdctl failed: %.200s", out);
        return 0;
    }
    size_t valid[4] = {0};
    size_t invalid = 0;
    char *save = NULL;
    for (char *k = strtok_r(out, "\n", &save); k != NULL;
         k = strtok_r(NULL, "\n", &save)) {
        char *v = strtok_r(NULL, "\n", &save);
        const char *key = k + strlen(PREFIX);
        atbus_record rec;
        enum atbus_registry_table t = 0;
        int rc = atb_disc_sync_decode(key, strlen(key), v, v ? strlen(v) : 0,
                                      &t, &rec, NULL);
        if (rc == ATBUS_ENOTSUP) {
            continue;
        }
        if (rc != ATBUS_OK) {
            invalid++;
            continue;
        }
        const atbus_record *have = get(vc->p, t, rec.name);
        int same = have != NULL && atbus_record_equal(have, &rec);
        atbus_record_fini(&rec);
        if (!same) {
            snprintf(vc->why, sizeof(vc->why), "%.100s: %s", key,
                     have == NULL ? "missing" : "differs");
            return 0;
        }
        valid[t]++;
    }
    for (int t = ATBUS_REGISTRY_NODES; t <= ATBUS_REGISTRY_ROUTES; t++) {
        size_t n = atbus_registry_count(vc->p->reg, t);
        if (n != valid[t]) {
            snprintf(vc->why, sizeof(vc->why), "table %d: etcd %zu, view %zu",
                     t, valid[t], n);
            return 0;
        }
    }
    atb_disc_sync_status st;
    atb_disc_sync_status_get(vc->p->sync, &st);
    if (st.rejected != invalid) {
        snprintf(vc->why, sizeof(vc->why), "etcd %zu invalid, rejected %zu",
                 invalid, st.rejected);
        return 0;
    }
    return 1;
}

/* ---- two nodes ------------------------------------------------------------
 */

/* One etcd, one loop, two nodes: app-a hangs under relay-b, a root. */
typedef struct duo {
    atb_test_etcd e;
    atb_loop *loop;
    peer a;
    peer b;
} duo;

static void
duo_start(duo *d, uint32_t ttl)
{
    ck_assert_int_eq(atb_test_etcd_start(&d->e, 1, START_MS), 0);
    d->loop = loop_new();
    peer_start(&d->a, d->loop, &d->e, ttl);
    /* "/mesh/" names the same keys as "/mesh". */
    peer_start_at(&d->b, d->loop, &d->e, ttl, PREFIX "/");
    peer_publish(&d->a, "app-a", "relay-b", 1);
    peer_publish(&d->b, "relay-b", NULL, 1);
}

static void
duo_stop(duo *d)
{
    peer_stop(&d->a);
    peer_stop(&d->b);
    atb_loop_free(d->loop);
    atb_test_etcd_stop(&d->e);
}

/* duo_wait turns the loop until cond(arg); 1 if it held in time. */
static int
duo_wait(duo *d, int (*cond)(void *), void *arg)
{
    atb_loop *loops[] = {d->loop};
    return h_pump_until(loops, 1, cond, arg, WAIT_MS);
}

static int
duo_see_each_other(void *arg)
{
    duo *d = arg;
    const peer *ps[] = {&d->a, &d->b};
    for (int i = 0; i < 2; i++) {
        if (get(ps[i], ATBUS_REGISTRY_NODES, "app-a") == NULL ||
            get(ps[i], ATBUS_REGISTRY_NODES, "relay-b") == NULL ||
            get(ps[i], ATBUS_REGISTRY_ROUTES, "app-a") == NULL ||
            get(ps[i], ATBUS_REGISTRY_ROUTES, "relay-b") == NULL ||
            !ps[i]->st.published || ps[i]->st.state != ATB_DISC_SYNC_SYNCED) {
            return 0;
        }
    }
    return 1;
}

/* A node's two records as one peer sees them: awaited present or gone. */
typedef struct seek {
    const peer *p;
    const char *name;
    int present;
} seek;

static int
seek_done(void *arg)
{
    const seek *k = arg;
    int n = get(k->p, ATBUS_REGISTRY_NODES, k->name) != NULL;
    int r = get(k->p, ATBUS_REGISTRY_ROUTES, k->name) != NULL;
    return k->present ? n && r : !n && !r;
}

static int
b_has_app_a_v2(void *arg)
{
    const atbus_record *r = get(arg, ATBUS_REGISTRY_NODES, "app-a");
    return r != NULL && r->version == 2 &&
           get(arg, ATBUS_REGISTRY_ROUTES, "app-a") == NULL;
}

START_TEST(test_two_syncs)
{
    duo d;
    duo_start(&d, 5);
    peer *a = &d.a;
    peer *b = &d.b;
    ck_assert(duo_wait(&d, duo_see_each_other, &d));

    /* Each sees the other's records exactly as published, and the route
     * registries agree: relay-b is app-a's upstream, in both views. */
    const atbus_record *n = get(a, ATBUS_REGISTRY_NODES, "relay-b");
    ck_assert_str_eq(n->metadata.namespace_name, "ns1");
    ck_assert_int_eq(n->version, 1);
    const atbus_record *r = get(b, ATBUS_REGISTRY_ROUTES, "app-a");
    ck_assert_uint_eq(r->upstreams.count, 1);
    ck_assert_str_eq(r->upstreams.items[0], "relay-b");
    ck_assert_uint_eq(get(a, ATBUS_REGISTRY_ROUTES, "relay-b")->upstreams.count,
                      0);
    for (int i = 0; i < 2; i++) {
        peer *p = i == 0 ? a : b;
        ck_assert_int_eq(relation(p, "app-a", "relay-b"),
                         ATBUS_RELATION_IMMEDIATE_UPSTREAM);
        ck_assert_int_eq(relation(p, "relay-b", "app-a"),
                         ATBUS_RELATION_IMMEDIATE_DOWNSTREAM);
        ck_assert_int_ne(p->st.lease, 0);
        ck_assert_uint_eq(p->nrejects, 0);
    }
    ck_assert_int_ne(a->st.lease, b->st.lease);
    view_check vc = {.p = b, .e = &d.e};
    ck_assert_msg(view_equals(&vc), "%s", vc.why);

    /* Publishing the same records again writes nothing. */
    int64_t rev = store_revision(&d.e);
    peer_publish(a, "app-a", "relay-b", 1);
    h_pump_for(d.loop, 200);
    ck_assert_int_eq(store_revision(&d.e), rev);

    /* An update, and the route record given up: both reach b. */
    peer_publish(a, "app-a", "-", 2);
    ck_assert(duo_wait(&d, b_has_app_a_v2, b));
    ck_assert_int_eq(relation(b, "app-a", "relay-b"), ATBUS_ENOTFOUND);

    /* Records that do not fit are refused before anything is sent. */
    atbus_record node;
    atbus_record other;
    disc_node(&node, "app-a", "ns1", "app");
    disc_node(&other, "app-b", "ns1", "app");
    atbus_record_error err;
    ck_assert_int_eq(atb_disc_sync_publish(a->sync, &node, &other, &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "type");
    atbus_record_fini(&other);
    atbus_record_init(&other);
    other.type = ATBUS_RECORD_ROUTE;
    ok(atbus_record_set_string(&other.name, "app-b"));
    ck_assert_int_eq(atb_disc_sync_publish(a->sync, &other, NULL, &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "type");
    ck_assert_int_eq(atb_disc_sync_publish(a->sync, &node, &other, &err),
                     ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "name");
    atbus_record_fini(&node);
    atbus_record_fini(&other);

    /* A clean shutdown deletes b's records at once. */
    ok(atb_disc_sync_unpublish(b->sync));
    ck_assert_int_eq(b->st.published, 0);
    seek gone = {a, "relay-b", 0};
    ck_assert(duo_wait(&d, seek_done, &gone));
    ck_assert_int_eq(atb_disc_sync_unpublish(b->sync), ATBUS_ENOTFOUND);

    duo_stop(&d);
}
END_TEST

/* ---- invalid records ------------------------------------------------------
 */

typedef struct reject_wait {
    peer *p;
    size_t rejects;
    const char *node; /* must be present, or NULL */
    const char *gone; /* must be absent, or NULL */
} reject_wait;

static int
rejects_reached(void *arg)
{
    reject_wait *w = arg;
    return w->p->nrejects >= w->rejects &&
           (w->node == NULL ||
            get(w->p, ATBUS_REGISTRY_NODES, w->node) != NULL) &&
           (w->gone == NULL ||
            get(w->p, ATBUS_REGISTRY_NODES, w->gone) == NULL);
}

/* find_reject returns the reject reported for key, or NULL. */
static const atbus_record_error *
find_reject(const peer *p, const char *key)
{
    for (size_t i = 0; i < p->nrejects && i < PEER_REJECTS; i++) {
        if (strcmp(p->reject_key[i], key) == 0) {
            return &p->reject[i];
        }
    }
    return NULL;
}

static const char good_node[] =
    "{\"name\":\"good\",\"metadata\":{\"namespace_name\":\"ns1\"},"
    "\"gateways\":[{\"priority\":1,\"addresses\":[\"ipv4://10.0.0.1:7000\"]}]}";

START_TEST(test_invalid_records)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 1, START_MS), 0);
    /* Written before the sync starts: met by the first listing. */
    ctl_put(&e, "/nodes/bad-json", "{\"name\": \"bad-json\",");
    ctl_put(&e, "/nodes/good", good_node);
    ctl_put(&e, "/routes/good", "{\"name\":\"good\",\"upstreams\":[\"r-1\"]}");
    ctl_put(&e, "/topology/zone-1", "not a record, not looked at");
    atb_loop *loop = loop_new();
    peer p;
    peer_start(&p, loop, &e, 5);
    reject_wait w = {.p = &p, .rejects = 1, .node = "good"};
    atb_loop *loops[] = {loop};
    ck_assert(h_pump_until(loops, 1, rejects_reached, &w, WAIT_MS));
    const atbus_record_error *err = find_reject(&p, "/nodes/bad-json");
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->code, ATBUS_EPARSE);
    ck_assert_uint_eq(err->line, 1);
    ck_assert_int_eq(relation(&p, "good", "r-1"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);

    /* Written while watching: each refused with its key and detail, the
     * valid one next to them used. */
    ctl_put(&e, "/nodes/mismatch", "{\"name\":\"other\"}");
    ctl_put(&e, "/routes/bad-up",
            "{\"name\":\"bad-up\",\"upstreams\":[\"r-1\",\"Bad_Name\"]}");
    ctl_put(&e, "/nodes/grp", "{\"name\":\"grp\",\"type\":\"group\"}");
    ctl_put(&e, "/nodes/good-2",
            "{\"name\":\"good-2\",\"version\":5,\"host\":{\"pid\":7}}");
    ctl_put(&e, "/nodes/bad-addr",
            "{\"name\":\"bad-addr\",\"gateways\":[{\"priority\":1,"
            "\"addresses\":[\"tcp://10.0.0.1:1\"]}]}");
    w = (reject_wait){.p = &p, .rejects = 5, .node = "good-2"};
    ck_assert(h_pump_until(loops, 1, rejects_reached, &w, WAIT_MS));
    err = find_reject(&p, "/nodes/mismatch");
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->code, ATBUS_ERECORD);
    ck_assert_str_eq(err->path, "name");
    ck_assert_str_eq(err->name, "other");
    err = find_reject(&p, "/routes/bad-up");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err->path, "upstreams[1]");
    err = find_reject(&p, "/nodes/grp");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err->path, "type");
    err = find_reject(&p, "/nodes/bad-addr");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err->path, "gateways[0].addresses[0]");
    ck_assert_ptr_null(get(&p, ATBUS_REGISTRY_NODES, "other"));
    ck_assert_ptr_null(get(&p, ATBUS_REGISTRY_ROUTES, "bad-up"));
    ck_assert_ptr_nonnull(get(&p, ATBUS_REGISTRY_NODES, "good"));
    view_check vc = {.p = &p, .e = &e};
    ck_assert_msg(view_equals(&vc), "%s", vc.why);
    atb_disc_sync_status st;
    atb_disc_sync_status_get(p.sync, &st);
    ck_assert_uint_eq(st.rejected, 5);
    ck_assert_int_eq(st.state, ATB_DISC_SYNC_SYNCED);

    /* A fixed value is taken; a valid record overwritten with garbage
     * leaves the view; a deleted bad key is forgotten; an older version
     * replaces a newer one (etcd's latest write is the truth). */
    ctl_put(&e, "/nodes/mismatch", "{\"name\":\"mismatch\"}");
    ctl_put(&e, "/nodes/good", "{\"name\":\"good\",\"tokens\":[\"\"]}");
    ctl_del(&e, "/nodes/bad-json");
    ctl_put(&e, "/nodes/good-2", "{\"name\":\"good-2\",\"version\":3}");
    w = (reject_wait){
        .p = &p, .rejects = 6, .node = "mismatch", .gone = "good"};
    ck_assert(h_pump_until(loops, 1, rejects_reached, &w, WAIT_MS));
    ck_assert_msg(h_pump_until(loops, 1, view_equals, &vc, WAIT_MS), "%s",
                  vc.why);
    err = find_reject(&p, "/nodes/good");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err->path, "tokens[0]");
    ck_assert_int_eq(get(&p, ATBUS_REGISTRY_NODES, "good-2")->version, 3);
    atb_disc_sync_status_get(p.sync, &st);
    ck_assert_uint_eq(st.rejected, 4);

    /* A route cycle is the route feed's to refuse: the sync mirrors both
     * records, the feed applies one and holds the other. */
    ctl_put(&e, "/routes/c-1", "{\"name\":\"c-1\",\"upstreams\":[\"c-2\"]}");
    ctl_put(&e, "/routes/c-2", "{\"name\":\"c-2\",\"upstreams\":[\"c-1\"]}");
    ck_assert(h_pump(loop, &p.route_rejects, 1, WAIT_MS));
    ck_assert_ptr_nonnull(get(&p, ATBUS_REGISTRY_ROUTES, "c-2"));
    ck_assert_uint_eq(atb_disc_route_feed_pending(p.feed), 1);
    ck_assert_uint_eq(p.nrejects, 6);
    ctl_del(&e, "/routes/c-1");
    ck_assert_msg(h_pump_until(loops, 1, view_equals, &vc, WAIT_MS), "%s",
                  vc.why);
    ck_assert_uint_eq(atb_disc_route_feed_pending(p.feed), 0);
    ck_assert_int_eq(relation(&p, "c-2", "c-1"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);

    peer_stop(&p);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

/* ---- lease expiry ---------------------------------------------------------
 */

START_TEST(test_lease_expiry)
{
    duo d;
    duo_start(&d, 2);
    seek sees = {&d.b, "app-a", 1};
    ck_assert(duo_wait(&d, seek_done, &sees));
    ck_assert_int_eq(relation(&d.b, "relay-b", "app-a"),
                     ATBUS_RELATION_IMMEDIATE_DOWNSTREAM);

    /* a dies without a word: no revoke, no more keep-alives. */
    peer_stop(&d.a);
    seek lost = {&d.b, "app-a", 0};
    ck_assert(duo_wait(&d, seek_done, &lost));
    ck_assert_int_eq(relation(&d.b, "relay-b", "app-a"), ATBUS_ENOTFOUND);
    ck_assert_ptr_nonnull(get(&d.b, ATBUS_REGISTRY_NODES, "relay-b"));
    ck_assert_int_eq(d.b.deletes, 2);
    view_check vc = {.p = &d.b, .e = &d.e};
    ck_assert_msg(view_equals(&vc), "%s", vc.why);
    duo_stop(&d);
}
END_TEST

/* ---- etcd killed and restarted -------------------------------------------
 */

static int
both_stale(void *arg)
{
    duo *d = arg;
    return d->a.st.state == ATB_DISC_SYNC_STALE &&
           d->b.st.state == ATB_DISC_SYNC_STALE;
}

typedef struct restart_state {
    duo *d;
    view_check va;
    view_check vb;
} restart_state;

static int
restart_converged(void *arg)
{
    restart_state *rs = arg;
    return duo_see_each_other(rs->d) &&
           get(&rs->d->a, ATBUS_REGISTRY_NODES, "late") != NULL &&
           view_equals(&rs->va) && view_equals(&rs->vb);
}

START_TEST(test_restart)
{
    duo d;
    duo_start(&d, 3);
    ck_assert(duo_wait(&d, duo_see_each_other, &d));

    atb_test_etcd_kill(&d.e, 0, SIGKILL);
    ck_assert(duo_wait(&d, both_stale, &d));
    for (int i = 0; i < 2; i++) {
        peer *p = i == 0 ? &d.a : &d.b;
        atb_disc_sync_status st;
        atb_disc_sync_status_get(p->sync, &st);
        ck_assert_int_eq(st.state, ATB_DISC_SYNC_STALE);
        ck_assert_uint_ne(st.stale_since_us, 0);
        ck_assert_uint_le(st.stale_since_us, atb_loop_now_us(d.loop));
        ck_assert_int_ne(st.err, ATBUS_OK);
        ck_assert(st.detail[0] != '\0');
    }
    /* The cached view stays, and routing on it still works. */
    ck_assert_ptr_nonnull(get(&d.b, ATBUS_REGISTRY_NODES, "app-a"));
    ck_assert_int_eq(relation(&d.b, "app-a", "relay-b"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    int changes = d.b.changes;
    h_pump_for(d.loop, 300);
    ck_assert_int_eq(d.b.changes, changes);

    ck_assert_int_eq(atb_test_etcd_restart(&d.e, 0, START_MS), 0);
    /* A change right after the restart reaches both. */
    ctl_put(&d.e, "/nodes/late", "{\"name\":\"late\"}");
    restart_state rs = {
        .d = &d, .va = {.p = &d.a, .e = &d.e}, .vb = {.p = &d.b, .e = &d.e}};
    ck_assert_msg(duo_wait(&d, restart_converged, &rs), "a: %s / b: %s",
                  rs.va.why, rs.vb.why);
    /* The own records are in etcd again, on the live lease. */
    char out[4096];
    const char *args[] = {"get", PREFIX "/routes/app-a", "--print-value-only",
                          NULL};
    ctl(&d.e, args, out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "\"upstreams\":[\"relay-b\"]"));
    ck_assert_int_eq(d.a.st.state, ATB_DISC_SYNC_SYNCED);
    ck_assert_int_eq(d.a.st.stale_since_us, 0);
    duo_stop(&d);
}
END_TEST

/* ---- compaction -----------------------------------------------------------
 */

static int
compacted_and_equal(void *arg)
{
    view_check *vc = arg;
    atb_etcd_stats st;
    atb_etcd_stats_get(atb_disc_sync_client(vc->p->sync), &st);
    return st.watch_compacted >= 1 && vc->p->st.state == ATB_DISC_SYNC_SYNCED &&
           view_equals(vc);
}

START_TEST(test_compaction)
{
    atb_test_etcd e;
    ck_assert_int_eq(atb_test_etcd_start(&e, 1, START_MS), 0);
    ctl_put(&e, "/nodes/n-1", "{\"name\":\"n-1\"}");
    ctl_put(&e, "/nodes/n-2", "{\"name\":\"n-2\"}");
    ctl_put(&e, "/routes/n-1", "{\"name\":\"n-1\",\"upstreams\":[\"n-2\"]}");
    ctl_put(&e, "/nodes/n-3", "{\"name\":\"n-3\",\"version\":1}");
    atb_loop *loop = loop_new();
    peer p;
    peer_start(&p, loop, &e, 5);
    view_check vc = {.p = &p, .e = &e};
    atb_loop *loops[] = {loop};
    ck_assert_msg(h_pump_until(loops, 1, view_equals, &vc, WAIT_MS), "%s",
                  vc.why);
    ck_assert(h_pump(loop, &p.states, 1, WAIT_MS));
    ck_assert_int_eq(relation(&p, "n-1", "n-2"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);

    /* The sync is away (its loop is not turned) and loses its stream;
     * meanwhile records change and history is compacted. */
    atb_test_etcd_kill(&e, 0, SIGKILL);
    ck_assert_int_eq(atb_test_etcd_restart(&e, 0, START_MS), 0);
    ctl_del(&e, "/nodes/n-1");
    ctl_del(&e, "/routes/n-1");
    ctl_put(&e, "/nodes/n-3", "{\"name\":\"n-3\",\"version\":2}");
    ctl_put(&e, "/nodes/n-4", "{\"name\":\"n-4\"}");
    ctl_put(&e, "/routes/n-4", "{\"name\":\"n-4\",\"upstreams\":[\"n-2\"]}");
    ctl_put(&e, "/nodes/n-2", "{\"name\":\"n-2\",\"version\":1}");
    char revs[32];
    snprintf(revs, sizeof(revs), "%" PRId64, store_revision(&e));
    const char *compact[] = {"compact", revs, NULL};
    ctl(&e, compact, NULL, 0);

    ck_assert_msg(h_pump_until(loops, 1, compacted_and_equal, &vc, WAIT_MS),
                  "%s", vc.why);
    ck_assert_ptr_null(get(&p, ATBUS_REGISTRY_NODES, "n-1"));
    ck_assert_int_eq(get(&p, ATBUS_REGISTRY_NODES, "n-3")->version, 2);
    ck_assert_int_eq(relation(&p, "n-4", "n-2"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(relation(&p, "n-1", "n-2"), ATBUS_ENOTFOUND);
    atb_etcd_stats st;
    atb_etcd_stats_get(atb_disc_sync_client(p.sync), &st);
    ck_assert_uint_eq(st.watch_lists, 2);
    /* Later changes flow through the new watch. */
    ctl_put(&e, "/nodes/n-5", "{\"name\":\"n-5\"}");
    ck_assert_msg(h_pump_until(loops, 1, view_equals, &vc, WAIT_MS), "%s",
                  vc.why);
    ck_assert_ptr_nonnull(get(&p, ATBUS_REGISTRY_NODES, "n-5"));

    peer_stop(&p);
    atb_loop_free(loop);
    atb_test_etcd_stop(&e);
}
END_TEST

int
main(void)
{
    int prep = atb_test_etcd_suite_prepare();
    if (prep != 0) {
        return prep;
    }
    Suite *s = suite_create("sync");
    TCase *tc = atb_test_case("records", 60);
    tcase_add_test(tc, test_two_syncs);
    tcase_add_test(tc, test_invalid_records);
    tcase_add_test(tc, test_lease_expiry);
    suite_add_tcase(s, tc);
    tc = atb_test_case("outage", 90);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_compaction);
    suite_add_tcase(s, tc);
    int rc = atb_test_run(s);
    atb_test_etcd_root_remove();
    return rc;
}
