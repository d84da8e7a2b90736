/* Helpers shared by the unit tests (see testutil.h). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    assert_non_null(dir);
    snprintf(dir, 4096, "%s/lwf-test-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    return dir;
}

void tu_rmdir(const char *dir)
{
    if (dir && strstr(dir, "lwf-test-")) tu_sh("rm -rf '%s'", dir);
}

char *tu_write(const char *dir, const char *name, const char *text)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(path);
    sprintf(path, "%s/%s", dir, name);
    FILE *fp = tu_fopen(path, "w");
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

const char *tu_root(void)
{
    const char *r = getenv("LWF_ROOT");
    return r && *r ? r : ".";
}

int tu_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int tu_capture(char *out, size_t cap, int with_stderr, const char *fmt, ...)
{
    char cmd[8192], file[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(file, sizeof file, "%s/lwf-out-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(file);
    if (fd < 0) fail_msg("cannot create a temporary file in %s", file);
    close(fd);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = tu_sh("%s > '%s' %s", cmd, file, with_stderr ? "2>&1" : "2>/dev/null");
    FILE *fp = fopen(file, "r");
    if (!fp) fail_msg("cannot read back %s", file);
    size_t n = fread(out, 1, cap - 1, fp);
    out[n] = 0;
    fclose(fp);
    unlink(file);
    return rc;
}

FILE *tu_fopen(const char *path, const char *mode)
{
    FILE *fp = fopen(path, mode);
    if (!fp) fail_msg("cannot open %s (mode %s): %s", path, mode, strerror(errno));
    return fp;
}

/* One "name,images,top1,topk" line (len bytes, no newline) into name (cap) and *r: 0 or -1. */
static int valid_line(const char *line, size_t len, char *name, size_t cap, tu_valid_row *r)
{
    const char *comma = memchr(line, ',', len);
    char rest[256];
    size_t nl = comma ? (size_t)(comma - line) : 0;
    if (!comma || nl == 0 || nl >= cap || len - nl - 1 >= sizeof rest) return -1;
    memcpy(name, line, nl);
    name[nl] = 0;
    memcpy(rest, comma + 1, len - nl - 1);
    rest[len - nl - 1] = 0;
    int used = -1;
    if (sscanf(rest, "%d,%lf,%lf%n", &r->images, &r->top1, &r->topk, &used) != 3 || used != (int)strlen(rest))
        return -1;
    return 0;
}

int tu_valid_find(const char *csv, const char *task, tu_valid_row *row, char *msg, size_t cap)
{
    static const char header[] = "task,images,top1,topk\n";
    if (strncmp(csv, header, sizeof header - 1) != 0) {
        snprintf(msg, cap, "the first line is not the header task,images,top1,topk");
        return -1;
    }
    int found = 0, lineno = 1;
    tu_valid_row got = {0, 0, 0};
    for (const char *p = csv + sizeof header - 1; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char name[256];
        tu_valid_row r;
        ++lineno;
        if (valid_line(p, len, name, sizeof name, &r)) {
            snprintf(msg, cap, "line %d is not task,images,top1,topk: '%.*s'", lineno, (int)len, p);
            return -1;
        }
        if (strcmp(name, task) == 0 && found++) {
            snprintf(msg, cap, "task '%s' has a second row at line %d", task, lineno);
            return -1;
        }
        if (strcmp(name, task) == 0) got = r;
        p += eol ? len + 1 : len;
    }
    if (!found) {
        snprintf(msg, cap, "no row for task '%s'", task);
        return -1;
    }
    *row = got;
    return 0;
}

tu_valid_row tu_valid(const char *cfg, const char *weights, const char *flags, const char *task)
{
    const char *dn = getenv("DARKNET");
    if (!dn || !*dn) fail_msg("DARKNET (the binary under test) is not set");
    char out[16384], msg[512];
    int rc = tu_capture(out, sizeof out, 0, "'%s' lwf valid '%s' '%s' -csv %s", dn, cfg, weights, flags);
    if (rc != 0) fail_msg("lwf valid %s %s -csv %s: exit status %d", cfg, weights, flags, rc);
    tu_valid_row r;
    if (tu_valid_find(out, task, &r, msg, sizeof msg))
        fail_msg("lwf valid %s %s -csv %s: %s; it printed:\n%s", cfg, weights, flags, msg, out);
    return r;
}

