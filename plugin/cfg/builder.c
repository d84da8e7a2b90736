/* The cfg front end: builds one Darknet network (trunk, then one head per [task]) from
 * an LwF cfg, in phases: check every section, [net], the layers and heads in cfg order,
 * the truth slices, the buffers, each task's .data.  What each section is and how its
 * layer is made: the section table (sections.c).  Weights: io/weights.c. */
#define _POSIX_C_SOURCE 200809L
#include "cfg/cfg.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_is_readable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static size_t memory_budget(void)
{
#ifdef LWF_BUILD_BUDGET_MIB /* a fixed budget (the fuzz build sets one under its RSS limit) */
    return ((size_t)LWF_BUILD_BUDGET_MIB << 20) / sizeof(float);
#else
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0) return (size_t)1 << 32;
    return (size_t)pages / 4 * (size_t)psize / sizeof(float) * 3; /* 3/4 of RAM, in floats */
#endif
}

/* A detector (a cfg with [yolo] or [lwf_yolo]) is one task: no [task], or one right after
 * [net] naming it; its losses are its [yolo] layers, no classifier loss. */
static int check_detector(const lwf_cfgfile *cf, int ntasks, lwf_err *err)
{
    for (int i = 1; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        lwf_sec_role r = lwf_section_role(s);
        if (r == LWF_ROLE_TASK && i != 1)
            return lwf_fail(err, "%s:%d: a detector is one task: its [task] (optional) comes right after [net]",
                            cf->path, s->line);
        if (r == LWF_ROLE_OLD_LOSS || r == LWF_ROLE_NEW_LOSS)
            return lwf_fail(err, "%s:%d: [%s] in a detector: its losses are its [yolo]/[lwf_yolo] layers", cf->path,
                            s->line, s->type);
    }
    return ntasks > 1 ? lwf_fail(err, "%s: a detector is one task, but it has %d [task] sections", cf->path, ntasks)
                      : 0;
}

/* Phase 1, before anything is built: [net] first and once, every section in the table and
 * not refused, every key known and well formed, [net]'s own rules, at least one [task]
 * (a detector: see check_detector).  Returns the number of [task] sections, or -1; *det
 * the number of [yolo] and [lwf_yolo] sections. */
static int check_sections(const lwf_cfgfile *cf, int *det, lwf_err *err)
{
    const char *file = cf->path;
    const lwf_section *ns = &cf->sections[0];
    const lwf_secdef *nd = lwf_section_def(ns->type);
    if (!nd || nd->role != LWF_ROLE_NET)
        return lwf_fail(err, "%s:%d: the first section must be [net], got [%s]", file, ns->line, ns->type);
    int ntasks = 0;
    for (int i = 0; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        const lwf_secdef *d = lwf_section_def(s->type);
        if (!d) return lwf_fail(err, "%s:%d: unknown section [%s]", file, s->line, s->type);
        if (d->role == LWF_ROLE_NONE)
            return lwf_fail(err, "%s:%d: [%s] is not supported in an LwF cfg (classifier layers only)", file, s->line,
                            s->type);
        if (d->role == LWF_ROLE_NET && i > 0) return lwf_fail(err, "%s:%d: [%s] given twice", file, s->line, s->type);
        if (lwf_section_check_keys(file, s, d, err)) return -1;
        if (d->role == LWF_ROLE_TASK) ++ntasks;
        if (d->role == LWF_ROLE_DET_LOSS) ++*det;
    }
    if (cf->nsections < 2) return lwf_fail(err, "%s: no layers after [net]", file);
    if (lwf_section_missing(ns, nd))
        return lwf_fail(err, "%s:%d: [net] needs height, width and channels", file, ns->line);
    const lwf_opt *pol = lwf_cfg_opt(ns, "policy");
    if (pol && strcmp(pol->val, "steps") == 0) {
        const lwf_opt *st = lwf_cfg_opt(ns, "steps"), *sc = lwf_cfg_opt(ns, "scales");
        if (!st || !sc) return lwf_fail(err, "%s:%d: policy=steps needs steps= and scales=", file, pol->line);
        if (lwf_check_list(st->val, 0, 0, INT_MAX) != lwf_check_list(sc->val, 1, -1e9, 1e9))
            return lwf_fail(err, "%s:%d: steps= and scales= have different lengths", file, sc->line);
    }
    if (*det) return check_detector(cf, ntasks, err) ? -1 : ntasks;
    if (ntasks == 0) return lwf_fail(err, "%s: no [task] section: an LwF cfg needs at least the new task's head", file);
    return ntasks;
}

