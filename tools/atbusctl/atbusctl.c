/*
 * atbusctl: inspect discovery and route records from the command line.
 *
 *   atbusctl validate <file.yaml>
 *   atbusctl list nodes|groups|routes <source>
 *   atbusctl relation <x> <y> <source>
 *   atbusctl next-hop <src> <dst> <source> [--policy <file>]
 *                     [--prefer upstream|target]
 *
 *   <source>: --file <file.yaml>, or --etcd <url>[,<url>...]
 *             [--prefix <prefix>] (one range of the prefix, no watch)
 *
 * Commands are rows of one table, and records come from a source
 * (struct ctl_source) that the command line names, so a new command (a
 * row) or a new kind of source (an option, a field and a branch in
 * ctl_open_source) does not touch the others. The etcd client, the route
 * feed and the next hop are internal layers, so atbusctl links the
 * static internal library.
 *
 * Exit status: 0 success, 1 the records have errors or could not be read
 * (or no route), 2 the command line is wrong.
 */
#include <atbus/atbus.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/name.h"
#include "discovery/route_feed.h"
#include "discovery/sync.h"
#include "etcd/etcd.h"
#include "loop/loop.h"
#include "route/next_hop.h"
#include "route/policy.h"
#include "route/registry.h"
#include "route/relation.h"

enum {
    CTL_OK = 0,
    CTL_FAILED = 1,
    CTL_USAGE = 2,
};

/* Options a command may accept, as bits. */
enum {
    CTL_OPT_FILE = 1u << 0,   /* --file <path>: records from a YAML file */
    CTL_OPT_ETCD = 1u << 1,   /* --etcd <urls> [--prefix <p>]: from etcd */
    CTL_OPT_POLICY = 1u << 2, /* --policy <file>, --prefer <which> */
};
#define CTL_OPT_SOURCE (CTL_OPT_FILE | CTL_OPT_ETCD)

#define CTL_MAX_ARGS 4

/* The etcd prefix when --prefix is not given (DESIGN §8). */
#define CTL_DEFAULT_PREFIX "/atbus"

/* The longest an etcd read may take, whatever the endpoints do. */
#define CTL_ETCD_DEADLINE_US (60ull * 1000 * 1000)

/* The parsed command line. */
struct ctl_args {
    const char *arg[CTL_MAX_ARGS];
    size_t nargs;
    const char *file;
    const char *etcd;
    const char *prefix;
    const char *policy;
    const char *prefer;
};

struct ctl_command {
    const char *name;
    const char *usage;   /* arguments and options, for help */
    const char *summary; /* one line */
    size_t min_args;
    size_t max_args;
    unsigned options;
    int (*run)(const struct ctl_args *args);
};

