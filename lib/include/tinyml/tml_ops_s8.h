/*
 * tml_ops_s8.h - integer-only INT8 kernels (lib/ops/<op>_s8.c), TFLite quantization
 * spec semantics (docs/numerics.md):
 *
 *   real = scale * (q - zero_point)
 *   weights: int8 symmetric in [-127, 127], zero point 0, per output channel
 *            (conv: dim 0 of OHWI; depthwise: dim 3 of 1HWC; dense: dim 0)
 *   activations: int8 asymmetric, per tensor
 *   bias: int32, scale = input_scale * weight_scale[oc], zero point 0
 *   requantization: acc (int32) * M with M = in_scale * w_scale / out_scale
 *            given as a Q31 multiplier and a power-of-two shift:
 *            tml_requantize(acc, mult, shift) =
 *              rounding_right_shift(sat_rounding_doubling_high_mul(acc << max(shift,0), mult), max(-shift,0))
 *            where the doubling high multiply rounds half away from zero and
 *            the right shift rounds half away from zero.
 *   fused ReLU/ReLU6 = clamp of the output to [act_min, act_max].
 *
 * TFLite arithmetic (TML_ROUNDING_TFLITE, the `rounding` fields below): the
 * doubling high multiply rounds negative ties toward +infinity, as gemmlowp's
 * and TFLite's reference code do (nudge 1 - 2^30); everything else in the
 * requantization is the same. The ops whose arithmetic differs more (softmax,
 * mean, the boundary quantize, clamp bounds) have their own TFLite functions.
 *
 * Every kernel has a scalar `_ref` twin; fast kernels match it exactly, in
 * both rounding modes. Kernels never allocate and never fail.
 */
#ifndef TML_OPS_S8_H
#define TML_OPS_S8_H

#include <stddef.h>
#include <stdint.h>

#include "tml_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fixed-point helpers --------------------------------------------------------- */

/* Splits a real multiplier M (> 0, finite) into a Q31 mult in [2^30, 2^31) and a
 * shift in [-31, 30] with M ~= mult * 2^(shift - 31), relative error <= 2^-31
 * (frexp; mult = round(frac * 2^31), a frac rounding up to 1.0 gives mult 2^30
 * and shift + 1). M == 0, negative or NaN gives mult 0, shift 0. M < 2^-32
 * underflows to mult 0, shift 0; M >= 2^30 (or +inf) is clamped to mult
 * INT32_MAX, shift 30 (callers reject such scales before). */
void tml_quantize_multiplier(double real, int32_t *mult, int *shift);
/* round(a * b / 2^31) (= the high half of the doubled 64-bit product), half
 * away from zero, saturating the one overflow case a == b == INT32_MIN to
 * INT32_MAX. (gemmlowp's documented rounding; note its reference code nudges
 * negative products by 1 - 2^30, which rounds negative ties toward zero.) */
int32_t tml_sat_rounding_doubling_high_mul(int32_t a, int32_t b);
/* x / 2^exponent rounded half away from zero; exponent in [0, 31]. */
int32_t tml_rounding_divide_by_pot(int32_t x, int exponent);
/* The requantization above: acc * mult * 2^(shift - 31) in two roundings.
 * shift in [-31, 30]. For shift > 0 the left shift saturates to int32 (the
 * caller keeps |acc| * 2^shift < 2^31; it does with multipliers from real
 * scales). Any int32 mult is accepted (tml_quantize_multiplier only makes
 * non-negative ones; the fast kernels have a shorter path for those). */
int32_t tml_requantize(int32_t acc, int32_t mult, int shift);

/* TFLite's (gemmlowp's) SaturatingRoundingDoublingHighMul: round(a * b / 2^31)
 * with ties toward +infinity (for negative products: toward zero), the
 * overflow case saturated as above. */
int32_t tml_sat_rounding_doubling_high_mul_tfl(int32_t a, int32_t b);
/* TFLite's MultiplyByQuantizedMultiplier (double rounding, TFLM's default):
 * rounding_divide_by_pot(sat_rounding_doubling_high_mul_tfl(acc * 2^left, mult),
 * right); the left shift saturates like tml_requantize (TFLite's overflows). */
int32_t tml_requantize_tfl(int32_t acc, int32_t mult, int shift);
/* Either, by rounding mode (tml_rounding). */
int32_t tml_requantize_mode(int32_t acc, int32_t mult, int shift, int rounding);
/* TFLite's clamp bounds of a fused activation: q(f) = zp + (int32)roundf(f /
 * scale) in float; RELU [max(-128, q(0)), 127], RELU6 [max(-128, q(0)),
 * min(127, q(6))], NONE [-128, 127] (CalculateActivationRangeQuantized). */
