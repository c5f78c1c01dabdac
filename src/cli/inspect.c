/* `pattern-engine inspect MODEL`: what a model is and how it will run. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/error.h"
#include "pe/model.h"

static pe_cli_flag_t pe__inspect_flags[] = {
    {"kernels", "NAME", "PE_CPU_KERNELS", "auto",
     "kernels to plan for: auto, generic, avx2 or avx512 (capped by the CPU)",
     NULL},
};

/* Parses --kernels into opts; returns an exit code. */
int pe_cli_kernels(const pe_cli_command_t *cmd, pe_model_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  const char *k = pe_cli_value(cmd, "kernels");
  if (strcmp(k, "auto") == 0) {
    opts->kernels = PE_KERNELS_AUTO;
  } else if (strcmp(k, "generic") == 0) {
    opts->kernels = PE_KERNELS_GENERIC;
  } else if (strcmp(k, "avx2") == 0) {
    opts->kernels = PE_KERNELS_AVX2;
  } else if (strcmp(k, "avx512") == 0) {
    opts->kernels = PE_KERNELS_AVX512;
  } else {
    pe_cli_error(cmd, "--kernels: '%s' is not auto, generic, avx2 or avx512",
                 k);
    return PE_EXIT_USAGE;
  }
  return PE_EXIT_OK;
}

/* --kernels, then the model at path into *m; on failure the message is
 * printed. Returns an exit code. */
int pe_cli_load_model(const pe_cli_command_t *cmd, const char *path,
                      pe_model_t **m) {
  pe_model_options_t opts;
  int rc = pe_cli_kernels(cmd, &opts);
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  char err[512];
  if (pe_model_load_file(path, &opts, m, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

static void pe__print_tensor(const pe_model_tensor_t *t) {
  printf("%s [", t->name);
  for (int d = 0; d < t->rank; d++) {
    if (t->dims[d] < 0) {
      printf("%sN", d ? ", " : "");
    } else {
      printf("%s%lld", d ? ", " : "", (long long)t->dims[d]);
    }
  }
  printf("] %s, %lld values per window",
         t->dtype == PE_MODEL_INT64  ? "int64"
         : t->dtype == PE_MODEL_BOOL ? "bool"
                                     : "float32",
         (long long)t->numel);
}

static int pe__inspect_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  if (n_pos != 1) {
    pe_cli_error(cmd, "give one MODEL path; see `pattern-engine help inspect`");
    return PE_EXIT_USAGE;
  }
  pe_model_t *m = NULL;
  if ((rc = pe_cli_load_model(cmd, pos[0], &m)) != PE_EXIT_OK) {
    return rc;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  printf("model      %s\n", pos[0]);
  printf("format     ONNX IR %lld, opset %lld%s%s\n", (long long)d->ir_version,
         (long long)d->opset, d->producer[0] ? ", producer " : "", d->producer);
  if (d->n_inputs == 1) {
    printf("input      ");
    pe__print_tensor(&d->input);
  } else {
    printf("inputs");
    for (int i = 0; i < d->n_inputs; i++) {
      printf("\n  %d  ", i);
      pe__print_tensor(&d->inputs[i]);
    }
  }
  if (d->input.batch_axis < 0) {
    printf("\n           no batch dimension (axis 0 is fixed): a window is "
           "the whole declared input");
  }
  printf("\noutputs\n");
  for (int i = 0; i < d->n_outputs; i++) {
    printf("  %d  ", i);
    pe__print_tensor(&d->outputs[i]);
    printf("%s\n",
           i == 0 ? "  (computed)" : "  (not computed: only output 0 is run)");
  }
  printf("metadata%s\n",
         d->n_meta ? "" : "   none (run with --model-features)");
  for (int i = 0; i < d->n_meta; i++) {
    printf("  %s = %s\n", d->meta_key[i], d->meta_value[i]);
  }
  printf(
      "plan       %d steps, kernels %s, arena %lld floats per window, packed "
      "weights %lld bytes\n",
      d->n_steps, d->kernels, (long long)d->arena_floats,
      (long long)d->weight_bytes);
  char line[512];
  for (int i = 0; i < d->n_steps; i++) {
    pe_model_step_describe(m, i, line, sizeof line);
    printf("  %2d  %s\n", i, line);
  }
  printf("flops      %lld per window\n", (long long)d->flops);
  pe_model_destroy(m);
  return PE_EXIT_OK;
}

const pe_cli_command_t pe_cli_inspect = {
    .name = "inspect",
    .summary = "Print an ONNX model's inputs, outputs, metadata and plan",
    .usage = "inspect MODEL [FLAGS]",
    .details =
        "Loads the model as the cpu backend would (validation, shape\n"
        "inference, folding of shape subgraphs, fusion) and prints the input,\n"
        "the outputs, metadata_props (pe.features, pe.window, pe.classes,\n"
        "pe.output), each step of the execution plan with its shapes per\n"
        "window (N is the batch) and the FLOPs per window (2 per multiply-\n"
        "add). A model the engine cannot run gives one line naming the node\n"
        "and what is supported, and exit status 1.\n"
        "\n"
        "examples:\n"
        "  pattern-engine inspect models/toy_cnn.onnx\n"
        "  pattern-engine inspect models/pattern_lstm.onnx --kernels generic\n",
    .flags = pe__inspect_flags,
    .n_flags = sizeof pe__inspect_flags / sizeof pe__inspect_flags[0],
    .run = pe__inspect_run,
};
