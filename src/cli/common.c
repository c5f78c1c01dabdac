/* Flag parsing, help and the engine options shared by the commands. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/hash.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/parse.h"

const pe_cli_command_t *pe_cli_find_command(const char *name) {
  for (size_t i = 0; i < pe_cli_command_count; i++) {
    if (strcmp(pe_cli_commands[i]->name, name) == 0) {
      return pe_cli_commands[i];
    }
  }
  return NULL;
}

void pe_cli_error(const pe_cli_command_t *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "pattern-engine %s: ", cmd->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void pe_cli_print_help(FILE *out, const pe_cli_command_t *cmd) {
  fprintf(out, "usage: pattern-engine %s\n\n%s.\n\nflags:\n", cmd->usage,
          cmd->summary);
  for (size_t i = 0; i < cmd->n_flags; i++) {
    const pe_cli_flag_t *f = &cmd->flags[i];
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", f->name, f->arg ? " " : "",
             f->arg ? f->arg : "");
    fprintf(out, "  %-28s %s", left, f->help);
    if (f->def != NULL || f->env != NULL) {
      fputs(" (", out);
      if (f->def != NULL) {
        fprintf(out, "default %s", f->def);
      }
      if (f->env != NULL) {
        fprintf(out, "%senv %s", f->def ? "; " : "", f->env);
      }
      fputc(')', out);
    }
    fputc('\n', out);
  }
  fprintf(out, "  %-28s %s\n", "--help", "print this help");
  if (cmd->details != NULL) {
    fprintf(out, "\n%s", cmd->details);
  }
}

pe_cli_flag_t *pe_cli_flag(const pe_cli_command_t *cmd, const char *name) {
  for (size_t i = 0; i < cmd->n_flags; i++) {
    if (strcmp(cmd->flags[i].name, name) == 0) {
      return &cmd->flags[i];
    }
  }
  fprintf(stderr, "pattern-engine: internal error: no flag --%s in %s\n", name,
          cmd->name);
  abort();
}

const char *pe_cli_value(const pe_cli_command_t *cmd, const char *name) {
  const pe_cli_flag_t *f = pe_cli_flag(cmd, name);
  return f->value != NULL ? f->value : f->def;
}

int pe_cli_is_set(const pe_cli_command_t *cmd, const char *name) {
  return pe_cli_flag(cmd, name)->value != NULL;
}

int pe_cli_parse(const pe_cli_command_t *cmd, int argc, char **argv, char **pos,
                 size_t *n_pos) {
  size_t cap = *n_pos;
  *n_pos = 0;
  for (size_t i = 0; i < cmd->n_flags; i++) {
    cmd->flags[i].value = NULL;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      pe_cli_print_help(stdout, cmd);
      return -1;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      if (strcmp(a, "--") == 0 || *n_pos == cap) {
        pe_cli_error(cmd,
                     "unexpected argument '%s'; see `pattern-engine help %s`",
                     a, cmd->name);
        return PE_EXIT_USAGE;
      }
      pos[(*n_pos)++] = argv[i];
      continue;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    pe_cli_flag_t *f = NULL;
    for (size_t k = 0; k < cmd->n_flags; k++) {
      if (strlen(cmd->flags[k].name) == name_len &&
          memcmp(cmd->flags[k].name, name, name_len) == 0) {
        f = &cmd->flags[k];
      }
    }
    if (f == NULL) {
      pe_cli_error(cmd, "unknown flag --%.*s; see `pattern-engine help %s`",
                   (int)name_len, name, cmd->name);
      return PE_EXIT_USAGE;
    }
    if (f->arg == NULL) {
      if (eq != NULL) {
        pe_cli_error(cmd, "--%s takes no value", f->name);
        return PE_EXIT_USAGE;
      }
      f->value = "1";
    } else if (eq != NULL) {
      f->value = eq + 1;
    } else if (i + 1 < argc) {
      f->value = argv[++i];
    } else {
      pe_cli_error(cmd, "--%s needs a value (%s)", f->name, f->arg);
      return PE_EXIT_USAGE;
    }
  }
  for (size_t i = 0; i < cmd->n_flags; i++) {
    pe_cli_flag_t *f = &cmd->flags[i];
    if (f->value == NULL && f->env != NULL) {
      const char *v = getenv(f->env);
      if (v != NULL && v[0] != '\0') {
        f->value = v;
      }
    }
  }
  return PE_EXIT_OK;
}

static const char *pe__flag_origin(const pe_cli_flag_t *f) {
  if (f->env != NULL && f->value != NULL && getenv(f->env) == f->value) {
    return f->env;
  }
  return NULL;
}

static void pe__bad_value(const pe_cli_command_t *cmd, const pe_cli_flag_t *f,
                          const char *v, const char *want) {
  const char *env = pe__flag_origin(f);
  if (env != NULL) {
    pe_cli_error(cmd, "%s='%s' (for --%s) is not %s", env, v, f->name, want);
  } else {
    pe_cli_error(cmd, "--%s: '%s' is not %s", f->name, v, want);
  }
}

int pe_cli_double(const pe_cli_command_t *cmd, const char *name, double *out) {
  const pe_cli_flag_t *f = pe_cli_flag(cmd, name);
  const char *v = f->value != NULL ? f->value : f->def;
  char *end = NULL;
  errno = 0;
  double d = v != NULL ? strtod(v, &end) : NAN;
  if (v == NULL || end == v || *end != '\0' || errno != 0 || !isfinite(d)) {
    pe__bad_value(cmd, f, v ? v : "", "a finite number");
    return PE_EXIT_USAGE;
  }
  *out = d;
  return PE_EXIT_OK;
}

int pe_cli_cuda_memory(const pe_cli_command_t *cmd, uint64_t *bytes) {
  double mb = 0;
  if (pe_cli_double(cmd, "cuda-memory", &mb) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (!(mb * 1e6 >= 1.0) || mb > 1e12) {
    const pe_cli_flag_t *f = pe_cli_flag(cmd, "cuda-memory");
    pe__bad_value(cmd, f, f->value != NULL ? f->value : f->def,
                  "a number of MB from 0.000001 to 10^12");
    return PE_EXIT_USAGE;
  }
  *bytes = (uint64_t)(mb * 1e6 + 0.5); /* the nearest byte */
  return PE_EXIT_OK;
}

