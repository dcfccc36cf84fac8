/*
 * atbus discovery: node, group and route records, matching, gateway and
 * relay selection, and the embedded registry.
 *
 * A record is what the mesh knows of a node (or a group of nodes): its
 * name, where it runs, its Kubernetes-style metadata, the gateways it can
 * be reached on and which relay it would like to hang under. A route
 * record is kept apart from it: the relays a node hangs under, primary
 * first, which feed the route registry (atbus/route.h). Records are
 * plain C structures that applications fill and read directly; they
 * travel as JSON (etcd values) and load from YAML files into the embedded
 * registry, the default discovery that needs no external service.
 *
 * Ownership: every string and array inside an atbus_record belongs to the
 * record and is released by atbus_record_fini. It must come from the
 * library's allocator: fill records with the atbus_record_set_string,
 * atbus_record_list_add, atbus_record_map_set and atbus_record_add_gateway
 * helpers (or by decoding), never with malloc or strdup.
 *
 * Threads: records are plain data. A registry belongs to one thread at a
 * time; nothing here takes a lock.
 *
 * docs/discovery.md describes the format, every rule and cap, matching,
 * selection and the YAML file layout.
 */
#ifndef ATBUS_DISCOVERY_H
#define ATBUS_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include <atbus/error.h>
#include <atbus/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Caps. Decoders check them before allocating; atbus_record_validate
 * refuses records above them. */
#define ATBUS_RECORD_JSON_MAX ((size_t)1 << 20)        /* one record's JSON */
#define ATBUS_RECORD_YAML_MAX ((size_t)16 << 20)       /* one YAML file */
#define ATBUS_RECORD_TOKENS_MAX 16                     /* tokens per node */
#define ATBUS_RECORD_TOKEN_MAX 1024                    /* bytes per token */
#define ATBUS_RECORD_HASH_CODE_MAX 256                 /* bytes */
#define ATBUS_RECORD_CUSTOM_DATA_MAX ((size_t)1 << 16) /* bytes */
#define ATBUS_RECORD_HOSTNAME_MAX 253                  /* bytes */
#define ATBUS_RECORD_PID_MAX INT64_C(2147483647)       /* pid_t range */
#define ATBUS_RECORD_LABELS_MAX 64                     /* labels per map */
#define ATBUS_RECORD_ANNOTATIONS_MAX 64                /* annotations per map */
#define ATBUS_RECORD_ANNOTATIONS_BYTES ((size_t)256 << 10) /* keys+values */
#define ATBUS_RECORD_GATEWAYS_MAX 16    /* gateways per node */
#define ATBUS_RECORD_ADDRESSES_MAX 16   /* addresses per gateway */
#define ATBUS_RECORD_ADDRESS_MAX 255    /* bytes per address */
#define ATBUS_RECORD_PRIORITY_MAX 65535 /* gateway priority */
#define ATBUS_RECORD_NODE_LIST_MAX 4096 /* members per group */
/* Upstreams per route record: ATBUS_ROUTE_MAX_UPSTREAMS of atbus/route.h. */
#define ATBUS_RECORD_UPSTREAMS_MAX 16

/* What a record describes. Zero is a node, so a zeroed record is one. */
enum atbus_record_type {
    ATBUS_RECORD_NODE = 0,   /* a node: may dial */
    ATBUS_RECORD_CLIENT = 1, /* an untrusted client: never dials */
    ATBUS_RECORD_GROUP = 2,  /* a named set of nodes (multicast target) */
    ATBUS_RECORD_ROUTE = 3,  /* the relays a node hangs under */
};

/* Channel schemes, for gateway selection. */
enum atbus_scheme {
    ATBUS_SCHEME_MEM = 1, /* mem://  same process */
    ATBUS_SCHEME_SHM,     /* shm://  same host */
    ATBUS_SCHEME_UNIX,    /* unix:// same host */
    ATBUS_SCHEME_IPV4,    /* ipv4:// TCP */
    ATBUS_SCHEME_IPV6,    /* ipv6:// TCP */
    ATBUS_SCHEME_UDP,     /* udp://  reliable UDP */
};

/* A list of strings owned by a record. */
typedef struct atbus_string_list {
    char **items;
    size_t count;
} atbus_string_list;

/* One key/value pair of a map (labels, annotations). */
typedef struct atbus_kv {
    char *key;
    char *value;
} atbus_kv;

/* A map kept as an array of pairs in the order they were added; keys are
 * unique. */
