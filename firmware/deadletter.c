/* firmware/deadletter.c — `cityhub deadletter list` and `cityhub deadletter
 * retry`: a dead-letter file (hub/deadletter.h) shown to a technician, and
 * the lines a store refused sent to it again once the cause is fixed.
 *
 * Entries are read with jansson. A line that is not an entry (not JSON, or
 * an object without time, source, reason and payload) is reported as
 * "PATH:LINE: not a dead-letter entry (why)", counted, and kept as it is.
 *
 * retry reads the file under a shared flock, sends without holding it (the
 * hub's writer, which takes the lock for each append, is never kept waiting
 * on the network), then rewrites it under the exclusive lock: PATH.tmp with
 * the entries the store refused again (their reason replaced) and those
 * not resent, then what the hub appended meanwhile, fsync'd and renamed
 * over PATH. If PATH is no longer the file that was read (rotated), it is
 * left alone: every entry it had is still there, and resending a point the
 * store already holds writes the same point again. Payloads go out through
 * the output driver's own send_raw, in batches of the output's batch_size
 * (and max_batch_bytes); a batch refused is halved until the refused lines
 * are found, as the hub does. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"
#include "hub/buf.h"
#include "hub/deadletter.h"
#include "hub/log.h"

#define CMD "cityhub deadletter"
#define FILE_MAX ((size_t)1 << 30) /* largest dead-letter file read */
#define GROUPS_MAX 32              /* reasons or skip causes told apart in a summary */

enum dl_state { DL_KEEP = 0, DL_SENT, DL_REFUSED, DL_SKIPPED };

struct dl_entry {
    const char *line; /* in the file's text (not NUL-terminated), without '\n' */
    size_t len;
    size_t lineno;
    json_t *obj; /* NULL: not an entry */
    const char *time, *source, *where_key, *where, *reason;
    unsigned char *payload; /* decoded */
    size_t plen;
    enum dl_state state;
    char new_reason[256];
    size_t out; /* retry: the index of its output in the config */
};

struct dl_file {
    const char *path;
    char *text;
    size_t size;
    struct stat st;
    struct dl_entry *e;
    size_t n;
    size_t malformed;
};

struct dl_group {
    char key[160];
    size_t count;
};

/* ---- reading ---------------------------------------------------------------- */

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with padding, as hub/deadletter.c writes it. Returns a
 * malloc'd buffer (*n bytes) or NULL when s is not base64. */
static unsigned char *b64_decode(const char *s, size_t len, size_t *n)
{
    if (len % 4)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; out && i < len; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = s[i + j] == '=' && i + 4 == len && j >= 2 ? 0 : b64_value(s[i + j]);
            if (v[j] < 0 || (j == 2 && s[i + 2] == '=' && s[i + 3] != '=')) {
                free(out);
                return NULL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        out[k++] = (unsigned char)(w >> 16);
        if (s[i + 2] != '=')
            out[k++] = (unsigned char)(w >> 8);
        if (s[i + 3] != '=')
            out[k++] = (unsigned char)w;
    }
    *n = k;
    return out;
}

static const char *str_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fill e from its line; returns NULL, or why it is not an entry. */
static const char *parse_entry(struct dl_entry *e, char *why, size_t whylen)
{
    json_error_t jerr;
    e->obj = json_loadb(e->line, e->len, JSON_ALLOW_NUL, &jerr);
    if (!e->obj) {
        snprintf(why, whylen, "not JSON: %s at column %d", jerr.text, jerr.column);
        return why;
    }
    if (!json_is_object(e->obj)) {
        snprintf(why, whylen, "not a JSON object");
        return why;
    }
    static const char *const need[] = {"time", "source", "reason"};
    const char **dst[] = {&e->time, &e->source, &e->reason};
    for (size_t i = 0; i < 3; i++)
        if (!(*dst[i] = str_member(e->obj, need[i]))) {
            snprintf(why, whylen, "no string \"%s\"", need[i]);
            return why;
        }
    json_t *p = json_object_get(e->obj, "payload");
    json_t *p64 = json_object_get(e->obj, "payload_base64");
    if (json_is_string(p)) {
        e->plen = json_string_length(p);
        e->payload = malloc(e->plen + 1);
        if (e->payload)
            memcpy(e->payload, json_string_value(p), e->plen);
    } else if (json_is_string(p64)) {
        e->payload = b64_decode(json_string_value(p64), json_string_length(p64), &e->plen);
        if (!e->payload) {
            snprintf(why, whylen, "\"payload_base64\" is not base64");
            return why;
        }
    } else {
        snprintf(why, whylen, "no string \"payload\" or \"payload_base64\"");
        return why;
    }
    if (!e->payload) {
        snprintf(why, whylen, "out of memory");
        return why;
    }
    /* the place: the writer's where_key ("seq", "topic", ...) */
    const char *k;
    json_t *v;
    json_object_foreach(e->obj, k, v)
    {
        if (json_is_string(v) && strcmp(k, "time") && strcmp(k, "source") && strcmp(k, "reason") &&
            strcmp(k, "payload") && strcmp(k, "payload_base64")) {
            e->where_key = k;
            e->where = json_string_value(v);
            break;
        }
    }
    return NULL;
}

