/*
 * Failover: a relay is killed with SIGKILL while two streams cross it.
 * One comes from an app that hangs under it with a backup upstream; the
 * library moves that stream to the backup and the receiver must see every
 * message once, in order. The other comes from an app with no backup;
 * its messages wait in the stream until peer_linger_ms passes, and then
 * the library reports them through on_undelivered. The receiver's count
 * and the report together must account for every message. Finally the
 * relay is started again and both apps must reach the far end through it.
 *
 * The roles are names of the mesh file.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define KILLED_RELAY "relay-1a.ns1"
#define BACKUP_RELAY "relay-1b.ns1"
#define WITH_BACKUP "app-1.ns1"
#define NO_BACKUP "app-2.ns1"
#define FAR_APP "app-1.ns2"

/* The stream that moves to the backup. */
#define FAILOVER_MESSAGES 100000
/* The stream of the app without a backup fits its send window, so every
 * send is accepted and what happens to the messages is the library's. */
#define ALONE_MESSAGES 10000
/* Checked messages from each app once the relay is back. */
#define HEAL_MESSAGES 10000
/* When the apps are looked at after the kill. */
#define LOOK_AFTER_US 300000u
/* Late arrivals are counted for this long after both streams end. */
#define SETTLE_US 200000u
/* A refused send is tried again after this pause. */
#define RETRY_US 10000u

typedef struct failover {
    demo_run *run;
    demo_node *with;
    demo_node *without;
    demo_flow f1; /* WITH_BACKUP -> FAR_APP */
    demo_flow f2; /* NO_BACKUP -> FAR_APP */
    demo_hop with_before, without_before;
    demo_hop with_after, without_after;
    uint64_t kill_us;
    uint64_t backup_before; /* frames BACKUP_RELAY had forwarded */
    uint64_t backup_after;
    int finished;
} failover;

/* flow_busy: more to send, or sent and not all acknowledged. A stream
 * the node no longer knows has nothing left to wait for. */
static int
flow_busy(const demo_flow *f)
{
    uint64_t unacked = demo_flow_unacked(f);
    return f->accepted < f->count || (unacked != 0 && unacked != UINT64_MAX);
}

/* receiver_view returns what FAR_APP saw of source's run. */
static demo_rx
receiver_view(demo_run *r, const char *source, uint32_t run)
{
    demo_rx none;
    memset(&none, 0, sizeof(none));
    demo_node *far = demo_run_node(r, FAR_APP);
    const demo_rx *rx = far != NULL ? demo_node_rx(far, source) : NULL;
    return rx != NULL && rx->run == run ? *rx : none;
}

/* print_hops prints an app's next hop before the kill and after it. */
static void
print_hops(const demo_hop *before, const demo_hop *after)
{
    char text[96];
    demo_hop_text(before, text, sizeof(text));
    printf("    next hop before the kill  %s\n", text);
    demo_hop_text(after, text, sizeof(text));
    printf("    next hop %.1f s after      %s\n", LOOK_AFTER_US / 1e6, text);
}

/* failover_kill looks at both apps, kills the relay and notes when. */
static void
failover_kill(failover *fo)
{
    demo_run *r = fo->run;
    demo_run_hop(r, demo_mesh_find(&r->mesh, WITH_BACKUP), FAR_APP,
                 &fo->with_before);
    demo_run_hop(r, demo_mesh_find(&r->mesh, NO_BACKUP), FAR_APP,
                 &fo->without_before);
    fo->backup_before = demo_run_forwarded(r, BACKUP_RELAY);
    fo->kill_us = demo_now_us();
    demo_proc_kill(demo_run_proc(r, demo_mesh_find(&r->mesh, KILLED_RELAY)));
}

/* failover_stream sends both streams and kills the relay when a third of
 * the first is sent; the second keeps pace with the first, so both are
 * under way then. It ends when the first stream is acknowledged and the
 * second is acknowledged or given up by the library. */
static void
failover_stream(failover *fo)
{
    demo_run *r = fo->run;
    uint64_t deadline = demo_now_us() + DEMO_STEP_BUDGET_US;
    uint64_t retry_at = 0;
    uint64_t look_at = 0;
    uint64_t settle = 0;
    while (demo_now_us() < deadline) {
        uint64_t now = demo_now_us();
        if (fo->f1.accepted < fo->f1.count && now >= retry_at) {
            uint64_t refused = fo->f1.refused;
            demo_flow_step(&fo->f1, 64);
            if (fo->f1.refused != refused) {
                retry_at = now + RETRY_US;
            }
        }
        if (fo->f2.accepted < fo->f2.count &&
            fo->f2.accepted * fo->f1.count <= fo->f1.accepted * fo->f2.count) {
            demo_flow_step(&fo->f2, 16);
        }
        if (fo->kill_us == 0 && fo->f1.accepted >= fo->f1.count / 3) {
            failover_kill(fo);
            look_at = fo->kill_us + LOOK_AFTER_US;
        }
        if (look_at != 0 && demo_now_us() >= look_at) {
            demo_run_hop(r, demo_mesh_find(&r->mesh, WITH_BACKUP), FAR_APP,
                         &fo->with_after);
            demo_run_hop(r, demo_mesh_find(&r->mesh, NO_BACKUP), FAR_APP,
                         &fo->without_after);
            look_at = 0;
        }
        /* The receiver's count too: messages taken off the dead path wait
         * to be sent again without counting as unacknowledged. */
        int done = fo->kill_us != 0 && look_at == 0 && !flow_busy(&fo->f1) &&
                   receiver_view(r, WITH_BACKUP, fo->f1.run).next_seq >=
                       fo->f1.count &&
                   (!flow_busy(&fo->f2) || fo->without->undelivered_calls != 0);
        if (done && settle == 0) {
            settle = demo_now_us() + SETTLE_US;
        }
        if (settle != 0 && demo_now_us() >= settle) {
            fo->finished = 1;
            break;
        }
        demo_pump(fo->f1.accepted < fo->f1.count ? 0 : 5);
    }
    fo->backup_after = demo_run_forwarded(r, BACKUP_RELAY);
}

