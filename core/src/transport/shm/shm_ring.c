/*
 * The shared-memory ring: a multi-producer, single-consumer record ring in
 * a POSIX shared-memory object, shared by processes.
 *
 * The protocol follows Aeron's many-to-one ring buffer: writers claim
 * space by a compare-and-swap on the tail, write a record whose length is
 * negative while it is being filled, and commit by storing the positive
 * length with release order. The reader delivers committed records in
 * order, zeroes them and publishes its head. Sleep and wake-up go through
 * a futex word in the shared header. docs/internals/shm.md explains the
 * layout, the memory ordering and the recovery from dead writers.
 */
#define _GNU_SOURCE /* syscall, futex */
#include "transport/shm/shm_ring.h"

#include <atbus/error.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "platform/sys.h"

/* The words below live in memory shared by processes: they must be
 * lock-free, or each process would take its own private lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LONG_LOCK_FREE == 2 &&
                   ATOMIC_LLONG_LOCK_FREE == 2,
               "shared-memory ring needs lock-free 32- and 64-bit atomics");
_Static_assert(sizeof(_Atomic int64_t) == 8 && sizeof(_Atomic int32_t) == 4 &&
                   sizeof(_Atomic uint32_t) == 4,
               "atomics must have the size of the plain types (futex word)");

/* "atbusshm" in memory on a little-endian host; `xxd /dev/shm/atbus.*`
 * shows it. */
#define SHM_MAGIC UINT64_C(0x6d68737375627461)
#define SHM_VERSION 1u

/* Each contended word gets two cache lines: adjacent-line prefetch pulls
 * lines in pairs, so one line would still share traffic with the next
 * word. */
#define SHM_LINE 128

#define SHM_ALIGN ((size_t)8)
#define SHM_PADDING_TYPE (-1)
#define SHM_MAX_RECORD_PAYLOAD ((size_t)1 << 30)
#define SHM_NAME_PREFIX "/atbus."

/*
 * The header at offset 0 of the shared object. The identity line is
 * written once by the creator, before the magic is published; each
 * position then has its own pair of lines so writers spinning on the tail
 * do not slow the reader's head, and the other way round.
 */
struct shm_header {
    _Atomic uint64_t magic;  /* SHM_MAGIC, stored last at creation */
    uint32_t version;        /* SHM_VERSION */
    uint32_t header_size;    /* ATB_SHM_RING_HEADER_SIZE */
    uint64_t capacity;       /* data area bytes, a power of two */
    int64_t reader_pid;      /* the creator; for people inspecting it */
    _Atomic uint32_t closed; /* the reader has closed the ring */
    uint8_t identity_pad[SHM_LINE - 36];
    _Atomic int64_t tail; /* next free position; writers CAS it */
    uint8_t tail_pad[SHM_LINE - 8];
    _Atomic int64_t head_cache; /* a recent head, read by writers */
    uint8_t head_cache_pad[SHM_LINE - 8];
    _Atomic int64_t head; /* next position the reader consumes */
    uint8_t head_pad[SHM_LINE - 8];
    _Atomic uint32_t waiting; /* futex word: 1 while the reader sleeps */
    uint8_t waiting_pad[SHM_LINE - 4];
};

/* These offsets are what other processes, possibly running another build,
 * rely on (docs/internals/shm.md): changing one needs a new SHM_VERSION. */
_Static_assert(offsetof(struct shm_header, version) == 8, "layout");
_Static_assert(offsetof(struct shm_header, capacity) == 16, "layout");
_Static_assert(offsetof(struct shm_header, reader_pid) == 24, "layout");
_Static_assert(offsetof(struct shm_header, closed) == 32, "layout");
_Static_assert(offsetof(struct shm_header, tail) == 1 * SHM_LINE, "layout");
_Static_assert(offsetof(struct shm_header, head_cache) == 2 * SHM_LINE,
               "layout");
_Static_assert(offsetof(struct shm_header, head) == 3 * SHM_LINE, "layout");
_Static_assert(offsetof(struct shm_header, waiting) == 4 * SHM_LINE, "layout");
_Static_assert(sizeof(struct shm_header) <= ATB_SHM_RING_HEADER_SIZE,
               "header must fit before the data area");

/* A record header; the payload follows. length counts header and payload
 * (not the alignment padding): negative while claimed, positive once
 * committed, 0 in free space. */
