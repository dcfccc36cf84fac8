/*
 * The mesh as discovery describes it, and the plan the demo makes from
 * it: which node runs where, what it listens on, whom it dials and over
 * which channel, and the routes every node is fed.
 *
 * The records come from the mesh file, loaded into an embedded registry.
 * Where each node runs is the record's annotation "atbus-demo/process"
 * ("own": a child process of its own; otherwise this process). Before the
 * nodes start, each record is published again with its process id and
 * with addresses this machine can use now (free ports, names unique to
 * this run), as a node writes its own record when it comes up.
 *
 * Links: every node dials its upstreams, primary and backups (a client,
 * which never dials, is dialed by them); relays have no other links. Two
 * app nodes get a direct link when the policy allows it in one direction,
 * denies it in neither, and the dialing side finds a gateway of the other
 * that accepts it (atbus_select_gateway: mem:// in one process, shm:// or
 * unix:// on one host, TCP otherwise). Everything else is relayed.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The annotation that places a node in a process of its own. */
#define PROCESS_KEY "atbus-demo/process"

/* Who may connect to whom directly. Relays are linked by the routes
 * alone, so the rules only ever decide between app nodes. */
const char demo_policy_text[] =
    "dst metadata.kind=client -> deny   # never dial a client directly\n"
    "same labels.area.region -> direct  # one region: connect directly\n"
    "default -> relay                   # other regions: through relays\n";

static const char *
kv_get(const atbus_kv_list *map, const char *key)
{
    for (size_t i = 0; i < map->count; i++) {
        if (strcmp(map->items[i].key, key) == 0) {
            return map->items[i].value;
        }
    }
    return NULL;
}

const char *
demo_mesh_attr(const void *record, const char *key, void *arg)
{
    (void)arg;
    const atbus_record *r = record;
    const atbus_metadata *md = &r->metadata;
    if (strcmp(key, "name") == 0) {
        return r->name;
    }
    if (strcmp(key, "type") == 0) {
        return atbus_record_type_name(r->type);
    }
    if (strcmp(key, "host.hostname") == 0) {
        return r->host.hostname;
    }
    if (strcmp(key, "metadata.namespace_name") == 0) {
        return md->namespace_name;
    }
    if (strcmp(key, "metadata.kind") == 0) {
        return md->kind;
    }
    if (strcmp(key, "metadata.group") == 0) {
        return md->group;
    }
    if (strcmp(key, "metadata.api_version") == 0) {
        return md->api_version;
    }
    if (strncmp(key, "labels.", 7) == 0) {
        return kv_get(&md->labels, key + 7);
    }
    if (strncmp(key, "annotations.", 12) == 0) {
        return kv_get(&md->annotations, key + 12);
    }
    return NULL;
}

const char *
demo_mesh_label(const demo_mesh *m, int i, const char *key)
{
    const char *v = kv_get(&m->m[i].rec->metadata.labels, key);
    return v != NULL ? v : "-";
}

const char *
demo_scheme_name(enum atbus_scheme scheme)
{
    static const char *const names[] = {"?",    "mem",  "shm", "unix",
                                        "ipv4", "ipv6", "udp"};
    return (size_t)scheme < sizeof(names) / sizeof(names[0]) ? names[scheme]
                                                             : "?";
}

