/*
 * atbus-demo: a local mesh on the embedded discovery, no outside service.
 *
 * It loads the mesh file into an atbus_registry, places every node (this
 * process, or a child process of its own), plans each connection from the
 * records and the direct-connect policy, starts the nodes and feeds them
 * the routes. Then it shows, one section each:
 *
 *   pairs     what each app node's view says of every other: relation,
 *             the policy's decision, next hop, channel, relays on the way;
 *   traffic   checked streams and round trips for each kind of pair;
 *   failover  a relay killed with SIGKILL while two streams cross it
 *             (demo_failover.c).
 *
 * Every check is counted; the exit status is 0 only when all passed, and
 * each failed one is listed at the end. docs/demo.md explains the output.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The relay the failover section kills: it gets a spare process to come
 * back in. */
#define KILLED_RELAY "relay-1a.ns1"

/* The pairs measured, one of each kind the plan makes. */
static const char *const measured[][2] = {
    {"app-1.ns1", "app-2.ns1"},
    {"app-1.ns1", "app-3.ns1"},
    {"app-1.ns1", "app-1.ns2"},
    {"app-1.ns1", "console-1.ns1"},
};

/* Large enough that start-up costs vanish in the figures, small enough
 * that the whole demo takes seconds. --quick divides the counts by
 * QUICK_DIVISOR (sanitizer builds, CI). */
#define MESSAGES 500000
#define PINGS 1000
#define QUICK_DIVISOR 10

static demo_run run;

static double
seconds_since(uint64_t start_us)
{
    return (double)(demo_now_us() - start_us) / 1e6;
}

/* ---- setting up ---- */

static void
print_intro(void)
{
    const demo_mesh *m = &run.mesh;
    printf("atbus-demo: a local mesh on the embedded discovery, no outside "
           "service\n(libatbus %s, pid %d)\n\n",
           atbus_version(), (int)getpid());
    printf("mesh file examples/discovery/local_mesh.yaml (built in): %zu "
           "nodes, %zu routes\ndirect-connect policy "
           "(atbus_route_policy_parse):\n",
           m->n, atbus_registry_count(m->reg, ATBUS_REGISTRY_ROUTES));
    const char *line = demo_policy_text;
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
        printf("  %.*s\n", len, line);
        line += len + (nl != NULL);
    }
}

static void
print_nodes(void)
{
    const demo_mesh *m = &run.mesh;
    printf("\nnodes (process \"demo\": this one; the others each run in a "
           "child process)\n");
    printf("  %-15s %-8s %-6s %-6s %-9s %-26s %s\n", "name", "ns", "region",
           "kind", "process", "upstreams", "listens on");
    for (size_t i = 0; i < m->n; i++) {
        const demo_member *mb = &m->m[i];
        char where[24] = "demo";
        if (mb->own_process) {
            snprintf(where, sizeof(where), "%d", (int)run.procs[i].pid);
        }
        char ups[DEMO_MAX_UPS * (DEMO_NAME_MAX + 2)] = "-";
        size_t used = 0;
        for (size_t k = 0; k < mb->spec.nups; k++) {
            used += (size_t)snprintf(ups + used, sizeof(ups) - used, "%s%s",
                                     k == 0 ? "" : ", ", mb->spec.ups[k]);
        }
        printf("  %-15s %-8s %-6s %-6s %-9s %-26s %s\n", mb->name,
               mb->rec->metadata.namespace_name,
               demo_mesh_label(m, (int)i, "area.region"),
               mb->client ? "client" : mb->rec->metadata.kind, where, ups,
               mb->spec.nlisten > 0 ? mb->spec.listen[0] : "-");
        for (size_t k = 1; k < mb->spec.nlisten; k++) {
            printf("  %-75s %s\n", "", mb->spec.listen[k]);
        }
    }
}

static void
print_links(void)
{
    const demo_mesh *m = &run.mesh;
    printf("\nlinks: each node dials its upstreams (a client's upstream "
           "dials it); app nodes\ndial each other where the policy allows; "
           "atbus_select_gateway picks the address\n");
    for (size_t i = 0; i < m->nlinks; i++) {
        const demo_link *k = &m->links[i];
        const char *what = "direct";
        if (k->upstream > 0) {
            int client = m->m[k->listener].client;
            what = k->upstream == 1
                       ? (client ? "to the client under it" : "to its upstream")
                       : (client ? "to the client, as backup"
                                 : "to its backup upstream");
        }
        printf("  %-15s -> %-15s %-23s %s\n", m->m[k->dialer].name,
               m->m[k->listener].name, what, k->url);
    }
}

