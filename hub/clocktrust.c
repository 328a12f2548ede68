/* hub/clocktrust.c — the trust in the wall clock, boot-time stamps and
 * their re-stamping (hub/clocktrust.h).
 *
 * One process-wide state under a mutex; stamping, which every poll does,
 * reads one atomic flag. The state file is written with a temporary file
 * and a rename; the write that records this boot's offset is synced (it
 * decides the time of every reading re-stamped later), the periodic ones
 * while untrusted are not (they only narrow an estimate). */
#include "hub/clocktrust.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/log.h"

/* Seconds since the epoch of the source this program was built from (the
 * Makefile passes SOURCE_DATE_EPOCH or the last commit's date). */
#ifndef CITYHUB_BUILD_EPOCH
#define CITYHUB_BUILD_EPOCH 0
#endif

#define WHO "clock"
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define FAKE_HWCLOCK_PATH "/etc/fake-hwclock.data"
#define STATE_HEADER "cityhub-clock 1\n"
#define STATE_PATH_MAX 4096
/* An estimated boot ends this long before the next one began: its last
 * readings came at most HUB_CLOCK_SAVE_NS after the last save. */
#define EST_MARGIN_NS (HUB_CLOCK_SAVE_NS + HUB_NS_PER_S)

static struct {
    pthread_mutex_t mu; /* guards all but the atomics */
    bool active;
    enum hub_clock_policy policy;
    bool strict; /* AUTO asks for the kernel's word */
    int64_t step_ns;
    char state_path[STATE_PATH_MAX];
    uint8_t boot[HUB_READING_BOOT_ID];
    _Atomic bool untrusted; /* active and not trusted: stamps go on boot time */
    bool trusted;
    const char *reason;
    int64_t offset_ns; /* this boot's realtime - boottime, once trusted */
    int64_t trusted_at_ns;
    bool have_prev;
    int64_t prev_offset_ns;
    struct hub_clock_boot boots[HUB_CLOCK_STATE_BOOTS]; /* oldest first; this boot last */
    size_t nboots;
    bool saved;
    int64_t saved_boot_ns;
    _Atomic uint64_t boottime_readings;
    uint64_t restamped, estimated, steps;
    int64_t last_step_ns, last_step_at_ns;
    struct hub_metric *m_synced, *m_restamped, *m_estimated, *m_steps, *m_boottime;
    /* the checking thread */
    pthread_mutex_t tmu;
    pthread_cond_t tcond;
    bool thread_on, stopping;
    pthread_t thread;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

int64_t hub_clock_build_ns(void)
{
    return (int64_t)CITYHUB_BUILD_EPOCH * HUB_NS_PER_S;
}

const char *hub_clock_judge(enum hub_clock_policy p, bool strict, int64_t build_ns, int64_t real_ns,
                            bool kernel_synced)
{
    if (real_ns < build_ns)
        return "time before build date";
    bool need = p == HUB_CLOCK_SYNC_YES || (p == HUB_CLOCK_SYNC_AUTO && strict);
    if (need && !kernel_synced)
        return "adjtimex unsynchronised";
    return NULL;
}

const char *hub_clock_step_text(int64_t ns, char *buf, size_t len)
{
    char sign = ns < 0 ? '-' : '+';
    uint64_t a = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    /* whole seconds from a minute on (rounded), milliseconds below */
    uint64_t s = a >= 60 * (uint64_t)HUB_NS_PER_S ? (a + (uint64_t)HUB_NS_PER_S / 2) / HUB_NS_PER_S
                                                  : a / HUB_NS_PER_S;
    uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d)
        snprintf(buf, len, "%c%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", sign, d, h,
                 m, sec);
    else if (h)
        snprintf(buf, len, "%c%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", sign, h, m, sec);
    else if (m)
        snprintf(buf, len, "%c%" PRIu64 "m%02" PRIu64 "s", sign, m, sec);
    else if (s)
        snprintf(buf, len, "%c%" PRIu64 ".%03" PRIu64 "s", sign, s,
                 a % (uint64_t)HUB_NS_PER_S / (uint64_t)HUB_NS_PER_MS);
    else
        snprintf(buf, len, "%c%" PRIu64 "ms", sign, a / (uint64_t)HUB_NS_PER_MS);
    return buf;
}

