/* tests/sim/server.c — cityhub-sim's event loops.
 *
 * TCP: one epoll loop serves every listening socket (one per --endpoints
 * address) and every client, without a limit on their number. Sockets are
 * non-blocking; the requests are cut here from each client's input buffer by
 * the MBAP header (7 bytes; the length field counts the bytes after byte 5,
 * unit id included), not by libmodbus's modbus_receive, which waits in
 * select() and so cannot serve a descriptor >= FD_SETSIZE. The unit id of a
 * request (byte 6) picks the unit and its own modbus_mapping_t.
 *
 * Replies that must wait (--delay-ms, --slow-unit, --drip-unit, --close-unit)
 * go into a min-heap on their due time; what the kernel does not take at once
 * waits in the client's output buffer until the socket is writable, so a
 * client that does not read, or a reply dripped a byte at a time, never holds
 * up the others. While a reply is being dripped on a connection, later
 * replies on that connection wait until its last byte is out (a reply is
 * never interleaved with another).
 *
 * RTU: --rtu serves the same units on a serial line (a tty, e.g. one end of a
 * socat pty pair) with a libmodbus RTU context: libmodbus opens and sets up
 * the tty (modbus_connect) and builds every reply with its CRC. The frames
 * are cut here, not by modbus_receive: libmodbus's RTU server takes one slave
 * id per context, returns 0 for a frame addressed to any other id and then
 * swallows the *next* frame as that slave's answer — right on a multi-drop
 * line with other slaves, wrong here where one process is every slave and an
 * absent slave answers nothing. So a request ends when it has the length its
 * function code implies, or at a silence of 3.5 characters; a frame with a bad
 * CRC is ignored; unit 0 (broadcast) and unit ids the profile lacks get no
 * answer, as on a real line. One request at a time, in order.
 *
 * The log is written through stdio with a full buffer and flushed each time
 * the loop goes to sleep, so a burst of requests costs one write(). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/sim/sim_priv.h"

extern volatile sig_atomic_t sim_stop; /* sim.c: SIGTERM or SIGINT seen */

int64_t sim_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- log ------------------------------------------------------------------ */

void sim_log(struct sim *s, const char *fmt, ...)
{
    if (s->log_off)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != s->log_sec || !s->log_when[0]) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(s->log_when, sizeof(s->log_when), "%H:%M:%S", &tm);
        s->log_sec = ts.tv_sec;
    }
    fprintf(s->log, "%s.%03ld sim: ", s->log_when, ts.tv_nsec / 1000000L);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
}

int sim_log_routine(const struct sim *s)
{
    return !s->quiet && !s->log_off;
}

void sim_log_flush(struct sim *s)
{
    if (s->log)
        fflush(s->log);
}

/* ---- clients ---------------------------------------------------------------- */

static struct client *lookup(struct sim *s, int fd, uint64_t conn)
{
    if (fd < 0 || (size_t)fd >= s->by_fd_cap)
        return NULL;
    struct client *c = s->by_fd[fd];
    return c && !c->gone && c->conn == conn ? c : NULL;
}

static int by_fd_set(struct sim *s, int fd, struct client *c)
{
    if ((size_t)fd >= s->by_fd_cap) {
        size_t cap = s->by_fd_cap ? s->by_fd_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct client **n = realloc(s->by_fd, cap * sizeof(*n));
        if (!n)
            return -1;
        memset(n + s->by_fd_cap, 0, (cap - s->by_fd_cap) * sizeof(*n));
        s->by_fd = n;
        s->by_fd_cap = cap;
    }
    s->by_fd[fd] = c;
    return 0;
}

static void drop_client(struct sim *s, struct client *c)
{
    if (c->gone)
        return;
    if (sim_log_routine(s))
        sim_log(s, "fd %d: client gone", c->fd);
    c->gone = 1;
    s->by_fd[c->fd] = NULL;
    if (c->kind == K_CLIENT) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        s->nclients--;
    }
    c->next_dead = s->dead;
    s->dead = c;
}

/* Free the clients dropped during this loop turn. */
static void bury(struct sim *s)
{
    while (s->dead) {
        struct client *c = s->dead;
        s->dead = c->next_dead;
        free(c->out);
        free(c);
    }
}

/* What to wait for on c: writable while output waits; readable unless more
 * than OUT_HIGH bytes wait (a client that does not read its replies is not
 * read either, as a real slave's TCP window closes). */