struct shm_record {
    _Atomic int32_t length;
    _Atomic int32_t type;
};
_Static_assert(sizeof(struct shm_record) == ATB_SHM_RING_RECORD_HEADER,
               "record header");

struct atb_shm_ring {
    struct shm_header *hdr;
    uint8_t *data; /* the data area, right after the header */
    size_t map_size;
    size_t capacity;
    size_t mask;
    size_t max_length;
    int fd; /* kept open: the reader's lock lives on it */
    int reader;
    int corrupt; /* sticky: a record length pointed outside the ring */
    /* atb_shm_ring_interrupt was called: waits return at once. Another
     * thread sets it, so it is atomic even though it is process-local. */
    _Atomic int interrupted;
    /* recover: the head being watched (-1: none yet) and since when it
     * has not moved. */
    int64_t stall_head;
    uint64_t stall_since_us;
};

/* ---- names and mapping ---------------------------------------------- */

/* shm_name builds "/atbus.<key>" into name after checking the key.
 * Returns ATBUS_OK or ATBUS_EINVAL. */
static int
shm_name(char name[sizeof(SHM_NAME_PREFIX) + ATB_SHM_RING_KEY_MAX],
         const char *key)
{
    if (key == NULL) {
        return ATBUS_EINVAL;
    }
    size_t n = strlen(key);
    if (n == 0 || n > ATB_SHM_RING_KEY_MAX) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) {
            return ATBUS_EINVAL;
        }
    }
    memcpy(name, SHM_NAME_PREFIX, sizeof(SHM_NAME_PREFIX) - 1);
    memcpy(name + sizeof(SHM_NAME_PREFIX) - 1, key, n + 1);
    return ATBUS_OK;
}

static size_t
shm_max_length(size_t capacity)
{
    size_t n = capacity / 8;
    return n < SHM_MAX_RECORD_PAYLOAD ? n : SHM_MAX_RECORD_PAYLOAD;
}

/*
 * The reader lock: an open-file-description lock on byte 0 of the object,
 * held by the reader for as long as its handle is open. The kernel drops
 * it when the reader closes or dies, whatever its pid namespace, so it
 * tells a live reader from a dead one where a stored pid cannot (pids are
 * reused, and mean nothing across namespaces). OFD locks, not classic
 * POSIX locks: those would be released by closing any other descriptor of
 * the object in the reader's process (a writer handle on its own ring),
 * and F_GETLK would not report a lock held by the asking process.
 */
static struct flock
shm_lock_range(short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    return fl;
}

/* shm_lock takes the reader lock without waiting. Returns ATBUS_OK,
 * ATBUS_EEXIST (another handle holds it) or an error of atb_sys_error. */
static int
shm_lock(int fd)
{
    struct flock fl = shm_lock_range(F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
        return ATBUS_OK;
    }
    if (errno == EAGAIN || errno == EACCES) {
        return ATBUS_EEXIST;
    }
    return atb_sys_error(errno);
}

/* shm_linked reports whether the object behind fd still has its name:
 * the lock is only worth something while it is on the named object. */
static int
shm_linked(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_nlink > 0;
}

/* shm_map maps size bytes of fd and wraps them in a handle, which takes
 * over fd. */
static int
shm_map(atb_shm_ring **out, int fd, size_t size, int reader)
{
    atb_shm_ring *ring = atb_calloc(1, sizeof(*ring));
    if (ring == NULL) {
        return ATBUS_ENOMEM;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int err = atb_sys_error(errno);
        atb_free(ring);
        return err;
    }
    ring->hdr = p;
    ring->data = (uint8_t *)p + ATB_SHM_RING_HEADER_SIZE;
    ring->map_size = size;
    ring->capacity = size - ATB_SHM_RING_HEADER_SIZE;
    ring->mask = ring->capacity - 1;
    ring->max_length = shm_max_length(ring->capacity);
    ring->fd = fd;
    ring->reader = reader;
    atomic_init(&ring->interrupted, 0);
    ring->stall_head = -1; /* positions are >= 0: the first recover call
                            * starts the clock */
    *out = ring;
    return ATBUS_OK;
}

static void
shm_unmap(atb_shm_ring *ring)
{
    munmap(ring->hdr, ring->map_size);
    close(ring->fd);
    atb_free(ring);
}

