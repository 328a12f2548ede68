/* firmware/config.c — the YAML configuration (v1): libyaml builds a node
 * tree, this file walks it against the key tables of the hub and of each
 * driver and reports every problem as "FILE:LINE:COL: message".
 *
 * The walk visits hub, buses, devices and outputs in that order whatever
 * their order in the file (a device names a bus defined anywhere). Values go
 * through hub_cfg_set, which knows the types; this file knows the structure:
 * which sections exist, which keys hold lists, and the checks that span keys
 * (bus references, duplicate names, limits). */
#include "firmware/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hub/journal.h"
#include "hub/log.h"
#include "hub/reading.h"

#define CH_MAX_NODES 100000 /* nodes visited, aliases counted each time: alias bombs */
#define CH_MAX_ERRORS 100   /* then one more line, and the walk stops */
#define CH_MAX_FILE (1024 * 1024)
#define CH_MAX_SECTION_KEYS 96 /* keys of the tables walked together */
#define CH_MSG_MAX 1024

/* ---- key tables of the hub ---------------------------------------------- */

static const char *const ch_log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const ch_on_full[] = {"drop_oldest", "drop_newest", NULL};

/* The choices above are indexes into these enums. */
_Static_assert(HUB_LOG_ERROR == 0 && HUB_LOG_WARN == 1 && HUB_LOG_INFO == 2 && HUB_LOG_DEBUG == 3,
               "ch_log_levels follows enum hub_log_level");
_Static_assert(HUB_JOURNAL_DROP_OLDEST == 0 && HUB_JOURNAL_DROP_NEWEST == 1,
               "ch_on_full follows enum hub_journal_on_full");

#define NS_MS 1000000LL
#define NS_S 1000000000LL

/* Top level. Every section is a LIST here: the loader walks it itself. */
const struct hub_cfg_key ch_top_keys[] = {
    {.name = "hub",
     .type = HUB_CFG_LIST,
     .required = true,
     .help = "the gateway itself: name, tags, journal, logging"},
    {.name = "buses", .type = HUB_CFG_LIST, .help = "list of Modbus buses (tcp or rtu)"},
    {.name = "devices", .type = HUB_CFG_LIST, .help = "list of Modbus devices to poll"},
    {.name = "outputs",
     .type = HUB_CFG_LIST,
     .help = "list of outputs the readings are forwarded to"},
    {.name = "mqtt_inputs", .type = HUB_CFG_LIST, .help = "not supported by this build yet"},
    {.name = NULL},
};

const struct hub_cfg_key ch_hub_keys[] = {
    {.name = "name",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct ch_hub_cfg, name),
     .size = sizeof(((struct ch_hub_cfg *)0)->name),
     .help = "name of this gateway; every reading gets it as tag \"gateway\""},
    {.name = "tags",
     .type = HUB_CFG_TAGS,
     .offset = offsetof(struct ch_hub_cfg, tags),
     .help = "tags added to every reading, e.g. {district: dong-hoi, site: crossing-4}"},
    {.name = "journal",
     .type = HUB_CFG_LIST,
     .help = "mapping: where and how readings are kept until every output has them"},
    {.name = "status", .type = HUB_CFG_LIST, .help = "not supported by this build yet"},
    {.name = "log_level",
     .type = HUB_CFG_ENUM,
     .def = "info",
     .offset = offsetof(struct ch_hub_cfg, log_level),
     .choices = ch_log_levels,
     .help = "least severe messages logged: error, warn, info or debug"},
    {.name = "status_interval",
     .type = HUB_CFG_DURATION,
     .def = "60s",
     .offset = offsetof(struct ch_hub_cfg, status_interval_ns),
     .min = NS_S,
     .help = "how often the hub writes its own and each device's status points"},
    {.name = NULL},
};

const struct hub_cfg_key ch_journal_keys[] = {
    {.name = "path",
     .type = HUB_CFG_STRING,
     .def = "/var/lib/cityhub/journal",
     .offset = offsetof(struct ch_journal_cfg, path),
     .size = sizeof(((struct ch_journal_cfg *)0)->path),
     .help = "directory of the journal's segment files (on the board's flash)"},
    {.name = "max_size",
     .type = HUB_CFG_SIZE,
     .def = "256MiB",
     .offset = offsetof(struct ch_journal_cfg, max_size),
     .min = 1LL << 20,
     .help = "most disk space the journal uses; then on_full decides"},
    {.name = "segment_size",
     .type = HUB_CFG_SIZE,
     .def = "8MiB",
     .offset = offsetof(struct ch_journal_cfg, segment_size),
     .min = 64LL << 10,
     .help = "size of one segment file; space is freed a segment at a time"},
    {.name = "sync_interval",
     .type = HUB_CFG_DURATION,
     .def = "100ms",
     .offset = offsetof(struct ch_journal_cfg, sync_interval_ns),
     .min = NS_MS,
     .help = "how often the journal is synced to flash: at most this much is lost on a power cut"},
    {.name = "on_full",
     .type = HUB_CFG_ENUM,
     .def = "drop_oldest",
     .offset = offsetof(struct ch_journal_cfg, on_full),
     .choices = ch_on_full,
     .help = "when the journal is full: drop_oldest or drop_newest readings (counted)"},
    {.name = NULL},
};

