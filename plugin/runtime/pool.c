/* The kernels' thread pool: nt - 1 workers started once (nt from runtime.c's settings),
 * each running its part of a job while the calling thread runs part 0.  Workers spin
 * briefly, then sleep.  Which work a part does is the kernels' business
 * (runtime/runtime.h: lwf_split); when a job is worth splitting, theirs too
 * (lwf_parallel_if and the lwf_runtime they are given). */
#define _GNU_SOURCE
#include "runtime/runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define SPINS 4000

/* Process-wide, like OpenBLAS's own pool: created once, never freed. */
static struct {
    pthread_once_t once;
    int nt;                         /* threads, the caller included */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_uint gen;                /* job number: a change starts the workers */
    atomic_int pending;             /* workers still running the current job */
    atomic_flag busy;               /* a job is in flight */
    void (*fn)(void *, int, int);
    void *ctx;
} P = {PTHREAD_ONCE_INIT, 1, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
       ATOMIC_FLAG_INIT, NULL, NULL};

static _Thread_local int in_worker;

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg)
{
    int t = (int)(long)arg;
    in_worker = 1;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
            if (++spins < SPINS) {
                relax();
                continue;
            }
            pthread_mutex_lock(&P.mu);
            while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) pthread_cond_wait(&P.go, &P.mu);
            pthread_mutex_unlock(&P.mu);
            break;
        }
        seen = g;
        P.fn(P.ctx, t, P.nt);
        if (atomic_fetch_sub_explicit(&P.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_signal(&P.done);
            pthread_mutex_unlock(&P.mu);
        }
    }
    return NULL;
}

static void start(void)
{
    int n = lwf_runtime_threads();
    int made = 1;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int t = 1; t < n; ++t) {
        pthread_t th;
        if (pthread_create(&th, &at, worker, (void *)(long)t) != 0) break;
        ++made;
    }
    pthread_attr_destroy(&at);
    P.nt = made;
}

int lwf_threads(void)
{
    pthread_once(&P.once, start);
    return P.nt;
}

void lwf_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    int nt = lwf_threads();
    if (nt == 1 || in_worker || atomic_flag_test_and_set_explicit(&P.busy, memory_order_acquire)) {
        for (int t = 0; t < nt; ++t) fn(ctx, t, nt);
        return;
    }
    P.fn = fn;
    P.ctx = ctx;
    atomic_store_explicit(&P.pending, nt - 1, memory_order_relaxed);
    pthread_mutex_lock(&P.mu);
    atomic_fetch_add_explicit(&P.gen, 1, memory_order_release);
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    in_worker = 1; /* a nested lwf_parallel inside part 0 runs serially */
    fn(ctx, 0, nt);
    in_worker = 0;
    int spins = 0;
    while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0 && ++spins < SPINS) relax();
    if (atomic_load_explicit(&P.pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&P.mu);
        while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0) pthread_cond_wait(&P.done, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
    atomic_flag_clear_explicit(&P.busy, memory_order_release);
}

typedef struct {
    float *x;
    size_t n;
} zero_job;

static void zero_part(void *ctx, int t, int nt)
{
    const zero_job *z = ctx;
    size_t lo = z->n * (size_t)t / (size_t)nt, hi = z->n * (size_t)(t + 1) / (size_t)nt;
    memset(z->x + lo, 0, (hi - lo) * sizeof(float));
}

void lwf_zero(float *x, size_t n)
{
    zero_job z = {x, n};
    if (n < (1u << 16)) memset(x, 0, n * sizeof(float));
    else lwf_parallel(zero_part, &z);
}

void lwf_parallel_if(const lwf_runtime *rt, double work, void (*fn)(void *ctx, int t, int nt),
                                   void *ctx)
{
    if (work < rt->min_work) fn(ctx, 0, 1);
    else lwf_parallel(fn, ctx);
}
