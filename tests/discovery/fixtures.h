/*
 * Records the discovery suites share: a node with every field set, a
 * group, and a path to the data files.
 */
#ifndef ATB_TESTS_DISCOVERY_FIXTURES_H
#define ATB_TESTS_DISCOVERY_FIXTURES_H

#include <atbus/atbus.h>

/* disc_sample_node fills rec (initialised by the call) with a valid node
 * that uses every node field, maps with several entries included. */
void disc_sample_node(atbus_record *rec);

/* disc_sample_group fills rec with a valid group of three members. */
void disc_sample_group(atbus_record *rec);

/* disc_node fills rec with a minimal valid node: name, namespace, kind. */
void disc_node(atbus_record *rec, const char *name, const char *ns,
               const char *kind);

/* What a registry's callbacks reported: load errors (the first
 * DISC_LOG_MAX kept) and changes. */
#define DISC_LOG_MAX 16

typedef struct disc_log {
    size_t count; /* load errors reported */
    atbus_record_error e[DISC_LOG_MAX];
    int changes;    /* on_change calls */
    int deletes;    /* of which DELETE */
    char last[300]; /* "<type>:<name>" of the last change */
} disc_log;

/* disc_log_registry returns a new registry whose callbacks fill l
 * (emptied here). */
atbus_registry *disc_log_registry(disc_log *l);

/* disc_data returns the path of a file in tests/discovery/data (a static
 * buffer, valid until the next call). */
const char *disc_data(const char *file);

/* disc_read_file returns a file's contents (free with free) and its
 * length. */
char *disc_read_file(const char *path, size_t *len);

#endif /* ATB_TESTS_DISCOVERY_FIXTURES_H */
