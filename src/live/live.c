/* The live service's handle and its step (see pe/live.h).
 *
 * A step is one round trip on one connection. It sends, in one write:
 *   MULTI, the XADDs of the last batch's signals and rejects [, SET of a
 *   checkpoint], EXEC      (when the last batch produced any)
 *   XINFO STREAM ticks     (about once a second: lag and gap accounting)
 *   XREAD COUNT n [BLOCK ms] STREAMS ticks <last id>
 * and then reads the replies in that order. Ticks of the new batch go
 * through the engine one by one (entry.c); their outputs are formatted into
 * the next transaction (txn.c), which is kept until Redis has acknowledged
 * it, and resent after a reconnect. Memory is bounded by one batch in and
 * one batch out, whether Redis is there or not. While Redis is away a step
 * makes at most one connection attempt, waits doubling from 100 ms to 5 s
 * (with jitter) between attempts. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live/live_impl.h"
#include "pe/clock.h"
#include "pe/error.h"

#define PE__INFO_EVERY_NS 1000000000ull
#define PE__BACKOFF_MIN_MS 100u
#define PE__BACKOFF_MAX_MS 5000u
#define PE__LOADING_WAIT_MS 100u
#define PE__REFUSED_WAIT_MS 200u

int pe__live_fail(pe_live_t *L, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->errmsg, sizeof L->errmsg, fmt, ap);
  va_end(ap);
  return rc;
}

void pe__live_log(pe_live_t *L, int level, const char *fmt, ...) {
  if (L->cfg.log == NULL) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->logline, sizeof L->logline, fmt, ap);
  va_end(ap);
  L->cfg.log(L->cfg.log_ctx, level, L->logline);
}

const char *pe__live_id_text(pe_stream_id_t id, char *buf) {
  pe_stream_id_format(id, buf, PE_STREAM_ID_MAX);
  return buf;
}

void pe_live_config_default(pe_live_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->redis_url = PE_LIVE_DEFAULT_REDIS_URL;
  cfg->redis_timeout_ms = PE_LIVE_DEFAULT_REDIS_TIMEOUT_S * 1000u;
  cfg->ticks_stream = PE_LIVE_DEFAULT_TICKS_STREAM;
  cfg->signals_stream = PE_LIVE_DEFAULT_SIGNALS_STREAM;
  cfg->signals_maxlen = PE_LIVE_DEFAULT_SIGNALS_MAXLEN;
  cfg->checkpoint = PE_LIVE_CHECKPOINT_NONE;
  cfg->checkpoint_every = PE_LIVE_DEFAULT_CHECKPOINT_EVERY;
  cfg->checkpoint_interval_ms = PE_LIVE_DEFAULT_CHECKPOINT_INTERVAL_S * 1000u;
  cfg->start_id = PE_LIVE_DEFAULT_START_ID;
  cfg->on_gap = PE_LIVE_GAP_FAIL;
  cfg->stream.ts_unit = PE_TS_AUTO;
  cfg->count = PE_LIVE_DEFAULT_COUNT;
  cfg->block_ms = PE_LIVE_DEFAULT_BLOCK_MS;
}

/* Copies an optional string into dst; PE_EINVAL when it does not fit. */
static int pe__copy(char *dst, size_t cap, const char *src, const char *what,
                    char *err, size_t err_cap) {
  dst[0] = '\0';
  if (src != NULL && strlen(src) >= cap) {
    snprintf(err, err_cap, "%s is longer than %zu bytes", what, cap - 1);
    return PE_EINVAL;
  }
  if (src != NULL) {
    memcpy(dst, src, strlen(src) + 1);
  }
  return PE_OK;
}