static void
report_backup(failover *fo)
{
    demo_run *r = fo->run;
    demo_rx rx = receiver_view(r, WITH_BACKUP, fo->f1.run);
    int ok = demo_rx_check(&rx, fo->f1.run, fo->f1.count);
    printf("\n  %s, upstreams %s then %s:\n", WITH_BACKUP, KILLED_RELAY,
           BACKUP_RELAY);
    print_hops(&fo->with_before, &fo->with_after);
    printf("    %" PRIu64 " sent, %" PRIu64 " received in order, %" PRIu64
           " out of order, %" PRIu64 " damaged: %s\n",
           fo->f1.count, rx.next_seq, rx.out_of_order, rx.damaged,
           ok ? "none lost" : "FAILED");
    printf("    longest pause at the receiver %.0f ms; %s forwarded %" PRIu64
           " frames meanwhile\n",
           (double)rx.max_gap_us / 1000.0, BACKUP_RELAY,
           fo->backup_after - fo->backup_before);
    demo_check(r, ok,
               "failover: with a backup: %" PRIu64 " sent, the receiver saw "
               "%" PRIu64 " (next %" PRIu64 "), %" PRIu64 " out of order, "
               "%" PRIu64 " damaged",
               fo->f1.count, rx.received, rx.next_seq, rx.out_of_order,
               rx.damaged);
    demo_check(r,
               fo->with_before.rc == ATBUS_OK &&
                   strcmp(fo->with_before.peer, KILLED_RELAY) == 0,
               "failover: %s did not go through %s before the kill",
               WITH_BACKUP, KILLED_RELAY);
    demo_check(r,
               fo->with_after.rc == ATBUS_OK &&
                   strcmp(fo->with_after.peer, BACKUP_RELAY) == 0 &&
                   fo->with_after.state == ATBUS_HOP_READY,
               "failover: %s did not move to %s", WITH_BACKUP, BACKUP_RELAY);
    demo_check(r, fo->backup_after > fo->backup_before,
               "failover: %s forwarded nothing", BACKUP_RELAY);
    demo_check(r, fo->with->undelivered == 0,
               "failover: %s: %" PRIu64 " messages reported undelivered",
               WITH_BACKUP, fo->with->undelivered);
}

static void
report_alone(failover *fo)
{
    demo_run *r = fo->run;
    const demo_node *src = fo->without;
    const demo_flow *f = &fo->f2;
    demo_rx rx = receiver_view(r, NO_BACKUP, f->run);
    printf("\n  %s, upstream %s only:\n", NO_BACKUP, KILLED_RELAY);
    print_hops(&fo->without_before, &fo->without_after);
    if (f->refused == 0) {
        printf("    all %" PRIu64 " sends accepted: without a route, messages "
               "wait in the stream\n",
               f->accepted);
    } else {
        printf("    %" PRIu64 " sends accepted, then one refused (%s)\n",
               f->accepted, atbus_err_name(f->last_refusal));
    }
    if (src->undelivered_calls != 0) {
        printf("    on_undelivered(%s, %" PRIu64 " messages, %s) %.1f s after "
               "the kill\n    (peer_linger_ms = %d)\n",
               src->undelivered_peer, src->undelivered,
               atbus_err_name(src->undelivered_err),
               (double)(src->undelivered_at_us - fo->kill_us) / 1e6,
               DEMO_LINGER_MS);
    } else {
        printf("    on_undelivered was not called\n");
    }
    uint64_t missing =
        rx.next_seq <= f->accepted ? f->accepted - rx.next_seq : 0;
    uint64_t arrived_too =
        src->undelivered > missing ? src->undelivered - missing : 0;
    printf("    %s received %" PRIu64 " in order, %" PRIu64 " out of order, "
           "%" PRIu64 " damaged;\n    the %" PRIu64 " missing are all among "
           "those reported, and %" PRIu64 " reported had\n    arrived (their "
           "acknowledgements died with the relay): nothing lost unreported\n",
           FAR_APP, rx.next_seq, rx.out_of_order, rx.damaged, missing,
           arrived_too);
    demo_check(r,
               rx.received == rx.next_seq && rx.out_of_order == 0 &&
                   rx.damaged == 0 && rx.next_seq <= f->accepted,
               "failover: without a backup: the receiver saw %" PRIu64
               " messages up to number %" PRIu64 ", %" PRIu64
               " out of order, %" PRIu64 " damaged",
               rx.received, rx.next_seq, rx.out_of_order, rx.damaged);
    demo_check(r, src->undelivered >= missing,
               "failover: without a backup: %" PRIu64 " messages never "
               "arrived and only %" PRIu64 " were reported undelivered",
               missing, src->undelivered);
    demo_check(r, fo->without_after.rc != ATBUS_OK,
               "failover: %s still had a next hop with its only relay dead",
               NO_BACKUP);
}

