/*
 * atbus-demo: a local mesh on the embedded discovery (atbus_demo.c runs
 * it; docs/demo.md explains the output).
 *
 * A discovery file (examples/discovery/local_mesh.yaml, built into the
 * binary) describes two regions, their relays, a transit relay and app
 * nodes. The demo plans every connection from those records and a
 * direct-connect policy (demo_mesh.c), runs each node in this process or
 * in a child process of its own (demo_node.c, demo_proc.c), sends checked
 * traffic between them (demo_traffic.c) and kills a relay to show
 * failover. Only <atbus/atbus.h> is used: the demo doubles as proof that
 * the public API is enough to build on.
 */
#ifndef ATBUS_DEMO_H
#define ATBUS_DEMO_H

#include <atbus/atbus.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sizes of the demo's own tables; the mesh file is checked against them
 * when it is loaded. */
#define DEMO_NAME_MAX 64
#define DEMO_URL_MAX 160
#define DEMO_MAX_NODES 12
#define DEMO_MAX_UPS 4
#define DEMO_MAX_LISTEN 4
#define DEMO_MAX_DIAL 8

/* Timers of every node: quick enough for a demo that kills a relay. A
 * SIGKILLed peer on TCP is noticed at once (the kernel closes its
 * sockets); the peer timeout only matters for shm://, where it must stay
 * above the ring's 2 s stall recovery. */
#define DEMO_PING_MS 100
#define DEMO_PEER_TIMEOUT_MS 3000
#define DEMO_RECONNECT_MIN_MS 50
#define DEMO_RECONNECT_MAX_MS 300
/* How long messages to a node without a way there wait before they are
 * reported undelivered (atbus_node_config.peer_linger_ms). */
#define DEMO_LINGER_MS 3000

/* Streams of the demo protocol. Data and pings start with a header of
 * sequence number and run number, then a pattern derived from both, so
 * the receiver can tell loss, reordering and corruption apart. */
enum {
    DEMO_STREAM_DATA = 1, /* numbered messages, checked on arrival */
    DEMO_STREAM_CTRL = 2, /* "end <run>" and its answer "done ..." */
    DEMO_STREAM_PING = 3,
    DEMO_STREAM_PONG = 4, /* the ping's bytes, unchanged */
};

/* Bytes of sequence (8) and run (4) number at the start of a message. */
#define DEMO_HEADER 12
#define DEMO_MAX_MESSAGE 1024

/* ---- clock and message format (demo_proto.c) ---- */

/* demo_now_us reads CLOCK_MONOTONIC in microseconds. */
uint64_t demo_now_us(void);

/* demo_fill writes message seq of run into buf (len >= DEMO_HEADER). */
void demo_fill(uint8_t *buf, size_t len, uint32_t run, uint64_t seq);

/* demo_parse reads the header of a message into *run and *seq and checks
 * the pattern. Returns 1 if the message is intact, 0 if not. */
int demo_parse(const uint8_t *buf, size_t len, uint32_t *run, uint64_t *seq);

/* demo_copy copies src into dst[size], cut if needed; returns dst. */
char *demo_copy(char *dst, size_t size, const char *src);

/* demo_failf writes a printf-style reason into buf[size] and returns -1,
 * for "return demo_failf(...)" on a failure path. */
int demo_failf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- what a node is told to be (demo_node.c) ---- */

/* One route report: name hangs under ups (primary first). */
typedef struct demo_route {
    char name[DEMO_NAME_MAX];
    char ups[DEMO_MAX_UPS][DEMO_NAME_MAX];
    size_t nups;
} demo_route;

typedef struct demo_spec {
    char name[DEMO_NAME_MAX];
    char hostname[DEMO_NAME_MAX];
    char namespace_name[DEMO_NAME_MAX];
    int client; /* type "client": never dials */
    int relay;
    int prefer_target_relay;
    char ups[DEMO_MAX_UPS][DEMO_NAME_MAX];
    size_t nups;
    char listen[DEMO_MAX_LISTEN][DEMO_URL_MAX];
    size_t nlisten;
    char dial[DEMO_MAX_DIAL][DEMO_URL_MAX];
    size_t ndial;
    /* Peers the node has a connection with once the mesh is up. */
    char expect[DEMO_MAX_NODES][DEMO_NAME_MAX];
    size_t nexpect;
    /* The whole mesh's routes, as discovery reports them. */
    demo_route routes[DEMO_MAX_NODES];
    size_t nroutes;
} demo_spec;

