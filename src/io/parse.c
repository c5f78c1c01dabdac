/* Field parsers: decimal numbers and timestamps (see pe/parse.h). */
#include "pe/parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/numparse.h"
#include "io/tick_fields.h"
#include "pe/error.h"

int pe_ts_unit_parse(const char *name, pe_ts_unit_t *unit) {
  static const struct {
    const char *name;
    pe_ts_unit_t unit;
  } names[] = {{"auto", PE_TS_AUTO},
               {"s", PE_TS_S},
               {"ms", PE_TS_MS},
               {"us", PE_TS_US},
               {"ns", PE_TS_NS}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(name, names[i].name) == 0) {
      *unit = names[i].unit;
      return PE_OK;
    }
  }
  return PE_EINVAL;
}

static inline int pe__is_space(char c) { return c == ' ' || c == '\t'; }

static inline int pe__is_digit(char c) { return c >= '0' && c <= '9'; }

/* Narrows [*s, *s + *len) to its part without surrounding spaces. */
static inline void pe__trim(const char **s, size_t *len) {
  const char *p = *s;
  const char *end = p + *len;
  while (p < end && pe__is_space(*p)) {
    p++;
  }
  while (end > p && pe__is_space(end[-1])) {
    end--;
  }
  *s = p;
  *len = (size_t)(end - p);
}

#define PE__NUMBER_MAX 128

/* Significant digits kept for strtod when a number is longer than
 * PE__NUMBER_MAX: a decimal that lies halfway between two doubles has at
 * most 767 significant digits, so cutting after 800 and standing a 1 in
 * for a nonzero tail (which then lies strictly between the same two such
 * points as the whole number) rounds exactly as the whole number does. */
#define PE__SIG_KEEP 800

/* The shortened form of a valid number s[0, len) (checked by the caller):
 * [-]0.DIGITS[1]eEXP in buf (PE__SIG_KEEP + 32 bytes), NUL-terminated. */
static void pe__number_shorten(const char *s, size_t len, char *buf) {
  const char *p = s;
  const char *end = s + len;
  size_t n = 0;
  if (*p == '+' || *p == '-') {
    if (*p == '-') {
      buf[n++] = '-';
    }
    p++;
  }
  buf[n++] = '0';
  buf[n++] = '.';
  long exp10 = 0; /* value = 0.DIGITS * 10^exp10 */
  int sig = 0;
  int sticky = 0;
  int point = 0;
  for (; p < end && (pe__is_digit(*p) || *p == '.'); p++) {
    if (*p == '.') {
      point = 1;
      continue;
    }
    if (sig == 0 && *p == '0') {
      exp10 -= point; /* a leading zero after the point */
      continue;
    }
    exp10 += !point; /* a significant digit before the point */
    if (sig < PE__SIG_KEEP) {
      buf[n++] = *p;
      sig++;
    } else {
      sticky |= *p != '0';
    }
  }
  if (sticky) {
    buf[n++] = '1';
  }
  if (sig == 0) {
    buf[n++] = '0';
  }
  if (p < end) { /* 'e' or 'E', a sign, digits */
    p++;
    int eneg = *p == '-';
    if (*p == '+' || *p == '-') {
      p++;
    }
    long e = 0;
    for (; p < end; p++) {
      e = e < 100000 ? e * 10 + (*p - '0') : e;
    }
    exp10 += eneg ? -e : e;
  }
  snprintf(buf + n, 32, "e%ld", exp10);
}

