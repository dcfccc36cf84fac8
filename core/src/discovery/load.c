/*
 * Loading a YAML file of records into the registry.
 *
 * The file is parsed whole first: malformed YAML loads nothing. Then each
 * record is decoded and checked on its own; one that breaks a rule,
 * repeats a name seen earlier in the file or is older than the stored
 * record is reported (with its line) and skipped, and the rest go into
 * the registry together. Every allocation for that happens before the
 * first record is stored, so out of memory also loads nothing.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "common/alloc.h"

/* One load: what was read and what was said about it. */
struct load {
    atbus_registry *reg;
    atbus_load_result *result;
    atbus_record *recs;           /* good records, in file order */
    const atb_disc_node **origin; /* where each came from */
    size_t nrecs;
    /* Names seen in the file: open addressing, index + 1, 0 empty. One
     * set for both tables, keyed by table and name. */
    size_t *seen;
    size_t nseen;
};

/* load_report hands one error to the callback and the result. */
static void
load_report(struct load *l, const atbus_record_error *err)
{
    if (l->result->first.code == 0) {
        l->result->first = *err;
    }
    atb_disc_registry_report(l->reg, err);
}

/* load_fail reports a problem with the file as a whole. */
static int
load_fail(struct load *l, atbus_record_error *err, int code)
{
    err->code = code;
    load_report(l, err);
    return code;
}

static uint64_t
load_name_hash(const atbus_record *rec)
{
    uint64_t seed = (uint64_t)atb_disc_table_of(rec);
    return XXH3_64bits_withSeed(rec->name, strlen(rec->name), seed);
}

/* load_seen finds an earlier good record of the same table and name, or
 * sets *slot to where this one's name goes. */
static size_t
load_seen(const struct load *l, const atbus_record *rec, size_t *slot)
{
    size_t mask = l->nseen - 1;
    size_t h = (size_t)load_name_hash(rec) & mask;
    while (l->seen[h] != 0) {
        const atbus_record *r = &l->recs[l->seen[h] - 1];
        if (atb_disc_table_of(r) == atb_disc_table_of(rec) &&
            strcmp(r->name, rec->name) == 0) {
            return l->seen[h];
        }
        h = (h + 1) & mask;
    }
    *slot = h;
    return 0;
}

/* load_name_of copies the record's name from the document for messages,
 * when decoding stopped before it. */
static void
load_name_of(const atb_disc_node *item, atbus_record_error *err)
{
    const atb_disc_item *it = atb_disc_doc_get(item, "name", NULL);
    if (it != NULL && atb_disc_doc_readable(it->value)) {
        atb_disc_error_name(err, it->value->text, it->value->len);
    }
}

/* load_check decodes and checks one record of table into
 * l->recs[l->nrecs]. On ATBUS_ERECORD, f says why, with the node to
 * report at. */
static int
load_check(struct load *l, const atb_disc_node *item,
           enum atbus_registry_table table, atb_disc_fault *f)
{
    atbus_record *rec = &l->recs[l->nrecs];
    int rc = atb_disc_decode(item, table, rec, f);
    if (rc == ATBUS_OK) {
        rc = atb_disc_check(rec, f);
    }
    if (rc == ATBUS_ERECORD && f->node == NULL) {
        f->node = atb_disc_path_resolve(item, &f->path);
    }
    return rc;
}

/* load_conflict reports a valid record that cannot be stored: its name
 * was already used in the file, or the registry holds a newer version.
 * Returns 1 when it was reported. */
static int
load_conflict(struct load *l, const atb_disc_node *item, const char *prefix,
              size_t *slot, atbus_record_error *err)
{
    const atbus_record *rec = &l->recs[l->nrecs];
    size_t earlier = load_seen(l, rec, slot);
    const atbus_record *stored = NULL;
    int stale = earlier == 0 &&
                atbus_registry_get(l->reg, atb_disc_table_of(rec), rec->name,
                                   &stored) == ATBUS_OK &&
                rec->version < stored->version;
    if (earlier == 0 && !stale) {
        return 0;
    }
    const char *field = stale ? "version" : "name";
    const atb_disc_item *at = atb_disc_doc_get(item, field, NULL);
    const atb_disc_node *node = at != NULL ? at->value : item;
    err->line = node->line;
    err->column = node->column;
    snprintf(err->path, sizeof(err->path), "%s.%s", prefix, field);
    if (stale) {
        atb_disc_error_set(err, ATBUS_EEXIST,
                           "version %lld is older than the stored version "
                           "%lld",
                           (long long)rec->version, (long long)stored->version);
    } else {
        atb_disc_error_set(err, ATBUS_ERECORD,
                           "the name is already used by the record at line "
                           "%zu",
                           l->origin[earlier - 1]->line);
    }
    return 1;
}

