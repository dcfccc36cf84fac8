/*
 * The direct-connect policy (see policy.h): rules copied into one block
 * each, first-match evaluation, and the small text form.
 */
#include "route/policy.h"

#include <atbus/error.h>

#include <string.h>

#include "common/alloc.h"
#include "route/registry.h"

/* A rule as stored: its conditions and their strings are one block. */
typedef struct policy_rule {
    atb_route_cond *conds;
    size_t count;
    enum atb_route_action action;
    int encrypt;
} policy_rule;

struct atb_route_policy {
    policy_rule *rules;
    size_t count;
    size_t cap;
    enum atb_route_action default_action;
    int default_encrypt;
    int notices;
};

int
atb_route_policy_new(atb_route_policy **out)
{
    atb_route_policy *p = atb_calloc(1, sizeof(*p));
    if (p == NULL) {
        return ATBUS_ENOMEM;
    }
    p->default_action = ATB_ROUTE_DIRECT;
    *out = p;
    return ATBUS_OK;
}

void
atb_route_policy_free(atb_route_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->count; i++) {
        atb_free(p->rules[i].conds);
    }
    atb_free(p->rules);
    atb_free(p);
}

static int
policy_action_ok(enum atb_route_action action)
{
    return action == ATB_ROUTE_DIRECT || action == ATB_ROUTE_VIA_RELAY ||
           action == ATB_ROUTE_DENY;
}

static int
policy_text_ok(const char *s, int may_be_empty)
{
    if (s == NULL) {
        return 0;
    }
    size_t n = strlen(s);
    return (n > 0 || may_be_empty) && n <= ATB_ROUTE_POLICY_MAX_TEXT;
}

static int
policy_has_value(enum atb_route_op op)
{
    return op == ATB_ROUTE_EQUALS || op == ATB_ROUTE_NOT_EQUALS;
}

static int
policy_cond_ok(const atb_route_cond *c)
{
    if (c->op < ATB_ROUTE_SAME || c->op > ATB_ROUTE_NOT_EQUALS ||
        !policy_text_ok(c->key, 0)) {
        return 0;
    }
    if (!policy_has_value(c->op)) {
        return 1;
    }
    return c->side >= ATB_ROUTE_SRC && c->side <= ATB_ROUTE_BOTH &&
           policy_text_ok(c->value, 1);
}

/* policy_copy_conds copies conds and their strings into one block. */
static atb_route_cond *
policy_copy_conds(const atb_route_cond *conds, size_t count)
{
    size_t bytes = count * sizeof(*conds);
    for (size_t i = 0; i < count; i++) {
        bytes += strlen(conds[i].key) + 1;
        if (policy_has_value(conds[i].op)) {
            bytes += strlen(conds[i].value) + 1;
        }
    }
    atb_route_cond *copy = atb_malloc(bytes);
    if (copy == NULL) {
        return NULL;
    }
    char *text = (char *)(copy + count);
    for (size_t i = 0; i < count; i++) {
        copy[i] = conds[i];
        size_t n = strlen(conds[i].key) + 1;
        copy[i].key = memcpy(text, conds[i].key, n);
        text += n;
        copy[i].value = NULL;
        if (policy_has_value(conds[i].op)) {
            n = strlen(conds[i].value) + 1;
            copy[i].value = memcpy(text, conds[i].value, n);
            text += n;
        }
    }
    return copy;
}

int
atb_route_policy_add(atb_route_policy *p, const atb_route_rule *rule)
{
    if (p == NULL || rule == NULL || !policy_action_ok(rule->action) ||
        rule->count > ATB_ROUTE_POLICY_MAX_CONDS ||
        (rule->count > 0 && rule->conds == NULL) ||
        p->count >= ATB_ROUTE_POLICY_MAX_RULES) {
        return ATBUS_EINVAL;
    }
    for (size_t i = 0; i < rule->count; i++) {
        if (!policy_cond_ok(&rule->conds[i])) {
            return ATBUS_EINVAL;
        }
    }
    if (p->count == p->cap) {
        size_t cap = p->cap == 0 ? 8 : p->cap * 2;
        policy_rule *rules = atb_realloc(p->rules, cap * sizeof(*rules));
        if (rules == NULL) {
            return ATBUS_ENOMEM;
        }
        p->rules = rules;
        p->cap = cap;
    }
    atb_route_cond *conds = NULL;
    if (rule->count > 0) {
        conds = policy_copy_conds(rule->conds, rule->count);
        if (conds == NULL) {
            return ATBUS_ENOMEM;
        }
    }
    p->rules[p->count] = (policy_rule){
        .conds = conds,
        .count = rule->count,
        .action = rule->action,
        .encrypt = rule->encrypt != 0,
    };
    p->count++;
    return ATBUS_OK;
}

