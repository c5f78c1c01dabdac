/* The engine (src/core/engine.c, rules.c, features.c, snapshot.c): rules,
 * score, label, confidence and cooldown; rejections that leave the state
 * untouched; windows; the stub model; snapshots. */
#include "pe/engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/symstate.h"
#include "core/symtab.h"
#include "pe/core.h"
#include "pe/defaults.h"
#include "pe/error.h"
#include "pe_test.h"

#define S (1000000000LL)
#define T0 (1700000000LL * S)

static pe_engine_t *make_engine(const pe_engine_config_t *cfg) {
  pe_engine_t *e = NULL;
  char err[256];
  int rc = pe_engine_create(cfg, &e, err, sizeof err);
  if (rc != PE_OK) {
    fprintf(stderr, "engine: %s\n", err);
    abort();
  }
  return e;
}

static pe_tick_t tick(const char *sym, int64_t ts, double price, double vol) {
  pe_tick_t t;
  memset(&t, 0, sizeof t);
  t.ts_ns = ts;
  t.recv_ts_ns = PE_TS_NONE;
  t.price = price;
  t.volume = vol;
  PE_CHECK_INT(pe_tick_set_symbol(&t, sym, (uint32_t)strlen(sym)), PE_OK);
  return t;
}

static pe_tick_out_t out;

/* 20 quiet ticks, 1 s apart, price 100 / 100.01, size 1. */
static void quiet_start(pe_engine_t *e, const char *sym) {
  for (int i = 0; i < 20; i++) {
    pe_tick_t t = tick(sym, T0 + i * S, (i & 1) ? 100.01 : 100.0, 1.0);
    PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
    PE_CHECK_INT(out.n_signals, 0);
  }
}

static void test_spike_breakout_signal(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe_engine_t *e = make_engine(&cfg);
  quiet_start(e, "S");

  pe_tick_t t = tick("S", T0 + 20 * S, 101.0, 10.0);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  PE_CHECK_INT(out.n_signals, 1);
  const pe_signal_t *sig = &out.signal[0];
  /* The VWAP after the jump, summed here independently. */
  double pv = 10 * 100.0 + 10 * 100.01 + 10 * 101.0;
  double vwap = pv / 30.0;
  double dev = (101.0 - vwap) / vwap;
  PE_CHECK_INT(sig->fired, (1u << PE_RULE_VWAP_DEVIATION) |
                               (1u << PE_RULE_VOLUME_SPIKE) |
                               (1u << PE_RULE_VOLATILITY_BREAKOUT));
  PE_CHECK_NEAR(sig->value[PE_RULE_VWAP_DEVIATION], dev, 1e-12);
  PE_CHECK_NEAR(sig->contribution[PE_RULE_VWAP_DEVIATION], 1.5 * dev, 1e-12);
  PE_CHECK_SAME(sig->contribution[PE_RULE_VOLUME_SPIKE], 0.3);
  PE_CHECK_SAME(sig->contribution[PE_RULE_VOLATILITY_BREAKOUT], 0.4);
  PE_CHECK_NEAR(sig->value[PE_RULE_VOLATILITY_BREAKOUT], log(101.0 / 100.01),
                1e-15);
  PE_CHECK_NEAR(sig->score, 0.7 + 1.5 * dev, 1e-12);
  PE_CHECK_SAME(sig->confidence, 1.0);
  PE_CHECK_INT(sig->pattern, PE_RULE_VOLATILITY_BREAKOUT);
  PE_CHECK_STR(sig->label, "volatility_breakout");
  PE_CHECK_STR(sig->id, "S-1700000020000000000");
  PE_CHECK_STR(sig->symbol, "S");
  PE_CHECK_SAME(sig->price, 101.0);

  /* 10 s later another jump, inside the 30 s cooldown: no signal. */
  t = tick("S", T0 + 30 * S, 103.0, 50.0);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  PE_CHECK_INT(out.n_signals, 0);
  /* A fall exactly 30 s after the signal: allowed, and negative. */
  t = tick("S", T0 + 50 * S, 99.0, 80.0);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  PE_CHECK_INT(out.n_signals, 1);
  PE_CHECK(out.signal[0].score < -0.3);
  PE_CHECK_STR(out.signal[0].label, "volatility_breakout");
  double agree = 0.0, total = 0.0;
  for (int r = 0; r < PE_RULE_COUNT; r++) {
    double c = out.signal[0].contribution[r];
    total += fabs(c);
    agree += c < 0.0 ? -c : 0.0;
  }
  PE_CHECK_NEAR(out.signal[0].confidence, agree / total, 1e-15);

  pe_engine_stats_t st;
  pe_engine_stats(e, &st);
  PE_CHECK_INT(st.ticks, 23);
  PE_CHECK_INT(st.signals[PE_RULE_VOLATILITY_BREAKOUT] +
                   st.signals[PE_RULE_VOLUME_SPIKE] +
                   st.signals[PE_RULE_VWAP_DEVIATION] +
                   st.signals[PE_RULE_EMA_CROSSOVER],
               2);
  pe_engine_destroy(e);
}

static void test_lone_spike_is_below_threshold(void) {
  /* A volume spike with a flat price contributes 0: it fires, no signal. */
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe_engine_t *e = make_engine(&cfg);
  quiet_start(e, "S");
  pe_tick_t t = tick("S", T0 + 20 * S, 100.0, 30.0);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  PE_CHECK_INT(out.n_signals, 0);
  PE_CHECK_NEAR(out.feature[PE_FEAT_VOLUME_RATIO], 30.0, 1e-12);
  pe_engine_destroy(e);
}