/* Split f->text into entries; malformed lines are reported on stderr. */
static int parse_file(struct dl_file *f)
{
    size_t cap = 0;
    for (size_t i = 0; i < f->size; i++)
        cap += f->text[i] == '\n';
    f->e = calloc(cap + 1, sizeof(*f->e));
    if (!f->e)
        return -1;
    size_t pos = 0, lineno = 0;
    while (pos < f->size) {
        const char *nl = memchr(f->text + pos, '\n', f->size - pos);
        size_t len = nl ? (size_t)(nl - (f->text + pos)) : f->size - pos;
        struct dl_entry *e = &f->e[f->n++];
        e->line = f->text + pos;
        e->len = len;
        e->lineno = ++lineno;
        pos += len + (nl ? 1 : 0);
        char why[200];
        const char *bad = len ? parse_entry(e, why, sizeof(why)) : "an empty line";
        if (bad) {
            fprintf(stderr, "%s:%zu: not a dead-letter entry (%s)\n", f->path, e->lineno, bad);
            json_decref(e->obj);
            e->obj = NULL;
            f->malformed++;
        }
    }
    return 0;
}

/* Read path whole (under a shared lock: no half-written entry) and parse it.
 * Returns 0, or -1 after a message (errno ENOENT: no such file). */
static int read_file(const char *path, struct dl_file *f)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    int fd = -1;
    if (hub_deadletter_lock(path, &fd, O_RDONLY, LOCK_SH, &f->st) != 0) {
        int e = errno;
        fprintf(stderr, CMD ": %s: %s\n", path, strerror(e));
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    if ((uint64_t)f->st.st_size > FILE_MAX) {
        fprintf(stderr, CMD ": %s: %jd bytes, more than this tool reads\n", path,
                (intmax_t)f->st.st_size);
        close(fd);
        errno = EFBIG;
        return -1;
    }
    f->text = malloc((size_t)f->st.st_size + 1);
    ssize_t r = 0;
    while (f->text && f->size < (size_t)f->st.st_size &&
           (r = read(fd, f->text + f->size, (size_t)f->st.st_size - f->size)) > 0)
        f->size += (size_t)r;
    int e = errno;
    close(fd);
    if (!f->text || r < 0) {
        fprintf(stderr, CMD ": %s: %s\n", path, f->text ? strerror(e) : "out of memory");
        return -1;
    }
    f->text[f->size] = 0;
    if (parse_file(f) != 0) {
        fprintf(stderr, CMD ": %s: out of memory\n", path);
        return -1;
    }
    return 0;
}

