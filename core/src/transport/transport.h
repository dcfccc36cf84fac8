/*
 * The connection interface every channel implements.
 *
 * A connection carries whole frames both ways. Stream transports (unix,
 * TCP) reassemble them from bytes with atb_frame_decoder; message
 * transports (mem, shm, udp) receive them whole. Either way the owner sees
 * only verified frames (hash checked) and hands over complete frames.
 *
 * Each transport is a const atb_transport ops table in its own folder
 * (transport/<name>/); the functions here pick the table by URL scheme and
 * keep the parts all transports share: callbacks, state, statistics and
 * the three-step end of a connection:
 *   close  atb_conn_close: stop I/O, abort queued frames; on_close follows
 *          from the loop (never from inside atb_conn_close)
 *   stop   on_close has run: no callback will run again
 *   free   atb_conn_free, by the owner, after on_close (or instead of it
 *          when the connection never opened)
 *
 * Threads: a connection belongs to its loop's thread.
 */
#ifndef ATB_TRANSPORT_TRANSPORT_H
#define ATB_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "loop/loop.h"
#include "transport/url.h"
#include "wire/frame.h"

typedef struct atb_conn atb_conn;
typedef struct atb_listener atb_listener;
typedef struct atb_transport atb_transport;

/* Transport properties (atb_transport.flags). */
#define ATB_TP_SAME_PROCESS 0x1u /* reaches only this process (mem) */
#define ATB_TP_SAME_HOST 0x2u    /* reaches only this host (shm, unix) */
#define ATB_TP_DATAGRAM 0x4u     /* unreliable, MTU-bounded (udp) */

typedef struct atb_transport_config {
    /* Cap on a received frame's message length (the decoder's limit). */
    size_t max_frame_message;
    /* Bytes queued for sending before send returns ATBUS_EWOULDBLOCK. */
    size_t send_buffer_limit;
    /* Bytes read per readiness event before yielding to other work. */
    size_t read_budget;
    /* Backlog of listening sockets. */
    int backlog;
    /* Largest frame in one udp:// datagram; 0 picks the safe default for
     * the address family: 548 bytes for IPv4 (576-byte minimum reassembly
     * size minus IP and UDP headers), 1232 for IPv6 (1280 minus 48). */
    size_t udp_mtu;
    /* Data area of the rings a shm:// listener and a dialing loop's inbox
     * read (rounded up to a power of two). A ring carries frames up to an
     * eighth of it, so the default 16 MiB fits the default 2 MiB frames.
     * An inbox is sized by the first dial of its loop. */
    size_t shm_ring_size;
} atb_transport_config;

/* atb_transport_config_default fills the defaults: 2 MiB frames, 8 MiB
 * send buffer, 256 KiB read budget, backlog 128, 16 MiB shm rings. */
void atb_transport_config_default(atb_transport_config *cfg);

typedef struct atb_conn_stats {
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t sends_would_block; /* sends refused because the queue was full */
    uint64_t syscalls_out;      /* write calls: frames_out / this = batching */
    uint64_t frames_dropped;    /* datagrams refused (bad frame), udp only */
} atb_conn_stats;

typedef struct atb_conn_cbs {
    /* An outbound connection is established. */
    void (*on_open)(atb_conn *c, void *arg);
    /* One verified frame. The view lives until the callback returns. */
    void (*on_frame)(atb_conn *c, const atb_frame_view *f, void *arg);
    /* The send queue drained after a send returned ATBUS_EWOULDBLOCK. */
    void (*on_writable)(atb_conn *c, void *arg);
    /* The connection ended: reason is ATBUS_ECLOSED for a local close,
     * else why (ATBUS_ECONNRESET, ATBUS_ECONNREFUSED, ATBUS_EFRAME_HASH,
     * ...). Last callback; the owner frees the connection after it. */
    void (*on_close)(atb_conn *c, int reason, void *arg);
} atb_conn_cbs;

typedef struct atb_listener_cbs {
    /* A new inbound connection, already open. The callee owns it and must
     * set its callbacks with atb_conn_set_cbs before returning. */
    void (*on_accept)(atb_listener *l, atb_conn *c, void *arg);
    /* Accepting failed (e.g. ATBUS_ESYSTEM for EMFILE); the listener
     * keeps listening. */
    void (*on_error)(atb_listener *l, int err, void *arg);
} atb_listener_cbs;

enum atb_conn_state {
    ATB_CONN_CONNECTING = 1,
    ATB_CONN_OPEN,
    ATB_CONN_CLOSING, /* closed, on_close not yet delivered */
    ATB_CONN_CLOSED,  /* on_close delivered (or never to be) */
};

/* The part of a connection every transport shares; each transport's
 * connection embeds it as its first member. */
struct atb_conn {
    const atb_transport *tp;
    atb_loop *loop;
    atb_conn_cbs cbs;
    void *arg;
    enum atb_conn_state state;
    int close_reason;
    uint64_t id; /* unique per process, for logs and forward_for */
    atb_url peer;
    atb_conn_stats stats;
    atb_deferred close_defer;
};

struct atb_listener {
    const atb_transport *tp;
    atb_loop *loop;
    atb_listener_cbs cbs;
    void *arg;
    atb_transport_config cfg;
    atb_url url;
};

