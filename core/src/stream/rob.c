#include "stream/rob.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"

struct atb_rob_seg {
    atb_rob_seg *next;
    atb_rob_seg *prev;
    int64_t off;
    size_t units;
    int end_mark; /* the last unit is an end mark (no byte stored) */
    uint8_t data[];
};

void
atb_rob_init(atb_rob *rob, int64_t start, size_t window, size_t max_message)
{
    memset(rob, 0, sizeof(*rob));
    rob->next = start;
    rob->max_end = start;
    rob->window = window;
    rob->max_message = max_message;
}

static void
rob_seg_unlink(atb_rob *rob, atb_rob_seg *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        rob->head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    } else {
        rob->tail = s->prev;
    }
    rob->held -= s->units;
    if (rob->hint == s) {
        rob->hint = NULL;
    }
    atb_free(s);
}

void
atb_rob_fini(atb_rob *rob)
{
    while (rob->head != NULL) {
        rob_seg_unlink(rob, rob->head);
    }
    atb_free(rob->msg);
    rob->msg = NULL;
    rob->msg_len = rob->msg_cap = 0;
}

/* rob_consume appends in-order bytes to the message being assembled and
 * delivers it at its end mark. */
static int
rob_consume(atb_rob *rob, const uint8_t *data, size_t len, int end_mark,
            atb_rob_deliver_cb deliver, void *arg)
{
    if (rob->msg_len == 0 && end_mark) {
        if (len > rob->max_message) {
            return ATBUS_EMSGSIZE;
        }
        deliver(data, len, arg);
        return ATBUS_OK;
    }
    if (len > rob->max_message - rob->msg_len) {
        return ATBUS_EMSGSIZE;
    }
    if (rob->msg_len + len > rob->msg_cap) {
        size_t cap = rob->msg_cap != 0 ? rob->msg_cap : 256;
        while (cap < rob->msg_len + len) {
            cap *= 2;
        }
        uint8_t *m = atb_realloc(rob->msg, cap);
        if (m == NULL) {
            return ATBUS_ENOMEM;
        }
        rob->msg = m;
        rob->msg_cap = cap;
    }
    if (len > 0) {
        memcpy(rob->msg + rob->msg_len, data, len);
    }
    rob->msg_len += len;
    if (end_mark) {
        size_t n = rob->msg_len;
        rob->msg_len = 0;
        deliver(rob->msg, n, arg);
    }
    return ATBUS_OK;
}

/* rob_drain consumes the held segments that now start at or below next. */
static int
rob_drain(atb_rob *rob, atb_rob_deliver_cb deliver, void *arg)
{
    while (rob->head != NULL && rob->head->off <= rob->next) {
        atb_rob_seg *s = rob->head;
        int64_t end = s->off + (int64_t)s->units;
        if (end > rob->next) {
            size_t skip = (size_t)(rob->next - s->off);
            size_t bytes = s->units - (s->end_mark ? 1u : 0u);
            rob->next = end;
            int rc = rob_consume(rob, s->data + skip, bytes - skip, s->end_mark,
                                 deliver, arg);
            if (rc != ATBUS_OK) {
                return rc;
            }
        }
        rob_seg_unlink(rob, s);
    }
    return ATBUS_OK;
}

/* rob_hold keeps units [off, end) of the fragment at frag_off with bytes
 * data, ending at frag_end (end_mark: its last unit is an end mark), as a
 * new segment placed before `before` (NULL: at the tail). */
static int
rob_hold(atb_rob *rob, atb_rob_seg *before, int64_t off, int64_t end,
         int64_t frag_off, const uint8_t *data, int64_t frag_end, int end_mark)
{
    size_t units = (size_t)(end - off);
    int mark = end_mark && end == frag_end;
    size_t bytes = units - (mark ? 1u : 0u);
    atb_rob_seg *s = atb_malloc(sizeof(*s) + bytes);
    if (s == NULL) {
        return ATBUS_ENOMEM;
    }
    s->off = off;
    s->units = units;
    s->end_mark = mark;
    if (bytes > 0) {
        memcpy(s->data, data + (off - frag_off), bytes);
    }
    s->next = before;
    s->prev = before != NULL ? before->prev : rob->tail;
    if (s->prev != NULL) {
        s->prev->next = s;
    } else {
        rob->head = s;
    }
    if (before != NULL) {
        before->prev = s;
    } else {
        rob->tail = s;
    }
    rob->held += units;
    rob->hint = s;
    return ATBUS_OK;
}