static void free_file(struct dl_file *f)
{
    for (size_t i = 0; i < f->n; i++) {
        json_decref(f->e[i].obj);
        free(f->e[i].payload);
    }
    free(f->e);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

/* ---- summaries -------------------------------------------------------------- */

/* What a reason is filed under: the HTTP status at its start and the first
 * words after it, up to one that names a particular (a quote, a
 * key=value), numbers as #: "HTTP 400 partial write: field type conflict",
 * "record #: no name". */
static void reason_key(const char *reason, char *key, size_t keylen)
{
    size_t k = 0, words = 0;
    const char *p = reason;
    key[0] = 0;
    if (!strncmp(p, "HTTP ", 5) && p[5] >= '0' && p[5] <= '9') {
        k = (size_t)snprintf(key, keylen, "HTTP %.3s", p + 5);
        p += 5;
        while (*p >= '0' && *p <= '9')
            p++;
        while (*p == ':' || *p == ' ')
            p++;
    }
    while (*p && words < 5 && k + 2 < keylen) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t n = (size_t)(p - w);
        if (!n || (words > 0 && strcspn(w, "\"'=()[]{}") < n) || k + 1 + n >= keylen)
            break;
        if (strcspn(w, "0123456789") < n) /* "record 12:" -> "record #:" */
            k += (size_t)snprintf(key + k, keylen - k, "%s#%s", k ? " " : "",
                                  w[n - 1] == ':' || w[n - 1] == ',' ? ":" : "");
        else
            k += (size_t)snprintf(key + k, keylen - k, "%s%.*s", k ? " " : "", (int)n, w);
        words++;
    }
    while (k > 0 && (key[k - 1] == ':' || key[k - 1] == ',' || key[k - 1] == ';'))
        key[--k] = 0;
    if (!k)
        snprintf(key, keylen, "(no reason)");
}

static void group_add(struct dl_group *g, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(g[i].key, key)) {
            g[i].count++;
            return;
        }
    size_t i = *n < GROUPS_MAX ? (*n)++ : GROUPS_MAX - 1; /* the last one takes the rest */
    if (i == GROUPS_MAX - 1 && g[i].count)
        snprintf(g[i].key, sizeof(g[i].key), "other");
    else
        snprintf(g[i].key, sizeof(g[i].key), "%s", key);
    g[i].count++;
}

static void group_print(FILE *out, const struct dl_group *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s (%zu)", i ? ", " : "", g[i].key, g[i].count);
}

/* ---- list ------------------------------------------------------------------- */

/* s as one printable line of at most width columns (bytes of ASCII; a cut
 * UTF-8 sequence is dropped whole), "..." when cut. */
static void print_cell(const char *s, size_t width, int pad)
{
    size_t len = strlen(s), n = len;
    if (len > width) {
        n = width > 3 ? width - 3 : 0;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i]);
    if (n < len)
        fputs("...", stdout);
    for (size_t i = n + (n < len ? 3 : 0); pad && i < width; i++)
        putchar(' ');
}

static size_t term_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 60)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    long v = c ? strtol(c, NULL, 10) : 0;
    return v >= 60 && v <= 1000 ? (size_t)v : 120;
}

static void list_table(struct dl_file *files, size_t nfiles)
{
    size_t wsrc = 6, wwhere = 9;
    for (size_t f = 0; f < nfiles; f++)
        for (size_t i = 0; i < files[f].n; i++) {
            const struct dl_entry *e = &files[f].e[i];
            if (!e->obj)
                continue;
            if (strlen(e->source) > wsrc)
                wsrc = strlen(e->source);
            if (e->where && strlen(e->where) > wwhere)
                wwhere = strlen(e->where);
        }
    wsrc = wsrc > 24 ? 24 : wsrc;
    wwhere = wwhere > 24 ? 24 : wwhere;
    size_t used = 24 + 2 + wsrc + 2 + wwhere + 2 + 7 + 2;
    size_t wreason = term_width() > used + 20 ? term_width() - used : 20;
    printf("%-24s  %-*s  %-*s  %7s  %s\n", "TIME", (int)wsrc, "SOURCE", (int)wwhere, "SEQ/TOPIC",
           "BYTES", "REASON");
    for (size_t f = 0; f < nfiles; f++)
        for (size_t i = 0; i < files[f].n; i++) {
            const struct dl_entry *e = &files[f].e[i];
            if (!e->obj)
                continue;
            print_cell(e->time, 24, 1);
            fputs("  ", stdout);
            print_cell(e->source, wsrc, 1);
            fputs("  ", stdout);
            print_cell(e->where ? e->where : "-", wwhere, 1);
            printf("  %7zu  ", e->plen);
            print_cell(e->reason, wreason, 0);
            putchar('\n');
        }
}

