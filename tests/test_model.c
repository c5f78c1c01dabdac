/* Tests of src/model/ and the cpu backend that need no Python: every
 * rejection path names the file, the node and the reason; truncated and
 * unreadable files; the description of a model; tiles and threads give the
 * same numbers; the backend wrapper reads the metadata; .npy round trip.
 * Parity with ONNX Runtime is tests/test_onnx_parity.py. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/backend.h"
#include "pe/error.h"
#include "pe/model.h"
#include "pe/npy.h"

#ifndef PE_TEST_MODELS_DIR
#define PE_TEST_MODELS_DIR "tests/models"
#endif

static int failures;
#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);    \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const char *model_path(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", PE_TEST_MODELS_DIR, name);
  return buf[k];
}

/* Loads a bad model and checks that the one-line message holds every
 * expected fragment. */
static void expect_reject(const char *file, int want_rc,
                          const char *const *frags) {
  const char *path = model_path(file);
  pe_model_t *m = NULL;
  char err[512];
  int rc = pe_model_load_file(path, NULL, &m, err, sizeof err);
  if (rc == PE_OK || m != NULL) {
    fprintf(stderr, "%s: loaded, expected a rejection\n", file);
    failures++;
    pe_model_destroy(m);
    return;
  }
  if (want_rc != 0 && rc != want_rc) {
    fprintf(stderr, "%s: rc %s, expected %s (%s)\n", file, pe_errname(rc),
            pe_errname(want_rc), err);
    failures++;
  }
  if (strstr(err, path) == NULL || strchr(err, '\n') != NULL) {
    fprintf(stderr, "%s: message does not start with the file: %s\n", file,
            err);
    failures++;
  }
  for (const char *const *f = frags; *f; f++) {
    if (strstr(err, *f) == NULL) {
      fprintf(stderr, "%s: message lacks '%s': %s\n", file, *f, err);
      failures++;
    }
  }
}

static void test_rejections(void) {
  expect_reject("bad/unknown_op.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"node 1 (act0, Hardmax)",
                                      "unsupported op 'Hardmax'",
                                      "supported ops: Conv, Gemm", NULL});
  expect_reject("bad/bad_attr.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"node 0 (conv0, Conv)",
                                      "unsupported attribute 'foo'",
                                      "supports: auto_pad,dilations", NULL});
  expect_reject("bad/conv3d.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"node 0 (conv3d, Conv)",
                                      "only 1-D and 2-D convolution", NULL});
  expect_reject("bad/dynamic_dim.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"dynamic dimension 'features' at axis 1",
                                      "only the batch dimension",
                                      "used by node 0 (flat, Flatten)", NULL});
  expect_reject("bad/wrong_dtype.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"graph input 'input' is double",
                                      "only float32",
                                      "used by node 0 (flat, Flatten)", NULL});
  expect_reject("bad/double_weight.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"initializer 'wd' is double",
                                      "only float32",
                                      "used by node 0 (mm64, MatMul)", NULL});
  expect_reject("bad/dangling.onnx", PE_EMODEL,
                (const char *const[]){"node 0 (add0, Add)",
                                      "input 1 'ghost' is dangling", NULL});
  expect_reject("bad/opset.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"opset 9", "opsets 11 to 28", NULL});
  expect_reject(
      "bad/ir_version.onnx", PE_EUNSUPPORTED,
      (const char *const[]){"IR version 15", "versions 3 to 14", NULL});
  expect_reject("bad/external_data.onnx", PE_EIO,
                (const char *const[]){
                    "initializer 'wx'", "external data file 'weights.bin'",
                    "cannot open it", "used by node 0 (mm_ext, MatMul)", NULL});
  expect_reject("bad/batch_reshape.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"node 0 (reshape_all, Reshape)",
                                      "merge or split the batch", NULL});
  expect_reject("bad/lstm_clip.onnx", PE_EUNSUPPORTED,
                (const char *const[]){"node 1 (lstm_clip, LSTM)",
                                      "clip and input_forget", NULL});
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void test_bad_files(void) {
  pe_model_t *m = NULL;
  char err[512];
  CHECK(pe_model_load_file("/nonexistent/dir/x.onnx", NULL, &m, err,
                           sizeof err) == PE_EIO);
  CHECK(m == NULL);
  CHECK(strstr(err, "/nonexistent/dir/x.onnx: cannot read the model") != NULL);
  CHECK(pe_model_load_buffer("", 0, "empty.onnx", NULL, &m, err, sizeof err) ==
        PE_ECORRUPT);
  CHECK(strstr(err, "empty.onnx: the file is empty") != NULL);

  size_t len = 0;
  unsigned char *b = read_file(model_path("cnn_toy.onnx"), &len);
  CHECK(b != NULL && len > 1000);
  if (b == NULL) {
    return;
  }
  /* cut in the middle of the weights: protobuf itself fails */
  int rc =
      pe_model_load_buffer(b, len / 2, "half.onnx", NULL, &m, err, sizeof err);
  CHECK(rc == PE_ECORRUPT);
  CHECK(strstr(err, "half.onnx: not a valid ONNX protobuf (truncated") != NULL);
  /* every other cut must fail cleanly too (some cuts land on a field
   * boundary and fail later, in validation) */
  int loaded = 0;
  for (size_t cut = 0; cut < len; cut += 97) {
    rc = pe_model_load_buffer(b, cut, "cut.onnx", NULL, &m, err, sizeof err);
    CHECK(rc != PE_OK || m != NULL);
    loaded += rc == PE_OK;
    CHECK(strncmp(err, "cut.onnx: ", 10) == 0 || rc == PE_OK);
    pe_model_destroy(m);
    m = NULL;
  }
  CHECK(loaded == 0);
  /* a flipped byte anywhere: no crash (ASan builds check the rest) */
  for (size_t i = 0; i < len; i += 13) {
    b[i] ^= 0x5a;
    rc = pe_model_load_buffer(b, len, "flip.onnx", NULL, &m, err, sizeof err);
    pe_model_destroy(m);
    m = NULL;
    b[i] ^= 0x5a;
  }
  free(b);
}

