/* The live service's handle and the functions its parts share (internal to
 * src/live/). One part per file:
 *   live.c        the handle, the step and its round trip, connecting
 *   entry.c       one stream entry through the engine (the hot path)
 *   txn.c         the batch's MULTI/EXEC: building, acknowledgement, resend
 *   rejects.c     rejected entries: the rejects file and stream records
 *   checkpoint.c  taking, writing, releasing and loading checkpoints
 *   store.c       checkpoint files and their background writer (store.h)
 *   gap.c         stream position, start placement and gap accounting
 *   metrics.c     the figures and their text forms
 *   http.c        /health and /metrics (http.h)
 *   lock.c        one worker per checkpoint: file lock, Redis lease
 *   worker.c      the cluster worker (pe/worker.h): partitions shared
 *                 through fenced leases, one handle per owned partition */
#ifndef PE_LIVE_IMPL_H
#define PE_LIVE_IMPL_H

#include <signal.h>
#include <stdio.h>

#include "live/http.h"
#include "live/store.h"
#include "pe/checkpoint.h"
#include "pe/live.h"
#include "pe/redis.h"

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

#define PE__LIVE_NAME_MAX                                                      \
  512 /* stream names, keys, paths kept in the handle                          \
       */

struct pe_live {
  pe_live_config_t cfg; /* strings point into the copies below */
  char ticks[PE_CHECKPOINT_NAME_MAX + 1];
  char signals[PE_CHECKPOINT_NAME_MAX + 1];
  char rejects_stream[PE__LIVE_NAME_MAX];
  char rejects_path[PE__LIVE_NAME_MAX];
  char ckpt_path[PE__LIVE_NAME_MAX];
  char ckpt_key[PE__LIVE_NAME_MAX];
  char start_id[PE_STREAM_ID_MAX];
  char fence_key[PE__LIVE_NAME_MAX];
  char fence_token[128];
  int fenced;         /* a write was refused by the fence */
  pe_resp_buf_t wrap; /* the fenced EVAL being built (txn.c) */
  pe_engine_t *engine;
  pe_redis_t *redis;
  volatile sig_atomic_t stop_flag; /* pe_live_stop calls, 2 at most */
  /* life cycle */
  int started;         /* the checkpoint was loaded or the start placed */
  int ready;           /* connected, and the stream answered XINFO */
  int stopping;        /* stop seen: draining */
  int stopped;         /* PE_LIVE_STOPPED returned */
  int failed;          /* the negative code returned; sticks */
  int status;          /* pe_live_status_t */
  uint32_t backoff_ms; /* next wait before reconnecting; 0: none yet */
  uint64_t next_connect_mono; /* no attempt before this */
  uint64_t rng;
  char errmsg[1024];
  char logline[1024];
  /* checkpoints */
  uint64_t ckpt_every;       /* UINT64_MAX: no limit */
  uint64_t ckpt_interval_ns; /* UINT64_MAX: no limit */
  uint64_t since_ckpt;       /* entries since the last checkpoint taken */
  uint64_t last_ckpt_mono;   /* when it was taken */
  pe_ckpt_writer_t *writer;
  unsigned char *snap; /* engine snapshot buffer */
  size_t snap_cap;
  unsigned char *enc; /* encoded checkpoint */
  size_t enc_cap;
  size_t enc_len;
  int64_t enc_created;
  int staged; /* enc holds a file checkpoint waiting for the pending
                 transaction's acknowledgement */
  /* progress */
  pe_stream_id_t last_id;
  int last_id_seen;  /* last_id came from the stream (read, or a checkpoint),
                        not from start_id */
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
  uint32_t acked;   /* signals acknowledged during this step */
  int checkpointed; /* a checkpoint was taken during this step */
  pe_resp_buf_t req;
  /* rejects file */
  FILE *rejects;
  uint64_t rejects_len; /* bytes written to it, header included */
  int rejects_err;      /* errno of the first failed write; 0: none */
  char raw[4096];
  /* totals not kept in checkpoints */
  uint64_t duplicates;
  uint64_t checkpoints;
  uint64_t checkpoint_failures;
  int64_t checkpoint_wall;
  uint64_t entries_run; /* entries read by this handle */
  uint64_t created_mono;
  uint64_t first_mono; /* first batch of this handle arrived */
  uint64_t last_mono;  /* last entry processed */
  uint64_t idle_since;
  int warned_full;
  pe_hist_t latency;
  /* one worker per checkpoint (lock.c) */
  int lock_fd;           /* flock'd PATH.lock; -1: none */
  char holder[300];      /* this process: host:pid */
  char lease_value[400]; /* the lease key's value while we hold it */
  char lease_key[PE__LIVE_NAME_MAX + 8];
  int lease_held;
  uint64_t lease_mono; /* when the lease was last set or extended */
  pe_live_http_t *http;
  pe_live_metrics_t metrics;
  uint64_t metrics_mono;
  pe_stream_field_t fields[PE_STREAM_MAX_FIELDS];
  pe_tick_out_t out;
  /* A micro-batched engine (pe_engine_batched): the entry ids of the ticks
   * whose reports it has not delivered yet, in push order; ids[held_n] is
   * the entry being pushed. Reports come out in push order, so the next
   * one is that of ids[held_next]; both go back to 0 once it holds none. */
  pe_stream_id_t *held_ids; /* [pe_engine_held_max + 1] */
  uint32_t held_n, held_next;
  int report_rc; /* the failure that stopped a delivery; PE_OK: none */
};

