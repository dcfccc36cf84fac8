/*
 * atbus-demo: a small mesh on this machine. A hub node in this process
 * listens on every channel; for each channel in turn an app node (in this
 * process for mem://, a child process for the others) sends it numbered
 * messages and pings, and reports throughput and latency. A channel
 * choice step dials the hub over several channels at once to show which
 * one the library sends over, and what it falls back to.
 *
 * Children are forked before this process creates any node, so none of
 * them inherits a node's threads, sockets or shared memory; each waits
 * on a pipe for the URLs of its turn, creates its own node, and writes
 * its result back on another pipe. Channels run one after another so
 * their figures do not compete for the same cores.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    CH_MEM,
    CH_SHM,
    CH_UNIX,
    CH_IPV4,
    CH_IPV6,
    CH_UDP,
    CH_COUNT,
};

static const char *const channel_names[CH_COUNT] = {
    "mem", "shm", "unix", "ipv4", "ipv6", "udp",
};

/* Sizes of the runs: large enough that start-up costs vanish in the
 * figures, small enough that the whole demo takes seconds. --quick
 * divides them by QUICK_DIVISOR (sanitizer builds, smoke tests). */
#define SMALL_COUNT 1000000
#define LARGE_COUNT 100000
#define PINGS 2000
/* udp:// has no streams yet to repair loss: fewer messages, paced below
 * what a busy receiver drains, since a full socket buffer drops. */
#define UDP_COUNT 20000
#define UDP_PACE_PER_MS 50
#define QUICK_DIVISOR 10

/* Time an app has for all its steps, and the parent's grace on top of
 * it before the child is killed. */
#define APP_BUDGET_US (30u * 1000000u)
#define APP_GRACE_US (5u * 1000000u)
/* How long a child waits for its turn, and an exiting child for the
 * parent to let go; both only matter if the parent is stuck or gone. */
#define CHILD_IDLE_MS (300 * 1000)
/* Waits of the parent for a peer to leave the hub, or a child to exit. */
#define SETTLE_US (3u * 1000000u)

/* The child that runs the channel choice step. */
#define CHILD_MULTI CH_COUNT

typedef struct demo_child {
    char name[32];
    pid_t pid;
    int cmd_fd; /* "go <url>...\n"; EOF tells the child to finish */
    int res_fd; /* a demo_result */
    int reaped;
    int wstatus;
} demo_child;

typedef struct demo_channel {
    const char *name;
    char url[160];
    int available;
    char note[256];
    int ran;
    double seconds;
    demo_result r;
} demo_channel;

static demo_channel channels[CH_COUNT];
static demo_child children[CH_COUNT + 1];
static unsigned divisor = 1;

static const char *
status_text(int status)
{
    switch (status) {
    case DEMO_OK:
        return "ok";
    case DEMO_ESETUP:
        return "setup failed";
    case DEMO_ENOPEER:
        return "hub not reached";
    case DEMO_ECHECK:
        return "messages lost or damaged";
    case DEMO_ETIMEOUT:
        return "timed out";
    case DEMO_EPEER:
        return "hub went away";
    case DEMO_EPIPE:
        return "pipe to the parent failed";
    case DEMO_EDIED:
        return "app process ended early";
    default:
        return "unknown status";
    }
}

/* ---- the child side ---- */

/* child_read_line reads the parent's command; returns 0 on EOF or when
 * the parent stays silent too long. */
static int
child_read_line(int fd, char *line, size_t size)
{
    size_t used = 0;
    while (used + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, CHILD_IDLE_MS) <= 0) {
            return 0;
        }
        ssize_t n = read(fd, line + used, 1);
        if (n <= 0) {
            return 0;
        }
        if (line[used] == '\n') {
            line[used] = '\0';
            return 1;
        }
        used++;
    }
    return 0;
}

/* child_linger keeps the node alive (pings answered) until the parent
 * closes the command pipe, so the parent can inspect the hub's view of
 * this app before it leaves. */
static void
child_linger(demo_app *app, int cmd_fd)
{
    uint64_t end = demo_now_us() + (uint64_t)CHILD_IDLE_MS * 1000;
    while (demo_now_us() < end) {
        struct pollfd p = {.fd = cmd_fd, .events = POLLIN};
        if (poll(&p, 1, 0) != 0) {
            return;
        }
        demo_app_pump(app, 10);
    }
}

