/* The shortest decimal that reads back as the same double (internal).
 *
 * For the text writers: features, signals and stream fields print each
 * double as the fewest significant digits that strtod turns back into the
 * very same value (490.96, not 490.95999999999998), the closest such
 * decimal when there are several, ties to an even last digit. The digits
 * are the ones Python's repr(float) prints, found with the Schubfach
 * algorithm (R. Giulietti, 2020) over the table that
 * scripts/gen-pow10-table.py writes. No allocation, no locale, no libc
 * formatting: tens of nanoseconds a value. */
#ifndef PE_IO_DTOA_H
#define PE_IO_DTOA_H

#include <stddef.h>
#include <stdint.h>

/* Longest text pe__dtoa_shortest writes: "-" + 17 digits + "." + "e-324"
 * would be 24; callers count 32. */
#define PE__DTOA_MAX 32
/* Bytes from out that pe__dtoa_shortest and pe__dtoa_put may overwrite:
 * the text, and scratch past it (its digits are stored in whole words). */
#define PE__DTOA_ROOM 40

/* |v| = digits * 10^exp10, with digits the shortest (no trailing zeros);
 * v finite and not zero. */
typedef struct pe__decimal {
  uint64_t digits; /* below 10^17 */
  int exp10;
} pe__decimal_t;

pe__decimal_t pe__shortest_decimal(double v);

/* Writes v, finite, at out (PE__DTOA_ROOM bytes of room, no NUL) and
 * returns the length, at most PE__DTOA_MAX. The layout is Python's repr
 * without its ".0" on integral values: plain decimals when the first
 * digit's power of ten x is in [-4, 16) ("490.96", "0.0001", "61837",
 * "1234567890123456"), else scientific with a sign and at least two
 * exponent digits ("1e-05", "1e+16", "5e-324", "1.7976931348623157e+308").
 * Zeros are "0" and "-0". */
size_t pe__dtoa_shortest(char *out, double v);

/* As pe__dtoa_shortest, any v: one that is not finite (NaN, either
 * infinity) is "nan". Returns the end of the text. */
char *pe__dtoa_put(char *out, double v);

/* The CSV fields of n values: ",v" each, as pe__dtoa_put writes v, at out,
 * which has room for n * (1 + PE__DTOA_MAX) + PE__DTOA_ROOM - PE__DTOA_MAX
 * bytes; returns the end. Hot path (the features writer's rows): one loop
 * with the formatting inlined. */
char *pe__dtoa_fields(char *out, const double *v, size_t n);

#endif
