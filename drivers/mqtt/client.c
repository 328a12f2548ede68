/* drivers/mqtt/client.c — one MQTT connection kept up on Paho's
 * asynchronous client (see client.h).
 *
 * Threads: Paho runs two of its own (one sends, one receives and calls the
 * message callback); this file adds a supervisor that connects and, after
 * a failure or a lost connection, waits a backoff and connects again.
 * State changes come from Paho's callbacks under mu; the supervisor sleeps
 * on cv until the next attempt is due or something changes. Paho's own
 * automatic reconnect is off: it has no jitter, and it would hide the
 * reason of each failure from the log. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "drivers/mqtt/client.h"
#include "hub/backoff.h"
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/log.h"
#include "hub/secret.h"

#define SECRET_MAX 1024
#define URI_MAX (DRV_MQ_URL_MAX + 16)
#define MAX_SUBS 1024

enum state { ST_DOWN, ST_CONNECTING, ST_UP };

struct sub {
    char *filter;
    int qos;
};

struct drv_mq_client {
    MQTTAsync h;
    char who[96];
    struct drv_mq_conn_cfg cfg;
    char uri[URI_MAX];
    char connect_what[DRV_MQ_URL_MAX + 32]; /* "cannot connect to URL" */
    bool tls;
    char password[SECRET_MAX];
    struct drv_mq_client_cb cb;
    struct hub_beat *beat; /* the supervisor's heartbeat (NULL: not watched) */
    char *will_topic, *will_payload;
    int will_qos;
    bool will_retained, has_will;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stopping;
    enum state state;
    int64_t next_try_ns;
    int64_t attempt_ns;
    uint64_t gen; /* connections made: a publish drain spanning two fails */
    bool want_reconnect;
    bool disconnected; /* free: the disconnect completed */
    struct hub_backoff bo;
    unsigned fails_in_row;
    char fail_kind[160]; /* reason of the last failure logged */
    struct hub_log_limit fail_limit;

    struct sub *subs;
    size_t nsubs;

    /* publishes since the last drain */
    int64_t pending;
    uint64_t pub_failed;
    char pub_err[160];

    struct drv_mq_client_stats st;
};

/* ---- configuration ------------------------------------------------------ */

/* Split url into scheme and the rest; build Paho's URI (tcp:// or ssl://,
 * with the default port added). Returns 0 or -1 with a message. */
static int make_uri(const char *url, char *uri, size_t urilen, bool *tls, char *err, size_t errlen)
{
    const char *rest;
    if (!strncmp(url, "mqtt://", 7) || !strncmp(url, "tcp://", 6)) {
        *tls = false;
        rest = strstr(url, "://") + 3;
    } else if (!strncmp(url, "mqtts://", 8) || !strncmp(url, "ssl://", 6)) {
        *tls = true;
        rest = strstr(url, "://") + 3;
    } else {
        snprintf(err, errlen, "\"%s\": use mqtt://host:port or mqtts://host:port", url);
        return -1;
    }
    if (strchr(rest, '@')) {
        snprintf(err, errlen,
                 "a user or password in the URL is not allowed: use username and "
                 "password_file");
        return -1;
    }
    size_t hl;
    const char *port = NULL;
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (!close || close == rest + 1) {
            snprintf(err, errlen, "\"%s\": bad IPv6 literal (write [::1]:1883)", url);
            return -1;
        }
        hl = (size_t)(close - rest) + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0' && strcmp(close + 1, "/") != 0) {
            snprintf(err, errlen, "\"%s\": unexpected text after the host", url);
            return -1;
        }
    } else {
        const char *colon = strchr(rest, ':');
        hl = colon ? (size_t)(colon - rest) : strcspn(rest, "/");
        if (colon)
            port = colon + 1;
    }
    if (hl == 0) {
        snprintf(err, errlen, "\"%s\": no host", url);
        return -1;
    }
    long p = *tls ? 8883 : 1883;
    if (port) {
        char *end;
        p = strtol(port, &end, 10);
        if (end == port || (*end && strcmp(end, "/") != 0) || p < 1 || p > 65535) {
            snprintf(err, errlen, "\"%s\": bad port", url);
            return -1;
        }
    } else if (rest[hl] && strcmp(rest + hl, "/") != 0) {
        snprintf(err, errlen, "\"%s\": unexpected text after the host (a path is not used)", url);
        return -1;
    }
    if ((size_t)snprintf(uri, urilen, "%s://%.*s:%ld", *tls ? "ssl" : "tcp", (int)hl, rest, p) >=
        urilen) {
        snprintf(err, errlen, "URL too long");
        return -1;
    }
    return 0;
}

