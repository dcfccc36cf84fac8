/*
 * atbus-bench: atbus, ZeroMQ, nng and raw system calls on the same cases
 * in one run, interleaved, with a summary of ratios (docs/benchmarks.md).
 *
 * The matrix: for each case (throughput or round trip, a channel, a
 * message size), every implementation runs once, then again, for the
 * repetitions asked; only then does the next size start. Medians of the
 * repetitions make the summary. Each measurement runs in a freshly forked
 * process (see bench.h) with a bounded count and a deadline.
 *
 * Output: one "BENCH key=value ..." line per measurement, "# probe" lines
 * on the vCPU placement, and a summary with atbus/peer ratios and the
 * targets of the benchmark issue marked met or missed. Exit status 1 if a
 * measurement failed (lost, reordered or damaged messages, a side that
 * did not finish), 2 for a usage error.
 */
#define _GNU_SOURCE /* wait4 */
#include "bench.h"
#include "bench_etcd.h"
#include "bench_route.h"

#include <atbus/atbus.h>

#include <errno.h>
#include <math.h>
#include <nng/nng.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <zmq.h>

/* ---- what runs ---- */

enum {
    IMPL_ATBUS,
    IMPL_ZMQ,
    IMPL_NNG,
    IMPL_RING,
    IMPL_WRITEV,
    IMPL_PINGPONG,
    IMPL_RELAY,
    IMPLS,
};

typedef struct impl_desc {
    const char *name;
    int (*run)(const bench_job *job, bench_out *out);
} impl_desc;

static const impl_desc impls[IMPLS] = {
    [IMPL_ATBUS] = {"atbus", bench_atbus_run},
    [IMPL_ZMQ] = {"zmq", bench_zmq_run},
    [IMPL_NNG] = {"nng", bench_nng_run},
    [IMPL_RING] = {"raw_ring", bench_ring_run},
    [IMPL_WRITEV] = {"raw_writev", bench_writev_run},
    [IMPL_PINGPONG] = {"raw_pingpong", bench_pingpong_run},
    [IMPL_RELAY] = {"atbus_relay", bench_atbus_relay_run},
};

/* One implementation in a case: on which of its channels. */
typedef struct member {
    int impl;
    int transport;
    const char *via;
} member;

#define GROUP_MAX 4
#define RAW_MAX 2

/*
 * A channel and what runs on it: atbus, ZeroMQ and nng under their own
 * names for it (NULL: the library has none), then the raw limits of
 * throughput and of round trips (via NULL ends the list).
 */
typedef struct channel {
    int transport;
    const char *name;
    const char *via[3];
    member raw[2][RAW_MAX];
} channel;

static const channel channels[] = {
    {BENCH_MEM, "mem", {"mem", "inproc", "inproc"}, {{{0}}, {{0}}}},
    {BENCH_UNIX,
     "unix",
     {"unix", "ipc", "ipc"},
     {{{IMPL_WRITEV, BENCH_UNIX, "unix-writev"}},
      {{IMPL_PINGPONG, BENCH_UNIX, "unix-pingpong"}}}},
    {BENCH_TCP,
     "tcp",
     {"ipv4", "tcp", "tcp"},
     {{{IMPL_WRITEV, BENCH_TCP, "tcp-writev"}},
      {{IMPL_PINGPONG, BENCH_TCP, "tcp-pingpong"}}}},
    /* No library has shared memory: the raw ring is the limit, and a
     * Unix socket what an application would use instead. */
    {BENCH_SHM,
     "shm",
     {"shm", NULL, NULL},
     {{{IMPL_RING, BENCH_SHM, "shm-ring"},
       {IMPL_WRITEV, BENCH_UNIX, "unix-writev"}},
      {{IMPL_RING, BENCH_SHM, "shm-ring"},
       {IMPL_PINGPONG, BENCH_UNIX, "unix-pingpong"}}}},
};
#define CHANNELS (sizeof(channels) / sizeof(channels[0]))

/* The implementations compared in one case (a kind on a channel);
 * atbus first. */
typedef struct group {
    int kind;
    int transport;
    const char *name;
    member members[GROUP_MAX];
    size_t n;
} group;

/* Throughput groups first, then round trips, then atbus through a relay
 * next to atbus direct (a group of its own: the ratio is relay/direct);
 * made by groups_init. */
#define GROUPS (2 * CHANNELS + 1)
static group groups[GROUPS];

static void
groups_init(void)
{
    static const int libs[3] = {IMPL_ATBUS, IMPL_ZMQ, IMPL_NNG};
    static const group relay = {
        BENCH_LATENCY,
        BENCH_RELAY,
        "relay",
        {{IMPL_RELAY, BENCH_RELAY, "unix-relay"},
         {IMPL_ATBUS, BENCH_UNIX, "unix-direct"}},
        2,
    };
    groups[2 * CHANNELS] = relay;
    for (size_t gi = 0; gi < 2 * CHANNELS; gi++) {
        const channel *c = &channels[gi % CHANNELS];
        group *g = &groups[gi];
        g->kind = gi < CHANNELS ? BENCH_THROUGHPUT : BENCH_LATENCY;
        g->transport = c->transport;
        g->name = c->name;
        g->n = 0;
        for (size_t i = 0; i < 3; i++) {
            if (c->via[i] != NULL) {
                g->members[g->n++] = (member){libs[i], c->transport, c->via[i]};
            }
        }
        for (size_t i = 0; i < RAW_MAX && c->raw[g->kind][i].via != NULL; i++) {
            g->members[g->n++] = c->raw[g->kind][i];
        }
    }
}

