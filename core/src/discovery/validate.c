/*
 * The record rules (docs/discovery.md lists them with their caps). Names
 * follow Kubernetes: node names and label-key prefixes are DNS subdomains,
 * namespaces DNS labels, label keys [prefix/]name, label values short
 * names or empty. Addresses must be URLs the transport layer parses.
 * Every failure names the field by its path.
 */
#include "discovery/disc.h"

#include <atbus/error.h>
#include <atbus/route.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "common/name.h"
#include "common/utf8.h"
#include "transport/url.h"

/* A route record must be something the route registry takes. */
_Static_assert(ATBUS_RECORD_UPSTREAMS_MAX == ATBUS_ROUTE_MAX_UPSTREAMS,
               "route record and route registry caps differ");

/* Longest Kubernetes name part (label key name, label value, kind). */
#define CHECK_SHORT_MAX 63

struct check {
    atb_disc_path path;
    atb_disc_fault *fault;
};

/* check_fail reports the current path. The path is not unwound on
 * failure: the fault holds its own copy and checking stops. */
static int check_fail(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
check_fail(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = atb_disc_fault_vset(c->fault, &c->path, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- character rules ---- */

static int
check_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9');
}

/* check_short_name applies the Kubernetes qualified-name rule to n bytes:
 * 1-63 of [A-Za-z0-9] with '-', '_', '.' inside. NULL when it holds. */
static const char *
check_short_name(const char *s, size_t n)
{
    if (n == 0) {
        return "empty";
    }
    if (n > CHECK_SHORT_MAX) {
        return "longer than 63 characters";
    }
    if (!check_alnum(s[0]) || !check_alnum(s[n - 1])) {
        return "must start and end with a letter or digit";
    }
    for (size_t i = 1; i + 1 < n; i++) {
        char ch = s[i];
        if (!check_alnum(ch) && ch != '-' && ch != '_' && ch != '.') {
            return "only letters, digits, '-', '_' and '.' are allowed";
        }
    }
    return NULL;
}

/* check_subdomain is atb_name_check on n bytes that need not end in NUL. */
static const char *
check_subdomain(const char *s, size_t n)
{
    char buf[ATB_NAME_MAX + 1];
    if (n == 0) {
        return "empty";
    }
    if (n > ATB_NAME_MAX) {
        return "longer than 253 characters";
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *why = NULL;
    return atb_name_check(buf, &why) == ATBUS_OK ? NULL : why;
}

/* check_qualified checks "[prefix/]name", the shape of label keys,
 * annotation keys and api_version. */
static const char *
check_qualified(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL) {
        return check_short_name(s, strlen(s));
    }
    if (strchr(slash + 1, '/') != NULL) {
        return "more than one '/'";
    }
    if (check_subdomain(s, (size_t)(slash - s)) != NULL) {
        return "the prefix before '/' must be a DNS subdomain";
    }
    return check_short_name(slash + 1, strlen(slash + 1));
}

/* check_printable: n bytes of visible ASCII, no spaces. */
static int
check_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* check_text: UTF-8 without control characters. */
static int
check_text(const char *s, size_t n)
{
    if (!atb_utf8_valid((const uint8_t *)s, n)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static const char *
check_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) {
        return "empty";
    }
    if (n > ATBUS_RECORD_HOSTNAME_MAX) {
        return "longer than 253 characters";
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!check_alnum(ch) && ch != '-' && ch != '.' && ch != '_' &&
            ch != ':') {
            return "only letters, digits, '-', '.', '_' and ':' are allowed";
        }
    }
    return NULL;
}

/* ---- fields ---- */

/* check_field runs a string rule on an optional field. */
static int
check_field(struct check *c, const char *field, const char *value,
            const char *(*rule)(const char *), const char *what)
{
    if (value == NULL) {
        return ATBUS_OK;
    }
    const char *why = rule(value);
    if (why == NULL) {
        return ATBUS_OK;
    }
    atb_disc_path_field(&c->path, field);
    return check_fail(c, "%s: %s", what, why);
}

static const char *
check_name_rule(const char *s)
{
    const char *why = NULL;
    return atb_name_check(s, &why) == ATBUS_OK ? NULL : why;
}

static const char *
check_namespace_rule(const char *s)
{
    size_t n = strlen(s);
    if (n > CHECK_SHORT_MAX) {
        return "longer than 63 characters";
    }
    if (memchr(s, '.', n) != NULL) {
        return "must be a DNS label (no '.')";
    }
    return check_name_rule(s);
}

static const char *
check_short_rule(const char *s)
{
    return check_short_name(s, strlen(s));
}

/* check_pair returns why one map entry breaks the rules (NULL if it does
 * not) and in *part whether the key or the value is at fault. */
static const char *
check_pair(const atbus_kv *kv, int labels, const char **part)
{
    *part = kv->key == NULL ? "key" : "value";
    if (kv->key == NULL || kv->value == NULL) {
        return "missing";
    }
    *part = "key";
    const char *why = check_qualified(kv->key);
    if (why != NULL) {
        return why;
    }
    *part = "value";
    size_t n = strlen(kv->value);
    if (labels) {
        return n == 0 ? NULL : check_short_name(kv->value, n);
    }
    return atb_utf8_valid((const uint8_t *)kv->value, n) ? NULL : "not UTF-8";
}

/* check_map checks labels (values: short names or empty) or annotations
 * (values: any text; all pairs together under a byte cap). Keys are
 * unique. */
static int
check_map(struct check *c, const char *field, const atbus_kv_list *m,
          int labels)
{
    if (m->count == 0) {
        return ATBUS_OK;
    }
    const char *what = labels ? "label" : "annotation";
    size_t max =
        labels ? ATBUS_RECORD_LABELS_MAX : ATBUS_RECORD_ANNOTATIONS_MAX;
    atb_disc_path_field(&c->path, field);
    if (m->items == NULL || m->count > max) {
        return check_fail(c, "more than %zu %ss", max, what);
    }
    size_t bytes = 0;
    for (size_t i = 0; i < m->count; i++) {
        const atbus_kv *kv = &m->items[i];
        const char *key = kv->key != NULL ? kv->key : "";
        atb_disc_path_key(&c->path, i, key, strlen(key));
        const char *part;
        const char *why = check_pair(kv, labels, &part);
        if (why != NULL) {
            return check_fail(c, "%s %s: %s", what, part, why);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->items[j].key, kv->key) == 0) {
                return check_fail(c, "%s key is repeated", what);
            }
        }
        bytes += strlen(kv->key) + strlen(kv->value);
        atb_disc_path_pop(&c->path);
    }
    if (!labels && bytes > ATBUS_RECORD_ANNOTATIONS_BYTES) {
        return check_fail(c, "annotations take more than %zu bytes",
                          ATBUS_RECORD_ANNOTATIONS_BYTES);
    }
    atb_disc_path_pop(&c->path);
    return ATBUS_OK;
}

