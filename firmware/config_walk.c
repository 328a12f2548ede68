/* firmware/config_walk.c — errors with positions, and walking YAML nodes
 * against key tables: the parts of the loader that know no section. */
#include "firmware/config_walk.h"
#include "hub/secret.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Record "FILE:LINE:COL: message" (line, col 0-based as libyaml gives them),
 * with control characters of quoted user text replaced so that every error
 * stays one line. Printed by flush_errors. */
void report_at(struct loader *L, size_t line, size_t col, const char *fmt, ...)
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

void flush_errors(struct loader *L)
{
    qsort(L->errv, L->nerr, sizeof(L->errv[0]), err_cmp);
    for (unsigned i = 0; L->errs && i < L->nerr; i++)
        fprintf(L->errs, "%s:%zu:%zu: %s\n", L->name, L->errv[i].line + 1, L->errv[i].col + 1,
                L->errv[i].msg);
}

/* The node at idx, counted against CH_MAX_NODES; NULL once the walk stops. */
yaml_node_t *get(struct loader *L, int idx)
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

size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

const char *text_of(const yaml_node_t *n)
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
const char *got(const yaml_node_t *n, char *buf, size_t len)
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

/* Flat index of name over the section's tables, or -1. */
int key_index(const struct section *s, const char *name)
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

const struct hub_cfg_key *key_at(const struct section *s, int idx)
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
yaml_node_t *seen(const struct section *s, const char *name)
{
    int i = key_index(s, name);
    return i < 0 ? NULL : s->seen_val[i];
}

void suggest(const struct section *s, const char *key, char *out, size_t len)
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
    if (best && bestd <= (strlen(best) <= 4 ? 1u : 2u))
        snprintf(out, len, " (did you mean \"%s\"?)", best);
}

/* A scalar's text for key k, or NULL after reporting why not. */
const char *scalar_for(struct loader *L, const char *keyname, const char *want, yaml_node_t *v)
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

void walk_tags(struct loader *L, const struct hub_cfg_key *k, void *base, yaml_node_t *v)
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

void section_init(struct section *s, const struct hub_cfg_key *t0, const struct hub_cfg_key *t1,
                  void *base, const char *where)
{
    memset(s, 0, sizeof(*s));
    s->tables[0] = t0;
    s->tables[1] = t1;
    s->ntables = t1 ? 2 : 1;
    s->base = base;
    s->where = where;
}

bool expect_list(struct loader *L, const char *what, yaml_node_t *v)
{
    char buf[64];
    if (v->type == YAML_SEQUENCE_NODE)
        return true;
    report(L, v, "expected a list for %s, got %s", what, got(v, buf, sizeof(buf)));
    return false;
}

/* libyaml's own message, at its position. Reader errors (bad UTF-8, control
 * characters) carry a byte offset only: it is turned into line and column. */
void report_yaml_error(struct loader *L, const yaml_parser_t *p)
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

bool name_take(struct loader *L, struct name_set *set, yaml_node_t *node, const char *kind,
               const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->name[i], name) == 0) {
            report(L, node, "duplicate %s name \"%s\" (first at line %zu)", kind, name,
                   set->line[i]);
            return false;
        }
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        const char **nn = realloc(set->name, cap * sizeof(*nn));
        if (nn)
            set->name = nn;
        size_t *nl = nn ? realloc(set->line, cap * sizeof(*nl)) : NULL;
        if (nl)
            set->line = nl;
        if (!nn || !nl)
            return true; /* out of memory: no duplicate check beyond this */
        set->cap = cap;
    }
    set->name[set->n] = name;
    set->line[set->n] = line_of(node);
    set->n++;
    return true;
}

void name_set_free(struct name_set *set)
{
    free(set->name);
    free(set->line);
    memset(set, 0, sizeof(*set));
}

void check_journal(struct loader *L, struct section *s)
{
    const struct ch_journal_cfg *j = s->base;
    yaml_node_t *seg = seen(s, "segment_size");
    yaml_node_t *max = seen(s, "max_size");
    if ((seg || max) && j->segment_size > j->max_size / 2)
        report(L, seg ? seg : max,
               "journal segment_size (%llu bytes) must be at most half of max_size "
               "(%llu bytes)",
               (unsigned long long)j->segment_size, (unsigned long long)j->max_size);
}

void check_status(struct loader *L, struct section *s)
{
    const struct ch_status_cfg *st = s->base;
    yaml_node_t *listen = seen(s, "listen");
    yaml_node_t *pwf = seen(s, "password_file");
    char host[CH_STATUS_LISTEN_MAX], err[512];
    int port;
    if (!st->enabled)
        return;
    if (listen &&
        ch_status_parse_listen(st->listen, host, sizeof(host), &port, err, sizeof(err)) == 0 &&
        !ch_status_host_is_loopback(host) && !st->password_file[0] && !st->allow_unauthenticated)
        report(L, listen,
               "hub.status.listen %s is not a loopback address: set password_file (HTTP basic "
               "authentication), or allow_unauthenticated: true on a trusted network",
               st->listen);
    if (pwf && st->password_file[0] &&
        hub_secret_check("hub.status.password_file", st->password_file, err, sizeof(err)) != 0)
        report(L, pwf, "%s", err);
}

/* ---- places: which mapping filled which struct ----------------------------- */

int place_add(struct loader *L, const void *base, yaml_node_t *node, int parent)
{
    if (L->nplaces == L->places_cap) {
        size_t cap = L->places_cap ? L->places_cap * 2 : 256;
        struct place *p = realloc(L->places, cap * sizeof(*p));
        if (!p)
            return -1;
        L->places = p;
        L->places_cap = cap;
    }
    L->places[L->nplaces] = (struct place){.base = base, .node = node, .parent = parent};
    return (int)L->nplaces++;
}

struct place *place_of(struct loader *L, const void *base)
{
    for (size_t i = L->nplaces; i-- > 0;)
        if (L->places[i].base == base)
            return &L->places[i];
    return NULL;
}

void place_bad_key(struct loader *L, int me, const char *key)
{
    struct place *p = &L->places[me];
    if (p->nbad < PLACE_BAD_KEYS)
        p->bad_keys[p->nbad++] = key;
    else
        p->broken = true; /* too many to tell: treat the whole mapping as wrong */
}

bool place_bad(struct loader *L, const struct place *p, const char *key)
{
    for (unsigned i = 0; key && i < p->nbad; i++)
        if (strcmp(p->bad_keys[i], key) == 0)
            return true;
    if (!key && p->errors > 0) /* about the whole mapping, which had errors in it */
        return true;
    while (p) {
        if (p->broken)
            return true;
        p = p->parent >= 0 ? &L->places[p->parent] : NULL;
    }
    return false;
}

/* A struct that should have come from a mapping that was not one. */
void place_broken(struct loader *L, const void *base, yaml_node_t *node, int parent)
{
    int i = place_add(L, base, node, parent);
    if (i >= 0)
        L->places[i].broken = true;
}

/* The value node of key in mapping m (not counted against the node limit:
 * it was visited by the walk already), or NULL. */
yaml_node_t *value_of(struct loader *L, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(L->doc, p->key);
        if (kn && kn->type == YAML_SCALAR_NODE && strcmp(text_of(kn), key) == 0)
            return yaml_document_get_node(L->doc, p->value);
    }
    return NULL;
}