static void test_rules_label_and_confidence(void) {
  /* Direct rule evaluation with crafted features. */
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe__symstate_t s;
  pe__symstate_init(&s, &cfg);
  double f[PE_FEATURE_COUNT] = {0};
  pe__tickcalc_t calc = {-0.01, 1e-6, 10, 1.0};
  pe_tick_t t = tick("X", T0, 50.0, 5.0);
  pe_signal_t sig;
  /* Garbage that an emitted signal must not keep: the rules that did not
   * fire get value and contribution 0. */
  memset(&sig, 0x7f, sizeof sig);
  f[PE_FEAT_EMA_GAP] = 0.05;   /* +0.10 */
  f[PE_FEAT_VWAP_DEV] = -0.01; /* -0.015 */
  /* spike -0.3 (the return is negative), breakout -0.4: score -0.615 */
  PE_CHECK_INT(pe__rules_eval(&s, &cfg.rules, &t, f, &calc, &sig), 1);
  PE_CHECK_NEAR(sig.score, 0.10 - 0.015 - 0.3 - 0.4, 1e-15);
  PE_CHECK_INT(sig.pattern, PE_RULE_VOLATILITY_BREAKOUT);
  PE_CHECK_NEAR(sig.confidence, 0.715 / 0.815, 1e-15);
  PE_CHECK_SAME(sig.value[PE_RULE_VOLUME_SPIKE], 5.0);

  /* A huge EMA gap alone: clamped to 1, labelled ema_crossover. */
  pe__symstate_init(&s, &cfg);
  double g[PE_FEATURE_COUNT] = {0};
  g[PE_FEAT_EMA_GAP] = 0.9;
  pe__tickcalc_t quiet = {0.0, 1e-6, 10, 10.0};
  PE_CHECK_INT(pe__rules_eval(&s, &cfg.rules, &t, g, &quiet, &sig), 1);
  PE_CHECK_SAME(sig.score, 1.0);
  PE_CHECK_INT(sig.pattern, PE_RULE_EMA_CROSSOVER);
  PE_CHECK_INT(sig.fired, 1u << PE_RULE_EMA_CROSSOVER);
  for (int r = PE_RULE_VWAP_DEVIATION; r < PE_RULE_COUNT; r++) {
    PE_CHECK_SAME(sig.value[r], 0.0);
    PE_CHECK_SAME(sig.contribution[r], 0.0);
  }

  /* Below every threshold: nothing fires. */
  double h[PE_FEATURE_COUNT] = {0};
  h[PE_FEAT_EMA_GAP] = 0.0099;
  h[PE_FEAT_VWAP_DEV] = 0.0049;
  pe__symstate_init(&s, &cfg);
  PE_CHECK_INT(pe__rules_eval(&s, &cfg.rules, &t, h, &quiet, &sig), 0);
  PE_CHECK_INT(sig.fired, 0);

  /* Breakout needs breakout_min_returns previous returns. */
  pe__tickcalc_t young = {0.5, 1e-6, 4, 10.0};
  pe__symstate_init(&s, &cfg);
  PE_CHECK_INT(pe__rules_eval(&s, &cfg.rules, &t, h, &young, &sig), 0);
}

static void test_same_timestamp_ids_get_a_sequence(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.rules.signal_cooldown_ns = 0;
  pe__symstate_t s;
  pe__symstate_init(&s, &cfg);
  pe_engine_t *e = make_engine(&cfg);
  quiet_start(e, "Q");
  int64_t ts = T0 + 20 * S;
  const char *want[] = {"Q-1700000020000000000", "Q-1700000020000000000-2",
                        "Q-1700000020000000000-3"};
  double price = 100.0;
  for (int i = 0; i < 3; i++) {
    price *= 1.05;
    pe_tick_t t = tick("Q", ts, price, 100.0 * (i + 1));
    PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
    PE_CHECK_INT(out.n_signals, 1);
    PE_CHECK_STR(out.signal[0].id, want[i]);
  }
  pe_engine_destroy(e);
}

static void test_rejections_leave_state_unchanged(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = 2;
  pe_engine_t *e = make_engine(&cfg);
  pe_tick_t a = tick("A", T0 + 10 * S, 10.0, 1.0);
  pe_tick_t b = tick("B", T0, 20.0, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &a, &out), PE_OK);
  PE_CHECK_INT(pe_engine_push(e, &b, &out), PE_OK);

  size_t cap = pe_engine_snapshot_size(e);
  unsigned char *before = malloc(cap), *after = malloc(cap);
  size_t n1, n2;
  PE_CHECK_INT(pe_engine_snapshot(e, before, cap, &n1), PE_OK);

  pe_tick_t late = tick("A", T0 + 9 * S, 10.0, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &late, &out), PE_EORDER);
  pe_tick_t c = tick("C", T0, 30.0, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &c, &out), PE_EFULL);
  pe_tick_t bad = tick("A", T0 + 11 * S, NAN, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &bad, &out), PE_EPRICE);
  bad = tick("A", T0 + 11 * S, 1.0, -1.0);
  PE_CHECK_INT(pe_engine_push(e, &bad, &out), PE_EVOLUME);

  pe_engine_stats_t st;
  pe_engine_stats(e, &st);
  PE_CHECK_INT(st.rejected[PE_REJECT_OUT_OF_ORDER], 1);
  PE_CHECK_INT(st.rejected[PE_REJECT_BAD_PRICE], 1);
  PE_CHECK_INT(st.rejected[PE_REJECT_BAD_VOLUME], 1);
  PE_CHECK_INT(st.symbols, 2);

  /* Same per-symbol state; only the rejection counters moved. */
  PE_CHECK_INT(pe_engine_snapshot(e, after, cap, &n2), PE_OK);
  PE_CHECK_INT(n1, n2);
  /* The keys and states of the two symbols (no window), then a checksum. */
  size_t body = 2 * (sizeof(pe__symkey_t) + sizeof(pe__symstate_t));
  PE_CHECK(memcmp(before + n1 - 8 - body, after + n1 - 8 - body, body) == 0);
  /* An equal timestamp is in order. */
  pe_tick_t same = tick("A", T0 + 10 * S, 10.5, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &same, &out), PE_OK);
  free(before);
  free(after);
  pe_engine_destroy(e);
}

static void test_windows_fill_in_order(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.window = 4;
  pe_engine_t *e = make_engine(&cfg);
  float win[PE_FEATURE_COUNT * 4];
  double hist[10][PE_FEATURE_COUNT];
  for (int i = 0; i < 10; i++) {
    pe_tick_t t = tick("W", T0 + i * S, 100.0 + i * (i % 3), 1.0 + i);
    PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
    memcpy(hist[i], out.feature, sizeof hist[i]);
    int rc = pe_engine_window(e, 0, win, sizeof win / sizeof win[0]);
    /* The first tick has no return: rows start at the second, so the
     * window is ready after 5 ticks. */
    PE_CHECK_INT(rc, i < 4 ? PE_EAGAIN : PE_OK);
    if (rc == PE_OK) {
      for (int f = 0; f < PE_FEATURE_COUNT; f++) {
        for (int k = 0; k < 4; k++) {
          float want = (float)hist[i - 3 + k][f];
          PE_CHECK_SAME(win[f * 4 + k], want);
        }
      }
    }
  }
  pe_engine_destroy(e);
}

/* The stub backend with a window of 8. */
static pe_backend_t *stub8(void) {
  pe_backend_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.window = 8;
  pe_backend_t *b = NULL;
  char err[256];
  PE_CHECK_INT(pe_backend_open("stub", &opts, &b, err, sizeof err), PE_OK);
  return b;
}

