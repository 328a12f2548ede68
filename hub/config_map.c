/* hub/config_map.c — typed configuration values from text, driven by key
 * tables (see hub/config_map.h). Messages name the key and the limit, never
 * the position: the loader adds FILE:LINE:COL. */
#include "hub/config_map.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit duration_units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xc2\xb5s", 1000ULL}, /* µs */
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60ULL * 1000000000ULL},
    {"h", 3600ULL * 1000000000ULL},
    {NULL, 0},
};

static const struct unit size_units[] = {
    {"B", 1ULL},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"KB", 1000ULL},
    {"kB", 1000ULL},
    {"MB", 1000ULL * 1000ULL},
    {"GB", 1000ULL * 1000ULL * 1000ULL},
    {"TB", 1000ULL * 1000ULL * 1000ULL * 1000ULL},
    {NULL, 0},
};

enum { SCALED_OK = 0, SCALED_SYNTAX = -1, SCALED_OVERFLOW = -2, SCALED_NEGATIVE = -3 };

/* Parse "<digits>[.<digits>][ ]<unit>" into the value times the unit's
 * multiplier, rounded down, at most max. A missing unit means a multiplier of
 * 1 when !unit_required. Integer arithmetic only (32-bit boards have no
 * 128-bit integers and long double may be double). Returns SCALED_*. */
static int parse_scaled(const char *s, const struct unit *units, bool unit_required, uint64_t max,
                        uint64_t *out)
{
    const char *p = s;
    uint64_t whole = 0, frac = 0, p10 = 1;
    bool overflow = false;

    if (*p == '-')
        return SCALED_NEGATIVE;
    if (!isdigit((unsigned char)*p))
        return SCALED_SYNTAX;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (whole > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            whole = whole * 10 + d;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return SCALED_SYNTAX;
        for (; isdigit((unsigned char)*p); p++) {
            if (p10 < 1000000000ULL) { /* nine digits are enough; the rest is dropped */
                frac = frac * 10 + (uint64_t)(*p - '0');
                p10 *= 10;
            }
        }
    }
    while (*p == ' ')
        p++;

    uint64_t mult = 0;
    if (*p == '\0') {
        if (unit_required)
            return SCALED_SYNTAX;
        mult = 1;
    } else {
        for (const struct unit *u = units; u->name; u++) {
            if (strcmp(p, u->name) == 0) {
                mult = u->mult;
                break;
            }
        }
        if (mult == 0)
            return SCALED_SYNTAX;
    }
    if (overflow || whole > max / mult)
        return SCALED_OVERFLOW;
    /* frac / p10 * mult, exactly floored: frac < p10 <= 1e9 and mult % p10 < 1e9. */
    uint64_t v = whole * mult;
    uint64_t part = frac * (mult / p10) + frac * (mult % p10) / p10;
    if (part > max - v)
        return SCALED_OVERFLOW;
    *out = v + part;
    return SCALED_OK;
}

int hub_cfg_parse_duration(const char *s, int64_t *ns)
{
    uint64_t v;
    if (!s || parse_scaled(s, duration_units, true, (uint64_t)INT64_MAX, &v) != SCALED_OK)
        return -1;
    *ns = (int64_t)v;
    return 0;
}

int hub_cfg_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t v;
    if (!s || parse_scaled(s, size_units, false, UINT64_MAX, &v) != SCALED_OK)
        return -1;
    *bytes = v;
    return 0;
}

/* "1ms", "90s", "1500ns": the largest unit that divides ns exactly. */
static void format_duration(int64_t ns, char *out, size_t n)
{
    static const struct unit shown[] = {
        {"h", 3600ULL * 1000000000ULL},
        {"m", 60ULL * 1000000000ULL},
        {"s", 1000000000ULL},
        {"ms", 1000000ULL},
        {"us", 1000ULL},
        {NULL, 0},
    };
    for (const struct unit *u = shown; u->name; u++) {
        if (ns != 0 && ns % (int64_t)u->mult == 0) {
            snprintf(out, n, "%" PRId64 "%s", ns / (int64_t)u->mult, u->name);
            return;
        }
    }
    snprintf(out, n, "%" PRId64 "ns", ns);
}

static void format_size(uint64_t b, char *out, size_t n)
{
    static const struct unit shown[] = {
        {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}, {NULL, 0}};
    for (const struct unit *u = shown; u->name; u++) {
        if (b != 0 && b % u->mult == 0) {
            snprintf(out, n, "%" PRIu64 "%s", b / u->mult, u->name);
            return;
        }
    }
    snprintf(out, n, "%" PRIu64 " bytes", b);
}

