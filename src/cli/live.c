/* `pattern-engine live`: ticks from a Redis Stream through the engine,
 * signals out to another stream, with checkpoints (docs/live.md).
 *
 * One worker thread runs a loop of round trips on one connection. Each trip
 * sends, in one write:
 *   MULTI, the XADDs of the last batch's signals and rejects [, SET of a
 *   checkpoint], EXEC      (when the last batch produced any)
 *   XINFO STREAM ticks     (about once a second: lag and gap accounting)
 *   XREAD COUNT n BLOCK ms STREAMS ticks <last id>
 * and then reads the replies in that order. Ticks of the new batch go
 * through the engine one by one; their outputs are formatted into the next
 * transaction, which is kept until Redis has acknowledged it, and resent
 * after a reconnect. Memory is bounded by one batch in and one batch out,
 * whether Redis is there or not.
 *
 * Signals are written with stream ids derived from their tick's entry id
 * (pe_signal_stream_id), so a signal re-derived after a restart is refused by
 * Redis as a duplicate; a checkpoint is taken only at a batch boundary and
 * made durable only after the signals before it are acknowledged. Together:
 * every tick's signals land exactly once (docs/live.md gives the argument).
 *
 * Per tick: decode the entry, pe_engine_push, format any signal into a
 * buffer that already has room. Nothing there allocates or locks. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/live.h"
#include "cli/live_store.h"
#include "pe/checkpoint.h"
#include "pe/clock.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/hist.h"
#include "pe/redis.h"
#include "pe/stream.h"

static pe_cli_flag_t pe__live_flags[] = {
    {"redis", "URL", "REDIS_URL", "redis://localhost:6379/0",
     "Redis to read ticks from and write signals to", NULL},
    {"ticks-stream", "KEY", "TICKS_STREAM", "ticks:global",
     "stream the ticks are read from", NULL},
    {"signals-stream", "KEY", "SIGNALS_STREAM", "signals:global",
     "stream the signals are written to", NULL},
    {"signals-maxlen", "N", NULL, "1000000",
     "trim the signals (and rejects) stream to about N entries; 0: never",
     NULL},
    {"checkpoint", "PATH|redis", NULL, NULL,
     "keep checkpoints in a file, or in the Redis key --checkpoint-key", NULL},
    {"checkpoint-key", "KEY", NULL, "SIGNALS-STREAM:checkpoint",
     "Redis key of --checkpoint redis", NULL},
    {"checkpoint-every", "N", NULL, "100000",
     "checkpoint after N entries (at the end of the batch holding the Nth)",
     NULL},
    {"checkpoint-interval", "SECONDS", NULL, "5",
     "checkpoint at least this often while entries come in", NULL},
    {"start-id", "ID", NULL, "0",
     "where to start without a checkpoint: 0 (the stream's beginning), $ "
     "(new entries only) or an entry id (read after it)",
     NULL},
    {"on-gap", "MODE", NULL, "fail",
     "entries trimmed before they were read: fail (exit 1) or skip (count "
     "them and go on)",
     NULL},
    {"rejects", "PATH", NULL, NULL,
     "append each rejected entry as tick_id,reason,field,raw to a file", NULL},
    {"rejects-stream", "KEY", NULL, NULL,
     "write each rejected entry to this stream (reason, field, raw:<name>)",
     NULL},
    {"ts-unit", "UNIT", NULL, "auto",
     "epoch timestamp unit: auto (by magnitude), s, ms, us or ns", NULL},
    {"count", "N", NULL, "1000", "entries per XREAD (batch size)", NULL},
    {"block-ms", "MS", NULL, "100", "how long one XREAD waits for new entries",
     NULL},
    {"redis-timeout", "SECONDS", NULL, "5",
     "a Redis reply slower than this counts as a lost connection", NULL},
    {"http", "HOST:PORT", NULL, NULL,
     "serve /health (JSON) and /metrics (Prometheus) there, e.g. "
     "127.0.0.1:8005",
     NULL},
    {"exit-on-idle", "SECONDS", NULL, NULL,
     "drain, checkpoint and exit 0 once no entry came for this long", NULL},
    {"state-out", "PATH", NULL, NULL,
     "at exit, write the engine state (a snapshot, as replay --state-out)",
     NULL},
    {"summary-json", "PATH", NULL, NULL,
     "at exit, write the run's totals as JSON", NULL},
    PE_CLI_ENGINE_FLAGS,
    PE_CLI_MODEL_FLAGS,
    {"quiet", NULL, NULL, NULL, "no log lines and no summary", NULL},
};

/* Totals kept in checkpoints (pe_checkpoint_t.counter). */
enum {
  PE__C_ENTRIES = 0,
  PE__C_GAPS,
  PE__C_GAP_ENTRIES,
  PE__C_REJECTED = 8 /* + pe_stream_reject_t */
};
_Static_assert(PE__C_REJECTED + PE_STREAM_REJECT_COUNT <=
                   PE_CHECKPOINT_COUNTERS,
               "checkpoint counters hold every reject reason");

enum { PE__CKPT_NONE = 0, PE__CKPT_FILE, PE__CKPT_REDIS };

#define PE__INFO_EVERY_NS 1000000000ull
#define PE__METRICS_EVERY_NS 100000000ull

static volatile sig_atomic_t pe__stop_flag = 0;
static volatile sig_atomic_t pe__signals = 0; /* SIGTERM/SIGINT received */

static void pe__on_signal(int sig) {
  (void)sig;
  pe__stop_flag = 1;
  pe__signals = pe__signals + 1;
}

typedef struct pe__live {
  const pe_cli_command_t *cmd;
  int quiet;
  pe_engine_t *engine;
  pe_backend_t *backend;
  pe_redis_t *redis;
  pe_stream_options_t sopt;
  const char *ticks;
  const char *signals;
  const char *rejects_stream;
  uint64_t maxlen;
  uint32_t count;
  uint32_t block_ms;
  uint64_t idle_exit_ns; /* 0: never */
  int gap_skip;
  /* checkpoints */
  int ckpt_mode;
  const char *ckpt_path;
  char ckpt_key[512];
  uint64_t ckpt_every;
  uint64_t ckpt_interval_ns;
  uint64_t since_ckpt;     /* entries since the last checkpoint taken */
  uint64_t last_ckpt_mono; /* when it was taken */
  pe_ckpt_writer_t *writer;
  unsigned char *snap; /* engine snapshot buffer */
  size_t snap_cap;
  unsigned char *enc; /* encoded checkpoint */
  size_t enc_cap;
  size_t enc_len;
  int64_t enc_created;
  int staged; /* enc holds a file checkpoint waiting for the
                 pending transaction's commit */
  /* progress */
  pe_stream_id_t last_id;
  int last_id_seen;  /* last_id came from the stream (read, or a checkpoint),
                        not from --start-id */
  uint64_t position; /* entries the stream ever held up to last_id */
  uint64_t counter[PE_CHECKPOINT_COUNTERS];
  pe_redis_stream_info_t info;
  uint64_t info_mono; /* when info was last asked for */
  int info_valid;
  /* the transaction of the last batch */
  pe_resp_buf_t txn;
  uint32_t txn_inner; /* commands between MULTI and EXEC */
  int txn_open;       /* MULTI written, EXEC not yet */
  int txn_pending;    /* closed, not yet acknowledged */
  uint32_t txn_signals;
  uint64_t txn_read_mono; /* when its batch arrived */
  int txn_ckpt;           /* it carries a checkpoint SET */
  int64_t txn_ckpt_created;
  pe_resp_buf_t req;
  /* rejects file */
  FILE *rejects;
  const char *rejects_path;
  char raw[4096];
  /* run totals not kept in checkpoints */
  uint64_t duplicates;
  uint64_t checkpoints;
  uint64_t checkpoint_failures;
  int64_t checkpoint_wall;
  uint64_t entries_run; /* entries read by this process */
  uint64_t first_mono;  /* first batch of this process arrived */
  uint64_t last_mono;   /* last entry processed */
  uint64_t idle_since;
  int warned_full;
  pe_hist_t latency;
  pe_live_http_t *http;
  pe_live_metrics_t metrics;
  uint64_t metrics_mono;
  int status;
  pe_stream_field_t fields[PE_STREAM_MAX_FIELDS];
  pe_tick_out_t out;
} pe__live_t;