static void test_stub_model_signals(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe_engine_t *e = make_engine(&cfg);
  pe_backend_t *b = stub8();
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  quiet_start(e, "M");
  pe_engine_stats_t st;
  pe_engine_stats(e, &st);
  PE_CHECK_INT(st.inferences, 20 - 8); /* ready at tick 9 */
  pe_tick_t t = tick("M", T0 + 20 * S, 101.0, 1.0);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  /* return_z is clipped at 10: softmax(0, 7, -13) gives "up" 0.99909. */
  PE_CHECK_INT(out.inferred, 1);
  PE_CHECK_INT(out.n_signals, 2);
  PE_CHECK_STR(out.signal[1].label, "model:up");
  PE_CHECK_STR(out.signal[1].id, "M-1700000020000000000-model");
  double e7 = exp(7.0);
  double p_up = e7 / (1.0 + e7 + exp(-13.0));
  PE_CHECK_NEAR(out.signal[1].confidence, p_up, 1e-6);
  PE_CHECK_NEAR(out.signal[1].score, p_up, 1e-6);
  pe_engine_destroy(e);
  pe_backend_close(b);
}

/* A backend without host memory of its own hands out malloc'd buffers
 * that its run accepts, and frees them. */
static void test_backend_host_memory(void) {
  pe_backend_t *b = stub8();
  const pe_model_info_t *info = pe_backend_info(b);
  size_t nin = (size_t)info->window * info->n_features;
  float *in = pe_backend_host_alloc(b, 2 * nin * sizeof(float));
  float *scores = pe_backend_host_alloc(b, 2 * info->n_outputs * sizeof(float));
  PE_CHECK(in != NULL && scores != NULL);
  for (size_t i = 0; i < 2 * nin; i++) {
    in[i] = 0.5f;
  }
  scores[0] = NAN;
  PE_CHECK_INT(pe_backend_run(b, in, 1, scores), PE_OK);
  PE_CHECK(isfinite(scores[0]));
  pe_backend_host_free(b, in);
  pe_backend_host_free(b, scores);
  pe_backend_host_free(b, NULL);
  pe_backend_close(b);
}

/* The stub backend whose host memory is counted: the engine's model
 * buffers come from it, its runs read and write them, and they go back to
 * it when the backend is detached or the engine destroyed; a refused
 * allocation fails the attach with nothing kept. */
static struct {
  pe_backend_ops_t ops;
  const pe_backend_ops_t *stub;
  int live, fail_at, made;
  void *held[2];
  int foreign_runs;
} counted;

static void *counted_alloc(void *self, size_t bytes) {
  (void)self;
  if (++counted.made == counted.fail_at) {
    return NULL;
  }
  void *p = malloc(bytes);
  if (p != NULL) {
    counted.held[counted.live % 2] = p;
    counted.live++;
  }
  return p;
}

static void counted_free(void *self, void *p) {
  (void)self;
  counted.live -= p != NULL;
  free(p);
}

static int counted_run(void *self, const float *in, uint32_t batch,
                       float *scores) {
  const int ours =
      ((const void *)in == counted.held[0] ||
       (const void *)in == counted.held[1]) &&
      ((void *)scores == counted.held[0] || (void *)scores == counted.held[1]);
  counted.foreign_runs += !ours;
  return counted.stub->run(self, in, batch, scores);
}

static void test_model_buffers_in_backend_memory(void) {
  counted.stub = pe_backend_find("stub");
  PE_CHECK(counted.stub != NULL);
  counted.ops = *counted.stub;
  counted.ops.host_alloc = counted_alloc;
  counted.ops.host_free = counted_free;
  counted.ops.run = counted_run;
  pe_backend_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.window = 8;
  pe_backend_t *b = NULL;
  char err[256];
  PE_CHECK_INT(pe_backend_open_ops(&counted.ops, &opts, &b, err, sizeof err),
               PE_OK);
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe_engine_t *e = make_engine(&cfg);
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  PE_CHECK_INT(counted.live, 2);
  PE_CHECK_INT(pe_engine_set_backend(e, NULL), PE_OK);
  PE_CHECK_INT(counted.live, 0);
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  PE_CHECK_INT(counted.live, 2);
  quiet_start(e, "M");
  pe_engine_stats_t st;
  pe_engine_stats(e, &st);
  PE_CHECK_INT(st.inferences, 20 - 8);
  PE_CHECK_INT(counted.foreign_runs, 0);
  pe_engine_destroy(e);
  PE_CHECK_INT(counted.live, 0);
  /* the second of the two allocations refused */
  e = make_engine(&cfg);
  counted.made = 0;
  counted.fail_at = 2;
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_ENOMEM);
  PE_CHECK_INT(counted.live, 0);
  counted.fail_at = 0;
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  PE_CHECK_INT(counted.live, 2);
  pe_engine_destroy(e);
  PE_CHECK_INT(counted.live, 0);
  pe_backend_close(b);
}

/* Runs 3000 ticks over 7 symbols through two engines, one snapshotted and
 * restored into a fresh engine halfway: every output must be the same. */
static void test_snapshot_restore_continues_exactly(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.window = 16;
  cfg.max_symbols = 16;
  pe_engine_t *a = make_engine(&cfg);
  pe_engine_t *b = make_engine(&cfg);
  uint64_t seed = 7;
  double price[7] = {10, 20, 30, 40, 50, 60, 70};
  unsigned char *snap = NULL;
  size_t len = 0;
  pe_tick_out_t oa, ob;
  for (int i = 0; i < 3000; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((seed >> 33) % 7);
    double u = (double)(seed >> 11) * 0x1.0p-53;
    price[k] *= 1.0 + (u - 0.5) * (u > 0.97 ? 0.08 : 0.002);
    char sym[8];
    snprintf(sym, sizeof sym, "S%d", k);
    pe_tick_t t = tick(sym, T0 + i * 100000000LL, price[k], 1.0 + u * 9.0);
    if (i == 1500) {
      size_t cap = pe_engine_snapshot_size(a);
      snap = malloc(cap);
      PE_CHECK_INT(pe_engine_snapshot(a, snap, cap, &len), PE_OK);
      PE_CHECK_INT(len, cap);
      PE_CHECK_INT(pe_engine_restore(b, snap, len), PE_OK);
    }
    PE_CHECK_INT(pe_engine_push(a, &t, &oa), PE_OK);
    if (i >= 1500) {
      PE_CHECK_INT(pe_engine_push(b, &t, &ob), PE_OK);
      PE_CHECK(memcmp(oa.feature, ob.feature, sizeof oa.feature) == 0);
      PE_CHECK_INT(oa.n_signals, ob.n_signals);
      if (oa.n_signals > 0 && ob.n_signals > 0) {
        PE_CHECK_STR(oa.signal[0].id, ob.signal[0].id);
        PE_CHECK_SAME(oa.signal[0].score, ob.signal[0].score);
      }
    }
  }
  pe_engine_stats_t sa, sb;
  pe_engine_stats(a, &sa);
  pe_engine_stats(b, &sb);
  PE_CHECK_INT(sa.ticks, sb.ticks);
  PE_CHECK(sa.signals[PE_RULE_VOLATILITY_BREAKOUT] > 0);

  /* The two final snapshots are byte-identical. */
  size_t cap = pe_engine_snapshot_size(a);
  unsigned char *x = malloc(cap), *y = malloc(cap);
  size_t nx, ny;
  pe_engine_snapshot(a, x, cap, &nx);
  pe_engine_snapshot(b, y, cap, &ny);
  PE_CHECK_INT(nx, ny);
  PE_CHECK(memcmp(x, y, nx) == 0);

  /* Damage is refused and leaves the engine as it was. */
  snap[len / 2] ^= 0x40;
  PE_CHECK_INT(pe_engine_restore(b, snap, len), PE_ECORRUPT);
  snap[len / 2] ^= 0x40;
  PE_CHECK_INT(pe_engine_restore(b, snap, len - 1), PE_ECORRUPT);
  PE_CHECK_INT(pe_engine_restore(b, snap, 10), PE_ECORRUPT);
  pe_engine_snapshot(b, y, cap, &ny);
  PE_CHECK(memcmp(x, y, nx) == 0);

  pe_engine_config_t other = cfg;
  other.ema_fast_span = 20.0;
  pe_engine_t *c = make_engine(&other);
  PE_CHECK_INT(pe_engine_restore(c, snap, len), PE_EINVAL);
  PE_CHECK(strstr(pe_engine_errmsg(c),
                  "other settings: --ema-fast-span 19, here 20") != NULL);
  pe_engine_destroy(c);

  free(x);
  free(y);
  free(snap);
  pe_engine_destroy(a);
  pe_engine_destroy(b);
}