tu_stock_row tu_stock_valid(const char *datafile, const char *cfg, const char *weights)
{
    char out[65536];
    int rc = tu_capture(out, sizeof out, 0, "/usr/bin/darknet classifier valid '%s' '%s' '%s'", datafile, cfg, weights);
    if (rc != 0) fail_msg("stock classifier valid %s %s %s: exit status %d", datafile, cfg, weights, rc);
    const char *last = NULL;
    for (const char *p = out; (p = strstr(p, ": top 1: ")); ++p) {
        last = p;
        while (last > out && last[-1] != '\n') --last;
    }
    tu_stock_row r;
    if (!last || sscanf(last, "%d: top 1: %lf, top %d: %lf", &r.images, &r.top1, &r.k, &r.topk) != 4)
        fail_msg("stock classifier valid %s %s %s printed no 'I: top 1: x, top K: y' line:\n%s", datafile, cfg,
                 weights, out);
    ++r.images; /* it prints the index of the last image */
    return r;
}

const char *const tu_labels[2][4] = {{"top", "high", "low", "bottom"}, {"red", "green", "blue", "grey"}};

long long tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

lwf_model *tu_load(const char *cfg, int batch)
{
    lwf_err err = {{0}};
    lwf_build_opts o = {batch, 1};
    lwf_model *m = lwf_model_load(cfg, &o, &err);
    if (!m) fail_msg("cannot load %s: %s", cfg, err.msg);
    return m;
}

void tu_fill(float *x, size_t n, unsigned *state, float lo, float hi)
{
    for (size_t i = 0; i < n; ++i) {
        *state = *state * 1103515245u + 12345u;
        x[i] = lo + (hi - lo) * (float)((*state >> 8) & 0xFFFFFF) / (float)0x1000000;
    }
}

static void draw(image im, int kind, int cls, unsigned *st)
{
    /* every image has a bright band across one quarter of the rows (unchanged by the
     * horizontal flip stock Darknet's trainer always applies) and a tint; kind 0 is
     * labelled by the band, kind 1 by the tint, the other feature is random */
    int n = im.w * im.h, q = im.h / 4;
    float pick[1];
    tu_fill(pick, 1, st, 0, 4);
    int other = (int)pick[0] & 3;
    int band = kind == 0 ? cls : other, tint = kind == 1 ? cls : other;
    tu_fill(im.data, (size_t)n * 3, st, 0, 0.3f);
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < n; ++i) {
            im.data[c * n + i] += (tint == 3 || c == tint) ? 0.3f : 0.05f;
            if (i / im.w >= band * q && i / im.w < (band + 1) * q) im.data[c * n + i] += 0.35f;
        }
}

char *tu_make_task(const char *dir, const char *name, int kind, int n_train, int n_valid, int size, unsigned seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/img", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/backup-%s", dir, name);
    mkdir(path, 0755);
    unsigned st = seed;
    for (int part = 0; part < 2; ++part) {
        snprintf(path, sizeof path, "%s/%s.%s.list", dir, name, part ? "valid" : "train");
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        int n = part ? n_valid : n_train;
        for (int i = 0; i < n; ++i) {
            int cls = i % 4;
            image im = make_image(size, size, 3);
            draw(im, kind, cls, &st);
            char base[4096];
            snprintf(base, sizeof base, "%s/img/%s%c%04d_%s", dir, name, part ? 'v' : 't', i, tu_labels[kind][cls]);
            save_image_options(im, base, PNG, 0);
            free_image(im);
            fprintf(fp, "%s.png\n", base);
        }
        assert_int_equal(fclose(fp), 0);
    }
    snprintf(path, sizeof path, "%s/%s.labels", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int c = 0; c < 4; ++c) fprintf(fp, "%s\n", tu_labels[kind][c]);
    assert_int_equal(fclose(fp), 0);
    char text[8192];
    snprintf(text, sizeof text, "classes=4\ntrain=%s/%s.train.list\nvalid=%s/%s.valid.list\nlabels=%s/%s.labels\n"
             "backup=%s/backup-%s\ntop=2\n", dir, name, dir, name, dir, name, dir, name);
    char fname[256];
    snprintf(fname, sizeof fname, "%s.data", name);
    return tu_write(dir, fname, text);
}

