/* Interruptions: lwf train killed with SIGKILL at random moments (12 runs of 3000
 * iterations, each killed after 0.15-0.9 s) never leaves a partial
 * file and resumes to the end; a full disk (file-size limit) fails cleanly and keeps the
 * previous backup; a second run on the same backup folder is refused while the first
 * lives, and a killed run leaves no stuck lock.  The checked file helpers every output and
 * text input goes through (base/): links written through, FIFOs and devices refused, one
 * file under two names, a line with no end, a message longer than lwf_err. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "train/train.h"
#include "base/base.h"

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
            lwf_state_file sf;
            if (lwf_state_read(m->net, p, &sf, &err) != 0) fail_msg("%s", err.msg);
            lwf_state_file_free(&sf);
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


/* ---- checked files (base/files.c, base/util.c), no training: group "files" ---- */

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, fp);
    b[n] = '\0';
    fclose(fp);
    return b;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void test_write_through_symlink_keeps_the_link(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), target[4096], link[4096];
    path_in(target, sizeof target, dir, "target.cfg");
    path_in(link, sizeof link, dir, "link.cfg");
    free(tu_write(dir, "target.cfg", "old\n"));
    assert_int_equal(symlink(target, link), 0);
    lwf_err err;
    assert_int_equal(lwf_write_file_atomic(link, "new\n", 4, &err), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* still a link ... */
    char *got = slurp(target);
    assert_string_equal(got, "new\n"); /* ... and its target holds the new text */
    free(got);
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_write_refuses_fifo_device_dangling_link(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), fifo[4096], dangling[4096];
    path_in(fifo, sizeof fifo, dir, "fifo.cfg");
    path_in(dangling, sizeof dangling, dir, "dangling.cfg");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(symlink("/nonexistent/nowhere.cfg", dangling), 0);
    const char *refused[] = {fifo, dangling, "/dev/null", dir};
    for (int i = 0; i < 4; ++i) {
        lwf_err err = {""};
        assert_int_equal(lwf_write_file_atomic(refused[i], "x\n", 2, &err), -1);
        assert_non_null(strstr(err.msg, refused[i]));
        assert_non_null(strstr(err.msg, "refusing"));
    }
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(lstat(dangling, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(tu_sh("[ -z \"$(ls '%s' | grep tmp)\" ]", dir), 0); /* no temporary left */
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

/* lwf_open_regular_fd, as training opens its own files (log append, lock): a FIFO is refused
 * for writing and for reading-writing without waiting for the other end, a link with
 * O_NOFOLLOW is refused and its target left whole, a regular file opens. */
static void test_open_regular_fd_never_blocks_nor_follows(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), fifo[4096], link[4096], target[4096];
    path_in(fifo, sizeof fifo, dir, "log.csv");
    path_in(link, sizeof link, dir, ".lwf-train.lock");
    path_in(target, sizeof target, dir, "thesis.tex");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    free(tu_write(dir, "thesis.tex", "mine\n"));
    assert_int_equal(symlink(target, link), 0);
    const int flags[] = {O_WRONLY | O_APPEND, O_RDWR | O_CREAT, O_RDONLY};
    for (int i = 0; i < 3; ++i) {
        lwf_err err = {""};
        assert_int_equal(lwf_open_regular_fd(fifo, flags[i], "training log", &err), -1);
        assert_non_null(strstr(err.msg, fifo));
        assert_non_null(strstr(err.msg, "a FIFO"));
    }
    lwf_err err = {""};
    assert_int_equal(lwf_open_regular_fd(link, O_RDWR | O_CREAT | O_NOFOLLOW, "the lock file", &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
    char *got = slurp(target);
    assert_string_equal(got, "mine\n");
    free(got);
    int fd = lwf_open_regular_fd(target, O_WRONLY | O_APPEND, "training log", &err);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0); /* an ordinary descriptor once checked */
    close(fd);
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_write_never_follows_a_planted_temporary(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), out[4096], tmp[4200], victim[4096];
    path_in(out, sizeof out, dir, "out.weights");
    path_in(victim, sizeof victim, dir, "victim");
    free(tu_write(dir, "victim", "keep\n"));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    assert_int_equal(symlink(victim, tmp), 0);
    lwf_err err;
    assert_int_equal(lwf_write_file_atomic(out, "data\n", 5, &err), 0);
    char *v = slurp(victim), *o = slurp(out);
    assert_string_equal(v, "keep\n");
    assert_string_equal(o, "data\n");
    free(v);
    free(o);
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_same_file_by_resolved_name(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s/same", dir);
    snprintf(b, sizeof b, "%s/./same", dir);
    snprintf(c, sizeof c, "%s/other", dir);
    assert_int_equal(lwf_same_file(a, b), 1); /* neither exists yet */
    assert_int_equal(lwf_same_file(a, c), 0);
    lwf_file outs[] = {{a, "output cfg"}, {b, "output weights"}};
    lwf_err err;
    assert_int_equal(lwf_check_outputs(outs, 2, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "one file"));
    free(tu_write(dir, "in.cfg", "[net]\n"));
    char in[4096];
    snprintf(in, sizeof in, "%s/sub/../in.cfg", dir);
    assert_int_equal(tu_sh("mkdir '%s/sub'", dir), 0);
    lwf_file one[] = {{c, "output cfg"}}, ins[] = {{NULL, "absent"}, {in, "LwF cfg"}};
    assert_int_equal(lwf_check_outputs(one, 1, ins, 2, &err), 0);
    lwf_file over[] = {{in, "output cfg"}};
    assert_int_equal(lwf_check_outputs(over, 1, ins, 2, &err), -1);
    assert_non_null(strstr(err.msg, "an input"));
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_text_line_stops_at_the_limit(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), path[4096];
    path_in(path, sizeof path, dir, "long.list");
    /* 4 MiB of 'a' with no newline */
    assert_int_equal(tu_sh("head -c 4194304 /dev/zero | tr '\\0' a > '%s'", path), 0);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *buf = NULL;
    size_t cap = 0;
    lwf_err err;
    assert_int_equal(lwf_read_text_line(fp, &buf, &cap, path, 1, "list", &err), -2);
    assert_non_null(strstr(err.msg, ":1: line longer than"));
    assert_true(cap <= 65536 + 3); /* it read one line's worth, not the file */
    assert_true(ftell(fp) <= 65536 + 3);
    fclose(fp);
    free(buf);
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_text_line_drops_a_first_line_bom(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), path[4096];
    char *p = tu_write(dir, "bom.labels", "\xEF\xBB\xBFlblzero\n\xEF\xBB\xBFlblone\n");
    snprintf(path, sizeof path, "%s", p);
    free(p);
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    lwf_err err;
    assert_int_equal(lwf_read_text_line(fp, &buf, &cap, path, 1, "list", &err), 7);
    assert_string_equal(buf, "lblzero");
    /* only at the start of the file: line 2 keeps its bytes */
    assert_int_equal(lwf_read_text_line(fp, &buf, &cap, path, 2, "list", &err), 9);
    fclose(fp);
    free(buf);
    tu_sh("rm -rf '%s'", dir);
    free(dir);
}

static void test_long_message_keeps_its_reason(void **state)
{
    (void)state;
    char path[12001];
    memset(path, 'd', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    lwf_err err;
    lwf_fail(&err, "%s: cannot open cfg: %s", path, "No such file or directory");
    size_t n = strlen(err.msg);
    assert_true(n < sizeof err.msg);
    assert_string_equal(err.msg + n - strlen("cannot open cfg: No such file or directory"),
                        "cannot open cfg: No such file or directory");
    assert_non_null(strstr(err.msg, "[...]"));
    /* err->msg may be an argument of its own message */
    lwf_fail(&err, "short");
    lwf_fail(&err, "outer: %s", err.msg);
    assert_string_equal(err.msg, "outer: short");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_leaves_whole_files_and_resumes),
        cmocka_unit_test(test_full_disk_keeps_previous_backup),
        cmocka_unit_test(test_one_run_per_backup_folder),
        cmocka_unit_test(test_nan_loss_stops_the_run),
    };
    const struct CMUnitTest files[] = {
        cmocka_unit_test(test_write_through_symlink_keeps_the_link),
        cmocka_unit_test(test_write_refuses_fifo_device_dangling_link),
        cmocka_unit_test(test_write_never_follows_a_planted_temporary),
        cmocka_unit_test(test_open_regular_fd_never_blocks_nor_follows),
        cmocka_unit_test(test_same_file_by_resolved_name),
        cmocka_unit_test(test_text_line_stops_at_the_limit),
        cmocka_unit_test(test_text_line_drops_a_first_line_bom),
        cmocka_unit_test(test_long_message_keeps_its_reason),
    };
    int failed = cmocka_run_group_tests_name("files", files, NULL, NULL);
    return failed + cmocka_run_group_tests_name("durability", tests, setup, teardown);
}
