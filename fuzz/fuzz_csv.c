/* libFuzzer target for the CSV tick parser. Beyond "no crash, no sanitizer
 * report", it checks two properties: parsing the input in one piece and in
 * chunks whose sizes come from the input itself yields the same events (also
 * with ticks handed over in batches), and the fused fast row parser yields
 * the same events as the general one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pe/csv.h"
#include "pe/error.h"

typedef struct digest {
  uint64_t h;
  uint64_t events;
} digest_t;

static void mix(digest_t *d, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    d->h = (d->h ^ b[i]) * 0x100000001B3ull;
  }
}

static int on_tick(void *ctx, const pe_tick_t *t, uint64_t line_no,
                   const char *line, size_t len) {
  digest_t *d = ctx;
  d->events++;
  mix(d, &line_no, sizeof line_no);
  mix(d, &t->ts_ns, sizeof t->ts_ns);
  mix(d, &t->recv_ts_ns, sizeof t->recv_ts_ns);
  mix(d, &t->price, sizeof t->price);
  mix(d, &t->volume, sizeof t->volume);
  mix(d, t->symbol, sizeof t->symbol);
  mix(d, line, len);
  if (t->symbol_len == 0 || t->symbol_len > PE_SYMBOL_MAX || !(t->price > 0) ||
      !(t->volume >= 0)) {
    abort(); /* the parser let an invalid tick through */
  }
  return 0;
}

static int on_reject(void *ctx, int err, uint64_t line_no, const char *line,
                     size_t len) {
  digest_t *d = ctx;
  d->events++;
  if (pe_reject_from_error(err) < 0) {
    abort(); /* a rejection without a reason */
  }
  mix(d, &err, sizeof err);
  mix(d, &line_no, sizeof line_no);
  mix(d, line, len);
  return 0;
}

static int on_ticks(void *ctx, const pe_tick_t *ticks, const pe_csv_row_t *rows,
                    uint32_t n) {
  if (n == 0 || n > PE_CSV_BATCH) {
    abort(); /* a batch out of bounds */
  }
  for (uint32_t i = 0; i < n; i++) {
    on_tick(ctx, &ticks[i], rows[i].line_no, rows[i].line, rows[i].len);
  }
  return 0;
}

/* Parses data fed in pieces of chunk bytes, handing ticks over one at a
 * time or, when batched, in batches, into d; returns the parser's status. */
static int parse(const uint8_t *data, size_t size, size_t chunk, uint32_t flags,
                 int batched, digest_t *d) {
  pe_csv_options_t opt = {PE_TS_AUTO, 256, flags};
  pe_csv_t *c = NULL;
  if (pe_csv_create(&opt, &c) != PE_OK) {
    abort();
  }
  pe_csv_handler_t h = {d, on_tick, on_reject};
  pe_csv_batch_handler_t hb = {d, on_ticks, on_reject};
  int rc = PE_OK;
  for (size_t i = 0; i < size && rc == PE_OK; i += chunk) {
    size_t n = size - i < chunk ? size - i : chunk;
    const char *piece = (const char *)data + i;
    rc = batched ? pe_csv_feed_batch(c, piece, n, &hb)
                 : pe_csv_feed(c, piece, n, &h);
  }
  if (rc == PE_OK) {
    rc = batched ? pe_csv_finish_batch(c, &hb) : pe_csv_finish(c, &h);
  }
  pe_csv_destroy(c);
  return rc;
}

/* The parse of the whole input against another way of parsing it: the
 * same status, the same events. */
static int same_outcome(int rc, const digest_t *d, int rc_whole,
                        const digest_t *whole) {
  return rc == rc_whole && d->h == whole->h && d->events == whole->events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  digest_t whole = {0xCBF29CE484222325ull, 0};
  int rc_whole = parse(data, size, size, 0, 0, &whole);
  size_t chunk = (size_t)(data[0] % 13) + 1;
  digest_t pieces = {0xCBF29CE484222325ull, 0};
  int rc_pieces = parse(data, size, chunk, 0, 0, &pieces);
  if (!same_outcome(rc_pieces, &pieces, rc_whole, &whole)) {
    abort(); /* chunking changed the outcome */
  }
  digest_t batched = {0xCBF29CE484222325ull, 0};
  int rc_batched = parse(data, size, chunk, 0, 1, &batched);
  if (!same_outcome(rc_batched, &batched, rc_whole, &whole)) {
    abort(); /* ticks in batches changed the outcome */
  }
  digest_t general = {0xCBF29CE484222325ull, 0};
  int rc_general = parse(data, size, size, PE_CSV_GENERAL_ONLY, 0, &general);
  if (!same_outcome(rc_general, &general, rc_whole, &whole)) {
    abort(); /* the fused row parser disagrees with the general one */
  }
  return 0;
}