int
atb_shm_ring_create(atb_shm_ring **out, const char *key, size_t capacity)
{
    char name[sizeof(SHM_NAME_PREFIX) + ATB_SHM_RING_KEY_MAX];
    int rc = shm_name(name, key);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (out == NULL || capacity < ATB_SHM_RING_MIN_CAPACITY ||
        capacity > ATB_SHM_RING_MAX_CAPACITY ||
        (capacity & (capacity - 1)) != 0) {
        return ATBUS_EINVAL;
    }
    size_t size = ATB_SHM_RING_HEADER_SIZE + capacity;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    /*
     * Lock at once. Until then atb_shm_ring_reclaim in another process
     * takes the object for a dead reader's and may remove it; then either
     * the lock is still held by that process or the object has lost its
     * name, and the name is no longer ours to use or remove.
     */
    rc = shm_lock(fd);
    if (rc == ATBUS_OK && !shm_linked(fd)) {
        rc = ATBUS_EEXIST;
    }
    if (rc != ATBUS_OK) {
        close(fd);
        return rc;
    }
    /*
     * Allocate every page now. Sizing with ftruncate alone makes a sparse
     * object: a full /dev/shm would then show up as SIGBUS on some later
     * write. fallocate runs first because on failure tmpfs leaves the size
     * at 0, so a writer opening the name meanwhile sees an object still
     * being created, never a mapping it cannot touch.
     */
    do {
        rc = posix_fallocate(fd, 0, (off_t)size);
    } while (rc == EINTR);
    if (rc == 0 && ftruncate(fd, (off_t)size) != 0) {
        rc = errno;
    }
    atb_shm_ring *ring = NULL;
    if (rc == ENOSPC || rc == EFBIG) {
        rc = ATBUS_ENOSPC;
    } else if (rc != 0) {
        rc = atb_sys_error(rc);
    } else {
        rc = shm_map(&ring, fd, size, 1);
    }
    if (rc != ATBUS_OK) {
        /* Still under the lock: the name is ours to remove. */
        shm_unlink(name);
        close(fd);
        return rc;
    }

    struct shm_header *h = ring->hdr;
    h->version = SHM_VERSION;
    h->header_size = (uint32_t)ATB_SHM_RING_HEADER_SIZE;
    h->capacity = capacity;
    h->reader_pid = (int64_t)getpid();
    atomic_init(&h->closed, 0);
    atomic_init(&h->tail, 0);
    atomic_init(&h->head_cache, 0);
    atomic_init(&h->head, 0);
    atomic_init(&h->waiting, 0);
    /* Release: a writer that sees the magic (acquire) sees every field
     * above initialised. */
    atomic_store_explicit(&h->magic, SHM_MAGIC, memory_order_release);
    *out = ring;
    return ATBUS_OK;
}

int
atb_shm_ring_open(atb_shm_ring **out, const char *key)
{
    char name[sizeof(SHM_NAME_PREFIX) + ATB_SHM_RING_KEY_MAX];
    int rc = shm_name(name, key);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (out == NULL) {
        return ATBUS_EINVAL;
    }
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = atb_sys_error(errno);
        close(fd);
        return rc;
    }
    /* A creator allocates the whole object in one step, so size 0 means
     * "being created"; any other size too small for a ring is foreign. */
    if (st.st_size == 0) {
        close(fd);
        return ATBUS_ENOTFOUND;
    }
    if ((uint64_t)st.st_size <
            ATB_SHM_RING_HEADER_SIZE + ATB_SHM_RING_MIN_CAPACITY ||
        (uint64_t)st.st_size >
            ATB_SHM_RING_HEADER_SIZE + ATB_SHM_RING_MAX_CAPACITY) {
        close(fd);
        return ATBUS_EINVAL;
    }
    size_t size = (size_t)st.st_size;
    atb_shm_ring *ring = NULL;
    rc = shm_map(&ring, fd, size, 0);
    if (rc != ATBUS_OK) {
        close(fd);
        return rc;
    }

    const struct shm_header *h = ring->hdr;
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0) {
        rc = ATBUS_ENOTFOUND; /* sized, not yet initialised */
    } else if (magic != SHM_MAGIC) {
        rc = ATBUS_EINVAL;
    } else if (h->version != SHM_VERSION) {
        rc = ATBUS_ENOTSUP;
    } else if (h->header_size != ATB_SHM_RING_HEADER_SIZE ||
               h->capacity != ring->capacity ||
               (h->capacity & (h->capacity - 1)) != 0) {
        rc = ATBUS_EINVAL;
    } else if (atomic_load_explicit(&h->closed, memory_order_relaxed)) {
        rc = ATBUS_ECLOSED;
    }
    if (rc != ATBUS_OK) {
        shm_unmap(ring);
        return rc;
    }
    *out = ring;
    return ATBUS_OK;
}

