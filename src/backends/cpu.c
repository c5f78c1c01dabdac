/* The `cpu` backend: an ONNX model run by src/model/ on this CPU.
 *
 * open loads the model (validation, plan, packed weights) and creates one
 * context; run is pe_model_run, which allocates nothing. The engine passes
 * windows as [batch][channel][time]; the model's input may hold them as
 * [N, C, W] (or [N, C*W]), [N, W, C] or [N, 1, W, C], the layout the model
 * API recognised at load (pe_model_desc_t.layout). For the last two, run
 * transposes each window into [time][channel] in a buffer sized at open,
 * a tile of windows at a time. Its first output is [batch, values].
 * What the engine needs comes from the model's metadata_props:
 *   pe.features  comma-separated feature names, one per channel
 *   pe.window    window length (checked against the input shape)
 *   pe.layout    NCW, NWC or N1WC, where the shape cannot tell
 *   pe.classes   comma-separated class names, one per output value
 *   pe.output    logits | probs | raw (default logits with classes, else raw)
 * A model without pe.features is opened with a feature list
 * (pe_backend_options_t.model_features), which the handle applies
 * (src/core/backend.c). opts->kernels picks the kernels ("generic", "avx2",
 * "avx512"; NULL for the best the CPU has). opts->threads above 1 splits
 * each batch of two windows or more into that many shares (at most one
 * a window), run at once: the caller's thread takes the first, threads
 * started at open the others, each with its own context and buffer over
 * the one loaded model. A window's scores do not depend on its batch
 * (the kernels sum in the same order wherever it sits), so the shares
 * give the bits of one run. Threads that share a loaded model otherwise
 * use include/pe/model.h directly. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "model/kernel_level.h"
#include "pe/error.h"
#include "pe/model.h"

/* Most windows one run transposes at a time (NWC and N1WC models). */
#define PE__CPU_TILE_MAX 256
/* Most shares a batch is split into (opts->threads). */
#define PE__CPU_THREADS_MAX 64

struct pe__cpu;

/* One share of a batch: its context and transpose buffer, and (set by
 * run) its windows; share 0 is the caller's. */
typedef struct pe__cpu_share {
  struct pe__cpu *c;
  pe_model_ctx_t *ctx;
  float *packed; /* tile windows as [time][channel]; NULL for NCW models */
  pthread_t thread;
  const float *in;
  float *out;
  uint32_t n;
  int rc;
} pe__cpu_share_t;

typedef struct pe__cpu {
  pe_model_t *model;
  pe_model_info_t info;
  uint32_t tile;
  uint32_t n_shares;      /* 1 + the threads started */
  uint32_t started;       /* threads started (shares 1 .. started) */
  pe__cpu_share_t *share; /* n_shares of them */
  /* the workers' hand-off: gen counts the batches posted, pending the
   * shares still running, quit asks the threads to leave */
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  uint64_t gen;
  uint32_t pending;
  int quit;
  char errmsg[256];
} pe__cpu_t;

static void pe__cpu_close(void *self);

static int pe__cpu_fail(pe__cpu_t *c, char *err, size_t cap, int rc,
                        const char *path, const char *msg) {
  snprintf(err, cap, "%s: %s", path, msg);
  pe__cpu_close(c);
  return rc;
}

static int pe__cpu_share_run(pe__cpu_share_t *sh);

