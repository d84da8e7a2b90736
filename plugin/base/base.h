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

/* Writes `len` bytes to path atomically: temporary file (created, never followed), fsync,
 * rename.  Every output of the plugin goes through it: the file written is
 * lwf_output_target(path), so a symbolic link keeps pointing at its (new) target and a FIFO,
 * device or folder is refused. */
int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err);

/* ---- checked files (files.c) ---- */

/* Opens path for reading as `what` ("cfg", ".data file", "list"): anything but a regular
 * file (a FIFO, a device such as /dev/zero, a folder) is refused without blocking on it.
 * NULL with err set ("path: cannot ... <what>: reason"). */
FILE *lwf_open_regular(const char *path, const char *what, lwf_err *err);

/* The same for any open(2) flags (O_WRONLY | O_APPEND, O_RDWR | O_CREAT | O_NOFOLLOW, ...;
 * created with mode 0644): a file descriptor of a regular file, or -1 with err set.  Never
 * blocks on a FIFO, for reading or writing. */
int lwf_open_regular_fd(const char *path, int flags, const char *what, lwf_err *err);

/* The file an output named path is written to, newly allocated: path itself when it is
 * absent or a regular file, the target of a symbolic link that leads to a regular file.
 * NULL with err set for anything else (a FIFO, a device, a folder, a dangling link). */
char *lwf_output_target(const char *path, lwf_err *err);

/* 1 when a and b name one file: the same device and inode when both exist, else the same
 * resolved folder and name ("d/x" and "d/./x"). */
int lwf_same_file(const char *a, const char *b);

/* A file a command reads or writes, for lwf_check_outputs' messages ("LwF cfg"). */
typedef struct lwf_file {
    const char *path;    /* NULL entries of the inputs are skipped */
    const char *what;
} lwf_file;

/* Before a command writes anything: every output can be written (lwf_output_target), no
 * two outputs are one file, no output is one of the inputs.  0, or -1 with err set. */
int lwf_check_outputs(const lwf_file *out, int nout, const lwf_file *in, int nin, lwf_err *err);

/* "a FIFO", "a folder", ... for a stat mode. */
const char *lwf_file_kind(unsigned mode);

/* 64-bit FNV-1a of a file's bytes folded into h; -1 if unreadable. */
int lwf_hash_file(const char *path, unsigned long long *h, lwf_err *err);

/* First index in p[0, n) that holds a NaN or an infinity, or n when all are finite. */
size_t lwf_first_nonfinite(const float *p, size_t n);

/* Reads the next line of a text file (a cfg, .data, list or labels file) into *buf (malloc'd,
 * *cap bytes), without its line end ("\n" or "\r\n") and, on line 1, without a UTF-8 byte
 * order mark: returns its length, -1 at the end of the file, or -2 with err set
 * ("path:line: ...", `what` naming the kind of file) on a read error, a line longer than
 * 65536 characters (never read further: the buffer stays under 64 KiB + 2), a NUL byte or
 * another control character but tab. */
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
