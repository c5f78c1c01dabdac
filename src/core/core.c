/* The columnar feature core (pe/core.h): setup, the generic path, and the
 * choice of path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_impl.h"
#include "pe/defaults.h"
#include "pe/error.h"
#include "pe/state.h"

void pe_core_config_init(pe_core_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->ema_fast_span = PE_DEFAULT_EMA_FAST_SPAN;
  cfg->ema_slow_span = PE_DEFAULT_EMA_SLOW_SPAN;
  cfg->isa = PE_CORE_ISA_AUTO;
  cfg->stream_min_ticks = (size_t)1 << 16;
}

static int pe__core_fail(char *err, size_t errlen, int code, const char *msg) {
  if (err != NULL && errlen > 0) {
    snprintf(err, errlen, "%s", msg);
  }
  return code;
}

int pe_core_create(const pe_core_config_t *cfg, pe_core_t **out, char *err,
                   size_t errlen) {
  *out = NULL;
  if (cfg->n_symbols == 0) {
    return pe__core_fail(err, errlen, PE_EINVAL,
                         "core: n_symbols must be at least 1");
  }
  if (!(cfg->ema_fast_span >= 1.0) || !(cfg->ema_slow_span >= 1.0)) {
    return pe__core_fail(err, errlen, PE_EINVAL,
                         "core: EMA spans must be at least 1");
  }
  int avx2 = pe__core_avx2_usable(), avx512 = pe__core_avx512_usable();
  if (cfg->isa != PE_CORE_ISA_AUTO && cfg->isa != PE_CORE_ISA_GENERIC &&
      cfg->isa != PE_CORE_ISA_AVX2 && cfg->isa != PE_CORE_ISA_AVX512) {
    return pe__core_fail(err, errlen, PE_EINVAL, "core: unknown isa");
  }
  if ((cfg->isa == PE_CORE_ISA_AVX512 && !avx512) ||
      (cfg->isa == PE_CORE_ISA_AVX2 && !avx2)) {
    return pe__core_fail(err, errlen, PE_EUNSUPPORTED,
                         cfg->isa == PE_CORE_ISA_AVX2
                             ? "core: this CPU (or build) has no AVX2; use "
                               "isa AUTO or GENERIC"
                             : "core: this CPU (or build) has no AVX-512 "
                               "F/CD/VL; use isa AUTO, AVX2 or GENERIC");
  }
  pe_core_t *core = calloc(1, sizeof *core);
  size_t bytes = (size_t)cfg->n_symbols * sizeof(pe__core_sym_t);
  pe__core_sym_t *rows = core != NULL ? aligned_alloc(64, bytes) : NULL;
  if (rows == NULL) {
    free(core);
    return pe__core_fail(err, errlen, PE_ENOMEM, "core: out of memory");
  }
  core->sym = rows;
  core->n_symbols = cfg->n_symbols;
  core->stream_min_ticks = cfg->stream_min_ticks;
  core->isa = cfg->isa;
  if (core->isa == PE_CORE_ISA_AUTO) {
    core->isa = avx512 ? PE_CORE_ISA_AVX512
                : avx2 ? PE_CORE_ISA_AVX2
                       : PE_CORE_ISA_GENERIC;
  }
  /* The alphas exactly as pe_ema_init_span computes them. */
  pe_ema_t fast, slow;
  pe_ema_init_span(&fast, cfg->ema_fast_span);
  pe_ema_init_span(&slow, cfg->ema_slow_span);
  core->alpha_fast = fast.alpha;
  core->keep_fast = 1.0 - fast.alpha;
  core->alpha_slow = slow.alpha;
  core->keep_slow = 1.0 - slow.alpha;
  pe_core_reset(core);
  *out = core;
  return PE_OK;
}

void pe_core_destroy(pe_core_t *core) {
  if (core != NULL) {
    free(core->sym);
    free(core);
  }
}

void pe_core_reset(pe_core_t *core) {
  memset(core->sym, 0, (size_t)core->n_symbols * sizeof *core->sym);
  core->errmsg[0] = '\0';
}

const char *pe_core_isa_name(const pe_core_t *core) {
  return core->isa == PE_CORE_ISA_AVX512 ? "avx512"
         : core->isa == PE_CORE_ISA_AVX2 ? "avx2"
                                         : "generic";
}

const char *pe_core_errmsg(const pe_core_t *core) { return core->errmsg; }

