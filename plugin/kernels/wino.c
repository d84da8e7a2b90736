/* Winograd F(2x2, 3x3) transforms for stride-1 3x3 convolutions (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", CVPR 2016).
 *
 * Each 2x2 block of outputs ("tile") of filter f is A^T [ sum_c U[f][c] (.) V[c] ] A, where
 * V[c] = B^T d B transforms the 4x4 input patch d under the tile (channel c) and
 * U[f][c] = G g G^T the 3x3 filter g: 16 multiplications per tile and channel instead of
 * 36.  For the 16 positions xi of the 4x4 transformed domain the sums over c are 16
 * independent products M[xi] (F, P) = U[xi] (F, C) V[xi] (C, P) over the P tiles of a
 * chunk, made by conv_kernels.c with OpenBLAS.
 *
 * Backward, the same linear maps transposed: dM = A dY A^T from the output delta,
 * dU[xi] = dM[xi] V[xi]^T (summed over tiles), dW = G^T dU G; dV[xi] = U[xi]^T dM[xi],
 * and the input delta gets B dV B^T of each tile added in (tiles overlap by 2).
 *
 * The transforms only add, subtract and halve: their rounding is a few ulps of each value,
 * next to the products' K-term sums (tests/unit/test_kernels.c holds the results to
 * Darknet's reference).
 *
 * Layouts: V[(xi*C + c)*P + p] and M[(xi*F + f)*P + p], tile p = j*T + ty*tw + tx of image
 * j of the chunk; U[(xi*F + f)*C + c]. */
#include "kernels/wino.h"
#include "kernels/clones.h"

#include <stddef.h>
#include <string.h>

void lwf_wino_geometry(const layer *l, lwf_wino *g)
{
    g->h = l->h;
    g->w = l->w;
    g->pad = l->pad;
    g->oh = l->out_h;
    g->ow = l->out_w;
    g->th = (l->out_h + 1) / 2;
    g->tw = (l->out_w + 1) / 2;
    g->T = g->th * g->tw;
    g->W2 = 2 * g->tw + 2;
    g->H2 = 2 * g->th + 2;
}

size_t lwf_wino_scratch(const lwf_wino *g)
{
    /* a padded plane (the transforms read exactly its rows and columns), and 16 rows of tw */
    return (size_t)g->H2 * g->W2 + 16 * (size_t)g->tw;
}

/* ---- several tiles at a time: GCC vector extensions of 16, 8 and 4 floats (one
 * AVX-512, AVX2 or SSE register each where the CPU has them), then one at a time.
 * A row of tiles is short (tw = 14 at 28x28, 4 at 7x7), so every width is used.
 * Loads and stores are unaligned, through memcpy.  Macros, not functions: a function
 * passing a vector would change its ABI with the target. ---- */

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

#define LDV(VT, p)                                                                                                     \
    ({                                                                                                                 \
        VT v_;                                                                                                         \
        memcpy(&v_, (p), sizeof v_);                                                                                   \
        v_;                                                                                                            \
    })
#define STV(VT, p, v)                                                                                                  \
    do {                                                                                                               \
        VT w_ = (v);                                                                                                   \
        memcpy((p), &w_, sizeof w_);                                                                                   \
    } while (0)
#define ld(p) LDV(v16, p)
#define st(p, v) STV(v16, p, v)

/* EVn, ODn: the even and the odd elements of p[0 .. 2n) */
#define EV16(p) __builtin_shufflevector(ld(p), ld((p) + 16), 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define OD16(p) __builtin_shufflevector(ld(p), ld((p) + 16), 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define EV8(p) __builtin_shufflevector(LDV(v8, p), LDV(v8, (p) + 8), 0, 2, 4, 6, 8, 10, 12, 14)
#define OD8(p) __builtin_shufflevector(LDV(v8, p), LDV(v8, (p) + 8), 1, 3, 5, 7, 9, 11, 13, 15)
#define EV4(p) __builtin_shufflevector(LDV(v4, p), LDV(v4, (p) + 4), 0, 2, 4, 6)
#define OD4(p) __builtin_shufflevector(LDV(v4, p), LDV(v4, (p) + 4), 1, 3, 5, 7)
#define EV1(p) (*(p))
#define OD1(p) ((p)[1])

/* ILn: p[0 .. 2n) = a[0] b[0] a[1] b[1] ... */
#define IL16(p, a, b)                                                                                                  \
    do {                                                                                                               \
        v16 a_ = (a), b_ = (b);                                                                                        \
        st((p), __builtin_shufflevector(a_, b_, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));              \
        st((p) + 16, __builtin_shufflevector(a_, b_, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));   \
    } while (0)
