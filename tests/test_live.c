/* The live service (pe/live.h) against a real redis-server: each case
 * starts its own on a free loopback port in a temporary directory, and
 * exits 77 (ctest's skip) when redis-server is not installed.
 *
 *   exactly_once        the service destroyed mid-stream without a final
 *                       checkpoint, several times, then resumed from its
 *                       checkpoint file: the signals stream holds every
 *                       signal exactly once, stream ids included, equal to
 *                       the engine's own outputs over the same ticks (what
 *                       replay gives), and the engine state is the same
 *                       byte for byte;
 *   checkpoint_restore  a Redis-key checkpoint restores the engine byte for
 *                       byte, the position and the totals; a corrupt one or
 *                       one made with other settings loads nothing;
 *   gap_accounting      entries trimmed while the service was down stop it
 *                       (on_gap fail, nothing counted, at every start) or
 *                       are counted once and skipped (on_gap skip), and the
 *                       service goes on from the first entry left; a gap
 *                       made while it runs is counted too;
 *   step_timeout        with Redis unreachable a step returns within its
 *                       timeout; a stop then fails with PE_ECONN;
 *   fenced              a handle fenced by a token: once the fence key moves
 *                       on, its next write is refused whole (PE_ESTATE,
 *                       pe_live_fenced), nothing more lands; a handle with
 *                       the new token resumes from the checkpoint and the
 *                       stream ends equal to the engine's own outputs.
 *
 *   build/tests/test_live [CASE] */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pe/checkpoint.h"
#include "pe/clock.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/live.h"
#include "pe/redis.h"
#include "pe_test.h"

/* ---- a redis-server of the test's own
 * ----------------------------------------------------------- */

static pid_t srv_pid = -1;
static char srv_dir[64];
static char srv_url[64];
static pe_redis_t *cli; /* the test's own connection */

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void redis_stop(void) {
  pe_redis_destroy(cli);
  cli = NULL;
  if (srv_pid > 0) {
    kill(srv_pid, SIGTERM);
    waitpid(srv_pid, NULL, 0);
    srv_pid = -1;
  }
  if (srv_dir[0] != '\0') {
    nftw(srv_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
  }
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    perror("free port");
    exit(1);
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int on_path(const char *exe) {
  const char *path = getenv("PATH");
  char buf[4096];
  while (path != NULL && *path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, exe);
    if (access(buf, X_OK) == 0) {
      return 1;
    }
    path = end ? end + 1 : NULL;
  }
  return 0;
}

/* Starts redis-server and connects the test's client; skips without it. */
static void redis_start(void) {
  if (!on_path("redis-server")) {
    printf("SKIP: redis-server is not installed (apt-get install "
           "redis-server)\n");
    exit(77);
  }
  snprintf(srv_dir, sizeof srv_dir, "/tmp/pe-test-live-XXXXXX");
  if (mkdtemp(srv_dir) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  int port = free_port();
  char port_s[16];
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(srv_url, sizeof srv_url, "redis://127.0.0.1:%d/0", port);
  srv_pid = fork();
  if (srv_pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execlp("redis-server", "redis-server", "--port", port_s, "--bind",
           "127.0.0.1", "--dir", srv_dir, "--save", "", "--appendonly", "no",
           "--daemonize", "no", "--protected-mode", "yes", (char *)NULL);
    _exit(127);
  }
  atexit(redis_stop);
  pe_redis_url_t url;
  char err[256];
  pe_redis_url_parse(srv_url, &url, err, sizeof err);
  pe_redis_options_t opt;
  memset(&opt, 0, sizeof opt);
  if (pe_redis_create(&url, &opt, &cli) != PE_OK) {
    exit(1);
  }
  for (int i = 0; i < 200; i++) {
    if (pe_redis_connect(cli) == PE_OK) {
      return;
    }
    struct timespec ts = {0, 50000000L};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "redis-server did not start on port %d\n", port);
  exit(1);
}

/* Runs one command (NULL-terminated arguments) on the test's client. */
static const pe_redis_value_t *rcmd(const char *arg0, ...) {
  static pe_resp_buf_t b;
  const char *args[16];
  uint32_t n = 0;
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a != NULL && n < 16;
       a = va_arg(ap, const char *)) {
    args[n++] = a;
  }
  va_end(ap);
  pe_resp_reset(&b);
  pe_resp_begin(&b, n);
  for (uint32_t i = 0; i < n; i++) {
    pe_resp_arg_str(&b, args[i]);
  }
  const pe_redis_value_t *v;
  if (pe_redis_command(cli, &b, &v) != PE_OK) {
    fprintf(stderr, "%s: %s\n", arg0, pe_redis_errmsg(cli));
    exit(1);
  }
  return v;
}

/* ---- ticks and what the engine makes of them
 * ---------------------------------------------------- */

typedef struct sim {
  pe_tick_t *ticks;
  pe_stream_id_t *ids;
  size_t n;
} sim_t;

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uniform(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * 0x1.0p-53;
}

/* n ticks over n_sym symbols: random walks with jumps and size spikes, so
 * every rule fires now and then; entry ids ms-seq with several per ms. */
static void sim_make(sim_t *s, size_t n, uint32_t n_sym, uint64_t seed) {
  double price[64];
  rng = seed;
  for (uint32_t i = 0; i < n_sym; i++) {
    price[i] = 50.0 + 10.0 * uniform();
  }
  s->ticks = calloc(n, sizeof *s->ticks);
  s->ids = calloc(n, sizeof *s->ids);
  s->n = n;
  int64_t ts = 1700000000000000000ll;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = (uint32_t)(uniform() * n_sym) % n_sym;
    double step = (uniform() + uniform() + uniform() - 1.5) * 0.004;
    if (uniform() < 0.01) {
      step += uniform() < 0.5 ? -0.03 : 0.03;
    }
    price[k] = fmax(1.0, price[k] * (1.0 + step));
    double vol = 1.0 + (double)(int)(uniform() * 199.0);
    if (uniform() < 0.02) {
      vol *= 20.0;
    }
    ts += 1000000 + (int64_t)(uniform() * 4e8);
    pe_tick_t *t = &s->ticks[i];
    t->ts_ns = ts;
    t->recv_ts_ns = PE_TS_NONE;
    t->price = price[k];
    t->volume = vol;
    char sym[16];
    int len = snprintf(sym, sizeof sym, "S%03u", k);
    pe_tick_set_symbol(t, sym, (uint32_t)len);
    s->ids[i].ms = 1700000000000ull + seed % 1000 * 100000 + i / 3;
    s->ids[i].seq = i % 3;
  }
}

