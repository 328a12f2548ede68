/* drivers/influx/influx.c — the "influxdb" output: config keys, and one
 * libcurl easy handle per output that POSTs line protocol batches.
 *
 * The server's answer decides (hub/output.h):
 *   2xx                          HUB_OUT_OK
 *   408, 429, 5xx, 1xx/3xx,      HUB_OUT_RETRY (Retry-After honoured)
 *   transport, cancelled
 *   413                          HUB_OUT_TOO_LARGE (the hub splits the batch)
 *   401, 403, 404,               HUB_OUT_ALARM (credentials, rights, no database,
 *   TLS certificate refused      a server we do not trust)
 *   other 4xx (400, 422, ...)    HUB_OUT_REJECT, with the server's "error"
 *                                (the hub bisects to the refused lines)
 * Each answer gets a short kind ("HTTP 500", "timeout", "TLS") for the log.
 * Secrets are read once from their files at init and never logged. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "drivers/influx/influx_priv.h"
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/log.h"
#include "hub/secret.h"

#ifndef CITYHUB_VERSION
#define CITYHUB_VERSION "0.0.0"
#endif

#define INFLUX_RESP_MAX 4096 /* kept of the server's answer body */
#define INFLUX_WHY_BODY 200  /* bytes of the server's reason put in why */

#define INFLUX_SLOTS 2     /* requests: one on its way, the next being encoded */
#define INFLUX_POLL_MS 100 /* longest wait for the socket: a cancel is seen by then */

/* One request: its body, and what it holds. */
struct influx_slot {
    struct hub_buf body;        /* line protocol of one batch */
    struct hub_buf gz;          /* its gzip form */
    const struct hub_buf *send; /* body or gz; NULL: nothing to send */
    size_t lines;
};

struct influx_ctx {
    char who[sizeof("influxdb:") + DRV_NAME_MAX];
    CURL *h;
    CURLM *m; /* h runs in it: the request goes on while the hub encodes the next */
    struct curl_slist *headers;
    char *write_url;
    bool gzip;
    bool uint_support;
    struct influx_slot slot[INFLUX_SLOTS];
    /* the request started: its slot, whether it is over and how */
    unsigned cur;
    bool added; /* h is in m */
    bool over;
    CURLcode result;
    struct hub_buf resp; /* the server's answer, first INFLUX_RESP_MAX bytes */
    char errbuf[CURL_ERROR_SIZE];
    struct hub_log_limit skip_limit;
    atomic_int cancel;  /* set by influx_cancel: abort the transfer in progress */
    atomic_int failing; /* the last flush was not delivered */
    bool has_cert;      /* cert_file given */
    bool cert_asked;    /* this request's handshake: the server asked for a client certificate */
};

/* libcurl's progress callback: a non-zero return aborts the transfer. */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&((struct influx_ctx *)p)->cancel);
}

static void influx_cancel(void *ctxp)
{
    atomic_store(&((struct influx_ctx *)ctxp)->cancel, 1);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int drv_influx_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_rc;
}

static void influx_global_cleanup(void)
{
    curl_global_cleanup();
}

static void influx_version(char *buf, size_t len)
{
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    snprintf(buf, len, "libcurl %s%s%s", cv ? cv->version : "?", cv && cv->ssl_version ? ", " : "",
             cv && cv->ssl_version ? cv->ssl_version : "");
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct hub_buf *b = ud;
    size_t n = size * nmemb;
    size_t room = b->cap - b->len;
    hub_buf_add(b, p, n < room ? n : room); /* the rest is dropped, not an error */
    return n;
}

static void influx_exit(void *ctxp)
{
    struct influx_ctx *c = ctxp;
    if (!c)
        return;
    if (c->h && c->m && c->added)
        curl_multi_remove_handle(c->m, c->h);
    if (c->h)
        curl_easy_cleanup(c->h);
    if (c->m)
        curl_multi_cleanup(c->m);
    for (struct curl_slist *s = c->headers; s; s = s->next)
        hub_secret_wipe(s->data, strlen(s->data)); /* the token header */
    curl_slist_free_all(c->headers);
    free(c->write_url);
    for (unsigned i = 0; i < INFLUX_SLOTS; i++) {
        hub_buf_free(&c->slot[i].body);
        hub_buf_free(&c->slot[i].gz);
    }
    hub_buf_free(&c->resp);
    free(c);
}

