/* drivers/mqtt/mqtt_priv.h — configuration of the MQTT input (section
 * `mqtt_inputs`) and of the live output (`type: mqtt`), shared by their
 * files. */
#ifndef DRV_MQTT_PRIV_H
#define DRV_MQTT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "drivers/mqtt/client.h"
#include "drivers/mqtt/format.h"
#include "hub/config_map.h"

#define DRV_MQ_TOPIC_MAX 256
#define DRV_MQ_MAX_INPUTS 64
#define DRV_MQ_MAX_SUBS 256 /* per input */

/* One element of an input's `subscribe` list. */
struct drv_mq_sub_cfg {
    char topic[DRV_MQ_TOPIC_MAX]; /* filter; a level "{name}" is "+" that sets tag name */
    int64_t qos;
    int format; /* enum drv_mq_format */
    char measurement[HUB_READING_MAX_NAME + 1];
    char field[HUB_READING_MAX_NAME + 1]; /* value: the field */
    struct hub_cfg_tags fields;           /* json: field -> JSON Pointer */
    char time[DRV_MQ_TOPIC_MAX];          /* json: JSON Pointer of the time */
    int precision;                        /* enum drv_mq_precision */
    struct hub_cfg_tags tags;             /* added to every reading */
    struct hub_cfg_tags units;            /* field -> unit, for the data dictionary */
    bool radio;                           /* chirpstack: radio measurement too */
    char radio_measurement[HUB_READING_MAX_NAME + 1];
};

/* One element of `mqtt_inputs`. */
struct drv_mq_input_cfg {
    char name[DRV_NAME_MAX];
    struct drv_mq_conn_cfg conn;
    uint64_t max_payload;    /* bigger messages are rejected */
    int64_t idle_timeout_ns; /* watchdog: silent this long while connected -> reconnect; 0 off */
    char dead_letter[DRV_MQ_PATH_MAX]; /* "" = none: rejected messages kept here */
    uint64_t dead_letter_max;          /* bytes before the file is rotated (one old file kept) */
    struct hub_cfg_list subscribe;     /* struct drv_mq_sub_cfg */
};

/* The live output. */
struct drv_mq_output_cfg {
    struct drv_output_common common;
    struct drv_mq_conn_cfg conn;
    char topic[DRV_MQ_TOPIC_MAX]; /* template: {measurement} {device} {gateway} {TAG} */
    int payload;                  /* 0 json, 1 senml */
    int64_t qos;
    bool retain;
    char status_topic[DRV_MQ_TOPIC_MAX]; /* "online" (retained) / Last Will "offline" */
    char health_topic[DRV_MQ_TOPIC_MAX]; /* the hub's health points, as JSON */
    int64_t publish_timeout_ns;
};

/* The connection keys, for a config struct T whose member M is a struct
 * drv_mq_conn_cfg; client_id_help says what the default client id is. */
#define DRV_MQ_CONN_OFF(T, M, f) (offsetof(T, M) + offsetof(struct drv_mq_conn_cfg, f))
#define DRV_MQ_CONN_SZ(f) sizeof(((struct drv_mq_conn_cfg *)0)->f)
#define DRV_MQ_CONN_KEYS(T, M)                                                                     \
    HUB_CFG_KEY("url", HUB_CFG_STRING, NULL, true, DRV_MQ_CONN_OFF(T, M, url),                     \
                DRV_MQ_CONN_SZ(url), 0, 0, NULL,                                                   \
                "broker: mqtt://host:port, or mqtts://host:port for TLS (IPv6: [::1])"),           \
        HUB_CFG_KEY("client_id", HUB_CFG_STRING, NULL, false, DRV_MQ_CONN_OFF(T, M, client_id),    \
                    DRV_MQ_CONN_SZ(client_id), 0, 0, NULL,                                         \
                    "MQTT client id, unique per broker (default: <hub.name>-<name>)"),             \
        HUB_CFG_KEY("username", HUB_CFG_STRING, NULL, false, DRV_MQ_CONN_OFF(T, M, username),      \
                    DRV_MQ_CONN_SZ(username), 0, 0, NULL, "user name to log in with"),             \
        HUB_CFG_KEY("password_file", HUB_CFG_STRING, NULL, false,                                  \
                    DRV_MQ_CONN_OFF(T, M, password_file), DRV_MQ_CONN_SZ(password_file), 0, 0,     \
                    NULL, "file holding the user's password (mode 0600 or 0640)"),                 \
        HUB_CFG_KEY("ca_file", HUB_CFG_STRING, NULL, false, DRV_MQ_CONN_OFF(T, M, ca_file),        \
                    DRV_MQ_CONN_SZ(ca_file), 0, 0, NULL,                                           \
                    "mqtts: PEM file of the CAs that sign the broker (default: the system's)"),    \
        HUB_CFG_KEY("cert_file", HUB_CFG_STRING, NULL, false, DRV_MQ_CONN_OFF(T, M, cert_file),    \
                    DRV_MQ_CONN_SZ(cert_file), 0, 0, NULL, "mqtts: client certificate (PEM)"),     \
        HUB_CFG_KEY("key_file", HUB_CFG_STRING, NULL, false, DRV_MQ_CONN_OFF(T, M, key_file),      \
                    DRV_MQ_CONN_SZ(key_file), 0, 0, NULL, "mqtts: the client certificate's key"),  \
        HUB_CFG_KEY("insecure_skip_verify", HUB_CFG_BOOL, "false", false,                          \
                    DRV_MQ_CONN_OFF(T, M, insecure_skip_verify), 0, 0, 0, NULL,                    \
                    "mqtts: do not verify the broker's certificate (warned at every start)"),      \
        HUB_CFG_KEY("keepalive", HUB_CFG_DURATION, "30s", false,                                   \
                    DRV_MQ_CONN_OFF(T, M, keepalive_ns), 0, 1000000000, 0, NULL,                   \
                    "MQTT keepalive: a dead connection is noticed within 1.5 x this"),             \
        HUB_CFG_KEY("connect_timeout", HUB_CFG_DURATION, "10s", false,                             \
                    DRV_MQ_CONN_OFF(T, M, connect_timeout_ns), 0, 1000000000, 0, NULL,             \
                    "longest one connect attempt may take"),                                       \
        HUB_CFG_KEY("reconnect_max", HUB_CFG_DURATION, "60s", false,                               \
                    DRV_MQ_CONN_OFF(T, M, backoff_max_ns), 0, 1000000000, 0, NULL,                 \
                    "longest wait between connect attempts (backoff from 1s, with jitter)")

/* Fill the default client id ("<gateway>-<name>") when none was given. */
void drv_mq_default_client_id(struct drv_mq_conn_cfg *conn, const char *gateway, const char *name);

#endif
