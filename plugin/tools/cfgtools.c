/* Cfg tools: `lwf init` writes an LwF cfg from a stock classifier cfg (or adds a new head
 * to an LwF cfg; -grow: one head, or a detector, over the old classes and the new ones);
 * `lwf export` writes one task of an LwF model (or a detector) as a stock cfg + .weights.
 * Cfgs are read with lwf_cfg_read and sections known by the section table
 * (cfg/sections.c); building networks is left to cfg/builder.c. */
#define _POSIX_C_SOURCE 200809L
#include "tools/tools.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* precise_bn= that lwf init writes: 50 batches of the new task's images re-estimate the
 * batch-norm statistics at the end of each phase (chosen on P2: README "Batch-norm
 * statistics"); a cfg that sets precise_bn keeps its value, and 0 is stock Darknet's. */
#define LWF_INIT_PRECISE_BN 50

/* ---- a growing text buffer ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        b->oom = 1;
        return;
    }
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + (size_t)need + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

/* ---- section kinds: the builder's section table (cfg/sections.c), aliases included ---- */

static int is_net(const lwf_section *s) { return lwf_section_role(s) == LWF_ROLE_NET; }
static int is_softmax(const lwf_section *s) { return lwf_section_is(s, LWF_SEC_SOFTMAX); }
static int is_task(const lwf_section *s) { return lwf_section_role(s) == LWF_ROLE_TASK; }
static int is_loss(const lwf_section *s)
{
    lwf_sec_role r = lwf_section_role(s);
    return r == LWF_ROLE_OLD_LOSS || r == LWF_ROLE_NEW_LOSS;
}
/* The key of a layer's output count when it can produce the class scores (filters= of a
 * [convolutional], output= of a [connected]), else NULL. */
static const char *class_key(const lwf_section *s)
{
    const lwf_secdef *d = lwf_section_def(s->type);
    return d ? d->class_key : NULL;
}
/* Shape-only layers: no weights, and each output depends on one channel's values only. */
static int is_shape_only(const lwf_section *s)
{
    const lwf_secdef *d = lwf_section_def(s->type);
    return d && (d->flags & LWF_SEC_SHAPE_ONLY);
}
/* Whether key k of s holds layer numbers ([route] layers=, [shortcut] from=). */
static int is_layer_ref(const lwf_section *s, const char *key)
{
    const lwf_secdef *d = lwf_section_def(s->type);
    const lwf_keydef *k = d ? lwf_section_key(d, key) : NULL;
    return k && (k->flags & LWF_KEY_LAYERREF);
}
/* Whether key of s is the plugin's in a stock section ([net] warmup_batches, ...). */
static int is_our_key(const lwf_section *s, const char *key)
{
    const lwf_secdef *d = lwf_section_def(s->type);
    const lwf_keydef *k = d ? lwf_section_key(d, key) : NULL;
    return k && (k->flags & LWF_KEY_OURS);
}

/* ---- writing sections ---- */

/* How layer references ([route] layers=, [shortcut] from=) of copied sections move: a
 * reference to a source layer below `keep` stays; one into [src_lo, src_hi) moves to
 * dst_lo + (a - src_lo); one to `src_alias` (>= 0) becomes `dst_alias`.  Relative
 * references stay relative. */
typedef struct {
    int keep;
    int src_lo, src_hi, dst_lo;
    int src_alias, dst_alias;
} refmap;

static int map_ref(const char *file, const lwf_section *s, const lwf_opt *o, const char *tok, int src_pos,
                   int dst_pos, const refmap *rm, sbuf *out, lwf_err *err)
{
    int v;
    if (lwf_parse_int(tok, -INT_MAX, INT_MAX, &v))
        return lwf_fail(err, "%s:%d: [%s] %s: '%s' is not a layer number", file, o->line, s->type, o->key, tok);
    int a = v < 0 ? src_pos + v : v;
    if (a < 0 || a >= src_pos)
        return lwf_fail(err, "%s:%d: [%s] %s=%s refers to layer %d, not an earlier layer", file, o->line, s->type,
                        o->key, o->val, a);
    int d;
    if (a < rm->keep) d = a;
    else if (a >= rm->src_lo && a < rm->src_hi) d = rm->dst_lo + (a - rm->src_lo);
    else if (a == rm->src_alias) d = rm->dst_alias;
    else
        return lwf_fail(err, "%s:%d: [%s] %s=%s reads layer %d, which is outside this head and the trunk", file,
                        o->line, s->type, o->key, o->val, a);
    sb_printf(out, "%d", v < 0 ? d - dst_pos : d);
    return 0;
}

/* Writes option o of s, a list of layer numbers, as "key=..." with each moved by rm. */
static int emit_refs(sbuf *out, const char *file, const lwf_section *s, const lwf_opt *o, const refmap *rm,
                     int src_pos, int dst_pos, lwf_err *err)
{
    sb_printf(out, "%s=", o->key);
    char *copy = lwf_strdup(o->val);
    if (!copy) return lwf_fail(err, "%s: out of memory", file);
    if (!copy[0] || copy[0] == ',' || copy[strlen(copy) - 1] == ',' || strstr(copy, ",,")) {
        free(copy);
        return lwf_fail(err, "%s:%d: [%s] %s=%s is not a list of layer numbers", file, o->line, s->type, o->key,
                        o->val);
    }
    char *save = NULL;
    int first = 1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!first) sb_printf(out, ",");
        first = 0;
        if (map_ref(file, s, o, tok, src_pos, dst_pos, rm, out, err)) {
            free(copy);
            return -1;
        }
    }
    free(copy);
    sb_printf(out, "\n");
    return 0;
}

/* Writes section s as "[type]" and its key=value lines.  `replace_key` (may be NULL)
 * gets `replace_val`; with rm, layer references are moved (s is layer src_pos of its
 * file, written as layer dst_pos).  With drop_ours, the plugin's keys of a stock section
 * (the section table's LWF_KEY_OURS) are left out. */
static int emit(sbuf *out, const char *file, const lwf_section *s, const char *replace_key, const char *replace_val,
                int drop_ours, const refmap *rm, int src_pos, int dst_pos, lwf_err *err)
{
    sb_printf(out, "[%s]\n", s->type);
    for (int i = 0; i < s->nopts; ++i) {
        const lwf_opt *o = &s->opts[i];
        if (drop_ours && is_our_key(s, o->key)) continue;
        if (replace_key && strcmp(o->key, replace_key) == 0) {
            sb_printf(out, "%s=%s\n", o->key, replace_val);
            continue;
        }
        if (rm && is_layer_ref(s, o->key)) {
            if (emit_refs(out, file, s, o, rm, src_pos, dst_pos, err)) return -1;
            continue;
        }
        sb_printf(out, "%s=%s\n", o->key, o->val);
    }
    sb_printf(out, "\n");
    return 0;
}

/* A name or path written as a cfg value must read back the same: lwf_cfg_read drops
 * blanks and cuts at '#'. */
static int check_value_text(const char *what, const char *v, lwf_err *err)
{
    if (!v[0]) return lwf_fail(err, "%s is empty", what);
    for (const char *p = v; *p; ++p)
        if (*p == '#' || (unsigned char)*p <= ' ' || *p == 0x7f)
            return lwf_fail(err, "%s '%s' cannot be written into a cfg: it holds a blank, a control character or '#'",
                            what, v);
    return 0;
}

/* Basename of path without its last extension, into out (cut at cap). */
static void stem(const char *path, char *out, size_t cap)
{
    char *s = lwf_path_stem(path);
    snprintf(out, cap, "%s", s ? s : "");
    free(s);
}

