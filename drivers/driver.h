/* drivers/driver.h — the one contract between the program and a protocol
 * adapter, inputs and outputs alike.
 *
 * A driver is a const descriptor (struct drv_ops) plus an opaque context per
 * instance, after libmodbus's backends and Fluent Bit's plugins. The program
 * (firmware/) knows drivers only through this header and the registry
 * (drivers/registry.c): it reads the configuration against the descriptors'
 * key tables, calls check, then drives the life cycle
 *
 *     global_init → init → run (inputs, one thread per runner) / the hub's
 *     delivery loop calling flush (outputs) → stop / cancel → exit →
 *     global_cleanup
 *
 * Configuration as data. An input driver owns top-level sections of the
 * file (`sections`: the Modbus driver owns `buses` and `devices`), each a
 * list of mappings read against the section's config_map into elements of
 * config_size bytes. An output driver is chosen by the `type` key of an
 * element of `outputs`; its config_map adds to the keys every output has
 * (struct drv_output_common). Nested lists (a device's registers) and
 * mappings are keys of type HUB_CFG_LIST / HUB_CFG_OBJECT with a child
 * table (hub/config_map.h), so the loader knows them without code. Rules
 * that span keys or elements are the driver's `check`, which reports each
 * problem against the element and key at fault; the loader prints it as
 * FILE:LINE:COL. `cityhub check` and `cityhub run` run the same checks.
 *
 * Adding a protocol: a folder under drivers/ with its descriptor, and one
 * line in drivers/registry.c. Nothing in firmware/ or hub/ changes. */
#ifndef DRV_DRIVER_H
#define DRV_DRIVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/beat.h"
#include "hub/buf.h"
#include "hub/config_map.h"
#include "hub/metrics.h"
#include "hub/output.h"
#include "hub/reading.h"

#define DRV_NAME_MAX 64
#define DRV_MAX_SECTIONS 4
/* Thread stack of a runner or delivery loop when the driver names none. */
#define DRV_STACK_DEFAULT ((size_t)256 << 10)

enum drv_kind { DRV_INPUT = 1, DRV_OUTPUT = 2 };

/* Where an input puts its readings. emit takes ownership of r (it frees it),
 * adds the gateway-wide tags and appends it to the journal. It returns
 * HUB_OK once the reading is accepted, or the error that refused it (the
 * reading is then counted as refused: never silently lost). Safe from any
 * thread. */
struct drv_sink {
    int (*emit)(void *ctx, hub_reading_t *r);
    void *ctx;
};

/* What the program gives a driver's init. */
struct drv_env {
    const struct drv_sink *sink; /* inputs: where readings go */
    hub_metrics_t *metrics;      /* register counters here (may be NULL) */
    int64_t status_interval_ns;  /* hub.status_interval: how often status points are written */
    const char *gateway;         /* hub.name: the tag "gateway" of every reading */
    const struct hub_cfg_tags *hub_tags; /* hub.tags, added to every reading (may be NULL) */
    /* The unit of a field, from the data dictionary of every configured
     * input (their schema): NULL when none is known. May be NULL itself.
     * For outputs that show units (the live MQTT feed). */
    const char *(*unit_of)(const struct drv_env *env, const char *measurement, const char *field);
    void *units; /* the program's, for unit_of */
    /* The watchdog's heartbeats (hub/beat.h), NULL when there is none. The
     * program watches the threads it starts (runners, delivery loops); a
     * thread a driver starts itself registers here and beats. */
    hub_beats_t *beats;
};

/* One top-level section an input driver owns: a list of mappings. */
struct drv_section {
    const char *key;                      /* e.g. "buses" */
    const char *item;                     /* one element, in messages: "bus" */
    const struct hub_cfg_key *config_map; /* keys of one element */
    size_t config_size;                   /* sizeof one element */
    size_t max_count;                     /* most elements (a limit error names it) */
    const char *help;
};

/* The sections of one input driver as read: sect[i] holds the elements of
 * the driver's sections[i] (n = 0 when the file has no such section). */
struct drv_config {
    struct hub_cfg_list sect[DRV_MAX_SECTIONS];
};

/* Where check reports. `where` is an element, or any struct the loader
 * filled from one mapping (a register of a device); key, if not NULL, the
 * key at fault in it (its value's position is used, or the mapping's when
 * the key is absent). */
