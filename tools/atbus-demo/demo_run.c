/*
 * What the sections of one run share: the checks, and questions to a
 * member of the mesh wherever it runs (a node of this process is asked
 * directly, a child over its pipe).
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
demo_check(demo_run *r, int ok, const char *fmt, ...)
{
    r->checks++;
    r->failed += !ok;
    if (ok || r->nfailures == sizeof(r->failures) / sizeof(r->failures[0])) {
        return ok;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failures[r->nfailures++], sizeof(r->failures[0]), fmt, ap);
    va_end(ap);
    return ok;
}

demo_node *
demo_run_node(demo_run *r, const char *name)
{
    int i = demo_mesh_find(&r->mesh, name);
    if (i < 0 || r->mesh.m[i].own_process || r->nodes[i].node == NULL) {
        return NULL;
    }
    return &r->nodes[i];
}

demo_proc *
demo_run_proc(demo_run *r, int i)
{
    if (!r->mesh.m[i].own_process) {
        return NULL;
    }
    if (i == r->second_of && r->procs[i].killed && r->spare.pid > 0) {
        return &r->spare;
    }
    return &r->procs[i];
}

void
demo_run_hop(demo_run *r, int i, const char *dst, demo_hop *h)
{
    demo_proc *p = demo_run_proc(r, i);
    if (p == NULL) {
        demo_node_hop(&r->nodes[i], dst, h);
        return;
    }
    char cmd[DEMO_NAME_MAX + 8];
    char reply[256];
    snprintf(cmd, sizeof(cmd), "hop %s", dst);
    if (demo_proc_ask(p, cmd, reply, sizeof(reply), DEMO_ASK_MS) != 0 ||
        !demo_hop_scan(reply, h)) {
        memset(h, 0, sizeof(*h));
        h->rc = ATBUS_ECLOSED;
        demo_copy(h->peer, sizeof(h->peer), "-");
        demo_copy(h->channel, sizeof(h->channel), "-");
    }
}

void
demo_hop_text(const demo_hop *h, char *buf, size_t size)
{
    if (h->rc != ATBUS_OK) {
        snprintf(buf, size, "%s (%s)", atbus_hop_state_name(h->state),
                 atbus_err_name(h->rc));
        return;
    }
    snprintf(buf, size, "%s %s %s", atbus_hop_kind_name(h->kind), h->peer,
             atbus_hop_state_name(h->state));
}

int
demo_run_trace(demo_run *r, int src, const char *dst, char *path, size_t size)
{
    path[0] = '\0';
    int cur = src;
    /* A path longer than the mesh has nodes is a loop. */
    for (int relays = 0; relays <= (int)r->mesh.n; relays++) {
        demo_hop h;
        demo_run_hop(r, cur, dst, &h);
        size_t used = strlen(path);
        if (h.rc != ATBUS_OK) {
            snprintf(path + used, size - used, "%s%s: %s",
                     relays > 0 ? " > " : "", r->mesh.m[cur].name,
                     atbus_err_name(h.rc));
            return -1;
        }
        if (strcmp(h.peer, dst) == 0) {
            if (relays == 0) {
                snprintf(path, size, "direct");
            }
            return relays;
        }
        snprintf(path + used, size - used, "%s%s", relays > 0 ? " > " : "",
                 h.peer);
        cur = demo_mesh_find(&r->mesh, h.peer);
        if (cur < 0) {
            return -1;
        }
    }
    return -1;
}

/* member_ready returns 1 when member i has all its links; why says what
 * is missing otherwise. */
static int
member_ready(demo_run *r, int i, char *why, size_t size)
{
    const char *name = r->mesh.m[i].name;
    demo_proc *p = demo_run_proc(r, i);
    if (p == NULL) {
        char missing[DEMO_NAME_MAX] = "";
        if (demo_node_ready(&r->nodes[i], missing, sizeof(missing))) {
            return 1;
        }
        snprintf(why, size, "%s has no connection to %s yet", name, missing);
        return 0;
    }
    char reply[256];
    if (demo_proc_ask(p, "ready", reply, sizeof(reply), DEMO_ASK_MS) != 0) {
        snprintf(why, size, "%.200s", reply);
        return 0;
    }
    if (strncmp(reply, "ready 1", 7) == 0) {
        return 1;
    }
    if (strncmp(reply, "ready 0 ", 8) == 0) {
        snprintf(why, size, "%s has no connection to %.64s yet", name,
                 reply + 8);
    } else {
        snprintf(why, size, "%s: %.180s", name, reply);
    }
    return 0;
}

int
demo_run_ready(demo_run *r, int ms, char *why, size_t size)
{
    uint64_t end = demo_now_us() + (uint64_t)ms * 1000;
    for (;;) {
        size_t ready = 0;
        while (ready < r->mesh.n && member_ready(r, (int)ready, why, size)) {
            ready++;
        }
        if (ready == r->mesh.n) {
            return 0;
        }
        if (demo_now_us() >= end) {
            return -1;
        }
        demo_pump_for(10);
    }
}

/* ask_stats asks member i's process for its counters: forwarded frames
 * and unexpected messages. Returns 0 or -1. */
static int
ask_stats(demo_run *r, int i, uint64_t *forwarded, uint64_t *unexpected)
{
    demo_proc *p = demo_run_proc(r, i);
    char reply[160];
    uint64_t skip[3];
    if (p == NULL ||
        demo_proc_ask(p, "stats", reply, sizeof(reply), DEMO_ASK_MS) != 0 ||
        sscanf(reply,
               "stats %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
               forwarded, &skip[0], &skip[1], &skip[2], unexpected) != 5) {
        return -1;
    }
    return 0;
}

uint64_t
demo_run_forwarded(demo_run *r, const char *relay)
{
    int i = demo_mesh_find(&r->mesh, relay);
    uint64_t forwarded;
    uint64_t unexpected;
    if (i < 0 || ask_stats(r, i, &forwarded, &unexpected) != 0) {
        return 0;
    }
    return forwarded;
}

uint64_t
demo_run_unexpected(demo_run *r, int i)
{
    if (!r->mesh.m[i].own_process) {
        return r->nodes[i].node != NULL ? r->nodes[i].unexpected : UINT64_MAX;
    }
    uint64_t forwarded;
    uint64_t unexpected;
    if (ask_stats(r, i, &forwarded, &unexpected) != 0) {
        return UINT64_MAX;
    }
    return unexpected;
}
