/* libFuzzer target for the stream entry decoder (pe/stream.h).
 *
 * The input is an entry written as lines: name, value, name, value, ...
 * (a missing last value is empty), so the corpus in
 * fuzz/corpus/stream_entry/ stays readable. Beyond "no crash, no sanitizer
 * report" it checks that an accepted tick is valid, that a rejection names a
 * reason and a terminated field, that decoding is deterministic, and that an
 * entry id, when the first line is one, formats back to what parses the
 * same. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  const char *end = p + size;
  pe_stream_field_t f[PE_STREAM_MAX_FIELDS];
  size_t n = 0;
  while (p < end && n < PE_STREAM_MAX_FIELDS) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *ne = nl ? nl : end;
    f[n].name = p;
    f[n].name_len = (size_t)(ne - p);
    p = nl ? nl + 1 : end;
    nl = memchr(p, '\n', (size_t)(end - p));
    const char *ve = nl ? nl : end;
    f[n].value = p;
    f[n].value_len = (size_t)(ve - p);
    p = nl ? nl + 1 : end;
    n++;
  }

  pe_tick_t a, b;
  pe_stream_why_t wa, wb;
  memset(&a, 0x55, sizeof a); /* different garbage: decode must set it all */
  memset(&b, 0xAA, sizeof b);
  pe_stream_options_t opt = {PE_TS_AUTO};
  int ra = pe_stream_entry_decode(f, n, &opt, &a, &wa);
  int rb = pe_stream_entry_decode(f, n, NULL, &b, &wb);
  if (ra != rb) {
    abort();
  }
  if (ra == PE_OK) {
    if (a.symbol_len == 0 || a.symbol_len > PE_SYMBOL_MAX ||
        a.symbol[a.symbol_len] != '\0' || !(a.price > 0.0) ||
        !isfinite(a.price) || !(a.volume >= 0.0) || !isfinite(a.volume) ||
        a.ts_ns != b.ts_ns || a.recv_ts_ns != b.recv_ts_ns ||
        memcmp(&a.price, &b.price, sizeof a.price) != 0 ||
        memcmp(&a.volume, &b.volume, sizeof a.volume) != 0 ||
        a.symbol_len != b.symbol_len ||
        memcmp(a.symbol, b.symbol, sizeof a.symbol) != 0) {
      abort();
    }
  } else {
    if (wa.reason < 0 || wa.reason >= PE_STREAM_REJECT_COUNT ||
        memchr(wa.field, '\0', sizeof wa.field) == NULL ||
        pe_stream_reject_from_error(ra) != wa.reason ||
        wa.reason != wb.reason || strcmp(wa.field, wb.field) != 0) {
      abort();
    }
  }

  if (n > 0) {
    pe_stream_id_t id, again;
    if (pe_stream_id_parse(f[0].name, f[0].name_len, &id) == PE_OK) {
      char buf[PE_STREAM_ID_MAX];
      size_t len = pe_stream_id_format(id, buf, sizeof buf);
      if (len >= sizeof buf || pe_stream_id_parse(buf, len, &again) != PE_OK ||
          pe_stream_id_cmp(id, again) != 0) {
        abort();
      }
    }
  }
  return 0;
}