static void
plan_for(int ch, demo_plan *plan)
{
    *plan = (demo_plan){
        .small_count = SMALL_COUNT / divisor,
        .large_count = LARGE_COUNT / divisor,
        .pings = (int)(PINGS / divisor),
    };
    if (ch == CH_UDP) {
        /* 1 KiB fits a datagram, but without fragmentation (streams,
         * later) only 64 B stays well under every path's MTU. */
        plan->small_count = UDP_COUNT / divisor;
        plan->large_count = 0;
        plan->lossy = 1;
        plan->pace_per_ms = UDP_PACE_PER_MS;
    }
}

static void
child_main(int index, int cmd_fd, int res_fd)
{
    char line[1024];
    if (!child_read_line(cmd_fd, line, sizeof(line)) ||
        strncmp(line, "go ", 3) != 0) {
        /* No turn for this channel (not available here). */
        exit(DEMO_OK);
    }
    const char *urls[CH_COUNT];
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line + 3, " ", &save);
         tok != NULL && n < CH_COUNT; tok = strtok_r(NULL, " ", &save)) {
        urls[n++] = tok;
    }
    demo_result r;
    memset(&r, 0, sizeof(r));
    r.status = DEMO_ESETUP;
    snprintf(r.error, sizeof(r.error), "no URL to dial");
    demo_app *app = NULL;
    uint64_t deadline = demo_now_us() + APP_BUDGET_US;
    if (n > 0 &&
        demo_app_new(&app, children[index].name, NULL, &r) == ATBUS_OK) {
        if (index == CHILD_MULTI) {
            demo_app_choice(app, urls, n, deadline, &r);
        } else {
            demo_plan plan;
            plan_for(index, &plan);
            demo_app_bench(app, urls[0], &plan, deadline, &r);
        }
    }
    const char *p = (const char *)&r;
    size_t left = sizeof(r);
    while (left > 0) {
        ssize_t w = write(res_fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            r.status = DEMO_EPIPE;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (app != NULL) {
        child_linger(app, cmd_fd);
    }
    demo_app_free(app);
    close(cmd_fd);
    close(res_fd);
    exit(r.status);
}

static int
child_spawn(int index, const char *name)
{
    demo_child *c = &children[index];
    snprintf(c->name, sizeof(c->name), "%s", name);
    int cmd[2];
    int res[2];
    if (pipe(cmd) != 0) {
        return -1;
    }
    if (pipe(res) != 0) {
        close(cmd[0]);
        close(cmd[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(cmd[0]);
        close(cmd[1]);
        close(res[0]);
        close(res[1]);
        return -1;
    }
    if (pid == 0) {
        close(cmd[1]);
        close(res[0]);
        /* A sibling's pipe held open here would hide its EOF. */
        for (int i = 0; i <= CH_COUNT; i++) {
            if (children[i].pid > 0) {
                close(children[i].cmd_fd);
                close(children[i].res_fd);
            }
        }
        child_main(index, cmd[0], res[1]);
    }
    close(cmd[0]);
    close(res[1]);
    fcntl(res[0], F_SETFL, fcntl(res[0], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->cmd_fd = cmd[1];
    c->res_fd = res[0];
    return 0;
}

/* ---- the parent side ---- */

/* pump_hub turns the hub's loop for up to ms milliseconds. */
static void
pump_hub(demo_hub *hub, int ms)
{
    uint64_t end = demo_now_us() + (uint64_t)ms * 1000;
    do {
        atbus_node_poll(demo_hub_node(hub), 1);
    } while (demo_now_us() < end);
}

/* child_finish closes the child's command pipe and waits for it to exit,
 * keeping the hub turning so the child's goodbye is processed; a child
 * that hangs is killed. */
static void
child_finish(demo_hub *hub, demo_child *c)
{
    if (c->pid <= 0 || c->reaped) {
        return;
    }
    if (c->cmd_fd >= 0) {
        close(c->cmd_fd);
        c->cmd_fd = -1;
    }
    uint64_t end = demo_now_us() + SETTLE_US;
    while (demo_now_us() < end) {
        pid_t w = waitpid(c->pid, &c->wstatus, WNOHANG);
        if (w == c->pid || (w < 0 && errno != EINTR)) {
            c->reaped = 1;
            break;
        }
        if (hub != NULL) {
            pump_hub(hub, 5);
        } else {
            (void)poll(NULL, 0, 5);
        }
    }
    if (!c->reaped) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->wstatus, 0);
        c->reaped = 1;
    }
    close(c->res_fd);
    c->res_fd = -1;
}

/* child_describe explains how a child ended, for a failure message. */
static void
child_describe(const demo_child *c, char *buf, size_t size)
{
    if (WIFEXITED(c->wstatus)) {
        snprintf(buf, size, "%s exited with status %d (%s)", c->name,
                 WEXITSTATUS(c->wstatus), status_text(WEXITSTATUS(c->wstatus)));
    } else if (WIFSIGNALED(c->wstatus)) {
        snprintf(buf, size, "%s was killed by signal %d", c->name,
                 WTERMSIG(c->wstatus));
    } else {
        snprintf(buf, size, "%s ended oddly (wait status %#x)", c->name,
                 (unsigned)c->wstatus);
    }
}

/* child_run hands the child its URLs and turns the hub until the child's
 * result arrives. Returns the elapsed seconds; r holds the result or the
 * reason there is none. */
static double
child_run(demo_hub *hub, demo_child *c, const char *const *urls, size_t n,
          demo_result *r)
{
    memset(r, 0, sizeof(*r));
    r->large_mb_s = -1;
    char line[1024] = "go";
    for (size_t i = 0; i < n; i++) {
        strncat(line, " ", sizeof(line) - strlen(line) - 1);
        strncat(line, urls[i], sizeof(line) - strlen(line) - 1);
    }
    strncat(line, "\n", sizeof(line) - strlen(line) - 1);
    uint64_t start = demo_now_us();
    if (write(c->cmd_fd, line, strlen(line)) != (ssize_t)strlen(line)) {
        child_finish(hub, c);
        child_describe(c, r->error, sizeof(r->error));
        r->status = DEMO_EDIED;
        return 0;
    }
    uint64_t deadline = start + APP_BUDGET_US + APP_GRACE_US;
    uint64_t next_check = 0;
    size_t got = 0;
    int eof = 0;
    while (got < sizeof(*r) && !eof) {
        /* The hub's loop wakes on traffic; the pipe is looked at every
         * few milliseconds, which costs the figures nothing. */
        atbus_node_poll(demo_hub_node(hub), 2);
        uint64_t now = demo_now_us();
        if (now < next_check) {
            continue;
        }
        next_check = now + 10000;
        ssize_t k = read(c->res_fd, (char *)r + got, sizeof(*r) - got);
        if (k > 0) {
            got += (size_t)k;
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            eof = 1;
        } else if (now >= deadline) {
            kill(c->pid, SIGKILL);
            break;
        }
    }
    double secs = (double)(demo_now_us() - start) / 1e6;
    if (got < sizeof(*r)) {
        child_finish(hub, c);
        memset(r, 0, sizeof(*r));
        r->large_mb_s = -1;
        r->status = eof ? DEMO_EDIED : DEMO_ETIMEOUT;
        if (eof) {
            child_describe(c, r->error, sizeof(r->error));
        } else {
            snprintf(r->error, sizeof(r->error),
                     "%s gave no result in %u s and was killed", c->name,
                     (APP_BUDGET_US + APP_GRACE_US) / 1000000u);
        }
    }
    return secs;
}

/* wait_peer_gone turns the hub until it no longer knows peer, so each run
 * starts from a quiet hub. */
static void
wait_peer_gone(demo_hub *hub, const char *peer)
{
    atbus_peer_info info;
    uint64_t end = demo_now_us() + SETTLE_US;
    while (atbus_node_peer(demo_hub_node(hub), peer, &info) == ATBUS_OK &&
           demo_now_us() < end) {
        atbus_node_poll(demo_hub_node(hub), 5);
    }
}

/* hub_view waits until the hub reaches peer over `connections`
 * connections and copies the channel it sends over; "" if it never
 * does. */
static void
hub_view(demo_hub *hub, const char *peer, size_t connections, char *channel,
         size_t size)
{
    channel[0] = '\0';
    uint64_t end = demo_now_us() + SETTLE_US;
    while (demo_now_us() < end) {
        atbus_peer_info info;
        if (atbus_node_peer(demo_hub_node(hub), peer, &info) == ATBUS_OK &&
            info.connections == connections) {
            snprintf(channel, size, "%s", info.channel);
            return;
        }
        atbus_node_poll(demo_hub_node(hub), 5);
    }
}

/* free_port asks the kernel for an unused loopback port. Another process
 * may take it before the hub binds; the caller retries on EADDRINUSE. */
static int
free_port(int family, int type)
{
    int fd = socket(family, type, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*s4);
    }
    int port = -1;
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        port =
            ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    close(fd);
    return port;
}

/* hub_listen_channel puts the hub on channel ch. A channel this machine
 * or build lacks is noted and skipped; any other refusal is a failure. */
static int
hub_listen_channel(demo_hub *hub, int ch)
{
    demo_channel *c = &channels[ch];
    int pid = (int)getpid();
    int rc = ATBUS_OK;
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = 0;
        if (ch == CH_IPV4 || ch == CH_UDP) {
            port = free_port(AF_INET, ch == CH_UDP ? SOCK_DGRAM : SOCK_STREAM);
        } else if (ch == CH_IPV6) {
            port = free_port(AF_INET6, SOCK_STREAM);
            if (port < 0) {
                snprintf(c->note, sizeof(c->note),
                         "skipped: ::1 is not available on this machine");
                return 0;
            }
        }
        switch (ch) {
        case CH_MEM:
            snprintf(c->url, sizeof(c->url), "mem://demo-hub-%d", pid);
            break;
        case CH_SHM:
            snprintf(c->url, sizeof(c->url), "shm://demo-hub-%d", pid);
            break;
        case CH_UNIX:
            snprintf(c->url, sizeof(c->url), "unix:///tmp/atbus-demo-%d.sock",
                     pid);
            break;
        case CH_IPV4:
            snprintf(c->url, sizeof(c->url), "ipv4://127.0.0.1:%d", port);
            break;
        case CH_IPV6:
            snprintf(c->url, sizeof(c->url), "ipv6://[::1]:%d", port);
            break;
        default:
            snprintf(c->url, sizeof(c->url), "udp://127.0.0.1:%d", port);
            break;
        }
        rc = demo_hub_listen(hub, c->url);
        if (rc != ATBUS_EADDRINUSE || port == 0) {
            break;
        }
    }
    if (rc == ATBUS_OK) {
        c->available = 1;
        return 0;
    }
    if (ch == CH_SHM && rc == ATBUS_ENOTSUP) {
        snprintf(c->note, sizeof(c->note),
                 "skipped: shm:// is not in this build of the library");
        return 0;
    }
    if (ch == CH_IPV6 && rc == ATBUS_EADDRINVAL) {
        snprintf(c->note, sizeof(c->note),
                 "skipped: ::1 is not available on this machine");
        return 0;
    }
    char url[sizeof(c->url)];
    memcpy(url, c->url, sizeof(url));
    snprintf(c->note, sizeof(c->note), "FAILED: listen on %s: %s", url,
             atbus_strerror(rc));
    return -1;
}

/* run_mem runs the mem:// pair: both nodes in this thread. */
static double
run_mem(demo_hub *hub, demo_result *r)
{
    uint64_t start = demo_now_us();
    demo_app *app;
    if (demo_app_new(&app, "app-mem", demo_hub_node(hub), r) == ATBUS_OK) {
        demo_plan plan;
        plan_for(CH_MEM, &plan);
        demo_app_bench(app, channels[CH_MEM].url, &plan, start + APP_BUDGET_US,
                       r);
        demo_app_free(app);
    }
    wait_peer_gone(hub, "app-mem");
    return (double)(demo_now_us() - start) / 1e6;
}

/* The channel choice step and what it showed. */
typedef struct demo_choice {
    const char *who;
    char dialed[64];
    demo_result r;
    char hub_sees[8];
} demo_choice;

static void
choice_dialed(demo_choice *c, const int *chs, size_t n, const char **urls)
{
    c->dialed[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        urls[i] = channels[chs[i]].url;
        strncat(c->dialed, i > 0 ? "+" : "",
                sizeof(c->dialed) - strlen(c->dialed) - 1);
        strncat(c->dialed, channels[chs[i]].name,
                sizeof(c->dialed) - strlen(c->dialed) - 1);
    }
}

static int
run_choice(demo_hub *hub, demo_choice *local, demo_choice *multi)
{
    int failed = 0;
    /* In this process: tcp and mem, and mem must win. */
    const char *urls[CH_COUNT];
    int local_chs[] = {CH_IPV4, CH_MEM};
    local->who = "app-local (this process)";
    choice_dialed(local, local_chs, 2, urls);
    demo_app *app;
    if (demo_app_new(&app, "app-local", demo_hub_node(hub), &local->r) ==
        ATBUS_OK) {
        demo_app_choice(app, urls, 2, demo_now_us() + APP_BUDGET_US, &local->r);
        if (local->r.status == DEMO_OK) {
            hub_view(hub, "app-local", local->r.fallback_connections,
                     local->hub_sees, sizeof(local->hub_sees));
        }
        demo_app_free(app);
    }
    wait_peer_gone(hub, "app-local");
    failed |= local->r.status != DEMO_OK;

    /* Another process: tcp, unix and shm; shm must win, then unix. */
    int multi_chs[3];
    size_t n = 0;
    multi_chs[n++] = CH_IPV4;
    multi_chs[n++] = CH_UNIX;
    if (channels[CH_SHM].available) {
        multi_chs[n++] = CH_SHM;
    }
    multi->who = "app-multi (child process)";
    choice_dialed(multi, multi_chs, n, urls);
    demo_child *c = &children[CHILD_MULTI];
    child_run(hub, c, urls, n, &multi->r);
    if (multi->r.status == DEMO_OK) {
        hub_view(hub, c->name, multi->r.fallback_connections, multi->hub_sees,
                 sizeof(multi->hub_sees));
    }
    child_finish(hub, c);
    wait_peer_gone(hub, c->name);
    if (multi->r.status == DEMO_OK && WIFEXITED(c->wstatus) &&
        WEXITSTATUS(c->wstatus) != 0) {
        multi->r.status = WEXITSTATUS(c->wstatus);
        child_describe(c, multi->r.error, sizeof(multi->r.error));
    }
    failed |= multi->r.status != DEMO_OK;
    return failed;
}

/* ---- output ---- */

static void
print_choice(const demo_choice *c)
{
    if (c->who == NULL) {
        return;
    }
    if (c->r.status != DEMO_OK) {
        printf("  %-26s dialed %-14s FAILED: %s\n", c->who, c->dialed,
               c->r.error);
        return;
    }
    printf("  %-26s dialed %-14s -> %zu connections, sends over %s\n", c->who,
           c->dialed, c->r.connections, c->r.chosen);
    int agree = strcmp(c->hub_sees, c->r.fallback) == 0;
    printf("  %-26s dropped %-13s -> %zu connection%s, sends over %s; "
           "hub sends over %s%s\n",
           "", c->r.dropped, c->r.fallback_connections,
           c->r.fallback_connections == 1 ? "" : "s", c->r.fallback,
           c->hub_sees[0] != '\0' ? c->hub_sees : "?",
           agree ? "" : " (DISAGREE)");
}

static void
print_table(void)
{
    printf("\n%u x 64 B, %u x 1 KiB messages; payload from the first send "
           "until the hub confirms the last (MB = 10^6 B); rtt: %u ping-pongs "
           "of 64 B\n\n",
           SMALL_COUNT / divisor, LARGE_COUNT / divisor, PINGS / divisor);
    printf("%-7s %-14s %-6s %11s %9s %10s %11s %11s  %s\n", "channel", "pair",
           "chosen", "64B msgs/s", "64B MB/s", "1KiB MB/s", "rtt p50 us",
           "rtt p99 us", "notes");
    for (int i = 0; i < CH_COUNT; i++) {
        const demo_channel *c = &channels[i];
        char pair[32];
        snprintf(pair, sizeof(pair), "hub<->app-%s", c->name);
        if (!c->ran) {
            printf("%-7s %-14s %-6s %11s %9s %10s %11s %11s  %s\n", c->name,
                   pair, "-", "-", "-", "-", "-", "-", c->note);
            continue;
        }
        const demo_result *r = &c->r;
        if (r->status != DEMO_OK) {
            printf("%-7s %-14s %-6s %11s %9s %10s %11s %11s  FAILED: %s\n",
                   c->name, pair, r->chosen[0] ? r->chosen : "-", "-", "-", "-",
                   "-", "-", r->error);
            continue;
        }
        char large[16] = "-";
        if (r->large_mb_s >= 0) {
            snprintf(large, sizeof(large), "%.1f", r->large_mb_s);
        }
        char notes[160];
        if (i == CH_MEM) {
            snprintf(notes, sizeof(notes), "same process, one thread");
        } else if (i == CH_UDP) {
            snprintf(notes, sizeof(notes),
                     "paced to %d msgs/ms; lost %llu of %llu (%.2f%%), "
                     "pings lost %d",
                     UDP_PACE_PER_MS, (unsigned long long)r->small_lost,
                     (unsigned long long)r->small_sent,
                     r->small_sent
                         ? 100.0 * (double)r->small_lost / (double)r->small_sent
                         : 0.0,
                     r->pings_lost);
        } else {
            snprintf(notes, sizeof(notes), "separate processes");
        }
        printf("%-7s %-14s %-6s %11.0f %9.1f %10s %11.1f %11.1f  %s\n", c->name,
               pair, r->chosen, r->small_msgs_s, r->small_mb_s, large,
               r->rtt_p50_us, r->rtt_p99_us, notes);
    }
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: atbus-demo [--quick]\n"
            "Runs a hub and one app node per channel (mem, shm, unix, ipv4,\n"
            "ipv6, udp) on this machine, prints throughput and latency per\n"
            "channel and which channel the library picks. Exits 0 when every\n"
            "available channel delivered every message intact.\n"
            "  --quick  a tenth of the messages (for sanitizer builds)\n");
}

