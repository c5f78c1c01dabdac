/* Rule patterns: each rule looks at one tick's features, may fire, and adds
 * a signed contribution to the tick's score. docs/patterns.md describes the
 * rules, the score, the label and the confidence. */
#include <math.h>
#include <string.h>

#include "core/symstate.h"

static const char *const pe__rule_names[] = {
#define PE__RULE_NAME(id, name) name,
    PE_RULE_MAP(PE__RULE_NAME)
#undef PE__RULE_NAME
};

const char *pe_rule_name(int rule) {
  return (rule >= 0 && rule < PE_RULE_COUNT) ? pe__rule_names[rule] : NULL;
}

/* Weights of the rules in the score. */
#define PE__EMA_WEIGHT 2.0
#define PE__VWAP_WEIGHT 1.5
#define PE__SPIKE_CONTRIBUTION 0.3
#define PE__BREAKOUT_CONTRIBUTION 0.4

static inline double pe__sign(double x) {
  return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0);
}

static inline void pe__fire(pe_signal_t *sig, int rule, double value,
                            double contribution) {
  sig->fired |= 1u << rule;
  sig->value[rule] = value;
  sig->contribution[rule] = contribution;
}

int pe__rules_eval(pe__symstate_t *s, const pe_rules_config_t *rules,
                   const pe_tick_t *tick, const double feature[PE_FEATURE_COUNT],
                   const pe__tickcalc_t *calc, pe_signal_t *sig) {
  sig->fired = 0;
  memset(sig->value, 0, sizeof sig->value);
  memset(sig->contribution, 0, sizeof sig->contribution);

  double gap = feature[PE_FEAT_EMA_GAP];
  if (fabs(gap) > rules->ema_diff_threshold) {
    pe__fire(sig, PE_RULE_EMA_CROSSOVER, gap, PE__EMA_WEIGHT * gap);
  }
  double dev = feature[PE_FEAT_VWAP_DEV];
  if (fabs(dev) > rules->vwap_diff_threshold) {
    pe__fire(sig, PE_RULE_VWAP_DEVIATION, dev, PE__VWAP_WEIGHT * dev);
  }
  /* NaN comparisons are false: no previous size, no previous return. */
  double vol_prev = calc->vol_ema_prev;
  if (vol_prev > 0.0 &&
      tick->volume > rules->volume_spike_multiplier * vol_prev) {
    double dir = calc->log_return == calc->log_return ? pe__sign(calc->log_return)
                                                      : 0.0;
    pe__fire(sig, PE_RULE_VOLUME_SPIKE, tick->volume / vol_prev,
             PE__SPIKE_CONTRIBUTION * dir);
  }
  /* |r| > k * std, squared to spare the square root; k >= 0. */
  double r = calc->log_return;
  double k = rules->breakout_sigma;
  if (calc->prev_returns >= rules->breakout_min_returns &&
      r * r > k * k * calc->ret_var_prev) {
    pe__fire(sig, PE_RULE_VOLATILITY_BREAKOUT, r,
             PE__BREAKOUT_CONTRIBUTION * pe__sign(r));
  }
  if (sig->fired == 0) {
    return 0;
  }

  double sum = 0.0;
  for (int i = 0; i < PE_RULE_COUNT; i++) {
    if (sig->fired & (1u << i)) {
      sum += sig->contribution[i];
    }
  }
  double score = fmin(1.0, fmax(-1.0, sum));
  if (!(fabs(score) > rules->signal_score_min)) {
    return 0;
  }
  if (s->rule_signal_ts_ns != INT64_MIN &&
      tick->ts_ns - s->rule_signal_ts_ns < rules->signal_cooldown_ns) {
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
  if (tick->ts_ns == s->rule_signal_ts_ns) {
    s->rule_signal_seq += 1;
  } else {
    s->rule_signal_ts_ns = tick->ts_ns;
    s->rule_signal_seq = 0;
  }
  return 1;
}