/* Phase 2: [net] by libdarknet's parse_net_options, then the plugin's keys, the batch
 * override, the input and the augmentation. */
static int build_net(lwf_model *m, lwf_build *b, const lwf_section *ns, const lwf_build_opts *opts)
{
    const char *file = b->file;
    network *net = m->net;
    dn_kvp *kvps = NULL;
    list *nopts = lwf_section_opts(ns, &kvps);
    if (!nopts) return lwf_fail(b->err, "%s: out of memory", file);
    parse_net_options(nopts, net);
    int batch = option_find_int_quiet(nopts, "batch", 1), sub = option_find_int_quiet(nopts, "subdivisions", 1);
    m->warmup_batches = option_find_int_quiet(nopts, "warmup_batches", 0);
    m->warmup_learning_rate = option_find_float_quiet(nopts, "warmup_learning_rate", net->learning_rate);
    m->aug.flip = option_find_int_quiet(nopts, "flip", 1);
    m->precise_bn = option_find_int_quiet(nopts, "precise_bn", 0);
    int rc = lwf_section_check_used(file, ns, kvps, b->err);
    lwf_section_opts_free(nopts, kvps);
    if (rc) return -1;
    if (batch % sub)
        return lwf_fail(b->err, "%s:%d: [net] subdivisions=%d does not divide batch=%d", file, ns->line, sub, batch);
    if (opts && opts->batch > 0) {
        net->batch = opts->batch;
        net->subdivisions = 1;
    }
    if ((long long)net->h * net->w * net->c > INT_MAX / net->batch)
        return lwf_fail(b->err, "%s:%d: [net] input %dx%dx%d with batch %d is too large", file, ns->line, net->w,
                        net->h, net->c, net->batch);
    net->inputs = net->h * net->w * net->c;
    if (lwf_build_account(b, ns, 2LL * net->inputs * net->batch)) return -1; /* input, maybe its delta */
    m->aug.min = (int)(net->min_ratio * net->w);
    m->aug.max = (int)(net->max_ratio * net->w);
    m->aug.angle = net->angle;
    m->aug.aspect = net->aspect;
    m->aug.hue = net->hue;
    m->aug.saturation = net->saturation;
    m->aug.exposure = net->exposure;
    m->aug.center = net->center;
    if (m->aug.min < 1 || m->aug.max < m->aug.min)
        return lwf_fail(b->err, "%s:%d: [net] crop range %d..%d is empty (min_crop/max_crop)", file, ns->line,
                        m->aug.min, m->aug.max);
    return 0;
}

/* Phase 3, the layers in cfg order: where the walk is in the trunk and heads. */
typedef struct {
    lwf_build b;
    lwf_model *m;
    int cur;             /* current task, -1 while in the trunk */
    int closed;          /* the current head has its loss layer */
    int truths;          /* width of a truth row so far */
    int nnew;            /* heads ending in the new task's loss */
    int det;             /* a detector: one task, no [task] layer */
    int yolo_classes;    /* a detector: classes of its first [yolo] (all must agree) */
    size_t workspace;    /* the largest layer workspace (bytes) */
} walk;

/* A [task] at layer `count`: closes the trunk (or checks the last head is closed) and
 * records the task. */
