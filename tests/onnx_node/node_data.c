/* Reading ONNX backend node tests: see node_data.h. */
#include "node_data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

void pe_node_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* Formats the message into err and gives -1. */
#define PE__FAIL(err, cap, ...) (pe_node_fmt(err, cap, __VA_ARGS__), -1)

int pe_node_read_file(const char *path, unsigned char **out, size_t *len,
                      char *err, size_t cap) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return PE__FAIL(err, cap, "%s: cannot open", path);
  }
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  unsigned char *b = size >= 0 ? malloc((size_t)size + 1) : NULL;
  int ok = b != NULL && fseek(f, 0, SEEK_SET) == 0 &&
           fread(b, 1, (size_t)size, f) == (size_t)size;
  fclose(f);
  if (!ok) {
    free(b);
    return PE__FAIL(err, cap, "%s: cannot read", path);
  }
  *out = b;
  *len = (size_t)size;
  return 0;
}

/* Adds op to m->ops unless it is there already. */
static void pe__add_op(pe_node_model_t *m, const char *domain, const char *op) {
  char name[PE_NODE_NAME_MAX];
  int plain = domain[0] == '\0' || strcmp(domain, "ai.onnx") == 0;
  snprintf(name, sizeof name, "%s%s%s", plain ? "" : domain, plain ? "" : ":",
           op);
  for (int i = 0; i < m->n_ops; i++) {
    if (strcmp(m->ops[i], name) == 0) {
      return;
    }
  }
  if (m->n_ops < PE_NODE_MAX_OPS) {
    memcpy(m->ops[m->n_ops++], name, sizeof name);
  }
}

int pe_node_model_parse(const unsigned char *buf, size_t len,
                        pe_node_model_t *m, char *err, size_t cap) {
  memset(m, 0, sizeof *m);
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
  if (mp == NULL || mp->graph == NULL) {
    if (mp != NULL) {
      onnx__model_proto__free_unpacked(mp, NULL);
    }
    return PE__FAIL(err, cap, "model.onnx: not a model protobuf");
  }
  const Onnx__GraphProto *g = mp->graph;
  m->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
    const char *d = os->domain ? os->domain : "";
    if (d[0] == '\0' || strcmp(d, "ai.onnx") == 0) {
      m->opset = os->version;
    }
  }
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *np = g->node[i];
    pe__add_op(m, np->domain ? np->domain : "", np->op_type ? np->op_type : "");
  }
  for (size_t i = 0; i < g->n_input; i++) {
    const char *name = g->input[i]->name ? g->input[i]->name : "";
    int init = 0;
    for (size_t k = 0; k < g->n_initializer && !init; k++) {
      init =
          g->initializer[k]->name && strcmp(g->initializer[k]->name, name) == 0;
    }
    if (!init && m->n_inputs < PE_NODE_MAX_IO) {
      snprintf(m->inputs[m->n_inputs++], PE_NODE_NAME_MAX, "%s", name);
    }
  }
  m->n_outputs = (int)g->n_output;
  onnx__model_proto__free_unpacked(mp, NULL);
  return 0;
}

const char *pe_node_dtype_name(int dtype) {
  static const char *const names[] = {
      "undefined", "float32", "uint8",     "int8",       "uint16",  "int16",
      "int32",     "int64",   "string",    "bool",       "float16", "float64",
      "uint32",    "uint64",  "complex64", "complex128", "bfloat16"};
  if (dtype >= 0 && dtype < (int)(sizeof names / sizeof names[0])) {
    return names[dtype];
  }
  return dtype <= 20 ? "float8" : "a 4-bit or newer type";
}

static size_t pe__elem_size(int dtype) {
  switch (dtype) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
    return 1;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    return 2;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    return 4;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    return 8;
  default:
    return 0;
  }
}

