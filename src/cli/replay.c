/* `pattern-engine replay`: a tick file through the engine, signals out.
 *
 * The file is mapped (or read in --read-size chunks) and fed to the CSV
 * parser, which hands over parsed ticks in batches (pe_csv_feed_batch,
 * up to PE_CSV_BATCH, in line order with the rejects between them);
 * pe_engine_push_batch pushes each batch in order (their symbols' table
 * entries and states start loading together first), timed with the cycle
 * counter into a histogram. Nothing on this path allocates. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "io/textfmt.h"
#include "pe/clock.h"
#include "pe/csv.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/hist.h"
#include "pe/sink.h"

static pe_cli_flag_t pe__replay_flags[] = {
    {"ticks", "PATH", NULL, "-",
     "tick CSV file; - or left out reads standard input", NULL},
    {"ts-unit", "UNIT", NULL, "auto",
     "epoch timestamp unit: auto (by magnitude), s, ms, us or ns", NULL},
    {"out", "PATH", NULL, "-", "where signals go; - is standard output", NULL},
    {"format", "FMT", NULL, "csv", "signal format: csv or jsonl", NULL},
    {"features-out", "PATH", NULL, NULL,
     "write one CSV row of features per accepted tick", NULL},
    {"rejects", "PATH", NULL, NULL,
     "write each rejected row as line,reason,raw line", NULL},
    {"on-error", "MODE", NULL, "skip",
     "skip: count and drop bad rows; fail: stop at the first", NULL},
    PE_CLI_ENGINE_FLAGS,
    PE_CLI_MODEL_FLAGS,
    {"state-out", "PATH", NULL, NULL,
     "write the final engine state (a snapshot) to PATH", NULL},
    {"summary-json", "PATH", NULL, NULL,
     "write the end-of-run summary as JSON to PATH", NULL},
    {"read-size", "BYTES", NULL, "1048576",
     "bytes per read of the input (any size gives the same output)", NULL},
    {"latency-sample", "N", NULL, "16",
     "time the pushes of one batch of 16 ticks in N, each tick exactly "
     "(1: every tick, at about a third of the throughput)",
     NULL},
    {"quiet", NULL, NULL, NULL, "no progress bar and no summary", NULL},
};

typedef struct pe__replay {
  const pe_cli_command_t *cmd;
  const char *input;
  pe_engine_t *engine;
  pe_sink_t *sink;
  FILE *features;
  FILE *rejects;
  int fail_fast;
  uint64_t rows;
  uint64_t parse_rejected[PE_REJECT_COUNT];
  pe_hist_t latency; /* cycles of each timed tick's push: see pe__on_ticks */
  uint32_t latency_sample; /* time one batch in this many */
  uint32_t batches_seen;   /* since the last timed one */
  pe_tick_out_t out;
  const pe_tick_t *batch; /* the batch being pushed, and its rows */
  const pe_csv_row_t *batch_rows;
  char line[4096];
  /* progress */
  int progress;
  uint64_t bytes_total;
  uint64_t bytes_done;
  uint64_t next_check;
  uint64_t last_draw_ns;
  uint64_t start_ns;
} pe__replay_t;

static void pe__record_reject(pe__replay_t *r, int err, uint64_t line_no,
                              const char *line, size_t len) {
  if (r->rejects != NULL) {
    fprintf(r->rejects, "%llu,%s,%.*s\n", (unsigned long long)line_no,
            pe_reject_name(pe_reject_from_error(err)), (int)len, line);
  }
}

static int pe__fail(pe__replay_t *r, int err, uint64_t line_no,
                    const char *line, size_t len) {
  pe_cli_error(r->cmd, "%s:%llu: %s (%s): %.*s", r->input,
               (unsigned long long)line_no,
               pe_reject_name(pe_reject_from_error(err)), pe_strerror(err),
               (int)(len > 200 ? 200 : len), line);
  return PE_EXIT_FAIL;
}

static void pe__draw_progress(pe__replay_t *r, int final);

/* What follows an accepted or rejected push: signals and features out, an
 * engine rejection recorded, or the error that stops the run. */
