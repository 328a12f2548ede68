/* firmware/inspect.c — `cityhub check` and `cityhub journal`: the config and
 * the journal, read without starting anything. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"
#include "hub/clocktrust.h"
#include "hub/crc32c.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/reading.h"

int ch_cmd_check(const char *path)
{
    unsigned nerr = 0;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c) {
        fprintf(stderr, "%s: %u error%s\n", path, nerr, nerr == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    printf("%s: ok — gateway %s", path, c->hub.name);
    for (size_t i = 0; i < c->ninputs; i++) {
        const struct ch_input_cfg *in = &c->inputs[i];
        for (size_t j = 0; in->ops->sections[j].key; j++)
            printf(", %zu %s", in->cfg.sect[j].n, in->ops->sections[j].key);
    }
    printf(", %zu output%s, journal %s\n", c->noutputs, c->noutputs == 1 ? "" : "s",
           c->hub.journal.path);
    ch_config_free(c);
    return 0;
}

/* How --dump writes a reading: as the first configured output with a
 * format writes it, else as the first such driver of the registry. */
static const struct drv_ops *dump_format(const struct ch_config *c)
{
    for (size_t i = 0; c && i < c->noutputs; i++)
        if (c->outputs[i].ops->format)
            return c->outputs[i].ops;
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (size_t i = 0; i < n; i++)
        if (all[i]->kind == DRV_OUTPUT && all[i]->format)
            return all[i];
    return NULL;
}

static void print_summary(const struct ch_config *c, hub_journal_t *j)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    printf("journal %s\n", c->hub.journal.path);
    printf("next_seq %" PRIu64 "\n", st.next_seq);
    printf("first_seq %" PRIu64 "\n", st.first_seq);
    printf("stored %" PRIu64 "\n", st.next_seq - st.first_seq);
    printf("segments %" PRIu64 "\n", st.segments);
    printf("bytes %" PRIu64 "\n", st.bytes);
    for (size_t i = 0; i < c->noutputs; i++) {
        const struct drv_output_common *oc = c->outputs[i].cfg;
        uint64_t seq = 0;
        if (hub_journal_cursor_peek(j, oc->name, &seq) == HUB_OK)
            printf("cursor %s %" PRIu64 " lag %" PRIu64 "\n", oc->name, seq,
                   st.next_seq > seq ? st.next_seq - seq : 0);
        else
            printf("cursor %s none\n", oc->name);
    }
}

/* Print records [from, to) through fmt. old_form (journal -c FILE --dump):
 * "SEQ line", notes on stdout; else the line alone, notes on stderr (the
 * output is line protocol and nothing else). Returns 0, or 1 (printed). */
static int dump_records(hub_journal_t *j, const struct drv_ops *fmt, uint64_t from, uint64_t to,
                        bool old_form)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf payload, line;
    FILE *notes = old_form ? stdout : stderr;
    uint64_t n = 0, bad = 0;
    int rc = 1;
    hub_buf_init(&payload, HUB_JOURNAL_MAX_RECORD);
    hub_buf_init(&line, 1 << 20);
    if (hub_journal_reader_new(j, from, &rd) != HUB_OK)
        goto out;
    for (;;) {
        uint64_t seq = 0, skipped = 0;
        int r = hub_journal_reader_next(rd, &payload, &seq, &skipped);
        if (skipped)
            fprintf(stderr, "# %" PRIu64 " records skipped (dropped or corrupt)\n", skipped);
        if (r == HUB_EEMPTY)
            break;
        if (r == HUB_ECORRUPT)
            continue;
        if (r != HUB_OK) {
            fprintf(stderr, "cityhub: reading the journal: %s\n", hub_strerror(r));
            goto out;
        }
        if (seq >= to)
            break;
        hub_reading_t *reading = NULL;
        if (hub_reading_decode(payload.data, payload.len, &reading) != HUB_OK) {
            fprintf(notes, "# seq %" PRIu64 ": undecodable record of %zu bytes\n", seq,
                    payload.len);
            bad++;
            continue;
        }
        uint8_t boot[HUB_READING_BOOT_ID];
        if (hub_reading_boottime(reading, boot)) {
            char id[HUB_CLOCK_BOOT_TEXT];
            hub_clock_boot_text(boot, id);
            fprintf(notes,
                    "# seq %" PRIu64 ": taken before the clock was trusted; its time is %" PRId64
                    " ns after the start of boot %s\n",
                    seq, hub_reading_time(reading), id);
        }
        hub_buf_reset(&line);
        if (fmt->format(reading, &line) == HUB_OK) {
            if (old_form)
                printf("%" PRIu64 " ", seq);
            fwrite(line.data, 1, line.len, stdout);
            n++;
        } else {
            fprintf(notes, "# seq %" PRIu64 ": a reading %s cannot write\n", seq, fmt->name);
            bad++;
        }
        hub_reading_free(reading);
    }
    if (!old_form)
        fprintf(stderr, "# %" PRIu64 " readings written, %" PRIu64 " could not be\n", n, bad);
    rc = 0;