static double pe__half(uint16_t h) {
  int e = (h >> 10) & 31, f = h & 1023;
  double v = e == 0    ? ldexp(f, -24)
             : e == 31 ? (f ? NAN : INFINITY)
                       : ldexp(f + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* One element at p of type dtype (es bytes), as a double; little-endian
 * host, as the raw_data of TensorProto is. */
static double pe__elem(const unsigned char *p, int dtype, size_t es) {
  uint16_t h;
  float f;
  double d;
  switch (dtype) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    memcpy(&f, p, 4);
    return f;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    memcpy(&d, p, 8);
    return d;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    memcpy(&h, p, 2);
    return pe__half(h);
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: {
    memcpy(&h, p, 2);
    uint32_t u = (uint32_t)h << 16;
    memcpy(&f, &u, 4);
    return f;
  }
  default:
    break;
  }
  uint64_t u = 0;
  memcpy(&u, p, es);
  int is_signed = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
                  dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT16 ||
                  dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
                  dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  if (is_signed && es < 8 && (u >> (8 * es - 1)) & 1) {
    u |= ~(uint64_t)0 << (8 * es); /* sign extension */
  }
  return is_signed ? (double)(int64_t)u : (double)u;
}

/* Copies the typed repeated field of tp into raw (elem_size bytes each).
 * ONNX stores 8- and 16-bit types and bool in int32_data, float16 as its
 * bits there too, uint32/uint64 in uint64_data. */
static int pe__typed_to_raw(const Onnx__TensorProto *tp, size_t es,
                            unsigned char *raw, int64_t numel) {
  size_t n = (size_t)numel;
  switch (tp->data_type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    if (tp->n_float_data != n) {
      return -1;
    }
    if (n > 0) {
      memcpy(raw, tp->float_data, n * es);
    }
    return 0;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    if (tp->n_double_data != n) {
      return -1;
    }
    if (n > 0) {
      memcpy(raw, tp->double_data, n * es);
    }
    return 0;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    if (tp->n_int64_data != n) {
      return -1;
    }
    if (n > 0) {
      memcpy(raw, tp->int64_data, n * es);
    }
    return 0;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    if (tp->n_uint64_data != n) {
      return -1;
    }
    for (size_t i = 0; i < n; i++) {
      /* little-endian: the low bytes of the uint64 are the value */
      memcpy(raw + i * es, &tp->uint64_data[i], es);
    }
    return 0;
  default:
    if (tp->n_int32_data != n) {
      return -1;
    }
    for (size_t i = 0; i < n; i++) {
      memcpy(raw + i * es, &tp->int32_data[i], es);
    }
    return 0;
  }
}

int pe_node_tensor_read(const char *path, pe_node_tensor_t *t, char *err,
                        size_t cap) {
  memset(t, 0, sizeof *t);
  unsigned char *buf;
  size_t len;
  if (pe_node_read_file(path, &buf, &len, err, cap) != 0) {
    return -1;
  }
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
  free(buf);
  if (tp == NULL) {
    return PE__FAIL(err, cap, "%s: not a TensorProto", path);
  }
  int rc = -1;
  t->dtype = tp->data_type;
  t->elem_size = pe__elem_size(t->dtype);
  t->numel = 1;
  if (t->elem_size == 0) {
    pe_node_fmt(err, cap, "%s: element type %s is not read by this harness",
                path, pe_node_dtype_name(t->dtype));
    goto done;
  }
  if (tp->n_dims > PE_NODE_MAX_RANK) {
    pe_node_fmt(err, cap, "%s: rank %zu", path, tp->n_dims);
    goto done;
  }
  t->rank = (int)tp->n_dims;
  for (size_t i = 0; i < tp->n_dims; i++) {
    if (tp->dims[i] < 0 || tp->dims[i] > ((int64_t)1 << 30)) {
      pe_node_fmt(err, cap, "%s: dimension %lld", path, (long long)tp->dims[i]);
      goto done;
    }
    t->dims[i] = tp->dims[i];
    t->numel *= tp->dims[i];
    if (t->numel > ((int64_t)1 << 30)) {
      pe_node_fmt(err, cap, "%s: too many elements", path);
      goto done;
    }
  }
  size_t n = (size_t)t->numel;
  t->raw = malloc(n * t->elem_size + 1);
  t->v = malloc(n * sizeof *t->v + 1);
  if (t->raw == NULL || t->v == NULL) {
    pe_node_fmt(err, cap, "%s: out of memory", path);
    goto done;
  }
  if (tp->has_raw_data) {
    if (tp->raw_data.len != n * t->elem_size) {
      pe_node_fmt(err, cap, "%s: raw_data holds %zu bytes for %zu elements",
                  path, tp->raw_data.len, n);
      goto done;
    }
    if (n > 0) {
      memcpy(t->raw, tp->raw_data.data, tp->raw_data.len);
    }
  } else if (pe__typed_to_raw(tp, t->elem_size, t->raw, t->numel) != 0) {
    pe_node_fmt(err, cap, "%s: the typed data does not hold %zu elements", path,
                n);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    t->v[i] = pe__elem((const unsigned char *)t->raw + i * t->elem_size,
                       t->dtype, t->elem_size);
  }
  rc = 0;
done:
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (rc != 0) {
    pe_node_tensor_free(t);
  }
  return rc;
}

void pe_node_tensor_free(pe_node_tensor_t *t) {
  free(t->raw);
  free(t->v);
  t->raw = NULL;
  t->v = NULL;
}
