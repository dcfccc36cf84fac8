/*
 * The direct-connect policy: each kind of condition, first match, the
 * default, missing attributes, the text form and its errors, the notice
 * switch, and allocation failures.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "route/policy.h"
#include "route_harness.h"
#include "testing.h"

static void
add_world(rh_world *w)
{
    rh_world_add(w, "cn-app-1",
                 "type=node labels.area.region=CN metadata.kind=app");
    rh_world_add(w, "cn-app-2",
                 "type=node labels.area.region=CN metadata.kind=app");
    rh_world_add(w, "us-app-1",
                 "type=node labels.area.region=US metadata.kind=app");
    rh_world_add(w, "cn-client", "type=client labels.area.region=CN");
    rh_world_add(w, "cn-relay",
                 "type=node labels.area.region=CN metadata.kind=relay");
    rh_world_add(w, "us-relay",
                 "type=node labels.area.region=US metadata.kind=relay");
    rh_world_add(w, "bare", "type=node");
    rh_world_add(w, "bare-2", "type=node");
}

static atb_route_decision
decide(const atb_route_policy *p, rh_world *w, const char *s, const char *d)
{
    atb_route_decision dec;
    atb_route_policy_decide(p, w->env.record(s, w), w->env.record(d, w),
                            w->env.attr, w, &dec);
    return dec;
}

static void
expect(const atb_route_policy *p, rh_world *w, const char *s, const char *d,
       enum atb_route_action action, int encrypt, int rule)
{
    atb_route_decision dec = decide(p, w, s, d);
    ck_assert_msg(dec.action == action && dec.encrypt == encrypt &&
                      dec.rule == rule,
                  "%s -> %s: action %d encrypt %d rule %d, want %d %d %d", s, d,
                  dec.action, dec.encrypt, dec.rule, action, encrypt, rule);
}

START_TEST(test_policy_struct_rules)
{
    rh_world w;
    rh_world_init(&w, NULL);
    add_world(&w);
    atb_route_policy *p;
    ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_OK);
    /* 0: never direct to a client. 1: same region direct. 2: different
     * region through relays, encrypted. Default: relay. */
    atb_route_cond to_client = {ATB_ROUTE_EQUALS, ATB_ROUTE_DST, "type",
                                "client"};
    atb_route_cond same = {ATB_ROUTE_SAME, 0, "labels.area.region", NULL};
    atb_route_cond diff = {ATB_ROUTE_DIFFERENT, 0, "labels.area.region", NULL};
    atb_route_rule rules[] = {
        {&to_client, 1, ATB_ROUTE_DENY, 0},
        {&same, 1, ATB_ROUTE_DIRECT, 0},
        {&diff, 1, ATB_ROUTE_VIA_RELAY, 1},
    };
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(atb_route_policy_add(p, &rules[i]), ATBUS_OK);
    }
    ck_assert_uint_eq(atb_route_policy_rules(p), 3);
    ck_assert_int_eq(atb_route_policy_set_default(p, ATB_ROUTE_VIA_RELAY, 0),
                     ATBUS_OK);

    expect(p, &w, "cn-app-1", "cn-app-2", ATB_ROUTE_DIRECT, 0, 1);
    expect(p, &w, "cn-app-1", "us-app-1", ATB_ROUTE_VIA_RELAY, 1, 2);
    expect(p, &w, "cn-relay", "us-relay", ATB_ROUTE_VIA_RELAY, 1, 2);
    /* First match wins: same region, but a client. */
    expect(p, &w, "cn-app-1", "cn-client", ATB_ROUTE_DENY, 0, 0);
    /* Directional: the client as the source is fine by rule 1. */
    expect(p, &w, "cn-client", "cn-app-1", ATB_ROUTE_DIRECT, 0, 1);
    /* No region on either side: not "same", so "different" holds. */
    expect(p, &w, "bare", "bare-2", ATB_ROUTE_VIA_RELAY, 1, 2);
    expect(p, &w, "bare", "cn-app-1", ATB_ROUTE_VIA_RELAY, 1, 2);
    /* Unknown records have no attributes. */
    expect(p, &w, "ghost", "cn-app-1", ATB_ROUTE_VIA_RELAY, 1, 2);

    /* The strings were copied: the rule arrays can go. */
    to_client.value = "node";
    expect(p, &w, "cn-app-1", "cn-client", ATB_ROUTE_DENY, 0, 0);
    atb_route_policy_free(p);
}
END_TEST