out:
    hub_journal_reader_free(rd);
    hub_buf_free(&payload);
    hub_buf_free(&line);
    return rc;
}

int ch_cmd_journal(const char *path, int dump, unsigned long long from, int from_set)
{
    unsigned nerr = 0;
    int rc = 1;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c)
        return EXIT_USAGE;
    struct hub_journal_opts jo = {.dir = c->hub.journal.path, .read_only = true};
    hub_journal_t *j = NULL;
    char err[512];
    const struct drv_ops *fmt = dump_format(c);
    if (hub_journal_open(&jo, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "cityhub: %s\n", err);
        goto out;
    }
    if (!dump) {
        print_summary(c, j);
        rc = 0;
        goto out;
    }
    if (!fmt) {
        fprintf(stderr, "cityhub: no output driver in this build can format readings\n");
        goto out;
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    rc = dump_records(j, fmt, from_set ? (uint64_t)from : st.first_seq, UINT64_MAX, true);
out:
    if (j)
        hub_journal_close(j);
    ch_config_free(c);
    return rc;
}

/* ---- cityhub journal stat | verify | dump PATH ------------------------------
 * Tools for a journal directory, with or without its config. All of them
 * read only: the journal is opened read_only (no recovery cut), segments are
 * scanned with their own read-only fds, and nothing is cut, renamed or
 * written, so they are safe beside a live daemon. The segment scan below
 * reads the format of hub/journal.h on its own (it does not trust the
 * journal's reader): a second opinion on the bytes. */

#define SCAN_BUF (HUB_JOURNAL_MAX_RECORD + HUB_JOURNAL_FRAME_SIZE + 65536)

struct tool_seg {
    char name[32];
    uint64_t base, size;
    /* from the scan */
    uint64_t records, end_seq; /* valid records; seq after the last valid one */
    uint64_t damaged_bytes;
    unsigned damaged_ranges;
    bool torn_tail; /* last segment: an incomplete record at its end */
};

struct tool_jr {
    const char *dir;
    struct tool_seg *segs;
    size_t nsegs;
    char **odd; /* entries that are not segments (nor cursors/) */
    size_t nodd;
};

