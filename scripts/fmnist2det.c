/* fmnist2det: makes a Darknet detection set from one Fashion-MNIST split (idx .gz): canvases
 * holding several items at random scales and places, one YOLO label file per canvas, a list
 * and a manifest of every item; also verifies such a set from its files, and fits anchors.
 * Which sets to make, and where, is scripts/prepare_fashion_det.sh's business. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#define IMAGES_MAGIC 2051u
#define LABELS_MAGIC 2049u
#define SIDE 28           /* Fashion-MNIST images are SIDE x SIDE */
#define CANVAS 96         /* canvases are CANVAS x CANVAS, grayscale */
#define MIN_SCALE 20      /* an item's 28x28 frame is scaled to s x s, s in [MIN_SCALE, MAX_SCALE] */
#define MAX_SCALE 56
#define MAX_ITEMS 4       /* labelled items planned per canvas: 1..MAX_ITEMS */
#define MAX_EXTRA 2       /* unlabelled items planned in half the canvases: 1..MAX_EXTRA */
#define MAX_PLANNED (MAX_ITEMS + MAX_EXTRA)
#define TRIES 30          /* placements tried for one item before it is left out */
#define MAX_OVERLAP 0.2   /* intersection / smaller box area allowed between two items */
#define BRIGHT 40         /* an item's extent: its scaled pixels >= BRIGHT */
#define NOISE 16          /* background pixels are uniform in [0, NOISE), NOISE <= BRIGHT */
#define MIN_BOX 4         /* an item whose extent is narrower (px) is not used */
#define MAX_COUNT 100000u /* canvases per set (5-digit index) and items per split */

static const char *prog = "fmnist2det";

/* ---- errors ---------------------------------------------------------------------------- */

/* Prints "fmnist2det: <message>" on stderr; returns -1. */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* ---- random numbers: splitmix64, seeded per set ------------------------------------------ */

typedef struct { uint64_t s; } rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1 (multiply-shift; its bias is below 2^-32). */
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* The seed mixed with the set's name (FNV-1a), so every set draws its own sequence. */
static rng rng_for(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; ++p) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    rng r = {seed ^ h};
    rng_next(&r);
    return r;
}

/* ---- reading Fashion-MNIST ----------------------------------------------------------------- */

typedef struct {
    uint32_t n;           /* items */
    unsigned char *pix;   /* (n, SIDE, SIDE) */
    unsigned char *label; /* (n) classes 0..9 */
} split;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads exactly len bytes of what from g; an error names the file and the cause. */
static int read_exact(gzFile g, const char *path, void *buf, size_t len, const char *what)
{
    int n = gzread(g, buf, (unsigned)len);
    if (n == (int)len) return 0;
    int zerr = Z_OK;
    const char *m = gzerror(g, &zerr);
    if (n < 0 || zerr != Z_OK) return fail("%s: cannot read %s: %s", path, what, zerr == Z_ERRNO ? strerror(errno) : m);
    return fail("%s: truncated: wanted %zu bytes of %s, got %d", path, len, what, n);
}

/* Opens an idx file, checks its magic, reads its dimensions after the count; leaves the
 * stream at the data. dims: 0 for labels, 2 for images. Returns NULL on error. */
