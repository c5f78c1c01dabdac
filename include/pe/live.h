/* The live service: ticks from a Redis Stream through an engine, signals out
 * to another stream, with checkpoints, gap accounting, metrics and an
 * optional HTTP server for /health and /metrics (docs/live.md).
 *
 * Built only with PE_WITH_REDIS (hiredis); libmicrohttpd only for the HTTP
 * server. `pattern-engine live` is a thin loop around this API:
 *
 *   pe_live_config_t cfg;
 *   pe_live_config_default(&cfg);
 *   cfg.engine = engine;  cfg.redis_url = "redis://127.0.0.1:6379/0";
 *   cfg.checkpoint = PE_LIVE_CHECKPOINT_FILE;  cfg.checkpoint_path = path;
 *   pe_live_t *live;
 *   if (pe_live_create(&cfg, &live, err, sizeof err) != PE_OK) ...
 *   int rc;
 *   while ((rc = pe_live_step(live, 1000, NULL)) == PE_OK) { ... }
 *   // rc == PE_LIVE_STOPPED: stopped cleanly, final checkpoint written
 *   // rc < 0: failed, pe_live_errmsg(live) says why
 *   pe_live_destroy(live);
 *
 * Each step is one round trip on one connection: the previous batch's
 * signals and rejects in one MULTI/EXEC (kept until Redis acknowledges it,
 * resent after a reconnect), now and then an XINFO STREAM (lag and gaps),
 * and an XREAD of the next batch, whose entries then go through the engine.
 * Signals get stream ids derived from their tick's entry id, so a signal
 * derived again after a restart is refused by Redis as a duplicate; a
 * checkpoint is taken only at a batch boundary and made durable only after
 * the signals before it are acknowledged. Together: every tick's signals
 * land exactly once, across crashes and restarts of either side.
 *
 * Errors: functions return PE_OK or a negative PE_E* code, with the detail
 * in pe_live_errmsg(). The library prints nothing and never exits; lines an
 * operator should see (reconnects, gaps skipped) go to the log callback.
 *
 * Threads: a handle is used from one thread. pe_live_stop alone may be
 * called from a signal handler or another thread. The checkpoint writer and
 * the HTTP server run on threads of their own, internal to the handle. */
#ifndef PE_LIVE_H
#define PE_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "pe/defaults.h"
#include "pe/engine.h"
#include "pe/hist.h"
#include "pe/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults: PE_LIVE_DEFAULT_* in pe/defaults.h. */

/* pe_live_step's return value once a stop asked for by pe_live_stop is
 * done: every batch acknowledged and the final checkpoint written. Not an
 * error code (those are negative). */
#define PE_LIVE_STOPPED 1

typedef enum pe_live_checkpoint_kind {
  PE_LIVE_CHECKPOINT_NONE = 0, /* a restart starts again from start_id */
  PE_LIVE_CHECKPOINT_FILE = 1, /* checkpoint_path, replaced atomically */
  PE_LIVE_CHECKPOINT_REDIS = 2 /* checkpoint_key, in each batch's MULTI/EXEC */
} pe_live_checkpoint_kind_t;

typedef enum pe_live_on_gap {
  /* Entries trimmed before they were read: the step fails with PE_EGAP and
   * nothing is counted, so every start finds the same gap again. */
  PE_LIVE_GAP_FAIL = 0,
  /* Count them (gaps, gap_entries, kept in checkpoints) and go on from the
   * first entry left. */
  PE_LIVE_GAP_SKIP = 1
} pe_live_on_gap_t;

typedef enum pe_live_log_level {
  PE_LIVE_LOG_INFO = 0, /* progress: resumed, reconnected, retrying */
  PE_LIVE_LOG_WARN = 1  /* data an operator must know about: a gap */
} pe_live_log_level_t;

/* Receives one line (no trailing newline) at a time; off the per-tick path.
 * The text is valid during the call only. */
typedef void (*pe_live_log_fn)(void *ctx, int level, const char *line);