START_TEST(test_policy_sides_and_ops)
{
    rh_world w;
    rh_world_init(&w, NULL);
    add_world(&w);
    static const struct {
        enum atb_route_op op;
        enum atb_route_side side;
        const char *s;
        const char *d;
        int holds;
    } cases[] = {
        {ATB_ROUTE_EQUALS, ATB_ROUTE_SRC, "cn-relay", "cn-app-1", 1},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_SRC, "cn-app-1", "cn-relay", 0},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_DST, "cn-app-1", "cn-relay", 1},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_DST, "cn-relay", "cn-app-1", 0},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_EITHER, "cn-relay", "cn-app-1", 1},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_EITHER, "cn-app-1", "us-relay", 1},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_EITHER, "cn-app-1", "us-app-1", 0},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_BOTH, "cn-relay", "us-relay", 1},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_BOTH, "cn-relay", "us-app-1", 0},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_SRC, "bare", "cn-relay", 0},
        {ATB_ROUTE_NOT_EQUALS, ATB_ROUTE_SRC, "cn-app-1", "cn-relay", 1},
        {ATB_ROUTE_NOT_EQUALS, ATB_ROUTE_SRC, "bare", "cn-relay", 1},
        {ATB_ROUTE_NOT_EQUALS, ATB_ROUTE_DST, "cn-app-1", "cn-relay", 0},
        {ATB_ROUTE_NOT_EQUALS, ATB_ROUTE_BOTH, "cn-relay", "us-app-1", 1},
        {ATB_ROUTE_NOT_EQUALS, ATB_ROUTE_EITHER, "cn-app-1", "us-app-1", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        atb_route_policy *p;
        ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_OK);
        atb_route_cond c = {cases[i].op, cases[i].side, "metadata.kind",
                            "relay"};
        atb_route_rule r = {&c, 1, ATB_ROUTE_DENY, 1};
        ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_OK);
        atb_route_decision dec = decide(p, &w, cases[i].s, cases[i].d);
        ck_assert_msg((dec.rule == 0) == cases[i].holds, "case %zu", i);
        atb_route_policy_free(p);
    }
}
END_TEST

START_TEST(test_policy_defaults)
{
    rh_world w;
    rh_world_init(&w, NULL);
    add_world(&w);
    /* No policy, and a new one: direct, unencrypted. */
    expect(NULL, &w, "cn-app-1", "us-app-1", ATB_ROUTE_DIRECT, 0, -1);
    atb_route_policy *p;
    ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_OK);
    expect(p, &w, "cn-app-1", "us-app-1", ATB_ROUTE_DIRECT, 0, -1);
    /* A rule without conditions matches everything. */
    atb_route_rule all = {NULL, 0, ATB_ROUTE_VIA_RELAY, 1};
    ck_assert_int_eq(atb_route_policy_add(p, &all), ATBUS_OK);
    expect(p, &w, "cn-app-1", "cn-app-2", ATB_ROUTE_VIA_RELAY, 1, 0);
    /* No attribute getter: nothing is known. */
    atb_route_decision dec;
    atb_route_policy_decide(p, "x", "y", NULL, NULL, &dec);
    ck_assert_int_eq(dec.rule, 0);
    ck_assert_int_eq(atb_route_policy_set_default(p, 0, 0), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_policy_set_default(NULL, ATB_ROUTE_DENY, 0),
                     ATBUS_EINVAL);
    atb_route_policy_free(p);
    atb_route_policy_free(NULL);
}
END_TEST

