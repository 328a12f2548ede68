/* firmware/privilege.h — started as root, the daemon gives root up: it runs
 * as hub.user (default "cityhub") with that user's groups (dialout for the
 * serial ports) and no capability at all.
 *
 *   ch_priv_prepare  before anything else: looks the user up (a missing
 *                    one stops the start), sets no_new_privs and empties
 *                    the capability bounding set (while there is one
 *                    thread), creates the journal's directory and the
 *                    dead-letter directory beside it and makes them the
 *                    user's;
 *   ch_priv_drop     once what needs root is done (the status port bound,
 *                    secrets read, files opened), before the threads start:
 *                    what start-up created in those directories becomes the
 *                    user's too, then initgroups, setresgid, setresuid, and
 *                    a check that root cannot be had back.
 *
 * Not root at start: both do nothing. hub.user: root keeps root (with a
 * warning at every start). */
#ifndef CH_PRIVILEGE_H
#define CH_PRIVILEGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "firmware/config.h"

#define CH_USER_MAX 33

struct ch_priv {
    bool drop; /* root now, hub.user to become */
    uid_t uid;
    gid_t gid;
    char user[CH_USER_MAX];
    const struct ch_config *c;
};

/* Returns 0, or -1 with a message naming hub.user in err. */
int ch_priv_prepare(const struct ch_config *c, struct ch_priv *p, char *err, size_t errlen);
/* Returns 0 (dropped, or nothing to do), or -1 with err. */
int ch_priv_drop(const struct ch_priv *p, char *err, size_t errlen);

/* `cityhub run --user NAME`: NAME instead of hub.user. */
void ch_priv_override_user(const char *name);

/* A user name hub.user accepts: letters, digits, '_', '-', '.', not starting
 * with '-' or a digit, at most 32 characters. Returns 0 or -1 with err. */
int ch_priv_check_name(const char *name, char *err, size_t errlen);

#endif
