/* drivers/mqtt/input.c — the MQTT input: section `mqtt_inputs`, each
 * element one broker connection with its subscriptions.
 *
 * A message is handled on Paho's receive thread, start to end: match its
 * topic to a subscription, take tags from the topic's levels, parse the
 * payload (format.h), and append every reading to the journal through the
 * sink. Only when the callback returns does Paho acknowledge a QoS 1
 * message, so the broker forgets nothing that is not in the journal: a
 * kill -9 at any moment loses nothing the broker delivered (a message
 * caught between its append and its PUBACK is delivered again; a payload
 * with its own timestamp then overwrites itself in the store).
 *
 * A bad message (unparsable, too large, on a topic no subscription
 * matches) is counted per subscription, logged with its topic and reason
 * (the first at once, then once a minute with the count), written to the
 * dead-letter file when one is configured, and acknowledged: the broker
 * must not send it again for ever, and nothing else changes.
 *
 * One runner thread watches every connection (idle_timeout: connected but
 * silent for that long → subscribe again; silent for twice that →
 * reconnect) and writes a status point per subscription every
 * hub.status_interval (measurement cityhub_mqtt). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/mqtt_priv.h"
#include "hub/accept.h"
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/deadletter.h"
#include "hub/journal.h"
#include "hub/log.h"

#define MAX_LEVELS 32

/* ---- configuration ------------------------------------------------------ */

#define IN(m) offsetof(struct drv_mq_input_cfg, m)
#define IN_SZ(m) sizeof(((struct drv_mq_input_cfg *)0)->m)
#define SUB(m) offsetof(struct drv_mq_sub_cfg, m)
#define SUB_SZ(m) sizeof(((struct drv_mq_sub_cfg *)0)->m)

static const struct hub_cfg_key sub_keys[] = {
    HUB_CFG_KEY("topic", HUB_CFG_STRING, NULL, true, SUB(topic), SUB_SZ(topic), 0, 0, NULL,
                "topic filter; + and # wildcards; a level written {name} matches like + and "
                "sets the tag name (city/{site}/noise/#)"),
    HUB_CFG_KEY("qos", HUB_CFG_INT, "1", false, SUB(qos), 0, 0, 2, NULL,
                "0, 1 or 2; QoS 1 and 2 messages are acknowledged once in the journal"),
    HUB_CFG_KEY("format", HUB_CFG_ENUM, NULL, true, SUB(format), 0, 0, 0, drv_mq_format_names,
                "payload format: senml, json, influx (line protocol), value, chirpstack"),
    HUB_CFG_KEY("measurement", HUB_CFG_STRING, NULL, false, SUB(measurement), SUB_SZ(measurement),
                0, 0, NULL,
                "measurement of the readings (default: senml, json, value, lorawan; line "
                "protocol names its own)"),
    HUB_CFG_KEY("field", HUB_CFG_STRING, "value", false, SUB(field), SUB_SZ(field), 0, 0, NULL,
                "format value: the field's name"),
    {.name = "fields",
     .type = HUB_CFG_TAGS,
     .offset = SUB(fields),
     .help = "format json: field name -> JSON Pointer (temperature: /t); none: every "
             "top-level number, bool and string"},
    HUB_CFG_KEY("time", HUB_CFG_STRING, NULL, false, SUB(time), SUB_SZ(time), 0, 0, NULL,
                "format json: JSON Pointer of the timestamp (a number, or an RFC 3339 string); "
                "none: arrival time"),
    HUB_CFG_KEY("precision", HUB_CFG_ENUM, "auto", false, SUB(precision), 0, 0, 0,
                drv_mq_precision_names,
                "unit of numeric timestamps: auto (json: by magnitude; line protocol: ns), ns, "
                "us, ms, s"),
    {.name = "tags",
     .type = HUB_CFG_TAGS,
     .offset = SUB(tags),
     .help = "tags added to every reading of this subscription"},
    {.name = "units",
     .type = HUB_CFG_TAGS,
     .offset = SUB(units),
     .help = "field -> unit (UCUM/SenML), for the data dictionary and the live feed"},
    HUB_CFG_KEY("radio", HUB_CFG_BOOL, "false", false, SUB(radio), 0, 0, 0, NULL,
                "format chirpstack: also write the best gateway's RSSI and SNR"),
    HUB_CFG_KEY("radio_measurement", HUB_CFG_STRING, "lorawan_radio", false, SUB(radio_measurement),
                SUB_SZ(radio_measurement), 0, 0, NULL,
                "format chirpstack: measurement of the radio readings"),
    HUB_CFG_END,
};

