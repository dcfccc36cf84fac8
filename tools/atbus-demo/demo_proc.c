/*
 * Child processes: one node each, for the relays and the apps that must
 * really be elsewhere (a relay that is killed with SIGKILL, an app that
 * shares a host but not a process).
 *
 * Children are forked before this process creates any node, so none of
 * them inherits a node's sockets, shared memory or threads. Each waits on
 * a pipe for its spec (text, one field a line, then "go"), creates its
 * node, and then answers the parent's questions about it, one line each:
 *
 *   ready        "ready 1", or "ready 0 <missing peer>", or "error <why>"
 *   hop <dst>    the next hop as demo_hop_format writes it
 *   stats        "stats <forwarded> <unroutable> <ttl expired> <dropped>
 *                <unexpected messages>"
 *
 * A child ends when the parent closes the pipe or after CHILD_LIFETIME_MS,
 * whichever comes first, so no child outlives a stuck demo for long.
 */
#define _POSIX_C_SOURCE 200809L
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_LIFETIME_MS (10 * 60 * 1000)
/* How long a finishing child has to exit before it is killed. */
#define FINISH_MS 3000

/* Every child spawned, so a new child can close its siblings' pipes: a
 * sibling's pipe held open here would hide its EOF. */
static demo_proc *procs[DEMO_MAX_NODES + 2];
static size_t nprocs;

/* ---- the child side ---- */

typedef struct child {
    int cmd_fd;
    int res_fd;
    char buf[4096];
    size_t used;
    demo_spec spec;
    demo_node dn;
    int started;
} child;

static void
child_say(child *c, const char *line)
{
    size_t len = strlen(line);
    char out[600];
    if (len + 2 > sizeof(out)) {
        len = sizeof(out) - 2;
    }
    memcpy(out, line, len);
    out[len++] = '\n';
    const char *p = out;
    while (len > 0) {
        ssize_t w = write(c->res_fd, p, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            _exit(3); /* the parent is gone */
        }
        p += w;
        len -= (size_t)w;
    }
}

/* take_line moves the first complete line of buf (used bytes) into
 * line[size], cut if needed. Returns 0 when there is none yet. */
static int
take_line(char *buf, size_t *used, char *line, size_t size)
{
    char *nl = memchr(buf, '\n', *used);
    if (nl == NULL) {
        return 0;
    }
    size_t len = (size_t)(nl - buf);
    size_t keep = len < size ? len : size - 1;
    memcpy(line, buf, keep);
    line[keep] = '\0';
    *used -= len + 1;
    memmove(buf, nl + 1, *used);
    return 1;
}

/* child_spec_line applies one line of the spec. */
static void
child_spec_line(demo_spec *s, const char *line)
{
    char key[16];
    char a[DEMO_URL_MAX];
    a[0] = '\0';
    if (sscanf(line, "%15s %159s", key, a) < 1) {
        return;
    }
    if (strcmp(key, "name") == 0) {
        demo_copy(s->name, sizeof(s->name), a);
    } else if (strcmp(key, "host") == 0) {
        demo_copy(s->hostname, sizeof(s->hostname), a);
    } else if (strcmp(key, "ns") == 0) {
        demo_copy(s->namespace_name, sizeof(s->namespace_name), a);
    } else if (strcmp(key, "client") == 0) {
        s->client = 1;
    } else if (strcmp(key, "relay") == 0) {
        s->relay = 1;
    } else if (strcmp(key, "prefer") == 0) {
        s->prefer_target_relay = 1;
    } else if (strcmp(key, "up") == 0 && s->nups < DEMO_MAX_UPS) {
        demo_copy(s->ups[s->nups++], DEMO_NAME_MAX, a);
    } else if (strcmp(key, "listen") == 0 && s->nlisten < DEMO_MAX_LISTEN) {
        demo_copy(s->listen[s->nlisten++], DEMO_URL_MAX, a);
    } else if (strcmp(key, "dial") == 0 && s->ndial < DEMO_MAX_DIAL) {
        demo_copy(s->dial[s->ndial++], DEMO_URL_MAX, a);
    } else if (strcmp(key, "expect") == 0 && s->nexpect < DEMO_MAX_NODES) {
        demo_copy(s->expect[s->nexpect++], DEMO_NAME_MAX, a);
    } else if (strcmp(key, "route") == 0 && s->nroutes < DEMO_MAX_NODES) {
        demo_route *r = &s->routes[s->nroutes++];
        memset(r, 0, sizeof(*r));
        const char *p = line + strlen("route");
        char word[DEMO_NAME_MAX];
        int n;
        int first = 1;
        while (sscanf(p, "%63s%n", word, &n) == 1) {
            p += n;
            if (first) {
                demo_copy(r->name, sizeof(r->name), word);
                first = 0;
            } else if (r->nups < DEMO_MAX_UPS) {
                demo_copy(r->ups[r->nups++], DEMO_NAME_MAX, word);
            }
        }
    }
}

