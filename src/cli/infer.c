/* `pattern-engine infer MODEL --input X.npy --output Y.npy`: a batch in,
 * the model's outputs out, as .npy files anyone can check with numpy. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/model.h"
#include "pe/npy.h"

static pe_cli_flag_t pe__infer_flags[] = {
    {"input", "PATH", NULL, NULL,
     "float32 .npy batch: [N, ...the model input without its batch axis]; "
     "repeat as NAME=PATH for a model with several inputs (int64 and bool "
     ".npy where the input is)",
     NULL},
    {"output", "PATH", NULL, NULL,
     "where the outputs go, as .npy: float32, or int64 or bool where the "
     "graph output is (a constant such as Shape's)",
     NULL},
    {"backend", "NAME", NULL, "cpu",
     "backend that runs the model (cpu, or stub for the fixed function)", NULL},
    {"model-features", "LIST", NULL, NULL,
     "feature names for a backend that needs them and a model that declares "
     "none",
     NULL},
    {"kernels", "NAME", PE_CLI_KERNELS_ENV, "auto",
     "cpu backend kernels: auto, generic, avx2 or avx512", NULL},
    {"bind", "NAME=FILE", NULL, NULL,
     "give the model input NAME its value at load (.npy of its whole shape: "
     "a Reshape target, indices, weights); it is then a constant and no "
     "longer an input; repeatable",
     NULL},
    {"all-outputs", NULL, NULL, NULL,
     "compute every graph output: --output is then a folder, output K "
     "written to it as output_K.npy (batch first)",
     NULL},
    PE_CLI_CUDA_MODE_FLAG,
    PE_CLI_CUDA_PRECISION_FLAG,
    PE_CLI_CUDA_MEMORY_FLAG,
};

/* The --bind arguments of the cpu path, read: the arrays and the binds
 * pointing into them. */
typedef struct pe__infer_binds {
  int n;
  pe_model_bind_t b[PE_MODEL_MAX_IO];
  char name[PE_MODEL_MAX_IO][PE_MODEL_TENSOR_NAME_MAX];
  void *buf[PE_MODEL_MAX_IO];
  pe_npy_t x[PE_MODEL_MAX_IO];
} pe__infer_binds_t;

/* Reads each NAME=FILE.npy of bind[0..n) into bs. Returns an exit code. */
static int pe__infer_binds_read(const pe_cli_command_t *cmd, char **bind, int n,
                                pe__infer_binds_t *bs) {
  char err[512];
  for (int k = 0; k < n; k++) {
    const char *eq = strchr(bind[k], '=');
    size_t l = eq != NULL ? (size_t)(eq - bind[k]) : 0;
    if (eq == NULL || l == 0 || l >= PE_MODEL_TENSOR_NAME_MAX) {
      pe_cli_error(cmd, "--bind %s: give NAME=FILE.npy", bind[k]);
      return PE_EXIT_USAGE;
    }
    memcpy(bs->name[k], bind[k], l);
    bs->name[k][l] = '\0';
    size_t len = 0;
    if (pe_file_read_all(eq + 1, &bs->buf[k], &len, err, sizeof err) != PE_OK) {
      pe_cli_error(cmd, "%s", err);
      return PE_EXIT_FAIL;
    }
    bs->n = k + 1;
    if (pe_npy_parse_any(bs->buf[k], len, &bs->x[k], err, sizeof err) !=
        PE_OK) {
      pe_cli_error(cmd, "%s: %s", eq + 1, err);
      return PE_EXIT_FAIL;
    }
    pe_model_bind_t *b = &bs->b[k];
    b->name = bs->name[k];
    b->dtype = bs->x[k].dtype;
    b->rank = bs->x[k].rank;
    b->dims = bs->x[k].shape;
    b->data = bs->x[k].data;
  }
  return PE_EXIT_OK;
}