/* ---- boot ids and the state file ------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 2*HUB_READING_BOOT_ID hex digits from s (dashes passed over where
 * dashes is true); *used gets the characters read. */
static int parse_hex_id(const char *s, size_t n, bool dashes, uint8_t *id, size_t *used)
{
    size_t i = 0, k = 0;
    while (k < 2 * HUB_READING_BOOT_ID) {
        if (i >= n)
            return -1;
        if (dashes && s[i] == '-' && (k == 8 || k == 12 || k == 16 || k == 20)) {
            i++;
            continue;
        }
        int v = hexval(s[i]);
        if (v < 0)
            return -1;
        if (k % 2 == 0)
            id[k / 2] = (uint8_t)(v << 4);
        else
            id[k / 2] |= (uint8_t)v;
        k++;
        i++;
    }
    *used = i;
    return 0;
}

char *hub_clock_boot_text(const uint8_t *id, char *buf)
{
    for (size_t b = 0; b < HUB_READING_BOOT_ID; b++)
        snprintf(buf + 2 * b, 3, "%02x", id[b]);
    return buf;
}

int hub_clock_parse_boot_id(const char *s, size_t n, uint8_t *id)
{
    size_t used;
    if (n != 36 && !(n == 37 && s[36] == '\n'))
        return -1;
    if (parse_hex_id(s, n, true, id, &used) || used != 36)
        return -1;
    return 0;
}

/* A decimal int64 ("-" allowed in front) at p[*i..n), followed by c. */
static int parse_i64(const char *p, size_t n, size_t *i, char c, int64_t *v)
{
    bool neg = *i < n && p[*i] == '-';
    size_t k = *i + (neg ? 1 : 0), start = k;
    uint64_t x = 0;
    while (k < n && p[k] >= '0' && p[k] <= '9') {
        uint64_t dgt = (uint64_t)(p[k] - '0');
        if (x > (UINT64_MAX - dgt) / 10 || k - start >= 19)
            return -1;
        x = x * 10 + dgt;
        k++;
    }
    if (k == start || k >= n || p[k] != c || x > (uint64_t)INT64_MAX)
        return -1;
    *v = neg ? -(int64_t)x : (int64_t)x;
    *i = k + 1;
    return 0;
}

int hub_clock_state_parse(const char *p, size_t n, struct hub_clock_boot *e)
{
    size_t hl = strlen(STATE_HEADER), i = hl, count = 0;
    if (n < hl || memcmp(p, STATE_HEADER, hl) != 0)
        return -1;
    while (i < n) {
        if (count == HUB_CLOCK_STATE_BOOTS)
            return -1;
        struct hub_clock_boot *b = &e[count];
        size_t used;
        if (parse_hex_id(p + i, n - i, false, b->id, &used) || i + used >= n || p[i + used] != ' ')
            return -1;
        i += used + 1;
        if (i + 1 < n && p[i] == '-' && p[i + 1] == ' ') {
            b->has_offset = false;
            b->offset_ns = 0;
            i += 2;
        } else if (parse_i64(p, n, &i, ' ', &b->offset_ns) == 0) {
            b->has_offset = true;
        } else {
            return -1;
        }
        if (parse_i64(p, n, &i, '\n', &b->last_ns) || b->last_ns < 0)
            return -1;
        for (size_t k = 0; k < count; k++)
            if (!memcmp(e[k].id, b->id, HUB_READING_BOOT_ID))
                return -1; /* a boot twice */
        count++;
    }
    return (int)count;
}

size_t hub_clock_state_format(const struct hub_clock_boot *e, size_t count, char *buf, size_t len)
{
    size_t at = 0;
    int w = snprintf(buf, len, "%s", STATE_HEADER);
    if (w < 0 || (size_t)w >= len)
        return 0;
    at = (size_t)w;
    for (size_t k = 0; k < count; k++) {
        char id[HUB_CLOCK_BOOT_TEXT];
        hub_clock_boot_text(e[k].id, id);
        char off[24] = "-";
        if (e[k].has_offset)
            snprintf(off, sizeof(off), "%" PRId64, e[k].offset_ns);
        w = snprintf(buf + at, len - at, "%s %s %" PRId64 "\n", id, off, e[k].last_ns);
        if (w < 0 || (size_t)w >= len - at)
            return 0;
        at += (size_t)w;
    }
    return at;
}

