/*
 * The session: keys the client owns, kept on one lease.
 *
 * Rules (DESIGN §8): a node's record and its route are written in one
 * transaction on one lease, so a watcher never sees one without the
 * other and both vanish together when the node dies.
 *
 *   no lease      grant one, then write every owned key
 *   dirty keys    one txn (up to ATB_ETCD_TXN_MAX keys) on the lease:
 *                 puts for owned keys, deletes for unset ones
 *   lease held    keep-alive every TTL/3; REGISTERED once all is written
 *   lease lost    keep-alive without TTL, or a txn answering "lease not
 *                 found": report LOST, grant a new lease, rewrite all
 *
 * The grant, txn and keep-alive calls retry over the endpoints until
 * they get an answer (backing off between rounds), so an etcd outage
 * only delays the session; an answer that is an error (auth, malformed)
 * is retried after a backoff.
 */
#include "etcd/etcd_internal.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"

static void session_kick(atb_etcd *c);

static void
owned_free(etcd_owned *o)
{
    atb_free(o->key);
    atb_free(o->value);
    atb_free(o);
}

static etcd_owned *
session_find(etcd_session *s, const char *key)
{
    for (etcd_owned *o = s->keys; o != NULL; o = o->next) {
        if (strcmp(o->key, key) == 0) {
            return o;
        }
    }
    return NULL;
}

/* session_drop_removed forgets unset keys: their lease is gone, and so
 * are they. */
static void
session_drop_removed(etcd_session *s)
{
    etcd_owned **pp = &s->keys;
    while (*pp != NULL) {
        etcd_owned *o = *pp;
        if (o->removed) {
            *pp = o->next;
            s->nkeys--;
            owned_free(o);
        } else {
            pp = &o->next;
        }
    }
}

static void
session_report(atb_etcd *c, int state, int64_t lease, int err)
{
    if (c->cbs.on_session != NULL) {
        c->cbs.on_session(state, lease, err, c->cb_arg);
    }
}

/* session_stop_lease cancels everything tied to the current lease. */
static void
session_stop_lease(etcd_session *s)
{
    atb_etcd_call_cancel(s->write);
    s->write = NULL;
    atb_etcd_call_cancel(s->keepalive);
    s->keepalive = NULL;
    atb_timer_stop(&s->ka_timer);
    atb_timer_stop(&s->retry_timer);
    for (etcd_owned *o = s->keys; o != NULL; o = o->next) {
        o->in_txn = 0;
        o->written_gen = 0;
    }
    s->lease = 0;
    s->registered = 0;
    s->failures = 0;
}

static void
session_lost(atb_etcd *c, int err)
{
    etcd_session *s = &c->session;
    int64_t old = s->lease;
    session_stop_lease(s);
    session_drop_removed(s);
    c->stats.leases_lost++;
    session_kick(c);
    session_report(c, ATB_ETCD_SESSION_LOST, old, err);
}

static void
session_retry_fire(atb_timer *t, void *arg)
{
    (void)t;
    session_kick(arg);
}

/* session_retry backs off after an answer that was an error. */
static void
session_retry(atb_etcd *c)
{
    etcd_session *s = &c->session;
    uint64_t delay = atb_etcd_backoff_us(c, s->failures);
    s->failures++;
    /* ENOMEM leaves the session idle until the next update. */
    (void)atb_timer_start(c->loop, &s->retry_timer, delay, 0);
}

static void
session_keepalive_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    etcd_session *s = &c->session;
    s->keepalive = NULL;
    if (res->err == ATBUS_ENOTFOUND) {
        session_lost(c, res->err);
    } else if (res->err == ATBUS_OK) {
        s->ttl = res->ttl;
        c->stats.keepalives++;
    }
    /* Other errors: the next period tries again. */
}

static void
session_keepalive_fire(atb_timer *t, void *arg)
{
    (void)t;
    atb_etcd *c = arg;
    etcd_session *s = &c->session;
    if (s->keepalive != NULL || s->lease == 0) {
        return;
    }
    atb_etcd_call *call;
    if (atb_etcd_call_internal(c, ATB_ETCD_CALL_KEEPALIVE, 0,
                               session_keepalive_done, &call) != ATBUS_OK) {
        return;
    }
    atb_etcd_body_int(&call->body, "ID", s->lease);
    if (atb_etcd_call_start(call) == ATBUS_OK) {
        s->keepalive = call;
    }
}

