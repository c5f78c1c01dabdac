/* The names a tick's fields go by, in CSV headers and stream entries alike
 * (internal): ts|timestamp|time, symbol, price, volume|size|qty, recv_ts,
 * matched without regard to ASCII case. */
#ifndef PE_IO_TICK_FIELDS_H
#define PE_IO_TICK_FIELDS_H

#include <stddef.h>
#include <string.h>

enum {
  PE__FIELD_TS = 0,
  PE__FIELD_SYMBOL,
  PE__FIELD_PRICE,
  PE__FIELD_VOLUME,
  PE__FIELD_RECV_TS,
  PE__FIELD_COUNT
};

/* 1 when s[0, len) equals the lower-case word, ignoring ASCII case (also
 * what pe_parse_double uses for "nan" and "inf"). */
static inline int pe__name_is(const char *s, size_t len, const char *word) {
  size_t n = strlen(word);
  if (len != n) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z') {
      ch = (char)(ch - 'A' + 'a');
    }
    if (ch != word[i]) {
      return 0;
    }
  }
  return 1;
}

/* The PE__FIELD_* a name stands for, or -1 for none. */
static inline int pe__tick_field_of(const char *s, size_t len) {
  if (pe__name_is(s, len, "ts") || pe__name_is(s, len, "timestamp") ||
      pe__name_is(s, len, "time")) {
    return PE__FIELD_TS;
  }
  if (pe__name_is(s, len, "symbol")) {
    return PE__FIELD_SYMBOL;
  }
  if (pe__name_is(s, len, "price")) {
    return PE__FIELD_PRICE;
  }
  if (pe__name_is(s, len, "volume") || pe__name_is(s, len, "size") ||
      pe__name_is(s, len, "qty")) {
    return PE__FIELD_VOLUME;
  }
  if (pe__name_is(s, len, "recv_ts")) {
    return PE__FIELD_RECV_TS;
  }
  return -1;
}

#endif
