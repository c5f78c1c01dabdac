/* Per-symbol incremental statistics.
 *
 * Each statistic is a plain struct without pointers: it can be copied,
 * checkpointed and compared byte for byte. The caller owns it (usually inside
 * the engine's symbol table). Updates are O(1), allocate nothing and make no
 * system call; they are meant for the per-tick hot path. A statistic is not
 * defined until its ready flag is set; value accessors return NaN before.
 *
 * Each one has a slow reference form in tests/ref_state.c that recomputes it
 * from the whole history; the tests check the two against each other. */
#ifndef PE_STATE_H
#define PE_STATE_H

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Timestamp arithmetic -------------------------------------------------
 * Timestamps are int64 ns and may lie anywhere in that range (from 1677 to
 * 2262), so a difference of two can overflow. Every difference and sum of
 * timestamps goes through these, which saturate at INT64_MIN / INT64_MAX
 * instead: an interval too long for int64 is "longer than any setting". */
static inline int64_t pe_ts_sub_sat(int64_t a, int64_t b) {
  int64_t d;
  if (__builtin_sub_overflow(a, b, &d)) {
    return a < b ? INT64_MIN : INT64_MAX;
  }
  return d;
}

static inline int64_t pe_ts_add_sat(int64_t a, int64_t b) {
  int64_t s;
  if (__builtin_add_overflow(a, b, &s)) {
    return b < 0 ? INT64_MIN : INT64_MAX;
  }
  return s;
}

/* ---- Exponential moving average ------------------------------------------
 * Seeded with the first value, then y = (1 - alpha) * y + alpha * x: the same
 * recursion as pandas ewm(alpha=..., adjust=False).mean(). */
typedef struct pe_ema {
  double value;
  double alpha; /* in (0, 1] */
  uint32_t ready;
  uint32_t pad_;
} pe_ema_t;

/* alpha = 2 / (span + 1); span >= 1. */
void pe_ema_init_span(pe_ema_t *ema, double span);
void pe_ema_init_alpha(pe_ema_t *ema, double alpha);

static inline void pe_ema_update(pe_ema_t *ema, double x) {
  if (ema->ready) {
    ema->value = (1.0 - ema->alpha) * ema->value + ema->alpha * x;
  } else {
    ema->value = x;
    ema->ready = 1;
  }
}

static inline double pe_ema_value(const pe_ema_t *ema) {
  return ema->ready ? ema->value : NAN;
}

/* ---- Time-decayed EMA for irregular ticks --------------------------------
 * alpha = 1 - exp(-dt * ln 2 / half_life): a value half_life seconds old
 * weighs half as much as a fresh one. Ticks with the same timestamp as the
 * previous one get alpha = 0 and leave the average unchanged. */
typedef struct pe_ema_td {
  double value;
  double rate_per_ns; /* ln 2 / half-life, per nanosecond */
  int64_t last_ts_ns;
  uint32_t ready;
  uint32_t pad_;
} pe_ema_td_t;

void pe_ema_td_init(pe_ema_td_t *ema, double half_life_s);

static inline void pe_ema_td_update(pe_ema_td_t *ema, double x, int64_t ts_ns) {
  if (ema->ready) {
    int64_t dt_ns = pe_ts_sub_sat(ts_ns, ema->last_ts_ns);
    if (dt_ns > 0) {
      double alpha = -expm1(-(double)dt_ns * ema->rate_per_ns);
      ema->value += alpha * (x - ema->value);
      ema->last_ts_ns = ts_ns;
    }
  } else {
    ema->value = x;
    ema->last_ts_ns = ts_ns;
    ema->ready = 1;
  }
}

/* ---- VWAP: cumulative, optionally reset at a daily session boundary -------
 * value = sum(price * volume) / sum(volume) over the ticks since the last
 * reset, summed in arrival order (as pandas cumsum). Ready once the summed
 * volume is positive. */
typedef struct pe_vwap {
  double pv_sum;
  double v_sum;
  int64_t next_reset_ns;   /* INT64_MAX when no boundary lies ahead: no
                              sessions, or the next one is past 2262 (a
                              boundary is a whole minute, never INT64_MAX) */
  int64_t reset_offset_ns; /* session start, ns after 00:00 UTC; -1 if none */
} pe_vwap_t;

/* reset_minute_utc: minutes after midnight UTC at which a session starts, or
 * -1 for one session that never resets. */
void pe_vwap_init(pe_vwap_t *vwap, int reset_minute_utc);

/* Resets the sums and moves next_reset_ns past ts_ns (out of line: once a
 * session). */
void pe__vwap_new_session(pe_vwap_t *vwap, int64_t ts_ns);

/* Starts a new session if ts_ns has reached the boundary, then adds the tick.
 */
static inline void pe_vwap_update(pe_vwap_t *vwap, double price, double volume,
                                  int64_t ts_ns) {
  if (ts_ns >= vwap->next_reset_ns) {
    pe__vwap_new_session(vwap, ts_ns);
  }
  vwap->pv_sum += price * volume;
  vwap->v_sum += volume;
}

