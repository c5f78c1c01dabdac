/* ONNX import: a memory buffer holding an .onnx file -> pe__graph_t.
 *
 * The parser does no I/O (pe_model_load_file reads the file). protobuf-c
 * unpacks the buffer; everything after that treats the message as hostile:
 * every count, dimension and length is checked before use, so a fuzzed file
 * gives an error, never a crash. Unknown fields (newer IR versions) are
 * skipped by protobuf-c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "onnx.pb-c.h"
#include "pe/error.h"

#define PE__MAX_TENSORS 200000
#define PE__MAX_NODES 100000
#define PE__MAX_ELEMS ((int64_t)1 << 28)

int pe__graph_err(pe__graph_t *g, int rc, const char *fmt, ...) {
  int n = snprintf(g->err, g->err_cap, "%s: ", g->path);
  if (n < 0 || (size_t)n >= g->err_cap) {
    return rc;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->err + n, g->err_cap - (size_t)n, fmt, ap);
  va_end(ap);
  return rc;
}

int pe__node_err(pe__graph_t *g, const pe__node_t *nd, int rc, const char *fmt,
                 ...) {
  int n = snprintf(g->err, g->err_cap, "%s: node %d (%s, %s): ", g->path,
                   nd->index, nd->name[0] ? nd->name : "unnamed", nd->op);
  if (n < 0 || (size_t)n >= g->err_cap) {
    return rc;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->err + n, g->err_cap - (size_t)n, fmt, ap);
  va_end(ap);
  return rc;
}

static uint32_t pe__name_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h = (h ^ (uint8_t)*s) * 16777619u;
  }
  return h;
}

int pe__graph_find(pe__graph_t *g, const char *name) {
  if (g->hash_cap == 0) {
    return -1;
  }
  uint32_t mask = (uint32_t)g->hash_cap - 1;
  for (uint32_t h = pe__name_hash(name) & mask;; h = (h + 1) & mask) {
    int id = g->hash[h] - 1;
    if (id < 0) {
      return -1;
    }
    if (strcmp(g->t[id].name, name) == 0) {
      return id;
    }
  }
}

static void pe__hash_put(pe__graph_t *g, int id) {
  uint32_t mask = (uint32_t)g->hash_cap - 1;
  uint32_t h = pe__name_hash(g->t[id].name) & mask;
  while (g->hash[h] != 0) {
    h = (h + 1) & mask;
  }
  g->hash[h] = id + 1;
}

/* Adds a tensor named `name` (copied); returns its id or PE_ENOMEM/PE_EFULL. */
int pe__graph_add(pe__graph_t *g, const char *name) {
  if (g->n_t >= PE__MAX_TENSORS) {
    return PE_EFULL;
  }
  if (g->n_t == g->cap_t) {
    int cap = g->cap_t ? g->cap_t * 2 : 64;
    pe__tensor_t *t = realloc(g->t, (size_t)cap * sizeof *t);
    if (t == NULL) {
      return PE_ENOMEM;
    }
    g->t = t;
    g->cap_t = cap;
  }
  if ((g->n_t + 1) * 2 > g->hash_cap) {
    int cap = g->hash_cap ? g->hash_cap * 2 : 256;
    int *h = calloc((size_t)cap, sizeof *h);
    if (h == NULL) {
      return PE_ENOMEM;
    }
    free(g->hash);
    g->hash = h;
    g->hash_cap = cap;
    for (int i = 0; i < g->n_t; i++) {
      pe__hash_put(g, i);
    }
  }
  pe__tensor_t *t = &g->t[g->n_t];
  memset(t, 0, sizeof *t);
  size_t len = strlen(name);
  t->name = malloc(len + 1);
  if (t->name == NULL) {
    return PE_ENOMEM;
  }
  memcpy(t->name, name, len + 1);
  t->batch_axis = -1;
  t->output_idx = -1;
  t->alias_of = -1;
  int id = g->n_t++;
  pe__hash_put(g, id);
  return id;
}

static void pe__tensors_free(pe__tensor_t *t, int n) {
  for (int i = 0; i < n; i++) {
    free(t[i].name);
    free(t[i].f);
    free(t[i].i);
    free(t[i].mark);
  }
}

void pe__graph_free(pe__graph_t *g) {
  pe__tensors_free(g->t, g->n_t);
  free(g->t);
  free(g->hash);
  free(g->node);
  pe__tensors_free(g->attr_t, g->n_attr_t);
  free(g->attr_t);
  free(g->attr);
  free(g->attr_str);
  free(g->producer);
  for (int i = 0; i < g->n_meta; i++) {
    free(g->meta_key[i]);
    free(g->meta_val[i]);
  }
  memset(g, 0, sizeof *g);
}

