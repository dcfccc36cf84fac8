# Discovery: records, matching and selection, the embedded registry and
# its YAML loader (docs/discovery.md). Paths relative to this folder.
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
)
