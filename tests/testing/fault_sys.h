/*
 * Scripted system-call faults for tests: replaces entries of atb_sys so
 * that chosen calls fail with a chosen errno, or transfer fewer bytes than
 * asked (short reads and writes), SQLite test_syscall style.
 *
 * Only for single-threaded tests; atb_fault_reset restores the real
 * calls. The leak-checking test case (atb_test_case) resets it too.
 */
#ifndef ATB_TESTING_FAULT_SYS_H
#define ATB_TESTING_FAULT_SYS_H

#include <stddef.h>
#include <stdint.h>

enum atb_fault_op {
    ATB_FAULT_READV,
    ATB_FAULT_WRITEV,
    ATB_FAULT_ACCEPT4,
    ATB_FAULT_CONNECT,
    ATB_FAULT_OP_COUNT
};

/*
 * atb_fault_arm: after `skip` calls of op pass through, the next `count`
 * calls are faulted: with err != 0 they fail with errno = err; with
 * err == 0 readv/writev move at most short_bytes bytes.
 */
void atb_fault_arm(enum atb_fault_op op, unsigned skip, unsigned count, int err,
                   size_t short_bytes);

/* atb_fault_fired returns how many calls of op were faulted. */
unsigned atb_fault_fired(enum atb_fault_op op);

/*
 * atb_fault_datagram_loss makes a lossy link of every sendmsg (udp://):
 * each datagram is dropped with probability loss_per_mille / 1000 and
 * sent twice with dup_per_mille / 1000, from a PRNG seeded with seed, so
 * a run replays exactly. The sender sees success either way.
 */
void atb_fault_datagram_loss(unsigned loss_per_mille, unsigned dup_per_mille,
                             uint64_t seed);

/* atb_fault_datagram_counts reports the datagrams dropped and doubled. */
void atb_fault_datagram_counts(unsigned long *dropped, unsigned long *doubled);

/* atb_fault_reset disarms everything and restores the real calls. */
void atb_fault_reset(void);

#endif /* ATB_TESTING_FAULT_SYS_H */
