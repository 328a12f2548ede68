/* drivers/modbus/cmd_scan.c — `cityhub scan`: which unit ids answer on a
 * serial line (for each baud rate and parity asked) or behind a Modbus TCP
 * gateway, and what each one says it is (Read Device Identification).
 *
 * A unit is found when anything comes back to a read of holding register 0
 * (count 1): the value, or an exception — a device that says "illegal data
 * address" or "illegal function" is there all the same. Silence (a timeout)
 * means no unit. Exceptions 10 (gateway path unavailable) and 11 (gateway
 * target failed to respond) are a TCP gateway saying that nothing answers
 * behind it for that id: not found either. A reply that does not check out
 * (bad CRC, wrong length: often a wrong baud rate or parity, or noise) is
 * reported apart, not as found. The time is bounded: each unit costs at
 * most one timeout (plus, over RTU, the silence between frames), and each
 * unit found one more timeout for its identification; the worst case is
 * printed before the scan starts. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/modbus/cmd_common.h"
#include "hub/clock.h"

#define CMD "scan"
#define MS 1000000LL
#define PROGRESS_EVERY_NS (2000LL * MS) /* stderr not a tty: a line this often */

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub scan --rtu DEVICE [--baud 9600,19200,...] [--parity N,E,O]\n"
               "                    [--data-bits 8] [--stop-bits 1] [--units 1-247]\n"
               "                    [--timeout 200ms]\n"
               "       cityhub scan --tcp HOST[:PORT] [--units 0-247] [--timeout 200ms]\n"
               "\n"
               "Find the Modbus unit ids that answer on a serial line (for every combination\n"
               "of the baud rates and parities given) or behind a Modbus TCP gateway, and ask\n"
               "each unit found for its identification (function 0x2B / MEI 0x0E: vendor,\n"
               "product code, revision). Needs no configuration file.\n"
               "\n"
               "A unit is found when it answers a read of holding register 0: with the value\n"
               "or with an exception (it is there, it just has no such register). No answer\n"
               "within the timeout: no unit. A gateway's exception 10 or 11 (no path, target\n"
               "failed to respond) means no unit behind it: not found. Replies that do not\n"
               "check out (bad CRC, wrong length) are listed apart: try another setting.\n"
               "\n"
               "  --rtu DEVICE        serial device, e.g. /dev/ttyUSB0\n"
               "  --baud LIST         baud rates to try, e.g. 9600,19200 (default 9600)\n"
               "  --parity LIST       parities to try: N, E, O, e.g. N,E (default N)\n"
               "  --data-bits N       8 (default) or 7\n"
               "  --stop-bits N       1 (default) or 2\n"
               "  --tcp HOST[:PORT]   Modbus TCP gateway or device (port 502 by default;\n"
               "                      IPv6 as [::1]:502)\n"
               "  --units LIST        unit ids to try, e.g. 1-247 or 1,2,5-7 (default 1-247\n"
               "                      on a serial line, where 0 is the broadcast address and\n"
               "                      never answers; 0-247 over TCP)\n"
               "  --timeout T         how long to wait for each answer (default 200ms)\n"
               "\n"
               "The worst case (settings x units x timeout) is printed before the scan\n"
               "starts; progress goes to stderr, the result to stdout: one line per unit\n"
               "found with its setting, then its identification. Ctrl-C stops the scan and\n"
               "prints what was found so far.\n"
               "\n"
               "exit status: 0 a unit was found, 1 none (or the line failed), 2 bad usage\n");
}

struct hit {
    uint8_t unit;
    size_t baud_i, parity_i;
    char probe[200];  /* what the probe got */
    char ident[1000]; /* the identification line */
};

