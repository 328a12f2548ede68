/* hub/crc32c.h — CRC-32C (Castagnoli), as used to frame journal records. */
#ifndef HUB_CRC32C_H
#define HUB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over n bytes at p. hub_crc32c(0, "123456789", 9)
 * is 0xE3069283. */
uint32_t hub_crc32c(uint32_t crc, const void *p, size_t n);

/* LevelDB's mask: a CRC stored next to data that may itself hold CRCs. */
static inline uint32_t hub_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
static inline uint32_t hub_crc32c_unmask(uint32_t masked)
{
    uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

#endif
