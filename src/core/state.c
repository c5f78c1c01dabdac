/* Per-symbol statistics: the parts too large to inline (see pe/state.h). */
#include "pe/state.h"

#include <string.h>

#define PE__NS_PER_S 1000000000LL
#define PE__NS_PER_DAY (86400LL * PE__NS_PER_S)

void pe_ema_init_span(pe_ema_t *ema, double span) {
  pe_ema_init_alpha(ema, 2.0 / (span + 1.0));
}

void pe_ema_init_alpha(pe_ema_t *ema, double alpha) {
  memset(ema, 0, sizeof *ema);
  ema->alpha = alpha;
}

void pe_ema_td_init(pe_ema_td_t *ema, double half_life_s) {
  memset(ema, 0, sizeof *ema);
  ema->rate_per_ns =
      0.693147180559945309417232121458176568 / (half_life_s * 1e9);
}

void pe_vwap_init(pe_vwap_t *vwap, int reset_minute_utc) {
  memset(vwap, 0, sizeof *vwap);
  if (reset_minute_utc < 0) {
    vwap->reset_offset_ns = -1;
    vwap->next_reset_ns = INT64_MAX;
  } else {
    vwap->reset_offset_ns = (int64_t)reset_minute_utc * 60 * PE__NS_PER_S;
    vwap->next_reset_ns = INT64_MIN; /* set by the first tick */
  }
}

/* First VWAP reset (trading-day boundary) strictly after ts_ns, INT64_MAX when
 * it is past the int64 range. offset_ns in [0, one day). Without overflow
 * anywhere: the time since the last boundary is ts mod day - offset, brought
 * into [0, day), and only the final sum can leave the range. */
static int64_t pe__next_boundary(int64_t ts_ns, int64_t offset_ns) {
  int64_t r = ts_ns % PE__NS_PER_DAY;
  if (r < 0) {
    r += PE__NS_PER_DAY; /* floor for times before the epoch */
  }
  int64_t since = r - offset_ns;
  if (since < 0) {
    since += PE__NS_PER_DAY;
  }
  return pe_ts_add_sat(ts_ns, PE__NS_PER_DAY - since);
}

void pe__vwap_new_session(pe_vwap_t *vwap, int64_t ts_ns) {
  /* No boundary ahead (no sessions, or none before the end of int64 time):
   * a tick at INT64_MAX reaches the sentinel but starts nothing. */
  if (vwap->next_reset_ns == INT64_MAX) {
    return;
  }
  /* The first tick, or the first one of a new session. */
  vwap->pv_sum = 0.0;
  vwap->v_sum = 0.0;
  vwap->next_reset_ns = pe__next_boundary(ts_ns, vwap->reset_offset_ns);
}

void pe_vwap_roll_init(pe_vwap_roll_t *roll, double window_s) {
  memset(roll, 0, sizeof *roll);
  double bucket = window_s * 1e9 / PE_VWAP_ROLL_BUCKETS;
  roll->bucket_ns = bucket < 1.0 ? 1 : (int64_t)bucket;
  roll->cur_end_ns = INT64_MIN;
}

static int64_t pe__floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Moves the window so that its newest bucket is `bucket`: buckets that fall
 * out are cleared and the sums over the older buckets are recomputed in slot
 * order, so the value does not drift however long the symbol lives. */
static void pe__vwap_roll_advance(pe_vwap_roll_t *roll, int64_t bucket) {
  int64_t gap = roll->ready ? pe_ts_sub_sat(bucket, roll->cur_bucket)
                            : PE_VWAP_ROLL_BUCKETS;
  if (gap >= PE_VWAP_ROLL_BUCKETS) {
    memset(roll->pv, 0, sizeof roll->pv);
    memset(roll->v, 0, sizeof roll->v);
  } else {
    for (int64_t k = 1; k <= gap; k++) {
      size_t slot =
          (size_t)((roll->cur_bucket + k) & (PE_VWAP_ROLL_BUCKETS - 1));
      roll->pv[slot] = 0.0;
      roll->v[slot] = 0.0;
    }
  }
  size_t cur = (size_t)(bucket & (PE_VWAP_ROLL_BUCKETS - 1));
  double pv = 0.0;
  double v = 0.0;
  for (size_t i = 0; i < PE_VWAP_ROLL_BUCKETS; i++) {
    if (i != cur) {
      pv += roll->pv[i];
      v += roll->v[i];
    }
  }
  roll->base_pv = pv;
  roll->base_v = v;
  roll->cur_bucket = bucket;
  /* Past INT64_MAX for the last bucket: saturated, so a tick at INT64_MAX
   * advances to the same bucket again, which changes nothing. */
  int64_t end;
  if (bucket == INT64_MAX ||
      __builtin_mul_overflow(bucket + 1, roll->bucket_ns, &end)) {
    end = INT64_MAX;
  }
  roll->cur_end_ns = end;
  roll->ready = 1;
}

void pe_vwap_roll_update(pe_vwap_roll_t *roll, double price, double volume,
                         int64_t ts_ns) {
  if (ts_ns >= roll->cur_end_ns) {
    pe__vwap_roll_advance(roll, pe__floor_div(ts_ns, roll->bucket_ns));
  }
  size_t cur = (size_t)(roll->cur_bucket & (PE_VWAP_ROLL_BUCKETS - 1));
  roll->pv[cur] += price * volume;
  roll->v[cur] += volume;
}

double pe_vwap_roll_value(const pe_vwap_roll_t *roll) {
  size_t cur = (size_t)(roll->cur_bucket & (PE_VWAP_ROLL_BUCKETS - 1));
  double v = roll->base_v + roll->v[cur];
  return (roll->ready && v > 0.0) ? (roll->base_pv + roll->pv[cur]) / v : NAN;
}

void pe_welford_init(pe_welford_t *w) { memset(w, 0, sizeof *w); }

void pe_welford_merge(pe_welford_t *into, const pe_welford_t *other) {
  if (other->n == 0) {
    return;
  }
  if (into->n == 0) {
    *into = *other;
    return;
  }
  double na = (double)into->n;
  double nb = (double)other->n;
  double n = na + nb;
  double d = other->mean - into->mean;
  into->mean += d * (nb / n);
  into->m2 += other->m2 + d * d * (na * nb / n);
  into->n += other->n;
}

void pe_ewvar_init(pe_ewvar_t *ew, double alpha) {
  memset(ew, 0, sizeof *ew);
  ew->alpha = alpha;
}
