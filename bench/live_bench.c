/* Helpers of bench/run_live.sh (the live benchmark).
 *
 *   live_bench gen --ticks N --symbols M --out PATH
 *       a tick CSV for the throughput run (random walks, integer ns);
 *   live_bench latency --redis URL --ticks-stream S --signals-stream S2
 *                      --rate R --seconds T [--warmup W] [--json PATH]
 *       tick-XADD-to-signal-visible latency: a producer thread adds R ticks
 *       a second to S, each built to make `live` (run with
 *       --signal-score-min 0 --signal-cooldown 0) emit a signal; a consumer
 *       thread blocks on XREAD of S2 and, for each signal, takes the time
 *       since its tick's XADD was sent (the tick is found by the signal's
 *       tick_id field). Prints p50/p99/p99.9/max after the warm-up.
 *       --direct: the consumer reads the ticks stream itself (no engine):
 *       the same producer, Redis and consumer, as the floor to compare with.
 *
 * Both threads time with CLOCK_MONOTONIC on the same machine. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pe/clock.h"
#include "pe/error.h"
#include "pe/hist.h"
#include "pe/redis.h"

static const char *pe__arg(int argc, char **argv, const char *name,
                           const char *def) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) {
      return argv[i + 1];
    }
  }
  return def;
}

static int pe__gen(int argc, char **argv) {
  long n = atol(pe__arg(argc, argv, "--ticks", "2000000"));
  int m = atoi(pe__arg(argc, argv, "--symbols", "100"));
  const char *out = pe__arg(argc, argv, "--out", "ticks.csv");
  FILE *f = fopen(out, "w");
  if (f == NULL || m <= 0) {
    fprintf(stderr, "live_bench gen: cannot write %s\n", out);
    return 1;
  }
  double *price = malloc((size_t)m * sizeof *price);
  uint64_t x = 88172645463325252ull;
  for (int s = 0; s < m; s++) {
    price[s] = 50.0 + s % 50;
  }
  long long ts = 1700000000000000000LL;
  fputs("ts,symbol,price,volume\n", f);
  for (long i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int s = (int)(x % (uint64_t)m);
    double u = (double)(x >> 11) * 0x1.0p-53;
    ts += 1000 + (long long)(x % 2000000);
    price[s] *= 1.0 + (u - 0.5) * 0.004 + (u > 0.995 ? 0.03 : 0.0);
    int vol = 1 + (int)((x >> 20) % 200) * (u < 0.01 ? 20 : 1);
    fprintf(f, "%lld,S%03d,%.4f,%d\n", ts, s, price[s], vol);
  }
  free(price);
  return fclose(f) == 0 ? 0 : 1;
}

/* ---- latency
 * ---------------------------------------------------------------------- */

typedef struct pe__lat {
  pe_redis_url_t url;
  const char *ticks;
  const char *signals;
  double rate;
  double seconds;
  double warmup;
  int direct;
  uint64_t n;
  uint64_t *sent_ns; /* [n] monotonic send time of tick i; 0 until sent */
  volatile int done;
  uint64_t start_ns;
  pe_hist_t hist;
  uint64_t signals_seen;
  uint64_t unmatched;
  char err[512];
} pe__lat_t;

