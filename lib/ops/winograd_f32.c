/*
 * winograd_f32.c - 3x3 stride-1 convolution by Winograd's minimal filtering
 * algorithm F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016), NHWC, float32.
 *
 * A 4x4 block of output pixels needs a 6x6 block d of input pixels (the tile);
 * per input channel and output channel
 *   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 * (g the 3x3 kernel, (.) the element-wise product), i.e. 36 multiplications
 * per tile instead of 144. Summed over the input channels, the element-wise
 * products become, per tile position (i, j) of the 6x6, one GEMM:
 *   M_ij (tiles, o) = V_ij (tiles, c) * U_ij (c, o),
 * U = G g G^T per (c, o) computed once (in double) and packed as the GEMM's B
 * operand, V = B^T d B per tile and channel. So the conv costs 36 GEMMs of
 * K = c (a quarter of the direct method's multiply-adds) plus the input and
 * output transforms, which are additions and multiplications by small
 * constants vectorized over channels (blocks of 16; a last partial block
 * overlaps the previous one).
 *
 * Tiles are processed in chunks whose V and M fit WG_SCRATCH_BYTES: input
 * transform of the chunk, the 36 GEMMs, output transform (plus bias, residual,
 * activation, stored only for pixels inside the output). Tiles at the image
 * border read zeros outside the input. Every tile is computed by the same
 * operations whatever its chunk and thread, so results are deterministic and
 * independent of the thread count and batch. The transforms reassociate the
 * sums, so results differ from the direct method by float rounding (a few
 * times the direct method's; tested against the reference).
 */
#include <string.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

#define WG_T 6    /* input tile */
#define WG_M 4    /* output tile */
#define WG_P 36   /* tile positions: GEMMs per chunk */
#define WG_BLOCK 16
#define WG_SCRATCH_BYTES ((int64_t)512 << 10)

int tml_winograd_f32_applies(const tml_window *p)
{
    return p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 && p->groups == 1 &&
           p->c >= WG_BLOCK && p->o >= WG_BLOCK;
}

/* floats of one position's packed U (64-byte multiple) */
static size_t pos_floats(tml_isa isa, int c, int o)
{
    return (tml_sgemm_packed_b_floats(isa, o, c) + 15) / 16 * 16;
}

size_t tml_winograd_f32_packed_floats(tml_isa isa, int c, int o)
{
    return WG_P * pos_floats(tml_sgemm_pack_isa(isa), c, o);
}

/* G of F(4x4, 3x3) */
static const double WG_G[WG_T][3] = {{0.25, 0.0, 0.0},
                                     {-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0},
                                     {-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0},
                                     {1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0},
                                     {1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0},
                                     {0.0, 0.0, 1.0}};

/* dst: per position (i, j) the (c, o) matrix U_ij[ci][oc] = (G g G^T)[i][j]
 * of kernel g = w[oc, :, :, ci] (OHWI), in the GEMM's packed B layout:
 * panel oc / nr, row ci, column oc % nr; zero padding columns. */
void tml_winograd_f32_pack(tml_isa isa, const float *w, int c, int o, float *dst)
{
    isa = tml_sgemm_pack_isa(isa);
    const int nr = tml_sgemm_pack_nr(isa, o);
    const size_t pf = pos_floats(isa, c, o);
    memset(dst, 0, sizeof(float) * WG_P * pf);
    for (int oc = 0; oc < o; oc++)
        for (int ci = 0; ci < c; ci++) {
            double t[WG_T][3];
            for (int i = 0; i < WG_T; i++)
                for (int kx = 0; kx < 3; kx++) {
                    double s = 0.0;
                    for (int ky = 0; ky < 3; ky++) s += WG_G[i][ky] * (double)w[(((int64_t)oc * 3 + ky) * 3 + kx) * c + ci];
                    t[i][kx] = s;
                }
            const size_t at = (size_t)(oc / nr) * (size_t)c * (size_t)nr + (size_t)ci * (size_t)nr + (size_t)(oc % nr);
            for (int i = 0; i < WG_T; i++)
                for (int j = 0; j < WG_T; j++) {
                    double u = 0.0;
                    for (int kx = 0; kx < 3; kx++) u += t[i][kx] * WG_G[j][kx];
                    dst[(size_t)(i * WG_T + j) * pf + at] = (float)u;
                }
        }
}