/* The external data of bad/external_data.onnx (MatMul by wx, 8x4 floats
 * in 'weights.bin') supplied from memory. */
static float ext_w[32];
static char ext_loc[64];
static size_t ext_len = sizeof ext_w;

static int ext_data(void *ctx, const char *loc, const void **data, size_t *len,
                    char *why, size_t why_cap) {
  (void)why;
  (void)why_cap;
  snprintf(ext_loc, sizeof ext_loc, "%s", loc);
  *data = ctx;
  *len = ext_len;
  return PE_OK;
}

static void test_external_from_memory(void) {
  size_t len = 0;
  unsigned char *b = read_file(model_path("bad/external_data.onnx"), &len);
  CHECK(b != NULL);
  if (b == NULL) {
    return;
  }
  pe_model_t *m = NULL;
  char err[512];
  /* a buffer alone has no folder to find the data in */
  int rc = pe_model_load_buffer(b, len, "mem.onnx", NULL, &m, err, sizeof err);
  CHECK(rc == PE_EUNSUPPORTED && m == NULL);
  CHECK(strstr(err, "mem.onnx: initializer 'wx'") != NULL);
  CHECK(strstr(err, "memory buffer") != NULL);
  for (int k = 0; k < 32; k++) {
    ext_w[k] = (float)(k % 7) - 2.5f;
  }
  /* a short blob is refused, naming the tensor */
  ext_len = sizeof ext_w - 4;
  rc = pe_model_load_buffer_data(b, len, "mem.onnx", NULL, ext_data, ext_w, &m,
                                 err, sizeof err);
  CHECK(rc == PE_EMODEL && m == NULL);
  CHECK(strstr(err, "initializer 'wx': external data holds 124 bytes") != NULL);
  ext_len = sizeof ext_w;
  rc = pe_model_load_buffer_data(b, len, "mem.onnx", NULL, ext_data, ext_w, &m,
                                 err, sizeof err);
  CHECK(rc == PE_OK);
  CHECK(strcmp(ext_loc, "weights.bin") == 0);
  free(b);
  if (rc != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  pe_model_ctx_t *ctx = NULL;
  CHECK(pe_model_ctx_create(m, 4, &ctx) == PE_OK);
  float x[2][8], y[2][4];
  for (int i = 0; i < 16; i++) {
    x[i / 8][i % 8] = (float)i * 0.25f - 1.0f;
  }
  CHECK(pe_model_run(ctx, &x[0][0], 2, &y[0][0]) == PE_OK);
  for (int n = 0; n < 2; n++) {
    for (int j = 0; j < 4; j++) {
      double want = 0;
      for (int k = 0; k < 8; k++) {
        want += (double)x[n][k] * ext_w[k * 4 + j];
      }
      CHECK(fabs(y[n][j] - want) < 1e-5);
    }
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
}

/* Several runtime inputs: described, refused by pe_model_run, run by
 * pe_model_run_inputs (y = a + 2 * b). */
static void test_two_inputs(void) {
  pe_model_t *m = NULL;
  char err[512];
  int rc = pe_model_load_file(model_path("multi/two_inputs.onnx"), NULL, &m,
                              err, sizeof err);
  CHECK(rc == PE_OK);
  if (rc != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  CHECK(d->n_inputs == 2 && d->opset == 20);
  CHECK(strcmp(d->inputs[0].name, "a") == 0 &&
        strcmp(d->inputs[1].name, "b") == 0);
  CHECK(strcmp(d->input.name, "a") == 0);
  CHECK(d->inputs[1].dtype == PE_MODEL_FLOAT32 && d->inputs[1].numel == 4 &&
        d->inputs[1].batch_axis == 0 && d->inputs[1].dims[0] == -1);
  pe_model_ctx_t *ctx = NULL;
  CHECK(pe_model_ctx_create(m, 2, &ctx) == PE_OK);
  float a[12], b[12], y[12];
  for (int i = 0; i < 12; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)(i % 5) - 1.0f;
    y[i] = -99.0f;
  }
  CHECK(pe_model_run(ctx, a, 3, y) == PE_EINVAL);
  const void *ins[2] = {a, b};
  CHECK(pe_model_run_inputs(ctx, ins, 1, 3, y) == PE_EINVAL);
  CHECK(pe_model_run_inputs(ctx, ins, 2, 3, y) == PE_OK);
  for (int i = 0; i < 12; i++) {
    CHECK(y[i] == a[i] + 2.0f * b[i]);
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
}

static void test_describe(void) {
  pe_model_t *m = NULL;
  char err[512];
  int rc =
      pe_model_load_file(model_path("cnn_toy.onnx"), NULL, &m, err, sizeof err);
  CHECK(rc == PE_OK);
  if (rc != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  CHECK(d->opset == 17);
  CHECK(d->input.rank == 3 && d->input.dims[0] == -1 && d->input.dims[1] == 1 &&
        d->input.dims[2] == 32 && d->input.numel == 32);
  CHECK(strcmp(d->input.name, "input") == 0);
  CHECK(d->n_outputs == 1 && d->outputs[0].numel == 2);
  CHECK(strcmp(pe_model_meta(m, "pe.features"), "return_z") == 0);
  CHECK(pe_model_meta(m, "nope") == NULL);
  /* [N, 1, 32] with pe.window=32: one channel of 32 steps */
  CHECK(d->layout == PE_MODEL_LAYOUT_NCW && d->window == 32 &&
        d->channels == 1);
  CHECK(strstr(d->layout_note, "pe.window=32") != NULL);
  CHECK(strcmp(pe_model_layout_name(d->layout), "NCW") == 0 &&
        strcmp(pe_model_layout_name(PE_MODEL_LAYOUT_NWC), "NWC") == 0 &&
        strcmp(pe_model_layout_name(PE_MODEL_LAYOUT_N1WC), "N1WC") == 0 &&
        strcmp(pe_model_layout_name(PE_MODEL_LAYOUT_NONE), "none") == 0 &&
        strcmp(pe_model_layout_name((pe_model_layout_t)99), "none") == 0);
  /* Conv+Relu, Conv+Relu, Gemm: 2*(8*32*3) + 2*(16*32*24) + 2*512*2 + relus */
  CHECK(d->n_steps == 3);
  CHECK(d->flops ==
        2 * 8 * 32 * 3 + 8 * 32 + 2 * 16 * 32 * 24 + 16 * 32 + 2 * 512 * 2);
  char line[256];
  CHECK(pe_model_step_describe(m, 0, line, sizeof line) > 0);
  CHECK(strstr(line, "Conv+Relu") != NULL &&
        strstr(line, "Nx1x32 -> Nx8x32") != NULL);
  CHECK(pe_model_step_describe(m, 3, line, sizeof line) == PE_EINVAL);
  pe_model_ctx_t *ctx = NULL;
  CHECK(pe_model_ctx_create(m, 1, &ctx) == PE_OK);
  float x[32] = {0}, y[2];
  CHECK(pe_model_run(ctx, x, 0, y) == PE_EINVAL);
  CHECK(pe_model_run(ctx, NULL, 1, y) == PE_EINVAL);
  pe_model_ctx_destroy(ctx);
  pe_model_ctx_destroy(NULL);
  pe_model_destroy(m);
  pe_model_destroy(NULL);
}

typedef struct job {
  pe_model_t *m;
  const float *in;
  float *out;
  uint32_t batch;
  int rc;
} job_t;

static void *job_run(void *arg) {
  job_t *j = arg;
  pe_model_ctx_t *ctx = NULL;
  j->rc = pe_model_ctx_create(j->m, 16, &ctx);
  for (int rep = 0; rep < 20 && j->rc == PE_OK; rep++) {
    j->rc = pe_model_run(ctx, j->in, j->batch, j->out);
  }
  pe_model_ctx_destroy(ctx);
  return NULL;
}

/* One window at a time, the whole batch at once (several tiles), two
 * threads sharing the model, generic and AVX2 kernels: the same numbers. */
static void test_batches(const char *name, pe_kernels_t kernels) {
  pe_model_t *m = NULL, *mg = NULL;
  char err[512];
  pe_model_options_t gen = {.kernels = PE_KERNELS_GENERIC};
  pe_model_options_t opt = {.kernels = kernels};
  if (pe_model_load_file(model_path(name), &opt, &m, err, sizeof err) !=
          PE_OK ||
      pe_model_load_file(model_path(name), &gen, &mg, err, sizeof err) !=
          PE_OK) {
    fprintf(stderr, "%s: %s\n", name, err);
    failures++;
    pe_model_destroy(m);
    return;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  const uint32_t B = 700;
  size_t ni = (size_t)d->input.numel, no = (size_t)d->outputs[0].numel;
  float *in = malloc(B * ni * sizeof(float));
  float *one = malloc(B * no * sizeof(float));
  float *all = malloc(B * no * sizeof(float));
  float *thr = malloc(B * no * sizeof(float));
  float *ggen = malloc(B * no * sizeof(float));
  uint64_t s = 12345;
  for (size_t i = 0; i < B * ni; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    in[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
  }
  pe_model_ctx_t *c1 = NULL, *cb = NULL, *cg = NULL;
  CHECK(pe_model_ctx_create(m, 1, &c1) == PE_OK);
  CHECK(pe_model_ctx_create(m, B, &cb) == PE_OK);
  CHECK(pe_model_ctx_create(mg, 5, &cg) == PE_OK);
  for (uint32_t b = 0; b < B; b++) {
    CHECK(pe_model_run(c1, in + b * ni, 1, one + b * no) == PE_OK);
  }
  CHECK(pe_model_run(cb, in, B, all) == PE_OK);
  CHECK(pe_model_run(cg, in, B, ggen) == PE_OK);
  job_t j[2] = {{m, in, thr, B, 0}, {m, in, all == thr ? one : thr, B, 0}};
  float *thr2 = malloc(B * no * sizeof(float));
  j[1].out = thr2;
  pthread_t t[2];
  for (int k = 0; k < 2; k++) {
    pthread_create(&t[k], NULL, job_run, &j[k]);
  }
  for (int k = 0; k < 2; k++) {
    pthread_join(t[k], NULL);
    CHECK(j[k].rc == PE_OK);
  }
  double worst = 0, worst_gen = 0;
  int same_thr = 1;
  for (size_t i = 0; i < B * no; i++) {
    worst = fmax(worst, fabs((double)one[i] - (double)all[i]));
    worst_gen = fmax(worst_gen, fabs((double)ggen[i] - (double)all[i]));
    same_thr &= thr[i] == all[i] && thr2[i] == all[i];
  }
  /* the kernels sum in the same order whatever a window's position in the
   * batch, so tiles and threads give identical bits */
  if (worst != 0.0 || worst_gen > 1e-5 || !same_thr) {
    fprintf(stderr,
            "%s (%s): batch-1 vs batch %u diff %g, generic vs these %g, "
            "threads %s\n",
            name, d->kernels, B, worst, worst_gen,
            same_thr ? "same" : "differ");
    failures++;
  }
  pe_model_ctx_destroy(c1);
  pe_model_ctx_destroy(cb);
  pe_model_ctx_destroy(cg);
  free(in);
  free(one);
  free(all);
  free(thr);
  free(thr2);
  free(ggen);
  pe_model_destroy(m);
  pe_model_destroy(mg);
}

static void test_backend(void) {
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  o.model_path = model_path("cnn_toy.onnx");
  o.max_batch = 4;
  pe_backend_t *b = NULL;
  char err[512];
  int rc = pe_backend_open("cpu", &o, &b, err, sizeof err);
  CHECK(rc == PE_OK);
  if (rc == PE_OK) {
    const pe_model_info_t *info = pe_backend_info(b);
    CHECK(info->window == 32 && info->n_features == 1 && info->n_outputs == 2);
    CHECK(info->n_classes == 2 && info->output == PE_OUTPUT_LOGITS);
    CHECK(strcmp(info->feature_name[0], "return_z") == 0);
    CHECK(strcmp(info->class_name[1], "spike") == 0);
    CHECK(strcmp(info->input_name, "input") == 0);
    float x[4 * 32] = {0}, y[8];
    CHECK(pe_backend_run(b, x, 4, y) == PE_OK);
    CHECK(isfinite(y[0]) && y[0] == y[6]);
    pe_backend_close(b);
  } else {
    fprintf(stderr, "%s\n", err);
  }
  /* no pe.features: refused, then accepted with a feature list */
  o.model_path = model_path("mlp_gemm.onnx");
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_EINVAL);
  CHECK(strstr(err, "need a model feature list") != NULL);
  o.model_features = "log_return";
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_OK);
  pe_backend_close(b);
  /* conv_odd declares 4 features and probs */
  o.model_path = model_path("conv_odd.onnx");
  o.model_features = NULL;
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_OK);
  if (b != NULL) {
    CHECK(pe_backend_info(b)->n_features == 4 &&
          pe_backend_info(b)->window == 37);
    CHECK(pe_backend_info(b)->output == PE_OUTPUT_PROBS);
  }
  pe_backend_close(b);
  o.model_path = NULL;
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_EINVAL);
  CHECK(strstr(err, "no model path") != NULL);
  /* pe.window is read whole: a suffix or a count past 2^32 is refused, not
   * cut to the 32 the input holds */
  const char *windows[] = {"bad/window_suffix.onnx", "bad/window_wraps.onnx"};
  for (int i = 0; i < 2; i++) {
    o.model_path = model_path(windows[i]);
    b = NULL;
    CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_ESHAPE);
    CHECK(b == NULL);
    CHECK(strstr(err, "pe.window=") != NULL &&
          strstr(err, "not a positive whole number") != NULL);
    pe_backend_close(b);
  }
}

/* A batch_first LSTM ([N, W, C], pe.layout NWC) through the cpu backend:
 * the engine's [C, W] windows, 100 of them in tiles of 3, give ONNX
 * Runtime's outputs on the same windows as [W, C] (the zoo's committed
 * inputs and outputs). */
static void test_backend_nwc(void) {
  size_t xl = 0, yl = 0;
  unsigned char *xb =
      read_file(model_path("../../models/zoo/lstm2.inputs.npy"), &xl);
  unsigned char *yb =
      read_file(model_path("../../models/zoo/lstm2.legacy17.outputs.npy"), &yl);
  pe_npy_t x, y;
  char err[512];
  CHECK(xb != NULL && yb != NULL);
  if (xb == NULL || yb == NULL ||
      pe_npy_parse(xb, xl, &x, err, sizeof err) != PE_OK ||
      pe_npy_parse(yb, yl, &y, err, sizeof err) != PE_OK) {
    CHECK(!"the zoo's lstm2 inputs and outputs parse");
    free(xb);
    free(yb);
    return;
  }
  enum { M = 100, W = 32, C = 5, K = 5 };
  CHECK(x.rank == 3 && x.shape[0] == M && x.shape[1] == W && x.shape[2] == C);
  CHECK(y.rank == 2 && y.shape[0] == M && y.shape[1] == K);
  static float ncw[M * C * W], out[M * K];
  const unsigned char *xd = x.data;
  for (int n = 0; n < M; n++) {
    for (int t = 0; t < W; t++) {
      for (int c = 0; c < C; c++) {
        memcpy(&ncw[(n * C + c) * W + t], xd + 4 * ((n * W + t) * C + c), 4);
      }
    }
  }
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  o.model_path = model_path("../../models/zoo/lstm2.legacy17.onnx");
  o.max_batch = 3;
  pe_backend_t *b = NULL;
  int rc = pe_backend_open("cpu", &o, &b, err, sizeof err);
  CHECK(rc == PE_OK);
  if (rc == PE_OK) {
    const pe_model_info_t *info = pe_backend_info(b);
    CHECK(info->window == W && info->n_features == C && info->n_outputs == K);
    CHECK(pe_backend_run(b, ncw, M, out) == PE_OK);
    double worst = 0;
    const unsigned char *yd = y.data;
    for (int i = 0; i < M * K; i++) {
      float ref;
      memcpy(&ref, yd + 4 * i, 4);
      worst = fmax(worst, fabs((double)out[i] - ref));
    }
    CHECK(worst <= 1e-5);
  } else {
    fprintf(stderr, "%s\n", err);
  }
  pe_backend_close(b);
  /* batches split over threads (opts.threads): the same bits as one run,
   * whatever the batch, shares of one window and empty shares included
   * (5 windows over 4 shares of 2), and a backend opened again and again
   * closes its threads each time */
  static float thr[M * K];
  const struct {
    uint32_t threads, max_batch, batch;
  } split[] = {{3, M, M}, {4, 5, 5},   {4, 5, 2},
               {4, 5, 1}, {2, 64, 37}, {8, 3, 3}};
  for (size_t i = 0; i < sizeof split / sizeof split[0]; i++) {
    o.threads = split[i].threads;
    o.max_batch = split[i].max_batch;
    b = NULL;
    rc = pe_backend_open("cpu", &o, &b, err, sizeof err);
    CHECK(rc == PE_OK);
    if (rc != PE_OK) {
      fprintf(stderr, "%s\n", err);
      continue;
    }
    int same = 1;
    for (uint32_t b0 = 0; b0 < M; b0 += split[i].batch) {
      const uint32_t n = M - b0 < split[i].batch ? M - b0 : split[i].batch;
      CHECK(pe_backend_run(b, ncw + (size_t)b0 * C * W, n,
                           thr + (size_t)b0 * K) == PE_OK);
    }
    same = memcmp(thr, out, sizeof thr) == 0;
    CHECK(same);
    if (!same) {
      fprintf(stderr, "threads %u, batches of %u: other bits than one run\n",
              split[i].threads, split[i].batch);
    }
    pe_backend_close(b);
  }
  o.threads = 65;
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_EINVAL &&
        strstr(err, "65 threads") != NULL);
  free(xb);
  free(yb);
}