/* The class-producing layer of a head ending at section `loss`: walking back from the
 * loss over shape-only sections, the first section must be a [convolutional] or
 * [connected] with filters= / output= given, and not before section `lo`.  Returns its
 * section index or -1 with err set. */
static int find_class_layer(const lwf_cfgfile *cf, int lo, int loss, int *classes, lwf_err *err)
{
    int c = loss - 1;
    while (c >= lo && is_shape_only(&cf->sections[c])) --c;
    if (c < lo || c < 1) {
        const lwf_section *s = &cf->sections[loss];
        return lwf_fail(err, "%s:%d: class count not found: no [convolutional] or [connected] layer before the head's "
                             "[%s] (only shape-only layers in between)",
                        cf->path, s->line, s->type);
    }
    const lwf_section *s = &cf->sections[c];
    if (!class_key(s))
        return lwf_fail(err, "%s:%d: class count not found: [%s] feeds the [%s] at line %d; the class scores must "
                             "come from a [convolutional] (filters=) or [connected] (output=) layer, followed only "
                             "by [avgpool], [dropout] or [activation]",
                        cf->path, s->line, s->type, cf->sections[loss].type, cf->sections[loss].line);
    const char *key = class_key(s);
    const lwf_opt *o = lwf_cfg_opt(s, key);
    if (!o) return lwf_fail(err, "%s:%d: class count not found: [%s] has no %s=", cf->path, s->line, s->type, key);
    if (lwf_parse_int(o->val, 1, 1 << 24, classes))
        return lwf_fail(err, "%s:%d: [%s] %s must be a positive integer, got '%s'", cf->path, o->line, s->type, key,
                        o->val);
    return c;
}

/* [net] as written, with warmup_batches (max_batches / 2), warmup_learning_rate
 * (learning_rate, or Darknet's default 0.001) and precise_bn (LWF_INIT_PRECISE_BN batches:
 * the batch-norm re-estimation at the end of each phase, README "Batch-norm statistics")
 * added when absent. */
static int emit_net(sbuf *out, const lwf_cfgfile *cf, lwf_err *err)
{
    const lwf_section *ns = &cf->sections[0];
    sb_printf(out, "[%s]\n", ns->type);
    for (int i = 0; i < ns->nopts; ++i) sb_printf(out, "%s=%s\n", ns->opts[i].key, ns->opts[i].val);
    if (!lwf_cfg_opt(ns, "warmup_batches")) {
        const lwf_opt *mb = lwf_cfg_opt(ns, "max_batches");
        int max = 0;
        if (mb && lwf_parse_int(mb->val, 0, INT_MAX, &max))
            return lwf_fail(err, "%s:%d: [%s] max_batches must be an integer >= 0, got '%s'", cf->path, mb->line,
                            ns->type, mb->val);
        sb_printf(out, "warmup_batches=%d\n", max / 2);
    }
    if (!lwf_cfg_opt(ns, "warmup_learning_rate")) {
        const lwf_opt *lr = lwf_cfg_opt(ns, "learning_rate");
        sb_printf(out, "warmup_learning_rate=%s\n", lr ? lr->val : "0.001");
    }
    if (!lwf_cfg_opt(ns, "precise_bn")) sb_printf(out, "precise_bn=%d\n", LWF_INIT_PRECISE_BN);
    sb_printf(out, "\n");
    return 0;
}

/* A [softmax] that becomes an old head's [lwf_distill] must be one softmax over all outputs. */
static int check_softmax_groups(const char *file, const lwf_section *s, lwf_err *err)
{
    const lwf_opt *g = lwf_cfg_opt(s, "groups");
    if (g && strcmp(g->val, "1") != 0)
        return lwf_fail(err, "%s:%d: [%s] groups=%s: an old head is distilled with one softmax over its outputs, so "
                             "groups must be 1",
                        file, g->line, s->type, g->val);
    return 0;
}

static const char *distill_text = "[lwf_distill]\ntemperature=2\nlambda=1\n\n";

/* The new head: `[task]`, the sections [lo, loss) of cf (the head it mirrors) with the
 * class count replaced, then its [softmax] (the mirrored head's keys when it ended in
 * one, else groups=1).  rm moves its layer references; dst is the new [task]'s layer index. */
static int emit_new_head(sbuf *out, const lwf_cfgfile *cf, int lo, int loss, int cls, int classes, const char *name,
                         const char *datapath, refmap rm, int dst, lwf_err *err)
{
    sb_printf(out, "[task]\nname=%s\ndata=%s\n\n", name, datapath);
    char cv[32];
    snprintf(cv, sizeof cv, "%d", classes);
    for (int i = lo; i < loss; ++i) {
        const lwf_section *s = &cf->sections[i];
        if (emit(out, cf->path, s, i == cls ? class_key(s) : NULL, cv, 0, &rm, i - 1, dst + 1 + (i - lo), err))
            return -1;
    }
    if (is_softmax(&cf->sections[loss])) return emit(out, cf->path, &cf->sections[loss], NULL, NULL, 0, NULL, 0, 0, err);
    sb_printf(out, "[softmax]\ngroups=1\n\n");
    return 0;
}

static int task_name_used(const lwf_cfgfile *cf, const char *name)
{
    for (int i = 0; i < cf->nsections; ++i) {
        if (!is_task(&cf->sections[i])) continue;
        const lwf_opt *o = lwf_cfg_opt(&cf->sections[i], "name");
        if (o && strcmp(o->val, name) == 0) return 1;
    }
    return 0;
}

/* A task name made from a file name: shorter than 200 characters (room for a -N suffix in
 * lwf_init_info's names) and, as the [task] check wants, without ',' or '"' (CSV). */
static int check_task_name(const char *what, const char *name, lwf_err *err)
{
    if (strlen(name) >= 200)
        return lwf_fail(err, "%s '%s' is %zu characters long, at most 199: rename the file", what, name, strlen(name));
    if (name[strcspn(name, ",\"")])
        return lwf_fail(err, "%s '%s' holds ',' or '\"', which a task name may not (it goes into CSV files): rename "
                             "the file",
                        what, name);
    return 0;
}

/* new.data's stem, made unique among cf's task names (and `other`) with -2, -3, ... */
static int new_task_name(const lwf_cfgfile *cf, const char *other, const char *newdata, char *out, size_t cap,
                         lwf_err *err)
{
    char base[256];
    stem(newdata, base, sizeof base);
    if (check_task_name("new task name (from the .data's file name)", base, err)) return -1;
    snprintf(out, cap, "%s", base);
    for (int k = 2; task_name_used(cf, out) || (other && strcmp(out, other) == 0); ++k)
        snprintf(out, cap, "%.199s-%d", base, k); /* base is under 200: checked */
    return 0;
}