int
atb_route_policy_set_default(atb_route_policy *p, enum atb_route_action action,
                             int encrypt)
{
    if (p == NULL || !policy_action_ok(action)) {
        return ATBUS_EINVAL;
    }
    p->default_action = action;
    p->default_encrypt = encrypt != 0;
    return ATBUS_OK;
}

void
atb_route_policy_set_notices(atb_route_policy *p, int allow)
{
    p->notices = allow != 0;
}

size_t
atb_route_policy_rules(const atb_route_policy *p)
{
    return p->count;
}

static const char *
policy_attr(const void *record, const char *key, atb_route_attr_cb attr,
            void *arg)
{
    if (record == NULL || attr == NULL) {
        return NULL;
    }
    return attr(record, key, arg);
}

static int
policy_equals(const void *record, const atb_route_cond *c,
              atb_route_attr_cb attr, void *arg)
{
    const char *v = policy_attr(record, c->key, attr, arg);
    return v != NULL && strcmp(v, c->value) == 0;
}

static int
policy_cond_holds(const atb_route_cond *c, const void *s, const void *d,
                  atb_route_attr_cb attr, void *arg)
{
    if (!policy_has_value(c->op)) {
        const char *a = policy_attr(s, c->key, attr, arg);
        const char *b = policy_attr(d, c->key, attr, arg);
        int same = a != NULL && b != NULL && strcmp(a, b) == 0;
        return c->op == ATB_ROUTE_SAME ? same : !same;
    }
    int holds = 0;
    switch (c->side) {
    case ATB_ROUTE_SRC:
        holds = policy_equals(s, c, attr, arg);
        break;
    case ATB_ROUTE_DST:
        holds = policy_equals(d, c, attr, arg);
        break;
    case ATB_ROUTE_EITHER:
        holds =
            policy_equals(s, c, attr, arg) || policy_equals(d, c, attr, arg);
        break;
    case ATB_ROUTE_BOTH:
        holds =
            policy_equals(s, c, attr, arg) && policy_equals(d, c, attr, arg);
        break;
    }
    return c->op == ATB_ROUTE_EQUALS ? holds : !holds;
}

void
atb_route_policy_decide(const atb_route_policy *p, const void *s, const void *d,
                        atb_route_attr_cb attr, void *arg,
                        atb_route_decision *out)
{
    *out = (atb_route_decision){ATB_ROUTE_DIRECT, 0, -1};
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->count; i++) {
        const policy_rule *r = &p->rules[i];
        size_t k = 0;
        while (k < r->count &&
               policy_cond_holds(&r->conds[k], s, d, attr, arg)) {
            k++;
        }
        if (k == r->count) {
            *out = (atb_route_decision){r->action, r->encrypt, (int)i};
            return;
        }
    }
    *out = (atb_route_decision){p->default_action, p->default_encrypt, -1};
}

int
atb_route_policy_notice(const atb_route_policy *p, const void *s, const void *d,
                        atb_route_attr_cb attr, void *arg)
{
    if (p == NULL || !p->notices) {
        return 0;
    }
    atb_route_decision dec;
    atb_route_policy_decide(p, s, d, attr, arg, &dec);
    return dec.action == ATB_ROUTE_DIRECT;
}

/* ---- text form ---- */

/* Longest line of the text form; tokens point into a copy of it. */
#define POLICY_LINE_MAX 4096
#define POLICY_TOKENS_MAX (4 * ATB_ROUTE_POLICY_MAX_CONDS + 4)

typedef struct policy_line {
    char buf[POLICY_LINE_MAX];
    char *tok[POLICY_TOKENS_MAX];
    size_t ntok;
    size_t pos; /* next token */
    int number;
} policy_line;

