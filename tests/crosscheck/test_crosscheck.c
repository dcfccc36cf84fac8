/*
 * Cross-implementation tests of the wire format. atbus_frames.py builds
 * and reads frames with Debian's python3-protobuf and python3-xxhash; its
 * frames must decode here field by field, frames from atb_frame_encode
 * must decode there, and a frame with one flipped bit must fail the hash
 * check on both sides.
 *
 * Both sides reduce a frame to the same canonical description (the format
 * is documented in atbus_frames.py) by walking message descriptors, and
 * both fill messages by walking descriptors, so a field added to the
 * .proto later is compared without changing either file.
 */
#define _POSIX_C_SOURCE 200809L

#include <atbus/error.h>
#include <atbus/version.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "testing.h"
#include "wire/frame.h"
#include "wire/frame_decoder.h"
#include "wire/message.h"

#if !defined(ATB_XCHECK_PYTHON) || !defined(ATB_XCHECK_SCRIPT) ||              \
    !defined(ATB_XCHECK_DESCRIPTOR)
#error "tests/crosscheck/CMakeLists.txt defines the interpreter and paths"
#endif

extern char **environ;

/* atbus_frames.py exit codes. */
#define XCHECK_EXIT_HASH 4
#define XCHECK_EXIT_NO_MODULE 5

#define XCHECK_SEEDS 10
#define XCHECK_SEED_BASE 4242
#define XCHECK_PATH_MAX 1024
/* Deep enough for every message of the protocol; only a guard against a
 * future recursive message. */
#define XCHECK_FILL_MAX_DEPTH 6

static const char *const xcheck_bodies[] = {"ping", "pong", "packet",
                                            "acknowledge"};
#define XCHECK_BODIES (sizeof(xcheck_bodies) / sizeof(xcheck_bodies[0]))

/* Where the frames and descriptions of one run live; made in main before
 * the tests fork. */
static char xcheck_dir[] = "/tmp/atbus-xcheck-XXXXXX";

/* ---- text ------------------------------------------------------------- */

/* A growing NUL-terminated string in atb_malloc memory, so the leak check
 * covers the test's own bookkeeping as well. */
struct xcheck_text {
    char *buf;
    size_t len;
    size_t cap;
};

static void
text_reserve(struct xcheck_text *t, size_t extra)
{
    if (t->len + extra + 1 <= t->cap) {
        return;
    }
    size_t cap = t->cap != 0 ? t->cap : 256;
    while (cap < t->len + extra + 1) {
        cap *= 2;
    }
    char *nb = atb_realloc(t->buf, cap);
    ck_assert_ptr_nonnull(nb);
    t->buf = nb;
    t->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void
text_printf(struct xcheck_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    text_reserve(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static void
text_hex(struct xcheck_text *t, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    text_reserve(t, 2 * len);
    for (size_t i = 0; i < len; i++) {
        t->buf[t->len++] = digits[data[i] >> 4];
        t->buf[t->len++] = digits[data[i] & 0xf];
    }
    t->buf[t->len] = '\0';
}

static const char *
text_str(struct xcheck_text *t)
{
    text_reserve(t, 0);
    t->buf[t->len] = '\0';
    return t->buf;
}

static void
text_free(struct xcheck_text *t)
{
    atb_free(t->buf);
    t->buf = NULL;
    t->len = 0;
    t->cap = 0;
}

__attribute__((format(printf, 2, 3))) static void
path_printf(char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, XCHECK_PATH_MAX, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && n < XCHECK_PATH_MAX, "path too long: %s", path);
}

/* ---- descriptor helpers --------------------------------------------- */

static const void *
field_member(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    return (const char *)m + fd->offset;
}

static size_t
field_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    size_t n;
    memcpy(&n, (const char *)m + fd->quantifier_offset, sizeof(n));
    return n;
}

static uint32_t
field_oneof_case(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    uint32_t c;
    memcpy(&c, (const char *)m + fd->quantifier_offset, sizeof(c));
    return c;
}

static const void *
member_pointer(const void *member)
{
    const void *p;
    memcpy(&p, member, sizeof(p));
    return p;
}

/* field_size returns the bytes one value of fd's type takes in a struct or
 * a repeated array. */
static size_t
field_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    ck_abort_msg("field %s: unknown type %d", fd->name, (int)fd->type);
    return 0;
}

/* field_is_zero tells whether a proto3 field without presence holds its
 * default, which is then not on the wire. Floats compare by bits, as
 * protobuf does, so -0.0 counts as set. */
static int
field_is_zero(const ProtobufCFieldDescriptor *fd, const void *member)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = member_pointer(member);
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        memcpy(&b, member, sizeof(b));
        return b.len == 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return member_pointer(member) == NULL;
    default: {
        static const uint8_t zero[sizeof(uint64_t)];
        return memcmp(member, zero, field_size(fd)) == 0;
    }
    }
}

/* field_present mirrors python3-protobuf's ListFields: which fields of m
 * are set. */
static int
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    const void *member = field_member(m, fd);
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return field_oneof_case(m, fd) == fd->id;
    }
    switch (fd->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return 1;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            return member_pointer(member) != NULL;
        }
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            const void *s = member_pointer(member);
            return s != NULL && s != fd->default_value;
        }
        {
            protobuf_c_boolean has;
            memcpy(&has, (const char *)m + fd->quantifier_offset, sizeof(has));
            return has != 0;
        }
    case PROTOBUF_C_LABEL_NONE:
        return !field_is_zero(fd, member);
    case PROTOBUF_C_LABEL_REPEATED:
        return field_count(m, fd) != 0;
    }
    return 0;
}

