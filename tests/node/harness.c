/* Node test harness (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "testing.h"

void
h_url(int kind, char *buf, size_t n)
{
    static int counter;
    counter++;
    int pid = (int)getpid();
    switch (kind) {
    case T_MEM:
        snprintf(buf, n, "mem://node-test-%d-%d", pid, counter);
        break;
    case T_SHM:
        snprintf(buf, n, "shm://node-test-%d-%d", pid, counter);
        break;
    case T_UNIX:
        snprintf(buf, n, "unix:///tmp/atbus-node-%d-%d.sock", pid, counter);
        break;
    case T_ABSTRACT:
        snprintf(buf, n, "unix://@atbus-node-%d-%d", pid, counter);
        break;
    case T_IPV4:
        snprintf(buf, n, "ipv4://127.0.0.1:%d",
                 atb_test_free_port(AF_INET, SOCK_STREAM));
        break;
    case T_IPV6:
        snprintf(buf, n, "ipv6://[::1]:%d",
                 atb_test_free_port(AF_INET6, SOCK_STREAM));
        break;
    default:
        snprintf(buf, n, "udp://127.0.0.1:%d",
                 atb_test_free_port(AF_INET, SOCK_DGRAM));
        break;
    }
}

const char *
h_kind_name(int kind)
{
    static const char *const names[] = {"mem",  "shm",  "unix", "unix",
                                        "ipv4", "ipv6", "udp"};
    return names[kind];
}

void
h_config(atbus_node_config *cfg, const char *name)
{
    ck_assert_int_eq(atbus_node_config_default(cfg), ATBUS_OK);
    cfg->name = name;
    cfg->ping_interval_ms = 50;
    cfg->peer_timeout_ms = 2000;
    cfg->register_timeout_ms = 2000;
    cfg->reconnect_min_ms = 10;
    cfg->reconnect_max_ms = 80;
    cfg->seed = 42;
}

static void
on_message(atbus_node *node, const char *source, int64_t stream_id,
           const void *data, size_t len, void *arg)
{
    (void)node;
    (void)source;
    (void)stream_id;
    hnode *h = arg;
    h->messages++;
    h->bytes += len;
    h->last_len = len;
    if (len >= 8) {
        const uint8_t *p = data;
        uint64_t seq;
        memcpy(&seq, p, 8);
        if (seq != h->next_seq) {
            h->bad++;
        }
        for (size_t i = 8; i < len; i++) {
            if (p[i] != (uint8_t)(seq * 131 + i)) {
                h->bad++;
                break;
            }
        }
        h->next_seq = seq + 1;
    }
}

static void
on_peer_up(atbus_node *node, const atbus_peer_info *peer, void *arg)
{
    (void)node;
    hnode *h = arg;
    h->peers_up++;
    snprintf(h->last_up, sizeof(h->last_up), "%s", peer->name);
    snprintf(h->last_channel, sizeof(h->last_channel), "%s", peer->channel);
}

static void
on_peer_down(atbus_node *node, const char *name, int reason, void *arg)
{
    (void)node;
    (void)name;
    hnode *h = arg;
    h->peers_down++;
    h->last_down_reason = reason;
}

static void
on_writable(atbus_node *node, const char *peer, void *arg)
{
    (void)node;
    (void)peer;
    ((hnode *)arg)->writable++;
}

static void
on_undelivered(atbus_node *node, const char *peer, uint64_t messages, int err,
               void *arg)
{
    (void)node;
    (void)peer;
    hnode *h = arg;
    h->undelivered++;
    h->undelivered_messages += messages;
    h->last_undelivered_err = err;
}

static void
on_connect_error(atbus_node *node, const char *url, int err, void *arg)
{
    (void)node;
    (void)url;
    hnode *h = arg;
    h->connect_errors++;
    h->last_connect_error = err;
}

void
h_start(hnode *h, const atbus_node_config *cfg, const char *listen_url)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", cfg->name);
    atbus_node_config c = *cfg;
    c.name = h->name;
    if (listen_url != NULL) {
        c.listen[c.listen_count++] = listen_url;
    }
    ck_assert_int_eq(atbus_node_new(&h->node, &c), ATBUS_OK);
    atbus_node_callbacks cbs = {
        .on_message = on_message,
        .on_peer_up = on_peer_up,
        .on_peer_down = on_peer_down,
        .on_writable = on_writable,
        .on_connect_error = on_connect_error,
        .on_undelivered = on_undelivered,
    };
    ck_assert_int_eq(atbus_node_set_callbacks(h->node, &cbs, h), ATBUS_OK);
    ck_assert_int_eq(atbus_node_start(h->node), ATBUS_OK);
}

void
h_new(hnode *h, const char *name, const char *listen_url)
{
    atbus_node_config cfg;
    h_config(&cfg, name);
    h_start(h, &cfg, listen_url);
}

int
h_pump(hnode **nodes, int n, const int *flag, int want, int limit_ms)
{
    uint64_t end = atb_clock_us() + (uint64_t)limit_ms * 1000;
    /* Every call turns each loop at least once, even with no time. */
    for (int turn = 0; flag == NULL || *flag < want; turn++) {
        if (turn > 0 && atb_clock_us() >= end) {
            return flag == NULL;
        }
        for (int i = 0; i < n; i++) {
            ck_assert_int_eq(atbus_node_poll(nodes[i]->node, 0), ATBUS_OK);
        }
        /* Give other processes (forked peers) a moment when idle. */
        if (n == 1) {
            ck_assert_int_eq(atbus_node_poll(nodes[0]->node, 1), ATBUS_OK);
        }
    }
    return 1;
}

