/* firmware/config.c — the YAML configuration (v1): libyaml builds a node
 * tree, this file walks it against key tables and reports every problem as
 * "FILE:LINE:COL: message".
 *
 * The tables say everything: the top level has hub:, outputs: and the
 * sections each input driver of the registry owns; a key of type OBJECT is
 * a nested mapping, LIST a list of mappings, each with its own child table
 * (hub/config_map.h). The walk visits hub, the drivers' sections in
 * registry order, then outputs, whatever their order in the file; then it
 * runs the hub's cross-key rules and each driver's check, which report
 * against the struct and key at fault: every struct filled from a mapping
 * is remembered with its YAML node (struct place) so that a report finds
 * its line and column. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "firmware/config_priv.h"
#include "firmware/config_walk.h"

/* drv_check.report: a driver's problem at (where, key). Problems of a
 * struct whose own keys were already wrong are not reported: they follow
 * from the first error. */
static void check_report(struct drv_check *ck, const void *where, const char *key, const char *msg)
{
    struct loader *L = ck->loader;
    struct place *p = place_of(L, where);
    if (p && place_bad(L, p, key))
        return;
    yaml_node_t *at = p ? p->node : yaml_document_get_root_node(L->doc);
    yaml_node_t *v = key && p ? value_of(L, p->node, key) : NULL;
    if (v)
        at = v;
    /* the key at fault is named, unless the message already does */
    const char *named = key && !strstr(msg, key) ? key : NULL;
    if (at)
        report(L, at, "%s%s%s", named ? named : "", named ? ": " : "", msg);
    else
        report_at(L, 0, 0, "%s%s%s", named ? named : "", named ? ": " : "", msg);
}

/* A key that would hold a secret inline (password: …, token: …). */
static bool inline_secret(const char *key)
{
    static const char *const names[] = {"password", "passwd",     "pass",   "token",
                                        "secret",   "api_key",    "apikey", "private_key",
                                        "key",      "credentials"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(key, names[i]) == 0)
            return true;
    return false;
}

/* drv_check.given: whether the mapping that filled where has key. */
static int check_given(struct drv_check *ck, const void *where, const char *key)
{
    struct loader *L = ck->loader;
    struct place *p = place_of(L, where);
    return p && value_of(L, p->node, key) != NULL;
}

/* ---- the walk of one mapping -------------------------------------------------- */

static void walk_list(struct loader *L, const struct hub_cfg_key *k, void *base, yaml_node_t *v,
                      const char *where, int parent);
static void walk_value(struct loader *L, struct section *s, const struct hub_cfg_key *k,
                       yaml_node_t *kn, yaml_node_t *vn, const char *inner, int me);

/* Walk mapping m against s into s->base, remembered as a place under parent.
 * Returns the place's index, or -1 if m is not a mapping (reported). */
int walk_section(struct loader *L, struct section *s, yaml_node_t *m, int parent)
{
    char buf[64];
    unsigned nerr0 = L->nerr;

    if (m->type != YAML_MAPPING_NODE) {
        const char *what = strncmp(s->where, "in ", 3) == 0 ? s->where + 3 : s->where;
        report(L, m, "expected a mapping for %s, got %s", what, got(m, buf, sizeof(buf)));
        place_broken(L, s->base, m, parent);
        return -1;
    }
    int me = place_add(L, s->base, m, parent);
    if (me < 0) {
        report(L, m, "out of memory");
        return -1;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = get(L, p->key), *vn = get(L, p->value);
        if (!kn || !vn)
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            report(L, kn, "expected a key name %s, got %s", s->where, got(kn, buf, sizeof(buf)));
            continue;
        }
        const char *key = text_of(kn);
        int idx = key_index(s, key);
        if (idx < 0 && strcmp(key, "<<") == 0 && kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            report(L, kn,
                   "merge keys (<<) are not supported %s; write the keys out (an alias "
                   "of a whole mapping, e.g. registers: *common, works)",
                   s->where);
            continue;
        }
        if (idx < 0 && inline_secret(key)) {
            /* never echo the value; point at the key that names a file */
            char file_key[80];
            snprintf(file_key, sizeof(file_key), "%s_file", key);
            if (key_index(s, file_key) < 0)
                snprintf(file_key, sizeof(file_key), "%s",
                         key_index(s, "password_file") >= 0 ? "password_file"
                         : key_index(s, "token_file") >= 0  ? "token_file"
                                                            : "");
            report(L, kn,
                   "\"%s\" %s: a secret is never written in the configuration: put it in a "
                   "file only the cityhub user can read (chmod 600)%s%s",
                   key, s->where, file_key[0] ? " and name that file in " : "", file_key);
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
        char inner[160];
        const char *dot = strncmp(s->where, "in ", 3) == 0 ? s->where + 3 : NULL;
        if (dot)
            snprintf(inner, sizeof(inner), "%s.%s", dot, k->name);
        else
            snprintf(inner, sizeof(inner), "%s", k->name);
        unsigned nerr_key = L->nerr;
        walk_value(L, s, k, kn, vn, inner, me);
        if (L->nerr != nerr_key)
            place_bad_key(L, me, k->name);
    }
    if (L->stop) /* the walk was cut short: what is missing is not known */
        return me;
    /* Required keys, each name once even if two tables have it. */
    for (int idx = 0; idx < CH_MAX_SECTION_KEYS; idx++) {
        const struct hub_cfg_key *k = key_at(s, idx);
        if (!k)
            break;
        if (k->required && key_index(s, k->name) == idx && !s->seen_key[idx]) {
            report(L, m, "missing required key \"%s\" %s", k->name, s->where);
            place_bad_key(L, me, k->name);
        }
    }
    if (s->check && L->nerr == nerr0)
        s->check(L, s);
    L->places[me].errors = L->nerr - nerr0;
    return me;
}