/* field_is_map recognises a map field: protobuf-c sees only a repeated
 * message, but protoc names the entry type after the field (labels ->
 * LabelsEntry) and gives it exactly key = 1 and value = 2. */
static int
field_is_map(const ProtobufCFieldDescriptor *fd)
{
    if (fd->label != PROTOBUF_C_LABEL_REPEATED ||
        fd->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    const ProtobufCMessageDescriptor *d = fd->descriptor;
    if (d->n_fields != 2 || d->fields[0].id != 1 || d->fields[1].id != 2 ||
        strcmp(d->fields[0].name, "key") != 0 ||
        strcmp(d->fields[1].name, "value") != 0) {
        return 0;
    }
    char want[XCHECK_PATH_MAX];
    size_t n = 0;
    int upper = 1;
    for (const char *p = fd->name; *p != '\0' && n + 6 < sizeof(want); p++) {
        if (*p == '_') {
            upper = 1;
            continue;
        }
        want[n++] =
            upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = 0;
    }
    memcpy(want + n, "Entry", sizeof("Entry"));
    return strcmp(d->short_name, want) == 0;
}

/* map_entry_cmp orders map entries by key: numbers by value, strings by
 * their bytes (as the Python side sorts them). */
static int
map_entry_cmp(const void *a, const void *b)
{
    const ProtobufCMessage *x = member_pointer(a);
    const ProtobufCMessage *y = member_pointer(b);
    const ProtobufCFieldDescriptor *k = &x->descriptor->fields[0];
    const void *px = field_member(x, k);
    const void *py = field_member(y, k);
    switch (k->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sx = member_pointer(px);
        const char *sy = member_pointer(py);
        return strcmp(sx != NULL ? sx : "", sy != NULL ? sy : "");
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t vx, vy;
        memcpy(&vx, px, sizeof(vx));
        memcpy(&vy, py, sizeof(vy));
        return (vx > vy) - (vx < vy);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t vx, vy;
        memcpy(&vx, px, sizeof(vx));
        memcpy(&vy, py, sizeof(vy));
        return (vx > vy) - (vx < vy);
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t vx, vy;
        memcpy(&vx, px, sizeof(vx));
        memcpy(&vy, py, sizeof(vy));
        return (vx > vy) - (vx < vy);
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t vx, vy;
        memcpy(&vx, px, sizeof(vx));
        memcpy(&vy, py, sizeof(vy));
        return (vx > vy) - (vx < vy);
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean vx, vy;
        memcpy(&vx, px, sizeof(vx));
        memcpy(&vy, py, sizeof(vy));
        return (vx != 0) - (vy != 0);
    }
    default:
        ck_abort_msg("map key %s: type %d cannot be a key", k->name,
                     (int)k->type);
        return 0;
    }
}

/* ---- bytes fields that carry messages ------------------------------- */

/* A bytes field that holds a serialized message whenever applies() says
 * so for the message containing it; described as that message. The same
 * table lives in atbus_frames.py. */
struct xcheck_nested {
    const ProtobufCMessageDescriptor *parent;
    const char *field;
    int (*applies)(const ProtobufCMessage *parent);
    int (*unpack)(const uint8_t *data, size_t len, ProtobufCMessage **out);
    void (*free)(ProtobufCMessage *m);
};

static int
nested_content_applies(const ProtobufCMessage *parent)
{
    const atb_pb_packet *p = (const atb_pb_packet *)parent;
    return (p->flags & ATB_PACKET_FLAG_TLS_HANDSHAKE) == 0;
}

static int
nested_content_unpack(const uint8_t *data, size_t len, ProtobufCMessage **out)
{
    atb_pb_content *c;
    int rc = atb_packet_content_unpack(data, len, &c);
    if (rc == ATBUS_OK) {
        *out = &c->base;
    }
    return rc;
}

static void
nested_content_free(ProtobufCMessage *m)
{
    atb_packet_content_free((atb_pb_content *)m);
}

static int
nested_register_applies(const ProtobufCMessage *parent)
{
    const atb_pb_fragment *f = (const atb_pb_fragment *)parent;
    return f->packet_type ==
           ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER;
}

static int
nested_register_unpack(const uint8_t *data, size_t len, ProtobufCMessage **out)
{
    atb_pb_register *r;
    int rc = atb_register_unpack(data, len, &r);
    if (rc == ATBUS_OK) {
        *out = &r->base;
    }
    return rc;
}

static void
nested_register_free(ProtobufCMessage *m)
{
    atb_register_free((atb_pb_register *)m);
}

static const struct xcheck_nested xcheck_nested_rules[] = {
    {&atbus__protocol__packet_data__descriptor, "content",
     nested_content_applies, nested_content_unpack, nested_content_free},
    {&atbus__protocol__packet_content__fragment_type__descriptor, "data",
     nested_register_applies, nested_register_unpack, nested_register_free},
};

