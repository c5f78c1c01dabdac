/* NumPy .npy arrays (format version 1.0 written; 1.0 to 3.0 read), float32,
 * C order, little-endian: the format `numpy.save` writes and `numpy.load`
 * reads. Parsing and formatting work on memory only; the caller does I/O. */
#ifndef PE_NPY_H
#define PE_NPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PE_NPY_MAX_RANK 8

/* Element types (ONNX's numbering, as pe_model_tensor_t's dtype). */
#define PE_NPY_FLOAT32 1
#define PE_NPY_INT64 7
#define PE_NPY_BOOL 9

typedef struct pe_npy {
  int rank;
  int64_t shape[PE_NPY_MAX_RANK];
  int64_t count;    /* elements: product of shape */
  const void *data; /* points into the parsed buffer (may be unaligned) */
  int dtype;        /* PE_NPY_FLOAT32, PE_NPY_INT64 or PE_NPY_BOOL */
} pe_npy_t;

/* Parses an .npy file held in data[0..len). Only '<f4' (float32), C order.
 * Returns PE_OK, or PE_EPARSE / PE_EUNSUPPORTED / PE_ECORRUPT with one line
 * in err saying what is wrong. */
int pe_npy_parse(const void *data, size_t len, pe_npy_t *out, char *err,
                 size_t err_cap);

/* As pe_npy_parse, also accepting '<i8' (int64) and '|b1' (bool, one byte
 * per element); out->dtype says which. */
int pe_npy_parse_any(const void *data, size_t len, pe_npy_t *out, char *err,
                     size_t err_cap);

/* Writes the v1.0 header for a float32 C-order array of `shape` into buf
 * (the data follows it). Returns its length (a multiple of 64), or 0 when cap
 * is too small or rank out of range. */
size_t pe_npy_header(char *buf, size_t cap, const int64_t *shape, int rank);

/* pe_npy_header for an array of `descr` elements: "<f4" (float32), "<i8"
 * (int64) or "|b1" (bool, one byte each). Returns 0 also for another
 * descr. */
size_t pe_npy_header_typed(char *buf, size_t cap, const char *descr,
                           const int64_t *shape, int rank);

#ifdef __cplusplus
}
#endif
#endif