static void sim_free(sim_t *s) {
  free(s->ticks);
  free(s->ids);
}

/* XADDs ticks [from, to) to stream, 500 per round trip. */
static void publish(const sim_t *s, const char *stream, size_t from,
                    size_t to) {
  pe_resp_buf_t b = {0};
  for (size_t i = from; i < to;) {
    pe_resp_reset(&b);
    size_t end = to - i > 500 ? i + 500 : to;
    for (size_t j = i; j < end; j++) {
      const pe_tick_t *t = &s->ticks[j];
      pe_resp_begin(&b, 11);
      pe_resp_arg_str(&b, "XADD");
      pe_resp_arg_str(&b, stream);
      pe_resp_arg_id(&b, s->ids[j]);
      pe_resp_arg_str(&b, "symbol");
      pe_resp_arg_str(&b, t->symbol);
      pe_resp_arg_str(&b, "price");
      pe_resp_arg_double(&b, t->price);
      pe_resp_arg_str(&b, "volume");
      pe_resp_arg_double(&b, t->volume);
      pe_resp_arg_str(&b, "timestamp");
      pe_resp_arg_i64(&b, t->ts_ns);
    }
    PE_CHECK(!b.failed);
    PE_CHECK_INT(pe_redis_write(cli, b.data, b.len), PE_OK);
    for (size_t j = i; j < end; j++) {
      const pe_redis_value_t *v;
      PE_CHECK_INT(pe_redis_read(cli, &v), PE_OK);
      PE_CHECK(v->type != PE_REDIS_ERROR);
    }
    i = end;
  }
  pe_resp_free(&b);
}

typedef struct expected {
  pe_stream_id_t sid;  /* the signal's stream id */
  pe_stream_id_t tick; /* its tick's entry id */
  pe_signal_t sig;
} expected_t;

