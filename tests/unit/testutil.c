/* Helpers shared by the unit tests (see testutil.h). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    assert_non_null(dir);
    snprintf(dir, 4096, "%s/lwf-test-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    return dir;
}

void tu_rmdir(const char *dir)
{
    if (dir && strstr(dir, "lwf-test-")) tu_sh("rm -rf '%s'", dir);
}

char *tu_write(const char *dir, const char *name, const char *text)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(path);
    sprintf(path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

const char *tu_root(void)
{
    const char *r = getenv("LWF_ROOT");
    return r && *r ? r : ".";
}

int tu_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

lwf_model *tu_load(const char *cfg, int batch)
{
    lwf_err err = {{0}};
    lwf_build_opts o = {batch, 1};
    lwf_model *m = lwf_model_load(cfg, &o, &err);
    if (!m) fail_msg("cannot load %s: %s", cfg, err.msg);
    return m;
}

void tu_fill(float *x, size_t n, unsigned *state, float lo, float hi)
{
    for (size_t i = 0; i < n; ++i) {
        *state = *state * 1103515245u + 12345u;
        x[i] = lo + (hi - lo) * (float)((*state >> 8) & 0xFFFFFF) / (float)0x1000000;
    }
}
