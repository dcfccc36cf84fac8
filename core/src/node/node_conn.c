/*
 * One connection of a node, from open to close.
 *
 *   dialer                                acceptor
 *     open ---- register (stream -1) ---->  check it: name, version,
 *                                           duplicate; reply with its own
 *     check <--- register (stream -1) ----  register, then UP
 *     UP
 *
 * The acceptor answers only a register it accepts, so a dialer never sees
 * a peer come up that is about to refuse it. A refusal is a close message
 * (FINISH_CONNECTION with a close_reason) sent before the transport
 * closes, so the other side learns why instead of seeing a bare reset.
 * After UP, each side pings every ping_interval; a connection that hears
 * nothing for peer_timeout is declared dead.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen, gethostname */
#include "node/node_internal.h"

#include <atbus/error.h>
#include <atbus/version.h>

#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/name.h"
#include "wire/frame.h"
#include "wire/packet.h"

/* Frames of the control path are small: names, a few integers. */
#define CONTROL_FRAME_MAX 2048

int
node_conn_rank(enum atb_url_scheme scheme)
{
    switch (scheme) {
    case ATB_URL_MEM:
        return 0;
    case ATB_URL_SHM:
        return 1;
    case ATB_URL_UNIX:
        return 2;
    case ATB_URL_IPV4:
    case ATB_URL_IPV6:
        return 3;
    default:
        return 4;
    }
}

/* ---- sending ---- */

static const char *
peer_name(const node_conn *nc)
{
    return nc->peer != NULL ? nc->peer->name : NULL;
}

/* send_encoded frames a protobuf-c message built by the caller. */
static int
send_encoded(node_conn *nc, const atb_pb_frame *msg)
{
    uint8_t buf[CONTROL_FRAME_MAX];
    size_t n;
    int rc = atb_frame_encode(msg, buf, sizeof(buf), &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    struct iovec iov = {.iov_base = buf, .iov_len = n};
    rc = atb_conn_send(nc->conn, &iov, 1);
    if (rc == ATBUS_OK) {
        nc->node->stats.frames_out++;
    }
    return rc;
}

static void
fill_head(node_conn *nc, atb_pb_head *head)
{
    atbus__protocol__message_head__init(head);
    head->source = nc->node->name;
    head->destination = (char *)(uintptr_t)(peer_name(nc) ? peer_name(nc) : "");
}

/* send_control sends data as one fragment of packet_type on the control
 * stream. */
static int
send_control(node_conn *nc, int32_t packet_type, const uint8_t *data,
             size_t len)
{
    atb_packet_desc d = {
        .source = nc->node->name,
        .destination = peer_name(nc),
        .stream_id = ATB_NODE_CONTROL_STREAM,
        .timepoint_us = (int64_t)atb_loop_now_us(nc->node->loop),
        .packet_type = packet_type,
        .data_len = len,
    };
    uint8_t buf[CONTROL_FRAME_MAX];
    size_t n;
    int rc = atb_packet_prefix(&d, buf, &n);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (n + len + ATB_FRAME_HASH_LEN > sizeof(buf)) {
        return ATBUS_EMSGSIZE;
    }
    memcpy(buf + n, data, len);
    n += len;
    atb_frame_seal(buf, n);
    struct iovec iov = {.iov_base = buf, .iov_len = n + ATB_FRAME_HASH_LEN};
    rc = atb_conn_send(nc->conn, &iov, 1);
    if (rc == ATBUS_OK) {
        nc->node->stats.frames_out++;
    }
    return rc;
}

/* send_register sends this node's register; peer_incarnation says which
 * incarnation of the peer this node holds streams for (0: none). */
static int
send_register(node_conn *nc, uint64_t peer_incarnation)
{
    atbus_node *node = nc->node;
    static const enum atb_url_scheme schemes[] = {
        ATB_URL_MEM,  ATB_URL_SHM,  ATB_URL_UNIX,
        ATB_URL_IPV4, ATB_URL_IPV6, ATB_URL_UDP,
    };
    char *channels[sizeof(schemes) / sizeof(schemes[0])];
    size_t nch = 0;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (atb_transport_find(schemes[i]) != NULL) {
            channels[nch++] =
                (char *)(uintptr_t)atb_url_scheme_name(schemes[i]);
        }
    }
    atb_pb_register reg;
    atbus__protocol__register_data__init(&reg);
    reg.name = node->name;
    reg.pid = (int64_t)getpid();
    reg.hostname = node->hostname;
    reg.namespace_name = node->namespace_name;
    reg.protocol_version = ATBUS_PROTOCOL_VERSION;
    reg.protocol_minimal_version = ATBUS_PROTOCOL_MINIMAL_VERSION;
    reg.n_channels = nch;
    reg.channels = channels;
    reg.library_version = (char *)(uintptr_t)ATBUS_VERSION_STRING;
    reg.type = node->type;
    reg.incarnation = node->incarnation;
    reg.peer_incarnation = peer_incarnation;
    reg.n_upstreams = node->cfg.upstream_count;
    reg.upstreams = node->upstreams;
    uint8_t buf[1024];
    if (atbus__protocol__register_data__get_packed_size(&reg) > sizeof(buf)) {
        return ATBUS_EMSGSIZE;
    }
    size_t n = atbus__protocol__register_data__pack(&reg, buf);
    return send_control(
        nc, ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER,
        buf, n);
}

