/* The Python package's C side; see pe_py.h. */
#define _POSIX_C_SOURCE 200809L
#include "pe_py.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/csv.h"
#include "pe/error.h"
#include "pe/pipeline.h"

/* One run's state, shared by the batch callbacks. */
typedef struct pe__py_run {
  pe_engine_t *engine;
  pe_py_result_t *res;
  const pe_py_columns_t *cols; /* the input columns, or NULL (a file) */
  size_t n_rows;         /* rows of the feature columns (the input's length) */
  const int64_t *row_of; /* input row of each tick of the current batch */
  const char *source;    /* a file's name for messages, or NULL */
  /* A shard of a sharded run: only rows in [from, to) whose symbol code c
   * has shard_of[c] == shard (a code that is not valid counts as shard 0),
   * their offsets from `from` gathered in pick first; each accepted tick's
   * row goes to local_row[n_local] and its features to
   * local[c * PE__PY_WINDOW + n_local], instead of in accepted order.
   * n_shards 0: every row, in accepted order. */
  unsigned shard, n_shards;
  const unsigned char *shard_of;
  uint32_t *pick;
  size_t from, to;
  int64_t *local_row;
  double *local;
  size_t n_local;
  int64_t batch_rows[PE_ENGINE_BATCH_MAX]; /* row_of of the columns' runs */
} pe__py_run_t;

/* Rows per window of a sharded run. */
#define PE__PY_WINDOW 65536u

static int pe__py_add_signal(pe_py_result_t *res, const pe_signal_t *s) {
  if (res->n_signals == res->cap_signals) {
    size_t cap = res->cap_signals ? res->cap_signals * 2 : 256;
    pe_signal_t *grown = realloc(res->signals, cap * sizeof *grown);
    if (grown == NULL) {
      snprintf(res->errmsg, sizeof res->errmsg, "out of memory for %zu signals",
               cap);
      return PE_ENOMEM;
    }
    res->signals = grown;
    res->cap_signals = cap;
  }
  res->signals[res->n_signals++] = *s;
  return PE_OK;
}

/* Accepted tick k is input row `row`: its row, ts and symbol code into
 * the result's columns that were asked for. */
static inline void pe__py_keep_row(pe_py_result_t *res,
                                   const pe_py_columns_t *cols, size_t k,
                                   int64_t row) {
  if (res->accepted != NULL) {
    res->accepted[k] = row;
  }
  if (res->ts_out != NULL) {
    res->ts_out[k] = cols->ts_ns[row];
  }
  if (res->codes_out != NULL) {
    res->codes_out[k] = cols->sym[row];
  }
}

static const char *pe__py_where(const pe__py_run_t *run) {
  return run->source != NULL ? run->source : "row";
}

/* A rejected tick: counted, and the run's end with stop_on_reject. */
static int pe__py_reject(pe__py_run_t *run, int rc, int64_t row) {
  pe_py_result_t *res = run->res;
  int reason = pe_reject_from_error(rc);
  res->rejected[reason] += 1;
  if (!res->stop_on_reject) {
    return 0;
  }
  res->stop_row = row;
  snprintf(res->errmsg, sizeof res->errmsg, "%s %lld: %s (%s)",
           pe__py_where(run), (long long)row, pe_reject_name(reason),
           pe_strerror(rc));
  return rc;
}