static char *pe__strdup(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n + 1);
  }
  return d;
}

static const char *pe__dtype_name(int32_t dt) {
  static const char *const names[] = {
      "undefined", "float32", "uint8",     "int8",       "uint16",  "int16",
      "int32",     "int64",   "string",    "bool",       "float16", "double",
      "uint32",    "uint64",  "complex64", "complex128", "bfloat16"};
  if (dt >= 0 && dt < (int32_t)(sizeof names / sizeof names[0])) {
    return names[dt];
  }
  return "an unknown type";
}

/* A decimal byte count from an external_data value: digits only, at most
 * 2^62. Returns 0 on success. */
static int pe__parse_u62(const char *v, int64_t *out) {
  int64_t x = 0;
  if (v == NULL || *v == '\0') {
    return -1;
  }
  for (const char *c = v; *c; c++) {
    if (*c < '0' || *c > '9' || x > (((int64_t)1 << 62) - 9) / 10) {
      return -1;
    }
    x = x * 10 + (*c - '0');
  }
  *out = x;
  return 0;
}

/* 1 when `loc` is a path that stays inside the model's folder as written:
 * relative, no ".." component, no backslash or drive letter (a Windows
 * path), not empty. Symbolic links are checked by the file reader in
 * model.c, which refuses a file that resolves outside the folder. */
static int pe__location_ok(const char *loc) {
  size_t n = strlen(loc);
  if (n == 0 || n > 1024 || loc[0] == '/' || strchr(loc, '\\') != NULL ||
      (n >= 2 && loc[1] == ':')) {
    return 0;
  }
  for (const char *p = loc; *p;) {
    const char *e = strchr(p, '/');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == 2 && p[0] == '.' && p[1] == '.') {
      return 0;
    }
    p += l + (e != NULL);
  }
  return 1;
}

/* The bytes of an external tensor: its external_data entries (location,
 * offset, length, checksum) checked, the file fetched through g->data_fn,
 * and the range checked against the file and against `want` bytes, the
 * size its shape and type need. The checksum, when present, is not
 * verified. */
static int pe__external_bytes(pe__graph_t *g, const Onnx__TensorProto *tp,
                              const char *what, const char *name, size_t want,
                              const uint8_t **out) {
  const char *loc = NULL, *off_s = NULL, *len_s = NULL;
  for (size_t k = 0; k < tp->n_external_data; k++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[k];
    const char *key = e->key ? e->key : "";
    if (strcmp(key, "location") == 0) {
      loc = e->value;
    } else if (strcmp(key, "offset") == 0) {
      off_s = e->value;
    } else if (strcmp(key, "length") == 0) {
      len_s = e->value;
    } else if (strcmp(key, "checksum") != 0) {
      return pe__graph_err(g, PE_EMODEL,
                           "%s '%s': unknown external_data key '%s'; location, "
                           "offset, length and checksum are defined",
                           what, name, key);
    }
  }
  if (loc == NULL) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s' keeps its data outside but names no location",
                         what, name);
  }
  if (!pe__location_ok(loc)) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s': external data location '%s' is refused: it "
                         "must be a relative path inside the model's folder "
                         "(no '..', no absolute path)",
                         what, name, loc);
  }
  int64_t off = 0, len = -1;
  if ((off_s != NULL && pe__parse_u62(off_s, &off) != 0) ||
      (len_s != NULL && pe__parse_u62(len_s, &len) != 0)) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s': external data offset '%s' or length '%s' is "
                         "not a byte count",
                         what, name, off_s ? off_s : "", len_s ? len_s : "");
  }
  if (g->data_fn == NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' keeps its data in the external file '%s'; a "
                         "model loaded from a memory buffer has no folder to "
                         "find it in (load it from its file, or give the data "
                         "with pe_model_load_buffer_data)",
                         what, name, loc);
  }
  const void *data = NULL;
  size_t size = 0;
  char why[256] = "";
  int rc = g->data_fn(g->data_ctx, loc, &data, &size, why, sizeof why);
  if (rc != PE_OK) {
    return pe__graph_err(g, rc, "%s '%s': external data file '%s': %s", what,
                         name, loc, why[0] ? why : "cannot be read");
  }
  if ((uint64_t)off > size) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s': external data offset %lld is past the end "
                         "of '%s' (%zu bytes)",
                         what, name, (long long)off, loc, size);
  }
  if (len < 0) {
    len = (int64_t)(size - (size_t)off);
  }
  if ((uint64_t)len > size - (size_t)off) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s': external data range %lld+%lld runs past the "
                         "end of '%s' (%zu bytes)",
                         what, name, (long long)off, (long long)len, loc, size);
  }
  if ((uint64_t)len != want) {
    return pe__graph_err(g, PE_EMODEL,
                         "%s '%s': external data holds %lld bytes, its shape "
                         "and type need %zu",
                         what, name, (long long)len, want);
  }
  *out = (const uint8_t *)data + off;
  return PE_OK;
}