/* The settings' checks and copies: PE_EINVAL with a reason in err. */
static int pe__configure(pe_live_t *L, const pe_live_config_t *cfg, char *err,
                         size_t cap) {
  L->cfg = *cfg;
  if (cfg->engine == NULL || cfg->ticks_stream == NULL ||
      cfg->signals_stream == NULL || cfg->redis_url == NULL ||
      cfg->start_id == NULL) {
    snprintf(err, cap,
             "engine, redis_url, the stream names and start_id "
             "are required");
    return PE_EINVAL;
  }
  L->engine = cfg->engine;
  if (cfg->ticks_stream[0] == '\0' || cfg->signals_stream[0] == '\0' ||
      strlen(cfg->ticks_stream) > PE_CHECKPOINT_NAME_MAX ||
      strlen(cfg->signals_stream) > PE_CHECKPOINT_NAME_MAX) {
    snprintf(err, cap, "stream names must be 1..%d bytes",
             PE_CHECKPOINT_NAME_MAX);
    return PE_EINVAL;
  }
  if (strcmp(cfg->ticks_stream, cfg->signals_stream) == 0) {
    snprintf(err, cap, "the ticks and signals streams must differ");
    return PE_EINVAL;
  }
  if (cfg->rejects_stream != NULL &&
      (strcmp(cfg->rejects_stream, cfg->ticks_stream) == 0 ||
       strcmp(cfg->rejects_stream, cfg->signals_stream) == 0 ||
       cfg->rejects_stream[0] == '\0')) {
    snprintf(err, cap,
             "the rejects stream must be named and differ from the "
             "ticks and signals streams");
    return PE_EINVAL;
  }
  if (cfg->count == 0 || cfg->count > 1000000 || cfg->block_ms == 0 ||
      cfg->block_ms > 60000) {
    snprintf(err, cap, "count must be 1..1000000 and block_ms 1..60000");
    return PE_EINVAL;
  }
  if (cfg->redis_timeout_ms < 100 || cfg->redis_timeout_ms > 3600000) {
    snprintf(err, cap, "redis_timeout_ms must be 100..3600000");
    return PE_EINVAL;
  }
  if (cfg->on_gap != PE_LIVE_GAP_FAIL && cfg->on_gap != PE_LIVE_GAP_SKIP) {
    snprintf(err, cap, "on_gap must be fail or skip");
    return PE_EINVAL;
  }
  pe_stream_id_t id;
  if (strcmp(cfg->start_id, "$") != 0 &&
      pe_stream_id_parse(cfg->start_id, strlen(cfg->start_id), &id) != PE_OK) {
    snprintf(err, cap, "start id '%.64s' is not 0, $ or an entry id MS-SEQ",
             cfg->start_id);
    return PE_EINVAL;
  }
  int kind = cfg->checkpoint;
  if (kind != PE_LIVE_CHECKPOINT_NONE && kind != PE_LIVE_CHECKPOINT_FILE &&
      kind != PE_LIVE_CHECKPOINT_REDIS) {
    snprintf(err, cap, "checkpoint must be none, file or redis");
    return PE_EINVAL;
  }
  if (kind == PE_LIVE_CHECKPOINT_FILE &&
      (cfg->checkpoint_path == NULL || cfg->checkpoint_path[0] == '\0')) {
    snprintf(err, cap, "a file checkpoint needs a path");
    return PE_EINVAL;
  }
  int rc = pe__copy(L->ticks, sizeof L->ticks, cfg->ticks_stream,
                    "the ticks stream", err, cap);
  if (rc == PE_OK) {
    rc = pe__copy(L->signals, sizeof L->signals, cfg->signals_stream,
                  "the signals stream", err, cap);
  }
  if (rc == PE_OK) {
    rc = pe__copy(L->rejects_stream, sizeof L->rejects_stream,
                  cfg->rejects_stream, "the rejects stream", err, cap);
  }
  if (rc == PE_OK) {
    rc = pe__copy(L->rejects_path, sizeof L->rejects_path, cfg->rejects_path,
                  "the rejects path", err, cap);
  }
  if (rc == PE_OK && kind == PE_LIVE_CHECKPOINT_FILE) {
    rc = pe__copy(L->ckpt_path, sizeof L->ckpt_path, cfg->checkpoint_path,
                  "the checkpoint path", err, cap);
  }
  if (rc == PE_OK && cfg->checkpoint_key != NULL) {
    rc = pe__copy(L->ckpt_key, sizeof L->ckpt_key, cfg->checkpoint_key,
                  "the checkpoint key", err, cap);
  } else if (rc == PE_OK) {
    snprintf(L->ckpt_key, sizeof L->ckpt_key, "%s:checkpoint", L->signals);
  }
  if (rc == PE_OK && cfg->fence_key != NULL) {
    if (kind != PE_LIVE_CHECKPOINT_REDIS || cfg->fence_key[0] == '\0' ||
        cfg->fence_token == NULL || cfg->fence_token[0] == '\0') {
      snprintf(err, cap, "a fence needs a key, a token and a Redis checkpoint");
      return PE_EINVAL;
    }
    rc = pe__copy(L->fence_key, sizeof L->fence_key, cfg->fence_key,
                  "the fence key", err, cap);
    if (rc == PE_OK) {
      rc = pe__copy(L->fence_token, sizeof L->fence_token, cfg->fence_token,
                    "the fence token", err, cap);
    }
  }
  if (rc != PE_OK) {
    return rc;
  }
  snprintf(L->start_id, sizeof L->start_id, "%s", cfg->start_id);
  L->ckpt_every = cfg->checkpoint_every ? cfg->checkpoint_every : UINT64_MAX;
  L->ckpt_interval_ns = cfg->checkpoint_interval_ms
                            ? cfg->checkpoint_interval_ms * 1000000ull
                            : UINT64_MAX;
  /* The copies stand in for the caller's strings. */
  L->cfg.ticks_stream = L->ticks;
  L->cfg.signals_stream = L->signals;
  L->cfg.rejects_stream = L->rejects_stream[0] ? L->rejects_stream : NULL;
  L->cfg.rejects_path = L->rejects_path[0] ? L->rejects_path : NULL;
  L->cfg.checkpoint_path = L->ckpt_path;
  L->cfg.checkpoint_key = L->ckpt_key;
  L->cfg.start_id = L->start_id;
  L->cfg.fence_key = L->fence_key[0] ? L->fence_key : NULL;
  L->cfg.redis_url = NULL;
  L->cfg.http_addr = NULL;
  return PE_OK;
}

