/*
 * Real etcd processes for the etcd suites: one member or a cluster of
 * up to three on 127.0.0.1, each on fresh ports with its own data
 * directory, started as a child that execs etcd at once (it never runs
 * Check code) and dies with the test process (PR_SET_PDEATHSIG), so a
 * failing or timed-out test leaves no etcd behind.
 *
 * The data directories live under one root that main() creates before
 * the tests and removes after them (atb_test_etcd_root_*), so even a
 * test that dies half-way leaves nothing on disk.
 */
#ifndef ATB_TEST_ETCD_SERVER_H
#define ATB_TEST_ETCD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#define ATB_TEST_ETCD_MAX 3

typedef struct atb_test_etcd_member {
    char name[16];
    int client_port;
    int peer_port;
    char url[64]; /* http://127.0.0.1:<client_port> */
    char dir[256];
    pid_t pid; /* 0 while not running */
} atb_test_etcd_member;

typedef struct atb_test_etcd {
    size_t n;
    atb_test_etcd_member m[ATB_TEST_ETCD_MAX];
    char cluster[512]; /* --initial-cluster */
    char token[64];    /* --initial-cluster-token */
} atb_test_etcd;

/* atb_test_etcd_available reports whether the etcd and etcdctl binaries
 * can be found in PATH. */
int atb_test_etcd_available(void);

/* atb_test_etcd_root_create makes the run's root directory (under
 * /dev/shm when possible: etcd fsyncs every write) and sets
 * ETCDCTL_API=3. Returns 0 or -1. */
int atb_test_etcd_root_create(void);

/*
 * atb_test_etcd_suite_prepare is how an etcd suite's main starts: it
 * returns 77 (the ctest skip code, after saying why) when etcd or
 * etcdctl is missing, EXIT_FAILURE when the root cannot be made, and 0
 * after atb_test_etcd_root_create.
 */
int atb_test_etcd_suite_prepare(void);

/* atb_test_etcd_root_remove deletes the root and everything in it. */
void atb_test_etcd_root_remove(void);

/*
 * atb_test_etcd_start starts an n-member cluster (n in 1..3) and waits,
 * at most timeout_ms, until every member reports healthy. Returns 0, or
 * -1 after printing why (the members started are stopped).
 */
int atb_test_etcd_start(atb_test_etcd *e, size_t n, int timeout_ms);

/* atb_test_etcd_kill sends sig to member i and reaps it. */
void atb_test_etcd_kill(atb_test_etcd *e, size_t i, int sig);

/* atb_test_etcd_restart starts member i again on its ports and data
 * directory, and waits until it is healthy. Returns 0 or -1. */
int atb_test_etcd_restart(atb_test_etcd *e, size_t i, int timeout_ms);

/* atb_test_etcd_stop kills every member (SIGKILL), reaps them and
 * removes their data directories. */
void atb_test_etcd_stop(atb_test_etcd *e);

/*
 * atb_test_etcdctl runs `etcdctl --endpoints=<member i> args...`
 * (NULL-terminated) and stores its standard output and error in
 * out[0..cap) (NUL-terminated, truncated). Returns the exit status, or
 * -1 if it could not run or took longer than 10 s.
 */
int atb_test_etcdctl(const atb_test_etcd *e, size_t i, char *out, size_t cap,
                     const char *const *args);

#endif /* ATB_TEST_ETCD_SERVER_H */