START_TEST(test_policy_invalid_rules)
{
    atb_route_policy *p;
    ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_OK);
    atb_route_cond ok = {ATB_ROUTE_SAME, 0, "labels.x", NULL};
    atb_route_cond bad[] = {
        {0, 0, "k", NULL},
        {ATB_ROUTE_NOT_EQUALS + 1, 0, "k", NULL},
        {ATB_ROUTE_SAME, 0, "", NULL},
        {ATB_ROUTE_SAME, 0, NULL, NULL},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_SRC, "k", NULL},
        {ATB_ROUTE_EQUALS, 0, "k", "v"},
        {ATB_ROUTE_EQUALS, ATB_ROUTE_BOTH + 1, "k", "v"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        atb_route_cond two[2] = {ok, bad[i]};
        atb_route_rule r = {two, 2, ATB_ROUTE_DIRECT, 0};
        ck_assert_msg(atb_route_policy_add(p, &r) == ATBUS_EINVAL, "bad %zu",
                      i);
    }
    char *long_key = malloc(ATB_ROUTE_POLICY_MAX_TEXT + 2);
    memset(long_key, 'k', ATB_ROUTE_POLICY_MAX_TEXT + 1);
    long_key[ATB_ROUTE_POLICY_MAX_TEXT + 1] = '\0';
    atb_route_cond lk = {ATB_ROUTE_SAME, 0, long_key, NULL};
    atb_route_rule r = {&lk, 1, ATB_ROUTE_DIRECT, 0};
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_EINVAL);
    long_key[ATB_ROUTE_POLICY_MAX_TEXT] = '\0';
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_OK);
    free(long_key);

    r = (atb_route_rule){&ok, 1, 0, 0};
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_EINVAL);
    r = (atb_route_rule){NULL, 1, ATB_ROUTE_DIRECT, 0};
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_EINVAL);
    atb_route_cond many[ATB_ROUTE_POLICY_MAX_CONDS + 1];
    for (size_t i = 0; i <= ATB_ROUTE_POLICY_MAX_CONDS; i++) {
        many[i] = ok;
    }
    r = (atb_route_rule){many, ATB_ROUTE_POLICY_MAX_CONDS + 1, ATB_ROUTE_DIRECT,
                         0};
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_EINVAL);
    r.count = ATB_ROUTE_POLICY_MAX_CONDS;
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_OK);
    ck_assert_int_eq(atb_route_policy_add(NULL, &r), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_policy_add(p, NULL), ATBUS_EINVAL);
    ck_assert_uint_eq(atb_route_policy_rules(p), 2);

    /* The rule cap. */
    r.count = 1;
    while (atb_route_policy_rules(p) < ATB_ROUTE_POLICY_MAX_RULES) {
        ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_OK);
    }
    ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_EINVAL);
    atb_route_policy_free(p);
}
END_TEST

/* ---- the text form ---- */

static const char *const seed_policy =
    "# the cross-region rules\n"
    "dst type=client -> deny\n"
    "both metadata.kind=relay and same labels.area.region -> direct\n"
    "same labels.area.region -> direct   # same region\n"
    "\n"
    "different labels.area.region -> relay encrypted\r\n"
    "default -> relay\n"
    "direct-notices on";

