/* The backup folder of a training run: file names after the cfg, the one-run-at-a-time
 * lock, a killed run's temporary files, backups (weights + optimiser state).  When to
 * write a backup: train.c. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every file a run writes in its folder is <base> + one of these (the table the cleanup of
 * a killed run's temporary files matches; a new output is one more row).  "_N.weights", the
 * epoch weights, is matched apart. */
static const char *const outputs[] = {
    ".backup", ".backup.state", ".weights", ".teacher.weights", ".teacher", ".log.csv",
    ".chart.png", /* -valid N */
    NULL};

/* Folders no run may write into: the root itself, and the system's own trees (a folder
 * under them too: subtree = 1). */
static const struct {
    const char *path;
    int subtree;
} system_folders[] = {{"/", 0},     {"/bin", 1},   {"/boot", 1},   {"/dev", 1},  {"/etc", 1},  {"/lib", 1},
                      {"/lib32", 1}, {"/lib64", 1}, {"/libx32", 1}, {"/proc", 1}, {"/sbin", 1}, {"/sys", 1},
                      {"/usr", 1},   {"/run", 0},   {"/var", 0},    {NULL, 0}};

/* A newly allocated "a/b" (or "ab" with sep = NULL). */
static char *join(const char *a, const char *sep, const char *b)
{
    size_t n = strlen(a) + (sep ? strlen(sep) : 0) + strlen(b) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, sep ? sep : "", b);
    return p;
}

/* dir resolved (links and dots), also when it does not exist yet: its parent's resolved
 * path and its own name.  NULL when neither resolves (mkdir will say why). */
static char *resolve(const char *dir)
{
    char *real = realpath(dir, NULL);
    if (real) return real;
    char *a = lwf_strdup(dir), *b = lwf_strdup(dir);
    char *parent = a && b ? realpath(dirname(a), NULL) : NULL;
    char *out = parent ? join(parent, strcmp(parent, "/") ? "/" : "", basename(b)) : NULL;
    free(parent);
    free(a);
    free(b);
    return out;
}

/* A backup folder that is "/" or a system folder is refused: a run writes and removes files
 * there. */
static int refuse_system_folder(const char *dir, lwf_err *err)
{
    char *r = resolve(dir);
    if (!r) return 0;
    int bad = 0;
    for (int i = 0; system_folders[i].path && !bad; ++i) {
        const char *s = system_folders[i].path;
        size_t n = strlen(s);
        bad = strcmp(r, s) == 0 || (system_folders[i].subtree && strncmp(r, s, n) == 0 && r[n] == '/');
    }
    int rc = bad ? lwf_fail(err, "backup=%s: %s is %s, not a folder for training files: give backup= a folder "
                                 "of your own",
                            dir, r, strcmp(r, "/") == 0 ? "the root folder" : "a system folder")
                 : 0;
    free(r);
    return rc;
}

/* With create = 0, only checks that dir is a folder or does not exist yet. */
static int ensure_dir(const char *dir, int create, lwf_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : lwf_fail(err, "%s: exists and is not a folder", dir);
    if (create && mkdir(dir, 0755) != 0)
        return lwf_fail(err, "%s: cannot create backup folder: %s", dir, strerror(errno));
    return 0;
}

int lwf_folder_init(lwf_folder *f, const char *dir, const char *cfg, lwf_err *err)
{
    f->dir = dir;
    f->base = lwf_path_stem(cfg);
    f->cap = f->base ? strlen(dir) + strlen(f->base) + LWF_FOLDER_SUFFIX_MAX + 2 : 0;
    f->path = f->base ? malloc(f->cap) : NULL;
    if (!f->path) return lwf_fail(err, "out of memory");
    if (refuse_system_folder(dir, err)) return -1;
    return ensure_dir(dir, 0, err);
}

const char *lwf_folder_path(lwf_folder *f, const char *suffix)
{
    snprintf(f->path, f->cap, "%s/%s%s", f->dir, f->base, suffix);
    return f->path;
}

/* Who holds the lock, as the lock file says (its first line, at most 511 bytes). */
static void lock_holder(int fd, char *who, size_t cap)
{
    ssize_t n = pread(fd, who, cap - 1, 0);
    who[n > 0 ? n : 0] = '\0';
    char *nl = strchr(who, '\n');
    if (nl) *nl = '\0';
}

/* One run per backup folder: a POSIX lock on <backup>/.lwf-train.lock, which the kernel
 * drops when the process ends however it ends, so a killed run leaves nothing stuck.  The
 * lock file is opened as a regular file only (a FIFO would block, a link would let the
 * truncation below cut another file). */
