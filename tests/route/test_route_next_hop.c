/*
 * Next hop: each step of the algorithm on a small tree, the relay
 * preference, destinations and sources outside the registry, the seed's
 * cross-region relays that must never connect, and the two topologies of
 * DESIGN §8.1 as registry, policy and node records.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "route/next_hop.h"
#include "route_harness.h"
#include "testing.h"

/*
 *   top
 *   ├── relay-a
 *   │   ├── app-1
 *   │   ├── app-2
 *   │   └── relay-aa
 *   │       └── app-4
 *   └── relay-b
 *       └── app-3
 */
static void
build_tree(atb_route_registry *reg, rh_world *w)
{
    rh_set(reg, "relay-a", "top");
    rh_set(reg, "relay-b", "top");
    rh_set(reg, "app-1", "relay-a");
    rh_set(reg, "app-2", "relay-a");
    rh_set(reg, "relay-aa", "relay-a");
    rh_set(reg, "app-4", "relay-aa");
    rh_set(reg, "app-3", "relay-b");
    static const char *const relays[] = {"top", "relay-a", "relay-b",
                                         "relay-aa"};
    static const char *const apps[] = {"app-1", "app-2", "app-3", "app-4"};
    for (size_t i = 0; i < 4; i++) {
        rh_world_add(w, relays[i], "metadata.kind=relay");
        rh_world_add(w, apps[i], "metadata.kind=app");
    }
}

/* A registry, a world of records and connections, and its policy. */
typedef struct fixture {
    atb_route_registry reg;
    rh_world w;
    atb_route_policy *policy;
} fixture;

static void
fixture_open(fixture *f, const char *policy)
{
    f->policy = policy != NULL ? rh_policy(policy) : NULL;
    atb_route_registry_init(&f->reg);
    rh_world_init(&f->w, f->policy);
}

static void
fixture_close(fixture *f)
{
    atb_route_registry_fini(&f->reg);
    atb_route_policy_free(f->policy);
}

static void
expect_hop(atb_route_registry *reg, rh_world *w, const char *s, const char *d,
           atbus_hop_kind kind, const char *peer, atbus_hop_state state)
{
    atbus_next_hop hop;
    int rc = rh_hop(reg, w, s, d, &hop);
    int want_rc = state == ATBUS_HOP_UNREACHABLE ? ATBUS_ENOROUTE : ATBUS_OK;
    ck_assert_msg(rc == want_rc && hop.kind == kind &&
                      strcmp(hop.peer, peer) == 0 && hop.state == state,
                  "%s to %s: %s %s %s %s, want %s %s %s", s, d,
                  atbus_err_name(rc), atbus_hop_kind_name(hop.kind), hop.peer,
                  atbus_hop_state_name(hop.state), atbus_hop_kind_name(kind),
                  peer, atbus_hop_state_name(state));
    ck_assert_uint_eq(hop.version, atb_route_version(reg));
}

typedef struct hop_case {
    const char *s;
    const char *d;
    atbus_hop_kind kind;
    const char *peer;
} hop_case;

/* expect_hops checks a table of hops that all end CONNECTING (the world's
 * default: every peer dialable). */
static void
expect_hops(atb_route_registry *reg, rh_world *w, const hop_case *cases,
            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        expect_hop(reg, w, cases[i].s, cases[i].d, cases[i].kind, cases[i].peer,
                   ATBUS_HOP_CONNECTING);
    }
}

#define EXPECT_HOPS(reg, w, cases)                                             \
    expect_hops((reg), (w), (cases), sizeof(cases) / sizeof(cases[0]))

/* path_links tells whether path ("a>b>c") holds a link between a node
 * whose name starts with pa and one whose name starts with pb. */