static void
child_command(child *c, const char *line)
{
    char answer[600];
    if (!c->started) {
        if (strcmp(line, "go") != 0) {
            child_spec_line(&c->spec, line);
            return;
        }
        c->started = 1;
        if (demo_node_start(&c->dn, &c->spec) != ATBUS_OK) {
            c->started = -1;
        }
        return;
    }
    if (c->started < 0) {
        snprintf(answer, sizeof(answer), "error %s", c->dn.error);
    } else if (strcmp(line, "ready") == 0) {
        char missing[DEMO_NAME_MAX] = "";
        int ready = demo_node_ready(&c->dn, missing, sizeof(missing));
        snprintf(answer, sizeof(answer), "ready %d %s", ready, missing);
    } else if (strncmp(line, "hop ", 4) == 0) {
        demo_hop h;
        demo_node_hop(&c->dn, line + 4, &h);
        demo_hop_format(&h, answer, sizeof(answer));
    } else if (strcmp(line, "stats") == 0) {
        atbus_node_stats st;
        memset(&st, 0, sizeof(st));
        atbus_node_get_stats(c->dn.node, &st);
        snprintf(
            answer, sizeof(answer),
            "stats %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
            st.frames_forwarded, st.frames_unroutable, st.frames_ttl_expired,
            st.frames_relay_dropped, c->dn.unexpected);
    } else {
        snprintf(answer, sizeof(answer), "error unknown command");
    }
    child_say(c, answer);
}

static void
child_main(int cmd_fd, int res_fd)
{
    static child c;
    memset(&c, 0, sizeof(c));
    c.cmd_fd = cmd_fd;
    c.res_fd = res_fd;
    uint64_t end = demo_now_us() + (uint64_t)CHILD_LIFETIME_MS * 1000;
    while (demo_now_us() < end) {
        struct pollfd fds[2] = {
            {.fd = cmd_fd, .events = POLLIN},
            {.fd = c.started > 0 ? atbus_node_fd(c.dn.node) : -1,
             .events = POLLIN},
        };
        int ms = 100;
        if (c.started > 0) {
            int node_ms = atbus_node_timeout_ms(c.dn.node);
            if (node_ms >= 0 && node_ms < ms) {
                ms = node_ms;
            }
        }
        (void)poll(fds, 2, ms);
        if (c.started > 0) {
            atbus_node_poll(c.dn.node, 0);
        }
        if (fds[0].revents == 0) {
            continue;
        }
        ssize_t n = read(cmd_fd, c.buf + c.used, sizeof(c.buf) - c.used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        c.used += (size_t)n;
        char line[sizeof(c.buf)];
        while (take_line(c.buf, &c.used, line, sizeof(line))) {
            child_command(&c, line);
        }
        if (c.used == sizeof(c.buf)) {
            break; /* a line longer than the buffer: not from the parent */
        }
    }
    demo_node_free(&c.dn);
    exit(0);
}

int
demo_proc_spawn(demo_proc *p, const char *name)
{
    memset(p, 0, sizeof(*p));
    demo_copy(p->name, sizeof(p->name), name);
    p->cmd_fd = -1;
    p->res_fd = -1;
    if (nprocs == sizeof(procs) / sizeof(procs[0])) {
        errno = EMFILE;
        return -1;
    }
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
        for (size_t i = 0; i < nprocs; i++) {
            close(procs[i]->cmd_fd);
            close(procs[i]->res_fd);
        }
        child_main(cmd[0], res[1]);
    }
    close(cmd[0]);
    close(res[1]);
    fcntl(res[0], F_SETFL, fcntl(res[0], F_GETFL) | O_NONBLOCK);
    p->pid = pid;
    p->cmd_fd = cmd[1];
    p->res_fd = res[0];
    procs[nprocs++] = p;
    return 0;
}

static int
proc_write(demo_proc *p, const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t w = write(p->cmd_fd, text, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        text += w;
        len -= (size_t)w;
    }
    return 0;
}

static int
proc_writef(demo_proc *p, const char *key, const char *value)
{
    char line[DEMO_URL_MAX + 32];
    snprintf(line, sizeof(line), "%s %s\n", key, value);
    return proc_write(p, line);
}

