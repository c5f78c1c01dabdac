/* `pattern-engine replay`: a tick file through the engine, signals out.
 *
 * The flags become an engine and a pipeline config (pe/pipeline.h), which
 * does the work; this file prints the progress bar, the summary and the
 * end-of-run files (--summary-json, --state-out).
 *
 * A regular input file is mapped (one copy fewer than read(2)). A file
 * truncated underneath a mapping raises SIGBUS at the first access past
 * its new end; the handler here turns that into the same message and exit
 * status as a truncation seen by read(2). The outputs are written to
 * TARGET.tmp and renamed at the end, so the real outputs are untouched;
 * the handler may only call async-signal-safe functions, so a .tmp file
 * stays behind in that case. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "io/textfmt.h"
#include "pe/clock.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/hist.h"
#include "pe/pipeline.h"
#include "pe/sink.h"

static pe_cli_flag_t pe__replay_flags[] = {
    {"ticks", "PATH", NULL, "-",
     "tick CSV file; - or left out reads standard input", NULL},
    {"ts-unit", "UNIT", NULL, "auto",
     "epoch timestamp unit: auto (by magnitude), s, ms, us or ns", NULL},
    {"out", "PATH", NULL, "-", "where signals go; - is standard output", NULL},
    {"format", "FMT", NULL, "csv", "signal format: csv or jsonl", NULL},
    {"features-out", "PATH", NULL, NULL,
     "write one CSV row of features per accepted tick; a PATH ending in .npy "
     "gets one float64 array, with PATH's .columns.txt and .symbols.csv "
     "beside it",
     NULL},
    {"features-threads", "N", NULL, "auto",
     "threads for --features-out (the same bytes whatever N): N engines, "
     "each over a share of the symbols, formatting and writing their rows "
     "(N threads formatting one engine's rows with a model, --state-out or "
     "--on-error fail); 0: none, the replay's own thread does it all; auto: "
     "one per CPU but two, 0 on 2 CPUs or fewer",
     NULL},
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

typedef struct pe__progress {
  uint64_t start_ns;
  uint64_t last_draw_ns;
} pe__progress_t;

static void pe__draw_progress(pe__progress_t *pr, const pe_pipeline_t *p,
                              int final) {
  uint64_t now = pe_clock_ns();
  if (!final && now - pr->last_draw_ns < 100000000u) {
    return;
  }
  pr->last_draw_ns = now;
  pe_pipeline_stats_t st;
  pe_pipeline_stats(p, &st);
  if (st.bytes_total == 0) {
    return; /* no size to show the progress against */
  }
  double frac =
      st.bytes_total ? (double)st.bytes_done / (double)st.bytes_total : 0.0;
  if (frac > 1.0) {
    frac = 1.0;
  }
  char bar[31];
  int fill = (int)(frac * 30.0);
  for (int i = 0; i < 30; i++) {
    bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
  }
  bar[30] = '\0';
  double secs = (double)(now - pr->start_ns) * 1e-9;
  fprintf(stderr, "\r[%s] %5.1f%% %llu ticks %.2fM ticks/s", bar, frac * 100.0,
          (unsigned long long)st.rows,
          secs > 0 ? (double)st.rows / secs * 1e-6 : 0.0);
  if (final) {
    fputs("\r\033[K", stderr);
  }
  fflush(stderr);
}

static void pe__on_progress(void *ctx, const pe_pipeline_t *p) {
  pe__draw_progress(ctx, p, 0);
}

/* The run's figures, latency quantiles in ns. */
typedef struct pe__totals {
  pe_pipeline_stats_t st;
  const pe_hist_t *latency;
  uint32_t latency_sample;
  double p50_ns, p99_ns, p999_ns, max_ns;
  pe_engine_batch_stats_t batch; /* model batches (--max-batch) */
  int split; /* --features-threads N > 0: stages holds the threads' times */
  pe_pipeline_stages_t stages;
} pe__totals_t;

static void pe__totals(const pe_pipeline_t *p, const pe_engine_t *engine,
                       uint32_t latency_sample, pe__totals_t *t) {
  memset(t, 0, sizeof *t);
  pe_pipeline_stats(p, &t->st);
  t->split = pe_pipeline_stages(p, &t->stages);
  pe_engine_batch_stats(engine, &t->batch);
  t->latency = pe_pipeline_latency(p);
  t->latency_sample = latency_sample;
  double cpn = pe_cycles_per_ns();
  t->p50_ns = (double)pe_hist_quantile(t->latency, 0.50) / cpn;
  t->p99_ns = (double)pe_hist_quantile(t->latency, 0.99) / cpn;
  t->p999_ns = (double)pe_hist_quantile(t->latency, 0.999) / cpn;
  t->max_ns = (double)t->latency->max / cpn;
}

