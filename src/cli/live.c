/* `pattern-engine live`: the live service (pe/live.h) run from flags. This
 * file turns the flags into a pe_live_config_t, steps the service until a
 * stop (SIGTERM/SIGINT, --exit-on-idle) or a failure, and prints the
 * summary; docs/live.md describes the service. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/live_cluster.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/live.h"

static pe_cli_flag_t pe__live_flags[] = {
    {"redis", "URL", "REDIS_URL", PE_LIVE_DEFAULT_REDIS_URL,
     "Redis to read ticks from and write signals to", NULL},
    {"ticks-stream", "KEY", "TICKS_STREAM", PE_LIVE_DEFAULT_TICKS_STREAM,
     "stream the ticks are read from", NULL},
    {"signals-stream", "KEY", "SIGNALS_STREAM", PE_LIVE_DEFAULT_SIGNALS_STREAM,
     "stream the signals are written to", NULL},
    {"signals-maxlen", "N", NULL,
     PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_SIGNALS_MAXLEN),
     "trim signals and rejects streams to ~N entries; 0: never", NULL},
    {"checkpoint", "PATH|redis", NULL, NULL,
     "keep checkpoints in a file, or in the Redis key --checkpoint-key", NULL},
    {"checkpoint-key", "KEY", NULL, "SIGNALS-STREAM:checkpoint",
     "Redis key of --checkpoint redis", NULL},
    {"checkpoint-every", "N", NULL,
     PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_CHECKPOINT_EVERY),
     "checkpoint after N entries (at the end of a batch)", NULL},
    {"checkpoint-interval", "SECONDS", NULL,
     PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_CHECKPOINT_INTERVAL_S),
     "checkpoint at least this often while entries come in", NULL},
    {"start-id", "ID", NULL, PE_LIVE_DEFAULT_START_ID,
     "without a checkpoint: 0 (the beginning), $ (new only), MS-SEQ", NULL},
    {"on-gap", "MODE", NULL, "fail",
     "entries trimmed unread: fail (exit 1) or skip (count, go on)", NULL},
    {"rejects", "PATH", NULL, NULL,
     "append each rejected entry as tick_id,reason,field,raw to a file", NULL},
    {"rejects-stream", "KEY", NULL, NULL,
     "write each rejected entry to this stream", NULL},
    {"ts-unit", "UNIT", NULL, "auto",
     "epoch timestamp unit: auto (by magnitude), s, ms, us or ns", NULL},
    {"count", "N", NULL, PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_COUNT),
     "entries per XREAD (batch size)", NULL},
    {"block-ms", "MS", NULL, PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_BLOCK_MS),
     "how long one XREAD waits for new entries", NULL},
    {"redis-timeout", "SECONDS", NULL,
     PE_DEFAULT_TEXT(PE_LIVE_DEFAULT_REDIS_TIMEOUT_S),
     "a Redis reply slower than this counts as a lost connection", NULL},
    {"http", "HOST:PORT", NULL, NULL,
     "serve /health and /metrics there: 127.0.0.1:8005 (:8005 is loopback "
     "too), 0.0.0.0:8005 for every interface",
     NULL},
    {"exit-on-idle", "SECONDS", NULL, NULL,
     "drain, checkpoint and exit 0 once no entry came for this long", NULL},
    {"state-out", "PATH", NULL, NULL,
     "at exit, write the engine state (as replay --state-out)", NULL},
    {"summary-json", "PATH", NULL, NULL,
     "at exit, write the run's totals as JSON", NULL},
    PE_CLI_CLUSTER_FLAGS,
    PE_CLI_ENGINE_FLAGS,
    PE_CLI_MODEL_FLAGS,
    {"quiet", NULL, NULL, NULL, "no log lines and no summary", NULL},
};

static pe_live_t *volatile pe__running = NULL;

/* SIGTERM, SIGINT: a first one stops, a second gives up waiting for Redis. */
static void pe__on_signal(int sig) {
  (void)sig;
  if (pe__running != NULL) {
    pe_live_stop(pe__running);
  }
}

/* Log lines of the service; ctx NULL (--quiet) keeps only warnings. */
static void pe__log(void *ctx, int level, const char *line) {
  if (level >= PE_LIVE_LOG_WARN || ctx != NULL) {
    fprintf(stderr, "pattern-engine live: %s\n", line);
  }
}