/* The resources: connection handle, rejects file, writer, HTTP server. */
static int pe__open(pe_live_t *L, const pe_live_config_t *cfg, char *err,
                    size_t cap) {
  char why[512];
  if (cfg->checkpoint == PE_LIVE_CHECKPOINT_FILE) {
    int rc = pe__lock_file(L, err, cap);
    if (rc != PE_OK) {
      return rc;
    }
  }
  pe_redis_options_t ro;
  memset(&ro, 0, sizeof ro);
  ro.io_timeout_ms = cfg->redis_timeout_ms + cfg->block_ms;
  int rc = pe_redis_open(cfg->redis_url, &ro, &L->redis, why, sizeof why);
  if (rc != PE_OK) {
    snprintf(err, cap, "%s%s", rc == PE_EINVAL ? "redis url: " : "", why);
    return rc;
  }
  rc = pe__rejects_open(L);
  if (rc != PE_OK) {
    snprintf(err, cap, "%s", L->errmsg);
    return rc;
  }
  if (cfg->checkpoint == PE_LIVE_CHECKPOINT_FILE &&
      pe_ckpt_writer_create(L->ckpt_path, &L->writer) != PE_OK) {
    snprintf(err, cap, "cannot start the checkpoint writer");
    return PE_ENOMEM;
  }
  if (cfg->http_addr != NULL) {
    rc = pe_live_http_start(cfg->http_addr, &L->http, why, sizeof why);
    if (rc != PE_OK) {
      snprintf(err, cap, "http: %s", why);
      return rc;
    }
    pe__live_log(L, PE_LIVE_LOG_INFO, "serving /health and /metrics on %s",
                 pe_live_http_where(L->http));
  }
  return PE_OK;
}

