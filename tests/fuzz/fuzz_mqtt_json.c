/* tests/fuzz/fuzz_mqtt_json.c — format json (drivers/mqtt/json.c), JSON
 * Pointer and RFC 3339 times, on outside bytes.
 *
 * Input layout:
 *   byte 0   precision = b % 5; bit 3: a field map (the pointer is field
 *            "f", and "/a" is field "a"); bit 4: the pointer is also the
 *            time pointer
 *   byte 1   pointer length L (cut to what there is)
 *   next L   the pointer (to its first NUL), also read as an RFC 3339 time
 *   rest     the payload
 * Checks: those of fuzz_mqtt.h; drv_mq_json_depth never above limit + 1;
 * on the parsed payload, "" is the root, a pointer with "~" not followed
 * by 0 or 1 finds nothing, and the escaped pointer to every member of the
 * root and of what the pointer found finds exactly that member; an RFC
 * 3339 time that parses is from 1970 on and reads back the same when
 * written out again in UTC. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fuzz_mqtt.h"

/* prefix + "/" + key escaped (~ as ~0, / as ~1) into dst (cap bytes); 0
 * if it does not fit. */
static int child_pointer(char *dst, size_t cap, const char *prefix, const char *key, size_t klen)
{
    size_t n = strlen(prefix);
    if (n + 2 + 2 * klen > cap)
        return 0;
    memcpy(dst, prefix, n);
    dst[n++] = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~' || key[i] == '/') {
            dst[n++] = '~';
            dst[n++] = key[i] == '~' ? '0' : '1';
        } else {
            dst[n++] = key[i];
        }
    }
    dst[n] = '\0';
    return 1;
}

/* Every member (or element) of v is found by its pointer below prefix. */
static void check_children(json_t *root, json_t *v, const char *prefix)
{
    static char p[8192];
    if (json_is_object(v)) {
        const char *key;
        json_t *m;
        json_object_foreach(v, key, m)
        {
            if (child_pointer(p, sizeof(p), prefix, key, strlen(key)) &&
                drv_mq_json_pointer(root, p) != m)
                abort();
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            char idx[24];
            int n = snprintf(idx, sizeof(idx), "%zu", i);
            if (child_pointer(p, sizeof(p), prefix, idx, (size_t)n) &&
                drv_mq_json_pointer(root, p) != m)
                abort();
            if (i > 16)
                break;
        }
    }
}

static int bad_tilde(const char *p)
{
    for (; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return 1;
    return 0;
}

static void check_rfc3339(const char *s)
{
    int64_t ns;
    if (drv_mq_parse_rfc3339(s, &ns) != 0)
        return;
    if (ns < 0)
        abort();
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        abort();
    char back[64];
    snprintf(back, sizeof(back), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long long)(ns % 1000000000));
    int64_t again;
    if (drv_mq_parse_rfc3339(back, &again) != 0 || again != ns)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0];
    size_t plen = data[1];
    data += 2;
    size -= 2;
    if (plen > size)
        plen = size;
    char ptr[256];
    memcpy(ptr, data, plen);
    ptr[plen] = '\0';
    data += plen;
    size -= plen;

    check_rfc3339(ptr);

    struct hub_cfg_tag pairs[2] = {{"f", ""}, {"a", "/a"}};
    snprintf(pairs[0].value, sizeof(pairs[0].value), "%s", ptr);
    struct hub_cfg_tags map = {.n = 2, .tag = pairs};
    struct drv_mq_parse_opts o;
    memset(&o, 0, sizeof(o));
    o.format = DRV_MQ_JSON;
    o.precision = (enum drv_mq_precision)(mode % 5);
    o.fields = mode & 8 ? &map : NULL;
    o.time_pointer = mode & 16 ? ptr : NULL;
    o.measurement = "m";
    int rc = fuzz_parse(&o, data, size);
    for (size_t i = 0; rc == HUB_OK && i < fuzz_out.n; i++)
        if (strcmp(hub_reading_measurement(fuzz_out.r[i]), "m") != 0)
            abort();
    drv_mq_out_clear(&fuzz_out);

    int depth = drv_mq_json_depth((const char *)data, size, DRV_MQ_MAX_DEPTH);
    if (depth < 0 || depth > DRV_MQ_MAX_DEPTH + 1)
        abort();
    if (depth > DRV_MQ_MAX_DEPTH)
        return 0;
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!root)
        return 0;
    if (drv_mq_json_pointer(root, "") != root)
        abort();
    json_t *v = drv_mq_json_pointer(root, ptr);
    if (v && bad_tilde(ptr))
        abort();
    check_children(root, root, "");
    if (v)
        check_children(root, v, ptr);
    json_decref(root);
    return 0;
}