static void
session_grant_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    etcd_session *s = &c->session;
    s->write = NULL;
    if (res->err != ATBUS_OK) {
        session_retry(c);
        return;
    }
    s->lease = res->lease;
    s->ttl = res->ttl;
    s->failures = 0;
    c->stats.lease_grants++;
    session_drop_removed(s);
    uint64_t period = (uint64_t)res->ttl * 1000000 / 3;
    /* ENOMEM: no keep-alive; the lease expires and is granted again. */
    (void)atb_timer_start(c->loop, &s->ka_timer, period, period);
    session_kick(c);
}

static void
session_grant(atb_etcd *c)
{
    etcd_session *s = &c->session;
    atb_etcd_call *call;
    if (atb_etcd_call_internal(c, ATB_ETCD_CALL_GRANT, 0, session_grant_done,
                               &call) != ATBUS_OK) {
        session_retry(c);
        return;
    }
    atb_etcd_body_int(&call->body, "TTL", c->cfg.lease_ttl_s);
    if (atb_etcd_call_start(call) != ATBUS_OK) {
        session_retry(c);
        return;
    }
    s->write = call;
}

static void
session_write_done(const atb_etcd_result *res, void *arg)
{
    atb_etcd *c = arg;
    etcd_session *s = &c->session;
    s->write = NULL;
    if (res->err == ATBUS_ENOTFOUND) {
        session_lost(c, res->err);
        return;
    }
    etcd_owned **pp = &s->keys;
    while (*pp != NULL) {
        etcd_owned *o = *pp;
        if (o->in_txn && res->err == ATBUS_OK) {
            o->written_gen = o->sent_gen;
        }
        o->in_txn = 0;
        if (o->removed && o->written_gen == o->gen) {
            *pp = o->next;
            s->nkeys--;
            owned_free(o);
        } else {
            pp = &o->next;
        }
    }
    if (res->err != ATBUS_OK) {
        session_retry(c);
        return;
    }
    s->failures = 0;
    session_kick(c);
}

/* session_write sends one txn with up to ATB_ETCD_TXN_MAX dirty keys. */
static void
session_write(atb_etcd *c)
{
    etcd_session *s = &c->session;
    atb_etcd_call *call;
    if (atb_etcd_call_internal(c, ATB_ETCD_CALL_TXN, 0, session_write_done,
                               &call) != ATBUS_OK) {
        session_retry(c);
        return;
    }
    atb_etcd_buf *b = &call->body;
    atb_etcd_buf_str(b, "{\"success\":[");
    size_t n = 0;
    for (etcd_owned *o = s->keys; o != NULL && n < ATB_ETCD_TXN_MAX;
         o = o->next) {
        if (o->gen == o->written_gen) {
            continue;
        }
        atb_etcd_buf_str(b, n == 0 ? "{" : ",{");
        if (o->removed) {
            atb_etcd_buf_str(b, "\"request_delete_range\":{");
            atb_etcd_body_key(c, b, o->key, 0);
            atb_etcd_buf_str(b, "}}");
        } else {
            atb_etcd_buf_str(b, "\"request_put\":");
            atb_etcd_body_put(c, b, o->key, o->value, o->value_len, s->lease);
            atb_etcd_buf_str(b, "}");
        }
        o->sent_gen = o->gen;
        o->in_txn = 1;
        n++;
    }
    atb_etcd_buf_str(b, "]}");
    if (atb_etcd_call_start(call) != ATBUS_OK) {
        for (etcd_owned *o = s->keys; o != NULL; o = o->next) {
            o->in_txn = 0;
        }
        session_retry(c);
        return;
    }
    s->write = call;
}

/* session_kick does the next step, if nothing is in flight. */
static void
session_kick(atb_etcd *c)
{
    etcd_session *s = &c->session;
    if (c->closed || s->write != NULL || atb_timer_active(&s->retry_timer)) {
        return;
    }
    if (s->lease == 0) {
        session_drop_removed(s);
        if (s->nkeys > 0) {
            session_grant(c);
        }
        return;
    }
    for (etcd_owned *o = s->keys; o != NULL; o = o->next) {
        if (o->gen != o->written_gen) {
            session_write(c);
            return;
        }
    }
    if (!s->registered) {
        s->registered = 1;
        session_report(c, ATB_ETCD_SESSION_REGISTERED, s->lease, ATBUS_OK);
    }
}