static pe_engine_t *new_engine(double ema_fast_span) {
  pe_engine_config_t c;
  pe_engine_config_init(&c);
  c.all_features = 0;
  if (ema_fast_span > 0) {
    c.ema_fast_span = ema_fast_span;
  }
  pe_engine_t *e = NULL;
  char err[256];
  if (pe_engine_create(&c, &e, err, sizeof err) != PE_OK) {
    fprintf(stderr, "engine: %s\n", err);
    exit(1);
  }
  return e;
}

/* Pushes ticks [from, to) through ref, appending its signals to *exp. */
static void reference(pe_engine_t *ref, const sim_t *s, size_t from, size_t to,
                      expected_t **exp, size_t *n_exp) {
  for (size_t i = from; i < to; i++) {
    pe_tick_out_t out;
    PE_CHECK_INT(pe_engine_push(ref, &s->ticks[i], &out), PE_OK);
    for (uint32_t k = 0; k < out.n_signals; k++) {
      *exp = realloc(*exp, (*n_exp + 1) * sizeof **exp);
      expected_t *e = &(*exp)[(*n_exp)++];
      PE_CHECK_INT(pe_signal_stream_id(s->ids[i], k, &e->sid), PE_OK);
      e->tick = s->ids[i];
      e->sig = out.signal[k];
    }
  }
}

/* The value of field name in a [field, value, ...] array, or NULL. */
static const char *field(const pe_redis_value_t *pairs, const char *name) {
  for (uint32_t i = 0; i + 1 < pairs->n; i += 2) {
    if (strcmp(pairs->elem[i].str, name) == 0) {
      return pairs->elem[i + 1].str;
    }
  }
  return NULL;
}

/* The signals stream equals exp, entry by entry: stream ids, the signal id,
 * symbol, pattern, exact score, price and timestamp, the tick id. Returns
 * the number of entries seen. */
static size_t check_signals(const char *stream, const expected_t *exp,
                            size_t n_exp) {
  size_t seen = 0;
  char start[PE_STREAM_ID_MAX + 1] = "-";
  for (;;) {
    const pe_redis_value_t *v =
        rcmd("XRANGE", stream, start, "+", "COUNT", "1000", NULL);
    if (v->type != PE_REDIS_ARRAY || v->n == 0) {
      break;
    }
    for (uint32_t i = 0; i < v->n; i++, seen++) {
      const pe_redis_value_t *e = &v->elem[i];
      pe_stream_id_t id;
      PE_CHECK_INT(pe_stream_id_parse(e->elem[0].str, e->elem[0].len, &id),
                   PE_OK);
      if (seen >= n_exp) {
        continue;
      }
      const expected_t *x = &exp[seen];
      const pe_redis_value_t *f = &e->elem[1];
      char want[PE_STREAM_ID_MAX], tick[PE_STREAM_ID_MAX];
      pe_stream_id_format(x->sid, want, sizeof want);
      pe_stream_id_format(x->tick, tick, sizeof tick);
      if (pe_stream_id_cmp(id, x->sid) != 0 ||
          strcmp(field(f, "id"), x->sig.id) != 0) {
        fprintf(stderr, "signal %zu: stream id %s (%s), want %s (%s)\n", seen,
                e->elem[0].str, field(f, "id"), want, x->sig.id);
        pe_test_failures++;
        return seen;
      }
      PE_CHECK_STR(field(f, "symbol"), x->sig.symbol);
      PE_CHECK_STR(field(f, "pattern"), x->sig.label);
      PE_CHECK_STR(field(f, "tick_id"), tick);
      PE_CHECK_SAME(strtod(field(f, "score"), NULL), x->sig.score);
      PE_CHECK_SAME(strtod(field(f, "price"), NULL), x->sig.price);
      PE_CHECK_INT(strtoll(field(f, "timestamp"), NULL, 10), x->sig.ts_ns);
    }
    snprintf(start, sizeof start, "(%s", v->elem[v->n - 1].elem[0].str);
  }
  PE_CHECK_INT(seen, n_exp);
  return seen;
}