/* A duration in ms for curl: def when unset, at least 1, at most max (long
 * is 32 bits on the 32-bit boards; 24 days is no limit anyway). */
static long clamp_ms(int64_t ns, long def, long max)
{
    if (ns <= 0)
        return def < max ? def : max;
    if (ns / 1000000 >= max)
        return max;
    return ns < 1000000 ? 1 : (long)(ns / 1000000);
}

/* OpenSSL asks us for a client certificate the server requested and none
 * is set: note it, so the failure that follows can say why (the server's
 * alert itself may be lost when it closes the connection). 0: send none. */
static int on_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509;
    (void)pkey;
    struct influx_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (c)
        c->cert_asked = true;
    return 0;
}

/* libcurl (built with OpenSSL) hands us each connection's SSL_CTX. */
static CURLcode on_ssl_ctx(CURL *h, void *sslctx, void *ud)
{
    (void)h;
    SSL_CTX_set_app_data((SSL_CTX *)sslctx, ud);
    SSL_CTX_set_client_cert_cb((SSL_CTX *)sslctx, on_cert_request);
    return CURLE_OK;
}

/* https: verify the server (its certificate and its name) against ca_file
 * or the system's CAs, unless insecure_skip_verify says not to (warned at
 * every start); present cert_file/key_file when given. */
static void set_tls(struct influx_ctx *c, const struct drv_influx_cfg *cfg)
{
    long verify = cfg->insecure_skip_verify ? 0L : 1L;
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, verify);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (cfg->ca_file[0])
        curl_easy_setopt(c->h, CURLOPT_CAINFO, cfg->ca_file);
    if (!cfg->cert_file[0]) {
        /* only to explain a refusal; a libcurl without OpenSSL says no */
        curl_easy_setopt(c->h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(c->h, CURLOPT_SSL_CTX_DATA, c);
    } else {
        c->has_cert = true;
        curl_easy_setopt(c->h, CURLOPT_SSLCERT, cfg->cert_file);
        curl_easy_setopt(c->h, CURLOPT_SSLKEY, cfg->key_file);
    }
    if (cfg->insecure_skip_verify)
        hub_warn(c->who,
                 "insecure_skip_verify: the server %s is NOT verified: anyone on the path can "
                 "read and change the data, and the credentials",
                 cfg->url);
}

static int influx_init(const void *cfgp, const struct drv_env *env, void **out, char *err,
                       size_t errlen)
{
    const struct drv_influx_cfg *cfg = cfgp;
    struct influx_ctx *c = NULL;
    char secret[INFLUX_SECRET_MAX];
    char auth[INFLUX_SECRET_MAX + 32];
    struct curl_slist *s;
    bool v2 = false;
    long timeout_ms;
    int rc = -1;

    (void)env;
    *out = NULL;
    secret[0] = 0;
    auth[0] = 0;
    const char *bad_key = NULL;
    if (drv_influx_check_all(cfg, &v2, &bad_key, err, errlen) != 0)
        return -1;
    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(c->who, sizeof(c->who), "influxdb:%s", cfg->common.name);
    c->gzip = cfg->gzip;
    c->uint_support = cfg->uint_support;
    size_t cap =
        cfg->common.max_batch_bytes ? (size_t)cfg->common.max_batch_bytes : DRV_INFLUX_BODY_DEFAULT;
    if (cap > DRV_INFLUX_BODY_MAX)
        cap = DRV_INFLUX_BODY_MAX;
    for (unsigned i = 0; i < INFLUX_SLOTS; i++) {
        hub_buf_init(&c->slot[i].body, cap);
        /* deflate's worst case is below this */
        hub_buf_init(&c->slot[i].gz, cap + cap / 64 + 1024);
    }
    hub_buf_init(&c->resp, INFLUX_RESP_MAX);

    c->h = curl_easy_init();
    c->m = curl_multi_init();
    if (!c->h || !c->m) {
        snprintf(err, errlen, "libcurl: cannot make a handle (was curl_global_init called?)");
        goto out;
    }
    c->write_url = drv_influx_write_url(cfg, c->h, v2);
    if (!c->write_url) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    s = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8");
    if (s)
        c->headers = s;
    if (s)
        s = curl_slist_append(c->headers, "Expect:"); /* no 100-continue round trip */
    if (s && c->gzip)
        s = curl_slist_append(c->headers, "Content-Encoding: gzip");
    if (s && v2) {
        if (hub_secret_read("token_file", cfg->token_file, secret, sizeof(secret), err, errlen) !=
            0)
            goto out;
        snprintf(auth, sizeof(auth), "Authorization: Token %s", secret);
        s = curl_slist_append(c->headers, auth);
    }
    if (!s) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    timeout_ms = clamp_ms(cfg->timeout_ns, 10000, LONG_MAX);
    curl_easy_setopt(c->h, CURLOPT_URL, c->write_url);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c->h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
                     clamp_ms(cfg->connect_timeout_ns, 5000, timeout_ms));
    curl_easy_setopt(c->h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "cityhub/" CITYHUB_VERSION);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (drv_influx_https(cfg))
        set_tls(c, cfg);
    if (!v2 && cfg->username[0]) {
        if (hub_secret_read("password_file", cfg->password_file, secret, sizeof(secret), err,
                            errlen) != 0)
            goto out;
        curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c->h, CURLOPT_USERNAME, cfg->username);
        curl_easy_setopt(c->h, CURLOPT_PASSWORD, secret); /* curl keeps a copy */
    }
    hub_info(c->who, "writing to %s (%s API%s%s%s)", c->write_url, v2 ? "v2" : "v1",
             c->gzip ? ", gzip" : "", v2 || cfg->username[0] ? ", authenticated" : "",
             !drv_influx_https(cfg)      ? ""
             : cfg->insecure_skip_verify ? ", TLS NOT verified"
             : cfg->cert_file[0]         ? ", TLS verified, client certificate"
                                         : ", TLS verified");
    *out = c;
    c = NULL;
    rc = 0;
