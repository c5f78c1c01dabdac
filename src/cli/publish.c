/* `pattern-engine publish`: a tick CSV file into a Redis Stream.
 *
 * The file goes through the same CSV parser as replay; each tick becomes
 * XADD stream ID symbol S price P volume V timestamp TS_NS [recv_ts R],
 * numbers printed so they read back bit for bit. Ticks are sent in batches
 * (MULTI, up to --pipeline XADDs, EXEC) in one write each, as fast as
 * possible or paced by --rate or --speed.
 *
 * Ids are chosen here, not by Redis ('*'): the wall clock's millisecond with
 * a sequence, always above the stream's last id. A batch whose reply was
 * lost in a reconnect is sent again as it was, and Redis refuses the entries
 * it already has, so no tick is published twice. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/clock.h"
#include "pe/csv.h"
#include "pe/error.h"
#include "pe/redis.h"

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
    {"pipeline", "N", NULL, "1000", "most ticks per batch (one write)", NULL},
    {"maxlen", "N", NULL, "0",
     "trim the stream to about N entries as it grows; 0: never", NULL},
    {"ids", "MODE", NULL, "explicit",
     "explicit: ids chosen here, so a resent batch is not added twice; "
     "auto: Redis picks them ('*')",
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

typedef struct pe__pub {
  const pe_cli_command_t *cmd;
  const char *stream;
  pe_redis_t *redis;
  pe_resp_buf_t batch;
  uint32_t in_batch;
  uint32_t pipeline;
  uint64_t maxlen;
  int auto_ids;
  pe_stream_id_t next;
  /* pacing: 0 none, 1 rate, 2 speed */
  int pace;
  double rate;
  double speed;
  uint64_t t0_mono;
  int64_t ts0;
  int have_ts0;
  /* totals */
  uint64_t published;
  uint64_t rows;
  uint64_t rejected[PE_REJECT_COUNT];
  uint64_t duplicates;
  int failed;
} pe__pub_t;

