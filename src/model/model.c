/* The public model API (include/pe/model.h): load, describe, plan text.
 *
 * Load = import (onnx_import.c) + build (build.c) + plan (plan.c). The only
 * I/O of src/model/ is pe_model_load_file's read of the whole file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

static const char *const pe__kind_names[PE__K_COUNT] = {
    "copy", "conv1d", "dense", "matmul", "unary", "binary", "softmax",
    "strided_copy", "gather", "concat", "affine", "pool1d", "reduce_mean",
    "lstm", "gru",
    /* ops_misc.c, ops_attention.c */
    "elementwise", "reduce", "pad", "where", "layernorm", "attention"};

static void pe__tensor_desc(const pe__tensor_t *t, pe_model_tensor_t *d) {
  snprintf(d->name, sizeof d->name, "%s", t->name);
  d->rank = t->rank;
  d->batch_axis = t->batch_axis;
  d->numel = t->numel;
  for (int i = 0; i < t->rank && i < PE_MODEL_MAX_RANK; i++) {
    d->dims[i] = i == t->batch_axis ? -1 : t->dims[i];
  }
}

/* Kernel level: the best the CPU has, capped by opts or PE_CPU_KERNELS. */
int pe__kernels_level(pe_kernels_t k) {
  if (k == PE_KERNELS_AUTO) {
    const char *env = getenv("PE_CPU_KERNELS");
    k = env == NULL                   ? PE_KERNELS_AUTO
        : strcmp(env, "generic") == 0 ? PE_KERNELS_GENERIC
        : strcmp(env, "avx2") == 0    ? PE_KERNELS_AVX2
        : strcmp(env, "avx512") == 0  ? PE_KERNELS_AVX512
                                      : PE_KERNELS_AUTO;
  }
  int best = pe__kernels_avx512_usable() ? 2
             : pe__kernels_avx2_usable() ? 1
                                         : 0;
  int cap = k == PE_KERNELS_GENERIC ? 0 : k == PE_KERNELS_AVX2 ? 1 : 2;
  return best < cap ? best : cap;
}

const char *pe__kernels_name(int level) {
  return level >= 2 ? "avx512+fma" : level == 1 ? "avx2+fma" : "generic";
}

int pe_model_load_buffer(const void *data, size_t len, const char *name,
                         const pe_model_options_t *opts, pe_model_t **out,
                         char *err, size_t err_cap) {
  *out = NULL;
  if (err_cap > 0) {
    err[0] = '\0';
  }
  pe_model_t *m = calloc(1, sizeof *m);
  if (m == NULL) {
    snprintf(err, err_cap, "%s: out of memory", name);
    return PE_ENOMEM;
  }
  /* the level first: the plan sizes scratch for its kernels */
  m->avx2 = pe__kernels_level(opts ? opts->kernels : PE_KERNELS_AUTO);
  pe__graph_t *g = &m->g;
  g->path = name ? name : "<buffer>";
  g->err = m->err;
  g->err_cap = sizeof m->err;
  void *proto = NULL;
  int rc = pe__onnx_import(g, data, len, &proto);
  if (rc == PE_OK) {
    rc = pe__build(m);
  }
  pe__onnx_free(proto);
  for (int i = 0; i < g->n_node; i++) {
    g->node[i].proto = NULL;
    g->node[i].name = "";
    g->node[i].op = "";
  }
  if (rc == PE_OK) {
    rc = pe__plan(m);
  }
  if (rc != PE_OK) {
    if (m->err[0] == '\0') {
      snprintf(m->err, sizeof m->err, "%s: %s", g->path, pe_strerror(rc));
    }
    /* names come from the file: keep the message on one printable line */
    for (char *c = m->err; *c; c++) {
      if ((unsigned char)*c < 0x20 || *c == 0x7f) {
        *c = '?';
      }
    }
    snprintf(err, err_cap, "%s", m->err);
    pe_model_destroy(m);
    return rc;
  }
  pe_model_desc_t *d = &m->info;
  d->ir_version = g->ir_version;
  d->opset = g->opset;
  d->producer = g->producer;
  pe__tensor_desc(&g->t[g->input], &d->input);
  d->n_outputs = g->n_outputs;
  for (int i = 0; i < g->n_outputs; i++) {
    pe__tensor_desc(&g->t[g->outputs[i]], &d->outputs[i]);
  }
  d->n_meta = g->n_meta;
  for (int i = 0; i < g->n_meta; i++) {
    d->meta_key[i] = g->meta_key[i];
    d->meta_value[i] = g->meta_val[i];
  }
  d->n_steps = m->n_step;
  d->flops = m->flops;
  d->arena_floats = m->arena_ps;
  d->kernels = pe__kernels_name(m->avx2);
  g->path = "";
  *out = m;
  return PE_OK;
}

