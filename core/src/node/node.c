/*
 * The node façade: configuration, listeners, dial targets with redial
 * backoff, sending by peer name, and the loop entry points.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen, gethostname */
#include "node/node_internal.h"

#include <atbus/error.h>

#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/name.h"
#include "common/rand.h"
#include "discovery/sync.h"
#include "node/backoff.h"
#include "wire/frame.h"
#include "wire/packet.h"

/* Bytes of a frame around its payload: names, fields, fragment headers,
 * hash. A connection's frame limit is max_message plus this, so a whole
 * message fits one packet on a byte stream. */
#define FRAME_OVERHEAD ((size_t)ATB_PACKET_PREFIX_MAX + 2048)

int
atbus_node_config_default(atbus_node_config *cfg)
{
    if (cfg == NULL) {
        return ATBUS_EINVAL;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_message = (size_t)1024 * 1024;
    cfg->send_buffer_limit = (size_t)8 * 1024 * 1024;
    cfg->shm_ring_size = (size_t)16 * 1024 * 1024;
    cfg->ping_interval_ms = 1000;
    cfg->peer_timeout_ms = 5000;
    cfg->register_timeout_ms = 3000;
    cfg->reconnect_min_ms = 100;
    cfg->reconnect_max_ms = 10000;
    cfg->peer_linger_ms = 30000;
    cfg->max_hops = 16;
    return ATBUS_OK;
}

static int
config_check(const atbus_node_config *cfg)
{
    if (atb_name_check(cfg->name, NULL) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    if (cfg->type != NULL && strcmp(cfg->type, "node") != 0 &&
        strcmp(cfg->type, "client") != 0) {
        return ATBUS_EINVAL;
    }
    if (cfg->listen_count > ATBUS_NODE_MAX_LISTEN || cfg->max_message == 0 ||
        cfg->max_message > ((size_t)1 << 30) ||
        cfg->send_buffer_limit <= cfg->max_message + 1 ||
        cfg->send_buffer_limit > ((size_t)1 << 40) ||
        cfg->ping_interval_ms == 0 ||
        cfg->peer_timeout_ms <= cfg->ping_interval_ms ||
        cfg->register_timeout_ms == 0 || cfg->reconnect_min_ms == 0 ||
        cfg->reconnect_max_ms < cfg->reconnect_min_ms ||
        cfg->peer_linger_ms == 0 || cfg->max_hops == 0 ||
        cfg->upstream_count > ATBUS_ROUTE_MAX_UPSTREAMS) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < cfg->upstream_count; i++) {
        if (atb_name_check(cfg->upstreams[i], NULL) != ATBUS_OK ||
            strcmp(cfg->upstreams[i], cfg->name) == 0) {
            return ATBUS_EINVAL;
        }
    }
    if (cfg->hostname != NULL &&
        (cfg->hostname[0] == '\0' || strlen(cfg->hostname) > ATBUS_NAME_MAX)) {
        return ATBUS_EINVAL;
    }
    if (cfg->namespace_name != NULL &&
        (cfg->namespace_name[0] == '\0' ||
         strlen(cfg->namespace_name) > ATBUS_NAME_MAX)) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (cfg->listen[i] == NULL) {
            return ATBUS_EINVAL;
        }
    }
    return ATBUS_OK;
}

static void
node_release(atbus_node *node)
{
    atb_free(node->name);
    atb_free(node->hostname);
    atb_free(node->namespace_name);
    atb_free(node->type);
    for (size_t i = 0; i < ATBUS_NODE_MAX_LISTEN; i++) {
        atb_free(node->listen[i]);
    }
    for (size_t i = 0; i < ATBUS_ROUTE_MAX_UPSTREAMS; i++) {
        atb_free(node->upstreams[i]);
    }
    atb_route_registry_fini(&node->routes);
    atb_loop_free(node->loop);
    atb_free(node);
}