static void pe__print_summary(const char *input, const pe__totals_t *t) {
  FILE *o = stderr;
  const pe_engine_stats_t *es = &t->st.engine;
  fprintf(o, "replay %s\n", input);
  fprintf(o, "  ticks read   %llu\n", (unsigned long long)t->st.rows);
  fprintf(o, "  accepted     %llu\n", (unsigned long long)es->ticks);
  fprintf(o, "  rejected     %llu", (unsigned long long)t->st.rejected_all);
  const char *sep = " (";
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    if (t->st.rejected[i] != 0) {
      fprintf(o, "%s%s %llu", sep, pe_reject_name(i),
              (unsigned long long)t->st.rejected[i]);
      sep = ", ";
    }
  }
  fputs(t->st.rejected_all ? ")\n" : "\n", o);
  fprintf(o, "  symbols      %u\n", es->symbols);
  uint64_t all = 0;
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    all += es->signals[i];
  }
  fprintf(o, "  signals      %llu", (unsigned long long)all);
  sep = " (";
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    if (es->signals[i] != 0) {
      fprintf(o, "%s%s %llu", sep,
              i < PE_RULE_COUNT ? pe_rule_name(i) : "model",
              (unsigned long long)es->signals[i]);
      sep = ", ";
    }
  }
  fputs(all ? ")\n" : "\n", o);
  if (es->inferences > 0) {
    fprintf(o, "  inferences   %llu\n", (unsigned long long)es->inferences);
  }
  const pe_engine_batch_stats_t *b = &t->batch;
  if (b->runs > 0) {
    fprintf(o,
            "  batches      %llu model runs of %.1f windows on average, "
            "largest %u; by size",
            (unsigned long long)b->runs, (double)b->windows / (double)b->runs,
            b->largest);
    for (uint32_t k = 0; k < PE_ENGINE_BATCH_BUCKETS; k++) {
      if (b->by_size[k] == 0) {
        continue;
      }
      if (k == 0) {
        fprintf(o, " 1: %llu", (unsigned long long)b->by_size[k]);
      } else {
        fprintf(o, " %u-%u: %llu", 1u << k, (2u << k) - 1u,
                (unsigned long long)b->by_size[k]);
      }
    }
    fputc('\n', o);
  }
  if (t->split) {
    const pe_pipeline_stages_t *g = &t->stages;
    fprintf(o,
            "  threads      parse %.3f s CPU (%.3f s waiting); admit %.3f s "
            "CPU (%.3f s waiting for ticks, %.3f s for a window)\n",
            g->parse_cpu_s, g->parse_wait_s, g->admit_cpu_s, g->admit_wait_s,
            g->window_wait_s);
    fprintf(o,
            "               %u engines %.3f s CPU (largest %.3f s): push %.3f "
            "s, format %.3f s, write %.3f s, waiting %.3f s; allocating "
            "ahead %.3f s CPU\n",
            g->engine_threads, g->engine_cpu_s, g->engine_cpu_max_s, g->push_s,
            g->format_s, g->write_s, g->wait_s, g->reserve_cpu_s);
  }
  fprintf(o, "  wall time    %.3f s\n", t->st.wall_s);
  fprintf(o, "  throughput   %.0f ticks/s\n",
          t->st.wall_s > 0 ? (double)t->st.rows / t->st.wall_s : 0.0);
  fprintf(o,
          "  latency/tick p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns"
          " (each tick's own engine push; %llu ticks timed: ",
          t->p50_ns, t->p99_ns, t->p999_ns, t->max_ns,
          (unsigned long long)t->latency->count);
  if (t->latency_sample == 1) {
    fputs("every tick)\n", o);
  } else {
    fprintf(o, "one batch of %u in %u, --latency-sample)\n", PE_CSV_BATCH,
            t->latency_sample);
  }
}