#define IL8(p, a, b)                                                                                                   \
    do {                                                                                                               \
        v8 a_ = (a), b_ = (b);                                                                                         \
        STV(v8, (p), __builtin_shufflevector(a_, b_, 0, 8, 1, 9, 2, 10, 3, 11));                                       \
        STV(v8, (p) + 8, __builtin_shufflevector(a_, b_, 4, 12, 5, 13, 6, 14, 7, 15));                                 \
    } while (0)
#define IL4(p, a, b)                                                                                                   \
    do {                                                                                                               \
        v4 a_ = (a), b_ = (b);                                                                                         \
        STV(v4, (p), __builtin_shufflevector(a_, b_, 0, 4, 1, 5));                                                     \
        STV(v4, (p) + 4, __builtin_shufflevector(a_, b_, 2, 6, 3, 7));                                                 \
    } while (0)
#define IL1(p, a, b)                                                                                                   \
    do {                                                                                                               \
        (p)[0] = (a);                                                                                                  \
        (p)[1] = (b);                                                                                                  \
    } while (0)

/* Runs TILES(VT, W, EV, OD, IL) for each width, widest first, over a row of tw tiles
 * (x: the first tile not yet done); the last 1-3 tiles of a row of 4 or more go as the
 * row's last 4 (the ones before are done twice, writing the same values) */
#define ALL_WIDTHS(TILES)                                                                                              \
    do {                                                                                                               \
        int x = 0;                                                                                                     \
        TILES(v16, 16, EV16, OD16, IL16);                                                                              \
        TILES(v8, 8, EV8, OD8, IL8);                                                                                   \
        TILES(v4, 4, EV4, OD4, IL4);                                                                                   \
        if (x < tw && tw >= 4) x = tw - 4;                                                                             \
        TILES(v4, 4, EV4, OD4, IL4);                                                                                   \
        TILES(float, 1, EV1, OD1, IL1);                                                                                \
    } while (0)

/* ---- filters: 16 channels at a time (T = v16), the rest one at a time (T = float) ---- */

/* u (4x4) = G g G^T of a 3x3 filter g, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
#define FILTER_FWD(T, g, u)                                                                                            \
    do {                                                                                                               \
        T t_[4][3];                                                                                                    \
        for (int k = 0; k < 3; ++k) {                                                                                  \
            T a_ = g[k], b_ = g[3 + k], c_ = g[6 + k];                                                                 \
            t_[0][k] = a_;                                                                                             \
            t_[1][k] = .5f * (a_ + b_ + c_);                                                                           \
            t_[2][k] = .5f * (a_ - b_ + c_);                                                                           \
            t_[3][k] = c_;                                                                                             \
        }                                                                                                              \
        for (int i = 0; i < 4; ++i) {                                                                                  \
            T a_ = t_[i][0], b_ = t_[i][1], c_ = t_[i][2];                                                             \
            u[i * 4 + 0] = a_;                                                                                         \
            u[i * 4 + 1] = .5f * (a_ + b_ + c_);                                                                       \
            u[i * 4 + 2] = .5f * (a_ - b_ + c_);                                                                       \
            u[i * 4 + 3] = c_;                                                                                         \
        }                                                                                                              \
    } while (0)

/* dg (3x3) = G^T du G, the transpose of FILTER_FWD */
#define FILTER_BWD(T, du, dg)                                                                                          \
    do {                                                                                                               \
        T t_[3][4];                                                                                                    \
        for (int k = 0; k < 4; ++k) {                                                                                  \
            T a_ = du[k], b_ = du[4 + k], c_ = du[8 + k], d_ = du[12 + k];                                             \
            t_[0][k] = a_ + .5f * (b_ + c_);                                                                           \
            t_[1][k] = .5f * (b_ - c_);                                                                                \
            t_[2][k] = .5f * (b_ + c_) + d_;                                                                           \
        }                                                                                                              \
        for (int i = 0; i < 3; ++i) {                                                                                  \
            T a_ = t_[i][0], b_ = t_[i][1], c_ = t_[i][2], d_ = t_[i][3];                                              \
            dg[i * 3 + 0] = a_ + .5f * (b_ + c_);                                                                      \
            dg[i * 3 + 1] = .5f * (b_ - c_);                                                                           \
            dg[i * 3 + 2] = .5f * (b_ + c_) + d_;                                                                      \
        }                                                                                                              \
    } while (0)