static int
policy_fail(atbus_route_error *err, const policy_line *l, const char *what,
            const char *token)
{
    atb_route_error_set(err, "line %d: %s%s%s%s", l->number, what,
                        token != NULL ? " '" : "", token != NULL ? token : "",
                        token != NULL ? "'" : "");
    return ATBUS_EINVAL;
}

static int
policy_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* policy_split copies one line (without comment) and cuts it into
 * whitespace-separated tokens. */
static int
policy_split(policy_line *l, const char *start, size_t len,
             atbus_route_error *err)
{
    const char *hash = memchr(start, '#', len);
    if (hash != NULL) {
        len = (size_t)(hash - start);
    }
    if (len >= POLICY_LINE_MAX) {
        return policy_fail(err, l, "line too long", NULL);
    }
    memcpy(l->buf, start, len);
    l->buf[len] = '\0';
    l->ntok = 0;
    l->pos = 0;
    char *c = l->buf;
    for (;;) {
        while (policy_is_space(*c)) {
            c++;
        }
        if (*c == '\0') {
            return ATBUS_OK;
        }
        if (l->ntok == POLICY_TOKENS_MAX) {
            return policy_fail(err, l, "too many words", NULL);
        }
        l->tok[l->ntok++] = c;
        while (*c != '\0' && !policy_is_space(*c)) {
            c++;
        }
        if (*c != '\0') {
            *c++ = '\0';
        }
    }
}

static const char *
policy_next(policy_line *l)
{
    return l->pos < l->ntok ? l->tok[l->pos++] : NULL;
}

static int
policy_parse_action(policy_line *l, enum atb_route_action *action, int *encrypt,
                    atbus_route_error *err)
{
    const char *t = policy_next(l);
    if (t == NULL || strcmp(t, "->") != 0) {
        return policy_fail(err, l, "expected '->' before", t);
    }
    t = policy_next(l);
    if (t == NULL) {
        return policy_fail(err, l, "missing action", NULL);
    }
    if (strcmp(t, "direct") == 0) {
        *action = ATB_ROUTE_DIRECT;
    } else if (strcmp(t, "relay") == 0) {
        *action = ATB_ROUTE_VIA_RELAY;
    } else if (strcmp(t, "deny") == 0) {
        *action = ATB_ROUTE_DENY;
    } else {
        return policy_fail(err, l, "unknown action", t);
    }
    *encrypt = 0;
    t = policy_next(l);
    if (t != NULL && strcmp(t, "encrypted") == 0) {
        *encrypt = 1;
        t = policy_next(l);
    }
    if (t != NULL) {
        return policy_fail(err, l, "unexpected", t);
    }
    return ATBUS_OK;
}

static int
policy_parse_side(const char *t, enum atb_route_side *side)
{
    static const struct {
        const char *word;
        enum atb_route_side side;
    } sides[] = {
        {"src", ATB_ROUTE_SRC},
        {"dst", ATB_ROUTE_DST},
        {"either", ATB_ROUTE_EITHER},
        {"both", ATB_ROUTE_BOTH},
    };
    for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
        if (strcmp(t, sides[i].word) == 0) {
            *side = sides[i].side;
            return 1;
        }
    }
    return 0;
}

/* policy_parse_cond reads one condition; KEY=VALUE is cut in place. */
static int
policy_parse_cond(policy_line *l, atb_route_cond *c, atbus_route_error *err)
{
    const char *word = policy_next(l);
    if (word == NULL) {
        return policy_fail(err, l, "missing condition", NULL);
    }
    if (strcmp(word, "->") == 0 || strcmp(word, "and") == 0) {
        return policy_fail(err, l, "missing condition before", word);
    }
    char *arg = l->pos < l->ntok ? l->tok[l->pos++] : NULL;
    if (arg == NULL || strcmp(arg, "->") == 0 || strcmp(arg, "and") == 0) {
        return policy_fail(err, l, "missing key after", word);
    }
    memset(c, 0, sizeof(*c));
    c->key = arg;
    if (strcmp(word, "same") == 0 || strcmp(word, "different") == 0) {
        c->op = word[0] == 's' ? ATB_ROUTE_SAME : ATB_ROUTE_DIFFERENT;
        return ATBUS_OK;
    }
    if (!policy_parse_side(word, &c->side)) {
        return policy_fail(err, l, "unknown condition", word);
    }
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || (eq == arg + 1 && arg[0] == '!')) {
        return policy_fail(err, l, "expected KEY=VALUE or KEY!=VALUE, got",
                           arg);
    }
    c->op = ATB_ROUTE_EQUALS;
    c->value = eq + 1;
    if (eq[-1] == '!') {
        c->op = ATB_ROUTE_NOT_EQUALS;
        eq--;
    }
    *eq = '\0';
    return ATBUS_OK;
}

