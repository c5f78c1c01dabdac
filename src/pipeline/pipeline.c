/* A tick file through the engine into its outputs (see pe/pipeline.h).
 *
 * The source hands over parsed ticks in batches (up to PE_CSV_BATCH, in
 * line order with the rejects between them); pe_engine_push_batch pushes
 * each batch in order (their symbols' table entries and states start
 * loading together first). Signals, feature rows and rejected rows go to
 * buffered files; the first failed write stops the run. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/clock.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/pipeline.h"
#include "pipeline/shards.h"

#define PE__PROGRESS_ROWS ((uint64_t)1 << 16)

struct pe_pipeline {
  pe_engine_t *engine; /* borrowed */
  pe_source_t *source;
  pe_sink_t *sink;
  pe_features_writer_t *features;
  pe__shards_t *shards;    /* the features' engines, when split */
  struct pe__relay *relay; /* the admitting thread, with shards */
  pe_out_t *rejects_out;
  FILE *rejects;
  const char *signals_path;
  const char *features_path;
  const char *rejects_path;
  int stop_on_reject;
  void (*on_progress)(void *ctx, const pe_pipeline_t *p);
  void *progress_ctx;
  uint64_t rows;
  uint64_t parse_rejected[PE_REJECT_COUNT];
  uint64_t next_progress;
  pe_hist_t latency;       /* cycles of each timed tick's push */
  uint32_t latency_sample; /* time one batch in this many */
  uint32_t batches_seen;   /* since the last timed one */
  uint64_t start_ns;
  uint64_t end_ns;
  pe_pipeline_stages_t stages; /* of a split run, once it has ended */
  pe_tick_out_t out;
  const pe_tick_t *batch; /* the batch being pushed, and its rows */
  const pe_csv_row_t *batch_rows;
  int stop_rc; /* why a callback stopped the run (PE_STOP) */
  char errmsg[768];
};

void pe_pipeline_config_init(pe_pipeline_config_t *c) {
  memset(c, 0, sizeof *c);
  c->source.path = "-";
  c->signals_path = "-";
  c->format = PE_FORMAT_CSV;
  c->latency_sample = 16;
}

/* Opens an output and writes its header line; NULL and a message naming
 * the path when either fails (*o, if opened, is closed by the caller). */
static FILE *pe__open_out(const char *path, const char *header, pe_out_t **o,
                          char *err, size_t err_cap) {
  if (pe_out_open(path, o, err, err_cap) != PE_OK) {
    return NULL;
  }
  FILE *f = pe_out_file(*o);
  if (fputs(header, f) == EOF) {
    snprintf(err, err_cap, "cannot write '%s': %s", path, strerror(errno));
    return NULL;
  }
  return f;
}

/* Refuses, before any output is opened (and a file truncated), an output
 * that is the input (replay --ticks t.csv --out t.csv would empty its own
 * input) or another output. "-" is standard output, whatever it is
 * redirected to. Files that do not exist yet are told apart by path. */
static int pe__check_paths(const pe_pipeline_config_t *c, char *err,
                           size_t err_cap) {
  const char *path[4 + PE_PIPELINE_MAX_OTHER_OUTPUTS];
  const char *what[4 + PE_PIPELINE_MAX_OTHER_OUTPUTS];
  pe_file_id_t id[4 + PE_PIPELINE_MAX_OTHER_OUTPUTS];
  size_t n = 0;
  path[n] = c->source.path;
  what[n++] = "the input";
  path[n] = c->signals_path;
  what[n++] = "the signals output";
  path[n] = c->features_path;
  what[n++] = "the features output";
  path[n] = c->rejects_path;
  what[n++] = "the rejected rows output";
  for (size_t i = 0; i < PE_PIPELINE_MAX_OTHER_OUTPUTS; i++) {
    path[n] = c->other_outputs[i];
    what[n++] = "an output";
  }
  for (size_t i = 0; i < n; i++) {
    if (path[i] == NULL) {
      continue;
    }
    if (strcmp(path[i], "-") == 0) {
      pe_file_id_of_fd(i == 0 ? 0 : 1, &id[i]);
    } else {
      pe_file_id_of_path(path[i], &id[i]);
    }
    for (size_t j = 0; j < i; j++) {
      if (path[j] == NULL) {
        continue;
      }
      /* Two outputs to one new file would share its temporary file. */
      int same = pe_file_id_same(&id[i], &id[j]) ||
                 (j > 0 && !id[i].exists && strcmp(path[i], path[j]) == 0);
      if (same) {
        snprintf(err, err_cap,
                 "'%s' is both %s and %s; give each output a file of its own",
                 path[i], what[j], what[i]);
        return PE_EINVAL;
      }
    }
  }
  return PE_OK;
}

