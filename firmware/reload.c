/* firmware/reload.c — SIGHUP: the configuration read again and checked
 * (firmware/reload.h). What the file changed is counted per section by
 * element name, each element compared key by key through its key table
 * (hub_cfg_equal), so that the summary line says what a reload did. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/config_priv.h"
#include "firmware/reload.h"
#include "hub/clock.h"
#include "hub/log.h"

#define WHO "cityhub"

struct ch_reload {
    pthread_mutex_t mu; /* guards info: /health reads it from the server's thread */
    struct ch_reload_info info;
    char log_level[16]; /* the --log-level override, "" = none */
    struct hub_metric *m_applied, *m_rejected, *m_ok;
};

ch_reload_t *ch_reload_new(const char *path, const char *log_level, hub_metrics_t *m)
{
    ch_reload_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->info.path, sizeof(r->info.path), "%s", path);
    snprintf(r->log_level, sizeof(r->log_level), "%s", log_level ? log_level : "");
    static const char help[] = "SIGHUP reloads of the configuration, by outcome";
    r->m_applied =
        hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_reloads_total", "result", "applied", help);
    r->m_rejected =
        hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_reloads_total", "result", "rejected", help);
    r->m_ok = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_config_last_reload_successful", NULL,
                              NULL, "1 unless the last reload was rejected");
    hub_metric_set(r->m_ok, 1);
    return r;
}

void ch_reload_free(ch_reload_t *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void ch_reload_info(const ch_reload_t *r, struct ch_reload_info *out)
{
    ch_reload_t *w = (ch_reload_t *)r; /* the lock, not the info, changes */
    pthread_mutex_lock(&w->mu);
    *out = r->info;
    pthread_mutex_unlock(&w->mu);
}

static void outcome(ch_reload_t *r, enum ch_reload_result res, const char *error)
{
    pthread_mutex_lock(&r->mu);
    if (res == CH_RELOAD_APPLIED)
        r->info.applied++;
    else
        r->info.rejected++;
    r->info.last = res;
    r->info.last_ns = hub_time_ns();
    snprintf(r->info.last_error, sizeof(r->info.last_error), "%s", error ? error : "");
    pthread_mutex_unlock(&r->mu);
    hub_metric_inc(res == CH_RELOAD_APPLIED ? r->m_applied : r->m_rejected, 1);
    hub_metric_set(r->m_ok, res == CH_RELOAD_APPLIED);
}

static void rejected(ch_reload_t *r, const char *first_error)
{
    hub_err(WHO, "reload rejected; running configuration unchanged");
    outcome(r, CH_RELOAD_REJECTED, first_error);
}

/* Keys of the journal that only a restart changes: an error line each. */
static unsigned needs_restart(const struct ch_config *old, const struct ch_config *now, char *first,
                              size_t firstlen)
{
    const struct ch_journal_cfg *a = &old->hub.journal, *b = &now->hub.journal;
    const char *keys[5];
    unsigned n = 0;
    if (strcmp(a->path, b->path) != 0)
        keys[n++] = "hub.journal.path";
    if (a->segment_size != b->segment_size)
        keys[n++] = "hub.journal.segment_size";
    if (a->max_size != b->max_size)
        keys[n++] = "hub.journal.max_size";
    if (a->on_full != b->on_full)
        keys[n++] = "hub.journal.on_full";
    if ((a->sync_interval_ns == 0) != (b->sync_interval_ns == 0))
        keys[n++] = "hub.journal.sync_interval (to or from 0)";
    for (unsigned i = 0; i < n; i++) {
        char line[512];
        snprintf(line, sizeof(line),
                 "%.256s: %s changed: the open journal keeps it until a restart; restart cityhub "
                 "to apply it",
                 now->path, keys[i]);
        hub_err(WHO, "reload: %s", line);
        if (i == 0)
            snprintf(first, firstlen, "%.*s", (int)firstlen - 1, line);
    }
    return n;
}

struct ch_config *ch_reload_load(ch_reload_t *r, const struct ch_config *running)
{
    char *text = NULL, first[256] = "";
    size_t len = 0;
    unsigned nerr = 0;
    hub_info(WHO, "SIGHUP: reading %s again", r->info.path);
    FILE *errs = open_memstream(&text, &len);
    struct ch_config *c = ch_config_load(r->info.path, errs, &nerr);
    if (errs)
        fclose(errs);
    if (!c) {
        /* the lines `cityhub check` prints for the file, one log line each */
        for (char *line = text, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (!first[0])
                snprintf(first, sizeof(first), "%s", line);
            hub_err(WHO, "reload: %s", line);
        }
        free(text);
        hub_err(WHO, "reload: %s: %u error%s", r->info.path, nerr, nerr == 1 ? "" : "s");
        rejected(r, first);
        return NULL;
    }
    free(text);
    if (needs_restart(running, c, first, sizeof(first)) > 0) {
        ch_config_free(c);
        rejected(r, first);
        return NULL;
    }
    return c;
}

int ch_reload_has_output(const struct ch_config *c, const char *name)
{
    for (size_t i = 0; i < c->noutputs; i++)
        if (strcmp(((const struct drv_output_common *)c->outputs[i].cfg)->name, name) == 0)
            return 1;
    return 0;
}

int ch_reload_status_same(const struct ch_config *a, const struct ch_config *b)
{
    return hub_cfg_equal(ch_status_keys, &a->hub.status, &b->hub.status);
}

/* ---- what changed ------------------------------------------------------------- */

struct diff {
    size_t added, removed, changed;
};

/* The element of l named name (its "name" key at name_off), or NULL. */
static const void *find_named(const struct hub_cfg_list *l, size_t size, size_t name_off,
                              const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *e = (const char *)l->items + i * size;
        if (strcmp(e + name_off, name) == 0)
            return e;
    }
    return NULL;
}