void tml_act_bounds_s8_tfl(tml_act act, float scale, int32_t zp, int32_t *act_min, int32_t *act_max);

/* Quantized clamp bounds of a fused activation for an output (scale, zp):
 * NONE [-128, 127]; RELU [max(-128, zp), 127]; RELU6 [max(-128, zp),
 * min(127, zp + round(6 / scale))]. */
void tml_act_bounds_s8(tml_act act, float scale, int32_t zp, int32_t *act_min, int32_t *act_max);

/* ---- conv / depthwise / dense -------------------------------------------------------- */

/* Accumulators are int32: acc = bias + sum (x - in_zp) * w. They are exact (and
 * the fast kernels bit-identical to the _ref ones) while |acc| and every
 * partial sum stay below 2^31, i.e. K * 255 * 128 + |bias| < 2^31 with K the
 * taps per output (kh*kw*c/groups, kh*kw, in): K up to ~65000. Weights may use
 * the whole int8 range (-128 too), though the quantizer produces [-127, 127]. */
typedef struct tml_qparams {
    int32_t in_zp;          /* input zero point (weights are symmetric) */
    int32_t out_zp;
    const int32_t *mult;    /* (out channels) requantization multipliers */
    const int32_t *shift;   /* (out channels) */
    int32_t act_min, act_max; /* output clamp, within [-128, 127] */
    int rounding;           /* tml_rounding of the requantization */
} tml_qparams;

/* x (n,h,w,c) int8, w (o,kh,kw,c/groups) int8, bias (o) int32 or NULL, y (n,oh,ow,o).
 * Out-of-range taps read the input zero point (i.e. real 0). p->act is
 * ignored (the clamp is q->act_min/act_max).
 * Scratch: bytes for tml_conv2d_s8 (any alignment; the kernel aligns it).
 * Bounded whatever the batch (packed weights + at most 16 chunk buffers of
 * ~128 KiB: a few MiB for any supported layer) and non-decreasing in p->n, so
 * the size for the largest batch serves every smaller one. The fast kernels
 * use OpenMP threads (when available and not already inside a parallel
 * region) only for calls of at least ~4 M multiply-accumulates. */
void tml_conv2d_s8_ref(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                       const int32_t *bias, int8_t *y);
size_t tml_conv2d_s8_scratch_size(const tml_window *p);
void tml_conv2d_s8(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                   const int32_t *bias, int8_t *y, void *scratch);
/* The same kernel with the weights packed once (for repeated calls, as the
 * engine makes): tml_conv2d_s8_pack fills `packed` (packed_size bytes, any
 * alignment) from w, bias and q for this CPU; tml_conv2d_s8_packed then runs
 * with the same q (and a window of the same weight shape, any batch / image
 * size) and gives the results of tml_conv2d_s8. `packed` may point into w
 * (portable build), so w must outlive it. Scratch as for tml_conv2d_s8. */
size_t tml_conv2d_s8_packed_size(const tml_window *p);
void tml_conv2d_s8_pack(const tml_window *p, const tml_qparams *q, const int8_t *w, const int32_t *bias, void *packed);
void tml_conv2d_s8_packed(const tml_window *p, const tml_qparams *q, const int8_t *x, const void *packed, int8_t *y,
                          void *scratch);

/* x (n,h,w,c), w (1,kh,kw,c*m), bias (c*m) or NULL, y (n,oh,ow,c*m); output
 * channel oc reads input channel oc / m. No scratch. */
void tml_dwconv2d_s8_ref(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                         const int32_t *bias, int8_t *y);
void tml_dwconv2d_s8(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                     const int32_t *bias, int8_t *y);

/* x (n,in), w (out,in), bias (out) or NULL, y (n,out). q->mult/shift have `out`
 * entries (per-tensor weights repeat the same value). Scratch: 0 bytes (NULL is
 * fine) below batch 48, where dot products on the weights as stored win;
 * from there the weights are packed into it. Non-decreasing in n. */
void tml_dense_s8_ref(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                      const int32_t *bias, int8_t *y);
size_t tml_dense_s8_scratch_size(int n, int in, int out);
void tml_dense_s8(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                  const int32_t *bias, int8_t *y, void *scratch);