int
node_conn_send_command(node_conn *nc, const char *destination,
                       int64_t stream_id, int32_t flags, int code,
                       const char *message, const char *data)
{
    Atbus__Protocol__CloseReasonData reason;
    atbus__protocol__close_reason_data__init(&reason);
    reason.code = (Atbus__Protocol__ATBUSCLOSEREASON)code;
    reason.message = (char *)(uintptr_t)(message != NULL ? message : "");
    atb_pb_fragment frag;
    atbus__protocol__packet_content__fragment_type__init(&frag);
    frag.packet_type =
        ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_COMMAND;
    frag.close_reason = &reason;
    if (data != NULL) {
        frag.data.data = (uint8_t *)(uintptr_t)data;
        frag.data.len = strlen(data);
    }
    atb_pb_fragment *frags[1] = {&frag};
    atb_pb_content content;
    atbus__protocol__packet_content__init(&content);
    content.n_fragment = 1;
    content.fragment = frags;
    uint8_t cbuf[1024];
    if (atbus__protocol__packet_content__get_packed_size(&content) >
        sizeof(cbuf)) {
        return ATBUS_EMSGSIZE;
    }
    size_t clen = atbus__protocol__packet_content__pack(&content, cbuf);

    atb_pb_head head;
    fill_head(nc, &head);
    if (destination != NULL) {
        head.destination = (char *)(uintptr_t)destination;
        head.source_incarnation = nc->node->incarnation;
    }
    atb_pb_packet packet;
    atbus__protocol__packet_data__init(&packet);
    packet.stream_id = stream_id;
    packet.flags = flags;
    packet.content.data = cbuf;
    packet.content.len = clen;
    atb_pb_frame msg;
    atbus__protocol__frame_message__init(&msg);
    msg.head = &head;
    msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET;
    msg.packet = &packet;
    return send_encoded(nc, &msg);
}

/* send_close tells the peer why the connection ends (best effort: a full
 * queue or a dead transport just loses the explanation). */
static void
send_close(node_conn *nc, int code, const char *message)
{
    (void)node_conn_send_command(nc, NULL, ATB_NODE_CONTROL_STREAM,
                                 ATB_PACKET_FLAG_FINISH_CONNECTION, code,
                                 message, NULL);
}