static gzFile open_idx(const char *path, uint32_t magic, int dims, uint32_t *count, uint32_t dim[2])
{
    gzFile g = gzopen(path, "rb");
    if (!g) {
        fail("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    unsigned char hdr[16];
    size_t len = 8 + 4 * (size_t)dims;
    if (read_exact(g, path, hdr, len, "header") != 0) goto fail;
    if (be32(hdr) != magic) {
        fail("%s: bad magic %u, expected %u", path, (unsigned)be32(hdr), (unsigned)magic);
        goto fail;
    }
    *count = be32(hdr + 4);
    if (*count == 0 || *count > MAX_COUNT) {
        fail("%s: item count %u outside 1..%u", path, (unsigned)*count, MAX_COUNT);
        goto fail;
    }
    for (int i = 0; i < dims; ++i) dim[i] = be32(hdr + 8 + 4 * i);
    return g;
fail:
    gzclose(g);
    return NULL;
}

/* Reads len bytes, then checks the stream ends there (which makes zlib check the CRC). */
static int read_body(gzFile g, const char *path, unsigned char *buf, size_t len)
{
    if (read_exact(g, path, buf, len, "data") != 0) return -1;
    unsigned char extra;
    int n = gzread(g, &extra, 1), zerr = Z_OK;
    const char *m = gzerror(g, &zerr);
    if (n > 0) return fail("%s: unexpected data after the last item", path);
    if (n < 0 || zerr != Z_OK) return fail("%s: bad end of file: %s", path, m);
    return 0;
}

/* Loads images and labels of one split; on error frees what it took and returns -1. */
static int load_split(const char *img_path, const char *lab_path, split *s)
{
    memset(s, 0, sizeof *s);
    uint32_t nlab = 0, nimg = 0, dim[2] = {0, 0};
    gzFile g = open_idx(lab_path, LABELS_MAGIC, 0, &nlab, dim);
    if (!g) return -1;
    s->label = malloc(nlab);
    int rc = s->label ? read_body(g, lab_path, s->label, nlab) : fail("out of memory");
    if (gzclose(g) != Z_OK && rc == 0) rc = fail("%s: error on close", lab_path);
    for (uint32_t i = 0; rc == 0 && i < nlab; ++i)
        if (s->label[i] > 9) rc = fail("%s: label %u of item %u is not in 0..9", lab_path, s->label[i], (unsigned)i);
    if (rc == 0 && !(g = open_idx(img_path, IMAGES_MAGIC, 2, &nimg, dim))) rc = -1;
    if (rc == 0) {
        if (nimg != nlab) rc = fail("%s: %u images but %s has %u labels", img_path, (unsigned)nimg, lab_path, (unsigned)nlab);
        else if (dim[0] != SIDE || dim[1] != SIDE)
            rc = fail("%s: images are %ux%u, expected %dx%d", img_path, (unsigned)dim[0], (unsigned)dim[1], SIDE, SIDE);
        else if (!(s->pix = malloc((size_t)nimg * SIDE * SIDE))) rc = fail("out of memory");
        else rc = read_body(g, img_path, s->pix, (size_t)nimg * SIDE * SIDE);
        if (gzclose(g) != Z_OK && rc == 0) rc = fail("%s: error on close", img_path);
    }
    s->n = nimg;
    if (rc != 0) {
        free(s->label);
        free(s->pix);
        memset(s, 0, sizeof *s);
    }
    return rc;
}

/* ---- atomic files -------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    int err;
} sink;

static void sink_write(void *ctx, void *data, int size)
{
    sink *s = ctx;
    if (s->err || size <= 0) return;
    errno = 0;
    if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->err = errno ? errno : EIO;
}

/* Opens <path>.tmp for writing; tmp receives its name (tmp holds strlen(path) + 5). */
static FILE *open_tmp(const char *path, char *tmp)
{
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) fail("%s: cannot create: %s", tmp, strerror(errno));
    return f;
}

/* Closes f, then renames tmp to path; err (an errno, or -1 already reported) discards it. */
static int commit_tmp(FILE *f, const char *tmp, const char *path, int err)
{
    errno = 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) == 0) return 0;
    if (err > 0) fail("%s: write failed: %s", tmp, strerror(err));
    else if (!err) fail("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    remove(tmp);
    return -1;
}

static int write_png(const char *path, char *tmp, const unsigned char *pix /* (CANVAS, CANVAS) */)
{
    FILE *f = open_tmp(path, tmp);
    if (!f) return -1;
    sink s = {f, 0};
    if (!stbi_write_png_to_func(sink_write, &s, CANVAS, CANVAS, 1, pix, CANVAS) && !s.err) {
        fail("%s: PNG encoder failed", tmp);
        s.err = -1;
    }
    return commit_tmp(f, tmp, path, s.err);
}

static int write_text(const char *path, char *tmp, const char *text)
{
    FILE *f = open_tmp(path, tmp);
    if (!f) return -1;
    size_t n = strlen(text);
    errno = 0;
    int err = fwrite(text, 1, n, f) == n ? 0 : (errno ? errno : EIO);
    return commit_tmp(f, tmp, path, err);
}

/* ---- one canvas ------------------------------------------------------------------------- */

typedef struct {
    int x0, y0, x1, y1; /* pixels, x1 and y1 exclusive */
} rect;

typedef struct {
    uint32_t src; /* index in the split */
    int cls;      /* Fashion-MNIST class */
    int id;       /* label id, -1 for an unlabelled item */
    int s;        /* scaled side */
    int px, py;   /* top-left corner of the scaled frame on the canvas */
    rect box;     /* the item's extent on the canvas */
} item;

