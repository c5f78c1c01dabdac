/* The feature core over columns: the price EMAs, the cumulative VWAP and
 * Welford's running mean and sample variance of many ticks of many symbols
 * at once, read from arrays and written to arrays.
 *
 * It is the batch form of pe/state.h's streaming statistics, for backfills
 * and research over stored ticks: tick i of symbol s gets the values that
 * pe_ema_t (spans ema_fast_span, ema_slow_span), pe_cvwap_t and pe_welford_t
 * would hold for s after the same ticks, bit for bit, whichever code path
 * runs and however the ticks are split between calls. tests/test_core.c
 * checks this against the streaming structs.
 *
 * Ticks are taken as they are: no tick is checked or rejected, so a NaN in
 * gives NaNs out, as in pandas (the engine, pe/engine.h, is the place that
 * validates ticks). Symbols are small integers the caller assigns, in
 * [0, n_symbols).
 *
 * pe_core_create allocates everything (64 bytes a symbol); pe_core_run
 * allocates nothing, locks nothing and makes no system call. One core is
 * used by one thread at a time.
 *
 * Where the CPU has AVX-512 (F, CD, VL), pe_core_run folds eight ticks at a
 * time when their symbols differ, with AVX2 four; and on either it writes
 * long runs' outputs (stream_min_ticks, 64 Ki by default) with streaming
 * stores, which skip the cache: right for backfills, wrong for a caller
 * that reads a large output straight back, who should raise
 * stream_min_ticks. Elsewhere it runs one tick at a time. */
#ifndef PE_CORE_H
#define PE_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pe_core_isa {
  PE_CORE_ISA_AUTO = 0, /* the fastest this CPU runs */
  PE_CORE_ISA_GENERIC,  /* one tick at a time, any CPU */
  PE_CORE_ISA_AVX2,     /* four at a time; create fails without AVX2 */
  PE_CORE_ISA_AVX512    /* eight at a time; create fails without AVX-512 */
} pe_core_isa_t;

typedef struct pe_core_config {
  uint32_t n_symbols;   /* symbol ids are 0 .. n_symbols - 1 */
  double ema_fast_span; /* alpha = 2 / (span + 1), as pe_ema_init_span */
  double ema_slow_span;
  pe_core_isa_t isa;
  /* Runs of at least this many ticks write with streaming stores (on the
   * vector paths); SIZE_MAX never does. */
  size_t stream_min_ticks;
} pe_core_config_t;

/* n_symbols 0 (the caller must set it), spans 19 and 39 (the engine's
 * defaults, alpha 0.1 and 0.05), isa AUTO, stream_min_ticks 65536. */
void pe_core_config_init(pe_core_config_t *cfg);

typedef struct pe_core pe_core_t;

/* PE_EINVAL for n_symbols 0, a span below 1 or an unknown isa,
 * PE_EUNSUPPORTED for isa AVX2 or AVX512 on a CPU without it, PE_ENOMEM;
 * err (may be NULL) gets a line saying which. */
int pe_core_create(const pe_core_config_t *cfg, pe_core_t **out, char *err,
                   size_t errlen);
void pe_core_destroy(pe_core_t *core); /* NULL is a no-op */

/* Every symbol back to no tick seen. */
void pe_core_reset(pe_core_t *core);

/* "avx512", "avx2" or "generic": the code path pe_core_run takes. */
const char *pe_core_isa_name(const pe_core_t *core);

/* Output columns, each of n doubles, owned by the caller; a NULL column is
 * not written. vwap is NaN until the symbol's summed volume is positive, var
 * (sample variance, divisor n - 1) NaN below two ticks. */
typedef struct pe_core_columns {
  double *ema_fast;
  double *ema_slow;
  double *vwap;
  double *mean;
  double *var;
} pe_core_columns_t;

/* Folds ticks 0 .. n-1, in order, into their symbols' state and writes each
 * tick's features to out. PE_EINVAL when a symbol id is out of range: the
 * ticks before it are folded and written, none from it on, and
 * pe_core_errmsg names the tick. */
int pe_core_run(pe_core_t *core, size_t n, const int32_t *sym,
                const double *price, const double *volume,
                const pe_core_columns_t *out);

/* One symbol's features after the ticks folded so far (NaN where not yet
 * defined; all NaN and n 0 before its first tick). */
typedef struct pe_core_values {
  uint64_t n; /* ticks folded */
  double ema_fast;
  double ema_slow;
  double vwap;
  double mean;
  double var;
} pe_core_values_t;

/* PE_EINVAL when sym is out of range. */
int pe_core_symbol(const pe_core_t *core, uint32_t sym, pe_core_values_t *out);

/* The last error's detail ("" when none). */
const char *pe_core_errmsg(const pe_core_t *core);

#ifdef __cplusplus
}
#endif

#endif
