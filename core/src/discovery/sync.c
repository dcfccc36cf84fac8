/*
 * The etcd sync (sync.h): watch events -> registry, own records ->
 * session keys, watch and session states -> one status.
 *
 * Each event is handled on its own: a value is decoded and checked
 * against its key, then mirrored into the registry or refused. A refused
 * value also removes the record the key held before, so the registry
 * always holds exactly the valid records etcd holds (plus what was put
 * by other means); the refused keys are remembered only to count them
 * and to report each bad value once.
 */
#include "discovery/sync.h"

#include <atbus/error.h>
#include <atbus/route.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "discovery/disc.h"
#include "discovery/nameset.h"

/* The record folders of the etcd key layout (DESIGN §8). */
static const enum atbus_registry_table sync_tables[] = {
    ATBUS_REGISTRY_NODES,
    ATBUS_REGISTRY_GROUPS,
    ATBUS_REGISTRY_ROUTES,
};
#define SYNC_NTABLES (sizeof(sync_tables) / sizeof(sync_tables[0]))

/* A record key is "/" folder "/" name. */
#define SYNC_KEY_MAX (ATBUS_NAME_MAX + 16)

/* One published record: its key and the text last handed to the
 * session, so an unchanged record is not written again. */
struct sync_own {
    char key[SYNC_KEY_MAX];
    char *json; /* NULL: not published */
};

struct atb_disc_sync {
    atb_etcd *etcd;
    atbus_registry *reg;
    atb_disc_sync_callbacks cbs;
    void *arg;
    atb_disc_nameset rejected; /* keys whose value is refused */
    atb_disc_sync_status status;
    struct sync_own own[2]; /* node record, route record */
};

/* ---- keys and values ---------------------------------------------------
 */

/* sync_key_parse splits a record key into its table and name (name_len
 * bytes, not NUL-terminated). Returns 0 for any other key. */
static int
sync_key_parse(const char *key, size_t len, enum atbus_registry_table *table,
               const char **name, size_t *name_len)
{
    for (size_t i = 0; i < SYNC_NTABLES; i++) {
        const char *folder = atb_disc_table_name(sync_tables[i]);
        size_t n = strlen(folder);
        if (len > n + 2 && key[0] == '/' && memcmp(key + 1, folder, n) == 0 &&
            key[n + 1] == '/') {
            *table = sync_tables[i];
            *name = key + n + 2;
            *name_len = len - n - 2;
            return 1;
        }
    }
    return 0;
}

int
atb_disc_sync_key(enum atbus_registry_table table, const char *name, char *buf,
                  size_t size)
{
    if (name == NULL || buf == NULL || table < ATBUS_REGISTRY_NODES ||
        table > ATBUS_REGISTRY_ROUTES) {
        return ATBUS_EINVAL;
    }
    int n = snprintf(buf, size, "/%s/%s", atb_disc_table_name(table), name);
    return n >= 0 && (size_t)n < size ? ATBUS_OK : ATBUS_ENOBUFS;
}

int
atb_disc_sync_decode(const char *key, size_t key_len, const char *value,
                     size_t value_len, enum atbus_registry_table *table,
                     atbus_record *rec, atbus_record_error *err)
{
    atb_disc_error_clear(err);
    if (rec == NULL || key == NULL || (value == NULL && value_len > 0)) {
        return atb_disc_error_set(err, ATBUS_EINVAL, "no key or record");
    }
    atbus_record_init(rec);
    enum atbus_registry_table t;
    const char *name;
    size_t name_len;
    if (!sync_key_parse(key, key_len, &t, &name, &name_len)) {
        return ATBUS_ENOTSUP;
    }
    if (table != NULL) {
        *table = t;
    }
    int rc = atb_disc_record_from_json_in(value != NULL ? value : "", value_len,
                                          t, rec, err);
    if (rc == ATBUS_OK && (strlen(rec->name) != name_len ||
                           memcmp(rec->name, name, name_len) != 0)) {
        atb_disc_error_set(err, ATBUS_ERECORD,
                           "the name does not match the key (%.*s)",
                           (int)(name_len < 64 ? name_len : 64), name);
        if (err != NULL) {
            snprintf(err->path, sizeof(err->path), "name");
            atb_disc_error_name(err, rec->name, strlen(rec->name));
        }
        atbus_record_fini(rec);
        rc = ATBUS_ERECORD;
    }
    return rc;
}

