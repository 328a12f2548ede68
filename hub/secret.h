/* hub/secret.h — secrets read from files named in the configuration
 * (password_file, token_file, key_file): never inline, never logged, for
 * their owner alone. */
#ifndef HUB_SECRET_H
#define HUB_SECRET_H

#include <stddef.h>

/* Overwrite a secret before its memory is given back. */
void hub_secret_wipe(void *p, size_t n);
/* A file named in the configuration that could be opened (a CA or a
 * certificate): present and a regular file (a FIFO or a device would block
 * or never end); a file we may not stat is let through (maybe readable by
 * the service's user). what names the key in messages. Returns 0 or -1
 * with a message in err. */
int hub_file_check(const char *what, const char *path, char *err, size_t errlen);
/* hub_file_check, and a secret (a password, a token, a private key) must be
 * for its owner alone: a file any group or other user may read, write or
 * run is refused, naming its mode (an attacker with a shell on the board,
 * or a backup, must not find it readable). */
int hub_secret_check(const char *what, const char *path, char *err, size_t errlen);
/* Read a secret file into buf (NUL-terminated, trailing whitespace cut).
 * Returns 0, or -1 with a message naming the file (never its contents). */
int hub_secret_read(const char *what, const char *path, char *buf, size_t size, char *err,
                    size_t errlen);

#endif
