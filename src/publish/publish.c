/* A tick file into a Redis Stream (see pe/publish.h). */
#define _POSIX_C_SOURCE 200809L
#include "pe/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pe/clock.h"
#include "pe/error.h"
#include "pe/redis.h"
#include "publish/route.h"

enum { PE__PACE_NONE = 0, PE__PACE_RATE, PE__PACE_SPEED };

struct pe_publish {
  pe_source_t *source;
  pe_redis_t *redis;  /* one stream */
  pe__route_t *route; /* partitions */
  const char *stream;
  pe_resp_buf_t batch;
  uint32_t in_batch;
  uint32_t batch_max;
  uint32_t partitions;
  uint64_t maxlen;
  int auto_ids;
  pe_stream_id_t next;
  int pace;
  double rate;
  double speed;
  uint64_t t0_mono;
  uint64_t end_mono;
  int64_t ts0;
  int have_ts0;
  volatile sig_atomic_t *stop;
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
  pe_publish_stats_t st;
  int stop_rc; /* why a callback stopped the input (PE_STOP) */
  char errmsg[768];
};

static void pe__log(pe_publish_t *p, const char *fmt, const char *what) {
  if (p->log != NULL) {
    char line[768];
    snprintf(line, sizeof line, fmt, what);
    p->log(p->log_ctx, line);
  }
}

static void pe__sleep_until(uint64_t due_mono) {
  uint64_t now = pe_clock_ns();
  if (due_mono <= now) {
    return;
  }
  uint64_t d = due_mono - now;
  struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
  nanosleep(&ts, NULL);
}

int pe_publish_create(const pe_publish_config_t *c, pe_publish_t **out,
                      char *err, size_t err_cap) {
  *out = NULL;
  if (c->batch == 0 || c->batch > 100000 || c->rate < 0 || c->speed < 0 ||
      (c->rate > 0 && c->speed > 0)) {
    snprintf(err, err_cap,
             "batch must be 1..100000, and pacing by rate or "
             "by speed, not both");
    return PE_EINVAL;
  }
  pe_publish_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  p->stream = c->stream;
  p->partitions = c->partitions;
  p->batch_max = c->batch;
  p->maxlen = c->maxlen;
  p->auto_ids = c->auto_ids;
  p->rate = c->rate;
  p->speed = c->speed;
  p->pace = c->rate > 0    ? PE__PACE_RATE
            : c->speed > 0 ? PE__PACE_SPEED
                           : PE__PACE_NONE;
  p->stop = c->stop;
  p->log = c->log;
  p->log_ctx = c->log_ctx;
  int rc;
  if (c->partitions > 0 && c->auto_ids) {
    snprintf(err, err_cap, "partitions need explicit ids");
    rc = PE_EINVAL;
  } else if (c->partitions > 0) {
    rc = pe__route_create(c, &p->route, err, err_cap);
  } else {
    rc = pe_redis_open(c->redis_url, NULL, &p->redis, err, err_cap);
  }
  if (rc == PE_OK) {
    rc = pe_source_open(&c->source, &p->source, err, err_cap);
  }
  if (rc != PE_OK) {
    pe_publish_destroy(p);
    return rc;
  }
  *out = p;
  return PE_OK;
}

static void pe__on_retry(void *ctx, const char *reason) {
  pe__log(ctx, "%s; retrying", reason);
}

/* Connects (retrying with backoff) and learns the stream's last id, so
 * explicit ids stay above it. */
static int pe__connect(pe_publish_t *p) {
  if (p->route != NULL) {
    int rc = pe__route_connect(p->route, &p->next);
    if (rc != PE_OK) {
      snprintf(p->errmsg, sizeof p->errmsg, "%s", pe__route_errmsg(p->route));
    }
    return rc;
  }
  pe_redis_stream_info_t info;
  int rc = pe_redis_connect_stream(p->redis, p->stream, p->stop, pe__on_retry,
                                   p, &info);
  if (rc != PE_OK) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s", pe_redis_errmsg(p->redis));
    return rc;
  }
  if (pe_stream_id_cmp(info.last_generated, p->next) > 0) {
    p->next = info.last_generated;
  }
  return PE_OK;
}

/* Counts the replies of an acknowledged batch. A duplicate id on a resent
 * batch was written before the connection was lost; on a first send it
 * means another writer uses the stream. */