/* Keys every output has (struct drv_output_common). A driver's own table is
 * looked up first, so a driver may redefine any of them. */
static const struct hub_cfg_key ch_output_common_keys[] = {
    {.name = "name",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct drv_output_common, name),
     .size = DRV_NAME_MAX,
     .help = "name of this output (its cursor and its log lines carry it)"},
    {.name = "type",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct drv_output_common, type),
     .size = sizeof(((struct drv_output_common *)0)->type),
     .help = "output driver, e.g. influxdb"},
    {.name = "batch_size",
     .type = HUB_CFG_INT,
     .def = "5000",
     .offset = offsetof(struct drv_output_common, batch_size),
     .min = 1,
     .max = 100000,
     .help = "most readings sent in one request"},
    {.name = "flush_interval",
     .type = HUB_CFG_DURATION,
     .def = "1s",
     .offset = offsetof(struct drv_output_common, flush_interval_ns),
     .min = NS_MS,
     .help = "longest a reading waits for its batch to fill"},
    {.name = NULL},
};

/* ---- the walk ------------------------------------------------------------ */

/* One error, kept until the walk ends so that they can be printed in file
 * order (the walk visits hub, buses, devices, outputs in that order). */
struct ch_err {
    size_t line, col; /* 0-based */
    unsigned seq;
    bool last; /* "too many errors": always printed last */
    char msg[CH_MSG_MAX];
};

/* The names of one kind (buses, devices, outputs) taken so far, with the
 * line of each, so that a duplicate can say where the first one was. The
 * names point into the config being built. */
struct name_set {
    const char *name[CH_MAX_DEVICES];
    size_t line[CH_MAX_DEVICES];
    size_t n;
};

struct loader {
    const char *name; /* file name in messages */
    const char *text;
    size_t len;
    FILE *errs;
    unsigned nerr;
    bool stop; /* too many nodes or errors: walk no further */
    size_t nodes;
    yaml_document_t *doc;
    struct ch_config *cfg;
    struct name_set buses, devices, outputs; /* names taken so far, for duplicates */
    size_t bus_devices[CH_MAX_BUSES];
    struct ch_err *errv; /* CH_MAX_ERRORS + 1 */
};

/* Record "FILE:LINE:COL: message" (line, col 0-based as libyaml gives them),
 * with control characters of quoted user text replaced so that every error
 * stays one line. Printed by flush_errors. */
