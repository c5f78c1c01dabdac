/* libFuzzer target for engine snapshots (pe_engine_restore). Each input is
 * tried as it is and with its trailing checksum recomputed, as someone who
 * edits a snapshot would do, so that the range checks behind the checksum
 * are reached; each against an engine without windows and one with windows
 * of 8. A restore must refuse cleanly, or leave an engine that takes ticks
 * and whose own snapshot restores again: no crash, no sanitizer report. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_engine.h"
#include "pe/engine.h"
#include "pe/error.h"

/* The snapshot checksum (src/core/hash.h, not public): declared here so
 * that forged inputs can carry a valid one. */
uint64_t pe__hash64(const void *data, size_t len, uint64_t seed);

static void pe__try(const uint8_t *data, size_t size, uint32_t window) {
  pe_engine_t *e = fuzz_engine_new(window);
  if (pe_engine_restore(e, data, size) == PE_OK) {
    fuzz_push_ticks(e, 64, 4);
    size_t len = pe_engine_snapshot_size(e);
    void *snap = malloc(len);
    pe_engine_t *again = fuzz_engine_new(window);
    if (snap == NULL || pe_engine_snapshot(e, snap, len, &len) != PE_OK ||
        pe_engine_restore(again, snap, len) != PE_OK) {
      abort(); /* a loaded state that does not survive its own snapshot */
    }
    free(snap);
    pe_engine_destroy(again);
  }
  pe_engine_destroy(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (uint32_t window = 0; window <= 8; window += 8) {
    pe__try(data, size, window);
  }
  if (size < 16) {
    return 0;
  }
  uint8_t *forged = malloc(size);
  if (forged == NULL) {
    return 0;
  }
  memcpy(forged, data, size);
  uint64_t sum = pe__hash64(forged, size - 8, 0);
  memcpy(forged + size - 8, &sum, sizeof sum);
  for (uint32_t window = 0; window <= 8; window += 8) {
    pe__try(forged, size, window);
  }
  free(forged);
  return 0;
}
