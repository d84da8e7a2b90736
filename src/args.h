/* Strict command-line parsing for the lwf subcommands: known flags only, every value
 * checked, positional arguments counted. */
#ifndef LWF_ARGS_H
#define LWF_ARGS_H

typedef enum { LWF_ARG_FLAG, LWF_ARG_INT, LWF_ARG_STR } lwf_arg_type;

typedef struct {
    const char *name;    /* "-seed" */
    lwf_arg_type type;
    void *out;           /* int* for FLAG/INT, const char** for STR */
    long lo, hi;         /* range for INT */
} lwf_arg;

/* Fills the flags' outputs and pos[] with the positional arguments (argv[1..]).
 * On an error prints "darknet lwf <cmd>: ..." and the usage line, returns -1. */
int lwf_args_parse(int argc, char **argv, lwf_arg *flags, char **pos, int min_pos, int max_pos, int *npos,
                   const char *usage);

#endif