static int pe__count_replies(pe_publish_t *p, const pe_redis_value_t *v,
                             int resent) {
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *r = &v->elem[i];
    if (r->type != PE_REDIS_ERROR) {
      p->st.published += 1;
    } else if (pe_redis_is_duplicate_id(r) && resent) {
      p->st.duplicates += 1;
    } else if (pe_redis_is_duplicate_id(r)) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "XADD %s: an id chosen here is already taken: another writer "
               "is adding to the stream",
               p->stream);
      return PE_ESTATE;
    } else {
      snprintf(p->errmsg, sizeof p->errmsg, "XADD %s: %s", p->stream, r->str);
      return PE_EPARSE;
    }
  }
  return PE_OK;
}

/* Sends the batch until Redis has acknowledged it. */
static int pe__flush(pe_publish_t *p) {
  if (p->route != NULL) {
    int rc = pe__route_flush(p->route);
    if (rc != PE_OK) {
      snprintf(p->errmsg, sizeof p->errmsg, "%s", pe__route_errmsg(p->route));
    }
    return rc;
  }
  if (p->in_batch == 0) {
    return PE_OK;
  }
  pe_resp_begin(&p->batch, 1);
  pe_resp_arg(&p->batch, "EXEC", 4);
  if (p->batch.failed) {
    snprintf(p->errmsg, sizeof p->errmsg, "out of memory for a batch");
    return PE_ENOMEM;
  }
  for (int attempt = 0;; attempt++) {
    if (!pe_redis_is_connected(p->redis)) {
      int rc = pe__connect(p);
      if (rc != PE_OK) {
        return rc;
      }
    }
    int rc = pe_redis_write(p->redis, p->batch.data, p->batch.len);
    const pe_redis_value_t *v = NULL;
    if (rc == PE_OK) {
      rc = pe_redis_read(p->redis, &v); /* MULTI */
    }
    char err[256] = "";
    for (uint32_t i = 0; rc == PE_OK && i < p->in_batch; i++) {
      rc = pe_redis_read(p->redis, &v); /* QUEUED */
      if (rc == PE_OK && v->type == PE_REDIS_ERROR && err[0] == '\0') {
        snprintf(err, sizeof err, "%s", v->str);
      }
    }
    if (rc == PE_OK) {
      rc = pe_redis_read(p->redis, &v); /* EXEC */
    }
    if (rc == PE_ENOMEM) {
      snprintf(p->errmsg, sizeof p->errmsg, "%s", pe_redis_errmsg(p->redis));
      return rc;
    }
    if (rc != PE_OK) {
      pe__log(p, "%s; reconnecting", pe_redis_errmsg(p->redis));
      continue;
    }
    if (v->type != PE_REDIS_ARRAY) {
      if (err[0] != '\0' && pe_redis_is_transient(err)) {
        pe__log(p, "Redis refused a batch (%s); retrying", err);
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
        continue;
      }
      snprintf(p->errmsg, sizeof p->errmsg, "Redis refused a batch: %s",
               err[0]                      ? err
               : v->type == PE_REDIS_ERROR ? v->str
                                           : "?");
      return PE_EPARSE;
    }
    rc = pe__count_replies(p, v, attempt > 0);
    if (rc != PE_OK) {
      return rc;
    }
    break;
  }
  p->in_batch = 0;
  pe_resp_reset(&p->batch);
  return PE_OK;
}

/* The next explicit id: the wall clock's millisecond, or the last id's
 * millisecond with the next sequence when the clock has not moved on (or
 * went back), so ids only grow. */
static pe_stream_id_t pe__next_id(pe_publish_t *p) {
  int64_t wall = pe_wall_ns();
  uint64_t ms = wall > 0 ? (uint64_t)(wall / 1000000) : 0;
  if (ms > p->next.ms) {
    p->next.ms = ms;
    p->next.seq = 0;
  } else {
    p->next.seq += 1;
  }
  return p->next;
}

/* Waits for a paced tick's time, sending what is batched first. */
static int pe__pace(pe_publish_t *p, const pe_tick_t *t) {
  uint64_t due;
  if (p->pace == PE__PACE_RATE) {
    due = p->t0_mono + (uint64_t)((double)(p->st.rows - 1) * 1e9 / p->rate);
  } else {
    if (!p->have_ts0) {
      p->ts0 = t->ts_ns;
      p->have_ts0 = 1;
    }
    double dt = (double)(t->ts_ns - p->ts0) / p->speed;
    due = p->t0_mono + (dt > 0 ? (uint64_t)dt : 0);
  }
  if (due > pe_clock_ns()) {
    int rc = pe__flush(p);
    if (rc != PE_OK) {
      return rc;
    }
    pe__sleep_until(due);
  }
  return PE_OK;
}

