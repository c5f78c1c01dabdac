/* The commands of pattern-engine, one file each in src/cli/ (internal). */
#ifndef PE_CLI_COMMANDS_H
#define PE_CLI_COMMANDS_H

#include <stdio.h>

#include "cli/cli.h"

extern const pe_cli_command_t pe_cli_replay;
#ifdef PE_WITH_REDIS
extern const pe_cli_command_t pe_cli_live;
extern const pe_cli_command_t pe_cli_publish;
#endif
extern const pe_cli_command_t pe_cli_help;
#ifdef PE_HAVE_ONNX
#include "pe/model.h"
extern const pe_cli_command_t pe_cli_inspect;
extern const pe_cli_command_t pe_cli_infer;
extern const pe_cli_command_t pe_cli_bench_model;
extern const pe_cli_command_t pe_cli_build_engine;

/* --kernels auto|generic|avx2 into opts (inspect.c); returns an exit code. */
int pe_cli_kernels(const pe_cli_command_t *cmd, pe_model_options_t *opts);

/* --kernels, then pe_model_load_file, printing any error (inspect.c). */
int pe_cli_load_model(const pe_cli_command_t *cmd, const char *path,
                      pe_model_t **m);
#endif

/* `pattern-engine --help` and `--version` (help.c). */
void pe_cli_print_usage(FILE *out);
void pe_cli_print_version(FILE *out);

#endif