static void report_at(struct loader *L, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report_at(struct loader *L, size_t line, size_t col, const char *fmt, ...)
{
    va_list ap;

    if (L->nerr >= CH_MAX_ERRORS + 1)
        return;
    struct ch_err *e = &L->errv[L->nerr];
    e->line = line;
    e->col = col;
    e->seq = L->nerr;
    e->last = false;
    L->nerr++;
    if (L->nerr > CH_MAX_ERRORS) {
        L->stop = true;
        e->last = true;
        snprintf(e->msg, sizeof(e->msg), "too many errors; stopping after %d", CH_MAX_ERRORS);
    } else {
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    for (char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static int err_cmp(const void *a, const void *b)
{
    const struct ch_err *x = a, *y = b;
    if (x->last != y->last)
        return x->last ? 1 : -1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_errors(struct loader *L)
{
    qsort(L->errv, L->nerr, sizeof(L->errv[0]), err_cmp);
    for (unsigned i = 0; L->errs && i < L->nerr; i++)
        fprintf(L->errs, "%s:%zu:%zu: %s\n", L->name, L->errv[i].line + 1, L->errv[i].col + 1,
                L->errv[i].msg);
}

#define report(L, n, ...) report_at((L), (n)->start_mark.line, (n)->start_mark.column, __VA_ARGS__)

/* The node at idx, counted against CH_MAX_NODES; NULL once the walk stops. */
static yaml_node_t *get(struct loader *L, int idx)
{
    if (L->stop)
        return NULL;
    yaml_node_t *n = yaml_document_get_node(L->doc, idx);
    if (!n)
        return NULL;
    if (++L->nodes > CH_MAX_NODES) {
        report(L, n, "more than %d YAML nodes to read (is an alias repeated too often?)",
               CH_MAX_NODES);
        L->stop = true;
        return NULL;
    }
    return n;
}

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar that YAML reads as null: `key:`, `key: ~`, `key: null`. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = text_of(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* "a mapping", "a list", "nothing", "\"text\"" — what the user wrote. */
static const char *got(const yaml_node_t *n, char *buf, size_t len)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        if (is_null(n))
            return "nothing";
        snprintf(buf, len, "\"%.40s%s\"", text_of(n), n->data.scalar.length > 40 ? "..." : "");
        return buf;
    default:
        return "nothing";
    }
}

static const char *expected(const struct hub_cfg_key *k)
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
        return "a list";
    }
    return "a value";
}

/* Levenshtein distance of two short strings (longer ones: "far"). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* One mapping walked against up to two key tables (a driver's and the common
 * one), plus key names the caller handles itself (`own`). */
struct section {
    const struct hub_cfg_key *tables[2];
    size_t ntables;
    void *base;
    const char *where; /* "in devices[2]", "at the top level" */
    const char *const *own;
    /* Called for own keys and LIST keys. */
    void (*special)(struct loader *L, struct section *s, const char *key, yaml_node_t *knode,
                    yaml_node_t *val);
    void *ctx;
    yaml_node_t *seen_key[CH_MAX_SECTION_KEYS];
    yaml_node_t *seen_val[CH_MAX_SECTION_KEYS];
};

/* Flat index of name over the section's tables, or -1. */
static int key_index(const struct section *s, const char *name)
{
    int base = 0;
    for (size_t t = 0; t < s->ntables; t++) {
        const struct hub_cfg_key *tab = s->tables[t];
        for (int i = 0; tab && tab[i].name; i++)
            if (strcmp(tab[i].name, name) == 0)
                return base + i < CH_MAX_SECTION_KEYS ? base + i : -1;
        for (int i = 0; tab && tab[i].name; i++)
            base++;
    }
    return -1;
}

static const struct hub_cfg_key *key_at(const struct section *s, int idx)
{
    int base = 0;
    for (size_t t = 0; t < s->ntables; t++) {
        int n = 0;
        while (s->tables[t] && s->tables[t][n].name)
            n++;
        if (idx < base + n)
            return &s->tables[t][idx - base];
        base += n;
    }
    return NULL;
}

/* The value node given for key name, or NULL. */
static yaml_node_t *seen(const struct section *s, const char *name)
{
    int i = key_index(s, name);
    return i < 0 ? NULL : s->seen_val[i];
}

static void suggest(const struct section *s, const char *key, char *out, size_t len)
{
    const char *best = NULL;
    size_t bestd = 99;
    out[0] = '\0';
    for (size_t t = 0; t < s->ntables; t++)
        for (const struct hub_cfg_key *k = s->tables[t]; k && k->name; k++) {
            size_t d = distance(key, k->name);
            if (d < bestd) {
                bestd = d;
                best = k->name;
            }
        }
    for (size_t i = 0; s->own && s->own[i]; i++) {
        size_t d = distance(key, s->own[i]);
        if (d < bestd) {
            bestd = d;
            best = s->own[i];
        }
    }
    if (best && bestd <= (strlen(best) <= 4 ? 1u : 2u))
        snprintf(out, len, " (did you mean \"%s\"?)", best);
}

/* A scalar's text for key k, or NULL after reporting why not. */
static const char *scalar_for(struct loader *L, const char *keyname, const char *want,
                              yaml_node_t *v)
{
    char buf[64];
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
        report(L, v, "expected %s for %s, got %s", want, keyname, got(v, buf, sizeof(buf)));
        return NULL;
    }
    if (strlen(text_of(v)) != v->data.scalar.length) {
        report(L, v, "the value of %s contains a NUL character", keyname);
        return NULL;
    }
    return text_of(v);
}

static void walk_tags(struct loader *L, const struct hub_cfg_key *k, void *base, yaml_node_t *v)
{
    struct hub_cfg_tags *tags = (struct hub_cfg_tags *)((char *)base + k->offset);
    char buf[64], err[256];

    if (v->type != YAML_MAPPING_NODE) {
        report(L, v, "expected a mapping for %s, got %s", k->name, got(v, buf, sizeof(buf)));
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = get(L, p->key), *vn = get(L, p->value);
        if (!kn || !vn)
            return;
        const char *key = scalar_for(L, "a tag name", "a string", kn);
        if (!key)
            continue;
        const char *val = scalar_for(L, key, "a string", vn);
        if (!val)
            continue;
        if (strcmp(key, "gateway") == 0 || strcmp(key, "device") == 0) {
            report(L, kn, "tag \"%s\" is set by the hub (from the %s's name); remove it from %s",
                   key, key, k->name);
            continue;
        }
        if (strcmp(key, "time") == 0) {
            /* InfluxDB refuses every point with it ("invalid tag key") */
            report(L, kn,
                   "tag \"time\" would make the store refuse every reading (time is the "
                   "timestamp); rename it");
            continue;
        }
        if (hub_cfg_tags_add(tags, key, val, err, sizeof(err)) != 0)
            report(L, kn, "%s", err);
    }
}

/* Walk mapping m against s. Returns 0 if m is a mapping (its keys may still
 * have had errors), -1 if not. */
static int walk_section(struct loader *L, struct section *s, yaml_node_t *m)
{
    char buf[64], err[512];

    if (m->type != YAML_MAPPING_NODE) {
        const char *what = strncmp(s->where, "in ", 3) == 0 ? s->where + 3 : s->where;
        report(L, m, "expected a mapping for %s, got %s", what, got(m, buf, sizeof(buf)));
        return -1;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = get(L, p->key), *vn = get(L, p->value);
        if (!kn || !vn)
            return 0;
        if (kn->type != YAML_SCALAR_NODE) {
            report(L, kn, "expected a key name %s, got %s", s->where, got(kn, buf, sizeof(buf)));
            continue;
        }
        const char *key = text_of(kn);
        bool own = false;
        for (size_t i = 0; s->own && s->own[i]; i++)
            own = own || strcmp(s->own[i], key) == 0;
        if (own) {
            s->special(L, s, key, kn, vn);
            continue;
        }
        int idx = key_index(s, key);
        if (idx < 0 && strcmp(key, "<<") == 0 && kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            report(L, kn,
                   "merge keys (<<) are not supported %s; write the keys out (an alias "
                   "of a whole mapping, e.g. registers: *common, works)",
                   s->where);
            continue;
        }
        if (idx < 0) {
            suggest(s, key, buf, sizeof(buf));
            report(L, kn, "unknown key \"%s\" %s%s", key, s->where, buf);
            continue;
        }
        if (s->seen_key[idx]) {
            report(L, kn, "duplicate key \"%s\" %s (first at line %zu)", key, s->where,
                   line_of(s->seen_key[idx]));
            continue;
        }
        s->seen_key[idx] = kn;
        s->seen_val[idx] = vn;
        const struct hub_cfg_key *k = key_at(s, idx);
        if (k->type == HUB_CFG_LIST) {
            if (s->special)
                s->special(L, s, key, kn, vn);
            continue;
        }
        if (k->type == HUB_CFG_TAGS) {
            walk_tags(L, k, s->base, vn);
            continue;
        }
        const char *text = scalar_for(L, k->name, expected(k), vn);
        if (text && text[0] == '\0' && k->required)
            report(L, vn, "%s must not be empty", k->name);
        else if (text && hub_cfg_set(k, s->base, text, err, sizeof(err)) != 0)
            report(L, vn, "%s", err);
    }
    /* Required keys, each name once even if two tables have it. */
    for (int idx = 0; idx < CH_MAX_SECTION_KEYS; idx++) {
        const struct hub_cfg_key *k = key_at(s, idx);
        if (!k)
            break;
        if (k->required && key_index(s, k->name) == idx && !s->seen_key[idx])
            report(L, m, "missing required key \"%s\" %s", k->name, s->where);
    }
    return 0;
}

static void section_init(struct section *s, const struct hub_cfg_key *t0,
                         const struct hub_cfg_key *t1, void *base, const char *where)
{
    memset(s, 0, sizeof(*s));
    s->tables[0] = t0;
    s->tables[1] = t1;
    s->ntables = t1 ? 2 : 1;
    s->base = base;
    s->where = where;
}

static bool expect_list(struct loader *L, const char *what, yaml_node_t *v)
{
    char buf[64];
    if (v->type == YAML_SEQUENCE_NODE)
        return true;
    report(L, v, "expected a list for %s, got %s", what, got(v, buf, sizeof(buf)));
    return false;
}

/* ---- hub ------------------------------------------------------------------ */

static void hub_special(struct loader *L, struct section *s, const char *key, yaml_node_t *kn,
                        yaml_node_t *v)
{
    (void)s;
    if (strcmp(key, "status") == 0) {
        report(L, kn, "hub.status is not supported by this build yet");
        return;
    }
    if (strcmp(key, "journal") == 0) {
        struct ch_journal_cfg *j = &L->cfg->hub.journal;
        struct section js;
        section_init(&js, ch_journal_keys, NULL, j, "in hub.journal");
        if (walk_section(L, &js, v) != 0)
            return;
        yaml_node_t *seg = seen(&js, "segment_size");
        yaml_node_t *max = seen(&js, "max_size");
        if ((seg || max) && j->segment_size > j->max_size / 2)
            report(L, seg ? seg : max,
                   "journal segment_size (%llu bytes) must be at most half of max_size "
                   "(%llu bytes)",
                   (unsigned long long)j->segment_size, (unsigned long long)j->max_size);
    }
}

static void walk_hub(struct loader *L, yaml_node_t *v)
{
    struct section s;
    section_init(&s, ch_hub_keys, NULL, &L->cfg->hub, "in hub");
    s.special = hub_special;
    walk_section(L, &s, v);
}

/* Take name (at node) for a kind of thing; if it is taken already, report a
 * duplicate naming the line of the first and return false. */
static bool name_take(struct loader *L, struct name_set *set, yaml_node_t *node, const char *kind,
                      const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->name[i], name) == 0) {
            report(L, node, "duplicate %s name \"%s\" (first at line %zu)", kind, name,
                   set->line[i]);
            return false;
        }
    }
    if (set->n < CH_MAX_DEVICES) {
        set->name[set->n] = name;
        set->line[set->n] = line_of(node);
        set->n++;
    }
    return true;
}

