/* drivers/modbus/profile.c — device profiles (profile.h) and a device's
 * effective register map (drv_modbus_device_resolve).
 *
 * A profile file is read with libyaml into a node tree and walked against
 * key tables, as the config loader does: the top level against
 * profile_keys, each register against drv_modbus_register_keys, the very
 * table a device's registers in the config are read with; every value is
 * stored by hub_cfg_set. The registers are then checked by the rules every
 * device's registers pass (drv_modbus_check_device_at). Problems are kept
 * as "FILE:LINE:COL: message" lines in the profile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "drivers/modbus/modbus_priv.h"
#include "drivers/modbus/profile.h"
#include "hub/log.h"

#ifdef DRV_MB_EMBEDDED_PROFILES
/* $(O)/gen/modbus_profiles.c, made by the Makefile from drivers/modbus/profiles/ */
extern const struct drv_mb_embedded_profile drv_mb_embedded_profiles[];
#define EMBEDDED drv_mb_embedded_profiles
#else
/* a build without the generated file (the fuzz harnesses): site profiles only */
static const struct drv_mb_embedded_profile no_embedded[] = {{NULL, NULL}};
#define EMBEDDED no_embedded
#endif

#define DEFAULT_MEASUREMENT "modbus"

#define PR(m) offsetof(struct drv_mb_profile, m)
#define PSIZE(m) sizeof(((struct drv_mb_profile *)0)->m)
static const struct hub_cfg_key profile_keys[] = {
    HUB_CFG_KEY("name", HUB_CFG_STRING, NULL, true, PR(name), PSIZE(name), 0, 0, NULL,
                "the profile's name, as devices name it: the file's name without .yaml"),
    HUB_CFG_KEY("description", HUB_CFG_STRING, NULL, false, PR(description), PSIZE(description), 0,
                0, NULL, "what the device is, in one line"),
    HUB_CFG_KEY("vendor", HUB_CFG_STRING, NULL, false, PR(vendor), PSIZE(vendor), 0, 0, NULL,
                "manufacturer"),
    HUB_CFG_KEY("model", HUB_CFG_STRING, NULL, false, PR(model), PSIZE(model), 0, 0, NULL,
                "model, as on the device"),
    HUB_CFG_KEY("measurement", HUB_CFG_STRING, NULL, false, PR(measurement), PSIZE(measurement), 0,
                0, NULL, "measurement of the readings, unless the device sets one"),
    HUB_CFG_KEY("max_gap", HUB_CFG_INT, NULL, false, PR(max_gap), 0, 0, DRV_MB_MAX_REGS_PER_READ,
                NULL, "unused registers a request may read through, unless the device sets it"),
    HUB_CFG_KEY("max_registers", HUB_CFG_INT, NULL, false, PR(max_registers), 0, 1,
                DRV_MB_MAX_REGS_PER_READ, NULL,
                "most registers the device answers in one request, unless the device sets it"),
    {.name = "registers",
     .type = HUB_CFG_LIST,
     .required = true,
     .offset = PR(registers),
     .child = drv_modbus_register_keys,
     .elem_size = sizeof(struct drv_modbus_register),
     .max_count = DRV_MB_MAX_REGISTERS,
     .help = "the registers, with the keys of a device's registers"},
    HUB_CFG_END,
};

/* A register key of the data model a build's register table may not have
 * yet: read into the same member, so that profiles can document fields. */
#define REG(m) offsetof(struct drv_modbus_register, m)
static const struct hub_cfg_key register_extra_keys[] = {
    HUB_CFG_KEY("description", HUB_CFG_STRING, NULL, false, REG(description),
                sizeof(((struct drv_modbus_register *)0)->description), 0, 0, NULL,
                "what the field is, for the data dictionary"),
    HUB_CFG_END,
};

/* ---- reading one file ------------------------------------------------------ */

struct reader {
    const char *file;
    yaml_document_t *doc;
    struct drv_mb_profile *p;
    char *errs;
    size_t len, cap;
    unsigned n;
    bool full;
    yaml_node_t *root;
    yaml_node_t *name_node;
    yaml_node_t *reg_node[DRV_MB_MAX_REGISTERS];
};

