/* drivers/influx/line.h — pieces of the line protocol encoder
 * (drivers/influx/line.c) exposed for tests. */
#ifndef DRV_INFLUX_LINE_H
#define DRV_INFLUX_LINE_H

#include <stddef.h>

/* Write v as line protocol writes a float field: the first of %.15g,
 * %.16g, %.17g that reads back to the same bits. dst holds at least 32
 * bytes; it is NUL-terminated. Returns the length, or 0 (nothing written)
 * if v is not finite. */
size_t drv_influx_format_float(double v, char *dst);

#endif