static void list_summary(struct dl_file *files, size_t nfiles)
{
    struct dl_group g[GROUPS_MAX];
    size_t ng = 0, n = 0, malformed = 0;
    const char *oldest = NULL, *newest = NULL;
    memset(g, 0, sizeof(g));
    for (size_t f = 0; f < nfiles; f++) {
        malformed += files[f].malformed;
        for (size_t i = 0; i < files[f].n; i++) {
            const struct dl_entry *e = &files[f].e[i];
            if (!e->obj)
                continue;
            n++;
            if (!oldest || strcmp(e->time, oldest) < 0)
                oldest = e->time;
            if (!newest || strcmp(e->time, newest) > 0)
                newest = e->time;
            char key[160];
            reason_key(e->reason, key, sizeof(key));
            group_add(g, &ng, key);
        }
    }
    printf("%zu entr%s", n, n == 1 ? "y" : "ies");
    if (n) {
        printf(", oldest %s, newest %s, by reason: ", oldest, newest);
        group_print(stdout, g, ng);
    }
    if (malformed)
        printf("; %zu malformed line%s", malformed, malformed == 1 ? "" : "s");
    putchar('\n');
}

static int cmd_list(int argc, char **argv, void (*usage)(FILE *))
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, all = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = 1;
            break;
        case 'a':
            all = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, CMD " list: %s\n\n", optind >= argc ? "PATH is required" : "one PATH only");
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    char old[4096];
    snprintf(old, sizeof(old), "%s.1", path);
    struct stat st;
    int have_old = stat(old, &st) == 0;

    struct dl_file files[2];
    size_t nfiles = 0;
    int rc = 0;
    memset(files, 0, sizeof(files));
    if (all && have_old && read_file(old, &files[nfiles++]) != 0)
        rc = EXIT_USAGE;
    if (!rc && read_file(path, &files[nfiles++]) != 0)
        rc = EXIT_USAGE;
    if (!rc) {
        size_t malformed = 0;
        for (size_t f = 0; f < nfiles; f++)
            malformed += files[f].malformed;
        if (json) {
            for (size_t f = 0; f < nfiles; f++)
                for (size_t i = 0; i < files[f].n; i++)
                    if (files[f].e[i].obj)
                        printf("%.*s\n", (int)files[f].e[i].len, files[f].e[i].line);
        } else {
            list_table(files, nfiles);
            list_summary(files, nfiles);
        }
        if (have_old && !all)
            fprintf(json ? stderr : stdout,
                    "%s also exists (older entries, rotated): --all lists it first\n", old);
        rc = malformed ? 1 : 0;
    }
    for (size_t f = 0; f < nfiles; f++)
        free_file(&files[f]);
    return rc;
}

/* ---- retry ------------------------------------------------------------------ */

struct retry {
    struct dl_file f;
    struct ch_config *c;
    const char *output; /* --output, or NULL */
    int dry_run;
    void *ctx[CH_MAX_OUTPUTS]; /* drivers started, by config index */
    struct hub_buf body;
    size_t sent, refused, skipped;
    int stopped; /* a transient failure (or an alarm) ended the sending */
    struct dl_group skips[GROUPS_MAX];
    size_t nskips;
};

static const struct drv_output_common *out_common(const struct retry *r, size_t i)
{
    return r->c->outputs[i].cfg;
}

/* Which output e goes to (e->out), or DL_SKIPPED with why. */
static void route(struct retry *r, struct dl_entry *e)
{
    char why[512], type[DRV_NAME_MAX];
    const char *colon = strchr(e->source, ':');
    snprintf(type, sizeof(type), "%.*s", colon ? (int)(colon - e->source) : 0, e->source);
    const char *name = r->output ? r->output : colon ? colon + 1 : "";
    why[0] = 0;
    if ((e->where_key && !strcmp(e->where_key, "topic")) || drv_find(DRV_INPUT, type)) {
        snprintf(why, sizeof(why), "%s: a message an input refused cannot be resent as readings",
                 e->source);
    } else if (e->plen == 0) {
        snprintf(why, sizeof(why), "%s: no payload to resend (the reading could not be written)",
                 e->source);
    } else {
        size_t i;
        for (i = 0; i < r->c->noutputs; i++)
            if (!strcmp(out_common(r, i)->name, name))
                break;
        if (i == r->c->noutputs)
            snprintf(why, sizeof(why), "%s: no output \"%s\" in %s", e->source, name, r->c->path);
        else if (!r->c->outputs[i].ops->send_raw)
            snprintf(why, sizeof(why), "%s: output %s (%s) cannot resend", e->source, name,
                     r->c->outputs[i].ops->name);
        else if (strcmp(type, r->c->outputs[i].ops->name) != 0)
            snprintf(why, sizeof(why), "%s: written by a %s output, %s is %s", e->source,
                     type[0] ? type : "?", name, r->c->outputs[i].ops->name);
        else
            e->out = i;
    }
    if (why[0]) {
        e->state = DL_SKIPPED;
        r->skipped++;
        group_add(r->skips, &r->nskips, why);
    }
}