int drv_mq_conn_validate(const struct drv_mq_conn_cfg *cfg, const char **key, char *err,
                         size_t errlen)
{
    char uri[URI_MAX];
    bool tls;
    *key = "url";
    if (make_uri(cfg->url, uri, sizeof(uri), &tls, err, errlen) != 0)
        return -1;
    const struct {
        const char *key, *path;
        bool secret; /* a private key: for its owner only */
    } files[] = {{"ca_file", cfg->ca_file, false},
                 {"cert_file", cfg->cert_file, false},
                 {"key_file", cfg->key_file, true}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!files[i].path[0])
            continue;
        *key = files[i].key;
        if (!tls) {
            snprintf(err, errlen, "only for mqtts:// URLs (TLS)");
            return -1;
        }
        if ((files[i].secret ? hub_secret_check : hub_file_check)(files[i].key, files[i].path, err,
                                                                  errlen) != 0)
            return -1;
    }
    if (!cfg->cert_file[0] != !cfg->key_file[0]) {
        *key = cfg->cert_file[0] ? "key_file" : "cert_file";
        snprintf(err, errlen, "cert_file and key_file go together");
        return -1;
    }
    if (cfg->insecure_skip_verify && !tls) {
        *key = "insecure_skip_verify";
        snprintf(err, errlen, "only for mqtts:// URLs (TLS)");
        return -1;
    }
    if (cfg->password_file[0]) {
        *key = "password_file";
        if (!cfg->username[0]) {
            snprintf(err, errlen, "needs a username");
            return -1;
        }
        if (hub_secret_check("password_file", cfg->password_file, err, errlen) != 0)
            return -1;
    }
    *key = NULL;
    return 0;
}

/* ---- Paho's callbacks --------------------------------------------------- */

static const char *connack_reason(int code)
{
    switch (code) {
    case 1:
        return "refused: the broker does not speak MQTT 3.1.1";
    case 2:
        return "refused: client id rejected (another client may use it)";
    case 3:
        return "refused: server unavailable";
    case 4:
        return "refused: bad user name or password";
    case 5:
        return "refused: not authorised";
    default:
        return NULL;
    }
}

/* Log a failure: each new reason at once, a repeat once a minute with the
 * count held back. Called with mu held. */
static void log_failure(struct drv_mq_client *c, const char *what, const char *why, int64_t delay)
{
    uint64_t held = 0;
    char kind[sizeof(c->fail_kind)];
    snprintf(kind, sizeof(kind), "%s: %s", what, why);
    snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", kind);
    int fresh = strcmp(kind, c->fail_kind) != 0;
    if (fresh) {
        snprintf(c->fail_kind, sizeof(c->fail_kind), "%s", kind);
        c->fail_limit = (struct hub_log_limit){0};
    }
    if (hub_log_limit_pass(&c->fail_limit, hub_mono_ns(), &held))
        hub_warn(c->who, "%s%s; next attempt in %.1f s%s", kind, fresh ? "" : " (again)",
                 (double)delay / HUB_NS_PER_S, held ? " (repeated failures held back)" : "");
}

static void schedule_retry(struct drv_mq_client *c, const char *what, const char *why)
{
    int64_t delay = hub_backoff_fail(&c->bo, 0);
    c->state = ST_DOWN;
    c->st.connected = false;
    c->next_try_ns = hub_mono_ns() + delay;
    c->fails_in_row++;
    log_failure(c, what, why, delay);
    pthread_cond_broadcast(&c->cv);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
    struct drv_mq_client *c = ctx;
    hub_warn(c->who, "subscribe refused by the broker (code %d%s%s)", r ? r->code : 0,
             r && r->message ? ": " : "", r && r->message ? r->message : "");
}