const struct hub_cfg_key *hub_cfg_find(const struct hub_cfg_key *table, const char *name)
{
    if (!table || !name)
        return NULL;
    for (const struct hub_cfg_key *k = table; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

int hub_cfg_defaults(const struct hub_cfg_key *table, void *base)
{
    char err[256];
    for (const struct hub_cfg_key *k = table; k && k->name; k++) {
        if (k->type == HUB_CFG_OBJECT && k->child)
            hub_cfg_defaults(k->child, (char *)base + k->offset);
        else if (k->def && k->type != HUB_CFG_TAGS && k->type != HUB_CFG_LIST &&
                 k->type != HUB_CFG_SECTION)
            (void)hub_cfg_set(k, base, k->def, err, sizeof(err)); /* tables are tested */
    }
    return 0;
}

/* Lower bound applies when either bound is set; upper bound when max >= min
 * (so {min 1, max 0} means "at least 1"). */
static bool below(const struct hub_cfg_key *k, int64_t v)
{
    return (k->min || k->max) && v < k->min;
}

static bool above(const struct hub_cfg_key *k, int64_t v)
{
    return (k->min || k->max) && k->max >= k->min && v > k->max;
}

static int set_int(const struct hub_cfg_key *k, int64_t *dst, const char *text, char *err,
                   size_t errlen)
{
    const char *p = text;
    char *end = NULL;
    int base = 10;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    bool digits = *p != '\0';
    for (const char *q = p; *q; q++)
        if (base == 16 ? !isxdigit((unsigned char)*q) : !isdigit((unsigned char)*q))
            digits = false;
    if (!digits) {
        snprintf(err, errlen, "bad integer \"%s\" for %s", text, k->name);
        return -1;
    }
    errno = 0;
    unsigned long long u = strtoull(p, &end, base);
    if (*end != '\0') {
        snprintf(err, errlen, "bad integer \"%s\" for %s", text, k->name);
        return -1;
    }
    if (errno == ERANGE || (!neg && u > (unsigned long long)INT64_MAX) ||
        (neg && u > (unsigned long long)INT64_MAX + 1ULL)) {
        snprintf(err, errlen, "integer \"%s\" for %s is too large", text, k->name);
        return -1;
    }
    int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
    if (below(k, v) || above(k, v)) {
        if (k->max >= k->min)
            snprintf(err, errlen, "%s %s is out of range (%" PRId64 "..%" PRId64 ")", k->name, text,
                     k->min, k->max);
        else
            snprintf(err, errlen, "%s %s is out of range (at least %" PRId64 ")", k->name, text,
                     k->min);
        return -1;
    }
    *dst = v;
    return 0;
}

static int set_duration(const struct hub_cfg_key *k, int64_t *dst, const char *text, char *err,
                        size_t errlen)
{
    uint64_t v = 0;
    char lim[32];
    switch (parse_scaled(text, duration_units, true, (uint64_t)INT64_MAX, &v)) {
    case SCALED_OK:
        break;
    case SCALED_NEGATIVE:
        snprintf(err, errlen, "bad duration \"%s\" for %s: durations cannot be negative", text,
                 k->name);
        return -1;
    case SCALED_OVERFLOW:
        snprintf(err, errlen, "duration \"%s\" for %s is too large", text, k->name);
        return -1;
    default:
        snprintf(err, errlen,
                 "bad duration \"%s\" for %s: use a number and a unit, e.g. 250ms, 10s, 5m", text,
                 k->name);
        return -1;
    }
    int64_t ns = (int64_t)v;
    if (k->min > 0 && ns < k->min && !(k->zero_ok && ns == 0)) {
        format_duration(k->min, lim, sizeof(lim));
        snprintf(err, errlen, "%s %s is too short (at least %s)", k->name, text, lim);
        return -1;
    }
    if (k->max > 0 && ns > k->max) {
        format_duration(k->max, lim, sizeof(lim));
        snprintf(err, errlen, "%s %s is too long (at most %s)", k->name, text, lim);
        return -1;
    }
    *dst = ns;
    return 0;
}

static int set_size(const struct hub_cfg_key *k, uint64_t *dst, const char *text, char *err,
                    size_t errlen)
{
    uint64_t v = 0;
    char lim[32];
    switch (parse_scaled(text, size_units, false, UINT64_MAX, &v)) {
    case SCALED_OK:
        break;
    case SCALED_NEGATIVE:
        snprintf(err, errlen, "bad size \"%s\" for %s: sizes cannot be negative", text, k->name);
        return -1;
    case SCALED_OVERFLOW:
        snprintf(err, errlen, "size \"%s\" for %s is too large", text, k->name);
        return -1;
    default:
        snprintf(err, errlen,
                 "bad size \"%s\" for %s: use a number and a unit, e.g. 4096, 512KiB, 64MiB, 1GiB",
                 text, k->name);
        return -1;
    }
    /* min/max (bytes) are honoured for sizes too, when set. */
    if (k->min > 0 && v < (uint64_t)k->min) {
        format_size((uint64_t)k->min, lim, sizeof(lim));
        snprintf(err, errlen, "%s %s is too small (at least %s)", k->name, text, lim);
        return -1;
    }
    if (k->max > 0 && v > (uint64_t)k->max) {
        format_size((uint64_t)k->max, lim, sizeof(lim));
        snprintf(err, errlen, "%s %s is too large (at most %s)", k->name, text, lim);
        return -1;
    }
    *dst = v;
    return 0;
}

static int set_enum(const struct hub_cfg_key *k, int *dst, const char *text, char *err,
                    size_t errlen)
{
    if (k->choices) {
        for (int i = 0; k->choices[i]; i++) {
            if (strcasecmp(text, k->choices[i]) == 0) {
                *dst = i;
                return 0;
            }
        }
    }
    size_t off =
        (size_t)snprintf(err, errlen, "bad value \"%s\" for %s: use one of ", text, k->name);
    for (int i = 0; k->choices && k->choices[i] && off < errlen; i++)
        off += (size_t)snprintf(err + off, errlen - off, "%s%s", i ? ", " : "", k->choices[i]);
    return -1;
}

static int set_bool(const struct hub_cfg_key *k, bool *dst, const char *text, char *err,
                    size_t errlen)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *dst = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *dst = false;
            return 0;
        }
    }
    snprintf(err, errlen, "bad boolean \"%s\" for %s: use true or false", text, k->name);
    return -1;
}