/* The two engines' states are the same byte for byte. */
static int same_state(const pe_engine_t *a, const pe_engine_t *b) {
  size_t na = pe_engine_snapshot_size(a), nb = pe_engine_snapshot_size(b);
  unsigned char *sa = malloc(na), *sb = malloc(nb);
  size_t la = 0, lb = 0;
  int same = pe_engine_snapshot(a, sa, na, &la) == PE_OK &&
             pe_engine_snapshot(b, sb, nb, &lb) == PE_OK && la == lb &&
             memcmp(sa, sb, la) == 0;
  free(sa);
  free(sb);
  return same;
}

/* ---- the service
 * ----------------------------------------------------------------- */

static void base_config(pe_live_config_t *c, pe_engine_t *engine,
                        const char *ticks, const char *signals) {
  pe_live_config_default(c);
  c->engine = engine;
  c->redis_url = srv_url;
  c->ticks_stream = ticks;
  c->signals_stream = signals;
  c->count = 128;
  c->block_ms = 20;
  c->checkpoint_interval_ms = 0; /* by count only: deterministic */
}

static pe_live_t *live_open(const pe_live_config_t *c) {
  pe_live_t *live = NULL;
  char err[512];
  int rc = pe_live_create(c, &live, err, sizeof err);
  if (rc != PE_OK) {
    fprintf(stderr, "pe_live_create: %s\n", err);
    exit(1);
  }
  return live;
}

/* Steps until everything in the stream is read and acknowledged, then stops
 * cleanly. Returns the last step's code (PE_LIVE_STOPPED when all went
 * well). */
static int run_to_end(pe_live_t *live) {
  pe_live_step_stats_t st;
  int rc;
  for (int i = 0; i < 100000; i++) {
    rc = pe_live_step(live, 20, &st);
    if (rc != PE_OK) {
      return rc;
    }
    if (st.connected && st.idle_ns > 0 && !st.unacknowledged) {
      break;
    }
  }
  pe_live_stop(live);
  while ((rc = pe_live_step(live, 20, &st)) == PE_OK) {
  }
  return rc;
}

/* ---- cases
 * ----------------------------------------------------------------------- */

/* The service of exactly_once: a file checkpoint every 500 entries. */
static pe_live_t *once_open(pe_engine_t *engine, const char *ckpt) {
  pe_live_config_t c;
  base_config(&c, engine, "ticks:once", "signals:once");
  c.checkpoint = PE_LIVE_CHECKPOINT_FILE;
  c.checkpoint_path = ckpt;
  c.checkpoint_every = 500;
  return live_open(&c);
}

static void exactly_once(void) {
  redis_start();
  sim_t s;
  sim_make(&s, 8000, 30, 11);
  publish(&s, "ticks:once", 0, s.n);
  pe_engine_t *ref = new_engine(0);
  expected_t *exp = NULL;
  size_t n_exp = 0;
  reference(ref, &s, 0, s.n, &exp, &n_exp);
  PE_CHECK(n_exp > 100);
  char ckpt[128];
  snprintf(ckpt, sizeof ckpt, "%s/once.ckpt", srv_dir);
  /* Destroyed after at least these many steps, each time with a batch's
   * signals sent to Redis but not acknowledged, and no final checkpoint;
   * every other time right after a checkpoint was taken of that batch's
   * state (so that checkpoint must not become durable). */
  static const int crash_after[] = {6, 9, 4, 5, 7, 3};
  uint64_t reprocessed = 0;
  for (size_t k = 0; k < sizeof crash_after / sizeof crash_after[0]; k++) {
    pe_engine_t *engine = new_engine(0);
    pe_live_t *live = once_open(engine, ckpt);
    pe_live_step_stats_t st = {0};
    int steps = 0;
    while ((steps < crash_after[k] || !st.unacknowledged ||
            (k % 2 == 1 && !st.checkpointed)) &&
           steps < 1000) {
      PE_CHECK_INT(pe_live_step(live, 20, &st), PE_OK);
      steps++;
      if (k % 2 == 1) {
        /* Time for the writer thread to finish the last checkpoint, so
         * that the next one is not skipped as busy. */
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
      }
    }
    PE_CHECK(steps < 1000);
    pe_live_metrics_t m;
    pe_live_metrics(live, &m);
    PE_CHECK(m.entries < s.n);                     /* mid-stream */
    PE_CHECK(m.entries > m.entries_run || k == 0); /* resumed, not restarted */
    reprocessed += m.duplicates;
    pe_live_destroy(live);
    pe_engine_destroy(engine);
    struct stat sb;
    PE_CHECK_INT(stat(ckpt, &sb), 0);
  }
  pe_engine_t *engine = new_engine(0);
  pe_live_t *live = once_open(engine, ckpt);
  PE_CHECK_INT(run_to_end(live), PE_LIVE_STOPPED);
  pe_live_metrics_t m;
  pe_live_metrics(live, &m);
  reprocessed += m.duplicates;
  PE_CHECK_INT(m.entries, s.n);
  PE_CHECK_INT(m.ticks, s.n);
  /* Signals of re-read ticks were sent again and refused as duplicates:
   * the crashes did make the service redo work. */
  PE_CHECK(reprocessed > 0);
  printf("  %zu signals; %llu writes refused as duplicates after 6 crashes\n",
         n_exp, (unsigned long long)reprocessed);
  check_signals("signals:once", exp, n_exp);
  PE_CHECK(same_state(engine, ref));
  pe_live_destroy(live);
  pe_engine_destroy(engine);
  pe_engine_destroy(ref);
  free(exp);
  sim_free(&s);
  redis_stop();
}