static const struct xcheck_nested *
nested_rule(const ProtobufCMessage *parent, const ProtobufCFieldDescriptor *fd)
{
    for (size_t i = 0;
         i < sizeof(xcheck_nested_rules) / sizeof(xcheck_nested_rules[0]);
         i++) {
        const struct xcheck_nested *n = &xcheck_nested_rules[i];
        if (n->parent == parent->descriptor &&
            strcmp(n->field, fd->name) == 0) {
            return n->applies(parent) ? n : NULL;
        }
    }
    return NULL;
}

/* ---- canonical description ------------------------------------------ */

static void render_message(struct xcheck_text *t, const ProtobufCMessage *m,
                           const char *prefix);

static void
render_scalar(struct xcheck_text *t, const ProtobufCFieldDescriptor *fd,
              const void *v)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%" PRId32, x);
        return;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%" PRId64, x);
        return;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%" PRIu32, x);
        return;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%" PRIu64, x);
        return;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits;
        memcpy(&bits, v, sizeof(bits));
        text_printf(t, "%08" PRIx32, bits);
        return;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, v, sizeof(bits));
        text_printf(t, "%016" PRIx64, bits);
        return;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%d", x != 0);
        return;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int x;
        memcpy(&x, v, sizeof(x));
        text_printf(t, "%d", x);
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = member_pointer(v);
        if (s != NULL) {
            text_hex(t, (const uint8_t *)s, strlen(s));
        }
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        memcpy(&b, v, sizeof(b));
        text_hex(t, b.data, b.len);
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    ck_abort_msg("field %s: type %d is not a scalar", fd->name, (int)fd->type);
}

/* render_value describes one value of fd (an element when fd is repeated)
 * found at v, under path; parent is the message holding the field. */
static void
render_value(struct xcheck_text *t, const ProtobufCMessage *parent,
             const ProtobufCFieldDescriptor *fd, const void *v,
             const char *path)
{
    char sub[XCHECK_PATH_MAX];
    path_printf(sub, "%s.", path);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *m = member_pointer(v);
        text_printf(t, "%s={}\n", path);
        if (m != NULL) {
            render_message(t, m, sub);
        }
        return;
    }
    const struct xcheck_nested *n = nested_rule(parent, fd);
    if (n != NULL) {
        ProtobufCBinaryData b;
        ProtobufCMessage *m;
        memcpy(&b, v, sizeof(b));
        int rc = n->unpack(b.data, b.len, &m);
        if (rc == ATBUS_OK) {
            text_printf(t, "%s={}\n", path);
            render_message(t, m, sub);
            n->free(m);
            return;
        }
        /* Shown, not asserted, so the comparison names the field. */
        text_printf(t, "%s=?%s?", path, atbus_err_name(rc));
        text_hex(t, b.data, b.len);
        text_printf(t, "\n");
        return;
    }
    text_printf(t, "%s=", path);
    render_scalar(t, fd, v);
    text_printf(t, "\n");
}

static void
render_map(struct xcheck_text *t, const ProtobufCMessage *m,
           const ProtobufCFieldDescriptor *fd, const char *path)
{
    size_t n = field_count(m, fd);
    if (n == 0) {
        return;
    }
    const ProtobufCMessage *const *entries =
        member_pointer(field_member(m, fd));
    const ProtobufCMessage **sorted = atb_calloc(n, sizeof(*sorted));
    ck_assert_ptr_nonnull(sorted);
    memcpy(sorted, entries, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), map_entry_cmp);

    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    for (size_t i = 0; i < n; i++) {
        struct xcheck_text key = {0};
        render_scalar(&key, &ed->fields[0],
                      field_member(sorted[i], &ed->fields[0]));
        char elem[XCHECK_PATH_MAX];
        path_printf(elem, "%s[%s]", path, text_str(&key));
        text_free(&key);
        render_value(t, m, &ed->fields[1],
                     field_member(sorted[i], &ed->fields[1]), elem);
    }
    atb_free(sorted);
}

/* render_message appends one line per present field of m, in field-number
 * order, each path prefixed with prefix. */
static void
render_message(struct xcheck_text *t, const ProtobufCMessage *m,
               const char *prefix)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        /* protoc-c sorts fields by number; the description relies on it. */
        ck_assert(i == 0 || d->fields[i - 1].id < fd->id);
        char path[XCHECK_PATH_MAX];
        path_printf(path, "%s%s", prefix, fd->name);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            if (field_is_map(fd)) {
                render_map(t, m, fd, path);
                continue;
            }
            size_t n = field_count(m, fd);
            const char *arr = member_pointer(field_member(m, fd));
            for (size_t j = 0; j < n; j++) {
                char elem[XCHECK_PATH_MAX];
                path_printf(elem, "%s[%zu]", path, j);
                render_value(t, m, fd, arr + j * field_size(fd), elem);
            }
        } else if (field_present(m, fd)) {
            render_value(t, m, fd, field_member(m, fd), path);
        }
    }
}

static void
render_frame(struct xcheck_text *t, const atb_pb_frame *f)
{
    render_message(t, &f->base, "");
    text_str(t);
}

/* xcheck_same compares two descriptions and names the first line that
 * differs. */
