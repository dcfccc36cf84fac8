/*
 * Matching and selection: which nodes a gateway or a relay selector
 * accepts, which gateway and address one node dials another on, and which
 * relay a node hangs under.
 *
 * Relays are chosen by rendezvous hashing (highest random weight): every
 * candidate gets a score from the pair of names and the highest wins. A
 * node therefore moves only when its own relay leaves or a new relay
 * outscores it, about 1/N of the nodes for one change among N relays,
 * with no ring to maintain and no state between calls.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <string.h>

#include <xxhash.h>

#include "transport/url.h"

_Static_assert((int)ATBUS_SCHEME_MEM == (int)ATB_URL_MEM &&
                   (int)ATBUS_SCHEME_SHM == (int)ATB_URL_SHM &&
                   (int)ATBUS_SCHEME_UNIX == (int)ATB_URL_UNIX &&
                   (int)ATBUS_SCHEME_IPV4 == (int)ATB_URL_IPV4 &&
                   (int)ATBUS_SCHEME_IPV6 == (int)ATB_URL_IPV6 &&
                   (int)ATBUS_SCHEME_UDP == (int)ATB_URL_UDP,
               "public and transport scheme numbers agree");

/* Default preference: the nearest channel first (DESIGN §6). */
static const enum atbus_scheme match_default_schemes[] = {
    ATBUS_SCHEME_MEM,  ATBUS_SCHEME_SHM,  ATBUS_SCHEME_UNIX,
    ATBUS_SCHEME_IPV4, ATBUS_SCHEME_IPV6, ATBUS_SCHEME_UDP,
};
#define MATCH_NSCHEMES                                                         \
    (sizeof(match_default_schemes) / sizeof(match_default_schemes[0]))