/* Stock classifier cfg -> trunk, old head ([lwf_distill]), new head ([softmax]). */
static int init_from_stock(const lwf_cfgfile *cf, const lwf_datacfg *nd, int split, sbuf *out,
                           lwf_init_info *info, lwf_err *err)
{
    const char *file = cf->path;
    if (!is_net(&cf->sections[0]))
        return lwf_fail(err, "%s:%d: the first section must be [net], got [%s]", file, cf->sections[0].line,
                        cf->sections[0].type);
    const lwf_section *ns = &cf->sections[0];
    if (lwf_section_missing(ns, lwf_section_def(ns->type)))
        return lwf_fail(err, "%s:%d: [%s] has no height, width or channels: lwf init needs an image classifier cfg",
                        file, ns->line, ns->type);
    int last = cf->nsections - 1;
    const lwf_section *sm = &cf->sections[last];
    if (last < 1 || !is_softmax(sm))
        return lwf_fail(err, "%s:%d: no final [softmax]: the last section is [%s]; lwf init needs a classifier cfg "
                             "that ends in [softmax]",
                        file, sm->line, sm->type);
    for (int i = 1; i < last; ++i) {
        const lwf_section *s = &cf->sections[i];
        if (is_net(s)) return lwf_fail(err, "%s:%d: [%s] given twice", file, s->line, s->type);
        if (is_loss(s))
            return lwf_fail(err, "%s:%d: [%s] before the final [softmax] at line %d: lwf init needs a classifier with "
                                 "one loss, at the end",
                            file, s->line, s->type, sm->line);
    }
    if (check_softmax_groups(file, sm, err)) return -1;
    int classes;
    int cls = find_class_layer(cf, 1, last, &classes, err);
    if (cls < 0) return -1;
    /* head: the earliest section from which everything up to the softmax is the class
     * layer or shape-only; at least one layer must stay in the trunk */
    int head = cls;
    while (head - 1 >= 1 && is_shape_only(&cf->sections[head - 1])) --head;
    if (split >= 0) {
        /* layers 0 .. last-1, the [softmax] being layer last-1 */
        if (split < 1 || split > last - 2)
            return lwf_fail(err, "%s: -split %d is out of range: the old head starts at a layer in 1..%d (the trunk "
                                 "keeps layer 0; the [softmax] is layer %d and the head needs a layer before it)",
                            file, split, last - 2, last - 1);
        if (split + 1 > cls)
            return lwf_fail(err, "%s: -split %d: the head would start after the class-producing layer %d ([%s], "
                                 "line %d), so it could not be given the new class count",
                            file, split, cls - 1, cf->sections[cls].type, cf->sections[cls].line);
        head = split + 1;
    } else if (head < 2) {
        return lwf_fail(err, "%s: no head found: every layer up to the [softmax] would be head, none left for the "
                             "trunk",
                        file);
    }
    char oldname[256], newname[256];
    stem(file, oldname, sizeof oldname);
    if (check_value_text("old task name (from the cfg's file name)", oldname, err) ||
        check_task_name("old task name (from the cfg's file name)", oldname, err) ||
        new_task_name(cf, oldname, nd->path, newname, sizeof newname, err))
        return -1;

    /* written layers: trunk 0..h0-1 (as in the stock cfg), [task] h0, old head h0+1..h0+hn,
     * [lwf_distill], [task], new head, [softmax] */
    int h0 = head - 1;                   /* stock layer index of the head's first layer */
    int hn = last - head;                /* head layers before the loss */
    if (emit_net(out, cf, err)) return -1;
    for (int i = 1; i < head; ++i)
        if (emit(out, file, &cf->sections[i], NULL, NULL, 0, NULL, 0, 0, err)) return -1;
    sb_printf(out, "[task]\nname=%s\n\n", oldname);
    refmap rm = {h0, h0, h0 + hn, h0 + 1, -1, -1};
    for (int i = head; i < last; ++i)
        if (emit(out, file, &cf->sections[i], NULL, NULL, 0, &rm, i - 1, h0 + 1 + (i - head), err)) return -1;
    sb_printf(out, "%s", distill_text);
    int dst = h0 + 1 + hn + 1;           /* the new [task] */
    refmap rn = {h0, h0, h0 + hn, dst + 1, -1, -1};
    if (emit_new_head(out, cf, head, last, cls, nd->classes, newname, nd->path, rn, dst, err)) return -1;

    info->from_lwf = 0;
    info->head = h0;
    info->old_classes = classes;
    info->old_heads = 1;
    snprintf(info->old_task, sizeof info->old_task, "%s", oldname);
    snprintf(info->new_task, sizeof info->new_task, "%s", newname);
    return 0;
}

/* LwF cfg -> the same, every [softmax] head turned old, plus a new head mirroring the last. */
static int init_from_lwf(const lwf_cfgfile *cf, const lwf_datacfg *nd, sbuf *out, lwf_init_info *info,
                         lwf_err *err)
{
    const char *file = cf->path;
    if (!is_net(&cf->sections[0]))
        return lwf_fail(err, "%s:%d: the first section must be [net], got [%s]", file, cf->sections[0].line,
                        cf->sections[0].type);
    int first = 1;
    while (first < cf->nsections && !is_task(&cf->sections[first])) {
        const lwf_section *s = &cf->sections[first];
        if (is_loss(s))
            return lwf_fail(err, "%s:%d: loss layer [%s] before the first [task]: the trunk cannot end in a loss",
                            file, s->line, s->type);
        ++first;
    }
    if (first == 1) return lwf_fail(err, "%s:%d: [task] before any trunk layer", file, cf->sections[1].line);
    /* every head: [task] at t, layers, loss at l; nothing after the loss but the next [task] */
    int heads = 0, last_task = -1, last_loss = -1;
    for (int i = first; i < cf->nsections;) {
        const lwf_section *t = &cf->sections[i];
        if (!is_task(t))
            return lwf_fail(err, "%s:%d: [%s] after a head's loss layer: a head ends with its loss", file, t->line,
                            t->type);
        if (!lwf_cfg_opt(t, "name")) return lwf_fail(err, "%s:%d: [task] needs name=", file, t->line);
        int l = i + 1;
        while (l < cf->nsections && !is_loss(&cf->sections[l])) {
            if (is_task(&cf->sections[l]) || is_net(&cf->sections[l]))
                return lwf_fail(err, "%s:%d: the head of task '%s' (line %d) has no loss layer ([lwf_distill] or "
                                     "[softmax]) before this [%s]",
                                file, cf->sections[l].line, lwf_cfg_opt(t, "name")->val, t->line,
                                cf->sections[l].type);
            ++l;
        }
        if (l == cf->nsections)
            return lwf_fail(err, "%s:%d: the head of task '%s' has no loss layer ([lwf_distill] or [softmax])", file,
                            t->line, lwf_cfg_opt(t, "name")->val);
        if (l == i + 1)
            return lwf_fail(err, "%s:%d: the head of task '%s' has no layers before its loss", file, t->line,
                            lwf_cfg_opt(t, "name")->val);
        if (is_softmax(&cf->sections[l]) && check_softmax_groups(file, &cf->sections[l], err)) return -1;
        ++heads;
        last_task = i;
        last_loss = l;
        i = l + 1;
    }
    int classes;
    int cls = find_class_layer(cf, last_task + 1, last_loss, &classes, err);
    if (cls < 0) return -1;
    char newname[256];
    if (new_task_name(cf, NULL, nd->path, newname, sizeof newname, err)) return -1;

    if (emit_net(out, cf, err)) return -1;
    for (int i = 1; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        if (is_softmax(s) || lwf_section_is(s, LWF_SEC_GROW)) sb_printf(out, "%s", distill_text);
        else if (emit(out, file, s, NULL, NULL, 0, NULL, 0, 0, err)) return -1;
    }
    /* the mirrored head: layers (last_task, last_loss) of the source move to dst + 1 ... */
    int trunk = first - 1, src_task = last_task - 1, dst = cf->nsections - 1;
    refmap rm = {trunk, src_task + 1, last_loss - 1, dst + 1, src_task, dst};
    if (emit_new_head(out, cf, last_task + 1, last_loss, cls, nd->classes, newname, nd->path, rm, dst, err))
        return -1;

    info->from_lwf = 1;
    info->head = -1;
    info->old_classes = classes;
    info->old_heads = heads;
    info->old_task[0] = '\0';
    snprintf(info->new_task, sizeof info->new_task, "%s", newname);
    return 0;
}