/* ---- packed low-bit weights (W4A8, W2A8; any width 2..7) -------------------------------
 * A b-bit weight tensor (tml_tensor.qbits = b) is stored packed LSB-first: element i
 * (in the int8 tensor's element order: OHWI, 1HWC, (out, in)) occupies stream bits
 * i*b .. i*b+b-1, stream bit k being bit k%8 of byte k/8, as b-bit two's complement
 * in [-2^(b-1), 2^(b-1)-1]; ceil(count*b/8) bytes, unused high bits of the last byte
 * zero. This is the .tmf's packed value stream and the exported C's weight array; rows
 * are not padded, so a row may start inside a byte. wbits 8 means plain int8 bytes.
 *
 * The _s8w_ref kernels are the int8 kernels' arithmetic exactly, each weight read
 * from the packed stream (the truth for packed weights). The engine's fast path
 * unpacks once when it is prepared (tml_s8w_unpack) and runs the int8 kernels: x86
 * has no int4 multiply, so the unpacked int8 form is the fast one on the host; the
 * packed form is what saves flash on the device, whose exported C unpacks inside
 * the kernel. */
size_t tml_s8w_bytes(int64_t count, int wbits);
/* Packs count int8 values (each must fit wbits) into tml_s8w_bytes(count, wbits) bytes. */
void tml_s8w_pack(int64_t count, int wbits, const int8_t *w, uint8_t *packed);
/* Unpacks to int8 (sign-extended). The fast version is vectorized for 4 and 2 bits. */
void tml_s8w_unpack_ref(int64_t count, int wbits, const uint8_t *packed, int8_t *w);
void tml_s8w_unpack(int64_t count, int wbits, const uint8_t *packed, int8_t *w);
void tml_conv2d_s8w_ref(const tml_window *p, const tml_qparams *q, int wbits, const int8_t *x, const uint8_t *w,
                        const int32_t *bias, int8_t *y);
void tml_dwconv2d_s8w_ref(const tml_window *p, const tml_qparams *q, int wbits, const int8_t *x, const uint8_t *w,
                          const int32_t *bias, int8_t *y);
void tml_dense_s8w_ref(int n, int in, int out, int wbits, const tml_qparams *q, const int8_t *x, const uint8_t *w,
                       const int32_t *bias, int8_t *y);

/* ---- elementwise / pools / softmax ----------------------------------------------------- */

/* Add with rescaling (TFLite's method): both inputs are shifted left by
 * left_shift (20), rescaled to a common scale 2*max(s1,s2) with in1/in2
 * multipliers, summed, requantized to the output, clamped. */
typedef struct tml_add_s8_params {
    int32_t in1_zp, in2_zp, out_zp;
    int left_shift;
    int32_t in1_mult, in2_mult, out_mult;
    int in1_shift, in2_shift, out_shift;
    int32_t act_min, act_max;
    int rounding; /* tml_rounding */
} tml_add_s8_params;
/* Fills the multipliers from the real scales (s1, s2 inputs, so output).
 * TFLite mode: the same multipliers (TFLM's add derives them the same way),
 * TFLite's clamp bounds and rounding. */
void tml_add_s8_prepare(float s1, int32_t zp1, float s2, int32_t zp2, float so, int32_t zpo, tml_act act,
                        tml_add_s8_params *p);
void tml_add_s8_prepare_mode(float s1, int32_t zp1, float s2, int32_t zp2, float so, int32_t zpo, tml_act act,
                             int rounding, tml_add_s8_params *p);
void tml_add_s8_ref(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y);
/* Fast version (vectorized, OpenMP threads for large counts), same results.
 * y may be a or b (elementwise in place). */
void tml_add_s8(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y);

/* clamp to [lo, hi] (standalone ReLU / ReLU6 keep their input's scale) */
void tml_clamp_s8_ref(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y);
void tml_clamp_s8(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y);

/* Pools keep the input's scale and zero point. Average: sum of in-range taps
 * divided by their count, rounded half away from zero; then clamped. */
void tml_maxpool_s8_ref(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y);
void tml_avgpool_s8_ref(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y);
void tml_global_avgpool_s8_ref(int n, int hw, int c, const int8_t *x, int8_t *y);
/* A global average pool fed in parts (rows or tiles of a memory schedule):
 * _sum adds `pixels` pixels of c channels to acc (int32, exact while the
 * pool has fewer than 2^24 pixels); _finish writes what
 * tml_global_avgpool_s8_ref gives for the whole (hw pixels) tensor. */
void tml_global_avgpool_s8_sum_ref(int64_t pixels, int c, const int8_t *x, int32_t *acc);
void tml_global_avgpool_s8_finish_ref(int64_t hw, int c, const int32_t *acc, int8_t *y);
/* Fast versions of the pools (channels vectorized), same results. */
void tml_maxpool_s8(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y);
void tml_avgpool_s8(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y);
void tml_global_avgpool_s8(int n, int hw, int c, const int8_t *x, int8_t *y);

