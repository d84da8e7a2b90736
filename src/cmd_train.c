/* darknet lwf train <new.data> <lwf.cfg> [old.weights] [-clear] [-seed N]
 * [-teacher online|record] [-method lwf|finetune|featext|joint] [-valid N] [-stop N] [-backup N]
 * [-quiet] [-reference] */
#include "args.h"
#include "commands.h"
#include "lwf.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char lwf_cmd_train_usage[] =
    "train <new.data> <lwf.cfg> [old.weights] [-clear] [-seed N] [-teacher online|record] "
    "[-method lwf|finetune|featext|joint] [-valid N] [-stop N] [-backup N] [-quiet] [-reference]";

int lwf_cmd_train(int argc, char **argv)
{
    int clear = 0, seed = -1, stop = 0, quiet = 0, every = 100, reference = 0, valid = 0;
    const char *teacher = "online", *method = "lwf";
    lwf_arg flags[] = {{"-clear", LWF_ARG_FLAG, &clear, 0, 0},
                       {"-seed", LWF_ARG_INT, &seed, 0, INT_MAX},
                       {"-teacher", LWF_ARG_STR, &teacher, 0, 0},
                       {"-method", LWF_ARG_STR, &method, 0, 0},
                       {"-stop", LWF_ARG_INT, &stop, 1, INT_MAX},
                       {"-quiet", LWF_ARG_FLAG, &quiet, 0, 0},
                       {"-backup", LWF_ARG_INT, &every, 1, INT_MAX},
                       {"-reference", LWF_ARG_FLAG, &reference, 0, 0},
                       {"-valid", LWF_ARG_INT, &valid, 1, INT_MAX},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[3] = {NULL, NULL, NULL};
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 2, 3, &npos, lwf_cmd_train_usage)) return 2;
    if (reference) lwf_set_reference(1); /* Darknet's own kernels */
    lwf_train_opts o = {pos[0], pos[1], pos[2], clear, seed >= 0, (unsigned long long)(seed >= 0 ? seed : 0),
                        LWF_TEACHER_ONLINE, LWF_METHOD_LWF, stop, every, quiet, valid};
    if (strcmp(teacher, "record") == 0) o.teacher = LWF_TEACHER_RECORD;
    else if (strcmp(teacher, "online") != 0) {
        fprintf(stderr, "darknet lwf train: -teacher must be online or record, got '%s'\n", teacher);
        return 2;
    }
    if (lwf_method_parse(method, &o.method)) {
        fprintf(stderr, "darknet lwf train: -method must be lwf, finetune, featext or joint, got '%s'\n", method);
        return 2;
    }
    /* a full disk or a file-size limit must fail a write, not kill the process */
    signal(SIGXFSZ, SIG_IGN);
    lwf_err err;
    if (lwf_train(&o, &err)) {
        fprintf(stderr, "darknet lwf train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
