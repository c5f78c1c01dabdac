/* Checkpoints of the live service: the engine snapshot and the stream
 * position, taken only between two batches.
 *
 * With a file, the checkpoint is staged and handed to the writer thread
 * once every signal before it has been acknowledged by Redis; with a Redis
 * key, its SET rides in the same MULTI/EXEC as the batch's signals. Either
 * way no checkpoint ever claims a tick whose signals could still be lost.
 * A final checkpoint at a clean stop is written synchronously. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "live/live_impl.h"
#include "pe/clock.h"
#include "pe/error.h"
#include "pe/file.h"

static int pe__grow(unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap) {
    return PE_OK;
  }
  unsigned char *p = realloc(*buf, need);
  if (p == NULL) {
    return PE_ENOMEM;
  }
  *buf = p;
  *cap = need;
  return PE_OK;
}

/* Encodes a checkpoint of the engine as it is now into L->enc. The rejects
 * file must be flushed: its length goes into the checkpoint. */
static int pe__encode(pe_live_t *L) {
  size_t snap_len = 0;
  int rc = pe__grow(&L->snap, &L->snap_cap, pe_engine_snapshot_size(L->engine));
  if (rc == PE_OK) {
    rc = pe_engine_snapshot(L->engine, L->snap, L->snap_cap, &snap_len);
  }
  if (rc != PE_OK) {
    return rc;
  }
  pe_checkpoint_t c;
  memset(&c, 0, sizeof c);
  c.last_id = L->last_id;
  c.position = L->position;
  c.rejects_offset = L->rejects != NULL ? L->rejects_len : 0;
  c.created_ns = pe_wall_ns();
  memcpy(c.counter, L->counter, sizeof c.counter);
  snprintf(c.ticks_stream, sizeof c.ticks_stream, "%s", L->ticks);
  snprintf(c.signals_stream, sizeof c.signals_stream, "%s", L->signals);
  c.snapshot = L->snap;
  c.snapshot_len = snap_len;
  rc = pe__grow(&L->enc, &L->enc_cap, pe_checkpoint_size(&c));
  if (rc == PE_OK) {
    rc = pe_checkpoint_encode(&c, L->enc, L->enc_cap, &L->enc_len);
  }
  L->enc_created = c.created_ns;
  return rc;
}

/* A checkpoint taken at wall time `created` is durable now. */
void pe__ckpt_done(pe_live_t *L, int64_t created) {
  L->checkpoints += 1;
  L->checkpoint_wall = created;
}

/* Collects the background writer's result, if one is ready. A failed write
 * leaves the previous checkpoint in place: counted and logged, not fatal
 * (the final checkpoint's failure is). */
void pe__ckpt_poll(pe_live_t *L, int wait) {
  if (L->writer == NULL) {
    return;
  }
  int rc;
  int64_t tag;
  char err[512];
  if (pe_ckpt_writer_collect(L->writer, wait, &rc, &tag, err, sizeof err)) {
    if (rc == PE_OK) {
      pe__ckpt_done(L, tag);
    } else {
      L->checkpoint_failures += 1;
      pe__live_log(L, PE_LIVE_LOG_WARN,
                   "checkpoint not written: %s (the previous one stays)", err);
    }
  }
}

/* Hands the staged file checkpoint to the writer: only once every signal
 * before it has been acknowledged. */
void pe__ckpt_release(pe_live_t *L) {
  if (!L->staged) {
    return;
  }
  L->staged = 0;
  int fd = L->rejects != NULL ? fileno(L->rejects) : -1;
  if (pe_ckpt_writer_submit(L->writer, L->enc, L->enc_len, fd,
                            L->enc_created) != PE_OK) {
    L->checkpoint_failures += 1;
  }
}

/* At a batch boundary: takes a checkpoint when one is due. PE_OK, or
 * PE_EIO when the rejects file cannot be flushed (message set). */