static const struct hub_cfg_key input_keys[] = {
    HUB_CFG_KEY("name", HUB_CFG_STRING, NULL, true, IN(name), IN_SZ(name), 0, 0, NULL,
                "name of this connection, in logs and status points ([A-Za-z0-9_.-])"),
    DRV_MQ_CONN_KEYS(struct drv_mq_input_cfg, conn),
    HUB_CFG_KEY("clean_session", HUB_CFG_BOOL, "false", false, IN(conn.clean_session), 0, 0, 0,
                NULL,
                "false: a persistent session, the broker keeps QoS 1 messages while the hub "
                "is away"),
    HUB_CFG_KEY("max_payload", HUB_CFG_SIZE, "256KiB", false, IN(max_payload), 0, 0, 0, NULL,
                "larger messages are rejected"),
    HUB_CFG_KEY("idle_timeout", HUB_CFG_DURATION, "0s", false, IN(idle_timeout_ns), 0, 0, 0, NULL,
                "connected yet silent this long: subscribe again, then reconnect; 0 = off "
                "(set it well above the sensors' slowest rate)"),
    HUB_CFG_KEY("dead_letter", HUB_CFG_STRING, NULL, false, IN(dead_letter), IN_SZ(dead_letter), 0,
                0, NULL, "file where rejected messages are kept with their reason"),
    HUB_CFG_KEY("dead_letter_max", HUB_CFG_SIZE, "16MiB", false, IN(dead_letter_max), 0, 0, 0, NULL,
                "size of the dead-letter file before it is rotated (one old file kept)"),
    {.name = "subscribe",
     .type = HUB_CFG_LIST,
     .required = true,
     .offset = IN(subscribe),
     .child = sub_keys,
     .elem_size = sizeof(struct drv_mq_sub_cfg),
     .max_count = DRV_MQ_MAX_SUBS,
     .help = "topics to subscribe to, each with its payload format"},
    HUB_CFG_END,
};

