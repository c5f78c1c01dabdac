/* The public model API (include/pe/model.h): load, describe, plan text.
 *
 * Load = import (onnx_import.c) + build (build.c) + plan (plan.c). The only
 * I/O of src/model/ is here: pe_model_load_file's read of the model file
 * and the mapping of its external data files, once each, for the load. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_impl.h"
#include "pe/error.h"

static const char *const pe__kind_names[PE__K_COUNT] = {
    "copy", "conv1d", "dense", "matmul", "unary", "binary", "softmax",
    "strided_copy", "gather", "concat", "affine", "pool1d", "reduce_mean",
    "lstm", "gru", "cast", "gather_rt", "conv2d", "pool2d",
    /* ops_misc.c, ops_attention.c */
    "elementwise", "reduce", "pad", "where", "layernorm", "attention"};

static void pe__tensor_desc(const pe__tensor_t *t, pe_model_tensor_t *d) {
  snprintf(d->name, sizeof d->name, "%s", t->name);
  d->rank = t->rank;
  d->batch_axis = t->batch_axis;
  d->numel = t->numel;
  d->dtype = t->dtype;
  for (int i = 0; i < t->rank && i < PE_MODEL_MAX_RANK; i++) {
    d->dims[i] = i == t->batch_axis ? -1 : t->dims[i];
  }
}

int pe_kernels_parse(const char *name, pe_kernels_t *out) {
  static const char *const names[] = {"auto", "generic", "avx2", "avx512"};
  static const pe_kernels_t kinds[] = {PE_KERNELS_AUTO, PE_KERNELS_GENERIC,
                                       PE_KERNELS_AVX2, PE_KERNELS_AVX512};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(name, names[i]) == 0) {
      *out = kinds[i];
      return PE_OK;
    }
  }
  return PE_EINVAL;
}

const pe__kernels_t *pe__kernels_pick(pe_kernels_t k) {
  const pe__kernels_t *best = pe__kernels_avx512_usable() ? &pe__kernels_avx512
                              : pe__kernels_avx2_usable()
                                  ? &pe__kernels_avx2
                                  : &pe__kernels_generic;
  const pe__kernels_t *cap = k == PE_KERNELS_GENERIC ? &pe__kernels_generic
                             : k == PE_KERNELS_AVX2  ? &pe__kernels_avx2
                                                     : &pe__kernels_avx512;
  return best->level < cap->level ? best : cap;
}

/* ---- the input as a feature window ----------------------------------------
 */

static const char *const pe__layout_names[] = {"none", "NCW", "NWC", "N1WC"};

const char *pe_model_layout_name(pe_model_layout_t layout) {
  return layout >= PE_MODEL_LAYOUT_NCW && layout <= PE_MODEL_LAYOUT_N1WC
             ? pe__layout_names[layout]
             : "none";
}

/* One reading of the input: the layout, and the window length and feature
 * count it gives. */
typedef struct pe__window_fit {
  pe_model_layout_t layout;
  int64_t w, c;
} pe__window_fit_t;

/* The tensor's shape as "[N, 5, 32]" into buf. */
static void pe__shape_text(const pe_model_tensor_t *t, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (int d = 0; d <= t->rank && n < cap; d++) {
    int w = d == t->rank     ? snprintf(buf + n, cap - n, "]")
            : t->dims[d] < 0 ? snprintf(buf + n, cap - n, "%sN", d ? ", " : "[")
                             : snprintf(buf + n, cap - n, "%s%lld",
                                        d ? ", " : "[", (long long)t->dims[d]);
    if (w < 0) {
      return;
    }
    n += (size_t)w;
  }
}

/* The readings of the input's shape that the engine can feed: [N, C, W] or
 * [N, W, C] for rank 3, [N, 1, W, C] for rank 4, [N, C*W] for rank 2 (split
 * by pe.window, else by the feature count, else one channel). Returns how
 * many (0 to 2). */
