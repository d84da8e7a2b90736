/* darknet lwf export <lwf.cfg> <weights> <task> <out.cfg> <out.weights>: one task of an LwF
 * model as a stock Darknet classifier, or a detector as a stock one ([yolo]).  The work is
 * lwf_export (plugin/tools/cfgtools.c). */
#include "args.h"
#include "commands.h"
#include "lwf.h"
#include "quiet.h"

#include <stdio.h>

const char lwf_cmd_export_usage[] =
    "export <lwf.cfg> <weights> <task> <out.cfg> <out.weights>   (outputs are overwritten)";

int lwf_cmd_export(int argc, char **argv)
{
    char *pos[5];
    int npos;
    if (lwf_args_parse(argc, argv, NULL, pos, 5, 5, &npos, lwf_cmd_export_usage)) return 2;
    lwf_err err;
    int saved = lwf_quiet_begin(); /* no layer table: lwf_export builds the network */
    int rc = lwf_export(pos[0], pos[1], pos[2], pos[3], pos[4], &err);
    lwf_quiet_end(saved);
    if (rc) {
        fprintf(stderr, "darknet lwf export: %s\n", err.msg);
        return 1;
    }
    if (lwf_cfg_is_detector(pos[0]))
        printf("wrote %s and %s: the detector as a stock one (darknet detector test <data> %s %s <image>)\n", pos[3],
               pos[4], pos[3], pos[4]);
    else
        printf("wrote %s and %s: task '%s' as a stock classifier (darknet classifier predict <data> %s %s <image>)\n",
               pos[3], pos[4], pos[2], pos[3], pos[4]);
    return 0;
}
