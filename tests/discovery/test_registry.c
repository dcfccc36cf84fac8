/*
 * The embedded registry: put (copy, version rule, no-op on identical
 * records), get, remove, iteration, change callbacks and what they may
 * not do, growth, relay selection, and allocation failures that must
 * leave the registry as it was.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

/* What the change callback saw. */
struct seen {
    int puts;
    int deletes;
    char last[64];
    int nested_rc;   /* what a change attempted inside the callback got */
    int try_nested;  /* attempt one */
    size_t count_in; /* atbus_registry_count seen inside */
};

static void
on_change(atbus_registry *reg, enum atbus_registry_event ev,
          const atbus_record *rec, void *arg)
{
    struct seen *s = arg;
    if (ev == ATBUS_REGISTRY_PUT) {
        s->puts++;
    } else {
        ck_assert_int_eq(ev, ATBUS_REGISTRY_DELETE);
        s->deletes++;
    }
    snprintf(s->last, sizeof(s->last), "%s", rec->name);
    s->count_in = atbus_registry_count(reg, ATBUS_REGISTRY_NODES);
    if (s->try_nested) {
        atbus_record r;
        disc_node(&r, "nested", NULL, NULL);
        s->nested_rc = atbus_registry_put(reg, &r, NULL);
        atbus_record_fini(&r);
        ck_assert_int_eq(
            atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, rec->name),
            ATBUS_EINVAL);
        ck_assert_int_eq(
            atbus_registry_load_yaml_string(reg, "nodes: []", 10, NULL),
            ATBUS_EINVAL);
        /* Reads are fine. */
        const atbus_record *got = NULL;
        if (ev == ATBUS_REGISTRY_PUT) {
            ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, rec->name, &got));
            ck_assert_ptr_eq(got, rec);
        }
    }
}

static atbus_registry *
registry(struct seen *s)
{
    atbus_registry *reg = NULL;
    ok(atbus_registry_new(&reg));
    if (s != NULL) {
        memset(s, 0, sizeof(*s));
        atbus_registry_callbacks cbs = {.on_change = on_change};
        ok(atbus_registry_set_callbacks(reg, &cbs, s));
    }
    return reg;
}

START_TEST(test_put_get_copy)
{
    struct seen s;
    atbus_registry *reg = registry(&s);
    atbus_record rec;
    disc_sample_node(&rec);
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(s.puts, 1);
    ck_assert_str_eq(s.last, "app-1.ns1");
    ck_assert_uint_eq(s.count_in, 1);
    /* The registry keeps its own copy. */
    ok(atbus_record_set_string(&rec.metadata.kind, "changed"));
    const atbus_record *got = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &got));
    ck_assert_str_eq(got->metadata.kind, "app");
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), 1);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_GROUPS), 0);
    ck_assert_int_eq(
        atbus_registry_get(reg, ATBUS_REGISTRY_GROUPS, "app-1.ns1", &got),
        ATBUS_ENOTFOUND);
    ck_assert_ptr_null(got);

    /* Groups have their own table; the same name may be in both. */
    atbus_record group;
    disc_sample_group(&group);
    ok(atbus_record_set_string(&group.name, "app-1.ns1"));
    ok(atbus_registry_put(reg, &group, NULL));
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_GROUPS, "app-1.ns1", &got));
    ck_assert_int_eq(got->type, ATBUS_RECORD_GROUP);
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &got));
    ck_assert_int_eq(got->type, ATBUS_RECORD_NODE);
    atbus_record_fini(&group);
    atbus_record_fini(&rec);
    atbus_registry_free(reg);
    atbus_registry_free(NULL);
}
END_TEST