struct drv_check {
    void (*report)(struct drv_check *ck, const void *where, const char *key, const char *msg);
    /* 1 if the mapping that filled where has key (even empty), else 0 */
    int (*given)(struct drv_check *ck, const void *where, const char *key);
    void *loader;                        /* the loader's own */
    const struct hub_cfg_tags *hub_tags; /* hub.tags, for tag-count rules */
    unsigned errors;                     /* counted by drv_check_error */
};

/* Report one problem: "FILE:LINE:COL: message" once printed. */
void drv_check_error(struct drv_check *ck, const void *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Common head of every output's config struct: the loader fills these from
 * the keys every output has (name, type, batch_size, flush_interval,
 * max_batch_bytes). */
struct drv_output_common {
    char name[DRV_NAME_MAX]; /* the cursor's name too: hub_journal_check_name */
    char type[32];
    int64_t batch_size;
    int64_t flush_interval_ns;
    uint64_t max_batch_bytes; /* largest request body the output builds */
    /* Where readings the server refuses go: a file of JSON lines (see
     * hub/deadletter.h); "" = DIR/deadletter/NAME.jsonl beside the journal's
     * directory. */
    char dead_letter[256];
    uint64_t dead_letter_max;
    int64_t alarm_retry_ns; /* after 401/403/404, how long before trying again */
};

/* The keys of struct drv_output_common (name, type, batch_size,
 * flush_interval, max_batch_bytes, dead_letter, dead_letter_max, alarm_retry). An output's name is
 * its cursor's name: it is validated by hub_journal_check_name, so check and run agree. */
extern const struct hub_cfg_key drv_output_common_keys[];

/* A driver instance's health at a glance, for health points and status. */
struct drv_stats {
    uint64_t sources; /* devices polled, subscriptions held; outputs: 1 */
    uint64_t failing; /* of them, failing now */
};

/* One source of an input as the status server shows it (/health): a
 * device polled, a subscription held. Strings are valid during the
 * callback only; a field that does not apply is 0 / "" / -1 as noted. */
struct drv_source {
    const char *kind;       /* "device", "subscription" */
    const char *name;       /* the device's name; "INPUT:FILTER" for a subscription */
    const char *group;      /* its bus, or its input */
    int ok;                 /* 1 working now, 0 failing */
    int64_t last_ok_ns;     /* wall clock of the last success (poll, message), 0 = never */
    int64_t last_error_ns;  /* wall clock of the last failure, 0 = never */
    const char *last_error; /* its message, "" = none */
    uint64_t failures;      /* consecutive failures now */
    int64_t skew_ns;        /* how late the last poll started after its due time, -1 = n/a */
    int64_t interval_ns;    /* polling interval, 0 = n/a */
    uint64_t messages;      /* subscriptions: received */
    uint64_t rejected;      /* subscriptions: rejected */
    int connected;          /* subscriptions: 1/0; -1 = n/a */
};
typedef void (*drv_source_fn)(void *arg, const struct drv_source *s);

/* ---- commands a driver adds to the program --------------------------------- */

/* What the program hands a driver's command. */
struct drv_cmd_env {
    const struct drv_ops *self;
    /* Load and check the configuration FILE (as `cityhub check` does, every
     * error printed to stderr as FILE:LINE:COL: message) and return this
     * driver's part of it: an input's struct drv_config. NULL when the file
     * is invalid or unreadable. Valid until the command returns; call once. */
    const void *(*load)(const struct drv_cmd_env *env, const char *path);
    void *priv; /* the program's */
};

/* A subcommand of `cityhub` that belongs to a driver (`cityhub scan` for
 * commissioning Modbus devices). run gets the command line from the command
 * name on (argv[0] is the name) and returns the process's exit status: 0
 * done, 1 failed, 2 (EXIT_USAGE) bad usage or configuration. */
struct drv_command {
    const char *name;
    const char *summary; /* one line for `cityhub --help`, e.g. "scan -c ... find units" */
    int (*run)(int argc, char **argv, const struct drv_cmd_env *env);
};

/* One entry of the data dictionary: a field a configured source writes. */
struct drv_schema_field {
    const char *source;      /* who writes it, e.g. the device's name */
    const char *measurement; /* of the reading */
    const char *field;
    const char *type;        /* as stored: "float", "integer", "unsigned", "boolean", "string" */
    const char *unit;        /* UCUM/SenML unit, or "" */
    const char *description; /* or "" */
    const char *const *tags; /* tag keys of the source's readings (NULL-terminated), beyond
                                those of the hub */
};
typedef void (*drv_schema_fn)(void *arg, const struct drv_schema_field *f);

struct drv_ops {
    /* Inputs: the driver's name ("modbus"), in log lines and messages.
     * Outputs: the value of `type` that selects it ("influxdb"). */
    const char *name;
    enum drv_kind kind;
    const char *help; /* one line, for messages and docs */
    /* Stack of each thread that runs the driver (an input's runner, an
     * output's delivery loop); 0 = DRV_STACK_DEFAULT. */
    size_t stack_size;

    /* Once per process, before any instance and any thread, and after the
     * last exit. Both may be NULL. global_init returns 0 or -1. */
    int (*global_init)(void);
    void (*global_cleanup)(void);
    /* The libraries the driver runs on, for `cityhub --version`
     * ("libmodbus 3.1.6"). May be NULL. */
    void (*version)(char *buf, size_t len);

    /* Configuration. Inputs: the sections they own, ended by {NULL}.
     * Outputs: their keys beyond the common ones, and their config struct's
     * size (it starts with struct drv_output_common). */
    const struct drv_section *sections;
    const struct hub_cfg_key *config_map;
    size_t config_size;
    /* Rules that span keys or elements, run once the whole file is read
     * and every key is valid on its own. cfg: inputs a struct drv_config,
     * outputs the output's config struct. Reports through ck. May be NULL. */
    void (*check)(const void *cfg, struct drv_check *ck);

    /* init: cfg as for check (and checked). Returns 0 with *ctx, or -1 with
     * a message in err. The config stays valid until exit. */
    int (*init)(const void *cfg, const struct drv_env *env, void **ctx, char *err, size_t errlen);

    /* Inputs. runners: how many threads the program starts (e.g. one per
     * bus); each calls run(ctx, i) for i in 0..runners-1 until stop. stop
     * comes from another thread: every run returns soon (within one request
     * timeout). */
    size_t (*runners)(void *ctx);
    void (*run)(void *ctx, size_t runner);
    void (*stop)(void *ctx);

    /* Outputs. flush: one batch, answered ok / retry / reject
     * (hub/output.h). cancel (may be NULL): from another thread at shutdown,
     * make a flush in progress give up soon (RETRY) and every later one at
     * once. format (may be NULL): one reading as the output writes it, for
     * `cityhub journal --dump`; returns HUB_OK or an error. */
    hub_out_flush_fn flush;
    /* async (may be NULL): the same requests in two steps, encode then send
     * (hub/output.h), so that the hub encodes the next batch while one is
     * on its way; flush must still work (it is prepare, start, finish). */
    const struct hub_out_async *async;
    void (*cancel)(void *ctx);
    int (*format)(const hub_reading_t *r, struct hub_buf *out);
    /* send_raw (may be NULL): send data already in the output's own format
     * (lines format wrote, as kept in a dead-letter file) as one request,
     * answered as flush. For `cityhub deadletter retry`. */
    enum hub_out_result (*send_raw)(void *ctx, const void *data, size_t len,
                                    struct hub_out_answer *ans);

    /* Subcommands (ended by {NULL}); may be NULL. */
    const struct drv_command *commands;
    /* The data dictionary of an input: every field its configured sources
     * write, one call of emit each. cfg as for check. May be NULL. */
    void (*schema)(const void *cfg, drv_schema_fn emit, void *arg);

    /* Health at a glance; may be NULL. Safe from any thread while running. */
    void (*stats)(void *ctx, struct drv_stats *st);
    /* Inputs: each source's state, one call of fn each, in config order;
     * may be NULL. Safe from any thread while running (between init and
     * exit), quick (no I/O). */
    void (*sources)(void *ctx, drv_source_fn fn, void *arg);
    void (*exit)(void *ctx);
};

/* ---- the registry (drivers/registry.c) ---------------------------------- */

/* Every driver in this build, in registry order; *n gets the count. */
const struct drv_ops *const *drv_all(size_t *n);
/* The driver of that kind and name, or NULL. */
const struct drv_ops *drv_find(enum drv_kind kind, const char *name);
/* "a, b, c": the names of the drivers of a kind, for messages. */
void drv_names(enum drv_kind kind, char *buf, size_t len);

#endif