static void pe__log(pe__live_t *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pe__log(pe__live_t *L, const char *fmt, ...) {
  if (L->quiet) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  fputs("pattern-engine live: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static const char *pe__id_text(pe_stream_id_t id, char *buf) {
  pe_stream_id_format(id, buf, PE_STREAM_ID_MAX);
  return buf;
}

/* ---- metrics
 * ------------------------------------------------------------------- */

static void pe__metrics_fill(pe__live_t *L, pe_live_metrics_t *m) {
  pe_engine_stats_t st;
  pe_engine_stats(L->engine, &st);
  m->status = L->status;
  m->entries = L->counter[PE__C_ENTRIES];
  m->ticks = st.ticks;
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    m->rejected[r] = L->counter[PE__C_REJECTED + r];
  }
  memcpy(m->signals, st.signals, sizeof m->signals);
  m->duplicates = L->duplicates;
  m->reconnects = pe_redis_reconnects(L->redis);
  m->checkpoints = L->checkpoints;
  m->checkpoint_failures = L->checkpoint_failures;
  m->checkpoint_wall_ns = L->checkpoint_wall;
  m->lag_known = L->info_valid && L->info.has_entries_added;
  m->lag_entries = 0;
  m->lag_ms = 0;
  if (L->info_valid) {
    if (L->info.entries_added > L->position) {
      m->lag_entries = L->info.entries_added - L->position;
    }
    if (L->info.last_generated.ms > L->last_id.ms) {
      m->lag_ms = L->info.last_generated.ms - L->last_id.ms;
    }
  }
  m->gaps = L->counter[PE__C_GAPS];
  m->gap_entries = L->counter[PE__C_GAP_ENTRIES];
  m->symbols = st.symbols;
  pe__id_text(L->last_id, m->last_id);
  m->latency_ns = L->latency;
}

/* Off the per-tick path: at most every 100 ms, or when forced. */
static void pe__metrics_publish(pe__live_t *L, int force) {
  if (L->http == NULL) {
    return;
  }
  uint64_t now = pe_clock_ns();
  if (!force && now - L->metrics_mono < PE__METRICS_EVERY_NS) {
    return;
  }
  pe__metrics_fill(L, &L->metrics);
  if (pe_live_http_publish(L->http, &L->metrics)) {
    L->metrics_mono = now;
  }
}

/* ---- rejects
 * ---------------------------------------------------------------------- */

/* The entry's pairs as name=value;... for the rejects file, cut at the
 * buffer's end. */
static size_t pe__raw_text(pe__live_t *L, size_t n) {
  size_t len = 0;
  size_t cap = sizeof L->raw - 4;
  for (size_t i = 0; i < n && len < cap; i++) {
    const pe_stream_field_t *f = &L->fields[i];
    if (i > 0) {
      L->raw[len++] = ';';
    }
    size_t k = f->name_len < cap - len ? f->name_len : cap - len;
    memcpy(L->raw + len, f->name, k);
    len += k;
    if (len < cap) {
      L->raw[len++] = '=';
    }
    k = f->value_len < cap - len ? f->value_len : cap - len;
    memcpy(L->raw + len, f->value, k);
    len += k;
  }
  return len;
}

/* Writes one CSV field, quoted when it holds , " or a line break. */
static void pe__csv_field(FILE *f, const char *s, size_t len) {
  int quote = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') {
      quote = 1;
      break;
    }
  }
  if (!quote) {
    fwrite(s, 1, len, f);
    return;
  }
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '"') {
      fputc('"', f);
    }
    fputc(s[i], f);
  }
  fputc('"', f);
}

/* Counts one more command into the batch's transaction, opening it with
 * MULTI first. The caller appends the command itself. */
static void pe__txn_begin_cmd(pe__live_t *L) {
  if (!L->txn_open) {
    pe_resp_reset(&L->txn);
    pe_resp_begin(&L->txn, 1);
    pe_resp_arg(&L->txn, "MULTI", 5);
    L->txn_open = 1;
    L->txn_inner = 0;
    L->txn_signals = 0;
    L->txn_ckpt = 0;
  }
  L->txn_inner += 1;
}

/* Counts and records one rejected entry. Not the hot path's common case,
 * but allocation-free all the same. */
static void pe__reject(pe__live_t *L, pe_stream_id_t id, int reason,
                       const char *field, size_t n_fields) {
  L->counter[PE__C_REJECTED + reason] += 1;
  if (L->rejects != NULL) {
    char idt[PE_STREAM_ID_MAX];
    size_t len = pe__raw_text(L, n_fields);
    fprintf(L->rejects, "%s,%s,%s,", pe__id_text(id, idt),
            pe_stream_reject_name(reason), field);
    pe__csv_field(L->rejects, L->raw, len);
    fputc('\n', L->rejects);
  }
  if (L->rejects_stream != NULL) {
    pe__txn_begin_cmd(L);
    pe_resp_buf_t *b = &L->txn;
    pe_resp_begin(b,
                  (uint32_t)(3u + (L->maxlen ? 3u : 0u) + 6u + 2u * n_fields));
    pe_resp_arg(b, "XADD", 4);
    pe_resp_arg_str(b, L->rejects_stream);
    if (L->maxlen) {
      pe_resp_arg(b, "MAXLEN", 6);
      pe_resp_arg(b, "~", 1);
      pe_resp_arg_u64(b, L->maxlen);
    }
    pe_resp_arg_id(b, id);
    pe_resp_arg(b, "reason", 6);
    pe_resp_arg_str(b, pe_stream_reject_name(reason));
    pe_resp_arg(b, "field", 5);
    pe_resp_arg_str(b, field);
    pe_resp_arg(b, "tick_id", 7);
    pe_resp_arg_id(b, id);
    for (size_t i = 0; i < n_fields; i++) {
      char name[96];
      const pe_stream_field_t *f = &L->fields[i];
      int k = snprintf(name, sizeof name, "raw:%.*s",
                       (int)(f->name_len > 80 ? 80 : f->name_len), f->name);
      pe_resp_arg(b, name, (size_t)k);
      pe_resp_arg(b, f->value, f->value_len);
    }
  }
}

/* ---- one entry
 * --------------------------------------------------------------------- */

/* Processes one entry of a batch. Returns PE_OK or a fatal code (message
 * printed). Hot path. */
