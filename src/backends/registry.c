/* The list of backends compiled into this build, and the handle wrapper
 * that opens one and resolves its model's features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "pe/error.h"
#include "pe/features.h"

/* One list: a backend is added here and in backends/backends.h. */
static const pe_backend_ops_t *const pe__backends[] = {
    &pe_backend_stub_ops,
#ifdef PE_HAVE_BACKEND_CPU
    &pe_backend_cpu_ops,
#endif
#ifdef PE_HAVE_BACKEND_CUDA
    &pe_backend_cuda_ops,
#endif
#ifdef PE_HAVE_BACKEND_TENSORRT
    &pe_backend_tensorrt_ops,
#endif
};

#define PE__BACKEND_COUNT (sizeof pe__backends / sizeof pe__backends[0])

struct pe_backend {
  const pe_backend_ops_t *ops;
  void *self;
  pe_model_info_t info;
};

size_t pe_backend_count(void) { return PE__BACKEND_COUNT; }

const pe_backend_ops_t *pe_backend_at(size_t index) {
  return index < PE__BACKEND_COUNT ? pe__backends[index] : NULL;
}

const pe_backend_ops_t *pe_backend_find(const char *name) {
  for (size_t i = 0; i < PE__BACKEND_COUNT; i++) {
    if (strcmp(pe__backends[i]->name, name) == 0) {
      return pe__backends[i];
    }
  }
  return NULL;
}

/* Fills info->feature from the override list or the declared names. */
static int pe__resolve_features(pe_model_info_t *info, const char *override,
                                const char *what, char *err, size_t err_cap) {
  int idx[PE_MODEL_MAX_FEATURES];
  if (override != NULL) {
    int bad = 0;
    int n = pe_feature_parse_list(override, idx, PE_MODEL_MAX_FEATURES, &bad);
    if (n < 0) {
      snprintf(err, err_cap,
               "%s: --model-features: %s (feature %d of the list); the names "
               "are in docs/features.md",
               what, n == PE_ENOENT ? "unknown feature name" : pe_strerror(n),
               bad + 1);
      return PE_EINVAL;
    }
    if ((uint32_t)n != info->n_features) {
      snprintf(err, err_cap,
               "%s: --model-features names %d features but the model takes %u "
               "channels",
               what, n, info->n_features);
      return PE_ESHAPE;
    }
    for (int c = 0; c < n; c++) {
      info->feature[c] = idx[c];
      snprintf(info->feature_name[c], sizeof info->feature_name[c], "%s",
               pe_feature_name(idx[c]));
    }
    return PE_OK;
  }
  for (uint32_t c = 0; c < info->n_features; c++) {
    const char *name = info->feature_name[c];
    if (name[0] == '\0') {
      snprintf(
          err, err_cap,
          "%s: the model declares no input features (metadata pe.features);"
          " name its %u channels with --model-features a,b,...",
          what, info->n_features);
      return PE_EINVAL;
    }
    int f = pe_feature_find(name, strlen(name));
    if (f < 0) {
      snprintf(err, err_cap,
               "%s: the model asks for feature '%s' (channel %u), which the "
               "engine does not compute; the names are in docs/features.md",
               what, name, c);
      return PE_EUNSUPPORTED;
    }
    info->feature[c] = f;
  }
  return PE_OK;
}

int pe_backend_open(const char *name, const pe_backend_options_t *opts,
                    pe_backend_t **out, char *err, size_t err_cap) {
  *out = NULL;
  const pe_backend_ops_t *ops = pe_backend_find(name);
  if (ops == NULL) {
    int n =
        snprintf(err, err_cap, "unknown backend '%s'; this build has:", name);
    for (size_t i = 0; i < PE__BACKEND_COUNT && n > 0 && (size_t)n < err_cap;
         i++) {
      n += snprintf(err + n, err_cap - (size_t)n, " %s", pe__backends[i]->name);
    }
    return PE_ENOENT;
  }
  if (ops->abi_version != PE_BACKEND_ABI_VERSION) {
    snprintf(err, err_cap, "backend '%s' has interface version %u, not %u",
             name, ops->abi_version, PE_BACKEND_ABI_VERSION);
    return PE_EVERSION;
  }
  pe_backend_t *b = calloc(1, sizeof *b);
  if (b == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  b->ops = ops;
  int rc = ops->open(opts, &b->self, err, err_cap);
  if (rc == PE_OK) {
    rc = ops->describe(b->self, &b->info);
    if (rc != PE_OK) {
      snprintf(err, err_cap, "%s", ops->errmsg(b->self));
    }
  }
  if (rc == PE_OK) {
    const char *what = opts->model_path ? opts->model_path : name;
    if (b->info.n_features == 0 || b->info.n_features > PE_MODEL_MAX_FEATURES ||
        b->info.window == 0) {
      snprintf(err, err_cap,
               "%s: the model input must be [batch, channels <= %d, window]",
               what, PE_MODEL_MAX_FEATURES);
      rc = PE_ESHAPE;
    } else {
      rc = pe__resolve_features(&b->info, opts->model_features, what, err,
                                err_cap);
    }
  }
  if (rc != PE_OK) {
    if (b->self != NULL) {
      ops->close(b->self);
    }
    free(b);
    return rc;
  }
  *out = b;
  return PE_OK;
}

const pe_model_info_t *pe_backend_info(const pe_backend_t *backend) {
  return &backend->info;
}

const char *pe_backend_name(const pe_backend_t *backend) {
  return backend->ops->name;
}

int pe_backend_run(pe_backend_t *backend, const float *in, uint32_t batch,
                   float *out) {
  return backend->ops->run(backend->self, in, batch, out);
}

const char *pe_backend_errmsg(const pe_backend_t *backend) {
  return backend->ops->errmsg(backend->self);
}

void pe_backend_close(pe_backend_t *backend) {
  if (backend == NULL) {
    return;
  }
  backend->ops->close(backend->self);
  free(backend);
}
