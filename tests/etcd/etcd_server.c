/*
 * Real etcd processes for tests (see etcd_server.h).
 */
#define _GNU_SOURCE /* mkdtemp, nftw, pipe2 */
#include "etcd_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "testing.h"

extern char **environ;

static char server_root[256];

static int
server_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (path == NULL) {
        return 0;
    }
    char buf[1024];
    const char *p = path;
    while (*p != '\0') {
        const char *end = strchr(p, ':');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0) {
            return 1;
        }
        p += n;
        if (*p == ':') {
            p++;
        }
    }
    return 0;
}

int
atb_test_etcd_available(void)
{
    return server_in_path("etcd") && server_in_path("etcdctl");
}

int
atb_test_etcd_root_create(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(server_root, sizeof(server_root), "%s/atbus-etcd-XXXXXX", base);
    if (mkdtemp(server_root) == NULL) {
        server_root[0] = '\0';
        return -1;
    }
    setenv("ETCDCTL_API", "3", 1);
    return 0;
}

int
atb_test_etcd_suite_prepare(void)
{
    if (!atb_test_etcd_available()) {
        printf("SKIP: etcd or etcdctl not found in PATH (Debian packages "
               "etcd-server and etcd-client)\n");
        return 77;
    }
    if (atb_test_etcd_root_create() != 0) {
        printf("cannot create a directory for etcd data\n");
        return EXIT_FAILURE;
    }
    return 0;
}

static int
server_rm_entry(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void
server_rm_tree(const char *dir)
{
    if (dir[0] != '\0') {
        (void)nftw(dir, server_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

void
atb_test_etcd_root_remove(void)
{
    server_rm_tree(server_root);
    server_root[0] = '\0';
}

/* server_health asks member m for /health once; 1 when healthy. */
static int
server_health(const atb_test_etcd_member *m)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)m->client_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int healthy = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        static const char req[] =
            "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        char buf[1024];
        size_t got = 0;
        if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
            ssize_t r;
            while (got < sizeof(buf) - 1 &&
                   (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
                got += (size_t)r;
            }
        }
        buf[got] = '\0';
        healthy = strstr(buf, "\"health\":\"true\"") != NULL;
    }
    close(fd);
    return healthy;
}

static int
server_wait_ready(const atb_test_etcd_member *m, uint64_t deadline_us)
{
    while (atb_clock_us() < deadline_us) {
        if (server_health(m)) {
            return 0;
        }
        /* etcd has no readiness event to wait on: poll its endpoint. */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "etcd %s on %s not healthy in time (log: %s.log)\n",
            m->name, m->url, m->dir);
    return -1;
}

static int
server_spawn(atb_test_etcd *e, atb_test_etcd_member *m)
{
    char listen_peer[64];
    char log[300];
    snprintf(listen_peer, sizeof(listen_peer), "http://127.0.0.1:%d",
             m->peer_port);
    snprintf(log, sizeof(log), "%s.log", m->dir);
    const char *argv[] = {"etcd",      "--name",
                          m->name,     "--data-dir",
                          m->dir,      "--listen-client-urls",
                          m->url,      "--advertise-client-urls",
                          m->url,      "--listen-peer-urls",
                          listen_peer, "--initial-advertise-peer-urls",
                          listen_peer, "--initial-cluster",
                          e->cluster,  "--initial-cluster-state",
                          "new",       "--initial-cluster-token",
                          e->token,    "--heartbeat-interval",
                          "100",       "--election-timeout",
                          "1000",      "--logger",
                          "zap",       "--log-outputs",
                          "stderr",    "--log-level",
                          "warn",      NULL};
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* The child only execs: no Check, no allocation, no atexit. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        execvp("etcd", (char *const *)(void *)argv);
        _exit(127);
    }
    close(logfd);
    if (pid < 0) {
        return -1;
    }
    m->pid = pid;
    return 0;
}

void
atb_test_etcd_kill(atb_test_etcd *e, size_t i, int sig)
{
    atb_test_etcd_member *m = &e->m[i];
    if (m->pid > 0) {
        kill(m->pid, sig);
        while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        m->pid = 0;
    }
}