size_t pe__core_run_generic(pe_core_t *core, size_t from, size_t n,
                            const int32_t *sym, const double *price,
                            const double *volume,
                            const pe_core_columns_t *out) {
  pe__core_sym_t *rows = core->sym;
  uint32_t n_symbols = core->n_symbols;
  for (size_t i = from; i < n; i++) {
    uint32_t s = (uint32_t)sym[i];
    if (s >= n_symbols) {
      return i;
    }
    double o[5];
    pe__core_step(core, &rows[s], price[i], volume[i], o);
    pe__core_put(out, i, o);
  }
  return n;
}

/* Whether every non-NULL column sits at the same offset within a 64-byte
 * line, at a multiple of 8 bytes; *lead gets the ticks before the next line
 * boundary (0 when all are NULL). */
static int pe__core_line_lead(const pe_core_columns_t *out, size_t *lead) {
  const double *cols[5] = {out->ema_fast, out->ema_slow, out->vwap, out->mean,
                           out->var};
  int found = 0;
  uintptr_t off = 0;
  for (int k = 0; k < 5; k++) {
    if (cols[k] == NULL) {
      continue;
    }
    uintptr_t o = (uintptr_t)cols[k] % 64u;
    if (o % 8u != 0 || (found && o != off)) {
      return 0;
    }
    off = o;
    found = 1;
  }
  *lead = off == 0 ? 0 : (64u - off) / 8u;
  return 1;
}

/* How to store a run of n ticks: PE__CORE_UNALIGNED when the columns do
 * not share an alignment, else PE__CORE_ALIGNED or, for runs of
 * stream_min_ticks or more, PE__CORE_STREAM, after *lead ticks one at a
 * time up to the columns' first line boundary (*lead is 0 for
 * UNALIGNED). */
static int pe__core_store_mode(const pe_core_t *core,
                               const pe_core_columns_t *out, size_t n,
                               size_t *lead) {
  *lead = 0;
  if (!pe__core_line_lead(out, lead)) {
    return PE__CORE_UNALIGNED;
  }
  *lead = *lead < n ? *lead : n;
  return n - *lead >= core->stream_min_ticks ? PE__CORE_STREAM
                                             : PE__CORE_ALIGNED;
}

typedef size_t (*pe__core_blocks_fn)(pe_core_t *core, size_t from, size_t n,
                                     const int32_t *sym, const double *price,
                                     const double *volume,
                                     const pe_core_columns_t *out, int mode);

/* A vector path: the ticks before the columns' first line boundary one at
 * a time, then blocks. Returns as pe__core_run_generic. */
static size_t pe__core_run_vector(pe_core_t *core, pe__core_blocks_fn blocks,
                                  size_t n, const int32_t *sym,
                                  const double *price, const double *volume,
                                  const pe_core_columns_t *out) {
  size_t lead;
  int mode = pe__core_store_mode(core, out, n, &lead);
  size_t done = pe__core_run_generic(core, 0, lead, sym, price, volume, out);
  return done < lead ? done
                     : blocks(core, lead, n, sym, price, volume, out, mode);
}

int pe_core_run(pe_core_t *core, size_t n, const int32_t *sym,
                const double *price, const double *volume,
                const pe_core_columns_t *out) {
  core->errmsg[0] = '\0';
  size_t done;
  if (core->isa == PE_CORE_ISA_AVX512) {
    done = pe__core_run_vector(core, pe__core_blocks_avx512, n, sym, price,
                               volume, out);
  } else if (core->isa == PE_CORE_ISA_AVX2) {
    done = pe__core_run_vector(core, pe__core_blocks_avx2, n, sym, price,
                               volume, out);
  } else {
    done = pe__core_run_generic(core, 0, n, sym, price, volume, out);
  }
  if (done < n) {
    snprintf(core->errmsg, sizeof core->errmsg,
             "core: tick %zu has symbol id %d, outside [0, %u)", done,
             (int)sym[done], core->n_symbols);
    return PE_EINVAL;
  }
  return PE_OK;
}

int pe_core_symbol(const pe_core_t *core, uint32_t sym, pe_core_values_t *out) {
  if (sym >= core->n_symbols) {
    return PE_EINVAL;
  }
  const pe__core_sym_t *s = &core->sym[sym];
  out->n = (uint64_t)s->n;
  out->ema_fast = s->n > 0.0 ? s->ema_fast : NAN;
  out->ema_slow = s->n > 0.0 ? s->ema_slow : NAN;
  out->vwap = s->v_sum > 0.0 ? s->pv_sum / s->v_sum : NAN;
  out->mean = s->n > 0.0 ? s->mean : NAN;
  out->var = s->n > 1.0 ? s->m2 / (s->n - 1.0) : NAN;
  return PE_OK;
}