static int open_task(walk *w, const lwf_section *s, int count)
{
    const char *file = w->b.file;
    lwf_model *m = w->m;
    lwf_err *err = w->b.err;
    if (w->cur >= 0 && !w->closed)
        return lwf_fail(err, "%s:%d: the head of task '%s' (line %d) has no loss layer ([lwf_distill] or "
                             "[softmax]) before this [task]",
                        file, s->line, m->tasks[w->cur].name, m->tasks[w->cur].line);
    if (w->cur < 0) {
        if (count == 0) return lwf_fail(err, "%s:%d: [task] before any trunk layer", file, s->line);
        m->trunk = w->b.trunk = count;
    }
    w->cur = m->ntasks++;
    w->closed = 0;
    lwf_task *t = &m->tasks[w->cur];
    const lwf_opt *name = lwf_cfg_opt(s, "name"), *dataopt = lwf_cfg_opt(s, "data");
    const lwf_keydef *miss = lwf_section_missing(s, lwf_section_def(s->type));
    if (miss) return lwf_fail(err, "%s:%d: [%s] needs %s=", file, s->line, s->type, miss->key);
    for (int k = 0; k < w->cur; ++k)
        if (strcmp(m->tasks[k].name, name->val) == 0)
            return lwf_fail(err, "%s:%d: task name '%s' is already used at line %d", file, name->line, name->val,
                            m->tasks[k].line);
    t->name = lwf_strdup(name->val);
    t->data = dataopt ? lwf_strdup(dataopt->val) : NULL;
    const lwf_opt *ex = lwf_cfg_opt(s, "exemplars"), *share = lwf_cfg_opt(s, "exemplar_share");
    t->exemplars = ex ? lwf_strdup(ex->val) : NULL;
    t->exemplar_share = LWF_EXEMPLAR_SHARE;
    if (share) lwf_parse_float(share->val, 0.001, 0.9, &t->exemplar_share);
    if (share && !ex)
        return lwf_fail(err, "%s:%d: [task] exemplar_share= without exemplars=", file, share->line);
    if (ex && !file_is_readable(ex->val))
        return lwf_fail(err, "%s:%d: [task] exemplars=%s: no such readable file", file, ex->line, ex->val);
    t->line = s->line;
    t->first = count;
    if (dataopt && !file_is_readable(dataopt->val))
        return lwf_fail(err, "%s:%d: [task] data=%s: no such readable file", file, dataopt->line, dataopt->val);
    return 0;
}

/* A grown head ([lwf_softmax] at layer `count`): its truth slice also holds the teacher's K
 * logits, and its class layer (walking back over layers that store nothing and keep each
 * channel apart: [avgpool], [dropout], [activation]) is a [convolutional] or [connected] of
 * the head with one output per class, whose rows 0..K-1 are the old model's. */
static int grown_head(walk *w, const lwf_section *s, lwf_task *t, int count)
{
    const lwf_opt *o = lwf_cfg_opt(s, "old_classes");
    int k = 0;
    if (!o || lwf_parse_int(o->val, 1, 1 << 24, &k)) return 0; /* make_grow says what is wrong */
    t->old_classes = k;
    w->truths += k;
    const network *net = w->b.net;
    int c = count - 1;
    while (c > t->first && (net->layers[c].type == AVGPOOL || net->layers[c].type == DROPOUT ||
                            net->layers[c].type == ACTIVE))
        --c;
    const layer *l = &net->layers[c];
    const lwf_layer_kind *kind = lwf_layer_kind_of(l);
    if (c <= t->first || (l->type != CONVOLUTIONAL && l->type != CONNECTED) || kind->units(l) != t->classes)
        return lwf_fail(w->b.err, "%s:%d: [%s] of task '%s': its class layer must be a [convolutional] or [connected] "
                                  "of the head giving one output per class (%d), followed only by [avgpool], "
                                  "[dropout] or [activation]",
                        w->b.file, s->line, s->type, t->name, t->classes);
    t->class_layer = c;
    return 0;
}

/* A loss section (role old or new) at layer `count` with `inputs` logits: closes the
 * current head and gives it its slice of the truth row. */