/* Writes `count` floats of shape oshape as an .npy file. */
/* Writes y (count floats) as an .npy array of the output's type: float32,
 * or the int64 or bool values the floats hold. */
static int pe__write_npy(const pe_cli_command_t *cmd, const char *path,
                         const int64_t *oshape, int orank, const float *y,
                         size_t count, int dtype) {
  char hdr[256];
  const char *descr = dtype == PE_MODEL_INT64  ? "<i8"
                      : dtype == PE_MODEL_BOOL ? "|b1"
                                               : "<f4";
  size_t es = dtype == PE_MODEL_INT64 ? 8 : dtype == PE_MODEL_BOOL ? 1 : 4;
  size_t hl = pe_npy_header_typed(hdr, sizeof hdr, descr, oshape, orank);
  size_t dl = count * es;
  unsigned char *file = malloc(hl + dl);
  if (file == NULL || hl == 0) {
    free(file);
    pe_cli_error(cmd, "out of memory");
    return PE_EXIT_FAIL;
  }
  memcpy(file, hdr, hl);
  for (size_t i = 0; i < count; i++) {
    if (dtype == PE_MODEL_INT64) {
      int64_t v = (int64_t)y[i];
      memcpy(file + hl + i * 8, &v, 8);
    } else if (dtype == PE_MODEL_BOOL) {
      file[hl + i] = y[i] != 0.0f;
    } else {
      memcpy(file + hl + i * 4, &y[i], 4);
    }
  }
  char err[512];
  int wrc = pe_file_write_atomic(path, file, hl + dl, err, sizeof err);
  free(file);
  if (wrc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

/* One --input of the cpu path: which model input it feeds and its array. */
typedef struct pe__infer_in {
  const char *path;
  unsigned char *buf;
  pe_npy_t x;
  void *copy; /* aligned copy of the data */
  uint32_t batch;
  int exact;   /* the array is the declared shape itself (no batch axis) */
  int stacked; /* [N, ...the declared shape] (no batch axis) */
} pe__infer_in_t;

/* The model input given[k] names: "NAME=FILE" with NAME an input, else a
 * plain FILE for a one-input model. Returns the input index or -1. */
static int pe__infer_match(const pe_model_desc_t *d, const char *arg,
                           const char **path, int n_given) {
  const char *eq = strchr(arg, '=');
  for (int i = 0; eq != NULL && i < d->n_inputs; i++) {
    size_t l = strlen(d->inputs[i].name);
    if ((size_t)(eq - arg) == l && memcmp(arg, d->inputs[i].name, l) == 0) {
      *path = eq + 1;
      return i;
    }
  }
  *path = arg;
  return d->n_inputs == 1 && n_given == 1 ? 0 : -1;
}

/* Reads input i's array and works out its batch: the declared shape itself
 * for a model without a batch dimension (batch 1), else [N, ...] with the
 * input's elements per window after the first axis. */
static int pe__infer_read(const pe_cli_command_t *cmd,
                          const pe_model_tensor_t *t, pe__infer_in_t *in) {
  char err[512];
  size_t len = 0;
  void *data = NULL;
  if (pe_file_read_all(in->path, &data, &len, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  in->buf = data;
  if (pe_npy_parse_any(in->buf, len, &in->x, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s: %s", in->path, err);
    return PE_EXIT_FAIL;
  }
  static const char *const names[] = {"", "float32", "",      "", "",
                                      "", "",        "int64", "", "bool"};
  if (in->x.dtype != t->dtype) {
    pe_cli_error(cmd, "%s is %s; the model input '%s' takes %s", in->path,
                 names[in->x.dtype], t->name, names[t->dtype]);
    return PE_EXIT_FAIL;
  }
  const pe_npy_t *x = &in->x;
  in->exact = t->batch_axis < 0 && x->rank == t->rank;
  for (int d = 0; in->exact && d < t->rank; d++) {
    in->exact = x->shape[d] == t->dims[d];
  }
  int64_t per = 1;
  for (int d = 1; d < x->rank; d++) {
    per *= x->shape[d];
  }
  in->stacked = !in->exact && t->batch_axis < 0 && x->rank == t->rank + 1;
  if (in->exact) {
    in->batch = 1;
  } else if (x->rank >= 1 && per == t->numel && x->shape[0] >= 1 &&
             x->shape[0] <= UINT32_MAX) {
    in->batch = (uint32_t)x->shape[0];
  } else {
    pe_cli_error(cmd,
                 "%s: shape does not fit the model input '%s': it takes "
                 "[N, ...] with %lld values per window",
                 in->path, t->name, (long long)t->numel);
    return PE_EXIT_FAIL;
  }
  size_t bytes = (size_t)x->count * (t->dtype == PE_MODEL_INT64  ? 8
                                     : t->dtype == PE_MODEL_BOOL ? 1
                                                                 : 4);
  in->copy = malloc(bytes + 8);
  if (in->copy == NULL) {
    pe_cli_error(cmd, "out of memory");
    return PE_EXIT_FAIL;
  }
  memcpy(in->copy, x->data, bytes);
  return PE_EXIT_OK;
}

/* The cpu backend path: every model input from --input NAME=FILE (or one
 * plain FILE), the first output written to out_path. */
static int pe__infer_cpu(const pe_cli_command_t *cmd, const char *model,
                         const pe_model_options_t *opts, char **given,
                         int n_given, const char *out_path) {
  char err[512];
  pe_model_t *m = NULL;
  if (pe_model_load_file(model, opts, &m, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  if (opts->all_outputs) {
    struct stat st;
    if (stat(out_path, &st) != 0 || !S_ISDIR(st.st_mode)) {
      pe_cli_error(cmd, "--all-outputs: --output '%s' must be a folder",
                   out_path);
      pe_model_destroy(m);
      return PE_EXIT_USAGE;
    }
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  pe__infer_in_t in[PE_MODEL_MAX_IO];
  memset(in, 0, sizeof in);
  int rc = PE_EXIT_OK;
  for (int k = 0; k < n_given && rc == PE_EXIT_OK; k++) {
    const char *path;
    int i = pe__infer_match(d, given[k], &path, n_given);
    if (i < 0 || in[i].path != NULL) {
      char names[256] = "none";
      names[0] = d->n_inputs > 0 ? '\0' : names[0];
      for (int j = 0; j < d->n_inputs; j++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", j ? ", " : "",
                 d->inputs[j].name);
      }
      pe_cli_error(cmd,
                   "--input %s: %s; the model's inputs are %s: give each "
                   "once as --input NAME=FILE.npy",
                   given[k], i < 0 ? "names no input" : "given twice", names);
      rc = PE_EXIT_USAGE;
      break;
    }
    in[i].path = path;
    rc = pe__infer_read(cmd, &d->inputs[i], &in[i]);
  }
  /* a model without a runtime input (its outputs constants) runs once */
  uint32_t batch = d->n_inputs == 0 ? 1 : 0;
  int exact = 1, stacked = in[0].stacked;
  for (int i = 0; i < d->n_inputs && rc == PE_EXIT_OK; i++) {
    if (in[i].path == NULL) {
      pe_cli_error(cmd, "the model input '%s' is not given (--input %s=FILE)",
                   d->inputs[i].name, d->inputs[i].name);
      rc = PE_EXIT_USAGE;
    } else if (batch != 0 && in[i].batch != batch) {
      pe_cli_error(cmd, "%s holds %u windows but %s holds %u", in[i].path,
                   in[i].batch, in[0].path, batch);
      rc = PE_EXIT_FAIL;
    }
    batch = in[i].batch;
    exact &= in[i].exact;
  }
  const int n_out = opts->all_outputs ? d->n_outputs : 1;
  float *out[PE_MODEL_MAX_IO] = {0};
  pe_model_ctx_t *ctx = NULL;
  if (rc == PE_EXIT_OK) {
    const void *ptrs[PE_MODEL_MAX_IO];
    for (int i = 0; i < d->n_inputs; i++) {
      ptrs[i] = in[i].copy;
    }
    int ok = pe_model_ctx_create(m, batch, &ctx) == PE_OK;
    for (int k = 0; k < n_out; k++) {
      out[k] = malloc(
          (size_t)batch * (size_t)d->outputs[k].numel * sizeof(float) + 1);
      ok &= out[k] != NULL;
    }
    if (!ok || pe_model_run_outputs(ctx, ptrs, d->n_inputs, batch, out,
                                    n_out) != PE_OK) {
      pe_cli_error(cmd, "cannot run the model (out of memory)");
      rc = PE_EXIT_FAIL;
    }
  }
  for (int k = 0; k < n_out && rc == PE_EXIT_OK; k++) {
    /* the output's shape: the batch first, or for a model without a batch
     * dimension the declared shape (one window given as declared), [N,
     * ...the declared shape] (windows given so), or [N, ...] with the
     * leading 1 replaced (windows given as [N, ...] for [1, ...]) */
    const pe_model_tensor_t *o = &d->outputs[k];
    int64_t oshape[PE_NPY_MAX_RANK + 1];
    int orank = 0;
    if (!(o->batch_axis < 0 && exact)) {
      oshape[orank++] = batch;
    }
    for (int i = o->batch_axis < 0 && !exact && !stacked && o->rank > 0 &&
                 o->dims[0] == 1;
         i < o->rank && orank < PE_NPY_MAX_RANK; i++) {
      if (i != o->batch_axis) {
        oshape[orank++] = o->dims[i];
      }
    }
    char path[4096];
    if (opts->all_outputs) {
      snprintf(path, sizeof path, "%s/output_%d.npy", out_path, k);
    }
    rc = pe__write_npy(cmd, opts->all_outputs ? path : out_path, oshape, orank,
                       out[k], (size_t)batch * (size_t)o->numel, o->dtype);
  }
  for (int i = 0; i < PE_MODEL_MAX_IO; i++) {
    free(in[i].buf);
    free(in[i].copy);
    free(out[i]);
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
  return rc;
}

static int pe__infer_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  const char *in_path = pe_cli_flag(cmd, "input")->value;
  const char *out_path = pe_cli_flag(cmd, "output")->value;
  /* the cpu backend names each missing input itself (a model may have
   * none) */
  const int cpu = strcmp(pe_cli_value(cmd, "backend"), "cpu") == 0;
  if (n_pos != 1 || (in_path == NULL && !cpu) || out_path == NULL) {
    pe_cli_error(cmd, "usage: infer MODEL --input X.npy --output Y.npy");
    return PE_EXIT_USAGE;
  }
  /* --input and --bind may be repeated (NAME=FILE.npy, one per model
   * input) */
  char *given[PE_MODEL_MAX_IO], *bind[PE_MODEL_MAX_IO];
  int n_given = 0, n_bind = 0;
  for (int i = 1; i < argc; i++) {
    int is_bind =
        strcmp(argv[i], "--bind") == 0 || strncmp(argv[i], "--bind=", 7) == 0;
    const char *flag = is_bind ? "--bind" : "--input";
    size_t fl = strlen(flag);
    char *v = strcmp(argv[i], flag) == 0 && i + 1 < argc ? argv[++i]
              : strncmp(argv[i], flag, fl) == 0 && argv[i][fl] == '='
                  ? argv[i] + fl + 1
                  : NULL;
    int *n = is_bind ? &n_bind : &n_given;
    if (v != NULL && *n == PE_MODEL_MAX_IO) {
      pe_cli_error(cmd, "more than %d %s", PE_MODEL_MAX_IO, flag);
      return PE_EXIT_USAGE;
    }
    if (v != NULL) {
      (is_bind ? bind : given)[(*n)++] = v;
    }
  }
  pe_model_options_t opts;
  if ((rc = pe_cli_kernels(cmd, &opts)) != PE_EXIT_OK) {
    return rc;
  }
  const char *backend = pe_cli_value(cmd, "backend");
  if (strcmp(backend, "cpu") == 0) {
    pe__infer_binds_t bs;
    memset(&bs, 0, sizeof bs);
    rc = pe__infer_binds_read(cmd, bind, n_bind, &bs);
    if (rc == PE_EXIT_OK) {
      opts.binds = bs.b;
      opts.n_binds = bs.n;
      opts.all_outputs = pe_cli_flag(cmd, "all-outputs")->value != NULL;
      rc = pe__infer_cpu(cmd, pos[0], &opts, given, n_given, out_path);
    }
    for (int k = 0; k < bs.n; k++) {
      free(bs.buf[k]);
    }
    return rc;
  }
  if (n_given != 1 || n_bind > 0 ||
      pe_cli_flag(cmd, "all-outputs")->value != NULL) {
    pe_cli_error(cmd,
                 "backend %s takes one --input, no --bind or "
                 "--all-outputs",
                 backend);
    return PE_EXIT_USAGE;
  }
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
  pe_backend_t *be = NULL;
  float *in = NULL, *out = NULL;
  int64_t in_per, out_per, oshape[PE_NPY_MAX_RANK];
  int orank;
  {
    pe_backend_options_t bo;
    memset(&bo, 0, sizeof bo);
    bo.model_path = pos[0];
    bo.model_features = pe_cli_flag(cmd, "model-features")->value;
    bo.max_batch = 1;
    bo.mode = pe_cli_value(cmd, "cuda-mode");
    bo.precision = pe_cli_value(cmd, "precision");
    if (pe_cli_cuda_memory(cmd, &bo.device_memory_bytes) != PE_EXIT_OK) {
      rc = PE_EXIT_USAGE;
      goto done;
    }
    int brc = pe_backend_open(backend, &bo, &be, err, sizeof err);
    if (brc != PE_OK) {
      pe_cli_error(cmd, "%s%s", err, pe_cli_backend_hint(brc, &bo));
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
  for (uint32_t b = 0; b < batch; b++) {
    if (pe_backend_run(be, in + (size_t)b * (size_t)in_per, 1,
                       out + (size_t)b * (size_t)out_per) != PE_OK) {
      pe_cli_error(cmd, "%s", pe_backend_errmsg(be));
      goto done;
    }
  }
  for (int i = 0; i < orank; i++) {
    if (oshape[i] < 0) {
      oshape[i] = batch;
    }
  }
  rc = pe__write_npy(cmd, out_path, oshape, orank, out,
                     (size_t)batch * (size_t)out_per, PE_MODEL_FLOAT32);
done:
  free(buf);
  free(in);
  free(out);
  pe_backend_close(be);
  return rc;
}

const pe_cli_command_t pe_cli_infer = {
    .name = "infer",
    .summary =
        "Run a model on a float32 .npy batch and write the outputs as .npy",
    .usage = "infer MODEL --input [NAME=]X.npy... --output Y.npy [FLAGS]",
    .details =
        "X.npy is float32, C order, batch first: for a Conv1d model taking\n"
        "[N, C, W], an array of shape (N, C, W) (any shape with C*W values\n"
        "per window is accepted). Y.npy gets the model's first output with\n"
        "the batch size filled in, e.g. (N, 2). A model with several inputs\n"
        "takes one --input NAME=FILE.npy for each. A model whose input\n"
        "declares a fixed first dimension has no batch axis: give the\n"
        "declared shape itself (one window) or [N, ...]. --bind NAME=V.npy\n"
        "fixes an input at load (a shape, indices, weights the importer\n"
        "needs as constants); --all-outputs writes every graph output into\n"
        "the folder --output names, as output_K.npy.\n"
        "Check our numbers with\n"
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