static const size_t thr_sizes[] = {64, 1024, 16384};
static const size_t lat_sizes[] = {64, 1024};
#define SIZES 3

static const char *const kind_names[] = {"throughput", "latency"};

/*
 * Messages a second each implementation is expected to reach (this
 * machine, docs/benchmarks.md), by channel and size: counts are sized
 * so a throughput run lasts about THR_SECONDS. Fixed counts for all would
 * make the fast runs too short to time or the slow ones too long.
 */
static const double thr_rates[IMPLS][BENCH_TRANSPORTS][SIZES] = {
    [IMPL_ATBUS] = {{1.6e6, 1.1e6, 90e3},
                    {4.0e6, 1.2e6, 30e3},
                    {3.3e6, 1.9e6, 36e3},
                    {1.7e6, 1.3e6, 230e3}},
    [IMPL_ZMQ] = {{9.7e6, 3.8e6, 2.3e6},
                  {5.7e6, 1.0e6, 82e3},
                  {6.3e6, 1.1e6, 89e3},
                  {0, 0, 0}},
    [IMPL_NNG] = {{460e3, 435e3, 334e3},
                  {253e3, 227e3, 73e3},
                  {325e3, 243e3, 93e3},
                  {0, 0, 0}},
    [IMPL_RING] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {42e6, 17e6, 3.8e6}},
    [IMPL_WRITEV] = {{0, 0, 0},
                     {56e6, 7.1e6, 273e3},
                     {39e6, 4.7e6, 263e3},
                     {0, 0, 0}},
};
#define THR_SECONDS 0.6
#define QUICK_SECONDS 0.06
#define MIN_COUNT 2000u
/* Round trips: a blocking one costs about 20-120 us here, the spinning
 * ring 0.1-1 us. */
#define LAT_COUNT 10000u
#define LAT_WARMUP 500u
#define RING_LAT_COUNT 300000u
#define RING_LAT_WARMUP 20000u
#define QUICK_DIVISOR 10u
/* A measurement that has not finished by then has failed. */
#define JOB_DEADLINE_NS (45ull * 1000000000ull)
#define ROUTE_NODES 100000u
#define CODEC_ITERATIONS 50000u
/* The placement probe: a pinned 64 B ring ping-pong. Its p50 falls in
 * bands that last minutes and change with no action of ours, which we
 * take for the host moving the two vCPUs closer or further apart
 * (docs/benchmarks.md); cross-core figures move with them. */
#define PROBE_COUNT 20000u
#define PROBE_NEAR_US 0.18
#define PROBE_FAR_US 0.5

/* ---- options ---- */

#define MAX_FILTERS 16

typedef struct options {
    int quick;
    unsigned reps;
    const char *cases[MAX_FILTERS];
    size_t ncases;
    const char *impls[MAX_FILTERS];
    size_t nimpls;
    const char *etcd;
    int probe;
    int pin;
    int list;
} options;

static void
usage(FILE *f)
{
    fprintf(f, "usage: atbus-bench [--quick] [--reps N] [--case NAME]... "
               "[--impl NAME]...\n"
               "                   [--etcd URL] [--pin] [--no-probe] "
               "[--list]\n"
               "  --quick      a tenth of the counts, one repetition: a smoke "
               "run of about a minute\n"
               "  --reps N     repetitions of every measurement (default 3; "
               "medians are reported)\n"
               "  --case NAME  run only cases whose name starts with NAME at a "
               "'/' boundary\n"
               "               (throughput, latency/unix, throughput/shm/64, "
               "latency/relay,\n"
               "               route, discovery, etcd)\n"
               "  --impl NAME  run only this implementation (atbus, zmq, nng, "
               "raw_ring, raw_writev, raw_pingpong,\n"
               "               atbus_relay)\n"
               "  --etcd URL   also run the etcd case against this endpoint "
               "(e.g. http://127.0.0.1:2379)\n"
               "  --pin        run senders and clients on CPU 0, receivers "
               "and servers on CPU 1\n"
               "               (default: where the scheduler puts them)\n"
               "  --no-probe   skip the vCPU placement probes\n"
               "  --list       print the case names and exit\n");
}

static int
parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->reps = 0;
    o->probe = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            o->quick = 1;
        } else if (strcmp(a, "--no-probe") == 0) {
            o->probe = 0;
        } else if (strcmp(a, "--pin") == 0) {
            o->pin = 1;
        } else if (strcmp(a, "--list") == 0) {
            o->list = 1;
        } else if (strcmp(a, "--reps") == 0 && v != NULL) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end != '\0' || n == 0 || n > 50) {
                fprintf(stderr, "atbus-bench: --reps takes 1 to 50\n");
                return -1;
            }
            o->reps = (unsigned)n;
            i++;
        } else if (strcmp(a, "--case") == 0 && v != NULL &&
                   o->ncases < MAX_FILTERS) {
            o->cases[o->ncases++] = v;
            i++;
        } else if (strcmp(a, "--impl") == 0 && v != NULL &&
                   o->nimpls < MAX_FILTERS) {
            o->impls[o->nimpls++] = v;
            i++;
        } else if (strcmp(a, "--etcd") == 0 && v != NULL) {
            o->etcd = v;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "atbus-bench: unknown or incomplete option %s\n",
                    a);
            usage(stderr);
            return -1;
        }
    }
    if (o->reps == 0) {
        o->reps = o->quick ? 1 : 3;
    }
    return 0;
}

