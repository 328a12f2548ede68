/* drivers/mqtt/json.c — format `json`, JSON Pointer (RFC 6901) and the
 * nesting depth of a JSON text.
 *
 * A message is one JSON object, or an array of objects, each one reading.
 * With a field map (field name -> pointer), each pointer is resolved in the
 * object: one that finds nothing (or null) is skipped, one that finds an
 * object or array refuses the message, and an object where no pointer
 * found anything is refused ("no field found"). Without a map, every
 * top-level number, bool and string member is a field, except the member
 * the time pointer names; nested objects and arrays are skipped. Numbers
 * are floats. The time comes from the time pointer (a number in the
 * configured precision, or an RFC 3339 string), else it is the arrival.
 *
 * The depth is counted on the raw text, before jansson sees it: brackets
 * and braces outside strings (a backslash in a string escapes the next
 * byte). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/format_priv.h"

int drv_mq_json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, deepest = 0;
    int in_string = 0;
    if (!s)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > limit)
                    return deepest;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

/* An array index token: "0" or digits without a leading zero, below size. */
static int array_index(const char *tok, size_t n, size_t size, size_t *idx)
{
    if (n == 0 || (n > 1 && tok[0] == '0'))
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
        v = v * 10 + (size_t)(tok[i] - '0');
        if (v >= size)
            return -1; /* also stops any overflow */
    }
    *idx = v;
    return 0;
}

json_t *drv_mq_json_pointer(json_t *root, const char *pointer)
{
    if (!root || !pointer)
        return NULL;
    if (pointer[0] == '\0')
        return root;
    if (pointer[0] != '/')
        return NULL;
    size_t plen = strlen(pointer);
    char stack[256];
    char *tok = plen < sizeof(stack) ? stack : malloc(plen);
    if (!tok)
        return NULL;
    json_t *cur = root;
    const char *p = pointer;
    while (cur && *p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            if (*p == '~') {
                if (p[1] != '0' && p[1] != '1') {
                    cur = NULL; /* "~" must be "~0" or "~1" */
                    goto out;
                }
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        size_t idx;
        if (json_is_object(cur))
            cur = json_object_getn(cur, tok, n);
        else if (json_is_array(cur) && array_index(tok, n, json_array_size(cur), &idx) == 0)
            cur = json_array_get(cur, idx);
        else
            cur = NULL;
    }
out:
    if (tok != stack)
        free(tok);
    return cur;
}

/* One object to one reading. ctx prefixes reasons ("element 2: " or ""). */
static int one_object(const struct drv_mq_parse_opts *o, json_t *obj, const char *ctx,
                      int64_t now_ns, struct drv_mq_out *out, char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    int64_t t = now_ns;
    json_t *tv = NULL;
    if (o->time_pointer && o->time_pointer[0]) {
        tv = drv_mq_json_pointer(obj, o->time_pointer);
        if (json_is_null(tv))
            tv = NULL;
        char what[DRV_MQ_QUOTE_MAX + 64];
        snprintf(what, sizeof(what), "%stime %s", ctx,
                 drv_mq_quote(q, o->time_pointer, strlen(o->time_pointer)));
        if (tv && drv_mq_json_time(tv, o->precision, what, &t, why, whylen) != 0)
            return HUB_EINVAL;
    }
    int rc;
    hub_reading_t *r = drv_mq_reading(o->measurement && *o->measurement ? o->measurement : "json",
                                      t, &rc, why, whylen);
    if (!r)
        return rc;
    rc = HUB_OK;
    if (o->fields && o->fields->n > 0) {
        for (size_t i = 0; rc == HUB_OK && i < o->fields->n; i++) {
            const struct hub_cfg_tag *f = &o->fields->tag[i];
            json_t *v = drv_mq_json_pointer(obj, f->value);
            if (!v || json_is_null(v))
                continue;
            if (json_is_object(v) || json_is_array(v)) {
                char q2[DRV_MQ_QUOTE_MAX];
                drv_mq_why(why, whylen, "%sfield %s: %s is %s, not a value", ctx,
                           drv_mq_quote(q, f->key, strlen(f->key)),
                           drv_mq_quote(q2, f->value, strlen(f->value)),
                           json_is_object(v) ? "an object" : "an array");
                rc = HUB_EINVAL;
                break;
            }
            rc = drv_mq_add_json_field(r, f->key, v, ctx, why, whylen);
        }
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v)
        {
            if (v == tv || json_is_null(v) || json_is_object(v) || json_is_array(v))
                continue;
            rc = drv_mq_add_json_field(r, key, v, ctx, why, whylen);
            if (rc != HUB_OK)
                break;
        }
    }
    if (rc == HUB_OK && hub_reading_field_count(r) == 0) {
        drv_mq_why(why, whylen, "%sno field found", ctx);
        rc = HUB_EINVAL;
    }
    if (rc != HUB_OK) {
        hub_reading_free(r);
        return rc;
    }
    return drv_mq_push(out, r, why, whylen);
}

int drv_mq_parse_json(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                      struct drv_mq_out *out, char *why, size_t whylen)
{
    if (json_is_object(root))
        return one_object(o, root, "", now_ns, out, why, whylen);
    if (!json_is_array(root)) {
        drv_mq_why(why, whylen, "not a JSON object or an array of objects");
        return HUB_EINVAL;
    }
    if (json_array_size(root) == 0) {
        drv_mq_why(why, whylen, "empty JSON array");
        return HUB_EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(root, i, e)
    {
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "element %zu: ", i + 1);
        if (!json_is_object(e)) {
            drv_mq_why(why, whylen, "%snot an object", ctx);
            return HUB_EINVAL;
        }
        int rc = one_object(o, e, ctx, now_ns, out, why, whylen);
        if (rc != HUB_OK)
            return rc;
    }
    return HUB_OK;
}