static void
send_ping(node_conn *nc, int pong, int64_t id, int64_t timepoint)
{
    atb_pb_head head;
    fill_head(nc, &head);
    atb_pb_ping ping;
    atbus__protocol__ping_data__init(&ping);
    ping.ping_id = id;
    ping.timepoint_microseconds = timepoint;
    atb_pb_frame msg;
    atbus__protocol__frame_message__init(&msg);
    msg.head = &head;
    if (pong) {
        msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG;
        msg.pong = &ping;
    } else {
        msg.body_case = ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING;
        msg.ping = &ping;
    }
    /* A full queue skips one ping; the peer's timeout is several periods. */
    (void)send_encoded(nc, &msg);
}

/* ---- closing ---- */

/* The close message may sit behind queued data when the peer reads
 * slowly. Once it is written the connection is half-closed where the
 * transport can, so the peer reads it before end-of-stream, and closed
 * when the peer closes too, or after LINGER_US at most (the peer then
 * sees a reset instead of the reason). */
#define LINGER_US ((uint64_t)1000000)
#define LINGER_POLL_US ((uint64_t)1000)

static void
close_when_flushed(node_conn *nc)
{
    atb_loop *loop = nc->node->loop;
    uint64_t now = atb_loop_now_us(loop);
    if (now >= nc->linger_until_us) {
        atb_conn_close(nc->conn);
        return;
    }
    if (nc->finished || atb_conn_queued(nc->conn) != 0) {
        /* Still writing, or half-closed and waiting for the peer to read
         * to the end and close its side (the transport's on_close). */
        if (atb_timer_start(loop, &nc->timer,
                            nc->finished ? nc->linger_until_us - now
                                         : LINGER_POLL_US,
                            0) != ATBUS_OK) {
            atb_conn_close(nc->conn);
        }
        return;
    }
    nc->finished = atb_conn_finish(nc->conn);
    if (!nc->finished) {
        atb_conn_close(nc->conn);
        return;
    }
    close_when_flushed(nc);
}

static void
close_deferred(atb_deferred *d, void *arg)
{
    (void)d;
    close_when_flushed(arg);
}

void
node_conn_end(node_conn *nc, int err, int reason_code, const char *message)
{
    if (nc->state == NCONN_CLOSING) {
        return;
    }
    int was_open = nc->state != NCONN_CONNECTING;
    nc->state = NCONN_CLOSING;
    nc->close_err = err;
    atb_timer_stop(&nc->timer);
    if (was_open && reason_code != ATB_CLOSE_REASON(UNKNOWN)) {
        send_close(nc, reason_code, message);
        nc->linger_until_us = atb_loop_now_us(nc->node->loop) + LINGER_US;
        /* Stream transports write queued frames at the end of this turn;
         * the check runs after that. */
        atb_loop_defer(nc->node->loop, &nc->close_defer, close_deferred, nc);
        return;
    }
    atb_conn_close(nc->conn);
}

/* protocol_error ends nc because the peer broke the protocol. */
static void
protocol_error(node_conn *nc, int err, const char *message)
{
    nc->node->stats.protocol_errors++;
    node_conn_end(nc, err, ATB_CLOSE_REASON(PROTOCOL_ERROR), message);
}

static void
reject_register(node_conn *nc, int err, int code, const char *message)
{
    nc->node->stats.registers_rejected++;
    node_conn_end(nc, err, code, message);
}

/* err_of_reason maps a peer's close reason to what the application sees. */
static int
err_of_reason(int code)
{
    switch (code) {
    case ATB_CLOSE_REASON(SHUTDOWN):
        return ATBUS_ECLOSED;
    case ATB_CLOSE_REASON(UNAUTHORIZED):
        return ATBUS_EPERM;
    case ATB_CLOSE_REASON(ROUTER_NOT_FOUND):
    case ATB_CLOSE_REASON(TTL_EXPIRED):
        return ATBUS_ENOROUTE;
    case ATB_CLOSE_REASON(PROTOCOL_ERROR):
        return ATBUS_EFRAME_INVALID;
    case ATB_CLOSE_REASON(UNSUPPORTED_VERSION):
        return ATBUS_ENOTSUP;
    case ATB_CLOSE_REASON(DUPLICATE_NAME):
        return ATBUS_EEXIST;
    default:
        return ATBUS_ECONNRESET;
    }
}