/* The kernels are a choice passed in (no environment is read): the summary
 * and the model's plan follow it, and an unknown name is refused. */
static void test_backend_kernels(void) {
  const pe_backend_ops_t *cpu = pe_backend_find("cpu");
  CHECK(cpu != NULL);
  if (cpu == NULL) {
    return;
  }
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  char line[256];
  o.kernels = "generic";
  cpu->summary(&o, line, sizeof line);
  CHECK(strcmp(line,
               "ONNX models (opsets 11-28) on the CPU; kernels generic") == 0);
  cpu->summary(NULL, line, sizeof line);
  CHECK(strstr(line, "; kernels ") != NULL && strstr(line, "unknown") == NULL);
  o.model_path = model_path("cnn_toy.onnx");
  o.kernels = "sse9";
  pe_backend_t *b = NULL;
  char err[512];
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_EINVAL);
  CHECK(b == NULL && strstr(err, "sse9") != NULL);
  o.kernels = "generic";
  CHECK(pe_backend_open("cpu", &o, &b, err, sizeof err) == PE_OK);
  pe_backend_close(b);
  pe_kernels_t k = PE_KERNELS_AVX2;
  CHECK(pe_kernels_parse("avx512", &k) == PE_OK && k == PE_KERNELS_AVX512);
  CHECK(pe_kernels_parse("AVX2", &k) == PE_EINVAL && k == PE_KERNELS_AVX512);
}

