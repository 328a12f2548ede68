/* drivers/influx/cfg.c — the "influxdb" output's configuration: its keys,
 * the rules check and init share (URL, v1 or v2 keys, secret files), the
 * write URL, and reading secrets without ever showing them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "drivers/influx/influx_priv.h"
#include "hub/secret.h"

#define CFG_OFF(m) offsetof(struct drv_influx_cfg, m)
#define CFG_SZ(m) sizeof(((struct drv_influx_cfg *)0)->m)

const struct hub_cfg_key drv_influx_keys[] = {
    HUB_CFG_KEY("url", HUB_CFG_STRING, NULL, true, CFG_OFF(url), CFG_SZ(url), 0, 0, NULL,
                "server base URL, http:// or https://, e.g. http://127.0.0.1:8086"),
    HUB_CFG_KEY("database", HUB_CFG_STRING, NULL, false, CFG_OFF(database), CFG_SZ(database), 0, 0,
                NULL, "v1 API: database to write to"),
    HUB_CFG_KEY("retention_policy", HUB_CFG_STRING, NULL, false, CFG_OFF(retention_policy),
                CFG_SZ(retention_policy), 0, 0, NULL,
                "v1 API: retention policy (default: the database's)"),
    HUB_CFG_KEY("username", HUB_CFG_STRING, NULL, false, CFG_OFF(username), CFG_SZ(username), 0, 0,
                NULL, "v1 API: user for basic authentication"),
    HUB_CFG_KEY("password_file", HUB_CFG_STRING, NULL, false, CFG_OFF(password_file),
                CFG_SZ(password_file), 0, 0, NULL, "v1 API: file holding the user's password"),
    HUB_CFG_KEY("org", HUB_CFG_STRING, NULL, false, CFG_OFF(org), CFG_SZ(org), 0, 0, NULL,
                "v2 API: organization"),
    HUB_CFG_KEY("bucket", HUB_CFG_STRING, NULL, false, CFG_OFF(bucket), CFG_SZ(bucket), 0, 0, NULL,
                "v2 API: bucket"),
    HUB_CFG_KEY("token_file", HUB_CFG_STRING, NULL, false, CFG_OFF(token_file), CFG_SZ(token_file),
                0, 0, NULL, "v2 API: file holding the API token"),
    HUB_CFG_KEY("ca_file", HUB_CFG_STRING, NULL, false, CFG_OFF(ca_file), CFG_SZ(ca_file), 0, 0,
                NULL, "https: PEM file of the CAs that sign the server (default: the system's)"),
    HUB_CFG_KEY("cert_file", HUB_CFG_STRING, NULL, false, CFG_OFF(cert_file), CFG_SZ(cert_file), 0,
                0, NULL, "https: client certificate (PEM), for servers that ask for one"),
    HUB_CFG_KEY("key_file", HUB_CFG_STRING, NULL, false, CFG_OFF(key_file), CFG_SZ(key_file), 0, 0,
                NULL, "https: the client certificate's private key (PEM, mode 0600)"),
    HUB_CFG_KEY("insecure_skip_verify", HUB_CFG_BOOL, "false", false, CFG_OFF(insecure_skip_verify),
                0, 0, 0, NULL,
                "https: do not verify the server's certificate (warned at every start)"),
    HUB_CFG_KEY("gzip", HUB_CFG_BOOL, "true", false, CFG_OFF(gzip), 0, 0, 0, NULL,
                "compress request bodies (Content-Encoding: gzip)"),
    HUB_CFG_KEY("timeout", HUB_CFG_DURATION, "10s", false, CFG_OFF(timeout_ns), 0, 1000000, 0, NULL,
                "longest one HTTP request may take, connection included"),
    HUB_CFG_KEY("connect_timeout", HUB_CFG_DURATION, "5s", false, CFG_OFF(connect_timeout_ns), 0,
                1000000, 0, NULL, "longest the TCP and TLS handshakes may take (at most timeout)"),
    HUB_CFG_KEY("uint_support", HUB_CFG_BOOL, "false", false, CFG_OFF(uint_support), 0, 0, 0, NULL,
                "write unsigned fields with 'u' (InfluxDB >= 1.8 / 2.x)"),
    HUB_CFG_END,
};

/* url as a message may show it: a "user:password@" before the host is
 * written "***@" (a password given inline is refused, not logged). */