/* spawn_children forks a process for every member that runs in its own,
 * and a spare for the relay that the failover section kills. */
static int
spawn_children(pid_t *pids)
{
    demo_mesh *m = &run.mesh;
    for (size_t i = 0; i < m->n; i++) {
        pids[i] = getpid();
        if (!m->m[i].own_process) {
            continue;
        }
        if (demo_proc_spawn(&run.procs[i], m->m[i].name) != 0) {
            fprintf(stderr, "atbus-demo: cannot start %s: %s\n", m->m[i].name,
                    strerror(errno));
            return -1;
        }
        pids[i] = run.procs[i].pid;
    }
    int k = demo_mesh_find(m, KILLED_RELAY);
    if (k < 0 || !m->m[k].own_process) {
        fprintf(stderr,
                "atbus-demo: the mesh file has no %s in a process of its "
                "own\n",
                KILLED_RELAY);
        return -1;
    }
    if (demo_proc_spawn(&run.spare, KILLED_RELAY) != 0) {
        fprintf(stderr, "atbus-demo: cannot start a spare process: %s\n",
                strerror(errno));
        return -1;
    }
    run.second_of = k;
    return 0;
}

static int
start_mesh(void)
{
    demo_mesh *m = &run.mesh;
    uint64_t start = demo_now_us();
    for (size_t i = 0; i < m->n; i++) {
        int ok =
            m->m[i].own_process
                ? demo_proc_start(&run.procs[i], &m->m[i].spec) == 0
                : demo_node_start(&run.nodes[i], &m->m[i].spec) == ATBUS_OK;
        if (!demo_check(&run, ok, "setup: %s: %s", m->m[i].name,
                        m->m[i].own_process ? "its process is gone"
                                            : run.nodes[i].error)) {
            return -1;
        }
    }
    char why[256] = "";
    if (!demo_check(
            &run, demo_run_ready(&run, DEMO_MESH_UP_MS, why, sizeof(why)) == 0,
            "setup: the mesh did not come up in %d s: %s",
            DEMO_MESH_UP_MS / 1000, why)) {
        return -1;
    }
    printf("\nmesh up in %.2f s: %zu nodes, %zu links; every node was fed "
           "the %zu routes\n(atbus_node_route_set)\n",
           seconds_since(start), m->n, m->nlinks,
           atbus_registry_count(m->reg, ATBUS_REGISTRY_ROUTES));
    return 0;
}

/* ---- pairs ---- */

/* Why a pair is relayed when its policy line alone would not say. */
static const char *const notes[] = {
    "allowed this way, but denied the other way, and a client never dials",
    "no gateway of the destination accepts the source",
};