int pe_live_create(const pe_live_config_t *cfg, pe_live_t **out, char *err,
                   size_t err_cap) {
  *out = NULL;
  pe_live_t *L = calloc(1, sizeof *L);
  if (L == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  pe_hist_init(&L->latency);
  L->lock_fd = -1;
  L->created_mono = pe_clock_ns();
  L->rng = L->created_mono | 1u;
  L->status = PE_LIVE_STARTING;
  int rc = pe__configure(L, cfg, err, err_cap);
  if (rc == PE_OK && pe_engine_batched(cfg->engine)) {
    L->held_ids = calloc((size_t)pe_engine_held_max(cfg->engine) + 1,
                         sizeof *L->held_ids);
    if (L->held_ids == NULL) {
      snprintf(err, err_cap, "out of memory");
      rc = PE_ENOMEM;
    } else {
      pe_engine_set_report(cfg->engine, pe__live_report, L);
    }
  }
  if (rc == PE_OK) {
    rc = pe__open(L, cfg, err, err_cap);
  }
  if (rc != PE_OK) {
    pe_live_destroy(L);
    return rc;
  }
  *out = L;
  return PE_OK;
}

void pe_live_destroy(pe_live_t *L) {
  if (L == NULL) {
    return;
  }
  pe_live_http_stop(L->http);
  pe_ckpt_writer_destroy(L->writer);
  pe__lock_file_release(L);
  pe__lease_release(L);
  if (L->rejects != NULL) {
    fclose(L->rejects);
  }
  pe_redis_destroy(L->redis);
  pe_resp_free(&L->txn);
  pe_resp_free(&L->req);
  pe_resp_free(&L->wrap);
  free(L->snap);
  free(L->enc);
  free(L->held_ids);
  free(L);
}

void pe_live_stop(pe_live_t *L) {
  if (L->stop_flag < 2) {
    L->stop_flag = L->stop_flag + 1;
  }
}

const char *pe_live_errmsg(const pe_live_t *L) { return L->errmsg; }

int pe_live_fenced(const pe_live_t *L) { return L->fenced; }

/* ---- connecting
 * ---------------------------------------------------------------- */

/* Sleeps ms, in slices, returning early once a stop is asked for. */
static void pe__nap(pe_live_t *L, uint32_t ms) {
  for (uint32_t slept = 0; slept < ms && !L->stop_flag; slept += 50) {
    uint32_t n = ms - slept < 50 ? ms - slept : 50;
    struct timespec ts = {0, (long)n * 1000000L};
    (void)nanosleep(&ts, NULL);
  }
}

/* After a failed attempt: the next one is due after the current wait, drawn
 * from 75%..125% of it so many clients that lost one server do not all come
 * back at once; the wait doubles up to 5 s. */
static void pe__backoff(pe_live_t *L) {
  if (L->backoff_ms == 0) {
    L->backoff_ms = PE__BACKOFF_MIN_MS;
  }
  L->rng ^= L->rng << 13;
  L->rng ^= L->rng >> 7;
  L->rng ^= L->rng << 17;
  uint32_t spread = (uint32_t)(L->rng % (L->backoff_ms / 2 + 1));
  L->next_connect_mono =
      pe_clock_ns() +
      (uint64_t)(L->backoff_ms - L->backoff_ms / 4 + spread) * 1000000ull;
  L->backoff_ms = L->backoff_ms * 2 > PE__BACKOFF_MAX_MS ? PE__BACKOFF_MAX_MS
                                                         : L->backoff_ms * 2;
}

/* Waits for the next attempt, at most wait_ms. 1 when it is due. */
static int pe__connect_due(pe_live_t *L, uint32_t wait_ms) {
  uint64_t now = pe_clock_ns();
  if (now >= L->next_connect_mono) {
    return 1;
  }
  uint64_t left_ms = (L->next_connect_mono - now + 999999) / 1000000;
  pe__nap(L, left_ms < wait_ms ? (uint32_t)left_ms : wait_ms);
  return pe_clock_ns() >= L->next_connect_mono;
}

static void pe__set_status(pe_live_t *L, int status) {
  if (L->status != status) {
    L->status = status;
    pe__metrics_publish(L, 1);
  }
}

/* One XINFO STREAM: the stream's state after a (re)connect; a restarted
 * Redis that is still reading its AOF answers LOADING (PE_EAGAIN). */
static int pe__ready(pe_live_t *L, uint32_t wait_ms) {
  pe_resp_buf_t *b = &L->req;
  pe_resp_reset(b);
  pe__xinfo(b, L->ticks);
  const pe_redis_value_t *v;
  int rc = pe_redis_command(L->redis, b, &v);
  if (rc == PE_ENOMEM) {
    return pe__live_fail(L, rc, "%s", pe_redis_errmsg(L->redis));
  }
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type == PE_REDIS_ERROR && pe_redis_is_transient(v->str)) {
    pe__nap(L, wait_ms < PE__LOADING_WAIT_MS ? wait_ms : PE__LOADING_WAIT_MS);
    return PE_EAGAIN;
  }
  return pe__xinfo_take(L, v, pe_clock_ns());
}

