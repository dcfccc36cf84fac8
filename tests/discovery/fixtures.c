/* Shared records for the discovery suites (see fixtures.h). */
#include "fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static void
ok(int rc)
{
    ck_assert_int_eq(rc, ATBUS_OK);
}

void
disc_node(atbus_record *rec, const char *name, const char *ns, const char *kind)
{
    atbus_record_init(rec);
    ok(atbus_record_set_string(&rec->name, name));
    if (ns != NULL) {
        ok(atbus_record_set_string(&rec->metadata.namespace_name, ns));
    }
    if (kind != NULL) {
        ok(atbus_record_set_string(&rec->metadata.kind, kind));
    }
}

void
disc_sample_node(atbus_record *rec)
{
    disc_node(rec, "app-1.ns1", "ns1", "app");
    rec->version = 42;
    ok(atbus_record_set_string(&rec->hash_code, "9f86d081884c7d65"));
    ok(atbus_record_set_string(&rec->custom_data,
                               "{\"shard\": 3, \"note\": \"caf\xc3\xa9\"}"));
    ok(atbus_record_list_add(&rec->tokens, "tok-a"));
    ok(atbus_record_list_add(&rec->tokens, "tok-b"));
    ok(atbus_record_set_string(&rec->host.hostname, "node-7"));
    rec->host.pid = 4242;
    ok(atbus_record_set_string(&rec->metadata.api_version, "atbus.io/v1"));
    ok(atbus_record_set_string(&rec->metadata.group, "game"));
    ok(atbus_record_map_set(&rec->metadata.labels, "area.region", "CN"));
    ok(atbus_record_map_set(&rec->metadata.labels, "area.zone_id", "01"));
    ok(atbus_record_map_set(&rec->metadata.labels, "example.com/tier", ""));
    ok(atbus_record_map_set(&rec->metadata.annotations, "owner",
                            "team a, room 2"));
    atbus_gateway *gw = NULL;
    ok(atbus_record_add_gateway(rec, 1, &gw));
    ok(atbus_record_list_add(&gw->addresses, "ipv4://10.0.0.1:7000"));
    ok(atbus_record_list_add(&gw->addresses, "udp://10.0.0.1:7001"));
    ok(atbus_record_set_string(&gw->match.metadata.namespace_name, "ns1"));
    ok(atbus_record_add_gateway(rec, 0, &gw));
    ok(atbus_record_list_add(&gw->addresses, "shm://app-1"));
    ok(atbus_record_list_add(&gw->addresses, "unix:///run/atbus/app-1.sock"));
    ok(atbus_record_set_string(&gw->match.host.hostname, "node-7"));
    gw->match.host.pid = 0;
    ok(atbus_record_add_gateway(rec, 2, &gw));
    ok(atbus_record_list_add(&gw->addresses, "ipv6://[fd00::1]:7000"));
    ok(atbus_record_set_string(&gw->match.metadata.kind, "relay"));
    ok(atbus_record_map_set(&gw->match.metadata.labels, "area.region", "CN"));
    ok(atbus_record_set_string(&rec->advertise_relay.metadata.namespace_name,
                               "ns1"));
    ok(atbus_record_set_string(&rec->advertise_relay.metadata.kind, "relay"));
    ck_assert_int_eq(atbus_record_validate(rec, NULL), ATBUS_OK);
}

void
disc_sample_group(atbus_record *rec)
{
    atbus_record_init(rec);
    rec->type = ATBUS_RECORD_GROUP;
    rec->version = 7;
    ok(atbus_record_set_string(&rec->name, "all-apps"));
    ok(atbus_record_set_string(&rec->custom_data, "multicast"));
    ok(atbus_record_list_add(&rec->node_list, "app-1.ns1"));
    ok(atbus_record_list_add(&rec->node_list, "app-2.ns2"));
    ok(atbus_record_list_add(&rec->node_list, "app-3.ns1"));
    ck_assert_int_eq(atbus_record_validate(rec, NULL), ATBUS_OK);
}

static void
disc_log_error(atbus_registry *reg, const atbus_record_error *err, void *arg)
{
    (void)reg;
    disc_log *l = arg;
    if (l->count < DISC_LOG_MAX) {
        l->e[l->count] = *err;
    }
    l->count++;
}

static void
disc_log_change(atbus_registry *reg, enum atbus_registry_event ev,
                const atbus_record *rec, void *arg)
{
    (void)reg;
    disc_log *l = arg;
    l->changes++;
    l->deletes += ev == ATBUS_REGISTRY_DELETE;
    snprintf(l->last, sizeof(l->last), "%s:%s",
             atbus_record_type_name(rec->type), rec->name);
}

atbus_registry *
disc_log_registry(disc_log *l)
{
    memset(l, 0, sizeof(*l));
    atbus_registry *reg = NULL;
    ok(atbus_registry_new(&reg));
    atbus_registry_callbacks cbs = {.on_change = disc_log_change,
                                    .on_load_error = disc_log_error};
    ok(atbus_registry_set_callbacks(reg, &cbs, l));
    return reg;
}

const char *
disc_data(const char *file)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", ATB_DISC_DATA, file);
    return path;
}

char *
disc_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}