START_TEST(test_policy_parse)
{
    rh_world w;
    rh_world_init(&w, NULL);
    add_world(&w);
    atb_route_policy *p = rh_policy(seed_policy);
    ck_assert_uint_eq(atb_route_policy_rules(p), 4);
    expect(p, &w, "cn-app-1", "cn-client", ATB_ROUTE_DENY, 0, 0);
    expect(p, &w, "cn-relay", "cn-relay", ATB_ROUTE_DIRECT, 0, 1);
    expect(p, &w, "cn-app-1", "cn-app-2", ATB_ROUTE_DIRECT, 0, 2);
    expect(p, &w, "cn-relay", "us-relay", ATB_ROUTE_VIA_RELAY, 1, 3);
    expect(p, &w, "cn-app-1", "us-app-1", ATB_ROUTE_VIA_RELAY, 1, 3);
    /* The notice follows the switch and the decision. */
    ck_assert(atb_route_policy_notice(p, w.env.record("cn-app-1", &w),
                                      w.env.record("cn-app-2", &w), w.env.attr,
                                      &w));
    ck_assert(!atb_route_policy_notice(p, w.env.record("cn-app-1", &w),
                                       w.env.record("us-app-1", &w), w.env.attr,
                                       &w));
    atb_route_policy_set_notices(p, 0);
    ck_assert(!atb_route_policy_notice(p, w.env.record("cn-app-1", &w),
                                       w.env.record("cn-app-2", &w), w.env.attr,
                                       &w));
    ck_assert(!atb_route_policy_notice(NULL, NULL, NULL, NULL, NULL));
    atb_route_policy_free(p);

    /* The other forms. */
    p = rh_policy("src metadata.kind!=relay and either type=client -> deny\n"
                  "both labels.area.region=CN -> direct encrypted\n"
                  "any -> relay\n"
                  "default -> deny encrypted\n"
                  "direct-notices off\n");
    expect(p, &w, "cn-app-1", "cn-client", ATB_ROUTE_DENY, 0, 0);
    expect(p, &w, "cn-relay", "cn-client", ATB_ROUTE_DIRECT, 1, 1);
    expect(p, &w, "us-relay", "cn-client", ATB_ROUTE_VIA_RELAY, 0, 2);
    ck_assert(!atb_route_policy_notice(p, w.env.record("cn-relay", &w),
                                       w.env.record("cn-client", &w),
                                       w.env.attr, &w));
    atb_route_policy_free(p);

    /* Only a default; an empty text is a new policy. */
    p = rh_policy("default -> deny encrypted");
    expect(p, &w, "cn-app-1", "cn-app-2", ATB_ROUTE_DENY, 1, -1);
    atb_route_policy_free(p);
    p = rh_policy("");
    expect(p, &w, "cn-app-1", "cn-app-2", ATB_ROUTE_DIRECT, 0, -1);
    atb_route_policy_free(p);
    /* A value may hold '=' and may be empty. */
    p = rh_policy("dst labels.x=a=b -> deny\nsrc labels.y= -> relay\n");
    atb_route_policy_free(p);
}
END_TEST

static const struct {
    const char *text;
    const char *error;
} bad_texts[] = {
    {"same -> direct", "line 1: missing key after 'same'"},
    {"same a", "line 1: expected '->' before"},
    {"same a direct", "line 1: expected '->' before 'direct'"},
    {"same a ->", "line 1: missing action"},
    {"same a -> fly", "line 1: unknown action 'fly'"},
    {"same a -> direct encrypted now", "line 1: unexpected 'now'"},
    {"\n\nfoo a -> direct", "line 3: unknown condition 'foo'"},
    {"src a -> direct", "line 1: expected KEY=VALUE or KEY!=VALUE, got 'a'"},
    {"dst =b -> direct", "expected KEY=VALUE"},
    {"dst !=b -> direct", "expected KEY=VALUE"},
    {"same a and -> direct", "line 1: missing condition before '->'"},
    {"same a and", "line 1: missing condition"},
    {"same a and and b -> direct", "line 1: missing condition before 'and'"},
    {"any same a -> direct", "line 1: expected '->' before 'same'"},
    {"default direct", "line 1: expected '->' before 'direct'"},
    {"direct-notices maybe", "line 1: expected 'direct-notices on' or"},
    {"direct-notices", "line 1: expected 'direct-notices on' or"},
    {"-> direct", "line 1: missing condition before '->'"},
    {"and same a -> direct", "line 1: missing condition before 'and'"},
};
#define NBADTEXT (sizeof(bad_texts) / sizeof(bad_texts[0]))

START_TEST(test_policy_parse_errors)
{
    atb_route_policy *p = NULL;
    atbus_route_error err;
    int rc = atb_route_policy_parse(bad_texts[_i].text, &p, &err);
    ck_assert_int_eq(rc, ATBUS_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err.text, bad_texts[_i].error) != NULL,
                  "'%s': '%s' lacks '%s'", bad_texts[_i].text, err.text,
                  bad_texts[_i].error);
}
END_TEST