int lwf_init_cfg(const char *oldcfg, const char *newdata, const char *outcfg, int split, lwf_init_info *info,
                 lwf_err *err)
{
    lwf_init_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    lwf_datacfg nd;
    lwf_err derr;
    if (lwf_datacfg_read(newdata, &nd, &derr)) return lwf_fail(err, "new task: %s", derr.msg);
    const lwf_file outs[] = {{outcfg, "LwF cfg"}},
                   ins[] = {{oldcfg, "old cfg"},
                            {newdata, "new task's .data"},
                            {nd.train, "new task's train list"},
                            {nd.valid, "new task's valid list"},
                            {nd.labels, "new task's labels"}};
    if (lwf_check_outputs(outs, 1, ins, 5, err)) {
        lwf_datacfg_free(&nd);
        return -1;
    }
    if (check_value_text("new .data path", newdata, err)) {
        lwf_datacfg_free(&nd);
        return -1;
    }
    lwf_cfgfile cf;
    if (lwf_cfg_read(oldcfg, &cf, err)) {
        lwf_datacfg_free(&nd);
        return -1;
    }
    int lwf = 0;
    for (int i = 0; i < cf.nsections; ++i) lwf |= is_task(&cf.sections[i]);
    sbuf out = {0};
    int rc;
    if (lwf && split >= 0)
        rc = lwf_fail(err, "%s: -split applies to a stock classifier cfg; this is an LwF cfg (it has [task] sections)",
                      oldcfg);
    else if (lwf)
        rc = init_from_lwf(&cf, &nd, &out, info, err);
    else
        rc = init_from_stock(&cf, &nd, split, &out, info, err);
    info->new_classes = nd.classes;
    if (!rc && out.oom) rc = lwf_fail(err, "%s: out of memory", outcfg);
    if (!rc) rc = lwf_write_file_atomic(outcfg, out.p, out.n, err);
    free(out.p);
    lwf_cfg_free(&cf);
    lwf_datacfg_free(&nd);
    return rc;
}

/* ---- lwf init -grow: one head over the old classes and the new ones ---- */

/* "<folder of outcfg>/<stem of outcfg><suffix>" into out. */
static void beside(const char *outcfg, const char *suffix, char *out, size_t cap)
{
    const char *slash = strrchr(outcfg, '/');
    char st[256];
    stem(outcfg, st, sizeof st);
    snprintf(out, cap, "%.*s%s%s", slash ? (int)(slash - outcfg + 1) : 0, outcfg, st, suffix);
}

static const char *grow_loss_fmt = "[lwf_softmax]\nold_classes=%d\ntemperature=2\nlambda=1\nt2_scaling=0\n\n";

/* The grown head's [task]: named after the cfg, data= its .data. */
static void emit_grown_task(sbuf *out, const char *name, const char *datapath)
{
    sb_printf(out, "[task]\nname=%s\ndata=%s\n\n", name, datapath);
}

/* Stock classifier -> trunk, then one head (the old one) whose class layer has K + M outputs. */
static int grow_from_stock(const lwf_cfgfile *cf, int total, const char *name, const char *datapath, sbuf *out,
                           int *old_classes, lwf_err *err)
{
    const char *file = cf->path;
    int last = cf->nsections - 1;
    if (last < 2 || !is_net(&cf->sections[0]) || !is_softmax(&cf->sections[last]))
        return lwf_fail(err, "%s: lwf init -grow needs a classifier cfg: [net] first, [softmax] last", file);
    for (int i = 1; i < last; ++i)
        if (is_loss(&cf->sections[i]) || is_net(&cf->sections[i]))
            return lwf_fail(err, "%s:%d: [%s] before the final [softmax]: one loss, at the end", file,
                            cf->sections[i].line, cf->sections[i].type);
    if (check_softmax_groups(file, &cf->sections[last], err)) return -1;
    int cls = find_class_layer(cf, 1, last, old_classes, err);
    if (cls < 0) return -1;
    int head = cls;
    while (head - 1 >= 1 && is_shape_only(&cf->sections[head - 1])) --head;
    if (head < 2) return lwf_fail(err, "%s: no head found: no layer left for the trunk", file);
    char cv[32];
    snprintf(cv, sizeof cv, "%d", total);
    int h0 = head - 1, hn = last - head;
    if (emit_net(out, cf, err)) return -1;
    for (int i = 1; i < head; ++i)
        if (emit(out, file, &cf->sections[i], NULL, NULL, 0, NULL, 0, 0, err)) return -1;
    emit_grown_task(out, name, datapath);
    refmap rm = {h0, h0, h0 + hn, h0 + 1, -1, -1};
    for (int i = head; i < last; ++i)
        if (emit(out, file, &cf->sections[i], i == cls ? class_key(&cf->sections[i]) : NULL, cv, 0, &rm, i - 1,
                 h0 + 1 + (i - head), err))
            return -1;
    sb_printf(out, grow_loss_fmt, *old_classes);
    return 0;
}

/* LwF cfg (a grown one, or several heads) -> the same with its last head grown: its class
 * layer K + M outputs, its loss [lwf_softmax] old_classes=K, its [task] renamed; the other
 * heads old ([softmax] becomes [lwf_distill]). */
static int grow_from_lwf(const lwf_cfgfile *cf, int total, const char *name, const char *datapath, sbuf *out,
                         int *old_classes, lwf_err *err)
{
    const char *file = cf->path;
    int last_task = -1, last_loss = cf->nsections - 1;
    for (int i = 1; i < cf->nsections; ++i)
        if (is_task(&cf->sections[i])) last_task = i;
    if (last_task < 2 || !is_loss(&cf->sections[last_loss]) || lwf_section_is(&cf->sections[last_loss], LWF_SEC_DISTILL))
        return lwf_fail(err, "%s: lwf init -grow needs the last head to end in [softmax] or [lwf_softmax]", file);
    int cls = find_class_layer(cf, last_task + 1, last_loss, old_classes, err);
    if (cls < 0) return -1;
    char cv[32];
    snprintf(cv, sizeof cv, "%d", total);
    if (emit_net(out, cf, err)) return -1;
    for (int i = 1; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        if (i == last_task) emit_grown_task(out, name, datapath);
        else if (i == last_loss) sb_printf(out, grow_loss_fmt, *old_classes);
        else if (is_softmax(s) || lwf_section_is(s, LWF_SEC_GROW)) sb_printf(out, "%s", distill_text);
        else if (emit(out, file, s, i == cls ? class_key(s) : NULL, cv, 0, NULL, 0, 0, err)) return -1;
    }
    return 0;
}

/* Appends the lines of list `path` to b. */
static int append_list(sbuf *b, const char *path, lwf_err *err)
{
    lwf_list l;
    if (lwf_list_read(path, &l, err)) return -1;
    for (int i = 0; i < l.n; ++i) sb_printf(b, "%s\n", l.items[i]);
    lwf_list_free(&l);
    return 0;
}

