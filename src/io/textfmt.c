/* Text formatting helpers (see textfmt.h). */
#include "io/textfmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/digits.h"
#include "io/dtoa.h"

static void pe__put_mem(char *buf, size_t cap, size_t *pos, const char *s,
                        size_t n) {
  if (*pos < cap) {
    size_t room = cap - *pos;
    memcpy(buf + *pos, s, n < room ? n : room);
  }
  *pos += n;
}

void pe__put_str(char *buf, size_t cap, size_t *pos, const char *s) {
  pe__put_mem(buf, cap, pos, s, strlen(s));
}

void pe__put_char(char *buf, size_t cap, size_t *pos, char c) {
  pe__put_mem(buf, cap, pos, &c, 1);
}

char *pe__put_double_at(char *dst, double v) { return pe__dtoa_put(dst, v); }

void pe__put_double(char *buf, size_t cap, size_t *pos, double v) {
  char tmp[PE__DTOA_ROOM];
  pe__put_mem(buf, cap, pos, tmp, (size_t)(pe__put_double_at(tmp, v) - tmp));
}

void pe__put_json_double(char *buf, size_t cap, size_t *pos, double v) {
  if (!isfinite(v)) {
    pe__put_str(buf, cap, pos, "null");
    return;
  }
  pe__put_double(buf, cap, pos, v);
}

void pe__put_i64(char *buf, size_t cap, size_t *pos, int64_t v) {
  char tmp[24];
  char *end = tmp + sizeof tmp;
  /* The magnitude in unsigned arithmetic, where INT64_MIN's fits. */
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  char *p = pe__u64_digits(end, u);
  if (v < 0) {
    *--p = '-';
  }
  pe__put_mem(buf, cap, pos, p, (size_t)(end - p));
}

void pe__put_json_str(char *buf, size_t cap, size_t *pos, const char *s) {
  pe__put_char(buf, cap, pos, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      pe__put_char(buf, cap, pos, '\\');
      pe__put_char(buf, cap, pos, (char)*p);
    } else if (*p < 0x20) {
      char tmp[8];
      snprintf(tmp, sizeof tmp, "\\u%04x", *p);
      pe__put_str(buf, cap, pos, tmp);
    } else {
      pe__put_char(buf, cap, pos, (char)*p);
    }
  }
  pe__put_char(buf, cap, pos, '"');
}

void pe__put_csv_str(char *buf, size_t cap, size_t *pos, const char *s) {
  if (strpbrk(s, ",\"\r\n") == NULL) {
    pe__put_str(buf, cap, pos, s);
    return;
  }
  pe__put_char(buf, cap, pos, '"');
  for (const char *p = s; *p; p++) {
    if (*p == '"') {
      pe__put_char(buf, cap, pos, '"');
    }
    pe__put_char(buf, cap, pos, *p);
  }
  pe__put_char(buf, cap, pos, '"');
}
