/* Field parsers shared by every input format (CSV rows, stream entries).
 *
 * They read a byte range (not NUL-terminated), tolerate spaces and tabs
 * around the value, allocate nothing and touch no file or socket. */
#ifndef PE_PARSE_H
#define PE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How an epoch timestamp's number is scaled. AUTO decides by magnitude:
 * below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
 * otherwise nanoseconds. */
typedef enum pe_ts_unit {
  PE_TS_AUTO = 0,
  PE_TS_S,
  PE_TS_MS,
  PE_TS_US,
  PE_TS_NS
} pe_ts_unit_t;

/* "auto", "s", "ms", "us", "ns" -> unit; PE_EINVAL for anything else. */
int pe_ts_unit_parse(const char *name, pe_ts_unit_t *unit);

/* Decimal number: optional sign, digits with an optional fraction and
 * exponent, or nan / inf / infinity in any case. Correctly rounded. Returns
 * PE_ENUMBER for anything else, including an empty field. */
int pe_parse_double(const char *s, size_t len, double *out);

/* Timestamp to ns since the epoch, UTC: an integer or fractional epoch number
 * scaled by unit (fractions converted exactly, truncated below 1 ns), or
 * ISO-8601 "YYYY-MM-DD[T ]hh:mm:ss[.fraction][Z|+hh:mm|+hhmm|-hh:mm]" (no
 * suffix means UTC). Returns PE_ETIMESTAMP when unparsable or outside the
 * years 1678..2261 that int64 nanoseconds can hold. */
int pe_parse_timestamp(const char *s, size_t len, pe_ts_unit_t unit,
                       int64_t *ts_ns);

#ifdef __cplusplus
}
#endif
#endif
