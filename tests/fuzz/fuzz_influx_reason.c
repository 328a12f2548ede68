/* tests/fuzz/fuzz_influx_reason.c — the body of an InfluxDB error answer is
 * outside bytes: whatever it holds, the reason is one printable, bounded
 * line. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "drivers/influx/influx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char body[4097];
    char why[201];
    if (size > sizeof(body) - 1)
        size = sizeof(body) - 1;
    memcpy(body, data, size);
    body[size] = 0; /* the driver's response buffer is NUL-terminated too */
    memset(why, 'x', sizeof(why));
    drv_influx_server_reason(body, size, why, sizeof(why) - 1);
    size_t n = strlen(why);
    assert(n < sizeof(why));
    for (size_t i = 0; i < n; i++)
        assert((unsigned char)why[i] >= 0x20 && why[i] != 0x7f);
    return 0;
}