static void add_error(struct reader *R, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_line(struct reader *R, const char *line)
{
    size_t l = strlen(line);
    if (R->len + l + 2 > R->cap) {
        size_t cap = R->cap ? R->cap * 2 : 512;
        while (cap < R->len + l + 2)
            cap *= 2;
        char *e = realloc(R->errs, cap);
        if (!e)
            return;
        R->errs = e;
        R->cap = cap;
    }
    memcpy(R->errs + R->len, line, l);
    R->len += l;
    R->errs[R->len++] = '\n';
    R->errs[R->len] = '\0';
    R->n++;
}

/* line, col 1-based; 0 = none ("FILE: message"). */
static void add_error(struct reader *R, size_t line, size_t col, const char *fmt, ...)
{
    char msg[600], out[1200];
    va_list ap;
    if (R->full)
        return;
    if (R->n >= DRV_MB_PROFILE_MAX_ERRORS) {
        snprintf(out, sizeof(out), "%s: too many errors; stopping after %d", R->file,
                 DRV_MB_PROFILE_MAX_ERRORS);
        add_line(R, out);
        R->full = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    if (line)
        snprintf(out, sizeof(out), "%s:%zu:%zu: %s", R->file, line, col, msg);
    else
        snprintf(out, sizeof(out), "%s: %s", R->file, msg);
    add_line(R, out);
}

#define report(R, node, ...)                                                                       \
    add_error((R), (node)->start_mark.line + 1, (node)->start_mark.column + 1, __VA_ARGS__)

static yaml_node_t *node(struct reader *R, int i)
{
    return yaml_document_get_node(R->doc, i);
}

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar YAML reads as null: `key:`, `key: ~`, `key: null`. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = text_of(n);
    return s[0] == '\0' || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static const char *got(const yaml_node_t *n, char *buf, size_t len)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return "nothing";
    snprintf(buf, len, "\"%.40s%s\"", text_of(n), n->data.scalar.length > 40 ? "..." : "");
    return buf;
}

static const struct hub_cfg_key *find_key(const struct hub_cfg_key *table, const char *name)
{
    const struct hub_cfg_key *k = hub_cfg_find(table, name);
    if (!k && table == drv_modbus_register_keys)
        k = hub_cfg_find(register_extra_keys, name);
    return k;
}

/* "field, table, address, ...": the keys of a table, for messages. */
static void key_names(const struct hub_cfg_key *table, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const struct hub_cfg_key *t = pass ? register_extra_keys : table;
        if (pass && table != drv_modbus_register_keys)
            break;
        for (const struct hub_cfg_key *k = t; k->name && off < len; k++)
            if (!pass || !hub_cfg_find(table, k->name))
                off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", k->name);
    }
}

static void walk_list(struct reader *R, const struct hub_cfg_key *k, void *base, yaml_node_t *v);

/* Walk mapping m against table into base (its defaults applied by the
 * caller). where: "in registers[2]", "at the top level". */
static void walk_mapping(struct reader *R, const struct hub_cfg_key *table, void *base,
                         yaml_node_t *m, const char *where)
{
    char buf[64], err[512];
    const char *seen[64];
    size_t nseen = 0;

    if (m->type != YAML_MAPPING_NODE) {
        report(R, m, "expected a mapping %s, got %s", where, got(m, buf, sizeof(buf)));
        return;
    }
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = node(R, pr->key), *vn = node(R, pr->value);
        if (!kn || !vn)
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            report(R, kn, "expected a key name %s, got %s", where, got(kn, buf, sizeof(buf)));
            continue;
        }
        const char *name = text_of(kn);
        const struct hub_cfg_key *k = find_key(table, name);
        if (!k) {
            char keys[400];
            key_names(table, keys, sizeof(keys));
            report(R, kn, "unknown key \"%s\" %s (keys: %s)", name, where, keys);
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < nseen; i++)
            dup = dup || seen[i] == k->name;
        if (dup) {
            report(R, kn, "duplicate key \"%s\" %s", name, where);
            continue;
        }
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            seen[nseen++] = k->name;
        if (table == profile_keys && !strcmp(k->name, "name"))
            R->name_node = vn;
        switch (k->type) {
        case HUB_CFG_LIST:
            walk_list(R, k, base, vn);
            continue;
        case HUB_CFG_TAGS:
        case HUB_CFG_OBJECT:
        case HUB_CFG_SECTION:
            report(R, kn, "%s is not supported in a profile", name);
            continue;
        default:
            break;
        }
        if (vn->type != YAML_SCALAR_NODE || is_null(vn)) {
            report(R, vn, "expected %s for %s, got %s", hub_cfg_expected(k), name,
                   got(vn, buf, sizeof(buf)));
            continue;
        }
        const char *text = text_of(vn);
        if (strlen(text) != vn->data.scalar.length)
            report(R, vn, "the value of %s contains a NUL character", name);
        else if (text[0] == '\0' && k->required)
            report(R, vn, "%s must not be empty", name);
        else if (hub_cfg_set(k, base, text, err, sizeof(err)) != 0)
            report(R, vn, "%s", err);
    }
    for (const struct hub_cfg_key *k = table; k->name; k++) {
        bool given = false;
        for (size_t i = 0; i < nseen; i++)
            given = given || seen[i] == k->name;
        if (k->required && !given)
            report(R, m, "missing required key \"%s\" %s", k->name, where);
    }
}

