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

void pe__graph_free(pe__graph_t *g) {
  for (int i = 0; i < g->n_t; i++) {
    free(g->t[i].name);
    free(g->t[i].f);
    free(g->t[i].i);
    free(g->t[i].mark);
  }
  free(g->t);
  free(g->hash);
  free(g->node);
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

/* Copies an ONNX TensorProto into tensor t as a constant (float32 or int64;
 * int32 is widened to int64). `what` names it in messages. */
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
  if ((tp->has_data_location &&
       tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
      tp->n_external_data > 0) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' keeps its data in an external file; only "
                         "data stored inside the .onnx file is supported (save "
                         "with onnx.save(model, path, save_as_external_data="
                         "False))",
                         what, t->name);
  }
  if (tp->segment != NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "%s '%s' is segmented; not supported", what, t->name);
  }
  int32_t dt = tp->has_data_type ? tp->data_type : 0;
  size_t n = (size_t)numel;
  t->numel = numel;
  t->is_const = 1;
  t->known = 1;
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    t->dtype = PE__DT_F32;
    t->f = calloc(n ? n : 1, sizeof(float));
    if (t->f == NULL) {
      return PE_ENOMEM;
    }
    if (tp->has_raw_data && tp->raw_data.len > 0) {
      if (tp->raw_data.len != n * 4) {
        return pe__graph_err(g, PE_ECORRUPT,
                             "%s '%s': raw_data holds %zu bytes, its shape "
                             "needs %zu (truncated file?)",
                             what, t->name, tp->raw_data.len, n * 4);
      }
      memcpy(t->f, tp->raw_data.data, n * 4); /* little-endian host */
    } else if (tp->n_float_data == n && n > 0) {
      memcpy(t->f, tp->float_data, n * 4);
    } else if (n > 0) {
      return pe__graph_err(g, PE_ECORRUPT,
                           "%s '%s': holds %zu floats, its shape needs %zu",
                           what, t->name, tp->n_float_data, n);
    }
    return PE_OK;
  }
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
      dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
    size_t es = dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 4;
    t->dtype = PE__DT_I64;
    t->i = calloc(n ? n : 1, sizeof(int64_t));
    if (t->i == NULL) {
      return PE_ENOMEM;
    }
    if (tp->has_raw_data && tp->raw_data.len > 0) {
      if (tp->raw_data.len != n * es) {
        return pe__graph_err(g, PE_ECORRUPT,
                             "%s '%s': raw_data holds %zu bytes, its shape "
                             "needs %zu (truncated file?)",
                             what, t->name, tp->raw_data.len, n * es);
      }
      for (size_t k = 0; k < n; k++) {
        if (es == 8) {
          memcpy(&t->i[k], tp->raw_data.data + k * 8, 8);
        } else {
          int32_t v;
          memcpy(&v, tp->raw_data.data + k * 4, 4);
          t->i[k] = v;
        }
      }
    } else if (es == 8 && tp->n_int64_data == n && n > 0) {
      memcpy(t->i, tp->int64_data, n * 8);
    } else if (es == 4 && tp->n_int32_data == n) {
      for (size_t k = 0; k < n; k++) {
        t->i[k] = tp->int32_data[k];
      }
    } else if (n > 0) {
      return pe__graph_err(g, PE_ECORRUPT,
                           "%s '%s': its data does not match its shape", what,
                           t->name);
    }
    return PE_OK;
  }
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
    /* masks (Where's condition): held as int64 0 / 1 */
    t->dtype = PE__DT_I64;
    t->i = calloc(n ? n : 1, sizeof(int64_t));
    if (t->i == NULL) {
      return PE_ENOMEM;
    }
    int raw = tp->has_raw_data && tp->raw_data.len > 0;
    if ((raw && tp->raw_data.len != n) || (!raw && tp->n_int32_data != n)) {
      return pe__graph_err(g, PE_ECORRUPT,
                           "%s '%s': its data does not match its shape", what,
                           t->name);
    }
    for (size_t k = 0; k < n; k++) {
      t->i[k] = (raw ? tp->raw_data.data[k] : tp->int32_data[k]) != 0;
    }
    return PE_OK;
  }
  return pe__graph_err(g, PE_EUNSUPPORTED,
                       "%s '%s' is %s; only float32 (and int64 shape "
                       "constants) are supported",
                       what, t->name, pe__dtype_name(dt));
}