static void update_events(struct sim *s, struct client *c)
{
    if (c->gone || c->kind != K_CLIENT)
        return;
    size_t waiting = c->out_len - c->out_off;
    uint32_t ev_mask = (waiting > OUT_HIGH ? 0 : EPOLLIN) | (waiting > 0 ? EPOLLOUT : 0);
    if (ev_mask == c->events)
        return;
    struct epoll_event ev = {.events = ev_mask, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = ev_mask;
}

static ssize_t write_fd(const struct client *c, const uint8_t *p, size_t len)
{
    return c->kind == K_TTY ? write(c->fd, p, len) : send(c->fd, p, len, MSG_NOSIGNAL);
}

static void send_failed(struct sim *s, struct client *c, int err)
{
    sim_log(s, "fd %d: send: %s", c->fd, strerror(err));
    if (c->kind == K_CLIENT) {
        drop_client(s, c);
    } else {
        c->out_off = c->out_len = 0; /* the line: drop what it did not take */
    }
}

/* Hand bytes to the kernel; what it does not take waits in c->out. */
static void out_send(struct sim *s, struct client *c, const uint8_t *p, size_t len)
{
    if (c->gone || len == 0)
        return;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        ssize_t n = write_fd(c, p, len);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            send_failed(s, c, errno);
            return;
        }
        if (n < 0)
            n = 0;
        if ((size_t)n == len)
            return;
        p += n;
        len -= (size_t)n;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 512;
        while (cap < c->out_len + len)
            cap *= 2;
        uint8_t *n = realloc(c->out, cap);
        if (!n) {
            send_failed(s, c, ENOMEM);
            return;
        }
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
    update_events(s, c);
}

/* The socket is writable: send what waits. */
static void out_flush(struct sim *s, struct client *c)
{
    while (!c->gone && c->out_off < c->out_len) {
        ssize_t n = write_fd(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            send_failed(s, c, errno);
            return;
        }
        c->out_off += (size_t)n;
        update_events(s, c); /* reading again below OUT_HIGH */
    }
    if (c->gone)
        return;
    c->out_off = c->out_len = 0;
    update_events(s, c);
    if (c->closing)
        drop_client(s, c);
}

/* ---- pending replies: a min-heap on (due, seq) ------------------------------ */

static int before(const struct pending *a, const struct pending *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static int heap_push(struct sim *s, struct pending *q)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 256;
        struct pending **n = realloc(s->heap, cap * sizeof(*n));
        if (!n)
            return -1;
        s->heap = n;
        s->heap_cap = cap;
    }
    size_t i = s->heap_len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(q, s->heap[up]))
            break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = q;
    return 0;
}