static int pe__window_fits(const pe_model_tensor_t *in, int64_t win,
                           int64_t feats, pe__window_fit_t fit[2]) {
  const int64_t *d = in->dims;
  if (in->rank == 2) {
    int64_t c = 1;
    if (d[1] > 0 && win > 0 && d[1] % win == 0) {
      c = d[1] / win;
    } else if (d[1] > 0 && win == 0 && feats > 0 && d[1] % feats == 0) {
      c = feats;
    }
    fit[0] = (pe__window_fit_t){PE_MODEL_LAYOUT_NCW, d[1] / c, c};
    return 1;
  }
  if (in->rank == 3) {
    fit[0] = (pe__window_fit_t){PE_MODEL_LAYOUT_NCW, d[2], d[1]};
    fit[1] = (pe__window_fit_t){PE_MODEL_LAYOUT_NWC, d[1], d[2]};
    return 2;
  }
  if (in->rank == 4 && d[1] == 1) {
    fit[0] = (pe__window_fit_t){PE_MODEL_LAYOUT_N1WC, d[2], d[3]};
    return 1;
  }
  return 0;
}

/* Recognises how the model's input holds a feature window (see
 * pe_model_layout_t): pe.layout when present, checked against the shape and
 * the metadata; else the readings of the shape that agree with pe.window
 * and the count of pe.features, which must be one (or, with neither entry,
 * [N, C, W] of the two readings of a rank-3 input). Sets m->info's layout,
 * window and channels and writes layout_note; never fails the load. */