static void ctl_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
ctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("atbusctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- records from a source ---- */

/* Where records come from: a YAML file or etcd. */
struct ctl_source {
    const char *file;
    const char *etcd; /* comma-separated endpoint URLs */
    const char *prefix;
};

/* Error printing for loads: one line per problem, compiler style. */
struct ctl_report {
    const char *where; /* the file, or the etcd prefix */
    size_t errors;
};

/* ctl_print_error prints one record error; key (may be NULL) is the etcd
 * key it was read from. */
static void
ctl_print_error(struct ctl_report *r, const char *key,
                const atbus_record_error *err)
{
    r->errors++;
    if (key != NULL) {
        fprintf(stderr, "%s%s: ", r->where, key);
    } else if (err->line != 0) {
        fprintf(stderr, "%s:%zu:%zu: ", r->where, err->line, err->column);
    } else {
        fprintf(stderr, "%s: ", r->where);
    }
    if (err->path[0] != '\0') {
        fprintf(stderr, "%s: ", err->path);
    }
    fprintf(stderr, "%s", err->reason);
    if (err->name[0] != '\0') {
        fprintf(stderr, " (record %s)", err->name);
    }
    fprintf(stderr, " [%s]\n", atbus_err_name(err->code));
}

static void
ctl_on_load_error(atbus_registry *reg, const atbus_record_error *err, void *arg)
{
    (void)reg;
    ctl_print_error(arg, NULL, err);
}

/* One range of the etcd prefix, read into a registry. */
struct ctl_etcd_read {
    atbus_registry *reg;
    struct ctl_report *report;
    int done;
    int err;
    char detail[512];
    size_t loaded;
};

static void
ctl_etcd_done(const atb_etcd_result *res, void *arg)
{
    struct ctl_etcd_read *rd = arg;
    rd->done = 1;
    rd->err = res->err;
    snprintf(rd->detail, sizeof(rd->detail), "%s", res->detail);
    for (size_t i = 0; i < res->nkvs && res->err == ATBUS_OK; i++) {
        const atb_etcd_kv *kv = &res->kvs[i];
        atbus_record rec;
        atbus_record_error err;
        int rc = atb_disc_sync_decode(kv->key, kv->key_len, kv->value,
                                      kv->value_len, NULL, &rec, &err);
        if (rc == ATBUS_OK) {
            rc = atbus_registry_put(rd->reg, &rec, &err);
            atbus_record_fini(&rec);
        }
        if (rc == ATBUS_OK) {
            rd->loaded++;
        } else if (rc != ATBUS_ENOTSUP) {
            ctl_print_error(rd->report, kv->key, &err);
        }
    }
}

/* ctl_etcd_config fills cfg from the source: endpoints split at commas
 * into names (storage for them), a bound on each request. */
static int
ctl_etcd_config(const struct ctl_source *src, atb_etcd_config *cfg,
                char names[ATB_ETCD_MAX_ENDPOINTS][256])
{
    atb_etcd_config_default(cfg);
    /* As the sync does: "/atbus/" and "/atbus" are one prefix. */
    static char prefix[1024];
    snprintf(prefix, sizeof(prefix), "%s",
             src->prefix != NULL ? src->prefix : CTL_DEFAULT_PREFIX);
    size_t len = strlen(prefix);
    while (len > 0 && prefix[len - 1] == '/') {
        prefix[--len] = '\0';
    }
    cfg->prefix = prefix;
    cfg->request_timeout_ms = 3000;
    const char *p = src->etcd;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= 256 ||
            cfg->endpoint_count == ATB_ETCD_MAX_ENDPOINTS) {
            return ATBUS_EINVAL;
        }
        memcpy(names[cfg->endpoint_count], p, n);
        names[cfg->endpoint_count][n] = '\0';
        cfg->endpoints[cfg->endpoint_count] = names[cfg->endpoint_count];
        cfg->endpoint_count++;
        p += n;
        p += *p == ',';
    }
    return cfg->endpoint_count > 0 ? ATBUS_OK : ATBUS_EINVAL;
}

/* ctl_load_etcd reads every record under the prefix into reg; values
 * that are not valid records are reported and skipped. */
static int
ctl_load_etcd(const struct ctl_source *src, atbus_registry *reg,
              struct ctl_report *report)
{
    char names[ATB_ETCD_MAX_ENDPOINTS][256];
    atb_etcd_config cfg;
    if (ctl_etcd_config(src, &cfg, names) != ATBUS_OK) {
        ctl_error("--etcd: a comma-separated list of 1 to %d URLs",
                  ATB_ETCD_MAX_ENDPOINTS);
        return CTL_USAGE;
    }
    atb_loop *loop = NULL;
    atb_etcd *c = NULL;
    int rc = atb_loop_new(&loop);
    if (rc == ATBUS_OK) {
        rc = atb_etcd_new(&c, loop, &cfg, NULL, NULL);
    }
    struct ctl_etcd_read rd = {.reg = reg, .report = report};
    if (rc == ATBUS_OK) {
        rc = atb_etcd_range(c, "", 1, ctl_etcd_done, &rd);
    }
    if (rc == ATBUS_EINVAL) {
        ctl_error("--etcd: endpoints must be http:// or https:// URLs");
        atb_etcd_free(c);
        atb_loop_free(loop);
        return CTL_USAGE;
    }
    uint64_t end = atb_clock_us() + CTL_ETCD_DEADLINE_US;
    while (rc == ATBUS_OK && !rd.done && atb_clock_us() < end) {
        atb_loop_poll(loop, 100);
    }
    atb_etcd_free(c);
    atb_loop_free(loop);
    if (rc == ATBUS_OK && !rd.done) {
        rc = ATBUS_ETIMEDOUT;
        snprintf(rd.detail, sizeof(rd.detail), "no answer");
    } else if (rc == ATBUS_OK) {
        rc = rd.err;
    }
    if (rc != ATBUS_OK) {
        ctl_error("etcd %s: %s [%s]", src->etcd,
                  rd.detail[0] != '\0' ? rd.detail : atbus_strerror(rc),
                  atbus_err_name(rc));
        return CTL_FAILED;
    }
    return report->errors == 0 ? CTL_OK : CTL_FAILED;
}