typedef struct pe_live_config {
  pe_engine_t *engine;        /* borrowed: must outlive the handle. A checkpoint
                                 found at start is restored into it. */
  const char *redis_url;      /* redis://... or unix://... (pe/redis.h) */
  uint32_t redis_timeout_ms;  /* a reply slower than this (plus block_ms)
                                 counts as a lost connection; 100..3600000 */
  const char *ticks_stream;   /* read with XREAD */
  const char *signals_stream; /* written with XADD; must differ */
  uint64_t signals_maxlen;    /* MAXLEN ~ on signals and rejects; 0: never */
  const char *rejects_stream; /* NULL: none; one entry per rejected entry */
  const char *rejects_path;   /* NULL: none; CSV tick_id,reason,field,raw */
  int checkpoint;             /* pe_live_checkpoint_kind_t */
  const char *checkpoint_path; /* for PE_LIVE_CHECKPOINT_FILE */
  const char *checkpoint_key;  /* for ..._REDIS; NULL: "<signals>:checkpoint" */
  uint64_t checkpoint_every;   /* entries between checkpoints; 0: no limit */
  uint64_t checkpoint_interval_ms; /* at least this often while entries come;
                                      0: no limit */
  const char *start_id;       /* without a checkpoint: "0" (the stream's start),
                                 "$" (new entries only) or "MS-SEQ" (after it) */
  int on_gap;                 /* pe_live_on_gap_t */
  pe_stream_options_t stream; /* how entries are decoded (timestamp unit) */
  uint32_t count;             /* entries per XREAD; 1..1000000 */
  uint32_t block_ms;          /* longest XREAD wait; 1..60000 */
  const char *http_addr;      /* NULL: no server; "127.0.0.1:8005", "[::1]:80",
                                 ":8005" (loopback only), "0.0.0.0:8005" or
                                 "[::]:8005" (every interface) */
  uint64_t idle_stop_ms;      /* stop (as pe_live_stop) once reads have come
                                 back empty for this long; 0: never */
  pe_live_log_fn log;         /* NULL: no log lines */
  void *log_ctx;
  /* Fencing, for a worker that owns this stream's partition through a lease
   * (pe/worker.h). Every write of the handle (a batch's signals, rejects and
   * checkpoint; the final checkpoint) is then one EVAL whose script first
   * checks that the key fence_key still holds fence_token, and refuses the
   * whole write otherwise: a worker that lost its lease cannot write. Needs a
   * Redis checkpoint, in the same hash slot; the checkpoint's own lease
   * (KEY:lock) is not taken, the caller's lease stands for it. NULL: none. */
  const char *fence_key;
  const char *fence_token; /* up to 127 bytes */
} pe_live_config_t;

/* Fills cfg with the defaults above: no engine (the caller sets one), no
 * checkpoint, no rejects, no HTTP server, no log, on_gap fail. */
void pe_live_config_default(pe_live_config_t *cfg);

typedef struct pe_live pe_live_t;

/* Checks cfg and builds a handle: copies the strings it needs, opens the
 * rejects file (without truncating: a checkpoint says how much stays),
 * starts the checkpoint writer and the HTTP server. Does not connect: the
 * first steps do. PE_EINVAL (a bad setting), PE_EIO, PE_ENOMEM,
 * PE_EUNSUPPORTED (HTTP asked for in a build without it), with the reason
 * in err. */
int pe_live_create(const pe_live_config_t *cfg, pe_live_t **out, char *err,
                   size_t err_cap);

/* Frees the handle, closing the connection, the rejects file and the
 * servers. It writes no checkpoint: unacknowledged signals are derived again
 * from the last checkpoint by the next run, as after a crash. It does wait
 * for a checkpoint already handed to the writer thread. NULL: no-op. */
void pe_live_destroy(pe_live_t *live);

/* Per-step figures (of this step only). */
typedef struct pe_live_step_stats {
  uint32_t entries;   /* entries read and processed */
  uint32_t signals;   /* signals they made (sent with the next step) */
  uint32_t acked;     /* signals Redis acknowledged in this step */
  int connected;      /* Redis is reachable after the step */
  uint64_t idle_ns;   /* how long reads have come back empty; 0 after a
                         read with entries */
  int unacknowledged; /* a batch's transaction waits for Redis */
  int checkpointed;   /* a checkpoint of the state after this step's batch
                         was taken; it becomes durable only once the batch
                         is acknowledged */
} pe_live_step_stats_t;

/* One round trip, waiting at most about timeout_ms for new entries (< 0 or
 * over block_ms: block_ms; 0: no wait). The first steps connect, load the
 * checkpoint or place the start, and check the stream; while Redis is
 * unreachable a step makes one connection attempt and waits out the
 * backoff (up to timeout_ms). Returns:
 *   PE_OK            call again;
 *   PE_LIVE_STOPPED  a stop is complete (final checkpoint written);
 *   PE_ECONN         stopped while Redis was unreachable: the last batch's
 *                    signals were not acknowledged (the last checkpoint
 *                    stands);
 *   PE_EGAP          a gap with on_gap fail (the progress before it is
 *                    checkpointed);
 *   PE_ESTATE        the stream ends before the checkpoint's id (Redis lost
 *                    data, or the stream was recreated), or a second stop
 *                    came before the last batch was acknowledged;
 *   PE_ECORRUPT, PE_EVERSION, PE_EINVAL  an unusable checkpoint, nothing
 *                    loaded;
 *   PE_EIO           a write the service owns failed (rejects file,
 *                    checkpoint at stop);
 *   other negatives  fatal Redis replies, the engine's errors.
 * After a negative return the handle can only be destroyed. stats may be
 * NULL. */
int pe_live_step(pe_live_t *live, int timeout_ms, pe_live_step_stats_t *stats);

/* Asks the service to stop: later steps read nothing more, wait for the last
 * batch's acknowledgement, write a final checkpoint and return
 * PE_LIVE_STOPPED. A second call while that acknowledgement is still
 * awaited gives up on it: the next step fails with PE_ESTATE (its signals
 * are derived again from the last checkpoint by the next run). Only stores
 * to a flag: safe from a signal handler. */