int pe__onnx_load_tensor(pe__graph_t *g, pe__tensor_t *t, const void *tp,
                         const char *what) {
  return pe__load_tensor(g, t, tp, what);
}

/* Declared shape of a graph input or output into t (the batch dimension,
 * axis 0, kept as 1). `what` is "input" or "output". */
static int pe__value_shape(pe__graph_t *g, pe__tensor_t *t,
                           const Onnx__ValueInfoProto *vi, const char *what) {
  const Onnx__TypeProto *tp = vi->type;
  if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
      tp->tensor_type == NULL) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph %s '%s' is not a tensor; only float32 tensors "
                         "are supported",
                         what, t->name);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int32_t dt = tt->has_elem_type ? tt->elem_type : 0;
  if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph %s '%s' is %s; only float32 is supported", what,
                         t->name, pe__dtype_name(dt));
  }
  t->dtype = PE__DT_F32;
  if (tt->shape == NULL) {
    if (strcmp(what, "output") == 0) {
      return PE_OK; /* shape comes from inference */
    }
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph input '%s' has no shape; declare [batch, ...]",
                         t->name);
  }
  const Onnx__TensorShapeProto *sh = tt->shape;
  if (sh->n_dim < 1 || sh->n_dim > PE__MAX_RANK) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph %s '%s' has rank %zu; 1 to %d is supported "
                         "(axis 0 is the batch)",
                         what, t->name, sh->n_dim, PE__MAX_RANK);
  }
  t->rank = (int)sh->n_dim;
  t->numel = 1;
  for (size_t d = 0; d < sh->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
    int has_value =
        dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (d == 0) {
      t->dims[0] = 1;
      continue;
    }
    if (!has_value || dm->dim_value <= 0 || dm->dim_value > PE__MAX_ELEMS) {
      const char *p =
          dm->value_case ==
                      ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                  dm->dim_param
              ? dm->dim_param
              : "?";
      if (strcmp(what, "output") == 0) {
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
  t->batch_axis = 0;
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

/* protobuf-c allocator that refuses absurd requests so that a hostile length
 * field cannot make us ask the system for terabytes. */
static void *pe__pb_alloc(void *data, size_t size) {
  (void)data;
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
  Onnx__ModelProto *mp =
      onnx__model_proto__unpack(&pe__pb_allocator, len, data);
  if (mp == NULL) {
    return pe__graph_err(g, PE_ECORRUPT,
                         "not a valid ONNX protobuf (truncated or corrupt "
                         "file, %zu bytes)",
                         len);
  }
  *proto_out = mp;
  g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
  if (g->ir_version < 3 || g->ir_version > 10) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "IR version %lld; versions 3 to 10 are supported",
                         (long long)g->ir_version);
  }
  g->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
    const char *dom = os->domain ? os->domain : "";
    if ((dom[0] == '\0' || strcmp(dom, "ai.onnx") == 0) && os->has_version) {
      g->opset = os->version;
    }
  }
  if (g->opset < 11 || g->opset > 17) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "default-domain opset %lld; opsets 11 to 17 are "
                         "supported (torch.onnx.export(..., opset_version=17))",
                         (long long)g->opset);
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
  g->input = -1;
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = vi->name ? vi->name : "";
    if (pe__graph_find(g, name) >= 0) {
      continue; /* IR < 4 lists initializers as inputs too */
    }
    if (g->input >= 0) {
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "graph inputs '%s' and '%s': exactly one runtime "
                           "input (the window batch) is supported",
                           g->t[g->input].name, name);
    }
    int id = pe__graph_add(g, name);
    if (id < 0) {
      return id;
    }
    int rc = pe__value_shape(g, &g->t[id], vi, "input");
    if (rc != PE_OK) {
      pe__append_consumer(g, gp, name);
      return rc;
    }
    g->t[id].known = 1;
    g->t[id].is_input = 1;
    g->input = id;
  }
  if (g->input < 0) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "the graph has no runtime input; one float32 input "
                         "[batch, ...] is needed");
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
    nd->proto = np;
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
    int rc = pe__value_shape(g, &tmp, vi, "output");
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