/* Sets the handle's message; returns rc. */
int pe__live_fail(pe_live_t *L, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends a line to the log callback, if any. */
void pe__live_log(pe_live_t *L, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *pe__live_id_text(pe_stream_id_t id, char *buf);

/* entry.c: processes one XREAD entry. PE_OK or fatal (message set). */
int pe__live_entry(pe_live_t *L, const pe_redis_value_t *e);

/* entry.c: a micro-batched engine's report callback (pe_engine_report_t),
 * and the delivery of every report it still holds: PE_OK or fatal. */
int pe__live_report(void *ctx, const pe_tick_t *tick, int rc,
                    const pe_tick_out_t *out);
int pe__live_flush(pe_live_t *L);

/* txn.c */
void pe__txn_begin_cmd(pe_live_t *L);
int pe__fence_wrap(pe_live_t *L, pe_resp_buf_t *inner);
int pe__fence_refused(pe_live_t *L, const pe_redis_value_t *v);
void pe__txn_close(pe_live_t *L, uint64_t read_mono);
int pe__txn_replies(pe_live_t *L);

/* rejects.c */
void pe__reject(pe_live_t *L, pe_stream_id_t id, int reason, const char *field,
                size_t n_fields);
int pe__rejects_open(pe_live_t *L);
int pe__rejects_reset(pe_live_t *L);
int pe__rejects_restore(pe_live_t *L, uint64_t offset);
int pe__rejects_check(pe_live_t *L);
int pe__rejects_sync(pe_live_t *L, int fsync_too);
int pe__rejects_close(pe_live_t *L);

/* checkpoint.c */
int pe__ckpt_maybe(pe_live_t *L, uint64_t now);
void pe__ckpt_release(pe_live_t *L);
void pe__ckpt_done(pe_live_t *L, int64_t created);
void pe__ckpt_poll(pe_live_t *L, int wait);
int pe__ckpt_final(pe_live_t *L);
int pe__ckpt_load(pe_live_t *L, int *loaded);

/* gap.c */
int pe__gap_check(pe_live_t *L);
int pe__gap_fresh_start(pe_live_t *L);
void pe__xinfo(pe_resp_buf_t *b, const char *stream);
int pe__xinfo_take(pe_live_t *L, const pe_redis_value_t *v, uint64_t now);

/* lock.c: the checkpoint held by one worker */
int pe__lock_file(pe_live_t *L, char *err, size_t cap);
void pe__lock_file_release(pe_live_t *L);
uint64_t pe__lease_ms(const pe_live_t *L);
int pe__lease_acquire(pe_live_t *L);
int pe__lease_due(const pe_live_t *L, uint64_t now);
void pe__lease_renew_cmd(pe_live_t *L, pe_resp_buf_t *b);
int pe__lease_take(pe_live_t *L, const pe_redis_value_t *v, uint64_t sent);
void pe__lease_release(pe_live_t *L);

/* metrics.c */
void pe__metrics_publish(pe_live_t *L, int force);

#endif
