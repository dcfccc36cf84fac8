/*
 * Byte-stream connections and listeners over a socket fd, shared by the
 * unix and TCP transports, which differ only in how the socket is made.
 *
 * Receiving: read up to a budget per readiness event into one buffer, and
 * cut frames from it with atb_frame_decoder (zero-copy when whole). A
 * framing error closes the connection with that error as the reason.
 * Sending: frames are appended to a bounded buffer and written with one
 * writev per loop turn (a deferred flush), so a burst of small frames
 * costs one system call.
 */
#ifndef ATB_TRANSPORT_STREAM_STREAM_H
#define ATB_TRANSPORT_STREAM_STREAM_H

#include <sys/socket.h>

#include "transport/transport.h"
#include "wire/frame_decoder.h"

typedef struct atb_stream_conn {
    atb_conn base;
    int fd;
    atb_io io;
    atb_transport_config cfg;
    atb_frame_decoder decoder;
    uint8_t *rbuf;
    size_t rcap;
    /* Pending output is sbuf[shead, slen). */
    uint8_t *sbuf;
    size_t shead;
    size_t slen;
    size_t scap;
    atb_deferred flush_defer;
    atb_deferred open_defer;
    int open_error;     /* a dial that failed at once, reported deferred */
    int want_writable;  /* a send was refused; call on_writable later */
    int waiting_output; /* ATB_IO_WRITE requested: the kernel buffer filled */
} atb_stream_conn;

typedef struct atb_stream_listener {
    atb_listener base;
    int fd;
    atb_io io;
    atb_timer retry; /* re-arms accepting after EMFILE/ENFILE */
    char unlink_path[108];
} atb_stream_listener;

/*
 * atb_stream_dial starts a non-blocking connect of the new socket fd to
 * addr and wraps it in a connection (fd is owned from here on, also on
 * failure). Returns ATBUS_OK or ATBUS_ENOMEM; a refused or failed connect
 * is reported later through on_close.
 */
int atb_stream_dial(const atb_transport *tp, atb_loop *loop, int fd,
                    const struct sockaddr *addr, socklen_t len,
                    const atb_url *peer, const atb_transport_config *cfg,
                    atb_conn **out);

/*
 * atb_stream_listen starts accepting on a bound, listening socket fd
 * (owned from here on, also on failure), for the listener described by
 * tmpl. unlink_path, if not NULL, is
 * removed when the listener is freed. Returns ATBUS_OK, ATBUS_ENOMEM or
 * ATBUS_ESYSTEM.
 */
int atb_stream_listen(const atb_listener *tmpl, int fd, const char *unlink_path,
                      atb_listener **out);

/* The atb_transport entries the stream transports share. */
int atb_stream_send(atb_conn *c, const struct iovec *iov, int iovcnt);
void atb_stream_shutdown(atb_conn *c);
void atb_stream_conn_free(atb_conn *c);
size_t atb_stream_queued(const atb_conn *c);
void atb_stream_finish(atb_conn *c);
void atb_stream_listener_free(atb_listener *l);

/* atb_stream_tune sets per-connection socket options; the TCP transport
 * sets TCP_NODELAY through it (tcp != 0). */
void atb_stream_tune(int fd, int tcp);

#endif /* ATB_TRANSPORT_STREAM_STREAM_H */