static void test_npy(void) {
  int64_t shape[3] = {3, 1, 32};
  char hdr[256];
  size_t hl = pe_npy_header(hdr, sizeof hdr, shape, 3);
  CHECK(hl == 64 || hl == 128);
  CHECK(hl % 64 == 0 && hdr[hl - 1] == '\n');
  size_t len = hl + 96 * 4;
  unsigned char *f = calloc(1, len);
  memcpy(f, hdr, hl);
  float v = 1.5f;
  memcpy(f + hl + 4, &v, 4);
  pe_npy_t a;
  char err[256];
  CHECK(pe_npy_parse(f, len, &a, err, sizeof err) == PE_OK);
  CHECK(a.rank == 3 && a.shape[0] == 3 && a.shape[2] == 32 && a.count == 96);
  float got;
  memcpy(&got, (const unsigned char *)a.data + 4, 4);
  CHECK(got == 1.5f);
  CHECK(pe_npy_parse(f, len - 1, &a, err, sizeof err) == PE_ECORRUPT);
  CHECK(strstr(err, "truncated") != NULL);
  char *descr = strstr((char *)f + 10, "<f4");
  CHECK(descr != NULL);
  if (descr == NULL) {
    free(f);
    return;
  }
  memcpy(descr, "<f8", 3);
  CHECK(pe_npy_parse(f, len, &a, err, sizeof err) == PE_EUNSUPPORTED);
  CHECK(strstr(err, "float32") != NULL);
  CHECK(pe_npy_parse("junk", 4, &a, err, sizeof err) == PE_EPARSE);
  free(f);
}