int pe_pipeline_create(const pe_pipeline_config_t *c, pe_engine_t *engine,
                       pe_pipeline_t **out, char *err, size_t err_cap) {
  *out = NULL;
  pe_pipeline_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  p->engine = engine;
  p->signals_path = c->signals_path;
  p->features_path = c->features_path;
  p->rejects_path = c->rejects_path;
  p->stop_on_reject = c->stop_on_reject;
  p->on_progress = c->on_progress;
  p->progress_ctx = c->progress_ctx;
  p->latency_sample = c->latency_sample ? c->latency_sample : 16;
  /* The first batch is timed, so that a short file still gets figures. */
  p->batches_seen = p->latency_sample - 1;
  p->next_progress = PE__PROGRESS_ROWS;
  pe_hist_init(&p->latency);
  int rc = pe_source_open(&c->source, &p->source, err, err_cap);
  if (rc == PE_OK) {
    rc = pe__check_paths(c, err, err_cap);
  }
  if (rc == PE_OK && c->signals_path != NULL) {
    rc = pe_sink_open_file(c->signals_path, c->format, &p->sink, err, err_cap);
  }
  int split = c->features_path != NULL && c->features_threads > 0 &&
              c->features_shards != NULL && !c->stop_on_reject;
  if (rc == PE_OK && c->features_path != NULL) {
    rc = pe_features_writer_open(c->features_path,
                                 split ? 0 : c->features_threads, &p->features,
                                 err, err_cap);
  }
  if (rc == PE_OK && split) {
    rc = pe__shards_create(c->features_shards, c->features_threads,
                           p->latency_sample, !c->features_no_reserve,
                           p->features, p->sink, &p->shards, err, err_cap);
  }
  if (rc == PE_OK && c->rejects_path != NULL) {
    p->rejects = pe__open_out(c->rejects_path, "line,reason,raw\n",
                              &p->rejects_out, err, err_cap);
    if (p->rejects == NULL) {
      rc = PE_EIO;
    }
  }
  if (rc != PE_OK) {
    pe_pipeline_destroy(p);
    return rc;
  }
  *out = p;
  return PE_OK;
}

/* A callback's stop: rc, the run's error, kept for pe_pipeline_run, and
 * PE_STOP for the loop (pe/error.h). */
static int pe__stop(pe_pipeline_t *p, int rc) {
  p->stop_rc = rc;
  return PE_STOP;
}

/* The message of a failed output, with the C library's reason. */
static int pe__write_failed(pe_pipeline_t *p, const char *what,
                            const char *path) {
  snprintf(p->errmsg, sizeof p->errmsg, "cannot write %s to '%s': %s", what,
           path, errno ? strerror(errno) : "write error");
  return PE_EIO;
}

/* The message of the features' engines' failure rc; returns rc. */
static int pe__shards_failed(pe_pipeline_t *p, int rc) {
  int why = 0;
  const char *msg = NULL;
  const char *what = pe__shards_failure(p->shards, &why, &msg);
  if (what != NULL) {
    errno = why;
    return pe__write_failed(p, what,
                            strcmp(what, "signals") == 0 ? p->signals_path
                                                         : p->features_path);
  }
  if (msg != NULL && msg[0] != '\0') {
    snprintf(p->errmsg, sizeof p->errmsg, "%s: %s", pe_source_name(p->source),
             msg);
  } else {
    snprintf(p->errmsg, sizeof p->errmsg,
             "cannot keep the features of '%s': %s", p->features_path,
             pe_strerror(rc));
  }
  return rc;
}

/* The raw line as one CSV field (RFC 4180): quoted, with each quote
 * doubled, when it holds a comma, a quote, CR or LF, so that every record
 * of the rejects file has the header's three columns. */