static int pe__entry(pe__live_t *L, const pe_redis_value_t *e) {
  pe_stream_id_t id;
  size_t n = 0;
  int rc = pe_redis_entry_fields(e, &id, L->fields, PE_STREAM_MAX_FIELDS, &n);
  if (rc == PE_EINVAL) {
    pe_cli_error(L->cmd, "%s: an entry without a valid id in the XREAD reply",
                 L->ticks);
    return PE_EPARSE;
  }
  L->counter[PE__C_ENTRIES] += 1;
  L->entries_run += 1;
  L->position += 1;
  L->since_ckpt += 1;
  L->last_id = id;
  L->last_id_seen = 1;
  if (rc == PE_ELINELEN) {
    pe__reject(L, id, PE_STREAM_REJECT_TOO_MANY_FIELDS, "", 0);
    return PE_OK;
  }
  if (rc != PE_OK) {
    pe__reject(L, id, PE_STREAM_REJECT_MALFORMED, "", 0);
    return PE_OK;
  }
  pe_tick_t tick;
  pe_stream_why_t why;
  if (pe_stream_entry_decode(L->fields, n, &L->sopt, &tick, &why) != PE_OK) {
    pe__reject(L, id, why.reason, why.field, n);
    return PE_OK;
  }
  rc = pe_engine_push(L->engine, &tick, &L->out);
  if (rc == PE_OK) {
    for (uint32_t k = 0; k < L->out.n_signals; k++) {
      pe_stream_id_t sid;
      if (pe_signal_stream_id(id, k, &sid) != PE_OK) {
        char idt[PE_STREAM_ID_MAX];
        pe_cli_error(L->cmd,
                     "%s: entry %s: its sequence number is too large to "
                     "derive signal ids from (keep it below 2^62)",
                     L->ticks, pe__id_text(id, idt));
        return PE_EFULL;
      }
      pe__txn_begin_cmd(L);
      pe_resp_xadd_signal(&L->txn, L->signals, L->maxlen, sid,
                          &L->out.signal[k], id);
      L->txn_signals += 1;
    }
    return PE_OK;
  }
  int reason = pe_stream_reject_from_error(rc);
  if (reason >= 0) {
    if (rc == PE_EFULL && !L->warned_full) {
      L->warned_full = 1;
      pe__log(L,
              "the symbol table is full (%s symbols): ticks of new "
              "symbols are rejected as symbol_table_full; raise "
              "--max-symbols",
              pe_cli_value(L->cmd, "max-symbols"));
    }
    pe__reject(L, id, reason, rc == PE_EORDER ? "timestamp" : "symbol", n);
    return PE_OK;
  }
  char idt[PE_STREAM_ID_MAX];
  pe_cli_error(L->cmd, "%s: entry %s: %s", L->ticks, pe__id_text(id, idt),
               pe_engine_errmsg(L->engine));
  return rc;
}

/* ---- checkpoints
 * ---------------------------------------------------------------------- */

static int pe__grow(unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap) {
    return PE_OK;
  }
  unsigned char *p = realloc(*buf, need);
  if (p == NULL) {
    return PE_ENOMEM;
  }
  *buf = p;
  *cap = need;
  return PE_OK;
}

/* Encodes a checkpoint of the engine as it is now into L->enc. */
static int pe__ckpt_encode(pe__live_t *L) {
  size_t snap_len = 0;
  int rc = pe__grow(&L->snap, &L->snap_cap, pe_engine_snapshot_size(L->engine));
  if (rc == PE_OK) {
    rc = pe_engine_snapshot(L->engine, L->snap, L->snap_cap, &snap_len);
  }
  if (rc != PE_OK) {
    return rc;
  }
  pe_checkpoint_t c;
  memset(&c, 0, sizeof c);
  c.last_id = L->last_id;
  c.position = L->position;
  c.rejects_offset = 0;
  if (L->rejects != NULL) {
    fflush(L->rejects);
    long off = ftell(L->rejects);
    c.rejects_offset = off > 0 ? (uint64_t)off : 0;
  }
  c.created_ns = pe_wall_ns();
  memcpy(c.counter, L->counter, sizeof c.counter);
  snprintf(c.ticks_stream, sizeof c.ticks_stream, "%s", L->ticks);
  snprintf(c.signals_stream, sizeof c.signals_stream, "%s", L->signals);
  c.snapshot = L->snap;
  c.snapshot_len = snap_len;
  rc = pe__grow(&L->enc, &L->enc_cap, pe_checkpoint_size(&c));
  if (rc == PE_OK) {
    rc = pe_checkpoint_encode(&c, L->enc, L->enc_cap, &L->enc_len);
  }
  L->enc_created = c.created_ns;
  return rc;
}

/* A checkpoint taken at wall time `created` is durable now. */
static void pe__ckpt_done(pe__live_t *L, int64_t created) {
  L->checkpoints += 1;
  L->checkpoint_wall = created;
}

/* Collects the background writer's result, if one is ready. */
static void pe__writer_poll(pe__live_t *L, int wait) {
  if (L->writer == NULL) {
    return;
  }
  int rc;
  int64_t tag;
  char err[512];
  if (pe_ckpt_writer_collect(L->writer, wait, &rc, &tag, err, sizeof err)) {
    if (rc == PE_OK) {
      pe__ckpt_done(L, tag);
    } else {
      L->checkpoint_failures += 1;
      pe__log(L, "checkpoint not written: %s (the previous one stays)", err);
    }
  }
}

/* Hands the staged file checkpoint to the writer: only once every signal
 * before it has been acknowledged. */
static void pe__ckpt_release(pe__live_t *L) {
  if (!L->staged) {
    return;
  }
  L->staged = 0;
  int fd = L->rejects != NULL ? fileno(L->rejects) : -1;
  if (pe_ckpt_writer_submit(L->writer, L->enc, L->enc_len, fd,
                            L->enc_created) != PE_OK) {
    L->checkpoint_failures += 1;
  }
}

/* At a batch boundary: takes a checkpoint when one is due. */
static int pe__ckpt_maybe(pe__live_t *L, uint64_t now) {
  if (L->ckpt_mode == PE__CKPT_NONE || L->since_ckpt == 0) {
    return PE_OK;
  }
  if (L->since_ckpt < L->ckpt_every &&
      now - L->last_ckpt_mono < L->ckpt_interval_ns) {
    return PE_OK;
  }
  if (L->ckpt_mode == PE__CKPT_FILE) {
    pe__writer_poll(L, 0);
    if (L->staged || pe_ckpt_writer_busy(L->writer)) {
      return PE_OK; /* the last one is still on its way: try next batch */
    }
  }
  int rc = pe__ckpt_encode(L);
  if (rc != PE_OK) {
    L->checkpoint_failures += 1;
    pe__log(L, "cannot take a checkpoint: %s", pe_strerror(rc));
    return PE_OK;
  }
  L->since_ckpt = 0;
  L->last_ckpt_mono = now;
  if (L->ckpt_mode == PE__CKPT_REDIS) {
    /* In the same MULTI/EXEC as the signals before it. */
    pe__txn_begin_cmd(L);
    pe_resp_begin(&L->txn, 3);
    pe_resp_arg(&L->txn, "SET", 3);
    pe_resp_arg_str(&L->txn, L->ckpt_key);
    pe_resp_arg(&L->txn, (const char *)L->enc, L->enc_len);
    L->txn_ckpt = 1;
    L->txn_ckpt_created = L->enc_created;
  } else {
    L->staged = 1;
    if (!L->txn_open && !L->txn_pending) {
      pe__ckpt_release(L); /* nothing unacknowledged before it */
    }
  }
  return PE_OK;
}

/* ---- Redis round trips
 * -------------------------------------------------------------- */

/* Closes the open transaction with EXEC. */
static void pe__txn_close(pe__live_t *L, uint64_t read_mono) {
  if (!L->txn_open) {
    return;
  }
  pe_resp_begin(&L->txn, 1);
  pe_resp_arg(&L->txn, "EXEC", 4);
  L->txn_open = 0;
  L->txn_pending = 1;
  L->txn_read_mono = read_mono;
}

/* Reads the replies of the pending transaction. PE_OK: committed;
 * PE_ECONN: connection lost (resend it); PE_EAGAIN: Redis refused it for a
 * passing reason (resend it later); anything else: fatal, printed. */
