/*
 * The hub: one node that every app connects to. It checks each data
 * message (order and content), answers "end <run>" with what it saw, and
 * echoes pings. It keeps no timing of its own: apps measure from their
 * side, from first send to the hub's answer.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Apps connected at once: one per channel run, one or two for the
 * channel choice. */
#define HUB_PEERS 8

/* What the hub has seen of one app's current run. */
typedef struct hub_peer {
    int used;
    char name[ATBUS_NAME_MAX + 1];
    uint32_t run;
    uint64_t next_seq;
    uint64_t received;
    uint64_t bad;
    uint64_t reordered;
} hub_peer;

struct demo_hub {
    atbus_node *node;
    hub_peer peers[HUB_PEERS];
    uint64_t anomalies;
};

static hub_peer *
hub_peer_find(demo_hub *hub, const char *name, int create)
{
    hub_peer *spare = NULL;
    for (size_t i = 0; i < HUB_PEERS; i++) {
        hub_peer *p = &hub->peers[i];
        if (p->used && strcmp(p->name, name) == 0) {
            return p;
        }
        if (!p->used && spare == NULL) {
            spare = p;
        }
    }
    if (!create || spare == NULL) {
        return NULL;
    }
    memset(spare, 0, sizeof(*spare));
    spare->used = 1;
    snprintf(spare->name, sizeof(spare->name), "%s", name);
    return spare;
}

static void
hub_on_data(demo_hub *hub, const char *source, const uint8_t *data, size_t len)
{
    hub_peer *p = hub_peer_find(hub, source, 1);
    if (p == NULL) {
        hub->anomalies++;
        return;
    }
    uint32_t run;
    uint64_t seq;
    if (!demo_parse(data, len, &run, &seq)) {
        p->bad++;
        return;
    }
    if (run != p->run) {
        /* Runs only go forward; a new number starts a fresh count. */
        p->run = run;
        p->next_seq = 0;
        p->received = 0;
        p->bad = 0;
        p->reordered = 0;
    }
    p->received++;
    if (seq < p->next_seq) {
        p->reordered++;
    } else {
        /* A gap is loss (udp); the app compares counts at the end. */
        p->next_seq = seq + 1;
    }
}

static void
hub_on_ctrl(demo_hub *hub, const char *source, const uint8_t *data, size_t len)
{
    char text[64];
    if (len >= sizeof(text)) {
        hub->anomalies++;
        return;
    }
    memcpy(text, data, len);
    text[len] = '\0';
    uint32_t run;
    if (sscanf(text, "end %" SCNu32, &run) != 1) {
        hub->anomalies++;
        return;
    }
    const hub_peer *p = hub_peer_find(hub, source, 0);
    int same = p != NULL && p->run == run;
    char answer[128];
    int n = snprintf(answer, sizeof(answer),
                     "done %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64, run,
                     same ? p->received : 0, same ? p->bad : 0,
                     same ? p->reordered : 0);
    /* "end" is repeated until answered, so a failed answer only costs
     * time; it is counted so a stuck run can be explained. */
    if (atbus_node_send(hub->node, source, DEMO_STREAM_CTRL, answer,
                        (size_t)n) != ATBUS_OK) {
        hub->anomalies++;
    }
}

static void
hub_on_message(atbus_node *node, const char *source, int64_t stream_id,
               const void *data, size_t len, void *arg)
{
    demo_hub *hub = arg;
    switch (stream_id) {
    case DEMO_STREAM_DATA:
        hub_on_data(hub, source, data, len);
        break;
    case DEMO_STREAM_CTRL:
        hub_on_ctrl(hub, source, data, len);
        break;
    case DEMO_STREAM_PING:
        /* A lost pong is the app's to time out and count. */
        if (atbus_node_send(node, source, DEMO_STREAM_PONG, data, len) !=
            ATBUS_OK) {
            hub->anomalies++;
        }
        break;
    default:
        hub->anomalies++;
        break;
    }
}

static void
hub_on_peer_down(atbus_node *node, const char *name, int reason, void *arg)
{
    (void)node;
    (void)reason;
    hub_peer *p = hub_peer_find(arg, name, 0);
    if (p != NULL) {
        p->used = 0;
    }
}

int
demo_hub_new(demo_hub **out)
{
    demo_hub *hub = calloc(1, sizeof(*hub));
    if (hub == NULL) {
        return ATBUS_ENOMEM;
    }
    atbus_node_config cfg;
    atbus_node_config_default(&cfg);
    cfg.name = DEMO_HUB_NAME;
    int rc = atbus_node_new(&hub->node, &cfg);
    if (rc != ATBUS_OK) {
        free(hub);
        return rc;
    }
    atbus_node_callbacks cbs = {
        .on_message = hub_on_message,
        .on_peer_down = hub_on_peer_down,
    };
    atbus_node_set_callbacks(hub->node, &cbs, hub);
    *out = hub;
    return ATBUS_OK;
}

int
demo_hub_listen(demo_hub *hub, const char *url)
{
    return atbus_node_listen(hub->node, url);
}

atbus_node *
demo_hub_node(demo_hub *hub)
{
    return hub->node;
}

uint64_t
demo_hub_anomalies(const demo_hub *hub)
{
    return hub->anomalies;
}

void
demo_hub_free(demo_hub *hub)
{
    if (hub == NULL) {
        return;
    }
    atbus_node_free(hub->node);
    free(hub);
}
