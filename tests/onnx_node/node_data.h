/* Reading one ONNX backend node test from its folder: the ops its model
 * uses and the tensors of its test_data_set_* folders (TensorProto files).
 *
 * Test-side code: it parses with the protobuf-c bindings the build generates
 * from onnx.proto, independently of the importer, so that the importer is
 * what is tested. Every function returns 0 or -1 with a message in err. */
#ifndef PE_NODE_DATA_H
#define PE_NODE_DATA_H

#include <stddef.h>
#include <stdint.h>

#define PE_NODE_MAX_RANK 8
#define PE_NODE_MAX_OPS 32
#define PE_NODE_MAX_IO 8
#define PE_NODE_NAME_MAX 96

/* One tensor of a test: its ONNX element type (TensorProto.DataType),
 * shape and values, both as stored (`raw`, little-endian, elem_size bytes
 * each) and as doubles (`v`) for comparisons. Owned by the caller: free with
 * pe_node_tensor_free. */
typedef struct pe_node_tensor {
  int dtype;
  int rank;
  int64_t dims[PE_NODE_MAX_RANK];
  int64_t numel;
  size_t elem_size;
  void *raw;
  double *v;
} pe_node_tensor_t;

/* What a test's model is: distinct op types of its graph's nodes in order
 * of first use ("domain:op" outside the default domain), its runtime inputs
 * (graph inputs that are not initializers) and outputs, by name. */
typedef struct pe_node_model {
  int n_ops;
  char ops[PE_NODE_MAX_OPS][PE_NODE_NAME_MAX];
  int n_inputs;
  char inputs[PE_NODE_MAX_IO][PE_NODE_NAME_MAX];
  int n_outputs;
  int64_t opset;
} pe_node_model_t;

/* Reads the whole file into *out (malloc'd, caller frees). */
int pe_node_read_file(const char *path, unsigned char **out, size_t *len,
                      char *err, size_t cap);

/* Describes the model held in buf (a model.onnx file). */
int pe_node_model_parse(const unsigned char *buf, size_t len,
                        pe_node_model_t *m, char *err, size_t cap);

/* Reads a TensorProto file (input_N.pb, output_N.pb). Element types: every
 * numeric type and bool; strings and complex numbers are refused. */
int pe_node_tensor_read(const char *path, pe_node_tensor_t *t, char *err,
                        size_t cap);

void pe_node_tensor_free(pe_node_tensor_t *t);

/* snprintf for messages, paths and names: a cut path names no file, and
 * the caller reports that. */
void pe_node_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "float32", "int64", ... for a TensorProto.DataType. */
const char *pe_node_dtype_name(int dtype);

#endif
