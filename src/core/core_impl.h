/* Internals of the columnar feature core (pe/core.h), shared by the generic
 * code (core.c) and the vector code (core_avx2.c, core_avx512.c). All three
 * are built with -ffp-contract=off: a fused multiply-add would round once
 * where pe/state.h rounds twice, and the bits would differ. */
#ifndef PE_CORE_IMPL_H
#define PE_CORE_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "pe/core.h"

/* One symbol's state, one cache line: the eight doubles the AVX-512 code
 * loads as a row and transposes. n counts ticks as a double (exact up to
 * 2^53), since every use of it is in double arithmetic. */
typedef struct pe__core_sym {
  double ema_fast;
  double ema_slow;
  double pv_sum;
  double v_sum;
  double n;
  double mean;
  double m2;
  double unused;
} pe__core_sym_t;

struct pe_core {
  pe__core_sym_t *sym; /* n_symbols rows, 64-byte aligned */
  uint32_t n_symbols;
  pe_core_isa_t isa; /* never AUTO */
  size_t stream_min_ticks;
  double alpha_fast, keep_fast; /* alpha and 1 - alpha, as pe_ema_update */
  double alpha_slow, keep_slow;
  char errmsg[160];
};

/* Folds one tick into s and returns its five features in o (ema_fast,
 * ema_slow, vwap, mean, var): the arithmetic of pe_ema_update,
 * pe_cvwap_update and pe_welford_update, operation for operation. */
static inline void pe__core_step(const pe_core_t *core, pe__core_sym_t *s,
                                 double x, double v, double o[5]) {
  if (s->n == 0.0) {
    s->ema_fast = x;
    s->ema_slow = x;
  } else {
    s->ema_fast = core->keep_fast * s->ema_fast + core->alpha_fast * x;
    s->ema_slow = core->keep_slow * s->ema_slow + core->alpha_slow * x;
  }
  s->pv_sum += x * v;
  s->v_sum += v;
  double n = s->n + 1.0;
  s->n = n;
  double d = x - s->mean;
  s->mean += d / n;
  s->m2 += d * (x - s->mean);
  o[0] = s->ema_fast;
  o[1] = s->ema_slow;
  o[2] = s->v_sum > 0.0 ? s->pv_sum / s->v_sum : NAN;
  o[3] = s->mean;
  o[4] = n > 1.0 ? s->m2 / (n - 1.0) : NAN;
}

/* Writes o to the non-NULL columns at tick i. */
static inline void pe__core_put(const pe_core_columns_t *out, size_t i,
                                const double o[5]) {
  if (out->ema_fast != NULL) {
    out->ema_fast[i] = o[0];
  }
  if (out->ema_slow != NULL) {
    out->ema_slow[i] = o[1];
  }
  if (out->vwap != NULL) {
    out->vwap[i] = o[2];
  }
  if (out->mean != NULL) {
    out->mean[i] = o[3];
  }
  if (out->var != NULL) {
    out->var[i] = o[4];
  }
}

/* Ticks from .. n-1, one at a time; returns the index of the first tick
 * whose symbol is out of range, n when none is. */
size_t pe__core_run_generic(pe_core_t *core, size_t from, size_t n,
                            const int32_t *sym, const double *price,
                            const double *volume, const pe_core_columns_t *out);

/* How the vector paths store a run (core.c picks): ordinary stores that
 * need no alignment, aligned ones, or streaming ones (aligned too). */
enum { PE__CORE_UNALIGNED, PE__CORE_ALIGNED, PE__CORE_STREAM };

/* The vector paths' block loops: ticks from .. n-1, four (core_avx2.c) or
 * eight (core_avx512.c) at a time, stored as mode says, the output columns
 * at a line boundary at tick from unless mode is PE__CORE_UNALIGNED; each
 * only called when its _usable() said yes. Return as
 * pe__core_run_generic. */
size_t pe__core_blocks_avx2(pe_core_t *core, size_t from, size_t n,
                            const int32_t *sym, const double *price,
                            const double *volume, const pe_core_columns_t *out,
                            int mode);
size_t pe__core_blocks_avx512(pe_core_t *core, size_t from, size_t n,
                              const int32_t *sym, const double *price,
                              const double *volume,
                              const pe_core_columns_t *out, int mode);
int pe__core_avx2_usable(void);
int pe__core_avx512_usable(void);

#endif
