/* The Python package's C side: ticks from columns (or a tick file) pushed
 * through an engine, features written to columns and signals gathered, in
 * one call, so that Python never loops per tick.
 *
 * Everything here is built on the public headers in include/pe/ only. The
 * package binds these functions and the public API with cffi; the GIL is
 * released during every call. Nothing here prints. */
#ifndef PE_PY_H
#define PE_PY_H

#include <stddef.h>
#include <stdint.h>

#include "pe/core.h"
#include "pe/engine.h"
#include "pe/tick.h"

/* Columns of n ticks, owned by the caller. Symbols are codes into symtab:
 * code c names the symlen[c] bytes at symtab + c * PE_PY_SYMBOL_STRIDE (a
 * length over PE_SYMBOL_MAX, or 0, is rejected as the engine would; a
 * negative code is an absent symbol, rejected as empty). */
#define PE_PY_SYMBOL_STRIDE 32

typedef struct pe_py_columns {
  size_t n;
  const int64_t *ts_ns;
  const int32_t *sym;
  const double *price;
  const double *volume;
  const char *symtab;
  const uint32_t *symlen;
  uint32_t n_symtab;
} pe_py_columns_t;

/* Columns written per accepted tick: its price and volume, then
 * ema_fast, ema_slow, vwap, mean, var, then every standard feature in
 * pe/features.h's order (one float64 block, so that the Python side makes
 * one DataFrame block of it without a copy). */
#define PE_PY_FEATURE_COLUMNS (7 + PE_FEATURE_COUNT)

/* What a run produced. The caller zeroes it and sets the inputs; the run
 * fills the rest; pe_py_result_free releases the signals. */
typedef struct pe_py_result {
  /* inputs */
  int stop_on_reject; /* 1: the first rejected tick stops the run */
  double *features;   /* NULL, or PE_PY_FEATURE_COLUMNS * n doubles: column
                         c of accepted tick k at features[c * n + k] */
  int64_t *accepted;  /* NULL, or n: the input row of accepted tick k */
  int64_t *ts_out;    /* NULL, or n: the ts_ns of accepted tick k */
  int32_t *codes_out; /* NULL, or n: the symbol code of accepted tick k */
  /* outputs */
  uint64_t rows; /* ticks (or data rows of a file) read */
  size_t n_accepted;
  uint64_t rejected[PE_REJECT_COUNT]; /* by reason */
  int64_t stop_row; /* input row (file: line number) of the tick that stopped
                       the run, -1 when none did */
  pe_signal_t *signals; /* n_signals, in order */
  size_t n_signals;
  size_t cap_signals;
  char errmsg[512];
} pe_py_result_t;

/* Pushes the columns through the engine, in order, in batches. Returns
 * PE_OK; with stop_on_reject, the rejected tick's code (pe/tick.h); or an
 * engine error that stops any run (PE_EFULL, PE_EBACKEND, PE_ENOMEM for the
 * signals), with stop_row and errmsg set. */
int pe_py_push(pe_engine_t *engine, const pe_py_columns_t *cols,
               pe_py_result_t *res);

/* Reads a tick CSV file (pe/csv.h's rules, as `replay --ticks`) through the
 * engine into res (features and accepted are not written: leave them NULL).
 * Errors as pe_py_push's, plus those of pe_source_open and pe_source_run. */
int pe_py_replay_file(pe_engine_t *engine, const char *path, int ts_unit,
                      pe_py_result_t *res);

/* pe_py_push's features for every accepted tick, with the ticks split by
 * symbol code (code modulo n_shards) over n_shards engines made from
 * config, one thread each, at once. The result is pe_py_push's on a fresh
 * engine from config: each symbol's ticks meet the same state in the same
 * order, and the rows come out in input order. Needs res->features and
 * res->accepted, stop_on_reject 0, and no more symbol codes than
 * config->max_symbols (so that no shard's table fills where one would not);
 * signals are not gathered. Errors as pe_py_push's, the one at the
 * earliest row; PE_EINVAL for a call outside these terms. */
int pe_py_push_sharded(const pe_engine_config_t *config, unsigned n_shards,
                       const pe_py_columns_t *cols, pe_py_result_t *res);

void pe_py_result_free(pe_py_result_t *res);

/* Price, volume and the columnar core's five columns (ema_fast, ema_slow,
 * vwap, mean, var) for the ticks the engine would accept: each tick is first
 * checked as pe_engine_push checks it (price, volume, symbol, order within its
 * symbol), and only accepted ticks are folded. features and accepted as in
 * pe_py_result_t (7 columns), stop_on_reject likewise. */
int pe_py_core_features(const pe_core_config_t *config,
                        const pe_py_columns_t *cols, pe_py_result_t *res);

#endif
