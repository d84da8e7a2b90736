/* darknet lwf map <cfg> <weights> [-data D] [-iou 0.5] [-thresh .005] [-nms .45] [-csv]
 * [-reference]: a detector's per-class VOC AP over its validation images, and the means over
 * the old classes, the new ones and all (DESIGN: Detection). */
#include "args.h"
#include "commands.h"
#include "lwf.h"
#include "quiet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char lwf_cmd_map_usage[] =
    "map <cfg> <weights> [-data D] [-iou 0.5] [-thresh .005] [-nms .45] [-csv] [-reference]";

/* A flag's number in [lo, hi]; -1 with a message otherwise. */
static int number(const char *flag, const char *s, float lo, float hi, float *out)
{
    char *end = NULL;
    float v = s ? strtof(s, &end) : 0;
    if (!s || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "darknet lwf map: %s must be a number in [%g, %g], got '%s'\n", flag, lo, hi, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* An AP as printed: empty when the class has no box (a mean of none likewise). */
static void print_ap(const char *name, double ap, int csv)
{
    if (csv) {
        if (isnan(ap)) printf("%s,\n", name);
        else printf("%s,%.6f\n", name, ap);
    } else {
        if (isnan(ap)) printf("%-24s  (no boxes)\n", name);
        else printf("%-24s  AP %.4f\n", name, ap);
    }
}

static int print_result(const lwf_map_result *r, const lwf_map_opts *o, int csv)
{
    if (csv) printf("class,ap\n");
    else printf("%d images, IoU > %g, thresh %g, nms %g\n", r->images, o->iou, o->thresh, o->nms);
    for (int c = 0; c < r->classes; ++c) print_ap(r->names.items[c], r->ap[c], csv);
    print_ap(csv ? "@old" : "mAP old classes", r->mean_old, csv);
    print_ap(csv ? "@new" : "mAP new classes", r->mean_new, csv);
    print_ap(csv ? "@all" : "mAP all classes", r->mean_all, csv);
    return 0;
}

int lwf_cmd_map(int argc, char **argv)
{
    const char *datafile = NULL, *iou = "0.5", *thresh = ".005", *nms = ".45";
    int csv = 0, reference = 0;
    lwf_arg flags[] = {{"-data", LWF_ARG_STR, &datafile, 0, 0},       {"-iou", LWF_ARG_STR, &iou, 0, 0},
                       {"-thresh", LWF_ARG_STR, &thresh, 0, 0},   {"-nms", LWF_ARG_STR, &nms, 0, 0},
                       {"-csv", LWF_ARG_FLAG, &csv, 0, 0},        {"-reference", LWF_ARG_FLAG, &reference, 0, 0},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[2];
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 2, 2, &npos, lwf_cmd_map_usage)) return 2;
    lwf_map_opts o = {datafile, 0, 0, 0};
    if (number("-iou", iou, 0, 1, &o.iou) || number("-thresh", thresh, 0, 1, &o.thresh) ||
        number("-nms", nms, 0, 1, &o.nms))
        return 2;
    if (reference) lwf_set_reference(1);
    lwf_err err;
    lwf_model *m = lwf_model_load_quiet(pos[0], &err);
    int whole = 0, rc = 1;
    lwf_map_result r;
    if (m && !m->detector) lwf_fail(&err, "%s: not a detector (no [yolo] layer): lwf valid scores classifiers", pos[0]);
    else if (m && lwf_weights_load_model(m, pos[1], &whole, NULL, &err) == 0 && !whole)
        lwf_fail(&err, NOT_WHOLE, pos[1], pos[0]);
    else if (m && whole && !o.data && !(o.data = m->tasks[0].data))
        lwf_fail(&err, "%s has no [task] data=: give the .data with -data", pos[0]);
    else if (m && whole && lwf_map(m, &o, &r, &err) == 0)
        rc = print_result(&r, &o, csv);
    if (rc) fprintf(stderr, "darknet lwf map: %s\n", err.msg);
    if (!rc) lwf_map_result_free(&r);
    lwf_model_free(m);
    return rc;
}