/* Tiles per chunk: V (36, chunk, c) and M (36, chunk, o) in WG_SCRATCH_BYTES,
 * a multiple of 12 (the GEMM's row tile) when possible, at most the number
 * of tiles. */
static int64_t chunk_tiles(const tml_window *p)
{
    const int64_t tiles = (int64_t)p->n * ((p->oh + WG_M - 1) / WG_M) * ((p->ow + WG_M - 1) / WG_M);
    int64_t chunk = WG_SCRATCH_BYTES / ((int64_t)sizeof(float) * WG_P * (p->c + p->o));
    if (chunk >= 12) chunk -= chunk % 12;
    if (chunk < 1) chunk = 1;
    return chunk < tiles ? chunk : tiles;
}

size_t tml_winograd_f32_scratch_size(const tml_window *p)
{
    return (size_t)chunk_tiles(p) * WG_P * (size_t)(p->c + p->o) * sizeof(float);
}

/* ---- transforms (vectors of 16 channels) -------------------------------------------- */

/* o = B^T z for one line of 6 */
#define WG_BT(z, o)                                                                                          \
    do {                                                                                                     \
        const __typeof__(z[0]) s12_ = z[1] + z[2], s34_ = z[3] + z[4], d42_ = z[4] - z[2], d31_ = z[3] - z[1];        \
        o[0] = 4.0f * z[0] - 5.0f * z[2] + z[4];                                                             \
        o[1] = s34_ - 4.0f * s12_;                                                                           \
        o[2] = (z[4] - z[3]) + 4.0f * (z[1] - z[2]);                                                         \
        o[3] = d42_ + 2.0f * d31_;                                                                           \
        o[4] = d42_ - 2.0f * d31_;                                                                           \
        o[5] = 4.0f * z[1] - 5.0f * z[3] + z[5];                                                             \
    } while (0)

/* o = A^T m for one line of 6 (4 results) */
#define WG_AT(m, o)                                                                                          \
    do {                                                                                                     \
        const __typeof__(m[0]) s12_ = m[1] + m[2], d12_ = m[1] - m[2], s34_ = m[3] + m[4], d34_ = m[3] - m[4];        \
        o[0] = m[0] + s12_ + s34_;                                                                           \
        o[1] = d12_ + 2.0f * d34_;                                                                           \
        o[2] = s12_ + 4.0f * s34_;                                                                           \
        o[3] = d12_ + 8.0f * d34_ + m[5];                                                                    \
    } while (0)

static void tile_coords(const tml_window *p, int64_t tile, int64_t *n, int *ty, int *tx)
{
    const int th = (p->oh + WG_M - 1) / WG_M, tw = (p->ow + WG_M - 1) / WG_M;
    *tx = (int)(tile % tw);
    *ty = (int)((tile / tw) % th);
    *n = tile / tw / th;
}