static struct hub_clock_boot *boot_find(const uint8_t *id, size_t *index)
{
    for (size_t k = 0; k < g.nboots; k++)
        if (!memcmp(g.boots[k].id, id, HUB_READING_BOOT_ID)) {
            if (index)
                *index = k;
            return &g.boots[k];
        }
    return NULL;
}

/* This boot's entry, kept last (the oldest forgotten when full). */
static struct hub_clock_boot *boot_this(void)
{
    size_t k;
    struct hub_clock_boot *b = boot_find(g.boot, &k);
    if (b && k + 1 == g.nboots)
        return b;
    if (b) {
        struct hub_clock_boot keep = *b;
        memmove(&g.boots[k], &g.boots[k + 1], (g.nboots - k - 1) * sizeof(g.boots[0]));
        g.boots[g.nboots - 1] = keep;
        return &g.boots[g.nboots - 1];
    }
    if (g.nboots == HUB_CLOCK_STATE_BOOTS) {
        memmove(&g.boots[0], &g.boots[1], (g.nboots - 1) * sizeof(g.boots[0]));
        g.nboots--;
    }
    b = &g.boots[g.nboots++];
    memset(b, 0, sizeof(*b));
    memcpy(b->id, g.boot, HUB_READING_BOOT_ID);
    return b;
}

static void state_load(void)
{
    g.nboots = 0;
    if (!g.state_path[0])
        return;
    int fd = open(g.state_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            hub_warn(WHO, "%s: %s; earlier boots' clock offsets are not known", g.state_path,
                     strerror(errno));
        return;
    }
    char buf[HUB_CLOCK_STATE_MAX];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    int count = n >= 0 ? hub_clock_state_parse(buf, (size_t)n, g.boots) : -1;
    if (count < 0) {
        hub_warn(WHO,
                 "%s: not a clock state file (or damaged); earlier boots' clock offsets are"
                 " not known",
                 g.state_path);
        return;
    }
    g.nboots = (size_t)count;
}

static void state_save(bool sync)
{
    if (!g.state_path[0])
        return;
    char buf[HUB_CLOCK_STATE_MAX], tmp[STATE_PATH_MAX + 8];
    size_t len = hub_clock_state_format(g.boots, g.nboots, buf, sizeof(buf));
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", g.state_path) >= (int)sizeof(tmp))
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok =
        fd >= 0 && len > 0 && write(fd, buf, len) == (ssize_t)len && (!sync || fdatasync(fd) == 0);
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, g.state_path) != 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        hub_warn(WHO, "%s: cannot write: %s", g.state_path, strerror(e));
    }
    g.saved = true;
}

/* ---- the clock's sources ----------------------------------------------- */

static bool kernel_synced(void)
{
    struct timex tx;
    memset(&tx, 0, sizeof(tx));
    int st = adjtimex(&tx);
    return st != -1 && st != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

#ifdef CITYHUB_TEST_HOOKS
/* Test build: CITYHUB_TEST_CLOCK names a file "OFFSET_NS SYNCED [BOOT_ID]"
 * read at every check: OFFSET_NS is added to the real time, SYNCED (0 or 1)
 * stands for the kernel's flag, BOOT_ID (read at start) for the board's. */
static int fake_read(bool *synced, uint8_t *boot)
{
    const char *path = getenv("CITYHUB_TEST_CLOCK");
    if (!path || !path[0])
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long off;
    int sy;
    char id[64] = "";
    int n = fscanf(f, "%lld %d %63s", &off, &sy, id);
    fclose(f);
    if (n < 2)
        return -1;
    atomic_store(&hub_clock_fake_offset_ns, (int64_t)off);
    *synced = sy != 0;
    if (n == 3 && boot)
        hub_clock_parse_boot_id(id, strlen(id), boot);
    return 0;
}
#endif

static void sample(int64_t *real, int64_t *boot, bool *synced)
{
    *synced = kernel_synced();
#ifdef CITYHUB_TEST_HOOKS
    fake_read(synced, NULL);
#endif
    *boot = hub_boot_ns();
    *real = hub_time_ns();
}

static void read_boot_id(void)
{
    memset(g.boot, 0, sizeof(g.boot));
    char buf[64];
    int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0 || hub_clock_parse_boot_id(buf, (size_t)n, g.boot) != 0)
        hub_warn(WHO, "%s cannot be read: boots are not told apart", BOOT_ID_PATH);
#ifdef CITYHUB_TEST_HOOKS
    bool unused;
    fake_read(&unused, g.boot);
#endif
}