static void
xcheck_same(const char *c_text, const char *py_text, const char *what)
{
    if (strcmp(c_text, py_text) == 0) {
        return;
    }
    const char *a = c_text;
    const char *b = py_text;
    size_t line = 1;
    for (;;) {
        size_t la = strcspn(a, "\n");
        size_t lb = strcspn(b, "\n");
        if (la != lb || memcmp(a, b, la) != 0 || a[la] != b[lb]) {
            ck_abort_msg("%s: line %zu differs\n  C:      %.*s\n"
                         "  Python: %.*s",
                         what, line, (int)la, a, (int)lb, b);
        }
        a += la + 1;
        b += lb + 1;
        line++;
    }
}

/* ---- random messages ------------------------------------------------ */

static void *
xcheck_pb_alloc(void *data, size_t size)
{
    (void)data;
    return atb_malloc(size);
}

static void
xcheck_pb_free(void *data, void *p)
{
    (void)data;
    atb_free(p);
}

/* xcheck_message_free frees a message built by the filler: every pointer
 * in it came from atb_malloc, as in an unpacked message. */
static void
xcheck_message_free(ProtobufCMessage *m)
{
    ProtobufCAllocator a = {
        .alloc = xcheck_pb_alloc,
        .free = xcheck_pb_free,
        .allocator_data = NULL,
    };
    protobuf_c_message_free_unpacked(m, &a);
}

static uint64_t
rand_below(uint64_t *rng, uint64_t n)
{
    return atb_test_rng(rng) % n;
}

static int
rand_chance(uint64_t *rng, uint64_t num, uint64_t den)
{
    return rand_below(rng, den) < num;
}

/* rand_bits returns an integer of the given width as its bit pattern:
 * zero, an extreme, or a value of uniformly chosen bit length (so every
 * varint length occurs), negated half the time when signed. */
static uint64_t
rand_bits(uint64_t *rng, unsigned bits, int is_signed)
{
    uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
    uint64_t top = (uint64_t)1 << (bits - 1);
    switch (rand_below(rng, 8)) {
    case 0:
        return 0;
    case 1: {
        const uint64_t edges[] = {1, mask, top, top - 1};
        return edges[rand_below(rng, 4)];
    }
    default: {
        unsigned len = 1 + (unsigned)rand_below(rng, bits);
        uint64_t v = atb_test_rng(rng) & (mask >> (bits - len));
        if (is_signed && rand_chance(rng, 1, 2)) {
            v = (0 - v) & mask;
        }
        return v;
    }
    }
}

static size_t
utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* rand_text returns valid UTF-8 without NUL (python3-protobuf rejects
 * invalid UTF-8 in proto3 strings; protobuf-c strings end at NUL). */
static char *
rand_text(uint64_t *rng)
{
    size_t n = rand_below(rng, 13);
    char *s = atb_malloc(4 * n + 1);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        uint64_t r = rand_below(rng, 8);
        if (r < 5) {
            cp = 0x20 + (uint32_t)rand_below(rng, 0x7f - 0x20);
        } else if (r == 5) {
            cp = 0x80 + (uint32_t)rand_below(rng, 0x800 - 0x80);
        } else if (r == 6) {
            /* Skip the surrogates: they are not valid UTF-8. */
            cp = 0x800 + (uint32_t)rand_below(rng, 0x10000 - 0x800 - 0x800);
            if (cp >= 0xd800) {
                cp += 0x800;
            }
        } else {
            cp = 0x10000 + (uint32_t)rand_below(rng, 0x110000 - 0x10000);
        }
        len += utf8_put(cp, s + len);
    }
    s[len] = '\0';
    return s;
}

static ProtobufCBinaryData
rand_blob(uint64_t *rng)
{
    ProtobufCBinaryData b = {0, NULL};
    /* Empty often: an empty proto2 bytes field is still present. */
    b.len = rand_chance(rng, 1, 4) ? 0 : 1 + rand_below(rng, 16);
    if (b.len != 0) {
        b.data = atb_malloc(b.len);
        ck_assert_ptr_nonnull(b.data);
        for (size_t i = 0; i < b.len; i++) {
            b.data[i] = (uint8_t)atb_test_rng(rng);
        }
    }
    return b;
}

/* fill_scalar stores a random value of fd's type at member. */
static void
fill_scalar(uint64_t *rng, const ProtobufCFieldDescriptor *fd, void *member)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        int is_signed = fd->type != PROTOBUF_C_TYPE_UINT32 &&
                        fd->type != PROTOBUF_C_TYPE_FIXED32;
        uint32_t v = (uint32_t)rand_bits(rng, 32, is_signed);
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        int is_signed = fd->type != PROTOBUF_C_TYPE_UINT64 &&
                        fd->type != PROTOBUF_C_TYPE_FIXED64;
        uint64_t v = rand_bits(rng, 64, is_signed);
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        /* Small integers: exact in both widths, never NaN or -0. */
        float v = (float)(1 + rand_below(rng, 1u << 20));
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = (double)(1 + rand_below(rng, 1u << 20));
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = rand_chance(rng, 1, 2);
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = fd->descriptor;
        int v = e->values[rand_below(rng, e->n_values)].value;
        memcpy(member, &v, sizeof(v));
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s = rand_text(rng);
        memcpy(member, &s, sizeof(s));
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b = rand_blob(rng);
        memcpy(member, &b, sizeof(b));
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    ck_abort_msg("field %s: type %d is not a scalar", fd->name, (int)fd->type);
}

static ProtobufCMessage *fill_new(uint64_t *rng,
                                  const ProtobufCMessageDescriptor *d,
                                  int depth, const char *force);

