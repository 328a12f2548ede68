/* hub/backoff.c — capped exponential backoff with jitter. */
#include "hub/backoff.h"

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

void hub_backoff_init(struct hub_backoff *b, int64_t base_ns, int64_t max_ns, uint64_t seed)
{
    b->base_ns = base_ns > 0 ? base_ns : 1;
    b->max_ns = max_ns >= b->base_ns ? max_ns : b->base_ns;
    b->failures = 0;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

int64_t hub_backoff_fail(struct hub_backoff *b, int64_t retry_after_ns)
{
    if (b->failures < 63)
        b->failures++;
    int64_t d = b->base_ns;
    for (unsigned i = 1; i < b->failures && d < b->max_ns; i++)
        d = d > b->max_ns / 2 ? b->max_ns : d * 2;
    if (d > b->max_ns)
        d = b->max_ns;
    /* jitter: uniform in [d/2, d] */
    int64_t half = d / 2;
    d = half + (int64_t)(xorshift64(&b->rng) % (uint64_t)(d - half + 1));
    if (retry_after_ns > d)
        d = retry_after_ns < b->max_ns ? retry_after_ns : b->max_ns;
    return d;
}

void hub_backoff_ok(struct hub_backoff *b)
{
    b->failures = 0;
}
