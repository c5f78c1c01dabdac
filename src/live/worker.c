/* A cluster worker (see pe/worker.h): partitions shared through leases.
 *
 * The lease round runs every third of the lease, through the cluster
 * router (rcluster.h; a single node alike): the heartbeat (which also lists the
 * workers alive), the renewal of every owned lease, then giving back or taking
 * partitions until this worker owns its share, ceil(P / alive). Each owned
 * partition is a live handle of its own (connection, engine, checkpoint key)
 * whose writes are fenced by the token its grant returned. Partitions are
 * stepped in turn without blocking; the worker naps briefly when none had
 * entries.
 *
 * What protects the output is the fence, not the lease's timing: a worker
 * paused past its lease keeps believing it owns its partitions until its
 * next round, but everything it then tries to write is refused by the
 * fence, and the new owner re-derives the same signals (same stream ids)
 * from the partition's checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live/http.h"
#include "pe/clock.h"
#include "pe/error.h"
#include "pe/partition.h"
#include "pe/rcluster.h"
#include "pe/redis.h"
#include "pe/worker.h"

#define PE__WORKERS_KEY "pe:workers"
#define PE__REFRESH_EVERY_NS 250000000ull
#define PE__AWAY_NS 500000000ull
#define PE__METRICS_EVERY_NS 100000000ull

/* Grants the lease KEYS[1] to ARGV[1] ("ID nonce") for ARGV[2] ms when it
 * is free, and moves the fence KEYS[2] on to "N+1 ID nonce": {2, token}.
 * Extends it when ARGV[1] holds it: {1, token}. Otherwise {0, holder}. A
 * token names its grant's holder as well as its count, so two grants never
 * share one, even where a failover lost the last count (a promoted replica
 * may lack the newest writes). */
static const char pe__lease_lua[] =
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) "
    "return {1, redis.call('get', KEYS[2]) or ''} end "
    "if v then return {0, v} end "
    "redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) "
    "local n = tonumber(string.match(redis.call('get', KEYS[2]) or '', "
    "'^%d+') or '0') "
    "local f = (n + 1) .. ' ' .. ARGV[1] "
    "redis.call('set', KEYS[2], f) "
    "return {2, f}";

#define PE__TOKEN_MAX 128

static const char pe__release_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) end return 0";

/* Sets ARGV[1]'s heartbeat in the hash KEYS[1] to expire ARGV[2] ms from
 * now (Redis's clock, so the workers' clocks need not agree), drops expired
 * ones, and returns the ids alive. */
static const char pe__heartbeat_lua[] =
    "local t = redis.call('time') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('hset', KEYS[1], ARGV[1], now + tonumber(ARGV[2])) "
    "local all = redis.call('hgetall', KEYS[1]) local alive = {} "
    "for i = 1, #all, 2 do "
    "if tonumber(all[i + 1]) > now then alive[#alive + 1] = all[i] "
    "else redis.call('hdel', KEYS[1], all[i]) end end "
    "return alive";

typedef struct pe__part {
  struct pe_worker *w;
  void *res; /* engine_ready's, for engine_done */
  uint32_t p;
  char fence[PE__TOKEN_MAX]; /* the token its writes carry */
  pe_engine_t *engine;
  pe_live_t *live;
  int releasing;       /* stopping to give the partition back */
  int lost;            /* its lease went to another worker: stopping, fenced */
  int connected;       /* its handle was connected after its last step */
  uint64_t away_since; /* not connected since (monotonic ns); 0: connected */
  char url[1024];      /* the node serving its slot when it was opened */
} pe__part_t;

struct pe_worker {
  pe_worker_config_t cfg;
  char id[PE_WORKER_ID_MAX + 1];
  char value[PE_WORKER_ID_MAX + 32]; /* the leases' value: "ID nonce" */
  char url[1024];                    /* the seed */
  pe_rcluster_t *rc;
  int rc_ready;          /* the slot map is loaded */
  uint64_t refresh_mono; /* the slot map was last reloaded */
  pe_resp_buf_t req;
  pe__part_t **part; /* [P]: NULL when not owned */
  uint32_t n_owned;
  uint32_t alive;
  uint32_t rank; /* this worker's place among the ids alive */
  uint32_t target;
  int checked;          /* pe:partitions agrees */
  uint64_t rounds;      /* lease rounds done */
  uint32_t idle_passes; /* passes over the partitions without an entry */
  uint64_t next_round;  /* monotonic ns */
  uint64_t acquired, released, lost;
  uint64_t last_entry_mono;
  uint64_t created_mono;
  volatile sig_atomic_t stop_flag; /* pe_worker_stop calls, 2 at most */
  volatile sig_atomic_t give_up;   /* the second: Redis is not waited for */
  int stopping;
  pe_live_http_t *http;
  pe_live_metrics_t metrics; /* for the HTTP server */
  uint64_t metrics_mono;
  char errmsg[1024];
  char logline[1024];
};

