/* drivers/modbus/profile.h — the Modbus device profile library
 * (profile.c), the `cityhub profiles` command (cmd_profiles.c) and the
 * driver's data dictionary (schema.c).
 *
 * A profile is a YAML file NAME.yaml: name (= NAME), description, vendor,
 * model, measurement, max_gap, max_registers and registers, a list read
 * against the same key table as a device's registers in the config
 * (drv_modbus_register_keys), so that a register means the same in both.
 *
 * The library is the profiles built into the program (drivers/modbus/
 * profiles/NAME.yaml, embedded at build time), then those of the site
 * directory: $CITYHUB_PROFILES if set, else DRV_MB_PROFILE_DIR. A site
 * profile replaces a built-in one of the same name. A profile with errors
 * stays in the library, with its errors ("FILE:LINE:COL: message" lines),
 * so that a device naming it and `cityhub profiles` say what is wrong.
 *
 * The process's library is loaded once, at its first use, and never
 * changes afterwards: safe from any thread. */
#ifndef DRV_MODBUS_PROFILE_H
#define DRV_MODBUS_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "drivers/modbus/modbus_drv.h"

#define DRV_MB_PROFILE_DIR "/etc/cityhub/profiles"
#define DRV_MB_PROFILE_ENV "CITYHUB_PROFILES"
#define DRV_MB_PROFILE_MAX_FILE (1024 * 1024) /* bytes of one profile file */
#define DRV_MB_PROFILE_MAX_SITE 1024          /* files read from the site directory */
#define DRV_MB_PROFILE_MAX_ERRORS 20          /* kept per profile */

/* One profile file built into the program (the generated
 * $(O)/gen/modbus_profiles.c): its name and its text. */
struct drv_mb_embedded_profile {
    const char *file; /* e.g. "drivers/modbus/profiles/eastron-sdm120.yaml" */
    const char *text;
};

struct drv_mb_profile {
    char name[64]; /* the file's name without .yaml; the key `name` must say the same */
    char description[256];
    char vendor[64];
    char model[64];
    char measurement[64];  /* "" = none: the device's, else "modbus" */
    int64_t max_gap;       /* -1 = not set */
    int64_t max_registers; /* -1 = not set */
    union {                /* key registers, as the loader fills it */
        struct hub_cfg_list registers;
        struct {
            struct drv_modbus_register *regs;
            size_t nregs;
        };
    };
    char file[512]; /* where it was read from */
    int site;       /* 1: from the site directory, 0: built in */
    int replaces;   /* site: 1 if it replaced the built-in profile of its name */
    unsigned nerrors;
    char *errors; /* nerrors lines "FILE:LINE:COL: message\n", or NULL */
};

struct drv_mb_profiles {
    struct drv_mb_profile *p; /* by name */
    size_t n;
    char dir[512]; /* the site directory looked at ("" if none) */
    int dir_found; /* 1 if it could be opened */
    char dir_error[256];
};

/* The process's library: built-in profiles plus the site directory, loaded
 * at the first call (never NULL; empty if out of memory). */
const struct drv_mb_profiles *drv_mb_profiles(void);

/* A library of its own: the built-in profiles plus those of site_dir (NULL:
 * none). Returns NULL only when out of memory. For tests and tools. */
struct drv_mb_profiles *drv_mb_profiles_load(const char *site_dir);
void drv_mb_profiles_free(struct drv_mb_profiles *lib);

/* The profile of that name, or NULL. */
const struct drv_mb_profile *drv_mb_profile_find(const struct drv_mb_profiles *lib,
                                                 const char *name);
/* "a, b, c": every profile's name, for messages. */
void drv_mb_profile_names(const struct drv_mb_profiles *lib, char *buf, size_t len);

/* Read one profile from text (file names it in messages; the profile's name
 * is file's base name without .yaml). Returns 0, or -1 with p->errors set
 * (p is always filled as far as it could be read; drv_mb_profile_clear
 * frees it). */
int drv_mb_profile_parse(const char *file, const char *text, size_t len, struct drv_mb_profile *p);
void drv_mb_profile_clear(struct drv_mb_profile *p);

/* drv_modbus_device_resolve against lib. origin, if not NULL, gets for each
 * register of out the index of the device's own register it is, or
 * SIZE_MAX for a register of the profile. */
int drv_mb_device_resolve_in(const struct drv_mb_profiles *lib, const struct drv_modbus_device *in,
                             struct drv_modbus_device *out, size_t *origin, char *err,
                             size_t errlen);

/* Checking a device that names a profile (keys.c): the device as resolved
 * is checked by the same rules as any device, through this drv_check,
 * which reports each problem against the device's own register or key at
 * fault, or at its key "profile" for a register that comes from the
 * profile. begin returns 0, or -1 with the resolve's message in err. */
struct drv_mb_profile_check {
    struct drv_check ck; /* pass &ck to the rules */
    struct drv_check *real;
    const struct drv_modbus_device *orig;
    struct drv_modbus_device res; /* its profile[] cleared */
    size_t origin[DRV_MB_MAX_REGISTERS];
};
int drv_mb_profile_check_begin(struct drv_mb_profile_check *pc, const struct drv_modbus_device *d,
                               struct drv_check *real, char *err, size_t errlen);
void drv_mb_profile_check_end(struct drv_mb_profile_check *pc);

/* The type of a register's field in the store: "float", "integer",
 * "unsigned", "boolean" or "string" (enum drv_modbus_store). */
const char *drv_mb_store_type(const struct drv_modbus_register *reg);
/* The name of a register's table, type or order as written in the config. */
const char *drv_mb_choice(const char *key, int value);

/* drv_modbus_ops.schema (schema.c) and the command `cityhub profiles`
 * (cmd_profiles.c). */
void drv_modbus_schema(const void *cfg, drv_schema_fn emit, void *arg);
int drv_modbus_cmd_profiles(int argc, char **argv, const struct drv_cmd_env *env);

#endif