static void test_config_validation(void) {
  pe_engine_config_t cfg;
  pe_engine_t *e = NULL;
  char err[256];
  pe_engine_config_init(&cfg);
  cfg.rules.volume_ema_alpha = 1.5;
  PE_CHECK_INT(pe_engine_create(&cfg, &e, err, sizeof err), PE_EINVAL);
  PE_CHECK(e == NULL);
  PE_CHECK(strstr(err, "alpha") != NULL);
  pe_engine_config_init(&cfg);
  cfg.ema_fast_span = 0.5;
  PE_CHECK_INT(pe_engine_create(&cfg, &e, err, sizeof err), PE_EINVAL);
  pe_engine_config_init(&cfg);
  cfg.max_symbols = 0;
  PE_CHECK_INT(pe_engine_create(&cfg, &e, err, sizeof err), PE_EINVAL);
  pe_engine_destroy(NULL);
}

/* What one push produced, as text: its code and, when accepted, the
 * outputs and signal ids. */
static void render_push(char *buf, size_t cap, uint32_t i, int rc,
                        const pe_tick_out_t *o) {
  int n = snprintf(buf, cap, "%u rc=%d", i, rc);
  if (rc == PE_OK) {
    n += snprintf(buf + n, cap - (size_t)n,
                  " id=%u %.17g %.17g %.17g %.17g %.17g", o->symbol_id,
                  o->ema_fast, o->ema_slow, o->vwap, o->mean, o->var);
    for (int f = 0; f < PE_FEATURE_COUNT; f++) {
      n += snprintf(buf + n, cap - (size_t)n, " %.17g", o->feature[f]);
    }
    for (uint32_t s = 0; s < o->n_signals; s++) {
      n += snprintf(buf + n, cap - (size_t)n, " [%s %s %.17g %u]",
                    o->signal[s].id, o->signal[s].label, o->signal[s].score,
                    o->signal[s].fired);
    }
  }
}

typedef struct batch_log {
  char text[48][2048];
  int n;
  uint32_t base; /* index of the batch's first tick */
  int stop_at;   /* stop the batch after this tick (-1: never) */
} batch_log_t;

static int log_each(void *ctx, uint32_t i, int rc, const pe_tick_out_t *o) {
  batch_log_t *b = ctx;
  if (b->n < 48) {
    render_push(b->text[b->n++], sizeof b->text[0], b->base + i, rc, o);
  }
  return (int)(b->base + i) == b->stop_at ? 99 : 0;
}

/* Pushes t[0, n) one by one, rendering each push that `all` or a rejection
 * or a signal selects, up to and including stop_at. */
static void single_pushes(pe_engine_t *e, const pe_tick_t *t, uint32_t n,
                          int all, int stop_at, batch_log_t *log) {
  for (uint32_t i = 0; i < n; i++) {
    int rc = pe_engine_push(e, &t[i], &out);
    if (all || rc != PE_OK || out.n_signals > 0) {
      render_push(log->text[log->n++], sizeof log->text[0], i, rc, &out);
    }
    if ((int)i == stop_at) {
      return;
    }
  }
}

/* pe_engine_push_batch against one pe_engine_push per tick, on ticks with
 * every kind of rejection, a full table, repeated symbols and signals:
 * every push reported, only the rejected or signalling ones, and a batch
 * stopped by its callback. */
