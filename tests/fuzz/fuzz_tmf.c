/*
 * fuzz_tmf.c - libFuzzer target for the .tmf reader and for the engine on
 * whatever the reader accepts.
 *
 * Input: any bytes, given to tml_model_read_mem(). When the reader accepts
 * them, the model must also serialize again (tml_model_write_mem) and the
 * engine must prepare it for batch 1 and run it once on zeros: a model the
 * reader accepted is trusted by everything after it, so the engine may fail
 * with a status but never crash. Models whose activations would need more than
 * FUZZ_MAX_ACT elements are not run (a valid file may legitimately declare a
 * 1 GiB activation; allocating it only slows the fuzzer down).
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "tinyml/tml_core.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"

#define FUZZ_MAX_ACT ((int64_t)1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_model *m = NULL;
    if (tml_model_read_mem(data, size, &m) != TML_OK) return 0;

    uint8_t *buf = NULL;
    size_t len = 0;
    if (tml_model_write_mem(m, NULL, &buf, &len) == TML_OK) free(buf);

    if (fuzz_act_elems(m) <= FUZZ_MAX_ACT) fuzz_run_zeros(m, NULL);
    tml_model_free(m);
    return 0;
}
