/* What the snapshot and checkpoint fuzzers share: a small engine and a
 * fixed stream of ticks to push through it (after a restore, or to make
 * seeds). Aborts on anything that cannot fail with valid settings, so the
 * fuzzer reports it. */
#ifndef PE_FUZZ_ENGINE_H
#define PE_FUZZ_ENGINE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pe/engine.h"
#include "pe/error.h"

/* An engine of 8 symbols with windows of `window` ticks (0: none). */
static inline pe_engine_t *fuzz_engine_new(uint32_t window) {
  pe_engine_config_t c;
  pe_engine_config_init(&c);
  c.max_symbols = 8;
  pe_engine_t *e = NULL;
  char err[256];
  if (pe_engine_create(&c, &e, err, sizeof err) != PE_OK ||
      pe_engine_set_window(e, window) != PE_OK) {
    abort();
  }
  return e;
}

/* n ticks, one a second from 2023-11-14, over the first n_symbols (1 to 4)
 * of A, B, C, D in turn. */
static inline void fuzz_push_ticks(pe_engine_t *e, int n, int n_symbols) {
  static const char *const syms[] = {"A", "B", "C", "D"};
  pe_tick_out_t out;
  for (int i = 0; i < n; i++) {
    pe_tick_t t;
    memset(&t, 0, sizeof t);
    t.ts_ns = (int64_t)i * 1000000000LL + 1700000000000000000LL;
    t.recv_ts_ns = INT64_MIN;
    t.price = 100.0 + (double)(i % 7);
    t.volume = 1.0 + (double)(i % 3);
    if (pe_tick_set_symbol(&t, syms[i % n_symbols], 1) != PE_OK) {
      abort();
    }
    (void)pe_engine_push(e, &t, &out);
  }
}

#endif