/* ---- buses ---------------------------------------------------------------- */

static void walk_buses(struct loader *L, yaml_node_t *list)
{
    struct ch_config *c = L->cfg;
    char where[48];

    if (!expect_list(L, "buses", list))
        return;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *m = get(L, *it);
        if (!m)
            return;
        if (c->nbuses == CH_MAX_BUSES) {
            report(L, m, "too many buses (at most %d)", CH_MAX_BUSES);
            return;
        }
        struct drv_modbus_bus *b = &c->buses[c->nbuses];
        memset(b, 0, sizeof(*b));
        hub_cfg_defaults(drv_modbus_bus_keys, b);
        snprintf(where, sizeof(where), "in buses[%zu]",
                 (size_t)(it - list->data.sequence.items.start));
        struct section s;
        section_init(&s, drv_modbus_bus_keys, NULL, b, where);
        if (walk_section(L, &s, m) != 0)
            continue;
        yaml_node_t *type = seen(&s, "type"), *host = seen(&s, "host");
        if (b->type == DRV_MB_BUS_RTU && b->device[0] == '\0')
            report(L, type ? type : m, "missing required key \"device\" %s (an rtu bus needs one)",
                   where);
        else if (b->type == DRV_MB_BUS_TCP && b->host[0] == '\0' && !host)
            report(L, m, "missing required key \"host\" %s (a tcp bus needs one)", where);
        else if (b->type == DRV_MB_BUS_TCP && b->host[0] == '\0' &&
                 host->type == YAML_SCALAR_NODE && !is_null(host))
            report(L, host, "host must not be empty (a tcp bus needs one)");
        yaml_node_t *name = seen(&s, "name");
        if (!name || b->name[0] == '\0' || !name_take(L, &L->buses, name, "bus", b->name))
            continue;
        c->nbuses++;
    }
}

