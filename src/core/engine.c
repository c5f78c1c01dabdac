/* The engine: one tick in, features, windows, rules, model, signals out. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/digits.h"
#include "core/engine_impl.h"
#include "pe/clock.h"
#include "pe/defaults.h"
#include "pe/error.h"

#define PE__NS_PER_S 1000000000LL
#define PE__WINDOW_MAX 4096u

void pe_engine_config_init(pe_engine_config_t *c) {
  memset(c, 0, sizeof *c);
  c->max_symbols = PE_DEFAULT_MAX_SYMBOLS;
  c->ema_fast_span = PE_DEFAULT_EMA_FAST_SPAN;
  c->ema_slow_span = PE_DEFAULT_EMA_SLOW_SPAN;
  c->ema_td_half_life_s = PE_DEFAULT_EMA_TD_HALF_LIFE_S;
  c->vwap_window_s = PE_DEFAULT_VWAP_WINDOW_S;
  c->session_reset_minute = -1;
  c->rules.ema_diff_threshold = PE_DEFAULT_EMA_DIFF_THRESHOLD;
  c->rules.vwap_diff_threshold = PE_DEFAULT_VWAP_DIFF_THRESHOLD;
  c->rules.volume_ema_alpha = PE_DEFAULT_VOLUME_EMA_ALPHA;
  c->rules.volume_spike_multiplier = PE_DEFAULT_VOLUME_SPIKE_MULTIPLIER;
  c->rules.breakout_sigma = PE_DEFAULT_BREAKOUT_SIGMA;
  c->rules.breakout_min_returns = PE_DEFAULT_BREAKOUT_MIN_RETURNS;
  c->rules.return_ewm_alpha = PE_DEFAULT_RETURN_EWM_ALPHA;
  c->rules.signal_score_min = PE_DEFAULT_SIGNAL_SCORE_MIN;
  c->rules.signal_cooldown_ns = PE_DEFAULT_SIGNAL_COOLDOWN_S * PE__NS_PER_S;
  c->window = 0;
  c->infer_every = PE_DEFAULT_INFER_EVERY;
  c->model_threshold = PE_DEFAULT_MODEL_THRESHOLD;
  c->all_features = 1;
  c->max_batch = PE_DEFAULT_MAX_BATCH;
  c->max_delay_us = PE_DEFAULT_MAX_DELAY_US;
}

static int pe__alpha_ok(double a) { return a > 0.0 && a <= 1.0; }

static int pe__config_check(const pe_engine_config_t *c, char *err,
                            size_t cap) {
  const char *bad = NULL;
  if (c->max_symbols == 0 || c->max_symbols > (1u << 30)) {
    bad = "max_symbols must be in 1..2^30";
  } else if (!(c->ema_fast_span >= 1.0) || !(c->ema_slow_span >= 1.0)) {
    bad = "EMA spans must be >= 1";
  } else if (!(c->ema_td_half_life_s > 0.0) ||
             !isfinite(c->ema_td_half_life_s)) {
    bad = "the time-decayed EMA half-life must be a positive number of seconds";
  } else if (!(c->vwap_window_s > 0.0) || !isfinite(c->vwap_window_s)) {
    bad = "the rolling VWAP window must be a positive number of seconds";
  } else if (c->session_reset_minute < -1 || c->session_reset_minute >= 1440) {
    bad = "the session reset must be a time of day HH:MM";
  } else if (!pe__alpha_ok(c->rules.volume_ema_alpha) ||
             !pe__alpha_ok(c->rules.return_ewm_alpha)) {
    bad = "EMA alphas must be in (0, 1]";
  } else if (!(c->rules.ema_diff_threshold >= 0.0) ||
             !(c->rules.vwap_diff_threshold >= 0.0) ||
             !(c->rules.volume_spike_multiplier >= 0.0) ||
             !(c->rules.breakout_sigma >= 0.0) ||
             !(c->rules.signal_score_min >= 0.0)) {
    bad = "rule thresholds must be numbers >= 0";
  } else if (c->rules.signal_cooldown_ns < 0) {
    bad = "the signal cooldown must be >= 0";
  } else if (c->window > PE__WINDOW_MAX) {
    bad = "the window must be at most 4096 ticks";
  } else if (c->infer_every == 0) {
    bad = "infer_every must be >= 1";
  } else if (!(c->model_threshold >= 0.0 && c->model_threshold <= 1.0)) {
    bad = "the model threshold must be in [0, 1]";
  } else if (c->max_batch > PE_ENGINE_MAX_BATCH) {
    bad = "max_batch must be in 1..4096";
  }
  if (bad != NULL) {
    snprintf(err, cap, "%s", bad);
    return PE_EINVAL;
  }
  return PE_OK;
}

int pe_engine_create(const pe_engine_config_t *config, pe_engine_t **out,
                     char *err, size_t err_cap) {
  *out = NULL;
  int rc = pe__config_check(config, err, err_cap);
  if (rc != PE_OK) {
    return rc;
  }
  pe_engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  e->config = *config;
  if (e->config.max_batch == 0) {
    e->config.max_batch = 1;
  }
  e->max_delay_ns = (int64_t)config->max_delay_us * 1000;
  e->all_features = config->all_features || config->window > 0;
  rc = pe__symtab_init(&e->symtab, config->max_symbols);
  /* calloc: the pages of unused symbols are never touched. */
  e->states = calloc(config->max_symbols, sizeof *e->states);
  if (rc != PE_OK || e->states == NULL) {
    snprintf(err, err_cap, "cannot allocate tables for %u symbols",
             config->max_symbols);
    pe_engine_destroy(e);
    return PE_ENOMEM;
  }
  rc = config->window > 0 ? pe_engine_set_window(e, config->window) : PE_OK;
  if (rc != PE_OK) {
    snprintf(err, err_cap, "%s", e->errmsg);
    pe_engine_destroy(e);
    return rc;
  }
  *out = e;
  return PE_OK;
}