/* The old .data's labels (a detector's names), then the new one's, each once, into labels. */
static int merge_labels(const lwf_datacfg *od, const lwf_datacfg *nd, sbuf *labels, lwf_err *err)
{
    lwf_list ol, nl;
    if (lwf_list_read(od->labels, &ol, err)) return -1;
    if (lwf_list_read(nd->labels, &nl, err)) {
        lwf_list_free(&ol);
        return -1;
    }
    int rc = 0;
    if (ol.n != od->classes || nl.n != nd->classes)
        rc = lwf_fail(err, "%s: %d labels for classes=%d", ol.n != od->classes ? od->labels : nd->labels,
                      ol.n != od->classes ? ol.n : nl.n, ol.n != od->classes ? od->classes : nd->classes);
    for (int i = 0; !rc && i < ol.n + nl.n; ++i) {
        const char *a = i < ol.n ? ol.items[i] : nl.items[i - ol.n];
        for (int j = 0; !rc && j < i; ++j)
            if (strcmp(a, j < ol.n ? ol.items[j] : nl.items[j - ol.n]) == 0)
                rc = lwf_fail(err, "%s:%d: label '%s' is both an old class (%s) and a new one: a grown head needs "
                                   "distinct labels",
                              nd->labels, nl.line[i - ol.n], a, od->labels);
        if (!rc) sb_printf(labels, "%s\n", a);
    }
    lwf_list_free(&ol);
    lwf_list_free(&nl);
    return rc;
}

/* <stem>.labels (old then new, each once), <stem>.valid.list (old then new) and <stem>.data. */
static int grow_side_files(const lwf_datacfg *od, const lwf_datacfg *nd, const char *labelsp, const char *validp,
                           sbuf *labels, sbuf *valid, sbuf *dat, lwf_err *err)
{
    if (merge_labels(od, nd, labels, err)) return -1;
    if (append_list(valid, od->valid, err) || append_list(valid, nd->valid, err)) return -1;
    sb_printf(dat, "classes=%d\ntrain=%s\nvalid=%s\nlabels=%s\nbackup=%s\ntop=%d\n", od->classes + nd->classes,
              nd->train, validp, labelsp, nd->backup ? nd->backup : "backup", nd->top);
    return 0;
}

/* ---- lwf init -grow of a detector ---- */

/* The anchors a [yolo] section predicts: its mask= count, else num= (parse_yolo's default 1);
 * -1 when malformed. */
static int yolo_masks(const lwf_section *s)
{
    const lwf_opt *mask = lwf_cfg_opt(s, "mask"), *num = lwf_cfg_opt(s, "num");
    int n = 1;
    if (mask) return lwf_check_list(mask->val, 0, 0, INT_MAX);
    if (num && lwf_parse_int(num->val, 1, 1 << 10, &n)) return -1;
    return n;
}

/* 0 if the [yolo] s is over K classes (classes=, parse_yolo's default 20), else -1 and err. */
static int check_yolo_classes(const char *file, const lwf_section *s, int K, lwf_err *err)
{
    const lwf_opt *c = lwf_cfg_opt(s, "classes");
    int classes = 20;
    if (c && lwf_parse_int(c->val, 1, 1 << 16, &classes))
        return lwf_fail(err, "%s:%d: [%s] classes must be a positive integer, got '%s'", file, c->line, s->type,
                        c->val);
    if (classes != K)
        return lwf_fail(err, "%s:%d: [%s] classes=%d, but the old task's .data has classes=%d", file,
                        c ? c->line : s->line, s->type, classes, K);
    return 0;
}

/* A stock [yolo] over the K old classes as the grown [lwf_yolo]: its keys with classes = total,
 * then old_classes=K (the distillation keys keep their measured defaults, README
 * "Detectors (YOLO)"). */
static int emit_grown_yolo(sbuf *out, const char *file, const lwf_section *s, int K, int total, lwf_err *err)
{
    if (check_yolo_classes(file, s, K, err)) return -1;
    const lwf_opt *c = lwf_cfg_opt(s, "classes");
    sb_printf(out, "[lwf_yolo]\n");
    for (int i = 0; i < s->nopts; ++i) {
        if (&s->opts[i] == c) sb_printf(out, "classes=%d\n", total);
        else sb_printf(out, "%s=%s\n", s->opts[i].key, s->opts[i].val);
    }
    if (!c) sb_printf(out, "classes=%d\n", total);
    sb_printf(out, "old_classes=%d\n\n", K);
    return 0;
}

/* The convolution s that feeds the [yolo] y: filters=(K + 5) x masks, written as (total + 5) x masks. */
static int emit_grown_yolo_conv(sbuf *out, const char *file, const lwf_section *s, const lwf_section *y, int K,
                                int total, lwf_err *err)
{
    int masks = yolo_masks(y), filters = 0;
    if (check_yolo_classes(file, y, K, err)) return -1;
    if (masks < 1) return lwf_fail(err, "%s:%d: [%s] mask= or num= is malformed", file, y->line, y->type);
    if (!lwf_section_is(s, LWF_SEC_CONV))
        return lwf_fail(err, "%s:%d: [%s] feeds the [%s] at line %d: lwf init -grow needs a [convolutional] there, "
                             "with filters=(classes + 5) x masks",
                        file, s->line, s->type, y->type, y->line);
    const lwf_opt *f = lwf_cfg_opt(s, "filters");
    if (!f || lwf_parse_int(f->val, 1, 1 << 24, &filters) || filters != (K + 5) * masks)
        return lwf_fail(err, "%s:%d: [%s] filters=%s, but the [%s] after it (line %d) needs (classes + 5) x masks = "
                             "(%d + 5) x %d = %d",
                        file, f ? f->line : s->line, s->type, f ? f->val : "(none)", y->type, y->line, K, masks,
                        (K + 5) * masks);
    char fv[32];
    snprintf(fv, sizeof fv, "%d", (total + 5) * masks);
    return emit(out, file, s, "filters", fv, 0, NULL, 0, 0, err);
}

/* A stock detector cfg -> the grown one: [net] as written, [task] (named after the output,
 * data= its .data; a [task] of the input is replaced), every [yolo] an [lwf_yolo] over K + M
 * classes, the convolution before each with (K + M + 5) x masks filters.  A detector's
 * [task] makes no layer, so layer numbers stay. */
static int grow_detector_cfg(const lwf_cfgfile *cf, int K, int total, const char *name, const char *datapath,
                             sbuf *out, lwf_err *err)
{
    const char *file = cf->path;
    if (!is_net(&cf->sections[0]))
        return lwf_fail(err, "%s:%d: the first section must be [net], got [%s]", file, cf->sections[0].line,
                        cf->sections[0].type);
    if (emit(out, file, &cf->sections[0], NULL, NULL, 0, NULL, 0, 0, err)) return -1;
    emit_grown_task(out, name, datapath);
    for (int i = 1; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i], *next = i + 1 < cf->nsections ? &cf->sections[i + 1] : NULL;
        if (is_task(s) && i == 1) continue;
        if (lwf_section_is(s, LWF_SEC_LWF_YOLO))
            return lwf_fail(err, "%s:%d: [%s]: this detector is grown already; lwf init -grow takes a stock detector "
                                 "cfg (with [yolo])",
                            file, s->line, s->type);
        int rc = lwf_section_is(s, LWF_SEC_YOLO)               ? emit_grown_yolo(out, file, s, K, total, err)
                 : next && lwf_section_is(next, LWF_SEC_YOLO) ? emit_grown_yolo_conv(out, file, s, next, K, total, err)
                                                              : emit(out, file, s, NULL, NULL, 0, NULL, 0, 0, err);
        if (rc) return -1;
    }
    return 0;
}

/* The new task's .data and the old one's (-grow); -1 with err naming which, nothing kept. */
static int read_datas(const char *newdata, const char *olddata, lwf_datacfg *nd, lwf_datacfg *od, lwf_err *err)
{
    lwf_err derr;
    if (lwf_datacfg_read(newdata, nd, &derr)) return lwf_fail(err, "new task: %s", derr.msg);
    if (lwf_datacfg_read(olddata, od, &derr)) {
        lwf_datacfg_free(nd);
        return lwf_fail(err, "old task (-grow): %s", derr.msg);
    }
    return 0;
}

