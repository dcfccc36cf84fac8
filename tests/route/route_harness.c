/*
 * Route test helpers (see route_harness.h).
 */
#include "route_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

int
rh_report(atb_route_registry *reg, const char *name, const char *ups)
{
    char buf[1024];
    const char *list[ATBUS_ROUTE_MAX_UPSTREAMS + 2];
    size_t n = 0;
    ck_assert_uint_lt(strlen(ups), sizeof(buf));
    strcpy(buf, ups);
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        ck_assert_uint_lt(n, sizeof(list) / sizeof(list[0]));
        list[n++] = tok;
    }
    atbus_route_error err;
    int rc = atb_route_set_upstreams(reg, name, list, n, &err);
    if (rc == ATBUS_OK) {
        ck_assert_str_eq(err.text, "");
    } else {
        ck_assert_str_ne(err.text, "");
    }
    return rc;
}

void
rh_set(atb_route_registry *reg, const char *name, const char *ups)
{
    int rc = rh_report(reg, name, ups);
    ck_assert_msg(rc == ATBUS_OK, "%s -> [%s]: %s", name, ups,
                  atbus_err_name(rc));
}

atbus_relation
rh_relation(atb_route_registry *reg, const char *x, const char *y)
{
    atbus_relation r = 0;
    int rc = atb_route_relation(reg, x, y, &r);
    ck_assert_msg(rc == ATBUS_OK, "relation(%s, %s): %s", x, y,
                  atbus_err_name(rc));
    return r;
}

typedef struct rh_lines {
    char **line;
    size_t count;
} rh_lines;

static void
rh_dump_node(const atb_route_node *n, void *arg)
{
    rh_lines *l = arg;
    char buf[8192];
    int len = snprintf(buf, sizeof(buf), "%s up=%d reported=%d refs=%u [",
                       n->name, n->up, n->reported, n->refs);
    for (uint16_t i = 0; i < n->nups; i++) {
        len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s%s",
                        i > 0 ? "," : "", n->ups[i]->name);
    }
    snprintf(buf + len, sizeof(buf) - (size_t)len, "]");
    size_t size = strlen(buf) + 1;
    l->line[l->count] = malloc(size);
    ck_assert_ptr_nonnull(l->line[l->count]);
    memcpy(l->line[l->count], buf, size);
    l->count++;
}

static int
rh_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *
rh_dump(const atb_route_registry *reg)
{
    rh_lines l = {calloc(atb_route_count(reg) + 1, sizeof(char *)), 0};
    ck_assert_ptr_nonnull(l.line);
    atb_route_foreach(reg, rh_dump_node, &l);
    ck_assert_uint_eq(l.count, atb_route_count(reg));
    qsort(l.line, l.count, sizeof(char *), rh_cmp);
    size_t total = 1;
    for (size_t i = 0; i < l.count; i++) {
        total += strlen(l.line[i]) + 1;
    }
    char *out = malloc(total);
    ck_assert_ptr_nonnull(out);
    out[0] = '\0';
    char *p = out;
    for (size_t i = 0; i < l.count; i++) {
        size_t n = strlen(l.line[i]);
        memcpy(p, l.line[i], n);
        p[n] = '\n';
        p += n + 1;
        *p = '\0';
        free(l.line[i]);
    }
    free(l.line);
    return out;
}

void
rh_verify(atb_route_registry *reg)
{
    const char *why = NULL;
    int rc = atb_route_registry_verify(reg, &why);
    ck_assert_msg(rc == ATBUS_OK, "registry broken: %s",
                  why != NULL ? why : atbus_err_name(rc));
}

/* ---- the world ---- */

static rh_node *
rh_world_find(rh_world *w, const char *name)
{
    for (size_t i = 0; i < w->count; i++) {
        if (strcmp(w->nodes[i].name, name) == 0) {
            return &w->nodes[i];
        }
    }
    return NULL;
}

static const void *
rh_world_record(const char *name, void *arg)
{
    return rh_world_find(arg, name);
}

static const char *
rh_world_attr(const void *record, const char *key, void *arg)
{
    (void)arg;
    const rh_node *n = record;
    if (strcmp(key, "name") == 0) {
        return n->name;
    }
    for (size_t i = 0; i < n->nattrs; i++) {
        if (strcmp(n->keys[i], key) == 0) {
            return n->values[i];
        }
    }
    return NULL;
}