static int pe__put_raw_field(FILE *f, const char *line, size_t len) {
  int quote = 0;
  for (size_t i = 0; i < len && !quote; i++) {
    quote =
        line[i] == ',' || line[i] == '"' || line[i] == '\r' || line[i] == '\n';
  }
  if (!quote) {
    return fwrite(line, 1, len, f) == len ? 0 : -1;
  }
  int bad = fputc('"', f) == EOF;
  for (const char *q; len > 0 && !bad; len -= (size_t)(q - line), line = q) {
    const char *dq = memchr(line, '"', len);
    q = dq ? dq + 1 : line + len; /* up to and with the next quote */
    bad = fwrite(line, 1, (size_t)(q - line), f) != (size_t)(q - line) ||
          (dq != NULL && fputc('"', f) == EOF);
  }
  return bad || fputc('"', f) == EOF ? -1 : 0;
}

/* A rejected row: written out, and the run's stop with stop_on_reject.
 * PE_CONTINUE or PE_STOP. */
static int pe__record_reject(pe_pipeline_t *p, int err, uint64_t line_no,
                             const char *line, size_t len) {
  int reason = pe_reject_from_error(err);
  if (p->rejects != NULL &&
      (fprintf(p->rejects, "%llu,%s,", (unsigned long long)line_no,
               pe_reject_name(reason)) < 0 ||
       pe__put_raw_field(p->rejects, line, len) != 0 ||
       fputc('\n', p->rejects) == EOF)) {
    return pe__stop(p, pe__write_failed(p, "rejected rows", p->rejects_path));
  }
  if (p->stop_on_reject) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s:%llu: %s (%s): %.*s",
             pe_source_name(p->source), (unsigned long long)line_no,
             pe_reject_name(reason), pe_strerror(err),
             (int)(len > 200 ? 200 : len), line);
    return pe__stop(p, err);
  }
  return PE_CONTINUE;
}

/* What follows an accepted or rejected push: signals and features out, an
 * engine rejection recorded, or the error that stops the run (PE_STOP).
 * row is NULL for a report the engine held for a model batch (never a
 * rejection). */
static int pe__after_push(pe_pipeline_t *p, int rc, const pe_tick_t *tick,
                          const pe_tick_out_t *out, const pe_csv_row_t *row) {
  if (rc == PE_OK) {
    if (p->features != NULL) {
      int frc = pe_features_writer_add(p->features, tick, out);
      if (frc == PE_EIO) {
        return pe__stop(p, pe__write_failed(p, "features", p->features_path));
      }
      if (frc != PE_OK) {
        snprintf(p->errmsg, sizeof p->errmsg,
                 "cannot keep the features of '%s': %s", p->features_path,
                 pe_strerror(frc));
        return pe__stop(p, frc);
      }
    }
    for (uint32_t i = 0; p->sink != NULL && i < out->n_signals; i++) {
      if (pe_sink_write(p->sink, &out->signal[i]) != PE_OK) {
        return pe__stop(p, pe__write_failed(p, "signals", p->signals_path));
      }
    }
    return PE_CONTINUE;
  }
  if (row != NULL && pe_reject_from_error(rc) >= 0) {
    return pe__record_reject(p, rc, row->line_no, row->line, row->len);
  }
  pe_engine_stats_t st;
  pe_engine_stats(p->engine, &st);
  if (row == NULL) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s: the tick of %s at %lld ns: %s",
             pe_source_name(p->source), tick->symbol, (long long)tick->ts_ns,
             pe_engine_errmsg(p->engine));
  } else if (rc == PE_EFULL) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "%s:%llu: the symbol table is full (%u symbols)",
             pe_source_name(p->source), (unsigned long long)row->line_no,
             st.symbols);
  } else {
    snprintf(p->errmsg, sizeof p->errmsg, "%s:%llu: %s",
             pe_source_name(p->source), (unsigned long long)row->line_no,
             pe_engine_errmsg(p->engine));
  }
  return pe__stop(p, rc);
}

/* pe_engine_push_batch's `each`: a push that was rejected, made signals or
 * has features to write. */
static int pe__each(void *ctx, uint32_t i, int rc, const pe_tick_out_t *out) {
  pe_pipeline_t *p = ctx;
  return pe__after_push(p, rc, &p->batch[i], out, &p->batch_rows[i]);
}

/* The engine's report callback, micro-batched: an accepted tick's report,
 * perhaps held for a model batch since an earlier parser batch. */
