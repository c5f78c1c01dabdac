/* `pattern-engine publish`: a tick CSV file into a Redis Stream.
 *
 * The flags become a publish config (pe/publish.h), which does the work:
 * the same CSV parser as replay, explicit ids so that a batch resent after
 * a reconnect is not added twice. This file prints its retries, errors and
 * the summary. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/error.h"
#include "pe/partition.h"
#include "pe/publish.h"

static pe_cli_flag_t pe__publish_flags[] = {
    {"ticks", "PATH", NULL, "-",
     "tick CSV file (as replay reads it); - reads standard input", NULL},
    {"redis", "URL", "REDIS_URL", "redis://localhost:6379/0",
     "Redis to publish to", NULL},
    {"ticks-stream", "KEY", "TICKS_STREAM", "ticks:global",
     "stream the ticks are added to", NULL},
    {"rate", "N", NULL, NULL, "publish N ticks per second", NULL},
    {"speed", "X", NULL, NULL,
     "publish at X times the pace of the ticks' own timestamps", NULL},
    {"pipeline", "N", NULL, "1000",
     "most ticks per batch (one write); with --partitions, per round over "
     "all partitions, 10000 unless given",
     NULL},
    {"maxlen", "N", NULL, "0",
     "trim the stream to about N entries as it grows; 0: never", NULL},
    {"ids", "MODE", NULL, "explicit",
     "explicit: ids chosen here, so a resent batch is not added twice; "
     "auto: Redis picks them ('*')",
     NULL},
    {"partitions", "P", "PARTITION_COUNT", NULL,
     "route each tick to its symbol's partition's stream ticks:{pN}, "
     "N < P, on a single node or a Redis Cluster (docs/scaling.md)",
     NULL},
    {"partition-weights", "PATH", "SYMBOL_WEIGHTS_FILE", NULL,
     "with --partitions: 'symbol,weight' lines, packed heaviest first "
     "instead of hashed",
     NULL},
    {"hot-symbols", "A,B", "HOT_SYMBOLS", NULL,
     "with --partitions: symbols placed first, each on the lightest "
     "partition",
     NULL},
    {"ts-unit", "UNIT", NULL, "auto",
     "epoch timestamp unit: auto (by magnitude), s, ms, us or ns", NULL},
    {"quiet", NULL, NULL, NULL, "no summary", NULL},
};

static volatile sig_atomic_t pe__publish_stop = 0;

static void pe__publish_on_signal(int sig) {
  (void)sig;
  pe__publish_stop = 1;
}

static void pe__publish_log(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, "pattern-engine publish: %s\n", line);
}

/* Flags -> publish config. Returns an exit code. */
static int pe__publish_config(const pe_cli_command_t *cmd,
                              pe_publish_config_t *c) {
  memset(c, 0, sizeof *c);
  c->source.path = pe_cli_value(cmd, "ticks");
  c->redis_url = pe_cli_value(cmd, "redis");
  c->stream = pe_cli_value(cmd, "ticks-stream");
  c->stop = &pe__publish_stop;
  c->source.stop = &pe__publish_stop;
  c->log = pe__publish_log;
  if (pe_cli_u32(cmd, "pipeline", &c->batch) != PE_EXIT_OK ||
      pe_cli_u64(cmd, "maxlen", &c->maxlen) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (c->batch == 0 || c->batch > 100000) {
    pe_cli_error(cmd, "--pipeline must be 1..100000");
    return PE_EXIT_USAGE;
  }
  const char *ids = pe_cli_value(cmd, "ids");
  if (strcmp(ids, "explicit") != 0 && strcmp(ids, "auto") != 0) {
    pe_cli_error(cmd, "--ids: '%s' is not explicit or auto", ids);
    return PE_EXIT_USAGE;
  }
  c->auto_ids = strcmp(ids, "auto") == 0;
  if (pe_cli_is_set(cmd, "partitions")) {
    if (pe_cli_u32(cmd, "partitions", &c->partitions) != PE_EXIT_OK ||
        c->partitions == 0 || c->partitions > PE_PARTITION_MAX) {
      pe_cli_error(cmd, "--partitions must be 1..%u", PE_PARTITION_MAX);
      return PE_EXIT_USAGE;
    }
    if (c->auto_ids) {
      pe_cli_error(cmd, "--partitions needs --ids explicit (a batch resent "
                        "after a failover must not be added twice)");
      return PE_EXIT_USAGE;
    }
    if (!pe_cli_is_set(cmd, "pipeline")) {
      c->batch = 10000; /* a round is split over partitions and masters */
    }
    c->partition_weights = pe_cli_value(cmd, "partition-weights");
    c->hot_symbols = pe_cli_value(cmd, "hot-symbols");
  } else if (pe_cli_is_set(cmd, "partition-weights") ||
             pe_cli_is_set(cmd, "hot-symbols")) {
    pe_cli_error(cmd, "--partition-weights and --hot-symbols need "
                      "--partitions");
    return PE_EXIT_USAGE;
  }
  if (pe_cli_is_set(cmd, "rate") && pe_cli_is_set(cmd, "speed")) {
    pe_cli_error(cmd, "give --rate or --speed, not both");
    return PE_EXIT_USAGE;
  }
  if (pe_cli_is_set(cmd, "rate") &&
      (pe_cli_double(cmd, "rate", &c->rate) != PE_EXIT_OK || !(c->rate > 0))) {
    pe_cli_error(cmd, "--rate must be a positive number of ticks/s");
    return PE_EXIT_USAGE;
  }
  if (pe_cli_is_set(cmd, "speed") &&
      (pe_cli_double(cmd, "speed", &c->speed) != PE_EXIT_OK ||
       !(c->speed > 0))) {
    pe_cli_error(cmd, "--speed must be a positive factor");
    return PE_EXIT_USAGE;
  }
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &c->source.csv.ts_unit) !=
      PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    return PE_EXIT_USAGE;
  }
  return PE_EXIT_OK;
}