static int lock_folder(lwf_folder *f, const char *cfg, lwf_err *err)
{
    char *lp = join(f->dir, "/", ".lwf-train.lock");
    if (!lp) return lwf_fail(err, "out of memory");
    int fd = lwf_open_regular_fd(lp, O_RDWR | O_CREAT | O_NOFOLLOW, "the lock file", err);
    struct flock fl = {0};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int rc = fd < 0 ? -1 : 0;
    if (!rc && fcntl(fd, F_SETLK, &fl) != 0) {
        char who[512];
        lock_holder(fd, who, sizeof who);
        rc = lwf_fail(err, "%s: another lwf train is writing to this backup folder (%s); wait for it or use "
                           "another backup= folder",
                      f->dir, who[0] ? who : "unknown run");
    }
    if (!rc) {
        char line[128];
        snprintf(line, sizeof line, "pid %ld, started %ld, cfg ", (long)getpid(), (long)time(NULL));
        char *who = join(line, NULL, cfg), *full = who ? join(who, NULL, "\n") : NULL;
        ssize_t n = full ? (ssize_t)strlen(full) : -1;
        if (!full || ftruncate(fd, 0) != 0 || pwrite(fd, full, (size_t)n, 0) != n)
            rc = lwf_fail(err, "%s: cannot write the lock file", lp);
        free(who);
        free(full);
    }
    if (rc && fd >= 0) close(fd);
    if (!rc) f->lockfd = fd;
    free(lp);
    return rc;
}

/* The pid of name when it is one of this cfg's temporary files, <base><output>.tmp.<pid>
 * (lwf_write_file_atomic's names), else 0. */
static long own_temporary(const lwf_folder *f, const char *name)
{
    size_t nb = strlen(f->base);
    const char *tmp = strrchr(name, '.');
    if (strncmp(name, f->base, nb) != 0 || !tmp || tmp - name < (long)nb + 4 || strncmp(tmp - 4, ".tmp.", 5) != 0)
        return 0;
    const char *digits = tmp + 1;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9) return 0;
    const char *out = name + nb;
    size_t no = (size_t)(tmp - 4 - out);
    int known = 0;
    for (int i = 0; outputs[i] && !known; ++i) known = strlen(outputs[i]) == no && strncmp(out, outputs[i], no) == 0;
    /* _<epoch>.weights */
    size_t d = no > 9 && out[0] == '_' ? strspn(out + 1, "0123456789") : 0;
    if (!known && !(d > 0 && 1 + d + 8 == no && strncmp(out + 1 + d, ".weights", 8) == 0)) return 0;
    return strtol(digits, NULL, 10);
}

/* Whether process pid may be writing: alive (kill(pid, 0) succeeds or is not permitted),
 * and not this run (which has written nothing yet: a name with its pid is a dead run's). */
static int writer_alive(long pid)
{
    if (pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Holding the lock: the temporary files this cfg's outputs leave when a run is killed, and
 * whose writer is dead, are removed.  Nothing else in the folder is touched. */
static void remove_temporaries(const lwf_folder *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = own_temporary(f, e->d_name);
        if (pid <= 0 || writer_alive(pid)) continue;
        char *p = join(f->dir, "/", e->d_name);
        if (p && unlink(p) == 0) fprintf(stderr, "removed %s, left by a run that was killed (pid %ld)\n", p, pid);
        free(p);
    }
    if (d) closedir(d);
}

int lwf_folder_prepare(lwf_folder *f, const char *cfg, lwf_err *err)
{
    if (ensure_dir(f->dir, 1, err) || lock_folder(f, cfg, err)) return -1;
    remove_temporaries(f);
    return 0;
}

int lwf_folder_save(lwf_folder *f, const network *net, const char *suffix, const lwf_state *st, lwf_err *err)
{
    char *sp = join(lwf_folder_path(f, suffix), NULL, ".state");
    if (!sp) return lwf_fail(err, "out of memory");
    int rc = st ? lwf_state_save(net, st, sp, err) : 0;
    free(sp);
    if (rc) return -1;
    const char *wp = lwf_folder_path(f, suffix);
    if (lwf_weights_save(net, wp, net->n, *net->seen, err)) return -1;
    fprintf(stderr, "Saving weights to %s\n", wp);
    return 0;
}

void lwf_folder_close(lwf_folder *f)
{
    if (f->lockfd >= 0) close(f->lockfd);
    f->lockfd = -1;
    free(f->base);
    f->base = NULL;
    free(f->path);
    f->path = NULL;
    f->cap = 0;
}