static int pe__on_report(void *ctx, const pe_tick_t *tick, int rc,
                         const pe_tick_out_t *out) {
  return pe__after_push(ctx, rc, tick, out, NULL);
}

/* A batch of parsed ticks, pushed in order, stopping at the first that
 * stops the run. Hot path.
 *
 * Latency: the engine reads the cycle counter once after every push and
 * gives each tick the time its own push took (the first tick of a batch
 * also carries the batch's prefetch); each tick's figure goes into the
 * histogram. Writing a push's signals or features is not counted. Only one
 * batch in latency_sample is timed, its every tick exactly: a counter read
 * after every push keeps each push from overlapping the next, which costs
 * about a third of the throughput when every tick is timed. */
/* One parsed tick, admitted and queued for the features' engines
 * (pipeline shards): PE_CONTINUE, or PE_STOP with the run's error kept.
 * Hot path. */
static int pe__admit(pe_pipeline_t *p, const pe_tick_t *tick,
                     const pe_csv_row_t *row) {
  int rc = pe__shards_add(p->shards, tick);
  if (rc == PE_OK) {
    return PE_CONTINUE;
  }
  if (pe_reject_from_error(rc) >= 0) {
    return pe__record_reject(p, rc, row->line_no, row->line, row->len);
  }
  if (rc == PE_EFULL) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "%s:%llu: the symbol table is full (%u symbols)",
             pe_source_name(p->source), (unsigned long long)row->line_no,
             pe__shards_symbols(p->shards));
    return pe__stop(p, rc);
  }
  return pe__stop(p, pe__shards_failed(p, rc));
}

/* ---- the relay -------------------------------------------------------------
 * With shards and a mapped input, parsing and admitting run on two threads:
 * the parser's callbacks copy each tick and row (or rejected row) into the
 * current chunk of events, and one more thread takes the chunks in order
 * and admits them, as the callbacks would have. A row's line points into
 * the mapping, so it outlives the callback. The admitting thread alone
 * writes the rejected rows; the parser's thread keeps the row counts. */

#define PE__RELAY_EVENTS 4096u /* events a chunk */
#define PE__RELAY_CHUNKS 4u    /* chunks in flight */

typedef struct pe__event {
  pe_tick_t tick;
  pe_csv_row_t row;
  int err; /* 0: a tick; else the parser's rejection of row */
} pe__event_t;

typedef struct pe__relay {
  pe_pipeline_t *p;
  pe__event_t *chunk[PE__RELAY_CHUNKS];
  uint32_t n[PE__RELAY_CHUNKS];
  uint64_t handed, taken; /* chunks handed over, and taken back free */
  pthread_t tid;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int ending;  /* no more chunks will come */
  int stopped; /* the admission stopped the run (p->stop_rc) */
  /* waiting: the parser's for a free chunk, the admission's for a chunk;
   * the admitting thread's CPU time; ns */
  uint64_t parse_wait_ns, admit_wait_ns, admit_cpu_ns;
} pe__relay_t;

static void *pe__relay_main(void *arg) {
  pe__relay_t *r = arg;
  pe_pipeline_t *p = r->p;
  int stopped = 0;
  pthread_mutex_lock(&r->lock);
  for (uint64_t next = 0;; next++) {
    if (r->handed == next && !r->ending) {
      uint64_t t0 = pe_clock_ns();
      while (r->handed == next && !r->ending) {
        pthread_cond_wait(&r->cond, &r->lock);
      }
      r->admit_wait_ns += pe_clock_ns() - t0;
    }
    if (r->handed == next) {
      break;
    }
    pthread_mutex_unlock(&r->lock);
    const pe__event_t *ev = r->chunk[next % PE__RELAY_CHUNKS];
    uint32_t n = r->n[next % PE__RELAY_CHUNKS];
    for (uint32_t i = 0; i < n && !stopped; i++) {
      int stop = ev[i].err == 0
                     ? pe__admit(p, &ev[i].tick, &ev[i].row)
                     : pe__record_reject(p, ev[i].err, ev[i].row.line_no,
                                         ev[i].row.line, ev[i].row.len);
      stopped = stop != PE_CONTINUE;
    }
    pthread_mutex_lock(&r->lock);
    r->stopped = stopped;
    r->taken = next + 1;
    pthread_cond_broadcast(&r->cond);
  }
  pthread_mutex_unlock(&r->lock);
  r->admit_cpu_ns = pe__shards_thread_cpu_ns();
  return NULL;
}