int
atbus_node_new(atbus_node **out, const atbus_node_config *cfg)
{
    if (out == NULL || cfg == NULL) {
        return ATBUS_EINVAL;
    }
    int rc = config_check(cfg);
    if (rc != ATBUS_OK) {
        return rc;
    }
    atbus_node *node = atb_calloc(1, sizeof(*node));
    if (node == NULL) {
        return ATBUS_ENOMEM;
    }
    char host[256] = "localhost";
    if (cfg->hostname == NULL && gethostname(host, sizeof(host) - 1) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    node->name = atb_strdup(cfg->name);
    node->hostname = atb_strdup(cfg->hostname ? cfg->hostname : host);
    node->namespace_name =
        atb_strdup(cfg->namespace_name ? cfg->namespace_name : "default");
    node->type = atb_strdup(cfg->type ? cfg->type : "node");
    int oom = node->name == NULL || node->hostname == NULL ||
              node->namespace_name == NULL || node->type == NULL;
    for (size_t i = 0; i < cfg->listen_count && !oom; i++) {
        node->listen[i] = atb_strdup(cfg->listen[i]);
        oom = node->listen[i] == NULL;
    }
    for (size_t i = 0; i < cfg->upstream_count && !oom; i++) {
        node->upstreams[i] = atb_strdup(cfg->upstreams[i]);
        oom = node->upstreams[i] == NULL;
    }
    atb_route_registry_init(&node->routes);
    if (oom) {
        node_release(node);
        return ATBUS_ENOMEM;
    }
    rc = atb_loop_new(&node->loop);
    if (rc != ATBUS_OK) {
        node_release(node);
        return rc;
    }
    node->cfg = *cfg;
    node->cfg.name = node->name;
    node->cfg.hostname = node->hostname;
    node->cfg.namespace_name = node->namespace_name;
    node->cfg.type = node->type;
    for (size_t i = 0; i < ATBUS_NODE_MAX_LISTEN; i++) {
        node->cfg.listen[i] = node->listen[i];
    }
    for (size_t i = 0; i < ATBUS_ROUTE_MAX_UPSTREAMS; i++) {
        node->cfg.upstreams[i] = node->upstreams[i];
    }
    rc = node_route_init(node);
    if (rc != ATBUS_OK) {
        node_release(node);
        return rc;
    }
    atb_transport_config_default(&node->tcfg);
    node->tcfg.max_frame_message = cfg->max_message + FRAME_OVERHEAD;
    node->tcfg.send_buffer_limit = cfg->send_buffer_limit;
    if (cfg->shm_ring_size != 0) {
        node->tcfg.shm_ring_size = cfg->shm_ring_size;
    }
    node->rng = cfg->seed != 0 ? cfg->seed
                               : atb_clock_us() ^ ((uint64_t)getpid() << 32);
    /* Unique per process start, even when a seed makes the jitter
     * repeatable: a restarted peer must not look like a reconnect. */
    uint64_t mix =
        atb_clock_us() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)node;
    node->incarnation = atb_rand_next(&mix) | 1;
    *out = node;
    return ATBUS_OK;
}

int
atbus_node_set_callbacks(atbus_node *node, const atbus_node_callbacks *cbs,
                         void *arg)
{
    if (node == NULL || cbs == NULL) {
        return ATBUS_EINVAL;
    }
    node->cbs = *cbs;
    node->cb_arg = arg;
    return ATBUS_OK;
}

const char *
atbus_node_name(const atbus_node *node)
{
    return node != NULL ? node->name : NULL;
}

/* ---- listening ---- */

static void
listener_on_accept(atb_listener *l, atb_conn *c, void *arg)
{
    (void)l;
    node_listener *nl = arg;
    atbus_node *node = nl->node;
    node_conn *nc;
    if (node->closed || node_conn_new(node, c, 1, NULL, &nc) != ATBUS_OK) {
        /* Shutting down or out of memory: refuse this one connection. */
        atb_conn_free(c);
        return;
    }
    node->stats.connections_accepted++;
    node_conn_start(nc);
}

static void
listener_on_error(atb_listener *l, int err, void *arg)
{
    /* The transport pauses and retries accepting by itself (EMFILE);
     * there is nothing to undo here. */
    (void)l;
    (void)err;
    (void)arg;
}

int
atbus_node_listen(atbus_node *node, const char *url)
{
    if (node == NULL || url == NULL) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    node_listener *nl = atb_calloc(1, sizeof(*nl));
    if (nl == NULL) {
        return ATBUS_ENOMEM;
    }
    nl->node = node;
    nl->url = atb_strdup(url);
    if (nl->url == NULL) {
        atb_free(nl);
        return ATBUS_ENOMEM;
    }
    static const atb_listener_cbs cbs = {
        .on_accept = listener_on_accept,
        .on_error = listener_on_error,
    };
    int rc = atb_listen(node->loop, url, &node->tcfg, &cbs, nl, &nl->listener);
    if (rc != ATBUS_OK) {
        atb_free(nl->url);
        atb_free(nl);
        return rc;
    }
    nl->next = node->listeners;
    node->listeners = nl;
    return ATBUS_OK;
}

