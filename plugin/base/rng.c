/* Counter-based random numbers (splitmix64): a stream per (seed, a, b), so every draw
 * is a function of the seed and a position, never of thread timing. */
#include "base/base.h"

#include <math.h>

/* splitmix64's golden-ratio increment (2^64 / phi, odd) */
#define GOLDEN 0x9E3779B97F4A7C15ULL

/* one splitmix64 step from state z */
static unsigned long long mix(unsigned long long z)
{
    return lwf_mix64(z + GOLDEN);
}

lwf_rng lwf_rng_make(unsigned long long seed, unsigned long long a, unsigned long long b)
{
    lwf_rng r = {mix(mix(mix(seed) ^ a) ^ b)};
    return r;
}

unsigned long long lwf_rng_next(lwf_rng *r)
{
    r->s += GOLDEN;
    return lwf_mix64(r->s);
}

float lwf_rng_uniform(lwf_rng *r, float lo, float hi)
{
    double u = (double)(lwf_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float lwf_rng_normal(lwf_rng *r)
{
    double u1 = ((double)(lwf_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(lwf_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