static inline double pe_vwap_value(const pe_vwap_t *vwap) {
  return vwap->v_sum > 0.0 ? vwap->pv_sum / vwap->v_sum : NAN;
}

/* ---- Cumulative VWAP without sessions --------------------------------------
 * The same sums as pe_vwap_t in the same order, without the session fields or
 * the timestamp: for when a VWAP never resets, in half the state. */
typedef struct pe_cvwap {
  double pv_sum;
  double v_sum;
} pe_cvwap_t;

static inline void pe_cvwap_init(pe_cvwap_t *vwap) {
  vwap->pv_sum = 0.0;
  vwap->v_sum = 0.0;
}

static inline void pe_cvwap_update(pe_cvwap_t *vwap, double price,
                                   double volume) {
  vwap->pv_sum += price * volume;
  vwap->v_sum += volume;
}

static inline double pe_cvwap_value(const pe_cvwap_t *vwap) {
  return vwap->v_sum > 0.0 ? vwap->pv_sum / vwap->v_sum : NAN;
}

/* ---- Rolling VWAP over the last N seconds ---------------------------------
 * Time is cut into PE_VWAP_ROLL_BUCKETS buckets of N / PE_VWAP_ROLL_BUCKETS
 * seconds, aligned to the epoch. The value covers the bucket of the latest
 * tick and the PE_VWAP_ROLL_BUCKETS - 1 before it, so the window spans
 * between N - N/buckets and N seconds: exact at bucket resolution, with fixed
 * memory however many ticks arrive. */
#define PE_VWAP_ROLL_BUCKETS 32

typedef struct pe_vwap_roll {
  double pv[PE_VWAP_ROLL_BUCKETS];
  double v[PE_VWAP_ROLL_BUCKETS];
  double base_pv; /* sums over the buckets other than the current one */
  double base_v;
  int64_t bucket_ns;
  int64_t cur_bucket; /* floor(ts / bucket_ns) of the latest tick */
  int64_t cur_end_ns; /* first ns after the current bucket */
  uint32_t ready;
  uint32_t pad_;
} pe_vwap_roll_t;

/* window_s > 0; its bucket width is rounded to whole nanoseconds. */
void pe_vwap_roll_init(pe_vwap_roll_t *roll, double window_s);
void pe_vwap_roll_update(pe_vwap_roll_t *roll, double price, double volume,
                         int64_t ts_ns);
double pe_vwap_roll_value(const pe_vwap_roll_t *roll);

/* ---- Welford running mean and variance ------------------------------------
 * Stable under a large offset: it accumulates deviations from the running
 * mean, never raw sums of squares. Two accumulators over disjoint samples
 * merge into the accumulator of their union (Chan et al.). */
typedef struct pe_welford {
  uint64_t n;
  double mean;
  double m2; /* sum of squared deviations from the mean */
} pe_welford_t;

void pe_welford_init(pe_welford_t *w);

static inline void pe_welford_update(pe_welford_t *w, double x) {
  w->n += 1;
  double d = x - w->mean;
  w->mean += d / (double)w->n;
  w->m2 += d * (x - w->mean);
}

/* into = union of into and other. */
void pe_welford_merge(pe_welford_t *into, const pe_welford_t *other);

static inline double pe_welford_mean(const pe_welford_t *w) {
  return w->n > 0 ? w->mean : NAN;
}
/* Sample variance (divisor n - 1); NaN below two values. */
static inline double pe_welford_var_sample(const pe_welford_t *w) {
  return w->n > 1 ? w->m2 / (double)(w->n - 1) : NAN;
}
/* Population variance (divisor n); NaN with no value. */
static inline double pe_welford_var_pop(const pe_welford_t *w) {
  return w->n > 0 ? w->m2 / (double)w->n : NAN;
}

/* ---- Exponentially weighted mean and variance -----------------------------
 * mean += alpha * d;  var = (1 - alpha) * (var + alpha * d * d), d = x - mean:
 * every term is a product of non-negative numbers, so var never goes
 * negative, whatever the rounding. The first value seeds the mean with
 * variance 0. */
typedef struct pe_ewvar {
  double alpha;
  double mean;
  double var;
  uint64_t n;
} pe_ewvar_t;

void pe_ewvar_init(pe_ewvar_t *ew, double alpha);

static inline void pe_ewvar_update(pe_ewvar_t *ew, double x) {
  if (ew->n == 0) {
    ew->mean = x;
    ew->var = 0.0;
  } else {
    double d = x - ew->mean;
    double incr = ew->alpha * d;
    ew->mean += incr;
    ew->var = (1.0 - ew->alpha) * (ew->var + d * incr);
  }
  ew->n += 1;
}

static inline double pe_ewvar_std(const pe_ewvar_t *ew) {
  return ew->n > 0 ? sqrt(ew->var) : NAN;
}

#ifdef __cplusplus
}
#endif
#endif