/* Bilinear scale of a SIDE x SIDE frame to s x s (pixel centres aligned). */
static void scale_frame(const unsigned char *src, int s, unsigned char *dst /* (s, s) */)
{
    for (int y = 0; y < s; ++y) {
        double fy = (y + 0.5) * SIDE / s - 0.5;
        fy = fy < 0 ? 0 : fy > SIDE - 1 ? SIDE - 1 : fy;
        int y0 = (int)fy, y1 = y0 + 1 < SIDE ? y0 + 1 : y0;
        double wy = fy - y0;
        for (int x = 0; x < s; ++x) {
            double fx = (x + 0.5) * SIDE / s - 0.5;
            fx = fx < 0 ? 0 : fx > SIDE - 1 ? SIDE - 1 : fx;
            int x0 = (int)fx, x1 = x0 + 1 < SIDE ? x0 + 1 : x0;
            double wx = fx - x0;
            double v = (1 - wy) * ((1 - wx) * src[y0 * SIDE + x0] + wx * src[y0 * SIDE + x1]) +
                       wy * ((1 - wx) * src[y1 * SIDE + x0] + wx * src[y1 * SIDE + x1]);
            dst[y * s + x] = (unsigned char)(v + 0.5);
        }
    }
}

/* The tight box of the pixels >= BRIGHT of an s x s image, relative to it; 0 if it is at
 * least MIN_BOX wide and high, -1 otherwise. */
static int extent(const unsigned char *img /* (s, s) */, int s, rect *r)
{
    rect e = {s, s, 0, 0};
    for (int y = 0; y < s; ++y)
        for (int x = 0; x < s; ++x)
            if (img[y * s + x] >= BRIGHT) {
                if (x < e.x0) e.x0 = x;
                if (x + 1 > e.x1) e.x1 = x + 1;
                if (y < e.y0) e.y0 = y;
                if (y + 1 > e.y1) e.y1 = y + 1;
            }
    *r = e;
    return e.x1 - e.x0 >= MIN_BOX && e.y1 - e.y0 >= MIN_BOX ? 0 : -1;
}

static long area(rect r) { return (long)(r.x1 - r.x0) * (r.y1 - r.y0); }

/* Whether box b overlaps any of the n placed items by more than MAX_OVERLAP of the smaller. */
static int crowded(rect b, const item *placed, int n)
{
    for (int i = 0; i < n; ++i) {
        rect o = placed[i].box;
        int w = (b.x1 < o.x1 ? b.x1 : o.x1) - (b.x0 > o.x0 ? b.x0 : o.x0);
        int h = (b.y1 < o.y1 ? b.y1 : o.y1) - (b.y0 > o.y0 ? b.y0 : o.y0);
        long small = area(b) < area(o) ? area(b) : area(o);
        if (w > 0 && h > 0 && (double)w * h > MAX_OVERLAP * small) return 1;
    }
    return 0;
}

/* Tries to place item it (src, cls, id set) at a random scale and place among the n placed;
 * on success draws it into canvas (max blend) and returns 1, else 0. */
static int place(const split *sp, item *it, const item *placed, int n, unsigned char *canvas, rng *r)
{
    unsigned char scaled[MAX_SCALE * MAX_SCALE];
    for (int t = 0; t < TRIES; ++t) {
        it->s = MIN_SCALE + (int)rng_below(r, MAX_SCALE - MIN_SCALE + 1);
        it->px = (int)rng_below(r, (uint32_t)(CANVAS - it->s + 1));
        it->py = (int)rng_below(r, (uint32_t)(CANVAS - it->s + 1));
        scale_frame(sp->pix + (size_t)it->src * SIDE * SIDE, it->s, scaled);
        rect e;
        if (extent(scaled, it->s, &e) != 0) return 0;
        it->box = (rect){it->px + e.x0, it->py + e.y0, it->px + e.x1, it->py + e.y1};
        if (crowded(it->box, placed, n)) continue;
        for (int y = 0; y < it->s; ++y)
            for (int x = 0; x < it->s; ++x) {
                unsigned char *c = canvas + (it->py + y) * CANVAS + it->px + x;
                unsigned char v = scaled[y * it->s + x];
                if (v > *c) *c = v;
            }
        return 1;
    }
    return 0;
}

/* ---- one set ------------------------------------------------------------------------------ */

/* A class range lo..hi of a split, its items shuffled, drawn in turn (reshuffled when spent). */
typedef struct {
    uint32_t *idx, n, next;
    int lo, hi;
} pool;

static int pool_init(pool *p, const split *sp, int lo, int hi)
{
    p->lo = lo;
    p->hi = hi;
    p->n = p->next = 0;
    if (!(p->idx = malloc(sp->n * sizeof *p->idx))) return fail("out of memory");
    for (uint32_t i = 0; i < sp->n; ++i)
        if (sp->label[i] >= lo && sp->label[i] <= hi) p->idx[p->n++] = i;
    if (p->n == 0) return fail("no item of classes %d-%d in the split", lo, hi);
    p->next = p->n; /* shuffled at the first draw */
    return 0;
}

