/* drivers/check.c — what the contract itself provides: the keys every
 * output has, and the helper drivers report config problems with. */
#include <stddef.h>
#include <stdio.h>

#include "drivers/driver.h"
#include "hub/journal.h"

void drv_check_error(struct drv_check *ck, const void *where, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ck->errors++;
    if (ck->report)
        ck->report(ck, where, key, msg);
}

/* Keys every output has (struct drv_output_common). A driver's own table is
 * looked up first, so a driver may redefine any of them. */
const struct hub_cfg_key drv_output_common_keys[] = {
    {.name = "name",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct drv_output_common, name),
     .size = DRV_NAME_MAX,
     .validate = hub_journal_check_name,
     .help = "name of this output (its cursor and its log lines carry it)"},
    {.name = "type",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct drv_output_common, type),
     .size = sizeof(((struct drv_output_common *)0)->type),
     .help = "output driver, e.g. influxdb"},
    {.name = "batch_size",
     .type = HUB_CFG_INT,
     .def = "5000",
     .offset = offsetof(struct drv_output_common, batch_size),
     .min = 1,
     .max = 100000,
     .help = "most readings sent in one request"},
    {.name = "flush_interval",
     .type = HUB_CFG_DURATION,
     .def = "1s",
     .offset = offsetof(struct drv_output_common, flush_interval_ns),
     .min = 1000000LL,
     .help = "longest a reading waits for its batch to fill"},
    {.name = "max_batch_bytes",
     .type = HUB_CFG_SIZE,
     .def = "1MiB",
     .offset = offsetof(struct drv_output_common, max_batch_bytes),
     .min = 128LL << 10,
     .max = 64LL << 20,
     .help = "largest request body; a bigger batch is sent in parts (bounds memory on a small "
             "board)"},
    {.name = "dead_letter",
     .type = HUB_CFG_STRING,
     .offset = offsetof(struct drv_output_common, dead_letter),
     .size = sizeof(((struct drv_output_common *)0)->dead_letter),
     .help = "file for readings the server refuses, with its reason (default: "
             "deadletter/NAME.jsonl beside the journal)"},
    {.name = "dead_letter_max",
     .type = HUB_CFG_SIZE,
     .def = "16MiB",
     .offset = offsetof(struct drv_output_common, dead_letter_max),
     .min = 4096,
     .help = "size at which the dead-letter file is rotated to FILE.1"},
    {.name = "alarm_retry",
     .type = HUB_CFG_DURATION,
     .def = "5m",
     .offset = offsetof(struct drv_output_common, alarm_retry_ns),
     .min = 1000000LL,
     .help = "after the server refuses the credentials or the target (401, 403, 404), how "
             "long the output waits before trying again"},
    {.name = NULL},
};