/* ---- checks ------------------------------------------------------------- */

static void become_trusted(int64_t offset, int64_t real, int64_t boot, bool at_start)
{
    struct hub_clock_boot *b = boot_this();
    if (!b->has_offset) {
        b->has_offset = true;
        b->offset_ns = offset;
    }
    b->last_ns = boot;
    g.offset_ns = b->offset_ns;
    g.trusted = true;
    g.reason = NULL;
    g.trusted_at_ns = at_start ? 0 : real;
    atomic_store(&g.untrusted, false);
    hub_metric_set(g.m_synced, 1);
    state_save(true);
    if (!at_start)
        hub_info(WHO,
                 "clock trusted: the %" PRIu64 " readings taken on boot time are re-stamped as"
                 " they are delivered",
                 atomic_load(&g.boottime_readings));
}

static void check_locked(int64_t real, int64_t boot, bool ks)
{
    int64_t off = real - boot;
    bool at_start = !g.have_prev;
    if (g.have_prev) {
        int64_t d = off - g.prev_offset_ns;
        if (d > g.step_ns || d < -g.step_ns) {
            char t[48];
            g.steps++;
            g.last_step_ns = d;
            g.last_step_at_ns = real;
            hub_metric_inc(g.m_steps, 1);
            hub_warn(WHO, "clock stepped %s%s", hub_clock_step_text(d, t, sizeof(t)),
                     g.trusted ? "" : " (not trusted yet)");
        }
    }
    g.have_prev = true;
    g.prev_offset_ns = off;
    if (g.trusted)
        return;
    const char *why = hub_clock_judge(g.policy, g.strict, hub_clock_build_ns(), real, ks);
    /* trusted earlier in this boot (cityhub restarted): the kernel's word was
     * had, and its clock has counted on since */
    struct hub_clock_boot *b = boot_find(g.boot, NULL);
    if (why && b && b->has_offset &&
        hub_clock_judge(HUB_CLOCK_SYNC_NO, false, hub_clock_build_ns(), real, ks) == NULL)
        why = NULL;
    if (!why) {
        become_trusted(off, real, boot, at_start);
        return;
    }
    if (why != g.reason)
        hub_warn(WHO, "clock not trusted: %s; readings are kept on boot time until it is", why);
    g.reason = why;
    if (!g.saved || boot - g.saved_boot_ns >= HUB_CLOCK_SAVE_NS) {
        boot_this()->last_ns = boot;
        g.saved_boot_ns = boot;
        state_save(false);
    }
}

void hub_clock_check(void)
{
    int64_t real, boot;
    bool ks;
    sample(&real, &boot, &ks);
    pthread_mutex_lock(&g.mu);
    if (g.active)
        check_locked(real, boot, ks);
    pthread_mutex_unlock(&g.mu);
}

static void *check_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.tmu);
    while (!g.stopping) {
        hub_cond_wait_until(&g.tcond, &g.tmu, hub_mono_ns() + HUB_CLOCK_CHECK_NS);
        if (g.stopping)
            break;
        pthread_mutex_unlock(&g.tmu);
        hub_clock_check();
        pthread_mutex_lock(&g.tmu);
    }
    pthread_mutex_unlock(&g.tmu);
    return NULL;
}