START_TEST(test_policy_parse_limits)
{
    atb_route_policy *p = NULL;
    atbus_route_error err;
    ck_assert_int_eq(atb_route_policy_parse(NULL, &p, &err), ATBUS_EINVAL);
    ck_assert_int_eq(atb_route_policy_parse("", NULL, NULL), ATBUS_EINVAL);

    /* 17 conditions. */
    char text[8192] = "";
    for (int i = 0; i <= ATB_ROUTE_POLICY_MAX_CONDS; i++) {
        strcat(text, i > 0 ? " and same k" : "same k");
    }
    strcat(text, " -> direct");
    ck_assert_int_eq(atb_route_policy_parse(text, &p, &err), ATBUS_EINVAL);
    ck_assert_str_eq(err.text, "line 1: too many conditions");

    /* A key longer than the cap, on a line that fits. */
    strcpy(text, "same ");
    memset(text + 5, 'k', ATB_ROUTE_POLICY_MAX_TEXT + 1);
    strcpy(text + 5 + ATB_ROUTE_POLICY_MAX_TEXT + 1, " -> direct");
    ck_assert_int_eq(atb_route_policy_parse(text, &p, &err), ATBUS_EINVAL);
    ck_assert(strstr(err.text, "too long") != NULL);

    /* A line longer than the reader takes; as a comment it is fine. */
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    ck_assert_int_eq(atb_route_policy_parse(text, &p, &err), ATBUS_EINVAL);
    ck_assert_str_eq(err.text, "line 1: line too long");
    text[0] = '#';
    ck_assert_int_eq(atb_route_policy_parse(text, &p, &err), ATBUS_OK);
    atb_route_policy_free(p);

    /* Too many words on a line. */
    strcpy(text, "same k");
    for (int i = 0; i < 80; i++) {
        strcat(text, " x");
    }
    ck_assert_int_eq(atb_route_policy_parse(text, &p, &err), ATBUS_EINVAL);
    ck_assert_str_eq(err.text, "line 1: too many words");

    /* 1025 rules. */
    size_t size = (ATB_ROUTE_POLICY_MAX_RULES + 1) * 16;
    char *big = malloc(size);
    big[0] = '\0';
    for (int i = 0; i <= ATB_ROUTE_POLICY_MAX_RULES; i++) {
        strcat(big, "any -> direct\n");
    }
    ck_assert_int_eq(atb_route_policy_parse(big, &p, &err), ATBUS_EINVAL);
    ck_assert_str_eq(err.text,
                     "line 1025: too many rules, or a key or value too long");
    free(big);
}
END_TEST

/* Random lines from the grammar's words and some noise: the parser says
 * OK or EINVAL, and never reads or writes out of bounds (ASan). */
START_TEST(test_policy_parse_garbage)
{
    static const char *const words[] = {
        "same",
        "different",
        "src",
        "dst",
        "either",
        "both",
        "and",
        "->",
        "any",
        "direct",
        "relay",
        "deny",
        "k=v",
        "k!=v",
        "k",
        "=",
        "!=",
        "encrypted",
        "#",
        "\n",
        "\t",
        "default",
        "direct-notices",
        "on",
        "off",
        "a=",
        "!=b",
        "\r\n",
        "labels.x=y",
        "\x01",
        "\xff",
        "!",
        "k!=",
        "",
        "->direct",
    };
    uint64_t rng = 42;
    char text[512];
    int ok = 0;
    for (int round = 0; round < 3000; round++) {
        size_t len = 0;
        int n = (int)(atb_test_rng(&rng) % 12);
        for (int i = 0; i < n; i++) {
            const char *w =
                words[atb_test_rng(&rng) % (sizeof(words) / sizeof(words[0]))];
            int l = snprintf(text + len, sizeof(text) - len, "%s%s", w,
                             atb_test_rng(&rng) % 3 ? " " : "");
            len += (size_t)l;
        }
        atb_route_policy *p = NULL;
        atbus_route_error err;
        int rc = atb_route_policy_parse(text, &p, &err);
        ck_assert_msg(rc == ATBUS_OK || rc == ATBUS_EINVAL, "round %d", round);
        if (rc == ATBUS_OK) {
            ok++;
            atb_route_policy_free(p);
        } else {
            ck_assert(strncmp(err.text, "line ", 5) == 0);
        }
    }
    ck_assert_int_gt(ok, 10);
}
END_TEST

