/* darknet lwf predict <lwf.cfg> <weights> <image> [-task NAME] [-top K]: each task's
 * top-K labels with probabilities, in stock `classifier predict`'s format. */
#include "args.h"
#include "commands.h"
#include "lwf.h"
#include "quiet.h"

#include <stdio.h>
#include <stdlib.h>

const char lwf_cmd_predict_usage[] =
    "predict <lwf.cfg> <weights> <image> [-task NAME] [-top K] [-reference]";

int lwf_cmd_predict(int argc, char **argv)
{
    const char *only = NULL;
    int top = 0, reference = 0;
    lwf_arg flags[] = {{"-task", LWF_ARG_STR, &only, 0, 0},
                       {"-top", LWF_ARG_INT, &top, 1, 1 << 20},
                       {"-reference", LWF_ARG_FLAG, &reference, 0, 0},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[3];
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 3, 3, &npos, lwf_cmd_predict_usage)) return 2;
    if (reference) lwf_set_reference(1);
    lwf_err err;
    lwf_build_opts bo = {1, 1};
    int saved = lwf_quiet_begin(); /* no layer table */
    lwf_model *m = lwf_model_load(pos[0], &bo, &err);
    lwf_quiet_end(saved);
    int whole = 0, rc = 0, pick = -1;
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
