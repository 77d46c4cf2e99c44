/*
 * testutil.h - helpers shared by the cmocka tests: deterministic random data,
 * array comparisons that print the first mismatches and the max difference,
 * scratch directories, and tiny hand-built models.
 */
#ifndef TML_TESTUTIL_H
#define TML_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_dataset.h"

/* xorshift64* generator: the same seed gives the same numbers everywhere. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
void tu_rng_seed(tu_rng *r, uint64_t seed);
uint32_t tu_rng_u32(tu_rng *r);
float tu_rng_uniform(tu_rng *r, float lo, float hi);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);
void tu_fill_int8(tu_rng *r, int8_t *x, size_t n, int lo, int hi);

/* Compares float arrays; |a-b| <= tol elementwise. On failure prints `what`,
 * the first 8 mismatches (index, a, b) and the max difference, then returns 0. */
int tu_close_f32(const char *what, const float *a, const float *b, size_t n, float tol);
/* Exact comparison for int8 / int32 arrays, same reporting. */
int tu_equal_i8(const char *what, const int8_t *a, const int8_t *b, size_t n);
int tu_equal_i32(const char *what, const int32_t *a, const int32_t *b, size_t n);
#define TU_ASSERT_CLOSE(a, b, n, tol) assert_true(tu_close_f32(#a " vs " #b, (a), (b), (n), (tol)))
#define TU_ASSERT_EQ_I8(a, b, n) assert_true(tu_equal_i8(#a " vs " #b, (a), (b), (n)))
#define TU_ASSERT_EQ_I32(a, b, n) assert_true(tu_equal_i32(#a " vs " #b, (a), (b), (n)))

/* A fresh, empty scratch directory for this test (under $TML_TEST_TMPDIR or
 * /tmp); the returned string is static storage valid until the next call. */
const char *tu_tmpdir(const char *test_name);
/* Path join into a static buffer rotating among 8 slots. */
const char *tu_path(const char *dir, const char *file);

/* Writes `len` bytes to `path`; returns 0 on success. */
int tu_write_file(const char *path, const void *buf, size_t len);
/* An 8-bit PNG of 1 (gray), 3 (RGB) or 4 (RGBA) channels; 0 on success. */
int tu_write_png(const char *path, int w, int h, int channels, const uint8_t *px);
/* Reads a whole file; caller frees; NULL on error. */
uint8_t *tu_read_file(const char *path, size_t *len);

/* Runs a shell command, returns its exit status (or -1) and captures up to
 * cap-1 bytes of combined stdout+stderr into out (may be NULL). */
int tu_run(const char *cmd, char *out, size_t cap);

/* ---- the exported C, compiled and run on this host ---- */

/* 1 when the tests are built with AddressSanitizer: the kernels are ~10x
 * slower, so the longest tests run on fewer inputs. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif

/* The flags the exported C is compiled with: what a strict device build
 * would use (C99, every warning an error), plus ASan/UBSan when the tests
 * are built with them. */
const char *tu_gen_cflags(void);
/* Writes dir/main.c: a program that runs <prefix>run (declared in
 * <base>.h) on each sample of the int8 file argv[1] and writes the outputs
 * to argv[2] (exit 3: run failed). Then compiles it with dir/<base>.c by
 * $CC (else cc) with tu_gen_cflags() and `extra` (may be "") into dir/prog;
 * asserts that it compiles (the command and log printed, tagged `tag`). */
void tu_gen_build(const char *dir, const char *base, const char *prefix, const char *extra, const char *tag);
/* Runs dir/prog dir/in.bin dir/out.bin; its exit status, its output in log. */
int tu_gen_run(const char *dir, char *log, size_t cap);

/* ---- models and data for the export / device tests ---- */

/* A zoo model (tml_zoo_create with `seed`) whose batch norms get
 * non-trivial statistics, so folded weights and biases differ per channel.
 * Asserts success; caller frees. */
tml_model *tu_zoo_model(const char *arch, uint64_t seed);
/* Folds, calibrates on `samples` Fashion-MNIST training images (seed 5) and
 * quantizes with default options; asserts success. */
void tu_quantize(tml_model *m, int samples);
/* Fashion-MNIST split "train" or "test", opened or the test fails. */
tml_dataset *tu_fmnist(const char *split);
/* The first n Fashion-MNIST test images, preprocessed for m: (n, 784)
 * floats, caller frees. */
float *tu_fmnist_test(const tml_model *m, int n);
/* A float net with what the zoo lacks: average pool and max pool with
 * padding, standalone ReLU6 / ReLU, depth multiplier 2, a 1x3 kernel,
 * dilation 2, a grouped conv, adds without activation (one of x and relu(x):
 * equal input scales), softmax, and labels that need escaping in C. Not
 * quantized. */
tml_model *tu_other_ops_model(void);
/* LeNet-5 (seed) pruned to 90% per layer and clustered to 4 bits (conv1 and
 * fc1 one codebook each, conv2 and fc2 one per output channel), quantized
 * (calib_samples), with fc1's row 0 zero except its ends so that its sparse
 * form needs filler entries (gaps > 255). */
tml_model *tu_compact_lenet5(uint64_t seed, int calib_samples);

#endif
