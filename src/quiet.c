/* The commands' stderr redirection around a quiet network build (see quiet.h); nothing
 * else in the program redirects a descriptor. */
#include "quiet.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int lwf_quiet_begin(void)
{
    fflush(stderr);
    int saved = dup(2);
    int nul = open("/dev/null", O_WRONLY);
    if (saved >= 0 && nul >= 0) dup2(nul, 2);
    if (nul >= 0) close(nul);
    return saved;
}

void lwf_quiet_end(int saved)
{
    if (saved < 0) return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

lwf_model *lwf_model_load_quiet(const char *cfg, lwf_err *err)
{
    lwf_build_opts bo = {1, 1};
    int saved = lwf_quiet_begin(); /* no layer table */
    lwf_model *m = lwf_model_load(cfg, &bo, err);
    lwf_quiet_end(saved);
    return m;
}
