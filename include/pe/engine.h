/* The engine: per-symbol state, features, windows, rule patterns, model
 * inference and signals, one tick at a time.
 *
 * pe_engine_create allocates everything the engine will ever need (symbol
 * table, states, windows, model buffers) for config.max_symbols symbols;
 * pe_engine_push then allocates nothing, locks nothing and makes no system
 * call. One engine is used by one thread at a time. Ticks of one symbol must
 * come in time order; symbols may interleave freely.
 *
 * Outputs depend only on the ticks pushed and the configuration, never on
 * wall time or on how the input was chunked, so replays are deterministic. */
#ifndef PE_ENGINE_H
#define PE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "pe/backend.h"
#include "pe/features.h"
#include "pe/tick.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ID, name): the rule patterns, in evaluation order. */
#define PE_RULE_MAP(X)                                                         \
  X(EMA_CROSSOVER, "ema_crossover")                                            \
  X(VWAP_DEVIATION, "vwap_deviation")                                          \
  X(VOLUME_SPIKE, "volume_spike")                                              \
  X(VOLATILITY_BREAKOUT, "volatility_breakout")

typedef enum pe_rule {
#define PE__RULE_ENUM(id, name) PE_RULE_##id,
  PE_RULE_MAP(PE__RULE_ENUM)
#undef PE__RULE_ENUM
      PE_RULE_COUNT
} pe_rule_t;

/* Name of a rule ("ema_crossover"), NULL when out of range. */
const char *pe_rule_name(int rule);

typedef struct pe_rules_config {
  double ema_diff_threshold;      /* |fast - slow| / slow, EMA_DIFF_THRESHOLD */
  double vwap_diff_threshold;     /* |p - vwap| / vwap, VWAP_DIFF_THRESHOLD */
  double volume_ema_alpha;        /* VOLUME_EMA_ALPHA */
  double volume_spike_multiplier; /* VOLUME_SPIKE_MULTIPLIER */
  double breakout_sigma;          /* BREAKOUT_SIGMA */
  uint32_t breakout_min_returns;  /* BREAKOUT_MIN_RETURNS */
  double return_ewm_alpha;        /* RETURN_EWM_ALPHA: EW variance of returns */
  double signal_score_min;        /* SIGNAL_SCORE_MIN */
  int64_t signal_cooldown_ns;     /* SIGNAL_COOLDOWN, in tick time */
} pe_rules_config_t;

typedef struct pe_engine_config {
  uint32_t max_symbols; /* capacity of the symbol table */
  double ema_fast_span; /* price EMA spans */
  double ema_slow_span;
  double ema_td_half_life_s; /* time-decayed price EMA (ema_td_dev) */
  double vwap_window_s;      /* rolling VWAP (vwap_roll_dev) */
  int session_reset_minute;  /* minutes after 00:00 UTC, or -1: no sessions */
  pe_rules_config_t rules;
  uint32_t window;        /* ring window length W; 0 = no windows. Set from the
                             backend's model when one is attached. */
  uint32_t infer_every;   /* run the model every N ticks of a symbol (>= 1) */
  double model_threshold; /* emit model:<class> when a class other than the
                             first reaches this probability */
  uint32_t all_features;  /* 1: every standard feature on every tick; 0: only
                             those the rules use (ema_gap, vwap_dev,
                             log_return, volume_ratio), the others NaN, unless
                             windows are on, which need them all */
  /* What the engine does not use but its state depends on, recorded in
   * snapshots so that a state is only resumed under the same inputs: */
  uint32_t ts_unit;      /* the pe_ts_unit_t (pe/parse.h) ticks are read in */
  uint64_t model_digest; /* of the model file, backend and feature list
                            (pe_file_digest, pe/file.h); 0: no model */
  /* Micro-batching (see "Micro-batching" below). Neither changes any
   * output, only when reports come out and how many windows one model run
   * takes. */
  uint32_t max_batch;    /* windows per model run, 1..PE_ENGINE_MAX_BATCH;
                            1: unbatched, each report out of its own push */
  uint32_t max_delay_us; /* longest a held window waits, in tick time */
} pe_engine_config_t;

/* The defaults documented in `pattern-engine help replay`. */
void pe_engine_config_init(pe_engine_config_t *config);

/* Patterns a signal can carry: the rules, then model classes. */
#define PE_PATTERN_MODEL PE_RULE_COUNT

typedef struct pe_signal {
  char id[64];    /* SYMBOL-TSNS, with -model and -N suffixes; see docs */
  char label[80]; /* pattern name: a rule name or "model:<class>" */
  char symbol[PE_SYMBOL_MAX + 1];
  int64_t ts_ns;
  int pattern;       /* pe_rule_t, or PE_PATTERN_MODEL */
  int model_class;   /* class index for model signals, else -1 */
  double score;      /* in [-1, 1]: sign is the direction */
  double confidence; /* in [0, 1] */
  double price;
  uint32_t fired;              /* bit r set when rule r fired on this tick */
  double value[PE_RULE_COUNT]; /* what each fired rule measured */
  double contribution[PE_RULE_COUNT]; /* its share of the score */
} pe_signal_t;

