/*
 * atbus routing: the route registry, relations between nodes, the next
 * hop a message takes, and the direct-connect policy.
 *
 * The registry stores, per node, an ordered list of upstream relays
 * (primary first, then backups) as reported by each node ("A hangs under
 * relays U1, U2"). Each node is up or down; the first upstream of a node
 * that is up is its active upstream, and following active upstreams gives
 * the node's upstream chain. Relations and next hops are derived from
 * those chains (docs/routing.md has pictures).
 *
 *   relay-t                 relation(app-1, relay-a) = IMMEDIATE_UPSTREAM
 *     relay-a               relation(app-1, relay-t) = TRANSITIVE_UPSTREAM
 *       app-1   app-2       relation(app-1, app-2)   = SAME_UPSTREAM_PEER
 *     relay-b               relation(app-1, app-3)   = OTHER_UPSTREAM_PEER
 *       app-3               relation(relay-t, app-3) = TRANSITIVE_DOWNSTREAM
 *
 * Reports that would close a cycle through any listed upstream (active or
 * not) are rejected, so no later up/down change can create one.
 *
 * Threads: a registry belongs to one thread, except
 * atbus_route_registry_version, which any thread may call (the version is
 * an atomic counter). A direct-connect policy (below) may be shared.
 *
 * Ownership: strings passed in are copied; the registry owns its nodes.
 */
#ifndef ATBUS_ROUTE_H
#define ATBUS_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <atbus/error.h>
#include <atbus/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest node name: a DNS subdomain (RFC 1123, as Kubernetes names). */
#ifndef ATBUS_NAME_MAX
#define ATBUS_NAME_MAX 253
#endif

/* Longest upstream list one node may report. */
#define ATBUS_ROUTE_MAX_UPSTREAMS 16

typedef struct atbus_route_registry atbus_route_registry;

/* What node Y is to node X: relation(X, Y), over active upstreams. */
typedef enum atbus_relation {
    ATBUS_RELATION_SELF = 1,           /* X = Y */
    ATBUS_RELATION_IMMEDIATE_UPSTREAM, /* Y is X's active upstream */
    /* X is Y's active upstream */
    ATBUS_RELATION_IMMEDIATE_DOWNSTREAM,
    /* X and Y have the same active upstream */
    ATBUS_RELATION_SAME_UPSTREAM_PEER,
    /* Y is on X's upstream chain, two or more hops up */
    ATBUS_RELATION_TRANSITIVE_UPSTREAM,
    /* X is on Y's upstream chain, two or more hops up */
    ATBUS_RELATION_TRANSITIVE_DOWNSTREAM,
    ATBUS_RELATION_OTHER_UPSTREAM_PEER, /* anything else */
} atbus_relation;

/* How a message from the local node S reaches destination D. */
typedef enum atbus_hop_kind {
    ATBUS_HOP_LOCAL = 1,      /* D = S */
    ATBUS_HOP_DIRECT,         /* straight to D, as the policy allows */
    ATBUS_HOP_VIA_DOWNSTREAM, /* to the downstream of S on D's chain */
    ATBUS_HOP_VIA_UPSTREAM,   /* to S's active upstream */
    /* to a relay on D's upstream chain that S may reach */
    ATBUS_HOP_VIA_TARGET_RELAY,
} atbus_hop_kind;

/* Whether the connection to the next hop's peer exists. */
typedef enum atbus_hop_state {
    ATBUS_HOP_READY = 1,   /* connected: send now */
    ATBUS_HOP_CONNECTING,  /* being dialed, or dialable: send after it */
    ATBUS_HOP_UNREACHABLE, /* no way: the call returned ATBUS_ENOROUTE */
} atbus_hop_state;

/* The next hop from S to D. */
typedef struct atbus_next_hop {
    atbus_hop_kind kind;
    atbus_hop_state state;
    /* The peer to send to (NUL-terminated; S itself for LOCAL). Empty when
     * nothing was even tried. */
    char peer[ATBUS_NAME_MAX + 1];
    /* What D is to S, or 0 when S or D is not in the registry. */
    atbus_relation relation;
    /* Non-zero when the policy requires traffic between S and D to be
     * encrypted. */
    int encrypt;
    /* Registry version the answer was computed at: it holds until the
     * version moves (or a connection comes or goes). */
    uint64_t version;
} atbus_next_hop;