/* report_failures repeats every failure on stderr, one line each, so a
 * failed run says why at its very end. */
static void
report_failures(const demo_choice *local, const demo_choice *multi)
{
    const demo_choice *choices[] = {multi, local};
    for (size_t i = 0; i < 2; i++) {
        if (choices[i]->who != NULL && choices[i]->r.status != DEMO_OK) {
            fprintf(stderr, "  channel choice, %s: %s\n", choices[i]->who,
                    choices[i]->r.error);
        }
    }
    for (int i = 0; i < CH_COUNT; i++) {
        const demo_channel *c = &channels[i];
        if (c->ran && c->r.status != DEMO_OK) {
            fprintf(stderr, "  %s: %s\n", c->name, c->r.error);
        } else if (!c->available && strncmp(c->note, "FAILED", 6) == 0) {
            fprintf(stderr, "  %s: %s\n", c->name, c->note);
        }
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
    if (argc == 2) {
        divisor = QUICK_DIVISOR;
    }
    uint64_t start = demo_now_us();
    /* A child that dies turns writes to its pipe into EPIPE, not a
     * signal that would end the whole demo. */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < CH_COUNT; i++) {
        channels[i].name = channel_names[i];
    }
    for (int i = 0; i <= CH_COUNT; i++) {
        children[i].cmd_fd = -1;
        children[i].res_fd = -1;
    }
    int failed = 0;
    for (int i = CH_SHM; i <= CHILD_MULTI && !failed; i++) {
        char name[32];
        snprintf(name, sizeof(name), "app-%s",
                 i == CHILD_MULTI ? "multi" : channel_names[i]);
        if (child_spawn(i, name) != 0) {
            fprintf(stderr, "atbus-demo: cannot start %s: %s\n", name,
                    strerror(errno));
            failed = 1;
        }
    }
    demo_hub *hub = NULL;
    if (!failed) {
        int rc = demo_hub_new(&hub);
        if (rc != ATBUS_OK) {
            fprintf(stderr, "atbus-demo: cannot create the hub node: %s\n",
                    atbus_strerror(rc));
            failed = 1;
        }
    }
    if (failed) {
        for (int i = CH_SHM; i <= CHILD_MULTI; i++) {
            child_finish(NULL, &children[i]);
        }
        demo_hub_free(hub);
        return 1;
    }

    printf("atbus-demo: a hub node and one app node per channel, all on "
           "this machine\n(libatbus %s, pid %d)\n\nhub listens on:\n",
           atbus_version(), (int)getpid());
    for (int i = 0; i < CH_COUNT; i++) {
        failed |= hub_listen_channel(hub, i) != 0;
        printf("  %-6s %s\n", channels[i].name,
               channels[i].available ? channels[i].url : channels[i].note);
    }

    printf("\nrunning, one step at a time:\n  choice ");
    fflush(stdout);
    demo_choice local;
    demo_choice multi;
    memset(&local, 0, sizeof(local));
    memset(&multi, 0, sizeof(multi));
    uint64_t step = demo_now_us();
    if (channels[CH_MEM].available && channels[CH_IPV4].available &&
        channels[CH_UNIX].available) {
        int choice_failed = run_choice(hub, &local, &multi);
        failed |= choice_failed;
        printf("%s (%.2f s)\n", choice_failed ? "FAILED" : "ok",
               (double)(demo_now_us() - step) / 1e6);
    } else {
        failed = 1;
        printf("FAILED: needs mem, unix and ipv4\n");
        child_finish(hub, &children[CHILD_MULTI]);
    }

    for (int i = 0; i < CH_COUNT; i++) {
        demo_channel *c = &channels[i];
        if (!c->available) {
            if (i != CH_MEM) {
                child_finish(hub, &children[i]);
            }
            continue;
        }
        printf("  %-6s ", c->name);
        fflush(stdout);
        c->ran = 1;
        if (i == CH_MEM) {
            c->seconds = run_mem(hub, &c->r);
        } else {
            const char *url = c->url;
            c->seconds = child_run(hub, &children[i], &url, 1, &c->r);
            child_finish(hub, &children[i]);
            wait_peer_gone(hub, children[i].name);
            if (c->r.status == DEMO_OK && WIFEXITED(children[i].wstatus) &&
                WEXITSTATUS(children[i].wstatus) != 0) {
                c->r.status = WEXITSTATUS(children[i].wstatus);
                child_describe(&children[i], c->r.error, sizeof(c->r.error));
            }
        }
        printf("%s (%.2f s)\n",
               c->r.status == DEMO_OK ? "ok" : status_text(c->r.status),
               c->seconds);
        failed |= c->r.status != DEMO_OK;
    }

    print_table();
    printf("\nChannel choice: both ends send over their best registered "
           "connection\n(mem > shm > unix > ipv4/ipv6 > udp); dropping it "
           "moves sends to the next.\n");
    print_choice(&multi);
    print_choice(&local);

    uint64_t anomalies = demo_hub_anomalies(hub);
    demo_hub_free(hub);
    for (int i = CH_SHM; i <= CHILD_MULTI; i++) {
        child_finish(NULL, &children[i]);
    }
    /* The library removes the socket file when its listener closes; this
     * only matters if that went wrong. */
    if (channels[CH_UNIX].available) {
        unlink(channels[CH_UNIX].url + strlen("unix://"));
    }
    if (anomalies != 0) {
        /* Requests the hub could not answer at once; the apps repeat
         * or time out, so this explains slowness, not failure. */
        printf("\nhub: %llu request(s) not answered at once\n",
               (unsigned long long)anomalies);
    }
    double secs = (double)(demo_now_us() - start) / 1e6;
    fflush(stdout);
    if (failed) {
        fprintf(stderr, "\natbus-demo: FAILED after %.1f s:\n", secs);
        report_failures(&local, &multi);
        return 1;
    }
    printf("\natbus-demo: ok, every message arrived intact and in order "
           "(udp: loss counted)\nin %.1f s\n",
           secs);
    return 0;
}
