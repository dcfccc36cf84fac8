/*
 * The document tree (doc.h): an arena of nodes, lookups the decoder and
 * the path resolver share, and the conversion from jansson's tree.
 */
#include "discovery/doc.h"

#include <atbus/error.h>

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "discovery/disc.h"

/* Arena chunks are this big unless one allocation needs more. */
#define DOC_CHUNK 4096

struct atb_disc_chunk {
    atb_disc_chunk *next;
    size_t used;
    size_t size;
    /* max_align_t keeps the data aligned for every node type. */
    max_align_t data[];
};

void
atb_disc_doc_init(atb_disc_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
}

void
atb_disc_doc_fini(atb_disc_doc *doc)
{
    atb_disc_chunk *c = doc->chunks;
    while (c != NULL) {
        atb_disc_chunk *next = c->next;
        atb_free(c);
        c = next;
    }
    if (doc->json != NULL) {
        json_decref(doc->json);
    }
    memset(doc, 0, sizeof(*doc));
}

void *
atb_disc_doc_alloc(atb_disc_doc *doc, size_t n)
{
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX / 2) {
        return NULL;
    }
    n = (n + align - 1) / align * align;
    atb_disc_chunk *c = doc->chunks;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > DOC_CHUNK ? n : DOC_CHUNK;
        c = atb_malloc(sizeof(*c) + size);
        if (c == NULL) {
            return NULL;
        }
        c->size = size;
        c->used = 0;
        /* A chunk made for one big block goes behind the current one, so
         * the current one keeps filling. */
        if (doc->chunks != NULL && size > DOC_CHUNK) {
            c->next = doc->chunks->next;
            doc->chunks->next = c;
        } else {
            c->next = doc->chunks;
            doc->chunks = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

atb_disc_node *
atb_disc_doc_node_new(atb_disc_doc *doc, enum atb_disc_kind kind, size_t line,
                      size_t column)
{
    atb_disc_node *n = atb_disc_doc_alloc(doc, sizeof(*n));
    if (n != NULL) {
        n->kind = kind;
        n->line = line;
        n->column = column;
    }
    return n;
}

int
atb_disc_doc_append(atb_disc_doc *doc, atb_disc_node *parent,
                    atb_disc_node *key, atb_disc_node *value)
{
    atb_disc_item *it = atb_disc_doc_alloc(doc, sizeof(*it));
    if (it == NULL) {
        return ATBUS_ENOMEM;
    }
    it->key = key;
    it->value = value;
    if (parent->last != NULL) {
        parent->last->next = it;
    } else {
        parent->first = it;
    }
    parent->last = it;
    parent->count++;
    return ATBUS_OK;
}

int
atb_disc_doc_readable(const atb_disc_node *n)
{
    if (n == NULL || n->text == NULL) {
        return 0;
    }
    return n->kind == ATB_DISC_STRING ||
           (n->plain && n->kind != ATB_DISC_NULL && n->kind != ATB_DISC_SEQ &&
            n->kind != ATB_DISC_MAP);
}

int
atb_disc_doc_text_is(const atb_disc_node *n, const char *s)
{
    size_t len = strlen(s);
    return atb_disc_doc_readable(n) && n->len == len &&
           memcmp(n->text, s, len) == 0;
}

const atb_disc_item *
atb_disc_doc_get(const atb_disc_node *map, const char *key,
                 const atb_disc_item **dup)
{
    const atb_disc_item *found = NULL;
    if (dup != NULL) {
        *dup = NULL;
    }
    if (map == NULL || map->kind != ATB_DISC_MAP) {
        return NULL;
    }
    for (const atb_disc_item *it = map->first; it != NULL; it = it->next) {
        if (!atb_disc_doc_text_is(it->key, key)) {
            continue;
        }
        if (found == NULL) {
            found = it;
            if (dup == NULL) {
                break;
            }
        } else {
            *dup = it;
            break;
        }
    }
    return found;
}

const atb_disc_item *
atb_disc_doc_at(const atb_disc_node *n, size_t i)
{
    if (n == NULL || (n->kind != ATB_DISC_SEQ && n->kind != ATB_DISC_MAP)) {
        return NULL;
    }
    const atb_disc_item *it = n->first;
    while (it != NULL && i > 0) {
        it = it->next;
        i--;
    }
    return it;
}

/* ---- JSON ---- */

/* doc_json_node converts one jansson value; the strings stay in jansson's
 * tree, which the document keeps alive. */
static int
doc_json_node(atb_disc_doc *doc, json_t *j, size_t depth, atb_disc_node **out,
              atbus_record_error *err)
{
    if (depth > ATB_DISC_DOC_DEPTH) {
        return atb_disc_error_set(err, ATBUS_EPARSE,
                                  "nested deeper than %d levels",
                                  ATB_DISC_DOC_DEPTH);
    }
    enum atb_disc_kind kind;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        kind = ATB_DISC_MAP;
        break;
    case JSON_ARRAY:
        kind = ATB_DISC_SEQ;
        break;
    case JSON_STRING:
        kind = ATB_DISC_STRING;
        break;
    case JSON_INTEGER:
        kind = ATB_DISC_INT;
        break;
    case JSON_NULL:
        kind = ATB_DISC_NULL;
        break;
    default:
        kind = ATB_DISC_OTHER;
        break;
    }
    atb_disc_node *n = atb_disc_doc_node_new(doc, kind, 0, 0);
    if (n == NULL) {
        return ATBUS_ENOMEM;
    }
    *out = n;
    if (kind == ATB_DISC_STRING) {
        n->text = json_string_value(j);
        n->len = json_string_length(j);
    } else if (kind == ATB_DISC_INT) {
        n->ival = (int64_t)json_integer_value(j);
    } else if (kind == ATB_DISC_SEQ) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            atb_disc_node *child = NULL;
            int rc = doc_json_node(doc, v, depth + 1, &child, err);
            if (rc == ATBUS_OK) {
                rc = atb_disc_doc_append(doc, n, NULL, child);
            }
            if (rc != ATBUS_OK) {
                return rc;
            }
        }
    } else if (kind == ATB_DISC_MAP) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            atb_disc_node *key =
                atb_disc_doc_node_new(doc, ATB_DISC_STRING, 0, 0);
            atb_disc_node *child = NULL;
            if (key == NULL) {
                return ATBUS_ENOMEM;
            }
            key->text = k;
            key->len = strlen(k);
            int rc = doc_json_node(doc, v, depth + 1, &child, err);
            if (rc == ATBUS_OK) {
                rc = atb_disc_doc_append(doc, n, key, child);
            }
            if (rc != ATBUS_OK) {
                return rc;
            }
        }
    }
    return ATBUS_OK;
}

int
atb_disc_doc_from_json(atb_disc_doc *doc, const char *text, size_t len,
                       atbus_record_error *err)
{
    json_error_t jerr;
    /* Duplicate keys are refused: which one a reader took would depend on
     * the reader. */
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            return ATBUS_ENOMEM;
        }
        if (err != NULL) {
            err->line = jerr.line > 0 ? (size_t)jerr.line : 0;
            err->column = jerr.column > 0 ? (size_t)jerr.column : 0;
        }
        return atb_disc_error_set(err, ATBUS_EPARSE, "%s", jerr.text);
    }
    doc->json = j;
    return doc_json_node(doc, j, 0, &doc->root, err);
}
