/* Interruptions: lwf train killed with SIGKILL at random moments (12 runs of 3000
 * iterations, each killed after 0.15-0.9 s) never leaves a partial
 * file and resumes to the end; a full disk (file-size limit) fails cleanly and keeps the
 * previous backup; a second run on the same backup folder is refused while the first
 * lives, and a killed run leaves no stuck lock. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "train/train.h"

#include <dirent.h>
#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *dir, *old_data, *new_data, *cfg;
    char old_weights[4096], backup[4096];
} fixture;

static const char *trunk =
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n";
static const char *head = "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n";
static const char *net =
    "[net]\nbatch=16\nheight=12\nwidth=12\nchannels=3\nmomentum=0.9\ndecay=0.0005\npolicy=poly\npower=4\n"
    "min_crop=12\nmax_crop=12\nlearning_rate=0.05\n";

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->old_data = tu_make_task(f->dir, "quad", 0, 64, 32, 12, 1);
    f->new_data = tu_make_task(f->dir, "tint", 1, 256, 32, 12, 2);
    char text[8192];
    snprintf(text, sizeof text, "%smax_batches=20\n%s%s[softmax]\n", net, trunk, head);
    char *stock = tu_write(f->dir, "quad.cfg", text);
    int rc = tu_sh("cd '%s' && /usr/bin/darknet classifier train '%s' '%s' > stock.log 2>&1", f->dir, f->old_data, stock);
    free(stock);
    snprintf(f->old_weights, sizeof f->old_weights, "%s/backup-quad/quad.weights", f->dir);
    snprintf(text, sizeof text,
             "%smax_batches=%d\nwarmup_batches=20\nflip=0\n%s[task]\nname=quad\ndata=%s\n%s[lwf_distill]\n"
             "[task]\nname=tint\ndata=%s\n%s[softmax]\n", net, 3000, trunk, f->old_data, head, f->new_data, head);
    f->cfg = tu_write(f->dir, "kill.cfg", text);
    snprintf(f->backup, sizeof f->backup, "%s/backup-tint", f->dir);
    *state = f;
    return rc;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (getenv("LWF_KEEP_TMP")) return 0;
    tu_rmdir(f->dir);
    free(f->dir);
    free(f->old_data);
    free(f->new_data);
    free(f->cfg);
    free(f);
    return 0;
}

/* Starts `darknet lwf train` in the background (file-size limit in bytes if > 0). */
static pid_t start_train(fixture *f, const char *weights, const char *x1, const char *x2, long fsize)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char logp[4200];
        snprintf(logp, sizeof logp, "%s/run.log", f->dir);
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        const char *dn = getenv("DARKNET");
        /* Darknet's reference kernels: the runs must last long enough to be killed at
         * random moments (the fast kernels finish this small network in a blink) */
        setenv("LWF_REFERENCE", "1", 1);
        execl(dn, dn, "lwf", "train", f->new_data, f->cfg, weights, "-seed", "9", "-backup", "3", "-quiet", x1, x2,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Every file in the backup folder is complete: weights of the right size that load,
 * states that load, whole log lines.  Temporary files (a killed write) are allowed
 * here; the next run removes them. */
static void check_backup_folder(fixture *f, lwf_model *m)
{
    DIR *d = opendir(f->backup);
    assert_non_null(d);
    struct dirent *e;
    long whole = 20 + 4 * (long)lwf_weights_count(m->net, m->net->n);
    long old = 20 + 4 * (long)lwf_weights_count(m->net, lwf_old_layers(m));
    while ((e = readdir(d))) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", f->backup, e->d_name);
        const char *n = e->d_name;
        size_t len = strlen(n);
        lwf_err err = {{0}};
        if (n[0] == '.' || strstr(n, ".tmp.")) continue;
        if (strstr(n, ".teacher.weights")) {
            assert_int_equal(tu_file_size(p), old);
        } else if (len > 6 && strcmp(n + len - 6, ".state") == 0) {
            lwf_state st;
            if (lwf_state_load(m->net, &st, p, &err) != 0) fail_msg("%s", err.msg);
        } else if (strstr(n, ".weights") || (len > 7 && strcmp(n + len - 7, ".backup") == 0)) {
            if (tu_file_size(p) != whole) fail_msg("%s has %lld bytes, a complete file %ld", p, tu_file_size(p), whole);
            if (lwf_weights_load(m->net, p, m->net->n, NULL, &err)) fail_msg("%s", err.msg);
        } else if (strstr(n, ".log.csv")) {
            size_t sz;
            FILE *fp = tu_fopen(p, "r");
            char line[4096];
            int lines = 0;
            while (fgets(line, sizeof line, fp)) {
                sz = strlen(line);
                if (sz == 0 || line[sz - 1] != '\n') fail_msg("%s: partial line %d", p, lines + 1);
                ++lines;
            }
            fclose(fp);
        }
    }
    closedir(d);
}

