/* tests/fuzz/fuzz_modbus_ident.c — a Read Device Identification reply
 * (function 0x2B, MEI 0x0E) as a slave sends it to `cityhub scan`: the
 * whole input is the reply's PDU (function code first), parsed by
 * cmd_ident_parse (drivers/modbus/cmd_common.c), twice into one result as
 * a multi-part answer would be.
 * Checks: no crash, no sanitizer report; a refusal says why; every value
 * kept is NUL-terminated printable ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/cmd_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cmd_ident id;
    memset(&id, 0, sizeof(id));
    char err[256] = "";
    for (int pass = 0; pass < 2; pass++) {
        err[0] = '\0';
        if (cmd_ident_parse(data, size, &id, err, sizeof(err)) != 0 && err[0] == '\0')
            abort();
    }
    for (int i = 0; i < CMD_IDENT_MAX; i++) {
        if (!id.have[i])
            continue;
        size_t n = strnlen(id.value[i], sizeof(id.value[i]));
        if (n == sizeof(id.value[i]))
            abort();
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)id.value[i][k] < 0x20 || (unsigned char)id.value[i][k] > 0x7E)
                abort();
    }
    return 0;
}
