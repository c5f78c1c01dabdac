/* Small text formatting helpers for the writers (internal). Each appends to
 * a buffer at *pos without passing cap, and always advances *pos by what it
 * would write, so the total tells the size needed (as snprintf does). */
#ifndef PE_IO_TEXTFMT_H
#define PE_IO_TEXTFMT_H

#include <stddef.h>
#include <stdint.h>

#include "core/digits.h" /* pe__u64_put */

void pe__put_str(char *buf, size_t cap, size_t *pos, const char *s);
void pe__put_char(char *buf, size_t cap, size_t *pos, char c);
/* The shortest decimal that reads back as v (io/dtoa.h: "490.96", "1e-05").
 * Every value that is not finite (NaN, either infinity) is "nan": the one
 * spelling of CSV outputs and stream fields (docs/security.md). */
void pe__put_double(char *buf, size_t cap, size_t *pos, double v);
/* pe__put_double's text at dst, without a bound: at most PE__DTOA_MAX
 * (io/dtoa.h) bytes, no NUL, in PE__DTOA_ROOM bytes of room (the bytes
 * past the text may be overwritten). Returns the end. */
char *pe__put_double_at(char *dst, double v);
/* A JSON number: as pe__put_double, or null for a value that is not finite
 * (JSON has no NaN or infinity). */
void pe__put_json_double(char *buf, size_t cap, size_t *pos, double v);
void pe__put_i64(char *buf, size_t cap, size_t *pos, int64_t v);
/* A JSON string, quotes included. */
void pe__put_json_str(char *buf, size_t cap, size_t *pos, const char *s);
/* A CSV field: quoted (with "" for ") when it holds , " \r or \n. */
void pe__put_csv_str(char *buf, size_t cap, size_t *pos, const char *s);

#endif