void
h_pair(hnode *a, hnode *b, int kind, const atbus_node_config *bcfg, char *url,
       size_t n, int limit_ms)
{
    h_url(kind, url, n);
    h_new(a, "node-a", url);
    if (bcfg != NULL) {
        h_start(b, bcfg, NULL);
    } else {
        h_new(b, "node-b", NULL);
    }
    ck_assert_int_eq(atbus_node_connect(b->node, url), ATBUS_OK);
    hnode *nodes[] = {a, b};
    ck_assert(h_pump(nodes, 2, &a->peers_up, 1, limit_ms));
    ck_assert(h_pump(nodes, 2, &b->peers_up, 1, limit_ms));
}

void
h_pump_ms(hnode **nodes, int n, int ms)
{
    (void)h_pump(nodes, n, NULL, 0, ms);
}

void
h_make_message(uint64_t seq, uint8_t *buf, size_t len)
{
    memcpy(buf, &seq, 8);
    for (size_t i = 8; i < len; i++) {
        buf[i] = (uint8_t)(seq * 131 + i);
    }
}

int
h_raw_socket(int kind, const char *url)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    int family;
    int type = kind == T_UDP ? SOCK_DGRAM : SOCK_STREAM;
    if (kind == T_UNIX || kind == T_ABSTRACT) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        const char *name = url + strlen("unix://");
        if (kind == T_ABSTRACT) {
            size_t n = strlen(name + 1);
            memcpy(un->sun_path + 1, name + 1, n);
            len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
        } else {
            snprintf(un->sun_path, sizeof(un->sun_path), "%s", name);
            len = sizeof(*un);
        }
        family = AF_UNIX;
    } else {
        int port = atoi(strrchr(url, ':') + 1);
        if (kind == T_IPV6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)port);
            inet_pton(AF_INET6, "::1", &s6->sin6_addr);
            len = sizeof(*s6);
            family = AF_INET6;
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)port);
            inet_pton(AF_INET, "127.0.0.1", &s4->sin_addr);
            len = sizeof(*s4);
            family = AF_INET;
        }
    }
    int fd = socket(family, type | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    int rc = connect(fd, (struct sockaddr *)&ss, len);
    ck_assert(rc == 0 || errno == EINPROGRESS);
    return fd;
}
