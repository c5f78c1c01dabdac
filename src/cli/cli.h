/* Command-line plumbing shared by the commands (internal to src/cli/).
 *
 * Each command declares its flags in a table; the same table parses argv,
 * reads environment variables and prints `help COMMAND`. Only src/cli/ turns
 * errors into messages and exit codes. */
#ifndef PE_CLI_CLI_H
#define PE_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pe/backend.h"
#include "pe/defaults.h"
#include "pe/engine.h"

/* The environment variable that picks the cpu backend's kernels when no
 * --kernels flag does: the library reads no environment, so the commands
 * pass its value on (pe_backend_options_t.kernels). */
#define PE_CLI_KERNELS_ENV "PE_CPU_KERNELS"
#define PE_CLI_CUDA_MODE_ENV "PE_CUDA_MODE"
#define PE_CLI_CUDA_MEMORY_ENV "PE_CUDA_MEMORY"

/* The cuda backend's mode flag, one table entry. */
#define PE_CLI_CUDA_MODE_FLAG                                                  \
  {                                                                            \
    "cuda-mode", "MODE", PE_CLI_CUDA_MODE_ENV, "graph",                        \
        "cuda backend: graph (a CUDA graph per batch size) or persistent (a "  \
        "resident kernel fed through mapped memory, for batch-1 latency)",     \
        NULL                                                                   \
  }

/* The cuda backend's precision flag, one table entry. */
#define PE_CLI_CUDA_PRECISION_FLAG                                             \
  {                                                                            \
    "precision", "P", "PE_CUDA_PRECISION", NULL,                               \
        "cuda backend: arithmetic of the dense and Conv1d steps, fp32 or "     \
        "tf32 (tensor cores; docs/models.md gives its tolerance); fp32 "       \
        "for an ONNX model and a plan file's own unless given",                \
        NULL                                                                   \
  }

/* The cuda backend's device memory flag, one table entry; read with
 * pe_cli_cuda_memory. */
#define PE_CLI_CUDA_MEMORY_FLAG                                                \
  {                                                                            \
    "cuda-memory", "MB", PE_CLI_CUDA_MEMORY_ENV, "256",                        \
        "cuda backend: device memory for the buffers that grow with the "      \
        "batch (a tile of windows; a larger batch runs a tile at a time)",     \
        NULL                                                                   \
  }

/* Exit codes. */
#define PE_EXIT_OK 0
#define PE_EXIT_FAIL 1  /* the work failed: bad input in fail mode, I/O */
#define PE_EXIT_USAGE 2 /* the command line was wrong */

typedef struct pe_cli_flag {
  const char *name; /* without the leading "--" */
  const char *arg;  /* placeholder ("PATH"); NULL for a switch */
  const char *env;  /* environment variable used when the flag is absent */
  const char *def;  /* default, as help shows it; NULL for none */
  const char *help;
  const char *value; /* parsed: from argv, else env, else NULL */
} pe_cli_flag_t;

typedef struct pe_cli_command {
  const char *name;
  const char *summary; /* one line for the command list */
  const char *usage;   /* "replay [FLAGS]" */
  const char *details; /* paragraphs after the flags, examples included */
  pe_cli_flag_t *flags;
  size_t n_flags;
  int (*run)(const struct pe_cli_command *cmd, int argc, char **argv);
} pe_cli_command_t;

/* Every command, in the order `pattern-engine --help` lists them. */
extern const pe_cli_command_t *const pe_cli_commands[];
extern const size_t pe_cli_command_count;

const pe_cli_command_t *pe_cli_find_command(const char *name);

void pe_cli_print_help(FILE *out, const pe_cli_command_t *cmd);

/* Parses argv[1..] into cmd->flags; positional arguments land in pos[] (at
 * most *n_pos, count returned in *n_pos). Returns PE_EXIT_OK, PE_EXIT_USAGE
 * (message printed), or -1 when --help was asked for (help printed). */
int pe_cli_parse(const pe_cli_command_t *cmd, int argc, char **argv, char **pos,
                 size_t *n_pos);

/* The flag named `name` of cmd (it must exist). */
pe_cli_flag_t *pe_cli_flag(const pe_cli_command_t *cmd, const char *name);
const char *pe_cli_value(const pe_cli_command_t *cmd, const char *name);
int pe_cli_is_set(const pe_cli_command_t *cmd, const char *name);