/* heal starts the relay again and waits for every link. WITH_BACKUP's
 * traffic must go back to it (its primary) and arrive. NO_BACKUP only
 * shows its next hop: its stream to FAR_APP was given up, and a new one
 * on the same stream could meet what FAR_APP still keeps of the old one
 * (docs/demo.md). */
static void
heal(failover *fo)
{
    demo_run *r = fo->run;
    int k = demo_mesh_find(&r->mesh, KILLED_RELAY);
    uint64_t start = demo_now_us();
    if (!demo_check(r, demo_proc_start(&r->spare, &r->mesh.m[k].spec) == 0,
                    "failover: %s could not be started again", KILLED_RELAY)) {
        return;
    }
    char why[256];
    if (!demo_check(r,
                    demo_run_ready(r, DEMO_MESH_UP_MS, why, sizeof(why)) == 0,
                    "failover: the mesh did not come back: %s", why)) {
        return;
    }
    printf("\n  %s started again (pid %d): every link up again in %.2f s\n",
           KILLED_RELAY, (int)r->spare.pid,
           (double)(demo_now_us() - start) / 1e6);
    demo_node *apps[] = {fo->with, fo->without};
    for (size_t i = 0; i < 2; i++) {
        const char *name = apps[i]->spec.name;
        demo_hop h;
        demo_node_hop(apps[i], FAR_APP, &h);
        char text[96];
        demo_hop_text(&h, text, sizeof(text));
        printf("    %-10s next hop %s\n", name, text);
        demo_check(r, h.rc == ATBUS_OK && strcmp(h.peer, KILLED_RELAY) == 0,
                   "failover: after the restart, %s goes to %s, not %s", name,
                   text, KILLED_RELAY);
    }
    uint64_t count = HEAL_MESSAGES / r->divisor;
    demo_measure m;
    int rc = demo_measure_pair(fo->with, FAR_APP, count, DEMO_MESSAGE_SIZE, 10,
                               demo_now_us() + DEMO_STEP_BUDGET_US, &m);
    printf("    %" PRIu64 " more messages from %s: %s\n", count, WITH_BACKUP,
           rc == 0 ? "all arrived once, in order" : m.error);
    demo_check(r, rc == 0, "failover: after the restart, %s -> %s: %s",
               WITH_BACKUP, FAR_APP, m.error);
}

void
demo_show_failover(demo_run *r)
{
    static failover fo;
    memset(&fo, 0, sizeof(fo));
    fo.run = r;
    fo.with = demo_run_node(r, WITH_BACKUP);
    fo.without = demo_run_node(r, NO_BACKUP);
    int k = demo_mesh_find(&r->mesh, KILLED_RELAY);
    if (!demo_check(r,
                    fo.with != NULL && fo.without != NULL &&
                        demo_run_node(r, FAR_APP) != NULL && k >= 0 &&
                        k == r->second_of,
                    "failover: the mesh file lacks %s, %s or %s in this "
                    "process, or %s in its own",
                    WITH_BACKUP, NO_BACKUP, FAR_APP, KILLED_RELAY)) {
        return;
    }
    demo_flow_init(&fo.f1, fo.with, FAR_APP, DEMO_MESSAGE_SIZE,
                   FAILOVER_MESSAGES / r->divisor);
    demo_flow_init(&fo.f2, fo.without, FAR_APP, DEMO_MESSAGE_SIZE,
                   ALONE_MESSAGES);
    /* The application stops at the first refused send: what happens to
     * the accepted ones is then up to the library. */
    fo.f2.give_up = 1;
    printf("\nfailover: %s (pid %d) is killed with SIGKILL a third of the way "
           "through\n%" PRIu64 " messages from %s and %" PRIu64 " from %s, "
           "both to %s\n",
           KILLED_RELAY, (int)r->procs[k].pid, fo.f1.count, WITH_BACKUP,
           fo.f2.count, NO_BACKUP, FAR_APP);
    fflush(stdout);
    failover_stream(&fo);
    demo_check(r, fo.finished,
               "failover: the streams did not end in %u s (%" PRIu64
               " and %" PRIu64 " unacknowledged)",
               DEMO_STEP_BUDGET_US / 1000000u, demo_flow_unacked(&fo.f1),
               demo_flow_unacked(&fo.f2));
    report_backup(&fo);
    report_alone(&fo);
    heal(&fo);
}