/* Brings the link up: connected, and the stream answered. PE_OK when it
 * is; PE_EAGAIN when not yet (waited up to wait_ms); fatal otherwise. When
 * stopping, one last attempt is made at once. */
static int pe__link(pe_live_t *L, uint32_t wait_ms) {
  pe__set_status(L, L->started ? PE_LIVE_DISCONNECTED : PE_LIVE_STARTING);
  if (!pe_redis_is_connected(L->redis)) {
    if (!L->stopping && !pe__connect_due(L, wait_ms)) {
      return PE_EAGAIN;
    }
    int rc = pe_redis_connect(L->redis);
    if (rc == PE_ENOMEM) {
      return pe__live_fail(L, rc, "out of memory");
    }
    if (rc != PE_OK && rc != PE_ECONN) {
      return pe__live_fail(L, rc, "%s", pe_redis_errmsg(L->redis));
    }
    if (rc != PE_OK) {
      if (L->backoff_ms == 0) {
        pe__live_log(L, PE_LIVE_LOG_INFO,
                     "%s; retrying, waits doubling up to 5 s",
                     pe_redis_errmsg(L->redis));
      }
      pe__backoff(L);
      return PE_EAGAIN;
    }
  }
  int rc = pe__ready(L, wait_ms);
  if (rc == PE_ECONN) {
    pe__backoff(L);
    return PE_EAGAIN;
  }
  if (rc != PE_OK) {
    return rc;
  }
  if (L->started) {
    pe__live_log(L, PE_LIVE_LOG_INFO, "reconnected to Redis");
  }
  L->backoff_ms = 0;
  L->next_connect_mono = 0;
  L->ready = 1;
  L->lease_mono = 0; /* renewed in the first round trip */
  return PE_OK;
}