static struct pending *heap_pop(struct sim *s)
{
    struct pending *top = s->heap[0], *last = s->heap[--s->heap_len];
    size_t i = 0, n = s->heap_len;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct pending *best = last;
        if (l < n && before(s->heap[l], best))
            m = l, best = s->heap[l];
        if (r < n && before(s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n > 0)
        s->heap[i] = last;
    return top;
}

void sim_queue_reply(struct sim *s, struct client *c, int unit, const uint8_t *p, size_t len,
                     int64_t delay_ns, int64_t drip_ns, int close_half)
{
    if (c->gone)
        return;
    if (delay_ns <= 0 && drip_ns <= 0 && !close_half && !c->drip_active) {
        out_send(s, c, p, len);
        return;
    }
    struct pending *q = NULL;
    if (s->heap_len < MAX_PENDING)
        q = malloc(sizeof(*q));
    if (!q) {
        sim_log(s, "fd %d: %zu replies pending, sending at once", c->fd, s->heap_len);
        out_send(s, c, p, len);
        return;
    }
    q->fd = c->fd;
    q->conn = c->conn;
    q->due_ns = sim_mono_ns() + (delay_ns > 0 ? delay_ns : 0);
    q->seq = ++s->pend_seq;
    q->mode = drip_ns > 0 ? P_DRIP : close_half ? P_CLOSE_HALF : P_SEND;
    q->unit = unit;
    q->step_ns = drip_ns;
    q->start_ns = 0;
    q->len = len;
    q->off = 0;
    memcpy(q->data, p, len);
    if (heap_push(s, q) != 0) {
        free(q);
        out_send(s, c, p, len);
    }
}

/* A pending reply is due: send it (or its next byte). */
static void deliver(struct sim *s, struct pending *q, int64_t now)
{
    struct client *c = lookup(s, q->fd, q->conn);
    if (!c) { /* the client is gone */
        free(q);
        return;
    }
    if (c->drip_active && c->drip_seq != q->seq) { /* wait for the drip to end */
        q->due_ns = c->drip_end_ns + 1;
        if (heap_push(s, q) != 0) {
            free(q);
        }
        return;
    }
    switch (q->mode) {
    case P_SEND:
        out_send(s, c, q->data, q->len);
        break;
    case P_CLOSE_HALF: {
        size_t half = q->len / 2;
        out_send(s, c, q->data, half);
        sim_log(s, "fd %d: unit %d: sent %zu of %zu reply bytes, closing the connection", c->fd,
                q->unit, half, q->len);
        if (!c->gone && c->out_off == c->out_len)
            drop_client(s, c);
        else
            c->closing = 1;
        break;
    }
    case P_DRIP:
        if (q->off == 0) {
            c->drip_active = 1;
            c->drip_seq = q->seq;
            q->start_ns = now;
        }
        out_send(s, c, q->data + q->off, 1);
        q->off++;
        if (c->gone) {
            break;
        }
        if (q->off < q->len) {
            q->due_ns = now + q->step_ns;
            c->drip_end_ns = q->due_ns + (int64_t)(q->len - q->off - 1) * q->step_ns;
            if (heap_push(s, q) == 0)
                return;
            out_send(s, c, q->data + q->off, q->len - q->off);
        }
        c->drip_active = 0;
        sim_log(s, "fd %d: unit %d: reply of %zu bytes dripped a byte at a time in %lld ms", c->fd,
                q->unit, q->len, (long long)((now - q->start_ns) / 1000000));
        break;
    }
    free(q);
}

/* Send what is due; returns ns until the next pending reply, or -1. */
static int64_t run_timers(struct sim *s)
{
    int64_t now = sim_mono_ns();
    while (s->heap_len > 0) {
        if (s->heap[0]->due_ns > now)
            return s->heap[0]->due_ns - now;
        deliver(s, heap_pop(s), now);
    }
    return -1;
}

static int wait_ms(int64_t wait_ns)
{
    if (wait_ns < 0 || wait_ns >= 1000000000LL)
        return 1000;
    return (int)((wait_ns + 999999) / 1000000);
}

/* ---- listening -------------------------------------------------------------- */

static int listen_on(struct sim *s, const struct sockaddr *sa, socklen_t sl, struct endpoint *ep)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, sa, sl) != 0 || listen(fd, s->backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    ep->kind = K_LISTEN;
    ep->fd = fd;
    return 0;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Listen on host:port, or with endpoints > 1 on the endpoints IPv4 addresses
 * from host (an IPv4 literal) up, all on the same port. Returns 0 (the port
 * in *bound) or -1 (message on stderr). */
int sim_listen(struct sim *s, const char *host, const char *port, long endpoints, int *bound)
{
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->eps = calloc((size_t)endpoints, sizeof(*s->eps));
    if (s->epfd < 0 || !s->eps) {
        fprintf(stderr, "cityhub-sim: %s\n", strerror(errno));
        return -1;
    }
    if (endpoints == 1) {
        struct addrinfo hints, *ai = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_flags = AI_PASSIVE;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(host, port, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "cityhub-sim: listen on %s:%s: %s\n", host, port, gai_strerror(rc));
            return -1;
        }
        int ok = -1, err = 0;
        for (struct addrinfo *a = ai; a && ok != 0; a = a->ai_next) {
            ok = listen_on(s, a->ai_addr, a->ai_addrlen, &s->eps[0]);
            if (ok != 0)
                err = errno;
        }
        freeaddrinfo(ai);
        if (ok != 0) {
            fprintf(stderr, "cityhub-sim: listen on %s:%s: %s\n", host, port, strerror(err));
            return -1;
        }
        s->neps = 1;
        *bound = bound_port(s->eps[0].fd);
        snprintf(s->eps[0].name, sizeof(s->eps[0].name), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
                 host, *bound);
    } else {
        struct in_addr base;
        if (inet_pton(AF_INET, host, &base) != 1) {
            fprintf(stderr, "cityhub-sim: --endpoints needs an IPv4 address, not %s\n", host);
            return -1;
        }
        int p = atoi(port);
        for (long k = 0; k < endpoints; k++) {
            struct sockaddr_in sin;
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            sin.sin_addr.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)k);
            sin.sin_port = htons((uint16_t)p);
            char a[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &sin.sin_addr, a, sizeof(a));
            if (listen_on(s, (struct sockaddr *)&sin, sizeof(sin), &s->eps[k]) != 0) {
                fprintf(stderr, "cityhub-sim: listen on %s:%d (endpoint %ld): %s\n", a, p, k + 1,
                        strerror(errno));
                return -1;
            }
            s->neps++;
            if (p == 0)
                p = bound_port(s->eps[k].fd); /* the others on the port the first got */
            snprintf(s->eps[k].name, sizeof(s->eps[k].name), "%s:%d", a, p);
        }
        *bound = p;
    }
    for (size_t i = 0; i < s->neps; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->eps[i]};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->eps[i].fd, &ev) != 0) {
            fprintf(stderr, "cityhub-sim: epoll: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void accept_all(struct sim *s, struct endpoint *ep)
{
    for (int i = 0; i < 4096; i++) {
        int fd = accept4(ep->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
                /* out of descriptors: take the connection with the spare and
                 * close it, or the listener stays readable for ever */
                int e = errno;
                close(s->spare_fd);
                int x = accept(ep->fd, NULL, NULL);
                if (x >= 0)
                    close(x);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                sim_log(s, "%s: connection refused: %s", ep->name, strerror(e));
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                sim_log(s, "%s: accept: %s", ep->name, strerror(errno));
            return;
        }
        struct client *c = calloc(1, sizeof(*c));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || by_fd_set(s, fd, c) != 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            sim_log(s, "fd %d: refused: %s", fd, strerror(errno ? errno : ENOMEM));
            if (c && (size_t)fd < s->by_fd_cap)
                s->by_fd[fd] = NULL;
            free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->kind = K_CLIENT;
        c->events = EPOLLIN;
        c->fd = fd;
        c->conn = ++s->next_conn;
        c->ep = (size_t)(ep - s->eps);
        s->nclients++;
        if (sim_log_routine(s))
            sim_log(s, "fd %d: new client on %s", fd, ep->name);
    }
}

/* Whole requests at the front of the client's buffer, by their MBAP length. */
static void client_read(struct sim *s, struct client *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0 && (errno != ECONNRESET || sim_log_routine(s)))
            sim_log(s, "fd %d: read: %s", c->fd, strerror(errno));
        drop_client(s, c);
        return;
    }
    c->in_len += (size_t)n;
    size_t off = 0;
    while (!c->gone && c->in_len - off >= 7) {
        const uint8_t *f = c->in + off;
        size_t plen = (size_t)(f[4] << 8 | f[5]);
        if (plen < 2 || plen > MODBUS_TCP_MAX_ADU_LENGTH - 6) {
            sim_log(s, "fd %d: not Modbus TCP (MBAP length %zu), hanging up", c->fd, plen);
            drop_client(s, c);
            return;
        }
        size_t total = 6 + plen;
        if (c->in_len - off < total)
            break;
        /* libmodbus may read a few bytes past a short request: zeros */
        uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH + 64];
        memcpy(req, f, total);
        memset(req + total, 0, sizeof(req) - total);
        off += total;
        sim_handle(s, c, req, (int)total);
    }
    if (c->gone)
        return;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

