/*
 * Relations: table tests on hand-made topologies, backups taking over,
 * chains of depth 1 500 and their caches, and random forests checked
 * against a plain chain walk written here.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/relation.h"
#include "route_harness.h"
#include "testing.h"

#define SELF ATBUS_RELATION_SELF
#define UP1 ATBUS_RELATION_IMMEDIATE_UPSTREAM
#define DOWN1 ATBUS_RELATION_IMMEDIATE_DOWNSTREAM
#define PEER ATBUS_RELATION_SAME_UPSTREAM_PEER
#define UPN ATBUS_RELATION_TRANSITIVE_UPSTREAM
#define DOWNN ATBUS_RELATION_TRANSITIVE_DOWNSTREAM
#define OTHER ATBUS_RELATION_OTHER_UPSTREAM_PEER

typedef struct rel_case {
    const char *x;
    const char *y;
    atbus_relation want;
} rel_case;

static void
check_table(atb_route_registry *reg, const rel_case *cases, size_t n,
            const char *phase)
{
    for (size_t i = 0; i < n; i++) {
        atbus_relation got = rh_relation(reg, cases[i].x, cases[i].y);
        ck_assert_msg(got == cases[i].want,
                      "%s: relation(%s, %s) = %s, want %s", phase, cases[i].x,
                      cases[i].y, atbus_relation_name(got),
                      atbus_relation_name(cases[i].want));
    }
}

#define CHECK_TABLE(reg, cases, phase)                                         \
    check_table((reg), (cases), sizeof(cases) / sizeof(cases[0]), (phase))

/*
 *   top                         lone   lone-2
 *   ├── relay-a
 *   │   ├── app-1 (backup relay-b)
 *   │   ├── app-2
 *   │   └── relay-aa
 *   │       └── app-4
 *   └── relay-b
 *       └── app-3
 */
static void
build_tree(atb_route_registry *reg)
{
    rh_set(reg, "relay-a", "top");
    rh_set(reg, "relay-b", "top");
    rh_set(reg, "app-1", "relay-a,relay-b");
    rh_set(reg, "app-2", "relay-a");
    rh_set(reg, "relay-aa", "relay-a");
    rh_set(reg, "app-4", "relay-aa");
    rh_set(reg, "app-3", "relay-b");
    rh_set(reg, "lone", "");
    rh_set(reg, "lone-2", "");
}

static const rel_case tree_all_up[] = {
    {"app-1", "app-1", SELF},     {"top", "top", SELF},
    {"lone", "lone", SELF},       {"app-1", "relay-a", UP1},
    {"relay-a", "top", UP1},      {"app-4", "relay-aa", UP1},
    {"relay-a", "app-1", DOWN1},  {"top", "relay-b", DOWN1},
    {"relay-aa", "app-4", DOWN1}, {"app-1", "app-2", PEER},
    {"app-2", "app-1", PEER},     {"app-1", "relay-aa", PEER},
    {"relay-a", "relay-b", PEER}, {"app-1", "top", UPN},
    {"app-4", "top", UPN},        {"app-4", "relay-a", UPN},
    {"app-3", "top", UPN},        {"top", "app-1", DOWNN},
    {"top", "app-4", DOWNN},      {"relay-a", "app-4", DOWNN},
    {"app-1", "app-3", OTHER},    {"app-3", "app-1", OTHER},
    {"app-4", "app-1", OTHER},    {"app-1", "app-4", OTHER},
    {"app-1", "relay-b", OTHER}, /* a backup is not a relation */
    {"relay-b", "app-1", OTHER},  {"app-4", "relay-b", OTHER},
    {"lone", "lone-2", OTHER},    {"lone", "app-1", OTHER},
    {"top", "lone", OTHER},       {"lone", "top", OTHER},
};

/* relay-a down: app-1 moves to its backup, app-2 and relay-aa lose their
 * only upstream; relay-a itself still hangs under top. */
static const rel_case tree_a_down[] = {
    {"app-1", "relay-b", UP1},    {"relay-b", "app-1", DOWN1},
    {"app-1", "app-3", PEER},     {"app-1", "top", UPN},
    {"app-1", "relay-a", OTHER},  {"relay-a", "app-1", OTHER},
    {"app-2", "relay-a", OTHER},  {"app-2", "top", OTHER},
    {"app-4", "relay-aa", UP1},   {"app-4", "top", OTHER},
    {"relay-a", "top", UP1},      {"top", "app-4", OTHER},
    {"relay-aa", "app-2", OTHER}, {"relay-a", "relay-b", PEER},
};