static struct diff diff_section(const struct drv_section *sec, const struct hub_cfg_list *a,
                                const struct hub_cfg_list *b)
{
    struct diff d = {0};
    const struct hub_cfg_key *nk = hub_cfg_find(sec->config_map, "name");
    if (!nk) { /* unnamed elements: by position */
        size_t n = a->n < b->n ? a->n : b->n;
        for (size_t i = 0; i < n; i++)
            d.changed +=
                !hub_cfg_equal(sec->config_map, (const char *)a->items + i * sec->config_size,
                               (const char *)b->items + i * sec->config_size);
        d.added = b->n > n ? b->n - n : 0;
        d.removed = a->n > n ? a->n - n : 0;
        return d;
    }
    for (size_t i = 0; i < b->n; i++) {
        const char *e = (const char *)b->items + i * sec->config_size;
        const void *was = find_named(a, sec->config_size, nk->offset, e + nk->offset);
        if (!was)
            d.added++;
        else if (!hub_cfg_equal(sec->config_map, was, e))
            d.changed++;
    }
    for (size_t i = 0; i < a->n; i++) {
        const char *e = (const char *)a->items + i * sec->config_size;
        d.removed += !find_named(b, sec->config_size, nk->offset, e + nk->offset);
    }
    return d;
}

static const struct ch_output_cfg *output_named(const struct ch_config *c, const char *name)
{
    for (size_t i = 0; i < c->noutputs; i++)
        if (strcmp(((const struct drv_output_common *)c->outputs[i].cfg)->name, name) == 0)
            return &c->outputs[i];
    return NULL;
}

static struct diff diff_outputs(const struct ch_config *a, const struct ch_config *b)
{
    struct diff d = {0};
    for (size_t i = 0; i < b->noutputs; i++) {
        const struct ch_output_cfg *o = &b->outputs[i];
        const struct ch_output_cfg *was =
            output_named(a, ((const struct drv_output_common *)o->cfg)->name);
        if (!was)
            d.added++;
        else if (was->ops != o->ops || !hub_cfg_equal(drv_output_common_keys, was->cfg, o->cfg) ||
                 !hub_cfg_equal(o->ops->config_map, was->cfg, o->cfg))
            d.changed++;
    }
    for (size_t i = 0; i < a->noutputs; i++)
        d.removed += !output_named(b, ((const struct drv_output_common *)a->outputs[i].cfg)->name);
    return d;
}

static void put_diff(char *buf, size_t len, const char *what, struct diff d)
{
    size_t k = strlen(buf);
    if (d.added || d.removed || d.changed)
        snprintf(buf + k, len - k, "%s%s +%zu, -%zu, %zu changed", k ? "; " : "", what, d.added,
                 d.removed, d.changed);
    else
        snprintf(buf + k, len - k, "%s%s unchanged", k ? "; " : "", what);
}

void ch_reload_logging(ch_reload_t *r, const struct ch_config *from, const struct ch_config *to)
{
    char err[512];
    const struct ch_hub_cfg *h = &to->hub;
    enum hub_log_level lvl = (enum hub_log_level)h->log_level;
    if (r->log_level[0])
        hub_log_parse_level(r->log_level, &lvl); /* checked at start */
    hub_log_set_level(lvl);
    if (strcmp(from->hub.log_file, h->log_file) != 0 && hub_log_open(h->log_file, err, sizeof(err)))
        hub_err(WHO, "reload: %s; logging stays where it was", err);
}

void ch_reload_applied(ch_reload_t *r, const struct ch_config *old, const struct ch_config *now,
                       int64_t paused_ns)
{
    char sum[512] = "";

    for (size_t i = 0; i < now->ninputs; i++)
        for (size_t j = 0; now->inputs[i].ops->sections[j].key; j++) {
            const struct drv_section *sec = &now->inputs[i].ops->sections[j];
            struct diff d =
                diff_section(sec, &old->inputs[i].cfg.sect[j], &now->inputs[i].cfg.sect[j]);
            if (d.added || d.removed || d.changed || now->inputs[i].cfg.sect[j].n)
                put_diff(sum, sizeof(sum), sec->key, d);
        }
    put_diff(sum, sizeof(sum), "outputs", diff_outputs(old, now));
    size_t k = strlen(sum);
    snprintf(sum + k, sizeof(sum) - k, "; hub %s",
             hub_cfg_equal(ch_hub_keys, &old->hub, &now->hub) ? "unchanged" : "changed");
    hub_info(WHO, "reload applied in %lld ms: %s", (long long)(paused_ns / HUB_NS_PER_MS), sum);
    outcome(r, CH_RELOAD_APPLIED, NULL);
}

void ch_reload_failed(ch_reload_t *r, const char *why)
{
    hub_err(WHO, "reload: the new configuration did not start (%s); the previous one runs again",
            why);
    rejected(r, why);
}
