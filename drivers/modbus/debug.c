/* drivers/modbus/debug.c — `debug: frames` on a bus: libmodbus's frame dump,
 * logged with a timestamp and the bus's name on stderr.
 *
 * libmodbus (modbus_set_debug) prints every frame with printf on stdout,
 * which would mix the buses and is not where a daemon's log goes. So the
 * first bus with debug on turns stdout into a pipe; the libmodbus calls of a
 * debugging bus are made holding one lock, and what they printed is read
 * back from the pipe after each poll and logged line by line under the bus's
 * name. Buses without debug never take the lock. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "drivers/modbus/modbus_priv.h"
#include "hub/log.h"

static pthread_mutex_t dbg_lock = PTHREAD_MUTEX_INITIALIZER;
static int dbg_read_fd = -1;

int drv_mb_debug_setup(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&dbg_lock);
    if (dbg_read_fd < 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
            snprintf(err, errlen, "debug: frames: pipe: %s", strerror(errno));
            rc = -1;
        } else {
            fflush(stdout);
            fcntl(p[0], F_SETFL, O_NONBLOCK);
            fcntl(p[1], F_SETFL, O_NONBLOCK); /* a full pipe drops dump text, never blocks */
            fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
            dup2(p[1], STDOUT_FILENO);
            close(p[1]);
            setvbuf(stdout, NULL, _IOLBF, 0);
            dbg_read_fd = p[0];
        }
    }
    pthread_mutex_unlock(&dbg_lock);
    return rc;
}

void drv_mb_debug_begin(int debug)
{
    if (debug != DRV_MB_DEBUG_OFF)
        pthread_mutex_lock(&dbg_lock);
}

void drv_mb_debug_end(int debug, const char *who)
{
    if (debug == DRV_MB_DEBUG_OFF)
        return;
    fflush(stdout);
    char buf[4096], line[1024];
    size_t ln = 0;
    ssize_t n;
    while (dbg_read_fd >= 0 && (n = read(dbg_read_fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || ln == sizeof(line) - 1) {
                line[ln] = '\0';
                if (ln > 0)
                    hub_log_write(HUB_LOG_DEBUG, who, "frames: %s", line);
                ln = 0;
                if (buf[i] == '\n')
                    continue;
            }
            line[ln++] = buf[i];
        }
    }
    if (ln > 0) {
        line[ln] = '\0';
        hub_log_write(HUB_LOG_DEBUG, who, "frames: %s", line);
    }
    pthread_mutex_unlock(&dbg_lock);
}
