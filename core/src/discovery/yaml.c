/*
 * YAML text -> document tree, from libyaml's event stream. Block and flow
 * style both arrive as the same events. Plain scalars are resolved as the
 * YAML 1.2 core schema does (null, true/false, decimal integers, else a
 * string) but keep their text, since a label value written `zone: 01`
 * means the string "01"; quoted scalars and `!!str` are always strings.
 *
 * Anchors and aliases are supported by sharing nodes. An anchor becomes
 * usable only when its node ends, so an alias can never point into its
 * own ancestor and the tree stays acyclic; the decoder reads only known
 * fields under caps, so sharing cannot blow up the work either. Only one
 * document per stream is accepted.
 */
#include "discovery/doc.h"

#include <atbus/error.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <yaml.h>

#include "discovery/disc.h"

/* Anchors one document may define; more is refused, not slow. */
#define YAML_ANCHORS_MAX 4096

struct yaml_anchor {
    const char *name;
    atb_disc_node *node;
    struct yaml_anchor *next;
};

/* An open sequence or mapping, and for a mapping its key waiting for a
 * value. */
struct yaml_open {
    atb_disc_node *node;
    atb_disc_node *key;
    const char *anchor; /* registered when the node ends */
};

struct yaml_build {
    atb_disc_doc *doc;
    atbus_record_error *err;
    struct yaml_open stack[ATB_DISC_DOC_DEPTH];
    size_t depth;
    struct yaml_anchor *anchors;
    size_t nanchors;
    int documents;
};

static int
yaml_fail(struct yaml_build *b, const yaml_mark_t *mark, const char *reason)
{
    if (b->err != NULL) {
        b->err->line = mark->line + 1;
        b->err->column = mark->column + 1;
    }
    return atb_disc_error_set(b->err, ATBUS_EPARSE, "%s", reason);
}

static char *
yaml_copy(struct yaml_build *b, const char *s, size_t n)
{
    char *p = atb_disc_doc_alloc(b->doc, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

/* yaml_add_anchor remembers a finished node under its anchor name; a
 * later anchor of the same name shadows an earlier one, as YAML says. */
static int
yaml_add_anchor(struct yaml_build *b, const char *name, atb_disc_node *node,
                const yaml_mark_t *mark)
{
    if (b->nanchors >= YAML_ANCHORS_MAX) {
        return yaml_fail(b, mark, "too many anchors");
    }
    struct yaml_anchor *a = atb_disc_doc_alloc(b->doc, sizeof(*a));
    if (a == NULL) {
        return ATBUS_ENOMEM;
    }
    a->name = name;
    a->node = node;
    a->next = b->anchors;
    b->anchors = a;
    b->nanchors++;
    return ATBUS_OK;
}

static atb_disc_node *
yaml_find_anchor(const struct yaml_build *b, const char *name)
{
    for (const struct yaml_anchor *a = b->anchors; a != NULL; a = a->next) {
        if (strcmp(a->name, name) == 0) {
            return a->node;
        }
    }
    return NULL;
}

/* yaml_attach places a finished node: as the root, as a mapping's key,
 * as a mapping's value, or as a sequence item. */
static int
yaml_attach(struct yaml_build *b, atb_disc_node *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        return ATBUS_OK;
    }
    struct yaml_open *top = &b->stack[b->depth - 1];
    if (top->node->kind == ATB_DISC_SEQ) {
        return atb_disc_doc_append(b->doc, top->node, NULL, n);
    }
    if (top->key == NULL) {
        top->key = n;
        return ATBUS_OK;
    }
    int rc = atb_disc_doc_append(b->doc, top->node, top->key, n);
    top->key = NULL;
    return rc;
}

/* yaml_plain_kind resolves an untagged plain scalar. */
static enum atb_disc_kind
yaml_plain_kind(const char *s, size_t n, int64_t *ival)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const bools[] = {"true",  "True",  "TRUE",
                                        "false", "False", "FALSE"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strlen(nulls[i]) == n && memcmp(nulls[i], s, n) == 0) {
            return ATB_DISC_NULL;
        }
    }
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        if (strlen(bools[i]) == n && memcmp(bools[i], s, n) == 0) {
            return ATB_DISC_OTHER;
        }
    }
    size_t i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    if (i == n) {
        return ATB_DISC_STRING;
    }
    int neg = s[0] == '-';
    /* Accumulate negatively so INT64_MIN fits. */
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return ATB_DISC_STRING;
        }
        int digit = s[i] - '0';
        if (v < (INT64_MIN + digit) / 10) {
            return ATB_DISC_STRING;
        }
        v = v * 10 - digit;
    }
    if (!neg && v == INT64_MIN) {
        return ATB_DISC_STRING;
    }
    *ival = neg ? v : -v;
    return ATB_DISC_INT;
}