static int close_head(walk *w, const lwf_section *s, lwf_sec_role role, int count, int inputs)
{
    const char *file = w->b.file;
    lwf_model *m = w->m;
    if (w->cur < 0)
        return lwf_fail(w->b.err, "%s:%d: loss layer [%s] before the first [task]: the trunk cannot end in a loss",
                        file, s->line, s->type);
    lwf_task *t = &m->tasks[w->cur];
    if (count == t->first)
        return lwf_fail(w->b.err, "%s:%d: the head of task '%s' has no layers before its loss", file, s->line,
                        t->name);
    t->loss = count;
    t->classes = inputs;
    t->offset = w->truths;
    w->truths += inputs;
    w->closed = 1;
    t->class_layer = -1;
    if (lwf_section_is(s, LWF_SEC_GROW) && grown_head(w, s, t, count)) return -1;
    if (t->exemplars && !t->old_classes)
        return lwf_fail(w->b.err, "%s:%d: [task] exemplars= of task '%s': old-class images go to a grown head (one "
                                  "ending in [lwf_softmax])",
                        file, t->line, t->name);
    if (role != LWF_ROLE_NEW_LOSS) return 0;
    t->is_new = 1;
    if (++w->nnew > 1)
        return lwf_fail(w->b.err, "%s:%d: a second new head (task '%s' ends in [softmax]); exactly one task is new, "
                                  "old tasks end in [lwf_distill]",
                        file, s->line, t->name);
    m->new_task = w->cur;
    return 0;
}

/* A detector's [task] (right after [net]): the task's name and .data; it makes no layer. */
static int detector_task(walk *w, const lwf_section *s)
{
    const lwf_opt *name = lwf_cfg_opt(s, "name"), *dataopt = lwf_cfg_opt(s, "data");
    lwf_task *t = &w->m->tasks[0];
    if (!name) return lwf_fail(w->b.err, "%s:%d: [task] needs name=", w->b.file, s->line);
    const lwf_secdef *d = lwf_section_def(s->type);
    dn_size_params p = {0};
    if (d->check && d->check(&w->b, s, &p)) return -1; /* the name's own rules */
    t->name = lwf_strdup(name->val);
    t->data = dataopt ? lwf_strdup(dataopt->val) : NULL;
    t->line = s->line;
    if (dataopt && !file_is_readable(dataopt->val))
        return lwf_fail(w->b.err, "%s:%d: [task] data=%s: no such readable file", w->b.file, dataopt->line,
                        dataopt->val);
    return 0;
}

/* A detector's [yolo] or [lwf_yolo], layer `count` (l): one of the task's losses.  Every one
 * has the same classes; an [lwf_yolo]'s slice of the truth row holds the teacher's output
 * for it (masks x (4 + 1 + old_classes) planes of w x h), after the boxes. */
static int detector_loss(walk *w, const lwf_section *s, layer *l, int count)
{
    lwf_task *t = &w->m->tasks[0];
    if (!w->yolo_classes) w->yolo_classes = l->classes;
    if (l->classes != w->yolo_classes)
        return lwf_fail(w->b.err, "%s:%d: [%s] classes=%d, but the detector's first one has classes=%d", w->b.file,
                        s->line, s->type, l->classes, w->yolo_classes);
    lwf_yolo_params *q = (lwf_yolo_params *)lwf_loss_params_of(l);
    if (!w->truths) w->truths = LWF_YOLO_BOXES * 5;
    q->loss.offset = w->truths;
    if (q->old_classes > 0) w->truths += l->n * (4 + 1 + q->old_classes) * l->w * l->h;
    t->loss = count;
    t->classes = l->classes;
    w->closed = 1;
    return 0;
}

/* Phase 4 of a detector: its one task (named after the cfg file without a [task]), every
 * [yolo] layer's row width. */
static int finish_detector(walk *w)
{
    lwf_model *m = w->m;
    lwf_task *t = &m->tasks[0];
    m->ntasks = 1;
    m->new_task = 0;
    m->trunk = 0;
    m->detector = 1;
    t->first = 0;
    t->is_new = 1;
    t->offset = 0;
    if (!t->name) t->name = lwf_path_stem(w->b.file);
    if (!t->name) return lwf_fail(w->b.err, "%s: out of memory", w->b.file);
    for (int i = 0; i < w->b.net->n; ++i)
        if (w->b.net->layers[i].type == YOLO) lwf_loss_params_of(&w->b.net->layers[i])->truths = w->truths;
    return 0;
}

