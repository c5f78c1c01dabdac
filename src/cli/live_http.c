/* /health and /metrics for `pattern-engine live`, served by libmicrohttpd
 * from its own thread (see live.h). Without PE_WITH_HTTP only the
 * formatters are built and --http is refused. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/live.h"
#include "pe/clock.h"
#include "pe/error.h"

#ifdef PE_WITH_HTTP
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include "cli/cli.h"

/* ---- formatting
 * ---------------------------------------------------------------- */

typedef struct pe__out {
  char *buf;
  size_t cap;
  size_t len;
} pe__out_t;

static void pe__printf(pe__out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pe__printf(pe__out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->len < o->cap ? o->cap - o->len : 0;
  int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0) {
    o->len += (size_t)n;
  }
}

static void pe__metric(pe__out_t *o, const char *name, const char *type,
                       const char *help) {
  pe__printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Count of recorded values <= limit: the buckets whose upper edge is at or
 * under it (within the histogram's 1/32 resolution). */
static uint64_t pe__hist_le(const pe_hist_t *h, uint64_t limit) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < PE_HIST_BUCKETS; i++) {
    if (h->bucket[i] == 0) {
      continue;
    }
    uint64_t upper;
    if (i < PE_HIST_SUB) {
      upper = i;
    } else {
      uint32_t shift = i / PE_HIST_SUB - 1;
      uint64_t sub = (uint64_t)(i % PE_HIST_SUB) + PE_HIST_SUB;
      upper = shift >= 58 ? UINT64_MAX : ((sub + 1) << shift) - 1;
    }
    if (upper <= limit) {
      n += h->bucket[i];
    }
  }
  return n;
}

static double pe__age_s(const pe_live_metrics_t *m, int64_t now) {
  return m->checkpoint_wall_ns > 0
             ? (double)(now - m->checkpoint_wall_ns) * 1e-9
             : NAN;
}

static const char *pe__status_name(int status) {
  switch (status) {
  case PE_LIVE_OK:
    return "ok";
  case PE_LIVE_DISCONNECTED:
    return "disconnected";
  case PE_LIVE_STOPPING:
    return "stopping";
  default:
    return "starting";
  }
}

