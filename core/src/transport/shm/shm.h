/*
 * What shm:// shows beyond the common connection interface: the count of
 * records a reader ring dropped (see transport/shm/shm.c). For tests and
 * diagnostics; the node layer has no use for it yet.
 */
#ifndef ATB_TRANSPORT_SHM_SHM_H
#define ATB_TRANSPORT_SHM_SHM_H

#include <stdint.h>

#include "transport/transport.h"

/*
 * atb_shm_listener_dropped returns how many records the ring of an shm://
 * listener dropped since it was made: records for connection ids it does
 * not know (a peer writing after the connection ended, or a stray
 * writer), malformed control records, and connects it could not answer.
 * A record that is not a valid frame on a known connection is not
 * counted: it ends that connection instead.
 */
uint64_t atb_shm_listener_dropped(const atb_listener *l);

/* atb_shm_inbox_dropped returns the same count for the inbox ring that a
 * dialed shm:// connection's loop reads. */
uint64_t atb_shm_inbox_dropped(const atb_conn *c);

#endif /* ATB_TRANSPORT_SHM_SHM_H */