void pe_live_stop(pe_live_t *live);

/* 1 once a write was refused because fence_key no longer held fence_token
 * (the step then failed with PE_ESTATE): another worker owns the partition. */
int pe_live_fenced(const pe_live_t *live);

/* Detail of the last failure ("" when none). Owned by the handle. */
const char *pe_live_errmsg(const pe_live_t *live);

/* ---- metrics ---------------------------------------------------------------
 */

typedef enum pe_live_status {
  PE_LIVE_STARTING = 0,
  PE_LIVE_OK,
  PE_LIVE_DISCONNECTED, /* Redis is unreachable; reconnecting */
  PE_LIVE_STOPPING
} pe_live_status_t;

/* The partitions a cluster worker owns, as /health and /metrics show them. */
#define PE_LIVE_PARTITIONS_SHOWN 256

typedef struct pe_live_partition_view {
  uint32_t partition;
  int lag_known;        /* lag_entries is meaningful (Redis >= 7) */
  uint64_t lag_entries; /* entries of its ticks stream not read yet */
  uint64_t lag_ms;      /* newest entry id time - last read id time */
  uint64_t entries;     /* entries read over the stream's life */
  uint64_t fence;       /* the fence token this worker writes with */
  char last_id[PE_STREAM_ID_MAX];
} pe_live_partition_view_t;

/* Figures over the stream's life (they travel in checkpoints): entries,
 * rejected, gaps, gap_entries; the engine's: ticks, signals, symbols; this
 * process's: the rest. */
typedef struct pe_live_metrics {
  int status;           /* pe_live_status_t */
  uint64_t entries;     /* stream entries read (accepted + rejected) */
  uint64_t entries_run; /* of them, read by this handle */
  uint64_t ticks;       /* accepted by the engine */
  uint64_t rejected[PE_STREAM_REJECT_COUNT];
  uint64_t signals[PE_RULE_COUNT + 1]; /* by pattern; last: model */
  uint64_t duplicates; /* writes Redis refused as already there */
  uint64_t reconnects;
  uint64_t checkpoints; /* made durable by this handle */
  uint64_t checkpoint_failures;
  int64_t checkpoint_wall_ns; /* when the last one was taken; 0: none */
  int lag_known;              /* lag_entries is meaningful (Redis >= 7) */
  uint64_t lag_entries;       /* entries in the stream not read yet */
  uint64_t lag_ms;            /* newest entry id time - last read id time */
  uint64_t gaps;              /* times entries were found missing */
  uint64_t gap_entries;       /* entries missing in all */
  uint32_t symbols;
  char last_id[PE_STREAM_ID_MAX];
  uint64_t wall_ns;     /* since the handle was created */
  uint64_t active_ns;   /* from the first batch to the last entry processed */
  pe_hist_t latency_ns; /* from a batch's arrival to its signals'
                           acknowledgement by Redis, per signal */
  /* A cluster worker's (pe/worker.h); worker_id "" for a single stream. The
   * totals above then sum the partitions it owns now. */
  char worker_id[64];
  uint32_t partitions;    /* P */
  uint32_t workers_alive; /* heartbeats not expired */
  uint32_t target;        /* partitions it aims to own: ceil(P / alive) */
  uint32_t n_owned;       /* partitions it owns; the first
                             PE_LIVE_PARTITIONS_SHOWN are in owned[] */
  uint64_t acquired;      /* leases granted to it */
  uint64_t released;      /* leases it gave back to rebalance or stop */
  uint64_t lost;          /* leases lost (expired and taken, or fenced) */
  pe_live_partition_view_t owned[PE_LIVE_PARTITIONS_SHOWN];
} pe_live_metrics_t;

/* Fills m with the figures as they are now. Off the per-tick path. */
void pe_live_metrics(const pe_live_t *live, pe_live_metrics_t *m);

/* Prometheus text exposition of m at wall time now_wall_ns. Returns the
 * length (snprintf-style: the text is cut when cap is too small). */
size_t pe_live_metrics_format(const pe_live_metrics_t *m, int64_t now_wall_ns,
                              char *buf, size_t cap);

/* The /health JSON document. Returns the length (snprintf-style). */
size_t pe_live_health_format(const pe_live_metrics_t *m, int64_t now_wall_ns,
                             char *buf, size_t cap);

/* The run's totals as one JSON object and a newline (last_id, entries,
 * entries_run, accepted, rejected by reason, symbols, signals by pattern,
 * duplicates, reconnects, checkpoints, checkpoint_failures, gaps,
 * gap_entries, wall_s, active_s, entries_per_s, latency_us). Returns the
 * length (snprintf-style). */
size_t pe_live_summary_json(const pe_live_metrics_t *m, char *buf, size_t cap);

/* The same totals as indented text lines for a terminal, headed by
 * "live TICKS -> SIGNALS". Returns the length (snprintf-style). */
size_t pe_live_summary_text(const pe_live_t *live, const pe_live_metrics_t *m,
                            char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
