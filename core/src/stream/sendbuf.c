#include "stream/sendbuf.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"

#define SENDBUF_CHUNK_SIZE (64u * 1024u)

struct atb_sendbuf_chunk {
    atb_sendbuf_chunk *next;
    int64_t start; /* offset of data[0] */
    size_t used;
    size_t cap;
    uint8_t data[];
};

void
atb_sendbuf_init(atb_sendbuf *sb)
{
    memset(sb, 0, sizeof(*sb));
    sb->chunk_size = SENDBUF_CHUNK_SIZE;
}

void
atb_sendbuf_fini(atb_sendbuf *sb)
{
    atb_sendbuf_chunk *c = sb->head;
    while (c != NULL) {
        atb_sendbuf_chunk *next = c->next;
        atb_free(c);
        c = next;
    }
    atb_free(sb->marks);
    memset(sb, 0, sizeof(*sb));
}

static int64_t
sendbuf_mark(const atb_sendbuf *sb, size_t i)
{
    return sb->marks[(sb->marks_head + i) & (sb->marks_cap - 1)];
}

static int
sendbuf_marks_grow(atb_sendbuf *sb)
{
    size_t cap = sb->marks_cap != 0 ? sb->marks_cap * 2 : 64;
    int64_t *m = atb_malloc(cap * sizeof(*m));
    if (m == NULL) {
        return ATBUS_ENOMEM;
    }
    for (size_t i = 0; i < sb->marks_count; i++) {
        m[i] = sendbuf_mark(sb, i);
    }
    atb_free(sb->marks);
    sb->marks = m;
    sb->marks_cap = cap;
    sb->marks_head = 0;
    return ATBUS_OK;
}

int
atb_sendbuf_append(atb_sendbuf *sb, const void *data, size_t len)
{
    size_t units = len + 1;
    if (sb->marks_count == sb->marks_cap && sendbuf_marks_grow(sb) != 0) {
        return ATBUS_ENOMEM;
    }
    atb_sendbuf_chunk *c = sb->tail;
    if (c == NULL || c->cap - c->used < units) {
        size_t cap = units > sb->chunk_size ? units : sb->chunk_size;
        atb_sendbuf_chunk *n = atb_malloc(sizeof(*n) + cap);
        if (n == NULL) {
            return ATBUS_ENOMEM;
        }
        n->next = NULL;
        n->start = sb->end;
        n->used = 0;
        n->cap = cap;
        if (c != NULL) {
            c->next = n;
        } else {
            sb->head = n;
        }
        sb->tail = c = n;
    }
    if (len > 0) {
        memcpy(c->data + c->used, data, len);
    }
    c->data[c->used + len] = 0; /* the end mark's dummy byte */
    c->used += units;
    sb->end += (int64_t)units;
    sb->marks[(sb->marks_head + sb->marks_count) & (sb->marks_cap - 1)] =
        sb->end - 1;
    sb->marks_count++;
    return ATBUS_OK;
}

/* sendbuf_mark_index returns the index of the first end mark >= off, or
 * marks_count when there is none. */
static size_t
sendbuf_mark_index(const atb_sendbuf *sb, int64_t off)
{
    size_t lo = 0, hi = sb->marks_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sendbuf_mark(sb, mid) < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static atb_sendbuf_chunk *
sendbuf_chunk_of(atb_sendbuf *sb, int64_t off)
{
    atb_sendbuf_chunk *c = sb->cursor;
    if (c == NULL || off < c->start) {
        c = sb->head;
    }
    while (off >= c->start + (int64_t)c->used) {
        c = c->next;
    }
    sb->cursor = c;
    return c;
}

/* sendbuf_mark_index_hinted is sendbuf_mark_index that first tries the
 * mark the previous fragment ended at and the next one. */
static size_t
sendbuf_mark_index_hinted(atb_sendbuf *sb, int64_t off)
{
    if (sb->mark_hint >= sb->marks_released) {
        size_t i = (size_t)(sb->mark_hint - sb->marks_released);
        for (size_t k = i; k < i + 2 && k < sb->marks_count; k++) {
            if (sendbuf_mark(sb, k) >= off &&
                (k == 0 || sendbuf_mark(sb, k - 1) < off)) {
                sb->mark_hint = sb->marks_released + k;
                return k;
            }
        }
    }
    size_t k = sendbuf_mark_index(sb, off);
    sb->mark_hint = sb->marks_released + k;
    return k;
}

void
atb_sendbuf_frag_at(atb_sendbuf *sb, int64_t off, size_t max_units,
                    atb_sendbuf_frag *out)
{
    atb_sendbuf_chunk *c = sendbuf_chunk_of(sb, off);
    /* A mark exists at or after every off < end: the last unit held is
     * always one. */
    size_t idx = sendbuf_mark_index_hinted(sb, off);
    int64_t mark = sendbuf_mark(sb, idx);
    size_t left = (size_t)(mark - off); /* message bytes before the mark */
    out->data = c->data + (off - c->start);
    if (left + 1 <= max_units) {
        out->len = left;
        out->end_mark = 1;
    } else {
        out->len = max_units;
        out->end_mark = 0;
    }
}

void
atb_sendbuf_release(atb_sendbuf *sb, int64_t upto)
{
    if (upto <= sb->base) {
        return;
    }
    sb->base = upto;
    while (sb->marks_count > 0 && sendbuf_mark(sb, 0) < upto) {
        sb->marks_head = (sb->marks_head + 1) & (sb->marks_cap - 1);
        sb->marks_count--;
        sb->marks_released++;
    }
    while (sb->head != NULL &&
           sb->head->start + (int64_t)sb->head->used <= upto) {
        atb_sendbuf_chunk *c = sb->head;
        sb->head = c->next;
        if (sb->tail == c) {
            sb->tail = NULL;
        }
        if (sb->cursor == c) {
            sb->cursor = NULL;
        }
        atb_free(c);
    }
}

int64_t
atb_sendbuf_boundary(const atb_sendbuf *sb, int64_t off)
{
    size_t i = sendbuf_mark_index(sb, off);
    return i == 0 ? sb->base : sendbuf_mark(sb, i - 1) + 1;
}

size_t
atb_sendbuf_messages_from(const atb_sendbuf *sb, int64_t off)
{
    return sb->marks_count - sendbuf_mark_index(sb, off);
}
