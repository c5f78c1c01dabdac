/* One stream entry through the engine: the per-tick path of the live
 * service. Decode the entry, pe_engine_push, and format any signal as an
 * XADD into the batch's transaction, whose buffer already has room once
 * warmed up. Nothing here allocates, locks or makes a system call. */
#include <string.h>

#include "live/live_impl.h"
#include "pe/error.h"

/* The engine's outputs for the tick of entry id: one XADD per signal, with
 * stream ids derived from id (pe_signal_stream_id). */
static int pe__signals_out(pe_live_t *L, pe_stream_id_t id,
                           const pe_tick_out_t *out) {
  for (uint32_t k = 0; k < out->n_signals; k++) {
    pe_stream_id_t sid;
    if (pe_signal_stream_id(id, k, &sid) != PE_OK) {
      char idt[PE_STREAM_ID_MAX];
      return pe__live_fail(L, PE_EFULL,
                           "%s: entry %s: its sequence number is too large to "
                           "derive signal ids from (keep it below 2^62)",
                           L->ticks, pe__live_id_text(id, idt));
    }
    pe__txn_begin_cmd(L);
    pe_resp_xadd_signal(&L->txn, L->signals, L->cfg.signals_maxlen, sid,
                        &out->signal[k], id);
    L->txn_signals += 1;
  }
  return PE_OK;
}

int pe__live_report(void *ctx, const pe_tick_t *tick, int rc,
                    const pe_tick_out_t *out) {
  pe_live_t *L = ctx;
  pe_stream_id_t id = L->held_ids[L->held_next++];
  if (rc != PE_OK) {
    char idt[PE_STREAM_ID_MAX];
    L->report_rc = pe__live_fail(L, rc, "%s: entry %s (%s): %s", L->ticks,
                                 pe__live_id_text(id, idt), tick->symbol,
                                 pe_engine_errmsg(L->engine));
    return PE_STOP;
  }
  rc = pe__signals_out(L, id, out);
  if (rc != PE_OK) {
    L->report_rc = rc;
    return PE_STOP;
  }
  return PE_CONTINUE;
}

/* After a micro-batched push or flush that returned rc: the ids bookkeeping
 * (accepted: the entry's id stays; all delivered: both counts back to 0),
 * and the failure that stopped a delivery. */
static int pe__held_after(pe_live_t *L, int rc, int accepted) {
  L->held_n += accepted ? 1u : 0u;
  if (L->held_next == L->held_n) {
    L->held_n = 0;
    L->held_next = 0;
  }
  if (rc > 0) {
    return L->report_rc;
  }
  return PE_OK;
}

int pe__live_flush(pe_live_t *L) {
  if (L->held_ids == NULL) {
    return PE_OK;
  }
  return pe__held_after(L, pe_engine_flush(L->engine), 0);
}

int pe__live_entry(pe_live_t *L, const pe_redis_value_t *e) {
  pe_stream_id_t id;
  size_t n = 0;
  int rc = pe_redis_entry_fields(e, &id, L->fields, PE_STREAM_MAX_FIELDS, &n);
  if (rc == PE_EINVAL) {
    return pe__live_fail(L, PE_EPARSE,
                         "%s: an entry without a valid id in the XREAD reply",
                         L->ticks);
  }
  L->counter[PE__C_ENTRIES] += 1;
  L->entries_run += 1;
  L->position += 1;
  L->since_ckpt += 1;
  L->last_id = id;
  L->last_id_seen = 1;
  if (rc == PE_ELINELEN) {
    pe__reject(L, id, PE_STREAM_REJECT_TOO_MANY_FIELDS, "", 0);
    return PE_OK;
  }
  if (rc != PE_OK) {
    pe__reject(L, id, PE_STREAM_REJECT_MALFORMED, "", 0);
    return PE_OK;
  }
  pe_tick_t tick;
  pe_stream_why_t why;
  if (pe_stream_entry_decode(L->fields, n, &L->cfg.stream, &tick, &why) !=
      PE_OK) {
    pe__reject(L, id, why.reason, why.field, n);
    return PE_OK;
  }
  if (L->held_ids != NULL) {
    L->held_ids[L->held_n] = id;
    rc = pe_engine_push(L->engine, &tick, &L->out);
    if (rc >= 0) {
      return pe__held_after(L, rc, 1);
    }
  } else {
    rc = pe_engine_push(L->engine, &tick, &L->out);
    if (rc == PE_OK) {
      return pe__signals_out(L, id, &L->out);
    }
  }
  int reason = pe_stream_reject_from_error(rc);
  if (reason >= 0) {
    if (rc == PE_EFULL && !L->warned_full) {
      pe_engine_stats_t st;
      pe_engine_stats(L->engine, &st);
      L->warned_full = 1;
      pe__live_log(L, PE_LIVE_LOG_INFO,
                   "the symbol table is full (%u symbols): ticks of new "
                   "symbols are rejected as symbol_table_full",
                   st.symbols);
    }
    pe__reject(L, id, reason, rc == PE_EORDER ? "timestamp" : "symbol", n);
    return PE_OK;
  }
  char idt[PE_STREAM_ID_MAX];
  return pe__live_fail(L, rc, "%s: entry %s: %s", L->ticks,
                       pe__live_id_text(id, idt), pe_engine_errmsg(L->engine));
}
