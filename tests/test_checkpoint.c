/* Checkpoint encoding (pe/checkpoint.h): round trip, and every kind of
 * damage refused. */
#include <stdint.h>
#include <stdlib.h>

#include "pe/checkpoint.h"
#include "pe/error.h"
#include "pe_test.h"

static void pe__sample(pe_checkpoint_t *c, const unsigned char *snap,
                       size_t snap_len) {
  memset(c, 0, sizeof *c);
  c->last_id.ms = 1704205800012ull;
  c->last_id.seq = 3;
  c->position = 123456789;
  c->rejects_offset = 4242;
  c->created_ns = 1704205800123456789LL;
  for (int i = 0; i < PE_CHECKPOINT_COUNTERS; i++) {
    c->counter[i] = (uint64_t)i * 1000003u;
  }
  snprintf(c->ticks_stream, sizeof c->ticks_stream, "ticks:global");
  snprintf(c->signals_stream, sizeof c->signals_stream, "signals:global");
  c->snapshot = snap;
  c->snapshot_len = snap_len;
}

static void test_round_trip(void) {
  unsigned char snap[300];
  for (size_t i = 0; i < sizeof snap; i++) {
    snap[i] = (unsigned char)(i * 7);
  }
  pe_checkpoint_t c;
  pe__sample(&c, snap, sizeof snap);
  size_t size = pe_checkpoint_size(&c);
  unsigned char *buf = malloc(size);
  size_t len = 0;
  PE_CHECK_INT(pe_checkpoint_encode(&c, buf, size - 1, &len), PE_EFULL);
  PE_CHECK_INT(len, size);
  PE_CHECK_INT(pe_checkpoint_encode(&c, buf, size, &len), PE_OK);
  /* Little-endian fields at documented offsets. */
  PE_CHECK(memcmp(buf, "PECKPT\r\n", 8) == 0);
  PE_CHECK_INT(buf[8], PE_CHECKPOINT_VERSION);
  PE_CHECK_INT(buf[32], 3); /* last_id.seq */

  pe_checkpoint_t d;
  char err[256];
  PE_CHECK_INT(pe_checkpoint_decode(buf, len, &d, err, sizeof err), PE_OK);
  PE_CHECK(d.last_id.ms == c.last_id.ms && d.last_id.seq == c.last_id.seq);
  PE_CHECK(d.position == c.position && d.rejects_offset == c.rejects_offset);
  PE_CHECK_INT(d.created_ns, c.created_ns);
  PE_CHECK(memcmp(d.counter, c.counter, sizeof c.counter) == 0);
  PE_CHECK_STR(d.ticks_stream, "ticks:global");
  PE_CHECK_STR(d.signals_stream, "signals:global");
  PE_CHECK_INT(d.snapshot_len, sizeof snap);
  PE_CHECK(memcmp(d.snapshot, snap, sizeof snap) == 0);
  PE_CHECK((const unsigned char *)d.snapshot > buf &&
           (const unsigned char *)d.snapshot < buf + len);
  free(buf);
}

static void test_damage(void) {
  unsigned char snap[64] = {1, 2, 3};
  pe_checkpoint_t c;
  pe__sample(&c, snap, sizeof snap);
  size_t size = pe_checkpoint_size(&c);
  unsigned char *buf = malloc(size + 1);
  size_t len;
  PE_CHECK_INT(pe_checkpoint_encode(&c, buf, size, &len), PE_OK);
  pe_checkpoint_t d;
  char err[256];
  /* Every single-bit flip is caught; the version byte as a version. */
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      buf[i] ^= (unsigned char)(1u << bit);
      int rc = pe_checkpoint_decode(buf, len, &d, err, sizeof err);
      if (rc == PE_OK) {
        fprintf(stderr, "flip of byte %zu bit %d accepted\n", i, bit);
        pe_test_failures++;
      }
      buf[i] ^= (unsigned char)(1u << bit);
    }
  }
  /* Every truncation is caught. */
  for (size_t cut = 0; cut < len; cut++) {
    if (pe_checkpoint_decode(buf, cut, &d, err, sizeof err) != PE_ECORRUPT) {
      fprintf(stderr, "cut to %zu bytes accepted\n", cut);
      pe_test_failures++;
    }
  }
  PE_CHECK_INT(pe_checkpoint_decode(buf, len / 2, &d, err, sizeof err),
               PE_ECORRUPT);
  PE_CHECK(strstr(err, "truncated") != NULL);
  buf[len] = 0;
  PE_CHECK_INT(pe_checkpoint_decode(buf, len + 1, &d, err, sizeof err),
               PE_ECORRUPT);
  PE_CHECK(strstr(err, "trailing") != NULL);
  buf[8] = 2;
  PE_CHECK_INT(pe_checkpoint_decode(buf, len, &d, err, sizeof err),
               PE_EVERSION);
  PE_CHECK(strstr(err, "version 2") != NULL);
  buf[8] = PE_CHECKPOINT_VERSION;
  buf[len / 2] ^= 1;
  PE_CHECK_INT(pe_checkpoint_decode(buf, len, &d, err, sizeof err),
               PE_ECORRUPT);
  PE_CHECK(strstr(err, "checksum mismatch") != NULL);
  PE_CHECK_INT(pe_checkpoint_decode("hello", 5, &d, err, sizeof err),
               PE_ECORRUPT);
  PE_CHECK(strstr(err, "not a pattern-engine checkpoint") != NULL);
  free(buf);
}

static void test_names(void) {
  pe_checkpoint_t c;
  pe__sample(&c, NULL, 0);
  memset(c.ticks_stream, 'x', sizeof c.ticks_stream); /* no NUL: too long */
  unsigned char buf[2048];
  size_t len;
  PE_CHECK_INT(pe_checkpoint_encode(&c, buf, sizeof buf, &len), PE_EINVAL);
  memset(c.ticks_stream, 'x', PE_CHECKPOINT_NAME_MAX);
  c.ticks_stream[PE_CHECKPOINT_NAME_MAX] = '\0';
  PE_CHECK_INT(pe_checkpoint_encode(&c, buf, sizeof buf, &len), PE_OK);
  pe_checkpoint_t d;
  char err[256];
  PE_CHECK_INT(pe_checkpoint_decode(buf, len, &d, err, sizeof err), PE_OK);
  PE_CHECK_INT(strlen(d.ticks_stream), PE_CHECKPOINT_NAME_MAX);
  PE_CHECK_INT(d.snapshot_len, 0);
}

PE_TEST_MAIN(PE_TEST(test_round_trip), PE_TEST(test_damage),
             PE_TEST(test_names))