int hub_clock_start(const struct hub_clock_opts *o, char *err, size_t errlen)
{
    if (!o || (o->state_path && strlen(o->state_path) >= STATE_PATH_MAX) || o->step_ns < 0) {
        snprintf(err, errlen, "clock: bad options");
        return HUB_EINVAL;
    }
    pthread_mutex_lock(&g.mu);
    g.policy = o->require_sync;
    g.step_ns = o->step_ns ? o->step_ns : HUB_NS_PER_S;
    snprintf(g.state_path, sizeof(g.state_path), "%s", o->state_path ? o->state_path : "");
    g.trusted = false;
    g.reason = NULL;
    g.offset_ns = g.trusted_at_ns = 0;
    g.have_prev = g.saved = false;
    g.saved_boot_ns = 0;
    atomic_store(&g.boottime_readings, 0);
    g.restamped = g.estimated = g.steps = 0;
    g.last_step_ns = g.last_step_at_ns = 0;
    read_boot_id();
    state_load();
    hub_metrics_t *m = o->metrics;
    g.m_synced = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_clock_synced", NULL, NULL,
                                 "1 when the wall clock is trusted, 0 while readings are kept on"
                                 " boot time");
    g.m_restamped =
        hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_clock_restamped_total", NULL, NULL,
                        "readings taken on boot time given their wall-clock time");
    g.m_estimated =
        hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_clock_estimated_total", NULL, NULL,
                        "readings of an earlier boot that never had a trusted clock,"
                        " given an estimated time");
    g.m_steps = hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_clock_steps_total", NULL, NULL,
                                "steps of the wall clock (larger than the step threshold)");
    g.m_boottime = hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_clock_boottime_readings_total",
                                   NULL, NULL, "readings taken while the clock was not trusted");
    int64_t real, boot;
    bool ks;
    sample(&real, &boot, &ks);
    g.strict = hub_clock_build_ns() > real || access(FAKE_HWCLOCK_PATH, F_OK) == 0;
    atomic_store(&g.untrusted, true);
    g.active = true;
    check_locked(real, boot, ks);
    pthread_mutex_unlock(&g.mu);

    g.stopping = false;
    if (hub_cond_init(&g.tmu, &g.tcond) != 0) {
        snprintf(err, errlen, "clock: out of memory");
        hub_clock_stop();
        return HUB_ENOMEM;
    }
    g.thread_on = pthread_create(&g.thread, NULL, check_main, NULL) == 0;
    if (!g.thread_on) {
        hub_cond_destroy(&g.tmu, &g.tcond);
        snprintf(err, errlen, "clock: cannot start its thread");
        hub_clock_stop();
        return HUB_ENOMEM;
    }
    return HUB_OK;
}

void hub_clock_configure(enum hub_clock_policy require_sync, int64_t step_ns)
{
    pthread_mutex_lock(&g.mu);
    g.policy = require_sync;
    g.step_ns = step_ns > 0 ? step_ns : HUB_NS_PER_S;
    pthread_mutex_unlock(&g.mu);
}

void hub_clock_stop(void)
{
    if (g.thread_on) {
        pthread_mutex_lock(&g.tmu);
        g.stopping = true;
        pthread_cond_signal(&g.tcond);
        pthread_mutex_unlock(&g.tmu);
        pthread_join(g.thread, NULL);
        hub_cond_destroy(&g.tmu, &g.tcond);
        g.thread_on = false;
    }
    pthread_mutex_lock(&g.mu);
    if (g.active && !g.trusted) {
        boot_this()->last_ns = hub_boot_ns();
        state_save(false);
    }
    g.active = false;
    atomic_store(&g.untrusted, false);
    g.m_synced = g.m_restamped = g.m_estimated = g.m_steps = g.m_boottime = NULL;
    pthread_mutex_unlock(&g.mu);
}

/* ---- stamps ------------------------------------------------------------- */

void hub_clock_stamp(struct hub_stamp *st)
{
    st->boottime = atomic_load(&g.untrusted);
    if (st->boottime) {
        st->ns = hub_boot_ns();
        memcpy(st->boot, g.boot, HUB_READING_BOOT_ID);
    } else {
        st->ns = hub_time_ns();
    }
}

void hub_clock_apply(hub_reading_t *r, const struct hub_stamp *st)
{
    if (!r || !st->boottime || hub_reading_time(r) >= HUB_CLOCK_RELATIVE_NS)
        return;
    if (hub_reading_set_boottime(r, hub_reading_time(r), st->boot) == HUB_OK) {
        atomic_fetch_add(&g.boottime_readings, 1);
        hub_metric_inc(g.m_boottime, 1);
    } else {
        /* no room for the boot id (a reading of nearly the largest size):
         * the untrusted wall clock is the best left, never a boot time */
        hub_reading_set_time(r, hub_time_ns() + (hub_reading_time(r) - st->ns));
    }
}