/* One section, layer p->index: its place in the trunk and heads, then its layer, made by
 * the table's maker; p moves on to the layer's output. */
static int walk_section(walk *w, const lwf_section *s, dn_size_params *p)
{
    const lwf_secdef *d = lwf_section_def(s->type);
    int count = p->index;
    int rc = 0;
    if (d->role == LWF_ROLE_TASK) {
        rc = open_task(w, s, count);
    } else if (w->cur >= 0 && w->closed) {
        rc = lwf_fail(w->b.err, "%s:%d: [%s] after the loss layer of task '%s': a head ends with its loss", w->b.file,
                      s->line, s->type, w->m->tasks[w->cur].name);
    } else if (d->role == LWF_ROLE_OLD_LOSS || d->role == LWF_ROLE_NEW_LOSS) {
        rc = close_head(w, s, d->role, count, p->inputs);
    } else if (w->det) {
        w->b.other_lo = w->b.other_hi = 0;
    } else {
        /* a head may read the trunk or its own layers, never another head's */
        w->b.other_lo = w->cur < 0 ? 0 : w->m->trunk;
        w->b.other_hi = w->cur < 0 ? 0 : w->m->tasks[w->cur].first;
    }
    if (rc) return -1;
    network *net = w->b.net;
    layer l = {0};
    rc = d->make(&w->b, s, *p, &l);
    net->layers[net->n++] = l; /* on failure too: freed with the model */
    if (rc) return -1;
    if (l.workspace_size > w->workspace) w->workspace = l.workspace_size;
    if (d->role == LWF_ROLE_DET_LOSS && detector_loss(w, s, &l, count)) return -1;
    p->h = l.out_h;
    p->w = l.out_w;
    p->c = l.out_c;
    p->inputs = l.outputs;
    return 0;
}

static int walk_layers(walk *w, const lwf_cfgfile *cf, const lwf_build_opts *opts)
{
    network *net = w->b.net;
    dn_size_params p = {net->batch, net->inputs, net->h, net->w, net->c, 0, 1, net};
    int skip = 0; /* a detector's [task] makes no layer */
    for (int i = 1; i < cf->nsections; ++i) {
        if (w->det && lwf_section_role(&cf->sections[i]) == LWF_ROLE_TASK) {
            if (detector_task(w, &cf->sections[i])) return -1;
            skip = 1;
            continue;
        }
        p.index = i - 1 - skip;
        w->m->line[p.index] = cf->sections[i].line;
        if (!opts || !opts->quiet) fprintf(stderr, "%5d ", p.index);
        if (walk_section(w, &cf->sections[i], &p)) return -1;
    }
    return 0;
}

/* Phase 4: every head closed, exactly one new head and it is the last; each loss layer
 * reads its slice of a truth row (batch, truths). */
static int finish_heads(walk *w)
{
    if (w->det) return finish_detector(w);
    const char *file = w->b.file;
    lwf_model *m = w->m;
    if (w->cur >= 0 && !w->closed)
        return lwf_fail(w->b.err, "%s:%d: the head of task '%s' has no loss layer ([lwf_distill] or [softmax])", file,
                        m->tasks[w->cur].line, m->tasks[w->cur].name);
    if (w->nnew == 0)
        return lwf_fail(w->b.err, "%s: no new head: exactly one task must end in [softmax] (the new task)", file);
    if (m->new_task != m->ntasks - 1)
        return lwf_fail(w->b.err, "%s:%d: the new task '%s' must be the last head (old heads come first, in the order "
                                  "their weights are stored)",
                        file, m->tasks[m->new_task].line, m->tasks[m->new_task].name);
    for (int k = 0; k < m->ntasks; ++k) {
        lwf_loss_params *lp = lwf_loss_params_of(&m->net->layers[m->tasks[k].loss]);
        lp->offset = m->tasks[k].offset;
        lp->truths = w->truths;
    }
    return 0;
}