/* lwf init -grow on a detector: the grown cfg, <stem>.names (old names, then new) and
 * <stem>.data (classes, names, backup, old_data=, new_data=: DESIGN "Detection"). */
static int init_grow_detector(const char *oldcfg, const char *newdata, const char *olddata, const char *outcfg,
                              lwf_init_info *info, lwf_err *err)
{
    char datap[4200], namesp[4200], name[256];
    beside(outcfg, ".data", datap, sizeof datap);
    beside(outcfg, ".names", namesp, sizeof namesp);
    stem(outcfg, name, sizeof name);
    lwf_datacfg nd, od;
    if (read_datas(newdata, olddata, &nd, &od, err)) return -1;
    sbuf out = {0}, names = {0}, dat = {0};
    lwf_cfgfile cf = {0};
    int rc = 0, total = od.classes + nd.classes;
    if (!nd.train || !nd.labels || !od.labels)
        rc = lwf_fail(err, "%s: lwf init -grow of a detector needs train= and names= in the new .data and names= in "
                           "the old one",
                      !nd.train || !nd.labels ? newdata : olddata);
    const lwf_file outs[] = {{outcfg, "grown cfg"}, {datap, "grown .data"}, {namesp, "grown names"}},
                   ins[] = {{oldcfg, "old cfg"},        {newdata, "new task's .data"}, {olddata, "old task's .data"},
                            {nd.train, "new train list"}, {nd.labels, "new names"},        {od.labels, "old names"}};
    if (!rc) rc = lwf_check_outputs(outs, 3, ins, 6, err);
    if (!rc) rc = check_value_text("grown task name (the cfg's file name)", name, err);
    if (!rc) rc = check_value_text("grown .data path", datap, err);
    if (!rc) rc = check_value_text("old .data path", olddata, err);
    if (!rc) rc = check_value_text("new .data path", newdata, err);
    if (!rc) rc = lwf_cfg_read(oldcfg, &cf, err);
    if (!rc) rc = grow_detector_cfg(&cf, od.classes, total, name, datap, &out, err);
    if (!rc) rc = merge_labels(&od, &nd, &names, err);
    sb_printf(&dat, "classes=%d\nnames=%s\nbackup=%s\nold_data=%s\nnew_data=%s\n", total, namesp,
              nd.backup ? nd.backup : "backup", olddata, newdata);
    if (!rc && (out.oom || names.oom || dat.oom)) rc = lwf_fail(err, "%s: out of memory", outcfg);
    /* the side files first, the cfg last: a cfg is never left naming files not written */
    if (!rc) rc = lwf_write_file_atomic(namesp, names.p, names.n, err);
    if (!rc) rc = lwf_write_file_atomic(datap, dat.p, dat.n, err);
    if (!rc) rc = lwf_write_file_atomic(outcfg, out.p, out.n, err);
    info->detector = 1;
    snprintf(info->data, sizeof info->data, "%s", datap);
    info->old_classes = od.classes;
    info->new_classes = nd.classes;
    snprintf(info->new_task, sizeof info->new_task, "%s", name);
    free(out.p);
    free(names.p);
    free(dat.p);
    lwf_cfg_free(&cf);
    lwf_datacfg_free(&nd);
    lwf_datacfg_free(&od);
    return rc;
}

int lwf_init_grow(const char *oldcfg, const char *newdata, const char *olddata, const char *outcfg,
                  lwf_init_info *info, lwf_err *err)
{
    lwf_init_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    if (lwf_cfg_is_detector(oldcfg)) return init_grow_detector(oldcfg, newdata, olddata, outcfg, info, err);
    char datap[4200], labelsp[4200], validp[4200], name[256];
    beside(outcfg, ".data", datap, sizeof datap);
    beside(outcfg, ".labels", labelsp, sizeof labelsp);
    beside(outcfg, ".valid.list", validp, sizeof validp);
    stem(outcfg, name, sizeof name);
    lwf_datacfg nd, od;
    if (read_datas(newdata, olddata, &nd, &od, err)) return -1;
    sbuf out = {0}, labels = {0}, valid = {0}, dat = {0};
    lwf_cfgfile cf = {0};
    int rc = 0;
    if (!nd.train || !nd.valid || !nd.labels || !od.valid || !od.labels)
        rc = lwf_fail(err, "%s: lwf init -grow needs train=, valid= and labels= in the new .data and valid= and "
                           "labels= in the old one",
                      !nd.train || !nd.valid || !nd.labels ? newdata : olddata);
    const lwf_file outs[] = {{outcfg, "grown cfg"}, {datap, "grown .data"}, {labelsp, "grown labels"},
                             {validp, "grown valid list"}},
                   ins[] = {{oldcfg, "old cfg"},       {newdata, "new task's .data"}, {olddata, "old task's .data"},
                            {nd.train, "new train list"}, {nd.valid, "new valid list"}, {nd.labels, "new labels"},
                            {od.valid, "old valid list"}, {od.labels, "old labels"}};
    if (!rc) rc = lwf_check_outputs(outs, 4, ins, 8, err);
    if (!rc) rc = check_value_text("grown task name (the cfg's file name)", name, err);
    if (!rc) rc = check_value_text("grown .data path", datap, err);
    if (!rc) rc = lwf_cfg_read(oldcfg, &cf, err);
    int total = od.classes + nd.classes, k = 0, lwf = 0;
    for (int i = 0; !rc && i < cf.nsections; ++i) lwf |= is_task(&cf.sections[i]);
    if (!rc) rc = lwf ? grow_from_lwf(&cf, total, name, datap, &out, &k, err)
                      : grow_from_stock(&cf, total, name, datap, &out, &k, err);
    if (!rc && k != od.classes)
        rc = lwf_fail(err, "%s: classes=%d, but the head it grows (%s) has %d outputs", olddata, od.classes, oldcfg, k);
    if (!rc) rc = grow_side_files(&od, &nd, labelsp, validp, &labels, &valid, &dat, err);
    if (!rc && (out.oom || labels.oom || valid.oom || dat.oom)) rc = lwf_fail(err, "%s: out of memory", outcfg);
    /* the lists first, the cfg last: a cfg is never left naming files not written */
    if (!rc) rc = lwf_write_file_atomic(labelsp, labels.p, labels.n, err);
    if (!rc) rc = lwf_write_file_atomic(validp, valid.p, valid.n, err);
    if (!rc) rc = lwf_write_file_atomic(datap, dat.p, dat.n, err);
    if (!rc) rc = lwf_write_file_atomic(outcfg, out.p, out.n, err);
    info->from_lwf = lwf;
    snprintf(info->data, sizeof info->data, "%s", datap);
    info->old_classes = k;
    info->new_classes = nd.classes;
    snprintf(info->new_task, sizeof info->new_task, "%s", name);
    free(out.p);
    free(labels.p);
    free(valid.p);
    free(dat.p);
    lwf_cfg_free(&cf);
    lwf_datacfg_free(&nd);
    lwf_datacfg_free(&od);
    return rc;
}

/* ---- export ---- */

/* The side files of lwf export ... all: <out stem>.labels (every task's, in cfg order),
 * <out stem>.valid.list (every task's valid list) and <out stem>.data naming them. */