static int
policy_parse_rule(atb_route_policy *p, policy_line *l, atbus_route_error *err)
{
    atb_route_cond conds[ATB_ROUTE_POLICY_MAX_CONDS];
    atb_route_rule rule = {.conds = conds};
    if (strcmp(l->tok[0], "any") == 0) {
        l->pos = 1;
    } else {
        for (;;) {
            if (rule.count == ATB_ROUTE_POLICY_MAX_CONDS) {
                return policy_fail(err, l, "too many conditions", NULL);
            }
            int rc = policy_parse_cond(l, &conds[rule.count], err);
            if (rc != ATBUS_OK) {
                return rc;
            }
            rule.count++;
            if (l->pos == l->ntok || strcmp(l->tok[l->pos], "and") != 0) {
                break;
            }
            l->pos++;
        }
    }
    int rc = policy_parse_action(l, &rule.action, &rule.encrypt, err);
    if (rc != ATBUS_OK) {
        return rc;
    }
    rc = atb_route_policy_add(p, &rule);
    if (rc == ATBUS_EINVAL) {
        return policy_fail(err, l, "too many rules, or a key or value too long",
                           NULL);
    }
    return rc;
}

static int
policy_parse_line(atb_route_policy *p, policy_line *l, atbus_route_error *err)
{
    if (l->ntok == 0) {
        return ATBUS_OK;
    }
    if (strcmp(l->tok[0], "default") == 0) {
        l->pos = 1;
        return policy_parse_action(l, &p->default_action, &p->default_encrypt,
                                   err);
    }
    if (strcmp(l->tok[0], "direct-notices") == 0) {
        if (l->ntok == 2 && strcmp(l->tok[1], "on") == 0) {
            p->notices = 1;
            return ATBUS_OK;
        }
        if (l->ntok == 2 && strcmp(l->tok[1], "off") == 0) {
            p->notices = 0;
            return ATBUS_OK;
        }
        return policy_fail(err, l, "expected 'direct-notices on' or 'off'",
                           NULL);
    }
    return policy_parse_rule(p, l, err);
}

int
atb_route_policy_parse(const char *text, atb_route_policy **out,
                       atbus_route_error *err)
{
    if (err != NULL) {
        err->text[0] = '\0';
    }
    if (text == NULL || out == NULL) {
        atb_route_error_set(err, "NULL argument");
        return ATBUS_EINVAL;
    }
    atb_route_policy *p;
    if (atb_route_policy_new(&p) != ATBUS_OK) {
        atb_route_error_set(err, "out of memory");
        return ATBUS_ENOMEM;
    }
    policy_line *l = atb_malloc(sizeof(*l));
    if (l == NULL) {
        atb_route_policy_free(p);
        atb_route_error_set(err, "out of memory");
        return ATBUS_ENOMEM;
    }
    int rc = ATBUS_OK;
    l->number = 0;
    const char *start = text;
    while (rc == ATBUS_OK && *start != '\0') {
        const char *end = strchr(start, '\n');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
        l->number++;
        rc = policy_split(l, start, len, err);
        if (rc == ATBUS_OK) {
            rc = policy_parse_line(p, l, err);
        }
        start = end != NULL ? end + 1 : start + len;
    }
    atb_free(l);
    if (rc != ATBUS_OK) {
        if (rc == ATBUS_ENOMEM) {
            atb_route_error_set(err, "out of memory");
        }
        atb_route_policy_free(p);
        return rc;
    }
    *out = p;
    return ATBUS_OK;
}