/* pe_engine_push_batch's `each`. */
static int pe__py_each(void *ctx, uint32_t i, int rc,
                       const pe_tick_out_t *out) {
  pe__py_run_t *run = ctx;
  pe_py_result_t *res = run->res;
  int64_t row = run->row_of[i];
  if (rc == PE_OK && run->n_shards > 0) {
    size_t k = run->n_local++;
    double *f = run->local + k;
    run->local_row[k] = row;
    f[0] = run->cols->price[row];
    f[PE__PY_WINDOW] = run->cols->volume[row];
    const double head[5] = {out->ema_fast, out->ema_slow, out->vwap, out->mean,
                            out->var};
    for (size_t c = 0; c < 5; c++) {
      f[(2 + c) * PE__PY_WINDOW] = head[c];
    }
    for (size_t c = 0; c < PE_FEATURE_COUNT; c++) {
      f[(7 + c) * PE__PY_WINDOW] = out->feature[c];
    }
    return 0;
  }
  if (rc == PE_OK) {
    size_t k = res->n_accepted++;
    if (res->features != NULL && run->cols != NULL) {
      double *f = res->features + k;
      size_t n = run->n_rows;
      f[0] = run->cols->price[row];
      f[n] = run->cols->volume[row];
      f[2 * n] = out->ema_fast;
      f[3 * n] = out->ema_slow;
      f[4 * n] = out->vwap;
      f[5 * n] = out->mean;
      f[6 * n] = out->var;
      for (size_t c = 0; c < PE_FEATURE_COUNT; c++) {
        f[(7 + c) * n] = out->feature[c];
      }
    }
    if (run->cols != NULL) {
      pe__py_keep_row(res, run->cols, k, row);
    } else if (res->accepted != NULL) {
      res->accepted[k] = row;
    }
    for (uint32_t s = 0; s < out->n_signals; s++) {
      int arc = pe__py_add_signal(res, &out->signal[s]);
      if (arc != PE_OK) {
        res->stop_row = row;
        return arc;
      }
    }
    return 0;
  }
  if (pe_reject_from_error(rc) >= 0) {
    return pe__py_reject(run, rc, row);
  }
  res->stop_row = row;
  snprintf(res->errmsg, sizeof res->errmsg, "%s %lld: %s", pe__py_where(run),
           (long long)row, pe_engine_errmsg(run->engine));
  return rc;
}

static int pe__py_push_ticks(pe__py_run_t *run, const pe_tick_t *ticks,
                             uint32_t n) {
  pe_tick_out_t out;
  uint32_t pushed = 0;
  uint32_t flags = run->res->features != NULL || run->res->accepted != NULL
                       ? PE_ENGINE_EACH_ALL
                       : 0u;
  return pe_engine_push_batch(run->engine, ticks, n, &out, flags, pe__py_each,
                              run, &pushed, NULL);
}

/* The engine's checks of a symbol, for a code of the columns. */
static int pe__py_symbol_error(const pe_py_columns_t *cols, int32_t code) {
  if (code < 0 || (uint32_t)code >= cols->n_symtab) {
    return PE_ESYMBOL;
  }
  uint32_t len = cols->symlen[code];
  return len == 0 ? PE_ESYMBOL : len > PE_SYMBOL_MAX ? PE_ESYMLEN : PE_OK;
}

