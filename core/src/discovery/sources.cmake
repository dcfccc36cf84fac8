# Discovery: records, matching and selection, the embedded registry and
# its YAML loader, the route feed and the etcd sync (docs/discovery.md).
# Paths relative to this folder.
set(ATBUS_DISCOVERY_SOURCES
  record.c
  path.c
  validate.c
  doc.c
  decode.c
  json.c
  yaml.c
  match.c
  registry.c
  load.c
  nameset.c
  route_feed.c
  sync.c
)