/* Detail of a rejected report or rule text, e.g.
 * "cycle: relay-a -> relay-b -> relay-a". */
typedef struct atbus_route_error {
    char text[256]; /* NUL-terminated; truncated with "..." */
} atbus_route_error;

/*
 * atbus_route_registry_new creates an empty registry. Returns ATBUS_OK and
 * *out (free with atbus_route_registry_free), ATBUS_EINVAL (out is NULL)
 * or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_route_registry_new(atbus_route_registry **out);

/* atbus_route_registry_free releases reg and all it holds. NULL is a
 * no-op. */
ATBUS_API void atbus_route_registry_free(atbus_route_registry *reg);

/*
 * atbus_route_registry_set_upstreams records the report "name hangs under
 * upstreams[0..count)" (primary first; count 0: a node without upstream),
 * replacing name's previous list. Unknown names are added: a node named
 * only as someone's upstream starts up and goes away with the last list
 * naming it. A node that reports again after atbus_route_registry_remove
 * is up again. The names are copied.
 *
 * Returns ATBUS_OK, ATBUS_EINVAL (a name that is not a DNS subdomain, a
 * NULL argument, an upstream listed twice, more than
 * ATBUS_ROUTE_MAX_UPSTREAMS), ATBUS_EROUTE_CYCLE (name lists itself, or
 * one of the upstreams already hangs under name through any listed
 * upstream, active or not) or ATBUS_ENOMEM. On failure the registry is
 * unchanged and, when err is not NULL, err->text says why.
 */
ATBUS_API int atbus_route_registry_set_upstreams(atbus_route_registry *reg,
                                                 const char *name,
                                                 const char *const *upstreams,
                                                 size_t count,
                                                 atbus_route_error *err);

/*
 * atbus_route_registry_remove forgets name's report. A node still listed
 * as someone's upstream stays known but down, so its downstreams move to
 * their backups; otherwise it is gone. Returns ATBUS_OK, ATBUS_EINVAL or
 * ATBUS_ENOTFOUND.
 */
ATBUS_API int atbus_route_registry_remove(atbus_route_registry *reg,
                                          const char *name);

/*
 * atbus_route_registry_set_up marks name up (up != 0) or down; an unknown
 * name is added without upstreams. Returns ATBUS_OK, ATBUS_EINVAL or
 * ATBUS_ENOMEM.
 */
ATBUS_API int atbus_route_registry_set_up(atbus_route_registry *reg,
                                          const char *name, int up);

/*
 * atbus_route_registry_relation stores in *out what y is to x. O(1); a
 * query after the registry changed first rebuilds the cached chains of x
 * and y (O(depth)). Returns ATBUS_OK, ATBUS_EINVAL, ATBUS_ENOTFOUND (x or
 * y is not in the registry) or ATBUS_ENOMEM (a chain cache could not
 * grow; nothing changed).
 */
ATBUS_API int atbus_route_registry_relation(atbus_route_registry *reg,
                                            const char *x, const char *y,
                                            atbus_relation *out);

/*
 * atbus_route_registry_version returns the registry version (0 for NULL):
 * it moves on every change that can alter an upstream chain or a
 * relation, so an answer computed at one version holds while the version
 * stays. Safe from any thread.
 */
ATBUS_API uint64_t
atbus_route_registry_version(const atbus_route_registry *reg);

/* ---- Direct-connect policy ------------------------------------------- */

/*
 * A direct-connect policy says whether source S may connect straight to
 * destination D, or must reach it through relays (and whether their
 * traffic must be encrypted). It is an ordered list of rules over
 * attributes of S and D; the first rule whose conditions all hold
 * decides, otherwise the default does. Attributes come from the caller's
 * own records through an atbus_route_attr_fn, with keys such as "name",
 * "type", "metadata.namespace_name", "metadata.kind",
 * "labels.area.region" or "host.hostname", so the policy depends on no
 * record layout. Evaluate it when a connection is planned, not per
 * message.
 *
 * Threads: a policy is not changed after it is built, so several threads
 * may call atbus_route_policy_decide on it at once.
 */
typedef struct atbus_route_policy atbus_route_policy;