int hub_cfg_set(const struct hub_cfg_key *k, void *base, const char *text, char *err, size_t errlen)
{
    char *at = (char *)base + k->offset;
    char *end = NULL;

    if (errlen > 0)
        err[0] = '\0';
    switch (k->type) {
    case HUB_CFG_STRING: {
        size_t n = strlen(text);
        if (k->size == 0 || n >= k->size) {
            snprintf(err, errlen, "%s is too long (%zu bytes; at most %zu)", k->name, n,
                     k->size ? k->size - 1 : 0);
            return -1;
        }
        if (k->validate) {
            char why[200];
            if (k->validate(text, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "%s %s", k->name, why);
                return -1;
            }
        }
        memcpy(at, text, n + 1);
        return 0;
    }
    case HUB_CFG_INT: {
        int64_t v;
        if (set_int(k, &v, text, err, errlen) != 0)
            return -1;
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end != '\0' || isspace((unsigned char)text[0])) {
            snprintf(err, errlen, "bad number \"%s\" for %s", text, k->name);
            return -1;
        }
        if (!isfinite(v) || errno == ERANGE) {
            snprintf(err, errlen, "%s must be a finite number, not \"%s\"", k->name, text);
            return -1;
        }
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_BOOL: {
        bool v;
        if (set_bool(k, &v, text, err, errlen) != 0)
            return -1;
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_DURATION: {
        int64_t v;
        if (set_duration(k, &v, text, err, errlen) != 0)
            return -1;
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_SIZE: {
        uint64_t v;
        if (set_size(k, &v, text, err, errlen) != 0)
            return -1;
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_ENUM: {
        int v;
        if (set_enum(k, &v, text, err, errlen) != 0)
            return -1;
        memcpy(at, &v, sizeof(v));
        return 0;
    }
    case HUB_CFG_TAGS:
        snprintf(err, errlen, "%s takes a mapping of names to values, not \"%s\"", k->name, text);
        return -1;
    case HUB_CFG_LIST:
    case HUB_CFG_SECTION:
        snprintf(err, errlen, "%s takes a list, not \"%s\"", k->name, text);
        return -1;
    case HUB_CFG_OBJECT:
        snprintf(err, errlen, "%s takes a mapping, not \"%s\"", k->name, text);
        return -1;
    }
    snprintf(err, errlen, "%s has an unknown type in its key table", k->name);
    return -1;
}

int hub_cfg_tags_add(struct hub_cfg_tags *t, const char *key, const char *value, char *err,
                     size_t errlen)
{
    size_t kn = strlen(key), vn = strlen(value);
    if (kn == 0) {
        snprintf(err, errlen, "empty tag name");
        return -1;
    }
    if (kn >= HUB_CFG_TAG_KEY_MAX) {
        snprintf(err, errlen, "tag name \"%.20s...\" is too long (%zu bytes; at most %d)", key, kn,
                 HUB_CFG_TAG_KEY_MAX - 1);
        return -1;
    }
    if (vn == 0) {
        snprintf(err, errlen, "empty value for tag \"%s\"", key);
        return -1;
    }
    if (vn >= HUB_CFG_TAG_VALUE_MAX) {
        snprintf(err, errlen, "value of tag \"%s\" is too long (%zu bytes; at most %d)", key, vn,
                 HUB_CFG_TAG_VALUE_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->tag[i].key, key) == 0) {
            snprintf(err, errlen, "duplicate tag \"%s\"", key);
            return -1;
        }
    }
    if (t->n >= HUB_CFG_TAGS_MAX) {
        snprintf(err, errlen, "too many tags (at most %d)", HUB_CFG_TAGS_MAX);
        return -1;
    }
    struct hub_cfg_tag *grown = realloc(t->tag, (t->n + 1) * sizeof(*grown));
    if (!grown) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->tag = grown;
    memcpy(t->tag[t->n].key, key, kn + 1);
    memcpy(t->tag[t->n].value, value, vn + 1);
    t->n++;
    return 0;
}

void hub_cfg_tags_free(struct hub_cfg_tags *t)
{
    free(t->tag);
    t->tag = NULL;
    t->n = 0;
}

void hub_cfg_free(const struct hub_cfg_key *table, void *base)
{
    for (const struct hub_cfg_key *k = table; base && k && k->name; k++) {
        if (k->type == HUB_CFG_TAGS) {
            hub_cfg_tags_free((struct hub_cfg_tags *)((char *)base + k->offset));
        } else if (k->type == HUB_CFG_OBJECT && k->child) {
            hub_cfg_free(k->child, (char *)base + k->offset);
        } else if (k->type == HUB_CFG_LIST) {
            struct hub_cfg_list *l = (struct hub_cfg_list *)((char *)base + k->offset);
            for (size_t i = 0; k->child && i < l->n; i++)
                hub_cfg_free(k->child, (char *)l->items + i * k->elem_size);
            free(l->items);
            l->items = NULL;
            l->n = 0;
        }
    }
}

static int tags_equal(const struct hub_cfg_tags *a, const struct hub_cfg_tags *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->tag[i].key, b->tag[i].key) != 0 ||
            strcmp(a->tag[i].value, b->tag[i].value) != 0)
            return 0;
    return 1;
}