/* V[(i*6+j)*cap*c + t*c + ch] for the cnt tiles from t0 */
TML_OPS_INLINE void wg_input_body(const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V)
{
    const int C = p->c;
    const int64_t pstride = (int64_t)cap * C;
    for (int t = 0; t < cnt; t++) {
        int64_t n;
        int ty, tx;
        tile_coords(p, t0 + t, &n, &ty, &tx);
        const int iy0 = ty * WG_M - p->pad_t, ix0 = tx * WG_M - p->pad_l;
        for (int cs = 0; cs < C; cs += WG_BLOCK) {
            const int c0 = cs + WG_BLOCK > C ? C - WG_BLOCK : cs;
            tml_v16f r[WG_T][WG_T];
            for (int i = 0; i < WG_T; i++) {
                const int iy = iy0 + i;
                tml_v16f d[WG_T];
                for (int j = 0; j < WG_T; j++) {
                    const int ix = ix0 + j;
                    if (iy >= 0 && iy < p->h && ix >= 0 && ix < p->w)
                        TML_V16_LOAD(d[j], x + ((n * p->h + iy) * p->w + ix) * C + c0);
                    else
                        d[j] = (tml_v16f){0};
                }
                WG_BT(d, r[i]);
            }
            for (int j = 0; j < WG_T; j++) {
                tml_v16f col[WG_T], v[WG_T];
                for (int i = 0; i < WG_T; i++) col[i] = r[i][j];
                WG_BT(col, v);
                for (int i = 0; i < WG_T; i++) TML_V16_STORE(V + (i * WG_T + j) * pstride + (int64_t)t * C + c0, v[i]);
            }
        }
    }
}
#ifdef TML_OPS_X86
/* AVX2: the same transform on blocks of 8 channels (tml_v8f, one ymm; the
 * 16-float blocks' 6x6 tile is 72 ymm of spills on AVX2's 16 registers).
 * The same operations per lane. */
__attribute__((target("avx2,fma"))) TML_FP_CONTRACT_FAST static void
wg_input_avx2(const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V)
{
    const int C = p->c;
    const int64_t pstride = (int64_t)cap * C;
    for (int t = 0; t < cnt; t++) {
        int64_t n;
        int ty, tx;
        tile_coords(p, t0 + t, &n, &ty, &tx);
        const int iy0 = ty * WG_M - p->pad_t, ix0 = tx * WG_M - p->pad_l;
        for (int cs = 0; cs < C; cs += 8) {
            const int c0 = cs + 8 > C ? C - 8 : cs;
            tml_v8f r[WG_T][WG_T];
            for (int i = 0; i < WG_T; i++) {
                const int iy = iy0 + i;
                tml_v8f d[WG_T];
                for (int j = 0; j < WG_T; j++) {
                    const int ix = ix0 + j;
                    if (iy >= 0 && iy < p->h && ix >= 0 && ix < p->w)
                        memcpy(&d[j], x + ((n * p->h + iy) * p->w + ix) * C + c0, sizeof(tml_v8f));
                    else
                        d[j] = (tml_v8f){0};
                }
                WG_BT(d, r[i]);
            }
            for (int j = 0; j < WG_T; j++) {
                tml_v8f col[WG_T], v[WG_T];
                for (int i = 0; i < WG_T; i++) col[i] = r[i][j];
                WG_BT(col, v);
                for (int i = 0; i < WG_T; i++)
                    memcpy(V + (i * WG_T + j) * pstride + (int64_t)t * C + c0, &v[i], sizeof(tml_v8f));
            }
        }
    }
}
__attribute__((target("avx512f"))) TML_FP_CONTRACT_FAST static void
wg_input_avx512(const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V)
{
    wg_input_body(p, x, t0, cnt, cap, V);
}
static void wg_input_generic(const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V)
{
    wg_input_body(p, x, t0, cnt, cap, V);
}
static void wg_input(const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V)
{
    const tml_isa isa_ = tml_cpu_isa();
    if (isa_ == TML_ISA_AVX512)
        wg_input_avx512(p, x, t0, cnt, cap, V);
    else if (isa_ == TML_ISA_AVX2)
        wg_input_avx2(p, x, t0, cnt, cap, V);
    else
        wg_input_generic(p, x, t0, cnt, cap, V);
}
#else
TML_OPS_MULTIVERSION_FMA(wg_input, (const tml_window *p, const float *x, int64_t t0, int cnt, int cap, float *V),
                         (p, x, t0, cnt, cap, V))
#endif