/* ---- devices -------------------------------------------------------------- */

static const char *const device_own[] = {"registers", "profile", NULL};

struct device_ctx {
    struct drv_modbus_device *dev;
    size_t index;
    bool has_registers; /* or a profile: either way no "missing registers" */
};

static void device_special(struct loader *L, struct section *s, const char *key, yaml_node_t *kn,
                           yaml_node_t *v)
{
    struct device_ctx *d = s->ctx;
    char where[64];

    if (strcmp(key, "profile") == 0) {
        d->has_registers = true;
        report(L, kn,
               "register profiles are not available in this build yet; list registers "
               "inline");
        return;
    }
    if (strcmp(key, "registers") != 0)
        return;
    if (d->has_registers && d->dev->nregs > 0) {
        report(L, kn, "duplicate key \"registers\" %s", s->where);
        return;
    }
    d->has_registers = true;
    snprintf(where, sizeof(where), "devices[%zu].registers", d->index);
    if (!expect_list(L, where, v))
        return;
    if (v->data.sequence.items.top == v->data.sequence.items.start) {
        report(L, v, "%s is empty; list at least one register", where);
        return;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *m = get(L, *it);
        if (!m)
            return;
        if (d->dev->nregs == DRV_MB_MAX_REGISTERS) {
            report(L, m, "too many registers in devices[%zu] (at most %d)", d->index,
                   DRV_MB_MAX_REGISTERS);
            return;
        }
        struct drv_modbus_register *r = &d->dev->regs[d->dev->nregs];
        memset(r, 0, sizeof(*r));
        hub_cfg_defaults(drv_modbus_register_keys, r);
        snprintf(where, sizeof(where), "in devices[%zu].registers[%zu]", d->index,
                 (size_t)(it - v->data.sequence.items.start));
        struct section rs;
        section_init(&rs, drv_modbus_register_keys, NULL, r, where);
        if (walk_section(L, &rs, m) == 0)
            d->dev->nregs++;
    }
}

