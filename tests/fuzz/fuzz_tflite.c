/*
 * fuzz_tflite.c - libFuzzer target for the TFLite importer (flatbuffer
 * reader, graph conversion) and, for what it accepts, the engine and the
 * TFLite exporter.
 *
 * Input: any bytes, given to tml_tflite_import_mem(). An imported model is a
 * finalized model: it is prepared and run once on zeros (batch 1, skipped
 * above 2^22 activation elements), exported back to TFLite and imported
 * again; the engine and the exporter must never crash on a model the
 * importer accepted (they may refuse it with a status).
 */
#include <stdint.h>
#include <stdlib.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_model *m = NULL;
    if (tml_tflite_import_mem(data, size, &m, NULL) != TML_OK) return 0;
    int64_t acts = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_ACT) acts += tml_tensor_numel(&m->tensors[i]);
    tml_engine *e = NULL;
    if (acts <= ((int64_t)1 << 22) && tml_engine_new(m, 1, NULL, &e) == TML_OK) {
        const size_t es = tml_dtype_size(tml_model_io_dtype(m));
        void *x = calloc((size_t)tml_tensor_numel(&m->tensors[m->input]), es);
        void *y = calloc((size_t)tml_tensor_numel(&m->tensors[m->output]), es);
        if (x && y) (void)tml_engine_run_raw(e, x, 1, y);
        free(x);
        free(y);
        tml_engine_free(e);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (tml_tflite_export_mem(m, &buf, &len) == TML_OK) {
        tml_model *r = NULL;
        if (tml_tflite_import_mem(buf, len, &r, NULL) == TML_OK) tml_model_free(r);
        free(buf);
    }
    tml_model_free(m);
    return 0;
}