START_TEST(test_version_rule)
{
    struct seen s;
    atbus_registry *reg = registry(&s);
    atbus_record rec;
    disc_sample_node(&rec);
    rec.version = 5;
    ok(atbus_registry_put(reg, &rec, NULL));

    /* Older: refused, with the field and both versions. */
    rec.version = 4;
    ok(atbus_record_set_string(&rec.metadata.kind, "older"));
    atbus_record_error err;
    ck_assert_int_eq(atbus_registry_put(reg, &rec, &err), ATBUS_EEXIST);
    ck_assert_int_eq(err.code, ATBUS_EEXIST);
    ck_assert_str_eq(err.path, "version");
    ck_assert_str_eq(err.name, "app-1.ns1");
    ck_assert(strstr(err.reason, "4") != NULL && strstr(err.reason, "5"));
    const atbus_record *got = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &got));
    ck_assert_str_eq(got->metadata.kind, "app");
    ck_assert_int_eq(s.puts, 1);

    /* Identical: nothing happens, no callback. */
    rec.version = 5;
    ok(atbus_record_set_string(&rec.metadata.kind, "app"));
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(s.puts, 1);

    /* Same version, new content: replaced. */
    ok(atbus_record_set_string(&rec.metadata.kind, "app2"));
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(s.puts, 2);
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &got));
    ck_assert_str_eq(got->metadata.kind, "app2");

    /* Newer: replaced. */
    rec.version = 9;
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(s.puts, 3);
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, "app-1.ns1", &got));
    ck_assert_int_eq(got->version, 9);

    /* After a removal any version goes in again. */
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, "app-1.ns1"));
    rec.version = 1;
    ok(atbus_registry_put(reg, &rec, NULL));
    atbus_record_fini(&rec);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_invalid_refused)
{
    struct seen s;
    atbus_registry *reg = registry(&s);
    atbus_record rec;
    disc_sample_node(&rec);
    ok(atbus_record_set_string(&rec.gateways.items[0].addresses.items[0],
                               "ipv4://10.0.0.1"));
    atbus_record_error err;
    ck_assert_int_eq(atbus_registry_put(reg, &rec, &err), ATBUS_ERECORD);
    ck_assert_str_eq(err.path, "gateways[0].addresses[0]");
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), 0);
    ck_assert_int_eq(s.puts, 0);
    ck_assert_int_eq(atbus_registry_put(reg, NULL, &err), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_put(NULL, &rec, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_new(NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_set_callbacks(NULL, NULL, NULL),
                     ATBUS_EINVAL);
    const atbus_record *got = NULL;
    ck_assert_int_eq(
        atbus_registry_get(reg, (enum atbus_registry_table)4, "x", &got),
        ATBUS_EINVAL);
    ck_assert_int_eq(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, NULL, &got),
                     ATBUS_EINVAL);
    ck_assert_int_eq(
        atbus_registry_remove(reg, (enum atbus_registry_table)0, "x"),
        ATBUS_EINVAL);
    ck_assert_uint_eq(atbus_registry_count(reg, (enum atbus_registry_table)9),
                      0);
    ck_assert_uint_eq(atbus_registry_count(NULL, ATBUS_REGISTRY_NODES), 0);
    atbus_record_fini(&rec);
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_remove_and_callbacks)
{
    struct seen s;
    atbus_registry *reg = registry(&s);
    atbus_record rec;
    disc_node(&rec, "a", NULL, NULL);
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, "zz"),
                     ATBUS_ENOTFOUND);
    ck_assert_int_eq(atbus_registry_remove(reg, ATBUS_REGISTRY_GROUPS, "a"),
                     ATBUS_ENOTFOUND);
    s.try_nested = 1;
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, "a"));
    ck_assert_int_eq(s.deletes, 1);
    ck_assert_str_eq(s.last, "a");
    ck_assert_int_eq(s.nested_rc, ATBUS_EINVAL);
    ck_assert_uint_eq(s.count_in, 0); /* gone before the callback */
    ok(atbus_registry_put(reg, &rec, NULL));
    ck_assert_int_eq(s.nested_rc, ATBUS_EINVAL);
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), 1);
    /* Callbacks cleared: changes go on silently. */
    ok(atbus_registry_set_callbacks(reg, NULL, NULL));
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, "a"));
    ck_assert_int_eq(s.deletes, 1);
    atbus_record_fini(&rec);
    atbus_registry_free(reg);
}
END_TEST

struct walk {
    atbus_registry *reg;
    size_t visits;
    size_t stop_after;
};

static int
walk_one(const atbus_record *rec, void *arg)
{
    struct walk *w = arg;
    ck_assert_ptr_nonnull(rec->name);
    w->visits++;
    /* Changes are refused while iterating. */
    ck_assert_int_eq(
        atbus_registry_remove(w->reg, ATBUS_REGISTRY_NODES, rec->name),
        ATBUS_EINVAL);
    return w->visits == w->stop_after ? 77 : 0;
}

START_TEST(test_growth_iteration_removal)
{
    atbus_registry *reg = registry(NULL);
    enum { N = 1500 };
    for (int i = 0; i < N; i++) {
        atbus_record rec;
        char name[32];
        snprintf(name, sizeof(name), "node-%d.ns1", i);
        disc_node(&rec, name, "ns1", "app");
        rec.version = i;
        ok(atbus_registry_put(reg, &rec, NULL));
        atbus_record_fini(&rec);
    }
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), N);
    for (int i = 0; i < N; i += 2) {
        char name[32];
        snprintf(name, sizeof(name), "node-%d.ns1", i);
        ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, name));
    }
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), N / 2);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "node-%d.ns1", i);
        const atbus_record *got = NULL;
        int rc = atbus_registry_get(reg, ATBUS_REGISTRY_NODES, name, &got);
        ck_assert_int_eq(rc, i % 2 ? ATBUS_OK : ATBUS_ENOTFOUND);
        if (rc == ATBUS_OK) {
            ck_assert_int_eq(got->version, i);
        }
    }
    struct walk w = {reg, 0, 0};
    ok(atbus_registry_foreach(reg, ATBUS_REGISTRY_NODES, walk_one, &w));
    ck_assert_uint_eq(w.visits, N / 2);
    w.visits = 0;
    w.stop_after = 10;
    ck_assert_int_eq(
        atbus_registry_foreach(reg, ATBUS_REGISTRY_NODES, walk_one, &w), 77);
    ck_assert_uint_eq(w.visits, 10);
    ck_assert_int_eq(
        atbus_registry_foreach(reg, ATBUS_REGISTRY_NODES, NULL, NULL),
        ATBUS_EINVAL);
    /* Not busy any more. */
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, "node-1.ns1"));
    atbus_registry_free(reg);
}
END_TEST