struct scan {
    struct cmd_line line;
    unsigned char units[CMD_MAX_UNIT + 1];
    size_t nunits;
    struct hit *hits;
    size_t nhits, cap;
    size_t gateway_absent; /* exceptions 10/11 */
    char garbled[2048];    /* "unit 5 at 19200 8N1: bad CRC; ..." */
    size_t ngarbled;
    int tty;
    int64_t last_progress;
    int progress_shown;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void progress_clear(struct scan *s)
{
    if (s->tty && s->progress_shown) {
        fprintf(stderr, "\r\033[K");
        s->progress_shown = 0;
    }
}

static void progress(struct scan *s, const char *setting, int unit, size_t pos, size_t found,
                     int force)
{
    int64_t now = hub_mono_ns();
    if (s->tty) {
        fprintf(stderr, "\r\033[Kscanning %s: unit %d (%zu/%zu), %zu found", setting, unit, pos,
                s->nunits, found);
        s->progress_shown = 1;
    } else if (force || now - s->last_progress >= PROGRESS_EVERY_NS) {
        fprintf(stderr, "scanning %s: unit %d (%zu/%zu), %zu found\n", setting, unit, pos,
                s->nunits, found);
        s->last_progress = now;
    } else {
        return;
    }
    fflush(stderr);
}

static struct hit *add_hit(struct scan *s)
{
    if (s->nhits == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct hit *h = realloc(s->hits, cap * sizeof(*h));
        if (!h)
            return NULL;
        s->hits = h;
        s->cap = cap;
    }
    struct hit *h = &s->hits[s->nhits++];
    memset(h, 0, sizeof(*h));
    return h;
}

static void describe_ident(struct cmd_conn *c, uint8_t unit, char *out, size_t len)
{
    struct cmd_ident id;
    int exc = 0;
    char msg[200];
    int kind = cmd_identify(c, unit, &id, &exc, msg, sizeof(msg));
    if (kind == DRV_MB_FAIL_EXCEPTION && exc == 1) {
        snprintf(out, len, "identification: not supported");
        return;
    }
    if (kind == DRV_MB_FAIL_TIMEOUT) {
        snprintf(out, len, "identification: no answer (timeout)");
        return;
    }
    if (kind != 0) {
        snprintf(out, len, "identification: %s", msg);
        return;
    }
    static const char *const names[CMD_IDENT_MAX] = {"vendor", "product", "revision"};
    size_t off = (size_t)snprintf(out, len, "identification:");
    int any = 0;
    for (int i = 0; i < CMD_IDENT_MAX && off < len; i++) {
        if (!id.have[i])
            continue;
        off += (size_t)snprintf(out + off, len - off, "%s %s \"%s\"", any ? "," : "", names[i],
                                id.value[i]);
        any = 1;
    }
    if (!any)
        snprintf(out + off, len - off, " answered, but with none of vendor, product, revision");
}

/* Probe one unit. Returns 1 found, 0 not, -1 the line is gone (msg). */
static int probe(struct scan *s, struct cmd_conn *c, uint8_t unit, size_t bi, size_t pi, char *msg,
                 size_t msglen)
{
    struct drv_mb_req q;
    struct drv_mb_reply rep;
    uint8_t buf[DRV_MB_ADU_MAX];
    drv_mb_req_read(&q, c->rtu, 0, unit, DRV_MB_HOLDING, 0, 1);
    int kind = cmd_transact(c, &q, buf, &rep, msg, msglen);
    if (kind == DRV_MB_FAIL_CONNECTION && !c->rtu) /* reconnected: once more */
        kind = cmd_transact(c, &q, buf, &rep, msg, msglen);
    if (kind == DRV_MB_FAIL_CONNECTION)
        return -1;
    if (kind == DRV_MB_FAIL_TIMEOUT)
        return 0;
    if (kind == DRV_MB_FAIL_EXCEPTION && (rep.exception == 10 || rep.exception == 11)) {
        s->gateway_absent++;
        return 0;
    }
    if (kind == DRV_MB_FAIL_BAD_REPLY) {
        char set[32] = "";
        if (c->rtu)
            cmd_setting_name(&s->line, bi, pi, set, sizeof(set));
        size_t off = strlen(s->garbled);
        if (off < sizeof(s->garbled))
            snprintf(s->garbled + off, sizeof(s->garbled) - off, "%sunit %u%s%s: %s",
                     off ? "\n  " : "  ", unit, c->rtu ? " at " : "", set, msg);
        s->ngarbled++;
        return 0;
    }
    struct hit *h = add_hit(s);
    if (!h) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    h->unit = unit;
    h->baud_i = bi;
    h->parity_i = pi;
    if (kind == 0) {
        uint16_t v = (uint16_t)(rep.data[0] << 8 | rep.data[1]);
        snprintf(h->probe, sizeof(h->probe), "answers (holding 0 = 0x%04X = %u)", v, v);
    } else {
        snprintf(h->probe, sizeof(h->probe),
                 "answers with exception %d (%s) to a read of "
                 "holding 0",
                 rep.exception, drv_modbus_exception_name(rep.exception));
    }
    describe_ident(c, unit, h->ident, sizeof(h->ident));
    return 1;
}

static void print_hit(const struct scan *s, const struct hit *h)
{
    if (s->line.rtu) {
        char set[32];
        cmd_setting_name(&s->line, h->baud_i, h->parity_i, set, sizeof(set));
        printf("unit %u at %s: %s\n", h->unit, set, h->probe);
    } else {
        printf("unit %u: %s\n", h->unit, h->probe);
    }
    printf("  %s\n", h->ident);
}

/* started: settings scanned (the last one perhaps in part, when stopped);
 * done: those scanned to the end. */
static void print_summary(const struct scan *s, size_t started, size_t done, int stopped,
                          const char *why)
{
    const struct cmd_line *l = &s->line;
    unsigned char all[CMD_MAX_UNIT + 1] = {0};
    size_t nall = 0, per_setting_max = 0, settings_with = 0;
    for (size_t bi = 0, k = 0; bi < l->nbaud; bi++) {
        for (size_t pi = 0; pi < l->nparity; pi++, k++) {
            if (k >= started)
                continue;
            unsigned char set[CMD_MAX_UNIT + 1] = {0};
            size_t n = 0;
            for (size_t i = 0; i < s->nhits; i++)
                if (s->hits[i].baud_i == bi && s->hits[i].parity_i == pi) {
                    set[s->hits[i].unit] = 1;
                    n++;
                    if (!all[s->hits[i].unit])
                        nall++;
                    all[s->hits[i].unit] = 1;
                }
            char name[300], ids[1024];
            if (l->rtu)
                cmd_setting_name(l, bi, pi, name, sizeof(name));
            else
                cmd_line_name(l, name, sizeof(name));
            cmd_units_name(set, ids, sizeof(ids));
            if (n)
                printf("%s: %zu unit%s: %s\n", name, n, n == 1 ? "" : "s", ids);
            else
                printf("%s: no unit\n", name);
            for (size_t i = 0; i < s->nhits; i++)
                if (s->hits[i].baud_i == bi && s->hits[i].parity_i == pi)
                    print_hit(s, &s->hits[i]);
            if (n > per_setting_max)
                per_setting_max = n;
            if (n)
                settings_with++;
        }
    }
    char ids[1024];
    cmd_units_name(all, ids, sizeof(ids));
    if (nall)
        printf("found %zu unit%s: %s", nall, nall == 1 ? "" : "s", ids);
    else
        printf("found no unit");
    if (l->rtu)
        printf(" (at %zu of %zu settings)", settings_with, started);
    printf("\n");
    if (stopped)
        printf("scan stopped early (%s): %zu of %zu settings done\n", why, done,
               l->nbaud * l->nparity);
    if (s->gateway_absent)
        printf("note: %zu unit id%s got exception 10/11 from the gateway (nothing answers "
               "behind it): not found\n",
               s->gateway_absent, s->gateway_absent == 1 ? "" : "s");
    if (s->ngarbled)
        printf("note: %zu reply%s did not check out (wrong baud rate or parity, or noise):\n%s\n",
               s->ngarbled, s->ngarbled == 1 ? "" : "s", s->garbled);
    if (l->rtu && settings_with > 1)
        printf("note: units answered at more than one setting; a device on a real RS-485 line "
               "answers at its own setting only (a pty, or an adapter that ignores the line "
               "settings, answers at every one)\n");
    if (!l->rtu && s->nunits > 2 && per_setting_max == s->nunits)
        printf("note: every unit id answered: this is one device that ignores the unit id (not "
               "a gateway); give it the unit id its manual says (often 1 or 255)\n");
}

int drv_modbus_cmd_scan(int argc, char **argv, const struct drv_cmd_env *env)
{
    (void)env;
    enum { OPT_UNITS = CMD_OPT_FIRST_FREE, OPT_HELP };
    static const struct option opts[] = {
        CMD_LINE_OPTIONS,
        {"units", required_argument, NULL, OPT_UNITS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct scan *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(stderr, "cityhub scan: out of memory\n");
        return CMD_EXIT_FAIL;
    }
    cmd_line_init(&s->line, 200 * MS);
    const char *units_arg = NULL;
    int rc = CMD_EXIT_OK, ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            goto out;
        }
        if (ch == OPT_UNITS) {
            units_arg = optarg;
            continue;
        }
        if (ch == '?' || ch == ':') {
            rc = cmd_bad_option(CMD, ch, argv);
            goto out;
        }
        int r = cmd_line_option(CMD, &s->line, ch, optarg, 1);
        if (r != 0) {
            rc = r > 0 ? r : cmd_usage_error(CMD, "unexpected option");
            goto out;
        }
    }
    if (optind < argc) {
        rc = cmd_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
        goto out;
    }
    if ((rc = cmd_line_finish(CMD, &s->line)) != 0)
        goto out;
    struct cmd_line *l = &s->line;
    char err[512];
    if (!units_arg)
        units_arg = l->rtu ? "1-247" : "0-247";
    if (cmd_parse_units(units_arg, 0, CMD_MAX_UNIT, s->units, &s->nunits, err, sizeof(err)) != 0) {
        rc = cmd_usage_error(CMD, "--units: %s", err);
        goto out;
    }
    if (l->rtu && s->units[0]) {
        rc = cmd_usage_error(CMD,
                             "--units %s: unit 0 is the broadcast address on a serial "
                             "line, where no unit answers it; use 1-247",
                             units_arg);
        goto out;
    }