/* map_dedupe drops entries whose key an earlier entry already has, so the
 * map means the same to protobuf-c (a plain repeated field) and to
 * python3-protobuf (a dict). */
static void
map_dedupe(ProtobufCMessage **entries, size_t *n)
{
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        int dup = 0;
        for (size_t j = 0; j < kept && !dup; j++) {
            dup = map_entry_cmp(&entries[j], &entries[i]) == 0;
        }
        if (dup) {
            xcheck_message_free(entries[i]);
        } else {
            entries[kept++] = entries[i];
        }
    }
    *n = kept;
}

/* fill_field gives fd of m a random value; a oneof member (always) is
 * filled even if that leaves it at its default. */
static void
fill_field(uint64_t *rng, ProtobufCMessage *m,
           const ProtobufCFieldDescriptor *fd, int depth, int always)
{
    char *base = (char *)m;
    void *member = base + fd->offset;
    int is_msg = fd->type == PROTOBUF_C_TYPE_MESSAGE;

    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = rand_below(rng, 4);
        if (n == 0 || (is_msg && depth >= XCHECK_FILL_MAX_DEPTH)) {
            return;
        }
        size_t size = field_size(fd);
        char *arr = atb_calloc(n, size);
        ck_assert_ptr_nonnull(arr);
        for (size_t i = 0; i < n; i++) {
            if (is_msg) {
                ProtobufCMessage *sub =
                    fill_new(rng, fd->descriptor, depth + 1, NULL);
                memcpy(arr + i * size, &sub, sizeof(sub));
            } else {
                fill_scalar(rng, fd, arr + i * size);
            }
        }
        if (field_is_map(fd)) {
            map_dedupe((ProtobufCMessage **)(void *)arr, &n);
        }
        memcpy(base + fd->quantifier_offset, &n, sizeof(n));
        memcpy(member, &arr, sizeof(arr));
        return;
    }
    if (is_msg) {
        if (always ||
            (depth < XCHECK_FILL_MAX_DEPTH && rand_chance(rng, 3, 4))) {
            ProtobufCMessage *sub =
                fill_new(rng, fd->descriptor, depth + 1, NULL);
            memcpy(member, &sub, sizeof(sub));
        }
        return;
    }
    if (!always && !rand_chance(rng, 3, 4)) {
        return;
    }
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
        fd->type != PROTOBUF_C_TYPE_STRING &&
        (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0) {
        /* Present even when the value is empty: the has_ flag puts it on
         * the wire. */
        protobuf_c_boolean has = 1;
        memcpy(base + fd->quantifier_offset, &has, sizeof(has));
    }
    fill_scalar(rng, fd, member);
}

/* fill_oneof picks the member of the oneof containing field i (or none);
 * force names a member that must be picked if it belongs to it. */
static const ProtobufCFieldDescriptor *
fill_oneof(uint64_t *rng, const ProtobufCMessageDescriptor *d, unsigned i,
           const char *force)
{
    unsigned q = d->fields[i].quantifier_offset;
    const ProtobufCFieldDescriptor *members[64];
    size_t n = 0;
    for (unsigned j = i; j < d->n_fields; j++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[j];
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            fd->quantifier_offset == q) {
            ck_assert_uint_lt(n, sizeof(members) / sizeof(members[0]));
            if (force != NULL && strcmp(fd->name, force) == 0) {
                return fd;
            }
            members[n++] = fd;
        }
    }
    size_t pick = rand_below(rng, n + 1);
    return pick < n ? members[pick] : NULL;
}

static void
fill_fields(uint64_t *rng, ProtobufCMessage *m, int depth, const char *force)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0) {
            fill_field(rng, m, fd, depth, 0);
            continue;
        }
        int seen = 0;
        for (unsigned j = 0; j < i && !seen; j++) {
            seen = (d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   d->fields[j].quantifier_offset == fd->quantifier_offset;
        }
        if (seen) {
            continue;
        }
        const ProtobufCFieldDescriptor *pick = fill_oneof(rng, d, i, force);
        if (pick != NULL) {
            memcpy((char *)m + pick->quantifier_offset, &pick->id,
                   sizeof(pick->id));
            fill_field(rng, m, pick, depth, 1);
        }
    }
}

/* fill_new returns a new message of type d with random fields; force names
 * a oneof member that must be set. */
static ProtobufCMessage *
fill_new(uint64_t *rng, const ProtobufCMessageDescriptor *d, int depth,
         const char *force)
{
    ProtobufCMessage *m = atb_malloc(d->sizeof_message);
    ck_assert_ptr_nonnull(m);
    protobuf_c_message_init(d, m);
    fill_fields(rng, m, depth, force);
    return m;
}