out:
    hub_secret_wipe(secret, sizeof(secret));
    hub_secret_wipe(auth, sizeof(auth));
    influx_exit(c);
    return rc;
}

/* Copy text into dst as one printable line: control bytes become spaces,
 * trailing spaces go, at most max bytes. */
static void one_line(const char *text, size_t len, char *dst, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < max; i++)
        dst[n++] = ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? ' ' : text[i];
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = 0;
}

void drv_influx_server_reason(const char *body, size_t len, char *dst, size_t max)
{
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
    json_t *e = NULL;
    if (root && json_is_object(root)) {
        e = json_object_get(root, "error"); /* InfluxDB 1.x */
        if (!json_is_string(e))
            e = json_object_get(root, "message"); /* 2.x: {"code":..., "message":...} */
    }
    if (e && json_is_string(e))
        one_line(json_string_value(e), json_string_length(e), dst, max);
    else
        one_line(body, len, dst, max);
    json_decref(root);
}

static enum hub_out_result answer(struct influx_ctx *c, size_t n, size_t len,
                                  struct hub_out_answer *ans);

/* The kind of a transport failure, short and stable, for the log. */
static const char *transport_kind(CURLcode cr)
{
    switch (cr) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connection refused";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "DNS failure";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return "connection reset";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
        return "TLS";
    default:
        return "transport";
    }
}

/* A TLS failure no retry will cure until a person acts: the server's
 * certificate is not trusted (wrong CA, wrong name, expired, not the pinned
 * key) or ours cannot be used. NULL for any other failure. */
static const char *tls_verdict(const struct influx_ctx *c, CURLcode cr, const char *detail)
{
    bool io = cr == CURLE_RECV_ERROR || cr == CURLE_SEND_ERROR || cr == CURLE_SSL_CONNECT_ERROR ||
              cr == CURLE_GOT_NOTHING;
    /* The server asked for a certificate we do not have, or its alert (in
     * OpenSSL's words) refuses ours. */
    if (io && !c->has_cert && (c->cert_asked || strstr(detail, "alert certificate required")))
        return "the server asks for a client certificate (set cert_file and key_file)";
    if (io && c->has_cert &&
        (strstr(detail, "alert bad certificate") || strstr(detail, "alert unknown ca") ||
         strstr(detail, "alert certificate unknown") ||
         strstr(detail, "alert certificate required")))
        return "the server refuses our client certificate (check cert_file: signed by a CA "
               "the server trusts?)";
    switch (cr) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return "the server's certificate is not trusted (check ca_file, the server's name in "
               "url, the certificate's dates)";
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
        return "ca_file cannot be used (not PEM certificates?)";
    case CURLE_SSL_CERTPROBLEM:
        return "the client certificate cannot be used (check cert_file and key_file)";
    default:
        return NULL;
    }
}

