/* The process's runtime settings: LWF_THREADS and LWF_REFERENCE, read once and strictly,
 * and the reference switch, the one piece of process-wide mutable state (runtime.h says
 * why).  The pool (pool.c) and the products (blas.c) read them here; so do the installed
 * layer kernels (kernels/install.c). */
#include "runtime/runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Written once under pthread_once, then only read; `reference` also by lwf_set_reference. */
static struct {
    pthread_once_t once;
    int threads;          /* LWF_THREADS, or the online CPUs; 1..LWF_MAX_THREADS */
    char error[256];      /* why the environment was refused, or "" */
    atomic_int reference; /* 1: Darknet's own kernels and gemm */
} S = {PTHREAD_ONCE_INIT, 1, "", 0};

_Static_assert(LWF_MAX_THREADS == 64, "the LWF_THREADS message names the limit");

static void refuse(const char *name, const char *value, const char *want)
{
    if (!S.error[0]) snprintf(S.error, sizeof S.error, "%s=%.64s: %s", name, value, want);
}

static void read_env(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    S.threads = cpus < 1 ? 1 : cpus > LWF_MAX_THREADS ? LWF_MAX_THREADS : (int)cpus;
    const char *e = getenv("LWF_THREADS");
    int n;
    if (e && *e) {
        if (lwf_parse_int(e, 1, LWF_MAX_THREADS, &n) == 0) S.threads = n;
        else refuse("LWF_THREADS", e, "must be a whole number of threads from 1 to 64 (LWF_MAX_THREADS)");
    }
    e = getenv("LWF_REFERENCE");
    if (e && *e) {
        if (lwf_parse_int(e, 0, 1, &n) == 0) atomic_store(&S.reference, n);
        else refuse("LWF_REFERENCE", e, "must be 0 (the fast kernels) or 1 (Darknet's reference kernels)");
    }
}

static void settings(void)
{
    pthread_once(&S.once, read_env);
}

int lwf_runtime_check(lwf_err *err)
{
    settings();
    return S.error[0] ? lwf_fail(err, "%s", S.error) : 0;
}

int lwf_runtime_threads(void)
{
    settings();
    return S.threads;
}

int lwf_reference(void)
{
    settings();
    return atomic_load_explicit(&S.reference, memory_order_relaxed);
}

void lwf_set_reference(int on)
{
    settings();
    atomic_store(&S.reference, on ? 1 : 0);
}

lwf_runtime lwf_runtime_default(void)
{
    lwf_runtime rt = {LWF_MIN_WORK, 0};
    return rt;
}