static void test_push_batch_matches_single_pushes(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = 6;
  cfg.all_features = 1;
  cfg.rules.signal_cooldown_ns = 0;
  pe_tick_t t[40];
  static const char *const syms[] = {"A", "BB", "CCC", "A", "DDDD", "E"};
  for (int i = 0; i < 40; i++) {
    double price = 100.0 + (i % 7) * (i % 2 ? 3.0 : -2.5);
    t[i] = tick(syms[i % 6], T0 + (i / 3) * S, price, 1.0 + (i % 5) * (i % 4));
  }
  t[5].price = -1.0;                              /* bad_price */
  t[9].volume = NAN;                              /* bad_volume */
  t[13].symbol_len = 0;                           /* empty_symbol */
  t[17].symbol_len = PE_SYMBOL_MAX + 1;           /* symbol_too_long */
  t[21].ts_ns = T0 - S;                           /* out_of_order */
  t[25] = tick("FFFFF", T0 + 20 * S, 50.0, 1.0);  /* the sixth symbol */
  t[29] = tick("GGGGGG", T0 + 20 * S, 50.0, 1.0); /* the table is full */
  t[33].volume = 500.0;                           /* a spike */
  /* Without PE_ENGINE_EACH_ALL the callback only sees the rejected and
   * signalling pushes, so only those can stop a batch: 21 (out of order)
   * and 29 (table full) are two of them. */
  static const int stops[2][7] = {{-1, 5, 21, 29, -1, -1, -1},
                                  {-1, 0, 12, 19, 20, 33, 39}};
  for (int all = 0; all < 2; all++) {
    for (size_t k = 0; k < 7; k++) {
      int stop_at = stops[all][k];
      pe_engine_t *single, *batched;
      char err[128];
      PE_CHECK_INT(pe_engine_create(&cfg, &single, err, sizeof err), PE_OK);
      PE_CHECK_INT(pe_engine_create(&cfg, &batched, err, sizeof err), PE_OK);
      static batch_log_t want, got;
      memset(&want, 0, sizeof want);
      memset(&got, 0, sizeof got);
      single_pushes(single, t, 40, all, stop_at, &want);
      got.stop_at = stop_at;
      int rc = 0;
      uint32_t total = 0;
      for (uint32_t b = 0; b < 40 && rc == 0; b += 20) {
        uint32_t pushed = 0;
        got.base = b;
        uint64_t cycles[20];
        memset(cycles, 0, sizeof cycles);
        rc = pe_engine_push_batch(batched, t + b, 20, &out,
                                  all ? PE_ENGINE_EACH_ALL : 0, log_each, &got,
                                  &pushed, (b / 20) % 2 ? cycles : NULL);
        for (uint32_t j = 0; (b / 20) % 2 && j < pushed; j++) {
          PE_CHECK(cycles[j] > 0); /* every pushed tick was timed */
        }
        total += pushed;
      }
      PE_CHECK_INT(rc, stop_at >= 0 ? 99 : 0);
      PE_CHECK_INT(total, stop_at >= 0 ? stop_at + 1 : 40);
      PE_CHECK_INT(got.n, want.n);
      for (int i = 0; i < want.n && i < got.n; i++) {
        PE_CHECK_STR(got.text[i], want.text[i]);
      }
      pe_engine_stats_t a, b2;
      pe_engine_stats(single, &a);
      pe_engine_stats(batched, &b2);
      PE_CHECK(memcmp(&a, &b2, sizeof a) == 0);
      if (stop_at < 0) {
        PE_CHECK_INT(a.symbols, 6);
        PE_CHECK_INT(a.rejected[PE_REJECT_OUT_OF_ORDER], 1);
        PE_CHECK(a.signals[PE_RULE_VOLUME_SPIKE] > 0);
      }
      pe_engine_destroy(single);
      pe_engine_destroy(batched);
    }
  }
}

/* A snapshot changed in place, its checksum recomputed as a forger would. */
static void reseal(unsigned char *snap, size_t len) {
  uint64_t sum = pe__hash64(snap, len - 8, 0);
  memcpy(snap + len - 8, &sum, 8);
}

/* Every setting that shapes state or signals is recorded and named when it
 * differs; fields the engine indexes with or divides by are checked on
 * load whatever the checksum says (a forged win_head once crashed the next
 * push), and a refused snapshot leaves the engine as it was. */
static void test_snapshot_settings_and_ranges(void) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = 100;
  cfg.ts_unit = 3;
  cfg.model_digest = 0x1234;
  pe_engine_t *a = make_engine(&cfg);
  PE_CHECK_INT(pe_engine_set_window(a, 8), PE_OK);
  static const char *const syms[] = {"AAA", "BB", "C"};
  for (int i = 0; i < 60; i++) {
    pe_tick_t t = tick(syms[i % 3], T0 + i * S, 100.0 + i % 7, 1.0 + i % 3);
    PE_CHECK_INT(pe_engine_push(a, &t, &out), PE_OK);
  }
  size_t len = pe_engine_snapshot_size(a);
  unsigned char *snap = malloc(len), *copy = malloc(len);
  PE_CHECK_INT(pe_engine_snapshot(a, snap, len, &len), PE_OK);

  struct {
    const char *want;
    pe_engine_config_t c;
  } other[4];
  for (int i = 0; i < 4; i++) {
    other[i].c = cfg;
  }
  other[0].c.max_symbols = 200;
  other[0].want = "other settings: --max-symbols 100, here 200";
  other[1].c.ts_unit = 0;
  other[1].want = "other settings: --ts-unit us, here auto";
  other[2].c.model_digest = 0;
  other[2].want = "other settings: --model (file, backend, features) digest "
                  "0000000000001234, here none";
  other[3].c.rules.signal_score_min = 0.5;
  other[3].want =
      "other settings: --signal-score-min 0.29999999999999999, here 0.5";
  for (int i = 0; i < 4; i++) {
    pe_engine_t *b = make_engine(&other[i].c);
    PE_CHECK_INT(pe_engine_set_window(b, 8), PE_OK);
    PE_CHECK_INT(pe_engine_restore(b, snap, len), PE_EINVAL);
    if (strstr(pe_engine_errmsg(b), other[i].want) == NULL) {
      fprintf(stderr, "message: %s\nwant: %s\n", pe_engine_errmsg(b),
              other[i].want);
      pe_test_failures++;
    }
    pe_engine_destroy(b);
  }

  /* Forged fields, each with a fresh checksum. */
  const size_t rows = 3 * 8 * PE_FEATURE_COUNT * sizeof(float);
  const size_t states = len - 8 - rows - 3 * sizeof(pe__symstate_t);
  const size_t keys = states - 3 * sizeof(pe__symkey_t);
  pe__symstate_t st;
  pe__symkey_t key;
  for (int k = 0; k < 7; k++) {
    memcpy(copy, snap, len);
    unsigned char *s1 = copy + states + sizeof st; /* the second symbol */
    memcpy(&st, s1, sizeof st);
    memcpy(&key, copy + keys + sizeof key, sizeof key);
    const char *want = "window position out of range";
    switch (k) {
    case 0:
      st.win_head = 0xFFFFFFF0u;
      break;
    case 1:
      st.win_count = 9;
      break;
    case 2:
      st.vwap_roll.bucket_ns = 0;
      want = "a weight or width other than its settings give";
      break;
    case 3:
      st.ema_slow.alpha = 1.5;
      want = "a weight or width other than its settings give";
      break;
    case 4:
      st.since_infer = 7;
      want = "past its tick count";
      break;
    case 5:
      memcpy(key.bytes, "AAA", 4); /* the first symbol's */
      want = "appears twice";
      break;
    default:
      memcpy(key.bytes, "B\0B", 4);
      want = "empty, too long or holds a NUL";
      break;
    }
    memcpy(s1, &st, sizeof st);
    memcpy(copy + keys + sizeof key, &key, sizeof key);
    reseal(copy, len);
    pe_engine_t *b = make_engine(&cfg);
    PE_CHECK_INT(pe_engine_set_window(b, 8), PE_OK);
    pe_tick_t t = tick("ZZ", T0, 5.0, 1.0);
    PE_CHECK_INT(pe_engine_push(b, &t, &out), PE_OK);
    PE_CHECK_INT(pe_engine_restore(b, copy, len), PE_ECORRUPT);
    if (strstr(pe_engine_errmsg(b), want) == NULL) {
      fprintf(stderr, "forgery %d: %s\n", k, pe_engine_errmsg(b));
      pe_test_failures++;
    }
    /* Unchanged: still the one symbol, and it takes its next tick. */
    pe_engine_stats_t stats;
    pe_engine_stats(b, &stats);
    PE_CHECK_INT(stats.symbols, 1);
    PE_CHECK_STR(pe_engine_symbol(b, 0), "ZZ");
    t.ts_ns += S;
    PE_CHECK_INT(pe_engine_push(b, &t, &out), PE_OK);
    pe_engine_destroy(b);
  }
  /* A tick count at its limit loads, stays there under more ticks, and
   * the engine's next snapshot loads again; one above it is refused. */
  for (int k = 0; k < 2; k++) {
    memcpy(copy, snap, len);
    unsigned char *s1 = copy + states + sizeof st;
    memcpy(&st, s1, sizeof st);
    st.n_ticks = PE__TICKS_MAX + (uint64_t)k;
    memcpy(s1, &st, sizeof st);
    reseal(copy, len);
    pe_engine_t *b = make_engine(&cfg);
    PE_CHECK_INT(pe_engine_set_window(b, 8), PE_OK);
    PE_CHECK_INT(pe_engine_restore(b, copy, len), k ? PE_ECORRUPT : PE_OK);
    if (k == 1) {
      PE_CHECK(strstr(pe_engine_errmsg(b), "tick count out of range") != NULL);
      pe_engine_destroy(b);
      continue;
    }
    for (int i = 0; i < 5; i++) {
      pe_tick_t t = tick("BB", T0 + (100 + i) * S, 101.0, 1.0);
      PE_CHECK_INT(pe_engine_push(b, &t, &out), PE_OK);
    }
    size_t len2 = 0;
    unsigned char *again = malloc(len);
    PE_CHECK_INT(pe_engine_snapshot(b, again, len, &len2), PE_OK);
    memcpy(&st, again + states + sizeof st, sizeof st);
    PE_CHECK(st.n_ticks == PE__TICKS_MAX);
    pe_engine_t *c = make_engine(&cfg);
    PE_CHECK_INT(pe_engine_set_window(c, 8), PE_OK);
    PE_CHECK_INT(pe_engine_restore(c, again, len2), PE_OK);
    pe_engine_destroy(c);
    pe_engine_destroy(b);
    free(again);
  }
  /* The untouched snapshot still loads and goes on. */
  pe_engine_t *b = make_engine(&cfg);
  PE_CHECK_INT(pe_engine_set_window(b, 8), PE_OK);
  PE_CHECK_INT(pe_engine_restore(b, snap, len), PE_OK);
  pe_tick_t t = tick("BB", T0 + 100 * S, 101.0, 1.0);
  PE_CHECK_INT(pe_engine_push(b, &t, &out), PE_OK);
  pe_engine_destroy(b);
  pe_engine_destroy(a);
  free(snap);
  free(copy);
}

