/* Per-symbol engine state (internal).
 *
 * Plain data without pointers: snapshots copy it byte for byte. The window
 * rows of a symbol live in a separate array of the engine. */
#ifndef PE_CORE_SYMSTATE_H
#define PE_CORE_SYMSTATE_H

#include <stdint.h>

#include "pe/engine.h"
#include "pe/state.h"

typedef struct pe__symstate {
  /* What every tick touches first, in as few cache lines as it can. */
  double last_price;
  int64_t last_ts_ns;
  uint64_t n_ticks;
  pe_ema_t ema_fast;
  pe_ema_t ema_slow;
  pe_ema_t vol_ema; /* EMA of sizes; read before the tick's own size is added */
  pe_vwap_t vwap;
  pe_welford_t price_stats;
  pe_ewvar_t ret_var; /* log returns */
  int64_t rule_signal_ts_ns;  /* INT64_MIN before the first */
  int64_t model_signal_ts_ns; /* likewise */
  uint32_t rule_signal_seq;   /* signals so far at rule_signal_ts_ns */
  uint32_t model_signal_seq;
  uint32_t win_head;  /* next row to write */
  uint32_t win_count; /* rows written, capped at the window length */
  uint32_t since_infer; /* ticks since the model last ran on this symbol */
  uint32_t pad_;
  /* Only for the full feature set. */
  pe_ema_td_t ema_td;
  pe_vwap_roll_t vwap_roll;
} pe__symstate_t;

/* What the rules need from one tick beyond the features. */
typedef struct pe__tickcalc {
  double log_return;    /* NaN on the symbol's first tick */
  double ret_var_prev;  /* EW variance of the returns before this one */
  uint64_t prev_returns; /* how many returns that std covers */
  double vol_ema_prev;  /* EMA of the sizes before this one, NaN if none */
} pe__tickcalc_t;

/* Starts the state of a new symbol. */
void pe__symstate_init(pe__symstate_t *s, const pe_engine_config_t *config);

/* Folds a tick into the state and computes the features the rules use
 * (ema_gap, vwap_dev, log_return, volume_ratio); with `all`, every standard
 * feature, else the others are NaN. NaN before a feature's warm-up. The
 * choice must not change during a symbol's life (the extra features keep
 * state of their own). Returns the VWAP after the tick (pe_vwap_value), which
 * vwap_dev is made from. Hot path. */
double pe__features_update(pe__symstate_t *s, const pe_tick_t *tick, int all,
                         double feature[PE_FEATURE_COUNT],
                         pe__tickcalc_t *calc);

/* Evaluates the rule patterns; fills *signal (all but id/label/symbol) and
 * returns 1 when a signal is due, 0 otherwise. Updates the cooldown state. */
int pe__rules_eval(pe__symstate_t *s, const pe_rules_config_t *rules,
                   const pe_tick_t *tick, const double feature[PE_FEATURE_COUNT],
                   const pe__tickcalc_t *calc, pe_signal_t *signal);

#endif