int sim_serve_tcp(struct sim *s)
{
    struct epoll_event evs[256];
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);

    int rc = 0;
    while (!sim_stop) {
        int64_t wait = run_timers(s);
        bury(s);
        sim_log_flush(s);
        int n =
            epoll_pwait(s->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), wait_ms(wait), &orig);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sim_log(s, "epoll_wait: %s", strerror(errno));
            rc = -1;
            break;
        }
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == K_LISTEN) {
                accept_all(s, evs[i].data.ptr);
                continue;
            }
            struct client *c = evs[i].data.ptr;
            if (!c->gone && (evs[i].events & EPOLLOUT))
                out_flush(s, c);
            if (!c->gone && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                client_read(s, c);
        }
    }
    bury(s);
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return rc;
}

/* ---- the serial line ------------------------------------------------------------ */

/* The length of the RTU request starting at b (n bytes so far) as its
 * function code implies: > 0 when known, 0 when more bytes are needed to
 * know it, -1 for a function whose length we do not know (the frame then
 * ends at the silence). */
static long rtu_request_len(const uint8_t *b, size_t n)
{
    if (n < 2)
        return 0;
    switch (b[1]) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6: /* address, count/value */
        return 8;
    case 7:
    case 11:
    case 12:
    case 17: /* no data */
        return 4;
    case 15:
    case 16: /* address, count, byte count, data */
        return n < 7 ? 0 : 9 + (long)b[6];
    case 22: /* mask write */
        return 10;
    case 23: /* read/write multiple */
        return n < 11 ? 0 : 13 + (long)b[10];
    case 0x2B: /* MEI type, and for 0x0E: read device id code, object id */
        return n < 3 ? 0 : b[2] == 0x0E ? 7 : -1;
    default:
        return -1;
    }
}