static int count_each(void *ctx, uint32_t i, int rc, const pe_tick_out_t *o) {
  (void)i;
  (void)o;
  *(int *)ctx += rc == PE_ESYMNUL;
  return 0;
}

/* A symbol with a NUL byte anywhere in its length is rejected (symbol_nul)
 * by pe_tick_set_symbol, pe_engine_push and pe_engine_push_batch alike,
 * counted, and makes no symbol: "A\0B" would print as "A". */
static void test_symbol_with_nul_is_rejected(void) {
  pe_tick_t t = tick("A", T0, 100.0, 1.0);
  PE_CHECK_INT(pe_tick_set_symbol(&t, "A\0B", 3), PE_ESYMNUL);
  PE_CHECK_STR(t.symbol, "A"); /* unchanged */
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  pe_engine_t *e;
  char err[128];
  PE_CHECK_INT(pe_engine_create(&cfg, &e, err, sizeof err), PE_OK);
  PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
  /* NUL at every position of a 31-byte symbol, through every 8-byte word,
   * then the same symbol without one. */
  char name[PE_SYMBOL_MAX + 1];
  memset(name, 'Z', sizeof name);
  pe_tick_t bad[PE_SYMBOL_MAX];
  for (uint32_t i = 0; i < PE_SYMBOL_MAX; i++) {
    bad[i] = tick("A", T0 + S, 100.0, 1.0);
    memcpy(bad[i].symbol, name, PE_SYMBOL_MAX);
    bad[i].symbol[i] = '\0';
    bad[i].symbol[PE_SYMBOL_MAX] = '\0';
    bad[i].symbol_len = PE_SYMBOL_MAX;
    PE_CHECK_INT(pe_engine_push(e, &bad[i], &out), PE_ESYMNUL);
  }
  uint32_t pushed = 0;
  int seen = 0;
  PE_CHECK_INT(pe_engine_push_batch(e, bad, 16, &out, 0, count_each, &seen,
                                    &pushed, NULL),
               PE_OK);
  PE_CHECK_INT(seen, 16);
  pe_engine_stats_t st;
  pe_engine_stats(e, &st);
  PE_CHECK_INT(st.rejected[PE_REJECT_SYMBOL_NUL], PE_SYMBOL_MAX + 16);
  PE_CHECK_INT(st.symbols, 1);
  PE_CHECK_STR(pe_reject_name(PE_REJECT_SYMBOL_NUL), "symbol_nul");
  pe_tick_t good = tick("A", T0 + S, 100.0, 1.0);
  memcpy(good.symbol, name, PE_SYMBOL_MAX);
  good.symbol[PE_SYMBOL_MAX] = '\0';
  good.symbol_len = PE_SYMBOL_MAX;
  PE_CHECK_INT(pe_engine_push(e, &good, &out), PE_OK);
  pe_engine_destroy(e);
}

/* The engine and the columnar core start from pe/defaults.h; the stub
 * backend's window too. */
static void test_defaults_from_one_place(void) {
  pe_engine_config_t c;
  pe_engine_config_init(&c);
  PE_CHECK_INT(c.max_symbols, 65536);
  PE_CHECK_SAME(c.ema_fast_span, 19.0);
  PE_CHECK_SAME(c.ema_slow_span, 39.0);
  PE_CHECK_SAME(c.rules.volume_spike_multiplier, 2.0);
  PE_CHECK_SAME(c.rules.ema_diff_threshold, 0.01);
  PE_CHECK_INT(c.rules.signal_cooldown_ns, 30000000000LL);
  PE_CHECK_SAME(c.model_threshold, 0.9);
  PE_CHECK_STR(PE_DEFAULT_TEXT(PE_DEFAULT_VWAP_DIFF_THRESHOLD), "0.005");
  pe_core_config_t k;
  pe_core_config_init(&k);
  PE_CHECK_SAME(k.ema_fast_span, c.ema_fast_span);
  PE_CHECK_SAME(k.ema_slow_span, c.ema_slow_span);
  pe_backend_options_t o;
  memset(&o, 0, sizeof o);
  pe_backend_t *b = NULL;
  char err[256];
  PE_CHECK_INT(pe_backend_open("stub", &o, &b, err, sizeof err), PE_OK);
  if (b != NULL) {
    PE_CHECK_INT(pe_backend_info(b)->window, PE_DEFAULT_MODEL_WINDOW);
  }
  pe_backend_close(b);
}