START_TEST(test_relation_tree)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    build_tree(&reg);
    CHECK_TABLE(&reg, tree_all_up, "all up");

    ck_assert_int_eq(atb_route_set_up(&reg, "relay-a", 0), ATBUS_OK);
    CHECK_TABLE(&reg, tree_a_down, "relay-a down");
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-a", 1), ATBUS_OK);
    CHECK_TABLE(&reg, tree_all_up, "relay-a up again");

    /* Leaving looks like being down to its downstreams. */
    ck_assert_int_eq(atb_route_remove(&reg, "relay-a"), ATBUS_OK);
    ck_assert_int_eq(rh_relation(&reg, "app-1", "relay-b"), UP1);
    ck_assert_int_eq(rh_relation(&reg, "app-2", "top"), OTHER);
    /* It no longer hangs under top either: its report is gone. */
    ck_assert_int_eq(rh_relation(&reg, "relay-a", "top"), OTHER);
    rh_set(&reg, "relay-a", "top");
    CHECK_TABLE(&reg, tree_all_up, "relay-a back");

    /* A move: relay-aa now hangs under relay-b. */
    rh_set(&reg, "relay-aa", "relay-b");
    ck_assert_int_eq(rh_relation(&reg, "app-4", "relay-b"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "app-4", "relay-a"), OTHER);
    ck_assert_int_eq(rh_relation(&reg, "app-3", "relay-aa"), PEER);
    ck_assert_int_eq(rh_relation(&reg, "relay-a", "app-4"), OTHER);

    atbus_relation r;
    ck_assert_int_eq(atb_route_relation(&reg, "app-1", "ghost", &r),
                     ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_route_relation(&reg, "ghost", "app-1", &r),
                     ATBUS_ENOTFOUND);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_relation_backups_take_over)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app", "primary,backup-1,backup-2");
    rh_set(&reg, "primary", "top-p");
    rh_set(&reg, "backup-1", "top-b");
    rh_set(&reg, "backup-2", "top-b");
    rh_set(&reg, "peer", "backup-1");
    static const struct {
        const char *down; /* set down before the checks, NULL: none */
        const char *up;   /* set up before the checks, NULL: none */
        const char *active;
        const char *top;
    } steps[] = {
        {NULL, NULL, "primary", "top-p"},
        {"primary", NULL, "backup-1", "top-b"},
        {"backup-1", NULL, "backup-2", "top-b"},
        {NULL, "primary", "primary", "top-p"},
        {"primary", NULL, "backup-2", "top-b"},
        {"backup-2", NULL, NULL, NULL},
        {NULL, "backup-1", "backup-1", "top-b"},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].down != NULL) {
            ck_assert_int_eq(atb_route_set_up(&reg, steps[i].down, 0),
                             ATBUS_OK);
        }
        if (steps[i].up != NULL) {
            ck_assert_int_eq(atb_route_set_up(&reg, steps[i].up, 1), ATBUS_OK);
        }
        const char *relays[] = {"primary", "backup-1", "backup-2"};
        for (size_t k = 0; k < 3; k++) {
            int active = steps[i].active != NULL &&
                         strcmp(relays[k], steps[i].active) == 0;
            ck_assert_msg(rh_relation(&reg, "app", relays[k]) ==
                              (active ? UP1 : OTHER),
                          "step %zu: %s", i, relays[k]);
        }
        if (steps[i].top != NULL) {
            ck_assert_int_eq(rh_relation(&reg, "app", steps[i].top), UPN);
            ck_assert_int_eq(rh_relation(&reg, steps[i].top, "app"), DOWNN);
        } else {
            ck_assert_int_eq(rh_relation(&reg, "app", "top-b"), OTHER);
        }
        int with_peer =
            steps[i].active != NULL && strcmp(steps[i].active, "backup-1") == 0;
        ck_assert_int_eq(rh_relation(&reg, "app", "peer"),
                         with_peer ? PEER : OTHER);
    }
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- deep chains ---- */

#define DEEP 1500

static void
deep_name(char *buf, size_t size, int i)
{
    snprintf(buf, size, "d%d", i);
}

