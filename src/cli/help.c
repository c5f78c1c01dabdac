/* `pattern-engine help [COMMAND]`, --help and --version. */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "pe/backend.h"
#include "pe_build_info.h"

void pe_cli_print_usage(FILE *out) {
  fputs("usage: pattern-engine COMMAND [FLAGS]\n\ncommands:\n", out);
  for (size_t i = 0; i < pe_cli_command_count; i++) {
    fprintf(out, "  %-12s %s\n", pe_cli_commands[i]->name,
            pe_cli_commands[i]->summary);
  }
  fputs("\n`pattern-engine help COMMAND` documents every flag of a command;\n"
        "`pattern-engine --version` prints the build and its backends.\n",
        out);
}

void pe_cli_print_version(FILE *out) {
  fprintf(out, "pattern-engine %s\n", PE_VERSION_STRING);
  fprintf(out, "build: %s, %s%s%s\n", PE_BUILD_TYPE, PE_BUILD_COMPILER,
          PE_BUILD_SANITIZE[0] ? ", sanitizers " : "", PE_BUILD_SANITIZE);
  fputs("backends:\n", out);
  pe_backend_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.kernels = getenv(PE_CLI_KERNELS_ENV);
  for (size_t i = 0; i < pe_backend_count(); i++) {
    const pe_backend_ops_t *b = pe_backend_at(i);
    char summary[256];
    b->summary(&opts, summary, sizeof summary);
    fprintf(out, "  %-10s %s\n", b->name, summary);
  }
}

static int pe__help_run(const pe_cli_command_t *self, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(self, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  if (n_pos == 0) {
    pe_cli_print_usage(stdout);
    return PE_EXIT_OK;
  }
  const pe_cli_command_t *cmd = pe_cli_find_command(pos[0]);
  if (cmd == NULL) {
    pe_cli_error(self, "unknown command '%s'", pos[0]);
    return PE_EXIT_USAGE;
  }
  pe_cli_print_help(stdout, cmd);
  return PE_EXIT_OK;
}

const pe_cli_command_t pe_cli_help = {
    .name = "help",
    .summary = "Document a command and every flag it takes",
    .usage = "help [COMMAND]",
    .details = "example:\n  pattern-engine help replay\n",
    .flags = NULL,
    .n_flags = 0,
    .run = pe__help_run,
};
