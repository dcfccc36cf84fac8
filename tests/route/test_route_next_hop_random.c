/*
 * Next hop against a reference: random forests of relays with backups,
 * nodes up and down, random reachability and a zone policy; for random
 * pairs the registry's answer must equal a naive one computed here from
 * the rules of DESIGN §7 (route/next_hop.h), walking the upstream lists
 * directly. Both relay preferences. The seed is printed on a mismatch.
 */
#include <atbus/error.h>

#include <stdio.h>
#include <string.h>

#include "common/rand.h"
#include "route/next_hop.h"
#include "route/registry.h"
#include "testing.h"

#define N 120
#define MAX_UPS 3

typedef struct world {
    char names[N][16];
    int ups[N][MAX_UPS];
    int nups[N];
    int up[N];
    int state[N]; /* enum atb_route_peer, as S sees each node */
    int zone[N];
} world;

static const char *
world_attr(const void *record, const char *key, void *arg)
{
    static const char *const zones[] = {"a", "b", "c"};
    const world *w = arg;
    int i = (int)(((const char *)record - &w->names[0][0]) / 16);
    return strcmp(key, "labels.zone") == 0 ? zones[w->zone[i]] : NULL;
}

static const void *
world_record(const char *name, void *arg)
{
    world *w = arg;
    int i;
    return sscanf(name, "n%d", &i) == 1 && i >= 0 && i < N ? w->names[i] : NULL;
}

static int
world_state(const char *name, void *arg)
{
    world *w = arg;
    int i;
    return sscanf(name, "n%d", &i) == 1 ? w->state[i]
                                        : ATB_ROUTE_PEER_UNREACHABLE;
}

/* ---- the reference ---- */

static int
ref_active(const world *w, int x)
{
    for (int k = 0; k < w->nups[x]; k++) {
        if (w->up[w->ups[x][k]]) {
            return w->ups[x][k];
        }
    }
    return -1;
}

/* ref_chain_index: how many hops above x node y sits on x's chain (1 =
 * active upstream), or 0 when it is not on it. */
static int
ref_above(const world *w, int x, int y)
{
    int hops = 0;
    for (int at = ref_active(w, x); at >= 0; at = ref_active(w, at)) {
        hops++;
        if (at == y) {
            return hops;
        }
    }
    return 0;
}

static int
ref_reachable(const world *w, int x)
{
    return w->state[x] != ATB_ROUTE_PEER_UNREACHABLE;
}

static int
ref_direct(const world *w, int s, int d)
{
    return w->zone[s] == w->zone[d]; /* the policy below */
}

typedef struct ref_hop {
    int rc;
    atbus_hop_kind kind;
    int peer;
} ref_hop;

static int
ref_target_relay(const world *w, int s, int d, ref_hop *out)
{
    for (int r = ref_active(w, d); r >= 0; r = ref_active(w, r)) {
        if (ref_above(w, s, r) > 0) {
            return 0; /* from here on S's own upstream is as good */
        }
        if (ref_direct(w, s, r) && ref_reachable(w, r)) {
            *out = (ref_hop){ATBUS_OK, ATBUS_HOP_VIA_TARGET_RELAY, r};
            return 1;
        }
    }
    return 0;
}

static ref_hop
ref_next_hop(const world *w, int s, int d, int prefer_target)
{
    ref_hop h = {ATBUS_ENOROUTE, 0, -1};
    int up = ref_active(w, s);
    if (up == d && ref_reachable(w, d)) {
        return (ref_hop){ATBUS_OK, ATBUS_HOP_VIA_UPSTREAM, d};
    }
    if (ref_active(w, d) == s) {
        return ref_reachable(w, d)
                   ? (ref_hop){ATBUS_OK, ATBUS_HOP_VIA_DOWNSTREAM, d}
                   : h;
    }
    if (ref_direct(w, s, d) && ref_reachable(w, d)) {
        return (ref_hop){ATBUS_OK, ATBUS_HOP_DIRECT, d};
    }
    if (ref_above(w, d, s) >= 2) {
        int below = d;
        while (ref_active(w, below) != s) {
            below = ref_active(w, below);
        }
        return ref_reachable(w, below)
                   ? (ref_hop){ATBUS_OK, ATBUS_HOP_VIA_DOWNSTREAM, below}
                   : h;
    }
    if (prefer_target && ref_target_relay(w, s, d, &h)) {
        return h;
    }
    if (up >= 0 && ref_reachable(w, up)) {
        return (ref_hop){ATBUS_OK, ATBUS_HOP_VIA_UPSTREAM, up};
    }
    if (!prefer_target && ref_target_relay(w, s, d, &h)) {
        return h;
    }
    return (ref_hop){ATBUS_ENOROUTE, 0, -1};
}

