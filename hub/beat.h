/* hub/beat.h — heartbeats of the daemon's loops, for a watchdog that tells
 * a loop making progress from one that is stuck.
 *
 * Each watched thread has a slot (hub_beats_add, then hub_beat_attach on
 * that thread) and bumps it with hub_beat() at every turn of its loop,
 * including waits that return normally: a loop waiting on a slow device
 * with a timeout beats when the timeout comes. Waits on a condition
 * variable go through hub_beat_wait_until, which beats at least every
 * HUB_BEAT_WAIT_NS while it waits. A thread without a slot (no watchdog)
 * pays one thread-local load per call.
 *
 * The watchdog calls hub_beats_check: a slot whose count has not moved for
 * longer than its limit is stalled, and is reported with what its loop was
 * working on (hub_beat_doing: the instance, e.g. "modbus:rtu-1", and a
 * detail, e.g. "device meter-1"). */
#ifndef HUB_BEAT_H
#define HUB_BEAT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/clock.h"

/* Longest a watched loop waits on a condition variable between two beats. */
#define HUB_BEAT_WAIT_NS (500 * HUB_NS_PER_MS)
#define HUB_BEAT_WHO_MAX 96

typedef struct hub_beats hub_beats_t;
struct hub_beat;

/* An empty registry (some 150 bytes a slot). NULL when out of memory. */
hub_beats_t *hub_beats_new(void);
/* Free the registry; no thread may still beat into it. NULL is fine. */
void hub_beats_free(hub_beats_t *b);
/* A new slot for one loop, named who ("modbus runner 0", "influxdb:ioc").
 * Returns NULL when bs is NULL or out of memory (the loop is then not
 * watched). Safe while another thread checks. */
struct hub_beat *hub_beats_add(hub_beats_t *bs, const char *who);

/* Make b the calling thread's slot (NULL: none). */
void hub_beat_attach(struct hub_beat *b);
/* The calling thread's loop ends (its thread exits, e.g. at a stop or a
 * reload): its slot is no longer checked, and the thread has none. */
void hub_beat_detach(void);
/* One turn of the calling thread's loop. */
void hub_beat(void);
/* What the calling thread's loop works on now: who ("modbus:rtu-1") and a
 * detail ("device meter-1"), strings that outlive the work, or NULL. */
void hub_beat_doing(const char *who, const char *detail);
/* As hub_cond_wait_until, beating at least every HUB_BEAT_WAIT_NS while it
 * waits (when the thread has a slot). Returns 0 when woken, ETIMEDOUT at
 * the deadline. */
int hub_beat_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ns);

/* A stalled slot, as hub_beats_check reports it. */
struct hub_beat_stall {
    const char *who;    /* the slot's name */
    const char *doing;  /* what its loop was working on, or NULL */
    const char *detail; /* or NULL */
    int64_t quiet_ns;   /* since its count last moved */
    bool first;         /* first report of this stall */
};
typedef void (*hub_beat_stall_fn)(void *arg, const struct hub_beat_stall *s);

/* Look at every slot at monotonic time now: one whose count has not moved
 * for more than limit_ns is stalled, and fn (may be NULL) is called for it.
 * A slot that moves again is no longer stalled. Call from one thread only.
 * Returns the number of stalled slots. */
size_t hub_beats_check(hub_beats_t *bs, int64_t now, int64_t limit_ns, hub_beat_stall_fn fn,
                       void *arg);

#endif