static int
path_links(const char *path, const char *pa, const char *pb)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    const char *prev = NULL;
    for (char *t = strtok(buf, ">"); t != NULL; t = strtok(NULL, ">")) {
        if (prev != NULL && ((strncmp(prev, pa, strlen(pa)) == 0 &&
                              strncmp(t, pb, strlen(pb)) == 0) ||
                             (strncmp(prev, pb, strlen(pb)) == 0 &&
                              strncmp(t, pa, strlen(pa)) == 0))) {
            return 1;
        }
        prev = t;
    }
    return 0;
}

/* expect_route routes src to dst hop by hop and compares the path. */
static void
expect_route(atb_route_registry *reg, rh_world *w, const char *src,
             const char *dst, const char *want)
{
    char path[512];
    rh_route(reg, w, src, dst, path, sizeof(path));
    ck_assert_msg(strcmp(path, want) == 0, "%s to %s: %s, want %s", src, dst,
                  path, want);
}

/* expect_apart routes every pair of the world's nodes, from every node,
 * and checks no path puts a node named pa... next to one named pb... */
static void
expect_apart(atb_route_registry *reg, rh_world *w, const char *pa,
             const char *pb)
{
    char path[512];
    for (size_t i = 0; i < w->count; i++) {
        for (size_t k = 0; k < w->count; k++) {
            rh_route(reg, w, w->nodes[i].name, w->nodes[k].name, path,
                     sizeof(path));
            ck_assert_msg(!path_links(path, pa, pb), "%s", path);
        }
    }
}

static void
set_prefer(rh_world *w, int target_first)
{
    w->env.prefer = target_first ? ATB_ROUTE_PREFER_TARGET_RELAY
                                 : ATB_ROUTE_PREFER_UPSTREAM;
}

