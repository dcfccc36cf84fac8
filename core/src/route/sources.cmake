# The route layer: registry, relations, policy, next hop, public API.
set(ATBUS_ROUTE_SOURCES
  registry.c
  relation.c
  policy.c
  next_hop.c
  route.c
)
