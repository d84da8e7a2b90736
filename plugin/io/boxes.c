/* Detection labels: where an image's boxes are (Darknet's label path rule), reading them
 * strictly, moving them with their image, and [yolo]'s truth row.  The image's side of the
 * augmentation is augment.c's; batches and the loss are others' business. */
#include "io/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A copy of s with its first `find` replaced by `repl` (s itself copied when absent). */
static char *replace_first(const char *s, const char *find, const char *repl)
{
    const char *at = strstr(s, find);
    size_t n = strlen(s), f = strlen(find), r = strlen(repl);
    char *out = malloc(n + (at ? r : 0) + 1);
    if (!out) return NULL;
    if (!at) return memcpy(out, s, n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(out, s, pre);
    memcpy(out + pre, repl, r);
    memcpy(out + pre + r, at + f, n - pre - f + 1);
    return out;
}

char *lwf_label_path(const char *image_path)
{
    char *a = replace_first(image_path, "images", "labels");
    char *b = a ? replace_first(a, "JPEGImages", "labels") : NULL;
    free(a);
    if (!b) return NULL;
    char *slash = strrchr(b, '/'), *dot = strrchr(b, '.');
    size_t keep = dot && (!slash || dot > slash + 1) ? (size_t)(dot - b) : strlen(b);
    char *out = malloc(keep + 5);
    if (out) {
        memcpy(out, b, keep);
        memcpy(out + keep, ".txt", 5);
    }
    free(b);
    return out;
}

/* One label line "class x y w h" into *bx; 0, or -1 with err naming path:line. */
static int parse_box_line(char *s, const char *path, int line, int classes, lwf_box *bx, lwf_err *err)
{
    char *tok[6];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 6) tok[n++] = t;
        else ++n;
    if (n != 5) return lwf_fail(err, "%s:%d: a box is 'class x y w h' (5 values), got %d", path, line, n);
    if (lwf_parse_int(tok[0], 0, classes - 1, &bx->cls))
        return lwf_fail(err, "%s:%d: class '%s' is not a whole number from 0 to %d", path, line, tok[0], classes - 1);
    float *v[4] = {&bx->b.x, &bx->b.y, &bx->b.w, &bx->b.h};
    static const char *const what[4] = {"x", "y", "w", "h"};
    for (int k = 0; k < 4; ++k)
        if (lwf_parse_float(tok[k + 1], 0, 1, v[k]))
            return lwf_fail(err, "%s:%d: %s '%s' is not a number from 0 to 1 (relative to the image)", path, line,
                            what[k], tok[k + 1]);
    if (bx->b.w <= 0 || bx->b.h <= 0) return lwf_fail(err, "%s:%d: a box of zero size", path, line);
    return 0;
}

int lwf_boxes_read(const char *path, int classes, lwf_boxes *out, lwf_err *err)
{
    out->n = 0;
    FILE *fp = fopen(path, "r");
    if (!fp) return lwf_fail(err, "%s: cannot open the image's label file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return lwf_fail(err, "%s: the label file is not a regular file", path);
    }
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int line = 1;; ++line) {
        long len = lwf_read_text_line(fp, &buf, &cap, path, line, "label file", err);
        if (len == -1) break;
        if (len < 0) { rc = -1; break; }
        char *s = buf;
        while (*s == ' ' || *s == '\t') ++s;
        if (!*s) continue;
        if (out->n == LWF_MAX_BOXES) {
            rc = lwf_fail(err, "%s:%d: more than %d boxes in one image (Darknet's [yolo] reads %d)", path, line,
                          LWF_MAX_BOXES, LWF_MAX_BOXES);
            break;
        }
        if (parse_box_line(s, path, line, classes, &out->box[out->n], err)) { rc = -1; break; }
        out->n++;
    }
    free(buf);
    fclose(fp);
    return rc;
}

static float clamp01(float v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

void lwf_boxes_place(lwf_boxes *bs, float dx, float dy, float sx, float sy, int flip)
{
    int k = 0;
    for (int i = 0; i < bs->n; ++i) {
        box b = bs->box[i].b;
        float l = (b.x - b.w / 2) * sx + dx, r = (b.x + b.w / 2) * sx + dx;
        float t = (b.y - b.h / 2) * sy + dy, d = (b.y + b.h / 2) * sy + dy;
        if (flip) {
            float s = l;
            l = 1 - r;
            r = 1 - s;
        }
        l = clamp01(l), r = clamp01(r), t = clamp01(t), d = clamp01(d);
        if (r - l < LWF_MIN_BOX || d - t < LWF_MIN_BOX) continue; /* (Darknet's .01) */
        bs->box[k].cls = bs->box[i].cls;
        bs->box[k].b = (box){(l + r) / 2, (t + d) / 2, r - l, d - t};
        ++k;
    }
    bs->n = k;
}

void lwf_boxes_truth(const lwf_boxes *bs, int shift, float *truth)
{
    memset(truth, 0, LWF_MAX_BOXES * 5 * sizeof(float));
    for (int i = 0; i < bs->n; ++i) {
        const lwf_box *x = &bs->box[i];
        float *t = truth + 5 * i;
        t[0] = x->b.x, t[1] = x->b.y, t[2] = x->b.w, t[3] = x->b.h;
        t[4] = (float)(x->cls + shift);
    }
}
