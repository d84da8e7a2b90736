/* The lwf subcommands, one per file (src/cmd_<name>.c).  Each returns the process exit
 * status and prints its own errors; main.c only dispatches. */
#ifndef LWF_COMMANDS_H
#define LWF_COMMANDS_H

int lwf_cmd_info(int argc, char **argv);
int lwf_cmd_train(int argc, char **argv);
int lwf_cmd_valid(int argc, char **argv);
int lwf_cmd_predict(int argc, char **argv);
int lwf_cmd_export(int argc, char **argv);
int lwf_cmd_init(int argc, char **argv);
int lwf_cmd_map(int argc, char **argv);

/* Each command's usage line (after "darknet lwf "), defined in its file: the one text
 * its argument errors print and main.c lists. */
extern const char lwf_cmd_info_usage[], lwf_cmd_train_usage[], lwf_cmd_valid_usage[], lwf_cmd_predict_usage[],
    lwf_cmd_export_usage[], lwf_cmd_init_usage[], lwf_cmd_map_usage[];

#endif