/* gzip the slot's body if asked; the slot then holds its request. */
static enum hub_out_result seal(struct influx_ctx *c, struct influx_slot *sl, size_t lines,
                                struct hub_out_answer *ans)
{
    sl->lines = lines;
    sl->send = sl->body.len ? &sl->body : NULL;
    if (!c->gzip || !sl->send)
        return HUB_OUT_OK;
    hub_buf_reset(&sl->gz);
    int rc = drv_influx_gzip(sl->body.data, sl->body.len, &sl->gz);
    if (rc != HUB_OK) {
        sl->send = NULL;
        snprintf(ans->why, sizeof(ans->why), "gzip of %zu bytes: %s", sl->body.len,
                 hub_strerror(rc));
        return HUB_OUT_RETRY;
    }
    sl->send = &sl->gz;
    return HUB_OUT_OK;
}

/* Encode a batch into a slot: line protocol, then gzip. A batch that
 * passes max_batch_bytes is cut (ans->done). */
static enum hub_out_result influx_prepare(void *ctxp, unsigned slot, hub_reading_t *const *readings,
                                          size_t n, struct hub_out_answer *ans)
{
    struct influx_ctx *c = ctxp;
    struct influx_slot *sl = &c->slot[slot % INFLUX_SLOTS];
    size_t skipped = 0;

    ans->done = 0;
    ans->retry_after_ns = 0;
    ans->kind[0] = 0;
    ans->why[0] = 0;
    sl->send = NULL;
    hub_buf_reset(&sl->body);
    for (size_t i = 0; i < n; i++) {
        int rc = drv_influx_encode(readings[i], c->uint_support, &sl->body);
        if (rc == HUB_EINVAL) {
            skipped++; /* no field, or a value line protocol cannot hold */
        } else if (rc == HUB_EFULL && i > 0) {
            /* max_batch_bytes reached: send what fits, the rest comes next */
            hub_debug(c->who, "request limit of %zu bytes reached at reading %zu of %zu",
                      sl->body.cap, i, n);
            ans->done = i;
            n = i;
            break;
        } else if (rc == HUB_EFULL) {
            snprintf(ans->kind, sizeof(ans->kind), "too large");
            snprintf(ans->why, sizeof(ans->why),
                     "one reading is larger than max_batch_bytes (%zu bytes); raise it",
                     sl->body.cap);
            return HUB_OUT_TOO_LARGE;
        } else if (rc != HUB_OK) {
            snprintf(ans->why, sizeof(ans->why), "encoding reading %zu: %s", i, hub_strerror(rc));
            return HUB_OUT_RETRY;
        }
    }
    if (skipped) {
        uint64_t held = 0;
        if (hub_log_limit_pass(&c->skip_limit, hub_mono_ns(), &held))
            hub_warn(c->who, "%zu of %zu readings not sent: no field, or a non-finite value%s",
                     skipped, n, held ? " (more held back)" : "");
    }
    return seal(c, sl, n - skipped, ans);
}

/* Run the transfer until it is over, or (upload_only) until the request
 * is on the wire. */