/* load_one decodes, checks and keeps one record of a list. Returns
 * ATBUS_OK (kept, or reported and skipped) or ATBUS_ENOMEM. */
static int
load_one(struct load *l, const atb_disc_node *item,
         enum atbus_registry_table table, size_t index)
{
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "%s[%zu]", atb_disc_table_name(table),
             index);
    atbus_record_error err;
    memset(&err, 0, sizeof(err));
    atbus_record *rec = &l->recs[l->nrecs];
    atb_disc_fault f;
    size_t slot = 0;
    int rc = load_check(l, item, table, &f);
    if (rc == ATBUS_ENOMEM) {
        return rc;
    }
    if (rc != ATBUS_OK) {
        atb_disc_error_from_fault(&err, &f, prefix);
        load_name_of(item, &err);
    } else if (!load_conflict(l, item, prefix, &slot, &err)) {
        l->origin[l->nrecs] = item;
        l->seen[slot] = ++l->nrecs;
        return ATBUS_OK;
    } else {
        atb_disc_error_name(&err, rec->name, strlen(rec->name));
    }
    atbus_record_fini(rec);
    load_report(l, &err);
    l->result->skipped++;
    return ATBUS_OK;
}

/* load_list finds a top-level list; absent is empty. Returns ATBUS_OK or
 * ATBUS_ERECORD (reported) when it is not a list. */
static int
load_list(struct load *l, const atb_disc_node *root, const char *name,
          const atb_disc_node **out)
{
    *out = NULL;
    const atb_disc_item *it = atb_disc_doc_get(root, name, NULL);
    if (it == NULL || it->value->kind == ATB_DISC_NULL) {
        return ATBUS_OK;
    }
    if (it->value->kind != ATB_DISC_SEQ) {
        atbus_record_error err;
        memset(&err, 0, sizeof(err));
        err.line = it->value->line;
        err.column = it->value->column;
        snprintf(err.path, sizeof(err.path), "%s", name);
        atb_disc_error_set(&err, ATBUS_ERECORD, "%s: must be a list", name);
        return load_fail(l, &err, ATBUS_ERECORD);
    }
    *out = it->value;
    return ATBUS_OK;
}

/* load_prepare sizes the arrays for up to n records. */
static int
load_prepare(struct load *l, size_t n)
{
    size_t nseen = 16;
    while (nseen < 2 * n) {
        nseen *= 2;
    }
    l->recs = atb_calloc(n != 0 ? n : 1, sizeof(*l->recs));
    l->origin = atb_calloc(n != 0 ? n : 1, sizeof(*l->origin));
    l->seen = atb_calloc(nseen, sizeof(*l->seen));
    l->nseen = nseen;
    return l->recs != NULL && l->origin != NULL && l->seen != NULL
               ? ATBUS_OK
               : ATBUS_ENOMEM;
}

static void
load_fini(struct load *l)
{
    for (size_t i = 0; i < l->nrecs; i++) {
        atbus_record_fini(&l->recs[i]);
    }
    atb_free(l->recs);
    atb_free(l->origin);
    atb_free(l->seen);
}

/* load_doc turns a parsed document into registry records. */
static int
load_doc(struct load *l, const atb_disc_node *root)
{
    if (root == NULL || root->kind == ATB_DISC_NULL) {
        return ATBUS_OK;
    }
    if (root->kind != ATB_DISC_MAP) {
        atbus_record_error err;
        memset(&err, 0, sizeof(err));
        err.line = root->line;
        err.column = root->column;
        atb_disc_error_set(&err, ATBUS_ERECORD,
                           "the top level must be a mapping with nodes:, "
                           "groups: and routes:");
        return load_fail(l, &err, ATBUS_ERECORD);
    }
    static const enum atbus_registry_table tables[] = {
        ATBUS_REGISTRY_NODES,
        ATBUS_REGISTRY_GROUPS,
        ATBUS_REGISTRY_ROUTES,
    };
    enum { NLISTS = sizeof(tables) / sizeof(tables[0]) };
    const atb_disc_node *lists[NLISTS];
    size_t total = 0;
    int rc = ATBUS_OK;
    for (size_t t = 0; t < NLISTS && rc == ATBUS_OK; t++) {
        rc = load_list(l, root, atb_disc_table_name(tables[t]), &lists[t]);
        total += rc == ATBUS_OK && lists[t] != NULL ? lists[t]->count : 0;
    }
    if (rc != ATBUS_OK) {
        return rc;
    }
    rc = load_prepare(l, total);
    for (size_t t = 0; t < NLISTS && rc == ATBUS_OK; t++) {
        size_t i = 0;
        for (const atb_disc_item *it = lists[t] != NULL ? lists[t]->first
                                                        : NULL;
             it != NULL && rc == ATBUS_OK; it = it->next) {
            rc = load_one(l, it->value, tables[t], i++);
        }
    }
    if (rc == ATBUS_OK) {
        rc = atb_disc_registry_put_batch(l->reg, l->recs, l->nrecs);
    }
    if (rc == ATBUS_OK) {
        l->result->loaded = l->nrecs;
        rc = l->result->first.code;
    }
    return rc;
}

