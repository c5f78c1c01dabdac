/* libFuzzer target for live checkpoints: the block decoder
 * (pe_checkpoint_decode) and, behind it, the engine snapshot it carries
 * (pe_engine_restore), the way `live` loads them at start.
 *
 * Each input is tried as it is, then forged as someone who edits a
 * checkpoint would: the embedded snapshot's checksum recomputed when the
 * header's sizes locate it, then the checkpoint's own, so the checks behind
 * both checksums are reached. Each against an engine without windows and
 * one with windows of 8. Beyond "no crash, no sanitizer report":
 *   - a decoded checkpoint has terminated names and a snapshot inside the
 *     input, and encodes back to a block that decodes to the same fields;
 *   - a restored engine takes ticks, and its own snapshot restores again.
 *
 * The seeds in fuzz/corpus/checkpoint/ are checkpoints made by the engine
 * with the configuration below (0, 1 and 3 symbols, windows 0 and 8). After
 * a change of the snapshot or checkpoint layout, write them again with
 *   PE_FUZZ_WRITE_SEEDS=fuzz/corpus/checkpoint build-fuzz/fuzz/fuzz_checkpoint
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_engine.h"
#include "pe/checkpoint.h"
#include "pe/engine.h"
#include "pe/error.h"

/* The checksum of snapshots and checkpoints (src/core/hash.h, not public):
 * declared here so that forged inputs can carry a valid one. */
uint64_t pe__hash64(const void *data, size_t len, uint64_t seed);

/* Offsets of the checkpoint layout (src/io/checkpoint.c). */
#define CK_FIXED 80u
#define CK_TLEN 60u
#define CK_SLEN 64u
#define CK_SNAP 72u

/* The engine's snapshot in a malloc'd buffer. */
static void *snapshot_of(const pe_engine_t *e, size_t *len) {
  *len = pe_engine_snapshot_size(e);
  void *snap = malloc(*len);
  if (snap == NULL || pe_engine_snapshot(e, snap, *len, len) != PE_OK) {
    abort();
  }
  return snap;
}

static void check_round_trip(const pe_checkpoint_t *c) {
  size_t cap = pe_checkpoint_size(c);
  void *buf = malloc(cap);
  size_t len;
  pe_checkpoint_t d;
  char err[256];
  if (buf == NULL || pe_checkpoint_encode(c, buf, cap, &len) != PE_OK ||
      pe_checkpoint_decode(buf, len, &d, err, sizeof err) != PE_OK) {
    abort();
  }
  if (memcmp(&d.last_id, &c->last_id, sizeof d.last_id) != 0 ||
      d.position != c->position || d.rejects_offset != c->rejects_offset ||
      d.created_ns != c->created_ns ||
      memcmp(d.counter, c->counter, sizeof d.counter) != 0 ||
      strcmp(d.ticks_stream, c->ticks_stream) != 0 ||
      strcmp(d.signals_stream, c->signals_stream) != 0 ||
      d.snapshot_len != c->snapshot_len ||
      memcmp(d.snapshot, c->snapshot, c->snapshot_len) != 0) {
    abort();
  }
  free(buf);
}

static void try_restore(const pe_checkpoint_t *c, uint32_t window) {
  pe_engine_t *e = fuzz_engine_new(window);
  if (pe_engine_restore(e, c->snapshot, c->snapshot_len) == PE_OK) {
    fuzz_push_ticks(e, 64, 4);
    size_t len;
    void *snap = snapshot_of(e, &len);
    pe_engine_t *again = fuzz_engine_new(window);
    if (pe_engine_restore(again, snap, len) != PE_OK) {
      abort(); /* a loaded state that does not survive its own snapshot */
    }
    free(snap);
    pe_engine_destroy(again);
  }
  pe_engine_destroy(e);
}

static void try_input(const uint8_t *data, size_t size) {
  pe_checkpoint_t c;
  char err[256];
  memset(err, 0x55, sizeof err);
  if (pe_checkpoint_decode(data, size, &c, err, sizeof err) != PE_OK) {
    if (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0') {
      abort(); /* a refusal without a reason */
    }
    return;
  }
  const uint8_t *snap = c.snapshot;
  if (memchr(c.ticks_stream, '\0', sizeof c.ticks_stream) == NULL ||
      memchr(c.signals_stream, '\0', sizeof c.signals_stream) == NULL ||
      snap < data || c.snapshot_len > size ||
      snap + c.snapshot_len > data + size) {
    abort();
  }
  check_round_trip(&c);
  for (uint32_t window = 0; window <= 8; window += 8) {
    try_restore(&c, window);
  }
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

/* Both checksums made valid, where the header lets the snapshot be found. */
static void forge(uint8_t *p, size_t size) {
  if (size >= CK_FIXED + 8u) {
    uint64_t off = CK_FIXED + 8u * PE_CHECKPOINT_COUNTERS +
                   (uint64_t)get32(p + CK_TLEN) + (uint64_t)get32(p + CK_SLEN);
    uint64_t snap = get64(p + CK_SNAP);
    if (snap >= 8 && snap <= size && off <= size - snap) {
      uint8_t *s = p + off;
      uint64_t sum = pe__hash64(s, (size_t)snap - 8, 0);
      memcpy(s + snap - 8, &sum, sizeof sum); /* the machine's order */
    }
  }
  put64(p + size - 8, pe__hash64(p, size - 8, 0));
}

/* Writes the seeds: checkpoints of engines fed 0, 40 and 200 ticks over 0,
 * 1 and 3 symbols, with windows 0 and 8. */
static void write_seeds(const char *dir) {
  static const int shapes[][2] = {{0, 1}, {40, 1}, {200, 3}};
  for (uint32_t window = 0; window <= 8; window += 8) {
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
      pe_engine_t *e = fuzz_engine_new(window);
      fuzz_push_ticks(e, shapes[k][0], shapes[k][1]);
      pe_checkpoint_t c;
      memset(&c, 0, sizeof c);
      c.last_id.ms = 1700000000000u + (uint64_t)shapes[k][0];
      c.last_id.seq = 3;
      c.position = (uint64_t)shapes[k][0];
      c.rejects_offset = 27;
      c.created_ns = 1700000000123456789LL;
      c.counter[0] = (uint64_t)shapes[k][0];
      snprintf(c.ticks_stream, sizeof c.ticks_stream, "ticks:fuzz");
      snprintf(c.signals_stream, sizeof c.signals_stream, "signals:fuzz");
      c.snapshot = snapshot_of(e, &c.snapshot_len);
      size_t cap = pe_checkpoint_size(&c), len;
      void *buf = malloc(cap);
      char path[512];
      snprintf(path, sizeof path, "%s/seed_w%u_t%d_s%d", dir, window,
               shapes[k][0], shapes[k][1]);
      FILE *f = fopen(path, "wb");
      if (buf == NULL || pe_checkpoint_encode(&c, buf, cap, &len) != PE_OK ||
          f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
      }
      free(buf);
      free((void *)c.snapshot);
      pe_engine_destroy(e);
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("PE_FUZZ_WRITE_SEEDS");
  if (dir != NULL) {
    write_seeds(dir);
    exit(0);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try_input(data, size);
  if (size < 16) {
    return 0;
  }
  uint8_t *forged = malloc(size);
  if (forged == NULL) {
    return 0;
  }
  memcpy(forged, data, size);
  forge(forged, size);
  try_input(forged, size);
  free(forged);
  return 0;
}