static int seg_cmp_base(const void *a, const void *b)
{
    const struct tool_seg *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

static bool tool_seg_name(const char *n, uint64_t *base)
{
    if (strlen(n) != 24 || strcmp(n + 20, ".seg") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (n[i] < '0' || n[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(n[i] - '0');
    }
    *base = v;
    return true;
}

static void tool_jr_free(struct tool_jr *t)
{
    for (size_t i = 0; i < t->nodd; i++)
        free(t->odd[i]);
    free(t->odd);
    free(t->segs);
}

/* List DIR: segments (sorted) and odd entries. Returns 0 or -1 (printed). */
static int tool_list(const char *dir, struct tool_jr *t)
{
    memset(t, 0, sizeof(*t));
    t->dir = dir;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cityhub: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    size_t cap = 0, ocap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        bool ok = stat(p, &sb) == 0;
        uint64_t base;
        if (ok && S_ISREG(sb.st_mode) && tool_seg_name(e->d_name, &base)) {
            if (t->nsegs == cap) {
                cap = cap ? cap * 2 : 64;
                struct tool_seg *n = realloc(t->segs, cap * sizeof(*n));
                if (!n)
                    abort();
                t->segs = n;
            }
            struct tool_seg *s = &t->segs[t->nsegs++];
            memset(s, 0, sizeof(*s));
            memcpy(s->name, e->d_name, 25); /* 24 characters, checked */
            s->base = base;
            s->size = (uint64_t)sb.st_size;
            continue;
        }
        if (ok && S_ISDIR(sb.st_mode) && !strcmp(e->d_name, "cursors"))
            continue;
        if (t->nodd == ocap) {
            ocap = ocap ? ocap * 2 : 8;
            char **n = realloc(t->odd, ocap * sizeof(*n));
            if (!n)
                abort();
            t->odd = n;
        }
        t->odd[t->nodd++] = strdup(e->d_name);
    }
    closedir(d);
    if (t->nsegs > 1)
        qsort(t->segs, t->nsegs, sizeof(*t->segs), seg_cmp_base);
    return 0;
}

/* A window of one segment file, read sequentially. */
struct scan_in {
    int fd;
    uint8_t *buf;
    uint64_t off; /* file offset of buf[0] */
    size_t len;
    uint64_t size;
    uint64_t bytes_read; /* for the progress line */
};

/* n bytes at off, or NULL when the file ends first (or a read fails). */
static const uint8_t *scan_get(struct scan_in *in, uint64_t off, size_t n)
{
    if (off + n > in->size)
        return NULL;
    if (off >= in->off && off + n <= in->off + in->len)
        return in->buf + (off - in->off);
    size_t want = SCAN_BUF;
    if (in->size - off < want)
        want = (size_t)(in->size - off);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(in->fd, in->buf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    in->bytes_read += got;
    in->off = off;
    in->len = got;
    return got >= n ? in->buf : NULL;
}

enum { FR_OK, FR_TORN, FR_BAD };

/* Check the frame at off: FR_OK with *len, *seq; FR_TORN when the file ends
 * inside it; FR_BAD otherwise (*why). crc false: frame header only. */
static int scan_frame(struct scan_in *in, uint64_t off, bool crc, uint32_t *len, uint64_t *seq,
                      const char **why)
{
    const uint8_t *h = scan_get(in, off, HUB_JOURNAL_FRAME_SIZE);
    if (!h) {
        *why = "torn frame header";
        return FR_TORN;
    }
    uint8_t fh[HUB_JOURNAL_FRAME_SIZE];
    memcpy(fh, h, sizeof(fh));
    uint32_t n =
        (uint32_t)fh[4] | (uint32_t)fh[5] << 8 | (uint32_t)fh[6] << 16 | (uint32_t)fh[7] << 24;
    n &= 0x00ffffffu; /* the top byte is the record type (dictionary segments) */
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s |= (uint64_t)fh[8 + i] << (8 * i);
    if (n == 0 || n > HUB_JOURNAL_MAX_RECORD) {
        *why = n == 0 ? "zero length" : "bad record length";
        return FR_BAD;
    }
    *len = n;
    *seq = s;
    if (off + HUB_JOURNAL_FRAME_SIZE + n > in->size) {
        *why = "record runs past the end of the file";
        return FR_TORN;
    }
    if (!crc)
        return FR_OK;
    const uint8_t *p = scan_get(in, off, HUB_JOURNAL_FRAME_SIZE + n);
    if (!p) {
        *why = "short read";
        return FR_BAD;
    }
    uint32_t stored =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint32_t c = hub_crc32c(0, p + 4, (size_t)n + 12);
    if (hub_crc32c_unmask(stored) != c) {
        *why = "CRC mismatch";
        return FR_BAD;
    }
    return FR_OK;
}

struct scan_cb {
    void (*damage)(void *ctx, const struct tool_seg *s, uint64_t off, uint64_t bytes,
                   uint64_t records, bool records_known, const char *why);
    void (*progress)(void *ctx, uint64_t bytes);
    void *ctx;
};

/* Scan one segment: every frame, in order (crc: checking each CRC). After a
 * bad frame it looks for the next valid frame (a CRC-checked one with a
 * later seq) and reports the damaged range between. limit_seq: the next
 * segment's base (UINT64_MAX for the last). */
static void scan_segment(const char *dir, struct tool_seg *s, bool crc, bool last,
                         uint64_t limit_seq, const struct scan_cb *cb, uint8_t *buf)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, s->name);
    struct scan_in in = {.fd = open(p, O_RDONLY | O_CLOEXEC), .buf = buf, .size = s->size};
    s->end_seq = s->base;
    if (in.fd < 0) {
        if (cb->damage)
            cb->damage(cb->ctx, s, 0, s->size, 0, false, strerror(errno));
        s->damaged_ranges++;
        s->damaged_bytes += s->size;
        return;
    }
    const uint8_t *h = scan_get(&in, 0, HUB_JOURNAL_HEADER_SIZE);
    uint64_t hbase = 0;
    if (h)
        for (int i = 0; i < 8; i++)
            hbase |= (uint64_t)h[8 + i] << (8 * i);
    uint64_t off = HUB_JOURNAL_HEADER_SIZE;
    if (!h || memcmp(h, "CHJ1", 4) != 0 || (h[4] != 1 && h[4] != 2) || h[5] || h[6] || h[7] ||
        hbase != s->base) {
        if (s->size == 0 && last) {
            close(in.fd); /* a segment just created: its header comes with its first record */
            return;
        }
        uint64_t n = s->size < HUB_JOURNAL_HEADER_SIZE ? s->size : HUB_JOURNAL_HEADER_SIZE;
        if (cb->damage)
            cb->damage(cb->ctx, s, 0, n, 0, true,
                       s->size < HUB_JOURNAL_HEADER_SIZE ? "torn segment header"
                                                         : "bad segment header");
        s->damaged_ranges++;
        s->damaged_bytes += n;
    }
    uint64_t expect = s->base, last_progress = 0;
    while (off < s->size) {
        uint32_t len = 0;
        uint64_t seq = 0;
        const char *why = NULL;
        int r = scan_frame(&in, off, crc, &len, &seq, &why);
        if (r == FR_OK && seq == expect && seq < limit_seq) {
            s->records++;
            expect = seq + 1;
            off += HUB_JOURNAL_FRAME_SIZE + len;
            if (cb->progress && in.bytes_read - last_progress >= (1u << 20)) {
                cb->progress(cb->ctx, in.bytes_read - last_progress);
                last_progress = in.bytes_read;
            }
            continue;
        }
        if (r == FR_OK && seq >= limit_seq) {
            why = "record past the next segment's base (shadowed)";
        } else if (r == FR_OK) {
            why = "seq out of order";
        }
        if (r == FR_TORN && last) {
            /* A record being written right now, or a crash's torn write (the
             * hub cuts it at its next start): no record accepted is in it. */
            s->torn_tail = true;
            break;
        }
        /* Resynchronise: the next offset holding a valid frame with a seq
         * after the last good one. Only damage is searched byte by byte. */
        uint64_t at = off + 1, found = UINT64_MAX, fseq = 0;
        bool zeros = true;
        for (uint64_t k = off; k < s->size && zeros; k++) {
            const uint8_t *b = scan_get(&in, k, 1);
            zeros = b && *b == 0;
        }
        for (; !zeros && at + HUB_JOURNAL_FRAME_SIZE < s->size; at++) {
            uint32_t l2;
            uint64_t s2;
            const char *w2;
            if (scan_frame(&in, at, true, &l2, &s2, &w2) == FR_OK && s2 >= expect &&
                s2 < limit_seq && s2 < expect + (s->size - off)) {
                found = at;
                fseq = s2;
                break;
            }
        }
        uint64_t end = found == UINT64_MAX ? s->size : found;
        bool known = found != UINT64_MAX || !last;
        uint64_t lost = found != UINT64_MAX       ? fseq - expect
                        : limit_seq != UINT64_MAX ? limit_seq - expect
                                                  : 0;
        if (cb->damage)
            cb->damage(cb->ctx, s, off, end - off, lost, known,
                       zeros ? "zero-filled to the end" : why);
        s->damaged_ranges++;
        s->damaged_bytes += end - off;
        if (found == UINT64_MAX)
            break;
        off = found;
        expect = fseq;
    }
    if (cb->progress && in.bytes_read > last_progress)
        cb->progress(cb->ctx, in.bytes_read - last_progress);
    s->end_seq = expect;
    close(in.fd);
}

static void scan_all(struct tool_jr *t, bool crc, const struct scan_cb *cb)
{
    uint8_t *buf = malloc(SCAN_BUF);
    if (!buf)
        abort();
    for (size_t i = 0; i < t->nsegs; i++) {
        bool last = i + 1 == t->nsegs;
        scan_segment(t->dir, &t->segs[i], crc, last, last ? UINT64_MAX : t->segs[i + 1].base, cb,
                     buf);
    }
    free(buf);
}

/* The journal directory of a tool: PATH, or hub.journal.path of -c FILE. */
struct tool_args {
    const char *dir;
    struct ch_config *cfg;
    bool json;
    uint64_t from, to;
    bool from_set, to_set;
    uint64_t progress_mb;
};

static void tool_usage(FILE *f)
{
    fprintf(f, "usage: cityhub journal stat   (PATH | -c FILE) [--json]\n"
               "       cityhub journal verify (PATH | -c FILE) [--progress-mb N]\n"
               "       cityhub journal dump   (PATH | -c FILE) [--from SEQ] [--to SEQ]\n"
               "       cityhub journal -c FILE [--dump [--from SEQ]]   (the older form)\n"
               "\n"
               "PATH is the journal directory (hub.journal.path). All of them only read:\n"
               "safe beside a running hub.\n"
               "  stat     segments (count, first and last, sizes), total size against\n"
               "           max_size (with -c), first and next seq, records stored, each\n"
               "           cursor's seq, lag and the age of its oldest unsent reading, and\n"
               "           anything odd (files that are not segments, gaps between segments)\n"
               "  verify   check the CRC of every record of every segment; print each damaged\n"
               "           range (segment, byte offset, bytes, records) and each gap. Progress\n"
               "           on stderr (a tty: a running line; else every N MB, default 64).\n"
               "           exit status 0 clean, 1 damage found, 2 usage or unreadable\n"
               "  dump     every stored reading (SEQ from..to, inclusive) as line protocol,\n"
               "           one line per record, through the first output's formatter\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || end == s || *s == '-')
        return -1;
    *v = x;
    return 0;
}

static int tool_args_parse(int argc, char **argv, struct tool_args *a)
{
    memset(a, 0, sizeof(*a));
    a->progress_mb = 64;
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--json")) {
            a->json = true;
        } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            tool_usage(stdout);
            exit(0);
        } else if (!strcmp(o, "-c") || !strcmp(o, "--config") || !strcmp(o, "--from") ||
                   !strcmp(o, "--to") || !strcmp(o, "--progress-mb")) {
            if (!v) {
                fprintf(stderr, "cityhub journal %s: %s needs a value\n", argv[0], o);
                return -1;
            }
            i++;
            if (o[1] == 'c' || !strcmp(o, "--config")) {
                config = v;
                continue;
            }
            uint64_t x;
            if (parse_u64(v, &x) < 0) {
                fprintf(stderr, "cityhub journal %s: bad %s \"%s\"\n", argv[0], o, v);
                return -1;
            }
            if (!strcmp(o, "--from")) {
                a->from = x;
                a->from_set = true;
            } else if (!strcmp(o, "--to")) {
                a->to = x;
                a->to_set = true;
            } else {
                a->progress_mb = x ? x : 1;
            }
        } else if (o[0] == '-') {
            fprintf(stderr, "cityhub journal %s: unknown option %s\n", argv[0], o);
            return -1;
        } else if (a->dir) {
            fprintf(stderr, "cityhub journal %s: unexpected argument \"%s\"\n", argv[0], o);
            return -1;
        } else {
            a->dir = o;
        }
    }
    if ((a->json && strcmp(argv[0], "stat") != 0) ||
        ((a->from_set || a->to_set) && strcmp(argv[0], "dump") != 0)) {
        fprintf(stderr, "cityhub journal %s: option not for this tool\n", argv[0]);
        return -1;
    }
    if (!!a->dir == !!config) {
        fprintf(stderr, "cityhub journal %s: give the journal directory or -c FILE (one)\n",
                argv[0]);
        return -1;
    }
    if (config) {
        unsigned nerr = 0;
        a->cfg = ch_config_load(config, stderr, &nerr);
        if (!a->cfg)
            return -1;
        a->dir = a->cfg->hub.journal.path;
    }
    return 0;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The timestamp of record seq (the oldest unsent of a cursor), or false. */