/* ---- the run ---- */

static void
world_build(world *w, atb_route_registry *reg, uint64_t *rng)
{
    memset(w, 0, sizeof(*w));
    for (int i = 0; i < N; i++) {
        snprintf(w->names[i], sizeof(w->names[i]), "n%d", i);
        w->zone[i] = (int)atb_rand_below(rng, 3);
        w->up[i] = atb_rand_below(rng, 10) != 0;
        /* Upstreams among lower numbers: a forest, never a cycle. */
        w->nups[i] = (int)atb_rand_below(rng, MAX_UPS + 1);
        if (w->nups[i] > i) {
            w->nups[i] = i; /* only i lower numbers to choose from */
        }
        const char *ups[MAX_UPS];
        for (int k = 0; k < w->nups[i]; k++) {
            int u;
            int again;
            do {
                u = (int)atb_rand_below(rng, (uint64_t)i);
                again = 0;
                for (int j = 0; j < k; j++) {
                    again |= w->ups[i][j] == u;
                }
            } while (again);
            w->ups[i][k] = u;
            ups[k] = w->names[u];
        }
        atbus_route_error err;
        ck_assert_int_eq(atb_route_set_upstreams(reg, w->names[i], ups,
                                                 (size_t)w->nups[i], &err),
                         ATBUS_OK);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atb_route_set_up(reg, w->names[i], w->up[i]),
                         ATBUS_OK);
    }
}

START_TEST(test_next_hop_matches_reference)
{
    atb_route_policy *policy;
    atbus_route_error perr;
    ck_assert_int_eq(atb_route_policy_parse("same labels.zone -> direct\n"
                                            "default -> relay\n",
                                            &policy, &perr),
                     ATBUS_OK);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        uint64_t rng = seed * 0x9e3779b97f4a7c15ull;
        world w;
        atb_route_registry reg;
        atb_route_registry_init(&reg);
        world_build(&w, &reg, &rng);
        for (int q = 0; q < 400; q++) {
            int s = (int)atb_rand_below(&rng, N);
            int d = (int)atb_rand_below(&rng, N);
            if (s == d) {
                continue;
            }
            for (int i = 0; i < N; i++) {
                w.state[i] = (int)atb_rand_below(&rng, 4);
            }
            for (int prefer = 0; prefer < 2; prefer++) {
                atb_route_env env = {
                    .policy = policy,
                    .record = world_record,
                    .attr = world_attr,
                    .peer_state = world_state,
                    .arg = &w,
                    .prefer = prefer ? ATB_ROUTE_PREFER_TARGET_RELAY
                                     : ATB_ROUTE_PREFER_UPSTREAM,
                };
                atbus_next_hop hop;
                int rc = atb_route_next_hop(&reg, &env, w.names[s], w.names[d],
                                            &hop);
                ref_hop want = ref_next_hop(&w, s, d, prefer);
                ck_assert_msg(rc == want.rc,
                              "seed %llu: n%d -> n%d prefer %d: rc %s, "
                              "reference %s",
                              (unsigned long long)seed, s, d, prefer,
                              atbus_err_name(rc), atbus_err_name(want.rc));
                if (rc != ATBUS_OK) {
                    continue;
                }
                ck_assert_msg(hop.kind == want.kind &&
                                  strcmp(hop.peer, w.names[want.peer]) == 0,
                              "seed %llu: n%d -> n%d prefer %d: %s %s, "
                              "reference %s n%d",
                              (unsigned long long)seed, s, d, prefer,
                              atbus_hop_kind_name(hop.kind), hop.peer,
                              atbus_hop_kind_name(want.kind), want.peer);
                int ready = w.state[want.peer] == ATB_ROUTE_PEER_CONNECTED;
                ck_assert_int_eq(hop.state, ready ? ATBUS_HOP_READY
                                                  : ATBUS_HOP_CONNECTING);
            }
        }
        atb_route_registry_fini(&reg);
    }
    atb_route_policy_free(policy);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("route_next_hop_random");
    TCase *tc = atb_test_case("reference", 120);
    tcase_add_test(tc, test_next_hop_matches_reference);
    suite_add_tcase(s, tc);
    return atb_test_run(s);
}