/* The model's windows and scores live in the backend's host memory
 * (pe_backend_host_alloc: page-locked for a device backend, whose run then
 * copies from and to them directly); b is the backend they came from. */
static void pe__model_buffers_free(pe_engine_t *e, pe_backend_t *b) {
  if (b != NULL) {
    pe_backend_host_free(b, e->model_in);
    pe_backend_host_free(b, e->model_out);
  }
  e->model_in = NULL;
  e->model_out = NULL;
}

void pe_engine_destroy(pe_engine_t *e) {
  if (e == NULL) {
    return;
  }
  pe__symtab_free(&e->symtab);
  free(e->states);
  free(e->windows);
  pe__model_buffers_free(e, e->backend);
  free(e->held);
  free(e);
}

int pe_engine_set_window(pe_engine_t *e, uint32_t window) {
  if (e->started) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "the window is fixed once ticks have been pushed");
    return PE_ESTATE;
  }
  if (window > PE__WINDOW_MAX) {
    snprintf(e->errmsg, sizeof e->errmsg, "window %u is over the limit %u",
             window, PE__WINDOW_MAX);
    return PE_EINVAL;
  }
  free(e->windows);
  e->windows = NULL;
  e->window = window;
  e->config.window = window;
  e->all_features = e->config.all_features || window > 0;
  if (window == 0) {
    return PE_OK;
  }
  size_t n = (size_t)e->config.max_symbols * window * PE_FEATURE_COUNT;
  e->windows = calloc(n, sizeof *e->windows);
  if (e->windows == NULL) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "cannot allocate windows of %u ticks for %u symbols", window,
             e->config.max_symbols);
    e->window = 0;
    return PE_ENOMEM;
  }
  return PE_OK;
}

int pe_engine_set_backend(pe_engine_t *e, pe_backend_t *backend) {
  if (e->started) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "the backend is fixed once ticks have been pushed");
    return PE_ESTATE;
  }
  pe__model_buffers_free(e, e->backend);
  free(e->held);
  e->held = NULL;
  e->held_cap = 0;
  e->batched = 0;
  e->backend = NULL;
  e->model = NULL;
  if (backend == NULL) {
    return PE_OK;
  }
  const pe_model_info_t *m = pe_backend_info(backend);
  uint32_t batch = e->config.max_batch;
  if (m->max_batch < batch) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "backend %s runs at most %u windows at once; max_batch is %u",
             pe_backend_name(backend), m->max_batch, batch);
    return PE_EINVAL;
  }
  if (m->n_outputs == 0 || m->n_classes > PE_MODEL_MAX_CLASSES ||
      (m->n_classes != 0 && m->n_classes != m->n_outputs)) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "the model has %u outputs and %u classes; the engine needs at "
             "most %d classes, one output each",
             m->n_outputs, m->n_classes, PE_MODEL_MAX_CLASSES);
    return PE_ESHAPE;
  }
  int rc = pe_engine_set_window(e, m->window);
  if (rc != PE_OK) {
    return rc;
  }
  const size_t in_b = (size_t)batch * m->n_features * m->window * sizeof(float);
  const size_t out_b = (size_t)batch * m->n_outputs * sizeof(float);
  e->model_in = pe_backend_host_alloc(backend, in_b);
  e->model_out = pe_backend_host_alloc(backend, out_b);
  if (e->model_in != NULL && e->model_out != NULL) {
    memset(e->model_in, 0, in_b);
    memset(e->model_out, 0, out_b);
  }
  if (batch > 1) {
    /* Room for the reports of the ticks between windows as well; when it
     * fills, the batch runs early. */
    e->held_cap = 4 * batch + 60;
    e->held = calloc(e->held_cap, sizeof *e->held);
  }
  if (e->model_in == NULL || e->model_out == NULL ||
      (batch > 1 && e->held == NULL)) {
    pe__model_buffers_free(e, backend);
    snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
    return PE_ENOMEM;
  }
  e->backend = backend;
  e->model = m;
  e->batched = batch > 1;
  return PE_OK;
}