/* What a receiver has seen of one source's current run. */
typedef struct demo_rx {
    char source[DEMO_NAME_MAX];
    uint32_t run;
    uint64_t next_seq; /* the sequence number expected next */
    uint64_t received;
    uint64_t damaged;      /* pattern broken */
    uint64_t out_of_order; /* a number other than the one expected */
    uint64_t last_at_us;
    uint64_t max_gap_us; /* longest pause between two arrivals */
} demo_rx;

/* A node of the mesh and what its callbacks saw. */
typedef struct demo_node {
    demo_spec spec;
    atbus_node *node;
    demo_rx rx[DEMO_MAX_NODES];
    /* As a sender: the receiver's answer to "end <run>". */
    uint32_t done_run;
    demo_rx done;
    /* The last intact pong. */
    uint32_t pong_run;
    uint64_t pong_seq;
    uint64_t pong_at_us;
    uint64_t pongs_bad;
    /* on_undelivered. */
    unsigned undelivered_calls;
    uint64_t undelivered;
    int undelivered_err;
    uint64_t undelivered_at_us;
    char undelivered_peer[DEMO_NAME_MAX];
    /* Messages it could not make sense of: an unknown stream, a malformed
     * control text, more sources than its table holds. */
    uint64_t unexpected;
    char error[512];
} demo_node;

/* The next hop as one node sees it, with the relation and the channel of
 * the connection to the hop's peer. */
typedef struct demo_hop {
    int rc; /* of atbus_node_next_hop */
    atbus_hop_kind kind;
    atbus_hop_state state;
    char peer[DEMO_NAME_MAX];
    int relation_rc;
    atbus_relation relation;
    char channel[8]; /* "-" when there is no connection */
} demo_hop;

/* demo_node_start creates, starts and connects a node from spec and
 * feeds it the routes. Returns an atbus code; dn->error says what failed.
 * The node joins the set demo_pump turns. */
int demo_node_start(demo_node *dn, const demo_spec *spec);

/* demo_node_free closes and frees the node; a zeroed dn is a no-op. */
void demo_node_free(demo_node *dn);

/* demo_node_ready returns 1 when every expected peer is registered;
 * otherwise 0 and the first missing one in missing. */
int demo_node_ready(demo_node *dn, char *missing, size_t size);

/* demo_node_rx returns what dn received from source (NULL: nothing). */
const demo_rx *demo_node_rx(const demo_node *dn, const char *source);

/* demo_node_hop fills *out with dn's next hop towards dst. */
void demo_node_hop(demo_node *dn, const char *dst, demo_hop *out);

/* demo_hop_format writes a hop as one line of words, and demo_hop_scan
 * reads it back (child processes answer with it); scan returns 0 on a
 * malformed line. */
void demo_hop_format(const demo_hop *h, char *buf, size_t size);
int demo_hop_scan(const char *line, demo_hop *h);

/* demo_pump turns the loops of every node of this process once, sleeping
 * at most wait_ms when none has anything to do. */
void demo_pump(int wait_ms);

/* demo_pump_for turns them for ms milliseconds. */
void demo_pump_for(int ms);

/* ---- child processes (demo_proc.c) ---- */

typedef struct demo_proc {
    char name[DEMO_NAME_MAX];
    pid_t pid;
    int cmd_fd; /* commands, one a line; EOF ends the child */
    int res_fd; /* answers, one a line */
    char buf[512];
    size_t used;
    int killed;
    int reaped;
    int wstatus;
} demo_proc;

/* demo_proc_spawn forks a child that waits for its node's spec. Call it
 * before this process creates any node: a child must inherit no node's
 * sockets, shared memory or threads. Returns 0 or -1 (errno set). */
int demo_proc_spawn(demo_proc *p, const char *name);

/* demo_proc_start sends the spec; the child creates its node. Returns 0
 * or -1 (the child is gone). */
int demo_proc_start(demo_proc *p, const demo_spec *spec);

/* demo_proc_ask sends one command line and waits up to timeout_ms for
 * the answer, turning this process's nodes meanwhile. Returns 0, or -1
 * with reply describing why there is none. */
