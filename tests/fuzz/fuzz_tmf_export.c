/*
 * fuzz_tmf_export.c - libFuzzer target for what `tinyml schedule`, the
 * scheduled engine and `tinyml export --c` do with an int8 model file.
 *
 * Input: any bytes, given to tml_model_read_mem(). When the reader accepts an
 * int8 model (activations up to 2^20 elements): its memory schedule (the
 * options stored in the file, else the defaults) must pass
 * tml_schedule_check (an abort otherwise: a schedule that breaks its own
 * invariants is a bug even when nothing crashes), the engine runs it once on
 * zeros, and the C export runs layer by layer and with the schedule. Any of
 * them may refuse the model with a status, none may crash. Slower than
 * fuzz_tmf (~40 runs/s here): run it on fuzz_tmf's corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "tinyml/tml_core.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_model *m = NULL;
    if (tml_model_read_mem(data, size, &m) != TML_OK) return 0;
    if (fuzz_act_elems(m) <= ((int64_t)1 << 20) && tml_model_is_quantized(m)) {
        tml_sched_opts so;
        int found = 0;
        if (tml_sched_opts_from_model(m, &so, &found) != TML_OK) tml_sched_opts_default(&so);
        tml_schedule s;
        if (tml_schedule_model(m, &so, &s) == TML_OK) {
            if (tml_schedule_check(m, &s) != TML_OK) {
                fprintf(stderr, "schedule check: %s\n", tml_last_error());
                abort();
            }
            tml_engine_opts eo = {0};
            eo.schedule = &s;
            fuzz_run_zeros(m, &eo);
        }
        tml_schedule_free(&s);
        for (int v = 0; v < 2; v++) {
            tml_export_opts o;
            tml_export_opts_default(&o);
            if (v) o.schedule = &so;
            tml_export_result r;
            if (tml_export_c(m, &o, &r) == TML_OK) tml_export_result_free(&r);
        }
    }
    tml_model_free(m);
    return 0;
}