static int pe__reject(pe_engine_t *e, int err) {
  (void)pe_reject_count(e->stats.rejected, err);
  return err;
}

/* Copies the model's channels of a symbol's ring, oldest row first, into
 * dst[channel][time]. */
static void pe__window_gather(const pe_engine_t *e, uint32_t id,
                              const pe__symstate_t *s, const int *channel,
                              uint32_t n_channels, float *dst) {
  const uint32_t w = e->window;
  const float *ring = e->windows + (size_t)id * w * PE_FEATURE_COUNT;
  uint32_t start = s->win_count < w ? 0 : s->win_head;
  for (uint32_t t = 0; t < w; t++) {
    uint32_t row = start + t;
    if (row >= w) {
      row -= w;
    }
    const float *src = ring + (size_t)row * PE_FEATURE_COUNT;
    for (uint32_t c = 0; c < n_channels; c++) {
      dst[(size_t)c * w + t] = src[channel[c]];
    }
  }
}

static double pe__class_direction(const char *name) {
  size_t n = strlen(name);
  static const char *const up[] = {"up", "buy", "long"};
  static const char *const down[] = {"down", "sell", "short"};
  for (size_t i = 0; i < 3; i++) {
    size_t k = strlen(up[i]);
    if (n >= k && strcmp(name + n - k, up[i]) == 0) {
      return 1.0;
    }
    k = strlen(down[i]);
    if (n >= k && strcmp(name + n - k, down[i]) == 0) {
      return -1.0;
    }
  }
  return 0.0;
}

/* Runs the model on the first `batch` windows of model_in. PE_OK, or
 * PE_EBACKEND with the message set. */
static int pe__model_run(pe_engine_t *e, uint32_t batch) {
  if (pe_backend_run(e->backend, e->model_in, batch, e->model_out) != PE_OK) {
    snprintf(e->errmsg, sizeof e->errmsg, "backend %s: %s",
             pe_backend_name(e->backend), pe_backend_errmsg(e->backend));
    return PE_EBACKEND;
  }
  e->stats.inferences += batch;
  return PE_OK;
}

/* The model's outputs o for a tick of symbol s, whose rules measured
 * fired, value and contribution: fills *sig and returns 1 when a class
 * other than the first reaches the threshold outside the cooldown (which
 * then starts again). Must see a symbol's ticks in order. */
