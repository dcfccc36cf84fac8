/*
 * How the discovery files fit:
 *
 *   record.c    records: init, fini, copy, equality, setters
 *   validate.c  the rules of docs/discovery.md, reported by field path
 *   doc.c       the document tree JSON and YAML are read into
 *   decode.c    document tree -> record
 *   json.c      atbus_record_from_json / atbus_record_to_json
 *   yaml.c      libyaml events -> document tree
 *   match.c     matching, same host/process, gateway and relay selection
 *   registry.c  the embedded registry
 *   load.c      YAML files -> registry, one bad record at a time
 *   nameset.c   a string set (refused keys, pending route records)
 *   route_feed.c  route records -> route registry (route_feed.h)
 *   sync.c      etcd <-> registry: watch, publish, staleness (sync.h)
 *
 * A field path is kept as steps while walking, so that an error found in
 * a decoded record can be traced back to the YAML node (line, column) it
 * came from, and printed as "gateways[1].addresses[0]" for people.
 */
#ifndef ATB_DISCOVERY_DISC_H
#define ATB_DISCOVERY_DISC_H

#include <atbus/discovery.h>

#include <stdarg.h>
#include <stddef.h>

#include "discovery/doc.h"

/* Deepest field path a record has: gateways[i].match.metadata.labels[k]. */
#define ATB_DISC_PATH_DEPTH 8

/* One step of a field path: ".field", "[index]", or a map entry, shown
 * as ["key"] and found again by its index. */
typedef struct atb_disc_step {
    const char *field;
    size_t index;
    const char *key;
    size_t key_len;
} atb_disc_step;

typedef struct atb_disc_path {
    size_t depth;
    atb_disc_step steps[ATB_DISC_PATH_DEPTH];
} atb_disc_path;

void atb_disc_path_field(atb_disc_path *p, const char *field);
void atb_disc_path_index(atb_disc_path *p, size_t index);
void atb_disc_path_key(atb_disc_path *p, size_t index, const char *key,
                       size_t key_len);
void atb_disc_path_pop(atb_disc_path *p);

/* atb_disc_path_format writes prefix (may be NULL) and the path to buf,
 * truncating to size; keys are quoted and escaped. */
void atb_disc_path_format(const atb_disc_path *p, const char *prefix, char *buf,
                          size_t size);

/*
 * atb_disc_path_resolve follows p from node through a document and returns
 * the node it names, or the deepest node reached on the way (a missing
 * field is reported at its parent).
 */
const atb_disc_node *atb_disc_path_resolve(const atb_disc_node *node,
                                           const atb_disc_path *p);

/*
 * A rule broken while decoding or validating. Path steps may point into
 * the record or document that was checked: format or resolve the fault
 * before releasing either.
 */
typedef struct atb_disc_fault {
    int code;
    atb_disc_path path;
    const atb_disc_node *node; /* the document node, when decoding */
    char reason[ATBUS_RECORD_ERROR_REASON];
} atb_disc_fault;

/* atb_disc_fault_set fills f and returns code. */
int atb_disc_fault_set(atb_disc_fault *f, int code, const atb_disc_path *path,
                       const atb_disc_node *node, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* atb_disc_fault_vset fills f with ATBUS_ERECORD from a va_list and
 * returns ATBUS_ERECORD. */
int atb_disc_fault_vset(atb_disc_fault *f, const atb_disc_path *path,
                        const atb_disc_node *node, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* atb_disc_error_clear empties err (NULL is a no-op). */
void atb_disc_error_clear(atbus_record_error *err);

/* atb_disc_error_set fills err (may be NULL) with a code and a reason
 * and returns code. */
int atb_disc_error_set(atbus_record_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* atb_disc_error_from_fault fills err (may be NULL) from f, with prefix
 * before the path and the position of f->node if it has one. */
void atb_disc_error_from_fault(atbus_record_error *err, const atb_disc_fault *f,
                               const char *prefix);

/* atb_disc_error_name copies a record name into err->name, truncated. */
void atb_disc_error_name(atbus_record_error *err, const char *name, size_t len);

/*
 * atb_disc_check applies every rule to rec. Returns ATBUS_OK or
 * ATBUS_ERECORD with f filled (path steps point into rec).
 */
int atb_disc_check(const atbus_record *rec, atb_disc_fault *f);

/*
 * atb_disc_decode reads a record from a document node found in table (a
 * YAML list, an etcd key folder; 0 for a record on its own). A record
 * that does not give its type takes the table's (none: node); one whose
 * type belongs in another table is refused at path "type". *rec is
 * initialised by the call and owns what was decoded on success; it is
 * empty on failure. Caps are checked before anything is allocated.
 * Returns ATBUS_OK, ATBUS_ERECORD (f: path and node) or ATBUS_ENOMEM.
 * The record is not validated.
 */
int atb_disc_decode(const atb_disc_node *node, enum atbus_registry_table table,
                    atbus_record *rec, atb_disc_fault *f);

/* atb_disc_record_from_json_in is atbus_record_from_json for a record
 * found in table (0: on its own), as atb_disc_decode takes it. */
int atb_disc_record_from_json_in(const char *text, size_t len,
                                 enum atbus_registry_table table,
                                 atbus_record *rec, atbus_record_error *err);

/* atb_disc_strndup copies n bytes and a NUL from the library allocator. */
char *atb_disc_strndup(const char *s, size_t n);

/* atb_disc_table_of returns the registry table a record belongs in. */
enum atbus_registry_table atb_disc_table_of(const atbus_record *rec);

/* atb_disc_table_name returns "nodes", "groups" or "routes" (the YAML
 * list and the etcd key folder), or "?". */
const char *atb_disc_table_name(enum atbus_registry_table table);

/*
 * Registry internals for the loader (load.c).
 *
 * atb_disc_registry_enter marks the registry busy for a change and
 * returns ATBUS_OK, or ATBUS_EINVAL when a callback is running or a
 * change is already under way; atb_disc_registry_leave ends it.
 */
int atb_disc_registry_enter(atbus_registry *reg);
void atb_disc_registry_leave(atbus_registry *reg);

/* atb_disc_registry_report passes err to on_load_error, if set. */
void atb_disc_registry_report(atbus_registry *reg,
                              const atbus_record_error *err);

/*
 * atb_disc_registry_put_batch stores n valid records with distinct names
 * and versions not below the stored ones, moving them: afterwards each
 * recs[i] is empty. Every allocation happens first, so on ATBUS_ENOMEM
 * the registry and recs are unchanged. on_change runs for each record
 * that was added or changed. Returns ATBUS_OK or ATBUS_ENOMEM.
 */
int atb_disc_registry_put_batch(atbus_registry *reg, atbus_record *recs,
                                size_t n);

/*
 * atb_disc_registry_mirror stores a valid record whatever version the
 * stored one has, for a backend that orders the writes of a name itself
 * (etcd: the latest value of a key is the truth). rec is moved: empty
 * afterwards on success. Returns ATBUS_OK, ATBUS_ENOMEM (registry and rec
 * unchanged) or ATBUS_EINVAL (a callback or a change is under way).
 */
int atb_disc_registry_mirror(atbus_registry *reg, atbus_record *rec);

#endif /* ATB_DISCOVERY_DISC_H */