static void checkpoint_restore(void) {
  redis_start();
  sim_t s;
  sim_make(&s, 3000, 20, 12);
  publish(&s, "ticks:ck", 0, 2000);
  pe_engine_t *ref = new_engine(0);
  expected_t *exp = NULL;
  size_t n_exp = 0;
  reference(ref, &s, 0, 2000, &exp, &n_exp);

  pe_engine_t *a = new_engine(0);
  pe_live_config_t c;
  base_config(&c, a, "ticks:ck", "signals:ck");
  c.checkpoint = PE_LIVE_CHECKPOINT_REDIS;
  c.checkpoint_every = 300;
  pe_live_t *live = live_open(&c);
  PE_CHECK_INT(run_to_end(live), PE_LIVE_STOPPED);
  pe_live_metrics_t ma;
  pe_live_metrics(live, &ma);
  PE_CHECK(ma.checkpoints >= 2); /* periodic ones and the final one */
  pe_live_destroy(live);
  PE_CHECK(same_state(a, ref));

  /* The key holds the position after the last entry. */
  const pe_redis_value_t *v = rcmd("GET", "signals:ck:checkpoint", NULL);
  PE_CHECK(v->type == PE_REDIS_STRING);
  size_t blob_len = v->len;
  char *blob = malloc(blob_len);
  memcpy(blob, v->str, blob_len);
  pe_checkpoint_t ck;
  char err[256];
  PE_CHECK_INT(pe_checkpoint_decode(blob, blob_len, &ck, err, sizeof err),
               PE_OK);
  PE_CHECK_INT(pe_stream_id_cmp(ck.last_id, s.ids[1999]), 0);
  PE_CHECK_INT(ck.position, 2000);
  PE_CHECK_STR(ck.ticks_stream, "ticks:ck");

  /* A new engine restored from it: the same state, position and totals,
   * before any new entry. */
  pe_engine_t *b = new_engine(0);
  c.engine = b;
  live = live_open(&c);
  pe_live_step_stats_t st;
  PE_CHECK_INT(pe_live_step(live, 0, &st), PE_OK);
  PE_CHECK_INT(st.entries, 0);
  PE_CHECK(same_state(b, a));
  pe_live_metrics_t mb;
  pe_live_metrics(live, &mb);
  PE_CHECK_STR(mb.last_id, ma.last_id);
  PE_CHECK_INT(mb.entries, 2000);
  PE_CHECK_INT(mb.entries_run, 0);
  PE_CHECK_INT(mb.ticks, 2000);
  /* And it goes on from there. */
  publish(&s, "ticks:ck", 2000, 3000);
  reference(ref, &s, 2000, 3000, &exp, &n_exp);
  PE_CHECK_INT(run_to_end(live), PE_LIVE_STOPPED);
  pe_live_metrics(live, &mb);
  PE_CHECK_INT(mb.entries, 3000);
  PE_CHECK_INT(mb.entries_run, 1000);
  PE_CHECK_INT(mb.duplicates, 0); /* nothing redone after a clean stop */
  pe_live_destroy(live);
  check_signals("signals:ck", exp, n_exp);
  PE_CHECK(same_state(b, ref));

  /* A corrupt key loads nothing and stays as it was. */
  v = rcmd("GET", "signals:ck:checkpoint", NULL);
  size_t good_len = v->len;
  char *good = malloc(good_len);
  memcpy(good, v->str, good_len);
  char off[32];
  snprintf(off, sizeof off, "%zu", good_len / 2);
  rcmd("SETRANGE", "signals:ck:checkpoint", off, "\xff\x01", NULL);
  pe_engine_t *fresh = new_engine(0), *d = new_engine(0);
  c.engine = d;
  live = live_open(&c);
  PE_CHECK_INT(pe_live_step(live, 0, NULL), PE_ECORRUPT);
  PE_CHECK(strstr(pe_live_errmsg(live), "checksum mismatch") != NULL);
  PE_CHECK(strstr(pe_live_errmsg(live), "Nothing was loaded") != NULL);
  PE_CHECK_INT(pe_live_step(live, 0, NULL), PE_ECORRUPT); /* it sticks */
  pe_live_destroy(live);
  PE_CHECK(same_state(d, fresh));
  v = rcmd("GET", "signals:ck:checkpoint", NULL);
  PE_CHECK(v->len == good_len && memcmp(v->str, good, good_len) != 0);

  /* One made with other settings: refused by the engine, nothing loaded. */
  pe_resp_buf_t set = {0};
  pe_resp_begin(&set, 3);
  pe_resp_arg_str(&set, "SET");
  pe_resp_arg_str(&set, "signals:ck:checkpoint");
  pe_resp_arg(&set, good, good_len);
  PE_CHECK_INT(pe_redis_command(cli, &set, &v), PE_OK);
  pe_resp_free(&set);
  pe_engine_t *other = new_engine(5.0), *other_fresh = new_engine(5.0);
  c.engine = other;
  live = live_open(&c);
  int rc = pe_live_step(live, 0, NULL);
  PE_CHECK(rc < 0);
  PE_CHECK(strstr(pe_live_errmsg(live), "other settings") != NULL);
  pe_live_destroy(live);
  PE_CHECK(same_state(other, other_fresh));

  pe_engine_destroy(a);
  pe_engine_destroy(b);
  pe_engine_destroy(d);
  pe_engine_destroy(fresh);
  pe_engine_destroy(other);
  pe_engine_destroy(other_fresh);
  pe_engine_destroy(ref);
  free(blob);
  free(good);
  free(exp);
  sim_free(&s);
  redis_stop();
}