static int
match_str(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

/* match_subset: every pair of want is in have with the same value. */
static int
match_subset(const atbus_kv_list *want, const atbus_kv_list *have)
{
    for (size_t i = 0; i < want->count; i++) {
        const atbus_kv *w = &want->items[i];
        int found = 0;
        for (size_t j = 0; j < have->count && !found; j++) {
            const atbus_kv *h = &have->items[j];
            found = w->key != NULL && h->key != NULL &&
                    strcmp(w->key, h->key) == 0 &&
                    match_str(w->value, h->value);
        }
        if (!found) {
            return 0;
        }
    }
    return 1;
}

static int
match_metadata(const atbus_metadata *want, const atbus_metadata *have)
{
    return match_str(want->namespace_name, have->namespace_name) &&
           match_str(want->api_version, have->api_version) &&
           match_str(want->kind, have->kind) &&
           match_str(want->group, have->group) &&
           match_subset(&want->labels, &have->labels) &&
           match_subset(&want->annotations, &have->annotations);
}

int
atbus_match_accepts(const atbus_match *m, const atbus_record *node)
{
    if (m == NULL || node == NULL) {
        return 0;
    }
    return match_str(m->host.hostname, node->host.hostname) &&
           (m->host.pid == 0 || m->host.pid == node->host.pid) &&
           match_metadata(&m->metadata, &node->metadata);
}

int
atbus_same_host(const atbus_record *a, const atbus_record *b)
{
    if (a == NULL || b == NULL || a->host.hostname == NULL ||
        b->host.hostname == NULL ||
        strcmp(a->host.hostname, b->host.hostname) != 0) {
        return 0;
    }
    const char *na = a->metadata.namespace_name;
    const char *nb = b->metadata.namespace_name;
    if (na == NULL || nb == NULL) {
        return na == nb;
    }
    return strcmp(na, nb) == 0;
}

int
atbus_same_process(const atbus_record *a, const atbus_record *b)
{
    return atbus_same_host(a, b) && a->host.pid != 0 &&
           a->host.pid == b->host.pid;
}

/* match_rank returns where scheme stands in the preference list (lower is
 * better), or count when src cannot use it from where it runs. */
static size_t
match_rank(enum atbus_scheme scheme, const enum atbus_scheme *schemes,
           size_t count, int same_host, int same_process)
{
    if ((scheme == ATBUS_SCHEME_MEM && !same_process) ||
        ((scheme == ATBUS_SCHEME_SHM || scheme == ATBUS_SCHEME_UNIX) &&
         !same_host)) {
        return count;
    }
    for (size_t i = 0; i < count; i++) {
        if (schemes[i] == scheme) {
            return i;
        }
    }
    return count;
}

/* match_best_address picks the gateway's best usable address: the
 * lowest rank, ties to the first listed. Returns 0 when none is usable. */
static int
match_best_address(const atbus_gateway *gw, const enum atbus_scheme *schemes,
                   size_t count, int same_host, int same_process,
                   atbus_gateway_choice *out)
{
    size_t best = count;
    for (size_t i = 0; i < gw->addresses.count; i++) {
        const char *addr = gw->addresses.items[i];
        atb_url url;
        /* Unvalidated records may hold anything; what does not parse is
         * simply not usable. */
        if (addr == NULL || atb_url_parse(addr, &url, NULL) != ATBUS_OK) {
            continue;
        }
        enum atbus_scheme scheme = (enum atbus_scheme)url.scheme;
        size_t rank =
            match_rank(scheme, schemes, count, same_host, same_process);
        if (rank < best) {
            best = rank;
            out->address = addr;
            out->address_index = i;
            out->scheme = scheme;
        }
    }
    return best < count;
}

/* match_next_gateway returns the index of the gateway after (prio, idx)
 * in (priority, index) order, or count when there is none. Gateways are
 * few (16 in a valid record), so a scan beats sorting a copy. */
static size_t
match_next_gateway(const atbus_gateway_list *gws, int64_t prio, size_t idx,
                   int first)
{
    size_t best = gws->count;
    for (size_t i = 0; i < gws->count; i++) {
        int64_t p = gws->items[i].priority;
        int after = first || p > prio || (p == prio && i > idx);
        if (!after) {
            continue;
        }
        if (best == gws->count || p < gws->items[best].priority) {
            best = i;
        }
    }
    return best;
}

int
atbus_select_gateway(const atbus_record *src, const atbus_record *dst,
                     const enum atbus_scheme *schemes, size_t count,
                     atbus_gateway_choice *out)
{
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (src == NULL || dst == NULL ||
        atb_disc_table_of(src) != ATBUS_REGISTRY_NODES ||
        atb_disc_table_of(dst) != ATBUS_REGISTRY_NODES) {
        return ATBUS_EINVAL;
    }
    if (schemes == NULL || count == 0) {
        schemes = match_default_schemes;
        count = MATCH_NSCHEMES;
    }
    for (size_t i = 0; i < count; i++) {
        if (schemes[i] < ATBUS_SCHEME_MEM || schemes[i] > ATBUS_SCHEME_UDP) {
            return ATBUS_EINVAL;
        }
    }
    if (src->type == ATBUS_RECORD_CLIENT) {
        return ATBUS_EPERM;
    }
    int same_host = atbus_same_host(src, dst);
    int same_process = atbus_same_process(src, dst);
    const atbus_gateway_list *gws = &dst->gateways;
    size_t i = match_next_gateway(gws, 0, 0, 1);
    while (i < gws->count) {
        const atbus_gateway *gw = &gws->items[i];
        if (atbus_match_accepts(&gw->match, src) &&
            match_best_address(gw, schemes, count, same_host, same_process,
                               out)) {
            out->gateway = gw;
            out->gateway_index = i;
            return ATBUS_OK;
        }
        i = match_next_gateway(gws, gw->priority, i, 0);
    }
    memset(out, 0, sizeof(*out));
    return ATBUS_ENOROUTE;
}

int
atbus_relay_accepts(const atbus_record *node, const atbus_record *relay)
{
    if (node == NULL || relay == NULL || relay->type != ATBUS_RECORD_NODE ||
        relay->name == NULL) {
        return 0;
    }
    const atbus_relay_selector *sel = &node->advertise_relay;
    const atbus_metadata *md = &sel->metadata;
    int empty = sel->name == NULL && md->namespace_name == NULL &&
                md->api_version == NULL && md->kind == NULL &&
                md->group == NULL && md->labels.count == 0 &&
                md->annotations.count == 0;
    if (empty) {
        return 0;
    }
    if (node->name != NULL && strcmp(node->name, relay->name) == 0) {
        return 0;
    }
    return match_str(sel->name, relay->name) &&
           match_metadata(md, &relay->metadata);
}

uint64_t
atbus_relay_score(const char *node_name, const char *relay_name)
{
    if (node_name == NULL || relay_name == NULL) {
        return 0;
    }
    XXH64_hash_t seed = XXH3_64bits(node_name, strlen(node_name));
    return XXH3_64bits_withSeed(relay_name, strlen(relay_name), seed);
}

/* match_beats says whether a relay scoring s named n wins over the best
 * so far; equal scores go to the smaller name so every node agrees. */
static int
match_beats(uint64_t s, const char *n, uint64_t best_s, const char *best_n)
{
    return best_n == NULL || s > best_s ||
           (s == best_s && strcmp(n, best_n) < 0);
}

int
atbus_select_relay(const atbus_record *node, const atbus_record *const *relays,
                   size_t count, size_t *index)
{
    if (node == NULL || node->name == NULL || index == NULL ||
        (relays == NULL && count != 0)) {
        return ATBUS_EINVAL;
    }
    const char *best_name = NULL;
    uint64_t best_score = 0;
    for (size_t i = 0; i < count; i++) {
        const atbus_record *r = relays[i];
        if (!atbus_relay_accepts(node, r)) {
            continue;
        }
        uint64_t s = atbus_relay_score(node->name, r->name);
        if (match_beats(s, r->name, best_score, best_name)) {
            best_name = r->name;
            best_score = s;
            *index = i;
        }
    }
    return best_name != NULL ? ATBUS_OK : ATBUS_ENOTFOUND;
}