/* ---- watch -------------------------------------------------------------
 */

/* sync_forget removes the record a key names, if its name can be one
 * (a key holding a NUL or an overlong name never made a record). */
static void
sync_forget(atb_disc_sync *s, enum atbus_registry_table table, const char *name,
            size_t name_len)
{
    char buf[ATBUS_NAME_MAX + 1];
    if (name_len >= sizeof(buf) || memchr(name, '\0', name_len) != NULL) {
        return;
    }
    memcpy(buf, name, name_len);
    buf[name_len] = '\0';
    /* ENOTFOUND: the key held nothing valid before. */
    (void)atbus_registry_remove(s->reg, table, buf);
}

static void
sync_reject(atb_disc_sync *s, const char *key, const atbus_record_error *err)
{
    /* Out of memory here only makes the count low. */
    (void)atb_disc_nameset_put(&s->rejected, key, 0);
    if (s->cbs.on_reject != NULL) {
        s->cbs.on_reject(key, err, s->arg);
    }
}

static void
sync_put(atb_disc_sync *s, const char *key, size_t key_len, const char *value,
         size_t value_len)
{
    enum atbus_registry_table table;
    const char *name;
    size_t name_len;
    if (!sync_key_parse(key, key_len, &table, &name, &name_len)) {
        return;
    }
    atbus_record rec;
    atbus_record_error err;
    int rc =
        atb_disc_sync_decode(key, key_len, value, value_len, NULL, &rec, &err);
    if (rc == ATBUS_OK) {
        rc = atb_disc_registry_mirror(s->reg, &rec);
        if (rc != ATBUS_OK) {
            atb_disc_error_set(&err, rc, "%s",
                               rc == ATBUS_ENOMEM
                                   ? "out of memory"
                                   : "the registry is being changed");
            atb_disc_error_name(&err, rec.name, strlen(rec.name));
        }
        atbus_record_fini(&rec);
    }
    if (rc == ATBUS_OK) {
        atb_disc_nameset_remove(&s->rejected, key);
        return;
    }
    sync_forget(s, table, name, name_len);
    sync_reject(s, key, &err);
}

static void
sync_delete(atb_disc_sync *s, const char *key, size_t key_len)
{
    enum atbus_registry_table table;
    const char *name;
    size_t name_len;
    if (sync_key_parse(key, key_len, &table, &name, &name_len)) {
        atb_disc_nameset_remove(&s->rejected, key);
        sync_forget(s, table, name, name_len);
    }
}

static void
sync_on_event(int kind, const char *key, size_t key_len, const char *value,
              size_t value_len, int64_t mod_revision, void *arg)
{
    atb_disc_sync *s = arg;
    if (mod_revision > s->status.revision) {
        s->status.revision = mod_revision;
    }
    /* Keys with a NUL cannot be the name of a record; the etcd client
     * ends every key with one, so strlen finds it. */
    if (strlen(key) != key_len) {
        return;
    }
    if (kind == ATB_ETCD_PUT) {
        sync_put(s, key, key_len, value, value_len);
    } else {
        sync_delete(s, key, key_len);
    }
}

static void
sync_report(atb_disc_sync *s)
{
    if (s->cbs.on_state != NULL) {
        atb_disc_sync_status st;
        atb_disc_sync_status_get(s, &st);
        s->cbs.on_state(&st, s->arg);
    }
}

