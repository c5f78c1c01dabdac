/* The cuda backend's plan files (`pattern-engine build-engine`): the
 * resolved steps and weights of a model for one device, loaded by
 * `--model FILE` without the ONNX importer.
 *
 * Layout (little-endian, as this build's structures lie in memory; the
 * format version changes whenever they do): a header of
 * PE_CUDA_PLAN_HEADER bytes (pe_cuda_plan_header_t), then the payload:
 * the model's pe_model_info_t; in_numel, out_numel, arena_ps (int64) and
 * n_steps, n_blobs (int32); each blob as its byte count (uint64) and its
 * bytes padded to 8; then the n_steps pe_cuda_step_t, their device
 * pointers written as references (PE_CUDA_REF_*). The header's checksum
 * (FNV-1a, 64 bits) covers the payload: it finds a damaged file, not a
 * forged one: a plan file is trusted as the program is.
 *
 * These checks need no device; the device name and compute capability
 * are compared with the device's by the backend once it has opened it. */
#ifndef PE_BACKENDS_CUDA_PLAN_H
#define PE_BACKENDS_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#define PE_CUDA_PLAN_MAGIC "PECUDAPL"
#define PE_CUDA_PLAN_VERSION 4u
#define PE_CUDA_PLAN_HEADER 256

/* A step's device pointer in a file: the kind in the top byte, an index
 * or an offset below. */
#define PE_CUDA_REF_NULL ((uint64_t)0)
#define PE_CUDA_REF_BLOB ((uint64_t)1 << 56)   /* | blob index */
#define PE_CUDA_REF_INPUT ((uint64_t)2 << 56)  /* the plan's input */
#define PE_CUDA_REF_OUTPUT ((uint64_t)3 << 56) /* the plan's output */
#define PE_CUDA_REF_ARENA ((uint64_t)4 << 56)  /* | offset, floats/window */
#define PE_CUDA_REF_KIND(r) ((r) & ((uint64_t)0xff << 56))
#define PE_CUDA_REF_VALUE(r) ((r) & (((uint64_t)1 << 56) - 1))

typedef struct pe_cuda_plan_header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  char device[128];
  int32_t cc_major, cc_minor;
  char precision[16];
  uint64_t payload_bytes;
  uint64_t checksum;
  /* the plan's FLOP per window, which persistent mode chooses its form by
   * (0, as in the files of builds before it, for unknown) */
  uint64_t flops;
  char reserved[PE_CUDA_PLAN_HEADER - 8 - 4 - 4 - 128 - 8 - 16 - 8 - 8 - 8];
} pe_cuda_plan_header_t;

_Static_assert(sizeof(pe_cuda_plan_header_t) == PE_CUDA_PLAN_HEADER,
               "the plan header is PE_CUDA_PLAN_HEADER bytes");

uint64_t pe__cuda_plan_checksum(const void *data, size_t len);

/* What path holds, from its name and first bytes: 1 a plan file, 0
 * anything else (an ONNX model, for the importer to judge), or
 * PE_EUNSUPPORTED with the reason in err for a TensorRT engine (a name
 * ending .engine, .trt or .plan, or the first bytes "ftrt" or "ptrt"). */
int pe__cuda_plan_sniff(const char *path, char *err, size_t cap);

/* Checks a whole plan file in memory (magic, format version, sizes,
 * checksum, precision): PE_OK, or PE_EMODEL / PE_EUNSUPPORTED with one
 * line in err. */
int pe__cuda_plan_check(const void *file, size_t len, char *err, size_t cap);

#endif