int
demo_proc_start(demo_proc *p, const demo_spec *s)
{
    int rc = proc_writef(p, "name", s->name);
    rc |= proc_writef(p, "host", s->hostname);
    rc |= proc_writef(p, "ns", s->namespace_name);
    rc |= s->client ? proc_writef(p, "client", "1") : 0;
    rc |= s->relay ? proc_writef(p, "relay", "1") : 0;
    rc |= s->prefer_target_relay ? proc_writef(p, "prefer", "1") : 0;
    for (size_t i = 0; i < s->nups; i++) {
        rc |= proc_writef(p, "up", s->ups[i]);
    }
    for (size_t i = 0; i < s->nlisten; i++) {
        rc |= proc_writef(p, "listen", s->listen[i]);
    }
    for (size_t i = 0; i < s->ndial; i++) {
        rc |= proc_writef(p, "dial", s->dial[i]);
    }
    for (size_t i = 0; i < s->nexpect; i++) {
        rc |= proc_writef(p, "expect", s->expect[i]);
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        char line[DEMO_NAME_MAX * (DEMO_MAX_UPS + 1) + 16];
        snprintf(line, sizeof(line), "route %s", s->routes[i].name);
        for (size_t k = 0; k < s->routes[i].nups; k++) {
            strncat(line, " ", sizeof(line) - strlen(line) - 1);
            strncat(line, s->routes[i].ups[k], sizeof(line) - strlen(line) - 1);
        }
        strncat(line, "\n", sizeof(line) - strlen(line) - 1);
        rc |= proc_write(p, line);
    }
    rc |= proc_write(p, "go\n");
    return rc != 0 ? -1 : 0;
}

int
demo_proc_ask(demo_proc *p, const char *cmd, char *reply, size_t size,
              int timeout_ms)
{
    char line[DEMO_NAME_MAX + 16];
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (p->killed || proc_write(p, line) != 0) {
        snprintf(reply, size, "%s does not take commands", p->name);
        return -1;
    }
    uint64_t end = demo_now_us() + (uint64_t)timeout_ms * 1000;
    for (;;) {
        if (take_line(p->buf, &p->used, reply, size)) {
            return 0;
        }
        if (p->used == sizeof(p->buf)) {
            snprintf(reply, size, "%s answered a line too long", p->name);
            return -1;
        }
        ssize_t n = read(p->res_fd, p->buf + p->used, sizeof(p->buf) - p->used);
        if (n > 0) {
            p->used += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            snprintf(reply, size, "%s closed its pipe", p->name);
            return -1;
        }
        if (demo_now_us() >= end) {
            snprintf(reply, size, "%s did not answer '%s' within %d ms",
                     p->name, cmd, timeout_ms);
            return -1;
        }
        /* Children's answers are quick; this process's nodes keep
         * turning meanwhile. */
        demo_pump(1);
    }
}

void
demo_proc_kill(demo_proc *p)
{
    if (p->pid <= 0 || p->reaped) {
        return;
    }
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, &p->wstatus, 0) < 0 && errno == EINTR) {
    }
    p->killed = 1;
    p->reaped = 1;
}

void
demo_proc_finish(demo_proc *p)
{
    if (p->cmd_fd >= 0) {
        close(p->cmd_fd);
        p->cmd_fd = -1;
    }
    if (p->pid > 0 && !p->reaped) {
        uint64_t end = demo_now_us() + FINISH_MS * 1000u;
        while (demo_now_us() < end) {
            pid_t w = waitpid(p->pid, &p->wstatus, WNOHANG);
            if (w == p->pid || (w < 0 && errno != EINTR)) {
                p->reaped = 1;
                break;
            }
            /* Let this process's nodes hear the child's goodbye. */
            demo_pump(5);
        }
        if (!p->reaped) {
            demo_proc_kill(p);
        }
    }
    if (p->res_fd >= 0) {
        close(p->res_fd);
        p->res_fd = -1;
    }
}

void
demo_proc_describe(const demo_proc *p, char *buf, size_t size)
{
    if (!p->reaped) {
        snprintf(buf, size, "%s (pid %d) is running", p->name, (int)p->pid);
    } else if (WIFEXITED(p->wstatus)) {
        snprintf(buf, size, "%s (pid %d) exited with status %d", p->name,
                 (int)p->pid, WEXITSTATUS(p->wstatus));
    } else if (WIFSIGNALED(p->wstatus)) {
        snprintf(buf, size, "%s (pid %d) was killed by signal %d", p->name,
                 (int)p->pid, WTERMSIG(p->wstatus));
    } else {
        snprintf(buf, size, "%s (pid %d) ended (wait status %#x)", p->name,
                 (int)p->pid, (unsigned)p->wstatus);
    }
}