/* The first time the link is up: the checkpoint, or the start id. */
static int pe__start(pe_live_t *L) {
  int loaded = 0;
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_REDIS &&
      L->cfg.fence_key == NULL) {
    int rc = pe__lease_acquire(L);
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (L->cfg.checkpoint != PE_LIVE_CHECKPOINT_NONE) {
    int rc = pe__ckpt_load(L, &loaded);
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (!loaded) {
    if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_NONE) {
      pe__live_log(L, PE_LIVE_LOG_INFO,
                   "no checkpoint: a restart starts again from the start id "
                   "with empty state");
    }
    int rc = pe__gap_fresh_start(L);
    if (rc == PE_OK) {
      rc = pe__rejects_reset(L);
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (!L->info.has_entries_added && L->info.exists) {
    pe__live_log(L, PE_LIVE_LOG_INFO,
                 "this Redis has no XINFO entries-added (Redis < 7.0): "
                 "trimmed entries cannot be detected and lag is not counted");
  }
  L->started = 1;
  L->last_ckpt_mono = pe_clock_ns();
  return PE_OK;
}

/* ---- the round trip
 * ------------------------------------------------------------ */

/* Appends the XREAD of the next batch. */
static void pe__xread(pe_live_t *L, pe_resp_buf_t *b, uint32_t block_ms) {
  char idt[PE_STREAM_ID_MAX];
  pe_resp_begin(b, block_ms ? 8 : 6);
  pe_resp_arg(b, "XREAD", 5);
  pe_resp_arg(b, "COUNT", 5);
  pe_resp_arg_u64(b, L->cfg.count);
  if (block_ms) {
    pe_resp_arg(b, "BLOCK", 5);
    pe_resp_arg_u64(b, block_ms);
  }
  pe_resp_arg(b, "STREAMS", 7);
  pe_resp_arg_str(b, L->ticks);
  pe_resp_arg_str(b, pe__live_id_text(L->last_id, idt));
}

/* Reads the XREAD reply and runs its entries through the engine. */
static int pe__batch(pe_live_t *L, pe_live_step_stats_t *st) {
  const pe_redis_value_t *v;
  int rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  uint64_t arrived = pe_clock_ns();
  if (v->type == PE_REDIS_ERROR) {
    if (pe_redis_is_transient(v->str)) {
      return PE_EAGAIN;
    }
    return pe__live_fail(L, PE_EPARSE, "XREAD %s: %s", L->ticks, v->str);
  }
  const pe_redis_value_t *entries;
  size_t n;
  if (pe_redis_xread_entries(v, &entries, &n) != PE_OK) {
    return pe__live_fail(L, PE_EPARSE, "XREAD %s: unexpected reply shape",
                         L->ticks);
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
    rc = pe__live_entry(L, &entries[i]);
    if (rc != PE_OK) {
      return rc;
    }
  }
  /* Every signal of the batch into its transaction, before the checkpoint
   * that the transaction carries: a micro-batched engine's held reports. */
  rc = pe__live_flush(L);
  if (rc != PE_OK) {
    return rc;
  }
  st->entries = (uint32_t)n;
  st->signals = L->txn_open ? L->txn_signals : 0;
  L->last_mono = pe_clock_ns();
  rc = pe__rejects_check(L);
  if (rc == PE_OK) {
    rc = pe__ckpt_maybe(L, L->last_mono);
  }
  pe__txn_close(L, arrived);
  return rc;
}

/* One round trip: the pending transaction, maybe XINFO, then XREAD (none
 * when stopping). PE_OK, PE_ECONN, PE_EAGAIN or fatal (message set). */
static int pe__trip(pe_live_t *L, uint32_t block_ms, pe_live_step_stats_t *st) {
  pe_resp_buf_t *b = &L->req;
  pe_resp_reset(b);
  uint64_t now = pe_clock_ns();
  int renew = pe__lease_due(L, now);
  if (renew) {
    pe__lease_renew_cmd(L, b);
  }
  if (L->txn_pending) {
    pe_resp_append(b, &L->txn);
  }
  int reading = !L->stopping;
  int ask_info = reading && now - L->info_mono >= PE__INFO_EVERY_NS;
  if (ask_info) {
    pe__xinfo(b, L->ticks);
  }
  if (reading) {
    pe__xread(L, b, block_ms);
  }
  /* A buffer that could not grow holds nothing: failed before empty. */
  if (b->failed) {
    return pe__live_fail(L, PE_ENOMEM, "out of memory for a batch of commands");
  }
  if (b->len == 0) {
    return PE_OK;
  }
  int rc = pe_redis_write(L->redis, b->data, b->len);
  if (rc != PE_OK) {
    return rc;
  }
  const pe_redis_value_t *v;
  if (renew) {
    rc = pe_redis_read(L->redis, &v);
    if (rc == PE_OK) {
      rc = pe__lease_take(L, v, now);
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (L->txn_pending) {
    rc = pe__txn_replies(L);
    if (rc == PE_EAGAIN) {
      /* Drain the rest of this trip's replies before retrying. */
      for (int i = 0; i < ask_info + reading; i++) {
        if (pe_redis_read(L->redis, &v) != PE_OK) {
          return PE_ECONN;
        }
      }
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (ask_info) {
    rc = pe_redis_read(L->redis, &v);
    if (rc == PE_OK) {
      rc = pe__xinfo_take(L, v, now);
    }
    if (rc == PE_OK) {
      rc = pe__gap_check(L);
    }
    if (rc != PE_OK) {
      if (rc != PE_ECONN && reading) {
        (void)pe_redis_read(L->redis, &v); /* the XREAD; not processed */
      }
      return rc;
    }
  }
  return reading ? pe__batch(L, st) : PE_OK;
}

/* The clean end of a stop: the final checkpoint, the rejects file closed. */
static int pe__finish(pe_live_t *L) {
  int rc = pe__ckpt_final(L);
  if (rc == PE_OK) {
    rc = pe__rejects_close(L);
  }
  if (rc == PE_OK) {
    pe__lease_release(L);
    L->stopped = 1;
    pe__metrics_publish(L, 1);
    return PE_LIVE_STOPPED;
  }
  return rc;
}

/* A stop asked for while Redis is away: the last checkpoint stands. */
static int pe__stopped_away(pe_live_t *L) {
  if (!L->started) {
    return pe__live_fail(L, PE_ECONN,
                         "stopped before Redis could be reached: %s",
                         pe_redis_errmsg(L->redis));
  }
  return pe__live_fail(L, PE_ECONN,
                       "stopped while Redis was unreachable (%s); the last "
                       "batch's signals were not acknowledged and will be "
                       "derived again from the last checkpoint on restart",
                       pe_redis_errmsg(L->redis));
}

/* The step without its bookkeeping. */
static int pe__step(pe_live_t *L, uint32_t wait_ms, pe_live_step_stats_t *st) {
  if (L->stop_flag && !L->stopping) {
    L->stopping = 1;
    pe__live_log(L, PE_LIVE_LOG_INFO, "stopping: draining and checkpointing");
  }
  if (!L->ready || !pe_redis_is_connected(L->redis)) {
    L->ready = 0;
    int rc = pe__link(L, wait_ms);
    if (rc == PE_EAGAIN) {
      return L->stopping ? pe__stopped_away(L) : PE_OK;
    }
    if (rc == PE_OK) {
      rc = L->started ? PE_OK : pe__start(L);
      if (rc == PE_ECONN) { /* lost while starting: start again */
        L->ready = 0;
        pe__backoff(L);
        return PE_OK;
      }
    }
    if (rc == PE_OK) {
      rc = pe__gap_check(L);
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  pe__set_status(L, L->stopping ? PE_LIVE_STOPPING : PE_LIVE_OK);
  if (L->stopping && !L->txn_pending) {
    return pe__finish(L);
  }
  if (L->stopping && L->stop_flag >= 2) {
    return pe__live_fail(L, PE_ESTATE,
                         "stopped again before the last batch's "
                         "acknowledgement; its signals will be derived again "
                         "from the last checkpoint");
  }
  int rc = pe__trip(L, wait_ms, st);
  if (rc == PE_ENOMEM && L->errmsg[0] == '\0') {
    pe__live_fail(L, rc, "%s", pe_redis_errmsg(L->redis));
  }
  if (rc == PE_ECONN) {
    L->ready = 0;
    pe__live_log(L, PE_LIVE_LOG_INFO, "%s; reconnecting",
                 pe_redis_errmsg(L->redis));
    pe__set_status(L, PE_LIVE_DISCONNECTED);
    return PE_OK;
  }
  if (rc == PE_EAGAIN) {
    pe__nap(L, wait_ms < PE__REFUSED_WAIT_MS ? wait_ms : PE__REFUSED_WAIT_MS);
    return PE_OK;
  }
  if (rc == PE_EGAP && L->cfg.checkpoint != PE_LIVE_CHECKPOINT_NONE &&
      !L->txn_pending) {
    /* Keep the progress before the gap; the gap's message stays. */
    char msg[sizeof L->errmsg];
    memcpy(msg, L->errmsg, sizeof msg);
    (void)pe__ckpt_final(L);
    memcpy(L->errmsg, msg, sizeof msg);
  }
  if (rc != PE_OK) {
    return rc;
  }
  if (L->cfg.idle_stop_ms && L->idle_since && !L->stopping &&
      pe_clock_ns() - L->idle_since >= L->cfg.idle_stop_ms * 1000000ull) {
    pe_live_stop(L);
  }
  pe__ckpt_poll(L, 0);
  pe__metrics_publish(L, 0);
  return PE_OK;
}

int pe_live_step(pe_live_t *L, int timeout_ms, pe_live_step_stats_t *stats) {
  pe_live_step_stats_t local;
  pe_live_step_stats_t *st = stats != NULL ? stats : &local;
  memset(st, 0, sizeof *st);
  if (L->failed) {
    return L->failed;
  }
  if (L->stopped) {
    return PE_LIVE_STOPPED;
  }
  uint32_t wait_ms = timeout_ms < 0 ? L->cfg.block_ms
                     : (uint32_t)timeout_ms < L->cfg.block_ms
                         ? (uint32_t)timeout_ms
                         : L->cfg.block_ms;
  L->acked = 0;
  L->checkpointed = 0;
  int rc = pe__step(L, wait_ms, st);
  if (rc < 0) {
    L->failed = rc;
  }
  st->acked = L->acked;
  st->connected = L->ready;
  st->unacknowledged = L->txn_pending;
  st->checkpointed = L->checkpointed;
  st->idle_ns = L->idle_since ? pe_clock_ns() - L->idle_since : 0;
  return rc;
}