int pe__ckpt_maybe(pe_live_t *L, uint64_t now) {
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_NONE || L->since_ckpt == 0) {
    return PE_OK;
  }
  if (L->since_ckpt < L->ckpt_every &&
      now - L->last_ckpt_mono < L->ckpt_interval_ns) {
    return PE_OK;
  }
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_FILE) {
    pe__ckpt_poll(L, 0);
    if (L->staged || pe_ckpt_writer_busy(L->writer)) {
      return PE_OK; /* the last one is still on its way: try next batch */
    }
  }
  int rc = pe__rejects_sync(L, 0);
  if (rc != PE_OK) {
    return rc;
  }
  rc = pe__encode(L);
  if (rc != PE_OK) {
    L->checkpoint_failures += 1;
    pe__live_log(L, PE_LIVE_LOG_WARN, "cannot take a checkpoint: %s",
                 pe_strerror(rc));
    return PE_OK;
  }
  L->since_ckpt = 0;
  L->last_ckpt_mono = now;
  L->checkpointed = 1;
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_REDIS) {
    pe__txn_begin_cmd(L);
    pe_resp_begin(&L->txn, 3);
    pe_resp_arg(&L->txn, "SET", 3);
    pe_resp_arg_str(&L->txn, L->ckpt_key);
    pe_resp_arg(&L->txn, (const char *)L->enc, L->enc_len);
    L->txn_ckpt = 1;
    L->txn_ckpt_created = L->enc_created;
  } else {
    L->staged = 1;
    if (!L->txn_open && !L->txn_pending) {
      pe__ckpt_release(L); /* nothing unacknowledged before it */
    }
  }
  return PE_OK;
}

/* SETs the encoded checkpoint in its key. */
static int pe__set_key(pe_live_t *L, char *err, size_t err_cap) {
  pe_resp_buf_t *b = &L->req;
  pe_resp_reset(b);
  pe_resp_begin(b, 3);
  pe_resp_arg(b, "SET", 3);
  pe_resp_arg_str(b, L->ckpt_key);
  pe_resp_arg(b, (const char *)L->enc, L->enc_len);
  int rc = L->cfg.fence_key != NULL ? pe__fence_wrap(L, b) : PE_OK;
  if (rc != PE_OK) {
    snprintf(err, err_cap, "cannot build the fenced write");
    return rc;
  }
  const pe_redis_value_t *v;
  rc = pe_redis_command(L->redis, b, &v);
  if (rc == PE_OK && L->cfg.fence_key != NULL) {
    /* The fenced EVAL: refused whole, or the SET's own reply in an array. */
    if (pe__fence_refused(L, v) != PE_OK) {
      snprintf(err, err_cap, "%.400s", L->errmsg);
      return PE_ESTATE;
    }
    if (v->type == PE_REDIS_ARRAY && v->n == 1) {
      v = &v->elem[0];
    }
  }
  if (rc != PE_OK) {
    snprintf(err, err_cap, "%s", pe_redis_errmsg(L->redis));
  } else if (!pe_redis_value_is(v, "OK")) {
    rc = PE_EIO;
    snprintf(err, err_cap, "%s",
             v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
  }
  return rc;
}

/* Final checkpoint at a clean stop: the state now, every signal before it
 * acknowledged, the rejects file on disk before it. */
int pe__ckpt_final(pe_live_t *L) {
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_NONE) {
    return PE_OK;
  }
  pe__ckpt_poll(L, 1);
  int rc = pe__rejects_sync(L, 1);
  if (rc != PE_OK) {
    return rc;
  }
  rc = pe__encode(L);
  char err[512] = "";
  if (rc == PE_OK && L->cfg.checkpoint == PE_LIVE_CHECKPOINT_FILE) {
    rc =
        pe_file_write_atomic(L->ckpt_path, L->enc, L->enc_len, err, sizeof err);
  } else if (rc == PE_OK) {
    rc = pe__set_key(L, err, sizeof err);
  }
  if (rc != PE_OK) {
    return pe__live_fail(L, rc, "final checkpoint not written: %s%s%s",
                         pe_strerror(rc), err[0] ? ": " : "", err);
  }
  pe__ckpt_done(L, L->enc_created);
  return PE_OK;
}

/* The checkpoint's bytes from its key, in a malloc'd copy. PE_ENOENT when
 * there is none. */