int pe_model_load_file(const char *path, const pe_model_options_t *opts,
                       pe_model_t **out, char *err, size_t err_cap) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, err_cap, "%s: cannot read the model: %s", path,
             strerror(errno));
    return PE_EIO;
  }
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = malloc(cap);
  int rc = buf ? PE_OK : PE_ENOMEM;
  while (rc == PE_OK) {
    if (len == cap) {
      if (cap >= ((size_t)1 << 31)) {
        snprintf(err, err_cap, "%s: the model is larger than 2 GiB", path);
        rc = PE_EUNSUPPORTED;
        break;
      }
      unsigned char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        rc = PE_ENOMEM;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      if (ferror(f)) {
        snprintf(err, err_cap, "%s: cannot read the model: %s", path,
                 strerror(errno));
        rc = PE_EIO;
      }
      break;
    }
  }
  fclose(f);
  if (rc == PE_ENOMEM) {
    snprintf(err, err_cap, "%s: out of memory", path);
  }
  if (rc == PE_OK) {
    rc = pe_model_load_buffer(buf, len, path, opts, out, err, err_cap);
  }
  free(buf);
  return rc;
}

void pe_model_destroy(pe_model_t *m) {
  if (m == NULL) {
    return;
  }
  pe__steps_free(m);
  pe__graph_free(&m->g);
  free(m);
}

const pe_model_desc_t *pe_model_desc(const pe_model_t *m) { return &m->info; }

const char *pe_model_meta(const pe_model_t *m, const char *key) {
  for (int i = 0; i < m->g.n_meta; i++) {
    if (strcmp(m->g.meta_key[i], key) == 0) {
      return m->g.meta_val[i];
    }
  }
  return NULL;
}

static int pe__dims_str(const pe__tensor_t *t, char *buf, size_t cap) {
  int n = 0;
  buf[0] = '\0';
  for (int d = 0; d < t->rank; d++) {
    int w = snprintf(buf + n, cap - (size_t)n, "%s%s", d ? "x" : "",
                     d == t->batch_axis ? "N" : "");
    if (w < 0 || (size_t)(n + w) >= cap) {
      break;
    }
    n += w;
    if (d != t->batch_axis) {
      w = snprintf(buf + n, cap - (size_t)n, "%lld", (long long)t->dims[d]);
      if (w < 0 || (size_t)(n + w) >= cap) {
        break;
      }
      n += w;
    }
  }
  if (t->rank == 0) {
    snprintf(buf, cap, "scalar");
  }
  return n;
}

int pe_model_step_describe(const pe_model_t *m, int i, char *buf, size_t cap) {
  if (i < 0 || i >= m->n_step) {
    return PE_EINVAL;
  }
  const pe__step_t *s = &m->step[i];
  char in[64] = "-", out[64] = "-", extra[128] = "";
  if (s->n_in > 0 && s->in[0] >= 0) {
    pe__dims_str(&m->g.t[s->in[0]], in, sizeof in);
  }
  int o = s->out[0] >= 0 ? s->out[0] : (s->out[1] >= 0 ? s->out[1] : s->out[2]);
  if (o >= 0) {
    pe__dims_str(&m->g.t[o], out, sizeof out);
  }
  switch (s->kind) {
  case PE__K_CONV1D:
    snprintf(extra, sizeof extra, " k%lld s%lld d%lld pad %lld/%lld g%lld",
             (long long)s->p[3], (long long)s->p[4], (long long)s->p[5],
             (long long)s->p[6], (long long)s->p[7], (long long)s->p[2]);
    break;
  case PE__K_DENSE:
    snprintf(extra, sizeof extra, " %lldx%lld weights%s", (long long)s->p[1],
             (long long)s->p[2],
             s->d.dot ? " (dot layout)" : " (16-col panels)");
    break;
  case PE__K_LSTM:
  case PE__K_GRU:
    snprintf(extra, sizeof extra, " seq %lld hidden %lld", (long long)s->p[0],
             (long long)s->p[2]);
    break;
  default:
    break;
  }
  const char *node = "";
  (void)node;
  return snprintf(buf, cap, "%-12s %-40s %s -> %s%s, %lld flops",
                  pe__kind_names[s->kind], s->label, in, out, extra,
                  (long long)s->flops);
}