/* Copies an ONNX TensorProto into tensor t as a constant: float32, int64
 * (int32 widened), or bool (0/1 in `i`). The data may be in raw_data, in
 * the typed fields or in an external file. `what` names it in messages. */
static int pe__load_tensor(pe__graph_t *g, pe__tensor_t *t,
                           const Onnx__TensorProto *tp, const char *what) {
  if (tp->n_dims > PE__MAX_RANK) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' has rank %zu; at most %d is supported", what,
                         t->name, tp->n_dims, PE__MAX_RANK);
  }
  int64_t numel = 1;
  t->rank = (int)tp->n_dims;
  for (size_t d = 0; d < tp->n_dims; d++) {
    if (tp->dims[d] < 0 || tp->dims[d] > PE__MAX_ELEMS) {
      return pe__graph_err(g, PE_EMODEL, "%s '%s' has a bad dimension %lld",
                           what, t->name, (long long)tp->dims[d]);
    }
    t->dims[d] = tp->dims[d];
    numel *= tp->dims[d];
    if (numel > PE__MAX_ELEMS) {
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "%s '%s' has more than 2^28 elements", what,
                           t->name);
    }
  }
  if (tp->segment != NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' is segmented; not supported", what, t->name);
  }
  int32_t dt = tp->has_data_type ? tp->data_type : 0;
  size_t es = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? 4
              : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8
              : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ? 4
              : dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL  ? 1
                                                           : 0;
  if (es == 0) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' is %s; only float32, and int64, int32 or "
                         "bool constants, are supported",
                         what, t->name, pe__dtype_name(dt));
  }
  size_t n = (size_t)numel;
  const uint8_t *raw = NULL;
  if ((tp->has_data_location &&
       tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
      tp->n_external_data > 0) {
    int rc = pe__external_bytes(g, tp, what, t->name, n * es, &raw);
    if (rc != PE_OK) {
      return rc;
    }
  } else if (tp->has_raw_data && tp->raw_data.len > 0) {
    if (tp->raw_data.len != n * es) {
      return pe__graph_err(g, PE_ECORRUPT,
                           "%s '%s': raw_data holds %zu bytes, its shape "
                           "needs %zu (truncated file?)",
                           what, t->name, tp->raw_data.len, n * es);
    }
    raw = tp->raw_data.data;
  }
  t->numel = numel;
  t->is_const = 1;
  t->known = 1;
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    t->dtype = PE__DT_F32;
    t->f = calloc(n ? n : 1, sizeof(float));
    if (t->f == NULL) {
      return PE_ENOMEM;
    }
    if (raw != NULL) {
      memcpy(t->f, raw, n * 4); /* little-endian host */
    } else if (tp->n_float_data == n && n > 0) {
      memcpy(t->f, tp->float_data, n * 4);
    } else if (n > 0) {
      return pe__graph_err(g, PE_ECORRUPT,
                           "%s '%s': holds %zu floats, its shape needs %zu",
                           what, t->name, tp->n_float_data, n);
    }
    return PE_OK;
  }
  t->dtype =
      dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? PE__DT_BOOL : PE__DT_I64;
  t->i = calloc(n ? n : 1, sizeof(int64_t));
  if (t->i == NULL) {
    return PE_ENOMEM;
  }
  if (raw != NULL) {
    for (size_t k = 0; k < n; k++) {
      if (es == 8) {
        memcpy(&t->i[k], raw + k * 8, 8);
      } else if (es == 4) {
        int32_t v;
        memcpy(&v, raw + k * 4, 4);
        t->i[k] = v;
      } else {
        t->i[k] = raw[k] != 0;
      }
    }
  } else if (es == 8 && tp->n_int64_data == n && n > 0) {
    memcpy(t->i, tp->int64_data, n * 8);
  } else if (es != 8 && tp->n_int32_data == n) {
    for (size_t k = 0; k < n; k++) {
      t->i[k] = es == 1 ? tp->int32_data[k] != 0 : tp->int32_data[k];
    }
  } else if (n > 0) {
    return pe__graph_err(g, PE_ECORRUPT,
                         "%s '%s': its data does not match its shape", what,
                         t->name);
  }
  return PE_OK;
}

/* The attributes of every node, converted once (see pe__attr_t). Tensor
 * attributes are loaded here, named after the node's first output. */
