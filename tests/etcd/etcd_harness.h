/*
 * Shared pieces of the etcd suites: a capture of one operation's result,
 * a client whose watch events build a small view (key -> value), and
 * loop pumps that wait for a condition with a deadline (never a sleep).
 */
#ifndef ATB_TEST_ETCD_HARNESS_H
#define ATB_TEST_ETCD_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd.h"
#include "loop/loop.h"

#define H_WAIT_MS 20000
#define H_MAX_KVS 16
#define H_KEY 128
#define H_VALUE 1024
#define H_VIEW_MAX 64

/* One operation's outcome, copied out of its callback. */
typedef struct h_op {
    int done;
    int err;
    char detail[512];
    int64_t revision;
    int64_t lease;
    int64_t ttl;
    int64_t deleted;
    int64_t count;
    int succeeded;
    size_t nkvs;
    char key[H_MAX_KVS][H_KEY];
    char value[H_MAX_KVS][H_VALUE];
    int64_t kv_lease[H_MAX_KVS];
    int64_t kv_mod[H_MAX_KVS];
} h_op;

/* h_op_cb is an atb_etcd_cb filling the h_op given as arg. */
void h_op_cb(const atb_etcd_result *res, void *arg);

typedef struct h_entry {
    char key[H_KEY];
    char value[H_VALUE];
    int64_t rev;
} h_entry;

/* A client and what its callbacks saw. */
typedef struct h_client {
    atb_etcd *c;
    h_entry view[H_VIEW_MAX];
    size_t nview;
    int puts;
    int deletes;
    int synced; /* SYNCED reports */
    int stale;  /* STALE reports */
    int state;
    uint64_t since;
    int err;
    char detail[512];
    int registered;
    int lost;
    int64_t lease;
} h_client;

/* h_client_config fills cfg for endpoints[0..n), short test timings. */
void h_client_config(atb_etcd_config *cfg, const char *const *endpoints,
                     size_t n, const char *prefix, uint32_t ttl_s);

/* h_client_new creates t->c with the recording callbacks. */
int h_client_new(h_client *t, atb_loop *loop, const atb_etcd_config *cfg);

/* h_view_get returns the view's entry for key, or NULL. */
const h_entry *h_view_get(const h_client *t, const char *key);

/* h_pump turns loop until *counter >= want; 1 if reached within ms. */
int h_pump(atb_loop *loop, const int *counter, int want, int ms);

/* h_pump_until turns every loop until cond(arg); 1 if it held within
 * ms. */
int h_pump_until(atb_loop *const *loops, size_t n, int (*cond)(void *),
                 void *arg, int ms);

/* h_pump_for turns loop for ms (letting timers run, for checks that
 * something does NOT happen). */
void h_pump_for(atb_loop *loop, int ms);

#endif /* ATB_TEST_ETCD_HARNESS_H */
