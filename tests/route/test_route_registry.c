/*
 * The route registry: reports, placeholders, removal, up/down states, the
 * version counter, cycle rejection, name checks, 100 000 nodes, and every
 * allocation failing in turn.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "route/registry.h"
#include "route/relation.h"
#include "route_harness.h"
#include "testing.h"

static atb_route_node *
must_find(atb_route_registry *reg, const char *name)
{
    atb_route_node *n = atb_route_find(reg, name);
    ck_assert_msg(n != NULL, "%s not in the registry", name);
    return n;
}

static const char *
active_name(atb_route_registry *reg, const char *name)
{
    atb_route_node *up = atb_route_active(must_find(reg, name));
    return up != NULL ? up->name : "-";
}

START_TEST(test_registry_empty)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    ck_assert_uint_eq(atb_route_count(&reg), 0);
    ck_assert_uint_eq(atb_route_version(&reg), 1);
    ck_assert_ptr_null(atb_route_find(&reg, "a"));
    atbus_relation r;
    ck_assert_int_eq(atb_route_relation(&reg, "a", "b", &r), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_route_remove(&reg, "a"), ATBUS_ENOTFOUND);
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_report_adds_placeholders)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app-1", "relay-a,relay-b");
    ck_assert_uint_eq(atb_route_count(&reg), 3);
    ck_assert_uint_eq(atb_route_version(&reg), 2);
    atb_route_node *a = must_find(&reg, "relay-a");
    ck_assert_int_eq(a->reported, 0);
    ck_assert_int_eq(a->up, 1);
    ck_assert_uint_eq(a->refs, 1);
    ck_assert_int_eq(must_find(&reg, "app-1")->reported, 1);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-a");

    /* The same list again changes nothing. */
    rh_set(&reg, "app-1", "relay-a,relay-b");
    ck_assert_uint_eq(atb_route_version(&reg), 2);

    /* The order matters: the primary comes first. */
    rh_set(&reg, "app-1", "relay-b,relay-a");
    ck_assert_uint_eq(atb_route_version(&reg), 3);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-b");

    /* Placeholders leave with the last list naming them; a node that
     * reported stays. */
    rh_set(&reg, "relay-c", "");
    rh_set(&reg, "app-1", "relay-c");
    ck_assert_uint_eq(atb_route_count(&reg), 2);
    ck_assert_ptr_null(atb_route_find(&reg, "relay-a"));
    rh_set(&reg, "app-1", "");
    ck_assert_uint_eq(atb_route_count(&reg), 2);
    ck_assert_str_eq(active_name(&reg, "app-1"), "-");
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_shared_upstreams)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app-1", "relay-a,relay-b");
    rh_set(&reg, "app-2", "relay-b,relay-a");
    rh_set(&reg, "app-3", "relay-a");
    ck_assert_uint_eq(must_find(&reg, "relay-a")->refs, 3);
    ck_assert_uint_eq(must_find(&reg, "relay-b")->refs, 2);
    /* A list that grows past its array, then shrinks. */
    rh_set(&reg, "app-3", "relay-a,relay-b,relay-c,relay-d");
    rh_set(&reg, "app-3", "relay-d");
    ck_assert_uint_eq(must_find(&reg, "relay-d")->refs, 1);
    ck_assert_ptr_null(atb_route_find(&reg, "relay-c"));
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_remove)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "relay-a", "top");
    rh_set(&reg, "relay-b", "top");
    rh_set(&reg, "app-1", "relay-a,relay-b");
    rh_set(&reg, "app-2", "relay-a");
    uint64_t v = atb_route_version(&reg);

    /* A relay that leaves but is still listed stays as a down placeholder:
     * its downstreams move to their backups. */
    ck_assert_int_eq(atb_route_remove(&reg, "relay-a"), ATBUS_OK);
    ck_assert_uint_gt(atb_route_version(&reg), v);
    atb_route_node *a = must_find(&reg, "relay-a");
    ck_assert_int_eq(a->up, 0);
    ck_assert_int_eq(a->reported, 0);
    ck_assert_uint_eq(a->nups, 0);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-b");
    ck_assert_str_eq(active_name(&reg, "app-2"), "-");
    /* Its own list went: top is still listed by relay-b. */
    ck_assert_uint_eq(must_find(&reg, "top")->refs, 1);
    rh_verify(&reg);

    /* Reporting again brings it back up. */
    rh_set(&reg, "relay-a", "top");
    ck_assert_int_eq(must_find(&reg, "relay-a")->up, 1);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-a");

    /* A leaf goes with the placeholders only it listed. */
    rh_set(&reg, "app-3", "relay-x");
    ck_assert_int_eq(atb_route_remove(&reg, "app-3"), ATBUS_OK);
    ck_assert_ptr_null(atb_route_find(&reg, "app-3"));
    ck_assert_ptr_null(atb_route_find(&reg, "relay-x"));

    /* A placeholder that was never reported can be removed (marked down)
     * while listed, and disappears when its last list goes. */
    ck_assert_int_eq(atb_route_remove(&reg, "top"), ATBUS_OK);
    ck_assert_int_eq(must_find(&reg, "top")->up, 0);
    ck_assert_str_eq(active_name(&reg, "relay-b"), "-");
    ck_assert_int_eq(atb_route_remove(&reg, "relay-a"), ATBUS_OK);
    ck_assert_int_eq(atb_route_remove(&reg, "relay-b"), ATBUS_OK);
    ck_assert_ptr_null(atb_route_find(&reg, "top"));
    ck_assert_int_eq(atb_route_remove(&reg, "top"), ATBUS_ENOTFOUND);
    ck_assert_int_eq(atb_route_remove(&reg, "nobody"), ATBUS_ENOTFOUND);
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_set_up)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app-1", "relay-a,relay-b,relay-c,relay-d");
    uint64_t v = atb_route_version(&reg);

    ck_assert_int_eq(atb_route_set_up(&reg, "relay-a", 0), ATBUS_OK);
    ck_assert_uint_eq(atb_route_version(&reg), v + 1);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-b");
    /* No change, no bump. */
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-a", 0), ATBUS_OK);
    ck_assert_uint_eq(atb_route_version(&reg), v + 1);
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-b", 0), ATBUS_OK);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-c");
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-c", 0), ATBUS_OK);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-d");
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-d", 0), ATBUS_OK);
    ck_assert_str_eq(active_name(&reg, "app-1"), "-");
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-a", 7), ATBUS_OK);
    ck_assert_str_eq(active_name(&reg, "app-1"), "relay-a");
    ck_assert_int_eq(must_find(&reg, "relay-a")->up, 1);

    /* A state set makes a node stay without lists naming it. */
    rh_set(&reg, "app-1", "relay-a,relay-b,relay-c,relay-e");
    rh_set(&reg, "app-1", "");
    ck_assert_ptr_nonnull(atb_route_find(&reg, "relay-a"));
    ck_assert_ptr_nonnull(atb_route_find(&reg, "relay-c"));
    ck_assert_ptr_null(atb_route_find(&reg, "relay-e"));

    /* An unknown name is added: relations to it exist now. */
    v = atb_route_version(&reg);
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-new", 0), ATBUS_OK);
    ck_assert_uint_eq(atb_route_version(&reg), v + 1);
    /* The state of a node nobody lists changes no chain. */
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-new", 1), ATBUS_OK);
    ck_assert_int_eq(atb_route_set_up(&reg, "relay-new", 0), ATBUS_OK);
    ck_assert_uint_eq(atb_route_version(&reg), v + 1);
    ck_assert_int_eq(must_find(&reg, "relay-new")->up, 0);
    /* Listed while down: it is not the active upstream. */
    rh_set(&reg, "app-2", "relay-new,relay-a");
    ck_assert_str_eq(active_name(&reg, "app-2"), "relay-a");
    /* A report of a node the caller set down keeps it down. */
    rh_set(&reg, "relay-new", "");
    ck_assert_int_eq(must_find(&reg, "relay-new")->up, 0);
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- cycles ---- */

