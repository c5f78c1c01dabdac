/* The batch's transaction: the signals (and reject records, and with
 * Redis checkpoints the checkpoint SET) that a batch of ticks produced, in
 * one MULTI/EXEC. It is kept until Redis acknowledges it and resent whole
 * after a reconnect or a passing refusal; Redis refuses the signals it
 * already holds as duplicates (their ids are derived from the tick ids), so
 * a resend never writes one twice. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "live/live_impl.h"
#include "pe/clock.h"
#include "pe/error.h"

static int pe__txn_results(pe_live_t *L, const pe_redis_value_t *v);

/* Counts one more command into the batch's transaction, opening it with
 * MULTI first. The caller appends the command itself. */
void pe__txn_begin_cmd(pe_live_t *L) {
  if (!L->txn_open) {
    pe_resp_reset(&L->txn);
    if (L->cfg.fence_key == NULL) {
      pe_resp_begin(&L->txn, 1);
      pe_resp_arg(&L->txn, "MULTI", 5);
    }
    L->txn_open = 1;
    L->txn_inner = 0;
    L->txn_signals = 0;
    L->txn_ckpt = 0;
  }
  L->txn_inner += 1;
}

/* Closes the open transaction with EXEC; from now on it is pending until
 * acknowledged. */
void pe__txn_close(pe_live_t *L, uint64_t read_mono) {
  if (!L->txn_open) {
    return;
  }
  if (L->cfg.fence_key == NULL) {
    pe_resp_begin(&L->txn, 1);
    pe_resp_arg(&L->txn, "EXEC", 4);
  } else if (pe__fence_wrap(L, &L->txn) != PE_OK) {
    L->txn.failed = 1; /* the step reports it as out of memory */
  }
  L->txn_open = 0;
  L->txn_pending = 1;
  L->txn_read_mono = read_mono;
}

/* ---- fencing ----------------------------------------------------------- */

/* Runs the commands of ARGV[2..] (each as its argument count, then its
 * arguments) only while KEYS[1] holds the token ARGV[1]; returns their
 * replies as EXEC would. The other keys are the ones the commands write,
 * declared so that Redis Cluster checks they share the partition's slot. */
