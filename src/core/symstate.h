/* Per-symbol engine state, and the per-tick step over it (internal).
 *
 * Plain data without pointers: snapshots copy it byte for byte. The window
 * rows of a symbol live in a separate array of the engine. */
#ifndef PE_CORE_SYMSTATE_H
#define PE_CORE_SYMSTATE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pe/engine.h"
#include "pe/state.h"

/* A symbol's tick count stops at this (2^62 ticks, centuries of any feed):
 * a snapshot holding a larger count is refused, and a count at it that
 * went on growing would make the engine's own next snapshot one that it
 * refuses. */
#define PE__TICKS_MAX ((uint64_t)1 << 62)

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
  pe_ewvar_t ret_var;         /* log returns */
  int64_t rule_signal_ts_ns;  /* INT64_MIN before the first */
  int64_t model_signal_ts_ns; /* likewise */
  uint32_t rule_signal_seq;   /* signals so far at rule_signal_ts_ns */
  uint32_t model_signal_seq;
  uint32_t win_head;    /* next row to write */
  uint32_t win_count;   /* rows written, capped at the window length */
  uint32_t since_infer; /* ticks since the model last ran on this symbol */
  uint32_t pad_;
  /* Only for the full feature set. */
  pe_ema_td_t ema_td;
  pe_vwap_roll_t vwap_roll;
} pe__symstate_t;

/* What the rules need from one tick beyond the features. */
typedef struct pe__tickcalc {
  double log_return;     /* NaN on the symbol's first tick */
  double ret_var_prev;   /* EW variance of the returns before this one */
  uint64_t prev_returns; /* how many returns that std covers */
  double vol_ema_prev;   /* EMA of the sizes before this one, NaN if none */
} pe__tickcalc_t;

/* Starts the state of a new symbol. */
void pe__symstate_init(pe__symstate_t *s, const pe_engine_config_t *config);

/* The per-tick step, inline: the engine calls it once per tick, and the
 * calls cost as much as some of the arithmetic. docs/features.md is the
 * reference for every formula, docs/patterns.md for the rules. Forced
 * inline: GCC otherwise keeps them out of line in a caller as large as the
 * engine's batch loop. */
#if defined(__GNUC__)
#define PE__ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define PE__ALWAYS_INLINE static inline
#endif

/* Floors of the ratios' denominators, and the clip of return_z. */
#define PE__SIGMA_FLOOR 1e-8
#define PE__VOLUME_FLOOR 1e-12
#define PE__Z_CLIP 10.0

/* fmax/fmin without their NaN rules, which keep compilers from inlining
 * them; the arguments here are never NaN. */
static inline double pe__max(double a, double b) { return a > b ? a : b; }
static inline double pe__min(double a, double b) { return a < b ? a : b; }

static inline double pe__rel_dev(double x, double ref) {
  return ref == ref ? (x - ref) / ref : 0.0;
}

/* Folds a tick into the state and computes the features the rules use
 * (ema_gap, vwap_dev, log_return, volume_ratio); with `all`, every standard
 * feature, else the others are NaN. NaN before a feature's warm-up. The
 * choice must not change during a symbol's life (the extra features keep
 * state of their own). Returns the VWAP after the tick (pe_vwap_value), which
 * vwap_dev is made from. Hot path. */
