/* Strict command-line parsing for the lwf subcommands (see args.h). */
#define _POSIX_C_SOURCE 200809L
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(const char *cmd, const char *usage, const char *what, const char *arg)
{
    fprintf(stderr, "darknet lwf %s: %s%s%s\nusage: darknet lwf %s\n", cmd, what, arg ? " " : "", arg ? arg : "",
            usage);
    return -1;
}

int lwf_args_parse(int argc, char **argv, lwf_arg *flags, char **pos, int min_pos, int max_pos, int *npos,
                   const char *usage)
{
    const char *cmd = argv[0];
    unsigned long long given = 0; /* bit k: flags[k] seen */
    *npos = 0;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9')) {
            lwf_arg *f = NULL;
            int k = 0;
            for (; flags && flags[k].name; ++k)
                if (strcmp(flags[k].name, a) == 0) {
                    f = &flags[k];
                    break;
                }
            if (!f) return bad(cmd, usage, "unknown option", a);
            /* a repeated flag is refused, not "the last one wins" */
            if (k < 64 && (given >> k & 1)) return bad(cmd, usage, "option given twice:", a);
            if (k < 64) given |= 1ULL << k;
            if (f->type == LWF_ARG_FLAG) {
                *(int *)f->out = 1;
                continue;
            }
            if (i + 1 >= argc) return bad(cmd, usage, "missing value after", a);
            const char *v = argv[++i];
            if (f->type == LWF_ARG_STR) {
                *(const char **)f->out = v;
                continue;
            }
            errno = 0;
            char *end = NULL;
            long x = strtol(v, &end, 10);
            if (errno || end == v || *end || x < f->lo || x > f->hi) {
                fprintf(stderr, "darknet lwf %s: %s needs an integer in [%ld, %ld], got '%s'\n", cmd, a, f->lo, f->hi,
                        v);
                return -1;
            }
            *(int *)f->out = (int)x;
            continue;
        }
        if (*npos >= max_pos) return bad(cmd, usage, "unexpected argument", a);
        pos[(*npos)++] = argv[i];
    }
    if (*npos < min_pos) return bad(cmd, usage, "missing arguments", NULL);
    return 0;
}
