/* Zero heap allocations per inference after load.
 *
 * This executable defines malloc, calloc, realloc, free, aligned_alloc and
 * posix_memalign itself (forwarding to glibc's __libc_* entry points), so
 * every allocation the library makes is counted. Each test model is loaded,
 * a context created and run once; then thousands of runs at batch 1, 7 and
 * 1000 (several tiles; a hundred times fewer for a model of more than a
 * MFLOP per window) must leave the counter unchanged, through the model
 * API and through the cpu backend of the registry. The models cover every
 * step kind: Conv1d, Conv2d and 2-D pooling, dense, LSTM and GRU in every
 * direction (bilstm_stack), DeepLOB (Conv2d, inception, LSTM). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pe/backend.h"
#include "pe/error.h"
#include "pe/model.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile uint64_t n_alloc;

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);
void *aligned_alloc(size_t al, size_t n);
int posix_memalign(void **out, size_t al, size_t n);

void *malloc(size_t n) {
  n_alloc++;
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  n_alloc++;
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  n_alloc++;
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t al, size_t n) {
  n_alloc++;
  return __libc_memalign(al, n);
}
int posix_memalign(void **out, size_t al, size_t n) {
  n_alloc++;
  *out = __libc_memalign(al, n);
  return *out ? 0 : 12;
}

#ifndef PE_TEST_MODELS_DIR
#define PE_TEST_MODELS_DIR "tests/models"
#endif

static float in_buf[1000 * 4096], out_buf[1000 * 64];

/* 1 when some plan step of m is described with `word` (the kernels a
 * model is here to cover must be in its plan). */
static int plan_has(const pe_model_t *m, const char *word) {
  char line[256];
  for (int i = 0; i < pe_model_desc(m)->n_steps; i++) {
    if (pe_model_step_describe(m, i, line, sizeof line) > 0 &&
        strstr(line, word) != NULL) {
      return 1;
    }
  }
  return 0;
}