int demo_proc_ask(demo_proc *p, const char *cmd, char *reply, size_t size,
                  int timeout_ms);

/* demo_proc_kill sends SIGKILL and reaps the child. */
void demo_proc_kill(demo_proc *p);

/* demo_proc_finish closes the command pipe and waits for the child to
 * exit (turning this process's nodes), killing it if it hangs. */
void demo_proc_finish(demo_proc *p);

/* demo_proc_describe says how a child ended. */
void demo_proc_describe(const demo_proc *p, char *buf, size_t size);

/* ---- the mesh: records, policy, plan (demo_mesh.c) ---- */

/* A direct link or a link to an upstream, as planned. */
typedef struct demo_link {
    int dialer;   /* member index */
    int listener; /* member index */
    int upstream; /* 0: a direct link; k > 0: the dialer's or the
                     listener's k-th upstream (1 = primary) */
    enum atbus_scheme scheme;
    char url[DEMO_URL_MAX];
} demo_link;

/* One member of the mesh: a node record and where it runs. */
typedef struct demo_member {
    char name[DEMO_NAME_MAX];
    const atbus_record *rec; /* borrowed from the registry */
    int relay;
    int client;
    int own_process; /* 0: a node in this process */
    demo_spec spec;
} demo_member;

/* What the plan says for an ordered pair of app nodes. */
typedef struct demo_pair {
    int src;
    int dst;
    atbus_route_decision decision; /* src -> dst */
    int link;        /* index into links of their direct link, or -1 */
    const char *why; /* why relayed: "policy", "no gateway", ... */
} demo_pair;

#define DEMO_MAX_LINKS 32
#define DEMO_MAX_PAIRS (DEMO_MAX_NODES * DEMO_MAX_NODES)

typedef struct demo_mesh {
    atbus_registry *reg;
    atbus_route_policy *policy;
    /* The routes of the records, for the relations the nodes must agree
     * with. */
    atbus_route_registry *routes;
    demo_member m[DEMO_MAX_NODES];
    size_t n;
    demo_link links[DEMO_MAX_LINKS];
    size_t nlinks;
    demo_pair pairs[DEMO_MAX_PAIRS];
    size_t npairs;
    char error[300];
} demo_mesh;

/* The mesh file and the policy, built in. */
extern const char *const demo_mesh_yaml;
extern const size_t demo_mesh_yaml_len;
extern const char demo_policy_text[];

/* demo_mesh_load loads the mesh file and the policy and lists the node
 * records (relays first). Returns 0 or -1 (m->error). */
int demo_mesh_load(demo_mesh *m);

/* demo_mesh_find returns the member index of name, or -1. */
int demo_mesh_find(const demo_mesh *m, const char *name);

/* demo_mesh_place records each member's process (pid) and gives its
 * gateway addresses real ports and names, publishing the changed records
 * (a version up). pids[i] is member i's process. Returns 0 or -1. */
int demo_mesh_place(demo_mesh *m, const pid_t *pids);

/* demo_mesh_plan plans every link and each member's spec. Returns 0 or
 * -1 (m->error). */
int demo_mesh_plan(demo_mesh *m);

/* demo_mesh_attr is the policy's attribute getter over atbus_record. */
const char *demo_mesh_attr(const void *record, const char *key, void *arg);

/* demo_mesh_label returns a label of a member's record, or "-". */
const char *demo_mesh_label(const demo_mesh *m, int i, const char *key);

/* demo_scheme_name returns "mem", "shm", ... for a scheme. */
const char *demo_scheme_name(enum atbus_scheme scheme);

/* demo_mesh_free releases what demo_mesh_load made. */
void demo_mesh_free(demo_mesh *m);

/* ---- traffic (demo_traffic.c) ---- */

/* A bounded stream of numbered messages from a node of this process. */
typedef struct demo_flow {
    demo_node *src;
    const char *dst;
    uint32_t run;
    size_t size;
    uint64_t count;    /* messages to send */
    uint64_t accepted; /* sends that returned ATBUS_OK */
    uint64_t refused;  /* sends refused other than by a full window */
    int last_refusal;  /* its code */
    int give_up;       /* stop at the first refusal */
    uint64_t first_us; /* when the first message was accepted */
} demo_flow;

/* demo_flow_init prepares a flow of count messages of size bytes with a
 * fresh run number. */
