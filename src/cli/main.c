/* pattern-engine: the command table and dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"

const pe_cli_command_t *const pe_cli_commands[] = {
    &pe_cli_replay,
#ifdef PE_HAVE_ONNX
    &pe_cli_inspect, &pe_cli_infer,   &pe_cli_bench_model, &pe_cli_build_engine,
#endif
#ifdef PE_WITH_REDIS
    &pe_cli_live,    &pe_cli_publish,
#endif
    &pe_cli_help,
};
const size_t pe_cli_command_count =
    sizeof pe_cli_commands / sizeof pe_cli_commands[0];

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    pe_cli_print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? PE_EXIT_USAGE : PE_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    pe_cli_print_version(stdout);
    return PE_EXIT_OK;
  }
  const pe_cli_command_t *cmd = pe_cli_find_command(argv[1]);
  if (cmd == NULL) {
    fprintf(stderr,
            "pattern-engine: unknown command '%s'; `pattern-engine --help` "
            "lists the commands\n",
            argv[1]);
    return PE_EXIT_USAGE;
  }
  return cmd->run(cmd, argc - 1, argv + 1);
}
