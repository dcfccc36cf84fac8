/* Shared pieces of the etcd suites (see etcd_harness.h). */
#include "etcd_harness.h"

#include <atbus/error.h>

#include <stdio.h>
#include <string.h>

#include "common/clock.h"

void
h_op_cb(const atb_etcd_result *res, void *arg)
{
    h_op *op = arg;
    op->done++;
    op->err = res->err;
    snprintf(op->detail, sizeof(op->detail), "%s", res->detail);
    op->revision = res->revision;
    op->lease = res->lease;
    op->ttl = res->ttl;
    op->deleted = res->deleted;
    op->count = res->count;
    op->succeeded = res->succeeded;
    op->nkvs = res->nkvs;
    for (size_t i = 0; i < res->nkvs && i < H_MAX_KVS; i++) {
        snprintf(op->key[i], H_KEY, "%.*s", (int)res->kvs[i].key_len,
                 res->kvs[i].key);
        snprintf(op->value[i], H_VALUE, "%.*s", (int)res->kvs[i].value_len,
                 res->kvs[i].value);
        op->kv_lease[i] = res->kvs[i].lease;
        op->kv_mod[i] = res->kvs[i].mod_revision;
    }
}

/* view_index returns key's slot in the view, or nview. */
static size_t
view_index(const h_client *t, const char *key, size_t len)
{
    size_t i = 0;
    while (i < t->nview && !(strlen(t->view[i].key) == len &&
                             memcmp(t->view[i].key, key, len) == 0)) {
        i++;
    }
    return i;
}

const h_entry *
h_view_get(const h_client *t, const char *key)
{
    size_t i = view_index(t, key, strlen(key));
    return i < t->nview ? &t->view[i] : NULL;
}

static void
h_on_event(int kind, const char *key, size_t key_len, const char *value,
           size_t value_len, int64_t rev, void *arg)
{
    h_client *t = arg;
    size_t i = view_index(t, key, key_len);
    h_entry *e = i < t->nview ? &t->view[i] : NULL;
    if (kind == ATB_ETCD_DELETE) {
        t->deletes++;
        if (e != NULL) {
            *e = t->view[--t->nview];
        }
        return;
    }
    t->puts++;
    if (e == NULL && t->nview < H_VIEW_MAX) {
        e = &t->view[t->nview++];
        snprintf(e->key, H_KEY, "%.*s", (int)key_len, key);
    }
    if (e != NULL) {
        snprintf(e->value, H_VALUE, "%.*s", (int)value_len, value);
        e->rev = rev;
    }
}

static void
h_on_watch_state(int state, uint64_t since_us, int err, const char *detail,
                 void *arg)
{
    h_client *t = arg;
    t->state = state;
    if (state == ATB_ETCD_WATCH_SYNCED) {
        t->synced++;
    } else {
        t->stale++;
        t->since = since_us;
        t->err = err;
        snprintf(t->detail, sizeof(t->detail), "%s", detail);
    }
}

static void
h_on_session(int state, int64_t lease, int err, void *arg)
{
    (void)err;
    h_client *t = arg;
    if (state == ATB_ETCD_SESSION_REGISTERED) {
        t->registered++;
        t->lease = lease;
    } else {
        t->lost++;
    }
}

static const atb_etcd_callbacks h_callbacks = {
    .on_event = h_on_event,
    .on_watch_state = h_on_watch_state,
    .on_session = h_on_session,
};

void
h_client_config(atb_etcd_config *cfg, const char *const *endpoints, size_t n,
                const char *prefix, uint32_t ttl_s)
{
    atb_etcd_config_default(cfg);
    for (size_t i = 0; i < n; i++) {
        cfg->endpoints[i] = endpoints[i];
    }
    cfg->endpoint_count = n;
    cfg->prefix = prefix;
    cfg->lease_ttl_s = ttl_s;
    cfg->backoff_min_ms = 50;
    cfg->backoff_max_ms = 500;
    cfg->seed = 42;
}

int
h_client_new(h_client *t, atb_loop *loop, const atb_etcd_config *cfg)
{
    memset(t, 0, sizeof(*t));
    return atb_etcd_new(&t->c, loop, cfg, &h_callbacks, t);
}

int
h_pump(atb_loop *loop, const int *counter, int want, int ms)
{
    uint64_t end = atb_clock_us() + (uint64_t)ms * 1000;
    while (*counter < want && atb_clock_us() < end) {
        atb_loop_poll(loop, 20);
    }
    return *counter >= want;
}

int
h_pump_until(atb_loop *const *loops, size_t n, int (*cond)(void *), void *arg,
             int ms)
{
    uint64_t end = atb_clock_us() + (uint64_t)ms * 1000;
    while (!cond(arg) && atb_clock_us() < end) {
        for (size_t i = 0; i < n; i++) {
            atb_loop_poll(loops[i], n == 1 ? 20 : 5);
        }
    }
    return cond(arg);
}

void
h_pump_for(atb_loop *loop, int ms)
{
    uint64_t end = atb_clock_us() + (uint64_t)ms * 1000;
    while (atb_clock_us() < end) {
        atb_loop_poll(loop, 20);
    }
}