static int pe__txn_replies(pe__live_t *L) {
  const pe_redis_value_t *v;
  int rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (!pe_redis_value_is(v, "OK")) {
    pe_cli_error(L->cmd, "MULTI failed: %s",
                 v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
    return PE_EPARSE;
  }
  int transient = 0;
  char first_err[256] = "";
  for (uint32_t i = 0; i < L->txn_inner; i++) {
    rc = pe_redis_read(L->redis, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type == PE_REDIS_ERROR && first_err[0] == '\0') {
      snprintf(first_err, sizeof first_err, "%s", v->str);
      transient = pe_redis_is_transient(v->str);
    }
  }
  rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type != PE_REDIS_ARRAY) {
    if (first_err[0] != '\0' && transient) {
      pe__log(L, "Redis refused the batch (%s); retrying", first_err);
      return PE_EAGAIN;
    }
    pe_cli_error(L->cmd, "Redis refused the signals batch: %s",
                 first_err[0]                ? first_err
                 : v->type == PE_REDIS_ERROR ? v->str
                                             : "EXEC returned no results");
    return PE_EPARSE;
  }
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *r = &v->elem[i];
    if (r->type != PE_REDIS_ERROR) {
      continue;
    }
    if (pe_redis_is_duplicate_id(r)) {
      L->duplicates += 1;
      continue;
    }
    pe_cli_error(L->cmd,
                 "cannot write to %s: %s (is the key a stream, and the "
                 "signals stream written by this engine only?)",
                 L->signals, r->str);
    return PE_EPARSE;
  }
  /* Committed. */
  uint64_t now = pe_clock_ns();
  for (uint32_t i = 0; i < L->txn_signals; i++) {
    pe_hist_record(&L->latency, now - L->txn_read_mono);
  }
  if (L->txn_ckpt) {
    pe__ckpt_done(L, L->txn_ckpt_created);
  }
  L->txn_pending = 0;
  pe__ckpt_release(L);
  return PE_OK;
}

/* Appends XINFO STREAM stream. */
static void pe__xinfo(pe_resp_buf_t *b, const char *stream) {
  pe_resp_begin(b, 3);
  pe_resp_arg(b, "XINFO", 5);
  pe_resp_arg(b, "STREAM", 6);
  pe_resp_arg_str(b, stream);
}

/* Looks at fresh stream info: lag, a stream behind the checkpoint, gaps.
 * Returns PE_OK, or PE_EGAP / PE_ESTATE (fatal, printed). */
static int pe__check_info(pe__live_t *L) {
  const pe_redis_stream_info_t *in = &L->info;
  char a[PE_STREAM_ID_MAX], b[PE_STREAM_ID_MAX];
  pe_stream_id_t zero = {0, 0};
  if (L->last_id_seen && pe_stream_id_cmp(L->last_id, zero) > 0 &&
      (!in->exists || pe_stream_id_cmp(in->last_generated, L->last_id) < 0)) {
    pe_cli_error(L->cmd,
                 "the ticks stream '%s' %s, but this engine has read up to "
                 "%s: Redis lost data or the stream was recreated. Nothing "
                 "was read. Start over by removing the checkpoint (and the "
                 "signals stream), or restore Redis's data",
                 L->ticks,
                 in->exists ? "ends before that id" : "does not exist",
                 pe__id_text(L->last_id, a));
    if (in->exists) {
      fprintf(stderr, "  (its last id is %s)\n",
              pe__id_text(in->last_generated, b));
    }
    return PE_ESTATE;
  }
  if (!in->exists || !in->has_entries_added || in->entries_added < in->length) {
    return PE_OK; /* Redis < 7.0: nothing to count with */
  }
  /* Entries gone unread = ever added - accounted for (position) - still to
   * read. "Still to read" is known when nothing is (caught up) or when all
   * of the stream is (its head is past us); in between the head is behind
   * us, so nothing unread was trimmed since the last look, and a gap from
   * earlier is found once caught up. */
  uint64_t unread;
  if (in->length == 0 || pe_stream_id_cmp(in->last, L->last_id) <= 0) {
    unread = 0;
  } else if (pe_stream_id_cmp(in->first, L->last_id) > 0) {
    unread = in->length;
  } else {
    return PE_OK;
  }
  if (in->entries_added <= L->position + unread) {
    return PE_OK;
  }
  uint64_t missing = in->entries_added - L->position - unread;
  fprintf(stderr,
          "pattern-engine live: gap: %llu entries of '%s' after %s were "
          "trimmed or deleted before they were read (first entry now %s)\n",
          (unsigned long long)missing, L->ticks, pe__id_text(L->last_id, a),
          in->length ? pe__id_text(in->first, b) : "none");
  if (!L->gap_skip) {
    /* Nothing counted: the next start finds the same gap, until someone
     * decides to skip it. */
    fprintf(stderr, "pattern-engine live: stopping (--on-gap fail); rerun "
                    "with --on-gap skip to go on from the first entry left, "
                    "the gap counted in pe_live_gap_entries_total\n");
    return PE_EGAP;
  }
  L->counter[PE__C_GAPS] += 1;
  L->counter[PE__C_GAP_ENTRIES] += missing;
  L->position += missing;
  return PE_OK;
}

static void pe__on_retry(void *ctx, const char *reason) {
  pe__log(ctx, "%s; retrying, waits doubling up to 5 s", reason);
}

/* (Re)connects with backoff, waits out LOADING (a restarted Redis replays
 * its AOF) and takes the stream's state with one XINFO; PE_EAGAIN when
 * asked to stop meanwhile. */
static int pe__connect(pe__live_t *L) {
  int was = L->status;
  L->status = was == PE_LIVE_STARTING ? PE_LIVE_STARTING : PE_LIVE_DISCONNECTED;
  pe__metrics_publish(L, 1);
  int rc = pe_redis_connect_stream(L->redis, L->ticks, &pe__stop_flag,
                                   pe__on_retry, L, &L->info);
  if (rc == PE_EPARSE) {
    pe_cli_error(L->cmd, "%s", pe_redis_errmsg(L->redis));
  }
  if (rc != PE_OK) {
    return rc;
  }
  L->info_valid = 1;
  L->info_mono = pe_clock_ns();
  L->status = PE_LIVE_OK;
  if (was != PE_LIVE_STARTING) {
    pe__log(L, "reconnected to Redis");
  }
  return PE_OK;
}

/* ---- start: checkpoint or start id
 * ----------------------------------------------------- */

static int pe__load_checkpoint(pe__live_t *L, int *loaded) {
  *loaded = 0;
  void *data = NULL;
  size_t len = 0;
  char err[512];
  const char *where =
      L->ckpt_mode == PE__CKPT_FILE ? L->ckpt_path : L->ckpt_key;
  if (L->ckpt_mode == PE__CKPT_FILE) {
    int rc = pe_file_read_all(L->ckpt_path, &data, &len, err, sizeof err);
    if (rc == PE_ENOENT) {
      return PE_OK;
    }
    if (rc != PE_OK) {
      pe_cli_error(L->cmd, "cannot read the checkpoint: %s", err);
      return rc;
    }
  } else {
    pe_resp_buf_t *b = &L->req;
    pe_resp_reset(b);
    pe_resp_begin(b, 2);
    pe_resp_arg(b, "GET", 3);
    pe_resp_arg_str(b, L->ckpt_key);
    const pe_redis_value_t *v;
    int rc = pe_redis_command(L->redis, b, &v);
    if (rc != PE_OK) {
      pe_cli_error(L->cmd, "cannot read the checkpoint key: %s",
                   pe_redis_errmsg(L->redis));
      return rc;
    }
    if (v->type == PE_REDIS_NIL) {
      return PE_OK;
    }
    if (v->type != PE_REDIS_STRING) {
      pe_cli_error(L->cmd, "GET %s: %s", L->ckpt_key,
                   v->type == PE_REDIS_ERROR ? v->str : "not a string");
      return PE_EPARSE;
    }
    data = malloc(v->len ? v->len : 1);
    if (data == NULL) {
      pe_cli_error(L->cmd, "out of memory");
      return PE_ENOMEM;
    }
    memcpy(data, v->str, v->len);
    len = v->len;
  }
  pe_checkpoint_t c;
  int rc = pe_checkpoint_decode(data, len, &c, err, sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(L->cmd,
                 "checkpoint %s is unusable: %s. Nothing was loaded. Move it "
                 "away (or delete the key) to start from --start-id, or "
                 "restore a good copy",
                 where, err);
    free(data);
    return rc;
  }
  if (strcmp(c.ticks_stream, L->ticks) != 0 ||
      strcmp(c.signals_stream, L->signals) != 0) {
    pe_cli_error(L->cmd,
                 "checkpoint %s belongs to ticks stream '%s' and signals "
                 "stream '%s', not '%s' and '%s'. Nothing was loaded. Move it "
                 "away (or delete the key) to start from --start-id, or "
                 "restore a good copy",
                 where, c.ticks_stream, c.signals_stream, L->ticks, L->signals);
    free(data);
    return PE_EINVAL;
  }
  rc = pe_engine_restore(L->engine, c.snapshot, c.snapshot_len);
  if (rc != PE_OK) {
    pe_cli_error(L->cmd,
                 "checkpoint %s is unusable: %s. Nothing was loaded. Move it "
                 "away (or delete the key) to start from --start-id, or "
                 "restore a good copy",
                 where, pe_engine_errmsg(L->engine));
    free(data);
    return rc;
  }
  L->last_id = c.last_id;
  L->last_id_seen = 1;
  L->position = c.position;
  memcpy(L->counter, c.counter, sizeof L->counter);
  if (L->rejects != NULL) {
    int fd = fileno(L->rejects);
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < c.rejects_offset) {
      pe__log(L,
              "the rejects file is shorter than the checkpoint says "
              "(%lld < %llu bytes); appending to it",
              (long long)st.st_size, (unsigned long long)c.rejects_offset);
    } else if (ftruncate(fd, (off_t)c.rejects_offset) != 0) {
      pe_cli_error(L->cmd, "cannot truncate '%s': %s", L->rejects_path,
                   strerror(errno));
      free(data);
      return PE_EIO;
    }
    fseek(L->rejects, 0, SEEK_END);
  }
  L->checkpoint_wall = c.created_ns;
  char idt[PE_STREAM_ID_MAX];
  pe__log(L, "resuming after entry %s from checkpoint %s",
          pe__id_text(L->last_id, idt), where);
  free(data);
  *loaded = 1;
  return PE_OK;
}