/*
 * ctl_open_source fills a new registry from src and reports problems on
 * stderr. Returns CTL_OK, or CTL_FAILED when something was reported (or
 * CTL_USAGE for a bad --etcd list); what did load is in *out either way
 * (NULL only when the registry could not be made), and the caller frees
 * it. res (may be NULL) gets a file load's counts.
 */
static int
ctl_open_source(const struct ctl_source *src, atbus_registry **out,
                atbus_load_result *res)
{
    *out = NULL;
    int rc = atbus_registry_new(out);
    if (rc != ATBUS_OK) {
        ctl_error("%s", atbus_strerror(rc));
        return CTL_FAILED;
    }
    if (src->etcd != NULL) {
        char where[320];
        snprintf(where, sizeof(where), "etcd %s",
                 src->prefix != NULL ? src->prefix : CTL_DEFAULT_PREFIX);
        struct ctl_report report = {where, 0};
        return ctl_load_etcd(src, *out, &report);
    }
    struct ctl_report report = {src->file, 0};
    atbus_registry_callbacks cbs = {.on_load_error = ctl_on_load_error};
    atbus_registry_set_callbacks(*out, &cbs, &report);
    rc = atbus_registry_load_yaml(*out, src->file, res);
    atbus_registry_set_callbacks(*out, NULL, NULL);
    if (rc == ATBUS_ENOMEM) {
        ctl_error("%s: %s", src->file, atbus_strerror(rc));
    }
    return rc == ATBUS_OK ? CTL_OK : CTL_FAILED;
}

/* ctl_need_source checks that exactly one source was named. */
static int
ctl_need_source(const char *cmd, const struct ctl_args *args,
                struct ctl_source *src)
{
    if ((args->file == NULL) == (args->etcd == NULL)) {
        ctl_error("%s needs one source: --file <file.yaml> or --etcd <url>",
                  cmd);
        return CTL_USAGE;
    }
    if (args->prefix != NULL && args->etcd == NULL) {
        ctl_error("%s: --prefix goes with --etcd", cmd);
        return CTL_USAGE;
    }
    src->file = args->file;
    src->etcd = args->etcd;
    src->prefix = args->prefix;
    return CTL_OK;
}

/* ---- the route registry of a source ---- */

/* Route records as the route registry holds them. */
struct ctl_routes {
    atbus_registry *reg;
    atb_route_registry routes;
    atb_disc_route_feed *feed;
    const char *where;
    size_t refused;
};

static void
ctl_on_route_reject(const char *name, int err, const char *detail, void *arg)
{
    struct ctl_routes *r = arg;
    r->refused++;
    fprintf(stderr, "%s: routes: %s: %s [%s]\n", r->where, name, detail,
            atbus_err_name(err));
}

/* ctl_routes_open loads the source and feeds its route records into a
 * route registry; refused ones are reported. Returns like
 * ctl_open_source; r is usable unless r->reg is NULL. res as for
 * ctl_open_source. */
static int
ctl_routes_open(const struct ctl_args *args, const char *cmd,
                struct ctl_routes *r, atbus_load_result *res)
{
    memset(r, 0, sizeof(*r));
    atb_route_registry_init(&r->routes);
    struct ctl_source src;
    int status = ctl_need_source(cmd, args, &src);
    if (status != CTL_OK) {
        return status;
    }
    r->where = src.file != NULL ? src.file : src.etcd;
    status = ctl_open_source(&src, &r->reg, res);
    if (r->reg == NULL || status == CTL_USAGE) {
        return status;
    }
    int rc = atb_disc_route_feed_new_internal(&r->feed, r->reg, &r->routes,
                                              ctl_on_route_reject, r);
    if (rc == ATBUS_OK) {
        rc = atb_disc_route_feed_load(r->feed);
    }
    if (rc == ATBUS_ENOMEM || rc == ATBUS_EINVAL) {
        ctl_error("%s", atbus_strerror(rc));
    }
    return rc == ATBUS_OK ? status : CTL_FAILED;
}