static uint32_t pool_draw(pool *p, rng *r)
{
    if (p->next == p->n) {
        for (uint32_t i = p->n - 1; i > 0; --i) {
            uint32_t j = rng_below(r, i + 1), t = p->idx[i];
            p->idx[i] = p->idx[j];
            p->idx[j] = t;
        }
        p->next = 0;
    }
    return p->idx[p->next++];
}

typedef struct {
    const split *sp;
    const char *out, *set; /* writes out/images/set/set-NNNNN.png, out/labels/set/..txt */
    uint32_t count;
    pool lab, extra;       /* labelled classes (ids = class - lab.lo); unlabelled ones (n = 0: none) */
    FILE *list, *manifest;
    char *path, *tmp;      /* scratch paths */
    size_t cap;
} gen;

/* Plans, places and renders canvas k; writes its PNG and label file, its list and manifest
 * lines. */
static int make_canvas(gen *g, uint32_t k, rng *r)
{
    item plan[MAX_PLANNED], placed[MAX_PLANNED];
    int np = 0, n = 0;
    int nl = 1 + (int)rng_below(r, MAX_ITEMS);
    int ne = g->extra.n && rng_below(r, 2) ? 1 + (int)rng_below(r, MAX_EXTRA) : 0;
    for (int i = 0; i < nl + ne; ++i) {
        pool *p = i < nl ? &g->lab : &g->extra;
        plan[np].src = pool_draw(p, r);
        plan[np].cls = g->sp->label[plan[np].src];
        plan[np].id = i < nl ? plan[np].cls - g->lab.lo : -1;
        np++;
    }
    for (int i = np - 1; i > 1; --i) { /* the first stays labelled: it is always placed */
        int j = 1 + (int)rng_below(r, (uint32_t)i);
        item t = plan[i];
        plan[i] = plan[j];
        plan[j] = t;
    }
    unsigned char canvas[CANVAS * CANVAS];
    for (int i = 0; i < CANVAS * CANVAS; ++i) canvas[i] = (unsigned char)rng_below(r, NOISE);
    for (int i = 0; i < np; ++i)
        if (place(g->sp, &plan[i], placed, n, canvas, r)) placed[n++] = plan[i];
    char labels[MAX_PLANNED * 64] = "", *lp = labels;
    for (int i = 0; i < n; ++i) {
        rect b = placed[i].box;
        fprintf(g->manifest, "%u\t%d\t%u\t%d\t%d\t%d\t%d\t%d\t%d\n", (unsigned)k, i, (unsigned)placed[i].src,
                placed[i].cls, placed[i].id, b.x0, b.y0, b.x1, b.y1);
        if (placed[i].id < 0) continue;
        lp += sprintf(lp, "%d %.6f %.6f %.6f %.6f\n", placed[i].id, (b.x0 + b.x1) / 2.0 / CANVAS,
                      (b.y0 + b.y1) / 2.0 / CANVAS, (double)(b.x1 - b.x0) / CANVAS, (double)(b.y1 - b.y0) / CANVAS);
    }
    snprintf(g->path, g->cap, "%s/labels/%s/%s-%05u.txt", g->out, g->set, g->set, (unsigned)k);
    if (write_text(g->path, g->tmp, labels) != 0) return -1;
    snprintf(g->path, g->cap, "%s/images/%s/%s-%05u.png", g->out, g->set, g->set, (unsigned)k);
    if (write_png(g->path, g->tmp, canvas) != 0) return -1;
    fprintf(g->list, "%s\n", g->path);
    return 0;
}

/* Parses "lo-hi" (0 <= lo <= hi <= 9) or, when dash_ok, "-" for none (*lo = -1). */
static int parse_range(const char *s, int dash_ok, int *lo, int *hi)
{
    if (dash_ok && strcmp(s, "-") == 0) return *lo = *hi = -1, 0;
    if (strlen(s) == 3 && s[0] >= '0' && s[0] <= '9' && s[1] == '-' && s[2] >= s[0] && s[2] <= '9') {
        *lo = s[0] - '0';
        *hi = s[2] - '0';
        return 0;
    }
    return fail("bad class range '%s' (want lo-hi, digits, lo <= hi%s)", s, dash_ok ? ", or -" : "");
}

