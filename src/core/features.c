/* The standard feature set: names, and the per-tick update that computes it.
 * docs/features.md is the reference for every formula here. */
#include <math.h>
#include <string.h>

#include "core/symstate.h"
#include "pe/error.h"
#include "pe/features.h"

static const char *const pe__feature_names[] = {
#define PE__FEATURE_NAME(id, name, warmup) name,
    PE_FEATURE_MAP(PE__FEATURE_NAME)
#undef PE__FEATURE_NAME
};

static const int pe__feature_warmups[] = {
#define PE__FEATURE_WARMUP(id, name, warmup) warmup,
    PE_FEATURE_MAP(PE__FEATURE_WARMUP)
#undef PE__FEATURE_WARMUP
};

const char *pe_feature_name(int feature) {
  return (feature >= 0 && feature < PE_FEATURE_COUNT)
             ? pe__feature_names[feature]
             : NULL;
}

int pe_feature_warmup(int feature) {
  return (feature >= 0 && feature < PE_FEATURE_COUNT)
             ? pe__feature_warmups[feature]
             : 0;
}

int pe_feature_find(const char *name, size_t len) {
  for (int f = 0; f < PE_FEATURE_COUNT; f++) {
    if (strlen(pe__feature_names[f]) == len &&
        memcmp(pe__feature_names[f], name, len) == 0) {
      return f;
    }
  }
  return PE_ENOENT;
}

int pe_feature_parse_list(const char *list, int *indices, int cap,
                          int *bad_index) {
  int n = 0;
  const char *p = list;
  *bad_index = 0;
  for (;;) {
    while (*p == ' ') {
      p++;
    }
    const char *end = p;
    while (*end != ',' && *end != '\0') {
      end++;
    }
    const char *last = end;
    while (last > p && last[-1] == ' ') {
      last--;
    }
    if (last == p) {
      *bad_index = n;
      return PE_EINVAL;
    }
    if (n == cap) {
      *bad_index = n;
      return PE_EFULL;
    }
    int f = pe_feature_find(p, (size_t)(last - p));
    if (f < 0) {
      *bad_index = n;
      return PE_ENOENT;
    }
    indices[n++] = f;
    if (*end == '\0') {
      return n;
    }
    p = end + 1;
  }
}

void pe__symstate_init(pe__symstate_t *s, const pe_engine_config_t *config) {
  memset(s, 0, sizeof *s);
  pe_ema_init_span(&s->ema_fast, config->ema_fast_span);
  pe_ema_init_span(&s->ema_slow, config->ema_slow_span);
  pe_ema_init_alpha(&s->vol_ema, config->rules.volume_ema_alpha);
  pe_ema_td_init(&s->ema_td, config->ema_td_half_life_s);
  pe_vwap_init(&s->vwap, config->session_reset_minute);
  pe_welford_init(&s->price_stats);
  pe_ewvar_init(&s->ret_var, config->rules.return_ewm_alpha);
  pe_vwap_roll_init(&s->vwap_roll, config->vwap_window_s);
  s->rule_signal_ts_ns = INT64_MIN;
  s->model_signal_ts_ns = INT64_MIN;
}

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

double pe__features_update(pe__symstate_t *s, const pe_tick_t *tick, int all,
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
          log1p((double)(tick->ts_ns - s->last_ts_ns) * 1e-9);
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
  s->n_ticks += 1;
  return vwap;
}