static void pe__json_summary(FILE *f, const char *input_name,
                             const pe__totals_t *t, size_t bytes_per_symbol) {
  const pe_engine_stats_t *es = &t->st.engine;
  char input[4096]; /* a path as JSON; PATH_MAX bytes */
  size_t n = 0;
  pe__put_json_str(input, sizeof input, &n, input_name);
  input[n < sizeof input ? n : sizeof input - 1] = '\0';
  fprintf(f, "{\"input\":%s,\"rows\":%llu,\"accepted\":%llu,", input,
          (unsigned long long)t->st.rows, (unsigned long long)es->ticks);
  fprintf(f, "\"rejected_total\":%llu,\"rejected\":{",
          (unsigned long long)t->st.rejected_all);
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    fprintf(f, "%s\"%s\":%llu", i ? "," : "", pe_reject_name(i),
            (unsigned long long)t->st.rejected[i]);
  }
  fprintf(f, "},\"symbols\":%u,\"signals\":{", es->symbols);
  for (int i = 0; i <= PE_RULE_COUNT; i++) {
    fprintf(f, "%s\"%s\":%llu", i ? "," : "",
            i < PE_RULE_COUNT ? pe_rule_name(i) : "model",
            (unsigned long long)es->signals[i]);
  }
  fprintf(f,
          "},\"inferences\":%llu,\"wall_s\":%.6f,\"bytes_per_symbol\":%zu,"
          "\"latency_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
          "\"max\":%.1f},\"latency_timed\":%llu,\"latency_sample\":%u,",
          (unsigned long long)es->inferences, t->st.wall_s, bytes_per_symbol,
          t->p50_ns, t->p99_ns, t->p999_ns, t->max_ns,
          (unsigned long long)t->latency->count, t->latency_sample);
  const pe_engine_batch_stats_t *b = &t->batch;
  fprintf(f,
          "\"batches\":{\"runs\":%llu,\"windows\":%llu,\"largest\":%u,"
          "\"by_size\":[",
          (unsigned long long)b->runs, (unsigned long long)b->windows,
          b->largest);
  for (uint32_t k = 0; k < PE_ENGINE_BATCH_BUCKETS; k++) {
    fprintf(f, "%s%llu", k ? "," : "", (unsigned long long)b->by_size[k]);
  }
  fputs("]}}\n", f);
}

/* --summary-json, opened as every output (pe_out_open): every failed
 * write, flush, fsync or rename is reported. */
static int pe__write_summary_json(const pe_cli_command_t *cmd, const char *path,
                                  const char *input, const pe__totals_t *t,
                                  size_t bytes_per_symbol) {
  char err[768];
  pe_out_t *o = NULL;
  if (pe_out_open(path, &o, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "cannot write the summary: %s", err);
    return PE_EXIT_FAIL;
  }
  pe__json_summary(pe_out_file(o), input, t, bytes_per_symbol);
  if (pe_out_close(o, 1, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "cannot write the summary: %s", err);
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

/* What the SIGBUS handler needs, set before the run: the mapped input,
 * and the features output when it is written through a mapping. */
static const char *pe__bus_path;
static size_t pe__bus_path_len;
static const char *pe__bus_start;
static size_t pe__bus_len;
static const char *pe__bus_out_path;
static size_t pe__bus_out_path_len;
static char pe__bus_out_tmp[4096 + 8]; /* the file mapped: PATH.tmp, as
                                          pe_out_open names it */
static const char *pe__bus_out_start;
static size_t pe__bus_out_len;

static void pe__bus_write(const char *text, size_t len) {
  while (len > 0) {
    ssize_t n = write(2, text, len);
    if (n <= 0) {
      return;
    }
    text += n;
    len -= (size_t)n;
  }
}

/* SIGBUS inside the mapped input: it was truncated; inside the mapped
 * features output: its file system could not provide a page (full).
 * Elsewhere: the default action, taken when the faulting access runs
 * again. */
static void pe__on_sigbus(int sig, siginfo_t *info, void *uctx) {
  (void)uctx;
  const char *at = (const char *)info->si_addr;
  if (pe__bus_out_start != NULL && at >= pe__bus_out_start &&
      (size_t)(at - pe__bus_out_start) < pe__bus_out_len) {
    static const char head[] = "pattern-engine replay: cannot write features "
                               "to '";
    static const char tail[] = "': its file system could not take a page "
                               "of it (no space left?)\n";
    pe__bus_write(head, sizeof head - 1);
    pe__bus_write(pe__bus_out_path, pe__bus_out_path_len);
    pe__bus_write(tail, sizeof tail - 1);
    unlink(pe__bus_out_tmp);
    _exit(PE_EXIT_FAIL);
  }
  if (pe__bus_start == NULL || at < pe__bus_start ||
      (size_t)(at - pe__bus_start) >= pe__bus_len) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    return;
  }
  static const char head[] = "pattern-engine replay: '";
  static const char tail[] = "' was truncated while it was read\n";
  pe__bus_write(head, sizeof head - 1);
  pe__bus_write(pe__bus_path, pe__bus_path_len);
  pe__bus_write(tail, sizeof tail - 1);
  _exit(PE_EXIT_FAIL);
}

/* Installs the handler when the input or the features output is mapped;
 * *old gets the action it replaces, restored by pe__sigbus_restore. */
static int pe__sigbus_install(const pe_pipeline_t *p, const char *features,
                              struct sigaction *old) {
  const void *start = NULL;
  size_t len = 0;
  const void *out_start = NULL;
  size_t out_len = 0;
  int in = pe_source_mapping(pe_pipeline_source(p), &start, &len);
  int out = pe_pipeline_features_mapping(p, &out_start, &out_len);
  if (!in && !out) {
    return 0;
  }
  pe__bus_path = pe_pipeline_input(p);
  pe__bus_path_len = strlen(pe__bus_path);
  pe__bus_start = start;
  pe__bus_len = len;
  pe__bus_out_path = features != NULL ? features : "";
  pe__bus_out_path_len = strlen(pe__bus_out_path);
  pe__bus_out_start = out_start;
  pe__bus_out_len = out_len;
  snprintf(pe__bus_out_tmp, sizeof pe__bus_out_tmp, "%s.tmp", pe__bus_out_path);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = pe__on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGBUS, &sa, old) == 0;
}

