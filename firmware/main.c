/* firmware/main.c — the cityhub program's command line: subcommands, their
 * help, the version (with every driver's libraries), and the drivers'
 * process-wide set-up. The subcommands are run.c (the daemon),
 * inspect.c (check, journal), schema.c and deadletter.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/privilege.h"
#include "hub/log.h"

#ifndef CITYHUB_BOARD
#define CITYHUB_BOARD "unknown"
#endif

static size_t global_done; /* drivers whose global_init ran, in registry order */

int ch_drivers_global_init(void)
{
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (global_done = 0; global_done < n; global_done++) {
        const struct drv_ops *o = all[global_done];
        if (o->global_init && o->global_init() != 0) {
            hub_err("cityhub", "driver %s failed to initialise", o->name);
            ch_drivers_global_cleanup();
            return -1;
        }
    }
    return 0;
}

void ch_drivers_global_cleanup(void)
{
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    while (global_done > 0) {
        const struct drv_ops *o = all[--global_done];
        if (o->global_cleanup)
            o->global_cleanup();
    }
}

/* ---- CLI ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub COMMAND [OPTIONS]\n"
               "\n"
               "cityhub reads city sensors (Modbus TCP and RTU), keeps every reading in a\n"
               "crash-safe journal and forwards them to the operations center's store.\n"
               "\n"
               "commands:\n"
               "  run -c FILE       run the hub with the configuration FILE\n"
               "  check -c FILE     check FILE; print FILE:LINE:COL: message per error\n"
               "  journal -c FILE   show the journal (records, segments, cursors);\n"
               "                    --dump prints stored readings as line protocol\n"
               "  journal stat|verify|dump PATH   the journal directory's tools: its\n"
               "                    state and cursors, a CRC check of every record,\n"
               "                    readings as line protocol (cityhub journal --help)\n"
               "  schema -c FILE    the data dictionary: every measurement, field, type,\n"
               "                    unit and tag FILE makes the hub write (--format\n"
               "                    json|markdown)\n"
               "  deadletter list PATH\n"
               "                    what a store or an input refused, kept in the\n"
               "                    dead-letter file PATH; `deadletter retry PATH -c FILE`\n"
               "                    resends it once the cause is fixed\n");
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (size_t i = 0; i < n; i++)
        for (const struct drv_command *dc = all[i]->commands; dc && dc->name; dc++)
            fprintf(f, "  %-17s %s\n", dc->name, dc->summary);
    fprintf(f, "\n"
               "  cityhub COMMAND --help    help for one command\n"
               "  cityhub --version         version, board and library versions\n"
               "\n"
               "docs: /usr/share/doc/cityhub or docs/ in the source tree\n");
}

static void usage_run(FILE *f)
{
    fprintf(f, "usage: cityhub run -c FILE [--log-level LEVEL]\n"
               "\n"
               "Run the hub. Stops on SIGTERM or SIGINT: polling stops, pending readings are\n"
               "flushed to the outputs for up to 2 s, cursors are persisted, exit status 0.\n"
               "Readings not yet delivered stay in the journal and are sent after restart.\n"
               "\n"
               "  -c, --config FILE    configuration (YAML, see docs/configuration.md)\n"
               "  -l, --log-level L    error, warn, info or debug (overrides hub.log_level)\n"
               "      --debug WHO      debug lines of WHO only, whatever the level: a driver\n"
               "                       (modbus, mqtt, influxdb) or one instance (modbus:meter-1);\n"
               "                       may be given again\n"
               "  -u, --user NAME      started as root, run as NAME (instead of hub.user; root\n"
               "                       keeps root)\n"
               "\n"
               "A frame dump of one Modbus bus: `debug: frames` on that bus in FILE.\n"
               "Under systemd (Type=notify, WatchdogSec=) it reports readiness and a status\n"
               "line, and pings the watchdog only while every loop makes progress.\n"
               "\n"
               "exit status: 0 stopped by signal, 1 runtime failure, 2 bad configuration\n");
}

static void usage_check(FILE *f)
{
    fprintf(f, "usage: cityhub check -c FILE\n"
               "\n"
               "Check a configuration without starting anything. Every error is printed as\n"
               "FILE:LINE:COL: message.\n"
               "\n"
               "exit status: 0 valid, 2 invalid (or unreadable)\n");
}

static void usage_journal(FILE *f)
{
    fprintf(f, "usage: cityhub journal -c FILE [--dump [--from SEQ]]\n"
               "\n"
               "Inspect the journal named in FILE (read-only, safe while the hub runs).\n"
               "Without --dump: next_seq (readings ever accepted), stored records, segments,\n"
               "bytes, and each output's cursor and lag. With --dump: every stored reading as\n"
               "\"SEQ line-protocol\".\n"
               "\n"
               "usage: cityhub journal stat   (PATH | -c FILE) [--json]\n"
               "       cityhub journal verify (PATH | -c FILE) [--progress-mb N]\n"
               "       cityhub journal dump   (PATH | -c FILE) [--from SEQ] [--to SEQ]\n"
               "\n"
               "PATH is the journal directory. stat: segments, size against max_size (with\n"
               "-c), first and next seq, records stored, each cursor's lag and the age of its\n"
               "oldest unsent reading, files that are not segments, gaps. verify: the CRC of\n"
               "every record; each damaged range (segment, offset, bytes, records) and gap;\n"
               "exit 1 when damage is found. dump: readings SEQ..SEQ as line protocol, one\n"
               "line each. All read only, safe while the hub runs (journal stat --help).\n");
}

static void usage_schema(FILE *f)
{
    fprintf(f, "usage: cityhub schema -c FILE [--format json|markdown]\n"
               "\n"
               "Print the data dictionary of the gateway FILE configures: for every source\n"
               "(device, subscription), the measurement, each field with its type in the\n"
               "store and its unit, and the tags of its readings. Default format: markdown.\n");
}

static void usage_deadletter(FILE *f)
{
    fprintf(f, "usage: cityhub deadletter list PATH [--json] [--all]\n"
               "       cityhub deadletter retry PATH -c FILE [--output NAME] [--dry-run]\n"
               "\n"
               "A dead-letter file keeps what was refused, one JSON object per line: lines a\n"
               "store refused (an output's file, by default deadletter/NAME.jsonl beside the\n"
               "journal's directory) and messages an input could not read.\n"
               "\n"
               "list: one line per entry (time, source, seq or topic, payload bytes, reason)\n"
               "and a summary by reason. A line that is not an entry is reported as\n"
               "PATH:LINE: not a dead-letter entry (why).\n"
               "  --json       the entries as they are in the file, one JSON object a line\n"
               "  --all        PATH.1 (the older entries, rotated) first, then PATH\n"
               "\n"
               "retry: resend the lines of an output's entries to the output of that name in\n"
               "FILE, in batches. Lines the store accepts leave the file; lines it refuses\n"
               "again stay with the new reason. An unavailable store (connection, 5xx) or an\n"
               "alarm (401/403/404) stops the retry; what was not accepted stays. Messages\n"
               "an input refused cannot be resent: they are skipped, counted.\n"
               "  -c, --config FILE  the hub's configuration (the outputs)\n"
               "  --output NAME      send every entry to this output instead\n"
               "  --dry-run          print what would be sent; change nothing\n"
               "Safe while the hub runs: the file is rewritten under the lock the hub takes\n"
               "for each entry it adds.\n"
               "\n"
               "exit status: 0 done (list: every line an entry; retry: every entry that can\n"
               "be resent was accepted), 1 malformed lines, entries still refused or the\n"
               "retry stopped, 2 bad usage, configuration or file\n");
}

/* A driver's command: cityhub NAME ... (drivers/driver.h). */
static const struct drv_command *find_command(const char *name, const struct drv_ops **owner)
{
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (size_t i = 0; i < n; i++)
        for (const struct drv_command *dc = all[i]->commands; dc && dc->name; dc++)
            if (!strcmp(dc->name, name)) {
                *owner = all[i];
                return dc;
            }
    return NULL;
}