void
atb_test_etcd_stop(atb_test_etcd *e)
{
    for (size_t i = 0; i < e->n; i++) {
        atb_test_etcd_kill(e, i, SIGKILL);
        char log[300];
        snprintf(log, sizeof(log), "%s.log", e->m[i].dir);
        server_rm_tree(e->m[i].dir);
        remove(log);
    }
    e->n = 0;
}

/* server_ports picks 2n distinct free loopback ports. */
static void
server_ports(int *ports, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int dup;
        do {
            ports[i] = atb_test_free_port(AF_INET, SOCK_STREAM);
            dup = 0;
            for (size_t j = 0; j < i; j++) {
                dup |= ports[j] == ports[i];
            }
        } while (dup);
    }
}

int
atb_test_etcd_start(atb_test_etcd *e, size_t n, int timeout_ms)
{
    static unsigned serial;
    memset(e, 0, sizeof(*e));
    if (n == 0 || n > ATB_TEST_ETCD_MAX || server_root[0] == '\0') {
        return -1;
    }
    int ports[2 * ATB_TEST_ETCD_MAX];
    server_ports(ports, 2 * n);
    e->n = n;
    snprintf(e->token, sizeof(e->token), "atbus-%d-%u", (int)getpid(),
             serial++);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        atb_test_etcd_member *m = &e->m[i];
        snprintf(m->name, sizeof(m->name), "m%zu", i);
        m->client_port = ports[2 * i];
        m->peer_port = ports[2 * i + 1];
        snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->client_port);
        char dir[sizeof(m->dir)];
        snprintf(dir, sizeof(dir), "%.150s/%.60s-m%zu", server_root, e->token,
                 i);
        memcpy(m->dir, dir, sizeof(dir));
        off += (size_t)snprintf(e->cluster + off, sizeof(e->cluster) - off,
                                "%s%s=http://127.0.0.1:%d", i ? "," : "",
                                m->name, m->peer_port);
    }
    for (size_t i = 0; i < n; i++) {
        if (server_spawn(e, &e->m[i]) != 0) {
            atb_test_etcd_stop(e);
            return -1;
        }
    }
    uint64_t deadline = atb_clock_us() + (uint64_t)timeout_ms * 1000;
    for (size_t i = 0; i < n; i++) {
        if (server_wait_ready(&e->m[i], deadline) != 0) {
            atb_test_etcd_stop(e);
            return -1;
        }
    }
    return 0;
}

int
atb_test_etcd_restart(atb_test_etcd *e, size_t i, int timeout_ms)
{
    atb_test_etcd_member *m = &e->m[i];
    if (m->pid > 0 || server_spawn(e, m) != 0) {
        return -1;
    }
    return server_wait_ready(m, atb_clock_us() + (uint64_t)timeout_ms * 1000);
}

int
atb_test_etcdctl(const atb_test_etcd *e, size_t i, char *out, size_t cap,
                 const char *const *args)
{
    char endpoints[96];
    snprintf(endpoints, sizeof(endpoints), "--endpoints=%s", e->m[i].url);
    const char *argv[24];
    size_t argc = 0;
    argv[argc++] = "etcdctl";
    argv[argc++] = endpoints;
    for (size_t k = 0; args[k] != NULL && argc < 23; k++) {
        argv[argc++] = args[k];
    }
    argv[argc] = NULL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
    pid_t pid;
    int rc = posix_spawnp(&pid, "etcdctl", &fa, NULL,
                          (char *const *)(void *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return -1;
    }
    size_t got = 0;
    uint64_t deadline = atb_clock_us() + 10 * 1000000ull;
    int timed_out = 0;
    for (;;) {
        uint64_t now = atb_clock_us();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, (int)((deadline - now) / 1000) + 1) < 0 &&
            errno != EINTR) {
            break;
        }
        char tmp[512];
        ssize_t r = read(pfd[0], tmp, sizeof(tmp));
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
            break;
        }
        for (ssize_t k = 0; k < r && got + 1 < cap; k++) {
            out[got++] = tmp[k];
        }
    }
    if (cap > 0) {
        out[got < cap ? got : cap - 1] = '\0';
    }
    close(pfd[0]);
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}
