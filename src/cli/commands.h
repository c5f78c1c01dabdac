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

/* `pattern-engine --help` and `--version` (help.c). */
void pe_cli_print_usage(FILE *out);
void pe_cli_print_version(FILE *out);

#endif