    /* the worst case, before anything is sent */
    size_t settings = l->nbaud * l->nparity;
    int64_t per_unit = l->timeout_ns;
    if (l->rtu)
        per_unit += 2 * MS; /* at least the silence between frames */
    char name[300], total[32], tmo[32], ids[1024];
    cmd_line_name(l, name, sizeof(name));
    cmd_duration_name((int64_t)settings * (int64_t)s->nunits * per_unit, total, sizeof(total));
    cmd_duration_name(l->timeout_ns, tmo, sizeof(tmo));
    cmd_units_name(s->units, ids, sizeof(ids));
    fprintf(stderr,
            "cityhub scan: %s, %zu setting%s x %zu unit%s (%s), timeout %s: at most %s, plus up "
            "to %s per unit found (its identification)\n",
            name, settings, settings == 1 ? "" : "s", s->nunits, s->nunits == 1 ? "" : "s", ids,
            tmo, total, tmo);
    printf("scan %s, units %s, timeout %s\n", name, ids, tmo);
    fflush(stdout);

    s->tty = isatty(STDERR_FILENO);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    size_t done = 0, started = 0;
    int stopped = 0;
    const char *why = "";
    char msg[300];
    struct cmd_conn c;
    int64_t t0 = hub_mono_ns();
    for (size_t bi = 0; bi < l->nbaud && !stopped; bi++) {
        for (size_t pi = 0; pi < l->nparity && !stopped; pi++) {
            char setting[300];
            if (l->rtu)
                cmd_setting_name(l, bi, pi, setting, sizeof(setting));
            else
                cmd_line_name(l, setting, sizeof(setting));
            if (cmd_conn_open(&c, l, bi, pi, err, sizeof(err)) != 0) {
                progress_clear(s);
                fprintf(stderr, "cityhub scan: %s\n", err);
                stopped = 1;
                why = "the line failed";
                break;
            }
            started++;
            size_t found = 0, pos = 0;
            s->last_progress = hub_mono_ns();
            for (int u = 0; u <= CMD_MAX_UNIT; u++) {
                if (!s->units[u])
                    continue;
                if (interrupted) {
                    stopped = 1;
                    why = "interrupted";
                    break;
                }
                pos++;
                progress(s, setting, u, pos, found, pos == 1);
                int r = probe(s, &c, (uint8_t)u, bi, pi, msg, sizeof(msg));
                if (r < 0) {
                    progress_clear(s);
                    fprintf(stderr, "cityhub scan: %s: unit %d: %s\n", c.name, u, msg);
                    stopped = 1;
                    why = "the line failed";
                    break;
                }
                if (r > 0) {
                    found++;
                    progress_clear(s);
                    fprintf(stderr, "found unit %d%s%s\n", u, l->rtu ? " at " : "",
                            l->rtu ? setting : "");
                }
            }
            cmd_conn_close(&c);
            if (!stopped) {
                done++;
                progress_clear(s);
                if (!s->tty)
                    fprintf(stderr, "scanning %s: done, %zu found\n", setting, found);
            }
        }
    }
    progress_clear(s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    char took[32];
    cmd_duration_name(hub_mono_ns() - t0, took, sizeof(took));
    fprintf(stderr, "cityhub scan: %s, %zu answer%s\n", stopped ? "stopped" : "done", s->nhits,
            s->nhits == 1 ? "" : "s");
    if (started == 0) { /* the line failed before anything was sent */
        rc = CMD_EXIT_FAIL;
        goto out;
    }
    print_summary(s, started, done, stopped, why);
    printf("took %s\n", took);
    rc = s->nhits ? CMD_EXIT_OK : CMD_EXIT_FAIL;
out:
    free(s->hits);
    free(s);
    return rc;
}