static void
show_pair(const demo_pair *p, int *noted)
{
    demo_mesh *m = &run.mesh;
    const char *src = m->m[p->src].name;
    const char *dst = m->m[p->dst].name;
    demo_hop h;
    demo_run_hop(&run, p->src, dst, &h);
    atbus_relation want = 0;
    atbus_route_registry_relation(m->routes, src, dst, &want);
    char path[256];
    int relays = demo_run_trace(&run, p->src, dst, path, sizeof(path));
    char hop[96];
    demo_hop_text(&h, hop, sizeof(hop));
    const demo_link *link = p->link >= 0 ? &m->links[p->link] : NULL;
    char plan[16] = "direct";
    if (link == NULL) {
        int note = -1;
        if (strcmp(p->why, "denied") == 0 &&
            p->decision.action == ATBUS_ROUTE_DIRECT) {
            note = 0;
        } else if (strcmp(p->why, "no gateway") == 0) {
            note = 1;
        }
        snprintf(plan, sizeof(plan), "relays%s",
                 note == 0   ? " (a)"
                 : note == 1 ? " (b)"
                             : "");
        if (note >= 0) {
            noted[note] = 1;
        }
    }
    char relays_text[12] = "-";
    if (relays >= 0) {
        snprintf(relays_text, sizeof(relays_text), "%d", relays);
    }
    printf("  %-13s %-13s %-20s %-9s %-10s %-36s %-7s %s\n", src, dst,
           h.relation_rc == ATBUS_OK ? atbus_relation_name(h.relation)
                                     : atbus_err_name(h.relation_rc),
           atbus_route_action_name(p->decision.action), plan, hop, h.channel,
           relays_text);

    demo_check(&run, h.relation_rc == ATBUS_OK && h.relation == want,
               "pairs: %s -> %s: the node says %s, the records %s", src, dst,
               atbus_relation_name(h.relation), atbus_relation_name(want));
    if (!demo_check(
            &run, h.rc == ATBUS_OK && h.state == ATBUS_HOP_READY && relays >= 0,
            "pairs: %s -> %s: next hop %s, path %s", src, dst, hop, path)) {
        return;
    }
    if (link != NULL) {
        const char *scheme = demo_scheme_name(link->scheme);
        demo_check(&run,
                   h.kind == ATBUS_HOP_DIRECT && strcmp(h.peer, dst) == 0 &&
                       strcmp(h.channel, scheme) == 0,
                   "pairs: %s -> %s: planned direct over %s, next hop %s over "
                   "%s",
                   src, dst, scheme, hop, h.channel);
    } else {
        demo_check(&run, h.kind != ATBUS_HOP_DIRECT && relays >= 1,
                   "pairs: %s -> %s: planned through relays, next hop %s", src,
                   dst, hop);
    }
}

static void
show_pairs(void)
{
    const demo_mesh *m = &run.mesh;
    printf("\npairs, as the source sees them: atbus_node_relation, the "
           "policy's decision, the\nlink planned, atbus_node_next_hop, the "
           "channel to the next hop (atbus_node_peer),\nand the relays on the "
           "way (each node's next hop, followed to the end)\n");
    printf("  %-13s %-13s %-20s %-9s %-10s %-36s %-7s %s\n", "source",
           "destination", "relation", "policy", "link", "next hop", "channel",
           "relays");
    int noted[2] = {0, 0};
    for (size_t i = 0; i < m->npairs; i++) {
        if (i > 0 && m->pairs[i].src != m->pairs[i - 1].src) {
            printf("\n");
        }
        show_pair(&m->pairs[i], noted);
    }
    for (size_t i = 0; i < 2; i++) {
        if (noted[i]) {
            printf("  (%c) %s\n", (int)('a' + i), notes[i]);
        }
    }
}

/* ---- traffic ---- */

static void
show_traffic(void)
{
    demo_mesh *m = &run.mesh;
    uint64_t count = MESSAGES / run.divisor;
    int pings = (int)(PINGS / run.divisor);
    printf("\ntraffic: per pair %" PRIu64 " messages of %d B as fast as "
           "atbus_node_send takes them,\nthen %d round trips of 64 B one at a "
           "time; the receiver checks every message's\nnumber and bytes: in "
           "order, exactly once, intact (MB = 10^6 B of payload)\n",
           count, DEMO_MESSAGE_SIZE, pings);
    for (size_t i = 0; i < sizeof(measured) / sizeof(measured[0]); i++) {
        const char *src = measured[i][0];
        const char *dst = measured[i][1];
        int s = demo_mesh_find(m, src);
        demo_node *node = demo_run_node(&run, src);
        if (!demo_check(&run,
                        s >= 0 && node != NULL && demo_mesh_find(m, dst) >= 0,
                        "traffic: %s -> %s: not both in the mesh file, or %s "
                        "not in this process",
                        src, dst, src)) {
            continue;
        }
        char path[256];
        int relays = demo_run_trace(&run, s, dst, path, sizeof(path));
        demo_hop h;
        demo_run_hop(&run, s, dst, &h);
        if (relays == 0) {
            printf("\n  %s -> %s, direct over %s\n", src, dst, h.channel);
        } else {
            printf("\n  %s -> %s, through %d relay%s over %s: %s\n", src, dst,
                   relays, relays == 1 ? "" : "s", h.channel, path);
        }
        fflush(stdout);
        demo_measure r;
        int rc = demo_measure_pair(node, dst, count, DEMO_MESSAGE_SIZE, pings,
                                   demo_now_us() + DEMO_STEP_BUDGET_US, &r);
        if (!demo_check(&run, rc == 0, "traffic: %s -> %s: %s", src, dst,
                        r.error)) {
            printf("    FAILED: %s\n", r.error);
            continue;
        }
        printf("    %.0f msgs/s, %.1f MB/s; rtt p50 %.0f us, p99 %.0f us; "
               "%" PRIu64 " received in order, none damaged\n",
               r.msgs_s, r.mb_s, r.rtt_p50_us, r.rtt_p99_us, r.seen.received);
    }
}