START_TEST(test_hop_local)
{
    fixture f;
    fixture_open(&f, NULL);
    build_tree(&f.reg, &f.w);
    atbus_next_hop hop;
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "app-1", "app-1", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_LOCAL);
    ck_assert_int_eq(hop.state, ATBUS_HOP_READY);
    ck_assert_int_eq(hop.relation, ATBUS_RELATION_SELF);
    ck_assert_str_eq(hop.peer, "app-1");
    ck_assert_uint_eq(f.w.nasked, 0);
    /* Not in the registry: still local, no relation. */
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "ghost", "ghost", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_LOCAL);
    ck_assert_int_eq(hop.relation, 0);
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_registry_links)
{
    /* No direct connection anywhere: only the registry's links. */
    fixture f;
    fixture_open(&f, "any -> deny");
    build_tree(&f.reg, &f.w);
    static const hop_case links[] = {
        {"app-1", "relay-a", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"relay-a", "app-1", ATBUS_HOP_VIA_DOWNSTREAM, "app-1"},
        {"relay-a", "app-4", ATBUS_HOP_VIA_DOWNSTREAM, "relay-aa"},
        {"top", "app-4", ATBUS_HOP_VIA_DOWNSTREAM, "relay-a"},
        {"app-1", "app-2", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"app-1", "top", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"app-4", "app-3", ATBUS_HOP_VIA_UPSTREAM, "relay-aa"},
        {"app-3", "app-4", ATBUS_HOP_VIA_UPSTREAM, "relay-b"},
    };
    EXPECT_HOPS(&f.reg, &f.w, links);

    /* A connection that is up makes the hop ready. */
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_CONNECTED);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", ATBUS_HOP_READY);
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_CONNECTING);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", ATBUS_HOP_CONNECTING);

    /* A downstream that cannot be reached: no route, and the upstream is
     * not asked (it would send the message back down). */
    rh_world_state(&f.w, "relay-aa", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "relay-a", "app-4", ATBUS_HOP_VIA_DOWNSTREAM,
               "relay-aa", ATBUS_HOP_UNREACHABLE);
    ck_assert_uint_eq(f.w.nasked, 1);
    expect_hop(&f.reg, &f.w, "relay-a", "relay-aa", ATBUS_HOP_VIA_DOWNSTREAM,
               "relay-aa", ATBUS_HOP_UNREACHABLE);
    ck_assert_uint_eq(f.w.nasked, 1);
    /* An unreachable upstream: nothing else leads there. */
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "relay-a", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", ATBUS_HOP_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", ATBUS_HOP_UNREACHABLE);

    /* The registry moves: app-1 fails over to relay-b. */
    rh_set(&f.reg, "app-1", "relay-a,relay-b");
    ck_assert_int_eq(atb_route_set_up(&f.reg, "relay-a", 0), ATBUS_OK);
    static const hop_case moved[] = {
        {"app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM, "relay-b"},
        {"relay-b", "app-1", ATBUS_HOP_VIA_DOWNSTREAM, "app-1"},
    };
    EXPECT_HOPS(&f.reg, &f.w, moved);
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_direct)
{
    /* Direct everywhere the caller can dial. */
    fixture f;
    fixture_open(&f, NULL);
    build_tree(&f.reg, &f.w);
    static const hop_case direct[] = {
        {"app-1", "app-3", ATBUS_HOP_DIRECT, "app-3"},
        {"app-1", "app-2", ATBUS_HOP_DIRECT, "app-2"},
        {"app-1", "top", ATBUS_HOP_DIRECT, "top"},
        /* Direct comes before the downstream step. */
        {"top", "app-4", ATBUS_HOP_DIRECT, "app-4"},
        /* The registry's own links keep their names. */
        {"app-1", "relay-a", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"relay-a", "app-1", ATBUS_HOP_VIA_DOWNSTREAM, "app-1"},
    };
    EXPECT_HOPS(&f.reg, &f.w, direct);
    rh_world_state(&f.w, "app-3", ATB_ROUTE_PEER_CONNECTED);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_DIRECT, "app-3",
               ATBUS_HOP_READY);
    /* Not dialable: through the relays. */
    rh_world_state(&f.w, "app-3", ATB_ROUTE_PEER_UNREACHABLE);
    rh_world_state(&f.w, "app-4", ATB_ROUTE_PEER_UNREACHABLE);
    static const hop_case relayed[] = {
        {"app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM, "relay-a"},
        {"top", "app-4", ATBUS_HOP_VIA_DOWNSTREAM, "relay-a"},
    };
    EXPECT_HOPS(&f.reg, &f.w, relayed);
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_relay_preference)
{
    /* Relays may be dialed directly, apps not. */
    fixture f;
    fixture_open(&f, "dst metadata.kind=relay -> direct\n"
                     "default -> relay\n");
    build_tree(&f.reg, &f.w);
    const atbus_hop_state C = ATBUS_HOP_CONNECTING;

    /* Own upstream first. */
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", C);
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-b", C);
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_DIALABLE);

    /* The target's relay first: the nearest one S may dial. */
    f.w.env.prefer = ATB_ROUTE_PREFER_TARGET_RELAY;
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-b", C);
    expect_hop(&f.reg, &f.w, "app-1", "app-4", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-aa", C);
    expect_hop(&f.reg, &f.w, "app-3", "app-4", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-aa", C);
    /* relay-aa unreachable: relay-a is on app-1's own chain, so the walk
     * stops there and app-1 uses its own upstream. */
    rh_world_state(&f.w, "relay-aa", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "app-4", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", C);
    /* From app-3 the walk goes on to relay-a, below the common top. */
    expect_hop(&f.reg, &f.w, "app-3", "app-4", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-a", C);
    rh_world_state(&f.w, "relay-b", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", C);
    /* Nothing at all. */
    rh_world_state(&f.w, "relay-a", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "app-1", "app-3", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", ATBUS_HOP_UNREACHABLE);
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_between_trees)
{
    /* Two roots that know each other only by policy (old libatbus: root
     * relays connect actively). */
    fixture f;
    fixture_open(&f, "dst metadata.kind=relay -> direct\n"
                     "default -> relay\n");
    rh_set(&f.reg, "relay-x", "root-2");
    rh_set(&f.reg, "app-x", "relay-x");
    rh_set(&f.reg, "app-r", "root-1");
    rh_world_add(&f.w, "root-1", "metadata.kind=relay");
    rh_world_add(&f.w, "root-2", "metadata.kind=relay");
    rh_world_add(&f.w, "relay-x", "metadata.kind=relay");
    rh_world_add(&f.w, "app-x", "metadata.kind=app");
    rh_world_add(&f.w, "app-r", "metadata.kind=app");
    const atbus_hop_state C = ATBUS_HOP_CONNECTING;

    /* root-1 has no upstream: the walk up app-x's chain finds relay-x. */
    expect_hop(&f.reg, &f.w, "root-1", "app-x", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-x", C);
    rh_world_state(&f.w, "relay-x", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "root-1", "app-x", ATBUS_HOP_VIA_TARGET_RELAY,
               "root-2", C);
    rh_world_state(&f.w, "relay-x", ATB_ROUTE_PEER_DIALABLE);
    expect_route(&f.reg, &f.w, "app-r", "app-x", "app-r>root-1>relay-x>app-x");
    set_prefer(&f.w, 1);
    expect_route(&f.reg, &f.w, "app-r", "app-x", "app-r>relay-x>app-x");
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_outside_registry)
{
    fixture f;
    fixture_open(&f, "dst metadata.kind=client -> relay\n");
    build_tree(&f.reg, &f.w);
    rh_world_add(&f.w, "new-app", "metadata.kind=app");
    rh_world_add(&f.w, "client-7", "metadata.kind=client");
    const atbus_hop_state C = ATBUS_HOP_CONNECTING;
    atbus_next_hop hop;

    /* A destination the registry does not know: direct when allowed and
     * dialable, else up to a relay that may know more. */
    expect_hop(&f.reg, &f.w, "app-1", "new-app", ATBUS_HOP_DIRECT, "new-app",
               C);
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "app-1", "new-app", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.relation, 0);
    expect_hop(&f.reg, &f.w, "app-1", "client-7", ATBUS_HOP_VIA_UPSTREAM,
               "relay-a", C);
    /* ... and from a node without upstream nothing is tried. */
    expect_hop(&f.reg, &f.w, "top", "client-7", 0, "", ATBUS_HOP_UNREACHABLE);
    ck_assert_uint_eq(f.w.nasked, 0);
    /* A source the registry does not know walks the whole chain. */
    expect_hop(&f.reg, &f.w, "new-app", "app-4", ATBUS_HOP_DIRECT, "app-4", C);
    rh_world_state(&f.w, "app-4", ATB_ROUTE_PEER_UNREACHABLE);
    rh_world_state(&f.w, "relay-aa", ATB_ROUTE_PEER_UNREACHABLE);
    expect_hop(&f.reg, &f.w, "new-app", "app-4", ATBUS_HOP_VIA_TARGET_RELAY,
               "relay-a", C);
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_invalid)
{
    atb_route_registry reg;
    atb_route_registry_init(&reg);
    rh_world w;
    rh_world_init(&w, NULL);
    atbus_next_hop hop;
    ck_assert_int_eq(atb_route_next_hop(NULL, &w.env, "a", "b", &hop),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_next_hop(&reg, NULL, "a", "b", &hop),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_next_hop(&reg, &w.env, "a", "b", NULL),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_next_hop(&reg, &w.env, "A", "b", &hop),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_next_hop(&reg, &w.env, "a", NULL, &hop),
                     ATBUS_EINVAL);
    atb_route_env env = w.env;
    env.peer_state = NULL;
    ck_assert_int_eq(atb_route_next_hop(&reg, &env, "a", "b", &hop),
                     ATBUS_EINVAL);
    /* No records and no policy: direct when the caller can dial. */
    env = (atb_route_env){.peer_state = w.env.peer_state, .arg = &w};
    rh_world_add(&w, "b", "");
    w.local = "a";
    ck_assert_int_eq(atb_route_next_hop(&reg, &env, "a", "b", &hop), ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_DIRECT);
    atb_route_registry_fini(&reg);
}
END_TEST

START_TEST(test_hop_out_of_memory)
{
    fixture f;
    fixture_open(&f, "any -> relay");
    build_tree(&f.reg, &f.w);
    /* Every chain is stale after the build: the first question needs a
     * cache, and a cache that cannot grow fails the call, not the
     * registry. */
    atbus_next_hop hop;
    unsigned long n;
    int rc = ATBUS_ENOMEM;
    for (n = 1; rc == ATBUS_ENOMEM && n < 100; n++) {
        atb_alloc_fail_nth(n);
        rc = rh_hop(&f.reg, &f.w, "app-4", "app-3", &hop);
        atb_alloc_fail_nth(0);
        if (rc == ATBUS_ENOMEM) {
            ck_assert_int_eq(hop.state, ATBUS_HOP_UNREACHABLE);
        }
    }
    ck_assert_uint_gt(n, 2);
    ck_assert_int_eq(rc, ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_VIA_UPSTREAM);
    ck_assert_str_eq(hop.peer, "relay-aa");
    rh_verify(&f.reg);
    fixture_close(&f);
}
END_TEST

/* ---- the seed's cross-region relays ---- */

/*
 *                 transit (area.region any)
 *        ┌────────────┼──────────────┐
 *   cn-relay-1    cn-relay-2     us-relay-1        (all dial each other:
 *    │    │           │              │              only the policy keeps
 *  cn-app-1 cn-app-2  cn-app-3     us-app-1         CN and US apart)
 *           (backup cn-relay-2)
 */
static void
build_regions(atb_route_registry *reg, rh_world *w)
{
    rh_set(reg, "cn-relay-1", "transit");
    rh_set(reg, "cn-relay-2", "transit");
    rh_set(reg, "us-relay-1", "transit");
    rh_set(reg, "cn-app-1", "cn-relay-1");
    rh_set(reg, "cn-app-2", "cn-relay-1,cn-relay-2");
    rh_set(reg, "cn-app-3", "cn-relay-2");
    rh_set(reg, "us-app-1", "us-relay-1");
    rh_world_add(w, "transit", "labels.area.region=any metadata.kind=relay");
    rh_world_add(w, "cn-relay-1", "labels.area.region=CN metadata.kind=relay");
    rh_world_add(w, "cn-relay-2", "labels.area.region=CN metadata.kind=relay");
    rh_world_add(w, "us-relay-1", "labels.area.region=US metadata.kind=relay");
    rh_world_add(w, "cn-app-1", "labels.area.region=CN metadata.kind=app");
    rh_world_add(w, "cn-app-2", "labels.area.region=CN metadata.kind=app");
    rh_world_add(w, "cn-app-3", "labels.area.region=CN metadata.kind=app");
    rh_world_add(w, "us-app-1", "labels.area.region=US metadata.kind=app");
}

static const char *const region_policy =
    "same labels.area.region -> direct\n"
    "different labels.area.region -> relay encrypted\n";

START_TEST(test_hop_cross_region)
{
    fixture f;
    fixture_open(&f, region_policy);
    build_regions(&f.reg, &f.w);
    atbus_next_hop hop;

    /* Same upstream, yet never direct across regions; within a region
     * direct without any notice from transit. */
    ck_assert_int_eq(rh_relation(&f.reg, "cn-relay-1", "us-relay-1"),
                     ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "cn-relay-1", "us-relay-1", &hop),
                     ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_VIA_UPSTREAM);
    ck_assert_str_eq(hop.peer, "transit");
    ck_assert_int_eq(hop.encrypt, 1);
    ck_assert_int_eq(hop.relation, ATBUS_RELATION_SAME_UPSTREAM_PEER);
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "cn-relay-1", "cn-relay-2", &hop),
                     ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_DIRECT);
    ck_assert_int_eq(hop.encrypt, 0);
    ck_assert(!atb_route_policy_notice(
        f.policy, f.w.env.record("cn-app-1", &f.w),
        f.w.env.record("cn-app-3", &f.w), f.w.env.attr, &f.w));

    for (int prefer = 0; prefer < 2; prefer++) {
        set_prefer(&f.w, prefer);
        expect_route(&f.reg, &f.w, "cn-app-1", "us-app-1",
                     "cn-app-1>cn-relay-1>transit>us-relay-1>us-app-1");
        expect_route(&f.reg, &f.w, "us-app-1", "cn-app-3",
                     "us-app-1>us-relay-1>transit>cn-relay-2>cn-app-3");
        expect_route(&f.reg, &f.w, "cn-app-1", "cn-app-3", "cn-app-1>cn-app-3");
        /* Every pair, from every node: no CN node next to a US node. */
        expect_apart(&f.reg, &f.w, "cn-", "us-");

        /* cn-relay-1 fails: cn-app-2 moves to its backup. */
        ck_assert_int_eq(atb_route_set_up(&f.reg, "cn-relay-1", 0), ATBUS_OK);
        expect_route(&f.reg, &f.w, "cn-app-2", "us-app-1",
                     "cn-app-2>cn-relay-2>transit>us-relay-1>us-app-1");
        expect_route(&f.reg, &f.w, "us-app-1", "cn-app-2",
                     "us-app-1>us-relay-1>transit>cn-relay-2>cn-app-2");
        ck_assert_int_eq(atb_route_set_up(&f.reg, "cn-relay-1", 1), ATBUS_OK);
    }
    fixture_close(&f);
}
END_TEST

/* ---- DESIGN §8.1 ---- */

/*
 * Across namespaces: each namespace has apps and one relay; an app's
 * gateway is matched to its namespace; a relay has an internal gateway
 * (its namespace) and an ingress one (kind relay). Apps advertise their
 * namespace's relay, which becomes their upstream.
 */
static void
build_namespaces(atb_route_registry *reg, rh_world *w, int regions)
{
    static const char *const ns[] = {"ns1", "ns2"};
    static const char *const region[] = {"CN", "US"};
    char name[64], attrs[160], match[64];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "relay-%d.%s", i + 1, ns[i]);
        snprintf(attrs, sizeof(attrs),
                 "metadata.namespace_name=%s metadata.kind=relay "
                 "labels.area.region=%s",
                 ns[i], regions ? region[i] : "none");
        rh_world_add(w, name, attrs);
        snprintf(match, sizeof(match), "metadata.namespace_name=%s", ns[i]);
        rh_world_accept(w, name, match);
        rh_world_accept(w, name, "metadata.kind=relay");
        rh_set(reg, name, regions ? "relay-t.transit" : "");
        for (int a = 0; a < 2; a++) {
            char app[64];
            snprintf(app, sizeof(app), "app-%d.%s", 2 * a + i + 1, ns[i]);
            snprintf(attrs, sizeof(attrs),
                     "metadata.namespace_name=%s metadata.kind=app "
                     "labels.area.region=%s",
                     ns[i], regions ? region[i] : "none");
            rh_world_add(w, app, attrs);
            rh_world_accept(w, app, match);
            rh_set(reg, app, name);
        }
    }
    if (regions) {
        rh_world_add(w, "relay-t.transit",
                     "metadata.namespace_name=transit metadata.kind=relay "
                     "labels.area.region=any");
        rh_world_accept(w, "relay-t.transit", "metadata.kind=relay");
    }
}

