/* Per-symbol statistics (src/core/state.c, pe/state.h) against their slow
 * reference forms (ref_state.c), on random irregular series, each state
 * initialised over memory poisoned with 0xA5 bytes. */
#include "pe/state.h"

#include <stdint.h>

#include "pe_test.h"
#include "ref_state.h"

#define N 2000

static double xs[N], vs[N];
static int64_t ts[N];

/* xorshift64*: a fixed sequence whatever the platform's rand(). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

/* A random walk around 100 with sizes in [0, 10) (some 0) and irregular
 * times, some equal, spanning about two days across midnight UTC. */
static void make_series(void) {
  rng_state = 0x9E3779B97F4A7C15ull;
  double p = 100.0;
  int64_t t = 1704150000000000000LL; /* 2024-01-01 23:00 UTC */
  for (int i = 0; i < N; i++) {
    p *= 1.0 + (rnd() - 0.5) * 0.01;
    xs[i] = p;
    vs[i] = rnd() < 0.05 ? 0.0 : rnd() * 10.0;
    double gap = rnd();
    t += gap < 0.1 ? 0 : (int64_t)(gap * 120e9);
    ts[i] = t;
  }
}

static void poison(void *p, size_t n) { memset(p, 0xA5, n); }

static void test_ema_matches_reference(void) {
  make_series();
  pe_ema_t e;
  poison(&e, sizeof e);
  pe_ema_init_span(&e, 19.0);
  PE_CHECK(isnan(pe_ema_value(&e)));
  for (int i = 0; i < N; i++) {
    pe_ema_update(&e, xs[i]);
    if (i % 97 == 0 || i == N - 1) {
      PE_CHECK_NEAR(e.value, pe_ref_ema(xs, (size_t)i + 1, 0.1), 1e-13);
    }
  }
  PE_CHECK_NEAR(e.alpha, 0.1, 1e-16);
}

static void test_ema_seeds_with_first_value(void) {
  make_series();
  pe_ema_t e;
  pe_ema_init_alpha(&e, 0.5);
  pe_ema_update(&e, 10.0);
  PE_CHECK_SAME(e.value, 10.0);
  pe_ema_update(&e, 20.0);
  PE_CHECK_SAME(e.value, 15.0);
}

static void test_ema_td_matches_reference(void) {
  make_series();
  pe_ema_td_t e;
  poison(&e, sizeof e);
  pe_ema_td_init(&e, 60.0);
  for (int i = 0; i < 400; i++) {
    pe_ema_td_update(&e, xs[i], ts[i]);
    if (i % 37 == 0 || i == 399) {
      PE_CHECK_NEAR(e.value, pe_ref_ema_td(xs, ts, (size_t)i + 1, 60.0), 1e-12);
    }
  }
}

static void test_ema_td_half_life(void) {
  make_series();
  /* After exactly one half-life the old value weighs one half. */
  pe_ema_td_t e;
  pe_ema_td_init(&e, 10.0);
  pe_ema_td_update(&e, 0.0, 0);
  pe_ema_td_update(&e, 1.0, 10 * 1000000000LL);
  PE_CHECK_NEAR(e.value, 0.5, 1e-15);
  /* Same timestamp: alpha 0, unchanged. */
  pe_ema_td_update(&e, 100.0, 10 * 1000000000LL);
  PE_CHECK_NEAR(e.value, 0.5, 1e-15);
}

static void test_vwap_cumulative_and_session(void) {
  make_series();
  for (int reset = -1; reset <= 30; reset += 31) {
    pe_vwap_t w;
    poison(&w, sizeof w);
    pe_vwap_init(&w, reset);
    int resets_seen = 0;
    double prev_v = 0.0;
    for (int i = 0; i < N; i++) {
      pe_vwap_update(&w, xs[i], vs[i], ts[i]);
      if (w.v_sum < prev_v) {
        resets_seen++;
      }
      prev_v = w.v_sum;
      double ref = pe_ref_vwap(xs, vs, ts, (size_t)i + 1, reset);
      PE_CHECK_NEAR(pe_vwap_value(&w), ref, 1e-12);
    }
    /* The series starts at 23:00 UTC and spans about 30 hours, crossing
     * 00:30 UTC twice: two resets with sessions, none without. */
    PE_CHECK(ts[N - 1] - ts[0] > 26 * 3600 * 1000000000LL);
    PE_CHECK(ts[N - 1] - ts[0] < 48 * 3600 * 1000000000LL);
    PE_CHECK_INT(resets_seen, reset < 0 ? 0 : 2);
  }
}

/* Timestamps at both ends of int64: differences saturate, a VWAP without
 * sessions never resets (not even at INT64_MAX, its "no boundary" mark), one
 * with sessions finds its boundaries without overflow and none past 2262,
 * and the rolling VWAP and time-decayed EMA keep finite values. Run under
 * UBSan (make test-sanitize), any overflow aborts. */