/* Appends one tick's XADD, and sends the batch when it is full. */
static int pe__add(pe_publish_t *p, const pe_tick_t *t) {
  if (p->route != NULL) {
    pe__route_add(p->route, t, pe__next_id(p));
    return pe__route_pending(p->route) >= p->batch_max ? pe__flush(p) : PE_OK;
  }
  if (p->in_batch == 0) {
    pe_resp_reset(&p->batch);
    pe_resp_begin(&p->batch, 1);
    pe_resp_arg(&p->batch, "MULTI", 5);
  }
  pe_stream_id_t id = p->auto_ids ? (pe_stream_id_t){0, 0} : pe__next_id(p);
  pe__publish_xadd(&p->batch, p->stream, p->maxlen, p->auto_ids ? NULL : &id,
                   t);
  p->in_batch += 1;
  return p->in_batch >= p->batch_max ? pe__flush(p) : PE_OK;
}

/* The source's batch of parsed ticks, one XADD each. PE_CONTINUE, or
 * PE_STOP with the reason in stop_rc: PE_EAGAIN when stopped by a signal,
 * else a batch that could not be sent (its message in errmsg). */
static int pe__on_ticks(void *ctx, const pe_tick_t *ticks,
                        const pe_csv_row_t *rows, uint32_t n) {
  (void)rows;
  pe_publish_t *p = ctx;
  for (uint32_t i = 0; i < n; i++) {
    p->st.rows += 1;
    if (p->stop != NULL && *p->stop) {
      p->stop_rc = PE_EAGAIN;
      return PE_STOP;
    }
    int rc = p->pace != PE__PACE_NONE ? pe__pace(p, &ticks[i]) : PE_OK;
    if (rc == PE_OK) {
      rc = pe__add(p, &ticks[i]);
    }
    if (rc != PE_OK) {
      p->stop_rc = rc;
      return PE_STOP;
    }
  }
  return PE_CONTINUE;
}

static int pe__on_reject(void *ctx, int err, uint64_t line_no, const char *line,
                         size_t len) {
  (void)line_no;
  (void)line;
  (void)len;
  pe_publish_t *p = ctx;
  p->st.rows += 1;
  (void)pe_reject_count(p->st.rejected, err);
  return PE_CONTINUE;
}

int pe_publish_run(pe_publish_t *p) {
  int rc = pe__connect(p);
  if (rc != PE_OK) {
    return rc;
  }
  pe_csv_batch_handler_t h = {p, pe__on_ticks, pe__on_reject};
  p->t0_mono = pe_clock_ns();
  rc = pe_source_run(p->source, &h);
  if (rc == PE_STOP) {
    rc = p->stop_rc;
  }
  if (rc != PE_OK && p->errmsg[0] == '\0') {
    snprintf(p->errmsg, sizeof p->errmsg, "%s", pe_source_errmsg(p->source));
  }
  if (rc == PE_OK || rc == PE_EAGAIN) {
    int frc = pe__flush(p);
    rc = frc != PE_OK ? frc : rc;
  }
  p->end_mono = pe_clock_ns();
  return rc;
}

void pe_publish_stats(const pe_publish_t *p, pe_publish_stats_t *s) {
  *s = p->st;
  if (p->route != NULL) {
    pe__route_stats(p->route, s);
    s->partitions = p->partitions;
    s->masters = pe__route_masters(p->route);
    snprintf(s->map_digest, sizeof s->map_digest, "%s",
             pe__route_digest(p->route));
  } else {
    s->reconnects = pe_redis_reconnects(p->redis);
  }
  uint64_t end = p->end_mono ? p->end_mono : pe_clock_ns();
  s->wall_s = p->t0_mono ? (double)(end - p->t0_mono) * 1e-9 : 0.0;
}

const char *pe_publish_errmsg(const pe_publish_t *p) { return p->errmsg; }

const char *pe_publish_input(const pe_publish_t *p) {
  return pe_source_name(p->source);
}

void pe_publish_destroy(pe_publish_t *p) {
  if (p == NULL) {
    return;
  }
  pe_source_close(p->source);
  pe_resp_free(&p->batch);
  pe_redis_destroy(p->redis);
  pe__route_destroy(p->route);
  free(p);
}
