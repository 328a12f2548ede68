/* tests/fault/fault.h — what the C programs of the fault suite share: a
 * scratch directory, records that say which seq and which generation they
 * were appended as (so that a wrong record is always recognised), reading a
 * whole journal back against what was appended, and the checks' reporting.
 *
 * Each program runs FAULT_ITERS iterations (its own default when unset) from
 * FAULT_SEED (default: the time), prints the seed first so that a failure can
 * be replayed, and exits 1 when any check failed. */
#ifndef TESTS_FAULT_H
#define TESTS_FAULT_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/buf.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/reading.h"

static unsigned long fault_failures;
static uint64_t fault_rng_state, fault_seed;

static inline uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (fault_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* FAULT_ITERS (or def), FAULT_SEED; prints them. */
static inline unsigned long fault_init(const char *prog, unsigned long def)
{
    const char *it = getenv("FAULT_ITERS"), *sd = getenv("FAULT_SEED");
    unsigned long iters = it && *it ? strtoul(it, NULL, 10) : def;
    uint64_t seed = sd && *sd ? strtoull(sd, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    fault_rng_state = fault_seed = seed;
    hub_log_threshold = getenv("FAULT_VERBOSE") ? HUB_LOG_DEBUG : HUB_LOG_ERROR;
    printf("%s: FAULT_SEED=%" PRIu64 " FAULT_ITERS=%lu\n", prog, seed, iters);
    fflush(stdout);
    return iters;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fault_failures++;                                                                      \
            if (fault_failures <= 20) {                                                            \
                printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                             \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static inline int fault_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void rm_rf(const char *dir)
{
    nftw(dir, fault_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh, empty directory path (not created: the journal creates it). */
static inline void fresh_dir(char *out, size_t n, const char *base, const char *name)
{
    snprintf(out, n, "%s/%s", base, name);
    rm_rf(out);
}

static inline char *scratch_base(const char *prog)
{
    static char b[128];
    snprintf(b, sizeof(b), "%s/cityhub-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             prog);
    if (!mkdtemp(b)) {
        perror("mkdtemp");
        exit(2);
    }
    return b;
}

/* The record appended as seq s in generation gen: a reading whose fields
 * name both, and whose size varies with them. Returns its length. */
static inline size_t make_record(uint64_t s, uint32_t gen, uint8_t *buf, size_t cap)
{
    hub_reading_t *r = hub_reading_new("fault", (int64_t)(1700000000000000000ll + s));
    char pad[64];
    size_t padn = (size_t)((s * 7 + gen) % 40);
    memset(pad, 'x', padn);
    pad[padn] = 0;
    hub_reading_add_tag(r, "dev", "d1");
    hub_reading_add_uint(r, "seq", s);
    hub_reading_add_uint(r, "gen", gen);
    if (padn)
        hub_reading_add_string(r, "pad", pad);
    size_t n = hub_reading_encode_to(r, buf, cap);
    hub_reading_free(r);
    return n;
}

static inline int append_rec(hub_journal_t *j, uint64_t expect_seq, uint32_t gen)
{
    uint8_t buf[512];
    size_t n = make_record(expect_seq, gen, buf, sizeof(buf));
    uint64_t s = UINT64_MAX;
    int rc = hub_journal_append(j, buf, n, &s);
    if (rc == HUB_OK)
        CHECK(s == expect_seq, "append got seq %" PRIu64 ", expected %" PRIu64, s, expect_seq);
    return rc;
}

/* Is payload the record of seq s in generation gen? It must decode as a
 * reading, and be byte for byte what was appended. */
static inline bool record_is(const struct hub_buf *p, uint64_t s, uint32_t gen)
{
    uint8_t buf[512];
    size_t n = make_record(s, gen, buf, sizeof(buf));
    hub_reading_t *r = NULL;
    if (hub_reading_decode(p->data, p->len, &r) != HUB_OK)
        return false;
    hub_reading_free(r);
    return p->len == n && memcmp(p->data, buf, n) == 0;
}

/* Read the journal from seq from to its end. For each record returned:
 * check it against gen[seq] (gen NULL: generation 0), that its seq is past
 * the one before (in order, never twice) and set got[seq] (when got is not
 * NULL and seq < cap). Returns the number of records read; *wrong counts
 * records that were not what was appended, or out of order. */
static inline uint64_t read_all(hub_journal_t *j, uint64_t from, const uint32_t *gen, bool *got,
                                uint64_t cap, uint64_t *wrong)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf p;
    uint64_t n = 0, last = 0;
    hub_buf_init(&p, HUB_JOURNAL_MAX_RECORD);
    if (hub_journal_reader_new(j, from, &rd) != HUB_OK) {
        CHECK(0, "reader_new failed");
        hub_buf_free(&p);
        return 0;
    }
    for (int guard = 0; guard < 1000000; guard++) {
        uint64_t s = 0;
        int rc = hub_journal_reader_next(rd, &p, &s, NULL);
        if (rc == HUB_ECORRUPT)
            continue;
        if (rc != HUB_OK)
            break;
        bool ok = s < cap && record_is(&p, s, gen ? gen[s] : 0);
        if (!ok) {
            (*wrong)++;
            CHECK(ok, "a wrong record was returned as seq %" PRIu64 " (%zu bytes)", s, p.len);
        }
        if (n && s <= last) {
            (*wrong)++;
            CHECK(s > last, "seq %" PRIu64 " returned after seq %" PRIu64, s, last);
        }
        last = s;
        if (got && s < cap)
            got[s] = true;
        n++;
    }
    hub_journal_reader_free(rd);
    hub_buf_free(&p);
    return n;
}

/* The record at seq reads back as the one appended as seq in generation
 * gen (the next append after damage or a cut). */
static inline void check_reads_back(hub_journal_t *j, uint64_t seq, uint32_t gen, const char *what)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf p;
    hub_buf_init(&p, HUB_JOURNAL_MAX_RECORD);
    hub_journal_reader_new(j, seq, &rd);
    uint64_t rs = 0;
    int rc;
    do
        rc = hub_journal_reader_next(rd, &p, &rs, NULL);
    while (rc == HUB_ECORRUPT);
    CHECK(rc == HUB_OK && rs == seq && record_is(&p, seq, gen),
          "%s: the record appended after it does not read back (%s)", what, hub_strerror(rc));
    hub_journal_reader_free(rd);
    hub_buf_free(&p);
}

static inline hub_journal_t *jopen(const char *dir, uint64_t seg, uint64_t max)
{
    struct hub_journal_opts o = {.dir = dir, .segment_size = seg, .max_size = max};
    hub_journal_t *j = NULL;
    char err[512];
    int rc = hub_journal_open(&o, &j, err, sizeof(err));
    CHECK(rc == HUB_OK, "open %s: %s", dir, err);
    return rc == HUB_OK ? j : NULL;
}

static inline uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static inline void seg_path(const char *dir, uint64_t base, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".seg", dir, base);
}

static inline int fault_done(const char *prog)
{
    if (fault_failures)
        printf("%s: %lu check(s) FAILED (replay: FAULT_SEED=%" PRIu64 ")\n", prog, fault_failures,
               fault_seed);
    else
        printf("%s: ok\n", prog);
    return fault_failures ? 1 : 0;
}

#endif