static const struct drv_section sections[] = {
    {"mqtt_inputs", "MQTT input", input_keys, sizeof(struct drv_mq_input_cfg), DRV_MQ_MAX_INPUTS,
     "MQTT brokers to subscribe to: SenML, JSON, line protocol, raw values, ChirpStack"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

void drv_mq_default_client_id(struct drv_mq_conn_cfg *conn, const char *gateway, const char *name)
{
    if (!conn->client_id[0])
        snprintf(conn->client_id, sizeof(conn->client_id), "%s-%s", gateway ? gateway : "cityhub",
                 name);
}

/* ---- topic filters -------------------------------------------------------- */

/* The filter to subscribe to ({name} levels become +) and the tag name of
 * each level (NULL when none). Returns 0, or -1 with a message. */
static int parse_filter(const char *topic, char *filter, size_t flen, char names[][64],
                        size_t *nlevels, char *err, size_t errlen)
{
    size_t n = 0, off = 0;
    const char *p = topic;
    if (!*topic) {
        snprintf(err, errlen, "empty topic filter");
        return -1;
    }
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        if (n >= MAX_LEVELS) {
            snprintf(err, errlen, "more than %d levels", MAX_LEVELS);
            return -1;
        }
        names[n][0] = 0;
        const char *lv = p;
        size_t ll = l;
        if (l >= 2 && p[0] == '{' && p[l - 1] == '}') {
            if (l - 2 == 0 || l - 2 >= 64) {
                snprintf(err, errlen, "level %zu: a tag name {name} of 1 to 63 characters", n + 1);
                return -1;
            }
            memcpy(names[n], p + 1, l - 2);
            names[n][l - 2] = 0;
            for (size_t i = 0; names[n][i]; i++)
                if (strchr("{}+#", names[n][i])) {
                    snprintf(err, errlen, "level %zu: bad tag name \"%s\"", n + 1, names[n]);
                    return -1;
                }
            for (size_t k = 0; k < n; k++)
                if (!strcmp(names[k], names[n])) {
                    snprintf(err, errlen, "tag {%s} named twice", names[n]);
                    return -1;
                }
            lv = "+";
            ll = 1;
        } else {
            for (size_t i = 0; i < l; i++) {
                if (p[i] == '{' || p[i] == '}') {
                    snprintf(err, errlen, "level %zu: {name} must be a whole level", n + 1);
                    return -1;
                }
                if ((p[i] == '+' || p[i] == '#') && l != 1) {
                    snprintf(err, errlen, "level %zu: %c must be a whole level", n + 1, p[i]);
                    return -1;
                }
            }
            if (l == 1 && p[0] == '#' && slash) {
                snprintf(err, errlen, "# must be the last level");
                return -1;
            }
        }
        if (off + ll + 2 > flen) {
            snprintf(err, errlen, "too long");
            return -1;
        }
        if (n)
            filter[off++] = '/';
        memcpy(filter + off, lv, ll);
        off += ll;
        filter[off] = 0;
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    *nlevels = n;
    return 0;
}

/* MQTT matching: + one level, # the rest (and the parent level itself);
 * topics starting with $ match no wildcard at the first level. */
static int topic_matches(const char *filter, const char *topic)
{
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return 0;
    for (;;) {
        if (filter[0] == '#' && filter[1] == 0)
            return 1;
        const char *fs = strchr(filter, '/'), *ts = strchr(topic, '/');
        size_t fl = fs ? (size_t)(fs - filter) : strlen(filter);
        size_t tl = ts ? (size_t)(ts - topic) : strlen(topic);
        if (!(fl == 1 && filter[0] == '+') && (fl != tl || memcmp(filter, topic, fl) != 0))
            return 0;
        if (!fs && !ts)
            return 1;
        if (!ts)
            return fs && !strcmp(fs + 1, "#"); /* a/# matches a */
        if (!fs)
            return 0;
        filter = fs + 1;
        topic = ts + 1;
    }
}

/* ---- the running driver ---------------------------------------------------- */

struct sub_rt {
    const struct drv_mq_sub_cfg *cfg;
    char filter[DRV_MQ_TOPIC_MAX];
    char names[MAX_LEVELS][64];
    size_t nlevels;
    struct drv_mq_parse_opts po;
    _Atomic uint64_t messages, rejected, readings, refused;
    _Atomic int64_t last_msg_ns, last_rej_ns; /* wall clock, 0 = never */
    struct hub_metric *m_msgs, *m_rej;
    pthread_mutex_t log_mu;
    struct hub_log_limit rej_limit;
};

struct input_rt {
    struct ctx *ctx;
    struct drv_mq_input_cfg cfg; /* a copy: the client id filled in */
    char who[DRV_NAME_MAX + 8];
    drv_mq_client_t *client;
    struct sub_rt *subs;
    size_t nsubs;
    hub_deadletter_t *dl;
    struct drv_mq_out *out; /* the message being handled (Paho's one receive thread) */
    _Atomic uint64_t unmatched;
    struct hub_log_limit unmatched_limit;
    _Atomic int64_t quiet_since_ns; /* last message, or connect */
    int watch_stage;                /* 0 ok, 1 resubscribed */
};

struct ctx {
    const struct drv_sink *sink;
    int64_t status_interval_ns;
    struct input_rt *in;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void reject(struct input_rt *in, struct sub_rt *s, const char *topic, const void *payload,
                   size_t len, const char *why)
{
    uint64_t held = 0;
    int64_t now = hub_time_ns();
    if (s) {
        atomic_fetch_add(&s->rejected, 1);
        atomic_store(&s->last_rej_ns, now);
        hub_metric_inc(s->m_rej, 1);
        pthread_mutex_lock(&s->log_mu);
        int pass = hub_log_limit_pass(&s->rej_limit, hub_mono_ns(), &held);
        pthread_mutex_unlock(&s->log_mu);
        if (pass)
            hub_warn(in->who, "rejected a message on %s: %s%s", topic, why,
                     held ? " (and more since the last report: see the counters)" : "");
        if (held)
            hub_warn(in->who, "%" PRIu64 " more rejected on %s since the last report", held,
                     s->cfg->topic);
    } else {
        atomic_fetch_add(&in->unmatched, 1);
        if (hub_log_limit_pass(&in->unmatched_limit, hub_mono_ns(), &held))
            hub_warn(in->who,
                     "message on %s matches no subscription (an old one of a persistent "
                     "session?): dropped%s",
                     topic, held ? " (more held back)" : "");
    }
    if (in->dl &&
        hub_deadletter_write(in->dl, now, in->who, "topic", topic, why, payload, len) != HUB_OK)
        hub_warn(in->who, "dead-letter file %s: write failed", in->cfg.dead_letter);
}

/* Tags of a message: one per {name} level (an empty level sets none), then
 * the subscription's own. */
static int topic_tags(const struct sub_rt *s, const char *topic, char *copy, size_t copylen,
                      struct drv_mq_tagset *ts, char *why, size_t whylen)
{
    ts->n = 0;
    snprintf(copy, copylen, "%s", topic);
    char *p = copy;
    for (size_t lv = 0; lv < s->nlevels && p; lv++) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = 0;
        if (s->names[lv][0] && *p) {
            if (strlen(p) > HUB_READING_MAX_NAME) {
                snprintf(why, whylen, "topic level %zu ({%s}) longer than %d bytes", lv + 1,
                         s->names[lv], HUB_READING_MAX_NAME);
                return -1;
            }
            ts->tag[ts->n++] = (struct hub_tag){s->names[lv], p};
        }
        p = slash ? slash + 1 : NULL;
    }
    for (size_t i = 0; i < s->cfg->tags.n && ts->n < HUB_READING_MAX_TAGS; i++)
        ts->tag[ts->n++] = (struct hub_tag){s->cfg->tags.tag[i].key, s->cfg->tags.tag[i].value};
    return 0;
}

static void on_message(void *arg, const char *topic, const void *payload, size_t len, int qos,
                       bool retained)
{
    struct input_rt *in = arg;
    (void)qos;
    (void)retained;
    atomic_store(&in->quiet_since_ns, hub_mono_ns());
    struct sub_rt *s = NULL;
    for (size_t i = 0; i < in->nsubs && !s; i++)
        if (topic_matches(in->subs[i].filter, topic))
            s = &in->subs[i];
    if (!s) {
        reject(in, NULL, topic, payload, len, "no subscription matches the topic");
        return;
    }
    atomic_fetch_add(&s->messages, 1);
    atomic_store(&s->last_msg_ns, hub_time_ns());
    hub_metric_inc(s->m_msgs, 1);
    char why[512];
    if (len > in->cfg.max_payload) {
        snprintf(why, sizeof(why), "payload of %zu bytes is over max_payload (%" PRIu64 ")", len,
                 in->cfg.max_payload);
        reject(in, s, topic, payload, len > 4096 ? 4096 : len, why);
        return;
    }
    char copy[4096];
    struct drv_mq_tagset ts;
    if (topic_tags(s, topic, copy, sizeof(copy), &ts, why, sizeof(why)) != 0) {
        reject(in, s, topic, payload, len, why);
        return;
    }
    struct drv_mq_out *out = in->out;
    int rc = drv_mq_parse(&s->po, &ts, payload, len, hub_time_ns(), out, why, sizeof(why));
    if (rc != HUB_OK) {
        if (rc == HUB_ENOMEM)
            snprintf(why, sizeof(why), "out of memory");
        drv_mq_out_clear(out);
        reject(in, s, topic, payload, len, why);
        return;
    }
    uint64_t ok = 0, refused = 0;
    for (size_t i = 0; i < out->n; i++) {
        /* emit takes the reading whatever it answers; a refusal (journal
         * full) is counted and logged by the accept path */
        if (in->ctx->sink->emit(in->ctx->sink->ctx, out->r[i]) == HUB_OK)
            ok++;
        else
            refused++;
        out->r[i] = NULL;
    }
    out->n = 0;
    atomic_fetch_add(&s->readings, ok);
    atomic_fetch_add(&s->refused, refused);
}

static void on_connected(void *arg, bool session_present)
{
    struct input_rt *in = arg;
    (void)session_present;
    atomic_store(&in->quiet_since_ns, hub_mono_ns());
    in->watch_stage = 0;
}

static void input_free(struct input_rt *in)
{
    if (in->client)
        drv_mq_client_free(in->client, HUB_NS_PER_S);
    for (size_t i = 0; i < in->nsubs; i++)
        pthread_mutex_destroy(&in->subs[i].log_mu);
    free(in->subs);
    hub_deadletter_close(in->dl);
    if (in->out)
        drv_mq_out_clear(in->out);
    free(in->out);
}

static int input_init(struct ctx *c, struct input_rt *in, const struct drv_mq_input_cfg *cfg,
                      const struct drv_env *env, char *err, size_t errlen)
{
    in->ctx = c;
    in->cfg = *cfg;
    drv_mq_default_client_id(&in->cfg.conn, env->gateway, cfg->name);
    snprintf(in->who, sizeof(in->who), "mqtt:%s", cfg->name);
    in->subs = calloc(cfg->subscribe.n ? cfg->subscribe.n : 1, sizeof(*in->subs));
    in->out = calloc(1, sizeof(*in->out));
    if (!in->subs || !in->out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    in->nsubs = cfg->subscribe.n;
    for (size_t i = 0; i < in->nsubs; i++) {
        struct sub_rt *s = &in->subs[i];
        s->cfg = HUB_CFG_ITEM(&cfg->subscribe, i, struct drv_mq_sub_cfg);
        pthread_mutex_init(&s->log_mu, NULL);
        char e[256];
        if (parse_filter(s->cfg->topic, s->filter, sizeof(s->filter), s->names, &s->nlevels, e,
                         sizeof(e)) != 0) {
            snprintf(err, errlen, "input %s: topic %s: %s", cfg->name, s->cfg->topic, e);
            return -1;
        }
        s->po = (struct drv_mq_parse_opts){
            .format = (enum drv_mq_format)s->cfg->format,
            .measurement = s->cfg->measurement[0] ? s->cfg->measurement : NULL,
            .field = s->cfg->field[0] ? s->cfg->field : NULL,
            .fields = &s->cfg->fields,
            .time_pointer = s->cfg->time[0] ? s->cfg->time : NULL,
            .precision = (enum drv_mq_precision)s->cfg->precision,
            .radio = s->cfg->radio,
            .radio_measurement = s->cfg->radio_measurement[0] ? s->cfg->radio_measurement : NULL,
        };
        char label[DRV_NAME_MAX + DRV_MQ_TOPIC_MAX + 2];
        snprintf(label, sizeof(label), "%s:%s", cfg->name, s->cfg->topic);
        s->m_msgs =
            hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_mqtt_messages_total",
                            "subscription", label, "MQTT messages received, by input:topic filter");
        s->m_rej = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_mqtt_rejected_total",
                                   "subscription", label,
                                   "MQTT messages rejected (bad payload, too large), by "
                                   "input:topic filter");
    }
    if (cfg->dead_letter[0] &&
        hub_deadletter_open(cfg->dead_letter, cfg->dead_letter_max, &in->dl, err, errlen) != HUB_OK)
        return -1;
    struct drv_mq_client_cb cb = {.message = on_message, .connected = on_connected, .arg = in};
    char e[512];
    if (drv_mq_client_new(&in->cfg.conn, in->who, &cb, NULL, &in->client, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "input %s: %s", cfg->name, e);
        return -1;
    }
    for (size_t i = 0; i < in->nsubs; i++)
        if (drv_mq_client_subscribe(in->client, in->subs[i].filter, (int)in->subs[i].cfg->qos) !=
            0) {
            snprintf(err, errlen, "input %s: out of memory", cfg->name);
            return -1;
        }
    return 0;
}

static void mqtt_exit(void *ctxp);

static int mqtt_init(const void *cfgp, const struct drv_env *env, void **out, char *err,
                     size_t errlen)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *l = &cfg->sect[0];
    struct ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->sink = env->sink;
    c->status_interval_ns = env->status_interval_ns;
    hub_cond_init(&c->mu, &c->cv);
    c->in = calloc(l->n ? l->n : 1, sizeof(*c->in));
    if (!c->in) {
        snprintf(err, errlen, "out of memory");
        mqtt_exit(c);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        c->n++;
        if (input_init(c, &c->in[i], HUB_CFG_ITEM(l, i, struct drv_mq_input_cfg), env, err,
                       errlen) != 0) {
            mqtt_exit(c);
            return -1;
        }
    }
    /* connect now: the broker starts delivering what it kept at once */
    for (size_t i = 0; i < c->n; i++)
        if (drv_mq_client_start(c->in[i].client, env->beats) != 0) {
            snprintf(err, errlen, "input %s: cannot start a thread", c->in[i].cfg.name);
            mqtt_exit(c);
            return -1;
        }
    *out = c;
    return 0;
}

