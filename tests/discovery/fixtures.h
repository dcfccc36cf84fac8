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

/* disc_data returns the path of a file in tests/discovery/data (a static
 * buffer, valid until the next call). */
const char *disc_data(const char *file);

/* disc_read_file returns a file's contents (free with free) and its
 * length. */
char *disc_read_file(const char *path, size_t *len);

#endif /* ATB_TESTS_DISCOVERY_FIXTURES_H */
