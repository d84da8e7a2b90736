/* Matrix products for the whole process: `gemm` and `gemm_cpu` defined here replace
 * libdarknet's reference triple loops (its internal calls go through the PLT and the
 * executable is linked with -rdynamic), with Darknet's exact semantics, on OpenBLAS.
 * The reference switch (runtime.c: lwf_reference) sends them back to libdarknet's own
 * gemm_cpu.  These two names are the only exports without the lwf_ prefix: they must be
 * Darknet's.  Layer kernels: kernels/. */
#define _GNU_SOURCE
#include "runtime/runtime.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* OpenBLAS's own dynamic-architecture entry points (exported by Debian's DYNAMIC_ARCH
 * build, not declared in cblas.h): used once to redo its CPU detection. */
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));

typedef void (*gemm_fn)(int, int, int, int, int, float, float *, int, float *, int, float, float *, int);

/* Found once (pthread_once), then only read; the counters are atomic. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static gemm_fn darknet_gemm_cpu;        /* libdarknet's own gemm_cpu, or NULL */
static char darknet_path[4096];
static char blas_note[160];
static atomic_llong n_fast_gemm, n_ref_gemm;


/* OpenBLAS 0.3.21 does not know recent Xeons (family 6 model 207 here) and falls back to
 * its SSE3 "Prescott" kernels, 8x slower than its AVX-512 ones.  Unless the user chose a
 * core with OPENBLAS_CORETYPE, pick the best one the CPU supports and redo OpenBLAS's
 * selection (nothing runs in OpenBLAS yet: this happens before the first kernel call). */
static void fix_openblas_core(void)
{
    const char *core = openblas_get_corename();
    snprintf(blas_note, sizeof blas_note, "OpenBLAS core %s", core ? core : "?");
    if (getenv("OPENBLAS_CORETYPE") || !gotoblas_dynamic_init || !gotoblas_dynamic_quit || !core) return;
    __builtin_cpu_init();
    const char *want = NULL;
    static const char *avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    const char **good = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        want = "SkylakeX";
        good = avx512_cores;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        want = "Haswell";
        good = avx2_cores;
    }
    if (!want) return;
    for (int i = 0; good[i]; ++i)
        if (strcasecmp(core, good[i]) == 0) return;
    char old[64];
    snprintf(old, sizeof old, "%s", core);
    gotoblas_dynamic_quit();
    setenv("OPENBLAS_CORETYPE", want, 1);
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    snprintf(blas_note, sizeof blas_note, "OpenBLAS core %s (detected %s; set OPENBLAS_CORETYPE to choose)",
             openblas_get_corename(), old);
}

static void setup(void)
{
    /* libdarknet's own gemm_cpu: the library that holds fill_cpu, looked up by handle so
     * that our interposing definition is not found first */
    Dl_info info;
    if (dladdr((void *)fill_cpu, &info) && info.dli_fname) {
        snprintf(darknet_path, sizeof darknet_path, "%s", info.dli_fname);
        void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            void *f = dlsym(h, "gemm_cpu");
            Dl_info fi;
            /* it must live in libdarknet itself, not be ours */
            if (f && dladdr(f, &fi) && fi.dli_fname && strcmp(fi.dli_fname, info.dli_fname) == 0)
                darknet_gemm_cpu = (gemm_fn)f;
            dlclose(h);
        }
    }
    fix_openblas_core();
    /* the kernels run their own threads (pool.c); OpenBLAS calls stay on the caller's */
    openblas_set_num_threads(1);
}

void lwf_blas_init(void)
{
    pthread_once(&once, setup);
}

const char *lwf_blas_info(void)
{
    lwf_blas_init();
    return blas_note;
}

void lwf_kernel_stats_get(lwf_kernel_stats *s)
{
    lwf_blas_init();
    s->fast_gemm = atomic_load(&n_fast_gemm);
    s->ref_gemm = atomic_load(&n_ref_gemm);
    s->darknet_gemm_found = darknet_gemm_cpu != NULL;
}

/* One row-major product on the calling thread: C = alpha op(A) op(B) + beta C. */
void lwf_sgemm1(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) c[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
                b, ldb, beta, c, ldc);
}

typedef struct {
    int ta, tb, m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
    int split_m;         /* 1: threads take row blocks of C; 0: column blocks */
} gemm_job;

static void gemm_part(void *ctx, int t, int nt)
{
    const gemm_job *g = ctx;
    int len = g->split_m ? g->m : g->n;
    /* blocks of a multiple of 16 (one AVX-512 vector of floats) */
    int per = (len + nt - 1) / nt;
    per = (per + 15) / 16 * 16;
    int lo = t * per, hi = lo + per < len ? lo + per : len;
    if (lo >= hi) return;
    if (g->split_m) {
        const float *a = g->ta ? g->a + lo : g->a + (size_t)lo * g->lda;
        lwf_sgemm1(g->ta, g->tb, hi - lo, g->n, g->k, g->alpha, a, g->lda, g->b, g->ldb, g->beta,
                   g->c + (size_t)lo * g->ldc, g->ldc);
    } else {
        const float *b = g->tb ? g->b + (size_t)lo * g->ldb : g->b + lo;
        lwf_sgemm1(g->ta, g->tb, g->m, hi - lo, g->k, g->alpha, g->a, g->lda, b, g->ldb, g->beta, g->c + lo, g->ldc);
    }
}

void lwf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc)
{
    lwf_blas_init();
    int nt = lwf_threads();
    /* small products are not worth waking the other threads */
    if (nt < 2 || (double)m * n * k < LWF_SGEMM_SPLIT_MACS || (m < 32 && n < 32)) {
        lwf_sgemm1(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job g = {ta, tb, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, m >= n};
    lwf_parallel(gemm_part, &g);
}

/* Darknet's argument contract (gemm.c): C is M x N with row stride ldc, op(A) is M x K,
 * op(B) is K x N, and C is scaled by BETA before the product is added. */
void gemm_cpu(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb, float BETA,
              float *C, int ldc)
{
    lwf_blas_init();
    int ok = M >= 0 && N >= 0 && K >= 0 && ldc >= (N > 1 ? N : 1) && lda >= ((TA ? M : K) > 1 ? (TA ? M : K) : 1) &&
             ldb >= ((TB ? K : N) > 1 ? (TB ? K : N) : 1);
    if (lwf_reference() || !ok) {
        /* the reference, or arguments cblas would refuse: Darknet's own loops */
        if (darknet_gemm_cpu) {
            atomic_fetch_add_explicit(&n_ref_gemm, 1, memory_order_relaxed);
            darknet_gemm_cpu(TA, TB, M, N, K, ALPHA, A, lda, B, ldb, BETA, C, ldc);
            return;
        }
        fprintf(stderr, "darknet-lwf: libdarknet's gemm_cpu not found (%s): using OpenBLAS\n", darknet_path);
    }
    atomic_fetch_add_explicit(&n_fast_gemm, 1, memory_order_relaxed);
    lwf_sgemm(TA, TB, M, N, K, ALPHA, A, lda, B, ldb, BETA, C, ldc);
}

void gemm(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb, float BETA, float *C,
          int ldc)
{
    gemm_cpu(TA, TB, M, N, K, ALPHA, A, lda, B, ldb, BETA, C, ldc);
}