/* ---- receiving ---- */

static int
is_text(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strnlen(s, max + 1) <= max;
}

/* check_register validates a peer's identity; *why names the bad field. */
static int
check_register(const atbus_node *node, const atb_pb_register *reg, int *code,
               const char **why)
{
    *code = ATB_CLOSE_REASON(PROTOCOL_ERROR);
    if (atb_name_check(reg->name, NULL) != ATBUS_OK) {
        *why = "register_data.name is not a valid node name";
        return ATBUS_EFRAME_INVALID;
    }
    if (reg->pid <= 0) {
        *why = "register_data.pid must be positive";
        return ATBUS_EFRAME_INVALID;
    }
    if (!is_text(reg->hostname, ATBUS_NAME_MAX)) {
        *why = "register_data.hostname is empty or too long";
        return ATBUS_EFRAME_INVALID;
    }
    if (!is_text(reg->namespace_name, ATBUS_NAME_MAX)) {
        *why = "register_data.namespace_name is empty or too long";
        return ATBUS_EFRAME_INVALID;
    }
    if (reg->type == NULL ||
        (strcmp(reg->type, "node") != 0 && strcmp(reg->type, "client") != 0)) {
        *why = "register_data.type must be \"node\" or \"client\"";
        return ATBUS_EFRAME_INVALID;
    }
    if (reg->n_channels > 64) {
        *why = "register_data.channels has more than 64 entries";
        return ATBUS_EFRAME_INVALID;
    }
    if (reg->protocol_minimal_version > reg->protocol_version) {
        *why = "register_data.protocol_minimal_version is above "
               "protocol_version";
        return ATBUS_EFRAME_INVALID;
    }
    if (reg->protocol_minimal_version > ATBUS_PROTOCOL_VERSION ||
        reg->protocol_version < ATBUS_PROTOCOL_MINIMAL_VERSION) {
        *code = ATB_CLOSE_REASON(UNSUPPORTED_VERSION);
        *why = "no protocol version in common";
        return ATBUS_ENOTSUP;
    }
    *code = ATB_CLOSE_REASON(DUPLICATE_NAME);
    if (strcmp(reg->name, node->name) == 0) {
        *why = "register_data.name is the receiving node's own name";
        return ATBUS_EEXIST;
    }
    /* A peer with connections is a live process; a lingering one (no
     * connections) may come back as a new process. */
    const node_peer *p = node_peer_find(node, reg->name);
    if (p != NULL && p->conns != NULL &&
        (p->pid != reg->pid || strcmp(p->hostname, reg->hostname) != 0 ||
         strcmp(p->namespace_name, reg->namespace_name) != 0 ||
         p->incarnation != reg->incarnation)) {
        *why = "another node with this name is connected";
        return ATBUS_EEXIST;
    }
    return ATBUS_OK;
}

