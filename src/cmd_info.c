/* darknet lwf info <cfg> [weights] [-reference]: builds the network from an LwF cfg and
 * prints its trunk, heads and kernels; with weights, loads them and says which part they
 * filled. */
#include "args.h"
#include "commands.h"
#include "lwf.h"

#include <stdio.h>

const char lwf_cmd_info_usage[] =
    "info <lwf.cfg> [weights] [-reference]   (check a cfg: trunk, heads, weight sizes, kernels)";

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
    printf("cfg %s: input %dx%dx%d, %d layers, trunk = layers 0-%d\n", pos[0], net->w, net->h, net->c, net->n,
           m->trunk - 1);
    for (int k = 0; k < m->ntasks; ++k) {
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
    printf("weights: %zu floats for the old network (layers 0-%d), %zu for the whole model\n",
           lwf_weights_count(net, lwf_old_layers(m)), lwf_old_layers(m) - 1, lwf_weights_count(net, net->n));
    int rc = 0;
    if (npos == 2) {
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