/* Counts the entries after id (the start point of a fresh start). */
static int pe__count_after(pe__live_t *L, pe_stream_id_t id, uint64_t *count) {
  *count = 0;
  for (;;) {
    pe_resp_buf_t *b = &L->req;
    char start[PE_STREAM_ID_MAX + 1];
    start[0] = '(';
    pe_stream_id_format(id, start + 1, PE_STREAM_ID_MAX);
    pe_resp_reset(b);
    pe_resp_begin(b, 6);
    pe_resp_arg(b, "XRANGE", 6);
    pe_resp_arg_str(b, L->ticks);
    pe_resp_arg_str(b, start);
    pe_resp_arg(b, "+", 1);
    pe_resp_arg(b, "COUNT", 5);
    pe_resp_arg(b, "10000", 5);
    const pe_redis_value_t *v;
    int rc = pe_redis_command(L->redis, b, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type != PE_REDIS_ARRAY) {
      return PE_EPARSE;
    }
    if (v->n == 0) {
      return PE_OK;
    }
    *count += v->n;
    pe_stream_field_t f[1];
    size_t nf;
    if (pe_redis_entry_fields(&v->elem[v->n - 1], &id, f, 0, &nf) ==
        PE_EINVAL) {
      return PE_EPARSE;
    }
  }
}

/* Without a checkpoint: sets last_id and position from --start-id. */
static int pe__fresh_start(pe__live_t *L, const char *start) {
  const pe_redis_stream_info_t *in = &L->info;
  if (strcmp(start, "$") == 0) {
    L->last_id = in->last_generated;
    L->position = in->entries_added;
    return PE_OK;
  }
  if (pe_stream_id_parse(start, strlen(start), &L->last_id) != PE_OK) {
    pe_cli_error(L->cmd, "--start-id: '%s' is not 0, $ or an entry id MS-SEQ",
                 start);
    return PE_EINVAL;
  }
  if (!in->exists || !in->has_entries_added) {
    L->position = 0;
    return PE_OK;
  }
  uint64_t after = in->length;
  pe_stream_id_t zero = {0, 0};
  if (pe_stream_id_cmp(L->last_id, zero) > 0) {
    int rc = pe__count_after(L, L->last_id, &after);
    if (rc != PE_OK) {
      pe_cli_error(L->cmd, "cannot count the entries after --start-id: %s",
                   pe_redis_errmsg(L->redis));
      return rc;
    }
  }
  /* Entries at or before the start, or trimmed before we came: not ours. */
  L->position = in->entries_added - after;
  return PE_OK;
}

/* ---- the loop
 * ------------------------------------------------------------------------- */

/* One round trip: the pending transaction, maybe XINFO, then XREAD (none
 * when stopping). Returns PE_OK, PE_ECONN, PE_EAGAIN or a fatal code. */