/* One key's value, by the key's type. */
static void walk_value(struct loader *L, struct section *s, const struct hub_cfg_key *k,
                       yaml_node_t *kn, yaml_node_t *vn, const char *inner, int me)
{
    char err[512];
    {
        switch (k->type) {
        case HUB_CFG_SECTION:
            return; /* the caller walks it */
        case HUB_CFG_LIST:
            walk_list(L, k, s->base, vn, inner, me);
            return;
        case HUB_CFG_OBJECT: {
            if (!k->child) {
                report(L, kn, "%s is not supported by this build yet", inner);
                return;
            }
            char w[168];
            snprintf(w, sizeof(w), "in %s", inner);
            struct section cs;
            section_init(&cs, k->child, NULL, (char *)s->base + k->offset, w);
            cs.check = k->child == ch_journal_keys  ? check_journal
                       : k->child == ch_status_keys ? check_status
                                                    : NULL;
            walk_section(L, &cs, vn, me);
            return;
        }
        case HUB_CFG_TAGS:
            walk_tags(L, k, s->base, vn);
            return;
        default:
            break;
        }
        const char *text = scalar_for(L, k->name, hub_cfg_expected(k), vn);
        if (text && text[0] == '\0' && k->required)
            report(L, vn, "%s must not be empty", k->name);
        else if (text && hub_cfg_set(k, s->base, text, err, sizeof(err)) != 0)
            report(L, vn, "%s", err);
    }
}

/* A LIST key: allocate exactly as many elements as listed (at most
 * max_count) and walk each against the child table. */
static void walk_list(struct loader *L, const struct hub_cfg_key *k, void *base, yaml_node_t *v,
                      const char *what, int parent)
{
    struct hub_cfg_list *l = (struct hub_cfg_list *)((char *)base + k->offset);
    char where[200];

    if (!expect_list(L, what, v))
        return;
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) {
        report(L, v, "%s is empty; list at least one", what);
        return;
    }
    if (n > k->max_count) {
        yaml_node_t *extra = get(L, v->data.sequence.items.start[k->max_count]);
        report(L, extra ? extra : v, "too many %s (%zu; at most %zu)", what, n, k->max_count);
        n = k->max_count;
    }
    if (l->items) { /* an alias of a list already walked: one copy per use */
        hub_cfg_free(k->child, base);
    }
    l->items = calloc(n ? n : 1, k->elem_size);
    if (!l->items) {
        report(L, v, "out of memory");
        return;
    }
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = get(L, v->data.sequence.items.start[i]);
        if (!m)
            return;
        void *elem = (char *)l->items + i * k->elem_size;
        hub_cfg_defaults(k->child, elem);
        snprintf(where, sizeof(where), "in %s[%zu]", what, i);
        struct section s;
        section_init(&s, k->child, NULL, elem, where);
        walk_section(L, &s, m, parent);
    }
}

/* ---- sections of input drivers ---------------------------------------------- */