static void print_version(void)
{
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    printf("cityhub %s (board %s)\n", CITYHUB_VERSION, CITYHUB_BOARD);
    for (size_t i = 0; i < n; i++) {
        char v[256] = "";
        if (all[i]->version)
            all[i]->version(v, sizeof(v));
        printf("%s %s: %s%s%s\n", all[i]->kind == DRV_INPUT ? "input" : "output", all[i]->name,
               all[i]->help, v[0] ? "; " : "", v);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        print_version();
        return 0;
    }
    if (!strcmp(cmd, "deadletter"))
        return ch_cmd_deadletter(argc - 1, argv + 1, usage_deadletter);
    if (!strcmp(cmd, "journal") && argc > 2) {
        if (!strcmp(argv[2], "stat"))
            return ch_cmd_journal_stat(argc - 2, argv + 2);
        if (!strcmp(argv[2], "verify"))
            return ch_cmd_journal_verify(argc - 2, argv + 2);
        if (!strcmp(argv[2], "dump"))
            return ch_cmd_journal_dump(argc - 2, argv + 2);
    }
    void (*cmd_usage)(FILE *) = NULL;
    if (!strcmp(cmd, "run"))
        cmd_usage = usage_run;
    else if (!strcmp(cmd, "check"))
        cmd_usage = usage_check;
    else if (!strcmp(cmd, "journal"))
        cmd_usage = usage_journal;
    else if (!strcmp(cmd, "schema"))
        cmd_usage = usage_schema;
    else {
        const struct drv_ops *owner = NULL;
        const struct drv_command *dc = find_command(cmd, &owner);
        if (dc)
            return ch_cmd_driver(owner, dc, argc - 1, argv + 1);
        fprintf(stderr, "cityhub: unknown command \"%s\"\n\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
        {"debug-modbus", no_argument, NULL, 'd'}, {"dump", no_argument, NULL, 'D'},
        {"from", required_argument, NULL, 'f'},   {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},         {"debug", required_argument, NULL, 'g'},
        {"user", required_argument, NULL, 'u'},   {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *log_level = NULL;
    const char *format = NULL;
    int dump = 0, from_set = 0;
    uint64_t from = 0;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "c:l:dhu:", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            log_level = optarg;
            break;
        case 'd':
            fprintf(stderr, "cityhub: --debug-modbus is gone: set `debug: frames` on the bus in "
                            "the config\n");
            return EXIT_USAGE;
        case 'D':
            dump = 1;
            break;
        case 'g':
            if (strcmp(cmd, "run") != 0 || hub_log_debug_add(optarg) != 0) {
                fprintf(stderr, "cityhub %s: --debug is for run, at most 16 times\n", cmd);
                return EXIT_USAGE;
            }
            break;
        case 'F':
            format = optarg;
            break;
        case 'u': {
            char why[128];
            if (strcmp(cmd, "run") != 0) {
                fprintf(stderr, "cityhub %s: --user is for run\n", cmd);
                return EXIT_USAGE;
            }
            if (ch_priv_check_name(optarg, why, sizeof(why)) != 0) {
                fprintf(stderr, "cityhub run: --user %s\n", why);
                return EXIT_USAGE;
            }
            ch_priv_override_user(optarg);
            break;
        }
        case 'f': {
            char *end;
            errno = 0;
            from = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "cityhub: bad --from \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            from_set = 1;
            break;
        }
        case 'h':
            cmd_usage(stdout);
            return 0;
        default:
            cmd_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cityhub %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return EXIT_USAGE;
    }
    if (!config) {
        fprintf(stderr, "cityhub %s: -c FILE is required\n\n", cmd);
        cmd_usage(stderr);
        return EXIT_USAGE;
    }

    if (!strcmp(cmd, "check"))
        return ch_cmd_check(config);
    if (format && strcmp(cmd, "schema") != 0) {
        fprintf(stderr, "cityhub %s: --format is for schema\n", cmd);
        return EXIT_USAGE;
    }
    if (!strcmp(cmd, "schema"))
        return ch_cmd_schema(config, format ? format : "markdown");
    if (!strcmp(cmd, "journal"))
        return ch_cmd_journal(config, dump, (unsigned long long)from, from_set);
    return ch_cmd_run(config, log_level);
}
