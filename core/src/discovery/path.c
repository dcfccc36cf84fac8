/*
 * Field paths and error detail: building a path while walking a record or
 * a document, printing it for people, and following it back to the
 * document node (and so the YAML line) it names.
 */
#include "discovery/disc.h"

#include <atbus/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Path steps past the fixed depth are dropped rather than overflowing;
 * records never get that deep, so this only shortens a printed path. */
static atb_disc_step *
path_push(atb_disc_path *p)
{
    if (p->depth >= ATB_DISC_PATH_DEPTH) {
        p->depth++;
        return NULL;
    }
    atb_disc_step *s = &p->steps[p->depth++];
    memset(s, 0, sizeof(*s));
    return s;
}

void
atb_disc_path_field(atb_disc_path *p, const char *field)
{
    atb_disc_step *s = path_push(p);
    if (s != NULL) {
        s->field = field;
    }
}

void
atb_disc_path_index(atb_disc_path *p, size_t index)
{
    atb_disc_step *s = path_push(p);
    if (s != NULL) {
        s->index = index;
    }
}

void
atb_disc_path_key(atb_disc_path *p, size_t index, const char *key,
                  size_t key_len)
{
    atb_disc_step *s = path_push(p);
    if (s != NULL) {
        s->index = index;
        s->key = key != NULL ? key : "";
        s->key_len = key != NULL ? key_len : 0;
    }
}

void
atb_disc_path_pop(atb_disc_path *p)
{
    if (p->depth > 0) {
        p->depth--;
    }
}

/* Appending to a bounded buffer: out.len may run past size, which only
 * means the text was cut. */
struct path_out {
    char *buf;
    size_t size;
    size_t len;
};

static void
path_put(struct path_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o->len + 1 < o->size) {
            o->buf[o->len] = s[i];
        }
        o->len++;
    }
    if (o->size > 0) {
        o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
    }
}

/* Keys are shown quoted, with anything unprintable escaped, and cut at 64
 * bytes: a hostile key must not take over the message. */
static void
path_put_key(struct path_out *o, const char *key, size_t n)
{
    path_put(o, "[\"", 2);
    size_t shown = n < 64 ? n : 64;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)key[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            path_put(o, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            int k = snprintf(esc, sizeof(esc), "\\x%02x", c);
            path_put(o, esc, (size_t)k);
        } else {
            path_put(o, (const char *)&key[i], 1);
        }
    }
    if (shown < n) {
        path_put(o, "...", 3);
    }
    path_put(o, "\"]", 2);
}

void
atb_disc_path_format(const atb_disc_path *p, const char *prefix, char *buf,
                     size_t size)
{
    struct path_out o = {.buf = buf, .size = size, .len = 0};
    if (size > 0) {
        buf[0] = '\0';
    }
    if (prefix != NULL) {
        path_put(&o, prefix, strlen(prefix));
    }
    size_t depth =
        p->depth < ATB_DISC_PATH_DEPTH ? p->depth : ATB_DISC_PATH_DEPTH;
    for (size_t i = 0; i < depth; i++) {
        const atb_disc_step *s = &p->steps[i];
        if (s->field != NULL) {
            if (o.len > 0) {
                path_put(&o, ".", 1);
            }
            path_put(&o, s->field, strlen(s->field));
        } else if (s->key != NULL) {
            path_put_key(&o, s->key, s->key_len);
        } else {
            char idx[24];
            int k = snprintf(idx, sizeof(idx), "[%zu]", s->index);
            path_put(&o, idx, (size_t)k);
        }
    }
}

const atb_disc_node *
atb_disc_path_resolve(const atb_disc_node *node, const atb_disc_path *p)
{
    size_t depth =
        p->depth < ATB_DISC_PATH_DEPTH ? p->depth : ATB_DISC_PATH_DEPTH;
    for (size_t i = 0; i < depth && node != NULL; i++) {
        const atb_disc_step *s = &p->steps[i];
        const atb_disc_item *it;
        if (s->field != NULL) {
            it = atb_disc_doc_get(node, s->field, NULL);
        } else {
            it = atb_disc_doc_at(node, s->index);
        }
        if (it == NULL) {
            return node;
        }
        /* A map entry is reported at its key, where the problem is
         * usually seen; other steps descend to the value. */
        if (s->key != NULL && i + 1 == depth && it->key != NULL) {
            return it->key;
        }
        node = it->value;
    }
    return node;
}

int
atb_disc_fault_vset(atb_disc_fault *f, const atb_disc_path *path,
                    const atb_disc_node *node, const char *fmt, va_list ap)
{
    f->code = ATBUS_ERECORD;
    f->path = *path;
    f->node = node;
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    return ATBUS_ERECORD;
}

int
atb_disc_fault_set(atb_disc_fault *f, int code, const atb_disc_path *path,
                   const atb_disc_node *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    atb_disc_fault_vset(f, path, node, fmt, ap);
    va_end(ap);
    f->code = code;
    return code;
}

void
atb_disc_error_clear(atbus_record_error *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

int
atb_disc_error_set(atbus_record_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
        va_end(ap);
    }
    return code;
}

void
atb_disc_error_from_fault(atbus_record_error *err, const atb_disc_fault *f,
                          const char *prefix)
{
    if (err == NULL) {
        return;
    }
    err->code = f->code;
    atb_disc_path_format(&f->path, prefix, err->path, sizeof(err->path));
    memcpy(err->reason, f->reason, sizeof(err->reason));
    if (f->node != NULL && f->node->line != 0) {
        err->line = f->node->line;
        err->column = f->node->column;
    }
}

void
atb_disc_error_name(atbus_record_error *err, const char *name, size_t len)
{
    if (err == NULL || name == NULL) {
        return;
    }
    size_t n = len < sizeof(err->name) - 1 ? len : sizeof(err->name) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        /* Only for display: an unprintable name is shown as '?'. */
        err->name[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    err->name[n] = '\0';
}