#define PE_MAX_SIGNALS_PER_TICK 2

/* What one accepted tick produced. */
typedef struct pe_tick_out {
  uint32_t symbol_id;                         /* dense, in first-seen order */
  double ema_fast, ema_slow, vwap, mean, var; /* var: sample, NaN below 2 */
  double feature[PE_FEATURE_COUNT];
  uint32_t inferred; /* 1 when the model ran on this tick */
  uint32_t n_signals;
  pe_signal_t signal[PE_MAX_SIGNALS_PER_TICK];
} pe_tick_out_t;

typedef struct pe_engine_stats {
  uint64_t ticks;                     /* accepted */
  uint64_t rejected[PE_REJECT_COUNT]; /* rejected by the engine (validation,
                                         order); parsers count their own */
  uint32_t symbols;
  uint64_t signals[PE_RULE_COUNT + 1]; /* by pattern; last: model */
  uint64_t inferences;
} pe_engine_stats_t;

typedef struct pe_engine pe_engine_t;

/* Validates config and allocates the engine. PE_EINVAL with a message in err
 * for a bad config; PE_ENOMEM when the tables do not fit. */
int pe_engine_create(const pe_engine_config_t *config, pe_engine_t **out,
                     char *err, size_t err_cap);

/* NULL is a no-op. Does not close an attached backend. */
void pe_engine_destroy(pe_engine_t *engine);

/* Attaches a backend (borrowed: it must outlive the engine or be detached
 * with NULL). Must be called before the first tick. Sets the window length
 * from the model and allocates the windows and model buffers. PE_ESHAPE when
 * the model asks for something the engine cannot build. */
int pe_engine_set_backend(pe_engine_t *engine, pe_backend_t *backend);

/* Sets the window length when no backend is attached; before the first tick. */
int pe_engine_set_window(pe_engine_t *engine, uint32_t window);

/* Processes one tick. Hot path. Returns PE_OK and fills *out; or, with the
 * engine's state unchanged: PE_EPRICE, PE_EVOLUME, PE_ESYMBOL, PE_ESYMLEN
 * (invalid tick), PE_EORDER (earlier than the symbol's previous tick), PE_EFULL
 * (a new symbol and the table is full), PE_EBACKEND (the model failed; the
 * tick's state is kept, its model output is not).
 *
 * Micro-batched (pe_engine_batched): the rejections are returned the same
 * way, but an accepted tick's report goes to the report callback instead
 * of *out (which is left alone): PE_OK, or the positive value the callback
 * returned to stop (the tick was pushed; see pe_engine_flush). PE_ESTATE
 * when no report callback is set. */
int pe_engine_push(pe_engine_t *engine, const pe_tick_t *tick,
                   pe_tick_out_t *out);

/* Called by pe_engine_push_batch after a push: i is the tick's index in
 * the batch, rc and *out what pe_engine_push would have returned and filled
 * (*out is overwritten by the next push). PE_CONTINUE goes on; a positive
 * value (PE_STOP, or the caller's own) stops the batch. Micro-batched, it
 * is called only for the rejected pushes: accepted ticks' reports go to
 * the report callback. */
typedef int (*pe_engine_each_t)(void *ctx, uint32_t i, int rc,
                                const pe_tick_out_t *out);

/* Most ticks pe_engine_push_batch takes at once. */
#define PE_ENGINE_BATCH_MAX 32u

/* pe_engine_push_batch calls `each` after every push, not only after those
 * that were rejected or made signals (unbatched). */
#define PE_ENGINE_EACH_ALL 1u

/* Pushes ticks[0, n) in order (n <= PE_ENGINE_BATCH_MAX; more are not
 * pushed), with the same results, state and counters as n calls of
 * pe_engine_push. Before the first push, the memory that the n ticks'
 * symbols need (table slots, then keys and states) starts loading, so that
 * the loads overlap instead of stalling one push after another. After a
 * push that was rejected or made signals (after every push, with
 * PE_ENGINE_EACH_ALL), calls each(ctx, i, rc, out). Returns PE_CONTINUE
 * (0) when every tick was pushed, else the value that `each` returned,
 * which stopped the batch; *pushed gets how many were pushed.
 *
 * With push_cycles non-NULL, push_cycles[i] gets the cycle-counter ticks
 * (pe_cycles) that tick i's own push took, read once per tick: from the end
 * of the previous push (for the first tick, from the start of the call, so
 * it carries the batch's prefetch) to the end of its own. Time spent in
 * `each` is not counted. Allocates nothing; hot path. */
int pe_engine_push_batch(pe_engine_t *engine, const pe_tick_t *ticks,
                         uint32_t n, pe_tick_out_t *out, uint32_t flags,
                         pe_engine_each_t each, void *ctx, uint32_t *pushed,
                         uint64_t *push_cycles);

void pe_engine_stats(const pe_engine_t *engine, pe_engine_stats_t *stats);

