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
 *   header   (pe__snap_header_t)
 *   settings [PE__SETTING_COUNT] uint64: each setting's value (a double's
 *            bits, an integer, a digest), in PE__SETTING_MAP order
 *   stats    (pe_engine_stats_t)
 *   keys     [count] pe__symkey_t
 *   states   [count] pe__symstate_t
 *   rows     [count][window][PE_FEATURE_COUNT] float
 *   uint64 checksum of everything before it */
#define PE__SNAP_MAGIC "PESNAP\0\1"
#define PE__SNAP_VERSION 2u

typedef struct pe__snap_header {
  char magic[8];
  uint32_t version;
  uint32_t state_size;
  uint32_t stats_size;
  uint32_t n_features;
  uint32_t window;
  uint32_t count;
  uint32_t n_settings;
  uint32_t pad_;
} pe__snap_header_t;

/* Every setting that changes the state or the signals: X(flag, kind,
 * value) with c the engine's config and e the engine. A snapshot records
 * each; a restore under any other value is refused with the flag's name. */
enum { PE__SET_INT, PE__SET_DOUBLE, PE__SET_UNIT, PE__SET_DIGEST };
#define PE__SETTING_MAP(X)                                                     \
  X("--max-symbols", PE__SET_INT, c->max_symbols)                              \
  X("--window", PE__SET_INT, e->window)                                        \
  X("--features-out (every feature kept)", PE__SET_INT, e->all_features)       \
  X("--ts-unit", PE__SET_UNIT, c->ts_unit)                                     \
  X("--model (file, backend, features)", PE__SET_DIGEST, c->model_digest)      \
  X("--ema-fast-span", PE__SET_DOUBLE, c->ema_fast_span)                       \
  X("--ema-slow-span", PE__SET_DOUBLE, c->ema_slow_span)                       \
  X("--ema-td-half-life", PE__SET_DOUBLE, c->ema_td_half_life_s)               \
  X("--vwap-window", PE__SET_DOUBLE, c->vwap_window_s)                         \
  X("--session-reset (minute)", PE__SET_INT, c->session_reset_minute)          \
  X("--ema-diff-threshold", PE__SET_DOUBLE, c->rules.ema_diff_threshold)       \
  X("--vwap-diff-threshold", PE__SET_DOUBLE, c->rules.vwap_diff_threshold)     \
  X("--volume-ema-alpha", PE__SET_DOUBLE, c->rules.volume_ema_alpha)           \
  X("--volume-spike-multiplier", PE__SET_DOUBLE,                               \
    c->rules.volume_spike_multiplier)                                          \
  X("--breakout-sigma", PE__SET_DOUBLE, c->rules.breakout_sigma)               \
  X("--breakout-min-returns", PE__SET_INT, c->rules.breakout_min_returns)      \
  X("--return-ewm-alpha", PE__SET_DOUBLE, c->rules.return_ewm_alpha)           \
  X("--signal-score-min", PE__SET_DOUBLE, c->rules.signal_score_min)           \
  X("--signal-cooldown (ns)", PE__SET_INT, c->rules.signal_cooldown_ns)        \
  X("--infer-every", PE__SET_INT, c->infer_every)                              \
  X("--model-threshold", PE__SET_DOUBLE, c->model_threshold)

enum {
#define PE__SETTING_ONE(flag, kind, value) +1
  PE__SETTING_COUNT = 0 PE__SETTING_MAP(PE__SETTING_ONE)
#undef PE__SETTING_ONE
};

static const char *const pe__setting_names[] = {
#define PE__SETTING_NAME(flag, kind, value) flag,
    PE__SETTING_MAP(PE__SETTING_NAME)
#undef PE__SETTING_NAME
};

static const int pe__setting_kinds[] = {
#define PE__SETTING_KIND(flag, kind, value) kind,
    PE__SETTING_MAP(PE__SETTING_KIND)
#undef PE__SETTING_KIND
};

static uint64_t pe__setting_bits_i(int64_t v) { return (uint64_t)v; }