typedef struct atbus_kv_list {
    atbus_kv *items;
    size_t count;
} atbus_kv_list;

/* Where a node runs. NULL hostname and pid 0 mean unknown; in a match
 * they mean "any". */
typedef struct atbus_host {
    char *hostname;
    int64_t pid;
} atbus_host;

/* Kubernetes-style metadata. NULL strings and empty maps are absent; in
 * a match, absent fields accept anything. */
typedef struct atbus_metadata {
    char *namespace_name;
    char *api_version;
    char *kind;
    char *group;
    atbus_kv_list labels;
    atbus_kv_list annotations;
} atbus_metadata;

/* Who may use a gateway: every field given must equal the dialing node's
 * (labels and annotations: a subset of the node's). An empty match
 * accepts every node. */
typedef struct atbus_match {
    atbus_host host;
    atbus_metadata metadata;
} atbus_match;

/* An address set a node can be reached on. Lower priority numbers are
 * tried first. */
typedef struct atbus_gateway {
    int32_t priority;
    atbus_string_list addresses;
    atbus_match match;
} atbus_gateway;

typedef struct atbus_gateway_list {
    atbus_gateway *items;
    size_t count;
} atbus_gateway_list;

/* The relays a node would hang under: nodes with this name (if given)
 * whose metadata has every field given here. Neither given: none. */
typedef struct atbus_relay_selector {
    char *name;
    atbus_metadata metadata;
} atbus_relay_selector;

/*
 * A discovery record. Groups use only name, version, custom_data and
 * node_list; routes only name, version and upstreams; nodes and clients
 * everything but node_list and upstreams.
 */
typedef struct atbus_record {
    enum atbus_record_type type;
    char *name;      /* DNS subdomain, unique among nodes (or groups) */
    int64_t version; /* >= 0; the registry refuses going back */
    char *custom_data;
    /* Nodes and clients. */
    char *hash_code;
    atbus_string_list tokens;
    atbus_host host;
    atbus_metadata metadata;
    atbus_gateway_list gateways;
    atbus_relay_selector advertise_relay;
    /* Groups: member node names. */
    atbus_string_list node_list;
    /* Routes: the relays the node called name hangs under, primary first,
     * then backups; empty for a root (a relay with no upstream). */
    atbus_string_list upstreams;
} atbus_record;

/* Sizes of the text fields of atbus_record_error. */
#define ATBUS_RECORD_ERROR_PATH 160
#define ATBUS_RECORD_ERROR_REASON 160

/*
 * Detail of a refused record or malformed text, filled by the calls that
 * take one (like jansson's json_error_t; the caller owns it, nothing in it
 * needs freeing).
 */
typedef struct atbus_record_error {
    int code;      /* what the call returned: ATBUS_ERECORD, ATBUS_EPARSE,
                      ATBUS_EEXIST, ... */
    size_t line;   /* 1-based line in the text; 0 when not known */
    size_t column; /* 1-based column (bytes); 0 when not known */
    /* Field path, e.g. "gateways[1].addresses[0]" or
     * "nodes[2].metadata.labels[\"area.region\"]"; empty for syntax
     * errors. */
    char path[ATBUS_RECORD_ERROR_PATH];
    char reason[ATBUS_RECORD_ERROR_REASON];
    /* The record's name when it was readable, else empty. */
    char name[254];
} atbus_record_error;

/* ---- Records ---------------------------------------------------------- */

/* atbus_record_type_name returns "node", "client", "group" or "route"
 * (the JSON and YAML spelling), or "?" for another value. Never NULL. */
ATBUS_API const char *atbus_record_type_name(enum atbus_record_type type);

/* atbus_record_init makes *rec an empty node record that owns nothing. */
ATBUS_API void atbus_record_init(atbus_record *rec);

/*
 * atbus_record_fini releases every string and array rec owns and leaves it
 * as atbus_record_init does. NULL is a no-op.
 */
ATBUS_API void atbus_record_fini(atbus_record *rec);

/*
 * atbus_record_copy makes dst (initialised or not; never freed by this
 * call) a deep copy of src. Returns ATBUS_OK, or ATBUS_ENOMEM /
 * ATBUS_EINVAL with dst empty.
 */
ATBUS_API int atbus_record_copy(atbus_record *dst, const atbus_record *src);

/* atbus_record_equal returns 1 when a and b hold the same values (NULL and
 * "" differ; map order matters), else 0. */