/* A worker: waits for a batch, runs its share, says so; leaves on quit. */
static void *pe__cpu_worker(void *arg) {
  pe__cpu_share_t *sh = arg;
  pe__cpu_t *c = sh->c;
  uint64_t seen = 0;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (c->gen == seen && !c->quit) {
      pthread_cond_wait(&c->go, &c->mu);
    }
    if (c->quit) {
      break;
    }
    seen = c->gen;
    const int mine = sh->n > 0;
    pthread_mutex_unlock(&c->mu);
    const int rc = mine ? pe__cpu_share_run(sh) : PE_OK;
    pthread_mutex_lock(&c->mu);
    if (mine) {
      sh->rc = rc;
      if (--c->pending == 0) {
        pthread_cond_signal(&c->done);
      }
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* The kernel choice of opts (NULL: the best there is). */
static int pe__cpu_kernels(const pe_backend_options_t *opts,
                           pe_kernels_t *out) {
  *out = PE_KERNELS_AUTO;
  return opts == NULL || opts->kernels == NULL
             ? PE_OK
             : pe_kernels_parse(opts->kernels, out);
}

static int pe__cpu_open(const pe_backend_options_t *opts, void **self,
                        char *err, size_t err_cap) {
  *self = NULL;
  if (opts->model_path == NULL) {
    snprintf(err, err_cap,
             "the cpu backend runs an ONNX model, and no model path was given");
    return PE_EINVAL;
  }
  pe_model_options_t mo = {.kernels = PE_KERNELS_AUTO};
  if (pe__cpu_kernels(opts, &mo.kernels) != PE_OK) {
    snprintf(err, err_cap,
             "cpu backend: kernels '%.60s' are not auto, generic, avx2 or "
             "avx512",
             opts->kernels);
    return PE_EINVAL;
  }
  if (opts->threads > PE__CPU_THREADS_MAX) {
    snprintf(err, err_cap, "cpu backend: %u threads, more than %d",
             opts->threads, PE__CPU_THREADS_MAX);
    return PE_EINVAL;
  }
  pe__cpu_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  const uint32_t max_batch = opts->max_batch ? opts->max_batch : 1;
  const uint32_t want = opts->threads > 1 ? opts->threads : 1;
  c->n_shares = want < max_batch ? want : max_batch;
  c->share = calloc(c->n_shares, sizeof *c->share);
  if (c->share == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
    free(c->share);
    free(c);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  pthread_cond_init(&c->go, NULL);
  pthread_cond_init(&c->done, NULL);
  const char *path = opts->model_path;
  int rc = pe_model_load_file(path, &mo, &c->model, err, err_cap);
  if (rc != PE_OK) {
    pe__cpu_close(c);
    return rc;
  }
  const pe_model_desc_t *d = pe_model_desc(c->model);
  char msg[256];
  rc = pe__backend_model_info(c->model, &c->info, msg, sizeof msg);
  if (rc != PE_OK) {
    return pe__cpu_fail(c, err, err_cap, rc, path, msg);
  }
  /* each share's context holds its part of the largest batch */
  const uint32_t per = (max_batch + c->n_shares - 1) / c->n_shares;
  if (d->layout != PE_MODEL_LAYOUT_NCW) {
    c->tile = per > PE__CPU_TILE_MAX ? PE__CPU_TILE_MAX : per;
  }
  for (uint32_t k = 0; k < c->n_shares && rc == PE_OK; k++) {
    pe__cpu_share_t *sh = &c->share[k];
    sh->c = c;
    rc = pe_model_ctx_create(c->model, per, &sh->ctx);
    if (rc == PE_OK && c->tile > 0) {
      sh->packed =
          malloc((size_t)c->tile * (size_t)d->input.numel * sizeof *sh->packed);
      rc = sh->packed == NULL ? PE_ENOMEM : PE_OK;
    }
  }
  if (rc != PE_OK) {
    return pe__cpu_fail(c, err, err_cap, rc, path, "out of memory");
  }
  for (uint32_t k = 1; k < c->n_shares; k++) {
    if (pthread_create(&c->share[k].thread, NULL, pe__cpu_worker,
                       &c->share[k]) != 0) {
      return pe__cpu_fail(c, err, err_cap, PE_ENOMEM, path,
                          "cannot start the backend's threads");
    }
    c->started = k;
  }
  *self = c;
  return PE_OK;
}

static int pe__cpu_describe(void *self, pe_model_info_t *info) {
  *info = ((pe__cpu_t *)self)->info;
  return PE_OK;
}

/* One window from [channel][time] (the engine's order) to [time][channel]
 * (the order of an NWC or N1WC input). */
static void pe__window_to_wc(const float *src, uint32_t n_channels,
                             uint32_t window, float *dst) {
  for (uint32_t t = 0; t < window; t++) {
    for (uint32_t k = 0; k < n_channels; k++) {
      dst[(size_t)t * n_channels + k] = src[(size_t)k * window + t];
    }
  }
}

/* A share's windows through its context (transposed a tile at a time
 * for NWC and N1WC models). */
static int pe__cpu_share_run(pe__cpu_share_t *sh) {
  const pe__cpu_t *c = sh->c;
  if (sh->packed == NULL || sh->in == NULL || sh->n == 0) {
    return pe_model_run(sh->ctx, sh->in, sh->n, sh->out);
  }
  const uint32_t C = c->info.n_features, W = c->info.window;
  const size_t per = (size_t)C * W;
  int rc = PE_OK;
  for (uint32_t b0 = 0; b0 < sh->n && rc == PE_OK; b0 += c->tile) {
    uint32_t n = sh->n - b0 < c->tile ? sh->n - b0 : c->tile;
    for (uint32_t b = 0; b < n; b++) {
      pe__window_to_wc(sh->in + (b0 + b) * per, C, W, sh->packed + b * per);
    }
    rc = pe_model_run(
        sh->ctx, sh->packed, n,
        sh->out == NULL ? NULL : sh->out + (size_t)b0 * c->info.n_outputs);
  }
  return rc;
}

static int pe__cpu_run(void *self, const float *in, uint32_t batch,
                       float *out) {
  pe__cpu_t *c = self;
  int rc = PE_OK;
  pe__cpu_share_t *s0 = &c->share[0];
  if (c->n_shares < 2 || batch < 2 || in == NULL) {
    s0->in = in;
    s0->n = batch;
    s0->out = out;
    rc = pe__cpu_share_run(s0);
  } else {
    /* shares of equal size but the last, at most one a window */
    const uint32_t k_n = batch < c->n_shares ? batch : c->n_shares;
    const uint32_t per = (batch + k_n - 1) / k_n;
    const size_t w_in = (size_t)c->info.n_features * c->info.window;
    pthread_mutex_lock(&c->mu);
    c->pending = 0;
    for (uint32_t k = 0; k < c->n_shares; k++) {
      pe__cpu_share_t *sh = &c->share[k];
      const uint32_t b0 = k * per < batch ? k * per : batch;
      sh->in = in + (size_t)b0 * w_in;
      sh->out = out == NULL ? NULL : out + (size_t)b0 * c->info.n_outputs;
      sh->n = batch - b0 < per ? batch - b0 : per;
      sh->rc = PE_OK;
      c->pending += k > 0 && sh->n > 0;
    }
    c->gen++;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    rc = pe__cpu_share_run(s0);
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0) {
      pthread_cond_wait(&c->done, &c->mu);
    }
    for (uint32_t k = 1; k < c->n_shares && rc == PE_OK; k++) {
      rc = c->share[k].rc;
    }
    pthread_mutex_unlock(&c->mu);
  }
  if (rc != PE_OK) {
    /* only reached for a bad call; formatting here is off the normal path */
    snprintf(c->errmsg, sizeof c->errmsg, "pe_model_run: %s", pe_strerror(rc));
  }
  return rc;
}

static const char *pe__cpu_errmsg(void *self) {
  return ((pe__cpu_t *)self)->errmsg;
}

static void pe__cpu_close(void *self) {
  pe__cpu_t *c = self;
  if (c == NULL) {
    return;
  }
  pthread_mutex_lock(&c->mu);
  c->quit = 1;
  pthread_cond_broadcast(&c->go);
  pthread_mutex_unlock(&c->mu);
  for (uint32_t k = 1; k <= c->started; k++) {
    pthread_join(c->share[k].thread, NULL);
  }
  for (uint32_t k = 0; k < c->n_shares; k++) {
    pe_model_ctx_destroy(c->share[k].ctx);
    free(c->share[k].packed);
  }
  pthread_cond_destroy(&c->go);
  pthread_cond_destroy(&c->done);
  pthread_mutex_destroy(&c->mu);
  pe_model_destroy(c->model);
  free(c->share);
  free(c);
}

/* Names the kernels this CPU runs for the choice in opts, so that
 * `--version` says it. */
static void pe__cpu_summary(const pe_backend_options_t *opts, char *buf,
                            size_t cap) {
  pe_kernels_t k;
  const pe__kernels_t *t =
      pe__cpu_kernels(opts, &k) == PE_OK ? pe__kernels_pick(k) : NULL;
  snprintf(buf, cap, "ONNX models (opsets 11-28) on the CPU; kernels %s",
           t == NULL ? "(unknown choice)" : pe__kernels_name(t));
}

const pe_backend_ops_t pe_backend_cpu_ops = {
    .abi_version = PE_BACKEND_ABI_VERSION,
    .name = "cpu",
    .summary = pe__cpu_summary,
    .open = pe__cpu_open,
    .describe = pe__cpu_describe,
    .run = pe__cpu_run,
    .errmsg = pe__cpu_errmsg,
    .close = pe__cpu_close,
};