static void walk_list(struct reader *R, const struct hub_cfg_key *k, void *base, yaml_node_t *v)
{
    struct hub_cfg_list *l = (struct hub_cfg_list *)((char *)base + k->offset);
    char buf[64], where[96];

    if (v->type != YAML_SEQUENCE_NODE) {
        report(R, v, "expected a list for %s, got %s", k->name, got(v, buf, sizeof(buf)));
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) {
        report(R, v, "%s is empty; list at least one", k->name);
        return;
    }
    if (n > k->max_count) {
        yaml_node_t *extra = node(R, v->data.sequence.items.start[k->max_count]);
        report(R, extra ? extra : v, "too many %s (%zu; at most %zu)", k->name, n, k->max_count);
        n = k->max_count;
    }
    if (l->items) /* given twice: reported as a duplicate, never walked twice */
        return;
    l->items = calloc(n, k->elem_size);
    if (!l->items) {
        report(R, v, "out of memory");
        return;
    }
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = node(R, v->data.sequence.items.start[i]);
        if (!m)
            break;
        void *elem = (char *)l->items + i * k->elem_size;
        hub_cfg_defaults(k->child, elem);
        if (k->child == drv_modbus_register_keys && i < DRV_MB_MAX_REGISTERS)
            R->reg_node[i] = m;
        snprintf(where, sizeof(where), "in %s[%zu]", k->name, i);
        walk_mapping(R, k->child, elem, m, where);
    }
}

/* The value node of key in mapping m, or NULL. */
static yaml_node_t *value_of(struct reader *R, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE || !key)
        return NULL;
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = node(R, pr->key);
        if (kn && kn->type == YAML_SCALAR_NODE && !strcmp(text_of(kn), key))
            return node(R, pr->value);
    }
    return NULL;
}

/* The rules every device's registers pass, on the profile's. */
static void check_registers(struct reader *R)
{
    struct drv_mb_profile *p = R->p;
    struct drv_modbus_device dev;
    char err[512];
    size_t reg = 0;
    const char *key = NULL;

    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "%s", p->name);
    snprintf(dev.measurement, sizeof(dev.measurement), "%s",
             p->measurement[0] ? p->measurement : DEFAULT_MEASUREMENT);
    dev.unit = 1;
    dev.max_gap = p->max_gap >= 0 ? p->max_gap : 0;
    dev.max_registers = p->max_registers >= 1 ? p->max_registers : DRV_MB_MAX_REGS_PER_READ;
    dev.regs = p->regs;
    dev.nregs = p->nregs;
    if (drv_modbus_check_device_at(&dev, &reg, &key, err, sizeof(err)) == 0)
        return;
    yaml_node_t *at = reg < p->nregs && reg < DRV_MB_MAX_REGISTERS ? R->reg_node[reg] : NULL;
    yaml_node_t *v = value_of(R, at, key);
    if (v)
        at = v;
    if (!at)
        at = R->root;
    /* "device NAME: ..." is about the profile here */
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "device %s: ", dev.name);
    const char *msg = err;
    if (!strncmp(err, prefix, strlen(prefix)))
        msg = err + strlen(prefix);
    report(R, at, "profile %s: %s", dev.name, msg);
}