static const char pe__fenced_lua[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('FENCED the partition is owned under a newer "
    "lease') end "
    "local out = {} local i = 2 "
    "while i <= #ARGV do local n = tonumber(ARGV[i]) "
    "out[#out + 1] = redis.pcall(unpack(ARGV, i + 1, i + n)) "
    "i = i + n + 1 end "
    "return out";

/* Reads a decimal count ended by CRLF at *pos of a RESP buffer we wrote. */
static int pe__resp_count(const pe_resp_buf_t *b, size_t *pos, char kind,
                          uint64_t *n) {
  if (*pos >= b->len || b->data[*pos] != kind) {
    return PE_ECORRUPT;
  }
  uint64_t v = 0;
  size_t i = *pos + 1;
  while (i < b->len && b->data[i] >= '0' && b->data[i] <= '9') {
    v = v * 10 + (uint64_t)(b->data[i] - '0');
    i++;
  }
  if (i + 1 >= b->len || b->data[i] != '\r') {
    return PE_ECORRUPT;
  }
  *n = v;
  *pos = i + 2;
  return PE_OK;
}

/* Rewrites the commands in *inner (RESP arrays, as the handle wrote them) as
 * one fenced EVAL, in place (the two buffers are swapped, so both keep their
 * memory for the next batch). PE_ENOMEM, or PE_ECORRUPT for a buffer that is
 * not a sequence of commands. Once per batch, off the per-tick path. */
int pe__fence_wrap(pe_live_t *L, pe_resp_buf_t *inner) {
  if (inner->failed) {
    return PE_ENOMEM;
  }
  uint64_t commands = 0, args = 0;
  for (size_t pos = 0; pos < inner->len;) {
    uint64_t n, len;
    if (pe__resp_count(inner, &pos, '*', &n) != PE_OK) {
      return PE_ECORRUPT;
    }
    for (uint64_t j = 0; j < n; j++) {
      if (pe__resp_count(inner, &pos, '$', &len) != PE_OK ||
          len + 2 > inner->len - pos) {
        return PE_ECORRUPT;
      }
      pos += len + 2;
    }
    commands += 1;
    args += n;
  }
  const char *keys[3] = {L->fence_key, L->signals, L->ckpt_key};
  uint32_t n_keys = 3;
  pe_resp_buf_t *w = &L->wrap;
  pe_resp_reset(w);
  pe_resp_begin(w, (uint32_t)(3u + n_keys + 1u + commands + args));
  pe_resp_arg(w, "EVAL", 4);
  pe_resp_arg(w, pe__fenced_lua, sizeof pe__fenced_lua - 1);
  pe_resp_arg_u64(w, n_keys);
  for (uint32_t k = 0; k < n_keys; k++) {
    pe_resp_arg_str(w, keys[k]);
  }
  pe_resp_arg_str(w, L->fence_token);
  for (size_t pos = 0; pos < inner->len;) {
    uint64_t n, len;
    (void)pe__resp_count(inner, &pos, '*', &n);
    pe_resp_arg_u64(w, n);
    size_t from = pos;
    for (uint64_t j = 0; j < n; j++) {
      (void)pe__resp_count(inner, &pos, '$', &len);
      pos += len + 2;
    }
    /* The arguments' bulk strings go over as they are. */
    pe_resp_buf_t raw = {inner->data + from, pos - from, pos - from, 0, 0};
    pe_resp_append(w, &raw);
  }
  if (w->failed) {
    return PE_ENOMEM;
  }
  pe_resp_buf_t t = *inner;
  *inner = *w;
  *w = t;
  return PE_OK;
}

/* The reply to a fenced EVAL that was refused by the fence: marks the
 * handle fenced and fails with PE_ESTATE. PE_OK for any other reply. */
int pe__fence_refused(pe_live_t *L, const pe_redis_value_t *v) {
  if (v->type != PE_REDIS_ERROR || strncmp(v->str, "FENCED", 6) != 0) {
    return PE_OK;
  }
  L->fenced = 1;
  return pe__live_fail(L, PE_ESTATE,
                       "%s: write refused by the fence %s (token %s): another "
                       "worker owns this partition now",
                       L->signals, L->fence_key, L->fence_token);
}

/* ---- replies ------------------------------------------------------------ */

/* Reads the replies of the pending transaction. PE_OK: committed;
 * PE_ECONN: connection lost (resend it); PE_EAGAIN: Redis refused it for a
 * passing reason (resend it later); PE_ESTATE: fenced; anything else:
 * fatal, message set. */
int pe__txn_replies(pe_live_t *L) {
  const pe_redis_value_t *v;
  int rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (L->cfg.fence_key != NULL) {
    if (v->type == PE_REDIS_ERROR) {
      if (pe__fence_refused(L, v) != PE_OK) {
        return PE_ESTATE;
      }
      if (pe_redis_is_transient(v->str)) {
        pe__live_log(L, PE_LIVE_LOG_INFO,
                     "Redis refused the batch (%s); retrying", v->str);
        return PE_EAGAIN;
      }
      return pe__live_fail(L, PE_EPARSE, "Redis refused the signals batch: %s",
                           v->str);
    }
    return pe__txn_results(L, v);
  }
  if (!pe_redis_value_is(v, "OK")) {
    return pe__live_fail(L, PE_EPARSE, "MULTI failed: %s",
                         v->type == PE_REDIS_ERROR ? v->str
                                                   : "unexpected reply");
  }
  int transient = 0;
  char first_err[256] = "";
  for (uint32_t i = 0; i < L->txn_inner; i++) {
    rc = pe_redis_read(L->redis, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type == PE_REDIS_ERROR && first_err[0] == '\0') {
      snprintf(first_err, sizeof first_err, "%s", v->str);
      transient = pe_redis_is_transient(v->str);
    }
  }
  rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type != PE_REDIS_ARRAY) {
    if (first_err[0] != '\0' && transient) {
      pe__live_log(L, PE_LIVE_LOG_INFO,
                   "Redis refused the batch (%s); retrying", first_err);
      return PE_EAGAIN;
    }
    return pe__live_fail(L, PE_EPARSE, "Redis refused the signals batch: %s",
                         first_err[0] ? first_err
                         : v->type == PE_REDIS_ERROR
                             ? v->str
                             : "EXEC returned no results");
  }
  return pe__txn_results(L, v);
}

/* The results of a committed transaction (EXEC's or the fenced EVAL's
 * array): duplicates counted, any other error fatal. */
static int pe__txn_results(pe_live_t *L, const pe_redis_value_t *v) {
  if (v->type != PE_REDIS_ARRAY) {
    return pe__live_fail(L, PE_EPARSE, "the signals batch got no results");
  }
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *r = &v->elem[i];
    if (r->type != PE_REDIS_ERROR) {
      continue;
    }
    if (pe_redis_is_duplicate_id(r)) {
      L->duplicates += 1;
      continue;
    }
    return pe__live_fail(L, PE_EPARSE,
                         "cannot write to %s: %s (is the key a stream, and the "
                         "signals stream written by this engine only?)",
                         L->signals, r->str);
  }
  /* Committed. */
  uint64_t now = pe_clock_ns();
  for (uint32_t i = 0; i < L->txn_signals; i++) {
    pe_hist_record(&L->latency, now - L->txn_read_mono);
  }
  L->acked += L->txn_signals;
  if (L->txn_ckpt) {
    pe__ckpt_done(L, L->txn_ckpt_created);
  }
  L->txn_pending = 0;
  pe__ckpt_release(L);
  return PE_OK;
}
