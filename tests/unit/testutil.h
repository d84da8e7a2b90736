/* Helpers shared by the unit tests: temporary files, running ./darknet, small networks.
 * Every helper fails the calling test (cmocka) instead of returning garbage. */
#ifndef LWF_TESTUTIL_H
#define LWF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "lwf.h"

/* A fresh directory under $TMPDIR, removed by tu_rmdir. */
char *tu_tmpdir(void);
void tu_rmdir(const char *dir);
/* Writes text to dir/name and returns the malloc'd full path. */
char *tu_write(const char *dir, const char *name, const char *text);
/* Path of the repository root (LWF_ROOT or the current directory). */
const char *tu_root(void);
/* Runs a shell command; returns its exit status (-1 if it did not exit). */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command; returns its exit status, with its stdout (and its stderr if
 * with_stderr) in out (cap bytes, NUL-terminated). */
int tu_capture(char *out, size_t cap, int with_stderr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* fopen that fails the test, naming the file and why, when it cannot open it. */
FILE *tu_fopen(const char *path, const char *mode);
/* A file's size in bytes, or -1 if it does not exist. */
long long tu_file_size(const char *path);
/* Loads a cfg that must parse; fails the test with the error otherwise. */
lwf_model *tu_load(const char *cfg, int batch);
/* A whole file, NUL-terminated (malloc'd); *len (may be NULL) gets its size.  Fails the
 * test if it cannot be read. */
unsigned char *tu_slurp(const char *path, size_t *len);
/* Monotonic seconds, for the timings tests print. */
double tu_now(void);
/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill(float *x, size_t n, unsigned *state, float lo, float hi);

/* One task's row of `lwf valid -csv` ("task,images,top1,topk"). */
typedef struct {
    int images;
    double top1, topk;
} tu_valid_row;
/* Finds task's row in csv, the whole stdout of `lwf valid -csv`: 0 and *row; or -1, *row
 * untouched and why in msg (cap bytes), when the header is not the first line, a line is
 * malformed, or task has no row or two.  Never another task's row. */
int tu_valid_find(const char *csv, const char *task, tu_valid_row *row, char *msg, size_t cap);
/* Runs `$DARKNET lwf valid cfg weights -csv flags` (flags may be "") and returns task's
 * row; fails the test if the command fails or tu_valid_find finds no row for task. */
tu_valid_row tu_valid(const char *cfg, const char *weights, const char *flags, const char *task);
/* The last line stock `/usr/bin/darknet classifier valid datafile cfg weights` prints,
 * "I: top 1: x, top K: y" (I = images - 1, K = the .data's top=); fails the test if the
 * command fails or prints no such line. */
typedef struct {
    int images, k;
    double top1, topk;
} tu_stock_row;
tu_stock_row tu_stock_valid(const char *datafile, const char *cfg, const char *weights);

/* A synthetic image-classification task for training tests, written under dir:
 * images img/<prefix><i>_<label>.png (size x size, 3 channels), <name>.train.list,
 * <name>.valid.list (n_valid more images), <name>.labels and <name>.data (backup in
 * dir/backup-<name>).  Every image has a bright band across one quarter of the rows and
 * a tint; kind 0 is labelled by the band (top, high, low, bottom), kind 1 by the tint
 * (red, green, blue, grey). */
extern const char *const tu_labels[2][4]; /* [kind][label]: the names above */
char *tu_make_task(const char *dir, const char *name, int kind, int n_train, int n_valid, int size, unsigned seed);

/* A copy of a stock cfg at side x side, batch 1: [net] height/width/batch/subdivisions and
 * [crop] crop_height/crop_width rewritten, written to dir/name (path returned, malloc'd).
 * With must_shrink, a cfg without [net] height= and width= fails the test. */
char *tu_small_cfg(const char *dir, const char *src, const char *name, int side, int must_shrink);
/* Deterministic values for the convolutional layers [from, net->n): biases, batch-norm
 * scales and statistics, weights uniform in +-sqrt(gain / fan_in) (6: He's).  Fails on a
 * layer with weights of another type (it would be left unfilled). */
void tu_fill_convs(network *net, int from, float gain, unsigned seed);

#endif