START_TEST(test_relation_deep_chain)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    char name[16], up[16];
    /* Leaves first, so every report but the first goes through the cycle
     * check of a node something already hangs under. */
    for (int i = DEEP; i > 0; i--) {
        deep_name(name, sizeof(name), i);
        deep_name(up, sizeof(up), i - 1);
        rh_set(&reg, name, up);
    }
    rh_set(&reg, "side", "d700");
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d0"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "d0", "d1500"), DOWNN);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d1499"), UP1);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d1498"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "d1498", "d1500"), DOWNN);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d750"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "d750", "d1500"), DOWNN);
    ck_assert_int_eq(rh_relation(&reg, "side", "d701"), PEER);
    ck_assert_int_eq(rh_relation(&reg, "side", "d1500"), OTHER);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "side"), OTHER);
    ck_assert_int_eq(rh_relation(&reg, "d0", "side"), DOWNN);

    /* The cache: built once per version, then reused as is. */
    atb_route_node *leaf = atb_route_find(&reg, "d1500");
    uint64_t v = atb_route_version(&reg);
    ck_assert_uint_eq(leaf->chain_version, v);
    ck_assert_uint_eq(leaf->depth, DEEP);
    atb_route_node **chain = leaf->chain;
    for (int i = 0; i < 10000; i++) {
        deep_name(up, sizeof(up), i % DEEP);
        atbus_relation r = rh_relation(&reg, "d1500", up);
        ck_assert_int_eq(r, i % DEEP == DEEP - 1 ? UP1 : UPN);
    }
    ck_assert_ptr_eq(leaf->chain, chain);
    ck_assert_uint_eq(leaf->chain_version, v);

    /* A new root above d0: every chain grows by one after the bump. */
    rh_set(&reg, "d0", "root");
    ck_assert_uint_gt(atb_route_version(&reg), v);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "root"), UPN);
    ck_assert_uint_eq(leaf->depth, DEEP + 1);
    ck_assert_uint_eq(leaf->chain_version, atb_route_version(&reg));
    ck_assert_int_eq(rh_relation(&reg, "root", "d1"), DOWNN);
    ck_assert_int_eq(rh_relation(&reg, "root", "d0"), DOWN1);

    /* Cut in the middle: the lower half loses everything above d750. */
    ck_assert_int_eq(atb_route_set_up(&reg, "d750", 0), ATBUS_OK);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d751"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "d750"), OTHER);
    ck_assert_int_eq(rh_relation(&reg, "d1500", "root"), OTHER);
    ck_assert_int_eq(rh_relation(&reg, "d750", "root"), UPN);
    ck_assert_uint_eq(leaf->depth, DEEP - 751);
    /* A second, shorter way round the cut. */
    rh_set(&reg, "d751", "d750,d100");
    ck_assert_int_eq(rh_relation(&reg, "d1500", "root"), UPN);
    ck_assert_int_eq(rh_relation(&reg, "d100", "d751"), DOWN1);
    ck_assert_uint_eq(leaf->depth, DEEP - 751 + 102);
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- random forests against a plain chain walk ---- */

#define RN 1000
#define RMAXUPS 3

/* The test's own model of the registry, with the same rules written the
 * simple way. */
typedef struct model_node {
    int known;
    int reported;
    int up;
    int ups[RMAXUPS];
    int nups;
} model_node;

typedef struct model {
    model_node n[RN];
    int mark[RN];
    int epoch;
} model;

static int
model_refs(const model *m, int x)
{
    int refs = 0;
    for (int i = 0; i < RN; i++) {
        for (int k = 0; k < m->n[i].nups; k++) {
            refs += m->n[i].ups[k] == x;
        }
    }
    return refs;
}

static int
model_active(const model *m, int x)
{
    for (int k = 0; k < m->n[x].nups; k++) {
        if (m->n[m->n[x].ups[k]].up) {
            return m->n[x].ups[k];
        }
    }
    return -1;
}

/* model_reaches: can `from` reach `to` over any listed upstream? */
static int
model_reaches(model *m, int from, int to)
{
    if (from == to) {
        return 1;
    }
    if (m->mark[from] == m->epoch) {
        return 0;
    }
    m->mark[from] = m->epoch;
    for (int k = 0; k < m->n[from].nups; k++) {
        if (model_reaches(m, m->n[from].ups[k], to)) {
            return 1;
        }
    }
    return 0;
}

static void
model_drop_list(model *m, int x)
{
    int old[RMAXUPS];
    int nold = m->n[x].nups;
    memcpy(old, m->n[x].ups, sizeof(old));
    m->n[x].nups = 0;
    for (int k = 0; k < nold; k++) {
        int u = old[k];
        if (!m->n[u].reported && model_refs(m, u) == 0) {
            memset(&m->n[u], 0, sizeof(m->n[u]));
        }
    }
}