static int check_model(const char *name) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/%s", PE_TEST_MODELS_DIR, name);
  pe_model_t *m = NULL;
  if (pe_model_load_file(path, NULL, &m, err, sizeof err) != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  if (d->input.numel > 4096 || d->outputs[0].numel > 64) {
    fprintf(stderr, "%s: too large for the test buffers\n", name);
    pe_model_destroy(m);
    return 1;
  }
  for (size_t i = 0; i < sizeof in_buf / sizeof in_buf[0]; i++) {
    in_buf[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
  }
  pe_model_ctx_t *ctx = NULL;
  int fails = 0;
  if (strstr(name, "transformer") != NULL &&
      (!plan_has(m, "attention") || !plan_has(m, "layernorm"))) {
    fprintf(stderr, "%s: no attention or layernorm step in the plan\n", name);
    fails++;
  }
  if (pe_model_ctx_create(m, 64, &ctx) != PE_OK) {
    pe_model_destroy(m);
    return 1;
  }
  pe_model_run(ctx, in_buf, 1, out_buf);
  uint64_t before = n_alloc;
  const uint32_t batches[3] = {1, 7, 1000};
  /* fewer runs of a large model (DeepLOB: 25 MFLOP per window) */
  const int scale = d->flops > 1000000 ? 100 : 1;
  int runs = 0;
  for (int k = 0; k < 3; k++) {
    int reps = (batches[k] == 1000 ? 20 : 2000) / scale;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++, runs++) {
      if (pe_model_run(ctx, in_buf, batches[k], out_buf) != PE_OK) {
        fails++;
      }
    }
  }
  uint64_t got = n_alloc - before;
  printf("%-24s %llu allocations in %d runs after load\n", name,
         (unsigned long long)got, runs);
  if (got != 0) {
    fails++;
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
  return fails;
}

/* A model with float32, bool and int64 inputs (Cast and Gather by runtime
 * indices) through pe_model_run_inputs. */
static int64_t ids_buf[1000 * 3];
static uint8_t mask_buf[1000 * 4];

static int check_mixed_inputs(void) {
  char err[512];
  pe_model_t *m = NULL;
  if (pe_model_load_file(PE_TEST_MODELS_DIR "/multi/mixed_inputs.onnx", NULL,
                         &m, err, sizeof err) != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  for (size_t i = 0; i < 1000 * 3; i++) {
    ids_buf[i] = (int64_t)(i * 5 % 8) - 2;
  }
  for (size_t i = 0; i < 1000 * 4; i++) {
    mask_buf[i] = (uint8_t)(i % 3 != 0);
  }
  const void *ins[3] = {in_buf, mask_buf, ids_buf};
  pe_model_ctx_t *ctx = NULL;
  int fails = pe_model_ctx_create(m, 64, &ctx) != PE_OK;
  if (!fails) {
    pe_model_run_inputs(ctx, ins, 3, 1, out_buf);
  }
  uint64_t before = n_alloc;
  for (int r = 0; !fails && r < 200; r++) {
    fails +=
        pe_model_run_inputs(ctx, ins, 3, r % 2 ? 1000 : 7, out_buf) != PE_OK;
  }
  uint64_t got = n_alloc - before;
  printf("%-24s %llu allocations in 200 runs after load\n", "mixed_inputs",
         (unsigned long long)got);
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
  return fails + (got != 0);
}

/* Through the cpu backend: runs of 1 and 7 windows (the second in tiles of
 * max_batch, each transposed first for an NWC model), split over threads
 * where threads > 1 (the counter counts every thread's allocations). */
static int check_backend(const char *path, uint32_t max_batch,
                         uint32_t threads) {
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  o.model_path = path;
  o.max_batch = max_batch;
  o.threads = threads;
  pe_backend_t *b = NULL;
  char err[512];
  if (pe_backend_open("cpu", &o, &b, err, sizeof err) != PE_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const pe_model_info_t *info = pe_backend_info(b);
  size_t per = (size_t)info->window * info->n_features;
  int fails = pe_backend_run(b, in_buf, 7, out_buf) != PE_OK;
  uint64_t before = n_alloc;
  for (int r = 0; r < 10000; r++) {
    fails += pe_backend_run(b, in_buf + (size_t)(r % 64) * per, r % 2 ? 1 : 7,
                            out_buf) != PE_OK;
  }
  uint64_t got = n_alloc - before;
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  printf("backend cpu %-12s threads %u: %llu allocations in 10000 runs after "
         "open\n",
         name, threads, (unsigned long long)got);
  pe_backend_close(b);
  return fails + (got != 0);
}

int main(void) {
  const char *models[] = {
      "cnn_toy.onnx", "mlp_gemm.onnx", "conv_odd.onnx", "gru.onnx",
      "gru_lbr0.onnx", "lstm.onnx", "lstm_batch_first.onnx", "lstm_state.onnx",
      "mlp_matmul.onnx", "misc_ops.onnx", "conv2d_pool.onnx",
      "bilstm_stack.onnx", "deeplob.onnx",
      /* BatchNormalization folded into the convolution after it */
      "bn_conv.onnx",
      /* the fused attention step, LayerNormalization,
         Split and Where */
      "transformer_tiny.onnx", "transformer_packed_masked.onnx",
      /* PyTorch's nn.TransformerEncoderLayer from both exporters: the
         batch merged inside the rows, the attention fused */
      "../../models/zoo/transformer.legacy17.onnx",
      "../../models/zoo/transformer.default.onnx"};
  int fails = 0;
  uint64_t a0 = n_alloc;
  fails += check_model(models[0]);
  if (n_alloc == a0) {
    fprintf(stderr, "the allocation counter saw nothing: not interposed\n");
    return 1;
  }
  for (size_t i = 1; i < sizeof models / sizeof models[0]; i++) {
    fails += check_model(models[i]);
  }
  fails += check_mixed_inputs();
  fails += check_backend(PE_TEST_MODELS_DIR "/cnn_toy.onnx", 1, 1);
  /* input [N, 32, 5] (NWC, from pe.layout): the backend transposes */
  fails += check_backend(
      PE_TEST_MODELS_DIR "/../../models/zoo/lstm2.legacy17.onnx", 4, 1);
  fails += check_backend(PE_TEST_MODELS_DIR "/cnn_toy.onnx", 8, 3);
  fails += check_backend(
      PE_TEST_MODELS_DIR "/../../models/zoo/lstm2.legacy17.onnx", 8, 2);
  printf("test_model_alloc: %s\n", fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}