/* A reading holds at most HUB_READING_MAX_TAGS tags: the device's own, its
 * "device" and "gateway", and each hub tag the device does not set. More
 * would make every reading of the device refused at run time. */
static void check_tag_count(struct loader *L, const struct drv_modbus_device *dev, yaml_node_t *at)
{
    const struct hub_cfg_tags *hub = &L->cfg->hub.tags;
    size_t n = dev->tags.n + 2;
    for (size_t i = 0; i < hub->n; i++) {
        bool own = false;
        for (size_t j = 0; j < dev->tags.n && !own; j++)
            own = strcmp(hub->tag[i].key, dev->tags.tag[j].key) == 0;
        n += !own;
    }
    if (n > HUB_READING_MAX_TAGS)
        report(L, at,
               "device \"%s\": its readings would have %zu tags (%zu of the device, %zu of the "
               "hub, device and gateway); at most %d",
               dev->name, n, dev->tags.n, n - 2 - dev->tags.n, HUB_READING_MAX_TAGS);
}

static void walk_devices(struct loader *L, yaml_node_t *list)
{
    struct ch_config *c = L->cfg;
    char where[48], err[512], names[256];

    if (!expect_list(L, "devices", list))
        return;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *m = get(L, *it);
        if (!m)
            return;
        if (c->ndevices == CH_MAX_DEVICES) {
            report(L, m, "too many devices (at most %d)", CH_MAX_DEVICES);
            return;
        }
        unsigned nerr0 = L->nerr;
        size_t index = (size_t)(it - list->data.sequence.items.start);
        struct drv_modbus_device *dev = &c->devices[c->ndevices];
        memset(dev, 0, sizeof(*dev));
        hub_cfg_defaults(drv_modbus_device_keys, dev);
        snprintf(where, sizeof(where), "in devices[%zu]", index);
        struct device_ctx dc = {.dev = dev, .index = index};
        struct section s;
        section_init(&s, drv_modbus_device_keys, NULL, dev, where);
        s.own = device_own;
        s.special = device_special;
        s.ctx = &dc;
        if (walk_section(L, &s, m) != 0)
            continue;
        if (!dc.has_registers)
            report(L, m, "missing required key \"registers\" %s", where);

        yaml_node_t *bus = seen(&s, "bus");
        if (bus && dev->bus[0]) {
            size_t bi = c->nbuses;
            for (size_t i = 0; i < c->nbuses; i++)
                if (strcmp(c->buses[i].name, dev->bus) == 0)
                    bi = i;
            if (bi == c->nbuses) {
                size_t off = 0;
                names[0] = '\0';
                for (size_t i = 0; i < c->nbuses && off < sizeof(names); i++)
                    off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
                                            c->buses[i].name);
                if (c->nbuses)
                    report(L, bus, "unknown bus \"%s\" (defined: %s)", dev->bus, names);
                else
                    report(L, bus, "unknown bus \"%s\" (no buses are defined)", dev->bus);
            } else if (++L->bus_devices[bi] > DRV_MB_MAX_DEVICES) {
                report(L, bus, "too many devices on bus \"%s\" (at most %d)", dev->bus,
                       DRV_MB_MAX_DEVICES);
            }
        }
        if (L->nerr == nerr0 && dev->nregs > 0 &&
            drv_modbus_check_device(dev, err, sizeof(err)) != 0)
            report(L, m, "device \"%s\": %s", dev->name, err);
        check_tag_count(L, dev, seen(&s, "tags") ? seen(&s, "tags") : m);

        yaml_node_t *name = seen(&s, "name");
        if (!name || dev->name[0] == '\0' || !name_take(L, &L->devices, name, "device", dev->name))
            continue;
        c->ndevices++;
    }
}

