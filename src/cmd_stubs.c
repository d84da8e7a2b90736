/* Subcommands that are not built yet: each says so and fails. */
#include "commands.h"

#include <stdio.h>

static int not_built(const char *name)
{
    fprintf(stderr, "darknet lwf %s: not built yet\n", name);
    return 2;
}

int lwf_cmd_export(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return not_built("export");
}

int lwf_cmd_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return not_built("init");
}