static void
listeners_close(atbus_node *node)
{
    while (node->listeners != NULL) {
        node_listener *nl = node->listeners;
        node->listeners = nl->next;
        atb_listener_close(nl->listener);
        atb_free(nl->url);
        atb_free(nl);
    }
}

int
atbus_node_start(atbus_node *node)
{
    if (node == NULL) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    for (size_t i = 0; i < node->cfg.listen_count; i++) {
        int rc = atbus_node_listen(node, node->cfg.listen[i]);
        if (rc != ATBUS_OK) {
            listeners_close(node);
            return rc;
        }
    }
    return ATBUS_OK;
}

/* ---- dial targets ---- */

static void target_dial(node_target *t);

static void
target_on_timer(atb_timer *timer, void *arg)
{
    (void)timer;
    node_target *t = arg;
    t->node->stats.reconnects++;
    target_dial(t);
}

/* target_retry schedules the next dial of t with backoff and jitter. */
static void
target_retry(node_target *t)
{
    atbus_node *node = t->node;
    uint64_t delay = atb_backoff_delay_us(
        t->attempt, (uint64_t)node->cfg.reconnect_min_ms * 1000,
        (uint64_t)node->cfg.reconnect_max_ms * 1000, &node->rng);
    if (t->attempt < UINT32_MAX) {
        t->attempt++;
    }
    if (atb_timer_start(node->loop, &t->timer, delay, 0) != ATBUS_OK &&
        node->cbs.on_connect_error != NULL && !node->freeing) {
        /* The timer heap could not grow: the target stays idle until the
         * application disconnects and connects it again. */
        node->cbs.on_connect_error(node, t->url, ATBUS_ENOMEM, node->cb_arg);
    }
}

static void
target_dial(node_target *t)
{
    atbus_node *node = t->node;
    atb_conn *c;
    int rc =
        atb_dial(node->loop, t->url, &node->tcfg, &node_conn_cbs, NULL, &c);
    if (rc == ATBUS_OK) {
        rc = node_conn_new(node, c, 0, t, &t->nc);
        if (rc != ATBUS_OK) {
            atb_conn_free(c);
        }
    }
    if (rc != ATBUS_OK) {
        if (node->cbs.on_connect_error != NULL && !node->freeing) {
            node->cbs.on_connect_error(node, t->url, rc, node->cb_arg);
        }
        target_retry(t);
        return;
    }
    node->stats.connections_dialed++;
}

void
node_target_conn_ended(node_target *t, int registered)
{
    atbus_node *node = t->node;
    if (node->closed) {
        return;
    }
    if (registered) {
        /* A connection that worked starts the schedule over. */
        t->attempt = 0;
    }
    target_retry(t);
}

void
node_target_expect(atbus_node *node, const char *url, const char *name)
{
    for (node_target *t = node->targets; t != NULL; t = t->next) {
        if (strcmp(t->url, url) == 0 && t->want_peer == NULL) {
            t->want_peer = atb_strdup(name); /* NULL: just not expected */
            return;
        }
    }
}

int
atbus_node_connect(atbus_node *node, const char *url)
{
    if (node == NULL || url == NULL) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_ECLOSED;
    }
    if (strcmp(node->type, "client") == 0) {
        return ATBUS_EPERM;
    }
    atb_url u;
    int rc = atb_url_parse(url, &u, NULL);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (atb_transport_find(u.scheme) == NULL) {
        return ATBUS_ENOTSUP;
    }
    for (node_target *t = node->targets; t != NULL; t = t->next) {
        if (strcmp(t->url, url) == 0) {
            return ATBUS_EEXIST;
        }
    }
    node_target *t = atb_calloc(1, sizeof(*t));
    if (t == NULL) {
        return ATBUS_ENOMEM;
    }
    t->node = node;
    t->url = atb_strdup(url);
    if (t->url == NULL) {
        atb_free(t);
        return ATBUS_ENOMEM;
    }
    atb_timer_init(&t->timer, target_on_timer, t);
    t->next = node->targets;
    node->targets = t;
    target_dial(t);
    return ATBUS_OK;
}

