/* libFuzzer harness: the input is a .weights file, loaded into a fixed small model built
 * once (fz_weights_input in fuzz_entries.h). */
#define _GNU_SOURCE
#include "fuzz_entries.h"
#include "fuzz_main.h"

static lwf_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_keep_reports();
    lwf_err err;
    model = fz_weights_model(&err);
    if (!model) {
        fprintf(stderr, "fuzz_weights: cannot build the fixed cfg: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lwf_err err;
    (void)fz_weights_input(model, data, size, &err);
    return 0;
}