static void drive(struct influx_ctx *c, bool upload_only)
{
    const struct hub_buf *send = c->slot[c->cur].send;
    while (!c->over) {
        int running = 0, left = 0;
        CURLMcode mc = curl_multi_perform(c->m, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(c->m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->h) {
                c->result = msg->data.result;
                c->over = true;
            }
        if (!c->over && mc != CURLM_OK) {
            c->result = CURLE_FAILED_INIT;
            snprintf(c->errbuf, sizeof(c->errbuf), "curl_multi_perform: %s",
                     curl_multi_strerror(mc));
            c->over = true;
        }
        if (!c->over && atomic_load(&c->cancel)) {
            c->result = CURLE_ABORTED_BY_CALLBACK;
            c->over = true;
        }
        if (c->over)
            break;
        if (upload_only) {
            curl_off_t up = 0;
            if (curl_easy_getinfo(c->h, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK &&
                up >= (curl_off_t)send->len)
                return;
        }
        long wait_ms = -1;
        curl_multi_timeout(c->m, &wait_ms);
        if (wait_ms == 0)
            continue; /* curl has more to do at once (a new request's first steps) */
        curl_multi_poll(c->m, NULL, 0, INFLUX_POLL_MS, NULL);
        hub_beat(); /* the delivery loop's thread: waiting on the server, not stuck */
    }
    if (c->added) {
        curl_multi_remove_handle(c->m, c->h);
        c->added = false;
    }
}

/* Send the slot's request: returns once it is on the wire (or over). */
static void influx_start(void *ctxp, unsigned slot)
{
    struct influx_ctx *c = ctxp;
    const struct hub_buf *send = c->slot[slot % INFLUX_SLOTS].send;
    c->cur = slot % INFLUX_SLOTS;
    c->over = false;
    c->result = CURLE_OK;
    hub_buf_reset(&c->resp);
    c->errbuf[0] = 0;
    c->cert_asked = false;
    if (!send || atomic_load(&c->cancel)) { /* nothing to write; or stopping */
        c->over = true;
        c->result = send ? CURLE_ABORTED_BY_CALLBACK : CURLE_OK;
        return;
    }
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, (const char *)send->data);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)send->len);
    CURLMcode mc = curl_multi_add_handle(c->m, c->h);
    if (mc != CURLM_OK) {
        c->result = CURLE_FAILED_INIT;
        snprintf(c->errbuf, sizeof(c->errbuf), "curl_multi_add_handle: %s",
                 curl_multi_strerror(mc));
        c->over = true;
        return;
    }
    c->added = true;
    drive(c, true);
}

/* The answer to the request started. */
static enum hub_out_result influx_finish(void *ctxp, unsigned slot, struct hub_out_answer *ans)
{
    struct influx_ctx *c = ctxp;
    (void)slot;
    ans->done = 0;
    ans->retry_after_ns = 0;
    ans->kind[0] = 0;
    ans->why[0] = 0;
    drive(c, false);
    const struct influx_slot *sl = &c->slot[c->cur];
    if (!sl->send && c->result == CURLE_OK)
        return HUB_OUT_OK; /* nothing that can be written */
    enum hub_out_result res = answer(c, sl->lines, sl->send ? sl->send->len : 0, ans);
    atomic_store(&c->failing, res != HUB_OUT_OK);
    return res;
}

static enum hub_out_result influx_flush(void *ctxp, hub_reading_t *const *readings, size_t n,
                                        struct hub_out_answer *ans)
{
    struct influx_ctx *c = ctxp;
    if (atomic_load(&c->cancel)) { /* stopping: send nothing more */
        ans->retry_after_ns = 0;
        ans->kind[0] = 0;
        snprintf(ans->why, sizeof(ans->why), "cancelled: the program is stopping");
        return HUB_OUT_RETRY;
    }
    enum hub_out_result res = influx_prepare(c, 0, readings, n, ans);
    if (res != HUB_OUT_OK)
        return res;
    size_t done = ans->done;
    influx_start(c, 0);
    res = influx_finish(c, 0, ans);
    if (res == HUB_OUT_OK)
        ans->done = done;
    return res;
}

/* Lines already in line protocol (a dead-letter file's), sent as they are. */
static enum hub_out_result influx_send_raw(void *ctxp, const void *data, size_t len,
                                           struct hub_out_answer *ans)
{
    struct influx_ctx *c = ctxp;
    struct influx_slot *sl = &c->slot[0];
    ans->done = 0;
    ans->retry_after_ns = 0;
    ans->kind[0] = 0;
    ans->why[0] = 0;
    hub_buf_reset(&sl->body);
    if (hub_buf_add(&sl->body, data, len) != HUB_OK ||
        (len && ((const char *)data)[len - 1] != '\n' && hub_buf_addc(&sl->body, '\n') != HUB_OK)) {
        snprintf(ans->kind, sizeof(ans->kind), "too large");
        snprintf(ans->why, sizeof(ans->why), "%zu bytes: larger than max_batch_bytes (%zu)", len,
                 sl->body.cap);
        return HUB_OUT_TOO_LARGE;
    }
    size_t lines = 0;
    for (size_t i = 0; i < sl->body.len; i++)
        lines += sl->body.data[i] == '\n';
    enum hub_out_result res = seal(c, sl, lines, ans);
    if (res != HUB_OUT_OK)
        return res;
    influx_start(c, 0);
    return influx_finish(c, 0, ans);
}

/* What the transfer's outcome (c->result) and the server's status say. */
static enum hub_out_result answer(struct influx_ctx *c, size_t n, size_t len,
                                  struct hub_out_answer *ans)
{
    CURLcode cr = c->result;
    long status = 0;
    char reason[INFLUX_WHY_BODY + 1];

