/* Prints N doubles as "hexbits text" lines, text as pe__put_double writes
 * it, for test_textfmt_repr.py to compare with Python's repr(float): random
 * bit patterns (finite ones), random magnitudes and exchange-style prices.
 * Usage: textfmt_print N */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/textfmt.h"
#include "splitmix.h"

static uint64_t pe__rng = 0x7e57f00du;

static uint64_t pe__next(void) { return pe_splitmix64(&pe__rng); }

static double pe__unit(void) { return (double)(pe__next() >> 11) * 0x1p-53; }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  if (n <= 0) {
    fprintf(stderr, "usage: textfmt_print N\n");
    return 2;
  }
  for (long i = 0; i < n; i++) {
    double v;
    uint64_t bits = pe__next();
    switch (i % 3) {
    case 0:
      memcpy(&v, &bits, sizeof v);
      break;
    case 1:
      v = pow(10.0, -30.0 + 60.0 * pe__unit());
      break;
    default: {
      double scale = pow(10.0, (double)(bits % 9));
      v = round(pe__unit() * 1e5 * scale) / scale;
      break;
    }
    }
    if (!isfinite(v)) {
      continue;
    }
    memcpy(&bits, &v, sizeof bits);
    char buf[64];
    size_t pos = 0;
    pe__put_double(buf, sizeof buf - 1, &pos, v);
    buf[pos] = '\0';
    printf("%016" PRIx64 " %s\n", bits, buf);
  }
  return ferror(stdout) || fflush(stdout) != 0;
}