static const char *redact_url(const char *url, char *buf, size_t len)
{
    const char *p = strstr(url, "://");
    const char *auth = p ? p + 3 : url;
    const char *at = NULL;
    for (const char *q = auth; *q && !strchr("/?#", *q); q++)
        if (*q == '@')
            at = q;
    if (!at)
        return url;
    snprintf(buf, len, "%.*s***%s", (int)(auth - url), url, at);
    return buf;
}

/* Check url: http or https, a host, no credentials, query or fragment.
 * Returns 0 or -1 with a message. */
static int check_url(const char *url_given, char *err, size_t errlen)
{
    char shown[600];
    const char *url = redact_url(url_given, shown, sizeof(shown));
    CURLU *u = curl_url();
    char *part = NULL;
    int rc = -1;
    CURLUcode uc;

    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uc = curl_url_set(u, CURLUPART_URL, url_given, 0);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "url \"%s\": %s", url, curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) != CURLUE_OK ||
        (strcmp(part, "http") != 0 && strcmp(part, "https") != 0)) {
        snprintf(err, errlen, "url \"%s\": must start with http:// or https://", url);
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK || !*part) {
        snprintf(err, errlen, "url \"%s\": no host", url);
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
        snprintf(err, errlen,
                 "url: no user or password in the URL; use username and password_file");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
        snprintf(err, errlen, "url \"%s\": no ?query or #fragment; give the base URL", url);
        goto out;
    }
    rc = 0;
out:
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

/* Append "&name=escaped(value)" (or "?..." when first) to b. */
static int add_query(struct hub_buf *b, CURL *h, char sep, const char *name, const char *value)
{
    char *esc = curl_easy_escape(h, value, 0);
    int rc;
    if (!esc)
        return HUB_ENOMEM;
    rc = hub_buf_printf(b, "%c%s=%s", sep, name, esc);
    curl_free(esc);
    return rc;
}