static int
yaml_scalar(struct yaml_build *b, const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    atb_disc_node *node =
        atb_disc_doc_node_new(b->doc, ATB_DISC_STRING, ev->start_mark.line + 1,
                              ev->start_mark.column + 1);
    char *text = node != NULL ? yaml_copy(b, value, n) : NULL;
    if (text == NULL) {
        return ATBUS_ENOMEM;
    }
    node->text = text;
    node->len = n;
    int is_str = tag != NULL && strcmp(tag, YAML_STR_TAG) == 0;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !is_str) {
        node->plain = 1;
        node->kind = yaml_plain_kind(value, n, &node->ival);
    }
    if (ev->data.scalar.anchor != NULL) {
        const char *a = (const char *)ev->data.scalar.anchor;
        char *name = yaml_copy(b, a, strlen(a));
        if (name == NULL) {
            return ATBUS_ENOMEM;
        }
        int rc = yaml_add_anchor(b, name, node, &ev->start_mark);
        if (rc != ATBUS_OK) {
            return rc;
        }
    }
    return yaml_attach(b, node);
}

static int
yaml_open_node(struct yaml_build *b, const yaml_event_t *ev,
               enum atb_disc_kind kind, const yaml_char_t *anchor)
{
    if (b->depth >= ATB_DISC_DOC_DEPTH) {
        return yaml_fail(b, &ev->start_mark, "nested too deeply");
    }
    atb_disc_node *node = atb_disc_doc_node_new(
        b->doc, kind, ev->start_mark.line + 1, ev->start_mark.column + 1);
    if (node == NULL) {
        return ATBUS_ENOMEM;
    }
    struct yaml_open *o = &b->stack[b->depth++];
    o->node = node;
    o->key = NULL;
    o->anchor = NULL;
    if (anchor != NULL) {
        const char *a = (const char *)anchor;
        char *name = yaml_copy(b, a, strlen(a));
        if (name == NULL) {
            return ATBUS_ENOMEM;
        }
        o->anchor = name;
    }
    return ATBUS_OK;
}

static int
yaml_close_node(struct yaml_build *b, const yaml_event_t *ev)
{
    struct yaml_open o = b->stack[--b->depth];
    if (o.anchor != NULL) {
        int rc = yaml_add_anchor(b, o.anchor, o.node, &ev->start_mark);
        if (rc != ATBUS_OK) {
            return rc;
        }
    }
    return yaml_attach(b, o.node);
}

static int
yaml_alias(struct yaml_build *b, const yaml_event_t *ev)
{
    atb_disc_node *n = yaml_find_anchor(b, (const char *)ev->data.alias.anchor);
    if (n == NULL) {
        return yaml_fail(b, &ev->start_mark,
                         "alias to an unknown (or not yet complete) anchor");
    }
    return yaml_attach(b, n);
}

/* yaml_event applies one event. Returns ATBUS_OK, 1 at the end of the
 * stream, or an error. */
static int
yaml_event(struct yaml_build *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (b->documents++ > 0) {
            return yaml_fail(b, &ev->start_mark,
                             "only one YAML document is allowed");
        }
        return ATBUS_OK;
    case YAML_SCALAR_EVENT:
        return yaml_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return yaml_open_node(b, ev, ATB_DISC_SEQ,
                              ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return yaml_open_node(b, ev, ATB_DISC_MAP,
                              ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return yaml_close_node(b, ev);
    case YAML_ALIAS_EVENT:
        return yaml_alias(b, ev);
    default:
        return ATBUS_OK;
    }
}

int
atb_disc_doc_from_yaml(atb_disc_doc *doc, const char *text, size_t len,
                       atbus_record_error *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return ATBUS_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    struct yaml_build b;
    memset(&b, 0, sizeof(b));
    b.doc = doc;
    b.err = err;
    int rc = ATBUS_OK;
    while (rc == ATBUS_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = ATBUS_ENOMEM;
            } else {
                const char *problem =
                    parser.problem != NULL ? parser.problem : "malformed YAML";
                rc = yaml_fail(&b, &parser.problem_mark, problem);
                if (parser.context != NULL && err != NULL) {
                    atb_disc_error_set(err, ATBUS_EPARSE, "%s %s",
                                       parser.context, problem);
                }
            }
            break;
        }
        rc = yaml_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc == 1 ? ATBUS_OK : rc;
}
