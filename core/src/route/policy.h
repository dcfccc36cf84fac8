/*
 * The direct-connect policy: may source S connect straight to destination
 * D, or must their traffic go through relays (and be encrypted)?
 *
 * An ordered list of rules; each rule is a list of conditions (all must
 * hold) over attributes of S and D and an action; the first rule whose
 * conditions hold decides, otherwise the default action does. Attributes
 * come from a caller-supplied getter over the caller's own records, with
 * keys such as "name", "type", "metadata.namespace_name", "metadata.kind",
 * "labels.area.region" or "host.hostname", so the policy depends on no
 * record layout. A record the caller does not have (NULL) has no
 * attributes.
 *
 * The policy is evaluated when a connection or a route is planned (the
 * next hop), never per packet: a decision holds until the policy, the
 * records or the registry change.
 *
 * It also stores the global switch allow_direct_notices (default off): may
 * a relay tell two nodes it forwards between to connect directly? Off, a
 * relay never sends that notice and nodes decide by this policy alone.
 */
#ifndef ATB_ROUTE_POLICY_H
#define ATB_ROUTE_POLICY_H

#include <atbus/route.h>

#include <stddef.h>

typedef struct atb_route_policy atb_route_policy;

/* Caps of a policy; beyond them, adding or parsing fails with
 * ATBUS_EINVAL. */
#define ATB_ROUTE_POLICY_MAX_RULES 1024
#define ATB_ROUTE_POLICY_MAX_CONDS 16
#define ATB_ROUTE_POLICY_MAX_TEXT 1024 /* longest key or value */

enum atb_route_action {
    ATB_ROUTE_DIRECT = 1, /* S may connect to D directly */
    ATB_ROUTE_VIA_RELAY,  /* S and D talk through relays */
    /* S and D must never be directly connected; routed as VIA_RELAY, and
     * a connection between them is refused */
    ATB_ROUTE_DENY,
};

enum atb_route_op {
    /* key has the same value on both sides (both present) */
    ATB_ROUTE_SAME = 1,
    /* not SAME: the values differ or one side lacks key */
    ATB_ROUTE_DIFFERENT,
    /* key of the side equals value */
    ATB_ROUTE_EQUALS,
    /* not EQUALS for the same side */
    ATB_ROUTE_NOT_EQUALS,
};

/* Which node(s) EQUALS and NOT_EQUALS look at. */
enum atb_route_side {
    ATB_ROUTE_SRC = 1,
    ATB_ROUTE_DST,
    ATB_ROUTE_EITHER, /* S or D */
    ATB_ROUTE_BOTH,   /* S and D */
};

typedef struct atb_route_cond {
    enum atb_route_op op;
    enum atb_route_side side; /* EQUALS, NOT_EQUALS only */
    const char *key;
    const char *value; /* EQUALS, NOT_EQUALS only */
} atb_route_cond;

typedef struct atb_route_rule {
    const atb_route_cond *conds; /* all must hold; none: always */
    size_t count;
    enum atb_route_action action;
    int encrypt; /* traffic between S and D must be encrypted */
} atb_route_rule;

typedef struct atb_route_decision {
    enum atb_route_action action;
    int encrypt;
    int rule; /* index of the deciding rule, -1 for the default */
} atb_route_decision;

/* atb_route_attr_cb returns the attribute key of record (never NULL when
 * called), or NULL when it has none. The string must stay valid until the
 * evaluation that asked for it returns. */
typedef const char *(*atb_route_attr_cb)(const void *record, const char *key,
                                         void *arg);

/*
 * atb_route_policy_new creates a policy without rules; the default action
 * is DIRECT without encryption (reachability still depends on addresses),
 * allow_direct_notices off. Returns ATBUS_OK and *out (free with
 * atb_route_policy_free) or ATBUS_ENOMEM.
 */
int atb_route_policy_new(atb_route_policy **out);

/* atb_route_policy_free releases p. NULL is a no-op. */
void atb_route_policy_free(atb_route_policy *p);

/*
 * atb_route_policy_add appends a copy of rule. Returns ATBUS_OK,
 * ATBUS_EINVAL (an unknown action, op or side, an empty or overlong key
 * or value, too many rules or conditions) or ATBUS_ENOMEM; on failure
 * the policy is unchanged.
 */
int atb_route_policy_add(atb_route_policy *p, const atb_route_rule *rule);

/* atb_route_policy_set_default sets the action when no rule matches.
 * Returns ATBUS_OK or ATBUS_EINVAL. */
int atb_route_policy_set_default(atb_route_policy *p,
                                 enum atb_route_action action, int encrypt);

/* atb_route_policy_set_notices sets allow_direct_notices. */
void atb_route_policy_set_notices(atb_route_policy *p, int allow);

/* atb_route_policy_rules returns how many rules p holds. */
size_t atb_route_policy_rules(const atb_route_policy *p);

/*
 * atb_route_policy_decide evaluates p for S (record s) connecting to D
 * (record d); either record may be NULL. The decision is directional: S is
 * the side planning the connection. p NULL acts as a new policy. Never
 * fails.
 */
void atb_route_policy_decide(const atb_route_policy *p, const void *s,
                             const void *d, atb_route_attr_cb attr, void *arg,
                             atb_route_decision *out);

/*
 * atb_route_policy_notice tells whether a relay forwarding between S and D
 * may tell them to connect directly: allow_direct_notices is on and the
 * policy says DIRECT for S to D. p NULL: no.
 */
int atb_route_policy_notice(const atb_route_policy *p, const void *s,
                            const void *d, atb_route_attr_cb attr, void *arg);

/*
 * atb_route_policy_parse builds a policy from text, one statement a line
 * ('#' starts a comment; blank lines are skipped):
 *
 *   same labels.area.region -> direct
 *   different labels.area.region -> relay encrypted
 *   dst type=client -> deny
 *   src metadata.kind=relay and dst metadata.kind!=relay -> relay
 *   any -> direct
 *   default -> relay encrypted
 *   direct-notices on
 *
 * A rule is "any" or conditions joined by "and": "same KEY", "different
 * KEY", or SIDE KEY=VALUE / SIDE KEY!=VALUE with SIDE one of src, dst,
 * either, both; then "->", an action (direct, relay, deny) and optionally
 * "encrypted". Returns ATBUS_OK and *out, ATBUS_EINVAL (err->text gives
 * the line and the reason) or ATBUS_ENOMEM.
 */
int atb_route_policy_parse(const char *text, atb_route_policy **out,
                           atbus_route_error *err);

#endif /* ATB_ROUTE_POLICY_H */