    if (cr == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(ans->kind, sizeof(ans->kind), "cancelled");
        snprintf(ans->why, sizeof(ans->why), "cancelled: the program is stopping");
        return HUB_OUT_RETRY;
    }
    const char *tls = cr != CURLE_OK ? tls_verdict(c, cr, c->errbuf) : NULL;
    if (tls) {
        snprintf(ans->kind, sizeof(ans->kind), "TLS certificate");
        snprintf(ans->why, sizeof(ans->why), "TLS: %s: %.140s", tls,
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cr));
        return HUB_OUT_ALARM;
    }
    if (cr != CURLE_OK) {
        snprintf(ans->kind, sizeof(ans->kind), "%s", transport_kind(cr));
        snprintf(ans->why, sizeof(ans->why), "transport: %.60s: %.180s", curl_easy_strerror(cr),
                 c->errbuf[0] ? c->errbuf : "no detail");
        hub_debug(c->who, "POST failed: %s", ans->why);
        return HUB_OUT_RETRY;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    ans->status = status >= 100 && status <= 599 ? (int)status : 0;
    if (status >= 200 && status <= 299) {
        hub_debug(c->who, "HTTP %ld: %zu readings, %zu bytes", status, n, len);
        return HUB_OUT_OK;
    }
    drv_influx_server_reason(c->resp.data ? (const char *)c->resp.data : "", c->resp.len, reason,
                             INFLUX_WHY_BODY);
    snprintf(ans->why, sizeof(ans->why), "HTTP %ld%s%s", status, reason[0] ? ": " : "", reason);
    snprintf(ans->kind, sizeof(ans->kind), "HTTP %ld", status);
    hub_debug(c->who, "POST answered %s", ans->why);
    /* 408: the server gave up waiting for the request: a timeout, not a
     * verdict on the data. */
    if (status == 408 || status == 429 || status >= 500 || status < 200 ||
        (status >= 300 && status < 400)) {
#if LIBCURL_VERSION_NUM >= 0x074200
        curl_off_t ra = 0;
        if (curl_easy_getinfo(c->h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) {
            if (ra > 24 * 3600)
                ra = 24 * 3600; /* a day is long enough to wait for anyone */
            ans->retry_after_ns = (int64_t)ra * HUB_NS_PER_S;
        }
#endif
        return HUB_OUT_RETRY;
    }
    if (status == 413)
        return HUB_OUT_TOO_LARGE;
    if (status == 401 || status == 403 || status == 404)
        return HUB_OUT_ALARM;
    return HUB_OUT_REJECT;
}

static void influx_check(const void *cfg, struct drv_check *ck)
{
    const char *key = NULL;
    char err[512];
    if (drv_influx_check(cfg, &key, err, sizeof(err)) != 0)
        drv_check_error(ck, cfg, key, "%s", err);
}

static int influx_format(const hub_reading_t *r, struct hub_buf *out)
{
    return drv_influx_encode(r, true, out);
}

static void influx_stats(void *ctxp, struct drv_stats *st)
{
    struct influx_ctx *c = ctxp;
    st->sources += 1;
    st->failing += atomic_load(&c->failing) ? 1 : 0;
}

static const struct hub_out_async influx_async = {
    .prepare = influx_prepare,
    .start = influx_start,
    .finish = influx_finish,
};

const struct drv_ops drv_influx_ops = {
    .name = "influxdb",
    .kind = DRV_OUTPUT,
    .help = "InfluxDB line protocol over HTTP(S): InfluxDB 1.x/2.x/3.x, VictoriaMetrics, QuestDB",
    /* libcurl with OpenSSL (TLS handshakes, name resolution in a thread of
     * its own) and zlib's deflate state stay well within 256 KiB. */
    .stack_size = (size_t)256 << 10,
    .global_init = drv_influx_global_init,
    .global_cleanup = influx_global_cleanup,
    .version = influx_version,
    .config_map = drv_influx_keys,
    .config_size = sizeof(struct drv_influx_cfg),
    .check = influx_check,
    .init = influx_init,
    .flush = influx_flush,
    .async = &influx_async,
    .cancel = influx_cancel,
    .format = influx_format,
    .send_raw = influx_send_raw,
    .stats = influx_stats,
    .exit = influx_exit,
};