static void subscribe_all(struct drv_mq_client *c)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onFailure = on_sub_fail;
        ro.context = c;
        int rc = MQTTAsync_subscribe(c->h, c->subs[i].filter, c->subs[i].qos, &ro);
        if (rc != MQTTASYNC_SUCCESS)
            hub_warn(c->who, "subscribe %s: %s", c->subs[i].filter, MQTTAsync_strerror(rc));
    }
}

static void on_connect(void *ctx, MQTTAsync_successData *d)
{
    struct drv_mq_client *c = ctx;
    bool present = d ? d->alt.connect.sessionPresent != 0 : false;
    pthread_mutex_lock(&c->mu);
    unsigned fails = c->fails_in_row;
    c->state = ST_UP;
    c->st.connected = true;
    c->st.connects++;
    c->gen++;
    c->pending = 0;
    c->fails_in_row = 0;
    c->fail_kind[0] = 0;
    c->st.last_error[0] = 0;
    hub_backoff_ok(&c->bo);
    pthread_cond_broadcast(&c->cv);
    bool resubscribe = c->cfg.clean_session || !present;
    pthread_mutex_unlock(&c->mu);
    if (fails)
        hub_info(c->who, "connected to %s after %u failed attempt%s%s", c->cfg.url, fails,
                 fails == 1 ? "" : "s", present ? " (session resumed)" : "");
    else
        hub_info(c->who, "connected to %s%s", c->cfg.url, present ? " (session resumed)" : "");
    /* A resumed session keeps its subscriptions: subscribing again would
     * make the broker send its retained messages once more. */
    if (resubscribe)
        subscribe_all(c);
    if (c->cb.connected)
        c->cb.connected(c->cb.arg, present);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
    struct drv_mq_client *c = ctx;
    char why[160];
    const char *cr = r ? connack_reason(r->code) : NULL;
    if (cr)
        snprintf(why, sizeof(why), "%s", cr);
    else if (r && r->message)
        snprintf(why, sizeof(why), "%s", r->message);
    else if (r)
        snprintf(why, sizeof(why), "%s", MQTTAsync_strerror(r->code));
    else
        snprintf(why, sizeof(why), "failed");
    if (!strcmp(why, "Unknown error") || !strcmp(why, "Failure"))
        snprintf(why, sizeof(why), "cannot reach the broker (TCP%s connect failed)",
                 c->tls ? "/TLS" : "");
    pthread_mutex_lock(&c->mu);
    c->st.connect_fails++;
    schedule_retry(c, c->connect_what, why);
    pthread_mutex_unlock(&c->mu);
}

static void on_lost(void *ctx, char *cause)
{
    struct drv_mq_client *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_UP) {
        c->st.lost++;
        hub_backoff_ok(&c->bo);
        schedule_retry(c, "connection lost", cause && cause[0] ? cause : "broker closed it");
    }
    pthread_mutex_unlock(&c->mu);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct drv_mq_client *c = ctx;
    (void)topic_len; /* a topic with a NUL inside is cut there */
    pthread_mutex_lock(&c->mu);
    c->st.last_message_ns = hub_mono_ns();
    pthread_mutex_unlock(&c->mu);
    if (c->cb.message)
        c->cb.message(c->cb.arg, topic, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
                      m->qos, m->retained != 0);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1; /* handled: Paho acknowledges it now */
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
    struct drv_mq_client *c = ctx;
    (void)d;
    pthread_mutex_lock(&c->mu);
    if (c->pending > 0)
        c->pending--;
    c->st.published++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
    struct drv_mq_client *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (c->pending > 0)
        c->pending--;
    c->pub_failed++;
    c->st.publish_fails++;
    snprintf(c->pub_err, sizeof(c->pub_err), "publish failed: %s",
             r && r->message ? r->message : MQTTAsync_strerror(r ? r->code : -1));
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect(void *ctx, MQTTAsync_successData *d)
{
    struct drv_mq_client *c = ctx;
    (void)d;
    pthread_mutex_lock(&c->mu);
    c->disconnected = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    on_disconnect(ctx, NULL);
}

/* ---- the supervisor ------------------------------------------------------ */