static int pe__model_signal(pe_engine_t *e, pe__symstate_t *s,
                            const pe_tick_t *tick, const float *o,
                            uint32_t fired, const double *value,
                            const double *contribution, pe_signal_t *sig) {
  const pe_model_info_t *m = e->model;
  if (m->n_classes < 2) {
    return 0;
  }
  double prob[PE_MODEL_MAX_CLASSES];
  if (m->output == PE_OUTPUT_LOGITS) {
    double mx = o[0];
    for (uint32_t c = 1; c < m->n_classes; c++) {
      mx = fmax(mx, o[c]);
    }
    double sum = 0.0;
    for (uint32_t c = 0; c < m->n_classes; c++) {
      prob[c] = exp(o[c] - mx);
      sum += prob[c];
    }
    for (uint32_t c = 0; c < m->n_classes; c++) {
      prob[c] /= sum;
    }
  } else {
    for (uint32_t c = 0; c < m->n_classes; c++) {
      prob[c] = o[c];
    }
  }
  uint32_t best = 1;
  for (uint32_t c = 2; c < m->n_classes; c++) {
    if (prob[c] > prob[best]) {
      best = c;
    }
  }
  if (!(prob[best] >= e->config.model_threshold)) {
    return 0;
  }
  if (s->model_signal_ts_ns != INT64_MIN &&
      pe_ts_sub_sat(tick->ts_ns, s->model_signal_ts_ns) <
          e->config.rules.signal_cooldown_ns) {
    return 0;
  }
  if (tick->ts_ns == s->model_signal_ts_ns) {
    s->model_signal_seq += 1;
  } else {
    s->model_signal_ts_ns = tick->ts_ns;
    s->model_signal_seq = 0;
  }
  sig->fired = fired;
  memcpy(sig->value, value, sizeof sig->value);
  memcpy(sig->contribution, contribution, sizeof sig->contribution);
  pe__signal_clear_unfired(sig);
  sig->pattern = PE_PATTERN_MODEL;
  sig->model_class = (int)best;
  sig->score = pe__class_direction(m->class_name[best]) * prob[best];
  sig->confidence = prob[best];
  sig->price = tick->price;
  sig->ts_ns = tick->ts_ns;
  snprintf(sig->label, sizeof sig->label, "model:%s", m->class_name[best]);
  return 1;
}

static void pe__signal_name(pe_signal_t *sig, const pe_tick_t *tick,
                            const char *kind, uint32_t seq);

/* The model signal, if any, of a tick whose outputs are o, added to *out. */
static void pe__model_emit(pe_engine_t *e, pe__symstate_t *s,
                           const pe_tick_t *tick, const float *o,
                           uint32_t fired, const double *value,
                           const double *contribution, pe_tick_out_t *out) {
  pe_signal_t *sig = &out->signal[out->n_signals];
  if (pe__model_signal(e, s, tick, o, fired, value, contribution, sig)) {
    pe__signal_name(sig, tick, "-model", s->model_signal_seq);
    e->stats.signals[PE_PATTERN_MODEL] += 1;
    out->n_signals += 1;
  }
}

/* The signal's symbol and id: "%s-%lld%s" of symbol, ts_ns and kind, then
 * "-%u" of seq + 1 when seq > 0, cut to fit id as snprintf cuts. Written out
 * rather than formatted: this runs for every signal. */
static void pe__signal_name(pe_signal_t *sig, const pe_tick_t *tick,
                            const char *kind, uint32_t seq) {
  memcpy(sig->symbol, tick->symbol, sizeof sig->symbol);
  char buf[sizeof tick->symbol + 64];
  const char *nul = memchr(tick->symbol, '\0', sizeof tick->symbol);
  size_t sym_len = nul ? (size_t)(nul - tick->symbol) : sizeof tick->symbol;
  memcpy(buf, tick->symbol, sym_len);
  char *p = buf + sym_len;
  *p++ = '-';
  uint64_t ts = (uint64_t)tick->ts_ns;
  if (tick->ts_ns < 0) {
    *p++ = '-';
    ts = 0 - ts;
  }
  p = pe__u64_put(p, ts);
  size_t kind_len = strlen(kind);
  memcpy(p, kind, kind_len);
  p += kind_len;
  if (seq > 0) {
    *p++ = '-';
    p = pe__u64_put(p, (uint32_t)(seq + 1u));
  }
  size_t n = (size_t)(p - buf);
  if (n > sizeof sig->id - 1) {
    n = sizeof sig->id - 1;
  }
  memcpy(sig->id, buf, n);
  sig->id[n] = '\0';
}

/* 32 bytes of ones, then 32 of zeros: 32 bytes from offset 32 - n keep the
 * first n bytes of a key. */
static const unsigned char pe__keep_mask[64] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255};

/* The key of a tick's symbol (symbol_len 1..PE_SYMBOL_MAX): the symbol
 * zero-padded to 32 bytes, whatever the tick holds past symbol_len. Returns
 * 1 when none of the symbol's symbol_len bytes is NUL, found from the key
 * itself: its first zero byte is at symbol_len exactly then (byte 31 is
 * always zero). A symbol is a C string in every output (signal ids, CSV,
 * JSON, stream fields), so "A\0B" would print as "A" while counting as a
 * symbol of its own: such a tick is rejected (symbol_nul) instead. Hot
 * path. */