/* The columns' rows (a shard's, when run->n_shards) through the engine. */
static int pe__py_push_rows(pe__py_run_t *run) {
  const pe_py_columns_t *cols = run->cols;
  pe_py_result_t *res = run->res;
  pe_tick_t ticks[PE_ENGINE_BATCH_MAX];
  int64_t *rows = run->batch_rows;
  uint32_t nb = 0;
  res->stop_row = -1;
  run->row_of = rows;
  size_t count = run->to - run->from;
  if (run->n_shards > 0) {
    /* The shard's rows, without a branch per row: every offset is stored,
     * and the count moves on only for the shard's own. */
    size_t m = 0;
    for (size_t j = 0; j < count; j++) {
      int32_t code = cols->sym[run->from + j];
      unsigned s = code >= 0 && (uint32_t)code < cols->n_symtab
                       ? run->shard_of[code]
                       : 0u;
      run->pick[m] = (uint32_t)j;
      m += s == run->shard;
    }
    count = m;
  }
  for (size_t j = 0; j < count; j++) {
    size_t i = run->from + (run->n_shards > 0 ? run->pick[j] : j);
    int32_t code = cols->sym[i];
    res->rows += 1;
    int rc = pe__py_symbol_error(cols, code);
    if (rc != PE_OK) {
      /* Ticks before it go first, so that the order of events is kept. */
      int stop = nb ? pe__py_push_ticks(run, ticks, nb) : 0;
      nb = 0;
      if (stop == 0) {
        stop = pe__py_reject(run, rc, (int64_t)i);
      }
      if (stop != 0) {
        return stop;
      }
      continue;
    }
    pe_tick_t *t = &ticks[nb];
    t->ts_ns = cols->ts_ns[i];
    t->recv_ts_ns = PE_TS_NONE;
    t->price = cols->price[i];
    t->volume = cols->volume[i];
    t->symbol_len = cols->symlen[code];
    memcpy(t->symbol, cols->symtab + (size_t)code * PE_PY_SYMBOL_STRIDE,
           PE_PY_SYMBOL_STRIDE);
    t->symbol[t->symbol_len] = '\0';
    rows[nb++] = (int64_t)i;
    if (nb == PE_ENGINE_BATCH_MAX) {
      int stop = pe__py_push_ticks(run, ticks, nb);
      nb = 0;
      if (stop != 0) {
        return stop;
      }
    }
  }
  return nb ? pe__py_push_ticks(run, ticks, nb) : PE_OK;
}

int pe_py_push(pe_engine_t *engine, const pe_py_columns_t *cols,
               pe_py_result_t *res) {
  pe__py_run_t run = {.engine = engine,
                      .res = res,
                      .cols = cols,
                      .n_rows = cols->n,
                      .to = cols->n};
  return pe__py_push_rows(&run);
}

/* ---- sharded runs --------------------------------------------------------
 * The input is taken a window of PE__PY_WINDOW rows at a time. In each,
 * every shard's thread first pushes its rows through its own engine into
 * its own buffers; then, after a barrier, thread t copies every column of
 * the rows of its equal part of the window, from whichever shard holds
 * them, to their input rows in the output, and writes the part's accepted
 * rows (pe__py_place_rows): the work is the same for every thread, and the
 * shard's buffers are free again after a second barrier. Rows that were
 * rejected are squeezed out at the end. */

typedef struct pe__py_sharded pe__py_sharded_t;

typedef struct pe__py_shard {
  pthread_t tid;
  pe__py_sharded_t *all;
  pe__py_run_t run;
  pe_py_result_t res; /* the shard's counts, error and message */
  int rc;             /* the shard's first error; it pushes no more then */
} pe__py_shard_t;

struct pe__py_sharded {
  const pe_engine_config_t *config;
  const pe_py_columns_t *cols;
  pe_py_result_t *res;
  unsigned char *acc; /* 1 for each accepted input row */
  pe__py_shard_t *shard;
  unsigned n_shards;
  pthread_barrier_t barrier;
  unsigned char *shard_of; /* each symbol code's shard */
  /* The threads wait for go: 1 when every one has started, -1 when one
   * could not be (they then return at once). */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int go;
};

/* The first of the n ascending rows at or past row. */
static size_t pe__py_lower_bound(const int64_t *rows, size_t n, size_t row) {
  size_t lo = 0;
  while (lo < n) {
    size_t mid = lo + (n - lo) / 2;
    if ((size_t)rows[mid] < row) {
      lo = mid + 1;
    } else {
      n = mid;
    }
  }
  return lo;
}

/* Thread t's share of a window's rows [from, to), after every shard has
 * pushed it: the rows of its equal part (cut at multiples of 8, so that no
 * cache line of an output column is written by two threads), every
 * column, from each shard's buffers to their input rows; then the part's
 * accepted rows, in input order, into accepted from base plus the accepted
 * rows of the window before the part. Returns the window's accepted rows
 * (every thread's share reads the same counts). */