static int pe__fail(pe_worker_t *w, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pe__fail(pe_worker_t *w, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
  va_end(ap);
  return rc;
}

static void pe__log(pe_worker_t *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pe__log(pe_worker_t *w, int level, const char *fmt, ...) {
  if (w->cfg.live.log == NULL) {
    return;
  }
  int n = snprintf(w->logline, sizeof w->logline, "worker %s: ", w->id);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->logline + n, sizeof w->logline - (size_t)n, fmt, ap);
  va_end(ap);
  w->cfg.live.log(w->cfg.live.log_ctx, level, w->logline);
}

/* A partition handle's log lines, named by worker and partition. */
static void pe__part_log(void *ctx, int level, const char *line) {
  const pe__part_t *pt = ctx;
  pe__log(pt->w, level, "partition %u: %s", pt->p, line);
}

void pe_worker_config_default(pe_worker_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  pe_engine_config_init(&cfg->engine);
  pe_live_config_default(&cfg->live);
  cfg->lease_ms = PE_WORKER_DEFAULT_LEASE_MS;
}

const char *pe_worker_errmsg(const pe_worker_t *w) { return w->errmsg; }

void pe_worker_stop(pe_worker_t *w) {
  if (w->stop_flag < 2) {
    w->stop_flag = w->stop_flag + 1;
    w->give_up = w->stop_flag >= 2;
  }
}

/* ---- partitions -------------------------------------------------------- */

static void pe__part_key(char *out, size_t cap, const char *prefix,
                         uint32_t p) {
  (void)pe_partition_key(out, cap, prefix, p); /* 64 bytes always fit */
}

/* The URL of the node serving partition p's slot: the seed URL with its
 * host:port replaced, credentials and all kept; the seed itself for a single
 * node. PE_EAGAIN while no node serves the slot (a failover under way). */
static int pe__part_url(pe_worker_t *w, uint32_t p, char *out, size_t cap) {
  if (!w->rc_ready || !pe_rcluster_is_cluster(w->rc)) {
    snprintf(out, cap, "%s", w->url);
    return PE_OK;
  }
  char tag[32];
  int n = snprintf(tag, sizeof tag, "{p%u}", p);
  int node = pe_rcluster_slot_node(w->rc, pe_redis_key_slot(tag, (size_t)n));
  if (node < 0) {
    return PE_EAGAIN;
  }
  const char *host = strstr(w->url, "://");
  host = host != NULL ? host + 3 : w->url;
  const char *at = strrchr(host, '@');
  host = at != NULL ? at + 1 : host;
  size_t host_len = strcspn(host, "/?");
  snprintf(out, cap, "%.*s%s%s", (int)(host - w->url), w->url,
           pe_rcluster_node_name(w->rc, (uint32_t)node), host + host_len);
  return PE_OK;
}

static void pe__part_free(pe__part_t *pt) {
  if (pt != NULL) {
    pe_live_destroy(pt->live);
    pe_engine_destroy(pt->engine);
    if (pt->res != NULL && pt->w->cfg.engine_done != NULL) {
      pt->w->cfg.engine_done(pt->w->cfg.engine_ctx, pt->res);
    }
    free(pt);
  }
}

/* Opens partition p's handle under fence token `fence`: an engine, and a
 * live handle that restores it from the partition's checkpoint in its first
 * steps. */
static int pe__part_open(pe_worker_t *w, uint32_t p, const char *fence) {
  pe__part_t *pt = calloc(1, sizeof *pt);
  if (pt == NULL) {
    return pe__fail(w, PE_ENOMEM, "out of memory for partition %u", p);
  }
  pt->w = w;
  pt->p = p;
  snprintf(pt->fence, sizeof pt->fence, "%s", fence);
  char err[768];
  int rc = pe_engine_create(&w->cfg.engine, &pt->engine, err, sizeof err);
  if (rc != PE_OK) {
    free(pt);
    return pe__fail(w, rc, "partition %u: %s", p, err);
  }
  if (w->cfg.engine_ready != NULL) {
    rc = w->cfg.engine_ready(w->cfg.engine_ctx, pt->engine, &pt->res, err,
                             sizeof err);
    if (rc != PE_OK) {
      pe__part_free(pt);
      return pe__fail(w, rc, "partition %u: %s", p, err);
    }
  }
  char ticks[64], signals[64], ckpt[64], fkey[64];
  pe__part_key(ticks, sizeof ticks, "ticks", p);
  pe__part_key(signals, sizeof signals, "signals", p);
  pe__part_key(ckpt, sizeof ckpt, "checkpoint", p);
  pe__part_key(fkey, sizeof fkey, "fence", p);
  if (pe__part_url(w, p, pt->url, sizeof pt->url) != PE_OK) {
    snprintf(pt->url, sizeof pt->url, "%s", w->url); /* reopened when away */
  }
  pe_live_config_t c = w->cfg.live;
  c.engine = pt->engine;
  c.redis_url = pt->url;
  c.ticks_stream = ticks;
  c.signals_stream = signals;
  c.rejects_stream = NULL;
  c.rejects_path = NULL;
  c.checkpoint = PE_LIVE_CHECKPOINT_REDIS;
  c.checkpoint_path = NULL;
  c.checkpoint_key = ckpt;
  c.start_id = "0";
  c.http_addr = NULL;
  c.idle_stop_ms = 0;
  c.log = w->cfg.live.log != NULL ? pe__part_log : NULL;
  c.log_ctx = pt;
  c.fence_key = fkey;
  c.fence_token = pt->fence;
  rc = pe_live_create(&c, &pt->live, err, sizeof err);
  if (rc != PE_OK) {
    pe__part_free(pt);
    return pe__fail(w, rc, "partition %u: %s", p, err);
  }
  w->part[p] = pt;
  w->n_owned += 1;
  return PE_OK;
}

static void pe__part_close(pe_worker_t *w, uint32_t p) {
  if (w->part[p] != NULL) {
    pe__part_free(w->part[p]);
    w->part[p] = NULL;
    w->n_owned -= 1;
  }
}

/* ---- the control connection -------------------------------------------- */

static void pe__eval(pe_resp_buf_t *b, const char *script, uint32_t n_keys,
                     const char *k1, const char *k2, const char *a1,
                     uint64_t a2) {
  pe_resp_begin(b, 3u + n_keys + 2u);
  pe_resp_arg(b, "EVAL", 4);
  pe_resp_arg_str(b, script);
  pe_resp_arg_u64(b, n_keys);
  pe_resp_arg_str(b, k1);
  if (n_keys > 1) {
    pe_resp_arg_str(b, k2);
  }
  pe_resp_arg_str(b, a1);
  pe_resp_arg_u64(b, a2);
}

/* One command for key through the router. PE_OK with *v; PE_ECONN when
 * Redis did not answer within the lease (the round is skipped and retried);
 * fatal with the message set. */
static int pe__cmd(pe_worker_t *w, const char *key,
                   const pe_redis_value_t **v) {
  if (!w->rc_ready) {
    int rc = pe_rcluster_connect(w->rc, &w->give_up);
    if (rc == PE_EAGAIN || rc == PE_ECONN) {
      return PE_ECONN;
    }
    if (rc != PE_OK) {
      return pe__fail(w, rc, "%s", pe_rcluster_errmsg(w->rc));
    }
    w->rc_ready = 1;
  }
  int rc =
      pe_rcluster_command(w->rc, key, strlen(key), &w->req, &w->give_up, v);
  if (rc == PE_EAGAIN || rc == PE_ECONN) {
    return PE_ECONN;
  }
  if (rc != PE_OK) {
    return pe__fail(w, rc, "%s", pe_rcluster_errmsg(w->rc));
  }
  return PE_OK;
}

/* Checks that pe:partitions agrees with this worker's P; stores the hash
 * map of P there when no process has stored one yet. */
static int pe__check_partitions(pe_worker_t *w) {
  if (!w->rc_ready) {
    const pe_redis_value_t *v;
    pe_resp_reset(&w->req);
    pe_resp_begin(&w->req, 1);
    pe_resp_arg(&w->req, "PING", 4);
    int rc = pe__cmd(w, PE_PARTITIONS_KEY, &v);
    if (rc != PE_OK) {
      return rc;
    }
  }
  pe_partition_map_t *stored = NULL;
  int rc = pe_rcluster_partitions_load(w->rc, &w->give_up, &stored);
  if (rc == PE_ENOENT) {
    pe_partition_options_t o;
    memset(&o, 0, sizeof o);
    o.count = w->cfg.partitions;
    char err[512];
    rc = pe_partition_map_create(&o, &stored, err, sizeof err);
    if (rc != PE_OK) {
      return pe__fail(w, rc, "partition map: %s", err);
    }
    rc = pe_rcluster_partitions_agree(w->rc, stored, &w->give_up);
    if (rc == PE_ESTATE) {
      pe_partition_map_destroy(stored);
      stored = NULL;
      rc = pe_rcluster_partitions_load(w->rc, &w->give_up, &stored);
    }
  }
  if (rc == PE_EAGAIN || rc == PE_ECONN) {
    pe_partition_map_destroy(stored);
    return PE_ECONN;
  }
  if (rc != PE_OK) {
    pe_partition_map_destroy(stored);
    return pe__fail(w, rc, "%s: %s", PE_PARTITIONS_KEY,
                    pe_rcluster_errmsg(w->rc));
  }
  uint32_t n = pe_partition_map_count(stored);
  pe_partition_map_destroy(stored);
  if (n != w->cfg.partitions) {
    return pe__fail(w, PE_EINVAL,
                    "this worker has --partitions %u but the deployment's "
                    "map (key %s) has %u: every process must use the same "
                    "partitions",
                    w->cfg.partitions, PE_PARTITIONS_KEY, n);
  }
  w->checked = 1;
  return PE_OK;
}

/* The heartbeat: the workers alive and this worker's rank among them. */
static int pe__heartbeat(pe_worker_t *w) {
  const pe_redis_value_t *v;
  pe_resp_reset(&w->req);
  pe__eval(&w->req, pe__heartbeat_lua, 1, PE__WORKERS_KEY, NULL, w->id,
           w->cfg.lease_ms);
  int rc = pe__cmd(w, PE__WORKERS_KEY, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type != PE_REDIS_ARRAY) {
    return pe__fail(w, PE_EPARSE, "heartbeat on %s: %s", PE__WORKERS_KEY,
                    v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
  }
  uint32_t alive = 0, below = 0;
  int me = 0;
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *e = &v->elem[i];
    if (e->type != PE_REDIS_STRING) {
      continue;
    }
    alive += 1;
    int cmp = strcmp(e->str, w->id);
    me |= cmp == 0;
    below += cmp < 0;
  }
  if (!me) {
    alive += 1;
  }
  w->alive = alive;
  w->rank = below;
  w->target = (w->cfg.partitions + alive - 1) / alive;
  return PE_OK;
}

/* The lease script on partition p: *state 2 granted, 1 extended, 0 held by
 * another; fence (PE__TOKEN_MAX bytes) the token, "" with state 0. */
static int pe__lease(pe_worker_t *w, uint32_t p, int *state, char *fence) {
  char lease[64], fkey[64];
  pe__part_key(lease, sizeof lease, "lease", p);
  pe__part_key(fkey, sizeof fkey, "fence", p);
  pe_resp_reset(&w->req);
  pe__eval(&w->req, pe__lease_lua, 2, lease, fkey, w->value, w->cfg.lease_ms);
  const pe_redis_value_t *v;
  int rc = pe__cmd(w, lease, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type != PE_REDIS_ARRAY || v->n != 2 ||
      v->elem[0].type != PE_REDIS_INTEGER) {
    return pe__fail(w, PE_EPARSE, "lease %s: %s", lease,
                    v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
  }
  *state = (int)v->elem[0].integer;
  const pe_redis_value_t *f = &v->elem[1];
  snprintf(fence, PE__TOKEN_MAX, "%s",
           *state != 0 && f->type == PE_REDIS_STRING ? f->str : "");
  return PE_OK;
}

/* Deletes partition p's lease if this worker still holds it. */
static int pe__lease_release(pe_worker_t *w, uint32_t p) {
  char lease[64];
  pe__part_key(lease, sizeof lease, "lease", p);
  pe_resp_reset(&w->req);
  pe__eval(&w->req, pe__release_lua, 1, lease, NULL, w->value, 0);
  /* pe__eval passes a second argument; the script ignores it. */
  const pe_redis_value_t *v;
  return pe__cmd(w, lease, &v);
}

/* Renews every owned lease; a lease found lost (taken by another worker,
 * or expired and granted anew) closes the partition's handle, without a
 * final checkpoint: its writes would be refused anyway. */
static int pe__renew(pe_worker_t *w) {
  for (uint32_t p = 0; p < w->cfg.partitions; p++) {
    pe__part_t *pt = w->part[p];
    if (pt == NULL || pt->lost) {
      continue;
    }
    int state;
    char fence[PE__TOKEN_MAX];
    int rc = pe__lease(w, p, &state, fence);
    if (rc != PE_OK) {
      return rc;
    }
    if (state == 1 && strcmp(fence, pt->fence) == 0) {
      continue;
    }
    if (state == 0 || state == 1) {
      /* Another worker was granted it. The handle stops as if giving it
       * back: what it holds goes out under the old token, and the fence
       * refuses it (pe__part_step then closes the handle). */
      pe__log(w, PE_LIVE_LOG_WARN,
              "lost the lease of partition %u (token %s): another worker "
              "holds it; writes under the old token will be refused",
              p, pt->fence);
      pt->lost = 1;
      pt->releasing = 1;
      pe_live_stop(pt->live);
      continue;
    }
    /* Expired and granted to us again: a fresh start from the checkpoint,
     * under the new token. */
    pe__log(w, PE_LIVE_LOG_WARN,
            "the lease of partition %u expired and was granted again (token "
            "%s, was %s): reopening it from its checkpoint",
            p, fence, pt->fence);
    w->lost += 1;
    w->acquired += 1;
    pe__part_close(w, p);
    rc = pe__part_open(w, p, fence);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}

/* Gives back partitions beyond the target (those farthest from this
 * worker's share of the ring first), and takes free ones up to it. */
static int pe__rebalance(pe_worker_t *w) {
  uint32_t P = w->cfg.partitions;
  uint32_t start = (uint32_t)((uint64_t)w->rank * P / w->alive);
  uint32_t releasing = 0;
  for (uint32_t p = 0; p < P; p++) {
    releasing += w->part[p] != NULL && w->part[p]->releasing;
  }
  uint32_t keep = w->n_owned - releasing;
  for (uint32_t k = P; k-- > 0 && keep > w->target;) {
    pe__part_t *pt = w->part[(start + k) % P];
    if (pt != NULL && !pt->releasing) {
      pt->releasing = 1;
      pe_live_stop(pt->live);
      keep -= 1;
      pe__log(w, PE_LIVE_LOG_INFO,
              "giving back partition %u (%u workers alive, %u partitions "
              "each)",
              pt->p, w->alive, w->target);
    }
  }
  for (uint32_t k = 0; k < P && w->n_owned < w->target; k++) {
    uint32_t p = (start + k) % P;
    if (w->part[p] != NULL) {
      continue;
    }
    int state;
    char fence[PE__TOKEN_MAX];
    int rc = pe__lease(w, p, &state, fence);
    if (rc != PE_OK) {
      return rc;
    }
    if (state == 0) {
      continue;
    }
    w->acquired += 1;
    pe__log(w, PE_LIVE_LOG_INFO,
            "took partition %u (token %s); resuming from its checkpoint", p,
            fence);
    rc = pe__part_open(w, p, fence);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}

/* The lease round. A lost control connection skips it: the partitions go
 * on, and if the leases expire meanwhile the fences stop their writes. */
static int pe__round(pe_worker_t *w) {
  int rc = w->checked ? PE_OK : pe__check_partitions(w);
  if (rc == PE_OK) {
    rc = pe__heartbeat(w);
  }
  if (rc == PE_OK) {
    rc = pe__renew(w);
  }
  /* Workers started together first see each other's heartbeats, so the
   * first one up does not take every partition only to give most back. */
  if (rc == PE_OK && !w->stopping && w->rounds > 0) {
    rc = pe__rebalance(w);
  }
  if (rc == PE_OK) {
    w->rounds += 1;
  }
  if (rc == PE_ECONN) {
    pe__log(w, PE_LIVE_LOG_INFO, "lease round skipped: %s",
            pe_rcluster_errmsg(w->rc));
    return PE_OK;
  }
  return rc;
}

/* ---- the step ----------------------------------------------------------- */

/* Reloads the slot map, at most every 250 ms. */
static void pe__refresh(pe_worker_t *w) {
  uint64_t now = pe_clock_ns();
  if (w->rc_ready && pe_rcluster_is_cluster(w->rc) &&
      now - w->refresh_mono >= PE__REFRESH_EVERY_NS) {
    w->refresh_mono = now;
    (void)pe_rcluster_refresh(w->rc);
  }
}

/* Reopens partition p's handle from its checkpoint, under the same token,
 * on the node now serving its slot. */
static int pe__part_reopen(pe_worker_t *w, uint32_t p, const char *why) {
  char fence[PE__TOKEN_MAX];
  snprintf(fence, sizeof fence, "%s", w->part[p]->fence);
  int releasing = w->part[p]->releasing;
  pe__log(w, PE_LIVE_LOG_INFO,
          "partition %u: %s; reopening it from its "
          "checkpoint",
          p, why);
  pe__refresh(w);
  pe__part_close(w, p);
  int rc = pe__part_open(w, p, fence);
  if (rc == PE_OK && releasing) {
    w->part[p]->releasing = 1;
    pe_live_stop(w->part[p]->live);
  }
  return rc;
}

/* Steps partition p once. A stop (release) that completed gives the lease
 * back; a fenced write closes the handle. A handle that lost its connection
 * is reopened from the checkpoint, since after a failover the new master
 * may lack the last writes the old one acknowledged (what it holds is a
 * prefix of them, checkpoints included, so re-deriving from its checkpoint
 * is exact); one that cannot reach its node for 0.5 s is reopened on the
 * node the slot map names now, and so is one redirected (MOVED). */
static int pe__part_step(pe_worker_t *w, pe__part_t *pt, int *entries) {
  pe_live_step_stats_t st;
  int rc = pe_live_step(pt->live, 0, &st);
  uint32_t p = pt->p;
  *entries += (int)st.entries;
  if (rc == PE_OK) {
    uint64_t now = pe_clock_ns();
    if (st.connected) {
      pt->connected = 1;
      pt->away_since = 0;
      return PE_OK;
    }
    if (pt->connected) {
      return pe__part_reopen(w, p, "connection lost");
    }
    if (pt->away_since == 0) {
      pt->away_since = now;
    } else if (now - pt->away_since >= PE__AWAY_NS) {
      pt->away_since = now;
      pe__refresh(w);
      char url[sizeof pt->url];
      if (pe__part_url(w, p, url, sizeof url) == PE_OK &&
          strcmp(url, pt->url) != 0) {
        return pe__part_reopen(w, p, "its slot moved to another node");
      }
    }
    return PE_OK;
  }
  if (rc == PE_LIVE_STOPPED && pt->lost) {
    /* Nothing was left to write (the fence would have refused it). */
    w->lost += 1;
    pe__part_close(w, p);
    return PE_OK;
  }
  if (rc == PE_LIVE_STOPPED) {
    pe__part_close(w, p);
    w->released += 1;
    rc = pe__lease_release(w, p);
    return rc == PE_ECONN ? PE_OK : rc; /* at worst the lease expires */
  }
  if (pe_live_fenced(pt->live)) {
    pe__log(w, PE_LIVE_LOG_WARN, "partition %u: %s", p,
            pe_live_errmsg(pt->live));
    w->lost += 1;
    pe__part_close(w, p);
    return PE_OK;
  }
  const char *msg = pe_live_errmsg(pt->live);
  /* A redirection, or a node that is a replica now: the slot map moved. */
  if (strstr(msg, "MOVED ") != NULL || strstr(msg, "ASK ") != NULL ||
      strstr(msg, "READONLY ") != NULL) {
    w->refresh_mono = 0;
    return pe__part_reopen(w, p, "its slot moved to another node");
  }
  if (rc == PE_ECONN && pt->releasing) {
    *(pt->lost ? &w->lost : &w->released) += 1;
    pe__part_close(w, p); /* stopped while away: the checkpoint stands */
    return PE_OK;
  }
  return pe__fail(w, rc, "partition %u: %s", p, msg);
}

static void pe__nap(uint32_t ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  (void)nanosleep(&ts, NULL);
}

static void pe__publish(pe_worker_t *w, int force) {
  if (w->http == NULL) {
    return;
  }
  uint64_t now = pe_clock_ns();
  if (!force && now - w->metrics_mono < PE__METRICS_EVERY_NS) {
    return;
  }
  pe_worker_metrics(w, &w->metrics);
  if (pe_live_http_publish(w->http, &w->metrics)) {
    w->metrics_mono = now;
  }
}

int pe_worker_step(pe_worker_t *w, int timeout_ms) {
  uint64_t now = pe_clock_ns();
  if (w->stop_flag && !w->stopping) {
    w->stopping = 1;
    pe__log(w, PE_LIVE_LOG_INFO,
            "stopping: checkpointing and giving back %u partitions",
            w->n_owned);
    for (uint32_t p = 0; p < w->cfg.partitions; p++) {
      if (w->part[p] != NULL) {
        w->part[p]->releasing = 1;
        pe_live_stop(w->part[p]->live);
      }
    }
  }
  if (w->stop_flag >= 2) {
    return pe__fail(w, PE_ESTATE,
                    "stopped again before every partition was checkpointed; "
                    "their leases expire and their owners resume from the "
                    "last checkpoints");
  }
  /* The partitions first: after a pause, what a handle had in hand goes
   * out under its old token and meets the fence, before the round finds the
   * lease gone. */
  int entries = 0;
  for (uint32_t p = 0; p < w->cfg.partitions; p++) {
    if (w->part[p] != NULL) {
      int rc = pe__part_step(w, w->part[p], &entries);
      if (rc != PE_OK) {
        return rc;
      }
    }
  }
  now = pe_clock_ns();
  if (now >= w->next_round) {
    int rc = pe__round(w);
    if (rc != PE_OK) {
      return rc;
    }
    w->next_round = now + (uint64_t)w->cfg.lease_ms * 1000000ull / 3;
  }
  if (entries > 0) {
    w->last_entry_mono = now;
  }
  if (w->stopping && w->n_owned == 0) {
    /* Every partition checkpointed and given back: leave the heartbeats. */
    pe_resp_reset(&w->req);
    pe_resp_begin(&w->req, 3);
    pe_resp_arg(&w->req, "HDEL", 4);
    pe_resp_arg_str(&w->req, PE__WORKERS_KEY);
    pe_resp_arg_str(&w->req, w->id);
    const pe_redis_value_t *v;
    (void)pe__cmd(w, PE__WORKERS_KEY, &v);
    pe__publish(w, 1);
    return PE_LIVE_STOPPED;
  }
  if (w->cfg.idle_stop_ms && !w->stopping &&
      now - w->last_entry_mono >= w->cfg.idle_stop_ms * 1000000ull) {
    pe_worker_stop(w);
  }
  /* Nothing came: nap, doubling from 1 ms up to 16 ms while nothing comes,
   * so an idle worker does not poll its partitions flat out. */
  if (entries > 0) {
    w->idle_passes = 0;
  } else if (timeout_ms != 0) {
    uint32_t shift = w->idle_passes < 4 ? w->idle_passes : 4;
    uint32_t ms = 1u << shift;
    pe__nap(ms < (uint32_t)timeout_ms ? ms : (uint32_t)timeout_ms);
    w->idle_passes += 1;
  }
  pe__publish(w, 0);
  return PE_OK;
}

/* ---- life cycle --------------------------------------------------------- */

int pe_worker_create(const pe_worker_config_t *cfg, pe_worker_t **out,
                     char *err, size_t err_cap) {
  *out = NULL;
  const char *id = cfg->worker_id;
  if (id == NULL || id[0] == '\0' || strlen(id) > PE_WORKER_ID_MAX ||
      strpbrk(id, " \t\r\n") != NULL) {
    snprintf(err, err_cap, "the worker id must be 1..%d bytes without spaces",
             PE_WORKER_ID_MAX);
    return PE_EINVAL;
  }
  if (cfg->partitions == 0 || cfg->partitions > 65536) {
    snprintf(err, err_cap, "partitions must be 1..65536");
    return PE_EINVAL;
  }
  if (cfg->lease_ms < 300 || cfg->lease_ms > 600000) {
    snprintf(err, err_cap, "the lease must be 300..600000 ms");
    return PE_EINVAL;
  }
  if (cfg->live.redis_url == NULL ||
      strlen(cfg->live.redis_url) >= sizeof((pe_worker_t *)0)->url) {
    snprintf(err, err_cap, "a Redis URL is required (under 1024 bytes)");
    return PE_EINVAL;
  }
  pe_worker_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  w->cfg = *cfg;
  snprintf(w->id, sizeof w->id, "%s", id);
  w->cfg.worker_id = w->id;
  snprintf(w->url, sizeof w->url, "%s", cfg->live.redis_url);
  w->cfg.live.redis_url = w->url;
  w->cfg.http_addr = NULL;
  w->created_mono = pe_clock_ns();
  w->last_entry_mono = w->created_mono; /* idle from the start, as live */
  /* The nonce tells this process from an earlier one with the same id. */
  snprintf(w->value, sizeof w->value, "%s %llx", w->id,
           (unsigned long long)((uint64_t)pe_wall_ns() ^ w->created_mono));
  w->part = calloc(cfg->partitions, sizeof *w->part);
  char why[512];
  pe_rcluster_options_t ro;
  memset(&ro, 0, sizeof ro);
  ro.conn.io_timeout_ms = cfg->lease_ms;
  ro.retry_ms = cfg->lease_ms;
  int rc = w->part == NULL ? PE_ENOMEM : PE_OK;
  if (rc == PE_OK) {
    rc = pe_rcluster_open(w->url, &ro, &w->rc, why, sizeof why);
    if (rc != PE_OK) {
      snprintf(err, err_cap, "%s%s", rc == PE_EINVAL ? "redis url: " : "", why);
    }
  } else {
    snprintf(err, err_cap, "out of memory");
  }
  if (rc == PE_OK && cfg->http_addr != NULL) {
    rc = pe_live_http_start(cfg->http_addr, &w->http, why, sizeof why);
    if (rc != PE_OK) {
      snprintf(err, err_cap, "http: %s", why);
    } else {
      pe__log(w, PE_LIVE_LOG_INFO, "serving /health and /metrics on %s",
              pe_live_http_where(w->http));
    }
  }
  if (rc != PE_OK) {
    pe_worker_destroy(w);
    return rc;
  }
  *out = w;
  return PE_OK;
}

void pe_worker_destroy(pe_worker_t *w) {
  if (w == NULL) {
    return;
  }
  pe_live_http_stop(w->http);
  if (w->part != NULL) {
    for (uint32_t p = 0; p < w->cfg.partitions; p++) {
      pe__part_free(w->part[p]);
    }
    free(w->part);
  }
  pe_rcluster_destroy(w->rc);
  pe_resp_free(&w->req);
  free(w);
}

/* ---- figures ------------------------------------------------------------ */

void pe_worker_metrics(const pe_worker_t *w, pe_live_metrics_t *m) {
  memset(m, 0, sizeof *m);
  pe_hist_init(&m->latency_ns);
  int all_ok = 1;
  pe_live_metrics_t one;
  for (uint32_t p = 0; p < w->cfg.partitions; p++) {
    const pe__part_t *pt = w->part[p];
    if (pt == NULL) {
      continue;
    }
    pe_live_metrics(pt->live, &one);
    all_ok &= one.status == PE_LIVE_OK;
    m->entries += one.entries;
    m->entries_run += one.entries_run;
    m->ticks += one.ticks;
    for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
      m->rejected[r] += one.rejected[r];
    }
    for (int s = 0; s <= PE_RULE_COUNT; s++) {
      m->signals[s] += one.signals[s];
    }
    m->duplicates += one.duplicates;
    m->reconnects += one.reconnects;
    m->checkpoints += one.checkpoints;
    m->checkpoint_failures += one.checkpoint_failures;
    if (one.checkpoint_wall_ns > m->checkpoint_wall_ns) {
      m->checkpoint_wall_ns = one.checkpoint_wall_ns;
    }
    m->lag_known = one.lag_known;
    m->lag_entries += one.lag_entries;
    m->lag_ms = one.lag_ms > m->lag_ms ? one.lag_ms : m->lag_ms;
    m->gaps += one.gaps;
    m->gap_entries += one.gap_entries;
    m->symbols += one.symbols;
    m->active_ns = one.active_ns > m->active_ns ? one.active_ns : m->active_ns;
    pe_hist_merge(&m->latency_ns, &one.latency_ns);
    if (m->n_owned < PE_LIVE_PARTITIONS_SHOWN) {
      pe_live_partition_view_t *v = &m->owned[m->n_owned];
      v->partition = p;
      v->lag_known = one.lag_known;
      v->lag_entries = one.lag_entries;
      v->lag_ms = one.lag_ms;
      v->entries = one.entries;
      v->fence = strtoull(pt->fence, NULL, 10);
      memcpy(v->last_id, one.last_id, sizeof v->last_id);
    }
    m->n_owned += 1;
  }
  int connected = w->rc_ready && w->checked;
  m->status = w->stopping           ? PE_LIVE_STOPPING
              : !w->checked         ? PE_LIVE_STARTING
              : connected && all_ok ? PE_LIVE_OK
                                    : PE_LIVE_DISCONNECTED;
  snprintf(m->last_id, sizeof m->last_id, "-");
  m->wall_ns = pe_clock_ns() - w->created_mono;
  snprintf(m->worker_id, sizeof m->worker_id, "%s", w->id);
  m->partitions = w->cfg.partitions;
  m->workers_alive = w->alive;
  m->target = w->target;
  m->acquired = w->acquired;
  m->released = w->released;
  m->lost = w->lost;
}