static int export_all_files(const lwf_model *m, const char *outcfg, lwf_err *err)
{
    char datap[4200], labelsp[4200], validp[4200];
    beside(outcfg, ".data", datap, sizeof datap);
    beside(outcfg, ".labels", labelsp, sizeof labelsp);
    beside(outcfg, ".valid.list", validp, sizeof validp);
    sbuf labels = {0}, valid = {0}, dat = {0};
    int rc = 0;
    for (int k = 0; !rc && k < m->ntasks; ++k) {
        const lwf_task *t = &m->tasks[k];
        lwf_datacfg d;
        if (!t->data) {
            rc = lwf_fail(err, "%s:%d: task '%s' has no data= file: export all needs every task's labels", m->cfg,
                          t->line, t->name);
            break;
        }
        if (lwf_datacfg_read(t->data, &d, err)) {
            rc = -1;
            break;
        }
        if (!d.labels) rc = lwf_fail(err, "%s: no labels= file", t->data);
        if (!rc) rc = append_list(&labels, d.labels, err);
        if (!rc && d.valid) rc = append_list(&valid, d.valid, err);
        lwf_datacfg_free(&d);
    }
    sb_printf(&dat, "classes=%d\nvalid=%s\nlabels=%s\ntop=1\n", lwf_merged_classes(m), validp, labelsp);
    if (!rc && (labels.oom || valid.oom || dat.oom)) rc = lwf_fail(err, "%s: out of memory", outcfg);
    if (!rc) rc = lwf_write_file_atomic(labelsp, labels.p, labels.n, err);
    if (!rc) rc = lwf_write_file_atomic(validp, valid.p, valid.n, err);
    if (!rc) rc = lwf_write_file_atomic(datap, dat.p, dat.n, err);
    free(labels.p);
    free(valid.p);
    free(dat.p);
    return rc;
}

/* The cfg of lwf export ... all: [net], the trunk, each head (after a [route] back to the
 * trunk's last layer, but the first) ending in its own [softmax], then a [route] of every
 * head's probabilities side by side and a [connected] layer (linear, diagonal weights: the
 * calibration's scale, biases its bias; export_all_weights): stock `classifier valid` takes the
 * largest, as lwf_merged_scores does. *layers (n) gets the network's layers in order. */
static int export_all_cfg(const lwf_model *m, const lwf_cfgfile *cf, sbuf *out, int *layers, int *n, lwf_err *err)
{
    const char *path = cf->path;
    int trunk = m->trunk, at = trunk, nl = 0;
    if (emit(out, path, &cf->sections[0], NULL, NULL, 1, NULL, 0, 0, err)) return -1;
    for (int i = 0; i < trunk; ++i) {
        layers[nl++] = i;
        if (emit(out, path, &cf->sections[i + 1], NULL, NULL, 0, NULL, 0, 0, err)) return -1;
    }
    char soft[4096] = "";
    size_t sl = 0;
    for (int k = 0; k < m->ntasks; ++k) {
        const lwf_task *t = &m->tasks[k];
        if (k > 0) {
            sb_printf(out, "[route]\nlayers=%d\n\n", trunk - 1);
            ++at;
        }
        int hn = t->loss - t->first - 1;
        refmap rm = {trunk, t->first + 1, t->loss, at, t->first, trunk - 1};
        for (int i = 0; i < hn; ++i) {
            int src = t->first + 1 + i;
            layers[nl++] = src;
            if (emit(out, path, &cf->sections[src + 1], NULL, NULL, 0, &rm, src, at + i, err)) return -1;
        }
        at += hn;
        sb_printf(out, "[softmax]\ngroups=1\n\n");
        sl += (size_t)snprintf(soft + sl, sizeof soft - sl, "%s%d", k ? "," : "", at++);
        if (sl >= sizeof soft) return lwf_fail(err, "%s: too many heads", path);
    }
    sb_printf(out, "[route]\nlayers=%s\n\n", soft);
    sb_printf(out, "# the heads' calibration (lwf valid -merged): class j's probability times weight (j, j), plus bias j\n"
                   "[connected]\noutput=%d\nactivation=linear\n",
              lwf_merged_classes(m));
    *n = nl;
    return 0;
}

/* The .weights of lwf export ... all: the layers[0..n) of m's network, then the calibration's
 * [connected] layer: biases = c's bias, weights (classes, classes) = diag(c's scale). */
static int export_all_weights(const lwf_model *m, const int *layers, int n, const lwf_merged_calib *c,
                              const char *path, size_t seen, lwf_err *err)
{
    int k = c->classes, rc = -1;
    network net = *m->net;
    layer *ls = malloc((size_t)(net.n + 1) * sizeof(layer));
    int *idx = malloc((size_t)(n + 1) * sizeof(int));
    float *w = calloc((size_t)k * (size_t)k, sizeof(float));
    if (!ls || !idx || !w) {
        lwf_fail(err, "%s: out of memory", path);
        goto done;
    }
    memcpy(ls, net.layers, (size_t)net.n * sizeof(layer));
    layer *cl = &ls[net.n];
    memset(cl, 0, sizeof *cl);
    cl->type = CONNECTED;
    cl->inputs = cl->outputs = k;
    cl->biases = c->bias;
    cl->weights = w;
    for (int j = 0; j < k; ++j) w[(size_t)j * (size_t)k + (size_t)j] = c->scale[j];
    memcpy(idx, layers, (size_t)n * sizeof(int));
    idx[n] = net.n;
    net.layers = ls;
    ++net.n;
    rc = lwf_weights_save_layers(&net, idx, n + 1, path, seen, err);
done:
    free(ls);
    free(idx);
    free(w);
    return rc;
}

static int export_all(const char *cfgpath, const char *weights, const char *outcfg, const char *outweights,
                      lwf_err *err)
{
    lwf_build_opts bo = {1, 1};
    lwf_model *m = lwf_model_load(cfgpath, &bo, err);
    if (!m) return -1;
    int rc = -1, whole = 0, n = 0, *layers = malloc((size_t)m->net->n * sizeof(int));
    size_t seen = 0;
    sbuf out = {0};
    lwf_cfgfile cf = {0};
    lwf_merged_calib cal = {0};
    if (!layers) {
        lwf_fail(err, "%s: out of memory", outweights);
        goto done;
    }
    if (lwf_weights_load_model(m, weights, &whole, &seen, err)) goto done;
    if (!whole) {
        lwf_fail(err, "%s holds the old network only: the new task '%s' has no trained weights in it", weights,
                 m->tasks[m->new_task].name);
        goto done;
    }
    if (lwf_cfg_read(cfgpath, &cf, err) || export_all_cfg(m, &cf, &out, layers, &n, err)) goto done;
    if (out.oom) {
        lwf_fail(err, "%s: out of memory", outcfg);
        goto done;
    }
    if (lwf_merged_calibrate(m, LWF_MERGED_CALIB_IMAGES, &cal, err)) goto done;
    if (export_all_files(m, outcfg, err) || lwf_write_file_atomic(outcfg, out.p, out.n, err)) goto done;
    if (export_all_weights(m, layers, n, &cal, outweights, seen, err)) {
        unlink(outcfg);
        goto done;
    }
    rc = 0;
done:
    lwf_merged_calib_free(&cal);
    free(out.p);
    free(layers);
    lwf_cfg_free(&cf);
    lwf_model_free(m);
    return rc;
}

/* The stock cfg of a detector into out: [net] and every section without the plugin's keys,
 * no [task] (it makes no layer), each [lwf_yolo] the [yolo] it is (classes K + M). */
static int export_detector_cfg(const lwf_cfgfile *cf, sbuf *out, lwf_err *err)
{
    for (int i = 0; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        if (is_task(s)) continue;
        if (!lwf_section_is(s, LWF_SEC_LWF_YOLO)) {
            if (emit(out, cf->path, s, NULL, NULL, 1, NULL, 0, 0, err)) return -1;
            continue;
        }
        sb_printf(out, "[yolo]\n");
        for (int k = 0; k < s->nopts; ++k)
            if (!is_our_key(s, s->opts[k].key)) sb_printf(out, "%s=%s\n", s->opts[k].key, s->opts[k].val);
        sb_printf(out, "\n");
    }
    return 0;
}

