/* `pattern-engine inspect MODEL`: what a model is and how it will run. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/backend.h"
#include "pe/error.h"
#include "pe/model.h"

static pe_cli_flag_t pe__inspect_flags[] = {
    {"kernels", "NAME", PE_CLI_KERNELS_ENV, "auto",
     "kernels to plan for: auto, generic, avx2 or avx512 (capped by the CPU)",
     NULL},
    {"backend", "NAME", NULL, "cpu",
     "also open the model with this backend (cuda, say) and print how it "
     "runs it",
     NULL},
    PE_CLI_CUDA_MODE_FLAG,
    PE_CLI_CUDA_PRECISION_FLAG,
    PE_CLI_CUDA_MEMORY_FLAG,
};

/* Parses --kernels into opts; returns an exit code. */
int pe_cli_kernels(const pe_cli_command_t *cmd, pe_model_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  const char *k = pe_cli_value(cmd, "kernels");
  if (pe_kernels_parse(k, &opts->kernels) != PE_OK) {
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
  if (d->n_inputs == 0) {
    printf("inputs     none: the outputs are constants, computed at load");
  } else if (d->n_inputs == 1) {
    printf("input      ");
    pe__print_tensor(&d->input);
  } else {
    printf("inputs");
    for (int i = 0; i < d->n_inputs; i++) {
      printf("\n  %d  ", i);
      pe__print_tensor(&d->inputs[i]);
    }
  }
  if (d->n_inputs > 0 && d->input.batch_axis < 0) {
    printf("\n           no batch dimension (axis 0 is fixed): a window is "
           "the whole declared input");
  }
  if (d->layout != PE_MODEL_LAYOUT_NONE) {
    printf("\nlayout     %s (W=%lld step%s, C=%lld feature%s), %s",
           pe_model_layout_name(d->layout), (long long)d->window,
           d->window > 1 ? "s" : "", (long long)d->channels,
           d->channels > 1 ? "s" : "", d->layout_note);
  } else {
    printf("\nlayout     none: the engine cannot feed this input (%s)",
           d->layout_note);
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
  char line[2048];
  for (int i = 0; i < d->n_steps; i++) {
    pe_model_step_describe(m, i, line, sizeof line);
    printf("  %2d  %s\n", i, line);
  }
  printf("flops      %lld per window\n", (long long)d->flops);
  pe_model_destroy(m);
  const char *backend = pe_cli_value(cmd, "backend");
  if (strcmp(backend, "cpu") == 0) {
    return PE_EXIT_OK;
  }
  pe_backend_options_t bo;
  memset(&bo, 0, sizeof bo);
  bo.model_path = pos[0];
  bo.max_batch = 1;
  bo.mode = pe_cli_value(cmd, "cuda-mode");
  bo.precision = pe_cli_value(cmd, "precision");
  if (pe_cli_cuda_memory(cmd, &bo.device_memory_bytes) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  pe_backend_t *be = NULL;
  int brc = pe_backend_open(backend, &bo, &be, line, sizeof line);
  if (brc != PE_OK) {
    pe_cli_error(cmd, "%s%s", line, pe_cli_backend_hint(brc, &bo));
    return brc == PE_ENOENT && pe_backend_find(backend) == NULL ? PE_EXIT_USAGE
                                                                : PE_EXIT_FAIL;
  }
  pe_backend_detail(be, line, sizeof line);
  printf("backend    %s: %s\n", backend, line[0] ? line : "(no detail)");
  pe_backend_close(be);
  return PE_EXIT_OK;
}

const pe_cli_command_t pe_cli_inspect = {
    .name = "inspect",
    .summary = "Print an ONNX model's inputs, outputs, metadata and plan",
    .usage = "inspect MODEL [FLAGS]",
    .details =
        "Loads the model as the cpu backend would (validation, shape\n"
        "inference, folding of shape subgraphs, fusion) and prints the input,\n"
        "how it holds a feature window (layout NCW, NWC or N1WC, from\n"
        "pe.layout or from the shape; docs/models.md), the outputs,\n"
        "metadata_props (pe.features, pe.window, pe.layout, pe.classes,\n"
        "pe.output), each step of the execution plan with its shapes per\n"
        "window (N is the batch) and the FLOPs per window (2 per multiply-\n"
        "add). A model the engine cannot run gives one line naming the node\n"
        "and what is supported, and exit status 1. With --backend NAME the\n"
        "model is also opened with that backend, and its line says how it\n"
        "runs it (cuda: device, mode, memory, allocations after load).\n"
        "\n"
        "examples:\n"
        "  pattern-engine inspect models/toy_cnn.onnx\n"
        "  pattern-engine inspect models/pattern_lstm.onnx --kernels generic\n"
        "  pattern-engine inspect models/pattern_cnn.onnx --backend cuda "
        "--cuda-mode persistent\n",
    .flags = pe__inspect_flags,
    .n_flags = sizeof pe__inspect_flags / sizeof pe__inspect_flags[0],
    .run = pe__inspect_run,
};