/* ---- outputs -------------------------------------------------------------- */

/* The value node of key in mapping m, or NULL. */
static yaml_node_t *find_value(struct loader *L, yaml_node_t *m, const char *key)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = get(L, p->key);
        if (!kn)
            return NULL;
        if (kn->type == YAML_SCALAR_NODE && strcmp(text_of(kn), key) == 0)
            return get(L, p->value);
    }
    return NULL;
}

static void walk_output(struct loader *L, yaml_node_t *m, size_t index)
{
    struct ch_config *c = L->cfg;
    char where[48], buf[64], known[256];

    snprintf(where, sizeof(where), "in outputs[%zu]", index);
    if (m->type != YAML_MAPPING_NODE) {
        report(L, m, "expected a mapping for %s, got %s", where + 3, got(m, buf, sizeof(buf)));
        return;
    }
    yaml_node_t *tv = find_value(L, m, "type");
    if (L->stop)
        return;
    if (!tv) {
        report(L, m, "missing required key \"type\" %s", where);
        return;
    }
    const char *type = scalar_for(L, "type", "a string", tv);
    if (!type)
        return;
    const struct drv_output_ops *ops = drv_output_find(type);
    if (!ops) {
        const char *names[16];
        size_t n = drv_output_types(names, 16), off = 0;
        known[0] = '\0';
        for (size_t i = 0; i < n && off < sizeof(known); i++)
            off +=
                (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "", names[i]);
        report(L, tv, "unknown output type \"%s\" (known: %s)", type, n ? known : "none");
        return;
    }
    size_t size = ops->config_size;
    if (size < sizeof(struct drv_output_common))
        size = sizeof(struct drv_output_common);
    void *cfg = calloc(1, size);
    if (!cfg) {
        report(L, m, "out of memory");
        return;
    }
    hub_cfg_defaults(ch_output_common_keys, cfg);
    hub_cfg_defaults(ops->config_map, cfg);
    struct section s;
    section_init(&s, ops->config_map, ch_output_common_keys, cfg, where);
    unsigned nerr0 = L->nerr;
    walk_section(L, &s, m);

    if (L->nerr == nerr0 && ops == &drv_influx_ops) {
        const char *key = NULL;
        char err[512];
        if (drv_influx_check(cfg, &key, err, sizeof(err)) != 0) {
            yaml_node_t *at = key ? seen(&s, key) : NULL;
            report(L, at ? at : m, "%s", err);
        }
    }

    struct drv_output_common *com = cfg;
    yaml_node_t *name = seen(&s, "name");
    if (name && com->name[0] && !name_take(L, &L->outputs, name, "output", com->name)) {
        free(cfg);
        return;
    }
    c->outputs[c->noutputs].ops = ops;
    c->outputs[c->noutputs].cfg = cfg;
    c->noutputs++;
}

static void walk_outputs(struct loader *L, yaml_node_t *list)
{
    if (!expect_list(L, "outputs", list))
        return;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *m = get(L, *it);
        if (!m)
            return;
        if (L->cfg->noutputs == CH_MAX_OUTPUTS) {
            report(L, m, "too many outputs (at most %d)", CH_MAX_OUTPUTS);
            return;
        }
        walk_output(L, m, (size_t)(it - list->data.sequence.items.start));
    }
}

/* ---- top level ------------------------------------------------------------ */

static void top_special(struct loader *L, struct section *s, const char *key, yaml_node_t *kn,
                        yaml_node_t *v)
{
    (void)s;
    (void)v;
    if (strcmp(key, "mqtt_inputs") == 0)
        report(L, kn, "mqtt_inputs is not supported by this build yet");
    /* hub, buses, devices, outputs: walked in that order by walk_root. */
}

static void walk_root(struct loader *L, yaml_node_t *root)
{
    struct section s;
    char buf[64];

    if (root->type != YAML_MAPPING_NODE) {
        report(L, root,
               "expected a mapping at the top level (hub:, buses:, devices:, outputs:), "
               "got %s",
               got(root, buf, sizeof(buf)));
        return;
    }
    section_init(&s, ch_top_keys, NULL, L->cfg, "at the top level");
    s.special = top_special;
    walk_section(L, &s, root);
    yaml_node_t *v;
    if ((v = seen(&s, "hub")) && !L->stop)
        walk_hub(L, v);
    if ((v = seen(&s, "buses")) && !L->stop)
        walk_buses(L, v);
    if ((v = seen(&s, "devices")) && !L->stop)
        walk_devices(L, v);
    if ((v = seen(&s, "outputs")) && !L->stop)
        walk_outputs(L, v);
}

