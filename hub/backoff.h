/* hub/backoff.h — capped exponential backoff with full jitter.
 *
 * After the n-th consecutive failure the delay is a random value in
 * [base * 2^(n-1) / 2, base * 2^(n-1)], capped at max. A server's Retry-After,
 * when larger, wins (still capped at max). */
#ifndef HUB_BACKOFF_H
#define HUB_BACKOFF_H

#include <stdint.h>

struct hub_backoff {
    int64_t base_ns;
    int64_t max_ns;
    unsigned failures;
    uint64_t rng; /* xorshift state; seeded by hub_backoff_init */
};

void hub_backoff_init(struct hub_backoff *b, int64_t base_ns, int64_t max_ns, uint64_t seed);
/* Record a failure; returns the delay before the next try. retry_after_ns is
 * the server's hint (0 if none). */
int64_t hub_backoff_fail(struct hub_backoff *b, int64_t retry_after_ns);
void hub_backoff_ok(struct hub_backoff *b);

#endif
