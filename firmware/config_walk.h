/* firmware/config_walk.h — the loader's state and its helpers for walking
 * YAML nodes against key tables (config.c, config_walk.c). */
#ifndef CH_CONFIG_WALK_H
#define CH_CONFIG_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "firmware/config_priv.h"

#define CH_MAX_NODES                                                                               \
    4000000 /* nodes visited, aliases counted each time: alias bombs; 2,000 devices x 50 inline    \
               fields are 1.3 million */
#define CH_MAX_ERRORS 100              /* then one more line, and the walk stops */
#define CH_MAX_FILE (64 * 1024 * 1024) /* 2,000 devices x 50 inline fields: 12 MB */
#define CH_MAX_SECTION_KEYS 96         /* keys of the tables walked together */
#define CH_MSG_MAX 1024

/* One error, kept until the walk ends so that they can be printed in file
 * order. */
struct ch_err {
    size_t line, col; /* 0-based */
    unsigned seq;
    bool last; /* "too many errors": always printed last */
    char msg[CH_MSG_MAX];
};

/* A struct filled from one YAML mapping, so that a check's report about it
 * finds its position. A check's report is dropped when it follows from an
 * error already reported: the struct (or one it is in) was no mapping at
 * all (broken), or the key it names had an error of its own (bad_keys). */
#define PLACE_BAD_KEYS 8
struct place {
    const void *base;
    yaml_node_t *node;
    int parent; /* index of the enclosing element's place, or -1 */
    bool broken;
    unsigned errors; /* reported while walking it, of any kind */
    unsigned nbad;
    const char *bad_keys[PLACE_BAD_KEYS];
};

/* The names of one kind taken so far, with the line of each, so that a
 * duplicate can say where the first one was. */
struct name_set {
    const char **name;
    size_t *line;
    size_t n, cap;
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
    struct ch_err *errv; /* CH_MAX_ERRORS + 1 */
    struct place *places;
    size_t nplaces, places_cap;
};

/* One mapping walked against up to two key tables (a driver's and the
 * common one). */
struct section {
    const struct hub_cfg_key *tables[2];
    size_t ntables;
    void *base;
    const char *where; /* "in devices[2]", "at the top level" */
    /* Rules across this mapping's keys, run when its keys had no error. */
    void (*check)(struct loader *L, struct section *s);
    yaml_node_t *seen_key[CH_MAX_SECTION_KEYS];
    yaml_node_t *seen_val[CH_MAX_SECTION_KEYS];
};

void report_at(struct loader *L, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define report(L, n, ...) report_at((L), (n)->start_mark.line, (n)->start_mark.column, __VA_ARGS__)
void flush_errors(struct loader *L);
void report_yaml_error(struct loader *L, const yaml_parser_t *p);

yaml_node_t *get(struct loader *L, int idx);
size_t line_of(const yaml_node_t *n);
const char *text_of(const yaml_node_t *n);
const char *got(const yaml_node_t *n, char *buf, size_t len);
const char *scalar_for(struct loader *L, const char *keyname, const char *want, yaml_node_t *v);
bool expect_list(struct loader *L, const char *what, yaml_node_t *v);

void section_init(struct section *s, const struct hub_cfg_key *t0, const struct hub_cfg_key *t1,
                  void *base, const char *where);
int key_index(const struct section *s, const char *name);
const struct hub_cfg_key *key_at(const struct section *s, int idx);
yaml_node_t *seen(const struct section *s, const char *name);
void suggest(const struct section *s, const char *key, char *out, size_t len);
void walk_tags(struct loader *L, const struct hub_cfg_key *k, void *base, yaml_node_t *v);
/* Returns the place index of m, or -1 when m is not a mapping. */
int walk_section(struct loader *L, struct section *s, yaml_node_t *m, int parent);

/* Take name for a kind; on a duplicate report it (naming the first's line)
 * and return false. */
bool name_take(struct loader *L, struct name_set *set, yaml_node_t *node, const char *kind,
               const char *name);
void name_set_free(struct name_set *set);

/* Places (config_walk.c): add returns the index or -1; of finds the latest
 * for base; bad tells whether a check's report about (p, key) follows from
 * an error already reported; value_of is the value of key in mapping m. */
int place_add(struct loader *L, const void *base, yaml_node_t *node, int parent);
struct place *place_of(struct loader *L, const void *base);
void place_bad_key(struct loader *L, int me, const char *key);
bool place_bad(struct loader *L, const struct place *p, const char *key);
void place_broken(struct loader *L, const void *base, yaml_node_t *node, int parent);
yaml_node_t *value_of(struct loader *L, yaml_node_t *m, const char *key);

/* hub.journal: segment_size at most half of max_size. */
void check_journal(struct loader *L, struct section *s);
/* hub.status: a non-loopback listen needs password_file (or
 * allow_unauthenticated); the password file must be a readable file. */
void check_status(struct loader *L, struct section *s);

#endif