static int
check_metadata(struct check *c, const char *field, const atbus_metadata *md)
{
    atb_disc_path_field(&c->path, field);
    int rc = check_field(c, "namespace_name", md->namespace_name,
                         check_namespace_rule, "namespace");
    if (rc == ATBUS_OK) {
        rc = check_field(c, "api_version", md->api_version, check_qualified,
                         "api_version");
    }
    if (rc == ATBUS_OK) {
        rc = check_field(c, "kind", md->kind, check_short_rule, "kind");
    }
    if (rc == ATBUS_OK) {
        rc = check_field(c, "group", md->group, check_short_rule, "group");
    }
    if (rc == ATBUS_OK) {
        rc = check_map(c, "labels", &md->labels, 1);
    }
    if (rc == ATBUS_OK) {
        rc = check_map(c, "annotations", &md->annotations, 0);
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_pop(&c->path);
    }
    return rc;
}

static int
check_host(struct check *c, const char *field, const atbus_host *h)
{
    atb_disc_path_field(&c->path, field);
    int rc =
        check_field(c, "hostname", h->hostname, check_hostname, "hostname");
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (h->pid < 0 || h->pid > ATBUS_RECORD_PID_MAX) {
        atb_disc_path_field(&c->path, "pid");
        return check_fail(c, "pid must be 0 (unknown) to %lld",
                          (long long)ATBUS_RECORD_PID_MAX);
    }
    atb_disc_path_pop(&c->path);
    return ATBUS_OK;
}