static void walk_driver_section(struct loader *L, struct ch_input_cfg *in, size_t si,
                                yaml_node_t *v)
{
    const struct drv_section *sec = &in->ops->sections[si];
    struct hub_cfg_list *l = &in->cfg.sect[si];
    struct name_set names = {0};
    char where[64];

    if (!expect_list(L, sec->key, v))
        return;
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > sec->max_count) {
        yaml_node_t *extra = get(L, v->data.sequence.items.start[sec->max_count]);
        report(L, extra ? extra : v, "too many %s (%zu; at most %zu)", sec->key, n, sec->max_count);
        n = sec->max_count;
    }
    l->items = calloc(n ? n : 1, sec->config_size);
    if (!l->items) {
        report(L, v, "out of memory");
        return;
    }
    l->n = n;
    in->elements += n;
    bool named = hub_cfg_find(sec->config_map, "name") != NULL;
    for (size_t i = 0; i < n && !L->stop; i++) {
        yaml_node_t *m = get(L, v->data.sequence.items.start[i]);
        if (!m)
            break;
        void *elem = (char *)l->items + i * sec->config_size;
        hub_cfg_defaults(sec->config_map, elem);
        snprintf(where, sizeof(where), "in %s[%zu]", sec->key, i);
        struct section s;
        section_init(&s, sec->config_map, NULL, elem, where);
        if (walk_section(L, &s, m, -1) < 0 || !named)
            continue;
        yaml_node_t *name = seen(&s, "name");
        const char *text = (const char *)elem + hub_cfg_find(sec->config_map, "name")->offset;
        if (name && text[0])
            name_take(L, &names, name, sec->item ? sec->item : sec->key, text);
    }
    name_set_free(&names);
}

/* ---- outputs ------------------------------------------------------------------- */

static void walk_output(struct loader *L, yaml_node_t *m, size_t index, struct name_set *names)
{
    struct ch_config *c = L->cfg;
    char where[48], buf[64], known[256];

    snprintf(where, sizeof(where), "in outputs[%zu]", index);
    if (m->type != YAML_MAPPING_NODE) {
        report(L, m, "expected a mapping for %s, got %s", where + 3, got(m, buf, sizeof(buf)));
        return;
    }
    yaml_node_t *tv = value_of(L, m, "type");
    if (!tv) {
        report(L, m, "missing required key \"type\" %s", where);
        return;
    }
    const char *type = scalar_for(L, "type", "a string", tv);
    if (!type)
        return;
    const struct drv_ops *ops = drv_find(DRV_OUTPUT, type);
    if (!ops) {
        drv_names(DRV_OUTPUT, known, sizeof(known));
        report(L, tv, "unknown output type \"%s\" (known: %s)", type, known[0] ? known : "none");
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
    hub_cfg_defaults(drv_output_common_keys, cfg);
    hub_cfg_defaults(ops->config_map, cfg);
    struct section s;
    section_init(&s, ops->config_map, drv_output_common_keys, cfg, where);
    c->outputs[c->noutputs].ops = ops;
    c->outputs[c->noutputs].cfg = cfg;
    c->noutputs++;
    walk_section(L, &s, m, -1);
    struct drv_output_common *com = cfg;
    yaml_node_t *name = seen(&s, "name");
    if (name && com->name[0])
        name_take(L, names, name, "output", com->name);
}

static void walk_outputs(struct loader *L, yaml_node_t *list)
{
    struct name_set names = {0};
    if (!expect_list(L, "outputs", list))
        return;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *m = get(L, *it);
        if (!m)
            break;
        if (L->cfg->noutputs == CH_MAX_OUTPUTS) {
            report(L, m, "too many outputs (at most %d)", CH_MAX_OUTPUTS);
            break;
        }
        walk_output(L, m, (size_t)(it - list->data.sequence.items.start), &names);
    }
    name_set_free(&names);
}

/* ---- top level --------------------------------------------------------------- */

#define TOP_MAX (2 + CH_MAX_INPUT_DRIVERS * DRV_MAX_SECTIONS + 1)