size_t pe_live_metrics_format(const pe_live_metrics_t *m, int64_t now,
                              char *buf, size_t cap) {
  pe__out_t o = {buf, cap, 0};
  pe__metric(&o, "pe_live_up", "gauge",
             "1 while the engine runs and Redis is reachable");
  pe__printf(&o, "pe_live_up %d\n", m->status == PE_LIVE_OK);
  pe__metric(&o, "pe_live_entries_total", "counter",
             "Entries read from the ticks stream, accepted or rejected");
  pe__printf(&o, "pe_live_entries_total %llu\n",
             (unsigned long long)m->entries);
  pe__metric(&o, "pe_live_ticks_total", "counter",
             "Ticks accepted by the engine");
  pe__printf(&o, "pe_live_ticks_total %llu\n", (unsigned long long)m->ticks);
  pe__metric(&o, "pe_live_rejections_total", "counter",
             "Entries rejected, by reason");
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    pe__printf(&o, "pe_live_rejections_total{reason=\"%s\"} %llu\n",
               pe_stream_reject_name(r), (unsigned long long)m->rejected[r]);
  }
  pe__metric(&o, "pe_live_signals_total", "counter",
             "Signals emitted, by pattern");
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    pe__printf(&o, "pe_live_signals_total{pattern=\"%s\"} %llu\n",
               p < PE_RULE_COUNT ? pe_rule_name(p) : "model",
               (unsigned long long)m->signals[p]);
  }
  pe__metric(&o, "pe_live_duplicates_total", "counter",
             "Writes Redis refused because the entry id was already there "
             "(re-derived after a restart or reconnect)");
  pe__printf(&o, "pe_live_duplicates_total %llu\n",
             (unsigned long long)m->duplicates);
  pe__metric(&o, "pe_live_tick_to_signal_latency_seconds", "histogram",
             "From a batch of ticks arriving from Redis to its signals "
             "acknowledged by Redis, one sample per signal");
  static const double le[] = {25e-6,  50e-6,  100e-6, 250e-6, 500e-6, 1e-3,
                              2.5e-3, 5e-3,   10e-3,  25e-3,  50e-3,  100e-3,
                              250e-3, 500e-3, 1.0,    2.5,    5.0};
  for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
    pe__printf(
        &o, "pe_live_tick_to_signal_latency_seconds_bucket{le=\"%g\"} %llu\n",
        le[i],
        (unsigned long long)pe__hist_le(&m->latency_ns,
                                        (uint64_t)llround(le[i] * 1e9)));
  }
  pe__printf(&o,
             "pe_live_tick_to_signal_latency_seconds_bucket{le=\"+Inf\"} "
             "%llu\n",
             (unsigned long long)m->latency_ns.count);
  pe__printf(&o, "pe_live_tick_to_signal_latency_seconds_sum %.9f\n",
             pe_hist_mean(&m->latency_ns) * (double)m->latency_ns.count * 1e-9);
  pe__printf(&o, "pe_live_tick_to_signal_latency_seconds_count %llu\n",
             (unsigned long long)m->latency_ns.count);
  pe__metric(&o, "pe_live_reconnects_total", "counter",
             "Connections to Redis made again after one was lost");
  pe__printf(&o, "pe_live_reconnects_total %llu\n",
             (unsigned long long)m->reconnects);
  pe__metric(&o, "pe_live_checkpoints_total", "counter",
             "Checkpoints written by this process");
  pe__printf(&o, "pe_live_checkpoints_total %llu\n",
             (unsigned long long)m->checkpoints);
  pe__metric(&o, "pe_live_checkpoint_failures_total", "counter",
             "Checkpoints that could not be written");
  pe__printf(&o, "pe_live_checkpoint_failures_total %llu\n",
             (unsigned long long)m->checkpoint_failures);
  pe__metric(&o, "pe_live_checkpoint_age_seconds", "gauge",
             "Seconds since the last checkpoint was taken (NaN: none yet)");
  double age = pe__age_s(m, now);
  if (isnan(age)) {
    pe__printf(&o, "pe_live_checkpoint_age_seconds NaN\n");
  } else {
    pe__printf(&o, "pe_live_checkpoint_age_seconds %.3f\n", age);
  }
  pe__metric(&o, "pe_live_stream_lag_entries", "gauge",
             "Entries in the ticks stream not read yet (NaN before Redis 7)");
  if (m->lag_known) {
    pe__printf(&o, "pe_live_stream_lag_entries %llu\n",
               (unsigned long long)m->lag_entries);
  } else {
    pe__printf(&o, "pe_live_stream_lag_entries NaN\n");
  }
  pe__metric(&o, "pe_live_stream_lag_seconds", "gauge",
             "Time between the newest entry id and the last one read");
  pe__printf(&o, "pe_live_stream_lag_seconds %.3f\n", (double)m->lag_ms * 1e-3);
  pe__metric(&o, "pe_live_gaps_total", "counter",
             "Times entries were found trimmed or deleted before being read");
  pe__printf(&o, "pe_live_gaps_total %llu\n", (unsigned long long)m->gaps);
  pe__metric(&o, "pe_live_gap_entries_total", "counter",
             "Entries lost in those gaps");
  pe__printf(&o, "pe_live_gap_entries_total %llu\n",
             (unsigned long long)m->gap_entries);
  pe__metric(&o, "pe_live_symbols", "gauge", "Symbols the engine tracks");
  pe__printf(&o, "pe_live_symbols %u\n", m->symbols);
  return o.len;
}

size_t pe_live_health_format(const pe_live_metrics_t *m, int64_t now, char *buf,
                             size_t cap) {
  pe__out_t o = {buf, cap, 0};
  double age = pe__age_s(m, now);
  pe__printf(&o,
             "{\"status\":\"%s\",\"symbols\":%u,\"last_entry_id\":\"%s\","
             "\"lag\":{\"entries\":",
             pe__status_name(m->status), m->symbols, m->last_id);
  if (m->lag_known) {
    pe__printf(&o, "%llu", (unsigned long long)m->lag_entries);
  } else {
    pe__printf(&o, "null");
  }
  pe__printf(&o,
             ",\"ms\":%llu},\"entries\":%llu,\"ticks\":%llu,"
             "\"reconnects\":%llu,\"gaps\":%llu,\"checkpoint_age_s\":",
             (unsigned long long)m->lag_ms, (unsigned long long)m->entries,
             (unsigned long long)m->ticks, (unsigned long long)m->reconnects,
             (unsigned long long)m->gaps);
  if (isnan(age)) {
    pe__printf(&o, "null}\n");
  } else {
    pe__printf(&o, "%.3f}\n", age);
  }
  return o.len;
}

/* ---- the server
 * ---------------------------------------------------------------- */

#ifdef PE_WITH_HTTP