/* Runs a service on ticks:gap with on_gap as given; returns the step code
 * it ended with and its metrics. */
static int gap_run(pe_engine_t *engine, const char *ckpt, int on_gap,
                   pe_live_metrics_t *m, char *msg, size_t msg_cap) {
  pe_live_config_t c;
  base_config(&c, engine, "ticks:gap", "signals:gap");
  c.checkpoint = PE_LIVE_CHECKPOINT_FILE;
  c.checkpoint_path = ckpt;
  c.on_gap = on_gap;
  pe_live_t *live = live_open(&c);
  int rc = run_to_end(live);
  pe_live_metrics(live, m);
  snprintf(msg, msg_cap, "%s", pe_live_errmsg(live));
  pe_live_destroy(live);
  return rc;
}

/* A run with on_gap skip after 900 entries were trimmed: the gap counted
 * once, entries_run entries read. */
static void gap_skip_run(pe_engine_t *e, const char *ckpt, pe_live_metrics_t *m,
                         uint64_t entries_run) {
  char msg[1024];
  PE_CHECK_INT(gap_run(e, ckpt, PE_LIVE_GAP_SKIP, m, msg, sizeof msg),
               PE_LIVE_STOPPED);
  PE_CHECK_INT(m->gaps, 1);
  PE_CHECK_INT(m->gap_entries, 900);
  PE_CHECK_INT(m->entries_run, entries_run);
}

