/* hub/config_map.h — configuration described as data (after Fluent Bit's
 * config_map).
 *
 * Each section of the config (hub, a bus, a device, a register, an output)
 * is a C struct plus a table of hub_cfg_key saying, for every key the user may
 * write: its name, its type, its default, where it goes in the struct and one
 * line of help. The YAML loader in firmware/ walks the document, looks every
 * key up in the table (unknown keys are errors) and calls hub_cfg_set with the
 * scalar's text; it knows nothing about the keys themselves.
 *
 * Storage by type:
 *   STRING   char[size]        (too long is an error)
 *   INT      int64_t           (checked against min..max)
 *   DOUBLE   double            (finite)
 *   BOOL     bool              (true/false/yes/no/on/off)
 *   DURATION int64_t ns        ("250ms", "10s", "5m", "1h", "100us")
 *   SIZE     uint64_t bytes    ("64MiB", "512KiB", "1GiB", "4096", "10MB")
 *   ENUM     int               (index into choices, a NULL-terminated list)
 *   TAGS     struct hub_cfg_tags (a YAML mapping of strings; loader calls
 *                                 hub_cfg_tags_add for each pair)
 *   OBJECT   the child struct itself, embedded at offset (a nested mapping,
 *            e.g. hub.journal), walked against `child`
 *   LIST     struct hub_cfg_list: a YAML list of mappings, each walked against
 *            `child` into an element of elem_size bytes; at most max_count
 *            (e.g. a device's registers). The loader allocates the elements
 *            (exactly as many as listed); hub_cfg_free gives them back.
 *   SECTION  a LIST whose elements the caller walks itself (size 0: nothing
 *            stored), e.g. the top-level sections owned by drivers
 *
 * A STRING key may name a validate function: the one rule for that value
 * (e.g. an output's name, which names a file), applied by hub_cfg_set. */
#ifndef HUB_CONFIG_MAP_H
#define HUB_CONFIG_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hub_cfg_type {
    HUB_CFG_STRING = 1,
    HUB_CFG_INT,
    HUB_CFG_DOUBLE,
    HUB_CFG_BOOL,
    HUB_CFG_DURATION,
    HUB_CFG_SIZE,
    HUB_CFG_ENUM,
    HUB_CFG_TAGS,
    HUB_CFG_LIST,
    HUB_CFG_OBJECT,
    HUB_CFG_SECTION,
};

/* Storage of a LIST key. */
struct hub_cfg_list {
    void *items; /* n elements of the key's elem_size */
    size_t n;
};

struct hub_cfg_key {
    const char *name;
    enum hub_cfg_type type;
    const char *def;  /* default as text, applied by hub_cfg_defaults; NULL = none */
    bool required;    /* an error if absent */
    size_t offset;    /* offsetof the member */
    size_t size;      /* STRING: sizeof the char array */
    int64_t min, max; /* INT: inclusive bounds (both 0 = any) ; DURATION: min ns (max 0 = any) */
    bool zero_ok;     /* DURATION: 0 is allowed too, below min (it means something else) */
    const char *const *choices; /* ENUM */
    const char *help;
    /* OBJECT and LIST: */
    const struct hub_cfg_key *child; /* keys of the nested mapping / of each element */
    size_t elem_size;                /* LIST: sizeof one element */
    size_t max_count;                /* LIST: most elements (0: none allowed) */
    /* STRING: 0, or -1 with a message (naming the value, not the key) */
    int (*validate)(const char *text, char *err, size_t errlen);
};

#define HUB_CFG_TAGS_MAX 16
#define HUB_CFG_TAG_KEY_MAX 64
#define HUB_CFG_TAG_VALUE_MAX 128

struct hub_cfg_tag {
    char key[HUB_CFG_TAG_KEY_MAX];
    char value[HUB_CFG_TAG_VALUE_MAX];
};
/* A mapping of tags: n pairs in tag[0..n), allocated as they are added
 * (hub_cfg_tags_add), so that a thousand devices without tags cost nothing.
 * Freed by hub_cfg_free (loader-made) or hub_cfg_tags_free. A struct copy
 * shares the pairs: only the original is freed. */
struct hub_cfg_tags {
    size_t n;
    struct hub_cfg_tag *tag;
};

/* A key of the common kinds, in table order (designated, so that the later
 * members stay zero). */
#define HUB_CFG_KEY(n, t, d, req, off, sz, lo, hi, ch, h)                                          \
    {                                                                                              \
        .name = (n), .type = (t), .def = (d), .required = (req), .offset = (off), .size = (sz),    \
        .min = (lo), .max = (hi), .choices = (ch), .help = (h)                                     \
    }
#define HUB_CFG_END                                                                                \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* Parse a duration; returns 0 and ns, or -1 (empty, no unit, unknown unit,
 * negative, overflow). */
int hub_cfg_parse_duration(const char *s, int64_t *ns);
/* Parse a size; returns 0 and bytes, or -1. Units B, KiB, MiB, GiB, KB, MB,
 * GB, or none (bytes). */
int hub_cfg_parse_size(const char *s, uint64_t *bytes);

const struct hub_cfg_key *hub_cfg_find(const struct hub_cfg_key *table, const char *name);
/* Apply every default of a table (NULL-name terminated) to base. Returns 0. */
int hub_cfg_defaults(const struct hub_cfg_key *table, void *base);
/* Store text into base per k. Returns 0, or -1 with a message (without
 * location, e.g. "bad duration \"10x\" for interval: use 250ms, 10s, 5m") in err. */
int hub_cfg_set(const struct hub_cfg_key *k, void *base, const char *text, char *err,
                size_t errlen);
/* Free what the loader allocated under base (LIST elements, recursively,
 * and TAGS pairs).
 * The struct itself is the caller's. */
void hub_cfg_free(const struct hub_cfg_key *table, void *base);
/* 1 if a and b hold the same value for every key of table (LIST elements
 * and OBJECT members compared by their own tables, TAGS pair by pair, in
 * order), else 0. Members no key names are not compared. */
int hub_cfg_equal(const struct hub_cfg_key *table, const void *a, const void *b);
/* Elements of a LIST key's storage as a typed pointer: HUB_CFG_ITEM(&l, i, T). */
#define HUB_CFG_ITEM(list, i, T) (&((T *)(list)->items)[i])
/* Add one pair; -1 with a message if full, empty, too long, duplicate or
 * out of memory. */
int hub_cfg_tags_add(struct hub_cfg_tags *t, const char *key, const char *value, char *err,
                     size_t errlen);
void hub_cfg_tags_free(struct hub_cfg_tags *t);
/* What a key of k's type takes, for messages: "an integer", "a list"... */
const char *hub_cfg_expected(const struct hub_cfg_key *k);

#endif