/* Phase 5: the network's own buffers: input, truth rows, the shared workspace. */
static int alloc_buffers(walk *w, const lwf_section *ns)
{
    network *net = w->b.net;
    const char *file = w->b.file;
    int truths = w->truths;
    size_t workspace = w->workspace;
    if (lwf_build_account(&w->b, ns, (long long)truths * net->batch + (long long)(workspace / sizeof(float))))
        return -1;
    layer *last = &net->layers[net->n - 1];
    net->outputs = last->outputs;
    net->output = last->output;
    net->truths = truths;
    net->input = calloc((size_t)net->inputs * net->batch, sizeof(float));
    net->truth = calloc((size_t)truths * net->batch, sizeof(float));
    if (workspace) net->workspace = calloc(1, workspace);
    /* (batch, inputs) delta of the network's input, never read: only for a first layer
     * whose backward writes its input delta unconditionally (see lwf_backward) */
    int need_delta = !lwf_layer_skips_null_delta(&net->layers[0]);
    if (need_delta) net->delta = calloc((size_t)net->inputs * net->batch, sizeof(float));
    if (!net->input || !net->truth || (workspace && !net->workspace) || (need_delta && !net->delta))
        return lwf_fail(w->b.err, "%s: out of memory", file);
    return 0;
}

/* Phase 6: a task's .data must agree with its head. */
static int check_task_data(const lwf_model *m, const char *file, lwf_err *err)
{
    for (int k = 0; k < m->ntasks; ++k) {
        const lwf_task *t = &m->tasks[k];
        if (!t->data) continue;
        lwf_datacfg d;
        lwf_err derr;
        if (lwf_datacfg_read(t->data, &d, &derr))
            return lwf_fail(err, "%s:%d: task '%s': %s", file, t->line, t->name, derr.msg);
        int classes = d.classes;
        lwf_datacfg_free(&d);
        if (classes != t->classes)
            return lwf_fail(err, "%s:%d: task '%s': %s has classes=%d but the head outputs %d values", file, t->line,
                            t->name, t->data, classes, t->classes);
    }
    return 0;
}

static int build(lwf_model *m, const lwf_cfgfile *cf, const lwf_build_opts *opts, lwf_err *err)
{
    const char *file = cf->path;
    int det = 0;
    int ntasks = check_sections(cf, &det, err);
    if (ntasks < 0) return -1;
    int n = cf->nsections - 1 - (det && ntasks); /* a detector's [task] makes no layer */
    if (det) ntasks = 1;
    network *net = make_network(n);
    if (!net) return lwf_fail(err, "%s: out of memory", file);
    net->n = 0; /* counts the layers built so far, so a failure frees only those */
    m->net = net;
    m->line = calloc((size_t)n, sizeof *m->line);
    m->tasks = calloc((size_t)ntasks, sizeof *m->tasks);
    if (!m->line || !m->tasks) return lwf_fail(err, "%s: out of memory", file);

    walk w = {{file, err, net, 0, memory_budget(), 0, 0, 0, NULL}, m, -1, 0, 0, 0, det > 0, 0, 0};
    w.b.line = m->line;
    const lwf_section *ns = &cf->sections[0];
    if (build_net(m, &w.b, ns, opts) || walk_layers(&w, cf, opts) || finish_heads(&w) || alloc_buffers(&w, ns) ||
        check_task_data(m, file, err))
        return -1;
    /* each head's [task] reads the trunk's output where it lies instead of copying it,
     * unless the head's first layer works in place on its input ([dropout]) */
    for (int k = 0; k < m->ntasks && !m->detector; ++k) lwf_task_share_output(net, m->tasks[k].first);
    /* the fast CPU kernels (the layers run Darknet's own while lwf_reference() is on); a
     * grown head's class layer keeps its old filters' outputs the old model's */
    if (lwf_kernels_install(net, err)) return -1;
    for (int i = 0; i < net->n; ++i) {
        int runs, stride, rows;
        if (lwf_grown_rows(m, i, &runs, &stride, &rows) && lwf_kernels_split_rows(net, i, rows, stride, err))
            return -1;
    }
    return 0;
}

int lwf_det_old_classes(const lwf_model *m)
{
    for (int i = 0; i < m->net->n; ++i)
        if (m->net->layers[i].type == YOLO)
            return ((const lwf_yolo_params *)lwf_loss_params_of(&m->net->layers[i]))->old_classes;
    return 0;
}