ATBUS_API int atbus_record_equal(const atbus_record *a, const atbus_record *b);

/*
 * atbus_record_set_string replaces the string *field (a member of a
 * record) with a copy of value; NULL makes it absent. Returns ATBUS_OK or
 * ATBUS_ENOMEM (the field is unchanged).
 */
ATBUS_API int atbus_record_set_string(char **field, const char *value);

/* atbus_record_list_add appends a copy of value (not NULL) to list.
 * Returns ATBUS_OK, ATBUS_EINVAL or ATBUS_ENOMEM (list unchanged). */
ATBUS_API int atbus_record_list_add(atbus_string_list *list, const char *value);

/*
 * atbus_record_map_set sets key to a copy of value in map, replacing the
 * value of an existing key in place or appending a new pair. Returns
 * ATBUS_OK, ATBUS_EINVAL (NULL key or value) or ATBUS_ENOMEM (map
 * unchanged).
 */
ATBUS_API int atbus_record_map_set(atbus_kv_list *map, const char *key,
                                   const char *value);

/*
 * atbus_record_add_gateway appends an empty gateway with this priority to
 * rec and sets *out (if not NULL) to it; the pointer is valid until the
 * next gateway is added. Returns ATBUS_OK, ATBUS_EINVAL or ATBUS_ENOMEM
 * (rec unchanged).
 */
ATBUS_API int atbus_record_add_gateway(atbus_record *rec, int32_t priority,
                                       atbus_gateway **out);

/*
 * atbus_record_validate checks every rule of docs/discovery.md: names,
 * label syntax, addresses, ranges, caps, that a group or route carries no
 * node fields (and a node no node_list or upstreams), and that a route's
 * upstreams are names, each once, not the record's own. Returns ATBUS_OK,
 * ATBUS_ERECORD (err, if not NULL, names the first broken field) or
 * ATBUS_EINVAL (rec NULL).
 */
ATBUS_API int atbus_record_validate(const atbus_record *rec,
                                    atbus_record_error *err);

/*
 * atbus_record_from_json decodes one record from len bytes of JSON (no NUL
 * needed) and validates it. *rec is initialised by the call: on success
 * it owns the decoded record (release with atbus_record_fini), on failure
 * it is empty. Fields the decoder does not know are ignored, so newer
 * writers can add fields. Returns ATBUS_OK, ATBUS_EPARSE (not well-formed
 * JSON, or above ATBUS_RECORD_JSON_MAX; err has line and column),
 * ATBUS_ERECORD (err names the field), ATBUS_ENOMEM or ATBUS_EINVAL. err
 * may be NULL.
 */
ATBUS_API int atbus_record_from_json(const char *text, size_t len,
                                     atbus_record *rec,
                                     atbus_record_error *err);

/*
 * atbus_record_to_json encodes a valid record as compact JSON; absent
 * fields are left out. On success *text is a NUL-terminated string the
 * caller releases with atbus_record_json_free. Returns ATBUS_OK,
 * ATBUS_ERECORD (the record is invalid: atbus_record_validate says why),
 * ATBUS_ENOMEM or ATBUS_EINVAL.
 */
ATBUS_API int atbus_record_to_json(const atbus_record *rec, char **text);

/* atbus_record_json_free releases text from atbus_record_to_json; NULL is
 * a no-op. */
ATBUS_API void atbus_record_json_free(char *text);

/* ---- Matching and selection ------------------------------------------- */

/* atbus_match_accepts returns 1 when every field m gives equals node's
 * (maps: subset), else 0. */
ATBUS_API int atbus_match_accepts(const atbus_match *m,
                                  const atbus_record *node);

/* atbus_same_host returns 1 when a and b have the same namespace_name and
 * the same, known hostname, else 0. */
ATBUS_API int atbus_same_host(const atbus_record *a, const atbus_record *b);

/* atbus_same_process returns 1 when a and b are on the same host and have
 * the same, known (non-zero) pid, else 0. */
ATBUS_API int atbus_same_process(const atbus_record *a, const atbus_record *b);

/* What atbus_select_gateway chose; pointers borrow from the destination
 * record. */
typedef struct atbus_gateway_choice {
    const atbus_gateway *gateway;
    size_t gateway_index; /* in dst->gateways */
    const char *address;
    size_t address_index; /* in gateway->addresses */
    enum atbus_scheme scheme;
} atbus_gateway_choice;