static void *pe__producer(void *arg) {
  pe__lat_t *L = arg;
  pe_redis_t *r;
  pe_redis_create(&L->url, NULL, &r);
  if (pe_redis_connect(r) != PE_OK) {
    snprintf(L->err, sizeof L->err, "producer: %s", pe_redis_errmsg(r));
    L->done = 1;
    pe_redis_destroy(r);
    return NULL;
  }
  pe_resp_buf_t b = {0};
  const pe_redis_value_t *v;
  uint64_t interval = (uint64_t)(1e9 / L->rate);
  int64_t wall0 = pe_wall_ns();
  for (uint64_t i = 0; i < L->n; i++) {
    uint64_t due = L->start_ns + i * interval;
    /* Sleep, not spin: on a small machine a spinning producer would take
     * the CPU Redis and the engine need. Latency is timed from the actual
     * send, so a late wake-up only delays the schedule. */
    uint64_t now = pe_clock_ns();
    if (now < due) {
      struct timespec ts = {0, (long)(due - now)};
      nanosleep(&ts, NULL);
    }
    /* 10 symbols; each alternates 100 and 102, so vwap_deviation fires on
     * every tick after the first of its symbol. */
    char sym[8];
    uint64_t k = i / 10;
    snprintf(sym, sizeof sym, "L%02u", (unsigned)(i % 10));
    pe_stream_id_t id = {(uint64_t)(wall0 / 1000000), i + 1};
    pe_resp_reset(&b);
    pe_resp_begin(&b, 11);
    pe_resp_arg_str(&b, "XADD");
    pe_resp_arg_str(&b, L->ticks);
    pe_resp_arg_id(&b, id);
    pe_resp_arg_str(&b, "symbol");
    pe_resp_arg_str(&b, sym);
    pe_resp_arg_str(&b, "price");
    pe_resp_arg_str(&b, k % 2 ? "102" : "100");
    pe_resp_arg_str(&b, "volume");
    pe_resp_arg_str(&b, "10");
    pe_resp_arg_str(&b, "timestamp");
    pe_resp_arg_i64(&b, wall0 + (int64_t)(i * interval));
    __atomic_store_n(&L->sent_ns[i], pe_clock_ns(), __ATOMIC_RELEASE);
    if (pe_redis_command(r, &b, &v) != PE_OK || v->type == PE_REDIS_ERROR) {
      snprintf(L->err, sizeof L->err, "producer XADD: %s",
               v && v->type == PE_REDIS_ERROR ? v->str : pe_redis_errmsg(r));
      break;
    }
  }
  pe_resp_free(&b);
  pe_redis_destroy(r);
  /* Let the last signals arrive. */
  struct timespec ts = {0, 300000000L};
  nanosleep(&ts, NULL);
  L->done = 1;
  return NULL;
}

static void *pe__consumer(void *arg) {
  pe__lat_t *L = arg;
  pe_redis_t *r;
  pe_redis_create(&L->url, NULL, &r);
  if (pe_redis_connect(r) != PE_OK) {
    snprintf(L->err, sizeof L->err, "consumer: %s", pe_redis_errmsg(r));
    pe_redis_destroy(r);
    return NULL;
  }
  pe_resp_buf_t b = {0};
  char last[PE_STREAM_ID_MAX] = "$";
  uint64_t warm_ns = (uint64_t)(L->warmup * 1e9);
  while (!L->done) {
    pe_resp_reset(&b);
    pe_resp_begin(&b, 8);
    pe_resp_arg_str(&b, "XREAD");
    pe_resp_arg_str(&b, "COUNT");
    pe_resp_arg_str(&b, "1000");
    pe_resp_arg_str(&b, "BLOCK");
    pe_resp_arg_str(&b, "100");
    pe_resp_arg_str(&b, "STREAMS");
    pe_resp_arg_str(&b, L->direct ? L->ticks : L->signals);
    pe_resp_arg_str(&b, last);
    const pe_redis_value_t *v;
    if (pe_redis_command(r, &b, &v) != PE_OK) {
      snprintf(L->err, sizeof L->err, "consumer: %s", pe_redis_errmsg(r));
      break;
    }
    uint64_t now = pe_clock_ns();
    const pe_redis_value_t *entries;
    size_t n;
    if (pe_redis_xread_entries(v, &entries, &n) != PE_OK) {
      continue;
    }
    for (size_t i = 0; i < n; i++) {
      pe_stream_field_t f[64];
      size_t nf;
      pe_stream_id_t id;
      if (pe_redis_entry_fields(&entries[i], &id, f, 64, &nf) != PE_OK) {
        continue;
      }
      pe_stream_id_format(id, last, sizeof last);
      if (L->direct) {
        if (id.seq >= 1 && id.seq <= L->n) {
          uint64_t sent =
              __atomic_load_n(&L->sent_ns[id.seq - 1], __ATOMIC_ACQUIRE);
          L->signals_seen++;
          if (sent != 0 && sent - L->start_ns >= warm_ns) {
            pe_hist_record(&L->hist, now - sent);
          }
        }
        continue;
      }
      for (size_t k = 0; k < nf; k++) {
        if (f[k].name_len == 7 && memcmp(f[k].name, "tick_id", 7) == 0) {
          pe_stream_id_t t;
          if (pe_stream_id_parse(f[k].value, f[k].value_len, &t) == PE_OK &&
              t.seq >= 1 && t.seq <= L->n &&
              __atomic_load_n(&L->sent_ns[t.seq - 1], __ATOMIC_ACQUIRE) != 0) {
            uint64_t sent = L->sent_ns[t.seq - 1];
            L->signals_seen++;
            if (sent - L->start_ns >= warm_ns) {
              pe_hist_record(&L->hist, now - sent);
            }
          } else {
            L->unmatched++;
          }
        }
      }
    }
  }
  pe_resp_free(&b);
  pe_redis_destroy(r);
  return NULL;
}