static size_t mqtt_runners(void *ctxp)
{
    (void)ctxp;
    return 1;
}

static void status_point(struct ctx *c, struct input_rt *in, struct sub_rt *s, bool connected)
{
    hub_reading_t *r = hub_reading_new("cityhub_mqtt", hub_time_ns());
    if (!r)
        return;
    hub_reading_add_tag(r, "input", in->cfg.name);
    hub_reading_add_tag(r, "subscription", s->cfg->topic);
    hub_reading_add_bool(r, "connected", connected);
    hub_reading_add_uint(r, "messages", atomic_load(&s->messages));
    hub_reading_add_uint(r, "rejected", atomic_load(&s->rejected));
    hub_reading_add_uint(r, "readings", atomic_load(&s->readings));
    hub_reading_add_uint(r, "refused", atomic_load(&s->refused));
    c->sink->emit(c->sink->ctx, r);
}

/* The watchdog and status points, for every input. */
static void mqtt_run(void *ctxp, size_t runner)
{
    struct ctx *c = ctxp;
    (void)runner;
    int64_t next_status = hub_mono_ns() + c->status_interval_ns;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        pthread_mutex_unlock(&c->mu);
        int64_t now = hub_mono_ns();
        bool status = c->status_interval_ns > 0 && now >= next_status;
        hub_beat();
        for (size_t i = 0; i < c->n; i++) {
            struct input_rt *in = &c->in[i];
            struct drv_mq_client_stats st;
            hub_beat_doing(in->who, NULL);
            drv_mq_client_stats(in->client, &st);
            if (status)
                for (size_t k = 0; k < in->nsubs; k++)
                    status_point(c, in, &in->subs[k], st.connected);
            int64_t idle = in->cfg.idle_timeout_ns;
            int64_t quiet = now - atomic_load(&in->quiet_since_ns);
            if (!st.connected || idle <= 0 || quiet < idle)
                continue;
            if (in->watch_stage == 0) {
                hub_warn(in->who,
                         "connected but no message for %.0f s (idle_timeout): "
                         "subscribing again",
                         (double)quiet / HUB_NS_PER_S);
                drv_mq_client_resubscribe(in->client);
                in->watch_stage = 1;
            } else if (quiet >= 2 * idle) {
                char why[128];
                snprintf(why, sizeof(why), "still no message after %.0f s",
                         (double)quiet / HUB_NS_PER_S);
                in->watch_stage = 0;
                atomic_store(&in->quiet_since_ns, now);
                drv_mq_client_reconnect(in->client, why);
            }
        }
        hub_beat_doing(NULL, NULL);
        if (status)
            next_status = now + c->status_interval_ns;
        pthread_mutex_lock(&c->mu);
        if (!c->stop)
            hub_beat_wait_until(&c->cv, &c->mu, hub_mono_ns() + 250 * HUB_NS_PER_MS);
    }
    pthread_mutex_unlock(&c->mu);
}