int
atb_rob_push(atb_rob *rob, int64_t off, const uint8_t *data, size_t len,
             int end_mark, atb_rob_deliver_cb deliver, void *arg)
{
    int64_t end = off + (int64_t)len + (end_mark ? 1 : 0);
    if (end <= rob->next) {
        rob->dup_units += (uint64_t)(end - off);
        return ATBUS_OK;
    }
    if (end - rob->next > (int64_t)rob->window) {
        rob->refused_units += (uint64_t)(end - off);
        return ATBUS_OK;
    }
    if (off < rob->next) {
        size_t skip = (size_t)(rob->next - off);
        rob->dup_units += skip;
        data += skip;
        len -= skip;
        off = rob->next;
    }
    if (end > rob->max_end) {
        rob->max_end = end;
    }
    if (off == rob->next) {
        /* In order: units consumed here are received, even if a held
         * segment also has some of them; rob_drain skips those. */
        rob->next = end;
        int rc = rob_consume(rob, data, len, end_mark, deliver, arg);
        if (rc != ATBUS_OK) {
            return rc;
        }
        return rob_drain(rob, deliver, arg);
    }
    /* Out of order: fill the gaps between held segments. Fragments of one
     * packet are neighbours, so start from the segment touched last, else
     * from the closer end (new data lands near the tail, resent data near
     * the head). */
    atb_rob_seg *s = rob->tail;
    if (rob->head != NULL) {
        int64_t best = rob->tail->off > off ? rob->tail->off - off : 0;
        if (off - rob->head->off < best) {
            s = rob->head;
            best = off - rob->head->off;
        }
        if (rob->hint != NULL) {
            int64_t d = rob->hint->off > off ? rob->hint->off - off
                                             : off - rob->hint->off;
            if (d < best) {
                s = rob->hint;
            }
        }
    }
    while (s != NULL && s->off > off) {
        s = s->prev;
    }
    if (s == NULL && rob->head != NULL && rob->head->off <= off) {
        s = rob->head;
    }
    while (s != NULL && s->next != NULL && s->next->off <= off) {
        s = s->next;
    }
    /* s is the last segment starting at or before off, or NULL. */
    int64_t pos = off;
    if (s != NULL && s->off + (int64_t)s->units > pos) {
        pos = s->off + (int64_t)s->units;
    }
    atb_rob_seg *nx = s != NULL ? s->next : rob->head;
    const int64_t frag_off = off;
    if (pos >= end) {
        rob->dup_units += (uint64_t)(end - off);
    }
    while (pos < end) {
        int64_t gap_end = nx != NULL && nx->off < end ? nx->off : end;
        if (gap_end > pos) {
            int rc =
                rob_hold(rob, nx, pos, gap_end, frag_off, data, end, end_mark);
            if (rc != ATBUS_OK) {
                return rc;
            }
        }
        if (nx == NULL || nx->off >= end) {
            break;
        }
        rob->dup_units += (uint64_t)((nx->off + (int64_t)nx->units < end
                                          ? nx->off + (int64_t)nx->units
                                          : end) -
                                     (nx->off > pos ? nx->off : pos));
        pos = nx->off + (int64_t)nx->units;
        nx = nx->next;
    }
    return ATBUS_OK;
}

int
atb_rob_skip_to(atb_rob *rob, int64_t to, atb_rob_deliver_cb deliver, void *arg)
{
    if (to <= rob->next) {
        return ATBUS_OK;
    }
    rob->next = to;
    rob->msg_len = 0;
    if (to > rob->max_end) {
        rob->max_end = to;
    }
    /* Segments ending at or below `to` go; one straddling it is consumed
     * from `to` on like any in-order data. */
    return rob_drain(rob, deliver, arg);
}