CLONES static void filters_fwd(const float *w, int F, int C, int f0, int f1, float *U)
{
    size_t xs = lwf_wino_stream((size_t)F * C);
    for (int f = f0; f < f1; ++f) {
        float *dst = U + (size_t)f * C;
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            const float *src = w + ((size_t)f * C + c) * 9; /* 16 filters of 9 */
            float tr[9][16];
            for (int q = 0; q < 16; ++q)
                for (int k = 0; k < 9; ++k) tr[k][q] = src[q * 9 + k];
            v16 g[9], u[16];
            for (int k = 0; k < 9; ++k) g[k] = ld(tr[k]);
            FILTER_FWD(v16, g, u);
            for (int xi = 0; xi < 16; ++xi) st(dst + xi * xs + c, u[xi]);
        }
        for (; c < C; ++c) {
            const float *g = w + ((size_t)f * C + c) * 9;
            float u[16];
            FILTER_FWD(float, g, u);
            for (int xi = 0; xi < 16; ++xi) dst[xi * xs + c] = u[xi];
        }
    }
}

CLONES static void filters_bwd(const float *dU, int F, int C, int f0, int f1, float *dw)
{
    size_t xs = lwf_wino_stream((size_t)F * C);
    for (int f = f0; f < f1; ++f) {
        const float *src = dU + (size_t)f * C;
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            v16 du[16], dg[9];
            for (int xi = 0; xi < 16; ++xi) du[xi] = ld(src + xi * xs + c);
            FILTER_BWD(v16, du, dg);
            float tr[9][16];
            for (int k = 0; k < 9; ++k) st(tr[k], dg[k]);
            float *d = dw + ((size_t)f * C + c) * 9;
            for (int q = 0; q < 16; ++q)
                for (int k = 0; k < 9; ++k) d[q * 9 + k] += tr[k][q];
        }
        for (; c < C; ++c) {
            float du[16], dg[9];
            for (int xi = 0; xi < 16; ++xi) du[xi] = src[xi * xs + c];
            FILTER_BWD(float, du, dg);
            float *d = dw + ((size_t)f * C + c) * 9;
            for (int k = 0; k < 9; ++k) d[k] += dg[k];
        }
    }
}

/* (wrappers: a function with target clones stays inside this file) */
void lwf_wino_filters(const float *w, int F, int C, int f0, int f1, float *U)
{
    filters_fwd(w, F, C, f0, f1, U);
}

void lwf_wino_filters_grad(const float *dU, int F, int C, int f0, int f1, float *dw)
{
    filters_bwd(dU, F, C, f0, f1, dw);
}

/* ---- input: V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] ---- */

/* One row of tiles: rows r[0..3] of the padded plane into the 16 streams v + xi*xs, tw
 * tiles each */
#define IN_TILES(VT, W, EV, OD, IL)                                                                                    \
    for (; x + W <= tw; x += W) {                                                                                      \
        VT t[4][4];                                                                                                    \
        for (int i = 0; i < 4; ++i) {                                                                                  \
            const float *q = r[i] + 2 * x;                                                                             \
            VT a = EV(q), b = OD(q), c = EV(q + 2), d = OD(q + 2);                                                     \
            t[i][0] = a - c;                                                                                           \
            t[i][1] = b + c;                                                                                           \
            t[i][2] = c - b;                                                                                           \
            t[i][3] = b - d;                                                                                           \
        }                                                                                                              \
        for (int k = 0; k < 4; ++k) {                                                                                  \
            STV(VT, v + (0 * 4 + k) * xs + x, t[0][k] - t[2][k]);                                                      \
            STV(VT, v + (1 * 4 + k) * xs + x, t[1][k] + t[2][k]);                                                      \
            STV(VT, v + (2 * 4 + k) * xs + x, t[2][k] - t[1][k]);                                                      \
            STV(VT, v + (3 * 4 + k) * xs + x, t[1][k] - t[3][k]);                                                      \
        }                                                                                                              \
    }

CLONES static void in_row(const float *const r[4], int tw, float *restrict v, size_t xs)
{
    ALL_WIDTHS(IN_TILES);
}

void lwf_wino_in(const float *in, int n, int C, const lwf_wino *g, float *V, size_t P, float *scratch)
{
    float *pl = scratch;
    size_t plane = (size_t)g->H2 * g->W2, xs = lwf_wino_stream((size_t)C * P);
    for (size_t i = 0; i < plane; ++i) pl[i] = 0;
    for (int j = 0; j < n; ++j)
        for (int c = 0; c < C; ++c) {
            const float *im = in + ((size_t)j * C + c) * g->h * g->w;
            for (int y = 0; y < g->h; ++y) {
                float *d = pl + (size_t)(y + g->pad) * g->W2 + g->pad;
                const float *s = im + (size_t)y * g->w;
                for (int x = 0; x < g->w; ++x) d[x] = s[x];
            }
            float *v = V + (size_t)c * P + (size_t)j * g->T;
            for (int ty = 0; ty < g->th; ++ty) {
                const float *r0 = pl + (size_t)(2 * ty) * g->W2;
                const float *r[4] = {r0, r0 + g->W2, r0 + 2 * g->W2, r0 + 3 * g->W2};
                in_row(r, g->tw, v + (size_t)ty * g->tw, xs);
            }
        }
}