/* ---- main ---- */

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: atbus-demo [--quick]\n"
            "Runs a local mesh on the embedded discovery: relays and app "
            "nodes of two\nregions, planned from "
            "examples/discovery/local_mesh.yaml (built in). Prints\neach "
            "pair's relation, next hop and channel, traffic figures, and "
            "what\nhappens when a relay is killed. Exits 0 only when every "
            "check passed.\n"
            "  --quick  a tenth of the messages (for sanitizer builds)\n");
}

/* finish_all frees this process's nodes and ends the children; a child
 * that was not killed must have exited cleanly. */
static void
finish_all(void)
{
    demo_mesh *m = &run.mesh;
    for (size_t i = 0; i < m->n; i++) {
        if (run.nodes[i].node != NULL) {
            demo_node_free(&run.nodes[i]);
        }
    }
    demo_proc *all[DEMO_MAX_NODES + 1];
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (run.procs[i].pid > 0) {
            all[n++] = &run.procs[i];
        }
    }
    if (run.spare.pid > 0) {
        all[n++] = &run.spare;
    }
    for (size_t i = 0; i < n; i++) {
        demo_proc_finish(all[i]);
        char how[160];
        demo_proc_describe(all[i], how, sizeof(how));
        demo_check(&run,
                   all[i]->killed || (WIFEXITED(all[i]->wstatus) &&
                                      WEXITSTATUS(all[i]->wstatus) == 0),
                   "exit: %s", how);
    }
}

int
main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--quick") != 0)) {
        int help = strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0;
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    run.divisor = argc == 2 ? QUICK_DIVISOR : 1;
    run.second_of = -1;
    uint64_t start = demo_now_us();
    /* A killed child turns writes to its pipe into EPIPE, not a signal
     * that would end the demo. */
    signal(SIGPIPE, SIG_IGN);
    if (demo_mesh_load(&run.mesh) != 0) {
        fprintf(stderr, "atbus-demo: FAILED: %s\n", run.mesh.error);
        demo_mesh_free(&run.mesh);
        return 1;
    }
    print_intro();
    pid_t pids[DEMO_MAX_NODES];
    if (spawn_children(pids) != 0 || demo_mesh_place(&run.mesh, pids) != 0 ||
        demo_mesh_plan(&run.mesh) != 0) {
        if (run.mesh.error[0] != '\0') {
            fprintf(stderr, "atbus-demo: FAILED: %s\n", run.mesh.error);
        }
        finish_all();
        demo_mesh_free(&run.mesh);
        return 1;
    }
    print_nodes();
    print_links();
    if (start_mesh() == 0) {
        show_pairs();
        show_traffic();
        demo_show_failover(&run);
        for (size_t i = 0; i < run.mesh.n; i++) {
            uint64_t n = demo_run_unexpected(&run, (int)i);
            demo_check(&run, n == 0,
                       "%s received %" PRIu64 " messages it could not make "
                       "sense of (or did not answer)",
                       run.mesh.m[i].name, n);
        }
    }
    finish_all();
    demo_mesh_free(&run.mesh);
    double secs = seconds_since(start);
    fflush(stdout);
    if (run.nfailures != 0) {
        fprintf(stderr,
                "\natbus-demo: FAILED, %u of %u checks, after %.1f s:\n",
                run.failed, run.checks, secs);
        for (size_t i = 0; i < run.nfailures; i++) {
            fprintf(stderr, "  FAILED: %s\n", run.failures[i]);
        }
        return 1;
    }
    printf("\natbus-demo: ok, all %u checks passed in %.1f s\n", run.checks,
           secs);
    return 0;
}
