/* libFuzzer harness: the input is a .data file, a list of paths and a list of labels,
 * separated by lines "%%" (fz_data_input in fuzz_entries.h). */
#define _GNU_SOURCE
#include "fuzz_entries.h"
#include "fuzz_main.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_keep_reports();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lwf_err err;
    (void)fz_data_input(data, size, &err);
    return 0;
}