/* Typed reads of a flag's value (or its default). On a bad value they print
 * "pattern-engine CMD: --flag: ..." and return PE_EXIT_USAGE. */
int pe_cli_double(const pe_cli_command_t *cmd, const char *name, double *out);
int pe_cli_u32(const pe_cli_command_t *cmd, const char *name, uint32_t *out);
int pe_cli_u64(const pe_cli_command_t *cmd, const char *name, uint64_t *out);

/* --cuda-memory MB (PE_CLI_CUDA_MEMORY_FLAG; 1 MB = 10^6 bytes) as bytes,
 * for pe_backend_options_t.device_memory_bytes: a number above 0, else
 * a message and PE_EXIT_USAGE. */
int pe_cli_cuda_memory(const pe_cli_command_t *cmd, uint64_t *bytes);

/* SIGTERM and SIGINT call on_stop (a service's stop: it must only store
 * to a flag), SIGPIPE is ignored (a closed socket is an error return). */
void pe_cli_catch_stop(void (*on_stop)(int sig));

/* Prints "pattern-engine CMD: message" on stderr. */
void pe_cli_error(const pe_cli_command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- flags shared by the commands that run the engine ----------------------
 * PE_CLI_ENGINE_FLAGS and PE_CLI_MODEL_FLAGS expand to table entries. */
#define PE_CLI_ENGINE_FLAGS                                                    \
  {"max-symbols",                                                              \
   "N",                                                                        \
   NULL,                                                                       \
   PE_DEFAULT_TEXT(PE_DEFAULT_MAX_SYMBOLS),                                    \
   "capacity of the symbol table, fixed at start",                             \
   NULL},                                                                      \
      {"ema-fast-span",                                                        \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_EMA_FAST_SPAN),                              \
       "span of the fast price EMA",                                           \
       NULL},                                                                  \
      {"ema-slow-span",                                                        \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_EMA_SLOW_SPAN),                              \
       "span of the slow price EMA",                                           \
       NULL},                                                                  \
      {"ema-td-half-life",                                                     \
       "SECONDS",                                                              \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_EMA_TD_HALF_LIFE_S),                         \
       "half-life of the time-decayed price EMA (ema_td_dev)",                 \
       NULL},                                                                  \
      {"vwap-window",                                                          \
       "SECONDS",                                                              \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_VWAP_WINDOW_S),                              \
       "span of the rolling VWAP (vwap_roll_dev)",                             \
       NULL},                                                                  \
      {"session-reset",                                                        \
       "HH:MM",                                                                \
       NULL,                                                                   \
       "none",                                                                 \
       "restart the VWAP each day at this UTC time",                           \
       NULL},                                                                  \
      {"ema-diff-threshold",                                                   \
       "X",                                                                    \
       "EMA_DIFF_THRESHOLD",                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_EMA_DIFF_THRESHOLD),                         \
       "ema_crossover fires when |fast - slow| / slow > X",                    \
       NULL},                                                                  \
      {"vwap-diff-threshold",                                                  \
       "X",                                                                    \
       "VWAP_DIFF_THRESHOLD",                                                  \
       PE_DEFAULT_TEXT(PE_DEFAULT_VWAP_DIFF_THRESHOLD),                        \
       "vwap_deviation fires when |price - vwap| / vwap > X",                  \
       NULL},                                                                  \
      {"volume-ema-alpha",                                                     \
       "A",                                                                    \
       "VOLUME_EMA_ALPHA",                                                     \
       PE_DEFAULT_TEXT(PE_DEFAULT_VOLUME_EMA_ALPHA),                           \
       "alpha of the EMA of previous sizes (volume_spike)",                    \
       NULL},                                                                  \
      {"volume-spike-multiplier",                                              \
       "X",                                                                    \
       "VOLUME_SPIKE_MULTIPLIER",                                              \
       PE_DEFAULT_TEXT(PE_DEFAULT_VOLUME_SPIKE_MULTIPLIER),                    \
       "volume_spike fires when size > X times that EMA",                      \
       NULL},                                                                  \
      {"breakout-sigma",                                                       \
       "X",                                                                    \
       "BREAKOUT_SIGMA",                                                       \
       PE_DEFAULT_TEXT(PE_DEFAULT_BREAKOUT_SIGMA),                             \
       "volatility_breakout fires when |log return| > X EW std devs",          \
       NULL},                                                                  \
      {"breakout-min-returns",                                                 \
       "N",                                                                    \
       "BREAKOUT_MIN_RETURNS",                                                 \
       PE_DEFAULT_TEXT(PE_DEFAULT_BREAKOUT_MIN_RETURNS),                       \
       "returns a symbol needs before volatility_breakout can fire",           \
       NULL},                                                                  \
      {"return-ewm-alpha",                                                     \
       "A",                                                                    \
       "RETURN_EWM_ALPHA",                                                     \
       PE_DEFAULT_TEXT(PE_DEFAULT_RETURN_EWM_ALPHA),                           \
       "alpha of the EW variance of log returns",                              \
       NULL},                                                                  \
      {"signal-score-min",                                                     \
       "X",                                                                    \
       "SIGNAL_SCORE_MIN",                                                     \
       PE_DEFAULT_TEXT(PE_DEFAULT_SIGNAL_SCORE_MIN),                           \
       "emit a signal when |score| > X",                                       \
       NULL},                                                                  \
  {                                                                            \
    "signal-cooldown", "SECONDS", "SIGNAL_COOLDOWN",                           \
        PE_DEFAULT_TEXT(PE_DEFAULT_SIGNAL_COOLDOWN_S),                         \
        "least tick time between two signals of one symbol", NULL              \
  }