static void gap_accounting(void) {
  redis_start();
  sim_t s;
  sim_make(&s, 2000, 10, 13);
  char ckpt[128], msg[1024];
  snprintf(ckpt, sizeof ckpt, "%s/gap.ckpt", srv_dir);
  publish(&s, "ticks:gap", 0, 1000);
  pe_engine_t *e = new_engine(0);
  pe_live_metrics_t m;
  PE_CHECK_INT(gap_run(e, ckpt, PE_LIVE_GAP_FAIL, &m, msg, sizeof msg),
               PE_LIVE_STOPPED);
  PE_CHECK_INT(m.gaps, 0);
  pe_engine_destroy(e);
  /* While it is down: 1000 more, then all but the last 100 trimmed. */
  publish(&s, "ticks:gap", 1000, 2000);
  rcmd("XTRIM", "ticks:gap", "MAXLEN", "100", NULL);
  for (int attempt = 0; attempt < 2; attempt++) { /* every start */
    e = new_engine(0);
    PE_CHECK_INT(gap_run(e, ckpt, PE_LIVE_GAP_FAIL, &m, msg, sizeof msg),
                 PE_EGAP);
    PE_CHECK(strstr(msg, "gap: 900 entries of 'ticks:gap'") != NULL);
    PE_CHECK_INT(m.gaps, 0);
    PE_CHECK_INT(m.entries_run, 0);
    pe_engine_destroy(e);
  }
  e = new_engine(0);
  gap_skip_run(e, ckpt, &m, 100);
  PE_CHECK_INT(m.entries, 1100);
  PE_CHECK(m.lag_known);
  PE_CHECK_INT(m.lag_entries, 0);
  /* It went on from the first entry left, with the state it had. */
  pe_engine_t *ref = new_engine(0);
  expected_t *exp = NULL;
  size_t n_exp = 0;
  reference(ref, &s, 0, 1000, &exp, &n_exp);
  reference(ref, &s, 1900, 2000, &exp, &n_exp);
  check_signals("signals:gap", exp, n_exp);
  PE_CHECK(same_state(e, ref));
  pe_engine_destroy(e);
  /* Counted once: a later start finds no new gap. */
  e = new_engine(0);
  gap_skip_run(e, ckpt, &m, 0);
  pe_engine_destroy(e);

  /* A gap while it runs: 1000 added and all but 10 trimmed in one
   * transaction between two of its steps. */
  publish(&s, "ticks:rgap", 0, 5);
  e = new_engine(0);
  pe_live_config_t c;
  base_config(&c, e, "ticks:rgap", "signals:rgap");
  c.on_gap = PE_LIVE_GAP_SKIP;
  pe_live_t *live = live_open(&c);
  pe_live_step_stats_t st;
  do {
    PE_CHECK_INT(pe_live_step(live, 20, &st), PE_OK);
  } while (!(st.connected && st.idle_ns > 0));
  rcmd("MULTI", NULL);
  publish(&s, "ticks:rgap", 5, 1005);
  rcmd("XTRIM", "ticks:rgap", "MAXLEN", "10", NULL);
  rcmd("EXEC", NULL);
  uint64_t until = pe_clock_ns() + 5000000000ull;
  do {
    PE_CHECK_INT(pe_live_step(live, 20, &st), PE_OK);
    pe_live_metrics(live, &m);
  } while (m.gaps == 0 && pe_clock_ns() < until);
  PE_CHECK_INT(run_to_end(live), PE_LIVE_STOPPED);
  pe_live_metrics(live, &m);
  PE_CHECK_INT(m.gaps, 1);
  PE_CHECK_INT(m.gap_entries, 990);
  PE_CHECK_INT(m.entries, 15);
  pe_live_destroy(live);
  pe_engine_destroy(e);
  pe_engine_destroy(ref);
  free(exp);
  sim_free(&s);
  redis_stop();
}