static void test_sigkill_leaves_whole_files_and_resumes(void **state)
{
    fixture *f = *state;
    lwf_model *m = tu_load(f->cfg, 1);
    char backup[4200];
    snprintf(backup, sizeof backup, "%s/kill.backup", f->backup);
    unsigned st = 12345;
    int kills = 0;
    for (int i = 0; i < 12; ++i) {
        const char *w = tu_file_size(backup) > 0 ? backup : f->old_weights;
        pid_t pid = start_train(f, w, NULL, NULL, 0);
        float ms;
        tu_fill(&ms, 1, &st, 150, 900);
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        if (wait_exit(pid) == -1) ++kills; /* it was still running: killed, not finished */
        check_backup_folder(f, m);
    }
    print_message("# %d of 12 runs killed while running\n", kills);
    assert_true(kills >= 10);
    /* resume from the newest backup and finish */
    pid_t pid = start_train(f, tu_file_size(backup) > 0 ? backup : f->old_weights, NULL, NULL, 0);
    assert_int_equal(wait_exit(pid), 0);
    check_backup_folder(f, m);
    char final[4200];
    snprintf(final, sizeof final, "%s/kill.weights", f->backup);
    assert_int_equal(tu_sh("'%s' lwf valid '%s' '%s' -csv > /dev/null 2>&1", getenv("DARKNET"), f->cfg, final), 0);
    /* the finished run removed every temporary file */
    assert_int_equal(tu_sh("ls '%s' | grep -q '\\.tmp\\.'", f->backup), 1);
    lwf_model_free(m);
}

/* With a file-size limit below a backup's size the run fails with a message and the
 * previous backup stays as it was. */
static void test_full_disk_keeps_previous_backup(void **state)
{
    fixture *f = *state;
    char backup[4200];
    snprintf(backup, sizeof backup, "%s/kill.backup", f->backup);
    /* a complete backup to resume from */
    pid_t pid = start_train(f, f->old_weights, "-stop", "5", 0);
    assert_int_equal(wait_exit(pid), 0);
    long size = tu_file_size(backup);
    assert_true(size > 0);
    char copy[4300];
    snprintf(copy, sizeof copy, "%s/before.bin", f->dir);
    assert_int_equal(tu_sh("cp '%s' '%s'", backup, copy), 0);
    assert_int_equal(tu_sh(": > '%s/run.log'", f->dir), 0);
    pid = start_train(f, backup, NULL, NULL, size / 2);
    assert_int_not_equal(wait_exit(pid), 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", backup, copy), 0);
    /* the failure itself, naming the file (a "resume: from .../kill.backup" line is there anyway) */
    assert_int_equal(tu_sh("grep -q 'kill\\.backup[.a-z]*: write failed' '%s/run.log'", f->dir), 0);
}

/* A second run on the same backup folder is refused, naming the first; once the first
 * is killed, the folder is free again. */
static void test_one_run_per_backup_folder(void **state)
{
    fixture *f = *state;
    pid_t first = start_train(f, f->old_weights, "-clear", NULL, 0);
    /* wait until the first run holds the lock (its pid is in the lock file) */
    char needle[64];
    snprintf(needle, sizeof needle, "pid %ld", (long)first);
    int held = 0;
    for (int i = 0; i < 200 && !held; ++i) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        held = tu_sh("grep -q '%s,' '%s/.lwf-train.lock' 2>/dev/null", needle, f->backup) == 0;
    }
    assert_true(held);
    char logp[4200];
    snprintf(logp, sizeof logp, "%s/run.log", f->dir);
    assert_int_equal(tu_sh(": > '%s'", logp), 0);
    pid_t second = start_train(f, f->old_weights, "-clear", NULL, 0);
    assert_int_not_equal(wait_exit(second), 0);
    assert_int_equal(tu_sh("grep -q 'another lwf train' '%s' && grep -q '%s' '%s'", logp, needle, logp), 0);
    kill(first, SIGKILL);
    wait_exit(first);
    pid_t third = start_train(f, f->old_weights, "-stop", "4", 0);
    assert_int_equal(wait_exit(third), 0);
}

/* A loss that becomes NaN or infinite stops the run, naming the iteration, the task and
 * the last good backup; no weights file with NaN is written. */
static void test_nan_loss_stops_the_run(void **state)
{
    fixture *f = *state;
    char *dir = f->dir;
    assert_int_equal(tu_sh("sed -e 's/^learning_rate=.*/learning_rate=100000000/' "
                           "-e 's/^warmup_learning_rate=.*//' -e 's/^max_batches=.*/max_batches=200/' "
                           "'%s' > '%s/nan.cfg'", f->cfg, dir), 0);
    char cfg[4200], out[4200];
    snprintf(cfg, sizeof cfg, "%s/nan.cfg", dir);
    snprintf(out, sizeof out, "%s/nan.out", dir);
    int rc = tu_sh("'%s' lwf train '%s' '%s' '%s' -seed 1 -quiet -backup 1 > '%s' 2>&1", getenv("DARKNET"),
                   f->new_data, cfg, f->old_weights, out);
    assert_int_not_equal(rc, 0);
    /* stopped either by a non-finite loss or by non-finite weights before a backup */
    assert_int_equal(tu_sh("grep -q 'iteration [0-9]*: .*task .*last good backup is .*nan.backup' '%s'", out), 0);
    char final[4200];
    snprintf(final, sizeof final, "%s/nan.weights", f->backup);
    assert_int_equal(tu_file_size(final), -1);
    /* every backup it left holds finite numbers */
    char bk[4200];
    snprintf(bk, sizeof bk, "%s/nan.backup", f->backup);
    if (tu_file_size(bk) > 0) {
        size_t n;
        FILE *fp = tu_fopen(bk, "rb");
        assert_int_equal(fseek(fp, 20, SEEK_SET), 0);
        float v;
        n = 0;
        while (fread(&v, 4, 1, fp) == 1) {
            if (!isfinite(v)) fail_msg("%s holds a non-finite value at float %zu", bk, n);
            ++n;
        }
        fclose(fp);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_leaves_whole_files_and_resumes),
        cmocka_unit_test(test_full_disk_keeps_previous_backup),
        cmocka_unit_test(test_one_run_per_backup_folder),
        cmocka_unit_test(test_nan_loss_stops_the_run),
    };
    return cmocka_run_group_tests_name("durability", tests, setup, teardown);
}
