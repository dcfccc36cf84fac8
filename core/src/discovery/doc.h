/*
 * A small document tree that both JSON (through jansson) and YAML
 * (through libyaml) are read into, so one decoder turns either into
 * records and reports the same field paths. YAML nodes keep their line
 * and column for error messages; JSON nodes do not have them.
 *
 * Every node, item and YAML scalar text lives in the document's arena and
 * goes in one atb_disc_doc_fini. A YAML alias makes two parents share one
 * node; anchors are registered only once their node is complete, so the
 * tree never has a cycle.
 */
#ifndef ATB_DISCOVERY_DOC_H
#define ATB_DISCOVERY_DOC_H

#include <atbus/discovery.h>

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting accepted in either syntax; records need about six. */
#define ATB_DISC_DOC_DEPTH 64

enum atb_disc_kind {
    ATB_DISC_NULL = 1, /* null, ~, or an empty YAML value */
    ATB_DISC_STRING,   /* a JSON string or a YAML string scalar */
    ATB_DISC_INT,      /* an integer that fits in int64 */
    ATB_DISC_OTHER,    /* true, false, a real number */
    ATB_DISC_SEQ,
    ATB_DISC_MAP,
};

typedef struct atb_disc_node atb_disc_node;

/* One entry of a sequence (key NULL) or mapping. */
typedef struct atb_disc_item {
    atb_disc_node *key;
    atb_disc_node *value;
    struct atb_disc_item *next;
} atb_disc_item;

struct atb_disc_node {
    enum atb_disc_kind kind;
    /* A YAML plain scalar: whatever it resolved to, its text also reads
     * as a string (a label value written `zone: 01` is "01"). */
    int plain;
    /* Scalars: the text (not NUL-terminated for YAML; JSON strings are).
     * NULL for JSON numbers and literals. */
    const char *text;
    size_t len;
    int64_t ival;  /* ATB_DISC_INT */
    size_t line;   /* 1-based; 0 when the syntax has no positions */
    size_t column; /* 1-based */
    atb_disc_item *first;
    atb_disc_item *last;
    size_t count;
};

typedef struct atb_disc_chunk atb_disc_chunk;

typedef struct atb_disc_doc {
    atb_disc_chunk *chunks;
    atb_disc_node *root; /* NULL for an empty YAML stream */
    void *json;          /* the jansson tree JSON strings point into */
} atb_disc_doc;

/* atb_disc_doc_init makes an empty document. */
void atb_disc_doc_init(atb_disc_doc *doc);

/* atb_disc_doc_fini releases everything the document holds. */
void atb_disc_doc_fini(atb_disc_doc *doc);

/* atb_disc_doc_alloc returns n zeroed bytes from the arena, or NULL. */
void *atb_disc_doc_alloc(atb_disc_doc *doc, size_t n);

/* atb_disc_doc_node_new returns a new empty node of kind, or NULL. */
atb_disc_node *atb_disc_doc_node_new(atb_disc_doc *doc, enum atb_disc_kind kind,
                                     size_t line, size_t column);

/* atb_disc_doc_append adds (key, value) to a mapping, or value (key NULL)
 * to a sequence. Returns ATBUS_OK or ATBUS_ENOMEM. */
int atb_disc_doc_append(atb_disc_doc *doc, atb_disc_node *parent,
                        atb_disc_node *key, atb_disc_node *value);

/* atb_disc_doc_readable returns 1 when n's text reads as a string: a
 * string scalar or any YAML plain scalar that is not null. */
int atb_disc_doc_readable(const atb_disc_node *n);

/* atb_disc_doc_text_is returns 1 when n reads as a string equal to s. */
int atb_disc_doc_text_is(const atb_disc_node *n, const char *s);

/*
 * atb_disc_doc_get finds key in a mapping: returns the first matching item
 * (NULL if none, or map is not a mapping) and sets *dup (if not NULL) to a
 * second item with the same key, or NULL.
 */
const atb_disc_item *atb_disc_doc_get(const atb_disc_node *map, const char *key,
                                      const atb_disc_item **dup);

/* atb_disc_doc_at returns item i of a sequence or mapping, or NULL. */
const atb_disc_item *atb_disc_doc_at(const atb_disc_node *n, size_t i);

/*
 * atb_disc_doc_from_json parses len bytes of JSON into doc. Returns
 * ATBUS_OK, ATBUS_EPARSE (err: line, column, reason), or ATBUS_ENOMEM.
 */
int atb_disc_doc_from_json(atb_disc_doc *doc, const char *text, size_t len,
                           atbus_record_error *err);

/*
 * atb_disc_doc_from_yaml parses len bytes holding at most one YAML
 * document into doc. Returns ATBUS_OK, ATBUS_EPARSE (err: line, column,
 * reason) or ATBUS_ENOMEM.
 */
int atb_disc_doc_from_yaml(atb_disc_doc *doc, const char *text, size_t len,
                           atbus_record_error *err);

#endif /* ATB_DISCOVERY_DOC_H */