int lwf_grown_rows(const lwf_model *m, int i, int *runs, int *stride, int *rows)
{
    const network *net = m->net;
    const lwf_task *nt = m->new_task >= 0 ? &m->tasks[m->new_task] : NULL;
    if (!m->detector && nt && nt->old_classes && nt->class_layer == i) {
        *runs = 1;
        *stride = net->layers[i].type == CONNECTED ? net->layers[i].outputs : net->layers[i].n;
        *rows = nt->old_classes;
        return 1;
    }
    if (!m->detector || i + 1 >= net->n || net->layers[i].type != CONVOLUTIONAL || net->layers[i + 1].type != YOLO)
        return 0;
    const layer *y = &net->layers[i + 1];
    const lwf_loss_params *p = lwf_loss_params_of(y);
    int K = p ? ((const lwf_yolo_params *)p)->old_classes : 0;
    if (K <= 0) return 0;
    *runs = y->n; /* the anchors of its mask */
    *stride = 5 + y->classes;
    *rows = 5 + K;
    return 1;
}

/* Sets option key of s to val (added when absent). */
static int set_opt(lwf_section *s, const char *key, const char *val)
{
    for (int i = 0; i < s->nopts; ++i)
        if (strcmp(s->opts[i].key, key) == 0) {
            char *v = lwf_strdup(val);
            if (!v) return -1;
            free(s->opts[i].val);
            s->opts[i].val = v;
            return 0;
        }
    lwf_opt *no = realloc(s->opts, (size_t)(s->nopts + 1) * sizeof *no);
    if (!no) return -1;
    s->opts = no;
    no[s->nopts].key = lwf_strdup(key);
    no[s->nopts].val = lwf_strdup(val);
    no[s->nopts].line = s->line;
    s->nopts++;
    return no[s->nopts - 1].key && no[s->nopts - 1].val ? 0 : -1;
}

/* Removes option key of s, if it has one. */
static void drop_opt(lwf_section *s, const char *key)
{
    for (int j = 0; j < s->nopts; ++j)
        if (strcmp(s->opts[j].key, key) == 0) {
            free(s->opts[j].key);
            free(s->opts[j].val);
            memmove(&s->opts[j], &s->opts[j + 1], (size_t)(s->nopts - j - 1) * sizeof *s->opts);
            s->nopts--;
            return;
        }
}

/* The old detector of a grown one (lwf_build_opts.old_detector), in cf: each [lwf_yolo]
 * becomes the [yolo] it grew from (classes = old_classes, without the plugin's keys) and
 * the convolution before it gets (old_classes + 5) x masks filters; its [task] loses data=
 * (the grown task's .data, over K + M classes). */
static int as_old_detector(lwf_cfgfile *cf, lwf_err *err)
{
    for (int i = 1; i < cf->nsections; ++i) {
        lwf_section *s = &cf->sections[i];
        const lwf_secdef *d = lwf_section_def(s->type);
        if (d && d->kind == LWF_SEC_TASK) drop_opt(s, "data"); /* the grown task's .data: K + M classes */
        if (!d || d->kind != LWF_SEC_LWF_YOLO) continue;
        const lwf_opt *ko = lwf_cfg_opt(s, "old_classes"), *mo = lwf_cfg_opt(s, "mask"), *no = lwf_cfg_opt(s, "num");
        if (!ko) continue; /* the builder reports it */
        char kv[32], fv[32];
        int K = 0, masks = 1;
        lwf_parse_int(ko->val, 1, 1 << 16, &K);
        if (mo) masks = lwf_check_list(mo->val, 0, 0, INT_MAX);
        else if (no) lwf_parse_int(no->val, 1, 1 << 10, &masks);
        snprintf(kv, sizeof kv, "%d", K);
        snprintf(fv, sizeof fv, "%d", (K + 5) * (masks > 0 ? masks : 1));
        int k = 0;
        for (int j = 0; j < s->nopts; ++j) { /* drop the plugin's keys */
            const lwf_keydef *kd = lwf_section_key(d, s->opts[j].key);
            if (kd && (kd->flags & LWF_KEY_OURS)) {
                free(s->opts[j].key);
                free(s->opts[j].val);
            } else {
                s->opts[k++] = s->opts[j];
            }
        }
        s->nopts = k;
        char *type = lwf_strdup("yolo");
        if (!type || set_opt(s, "classes", kv) ||
            (lwf_section_is(&cf->sections[i - 1], LWF_SEC_CONV) && set_opt(&cf->sections[i - 1], "filters", fv))) {
            free(type);
            return lwf_fail(err, "%s: out of memory", cf->path);
        }
        free(s->type);
        s->type = type;
    }
    return 0;
}