/* The current chunk to the admitting thread; waits for a free one. PE_STOP
 * once the admission has stopped the run. */
static int pe__relay_hand(pe__relay_t *r) {
  pthread_mutex_lock(&r->lock);
  r->handed++;
  pthread_cond_broadcast(&r->cond);
  if (r->handed - r->taken >= PE__RELAY_CHUNKS && !r->stopped) {
    uint64_t t0 = pe_clock_ns();
    while (r->handed - r->taken >= PE__RELAY_CHUNKS && !r->stopped) {
      pthread_cond_wait(&r->cond, &r->lock);
    }
    r->parse_wait_ns += pe_clock_ns() - t0;
  }
  int stopped = r->stopped;
  pthread_mutex_unlock(&r->lock);
  if (stopped) {
    return PE_STOP; /* no more events come: the run ends */
  }
  r->n[r->handed % PE__RELAY_CHUNKS] = 0; /* a free chunk */
  return PE_CONTINUE;
}

/* The next event of the current chunk; with full, the chunk is full once
 * it is filled. */
static inline pe__event_t *pe__relay_next(pe__relay_t *r, int *full) {
  uint32_t c = (uint32_t)(r->handed % PE__RELAY_CHUNKS);
  pe__event_t *ev = &r->chunk[c][r->n[c]++];
  *full = r->n[c] == PE__RELAY_EVENTS;
  return ev;
}

/* Hands over what is left and waits for the admitting thread to end. */
static void pe__relay_end(pe__relay_t *r) {
  pthread_mutex_lock(&r->lock);
  int stopped = r->stopped;
  pthread_mutex_unlock(&r->lock);
  if (!stopped && r->n[r->handed % PE__RELAY_CHUNKS] > 0) {
    (void)pe__relay_hand(r);
  }
  pthread_mutex_lock(&r->lock);
  r->ending = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  pthread_join(r->tid, NULL);
}

static void pe__relay_free(pe__relay_t *r) {
  if (r == NULL) {
    return;
  }
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  for (unsigned i = 0; i < PE__RELAY_CHUNKS; i++) {
    free(r->chunk[i]);
  }
  free(r);
}

/* The admitting thread, started; NULL when it cannot be (the parser's
 * thread then admits the ticks itself). */
static pe__relay_t *pe__relay_start(pe_pipeline_t *p) {
  pe__relay_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    return NULL;
  }
  r->p = p;
  int ok = 1;
  for (unsigned i = 0; i < PE__RELAY_CHUNKS; i++) {
    r->chunk[i] = malloc(PE__RELAY_EVENTS * sizeof *r->chunk[i]);
    ok = ok && r->chunk[i] != NULL;
  }
  int locks = 0;
  if (ok && pthread_mutex_init(&r->lock, NULL) == 0) {
    locks = 1;
    if (pthread_cond_init(&r->cond, NULL) == 0) {
      locks = 2;
    }
  }
  if (locks == 2 && pthread_create(&r->tid, NULL, pe__relay_main, r) == 0) {
    return r;
  }
  if (locks == 2) {
    pthread_cond_destroy(&r->cond);
  }
  if (locks >= 1) {
    pthread_mutex_destroy(&r->lock);
  }
  for (unsigned i = 0; i < PE__RELAY_CHUNKS; i++) {
    free(r->chunk[i]);
  }
  free(r);
  return NULL;
}

/* A batch of parsed ticks for the features' engines: to the admitting
 * thread, or admitted here. Hot path. */
static int pe__on_ticks_split(pe_pipeline_t *p, const pe_tick_t *ticks,
                              const pe_csv_row_t *rows, uint32_t n) {
  pe__relay_t *r = p->relay;
  for (uint32_t i = 0; i < n; i++) {
    if (r == NULL) {
      int stop = pe__admit(p, &ticks[i], &rows[i]);
      if (stop != PE_CONTINUE) {
        return stop;
      }
      continue;
    }
    int full = 0;
    pe__event_t *ev = pe__relay_next(r, &full);
    ev->tick = ticks[i];
    ev->row = rows[i];
    ev->err = 0;
    if (full && pe__relay_hand(r) != PE_CONTINUE) {
      return PE_STOP;
    }
  }
  return PE_CONTINUE;
}