static void
ctl_routes_close(struct ctl_routes *r)
{
    atb_disc_route_feed_free(r->feed);
    atb_route_registry_fini(&r->routes);
    atbus_registry_free(r->reg);
}

/* ---- validate ---- */

static int
ctl_validate(const struct ctl_args *args)
{
    const char *file = args->arg[0];
    struct ctl_args with_file = *args;
    with_file.file = file;
    struct ctl_routes r;
    atbus_load_result res;
    memset(&res, 0, sizeof(res));
    int status = ctl_routes_open(&with_file, "validate", &r, &res);
    if (status == CTL_OK) {
        printf("%s: %zu nodes, %zu groups, %zu routes, no errors\n", file,
               atbus_registry_count(r.reg, ATBUS_REGISTRY_NODES),
               atbus_registry_count(r.reg, ATBUS_REGISTRY_GROUPS),
               atbus_registry_count(r.reg, ATBUS_REGISTRY_ROUTES));
    } else if (res.first.code != ATBUS_EPARSE &&
               res.first.code != ATBUS_ENOTFOUND &&
               res.first.code != ATBUS_ESYSTEM && r.reg != NULL) {
        fprintf(stderr, "%s: %zu records valid, %zu refused", file, res.loaded,
                res.skipped);
        if (r.refused > 0) {
            fprintf(stderr, ", %zu route records in a cycle", r.refused);
        }
        fputc('\n', stderr);
    }
    ctl_routes_close(&r);
    return status;
}

/* ---- list ---- */

/* A growing string for table cells. */
struct ctl_buf {
    char *s;
    size_t len;
    size_t cap;
};

