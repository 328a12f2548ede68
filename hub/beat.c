/* hub/beat.c — heartbeats of the daemon's loops (hub/beat.h). */
#include "hub/beat.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct hub_beat {
    struct hub_beat *next;
    atomic_uint_fast64_t count;
    _Atomic(const char *) doing;
    _Atomic(const char *) detail;
    char who[HUB_BEAT_WHO_MAX];
    /* the checker's own */
    uint64_t seen;
    int64_t moved_ns;
    bool stalled;
    atomic_bool retired; /* its thread ended: not watched any more */
};

struct hub_beats {
    _Atomic(struct hub_beat *) head; /* newest first */
};

static _Thread_local struct hub_beat *mine;

hub_beats_t *hub_beats_new(void)
{
    return calloc(1, sizeof(hub_beats_t));
}

void hub_beats_free(hub_beats_t *bs)
{
    if (!bs)
        return;
    struct hub_beat *b = atomic_load(&bs->head);
    while (b) {
        struct hub_beat *next = b->next;
        free(b);
        b = next;
    }
    free(bs);
}

struct hub_beat *hub_beats_add(hub_beats_t *bs, const char *who)
{
    struct hub_beat *b = bs ? calloc(1, sizeof(*b)) : NULL;
    if (!b)
        return NULL;
    snprintf(b->who, sizeof(b->who), "%s", who);
    b->moved_ns = hub_mono_ns();
    b->next = atomic_load_explicit(&bs->head, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&bs->head, &b->next, b, memory_order_release,
                                                  memory_order_relaxed))
        ;
    return b;
}

void hub_beat_attach(struct hub_beat *b)
{
    mine = b;
}

void hub_beat_detach(void)
{
    struct hub_beat *b = mine;
    if (b)
        atomic_store_explicit(&b->retired, true, memory_order_release);
    mine = NULL;
}

void hub_beat(void)
{
    struct hub_beat *b = mine;
    if (b)
        atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
}

void hub_beat_doing(const char *who, const char *detail)
{
    struct hub_beat *b = mine;
    if (!b)
        return;
    atomic_store_explicit(&b->detail, detail, memory_order_relaxed);
    atomic_store_explicit(&b->doing, who, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
}

int hub_beat_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (!mine) /* not watched: one wait, as before */
        return deadline_ns == INT64_MAX ? pthread_cond_wait(cond, mu)
                                        : hub_cond_wait_until(cond, mu, deadline_ns);
    for (;;) {
        int64_t now = hub_mono_ns();
        if (now >= deadline_ns)
            return ETIMEDOUT;
        int64_t step = deadline_ns - now > HUB_BEAT_WAIT_NS ? now + HUB_BEAT_WAIT_NS : deadline_ns;
        int rc = hub_cond_wait_until(cond, mu, step);
        hub_beat();
        if (rc != ETIMEDOUT)
            return rc;
    }
}

size_t hub_beats_check(hub_beats_t *bs, int64_t now, int64_t limit_ns, hub_beat_stall_fn fn,
                       void *arg)
{
    size_t stalled = 0;
    if (!bs)
        return 0;
    for (struct hub_beat *b = atomic_load_explicit(&bs->head, memory_order_acquire); b;
         b = b->next) {
        if (atomic_load_explicit(&b->retired, memory_order_acquire))
            continue;
        uint64_t c = atomic_load_explicit(&b->count, memory_order_relaxed);
        if (c != b->seen) {
            b->seen = c;
            b->moved_ns = now;
            b->stalled = false;
            continue;
        }
        if (now - b->moved_ns <= limit_ns)
            continue;
        stalled++;
        struct hub_beat_stall s = {
            .who = b->who,
            .doing = atomic_load_explicit(&b->doing, memory_order_relaxed),
            .detail = atomic_load_explicit(&b->detail, memory_order_relaxed),
            .quiet_ns = now - b->moved_ns,
            .first = !b->stalled,
        };
        b->stalled = true;
        if (fn)
            fn(arg, &s);
    }
    return stalled;
}