static void
expect_cycle(atb_route_registry *reg, const char *name, const char *ups,
             const char *text)
{
    char *before = rh_dump(reg);
    uint64_t v = atb_route_version(reg);
    const char *list[ATBUS_ROUTE_MAX_UPSTREAMS];
    size_t n = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", ups);
    for (char *t = strtok(buf, ","); t != NULL; t = strtok(NULL, ",")) {
        list[n++] = t;
    }
    atbus_route_error err;
    ck_assert_int_eq(atb_route_set_upstreams(reg, name, list, n, &err),
                     ATBUS_EROUTE_CYCLE);
    ck_assert_msg(strstr(err.text, text) != NULL, "'%s' lacks '%s'", err.text,
                  text);
    char *after = rh_dump(reg);
    ck_assert_str_eq(before, after);
    ck_assert_uint_eq(atb_route_version(reg), v);
    rh_verify(reg);
    free(before);
    free(after);
}

START_TEST(test_registry_cycles)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "a", "b");

    /* Self-loops, for a known and a new node. */
    expect_cycle(&reg, "a", "a", "cycle: a lists itself");
    expect_cycle(&reg, "z", "y,z", "cycle: z lists itself");
    /* Two nodes. */
    expect_cycle(&reg, "b", "a", "cycle: b -> a -> b");

    /* A long cycle: c0 -> c1 -> ... -> c99, then c99 -> c0. */
    char name[32], up[32];
    for (int i = 0; i < 99; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(up, sizeof(up), "c%d", i + 1);
        rh_set(&reg, name, up);
    }
    expect_cycle(&reg, "c99", "c0", "cycle: c99 -> c0 -> c1 -> c2");

    /* Through a backup: d -> [e, f], f -> [g]; g -> d closes d-f-g. */
    rh_set(&reg, "d", "e,f");
    rh_set(&reg, "f", "g");
    expect_cycle(&reg, "g", "h,d", "cycle: g -> d -> f -> g");
    /* ... also while the backup is down: up/down never matters. */
    ck_assert_int_eq(atb_route_set_up(&reg, "f", 0), ATBUS_OK);
    expect_cycle(&reg, "g", "d", "cycle: g -> d -> f -> g");
    /* ... and after the backup left and came back. */
    ck_assert_int_eq(atb_route_remove(&reg, "f"), ATBUS_OK);
    ck_assert_ptr_null(atb_route_find(&reg, "g"));
    rh_set(&reg, "f", "g");
    expect_cycle(&reg, "g", "d", "cycle: g -> d -> f -> g");

    /* Diamonds are not cycles. */
    rh_set(&reg, "p", "q,r");
    rh_set(&reg, "q", "s");
    rh_set(&reg, "r", "s");
    rh_set(&reg, "s", "t");
    expect_cycle(&reg, "t", "x,p", "cycle: t -> p -> q -> s -> t");
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_cycle_text_truncated)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    /* Twenty 60-character names: the path does not fit in the text. */
    char names[20][64];
    for (int i = 0; i < 20; i++) {
        memset(names[i], 'n', 60);
        snprintf(names[i] + 56, 8, "%04d", i);
    }
    for (int i = 0; i < 19; i++) {
        rh_set(&reg, names[i], names[i + 1]);
    }
    atbus_route_error err;
    const char *list[1] = {names[0]};
    ck_assert_int_eq(atb_route_set_upstreams(&reg, names[19], list, 1, &err),
                     ATBUS_EROUTE_CYCLE);
    size_t len = strlen(err.text);
    ck_assert_uint_eq(len, sizeof(err.text) - 1);
    ck_assert_str_eq(err.text + len - 3, "...");
    ck_assert(strncmp(err.text, "cycle: ", 7) == 0);
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- names and arguments ---- */

