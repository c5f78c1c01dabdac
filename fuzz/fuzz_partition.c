/* libFuzzer target for the partition map's canonical text (pe/partition.h),
 * the form a process reads back from Redis (pe:partitions).
 *
 * Beyond "no crash, no sanitizer report": an accepted text is canonical (the
 * map writes back exactly the input), its digest is FNV-1a 64 of it, every
 * placed symbol's lookup is a partition below the count, and a rejection
 * leaves no map and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/partition.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pe_partition_map_t *m = NULL;
  char err[256] = "";
  int rc =
      pe_partition_map_parse((const char *)data, size, &m, err, sizeof err);
  if (rc != PE_OK) {
    if (m != NULL || err[0] == '\0' || (rc != PE_EPARSE && rc != PE_ENOMEM)) {
      abort();
    }
    return 0;
  }
  size_t len = 0;
  const char *text = pe_partition_map_text(m, &len);
  if (len != size || memcmp(text, data, size) != 0 ||
      pe_partition_map_digest(m) != pe_fnv1a64(data, size)) {
    abort();
  }
  uint32_t count = pe_partition_map_count(m);
  /* Each "<p> <symbol>" line after the three of the header. */
  const char *p = text;
  const char *end = text + len;
  for (int header = 0; header < 3; header++) {
    p = memchr(p, '\n', (size_t)(end - p)) + 1;
  }
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *sp = memchr(p, ' ', (size_t)(nl - p));
    uint32_t want = (uint32_t)strtoul(p, NULL, 10);
    if (pe_partition_map_lookup(m, sp + 1, (size_t)(nl - sp - 1)) != want ||
        want >= count) {
      abort();
    }
    p = nl + 1;
  }
  pe_partition_map_destroy(m);
  return 0;
}