static void pe__publish_summary(const pe_publish_t *pub, const char *stream) {
  pe_publish_stats_t st;
  pe_publish_stats(pub, &st);
  uint64_t rej = 0;
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    rej += st.rejected[i];
  }
  if (st.partitions > 0) {
    fprintf(stderr, "publish %s -> %s:{p0..p%u} on %u master%s (map %s)\n",
            pe_publish_input(pub), PE_PARTITION_TICKS, st.partitions - 1,
            st.masters, st.masters == 1 ? "" : "s", st.map_digest);
  } else {
    fprintf(stderr, "publish %s -> %s\n", pe_publish_input(pub), stream);
  }
  fprintf(stderr, "  rows         %llu\n", (unsigned long long)st.rows);
  fprintf(stderr, "  published    %llu\n", (unsigned long long)st.published);
  fprintf(stderr, "  rejected     %llu", (unsigned long long)rej);
  const char *sep = " (";
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    if (st.rejected[i]) {
      fprintf(stderr, "%s%s %llu", sep, pe_reject_name(i),
              (unsigned long long)st.rejected[i]);
      sep = ", ";
    }
  }
  fputs(rej ? ")\n" : "\n", stderr);
  fprintf(stderr, "  duplicates   %llu (already in the stream)\n",
          (unsigned long long)st.duplicates);
  fprintf(stderr, "  reconnects   %llu\n", (unsigned long long)st.reconnects);
  if (st.partitions > 0) {
    fprintf(stderr, "  resent       %llu batches\n",
            (unsigned long long)st.resent);
  }
  fprintf(stderr, "  wall time    %.3f s\n", st.wall_s);
  fprintf(stderr, "  throughput   %.0f ticks/s\n",
          st.wall_s > 0 ? (double)st.published / st.wall_s : 0.0);
}

static int pe__publish_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  pe_publish_config_t config;
  rc = pe__publish_config(cmd, &config);
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  pe_publish_t *pub = NULL;
  char err[768];
  int prc = pe_publish_create(&config, &pub, err, sizeof err);
  if (prc == PE_EINVAL && config.partitions == 0) {
    pe_cli_error(cmd, "--redis: %s", err);
    return PE_EXIT_USAGE;
  }
  if (prc == PE_EINVAL) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_USAGE;
  }
  if (prc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  pe_cli_catch_stop(pe__publish_on_signal);
  prc = pe_publish_run(pub);
  rc = PE_EXIT_FAIL;
  if (prc != PE_OK && prc != PE_EAGAIN) {
    int writer = prc == PE_ESTATE && config.partitions == 0;
    pe_cli_error(cmd, "%s%s", pe_publish_errmsg(pub),
                 writer ? ". --ids explicit needs to be the only "
                          "writer; use --ids auto otherwise"
                        : "");
  } else {
    if (!pe_cli_is_set(cmd, "quiet")) {
      pe__publish_summary(pub, config.stream);
    }
    if (prc == PE_EAGAIN) {
      pe_publish_stats_t st;
      pe_publish_stats(pub, &st);
      pe_cli_error(cmd, "stopped by a signal after %llu ticks",
                   (unsigned long long)st.published);
    } else {
      rc = PE_EXIT_OK;
    }
  }
  pe_publish_destroy(pub);
  return rc;
}

const pe_cli_command_t pe_cli_publish = {
    .name = "publish",
    .summary = "Publish a tick CSV file into a Redis Stream",
    .usage = "publish --ticks FILE [--redis URL] [--rate N | --speed X]",
    .details =
        "Reads the file as replay does (rows replay would reject at parsing\n"
        "are counted and left out) and adds one entry per tick with fields\n"
        "symbol, price, volume, timestamp (integer ns) and recv_ts when the\n"
        "file has one. Exit status 0 when every tick was published.\n"
        "\n"
        "With --partitions P, a tick goes to ticks:{pN}, N the partition of\n"
        "its symbol (FNV-1a 64 of the symbol mod P, or the packing of\n"
        "--partition-weights), on a single node or a Redis Cluster whose\n"
        "slot map is read from the --redis node. The map is stored once in\n"
        "pe:partitions; a publisher whose map differs is refused, naming\n"
        "both digests. Batches lost to a dropped connection or a failover\n"
        "are sent again for up to 60 s: no tick is lost or doubled.\n"
        "\n"
        "examples:\n"
        "  pattern-engine publish --ticks fixtures/sample_ticks.csv --redis "
        "redis://127.0.0.1:6379/0\n"
        "  pattern-engine publish --ticks trades.csv --speed 10\n"
        "  pattern-engine publish --ticks trades.csv --rate 10000 "
        "--ticks-stream ticks:test\n"
        "  pattern-engine publish --ticks trades.csv --partitions 16 --redis "
        "redis://10.0.0.5:7000/0\n"
        "  pattern-engine publish --ticks trades.csv --partitions 16 "
        "--partition-weights weights.csv --hot-symbols BTCUSDT,ETHUSDT\n",
    .flags = pe__publish_flags,
    .n_flags = sizeof pe__publish_flags / sizeof pe__publish_flags[0],
    .run = pe__publish_run,
};