static void
handle_register(node_conn *nc, const uint8_t *data, size_t len)
{
    if (nc->state != NCONN_REGISTERING) {
        protocol_error(nc, ATBUS_EFRAME_INVALID, "a second register_data");
        return;
    }
    atb_pb_register *reg;
    int rc = atb_register_unpack(data, len, &reg);
    if (rc == ATBUS_ENOMEM) {
        node_conn_end(nc, rc, ATB_CLOSE_REASON(PEER_RESET), "out of memory");
        return;
    }
    if (rc != ATBUS_OK) {
        nc->node->stats.registers_rejected++;
        protocol_error(nc, rc, "register_data does not decode");
        return;
    }
    int code;
    const char *why = NULL;
    rc = check_register(nc->node, reg, &code, &why);
    if (rc == ATBUS_OK && nc->accepted) {
        /* Answer before the peer exists for the application: its
         * on_peer_up may send at once, and data must not overtake the
         * register on the wire. */
        rc = send_register(nc, node_peer_answer_incarnation(nc->node, reg));
        if (rc != ATBUS_OK) {
            code = ATB_CLOSE_REASON(PEER_RESET);
            why = "could not answer the register";
        }
    }
    if (rc == ATBUS_OK) {
        nc->state = NCONN_UP;
        uint64_t period = (uint64_t)nc->node->cfg.ping_interval_ms * 1000;
        if (atb_timer_start(nc->node->loop, &nc->timer, period, period) !=
            ATBUS_OK) {
            rc = ATBUS_ENOMEM;
            why = "out of memory";
        } else {
            rc = node_peer_attach(nc->node, nc, reg);
            why = "out of memory";
        }
        code = ATB_CLOSE_REASON(PEER_RESET);
    }
    atb_register_free(reg);
    if (rc != ATBUS_OK) {
        reject_register(nc, rc, code, why);
        return;
    }
    if (nc->target != NULL) {
        nc->target->attempt = 0;
    }
}

/* frame_peer returns the peer whose streams take a frame that came in on
 * nc: nc's peer, or for a frame relayed from further away its source
 * (reached back through nc). A frame for another node is forwarded (or
 * answered with a route notice) and NULL returned, as for one that
 * cannot be placed. */
static node_peer *
frame_peer(node_conn *nc, const atb_pb_frame *msg)
{
    atbus_node *node = nc->node;
    const atb_pb_head *head = msg->head;
    if (head == NULL || head->source == NULL || head->destination == NULL ||
        atb_name_check(head->source, NULL) != ATBUS_OK) {
        protocol_error(nc, ATBUS_EFRAME_INVALID,
                       "message_head has no valid source or destination");
        return NULL;
    }
    if (strcmp(head->destination, node->name) != 0) {
        node_route_forward(nc, msg);
        return NULL;
    }
    if (strcmp(head->source, nc->peer->name) == 0) {
        return nc->peer;
    }
    node_peer *p =
        node_peer_remote(node, head->source, head->source_incarnation);
    if (p == NULL || node_stream_relayed_path(p, nc) != ATBUS_OK) {
        return NULL; /* out of memory: dropped, the source resends */
    }
    return p;
}

static void
handle_control(node_conn *nc, const atb_pb_packet *packet,
               const atb_pb_content *content)
{
    for (size_t i = 0; i < content->n_fragment && nc->state != NCONN_CLOSING;
         i++) {
        const atb_pb_fragment *f = content->fragment[i];
        if (f->close_reason != NULL &&
            (packet->flags & ATB_PACKET_FLAG_FINISH_CONNECTION) != 0) {
            node_conn_end(nc, err_of_reason((int)f->close_reason->code),
                          ATB_CLOSE_REASON(UNKNOWN), NULL);
            return;
        }
        if (f->packet_type ==
            ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER) {
            handle_register(nc, f->data.data, f->data.len);
        }
        /* Other control types belong to later protocol features (relay
         * commands, handshakes); a peer that speaks them expects no
         * answer from a node that does not, so they are skipped. */
    }
}

/* handle_data passes a data packet of a registered connection to the
 * peer's streams. */
static void
handle_data(node_conn *nc, const atb_pb_frame *msg)
{
    atbus_node *node = nc->node;
    if (nc->state != NCONN_UP) {
        protocol_error(nc, ATBUS_EFRAME_INVALID, "data before register");
        return;
    }
    if (msg->packet->stream_id == ATB_NODE_ROUTE_STREAM && msg->head != NULL &&
        msg->head->destination != NULL &&
        strcmp(msg->head->destination, node->name) == 0) {
        node_route_on_notice(nc, msg);
        return;
    }
    node_peer *p = frame_peer(nc, msg);
    if (p != NULL) {
        node_stream_on_packet(p, nc, msg);
    }
}

