/*
 * The public route registry (atbus/route.h): a handle around the internal
 * registry, and the names of the routing enums.
 */
#include <atbus/route.h>

#include "common/alloc.h"
#include "route/registry.h"
#include "route/relation.h"

struct atbus_route_registry {
    atb_route_registry reg;
};

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
