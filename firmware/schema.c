/* firmware/schema.c — `cityhub schema`: the data dictionary of a gateway.
 * Every input driver lists the fields its configured sources write
 * (drv_ops.schema); the hub adds its own tags (gateway, hub.tags), which
 * every reading carries. Markdown for people, JSON for programs. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"

struct schema_out {
    int json;
    json_t *fields; /* json */
    size_t n;
    const char *last_source; /* markdown: a header per source */
};

static void put_markdown(struct schema_out *o, const struct drv_schema_field *f)
{
    if (!o->last_source || strcmp(o->last_source, f->source) != 0) {
        printf("\n### %s\n\nmeasurement `%s`, tags:", f->source, f->measurement);
        for (size_t i = 0; f->tags && f->tags[i]; i++)
            printf(" `%s`", f->tags[i]);
        printf("\n\n| field | type | unit | description |\n|---|---|---|---|\n");
        o->last_source = f->source;
    }
    printf("| `%s` | %s | %s | %s |\n", f->field, f->type, f->unit[0] ? f->unit : "-",
           f->description[0] ? f->description : "");
}

static void put(void *arg, const struct drv_schema_field *f)
{
    struct schema_out *o = arg;
    o->n++;
    if (!o->json) {
        put_markdown(o, f);
        return;
    }
    json_t *tags = json_array();
    for (size_t i = 0; f->tags && f->tags[i]; i++)
        json_array_append_new(tags, json_string(f->tags[i]));
    json_array_append_new(o->fields, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "source",
                                               f->source, "measurement", f->measurement, "field",
                                               f->field, "type", f->type, "unit", f->unit,
                                               "description", f->description, "tags", tags));
}

int ch_cmd_schema(const char *path, const char *format)
{
    struct schema_out o = {0};
    if (!strcmp(format, "json"))
        o.json = 1;
    else if (strcmp(format, "markdown") != 0) {
        fprintf(stderr, "cityhub schema: unknown --format \"%s\" (json or markdown)\n", format);
        return EXIT_USAGE;
    }
    unsigned nerr = 0;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c) {
        fprintf(stderr, "%s: %u error%s\n", path, nerr, nerr == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    json_t *hub_tags = json_array();
    json_array_append_new(hub_tags, json_string("gateway"));
    for (size_t i = 0; i < c->hub.tags.n; i++)
        json_array_append_new(hub_tags, json_string(c->hub.tags.tag[i].key));
    if (o.json) {
        o.fields = json_array();
    } else {
        printf("# Data dictionary of gateway %s\n\nEvery reading carries the tags:", c->hub.name);
        size_t i;
        json_t *t;
        json_array_foreach(hub_tags, i, t) printf(" `%s`", json_string_value(t));
        printf(".\n");
    }
    for (size_t i = 0; i < c->ninputs; i++)
        if (c->inputs[i].elements && c->inputs[i].ops->schema)
            c->inputs[i].ops->schema(&c->inputs[i].cfg, put, &o);
    int rc = 0;
    if (o.json) {
        json_t *doc = json_pack("{s:s, s:o, s:o}", "gateway", c->hub.name, "tags", hub_tags,
                                "fields", o.fields);
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2)) != 0)
            rc = 1;
        putchar('\n');
        json_decref(doc);
    } else {
        json_decref(hub_tags);
        if (o.n == 0)
            printf("\nNo source is configured.\n");
    }
    ch_config_free(c);
    return rc;
}
