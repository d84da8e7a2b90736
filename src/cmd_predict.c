/* darknet lwf predict <lwf.cfg> <weights> <image> [-task NAME] [-top K]: each task's
 * top-K labels with probabilities, in stock `classifier predict`'s format.  A detector
 * ([yolo] cfg; [-data D] [-thresh T] [-out NAME]): stock `detector test`'s lines and drawn image, and
 * each box's coordinates. */
#include "args.h"
#include "commands.h"
#include "lwf.h"
#include "quiet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lwf_cmd_predict_usage[] =
    "predict <lwf.cfg> <weights> <image> [-task NAME] [-top K] [-reference]  (a detector: [-data D] [-thresh .5] "
    "[-out predictions])";

/* A detector's class names: the names= of datafile (-data), else of its [task] data=, else
 * the class numbers. */
static char **class_names(const lwf_model *m, const char *datafile, lwf_list *names, lwf_err *err)
{
    int C = m->tasks[0].classes;
    char **out = calloc((size_t)C, sizeof *out);
    if (!out) return lwf_fail(err, "out of memory"), NULL;
    if (!datafile) datafile = m->tasks[0].data;
    if (datafile) {
        lwf_datacfg d;
        int bad = lwf_datacfg_read(datafile, &d, err) || (d.labels && lwf_datacfg_list(&d, "labels", names, err));
        lwf_datacfg_free(&d);
        if (bad) return free(out), NULL;
    }
    for (int c = 0; c < C; ++c) {
        char num[16];
        snprintf(num, sizeof num, "%d", c);
        out[c] = strdup(names->n == C ? names->items[c] : num);
        if (!out[c]) return lwf_fail(err, "out of memory"), NULL; /* (the process ends) */
    }
    return out;
}

/* Stock `detector test` on one image: its lines ("name: NN%" per class above thresh, printed
 * by libdarknet's draw_detections), then each box's place in pixels, and the image with the
 * boxes drawn as out.jpg.  Darknet's label glyphs (data/labels/) are not installed by
 * Debian's package: boxes are drawn without labels. */
static int predict_detector(lwf_model *m, const char *path, const char *datafile, float thresh, const char *out,
                            lwf_err *err)
{
    image im;
    detection *dets = NULL;
    int n = 0, C = m->tasks[0].classes;
    lwf_list names = {0, NULL, NULL};
    char **cn = class_names(m, datafile, &names, err);
    if (!cn || lwf_detect(m, path, thresh, .45f, &im, &dets, &n, err)) {
        lwf_list_free(&names);
        return -1;
    }
    printf("%s: %d boxes\n", path, n);
    draw_detections(im, dets, n, thresh, cn, NULL, C);
    for (int i = 0; i < n; ++i) {
        int best = -1;
        for (int j = 0; j < C; ++j)
            if (dets[i].prob[j] > thresh && (best < 0 || dets[i].prob[j] > dets[i].prob[best])) best = j;
        if (best < 0) continue;
        box b = dets[i].bbox;
        int left = (int)((b.x - b.w / 2) * im.w), right = (int)((b.x + b.w / 2) * im.w);
        int top = (int)((b.y - b.h / 2) * im.h), bot = (int)((b.y + b.h / 2) * im.h);
        if (left < 0) left = 0;
        if (right > im.w - 1) right = im.w - 1;
        if (top < 0) top = 0;
        if (bot > im.h - 1) bot = im.h - 1;
        printf("box: %s %.0f%% left %d top %d right %d bottom %d (x %.6f y %.6f w %.6f h %.6f)\n", cn[best],
               dets[i].prob[best] * 100, left, top, right, bot, b.x, b.y, b.w, b.h);
    }
    fprintf(stderr, "darknet lwf predict: boxes drawn into %s.jpg, without labels (Darknet's data/labels glyphs "
                    "are not installed)\n",
            out);
    save_image(im, out);
    free_detections(dets, n);
    free_image(im);
    for (int c = 0; c < C; ++c) free(cn[c]);
    free(cn);
    lwf_list_free(&names);
    return 0;
}