hub_reading_t *hub_clock_reading_new(const char *measurement)
{
    struct hub_stamp st;
    hub_clock_stamp(&st);
    hub_reading_t *r = hub_reading_new(measurement, st.ns);
    hub_clock_apply(r, &st);
    return r;
}

/* The estimated wall time at which boot k (of g.boots) began: its own
 * offset, or the next boot's start less EST_MARGIN_NS less its length. */
static int64_t est_start(size_t k)
{
    size_t i = g.nboots - 1;
    int64_t start = g.offset_ns; /* this boot, the last entry, is trusted */
    while (i > k) {
        i--;
        start = g.boots[i].has_offset ? g.boots[i].offset_ns
                                      : start - EST_MARGIN_NS - g.boots[i].last_ns;
    }
    return start;
}

int hub_clock_restamp(hub_reading_t *r)
{
    uint8_t id[HUB_READING_BOOT_ID];
    if (!hub_reading_boottime(r, id))
        return HUB_OK;
    int64_t t = hub_reading_time(r), wall;
    bool estimated = false;
    pthread_mutex_lock(&g.mu);
    if (!g.active || !g.trusted) {
        pthread_mutex_unlock(&g.mu);
        return HUB_EEMPTY;
    }
    size_t k;
    struct hub_clock_boot *b;
    if (!memcmp(id, g.boot, HUB_READING_BOOT_ID)) {
        wall = t + g.offset_ns;
    } else if ((b = boot_find(id, &k)) != NULL && b->has_offset) {
        wall = t + b->offset_ns;
    } else {
        /* Never trusted: it ended (at its last saved check) EST_MARGIN_NS
         * before the next boot began; unknown: it was the span long and
         * came before the oldest boot known. */
        int64_t next = est_start(b ? k + 1 : 0);
        int64_t last = b ? b->last_ns : HUB_CLOCK_UNKNOWN_SPAN_NS;
        wall = next - EST_MARGIN_NS + (t - last);
        if (wall > next - HUB_NS_PER_S)
            wall = next - HUB_NS_PER_S;
        estimated = true;
    }
    if (!estimated) {
        g.restamped++;
        hub_metric_inc(g.m_restamped, 1);
    } else {
        g.estimated++;
        hub_metric_inc(g.m_estimated, 1);
    }
    pthread_mutex_unlock(&g.mu);
    hub_reading_set_time(r, wall);
    /* a field, not a tag: the series stays the same */
    hub_reading_add_string(r, "clock", estimated ? "estimated" : "restamped");
    return HUB_OK;
}

void hub_clock_add_fields(hub_reading_t *r)
{
    struct hub_clock_status cs;
    hub_clock_status(&cs);
    hub_reading_add_bool(r, "clock_synced", cs.trusted);
    hub_reading_add_uint(r, "clock_restamped", cs.restamped);
    hub_reading_add_uint(r, "clock_estimated", cs.estimated);
    hub_reading_add_uint(r, "clock_steps", cs.steps);
}

int64_t hub_clock_age_ns(const hub_reading_t *r)
{
    uint8_t id[HUB_READING_BOOT_ID];
    if (!hub_reading_boottime(r, id))
        return hub_time_ns() - hub_reading_time(r);
    pthread_mutex_lock(&g.mu);
    bool here = !memcmp(id, g.boot, HUB_READING_BOOT_ID);
    pthread_mutex_unlock(&g.mu);
    return here ? hub_boot_ns() - hub_reading_time(r) : 0;
}

void hub_clock_status(struct hub_clock_status *out)
{
    pthread_mutex_lock(&g.mu);
    out->active = g.active;
    out->trusted = !g.active || g.trusted;
    out->reason = g.active && !g.trusted ? g.reason : NULL;
    out->trusted_at_ns = g.trusted_at_ns;
    out->boottime_readings = atomic_load(&g.boottime_readings);
    out->restamped = g.restamped;
    out->estimated = g.estimated;
    out->steps = g.steps;
    out->last_step_ns = g.last_step_ns;
    out->last_step_at_ns = g.last_step_at_ns;
    pthread_mutex_unlock(&g.mu);
}