START_TEST(test_hop_design_across_namespaces)
{
    fixture f;
    fixture_open(&f, "same metadata.namespace_name -> direct\n"
                     "both metadata.kind=relay -> direct\n"
                     "default -> relay\n");
    build_namespaces(&f.reg, &f.w, 0);
    for (int prefer = 0; prefer < 2; prefer++) {
        set_prefer(&f.w, prefer);
        expect_route(&f.reg, &f.w, "app-1.ns1", "app-3.ns1",
                     "app-1.ns1>app-3.ns1");
        expect_route(&f.reg, &f.w, "app-1.ns1", "app-2.ns2",
                     "app-1.ns1>relay-1.ns1>relay-2.ns2>app-2.ns2");
        expect_route(&f.reg, &f.w, "app-4.ns2", "app-3.ns1",
                     "app-4.ns2>relay-2.ns2>relay-1.ns1>app-3.ns1");
    }
    atbus_next_hop hop;
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "relay-1.ns1", "app-2.ns2", &hop),
                     ATBUS_OK);
    ck_assert_int_eq(hop.kind, ATBUS_HOP_VIA_TARGET_RELAY);
    ck_assert_str_eq(hop.peer, "relay-2.ns2");

    /* Without relay-2's ingress gateway there is no way across. */
    f.w.nodes[3].naccepts = 1;
    ck_assert_str_eq(f.w.nodes[3].name, "relay-2.ns2");
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "relay-1.ns1", "app-2.ns2", &hop),
                     ATBUS_ENOROUTE);
    ck_assert_int_eq(hop.state, ATBUS_HOP_UNREACHABLE);
    ck_assert_str_eq(hop.peer, "relay-2.ns2");
    fixture_close(&f);
}
END_TEST