/* One whole frame from the line: check it as a slave does and answer. */
static void rtu_frame(struct sim *s, const uint8_t *f, size_t n)
{
    if (n < 4) {
        sim_log(s, "rtu: %zu stray byte(s) ignored", n);
        return;
    }
    uint16_t crc = sim_crc16(f, n - 2);
    if (f[n - 2] != (uint8_t)crc || f[n - 1] != (uint8_t)(crc >> 8)) {
        sim_log(s, "rtu: frame of %zu bytes (unit %d fc %d) with a bad CRC ignored", n, f[0], f[1]);
        return;
    }
    if (f[0] == MODBUS_BROADCAST_ADDRESS) {
        sim_log(s, "unit 0 fc %d -> no answer (broadcast, ignored)", f[1]);
        return;
    }
    uint8_t req[RTU_BUF + 64];
    memcpy(req, f, n);
    memset(req + n, 0, sizeof(req) - n);
    sim_handle(s, s->tty_client, req, (int)n);
}

int sim_serve_rtu(struct sim *s)
{
    uint8_t buf[RTU_BUF];
    size_t len = 0;
    int64_t last = 0; /* monotonic ns of the last byte received */
    sigset_t block, orig;

    struct client *tc = calloc(1, sizeof(*tc));
    if (!tc || by_fd_set(s, s->tty, tc) != 0) {
        free(tc);
        sim_log(s, "rtu: %s", strerror(ENOMEM));
        return -1;
    }
    tc->kind = K_TTY;
    tc->fd = s->tty;
    tc->conn = ++s->next_conn;
    s->tty_client = tc;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);

    int rc = 0;
    while (!sim_stop) {
        int64_t wait = run_timers(s);
        if (len > 0) { /* a frame is open: it ends at the silence */
            int64_t left = last + s->gap_ns - sim_mono_ns();
            if (left <= 0) {
                rtu_frame(s, buf, len);
                len = 0;
                continue;
            }
            if (wait < 0 || left < wait)
                wait = left;
        }
        struct timespec ts = {1, 0};
        if (wait >= 0 && wait < 1000000000LL) {
            ts.tv_sec = 0;
            ts.tv_nsec = (long)wait;
        }
        sim_log_flush(s);
        struct pollfd p = {.fd = s->tty, .events = POLLIN};
        if (tc->out_off < tc->out_len)
            p.events |= POLLOUT;
        int n = ppoll(&p, 1, &ts, &orig);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sim_log(s, "poll: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            continue;
        if (p.revents & POLLOUT)
            out_flush(s, tc);
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t r = read(s->tty, buf + len, sizeof(buf) - len);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) { /* EIO: the other end of a pty is gone; 0: hung up */
            sim_log(s, "rtu: read: %s", r < 0 ? strerror(errno) : "hung up");
            rc = -1;
            break;
        }
        len += (size_t)r;
        last = sim_mono_ns();
        /* answer the whole requests at the front at once, not a silence later */
        for (;;) {
            long want = rtu_request_len(buf, len);
            if (want <= 0 || (size_t)want > len)
                break;
            rtu_frame(s, buf, (size_t)want);
            memmove(buf, buf + want, len - (size_t)want);
            len -= (size_t)want;
        }
        if (len == sizeof(buf)) {
            sim_log(s, "rtu: %zu bytes without a silence, dropped", len);
            len = 0;
        }
    }
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return rc;
}

/* ---- the end -------------------------------------------------------------------- */

void sim_close_all(struct sim *s)
{
    for (size_t fd = 0; fd < s->by_fd_cap; fd++)
        if (s->by_fd[fd] && s->by_fd[fd]->kind == K_CLIENT)
            drop_client(s, s->by_fd[fd]);
    if (s->tty_client) {
        s->by_fd[s->tty] = NULL;
        free(s->tty_client->out);
        free(s->tty_client);
        s->tty_client = NULL;
    }
    bury(s);
    free(s->by_fd);
    s->by_fd = NULL;
    s->by_fd_cap = 0;
    while (s->heap_len > 0)
        free(heap_pop(s));
    free(s->heap);
    s->heap = NULL;
    for (size_t i = 0; i < s->neps; i++)
        close(s->eps[i].fd);
    free(s->eps);
    s->eps = NULL;
    s->neps = 0;
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    s->epfd = s->spare_fd = -1;
}