static size_t pe__py_place_rows(pe__py_sharded_t *all, unsigned t, size_t from,
                                size_t to, size_t base) {
  size_t n = all->cols->n;
  size_t span = to - from;
  size_t a = from + (span * t / all->n_shards & ~(size_t)7);
  size_t b = t + 1 == all->n_shards
                 ? to
                 : from + (span * (t + 1) / all->n_shards & ~(size_t)7);
  size_t at = base;
  size_t window = 0;
  size_t lo[PE_PY_FEATURE_COLUMNS]; /* each shard's entries in [a, b) */
  size_t hi[PE_PY_FEATURE_COLUMNS];
  for (unsigned s = 0; s < all->n_shards; s++) {
    const pe__py_run_t *r = &all->shard[s].run;
    lo[s] = pe__py_lower_bound(r->local_row, r->n_local, a);
    hi[s] =
        lo[s] + pe__py_lower_bound(r->local_row + lo[s], r->n_local - lo[s], b);
    at += lo[s];
    window += r->n_local;
    for (size_t j = lo[s]; j < hi[s]; j++) {
      all->acc[r->local_row[j]] = 1;
    }
  }
  /* Column by column, so that the part of the column being written stays
   * in the nearest cache while every shard's entries go in. */
  for (size_t c = 0; c < PE_PY_FEATURE_COLUMNS; c++) {
    double *out = all->res->features + c * n;
    for (unsigned s = 0; s < all->n_shards; s++) {
      const pe__py_run_t *r = &all->shard[s].run;
      const double *in = r->local + c * PE__PY_WINDOW;
      for (size_t j = lo[s]; j < hi[s]; j++) {
        out[r->local_row[j]] = in[j];
      }
    }
  }
  for (size_t i = a; i < b; i++) {
    if (all->acc[i]) {
      pe__py_keep_row(all->res, all->cols, at++, (int64_t)i);
    }
  }
  return window;
}

static void *pe__py_shard_main(void *arg) {
  pe__py_shard_t *sh = arg;
  pe__py_sharded_t *all = sh->all;
  size_t n = all->cols->n;
  pthread_mutex_lock(&all->lock);
  while (all->go == 0) {
    pthread_cond_wait(&all->cond, &all->lock);
  }
  int go = all->go;
  pthread_mutex_unlock(&all->lock);
  if (go < 0) {
    return NULL;
  }
  if (sh->rc == PE_OK) {
    sh->rc = pe_engine_create(all->config, &sh->run.engine, sh->res.errmsg,
                              sizeof sh->res.errmsg);
  }
  size_t base = 0; /* accepted rows of the windows before */
  for (size_t from = 0; from < n; from += PE__PY_WINDOW) {
    sh->run.from = from;
    sh->run.to = n - from < PE__PY_WINDOW ? n : from + PE__PY_WINDOW;
    sh->run.n_local = 0;
    if (sh->rc == PE_OK) {
      sh->rc = pe__py_push_rows(&sh->run);
    }
    pthread_barrier_wait(&all->barrier);
    base +=
        pe__py_place_rows(all, sh->run.shard, sh->run.from, sh->run.to, base);
    pthread_barrier_wait(&all->barrier);
  }
  if (sh->run.shard == 0) {
    all->res->n_accepted = base;
  }
  pe_engine_destroy(sh->run.engine);
  sh->run.engine = NULL;
  return NULL;
}