/* Parses a decimal in [lo, hi]. */
static int parse_u64(const char *s, const char *what, uint64_t lo, uint64_t hi, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || x < lo || x > hi)
        return fail("bad %s '%s' (want an integer in %llu..%llu)", what, s, (unsigned long long)lo,
                    (unsigned long long)hi);
    *v = x;
    return 0;
}

/* Opens out/<set><ext>.tmp for the list or the manifest. */
static FILE *open_index(gen *g, const char *ext)
{
    snprintf(g->path, g->cap, "%s/%s%s", g->out, g->set, ext);
    return open_tmp(g->path, g->tmp);
}

static int close_index(gen *g, FILE *f, const char *ext, int err)
{
    snprintf(g->path, g->cap, "%s/%s%s", g->out, g->set, ext);
    sprintf(g->tmp, "%s.tmp", g->path);
    return commit_tmp(f, g->tmp, g->path, err);
}

static int gen_set(gen *g, uint64_t seed)
{
    rng r = rng_for(seed, g->set);
    int rc = 0;
    g->list = open_index(g, ".list");
    g->manifest = g->list ? open_index(g, ".manifest") : NULL;
    if (!g->manifest) rc = -1;
    else fprintf(g->manifest, "# image\titem\tsrc\tclass\tid\tx0\ty0\tx1\ty1\n");
    for (uint32_t k = 0; rc == 0 && k < g->count; ++k) rc = make_canvas(g, k, &r);
    int err = rc ? -1 : 0;
    if (g->manifest && (ferror(g->manifest) || close_index(g, g->manifest, ".manifest", err) != 0)) rc = -1;
    if (g->list && (ferror(g->list) || close_index(g, g->list, ".list", rc ? -1 : 0) != 0)) rc = -1;
    if (rc == 0) fprintf(stderr, "%s: wrote %u canvases of set %s to %s\n", prog, (unsigned)g->count, g->set, g->out);
    return rc;
}

static int cmd_gen(int argc, char **argv)
{
    if (argc != 10)
        return fail("usage: %s gen <images.gz> <labels.gz> <out> <set> <count> <seed> <lo-hi> <lo-hi|->", prog);
    gen g = {.out = argv[4], .set = argv[5]};
    uint64_t count, seed;
    int lo, hi, elo, ehi;
    if (parse_u64(argv[6], "count", 1, MAX_COUNT - 1, &count) || parse_u64(argv[7], "seed", 0, UINT64_MAX, &seed) ||
        parse_range(argv[8], 0, &lo, &hi) || parse_range(argv[9], 1, &elo, &ehi))
        return -1;
    if (elo >= 0 && elo <= hi && ehi >= lo) return fail("unlabelled classes %s overlap labelled %s", argv[9], argv[8]);
    split sp;
    if (load_split(argv[2], argv[3], &sp) != 0) return -1;
    g.sp = &sp;
    g.count = (uint32_t)count;
    g.cap = 2 * strlen(g.out) + 3 * strlen(g.set) + 64;
    g.path = malloc(g.cap);
    g.tmp = malloc(g.cap + 8);
    int rc = g.path && g.tmp ? 0 : fail("out of memory");
    if (rc == 0) rc = pool_init(&g.lab, &sp, lo, hi);
    if (rc == 0 && elo >= 0) rc = pool_init(&g.extra, &sp, elo, ehi);
    if (rc == 0) rc = gen_set(&g, seed);
    free(g.lab.idx);
    free(g.extra.idx);
    free(g.path);
    free(g.tmp);
    free(sp.pix);
    free(sp.label);
    return rc;
}

/* ---- reading a set back ---------------------------------------------------------------------- */

typedef struct {
    uint32_t image;
    int id; /* -1: unlabelled */
    int cls;
    rect box;
} entry;

typedef struct {
    entry *e;
    size_t n;
} manifest;

/* Reads a manifest written by gen: '#' lines, then image item src class id x0 y0 x1 y1. */
static int read_manifest(const char *path, manifest *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) return fail("%s: cannot open: %s", path, strerror(errno));
    char line[256];
    size_t cap = 0;
    int rc = 0;
    for (long ln = 1; rc == 0 && fgets(line, sizeof line, f); ++ln) {
        if (line[0] == '#') continue;
        entry e;
        unsigned img, src;
        int it, used = 0;
        if (sscanf(line, "%u\t%d\t%u\t%d\t%d\t%d\t%d\t%d\t%d\n%n", &img, &it, &src, &e.cls, &e.id, &e.box.x0,
                   &e.box.y0, &e.box.x1, &e.box.y1, &used) != 9 || line[used] != '\0' ||
            e.box.x1 <= e.box.x0 || e.box.y1 <= e.box.y0) {
            rc = fail("%s:%ld: malformed manifest line", path, ln);
            break;
        }
        e.image = img;
        if (m->n == cap) {
            cap = cap ? 2 * cap : 1024;
            entry *p = realloc(m->e, cap * sizeof *p);
            if (!p) {
                rc = fail("out of memory");
                break;
            }
            m->e = p;
        }
        if (m->n && img < m->e[m->n - 1].image) rc = fail("%s:%ld: images out of order", path, ln);
        m->e[m->n++] = e;
    }
    if (rc == 0 && ferror(f)) rc = fail("%s: read error", path);
    fclose(f);
    if (rc != 0) free(m->e);
    return rc;
}