static void step_timeout(void) {
  pe_live_destroy(NULL);
  pe_engine_t *e = new_engine(0);
  pe_live_config_t c;
  pe_live_config_default(&c);
  pe_live_t *live = NULL;
  char err[256];
  PE_CHECK_INT(pe_live_create(&c, &live, err, sizeof err), PE_EINVAL);
  PE_CHECK(live == NULL);
  c.engine = e;
  c.signals_stream = c.ticks_stream;
  PE_CHECK_INT(pe_live_create(&c, &live, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "must differ") != NULL);
  pe_live_config_default(&c);
  c.engine = e;
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", free_port());
  c.redis_url = url;
  c.block_ms = 1000;
  live = live_open(&c);
  for (int i = 0; i < 3; i++) {
    pe_live_step_stats_t st;
    uint64_t t0 = pe_clock_ns();
    PE_CHECK_INT(pe_live_step(live, 50, &st), PE_OK);
    uint64_t took_ms = (pe_clock_ns() - t0) / 1000000;
    PE_CHECK(took_ms <= 300);
    PE_CHECK_INT(st.connected, 0);
  }
  pe_live_metrics_t m;
  pe_live_metrics(live, &m);
  PE_CHECK_INT(m.status, PE_LIVE_STARTING);
  pe_live_stop(live);
  PE_CHECK_INT(pe_live_step(live, 50, NULL), PE_ECONN);
  PE_CHECK(strstr(pe_live_errmsg(live), "before Redis could be reached"));
  pe_live_destroy(live);
  pe_engine_destroy(e);
}

/* A handle writing under fence token tok of "fence:{f}". */
static pe_live_t *fenced_open(pe_engine_t *engine, const char *tok) {
  pe_live_config_t c;
  base_config(&c, engine, "ticks:{f}", "signals:{f}");
  c.checkpoint = PE_LIVE_CHECKPOINT_REDIS;
  c.checkpoint_key = "checkpoint:{f}";
  c.checkpoint_every = 300;
  c.fence_key = "fence:{f}";
  c.fence_token = tok;
  return live_open(&c);
}

static int64_t xlen(const char *key) {
  const pe_redis_value_t *v = rcmd("XLEN", key, NULL);
  return v->type == PE_REDIS_INTEGER ? v->integer : -1;
}

static void fenced(void) {
  redis_start();
  sim_t s;
  sim_make(&s, 4000, 20, 13);
  publish(&s, "ticks:{f}", 0, 2000);
  pe_engine_t *ref = new_engine(0);
  expected_t *exp = NULL;
  size_t n_exp = 0;
  reference(ref, &s, 0, s.n, &exp, &n_exp);
  PE_CHECK(n_exp > 50);
  rcmd("SET", "fence:{f}", "7", NULL);

  /* Token 7 holds: the first half goes out. */
  pe_engine_t *a = new_engine(0);
  pe_live_t *old = fenced_open(a, "7");
  pe_live_step_stats_t st;
  for (int i = 0; i < 200; i++) {
    PE_CHECK_INT(pe_live_step(old, 20, &st), PE_OK);
    if (st.connected && st.idle_ns > 0 && !st.unacknowledged) {
      break;
    }
  }
  int64_t before = xlen("signals:{f}");
  PE_CHECK(before > 0);
  PE_CHECK_INT(pe_live_fenced(old), 0);

  /* Another owner is granted the partition: the old handle's next write
   * is refused and nothing more of it lands. */
  rcmd("INCR", "fence:{f}", NULL);
  publish(&s, "ticks:{f}", 2000, s.n);
  int rc = PE_OK;
  for (int i = 0; i < 200 && rc == PE_OK; i++) {
    rc = pe_live_step(old, 20, &st);
  }
  PE_CHECK_INT(rc, PE_ESTATE);
  PE_CHECK_INT(pe_live_fenced(old), 1);
  PE_CHECK(strstr(pe_live_errmsg(old), "refused by the fence") != NULL);
  PE_CHECK_INT(xlen("signals:{f}"), before);
  pe_live_destroy(old);
  pe_engine_destroy(a);

  /* The new owner resumes from the checkpoint the old one left. */
  pe_engine_t *b = new_engine(0);
  pe_live_t *owner = fenced_open(b, "8");
  PE_CHECK_INT(run_to_end(owner), PE_LIVE_STOPPED);
  check_signals("signals:{f}", exp, n_exp);
  PE_CHECK(same_state(b, ref));
  pe_live_destroy(owner);
  pe_engine_destroy(b);
  pe_engine_destroy(ref);
  free(exp);
  sim_free(&s);
  redis_stop();
}

PE_TEST_MAIN(PE_TEST(exactly_once), PE_TEST(checkpoint_restore),
             PE_TEST(gap_accounting), PE_TEST(step_timeout), PE_TEST(fenced))
