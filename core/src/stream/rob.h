/*
 * Receiver reassembly: fragments in, messages out, in order, once.
 *
 * Units are counted as the sender counts them (sendbuf.h): a fragment of
 * n bytes covers n units, plus one if it ends its message. The buffer
 * keeps `next`, the first unit not yet received in order, which is the
 * acknowledge offset, and `max_end`, one past the highest unit seen.
 *
 * A fragment at `next` is consumed at once: a whole message is delivered
 * straight from the caller's buffer, the start of a longer one is copied
 * into the message being assembled. A fragment beyond `next` keeps only
 * the parts no held segment covers (contained ranges are dropped,
 * overlaps trimmed), as segments in offset order. Held units stay within
 * `window` units above `next`; what lies beyond is refused and counted,
 * and the sender sends it again. Units once acknowledged are never
 * dropped (no reneging).
 */
#ifndef ATB_STREAM_ROB_H
#define ATB_STREAM_ROB_H

#include <stddef.h>
#include <stdint.h>

typedef struct atb_rob_seg atb_rob_seg;

/* Called once per complete message; data lives until the call returns. */
typedef void (*atb_rob_deliver_cb)(const uint8_t *data, size_t len, void *arg);

typedef struct atb_rob {
    int64_t next;    /* first unit not received in order */
    int64_t max_end; /* one past the highest unit received */
    size_t window;   /* units held beyond next, at most */
    size_t max_message;
    uint8_t *msg; /* bytes of the message being assembled */
    size_t msg_len;
    size_t msg_cap;
    atb_rob_seg *head; /* out-of-order segments, by offset */
    atb_rob_seg *tail;
    atb_rob_seg *hint; /* the segment added last: a search starts there */
    size_t held;       /* units in segments */
    /* Counters. */
    uint64_t dup_units;     /* units received again and dropped */
    uint64_t refused_units; /* units beyond the window, dropped */
} atb_rob;

/* atb_rob_init prepares an empty buffer expecting unit `start` next. */
void atb_rob_init(atb_rob *rob, int64_t start, size_t window,
                  size_t max_message);

/* atb_rob_fini frees everything rob holds. */
void atb_rob_fini(atb_rob *rob);

/*
 * atb_rob_push takes a fragment of len bytes at unit off, ending its
 * message when end_mark is set, and delivers every message it completes.
 * Returns ATBUS_OK, ATBUS_ENOMEM (nothing of the fragment kept; it will
 * come again) or ATBUS_EMSGSIZE (a message grew beyond max_message: the
 * peer breaks the protocol). The callback must not touch rob.
 */
int atb_rob_push(atb_rob *rob, int64_t off, const uint8_t *data, size_t len,
                 int end_mark, atb_rob_deliver_cb deliver, void *arg);

/*
 * atb_rob_skip_to moves next forward to `to`, dropping what is held
 * below it and any partly assembled message: the sender said everything
 * below was delivered before (RESET_OFFSET). Returns ATBUS_OK, or the
 * codes of atb_rob_push for held messages completed on the way.
 */
int atb_rob_skip_to(atb_rob *rob, int64_t to, atb_rob_deliver_cb deliver,
                    void *arg);

#endif /* ATB_STREAM_ROB_H */