static int pe__get_key(pe_live_t *L, void **data, size_t *len) {
  pe_resp_buf_t *b = &L->req;
  pe_resp_reset(b);
  pe_resp_begin(b, 2);
  pe_resp_arg(b, "GET", 3);
  pe_resp_arg_str(b, L->ckpt_key);
  const pe_redis_value_t *v;
  int rc = pe_redis_command(L->redis, b, &v);
  if (rc != PE_OK) {
    return pe__live_fail(L, rc, "cannot read the checkpoint key: %s",
                         pe_redis_errmsg(L->redis));
  }
  if (v->type == PE_REDIS_NIL) {
    return PE_ENOENT;
  }
  if (v->type == PE_REDIS_ERROR && pe_redis_is_transient(v->str)) {
    /* CLUSTERDOWN during a failover, LOADING: the start is tried again. */
    return pe__live_fail(L, PE_ECONN, "GET %s: %s", L->ckpt_key, v->str);
  }
  if (v->type != PE_REDIS_STRING) {
    return pe__live_fail(L, PE_EPARSE, "GET %s: %s", L->ckpt_key,
                         v->type == PE_REDIS_ERROR ? v->str : "not a string");
  }
  *data = malloc(v->len ? v->len : 1);
  if (*data == NULL) {
    return pe__live_fail(L, PE_ENOMEM, "out of memory");
  }
  memcpy(*data, v->str, v->len);
  *len = v->len;
  return PE_OK;
}

#define PE__UNUSABLE                                                           \
  ". Nothing was loaded. Move it away (or delete the key) to start afresh, "   \
  "or restore a good copy"

/* Checks a checkpoint block and restores the engine and the position from
 * it; nothing changes on failure. */
static int pe__restore(pe_live_t *L, const void *data, size_t len,
                       const char *where) {
  pe_checkpoint_t c;
  char err[512];
  int rc = pe_checkpoint_decode(data, len, &c, err, sizeof err);
  if (rc != PE_OK) {
    return pe__live_fail(L, rc, "checkpoint %s is unusable: %s" PE__UNUSABLE,
                         where, err);
  }
  if (strcmp(c.ticks_stream, L->ticks) != 0 ||
      strcmp(c.signals_stream, L->signals) != 0) {
    return pe__live_fail(L, PE_EINVAL,
                         "checkpoint %s belongs to ticks stream '%s' and "
                         "signals stream '%s', not '%s' and '%s'" PE__UNUSABLE,
                         where, c.ticks_stream, c.signals_stream, L->ticks,
                         L->signals);
  }
  rc = pe_engine_restore(L->engine, c.snapshot, c.snapshot_len);
  if (rc != PE_OK) {
    return pe__live_fail(L, rc, "checkpoint %s is unusable: %s" PE__UNUSABLE,
                         where, pe_engine_errmsg(L->engine));
  }
  rc = pe__rejects_restore(L, c.rejects_offset);
  if (rc != PE_OK) {
    return rc;
  }
  L->last_id = c.last_id;
  L->last_id_seen = 1;
  L->position = c.position;
  memcpy(L->counter, c.counter, sizeof L->counter);
  L->checkpoint_wall = c.created_ns;
  return PE_OK;
}

/* Loads the checkpoint, if there is one: *loaded 1 when it was. */
int pe__ckpt_load(pe_live_t *L, int *loaded) {
  *loaded = 0;
  void *data = NULL;
  size_t len = 0;
  int rc;
  const char *where = L->ckpt_key;
  if (L->cfg.checkpoint == PE_LIVE_CHECKPOINT_FILE) {
    char err[512];
    where = L->ckpt_path;
    /* A FIFO or a device there would block the read or never hold a
     * checkpoint: only a regular file (or a link to one) is read. */
    struct stat st;
    if (stat(L->ckpt_path, &st) == 0 && !S_ISREG(st.st_mode)) {
      return pe__live_fail(L, PE_EINVAL,
                           "the checkpoint '%s' is not a regular file",
                           L->ckpt_path);
    }
    rc = pe_file_read_all(L->ckpt_path, &data, &len, err, sizeof err);
    if (rc != PE_OK && rc != PE_ENOENT) {
      pe__live_fail(L, rc, "cannot read the checkpoint: %s", err);
    }
  } else {
    rc = pe__get_key(L, &data, &len);
  }
  if (rc == PE_ENOENT) {
    return PE_OK;
  }
  if (rc == PE_OK) {
    rc = pe__restore(L, data, len, where);
  }
  free(data);
  if (rc != PE_OK) {
    return rc;
  }
  char idt[PE_STREAM_ID_MAX];
  pe__live_log(L, PE_LIVE_LOG_INFO,
               "resuming after entry %s from checkpoint %s",
               pe__live_id_text(L->last_id, idt), where);
  *loaded = 1;
  return PE_OK;
}