static inline int pe__symkey_of(const pe_tick_t *tick, pe__symkey_t *key) {
  const char *m = (const char *)pe__keep_mask + 32 - tick->symbol_len;
#if defined(__SSE2__)
  const __m128i *w = (const __m128i *)(const void *)tick->symbol;
  const __m128i *k = (const __m128i *)(const void *)m;
  __m128i lo = _mm_and_si128(_mm_loadu_si128(w), _mm_loadu_si128(k));
  __m128i hi = _mm_and_si128(_mm_loadu_si128(w + 1), _mm_loadu_si128(k + 1));
  _mm_storeu_si128((__m128i *)(void *)key->bytes, lo);
  _mm_storeu_si128((__m128i *)(void *)(key->bytes + 16), hi);
  __m128i zero = _mm_setzero_si128();
  uint32_t z = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(lo, zero)) |
               (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(hi, zero)) << 16;
  return (uint32_t)__builtin_ctz(z) == tick->symbol_len;
#else
  const char *w = tick->symbol;
  for (size_t i = 0; i < sizeof key->bytes; i += 8) {
    uint64_t k = pe__word_at(w + i) & pe__word_at(m + i);
    memcpy(key->bytes + i, &k, sizeof k);
  }
  return memchr(tick->symbol, '\0', tick->symbol_len) == NULL;
#endif
}

#if defined(__GNUC__)
#define PE__PREFETCH(p) __builtin_prefetch((p), 1, 3)
#else
#define PE__PREFETCH(p) ((void)(p))
#endif

/* Bytes at the start of a state that the rules-only path touches on every
 * tick (see the layout in core/symstate.h). */
#define PE__STATE_HOT_BYTES 192u

/* pe_tick_check, in one comparison a field for a valid tick; ok_symbol is
 * 1 for a symbol_len in 1..PE_SYMBOL_MAX whose bytes hold no NUL (what
 * pe__symkey_of returns, for such a length), else 0. For x > 0 (or >= 0),
 * x <= DBL_MAX is isfinite(x), and both are false for NaN. */
static inline int pe__tick_check(const pe_tick_t *tick, int ok_symbol) {
  if (tick->price > 0.0 && tick->price <= DBL_MAX && tick->volume >= 0.0 &&
      tick->volume <= DBL_MAX && ok_symbol) {
    return PE_OK;
  }
  return pe_tick_check(tick);
}

/* pe_engine_push for a tick that passed pe__tick_check, with its key, the
 * key's hash and a guess at its id (see pe__symtab_intern_guess). Inline in
 * pe_engine_push and in the batch loops: as a call, its prologue and
 * epilogue cost some 20 instructions a tick. With held non-NULL (a constant
 * at each call, so each copy keeps only its own path), a window the model
 * is due on goes into the next slot of the model batch, noted in *held,
 * instead of being run. With windows 0 (also a constant), the engine has
 * neither windows nor a model, and that copy leaves out their code. */
