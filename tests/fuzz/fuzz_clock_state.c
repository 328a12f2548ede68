/* tests/fuzz/fuzz_clock_state.c — the clock state file (hub/clocktrust.h)
 * and boot ids on arbitrary bytes: the file is on the board's flash and can
 * be damaged. What parses must come back the same after format and parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/clocktrust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t id[HUB_READING_BOOT_ID];
    hub_clock_parse_boot_id((const char *)data, size, id);
    struct hub_clock_boot e[HUB_CLOCK_STATE_BOOTS], e2[HUB_CLOCK_STATE_BOOTS];
    int n = hub_clock_state_parse((const char *)data, size, e);
    if (n < 0)
        return 0;
    if (n > HUB_CLOCK_STATE_BOOTS)
        abort();
    char buf[HUB_CLOCK_STATE_MAX];
    size_t len = hub_clock_state_format(e, (size_t)n, buf, sizeof(buf));
    if (len == 0 || hub_clock_state_parse(buf, len, e2) != n)
        abort();
    for (int k = 0; k < n; k++)
        if (memcmp(e[k].id, e2[k].id, sizeof(id)) || e[k].has_offset != e2[k].has_offset ||
            (e[k].has_offset && e[k].offset_ns != e2[k].offset_ns) || e[k].last_ns != e2[k].last_ns)
            abort();
    return 0;
}