static int start_output(struct retry *r, size_t i)
{
    if (r->ctx[i])
        return 0;
    struct drv_env env = {.gateway = r->c->hub.name, .hub_tags = &r->c->hub.tags};
    char err[512];
    if (r->c->outputs[i].ops->init(r->c->outputs[i].cfg, &env, &r->ctx[i], err, sizeof(err)) != 0) {
        fprintf(stderr, CMD " retry: output %s: %s\n", out_common(r, i)->name, err);
        r->ctx[i] = NULL;
        return -1;
    }
    return 0;
}

/* Send entries idx[0..n) (all to output o) as one request; a refused
 * batch is halved down to the lines refused. */
static void send_batch(struct retry *r, size_t o, struct dl_entry **b, size_t n)
{
    if (r->stopped || !n)
        return;
    hub_buf_reset(&r->body);
    for (size_t i = 0; i < n; i++) {
        hub_buf_add(&r->body, b[i]->payload, b[i]->plen);
        if (!b[i]->plen || b[i]->payload[b[i]->plen - 1] != '\n')
            hub_buf_addc(&r->body, '\n');
    }
    struct hub_out_answer ans;
    memset(&ans, 0, sizeof(ans));
    const struct drv_ops *ops = r->c->outputs[o].ops;
    enum hub_out_result res = ops->send_raw(r->ctx[o], r->body.data, r->body.len, &ans);
    switch (res) {
    case HUB_OUT_OK:
        for (size_t i = 0; i < n; i++) {
            b[i]->state = DL_SENT;
            r->sent++;
        }
        return;
    case HUB_OUT_REJECT:
    case HUB_OUT_TOO_LARGE:
        if (n > 1) {
            send_batch(r, o, b, n / 2);
            send_batch(r, o, b + n / 2, n - n / 2);
            return;
        }
        b[0]->state = DL_REFUSED;
        snprintf(b[0]->new_reason, sizeof(b[0]->new_reason), "%s",
                 ans.why[0] ? ans.why : hub_out_result_name(res));
        r->refused++;
        return;
    case HUB_OUT_RETRY:
    case HUB_OUT_ALARM:
    default:
        fprintf(stderr,
                CMD " retry: output %s: %s: %s; stopped, the entries not yet accepted stay in "
                    "%s%s\n",
                out_common(r, o)->name, res == HUB_OUT_ALARM ? "refused (alarm)" : "not delivered",
                ans.why[0] ? ans.why : hub_out_result_name(res), r->f.path,
                res == HUB_OUT_ALARM ? " (check the credentials, database or bucket)"
                                     : " (try again when the store is back)");
        r->stopped = 1;
        return;
    }
}

static void send_all(struct retry *r)
{
    struct dl_entry **b = calloc(r->f.n + 1, sizeof(*b));
    if (!b) {
        fprintf(stderr, CMD " retry: out of memory\n");
        r->stopped = 1;
        return;
    }
    for (size_t o = 0; o < r->c->noutputs && !r->stopped; o++) {
        const struct drv_output_common *oc = out_common(r, o);
        size_t batch = oc->batch_size > 0 ? (size_t)oc->batch_size : 1;
        size_t cap = oc->max_batch_bytes ? (size_t)oc->max_batch_bytes : (size_t)1 << 20;
        size_t n = 0, bytes = 0, lines = 0, batches = 0;
        for (size_t i = 0; i <= r->f.n && !r->stopped; i++) {
            struct dl_entry *e = i < r->f.n ? &r->f.e[i] : NULL;
            int mine = e && e->obj && e->state == DL_KEEP && e->out == o;
            if (n && (!e || (mine && (n == batch || bytes + e->plen + 1 > cap)))) {
                if (r->dry_run) {
                    printf("# batch %zu: %zu line%s to output %s (%s)\n", ++batches, n,
                           n == 1 ? "" : "s", oc->name, r->c->outputs[o].ops->name);
                    for (size_t k = 0; k < n; k++)
                        printf("%.*s\n", (int)b[k]->plen, (const char *)b[k]->payload);
                } else if (start_output(r, o) == 0) {
                    send_batch(r, o, b, n);
                } else {
                    r->stopped = 1;
                }
                n = bytes = 0;
            }
            if (mine) {
                b[n++] = e;
                bytes += e->plen + 1;
                lines++;
            }
        }
        if (r->dry_run && lines)
            r->sent += lines;
    }
    free(b);
}

