/* The defaults of every setting that both the library and the command line
 * know of, in one place. pe_engine_config_init (pe/engine.h),
 * pe_core_config_init (pe/core.h) and the stub backend set them; the
 * command-line program prints them in `help` and parses them as the flags'
 * defaults (PE_DEFAULT_TEXT gives each as the text it is written with
 * here). A default changes here and nowhere else. */
#ifndef PE_DEFAULTS_H
#define PE_DEFAULTS_H

/* Symbol table capacity of an engine. */
#define PE_DEFAULT_MAX_SYMBOLS 65536
/* Spans of the fast and slow price EMAs (engine and columnar core). */
#define PE_DEFAULT_EMA_FAST_SPAN 19
#define PE_DEFAULT_EMA_SLOW_SPAN 39
/* Half-life of the time-decayed price EMA, seconds. */
#define PE_DEFAULT_EMA_TD_HALF_LIFE_S 60
/* Span of the rolling VWAP, seconds. */
#define PE_DEFAULT_VWAP_WINDOW_S 300
/* The rules (pe_rules_config_t). */
#define PE_DEFAULT_EMA_DIFF_THRESHOLD 0.01
#define PE_DEFAULT_VWAP_DIFF_THRESHOLD 0.005
#define PE_DEFAULT_VOLUME_EMA_ALPHA 0.1
#define PE_DEFAULT_VOLUME_SPIKE_MULTIPLIER 2.0
#define PE_DEFAULT_BREAKOUT_SIGMA 2.0
#define PE_DEFAULT_BREAKOUT_MIN_RETURNS 5
#define PE_DEFAULT_RETURN_EWM_ALPHA 0.05
#define PE_DEFAULT_SIGNAL_SCORE_MIN 0.3
/* Least tick time between two signals of one symbol, seconds. */
#define PE_DEFAULT_SIGNAL_COOLDOWN_S 30
/* Run the model every N ticks of a symbol. */
#define PE_DEFAULT_INFER_EVERY 1
/* Probability a class other than the first needs for a model signal. */
#define PE_DEFAULT_MODEL_THRESHOLD 0.9
/* Windows per model run (micro-batching); 1: unbatched. */
#define PE_DEFAULT_MAX_BATCH 1
/* Longest a window waits for its batch to fill, microseconds of tick time. */
#define PE_DEFAULT_MAX_DELAY_US 200
/* Threads the cpu backend splits a batch over (--model-threads). */
#define PE_DEFAULT_MODEL_THREADS 1
/* Window length of a backend whose model does not fix it (stub). */
#define PE_DEFAULT_MODEL_WINDOW 32

/* The live service (pe_live_config_default, pe/live.h). */
#define PE_LIVE_DEFAULT_REDIS_URL "redis://localhost:6379/0"
#define PE_LIVE_DEFAULT_TICKS_STREAM "ticks:global"
#define PE_LIVE_DEFAULT_SIGNALS_STREAM "signals:global"
#define PE_LIVE_DEFAULT_SIGNALS_MAXLEN 1000000
#define PE_LIVE_DEFAULT_CHECKPOINT_EVERY 100000
#define PE_LIVE_DEFAULT_CHECKPOINT_INTERVAL_S 5
#define PE_LIVE_DEFAULT_START_ID "0"
#define PE_LIVE_DEFAULT_COUNT 1000
#define PE_LIVE_DEFAULT_BLOCK_MS 100
#define PE_LIVE_DEFAULT_REDIS_TIMEOUT_S 5

/* A default as text: PE_DEFAULT_TEXT(PE_DEFAULT_EMA_FAST_SPAN) is "19". */
#define PE_DEFAULT_TEXT(value) PE__DEFAULT_TEXT(value)
#define PE__DEFAULT_TEXT(value) #value

#endif
