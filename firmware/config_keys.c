/* firmware/config_keys.c — the keys of the hub's own sections: hub:,
 * hub.journal, hub.status and the keys every output has (DESIGN: configuration contract
 * v1). Drivers declare theirs in drivers/. */
#include <stddef.h>

#include "firmware/config_priv.h"
#include "firmware/privilege.h"
#include "hub/log.h"

/* ---- key tables of the hub ---------------------------------------------- */

static const char *const ch_log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const ch_on_full[] = {"drop_oldest", "drop_newest", NULL};

/* The choices above are indexes into these enums. */
_Static_assert(HUB_LOG_ERROR == 0 && HUB_LOG_WARN == 1 && HUB_LOG_INFO == 2 && HUB_LOG_DEBUG == 3,
               "ch_log_levels follows enum hub_log_level");
_Static_assert(HUB_JOURNAL_DROP_OLDEST == 0 && HUB_JOURNAL_DROP_NEWEST == 1,
               "ch_on_full follows enum hub_journal_on_full");

const struct hub_cfg_key ch_journal_keys[] = {
    {.name = "path",
     .type = HUB_CFG_STRING,
     .def = "/var/lib/cityhub/journal",
     .offset = offsetof(struct ch_journal_cfg, path),
     .size = sizeof(((struct ch_journal_cfg *)0)->path),
     .help = "directory of the journal's segment files (on the board's flash)"},
    {.name = "max_size",
     .type = HUB_CFG_SIZE,
     .def = "256MiB",
     .offset = offsetof(struct ch_journal_cfg, max_size),
     .min = 1LL << 20,
     .help = "most disk space the journal uses; then on_full decides"},
    {.name = "segment_size",
     .type = HUB_CFG_SIZE,
     .def = "8MiB",
     .offset = offsetof(struct ch_journal_cfg, segment_size),
     .min = 64LL << 10,
     .help = "size of one segment file; space is freed a segment at a time"},
    {.name = "sync_interval",
     .type = HUB_CFG_DURATION,
     .def = "100ms",
     .offset = offsetof(struct ch_journal_cfg, sync_interval_ns),
     .min = NS_MS,
     .zero_ok = true,
     .help = "how often the journal is synced to flash: at most this much is lost on a power "
             "cut; 0 syncs every reading before it is accepted (slow, and wears the flash)"},
    {.name = "on_full",
     .type = HUB_CFG_ENUM,
     .def = "drop_oldest",
     .offset = offsetof(struct ch_journal_cfg, on_full),
     .choices = ch_on_full,
     .help = "when the journal is full: drop_oldest or drop_newest readings (counted)"},
    {.name = NULL},
};

static int check_listen(const char *text, char *err, size_t errlen)
{
    char host[CH_STATUS_LISTEN_MAX];
    int port;
    return ch_status_parse_listen(text, host, sizeof(host), &port, err, errlen);
}

const struct hub_cfg_key ch_status_keys[] = {
    {.name = "enabled",
     .type = HUB_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct ch_status_cfg, enabled),
     .help = "serve /health, /metrics and the live page"},
    {.name = "listen",
     .type = HUB_CFG_STRING,
     .def = "127.0.0.1:8780",
     .offset = offsetof(struct ch_status_cfg, listen),
     .size = sizeof(((struct ch_status_cfg *)0)->listen),
     .validate = check_listen,
     .help = "address and port: HOST:PORT or [IPV6]:PORT; other than loopback needs "
             "password_file"},
    {.name = "user",
     .type = HUB_CFG_STRING,
     .def = "cityhub",
     .offset = offsetof(struct ch_status_cfg, user),
     .size = sizeof(((struct ch_status_cfg *)0)->user),
     .help = "user name of HTTP basic authentication (with password_file)"},
    {.name = "password_file",
     .type = HUB_CFG_STRING,
     .offset = offsetof(struct ch_status_cfg, password_file),
     .size = sizeof(((struct ch_status_cfg *)0)->password_file),
     .help = "file holding the password of HTTP basic authentication; none: no authentication"},
    {.name = "allow_unauthenticated",
     .type = HUB_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct ch_status_cfg, allow_unauthenticated),
     .help = "serve a non-loopback address without password_file (a trusted network only)"},
    {.name = "max_connections",
     .type = HUB_CFG_INT,
     .def = "16",
     .offset = offsetof(struct ch_status_cfg, max_connections),
     .min = 1,
     .max = 256,
     .help = "connections served at once; more are refused"},
    {.name = "timeout",
     .type = HUB_CFG_DURATION,
     .def = "10s",
     .offset = offsetof(struct ch_status_cfg, connection_timeout_ns),
     .min = NS_S,
     .help = "an idle connection is closed after this"},
    {.name = NULL},
};

const struct hub_cfg_key ch_hub_keys[] = {
    {.name = "name",
     .type = HUB_CFG_STRING,
     .required = true,
     .offset = offsetof(struct ch_hub_cfg, name),
     .size = sizeof(((struct ch_hub_cfg *)0)->name),
     .help = "name of this gateway; every reading gets it as tag \"gateway\""},
    {.name = "tags",
     .type = HUB_CFG_TAGS,
     .offset = offsetof(struct ch_hub_cfg, tags),
     .help = "tags added to every reading, e.g. {district: dong-hoi, site: crossing-4}"},
    {.name = "journal",
     .type = HUB_CFG_OBJECT,
     .offset = offsetof(struct ch_hub_cfg, journal),
     .child = ch_journal_keys,
     .help = "mapping: where and how readings are kept until every output has them"},
    {.name = "status",
     .type = HUB_CFG_OBJECT,
     .offset = offsetof(struct ch_hub_cfg, status),
     .child = ch_status_keys,
     .help = "mapping: the status HTTP server (health, metrics, live page)"},
    {.name = "log_level",
     .type = HUB_CFG_ENUM,
     .def = "info",
     .offset = offsetof(struct ch_hub_cfg, log_level),
     .choices = ch_log_levels,
     .help = "least severe messages logged: error, warn, info or debug"},
    {.name = "log_file",
     .type = HUB_CFG_STRING,
     .offset = offsetof(struct ch_hub_cfg, log_file),
     .size = sizeof(((struct ch_hub_cfg *)0)->log_file),
     .help = "write log lines to this file (appended; reopened on SIGHUP, for logrotate) "
             "instead of stderr"},
    {.name = "status_interval",
     .type = HUB_CFG_DURATION,
     .def = "60s",
     .offset = offsetof(struct ch_hub_cfg, status_interval_ns),
     .min = NS_S,
     .help = "how often the hub writes its own and each device's status points"},
    {.name = "user",
     .type = HUB_CFG_STRING,
     .def = "cityhub",
     .offset = offsetof(struct ch_hub_cfg, user),
     .size = sizeof(((struct ch_hub_cfg *)0)->user),
     .validate = ch_priv_check_name,
     .help = "started as root, the hub runs as this user with its groups (dialout for serial "
             "ports) and no capability; root keeps root (warned at every start)"},
    {.name = NULL},
};