/* ---- output: Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1] ---- */

#define OUT_TILES(VT, W, EV, OD, IL)                                                                                   \
    for (; x + W <= tw; x += W) {                                                                                      \
        VT s[2][4];                                                                                                    \
        for (int k = 0; k < 4; ++k) {                                                                                  \
            VT a = LDV(VT, m + (0 * 4 + k) * xs + x), b = LDV(VT, m + (1 * 4 + k) * xs + x),                           \
               c = LDV(VT, m + (2 * 4 + k) * xs + x), d = LDV(VT, m + (3 * 4 + k) * xs + x);                           \
            s[0][k] = a + b + c;                                                                                       \
            s[1][k] = b - c - d;                                                                                       \
        }                                                                                                              \
        IL(o0 + 2 * x, s[0][0] + s[0][1] + s[0][2], s[0][1] - s[0][2] - s[0][3]);                                      \
        IL(o1 + 2 * x, s[1][0] + s[1][1] + s[1][2], s[1][1] - s[1][2] - s[1][3]);                                      \
    }

CLONES static void out_row(const float *restrict m, size_t xs, int tw, float *restrict o0, float *restrict o1)
{
    ALL_WIDTHS(OUT_TILES);
}

void lwf_wino_out(const float *M, int n, int F, const lwf_wino *g, size_t P, float *dst, size_t img_stride,
                  size_t f_stride, float *scratch)
{
    size_t xs = lwf_wino_stream((size_t)F * P);
    float *o0 = scratch, *o1 = scratch + 2 * (size_t)g->tw;
    for (int j = 0; j < n; ++j)
        for (int f = 0; f < F; ++f) {
            const float *m = M + (size_t)f * P + (size_t)j * g->T;
            float *d = dst + (size_t)j * img_stride + (size_t)f * f_stride;
            for (int ty = 0; ty < g->th; ++ty) {
                float *y0 = d + (size_t)(2 * ty) * g->ow;
                int two = 2 * ty + 1 < g->oh;
                if (2 * g->tw == g->ow && two) {
                    out_row(m + (size_t)ty * g->tw, xs, g->tw, y0, y0 + g->ow);
                    continue;
                }
                out_row(m + (size_t)ty * g->tw, xs, g->tw, o0, o1);
                for (int x = 0; x < g->ow; ++x) y0[x] = o0[x];
                if (two)
                    for (int x = 0; x < g->ow; ++x) y0[g->ow + x] = o1[x];
            }
        }
}

/* ---- output delta: dM = A dY A^T ---- */

#define DOUT_TILES(VT, W, EV, OD, IL)                                                                                  \
    for (; x + W <= tw; x += W) {                                                                                      \
        VT a = EV(g0 + 2 * x), b = OD(g0 + 2 * x), c = EV(g1 + 2 * x), d = OD(g1 + 2 * x);                             \
        VT r[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};                                               \
        for (int i = 0; i < 4; ++i) {                                                                                  \
            VT p = r[i][0], q = r[i][1];                                                                               \
            STV(VT, m + (i * 4 + 0) * xs + x, p);                                                                      \
            STV(VT, m + (i * 4 + 1) * xs + x, p + q);                                                                  \
            STV(VT, m + (i * 4 + 2) * xs + x, p - q);                                                                  \
            STV(VT, m + (i * 4 + 3) * xs + x, -q);                                                                     \
        }                                                                                                              \
    }

CLONES static void dout_row(const float *restrict g0, const float *restrict g1, int tw, float *restrict m, size_t xs)
{
    ALL_WIDTHS(DOUT_TILES);
}