int pe_cli_u64(const pe_cli_command_t *cmd, const char *name, uint64_t *out) {
  const pe_cli_flag_t *f = pe_cli_flag(cmd, name);
  const char *v = f->value != NULL ? f->value : f->def;
  char *end = NULL;
  errno = 0;
  unsigned long long u = 0;
  if (v != NULL && v[0] >= '0' && v[0] <= '9') {
    u = strtoull(v, &end, 10);
  }
  if (v == NULL || end == NULL || *end != '\0' || errno != 0) {
    pe__bad_value(cmd, f, v ? v : "", "a whole number >= 0");
    return PE_EXIT_USAGE;
  }
  *out = u;
  return PE_EXIT_OK;
}

int pe_cli_u32(const pe_cli_command_t *cmd, const char *name, uint32_t *out) {
  uint64_t u;
  int rc = pe_cli_u64(cmd, name, &u);
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  if (u > UINT32_MAX) {
    const pe_cli_flag_t *f = pe_cli_flag(cmd, name);
    pe__bad_value(cmd, f, f->value, "below 2^32");
    return PE_EXIT_USAGE;
  }
  *out = (uint32_t)u;
  return PE_EXIT_OK;
}

/* "HH:MM" -> minutes after midnight; "none" -> -1. */
static int pe__parse_hhmm(const char *v, int *minute) {
  if (strcmp(v, "none") == 0) {
    *minute = -1;
    return 0;
  }
  if (strlen(v) != 5 || v[2] != ':') {
    return -1;
  }
  for (int i = 0; i < 5; i++) {
    if (i != 2 && (v[i] < '0' || v[i] > '9')) {
      return -1;
    }
  }
  int h = (v[0] - '0') * 10 + (v[1] - '0');
  int m = (v[3] - '0') * 10 + (v[4] - '0');
  if (h > 23 || m > 59) {
    return -1;
  }
  *minute = h * 60 + m;
  return 0;
}

/* The flag of that name when the command has one, else NULL. */
static const pe_cli_flag_t *pe__flag_if_any(const pe_cli_command_t *cmd,
                                            const char *name) {
  for (size_t i = 0; i < cmd->n_flags; i++) {
    if (strcmp(cmd->flags[i].name, name) == 0) {
      return &cmd->flags[i];
    }
  }
  return NULL;
}

/* What a snapshot records of the inputs beyond the engine's own settings:
 * the timestamp unit, and a digest of the model file, the backend and the
 * feature list (0 without a model or backend). A model file that cannot be
 * read is left to the backend, whose message says why. */
static void pe__input_settings(const pe_cli_command_t *cmd,
                               pe_engine_config_t *c) {
  const pe_cli_flag_t *unit = pe__flag_if_any(cmd, "ts-unit");
  pe_ts_unit_t u = PE_TS_AUTO;
  if (unit != NULL) {
    (void)pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &u); /* checked by
                                                                  the command */
  }
  c->ts_unit = (uint32_t)u;
  const pe_cli_flag_t *model = pe__flag_if_any(cmd, "model");
  const pe_cli_flag_t *backend = pe__flag_if_any(cmd, "backend");
  const pe_cli_flag_t *feats = pe__flag_if_any(cmd, "model-features");
  const char *names[] = {backend ? backend->value : NULL,
                         feats ? feats->value : NULL};
  uint64_t d = 0;
  for (size_t i = 0; i < 2; i++) {
    if (names[i] != NULL) {
      d = pe__hash64(names[i], strlen(names[i]) + 1, d ^ i);
    }
  }
  if (model != NULL && model->value != NULL) {
    char err[512];
    (void)pe_file_digest(model->value, d ^ 2, &d, err, sizeof err);
  }
  c->model_digest = d;
}