/* Write text[0..len) to path.tmp, fsync it, rename it over path and fsync
 * the directory. Returns 0 or -1 after a message. */
static int replace_file(const char *path, const struct hub_buf *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, CMD " retry: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    size_t done = 0;
    while (done < text->len) {
        ssize_t w = write(fd, text->data + done, text->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (done != text->len || fsync(fd) != 0) {
        fprintf(stderr, CMD " retry: %s: %s\n", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        fprintf(stderr, CMD " retry: renaming %s to %s: %s\n", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* The file again, under the exclusive lock: the entries that stay (with
 * their new reason), then what was appended since it was read. Returns 0,
 * or -1 after a message (the file is then as it was). */
static int rewrite(struct retry *r)
{
    int fd = -1, rc = -1;
    struct stat st;
    struct hub_buf out;
    hub_buf_init(&out, FILE_MAX + ((size_t)1 << 20));
    char *now = NULL;
    if (hub_deadletter_lock(r->f.path, &fd, O_RDONLY, LOCK_EX, &st) != 0) {
        fprintf(stderr, CMD " retry: %s: %s; not rewritten\n", r->f.path, strerror(errno));
        goto out;
    }
    now = st.st_size >= (off_t)r->f.size ? malloc((size_t)st.st_size + 1) : NULL;
    size_t got = 0;
    ssize_t n = 1;
    while (now && got < (size_t)st.st_size &&
           (n = read(fd, now + got, (size_t)st.st_size - got)) > 0)
        got += (size_t)n;
    if (st.st_dev != r->f.st.st_dev || st.st_ino != r->f.st.st_ino || !now ||
        got != (size_t)st.st_size || memcmp(now, r->f.text, r->f.size) != 0) {
        fprintf(stderr,
                CMD " retry: %s changed while retrying (rotated or rewritten): not rewritten; "
                    "every entry is still in it or in %s.1 (resending an accepted one again "
                    "writes the same point)\n",
                r->f.path, r->f.path);
        goto out;
    }
    for (size_t i = 0; i < r->f.n; i++) {
        struct dl_entry *e = &r->f.e[i];
        if (e->state == DL_SENT)
            continue;
        if (e->state == DL_REFUSED && strcmp(e->new_reason, e->reason) != 0) {
            json_object_set_new(e->obj, "reason", json_string(e->new_reason));
            char *s = json_dumps(e->obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (!s || hub_buf_adds(&out, s) != HUB_OK) {
                free(s);
                fprintf(stderr, CMD " retry: out of memory; %s not rewritten\n", r->f.path);
                goto out;
            }
            free(s);
        } else {
            hub_buf_add(&out, e->line, e->len);
        }
        hub_buf_addc(&out, '\n');
    }
    /* appended by the hub since the file was read */
    if (hub_buf_add(&out, now + r->f.size, got - r->f.size) != HUB_OK) {
        fprintf(stderr, CMD " retry: out of memory; %s not rewritten\n", r->f.path);
        goto out;
    }
    rc = replace_file(r->f.path, &out);
out:
    if (fd >= 0)
        close(fd); /* after the rename: a writer waiting on it then finds the new file */
    free(now);
    hub_buf_free(&out);
    return rc;
}

static void retry_summary(struct retry *r)
{
    struct dl_group g[GROUPS_MAX];
    size_t ng = 0;
    memset(g, 0, sizeof(g));
    for (size_t i = 0; i < r->f.n; i++)
        if (r->f.e[i].state == DL_REFUSED) {
            char key[160];
            reason_key(r->f.e[i].new_reason, key, sizeof(key));
            group_add(g, &ng, key);
        }
    if (r->nskips) {
        for (size_t i = 0; i < r->nskips; i++)
            fprintf(stderr, CMD " retry: skipped %zu: %s\n", r->skips[i].count, r->skips[i].key);
    }
    size_t pending = 0;
    for (size_t i = 0; i < r->f.n; i++)
        pending += r->f.e[i].obj && r->f.e[i].state == DL_KEEP;
    if (r->dry_run) {
        printf("dry run: would resend %zu, skipped %zu; %s not changed\n", r->sent, r->skipped,
               r->f.path);
        return;
    }
    printf("resent %zu, still refused %zu", r->sent, r->refused);
    if (ng) {
        printf(" (reasons: ");
        group_print(stdout, g, ng);
        putchar(')');
    }
    printf(", skipped %zu", r->skipped);
    if (r->stopped)
        printf(", not tried %zu (stopped)", pending);
    if (r->f.malformed)
        printf(", malformed lines %zu (kept)", r->f.malformed);
    putchar('\n');
}

static int cmd_retry(int argc, char **argv, void (*usage)(FILE *))
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct retry r;
    memset(&r, 0, sizeof(r));
    const char *config = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:o:nh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            r.output = optarg;
            break;
        case 'n':
            r.dry_run = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || !config) {
        fprintf(stderr, CMD " retry: %s\n\n",
                !config          ? "-c CONFIG is required"
                : optind >= argc ? "PATH is required"
                                 : "one PATH only");
        usage(stderr);
        return EXIT_USAGE;
    }
    unsigned nerr = 0;
    r.c = ch_config_load(config, stderr, &nerr);
    if (!r.c) {
        fprintf(stderr, "%s: %u error%s\n", config, nerr, nerr == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    if (r.output) {
        size_t i;
        for (i = 0; i < r.c->noutputs; i++)
            if (!strcmp(out_common(&r, i)->name, r.output))
                break;
        if (i == r.c->noutputs) {
            fprintf(stderr, CMD " retry: no output \"%s\" in %s\n", r.output, config);
            ch_config_free(r.c);
            return EXIT_USAGE;
        }
    }
    int rc = EXIT_USAGE;
    int started = 0;
    if (read_file(argv[optind], &r.f) != 0)
        goto out;
    for (size_t i = 0; i < r.f.n; i++)
        if (r.f.e[i].obj)
            route(&r, &r.f.e[i]);
    if (!r.dry_run) {
        hub_log_set_level(HUB_LOG_WARN); /* the drivers' start-up lines are not for here */
        if (ch_drivers_global_init() != 0)
            goto out;
        started = 1;
    }
    hub_buf_init(&r.body, r.f.size + r.f.n + 1); /* every payload, each with its '\n' */
    send_all(&r);
    rc = 0;
    if (!r.dry_run && (r.sent || r.refused)) {
        int changed = r.sent > 0;
        for (size_t i = 0; i < r.f.n && !changed; i++)
            changed = r.f.e[i].state == DL_REFUSED && strcmp(r.f.e[i].new_reason, r.f.e[i].reason);
        if (changed && rewrite(&r) != 0)
            rc = 1;
    }
    retry_summary(&r);
    if (r.refused || r.stopped || r.f.malformed)
        rc = 1;
out:
    for (size_t i = 0; i < CH_MAX_OUTPUTS; i++)
        if (r.ctx[i])
            r.c->outputs[i].ops->exit(r.ctx[i]);
    if (started)
        ch_drivers_global_cleanup();
    hub_buf_free(&r.body);
    free_file(&r.f);
    ch_config_free(r.c);
    return rc;
}

int ch_cmd_deadletter(int argc, char **argv, void (*usage)(FILE *))
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "list"))
        return cmd_list(argc - 1, argv + 1, usage);
    if (!strcmp(argv[1], "retry"))
        return cmd_retry(argc - 1, argv + 1, usage);
    fprintf(stderr, CMD ": unknown command \"%s\" (list or retry)\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