static void pe__sleep_until(uint64_t due_mono) {
  uint64_t now = pe_clock_ns();
  if (due_mono <= now) {
    return;
  }
  uint64_t d = due_mono - now;
  struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* After a (re)connect: waits while Redis loads its data, and learns the
 * stream's last id so explicit ids stay above it. */
static int pe__pub_ready(pe__pub_t *p) {
  for (;;) {
    pe_resp_buf_t b = {0};
    pe_resp_begin(&b, 3);
    pe_resp_arg(&b, "XINFO", 5);
    pe_resp_arg(&b, "STREAM", 6);
    pe_resp_arg_str(&b, p->stream);
    const pe_redis_value_t *v;
    int rc = pe_redis_command(p->redis, &b, &v);
    pe_resp_free(&b);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type == PE_REDIS_ERROR && strncmp(v->str, "LOADING", 7) == 0) {
      struct timespec ts = {0, 100000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    pe_redis_stream_info_t info;
    if (pe_redis_stream_info_parse(v, &info) != PE_OK) {
      pe_cli_error(p->cmd, "XINFO STREAM %s: %s", p->stream,
                   v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
      return PE_EPARSE;
    }
    if (pe_stream_id_cmp(info.last_generated, p->next) > 0) {
      p->next = info.last_generated;
    }
    return PE_OK;
  }
}

/* Connects (retrying with backoff) and runs the ready check. */
static int pe__pub_connect(pe__pub_t *p) {
  for (;;) {
    int rc = pe_redis_connect(p->redis);
    if (rc != PE_OK && rc != PE_ENOMEM) {
      fprintf(stderr, "pattern-engine publish: %s; retrying\n",
              pe_redis_errmsg(p->redis));
      rc = pe_redis_connect_retry(p->redis, &pe__publish_stop);
    }
    if (rc != PE_OK) {
      pe_cli_error(p->cmd, "%s", pe_redis_errmsg(p->redis));
      return rc;
    }
    rc = pe__pub_ready(p);
    if (rc != PE_ECONN) {
      return rc;
    }
  }
}

/* Sends the batch until Redis has acknowledged it. */
static int pe__pub_flush(pe__pub_t *p) {
  if (p->in_batch == 0) {
    return PE_OK;
  }
  pe_resp_begin(&p->batch, 1);
  pe_resp_arg(&p->batch, "EXEC", 4);
  if (p->batch.failed) {
    pe_cli_error(p->cmd, "out of memory for a batch");
    return PE_ENOMEM;
  }
  for (int attempt = 0;; attempt++) {
    if (!pe_redis_is_connected(p->redis)) {
      int rc = pe__pub_connect(p);
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
    if (rc != PE_OK) {
      fprintf(stderr, "pattern-engine publish: %s; reconnecting\n",
              pe_redis_errmsg(p->redis));
      continue;
    }
    if (v->type != PE_REDIS_ARRAY) {
      if (strncmp(err, "OOM", 3) == 0 || strncmp(err, "LOADING", 7) == 0) {
        fprintf(stderr,
                "pattern-engine publish: Redis refused a batch (%s); "
                "retrying\n",
                err);
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
        continue;
      }
      pe_cli_error(p->cmd, "Redis refused a batch: %s",
                   err[0]                      ? err
                   : v->type == PE_REDIS_ERROR ? v->str
                                               : "?");
      return PE_EPARSE;
    }
    for (uint32_t i = 0; i < v->n; i++) {
      const pe_redis_value_t *r = &v->elem[i];
      if (r->type != PE_REDIS_ERROR) {
        p->published += 1;
      } else if (pe_redis_is_duplicate_id(r) && attempt > 0) {
        p->duplicates += 1; /* written before the connection was lost */
      } else if (pe_redis_is_duplicate_id(r)) {
        pe_cli_error(p->cmd,
                     "XADD %s: an id chosen here is already taken: another "
                     "writer is adding to the stream. --ids explicit needs "
                     "to be the only writer; use --ids auto otherwise",
                     p->stream);
        return PE_EPARSE;
      } else {
        pe_cli_error(p->cmd, "XADD %s: %s", p->stream, r->str);
        return PE_EPARSE;
      }
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
static pe_stream_id_t pe__next_id(pe__pub_t *p) {
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

/* One parsed tick: waits for its time when paced, appends its XADD, and
 * sends the batch when it is full. */
/* pe__pub_tick's stop for a batch that could not be sent (the message is
 * printed); PE_STOP is its stop on SIGINT or SIGTERM. */
#define PE__PUB_FAILED 2

static int pe__pub_tick(void *ctx, const pe_tick_t *t, uint64_t line_no,
                        const char *line, size_t len) {
  (void)line_no;
  (void)line;
  (void)len;
  pe__pub_t *p = ctx;
  p->rows += 1;
  if (pe__publish_stop) {
    return PE_STOP;
  }
  if (p->pace != 0) {
    uint64_t due;
    if (p->pace == 1) {
      due = p->t0_mono + (uint64_t)((double)(p->rows - 1) * 1e9 / p->rate);
    } else {
      if (!p->have_ts0) {
        p->ts0 = t->ts_ns;
        p->have_ts0 = 1;
      }
      double dt = (double)(t->ts_ns - p->ts0) / p->speed;
      due = p->t0_mono + (dt > 0 ? (uint64_t)dt : 0);
    }
    if (due > pe_clock_ns()) {
      if (pe__pub_flush(p) != PE_OK) {
        return PE__PUB_FAILED;
      }
      pe__sleep_until(due);
    }
  }
  if (p->in_batch == 0) {
    pe_resp_reset(&p->batch);
    pe_resp_begin(&p->batch, 1);
    pe_resp_arg(&p->batch, "MULTI", 5);
  }
  int recv = t->recv_ts_ns != PE_TS_NONE;
  pe_resp_begin(&p->batch, 3u + (p->maxlen ? 3u : 0u) + 8u + (recv ? 2u : 0u));
  pe_resp_arg(&p->batch, "XADD", 4);
  pe_resp_arg_str(&p->batch, p->stream);
  if (p->maxlen) {
    pe_resp_arg(&p->batch, "MAXLEN", 6);
    pe_resp_arg(&p->batch, "~", 1);
    pe_resp_arg_u64(&p->batch, p->maxlen);
  }
  if (p->auto_ids) {
    pe_resp_arg(&p->batch, "*", 1);
  } else {
    pe_resp_arg_id(&p->batch, pe__next_id(p));
  }
  pe_resp_arg(&p->batch, "symbol", 6);
  pe_resp_arg(&p->batch, t->symbol, t->symbol_len);
  pe_resp_arg(&p->batch, "price", 5);
  pe_resp_arg_double(&p->batch, t->price);
  pe_resp_arg(&p->batch, "volume", 6);
  pe_resp_arg_double(&p->batch, t->volume);
  pe_resp_arg(&p->batch, "timestamp", 9);
  pe_resp_arg_i64(&p->batch, t->ts_ns);
  if (recv) {
    pe_resp_arg(&p->batch, "recv_ts", 7);
    pe_resp_arg_i64(&p->batch, t->recv_ts_ns);
  }
  p->in_batch += 1;
  if (p->in_batch >= p->pipeline && pe__pub_flush(p) != PE_OK) {
    return PE__PUB_FAILED;
  }
  return PE_CONTINUE;
}

static int pe__pub_reject(void *ctx, int err, uint64_t line_no,
                          const char *line, size_t len) {
  (void)line_no;
  (void)line;
  (void)len;
  pe__pub_t *p = ctx;
  p->rows += 1;
  (void)pe_reject_count(p->rejected, err);
  return 0;
}

static int pe__publish_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 0;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  pe__pub_t p;
  memset(&p, 0, sizeof p);
  p.cmd = cmd;
  p.stream = pe_cli_value(cmd, "ticks-stream");
  pe_csv_options_t copt;
  memset(&copt, 0, sizeof copt);
  pe_csv_t *csv = NULL;
  char *buf = NULL;
  int fd = -1;
  rc = PE_EXIT_USAGE;
  if (pe_cli_u32(cmd, "pipeline", &p.pipeline) != PE_EXIT_OK ||
      pe_cli_u64(cmd, "maxlen", &p.maxlen) != PE_EXIT_OK) {
    goto done;
  }
  if (p.pipeline == 0 || p.pipeline > 100000) {
    pe_cli_error(cmd, "--pipeline must be 1..100000");
    goto done;
  }
  const char *ids = pe_cli_value(cmd, "ids");
  if (strcmp(ids, "explicit") != 0 && strcmp(ids, "auto") != 0) {
    pe_cli_error(cmd, "--ids: '%s' is not explicit or auto", ids);
    goto done;
  }
  p.auto_ids = strcmp(ids, "auto") == 0;
  if (pe_cli_is_set(cmd, "rate") && pe_cli_is_set(cmd, "speed")) {
    pe_cli_error(cmd, "give --rate or --speed, not both");
    goto done;
  }
  if (pe_cli_is_set(cmd, "rate")) {
    if (pe_cli_double(cmd, "rate", &p.rate) != PE_EXIT_OK || !(p.rate > 0)) {
      pe_cli_error(cmd, "--rate must be a positive number of ticks/s");
      goto done;
    }
    p.pace = 1;
  }
  if (pe_cli_is_set(cmd, "speed")) {
    if (pe_cli_double(cmd, "speed", &p.speed) != PE_EXIT_OK || !(p.speed > 0)) {
      pe_cli_error(cmd, "--speed must be a positive factor");
      goto done;
    }
    p.pace = 2;
  }
  if (pe_ts_unit_parse(pe_cli_value(cmd, "ts-unit"), &copt.ts_unit) != PE_OK) {
    pe_cli_error(cmd, "--ts-unit: '%s' is not auto, s, ms, us or ns",
                 pe_cli_value(cmd, "ts-unit"));
    goto done;
  }
  pe_redis_url_t url;
  char err[512];
  if (pe_redis_url_parse(pe_cli_value(cmd, "redis"), &url, err, sizeof err) !=
      PE_OK) {
    pe_cli_error(cmd, "--redis: %s", err);
    goto done;
  }
  rc = PE_EXIT_FAIL;
  const char *input = pe_cli_value(cmd, "ticks");
  if (strcmp(input, "-") == 0) {
    fd = 0;
  } else if ((fd = open(input, O_RDONLY)) < 0) {
    pe_cli_error(cmd, "cannot read '%s': %s", input, strerror(errno));
    goto done;
  }
  if (pe_redis_create(&url, NULL, &p.redis) != PE_OK ||
      pe_csv_create(&copt, &csv) != PE_OK || (buf = malloc(1 << 20)) == NULL) {
    pe_cli_error(cmd, "out of memory");
    goto done;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = pe__publish_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (pe__pub_connect(&p) != PE_OK) {
    goto done;
  }
  pe_csv_handler_t h = {&p, pe__pub_tick, pe__pub_reject};
  uint64_t t0 = pe_clock_ns();
  p.t0_mono = t0;
  int frc = 0;
  for (;;) {
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0 && errno == EINTR) {
      if (pe__publish_stop) {
        break;
      }
      continue;
    }
    if (n < 0) {
      pe_cli_error(cmd, "cannot read '%s': %s", input, strerror(errno));
      goto done;
    }
    if (n == 0) {
      frc = pe_csv_finish(csv, &h);
      break;
    }
    frc = pe_csv_feed(csv, buf, (size_t)n, &h);
    if (frc != 0) {
      break;
    }
  }
  if (frc == PE_EHEADER) {
    pe_cli_error(cmd, "%s: %s", input, pe_csv_errmsg(csv));
    goto done;
  }
  if (frc != PE_CONTINUE && frc != PE_STOP) {
    goto done; /* printed */
  }
  if (pe__pub_flush(&p) != PE_OK) {
    goto done;
  }
  double wall = (double)(pe_clock_ns() - t0) * 1e-9;
  if (!pe_cli_is_set(cmd, "quiet")) {
    uint64_t rej = 0;
    for (int i = 0; i < PE_REJECT_COUNT; i++) {
      rej += p.rejected[i];
    }
    fprintf(stderr, "publish %s -> %s\n", input, p.stream);
    fprintf(stderr, "  rows         %llu\n", (unsigned long long)p.rows);
    fprintf(stderr, "  published    %llu\n", (unsigned long long)p.published);
    fprintf(stderr, "  rejected     %llu", (unsigned long long)rej);
    const char *sep = " (";
    for (int i = 0; i < PE_REJECT_COUNT; i++) {
      if (p.rejected[i]) {
        fprintf(stderr, "%s%s %llu", sep, pe_reject_name(i),
                (unsigned long long)p.rejected[i]);
        sep = ", ";
      }
    }
    fputs(rej ? ")\n" : "\n", stderr);
    fprintf(stderr, "  duplicates   %llu (already in the stream)\n",
            (unsigned long long)p.duplicates);
    fprintf(stderr, "  reconnects   %llu\n",
            (unsigned long long)pe_redis_reconnects(p.redis));
    fprintf(stderr, "  wall time    %.3f s\n", wall);
    fprintf(stderr, "  throughput   %.0f ticks/s\n",
            wall > 0 ? (double)p.published / wall : 0.0);
  }
  rc = pe__publish_stop ? PE_EXIT_FAIL : PE_EXIT_OK;
  if (pe__publish_stop) {
    pe_cli_error(cmd, "stopped by a signal after %llu ticks",
                 (unsigned long long)p.published);
  }

done:
  if (fd > 0) {
    close(fd);
  }
  free(buf);
  pe_csv_destroy(csv);
  pe_resp_free(&p.batch);
  pe_redis_destroy(p.redis);
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
        "examples:\n"
        "  pattern-engine publish --ticks fixtures/sample_ticks.csv --redis "
        "redis://127.0.0.1:6379/0\n"
        "  pattern-engine publish --ticks trades.csv --speed 10\n"
        "  pattern-engine publish --ticks trades.csv --rate 10000 "
        "--ticks-stream ticks:test\n",
    .flags = pe__publish_flags,
    .n_flags = sizeof pe__publish_flags / sizeof pe__publish_flags[0],
    .run = pe__publish_run,
};