static void pe__sigbus_restore(int installed, const struct sigaction *old) {
  if (installed) {
    sigaction(SIGBUS, old, NULL);
    pe__bus_start = NULL;
    pe__bus_len = 0;
    pe__bus_out_start = NULL;
    pe__bus_out_len = 0;
  }
}

/* Flags -> engine (with any backend) and pipeline config. */
static int pe__replay_config(const pe_cli_command_t *cmd,
                             pe_engine_config_t *config,
                             pe_pipeline_config_t *pc) {
  int rc = pe_cli_engine_config(cmd, config);
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  /* The features beyond the rules' are computed for whoever reads them:
   * --features-out here, or a model's windows (the engine turns them on). */
  config->all_features = pe_cli_is_set(cmd, "features-out") ? 1u : 0u;
  pe_pipeline_config_init(pc);
  const char *on_error = pe_cli_value(cmd, "on-error");
  if (strcmp(on_error, "skip") != 0 && strcmp(on_error, "fail") != 0) {
    pe_cli_error(cmd, "--on-error: '%s' is not skip or fail", on_error);
    return PE_EXIT_USAGE;
  }
  pc->stop_on_reject = strcmp(on_error, "fail") == 0;
  if (pe_format_parse(pe_cli_value(cmd, "format"), &pc->format) != PE_OK) {
    pe_cli_error(cmd, "--format: '%s' is not csv or jsonl",
                 pe_cli_value(cmd, "format"));
    return PE_EXIT_USAGE;
  }
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &pc->source.csv.ts_unit) !=
      PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    return PE_EXIT_USAGE;
  }
  uint64_t read_size = 0;
  if (pe_cli_u64(cmd, "read-size", &read_size) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (read_size == 0 || read_size > (1u << 30)) {
    pe_cli_error(cmd, "--read-size must be between 1 and 2^30 bytes");
    return PE_EXIT_USAGE;
  }
  pc->source.read_size = (size_t)read_size;
  if (pe_cli_u32(cmd, "latency-sample", &pc->latency_sample) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (pc->latency_sample == 0) {
    pe_cli_error(cmd, "--latency-sample must be at least 1");
    return PE_EXIT_USAGE;
  }
  pc->source.path = pe_cli_value(cmd, "ticks");
  pc->source.map = 1; /* a regular file; SIGBUS handled in pe__replay_run */
  pc->signals_path = pe_cli_value(cmd, "out");
  pc->features_path = pe_cli_flag(cmd, "features-out")->value;
  if (strcmp(pe_cli_value(cmd, "features-threads"), "auto") == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* The parsing thread and the admitting one keep a CPU each. */
    pc->features_threads = cpus > 2 ? (unsigned)(cpus > 66 ? 64 : cpus - 2) : 0;
  } else {
    uint32_t n = 0;
    if (pe_cli_u32(cmd, "features-threads", &n) != PE_EXIT_OK) {
      return PE_EXIT_USAGE;
    }
    if (n > 64) {
      pe_cli_error(cmd, "--features-threads must be auto or 0 to 64");
      return PE_EXIT_USAGE;
    }
    pc->features_threads = n;
  }
  /* PE_FEATURES_RESERVE=0: without the thread allocating the split
   * engines' output ahead, to compare (docs/benchmarks.md). */
  const char *reserve = getenv("PE_FEATURES_RESERVE");
  pc->features_no_reserve = reserve != NULL && strcmp(reserve, "0") == 0;
  pc->rejects_path = pe_cli_flag(cmd, "rejects")->value;
  pc->other_outputs[0] = pe_cli_flag(cmd, "state-out")->value;
  pc->other_outputs[1] = pe_cli_flag(cmd, "summary-json")->value;
  return PE_EXIT_OK;
}

/* The end of a run: summary, --summary-json, --state-out, and the check
 * that at least one tick was valid. */
static int pe__replay_report(const pe_cli_command_t *cmd, pe_engine_t *engine,
                             const pe_pipeline_t *p, uint32_t latency_sample) {
  const char *input = pe_pipeline_input(p);
  pe__totals_t totals;
  pe__totals(p, engine, latency_sample, &totals);
  if (!pe_cli_is_set(cmd, "quiet")) {
    pe__print_summary(input, &totals);
  }
  if (pe_cli_is_set(cmd, "summary-json") &&
      pe__write_summary_json(cmd, pe_cli_value(cmd, "summary-json"), input,
                             &totals, pe_engine_bytes_per_symbol(engine)) !=
          PE_EXIT_OK) {
    return PE_EXIT_FAIL;
  }
  if (pe_cli_is_set(cmd, "state-out")) {
    char err[768];
    if (pe_engine_save(engine, pe_cli_value(cmd, "state-out"), err,
                       sizeof err) != PE_OK) {
      pe_cli_error(cmd, "cannot write the state: %s", err);
      return PE_EXIT_FAIL;
    }
  }
  if (totals.st.engine.ticks == 0) {
    if (totals.st.rows == 0) {
      pe_cli_error(cmd,
                   "%s holds no tick rows; expected CSV lines "
                   "ts,symbol,price,volume (a header is optional)",
                   input);
    } else {
      pe_cli_error(cmd,
                   "%s: none of its %llu rows is a valid tick; rerun with "
                   "--rejects PATH to see each row's reason",
                   input, (unsigned long long)totals.st.rows);
    }
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

static int pe__replay_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  pe_engine_config_t config;
  pe_pipeline_config_t pc;
  rc = pe__replay_config(cmd, &config, &pc);
  if (rc != PE_EXIT_OK) {
    return rc;
  }
  pe_engine_t *engine = NULL;
  pe_backend_t *backend = NULL;
  pe_pipeline_t *p = NULL;
  char err[768];
  int erc = pe_engine_create(&config, &engine, err, sizeof err);
  if (erc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    /* Settings the engine refuses are usage; memory is not. */
    return erc == PE_ENOMEM ? PE_EXIT_FAIL : PE_EXIT_USAGE;
  }
  rc = pe_cli_open_backend(cmd, engine, &backend);
  if (rc != PE_EXIT_OK) {
    goto done;
  }
  /* Without a model, and with no state wanted from the engine, the
   * features may be split between engines (pe/pipeline.h). */
  if (backend == NULL && !pe_cli_is_set(cmd, "state-out")) {
    pc.features_shards = &config;
  }
  rc = PE_EXIT_FAIL;
  pe__progress_t progress = {0, 0};
  if (!pe_cli_is_set(cmd, "quiet") && isatty(2)) {
    pc.on_progress = pe__on_progress;
    pc.progress_ctx = &progress;
  }
  int prc = pe_pipeline_create(&pc, engine, &p, err, sizeof err);
  if (prc != PE_OK) {
    pe_cli_error(cmd, "%s%s", err,
                 prc == PE_ENOENT ? "; check the path given to --ticks" : "");
    goto done;
  }
  progress.start_ns = pe_clock_ns();
  struct sigaction old_bus;
  int bus = pe__sigbus_install(p, pc.features_path, &old_bus);
  prc = pe_pipeline_run(p);
  pe__sigbus_restore(bus, &old_bus);
  if (pc.on_progress != NULL) {
    pe__draw_progress(&progress, p, 1);
  }
  if (prc != PE_OK) {
    pe_cli_error(cmd, "%s%s", pe_pipeline_errmsg(p),
                 prc == PE_EFULL ? "; raise --max-symbols" : "");
    goto done;
  }
  rc = pe__replay_report(cmd, engine, p, pc.latency_sample);

done:
  pe_pipeline_destroy(p);
  pe_engine_destroy(engine);
  pe_backend_close(backend);
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
        "symbol_nul, out_of_order, line_too_long). The summary goes to\n"
        "standard error.\n"
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