static void mqtt_stop(void *ctxp)
{
    struct ctx *c = ctxp;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->n; i++)
        if (c->in[i].client)
            drv_mq_client_stop(c->in[i].client);
}

static void mqtt_stats(void *ctxp, struct drv_stats *st)
{
    struct ctx *c = ctxp;
    for (size_t i = 0; i < c->n; i++) {
        struct drv_mq_client_stats cs;
        drv_mq_client_stats(c->in[i].client, &cs);
        st->sources += c->in[i].nsubs;
        if (!cs.connected)
            st->failing += c->in[i].nsubs;
    }
}

static void mqtt_sources(void *ctxp, drv_source_fn fn, void *arg)
{
    struct ctx *c = ctxp;
    for (size_t i = 0; i < c->n; i++) {
        struct drv_mq_client_stats cs;
        drv_mq_client_stats(c->in[i].client, &cs);
        for (size_t k = 0; k < c->in[i].nsubs; k++) {
            struct sub_rt *s = &c->in[i].subs[k];
            char name[DRV_NAME_MAX + DRV_MQ_TOPIC_MAX + 2];
            snprintf(name, sizeof(name), "%s:%s", c->in[i].cfg.name, s->cfg->topic);
            struct drv_source src = {
                .kind = "subscription",
                .name = name,
                .group = c->in[i].cfg.name,
                .ok = cs.connected,
                .last_ok_ns = atomic_load(&s->last_msg_ns),
                .last_error_ns = atomic_load(&s->last_rej_ns),
                .last_error = cs.connected ? "" : cs.last_error,
                .skew_ns = -1,
                .messages = atomic_load(&s->messages),
                .rejected = atomic_load(&s->rejected),
                .connected = cs.connected,
            };
            fn(arg, &src);
        }
    }
}