static int
model_set(model *m, int x, const int *ups, int n)
{
    m->epoch++;
    for (int k = 0; k < n; k++) {
        if (model_reaches(m, ups[k], x)) {
            return ATBUS_EROUTE_CYCLE;
        }
    }
    for (int k = 0; k < n; k++) {
        if (!m->n[ups[k]].known) {
            m->n[ups[k]] = (model_node){.known = 1, .up = 1};
        }
    }
    int old[RMAXUPS];
    int nold = m->n[x].nups;
    memcpy(old, m->n[x].ups, sizeof(old));
    memcpy(m->n[x].ups, ups, (size_t)n * sizeof(*ups));
    m->n[x].nups = n;
    for (int k = 0; k < nold; k++) {
        int u = old[k];
        if (!m->n[u].reported && model_refs(m, u) == 0) {
            memset(&m->n[u], 0, sizeof(m->n[u]));
        }
    }
    if (!m->n[x].reported) {
        m->n[x].up = 1;
    }
    m->n[x].known = 1;
    m->n[x].reported = 1;
    return ATBUS_OK;
}

static int
model_remove(model *m, int x)
{
    if (!m->n[x].known) {
        return ATBUS_ENOTFOUND;
    }
    model_drop_list(m, x);
    m->n[x].reported = 0;
    m->n[x].up = 0;
    if (model_refs(m, x) == 0) {
        memset(&m->n[x], 0, sizeof(m->n[x]));
    }
    return ATBUS_OK;
}

static void
model_set_up(model *m, int x, int up)
{
    if (!m->n[x].known) {
        m->n[x] = (model_node){.known = 1};
    }
    m->n[x].reported = 1;
    m->n[x].up = up;
}

/* model_relation walks chains node by node: the reference. */
static atbus_relation
model_relation(const model *m, int x, int y)
{
    if (x == y) {
        return SELF;
    }
    int ux = model_active(m, x);
    int uy = model_active(m, y);
    if (ux == y) {
        return UP1;
    }
    if (uy == x) {
        return DOWN1;
    }
    if (ux >= 0 && ux == uy) {
        return PEER;
    }
    for (int n = ux; n >= 0; n = model_active(m, n)) {
        if (n == y) {
            return UPN;
        }
    }
    for (int n = uy; n >= 0; n = model_active(m, n)) {
        if (n == x) {
            return DOWNN;
        }
    }
    return OTHER;
}

static void
rname(char *buf, int i)
{
    snprintf(buf, 16, "n%d", i);
}

/* random_pick biases upstreams to lower numbers, which makes forests;
 * now and then any node, which makes cycles to reject; now and then the
 * node just below, which makes long chains. */
static int
random_pick(uint64_t *rng, int x)
{
    uint64_t r = atb_test_rng(rng) % 16;
    if (r == 0 || x == 0) {
        return (int)(atb_test_rng(rng) % RN);
    }
    if (r < 4) {
        return x - 1;
    }
    return (int)(atb_test_rng(rng) % (uint64_t)x);
}

/* What a random run covered: each relation and result seen. */
static unsigned long seen_relation[OTHER + 1];
static unsigned long seen_cycles;

static void
compare_pair(atb_route_registry *reg, const model *m, int x, int y,
             uint64_t seed, int op)
{
    char nx[16], ny[16];
    rname(nx, x);
    rname(ny, y);
    atbus_relation got = 0;
    int rc = atb_route_relation(reg, nx, ny, &got);
    if (!m->n[x].known || !m->n[y].known) {
        ck_assert_msg(rc == ATBUS_ENOTFOUND, "seed %llu op %d: %s %s: %s",
                      (unsigned long long)seed, op, nx, ny, atbus_err_name(rc));
        return;
    }
    atbus_relation want = model_relation(m, x, y);
    ck_assert_msg(rc == ATBUS_OK && got == want,
                  "seed %llu op %d: relation(%s, %s) = %s (%s), want %s",
                  (unsigned long long)seed, op, nx, ny,
                  atbus_relation_name(got), atbus_err_name(rc),
                  atbus_relation_name(want));
    seen_relation[want]++;
}