/* pack_into replaces *b with the serialization of m. */
static void
pack_into(ProtobufCBinaryData *b, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *data = atb_malloc(len != 0 ? len : 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(protobuf_c_message_pack(m, data), len);
    atb_free(b->data);
    b->data = len != 0 ? data : NULL;
    b->len = len;
    if (len == 0) {
        atb_free(data);
    }
}

static int64_t
nonneg(int64_t v)
{
    return v < 0 ? ~v : v;
}

/* xcheck_content_new fills a packet_content whose REGISTER fragments
 * carry a register_data. */
static atb_pb_content *
xcheck_content_new(uint64_t *rng)
{
    atb_pb_content *c = (atb_pb_content *)fill_new(
        rng, &atbus__protocol__packet_content__descriptor, 1, NULL);
    if (c->n_fragment == 0) {
        c->fragment = atb_malloc(sizeof(*c->fragment));
        ck_assert_ptr_nonnull(c->fragment);
        c->fragment[0] = (atb_pb_fragment *)fill_new(
            rng, &atbus__protocol__packet_content__fragment_type__descriptor, 2,
            NULL);
        c->n_fragment = 1;
    }
    for (size_t i = 0; i < c->n_fragment; i++) {
        atb_pb_fragment *f = c->fragment[i];
        if (rand_chance(rng, 1, 3)) {
            f->packet_type =
                ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER;
        }
        if (f->packet_type ==
            ATBUS__PROTOCOL__ATBUS__PACKET__TYPE__ATBUS_PACKET_TYPE_REGISTER) {
            ProtobufCMessage *reg = fill_new(
                rng, &atbus__protocol__register_data__descriptor, 3, NULL);
            pack_into(&f->data, reg);
            xcheck_message_free(reg);
        }
    }
    return c;
}

/* xcheck_frame_new returns a random frame_message with the given body that
 * obeys the rules atb_frame_message_unpack enforces. */
static atb_pb_frame *
xcheck_frame_new(uint64_t seed, const char *body)
{
    uint64_t rng = seed;
    atb_pb_frame *f = (atb_pb_frame *)fill_new(
        &rng, &atbus__protocol__frame_message__descriptor, 0, body);
    if (f->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PACKET) {
        atb_pb_packet *p = f->packet;
        if ((p->flags & ATB_PACKET_FLAG_TLS_HANDSHAKE) == 0) {
            atb_pb_content *c = xcheck_content_new(&rng);
            pack_into(&p->content, &c->base);
            xcheck_message_free(&c->base);
        }
        p->stream_offset = nonneg(p->stream_offset);
        p->timepoint_microseconds = nonneg(p->timepoint_microseconds);
        p->padding_size = (int32_t)rand_below(&rng, p->content.len + 1);
    } else if (f->body_case ==
               ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_ACKNOWLEDGE) {
        atb_pb_ack *a = f->acknowledge;
        for (size_t i = 0; i < a->n_streams; i++) {
            atb_pb_stream_ack *s = a->streams[i];
            int64_t lo = nonneg(s->acknowledge_offset);
            int64_t hi = nonneg(s->received_max_offset);
            s->acknowledge_offset = lo < hi ? lo : hi;
            s->received_max_offset = lo < hi ? hi : lo;
        }
        a->timepoint_microseconds = nonneg(a->timepoint_microseconds);
        a->ack_delay_microseconds = nonneg(a->ack_delay_microseconds);
    } else {
        atb_pb_ping *p =
            f->body_case == ATBUS__PROTOCOL__FRAME_MESSAGE__BODY_PING ? f->ping
                                                                      : f->pong;
        p->timepoint_microseconds = nonneg(p->timepoint_microseconds);
    }
    return f;
}

/* ---- files and the Python side -------------------------------------- */

static void
xcheck_dir_remove(void)
{
    DIR *dir = opendir(xcheck_dir);
    if (dir == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char path[XCHECK_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", xcheck_dir, e->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(xcheck_dir);
}

static void
xcheck_file_path(char *path, const char *what, unsigned i, const char *ext)
{
    path_printf(path, "%s/%s-%u.%s", xcheck_dir, what, i, ext);
}

/* xcheck_read returns a file's bytes, NUL-terminated, in atb_malloc
 * memory. */
static uint8_t *
xcheck_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    size_t n = (size_t)st.st_size;
    uint8_t *buf = atb_malloc(n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, n, f), n);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void
xcheck_write(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/*
 * xcheck_python runs atbus_frames.py with args (NULL-terminated) and
 * returns its exit status, 128 + signal when killed, or -1 when the
 * interpreter could not be started. stdout and stderr go to the given
 * files, or are inherited when NULL. -I keeps PYTHONPATH and user site
 * packages out, so only the system's python3-protobuf is used.
 */
static int
xcheck_python(const char *out_path, const char *err_path,
              const char *const *args)
{
    const char *fixed[] = {
        ATB_XCHECK_PYTHON, "-I",           "-B",
        ATB_XCHECK_SCRIPT, "--descriptor", ATB_XCHECK_DESCRIPTOR};
    const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
    char *argv[32];
    size_t argc = 0;
    int ok = 1;
    for (size_t i = 0; i < nfixed; i++) {
        argv[argc++] = strdup(fixed[i]);
    }
    for (size_t i = 0; args[i] != NULL; i++) {
        if (argc + 1 == sizeof(argv) / sizeof(argv[0])) {
            ok = 0;
            break;
        }
        argv[argc++] = strdup(args[i]);
    }
    argv[argc] = NULL;
    for (size_t i = 0; i < argc; i++) {
        ok = ok && argv[i] != NULL;
    }
    if (!ok) {
        for (size_t i = 0; i < argc; i++) {
            free(argv[i]);
        }
        return -1;
    }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_path != NULL) {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    if (err_path != NULL) {
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; i < argc; i++) {
        free(argv[i]);
    }
    if (rc != 0) {
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

/* xcheck_python_ok runs the script and fails the test, showing its
 * stderr, unless it exits 0. */
static void
xcheck_python_ok(const char *out_path, unsigned i, const char *const *args)
{
    char err_path[XCHECK_PATH_MAX];
    xcheck_file_path(err_path, "stderr", i, "txt");
    int st = xcheck_python(out_path, err_path, args);
    if (st != 0) {
        size_t len;
        uint8_t *err = xcheck_read(err_path, &len);
        ck_abort_msg("atbus_frames.py %s exited %d:\n%s", args[0], st,
                     (const char *)err);
    }
}

/* ---- tests ---------------------------------------------------------- */

static unsigned
xcheck_seed(unsigned i)
{
    return XCHECK_SEED_BASE + i;
}

/* xcheck_decode_bytewise feeds frame to a decoder one byte at a time and
 * checks that it yields exactly the frame's message at the last byte. */
static void
xcheck_decode_bytewise(const uint8_t *frame, size_t len,
                       const atb_frame_view *whole)
{
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    for (size_t i = 0; i < len; i++) {
        size_t used;
        atb_frame_view v;
        int rc = atb_frame_decoder_next(&d, frame + i, 1, &used, &v);
        ck_assert_uint_eq(used, 1);
        if (i + 1 < len) {
            ck_assert_int_eq(rc, 0);
            continue;
        }
        ck_assert_int_eq(rc, 1);
        ck_assert_uint_eq(v.version, whole->version);
        ck_assert_uint_eq(v.frame_len, len);
        ck_assert_uint_eq(v.message_len, whole->message_len);
        ck_assert_mem_eq(v.message, whole->message, v.message_len);
    }
    atb_frame_decoder_fini(&d);
}

/* xcheck_decode_flipped feeds frame, with bit flipped, to a decoder one
 * byte at a time and returns the error it ends with. */
static int
xcheck_decode_flipped(const uint8_t *frame, size_t len, size_t bit)
{
    atb_frame_decoder d;
    atb_frame_decoder_init(&d, 0);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        uint8_t b = frame[i];
        if (i == bit / 8) {
            b ^= (uint8_t)(1u << bit % 8);
        }
        size_t used;
        atb_frame_view v;
        rc = atb_frame_decoder_next(&d, &b, 1, &used, &v);
    }
    atb_frame_decoder_fini(&d);
    return rc;
}

START_TEST(test_python_frame_decodes_in_c)
{
    unsigned i = (unsigned)_i;
    const char *body = xcheck_bodies[i % XCHECK_BODIES];
    char what[64];
    snprintf(what, sizeof(what), "python seed %u body %s", xcheck_seed(i),
             body);
    char frame_path[XCHECK_PATH_MAX];
    char desc_path[XCHECK_PATH_MAX];
    char seed[24];
    xcheck_file_path(frame_path, "py", i, "bin");
    xcheck_file_path(desc_path, "py", i, "txt");
    snprintf(seed, sizeof(seed), "%u", xcheck_seed(i));
    const char *gen[] = {"gen",   "--seed",   seed,         "--body",  body,
                         "--out", frame_path, "--describe", desc_path, NULL};
    xcheck_python_ok(NULL, i, gen);

    size_t len;
    size_t desc_len;
    uint8_t *frame = xcheck_read(frame_path, &len);
    uint8_t *desc = xcheck_read(desc_path, &desc_len);

    atb_frame_view v;
    ck_assert_int_eq(
        atb_frame_parse(frame, len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &v),
        ATBUS_OK);
    ck_assert_uint_eq(v.frame_len, len);
    ck_assert_uint_eq(v.version, ATBUS_PROTOCOL_VERSION);

    atb_pb_frame *m = NULL;
    ck_assert_int_eq(atb_frame_message_unpack(v.message, v.message_len, &m),
                     ATBUS_OK);
    struct xcheck_text t = {0};
    render_frame(&t, m);
    xcheck_same(t.buf, (const char *)desc, what);
    text_free(&t);
    atb_frame_message_free(m);

    xcheck_decode_bytewise(frame, len, &v);

    /* Flipping any one bit of the message must fail the hash. Cheap enough
     * to try them all; the inputs are fixed, so a 32-bit collision would
     * show up every run rather than as a flaky failure. */
    size_t first = (size_t)(v.message - frame) * 8;
    size_t last = first + v.message_len * 8;
    for (size_t bit = first; bit < last; bit++) {
        frame[bit / 8] ^= (uint8_t)(1u << bit % 8);
        atb_frame_view bad;
        int rc =
            atb_frame_parse(frame, len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &bad);
        ck_assert_msg(rc == ATBUS_EFRAME_HASH, "%s: bit %zu: %s", what, bit,
                      atbus_err_name(rc));
        frame[bit / 8] ^= (uint8_t)(1u << bit % 8);
    }
    uint64_t rng = xcheck_seed(i);
    size_t bit = first + rand_below(&rng, last - first);
    ck_assert_int_eq(xcheck_decode_flipped(frame, len, bit), ATBUS_EFRAME_HASH);

    atb_free(frame);
    atb_free(desc);
}
END_TEST

/* xcheck_c_frame encodes a random C frame for iteration i and checks that
 * C itself decodes it to the same description. */
static uint8_t *
xcheck_c_frame(unsigned i, size_t *len, struct xcheck_text *desc)
{
    const char *body = xcheck_bodies[i % XCHECK_BODIES];
    atb_pb_frame *m = xcheck_frame_new(xcheck_seed(i), body);
    render_frame(desc, m);

    size_t cap = atb_frame_encoded_size(m);
    uint8_t *frame = atb_malloc(cap);
    ck_assert_ptr_nonnull(frame);
    ck_assert_int_eq(atb_frame_encode(m, frame, cap, len), ATBUS_OK);
    ck_assert_uint_eq(*len, cap);
    xcheck_message_free(&m->base);

    atb_frame_view v;
    ck_assert_int_eq(
        atb_frame_parse(frame, *len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &v),
        ATBUS_OK);
    atb_pb_frame *back = NULL;
    ck_assert_int_eq(atb_frame_message_unpack(v.message, v.message_len, &back),
                     ATBUS_OK);
    struct xcheck_text t = {0};
    render_frame(&t, back);
    xcheck_same(t.buf, desc->buf, "C round trip");
    text_free(&t);
    atb_frame_message_free(back);
    return frame;
}

START_TEST(test_c_frame_decodes_in_python)
{
    unsigned i = (unsigned)_i;
    char what[64];
    snprintf(what, sizeof(what), "C seed %u body %s", xcheck_seed(i),
             xcheck_bodies[i % XCHECK_BODIES]);
    size_t len;
    struct xcheck_text desc = {0};
    uint8_t *frame = xcheck_c_frame(i, &len, &desc);

    char frame_path[XCHECK_PATH_MAX];
    char out_path[XCHECK_PATH_MAX];
    xcheck_file_path(frame_path, "c", i, "bin");
    xcheck_file_path(out_path, "c", i, "txt");
    xcheck_write(frame_path, frame, len);
    const char *args[] = {"describe", "--in", frame_path, NULL};
    xcheck_python_ok(out_path, i, args);

    size_t out_len;
    uint8_t *out = xcheck_read(out_path, &out_len);
    xcheck_same(desc.buf, (const char *)out, what);

    atb_free(out);
    atb_free(frame);
    text_free(&desc);
}
END_TEST

START_TEST(test_flipped_c_frame_fails_python_hash)
{
    unsigned i = (unsigned)_i;
    size_t len;
    struct xcheck_text desc = {0};
    uint8_t *frame = xcheck_c_frame(i, &len, &desc);
    text_free(&desc);

    atb_frame_view v;
    ck_assert_int_eq(
        atb_frame_parse(frame, len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &v),
        ATBUS_OK);
    size_t first = (size_t)(v.message - frame) * 8;
    uint64_t rng = xcheck_seed(i);
    size_t bit = first + rand_below(&rng, v.message_len * 8);
    frame[bit / 8] ^= (uint8_t)(1u << bit % 8);
    ck_assert_int_eq(
        atb_frame_parse(frame, len, ATB_FRAME_DEFAULT_MAX_MESSAGE, &v),
        ATBUS_EFRAME_HASH);

    char frame_path[XCHECK_PATH_MAX];
    char err_path[XCHECK_PATH_MAX];
    xcheck_file_path(frame_path, "flip", i, "bin");
    xcheck_file_path(err_path, "flip", i, "txt");
    xcheck_write(frame_path, frame, len);
    const char *args[] = {"describe", "--in", frame_path, NULL};
    int st = xcheck_python(NULL, err_path, args);
    size_t err_len;
    uint8_t *err = xcheck_read(err_path, &err_len);
    ck_assert_msg(st == XCHECK_EXIT_HASH, "bit %zu: exit %d, stderr: %s", bit,
                  st, (const char *)err);
    ck_assert_msg(strstr((const char *)err, "hash mismatch") != NULL,
                  "bit %zu: stderr: %s", bit, (const char *)err);

    atb_free(err);
    atb_free(frame);
}
END_TEST

static Suite *
crosscheck_suite(void)
{
    Suite *s = suite_create("crosscheck");
    TCase *tc = atb_test_case("crosscheck", 120);
    int n = (int)(XCHECK_SEEDS * XCHECK_BODIES);
    tcase_add_loop_test(tc, test_python_frame_decodes_in_c, 0, n);
    tcase_add_loop_test(tc, test_c_frame_decodes_in_python, 0, n);
    tcase_add_loop_test(tc, test_flipped_c_frame_fails_python_hash, 0,
                        (int)XCHECK_BODIES);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    /* Without the interpreter or its modules there is nothing to compare
     * against: that is a failure with a clear cause, never a pass. */
    const char *args[] = {"check", NULL};
    int st = xcheck_python(NULL, NULL, args);
    if (st == -1 || st == 127 || st == XCHECK_EXIT_NO_MODULE) {
        printf("crosscheck: FAILED, %s cannot run %s: install the Debian "
               "packages python3-protobuf and python3-xxhash\n",
               ATB_XCHECK_PYTHON, ATB_XCHECK_SCRIPT);
        return EXIT_FAILURE;
    }
    if (mkdtemp(xcheck_dir) == NULL) {
        perror("crosscheck: mkdtemp");
        return EXIT_FAILURE;
    }
    /* Removed here, after every forked test has ended, so files of failed
     * tests go too. */
    int rc = atb_test_run(crosscheck_suite());
    xcheck_dir_remove();
    return rc;
}