void
atb_shm_ring_close(atb_shm_ring *ring)
{
    if (ring == NULL) {
        return;
    }
    if (ring->reader) {
        atomic_store_explicit(&ring->hdr->closed, 1, memory_order_relaxed);
    }
    shm_unmap(ring);
}

int
atb_shm_ring_reclaim(const char *key)
{
    char name[sizeof(SHM_NAME_PREFIX) + ATB_SHM_RING_KEY_MAX];
    int rc = shm_name(name, key);
    if (rc != ATBUS_OK) {
        return rc;
    }
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        return atb_sys_error(errno);
    }
    rc = shm_lock(fd);
    if (rc == ATBUS_OK) {
        /* Holding the lock of a named object: no reader can hold it, and
         * only a lock holder removes the name, so the name still means
         * this object when it is removed. An object that lost its name
         * meanwhile was already taken care of. */
        if (shm_linked(fd) && shm_unlink(name) != 0 && errno != ENOENT) {
            rc = atb_sys_error(errno);
        }
    }
    close(fd);
    return rc;
}

int
atb_shm_ring_sweep(const char *prefix)
{
    size_t n = strlen(prefix);
    const size_t skip = sizeof(SHM_NAME_PREFIX) - 2; /* "atbus." */
    DIR *dir = opendir("/dev/shm");
    if (dir == NULL) {
        return atb_sys_error(errno);
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, &SHM_NAME_PREFIX[1], skip) == 0 &&
            strncmp(e->d_name + skip, prefix, n) == 0 &&
            atb_shm_ring_reclaim(e->d_name + skip) == ATBUS_OK) {
            removed++;
        }
    }
    closedir(dir);
    return removed;
}

int
atb_shm_ring_reader_alive(const atb_shm_ring *ring)
{
    if (ring->reader) {
        return 1;
    }
    /* F_OFD_GETLK reports a conflicting lock without taking anything, so
     * asking never gets in the way of a reader or a reclaimer. */
    struct flock fl = shm_lock_range(F_WRLCK);
    if (fcntl(ring->fd, F_OFD_GETLK, &fl) != 0) {
        return atb_sys_error(errno);
    }
    return fl.l_type != F_UNLCK;
}

int
atb_shm_ring_unlink(const char *key)
{
    char name[sizeof(SHM_NAME_PREFIX) + ATB_SHM_RING_KEY_MAX];
    int rc = shm_name(name, key);
    if (rc != ATBUS_OK) {
        return rc;
    }
    if (shm_unlink(name) != 0) {
        return atb_sys_error(errno);
    }
    return ATBUS_OK;
}

size_t
atb_shm_ring_capacity(const atb_shm_ring *ring)
{
    return ring->capacity;
}

size_t
atb_shm_ring_max_length(const atb_shm_ring *ring)
{
    return ring->max_length;
}

int
atb_shm_ring_reader_waiting(const atb_shm_ring *ring)
{
    return atomic_load_explicit(&ring->hdr->waiting, memory_order_relaxed) != 0;
}

uint64_t
atb_shm_ring_head(const atb_shm_ring *ring)
{
    return (uint64_t)atomic_load_explicit(&ring->hdr->head,
                                          memory_order_acquire);
}

uint64_t
atb_shm_ring_tail(const atb_shm_ring *ring)
{
    return (uint64_t)atomic_load_explicit(&ring->hdr->tail,
                                          memory_order_acquire);
}

/* ---- writers --------------------------------------------------------- */

static struct shm_record *
shm_record_at(const atb_shm_ring *ring, size_t index)
{
    return (struct shm_record *)(void *)(ring->data + index);
}

static size_t
shm_align(size_t n)
{
    return (n + SHM_ALIGN - 1) & ~(SHM_ALIGN - 1);
}

