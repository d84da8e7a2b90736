/* What each libFuzzer harness does with one input, shared with the cmocka test that
 * replays tests/fuzz/regressions (tests/unit/test_fuzz_regressions.c), so a reproducer
 * goes through exactly the harness's calls.  Inputs reach the plugin as files without
 * touching the disk: a memfd, opened by path through /proc/self/fd. */
#ifndef LWF_FUZZ_ENTRIES_H
#define LWF_FUZZ_ENTRIES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "train/train.h" /* lwf_labels_of: plugin-internal, the harnesses call it directly */

/* A memory file holding data; *path names it.  Returns the descriptor (close it when
 * done) or -1. */
static inline int fz_memfile(const void *bytes, size_t size, char path[64])
{
    int fd = memfd_create("lwf-fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    const char *p = bytes;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w;
        size -= (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* Builds the model of cfg `path` with fd 2 at /dev/null: libdarknet prints a layer-table
 * line per layer whatever quiet says, and the plugin leaves stderr to its callers. */
static inline lwf_model *fz_model_load(const char *path, int batch, lwf_err *err)
{
    fflush(stderr);
    int saved = dup(2), nul = open("/dev/null", O_WRONLY);
    if (saved >= 0 && nul >= 0) dup2(nul, 2);
    if (nul >= 0) close(nul);
    lwf_build_opts o = {batch, 1};
    lwf_model *m = lwf_model_load(path, &o, err);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
    }
    return m;
}

/* ---- cfg: lwf_model_load (quiet, batch 2), then, for a network small enough, one step
 * of each kind of pass training uses, so what the builder handed libdarknet runs too.
 * [task] data= paths in the seeds are relative to the repository root. ---- */

/* Work of one step, in multiply-adds, above which a network is only built. */
#define FZ_STEP_BUDGET (1LL << 22)

static inline long long fz_step_cost(const network *net)
{
    long long cost = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        long long per = 1 + (l->n > 0 && l->nweights > 0 ? l->nweights / l->n : 0);
        if (l->type == CONNECTED) per = 1 + l->inputs;
        cost += (long long)l->outputs * l->batch * per;
        if (l->type == MAXPOOL || l->type == NORMALIZATION) cost += (long long)l->outputs * l->batch * l->size * l->size;
    }
    return cost;
}

static inline void fz_train_steps(lwf_model *m)
{
    network *net = m->net;
    if (fz_step_cost(net) > FZ_STEP_BUDGET) return;
    for (int i = 0; i < net->inputs * net->batch; ++i) net->input[i] = (float)(i % 7) / 7.0f;
    for (int b = 0; b < net->batch; ++b)
        for (int k = 0; k < m->ntasks; ++k) {
            const lwf_task *t = &m->tasks[k];
            float *row = net->truth + (size_t)b * net->truths + t->offset; /* (classes) */
            if (t->is_new) row[b % t->classes] = 1;
            else
                for (int j = 0; j < t->classes; ++j) row[j] = (float)j / (float)t->classes;
        }
    static const lwf_pass passes[] = {LWF_PASS_TEACHER, LWF_PASS_WARMUP, LWF_PASS_JOINT, LWF_PASS_FINETUNE,
                                      LWF_PASS_EVAL};
    for (size_t k = 0; k < sizeof passes / sizeof passes[0]; ++k) {
        lwf_plan p;
        if (lwf_plan_make(m, passes[k], &p)) return;
        lwf_forward(net, &p);
        lwf_backward(net, &p);
        lwf_update(net, &p, 0.01f);
        lwf_plan_free(&p);
    }
}

/* Returns 1 if the cfg built (err holds the reason otherwise), -1 if no memfd. */
static inline int fz_cfg_input(const uint8_t *bytes, size_t size, lwf_err *err)
{
    char path[64];
    int fd = fz_memfile(bytes, size, path);
    if (fd < 0) return -1;
    lwf_model *m = fz_model_load(path, 2, err);
    if (m) {
        (void)lwf_old_layers(m);
        (void)lwf_weights_count(m->net, m->net->n);
        fz_train_steps(m);
    }
    lwf_model_free(m);
    close(fd);
    return m != NULL;
}

/* ---- data: up to three pieces separated by a line "%%": a .data file, a list of image
 * paths and a list of labels, read with lwf_datacfg_read / lwf_list_read; then the
 * paths are labelled with lwf_labels_of. ---- */

#define FZ_DATA_SEP "\n%%\n"

/* Returns a bit per step that succeeded: 1 .data, 2 paths, 4 labels, 8 labelling. */
static inline int fz_data_input(const uint8_t *bytes, size_t size, lwf_err *err)
{
    const uint8_t *piece[3] = {bytes, bytes + size, bytes + size};
    size_t len[3] = {size, 0, 0}, seplen = strlen(FZ_DATA_SEP);
    for (int k = 0; k < 2; ++k) {
        const uint8_t *sep = memmem(piece[k], len[k], FZ_DATA_SEP, seplen);
        if (!sep) break;
        piece[k + 1] = sep + seplen;
        len[k + 1] = (size_t)(piece[k] + len[k] - piece[k + 1]);
        len[k] = (size_t)(sep - piece[k]);
    }
    char path[3][64];
    int fd[3], ok = 0;
    for (int k = 0; k < 3; ++k) fd[k] = fz_memfile(piece[k], len[k], path[k]);
    lwf_datacfg d;
    if (fd[0] >= 0 && lwf_datacfg_read(path[0], &d, err) == 0) {
        ok |= 1;
        lwf_datacfg_free(&d);
    }
    lwf_list paths, labels;
    if (fd[1] >= 0 && lwf_list_read(path[1], &paths, err) == 0) ok |= 2;
    if (fd[2] >= 0 && lwf_list_read(path[2], &labels, err) == 0) ok |= 4;
    if ((ok & 6) == 6) {
        int *out = malloc((size_t)paths.n * sizeof *out); /* (paths.n) */
        if (out && lwf_labels_of(&paths, path[1], &labels, out, err) == 0) ok |= 8;
        free(out);
    }
    if (ok & 2) lwf_list_free(&paths);
    if (ok & 4) lwf_list_free(&labels);
    for (int k = 0; k < 3; ++k)
        if (fd[k] >= 0) close(fd[k]);
    return ok;
}

/* ---- weights: lwf_weights_load_model into a fixed small model with every kind of layer
 * that stores weights (convolutional and connected with batch-norm, [batchnorm]), an old
 * head and a new head, no data= files.  Old part: 176 floats, whole model: 242. ---- */

static const char fz_weights_cfg[] =
    "[net]\nbatch=1\nheight=4\nwidth=4\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[batchnorm]\n"
    "[task]\nname=old\n"
    "[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n"
    "[lwf_distill]\n"
    "[task]\nname=new\n"
    "[connected]\noutput=2\nactivation=linear\n"
    "[softmax]\n";

/* The fixed model, or NULL with err set. */
static inline lwf_model *fz_weights_model(lwf_err *err)
{
    char path[64];
    int fd = fz_memfile(fz_weights_cfg, sizeof fz_weights_cfg - 1, path);
    if (fd < 0) {
        lwf_fail(err, "memfd_create failed");
        return NULL;
    }
    lwf_model *m = fz_model_load(path, 1, err);
    close(fd);
    return m;
}

/* Returns 1 if the file loaded (err holds the reason otherwise), -1 if no memfd. */
static inline int fz_weights_input(lwf_model *m, const uint8_t *bytes, size_t size, lwf_err *err)
{
    char path[64];
    int fd = fz_memfile(bytes, size, path);
    if (fd < 0) return -1;
    int whole = 0;
    size_t seen = 0;
    int rc = lwf_weights_load_model(m, path, &whole, &seen, err);
    close(fd);
    return rc == 0;
}

/* ---- image: lwf_image_load on the bytes. ---- */

/* Returns 1 if the image decoded (err holds the reason otherwise), -1 if no memfd. */
static inline int fz_image_input(const uint8_t *bytes, size_t size, lwf_err *err)
{
    char path[64];
    int fd = fz_memfile(bytes, size, path);
    if (fd < 0) return -1;
    image im;
    int rc = lwf_image_load(path, &im, err);
    if (rc == 0) free_image(im);
    close(fd);
    return rc == 0;
}

#endif
