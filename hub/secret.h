/* hub/secret.h — secrets read from files named in the configuration
 * (password_file, token_file): never inline, never logged. */
#ifndef HUB_SECRET_H
#define HUB_SECRET_H

#include <stddef.h>

/* Overwrite a secret before its memory is given back. */
void hub_secret_wipe(void *p, size_t n);
/* A secret file that could be opened: present and a regular file (a FIFO
 * or a device would block or never end); a file we may not stat is let
 * through (maybe readable by the service's user). what names the key in
 * messages. Returns 0 or -1 with a message in err. */
int hub_secret_check(const char *what, const char *path, char *err, size_t errlen);
/* Read a secret file into buf (NUL-terminated, trailing whitespace cut).
 * Returns 0, or -1 with a message naming the file (never its contents). */
int hub_secret_read(const char *what, const char *path, char *buf, size_t size, char *err,
                    size_t errlen);

#endif