static void
sync_on_watch_state(int state, uint64_t since_us, int err, const char *detail,
                    void *arg)
{
    atb_disc_sync *s = arg;
    atb_disc_sync_status *st = &s->status;
    if (state == ATB_ETCD_WATCH_SYNCED) {
        st->state = ATB_DISC_SYNC_SYNCED;
        st->stale_since_us = 0;
        st->err = ATBUS_OK;
        st->detail[0] = '\0';
    } else {
        st->state = ATB_DISC_SYNC_STALE;
        st->stale_since_us = since_us;
        st->err = err;
        snprintf(st->detail, sizeof(st->detail), "%s",
                 detail != NULL ? detail : "");
    }
    sync_report(s);
}

static void
sync_on_session(int state, int64_t lease, int err, void *arg)
{
    (void)err;
    atb_disc_sync *s = arg;
    int registered = state == ATB_ETCD_SESSION_REGISTERED;
    s->status.published = registered;
    s->status.lease = registered ? lease : 0;
    sync_report(s);
}

static const atb_etcd_callbacks sync_etcd_callbacks = {
    .on_event = sync_on_event,
    .on_watch_state = sync_on_watch_state,
    .on_session = sync_on_session,
};

/* ---- life cycle --------------------------------------------------------
 */

int
atb_disc_sync_new(atb_disc_sync **out, atb_loop *loop,
                  const atb_etcd_config *cfg, atbus_registry *reg,
                  const atb_disc_sync_callbacks *cbs, void *arg)
{
    if (out == NULL || loop == NULL || cfg == NULL || reg == NULL) {
        return ATBUS_EINVAL;
    }
    *out = NULL;
    atb_disc_sync *s = atb_calloc(1, sizeof(*s));
    if (s == NULL) {
        return ATBUS_ENOMEM;
    }
    s->reg = reg;
    if (cbs != NULL) {
        s->cbs = *cbs;
    }
    s->arg = arg;
    atb_disc_nameset_init(&s->rejected);
    /* Keys are "/nodes/<name>" under the prefix, so "/atbus/" must mean
     * "/atbus": otherwise every key would hold "//". */
    atb_etcd_config c = *cfg;
    char *trimmed = NULL;
    size_t n = cfg->prefix != NULL ? strlen(cfg->prefix) : 0;
    size_t keep = n;
    while (keep > 0 && cfg->prefix[keep - 1] == '/') {
        keep--;
    }
    if (keep != n) {
        trimmed = atb_disc_strndup(cfg->prefix, keep);
        c.prefix = trimmed;
    }
    int rc = keep != n && trimmed == NULL
                 ? ATBUS_ENOMEM
                 : atb_etcd_new(&s->etcd, loop, &c, &sync_etcd_callbacks, s);
    atb_free(trimmed);
    if (rc != ATBUS_OK) {
        atb_free(s);
        return rc;
    }
    *out = s;
    return ATBUS_OK;
}

void
atb_disc_sync_free(atb_disc_sync *s)
{
    if (s == NULL) {
        return;
    }
    atb_etcd_free(s->etcd);
    atb_disc_nameset_fini(&s->rejected);
    for (size_t i = 0; i < 2; i++) {
        atbus_record_json_free(s->own[i].json);
    }
    atb_free(s);
}

int
atb_disc_sync_start(atb_disc_sync *s)
{
    return s != NULL ? atb_etcd_watch_start(s->etcd, "") : ATBUS_EINVAL;
}

atb_etcd *
atb_disc_sync_client(const atb_disc_sync *s)
{
    return s != NULL ? s->etcd : NULL;
}

void
atb_disc_sync_status_get(const atb_disc_sync *s, atb_disc_sync_status *out)
{
    *out = s->status;
    out->rejected = s->rejected.count;
    /* Progress notifications move the watch past the last event. */
    int64_t rev = atb_etcd_watch_revision(s->etcd);
    if (rev > out->revision) {
        out->revision = rev;
    }
}

/* ---- publishing --------------------------------------------------------
 */