/* check_strings checks a list: at most max items, each passing rule (a
 * NULL rule accepts any present string). */
static int
check_strings(struct check *c, const char *field, const atbus_string_list *l,
              size_t max, const char *what, const char *(*rule)(const char *))
{
    if (l->count == 0) {
        return ATBUS_OK;
    }
    atb_disc_path_field(&c->path, field);
    if (l->items == NULL || l->count > max) {
        return check_fail(c, "more than %zu %s", max, what);
    }
    for (size_t i = 0; i < l->count; i++) {
        atb_disc_path_index(&c->path, i);
        if (l->items[i] == NULL) {
            return check_fail(c, "%s: missing", what);
        }
        const char *why = rule != NULL ? rule(l->items[i]) : NULL;
        if (why != NULL) {
            return check_fail(c, "%s: %s", what, why);
        }
        atb_disc_path_pop(&c->path);
    }
    atb_disc_path_pop(&c->path);
    return ATBUS_OK;
}

static const char *
check_token_rule(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ATBUS_RECORD_TOKEN_MAX) {
        return "must be 1 to 1024 bytes";
    }
    return check_printable(s, n) ? NULL : "only visible ASCII is allowed";
}

/* The URL parser's reason is static text, so it can be returned. */
static const char *
check_address_rule(const char *s)
{
    size_t n = strlen(s);
    if (n > ATBUS_RECORD_ADDRESS_MAX) {
        return "longer than 255 bytes";
    }
    if (!check_text(s, n)) {
        return "must be UTF-8 without control characters";
    }
    atb_url url;
    atb_url_error uerr = {0, NULL};
    int rc = atb_url_parse(s, &url, &uerr);
    if (rc == ATBUS_ENOTSUP) {
        return "unknown scheme (mem, shm, unix, ipv4, ipv6, udp)";
    }
    if (rc != ATBUS_OK) {
        return uerr.reason != NULL ? uerr.reason : "not a valid URL";
    }
    return NULL;
}

static int
check_gateways(struct check *c, const atbus_gateway_list *gws)
{
    if (gws->count == 0) {
        return ATBUS_OK;
    }
    atb_disc_path_field(&c->path, "gateways");
    if (gws->items == NULL || gws->count > ATBUS_RECORD_GATEWAYS_MAX) {
        return check_fail(c, "more than %d gateways",
                          ATBUS_RECORD_GATEWAYS_MAX);
    }
    for (size_t i = 0; i < gws->count; i++) {
        const atbus_gateway *gw = &gws->items[i];
        atb_disc_path_index(&c->path, i);
        if (gw->priority < 0 || gw->priority > ATBUS_RECORD_PRIORITY_MAX) {
            atb_disc_path_field(&c->path, "priority");
            return check_fail(c, "priority must be 0 to %d",
                              ATBUS_RECORD_PRIORITY_MAX);
        }
        if (gw->addresses.count == 0) {
            atb_disc_path_field(&c->path, "addresses");
            return check_fail(c, "a gateway needs at least one address");
        }
        int rc = check_strings(c, "addresses", &gw->addresses,
                               ATBUS_RECORD_ADDRESSES_MAX, "address",
                               check_address_rule);
        if (rc == ATBUS_OK) {
            atb_disc_path_field(&c->path, "match");
            rc = check_host(c, "host", &gw->match.host);
        }
        if (rc == ATBUS_OK) {
            rc = check_metadata(c, "metadata", &gw->match.metadata);
        }
        if (rc != ATBUS_OK) {
            return rc;
        }
        atb_disc_path_pop(&c->path); /* match */
        atb_disc_path_pop(&c->path); /* [i] */
    }
    atb_disc_path_pop(&c->path);
    return ATBUS_OK;
}

/* ---- node lists ---- */

/* Slots of the duplicate finder: a power of two above twice the cap. */
#define CHECK_SET_SLOTS 8192