/* case_selected says whether name passes the --case filters: a filter
 * selects a name it equals or that continues it after a '/'. */
static int
case_selected(const options *o, const char *name)
{
    if (o->ncases == 0) {
        return strcmp(name, "etcd") != 0 || o->etcd != NULL;
    }
    for (size_t i = 0; i < o->ncases; i++) {
        size_t n = strlen(o->cases[i]);
        if (strncmp(name, o->cases[i], n) == 0 &&
            (name[n] == '\0' || name[n] == '/')) {
            return 1;
        }
    }
    return 0;
}

static int
impl_selected(const options *o, int impl)
{
    if (o->nimpls == 0) {
        return 1;
    }
    for (size_t i = 0; i < o->nimpls; i++) {
        if (strcmp(o->impls[i], impls[impl].name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- a measurement in a fresh process ---- */

typedef int (*runner_fn)(const void *arg, void *res);

typedef struct run_info {
    int ok;
    double cpu_s;     /* user + system of the runner and its sides */
    double foreign_s; /* busy CPU time of everything else meanwhile */
    char error[200];
} run_info;

/* busy_seconds reads the machine's busy CPU time from /proc/stat. */
static double
busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return 0;
    }
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) {
        return 0;
    }
    /* user nice system [idle iowait] irq softirq steal */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double
tv_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* The runner's process group, for on_signal. */
static volatile sig_atomic_t current_runner;

/* on_signal ends the run on SIGINT or SIGTERM: runners live in process
 * groups of their own, which a terminal's signal does not reach. */
static void
on_signal(int sig)
{
    pid_t pid = (pid_t)current_runner;
    if (pid > 0) {
        kill(-pid, SIGKILL);
    }
    _exit(128 + sig);
}

/*
 * run_forked runs fn(arg, res) in a child process and copies res (size
 * bytes, below PIPE_BUF... or larger: it is read in full) back. A child
 * that takes longer than timeout_ns is killed.
 */
static void
run_forked(runner_fn fn, const void *arg, void *res, size_t size,
           uint64_t timeout_ns, run_info *info)
{
    memset(info, 0, sizeof(*info));
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(info->error, sizeof(info->error), "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    double busy0 = busy_seconds();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(info->error, sizeof(info->error), "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        /* Its own process group: whatever it forks goes with it. */
        setpgid(0, 0);
        close(fds[0]);
        uint8_t status = fn(arg, res) == 0 ? 'K' : 'F';
        /* Through a FILE: res may be larger than PIPE_BUF. */
        FILE *f = fdopen(fds[1], "w");
        if (f != NULL) {
            fwrite(&status, 1, 1, f);
            fwrite(res, 1, size, f);
            fclose(f);
        }
        fflush(stdout);
        exit(0);
    }
    close(fds[1]);
    setpgid(pid, pid);
    current_runner = pid;
    uint8_t status = 0;
    uint64_t deadline = bench_now_ns() + timeout_ns;
    int got = bench_read_full(fds[0], &status, 1, deadline) == 0 &&
              bench_read_full(fds[0], res, size, deadline) == 0;
    int timed_out = !got && errno == ETIMEDOUT;
    if (timed_out) {
        kill(-pid, SIGKILL);
    }
    close(fds[0]);
    int ws = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    while (wait4(pid, &ws, 0, &ru) < 0 && errno == EINTR) {
    }
    /* A side the runner could not stop must not outlive the case. */
    kill(-pid, SIGKILL);
    current_runner = 0;
    double busy1 = busy_seconds();
    info->cpu_s = tv_seconds(ru.ru_utime) + tv_seconds(ru.ru_stime);
    info->foreign_s = busy1 - busy0 - info->cpu_s;
    if (info->foreign_s < 0) {
        info->foreign_s = 0;
    }
    if (!got) {
        if (timed_out) {
            snprintf(info->error, sizeof(info->error),
                     "did not finish in %llu s, killed",
                     (unsigned long long)(timeout_ns / 1000000000ull));
        } else if (WIFSIGNALED(ws)) {
            snprintf(info->error, sizeof(info->error), "died with signal %d",
                     WTERMSIG(ws));
        } else {
            snprintf(info->error, sizeof(info->error),
                     "ended without a result");
        }
        return;
    }
    info->ok = status == 'K';
    if (!info->ok) {
        snprintf(info->error, sizeof(info->error), "failed");
    }
}

/* ---- measurements ---- */

typedef struct result {
    size_t group;
    size_t size_index;
    size_t member;
    unsigned rep;
    bench_out out;
    double foreign_s;
} result;

typedef struct state {
    options opt;
    result *results;
    size_t nresults;
    size_t cap;
    unsigned failures;
    unsigned seq; /* measurements so far: unique tags */
    double probes[2 * GROUPS + 2];
    size_t nprobes;
} state;

typedef struct measure_arg {
    int impl;
    bench_job job;
} measure_arg;

static int
measure_child(const void *arg, void *res)
{
    const measure_arg *m = arg;
    bench_out *out = res;
    memset(out, 0, sizeof(*out));
    out->ok = 1;
    int rc = impls[m->impl].run(&m->job, out);
    if (rc != 0) {
        out->ok = 0;
        if (out->error[0] == '\0') {
            snprintf(out->error, sizeof(out->error), "failed");
        }
    }
    /* The bench_out carries the verdict; the runner itself succeeded. */
    return 0;
}

/* free_port asks the kernel for a loopback TCP port nobody uses. Another
 * process could take it before the case binds; then the case fails
 * loudly rather than measuring something else. */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(in);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&in, sizeof(in)) == 0 &&
        getsockname(fd, (struct sockaddr *)&in, &len) == 0) {
        port = ntohs(in.sin_port);
    }
    close(fd);
    return port;
}

