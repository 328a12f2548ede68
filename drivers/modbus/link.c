/* drivers/modbus/link.c — one bus's connection: a TCP socket of our own, or
 * a serial line opened and driven by libmodbus, and one request/reply
 * exchange on it with a deadline.
 *
 * Every wait is a poll() on one descriptor, never select(): a gateway with a
 * thousand Modbus TCP endpoints has socket descriptors far above FD_SETSIZE,
 * where select() (libmodbus's TCP wait) aborts the process. A TCP connect is
 * non-blocking and waits at most the bus's timeout. A reply is read until
 * the frame its own header announces is complete (adu.c) or the request's
 * deadline passes, whichever comes first: a slave that drips bytes or stalls
 * mid-frame costs exactly one timeout, never more.
 *
 * On RTU libmodbus opens and sets up the line (termios, RS-485 mode, RTS)
 * and sends each frame (modbus_send_raw_request adds the CRC and drives
 * RTS); the reply is read here from its descriptor, with the same
 * deadline. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "drivers/modbus/bus_priv.h"
#include "hub/clock.h"
#include "hub/log.h"

/* Wait until fd is ready for events or the monotonic deadline passes.
 * Returns 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - hub_mono_ns();
        if (left <= 0)
            return 0;
        struct timespec ts = {.tv_sec = (time_t)(left / HUB_NS_PER_S),
                              .tv_nsec = (long)(left % HUB_NS_PER_S)};
        struct pollfd p = {.fd = fd, .events = events};
        int n = ppoll(&p, 1, &ts, NULL);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static void debug_frame(const struct mb_link *l, const char *dir, const uint8_t *p, size_t n)
{
    if (!l->debug)
        return;
    char hex[3 * DRV_MB_ADU_MAX + 1];
    drv_mb_hex(p, n, hex, sizeof(hex));
    hub_info(l->who, "frames: %s %s", dir, hex);
}

static int tcp_connect(struct mb_link *l, int64_t deadline, char *msg, size_t msglen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%" PRId64, l->port);
    int rc = getaddrinfo(l->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(msg, msglen, "connect to [%s]:%s failed: %s", l->host, port, gai_strerror(rc));
        return -1;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(fd);
            continue;
        }
        int w = wait_fd(fd, POLLOUT, deadline);
        socklen_t sl = sizeof(err);
        if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err == 0) {
            freeaddrinfo(res);
            l->fd = fd;
            return 0;
        }
        if (w == 0)
            err = ETIMEDOUT;
        else if (w < 0)
            err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    snprintf(msg, msglen, "connect to [%s]:%s failed: %s", l->host, port,
             strerror(err ? err : ECONNREFUSED));
    return -1;
}

int mb_link_open(struct mb_link *l, int64_t timeout_ns, char *msg, size_t msglen)
{
    if (l->up)
        return 0;
    if (!l->rtu) {
        if (tcp_connect(l, hub_mono_ns() + timeout_ns, msg, msglen) != 0)
            return -1;
    } else {
        if (modbus_connect(l->mb) == -1) {
            snprintf(msg, msglen, "open %s failed: %s", l->device, modbus_strerror(errno));
            return -1;
        }
        if (l->rs485 && modbus_rtu_set_serial_mode(l->mb, MODBUS_RTU_RS485) == -1) {
            snprintf(msg, msglen, "%s: RS-485 mode (rs485: on) not supported: %s", l->device,
                     modbus_strerror(errno));
            modbus_close(l->mb);
            return -1;
        }
        l->fd = modbus_get_socket(l->mb);
    }
    l->up = true;
    return 0;
}

void mb_link_close(struct mb_link *l)
{
    if (!l->up)
        return;
    if (l->rtu)
        modbus_close(l->mb);
    else
        close(l->fd);
    l->fd = -1;
    l->up = false;
}

static int send_all(struct mb_link *l, const uint8_t *p, size_t n, int64_t deadline)
{
    if (l->rtu) {
        /* stale bytes of an earlier, late reply must not prefix this one */
        tcflush(l->fd, TCIFLUSH);
        return modbus_send_raw_request(l->mb, (uint8_t *)p, (int)n - 2) == (int)n ? 0 : -1;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(l->fd, p + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(l->fd, POLLOUT, deadline);
            if (r == 1)
                continue;
            if (r == 0)
                errno = ETIMEDOUT;
        }
        return -1;
    }
    return 0;
}

int mb_link_transact(struct mb_link *l, const struct drv_mb_req *q, uint8_t *buf, size_t *len,
                     int64_t deadline, char *msg, size_t msglen)
{
    *len = 0;
    debug_frame(l, ">", q->adu, q->len);
    if (send_all(l, q->adu, q->len, deadline) != 0) {
        int e = errno;
        if (e == ETIMEDOUT) {
            snprintf(msg, msglen, "timeout (sending)");
            return DRV_MB_FAIL_TIMEOUT;
        }
        snprintf(msg, msglen, "connection lost: send: %s", strerror(e));
        return DRV_MB_FAIL_CONNECTION;
    }
    size_t have = 0;
    for (;;) {
        long want = drv_mb_frame_len(l->rtu, buf, have);
        if (want < 0) {
            debug_frame(l, "<", buf, have);
            snprintf(msg, msglen, "bad reply: not a Modbus frame (%zu bytes)", have);
            return DRV_MB_FAIL_BAD_REPLY;
        }
        if (want > 0 && have >= (size_t)want) {
            *len = (size_t)want;
            debug_frame(l, "<", buf, have);
            if (have > (size_t)want) {
                snprintf(msg, msglen, "bad reply: %zu stray bytes after the frame",
                         have - (size_t)want);
                return DRV_MB_FAIL_BAD_REPLY;
            }
            return 0;
        }
        size_t room = (want > 0 ? (size_t)want : DRV_MB_ADU_MAX) - have;
        int r = wait_fd(l->fd, POLLIN, deadline);
        if (r == 0) {
            debug_frame(l, "<", buf, have);
            if (have)
                snprintf(msg, msglen, "timeout (%zu bytes of a reply, then nothing)", have);
            else
                snprintf(msg, msglen, "timeout");
            return DRV_MB_FAIL_TIMEOUT;
        }
        ssize_t n = r < 0 ? -1 : read(l->fd, buf + have, room);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        int e = n < 0 ? errno : 0;
        debug_frame(l, "<", buf, have);
        if (have) {
            snprintf(msg, msglen, "bad reply: connection closed mid-frame (%zu bytes)", have);
            return DRV_MB_FAIL_BAD_REPLY;
        }
        snprintf(msg, msglen, "connection lost: %s", e ? strerror(e) : "closed by the slave");
        return DRV_MB_FAIL_CONNECTION;
    }
}