/* lwf predict on a detector: pos = cfg, weights, image; frees m.  The exit status. */
static int detector_command(lwf_model *m, char **pos, const char *thresh, const char *datafile, const char *out)
{
    lwf_err err;
    int whole = 0, rc;
    char *end = NULL;
    float th = thresh ? strtof(thresh, &end) : .5f;
    if (thresh && (end == thresh || *end || !(th >= 0 && th <= 1)))
        rc = lwf_fail(&err, "-thresh must be a number in [0, 1], got '%s'", thresh);
    else if (lwf_weights_load_model(m, pos[1], &whole, NULL, &err) == 0 && !whole)
        rc = lwf_fail(&err, NOT_WHOLE, pos[1], pos[0]);
    else if (whole) rc = predict_detector(m, pos[2], datafile, th, out, &err);
    else rc = -1;
    if (rc) fprintf(stderr, "darknet lwf predict: %s\n", err.msg);
    lwf_model_free(m);
    return rc ? 1 : 0;
}

int lwf_cmd_predict(int argc, char **argv)
{
    const char *only = NULL, *thresh = NULL, *out = "predictions", *datafile = NULL;
    int top = 0, reference = 0;
    lwf_arg flags[] = {{"-task", LWF_ARG_STR, &only, 0, 0},
                       {"-thresh", LWF_ARG_STR, &thresh, 0, 0},
                       {"-out", LWF_ARG_STR, &out, 0, 0},
                       {"-data", LWF_ARG_STR, &datafile, 0, 0},
                       {"-top", LWF_ARG_INT, &top, 1, 1 << 20},
                       {"-reference", LWF_ARG_FLAG, &reference, 0, 0},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[3];
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 3, 3, &npos, lwf_cmd_predict_usage)) return 2;
    if (reference) lwf_set_reference(1);
    lwf_err err;
    lwf_model *m = lwf_model_load_quiet(pos[0], &err);
    int whole = 0, rc = 0, pick = -1;
    if (m && m->detector) return detector_command(m, pos, thresh, datafile, out);
    if (m && (thresh || datafile)) {
        fprintf(stderr, "darknet lwf predict: -thresh and -data are for detectors; %s is a classifier\n", pos[0]);
        lwf_model_free(m);
        return 2;
    }
    if (!m || lwf_weights_load_model(m, pos[1], &whole, NULL, &err) ||
        (only && (pick = lwf_task_find(m, only)) < 0 && lwf_fail(&err, "%s has no task named '%s'", pos[0], only)) ||
        lwf_predict(m, pos[2], &err)) {
        fprintf(stderr, "darknet lwf predict: %s\n", err.msg);
        lwf_model_free(m);
        return 1;
    }
    for (int k = 0; k < m->ntasks && !rc; ++k) {
        if (pick >= 0 && k != pick) continue;
        const lwf_task *t = &m->tasks[k];
        lwf_list names = {0, NULL, NULL};
        int topk = top;
        if (t->data) {
            lwf_datacfg d; /* zeroed by the read, whatever it returns: freed once below */
            int bad = lwf_datacfg_read(t->data, &d, &err) || (d.labels && lwf_datacfg_list(&d, "labels", &names, &err));
            if (!bad && !topk) topk = d.top;
            lwf_datacfg_free(&d);
            if (bad) {
                fprintf(stderr, "darknet lwf predict: %s\n", err.msg);
                lwf_list_free(&names);
                rc = 1;
                break;
            }
        }
        if (topk < 1) topk = 1;
        if (topk > t->classes) topk = t->classes;
        int *idx = calloc((size_t)topk, sizeof(int));
        if (!idx) {
            fprintf(stderr, "darknet lwf predict: out of memory for the top %d of task '%s'\n", topk, t->name);
            lwf_list_free(&names);
            rc = 1;
            break;
        }
        const float *p = m->net->layers[t->loss].output;
        top_k((float *)p, t->classes, topk, idx);
        printf("%s:\n", t->name);
        for (int i = 0; i < topk; ++i) {
            if (names.n == t->classes) printf("%5.2f%%: %s\n", p[idx[i]] * 100, names.items[idx[i]]);
            else printf("%5.2f%%: %d\n", p[idx[i]] * 100, idx[i]);
        }
        free(idx);
        lwf_list_free(&names);
    }
    lwf_model_free(m);
    return rc;
}