static int pe__on_ticks(void *ctx, const pe_tick_t *ticks,
                        const pe_csv_row_t *rows, uint32_t n) {
  pe_pipeline_t *p = ctx;
  p->rows += n;
  if (p->shards != NULL) {
    int stop = pe__on_ticks_split(p, ticks, rows, n);
    if (stop == PE_CONTINUE && p->on_progress != NULL &&
        p->rows >= p->next_progress) {
      p->next_progress = p->rows + PE__PROGRESS_ROWS;
      p->on_progress(p->progress_ctx, p);
    }
    return stop;
  }
  p->batch = ticks;
  p->batch_rows = rows;
  uint32_t pushed = 0;
  uint64_t cycles[PE_ENGINE_BATCH_MAX];
  int timed = ++p->batches_seen >= p->latency_sample;
  if (timed) {
    p->batches_seen = 0;
  }
  int stop = pe_engine_push_batch(p->engine, ticks, n, &p->out,
                                  p->features != NULL ? PE_ENGINE_EACH_ALL : 0,
                                  pe__each, p, &pushed, timed ? cycles : NULL);
  for (uint32_t i = 0; timed && i < pushed; i++) {
    pe_hist_record(&p->latency, cycles[i]);
  }
  if (stop == PE_CONTINUE && p->on_progress != NULL &&
      p->rows >= p->next_progress) {
    p->next_progress = p->rows + PE__PROGRESS_ROWS;
    p->on_progress(p->progress_ctx, p);
  }
  return stop;
}

static int pe__on_reject(void *ctx, int err, uint64_t line_no, const char *line,
                         size_t len) {
  pe_pipeline_t *p = ctx;
  p->rows += 1;
  (void)pe_reject_count(p->parse_rejected, err);
  if (p->relay != NULL) {
    int full = 0;
    pe__event_t *ev = pe__relay_next(p->relay, &full);
    ev->row.line_no = line_no;
    ev->row.line = line;
    ev->row.len = len;
    ev->err = err;
    return full ? pe__relay_hand(p->relay) : PE_CONTINUE;
  }
  return pe__record_reject(p, err, line_no, line, len);
}

/* Closes an output file, committed when the run has succeeded so far; the
 * first failure (of an earlier write, the flush, the fsync, the rename)
 * becomes the run's error. */
static void pe__close_file(pe_pipeline_t *p, pe_out_t **o, FILE **f,
                           const char *what, const char *path, int *rc) {
  if (*o == NULL) {
    return;
  }
  char err[512];
  errno = 0;
  int bad = pe_out_close(*o, *rc == PE_OK, err, sizeof err) != PE_OK;
  *o = NULL;
  *f = NULL;
  if (bad && *rc == PE_OK) {
    *rc = pe__write_failed(p, what, path);
  }
}