/* ---- Micro-batching ------------------------------------------------------ */

#define MB_TICKS 3000
#define MB_SYMS 12

/* Ticks 1 ms apart over MB_SYMS symbols: a random walk with jumps, so that
 * the stub model's "up" and "down" fire often, and a few rejections. */
static void mb_ticks(pe_tick_t *t) {
  uint64_t s = 7;
  double price[MB_SYMS];
  for (int k = 0; k < MB_SYMS; k++) {
    price[k] = 50.0 + k;
  }
  for (int i = 0; i < MB_TICKS; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((s >> 33) % MB_SYMS);
    double u = (double)(s >> 11) * 0x1.0p-53;
    price[k] *= 1.0 + (u - 0.5) * (u > 0.9 ? 0.08 : 0.002);
    char sym[8];
    snprintf(sym, sizeof sym, "S%d", k);
    t[i] = tick(sym, T0 + i * (S / 1000), price[k], 1.0 + u * 3.0);
  }
  t[100].price = -1.0;                  /* bad_price */
  t[700].ts_ns = T0;                    /* out_of_order */
  t[1500].symbol_len = 0;               /* empty_symbol */
  t[2200].volume = NAN;                 /* bad_volume */
  t[2201].ts_ns = t[2199].ts_ns - 5000; /* out of global order: fine */
  t[2202].ts_ns = t[2201].ts_ns;        /* the same time: fine */
}

typedef struct mb_log {
  char (*line)[2048]; /* [MB_TICKS] */
  uint32_t n;
  uint32_t held_over; /* reports seen with more held than held_max */
  pe_engine_t *engine;
} mb_log_t;

/* Accepted ticks' reports, rendered in the order they come out. */
static int mb_report(void *ctx, const pe_tick_t *t, int rc,
                     const pe_tick_out_t *o) {
  mb_log_t *log = ctx;
  (void)t;
  if (pe_engine_held(log->engine) > pe_engine_held_max(log->engine)) {
    log->held_over += 1;
  }
  if (log->n < MB_TICKS) {
    render_push(log->line[log->n], sizeof log->line[0], log->n, rc, o);
    log->n += 1;
  }
  return PE_CONTINUE;
}

typedef struct mb_batch {
  mb_log_t *log;
  const pe_tick_t *t; /* the batch */
  uint32_t rejects;
} mb_batch_t;

/* pe_engine_push_batch's `each`: a rejection counted, or (unbatched, with
 * PE_ENGINE_EACH_ALL) an accepted tick's report rendered. */
static int mb_each(void *ctx, uint32_t i, int rc, const pe_tick_out_t *o) {
  mb_batch_t *mb = ctx;
  if (rc < 0) {
    mb->rejects += 1;
    return PE_CONTINUE;
  }
  return mb_report(mb->log, &mb->t[i], rc, o);
}

static void mb_config(pe_engine_config_t *cfg, uint32_t infer_every) {
  pe_engine_config_init(cfg);
  cfg->all_features = 1;
  cfg->infer_every = infer_every;
  cfg->model_threshold = 0.6;
  cfg->rules.signal_cooldown_ns = S / 100; /* 10 ticks of this stream */
}

/* Micro-batched runs (by single pushes and by pe_engine_push_batch) against
 * an unbatched run, report by report: every output, signal id and score
 * equal, in the same order, whatever max_batch and max_delay_us; model
 * runs fewer and larger as they allow, and of one window with no delay. */
static void test_micro_batch_matches_unbatched(void) {
  pe_tick_t *t = calloc(MB_TICKS, sizeof *t);
  mb_ticks(t);
  pe_backend_t *b = stub8();
  static const uint32_t batches[] = {1, 2, 7, 64, 256};
  static const uint32_t delays[] = {0, 3000, 1000000000};
  mb_log_t want = {calloc(MB_TICKS, sizeof *want.line), 0, 0, NULL};
  mb_log_t got = {calloc(MB_TICKS, sizeof *got.line), 0, 0, NULL};
  for (uint32_t every = 1; every <= 3; every += 2) {
    pe_engine_config_t cfg;
    mb_config(&cfg, every);
    pe_engine_t *ref = make_engine(&cfg);
    PE_CHECK_INT(pe_engine_set_backend(ref, b), PE_OK);
    PE_CHECK_INT(pe_engine_batched(ref), 0);
    want.n = 0;
    uint32_t want_rejects = 0;
    for (uint32_t i = 0; i < MB_TICKS; i++) {
      int rc = pe_engine_push(ref, &t[i], &out);
      if (rc == PE_OK) {
        render_push(want.line[want.n], sizeof want.line[0], want.n, rc, &out);
        want.n += 1;
      } else {
        want_rejects += 1;
      }
    }
    pe_engine_stats_t ws;
    pe_engine_stats(ref, &ws);
    PE_CHECK_INT(want_rejects, 4);
    PE_CHECK(ws.signals[PE_PATTERN_MODEL] > 20); /* the model has a say */
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
      for (size_t di = 0; di < sizeof delays / sizeof delays[0]; di++) {
        for (int by_batch = 0; by_batch < 2; by_batch++) {
          cfg.max_batch = batches[bi];
          cfg.max_delay_us = delays[di];
          pe_engine_t *e = make_engine(&cfg);
          PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
          PE_CHECK_INT(pe_engine_batched(e), batches[bi] > 1);
          pe_engine_set_report(e, mb_report, &got);
          got.n = 0;
          got.held_over = 0;
          got.engine = e;
          mb_batch_t mb = {&got, NULL, 0};
          for (uint32_t i = 0; i < MB_TICKS;) {
            if (by_batch) {
              uint32_t n = MB_TICKS - i < 20 ? MB_TICKS - i : 20, pushed = 0;
              mb.t = t + i;
              PE_CHECK_INT(pe_engine_push_batch(e, t + i, n, &out,
                                                PE_ENGINE_EACH_ALL, mb_each,
                                                &mb, &pushed, NULL),
                           0);
              i += pushed;
              continue;
            }
            int rc = pe_engine_push(e, &t[i], &out);
            if (batches[bi] == 1 && rc == PE_OK) {
              mb_report(&got, &t[i], rc, &out);
            }
            mb.rejects += rc < 0;
            i++;
          }
          uint32_t rejects = mb.rejects;
          PE_CHECK_INT(pe_engine_flush(e), PE_OK);
          PE_CHECK_INT(pe_engine_held(e), 0);
          PE_CHECK_INT(rejects, want_rejects);
          PE_CHECK_INT(got.held_over, 0);
          PE_CHECK_INT(got.n, want.n);
          for (uint32_t k = 0; k < want.n && k < got.n; k++) {
            if (strcmp(got.line[k], want.line[k]) != 0) {
              fprintf(stderr, "max_batch %u, delay %u us, every %u:\n",
                      batches[bi], delays[di], every);
              PE_CHECK_STR(got.line[k], want.line[k]);
              break;
            }
          }
          pe_engine_stats_t gs;
          pe_engine_stats(e, &gs);
          PE_CHECK(memcmp(&gs, &ws, sizeof gs) == 0);
          pe_engine_batch_stats_t bs;
          pe_engine_batch_stats(e, &bs);
          if (batches[bi] == 1) {
            PE_CHECK_INT(bs.runs, 0);
          } else {
            PE_CHECK_INT(bs.windows, ws.inferences);
            uint64_t by_size = 0;
            for (int k = 0; k < PE_ENGINE_BATCH_BUCKETS; k++) {
              by_size += bs.by_size[k];
            }
            PE_CHECK_INT(by_size, bs.runs);
            /* No delay: a window runs with those of its tick time only
             * (two ticks share one); 3 ms: those of 4 ticks, 5 where
             * a tick comes before its predecessor. */
            if (delays[di] == 0) {
              PE_CHECK(bs.largest <= 2);
              PE_CHECK(bs.runs >= ws.inferences - 1);
            } else if (delays[di] == 3000) {
              PE_CHECK(bs.largest <= 5 && bs.largest >= 2);
            } else {
              PE_CHECK_INT(bs.largest, batches[bi]);
              PE_CHECK(bs.runs <= ws.inferences / batches[bi] + 2);
            }
          }
          pe_engine_destroy(e);
        }
      }
    }
    pe_engine_destroy(ref);
  }
  free(want.line);
  free(got.line);
  pe_backend_close(b);
  free(t);
}