void demo_flow_init(demo_flow *f, demo_node *src, const char *dst, size_t size,
                    uint64_t count);

/* demo_flow_step sends until the window is full, the flow is done, or
 * batch messages went out. Returns 1 while the flow has more to send. */
int demo_flow_step(demo_flow *f, uint64_t batch);

/* demo_flow_unacked returns the flow's messages not yet acknowledged
 * (UINT64_MAX when the stream is unknown). */
uint64_t demo_flow_unacked(const demo_flow *f);

/* Results of one measured pair. */
typedef struct demo_measure {
    uint64_t messages;
    double seconds;
    double msgs_s;
    double mb_s;
    double rtt_p50_us;
    double rtt_p99_us;
    int pings;
    demo_rx seen; /* the receiver's count */
    char error[200];
} demo_measure;

/* demo_measure_pair sends count messages of size bytes from src to dst
 * and then pings round trips, one at a time, each answered within a
 * second; the receiver reports what it saw. Returns 0 when every message
 * arrived once, intact and in order, else -1 (out->error). */
int demo_measure_pair(demo_node *src, const char *dst, uint64_t count,
                      size_t size, int pings, uint64_t deadline_us,
                      demo_measure *out);

/* demo_rx_check returns 1 when rx shows exactly count messages of run,
 * in order and intact. */
int demo_rx_check(const demo_rx *rx, uint32_t run, uint64_t count);

/* ---- one run of the demo (demo_run.c) ---- */

/* Time budgets; generous, so that a sanitizer build still fits. */
#define DEMO_MESH_UP_MS 20000
#define DEMO_STEP_BUDGET_US (60u * 1000000u)
#define DEMO_ASK_MS 5000
/* Payload of the numbered messages. */
#define DEMO_MESSAGE_SIZE 256

/* Everything one run holds: the mesh, the processes and nodes, and the
 * checks made so far. */
typedef struct demo_run {
    demo_mesh mesh;
    demo_proc procs[DEMO_MAX_NODES]; /* members in a process of their own */
    demo_node nodes[DEMO_MAX_NODES]; /* members in this process */
    /* A spare process that takes over member second_of once its own
     * process was killed (-1: none). */
    demo_proc spare;
    int second_of;
    unsigned divisor; /* --quick: counts divided by this */
    unsigned checks;
    unsigned failed;
    char failures[32][256]; /* the first ones failed */
    size_t nfailures;
} demo_run;

/* demo_check counts a check and records it as failed when ok is 0 (fmt
 * says what failed). Returns ok. */
int demo_check(demo_run *r, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* demo_run_node returns the node of member name when it runs in this
 * process, else NULL. */
demo_node *demo_run_node(demo_run *r, const char *name);

/* demo_run_proc returns the live process of member i, NULL for a member
 * of this process. */
demo_proc *demo_run_proc(demo_run *r, int i);

/* demo_run_hop asks member i, wherever it runs, for its next hop towards
 * dst; a member that does not answer gives rc ATBUS_ECLOSED. */
void demo_run_hop(demo_run *r, int i, const char *dst, demo_hop *h);

/* demo_hop_text writes "KIND peer STATE", or "STATE (error)". */
void demo_hop_text(const demo_hop *h, char *buf, size_t size);

/* demo_run_trace follows next hops from member src to dst, each asked of
 * the node the message has reached, and writes the relays passed as
 * "a > b" ("direct" when none). Returns the number of relays, or -1 when
 * a hop leads nowhere (path says where). */
int demo_run_trace(demo_run *r, int src, const char *dst, char *path,
                   size_t size);

/* demo_run_ready turns the mesh until every member has all its links, or
 * ms pass. Returns 0, or -1 with why saying what is missing. */
int demo_run_ready(demo_run *r, int ms, char *why, size_t size);

/* demo_run_forwarded returns how many frames relay has forwarded (0 when
 * it cannot say). */
uint64_t demo_run_forwarded(demo_run *r, const char *relay);

/* demo_run_unexpected returns the messages member i could not make sense
 * of (demo_node.unexpected), or UINT64_MAX when it cannot say. */
uint64_t demo_run_unexpected(demo_run *r, int i);

/* demo_show_failover runs and prints the failover section
 * (demo_failover.c). */
void demo_show_failover(demo_run *r);

#endif