int pe_pipeline_run(pe_pipeline_t *p) {
  pe_csv_batch_handler_t handler = {p, pe__on_ticks, pe__on_reject};
  pe_engine_set_report(p->engine, pe__on_report, p);
  (void)pe_cycles_per_ns(); /* calibrate before the clock starts */
  p->start_ns = pe_clock_ns();
  const void *map = NULL;
  size_t map_len = 0;
  if (p->shards != NULL && pe_source_mapping(p->source, &map, &map_len)) {
    p->relay = pe__relay_start(p);
  }
  uint64_t cpu0 = pe__shards_thread_cpu_ns();
  int rc = pe_source_run(p->source, &handler);
  pe_pipeline_stages_t *g = &p->stages;
  g->parse_cpu_s = (double)(pe__shards_thread_cpu_ns() - cpu0) * 1e-9;
  if (p->relay != NULL) {
    pe__relay_end(p->relay);
    if (rc == PE_OK && p->relay->stopped) {
      rc = PE_STOP; /* p->stop_rc holds the admission's error */
    }
    g->parse_wait_s = (double)p->relay->parse_wait_ns * 1e-9;
    g->admit_cpu_s = (double)p->relay->admit_cpu_ns * 1e-9;
    g->admit_wait_s = (double)p->relay->admit_wait_ns * 1e-9;
    pe__relay_free(p->relay);
    p->relay = NULL;
  }
  if (rc == PE_OK && p->shards == NULL) {
    rc = pe_engine_flush(p->engine); /* the reports still held */
  }
  if (p->shards != NULL) {
    int src = pe__shards_finish(p->shards);
    if (rc == PE_OK && src != PE_OK) {
      rc = pe__shards_failed(p, src);
    }
    pe__shards_latency(p->shards, &p->latency);
    pe__shards_times_t t;
    pe__shards_times(p->shards, &t);
    g->engine_threads = t.threads;
    g->window_wait_s = (double)t.window_wait_ns * 1e-9;
    g->push_s = (double)t.push_ns * 1e-9;
    g->format_s = (double)t.format_ns * 1e-9;
    g->write_s = (double)t.write_ns * 1e-9;
    g->wait_s = (double)t.wait_ns * 1e-9;
    g->engine_cpu_s = (double)t.cpu_ns * 1e-9;
    g->engine_cpu_max_s = (double)t.cpu_max_ns * 1e-9;
    g->reserve_cpu_s = (double)t.reserve_cpu_ns * 1e-9;
  }
  p->end_ns = pe_clock_ns();
  if (rc == PE_STOP) {
    rc = p->stop_rc;
  }
  if (rc != PE_OK && p->errmsg[0] == '\0') {
    snprintf(p->errmsg, sizeof p->errmsg, "%s", pe_source_errmsg(p->source));
  }
  if (p->sink != NULL && rc != PE_OK) {
    pe_sink_discard(p->sink);
  } else if (p->sink != NULL) {
    errno = 0;
    if (pe_sink_close(p->sink) != PE_OK) {
      rc = pe__write_failed(p, "signals", p->signals_path);
    }
  }
  p->sink = NULL;
  if (p->features != NULL) {
    char err[512];
    errno = 0;
    int bad = pe_features_writer_close(p->features, rc == PE_OK, err,
                                       sizeof err) != PE_OK;
    p->features = NULL;
    if (bad && rc == PE_OK) {
      rc = pe__write_failed(p, "features", p->features_path);
    }
  }
  pe__close_file(p, &p->rejects_out, &p->rejects, "rejected rows",
                 p->rejects_path, &rc);
  return rc;
}

void pe_pipeline_stats(const pe_pipeline_t *p, pe_pipeline_stats_t *s) {
  memset(s, 0, sizeof *s);
  if (p->shards != NULL) {
    pe__shards_stats(p->shards, &s->engine);
  } else {
    pe_engine_stats(p->engine, &s->engine);
  }
  s->rows = p->rows;
  for (int i = 0; i < PE_REJECT_COUNT; i++) {
    s->rejected[i] = p->parse_rejected[i] + s->engine.rejected[i];
    s->rejected_all += s->rejected[i];
  }
  s->bytes_done = pe_source_bytes_done(p->source);
  s->bytes_total = pe_source_bytes_total(p->source);
  uint64_t end = p->end_ns ? p->end_ns : pe_clock_ns();
  s->wall_s = p->start_ns ? (double)(end - p->start_ns) * 1e-9 : 0.0;
}

int pe_pipeline_stages(const pe_pipeline_t *p, pe_pipeline_stages_t *stages) {
  *stages = p->stages;
  return p->stages.engine_threads > 0;
}

const pe_hist_t *pe_pipeline_latency(const pe_pipeline_t *p) {
  return &p->latency;
}

const char *pe_pipeline_input(const pe_pipeline_t *p) {
  return pe_source_name(p->source);
}

const pe_source_t *pe_pipeline_source(const pe_pipeline_t *p) {
  return p->source;
}

const char *pe_pipeline_errmsg(const pe_pipeline_t *p) { return p->errmsg; }

int pe_pipeline_features_mapping(const pe_pipeline_t *p, const void **start,
                                 size_t *len) {
  *start = NULL;
  *len = 0;
  return p->shards != NULL && pe__shards_mapping(p->shards, start, len);
}

void pe_pipeline_destroy(pe_pipeline_t *p) {
  if (p == NULL) {
    return;
  }
  char err[64];
  pe__shards_destroy(p->shards);
  pe_sink_discard(p->sink);
  (void)pe_features_writer_close(p->features, 0, err, sizeof err);
  (void)pe_out_close(p->rejects_out, 0, err, sizeof err);
  pe_source_close(p->source);
  free(p);
}