/* Darknet's label path: the first "images" (then "JPEGImages") becomes "labels", the first
 * ".png" becomes ".txt". Writes into out (cap bytes); -1 if a part is missing. */
static int label_path(const char *img, char *out, size_t cap)
{
    const char *from[] = {"images", ".png"}, *to[] = {"labels", ".txt"};
    if (strlen(img) + 1 > cap) return -1;
    strcpy(out, img);
    for (int i = 0; i < 2; ++i) {
        char *p = strstr(out, from[i]);
        if (!p) return -1;
        memcpy(p, to[i], strlen(to[i])); /* same lengths */
    }
    return 0;
}

/* Parses one label line "id x y w h\n" strictly: id in [0, classes), values in (0, 1]. */
static int parse_label(const char *line, int classes, int *id, double v[4])
{
    char *end;
    errno = 0;
    long c = strtol(line, &end, 10);
    if (end == line || *end != ' ' || errno || c < 0 || c >= classes) return -1;
    *id = (int)c;
    for (int i = 0; i < 4; ++i) {
        const char *p = end + 1;
        if (*p == ' ' || *p == '\t' || *p == '\n') return -1;
        v[i] = strtod(p, &end);
        if (end == p || *end != (i < 3 ? ' ' : '\n') || !(v[i] > 0 && v[i] <= 1)) return -1;
    }
    return end[1] == '\0' ? 0 : -1;
}

typedef struct {
    unsigned long images, boxes, unlabelled, with_unlabelled;
} tally;

/* Checks the label lines of one canvas against its manifest entries e[0..n): the labelled
 * entries in order, same id, same box (to 0.01 px). */
static int check_labels(const char *lpath, FILE *f, const entry *e, size_t n, int classes, int w, int h)
{
    char line[256];
    size_t next = 0;
    for (long ln = 1; fgets(line, sizeof line, f); ++ln) {
        int id;
        double v[4];
        if (parse_label(line, classes, &id, v) != 0)
            return fail("%s:%ld: not 'class x y w h' with class in 0..%d and values in (0,1]", lpath, ln, classes - 1);
        while (next < n && e[next].id < 0) next++;
        if (next == n) return fail("%s:%ld: a box the manifest does not have", lpath, ln);
        const entry *m = &e[next++];
        double x0 = (v[0] - v[2] / 2) * w, x1 = (v[0] + v[2] / 2) * w;
        double y0 = (v[1] - v[3] / 2) * h, y1 = (v[1] + v[3] / 2) * h;
        if (id != m->id || fabs(x0 - m->box.x0) > .01 || fabs(x1 - m->box.x1) > .01 ||
            fabs(y0 - m->box.y0) > .01 || fabs(y1 - m->box.y1) > .01)
            return fail("%s:%ld: box %d %.2f..%.2f x %.2f..%.2f, manifest has %d %d..%d x %d..%d", lpath, ln, id, x0,
                        x1, y0, y1, m->id, m->box.x0, m->box.x1, m->box.y0, m->box.y1);
    }
    if (ferror(f)) return fail("%s: read error", lpath);
    while (next < n && e[next].id < 0) next++;
    if (next < n) return fail("%s: lacks the box of item %zu of the manifest", lpath, next);
    return 0;
}

/* Checks the pixels of one canvas against its items e[0..n): every pixel >= BRIGHT lies in
 * some item's box, and each box is tight: each of its four edges holds a pixel >= BRIGHT. */
