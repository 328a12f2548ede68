/* drivers/mqtt/client.h — one MQTT connection on the Eclipse Paho MQTT C
 * asynchronous client, shared by the MQTT input and the live output.
 *
 * The client keeps itself connected: a supervisor thread of its own
 * connects, and after a failed connect or a lost connection tries again
 * after a capped exponential backoff with jitter (hub/backoff.h), logging
 * the first failure of each kind with its reason (refused: bad user name
 * or password, not authorised; TLS; unreachable) and then once a minute.
 * Subscriptions given with drv_mq_client_subscribe are made again on every
 * connect (a persistent session keeps them too, but a broker that lost its
 * state must not leave the hub deaf).
 *
 * Messages arrive on Paho's thread through cb.message. Paho acknowledges a
 * QoS 1 message (PUBACK) only when that callback returns, so a callback
 * that appends the message's readings to the journal before returning
 * acknowledges nothing that is not safe. The callback must not block on
 * the network. */
#ifndef DRV_MQTT_CLIENT_H
#define DRV_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/beat.h"

#define DRV_MQ_URL_MAX 512
#define DRV_MQ_PATH_MAX 256
#define DRV_MQ_ID_MAX 128

/* How to reach the broker: the keys every MQTT input and output has
 * (DRV_MQ_CONN_KEYS in mqtt_priv.h). */
struct drv_mq_conn_cfg {
    char url[DRV_MQ_URL_MAX];            /* mqtt://host:port, mqtts://host:port, [v6] */
    char client_id[DRV_MQ_ID_MAX];       /* "" = "<gateway>-<name>" */
    char username[DRV_MQ_ID_MAX];        /* "" = none */
    char password_file[DRV_MQ_PATH_MAX]; /* with username */
    char ca_file[DRV_MQ_PATH_MAX];       /* mqtts: CAs to verify the broker ("" = system's) */
    char cert_file[DRV_MQ_PATH_MAX];     /* mqtts: client certificate (optional) */
    char key_file[DRV_MQ_PATH_MAX];      /* its key */
    bool insecure_skip_verify;           /* mqtts: do not verify the broker (warned) */
    int64_t keepalive_ns;                /* MQTT keepalive */
    int64_t connect_timeout_ns;          /* one connect attempt */
    int64_t backoff_max_ns;              /* longest wait between attempts */
    bool clean_session;                  /* false: the broker keeps QoS 1 messages while away */
};

/* The Last Will: published by the broker when the client vanishes. */
struct drv_mq_will {
    const char *topic;
    const char *payload;
    int qos;
    bool retained;
};

struct drv_mq_client_cb {
    /* A message (topic NUL-terminated; payload not). Return when it is
     * handled: then Paho acknowledges it. */
    void (*message)(void *arg, const char *topic, const void *payload, size_t len, int qos,
                    bool retained);
    /* After every successful connect (subscriptions already requested);
     * may publish. May be NULL. */
    void (*connected)(void *arg, bool session_present);
    void *arg;
};

struct drv_mq_client_stats {
    bool connected;
    uint64_t connects;      /* successful connects */
    uint64_t connect_fails; /* failed attempts */
    uint64_t lost;          /* connections lost after being up */
    uint64_t published;     /* messages whose publish completed */
    uint64_t publish_fails;
    int64_t last_message_ns; /* monotonic time of the last message received, 0 = none */
    char last_error[160];    /* "" when none */
};

typedef struct drv_mq_client drv_mq_client_t;

/* Check what can be checked without connecting: the URL's scheme and host,
 * the TLS files and the password file (readable, not group/other writable;
 * a warning when readable by others). Returns 0, or -1 with a message in
 * err naming the key ("password_file /x: ..."). For check and init. */
int drv_mq_conn_validate(const struct drv_mq_conn_cfg *cfg, const char **key, char *err,
                         size_t errlen);

/* who names the client in log lines ("mqtt:lorawan"). client_id must be
 * set (the caller fills the default). will may be NULL. Reads the password
 * file. Does not connect: drv_mq_client_start does. Returns 0 or -1 with a
 * message in err. */
int drv_mq_client_new(const struct drv_mq_conn_cfg *cfg, const char *who,
                      const struct drv_mq_client_cb *cb, const struct drv_mq_will *will,
                      drv_mq_client_t **out, char *err, size_t errlen);
/* Remember a subscription (before start, or at any time: made now when
 * connected). Returns 0 or -1. */
int drv_mq_client_subscribe(drv_mq_client_t *c, const char *filter, int qos);
/* Start the supervisor thread: connect, and keep connected until stop.
 * beats (may be NULL): the watchdog's, where the thread's heartbeat goes
 * (drv_env.beats). */
int drv_mq_client_start(drv_mq_client_t *c, hub_beats_t *beats);
/* Publish one message. timeout_ns 0: returns once Paho has it (see
 * drv_mq_client_drain); else publish and drain. Returns 0, or -1 (not
 * connected, refused, timed out) with a reason in err. Safe from any
 * thread. */
int drv_mq_client_publish(drv_mq_client_t *c, const char *topic, const void *payload, size_t len,
                          int qos, bool retained, int64_t timeout_ns, char *err, size_t errlen);
/* Wait until every publish since the last drain is acknowledged (QoS 1)
 * or handed to the socket (QoS 0), up to timeout_ns. Returns 0, or -1
 * when one failed, the connection was lost meanwhile, or time ran out
 * (reason in err): then send them all again. Not from a Paho callback
 * (connected, message): those must publish with timeout_ns 0 and never
 * drain. */
int drv_mq_client_drain(drv_mq_client_t *c, int64_t timeout_ns, char *err, size_t errlen);
/* Subscribe again to every filter (the watchdog's first remedy). Returns
 * 0, or -1 when not connected. */
int drv_mq_client_resubscribe(drv_mq_client_t *c);
/* Wait until connected or timeout; 1 if connected. */
int drv_mq_client_wait_connected(drv_mq_client_t *c, int64_t timeout_ns);
/* The connection looks dead (the input's watchdog: connected, yet silent
 * far too long): drop it and connect again. */
void drv_mq_client_reconnect(drv_mq_client_t *c, const char *why);
void drv_mq_client_stats(drv_mq_client_t *c, struct drv_mq_client_stats *st);
/* Interrupt waits (publish, wait_connected) and stop reconnecting; safe
 * from any thread. Then free disconnects (within timeout_ns, so that a
 * publish of the gateway's "offline" status can be sent first) and frees. */
void drv_mq_client_stop(drv_mq_client_t *c);
void drv_mq_client_free(drv_mq_client_t *c, int64_t timeout_ns);

/* Once per process (Paho's global init; OpenSSL is initialised by
 * whoever needs it first: libcurl does it too). */
int drv_mq_global_init(void); /* drv_ops.global_init of both MQTT drivers: 0 */
/* "Paho MQTT C 1.3.12". */
void drv_mq_version(char *buf, size_t len);

#endif