static int start_connect(struct drv_mq_client *c)
{
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    o.keepAliveInterval = (int)((c->cfg.keepalive_ns + HUB_NS_PER_S - 1) / HUB_NS_PER_S);
    o.connectTimeout = (int)((c->cfg.connect_timeout_ns + HUB_NS_PER_S - 1) / HUB_NS_PER_S);
    o.cleansession = c->cfg.clean_session;
    o.maxInflight = 256;
    o.automaticReconnect = 0;
    o.MQTTVersion = MQTTVERSION_3_1_1;
    o.onSuccess = on_connect;
    o.onFailure = on_connect_fail;
    o.context = c;
    if (c->cfg.username[0]) {
        o.username = c->cfg.username;
        if (c->password[0])
            o.password = c->password;
    }
    if (c->has_will) {
        w.topicName = c->will_topic;
        w.message = c->will_payload;
        w.qos = c->will_qos;
        w.retained = c->will_retained;
        o.will = &w;
    }
    if (c->tls) {
        ssl.trustStore = c->cfg.ca_file[0] ? c->cfg.ca_file : NULL;
        ssl.keyStore = c->cfg.cert_file[0] ? c->cfg.cert_file : NULL;
        ssl.privateKey = c->cfg.key_file[0] ? c->cfg.key_file : NULL;
        ssl.enableServerCertAuth = !c->cfg.insecure_skip_verify;
        ssl.verify = !c->cfg.insecure_skip_verify; /* the host name too */
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        if (!c->cfg.ca_file[0])
            ssl.CApath = "/etc/ssl/certs";
        o.ssl = &ssl;
    }
    return MQTTAsync_connect(c->h, &o);
}

static void *supervise(void *arg)
{
    struct drv_mq_client *c = arg;
    hub_beat_attach(c->beat);
    hub_beat_doing(c->who, NULL);
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        hub_beat();
        int64_t now = hub_mono_ns();
        if (c->state == ST_DOWN && now >= c->next_try_ns) {
            c->state = ST_CONNECTING;
            c->attempt_ns = now;
            pthread_mutex_unlock(&c->mu);
            int rc = start_connect(c);
            pthread_mutex_lock(&c->mu);
            if (rc != MQTTASYNC_SUCCESS && c->state == ST_CONNECTING) {
                c->st.connect_fails++;
                schedule_retry(c, c->connect_what, MQTTAsync_strerror(rc));
            }
            continue;
        }
        if (c->state == ST_CONNECTING &&
            now - c->attempt_ns > c->cfg.connect_timeout_ns + 5 * HUB_NS_PER_S) {
            /* Paho always answers a connect; should it not, try again. */
            c->st.connect_fails++;
            schedule_retry(c, c->connect_what, "no answer");
            continue;
        }
        if (c->state == ST_UP && c->want_reconnect) {
            c->want_reconnect = false;
            c->state = ST_CONNECTING; /* until the disconnect is done */
            c->attempt_ns = now;
            pthread_mutex_unlock(&c->mu);
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = 1000;
            int rc = MQTTAsync_disconnect(c->h, &d);
            usleep(rc == MQTTASYNC_SUCCESS ? 200000 : 0);
            pthread_mutex_lock(&c->mu);
            c->state = ST_DOWN;
            c->st.connected = false;
            c->next_try_ns = hub_mono_ns();
            pthread_cond_broadcast(&c->cv);
            continue;
        }
        int64_t until = c->state == ST_DOWN ? c->next_try_ns : now + HUB_NS_PER_S;
        if (until > now + HUB_NS_PER_S)
            until = now + HUB_NS_PER_S;
        hub_beat_wait_until(&c->cv, &c->mu, until);
    }
    pthread_mutex_unlock(&c->mu);
    hub_beat_detach();
    return NULL;
}

/* ---- the API ------------------------------------------------------------- */

static void global_init_once(void)
{
    MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
    io.do_openssl_init = 1; /* harmless next to libcurl's: OpenSSL >= 1.1 */
    MQTTAsync_global_init(&io);
}

int drv_mq_global_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init_once); /* the input and the output both ask */
    return 0;
}

void drv_mq_version(char *buf, size_t len)
{
    const char *v = "?";
    MQTTAsync_nameValue *nv = MQTTAsync_getVersionInfo();
    for (; nv && nv->name; nv++)
        if (!strcmp(nv->name, "Version"))
            v = nv->value;
    snprintf(buf, len, "Paho MQTT C %s", v);
}

