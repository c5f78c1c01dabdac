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
/* %.17g; NaN as "nan", infinities as "inf" / "-inf". */
void pe__put_double(char *buf, size_t cap, size_t *pos, double v);
void pe__put_i64(char *buf, size_t cap, size_t *pos, int64_t v);
/* A JSON string, quotes included. */
void pe__put_json_str(char *buf, size_t cap, size_t *pos, const char *s);
/* A CSV field: quoted (with "" for ") when it holds , " \r or \n. */
void pe__put_csv_str(char *buf, size_t cap, size_t *pos, const char *s);

#endif