static void mqtt_exit(void *ctxp)
{
    struct ctx *c = ctxp;
    if (!c)
        return;
    /* Disconnect first: no message callback runs once the clients are
     * gone, so the sink is no longer used. */
    for (size_t i = 0; i < c->n; i++)
        input_free(&c->in[i]);
    free(c->in);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* ---- check ------------------------------------------------------------------ */

static void check_sub(const struct drv_mq_input_cfg *in, const struct drv_mq_sub_cfg *s,
                      struct drv_check *ck)
{
    char filter[DRV_MQ_TOPIC_MAX], names[MAX_LEVELS][64], e[256];
    size_t nlevels = 0;
    if (parse_filter(s->topic, filter, sizeof(filter), names, &nlevels, e, sizeof(e)) != 0) {
        drv_check_error(ck, s, "topic", "topic filter \"%s\": %s", s->topic, e);
        return;
    }
    enum drv_mq_format f = (enum drv_mq_format)s->format;
    const char *fname = drv_mq_format_names[f];
    static const struct {
        const char *key;
        unsigned formats; /* bit per enum drv_mq_format */
    } only[] = {
        {"field", 1u << DRV_MQ_VALUE},
        {"fields", 1u << DRV_MQ_JSON},
        {"time", 1u << DRV_MQ_JSON},
        {"precision", 1u << DRV_MQ_JSON | 1u << DRV_MQ_INFLUX},
        {"radio", 1u << DRV_MQ_CHIRPSTACK},
        {"radio_measurement", 1u << DRV_MQ_CHIRPSTACK},
        {"measurement", ~(1u << DRV_MQ_INFLUX)},
    };
    for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
        if (!(only[i].formats & (1u << f)) && ck->given && ck->given(ck, s, only[i].key))
            drv_check_error(ck, s, only[i].key, "%s is not used by format %s%s", only[i].key, fname,
                            f == DRV_MQ_INFLUX && !strcmp(only[i].key, "measurement")
                                ? " (each line names its measurement)"
                                : "");
    for (size_t i = 0; i < s->fields.n; i++)
        if (s->fields.tag[i].value[0] && s->fields.tag[i].value[0] != '/')
            drv_check_error(ck, s, "fields",
                            "field %s: \"%s\" is not a JSON Pointer (write /%s: RFC 6901)",
                            s->fields.tag[i].key, s->fields.tag[i].value, s->fields.tag[i].value);
    if (s->time[0] && s->time[0] != '/')
        drv_check_error(ck, s, "time", "\"%s\" is not a JSON Pointer (write /%s)", s->time,
                        s->time);
    size_t named = 0;
    for (size_t i = 0; i < nlevels; i++)
        named += names[i][0] != 0;
    /* device, dev_eui, application, gateway_id and a payload's own come on
     * top: leave room for four */
    size_t ntags = hub_accept_tag_count(ck->hub_tags, &s->tags, named + 4);
    if (ntags > HUB_READING_MAX_TAGS)
        drv_check_error(ck, s, "tags",
                        "readings of %s would have up to %zu tags (topic levels, tags, the "
                        "hub's); at most %d",
                        s->topic, ntags, HUB_READING_MAX_TAGS);
    (void)in;
}

static void mqtt_check(const void *cfgp, struct drv_check *ck)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *l = &cfg->sect[0];
    for (size_t i = 0; i < l->n; i++) {
        const struct drv_mq_input_cfg *in = HUB_CFG_ITEM(l, i, struct drv_mq_input_cfg);
        char e[256];
        const char *key = NULL;
        if (hub_journal_check_name(in->name, e, sizeof(e)) != 0)
            drv_check_error(ck, in, "name", "%s", e);
        for (size_t k = 0; k < i; k++) {
            const struct drv_mq_input_cfg *o = HUB_CFG_ITEM(l, k, struct drv_mq_input_cfg);
            if (!strcmp(o->name, in->name))
                drv_check_error(ck, in, "name", "MQTT input \"%s\" is named twice", in->name);
            if (in->conn.client_id[0] && !strcmp(o->conn.client_id, in->conn.client_id))
                drv_check_error(ck, in, "client_id",
                                "client id \"%s\" is used twice: the broker would drop one "
                                "connection whenever the other connects",
                                in->conn.client_id);
        }
        if (drv_mq_conn_validate(&in->conn, &key, e, sizeof(e)) != 0)
            drv_check_error(ck, in, key, "%s", e);
        if (in->subscribe.n == 0)
            drv_check_error(ck, in, "subscribe", "at least one subscription is needed");
        for (size_t k = 0; k < in->subscribe.n; k++)
            check_sub(in, HUB_CFG_ITEM(&in->subscribe, k, struct drv_mq_sub_cfg), ck);
    }
}