int
atb_etcd_session_set(atb_etcd *c, const atb_etcd_pair *puts, size_t n)
{
    if (c == NULL || puts == NULL || n == 0) {
        return ATBUS_EINVAL;
    }
    if (c->closed) {
        return ATBUS_ECLOSED;
    }
    for (size_t i = 0; i < n; i++) {
        if (puts[i].key == NULL || puts[i].key[0] == '\0' ||
            (puts[i].value == NULL && puts[i].value_len > 0)) {
            return ATBUS_EINVAL;
        }
    }
    /* Copy everything first, so a failure changes nothing. */
    etcd_owned **fresh = atb_calloc(n, sizeof(*fresh));
    if (fresh == NULL) {
        return ATBUS_ENOMEM;
    }
    int oom = 0;
    for (size_t i = 0; i < n && !oom; i++) {
        fresh[i] = atb_calloc(1, sizeof(etcd_owned));
        oom = fresh[i] == NULL;
        if (!oom) {
            fresh[i]->key = atb_strdup(puts[i].key);
            fresh[i]->value = atb_malloc(puts[i].value_len + 1);
            oom = fresh[i]->key == NULL || fresh[i]->value == NULL;
        }
        if (!oom) {
            if (puts[i].value_len > 0) {
                memcpy(fresh[i]->value, puts[i].value, puts[i].value_len);
            }
            fresh[i]->value[puts[i].value_len] = '\0';
            fresh[i]->value_len = puts[i].value_len;
        }
    }
    etcd_session *s = &c->session;
    for (size_t i = 0; i < n; i++) {
        etcd_owned *f = fresh[i];
        if (oom) {
            if (f != NULL) {
                owned_free(f);
            }
            continue;
        }
        etcd_owned *o = session_find(s, f->key);
        if (o == NULL) {
            f->next = s->keys;
            s->keys = f;
            s->nkeys++;
            o = f;
        } else {
            atb_free(o->value);
            o->value = f->value;
            o->value_len = f->value_len;
            o->removed = 0;
            f->value = NULL;
            owned_free(f);
        }
        o->gen = ++s->gen;
    }
    atb_free(fresh);
    if (oom) {
        return ATBUS_ENOMEM;
    }
    session_kick(c);
    return ATBUS_OK;
}

int
atb_etcd_session_unset(atb_etcd *c, const char *key)
{
    if (c == NULL || key == NULL) {
        return ATBUS_EINVAL;
    }
    if (c->closed) {
        return ATBUS_ECLOSED;
    }
    etcd_owned *o = session_find(&c->session, key);
    if (o == NULL || o->removed) {
        return ATBUS_ENOTFOUND;
    }
    o->removed = 1;
    o->gen = ++c->session.gen;
    session_kick(c);
    return ATBUS_OK;
}

int64_t
atb_etcd_session_lease(const atb_etcd *c)
{
    return c->session.lease;
}

/* session_forget drops every key and the lease, without a word to etcd. */
static void
session_forget(etcd_session *s)
{
    session_stop_lease(s);
    while (s->keys != NULL) {
        etcd_owned *o = s->keys;
        s->keys = o->next;
        owned_free(o);
    }
    s->nkeys = 0;
}

static void
session_ignore(const atb_etcd_result *res, void *arg)
{
    (void)res;
    (void)arg;
}

int
atb_etcd_session_revoke(atb_etcd *c, atb_etcd_cb cb, void *arg)
{
    if (c == NULL) {
        return ATBUS_EINVAL;
    }
    if (c->closed) {
        return ATBUS_ECLOSED;
    }
    int64_t lease = c->session.lease;
    if (lease == 0) {
        session_forget(&c->session);
        return ATBUS_ENOTFOUND;
    }
    int rc =
        atb_etcd_lease_revoke(c, lease, cb != NULL ? cb : session_ignore, arg);
    if (rc == ATBUS_OK) {
        session_forget(&c->session);
    }
    return rc;
}

void
atb_etcd_session_init(atb_etcd *c)
{
    atb_timer_init(&c->session.ka_timer, session_keepalive_fire, c);
    atb_timer_init(&c->session.retry_timer, session_retry_fire, c);
}

void
atb_etcd_session_close(atb_etcd *c)
{
    session_forget(&c->session);
}