static int pe__trip(pe__live_t *L, int stopping) {
  pe_resp_buf_t *b = &L->req;
  pe_resp_reset(b);
  if (L->txn_pending) {
    pe_resp_append(b, &L->txn);
  }
  uint64_t now = pe_clock_ns();
  int ask_info = !stopping && now - L->info_mono >= PE__INFO_EVERY_NS;
  if (ask_info) {
    pe__xinfo(b, L->ticks);
  }
  if (!stopping) {
    char idt[PE_STREAM_ID_MAX];
    pe_resp_begin(b, 8);
    pe_resp_arg(b, "XREAD", 5);
    pe_resp_arg(b, "COUNT", 5);
    pe_resp_arg_u64(b, L->count);
    pe_resp_arg(b, "BLOCK", 5);
    pe_resp_arg_u64(b, L->block_ms);
    pe_resp_arg(b, "STREAMS", 7);
    pe_resp_arg_str(b, L->ticks);
    pe_resp_arg_str(b, pe__id_text(L->last_id, idt));
  }
  if (b->len == 0) {
    return PE_OK;
  }
  if (b->failed) {
    pe_cli_error(L->cmd, "out of memory for a batch of commands");
    return PE_ENOMEM;
  }
  int rc = pe_redis_write(L->redis, b->data, b->len);
  if (rc != PE_OK) {
    return rc;
  }
  if (L->txn_pending) {
    rc = pe__txn_replies(L);
    if (rc != PE_OK) {
      if (rc == PE_EAGAIN) {
        /* Drain the rest of this trip's replies before retrying. */
        const pe_redis_value_t *v;
        int n = (ask_info ? 1 : 0) + (stopping ? 0 : 1);
        for (int i = 0; i < n; i++) {
          if (pe_redis_read(L->redis, &v) != PE_OK) {
            return PE_ECONN;
          }
        }
      }
      return rc;
    }
  }
  const pe_redis_value_t *v;
  if (ask_info) {
    rc = pe_redis_read(L->redis, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (pe_redis_stream_info_parse(v, &L->info) != PE_OK) {
      pe_cli_error(L->cmd, "XINFO STREAM %s: %s", L->ticks,
                   v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
      return PE_EPARSE;
    }
    L->info_valid = 1;
    L->info_mono = now;
    rc = pe__check_info(L);
    if (rc != PE_OK) {
      if (!stopping) {
        (void)pe_redis_read(L->redis, &v); /* the XREAD; not processed */
      }
      return rc;
    }
  }
  if (stopping) {
    return PE_OK;
  }
  rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  uint64_t arrived = pe_clock_ns();
  if (v->type == PE_REDIS_ERROR) {
    if (pe_redis_is_transient(v->str)) {
      return PE_EAGAIN;
    }
    pe_cli_error(L->cmd, "XREAD %s: %s", L->ticks, v->str);
    return PE_EPARSE;
  }
  const pe_redis_value_t *entries;
  size_t n;
  if (pe_redis_xread_entries(v, &entries, &n) != PE_OK) {
    pe_cli_error(L->cmd, "XREAD %s: unexpected reply shape", L->ticks);
    return PE_EPARSE;
  }
  if (n == 0) {
    if (L->idle_since == 0) {
      L->idle_since = arrived;
    }
    return PE_OK;
  }
  L->idle_since = 0;
  if (L->first_mono == 0) {
    L->first_mono = arrived;
  }
  for (size_t i = 0; i < n; i++) {
    rc = pe__entry(L, &entries[i]);
    if (rc != PE_OK) {
      return rc;
    }
  }
  L->last_mono = pe_clock_ns();
  rc = pe__ckpt_maybe(L, L->last_mono);
  pe__txn_close(L, arrived);
  return rc;
}

/* Final checkpoint at a clean stop: the state now, every signal before it
 * acknowledged. Written synchronously. */
static int pe__final_checkpoint(pe__live_t *L) {
  if (L->ckpt_mode == PE__CKPT_NONE) {
    return PE_OK;
  }
  if (L->ckpt_mode == PE__CKPT_FILE) {
    pe__writer_poll(L, 1);
  }
  int rc = pe__ckpt_encode(L);
  char err[512] = "";
  if (rc == PE_OK && L->ckpt_mode == PE__CKPT_FILE) {
    if (L->rejects != NULL && fsync(fileno(L->rejects)) != 0) {
      rc = PE_EIO;
      snprintf(err, sizeof err, "cannot fsync the rejects file");
    } else {
      rc = pe_file_write_atomic(L->ckpt_path, L->enc, L->enc_len, err,
                                sizeof err);
    }
  } else if (rc == PE_OK) {
    pe_resp_buf_t *b = &L->req;
    pe_resp_reset(b);
    pe_resp_begin(b, 3);
    pe_resp_arg(b, "SET", 3);
    pe_resp_arg_str(b, L->ckpt_key);
    pe_resp_arg(b, (const char *)L->enc, L->enc_len);
    const pe_redis_value_t *v;
    rc = pe_redis_command(L->redis, b, &v);
    if (rc == PE_OK && !pe_redis_value_is(v, "OK")) {
      rc = PE_EIO;
      snprintf(err, sizeof err, "%s",
               v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
    } else if (rc != PE_OK) {
      snprintf(err, sizeof err, "%s", pe_redis_errmsg(L->redis));
    }
  }
  if (rc != PE_OK) {
    pe_cli_error(L->cmd, "final checkpoint not written: %s%s%s",
                 pe_strerror(rc), err[0] ? ": " : "", err);
    return rc;
  }
  pe__ckpt_done(L, L->enc_created);
  return PE_OK;
}

/* Round trips until a stop (signal or --exit-on-idle) with nothing left
 * unacknowledged (PE_OK), a stop while Redis is away (PE_ECONN), or a fatal
 * error (printed). Reconnects and retries in between. */
static int pe__run_loop(pe__live_t *L) {
  int stopping = 0;
  for (;;) {
    if (pe__stop_flag && !stopping) {
      stopping = 1;
      L->status = PE_LIVE_STOPPING;
      pe__log(L, "stopping: draining and checkpointing");
    }
    if (!pe_redis_is_connected(L->redis)) {
      int rc = pe__connect(L);
      if (rc == PE_EAGAIN) {
        return PE_ECONN; /* stopped while Redis was away */
      }
      if (rc != PE_OK) {
        return rc;
      }
      rc = pe__check_info(L);
      if (rc != PE_OK) {
        return rc;
      }
    }
    if (stopping && !L->txn_pending) {
      return PE_OK;
    }
    if (stopping && pe__signals >= 2) {
      pe_cli_error(L->cmd, "a second signal: stopping without the last "
                           "batch's acknowledgement; its signals will be "
                           "derived again from the last checkpoint");
      return PE_ESTATE;
    }
    int rc = pe__trip(L, stopping);
    if (rc == PE_ECONN) {
      pe__log(L, "%s; reconnecting", pe_redis_errmsg(L->redis));
      continue;
    }
    if (rc == PE_EAGAIN) {
      struct timespec ts = {0, 200000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    if (rc != PE_OK) {
      return rc;
    }
    if (L->idle_exit_ns && L->idle_since &&
        pe_clock_ns() - L->idle_since >= L->idle_exit_ns && !stopping) {
      pe__stop_flag = 1;
    }
    if (L->ckpt_mode == PE__CKPT_FILE) {
      pe__writer_poll(L, 0);
    }
    pe__metrics_publish(L, 0);
  }
}

/* ---- totals
 * ------------------------------------------------------------------------------
 */

static void pe__print_summary(pe__live_t *L, double wall_s) {
  pe_engine_stats_t st;
  pe_engine_stats(L->engine, &st);
  FILE *o = stderr;
  char idt[PE_STREAM_ID_MAX];
  double active = L->last_mono > L->first_mono
                      ? (double)(L->last_mono - L->first_mono) * 1e-9
                      : 0.0;
  fprintf(o, "live %s -> %s\n", L->ticks, L->signals);
  fprintf(o, "  last entry   %s\n", pe__id_text(L->last_id, idt));
  fprintf(o, "  entries      %llu (this run %llu)\n",
          (unsigned long long)L->counter[PE__C_ENTRIES],
          (unsigned long long)L->entries_run);
  fprintf(o, "  accepted     %llu\n", (unsigned long long)st.ticks);
  uint64_t rej = 0;
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    rej += L->counter[PE__C_REJECTED + r];
  }
  fprintf(o, "  rejected     %llu", (unsigned long long)rej);
  const char *sep = " (";
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    if (L->counter[PE__C_REJECTED + r]) {
      fprintf(o, "%s%s %llu", sep, pe_stream_reject_name(r),
              (unsigned long long)L->counter[PE__C_REJECTED + r]);
      sep = ", ";
    }
  }
  fputs(rej ? ")\n" : "\n", o);
  fprintf(o, "  symbols      %u\n", st.symbols);
  uint64_t all = 0;
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    all += st.signals[p];
  }
  fprintf(o, "  signals      %llu", (unsigned long long)all);
  sep = " (";
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    if (st.signals[p]) {
      fprintf(o, "%s%s %llu", sep,
              p < PE_RULE_COUNT ? pe_rule_name(p) : "model",
              (unsigned long long)st.signals[p]);
      sep = ", ";
    }
  }
  fputs(all ? ")\n" : "\n", o);
  fprintf(o, "  duplicates   %llu (writes Redis already had)\n",
          (unsigned long long)L->duplicates);
  fprintf(o, "  reconnects   %llu\n",
          (unsigned long long)pe_redis_reconnects(L->redis));
  fprintf(o, "  checkpoints  %llu (%llu failed)\n",
          (unsigned long long)L->checkpoints,
          (unsigned long long)L->checkpoint_failures);
  fprintf(o, "  gaps         %llu (%llu entries)\n",
          (unsigned long long)L->counter[PE__C_GAPS],
          (unsigned long long)L->counter[PE__C_GAP_ENTRIES]);
  fprintf(o, "  wall time    %.3f s (%.3f s from first to last entry)\n",
          wall_s, active);
  fprintf(o, "  throughput   %.0f entries/s while entries came\n",
          active > 0 ? (double)L->entries_run / active : 0.0);
  if (L->latency.count) {
    fprintf(o,
            "  latency      batch in -> signals acknowledged: p50 %.1f us, "
            "p99 %.1f us, max %.1f us (%llu signals)\n",
            (double)pe_hist_quantile(&L->latency, 0.5) * 1e-3,
            (double)pe_hist_quantile(&L->latency, 0.99) * 1e-3,
            (double)L->latency.max * 1e-3,
            (unsigned long long)L->latency.count);
  }
}

static int pe__write_summary_json(pe__live_t *L, const char *path,
                                  double wall_s) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    pe_cli_error(L->cmd, "cannot write '%s': %s", path, strerror(errno));
    return PE_EXIT_FAIL;
  }
  pe_engine_stats_t st;
  pe_engine_stats(L->engine, &st);
  char idt[PE_STREAM_ID_MAX];
  double active = L->last_mono > L->first_mono
                      ? (double)(L->last_mono - L->first_mono) * 1e-9
                      : 0.0;
  fprintf(f,
          "{\"last_id\":\"%s\",\"entries\":%llu,\"entries_run\":%llu,"
          "\"accepted\":%llu,\"rejected\":{",
          pe__id_text(L->last_id, idt),
          (unsigned long long)L->counter[PE__C_ENTRIES],
          (unsigned long long)L->entries_run, (unsigned long long)st.ticks);
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    fprintf(f, "%s\"%s\":%llu", r ? "," : "", pe_stream_reject_name(r),
            (unsigned long long)L->counter[PE__C_REJECTED + r]);
  }
  fprintf(f, "},\"symbols\":%u,\"signals\":{", st.symbols);
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    fprintf(f, "%s\"%s\":%llu", p ? "," : "",
            p < PE_RULE_COUNT ? pe_rule_name(p) : "model",
            (unsigned long long)st.signals[p]);
  }
  fprintf(f,
          "},\"duplicates\":%llu,\"reconnects\":%llu,\"checkpoints\":%llu,"
          "\"checkpoint_failures\":%llu,\"gaps\":%llu,\"gap_entries\":%llu,"
          "\"wall_s\":%.6f,\"active_s\":%.6f,\"entries_per_s\":%.1f,"
          "\"latency_us\":{\"count\":%llu,\"p50\":%.3f,\"p99\":%.3f,"
          "\"max\":%.3f}}\n",
          (unsigned long long)L->duplicates,
          (unsigned long long)pe_redis_reconnects(L->redis),
          (unsigned long long)L->checkpoints,
          (unsigned long long)L->checkpoint_failures,
          (unsigned long long)L->counter[PE__C_GAPS],
          (unsigned long long)L->counter[PE__C_GAP_ENTRIES], wall_s, active,
          active > 0 ? (double)L->entries_run / active : 0.0,
          (unsigned long long)L->latency.count,
          (double)pe_hist_quantile(&L->latency, 0.5) * 1e-3,
          (double)pe_hist_quantile(&L->latency, 0.99) * 1e-3,
          (double)L->latency.max * 1e-3);
  return fclose(f) == 0 ? PE_EXIT_OK : PE_EXIT_FAIL;
}