static int mb_stop_at_3(void *ctx, const pe_tick_t *t, int rc,
                        const pe_tick_out_t *o) {
  (void)t;
  (void)rc;
  (void)o;
  uint32_t *n = ctx;
  return ++*n == 3 ? 42 : PE_CONTINUE;
}

/* While reports are held: snapshot and restore refused with PE_ESTATE,
 * allowed again after a flush; a push without a report callback refused;
 * a callback's stop value returned by the flush. */
static void test_micro_batch_held_refusals(void) {
  pe_tick_t *t = calloc(MB_TICKS, sizeof *t);
  mb_ticks(t);
  pe_backend_t *b = stub8();
  pe_engine_config_t cfg;
  mb_config(&cfg, 1);
  cfg.max_batch = 16;
  cfg.max_delay_us = 1000000000;
  pe_engine_t *e = make_engine(&cfg);
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  PE_CHECK_INT(pe_engine_push(e, &t[0], &out), PE_ESTATE);
  PE_CHECK_INT(pe_engine_held_max(e), 4 * 16 + 60);
  mb_log_t log = {calloc(MB_TICKS, sizeof *log.line), 0, 0, e};
  pe_engine_set_report(e, mb_report, &log);
  uint32_t i = 0;
  while (pe_engine_held(e) == 0 && i < 200) {
    PE_CHECK_INT(pe_engine_push(e, &t[i++], &out), PE_OK);
  }
  PE_CHECK_INT(pe_engine_held(e), 1);
  size_t cap = pe_engine_snapshot_size(e);
  unsigned char *snap = malloc(cap);
  size_t len = 0;
  PE_CHECK_INT(pe_engine_snapshot(e, snap, cap, &len), PE_ESTATE);
  pe_engine_t *other = make_engine(&cfg);
  PE_CHECK_INT(pe_engine_set_backend(other, b), PE_OK);
  PE_CHECK_INT(pe_engine_snapshot(other, snap, cap, &len), PE_OK);
  PE_CHECK_INT(pe_engine_restore(e, snap, len), PE_ESTATE);
  PE_CHECK(strstr(pe_engine_errmsg(e), "flush") != NULL);
  uint32_t before = log.n;
  PE_CHECK_INT(pe_engine_flush(e), PE_OK);
  PE_CHECK_INT(log.n, before + 1);
  PE_CHECK_INT(pe_engine_held(e), 0);
  cap = pe_engine_snapshot_size(e);
  snap = realloc(snap, cap);
  PE_CHECK_INT(pe_engine_snapshot(e, snap, cap, &len), PE_OK);
  PE_CHECK_INT(pe_engine_restore(e, snap, len), PE_OK);
  /* Ten more held reports; the callback stops at the third. */
  while (pe_engine_held(e) < 10 && i < MB_TICKS) {
    PE_CHECK_INT(pe_engine_push(e, &t[i++], &out), PE_OK);
  }
  uint32_t seen = 0;
  pe_engine_set_report(e, mb_stop_at_3, &seen);
  PE_CHECK_INT(pe_engine_flush(e), 42);
  PE_CHECK_INT(seen, 3);
  PE_CHECK_INT(pe_engine_held(e), 0);
  cfg.max_batch = PE_ENGINE_MAX_BATCH + 1;
  pe_engine_t *bad = NULL;
  char err[256];
  PE_CHECK_INT(pe_engine_create(&cfg, &bad, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "max_batch") != NULL);
  pe_engine_destroy(other);
  pe_engine_destroy(e);
  pe_backend_close(b);
  free(log.line);
  free(snap);
  free(t);
}

PE_TEST_MAIN(PE_TEST(test_defaults_from_one_place),
             PE_TEST(test_snapshot_settings_and_ranges),
             PE_TEST(test_symbol_with_nul_is_rejected),
             PE_TEST(test_spike_breakout_signal),
             PE_TEST(test_lone_spike_is_below_threshold),
             PE_TEST(test_rules_label_and_confidence),
             PE_TEST(test_same_timestamp_ids_get_a_sequence),
             PE_TEST(test_rejections_leave_state_unchanged),
             PE_TEST(test_windows_fill_in_order),
             PE_TEST(test_stub_model_signals),
             PE_TEST(test_backend_host_memory),
             PE_TEST(test_model_buffers_in_backend_memory),
             PE_TEST(test_snapshot_restore_continues_exactly),
             PE_TEST(test_config_validation),
             PE_TEST(test_push_batch_matches_single_pushes),
             PE_TEST(test_micro_batch_matches_unbatched),
             PE_TEST(test_micro_batch_held_refusals))
