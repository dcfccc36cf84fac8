/*
 * The public route registry and direct-connect policy (atbus/route.h):
 * handles around the internal registry and policy, and the names of the
 * routing enums.
 */
#include <atbus/route.h>

#include "common/alloc.h"
#include "route/policy.h"
#include "route/registry.h"
#include "route/relation.h"

struct atbus_route_registry {
    atb_route_registry reg;
};

/* The internal policy is opaque outside policy.c, so the handle holds a
 * pointer to it rather than embedding it. */
struct atbus_route_policy {
    atb_route_policy *p;
};

/* The public actions are the internal ones, passed through by value. */
_Static_assert((int)ATBUS_ROUTE_DIRECT == (int)ATB_ROUTE_DIRECT &&
                   (int)ATBUS_ROUTE_VIA_RELAY == (int)ATB_ROUTE_VIA_RELAY &&
                   (int)ATBUS_ROUTE_DENY == (int)ATB_ROUTE_DENY,
               "atbus_route_action and atb_route_action differ");

int
atbus_route_registry_new(atbus_route_registry **out)
{
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    atbus_route_registry *r = atb_malloc(sizeof(*r));
    if (r == NULL) {
        return ATBUS_ENOMEM;
    }
    atb_route_registry_init(&r->reg);
    *out = r;
    return ATBUS_OK;
}

void
atbus_route_registry_free(atbus_route_registry *reg)
{
    if (reg == NULL) {
        return;
    }
    atb_route_registry_fini(&reg->reg);
    atb_free(reg);
}

int
atbus_route_registry_set_upstreams(atbus_route_registry *reg, const char *name,
                                   const char *const *upstreams, size_t count,
                                   atbus_route_error *err)
{
    return atb_route_set_upstreams(reg != NULL ? &reg->reg : NULL, name,
                                   upstreams, count, err);
}

int
atbus_route_registry_remove(atbus_route_registry *reg, const char *name)
{
    return atb_route_remove(reg != NULL ? &reg->reg : NULL, name);
}

int
atbus_route_registry_set_up(atbus_route_registry *reg, const char *name, int up)
{
    return atb_route_set_up(reg != NULL ? &reg->reg : NULL, name, up);
}

int
atbus_route_registry_relation(atbus_route_registry *reg, const char *x,
                              const char *y, atbus_relation *out)
{
    return atb_route_relation(reg != NULL ? &reg->reg : NULL, x, y, out);
}

uint64_t
atbus_route_registry_version(const atbus_route_registry *reg)
{
    return reg != NULL ? atb_route_version(&reg->reg) : 0;
}

/* policy_wrap puts p in a new handle; p is freed when that fails. */
static int
policy_wrap(atb_route_policy *p, atbus_route_policy **out)
{
    atbus_route_policy *h = atb_malloc(sizeof(*h));
    if (h == NULL) {
        atb_route_policy_free(p);
        return ATBUS_ENOMEM;
    }
    h->p = p;
    *out = h;
    return ATBUS_OK;
}

int
atbus_route_policy_new(atbus_route_policy **out)
{
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    atb_route_policy *p;
    int rc = atb_route_policy_new(&p);
    return rc == ATBUS_OK ? policy_wrap(p, out) : rc;
}

int
atbus_route_policy_parse(const char *text, atbus_route_policy **out,
                         atbus_route_error *err)
{
    atb_route_policy *p;
    int rc = atb_route_policy_parse(text, out != NULL ? &p : NULL, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    rc = policy_wrap(p, out);
    if (rc != ATBUS_OK) {
        atb_route_error_set(err, "out of memory");
    }
    return rc;
}

void
atbus_route_policy_free(atbus_route_policy *p)
{
    if (p == NULL) {
        return;
    }
    atb_route_policy_free(p->p);
    atb_free(p);
}

size_t
atbus_route_policy_rules(const atbus_route_policy *p)
{
    return p != NULL ? atb_route_policy_rules(p->p) : 0;
}

int
atbus_route_policy_decide(const atbus_route_policy *p, const void *src,
                          const void *dst, atbus_route_attr_fn attr, void *arg,
                          atbus_route_decision *out)
{
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    atb_route_decision dec;
    atb_route_policy_decide(p != NULL ? p->p : NULL, src, dst, attr, arg, &dec);
    *out = (atbus_route_decision){
        .action = (atbus_route_action)dec.action,
        .encrypt = dec.encrypt,
        .rule = dec.rule,
    };
    return ATBUS_OK;
}

const char *
atbus_route_action_name(atbus_route_action action)
{
    switch (action) {
    case ATBUS_ROUTE_DIRECT:
        return "DIRECT";
    case ATBUS_ROUTE_VIA_RELAY:
        return "VIA_RELAY";
    case ATBUS_ROUTE_DENY:
        return "DENY";
    }
    return "?";
}

const char *
atbus_relation_name(atbus_relation relation)
{
    return atb_route_relation_name(relation);
}

const char *
atbus_hop_kind_name(atbus_hop_kind kind)
{
    switch (kind) {
    case ATBUS_HOP_LOCAL:
        return "LOCAL";
    case ATBUS_HOP_DIRECT:
        return "DIRECT";
    case ATBUS_HOP_VIA_DOWNSTREAM:
        return "VIA_DOWNSTREAM";
    case ATBUS_HOP_VIA_UPSTREAM:
        return "VIA_UPSTREAM";
    case ATBUS_HOP_VIA_TARGET_RELAY:
        return "VIA_TARGET_RELAY";
    }
    return "?";
}

const char *
atbus_hop_state_name(atbus_hop_state state)
{
    switch (state) {
    case ATBUS_HOP_READY:
        return "READY";
    case ATBUS_HOP_CONNECTING:
        return "CONNECTING";
    case ATBUS_HOP_UNREACHABLE:
        return "UNREACHABLE";
    }
    return "?";
}