static void
target_free(node_target *t)
{
    atb_timer_stop(&t->timer);
    if (t->nc != NULL) {
        t->nc->target = NULL;
        node_conn_end(t->nc, ATBUS_ECLOSED, ATB_CLOSE_REASON(SHUTDOWN),
                      "disconnected");
    }
    atb_free(t->url);
    atb_free(t->last_peer);
    atb_free(t->want_peer);
    atb_free(t);
}

int
atbus_node_disconnect(atbus_node *node, const char *url)
{
    if (node == NULL || url == NULL) {
        return ATBUS_EINVAL;
    }
    for (node_target **pp = &node->targets; *pp != NULL; pp = &(*pp)->next) {
        node_target *t = *pp;
        if (strcmp(t->url, url) == 0) {
            *pp = t->next;
            target_free(t);
            return ATBUS_OK;
        }
    }
    return ATBUS_ENOTFOUND;
}

/* ---- sending ---- */

/* ---- inspection ---- */

int
atbus_node_peer(atbus_node *node, const char *name, atbus_peer_info *info)
{
    if (node == NULL || name == NULL || info == NULL) {
        return ATBUS_EINVAL;
    }
    node_peer *p = node_peer_find(node, name);
    if (p == NULL || p->conns == NULL) {
        return ATBUS_ENOTCONN; /* unknown, away, or only reached by relays */
    }
    node_peer_fill_info(node, p);
    *info = node->info;
    return ATBUS_OK;
}

int
atbus_node_get_stats(const atbus_node *node, atbus_node_stats *stats)
{
    if (node == NULL || stats == NULL) {
        return ATBUS_EINVAL;
    }
    *stats = node->stats;
    return ATBUS_OK;
}

/* ---- shutting down ---- */

int
atbus_node_close(atbus_node *node)
{
    if (node == NULL) {
        return ATBUS_EINVAL;
    }
    if (node->closed) {
        return ATBUS_OK;
    }
    /* What the transports take now still leaves ahead of the close
     * messages; the rest is reported, not dropped silently. */
    node_peers_flush(node);
    if (node->sync != NULL) {
        /* Best effort: the records vanish now rather than at lease end. */
        (void)atb_disc_sync_unpublish(node->sync);
    }
    node->closed = 1;
    node_peers_report_undelivered(node, ATBUS_ECLOSED);
    while (node->targets != NULL) {
        node_target *t = node->targets;
        node->targets = t->next;
        target_free(t);
    }
    for (node_conn *nc = node->conns; nc != NULL; nc = nc->next) {
        node_conn_end(nc, ATBUS_ECLOSED, ATB_CLOSE_REASON(SHUTDOWN),
                      "node shutting down");
    }
    /* Listeners last: accepted udp:// connections share their socket,
     * and the close messages above must leave through it first. */
    listeners_close(node);
    return ATBUS_OK;
}

void
atbus_node_free(atbus_node *node)
{
    if (node == NULL) {
        return;
    }
    node->freeing = 1;
    atbus_node_close(node);
    /* Closing takes a few turns: close messages are flushed (lingering
     * up to a second for a slow reader), then each transport delivers
     * on_close from the loop. The bound also guards against a transport
     * that never reports. */
    uint64_t end = atb_clock_us() + 1500000;
    while (node->conns != NULL && atb_clock_us() < end) {
        atb_loop_poll(node->loop, 1);
    }
    while (node->conns != NULL) {
        node_conn *nc = node->conns;
        node->conns = nc->next;
        atb_timer_stop(&nc->timer);
        atb_loop_cancel(node->loop, &nc->close_defer);
        atb_conn_free(nc->conn);
        atb_free(nc);
    }
    node_discovery_free(node);
    node_peers_free(node);
    node_release(node);
}

/* ---- the loop ---- */

int
atbus_node_run(atbus_node *node)
{
    return node != NULL ? atb_loop_run(node->loop) : ATBUS_EINVAL;
}

int
atbus_node_poll(atbus_node *node, int timeout_ms)
{
    return node != NULL ? atb_loop_poll(node->loop, timeout_ms) : ATBUS_EINVAL;
}

int
atbus_node_stop(atbus_node *node)
{
    if (node == NULL) {
        return ATBUS_EINVAL;
    }
    atb_loop_stop(node->loop);
    return ATBUS_OK;
}

int
atbus_node_fd(const atbus_node *node)
{
    return node != NULL ? atb_loop_fd(node->loop) : ATBUS_EINVAL;
}

int
atbus_node_timeout_ms(const atbus_node *node)
{
    return node != NULL ? atb_loop_timeout_ms(node->loop) : 0;
}
