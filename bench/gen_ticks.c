/* Writes N synthetic ticks as CSV (header ts,symbol,price,volume) to stdout:
 * S symbols (SYM000...), a random walk each, exponential-ish gaps, sizes in
 * (0.01, 5]. Deterministic for (N, S): the input of the end-to-end replay
 * benchmark, made fresh on the machine that runs it.
 *
 *   gen_ticks N [S]   (S defaults to 500) */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gen_ticks N [SYMBOLS]\n");
    return 2;
  }
  uint64_t n = strtoull(argv[1], NULL, 10);
  int symbols = argc > 2 ? atoi(argv[2]) : 500;
  if (symbols < 1 || symbols > 100000) {
    fprintf(stderr, "gen_ticks: SYMBOLS must be in 1..100000\n");
    return 2;
  }
  double *price = malloc((size_t)symbols * sizeof *price);
  if (price == NULL) {
    return 1;
  }
  for (int k = 0; k < symbols; k++) {
    price[k] = 10.0 + k;
  }
  static char out[1 << 20];
  setvbuf(stdout, out, _IOFBF, sizeof out);
  printf("ts,symbol,price,volume\n");
  uint64_t s = 1;
  int64_t ts = 1700000000000000000LL;
  for (uint64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((s >> 33) % (uint64_t)symbols);
    double u = (double)(s >> 11) * 0x1.0p-53;
    price[k] *= 1.0 + (u - 0.5) * 0.002;
    ts += (int64_t)(u * 2000000.0);
    printf("%" PRId64 ",SYM%03d,%.4f,%.3f\n", ts, k, price[k], 0.01 + u * 5.0);
  }
  free(price);
  return fflush(stdout) == 0 ? 0 : 1;
}