/* y for the cnt tiles from t0 from M[(i*6+j)*cap*o + t*o + oc] */
TML_OPS_INLINE void wg_output_body(const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap,
                                   const float *b, const float *res, float *y)
{
    const int O = p->o;
    const int64_t pstride = (int64_t)cap * O;
    const tml_v16f zero = {0};
    for (int t = 0; t < cnt; t++) {
        int64_t n;
        int ty, tx;
        tile_coords(p, t0 + t, &n, &ty, &tx);
        const int oy0 = ty * WG_M, ox0 = tx * WG_M;
        const int ny = p->oh - oy0 < WG_M ? p->oh - oy0 : WG_M, nx = p->ow - ox0 < WG_M ? p->ow - ox0 : WG_M;
        for (int os = 0; os < O; os += WG_BLOCK) {
            const int o0 = os + WG_BLOCK > O ? O - WG_BLOCK : os;
            tml_v16f s[WG_T][WG_M];
            for (int i = 0; i < WG_T; i++) {
                tml_v16f m[WG_T];
                for (int j = 0; j < WG_T; j++) TML_V16_LOAD(m[j], Mt + (i * WG_T + j) * pstride + (int64_t)t * O + o0);
                WG_AT(m, s[i]);
            }
            tml_v16f bias = zero;
            if (b) TML_V16_LOAD(bias, b + o0);
            for (int q = 0; q < nx; q++) {
                tml_v16f col[WG_T], out[WG_M];
                for (int i = 0; i < WG_T; i++) col[i] = s[i][q];
                WG_AT(col, out);
                for (int r = 0; r < ny; r++) {
                    const int64_t at = ((n * p->oh + oy0 + r) * p->ow + ox0 + q) * O + o0;
                    tml_v16f v = out[r] + bias;
                    if (res) {
                        tml_v16f rv;
                        TML_V16_LOAD(rv, res + at);
                        v = v + rv;
                    }
                    TML_V16_ACT(p->act, v);
                    TML_V16_STORE(y + at, v);
                }
            }
        }
    }
}
#ifdef TML_OPS_X86
/* AVX-512 and portable as TML_OPS_MULTIVERSION_FMA builds them; AVX2 on
 * 8-channel blocks (16-float comparisons were scalar code on AVX2) */
__attribute__((target("avx512f"))) TML_FP_CONTRACT_FAST static void
wg_output_avx512(const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap, const float *b, const float *res,
                 float *y)
{
    wg_output_body(p, Mt, t0, cnt, cap, b, res, y);
}
/* AVX2 on blocks of 8 channels (tml_v8f), as wg_input_avx2 */
__attribute__((target("avx2,fma"))) TML_FP_CONTRACT_FAST static void
wg_output_avx2(const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap, const float *b, const float *res,
               float *y)
{
    const int O = p->o;
    const int64_t pstride = (int64_t)cap * O;
    const tml_v8f zero = {0}, six = zero + 6.0f;
    for (int t = 0; t < cnt; t++) {
        int64_t n;
        int ty, tx;
        tile_coords(p, t0 + t, &n, &ty, &tx);
        const int oy0 = ty * WG_M, ox0 = tx * WG_M;
        const int ny = p->oh - oy0 < WG_M ? p->oh - oy0 : WG_M, nx = p->ow - ox0 < WG_M ? p->ow - ox0 : WG_M;
        for (int os = 0; os < O; os += 8) {
            const int o0 = os + 8 > O ? O - 8 : os;
            tml_v8f s[WG_T][WG_M];
            for (int i = 0; i < WG_T; i++) {
                tml_v8f m[WG_T];
                for (int j = 0; j < WG_T; j++)
                    memcpy(&m[j], Mt + (i * WG_T + j) * pstride + (int64_t)t * O + o0, sizeof(tml_v8f));
                WG_AT(m, s[i]);
            }
            tml_v8f bias = zero;
            if (b) memcpy(&bias, b + o0, sizeof bias);
            for (int q = 0; q < nx; q++) {
                tml_v8f col[WG_T], out[WG_M];
                for (int i = 0; i < WG_T; i++) col[i] = s[i][q];
                WG_AT(col, out);
                for (int r = 0; r < ny; r++) {
                    const int64_t at = ((n * p->oh + oy0 + r) * p->ow + ox0 + q) * O + o0;
                    tml_v8f v = out[r] + bias;
                    if (res) {
                        tml_v8f rv;
                        memcpy(&rv, res + at, sizeof rv);
                        v = v + rv;
                    }
                    /* as TML_V16_ACT: relu(NaN) = 0, relu6 passes NaN */
                    if (p->act == TML_ACT_RELU) {
                        v = TML_V8_SELECT(v > zero, v, zero);
                    } else if (p->act == TML_ACT_RELU6) {
                        v = TML_V8_SELECT(v > six, six, v);
                        v = TML_V8_SELECT(v < zero, zero, v);
                    }
                    memcpy(y + at, &v, sizeof v);
                }
            }
        }
    }
}
static void wg_output_generic(const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap, const float *b,
                              const float *res, float *y)
{
    wg_output_body(p, Mt, t0, cnt, cap, b, res, y);
}
static void wg_output(const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap, const float *b,
                      const float *res, float *y)
{
    const tml_isa isa_ = tml_cpu_isa();
    if (isa_ == TML_ISA_AVX512)
        wg_output_avx512(p, Mt, t0, cnt, cap, b, res, y);
    else if (isa_ == TML_ISA_AVX2)
        wg_output_avx2(p, Mt, t0, cnt, cap, b, res, y);
    else
        wg_output_generic(p, Mt, t0, cnt, cap, b, res, y);
}
#else
TML_OPS_MULTIVERSION_FMA(wg_output,
                         (const tml_window *p, const float *Mt, int64_t t0, int cnt, int cap, const float *b,
                          const float *res, float *y),
                         (p, Mt, t0, cnt, cap, b, res, y))