static const char
    *const bad_names[] =
        {
            "",       "Upper",    "-a",      "a-",      "a..b", ".a",
            "a_b",    "a b",      "a/b",     "ünicode", "a.",   "a.-b",
            "x.y-.z", "toolong0", "labelx0", /* the last two are filled below */
};
#define NBAD (sizeof(bad_names) / sizeof(bad_names[0]))

static const char *
bad_name(size_t i, char *buf)
{
    if (i == NBAD - 2) {
        memset(buf, 'a', 254); /* 254 characters: one too many */
        for (size_t k = 60; k < 254; k += 61) {
            buf[k] = '.';
        }
        buf[254] = '\0';
        return buf;
    }
    if (i == NBAD - 1) {
        memset(buf, 'b', 64); /* one label of 64 characters */
        buf[64] = '\0';
        return buf;
    }
    return bad_names[i];
}

START_TEST(test_registry_invalid_names)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app-1", "relay-a");
    char *before = rh_dump(&reg);
    uint64_t v = atb_route_version(&reg);
    char buf[300];
    const char *bad = bad_name((size_t)_i, buf);
    atbus_route_error err;
    const char *list[2] = {"relay-a", bad};

    ck_assert_int_eq(atb_route_set_upstreams(&reg, bad, list, 1, &err),
                     ATBUS_EINVAL);
    ck_assert_msg(strncmp(err.text, "node '", 6) == 0, "%s", err.text);
    ck_assert_int_eq(atb_route_set_upstreams(&reg, "app-1", list, 2, &err),
                     ATBUS_EINVAL);
    ck_assert_msg(strncmp(err.text, "upstream '", 10) == 0, "%s", err.text);
    ck_assert_int_eq(atb_route_remove(&reg, bad), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_set_up(&reg, bad, 1), ATBUS_EINVAL);
    atbus_relation r;
    ck_assert_int_eq(atb_route_relation(&reg, bad, "app-1", &r), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_relation(&reg, "app-1", bad, &r), ATBUS_EINVAL);

    char *after = rh_dump(&reg);
    ck_assert_str_eq(before, after);
    ck_assert_uint_eq(atb_route_version(&reg), v);
    free(before);
    free(after);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_registry_invalid_reports)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_set(&reg, "app-1", "relay-a");
    char *before = rh_dump(&reg);
    atbus_route_error err;

    ck_assert_int_eq(rh_report(&reg, "app-1", "relay-b,relay-a,relay-b"),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_set_upstreams(&reg, "app-1", NULL, 1, &err),
                     ATBUS_EINVAL);
    ck_assert_str_eq(err.text, "upstream list is NULL");
    ck_assert_int_eq(atb_route_set_upstreams(&reg, NULL, NULL, 0, &err),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_set_upstreams(NULL, "a", NULL, 0, &err),
                     ATBUS_EINVAL);
    const char *nul[1] = {NULL};
    ck_assert_int_eq(atb_route_set_upstreams(&reg, "app-1", nul, 1, NULL),
                     ATBUS_EINVAL);
    const char *many[ATBUS_ROUTE_MAX_UPSTREAMS + 1];
    char names[ATBUS_ROUTE_MAX_UPSTREAMS + 1][16];
    for (int i = 0; i <= ATBUS_ROUTE_MAX_UPSTREAMS; i++) {
        snprintf(names[i], sizeof(names[i]), "r%d", i);
        many[i] = names[i];
    }
    ck_assert_int_eq(atb_route_set_upstreams(&reg, "app-1", many,
                                             ATBUS_ROUTE_MAX_UPSTREAMS + 1,
                                             &err),
                     ATBUS_EINVAL);
    ck_assert_str_eq(err.text, "17 upstreams, more than 16");
    char *after = rh_dump(&reg);
    ck_assert_str_eq(before, after);
    /* The maximum itself is fine. */
    ck_assert_int_eq(atb_route_set_upstreams(&reg, "app-1", many,
                                             ATBUS_ROUTE_MAX_UPSTREAMS, &err),
                     ATBUS_OK);
    ck_assert_uint_eq(must_find(&reg, "app-1")->nups,
                      ATBUS_ROUTE_MAX_UPSTREAMS);
    ck_assert_int_eq(atb_route_remove(NULL, "a"), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_set_up(NULL, "a", 1), ATBUS_EINVAL);
    atbus_relation r;
    ck_assert_int_eq(atb_route_relation(NULL, "a", "b", &r), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_relation(&reg, "app-1", "app-1", NULL),
                     ATBUS_EINVAL);
    free(before);
    free(after);
    rh_verify(&reg);
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- scale ---- */