/*
 * atbus_select_gateway picks how src dials dst: dst's gateways in order of
 * priority (lower number first; equal priorities in record order), the
 * first whose match accepts src and has an address src can use; within
 * it, the address whose scheme comes first in schemes (count entries,
 * best first; NULL or 0 entries: mem, shm, unix, ipv4, ipv6, udp), ties
 * in address order. mem:// is usable only by the same process, shm:// and
 * unix:// only on the same host. Returns ATBUS_OK, ATBUS_ENOROUTE (no
 * usable gateway), ATBUS_EPERM (src is a client: clients never dial) or
 * ATBUS_EINVAL (NULL argument, a group or route record, an unknown
 * scheme).
 */
ATBUS_API int atbus_select_gateway(const atbus_record *src,
                                   const atbus_record *dst,
                                   const enum atbus_scheme *schemes,
                                   size_t count, atbus_gateway_choice *out);

/*
 * atbus_relay_accepts returns 1 when relay may serve as node's relay: a
 * node record (not a client or group) other than node itself, with the
 * name node->advertise_relay gives (if any) and every metadata field it
 * gives; 0 when not, or when advertise_relay gives nothing.
 */
ATBUS_API int atbus_relay_accepts(const atbus_record *node,
                                  const atbus_record *relay);

/*
 * atbus_relay_score is the rendezvous (highest random weight) score of a
 * relay for a node: XXH3-64 of the relay's name seeded with XXH3-64 of
 * the node's name. The relay with the highest score wins, so a node keeps
 * its relay while other relays come and go.
 */
ATBUS_API uint64_t atbus_relay_score(const char *node_name,
                                     const char *relay_name);

/*
 * atbus_select_relay picks node's relay among count records: of those
 * atbus_relay_accepts, the highest atbus_relay_score (ties: the smaller
 * name). Returns ATBUS_OK and *index, ATBUS_ENOTFOUND (no candidate) or
 * ATBUS_EINVAL.
 */
ATBUS_API int atbus_select_relay(const atbus_record *node,
                                 const atbus_record *const *relays,
                                 size_t count, size_t *index);

/* ---- Embedded registry ------------------------------------------------ */

typedef struct atbus_registry atbus_registry;

/* The tables of a registry: node names (nodes and clients), group names
 * and route names are separate, as in etcd (<prefix>/nodes/<name>,
 * /groups/<name>, /routes/<name>). */
enum atbus_registry_table {
    ATBUS_REGISTRY_NODES = 1,
    ATBUS_REGISTRY_GROUPS = 2,
    ATBUS_REGISTRY_ROUTES = 3,
};

enum atbus_registry_event {
    ATBUS_REGISTRY_PUT = 1,    /* a record was added or changed */
    ATBUS_REGISTRY_DELETE = 2, /* a record was removed */
};

/* Results of one load; the first error is also reported here. */
typedef struct atbus_load_result {
    size_t loaded;  /* records put (added, changed or already identical) */
    size_t skipped; /* records refused; each went to on_load_error */
    atbus_record_error first; /* the first error; code 0 when none */
} atbus_load_result;

/*
 * Registry callbacks. They run on the calling thread, inside the call that
 * caused them; records passed are borrowed for the callback's duration.
 * From inside a callback the registry may be read (get, count, foreach,
 * select) but not changed: put, remove and load return ATBUS_EINVAL.
 */
typedef struct atbus_registry_callbacks {
    /* A record was put (rec: the stored record) or removed (rec: the
     * record as it was). */
    void (*on_change)(atbus_registry *reg, enum atbus_registry_event event,
                      const atbus_record *rec, void *arg);
    /* A load found an error: a malformed file, or a record it skipped.
     * Called once per error, in file order. */
    void (*on_load_error)(atbus_registry *reg, const atbus_record_error *err,
                          void *arg);
} atbus_registry_callbacks;

/* atbus_registry_new creates an empty registry. Returns ATBUS_OK and *out
 * (free with atbus_registry_free), ATBUS_EINVAL or ATBUS_ENOMEM. */
ATBUS_API int atbus_registry_new(atbus_registry **out);

/* atbus_registry_free releases the registry and every record in it,
 * without callbacks. NULL is a no-op. */
ATBUS_API void atbus_registry_free(atbus_registry *reg);

/* atbus_registry_set_callbacks sets the callbacks (cbs is copied; NULL
 * clears them) and their argument. Returns ATBUS_OK or ATBUS_EINVAL. */