static int pe__import_attrs(pe__graph_t *g, const Onnx__GraphProto *gp) {
  size_t n_attr = 0, n_str = 0, n_t = 0;
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    n_attr += np->n_attribute;
    for (size_t k = 0; k < np->n_attribute; k++) {
      n_str += np->attribute[k]->n_strings;
      n_t += np->attribute[k]->t != NULL;
    }
  }
  g->attr = calloc(n_attr ? n_attr : 1, sizeof *g->attr);
  g->attr_str = calloc(n_str ? n_str : 1, sizeof *g->attr_str);
  g->attr_t = calloc(n_t ? n_t : 1, sizeof *g->attr_t);
  if (g->attr == NULL || g->attr_str == NULL || g->attr_t == NULL) {
    return PE_ENOMEM;
  }
  pe__attr_t *a = g->attr;
  pe__bytes_t *str = g->attr_str;
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    pe__node_t *nd = &g->node[i];
    nd->attr = a;
    nd->n_attr = (int)np->n_attribute;
    for (size_t k = 0; k < np->n_attribute; k++, a++) {
      const Onnx__AttributeProto *ap = np->attribute[k];
      a->name = ap->name ? ap->name : "";
      a->type = ap->has_type ? (int)ap->type : PE__AT_UNDEFINED;
      a->has_i = ap->has_i;
      a->has_f = ap->has_f;
      a->has_s = ap->has_s;
      a->i = ap->i;
      a->f = ap->f;
      a->s.data = ap->s.data;
      a->s.len = ap->s.len;
      a->ints = ap->ints;
      a->n_ints = ap->n_ints;
      a->floats = ap->floats;
      a->n_floats = ap->n_floats;
      a->strings = str;
      a->n_strings = ap->n_strings;
      for (size_t j = 0; j < ap->n_strings; j++, str++) {
        str->data = ap->strings[j].data;
        str->len = ap->strings[j].len;
      }
      if (ap->t != NULL) {
        pe__tensor_t *t = &g->attr_t[g->n_attr_t++];
        t->batch_axis = -1;
        t->output_idx = -1;
        t->alias_of = -1;
        t->name = pe__strdup(np->n_output > 0 && np->output[0] ? np->output[0]
                                                               : a->name);
        if (t->name == NULL) {
          return PE_ENOMEM;
        }
        char what[96];
        snprintf(what, sizeof what, "%s %s", nd->op, a->name);
        int rc = pe__load_tensor(g, t, ap->t, what);
        if (rc != PE_OK) {
          char msg[400];
          size_t skip = strlen(g->path) + 2;
          snprintf(msg, sizeof msg, "%s",
                   strlen(g->err) > skip ? g->err + skip : g->err);
          return pe__node_err(g, nd, rc, "%s", msg);
        }
        a->t = t;
      }
    }
  }
  return PE_OK;
}

/* Declared type and shape of a graph input or output into t. For an
 * input, `batch` says where its batch dimension is: 0 for axis 0 (stored
 * as 1, any batch size runs), -1 for none (the declared tensor is one
 * window; axis 0 is an axis like any other). With batch < -1 it is decided
 * here: axis 0 when its size is symbolic (dim_param, or no value), none
 * when it is fixed. `what` is "input" or "output". */
/* The bind of the runtime input called name, or NULL. */
static const pe_model_bind_t *pe__bind_find(const pe__graph_t *g,
                                            const char *name) {
  for (int k = 0; k < g->n_binds; k++) {
    if (g->binds[k].name != NULL && strcmp(g->binds[k].name, name) == 0) {
      return &g->binds[k];
    }
  }
  return NULL;
}

/* Every bind names a distinct runtime graph input. */
static int pe__binds_check(pe__graph_t *g, const Onnx__GraphProto *gp) {
  for (int k = 0; k < g->n_binds; k++) {
    const char *name = g->binds[k].name;
    if (name == NULL || name[0] == '\0') {
      return pe__graph_err(g, PE_EINVAL, "bound input %d has no name", k);
    }
    int found = 0;
    for (size_t i = 0; i < gp->n_input && !found; i++) {
      found = gp->input[i]->name != NULL &&
              strcmp(gp->input[i]->name, name) == 0 &&
              pe__graph_find(g, name) < 0;
    }
    if (!found) {
      return pe__graph_err(
          g, PE_EINVAL, "bound input '%s' is not a runtime graph input", name);
    }
    for (int j = 0; j < k; j++) {
      if (g->binds[j].name != NULL && strcmp(g->binds[j].name, name) == 0) {
        return pe__graph_err(g, PE_EINVAL, "input '%s' is bound twice", name);
      }
    }
  }
  return PE_OK;
}

