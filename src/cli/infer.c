/* `pattern-engine infer MODEL --input X.npy --output Y.npy`: a batch in,
 * the model's outputs out, as .npy files anyone can check with numpy. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/model.h"
#include "pe/npy.h"

static pe_cli_flag_t pe__infer_flags[] = {
    {"input", "PATH", NULL, NULL,
     "float32 .npy batch: [N, ...the model input without its batch axis]",
     NULL},
    {"output", "PATH", NULL, NULL, "where the outputs go, as float32 .npy",
     NULL},
    {"backend", "NAME", NULL, "cpu",
     "backend that runs the model (cpu, or stub for the fixed function)", NULL},
    {"model-features", "LIST", NULL, NULL,
     "feature names for a backend that needs them and a model that declares "
     "none",
     NULL},
    {"kernels", "NAME", "PE_CPU_KERNELS", "auto",
     "cpu backend kernels: auto, generic, avx2 or avx512", NULL},
};

static int pe__infer_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  const char *in_path = pe_cli_flag(cmd, "input")->value;
  const char *out_path = pe_cli_flag(cmd, "output")->value;
  if (n_pos != 1 || in_path == NULL || out_path == NULL) {
    pe_cli_error(cmd, "usage: infer MODEL --input X.npy --output Y.npy");
    return PE_EXIT_USAGE;
  }
  pe_model_options_t opts;
  if ((rc = pe_cli_kernels(cmd, &opts)) != PE_EXIT_OK) {
    return rc;
  }
  const char *backend = pe_cli_value(cmd, "backend");
  void *buf = NULL;
  size_t len = 0;
  char err[512];
  if (pe_file_read_all(in_path, &buf, &len, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  pe_npy_t x;
  if (pe_npy_parse(buf, len, &x, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s: %s", in_path, err);
    free(buf);
    return PE_EXIT_FAIL;
  }
  rc = PE_EXIT_FAIL;
  pe_model_t *m = NULL;
  pe_model_ctx_t *ctx = NULL;
  pe_backend_t *be = NULL;
  float *in = NULL, *out = NULL;
  int64_t in_per, out_per, oshape[PE_NPY_MAX_RANK];
  int orank;
  if (strcmp(backend, "cpu") == 0) {
    if (pe_model_load_file(pos[0], &opts, &m, err, sizeof err) != PE_OK) {
      pe_cli_error(cmd, "%s", err);
      goto done;
    }
    const pe_model_desc_t *d = pe_model_desc(m);
    in_per = d->input.numel;
    out_per = d->outputs[0].numel;
    orank = d->outputs[0].rank;
    for (int i = 0; i < orank; i++) {
      oshape[i] = d->outputs[0].dims[i];
    }
  } else {
    pe_backend_options_t bo;
    memset(&bo, 0, sizeof bo);
    bo.model_path = pos[0];
    bo.model_features = pe_cli_flag(cmd, "model-features")->value;
    bo.max_batch = 1;
    if (pe_backend_open(backend, &bo, &be, err, sizeof err) != PE_OK) {
      pe_cli_error(cmd, "%s", err);
      goto done;
    }
    const pe_model_info_t *info = pe_backend_info(be);
    in_per = (int64_t)info->n_features * info->window;
    out_per = info->n_outputs;
    orank = 2;
    oshape[0] = -1;
    oshape[1] = out_per;
  }
  int64_t per = 1;
  for (int i = 1; i < x.rank; i++) {
    per *= x.shape[i];
  }
  if (x.rank < 1 || per != in_per || x.shape[0] < 1 ||
      x.shape[0] > UINT32_MAX) {
    pe_cli_error(cmd,
                 "%s: shape does not fit the model: it takes [N, ...] with "
                 "%lld values per window",
                 in_path, (long long)in_per);
    goto done;
  }
  uint32_t batch = (uint32_t)x.shape[0];
  in = malloc((size_t)x.count * sizeof(float) + 1);
  out = malloc((size_t)batch * (size_t)out_per * sizeof(float) + 1);
  if (in == NULL || out == NULL) {
    pe_cli_error(cmd, "out of memory");
    goto done;
  }
  memcpy(in, x.data, (size_t)x.count * sizeof(float));
  if (m != NULL) {
    if (pe_model_ctx_create(m, batch, &ctx) != PE_OK ||
        pe_model_run(ctx, in, batch, out) != PE_OK) {
      pe_cli_error(cmd, "cannot run the model (out of memory)");
      goto done;
    }
  } else {
    for (uint32_t b = 0; b < batch; b++) {
      if (pe_backend_run(be, in + (size_t)b * (size_t)in_per, 1,
                         out + (size_t)b * (size_t)out_per) != PE_OK) {
        pe_cli_error(cmd, "%s", pe_backend_errmsg(be));
        goto done;
      }
    }
  }
  for (int i = 0; i < orank; i++) {
    if (oshape[i] < 0) {
      oshape[i] = batch;
    }
  }
  char hdr[256];
  size_t hl = pe_npy_header(hdr, sizeof hdr, oshape, orank);
  size_t dl = (size_t)batch * (size_t)out_per * sizeof(float);
  unsigned char *file = malloc(hl + dl);
  if (file == NULL || hl == 0) {
    free(file);
    pe_cli_error(cmd, "out of memory");
    goto done;
  }
  memcpy(file, hdr, hl);
  memcpy(file + hl, out, dl);
  int wrc = pe_file_write_atomic(out_path, file, hl + dl, err, sizeof err);
  free(file);
  if (wrc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    goto done;
  }
  rc = PE_EXIT_OK;
done:
  free(buf);
  free(in);
  free(out);
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
  pe_backend_close(be);
  return rc;
}

const pe_cli_command_t pe_cli_infer = {
    .name = "infer",
    .summary =
        "Run a model on a float32 .npy batch and write the outputs as .npy",
    .usage = "infer MODEL --input X.npy --output Y.npy [FLAGS]",
    .details =
        "X.npy is float32, C order, batch first: for a Conv1d model taking\n"
        "[N, C, W], an array of shape (N, C, W) (any shape with C*W values\n"
        "per window is accepted). Y.npy gets the model's first output with\n"
        "the batch size filled in, e.g. (N, 2). Check our numbers with\n"
        "onnxruntime:\n"
        "  python3 -c \"import numpy as np, onnxruntime as ort; "
        "x=np.load('X.npy');\n"
        "  s=ort.InferenceSession('M.onnx'); "
        "y=s.run(None,{s.get_inputs()[0].name:x})[0];\n"
        "  print(abs(y-np.load('Y.npy')).max())\"\n"
        "\n"
        "examples:\n"
        "  pattern-engine infer models/toy_cnn.onnx --input x.npy --output "
        "y.npy\n"
        "  pattern-engine infer models/toy_cnn.onnx --input x.npy --output "
        "y.npy "
        "--kernels generic\n"
        "  pattern-engine infer none --backend stub --input x.npy --output "
        "y.npy\n"
        "  pattern-engine infer m.onnx --backend stub --model-features "
        "return_z "
        "--input x.npy --output y.npy\n",
    .flags = pe__infer_flags,
    .n_flags = sizeof pe__infer_flags / sizeof pe__infer_flags[0],
    .run = pe__infer_run,
};