static int pe__after_push(pe__replay_t *r, int rc, const pe_tick_t *tick,
                          uint64_t line_no, const char *line, size_t len) {
  if (rc == PE_OK) {
    if (r->features != NULL) {
      size_t n = pe_features_format(tick, &r->out, r->line, sizeof r->line);
      fwrite(r->line, 1, n < sizeof r->line ? n : sizeof r->line - 1,
             r->features);
    }
    for (uint32_t i = 0; i < r->out.n_signals; i++) {
      if (pe_sink_write(r->sink, &r->out.signal[i]) != PE_OK) {
        pe_cli_error(r->cmd, "cannot write signals: %s", strerror(errno));
        return PE_EXIT_FAIL;
      }
    }
  } else if (pe_reject_from_error(rc) >= 0) {
    pe__record_reject(r, rc, line_no, line, len);
    if (r->fail_fast) {
      return pe__fail(r, rc, line_no, line, len);
    }
  } else if (rc == PE_EFULL) {
    pe_cli_error(r->cmd,
                 "%s:%llu: the symbol table is full (%s symbols); raise "
                 "--max-symbols",
                 r->input, (unsigned long long)line_no,
                 pe_cli_value(r->cmd, "max-symbols"));
    return PE_EXIT_FAIL;
  } else {
    pe_cli_error(r->cmd, "%s:%llu: %s", r->input, (unsigned long long)line_no,
                 pe_engine_errmsg(r->engine));
    return PE_EXIT_FAIL;
  }
  return 0;
}

/* pe_engine_push_batch's `each`: a push that was rejected, made signals or
 * has features to write. */
static int pe__each(void *ctx, uint32_t i, int rc, const pe_tick_out_t *out) {
  pe__replay_t *r = ctx;
  (void)out; /* r->out */
  const pe_csv_row_t *row = &r->batch_rows[i];
  return pe__after_push(r, rc, &r->batch[i], row->line_no, row->line, row->len);
}

/* A batch of parsed ticks, pushed in order, stopping at the first that
 * stops the run. Hot path.
 *
 * Latency: the engine reads the cycle counter once after every push and
 * gives each tick the time its own push took (the first tick of a batch
 * also carries the batch's prefetch); each tick's figure goes into the
 * histogram. Writing a push's signals or features is not counted. Only
 * one batch in --latency-sample N (default 16) is timed, its every tick
 * exactly: a counter read after every push keeps each push from overlapping
 * the next, which costs about a third of the throughput when every tick
 * is timed (N = 1). */
static int pe__on_ticks(void *ctx, const pe_tick_t *ticks,
                        const pe_csv_row_t *rows, uint32_t n) {
  pe__replay_t *r = ctx;
  r->rows += n;
  r->batch = ticks;
  r->batch_rows = rows;
  uint32_t pushed = 0;
  uint64_t cycles[PE_ENGINE_BATCH_MAX];
  int timed = ++r->batches_seen >= r->latency_sample;
  if (timed) {
    r->batches_seen = 0;
  }
  int stop = pe_engine_push_batch(r->engine, ticks, n, &r->out,
                                  r->features != NULL ? PE_ENGINE_EACH_ALL : 0,
                                  pe__each, r, &pushed, timed ? cycles : NULL);
  for (uint32_t i = 0; timed && i < pushed; i++) {
    pe_hist_record(&r->latency, cycles[i]);
  }
  if (stop == 0 && r->progress && r->rows >= r->next_check) {
    r->next_check = r->rows + (1u << 16);
    pe__draw_progress(r, 0);
  }
  return stop;
}

static int pe__on_reject(void *ctx, int err, uint64_t line_no, const char *line,
                         size_t len) {
  pe__replay_t *r = ctx;
  r->rows += 1;
  (void)pe_reject_count(r->parse_rejected, err);
  pe__record_reject(r, err, line_no, line, len);
  return r->fail_fast ? pe__fail(r, err, line_no, line, len) : 0;
}