START_TEST(test_select_relay)
{
    atbus_registry *reg = registry(NULL);
    atbus_record rec;
    const char *names[] = {"relay-a.ns1", "relay-b.ns1", "relay-c.ns1"};
    for (int i = 0; i < 3; i++) {
        disc_node(&rec, names[i], "ns1", "relay");
        ok(atbus_registry_put(reg, &rec, NULL));
        atbus_record_fini(&rec);
    }
    atbus_record app;
    disc_node(&app, "app-1.ns1", "ns1", "app");
    ok(atbus_record_set_string(&app.advertise_relay.metadata.kind, "relay"));
    const atbus_record *relay = NULL;
    ok(atbus_registry_select_relay(reg, &app, &relay));
    /* Removing another relay never moves the node. */
    char keep[64];
    snprintf(keep, sizeof(keep), "%s", relay->name);
    for (int i = 0; i < 3; i++) {
        if (strcmp(names[i], keep) != 0) {
            ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, names[i]));
            ok(atbus_registry_select_relay(reg, &app, &relay));
            ck_assert_str_eq(relay->name, keep);
        }
    }
    ok(atbus_registry_remove(reg, ATBUS_REGISTRY_NODES, keep));
    ck_assert_int_eq(atbus_registry_select_relay(reg, &app, &relay),
                     ATBUS_ENOTFOUND);
    ck_assert_ptr_null(relay);
    ck_assert_int_eq(atbus_registry_select_relay(NULL, &app, &relay),
                     ATBUS_EINVAL);
    atbus_record_fini(&app);
    atbus_registry_free(reg);
}
END_TEST

/* check_unchanged asserts the count and one stored record. */
static void
check_unchanged(atbus_registry *reg, size_t nodes, const atbus_record *kept)
{
    ck_assert_uint_eq(atbus_registry_count(reg, ATBUS_REGISTRY_NODES), nodes);
    const atbus_record *got = NULL;
    ok(atbus_registry_get(reg, ATBUS_REGISTRY_NODES, kept->name, &got));
    ck_assert(atbus_record_equal(got, kept));
}

START_TEST(test_alloc_sweep_put)
{
    struct seen s;
    atbus_registry *reg = registry(&s);
    /* Enough records that the next insert grows the tables. */
    for (int i = 0; i < 31; i++) {
        atbus_record rec;
        char name[32];
        snprintf(name, sizeof(name), "filler-%d", i);
        disc_node(&rec, name, NULL, NULL);
        ok(atbus_registry_put(reg, &rec, NULL));
        atbus_record_fini(&rec);
    }
    atbus_record kept;
    disc_sample_node(&kept);
    ok(atbus_registry_put(reg, &kept, NULL));
    atbus_record fresh;
    disc_sample_node(&fresh);
    ok(atbus_record_set_string(&fresh.name, "fresh-1"));
    atbus_record newer;
    disc_sample_node(&newer);
    newer.version = 100;
    long live = atb_alloc_live();
    int puts = s.puts;
    /* A new name (grows the tables) and a replacement, each failing at
     * every allocation in turn. */
    const atbus_record *cases[2] = {&fresh, &newer};
    for (int k = 0; k < 2; k++) {
        unsigned long n;
        for (n = 1;; n++) {
            atb_alloc_fail_nth(n);
            int rc = atbus_registry_put(reg, cases[k], NULL);
            int fired = atb_alloc_failed();
            atb_alloc_fail_nth(0);
            if (!fired) {
                ok(rc);
                break;
            }
            ck_assert_int_eq(rc, ATBUS_ENOMEM);
            ck_assert_int_eq(s.puts, puts);
            check_unchanged(reg, 32 + (size_t)k, &kept);
            ck_assert_int_eq(atb_alloc_live(), live);
        }
        ck_assert_uint_gt(n, 10);
        ck_assert_int_eq(s.puts, ++puts);
        live = atb_alloc_live();
    }
    check_unchanged(reg, 33, &newer);
    atbus_record_fini(&kept);
    atbus_record_fini(&fresh);
    atbus_record_fini(&newer);
    atbus_registry_free(reg);

    /* atbus_registry_new itself. */
    atbus_registry *r = (atbus_registry *)1;
    atb_alloc_fail_nth(1);
    ck_assert_int_eq(atbus_registry_new(&r), ATBUS_ENOMEM);
    atb_alloc_fail_nth(0);
    ck_assert_ptr_null(r);
}
END_TEST

static Suite *
registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = atb_test_case("registry", 60);
    tcase_add_test(tc, test_put_get_copy);
    tcase_add_test(tc, test_version_rule);
    tcase_add_test(tc, test_invalid_refused);
    tcase_add_test(tc, test_remove_and_callbacks);
    tcase_add_test(tc, test_growth_iteration_removal);
    tcase_add_test(tc, test_select_relay);
    tcase_add_test(tc, test_alloc_sweep_put);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(registry_suite());
}