static bool record_time(hub_journal_t *j, uint64_t seq, int64_t *t)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf payload;
    bool ok = false;
    hub_buf_init(&payload, HUB_JOURNAL_MAX_RECORD);
    if (hub_journal_reader_new(j, seq, &rd) == HUB_OK) {
        uint64_t at = 0;
        for (int tries = 0; tries < 4 && !ok; tries++) {
            int r = hub_journal_reader_next(rd, &payload, &at, NULL);
            if (r == HUB_ECORRUPT)
                continue;
            if (r != HUB_OK)
                break;
            hub_reading_t *rdg = NULL;
            /* a reading on boot time has no wall-clock age to show */
            if (hub_reading_decode(payload.data, payload.len, &rdg) == HUB_OK &&
                !hub_reading_boottime(rdg, NULL)) {
                *t = hub_reading_time(rdg);
                ok = true;
            }
            hub_reading_free(rdg);
            break;
        }
        hub_journal_reader_free(rd);
    }
    hub_buf_free(&payload);
    return ok;
}

struct tool_cursor {
    char name[HUB_JOURNAL_MAX_NAME];
    int state; /* HUB_OK, HUB_EEMPTY (no file), HUB_ECORRUPT, HUB_EIO */
    uint64_t seq, lag;
    bool have_age;
    double age_s;
};