int
demo_mesh_find(const demo_mesh *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->m[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int
collect_node(const atbus_record *rec, void *arg)
{
    demo_mesh *m = arg;
    if (m->n == DEMO_MAX_NODES) {
        return 1;
    }
    demo_member *mb = &m->m[m->n++];
    memset(mb, 0, sizeof(*mb));
    mb->rec = rec;
    demo_copy(mb->name, sizeof(mb->name), rec->name);
    mb->client = rec->type == ATBUS_RECORD_CLIENT;
    mb->relay =
        rec->metadata.kind != NULL && strcmp(rec->metadata.kind, "relay") == 0;
    const char *where = kv_get(&rec->metadata.annotations, PROCESS_KEY);
    mb->own_process = where != NULL && strcmp(where, "own") == 0;
    return 0;
}

/* Relays first, then by namespace and name: the order of every table. */
static int
member_cmp(const void *a, const void *b)
{
    const demo_member *x = a;
    const demo_member *y = b;
    if (x->relay != y->relay) {
        return y->relay - x->relay;
    }
    const char *nx = x->rec->metadata.namespace_name;
    const char *ny = y->rec->metadata.namespace_name;
    int c = strcmp(nx != NULL ? nx : "", ny != NULL ? ny : "");
    return c != 0 ? c : strcmp(x->name, y->name);
}

int
demo_mesh_load(demo_mesh *m)
{
    memset(m, 0, sizeof(*m));
    if (atbus_registry_new(&m->reg) != ATBUS_OK ||
        atbus_route_registry_new(&m->routes) != ATBUS_OK) {
        return demo_failf(m->error, sizeof(m->error), "out of memory");
    }
    atbus_load_result res;
    int rc = atbus_registry_load_yaml_string(m->reg, demo_mesh_yaml,
                                             demo_mesh_yaml_len, &res);
    if (rc != ATBUS_OK) {
        return demo_failf(m->error, sizeof(m->error),
                          "mesh file: line %zu: %s: %s (%s)", res.first.line,
                          res.first.path, res.first.reason, atbus_err_name(rc));
    }
    atbus_route_error err;
    rc = atbus_route_policy_parse(demo_policy_text, &m->policy, &err);
    if (rc != ATBUS_OK) {
        return demo_failf(m->error, sizeof(m->error), "policy: %s", err.text);
    }
    if (atbus_registry_count(m->reg, ATBUS_REGISTRY_NODES) > DEMO_MAX_NODES) {
        return demo_failf(m->error, sizeof(m->error),
                          "mesh file: more than %d nodes", DEMO_MAX_NODES);
    }
    atbus_registry_foreach(m->reg, ATBUS_REGISTRY_NODES, collect_node, m);
    for (size_t i = 0; i < m->n; i++) {
        if (strlen(m->m[i].rec->name) >= DEMO_NAME_MAX) {
            return demo_failf(m->error, sizeof(m->error),
                              "mesh file: name %s is too long",
                              m->m[i].rec->name);
        }
    }
    qsort(m->m, m->n, sizeof(m->m[0]), member_cmp);
    return 0;
}

void
demo_mesh_free(demo_mesh *m)
{
    atbus_route_policy_free(m->policy);
    atbus_route_registry_free(m->routes);
    atbus_registry_free(m->reg);
    m->policy = NULL;
    m->routes = NULL;
    m->reg = NULL;
}

/* ---- placing the nodes ---- */

/* free_port asks the kernel for a port nobody uses now. Another process
 * may take it before the node binds; the node then fails to listen and
 * the demo says so. */
static int
free_port(int family, int type)
{
    int fd = socket(family, type, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*s4);
    }
    int port = -1;
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        port =
            ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    close(fd);
    return port;
}

/* runtime_address turns an address of the file into one for this run:
 * the same scheme and host, a free port (ipv4, ipv6, udp), or a name
 * unique to this run (mem, shm, unix). Returns 0 or -1. */
static int
runtime_address(const char *addr, const char *node, char *out, size_t size)
{
    int run = (int)getpid();
    const char *colon = strrchr(addr, ':');
    int family = strncmp(addr, "ipv6://", 7) == 0 ? AF_INET6 : AF_INET;
    int type = strncmp(addr, "udp://", 6) == 0 ? SOCK_DGRAM : SOCK_STREAM;
    if (strncmp(addr, "mem://", 6) == 0 || strncmp(addr, "shm://", 6) == 0) {
        snprintf(out, size, "%.6satbus-demo-%d-%s", addr, run, node);
    } else if (strncmp(addr, "unix://", 7) == 0) {
        snprintf(out, size, "unix:///tmp/atbus-demo-%d-%s.sock", run, node);
    } else if (colon != NULL && strncmp(addr, "unix", 4) != 0) {
        int port = free_port(family, type);
        if (port < 0) {
            return -1;
        }
        snprintf(out, size, "%.*s:%d", (int)(colon - addr), addr, port);
    } else {
        return -1;
    }
    return (int)strlen(out) < (int)size - 1 ? 0 : -1;
}

/* place_member publishes member i's record with its pid and run-time
 * addresses, and lists what it listens on. */
static int
place_member(demo_mesh *m, size_t i, pid_t pid)
{
    demo_member *mb = &m->m[i];
    atbus_record rec;
    atbus_record_init(&rec);
    if (atbus_record_copy(&rec, mb->rec) != ATBUS_OK) {
        return demo_failf(m->error, sizeof(m->error), "out of memory");
    }
    rec.host.pid = pid;
    rec.version++;
    /* An address given on several gateways is one listener. */
    char from[DEMO_MAX_LISTEN][DEMO_URL_MAX];
    int rc = 0;
    for (size_t g = 0; g < rec.gateways.count && rc == 0; g++) {
        atbus_string_list *addrs = &rec.gateways.items[g].addresses;
        for (size_t a = 0; a < addrs->count && rc == 0; a++) {
            size_t k = 0;
            while (k < mb->spec.nlisten && strcmp(from[k], addrs->items[a])) {
                k++;
            }
            if (k == mb->spec.nlisten) {
                char url[DEMO_URL_MAX];
                if (k == DEMO_MAX_LISTEN ||
                    runtime_address(addrs->items[a], rec.name, url,
                                    sizeof(url)) != 0) {
                    rc = demo_failf(m->error, sizeof(m->error),
                                    "%s: cannot place address %s", mb->name,
                                    addrs->items[a]);
                    break;
                }
                demo_copy(mb->spec.listen[k], sizeof(mb->spec.listen[k]), url);
                demo_copy(from[k], sizeof(from[k]), addrs->items[a]);
                mb->spec.nlisten++;
            }
            if (atbus_record_set_string(&addrs->items[a], mb->spec.listen[k]) !=
                ATBUS_OK) {
                rc = demo_failf(m->error, sizeof(m->error), "out of memory");
            }
        }
    }
    atbus_record_error err;
    if (rc == 0 && atbus_registry_put(m->reg, &rec, &err) != ATBUS_OK) {
        rc =
            demo_failf(m->error, sizeof(m->error), "%s: record refused: %s: %s",
                       mb->name, err.path, err.reason);
    }
    atbus_record_fini(&rec);
    if (rc == 0 && atbus_registry_get(m->reg, ATBUS_REGISTRY_NODES, mb->name,
                                      &mb->rec) != ATBUS_OK) {
        rc =
            demo_failf(m->error, sizeof(m->error), "%s: record gone", mb->name);
    }
    return rc;
}

int
demo_mesh_place(demo_mesh *m, const pid_t *pids)
{
    for (size_t i = 0; i < m->n; i++) {
        m->m[i].spec.nlisten = 0;
        if (place_member(m, i, pids[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- the plan ---- */

typedef struct route_walk {
    demo_mesh *m;
    int rc;
} route_walk;

/* collect_route feeds one route record to every member's spec and to the
 * registry the relations are checked against. */
static int
collect_route(const atbus_record *rec, void *arg)
{
    route_walk *w = arg;
    demo_mesh *m = w->m;
    if (rec->upstreams.count > DEMO_MAX_UPS) {
        w->rc = demo_failf(m->error, sizeof(m->error),
                           "route %s: more than %d upstreams", rec->name,
                           DEMO_MAX_UPS);
        return 1;
    }
    demo_route r;
    memset(&r, 0, sizeof(r));
    demo_copy(r.name, sizeof(r.name), rec->name);
    for (size_t k = 0; k < rec->upstreams.count; k++) {
        demo_copy(r.ups[r.nups++], DEMO_NAME_MAX, rec->upstreams.items[k]);
    }
    for (size_t i = 0; i < m->n; i++) {
        demo_spec *s = &m->m[i].spec;
        if (s->nroutes == DEMO_MAX_NODES) {
            w->rc = demo_failf(m->error, sizeof(m->error),
                               "more than %d routes", DEMO_MAX_NODES);
            return 1;
        }
        s->routes[s->nroutes++] = r;
    }
    int i = demo_mesh_find(m, rec->name);
    if (i >= 0) {
        demo_spec *s = &m->m[i].spec;
        for (size_t k = 0; k < r.nups; k++) {
            demo_copy(s->ups[k], DEMO_NAME_MAX, r.ups[k]);
        }
        s->nups = r.nups;
    }
    atbus_route_error err;
    int rc = atbus_route_registry_set_upstreams(
        m->routes, rec->name, (const char *const *)rec->upstreams.items,
        rec->upstreams.count, &err);
    if (rc != ATBUS_OK) {
        w->rc = demo_failf(m->error, sizeof(m->error), "route %s: %s",
                           rec->name, err.text);
        return 1;
    }
    return 0;
}

static void
spec_add_expect(demo_spec *s, const char *peer)
{
    for (size_t i = 0; i < s->nexpect; i++) {
        if (strcmp(s->expect[i], peer) == 0) {
            return;
        }
    }
    if (s->nexpect < DEMO_MAX_NODES) {
        demo_copy(s->expect[s->nexpect++], DEMO_NAME_MAX, peer);
    }
}

/* add_link plans dialer -> listener on the gateway atbus_select_gateway
 * picks. Returns the link's index, or -1 when no gateway accepts the
 * dialer (m->error says so). */
static int
add_link(demo_mesh *m, int dialer, int listener, int upstream)
{
    demo_member *d = &m->m[dialer];
    demo_member *l = &m->m[listener];
    atbus_gateway_choice ch;
    int rc = atbus_select_gateway(d->rec, l->rec, NULL, 0, &ch);
    if (rc != ATBUS_OK) {
        demo_failf(m->error, sizeof(m->error), "%s cannot dial %s: %s", d->name,
                   l->name, atbus_strerror(rc));
        return -1;
    }
    if (m->nlinks == DEMO_MAX_LINKS || d->spec.ndial == DEMO_MAX_DIAL) {
        demo_failf(m->error, sizeof(m->error), "too many links");
        return -1;
    }
    demo_link *k = &m->links[m->nlinks];
    k->dialer = dialer;
    k->listener = listener;
    k->upstream = upstream;
    k->scheme = ch.scheme;
    demo_copy(k->url, sizeof(k->url), ch.address);
    demo_copy(d->spec.dial[d->spec.ndial++], DEMO_URL_MAX, ch.address);
    spec_add_expect(&d->spec, l->name);
    spec_add_expect(&l->spec, d->name);
    return (int)m->nlinks++;
}

static atbus_route_decision
decide(const demo_mesh *m, int src, int dst)
{
    atbus_route_decision dec;
    atbus_route_policy_decide(m->policy, m->m[src].rec, m->m[dst].rec,
                              demo_mesh_attr, NULL, &dec);
    return dec;
}

/* plan_direct decides the direct link between app nodes a and b (a < b),
 * if any, and records both ordered pairs. */
static void
plan_direct(demo_mesh *m, int a, int b)
{
    atbus_route_decision ab = decide(m, a, b);
    atbus_route_decision ba = decide(m, b, a);
    int link = -1;
    const char *why = "policy";
    if (ab.action == ATBUS_ROUTE_DENY || ba.action == ATBUS_ROUTE_DENY) {
        why = "denied";
    } else {
        char keep[sizeof(m->error)];
        demo_copy(keep, sizeof(keep), m->error);
        if (ab.action == ATBUS_ROUTE_DIRECT && !m->m[a].client) {
            link = add_link(m, a, b, 0);
        }
        if (link < 0 && ba.action == ATBUS_ROUTE_DIRECT && !m->m[b].client) {
            link = add_link(m, b, a, 0);
        }
        /* No gateway is an answer here, not an error of the plan. */
        demo_copy(m->error, sizeof(m->error), keep);
        if (link < 0 && (ab.action == ATBUS_ROUTE_DIRECT ||
                         ba.action == ATBUS_ROUTE_DIRECT)) {
            why = "no gateway";
        }
    }
    demo_pair *p = &m->pairs[m->npairs++];
    *p = (demo_pair){a, b, ab, link, link < 0 ? why : NULL};
    p = &m->pairs[m->npairs++];
    *p = (demo_pair){b, a, ba, link, link < 0 ? why : NULL};
}

static int
pair_cmp(const void *x, const void *y)
{
    const demo_pair *a = x;
    const demo_pair *b = y;
    return a->src != b->src ? a->src - b->src : a->dst - b->dst;
}

int
demo_mesh_plan(demo_mesh *m)
{
    for (size_t i = 0; i < m->n; i++) {
        demo_member *mb = &m->m[i];
        demo_spec *s = &mb->spec;
        demo_copy(s->name, sizeof(s->name), mb->name);
        demo_copy(s->hostname, sizeof(s->hostname),
                  mb->rec->host.hostname != NULL ? mb->rec->host.hostname
                                                 : "localhost");
        demo_copy(s->namespace_name, sizeof(s->namespace_name),
                  mb->rec->metadata.namespace_name != NULL
                      ? mb->rec->metadata.namespace_name
                      : "default");
        s->client = mb->client;
        s->relay = mb->relay;
        /* An app with a backup link to its target's relay uses it rather
         * than climbing its own chain (docs/routing.md). */
        s->prefer_target_relay = !mb->relay;
    }
    route_walk w = {m, 0};
    atbus_registry_foreach(m->reg, ATBUS_REGISTRY_ROUTES, collect_route, &w);
    if (w.rc != 0) {
        return -1;
    }
    /* Links to upstreams: the child dials, unless it is a client. */
    for (size_t i = 0; i < m->n; i++) {
        const demo_spec *s = &m->m[i].spec;
        for (size_t k = 0; k < s->nups; k++) {
            int up = demo_mesh_find(m, s->ups[k]);
            if (up < 0) {
                return demo_failf(m->error, sizeof(m->error),
                                  "%s hangs under %s, which has no record",
                                  s->name, s->ups[k]);
            }
            int rc = m->m[i].client ? add_link(m, up, (int)i, (int)k + 1)
                                    : add_link(m, (int)i, up, (int)k + 1);
            if (rc < 0) {
                return -1;
            }
        }
    }
    for (size_t a = 0; a < m->n; a++) {
        for (size_t b = a + 1; b < m->n; b++) {
            if (!m->m[a].relay && !m->m[b].relay) {
                plan_direct(m, (int)a, (int)b);
            }
        }
    }
    qsort(m->pairs, m->npairs, sizeof(m->pairs[0]), pair_cmp);
    return 0;
}