static void pe__draw_progress(pe__replay_t *r, int final) {
  uint64_t now = pe_clock_ns();
  if (!final && now - r->last_draw_ns < 100000000u) {
    return;
  }
  r->last_draw_ns = now;
  double frac =
      r->bytes_total ? (double)r->bytes_done / (double)r->bytes_total : 0.0;
  if (frac > 1.0) {
    frac = 1.0;
  }
  char bar[31];
  int fill = (int)(frac * 30.0);
  for (int i = 0; i < 30; i++) {
    bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
  }
  bar[30] = '\0';
  double secs = (double)(now - r->start_ns) * 1e-9;
  fprintf(stderr, "\r[%s] %5.1f%% %llu ticks %.2fM ticks/s", bar, frac * 100.0,
          (unsigned long long)r->rows,
          secs > 0 ? (double)r->rows / secs * 1e-6 : 0.0);
  if (final) {
    fputs("\r\033[K", stderr);
  }
  fflush(stderr);
}

typedef struct pe__totals {
  uint64_t rejected[PE_REJECT_COUNT];
  uint64_t rejected_all;
  pe_engine_stats_t stats;
  double wall_s;
  double p50_ns, p99_ns, p999_ns, max_ns;
} pe__totals_t;

static void pe__totals(pe__replay_t *r, double wall_s, pe__totals_t *t) {
  memset(t, 0, sizeof *t);
  pe_engine_stats(r->engine, &t->stats);
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    t->rejected[i] = r->parse_rejected[i] + t->stats.rejected[i];
    t->rejected_all += t->rejected[i];
  }
  t->wall_s = wall_s;
  double cpn = pe_cycles_per_ns();
  t->p50_ns = (double)pe_hist_quantile(&r->latency, 0.50) / cpn;
  t->p99_ns = (double)pe_hist_quantile(&r->latency, 0.99) / cpn;
  t->p999_ns = (double)pe_hist_quantile(&r->latency, 0.999) / cpn;
  t->max_ns = (double)r->latency.max / cpn;
}

static void pe__print_summary(pe__replay_t *r, const pe__totals_t *t) {
  FILE *o = stderr;
  fprintf(o, "replay %s\n", r->input);
  fprintf(o, "  ticks read   %llu\n", (unsigned long long)r->rows);
  fprintf(o, "  accepted     %llu\n", (unsigned long long)t->stats.ticks);
  fprintf(o, "  rejected     %llu", (unsigned long long)t->rejected_all);
  const char *sep = " (";
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    if (t->rejected[i] != 0) {
      fprintf(o, "%s%s %llu", sep, pe_reject_name(i),
              (unsigned long long)t->rejected[i]);
      sep = ", ";
    }
  }
  fputs(t->rejected_all ? ")\n" : "\n", o);
  fprintf(o, "  symbols      %u\n", t->stats.symbols);
  uint64_t all = 0;
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    all += t->stats.signals[i];
  }
  fprintf(o, "  signals      %llu", (unsigned long long)all);
  sep = " (";
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    if (t->stats.signals[i] != 0) {
      fprintf(o, "%s%s %llu", sep,
              i < PE_RULE_COUNT ? pe_rule_name(i) : "model",
              (unsigned long long)t->stats.signals[i]);
      sep = ", ";
    }
  }
  fputs(all ? ")\n" : "\n", o);
  if (t->stats.inferences > 0) {
    fprintf(o, "  inferences   %llu\n",
            (unsigned long long)t->stats.inferences);
  }
  fprintf(o, "  wall time    %.3f s\n", t->wall_s);
  fprintf(o, "  throughput   %.0f ticks/s\n",
          t->wall_s > 0 ? (double)r->rows / t->wall_s : 0.0);
  fprintf(o,
          "  latency/tick p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns"
          " (each tick's own engine push; %llu ticks timed: ",
          t->p50_ns, t->p99_ns, t->p999_ns, t->max_ns,
          (unsigned long long)r->latency.count);
  if (r->latency_sample == 1) {
    fputs("every tick)\n", o);
  } else {
    fprintf(o, "one batch of %u in %u, --latency-sample)\n", PE_CSV_BATCH,
            r->latency_sample);
  }
}