static lwf_model *load(const char *cfgpath, const lwf_build_opts *opts, int old_detector, lwf_err *err)
{
    lwf_cfgfile cf;
    if (lwf_cfg_read(cfgpath, &cf, err)) return NULL;
    if (old_detector && as_old_detector(&cf, err)) {
        lwf_cfg_free(&cf);
        return NULL;
    }
    lwf_model *m = calloc(1, sizeof *m);
    if (!m) {
        lwf_cfg_free(&cf);
        lwf_fail(err, "%s: out of memory", cfgpath);
        return NULL;
    }
    m->cfg = lwf_strdup(cfgpath);
    /* libdarknet's parse_<section> functions print their line of the layer table on
     * stderr whatever we ask; quiet leaves out only ours (see lwf_build_opts) */
    int quiet = opts && opts->quiet;
    if (!quiet) fprintf(stderr, "layer     filters    size              input                output\n");
    int rc = build(m, &cf, opts, err);
    if (rc && !quiet) fputc('\n', stderr); /* end the layer table's half-written line */
    lwf_cfg_free(&cf);
    if (rc) {
        lwf_model_free(m);
        return NULL;
    }
    return m;
}

lwf_model *lwf_model_load(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err)
{
    return load(cfgpath, opts, 0, err);
}

lwf_model *lwf_model_load_old_detector(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err)
{
    return load(cfgpath, opts, 1, err);
}

int lwf_cfg_is_detector(const char *cfgpath)
{
    lwf_cfgfile cf;
    lwf_err err;
    if (lwf_cfg_read(cfgpath, &cf, &err)) return 0;
    int det = 0;
    for (int i = 0; i < cf.nsections; ++i) det |= lwf_section_role(&cf.sections[i]) == LWF_ROLE_DET_LOSS;
    lwf_cfg_free(&cf);
    return det;
}

void lwf_model_free(lwf_model *m)
{
    if (!m) return;
    network *net = m->net;
    if (net) {
        for (int k = 0; k < m->ntasks && !m->detector; ++k)
            if (m->tasks[k].first > 0 && m->tasks[k].first < net->n) lwf_task_unshare_output(net, m->tasks[k].first);
        for (int i = 0; i < net->n; ++i) lwf_layer_free(net->layers[i]);
        free(net->layers);
        free(net->input);
        free(net->delta);
        free(net->truth);
        free(net->workspace);
        free(net->seen);
        free(net->t);
        free(net->cost);
        free(net->scales);
        free(net->steps);
        free(net);
    }
    for (int k = 0; k < m->ntasks; ++k) {
        free(m->tasks[k].name);
        free(m->tasks[k].data);
        free(m->tasks[k].exemplars);
    }
    free(m->tasks);
    free(m->line);
    free(m->cfg);
    free(m);
}

int lwf_task_find(const lwf_model *m, const char *name)
{
    for (int k = 0; k < m->ntasks; ++k)
        if (strcmp(m->tasks[k].name, name) == 0) return k;
    return -1;
}

lwf_task_loss lwf_task_loss_of(const lwf_model *m, int task)
{
    const lwf_loss_params *p = lwf_loss_params_of(&m->net->layers[m->tasks[task].loss]);
    lwf_task_loss l = {p->temperature, p->lambda, p->t2_scaling};
    return l;
}

int lwf_old_layers(const lwf_model *m)
{
    return m->tasks[m->new_task].first;
}