/* shm_futex calls futex(2) on the shared word. Not FUTEX_PRIVATE_FLAG:
 * the sleeper and the waker are different processes, so the kernel must
 * key the wait on the shared page, not on this address space. */
static long
shm_futex(_Atomic uint32_t *word, int op, uint32_t val,
          const struct timespec *timeout)
{
    /* The kernel wants the plain address; going through uintptr_t says
     * that dropping _Atomic here is deliberate. */
    return syscall(SYS_futex, (void *)(uintptr_t)word, op, val, timeout, NULL,
                   0);
}

/* shm_wake wakes the reader after a commit if it announced sleep. */
static void
shm_wake(atb_shm_ring *ring)
{
    _Atomic uint32_t *w = &ring->hdr->waiting;
    /*
     * The other half of the reader's "announce, then re-check" in
     * atb_shm_ring_wait. Both sides store, fence (seq_cst) and then load
     * the other's word: the fences are totally ordered, so either the
     * reader's re-check sees this commit or this load sees its flag. A
     * wake-up can therefore not be lost, and the common case (reader
     * busy) costs a fence and a load, no system call.
     */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(w, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(w, 0, memory_order_relaxed) != 0) {
        shm_futex(w, FUTEX_WAKE, 1, NULL);
    }
}

/*
 * shm_claim reserves need bytes (aligned, header included) and returns the
 * index of the record, or ATBUS_EWOULDBLOCK. A record never wraps: when
 * it does not fit before the end of the data area, the same claim also
 * takes the rest of the area and fills it with a padding record.
 */
static int
shm_claim_space(atb_shm_ring *ring, size_t need, size_t *index)
{
    struct shm_header *h = ring->hdr;
    const int64_t cap = (int64_t)ring->capacity;
    /* Acquire on every load of a head: the reader zeroed the space before
     * it published the head (release), and a record header written here
     * must not be overtaken by that zeroing. */
    int64_t head = atomic_load_explicit(&h->head_cache, memory_order_acquire);
    int64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    size_t idx;
    size_t pad;
    for (;;) {
        idx = (size_t)tail & ring->mask;
        pad = ring->capacity - idx < need ? ring->capacity - idx : 0;
        int64_t end = tail + (int64_t)(pad + need);
        if (end - head > cap) {
            /* The cached head is stale or the ring is full: ask the
             * reader's line only now, so writers do not keep pulling it
             * away from the reader. */
            head = atomic_load_explicit(&h->head, memory_order_acquire);
            if (end - head > cap) {
                return ATBUS_EWOULDBLOCK;
            }
            atomic_store_explicit(&h->head_cache, head, memory_order_release);
        }
        /* Relaxed: the tail only hands out space; what a record contains
         * is published by its own length word. On failure tail holds the
         * current value and the loop recomputes. */
        if (atomic_compare_exchange_weak_explicit(&h->tail, &tail, end,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            break;
        }
    }
    if (pad != 0) {
        struct shm_record *r = shm_record_at(ring, idx);
        atomic_store_explicit(&r->type, SHM_PADDING_TYPE, memory_order_relaxed);
        /* Release: the reader must see the padding type with the length. */
        atomic_store_explicit(&r->length, (int32_t)pad, memory_order_release);
        idx = 0;
    }
    *index = idx;
    return ATBUS_OK;
}

int
atb_shm_ring_claim(atb_shm_ring *ring, int32_t type, size_t len, void **data)
{
    if (type < 0 || data == NULL) {
        return ATBUS_EINVAL;
    }
    if (len > ring->max_length) {
        return ATBUS_EMSGSIZE;
    }
    if (atomic_load_explicit(&ring->hdr->closed, memory_order_relaxed)) {
        return ATBUS_ECLOSED;
    }
    size_t record = ATB_SHM_RING_RECORD_HEADER + len;
    size_t idx;
    int rc = shm_claim_space(ring, shm_align(record), &idx);
    if (rc != ATBUS_OK) {
        return rc;
    }
    struct shm_record *r = shm_record_at(ring, idx);
    atomic_store_explicit(&r->type, type, memory_order_relaxed);
    /* Negative: claimed, not readable. Relaxed is enough; the reader acts
     * on it only in atb_shm_ring_unblock, which does not trust the
     * contents. */
    atomic_store_explicit(&r->length, -(int32_t)record, memory_order_relaxed);
    *data = ring->data + idx + ATB_SHM_RING_RECORD_HEADER;
    return ATBUS_OK;
}

void
atb_shm_ring_commit(atb_shm_ring *ring, void *data)
{
    struct shm_record *r =
        (struct shm_record *)(void *)((uint8_t *)data -
                                      ATB_SHM_RING_RECORD_HEADER);
    int32_t len = atomic_load_explicit(&r->length, memory_order_relaxed);
    /* Release: the payload is complete before the reader can see a
     * positive length (it loads the length with acquire). */
    atomic_store_explicit(&r->length, -len, memory_order_release);
    shm_wake(ring);
}

void
atb_shm_ring_abort(atb_shm_ring *ring, void *data)
{
    struct shm_record *r =
        (struct shm_record *)(void *)((uint8_t *)data -
                                      ATB_SHM_RING_RECORD_HEADER);
    int32_t len = atomic_load_explicit(&r->length, memory_order_relaxed);
    atomic_store_explicit(&r->type, SHM_PADDING_TYPE, memory_order_relaxed);
    atomic_store_explicit(&r->length, -len, memory_order_release);
    shm_wake(ring);
}

int
atb_shm_ring_write(atb_shm_ring *ring, int32_t type, const struct iovec *iov,
                   int iovcnt)
{
    if (iovcnt < 0 || (iov == NULL && iovcnt > 0)) {
        return ATBUS_EINVAL;
    }
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > ring->max_length - len) {
            return ATBUS_EMSGSIZE;
        }
        len += iov[i].iov_len;
    }
    void *data;
    int rc = atb_shm_ring_claim(ring, type, len, &data);
    if (rc != ATBUS_OK) {
        return rc;
    }
    uint8_t *p = data;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0) {
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
    }
    atb_shm_ring_commit(ring, data);
    return ATBUS_OK;
}