int pe_parse_double(const char *s, size_t len, double *out) {
  pe__trim(&s, &len);
  if (pe__parse_plain(s, s + len, out)) {
    return PE_OK;
  }
  const char *p = s;
  const char *end = s + len;
  int neg = 0;
  if (p < end && (*p == '+' || *p == '-')) {
    neg = *p == '-';
    p++;
  }
  if (p < end && !pe__is_digit(*p) && *p != '.') {
    size_t rest = (size_t)(end - p);
    double v;
    if (pe__name_is(p, rest, "nan")) {
      v = NAN;
    } else if (pe__name_is(p, rest, "inf") ||
               pe__name_is(p, rest, "infinity")) {
      v = INFINITY;
    } else {
      return PE_ENUMBER;
    }
    *out = neg ? -v : v;
    return PE_OK;
  }

  /* Mantissa: up to 19 significant digits exactly; more are only counted. */
  uint64_t mant = 0;
  int sig = 0;
  int dropped = 0; /* significant digits past the 19th */
  int exp10 = 0;
  int digits = 0;
  while (p < end && pe__is_digit(*p)) {
    if (sig < 19) {
      mant = mant * 10 + (uint64_t)(*p - '0');
      sig += mant != 0;
    } else {
      dropped++;
    }
    digits++;
    p++;
  }
  exp10 += dropped;
  if (p < end && *p == '.') {
    p++;
    while (p < end && pe__is_digit(*p)) {
      if (sig < 19) {
        mant = mant * 10 + (uint64_t)(*p - '0');
        sig += mant != 0;
        exp10--;
      } else {
        dropped++;
      }
      digits++;
      p++;
    }
  }
  if (digits == 0) {
    return PE_ENUMBER;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < end && (*p == '+' || *p == '-')) {
      eneg = *p == '-';
      p++;
    }
    if (p == end || !pe__is_digit(*p)) {
      return PE_ENUMBER;
    }
    int e = 0;
    while (p < end && pe__is_digit(*p)) {
      if (e < 100000) {
        e = e * 10 + (*p - '0');
      }
      p++;
    }
    exp10 += eneg ? -e : e;
  }
  if (p != end) {
    return PE_ENUMBER;
  }
  /* Exact in both operands, so one rounding: correctly rounded. */
  if (dropped == 0 && mant <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = (double)mant;
    v = exp10 < 0 ? v / pe__pow10[-exp10] : v * pe__pow10[exp10];
    *out = neg ? -v : v;
    return PE_OK;
  }
  if (mant == 0 && dropped == 0) {
    *out = neg ? -0.0 : 0.0;
    return PE_OK;
  }
  /* Rare: long mantissas and large exponents go through strtod; a number
   * longer than PE__NUMBER_MAX in a shortened form that rounds alike. */
  char buf[PE__SIG_KEEP + 40];
  if (len < PE__NUMBER_MAX) {
    memcpy(buf, s, len);
    buf[len] = '\0';
  } else {
    pe__number_shorten(s, len, buf);
  }
  char *stop = NULL;
  double v = strtod(buf, &stop);
  if (*stop != '\0') {
    return PE_ENUMBER;
  }
  *out = v;
  return PE_OK;
}

/* ---- timestamps ---------------------------------------------------------- */