int pe_cli_engine_config(const pe_cli_command_t *cmd, pe_engine_config_t *c) {
  pe_engine_config_init(c);
  double cooldown_s;
  int rc = PE_EXIT_OK;
  rc |= pe_cli_u32(cmd, "max-symbols", &c->max_symbols);
  rc |= pe_cli_double(cmd, "ema-fast-span", &c->ema_fast_span);
  rc |= pe_cli_double(cmd, "ema-slow-span", &c->ema_slow_span);
  rc |= pe_cli_double(cmd, "ema-td-half-life", &c->ema_td_half_life_s);
  rc |= pe_cli_double(cmd, "vwap-window", &c->vwap_window_s);
  rc |= pe_cli_double(cmd, "ema-diff-threshold", &c->rules.ema_diff_threshold);
  rc |=
      pe_cli_double(cmd, "vwap-diff-threshold", &c->rules.vwap_diff_threshold);
  rc |= pe_cli_double(cmd, "volume-ema-alpha", &c->rules.volume_ema_alpha);
  rc |= pe_cli_double(cmd, "volume-spike-multiplier",
                      &c->rules.volume_spike_multiplier);
  rc |= pe_cli_double(cmd, "breakout-sigma", &c->rules.breakout_sigma);
  rc |= pe_cli_u32(cmd, "breakout-min-returns", &c->rules.breakout_min_returns);
  rc |= pe_cli_double(cmd, "return-ewm-alpha", &c->rules.return_ewm_alpha);
  rc |= pe_cli_double(cmd, "signal-score-min", &c->rules.signal_score_min);
  rc |= pe_cli_double(cmd, "signal-cooldown", &cooldown_s);
  rc |= pe_cli_u32(cmd, "infer-every", &c->infer_every);
  rc |= pe_cli_double(cmd, "model-threshold", &c->model_threshold);
  rc |= pe_cli_u32(cmd, "max-batch", &c->max_batch);
  rc |= pe_cli_u32(cmd, "max-delay-us", &c->max_delay_us);
  if (rc != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (c->max_batch == 0 || c->max_batch > PE_ENGINE_MAX_BATCH) {
    pe_cli_error(cmd, "--max-batch must be between 1 and %u",
                 PE_ENGINE_MAX_BATCH);
    return PE_EXIT_USAGE;
  }
  if (!(cooldown_s >= 0.0) || cooldown_s > 1e9) {
    pe_cli_error(cmd, "--signal-cooldown must be between 0 and 1e9 seconds");
    return PE_EXIT_USAGE;
  }
  c->rules.signal_cooldown_ns = (int64_t)llround(cooldown_s * 1e9);
  const char *reset = pe_cli_value(cmd, "session-reset");
  if (pe__parse_hhmm(reset, &c->session_reset_minute) != 0) {
    pe_cli_error(cmd, "--session-reset: '%s' is not a UTC time HH:MM (or none)",
                 reset);
    return PE_EXIT_USAGE;
  }
  pe__input_settings(cmd, c);
  return PE_EXIT_OK;
}

const char *pe_cli_backend_hint(int rc, const pe_backend_options_t *opts) {
  if (rc != PE_EINVAL) {
    return "";
  }
  if (opts->model_path == NULL) {
    return "; give --model PATH";
  }
  return opts->model_features == NULL ? "; name them with --model-features"
                                      : " (--model-features)";
}

int pe_cli_open_backend(const pe_cli_command_t *cmd, pe_engine_t *engine,
                        pe_backend_t **out) {
  *out = NULL;
  const char *model = pe_cli_flag(cmd, "model")->value;
  const char *name = pe_cli_flag(cmd, "backend")->value;
  if (name == NULL && model == NULL) {
    return PE_EXIT_OK;
  }
  if (name == NULL) {
    name = "cpu";
  }
  pe_backend_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.model_path = model;
  opts.model_features = pe_cli_flag(cmd, "model-features")->value;
  opts.kernels = getenv(PE_CLI_KERNELS_ENV);
  opts.mode = pe_cli_value(cmd, "cuda-mode");
  opts.precision = pe_cli_value(cmd, "precision");
  opts.max_batch = 1;
  if (pe_cli_u32(cmd, "window", &opts.window) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "max-batch", &opts.max_batch) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "model-threads", &opts.threads) != PE_EXIT_OK ||
      pe_cli_cuda_memory(cmd, &opts.device_memory_bytes) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (opts.window == 0) {
    pe_cli_error(cmd, "--window must be at least 1");
    return PE_EXIT_USAGE;
  }
  if (opts.threads == 0 || opts.threads > 64) {
    pe_cli_error(cmd, "--model-threads must be between 1 and 64");
    return PE_EXIT_USAGE;
  }
  char err[512];
  int rc = pe_backend_open(name, &opts, out, err, sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s%s", err, pe_cli_backend_hint(rc, &opts));
    return rc == PE_ENOENT && pe_backend_find(name) == NULL ? PE_EXIT_USAGE
                                                            : PE_EXIT_FAIL;
  }
  rc = pe_engine_set_backend(engine, *out);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s", pe_engine_errmsg(engine));
    pe_backend_close(*out);
    *out = NULL;
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

void pe_cli_catch_stop(void (*on_stop)(int sig)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}
