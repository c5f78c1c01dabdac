/* A cluster worker: one of N processes that share P symbol partitions
 * through Redis alone (docs/scaling.md).
 *
 * Partition p has its own streams, `ticks:{pP}` and `signals:{pP}`, and
 * next to them (same hash slot) its checkpoint `checkpoint:{pP}`, its lease
 * `lease:{pP}` and its fence `fence:{pP}`. A worker owns a partition while
 * it holds the lease: a script sets it with SET NX PX (each grant moves the
 * fence on to a new token, "count+1 ID nonce", and hands it to the worker)
 * or extends it while it still holds the worker's value, every third of the
 * lease. Each owned partition
 * runs in its own live handle (pe/live.h) with that token as its fence, so
 * every write of the partition (signals, rejects, checkpoint) is refused
 * once another worker has been granted the lease. A worker that gains a
 * partition restores its engine from the partition's checkpoint and reads
 * on after its last processed entry, so the signals stay exactly those of
 * one process, per-symbol order included.
 *
 * Heartbeats live in the hash `pe:workers` (worker id -> expiry, Redis
 * time); each worker aims to own ceil(P / alive) partitions, gives back
 * extras (final checkpoint, then the lease deleted) and takes free ones, so
 * joins and leaves rebalance within a few lease thirds. A worker refuses to
 * start when the key `pe:partitions` names another P.
 *
 *   pe_worker_config_t cfg;
 *   pe_worker_config_default(&cfg);
 *   cfg.worker_id = "w1";  cfg.partitions = 16;
 *   cfg.live.redis_url = "redis://127.0.0.1:6379/0";
 *   pe_worker_t *w;
 *   if (pe_worker_create(&cfg, &w, err, sizeof err) != PE_OK) ...
 *   while ((rc = pe_worker_step(w, 100)) == PE_OK) { }
 *   pe_worker_destroy(w);
 *
 * Errors, threads and logging as pe/live.h: negative PE_E* codes with
 * pe_worker_errmsg, one thread per handle, pe_worker_stop safe from a
 * signal handler, log lines through cfg.live.log. */
#ifndef PE_WORKER_H
#define PE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "pe/engine.h"
#include "pe/live.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PE_WORKER_DEFAULT_LEASE_MS 1500u
#define PE_WORKER_ID_MAX 48 /* bytes of a worker id */

typedef struct pe_worker_config {
  /* Each owned partition gets an engine made from this. */
  pe_engine_config_t engine;
  /* The template of each partition's live handle: redis_url, count,
   * redis_timeout_ms, signals_maxlen, checkpoint_every,
   * checkpoint_interval_ms, on_gap, stream, log. Stream names, checkpoint,
   * fence, start id ("0"), HTTP and idle stop are the worker's. */
  pe_live_config_t live;
  const char *worker_id; /* unique among the workers; 1..48 bytes, no space */
  uint32_t partitions;   /* P, 1..65536 */
  uint32_t lease_ms;     /* 300..600000; renewed every third */
  const char *http_addr; /* as pe_live_config_t.http_addr; NULL: none */
  uint64_t idle_stop_ms; /* stop once no partition read an entry for this
                            long (counted from the start); 0: never */
  /* Called with each partition's engine once it is made, before its
   * checkpoint is restored (to attach a model backend, say); what it puts
   * in *res goes to engine_done after that engine is destroyed. A failure
   * (a negative code, the reason in err) stops the worker. NULL: none. */
  int (*engine_ready)(void *ctx, pe_engine_t *engine, void **res, char *err,
                      size_t err_cap);
  void (*engine_done)(void *ctx, void *res);
  void *engine_ctx;
} pe_worker_config_t;

/* Defaults: lease 1.5 s, pe_live_config_default's template, no HTTP. */
void pe_worker_config_default(pe_worker_config_t *cfg);

typedef struct pe_worker pe_worker_t;

/* Checks cfg and builds a worker (no connection yet). PE_EINVAL (a bad
 * setting), PE_ENOMEM, PE_EIO/PE_EUNSUPPORTED (HTTP), reason in err. */
int pe_worker_create(const pe_worker_config_t *cfg, pe_worker_t **out,
                     char *err, size_t err_cap);

/* One turn: the lease round when due (heartbeat, renewals, giving back and
 * taking partitions), then one step of every owned partition; waits up to
 * about timeout_ms when nothing came. PE_OK: call again; PE_LIVE_STOPPED:
 * a stop is complete (every partition checkpointed and given back);
 * negative: failed (pe_worker_errmsg), among them PE_EINVAL when
 * `pe:partitions` names another P. */
int pe_worker_step(pe_worker_t *w, int timeout_ms);

/* Asks for a stop: every partition drains, checkpoints and is given back.
 * A second call gives up waiting (the leases then expire). Signal-safe. */
void pe_worker_stop(pe_worker_t *w);

/* The worker's figures: totals over the partitions it owns now, and the
 * partitions themselves (pe_live_metrics_t's worker part). */
void pe_worker_metrics(const pe_worker_t *w, pe_live_metrics_t *m);

const char *pe_worker_errmsg(const pe_worker_t *w);

/* Frees the worker: the partitions' handles are destroyed without a final
 * checkpoint (as a crash; their leases expire). NULL: no-op. */
void pe_worker_destroy(pe_worker_t *w);

#ifdef __cplusplus
}
#endif
#endif
