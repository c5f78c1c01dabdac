/* The standard feature set: names, warm-ups, and a new symbol's state. The
 * per-tick update that computes the features is pe__features_update, inline
 * in core/symstate.h; docs/features.md is the reference for every formula. */
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