/* sync_encode checks one own record and encodes it with its key. */
static int
sync_encode(const atbus_record *rec, enum atbus_registry_table table,
            struct sync_own *next, atbus_record_error *err)
{
    int rc = atbus_record_validate(rec, err);
    if (rc == ATBUS_OK && atb_disc_table_of(rec) != table) {
        rc = atb_disc_error_set(err, ATBUS_ERECORD,
                                "a %s record cannot be published as one of "
                                "%s",
                                atbus_record_type_name(rec->type),
                                atb_disc_table_name(table));
        if (err != NULL) {
            snprintf(err->path, sizeof(err->path), "type");
        }
    }
    if (rc == ATBUS_OK) {
        rc = atb_disc_sync_key(table, rec->name, next->key, sizeof(next->key));
    }
    if (rc == ATBUS_OK) {
        rc = atbus_record_to_json(rec, &next->json);
    }
    return rc;
}

/* sync_changed says whether next (encoded) differs from what cur
 * published: nothing yet, another key, or another text. */
static int
sync_changed(const struct sync_own *cur, const struct sync_own *next)
{
    return cur->json == NULL || strcmp(cur->key, next->key) != 0 ||
           strcmp(cur->json, next->json) != 0;
}

int
atb_disc_sync_publish(atb_disc_sync *s, const atbus_record *node,
                      const atbus_record *route, atbus_record_error *err)
{
    atb_disc_error_clear(err);
    if (s == NULL || node == NULL) {
        return atb_disc_error_set(err, ATBUS_EINVAL, "no sync or node record");
    }
    struct sync_own next[2];
    memset(next, 0, sizeof(next));
    int rc = sync_encode(node, ATBUS_REGISTRY_NODES, &next[0], err);
    if (rc == ATBUS_OK && route != NULL) {
        rc = sync_encode(route, ATBUS_REGISTRY_ROUTES, &next[1], err);
        if (rc == ATBUS_OK && strcmp(route->name, node->name) != 0) {
            rc = atb_disc_error_set(err, ATBUS_ERECORD,
                                    "the route record is not the node's "
                                    "(%.64s)",
                                    node->name);
            if (err != NULL) {
                snprintf(err->path, sizeof(err->path), "name");
                atb_disc_error_name(err, route->name, strlen(route->name));
            }
        }
    }
    atb_etcd_pair puts[2];
    size_t nputs = 0;
    for (size_t i = 0; i < 2 && rc == ATBUS_OK; i++) {
        if (next[i].json != NULL && sync_changed(&s->own[i], &next[i])) {
            puts[nputs].key = next[i].key;
            puts[nputs].value = next[i].json;
            puts[nputs].value_len = strlen(next[i].json);
            nputs++;
        }
    }
    if (rc == ATBUS_OK && nputs > 0) {
        rc = atb_etcd_session_set(s->etcd, puts, nputs);
    }
    if (rc != ATBUS_OK) {
        if (rc == ATBUS_ENOMEM || rc == ATBUS_ECLOSED) {
            atb_disc_error_set(err, rc, "%s", atbus_strerror(rc));
        }
        for (size_t i = 0; i < 2; i++) {
            atbus_record_json_free(next[i].json);
        }
        return rc;
    }
    /* Keys given up (no route any more, or a new name) are deleted in the
     * session's next transaction, together with the new ones. */
    for (size_t i = 0; i < 2; i++) {
        struct sync_own *cur = &s->own[i];
        if (cur->json != NULL &&
            (next[i].json == NULL || strcmp(cur->key, next[i].key) != 0)) {
            (void)atb_etcd_session_unset(s->etcd, cur->key);
        }
        atbus_record_json_free(cur->json);
        *cur = next[i];
    }
    return ATBUS_OK;
}

int
atb_disc_sync_unpublish(atb_disc_sync *s)
{
    if (s == NULL) {
        return ATBUS_EINVAL;
    }
    int rc = atb_etcd_session_revoke(s->etcd, NULL, NULL);
    for (size_t i = 0; i < 2 && rc != ATBUS_ENOMEM && rc != ATBUS_ECLOSED;
         i++) {
        atbus_record_json_free(s->own[i].json);
        s->own[i].json = NULL;
    }
    if (rc == ATBUS_OK && s->status.published) {
        s->status.published = 0;
        s->status.lease = 0;
        sync_report(s);
    }
    return rc;
}