static void pe__layout_recognise(pe_model_t *m) {
  pe_model_desc_t *d = &m->info;
  const pe_model_tensor_t *in = &d->input;
  char *note = m->layout_note;
  const size_t cap = sizeof m->layout_note;
  d->layout = PE_MODEL_LAYOUT_NONE;
  d->window = d->channels = 0;
  d->layout_note = note;
  if (d->n_inputs == 0) {
    snprintf(note, cap, "the model has no runtime input to feed");
    return;
  }
  const char *lay = pe_model_meta(m, "pe.layout");
  const char *win_s = pe_model_meta(m, "pe.window");
  const char *feat_s = pe_model_meta(m, "pe.features");
  int64_t win = 0, feats = 0;
  if (win_s != NULL) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(win_s, &end, 10);
    if (end == win_s || *end != '\0' || errno != 0 || v < 1 ||
        v > (long long)UINT32_MAX) {
      snprintf(note, cap,
               "metadata pe.window='%.60s' is not a positive whole number",
               win_s);
      return;
    }
    win = v;
  }
  if (feat_s != NULL && feat_s[0] != '\0') {
    feats = 1;
    for (const char *p = feat_s; *p; p++) {
      feats += *p == ',';
    }
  }
  char shape[96], given[128] = "";
  pe__shape_text(in, shape, sizeof shape);
  if (win > 0 && feats > 0) {
    snprintf(given, sizeof given,
             "pe.window=%lld and pe.features (%lld "
             "name%s)",
             (long long)win, (long long)feats, feats > 1 ? "s" : "");
  } else if (win > 0) {
    snprintf(given, sizeof given, "pe.window=%lld", (long long)win);
  } else if (feats > 0) {
    snprintf(given, sizeof given, "pe.features (%lld name%s)", (long long)feats,
             feats > 1 ? "s" : "");
  }
  pe__window_fit_t fit[2];
  int n_fit = pe__window_fits(in, win, feats, fit);
  if (n_fit == 0) {
    snprintf(note, cap,
             "the input '%s' %s is not a feature window: the engine feeds "
             "[N, C, W], [N, W, C], [N, 1, W, C] or [N, C*W]",
             in->name, shape);
    return;
  }
  pe__window_fit_t got;
  if (lay != NULL) {
    pe_model_layout_t want = PE_MODEL_LAYOUT_NONE;
    for (int k = PE_MODEL_LAYOUT_NCW; k <= PE_MODEL_LAYOUT_N1WC; k++) {
      want =
          strcmp(lay, pe__layout_names[k]) == 0 ? (pe_model_layout_t)k : want;
    }
    if (want == PE_MODEL_LAYOUT_NONE) {
      snprintf(note, cap, "metadata pe.layout='%.40s' is not NCW, NWC or N1WC",
               lay);
      return;
    }
    int k = 0;
    while (k < n_fit && fit[k].layout != want) {
      k++;
    }
    if (k == n_fit) {
      snprintf(note, cap,
               "metadata pe.layout=%s contradicts the input '%s' %s: %s is "
               "%s",
               lay, in->name, shape, lay,
               want == PE_MODEL_LAYOUT_NCW   ? "[N, C, W] (or [N, C*W])"
               : want == PE_MODEL_LAYOUT_NWC ? "[N, W, C]"
                                             : "[N, 1, W, C]");
      return;
    }
    got = fit[k];
    if ((win > 0 && got.w != win) || (feats > 0 && got.c != feats)) {
      snprintf(note, cap,
               "metadata pe.layout=%s reads the input '%s' %s as windows of "
               "%lld steps of %lld features, which contradicts %s",
               lay, in->name, shape, (long long)got.w, (long long)got.c, given);
      return;
    }
  } else {
    int n = 0;
    for (int k = 0; k < n_fit; k++) {
      if ((win == 0 || fit[k].w == win) && (feats == 0 || fit[k].c == feats)) {
        fit[n++] = fit[k];
      }
    }
    if (n == 0) {
      char as[160];
      int r = snprintf(as, sizeof as,
                       "as %s it holds %lld steps of %lld "
                       "features",
                       pe__layout_names[fit[0].layout], (long long)fit[0].w,
                       (long long)fit[0].c);
      if (n_fit > 1 && r > 0 && (size_t)r < sizeof as) {
        snprintf(as + r, sizeof as - (size_t)r, ", as %s %lld steps of %lld",
                 pe__layout_names[fit[1].layout], (long long)fit[1].w,
                 (long long)fit[1].c);
      }
      snprintf(note, cap, "the input '%s' %s does not hold windows of %s (%s)",
               in->name, shape, given, as);
      return;
    }
    if (n == 2 && given[0] != '\0') {
      snprintf(note, cap,
               "the input '%s' %s reads as [N, C, W] and as [N, W, C] with %s "
               "(its window and feature axes are equally long); set the "
               "metadata pe.layout to NCW or NWC",
               in->name, shape, given);
      return;
    }
    got = fit[0];
  }
  if (got.w < 1 || got.c < 1) {
    snprintf(note, cap, "the input '%s' %s has an empty axis", in->name, shape);
    return;
  }
  if (got.w * got.c != in->numel) {
    snprintf(note, cap,
             "the input '%s' %s holds %lld values per window, not the %lld "
             "of %lld steps of %lld features (a fixed first axis other than "
             "1 is no batch)",
             in->name, shape, (long long)in->numel, (long long)(got.w * got.c),
             (long long)got.w, (long long)got.c);
    return;
  }
  d->layout = got.layout;
  d->window = got.w;
  d->channels = got.c;
  if (lay != NULL) {
    snprintf(note, cap, "from pe.layout");
  } else if (given[0] != '\0') {
    snprintf(note, cap, "from the input's shape, given %s", given);
  } else {
    snprintf(note, cap,
             "from the input's shape%s (no pe.layout, pe.window or "
             "pe.features)",
             n_fit > 1 ? ", [N, C, W] being the default" : "");
  }
}
const char *pe__kernels_name(const pe__kernels_t *k) { return k->name; }

