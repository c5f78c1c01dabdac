/* Engine snapshots: every symbol's state and window in one versioned,
 * checksummed block (layout below). A snapshot is only meant to be read by
 * the same build on the same kind of machine: the state structs are copied
 * as they lie in memory, and their sizes are part of the header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_impl.h"
#include "core/hash.h"
#include "pe/error.h"

/* Layout, little or big endian as the machine is:
 *   header (pe__snap_header_t)
 *   stats  (pe_engine_stats_t)
 *   keys   [count] pe__symkey_t
 *   states [count] pe__symstate_t
 *   rows   [count][window][PE_FEATURE_COUNT] float
 *   uint64 checksum of everything before it */
#define PE__SNAP_MAGIC "PESNAP\0\1"
#define PE__SNAP_VERSION 1u

typedef struct pe__snap_header {
  char magic[8];
  uint32_t version;
  uint32_t state_size;
  uint32_t stats_size;
  uint32_t n_features;
  uint32_t window;
  uint32_t count;
  uint64_t config_hash;
} pe__snap_header_t;

/* Hash of the settings that shape the state, field by field (the struct may
 * have padding). */
static uint64_t pe__config_hash(const pe_engine_t *e) {
  const pe_engine_config_t *c = &e->config;
  double d[] = {c->ema_fast_span,
                c->ema_slow_span,
                c->ema_td_half_life_s,
                c->vwap_window_s,
                c->rules.ema_diff_threshold,
                c->rules.vwap_diff_threshold,
                c->rules.volume_ema_alpha,
                c->rules.volume_spike_multiplier,
                c->rules.breakout_sigma,
                c->rules.return_ewm_alpha,
                c->rules.signal_score_min,
                c->model_threshold};
  int64_t i[] = {c->session_reset_minute,
                 c->rules.breakout_min_returns,
                 c->rules.signal_cooldown_ns,
                 c->infer_every,
                 e->window,
                 e->all_features};
  uint64_t h = pe__hash64(d, sizeof d, 0);
  return pe__hash64(i, sizeof i, h);
}

static size_t pe__row_bytes(const pe_engine_t *e) {
  return (size_t)e->window * PE_FEATURE_COUNT * sizeof(float);
}

static size_t pe__snap_size(const pe_engine_t *e, uint32_t count) {
  return sizeof(pe__snap_header_t) + sizeof(pe_engine_stats_t) +
         (size_t)count * (sizeof(pe__symkey_t) + sizeof(pe__symstate_t) +
                          pe__row_bytes(e)) +
         sizeof(uint64_t);
}

size_t pe_engine_snapshot_size(const pe_engine_t *e) {
  return pe__snap_size(e, e->symtab.count);
}

int pe_engine_snapshot(const pe_engine_t *e, void *buf, size_t cap,
                       size_t *len) {
  uint32_t count = e->symtab.count;
  size_t need = pe__snap_size(e, count);
  *len = need;
  if (cap < need) {
    return PE_EFULL;
  }
  unsigned char *p = buf;
  pe__snap_header_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, PE__SNAP_MAGIC, sizeof h.magic);
  h.version = PE__SNAP_VERSION;
  h.state_size = (uint32_t)sizeof(pe__symstate_t);
  h.stats_size = (uint32_t)sizeof(pe_engine_stats_t);
  h.n_features = PE_FEATURE_COUNT;
  h.window = e->window;
  h.count = count;
  h.config_hash = pe__config_hash(e);
  memcpy(p, &h, sizeof h);
  p += sizeof h;
  pe_engine_stats_t stats;
  pe_engine_stats(e, &stats);
  memcpy(p, &stats, sizeof stats);
  p += sizeof stats;
  memcpy(p, e->symtab.keys, (size_t)count * sizeof(pe__symkey_t));
  p += (size_t)count * sizeof(pe__symkey_t);
  memcpy(p, e->states, (size_t)count * sizeof(pe__symstate_t));
  p += (size_t)count * sizeof(pe__symstate_t);
  if (e->window > 0) {
    memcpy(p, e->windows, (size_t)count * pe__row_bytes(e));
    p += (size_t)count * pe__row_bytes(e);
  }
  uint64_t sum = pe__hash64(buf, (size_t)(p - (unsigned char *)buf), 0);
  memcpy(p, &sum, sizeof sum);
  return PE_OK;
}

int pe_engine_restore(pe_engine_t *e, const void *buf, size_t len) {
  const unsigned char *p = buf;
  pe__snap_header_t h;
  if (len < sizeof h + sizeof(pe_engine_stats_t) + sizeof(uint64_t)) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot truncated: %zu bytes is less than its header", len);
    return PE_ECORRUPT;
  }
  memcpy(&h, p, sizeof h);
  if (memcmp(h.magic, PE__SNAP_MAGIC, sizeof h.magic) != 0) {
    snprintf(e->errmsg, sizeof e->errmsg, "not an engine snapshot");
    return PE_ECORRUPT;
  }
  if (h.version != PE__SNAP_VERSION || h.state_size != sizeof(pe__symstate_t) ||
      h.stats_size != sizeof(pe_engine_stats_t) ||
      h.n_features != PE_FEATURE_COUNT) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot layout %u (state %u bytes) is not this build's %u (%zu)",
             h.version, h.state_size, PE__SNAP_VERSION, sizeof(pe__symstate_t));
    return PE_EVERSION;
  }
  if (h.count > e->symtab.capacity) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot holds %u symbols, more than max_symbols %u", h.count,
             e->symtab.capacity);
    return PE_EINVAL;
  }
  if (h.window != e->window || h.config_hash != pe__config_hash(e)) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot was made with other settings (window %u, here %u); "
             "start with the settings it was made with",
             h.window, e->window);
    return PE_EINVAL;
  }
  size_t need = pe__snap_size(e, h.count);
  if (len != need) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot is %zu bytes, its header says %zu", len, need);
    return PE_ECORRUPT;
  }
  uint64_t sum;
  memcpy(&sum, p + len - sizeof sum, sizeof sum);
  if (sum != pe__hash64(buf, len - sizeof sum, 0)) {
    snprintf(e->errmsg, sizeof e->errmsg, "snapshot checksum mismatch");
    return PE_ECORRUPT;
  }
  /* Validated: from here on nothing can fail. */
  p += sizeof h;
  pe_engine_stats_t stats;
  memcpy(&stats, p, sizeof stats);
  p += sizeof stats;
  pe__symtab_clear(&e->symtab);
  const unsigned char *keys = p;
  for (uint32_t i = 0; i < h.count; i++) {
    pe__symkey_t key;
    memcpy(&key, keys + (size_t)i * sizeof key, sizeof key);
    uint32_t id;
    int is_new;
    (void)pe__symtab_intern(&e->symtab, &key, &id, &is_new);
  }
  p += (size_t)h.count * sizeof(pe__symkey_t);
  memcpy(e->states, p, (size_t)h.count * sizeof(pe__symstate_t));
  p += (size_t)h.count * sizeof(pe__symstate_t);
  if (e->window > 0) {
    memcpy(e->windows, p, (size_t)h.count * pe__row_bytes(e));
  }
  stats.symbols = 0;
  e->stats = stats;
  e->started = h.count > 0 || stats.ticks > 0;
  return PE_OK;
}