PE__ALWAYS_INLINE int pe__push_keyed(pe_engine_t *e, const pe_tick_t *tick,
                                     const pe__symkey_t *key, uint32_t hash,
                                     uint32_t guess, pe_tick_out_t *out,
                                     pe__held_t *held, int windows) {
  uint32_t id;
  int is_new;
  int rc = pe__symtab_intern_guess(&e->symtab, key, hash, guess, &id, &is_new);
  if (rc != PE_OK) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "symbol table full: %u symbols; raise max_symbols",
             e->symtab.capacity);
    return rc;
  }
  pe__symstate_t *s = &e->states[id];
  if (is_new) {
    pe__symstate_init(s, &e->config);
  } else if (tick->ts_ns < s->last_ts_ns) {
    return pe__reject(e, PE_EORDER);
  }
  e->started = 1;

  pe__tickcalc_t calc;
  out->vwap =
      pe__features_update(s, tick, e->all_features, out->feature, &calc);
  out->symbol_id = id;
  out->ema_fast = s->ema_fast.value;
  out->ema_slow = s->ema_slow.value;
  out->mean = s->price_stats.mean;
  out->var = pe_welford_var_sample(&s->price_stats);
  out->inferred = 0;
  out->n_signals = 0;
  e->stats.ticks += 1;

  if (windows && e->window > 0 && s->n_ticks >= PE_FEATURE_WARMUP) {
    float *row =
        e->windows + ((size_t)id * e->window + s->win_head) * PE_FEATURE_COUNT;
    for (int f = 0; f < PE_FEATURE_COUNT; f++) {
      row[f] = (float)out->feature[f];
    }
    s->win_head = s->win_head + 1 == e->window ? 0 : s->win_head + 1;
    if (s->win_count < e->window) {
      s->win_count += 1;
    }
  }

  pe_signal_t rules;
  if (pe__rules_eval(s, &e->config.rules, tick, out->feature, &calc, &rules)) {
    pe_signal_t *sig = &out->signal[0];
    *sig = rules;
    pe__signal_name(sig, tick, "", s->rule_signal_seq);
    const char *name = pe_rule_name(sig->pattern);
    memcpy(sig->label, name, strlen(name) + 1); /* rule names are short */
    e->stats.signals[sig->pattern] += 1;
    out->n_signals = 1;
  }

  rc = PE_OK;
  if (windows && e->model != NULL && s->win_count == e->window) {
    s->since_infer += 1;
    if (s->since_infer >= e->config.infer_every) {
      s->since_infer = 0;
      out->inferred = 1;
      const pe_model_info_t *m = e->model;
      if (held != NULL) {
        size_t n_in = (size_t)m->n_features * e->window;
        pe__window_gather(e, id, s, m->feature, m->n_features,
                          e->model_in + n_in * e->batch_n);
        held->slot = e->batch_n;
        held->fired = rules.fired;
        memcpy(held->value, rules.value, sizeof held->value);
        memcpy(held->contribution, rules.contribution,
               sizeof held->contribution);
        if (e->batch_n == 0) {
          e->batch_first_ns = tick->ts_ns;
        }
        e->batch_n += 1;
      } else {
        pe__window_gather(e, id, s, m->feature, m->n_features, e->model_in);
        rc = pe__model_run(e, 1);
        if (rc == PE_OK) {
          pe__model_emit(e, s, tick, e->model_out, rules.fired, rules.value,
                         rules.contribution, out);
        }
      }
    }
  }
  return rc;
}

/* pe_engine_push of a micro-batched engine, for a tick that passed
 * pe__tick_check: its report goes out at once when nothing is held and its
 * window (if any) is not due for the model, else it is held; then the
 * batch runs if it is full, the held reports fill their array, or the
 * tick's time is max_delay past the first waiting window's. */
static int pe__push_held(pe_engine_t *e, const pe_tick_t *tick,
                         const pe__symkey_t *key, uint32_t hash,
                         uint32_t guess) {
  if (e->report == NULL) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "a micro-batched engine needs a report callback");
    return PE_ESTATE;
  }
  pe__held_t *h = &e->held[e->held_n];
  h->slot = UINT32_MAX;
  int rc = pe__push_keyed(e, tick, key, hash, guess, &h->out, h, 1);
  if (rc != PE_OK) {
    return rc;
  }
  if (e->held_n == 0 && h->slot == UINT32_MAX) {
    return e->report(e->report_ctx, tick, PE_OK, &h->out);
  }
  h->tick = *tick;
  h->rc = PE_OK;
  e->held_n += 1;
  if (e->batch_n >= e->config.max_batch || e->held_n == e->held_cap ||
      pe_ts_sub_sat(tick->ts_ns, e->batch_first_ns) >= e->max_delay_ns) {
    return pe_engine_flush(e);
  }
  return PE_OK;
}

/* The batch-size histogram's bucket of n >= 1: floor(log2(n)). */
static uint32_t pe__batch_bucket(uint32_t n) {
  uint32_t k = 0;
  while (n >= 2u && k + 1 < PE_ENGINE_BATCH_BUCKETS) {
    n >>= 1;
    k += 1;
  }
  return k;
}

int pe_engine_flush(pe_engine_t *e) {
  if (e->held_n == 0) {
    return PE_OK;
  }
  const pe_model_info_t *m = e->model;
  uint32_t n = e->batch_n;
  int run_rc = pe__model_run(e, n);
  pe_engine_batch_stats_t *bs = &e->batch_stats;
  bs->runs += 1;
  bs->windows += n;
  bs->largest = n > bs->largest ? n : bs->largest;
  bs->by_size[pe__batch_bucket(n)] += 1;
  e->batch_n = 0;
  /* Every held model output into its report first, in push order (the
   * model cooldown is per symbol and ordered), then the delivery. */
  uint32_t held_n = e->held_n;
  e->held_n = 0;
  for (uint32_t k = 0; k < held_n; k++) {
    pe__held_t *h = &e->held[k];
    if (h->slot == UINT32_MAX) {
      continue;
    }
    if (run_rc != PE_OK) {
      h->rc = run_rc;
      continue;
    }
    pe__model_emit(e, &e->states[h->out.symbol_id], &h->tick,
                   e->model_out + (size_t)h->slot * m->n_outputs, h->fired,
                   h->value, h->contribution, &h->out);
  }
  for (uint32_t k = 0; k < held_n; k++) {
    const pe__held_t *h = &e->held[k];
    int stop = e->report(e->report_ctx, &h->tick, h->rc, &h->out);
    if (stop != PE_CONTINUE) {
      return stop;
    }
  }
  return PE_OK;
}