/* Makes t, the graph input vi, the constant that bind bd gives. */
static int pe__bind_load(pe__graph_t *g, pe__tensor_t *t,
                         const Onnx__ValueInfoProto *vi,
                         const pe_model_bind_t *bd) {
  const Onnx__TypeProto *tp = vi->type;
  if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
      tp->tensor_type == NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED, "graph input '%s' is not a tensor",
                         t->name);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int et = tt->has_elem_type ? tt->elem_type : 0;
  int want = et == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? PE_MODEL_FLOAT32
             : et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                     et == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
                 ? PE_MODEL_INT64
             : et == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? PE_MODEL_BOOL
                                                         : 0;
  if (want == 0 || bd->dtype != want) {
    return pe__graph_err(g, PE_EINVAL,
                         "bound input '%s': the graph declares %s; the value "
                         "given is %s",
                         t->name, pe__dtype_name(et),
                         bd->dtype == PE_MODEL_FLOAT32 ? "float32"
                         : bd->dtype == PE_MODEL_INT64 ? "int64"
                         : bd->dtype == PE_MODEL_BOOL  ? "bool"
                                                       : "of no known type");
  }
  if (bd->rank < 0 || bd->rank > PE__MAX_RANK ||
      (bd->rank > 0 && bd->dims == NULL)) {
    return pe__graph_err(g, PE_EINVAL, "bound input '%s': rank %d", t->name,
                         bd->rank);
  }
  const Onnx__TensorShapeProto *sh = tt->shape;
  if (sh != NULL && (int)sh->n_dim != bd->rank) {
    return pe__graph_err(g, PE_EINVAL,
                         "bound input '%s': the graph declares rank %zu; the "
                         "value given has rank %d",
                         t->name, sh->n_dim, bd->rank);
  }
  int64_t n = 1;
  for (int d = 0; d < bd->rank; d++) {
    const Onnx__TensorShapeProto__Dimension *dm = sh ? sh->dim[d] : NULL;
    if (bd->dims[d] < 0 || bd->dims[d] > PE__MAX_ELEMS ||
        (dm != NULL &&
         dm->value_case ==
             ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
         dm->dim_value != bd->dims[d])) {
      return pe__graph_err(g, PE_EINVAL,
                           "bound input '%s': dimension %d is %lld, which the "
                           "graph does not declare",
                           t->name, d, (long long)bd->dims[d]);
    }
    t->dims[d] = bd->dims[d];
    n *= bd->dims[d];
    if (n > PE__MAX_ELEMS) {
      return pe__graph_err(g, PE_EUNSUPPORTED, "bound input '%s' is too large",
                           t->name);
    }
  }
  if (n > 0 && bd->data == NULL) {
    return pe__graph_err(g, PE_EINVAL, "bound input '%s' has no data", t->name);
  }
  t->rank = bd->rank;
  t->numel = n;
  t->batch_axis = -1;
  t->is_const = 1;
  t->known = 1;
  size_t nz = (size_t)(n ? n : 1);
  if (bd->dtype == PE_MODEL_FLOAT32) {
    t->dtype = PE__DT_F32;
    t->f = calloc(nz, sizeof(float));
    if (t->f == NULL) {
      return PE_ENOMEM;
    }
    memcpy(t->f, bd->data, (size_t)n * sizeof(float));
    return PE_OK;
  }
  t->dtype = bd->dtype == PE_MODEL_BOOL ? PE__DT_BOOL : PE__DT_I64;
  t->i = calloc(nz, sizeof(int64_t));
  if (t->i == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t k = 0; k < n; k++) {
    t->i[k] = bd->dtype == PE_MODEL_BOOL ? ((const uint8_t *)bd->data)[k] != 0
                                         : ((const int64_t *)bd->data)[k];
  }
  return PE_OK;
}