static uint64_t
plan_count(const state *s, const group *g, const member *m, size_t si)
{
    if (g->kind == BENCH_LATENCY) {
        uint64_t n = m->impl == IMPL_RING ? RING_LAT_COUNT : LAT_COUNT;
        return s->opt.quick ? n / QUICK_DIVISOR : n;
    }
    double rate = thr_rates[m->impl][m->transport][si];
    double secs = s->opt.quick ? QUICK_SECONDS : THR_SECONDS;
    uint64_t n = (uint64_t)(rate * secs);
    return n < MIN_COUNT ? MIN_COUNT : n;
}

static void
job_init(state *s, bench_job *job, int kind, int transport, size_t size)
{
    memset(job, 0, sizeof(*job));
    job->kind = kind;
    job->transport = transport;
    job->size = size;
    snprintf(job->tag, sizeof(job->tag), "%d-%u", (int)getpid(), s->seq++);
    job->port = free_port();
    job->deadline_ns = bench_now_ns() + JOB_DEADLINE_NS;
    job->pin = s->opt.pin;
}

static void
add_result(state *s, const result *r)
{
    if (s->nresults == s->cap) {
        size_t cap = s->cap != 0 ? 2 * s->cap : 256;
        result *n = realloc(s->results, cap * sizeof(*n));
        if (n == NULL) {
            fprintf(stderr, "atbus-bench: out of memory\n");
            exit(1);
        }
        s->results = n;
        s->cap = cap;
    }
    s->results[s->nresults++] = *r;
}

static void
run_member(state *s, size_t gi, size_t si, size_t mi, unsigned rep)
{
    const group *g = &groups[gi];
    const member *m = &g->members[mi];
    size_t size = g->kind == BENCH_THROUGHPUT ? thr_sizes[si] : lat_sizes[si];
    measure_arg arg;
    arg.impl = m->impl;
    job_init(s, &arg.job, g->kind, m->transport, size);
    arg.job.count = plan_count(s, g, m, si);
    if (g->kind == BENCH_LATENCY) {
        uint64_t w = m->impl == IMPL_RING ? RING_LAT_WARMUP : LAT_WARMUP;
        arg.job.warmup = s->opt.quick ? w / QUICK_DIVISOR : w;
    }
    result r;
    memset(&r, 0, sizeof(r));
    r.group = gi;
    r.size_index = si;
    r.member = mi;
    r.rep = rep;
    run_info info;
    run_forked(measure_child, &arg, &r.out, sizeof(r.out),
               JOB_DEADLINE_NS + 10ull * 1000000000ull, &info);
    if (!info.ok) {
        r.out.ok = 0;
        snprintf(r.out.error, sizeof(r.out.error), "runner %.180s", info.error);
    }
    r.foreign_s = info.foreign_s;
    printf("BENCH case=%s transport=%s size=%zu impl=%s via=%s rep=%u "
           "count=%llu",
           kind_names[g->kind], g->name, size, impls[m->impl].name, m->via, rep,
           (unsigned long long)arg.job.count);
    if (!r.out.ok) {
        s->failures++;
        printf(" FAIL error=\"%s\"\n", r.out.error);
    } else {
        if (g->kind == BENCH_THROUGHPUT) {
            printf(" seconds=%.3f msgs_per_s=%.0f mb_per_s=%.1f", r.out.seconds,
                   r.out.msgs_per_s, r.out.mb_per_s);
        } else {
            printf(" p50_us=%.2f p99_us=%.2f p999_us=%.2f", r.out.p50_us,
                   r.out.p99_us, r.out.p999_us);
        }
        if (r.out.frames != 0) {
            /* Messages per frame: how much the library batched. */
            printf(" msgs_per_frame=%.2f resent=%llu",
                   (double)r.out.messages / (double)r.out.frames,
                   (unsigned long long)r.out.resent);
        }
        printf(" foreign_cpu_s=%.2f\n", r.foreign_s);
    }
    fflush(stdout);
    add_result(s, &r);
}

static const char *
placement(double p50_us)
{
    return p50_us < PROBE_NEAR_US  ? "near"
           : p50_us < PROBE_FAR_US ? "middle"
                                   : "far";
}

