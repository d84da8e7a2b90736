/* The network loops of Darknet's forward_network, backward_network and update_network,
 * restricted to a plan: which layers run, in training or inference mode, and learn.
 * What a pass means (warm-up, joint, teacher) is decided in lwf_plan_make. */
#include "run/run.h"

#include <stdlib.h>
#include <string.h>

int lwf_plan_make(const lwf_model *m, lwf_pass pass, lwf_plan *p)
{
    int n = m->net->n;
    p->n = n;
    p->fwd = calloc((size_t)n, 1);
    p->train = calloc((size_t)n, 1);
    p->learn = calloc((size_t)n, 1);
    if (!p->fwd || !p->train || !p->learn) {
        lwf_plan_free(p);
        return -1;
    }
    const lwf_task *nt = &m->tasks[m->new_task];
    for (int i = 0; i < n; ++i) {
        int trunk = i < m->trunk, newhead = i >= nt->first, oldhead = !trunk && !newhead;
        switch (pass) {
        case LWF_PASS_EVAL:
            p->fwd[i] = 1;
            break;
        case LWF_PASS_TEACHER:
            p->fwd[i] = trunk || oldhead;
            break;
        case LWF_PASS_WARMUP:
            p->fwd[i] = trunk || newhead;
            p->train[i] = p->learn[i] = newhead && i != nt->first;
            break;
        case LWF_PASS_JOINT:
            p->fwd[i] = p->train[i] = p->learn[i] = 1;
            break;
        case LWF_PASS_FINETUNE:
            p->fwd[i] = p->train[i] = p->learn[i] = trunk || newhead;
            break;
        }
    }
    return 0;
}

void lwf_plan_free(lwf_plan *p)
{
    free(p->fwd);
    free(p->train);
    free(p->learn);
    memset(p, 0, sizeof *p);
}

void lwf_forward(network *netp, const lwf_plan *p)
{
    network net = *netp;
    for (int i = 0; i < net.n; ++i) {
        if (!p->fwd[i]) continue;
        net.index = i;
        net.train = p->train[i];
        layer l = net.layers[i];
        /* the delta starts at zero (backward adds into it), as in Darknet; a layer that
         * does not learn gets no backward pass and no delta from the layer after it, and
         * one followed by a 1x1 convolution gets its delta written whole by that layer's
         * backward (Darknet's 1x1 backward overwrites its input delta) */
        int overwritten = i + 1 < net.n && p->learn[i + 1] && lwf_layer_overwrites_input_delta(&net.layers[i + 1]);
        if (l.delta && p->learn[i] && !overwritten) lwf_zero(l.delta, (size_t)l.outputs * l.batch);
        l.forward(l, net);
        net.input = l.output;
    }
}

void lwf_backward(network *netp, const lwf_plan *p)
{
    network net = *netp;
    network orig = net;
    for (int i = net.n - 1; i >= 0; --i) {
        if (!p->learn[i]) continue;
        layer l = net.layers[i];
        if (l.stopbackward) break;
        /* no delta into a layer that does not learn (its backward is never run), except
         * for layer types that would write through NULL (a [maxpool] first in the trunk, or
         * an [avgpool] first in the new head during the warm-up, crashed: see
         * tests/fuzz/regressions/cfg): they get a buffer zeroed at forward and never read */
        int skip = lwf_layer_skips_null_delta(&l);
        if (i == 0) {
            net = orig;
            net.delta = skip ? NULL : orig.delta; /* (batch, inputs), see the builder */
        } else {
            layer prev = net.layers[i - 1];
            net.input = prev.output;
            net.delta = p->learn[i - 1] || !skip ? prev.delta : NULL;
        }
        net.index = i;
        net.train = p->train[i];
        l.backward(l, net);
    }
}

void lwf_update(network *netp, const lwf_plan *p, float rate)
{
    network net = *netp;
    update_args a = {0};
    a.batch = net.batch * net.subdivisions;
    a.learning_rate = rate;
    a.momentum = net.momentum;
    a.decay = net.decay;
    a.adam = net.adam;
    a.B1 = net.B1;
    a.B2 = net.B2;
    a.eps = net.eps;
    ++*net.t;
    a.t = *net.t;
    for (int i = 0; i < net.n; ++i) {
        layer l = net.layers[i];
        if (p->learn[i] && l.update) l.update(l, a);
    }
}