static int pe__value_shape(pe__graph_t *g, pe__tensor_t *t,
                           const Onnx__ValueInfoProto *vi, const char *what,
                           int batch) {
  const Onnx__TypeProto *tp = vi->type;
  int is_out = strcmp(what, "output") == 0;
  if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
      tp->tensor_type == NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph %s '%s' is not a tensor; only tensors are "
                         "supported",
                         what, t->name);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int32_t dt = tt->has_elem_type ? tt->elem_type : 0;
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    t->dtype = PE__DT_F32;
  } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
    t->dtype = PE__DT_I64;
  } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
    t->dtype = PE__DT_BOOL;
  } else {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph %s '%s' is %s; only float32 (and int64 or "
                         "bool) is supported",
                         what, t->name, pe__dtype_name(dt));
  }
  if (tt->shape == NULL) {
    if (is_out) {
      return PE_OK; /* shape comes from inference */
    }
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph input '%s' has no shape; declare [batch, ...]",
                         t->name);
  }
  const Onnx__TensorShapeProto *sh = tt->shape;
  if (sh->n_dim > PE__MAX_RANK || (!is_out && sh->n_dim < 1 && batch >= 0)) {
    return pe__graph_err(
        g, PE_EUNSUPPORTED, "graph %s '%s' has rank %zu; %d to %d is supported",
        what, t->name, sh->n_dim, batch >= 0 ? 1 : 0, PE__MAX_RANK);
  }
  if (batch < -1 && !is_out) {
    const Onnx__TensorShapeProto__Dimension *d0 =
        sh->n_dim > 0 ? sh->dim[0] : NULL;
    batch =
        d0 != NULL && d0->value_case ==
                          ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
            ? -1
            : 0;
    batch = sh->n_dim == 0 ? -1 : batch;
  }
  t->rank = (int)sh->n_dim;
  t->numel = 1;
  for (size_t d = 0; d < sh->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
    int has_value =
        dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (d == 0 && batch == 0) {
      t->dims[0] = 1;
      continue;
    }
    /* 0 is a size like any other: a tensor without elements */
    if (!has_value || dm->dim_value < 0 || dm->dim_value > PE__MAX_ELEMS) {
      const char *p =
          dm->value_case ==
                      ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                  dm->dim_param
              ? dm->dim_param
              : "?";
      if (is_out) {
        t->rank = 0; /* declared loosely: inference decides */
        return PE_OK;
      }
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "graph input '%s' has a dynamic dimension '%s' at "
                           "axis %zu; only the batch dimension (axis 0) may be "
                           "dynamic: export with fixed channels and window",
                           t->name, p, d);
    }
    t->dims[d] = dm->dim_value;
    t->numel *= dm->dim_value;
    if (t->numel > PE__MAX_ELEMS) {
      return pe__graph_err(g, PE_EUNSUPPORTED, "graph input '%s' is too large",
                           t->name);
    }
  }
  t->batch_axis = batch == 0 ? 0 : -1;
  return PE_OK;
}

/* Appends " (used by node I (NAME, OP))" for the first node reading
 * `name`, so a bad initializer or input is tied to a node. */
static void pe__append_consumer(pe__graph_t *g, const Onnx__GraphProto *gp,
                                const char *name) {
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    for (size_t k = 0; k < np->n_input; k++) {
      if (np->input[k] && strcmp(np->input[k], name) == 0) {
        size_t n = strlen(g->err);
        snprintf(g->err + n, g->err_cap - n, " (used by node %zu (%s, %s))", i,
                 np->name && np->name[0] ? np->name : "unnamed",
                 np->op_type ? np->op_type : "");
        return;
      }
    }
  }
}

/* What unpacking one file may allocate: its weights once (bytes fields are
 * copied) and the message structs, a few times the file's size for any real
 * model. A file of millions of empty nodes (2 bytes each in the file, some
 * hundred bytes each unpacked) stops here instead of taking gigabytes. */
#define PE__UNPACK_FACTOR 4
#define PE__UNPACK_SLACK ((size_t)64 << 20)

/* protobuf-c allocator with a budget (data points to the bytes left): a
 * hostile length field cannot make us ask the system for terabytes, nor a
 * flood of small messages for gigabytes. */
static void *pe__pb_alloc(void *data, size_t size) {
  size_t *left = data;
  if (left != NULL) {
    if (size > *left) {
      *left = 0;
      return NULL;
    }
    *left -= size;
  }
  return size > ((size_t)1 << 31) ? NULL : malloc(size);
}
static void pe__pb_free(void *data, void *p) {
  (void)data;
  free(p);
}
static ProtobufCAllocator pe__pb_allocator = {pe__pb_alloc, pe__pb_free, NULL};

void pe__onnx_free(void *proto) {
  if (proto != NULL) {
    onnx__model_proto__free_unpacked(proto, &pe__pb_allocator);
  }
}