static void
handle_packet(node_conn *nc, const atb_pb_frame *msg)
{
    const atb_pb_packet *packet = msg->packet;
    if ((packet->flags & ATB_PACKET_FLAG_TLS_HANDSHAKE) != 0) {
        node_conn_end(nc, ATBUS_EPERM, ATB_CLOSE_REASON(UNAUTHORIZED),
                      "encrypted connections are not enabled on this node");
        return;
    }
    if (packet->stream_id != ATB_NODE_CONTROL_STREAM) {
        handle_data(nc, msg);
        return;
    }
    atb_pb_content *content;
    int rc = atb_packet_content_unpack(packet->content.data,
                                       packet->content.len, &content);
    if (rc == ATBUS_ENOMEM) {
        node_conn_end(nc, rc, ATB_CLOSE_REASON(PEER_RESET), "out of memory");
        return;
    }
    if (rc != ATBUS_OK) {
        protocol_error(nc, rc, "packet_content does not decode");
        return;
    }
    handle_control(nc, packet, content);
    atb_packet_content_free(content);
}

static void
conn_on_frame(atb_conn *c, const atb_frame_view *f, void *arg)
{
    (void)c;
    node_conn *nc = arg;
    if (nc->state == NCONN_CLOSING) {
        return;
    }
    atbus_node *node = nc->node;
    node->stats.frames_in++;
    nc->last_rx_us = atb_loop_now_us(node->loop);
    atb_pb_frame *msg;
    int rc = atb_frame_message_unpack(f->message, f->message_len, &msg);
    if (rc == ATBUS_ENOMEM) {
        node_conn_end(nc, rc, ATB_CLOSE_REASON(PEER_RESET), "out of memory");
        return;
    }
    if (rc != ATBUS_OK) {
        protocol_error(nc, rc, "frame_message does not decode");
        return;
    }
    switch (msg->body_case) {
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING:
        send_ping(nc, 1, msg->ping->ping_id, msg->ping->timepoint_microseconds);
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PONG: {
        int64_t now = (int64_t)atb_loop_now_us(node->loop);
        int64_t sent = msg->pong->timepoint_microseconds;
        /* Only our own clock's values make sense; ignore anything else. */
        if (sent > 0 && sent <= now) {
            int64_t rtt = now - sent;
            nc->rtt_us = nc->rtt_us < 0 ? rtt : (7 * nc->rtt_us + rtt) / 8;
            if (nc->path_added) {
                atb_sengine_rtt_sample(nc->peer->eng, nc->path_id, rtt);
            }
        }
        break;
    }
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET:
        handle_packet(nc, msg);
        break;
    case ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE:
        if (nc->state != NCONN_UP) {
            protocol_error(nc, ATBUS_EFRAME_INVALID,
                           "acknowledgement before register");
        } else {
            node_peer *p = frame_peer(nc, msg);
            if (p != NULL) {
                node_stream_on_ack(p, nc, msg->acknowledge);
            }
        }
        break;
    default:
        break;
    }
    atb_frame_message_free(msg);
}

/* ---- timers and transport events ---- */

static void
conn_on_timer(atb_timer *t, void *arg)
{
    (void)t;
    node_conn *nc = arg;
    atbus_node *node = nc->node;
    if (nc->state == NCONN_CLOSING) {
        close_when_flushed(nc);
        return;
    }
    if (nc->state == NCONN_CONNECTING || nc->state == NCONN_REGISTERING) {
        node_conn_end(nc, ATBUS_ETIMEDOUT, ATB_CLOSE_REASON(PROTOCOL_ERROR),
                      "no register_data in time");
        return;
    }
    uint64_t now = atb_loop_now_us(node->loop);
    if (now - nc->last_rx_us >= (uint64_t)node->cfg.peer_timeout_ms * 1000) {
        node->stats.peer_timeouts++;
        node_conn_end(nc, ATBUS_ETIMEDOUT, ATB_CLOSE_REASON(PEER_RESET),
                      "keep-alive timeout");
        return;
    }
    send_ping(nc, 0, ++nc->next_ping_id, (int64_t)now);
}