int drv_mq_client_new(const struct drv_mq_conn_cfg *cfg, const char *who,
                      const struct drv_mq_client_cb *cb, const struct drv_mq_will *will,
                      drv_mq_client_t **out, char *err, size_t errlen)
{
    const char *key;
    *out = NULL;
    if (drv_mq_conn_validate(cfg, &key, err, errlen) != 0)
        return -1;
    struct drv_mq_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->cfg = *cfg;
    snprintf(c->who, sizeof(c->who), "%s", who);
    c->cb = *cb;
    make_uri(cfg->url, c->uri, sizeof(c->uri), &c->tls, err, errlen);
    snprintf(c->connect_what, sizeof(c->connect_what), "cannot connect to %s", cfg->url);
    if (cfg->password_file[0] && hub_secret_read("password_file", cfg->password_file, c->password,
                                                 sizeof(c->password), err, errlen) != 0)
        goto fail;
    if (will) {
        c->will_topic = strdup(will->topic);
        c->will_payload = strdup(will->payload);
        c->will_qos = will->qos;
        c->will_retained = will->retained;
        c->has_will = true;
        if (!c->will_topic || !c->will_payload) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (hub_cond_init(&c->mu, &c->cv) != 0) {
        snprintf(err, errlen, "cannot create a condition variable");
        goto fail;
    }
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.sendWhileDisconnected = 0;
    int rc = MQTTAsync_createWithOptions(&c->h, c->uri, cfg->client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                         NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, errlen, "cannot create the MQTT client for %s: %s", cfg->url,
                 MQTTAsync_strerror(rc));
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        goto fail;
    }
    MQTTAsync_setCallbacks(c->h, c, on_lost, on_message, NULL);
    hub_backoff_init(&c->bo, HUB_NS_PER_S,
                     cfg->backoff_max_ns > 0 ? cfg->backoff_max_ns : 60 * HUB_NS_PER_S,
                     (uint64_t)hub_mono_ns() ^ (uint64_t)(uintptr_t)c);
    if (c->tls && cfg->insecure_skip_verify)
        hub_warn(c->who,
                 "insecure_skip_verify: the broker %s is NOT verified: anyone on the "
                 "path can read and change the traffic",
                 cfg->url);
    *out = c;
    return 0;
fail:
    hub_secret_wipe(c->password, sizeof(c->password));
    free(c->will_topic);
    free(c->will_payload);
    free(c);
    return -1;
}