START_TEST(test_hop_design_across_regions)
{
    fixture f;
    fixture_open(&f, "same metadata.namespace_name -> direct\n"
                     "both metadata.kind=relay and same labels.area.region "
                     "-> direct\n"
                     "different labels.area.region -> relay encrypted\n"
                     "default -> relay\n");
    build_namespaces(&f.reg, &f.w, 1);
    for (int prefer = 0; prefer < 2; prefer++) {
        set_prefer(&f.w, prefer);
        expect_route(&f.reg, &f.w, "app-1.ns1", "app-2.ns2",
                     "app-1.ns1>relay-1.ns1>relay-t.transit>relay-2.ns2>"
                     "app-2.ns2");
        expect_route(&f.reg, &f.w, "app-3.ns1", "app-1.ns1",
                     "app-3.ns1>app-1.ns1");
        expect_apart(&f.reg, &f.w, "relay-1", "relay-2");
    }
    atbus_next_hop hop;
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "app-1.ns1", "app-2.ns2", &hop),
                     ATBUS_OK);
    ck_assert_int_eq(hop.encrypt, 1);
    ck_assert_int_eq(hop.relation, ATBUS_RELATION_OTHER_UPSTREAM_PEER);
    ck_assert_int_eq(rh_hop(&f.reg, &f.w, "app-1.ns1", "app-3.ns1", &hop),
                     ATBUS_OK);
    ck_assert_int_eq(hop.encrypt, 0);
    fixture_close(&f);
}
END_TEST

static Suite *
next_hop_suite(void)
{
    Suite *s = suite_create("route_next_hop");
    TCase *tc = atb_test_case("next_hop", 60);
    tcase_add_test(tc, test_hop_local);
    tcase_add_test(tc, test_hop_registry_links);
    tcase_add_test(tc, test_hop_direct);
    tcase_add_test(tc, test_hop_relay_preference);
    tcase_add_test(tc, test_hop_between_trees);
    tcase_add_test(tc, test_hop_outside_registry);
    tcase_add_test(tc, test_hop_invalid);
    tcase_add_test(tc, test_hop_out_of_memory);
    tcase_add_test(tc, test_hop_cross_region);
    tcase_add_test(tc, test_hop_design_across_namespaces);
    tcase_add_test(tc, test_hop_design_across_regions);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(next_hop_suite());
}
