/* darknet lwf init <old.cfg> <new.data> <out.cfg> [-split N] [-grow old.data]: writes an LwF cfg
 * from a stock classifier cfg (or adds a new head to an LwF cfg; -grow: one head, or a stock
 * detector, over the old classes and the new ones).  The work is plugin/tools/cfgtools.c's. */
#include "args.h"
#include "commands.h"
#include "lwf.h"

#include <stdio.h>

const char lwf_cmd_init_usage[] =
    "init <old.cfg> <new.data> <out.cfg> [-split N] [-grow old.data]   (out.cfg is overwritten if it exists)";

/* -grow old.data: one head (or a detector) over the old classes and the new ones */
static int init_grow(char **pos, int split, const char *olddata)
{
    lwf_err err;
    lwf_init_info info;
    if (split >= 0) {
        fprintf(stderr, "darknet lwf init: -split and -grow do not go together (a grown head is the old one)\n");
        return 2;
    }
    if (lwf_init_grow(pos[0], pos[1], olddata, pos[2], &info, &err)) {
        fprintf(stderr, "darknet lwf init: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: %s '%s' grown from %d to %d classes (%d old of %s, then %d new of %s), with its .data%s "
           "beside it\n",
           pos[2], info.detector ? "detector" : "task", info.new_task, info.old_classes,
           info.old_classes + info.new_classes, info.old_classes, olddata, info.new_classes, pos[1],
           info.detector ? " and .names" : ", .labels and .valid.list");
    printf("train it with: darknet lwf train %s %s <old.weights>\n", info.data, pos[2]);
    return 0;
}

int lwf_cmd_init(int argc, char **argv)
{
    int split = -1;
    const char *grow = NULL;
    lwf_arg flags[] = {{"-split", LWF_ARG_INT, &split, 0, 1 << 20},
                       {"-grow", LWF_ARG_STR, &grow, 0, 0},
                       {NULL, 0, NULL, 0, 0}};
    char *pos[3];
    int npos;
    if (lwf_args_parse(argc, argv, flags, pos, 3, 3, &npos, lwf_cmd_init_usage)) return 2;
    lwf_err err;
    lwf_init_info info;
    if (grow) return init_grow(pos, split, grow);
    if (lwf_init_cfg(pos[0], pos[1], pos[2], split, &info, &err)) {
        fprintf(stderr, "darknet lwf init: %s\n", err.msg);
        return 1;
    }
    if (info.from_lwf)
        printf("wrote %s: the %d head%s of %s kept as old task%s, new task '%s' (%d classes) mirroring the last head "
               "(%d classes)\n",
               pos[2], info.old_heads, info.old_heads == 1 ? "" : "s", pos[0], info.old_heads == 1 ? "" : "s",
               info.new_task, info.new_classes, info.old_classes);
    else
        printf("wrote %s: trunk = layers 0-%d of %s, old task '%s' (%d classes) = its head from layer %d, new task "
               "'%s' (%d classes)\n",
               pos[2], info.head - 1, pos[0], info.old_task, info.old_classes, info.head, info.new_task,
               info.new_classes);
    printf("check it with: darknet lwf info %s\n", pos[2]);
    return 0;
}