static int check_pixels(const char *path, const unsigned char *pix, int w, int h, const entry *e, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        rect b = e[i].box;
        if (b.x0 < 0 || b.y0 < 0 || b.x1 > w || b.y1 > h) return fail("%s: item %zu's box leaves the canvas", path, i);
        int top = 0, bottom = 0, left = 0, right = 0;
        for (int x = b.x0; x < b.x1; ++x) {
            top |= pix[b.y0 * w + x] >= BRIGHT;
            bottom |= pix[(b.y1 - 1) * w + x] >= BRIGHT;
        }
        for (int y = b.y0; y < b.y1; ++y) {
            left |= pix[y * w + b.x0] >= BRIGHT;
            right |= pix[y * w + b.x1 - 1] >= BRIGHT;
        }
        if (!(top && bottom && left && right))
            return fail("%s: item %zu's box %d..%d x %d..%d is not tight (an edge holds no pixel >= %d)", path, i,
                        b.x0, b.x1, b.y0, b.y1, BRIGHT);
    }
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            if (pix[y * w + x] < BRIGHT) continue;
            size_t i = 0;
            while (i < n && !(x >= e[i].box.x0 && x < e[i].box.x1 && y >= e[i].box.y0 && y < e[i].box.y1)) i++;
            if (i == n) return fail("%s: pixel (%d,%d) = %d lies in no item's box", path, x, y, pix[y * w + x]);
        }
    return 0;
}

/* Verifies canvas k (list line path) against its manifest entries e[0..n). */
static int check_canvas(const char *path, uint32_t k, const entry *e, size_t n, int classes, tally *t)
{
    char lpath[4096];
    if (label_path(path, lpath, sizeof lpath) != 0) return fail("%s: no label path (needs 'images' and '.png')", path);
    int w, h, c;
    unsigned char *pix = stbi_load(path, &w, &h, &c, 1);
    if (!pix) return fail("%s: cannot decode: %s", path, stbi_failure_reason());
    int rc = c == 1 ? 0 : fail("%s: %d channels, expected 1 (grayscale)", path, c);
    if (rc == 0 && n == 0) rc = fail("%s: the manifest has no item of canvas %u", path, (unsigned)k);
    if (rc == 0) rc = check_pixels(path, pix, w, h, e, n);
    stbi_image_free(pix);
    FILE *f = rc == 0 ? fopen(lpath, "r") : NULL;
    if (rc == 0 && !f) rc = fail("%s: cannot open: %s", lpath, strerror(errno));
    if (rc == 0) rc = check_labels(lpath, f, e, n, classes, w, h);
    if (f) fclose(f);
    size_t unl = 0;
    for (size_t i = 0; i < n; ++i) unl += e[i].id < 0;
    t->images++;
    t->boxes += n - unl;
    t->unlabelled += unl;
    t->with_unlabelled += unl > 0;
    return rc;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc != 5) return fail("usage: %s verify <out> <set> <classes>", prog);
    uint64_t classes;
    if (parse_u64(argv[4], "classes", 1, 10, &classes) != 0) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.manifest", argv[2], argv[3]);
    manifest m;
    if (read_manifest(path, &m) != 0) return -1;
    snprintf(path, sizeof path, "%s/%s.list", argv[2], argv[3]);
    FILE *f = fopen(path, "r");
    int rc = f ? 0 : fail("%s: cannot open: %s", path, strerror(errno));
    tally t = {0, 0, 0, 0};
    size_t at = 0;
    char line[4096];
    for (uint32_t k = 0; rc == 0 && f && fgets(line, sizeof line, f); ++k) {
        size_t len = strlen(line);
        if (len < 2 || line[len - 1] != '\n') {
            rc = fail("%s:%u: empty or unterminated line", path, (unsigned)k + 1);
            break;
        }
        line[len - 1] = '\0';
        size_t from = at;
        while (at < m.n && m.e[at].image == k) at++;
        rc = check_canvas(line, k, m.e + from, at - from, (int)classes, &t);
    }
    if (rc == 0 && f && ferror(f)) rc = fail("%s: read error", path);
    if (rc == 0 && t.images == 0) rc = fail("%s: no images", path);
    if (rc == 0 && at < m.n) rc = fail("%s: the manifest has items of image %u, beyond the list", path, (unsigned)m.e[at].image);
    if (f) fclose(f);
    free(m.e);
    if (rc == 0)
        printf("%s: %lu images, %lu labelled boxes, %lu unlabelled items in %lu images\n", argv[3], t.images, t.boxes,
               t.unlabelled, t.with_unlabelled);
    return rc;
}

/* ---- anchors: k-means of the labelled boxes' sizes, distance 1 - IoU (YOLOv2's) --------------- */

static double size_iou(double w1, double h1, double w2, double h2)
{
    double inter = (w1 < w2 ? w1 : w2) * (h1 < h2 ? h1 : h2);
    return inter / (w1 * h1 + w2 * h2 - inter);
}