static void test_timestamps_at_the_int64_edges(void) {
  PE_CHECK(pe_ts_sub_sat(INT64_MAX, -1) == INT64_MAX);
  PE_CHECK(pe_ts_sub_sat(INT64_MIN, 1) == INT64_MIN);
  PE_CHECK(pe_ts_sub_sat(-5, 7) == -12);
  PE_CHECK(pe_ts_add_sat(INT64_MAX - 2, 3) == INT64_MAX);
  PE_CHECK(pe_ts_add_sat(INT64_MIN + 2, -3) == INT64_MIN);

  const int64_t day = 86400LL * 1000000000LL;
  const int64_t edge[] = {INT64_MIN + 1,   -day - 1,      -1,        0,
                          INT64_MAX - day, INT64_MAX - 1, INT64_MAX, INT64_MAX};
  const size_t n = sizeof edge / sizeof edge[0];
  for (int reset = -1; reset <= 810; reset += 811) {
    pe_vwap_t w;
    pe_vwap_init(&w, reset);
    for (size_t i = 0; i < n; i++) {
      pe_vwap_update(&w, 1.0 + (double)i, 1.0, edge[i]);
      if (reset < 0) {
        /* never reset: the mean of 1..i+1 */
        PE_CHECK_NEAR(pe_vwap_value(&w), (2.0 + (double)i) / 2.0, 1e-15);
      } else {
        PE_CHECK(w.next_reset_ns > edge[i] || w.next_reset_ns == INT64_MAX);
        PE_CHECK(w.next_reset_ns == INT64_MAX ||
                 (w.next_reset_ns % day + day) % day ==
                     810LL * 60 * 1000000000LL);
      }
    }
    if (reset >= 0) {
      /* The last trading day int64 can hold starts 2262-04-11 13:30 UTC:
       * INT64_MAX - 1 and INT64_MAX twice, at prices 6, 7 and 8; the
       * boundary after it is past the range, and nothing resets after. */
      PE_CHECK_NEAR(pe_vwap_value(&w), 7.0, 1e-15);
      PE_CHECK(w.next_reset_ns == INT64_MAX);
    }
  }
  pe_vwap_roll_t roll;
  pe_vwap_roll_init(&roll, 1e-9 * PE_VWAP_ROLL_BUCKETS); /* 1 ns buckets */
  pe_ema_td_t td;
  pe_ema_td_init(&td, 1.0);
  for (size_t i = 0; i < n; i++) {
    pe_vwap_roll_update(&roll, 2.0, 1.0, edge[i]);
    pe_ema_td_update(&td, 2.0 + (double)i, edge[i]);
    PE_CHECK(pe_vwap_roll_value(&roll) == 2.0);
    PE_CHECK(isfinite(td.value));
  }
}

/* The session-less VWAP: the reference's numbers, and pe_vwap_t's own bit for
 * bit when that one never resets. */
static void test_cvwap_matches_vwap_without_sessions(void) {
  make_series();
  pe_cvwap_t c;
  pe_vwap_t w;
  poison(&c, sizeof c);
  pe_cvwap_init(&c);
  pe_vwap_init(&w, -1);
  PE_CHECK(isnan(pe_cvwap_value(&c)));
  for (int i = 0; i < N; i++) {
    pe_cvwap_update(&c, xs[i], vs[i]);
    pe_vwap_update(&w, xs[i], vs[i], ts[i]);
    PE_CHECK_SAME(pe_cvwap_value(&c), pe_vwap_value(&w));
    PE_CHECK_NEAR(pe_cvwap_value(&c),
                  pe_ref_vwap(xs, vs, ts, (size_t)i + 1, -1), 1e-12);
  }
}

static void test_vwap_zero_volume_is_nan(void) {
  make_series();
  pe_vwap_t w;
  pe_vwap_init(&w, -1);
  pe_vwap_update(&w, 10.0, 0.0, 1);
  PE_CHECK(isnan(pe_vwap_value(&w)));
  pe_vwap_update(&w, 20.0, 2.0, 2);
  PE_CHECK_SAME(pe_vwap_value(&w), 20.0);
}

static void test_vwap_rolling_matches_reference(void) {
  make_series();
  pe_vwap_roll_t r;
  poison(&r, sizeof r);
  pe_vwap_roll_init(&r, 300.0);
  for (int i = 0; i < N; i++) {
    pe_vwap_roll_update(&r, xs[i], vs[i], ts[i]);
    double ref = pe_ref_vwap_roll(xs, vs, ts, (size_t)i + 1, 300.0);
    PE_CHECK_NEAR(pe_vwap_roll_value(&r), ref, 1e-12);
  }
}