int hub_cfg_equal(const struct hub_cfg_key *table, const void *a, const void *b)
{
    for (const struct hub_cfg_key *k = table; k && k->name; k++) {
        const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
        int same = 1;
        switch (k->type) {
        case HUB_CFG_STRING:
            same = strncmp(x, y, k->size) == 0;
            break;
        case HUB_CFG_INT:
        case HUB_CFG_DURATION:
            same = *(const int64_t *)x == *(const int64_t *)y;
            break;
        case HUB_CFG_SIZE:
            same = *(const uint64_t *)x == *(const uint64_t *)y;
            break;
        case HUB_CFG_DOUBLE:
            same = memcmp(x, y, sizeof(double)) == 0;
            break;
        case HUB_CFG_BOOL:
            same = *(const bool *)x == *(const bool *)y;
            break;
        case HUB_CFG_ENUM:
            same = *(const int *)x == *(const int *)y;
            break;
        case HUB_CFG_TAGS:
            same = tags_equal((const struct hub_cfg_tags *)x, (const struct hub_cfg_tags *)y);
            break;
        case HUB_CFG_OBJECT:
            same = !k->child || hub_cfg_equal(k->child, x, y);
            break;
        case HUB_CFG_LIST: {
            const struct hub_cfg_list *l = (const void *)x, *m = (const void *)y;
            same = l->n == m->n;
            for (size_t i = 0; same && k->child && i < l->n; i++)
                same = hub_cfg_equal(k->child, (const char *)l->items + i * k->elem_size,
                                     (const char *)m->items + i * k->elem_size);
            break;
        }
        case HUB_CFG_SECTION:
            break;
        }
        if (!same)
            return 0;
    }
    return 1;
}

const char *hub_cfg_expected(const struct hub_cfg_key *k)
{
    switch (k->type) {
    case HUB_CFG_STRING:
        return "a string";
    case HUB_CFG_INT:
        return "an integer";
    case HUB_CFG_DOUBLE:
        return "a number";
    case HUB_CFG_BOOL:
        return "true or false";
    case HUB_CFG_DURATION:
        return "a duration";
    case HUB_CFG_SIZE:
        return "a size";
    case HUB_CFG_ENUM:
        return "a value";
    case HUB_CFG_TAGS:
        return "a mapping";
    case HUB_CFG_LIST:
    case HUB_CFG_SECTION:
        return "a list";
    case HUB_CFG_OBJECT:
        return "a mapping";
    }
    return "a value";
}