ATBUS_API int atbus_registry_set_callbacks(atbus_registry *reg,
                                           const atbus_registry_callbacks *cbs,
                                           void *arg);

/*
 * atbus_registry_put validates rec and stores a copy under its name, in
 * the group table for groups, the route table for routes and the node
 * table otherwise, then calls
 * on_change(PUT). The caller keeps rec. Versions never go back: a record
 * whose version is below the stored one is refused with ATBUS_EEXIST;
 * an equal or higher version replaces it; a record identical to the
 * stored one changes nothing and calls nothing. Returns ATBUS_OK,
 * ATBUS_ERECORD (invalid), ATBUS_EEXIST (older version), ATBUS_ENOMEM
 * (the registry is unchanged) or ATBUS_EINVAL (NULL, or called from a
 * callback). err (may be NULL) gets the detail of ATBUS_ERECORD and
 * ATBUS_EEXIST.
 */
ATBUS_API int atbus_registry_put(atbus_registry *reg, const atbus_record *rec,
                                 atbus_record_error *err);

/*
 * atbus_registry_remove removes name from table and calls
 * on_change(DELETE). Returns ATBUS_OK, ATBUS_ENOTFOUND or ATBUS_EINVAL
 * (NULL, unknown table, or called from a callback).
 */
ATBUS_API int atbus_registry_remove(atbus_registry *reg,
                                    enum atbus_registry_table table,
                                    const char *name);

/*
 * atbus_registry_get finds name in table. *out borrows the stored record
 * until that name is next put or removed or the registry is freed.
 * Returns ATBUS_OK, ATBUS_ENOTFOUND or ATBUS_EINVAL.
 */
ATBUS_API int atbus_registry_get(const atbus_registry *reg,
                                 enum atbus_registry_table table,
                                 const char *name, const atbus_record **out);

/* atbus_registry_count returns the number of records in table (0 for an
 * unknown table). */
ATBUS_API size_t atbus_registry_count(const atbus_registry *reg,
                                      enum atbus_registry_table table);

/*
 * atbus_registry_foreach calls fn for every record of table, in no
 * particular order, until fn returns non-zero. Returns ATBUS_OK, what fn
 * returned to stop, or ATBUS_EINVAL.
 */
ATBUS_API int atbus_registry_foreach(
    const atbus_registry *reg, enum atbus_registry_table table,
    int (*fn)(const atbus_record *rec, void *arg), void *arg);

/*
 * atbus_registry_select_relay picks node's relay among the registry's
 * node records as atbus_select_relay does. *out borrows like
 * atbus_registry_get. Returns ATBUS_OK, ATBUS_ENOTFOUND or ATBUS_EINVAL.
 */
ATBUS_API int atbus_registry_select_relay(const atbus_registry *reg,
                                          const atbus_record *node,
                                          const atbus_record **out);

/*
 * atbus_registry_load_yaml reads a YAML (or JSON) file with top-level
 * lists `nodes:`, `groups:` and `routes:` (docs/discovery.md) and puts
 * every record
 * as atbus_registry_put would. A record that breaks a rule, repeats an
 * earlier record's name or has an older version than the stored one is
 * reported to on_load_error and skipped; the others load. A file that is
 * not well-formed YAML, or whose top level is not a mapping of lists,
 * loads nothing. Returns ATBUS_OK (all loaded); the code of the first
 * error, ATBUS_ERECORD or ATBUS_EEXIST, when records were skipped (or the
 * top level is wrong); ATBUS_EPARSE (malformed YAML or a file above
 * ATBUS_RECORD_YAML_MAX: nothing loaded); ATBUS_ENOTFOUND or
 * ATBUS_ESYSTEM (file not readable); ATBUS_ENOMEM (nothing loaded);
 * ATBUS_EINVAL (NULL, or called from a callback). result (may be NULL)
 * gets the counts and the first error.
 */
ATBUS_API int atbus_registry_load_yaml(atbus_registry *reg, const char *path,
                                       atbus_load_result *result);

/* atbus_registry_load_yaml_string is atbus_registry_load_yaml on len bytes
 * of text (no NUL needed). */
ATBUS_API int atbus_registry_load_yaml_string(atbus_registry *reg,
                                              const char *text, size_t len,
                                              atbus_load_result *result);

#ifdef __cplusplus
}
#endif

#endif /* ATBUS_DISCOVERY_H */