#endif

/* Tiles [t0, t1) in chunks of cap, with V and M in scratch. */
static void wg_tiles(const tml_window *p, tml_isa isa, const float *packed, const float *x, const float *b,
                     const float *res, float *y, float *scratch, int cap, int64_t t0, int64_t t1)
{
    const size_t pf = pos_floats(isa, p->c, p->o);
    float *V = scratch, *Mt = scratch + (size_t)WG_P * cap * p->c;
    for (int64_t t = t0; t < t1; t += cap) {
        const int cnt = (int)(t1 - t < cap ? t1 - t : cap);
        wg_input(p, x, t, cnt, cap, V);
        tml_sgemm_packed_batch_ex(isa, WG_P, cnt, p->o, p->c, V, (ptrdiff_t)cap * p->c, p->c, packed, (ptrdiff_t)pf,
                                  Mt, (ptrdiff_t)cap * p->o, p->o);
        wg_output(p, Mt, t, cnt, cap, b, res, y);
    }
}

void tml_winograd_f32(const tml_window *p, tml_isa isa, const float *packed, const float *x, const float *b,
                      const float *res, float *y, void *scratch)
{
    isa = tml_sgemm_pack_isa(isa);
    const int64_t tiles = (int64_t)p->n * ((p->oh + WG_M - 1) / WG_M) * ((p->ow + WG_M - 1) / WG_M);
    if (tiles <= 0) return;
    const int cap = (int)chunk_tiles(p);
#ifdef TML_OPS_OMP
    /* threads split the tiles and the scratch (cap / T tiles each) */
    int nt = 1;
    if (2.0 * (double)tiles * WG_P * p->c * p->o >= TML_OPS_PAR_FLOPS && !omp_in_parallel())
        nt = omp_get_max_threads();
    if (nt > cap) nt = cap;
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const int T = omp_get_num_threads(), t = omp_get_thread_num();
            const int mine = cap / T;
            float *s = (float *)scratch + (size_t)t * mine * WG_P * (size_t)(p->c + p->o);
            wg_tiles(p, isa, packed, x, b, res, y, s, mine, tiles * t / T, tiles * (t + 1) / T);
        }
        return;
    }
#endif
    wg_tiles(p, isa, packed, x, b, res, y, scratch, cap, 0, tiles);
}
