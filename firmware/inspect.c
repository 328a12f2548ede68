/* firmware/inspect.c — `cityhub check` and `cityhub journal`: the config and
 * the journal, read without starting anything. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/reading.h"

int ch_cmd_check(const char *path)
{
    unsigned nerr = 0;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c) {
        fprintf(stderr, "%s: %u error%s\n", path, nerr, nerr == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    printf("%s: ok — gateway %s", path, c->hub.name);
    for (size_t i = 0; i < c->ninputs; i++) {
        const struct ch_input_cfg *in = &c->inputs[i];
        for (size_t j = 0; in->ops->sections[j].key; j++)
            printf(", %zu %s", in->cfg.sect[j].n, in->ops->sections[j].key);
    }
    printf(", %zu output%s, journal %s\n", c->noutputs, c->noutputs == 1 ? "" : "s",
           c->hub.journal.path);
    ch_config_free(c);
    return 0;
}

/* How --dump writes a reading: as the first configured output with a
 * format writes it, else as the first such driver of the registry. */
static const struct drv_ops *dump_format(const struct ch_config *c)
{
    for (size_t i = 0; i < c->noutputs; i++)
        if (c->outputs[i].ops->format)
            return c->outputs[i].ops;
    size_t n = 0;
    const struct drv_ops *const *all = drv_all(&n);
    for (size_t i = 0; i < n; i++)
        if (all[i]->kind == DRV_OUTPUT && all[i]->format)
            return all[i];
    return NULL;
}

static void print_summary(const struct ch_config *c, hub_journal_t *j)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    printf("journal %s\n", c->hub.journal.path);
    printf("next_seq %" PRIu64 "\n", st.next_seq);
    printf("first_seq %" PRIu64 "\n", st.first_seq);
    printf("stored %" PRIu64 "\n", st.next_seq - st.first_seq);
    printf("segments %" PRIu64 "\n", st.segments);
    printf("bytes %" PRIu64 "\n", st.bytes);
    for (size_t i = 0; i < c->noutputs; i++) {
        const struct drv_output_common *oc = c->outputs[i].cfg;
        uint64_t seq = 0;
        if (hub_journal_cursor_peek(j, oc->name, &seq) == HUB_OK)
            printf("cursor %s %" PRIu64 " lag %" PRIu64 "\n", oc->name, seq,
                   st.next_seq > seq ? st.next_seq - seq : 0);
        else
            printf("cursor %s none\n", oc->name);
    }
}

int ch_cmd_journal(const char *path, int dump, unsigned long long from, int from_set)
{
    unsigned nerr = 0;
    int rc = 1;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c)
        return EXIT_USAGE;
    struct hub_journal_opts jo = {.dir = c->hub.journal.path, .read_only = true};
    hub_journal_t *j = NULL;
    hub_journal_reader_t *rd = NULL;
    struct hub_buf payload, line;
    hub_buf_init(&payload, HUB_JOURNAL_MAX_RECORD);
    hub_buf_init(&line, 1 << 20);
    char err[512];
    const struct drv_ops *fmt = dump_format(c);
    if (hub_journal_open(&jo, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "cityhub: %s\n", err);
        goto out;
    }
    if (!dump) {
        print_summary(c, j);
        rc = 0;
        goto out;
    }
    if (!fmt) {
        fprintf(stderr, "cityhub: no output driver in this build can format readings\n");
        goto out;
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    if (hub_journal_reader_new(j, from_set ? (uint64_t)from : st.first_seq, &rd) != HUB_OK)
        goto out;
    for (;;) {
        uint64_t seq = 0, skipped = 0;
        int r = hub_journal_reader_next(rd, &payload, &seq, &skipped);
        if (skipped)
            fprintf(stderr, "# %" PRIu64 " records skipped (dropped or corrupt)\n", skipped);
        if (r == HUB_EEMPTY)
            break;
        if (r == HUB_ECORRUPT)
            continue;
        if (r != HUB_OK) {
            fprintf(stderr, "cityhub: reading the journal: %s\n", hub_strerror(r));
            goto out;
        }
        hub_reading_t *reading = NULL;
        if (hub_reading_decode(payload.data, payload.len, &reading) != HUB_OK) {
            printf("# seq %" PRIu64 ": undecodable record of %zu bytes\n", seq, payload.len);
            continue;
        }
        hub_buf_reset(&line);
        if (fmt->format(reading, &line) == HUB_OK)
            printf("%" PRIu64 " %s", seq, (const char *)line.data);
        else
            printf("# seq %" PRIu64 ": a reading %s cannot write\n", seq, fmt->name);
        hub_reading_free(reading);
    }
    rc = 0;
out:
    if (rd)
        hub_journal_reader_free(rd);
    if (j)
        hub_journal_close(j);
    hub_buf_free(&payload);
    hub_buf_free(&line);
    ch_config_free(c);
    return rc;
}