/* What a policy decides for S connecting to D. */
typedef enum atbus_route_action {
    ATBUS_ROUTE_DIRECT = 1, /* S may connect to D directly */
    ATBUS_ROUTE_VIA_RELAY,  /* S and D talk through relays */
    /* S and D must never be directly connected (routed through relays) */
    ATBUS_ROUTE_DENY,
} atbus_route_action;

typedef struct atbus_route_decision {
    atbus_route_action action;
    int encrypt; /* non-zero: traffic between S and D must be encrypted */
    int rule;    /* index of the deciding rule, -1 for the default */
} atbus_route_decision;

/*
 * atbus_route_attr_fn returns the attribute `key` of record (never NULL
 * when called), or NULL when the record has none. The string must stay
 * valid until the atbus_route_policy_decide call that asked for it
 * returns.
 */
typedef const char *(*atbus_route_attr_fn)(const void *record, const char *key,
                                           void *arg);

/*
 * atbus_route_policy_new creates a policy without rules: its default is
 * DIRECT without encryption. Returns ATBUS_OK and *out (free with
 * atbus_route_policy_free), ATBUS_EINVAL (out is NULL) or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_route_policy_new(atbus_route_policy **out);

/*
 * atbus_route_policy_parse builds a policy from text, one statement a
 * line ('#' starts a comment; blank lines are skipped):
 *
 *   dst metadata.kind=client -> deny
 *   same labels.area.region -> direct
 *   different labels.area.region -> relay encrypted
 *   src metadata.kind=relay and dst type!=client -> relay
 *   any -> direct
 *   default -> relay encrypted
 *
 * A rule is "any" or conditions joined by "and": "same KEY" (both sides
 * have KEY, with equal values), "different KEY" (not same), or SIDE
 * KEY=VALUE / SIDE KEY!=VALUE with SIDE one of src, dst, either, both;
 * then "->", an action (direct, relay, deny) and optionally "encrypted".
 * "default -> ACTION" sets the action when no rule holds (without it:
 * direct). "direct-notices on" (or "off") is accepted and kept for the
 * notices relays may send; nothing in the public API reads it. Returns
 * ATBUS_OK and *out (free with atbus_route_policy_free), ATBUS_EINVAL (a
 * NULL argument or a bad line: err, if not NULL, gives the line number
 * and the reason; *out is untouched) or ATBUS_ENOMEM.
 */
ATBUS_API int atbus_route_policy_parse(const char *text,
                                       atbus_route_policy **out,
                                       atbus_route_error *err);

/* atbus_route_policy_free releases p. NULL is a no-op. */
ATBUS_API void atbus_route_policy_free(atbus_route_policy *p);

/* atbus_route_policy_rules returns how many rules p holds (0 for NULL). */
ATBUS_API size_t atbus_route_policy_rules(const atbus_route_policy *p);

/*
 * atbus_route_policy_decide evaluates p for S (record src) connecting to
 * D (record dst) and fills *out. The decision is directional: S is the
 * side that would dial. Either record may be NULL (it then has no
 * attributes), and so may attr (no record has any); attr and arg are
 * called only during this call. p NULL acts as a policy without rules.
 * Returns ATBUS_OK or ATBUS_EINVAL (out is NULL).
 */
ATBUS_API int atbus_route_policy_decide(const atbus_route_policy *p,
                                        const void *src, const void *dst,
                                        atbus_route_attr_fn attr, void *arg,
                                        atbus_route_decision *out);

/* atbus_route_action_name returns a static name ("DIRECT", "VIA_RELAY",
 * "DENY"), "?" for an unknown value. Never NULL. */
ATBUS_API const char *atbus_route_action_name(atbus_route_action action);

/* atbus_relation_name returns a static name ("SELF", ...), "?" for an
 * unknown value. Never NULL. */
ATBUS_API const char *atbus_relation_name(atbus_relation relation);

/* atbus_hop_kind_name returns a static name ("LOCAL", ...), "?" for an
 * unknown value. Never NULL. */
ATBUS_API const char *atbus_hop_kind_name(atbus_hop_kind kind);

/* atbus_hop_state_name returns a static name ("READY", ...), "?" for an
 * unknown value. Never NULL. */
ATBUS_API const char *atbus_hop_state_name(atbus_hop_state state);

#ifdef __cplusplus
}
#endif

#endif /* ATBUS_ROUTE_H */