/* ---- Micro-batching -------------------------------------------------------
 * With config.max_batch > 1 and a model attached, windows that become ready
 * (across symbols) are not run one by one: each is copied into the next
 * slot of a model batch, and its tick's report is held. Every later
 * accepted tick's report is held behind it, so that reports come out in the
 * order the ticks were pushed, whatever the batch settings. The batch runs,
 * and the held reports go to the report callback in order, when
 * config.max_batch windows wait, when a tick arrives whose time is
 * config.max_delay_us or more after that of the oldest held window (the
 * tick clock, not the wall clock, so that replays are deterministic; 0: a
 * window never waits for a later tick), when the held reports fill the
 * ring (pe_engine_held_max), or on pe_engine_flush. These are the
 * semantics of Triton's dynamic batcher, with tick time as the clock.
 *
 * Signals, features and counters are exactly those of an unbatched run;
 * only the model runs are fewer and larger. Snapshots need nothing held:
 * pe_engine_snapshot and pe_engine_restore return PE_ESTATE until
 * pe_engine_flush has been called. */

/* Most windows one model batch can hold. */
#define PE_ENGINE_MAX_BATCH 4096u

/* Buckets of the batch-size histogram: bucket k counts the model runs of
 * 2^k to 2^(k+1) - 1 windows. */
#define PE_ENGINE_BATCH_BUCKETS 13

/* Takes one accepted tick's report: the tick that produced it, rc (PE_OK, or
 * PE_EBACKEND when its model batch failed: the message is in
 * pe_engine_errmsg) and *out (valid during the call only). PE_CONTINUE goes
 * on; a positive value stops the delivery (the reports not yet delivered
 * are dropped, their state kept) and is returned by the push or flush that
 * delivered. Called from pe_engine_push, pe_engine_push_batch and
 * pe_engine_flush; it must not call the engine. */
typedef int (*pe_engine_report_t)(void *ctx, const pe_tick_t *tick, int rc,
                                  const pe_tick_out_t *out);

/* Sets the report callback of a micro-batched engine (ignored otherwise). */
void pe_engine_set_report(pe_engine_t *engine, pe_engine_report_t report,
                          void *ctx);

/* 1 when reports go through the report callback: config.max_batch > 1 and
 * a backend attached. */
int pe_engine_batched(const pe_engine_t *engine);

/* Runs the windows waiting, if any, and delivers every held report. PE_OK,
 * or the positive value the report callback returned to stop. */
int pe_engine_flush(pe_engine_t *engine);

/* Reports held now, and the most that can be held at once (the ring's
 * capacity; 0 unbatched). A caller that keeps something of its own per
 * held tick (the stream id of a live entry) needs room for held_max. */
uint32_t pe_engine_held(const pe_engine_t *engine);
uint32_t pe_engine_held_max(const pe_engine_t *engine);

typedef struct pe_engine_batch_stats {
  uint64_t runs;                             /* model runs of batched windows */
  uint64_t windows;                          /* windows they ran */
  uint32_t largest;                          /* the largest batch */
  uint64_t by_size[PE_ENGINE_BATCH_BUCKETS]; /* runs by batch size */
} pe_engine_batch_stats_t;

/* The model batches run so far (all zero unbatched). */
void pe_engine_batch_stats(const pe_engine_t *engine,
                           pe_engine_batch_stats_t *stats);

/* Symbol of a dense id, NULL when out of range. */
const char *pe_engine_symbol(const pe_engine_t *engine, uint32_t symbol_id);

/* Copies the feature window of a symbol, [channel][time] as the backend gets
 * it, for the model's channels (or every standard feature without a model).
 * PE_EAGAIN when the window is not ready yet. */
int pe_engine_window(const pe_engine_t *engine, uint32_t symbol_id, float *dst,
                     size_t dst_len);

/* Memory one symbol takes: state, table share and window, in bytes. */
size_t pe_engine_bytes_per_symbol(const pe_engine_t *engine);

/* Detail of the last error. */
const char *pe_engine_errmsg(const pe_engine_t *engine);

/* ---- Snapshots (checkpoints) ---------------------------------------------
 * A snapshot holds every symbol's state and window and the counters: enough
 * for an engine created with the same configuration to continue exactly
 * where this one stopped. Its layout is versioned and ends with a checksum.
 * Building one walks all symbols: call it off the per-tick path. */

/* Bytes a snapshot of the current state takes. */
size_t pe_engine_snapshot_size(const pe_engine_t *engine);

/* Writes a snapshot into buf (cap bytes); *len gets its size. PE_EFULL when
 * cap is too small, PE_ESTATE while reports are held (pe_engine_flush). */
int pe_engine_snapshot(const pe_engine_t *engine, void *buf, size_t cap,
                       size_t *len);

/* Replaces the engine's state with a snapshot. PE_ECORRUPT (bad checksum,
 * truncated, or a field out of its range: the checksum detects damage, not
 * tampering, so every field the engine indexes or divides by is checked
 * whatever it says), PE_EVERSION (other layout), PE_EINVAL (a setting
 * that changes state or signals differs: the message names it, with both
 * values) or PE_ESTATE (reports are held: pe_engine_flush first); the
 * engine is unchanged on failure. */
int pe_engine_restore(pe_engine_t *engine, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