unsigned char *tu_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    if (fseek(fp, 0, SEEK_END) != 0) fail_msg("cannot seek in %s", path);
    long n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) fail_msg("cannot size %s", path);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    if (fread(b, 1, (size_t)n, fp) != (size_t)n) fail_msg("cannot read %s", path);
    fclose(fp);
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The key of a cfg line ("  height = 256" -> "height"), into key; 0 if not key=value. */
static int line_key(const char *line, size_t n, char *key, size_t cap)
{
    const char *eq = memchr(line, '=', n);
    if (!eq) return 0;
    size_t k = 0;
    for (const char *p = line; p < eq && k + 1 < cap; ++p)
        if (*p != ' ' && *p != '\t') key[k++] = *p;
    key[k] = 0;
    return k > 0 && key[0] != '#' && key[0] != ';';
}

/* A copy of a stock cfg at side x side, batch 1: [net] height/width/batch/subdivisions and
 * [crop] crop_height/crop_width rewritten.  Written to dir/name; returns the path.  With
 * must_shrink, a cfg without [net] height= and width= fails the test. */
char *tu_small_cfg(const char *dir, const char *src, const char *name, int side, int must_shrink)
{
    char *text = (char *)tu_slurp(src, NULL);
    size_t len = strlen(text);
    char *out = malloc(len + 1024);
    assert_non_null(out);
    size_t at = 0;
    int section = 0, crop = 0, seen_h = 0, seen_w = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
        const char *s = p;
        while (s < p + n && (*s == ' ' || *s == '\t')) ++s;
        if (*s == '[') {
            ++section;
            crop = strncmp(s, "[crop]", 6) == 0;
        }
        char key[64], repl[128] = "";
        if (line_key(p, n, key, sizeof key)) {
            if (section == 1 && (strcmp(key, "height") == 0 || strcmp(key, "width") == 0)) {
                snprintf(repl, sizeof repl, "%s=%d\n", key, side);
                seen_h |= key[0] == 'h';
                seen_w |= key[0] == 'w';
            } else if (section == 1 && (strcmp(key, "batch") == 0 || strcmp(key, "subdivisions") == 0)) {
                snprintf(repl, sizeof repl, "%s=1\n", key);
            } else if (crop && (strcmp(key, "crop_height") == 0 || strcmp(key, "crop_width") == 0)) {
                snprintf(repl, sizeof repl, "%s=%d\n", key, side);
            }
        }
        size_t rl = repl[0] ? strlen(repl) : n;
        memcpy(out + at, repl[0] ? repl : p, rl);
        at += rl;
        p += n;
    }
    out[at] = 0;
    if (must_shrink && (!seen_h || !seen_w)) fail_msg("%s: no height= or width= in [net]", src);
    char *path = tu_write(dir, name, out);
    free(text);
    free(out);
    return path;
}

/* Deterministic values for the convolutional layers [from, net->n) of net: biases,
 * batch-norm scales, rolling mean and (positive) rolling variance, and weights uniform in
 * +-sqrt(gain / fan_in) (gain 6: He's; darknet53 needs 3, else its 23 residual sums grow the
 * logits to ~1e4).  Fails on a layer type with weights that this does not fill. */
void tu_fill_convs(network *net, int from, float gain, unsigned seed)
{
    unsigned st = seed;
    for (int i = from; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type == CONNECTED || l->type == BATCHNORM)
            fail_msg("layer %d: type %d has weights the test does not fill", i, (int)l->type);
        if (l->type != CONVOLUTIONAL) continue;
        float s = sqrtf(gain / (float)(l->size * l->size * l->c / l->groups));
        tu_fill(l->biases, (size_t)l->n, &st, -0.1f, 0.1f);
        if (l->batch_normalize) {
            tu_fill(l->scales, (size_t)l->n, &st, 0.5f, 1.5f);
            tu_fill(l->rolling_mean, (size_t)l->n, &st, -0.1f, 0.1f);
            tu_fill(l->rolling_variance, (size_t)l->n, &st, 0.5f, 2.0f);
        }
        tu_fill(l->weights, (size_t)l->nweights, &st, -s, s);
    }
}