int pe_py_push_sharded(const pe_engine_config_t *config, unsigned n_shards,
                       const pe_py_columns_t *cols, pe_py_result_t *res) {
  res->stop_row = -1;
  if (n_shards == 0 || n_shards > PE_PY_FEATURE_COLUMNS ||
      res->features == NULL || res->accepted == NULL || res->stop_on_reject) {
    snprintf(res->errmsg, sizeof res->errmsg,
             "a sharded run needs 1 to %d shards, features and accepted, "
             "and rejected ticks skipped",
             PE_PY_FEATURE_COLUMNS);
    return PE_EINVAL;
  }
  size_t n = cols->n;
  /* Each engine's table holds at most every symbol code, not the whole
   * max_symbols: n_shards tables at full size would cost n_shards times
   * the memory for nothing (with no more codes than max_symbols, a table
   * of that size never fills, as one engine's would not). */
  pe_engine_config_t shard_config = *config;
  if (cols->n_symtab > 0 && cols->n_symtab < shard_config.max_symbols) {
    shard_config.max_symbols = cols->n_symtab;
  }
  pe__py_sharded_t all = {
      .config = &shard_config, .cols = cols, .res = res, .n_shards = n_shards};
  all.acc = calloc(n ? n : 1, 1);
  all.shard = calloc(n_shards, sizeof *all.shard);
  all.shard_of = malloc(cols->n_symtab ? cols->n_symtab : 1);
  int rc = all.acc != NULL && all.shard != NULL && all.shard_of != NULL
               ? PE_OK
               : PE_ENOMEM;
  for (uint32_t c = 0; rc == PE_OK && c < cols->n_symtab; c++) {
    all.shard_of[c] = (unsigned char)(c % n_shards);
  }
  for (unsigned s = 0; rc == PE_OK && s < n_shards; s++) {
    pe__py_shard_t *sh = &all.shard[s];
    sh->all = &all;
    sh->res.features = res->features;
    sh->run = (pe__py_run_t){.res = &sh->res,
                             .cols = cols,
                             .n_rows = n,
                             .shard = s,
                             .n_shards = n_shards,
                             .shard_of = all.shard_of};
    sh->run.local_row = malloc(PE__PY_WINDOW * sizeof(int64_t));
    sh->run.pick = malloc(PE__PY_WINDOW * sizeof(uint32_t));
    sh->run.local =
        malloc((size_t)PE__PY_WINDOW * PE_PY_FEATURE_COLUMNS * sizeof(double));
    if (sh->run.local_row == NULL || sh->run.local == NULL ||
        sh->run.pick == NULL) {
      rc = PE_ENOMEM;
    }
  }
  if (rc != PE_OK) {
    snprintf(res->errmsg, sizeof res->errmsg, "out of memory");
  } else if (pthread_barrier_init(&all.barrier, NULL, n_shards) != 0) {
    snprintf(res->errmsg, sizeof res->errmsg, "cannot make a barrier");
    rc = PE_ENOMEM;
  }
  if (rc == PE_OK) {
    pthread_mutex_init(&all.lock, NULL);
    pthread_cond_init(&all.cond, NULL);
    unsigned started = 0;
    while (started < n_shards &&
           pthread_create(&all.shard[started].tid, NULL, pe__py_shard_main,
                          &all.shard[started]) == 0) {
      started++;
    }
    pthread_mutex_lock(&all.lock);
    all.go = started == n_shards ? 1 : -1;
    pthread_cond_broadcast(&all.cond);
    pthread_mutex_unlock(&all.lock);
    for (unsigned s = 0; s < started; s++) {
      pthread_join(all.shard[s].tid, NULL);
    }
    if (started < n_shards) {
      snprintf(res->errmsg, sizeof res->errmsg, "cannot start %u threads",
               n_shards);
      rc = PE_ENOMEM;
    }
    pthread_cond_destroy(&all.cond);
    pthread_mutex_destroy(&all.lock);
    pthread_barrier_destroy(&all.barrier);
  }
  /* The run's error is the one at the earliest row, where one engine would
   * have stopped first. */
  for (unsigned s = 0; rc == PE_OK && s < n_shards; s++) {
    pe__py_shard_t *sh = &all.shard[s];
    res->rows += sh->res.rows;
    for (int r = 0; r < PE_REJECT_COUNT; r++) {
      res->rejected[r] += sh->res.rejected[r];
    }
  }
  for (unsigned s = 0; rc == PE_OK && s < n_shards; s++) {
    const pe__py_shard_t *sh = &all.shard[s];
    if (sh->rc != PE_OK &&
        (res->stop_row < 0 ||
         (sh->res.stop_row >= 0 && sh->res.stop_row < res->stop_row))) {
      res->stop_row = sh->res.stop_row;
      memcpy(res->errmsg, sh->res.errmsg, sizeof res->errmsg);
    }
  }
  for (unsigned s = 0; rc == PE_OK && s < n_shards; s++) {
    if (all.shard[s].rc != PE_OK &&
        all.shard[s].res.stop_row == res->stop_row) {
      rc = all.shard[s].rc;
    }
  }
  if (rc == PE_OK) {
    /* The accepted rows are in place (pe__py_place_rows); their columns
     * move down over the rows that were rejected (nothing moves when every
     * tick was accepted). */
    size_t k = res->n_accepted;
    for (size_t c = 0; k < n && c < PE_PY_FEATURE_COLUMNS; c++) {
      double *col = res->features + c * n;
      for (size_t j = 0; j < k; j++) {
        col[j] = col[res->accepted[j]];
      }
    }
  }
  for (unsigned s = 0; all.shard != NULL && s < n_shards; s++) {
    free(all.shard[s].run.local_row);
    free(all.shard[s].run.pick);
    free(all.shard[s].run.local);
  }
  free(all.shard);
  free(all.shard_of);
  free(all.acc);
  return rc;
}