/* The full write URL, malloc'd, or NULL. */
char *drv_influx_write_url(const struct drv_influx_cfg *cfg, CURL *h, bool v2)
{
    struct hub_buf b;
    size_t base = strlen(cfg->url);
    int rc;

    hub_buf_init(&b, sizeof(cfg->url) + 4 * 3 * 128 + 64);
    while (base > 0 && cfg->url[base - 1] == '/')
        base--;
    rc = hub_buf_add(&b, cfg->url, base);
    if (v2) {
        if (rc == HUB_OK)
            rc = hub_buf_adds(&b, "/api/v2/write");
        if (rc == HUB_OK)
            rc = add_query(&b, h, '?', "org", cfg->org);
        if (rc == HUB_OK)
            rc = add_query(&b, h, '&', "bucket", cfg->bucket);
    } else {
        if (rc == HUB_OK)
            rc = hub_buf_adds(&b, "/write");
        if (rc == HUB_OK)
            rc = add_query(&b, h, '?', "db", cfg->database);
        if (rc == HUB_OK && cfg->retention_policy[0])
            rc = add_query(&b, h, '&', "rp", cfg->retention_policy);
    }
    if (rc == HUB_OK)
        rc = hub_buf_adds(&b, "&precision=ns");
    if (rc != HUB_OK) {
        hub_buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* ownership moves to the caller */
}

bool drv_influx_https(const struct drv_influx_cfg *cfg)
{
    return strncasecmp(cfg->url, "https://", 8) == 0;
}

/* The TLS keys: only with an https:// URL; a certificate with its key. */
static int check_tls(const struct drv_influx_cfg *cfg, const char **key, char *err, size_t errlen)
{
    const char *only_https = cfg->ca_file[0]             ? "ca_file"
                             : cfg->cert_file[0]         ? "cert_file"
                             : cfg->key_file[0]          ? "key_file"
                             : cfg->insecure_skip_verify ? "insecure_skip_verify"
                                                         : NULL;
    if (only_https && !drv_influx_https(cfg)) {
        *key = only_https;
        snprintf(err, errlen, "only for https:// URLs (TLS)");
        return -1;
    }
    if (!cfg->cert_file[0] != !cfg->key_file[0]) {
        *key = cfg->cert_file[0] ? "key_file" : "cert_file";
        snprintf(err, errlen, "cert_file and key_file go together");
        return -1;
    }
    if (cfg->insecure_skip_verify && cfg->ca_file[0]) {
        *key = "insecure_skip_verify";
        snprintf(err, errlen, "ca_file is given, so the server can be verified: drop one of them");
        return -1;
    }
    *key = NULL;
    return 0;
}

static int check_keys(const struct drv_influx_cfg *cfg, bool *v2, const char **key, char *err,
                      size_t errlen)
{
    bool any_v1 =
        cfg->database[0] || cfg->retention_policy[0] || cfg->username[0] || cfg->password_file[0];
    bool any_v2 = cfg->org[0] || cfg->bucket[0] || cfg->token_file[0];

    *key = "url";
    if (!cfg->url[0]) {
        snprintf(err, errlen, "url is required");
        return -1;
    }
    if (check_url(cfg->url, err, errlen) != 0)
        return -1;
    *key = NULL;
    if (any_v1 && any_v2) {
        snprintf(err, errlen,
                 "database/retention_policy/username/password_file (v1 API) and "
                 "org/bucket/token_file (v2 API) cannot be mixed: choose one");
        return -1;
    }
    if (any_v2) {
        if (!cfg->org[0] || !cfg->bucket[0] || !cfg->token_file[0]) {
            snprintf(err, errlen, "v2 API needs org, bucket and token_file (missing %s)",
                     !cfg->org[0]      ? "org"
                     : !cfg->bucket[0] ? "bucket"
                                       : "token_file");
            return -1;
        }
        *v2 = true;
        return check_tls(cfg, key, err, errlen);
    }
    if (!cfg->database[0]) {
        snprintf(err, errlen, "database is required (v1 API), or org + bucket + token_file (v2)");
        return -1;
    }
    if (!cfg->username[0] != !cfg->password_file[0]) {
        *key = cfg->username[0] ? "username" : "password_file";
        snprintf(err, errlen, "username and password_file go together");
        return -1;
    }
    *v2 = false;
    return check_tls(cfg, key, err, errlen);
}

int drv_influx_check_all(const struct drv_influx_cfg *cfg, bool *v2, const char **key, char *err,
                         size_t errlen)
{
    if (check_keys(cfg, v2, key, err, errlen) != 0)
        return -1;
    const struct {
        const char *key, *path;
        bool secret; /* for its owner only (else public: a CA, a certificate) */
    } files[] = {
        {*v2 ? "token_file" : "password_file", *v2 ? cfg->token_file : cfg->password_file, true},
        {"ca_file", cfg->ca_file, false},
        {"cert_file", cfg->cert_file, false},
        {"key_file", cfg->key_file, true}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        *key = files[i].key;
        if (files[i].path[0] && (files[i].secret ? hub_secret_check : hub_file_check)(
                                    *key, files[i].path, err, errlen) != 0)
            return -1;
    }
    *key = NULL;
    return 0;
}

int drv_influx_check(const struct drv_influx_cfg *cfg, const char **key, char *err, size_t errlen)
{
    bool v2 = false;
    return drv_influx_check_all(cfg, &v2, key, err, errlen);
}
