/* firmware/privilege.c — running as hub.user rather than root
 * (firmware/privilege.h). */
#include "firmware/privilege.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hub/log.h"

static const char *user_override;

void ch_priv_override_user(const char *name)
{
    user_override = name;
}

int ch_priv_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (n == 0 || n >= CH_USER_MAX) {
        snprintf(err, errlen, "\"%.40s\": a user name has 1 to %d characters", name,
                 CH_USER_MAX - 1);
        return -1;
    }
    if (name[0] == '-' || (name[0] >= '0' && name[0] <= '9')) {
        snprintf(err, errlen, "\"%s\": a user name starts with a letter or '_'", name);
        return -1;
    }
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.')) {
            snprintf(err, errlen, "\"%s\": a user name has letters, digits, '_', '-', '.'", name);
            return -1;
        }
    return 0;
}

/* mkdir -p path; what it creates gets mode and the user. Returns 0 or -1
 * with errno. */
static int make_dirs(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    char tmp[512];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, mode) == 0) {
            if (lchown(tmp, uid, gid) != 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = c;
        if (!c)
            return 0;
    }
}

/* Make path (not following a symbolic link) and, for a directory, what it
 * holds down to depth levels the user's. Returns 0 or -1 with errno. */
static int give(const char *path, uid_t uid, gid_t gid, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if ((st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode) || depth == 0)
        return 0;
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[1024];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        rc = give(sub, uid, gid, depth - 1);
    }
    closedir(dir);
    return rc;
}

/* DIR/deadletter beside the journal's directory: where outputs keep what
 * their servers refused, unless dead_letter names a file. */
static void deadletter_dir(const struct ch_config *c, char *dl, size_t len)
{
    char parent[256];
    snprintf(parent, sizeof(parent), "%s", c->hub.journal.path);
    snprintf(dl, len, "%s/deadletter", dirname(parent));
}

/* The journal's directory, the dead-letter directory beside it, each
 * output's dead_letter file and the log file, made the user's. */
static int give_all(const struct ch_priv *p, char *err, size_t errlen)
{
    const struct ch_hub_cfg *h = &p->c->hub;
    char dl[300];
    deadletter_dir(p->c, dl, sizeof(dl));
    const char *paths[CH_MAX_OUTPUTS + 3] = {h->journal.path, dl, h->log_file};
    size_t n = 3;
    for (size_t i = 0; i < p->c->noutputs; i++) {
        const struct drv_output_common *oc = p->c->outputs[i].cfg;
        if (oc->dead_letter[0])
            paths[n++] = oc->dead_letter;
    }
    for (size_t i = 0; i < n; i++)
        if (paths[i][0] && give(paths[i], p->uid, p->gid, 2) != 0) {
            snprintf(err, errlen, "hub.user: cannot make %s the user %s's: %s", paths[i], p->user,
                     strerror(errno));
            return -1;
        }
    return 0;
}

/* no_new_privs, and an empty bounding set: nothing the hub or a library
 * might execute gains a privilege. Per thread, so done while there is
 * one, and inherited by every thread started later. */
static int harden(char *err, size_t errlen)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) /* past the kernel's last capability */
                break;
            snprintf(err, errlen, "prctl(PR_CAPBSET_DROP, %d): %s", cap, strerror(errno));
            return -1;
        }
    return 0;
}

int ch_priv_prepare(const struct ch_config *c, struct ch_priv *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->c = c;
    if (geteuid() != 0)
        return 0;
    const char *name = user_override ? user_override : c->hub.user;
    const char *key = user_override ? "--user" : "hub.user";
    struct passwd pw, *found = NULL;
    char buf[4096];
    int e = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (!found && strcmp(name, "root") != 0) {
        snprintf(err, errlen,
                 "%s: %s: no user \"%s\" on this system%s%s (started as root, the hub runs as "
                 "hub.user: create it, e.g. `useradd --system --groups dialout %s`, or set "
                 "hub.user: root to keep root)",
                 c->path, key, name, e ? ": " : "", e ? strerror(e) : "", name);
        return -1;
    }
    if (!found || found->pw_uid == 0) {
        hub_warn("cityhub",
                 "running as root (%s: %s): the hub keeps every privilege; name an "
                 "unprivileged user in hub.user",
                 key, name);
        return 0;
    }
    p->drop = true;
    p->uid = found->pw_uid;
    p->gid = found->pw_gid;
    snprintf(p->user, sizeof(p->user), "%s", name);
    if (harden(err, errlen) != 0)
        return -1;
    if (make_dirs(c->hub.journal.path, 0750, p->uid, p->gid) != 0) {
        snprintf(err, errlen, "journal directory %s: %s", c->hub.journal.path, strerror(errno));
        return -1;
    }
    char dl[300];
    deadletter_dir(c, dl, sizeof(dl));
    if (mkdir(dl, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "dead-letter directory %s: %s", dl, strerror(errno));
        return -1;
    }
    return give_all(p, err, errlen);
}

/* Groups of the process, "dialout,cityhub", for the log. */
static void group_names(char *out, size_t len)
{
    gid_t g[64];
    int n = getgroups(64, g);
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < n && at < len; i++) {
        struct group gr, *found = NULL;
        char buf[1024];
        getgrgid_r(g[i], &gr, buf, sizeof(buf), &found);
        int k = found ? snprintf(out + at, len - at, "%s%s", at ? "," : "", found->gr_name)
                      : snprintf(out + at, len - at, "%s%u", at ? "," : "", (unsigned)g[i]);
        at += k > 0 ? (size_t)k : 0;
    }
}

int ch_priv_drop(const struct ch_priv *p, char *err, size_t errlen)
{
    if (!p->drop)
        return 0;
    if (give_all(p, err, errlen) != 0)
        return -1;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (initgroups(p->user, p->gid) != 0 || setresgid(p->gid, p->gid, p->gid) != 0 ||
        setresuid(p->uid, p->uid, p->uid) != 0) {
        snprintf(err, errlen, "hub.user: cannot become %s (uid %u, gid %u): %s", p->user,
                 (unsigned)p->uid, (unsigned)p->gid, strerror(errno));
        return -1;
    }
    /* The kernel clears the permitted and effective sets when every uid
     * leaves 0; check that, and that root does not come back. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct cap[2];
    memset(cap, 0, sizeof(cap));
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != p->uid ||
        eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid ||
        setuid(0) == 0 || seteuid(0) == 0 || syscall(SYS_capget, &hdr, cap) != 0 ||
        cap[0].permitted || cap[1].permitted || cap[0].effective || cap[1].effective) {
        snprintf(err, errlen, "hub.user: privileges still held after becoming %s", p->user);
        return -1;
    }
    char groups[256];
    group_names(groups, sizeof(groups));
    hub_info("cityhub", "running as %s (uid %u, gid %u, groups %s), no capabilities", p->user,
             (unsigned)p->uid, (unsigned)p->gid, groups[0] ? groups : "none");
    return 0;
}
