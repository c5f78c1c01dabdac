/* Running out of memory while loading a model (src/model/): the allocation
 * functions of this executable fail the Nth call, for every N from the first
 * allocation of a load to the last. Each load must either refuse with an
 * error and free everything it took, or succeed with a model that computes
 * what a load with memory to spare computes (within 1e-5: a fusion the
 * plan skips for want of memory rounds differently); never a model with a
 * piece missing. Not built with sanitizers, which bring their own
 * allocator. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/model.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);
void *aligned_alloc(size_t al, size_t n);
int posix_memalign(void **out, size_t al, size_t n);

static uint64_t n_calls;  /* allocation calls so far */
static uint64_t fail_at;  /* the call that fails; 0: none */
static int64_t n_live;    /* blocks allocated and not freed */
static uint64_t n_failed; /* calls failed on purpose */

static int pe__fail_now(void) {
  n_calls++;
  if (fail_at != 0 && n_calls == fail_at) {
    n_failed++;
    return 1;
  }
  return 0;
}

static void *pe__count(void *p) {
  if (p != NULL) {
    n_live++;
  }
  return p;
}

void *malloc(size_t n) {
  return pe__fail_now() ? NULL : pe__count(__libc_malloc(n));
}
void *calloc(size_t a, size_t b) {
  return pe__fail_now() ? NULL : pe__count(__libc_calloc(a, b));
}
void *realloc(void *p, size_t n) {
  if (pe__fail_now()) {
    return NULL;
  }
  void *q = __libc_realloc(p, n);
  if (p == NULL && q != NULL) {
    n_live++;
  }
  return q;
}
void free(void *p) {
  if (p != NULL) {
    n_live--;
  }
  __libc_free(p);
}
void *aligned_alloc(size_t al, size_t n) {
  return pe__fail_now() ? NULL : pe__count(__libc_memalign(al, n));
}
int posix_memalign(void **out, size_t al, size_t n) {
  if (pe__fail_now()) {
    return 12;
  }
  *out = pe__count(__libc_memalign(al, n));
  return *out ? 0 : 12;
}

#ifndef PE_TEST_MODELS_DIR
#define PE_TEST_MODELS_DIR "tests/models"
#endif

#define PE__BATCH 3

static float in_buf[PE__BATCH * 4096], want[PE__BATCH * 64],
    got[PE__BATCH * 64];

/* Loads data and runs PE__BATCH windows into out; PE_OK or why not. */
static int pe__load_run(const void *data, size_t len, const char *name,
                        float *out, size_t *n_out, char *err, size_t cap) {
  pe_model_t *m = NULL;
  int rc = pe_model_load_buffer(data, len, name, NULL, &m, err, cap);
  if (rc != PE_OK) {
    return rc;
  }
  pe_model_ctx_t *ctx = NULL;
  const pe_model_desc_t *d = pe_model_desc(m);
  *n_out = (size_t)d->outputs[0].numel * PE__BATCH;
  rc = d->input.numel > 4096 || d->outputs[0].numel > 64
           ? PE_EINVAL
           : pe_model_ctx_create(m, PE__BATCH, &ctx);
  if (rc == PE_OK) {
    rc = pe_model_run(ctx, in_buf, PE__BATCH, out);
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(m);
  return rc;
}

/* a[i] within 1e-5 of b[i] (relative, or absolute near zero), every i. */
static int pe__close(const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float tol = 1e-5f * (fabsf(b[i]) > 1.0f ? fabsf(b[i]) : 1.0f);
    if (!(fabsf(a[i] - b[i]) <= tol)) {
      return 0;
    }
  }
  return 1;
}

static int check_model(const char *file) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/%s", PE_TEST_MODELS_DIR, file);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot open\n", path);
    return 1;
  }
  static char data[1 << 20];
  size_t len = fread(data, 1, sizeof data, f);
  fclose(f);
  size_t n_want = 0, n_got = 0;
  uint64_t c0 = n_calls;
  if (pe__load_run(data, len, file, want, &n_want, err, sizeof err) != PE_OK) {
    fprintf(stderr, "%s: %s\n", file, err);
    return 1;
  }
  uint64_t calls = n_calls - c0;
  int fails = 0, refused = 0, survived = 0;
  for (uint64_t k = 1; k <= calls; k++) {
    int64_t live = n_live;
    memset(got, 0, sizeof got);
    err[0] = '\0';
    c0 = n_calls;
    fail_at = n_calls + k;
    uint64_t failed = n_failed;
    int rc = pe__load_run(data, len, file, got, &n_got, err, sizeof err);
    fail_at = 0;
    if (n_failed == failed) {
      continue; /* the load made fewer calls this time */
    }
    if (n_live != live) {
      fprintf(stderr, "%s: failing allocation %llu: %lld blocks leaked\n", file,
              (unsigned long long)k, (long long)(n_live - live));
      fails++;
    }
    if (rc != PE_OK) {
      refused++;
      if (err[0] == '\0' && rc != PE_ENOMEM) {
        fprintf(stderr, "%s: failing allocation %llu: %s without a message\n",
                file, (unsigned long long)k, pe_errname(rc));
        fails++;
      }
      continue;
    }
    survived++;
    if (n_got != n_want || !pe__close(got, want, n_want)) {
      fprintf(stderr,
              "%s: failing allocation %llu: the load succeeded but the model "
              "computes other numbers\n",
              file, (unsigned long long)k);
      fails++;
    }
  }
  printf("%-24s %llu allocations: %d loads refused, %d recovered, %d wrong\n",
         file, (unsigned long long)calls, refused, survived, fails);
  return fails;
}

int main(void) {
  for (size_t i = 0; i < sizeof in_buf / sizeof in_buf[0]; i++) {
    in_buf[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
  }
  static const char *const models[] = {
      "cnn_toy.onnx",  "mlp_gemm.onnx",    "mlp_matmul.onnx",   "conv_odd.onnx",
      "lstm.onnx",     "lstm_state.onnx",  "gru.onnx",          "gru_lbr0.onnx",
      "misc_ops.onnx", "conv2d_pool.onnx", "bilstm_stack.onnx", "deeplob.onnx",
      "bn_conv.onnx"};
  int fails = 0;
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
    fails += check_model(models[i]);
  }
  printf("test_model_oom: %s\n", fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}
