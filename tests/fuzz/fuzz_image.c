/* libFuzzer harness: the input is an image file (fz_image_input).  stb_image is
 * compiled in from Debian's header (stb_image_impl.c), instrumented like our code. */
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
    (void)fz_image_input(data, size, &err);
    return 0;
}