/* Cursor names: the files of cursors/ and, with a config, its outputs. */
static size_t tool_cursors(const struct tool_args *a, hub_journal_t *j,
                           const struct hub_journal_stats *st, struct tool_cursor *out, size_t cap)
{
    size_t n = 0;
    char p[4096];
    snprintf(p, sizeof(p), "%s/cursors", a->dir);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] == '.' || hub_journal_check_name(e->d_name, NULL, 0) != 0)
            continue;
        memcpy(out[n++].name, e->d_name, strlen(e->d_name) + 1); /* a checked name */
    }
    if (d)
        closedir(d);
    for (size_t i = 0; a->cfg && i < a->cfg->noutputs && n < cap; i++) {
        const struct drv_output_common *oc = a->cfg->outputs[i].cfg;
        bool have = false;
        for (size_t k = 0; k < n && !have; k++)
            have = !strcmp(out[k].name, oc->name);
        if (!have)
            snprintf(out[n++].name, sizeof(out->name), "%s", oc->name);
    }
    int64_t now = wall_ns();
    for (size_t i = 0; i < n; i++) {
        struct tool_cursor *c = &out[i];
        c->state = hub_journal_cursor_peek(j, c->name, &c->seq);
        if (c->state != HUB_OK)
            continue;
        uint64_t from = c->seq < st->first_seq ? st->first_seq : c->seq;
        c->lag = st->next_seq > from ? st->next_seq - from : 0;
        int64_t t;
        if (c->lag && record_time(j, from, &t)) {
            c->have_age = true;
            c->age_s = (double)(now - t) / 1e9;
        }
    }
    return n;
}