/* lwf export of detector m (task: its name, or all): the stock cfg and every layer's weights,
 * from a whole model's file. */
static int export_detector(lwf_model *m, const char *weights, const char *task, const char *outcfg,
                           const char *outweights, lwf_err *err)
{
    const char *name = m->tasks[0].name;
    if (strcmp(task, name) != 0 && strcmp(task, "all") != 0)
        return lwf_fail(err, "%s: no task named '%s'; a detector is one task: '%s' (or all)", m->cfg, task, name);
    int whole = 0;
    size_t seen = 0;
    if (lwf_weights_load_model(m, weights, &whole, &seen, err)) return -1;
    if (!whole && lwf_det_old_classes(m) > 0)
        return lwf_fail(err, "%s holds the old detector only: the new classes of '%s' have no trained weights in it "
                             "(train it with lwf train first)",
                        weights, name);
    if (!whole) return lwf_fail(err, "%s: holds no weights for %s", weights, m->cfg);
    lwf_cfgfile cf = {0};
    sbuf out = {0};
    int rc = lwf_cfg_read(m->cfg, &cf, err) || export_detector_cfg(&cf, &out, err) ? -1 : 0;
    if (!rc && out.oom) rc = lwf_fail(err, "%s: out of memory", outcfg);
    /* the cfg first: a cfg without its weights is removed */
    if (!rc) rc = lwf_write_file_atomic(outcfg, out.p, out.n, err);
    if (!rc && lwf_weights_save(m->net, outweights, m->net->n, seen, err)) {
        unlink(outcfg);
        rc = -1;
    }
    free(out.p);
    lwf_cfg_free(&cf);
    return rc;
}

/* The error for a task name that m has not: every name it has, however long. */
static int no_such_task(const lwf_model *m, const char *cfgpath, const char *task, lwf_err *err)
{
    size_t need = 1, at = 0;
    for (int j = 0; j < m->ntasks; ++j) need += strlen(m->tasks[j].name) + 1;
    char *names = malloc(need);
    for (int j = 0; names && j < m->ntasks; ++j) at += (size_t)snprintf(names + at, need - at, " %s", m->tasks[j].name);
    lwf_fail(err, "%s: no task named '%s'; its tasks are:%s", cfgpath, task, names ? names : " (out of memory)");
    free(names);
    return -1;
}

/* lwf export ... all: every task as one classifier, with <out stem>.data, .labels and
 * .valid.list beside the cfg (checked as outputs too). */
static int export_all_checked(const char *cfgpath, const char *weights, const char *outcfg, const char *outweights,
                              lwf_err *err)
{
    char d[4200], l[4200], v[4200];
    beside(outcfg, ".data", d, sizeof d);
    beside(outcfg, ".labels", l, sizeof l);
    beside(outcfg, ".valid.list", v, sizeof v);
    const lwf_file outs[] = {{outcfg, "output cfg"}, {outweights, "output weights"}, {d, "output .data"},
                             {l, "output labels"}, {v, "output valid list"}},
                   ins[] = {{cfgpath, "LwF cfg"}, {weights, "weights"}};
    if (lwf_check_outputs(outs, 5, ins, 2, err)) return -1;
    return export_all(cfgpath, weights, outcfg, outweights, err);
}

/* Task k of m (weights loaded) as a stock classifier: the trunk's sections, then the head's
 * without [task] and loss, ending in its [softmax]; the cfg written first. */
static int export_task(lwf_model *m, int k, const char *cfgpath, const char *outcfg, const char *outweights,
                       size_t seen, lwf_err *err)
{
    const lwf_task *t = &m->tasks[k];
    int trunk = m->trunk, hn = t->loss - t->first - 1, n = trunk + hn, rc = -1;
    int *layers = malloc((size_t)n * sizeof *layers);
    sbuf out = {0};
    lwf_cfgfile cf = {0};
    if (!layers) return lwf_fail(err, "%s: out of memory", outweights);
    for (int i = 0; i < trunk; ++i) layers[i] = i;
    for (int i = 0; i < hn; ++i) layers[trunk + i] = t->first + 1 + i;
    if (lwf_cfg_read(cfgpath, &cf, err)) goto done;
    /* sections: [net] is 0, layer i is section i + 1 */
    if (emit(&out, cfgpath, &cf.sections[0], NULL, NULL, 1, NULL, 0, 0, err)) goto done;
    for (int i = 0; i < trunk; ++i)
        if (emit(&out, cfgpath, &cf.sections[i + 1], NULL, NULL, 0, NULL, 0, 0, err)) goto done;
    refmap rm = {trunk, t->first + 1, t->loss, trunk, t->first, trunk - 1};
    for (int i = 0; i < hn; ++i) {
        int src = t->first + 1 + i;
        if (emit(&out, cfgpath, &cf.sections[src + 1], NULL, NULL, 0, &rm, src, trunk + i, err)) goto done;
    }
    if (t->is_new && !t->old_classes) {
        if (emit(&out, cfgpath, &cf.sections[t->loss + 1], NULL, NULL, 0, NULL, 0, 0, err)) goto done;
    } else {
        sb_printf(&out, "[softmax]\ngroups=1\n");
    }
    if (out.oom) {
        lwf_fail(err, "%s: out of memory", outcfg);
        goto done;
    }
    /* the cfg first: a cfg without its weights is removed, weights without a cfg were left */
    if (lwf_write_file_atomic(outcfg, out.p, out.n, err)) goto done;
    if (lwf_weights_save_layers(m->net, layers, n, outweights, seen, err)) {
        unlink(outcfg);
        goto done;
    }
    rc = 0;
done:
    free(out.p);
    free(layers);
    lwf_cfg_free(&cf);
    return rc;
}

int lwf_export(const char *cfgpath, const char *weights, const char *task, const char *outcfg,
               const char *outweights, lwf_err *err)
{
    const lwf_file outs[] = {{outcfg, "output cfg"}, {outweights, "output weights"}},
                   ins[] = {{cfgpath, "LwF cfg"}, {weights, "weights"}};
    if (lwf_check_outputs(outs, 2, ins, 2, err)) return -1;
    lwf_build_opts bo = {1, 1};
    lwf_model *m = lwf_model_load(cfgpath, &bo, err);
    if (!m) return -1;
    int rc = -1;
    for (int j = 0; j < m->ntasks; ++j) {
        const lwf_file tdata[] = {{m->tasks[j].data, "task's .data"}};
        if (lwf_check_outputs(outs, 2, tdata, 1, err)) goto done;
    }
    if (m->detector) {
        rc = export_detector(m, weights, task, outcfg, outweights, err);
        goto done;
    }
    int k = lwf_task_find(m, task);
    if (k < 0 && strcmp(task, "all") == 0) { /* every task as one classifier (a task named all wins) */
        lwf_model_free(m);
        return export_all_checked(cfgpath, weights, outcfg, outweights, err);
    }
    if (k < 0) {
        no_such_task(m, cfgpath, task, err);
        goto done;
    }
    int whole = 0;
    size_t seen = 0;
    if (lwf_weights_load_model(m, weights, &whole, &seen, err)) goto done;
    if (!whole && m->tasks[k].is_new) {
        lwf_fail(err, "%s holds the old network only (trunk + old heads): the new task '%s' has no trained weights "
                      "in it",
                 weights, task);
        goto done;
    }
    rc = export_task(m, k, cfgpath, outcfg, outweights, seen, err);
done:
    lwf_model_free(m);
    return rc;
}
