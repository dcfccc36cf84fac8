# The etcd v3 client (docs/etcd.md).
set(ATBUS_ETCD_SOURCES
  etcd_b64.c
  etcd_buf.c
  etcd_http.c
  etcd_json.c
  etcd.c
  etcd_session.c
  etcd_watch.c
)