/* --state-out: the engine snapshot, byte-comparable with replay's. */
static int pe__write_state(pe__live_t *L, const char *path) {
  char err[768];
  if (pe_engine_save(L->engine, path, err, sizeof err) != PE_OK) {
    pe_cli_error(L->cmd, "cannot write the state: %s", err);
    return PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

/* ---- the command
 * ------------------------------------------------------------------------ */

static int pe__setup(pe__live_t *L, const pe_cli_command_t *cmd) {
  L->quiet = pe_cli_is_set(cmd, "quiet");
  L->ticks = pe_cli_value(cmd, "ticks-stream");
  L->signals = pe_cli_value(cmd, "signals-stream");
  if (L->ticks[0] == '\0' || L->signals[0] == '\0' ||
      strlen(L->ticks) > PE_CHECKPOINT_NAME_MAX ||
      strlen(L->signals) > PE_CHECKPOINT_NAME_MAX) {
    pe_cli_error(cmd, "stream names must be 1..%d bytes",
                 PE_CHECKPOINT_NAME_MAX);
    return PE_EXIT_USAGE;
  }
  if (strcmp(L->ticks, L->signals) == 0) {
    pe_cli_error(cmd, "--ticks-stream and --signals-stream must differ");
    return PE_EXIT_USAGE;
  }
  L->rejects_stream = pe_cli_flag(cmd, "rejects-stream")->value;
  if (L->rejects_stream != NULL &&
      (strcmp(L->rejects_stream, L->ticks) == 0 ||
       strcmp(L->rejects_stream, L->signals) == 0)) {
    pe_cli_error(cmd, "--rejects-stream must differ from the ticks and "
                      "signals streams");
    return PE_EXIT_USAGE;
  }
  uint32_t u32;
  double d;
  if (pe_cli_u64(cmd, "signals-maxlen", &L->maxlen) != PE_EXIT_OK ||
      pe_cli_u64(cmd, "checkpoint-every", &L->ckpt_every) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "count", &L->count) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "block-ms", &L->block_ms) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (L->count == 0 || L->count > 1000000 || L->block_ms == 0 ||
      L->block_ms > 60000) {
    pe_cli_error(cmd, "--count must be 1..1000000 and --block-ms 1..60000");
    return PE_EXIT_USAGE;
  }
  if (L->ckpt_every == 0) {
    L->ckpt_every = UINT64_MAX;
  }
  if (pe_cli_double(cmd, "checkpoint-interval", &d) != PE_EXIT_OK ||
      !(d >= 0.0 && d <= 1e6)) {
    pe_cli_error(cmd, "--checkpoint-interval must be 0..1e6 seconds");
    return PE_EXIT_USAGE;
  }
  L->ckpt_interval_ns = d > 0 ? (uint64_t)(d * 1e9) : UINT64_MAX;
  if (pe_cli_is_set(cmd, "exit-on-idle")) {
    if (pe_cli_double(cmd, "exit-on-idle", &d) != PE_EXIT_OK ||
        !(d > 0.0 && d <= 1e6)) {
      pe_cli_error(cmd, "--exit-on-idle must be a positive number of seconds");
      return PE_EXIT_USAGE;
    }
    L->idle_exit_ns = (uint64_t)(d * 1e9);
  }
  const char *on_gap = pe_cli_value(cmd, "on-gap");
  if (strcmp(on_gap, "fail") != 0 && strcmp(on_gap, "skip") != 0) {
    pe_cli_error(cmd, "--on-gap: '%s' is not fail or skip", on_gap);
    return PE_EXIT_USAGE;
  }
  L->gap_skip = strcmp(on_gap, "skip") == 0;
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &L->sopt.ts_unit) !=
      PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    return PE_EXIT_USAGE;
  }
  const char *start = pe_cli_value(cmd, "start-id");
  pe_stream_id_t start_id;
  if (strcmp(start, "$") != 0 &&
      pe_stream_id_parse(start, strlen(start), &start_id) != PE_OK) {
    pe_cli_error(cmd, "--start-id: '%s' is not 0, $ or an entry id MS-SEQ",
                 start);
    return PE_EXIT_USAGE;
  }
  const char *ck = pe_cli_flag(cmd, "checkpoint")->value;
  if (ck != NULL) {
    if (strcmp(ck, "redis") == 0) {
      L->ckpt_mode = PE__CKPT_REDIS;
      if (pe_cli_is_set(cmd, "checkpoint-key")) {
        snprintf(L->ckpt_key, sizeof L->ckpt_key, "%s",
                 pe_cli_value(cmd, "checkpoint-key"));
      } else {
        snprintf(L->ckpt_key, sizeof L->ckpt_key, "%s:checkpoint", L->signals);
      }
    } else if (ck[0] == '\0') {
      pe_cli_error(cmd, "--checkpoint needs a path or 'redis'");
      return PE_EXIT_USAGE;
    } else {
      L->ckpt_mode = PE__CKPT_FILE;
      L->ckpt_path = ck;
    }
  }
  double timeout_s;
  if (pe_cli_double(cmd, "redis-timeout", &timeout_s) != PE_EXIT_OK ||
      !(timeout_s >= 0.1 && timeout_s <= 3600)) {
    pe_cli_error(cmd, "--redis-timeout must be 0.1..3600 seconds");
    return PE_EXIT_USAGE;
  }
  pe_redis_options_t ro;
  memset(&ro, 0, sizeof ro);
  u32 = (uint32_t)(timeout_s * 1000.0);
  ro.io_timeout_ms = u32 + L->block_ms;
  char err[512];
  int rc = pe_redis_open(pe_cli_value(cmd, "redis"), &ro, &L->redis, err,
                         sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s%s", rc == PE_EINVAL ? "--redis: " : "", err);
    return rc == PE_EINVAL ? PE_EXIT_USAGE : PE_EXIT_FAIL;
  }
  return PE_EXIT_OK;
}

