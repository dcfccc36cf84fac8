/*
 * The shared-memory ring behind shm://: one ring per reader, any number of
 * writer processes on the same host.
 *
 * A ring is a POSIX shared-memory object "/atbus.<key>" (a file in
 * /dev/shm): a 1 KiB header of cache-line-padded positions, then a
 * power-of-two data area of 8-byte-aligned records {length, type,
 * payload}. Writers claim space with a compare-and-swap on the tail,
 * copy, and commit by making the record's length positive; the reader
 * consumes records in order, zeroes them and advances the head. No lock
 * is ever held, so a writer that dies cannot block the others for good:
 * the reader turns its half-written record into padding
 * (atb_shm_ring_recover). docs/internals/shm.md has the layout and the
 * protocol.
 *
 * Roles: the process that creates a ring is its only reader; it may also
 * write to it. Processes that open it are writers. The reader holds a lock
 * on the object while its handle is open, which the kernel drops when the
 * reader closes or dies: writers ask atb_shm_ring_reader_alive, and
 * atb_shm_ring_reclaim removes the name of a ring whose reader is gone.
 *
 * Threads and processes: write, claim, commit and abort may run
 * concurrently from any number of threads and processes. The reader
 * calls (read, wait, unblock, recover) must not run concurrently with
 * each other. Close must not run concurrently with any other call on the
 * same handle.
 */
#ifndef ATB_TRANSPORT_SHM_SHM_RING_H
#define ATB_TRANSPORT_SHM_SHM_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct atb_shm_ring atb_shm_ring;

/* Longest key; the same limit as shm:// names (ATB_URL_NAME_MAX). */
#define ATB_SHM_RING_KEY_MAX 100

/* Data area bounds (bytes, powers of two). The shared object is
 * ATB_SHM_RING_HEADER_SIZE bytes larger. */
#define ATB_SHM_RING_MIN_CAPACITY ((size_t)4096)
#define ATB_SHM_RING_MAX_CAPACITY ((size_t)1 << 40)
#define ATB_SHM_RING_HEADER_SIZE ((size_t)1024)

/* Bytes before each record's payload: int32 length, int32 type. */
#define ATB_SHM_RING_RECORD_HEADER ((size_t)8)

/* Record types below zero are reserved (padding). */
#define ATB_SHM_RING_TYPE_MAX INT32_MAX

/* The stall after which a reader should treat an uncommitted record at
 * its head as abandoned by a dead writer; see atb_shm_ring_recover. */
#define ATB_SHM_RING_STALL_US ((uint64_t)2000000)

/*
 * atb_shm_ring_handler receives one record in atb_shm_ring_read. data
 * (len bytes, 8-byte aligned) points into the ring and is valid only until
 * the handler returns. The handler must not call the ring's reader
 * functions. It may write to any ring, this one included, but the space
 * of the batch being read is freed only after the batch.
 */
typedef void (*atb_shm_ring_handler)(int32_t type, const void *data, size_t len,
                                     void *arg);

/*
 * atb_shm_ring_create makes the ring "/atbus.<key>" with capacity bytes of
 * data area (a power of two, ATB_SHM_RING_MIN_CAPACITY to
 * ATB_SHM_RING_MAX_CAPACITY) and becomes its reader. key holds 1 to
 * ATB_SHM_RING_KEY_MAX characters from [A-Za-z0-9._-]. The object is
 * created with mode 0600 (same user only). All of its memory is allocated
 * here, so a /dev/shm too small for it fails now instead of raising
 * SIGBUS later. An existing name is never reused, even when its reader is
 * dead: a restarting reader removes the stale name first
 * (atb_shm_ring_reclaim). The new reader's lock is taken right after the
 * name is made; a reclaim racing with that makes create fail with
 * ATBUS_EEXIST and leave the name alone.
 *
 * Returns ATBUS_OK and *out (close with atb_shm_ring_close), or
 * ATBUS_EINVAL (key or capacity), ATBUS_EEXIST (the name exists),
 * ATBUS_ENOSPC (shared memory too small; the name is removed again),
 * ATBUS_EPERM, ATBUS_ENOMEM or ATBUS_ESYSTEM.
 */
int atb_shm_ring_create(atb_shm_ring **out, const char *key, size_t capacity);