#define PE__NS_PER_S 1000000000LL

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t pe__days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = (m + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int pe__days_in_month(int64_t y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p. */
static int pe__digits(const char **p, const char *end, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (*p >= end || !pe__is_digit(**p)) {
      return 0;
    }
    v = v * 10 + (**p - '0');
    (*p)++;
  }
  *out = v;
  return 1;
}

static int pe__parse_iso(const char *p, const char *end, int64_t *ts_ns) {
  int year, mon, day, hh, mm, ss;
  if (!pe__digits(&p, end, 4, &year) || p == end || *p++ != '-' ||
      !pe__digits(&p, end, 2, &mon) || p == end || *p++ != '-' ||
      !pe__digits(&p, end, 2, &day) || p == end ||
      (*p != 'T' && *p != 't' && *p != ' ')) {
    return PE_ETIMESTAMP;
  }
  p++;
  if (!pe__digits(&p, end, 2, &hh) || p == end || *p++ != ':' ||
      !pe__digits(&p, end, 2, &mm) || p == end || *p++ != ':' ||
      !pe__digits(&p, end, 2, &ss)) {
    return PE_ETIMESTAMP;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > pe__days_in_month(year, mon) ||
      hh > 23 || mm > 59 || ss > 59) {
    return PE_ETIMESTAMP;
  }
  int64_t frac_ns = 0;
  if (p < end && (*p == '.' || *p == ',')) {
    p++;
    int n = 0;
    int64_t scale = 100000000;
    while (p < end && pe__is_digit(*p)) {
      if (n < 9) {
        frac_ns += (*p - '0') * scale;
        scale /= 10;
      }
      n++;
      p++;
    }
    if (n == 0) {
      return PE_ETIMESTAMP;
    }
  }
  int64_t offset_s = 0;
  if (p < end && (*p == 'Z' || *p == 'z')) {
    p++;
  } else if (p < end && (*p == '+' || *p == '-')) {
    int sign = *p == '-' ? -1 : 1;
    p++;
    int oh, om = 0;
    if (!pe__digits(&p, end, 2, &oh)) {
      return PE_ETIMESTAMP;
    }
    if (p < end && *p == ':') {
      p++;
      if (!pe__digits(&p, end, 2, &om)) {
        return PE_ETIMESTAMP;
      }
    } else if (p < end && !pe__digits(&p, end, 2, &om)) {
      return PE_ETIMESTAMP;
    }
    if (oh > 23 || om > 59) {
      return PE_ETIMESTAMP;
    }
    offset_s = sign * ((int64_t)oh * 3600 + om * 60);
  }
  if (p != end) {
    return PE_ETIMESTAMP;
  }
  int64_t days = pe__days_from_civil(year, mon, day);
  int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss - offset_s;
  /* int64 ns covers 1677-09-21 .. 2262-04-11; stay inside whole seconds. */
  if (secs <= INT64_MIN / PE__NS_PER_S + 1 ||
      secs >= INT64_MAX / PE__NS_PER_S) {
    return PE_ETIMESTAMP;
  }
  *ts_ns = secs * PE__NS_PER_S + frac_ns;
  return PE_OK;
}

int pe_parse_timestamp(const char *s, size_t len, pe_ts_unit_t unit,
                       int64_t *ts_ns) {
  pe__trim(&s, &len);
  const char *p = s;
  const char *end = s + len;
  if (len >= 10 && s[4] == '-') {
    return pe__parse_iso(s, end, ts_ns);
  }
  int neg = 0;
  if (p < end && *p == '-') {
    neg = 1;
    p++;
  }
  uint64_t whole = 0;
  int n = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* Epoch timestamps are 10 to 19 digits: take them 8 at a time. */
  while (end - p >= 8 && n <= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    if (!pe__eight_digits(w)) {
      break;
    }
    whole = whole * 100000000u + pe__eight_digit_value(w);
    n += 8;
    p += 8;
  }
#endif
  while (p < end && pe__is_digit(*p)) {
    if (n >= 19) {
      return PE_ETIMESTAMP;
    }
    whole = whole * 10 + (uint64_t)(*p - '0');
    n++;
    p++;
  }
  const char *frac = NULL;
  const char *frac_end = NULL;
  if (p < end && *p == '.') {
    frac = ++p;
    while (p < end && pe__is_digit(*p)) {
      p++;
    }
    frac_end = p;
  }
  if (p != end || (n == 0 && (frac == NULL || frac == frac_end))) {
    return PE_ETIMESTAMP;
  }
  uint64_t scale = pe__epoch_scale(whole, unit);
  if (whole > (uint64_t)INT64_MAX / scale) {
    return PE_ETIMESTAMP;
  }
  uint64_t ns = whole * scale;
  if (frac != NULL) {
    uint64_t f = 0;
    uint64_t fscale = scale;
    for (const char *q = frac; q < frac_end && fscale > 1; q++) {
      fscale /= 10;
      f += (uint64_t)(*q - '0') * fscale;
    }
    if (ns > (uint64_t)INT64_MAX - f) {
      return PE_ETIMESTAMP;
    }
    ns += f;
  }
  *ts_ns = neg ? -(int64_t)ns : (int64_t)ns;
  return PE_OK;
}
