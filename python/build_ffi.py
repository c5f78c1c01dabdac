"""Generates the C source of the extension module pattern_engine._pe with
cffi (API mode): the declarations below are checked against the public
headers (include/pe/) when the generated file is compiled, so a field or
signature that drifts from the headers fails the build instead of
corrupting memory.

    python build_ffi.py OUT.c

CMake (python/CMakeLists.txt) runs this and compiles OUT.c with the
library. cffi releases the GIL around every call declared here.
"""

import os
import re
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = r"""
/* pe/error.h */
typedef enum pe_errno { PE_OK = 0, @ERRNO@ ... } pe_errno_t;
const char *pe_strerror(int err);
const char *pe_errname(int err);

/* pe/tick.h */
#define PE_SYMBOL_MAX ...
int pe_reject_from_error(int err);
const char *pe_reject_name(int reason);

/* pe/features.h */
const char *pe_feature_name(int feature);
int pe_feature_find(const char *name, size_t len);

/* pe/backend.h */
typedef struct pe_backend pe_backend_t;
typedef struct pe_backend_options {
  const char *model_path;
  const char *model_features;
  uint32_t window;
  uint32_t max_batch;
  uint32_t threads;
  const char *mode;
  const char *precision;
  ...;
} pe_backend_options_t;
typedef struct pe_model_info {
  uint32_t window;
  uint32_t n_features;
  uint32_t n_outputs;
  uint32_t n_classes;
  uint32_t max_batch;
  char input_name[...];
  char output_name[...];
  char feature_name[32][64];
  int feature[32];
  char class_name[16][64];
  ...;
} pe_model_info_t;
size_t pe_backend_count(void);
int pe_backend_open(const char *name, const pe_backend_options_t *opts,
                    pe_backend_t **out, char *err, size_t err_cap);
const pe_model_info_t *pe_backend_info(const pe_backend_t *backend);
const char *pe_backend_name(const pe_backend_t *backend);
void pe_backend_close(pe_backend_t *backend);

/* pe/engine.h */
const char *pe_rule_name(int rule);
typedef struct pe_rules_config {
  double ema_diff_threshold;
  double vwap_diff_threshold;
  double volume_ema_alpha;
  double volume_spike_multiplier;
  double breakout_sigma;
  uint32_t breakout_min_returns;
  double return_ewm_alpha;
  double signal_score_min;
  int64_t signal_cooldown_ns;
  ...;
} pe_rules_config_t;
typedef struct pe_engine_config {
  uint32_t max_symbols;
  double ema_fast_span;
  double ema_slow_span;
  double ema_td_half_life_s;
  double vwap_window_s;
  int session_reset_minute;
  pe_rules_config_t rules;
  uint32_t window;
  uint32_t infer_every;
  double model_threshold;
  uint32_t all_features;
  ...;
} pe_engine_config_t;
void pe_engine_config_init(pe_engine_config_t *config);
typedef struct pe_signal {
  char id[...];
  char label[...];
  char symbol[...];
  int64_t ts_ns;
  int pattern;
  int model_class;
  double score;
  double confidence;
  double price;
  uint32_t fired;
  double value[...];
  double contribution[...];
  ...;
} pe_signal_t;
typedef struct pe_engine_stats {
  uint64_t ticks;
  uint64_t rejected[...];
  uint32_t symbols;
  uint64_t signals[...];
  uint64_t inferences;
  ...;
} pe_engine_stats_t;
typedef struct pe_engine pe_engine_t;
int pe_engine_create(const pe_engine_config_t *config, pe_engine_t **out,
                     char *err, size_t err_cap);
void pe_engine_destroy(pe_engine_t *engine);
int pe_engine_set_backend(pe_engine_t *engine, pe_backend_t *backend);
int pe_engine_set_window(pe_engine_t *engine, uint32_t window);
void pe_engine_stats(const pe_engine_t *engine, pe_engine_stats_t *stats);
const char *pe_engine_errmsg(const pe_engine_t *engine);
size_t pe_engine_snapshot_size(const pe_engine_t *engine);
int pe_engine_snapshot(const pe_engine_t *engine, void *buf, size_t cap,
                       size_t *len);
int pe_engine_restore(pe_engine_t *engine, const void *buf, size_t len);

/* pe/sink.h */
typedef enum pe_format { PE_FORMAT_CSV = 0, PE_FORMAT_JSONL } pe_format_t;
const char *pe_signal_csv_header(void);
size_t pe_signal_format(const pe_signal_t *signal, pe_format_t format,
                        char *buf, size_t cap);
const char *pe_features_csv_header(void);

/* pe/parse.h */
typedef enum pe_ts_unit {
  PE_TS_AUTO = 0, PE_TS_S, PE_TS_MS, PE_TS_US, PE_TS_NS
} pe_ts_unit_t;
int pe_ts_unit_parse(const char *name, pe_ts_unit_t *unit);

/* pe/core.h */
typedef enum pe_core_isa {
  PE_CORE_ISA_AUTO = 0, PE_CORE_ISA_GENERIC, PE_CORE_ISA_AVX2,
  PE_CORE_ISA_AVX512
} pe_core_isa_t;
typedef struct pe_core_config {
  uint32_t n_symbols;
  double ema_fast_span;
  double ema_slow_span;
  pe_core_isa_t isa;
  size_t stream_min_ticks;
  ...;
} pe_core_config_t;
void pe_core_config_init(pe_core_config_t *cfg);

/* pe/model.h's types; its functions through pe_py_model.h */
typedef struct pe_model pe_model_t;
typedef struct pe_model_ctx pe_model_ctx_t;
typedef struct pe_model_tensor {
  char name[...];
  int rank;
  int batch_axis;
  int64_t dims[...];
  int64_t numel;
  int dtype;
  ...;
} pe_model_tensor_t;
typedef struct pe_model_desc {
  int64_t ir_version;
  int64_t opset;
  const char *producer;
  pe_model_tensor_t input;
  int n_outputs;
  pe_model_tensor_t outputs[...];
  int n_meta;
  const char *meta_key[...];
  const char *meta_value[...];
  int n_steps;
  int64_t flops;
  int64_t weight_bytes;
  int64_t arena_floats;
  const char *kernels;
  int n_inputs;
  pe_model_tensor_t inputs[...];
  ...;
} pe_model_desc_t;
"""