static void
probe(state *s)
{
    if (!s->opt.probe) {
        return;
    }
    measure_arg arg;
    arg.impl = IMPL_RING;
    job_init(s, &arg.job, BENCH_LATENCY, BENCH_SHM, 64);
    arg.job.count = PROBE_COUNT;
    arg.job.warmup = PROBE_COUNT / 10;
    arg.job.pin = 1;
    bench_out out;
    run_info info;
    run_forked(measure_child, &arg, &out, sizeof(out), JOB_DEADLINE_NS, &info);
    if (!info.ok || !out.ok) {
        printf("# probe failed: %s\n", info.ok ? out.error : info.error);
        return;
    }
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0) {
        load[0] = -1;
    }
    printf("# probe ring ping-pong 64 B pinned cpu0/cpu1: p50 %.2f us p99 "
           "%.2f us -> %s; load %.2f\n",
           out.p50_us, out.p99_us, placement(out.p50_us), load[0]);
    if (s->nprobes < sizeof(s->probes) / sizeof(s->probes[0])) {
        s->probes[s->nprobes++] = out.p50_us;
    }
}

static void
run_groups(state *s)
{
    for (size_t gi = 0; gi < GROUPS; gi++) {
        const group *g = &groups[gi];
        size_t nsizes = g->kind == BENCH_THROUGHPUT ? 3 : 2;
        int probed = 0;
        for (size_t si = 0; si < nsizes; si++) {
            char name[64];
            snprintf(
                name, sizeof(name), "%s/%s/%zu", kind_names[g->kind], g->name,
                g->kind == BENCH_THROUGHPUT ? thr_sizes[si] : lat_sizes[si]);
            if (!case_selected(&s->opt, name)) {
                continue;
            }
            if (!probed) {
                probe(s);
                probed = 1;
            }
            for (unsigned rep = 0; rep < s->opt.reps; rep++) {
                for (size_t mi = 0; mi < g->n; mi++) {
                    if (impl_selected(&s->opt, g->members[mi].impl)) {
                        run_member(s, gi, si, mi, rep);
                    }
                }
            }
        }
    }
}

/* ---- route, discovery, etcd ---- */

#define ROUTE_FIGURES 7

static const char *const route_keys[ROUTE_FIGURES] = {
    "relation_warm_ns",  "relation_bump_ns", "relation_deep_ns", "next_hop_ns",
    "build_ns_per_node", "bytes_per_node",   "max_depth",
};

static void
route_figures(const struct atb_bench_route_result *r, double *v)
{
    v[0] = r->relation_warm_ns;
    v[1] = r->relation_bump_ns;
    v[2] = r->relation_deep_ns;
    v[3] = r->next_hop_ns;
    v[4] = r->build_ns_per_node;
    v[5] = r->bytes_per_node_cached;
    v[6] = (double)r->max_depth;
}

static int
route_child(const void *arg, void *res)
{
    unsigned seed = *(const unsigned *)arg;
    return atb_bench_route(ROUTE_NODES, seed, res) == ATBUS_OK ? 0 : -1;
}

static int
codec_child(const void *arg, void *res)
{
    return bench_codec(*(const uint64_t *)arg, res);
}

static int
etcd_child(const void *arg, void *res)
{
    return atb_bench_etcd_run(arg, res) == ATBUS_OK ? 0 : -1;
}

static double median(double *v, size_t n);

typedef struct extra {
    double route[ROUTE_FIGURES];
    size_t route_nodes;
    int route_ran;
    double codec_encode_ns;
    double codec_decode_ns;
    size_t codec_bytes;
    int codec_ran;
    atb_bench_etcd_result etcd;
    atb_bench_etcd_config etcd_cfg;
    int etcd_ran; /* 1 ran, -1 failed */
} extra;

static void
run_route(state *s, extra *x)
{
    if (!case_selected(&s->opt, "route")) {
        return;
    }
    double fig[ROUTE_FIGURES][50];
    size_t n = 0;
    for (unsigned rep = 0; rep < s->opt.reps; rep++) {
        struct atb_bench_route_result r;
        unsigned seed = 1 + rep;
        run_info info;
        run_forked(route_child, &seed, &r, sizeof(r), JOB_DEADLINE_NS * 2,
                   &info);
        if (!info.ok) {
            s->failures++;
            printf("BENCH case=route nodes=%u rep=%u FAIL error=\"%s\"\n",
                   ROUTE_NODES, rep, info.error);
            continue;
        }
        double v[ROUTE_FIGURES];
        route_figures(&r, v);
        printf("BENCH case=route nodes=%zu rep=%u", r.nodes, rep);
        for (size_t k = 0; k < ROUTE_FIGURES; k++) {
            printf(" %s=%.1f", route_keys[k], v[k]);
            fig[k][n] = v[k];
        }
        printf(" foreign_cpu_s=%.2f\n", info.foreign_s);
        x->route_nodes = r.nodes;
        n++;
    }
    if (n != 0) {
        for (size_t k = 0; k < ROUTE_FIGURES; k++) {
            x->route[k] = median(fig[k], n);
        }
        x->route_ran = 1;
    }
}