/* Seconds from a flag: 0 < s <= 1e6 (0 allowed with allow_zero). */
static int pe__seconds(const pe_cli_command_t *cmd, const char *name,
                       int allow_zero, double *s) {
  if (pe_cli_double(cmd, name, s) != PE_EXIT_OK ||
      !((*s > 0.0 || (allow_zero && *s == 0.0)) && *s <= 1e6)) {
    pe_cli_error(cmd, "--%s must be %s..1e6 seconds", name,
                 allow_zero ? "0" : "a positive number of");
    return PE_EXIT_USAGE;
  }
  return PE_EXIT_OK;
}

/* The service's settings from the flags (the engine is set by the caller). */
static int pe__config(const pe_cli_command_t *cmd, pe_live_config_t *c) {
  pe_live_config_default(c);
  c->redis_url = pe_cli_value(cmd, "redis");
  c->ticks_stream = pe_cli_value(cmd, "ticks-stream");
  c->signals_stream = pe_cli_value(cmd, "signals-stream");
  c->rejects_stream = pe_cli_flag(cmd, "rejects-stream")->value;
  c->rejects_path = pe_cli_flag(cmd, "rejects")->value;
  c->http_addr = pe_cli_flag(cmd, "http")->value;
  c->log = pe__log;
  c->log_ctx = pe_cli_is_set(cmd, "quiet") ? NULL : (void *)cmd;
  double ival, tmo;
  if (pe_cli_u64(cmd, "signals-maxlen", &c->signals_maxlen) != PE_EXIT_OK ||
      pe_cli_u64(cmd, "checkpoint-every", &c->checkpoint_every) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "count", &c->count) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "block-ms", &c->block_ms) != PE_EXIT_OK ||
      pe__seconds(cmd, "checkpoint-interval", 1, &ival) != PE_EXIT_OK ||
      pe__seconds(cmd, "redis-timeout", 0, &tmo) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  c->checkpoint_interval_ms = (uint64_t)(ival * 1e3);
  c->redis_timeout_ms = tmo > 3600 ? 0 : (uint32_t)(tmo * 1e3);
  const char *gap = pe_cli_value(cmd, "on-gap");
  const char *start = pe_cli_value(cmd, "start-id");
  pe_stream_id_t id;
  if (strcmp(gap, "fail") != 0 && strcmp(gap, "skip") != 0) {
    pe_cli_error(cmd, "--on-gap: '%s' is not fail or skip", gap);
    return PE_EXIT_USAGE;
  }
  c->on_gap = strcmp(gap, "skip") == 0 ? PE_LIVE_GAP_SKIP : PE_LIVE_GAP_FAIL;
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &c->stream.ts_unit) !=
      PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    return PE_EXIT_USAGE;
  }
  if (strcmp(start, "$") != 0 &&
      pe_stream_id_parse(start, strlen(start), &id) != PE_OK) {
    pe_cli_error(cmd, "--start-id: '%s' is not 0, $ or an entry id MS-SEQ",
                 start);
    return PE_EXIT_USAGE;
  }
  c->start_id = start;
  const char *ck = pe_cli_flag(cmd, "checkpoint")->value;
  if (ck != NULL && ck[0] == '\0') {
    pe_cli_error(cmd, "--checkpoint needs a path or 'redis'");
    return PE_EXIT_USAGE;
  }
  c->checkpoint = ck == NULL                 ? PE_LIVE_CHECKPOINT_NONE
                  : strcmp(ck, "redis") == 0 ? PE_LIVE_CHECKPOINT_REDIS
                                             : PE_LIVE_CHECKPOINT_FILE;
  c->checkpoint_path = ck;
  c->checkpoint_key = pe_cli_flag(cmd, "checkpoint-key")->value;
  double idle = 0;
  if (pe_cli_is_set(cmd, "exit-on-idle") &&
      pe__seconds(cmd, "exit-on-idle", 0, &idle) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  c->idle_stop_ms = (uint64_t)(idle * 1e3);
  return PE_EXIT_OK;
}

/* Steps the service until it stops; returns an exit code. */
static int pe__loop(const pe_cli_command_t *cmd, pe_live_t *live) {
  int rc;
  while ((rc = pe_live_step(live, -1, NULL)) == PE_OK) {
  }
  if (rc == PE_LIVE_STOPPED) {
    return PE_EXIT_OK;
  }
  /* A failure without its own message still names its kind. */
  const char *msg = pe_live_errmsg(live);
  pe_cli_error(cmd, "%s", msg[0] != '\0' ? msg : pe_strerror(rc));
  if (rc == PE_EGAP) {
    pe_cli_error(cmd, "stopping (--on-gap fail); rerun with --on-gap skip to "
                      "go on from the first entry left, the gap counted in "
                      "pe_live_gap_entries_total");
  }
  return PE_EXIT_FAIL;
}

