/* `pattern-engine build-engine MODEL.onnx --backend cuda -o FILE`: the
 * backend's checked, fused and resolved plan of a model, written for the
 * device it was made on, for `--model FILE` to load without importing. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/backend.h"
#include "pe/error.h"
#include "pe/file.h"

static pe_cli_flag_t pe__build_flags[] = {
    {"out", "FILE", NULL, NULL, "where the plan goes (also -o FILE)", NULL},
    {"backend", "NAME", NULL, "cuda", "backend whose plan to write", NULL},
    {"precision", "P", NULL, "fp32",
     "arithmetic of the plan's dense and Conv1d steps: fp32 or tf32 (tensor "
     "cores)",
     NULL},
};

#define PE__BUILD_MAX_ARGS 64

static int pe__build_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  /* -o FILE is --out FILE */
  char *args[PE__BUILD_MAX_ARGS];
  if (argc > PE__BUILD_MAX_ARGS) {
    pe_cli_error(cmd, "too many arguments");
    return PE_EXIT_USAGE;
  }
  for (int i = 0; i < argc; i++) {
    args[i] = strcmp(argv[i], "-o") == 0 ? (char *)"--out" : argv[i];
  }
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(cmd, argc, args, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  const char *out = pe_cli_flag(cmd, "out")->value;
  if (n_pos != 1 || out == NULL) {
    pe_cli_error(cmd, "usage: %s", cmd->usage);
    return PE_EXIT_USAGE;
  }
  const char *precision = pe_cli_value(cmd, "precision");
  if (strcmp(precision, "fp32") != 0 && strcmp(precision, "tf32") != 0) {
    pe_cli_error(cmd, "--precision %s: fp32 or tf32", precision);
    return PE_EXIT_USAGE;
  }
  const char *name = pe_cli_value(cmd, "backend");
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  o.model_path = pos[0];
  o.max_batch = 1;
  o.precision = precision;
  char err[512];
  pe_backend_t *b = NULL;
  rc = pe_backend_open(name, &o, &b, err, sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return rc == PE_ENOENT && pe_backend_find(name) == NULL ? PE_EXIT_USAGE
                                                            : PE_EXIT_FAIL;
  }
  void *data = NULL;
  size_t len = 0;
  rc = pe_backend_serialize(b, &data, &len, err, sizeof err);
  if (rc == PE_OK) {
    rc = pe_file_write_atomic(out, data, len, err, sizeof err);
  }
  if (rc == PE_OK) {
    char detail[2048];
    pe_backend_detail(b, detail, sizeof detail);
    printf("wrote %s: %zu bytes, %s plan of %s, precision %s\n", out, len, name,
           pos[0], precision);
    if (detail[0] != '\0') {
      printf("backend %s: %s\n", name, detail);
    }
  } else {
    pe_cli_error(cmd, "%s", err);
  }
  free(data);
  pe_backend_close(b);
  return rc == PE_OK ? PE_EXIT_OK : PE_EXIT_FAIL;
}

const pe_cli_command_t pe_cli_build_engine = {
    .name = "build-engine",
    .summary = "Write a backend's resolved plan of a model for this device",
    .usage = "build-engine MODEL.onnx --backend cuda [--precision fp32|tf32] "
             "-o FILE",
    .details =
        "Loads the model with the backend (cuda: imported, checked, fused,\n"
        "every step resolved into a kernel launch with its weights laid out\n"
        "for the device) and writes that plan to FILE, with a header naming\n"
        "the format version, the device and its compute capability, the\n"
        "precision and a checksum. `--model FILE` then loads it without\n"
        "importing the ONNX model. A plan made for another device, precision\n"
        "or format version, or a damaged one, is refused with a message that\n"
        "says which; so is a TensorRT engine (.engine, .trt, .plan), since\n"
        "TensorRT is not in this build. Exit status 1 when the model cannot\n"
        "be loaded or the file cannot be written.\n"
        "\n"
        "examples:\n"
        "  pattern-engine build-engine models/pattern_cnn.onnx --backend cuda "
        "-o cnn.peplan\n"
        "  pattern-engine replay --ticks fixtures/sample_ticks.csv --backend "
        "cuda --model cnn.peplan\n",
    .flags = pe__build_flags,
    .n_flags = sizeof pe__build_flags / sizeof pe__build_flags[0],
    .run = pe__build_run,
};
