/* darknet lwf info <cfg> [weights] [-reference]: builds the network from an LwF cfg and
 * prints its trunk, heads and kernels (a detector: its task, its [yolo] heads); with weights,
 * loads them and says which part they filled. */
#include "args.h"
#include "commands.h"
#include "lwf.h"

#include <stdio.h>

const char lwf_cmd_info_usage[] =
    "info <lwf.cfg> [weights] [-reference]   (check a cfg: trunk, heads, weight sizes, kernels)";

/* A detector: one task whose heads are its [yolo] ([lwf_yolo]) layers; a grown one's old
 * detector file holds every float but the new class rows of the convolution before each. */
static size_t print_detector(const lwf_model *m)
{
    const network *net = m->net;
    const lwf_task *t = &m->tasks[0];
    int K = lwf_det_old_classes(m), heads = 0;
    printf("cfg %s: input %dx%dx%d, %d layers, a detector: one task, no shared trunk (every layer is the task's)\n",
           m->cfg, net->w, net->h, net->c, net->n);
    printf("task %-16s layers %d-%d, %d classes", t->name, 0, net->n - 1, t->classes);
    if (K) printf(", grown: %d old + %d new classes", K, t->classes - K);
    if (t->data) printf(", data=%s", t->data);
    printf("\n");
    size_t newrows = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        if (l->type != YOLO) continue;
        printf("head %d: [%s] layer %d, %dx%d cells, %d anchors (mask", ++heads, K ? "lwf_yolo" : "yolo", i, l->w,
               l->h, l->n);
        for (int a = 0; a < l->n; ++a) printf("%s%d", a ? "," : " ", l->mask[a]);
        printf("), after the convolution at layer %d\n", i - 1);
        const layer *c = &net->layers[i - 1]; /* the builder checked it is the convolution before */
        newrows += (size_t)l->n * (size_t)(t->classes - K) *
                   ((size_t)c->c / c->groups * c->size * c->size + 1 + (c->batch_normalize ? 3 : 0));
    }
    size_t whole = lwf_weights_count(net, net->n);
    if (K)
        printf("weights: %zu floats for the old detector (%d classes), %zu for the whole model\n", whole - newrows, K,
               whole);
    else
        printf("weights: %zu floats for the whole model\n", whole);
    return K ? whole - newrows : 0;
}

/* Floats in the body of a .weights file (its header: 16 bytes before version 0.2, else 20),
 * or 0 when it does not read as one. */
static size_t file_floats(const char *path)
{
    FILE *fp = fopen(path, "rb");
    int v[3];
    long size = -1;
    int ok = fp && fread(v, sizeof(int), 3, fp) == 3 && fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0;
    if (fp) fclose(fp);
    long head = ok && v[0] * 10 + v[1] >= 2 ? 20 : 16;
    return ok && size >= head && (size - head) % 4 == 0 ? (size_t)(size - head) / 4 : 0;
}

int lwf_cmd_info(int argc, char **argv)
{
    char *pos[2];
    int npos;
    int reference = 0;
    lwf_arg flags[] = {{"-reference", LWF_ARG_FLAG, &reference, 0, 0}, {NULL, 0, NULL, 0, 0}};
    if (lwf_args_parse(argc, argv, flags, pos, 1, 2, &npos, lwf_cmd_info_usage)) return 2;
    if (reference) lwf_set_reference(1);
    lwf_err err;
    lwf_build_opts o = {1, 0};
    lwf_model *m = lwf_model_load(pos[0], &o, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    network *net = m->net;
    size_t old_detector = m->detector ? print_detector(m) : 0; /* a grown one's old detector file */
    if (!m->detector)
        printf("cfg %s: input %dx%dx%d, %d layers, trunk = layers 0-%d\n", pos[0], net->w, net->h, net->c, net->n,
               m->trunk - 1);
    for (int k = 0; k < m->ntasks && !m->detector; ++k) {
        const lwf_task *t = &m->tasks[k];
        printf("task %-16s %s layers %d-%d, %d classes", t->name, t->is_new ? "new" : "old", t->first, t->loss,
               t->classes);
        lwf_task_loss tl = lwf_task_loss_of(m, k);
        if (!t->is_new) printf(", T=%g lambda=%g t2_scaling=%d", tl.temperature, tl.lambda, tl.t2_scaling);
        if (t->old_classes) /* a grown head */
            printf(", grown: %d old + %d new classes (class layer %d), T=%g lambda=%g t2_scaling=%d", t->old_classes,
                   t->classes - t->old_classes, t->class_layer, tl.temperature, tl.lambda, tl.t2_scaling);
        if (t->data) printf(", data=%s", t->data);
        printf("\n");
    }
    int fast = 0;
    for (int i = 0; i < net->n; ++i) fast += lwf_kernels_installed(&net->layers[i]);
    if (lwf_reference())
        printf("kernels: Darknet's reference (libdarknet's gemm and layer functions)\n");
    else
        printf("kernels: fast, %d of %d layers, %d threads, %s\n", fast, net->n, lwf_threads(), lwf_blas_info());
    if (!m->detector)
        printf("weights: %zu floats for the old network (layers 0-%d), %zu for the whole model\n",
               lwf_weights_count(net, lwf_old_layers(m)), lwf_old_layers(m) - 1, lwf_weights_count(net, net->n));
    int rc = 0;
    if (npos == 2 && old_detector && file_floats(pos[1]) == old_detector) {
        printf("%s: the old detector (%d classes): lwf train grows it (each anchor's box, objectness and old class "
               "rows; the new rows from the seed)\n",
               pos[1], lwf_det_old_classes(m));
    } else if (npos == 2) {
        int whole = 0;
        size_t seen = 0;
        if (lwf_weights_load_model(m, pos[1], &whole, &seen, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            rc = 1;
        } else {
            printf("loaded %s: %s (seen %zu images)\n", pos[1], whole ? "whole model" : "old network only", seen);
        }
    }
    lwf_model_free(m);
    return rc;
}