static int
rh_world_peer_state(const char *name, void *arg)
{
    rh_world *w = arg;
    if (w->nasked < sizeof(w->asked) / sizeof(w->asked[0])) {
        snprintf(w->asked[w->nasked++], sizeof(w->asked[0]), "%s", name);
    }
    const rh_node *n = rh_world_find(w, name);
    if (n == NULL) {
        return ATB_ROUTE_PEER_UNREACHABLE;
    }
    if (n->state != ATB_ROUTE_PEER_DIALABLE || n->naccepts == 0) {
        return n->state;
    }
    const rh_node *local = rh_world_find(w, w->local);
    for (size_t i = 0; local != NULL && i < n->naccepts; i++) {
        const char *v = rh_world_attr(local, n->accept_keys[i], NULL);
        if (v != NULL && strcmp(v, n->accept_values[i]) == 0) {
            return ATB_ROUTE_PEER_DIALABLE;
        }
    }
    return ATB_ROUTE_PEER_UNREACHABLE;
}

void
rh_world_init(rh_world *w, const atb_route_policy *policy)
{
    memset(w, 0, sizeof(*w));
    w->env.policy = policy;
    w->env.record = rh_world_record;
    w->env.attr = rh_world_attr;
    w->env.peer_state = rh_world_peer_state;
    w->env.arg = w;
    w->env.prefer = ATB_ROUTE_PREFER_UPSTREAM;
}

rh_node *
rh_world_add(rh_world *w, const char *name, const char *attrs)
{
    ck_assert_uint_lt(w->count, RH_MAX_NODES);
    rh_node *n = &w->nodes[w->count++];
    memset(n, 0, sizeof(*n));
    ck_assert_uint_lt(strlen(name), sizeof(n->name));
    strcpy(n->name, name);
    ck_assert_uint_lt(strlen(attrs), sizeof(n->pool));
    strcpy(n->pool, attrs);
    for (char *tok = strtok(n->pool, " "); tok != NULL;
         tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        ck_assert_ptr_nonnull(eq);
        ck_assert_uint_lt(n->nattrs, RH_MAX_ATTRS);
        *eq = '\0';
        n->keys[n->nattrs] = tok;
        n->values[n->nattrs] = eq + 1;
        n->nattrs++;
    }
    n->state = ATB_ROUTE_PEER_DIALABLE;
    return n;
}

void
rh_world_accept(rh_world *w, const char *name, const char *match)
{
    rh_node *n = rh_world_find(w, name);
    ck_assert_msg(n != NULL, "no record %s", name);
    ck_assert_uint_lt(n->naccepts, 4);
    size_t used = 0;
    for (size_t i = 0; i < n->naccepts; i++) {
        used += strlen(n->accept_keys[i]) + strlen(n->accept_values[i]) + 2;
    }
    ck_assert_uint_lt(used + strlen(match) + 1, sizeof(n->accept_pool));
    char *copy = strcpy(n->accept_pool + used, match);
    char *eq = strchr(copy, '=');
    ck_assert_ptr_nonnull(eq);
    *eq = '\0';
    n->accept_keys[n->naccepts] = copy;
    n->accept_values[n->naccepts] = eq + 1;
    n->naccepts++;
}

void
rh_world_state(rh_world *w, const char *name, int state)
{
    rh_node *n = rh_world_find(w, name);
    ck_assert_msg(n != NULL, "no record %s", name);
    n->state = state;
}

int
rh_hop(atb_route_registry *reg, rh_world *w, const char *src, const char *dst,
       atbus_next_hop *hop)
{
    w->nasked = 0;
    w->local = src;
    return atb_route_next_hop(reg, &w->env, src, dst, hop);
}

void
rh_route(atb_route_registry *reg, rh_world *w, const char *src, const char *dst,
         char *path, size_t size)
{
    char cur[ATBUS_NAME_MAX + 1];
    snprintf(cur, sizeof(cur), "%s", src);
    size_t used = (size_t)snprintf(path, size, "%s", src);
    for (int hops = 0;; hops++) {
        ck_assert_msg(hops < 16, "%s to %s loops: %s", src, dst, path);
        atbus_next_hop hop;
        int rc = rh_hop(reg, w, cur, dst, &hop);
        ck_assert_msg(rc == ATBUS_OK, "%s to %s at %s: %s (%s %s)", src, dst,
                      cur, atbus_err_name(rc), atbus_hop_kind_name(hop.kind),
                      hop.peer);
        if (hop.kind == ATBUS_HOP_LOCAL) {
            return;
        }
        snprintf(cur, sizeof(cur), "%s", hop.peer);
        used += (size_t)snprintf(path + used, size - used, ">%s", cur);
        ck_assert_uint_lt(used, size);
    }
}

atb_route_policy *
rh_policy(const char *text)
{
    atb_route_policy *p = NULL;
    atbus_route_error err;
    int rc = atb_route_policy_parse(text, &p, &err);
    ck_assert_msg(rc == ATBUS_OK, "policy: %s", err.text);
    return p;
}