int
atb_shm_ring_writable(const atb_shm_ring *ring, size_t len)
{
    if (len > ring->max_length) {
        return ATBUS_EMSGSIZE;
    }
    const struct shm_header *h = ring->hdr;
    if (atomic_load_explicit(&h->closed, memory_order_relaxed)) {
        return ATBUS_ECLOSED;
    }
    /* The same arithmetic as shm_claim_space, including the padding a
     * record needs when it does not fit before the end of the area. */
    size_t need = shm_align(ATB_SHM_RING_RECORD_HEADER + len);
    int64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    int64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    size_t idx = (size_t)tail & ring->mask;
    size_t pad = ring->capacity - idx < need ? ring->capacity - idx : 0;
    return tail + (int64_t)(pad + need) - head <= (int64_t)ring->capacity;
}

/* ---- the reader ------------------------------------------------------ */

/*
 * shm_read_block delivers committed records from the head up to the end
 * of the data area, at most *limit of them, then zeroes what it consumed
 * and publishes the new head. Returns the number of bytes consumed (0:
 * nothing ready) or ATBUS_EFRAME_INVALID.
 */
static int64_t
shm_read_block(atb_shm_ring *ring, atb_shm_ring_handler handler, void *arg,
               int limit, int *delivered)
{
    struct shm_header *h = ring->hdr;
    /* Relaxed: only this reader writes the head. */
    int64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    size_t start = (size_t)head & ring->mask;
    size_t block = ring->capacity - start;
    size_t done = 0;
    while (done < block && *delivered < limit) {
        struct shm_record *r = shm_record_at(ring, start + done);
        /* Acquire pairs with the writer's release commit: the payload
         * and type are complete once the length is positive. */
        int32_t len = atomic_load_explicit(&r->length, memory_order_acquire);
        if (len <= 0) {
            break;
        }
        /* Another process wrote this length: check it against the ring
         * before touching anything it points to. */
        size_t span = shm_align((size_t)len);
        if ((size_t)len < ATB_SHM_RING_RECORD_HEADER || span > block - done) {
            ring->corrupt = 1;
            break;
        }
        int32_t type = atomic_load_explicit(&r->type, memory_order_relaxed);
        if (type != SHM_PADDING_TYPE) {
            size_t payload = (size_t)len - ATB_SHM_RING_RECORD_HEADER;
            if (type < 0 || payload > ring->max_length) {
                ring->corrupt = 1;
                break;
            }
            (*delivered)++;
            handler(type,
                    ring->data + start + done + ATB_SHM_RING_RECORD_HEADER,
                    payload, arg);
        }
        done += span;
    }
    if (done > 0) {
        /*
         * Zero before publishing the head (release): free space must read
         * as length 0 so that a claim in progress is never mistaken for an
         * old record, and so that atb_shm_ring_unblock can tell an
         * unwritten claim from a record. Writers load the head with
         * acquire, so their new headers land after the zeroes.
         */
        memset(ring->data + start, 0, done);
        atomic_store_explicit(&h->head, head + (int64_t)done,
                              memory_order_release);
    }
    if (ring->corrupt) {
        return ATBUS_EFRAME_INVALID;
    }
    return (int64_t)done;
}

