/* hub/accept.c — readings into the journal (hub/accept.h). */
#include "hub/accept.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hub/clock.h"
#include "hub/log.h"

#define ACCEPT_STACK 2048 /* records up to this are encoded on the stack */

enum { R_INVALID, R_FULL, R_IO, R_NOMEM, R_COUNT };
static const char *const reasons[R_COUNT] = {"invalid", "full", "io", "nomem"};

struct hub_accept {
    hub_journal_t *journal;
    char gateway[HUB_READING_MAX_NAME + 1];
    struct hub_cfg_tags tags;
    struct hub_metric *m_accepted;
    struct hub_metric *m_refused[R_COUNT];
    atomic_uint_fast64_t accepted, refused;
    pthread_mutex_t limit_lock;
    struct hub_log_limit limit;
};

int hub_accept_new(const struct hub_accept_opts *opts, hub_accept_t **out)
{
    *out = NULL;
    if (!opts || !opts->journal || !opts->gateway || strlen(opts->gateway) > HUB_READING_MAX_NAME)
        return HUB_EINVAL;
    hub_accept_t *a = calloc(1, sizeof(*a));
    if (!a)
        return HUB_ENOMEM;
    if (pthread_mutex_init(&a->limit_lock, NULL) != 0) {
        free(a);
        return HUB_ENOMEM;
    }
    a->journal = opts->journal;
    strcpy(a->gateway, opts->gateway);
    if (opts->tags)
        a->tags = *opts->tags;
    a->m_accepted =
        hub_metrics_add(opts->metrics, HUB_METRIC_COUNTER, "cityhub_readings_accepted_total", NULL,
                        NULL, "readings appended to the journal");
    for (int i = 0; i < R_COUNT; i++)
        a->m_refused[i] = hub_metrics_add(
            opts->metrics, HUB_METRIC_COUNTER, "cityhub_readings_refused_total", "reason",
            reasons[i], "readings not accepted (invalid, journal or disk full, I/O error, memory)");
    *out = a;
    return HUB_OK;
}

int hub_accept_retag(hub_accept_t *a, const char *gateway, const struct hub_cfg_tags *tags)
{
    if (!a || !gateway || strlen(gateway) > HUB_READING_MAX_NAME)
        return HUB_EINVAL;
    strcpy(a->gateway, gateway);
    a->tags = tags ? *tags : (struct hub_cfg_tags){0};
    return HUB_OK;
}

void hub_accept_free(hub_accept_t *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->limit_lock);
    free(a);
}

/* Add the gateway-wide tags unless the reading has them already. */
static int add_common_tags(const hub_accept_t *a, hub_reading_t *r)
{
    int rc = HUB_OK;
    if (!hub_reading_tag_value(r, "gateway"))
        rc = hub_reading_add_tag(r, "gateway", a->gateway);
    for (size_t i = 0; rc == HUB_OK && i < a->tags.n; i++)
        if (!hub_reading_tag_value(r, a->tags.tag[i].key))
            rc = hub_reading_add_tag(r, a->tags.tag[i].key, a->tags.tag[i].value);
    return rc;
}

int hub_accept_reading(hub_accept_t *a, hub_reading_t *r)
{
    if (!a || !r) {
        hub_reading_free(r);
        return HUB_EINVAL;
    }
    /* The record is encoded on the stack (a heap block only for a reading
     * larger than that), straight to its exact size. */
    uint8_t small[ACCEPT_STACK];
    uint8_t *rec = NULL;
    int rc = add_common_tags(a, r);
    if (rc == HUB_OK) {
        size_t n = hub_reading_encoded_size(r);
        rec = n <= sizeof(small) ? small : malloc(n);
        if (!rec)
            rc = HUB_ENOMEM;
        else {
            size_t key_len = 0; /* the series key: stored once per journal segment */
            size_t len = hub_reading_encode_keyed(r, rec, n, &key_len);
            rc = hub_journal_append_keyed(a->journal, rec, len, key_len, NULL);
        }
    }
    if (rc == HUB_OK) {
        atomic_fetch_add(&a->accepted, 1);
        hub_metric_inc(a->m_accepted, 1);
    } else {
        int why = rc == HUB_EFULL    ? R_FULL
                  : rc == HUB_EIO    ? R_IO
                  : rc == HUB_ENOMEM ? R_NOMEM
                                     : R_INVALID;
        atomic_fetch_add(&a->refused, 1);
        hub_metric_inc(a->m_refused[why], 1);
        uint64_t held = 0;
        pthread_mutex_lock(&a->limit_lock);
        int say = hub_log_limit_pass(&a->limit, hub_mono_ns(), &held);
        pthread_mutex_unlock(&a->limit_lock);
        if (say)
            hub_err("journal",
                    "reading %s not accepted (%s): %s (%" PRIu64 " more since last report)",
                    hub_reading_measurement(r), reasons[why], hub_strerror(rc), held);
    }
    if (rec != small)
        free(rec);
    hub_reading_free(r);
    return rc;
}

uint64_t hub_accept_accepted(const hub_accept_t *a)
{
    return a ? atomic_load(&((hub_accept_t *)a)->accepted) : 0;
}

uint64_t hub_accept_refused(const hub_accept_t *a)
{
    return a ? atomic_load(&((hub_accept_t *)a)->refused) : 0;
}

size_t hub_accept_tag_count(const struct hub_cfg_tags *hub, const struct hub_cfg_tags *own,
                            size_t extra)
{
    size_t n = (own ? own->n : 0) + extra + 1;
    for (size_t i = 0; hub && i < hub->n; i++) {
        bool dup = false;
        for (size_t j = 0; own && j < own->n && !dup; j++)
            dup = strcmp(hub->tag[i].key, own->tag[j].key) == 0;
        n += !dup;
    }
    return n;
}