START_TEST(test_policy_allocation_failures)
{
    int clean = 0;
    unsigned long n;
    for (n = 1; n < 1000 && !clean; n++) {
        atb_route_policy *p = NULL;
        atbus_route_error err;
        atb_alloc_fail_nth(n);
        int rc = atb_route_policy_parse(seed_policy, &p, &err);
        clean = !atb_alloc_failed();
        atb_alloc_fail_nth(0);
        if (rc == ATBUS_ENOMEM) {
            ck_assert_ptr_null(p);
            ck_assert_str_eq(err.text, "out of memory");
        } else {
            ck_assert_int_eq(rc, ATBUS_OK);
            ck_assert(clean);
            ck_assert_uint_eq(atb_route_policy_rules(p), 4);
        }
        atb_route_policy_free(p);
    }
    ck_assert(clean);
    ck_assert_uint_gt(n, 4);

    /* add: a failed growth or copy leaves the rules as they were. */
    atb_route_policy *p;
    ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_OK);
    atb_route_cond c = {ATB_ROUTE_EQUALS, ATB_ROUTE_DST, "type", "client"};
    atb_route_rule r = {&c, 1, ATB_ROUTE_DENY, 0};
    for (size_t i = 0; i < 20; i++) {
        atb_alloc_fail_nth(1);
        ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_ENOMEM);
        atb_alloc_fail_nth(0);
        ck_assert_uint_eq(atb_route_policy_rules(p), i);
        ck_assert_int_eq(atb_route_policy_add(p, &r), ATBUS_OK);
    }
    atb_route_policy_free(p);
    atb_alloc_fail_nth(1);
    p = NULL;
    ck_assert_int_eq(atb_route_policy_new(&p), ATBUS_ENOMEM);
    ck_assert_ptr_null(p);
    atb_alloc_fail_nth(0);
}
END_TEST

/* ---- the public wrappers (atbus/route.h) ---- */

static atbus_route_decision
decide_public(const atbus_route_policy *p, rh_world *w, const char *s,
              const char *d)
{
    atbus_route_decision dec;
    ck_assert_int_eq(atbus_route_policy_decide(p, w->env.record(s, w),
                                               w->env.record(d, w), w->env.attr,
                                               w, &dec),
                     ATBUS_OK);
    return dec;
}

