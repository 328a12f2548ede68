/* tests/fuzz/fuzz_reading.c — hub_reading_decode on arbitrary bytes.
 *
 * Whatever decodes must survive a round trip: encode gives back exactly the
 * input (the encoding is canonical; an input of version 1, the older layout
 * decode still reads, comes back as version 2 of the same length), and
 * decoding that again gives an equal reading. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/buf.h"
#include "hub/reading.h"
#include "reading_cmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_reading_t *r = NULL, *r2 = NULL;
    if (hub_reading_decode(data, size, &r) != HUB_OK) {
        if (r)
            abort(); /* a failed decode hands out nothing */
        return 0;
    }
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    if (hub_reading_encode(r, &b) != HUB_OK)
        abort();
    if (b.len != size || (data[0] != 1 && memcmp(b.data, data, size) != 0))
        abort(); /* not canonical */
    if (hub_reading_decode(b.data, b.len, &r2) != HUB_OK)
        abort();
    if (reading_cmp(r, r2))
        abort();
    hub_reading_free(r2);
    hub_reading_free(r);
    hub_buf_free(&b);
    return 0;
}