/* The command: set up, connect, load the checkpoint or place the start,
 * run the loop, then the final checkpoint, summary and state. */
static int pe__live_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  pe__live_t *L = calloc(1, sizeof *L);
  if (L == NULL) {
    pe_cli_error(cmd, "out of memory");
    return PE_EXIT_FAIL;
  }
  L->cmd = cmd;
  pe_hist_init(&L->latency);
  pe__stop_flag = 0;
  pe__signals = 0;
  uint64_t start_mono = pe_clock_ns();
  pe_engine_config_t config;
  rc = pe_cli_engine_config(cmd, &config);
  /* As replay without --features-out: only the features the rules read
   * (windows, when a model is attached, still get them all). */
  config.all_features = 0;
  if (rc == PE_EXIT_OK) {
    rc = pe__setup(L, cmd);
  }
  if (rc != PE_EXIT_OK) {
    goto done;
  }
  char err[512];
  if (pe_engine_create(&config, &L->engine, err, sizeof err) != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    rc = PE_EXIT_USAGE;
    goto done;
  }
  rc = pe_cli_open_backend(cmd, L->engine, &L->backend);
  if (rc != PE_EXIT_OK) {
    goto done;
  }
  rc = PE_EXIT_FAIL;
  if (pe_cli_is_set(cmd, "rejects")) {
    L->rejects_path = pe_cli_value(cmd, "rejects");
    /* Opened without truncating: a checkpoint says how much of it stays. */
    int fd = open(L->rejects_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    L->rejects = fd >= 0 ? fdopen(fd, "r+") : NULL;
    if (L->rejects == NULL) {
      pe_cli_error(cmd, "cannot write '%s': %s", L->rejects_path,
                   strerror(errno));
      if (fd >= 0) {
        close(fd);
      }
      goto done;
    }
  }
  if (pe_cli_is_set(cmd, "http")) {
    rc = pe_live_http_start(cmd->name, pe_cli_value(cmd, "http"), &L->http);
    if (rc != PE_EXIT_OK) {
      goto done;
    }
    rc = PE_EXIT_FAIL;
  }
  if (L->ckpt_mode == PE__CKPT_FILE &&
      pe_ckpt_writer_create(L->ckpt_path, &L->writer) != PE_OK) {
    pe_cli_error(cmd, "cannot start the checkpoint writer");
    goto done;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = pe__on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  L->status = PE_LIVE_STARTING;
  int crc = pe__connect(L);
  if (crc != PE_OK) {
    if (crc == PE_EAGAIN) {
      pe_cli_error(cmd, "stopped before Redis could be reached: %s",
                   pe_redis_errmsg(L->redis));
    }
    goto done;
  }
  int loaded = 0;
  if (L->ckpt_mode != PE__CKPT_NONE &&
      pe__load_checkpoint(L, &loaded) != PE_OK) {
    goto done;
  }
  if (!loaded) {
    if (L->ckpt_mode == PE__CKPT_NONE) {
      pe__log(L, "no --checkpoint: a restart starts again from --start-id "
                 "with empty state");
    }
    if (pe__fresh_start(L, pe_cli_value(cmd, "start-id")) != PE_OK) {
      goto done;
    }
    if (L->rejects != NULL) {
      if (ftruncate(fileno(L->rejects), 0) != 0) {
        pe_cli_error(cmd, "cannot truncate '%s'", L->rejects_path);
        goto done;
      }
      fputs("tick_id,reason,field,raw\n", L->rejects);
    }
  } else if (pe_cli_is_set(cmd, "start-id")) {
    pe__log(L, "--start-id ignored: a checkpoint was found");
  }
  if (!L->info.has_entries_added && L->info.exists) {
    pe__log(L, "this Redis has no XINFO entries-added (Redis < 7.0): trimmed "
               "entries cannot be detected and lag is not counted");
  }
  if (pe__check_info(L) != PE_OK) {
    goto done;
  }
  L->last_ckpt_mono = pe_clock_ns();
  L->status = PE_LIVE_OK;
  pe__metrics_publish(L, 1);

  int lrc = pe__run_loop(L);
  L->status = PE_LIVE_STOPPING;
  pe__metrics_publish(L, 1);
  if (lrc == PE_ECONN) {
    pe_cli_error(cmd,
                 "stopped while Redis was unreachable (%s); the last "
                 "batch's signals were not acknowledged and will be derived "
                 "again from the last checkpoint on restart",
                 pe_redis_errmsg(L->redis));
    goto done;
  }
  if (lrc != PE_OK) {
    if (lrc == PE_EGAP && L->ckpt_mode != PE__CKPT_NONE && !L->txn_pending) {
      (void)pe__final_checkpoint(L);
    }
    goto done;
  }
  if (pe__final_checkpoint(L) != PE_OK) {
    goto done;
  }
  if (L->rejects != NULL && fflush(L->rejects) != 0) {
    pe_cli_error(cmd, "cannot write the rejects file");
    goto done;
  }
  double wall_s = (double)(pe_clock_ns() - start_mono) * 1e-9;
  if (!L->quiet) {
    pe__print_summary(L, wall_s);
  }
  if (pe_cli_is_set(cmd, "summary-json") &&
      pe__write_summary_json(L, pe_cli_value(cmd, "summary-json"), wall_s) !=
          PE_EXIT_OK) {
    goto done;
  }
  if (pe_cli_is_set(cmd, "state-out") &&
      pe__write_state(L, pe_cli_value(cmd, "state-out")) != PE_EXIT_OK) {
    goto done;
  }
  rc = PE_EXIT_OK;

done:
  pe_live_http_stop(L->http);
  pe_ckpt_writer_destroy(L->writer);
  if (L->rejects != NULL) {
    fclose(L->rejects);
  }
  pe_redis_destroy(L->redis);
  pe_engine_destroy(L->engine);
  pe_backend_close(L->backend);
  pe_resp_free(&L->txn);
  pe_resp_free(&L->req);
  free(L->snap);
  free(L->enc);
  free(L);
  return rc;
}

const pe_cli_command_t pe_cli_live = {
    .name = "live",
    .summary = "Read ticks from a Redis Stream and write signals to another",
    .usage = "live [--redis URL] [--checkpoint PATH|redis] [FLAGS]",
    .details =
        "Tick entries have flat fields symbol, price, volume (or size, qty)\n"
        "and timestamp (or ts; epoch s with a fraction, ms, us or ns, or\n"
        "ISO-8601), or one field `data` with those keys as a JSON object.\n"
        "Bad entries are counted by reason and skipped. Signals go to the\n"
        "signals stream as flat fields id, symbol, score, pattern, timestamp\n"
        "(ns), confidence, price, fired, <rule>, <rule>_contribution and\n"
        "tick_id, with stream ids derived from the tick's entry id, so a\n"
        "restart never writes one twice. docs/live.md describes checkpoints,\n"
        "the delivery guarantee, gaps, metrics and exit codes (0: stopped by\n"
        "SIGTERM/SIGINT or --exit-on-idle after a final checkpoint; 1: a\n"
        "failure, a gap with --on-gap fail, or a bad checkpoint; 2: usage).\n"
        "\n"
        "examples:\n"
        "  pattern-engine live --redis redis://127.0.0.1:6379/0 --checkpoint "
        "/var/lib/pe/ckpt \\\n"
        "      --http 127.0.0.1:8005\n"
        "  pattern-engine live --checkpoint redis --rejects-stream "
        "rejects:global\n"
        "  TICKS_STREAM=ticks:test pattern-engine live --exit-on-idle 2 "
        "--state-out state.bin\n",
    .flags = pe__live_flags,
    .n_flags = sizeof pe__live_flags / sizeof pe__live_flags[0],
    .run = pe__live_run,
};
