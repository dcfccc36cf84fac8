/*
 * HTTP/1.1 POSTs to etcd's JSON gateway, driven by an atb_loop through
 * libcurl's multi socket interface: curl tells us which sockets it wants
 * watched (CURLMOPT_SOCKETFUNCTION -> atb_io) and when it next needs a
 * call (CURLMOPT_TIMERFUNCTION -> atb_timer); the loop hands readiness
 * back with curl_multi_socket_action. Nothing blocks and no thread is
 * started.
 *
 * Callbacks never run inside libcurl: completions are read from the
 * multi handle after curl_multi_socket_action returns, and streamed data
 * is announced through a deferred call on the next loop turn. So a
 * callback may start or cancel requests freely.
 */
#ifndef ATB_ETCD_ETCD_HTTP_H
#define ATB_ETCD_ETCD_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd_buf.h"
#include "loop/loop.h"

typedef struct atb_etcd_http atb_etcd_http;
typedef struct atb_etcd_req atb_etcd_req;
typedef struct atb_etcd_sock atb_etcd_sock;

/*
 * Completion: err is ATBUS_OK when an HTTP response arrived in full
 * (whatever its status, in req->status; the body in req->body), else:
 *   ATBUS_ECONNREFUSED  could not connect
 *   ATBUS_ETIMEDOUT     connect or transfer deadline passed
 *   ATBUS_ECONNRESET    the connection broke mid-way (etcd killed)
 *   ATBUS_EPARSE        the peer does not speak HTTP
 *   ATBUS_EMSGSIZE      the body passed the cap
 *   ATBUS_ESYSTEM       its socket could not be added to the loop
 *   ATBUS_ENOMEM
 * req->errbuf then says what libcurl saw. The request is idle again
 * when the callback runs and may be restarted from it.
 */
typedef void (*atb_etcd_req_cb)(atb_etcd_req *req, int err, void *arg);

struct atb_etcd_http {
    atb_loop *loop;
    CURLM *multi;
    atb_timer timer;
    /* Runs curl's timeout on the next turn when the timer cannot be
     * armed (out of memory), and ends requests whose socket could not be
     * watched: a failing curl callback would kill the multi handle. */
    atb_deferred timeout_defer;
    atb_deferred abort_defer;
    atb_etcd_sock *socks; /* sockets curl asked us to watch */
    atb_etcd_sock *spare; /* records reserved for the next sockets */
    size_t nsocks;
    size_t nspare;
    atb_etcd_req *reqs; /* in flight */
    size_t active;
};

struct atb_etcd_req {
    atb_etcd_http *http;
    atb_etcd_req *next; /* http's in-flight list */
    atb_etcd_req *prev;
    CURL *easy;  /* non-NULL while in flight */
    int sys_err; /* its socket could not be watched */
    struct curl_slist *headers;
    atb_etcd_buf body; /* the response (the unread part, when streaming) */
    long status;       /* HTTP status, once known */
    int stream;        /* announce data as it arrives */
    atb_deferred data_defer;
    atb_timer stall_timer; /* ends a transfer that stopped receiving */
    uint64_t stall_us;
    uint64_t last_rx_us;
    atb_etcd_req_cb on_done;
    atb_etcd_req_cb on_data; /* streaming only; err is always ATBUS_OK */
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
};

/*
 * atb_etcd_http_init prepares h on loop (borrowed; it must outlive h).
 * Calls curl_global_init, balanced by atb_etcd_http_fini. Returns
 * ATBUS_OK or ATBUS_ENOMEM.
 */
int atb_etcd_http_init(atb_etcd_http *h, atb_loop *loop);

/* atb_etcd_http_fini releases h; every request must be idle. */
void atb_etcd_http_fini(atb_etcd_http *h);

/* atb_etcd_req_init prepares an idle request whose responses may hold up
 * to max_body bytes (unread bytes, when streaming). */
void atb_etcd_req_init(atb_etcd_req *req, size_t max_body);

/* atb_etcd_req_fini cancels req if in flight and frees its buffers. */
void atb_etcd_req_fini(atb_etcd_req *req);

/*
 * atb_etcd_http_start POSTs body[0..body_len) as JSON to url. body is
 * borrowed until the request completes or is cancelled; url and auth
 * (the Authorization header value, or NULL) are copied. timeout_ms
 * bounds the whole transfer (0: no bound); stall_ms, when not 0, ends
 * with ATBUS_ETIMEDOUT a transfer that received nothing for that long,
 * for answers too large to bound by total time; connect_ms bounds the
 * connection. With stream set, on_data runs on a later loop turn
 * whenever new bytes are in req->body; the callee consumes what it
 * parsed. Returns ATBUS_OK, ATBUS_EINVAL (req busy) or ATBUS_ENOMEM.
 */
int atb_etcd_http_start(atb_etcd_http *h, atb_etcd_req *req, const char *url,
                        const char *body, size_t body_len, const char *auth,
                        uint32_t timeout_ms, uint32_t stall_ms,
                        uint32_t connect_ms, int stream,
                        atb_etcd_req_cb on_done, atb_etcd_req_cb on_data,
                        void *arg);

/* atb_etcd_http_cancel aborts req without calling it back; a no-op when
 * idle. The received body is kept. */
void atb_etcd_http_cancel(atb_etcd_req *req);

#endif /* ATB_ETCD_ETCD_HTTP_H */