/* Softmax over rows, integer only at run time: output scale 1/256, zero point
 * -128. lut[d] for d = 0..255 is round(2^16 * exp(-in_scale * d)) (computed once
 * by tml_softmax_s8_lut); y = clamp(round(256 * lut[max - x] / sum) - 128). */
void tml_softmax_s8_lut(float in_scale, uint32_t lut[256]);
void tml_softmax_s8_ref(int n, int k, const uint32_t lut[256], const int8_t *x, int8_t *y);

/* TFLite's int8 softmax (reference_ops::Softmax as TFLM runs it): input
 * differences to the row maximum, scaled by beta * in_scale into Q5.26,
 * gemmlowp's fixed-point exp of negative values, the sum in Q12.19, its
 * reciprocal by Newton-Raphson, output scale 1/256, zero point -128. The
 * parameters come from tml_softmax_s8_tfl_prepare (PreprocessSoftmaxScaling:
 * multiplier of beta * in_scale * 2^26 capped at 2^31 - 1, its left shift,
 * and diff_min, the most negative difference still counted). */
typedef struct tml_softmax_s8_tfl_params {
    int32_t input_multiplier;
    int input_left_shift;
    int32_t diff_min;
} tml_softmax_s8_tfl_params;
void tml_softmax_s8_tfl_prepare(float in_scale, float beta, tml_softmax_s8_tfl_params *p);
void tml_softmax_s8_tfl_ref(int n, int k, const tml_softmax_s8_tfl_params *p, const int8_t *x, int8_t *y);
/* gemmlowp's fixed-point pieces the softmax is made of (exposed for tests):
 * exp(a) for a <= 0 given in Q5.26, result in Q0.31; 1 / (1 + x) for x in
 * [0, 1) in Q0.31, result in Q0.31 (one_over_one_plus_x_for_x_in_0_1). */
int32_t tml_fx_exp_on_negative_values_q5(int32_t a);
int32_t tml_fx_one_over_one_plus_x(int32_t a);

/* TFLite's int8 MEAN over the pixels (H, W) of (n, hw, c) into (n, c)
 * (reference_ops::QuantizedMeanOrSum as TFLM runs it for every int8 MEAN):
 * mult/shift from in_scale / out_scale (tml_quantize_multiplier), with 1/hw
 * folded in: s = min(floor(log2(hw)), 32, 31 + shift), mult' = (mult << s) / hw,
 * shift' = shift - s; then per channel y = clamp(requantize_tfl(sum - hw *
 * in_zp, mult', shift') + out_zp). */
typedef struct tml_mean_s8_tfl_params {
    int32_t in_zp, out_zp;
    int32_t mult;
    int shift;
} tml_mean_s8_tfl_params;
void tml_mean_s8_tfl_prepare(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int hw,
                             tml_mean_s8_tfl_params *p);
void tml_mean_s8_tfl_ref(int n, int hw, int c, const tml_mean_s8_tfl_params *p, const int8_t *x, int8_t *y);

/* ---- model boundary: float <-> int8 ------------------------------------------------------
 * q = clamp(round_half_even(x * inv_scale) + zp, -128, 127)  (the engine quantizes
 * its float input with inv_scale = 1 / input scale) and y = scale * (q - zp).
 * Rounding is to nearest, ties to even (nearbyintf in the default mode); NaN
 * maps to the zero point. The fast versions (AVX-512 / AVX2) are exact. */
void tml_quantize_f32_s8_ref(int64_t count, const float *x, float inv_scale, int32_t zp, int8_t *q);
void tml_quantize_f32_s8(int64_t count, const float *x, float inv_scale, int32_t zp, int8_t *q);
void tml_dequantize_s8_f32_ref(int64_t count, const int8_t *q, float scale, int32_t zp, float *y);
void tml_dequantize_s8_f32(int64_t count, const int8_t *q, float scale, int32_t zp, float *y);
/* TFLite's QUANTIZE of float to int8 (AffineQuantize): q = clamp((int32)
 * roundf(x / scale) + zp, -128, 127): a float division and rounding half away
 * from zero. NaN maps to the zero point, +-inf saturate. DEQUANTIZE is
 * tml_dequantize_s8_f32 (the float product is correctly rounded either way). */
void tml_quantize_f32_s8_tfl(int64_t count, const float *x, float scale, int32_t zp, int8_t *q);

#ifdef __cplusplus
}
#endif
#endif