/* load_text parses text and loads it; the registry is already busy. */
static int
load_text(struct load *l, const char *text, size_t len)
{
    atbus_record_error err;
    memset(&err, 0, sizeof(err));
    if (len > ATBUS_RECORD_YAML_MAX) {
        atb_disc_error_set(&err, ATBUS_EPARSE, "larger than %zu bytes",
                           ATBUS_RECORD_YAML_MAX);
        return load_fail(l, &err, ATBUS_EPARSE);
    }
    atb_disc_doc doc;
    atb_disc_doc_init(&doc);
    int rc = atb_disc_doc_from_yaml(&doc, text, len, &err);
    if (rc == ATBUS_EPARSE) {
        load_fail(l, &err, rc);
    } else if (rc == ATBUS_OK) {
        rc = load_doc(l, doc.root);
    }
    load_fini(l);
    atb_disc_doc_fini(&doc);
    return rc;
}

/* load_start checks the arguments and marks the registry busy. */
static int
load_start(struct load *l, atbus_registry *reg, atbus_load_result *result,
           atbus_load_result *scratch)
{
    memset(l, 0, sizeof(*l));
    l->reg = reg;
    l->result = result != NULL ? result : scratch;
    memset(l->result, 0, sizeof(*l->result));
    return atb_disc_registry_enter(reg);
}

/* load_finish undoes a load's partial counts when nothing was stored. */
static int
load_finish(struct load *l, int rc)
{
    if (rc == ATBUS_ENOMEM) {
        l->result->loaded = 0;
        atb_disc_error_set(&l->result->first, ATBUS_ENOMEM, "out of memory");
    }
    atb_disc_registry_leave(l->reg);
    return rc;
}

int
atbus_registry_load_yaml_string(atbus_registry *reg, const char *text,
                                size_t len, atbus_load_result *result)
{
    struct load l;
    atbus_load_result scratch;
    if (text == NULL || load_start(&l, reg, result, &scratch) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    return load_finish(&l, load_text(&l, text, len));
}

/* load_read reads a whole file, refusing one above the cap before
 * reading it. */
static int
load_read(struct load *l, const char *path, char **text, size_t *len)
{
    atbus_record_error err;
    memset(&err, 0, sizeof(err));
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int missing = errno == ENOENT;
        atb_disc_error_set(&err, missing ? ATBUS_ENOTFOUND : ATBUS_ESYSTEM,
                           "cannot open %s: %s", path, strerror(errno));
        return load_fail(l, &err, err.code);
    }
    char *buf = NULL;
    size_t n = 0;
    int rc = ATBUS_OK;
    for (;;) {
        /* Read in steps, so a file that grows or lies about its size
         * still stops at the cap. */
        if (n > ATBUS_RECORD_YAML_MAX) {
            atb_disc_error_set(&err, ATBUS_EPARSE, "larger than %zu bytes",
                               ATBUS_RECORD_YAML_MAX);
            rc = load_fail(l, &err, ATBUS_EPARSE);
            break;
        }
        size_t room = 65536;
        char *grown = atb_realloc(buf, n + room);
        if (grown == NULL) {
            rc = ATBUS_ENOMEM;
            break;
        }
        buf = grown;
        size_t got = fread(buf + n, 1, room, f);
        n += got;
        if (got < room) {
            if (ferror(f)) {
                atb_disc_error_set(&err, ATBUS_ESYSTEM, "cannot read %s", path);
                rc = load_fail(l, &err, ATBUS_ESYSTEM);
            }
            break;
        }
    }
    fclose(f);
    if (rc != ATBUS_OK) {
        atb_free(buf);
        return rc;
    }
    *text = buf;
    *len = n;
    return ATBUS_OK;
}

int
atbus_registry_load_yaml(atbus_registry *reg, const char *path,
                         atbus_load_result *result)
{
    struct load l;
    atbus_load_result scratch;
    if (path == NULL || load_start(&l, reg, result, &scratch) != ATBUS_OK) {
        return ATBUS_EINVAL;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = load_read(&l, path, &text, &len);
    if (rc == ATBUS_OK) {
        rc = load_text(&l, text, len);
        atb_free(text);
    }
    return load_finish(&l, rc);
}