void lwf_wino_dout(const float *D, size_t img_stride, size_t f_stride, int n, int F, const lwf_wino *g, float *dM,
                   size_t P, float *scratch)
{
    size_t xs = lwf_wino_stream((size_t)F * P), rw = 2 * (size_t)g->tw;
    float *g0 = scratch, *g1 = scratch + rw;
    for (int j = 0; j < n; ++j)
        for (int f = 0; f < F; ++f) {
            const float *d = D + (size_t)j * img_stride + (size_t)f * f_stride;
            float *m = dM + (size_t)f * P + (size_t)j * g->T;
            for (int ty = 0; ty < g->th; ++ty) {
                const float *y0 = d + (size_t)(2 * ty) * g->ow;
                int two = 2 * ty + 1 < g->oh;
                if (rw == (size_t)g->ow && two) {
                    dout_row(y0, y0 + g->ow, g->tw, m + (size_t)ty * g->tw, xs);
                    continue;
                }
                for (size_t x = 0; x < rw; ++x) {
                    g0[x] = x < (size_t)g->ow ? y0[x] : 0;
                    g1[x] = two && x < (size_t)g->ow ? y0[g->ow + x] : 0;
                }
                dout_row(g0, g1, g->tw, m + (size_t)ty * g->tw, xs);
            }
        }
}

/* ---- input delta: dd = B dV B^T, added into the overlapping patches ---- */

/* One row of tiles: t[(i*4 + k)*tw + x] = dd[i][k] of tile x */
#define DIN_TILES(VT, W, EV, OD, IL)                                                                                   \
    for (; x + W <= tw; x += W) {                                                                                      \
        VT s[4][4];                                                                                                    \
        for (int k = 0; k < 4; ++k) {                                                                                  \
            VT a = LDV(VT, v + (0 * 4 + k) * xs + x), b = LDV(VT, v + (1 * 4 + k) * xs + x),                           \
               c = LDV(VT, v + (2 * 4 + k) * xs + x), d = LDV(VT, v + (3 * 4 + k) * xs + x);                           \
            s[0][k] = a;                                                                                               \
            s[1][k] = b - c + d;                                                                                       \
            s[2][k] = b + c - a;                                                                                       \
            s[3][k] = -d;                                                                                              \
        }                                                                                                              \
        for (int i = 0; i < 4; ++i) {                                                                                  \
            VT a = s[i][0], b = s[i][1], c = s[i][2], d = s[i][3];                                                     \
            STV(VT, t + (size_t)(i * 4 + 0) * tw + x, a);                                                              \
            STV(VT, t + (size_t)(i * 4 + 1) * tw + x, b - c + d);                                                      \
            STV(VT, t + (size_t)(i * 4 + 2) * tw + x, b + c - a);                                                      \
            STV(VT, t + (size_t)(i * 4 + 3) * tw + x, -d);                                                             \
        }                                                                                                              \
    }

CLONES static void din_row(const float *restrict v, size_t xs, int tw, float *restrict t)
{
    ALL_WIDTHS(DIN_TILES);
}

/* row[2x + k] += t_k[x] for k = 0..3 (the tiles of a row overlap by 2) */
CLONES static void din_add(float *restrict row, const float *restrict t0, const float *restrict t1,
                           const float *restrict t2, const float *restrict t3, int tw)
{
    for (int x = 0; x < tw; ++x) {
        row[2 * x] += t0[x];
        row[2 * x + 1] += t1[x];
    }
    for (int x = 0; x < tw; ++x) {
        row[2 * x + 2] += t2[x];
        row[2 * x + 3] += t3[x];
    }
}

CLONES static void add_span(float *restrict d, const float *restrict s, int n)
{
    for (int i = 0; i < n; ++i) d[i] += s[i];
}

void lwf_wino_din(const float *dV, int n, int C, const lwf_wino *g, size_t P, float *dx, float *scratch)
{
    size_t xs = lwf_wino_stream((size_t)C * P), plane = (size_t)g->H2 * g->W2;
    float *pl = scratch, *t = scratch + plane;
    int tw = g->tw;
    for (int j = 0; j < n; ++j)
        for (int c = 0; c < C; ++c) {
            for (size_t i = 0; i < plane; ++i) pl[i] = 0;
            const float *v = dV + (size_t)c * P + (size_t)j * g->T;
            for (int ty = 0; ty < g->th; ++ty) {
                din_row(v + (size_t)ty * tw, xs, tw, t);
                for (int i = 0; i < 4; ++i)
                    din_add(pl + (size_t)(2 * ty + i) * g->W2, t + (size_t)(i * 4) * tw, t + (size_t)(i * 4 + 1) * tw,
                            t + (size_t)(i * 4 + 2) * tw, t + (size_t)(i * 4 + 3) * tw, tw);
            }
            float *im = dx + ((size_t)j * C + c) * g->h * g->w;
            int n2 = g->w < g->W2 - g->pad ? g->w : g->W2 - g->pad;
            for (int y = 0; y < g->h && y + g->pad < g->H2; ++y)
                add_span(im + (size_t)y * g->w, pl + (size_t)(y + g->pad) * g->W2 + g->pad, n2);
        }
}
