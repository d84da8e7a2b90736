/* ./darknet: `darknet lwf <command> ...` runs ours; any other first argument runs the
 * stock /usr/bin/darknet with the same arguments (its exit status is ours). */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LWF_STOCK_DARKNET
#define LWF_STOCK_DARKNET "/usr/bin/darknet"
#endif

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {{"train", lwf_cmd_train, lwf_cmd_train_usage},
                                   {"valid", lwf_cmd_valid, lwf_cmd_valid_usage},
                                   {"predict", lwf_cmd_predict, lwf_cmd_predict_usage},
                                   {"export", lwf_cmd_export, lwf_cmd_export_usage},
                                   {"init", lwf_cmd_init, lwf_cmd_init_usage},
                                   {"info", lwf_cmd_info, lwf_cmd_info_usage},
                                   {"map", lwf_cmd_map, lwf_cmd_map_usage},
                                   {NULL, NULL, NULL}};

static void usage(FILE *out)
{
    fprintf(out, "usage: darknet lwf <command> ...   (Learning without Forgetting for Darknet)\n");
    for (int i = 0; commands[i].name; ++i) fprintf(out, "  darknet lwf %s\n", commands[i].usage);
    fprintf(out, "any other first argument runs the stock darknet: darknet classifier train ...\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "lwf") != 0) {
        argv[0] = (char *)LWF_STOCK_DARKNET;
        execv(LWF_STOCK_DARKNET, argv);
        fprintf(stderr, "darknet: cannot run the stock %s: %s (install Debian's darknet package)\n",
                LWF_STOCK_DARKNET, strerror(errno));
        return 127;
    }
    if (argc < 3) { /* no command: a usage error, like an unknown one */
        fprintf(stderr, "darknet lwf: no command given\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; commands[i].name; ++i)
        if (strcmp(argv[2], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "darknet lwf: unknown command '%s'\n", argv[2]);
    usage(stderr);
    return 2;
}