static void
run_codec(state *s, extra *x)
{
    if (!case_selected(&s->opt, "discovery")) {
        return;
    }
    double enc[50];
    double dec[50];
    size_t n = 0;
    uint64_t iterations =
        s->opt.quick ? CODEC_ITERATIONS / QUICK_DIVISOR : CODEC_ITERATIONS;
    for (unsigned rep = 0; rep < s->opt.reps; rep++) {
        bench_codec_out c;
        run_info info;
        run_forked(codec_child, &iterations, &c, sizeof(c), JOB_DEADLINE_NS,
                   &info);
        if (!info.ok) {
            s->failures++;
            printf("BENCH case=discovery rep=%u FAIL error=\"%s\"\n", rep,
                   info.error);
            continue;
        }
        printf("BENCH case=discovery op=encode rep=%u iterations=%llu "
               "ns_per_op=%.0f json_bytes=%zu\n",
               rep, (unsigned long long)iterations, c.encode_ns, c.json_bytes);
        printf("BENCH case=discovery op=decode rep=%u iterations=%llu "
               "ns_per_op=%.0f json_bytes=%zu\n",
               rep, (unsigned long long)iterations, c.decode_ns, c.json_bytes);
        enc[n] = c.encode_ns;
        dec[n] = c.decode_ns;
        x->codec_bytes = c.json_bytes;
        n++;
    }
    if (n != 0) {
        x->codec_encode_ns = median(enc, n);
        x->codec_decode_ns = median(dec, n);
        x->codec_ran = 1;
    }
}

static void
run_etcd(state *s, extra *x)
{
    if (!case_selected(&s->opt, "etcd")) {
        return;
    }
    if (s->opt.etcd == NULL) {
        printf("SKIP etcd (no --etcd endpoint)\n");
        return;
    }
    atb_bench_etcd_config_default(&x->etcd_cfg);
    x->etcd_cfg.endpoint = s->opt.etcd;
    if (s->opt.quick) {
        x->etcd_cfg.records /= QUICK_DIVISOR;
        x->etcd_cfg.probes /= QUICK_DIVISOR;
    }
    run_info info;
    run_forked(etcd_child, &x->etcd_cfg, &x->etcd, sizeof(x->etcd),
               5 * JOB_DEADLINE_NS, &info);
    if (!info.ok) {
        s->failures++;
        x->etcd_ran = -1;
        printf("BENCH case=etcd FAIL error=\"%s\"\n", info.error);
        return;
    }
    const atb_bench_etcd_result *r = &x->etcd;
    printf("BENCH case=etcd records=%zu value_size=%zu register_s=%.2f "
           "register_per_s=%.0f list_s=%.3f latency_p50_ms=%.2f "
           "latency_p99_ms=%.2f latency_max_ms=%.2f "
           "cache_bytes_per_record=%.0f watcher_bytes_per_record=%.0f\n",
           x->etcd_cfg.records, x->etcd_cfg.value_size, r->register_s,
           r->register_per_s, r->list_s, r->latency_p50_ms, r->latency_p99_ms,
           r->latency_max_ms, r->cache_bytes_per_record,
           r->watcher_bytes_per_record);
    x->etcd_ran = 1;
}