/* ---- a tick file -------------------------------------------------------- */

static int pe__py_file_ticks(void *ctx, const pe_tick_t *ticks,
                             const pe_csv_row_t *rows, uint32_t n) {
  pe__py_run_t *run = ctx;
  int64_t line[PE_CSV_BATCH];
  for (uint32_t i = 0; i < n; i++) {
    line[i] = (int64_t)rows[i].line_no;
  }
  run->res->rows += n;
  run->row_of = line;
  return pe__py_push_ticks(run, ticks, n);
}

static int pe__py_file_reject(void *ctx, int err, uint64_t line_no,
                              const char *line, size_t len) {
  pe__py_run_t *run = ctx;
  (void)line;
  (void)len;
  run->res->rows += 1;
  return pe__py_reject(run, err, (int64_t)line_no);
}

int pe_py_replay_file(pe_engine_t *engine, const char *path, int ts_unit,
                      pe_py_result_t *res) {
  pe_source_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.path = path;
  opts.csv.ts_unit = (pe_ts_unit_t)ts_unit;
  res->stop_row = -1;
  pe_source_t *src = NULL;
  int rc = pe_source_open(&opts, &src, res->errmsg, sizeof res->errmsg);
  if (rc != PE_OK) {
    return rc;
  }
  pe__py_run_t run = {
      .engine = engine, .res = res, .source = pe_source_name(src)};
  pe_csv_batch_handler_t handler = {&run, pe__py_file_ticks,
                                    pe__py_file_reject};
  rc = pe_source_run(src, &handler);
  if (rc != PE_OK && res->errmsg[0] == '\0') {
    snprintf(res->errmsg, sizeof res->errmsg, "%s", pe_source_errmsg(src));
  }
  pe_source_close(src);
  return rc;
}

void pe_py_result_free(pe_py_result_t *res) {
  free(res->signals);
  res->signals = NULL;
  res->n_signals = 0;
  res->cap_signals = 0;
}

/* ---- the columnar core -------------------------------------------------- */

/* The engine's checks of one tick that need no state, in its order. */
static int pe__py_tick_error(const pe_py_columns_t *cols, size_t i) {
  double price = cols->price[i];
  double volume = cols->volume[i];
  if (!(price > 0.0) || !isfinite(price)) {
    return PE_EPRICE;
  }
  if (!(volume >= 0.0) || !isfinite(volume)) {
    return PE_EVOLUME;
  }
  return pe__py_symbol_error(cols, cols->sym[i]);
}