static void
random_op(atb_route_registry *reg, model *m, uint64_t *rng, uint64_t seed,
          int op)
{
    int x = (int)(atb_test_rng(rng) % RN);
    char nx[16];
    rname(nx, x);
    uint64_t kind = atb_test_rng(rng) % 10;
    int rc, want;
    if (kind < 6) {
        int ups[RMAXUPS];
        int n = (int)(atb_test_rng(rng) % (RMAXUPS + 1));
        char names[RMAXUPS][16];
        const char *list[RMAXUPS];
        int k = 0;
        for (int tries = 0; k < n && tries < 8; tries++) {
            int u = random_pick(rng, x);
            int dup = u == x;
            for (int j = 0; j < k; j++) {
                dup |= ups[j] == u;
            }
            if (!dup) {
                ups[k] = u;
                rname(names[k], u);
                list[k] = names[k];
                k++;
            }
        }
        rc = atb_route_set_upstreams(reg, nx, list, (size_t)k, NULL);
        want = model_set(m, x, ups, k);
    } else if (kind < 8) {
        rc = atb_route_remove(reg, nx);
        want = model_remove(m, x);
    } else {
        int up = (int)(atb_test_rng(rng) % 4 != 0);
        rc = atb_route_set_up(reg, nx, up);
        model_set_up(m, x, up);
        want = ATBUS_OK;
    }
    ck_assert_msg(rc == want, "seed %llu op %d on %s: %s, want %s",
                  (unsigned long long)seed, op, nx, atbus_err_name(rc),
                  atbus_err_name(want));
    seen_cycles += rc == ATBUS_EROUTE_CYCLE;
}

START_TEST(test_relation_random_forests)
{
    static model m;
    uint64_t seed = 0x5eed0000u + (uint64_t)_i;
    uint64_t rng = seed;
    memset(&m, 0, sizeof(m));
    memset(seen_relation, 0, sizeof(seen_relation));
    seen_cycles = 0;
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    /* Start from a forest over every node, so the queries find them. */
    for (int x = 0; x < RN; x++) {
        char nx[16], nu[16];
        rname(nx, x);
        int u = x == 0 ? -1 : (int)(atb_test_rng(&rng) % (uint64_t)x);
        rname(nu, u);
        const char *list[1] = {nu};
        ck_assert_int_eq(
            atb_route_set_upstreams(&reg, nx, list, u >= 0 ? 1 : 0, NULL),
            ATBUS_OK);
        ck_assert_int_eq(model_set(&m, x, &u, u >= 0 ? 1 : 0), ATBUS_OK);
    }
    for (int op = 0; op < 1500; op++) {
        random_op(&reg, &m, &rng, seed, op);
        for (int q = 0; q < 40; q++) {
            int x = (int)(atb_test_rng(&rng) % RN);
            int y = q % 4 == 0 ? x : (int)(atb_test_rng(&rng) % RN);
            compare_pair(&reg, &m, x, y, seed, op);
            /* Pairs along a chain, where the transitive cases are. */
            int z = model_active(&m, x);
            for (int hops = 0; z >= 0 && hops < 3; hops++) {
                z = model_active(&m, z);
            }
            if (z >= 0) {
                compare_pair(&reg, &m, x, z, seed, op);
                compare_pair(&reg, &m, z, x, seed, op);
            }
        }
        if (op % 250 == 0) {
            rh_verify(&reg);
            size_t known = 0;
            for (int i = 0; i < RN; i++) {
                known += (size_t)m.n[i].known;
            }
            ck_assert_msg(atb_route_count(&reg) == known, "seed %llu op %d",
                          (unsigned long long)seed, op);
        }
    }
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
    /* The run met every relation and rejected some cycles. */
    for (int r = SELF; r <= OTHER; r++) {
        ck_assert_msg(seen_relation[r] > 0, "seed %llu never saw %s",
                      (unsigned long long)seed,
                      atbus_relation_name((atbus_relation)r));
    }
    ck_assert_msg(seen_cycles > 0, "seed %llu rejected no cycle",
                  (unsigned long long)seed);
}
END_TEST

static Suite *
relation_suite(void)
{
    Suite *s = suite_create("route_relation");
    TCase *tc = atb_test_case("relation", 300);
    tcase_add_test(tc, test_relation_tree);
    tcase_add_test(tc, test_relation_backups_take_over);
    tcase_add_test(tc, test_relation_deep_chain);
    tcase_add_loop_test(tc, test_relation_random_forests, 0, 12);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(relation_suite());
}