/*
 * atb_shm_ring_open maps the existing ring "/atbus.<key>" as a writer. It
 * checks the magic, layout version and capacity against the object's size
 * before trusting anything in it.
 *
 * Returns ATBUS_OK and *out (close with atb_shm_ring_close), or
 * ATBUS_EINVAL (bad key; or the object is not an atbus ring or is
 * corrupt), ATBUS_ENOTFOUND (absent, or its reader is still creating it),
 * ATBUS_ENOTSUP (another layout version), ATBUS_ECLOSED (its reader has
 * closed it), ATBUS_EPERM, ATBUS_ENOMEM or ATBUS_ESYSTEM.
 */
int atb_shm_ring_open(atb_shm_ring **out, const char *key);

/*
 * atb_shm_ring_close unmaps the ring and frees the handle; NULL is a no-op.
 * When the reader closes, writers' later writes fail with ATBUS_ECLOSED
 * and its lock is released. The name stays until atb_shm_ring_unlink; a
 * reader that removes its name does so before closing, while it still
 * holds the lock, so that a reclaim never removes a successor's name.
 */
void atb_shm_ring_close(atb_shm_ring *ring);

/*
 * atb_shm_ring_reclaim removes the name "/atbus.<key>" if no reader holds
 * the object's lock: its reader closed or died (or it is not a ring at
 * all). A live reader's ring is left alone, whichever process or pid
 * namespace it runs in. Returns ATBUS_OK (removed, or the object lost its
 * name meanwhile), ATBUS_EEXIST (a live reader holds it), ATBUS_ENOTFOUND,
 * ATBUS_EINVAL (bad key), ATBUS_EPERM or ATBUS_ESYSTEM.
 */
int atb_shm_ring_reclaim(const char *key);

/*
 * atb_shm_ring_sweep calls atb_shm_ring_reclaim for every ring whose key
 * starts with prefix, so the rings of crashed readers do not pile up in
 * /dev/shm. Returns the number of names removed, or the error (from
 * atb_sys_error) when /dev/shm cannot be listed.
 */
int atb_shm_ring_sweep(const char *prefix);

/*
 * atb_shm_ring_reader_alive reports whether the ring's reader still has it
 * open: 1 (or always, on the reader's own handle), 0 once it closed or
 * died, or ATBUS_ESYSTEM when the kernel cannot say. One system call;
 * takes nothing, so it never disturbs the reader or a reclaim.
 */
int atb_shm_ring_reader_alive(const atb_shm_ring *ring);

/*
 * atb_shm_ring_unlink removes the name "/atbus.<key>"; processes that
 * have it mapped keep their mapping until they close. Returns ATBUS_OK,
 * ATBUS_EINVAL (bad key), ATBUS_ENOTFOUND, ATBUS_EPERM or ATBUS_ESYSTEM.
 */
int atb_shm_ring_unlink(const char *key);

/* atb_shm_ring_capacity returns the size of the data area in bytes. */
size_t atb_shm_ring_capacity(const atb_shm_ring *ring);

/* atb_shm_ring_max_length returns the largest payload a record may carry:
 * an eighth of the capacity (at most 1 GiB), so the ring always holds
 * several of them. */
size_t atb_shm_ring_max_length(const atb_shm_ring *ring);

/*
 * atb_shm_ring_write appends one record of the given type (0 to
 * ATB_SHM_RING_TYPE_MAX) whose payload is the concatenation of iovcnt
 * buffers, and wakes the reader if it sleeps. Never blocks; the caller
 * keeps its buffers.
 *
 * Returns ATBUS_OK, ATBUS_EWOULDBLOCK (not enough free space: nothing was
 * written), ATBUS_EMSGSIZE (payload above atb_shm_ring_max_length),
 * ATBUS_EINVAL (type or iov) or ATBUS_ECLOSED (the reader closed the
 * ring).
 */
int atb_shm_ring_write(atb_shm_ring *ring, int32_t type,
                       const struct iovec *iov, int iovcnt);

/*
 * atb_shm_ring_claim reserves a record for a len-byte payload of the given
 * type and points *data at its payload (8-byte aligned) for the caller to
 * fill in place. The record blocks the reader until it is committed or
 * aborted, so the caller must do so promptly and exactly once; a claim
 * held longer than the reader's stall limit may be taken back (see
 * atb_shm_ring_recover). Returns the codes of atb_shm_ring_write.
 */
int atb_shm_ring_claim(atb_shm_ring *ring, int32_t type, size_t len,
                       void **data);

/* atb_shm_ring_commit publishes a claimed record (data as returned by
 * atb_shm_ring_claim on this handle) and wakes the reader if it sleeps. */