static int best_anchor(double w, double h, const double (*a)[2], int k, double *iou)
{
    int best = 0;
    for (int j = 1; j < k; ++j)
        if (size_iou(w, h, a[j][0], a[j][1]) > size_iou(w, h, a[best][0], a[best][1])) best = j;
    if (iou) *iou = size_iou(w, h, a[best][0], a[best][1]);
    return best;
}

static int by_area(const void *pa, const void *pb)
{
    const double *a = pa, *b = pb;
    double d = a[0] * a[1] - b[0] * b[1];
    return d < 0 ? -1 : d > 0;
}

/* Fits k anchors to the labelled boxes of m: starts from the boxes at the area quantiles,
 * then Lloyd iterations until no box changes cluster. Anchors come out sorted by area. */
static int fit_anchors(const manifest *m, int k, double (*a)[2])
{
    size_t n = 0;
    double (*b)[2] = malloc(m->n * sizeof *b);
    int *of = calloc(m->n ? m->n : 1, sizeof *of);
    if (!b || !of) {
        free(b);
        free(of);
        return fail("out of memory");
    }
    for (size_t i = 0; i < m->n; ++i)
        if (m->e[i].id >= 0) {
            b[n][0] = m->e[i].box.x1 - m->e[i].box.x0;
            b[n++][1] = m->e[i].box.y1 - m->e[i].box.y0;
        }
    int rc = n >= (size_t)k ? 0 : fail("%zu labelled boxes, fewer than %d anchors", n, k);
    if (rc == 0) {
        qsort(b, n, sizeof *b, by_area);
        for (int j = 0; j < k; ++j) memcpy(a[j], b[(size_t)((j + 0.5) * n / k)], sizeof *a);
    }
    for (int it = 0, moved = 1; rc == 0 && moved && it < 1000; ++it) {
        double sum[16][3] = {{0}};
        moved = 0;
        for (size_t i = 0; i < n; ++i) {
            int j = best_anchor(b[i][0], b[i][1], (const double (*)[2])a, k, NULL);
            moved |= it == 0 || j != of[i];
            of[i] = j;
            sum[j][0] += b[i][0];
            sum[j][1] += b[i][1];
            sum[j][2] += 1;
        }
        for (int j = 0; j < k; ++j)
            if (sum[j][2] > 0) a[j][0] = sum[j][0] / sum[j][2], a[j][1] = sum[j][1] / sum[j][2];
    }
    if (rc == 0) qsort(a, (size_t)k, sizeof *a, by_area);
    free(b);
    free(of);
    return rc;
}

static int cmd_anchors(int argc, char **argv)
{
    if (argc < 4) return fail("usage: %s anchors <k> <fit.manifest> [other.manifest...]", prog);
    uint64_t k;
    if (parse_u64(argv[2], "k", 1, 16, &k) != 0) return -1;
    double a[16][2];
    for (int f = 3; f < argc; ++f) {
        manifest m;
        if (read_manifest(argv[f], &m) != 0) return -1;
        if (f == 3 && fit_anchors(&m, (int)k, a) != 0) {
            free(m.e);
            return -1;
        }
        if (f == 3) {
            printf("anchors = ");
            for (int j = 0; j < (int)k; ++j) {
                a[j][0] = round(a[j][0]), a[j][1] = round(a[j][1]);
                printf("%s%.0f,%.0f", j ? ",  " : "", a[j][0], a[j][1]);
            }
            printf("\n");
        }
        double sum = 0;
        size_t n = 0;
        for (size_t i = 0; i < m.n; ++i) {
            double iou;
            if (m.e[i].id < 0) continue;
            best_anchor(m.e[i].box.x1 - m.e[i].box.x0, m.e[i].box.y1 - m.e[i].box.y0, (const double (*)[2])a,
                        (int)k, &iou);
            sum += iou;
            n++;
        }
        printf("%s: %zu labelled boxes, mean IoU with the best anchor %.3f\n", argv[f], n, n ? sum / n : 0.0);
        free(m.e);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = -1;
    if (argc >= 2 && strcmp(argv[1], "gen") == 0) rc = cmd_gen(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "verify") == 0) rc = cmd_verify(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "anchors") == 0) rc = cmd_anchors(argc, argv);
    else
        fail("usage: %s gen|verify|anchors ... (gen <images.gz> <labels.gz> <out> <set> <count> <seed> <lo-hi> "
             "<lo-hi|->; verify <out> <set> <classes>; anchors <k> <fit.manifest> [other.manifest...])",
             prog);
    return rc == 0 ? 0 : 1;
}
