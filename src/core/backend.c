/* The backend handle (include/pe/backend.h): one backend's ops table and
 * instance, opened and described once, with the model's features resolved
 * to the engine's feature indices. The engine reaches a model only through
 * this handle; which backends exist is the registry's business
 * (src/backends/registry.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/backend.h"
#include "pe/error.h"
#include "pe/features.h"

struct pe_backend {
  const pe_backend_ops_t *ops;
  void *self;
  pe_model_info_t info;
};

/* Fills info->feature from the override list or the declared names. */
static int pe__resolve_features(pe_model_info_t *info, const char *override,
                                const char *what, char *err, size_t err_cap) {
  int idx[PE_MODEL_MAX_FEATURES];
  if (override != NULL) {
    int bad = 0;
    int n = pe_feature_parse_list(override, idx, PE_MODEL_MAX_FEATURES, &bad);
    if (n < 0) {
      snprintf(err, err_cap,
               "%s: the model feature list: %s (feature %d of the list); the "
               "names are in docs/features.md",
               what, n == PE_ENOENT ? "unknown feature name" : pe_strerror(n),
               bad + 1);
      return PE_EINVAL;
    }
    if ((uint32_t)n != info->n_features) {
      snprintf(err, err_cap,
               "%s: the model feature list names %d features but the model "
               "takes %u channels",
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
      snprintf(err, err_cap,
               "%s: the model declares no input features (metadata "
               "pe.features); its %u channels need a model feature list",
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

int pe_backend_open_ops(const pe_backend_ops_t *ops,
                        const pe_backend_options_t *opts, pe_backend_t **out,
                        char *err, size_t err_cap) {
  *out = NULL;
  if (ops->abi_version != PE_BACKEND_ABI_VERSION) {
    snprintf(err, err_cap, "backend '%s' has interface version %u, not %u",
             ops->name, ops->abi_version, PE_BACKEND_ABI_VERSION);
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
    const char *what = opts->model_path ? opts->model_path : ops->name;
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

void pe_backend_detail(const pe_backend_t *backend, char *buf, size_t cap) {
  if (cap == 0) {
    return;
  }
  buf[0] = '\0';
  if (backend->ops->detail != NULL) {
    backend->ops->detail(backend->self, buf, cap);
  }
}

int pe_backend_serialize(pe_backend_t *backend, void **data, size_t *len,
                         char *err, size_t err_cap) {
  *data = NULL;
  *len = 0;
  if (backend->ops->serialize == NULL) {
    snprintf(err, err_cap, "the %s backend cannot write what it loaded",
             backend->ops->name);
    return PE_EUNSUPPORTED;
  }
  return backend->ops->serialize(backend->self, data, len, err, err_cap);
}

void *pe_backend_host_alloc(pe_backend_t *backend, size_t bytes) {
  if (backend->ops->host_alloc == NULL) {
    return malloc(bytes > 0 ? bytes : 1);
  }
  return backend->ops->host_alloc(backend->self, bytes);
}

void pe_backend_host_free(pe_backend_t *backend, void *p) {
  if (p == NULL) {
    return;
  }
  if (backend->ops->host_free == NULL) {
    free(p);
  } else {
    backend->ops->host_free(backend->self, p);
  }
}

int pe_backend_phases(const pe_backend_t *backend, pe_backend_phases_t *out) {
  return backend->ops->phases != NULL ? backend->ops->phases(backend->self, out)
                                      : PE_EUNSUPPORTED;
}

void pe_backend_close(pe_backend_t *backend) {
  if (backend == NULL) {
    return;
  }
  backend->ops->close(backend->self);
  free(backend);
}