SOURCE = r"""
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/features.h"
#include "pe/parse.h"
#include "pe/sink.h"
#include "pe_py.h"
#include "pe_py_model.h"
"""


def error_names() -> list:
    """PE_E* names from the one list, PE_ERRNO_MAP in pe/error.h."""
    with open(os.path.join(HERE, "..", "include", "pe", "error.h")) as f:
        names = re.findall(r"^\s*X\((\w+),", f.read(), re.M)
    if not names:
        sys.exit("build_ffi.py: no PE_ERRNO_MAP entries found in pe/error.h")
    return [f"PE_E{n}" for n in names]


def own_header(name: str) -> str:
    """The declarations of one of the package's own headers (python/src/),
    read as they are: constants become `...` (the compiler gives their
    values), as do array lengths named by a macro."""
    with open(os.path.join(HERE, "src", name)) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines()
             if not re.match(r"\s*#\s*(include|ifndef|endif)\b", ln)
             and not re.match(r"\s*#\s*define\s+PE_PY\w*_H\s*$", ln)]
    text = "\n".join(lines)
    text = re.sub(r"^(\s*#\s*define\s+\w+)\s+.*$", r"\1 ...", text, flags=re.M)
    return re.sub(r"\[[A-Z_]+\]", "[...]", text)


def builder() -> cffi.FFI:
    ffi = cffi.FFI()
    cdef = CDEF.replace("@ERRNO@", "".join(f"{n}, " for n in error_names()))
    ffi.cdef(cdef + own_header("pe_py_model.h") + own_header("pe_py.h"))
    ffi.set_source("pattern_engine._pe", SOURCE)
    return ffi


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: build_ffi.py OUT.c")
    builder().emit_c_code(sys.argv[1])