int
atb_shm_ring_read(atb_shm_ring *ring, atb_shm_ring_handler handler, void *arg,
                  int limit)
{
    if (!ring->reader || handler == NULL || limit <= 0) {
        return ATBUS_EINVAL;
    }
    if (ring->corrupt) {
        return ATBUS_EFRAME_INVALID;
    }
    int delivered = 0;
    /* At most two blocks: up to the end of the data area, then from its
     * start after the wrap. */
    for (int pass = 0; pass < 2 && delivered < limit; pass++) {
        int64_t head =
            atomic_load_explicit(&ring->hdr->head, memory_order_relaxed);
        size_t to_end = ring->capacity - ((size_t)head & ring->mask);
        int64_t n = shm_read_block(ring, handler, arg, limit, &delivered);
        if (n < 0) {
            return (int)n;
        }
        if ((size_t)n != to_end) {
            break;
        }
    }
    return delivered;
}

/* shm_ready reports whether the record at the head is committed. */
static int
shm_ready(const atb_shm_ring *ring)
{
    int64_t head = atomic_load_explicit(&ring->hdr->head, memory_order_relaxed);
    const struct shm_record *r = shm_record_at(ring, (size_t)head & ring->mask);
    return atomic_load_explicit(&r->length, memory_order_acquire) > 0;
}