static int pe__write_summary_json(pe__replay_t *r, const pe__totals_t *t,
                                  const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    pe_cli_error(r->cmd, "cannot write '%s': %s", path, strerror(errno));
    return PE_EXIT_FAIL;
  }
  char input[4096]; /* a path as JSON; PATH_MAX bytes */
  size_t n = 0;
  pe__put_json_str(input, sizeof input, &n, r->input);
  input[n < sizeof input ? n : sizeof input - 1] = '\0';
  fprintf(f, "{\"input\":%s,\"rows\":%llu,\"accepted\":%llu,", input,
          (unsigned long long)r->rows, (unsigned long long)t->stats.ticks);
  fprintf(f, "\"rejected_total\":%llu,\"rejected\":{",
          (unsigned long long)t->rejected_all);
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    fprintf(f, "%s\"%s\":%llu", i ? "," : "", pe_reject_name(i),
            (unsigned long long)t->rejected[i]);
  }
  fprintf(f, "},\"symbols\":%u,\"signals\":{", t->stats.symbols);
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    fprintf(f, "%s\"%s\":%llu", i ? "," : "",
            i < PE_RULE_COUNT ? pe_rule_name(i) : "model",
            (unsigned long long)t->stats.signals[i]);
  }
  fprintf(f,
          "},\"inferences\":%llu,\"wall_s\":%.6f,\"bytes_per_symbol\":%zu,"
          "\"latency_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
          "\"max\":%.1f},\"latency_timed\":%llu,\"latency_sample\":%u}\n",
          (unsigned long long)t->stats.inferences, t->wall_s,
          pe_engine_bytes_per_symbol(r->engine), t->p50_ns, t->p99_ns,
          t->p999_ns, t->max_ns, (unsigned long long)r->latency.count,
          r->latency_sample);
  return fclose(f) == 0 ? PE_EXIT_OK : PE_EXIT_FAIL;
}

static int pe__write_state(pe__replay_t *r, const char *path) {
  size_t size = pe_engine_snapshot_size(r->engine);
  void *buf = malloc(size);
  size_t len = 0;
  int rc = buf ? pe_engine_snapshot(r->engine, buf, size, &len) : PE_ENOMEM;
  if (rc == PE_OK) {
    rc = pe_cli_write_file(path, buf, len);
  }
  free(buf);
  if (rc != PE_OK) {
    pe_cli_error(r->cmd, "cannot write the state to '%s': %s", path,
                 pe_strerror(rc));
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

static int pe__feed_done(pe__replay_t *r, pe_csv_t *csv, int rc,
                         const pe_csv_batch_handler_t *h) {
  if (rc == 0) {
    rc = pe_csv_finish_batch(csv, h);
  }
  if (rc == PE_EHEADER) {
    pe_cli_error(r->cmd, "%s: %s", r->input, pe_csv_errmsg(csv));
    return PE_EXIT_FAIL;
  }
  return rc;
}

/* A regular file is mapped and parsed in place, `size` bytes a feed, which
 * spares the copy into a read buffer. Returns -1 when it cannot be mapped. */
static int pe__feed_mapped(pe__replay_t *r, int fd, pe_csv_t *csv, size_t size,
                           const pe_csv_batch_handler_t *h) {
  if (r->bytes_total == 0 || r->bytes_total > SIZE_MAX) {
    return -1;
  }
  size_t len = (size_t)r->bytes_total;
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    return -1;
  }
  posix_madvise(map, len, POSIX_MADV_SEQUENTIAL);
  const char *data = map;
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0; off += size) {
    size_t n = len - off < size ? len - off : size;
    r->bytes_done += n;
    rc = pe_csv_feed_batch(csv, data + off, n, h);
  }
  rc = pe__feed_done(r, csv, rc, h);
  munmap(map, len);
  return rc;
}

/* Reads the input and feeds the parser until the end or a stop. */
static int pe__feed_all(pe__replay_t *r, int fd, pe_csv_t *csv, char *buf,
                        size_t size, const pe_csv_batch_handler_t *h) {
  int mapped = pe__feed_mapped(r, fd, csv, size, h);
  if (mapped != -1) {
    return mapped;
  }
  for (;;) {
    ssize_t n = read(fd, buf, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      pe_cli_error(r->cmd, "cannot read '%s': %s", r->input, strerror(errno));
      return PE_EXIT_FAIL;
    }
    if (n == 0) {
      break;
    }
    r->bytes_done += (uint64_t)n;
    int rc = pe_csv_feed_batch(csv, buf, (size_t)n, h);
    if (rc != 0) {
      return pe__feed_done(r, csv, rc, h);
    }
  }
  return pe__feed_done(r, csv, 0, h);
}