/* Inputs the fuzzer once crashed on: each must load or be refused cleanly
 * (and run, when it loads). */
static void test_regressions(void) {
  const char *files[] = {"regress/fuzz_control_chars.onnx",
                         "regress/fuzz_output_is_input.onnx",
                         "regress/fuzz_matmul_missing_input.onnx"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    pe_model_t *m = NULL;
    char err[512];
    int rc =
        pe_model_load_file(model_path(files[i]), NULL, &m, err, sizeof err);
    if (rc != PE_OK) {
      CHECK(m == NULL && strchr(err, '\n') == NULL);
      continue;
    }
    const pe_model_desc_t *d = pe_model_desc(m);
    pe_model_ctx_t *ctx = NULL;
    float *in = calloc((size_t)d->input.numel * 3 + 1, sizeof(float));
    float *out = calloc((size_t)d->outputs[0].numel * 3 + 1, sizeof(float));
    CHECK(pe_model_ctx_create(m, 2, &ctx) == PE_OK);
    CHECK(pe_model_run(ctx, in, 3, out) == PE_OK);
    pe_model_ctx_destroy(ctx);
    free(in);
    free(out);
    pe_model_destroy(m);
  }
  /* A MatMul with one input: refused by name, before its builder reads the
   * missing weight. */
  pe_model_t *m = NULL;
  char err[512];
  CHECK(pe_model_load_file(model_path("regress/fuzz_matmul_missing_input.onnx"),
                           NULL, &m, err, sizeof err) == PE_EMODEL);
  CHECK(m == NULL && strstr(err, "MatMul") != NULL &&
        strstr(err, "input 1 is missing; MatMul needs 2") != NULL);
}

int main(void) {
  test_rejections();
  test_regressions();
  test_bad_files();
  test_external_from_memory();
  test_two_inputs();
  test_describe();
  const char *models[] = {"cnn_toy.onnx",          "mlp_gemm.onnx",
                          "conv_odd.onnx",         "gru.onnx",
                          "gru_lbr0.onnx",         "lstm.onnx",
                          "lstm_batch_first.onnx", "lstm_state.onnx",
                          "mlp_matmul.onnx",       "misc_ops.onnx"};
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
    test_batches(models[i], PE_KERNELS_AUTO);
    test_batches(models[i], PE_KERNELS_AVX2);
  }
  test_backend();
  test_backend_kernels();
  test_backend_nwc();
  test_npy();
  if (failures) {
    fprintf(stderr, "test_model: %d failures\n", failures);
    return 1;
  }
  printf("test_model: ok\n");
  return 0;
}
