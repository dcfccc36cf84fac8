/*
 * atbusctl: inspect discovery records from the command line.
 *
 *   atbusctl validate <file.yaml>
 *   atbusctl list nodes|groups --file <file.yaml>
 *
 * Commands are rows of one table, and records come from a source
 * (struct ctl_source) that the command line names, so a new command (a
 * row) or a new kind of source (an option, a field and a branch in
 * ctl_open_source) does not touch the others. Only the public
 * API is used, as any application would.
 *
 * Exit status: 0 success, 1 the records have errors or could not be read,
 * 2 the command line is wrong.
 */
#include <atbus/atbus.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    CTL_OK = 0,
    CTL_FAILED = 1,
    CTL_USAGE = 2,
};

/* Options a command may accept, as bits. */
enum {
    CTL_OPT_FILE = 1u << 0, /* --file <path>: records from a YAML file */
};

#define CTL_MAX_ARGS 4

/* The parsed command line. */
struct ctl_args {
    const char *arg[CTL_MAX_ARGS];
    size_t nargs;
    const char *file;
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

/* Where records come from; today a YAML file. */
struct ctl_source {
    const char *file;
};

/* Error printing for loads: one line per problem, compiler style. */
struct ctl_report {
    const char *file;
    size_t errors;
};

static void
ctl_on_load_error(atbus_registry *reg, const atbus_record_error *err, void *arg)
{
    (void)reg;
    struct ctl_report *r = arg;
    r->errors++;
    if (err->line != 0) {
        fprintf(stderr, "%s:%zu:%zu: ", r->file, err->line, err->column);
    } else {
        fprintf(stderr, "%s: ", r->file);
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

/*
 * ctl_open_source fills a new registry from src and reports problems on
 * stderr. Returns CTL_OK, or CTL_FAILED when something was reported; what
 * did load is in *out either way (NULL only when the registry could not
 * be made), and the caller frees it.
 */
static int
ctl_open_source(const struct ctl_source *src, atbus_registry **out,
                atbus_load_result *res)
{
    const char *file = src->file;
    *out = NULL;
    int rc = atbus_registry_new(out);
    if (rc != ATBUS_OK) {
        ctl_error("%s", atbus_strerror(rc));
        return CTL_FAILED;
    }
    struct ctl_report report = {file, 0};
    atbus_registry_callbacks cbs = {.on_load_error = ctl_on_load_error};
    atbus_registry_set_callbacks(*out, &cbs, &report);
    rc = atbus_registry_load_yaml(*out, file, res);
    atbus_registry_set_callbacks(*out, NULL, NULL);
    if (rc == ATBUS_ENOMEM) {
        ctl_error("%s: %s", file, atbus_strerror(rc));
    }
    return rc == ATBUS_OK ? CTL_OK : CTL_FAILED;
}

/* ---- validate ---- */

static int
ctl_validate(const struct ctl_args *args)
{
    const char *file = args->arg[0];
    struct ctl_source src = {file};
    atbus_registry *reg = NULL;
    atbus_load_result res;
    int status = ctl_open_source(&src, &reg, &res);
    if (status == CTL_OK) {
        printf("%s: %zu nodes, %zu groups, no errors\n", file,
               atbus_registry_count(reg, ATBUS_REGISTRY_NODES),
               atbus_registry_count(reg, ATBUS_REGISTRY_GROUPS));
    } else if (res.first.code != ATBUS_EPARSE &&
               res.first.code != ATBUS_ENOTFOUND &&
               res.first.code != ATBUS_ESYSTEM) {
        fprintf(stderr, "%s: %zu records valid, %zu refused\n", file,
                res.loaded, res.skipped);
    }
    atbus_registry_free(reg);
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

/* ctl_row fills one table row for a record. */
static void
ctl_row(char **cells, const atbus_record *rec, int groups)
{
    char version[32];
    snprintf(version, sizeof(version), "%lld", (long long)rec->version);
    cells[0] = ctl_text(rec->name);
    if (groups) {
        cells[1] = ctl_text(version);
        cells[2] = ctl_list_text(&rec->node_list);
        return;
    }
    cells[1] = ctl_text(atbus_record_type_name(rec->type));
    cells[2] = ctl_text(rec->metadata.namespace_name);
    cells[3] = ctl_text(rec->metadata.kind);
    cells[4] = ctl_map_text(&rec->metadata.labels);
    cells[5] = ctl_gateways_text(&rec->gateways);
}

static int
ctl_list(const struct ctl_args *args)
{
    static const char *const node_cols[] = {"NAME", "TYPE",   "NAMESPACE",
                                            "KIND", "LABELS", "GATEWAYS"};
    static const char *const group_cols[] = {"NAME", "VERSION", "NODES"};
    int groups;
    if (strcmp(args->arg[0], "nodes") == 0) {
        groups = 0;
    } else if (strcmp(args->arg[0], "groups") == 0) {
        groups = 1;
    } else {
        ctl_error("list what: nodes or groups, not '%s'", args->arg[0]);
        return CTL_USAGE;
    }
    if (args->file == NULL) {
        ctl_error("list needs a source: --file <file.yaml>");
        return CTL_USAGE;
    }
    struct ctl_source src = {args->file};
    atbus_registry *reg = NULL;
    atbus_load_result res;
    int status = ctl_open_source(&src, &reg, &res);
    if (reg == NULL) {
        return status;
    }
    enum atbus_registry_table table =
        groups ? ATBUS_REGISTRY_GROUPS : ATBUS_REGISTRY_NODES;
    size_t n = atbus_registry_count(reg, table);
    struct ctl_collect col = {calloc(n + 1, sizeof(*col.recs)), 0};
    struct ctl_table t = {groups ? 3 : 6, n + 1, NULL};
    t.cells = calloc(t.nrows * t.ncols, sizeof(*t.cells));
    if (col.recs == NULL || t.cells == NULL) {
        ctl_error("out of memory");
        free(col.recs);
        free(t.cells);
        atbus_registry_free(reg);
        return CTL_FAILED;
    }
    atbus_registry_foreach(reg, table, ctl_collect_one, &col);
    qsort(col.recs, col.count, sizeof(*col.recs), ctl_by_name);
    const char *const *head = groups ? group_cols : node_cols;
    for (size_t c = 0; c < t.ncols; c++) {
        t.cells[c] = ctl_text(head[c]);
    }
    for (size_t i = 0; i < col.count; i++) {
        ctl_row(&t.cells[(i + 1) * t.ncols], col.recs[i], groups);
    }
    ctl_table_print(&t);
    ctl_table_free(&t);
    free(col.recs);
    atbus_registry_free(reg);
    return status;
}

/* ---- command line ---- */

static const struct ctl_command ctl_commands[] = {
    {"validate", "<file.yaml>",
     "check a records file; print every error with its line and field "
     "path",
     1, 1, 0, ctl_validate},
    {"list", "nodes|groups --file <file.yaml>",
     "show the node or group records as a table", 1, 1, CTL_OPT_FILE, ctl_list},
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
    fprintf(out, "\nexit status: 0 ok, 1 errors in the records, 2 usage\n");
}

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
        if ((cmd->options & CTL_OPT_FILE) && len == 6 &&
            strncmp(a, "--file", 6) == 0) {
            if (value == NULL && i + 1 < argc) {
                value = argv[++i];
            }
            if (value == NULL || value[0] == '\0') {
                ctl_error("%s: --file needs a path", cmd->name);
                return CTL_USAGE;
            }
            args->file = value;
            continue;
        }
        ctl_error("%s: unknown option '%.*s'", cmd->name, (int)len, a);
        return CTL_USAGE;
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
