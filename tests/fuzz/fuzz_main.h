/* The libFuzzer side of a harness: prototypes, and sanitizer reports kept visible while
 * the harness points fd 2 at /dev/null around lwf_model_load (fz_model_load). */
#ifndef LWF_FUZZ_MAIN_H
#define LWF_FUZZ_MAIN_H

#include <stdint.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
void __sanitizer_set_report_fd(void *fd);

/* Sends sanitizer reports to a copy of the real stderr. */
static inline void fz_keep_reports(void)
{
    int fd = dup(2);
    if (fd >= 0) __sanitizer_set_report_fd((void *)(intptr_t)fd);
}

#endif
