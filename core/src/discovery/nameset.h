/*
 * A set of strings with a small integer each: the keys the etcd sync
 * refused and the route records the route feed could not apply yet.
 * Both are normally empty, but a writer gone wrong can fill them with
 * thousands of names, so lookups stay O(1) (a chained hash over XXH3)
 * rather than a list scan per event.
 *
 * Ownership: the set copies every name it holds, with the library's
 * allocator. One thread at a time.
 */
#ifndef ATB_DISCOVERY_NAMESET_H
#define ATB_DISCOVERY_NAMESET_H

#include <stddef.h>
#include <stdint.h>

typedef struct atb_disc_name atb_disc_name;

struct atb_disc_name {
    atb_disc_name *next;
    uint64_t hash;
    int value;
    char name[];
};

typedef struct atb_disc_nameset {
    atb_disc_name **buckets; /* nbuckets: 0 or a power of two */
    size_t nbuckets;
    size_t count;
} atb_disc_nameset;

/* atb_disc_nameset_init makes an empty set; it allocates nothing. */
void atb_disc_nameset_init(atb_disc_nameset *s);

/* atb_disc_nameset_fini frees every name and the table. */
void atb_disc_nameset_fini(atb_disc_nameset *s);

/*
 * atb_disc_nameset_put adds name with value, or sets the value of a name
 * already there. Returns ATBUS_OK or ATBUS_ENOMEM (the set is unchanged).
 */
int atb_disc_nameset_put(atb_disc_nameset *s, const char *name, int value);

/* atb_disc_nameset_get returns the entry for name, or NULL. The pointer
 * stays valid until that name is removed. */
atb_disc_name *atb_disc_nameset_get(const atb_disc_nameset *s,
                                    const char *name);

/* atb_disc_nameset_remove drops name; returns 1 when it was there. */
int atb_disc_nameset_remove(atb_disc_nameset *s, const char *name);

/*
 * atb_disc_nameset_sweep calls fn for every entry, in no particular
 * order; an entry for which fn returns non-zero is removed. fn must not
 * add or remove names itself. Returns how many were removed.
 */
size_t atb_disc_nameset_sweep(atb_disc_nameset *s,
                              int (*fn)(atb_disc_name *e, void *arg),
                              void *arg);

#endif /* ATB_DISCOVERY_NAMESET_H */