START_TEST(test_policy_public)
{
    rh_world w;
    rh_world_init(&w, NULL);
    add_world(&w);
    atbus_route_policy *p = NULL;
    atbus_route_error err;
    ck_assert_int_eq(atbus_route_policy_parse("dst type=client -> deny\n"
                                              "same labels.area.region -> "
                                              "direct\n"
                                              "different labels.area.region "
                                              "-> relay encrypted\n",
                                              &p, &err),
                     ATBUS_OK);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(atbus_route_policy_rules(p), 3);
    /* The public values are the internal ones. */
    static const struct {
        const char *s;
        const char *d;
        atbus_route_action action;
        int encrypt;
        int rule;
    } cases[] = {
        {"cn-app-1", "cn-client", ATBUS_ROUTE_DENY, 0, 0},
        {"cn-app-1", "cn-app-2", ATBUS_ROUTE_DIRECT, 0, 1},
        {"cn-app-1", "us-app-1", ATBUS_ROUTE_VIA_RELAY, 1, 2},
        {"cn-client", "cn-app-1", ATBUS_ROUTE_DIRECT, 0, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        atbus_route_decision dec = decide_public(p, &w, cases[i].s, cases[i].d);
        ck_assert_msg(
            dec.action == cases[i].action && dec.encrypt == cases[i].encrypt &&
                dec.rule == cases[i].rule,
            "case %zu: %s %d %d", i, atbus_route_action_name(dec.action),
            dec.encrypt, dec.rule);
    }
    /* No records or no getter: no attributes, so "different" holds. */
    atbus_route_decision dec;
    ck_assert_int_eq(atbus_route_policy_decide(p, NULL, NULL, NULL, NULL, &dec),
                     ATBUS_OK);
    ck_assert_int_eq(dec.action, ATBUS_ROUTE_VIA_RELAY);
    ck_assert_int_eq(dec.rule, 2);
    ck_assert_int_eq(atbus_route_policy_decide(p, NULL, NULL, NULL, NULL, NULL),
                     ATBUS_EINVAL);
    atbus_route_policy_free(p);

    /* A new policy, and none at all: direct by default. */
    ck_assert_int_eq(atbus_route_policy_new(&p), ATBUS_OK);
    ck_assert_uint_eq(atbus_route_policy_rules(p), 0);
    dec = decide_public(p, &w, "cn-app-1", "us-app-1");
    ck_assert_int_eq(dec.action, ATBUS_ROUTE_DIRECT);
    ck_assert_int_eq(dec.encrypt, 0);
    ck_assert_int_eq(dec.rule, -1);
    atbus_route_policy_free(p);
    dec = decide_public(NULL, &w, "cn-app-1", "cn-client");
    ck_assert_int_eq(dec.action, ATBUS_ROUTE_DIRECT);
    ck_assert_uint_eq(atbus_route_policy_rules(NULL), 0);
    atbus_route_policy_free(NULL);

    /* Errors: the line and reason; the output is untouched. */
    p = NULL;
    ck_assert_int_eq(
        atbus_route_policy_parse("any -> direct\nsame a -> fly", &p, &err),
        ATBUS_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_str_eq(err.text, "line 2: unknown action 'fly'");
    ck_assert_int_eq(atbus_route_policy_parse("any -> direct", &p, NULL),
                     ATBUS_OK);
    atbus_route_policy_free(p);
    ck_assert_int_eq(atbus_route_policy_parse("x", &p, NULL), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_policy_parse(NULL, &p, &err), ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_policy_parse("any -> direct", NULL, &err),
                     ATBUS_EINVAL);
    ck_assert_int_eq(atbus_route_policy_new(NULL), ATBUS_EINVAL);

    ck_assert_str_eq(atbus_route_action_name(ATBUS_ROUTE_DIRECT), "DIRECT");
    ck_assert_str_eq(atbus_route_action_name(ATBUS_ROUTE_VIA_RELAY),
                     "VIA_RELAY");
    ck_assert_str_eq(atbus_route_action_name(ATBUS_ROUTE_DENY), "DENY");
    ck_assert_str_eq(atbus_route_action_name((atbus_route_action)0), "?");
}
END_TEST

/* public_make builds a policy through the public API: new (which 0) or
 * parse (which 1). */
static int
public_make(int which, atbus_route_policy **p, atbus_route_error *err)
{
    if (which == 0) {
        return atbus_route_policy_new(p);
    }
    return atbus_route_policy_parse("same labels.area.region -> direct\n", p,
                                    err);
}

/* Each allocation of new and parse, the handle's included, fails in turn:
 * the call gives ATBUS_ENOMEM and no policy, and leaves nothing
 * allocated; once nothing fails, the policy comes back whole. */
START_TEST(test_policy_public_allocation_failures)
{
    long live = atb_alloc_live();
    for (int which = 0; which < 2; which++) {
        int rc = ATBUS_ENOMEM;
        for (unsigned long n = 1; rc != ATBUS_OK; n++) {
            ck_assert_uint_lt(n, 100);
            atbus_route_policy *p = NULL;
            atbus_route_error err;
            err.text[0] = '\0';
            atb_alloc_fail_nth(n);
            rc = public_make(which, &p, &err);
            int hit = atb_alloc_failed();
            atb_alloc_fail_nth(0);
            ck_assert_int_eq(rc, hit ? ATBUS_ENOMEM : ATBUS_OK);
            ck_assert(hit ? p == NULL : p != NULL);
            ck_assert_uint_eq(atbus_route_policy_rules(p), hit ? 0 : which);
            if (hit && which == 1) {
                ck_assert_str_eq(err.text, "out of memory");
            }
            atbus_route_policy_free(p);
            ck_assert_int_eq(atb_alloc_live(), live);
        }
    }
}
END_TEST

static Suite *
policy_suite(void)
{
    Suite *s = suite_create("route_policy");
    TCase *tc = atb_test_case("policy", 60);
    tcase_add_test(tc, test_policy_struct_rules);
    tcase_add_test(tc, test_policy_sides_and_ops);
    tcase_add_test(tc, test_policy_defaults);
    tcase_add_test(tc, test_policy_invalid_rules);
    tcase_add_test(tc, test_policy_parse);
    tcase_add_loop_test(tc, test_policy_parse_errors, 0, (int)NBADTEXT);
    tcase_add_test(tc, test_policy_parse_limits);
    tcase_add_test(tc, test_policy_parse_garbage);
    tcase_add_test(tc, test_policy_allocation_failures);
    tcase_add_test(tc, test_policy_public);
    tcase_add_test(tc, test_policy_public_allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return atb_test_run(policy_suite());
}