/* ---- the data dictionary ---------------------------------------------------- */

static void mqtt_schema(const void *cfgp, drv_schema_fn emit, void *arg)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *l = &cfg->sect[0];
    for (size_t i = 0; i < l->n; i++) {
        const struct drv_mq_input_cfg *in = HUB_CFG_ITEM(l, i, struct drv_mq_input_cfg);
        for (size_t k = 0; k < in->subscribe.n; k++) {
            const struct drv_mq_sub_cfg *s = HUB_CFG_ITEM(&in->subscribe, k, struct drv_mq_sub_cfg);
            char filter[DRV_MQ_TOPIC_MAX], names[MAX_LEVELS][64], e[256], source[512];
            size_t nlevels = 0;
            if (parse_filter(s->topic, filter, sizeof(filter), names, &nlevels, e, sizeof(e)))
                continue;
            const char *tags[MAX_LEVELS + HUB_CFG_TAGS_MAX + 2];
            size_t nt = 0;
            for (size_t v = 0; v < nlevels; v++)
                if (names[v][0])
                    tags[nt++] = names[v];
            for (size_t t = 0; t < s->tags.n; t++)
                tags[nt++] = s->tags.tag[t].key;
            tags[nt] = NULL;
            snprintf(source, sizeof(source), "%s %s", in->name, s->topic);
            enum drv_mq_format f = (enum drv_mq_format)s->format;
            static const char *const dflt[] = {"senml", "json", "", "value", "lorawan"};
            const char *m = s->measurement[0] ? s->measurement : dflt[f];
            struct drv_schema_field sf = {
                .source = source, .measurement = m, .tags = tags, .description = ""};
            if (f == DRV_MQ_VALUE) {
                const char *u = "";
                for (size_t t = 0; t < s->units.n; t++)
                    if (!strcmp(s->units.tag[t].key, s->field))
                        u = s->units.tag[t].value;
                sf.field = s->field;
                sf.type = "float";
                sf.unit = u;
                sf.description = "the message's payload";
                emit(arg, &sf);
            } else if (f == DRV_MQ_JSON && s->fields.n) {
                for (size_t t = 0; t < s->fields.n; t++) {
                    const char *u = "";
                    for (size_t x = 0; x < s->units.n; x++)
                        if (!strcmp(s->units.tag[x].key, s->fields.tag[t].key))
                            u = s->units.tag[x].value;
                    sf.field = s->fields.tag[t].key;
                    sf.type = "float";
                    sf.unit = u;
                    sf.description = s->fields.tag[t].value;
                    emit(arg, &sf);
                }
            } else {
                /* fields named by the payload: the ones given a unit */
                for (size_t t = 0; t < s->units.n; t++) {
                    sf.field = s->units.tag[t].key;
                    sf.type = f == DRV_MQ_INFLUX ? "as written" : "float";
                    sf.unit = s->units.tag[t].value;
                    sf.description = "";
                    emit(arg, &sf);
                }
            }
        }
    }
}

const struct drv_ops drv_mqtt_ops = {
    .name = "mqtt",
    .kind = DRV_INPUT,
    .help = "MQTT subscriptions: SenML, JSON, line protocol, raw values, ChirpStack uplinks",
    .global_init = drv_mq_global_init,
    .version = drv_mq_version,
    .sections = sections,
    .check = mqtt_check,
    .init = mqtt_init,
    .runners = mqtt_runners,
    .run = mqtt_run,
    .stop = mqtt_stop,
    .schema = mqtt_schema,
    .stats = mqtt_stats,
    .sources = mqtt_sources,
    .exit = mqtt_exit,
};