int
atb_shm_ring_wait(atb_shm_ring *ring, int64_t timeout_us)
{
    if (!ring->reader) {
        return ATBUS_EINVAL;
    }
    if (atomic_load(&ring->interrupted)) {
        return ATBUS_ECLOSED;
    }
    if (shm_ready(ring) || ring->corrupt) {
        return ATBUS_OK; /* a read reports the corruption */
    }
    if (timeout_us == 0) {
        return ATBUS_ETIMEDOUT;
    }
    _Atomic uint32_t *w = &ring->hdr->waiting;
    uint64_t deadline =
        timeout_us < 0 ? UINT64_MAX : atb_clock_us() + (uint64_t)timeout_us;
    for (;;) {
        /* Announce, fence, re-check: see shm_wake for why no commit can
         * slip between the check and the sleep. */
        atomic_store_explicit(w, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (shm_ready(ring)) {
            atomic_store_explicit(w, 0, memory_order_relaxed);
            return ATBUS_OK;
        }
        /* The same announce/re-check pairing covers the interrupt. */
        if (atomic_load_explicit(&ring->interrupted, memory_order_relaxed)) {
            atomic_store_explicit(w, 0, memory_order_relaxed);
            return ATBUS_ECLOSED;
        }
        struct timespec ts;
        const struct timespec *tsp = NULL;
        if (deadline != UINT64_MAX) {
            uint64_t now = atb_clock_us();
            if (now >= deadline) {
                atomic_store_explicit(w, 0, memory_order_relaxed);
                return ATBUS_ETIMEDOUT;
            }
            uint64_t left = deadline - now;
            ts.tv_sec = (time_t)(left / 1000000u);
            ts.tv_nsec = (long)(left % 1000000u) * 1000;
            tsp = &ts;
        }
        /* Sleeps only while the word is still 1: a writer that cleared it
         * after our re-check makes this return at once (EAGAIN). */
        long r = shm_futex(w, FUTEX_WAIT, 1, tsp);
        int err = r == 0 ? 0 : errno;
        atomic_store_explicit(w, 0, memory_order_relaxed);
        if (err != 0 && err != EAGAIN && err != EINTR && err != ETIMEDOUT) {
            return ATBUS_ESYSTEM;
        }
        /* A wake-up is only a hint: the commit may belong to a record
         * behind a head that is still being written. Loop and re-check. */
        if (shm_ready(ring)) {
            return ATBUS_OK;
        }
    }
}

void
atb_shm_ring_interrupt(atb_shm_ring *ring)
{
    atomic_store_explicit(&ring->interrupted, 1, memory_order_relaxed);
    /* Then wake exactly as a writer does (see shm_wake): either the
     * sleeper's re-check sees the flag, or this sees its announcement. */
    shm_wake(ring);
}

/* shm_zero_since reports whether every record-header slot in [from, to)
 * still reads as length 0. */
static int
shm_zero_since(const atb_shm_ring *ring, size_t from, size_t to)
{
    for (size_t i = from; i < to; i += SHM_ALIGN) {
        const struct shm_record *r = shm_record_at(ring, i);
        if (atomic_load_explicit(&r->length, memory_order_acquire) != 0) {
            return 0;
        }
    }
    return 1;
}

/* shm_make_padding turns [index, index + span) into one padding record. */
static void
shm_make_padding(atb_shm_ring *ring, size_t index, size_t span)
{
    struct shm_record *r = shm_record_at(ring, index);
    atomic_store_explicit(&r->type, SHM_PADDING_TYPE, memory_order_relaxed);
    atomic_store_explicit(&r->length, (int32_t)span, memory_order_release);
}

int
atb_shm_ring_unblock(atb_shm_ring *ring)
{
    if (!ring->reader) {
        return ATBUS_EINVAL;
    }
    struct shm_header *h = ring->hdr;
    int64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    int64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    if (tail == head) {
        return 0;
    }
    size_t idx = (size_t)head & ring->mask;
    size_t to_end = ring->capacity - idx;
    struct shm_record *r = shm_record_at(ring, idx);
    int32_t len = atomic_load_explicit(&r->length, memory_order_acquire);
    if (len > 0) {
        return 0; /* committed: the reader is not blocked */
    }
    if (len < 0) {
        /* Claimed and never committed. The claimed length is checked like
         * any length from another process; a bad one is left for read to
         * report. */
        int64_t claimed = -(int64_t)len;
        if (claimed < (int64_t)ATB_SHM_RING_RECORD_HEADER ||
            shm_align((size_t)claimed) > to_end) {
            return 0;
        }
        shm_make_padding(ring, idx, (size_t)claimed);
        return 1;
    }
    /*
     * Length 0 with the tail beyond: the writer died after its tail CAS
     * but before writing its header (or, at the wrap, before writing the
     * padding record). Its space is all zeroes, so the next non-zero
     * header slot is the next record. The claimed space runs to the tail
     * or, when the tail has wrapped, to the end of the area; a gap that
     * reaches the end of the area is followed by records from the start,
     * so it is padded up to the end (Aeron stops there and stays stuck).
     */
    size_t pending = (size_t)(tail - head);
    size_t limit = pending < to_end ? idx + pending : ring->capacity;
    for (size_t i = idx + SHM_ALIGN; i < limit; i += SHM_ALIGN) {
        const struct shm_record *next = shm_record_at(ring, i);
        if (atomic_load_explicit(&next->length, memory_order_acquire) != 0) {
            /* Check the gap again: a slow writer may have filled in its
             * header behind the scan. */
            if (!shm_zero_since(ring, idx, i)) {
                return 0;
            }
            shm_make_padding(ring, idx, i - idx);
            return 1;
        }
    }
    if (pending > to_end && shm_zero_since(ring, idx, ring->capacity)) {
        shm_make_padding(ring, idx, to_end);
        return 1;
    }
    return 0;
}

int
atb_shm_ring_recover(atb_shm_ring *ring, uint64_t now_us, uint64_t stall_us)
{
    if (!ring->reader) {
        return ATBUS_EINVAL;
    }
    const struct shm_header *h = ring->hdr;
    int64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    int64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    /* Not stalled: the head moved, nothing is pending, or the record at
     * the head is committed and only waits for a read. Restart the
     * clock. */
    if (head != ring->stall_head || tail == head || shm_ready(ring)) {
        ring->stall_head = head;
        ring->stall_since_us = now_us;
        return 0;
    }
    if (now_us - ring->stall_since_us < stall_us) {
        return 0;
    }
    ring->stall_since_us = now_us;
    return atb_shm_ring_unblock(ring);
}
