/* .npy headers (pe/npy.h): what each missing or unsupported key is reported
 * as. The files are written here byte by byte, as numpy.save lays them out
 * (format 1.0: magic, version, header length, a dict padded to 64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/npy.h"
#include "pe_test.h"

/* A one-float32 .npy with `dict` as its header; returns its length. */
static size_t pe__npy_file(const char *dict, unsigned char *buf, size_t cap) {
  size_t dl = strlen(dict);
  size_t hl = (10 + dl + 1 + 63) / 64 * 64 - 10;
  if (10 + hl + 4 > cap) {
    return 0;
  }
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(hl & 0xFF);
  buf[9] = (unsigned char)(hl >> 8);
  memset(buf + 10, ' ', hl);
  memcpy(buf + 10, dict, dl);
  buf[10 + hl - 1] = '\n';
  float one = 1.0f;
  memcpy(buf + 10 + hl, &one, 4);
  return 10 + hl + 4;
}

static int pe__parse(const char *dict, char *err, size_t cap) {
  unsigned char buf[256];
  size_t len = pe__npy_file(dict, buf, sizeof buf);
  pe_npy_t a;
  return pe_npy_parse(buf, len, &a, err, cap);
}

static void test_fortran_order_key(void) {
  char err[256];
  PE_CHECK_INT(pe__parse("{'descr': '<f4', 'fortran_order': False, 'shape': "
                         "(1,), }",
                         err, sizeof err),
               PE_OK);
  PE_CHECK_INT(pe__parse("{'descr': '<f4', 'fortran_order': True, 'shape': "
                         "(1,), }",
                         err, sizeof err),
               PE_EUNSUPPORTED);
  PE_CHECK(strstr(err, "Fortran order") != NULL);
  /* No fortran_order at all: a header without the key, not Fortran. */
  PE_CHECK_INT(pe__parse("{'descr': '<f4', 'shape': (1,), }", err, sizeof err),
               PE_EPARSE);
  PE_CHECK_STR(err, "the .npy header has no fortran_order");
}

PE_TEST_MAIN(PE_TEST(test_fortran_order_key))