static FILE *pe__open_out(pe__replay_t *r, const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    pe_cli_error(r->cmd, "cannot write '%s': %s", path, strerror(errno));
  }
  return f;
}

static int pe__replay_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }

  pe__replay_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    pe_cli_error(cmd, "out of memory");
    return PE_EXIT_FAIL;
  }
  r->cmd = cmd;
  pe_hist_init(&r->latency);
  pe_engine_config_t config;
  pe_csv_options_t csv_opt;
  memset(&csv_opt, 0, sizeof csv_opt);
  pe_format_t format;
  uint64_t read_size = 0;
  pe_csv_t *csv = NULL;
  pe_backend_t *backend = NULL;
  char *buf = NULL;
  int fd = -1;

  rc = pe_cli_engine_config(cmd, &config);
  if (rc != PE_EXIT_OK) {
    goto done;
  }
  /* The features beyond the rules' are computed for whoever reads them:
   * --features-out here, or a model's windows (the engine turns them on). */
  config.all_features = pe_cli_is_set(cmd, "features-out") ? 1u : 0u;
  rc = PE_EXIT_USAGE;
  const char *on_error = pe_cli_value(cmd, "on-error");
  if (strcmp(on_error, "skip") != 0 && strcmp(on_error, "fail") != 0) {
    pe_cli_error(cmd, "--on-error: '%s' is not skip or fail", on_error);
    goto done;
  }
  r->fail_fast = strcmp(on_error, "fail") == 0;
  if (pe_format_parse(pe_cli_value(cmd, "format"), &format) != PE_OK) {
    pe_cli_error(cmd, "--format: '%s' is not csv or jsonl",
                 pe_cli_value(cmd, "format"));
    goto done;
  }
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &csv_opt.ts_unit) !=
      PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    goto done;
  }
  if (pe_cli_u64(cmd, "read-size", &read_size) != PE_EXIT_OK) {
    goto done;
  }
  if (read_size == 0 || read_size > (1u << 30)) {
    pe_cli_error(cmd, "--read-size must be between 1 and 2^30 bytes");
    goto done;
  }
  if (pe_cli_u32(cmd, "latency-sample", &r->latency_sample) != PE_EXIT_OK) {
    goto done;
  }
  if (r->latency_sample == 0) {
    pe_cli_error(cmd, "--latency-sample must be at least 1");
    goto done;
  }
  /* The first batch is timed, so that a short file still gets figures. */
  r->batches_seen = r->latency_sample - 1;

  rc = PE_EXIT_FAIL;
  char err[512];
  if (pe_engine_create(&config, &r->engine, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    rc = PE_EXIT_USAGE;
    goto done;
  }
  rc = pe_cli_open_backend(cmd, r->engine, &backend);
  if (rc != PE_EXIT_OK) {
    goto done;
  }
  rc = PE_EXIT_FAIL;
  r->input = pe_cli_value(cmd, "ticks");
  if (strcmp(r->input, "-") == 0) {
    fd = 0;
    r->input = "<stdin>";
  } else {
    fd = open(r->input, O_RDONLY);
    if (fd < 0) {
      pe_cli_error(cmd, "cannot read '%s': %s; check the path given to --ticks",
                   r->input, strerror(errno));
      goto done;
    }
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    r->bytes_total = (uint64_t)st.st_size;
  }
  r->progress = !pe_cli_is_set(cmd, "quiet") && isatty(2) && r->bytes_total > 0;
  if (pe_sink_open_file(pe_cli_value(cmd, "out"), format, &r->sink, err,
                        sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    goto done;
  }
  if (pe_cli_is_set(cmd, "features-out")) {
    r->features = pe__open_out(r, pe_cli_value(cmd, "features-out"));
    if (r->features == NULL) {
      goto done;
    }
    fputs(pe_features_csv_header(), r->features);
  }
  if (pe_cli_is_set(cmd, "rejects")) {
    r->rejects = pe__open_out(r, pe_cli_value(cmd, "rejects"));
    if (r->rejects == NULL) {
      goto done;
    }
    fputs("line,reason,raw\n", r->rejects);
  }
  buf = malloc(read_size);
  if (buf == NULL || pe_csv_create(&csv_opt, &csv) != PE_OK) {
    pe_cli_error(cmd, "out of memory");
    goto done;
  }

  pe_csv_batch_handler_t handler = {r, pe__on_ticks, pe__on_reject};
  (void)pe_cycles_per_ns(); /* calibrate before the clock starts */
  r->start_ns = pe_clock_ns();
  r->next_check = 1u << 16;
  rc = pe__feed_all(r, fd, csv, buf, read_size, &handler);
  double wall_s = (double)(pe_clock_ns() - r->start_ns) * 1e-9;
  if (r->progress) {
    pe__draw_progress(r, 1);
  }
  if (rc != 0) {
    rc = PE_EXIT_FAIL;
    goto done;
  }
  if (pe_sink_close(r->sink) != PE_OK) {
    r->sink = NULL;
    pe_cli_error(cmd, "cannot write signals to '%s'", pe_cli_value(cmd, "out"));
    goto done;
  }
  r->sink = NULL;

  rc = PE_EXIT_FAIL;
  pe__totals_t totals;
  pe__totals(r, wall_s, &totals);
  if (!pe_cli_is_set(cmd, "quiet")) {
    pe__print_summary(r, &totals);
  }
  if (pe_cli_is_set(cmd, "summary-json") &&
      pe__write_summary_json(r, &totals, pe_cli_value(cmd, "summary-json")) !=
          PE_EXIT_OK) {
    goto done;
  }
  if (pe_cli_is_set(cmd, "state-out") &&
      pe__write_state(r, pe_cli_value(cmd, "state-out")) != PE_EXIT_OK) {
    goto done;
  }
  if (totals.stats.ticks == 0) {
    if (r->rows == 0) {
      pe_cli_error(cmd,
                   "%s holds no tick rows; expected CSV lines "
                   "ts,symbol,price,volume (a header is optional)",
                   r->input);
    } else {
      pe_cli_error(cmd,
                   "%s: none of its %llu rows is a valid tick; rerun with "
                   "--rejects PATH to see each row's reason",
                   r->input, (unsigned long long)r->rows);
    }
    goto done;
  }
  rc = PE_EXIT_OK;

done:
  if (r->features != NULL && fclose(r->features) != 0 && rc == PE_EXIT_OK) {
    pe_cli_error(cmd, "cannot write the features file");
    rc = PE_EXIT_FAIL;
  }
  if (r->rejects != NULL && fclose(r->rejects) != 0 && rc == PE_EXIT_OK) {
    pe_cli_error(cmd, "cannot write the rejects file");
    rc = PE_EXIT_FAIL;
  }
  pe_sink_close(r->sink);
  if (fd > 0) {
    close(fd);
  }
  free(buf);
  pe_csv_destroy(csv);
  pe_engine_destroy(r->engine);
  pe_backend_close(backend);
  free(r);
  return rc;
}

const pe_cli_command_t pe_cli_replay = {
    .name = "replay",
    .summary = "Replay a tick CSV file through the engine and print signals",
    .usage = "replay [--ticks PATH] [FLAGS]",
    .details =
        "Columns are found by header name in any order (ts|timestamp|time,\n"
        "symbol, price, volume|size|qty, optional recv_ts); a file without a\n"
        "header is read as ts,symbol,price,volume. Timestamps: epoch s, ms,\n"
        "us or ns (integer or fractional) or ISO-8601 with Z or an offset.\n"
        "Bad rows are counted by reason (field_count, bad_number,\n"
        "bad_timestamp, bad_price, bad_volume, empty_symbol, symbol_too_long,\n"
        "out_of_order, line_too_long). The summary goes to standard error.\n"
        "\n"
        "examples:\n"
        "  pattern-engine replay --ticks fixtures/sample_ticks.csv\n"
        "  pattern-engine replay --ticks trades.csv --format jsonl --out "
        "signals.jsonl \\\n"
        "      --features-out features.csv --rejects rejects.csv\n"
        "  zcat trades.csv.gz | pattern-engine replay --on-error fail "
        "--session-reset 13:30\n"
        "  pattern-engine replay --ticks fixtures/sample_ticks.csv --backend "
        "stub --window 32\n",
    .flags = pe__replay_flags,
    .n_flags = sizeof pe__replay_flags / sizeof pe__replay_flags[0],
    .run = pe__replay_run,
};
