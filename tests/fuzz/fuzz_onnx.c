/*
 * fuzz_onnx.c - libFuzzer target for the ONNX importer (protobuf reader,
 * graph conversion, constant folding).
 *
 * Input: any bytes, given to tml_onnx_import_mem() with default options. An
 * imported model is a finalized float model, so it is also serialized once
 * (tml_model_write_mem) to check that what the importer builds is writable.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_model *m = NULL;
    tml_onnx_info info;
    if (tml_onnx_import_mem(data, size, NULL, &m, &info) != TML_OK) return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (tml_model_write_mem(m, NULL, &buf, &len) == TML_OK) free(buf);
    tml_model_free(m);
    return 0;
}