void pe_engine_set_report(pe_engine_t *e, pe_engine_report_t report,
                          void *ctx) {
  e->report = report;
  e->report_ctx = ctx;
}

int pe_engine_batched(const pe_engine_t *e) { return e->batched; }

uint32_t pe_engine_held(const pe_engine_t *e) { return e->held_n; }

uint32_t pe_engine_held_max(const pe_engine_t *e) { return e->held_cap; }

void pe_engine_batch_stats(const pe_engine_t *e, pe_engine_batch_stats_t *st) {
  *st = e->batch_stats;
}

int pe_engine_push(pe_engine_t *e, const pe_tick_t *tick, pe_tick_out_t *out) {
  pe__symkey_t key;
  int ok_symbol =
      tick->symbol_len - 1u < PE_SYMBOL_MAX && pe__symkey_of(tick, &key);
  int rc = pe__tick_check(tick, ok_symbol);
  if (rc != PE_OK) {
    return pe__reject(e, rc);
  }
  uint32_t hash = pe__symkey_hash(&key);
  uint32_t guess = pe__symtab_first_id(&e->symtab, hash);
  if (e->batched) {
    return pe__push_held(e, tick, &key, hash, guess);
  }
  return pe__push_keyed(e, tick, &key, hash, guess, out, NULL, 1);
}

/* The last loop of pe_engine_push_batch, micro-batched: `each` only for
 * the rejected pushes; c: the cycle count at the start. */
static int pe__push_batch_held(pe_engine_t *e, const pe_tick_t *ticks,
                               uint32_t n, const pe__symkey_t *key,
                               const uint32_t *hash, const uint32_t *guess,
                               const uint8_t *ok_symbol, pe_tick_out_t *out,
                               pe_engine_each_t each, void *ctx,
                               uint32_t *pushed, uint64_t *push_cycles,
                               uint64_t c) {
  for (uint32_t i = 0; i < n; i++) {
    int rc = pe__tick_check(&ticks[i], ok_symbol[i]);
    rc = rc != PE_OK ? pe__reject(e, rc)
                     : pe__push_held(e, &ticks[i], &key[i], hash[i], guess[i]);
    if (push_cycles != NULL) {
      uint64_t now = pe_cycles();
      push_cycles[i] = now - c;
      c = now;
    }
    if (rc < 0) {
      rc = each(ctx, i, rc, out);
      if (push_cycles != NULL) {
        c = pe_cycles();
      }
    }
    if (rc != 0) {
      *pushed = i + 1;
      return rc;
    }
  }
  *pushed = n;
  return 0;
}

/* The last loop of pe_engine_push_batch, unbatched, in copies: with
 * windows 0 (a constant), for an engine without windows or model, and of
 * that one, with push_cycles NULL (the batches not timed). */
PE__ALWAYS_INLINE int pe__push_loop(
    pe_engine_t *e, const pe_tick_t *ticks, uint32_t n, const pe__symkey_t *key,
    const uint32_t *hash, const uint32_t *guess, const uint8_t *ok_symbol,
    pe_tick_out_t *out, uint32_t flags, pe_engine_each_t each, void *ctx,
    uint32_t *pushed, uint64_t *push_cycles, uint64_t c, int windows) {
  for (uint32_t i = 0; i < n; i++) {
    int rc = pe__tick_check(&ticks[i], ok_symbol[i]);
    rc = rc != PE_OK ? pe__reject(e, rc)
                     : pe__push_keyed(e, &ticks[i], &key[i], hash[i], guess[i],
                                      out, NULL, windows);
    if (push_cycles != NULL) {
      uint64_t now = pe_cycles();
      push_cycles[i] = now - c;
      c = now;
    }
    if (rc != PE_OK || out->n_signals != 0 || (flags & PE_ENGINE_EACH_ALL)) {
      int stop = each(ctx, i, rc, out);
      if (stop != 0) {
        *pushed = i + 1;
        return stop;
      }
      if (push_cycles != NULL) {
        c = pe_cycles();
      }
    }
  }
  *pushed = n;
  return 0;
}