static int pe__latency(int argc, char **argv) {
  pe__lat_t *L = calloc(1, sizeof *L);
  char err[512];
  if (pe_redis_url_parse(
          pe__arg(argc, argv, "--redis", "redis://127.0.0.1:6379"), &L->url,
          err, sizeof err) != PE_OK) {
    fprintf(stderr, "live_bench: %s\n", err);
    return 2;
  }
  L->ticks = pe__arg(argc, argv, "--ticks-stream", "ticks:lat");
  L->signals = pe__arg(argc, argv, "--signals-stream", "signals:lat");
  L->rate = atof(pe__arg(argc, argv, "--rate", "10000"));
  L->seconds = atof(pe__arg(argc, argv, "--seconds", "10"));
  L->warmup = atof(pe__arg(argc, argv, "--warmup", "1"));
  const char *json = pe__arg(argc, argv, "--json", NULL);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--direct") == 0) {
      L->direct = 1;
    }
  }
  L->n = (uint64_t)(L->rate * L->seconds);
  L->sent_ns = calloc(L->n, sizeof *L->sent_ns);
  pe_hist_init(&L->hist);
  pthread_t prod, cons;
  pthread_create(&cons, NULL, pe__consumer, L);
  struct timespec ts = {0, 200000000L}; /* the consumer's XREAD is waiting */
  nanosleep(&ts, NULL);
  L->start_ns = pe_clock_ns();
  pthread_create(&prod, NULL, pe__producer, L);
  pthread_join(prod, NULL);
  pthread_join(cons, NULL);
  if (L->err[0]) {
    fprintf(stderr, "live_bench: %s\n", L->err);
    return 1;
  }
  double p50 = (double)pe_hist_quantile(&L->hist, 0.50) * 1e-3;
  double p99 = (double)pe_hist_quantile(&L->hist, 0.99) * 1e-3;
  double p999 = (double)pe_hist_quantile(&L->hist, 0.999) * 1e-3;
  double mx = (double)L->hist.max * 1e-3;
  printf("%s at %.0f ticks/s for %.0f s: %llu ticks, %llu %s "
         "(%llu measured after %.0f s warm-up): p50 %.1f us, p99 %.1f us, "
         "p99.9 %.1f us, max %.1f us\n",
         L->direct ? "XADD -> XREAD (no engine)" : "latency", L->rate,
         L->seconds, (unsigned long long)L->n,
         (unsigned long long)L->signals_seen,
         L->direct ? "entries seen" : "signals",
         (unsigned long long)L->hist.count, L->warmup, p50, p99, p999, mx);
  if (json != NULL) {
    FILE *f = fopen(json, "w");
    if (f != NULL) {
      fprintf(f,
              "{\"rate\":%.0f,\"seconds\":%.1f,\"ticks\":%llu,\"signals\":%llu,"
              "\"measured\":%llu,\"unmatched\":%llu,\"p50_us\":%.1f,"
              "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}\n",
              L->rate, L->seconds, (unsigned long long)L->n,
              (unsigned long long)L->signals_seen,
              (unsigned long long)L->hist.count,
              (unsigned long long)L->unmatched, p50, p99, p999, mx);
      fclose(f);
    }
  }
  int ok = L->hist.count > 0;
  free(L->sent_ns);
  free(L);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "gen") == 0) {
    return pe__gen(argc, argv);
  }
  if (argc >= 2 && strcmp(argv[1], "latency") == 0) {
    return pe__latency(argc, argv);
  }
  fprintf(stderr,
          "usage: live_bench gen|latency [FLAGS] (see bench/live_bench.c)\n");
  return 2;
}