int pe__onnx_import(pe__graph_t *g, const void *data, size_t len,
                    void **proto_out) {
  *proto_out = NULL;
  if (len == 0) {
    return pe__graph_err(g, PE_ECORRUPT,
                         "the file is empty; expected an .onnx "
                         "model");
  }
  size_t budget = len > (SIZE_MAX - PE__UNPACK_SLACK) / PE__UNPACK_FACTOR
                      ? SIZE_MAX
                      : len * PE__UNPACK_FACTOR + PE__UNPACK_SLACK;
  ProtobufCAllocator bounded = {pe__pb_alloc, pe__pb_free, &budget};
  Onnx__ModelProto *mp = onnx__model_proto__unpack(&bounded, len, data);
  if (mp == NULL && budget == 0) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "unpacking the file would take more than %zu MiB "
                         "(%d times its %zu bytes plus %zu MiB): refused as "
                         "no model of that size needs it",
                         (len * PE__UNPACK_FACTOR + PE__UNPACK_SLACK) >> 20,
                         PE__UNPACK_FACTOR, len, PE__UNPACK_SLACK >> 20);
  }
  if (mp == NULL) {
    return pe__graph_err(g, PE_ECORRUPT,
                         "not a valid ONNX protobuf (truncated or corrupt "
                         "file, %zu bytes)",
                         len);
  }
  *proto_out = mp;
  g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
  if (g->ir_version < PE__IR_MIN || g->ir_version > PE__IR_MAX) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "IR version %lld; versions %d to %d are supported",
                         (long long)g->ir_version, PE__IR_MIN, PE__IR_MAX);
  }
  g->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
    const char *dom = os->domain ? os->domain : "";
    if ((dom[0] == '\0' || strcmp(dom, "ai.onnx") == 0) && os->has_version) {
      g->opset = os->version;
    }
  }
  if (g->opset < PE__OPSET_MIN || g->opset > PE__OPSET_MAX) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "default-domain opset %lld; opsets %d to %d are "
                         "supported (re-export, or convert with "
                         "onnx.version_converter.convert_version)",
                         (long long)g->opset, PE__OPSET_MIN, PE__OPSET_MAX);
  }
  char prod[96];
  snprintf(prod, sizeof prod, "%s%s%s",
           mp->producer_name ? mp->producer_name : "",
           mp->producer_version && mp->producer_version[0] ? " " : "",
           mp->producer_version ? mp->producer_version : "");
  g->producer = pe__strdup(prod);
  if (g->producer == NULL) {
    return PE_ENOMEM;
  }
  for (size_t i = 0; i < mp->n_metadata_props && g->n_meta < PE_MODEL_MAX_META;
       i++) {
    const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
    g->meta_key[g->n_meta] = pe__strdup(e->key ? e->key : "");
    g->meta_val[g->n_meta] = pe__strdup(e->value ? e->value : "");
    g->n_meta++;
    if (g->meta_key[g->n_meta - 1] == NULL ||
        g->meta_val[g->n_meta - 1] == NULL) {
      return PE_ENOMEM;
    }
  }
  const Onnx__GraphProto *gp = mp->graph;
  if (gp == NULL) {
    return pe__graph_err(g, PE_EMODEL, "the model has no graph");
  }
  if (gp->n_node > PE__MAX_NODES) {
    return pe__graph_err(g, PE_EUNSUPPORTED, "%zu nodes; at most %d",
                         gp->n_node, PE__MAX_NODES);
  }
  if (gp->n_sparse_initializer > 0) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "sparse initializers are not supported");
  }
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *tp = gp->initializer[i];
    const char *name = tp->name ? tp->name : "";
    if (name[0] == '\0') {
      return pe__graph_err(g, PE_EMODEL, "initializer %zu has no name", i);
    }
    if (pe__graph_find(g, name) >= 0) {
      return pe__graph_err(g, PE_EMODEL, "initializer '%s' appears twice",
                           name);
    }
    int id = pe__graph_add(g, name);
    if (id < 0) {
      return id;
    }
    int rc = pe__load_tensor(g, &g->t[id], tp, "initializer");
    if (rc != PE_OK) {
      pe__append_consumer(g, gp, name);
      return rc;
    }
  }
  /* The batch dimension: the metadata entry pe.batch ("0": axis 0 of
   * every input, "none": no batch dimension), else each input's shape. */
  int batch = -2;
  for (int i = 0; i < g->n_meta; i++) {
    if (strcmp(g->meta_key[i], "pe.batch") == 0) {
      const char *v = g->meta_val[i];
      if (strcmp(v, "0") != 0 && strcmp(v, "none") != 0) {
        return pe__graph_err(g, PE_EMODEL,
                             "metadata pe.batch is '%s'; '0' (axis 0 of each "
                             "input) or 'none' are defined",
                             v);
      }
      batch = strcmp(v, "0") == 0 ? 0 : -1;
    }
  }
  g->input = -1;
  int rc_b = pe__binds_check(g, gp);
  if (rc_b != PE_OK) {
    return rc_b;
  }
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = vi->name ? vi->name : "";
    if (pe__graph_find(g, name) >= 0) {
      continue; /* IR < 4 lists initializers as inputs too */
    }
    if (g->n_inputs == PE_MODEL_MAX_IO) {
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "more than %d runtime graph inputs",
                           PE_MODEL_MAX_IO);
    }
    int id = pe__graph_add(g, name);
    if (id < 0) {
      return id;
    }
    const pe_model_bind_t *bd = pe__bind_find(g, name);
    int rc = bd != NULL ? pe__bind_load(g, &g->t[id], vi, bd)
                        : pe__value_shape(g, &g->t[id], vi, "input", batch);
    if (rc != PE_OK) {
      pe__append_consumer(g, gp, name);
      return rc;
    }
    if (bd != NULL) {
      continue;
    }
    pe__tensor_t *t = &g->t[id];
    if (g->n_inputs > 0 &&
        (t->batch_axis < 0) != (g->t[g->input].batch_axis < 0)) {
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "graph input '%s' %s a batch dimension but '%s' "
                           "%s; declare axis 0 of every input symbolic, or "
                           "set the metadata pe.batch",
                           name, t->batch_axis < 0 ? "lacks" : "has",
                           g->t[g->input].name,
                           t->batch_axis < 0 ? "has one" : "does not");
    }
    t->known = 1;
    t->is_input = 1;
    t->input_idx = g->n_inputs;
    g->inputs[g->n_inputs++] = id;
    if (g->input < 0) {
      g->input = id;
    }
  }
  g->node = calloc(gp->n_node ? gp->n_node : 1, sizeof *g->node);
  if (g->node == NULL) {
    return PE_ENOMEM;
  }
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    pe__node_t *nd = &g->node[i];
    nd->index = (int)i;
    nd->name = np->name ? np->name : "";
    nd->op = np->op_type ? np->op_type : "";
    g->n_node = (int)i + 1;
    const char *dom = np->domain ? np->domain : "";
    if (dom[0] != '\0' && strcmp(dom, "ai.onnx") != 0) {
      return pe__node_err(g, nd, PE_EUNSUPPORTED,
                          "operator domain '%s'; only the default ONNX domain "
                          "is supported",
                          dom);
    }
    if (np->n_input > PE__STEP_MAX_IN) {
      return pe__node_err(g, nd, PE_EUNSUPPORTED,
                          "%zu inputs; at most %d are supported", np->n_input,
                          PE__STEP_MAX_IN);
    }
    if (np->n_output > 4 || np->n_output == 0) {
      return pe__node_err(g, nd, PE_EUNSUPPORTED,
                          "%zu outputs; 1 to 4 are supported", np->n_output);
    }
    nd->n_in = (int)np->n_input;
    for (size_t k = 0; k < np->n_input; k++) {
      const char *in = np->input[k] ? np->input[k] : "";
      if (in[0] == '\0') {
        nd->in[k] = -1;
        continue;
      }
      int id = pe__graph_find(g, in);
      if (id < 0) {
        return pe__node_err(g, nd, PE_EMODEL,
                            "input %zu '%s' is dangling: no initializer, graph "
                            "input or earlier node produces it (nodes must be "
                            "in topological order)",
                            k, in);
      }
      nd->in[k] = id;
    }
    nd->n_out = (int)np->n_output;
    for (size_t k = 0; k < np->n_output; k++) {
      const char *out = np->output[k] ? np->output[k] : "";
      if (out[0] == '\0') {
        nd->out[k] = -1;
        continue;
      }
      if (pe__graph_find(g, out) >= 0) {
        return pe__node_err(g, nd, PE_EMODEL,
                            "output '%s' is already produced elsewhere; ONNX "
                            "graphs assign each value once",
                            out);
      }
      int id = pe__graph_add(g, out);
      if (id < 0) {
        return id;
      }
      nd->out[k] = id;
    }
  }
  int rc_attr = pe__import_attrs(g, gp);
  if (rc_attr != PE_OK) {
    return rc_attr;
  }
  if (gp->n_output == 0 || gp->n_output > PE_MODEL_MAX_IO) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "the graph has %zu outputs; 1 to %d are supported",
                         gp->n_output, PE_MODEL_MAX_IO);
  }
  for (size_t i = 0; i < gp->n_output; i++) {
    const Onnx__ValueInfoProto *vi = gp->output[i];
    const char *name = vi->name ? vi->name : "";
    int id = pe__graph_find(g, name);
    if (id < 0) {
      return pe__graph_err(g, PE_EMODEL,
                           "graph output '%s' is dangling: no node produces it",
                           name);
    }
    pe__tensor_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.name = g->t[id].name;
    int rc = pe__value_shape(g, &tmp, vi, "output", -1);
    if (rc != PE_OK) {
      return rc;
    }
    if (g->t[id].output_idx < 0) {
      g->t[id].output_idx = (int)i;
    }
    g->outputs[i] = id;
    g->n_outputs = (int)i + 1;
  }
  return PE_OK;
}
