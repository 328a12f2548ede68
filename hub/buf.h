/* hub/buf.h — a growing byte buffer with a hard cap (after curl's dynbuf).
 *
 * Every buffer states its maximum size at init; an append that would pass it
 * fails with HUB_EFULL and leaves the buffer as it was. */
#ifndef HUB_BUF_H
#define HUB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct hub_buf {
    uint8_t *data; /* NUL-terminated after every append (not counted in len) */
    size_t len;
    size_t alloc;
    size_t cap; /* maximum len */
};

/* Common return codes of hub/ functions: 0 is success, negatives are errors. */
#define HUB_OK 0
#define HUB_ENOMEM (-1)   /* allocation failed */
#define HUB_EFULL (-2)    /* a bound was reached (buffer cap, journal full) */
#define HUB_EINVAL (-3)   /* bad argument or malformed input */
#define HUB_EIO (-4)      /* I/O error; errno is set */
#define HUB_ECORRUPT (-5) /* stored bytes failed their check */
#define HUB_EEMPTY (-6)   /* nothing to read yet */

const char *hub_strerror(int rc);

void hub_buf_init(struct hub_buf *b, size_t cap);
void hub_buf_free(struct hub_buf *b);
/* Keep the allocation, forget the contents. */
void hub_buf_reset(struct hub_buf *b);
int hub_buf_add(struct hub_buf *b, const void *p, size_t n);
int hub_buf_addc(struct hub_buf *b, uint8_t c);
int hub_buf_adds(struct hub_buf *b, const char *s);
int hub_buf_printf(struct hub_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void hub_buf_consume(struct hub_buf *b, size_t n);

#endif