static void ctl_put(struct ctl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ctl_put(struct ctl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (s == NULL) {
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ctl_take returns the text built so far ("-" when empty) and resets b. */
static char *
ctl_take(struct ctl_buf *b)
{
    char *s = b->s;
    if (s == NULL || b->len == 0) {
        free(s);
        s = malloc(2);
        if (s != NULL) {
            memcpy(s, "-", 2);
        }
    }
    memset(b, 0, sizeof(*b));
    return s;
}

static char *
ctl_text(const char *s)
{
    struct ctl_buf b = {NULL, 0, 0};
    if (s != NULL) {
        ctl_put(&b, "%s", s);
    }
    return ctl_take(&b);
}

static char *
ctl_map_text(const atbus_kv_list *m)
{
    struct ctl_buf b = {NULL, 0, 0};
    for (size_t i = 0; i < m->count; i++) {
        ctl_put(&b, "%s%s=%s", i != 0 ? "," : "", m->items[i].key,
                m->items[i].value);
    }
    return ctl_take(&b);
}

/* ctl_gateways_text shows each gateway as priority:address[,address]. */
static char *
ctl_gateways_text(const atbus_gateway_list *gws)
{
    struct ctl_buf b = {NULL, 0, 0};
    for (size_t i = 0; i < gws->count; i++) {
        const atbus_gateway *gw = &gws->items[i];
        ctl_put(&b, "%s%d:", i != 0 ? " " : "", (int)gw->priority);
        for (size_t j = 0; j < gw->addresses.count; j++) {
            ctl_put(&b, "%s%s", j != 0 ? "," : "", gw->addresses.items[j]);
        }
    }
    return ctl_take(&b);
}

static char *
ctl_list_text(const atbus_string_list *l)
{
    struct ctl_buf b = {NULL, 0, 0};
    for (size_t i = 0; i < l->count; i++) {
        ctl_put(&b, "%s%s", i != 0 ? "," : "", l->items[i]);
    }
    return ctl_take(&b);
}

/* A table: a header row and rows of cells, printed with columns as wide
 * as their widest cell. */
#define CTL_MAX_COLS 8

struct ctl_table {
    size_t ncols;
    size_t nrows;
    char **cells; /* nrows * ncols, row 0 the header */
};

static void
ctl_table_print(const struct ctl_table *t)
{
    size_t width[CTL_MAX_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t n = s != NULL ? strlen(s) : 1;
            width[c] = n > width[c] ? n : width[c];
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (s == NULL) {
                s = "?";
            }
            if (c + 1 == t->ncols) {
                printf("%s\n", s);
            } else {
                printf("%-*s  ", (int)width[c], s);
            }
        }
    }
}

static void
ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
}

/* ctl_table_new makes a table of header and nrows rows; NULL when out of
 * memory (reported). */
static int
ctl_table_new(struct ctl_table *t, const char *const *header, size_t ncols,
              size_t nrows)
{
    t->ncols = ncols;
    t->nrows = nrows + 1;
    t->cells = calloc(t->nrows * t->ncols, sizeof(*t->cells));
    if (t->cells == NULL) {
        ctl_error("out of memory");
        return CTL_FAILED;
    }
    for (size_t c = 0; c < ncols; c++) {
        t->cells[c] = ctl_text(header[c]);
    }
    return CTL_OK;
}

struct ctl_collect {
    const atbus_record **recs;
    size_t count;
};

static int
ctl_collect_one(const atbus_record *rec, void *arg)
{
    struct ctl_collect *c = arg;
    c->recs[c->count++] = rec;
    return 0;
}

static int
ctl_by_name(const void *a, const void *b)
{
    const atbus_record *x = *(const atbus_record *const *)a;
    const atbus_record *y = *(const atbus_record *const *)b;
    return strcmp(x->name, y->name);
}

/* The columns of each table, and how a record fills a row. */
struct ctl_listing {
    const char *what; /* nodes, groups, routes */
    enum atbus_registry_table table;
    const char *const *header;
    size_t ncols;
};

static const char *const ctl_node_cols[] = {"NAME", "TYPE",   "NAMESPACE",
                                            "KIND", "LABELS", "GATEWAYS"};
static const char *const ctl_group_cols[] = {"NAME", "VERSION", "NODES"};
static const char *const ctl_route_cols[] = {"NAME", "VERSION", "UPSTREAMS"};

static const struct ctl_listing ctl_listings[] = {
    {"nodes", ATBUS_REGISTRY_NODES, ctl_node_cols, 6},
    {"groups", ATBUS_REGISTRY_GROUPS, ctl_group_cols, 3},
    {"routes", ATBUS_REGISTRY_ROUTES, ctl_route_cols, 3},
};

/* ctl_row fills one table row for a record. */
static void
ctl_row(char **cells, const atbus_record *rec)
{
    char version[32];
    snprintf(version, sizeof(version), "%lld", (long long)rec->version);
    cells[0] = ctl_text(rec->name);
    switch (rec->type) {
    case ATBUS_RECORD_GROUP:
        cells[1] = ctl_text(version);
        cells[2] = ctl_list_text(&rec->node_list);
        return;
    case ATBUS_RECORD_ROUTE:
        cells[1] = ctl_text(version);
        cells[2] = ctl_list_text(&rec->upstreams);
        return;
    default:
        cells[1] = ctl_text(atbus_record_type_name(rec->type));
        cells[2] = ctl_text(rec->metadata.namespace_name);
        cells[3] = ctl_text(rec->metadata.kind);
        cells[4] = ctl_map_text(&rec->metadata.labels);
        cells[5] = ctl_gateways_text(&rec->gateways);
        return;
    }
}

static int
ctl_list(const struct ctl_args *args)
{
    const struct ctl_listing *l = NULL;
    for (size_t i = 0; i < sizeof(ctl_listings) / sizeof(ctl_listings[0]);
         i++) {
        if (strcmp(args->arg[0], ctl_listings[i].what) == 0) {
            l = &ctl_listings[i];
        }
    }
    if (l == NULL) {
        ctl_error("list what: nodes, groups or routes, not '%s'", args->arg[0]);
        return CTL_USAGE;
    }
    struct ctl_source src;
    int status = ctl_need_source("list", args, &src);
    if (status != CTL_OK) {
        return status;
    }
    atbus_registry *reg = NULL;
    status = ctl_open_source(&src, &reg, NULL);
    if (reg == NULL || status == CTL_USAGE) {
        atbus_registry_free(reg);
        return status;
    }
    size_t n = atbus_registry_count(reg, l->table);
    struct ctl_collect col = {calloc(n + 1, sizeof(*col.recs)), 0};
    struct ctl_table t;
    if (col.recs == NULL || ctl_table_new(&t, l->header, l->ncols, n) != 0) {
        free(col.recs);
        atbus_registry_free(reg);
        return CTL_FAILED;
    }
    atbus_registry_foreach(reg, l->table, ctl_collect_one, &col);
    qsort(col.recs, col.count, sizeof(*col.recs), ctl_by_name);
    for (size_t i = 0; i < col.count; i++) {
        ctl_row(&t.cells[(i + 1) * t.ncols], col.recs[i]);
    }
    ctl_table_print(&t);
    ctl_table_free(&t);
    free(col.recs);
    atbus_registry_free(reg);
    return status;
}

/* ---- relation ---- */

/* ctl_name_error explains why the route registry could not answer for
 * x and y. */
static int
ctl_name_error(const char *cmd, int rc, const atb_route_registry *routes,
               const char *x, const char *y)
{
    const char *name = atb_route_find(routes, x) == NULL ? x : y;
    if (rc == ATBUS_EINVAL) {
        ctl_error("%s: '%s' is not a node name", cmd,
                  atb_name_check(x, NULL) != ATBUS_OK ? x : y);
        return CTL_USAGE;
    }
    if (rc == ATBUS_ENOTFOUND) {
        ctl_error("%s: '%s' has no route record and is nobody's upstream", cmd,
                  name);
    } else {
        ctl_error("%s: %s", cmd, atbus_strerror(rc));
    }
    return CTL_FAILED;
}

static int
ctl_relation(const struct ctl_args *args)
{
    struct ctl_routes r;
    int status = ctl_routes_open(args, "relation", &r, NULL);
    if (r.reg == NULL || status == CTL_USAGE) {
        ctl_routes_close(&r);
        return status;
    }
    atbus_relation rel = 0;
    int rc = atb_route_relation(&r.routes, args->arg[0], args->arg[1], &rel);
    if (rc == ATBUS_OK) {
        printf("%s\n", atbus_relation_name(rel));
    } else {
        status = ctl_name_error("relation", rc, &r.routes, args->arg[0],
                                args->arg[1]);
    }
    ctl_routes_close(&r);
    return status;
}

/* ---- next hop ---- */

/* What next-hop knows: the records, and who the source is. */
struct ctl_hop_env {
    const atbus_registry *reg;
    const atbus_record *src;
};

static const atbus_record *
ctl_node(const atbus_registry *reg, const char *name)
{
    const atbus_record *rec = NULL;
    atbus_registry_get(reg, ATBUS_REGISTRY_NODES, name, &rec);
    return rec;
}

static const void *
ctl_hop_record(const char *name, void *arg)
{
    const struct ctl_hop_env *env = arg;
    return ctl_node(env->reg, name);
}

/* A peer is dialable when the source has a gateway of it to use; with
 * no connections, nothing is connected. */
static int
ctl_hop_peer(const char *name, void *arg)
{
    const struct ctl_hop_env *env = arg;
    const atbus_record *peer = ctl_node(env->reg, name);
    atbus_gateway_choice choice;
    if (env->src == NULL || peer == NULL ||
        atbus_select_gateway(env->src, peer, NULL, 0, &choice) != ATBUS_OK) {
        return ATB_ROUTE_PEER_UNREACHABLE;
    }
    return ATB_ROUTE_PEER_DIALABLE;
}

/* ctl_read_policy parses a policy file; *out stays NULL without one. */
static int
ctl_read_policy(const char *path, atb_route_policy **out)
{
    *out = NULL;
    if (path == NULL) {
        return CTL_OK;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        ctl_error("cannot open %s", path);
        return CTL_FAILED;
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    int big = n == sizeof(text) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (big) {
        ctl_error("%s: larger than %zu bytes", path, sizeof(text) - 1);
        return CTL_FAILED;
    }
    text[n] = '\0';
    atbus_route_error err;
    int rc = atb_route_policy_parse(text, out, &err);
    if (rc != ATBUS_OK) {
        ctl_error("%s: %s", path,
                  rc == ATBUS_EINVAL ? err.text : atbus_strerror(rc));
        return CTL_FAILED;
    }
    return CTL_OK;
}

static int
ctl_next_hop(const struct ctl_args *args)
{
    const char *src = args->arg[0];
    const char *dst = args->arg[1];
    enum atb_route_prefer prefer = ATB_ROUTE_PREFER_UPSTREAM;
    if (args->prefer != NULL && strcmp(args->prefer, "target") == 0) {
        prefer = ATB_ROUTE_PREFER_TARGET_RELAY;
    } else if (args->prefer != NULL && strcmp(args->prefer, "upstream") != 0) {
        ctl_error("next-hop: --prefer upstream or target, not '%s'",
                  args->prefer);
        return CTL_USAGE;
    }
    atb_route_policy *policy = NULL;
    int status = ctl_read_policy(args->policy, &policy);
    if (status != CTL_OK) {
        return status;
    }
    struct ctl_routes r;
    status = ctl_routes_open(args, "next-hop", &r, NULL);
    if (r.reg == NULL || status == CTL_USAGE) {
        ctl_routes_close(&r);
        atb_route_policy_free(policy);
        return status;
    }
    struct ctl_hop_env henv = {r.reg, ctl_node(r.reg, src)};
    atb_route_env env = {.policy = policy,
                         .record = ctl_hop_record,
                         .attr = atb_disc_record_attr,
                         .peer_state = ctl_hop_peer,
                         .arg = &henv,
                         .prefer = prefer};
    atbus_next_hop hop;
    int rc = atb_route_next_hop(&r.routes, &env, src, dst, &hop);
    if (rc == ATBUS_OK) {
        /* The address the source would dial: none for local delivery. */
        const atbus_record *peer = ctl_node(r.reg, hop.peer);
        atbus_gateway_choice choice;
        const char *address = NULL;
        if (hop.kind != ATBUS_HOP_LOCAL && henv.src != NULL && peer != NULL &&
            atbus_select_gateway(henv.src, peer, NULL, 0, &choice) ==
                ATBUS_OK) {
            address = choice.address;
        }
        static const char *const cols[] = {"HOP", "PEER", "RELATION", "ENCRYPT",
                                           "ADDRESS"};
        struct ctl_table t;
        if (ctl_table_new(&t, cols, 5, 1) == CTL_OK) {
            char **row = &t.cells[t.ncols];
            row[0] = ctl_text(atbus_hop_kind_name(hop.kind));
            row[1] = ctl_text(hop.peer);
            row[2] = ctl_text(
                hop.relation != 0 ? atbus_relation_name(hop.relation) : NULL);
            row[3] = ctl_text(hop.encrypt ? "yes" : "no");
            row[4] = ctl_text(address);
            ctl_table_print(&t);
            ctl_table_free(&t);
        } else {
            status = CTL_FAILED;
        }
    } else if (rc == ATBUS_ENOROUTE) {
        ctl_error("next-hop: no route from %s to %s%s%s%s", src, dst,
                  hop.peer[0] != '\0' ? " (last tried: " : "",
                  hop.peer[0] != '\0' ? hop.peer : "",
                  hop.peer[0] != '\0' ? ")" : "");
        status = CTL_FAILED;
    } else {
        status = ctl_name_error("next-hop", rc, &r.routes, src, dst);
    }
    ctl_routes_close(&r);
    atb_route_policy_free(policy);
    return status;
}

/* ---- command line ---- */

#define CTL_SOURCE_USAGE                                                       \
    "(--file <file.yaml> | --etcd <url>[,<url>...] [--prefix <p>])"

static const struct ctl_command ctl_commands[] = {
    {"validate", "<file.yaml>",
     "check a records file; print every error with its line and field "
     "path, and route records that close a cycle",
     1, 1, 0, ctl_validate},
    {"list", "nodes|groups|routes " CTL_SOURCE_USAGE,
     "show the node, group or route records as a table", 1, 1, CTL_OPT_SOURCE,
     ctl_list},
    {"relation", "<x> <y> " CTL_SOURCE_USAGE,
     "what y is to x in the route topology (e.g. IMMEDIATE_UPSTREAM)", 2, 2,
     CTL_OPT_SOURCE, ctl_relation},
    {"next-hop",
     "<src> <dst> " CTL_SOURCE_USAGE
     " [--policy <file>] [--prefer upstream|target]",
     "where a message from src to dst goes next, and the address src "
     "would dial",
     2, 2, CTL_OPT_SOURCE | CTL_OPT_POLICY, ctl_next_hop},
};
#define CTL_NCOMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static const struct ctl_command *
ctl_find(const char *name)
{
    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        if (strcmp(ctl_commands[i].name, name) == 0) {
            return &ctl_commands[i];
        }
    }
    return NULL;
}

static void
ctl_usage(FILE *out)
{
    fprintf(out, "usage: atbusctl <command> [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        const struct ctl_command *c = &ctl_commands[i];
        fprintf(out, "  %s %s\n      %s\n", c->name, c->usage, c->summary);
    }
    fprintf(out,
            "\n--etcd reads the records under the prefix (default %s) "
            "once.\n",
            CTL_DEFAULT_PREFIX);
    fprintf(out, "exit status: 0 ok, 1 errors in the records (or no route), "
                 "2 usage\n");
}

/* The options with a value, the bit that allows each, and where the
 * value goes. */
struct ctl_option {
    const char *name;
    unsigned bit;
    size_t offset; /* of the const char * in struct ctl_args */
};

static const struct ctl_option ctl_options[] = {
    {"--file", CTL_OPT_FILE, offsetof(struct ctl_args, file)},
    {"--etcd", CTL_OPT_ETCD, offsetof(struct ctl_args, etcd)},
    {"--prefix", CTL_OPT_ETCD, offsetof(struct ctl_args, prefix)},
    {"--policy", CTL_OPT_POLICY, offsetof(struct ctl_args, policy)},
    {"--prefer", CTL_OPT_POLICY, offsetof(struct ctl_args, prefer)},
};

/*
 * ctl_parse reads a command's arguments: positional ones and the options
 * the command accepts, "--opt value" or "--opt=value".
 */
static int
ctl_parse(const struct ctl_command *cmd, int argc, char **argv,
          struct ctl_args *args)
{
    memset(args, 0, sizeof(*args));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (args->nargs == CTL_MAX_ARGS || args->nargs == cmd->max_args) {
                ctl_error("%s: unexpected argument '%s'", cmd->name, a);
                return CTL_USAGE;
            }
            args->arg[args->nargs++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq != NULL ? (size_t)(eq - a) : strlen(a);
        const char *value = eq != NULL ? eq + 1 : NULL;
        const struct ctl_option *opt = NULL;
        for (size_t k = 0; k < sizeof(ctl_options) / sizeof(ctl_options[0]);
             k++) {
            const struct ctl_option *o = &ctl_options[k];
            if ((cmd->options & o->bit) && strlen(o->name) == len &&
                strncmp(a, o->name, len) == 0) {
                opt = o;
            }
        }
        if (opt == NULL) {
            ctl_error("%s: unknown option '%.*s'", cmd->name, (int)len, a);
            return CTL_USAGE;
        }
        if (value == NULL && i + 1 < argc) {
            value = argv[++i];
        }
        if (value == NULL || value[0] == '\0') {
            ctl_error("%s: %s needs a value", cmd->name, opt->name);
            return CTL_USAGE;
        }
        *(const char **)((char *)args + opt->offset) = value;
    }
    if (args->nargs < cmd->min_args) {
        ctl_error("usage: atbusctl %s %s", cmd->name, cmd->usage);
        return CTL_USAGE;
    }
    return CTL_OK;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        ctl_usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        ctl_usage(stdout);
        return CTL_OK;
    }
    const struct ctl_command *cmd = ctl_find(argv[1]);
    if (cmd == NULL) {
        ctl_error("unknown command '%s'", argv[1]);
        ctl_usage(stderr);
        return CTL_USAGE;
    }
    struct ctl_args args;
    int rc = ctl_parse(cmd, argc - 2, argv + 2, &args);
    if (rc != CTL_OK) {
        return rc;
    }
    return cmd->run(&args);
}