#define PE_CLI_MODEL_FLAGS                                                     \
  {"model",                                                                    \
   "PATH",                                                                     \
   NULL,                                                                       \
   NULL,                                                                       \
   "ONNX model to run on every ready window (backend cpu unless --backend)",   \
   NULL},                                                                      \
      {"backend",                                                              \
       "NAME",                                                                 \
       NULL,                                                                   \
       NULL,                                                                   \
       "model backend: stub, or one `--version` lists; none by default",       \
       NULL},                                                                  \
      PE_CLI_CUDA_MODE_FLAG, PE_CLI_CUDA_PRECISION_FLAG,                       \
      PE_CLI_CUDA_MEMORY_FLAG,                                                 \
      {"model-features",                                                       \
       "LIST",                                                                 \
       NULL,                                                                   \
       NULL,                                                                   \
       "comma-separated feature names, in channel order, for a model that "    \
       "declares none",                                                        \
       NULL},                                                                  \
      {"window",                                                               \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_MODEL_WINDOW),                               \
       "window length for backends whose model does not fix it (stub)",        \
       NULL},                                                                  \
      {"infer-every",                                                          \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_INFER_EVERY),                                \
       "run the model every N ticks of a symbol once its window is ready",     \
       NULL},                                                                  \
      {"max-batch",                                                            \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_MAX_BATCH),                                  \
       "run the model on up to N ready windows at once (1 to 4096; 1: each "   \
       "alone); the output is the same",                                       \
       NULL},                                                                  \
      {"max-delay-us",                                                         \
       "US",                                                                   \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_MAX_DELAY_US),                               \
       "with --max-batch: run a partial batch once a tick comes US "           \
       "microseconds (tick time) after its first window",                      \
       NULL},                                                                  \
      {"model-threads",                                                        \
       "N",                                                                    \
       NULL,                                                                   \
       PE_DEFAULT_TEXT(PE_DEFAULT_MODEL_THREADS),                              \
       "cpu backend: split each batch of ready windows over N threads (1 to "  \
       "64; with --max-batch); the output is the same",                        \
       NULL},                                                                  \
  {                                                                            \
    "model-threshold", "P", NULL, PE_DEFAULT_TEXT(PE_DEFAULT_MODEL_THRESHOLD), \
        "emit model:<class> when a class other than the first reaches P", NULL \
  }

/* Fills an engine config from PE_CLI_ENGINE_FLAGS and the model flags. */
int pe_cli_engine_config(const pe_cli_command_t *cmd, pe_engine_config_t *cfg);

/* What to add to pe_backend_open's message (rc, for opts) to name the flag
 * that fixes it; "" when none does. The library speaks of its options, the
 * command line of its flags. */
const char *pe_cli_backend_hint(int rc, const pe_backend_options_t *opts);

/* Opens the backend the model flags ask for (*out NULL when none) and
 * attaches it to the engine. Returns an exit code. */
int pe_cli_open_backend(const pe_cli_command_t *cmd, pe_engine_t *engine,
                        pe_backend_t **out);

#endif
