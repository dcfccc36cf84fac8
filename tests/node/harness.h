/*
 * Node test harness: nodes whose callbacks record what happened, and a
 * pump that turns several nodes' loops until a condition holds or a time
 * limit passes.
 */
#ifndef ATB_TEST_NODE_HARNESS_H
#define ATB_TEST_NODE_HARNESS_H

#include <atbus/atbus.h>

#include <stddef.h>
#include <stdint.h>

enum {
    T_MEM,
    T_SHM,
    T_UNIX,
    T_ABSTRACT,
    T_IPV4,
    T_IPV6,
    T_UDP,
    T_KINDS,
};

/* What one node saw. */
typedef struct hnode {
    atbus_node *node;
    char name[64];
    int peers_up;
    int peers_down;
    int last_down_reason;
    char last_up[64];
    char last_channel[16];
    int connect_errors;
    int last_connect_error;
    int writable;
    int undelivered; /* on_undelivered calls */
    uint64_t undelivered_messages;
    int last_undelivered_err;
    /* Messages: count, bytes, and order/content checks of messages made
     * by h_make_message. */
    int messages;
    uint64_t bytes;
    uint64_t next_seq;
    int bad;
    size_t last_len;
} hnode;

/* h_url writes a fresh address of kind (pid + counter, or a free port). */
void h_url(int kind, char *buf, size_t n);

/* h_kind_name returns "mem", "unix", ... for a kind. */
const char *h_kind_name(int kind);

/* h_config fills cfg with defaults, a name, and fast timers for tests. */
void h_config(atbus_node_config *cfg, const char *name);

/* h_start creates h->node from cfg (listening on listen_url unless NULL)
 * with the recording callbacks. */
void h_start(hnode *h, const atbus_node_config *cfg, const char *listen_url);

/* h_new is h_start with h_config's defaults. */
void h_new(hnode *h, const char *name, const char *listen_url);

/* h_pump polls every node with timeout 0 (or 1 ms when idle) until
 * *flag >= want or limit_ms pass; returns whether the condition held. */
int h_pump(hnode **nodes, int n, const int *flag, int want, int limit_ms);

/* h_pair starts "node-a" listening on a fresh url of kind and "node-b"
 * (from bcfg, or the defaults) dialing it, and waits until both see the
 * other up. */
void h_pair(hnode *a, hnode *b, int kind, const atbus_node_config *bcfg,
            char *url, size_t n, int limit_ms);

/* h_pump_ms polls every node for ms milliseconds. */
void h_pump_ms(hnode **nodes, int n, int ms);

/* h_make_message writes message number seq of len bytes (>= 8: the
 * sequence number, then a pattern from it). */
void h_make_message(uint64_t seq, uint8_t *buf, size_t len);

/* h_raw_socket connects a plain non-blocking socket to url (unix,
 * abstract unix, ipv4, ipv6 or udp kinds), for peers that break rules. */
int h_raw_socket(int kind, const char *url);

#endif