PE__ALWAYS_INLINE double pe__features_update(pe__symstate_t *s,
                                             const pe_tick_t *tick, int all,
                                             double feature[PE_FEATURE_COUNT],
                                             pe__tickcalc_t *calc) {
  const double p = tick->price;
  const double v = tick->volume;
  const int first = s->n_ticks == 0;

  /* What the rules need: always. */
  pe_ema_update(&s->ema_fast, p);
  pe_ema_update(&s->ema_slow, p);
  pe_vwap_update(&s->vwap, p, v, tick->ts_ns);
  pe_welford_update(&s->price_stats, p);
  calc->vol_ema_prev = pe_ema_value(&s->vol_ema);
  pe_ema_update(&s->vol_ema, v);
  feature[PE_FEAT_EMA_GAP] =
      (s->ema_fast.value - s->ema_slow.value) / s->ema_slow.value;
  const double vwap = pe_vwap_value(&s->vwap);
  feature[PE_FEAT_VWAP_DEV] = pe__rel_dev(p, vwap);
  double r = NAN;
  if (first) {
    calc->ret_var_prev = NAN;
    calc->prev_returns = 0;
    feature[PE_FEAT_VOLUME_RATIO] = NAN;
  } else {
    r = log(p / s->last_price);
    calc->ret_var_prev = s->ret_var.var;
    calc->prev_returns = s->ret_var.n;
    pe_ewvar_update(&s->ret_var, r);
    feature[PE_FEAT_VOLUME_RATIO] =
        v / pe__max(calc->vol_ema_prev, PE__VOLUME_FLOOR);
  }
  calc->log_return = r;
  feature[PE_FEAT_LOG_RETURN] = r;

  /* The rest of the standard set, for windows and --features-out. */
  if (all) {
    pe_ema_td_update(&s->ema_td, p, tick->ts_ns);
    pe_vwap_roll_update(&s->vwap_roll, p, v, tick->ts_ns);
    const double log_volume = log1p(v);
    feature[PE_FEAT_VWAP_ROLL_DEV] =
        pe__rel_dev(p, pe_vwap_roll_value(&s->vwap_roll));
    feature[PE_FEAT_LOG_VOLUME] = log_volume;
    feature[PE_FEAT_EMA_FAST_DEV] = (p - s->ema_fast.value) / s->ema_fast.value;
    feature[PE_FEAT_EMA_TD_DEV] = (p - s->ema_td.value) / s->ema_td.value;
    if (first) {
      feature[PE_FEAT_RETURN_Z] = NAN;
      feature[PE_FEAT_RET_VOL] = NAN;
      feature[PE_FEAT_LOG_DT] = NAN;
      feature[PE_FEAT_SIGNED_VOLUME] = NAN;
    } else {
      double z = r / pe__max(sqrt(calc->ret_var_prev), PE__SIGMA_FLOOR);
      feature[PE_FEAT_RETURN_Z] = pe__min(PE__Z_CLIP, pe__max(-PE__Z_CLIP, z));
      feature[PE_FEAT_RET_VOL] = sqrt(s->ret_var.var);
      feature[PE_FEAT_LOG_DT] =
          log1p((double)pe_ts_sub_sat(tick->ts_ns, s->last_ts_ns) * 1e-9);
      feature[PE_FEAT_SIGNED_VOLUME] =
          r > 0.0 ? log_volume : (r < 0.0 ? -log_volume : 0.0);
    }
  } else {
    feature[PE_FEAT_RETURN_Z] = NAN;
    feature[PE_FEAT_VWAP_ROLL_DEV] = NAN;
    feature[PE_FEAT_LOG_VOLUME] = NAN;
    feature[PE_FEAT_RET_VOL] = NAN;
    feature[PE_FEAT_LOG_DT] = NAN;
    feature[PE_FEAT_EMA_FAST_DEV] = NAN;
    feature[PE_FEAT_EMA_TD_DEV] = NAN;
    feature[PE_FEAT_SIGNED_VOLUME] = NAN;
  }
  s->last_price = p;
  s->last_ts_ns = tick->ts_ns;
  s->n_ticks += s->n_ticks < PE__TICKS_MAX;
  return vwap;
}

/* Weights of the rules in the score. */
#define PE__EMA_WEIGHT 2.0
#define PE__VWAP_WEIGHT 1.5
#define PE__SPIKE_CONTRIBUTION 0.3
#define PE__BREAKOUT_CONTRIBUTION 0.4

static inline double pe__sign(double x) {
  return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0);
}

/* Largest |value| a rule may fire with. Finite ticks can still make a
 * feature that is not finite or near overflow (a subnormal price whose
 * price * volume rounds to zero gives a VWAP of 0 and a deviation of inf;
 * 1e300 after 1e-300 overflows a ratio): a rule measuring such a value does
 * not fire, so no signal carries inf or NaN, and the sum of at most four
 * contributions (weights <= 2) stays finite, as does the confidence. */
#define PE__RULE_VALUE_MAX 1e300

/* Records a fired rule, and adds its contribution to the score's sum, in
 * rule order as the rules are evaluated; nothing for a value past
 * PE__RULE_VALUE_MAX or NaN. */
static inline void pe__fire(pe_signal_t *sig, double *sum, int rule,
                            double value, double contribution) {
  if (!(fabs(value) <= PE__RULE_VALUE_MAX)) {
    return;
  }
  sig->fired |= 1u << rule;
  sig->value[rule] = value;
  sig->contribution[rule] = contribution;
  *sum += contribution;
}