/* ---- summary ---- */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
    if (n == 0) {
        return NAN;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Medians of one implementation in one case. */
typedef struct cell {
    int present; /* measured at least once */
    int failed;  /* some repetition failed */
    size_t n;
    double msgs_per_s;
    double mb_per_s;
    double p50;
    double p99;
    double p999;
    /* Range over the repetitions of msg/s (throughput) or p50. */
    double lo;
    double hi;
} cell;

static cell
cell_of(const state *s, size_t gi, size_t si, size_t mi)
{
    cell c;
    memset(&c, 0, sizeof(c));
    double v[5][50];
    for (size_t i = 0; i < s->nresults; i++) {
        const result *r = &s->results[i];
        if (r->group != gi || r->size_index != si || r->member != mi) {
            continue;
        }
        c.present = 1;
        if (!r->out.ok) {
            c.failed = 1;
            continue;
        }
        if (c.n < 50) {
            v[0][c.n] = r->out.msgs_per_s;
            v[1][c.n] = r->out.mb_per_s;
            v[2][c.n] = r->out.p50_us;
            v[3][c.n] = r->out.p99_us;
            v[4][c.n] = r->out.p999_us;
            c.n++;
        }
    }
    c.msgs_per_s = median(v[0], c.n);
    c.mb_per_s = median(v[1], c.n);
    c.p50 = median(v[2], c.n);
    c.p99 = median(v[3], c.n);
    c.p999 = median(v[4], c.n);
    /* median sorted them. */
    const double *main_figure = groups[gi].kind == BENCH_LATENCY ? v[2] : v[0];
    if (c.n != 0) {
        c.lo = main_figure[0];
        c.hi = main_figure[c.n - 1];
    }
    return c;
}

/* human writes a rate with a k/M suffix. */
static const char *
human(char *buf, size_t len, double v)
{
    if (v >= 1e6) {
        snprintf(buf, len, "%.2fM", v / 1e6);
    } else if (v >= 1e3) {
        snprintf(buf, len, "%.0fk", v / 1e3);
    } else {
        snprintf(buf, len, "%.0f", v);
    }
    return buf;
}

static const char *
cell_text(char *buf, size_t len, int kind, const cell *c)
{
    char a[32];
    if (!c->present) {
        snprintf(buf, len, "-");
    } else if (c->n == 0) {
        snprintf(buf, len, "FAIL");
    } else if (kind == BENCH_THROUGHPUT) {
        char lo[32];
        char hi[32];
        snprintf(buf, len, "%s msg/s (%s..%s), %.0f MB/s%s",
                 human(a, sizeof(a), c->msgs_per_s),
                 human(lo, sizeof(lo), c->lo), human(hi, sizeof(hi), c->hi),
                 c->mb_per_s, c->failed ? " (a rep FAILED)" : "");
    } else {
        snprintf(buf, len, "%.1f (%.1f..%.1f) / %.1f / %.1f%s", c->p50, c->lo,
                 c->hi, c->p99, c->p999, c->failed ? " (a rep FAILED)" : "");
    }
    return buf;
}

/* The targets of the benchmark issue: ratio atbus/peer of throughput
 * (higher is better) or round-trip p50 (lower is better). */
typedef struct target {
    int kind;
    int transport;
    size_t size;
    int impl;    /* the peer */
    int at_most; /* 1: ratio <= value (latency); 0: ratio >= value */
    double value;
} target;

static const target targets[] = {
    {BENCH_THROUGHPUT, BENCH_MEM, 64, IMPL_ZMQ, 0, 1.0},
    {BENCH_THROUGHPUT, BENCH_UNIX, 64, IMPL_ZMQ, 0, 1.5},
    {BENCH_THROUGHPUT, BENCH_UNIX, 1024, IMPL_ZMQ, 0, 1.0},
    {BENCH_THROUGHPUT, BENCH_UNIX, 16384, IMPL_ZMQ, 0, 1.0},
    {BENCH_THROUGHPUT, BENCH_TCP, 64, IMPL_ZMQ, 0, 1.5},
    {BENCH_THROUGHPUT, BENCH_TCP, 1024, IMPL_ZMQ, 0, 1.0},
    {BENCH_THROUGHPUT, BENCH_TCP, 16384, IMPL_ZMQ, 0, 1.0},
    {BENCH_THROUGHPUT, BENCH_SHM, 64, IMPL_RING, 0, 0.30},
    {BENCH_THROUGHPUT, BENCH_SHM, 16384, IMPL_RING, 0, 0.50},
    {BENCH_LATENCY, BENCH_UNIX, 64, IMPL_PINGPONG, 1, 1.3},
    {BENCH_LATENCY, BENCH_UNIX, 1024, IMPL_PINGPONG, 1, 1.3},
    {BENCH_LATENCY, BENCH_UNIX, 64, IMPL_ZMQ, 1, 0.7},
    {BENCH_LATENCY, BENCH_UNIX, 1024, IMPL_ZMQ, 1, 0.7},
    {BENCH_LATENCY, BENCH_TCP, 64, IMPL_PINGPONG, 1, 1.3},
    {BENCH_LATENCY, BENCH_TCP, 1024, IMPL_PINGPONG, 1, 1.3},
    {BENCH_LATENCY, BENCH_TCP, 64, IMPL_ZMQ, 1, 0.7},
    {BENCH_LATENCY, BENCH_TCP, 1024, IMPL_ZMQ, 1, 0.7},
    /* One relay hop adds at most half to the direct round trip. */
    {BENCH_LATENCY, BENCH_RELAY, 64, IMPL_ATBUS, 1, 1.5},
    {BENCH_LATENCY, BENCH_RELAY, 1024, IMPL_ATBUS, 1, 1.5},
};
#define TARGETS (sizeof(targets) / sizeof(targets[0]))

static const target *
target_for(const group *g, size_t size, int impl)
{
    for (size_t i = 0; i < TARGETS; i++) {
        const target *t = &targets[i];
        if (t->kind == g->kind && t->transport == g->transport &&
            t->size == size && t->impl == impl) {
            return t;
        }
    }
    return NULL;
}

typedef struct tally {
    unsigned met;
    unsigned missed;
    unsigned open; /* not measured in this run */
} tally;

static void
summary_row(const state *s, size_t gi, size_t si, size_t mi, tally *t)
{
    const group *g = &groups[gi];
    size_t size = g->kind == BENCH_THROUGHPUT ? thr_sizes[si] : lat_sizes[si];
    cell a = cell_of(s, gi, si, 0);
    cell p = cell_of(s, gi, si, mi);
    if (!a.present && !p.present) {
        return;
    }
    char at[160];
    char pt[160];
    char ratio[48] = "-";
    int have = a.n != 0 && p.n != 0;
    double r = NAN;
    if (have && g->kind == BENCH_THROUGHPUT) {
        r = a.msgs_per_s / p.msgs_per_s;
        snprintf(ratio, sizeof(ratio), "%.2f", r);
    } else if (have) {
        r = a.p50 / p.p50;
        snprintf(ratio, sizeof(ratio), "%.2f (p99 %.2f)", r, a.p99 / p.p99);
    }
    const target *tg = target_for(g, size, g->members[mi].impl);
    char goal[64] = "";
    if (tg != NULL) {
        const char *verdict;
        if (!have) {
            verdict = "not measured";
            t->open++;
        } else if (tg->at_most ? r <= tg->value : r >= tg->value) {
            verdict = "met";
            t->met++;
        } else {
            verdict = "MISSED";
            t->missed++;
        }
        /* The exact ratio: 1.497 must not read as 1.50 and missed. */
        snprintf(goal, sizeof(goal), "%s %.2f (is %.3f): %s",
                 tg->at_most ? "<=" : ">=", tg->value, r, verdict);
    }
    printf("| %s %s %zu B | %s | %s %s | %s | %s | %s |\n", kind_names[g->kind],
           g->name, size, cell_text(at, sizeof(at), g->kind, &a),
           impls[g->members[mi].impl].name, g->members[mi].via,
           cell_text(pt, sizeof(pt), g->kind, &p), ratio, goal);
}

static void
summary(const state *s, const extra *x)
{
    printf("\n== summary: medians of %u repetition%s; ratio = atbus / peer "
           "==\n",
           s->opt.reps, s->opt.reps == 1 ? "" : "s");
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) == 3) {
        printf("load average at the end: %.2f %.2f %.2f\n", load[0], load[1],
               load[2]);
    }
    if (s->nprobes != 0) {
        printf("placement probes (p50 us):");
        for (size_t i = 0; i < s->nprobes; i++) {
            printf(" %.2f (%s)", s->probes[i], placement(s->probes[i]));
        }
        printf("\n");
    }
    printf("\nThroughput: msg/s (min..max of the repetitions) and MB/s of "
           "payload, ratio of msg/s. Round trips: p50 (min..max) / p99 / "
           "p99.9 in us, ratio of p50 (lower is better).\n\n");
    printf("| case | atbus | peer | peer figure | atbus/peer | target |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    tally t = {0, 0, 0};
    for (size_t gi = 0; gi < GROUPS; gi++) {
        const group *g = &groups[gi];
        size_t nsizes = g->kind == BENCH_THROUGHPUT ? 3 : 2;
        for (size_t si = 0; si < nsizes; si++) {
            for (size_t mi = 1; mi < g->n; mi++) {
                summary_row(s, gi, si, mi, &t);
            }
        }
    }
    printf("\n");
    if (x->route_ran) {
        printf("route, %zu nodes (CPU time per query, median): relation %.0f "
               "ns warm, %.0f ns after a version bump, %.0f ns deepest "
               "(depth %.0f); next hop %.0f ns; build %.0f ns per node; %.0f "
               "B per node\n",
               x->route_nodes, x->route[0], x->route[1], x->route[2],
               x->route[6], x->route[3], x->route[4], x->route[5]);
    }
    if (x->codec_ran) {
        printf("discovery record (%zu B of JSON, CPU time, median): encode "
               "%.0f ns, decode %.0f ns\n",
               x->codec_bytes, x->codec_encode_ns, x->codec_decode_ns);
    }
    if (x->etcd_ran == 1) {
        printf("etcd %s: %zu records registered at %.0f/s; watcher synced "
               "in %.3f s; put -> event p50 %.2f ms, p99 %.2f ms\n",
               x->etcd_cfg.endpoint, x->etcd_cfg.records,
               x->etcd.register_per_s, x->etcd.list_s, x->etcd.latency_p50_ms,
               x->etcd.latency_p99_ms);
    }
    printf("targets: %u met, %u missed, %u not measured\n", t.met, t.missed,
           t.open);
    if (s->failures != 0) {
        printf("FAIL: %u measurement%s failed (see FAIL lines above)\n",
               s->failures, s->failures == 1 ? "" : "s");
    }
}