/* check_node_list checks a group's members: DNS subdomains, each once.
 * Duplicates are found with a small open-addressing table on the stack,
 * so validation never allocates. */
static int
check_node_list(struct check *c, const atbus_string_list *l)
{
    int rc = check_strings(c, "node_list", l, ATBUS_RECORD_NODE_LIST_MAX,
                           "member", check_name_rule);
    if (rc != ATBUS_OK || l->count < 2) {
        return rc;
    }
    uint16_t slots[CHECK_SET_SLOTS]; /* index + 1; 0 is empty */
    memset(slots, 0, sizeof(slots));
    for (size_t i = 0; i < l->count; i++) {
        const char *s = l->items[i];
        size_t h = (size_t)XXH3_64bits(s, strlen(s)) & (CHECK_SET_SLOTS - 1);
        while (slots[h] != 0) {
            if (strcmp(l->items[slots[h] - 1], s) == 0) {
                atb_disc_path_field(&c->path, "node_list");
                atb_disc_path_index(&c->path, i);
                return check_fail(c, "member is listed twice (first at [%u])",
                                  (unsigned)(slots[h] - 1));
            }
            h = (h + 1) & (CHECK_SET_SLOTS - 1);
        }
        slots[h] = (uint16_t)(i + 1);
    }
    return ATBUS_OK;
}

/* ---- records ---- */

static int
check_metadata_empty(const atbus_metadata *md)
{
    return md->namespace_name == NULL && md->api_version == NULL &&
           md->kind == NULL && md->group == NULL && md->labels.count == 0 &&
           md->annotations.count == 0;
}

/* check_node_field returns the first field only nodes and clients have
 * that rec fills, or NULL. */
static const char *
check_node_field(const atbus_record *rec)
{
    if (rec->hash_code != NULL) {
        return "hash_code";
    }
    if (rec->tokens.count != 0) {
        return "tokens";
    }
    if (rec->host.hostname != NULL || rec->host.pid != 0) {
        return "host";
    }
    if (!check_metadata_empty(&rec->metadata)) {
        return "metadata";
    }
    if (rec->gateways.count != 0) {
        return "gateways";
    }
    if (rec->advertise_relay.name != NULL ||
        !check_metadata_empty(&rec->advertise_relay.metadata)) {
        return "advertise_relay";
    }
    return NULL;
}

/* check_foreign refuses a field that rec's type does not have: the
 * encoder would drop it, and a reader could not tell. */
static int
check_foreign(struct check *c, const atbus_record *rec, const char *field)
{
    atb_disc_path_field(&c->path, field);
    return check_fail(c, "a %s record has no %s",
                      atbus_record_type_name(rec->type), field);
}

static int
check_group_only(struct check *c, const atbus_record *rec)
{
    const char *field = check_node_field(rec);
    if (field == NULL && rec->upstreams.count != 0) {
        field = "upstreams";
    }
    return field != NULL ? check_foreign(c, rec, field)
                         : check_node_list(c, &rec->node_list);
}

/* check_upstreams checks a route's list: names, each once, and never the
 * record's own (a node cannot hang under itself). Longer cycles span
 * several records and are the route registry's to refuse. */
static int
check_upstreams(struct check *c, const atbus_record *rec)
{
    const atbus_string_list *l = &rec->upstreams;
    int rc = check_strings(c, "upstreams", l, ATBUS_RECORD_UPSTREAMS_MAX,
                           "upstream", check_name_rule);
    for (size_t i = 0; i < l->count && rc == ATBUS_OK; i++) {
        const char *why = strcmp(l->items[i], rec->name) == 0
                              ? "upstream is the record itself"
                              : NULL;
        for (size_t j = 0; j < i && why == NULL; j++) {
            if (strcmp(l->items[j], l->items[i]) == 0) {
                why = "upstream is listed twice";
            }
        }
        if (why != NULL) {
            atb_disc_path_field(&c->path, "upstreams");
            atb_disc_path_index(&c->path, i);
            rc = check_fail(c, "%s", why);
        }
    }
    return rc;
}

