/* A minimal test harness: checks that report file, line and both values,
 * and a main that runs each test function and exits non-zero on a failure. */
#ifndef PE_TEST_H
#define PE_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pe_test_failures = 0;

#define PE_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      pe_test_failures++;                                                      \
    }                                                                          \
  } while (0)

#define PE_CHECK_INT(a, b)                                                     \
  do {                                                                         \
    long long pe__a = (long long)(a), pe__b = (long long)(b);                  \
    if (pe__a != pe__b) {                                                      \
      fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__,   \
              #a, #b, pe__a, pe__b);                                           \
      pe_test_failures++;                                                      \
    }                                                                          \
  } while (0)

#define PE_CHECK_STR(a, b)                                                     \
  do {                                                                         \
    const char *pe__a = (a), *pe__b = (b);                                     \
    if (pe__a == NULL || pe__b == NULL || strcmp(pe__a, pe__b) != 0) {         \
      fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__,         \
              __LINE__, #a, #b, pe__a ? pe__a : "(null)",                      \
              pe__b ? pe__b : "(null)");                                       \
      pe_test_failures++;                                                      \
    }                                                                          \
  } while (0)

/* |a - b| <= tol * max(1, |b|); NaN equals only NaN. */
#define PE_CHECK_NEAR(a, b, tol)                                               \
  do {                                                                         \
    double pe__a = (a), pe__b = (b);                                           \
    int pe__ok = (isnan(pe__a) && isnan(pe__b)) ||                             \
                 fabs(pe__a - pe__b) <= (tol)*fmax(1.0, fabs(pe__b));          \
    if (!pe__ok) {                                                             \
      fprintf(stderr, "%s:%d: %s ~ %s: %.17g != %.17g (tol %g)\n", __FILE__,   \
              __LINE__, #a, #b, pe__a, pe__b, (double)(tol));                  \
      pe_test_failures++;                                                      \
    }                                                                          \
  } while (0)

/* Bit-identical doubles (NaN equals NaN). */
#define PE_CHECK_SAME(a, b)                                                    \
  do {                                                                         \
    double pe__a = (a), pe__b = (b);                                           \
    if (!((isnan(pe__a) && isnan(pe__b)) ||                                    \
          memcmp(&pe__a, &pe__b, sizeof pe__a) == 0)) {                        \
      fprintf(stderr,                                                          \
              "%s:%d: %s is not bit-identical to %s: %.17g vs %.17g\n",        \
              __FILE__, __LINE__, #a, #b, pe__a, pe__b);                       \
      pe_test_failures++;                                                      \
    }                                                                          \
  } while (0)

typedef struct pe_test_case {
  const char *name;
  void (*fn)(void);
} pe_test_case_t;

#define PE_TEST_MAIN(...)                                                      \
  int main(int argc, char **argv) {                                            \
    static const pe_test_case_t cases[] = {__VA_ARGS__};                       \
    size_t n = sizeof cases / sizeof cases[0];                                 \
    for (size_t i = 0; i < n; i++) {                                           \
      if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) {                   \
        continue;                                                              \
      }                                                                        \
      int before = pe_test_failures;                                           \
      cases[i].fn();                                                           \
      printf("%s %s\n", pe_test_failures == before ? "ok  " : "FAIL",          \
             cases[i].name);                                                   \
    }                                                                          \
    return pe_test_failures == 0 ? 0 : 1;                                      \
  }

#define PE_TEST(fn)                                                            \
  { #fn, fn }

#endif