/* What `live` leaves at a clean stop: summary, --summary-json, --state-out. */
static int pe__outputs(const pe_cli_command_t *cmd, pe_live_t *live,
                       pe_engine_t *engine) {
  static char text[16384];
  pe_live_metrics_t m;
  pe_live_metrics(live, &m);
  if (!pe_cli_is_set(cmd, "quiet")) {
    size_t n = pe_live_summary_text(live, &m, text, sizeof text);
    fwrite(text, 1, n < sizeof text ? n : sizeof text - 1, stderr);
  }
  const char *path = pe_cli_flag(cmd, "summary-json")->value;
  size_t n = pe_live_summary_json(&m, text, sizeof text);
  char err[768];
  if (path != NULL &&
      pe_file_write_atomic(path, text, n, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "cannot write the summary: %s", err);
    return PE_EXIT_FAIL;
  }
  path = pe_cli_flag(cmd, "state-out")->value;
  if (path != NULL && pe_engine_save(engine, path, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "cannot write the state: %s", err);
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

static int pe__live_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  pe_engine_config_t ecfg;
  pe_live_config_t cfg;
  rc = pe_cli_engine_config(cmd, &ecfg);
  /* As replay without --features-out: only the features the rules read
   * (windows, when a model is attached, still get them all). */
  ecfg.all_features = 0;
  if (rc == PE_EXIT_OK) {
    rc = pe__config(cmd, &cfg);
  }
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  if (pe_cli_is_set(cmd, "cluster")) {
    return pe_cli_live_cluster(cmd, &ecfg, &cfg);
  }
  char err[1024];
  pe_engine_t *engine = NULL;
  pe_backend_t *backend = NULL;
  pe_live_t *live = NULL;
  int erc = pe_engine_create(&ecfg, &engine, err, sizeof err);
  if (erc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    /* Settings the engine refuses are usage; memory is not. */
    return erc == PE_ENOMEM ? PE_EXIT_FAIL : PE_EXIT_USAGE;
  }
  rc = pe_cli_open_backend(cmd, engine, &backend);
  cfg.engine = engine;
  if (rc == PE_EXIT_OK) {
    int lrc = pe_live_create(&cfg, &live, err, sizeof err);
    if (lrc != PE_OK) {
      pe_cli_error(cmd, "%s", err);
      rc = lrc == PE_EINVAL || lrc == PE_EUNSUPPORTED ? PE_EXIT_USAGE
                                                      : PE_EXIT_FAIL;
    }
  }
  if (rc == PE_EXIT_OK) {
    pe__running = live;
    pe_cli_catch_stop(pe__on_signal);
    rc = pe__loop(cmd, live);
    if (rc == PE_EXIT_OK) {
      rc = pe__outputs(cmd, live, engine);
    }
    pe__running = NULL;
  }
  pe_live_destroy(live);
  pe_engine_destroy(engine);
  pe_backend_close(backend);
  return rc;
}

const pe_cli_command_t pe_cli_live = {
    .name = "live",
    .summary = "Read ticks from a Redis Stream and write signals to another",
    .usage = "live [--redis URL] [--checkpoint PATH|redis] [FLAGS]",
    .details =
        "Entries hold symbol, price, volume and timestamp, flat or as JSON in\n"
        "one field `data`. Signal stream ids derive from tick ids, so a\n"
        "restart never writes one twice (docs/live.md). Exit: 0 after a\n"
        "clean stop (SIGTERM/SIGINT, --exit-on-idle); 1 a failure (a gap with\n"
        "--on-gap fail, a bad checkpoint, an output not written); 2 usage.\n"
        "\n"
        "With --cluster, N workers share --partitions P: each partition's\n"
        "ticks:{pN} is read by the worker holding its lease, signals go to\n"
        "signals:{pN}, the checkpoint to checkpoint:{pN} (docs/scaling.md).\n"
        "\n"
        "example:\n"
        "  pattern-engine live --redis redis://127.0.0.1:6379/0 \\\n"
        "      --checkpoint /var/lib/pe/ckpt --http 127.0.0.1:8005\n"
        "  pattern-engine live --cluster --partitions 16 --worker-id w1 \\\n"
        "      --redis redis://10.0.0.5:7000/0 --http 0.0.0.0:8005\n",
    .flags = pe__live_flags,
    .n_flags = sizeof pe__live_flags / sizeof pe__live_flags[0],
    .run = pe__live_run,
};