/* NAME of ".../NAME.yaml". */
static void stem_of(const char *file, char *out, size_t len)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".yaml"))
        n -= 5;
    snprintf(out, len, "%.*s", (int)n, base);
}

static void yaml_error(struct reader *R, const yaml_parser_t *ps, const char *text, size_t len)
{
    const char *problem = ps->problem ? ps->problem : "cannot parse";
    if (ps->error == YAML_READER_ERROR) {
        size_t line = 0, col = 0;
        for (size_t i = 0; i < ps->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 0;
            } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        add_error(R, line + 1, col + 1, "%s (at byte %zu)", problem, ps->problem_offset);
    } else if (ps->error == YAML_MEMORY_ERROR) {
        add_error(R, 0, 0, "out of memory while parsing");
    } else if (ps->context) {
        add_error(R, ps->problem_mark.line + 1, ps->problem_mark.column + 1, "%s (%s at line %zu)",
                  problem, ps->context, ps->context_mark.line + 1);
    } else {
        add_error(R, ps->problem_mark.line + 1, ps->problem_mark.column + 1, "%s", problem);
    }
}

int drv_mb_profile_parse(const char *file, const char *text, size_t len, struct drv_mb_profile *p)
{
    struct reader R;
    yaml_parser_t ps;
    yaml_document_t doc;
    char stem[sizeof(p->name)];

    memset(p, 0, sizeof(*p));
    p->max_gap = -1;
    p->max_registers = -1;
    snprintf(p->file, sizeof(p->file), "%s", file);
    stem_of(file, stem, sizeof(stem));
    memset(&R, 0, sizeof(R));
    R.file = file;
    R.p = p;
    R.doc = &doc;

    if (!yaml_parser_initialize(&ps)) {
        add_error(&R, 0, 0, "out of memory");
        goto done;
    }
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
    if (!yaml_parser_load(&ps, &doc)) {
        yaml_error(&R, &ps, text, len);
        yaml_parser_delete(&ps);
        goto done;
    }
    R.root = yaml_document_get_root_node(&doc);
    if (!R.root) {
        add_error(&R, 1, 1, "the file is empty; a profile is a mapping with name and registers");
    } else {
        walk_mapping(&R, profile_keys, p, R.root, "at the top level");
        yaml_document_t next;
        if (yaml_parser_load(&ps, &next)) { /* a second document: not a profile */
            yaml_node_t *n2 = yaml_document_get_root_node(&next);
            if (n2)
                report(&R, n2, "a profile is one YAML document; this file has more");
            yaml_document_delete(&next);
        }
        if (R.name_node && strcmp(p->name, stem) != 0 && R.n == 0)
            report(&R, R.name_node,
                   "name \"%s\" differs from the file's name (%s.yaml): name the file after the "
                   "profile",
                   p->name, stem);
        if (R.n == 0)
            check_registers(&R);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
done:
    snprintf(p->name, sizeof(p->name), "%s", stem);
    p->errors = R.errs;
    p->nerrors = R.n;
    if (R.n > 0 && !p->errors) { /* out of memory for the message itself */
        p->errors = strdup("out of memory\n");
        p->nerrors = 1;
    }
    return R.n ? -1 : 0;
}

void drv_mb_profile_clear(struct drv_mb_profile *p)
{
    free(p->regs);
    free(p->errors);
    memset(p, 0, sizeof(*p));
}

/* ---- the library --------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct drv_mb_profile *)a)->name,
                  ((const struct drv_mb_profile *)b)->name);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Take p into lib (a site profile replaces a built-in one of its name). */
static int lib_add(struct drv_mb_profiles *lib, size_t *cap, struct drv_mb_profile *p)
{
    for (size_t i = 0; i < lib->n; i++) {
        if (!strcmp(lib->p[i].name, p->name)) {
            int replaced = !lib->p[i].site;
            drv_mb_profile_clear(&lib->p[i]);
            lib->p[i] = *p;
            lib->p[i].replaces = replaced;
            return 0;
        }
    }
    if (lib->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct drv_mb_profile *np = realloc(lib->p, nc * sizeof(*np));
        if (!np)
            return -1;
        lib->p = np;
        *cap = nc;
    }
    lib->p[lib->n++] = *p;
    return 0;
}

/* A file that could not be read: in the library with that error. */
static void unreadable(struct drv_mb_profile *p, const char *path, const char *why)
{
    memset(p, 0, sizeof(*p));
    p->max_gap = -1;
    p->max_registers = -1;
    snprintf(p->file, sizeof(p->file), "%s", path);
    stem_of(path, p->name, sizeof(p->name));
    size_t n = strlen(path) + strlen(why) + 16;
    p->errors = malloc(n);
    if (p->errors)
        snprintf(p->errors, n, "%s: %s\n", path, why);
    p->nerrors = 1;
}

static void read_site_file(struct drv_mb_profile *p, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    char why[320];
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, sizeof(why), "cannot read: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        unreadable(p, path, why);
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > DRV_MB_PROFILE_MAX_FILE) {
        snprintf(why, sizeof(why), "%s",
                 S_ISREG(st.st_mode) ? "too large for a profile (1 MiB)" : "not a regular file");
        close(fd);
        unreadable(p, path, why);
        return;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *text = malloc(size + 1);
    while (text && got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!text || got != size) {
        snprintf(why, sizeof(why), "cannot read: %s", text ? "short read" : "out of memory");
        free(text);
        unreadable(p, path, why);
        return;
    }
    text[size] = '\0';
    drv_mb_profile_parse(path, text, size, p);
    free(text);
}

static void read_site_dir(struct drv_mb_profiles *lib, size_t *cap, const char *dir)
{
    snprintf(lib->dir, sizeof(lib->dir), "%s", dir);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            snprintf(lib->dir_error, sizeof(lib->dir_error), "%s", strerror(errno));
        return;
    }
    lib->dir_found = 1;
    char **names = NULL;
    size_t n = 0, ncap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= 5 || strcmp(e->d_name + l - 5, ".yaml") != 0)
            continue;
        if (n == DRV_MB_PROFILE_MAX_SITE) {
            snprintf(lib->dir_error, sizeof(lib->dir_error),
                     "more than %d profiles; the others are not read", DRV_MB_PROFILE_MAX_SITE);
            break;
        }
        if (n == ncap) {
            size_t nc = ncap ? ncap * 2 : 16;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn)
                break;
            names = nn;
            ncap = nc;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), str_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[sizeof(lib->dir) + 300];
        struct drv_mb_profile p;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        read_site_file(&p, path);
        p.site = 1;
        if (lib_add(lib, cap, &p) != 0)
            drv_mb_profile_clear(&p);
        free(names[i]);
    }
    free(names);
}

