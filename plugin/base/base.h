/* base/: what every other folder builds on: errors (lwf_fail, in lwf.h), strict number
 * parsing, text lines, atomic files, file hashes, seeded random streams, the libdarknet
 * declarations darknet.h lacks (dn.h).  Knows nothing of networks or cfgs. */
#ifndef LWF_BASE_H
#define LWF_BASE_H

#include <stdio.h>

#include "lwf.h"
#include "base/dn.h"

/* Strict conversions: the whole string must be a number; return 0 or -1. */
int lwf_parse_int(const char *s, long lo, long hi, int *out);
int lwf_parse_float(const char *s, double lo, double hi, float *out);

/* strdup that returns NULL on NULL. */
char *lwf_strdup(const char *s);

/* The file name of path without its directory and last extension ("cfg/x.cfg" -> "x";
 * a leading dot stays), newly allocated; NULL when out of memory. */
char *lwf_path_stem(const char *path);

/* Writes `len` bytes to path atomically: temporary file, fsync, rename. */
int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err);

/* 64-bit FNV-1a of a file's bytes folded into h; -1 if unreadable. */
int lwf_hash_file(const char *path, unsigned long long *h, lwf_err *err);

/* First index in p[0, n) that holds a NaN or an infinity, or n when all are finite. */
size_t lwf_first_nonfinite(const float *p, size_t n);

/* Reads the next line of a text file (a cfg, .data, list or labels file) into *buf, getline's
 * buffer, without its line end ("\n" or "\r\n"): returns its length, -1 at the end of the
 * file, or -2 with err set ("path:line: ...", `what` naming the kind of file) on a read error,
 * a line longer than 65536 characters, a NUL byte or another control character but tab. */
long lwf_read_text_line(FILE *fp, char **buf, size_t *cap, const char *path, int line, const char *what,
                        lwf_err *err);

/* splitmix64's output function (Steele, Lea and Flood, 2014): a well-mixed 64-bit value
 * of z, a bijection.  The one mixer of the plugin: rng.c's streams (z = state plus the
 * golden-ratio increment) and dropout_kernels.c's per-value uniforms. */
static inline unsigned long long lwf_mix64(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- random numbers: every draw comes from a seed and a position, so runs repeat
 * and background threads need no shared state ---- */
typedef struct lwf_rng {
    unsigned long long s;
} lwf_rng;

/* A stream for (seed, a, b): e.g. (seed, epoch, 0) for an epoch's order. */
lwf_rng lwf_rng_make(unsigned long long seed, unsigned long long a, unsigned long long b);
unsigned long long lwf_rng_next(lwf_rng *r);
float lwf_rng_uniform(lwf_rng *r, float lo, float hi);  /* [lo, hi) */
float lwf_rng_normal(lwf_rng *r);                         /* N(0, 1) */

#endif
