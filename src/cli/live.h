/* What `pattern-engine live` shows to operators: its metrics, as the worker
 * publishes them, and the HTTP server that serves them (internal to
 * src/cli/).
 *
 * The worker thread owns the live counters. Now and then (off the per-tick
 * path) it copies them into the server's slot with pe_live_http_publish,
 * which only ever try-locks: the worker never waits for the HTTP thread. */
#ifndef PE_CLI_LIVE_H
#define PE_CLI_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "pe/engine.h"
#include "pe/hist.h"
#include "pe/stream.h"

typedef enum pe_live_status {
  PE_LIVE_STARTING = 0,
  PE_LIVE_OK,
  PE_LIVE_DISCONNECTED, /* Redis is unreachable; reconnecting */
  PE_LIVE_STOPPING
} pe_live_status_t;

typedef struct pe_live_metrics {
  int status;       /* pe_live_status_t */
  uint64_t entries; /* stream entries read (accepted + rejected) */
  uint64_t ticks;   /* accepted by the engine */
  uint64_t rejected[PE_STREAM_REJECT_COUNT];
  uint64_t signals[PE_RULE_COUNT + 1]; /* by pattern; last: model */
  uint64_t duplicates; /* writes Redis refused as already there */
  uint64_t reconnects;
  uint64_t checkpoints; /* written since this process started */
  uint64_t checkpoint_failures;
  int64_t checkpoint_wall_ns; /* when the last one was taken; 0: none */
  int lag_known;              /* lag_entries is meaningful (Redis >= 7) */
  uint64_t lag_entries;       /* entries in the stream not read yet */
  uint64_t lag_ms;            /* newest entry id time - last read id time */
  uint64_t gaps;              /* times entries were found missing */
  uint64_t gap_entries;       /* entries missing in all */
  uint32_t symbols;
  char last_id[PE_STREAM_ID_MAX];
  pe_hist_t latency_ns; /* from a batch's arrival to its signals'
                           acknowledgement by Redis, per signal */
} pe_live_metrics_t;

/* Prometheus text exposition of m. Returns the length (snprintf-style). */
size_t pe_live_metrics_format(const pe_live_metrics_t *m, int64_t now_wall_ns,
                              char *buf, size_t cap);

/* The /health JSON document. Returns the length (snprintf-style). */
size_t pe_live_health_format(const pe_live_metrics_t *m, int64_t now_wall_ns,
                             char *buf, size_t cap);

typedef struct pe_live_http pe_live_http_t;

/* Starts serving /health and /metrics on addr ("127.0.0.1:8005", "[::1]:80",
 * ":8005" for every address). Returns an exit code with the error printed. */
int pe_live_http_start(const char *cmd_name, const char *addr,
                       pe_live_http_t **out);

/* Copies m into the server's slot unless the server is reading it right
 * now; returns 1 when copied. NULL server: no-op. */
int pe_live_http_publish(pe_live_http_t *http, const pe_live_metrics_t *m);

/* Stops the server and frees it; NULL is a no-op. */
void pe_live_http_stop(pe_live_http_t *http);

#endif
