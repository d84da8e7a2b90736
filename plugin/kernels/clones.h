/* The kernels' row loops, compiled for three kinds of x86-64 CPU, the version chosen at
 * load time from the CPU (GCC's target_clones): AVX-512, AVX2 with FMA (x86-64-v3: GCC's
 * "avx2" target alone has no fused multiply-add), baseline.  Private to kernels/. */
#ifndef LWF_KERNELS_CLONES_H
#define LWF_KERNELS_CLONES_H

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#endif
