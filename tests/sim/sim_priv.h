/* tests/sim/sim_priv.h — cityhub-sim's server state, shared by sim.c (the
 * command line), server.c (event loops, connections, timers, log) and
 * reply.c (one request, its reply and the fault switches). */
#ifndef SIM_SIM_PRIV_H
#define SIM_SIM_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "tests/sim/sim.h"

#define REPLY_MAX (MODBUS_TCP_MAX_ADU_LENGTH + 8)
#define RTU_BUF (2 * MODBUS_RTU_MAX_ADU_LENGTH + 16)
#define CLIENT_IN 1024    /* a client's input buffer: > 2 whole ADUs */
#define MAX_PENDING 65536 /* replies waiting for their time; beyond, sent at once */
#define OUT_HIGH 65536    /* a client with more output waiting is not read */

enum { K_LISTEN = 1, K_CLIENT, K_TTY };

/* A listening socket (one per --endpoints address). */
struct endpoint {
    int kind; /* K_LISTEN; first, as in struct client (epoll tag) */
    int fd;
    char name[64]; /* "127.0.0.5:1502" */
};

/* A connection (TCP), or the serial line (RTU, kind K_TTY). */
struct client {
    int kind;
    int fd;
    uint64_t conn;   /* serial number, never reused; pending replies name it */
    size_t ep;       /* endpoint it came in on */
    int gone;        /* dropped: closed, freed after this loop turn */
    int closing;     /* close once out is sent */
    uint32_t events; /* registered with epoll: EPOLLIN, EPOLLOUT */
    size_t in_len;
    uint8_t in[CLIENT_IN];
    uint8_t *out; /* bytes not yet taken by the kernel */
    size_t out_off, out_len, out_cap;
    int drip_active;     /* a reply is being dripped */
    uint64_t drip_seq;   /* ... the pending entry doing it */
    int64_t drip_end_ns; /* ... and when its last byte is due */
    struct client *next_dead;
};

enum pend_mode { P_SEND, P_DRIP, P_CLOSE_HALF };

/* A reply waiting for its time (--delay-ms, --slow-unit, --drip-unit). */
struct pending {
    int fd;
    uint64_t conn;
    int64_t due_ns; /* monotonic */
    uint64_t seq;   /* tie-break: first queued, first sent */
    enum pend_mode mode;
    int unit;
    int64_t step_ns; /* drip: between two bytes */
    int64_t start_ns;
    size_t len, off; /* off: drip, bytes sent */
    uint8_t data[REPLY_MAX];
};

struct sim {
    modbus_t *ctx;
    int rtu;        /* serving Modbus RTU on tty, not TCP */
    int tty;        /* rtu: the serial line (owned by ctx) */
    int64_t gap_ns; /* rtu: the silence that ends a frame (3.5 characters) */
    struct client *tty_client;

    struct endpoint *eps;
    size_t neps;
    int backlog;
    int epfd;
    int spare_fd;          /* kept open to refuse a connection at EMFILE */
    struct client **by_fd; /* live clients by fd */
    size_t by_fd_cap;
    size_t nclients;
    uint64_t next_conn;
    struct client *dead; /* dropped this loop turn, freed at its end */

    int pair[2]; /* replies are written to pair[0] and read back from pair[1] */
    struct sim_unit *units[SIM_MAX_UNIT + 1];
    struct sim_rng rng;

    FILE *log;
    int log_off; /* the log is /dev/null: format nothing */
    int quiet;   /* no line per answered request or connection */
    time_t log_sec;
    char log_when[16];

    uint64_t requests; /* every request, any unit */
    uint64_t fault_every;
    int64_t delay_ns;

    struct pending **heap; /* min-heap on (due_ns, seq) */
    size_t heap_len, heap_cap;
    uint64_t pend_seq;
};

/* server.c */
int64_t sim_mono_ns(void);
void sim_log(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a routine line (a request answered, a client come or gone): not with --quiet */
int sim_log_routine(const struct sim *s);
void sim_log_flush(struct sim *s);
/* Send a reply of unit to client c after delay_ns (0: now); drip_ns > 0:
 * one byte at a time; close_half: half of it, then close the connection. */
void sim_queue_reply(struct sim *s, struct client *c, int unit, const uint8_t *p, size_t len,
                     int64_t delay_ns, int64_t drip_ns, int close_half);
int sim_listen(struct sim *s, const char *host, const char *port, long endpoints, int *bound);
int sim_serve_tcp(struct sim *s);
int sim_serve_rtu(struct sim *s);
int sim_rtu_open(struct sim *s);
void sim_close_all(struct sim *s);

/* reply.c */
void sim_handle(struct sim *s, struct client *c, const uint8_t *req, int req_len);
uint16_t sim_crc16(const uint8_t *p, size_t n);

#endif