static void
conn_on_open(atb_conn *c, void *arg)
{
    (void)c;
    node_conn_start(arg);
}

static void
conn_on_writable(atb_conn *c, void *arg)
{
    (void)c;
    node_conn *nc = arg;
    nc->blocked = 0;
    if (nc->state == NCONN_UP) {
        node_stream_flush(nc->peer);
        node_route_conn_writable(nc->node, nc);
    }
}

static void
conn_on_close(atb_conn *c, int reason, void *arg)
{
    node_conn *nc = arg;
    atbus_node *node = nc->node;
    int err = nc->close_err != 0 ? nc->close_err : reason;
    int registered = nc->peer != NULL;
    if (nc->close_err == 0 && reason <= ATBUS_ETRUNCATED) {
        /* The transport refused the peer's bytes (framing, hash, size). */
        node->stats.protocol_errors++;
    }
    atb_timer_stop(&nc->timer);
    atb_loop_cancel(node->loop, &nc->close_defer);
    node->stats.connections_closed++;
    if (nc->peer != NULL) {
        node_route_conn_gone(node, nc);
        node_peer_detach(nc, err);
    } else if (node->cbs.on_connect_error != NULL && !node->freeing &&
               !node->closed) {
        node->cbs.on_connect_error(node, nc->target ? nc->target->url : NULL,
                                   err, node->cb_arg);
    }
    if (nc->prev != NULL) {
        nc->prev->next = nc->next;
    } else {
        node->conns = nc->next;
    }
    if (nc->next != NULL) {
        nc->next->prev = nc->prev;
    }
    node_target *t = nc->target;
    atb_conn_free(c);
    atb_free(nc);
    if (t != NULL) {
        t->nc = NULL;
        node_target_conn_ended(t, registered);
    }
}

const atb_conn_cbs node_conn_cbs = {
    .on_open = conn_on_open,
    .on_frame = conn_on_frame,
    .on_writable = conn_on_writable,
    .on_close = conn_on_close,
};

int
node_conn_new(atbus_node *node, atb_conn *conn, int accepted,
              node_target *target, node_conn **out)
{
    node_conn *nc = atb_calloc(1, sizeof(*nc));
    if (nc == NULL) {
        return ATBUS_ENOMEM;
    }
    nc->node = node;
    nc->conn = conn;
    nc->accepted = accepted;
    nc->target = target;
    nc->state = NCONN_CONNECTING;
    nc->rank = node_conn_rank(conn->tp->scheme);
    nc->rtt_us = -1;
    atb_timer_init(&nc->timer, conn_on_timer, nc);
    nc->next = node->conns;
    if (node->conns != NULL) {
        node->conns->prev = nc;
    }
    node->conns = nc;
    atb_conn_set_cbs(conn, &node_conn_cbs, nc);
    /* The register deadline also bounds a connect that never completes. */
    int rc = atb_timer_start(node->loop, &nc->timer,
                             (uint64_t)node->cfg.register_timeout_ms * 1000, 0);
    if (rc != ATBUS_OK) {
        node->conns = nc->next;
        if (nc->next != NULL) {
            nc->next->prev = NULL;
        }
        atb_free(nc);
        return rc;
    }
    *out = nc;
    return ATBUS_OK;
}

void
node_conn_start(node_conn *nc)
{
    if (nc->state != NCONN_CONNECTING) {
        return;
    }
    nc->state = NCONN_REGISTERING;
    nc->last_rx_us = atb_loop_now_us(nc->node->loop);
    if (!nc->accepted) {
        int rc =
            send_register(nc, node_peer_incarnation_for(nc->node, nc, NULL));
        if (rc != ATBUS_OK) {
            node_conn_end(nc, rc, ATB_CLOSE_REASON(UNKNOWN), NULL);
        }
    }
}