int pe_engine_push_batch(pe_engine_t *e, const pe_tick_t *ticks, uint32_t n,
                         pe_tick_out_t *out, uint32_t flags,
                         pe_engine_each_t each, void *ctx, uint32_t *pushed,
                         uint64_t *push_cycles) {
  uint64_t c = push_cycles != NULL ? pe_cycles() : 0;
  /* Keys and hashes once; the table slots all start loading, then (from
   * the slot, a guess when keys collide) the keys and states; the guess
   * also spares the pushes their table lookup. */
  pe__symkey_t key[PE_ENGINE_BATCH_MAX];
  uint32_t hash[PE_ENGINE_BATCH_MAX];
  uint32_t guess[PE_ENGINE_BATCH_MAX];
  uint8_t ok_symbol[PE_ENGINE_BATCH_MAX];
  if (n > PE_ENGINE_BATCH_MAX) {
    n = PE_ENGINE_BATCH_MAX;
  }
  for (uint32_t i = 0; i < n; i++) {
    const pe_tick_t *t = &ticks[i];
    /* A tick with a bad symbol is rejected before its key is used; its
     * hash only has to be some value, for the guess below. */
    hash[i] = 0;
    ok_symbol[i] = 0;
    if (t->symbol_len - 1u < PE_SYMBOL_MAX) {
      ok_symbol[i] = (uint8_t)pe__symkey_of(t, &key[i]);
      hash[i] = pe__symkey_hash(&key[i]);
      PE__PREFETCH(&e->symtab.slots[hash[i] & e->symtab.mask]);
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    uint32_t id = pe__symtab_first_id(&e->symtab, hash[i]);
    guess[i] = id;
    if (id < e->symtab.count) {
      const char *s = (const char *)&e->states[id];
      PE__PREFETCH(&e->symtab.keys[id]);
      PE__PREFETCH(s);
      PE__PREFETCH(s + 64);
      PE__PREFETCH(s + 128);
      PE__PREFETCH(s + PE__STATE_HOT_BYTES - 1);
    }
  }
  if (e->batched) {
    return pe__push_batch_held(e, ticks, n, key, hash, guess, ok_symbol, out,
                               each, ctx, pushed, push_cycles, c);
  }
  if (e->window == 0 && e->model == NULL && push_cycles == NULL) {
    return pe__push_loop(e, ticks, n, key, hash, guess, ok_symbol, out, flags,
                         each, ctx, pushed, NULL, c, 0);
  }
  if (e->window == 0 && e->model == NULL) {
    return pe__push_loop(e, ticks, n, key, hash, guess, ok_symbol, out, flags,
                         each, ctx, pushed, push_cycles, c, 0);
  }
  return pe__push_loop(e, ticks, n, key, hash, guess, ok_symbol, out, flags,
                       each, ctx, pushed, push_cycles, c, 1);
}

void pe_engine_stats(const pe_engine_t *e, pe_engine_stats_t *stats) {
  *stats = e->stats;
  stats->symbols = e->symtab.count;
}

const char *pe_engine_symbol(const pe_engine_t *e, uint32_t id) {
  return id < e->symtab.count ? e->symtab.keys[id].bytes : NULL;
}

int pe_engine_window(const pe_engine_t *e, uint32_t id, float *dst,
                     size_t dst_len) {
  if (id >= e->symtab.count || e->window == 0) {
    return PE_EINVAL;
  }
  const pe__symstate_t *s = &e->states[id];
  if (s->win_count < e->window) {
    return PE_EAGAIN;
  }
  int all[PE_FEATURE_COUNT];
  const int *channel = all;
  uint32_t n = PE_FEATURE_COUNT;
  if (e->model != NULL) {
    channel = e->model->feature;
    n = e->model->n_features;
  } else {
    for (int f = 0; f < PE_FEATURE_COUNT; f++) {
      all[f] = f;
    }
  }
  if (dst_len < (size_t)n * e->window) {
    return PE_EFULL;
  }
  pe__window_gather(e, id, s, channel, n, dst);
  return PE_OK;
}

size_t pe_engine_bytes_per_symbol(const pe_engine_t *e) {
  return sizeof(pe__symstate_t) + pe__symtab_bytes_per_symbol(&e->symtab) +
         (size_t)e->window * PE_FEATURE_COUNT * sizeof(float);
}

const char *pe_engine_errmsg(const pe_engine_t *e) { return e->errmsg; }
