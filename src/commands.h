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

#endif