/* Zeros the value and contribution of every rule that did not fire, which
 * pe__rules_eval leaves unwritten. */
static inline void pe__signal_clear_unfired(pe_signal_t *sig) {
  for (int i = 0; i < PE_RULE_COUNT; i++) {
    if (!(sig->fired & (1u << i))) {
      sig->value[i] = 0.0;
      sig->contribution[i] = 0.0;
    }
  }
}

/* Evaluates the rule patterns and returns 1 when a signal is due, 0
 * otherwise; updates the cooldown state. Always sets sig->fired, and the
 * value and contribution of each fired rule. With 1, fills the rest of
 * *signal but id, label and symbol, zeros included for the rules that did
 * not fire; with 0, those of the rules that did not fire are left as they
 * were (pe__signal_clear_unfired). Hot path. */
PE__ALWAYS_INLINE int
pe__rules_eval(pe__symstate_t *s, const pe_rules_config_t *rules,
               const pe_tick_t *tick, const double feature[PE_FEATURE_COUNT],
               const pe__tickcalc_t *calc, pe_signal_t *sig) {
  sig->fired = 0;
  double sum = 0.0;

  double gap = feature[PE_FEAT_EMA_GAP];
  if (fabs(gap) > rules->ema_diff_threshold) {
    pe__fire(sig, &sum, PE_RULE_EMA_CROSSOVER, gap, PE__EMA_WEIGHT * gap);
  }
  double dev = feature[PE_FEAT_VWAP_DEV];
  if (fabs(dev) > rules->vwap_diff_threshold) {
    pe__fire(sig, &sum, PE_RULE_VWAP_DEVIATION, dev, PE__VWAP_WEIGHT * dev);
  }
  /* NaN comparisons are false: no previous size, no previous return. */
  double vol_prev = calc->vol_ema_prev;
  if (vol_prev > 0.0 &&
      tick->volume > rules->volume_spike_multiplier * vol_prev) {
    double dir =
        calc->log_return == calc->log_return ? pe__sign(calc->log_return) : 0.0;
    pe__fire(sig, &sum, PE_RULE_VOLUME_SPIKE, tick->volume / vol_prev,
             PE__SPIKE_CONTRIBUTION * dir);
  }
  /* |r| > k * std, squared to spare the square root; k >= 0. */
  double r = calc->log_return;
  double k = rules->breakout_sigma;
  if (calc->prev_returns >= rules->breakout_min_returns &&
      r * r > k * k * calc->ret_var_prev) {
    pe__fire(sig, &sum, PE_RULE_VOLATILITY_BREAKOUT, r,
             PE__BREAKOUT_CONTRIBUTION * pe__sign(r));
  }
  if (sig->fired == 0) {
    return 0;
  }

  /* fmin(1.0, fmax(-1.0, sum)) without the calls: a NaN sum gives -1 in
   * both, and neither changes the sign of a zero. */
  double floored = sum > -1.0 ? sum : -1.0;
  double score = floored < 1.0 ? floored : 1.0;
  if (!(fabs(score) > rules->signal_score_min)) {
    return 0;
  }
  if (s->rule_signal_ts_ns != INT64_MIN &&
      pe_ts_sub_sat(tick->ts_ns, s->rule_signal_ts_ns) <
          rules->signal_cooldown_ns) {
    return 0;
  }

  /* Label: the fired rule contributing most in the score's direction; the
   * earlier rule wins a tie. Confidence: the share of the absolute
   * contributions that agree with that direction. */
  double dir = pe__sign(score);
  double best = 0.0;
  double agree = 0.0;
  double total = 0.0;
  sig->pattern = 0;
  for (int i = 0; i < PE_RULE_COUNT; i++) {
    if (!(sig->fired & (1u << i))) {
      continue;
    }
    double c = sig->contribution[i] * dir;
    total += fabs(c);
    if (c > 0.0) {
      agree += c;
    }
    if (c > best) {
      best = c;
      sig->pattern = i;
    }
  }
  sig->score = score;
  sig->confidence = total > 0.0 ? agree / total : 0.0;
  sig->price = tick->price;
  sig->ts_ns = tick->ts_ns;
  sig->model_class = -1;
  pe__signal_clear_unfired(sig);
  if (tick->ts_ns == s->rule_signal_ts_ns) {
    s->rule_signal_seq += 1;
  } else {
    s->rule_signal_ts_ns = tick->ts_ns;
    s->rule_signal_seq = 0;
  }
  return 1;
}

#endif