struct drv_mb_profiles *drv_mb_profiles_load(const char *site_dir)
{
    struct drv_mb_profiles *lib = calloc(1, sizeof(*lib));
    size_t cap = 0;
    if (!lib)
        return NULL;
    for (const struct drv_mb_embedded_profile *e = EMBEDDED; e->file; e++) {
        struct drv_mb_profile p;
        drv_mb_profile_parse(e->file, e->text, strlen(e->text), &p);
        if (lib_add(lib, &cap, &p) != 0)
            drv_mb_profile_clear(&p);
    }
    if (site_dir && site_dir[0])
        read_site_dir(lib, &cap, site_dir);
    if (lib->n)
        qsort(lib->p, lib->n, sizeof(*lib->p), by_name);
    return lib;
}

void drv_mb_profiles_free(struct drv_mb_profiles *lib)
{
    if (!lib)
        return;
    for (size_t i = 0; i < lib->n; i++)
        drv_mb_profile_clear(&lib->p[i]);
    free(lib->p);
    free(lib);
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static struct drv_mb_profiles *lib_global;
static struct drv_mb_profiles lib_empty;

static void lib_load(void)
{
    const char *dir = getenv(DRV_MB_PROFILE_ENV);
    lib_global = drv_mb_profiles_load(dir ? dir : DRV_MB_PROFILE_DIR);
    for (size_t i = 0; lib_global && i < lib_global->n; i++)
        if (lib_global->p[i].replaces)
            hub_info("modbus", "profile %s: the site's %s replaces the built-in one",
                     lib_global->p[i].name, lib_global->p[i].file);
}

const struct drv_mb_profiles *drv_mb_profiles(void)
{
    pthread_once(&lib_once, lib_load);
    return lib_global ? lib_global : &lib_empty;
}

const struct drv_mb_profile *drv_mb_profile_find(const struct drv_mb_profiles *lib,
                                                 const char *name)
{
    for (size_t i = 0; lib && name && i < lib->n; i++)
        if (!strcmp(lib->p[i].name, name))
            return &lib->p[i];
    return NULL;
}

void drv_mb_profile_names(const struct drv_mb_profiles *lib, char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; lib && i < lib->n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", lib->p[i].name);
    if (off >= len && len > 4)
        snprintf(buf + len - 4, 4, "...");
    if (!lib || lib->n == 0)
        snprintf(buf, len, "none");
}

/* ---- a device's effective configuration ------------------------------------- */

/* Whether the device set key (an INT key of the device table whose default
 * -1 means "not set"); a build whose table has no such key cannot set it. */
static bool device_sets(const char *key, int64_t v, int64_t min)
{
    return hub_cfg_find(drv_modbus_device_keys, key) != NULL && v >= min;
}

int drv_mb_device_resolve_in(const struct drv_mb_profiles *lib, const struct drv_modbus_device *in,
                             struct drv_modbus_device *out, size_t *origin, char *err,
                             size_t errlen)
{
    const struct drv_mb_profile *p = NULL;

    *out = *in;
    out->regs = NULL;
    out->nregs = 0;
    if (in->profile[0]) {
        p = drv_mb_profile_find(lib, in->profile);
        if (!p) {
            char names[400];
            drv_mb_profile_names(lib, names, sizeof(names));
            snprintf(err, errlen, "device %s: unknown profile \"%s\" (available: %s)", in->name,
                     in->profile, names);
            return -1;
        }
        if (p->nerrors) {
            const char *first = p->errors ? p->errors : "?\n";
            int l = (int)strcspn(first, "\n");
            if (p->nerrors == 1)
                snprintf(err, errlen, "device %s: profile \"%s\" has an error: %.*s", in->name,
                         p->name, l, first);
            else
                snprintf(err, errlen,
                         "device %s: profile \"%s\" has %u errors (cityhub profiles %s), the "
                         "first: %.*s",
                         in->name, p->name, p->nerrors, p->name, l, first);
            return -1;
        }
    }
    size_t np = p ? p->nregs : 0;
    size_t total = np + in->nregs;
    if (total) {
        out->regs = malloc(total * sizeof(*out->regs));
        if (!out->regs) {
            snprintf(err, errlen, "device %s: out of memory", in->name);
            return -1;
        }
    }
    bool overridden[DRV_MB_MAX_REGISTERS] = {false};
    size_t n = 0;
    for (; n < np; n++) {
        out->regs[n] = p->regs[n];
        if (origin && n < DRV_MB_MAX_REGISTERS)
            origin[n] = SIZE_MAX;
    }
    for (size_t j = 0; j < in->nregs; j++) {
        size_t i = 0;
        /* each profile register is overridden once: a second register of
         * the same field is the device's own duplicate, which the checks
         * report */
        while (i < np && (overridden[i] || strcmp(p->regs[i].field, in->regs[j].field) != 0))
            i++;
        if (i == np)
            i = n++;
        else
            overridden[i] = true;
        out->regs[i] = in->regs[j];
        if (origin && i < DRV_MB_MAX_REGISTERS)
            origin[i] = j;
    }
    out->nregs = n;
    if (p && n > DRV_MB_MAX_REGISTERS) {
        snprintf(err, errlen,
                 "device %s: profile \"%s\" has %zu fields and the device adds %zu: %zu in all, at "
                 "most %d",
                 in->name, p->name, np, n - np, n, DRV_MB_MAX_REGISTERS);
        drv_modbus_device_release(out);
        return -1;
    }
    if (p && p->measurement[0] &&
        (in->measurement[0] == '\0' || !strcmp(in->measurement, DEFAULT_MEASUREMENT)))
        snprintf(out->measurement, sizeof(out->measurement), "%s", p->measurement);
    else if (in->measurement[0] == '\0')
        snprintf(out->measurement, sizeof(out->measurement), "%s", DEFAULT_MEASUREMENT);
    if (!device_sets("max_gap", in->max_gap, 0))
        out->max_gap = p && p->max_gap >= 0 ? p->max_gap : 0;
    if (!device_sets("max_registers", in->max_registers, 1))
        out->max_registers =
            p && p->max_registers >= 1 ? p->max_registers : DRV_MB_MAX_REGS_PER_READ;
    return 0;
}

int drv_modbus_device_resolve(const struct drv_modbus_device *in, struct drv_modbus_device *out,
                              char *err, size_t errlen)
{
    /* the library is read only when a device names a profile */
    return drv_mb_device_resolve_in(in->profile[0] ? drv_mb_profiles() : NULL, in, out, NULL, err,
                                    errlen);
}

void drv_modbus_device_release(struct drv_modbus_device *d)
{
    free(d->regs);
    d->regs = NULL;
    d->nregs = 0;
}

/* ---- checking a device that names a profile ----------------------------------- */

/* Where a report about the resolved device belongs in the config. */
static const void *map_where(struct drv_mb_profile_check *pc, const void *where, const char **key,
                             size_t *profile_reg)
{
    *profile_reg = SIZE_MAX;
    if (where == &pc->res)
        return pc->orig;
    const struct drv_modbus_register *r = where;
    if (pc->res.regs && r >= pc->res.regs && r < pc->res.regs + pc->res.nregs) {
        size_t i = (size_t)(r - pc->res.regs);
        if (i < DRV_MB_MAX_REGISTERS && pc->origin[i] != SIZE_MAX)
            return &pc->orig->regs[pc->origin[i]];
        *profile_reg = i;
        *key = "profile";
        return pc->orig;
    }
    return where;
}

static void proxy_report(struct drv_check *ck, const void *where, const char *key, const char *msg)
{
    struct drv_mb_profile_check *pc = (struct drv_mb_profile_check *)ck;
    size_t preg;
    const void *at = map_where(pc, where, &key, &preg);
    if (preg != SIZE_MAX)
        drv_check_error(pc->real, at, key, "%s (field %s comes from profile \"%s\")", msg,
                        pc->res.regs[preg].field, pc->orig->profile);
    else
        drv_check_error(pc->real, at, key, "%s", msg);
}

static int proxy_given(struct drv_check *ck, const void *where, const char *key)
{
    struct drv_mb_profile_check *pc = (struct drv_mb_profile_check *)ck;
    size_t preg;
    const void *at = map_where(pc, where, &key, &preg);
    return pc->real->given ? pc->real->given(pc->real, at, key) : 0;
}

int drv_mb_profile_check_begin(struct drv_mb_profile_check *pc, const struct drv_modbus_device *d,
                               struct drv_check *real, char *err, size_t errlen)
{
    memset(pc, 0, sizeof(*pc));
    pc->real = real;
    pc->orig = d;
    if (drv_mb_device_resolve_in(drv_mb_profiles(), d, &pc->res, pc->origin, err, errlen) != 0)
        return -1;
    pc->res.profile[0] = '\0';
    pc->ck.report = proxy_report;
    pc->ck.given = proxy_given;
    pc->ck.loader = real->loader;
    pc->ck.hub_tags = real->hub_tags;
    return 0;
}

void drv_mb_profile_check_end(struct drv_mb_profile_check *pc)
{
    drv_modbus_device_release(&pc->res);
}

/* ---- names and types, for the dictionary and the command ------------------- */

const char *drv_mb_store_type(const struct drv_modbus_register *reg)
{
    switch (drv_modbus_store_of(reg)) { /* the decoder's own rule */
    case DRV_MB_STORE_FLOAT:
        return "float";
    case DRV_MB_STORE_INT:
        return "integer";
    case DRV_MB_STORE_UINT:
        return "unsigned";
    default:
        return reg->type == DRV_MB_STRING ? "string" : "boolean";
    }
}

const char *drv_mb_choice(const char *key, int value)
{
    const struct hub_cfg_key *k = hub_cfg_find(drv_modbus_register_keys, key);
    for (int i = 0; k && k->choices && k->choices[i]; i++)
        if (i == value)
            return k->choices[i];
    return "?";
}
