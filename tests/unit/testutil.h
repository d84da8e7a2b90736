/* Helpers shared by the unit tests: temporary files, running ./darknet, small networks.
 * Every helper fails the calling test (cmocka) instead of returning garbage. */
#ifndef LWF_TESTUTIL_H
#define LWF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
/* Loads a cfg that must parse; fails the test with the error otherwise. */
lwf_model *tu_load(const char *cfg, int batch);
/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill(float *x, size_t n, unsigned *state, float lo, float hi);

#endif