/* libyaml's own message, at its position. Reader errors (bad UTF-8, control
 * characters) carry a byte offset only: it is turned into line and column. */
static void report_yaml_error(struct loader *L, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "cannot parse";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        report_at(L, 0, 0, "out of memory while parsing");
        return;
    case YAML_READER_ERROR: {
        size_t line = 0, col = 0;
        for (size_t i = 0; i < p->problem_offset && i < L->len; i++) {
            if (L->text[i] == '\n') {
                line++;
                col = 0;
            } else if (((unsigned char)L->text[i] & 0xC0) != 0x80) {
                col++; /* characters, as libyaml counts columns: not UTF-8 continuation bytes */
            }
        }
        if (p->problem_value != -1)
            report_at(L, line, col, "%s (#%X at byte %zu)", problem, (unsigned)p->problem_value,
                      p->problem_offset);
        else
            report_at(L, line, col, "%s (at byte %zu)", problem, p->problem_offset);
        return;
    }
    default:
        if (p->context)
            report_at(L, p->problem_mark.line, p->problem_mark.column, "%s (%s at line %zu)",
                      problem, p->context, p->context_mark.line + 1);
        else
            report_at(L, p->problem_mark.line, p->problem_mark.column, "%s", problem);
        return;
    }
}

struct ch_config *ch_config_load_buffer(const char *name, const char *text, size_t len, FILE *errs,
                                        unsigned *nerr)
{
    struct loader L = {.name = name ? name : "config", .text = text, .len = len, .errs = errs};
    yaml_parser_t parser;
    yaml_document_t doc, next;
    bool parser_ok = false, doc_ok = false;
    struct ch_config *c = NULL;

    L.errv = calloc(CH_MAX_ERRORS + 1, sizeof(*L.errv));
    if (!L.errv) {
        if (errs)
            fprintf(errs, "%s: out of memory\n", L.name);
        if (nerr)
            *nerr = 1;
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c)
        c->devices = calloc(CH_MAX_DEVICES, sizeof(*c->devices));
    if (!c || !c->devices) {
        report_at(&L, 0, 0, "out of memory");
        goto out;
    }
    L.cfg = c;
    snprintf(c->path, sizeof(c->path), "%s", L.name);
    hub_cfg_defaults(ch_hub_keys, &c->hub);
    hub_cfg_defaults(ch_journal_keys, &c->hub.journal);

    if (!yaml_parser_initialize(&parser)) {
        report_at(&L, 0, 0, "out of memory");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""),
                                 text ? len : 0);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(&L, &parser);
        goto out;
    }
    doc_ok = true;
    L.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        report_at(&L, 0, 0, "empty configuration");
        goto out;
    }
    walk_root(&L, root);

    /* One document per file: a second one would be silently ignored. */
    if (!yaml_parser_load(&parser, &next)) {
        report_yaml_error(&L, &parser);
    } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&next);
        if (r2)
            report(&L, r2,
                   "only one YAML document is allowed in a configuration (remove this "
                   "one or the \"---\" before it)");
        yaml_document_delete(&next);
    }

out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    flush_errors(&L);
    free(L.errv);
    if (nerr)
        *nerr = L.nerr;
    if (L.nerr) {
        ch_config_free(c);
        return NULL;
    }
    return c;
}

struct ch_config *ch_config_load(const char *path, FILE *errs, unsigned *nerr)
{
    struct ch_config *c = NULL;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");

    if (nerr)
        *nerr = 1;
    if (!f) {
        if (errs)
            fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        goto out;
    }
    buf = malloc(CH_MAX_FILE + 1);
    if (!buf) {
        if (errs)
            fprintf(errs, "%s: out of memory\n", path);
        goto out;
    }
    n = fread(buf, 1, CH_MAX_FILE + 1, f);
    if (ferror(f)) {
        if (errs)
            fprintf(errs, "%s: cannot read: %s\n", path, strerror(errno));
        goto out;
    }
    if (n > CH_MAX_FILE) {
        if (errs)
            fprintf(errs, "%s: file is larger than %d bytes; is it the right file?\n", path,
                    CH_MAX_FILE);
        goto out;
    }
    c = ch_config_load_buffer(path, buf, n, errs, nerr);

out:
    if (f)
        fclose(f);
    free(buf);
    return c;
}

void ch_config_free(struct ch_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->noutputs; i++)
        free(c->outputs[i].cfg);
    free(c->devices);
    free(c);
}