void atb_shm_ring_commit(atb_shm_ring *ring, void *data);

/* atb_shm_ring_abort turns a claimed record into padding, which the
 * reader skips. */
void atb_shm_ring_abort(atb_shm_ring *ring, void *data);

/*
 * atb_shm_ring_writable reports whether a record with a len-byte payload
 * would fit now: 1 or 0, ATBUS_EMSGSIZE (it never fits) or ATBUS_ECLOSED.
 * Only a snapshot: other writers may take the space first. Nothing tells
 * a writer that the reader has made room, so a refused writer polls this.
 */
int atb_shm_ring_writable(const atb_shm_ring *ring, size_t len);

/*
 * atb_shm_ring_read delivers up to limit (> 0) committed records to
 * handler, in ring order, then zeroes and frees their space. Stops early
 * at a record that is claimed but not yet committed. Never blocks.
 *
 * Returns the number of records delivered, or ATBUS_EINVAL (not the
 * reader, bad arguments), or ATBUS_EFRAME_INVALID when a record's length
 * lies outside the ring: some process wrote garbage into it. That error
 * is sticky; the ring must be closed and made again.
 */
int atb_shm_ring_read(atb_shm_ring *ring, atb_shm_ring_handler handler,
                      void *arg, int limit);

/*
 * atb_shm_ring_wait blocks the reader until the record at its head is
 * committed or timeout_us microseconds pass (< 0: no limit; 0: only
 * check). It sleeps in the kernel (futex) with no busy loop; a caller that
 * wants lower latency polls atb_shm_ring_read for a while first.
 *
 * Returns ATBUS_OK (a record is ready), ATBUS_ETIMEDOUT, ATBUS_ECLOSED
 * (atb_shm_ring_interrupt was called), ATBUS_EINVAL (not the reader) or
 * ATBUS_ESYSTEM.
 */
int atb_shm_ring_wait(atb_shm_ring *ring, int64_t timeout_us);

/*
 * atb_shm_ring_interrupt makes a wait in progress on this reader handle
 * return ATBUS_ECLOSED promptly, and every later wait at once: the way to
 * stop a thread that waits. Any thread may call it; the handle must stay
 * open until the waiting thread is done with it.
 */
void atb_shm_ring_interrupt(atb_shm_ring *ring);

/*
 * atb_shm_ring_unblock turns the record at the reader's head into padding
 * if it is claimed but not committed (its writer died between claim and
 * commit), including a claim whose writer died before writing the record
 * header. Safe only when that writer is known to be dead; otherwise use
 * atb_shm_ring_recover.
 *
 * Returns 1 if a record was turned into padding, 0 if there was nothing to
 * unblock, or ATBUS_EINVAL (not the reader).
 */
int atb_shm_ring_unblock(atb_shm_ring *ring);

/*
 * atb_shm_ring_recover is the reader's crash-recovery policy. Call it
 * periodically (say every 100 ms from a timer, or after each wait that
 * timed out) with a monotonic now_us. It watches the head: while records
 * are pending but the one at the head stays uncommitted for stall_us
 * (ATB_SHM_RING_STALL_US is a sensible value), it assumes the writer died
 * and calls atb_shm_ring_unblock. A live writer paused longer than
 * stall_us inside a claim would then corrupt the ring, so stall_us must
 * be far above any plausible pause.
 *
 * Returns the result of atb_shm_ring_unblock when it called it, else 0;
 * ATBUS_EINVAL when not the reader.
 */
int atb_shm_ring_recover(atb_shm_ring *ring, uint64_t now_us,
                         uint64_t stall_us);

/* atb_shm_ring_reader_waiting reports whether the ring's reader has
 * announced that it is going to sleep in atb_shm_ring_wait. For tests and
 * statistics; any handle may ask. */
int atb_shm_ring_reader_waiting(const atb_shm_ring *ring);

/* atb_shm_ring_head and atb_shm_ring_tail return the reader's position
 * (everything before it has been consumed) and the writers' (everything
 * claimed so far), in bytes since creation. Any handle. A reader that
 * notes the tail when it learns a writer died knows that writer's
 * records are all consumed once the head has passed that mark. */
uint64_t atb_shm_ring_head(const atb_shm_ring *ring);
uint64_t atb_shm_ring_tail(const atb_shm_ring *ring);

#endif /* ATB_TRANSPORT_SHM_SHM_RING_H */