int pe_model_load_buffer_data(const void *data, size_t len, const char *name,
                              const pe_model_options_t *opts,
                              pe_model_data_fn fn, void *ctx, pe_model_t **out,
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
  /* the kernels first: the plan sizes scratch for them */
  m->kern = pe__kernels_pick(opts ? opts->kernels : PE_KERNELS_AUTO);
  m->all_outputs = opts != NULL && opts->all_outputs;
  pe__graph_t *g = &m->g;
  g->path = name ? name : "<buffer>";
  g->err = m->err;
  g->err_cap = sizeof m->err;
  g->data_fn = fn;
  g->data_ctx = ctx;
  g->binds = opts != NULL && opts->n_binds > 0 ? opts->binds : NULL;
  g->n_binds = g->binds != NULL ? opts->n_binds : 0;
  void *proto = NULL;
  int rc = pe__onnx_import(g, data, len, &proto);
  if (rc == PE_OK) {
    rc = pe__build(m);
  }
  pe__onnx_free(proto);
  for (int i = 0; i < g->n_node; i++) {
    g->node[i].attr = NULL;
    g->node[i].n_attr = 0;
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
  if (g->input >= 0) {
    pe__tensor_desc(&g->t[g->input], &d->input);
  }
  d->n_inputs = g->n_inputs;
  for (int i = 0; i < g->n_inputs; i++) {
    pe__tensor_desc(&g->t[g->inputs[i]], &d->inputs[i]);
  }
  d->n_outputs = g->n_outputs;
  for (int i = 0; i < g->n_outputs; i++) {
    pe__tensor_desc(&g->t[g->outputs[i]], &d->outputs[i]);
    if (m->out_dtype[i] != PE__DT_NONE) {
      d->outputs[i].dtype = m->out_dtype[i];
    }
  }
  d->n_meta = g->n_meta;
  for (int i = 0; i < g->n_meta; i++) {
    d->meta_key[i] = g->meta_key[i];
    d->meta_value[i] = g->meta_val[i];
  }
  d->n_steps = m->n_step;
  d->flops = m->flops;
  d->arena_floats = m->arena_ps;
  d->kernels = pe__kernels_name(m->kern);
  pe__layout_recognise(m);
  g->path = "";
  g->data_fn = NULL;
  g->data_ctx = NULL;
  g->binds = NULL;
  g->n_binds = 0;
  *out = m;
  return PE_OK;
}

int pe_model_load_buffer(const void *data, size_t len, const char *name,
                         const pe_model_options_t *opts, pe_model_t **out,
                         char *err, size_t err_cap) {
  return pe_model_load_buffer_data(data, len, name, opts, NULL, NULL, out, err,
                                   err_cap);
}

/* The external data files of one load from a file: the model's folder
 * (resolved) and each file mapped once, unmapped when the load ends. */
#define PE__DATA_FILES 64
typedef struct pe__data_files {
  char dir[PATH_MAX]; /* realpath of the model's folder */
  int n;
  struct {
    char *loc;
    void *map;
    size_t len;
  } f[PE__DATA_FILES];
} pe__data_files_t;

static int pe__data_file(void *ctx, const char *loc, const void **data,
                         size_t *len, char *why, size_t why_cap) {
  pe__data_files_t *df = ctx;
  for (int i = 0; i < df->n; i++) {
    if (strcmp(df->f[i].loc, loc) == 0) {
      *data = df->f[i].map;
      *len = df->f[i].len;
      return PE_OK;
    }
  }
  if (df->n == PE__DATA_FILES) {
    snprintf(why, why_cap, "more than %d external data files", PE__DATA_FILES);
    return PE_EUNSUPPORTED;
  }
  char path[PATH_MAX * 2], real[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", df->dir, loc);
  if (realpath(path, real) == NULL) {
    snprintf(why, why_cap, "cannot open it: %s", strerror(errno));
    return PE_EIO;
  }
  size_t dl = strlen(df->dir);
  if (strncmp(real, df->dir, dl) != 0 ||
      (real[dl] != '/' && !(dl == 1 && df->dir[0] == '/'))) {
    snprintf(why, why_cap,
             "it resolves to '%s', outside the model's folder '%s' (through "
             "a symbolic link); refused",
             real, df->dir);
    return PE_EMODEL;
  }
  int fd = open(real, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(why, why_cap, "cannot read it: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return PE_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(why, why_cap, "not a regular file");
    close(fd);
    return PE_EIO;
  }
  void *map = NULL;
  size_t n = (size_t)st.st_size;
  if (n > 0) {
    map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      snprintf(why, why_cap, "cannot map it: %s", strerror(errno));
      close(fd);
      return PE_EIO;
    }
  }
  close(fd);
  size_t ll = strlen(loc);
  char *copy = malloc(ll + 1);
  if (copy == NULL) {
    if (map != NULL) {
      munmap(map, n);
    }
    return PE_ENOMEM;
  }
  memcpy(copy, loc, ll + 1);
  df->f[df->n].loc = copy;
  df->f[df->n].map = map;
  df->f[df->n].len = n;
  df->n++;
  *data = map;
  *len = n;
  return PE_OK;
}

static void pe__data_files_close(pe__data_files_t *df) {
  for (int i = 0; i < df->n; i++) {
    if (df->f[i].map != NULL) {
      munmap(df->f[i].map, df->f[i].len);
    }
    free(df->f[i].loc);
  }
  df->n = 0;
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
  /* A regular file's size is known before anything is read: refuse a
   * model over the limit at once rather than after reading 2 GiB. */
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size > ((uint64_t)1 << 31)) {
    snprintf(err, err_cap, "%s: the model is larger than 2 GiB (%lld bytes)",
             path, (long long)st.st_size);
    fclose(f);
    return PE_EUNSUPPORTED;
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
    pe__data_files_t *df = calloc(1, sizeof *df);
    char folder[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
      snprintf(folder, sizeof folder, ".");
    } else {
      snprintf(folder, sizeof folder, "%.*s", (int)(slash - path + 1), path);
    }
    if (df == NULL) {
      snprintf(err, err_cap, "%s: out of memory", path);
      rc = PE_ENOMEM;
    } else if (realpath(folder, df->dir) == NULL) {
      snprintf(err, err_cap, "%s: cannot resolve the model's folder: %s", path,
               strerror(errno));
      rc = PE_EIO;
    } else {
      rc = pe_model_load_buffer_data(buf, len, path, opts, pe__data_file, df,
                                     out, err, err_cap);
      pe__data_files_close(df);
    }
    free(df);
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
                     d == t->batch_axis ? (t->dims[d] != 1 ? "N*" : "N") : "");
    if (w < 0 || (size_t)(n + w) >= cap) {
      break;
    }
    n += w;
    if (d != t->batch_axis || t->dims[d] != 1) {
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
  case PE__K_CONV1D: {
    /* the form it runs in, then where it writes (a Winograd 1-D step may
     * also write for the step after it) */
    const char *form = pe__conv1d_wg_form(s, m->kern->level);
    if (form == NULL) {
      form = s->wl != NULL && m->kern->level > 1 ? " channels in lanes" : "";
    }
    snprintf(extra, sizeof extra, " k%lld s%lld d%lld pad %lld/%lld g%lld%s%s",
             (long long)s->p[3], (long long)s->p[4], (long long)s->p[5],
             (long long)s->p[6], (long long)s->p[7], (long long)s->p[2], form,
             !s->redirect    ? ""
             : s->es != NULL ? " (then the affine step after it)"
                             : " (into the Concat after it)");
    break;
  }
  case PE__K_DENSE:
    snprintf(extra, sizeof extra, " %lldx%lld weights%s", (long long)s->p[1],
             (long long)s->p[2],
             s->d.dot ? " (dot layout)" : " (16-col panels)");
    break;
  case PE__K_LSTM:
  case PE__K_GRU:
    snprintf(extra, sizeof extra, " seq %lld hidden %lld%s", (long long)s->p[0],
             (long long)s->p[2], s->in_place ? " (input read in place)" : "");
    break;
  case PE__K_STRIDED:
  case PE__K_AFFINE:
  case PE__K_CONCAT:
    snprintf(extra, sizeof extra, "%s",
             !s->skip                   ? ""
             : s->kind == PE__K_STRIDED ? " (skipped: the LSTM reads its input)"
                                        : " (skipped: written by the "
                                          "convolutions before it)");
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