struct pe_live_http {
  struct MHD_Daemon *daemon;
  pthread_mutex_t lock;
  pe_live_metrics_t slot; /* guarded by lock */
  pe_live_metrics_t view; /* the HTTP thread's copy */
  char body[64 * 1024];   /* HTTP thread only */
};

static enum MHD_Result pe__reply(struct MHD_Connection *conn, unsigned status,
                                 const char *type, const char *body,
                                 size_t len) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) {
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", type);
  enum MHD_Result rc = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result pe__handle(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  pe_live_http_t *h = cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char msg[] = "only GET\n";
    return pe__reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", msg,
                     sizeof msg - 1);
  }
  int health = strcmp(url, "/health") == 0;
  if (!health && strcmp(url, "/metrics") != 0) {
    static const char msg[] = "not found: try /health or /metrics\n";
    return pe__reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", msg,
                     sizeof msg - 1);
  }
  pthread_mutex_lock(&h->lock);
  h->view = h->slot;
  pthread_mutex_unlock(&h->lock);
  int64_t now = pe_wall_ns();
  size_t n;
  if (health) {
    n = pe_live_health_format(&h->view, now, h->body, sizeof h->body);
  } else {
    n = pe_live_metrics_format(&h->view, now, h->body, sizeof h->body);
  }
  if (n >= sizeof h->body) {
    n = sizeof h->body - 1;
  }
  unsigned status = MHD_HTTP_OK;
  if (health && h->view.status != PE_LIVE_OK) {
    status = MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  return pe__reply(conn, status,
                   health ? "application/json"
                          : "text/plain; version=0.0.4; charset=utf-8",
                   h->body, n);
}

int pe_live_http_start(const char *cmd_name, const char *addr,
                       pe_live_http_t **out) {
  *out = NULL;
  const char *colon = strrchr(addr, ':');
  char host[64];
  int port = colon ? atoi(colon + 1) : 0;
  size_t hlen = colon ? (size_t)(colon - addr) : 0;
  if (colon == NULL || port <= 0 || port > 65535 || hlen >= sizeof host) {
    fprintf(stderr,
            "pattern-engine %s: --http: '%s' is not HOST:PORT (e.g. "
            "127.0.0.1:8005)\n",
            cmd_name, addr);
    return PE_EXIT_USAGE;
  }
  memcpy(host, addr, hlen);
  host[hlen] = '\0';
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    host[hlen - 1] = '\0';
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
      hlen = 0;
    }
    flags |= MHD_USE_IPv6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (hlen == 0) {
      a4->sin_addr.s_addr = htonl(INADDR_ANY);
      hlen = 1;
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
      hlen = 0;
    }
  }
  if (hlen == 0) {
    fprintf(stderr,
            "pattern-engine %s: --http: '%s' is not a numeric address "
            "(use 127.0.0.1:PORT, [::1]:PORT or :PORT)\n",
            cmd_name, addr);
    return PE_EXIT_USAGE;
  }
  pe_live_http_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    fprintf(stderr, "pattern-engine %s: out of memory\n", cmd_name);
    return PE_EXIT_FAIL;
  }
  pthread_mutex_init(&h->lock, NULL);
  pe_hist_init(&h->slot.latency_ns);
  h->daemon = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, pe__handle, h, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
      MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (h->daemon == NULL) {
    fprintf(stderr,
            "pattern-engine %s: --http: cannot listen on %s (in use, or no "
            "such address)\n",
            cmd_name, addr);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return PE_EXIT_FAIL;
  }
  *out = h;
  return PE_EXIT_OK;
}

int pe_live_http_publish(pe_live_http_t *h, const pe_live_metrics_t *m) {
  if (h == NULL || pthread_mutex_trylock(&h->lock) != 0) {
    return 0;
  }
  h->slot = *m;
  pthread_mutex_unlock(&h->lock);
  return 1;
}

void pe_live_http_stop(pe_live_http_t *h) {
  if (h == NULL) {
    return;
  }
  MHD_stop_daemon(h->daemon);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

#else /* !PE_WITH_HTTP */

int pe_live_http_start(const char *cmd_name, const char *addr,
                       pe_live_http_t **out) {
  *out = NULL;
  fprintf(stderr,
          "pattern-engine %s: --http %s: this build has no HTTP server; "
          "rebuild with libmicrohttpd-dev installed (PE_WITH_HTTP)\n",
          cmd_name, addr);
  return PE_EXIT_USAGE;
}

int pe_live_http_publish(pe_live_http_t *h, const pe_live_metrics_t *m) {
  (void)h;
  (void)m;
  return 0;
}

void pe_live_http_stop(pe_live_http_t *h) { (void)h; }

#endif
