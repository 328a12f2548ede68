/* hub/buf.c — growing byte buffer with a cap. */
#include "hub/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hub_strerror(int rc)
{
    switch (rc) {
    case HUB_OK:
        return "ok";
    case HUB_ENOMEM:
        return "out of memory";
    case HUB_EFULL:
        return "bound reached";
    case HUB_EINVAL:
        return "invalid argument or malformed input";
    case HUB_EIO:
        return "I/O error";
    case HUB_ECORRUPT:
        return "stored data failed its check";
    case HUB_EEMPTY:
        return "nothing to read";
    default:
        return "unknown error";
    }
}

void hub_buf_init(struct hub_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void hub_buf_free(struct hub_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void hub_buf_reset(struct hub_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

/* Make room for n more bytes plus the terminating NUL. */
static int buf_reserve(struct hub_buf *b, size_t n)
{
    if (n > b->cap || b->len > b->cap - n)
        return HUB_EFULL;
    size_t need = b->len + n + 1;
    if (need <= b->alloc)
        return HUB_OK;
    size_t a = b->alloc ? b->alloc : 64;
    while (a < need)
        a *= 2;
    if (a > b->cap + 1)
        a = b->cap + 1;
    uint8_t *p = realloc(b->data, a);
    if (!p)
        return HUB_ENOMEM;
    b->data = p;
    b->alloc = a;
    return HUB_OK;
}

int hub_buf_add(struct hub_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return HUB_OK;
}

int hub_buf_addc(struct hub_buf *b, uint8_t c)
{
    return hub_buf_add(b, &c, 1);
}

int hub_buf_adds(struct hub_buf *b, const char *s)
{
    return hub_buf_add(b, s, strlen(s));
}

int hub_buf_printf(struct hub_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return HUB_EINVAL;
    if ((size_t)n < sizeof(small))
        return hub_buf_add(b, small, (size_t)n);
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HUB_OK;
}

void hub_buf_consume(struct hub_buf *b, size_t n)
{
    if (n >= b->len) {
        hub_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}