static void walk_root(struct loader *L, yaml_node_t *root)
{
    struct ch_config *c = L->cfg;
    struct hub_cfg_key top[TOP_MAX];
    char buf[64];
    size_t nt = 0;

    if (root->type != YAML_MAPPING_NODE) {
        report(L, root,
               "expected a mapping at the top level (hub:, buses:, devices:, outputs:), "
               "got %s",
               got(root, buf, sizeof(buf)));
        return;
    }
    memset(top, 0, sizeof(top));
    top[nt++] = (struct hub_cfg_key){.name = "hub",
                                     .type = HUB_CFG_SECTION,
                                     .required = true,
                                     .help = "the gateway itself: name, tags, journal, logging"};
    for (size_t i = 0; i < c->ninputs; i++)
        for (size_t j = 0; c->inputs[i].ops->sections[j].key && nt < TOP_MAX - 2; j++)
            top[nt++] = (struct hub_cfg_key){.name = c->inputs[i].ops->sections[j].key,
                                             .type = HUB_CFG_SECTION,
                                             .help = c->inputs[i].ops->sections[j].help};
    top[nt++] = (struct hub_cfg_key){
        .name = "outputs", .type = HUB_CFG_SECTION, .help = "where the readings are forwarded"};

    struct section s;
    section_init(&s, top, NULL, c, "at the top level");
    walk_section(L, &s, root, -1);
    yaml_node_t *v;
    if ((v = seen(&s, "hub")) && !L->stop) {
        struct section hs;
        section_init(&hs, ch_hub_keys, NULL, &c->hub, "in hub");
        walk_section(L, &hs, v, -1);
    }
    for (size_t i = 0; i < c->ninputs && !L->stop; i++)
        for (size_t j = 0; c->inputs[i].ops->sections[j].key && !L->stop; j++)
            if ((v = seen(&s, c->inputs[i].ops->sections[j].key)))
                walk_driver_section(L, &c->inputs[i], j, v);
    if ((v = seen(&s, "outputs")) && !L->stop)
        walk_outputs(L, v);

    /* Rules across keys and elements: the drivers' checks. */
    struct drv_check ck = {
        .report = check_report, .given = check_given, .loader = L, .hub_tags = &c->hub.tags};
    for (size_t i = 0; i < c->ninputs && !L->stop; i++)
        if (c->inputs[i].ops->check && c->inputs[i].elements)
            c->inputs[i].ops->check(&c->inputs[i].cfg, &ck);
    for (size_t i = 0; i < c->noutputs && !L->stop; i++) {
        struct place *p = place_of(L, c->outputs[i].cfg);
        if (c->outputs[i].ops->check && p && !place_bad(L, p, NULL) && p->errors == 0)
            c->outputs[i].ops->check(c->outputs[i].cfg, &ck);
    }
}

/* ---- loading ------------------------------------------------------------------ */

static struct ch_config *config_new(const char *name)
{
    struct ch_config *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    snprintf(c->path, sizeof(c->path), "%s", name);
    hub_cfg_defaults(ch_hub_keys, &c->hub);
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (size_t i = 0; i < n && c->ninputs < CH_MAX_INPUT_DRIVERS; i++)
        if (all[i]->kind == DRV_INPUT && all[i]->sections)
            c->inputs[c->ninputs++].ops = all[i];
    return c;
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
    c = config_new(L.name);
    if (!c) {
        report_at(&L, 0, 0, "out of memory");
        goto out;
    }
    L.cfg = c;
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
    free(L.places);
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
    for (size_t i = 0; i < c->ninputs; i++) {
        for (size_t j = 0; c->inputs[i].ops->sections[j].key && j < DRV_MAX_SECTIONS; j++) {
            const struct drv_section *sec = &c->inputs[i].ops->sections[j];
            struct hub_cfg_list *l = &c->inputs[i].cfg.sect[j];
            for (size_t k = 0; k < l->n; k++)
                hub_cfg_free(sec->config_map, (char *)l->items + k * sec->config_size);
            free(l->items);
        }
    }
    for (size_t i = 0; i < c->noutputs; i++) {
        hub_cfg_free(c->outputs[i].ops->config_map, c->outputs[i].cfg);
        free(c->outputs[i].cfg);
    }
    hub_cfg_free(ch_hub_keys, &c->hub);
    free(c);
}

const struct hub_cfg_list *ch_config_section(const struct ch_config *c, const char *key)
{
    for (size_t i = 0; c && i < c->ninputs; i++)
        for (size_t j = 0; c->inputs[i].ops->sections[j].key; j++)
            if (strcmp(c->inputs[i].ops->sections[j].key, key) == 0)
                return &c->inputs[i].cfg.sect[j];
    return NULL;
}