static int
check_route_only(struct check *c, const atbus_record *rec)
{
    const char *field = check_node_field(rec);
    if (field == NULL && rec->custom_data != NULL) {
        field = "custom_data";
    }
    if (field == NULL && rec->node_list.count != 0) {
        field = "node_list";
    }
    return field != NULL ? check_foreign(c, rec, field)
                         : check_upstreams(c, rec);
}

static int
check_node(struct check *c, const atbus_record *rec)
{
    if (rec->node_list.count != 0) {
        atb_disc_path_field(&c->path, "node_list");
        return check_fail(c, "only group records have a node_list");
    }
    if (rec->upstreams.count != 0) {
        atb_disc_path_field(&c->path, "upstreams");
        return check_fail(c, "only route records have upstreams");
    }
    if (rec->hash_code != NULL) {
        size_t n = strlen(rec->hash_code);
        if (n > ATBUS_RECORD_HASH_CODE_MAX ||
            !check_printable(rec->hash_code, n)) {
            atb_disc_path_field(&c->path, "hash_code");
            return check_fail(c,
                              "hash_code must be up to %d bytes of "
                              "visible ASCII",
                              ATBUS_RECORD_HASH_CODE_MAX);
        }
    }
    int rc = check_strings(c, "tokens", &rec->tokens, ATBUS_RECORD_TOKENS_MAX,
                           "token", check_token_rule);
    if (rc == ATBUS_OK) {
        rc = check_host(c, "host", &rec->host);
    }
    if (rc == ATBUS_OK) {
        rc = check_metadata(c, "metadata", &rec->metadata);
    }
    if (rc == ATBUS_OK) {
        rc = check_gateways(c, &rec->gateways);
    }
    if (rc == ATBUS_OK) {
        atb_disc_path_field(&c->path, "advertise_relay");
        rc = check_field(c, "name", rec->advertise_relay.name, check_name_rule,
                         "relay name");
    }
    if (rc == ATBUS_OK) {
        rc = check_metadata(c, "metadata", &rec->advertise_relay.metadata);
    }
    return rc;
}

int
atb_disc_check(const atbus_record *rec, atb_disc_fault *f)
{
    struct check c;
    memset(&c, 0, sizeof(c));
    c.fault = f;
    if (rec->name == NULL) {
        atb_disc_path_field(&c.path, "name");
        return check_fail(&c, "name is missing");
    }
    int rc = check_field(&c, "name", rec->name, check_name_rule, "name");
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (rec->type != ATBUS_RECORD_NODE && rec->type != ATBUS_RECORD_CLIENT &&
        rec->type != ATBUS_RECORD_GROUP && rec->type != ATBUS_RECORD_ROUTE) {
        atb_disc_path_field(&c.path, "type");
        return check_fail(&c, "type must be node, client, group or route");
    }
    if (rec->version < 0) {
        atb_disc_path_field(&c.path, "version");
        return check_fail(&c, "version must not be negative");
    }
    if (rec->custom_data != NULL) {
        size_t n = strlen(rec->custom_data);
        if (n > ATBUS_RECORD_CUSTOM_DATA_MAX ||
            !atb_utf8_valid((const uint8_t *)rec->custom_data, n)) {
            atb_disc_path_field(&c.path, "custom_data");
            return check_fail(&c,
                              "custom_data must be UTF-8 of up to %zu "
                              "bytes",
                              ATBUS_RECORD_CUSTOM_DATA_MAX);
        }
    }
    if (rec->type == ATBUS_RECORD_GROUP) {
        return check_group_only(&c, rec);
    }
    if (rec->type == ATBUS_RECORD_ROUTE) {
        return check_route_only(&c, rec);
    }
    return check_node(&c, rec);
}

int
atbus_record_validate(const atbus_record *rec, atbus_record_error *err)
{
    atb_disc_error_clear(err);
    if (rec == NULL) {
        return atb_disc_error_set(err, ATBUS_EINVAL, "no record");
    }
    atb_disc_fault f;
    int rc = atb_disc_check(rec, &f);
    if (rc != ATBUS_OK) {
        atb_disc_error_from_fault(err, &f, NULL);
        if (err != NULL && rec->name != NULL) {
            atb_disc_error_name(err, rec->name, strlen(rec->name));
        }
    }
    return rc;
}
