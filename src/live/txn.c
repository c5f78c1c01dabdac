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

/* Counts one more command into the batch's transaction, opening it with
 * MULTI first. The caller appends the command itself. */
void pe__txn_begin_cmd(pe_live_t *L) {
  if (!L->txn_open) {
    pe_resp_reset(&L->txn);
    pe_resp_begin(&L->txn, 1);
    pe_resp_arg(&L->txn, "MULTI", 5);
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
  pe_resp_begin(&L->txn, 1);
  pe_resp_arg(&L->txn, "EXEC", 4);
  L->txn_open = 0;
  L->txn_pending = 1;
  L->txn_read_mono = read_mono;
}

/* Reads the replies of the pending transaction. PE_OK: committed;
 * PE_ECONN: connection lost (resend it); PE_EAGAIN: Redis refused it for a
 * passing reason (resend it later); anything else: fatal, message set. */
int pe__txn_replies(pe_live_t *L) {
  const pe_redis_value_t *v;
  int rc = pe_redis_read(L->redis, &v);
  if (rc != PE_OK) {
    return rc;
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