/* Folds accepted ticks [from, to) (their rows in res->accepted) through the
 * core into the output columns. */
static int pe__py_core_flush(pe_core_t *core, const pe_py_columns_t *cols,
                             pe_py_result_t *res, size_t from, size_t to,
                             int32_t *sym, double *price, double *volume) {
  size_t n = cols->n;
  double *f = res->features;
  pe_core_columns_t out = {f + 2 * n + from, f + 3 * n + from, f + 4 * n + from,
                           f + 5 * n + from, f + 6 * n + from};
  int rc = pe_core_run(core, to - from, sym, price, volume, &out);
  if (rc != PE_OK) {
    snprintf(res->errmsg, sizeof res->errmsg, "%s", pe_core_errmsg(core));
  }
  return rc;
}

int pe_py_core_features(const pe_core_config_t *config,
                        const pe_py_columns_t *cols, pe_py_result_t *res) {
  res->stop_row = -1;
  if (res->features == NULL || res->accepted == NULL) {
    snprintf(res->errmsg, sizeof res->errmsg,
             "features and accepted must be given");
    return PE_EINVAL;
  }
  pe_core_config_t cfg = *config;
  cfg.n_symbols = cols->n_symtab ? cols->n_symtab : 1;
  pe_core_t *core = NULL;
  int rc = pe_core_create(&cfg, &core, res->errmsg, sizeof res->errmsg);
  if (rc != PE_OK) {
    return rc;
  }
  int64_t *last = malloc(cfg.n_symbols * sizeof *last);
  /* Accepted ticks are gathered in blocks, so that the core runs over
   * contiguous arrays without a copy of the whole input. */
  enum { BLOCK = 4096 };
  int32_t *sym = malloc(BLOCK * sizeof *sym);
  double *price = malloc(BLOCK * sizeof *price);
  double *volume = malloc(BLOCK * sizeof *volume);
  if (last == NULL || sym == NULL || price == NULL || volume == NULL) {
    snprintf(res->errmsg, sizeof res->errmsg, "out of memory");
    rc = PE_ENOMEM;
    goto done;
  }
  for (uint32_t s = 0; s < cfg.n_symbols; s++) {
    last[s] = INT64_MIN;
  }
  pe__py_run_t run = {.res = res, .cols = cols, .n_rows = cols->n};
  size_t block_start = 0;
  size_t nb = 0;
  for (size_t i = 0; i < cols->n; i++) {
    res->rows += 1;
    int err = pe__py_tick_error(cols, i);
    int32_t s = cols->sym[i];
    if (err == PE_OK && cols->ts_ns[i] < last[s]) {
      err = PE_EORDER;
    }
    if (err != PE_OK) {
      rc = pe__py_reject(&run, err, (int64_t)i);
      if (rc != PE_OK) {
        break;
      }
      continue;
    }
    last[s] = cols->ts_ns[i];
    res->features[res->n_accepted] = cols->price[i];
    res->features[cols->n + res->n_accepted] = cols->volume[i];
    pe__py_keep_row(res, cols, res->n_accepted++, (int64_t)i);
    sym[nb] = s;
    price[nb] = cols->price[i];
    volume[nb] = cols->volume[i];
    if (++nb == BLOCK) {
      rc = pe__py_core_flush(core, cols, res, block_start, res->n_accepted, sym,
                             price, volume);
      if (rc != PE_OK) {
        goto done;
      }
      block_start = res->n_accepted;
      nb = 0;
    }
  }
  if (nb > 0) {
    int frc = pe__py_core_flush(core, cols, res, block_start, res->n_accepted,
                                sym, price, volume);
    rc = rc != PE_OK ? rc : frc;
  }
done:
  free(volume);
  free(price);
  free(sym);
  free(last);
  pe_core_destroy(core);
  return rc;
}