static void scan_gaps(const struct tool_jr *t, uint64_t *missing, uint64_t *overlap)
{
    *missing = *overlap = 0;
    for (size_t i = 0; i + 1 < t->nsegs; i++) {
        uint64_t e = t->segs[i].end_seq, b = t->segs[i + 1].base;
        if (e < b)
            *missing += b - e;
    }
    (void)overlap;
}

int ch_cmd_journal_stat(int argc, char **argv)
{
    struct tool_args a;
    if (tool_args_parse(argc, argv, &a) < 0) {
        tool_usage(stderr);
        return EXIT_USAGE;
    }
    int rc = EXIT_USAGE;
    struct tool_jr t;
    hub_journal_t *j = NULL;
    json_t *js = NULL;
    char err[512];
    if (tool_list(a.dir, &t) < 0)
        goto out_cfg;
    scan_all(&t, false, &(struct scan_cb){0});
    struct hub_journal_opts jo = {.dir = a.dir, .read_only = true};
    if (hub_journal_open(&jo, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "cityhub: %s\n", err);
        goto out;
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t total = 0, records = 0, missing, overlap;
    for (size_t i = 0; i < t.nsegs; i++) {
        total += t.segs[i].size;
        records += t.segs[i].records;
    }
    scan_gaps(&t, &missing, &overlap);
    uint64_t max_size = 0;
    if (a.cfg)
        max_size = a.cfg->hub.journal.max_size ? a.cfg->hub.journal.max_size : 256ull << 20;
    struct tool_cursor cur[HUB_JOURNAL_MAX_CURSORS * 2];
    size_t ncur = tool_cursors(&a, j, &st, cur, sizeof(cur) / sizeof(cur[0]));

    if (a.json) {
        js = json_object();
        json_object_set_new(js, "journal", json_string(a.dir));
        json_t *segs = json_object();
        json_object_set_new(segs, "count", json_integer((json_int_t)t.nsegs));
        if (t.nsegs) {
            json_object_set_new(segs, "first", json_string(t.segs[0].name));
            json_object_set_new(segs, "first_bytes", json_integer((json_int_t)t.segs[0].size));
            json_object_set_new(segs, "last", json_string(t.segs[t.nsegs - 1].name));
            json_object_set_new(segs, "last_bytes",
                                json_integer((json_int_t)t.segs[t.nsegs - 1].size));
        }
        json_object_set_new(js, "segments", segs);
        json_object_set_new(js, "bytes", json_integer((json_int_t)total));
        json_object_set_new(js, "max_size",
                            max_size ? json_integer((json_int_t)max_size) : json_null());
        json_object_set_new(js, "first_seq", json_integer((json_int_t)st.first_seq));
        json_object_set_new(js, "next_seq", json_integer((json_int_t)st.next_seq));
        json_object_set_new(js, "stored", json_integer((json_int_t)records));
        json_t *cs = json_array();
        for (size_t i = 0; i < ncur; i++) {
            json_t *c = json_object();
            json_object_set_new(c, "name", json_string(cur[i].name));
            if (cur[i].state == HUB_OK) {
                json_object_set_new(c, "seq", json_integer((json_int_t)cur[i].seq));
                json_object_set_new(c, "lag", json_integer((json_int_t)cur[i].lag));
                json_object_set_new(c, "oldest_unsent_age_s",
                                    cur[i].have_age ? json_real(cur[i].age_s) : json_null());
            } else {
                json_object_set_new(
                    c, "state",
                    json_string(cur[i].state == HUB_EEMPTY ? "none" : hub_strerror(cur[i].state)));
            }
            json_array_append_new(cs, c);
        }
        json_object_set_new(js, "cursors", cs);
        json_t *odd = json_array();
        for (size_t i = 0; i < t.nodd; i++)
            json_array_append_new(odd, json_string(t.odd[i]));
        json_object_set_new(js, "odd_files", odd);
        json_t *gaps = json_array();
        for (size_t i = 0; i + 1 < t.nsegs; i++) {
            if (t.segs[i].end_seq >= t.segs[i + 1].base)
                continue;
            json_t *g = json_object();
            json_object_set_new(g, "after", json_string(t.segs[i].name));
            json_object_set_new(g, "from_seq", json_integer((json_int_t)t.segs[i].end_seq));
            json_object_set_new(g, "to_seq", json_integer((json_int_t)t.segs[i + 1].base - 1));
            json_array_append_new(gaps, g);
        }
        json_object_set_new(js, "gaps", gaps);
        json_object_set_new(js, "torn_tail",
                            json_boolean(t.nsegs && t.segs[t.nsegs - 1].torn_tail));
        char *s = json_dumps(js, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
            printf("%s\n", s);
        free(s);
        rc = 0;
        goto out;
    }
    printf("journal %s\n", a.dir);
    printf("segments %zu\n", t.nsegs);
    if (t.nsegs) {
        printf("first_segment %s %" PRIu64 "\n", t.segs[0].name, t.segs[0].size);
        printf("last_segment %s %" PRIu64 "\n", t.segs[t.nsegs - 1].name, t.segs[t.nsegs - 1].size);
    }
    if (max_size)
        printf("bytes %" PRIu64 " of max_size %" PRIu64 " (%.1f%%)\n", total, max_size,
               100.0 * (double)total / (double)max_size);
    else
        printf("bytes %" PRIu64 "\n", total);
    printf("first_seq %" PRIu64 "\n", st.first_seq);
    printf("next_seq %" PRIu64 "\n", st.next_seq);
    printf("stored %" PRIu64 "\n", records);
    for (size_t i = 0; i < ncur; i++) {
        if (cur[i].state == HUB_EEMPTY) {
            printf("cursor %s none\n", cur[i].name);
        } else if (cur[i].state != HUB_OK) {
            printf("cursor %s %s\n", cur[i].name, hub_strerror(cur[i].state));
        } else if (cur[i].have_age) {
            printf("cursor %s %" PRIu64 " lag %" PRIu64 " oldest_unsent_age %.1fs\n", cur[i].name,
                   cur[i].seq, cur[i].lag, cur[i].age_s);
        } else {
            printf("cursor %s %" PRIu64 " lag %" PRIu64 "\n", cur[i].name, cur[i].seq, cur[i].lag);
        }
    }
    for (size_t i = 0; i < t.nodd; i++)
        printf("odd %s (not a segment)\n", t.odd[i]);
    for (size_t i = 0; i + 1 < t.nsegs; i++)
        if (t.segs[i].end_seq < t.segs[i + 1].base)
            printf("gap after %s: seqs %" PRIu64 "..%" PRIu64 " missing\n", t.segs[i].name,
                   t.segs[i].end_seq, t.segs[i + 1].base - 1);
    if (t.nsegs && t.segs[t.nsegs - 1].torn_tail)
        printf("torn_tail %s (a record being written, or cut at the next start)\n",
               t.segs[t.nsegs - 1].name);
    rc = 0;
out:
    json_decref(js);
    if (j)
        hub_journal_close(j);
    tool_jr_free(&t);
out_cfg:
    ch_config_free(a.cfg);
    return rc;
}

struct verify_ctx {
    bool tty;
    uint64_t done, total, every, next_report;
    unsigned damaged;
};

static void verify_damage(void *ctx, const struct tool_seg *s, uint64_t off, uint64_t bytes,
                          uint64_t records, bool records_known, const char *why)
{
    struct verify_ctx *v = ctx;
    v->damaged++;
    if (v->tty)
        fprintf(stderr, "\r\033[K");
    if (records_known)
        printf("damaged %s offset %" PRIu64 " bytes %" PRIu64 " records %" PRIu64 " (%s)\n",
               s->name, off, bytes, records, why);
    else
        printf("damaged %s offset %" PRIu64 " bytes %" PRIu64 " records ? (%s)\n", s->name, off,
               bytes, why);
}

static void verify_progress(void *ctx, uint64_t bytes)
{
    struct verify_ctx *v = ctx;
    v->done += bytes;
    if (v->tty) {
        fprintf(stderr, "\rverify: %" PRIu64 " of %" PRIu64 " MB", v->done >> 20, v->total >> 20);
    } else if (v->done >= v->next_report) {
        fprintf(stderr, "verify: %" PRIu64 " of %" PRIu64 " MB\n", v->done >> 20, v->total >> 20);
        v->next_report = v->done + v->every;
    }
}

int ch_cmd_journal_verify(int argc, char **argv)
{
    struct tool_args a;
    if (tool_args_parse(argc, argv, &a) < 0) {
        tool_usage(stderr);
        return EXIT_USAGE;
    }
    struct tool_jr t;
    if (tool_list(a.dir, &t) < 0) {
        ch_config_free(a.cfg);
        return EXIT_USAGE;
    }
    struct verify_ctx v = {.tty = isatty(2), .every = a.progress_mb << 20};
    v.next_report = v.every;
    for (size_t i = 0; i < t.nsegs; i++)
        v.total += t.segs[i].size;
    struct scan_cb cb = {.damage = verify_damage, .progress = verify_progress, .ctx = &v};
    scan_all(&t, true, &cb);
    if (v.tty)
        fprintf(stderr, "\r\033[K");
    uint64_t records = 0, gaps = 0;
    for (size_t i = 0; i < t.nsegs; i++)
        records += t.segs[i].records;
    for (size_t i = 0; i + 1 < t.nsegs; i++) {
        const struct tool_seg *s = &t.segs[i];
        if (s->end_seq < t.segs[i + 1].base && !s->damaged_ranges) {
            /* Records missing with no damaged bytes to show for them. */
            printf("gap after %s: seqs %" PRIu64 "..%" PRIu64 " missing\n", s->name, s->end_seq,
                   t.segs[i + 1].base - 1);
            gaps++;
        }
    }
    for (size_t i = 0; i < t.nodd; i++)
        printf("odd %s (not a segment)\n", t.odd[i]);
    if (t.nsegs && t.segs[t.nsegs - 1].torn_tail)
        printf("torn_tail %s (a record being written, or cut at the next start)\n",
               t.segs[t.nsegs - 1].name);
    bool bad = v.damaged || gaps;
    printf("%s: %zu segments, %" PRIu64 " bytes, %" PRIu64 " records: %s", a.dir, t.nsegs, v.total,
           records, bad ? "DAMAGED" : "ok");
    if (bad)
        printf(" (%u damaged ranges, %" PRIu64 " gaps)", v.damaged, gaps);
    printf("\n");
    tool_jr_free(&t);
    ch_config_free(a.cfg);
    return bad ? 1 : 0;
}

int ch_cmd_journal_dump(int argc, char **argv)
{
    struct tool_args a;
    if (tool_args_parse(argc, argv, &a) < 0) {
        tool_usage(stderr);
        return EXIT_USAGE;
    }
    int rc = 1;
    hub_journal_t *j = NULL;
    char err[512];
    const struct drv_ops *fmt = dump_format(a.cfg);
    struct hub_journal_opts jo = {.dir = a.dir, .read_only = true};
    if (!fmt) {
        fprintf(stderr, "cityhub: no output driver in this build can format readings\n");
        goto out;
    }
    if (hub_journal_open(&jo, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "cityhub: %s\n", err);
        goto out;
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    /* A live daemon appends on: stop at the end seen now. */
    uint64_t to = a.to_set && a.to < st.next_seq ? a.to + 1 : st.next_seq;
    rc = dump_records(j, fmt, a.from_set ? a.from : st.first_seq, to, false);
out:
    if (j)
        hub_journal_close(j);
    ch_config_free(a.cfg);
    return rc;
}