static uint64_t pe__setting_bits_d(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

/* The engine's settings, as a snapshot records them. */
static void pe__settings(const pe_engine_t *e, uint64_t out[]) {
  const pe_engine_config_t *c = &e->config;
  size_t i = 0;
#define PE__SETTING_GET(flag, kind, value)                                     \
  out[i++] = kind == PE__SET_DOUBLE ? pe__setting_bits_d((double)(value))      \
                                    : pe__setting_bits_i((int64_t)(value));
  PE__SETTING_MAP(PE__SETTING_GET)
#undef PE__SETTING_GET
}

/* One setting's value as the command line spells it. */
static void pe__setting_text(int kind, uint64_t bits, char *buf, size_t cap) {
  static const char *const units[] = {"auto", "s", "ms", "us", "ns"};
  double d;
  switch (kind) {
  case PE__SET_DOUBLE:
    memcpy(&d, &bits, sizeof d);
    snprintf(buf, cap, "%.17g", d);
    break;
  case PE__SET_UNIT:
    snprintf(buf, cap, "%s", bits < 5 ? units[bits] : "?");
    break;
  case PE__SET_DIGEST:
    snprintf(buf, cap, bits ? "digest %016llx" : "none",
             (unsigned long long)bits);
    break;
  default:
    snprintf(buf, cap, "%lld", (long long)bits);
  }
}

static size_t pe__row_bytes(const pe_engine_t *e) {
  return (size_t)e->window * PE_FEATURE_COUNT * sizeof(float);
}

static size_t pe__snap_size(const pe_engine_t *e, uint32_t count) {
  return sizeof(pe__snap_header_t) + PE__SETTING_COUNT * sizeof(uint64_t) +
         sizeof(pe_engine_stats_t) +
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
  if (e->held_n > 0) {
    return PE_ESTATE; /* held reports are not in a snapshot */
  }
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
  h.n_settings = PE__SETTING_COUNT;
  memcpy(p, &h, sizeof h);
  p += sizeof h;
  uint64_t settings[PE__SETTING_COUNT];
  pe__settings(e, settings);
  memcpy(p, settings, sizeof settings);
  p += sizeof settings;
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

/* The first setting that differs from the engine's, with both values, in
 * e->errmsg: PE_EINVAL; PE_OK when all agree. */
static int pe__check_settings(pe_engine_t *e, const unsigned char *p) {
  uint64_t theirs[PE__SETTING_COUNT], ours[PE__SETTING_COUNT];
  memcpy(theirs, p, sizeof theirs);
  pe__settings(e, ours);
  for (size_t i = 0; i < PE__SETTING_COUNT; i++) {
    if (theirs[i] != ours[i]) {
      char a[48], b[48];
      pe__setting_text(pe__setting_kinds[i], theirs[i], a, sizeof a);
      pe__setting_text(pe__setting_kinds[i], ours[i], b, sizeof b);
      snprintf(e->errmsg, sizeof e->errmsg,
               "snapshot was made with other settings: %s %s, here %s; "
               "start with the settings it was made with",
               pe__setting_names[i], a, b);
      return PE_EINVAL;
    }
  }
  return PE_OK;
}

/* The fields of a symbol's state that the engine indexes with or divides
 * by: its window position and count (rows of `window`), the model's tick
 * counter, and the fields a fresh state takes from the configuration (the
 * averages' weights, the VWAP's session offset, the rolling VWAP's bucket
 * width: zero there is a division by zero). Returns what is wrong, or
 * NULL. */
static const char *pe__state_bad(const pe_engine_t *e, const pe__symstate_t *s,
                                 const pe__symstate_t *fresh) {
  uint32_t infer_every = e->config.infer_every ? e->config.infer_every : 1;
  if (e->window == 0 ? s->win_head != 0 || s->win_count != 0
                     : s->win_head >= e->window || s->win_count > e->window) {
    return "window position out of range";
  }
  /* Pushes stop the count at PE__TICKS_MAX; one above it is forged. */
  if (s->n_ticks > PE__TICKS_MAX) {
    return "tick count out of range";
  }
  if (s->win_count > s->n_ticks || s->since_infer >= infer_every) {
    return "window or model counter past its tick count";
  }
  if (memcmp(&s->ema_fast.alpha, &fresh->ema_fast.alpha, sizeof(double)) ||
      memcmp(&s->ema_slow.alpha, &fresh->ema_slow.alpha, sizeof(double)) ||
      memcmp(&s->vol_ema.alpha, &fresh->vol_ema.alpha, sizeof(double)) ||
      memcmp(&s->ret_var.alpha, &fresh->ret_var.alpha, sizeof(double)) ||
      memcmp(&s->ema_td.rate_per_ns, &fresh->ema_td.rate_per_ns,
             sizeof(double)) ||
      s->vwap.reset_offset_ns != fresh->vwap.reset_offset_ns ||
      s->vwap_roll.bucket_ns != fresh->vwap_roll.bucket_ns) {
    return "a weight or width other than its settings give";
  }
  return NULL;
}

/* A key is 1 to PE_SYMBOL_MAX bytes without NUL, then NUL padding. */
static int pe__key_ok(const pe__symkey_t *k) {
  const char *nul = memchr(k->bytes, '\0', sizeof k->bytes);
  size_t len = nul ? (size_t)(nul - k->bytes) : sizeof k->bytes;
  if (len == 0 || len > PE_SYMBOL_MAX) {
    return 0;
  }
  for (size_t i = len; i < sizeof k->bytes; i++) {
    if (k->bytes[i] != '\0') {
      return 0;
    }
  }
  return 1;
}

/* Every key and state of a snapshot whose checksum matched, checked before
 * anything is loaded; duplicate keys (which would leave ids and states out
 * of step) found in a table of their own. */
static int pe__check_body(pe_engine_t *e, const unsigned char *keys,
                          const unsigned char *states, uint32_t count) {
  pe__symstate_t fresh;
  pe__symstate_init(&fresh, &e->config);
  pe__symtab_t seen;
  if (count > 0 && pe__symtab_init(&seen, count) != PE_OK) {
    snprintf(e->errmsg, sizeof e->errmsg, "out of memory checking a snapshot");
    return PE_ENOMEM;
  }
  int rc = PE_OK;
  for (uint32_t i = 0; i < count && rc == PE_OK; i++) {
    pe__symkey_t key;
    pe__symstate_t st;
    memcpy(&key, keys + (size_t)i * sizeof key, sizeof key);
    memcpy(&st, states + (size_t)i * sizeof st, sizeof st);
    uint32_t id;
    int is_new = 0;
    const char *bad = NULL;
    if (!pe__key_ok(&key)) {
      bad = "a symbol that is empty, too long or holds a NUL";
    } else if (pe__symtab_intern(&seen, &key, &id, &is_new) != PE_OK ||
               !is_new) {
      bad = "a symbol that appears twice";
    } else {
      bad = pe__state_bad(e, &st, &fresh);
    }
    if (bad != NULL) {
      snprintf(e->errmsg, sizeof e->errmsg, "snapshot symbol %u: %s", i, bad);
      rc = PE_ECORRUPT;
    }
  }
  if (count > 0) {
    pe__symtab_free(&seen);
  }
  return rc;
}

int pe_engine_restore(pe_engine_t *e, const void *buf, size_t len) {
  const unsigned char *p = buf;
  pe__snap_header_t h;
  if (e->held_n > 0) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "%u reports are held for a model batch; flush them first",
             e->held_n);
    return PE_ESTATE;
  }
  if (len < sizeof h + PE__SETTING_COUNT * sizeof(uint64_t) +
                sizeof(pe_engine_stats_t) + sizeof(uint64_t)) {
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
      h.n_features != PE_FEATURE_COUNT || h.n_settings != PE__SETTING_COUNT) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot layout %u (state %u bytes) is not this build's %u (%zu)",
             h.version, h.state_size, PE__SNAP_VERSION, sizeof(pe__symstate_t));
    return PE_EVERSION;
  }
  int rc = pe__check_settings(e, p + sizeof h);
  if (rc != PE_OK) {
    return rc;
  }
  if (h.window != e->window || h.count > e->symtab.capacity) {
    snprintf(e->errmsg, sizeof e->errmsg,
             "snapshot header out of range: window %u (here %u), %u symbols "
             "(at most %u)",
             h.window, e->window, h.count, e->symtab.capacity);
    return PE_ECORRUPT;
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
  p += sizeof h + PE__SETTING_COUNT * sizeof(uint64_t);
  pe_engine_stats_t stats;
  memcpy(&stats, p, sizeof stats);
  p += sizeof stats;
  const unsigned char *keys = p;
  const unsigned char *states = keys + (size_t)h.count * sizeof(pe__symkey_t);
  rc = pe__check_body(e, keys, states, h.count);
  if (rc != PE_OK) {
    return rc;
  }
  /* Validated: from here on nothing can fail. */
  pe__symtab_clear(&e->symtab);
  for (uint32_t i = 0; i < h.count; i++) {
    pe__symkey_t key;
    memcpy(&key, keys + (size_t)i * sizeof key, sizeof key);
    uint32_t id;
    int is_new;
    (void)pe__symtab_intern(&e->symtab, &key, &id, &is_new);
  }
  p = states;
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
