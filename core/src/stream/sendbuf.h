/*
 * The bytes a sender stream still holds: queued messages, in flight or not
 * yet sent, until the peer acknowledges them.
 *
 * A stream is one sequence of units. A message of n bytes takes n + 1
 * units: its bytes, then one end mark (stored as a dummy byte). Like
 * TCP's FIN taking a sequence number, the end mark gives every message,
 * even an empty one, a place in the sequence, so boundaries are offsets
 * and survive any re-cutting of the bytes into packets.
 *
 * Messages are copied into chunks (64 KiB, or one message if larger) and
 * never split across chunks, so every fragment is one contiguous run.
 * Memory is allocated per chunk, not per message.
 */
#ifndef ATB_STREAM_SENDBUF_H
#define ATB_STREAM_SENDBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct atb_sendbuf_chunk atb_sendbuf_chunk;

typedef struct atb_sendbuf {
    atb_sendbuf_chunk *head; /* oldest chunk still holding units */
    atb_sendbuf_chunk *tail;
    atb_sendbuf_chunk *cursor; /* last chunk looked up */
    int64_t base;              /* first unit held */
    int64_t end;               /* next unit to append */
    /* Offsets of end marks at or above base, oldest first, in a ring. */
    int64_t *marks;
    size_t marks_head;
    size_t marks_count;
    size_t marks_cap; /* a power of two, or 0 */
    /* Marks released so far, and the absolute number of the mark the
     * last fragment ended at: fragments are cut in offset order, so the
     * next one almost always ends at that mark or the one after. */
    uint64_t marks_released;
    uint64_t mark_hint;
    size_t chunk_size;
} atb_sendbuf;

/* A contiguous piece of one message. */
typedef struct atb_sendbuf_frag {
    const uint8_t *data;
    size_t len;   /* message bytes in the piece */
    int end_mark; /* the piece ends the message (its end mark included) */
} atb_sendbuf_frag;

/* atb_sendbuf_init prepares an empty buffer starting at offset 0. */
void atb_sendbuf_init(atb_sendbuf *sb);

/* atb_sendbuf_fini frees everything sb holds. */
void atb_sendbuf_fini(atb_sendbuf *sb);

/*
 * atb_sendbuf_append copies a message of len bytes to the end of sb
 * (len + 1 units). Returns ATBUS_OK or ATBUS_ENOMEM (nothing appended).
 */
int atb_sendbuf_append(atb_sendbuf *sb, const void *data, size_t len);

/*
 * atb_sendbuf_frag_at describes the longest piece of one message that
 * starts at unit off (base <= off < end) and takes at most max_units
 * units (>= 1). The piece stays valid until units at or above its start
 * are released.
 */
void atb_sendbuf_frag_at(atb_sendbuf *sb, int64_t off, size_t max_units,
                         atb_sendbuf_frag *out);

/* atb_sendbuf_release drops every unit below upto (<= end). */
void atb_sendbuf_release(atb_sendbuf *sb, int64_t upto);

/* atb_sendbuf_boundary returns the start of the message holding unit off
 * (base <= off <= end): the unit after the last end mark below off, or
 * base. A peer that lost its state must get the whole message again. */
int64_t atb_sendbuf_boundary(const atb_sendbuf *sb, int64_t off);

/* atb_sendbuf_messages_from returns the messages whose end mark is at or
 * above off. */
size_t atb_sendbuf_messages_from(const atb_sendbuf *sb, int64_t off);

/* atb_sendbuf_units returns the units held: end - base. */
static inline size_t
atb_sendbuf_units(const atb_sendbuf *sb)
{
    return (size_t)(sb->end - sb->base);
}

#endif /* ATB_STREAM_SENDBUF_H */