int drv_mq_client_subscribe(drv_mq_client_t *c, const char *filter, int qos)
{
    pthread_mutex_lock(&c->mu);
    if (c->nsubs >= MAX_SUBS) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    struct sub *s = realloc(c->subs, (c->nsubs + 1) * sizeof(*s));
    char *f = strdup(filter);
    if (!s || !f) {
        if (s)
            c->subs = s;
        free(f);
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    c->subs = s;
    c->subs[c->nsubs].filter = f;
    c->subs[c->nsubs].qos = qos;
    c->nsubs++;
    bool up = c->state == ST_UP;
    pthread_mutex_unlock(&c->mu);
    if (up) {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onFailure = on_sub_fail;
        ro.context = c;
        MQTTAsync_subscribe(c->h, filter, qos, &ro);
    }
    return 0;
}

int drv_mq_client_resubscribe(drv_mq_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool up = c->state == ST_UP;
    pthread_mutex_unlock(&c->mu);
    if (!up)
        return -1;
    subscribe_all(c);
    return 0;
}

int drv_mq_client_start(drv_mq_client_t *c, hub_beats_t *beats)
{
    if (c->started)
        return 0;
    c->beat = hub_beats_add(beats, "MQTT connection");
    if (pthread_create(&c->thread, NULL, supervise, c) != 0)
        return -1;
    c->started = true;
    return 0;
}

int drv_mq_client_publish(drv_mq_client_t *c, const char *topic, const void *payload, size_t len,
                          int qos, bool retained, int64_t timeout_ns, char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "message too large");
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    if (c->state != ST_UP || c->stopping) {
        snprintf(err, errlen, "not connected to %s%s%s", c->cfg.url,
                 c->st.last_error[0] ? ": " : "", c->st.last_error);
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    c->pending++;
    pthread_mutex_unlock(&c->mu);

    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    m.retained = retained;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_pub_ok;
    ro.onFailure = on_pub_fail;
    ro.context = c;
    int rc = MQTTAsync_sendMessage(c->h, topic, &m, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        pthread_mutex_lock(&c->mu);
        if (c->pending > 0)
            c->pending--;
        c->st.publish_fails++;
        pthread_mutex_unlock(&c->mu);
        snprintf(err, errlen, "publish to %s: %s", topic, MQTTAsync_strerror(rc));
        return -1;
    }
    if (timeout_ns > 0)
        return drv_mq_client_drain(c, timeout_ns, err, errlen);
    return 0;
}

int drv_mq_client_drain(drv_mq_client_t *c, int64_t timeout_ns, char *err, size_t errlen)
{
    int64_t deadline = hub_mono_ns() + timeout_ns;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    uint64_t gen = c->gen;
    while (c->pending > 0 && c->state == ST_UP && c->gen == gen && !c->stopping &&
           hub_mono_ns() < deadline)
        hub_cond_wait_until(&c->cv, &c->mu, deadline);
    if (c->pub_failed) {
        snprintf(err, errlen, "%s (%" PRIu64 " message%s)", c->pub_err, c->pub_failed,
                 c->pub_failed == 1 ? "" : "s");
        rc = -1;
    } else if (c->pending > 0 || c->gen != gen) {
        if (c->state != ST_UP || c->gen != gen)
            snprintf(err, errlen, "connection to %s lost before the broker acknowledged",
                     c->cfg.url);
        else if (c->stopping)
            snprintf(err, errlen, "stopping");
        else
            snprintf(err, errlen, "%" PRId64 " message%s not acknowledged within %.1f s",
                     c->pending, c->pending == 1 ? "" : "s", (double)timeout_ns / HUB_NS_PER_S);
        rc = -1;
    }
    c->pub_failed = 0;
    c->pending = 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int drv_mq_client_wait_connected(drv_mq_client_t *c, int64_t timeout_ns)
{
    int64_t deadline = hub_mono_ns() + timeout_ns;
    pthread_mutex_lock(&c->mu);
    while (c->state != ST_UP && !c->stopping && hub_mono_ns() < deadline)
        hub_cond_wait_until(&c->cv, &c->mu, deadline);
    int up = c->state == ST_UP;
    pthread_mutex_unlock(&c->mu);
    return up;
}

void drv_mq_client_reconnect(drv_mq_client_t *c, const char *why)
{
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_UP) {
        hub_warn(c->who, "%s: reconnecting", why);
        c->want_reconnect = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

void drv_mq_client_stats(drv_mq_client_t *c, struct drv_mq_client_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    pthread_mutex_unlock(&c->mu);
}

void drv_mq_client_stop(drv_mq_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void drv_mq_client_free(drv_mq_client_t *c, int64_t timeout_ns)
{
    if (!c)
        return;
    drv_mq_client_stop(c);
    if (c->started)
        pthread_join(c->thread, NULL);
    if (MQTTAsync_isConnected(c->h)) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = (int)(timeout_ns / HUB_NS_PER_MS);
        d.onSuccess = on_disconnect;
        d.onFailure = on_disconnect_fail;
        d.context = c;
        if (MQTTAsync_disconnect(c->h, &d) == MQTTASYNC_SUCCESS) {
            int64_t deadline = hub_mono_ns() + timeout_ns + HUB_NS_PER_S;
            pthread_mutex_lock(&c->mu);
            while (!c->disconnected && hub_mono_ns() < deadline)
                hub_cond_wait_until(&c->cv, &c->mu, deadline);
            pthread_mutex_unlock(&c->mu);
        }
    }
    MQTTAsync_destroy(&c->h);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    for (size_t i = 0; i < c->nsubs; i++)
        free(c->subs[i].filter);
    free(c->subs);
    hub_secret_wipe(c->password, sizeof(c->password));
    free(c->will_topic);
    free(c->will_payload);
    free(c);
}