static void test_vwap_rolling_forgets(void) {
  make_series();
  /* 32 buckets of 1 s: a tick 40 s later sees only itself. */
  pe_vwap_roll_t r;
  pe_vwap_roll_init(&r, 32.0);
  pe_vwap_roll_update(&r, 100.0, 1.0, 0);
  pe_vwap_roll_update(&r, 200.0, 1.0, 500000000LL);
  PE_CHECK_SAME(pe_vwap_roll_value(&r), 150.0);
  pe_vwap_roll_update(&r, 50.0, 3.0, 40000000000LL);
  PE_CHECK_SAME(pe_vwap_roll_value(&r), 50.0);
}

static void test_welford_matches_two_pass(void) {
  make_series();
  pe_welford_t w;
  poison(&w, sizeof w);
  pe_welford_init(&w);
  PE_CHECK(isnan(pe_welford_mean(&w)));
  for (int i = 0; i < N; i++) {
    pe_welford_update(&w, xs[i]);
    if (i == 0) {
      PE_CHECK(isnan(pe_welford_var_sample(&w)));
      PE_CHECK_SAME(pe_welford_var_pop(&w), 0.0);
    } else {
      PE_CHECK_NEAR(pe_welford_var_sample(&w),
                    pe_ref_var_sample(xs, (size_t)i + 1), 1e-11);
    }
    PE_CHECK_NEAR(pe_welford_mean(&w), pe_ref_mean(xs, (size_t)i + 1), 1e-14);
  }
}

static void test_welford_large_offset(void) {
  make_series();
  const double vals[] = {4.0, 7.0, 13.0, 16.0};
  pe_welford_t w;
  pe_welford_init(&w);
  for (int i = 0; i < 4; i++) {
    pe_welford_update(&w, 1e9 + vals[i]);
  }
  PE_CHECK_SAME(pe_welford_var_sample(&w), 30.0);
  PE_CHECK_SAME(pe_welford_var_pop(&w), 22.5);
  PE_CHECK_SAME(pe_welford_mean(&w), 1e9 + 10.0);
}

static void test_welford_merge(void) {
  make_series();
  pe_welford_t a, b, all;
  pe_welford_init(&a);
  pe_welford_init(&b);
  pe_welford_init(&all);
  for (int i = 0; i < N; i++) {
    pe_welford_update(i < 700 ? &a : &b, xs[i]);
    pe_welford_update(&all, xs[i]);
  }
  pe_welford_merge(&a, &b);
  PE_CHECK_INT(a.n, N);
  PE_CHECK_NEAR(a.mean, all.mean, 1e-14);
  PE_CHECK_NEAR(pe_welford_var_sample(&a), pe_welford_var_sample(&all), 1e-11);
  pe_welford_t empty;
  pe_welford_init(&empty);
  pe_welford_merge(&empty, &all);
  PE_CHECK_SAME(empty.m2, all.m2);
}

static void test_ewvar_matches_reference(void) {
  make_series();
  pe_ewvar_t ew;
  poison(&ew, sizeof ew);
  pe_ewvar_init(&ew, 0.05);
  for (int i = 0; i < N; i++) {
    double r = i == 0 ? 0.0 : log(xs[i] / xs[i - 1]);
    pe_ewvar_update(&ew, r);
  }
  double rets[N];
  rets[0] = 0.0;
  for (int i = 1; i < N; i++) {
    rets[i] = log(xs[i] / xs[i - 1]);
  }
  PE_CHECK_NEAR(ew.mean, pe_ref_ew_mean(rets, N, 0.05), 1e-12);
  PE_CHECK_NEAR(ew.var, pe_ref_ew_var(rets, N, 0.05), 1e-12);
}

static void test_ewvar_never_negative(void) {
  make_series();
  /* Equal values (zero variance) and huge jumps: never below zero. */
  pe_ewvar_t ew;
  pe_ewvar_init(&ew, 0.3);
  for (int i = 0; i < 10000; i++) {
    double x = (i % 100 < 90) ? 1e15 + 1.0 : ((i & 1) ? 1e-300 : 1e15);
    pe_ewvar_update(&ew, x);
    PE_CHECK(ew.var >= 0.0);
  }
  PE_CHECK(pe_ewvar_std(&ew) >= 0.0);
}

PE_TEST_MAIN(PE_TEST(test_timestamps_at_the_int64_edges),
             PE_TEST(test_ema_matches_reference),
             PE_TEST(test_ema_seeds_with_first_value),
             PE_TEST(test_ema_td_matches_reference),
             PE_TEST(test_ema_td_half_life),
             PE_TEST(test_vwap_cumulative_and_session),
             PE_TEST(test_cvwap_matches_vwap_without_sessions),
             PE_TEST(test_vwap_zero_volume_is_nan),
             PE_TEST(test_vwap_rolling_matches_reference),
             PE_TEST(test_vwap_rolling_forgets),
             PE_TEST(test_welford_matches_two_pass),
             PE_TEST(test_welford_large_offset), PE_TEST(test_welford_merge),
             PE_TEST(test_ewvar_matches_reference),
             PE_TEST(test_ewvar_never_negative))