START_TEST(test_registry_100k_nodes)
{
    /* 10 top relays, 1 000 relays under them (primary and backup), 98 990
     * apps under those (primary and backup): 100 000 nodes. */
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    char name[32], a[32], b[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "relay-%d", i);
        snprintf(a, sizeof(a), "top-%d", i % 10);
        snprintf(b, sizeof(b), "top-%d", (i + 1) % 10);
        const char *ups[2] = {a, b};
        ck_assert_int_eq(atb_route_set_upstreams(&reg, name, ups, 2, NULL),
                         ATBUS_OK);
    }
    for (int i = 0; i < 98990; i++) {
        snprintf(name, sizeof(name), "app-%d.ns-%d", i, i % 37);
        snprintf(a, sizeof(a), "relay-%d", i % 1000);
        snprintf(b, sizeof(b), "relay-%d", (i * 7 + 3) % 1000);
        const char *ups[2] = {a, b};
        ck_assert_int_eq(
            atb_route_set_upstreams(
                &reg, name, ups, i % 1000 == (i * 7 + 3) % 1000 ? 1 : 2, NULL),
            ATBUS_OK);
    }
    ck_assert_uint_eq(atb_route_count(&reg), 100000);
    rh_verify(&reg);
    ck_assert_int_eq(rh_relation(&reg, "app-0.ns-0", "relay-0"),
                     ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    ck_assert_int_eq(rh_relation(&reg, "app-0.ns-0", "top-0"),
                     ATBUS_RELATION_TRANSITIVE_UPSTREAM);
    ck_assert_int_eq(rh_relation(&reg, "top-0", "app-0.ns-0"),
                     ATBUS_RELATION_TRANSITIVE_DOWNSTREAM);
    ck_assert_int_eq(rh_relation(&reg, "app-0.ns-0", "app-1000.ns-1"),
                     ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(rh_relation(&reg, "app-0.ns-0", "app-1.ns-1"),
                     ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    /* A top relay going down moves a hundred relays to their backups. */
    ck_assert_int_eq(atb_route_set_up(&reg, "top-0", 0), ATBUS_OK);
    ck_assert_int_eq(rh_relation(&reg, "app-0.ns-0", "top-1"),
                     ATBUS_RELATION_TRANSITIVE_UPSTREAM);
    ck_assert_uint_gt(atb_route_registry_bytes(&reg), 100000 * 64);
    atb_route_registry_fini(&reg);
}
END_TEST

/* ---- allocation failures ---- */

enum { OP_SET, OP_REMOVE, OP_UP, OP_DOWN, OP_RELATION };

typedef struct step {
    int op;
    char a[32];
    char b[96]; /* OP_SET: comma-separated list; OP_RELATION: y */
} step;

#define MAX_STEPS 160

static size_t
script(step *s)
{
    size_t n = 0;
#define STEP(o, x, y)                                                          \
    do {                                                                       \
        s[n].op = (o);                                                         \
        snprintf(s[n].a, sizeof(s[n].a), "%s", (x));                           \
        snprintf(s[n].b, sizeof(s[n].b), "%s", (y));                           \
        n++;                                                                   \
    } while (0)
    STEP(OP_SET, "app-0", "relay-a,relay-b");
    STEP(OP_SET, "relay-a", "top");
    STEP(OP_SET, "relay-b", "top,top-2");
    for (int i = 1; i < 24; i++) {
        char name[32];
        snprintf(name, sizeof(name), "app-%d", i);
        STEP(OP_SET, name, i % 2 ? "relay-a" : "relay-b,relay-a");
    }
    STEP(OP_RELATION, "app-0", "top");
    STEP(OP_RELATION, "top", "app-3");
    STEP(OP_RELATION, "app-5", "app-1");
    STEP(OP_DOWN, "relay-a", "");
    STEP(OP_RELATION, "app-0", "top");
    STEP(OP_SET, "top", "app-0"); /* a cycle through relay-b */
    STEP(OP_SET, "app-0", "relay-c,relay-a,relay-b,relay-d");
    STEP(OP_REMOVE, "relay-b", "");
    STEP(OP_UP, "relay-new", "");
    STEP(OP_REMOVE, "app-3", "");
    STEP(OP_UP, "relay-a", "");
    for (int i = 0; i < 80; i++) {
        char name[32], up[32];
        snprintf(name, sizeof(name), "deep-%d", i + 1);
        snprintf(up, sizeof(up), "deep-%d", i);
        STEP(OP_SET, name, up);
    }
    STEP(OP_RELATION, "deep-80", "deep-0");
    STEP(OP_SET, "deep-0", "top");
    STEP(OP_RELATION, "deep-80", "top");
    STEP(OP_RELATION, "deep-79", "deep-0");
    STEP(OP_SET, "top", "deep-80");
#undef STEP
    ck_assert_uint_le(n, MAX_STEPS);
    return n;
}

static int
run_step(atb_route_registry *reg, const step *s, atbus_relation *rel)
{
    *rel = 0;
    switch (s->op) {
    case OP_SET:
        return rh_report(reg, s->a, s->b);
    case OP_REMOVE:
        return atb_route_remove(reg, s->a);
    case OP_UP:
        return atb_route_set_up(reg, s->a, 1);
    case OP_DOWN:
        return atb_route_set_up(reg, s->a, 0);
    default:
        return atb_route_relation(reg, s->a, s->b, rel);
    }
}

START_TEST(test_registry_allocation_failures)
{
    static step steps[MAX_STEPS];
    size_t nsteps = script(steps);
    int want[MAX_STEPS];
    atbus_relation want_rel[MAX_STEPS];

    /* The reference run, without failures. */
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    for (size_t i = 0; i < nsteps; i++) {
        want[i] = run_step(&reg, &steps[i], &want_rel[i]);
        ck_assert_msg(want[i] == ATBUS_OK || want[i] == ATBUS_EROUTE_CYCLE,
                      "step %zu: %s", i, atbus_err_name(want[i]));
    }
    char *want_dump = rh_dump(&reg);
    atb_route_registry_fini(&reg);

    /* Fail the nth allocation for every n until a run sees none: each
     * failure is ATBUS_ENOMEM, changes nothing, and the same step then
     * succeeds as in the reference run. */
    int clean = 0;
    unsigned long n;
    for (n = 1; n < 10000 && !clean; n++) {
        long live = atb_alloc_live();
        int saw_enomem = 0;
        atb_route_registry_init(&reg);
        atb_alloc_fail_nth(n);
        for (size_t i = 0; i < nsteps; i++) {
            /* Only the first failure of a run needs the state before it:
             * the hook is disarmed once a failure is seen. */
            char *before = saw_enomem ? NULL : rh_dump(&reg);
            uint64_t v = atb_route_version(&reg);
            atbus_relation rel;
            int rc = run_step(&reg, &steps[i], &rel);
            if (rc == ATBUS_ENOMEM) {
                ck_assert(atb_alloc_failed());
                char *after = rh_dump(&reg);
                ck_assert_msg(strcmp(before, after) == 0,
                              "n=%lu step %zu changed the registry", n, i);
                ck_assert_uint_eq(atb_route_version(&reg), v);
                free(after);
                saw_enomem = 1;
                atb_alloc_fail_nth(0);
                rh_verify(&reg);
                rc = run_step(&reg, &steps[i], &rel);
            }
            free(before);
            ck_assert_msg(rc == want[i], "n=%lu step %zu: %s, want %s", n, i,
                          atbus_err_name(rc), atbus_err_name(want[i]));
            ck_assert_int_eq(rel, want_rel[i]);
        }
        /* A failure is disarmed as soon as it is reported: one still
         * armed was swallowed. */
        ck_assert_msg(!atb_alloc_failed(), "n=%lu: a failure went unreported",
                      n);
        clean = !saw_enomem;
        atb_alloc_fail_nth(0);
        rh_verify(&reg);
        char *dump = rh_dump(&reg);
        ck_assert_str_eq(dump, want_dump);
        free(dump);
        atb_route_registry_fini(&reg);
        ck_assert_int_eq(atb_alloc_live(), live);
    }
    ck_assert(clean);
    /* The script allocates a lot: the sweep really ran. */
    ck_assert_uint_gt(n, 50);
    free(want_dump);
}
END_TEST

/* ---- the public handle ---- */

START_TEST(test_registry_public_api)
{
    atbus_route_registry *reg = NULL;
    ck_assert_int_eq(atbus_route_registry_new(NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_registry_new(&reg), ATBUS_OK);
    ck_assert_uint_eq(atbus_route_registry_version(reg), 1);
    const char *ups[2] = {"relay-1.ns1", "relay-2.ns1"};
    atbus_route_error err;
    ck_assert_int_eq(
        atbus_route_registry_set_upstreams(reg, "app-1.ns1", ups, 2, &err),
        ATBUS_OK);
    const char *top[1] = {"transit"};
    ck_assert_int_eq(
        atbus_route_registry_set_upstreams(reg, "relay-1.ns1", top, 1, &err),
        ATBUS_OK);
    ck_assert_uint_eq(atbus_route_registry_version(reg), 3);
    atbus_relation r;
    ck_assert_int_eq(
        atbus_route_registry_relation(reg, "app-1.ns1", "transit", &r),
        ATBUS_OK);
    ck_assert_int_eq(r, ATBUS_RELATION_TRANSITIVE_UPSTREAM);
    ck_assert_str_eq(atbus_relation_name(r), "TRANSITIVE_UPSTREAM");
    ck_assert_int_eq(atbus_route_registry_set_up(reg, "relay-1.ns1", 0),
                     ATBUS_OK);
    ck_assert_int_eq(
        atbus_route_registry_relation(reg, "app-1.ns1", "relay-2.ns1", &r),
        ATBUS_OK);
    ck_assert_int_eq(r, ATBUS_RELATION_IMMEDIATE_UPSTREAM);
    const char *loop[1] = {"app-1.ns1"};
    ck_assert_int_eq(
        atbus_route_registry_set_upstreams(reg, "transit", loop, 1, &err),
        ATBUS_EROUTE_CYCLE);
    ck_assert_str_eq(err.text, "cycle: transit -> app-1.ns1 -> relay-1.ns1 "
                               "-> transit");
    ck_assert_int_eq(atbus_route_registry_remove(reg, "app-1.ns1"), ATBUS_OK);
    ck_assert_int_eq(atbus_route_registry_remove(reg, "app-1.ns1"),
                     ATBUS_ENOTFOUND);
    ck_assert_int_eq(
        atbus_route_registry_set_upstreams(NULL, "a", NULL, 0, NULL),
        ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_registry_remove(NULL, "a"), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_registry_set_up(NULL, "a", 1), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_registry_relation(NULL, "a", "a", &r),
                     ATBUS_EINVAL);
    ck_assert_uint_eq(atbus_route_registry_version(NULL), 0);
    atbus_route_registry_free(reg);
    atbus_route_registry_free(NULL);

    atb_alloc_fail_nth(1);
    reg = NULL;
    ck_assert_int_eq(atbus_route_registry_new(&reg), ATBUS_ENOMEM);
    ck_assert_ptr_null(reg);
    atb_alloc_fail_nth(0);
}
END_TEST

START_TEST(test_registry_names_of_enums)
{
    static const char *const relations[] = {
        "?",
        "SELF",
        "IMMEDIATE_UPSTREAM",
        "IMMEDIATE_DOWNSTREAM",
        "SAME_UPSTREAM_PEER",
        "TRANSITIVE_UPSTREAM",
        "TRANSITIVE_DOWNSTREAM",
        "OTHER_UPSTREAM_PEER",
        "?",
    };
    for (int i = 0; i < 9; i++) {
        ck_assert_str_eq(atbus_relation_name((atbus_relation)i), relations[i]);
    }
    ck_assert_str_eq(atbus_hop_kind_name(ATBUS_HOP_LOCAL), "LOCAL");
    ck_assert_str_eq(atbus_hop_kind_name(ATBUS_HOP_DIRECT), "DIRECT");
    ck_assert_str_eq(atbus_hop_kind_name(ATBUS_HOP_VIA_DOWNSTREAM),
                     "VIA_DOWNSTREAM");
    ck_assert_str_eq(atbus_hop_kind_name(ATBUS_HOP_VIA_UPSTREAM),
                     "VIA_UPSTREAM");
    ck_assert_str_eq(atbus_hop_kind_name(ATBUS_HOP_VIA_TARGET_RELAY),
                     "VIA_TARGET_RELAY");
    ck_assert_str_eq(atbus_hop_kind_name((atbus_hop_kind)0), "?");
    ck_assert_str_eq(atbus_hop_state_name(ATBUS_HOP_READY), "READY");
    ck_assert_str_eq(atbus_hop_state_name(ATBUS_HOP_CONNECTING), "CONNECTING");
    ck_assert_str_eq(atbus_hop_state_name(ATBUS_HOP_UNREACHABLE),
                     "UNREACHABLE");
    ck_assert_str_eq(atbus_hop_state_name((atbus_hop_state)9), "?");
}
END_TEST

static Suite *
registry_suite(void)
{
    Suite *s = suite_create("route_registry");
    TCase *tc = atb_test_case("registry", 120);
    tcase_add_test(tc, test_registry_empty);
    tcase_add_test(tc, test_registry_report_adds_placeholders);
    tcase_add_test(tc, test_registry_shared_upstreams);
    tcase_add_test(tc, test_registry_remove);
    tcase_add_test(tc, test_registry_set_up);
    tcase_add_test(tc, test_registry_cycles);
    tcase_add_test(tc, test_registry_cycle_text_truncated);
    tcase_add_loop_test(tc, test_registry_invalid_names, 0, (int)NBAD);
    tcase_add_test(tc, test_registry_invalid_reports);
    tcase_add_test(tc, test_registry_100k_nodes);
    tcase_add_test(tc, test_registry_allocation_failures);
    tcase_add_test(tc, test_registry_public_api);
    tcase_add_test(tc, test_registry_names_of_enums);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(registry_suite());
}
