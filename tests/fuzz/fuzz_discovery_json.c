/*
 * libFuzzer target for discovery records as JSON: atbus_record_from_json
 * (jansson, the document tree, the decoder, validation) and the encoder,
 * for node, client, group and route records.
 *
 * The input is the value a peer might have written to etcd. It is
 * decoded once plainly; an accepted record must validate, encode, decode
 * to an equal record and encode to the same bytes again, and survive the
 * matching and selection functions. A refused one must come back empty
 * with a code and a reason. The input is then read as the value of an
 * etcd key (atb_disc_sync_decode, as the etcd sync does) in a folder
 * chosen from the input's hash: what it accepts is named as the key and
 * belongs in the folder, and it agrees with the plain decode whenever
 * the record says its type. Last, the input is decoded again with one
 * allocation failing (chosen from the hash): that must give ATBUS_ENOMEM
 * with nothing left behind, or the same answer as before.
 */
#include <atbus/atbus.h>

#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "common/alloc.h"
#include "discovery/sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

static int
fuzz_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* fuzz_accepted checks what an accepted record promises. */
static void
fuzz_accepted(const atbus_record *rec)
{
    fuzz_require(rec->name != NULL);
    fuzz_require(atbus_record_validate(rec, NULL) == ATBUS_OK);
    char *text = NULL;
    fuzz_require(atbus_record_to_json(rec, &text) == ATBUS_OK);
    atbus_record back;
    fuzz_require(atbus_record_from_json(text, strlen(text), &back, NULL) ==
                 ATBUS_OK);
    fuzz_require(atbus_record_equal(rec, &back));
    char *again = NULL;
    fuzz_require(atbus_record_to_json(&back, &again) == ATBUS_OK);
    fuzz_require(strcmp(text, again) == 0);
    atbus_record copy;
    fuzz_require(atbus_record_copy(&copy, rec) == ATBUS_OK);
    fuzz_require(atbus_record_equal(&copy, rec));

    /* Selection on arbitrary records: answers, never crashes. */
    if (rec->type == ATBUS_RECORD_NODE || rec->type == ATBUS_RECORD_CLIENT) {
        atbus_gateway_choice c;
        int rc = atbus_select_gateway(rec, &copy, NULL, 0, &c);
        fuzz_require(rc == ATBUS_OK || rc == ATBUS_ENOROUTE ||
                     rc == ATBUS_EPERM);
        if (rc == ATBUS_OK) {
            fuzz_require(c.gateway_index < copy.gateways.count);
            fuzz_require(c.address ==
                         c.gateway->addresses.items[c.address_index]);
            fuzz_require(atbus_match_accepts(&c.gateway->match, rec));
        }
        for (size_t i = 0; i < rec->gateways.count; i++) {
            (void)atbus_match_accepts(&rec->gateways.items[i].match, &copy);
        }
        const atbus_record *list[2] = {rec, &copy};
        size_t idx = 0;
        rc = atbus_select_relay(rec, list, 2, &idx);
        /* A node is never its own relay, and copy has its name. */
        fuzz_require(rc == ATBUS_ENOTFOUND);
    }
    atbus_record_fini(&copy);
    atbus_record_json_free(again);
    atbus_record_json_free(text);
    atbus_record_fini(&back);
}

/* fuzz_as_key decodes the input as the value of an etcd key in the
 * folder h picks, named as the plain decode's record (or "fuzz"). */
static void
fuzz_as_key(const char *text, size_t size, uint64_t h, int plain_rc,
            const atbus_record *plain)
{
    static const enum atbus_registry_table tables[] = {
        ATBUS_REGISTRY_NODES, ATBUS_REGISTRY_GROUPS, ATBUS_REGISTRY_ROUTES};
    enum atbus_registry_table table = tables[h % 3];
    const char *name = plain_rc == ATBUS_OK ? plain->name : "fuzz";
    char key[300];
    fuzz_require(atb_disc_sync_key(table, name, key, sizeof(key)) == ATBUS_OK);
    atbus_record rec;
    atbus_record_error err;
    enum atbus_registry_table got = 0;
    int rc =
        atb_disc_sync_decode(key, strlen(key), text, size, &got, &rec, &err);
    fuzz_require(got == table);
    if (rc != ATBUS_OK) {
        fuzz_require(rc == ATBUS_EPARSE || rc == ATBUS_ERECORD);
        fuzz_require(err.code == rc && err.reason[0] != '\0');
        fuzz_require(rec.name == NULL);
        /* A record valid on its own and of this folder fits its key. */
        fuzz_require(!(plain_rc == ATBUS_OK &&
                       (plain->type == ATBUS_RECORD_GROUP) ==
                           (table == ATBUS_REGISTRY_GROUPS) &&
                       (plain->type == ATBUS_RECORD_ROUTE) ==
                           (table == ATBUS_REGISTRY_ROUTES)));
        return;
    }
    fuzz_require(atbus_record_validate(&rec, NULL) == ATBUS_OK);
    fuzz_require(strcmp(rec.name, name) == 0);
    int in_table =
        (rec.type == ATBUS_RECORD_GROUP) == (table == ATBUS_REGISTRY_GROUPS) &&
        (rec.type == ATBUS_RECORD_ROUTE) == (table == ATBUS_REGISTRY_ROUTES);
    fuzz_require(in_table);
    /* Only the type may differ from the plain reading, and only when
     * the text leaves it out. */
    if (plain_rc == ATBUS_OK && plain->type == rec.type) {
        fuzz_require(atbus_record_equal(plain, &rec));
    }
    atbus_record_fini(&rec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = atb_alloc_live();
    const char *text = (const char *)data;
    atbus_record rec;
    atbus_record_error err;
    int rc = atbus_record_from_json(text, size, &rec, &err);
    fuzz_require(fuzz_terminated(err.path, sizeof(err.path)));
    fuzz_require(fuzz_terminated(err.reason, sizeof(err.reason)));
    fuzz_require(fuzz_terminated(err.name, sizeof(err.name)));
    if (rc == ATBUS_OK) {
        fuzz_accepted(&rec);
    } else {
        fuzz_require(rc == ATBUS_EPARSE || rc == ATBUS_ERECORD);
        fuzz_require(err.code == rc);
        fuzz_require(err.reason[0] != '\0');
        fuzz_require(rec.name == NULL && rec.gateways.count == 0);
    }

    uint64_t h = XXH3_64bits(data, size);
    fuzz_as_key(text, size, h, rc, &rec);

    /* Again, with one allocation failing. */
    atbus_record again;
    atb_alloc_fail_nth(1 + h % 64);
    int rc2 = atbus_record_from_json(text, size, &again, NULL);
    int fired = atb_alloc_failed();
    atb_alloc_fail_nth(0);
    if (rc2 == ATBUS_ENOMEM) {
        fuzz_require(fired);
        fuzz_require(again.name == NULL);
    } else {
        fuzz_require(rc2 == rc);
        if (rc == ATBUS_OK) {
            fuzz_require(atbus_record_equal(&rec, &again));
        }
    }
    atbus_record_fini(&again);
    atbus_record_fini(&rec);
    fuzz_require(atb_alloc_live() == live);
    return 0;
}
