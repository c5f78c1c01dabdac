/* Checkpoint encoding (see pe/checkpoint.h).
 *
 * Layout, every integer little-endian:
 *   0   magic "PECKPT\r\n"
 *   8   u32 version, u32 fixed header length (PE__CKPT_FIXED)
 *   16  u64 created_ns, last_id.ms, last_id.seq, position, rejects_offset
 *   56  u32 n_counters, u32 ticks name length, u32 signals name length,
 *       u32 zero
 *   72  u64 snapshot length
 *   80  u64 counter[n_counters]; ticks name; signals name; snapshot
 *   end u64 checksum (pe__hash64) of every byte before it
 * The "\r\n" in the magic catches a copy through a text-mode filter. */
#include "pe/checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "pe/error.h"

#define PE__CKPT_MAGIC "PECKPT\r\n"
#define PE__CKPT_FIXED 80u

static void pe__put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) {
    p[i] = (unsigned char)(v >> (8 * i));
  }
}

static void pe__put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (unsigned char)(v >> (8 * i));
  }
}

static uint32_t pe__get32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    v |= (uint32_t)p[i] << (8 * i);
  }
  return v;
}

static uint64_t pe__get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v |= (uint64_t)p[i] << (8 * i);
  }
  return v;
}

/* Length of a name field (NUL-terminated, or filling its array). */
static size_t pe__name_len(const char *s, size_t cap) {
  const char *nul = memchr(s, '\0', cap);
  return nul ? (size_t)(nul - s) : cap;
}

size_t pe_checkpoint_size(const pe_checkpoint_t *c) {
  return PE__CKPT_FIXED + 8u * PE_CHECKPOINT_COUNTERS +
         pe__name_len(c->ticks_stream, sizeof c->ticks_stream) +
         pe__name_len(c->signals_stream, sizeof c->signals_stream) +
         c->snapshot_len + 8u;
}

int pe_checkpoint_encode(const pe_checkpoint_t *c, void *buf, size_t cap,
                         size_t *len) {
  size_t tlen = pe__name_len(c->ticks_stream, sizeof c->ticks_stream);
  size_t slen = pe__name_len(c->signals_stream, sizeof c->signals_stream);
  if (tlen > PE_CHECKPOINT_NAME_MAX || slen > PE_CHECKPOINT_NAME_MAX) {
    return PE_EINVAL;
  }
  size_t need = pe_checkpoint_size(c);
  *len = need;
  if (cap < need) {
    return PE_EFULL;
  }
  unsigned char *p = buf;
  memcpy(p, PE__CKPT_MAGIC, 8);
  pe__put32(p + 8, PE_CHECKPOINT_VERSION);
  pe__put32(p + 12, PE__CKPT_FIXED);
  pe__put64(p + 16, (uint64_t)c->created_ns);
  pe__put64(p + 24, c->last_id.ms);
  pe__put64(p + 32, c->last_id.seq);
  pe__put64(p + 40, c->position);
  pe__put64(p + 48, c->rejects_offset);
  pe__put32(p + 56, PE_CHECKPOINT_COUNTERS);
  pe__put32(p + 60, (uint32_t)tlen);
  pe__put32(p + 64, (uint32_t)slen);
  pe__put32(p + 68, 0);
  pe__put64(p + 72, (uint64_t)c->snapshot_len);
  unsigned char *q = p + PE__CKPT_FIXED;
  for (int i = 0; i < PE_CHECKPOINT_COUNTERS; i++, q += 8) {
    pe__put64(q, c->counter[i]);
  }
  memcpy(q, c->ticks_stream, tlen);
  q += tlen;
  memcpy(q, c->signals_stream, slen);
  q += slen;
  if (c->snapshot_len > 0) {
    memcpy(q, c->snapshot, c->snapshot_len);
  }
  q += c->snapshot_len;
  pe__put64(q, pe__hash64(p, (size_t)(q - p), 0));
  return PE_OK;
}

int pe_checkpoint_decode(const void *buf, size_t len, pe_checkpoint_t *c,
                         char *err, size_t err_cap) {
  const unsigned char *p = buf;
  if (len < 8 || memcmp(p, PE__CKPT_MAGIC, 8) != 0) {
    snprintf(err, err_cap,
             "not a pattern-engine checkpoint (%zu bytes, no "
             "PECKPT header)",
             len);
    return PE_ECORRUPT;
  }
  if (len < PE__CKPT_FIXED + 8u) {
    snprintf(err, err_cap,
             "truncated: %zu bytes, shorter than the %u-byte "
             "header",
             len, PE__CKPT_FIXED + 8u);
    return PE_ECORRUPT;
  }
  uint32_t version = pe__get32(p + 8);
  if (version != PE_CHECKPOINT_VERSION || pe__get32(p + 12) != PE__CKPT_FIXED) {
    snprintf(err, err_cap,
             "layout version %u; this build reads version %u only", version,
             PE_CHECKPOINT_VERSION);
    return PE_EVERSION;
  }
  uint64_t n_counters = pe__get32(p + 56);
  uint64_t tlen = pe__get32(p + 60);
  uint64_t slen = pe__get32(p + 64);
  uint64_t snap = pe__get64(p + 72);
  if (n_counters != PE_CHECKPOINT_COUNTERS || tlen > PE_CHECKPOINT_NAME_MAX ||
      slen > PE_CHECKPOINT_NAME_MAX || snap > (UINT64_MAX >> 2)) {
    snprintf(err, err_cap, "corrupt header (sizes out of range)");
    return PE_ECORRUPT;
  }
  uint64_t need = PE__CKPT_FIXED + 8u * n_counters + tlen + slen + snap + 8u;
  if ((uint64_t)len != need) {
    snprintf(err, err_cap, "%s: %zu bytes, its header says %llu",
             (uint64_t)len < need ? "truncated" : "trailing bytes", len,
             (unsigned long long)need);
    return PE_ECORRUPT;
  }
  if (pe__get64(p + len - 8) != pe__hash64(p, len - 8, 0)) {
    snprintf(err, err_cap, "checksum mismatch: its bytes were changed or cut");
    return PE_ECORRUPT;
  }
  memset(c, 0, sizeof *c);
  c->created_ns = (int64_t)pe__get64(p + 16);
  c->last_id.ms = pe__get64(p + 24);
  c->last_id.seq = pe__get64(p + 32);
  c->position = pe__get64(p + 40);
  c->rejects_offset = pe__get64(p + 48);
  const unsigned char *q = p + PE__CKPT_FIXED;
  for (int i = 0; i < PE_CHECKPOINT_COUNTERS; i++, q += 8) {
    c->counter[i] = pe__get64(q);
  }
  memcpy(c->ticks_stream, q, (size_t)tlen);
  q += tlen;
  memcpy(c->signals_stream, q, (size_t)slen);
  q += slen;
  c->snapshot = q;
  c->snapshot_len = (size_t)snap;
  return PE_OK;
}
