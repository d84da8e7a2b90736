/* The backup folder of a training run: file names after the cfg, the one-run-at-a-time
 * lock, a killed run's temporary files, backups (weights + optimiser state).  When to
 * write a backup: train.c. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    if (!f->base) return lwf_fail(err, "out of memory");
    return ensure_dir(dir, 0, err);
}

const char *lwf_folder_path(lwf_folder *f, const char *suffix)
{
    snprintf(f->path, sizeof f->path, "%s/%s%s", f->dir, f->base, suffix);
    return f->path;
}

/* One run per backup folder: a POSIX lock on <backup>/.lwf-train.lock, which the kernel
 * drops when the process ends however it ends, so a killed run leaves nothing stuck. */
static int lock_folder(lwf_folder *f, const char *cfg, lwf_err *err)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/.lwf-train.lock", f->dir);
    int fd = open(lp, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return lwf_fail(err, "%s: cannot create the lock file: %s", lp, strerror(errno));
    struct flock fl = {0};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        char who[512] = "";
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = '\0';
        char *nl = strchr(who, '\n');
        if (nl) *nl = '\0';
        close(fd);
        return lwf_fail(err, "%s: another lwf train is writing to this backup folder (%s); wait for it or use "
                             "another backup= folder",
                        f->dir, who[0] ? who : "unknown run");
    }
    char who[4400];
    int n = snprintf(who, sizeof who, "pid %ld, cfg %s, started %ld\n", (long)getpid(), cfg, (long)time(NULL));
    if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n) {
        close(fd);
        return lwf_fail(err, "%s: cannot write the lock file", lp);
    }
    f->lockfd = fd;
    return 0;
}

/* Holding the lock, any temporary file left in the folder is a killed run's: removed. */
static void remove_temporaries(const lwf_folder *f)
{
    char p[4200];
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (!tmp || strspn(tmp + 5, "0123456789") != strlen(tmp + 5) || !tmp[5]) continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (unlink(p) == 0) fprintf(stderr, "removed %s, left by a run that was killed\n", p);
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
    if (st) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.state", lwf_folder_path(f, suffix));
        if (lwf_state_save(net, st, sp, err)) return -1;
    }
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
}
