/* drivers/modbus/cmd_profiles.c — `cityhub profiles [NAME]`: the Modbus
 * device profiles this program knows (built in, then the site directory),
 * or one profile's registers. Needs no configuration file. --format
 * markdown prints the tables docs/profiles/ is made of. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/modbus_priv.h"
#include "drivers/modbus/profile.h"
#include "hub/log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cityhub profiles [NAME] [--format text|markdown]\n"
            "\n"
            "Without NAME: every Modbus device profile this gateway knows, those built into\n"
            "the program and those of the site directory ($%s if set, else %s),\n"
            "with vendor, model, number of fields and description. A site profile replaces\n"
            "the built-in one of the same name. With NAME: the profile's registers (field,\n"
            "table, address, type, byte order, scale, unit, type in the store).\n"
            "\n"
            "A device uses one with `profile: NAME` in the configuration; its own\n"
            "`registers` replace the profile's of the same field and add others.\n"
            "A profile with errors is listed with them, as FILE:LINE:COL: message.\n"
            "\n"
            "exit status: 0, 1 a profile shown has errors, 2 bad usage or unknown NAME\n",
            DRV_MB_PROFILE_ENV, DRV_MB_PROFILE_DIR);
}

static void print_errors(const struct drv_mb_profile *p)
{
    if (p->nerrors)
        fprintf(stderr, "%s", p->errors ? p->errors : "out of memory\n");
}

static const char *or_dash(const char *s)
{
    return s && s[0] ? s : "-";
}

/* "Eastron SDM120-Modbus" */
static void vendor_model(const struct drv_mb_profile *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", p->vendor, p->vendor[0] && p->model[0] ? " " : "", p->model);
    if (!buf[0])
        snprintf(buf, len, "-");
}

static int list(const struct drv_mb_profiles *lib, int md)
{
    char vm[160];
    int rc = 0;
    if (md)
        printf("| profile | vendor | model | measurement | fields | description |\n"
               "|---|---|---|---|---|---|\n");
    else
        printf("%-24s %-34s %6s  %s\n", "NAME", "VENDOR MODEL", "FIELDS", "DESCRIPTION");
    for (size_t i = 0; i < lib->n; i++) {
        const struct drv_mb_profile *p = &lib->p[i];
        vendor_model(p, vm, sizeof(vm));
        if (md)
            printf("| [`%s`](profiles/%s.md) | %s | %s | `%s` | %zu | %s |\n", p->name, p->name,
                   or_dash(p->vendor), or_dash(p->model),
                   p->measurement[0] ? p->measurement : "modbus", p->nregs,
                   p->nerrors ? "(has errors)" : p->description);
        else if (p->nerrors)
            printf("%-24s %-34s %6s  has %u error%s (below)\n", p->name, "-", "-", p->nerrors,
                   p->nerrors == 1 ? "" : "s");
        else
            printf("%-24s %-34s %6zu  %s\n", p->name, vm, p->nregs, p->description);
        if (p->nerrors)
            rc = 1;
    }
    if (md)
        return rc;
    if (lib->dir[0] && lib->dir_found)
        printf("\nsite profiles: %s\n", lib->dir);
    else if (lib->dir[0] && lib->dir_error[0])
        printf("\nsite profiles: %s (%s)\n", lib->dir, lib->dir_error);
    else if (lib->dir[0])
        printf("\nsite profiles: %s (none: the directory does not exist)\n", lib->dir);
    for (size_t i = 0; i < lib->n; i++)
        if (lib->p[i].site)
            printf("  %s: %s%s\n", lib->p[i].name, lib->p[i].file,
                   lib->p[i].replaces ? " (replaces the built-in profile of that name)" : "");
    if (lib->dir_found && lib->dir_error[0])
        printf("  %s\n", lib->dir_error);
    for (size_t i = 0; i < lib->n; i++)
        print_errors(&lib->p[i]);
    return rc;
}

static void address_name(int64_t a, char *buf, size_t len)
{
    snprintf(buf, len, "%lld (0x%04llX)", (long long)a, (unsigned long long)a);
}

static int show(const struct drv_mb_profile *p, int md)
{
    char vm[160], addr[32], scale[32];
    if (p->nerrors) {
        fprintf(stderr, "cityhub profiles: profile \"%s\" (%s) has errors:\n", p->name, p->file);
        print_errors(p);
        return 1;
    }
    vendor_model(p, vm, sizeof(vm));
    if (!md) {
        printf("profile %s: %s\n", p->name, p->description);
        printf("vendor, model: %s\n", vm);
        printf("measurement:   %s\n", p->measurement[0] ? p->measurement : "(none: modbus)");
        if (p->max_gap >= 0)
            printf("max_gap:       %lld\n", (long long)p->max_gap);
        if (p->max_registers >= 1)
            printf("max_registers: %lld\n", (long long)p->max_registers);
        printf("from:          %s%s\n", p->site ? "site file " : "built in, ", p->file);
        printf("\n%-24s %-8s %-14s %-8s %-5s %-8s %-7s %s\n", "FIELD", "TABLE", "ADDRESS", "TYPE",
               "ORDER", "SCALE", "UNIT", "STORED AS");
    } else {
        printf("| field | table | address | type | order | scale | unit | stored as | "
               "description |\n|---|---|---|---|---|---|---|---|---|\n");
    }
    for (size_t i = 0; i < p->nregs; i++) {
        const struct drv_modbus_register *r = &p->regs[i];
        address_name(r->address, addr, sizeof(addr));
        snprintf(scale, sizeof(scale), "%g", r->scale);
        if (md)
            printf("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", r->field,
                   drv_mb_choice("table", r->table), addr, drv_mb_choice("type", r->type),
                   drv_mb_choice("order", r->order), scale, or_dash(r->unit), drv_mb_store_type(r),
                   r->description);
        else
            printf("%-24s %-8s %-14s %-8s %-5s %-8s %-7s %s\n", r->field,
                   drv_mb_choice("table", r->table), addr, drv_mb_choice("type", r->type),
                   drv_mb_choice("order", r->order), scale, or_dash(r->unit), drv_mb_store_type(r));
    }
    return 0;
}

int drv_modbus_cmd_profiles(int argc, char **argv, const struct drv_cmd_env *env)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int md = 0, ch;
    (void)env; /* no configuration */
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'F':
            if (!strcmp(optarg, "markdown"))
                md = 1;
            else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "cityhub profiles: unknown --format \"%s\" (text or markdown)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "cityhub profiles: bad option \"%s\"\n\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "cityhub profiles: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    hub_log_set_level(HUB_LOG_WARN); /* the list says what the load would log */
    const struct drv_mb_profiles *lib = drv_mb_profiles();
    if (optind == argc)
        return list(lib, md);
    const struct drv_mb_profile *p = drv_mb_profile_find(lib, argv[optind]);
    if (!p) {
        char names[1024];
        drv_mb_profile_names(lib, names, sizeof(names));
        fprintf(stderr, "cityhub profiles: unknown profile \"%s\" (available: %s)\n", argv[optind],
                names);
        return 2;
    }
    return show(p, md);
}