struct atb_transport {
    enum atb_url_scheme scheme;
    unsigned flags;
    /* Creates a listener whose shared part starts as a copy of *tmpl
     * (filled before the listener becomes visible to other threads). */
    int (*listen)(const atb_listener *tmpl, atb_listener **out);
    void (*listener_free)(atb_listener *l);
    int (*dial)(atb_loop *loop, const atb_url *url,
                const atb_transport_config *cfg, atb_conn **out);
    int (*send)(atb_conn *c, const struct iovec *iov, int iovcnt);
    /* Stop I/O and release OS resources; the common code delivers
     * on_close. */
    void (*shutdown)(atb_conn *c);
    void (*conn_free)(atb_conn *c);
    /* Bytes accepted by send but not yet handed to the OS; NULL when
     * sends are never queued (message transports write at once). */
    size_t (*queued)(const atb_conn *c);
    /* Half-close: no more sending, the peer reads end-of-stream after
     * what was written, receiving goes on. NULL when the transport has no
     * such state (closing is then the only way to finish). */
    void (*finish)(atb_conn *c);
};

/* atb_transport_find returns the ops table for a scheme, or NULL when the
 * scheme has no transport in this build. */
const atb_transport *atb_transport_find(enum atb_url_scheme scheme);

/*
 * atb_listen starts listening on url (text). cfg may be NULL for the
 * defaults. Returns ATBUS_OK, ATBUS_EADDRINVAL, ATBUS_ENOTSUP,
 * ATBUS_EADDRINUSE, ATBUS_EPERM, ATBUS_ENOSPC (shm: shared memory too
 * small for the ring), ATBUS_ENOMEM or ATBUS_ESYSTEM.
 */
int atb_listen(atb_loop *loop, const char *url, const atb_transport_config *cfg,
               const atb_listener_cbs *cbs, void *arg, atb_listener **out);

/* atb_listener_close stops accepting and frees l (a filesystem unix
 * socket path is unlinked). NULL is a no-op. */
void atb_listener_close(atb_listener *l);

/*
 * atb_dial starts connecting to url; on_open or on_close (with the
 * reason, e.g. ATBUS_ECONNREFUSED) follows from the loop. Returns
 * ATBUS_OK, ATBUS_EADDRINVAL, ATBUS_ENOTSUP, ATBUS_ENOSPC (shm: no room
 * for the loop's inbox ring), ATBUS_ENOMEM or ATBUS_ESYSTEM; then *out is
 * not set.
 */
int atb_dial(atb_loop *loop, const char *url, const atb_transport_config *cfg,
             const atb_conn_cbs *cbs, void *arg, atb_conn **out);

/* atb_conn_set_cbs sets the callbacks of c (used on accepted ones). */
void atb_conn_set_cbs(atb_conn *c, const atb_conn_cbs *cbs, void *arg);

/*
 * atb_conn_send queues one complete frame, gathered from iov; the bytes
 * are copied, so iov may be reused at once. Queued frames are written in
 * batches at the end of the loop turn. Returns ATBUS_OK,
 * ATBUS_EWOULDBLOCK (queue full: nothing queued; on_writable follows),
 * ATBUS_ENOTCONN (still connecting), ATBUS_ECLOSED, ATBUS_EMSGSIZE (the
 * message exceeds max_frame_message), ATBUS_EINVAL (iov is not exactly one
 * frame) or ATBUS_ENOMEM.
 */
int atb_conn_send(atb_conn *c, const struct iovec *iov, int iovcnt);

/*
 * atb_conn_close ends c; queued frames not yet written are dropped (their
 * number is in the stats). on_close(ATBUS_ECLOSED) follows from the loop.
 * A no-op when already closing. Never blocks.
 */
void atb_conn_close(atb_conn *c);

/* atb_conn_queued returns the bytes c still holds for sending: an owner
 * that wants its last frames out (a close message) waits for zero before
 * atb_conn_close, which would drop them. */
size_t atb_conn_queued(const atb_conn *c);

/*
 * atb_conn_finish half-closes c where the transport can (stream sockets):
 * the peer reads to the end of what was written, then end-of-stream, and
 * c keeps receiving until the peer closes too. Closing outright with
 * unread input makes some kernels (unix sockets) reset the connection,
 * and the peer then loses the last frames it had not read yet. Returns 1
 * if c was half-closed, 0 if the transport cannot (close it instead).
 */
int atb_conn_finish(atb_conn *c);

/* atb_conn_free releases c after on_close, or a connection that never
 * reached the loop; NULL is a no-op. */
void atb_conn_free(atb_conn *c);

/* ---- for transport implementations ---- */

/* atb_conn_init_common fills the shared part of a new connection. */
void atb_conn_init_common(atb_conn *c, const atb_transport *tp, atb_loop *loop,
                          const atb_url *peer);

/* atb_conn_fail ends c because of err: the transport is shut down and
 * on_close(err) is delivered from the loop. */
void atb_conn_fail(atb_conn *c, int err);

/* atb_conn_opened marks c open and calls on_open. */
void atb_conn_opened(atb_conn *c);

/*
 * atb_transport_check_frame checks that iov holds exactly one frame whose
 * message fits max_message, and stores its total size. Returns ATBUS_OK,
 * ATBUS_EMSGSIZE or ATBUS_EINVAL.
 */
int atb_transport_check_frame(const struct iovec *iov, int iovcnt,
                              size_t max_message, size_t *total);

#endif /* ATB_TRANSPORT_TRANSPORT_H */
