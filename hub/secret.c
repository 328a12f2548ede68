/* hub/secret.c — secrets (passwords, tokens) read from the files the
 * configuration names: never inline, never logged, wiped after use. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hub/secret.h"

/* Overwrite a secret before its memory is given back. */
void hub_secret_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* One stat for both checks; secret adds the mode rule. */
static int check_file(const char *what, const char *path, bool secret, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == EACCES)
            return 0; /* maybe readable by the user the service runs as */
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", what, path);
        return -1;
    }
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        snprintf(err, errlen,
                 "%s %s: readable by others (mode %04o): a secret file must be for its owner "
                 "only: chmod 600 %s",
                 what, path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

int hub_file_check(const char *what, const char *path, char *err, size_t errlen)
{
    return check_file(what, path, false, err, errlen);
}

int hub_secret_check(const char *what, const char *path, char *err, size_t errlen)
{
    return check_file(what, path, true, err, errlen);
}

/* Read a secret file into buf (NUL-terminated, trailing whitespace cut).
 * Returns 0, or -1 with a message naming the file (never its contents). */
int hub_secret_read(const char *what, const char *path, char *buf, size_t size, char *err,
                    size_t errlen)
{
    FILE *f = NULL;
    size_t n;
    int rc = -1;

    if (hub_secret_check(what, path, err, errlen) != 0)
        return -1;
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s %s: read failed", what, path);
        goto out;
    }
    if (n == size - 1 && fgetc(f) != EOF) {
        snprintf(err, errlen, "%s %s: longer than %zu bytes", what, path, size - 1);
        goto out;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = 0;
    if (n == 0) {
        snprintf(err, errlen, "%s %s: empty", what, path);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            snprintf(err, errlen, "%s %s: control character at byte %zu", what, path, i);
            goto out;
        }
    }
    rc = 0;
out:
    fclose(f);
    if (rc != 0)
        hub_secret_wipe(buf, size);
    return rc;
}