/* ---- the run ---- */

static void
print_machine(const options *o)
{
    char model[128] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL) {
            char *c = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && c != NULL) {
                snprintf(model, sizeof(model), "%s", c + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) != 0) {
        snprintf(u.release, sizeof(u.release), "?");
    }
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) != 3) {
        load[0] = -1;
    }
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);
    printf("# atbus-bench: atbus %s, ZeroMQ %d.%d.%d, nng %s\n",
           atbus_version(), zmaj, zmin, zpat, nng_version());
    printf("# machine: %ld CPUs, %s, kernel %s; load average %.2f %.2f "
           "%.2f\n",
           sysconf(_SC_NPROCESSORS_ONLN), model, u.release, load[0], load[1],
           load[2]);
    printf("# %s, %u repetition%s, %s\n", o->quick ? "quick" : "full", o->reps,
           o->reps == 1 ? "" : "s",
           o->pin ? "sides pinned to cpu0/cpu1" : "not pinned");
}

static void
list_cases(void)
{
    for (size_t gi = 0; gi < GROUPS; gi++) {
        const group *g = &groups[gi];
        size_t nsizes = g->kind == BENCH_THROUGHPUT ? 3 : 2;
        for (size_t si = 0; si < nsizes; si++) {
            printf("%s/%s/%zu:", kind_names[g->kind], g->name,
                   g->kind == BENCH_THROUGHPUT ? thr_sizes[si] : lat_sizes[si]);
            for (size_t mi = 0; mi < g->n; mi++) {
                printf(" %s(%s)", impls[g->members[mi].impl].name,
                       g->members[mi].via);
            }
            printf("\n");
        }
    }
    printf("route\ndiscovery\netcd (with --etcd)\n");
}

int
main(int argc, char **argv)
{
    state s;
    memset(&s, 0, sizeof(s));
    if (parse_options(argc, argv, &s.opt) != 0) {
        return 2;
    }
    if (s.opt.list) {
        groups_init();
        list_cases();
        return 0;
    }
    /* A side that went away must fail a write, not kill the run. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    groups_init();
    print_machine(&s.opt);
    uint64_t t0 = bench_now_ns();
    extra x;
    memset(&x, 0, sizeof(x));
    run_groups(&s);
    if (s.nresults != 0) {
        probe(&s);
    }
    run_route(&s, &x);
    run_codec(&s, &x);
    run_etcd(&s, &x);
    summary(&s, &x);
    printf("# done in %.0f s\n", (double)(bench_now_ns() - t0) / 1e9);
    free(s.results);
    return s.failures != 0 ? 1 : 0;
}
