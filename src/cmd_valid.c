/* darknet lwf valid <lwf.cfg> <weights> [-task NAME] [-top K] [-csv]: top-1 and top-K
 * accuracy of every task whose data= names a valid list; -merged [-calib N]: one answer over
 * every task's classes, calibrated on N of the new task's training images (0: uncalibrated). */
#include "args.h"
#include "commands.h"
#include "lwf.h"
#include "quiet.h"

#include <stdio.h>

const char lwf_cmd_valid_usage[] =
    "valid <lwf.cfg> <weights> [-task NAME] [-top K] [-csv] [-merged [-calib N]] [-reference]";

/* -merged: one row over every task's valid images, each scored against all classes, the
 * heads calibrated on `calib` of the new task's training images (0: the more confident head) */
static int valid_merged(lwf_model *m, int top, int csv, const char *only, int calib)
{
    lwf_err err;
    lwf_accuracy acc;
    lwf_merged_calib c;
    if (only) {
        fprintf(stderr, "darknet lwf valid: -merged scores every task together; it takes no -task\n");
        return 2;
    }
    int rc = calib > 0 && lwf_merged_calibrate(m, calib, &c, &err);
    if (!rc) rc = lwf_validate_merged(m, calib > 0 ? &c : NULL, top, &acc, &err);
    if (calib > 0) lwf_merged_calib_free(&c); /* zeroed by a failed lwf_merged_calibrate */
    if (rc) {
        fprintf(stderr, "darknet lwf valid: %s\n", err.msg);
        return 1;
    }
    if (csv) printf("task,images,top1,topk\nall,%d,%.4f,%.4f\n", acc.images, acc.top1, acc.topK);
    else printf("%-20s %8s %8s %8s\n%-20s %8d %8.4f %8.4f   (top-%d)\n", "task", "images", "top-1", "top-k", "all",
                acc.images, acc.top1, acc.topK, acc.topk);
    return 0;
}

int lwf_cmd_valid(int argc, char **argv)
{
    const char *only = NULL;
    int top = 0, csv = 0, reference = 0, merged = 0, calib = -1;
    lwf_arg flags[] = {{"-task", LWF_ARG_STR, &only, 0, 0},
                       {"-top", LWF_ARG_INT, &top, 1, 1 << 20},
                       {"-csv", LWF_ARG_FLAG, &csv, 0, 0},
                       {"-merged", LWF_ARG_FLAG, &merged, 0, 0},
                       {"-calib", LWF_ARG_INT, &calib, 0, 1 << 30},
                       {"-reference", LWF_ARG_FLAG, &reference, 0, 0},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[2];
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 2, 2, &npos, lwf_cmd_valid_usage)) return 2;
    if (calib >= 0 && !merged) {
        fprintf(stderr, "darknet lwf valid: -calib is -merged's\n");
        return 2;
    }
    if (calib < 0) calib = LWF_MERGED_CALIB_IMAGES;
    if (reference) lwf_set_reference(1);
    lwf_err err;
    lwf_model *m = lwf_model_load_quiet(pos[0], &err);
    int whole = 0, rc = 0;
    if (!m || lwf_weights_load_model(m, pos[1], &whole, NULL, &err)) {
        fprintf(stderr, "darknet lwf valid: %s\n", err.msg);
        lwf_model_free(m);
        return 1;
    }
    if (!whole) fprintf(stderr, "note: %s holds the old network only: the new head is untrained\n", pos[1]);
    if (merged) {
        rc = valid_merged(m, top, csv, only, calib);
        lwf_model_free(m);
        return rc;
    }
    int pick = -1;
    if (only && (pick = lwf_task_find(m, only)) < 0) {
        fprintf(stderr, "darknet lwf valid: %s has no task named '%s'\n", pos[0], only);
        lwf_model_free(m);
        return 1;
    }
    if (csv) printf("task,images,top1,topk\n");
    else printf("%-20s %8s %8s %8s\n", "task", "images", "top-1", "top-k");
    int shown = 0;
    for (int k = 0; k < m->ntasks; ++k) {
        if (pick >= 0 && k != pick) continue;
        if (!m->tasks[k].data) {
            if (pick >= 0) rc = 1;
            fprintf(stderr, "task %s: no data= file, skipped\n", m->tasks[k].name);
            continue;
        }
        lwf_accuracy acc[3];
        if (lwf_validate_parts(m, k, top, acc, &err)) {
            fprintf(stderr, "darknet lwf valid: %s\n", err.msg);
            rc = 1;
            break;
        }
        ++shown;
        /* a grown head: its old classes' images and its new ones' too (TASK:old, TASK:new) */
        for (int q = 0; q < (m->tasks[k].old_classes ? 3 : 1); ++q) {
            char name[300];
            snprintf(name, sizeof name, "%s%s", m->tasks[k].name, q == 1 ? ":old" : q == 2 ? ":new" : "");
            if (csv) printf("%s,%d,%.4f,%.4f\n", name, acc[q].images, acc[q].top1, acc[q].topK);
            else printf("%-20s %8d %8.4f %8.4f   (top-%d)\n", name, acc[q].images, acc[q].top1, acc[q].topK, acc[q].topk);
        }
    }
    if (!rc && shown == 0) {
        fprintf(stderr, "darknet lwf valid: no task of %s has a data= file with a valid list\n", pos[0]);
        rc = 1;
    }
    lwf_model_free(m);
    return rc;
}
