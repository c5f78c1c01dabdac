/* CSV tick parser (see pe/csv.h).
 *
 * Checks run in a fixed order, so each bad row gets one documented reason:
 * line length, quoting, field count, timestamp, symbol, price, volume,
 * recv_ts.
 *
 * Records follow RFC 4180: a field whose first non-blank byte is a double
 * quote is quoted, runs to the matching quote, and may hold commas, CR, LF
 * and "" (one quote). A quote elsewhere is an ordinary byte. A record ends
 * at the first LF outside quotes, so it may span lines; its line number is
 * that of its first line. Records without a quote take the paths that
 * never look at quotes. */
#include "pe/csv.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/numparse.h"
#include "io/tick_fields.h"
#include "pe/error.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* What a column holds: a tick field (one more than its PE__FIELD_*), or
 * nothing the parser reads. */
enum {
  PE__COL_IGNORE = 0,
  PE__COL_TS = PE__FIELD_TS + 1,
  PE__COL_SYMBOL = PE__FIELD_SYMBOL + 1,
  PE__COL_PRICE = PE__FIELD_PRICE + 1,
  PE__COL_VOLUME = PE__FIELD_VOLUME + 1,
  PE__COL_RECV_TS = PE__FIELD_RECV_TS + 1,
  PE__COL_ROLES = PE__FIELD_COUNT + 1
};

#define PE__MAX_COLUMNS 64

/* col_of of a role that no column holds. */
#define PE__NO_COLUMN 0xFF

struct pe_csv {
  pe_csv_options_t opt;
  uint64_t line_no;
  int seen_first; /* the first non-blank line has been looked at */
  int has_header;
  int fused; /* rows may take the fused one-pass parser (pe__fused_line) */
  int plain; /* the columns are ts,symbol,price,volume */
  uint32_t n_columns;
  uint8_t role[PE__MAX_COLUMNS];
  uint8_t col_of[PE__COL_ROLES]; /* column of each role; PE__NO_COLUMN */
  uint32_t n_ignored;
  /* The columns of no role, then (up to 2 entries) the timestamp's
   * column, which the fused parser checks anyway: it always reads 2. */
  uint8_t ignored[PE__MAX_COLUMNS + 2];
  pe_tick_t batch[PE_CSV_BATCH]; /* ticks for on_ticks, not handed over yet */
  pe_csv_row_t rows[PE_CSV_BATCH];
  uint32_t n_batch;
  char *carry; /* a line cut by a chunk boundary: [0, carry_len) */
  size_t carry_len;
  int carry_overlong; /* the cut line passed max_line: drop to newline */
  uint8_t qstate;     /* PE__Q_*: where the record scan stands */
  uint64_t embedded;  /* LFs inside quotes of the current record */
  char *scratch;      /* quoted fields, unescaped: max_line + 4 bytes */
  char errmsg[512];
};

int pe_csv_create(const pe_csv_options_t *options, pe_csv_t **out) {
  *out = NULL;
  pe_csv_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    return PE_ENOMEM;
  }
  c->opt = *options;
  if (c->opt.max_line == 0) {
    c->opt.max_line = 4096;
  }
  /* Room for a '\r' before the newline and a byte order mark. */
  c->carry = malloc((size_t)c->opt.max_line + 4);
  c->scratch = malloc((size_t)c->opt.max_line + 4);
  if (c->carry == NULL || c->scratch == NULL) {
    free(c->carry);
    free(c->scratch);
    free(c);
    return PE_ENOMEM;
  }
  /* Until a header says otherwise: ts,symbol,price,volume. */
  c->n_columns = 4;
  c->role[0] = PE__COL_TS;
  c->role[1] = PE__COL_SYMBOL;
  c->role[2] = PE__COL_PRICE;
  c->role[3] = PE__COL_VOLUME;
  for (int r = 0; r < PE__COL_ROLES; r++) {
    c->col_of[r] = r >= PE__COL_TS && r <= PE__COL_VOLUME ? (uint8_t)(r - 1)
                                                          : PE__NO_COLUMN;
  }
  c->fused = (c->opt.flags & PE_CSV_GENERAL_ONLY) == 0;
  c->plain = 1;
  *out = c;
  return PE_OK;
}

void pe_csv_destroy(pe_csv_t *c) {
  if (c == NULL) {
    return;
  }
  free(c->carry);
  free(c->scratch);
  free(c);
}

uint64_t pe_csv_lines(const pe_csv_t *c) { return c->line_no; }

int pe_csv_has_header(const pe_csv_t *c) { return c->has_header; }

const char *pe_csv_errmsg(const pe_csv_t *c) { return c->errmsg; }

static inline int pe__space(char c) { return c == ' ' || c == '\t'; }

/* 1 for '"', ' ' and '\t': c == '"' || pe__space(c), by a load. */
static const uint8_t pe__quote_or_blank_tab[256] = {
    ['\t'] = 1, [' '] = 1, ['"'] = 1};

static inline int pe__quote_or_blank(char c) {
  return pe__quote_or_blank_tab[(unsigned char)c];
}

/* Trims spaces, then one pair of surrounding double quotes. */
static inline void pe__field_clean(const char **s, size_t *len) {
  const char *p = *s;
  const char *e = p + *len;
  while (p < e && pe__space(*p)) {
    p++;
  }
  while (e > p && pe__space(e[-1])) {
    e--;
  }
  if (e - p >= 2 && *p == '"' && e[-1] == '"') {
    p++;
    e--;
  }
  *s = p;
  *len = (size_t)(e - p);
}

/* Where a record scan stands: at a field's start (blanks so far), in an
 * unquoted field, in a quoted one, or just after a quote inside one (the
 * end of the field, or the first of "" ). */
enum { PE__Q_START = 0, PE__Q_PLAIN, PE__Q_QUOTED, PE__Q_QUOTE_SEEN };

/* The LF that ends the record of which [p, end) is the next part, the scan
 * going on from c->qstate (PE__Q_START at a record's start); NULL when the
 * record runs past end, c->qstate then holding the state there. LFs inside
 * quotes are counted in c->embedded. A line without a quote is one
 * memchr, as before quotes were read. */
static const char *pe__record_end(pe_csv_t *c, const char *p, const char *end) {
  if (end <= p) {
    return NULL;
  }
  if (c->qstate <= PE__Q_PLAIN) {
    size_t room = (size_t)(end - p);
    const char *nl = memchr(p, '\n', room);
    size_t span = nl != NULL ? (size_t)(nl - p) : room;
    if (nl != NULL && span <= room && memchr(p, '"', span) == NULL) {
      c->qstate = PE__Q_START;
      return nl;
    }
  }
  uint8_t q = c->qstate;
  for (; p < end; p++) {
    char ch = *p;
    switch (q) {
    case PE__Q_START:
      q = ch == '"'                    ? PE__Q_QUOTED
          : ch == ',' || pe__space(ch) ? PE__Q_START
          : ch == '\n'                 ? PE__Q_START
                                       : PE__Q_PLAIN;
      break;
    case PE__Q_PLAIN:
      q = ch == ',' || ch == '\n' ? PE__Q_START : PE__Q_PLAIN;
      break;
    case PE__Q_QUOTED:
      q = ch == '"' ? PE__Q_QUOTE_SEEN : PE__Q_QUOTED;
      c->embedded += ch == '\n';
      continue;
    default: /* PE__Q_QUOTE_SEEN */
      q = ch == '"'                 ? PE__Q_QUOTED
          : ch == ',' || ch == '\n' ? PE__Q_START
                                    : PE__Q_PLAIN;
      break;
    }
    if (ch == '\n') {
      c->qstate = PE__Q_START;
      return p;
    }
  }
  c->qstate = q;
  return NULL;
}

/* Splits a record (no LF outside quotes) into fields by RFC 4180 for a
 * record that holds a quote: f[i], n[i] for the first cap fields, quoted
 * ones unescaped into c->scratch, unquoted ones trimmed of blanks. Returns
 * the number of fields, or PE_EQUOTE for a quoted field that is not closed
 * or has more than blanks after its closing quote. */
static int pe__split_quoted(pe_csv_t *c, const char *line, size_t len,
                            const char **f, size_t *n, uint32_t cap) {
  char *out = c->scratch;
  const char *p = line;
  const char *end = line + len;
  uint32_t count = 0;
  for (;;) {
    const char *s = p;
    while (s < end && pe__space(*s)) {
      s++;
    }
    const char *field;
    size_t flen;
    if (s < end && *s == '"') {
      char *o = out;
      for (s++;; s++) {
        if (s == end) {
          return PE_EQUOTE; /* not closed */
        }
        if (*s == '"' && (s + 1 == end || s[1] != '"')) {
          break;
        }
        s += *s == '"'; /* "" is one quote */
        *o++ = *s;
      }
      for (s++; s < end && pe__space(*s); s++) {
      }
      if (s < end && *s != ',') {
        return PE_EQUOTE; /* text after the closing quote */
      }
      field = out;
      flen = (size_t)(o - out);
      out = o;
      p = s;
    } else {
      size_t rest = p < end ? (size_t)(end - p) : 0;
      const char *comma = memchr(p, ',', rest);
      field = p;
      flen = (size_t)((comma ? comma : end) - p);
      p += flen;
      pe__field_clean(&field, &flen); /* no quote to strip here */
    }
    if (count < cap) {
      f[count] = field;
      n[count] = flen;
    }
    count++;
    if (p == end) {
      return (int)count;
    }
    p++; /* the comma */
  }
}

/* The column role of a header name: PE__COL_* is PE__FIELD_* + 1, with 0
 * for a column the parser ignores. */
static int pe__column_role(const char *s, size_t len) {
  return pe__tick_field_of(s, len) + 1;
}

/* Looks at the first non-blank line: a header when a field is "symbol".
 * Returns 1 for a header (consumed), 0 for data, PE_EHEADER for a header
 * that lacks a column. */
static int pe__header(pe_csv_t *c, const char *line, size_t len) {
  const char *names[PE__MAX_COLUMNS];
  size_t lens[PE__MAX_COLUMNS];
  uint32_t n = 0;
  int is_header = 0;
  const char *p = line;
  const char *end = line + len;
  if (memchr(line, '"', len) != NULL) {
    int k = pe__split_quoted(c, line, len, names, lens, PE__MAX_COLUMNS);
    if (k < 0) {
      return 0; /* data: a row with bad quoting, rejected as such */
    }
    n = (uint32_t)k;
    for (uint32_t i = 0; i < n && i < PE__MAX_COLUMNS; i++) {
      is_header |= pe__name_is(names[i], lens[i], "symbol");
    }
  }
  for (int more = n == 0; more;) { /* a header without quotes */
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *fe = comma ? comma : end;
    const char *f = p;
    size_t flen = (size_t)(fe - p);
    pe__field_clean(&f, &flen);
    if (n < PE__MAX_COLUMNS) {
      names[n] = f;
      lens[n] = flen;
    }
    n++;
    if (pe__name_is(f, flen, "symbol")) {
      is_header = 1;
    }
    more = comma != NULL;
    p = more ? comma + 1 : end;
  }
  if (!is_header) {
    return 0;
  }
  if (n > PE__MAX_COLUMNS) {
    snprintf(c->errmsg, sizeof c->errmsg,
             "line %llu: the header has %u columns, more than %d",
             (unsigned long long)c->line_no, n, PE__MAX_COLUMNS);
    return PE_EHEADER;
  }
  int col_of[PE__COL_ROLES];
  for (int r = 0; r < PE__COL_ROLES; r++) {
    col_of[r] = -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    int role = pe__column_role(names[i], lens[i]);
    c->role[i] = (uint8_t)role;
    if (role == PE__COL_IGNORE) {
      continue;
    }
    if (col_of[role] >= 0) {
      snprintf(c->errmsg, sizeof c->errmsg,
               "line %llu: the header names column '%.*s' (%u) and '%.*s' (%d)"
               " for the same field; keep one",
               (unsigned long long)c->line_no, (int)lens[i], names[i], i + 1,
               (int)lens[col_of[role]], names[col_of[role]], col_of[role] + 1);
      return PE_EHEADER;
    }
    col_of[role] = (int)i;
  }
  static const char *const need[PE__COL_ROLES] = {
      NULL,
      "a timestamp column (ts, timestamp or time)",
      "a symbol column",
      "a price column",
      "a volume column (volume, size or qty)",
      NULL};
  for (int r = PE__COL_TS; r <= PE__COL_VOLUME; r++) {
    if (col_of[r] < 0) {
      snprintf(c->errmsg, sizeof c->errmsg,
               "line %llu: the header lacks %s; columns are found by name, "
               "in any order",
               (unsigned long long)c->line_no, need[r]);
      return PE_EHEADER;
    }
  }
  c->n_columns = n;
  c->n_ignored = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (c->role[i] == PE__COL_IGNORE) {
      c->ignored[c->n_ignored++] = (uint8_t)i;
    }
  }
  c->ignored[c->n_ignored] = (uint8_t)col_of[PE__COL_TS];
  c->ignored[c->n_ignored + 1] = (uint8_t)col_of[PE__COL_TS];
  c->has_header = 1;
  for (int r = 0; r < PE__COL_ROLES; r++) {
    c->col_of[r] = col_of[r] >= 0 ? (uint8_t)col_of[r] : PE__NO_COLUMN;
  }
  c->plain = n == 4 && c->role[0] == PE__COL_TS &&
             c->role[1] == PE__COL_SYMBOL && c->role[2] == PE__COL_PRICE &&
             c->role[3] == PE__COL_VOLUME;
  return 1;
}

/* First ',' in [p, end), or end. Eight bytes a step where it can: a byte
 * equal to ',' becomes zero after the xor, and the zero-byte test finds it. */
static inline const char *pe__find_comma(const char *p, const char *end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= 0x2C2C2C2C2C2C2C2Cull;
    uint64_t z = (w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull;
    if (z != 0) {
      return p + (__builtin_ctzll(z) >> 3);
    }
    p += 8;
  }
#endif
  while (p < end && *p != ',') {
    p++;
  }
  return p;
}

/* Both kinds of callbacks; on_ticks set means batches. */
typedef struct pe__handler {
  void *ctx;
  int (*on_tick)(void *ctx, const pe_tick_t *tick, uint64_t line_no,
                 const char *line, size_t len);
  int (*on_reject)(void *ctx, int err, uint64_t line_no, const char *line,
                   size_t len);
  int (*on_ticks)(void *ctx, const pe_tick_t *ticks, const pe_csv_row_t *rows,
                  uint32_t n);
} pe__handler_t;

/* Hands the batched ticks to on_ticks. */
static int pe__flush(pe_csv_t *c, const pe__handler_t *h) {
  uint32_t n = c->n_batch;
  c->n_batch = 0;
  return n > 0 ? h->on_ticks(h->ctx, c->batch, c->rows, n) : 0;
}

static inline int pe__reject(pe_csv_t *c, const pe__handler_t *h, int err,
                             uint64_t line_no, const char *line, size_t len) {
  if (c->n_batch > 0) {
    int rc = pe__flush(c, h);
    if (rc != 0) {
      return rc;
    }
  }
  return h->on_reject ? h->on_reject(h->ctx, err, line_no, line, len) : 0;
}

/* Where the fused parser builds the next tick: the batch's next slot when
 * ticks go out in batches, else `local`. */
static inline pe_tick_t *pe__tick_slot(pe_csv_t *c, const pe__handler_t *h,
                                       pe_tick_t *local) {
  return h->on_ticks ? &c->batch[c->n_batch] : local;
}

/* A valid tick of the current line: into the batch (copied, unless it was
 * built in its slot) or to on_tick. */
static inline int pe__emit(pe_csv_t *c, const pe__handler_t *h,
                           const pe_tick_t *tick, const char *line,
                           size_t len) {
  if (h->on_ticks == NULL) {
    return h->on_tick ? h->on_tick(h->ctx, tick, c->line_no, line, len) : 0;
  }
  uint32_t i = c->n_batch;
  if (tick != &c->batch[i]) {
    c->batch[i] = *tick;
  }
  c->rows[i].line_no = c->line_no;
  c->rows[i].line = line;
  c->rows[i].len = len;
  c->n_batch = i + 1;
  return c->n_batch == PE_CSV_BATCH ? pe__flush(c, h) : 0;
}

/* One complete line without its newline: the general parser. */
static int pe__line(pe_csv_t *c, const char *line, size_t len,
                    const pe__handler_t *h) {
  c->line_no += 1;
  if (len > 0 && line[len - 1] == '\r') {
    len--;
  }
  if (c->line_no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
    line += 3; /* UTF-8 byte order mark */
    len -= 3;
  }
  if (len > c->opt.max_line) {
    return pe__reject(c, h, PE_ELINELEN, c->line_no, line, c->opt.max_line);
  }
  size_t i = 0;
  while (i < len && pe__space(line[i])) {
    i++;
  }
  if (i == len) {
    return 0; /* blank */
  }
  if (!c->seen_first) {
    c->seen_first = 1;
    int rc = pe__header(c, line, len);
    if (rc != 0) {
      return rc == 1 ? 0 : rc;
    }
  }

  pe_tick_t tick;
  const char *field[PE__COL_ROLES] = {0};
  size_t flen[PE__COL_ROLES] = {0};
  uint32_t n = 0;
  if (memchr(line, '"', len) != NULL) {
    const char *f[PE__MAX_COLUMNS];
    size_t fl[PE__MAX_COLUMNS];
    int k = pe__split_quoted(c, line, len, f, fl, PE__MAX_COLUMNS);
    if (k < 0) {
      return pe__reject(c, h, PE_EQUOTE, c->line_no, line, len);
    }
    n = (uint32_t)k;
    for (uint32_t col = 0; col < n && col < c->n_columns; col++) {
      field[c->role[col]] = f[col];
      flen[c->role[col]] = fl[col];
    }
  } else {
    const char *p = line;
    const char *end = line + len;
    for (;;) {
      const char *q = pe__find_comma(p, end);
      if (n < c->n_columns) {
        int role = c->role[n];
        field[role] = p;
        flen[role] = (size_t)(q - p);
      }
      n++;
      if (q == end) {
        break;
      }
      p = q + 1;
    }
    for (int role = PE__COL_TS; role < PE__COL_ROLES; role++) {
      if (field[role] != NULL) {
        pe__field_clean(&field[role], &flen[role]);
      }
    }
  }
  if (n != c->n_columns) {
    return pe__reject(c, h, PE_EFIELDS, c->line_no, line, len);
  }
  if (pe_parse_timestamp(field[PE__COL_TS], flen[PE__COL_TS], c->opt.ts_unit,
                         &tick.ts_ns) != PE_OK) {
    return pe__reject(c, h, PE_ETIMESTAMP, c->line_no, line, len);
  }
  const char *sym = field[PE__COL_SYMBOL];
  size_t sym_len = flen[PE__COL_SYMBOL];
  if (sym_len == 0) {
    return pe__reject(c, h, PE_ESYMBOL, c->line_no, line, len);
  }
  if (sym_len > PE_SYMBOL_MAX) {
    return pe__reject(c, h, PE_ESYMLEN, c->line_no, line, len);
  }
  if (pe_parse_double(field[PE__COL_PRICE], flen[PE__COL_PRICE], &tick.price) !=
      PE_OK) {
    return pe__reject(c, h, PE_ENUMBER, c->line_no, line, len);
  }
  if (!(tick.price > 0.0) || !isfinite(tick.price)) {
    return pe__reject(c, h, PE_EPRICE, c->line_no, line, len);
  }
  if (pe_parse_double(field[PE__COL_VOLUME], flen[PE__COL_VOLUME],
                      &tick.volume) != PE_OK) {
    return pe__reject(c, h, PE_ENUMBER, c->line_no, line, len);
  }
  if (!(tick.volume >= 0.0) || !isfinite(tick.volume)) {
    return pe__reject(c, h, PE_EVOLUME, c->line_no, line, len);
  }
  tick.recv_ts_ns = PE_TS_NONE;
  if (field[PE__COL_RECV_TS] != NULL) {
    const char *r = field[PE__COL_RECV_TS];
    size_t rlen = flen[PE__COL_RECV_TS];
    if (rlen > 0 && pe_parse_timestamp(r, rlen, c->opt.ts_unit,
                                       &tick.recv_ts_ns) != PE_OK) {
      return pe__reject(c, h, PE_ETIMESTAMP, c->line_no, line, len);
    }
  }
  memcpy(tick.symbol, sym, sym_len);
  memset(tick.symbol + sym_len, 0, sizeof tick.symbol - sym_len);
  tick.symbol_len = (uint32_t)sym_len;
  return pe__emit(c, h, &tick, line, len);
}

/* ---- the fused parser ----------------------------------------------------
 * Most rows are plain: integer epoch timestamps, symbols without surrounding
 * spaces or quotes, short decimals. pe__fused_line takes such a row in one
 * pass straight from the feed buffer, newline search included, and gives up
 * (returns NULL, having changed nothing) on anything else, which then goes
 * through memchr and pe__line from the start of the line. Both give the same
 * event for every row the fused one takes (tests/test_csv.c and
 * fuzz/fuzz_csv.c compare them). */

/* Bytes the fused parser may read past a line's newline: a symbol's 32-byte
 * copy and the numbers' 8-byte loads stay inside them. */
#define PE__FUSED_SLACK 32

/* Bits i of *comma and *nl set when p[i] is ',' or '\n', for i in [0, 64);
 * reads p[0, 64). */
static inline void pe__scan64(const char *p, uint64_t *comma, uint64_t *nl) {
#if defined(__SSE2__)
  const __m128i vc = _mm_set1_epi8(',');
  const __m128i vn = _mm_set1_epi8('\n');
  uint64_t c = 0, n = 0;
  /* Written out four times: GCC -O2 keeps a loop of four as a loop. */
#define PE__SCAN16(k)                                                          \
  do {                                                                         \
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));  \
    c |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vc))          \
         << (16 * k);                                                          \
    n |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vn))          \
         << (16 * k);                                                          \
  } while (0)
  PE__SCAN16(0);
  PE__SCAN16(1);
  PE__SCAN16(2);
  PE__SCAN16(3);
#undef PE__SCAN16
  *comma = c;
  *nl = n;
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* A byte equal to ',' or '\n' is zero after its xor; the exact zero-byte
   * test (no borrows between bytes) sets its high bit, and the multiply
   * gathers the eight high bits into one byte. */
  const uint64_t lo7 = 0x7F7F7F7F7F7F7F7Full;
  uint64_t c = 0, n = 0;
  for (int k = 0; k < 8; k++) {
    uint64_t w;
    memcpy(&w, p + 8 * k, 8);
    uint64_t a = w ^ 0x2C2C2C2C2C2C2C2Cull;
    uint64_t b = w ^ 0x0A0A0A0A0A0A0A0Aull;
    a = ~(((a & lo7) + lo7) | a | lo7);
    b = ~(((b & lo7) + lo7) | b | lo7);
    c |= (((a >> 7) * 0x0102040810204080ull) >> 56) << (8 * k);
    n |= (((b >> 7) * 0x0102040810204080ull) >> 56) << (8 * k);
  }
  *comma = c;
  *nl = n;
#else
  uint64_t c = 0, n = 0;
  for (int i = 0; i < 64; i++) {
    c |= (uint64_t)(p[i] == ',') << i;
    n |= (uint64_t)(p[i] == '\n') << i;
  }
  *comma = c;
  *nl = n;
#endif
}

/* Longest line (newline included) the fused parser takes, in 64-byte
 * blocks. */
#define PE__FUSED_BLOCKS 2

/* 32 bytes of ones, then 32 of zeros: 32 bytes from offset 32 - n keep the
 * first n bytes of a word group. */
static const unsigned char pe__keep_mask[64] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255};

/* The zero-padded 32-byte symbol of a tick from len (1..31) bytes at s, of
 * which 32 may be read. */
static inline void pe__symbol_copy(pe_tick_t *tick, const char *s, size_t len) {
  uint64_t w[4], m[4];
  memcpy(w, s, sizeof w);
  memcpy(m, pe__keep_mask + 32 - len, sizeof m);
  for (size_t i = 0; i < 4; i++) {
    w[i] &= m[i];
  }
  memcpy(tick->symbol, w, sizeof w);
  tick->symbol_len = (uint32_t)len;
}

/* One row at p, when the fused parser can take it: returns its newline with
 * *tick filled (price and volume parsed, not yet checked) and *len_out the
 * line's length without '\r' and newline; NULL otherwise. Hot path. */
static inline const char *pe__fused_line(const pe_csv_t *c, const char *p,
                                         const char *end, pe_tick_t *tick,
                                         size_t *len_out) {
  /* Separators: commas, and the newline, of the first blocks that hold
   * one; nothing after the newline. Two blocks at most, the first written
   * out for the common short line. */
  uint64_t sep[PE__FUSED_BLOCKS];
  uint64_t nl, cm;
  size_t nb = 1;
  if ((size_t)(end - p) < 64 + PE__FUSED_SLACK) {
    return NULL; /* too near the end of the buffer */
  }
  pe__scan64(p, &cm, &nl);
  if (nl == 0) {
    sep[0] = cm;
    if ((size_t)(end - p) < 128 + PE__FUSED_SLACK) {
      return NULL;
    }
    pe__scan64(p + 64, &cm, &nl);
    if (nl == 0) {
      return NULL; /* a long line */
    }
    nb = 2;
  }
  nl &= ~nl + 1; /* the first newline */
  sep[nb - 1] = (cm & (nl - 1)) | nl;
  const char *q = p + 64 * (nb - 1) + __builtin_ctzll(nl); /* the newline */
  if (end - q < PE__FUSED_SLACK) {
    return NULL;
  }
  const char *line_end = q > p && q[-1] == '\r' ? q - 1 : q;
  size_t len = (size_t)(line_end - p);
  if (len > c->opt.max_line) {
    return NULL;
  }

  /* Field i ends at separator i; the last one must be the newline. */
  const char *field[PE__COL_ROLES];
  size_t flen[PE__COL_ROLES];
  field[PE__COL_RECV_TS] = NULL;
  flen[PE__COL_RECV_TS] = 0;
  if (c->plain && nb == 1) {
    /* The common layout in one block: three commas, then the newline. */
    uint64_t m = sep[0] & (nl - 1); /* the commas */
    size_t s[3];
    if (m == 0) {
      return NULL;
    }
    s[0] = (size_t)__builtin_ctzll(m);
    m &= m - 1;
    if (m == 0) {
      return NULL;
    }
    s[1] = (size_t)__builtin_ctzll(m);
    m &= m - 1;
    if (m == 0) {
      return NULL;
    }
    s[2] = (size_t)__builtin_ctzll(m);
    if ((m & (m - 1)) != 0) {
      return NULL; /* more than three */
    }
    field[PE__COL_TS] = p;
    flen[PE__COL_TS] = s[0];
    field[PE__COL_SYMBOL] = p + s[0] + 1;
    flen[PE__COL_SYMBOL] = s[1] - s[0] - 1;
    field[PE__COL_PRICE] = p + s[1] + 1;
    flen[PE__COL_PRICE] = s[2] - s[1] - 1;
    field[PE__COL_VOLUME] = p + s[2] + 1;
    flen[PE__COL_VOLUME] = (size_t)(q - p) - s[2] - 1;
  } else {
    /* b[i + 1]: one past separator i, where column i + 1 starts; a block
     * holds at most 64. Not a byte array: stores through char types would
     * make the compiler reload *c after each one. */
    uint32_t b[2 * 64 + 1];
    uint32_t k = 0;
    b[0] = 0;
    for (size_t j = 0; j < nb; j++) {
      uint64_t m = sep[j];
      uint32_t base = 64 * (uint32_t)j + 1;
      while (m != 0) {
        b[++k] = base + (uint32_t)__builtin_ctzll(m);
        m &= m - 1;
      }
    }
    if (k != c->n_columns) {
      return NULL; /* too few or too many fields */
    }
    const uint8_t *col = c->col_of;
    field[PE__COL_TS] = p + b[col[PE__COL_TS]];
    flen[PE__COL_TS] = b[col[PE__COL_TS] + 1] - b[col[PE__COL_TS]] - 1;
    field[PE__COL_SYMBOL] = p + b[col[PE__COL_SYMBOL]];
    flen[PE__COL_SYMBOL] =
        b[col[PE__COL_SYMBOL] + 1] - b[col[PE__COL_SYMBOL]] - 1;
    field[PE__COL_PRICE] = p + b[col[PE__COL_PRICE]];
    flen[PE__COL_PRICE] = b[col[PE__COL_PRICE] + 1] - b[col[PE__COL_PRICE]] - 1;
    field[PE__COL_VOLUME] = p + b[col[PE__COL_VOLUME]];
    flen[PE__COL_VOLUME] =
        b[col[PE__COL_VOLUME] + 1] - b[col[PE__COL_VOLUME]] - 1;
    if (col[PE__COL_RECV_TS] != PE__NO_COLUMN) {
      field[PE__COL_RECV_TS] = p + b[col[PE__COL_RECV_TS]];
      flen[PE__COL_RECV_TS] =
          b[col[PE__COL_RECV_TS] + 1] - b[col[PE__COL_RECV_TS]] - 1;
    }
    /* A column the parser ignores may be quoted, and hold commas or a
     * record's LF: such rows go to the general parser. (The columns it
     * reads fail their checks on a leading quote or blank already, so
     * only the others are looked at: two without a loop or a branch.) */
    const uint8_t *ign = c->ignored;
    if (pe__quote_or_blank(p[b[ign[0]]]) | pe__quote_or_blank(p[b[ign[1]]])) {
      return NULL;
    }
    for (uint32_t j = 2; j < c->n_ignored; j++) {
      if (pe__quote_or_blank(p[b[ign[j]]])) {
        return NULL;
      }
    }
  }
  /* The last field ended at the newline; a '\r' before it is no part of it
   * (pe__line drops it from the line first). */
  if (line_end != q) {
    for (int r = PE__COL_TS; r < PE__COL_ROLES; r++) {
      if (field[r] != NULL && field[r] + flen[r] == q) {
        flen[r] -= 1;
      }
    }
  }

  uint64_t whole;
  if (!pe__wide_uint(field[PE__COL_TS], flen[PE__COL_TS], &whole) ||
      !pe__epoch_to_ns(whole, c->opt.ts_unit, &tick->ts_ns)) {
    return NULL;
  }
  const char *sym = field[PE__COL_SYMBOL];
  size_t sym_len = flen[PE__COL_SYMBOL];
  if (sym_len == 0 || sym_len > PE_SYMBOL_MAX || pe__space(sym[0]) ||
      pe__space(sym[sym_len - 1]) || sym[0] == '"') {
    return NULL;
  }
  if (!pe__wide_plain(field[PE__COL_PRICE], flen[PE__COL_PRICE],
                      &tick->price) ||
      !pe__wide_plain(field[PE__COL_VOLUME], flen[PE__COL_VOLUME],
                      &tick->volume)) {
    return NULL;
  }
  tick->recv_ts_ns = PE_TS_NONE;
  if (flen[PE__COL_RECV_TS] > 0 &&
      (!pe__wide_uint(field[PE__COL_RECV_TS], flen[PE__COL_RECV_TS], &whole) ||
       !pe__epoch_to_ns(whole, c->opt.ts_unit, &tick->recv_ts_ns))) {
    return NULL;
  }
  pe__symbol_copy(tick, sym, sym_len);
  *len_out = len;
  return q;
}

/* After a record: the LFs inside its quotes count as lines, so the next
 * record's number is that of its own first line. */
static void pe__count_embedded(pe_csv_t *c) {
  c->line_no += c->embedded;
  c->embedded = 0;
}

/* Bytes a carried line may hold before it is too long: max_line, a '\r',
 * and on the first line a byte order mark, which pe__line strips before it
 * measures, so that cut and uncut lines are judged alike. */
static size_t pe__carry_limit(const pe_csv_t *c) {
  return (size_t)c->opt.max_line + 1 + (c->line_no == 0 ? 3 : 0);
}

/* Ends the carried line with data[0, len) and parses it. */
static int pe__carried_line(pe_csv_t *c, const char *data, size_t len,
                            const pe__handler_t *h) {
  size_t room = pe__carry_limit(c) - c->carry_len;
  if (c->carry_overlong || len > room) {
    size_t take = len < room ? len : room;
    memcpy(c->carry + c->carry_len, data, take);
    const char *line = c->carry;
    if (c->line_no == 0 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
      line += 3;
    }
    c->carry_len = 0;
    c->carry_overlong = 0;
    c->line_no += 1;
    return pe__reject(c, h, PE_ELINELEN, c->line_no, line, c->opt.max_line);
  }
  memcpy(c->carry + c->carry_len, data, len);
  size_t total = c->carry_len + len;
  c->carry_len = 0;
  return pe__line(c, c->carry, total, h);
}

/* Keeps data[0, len), the start of a line with no newline yet. */
static void pe__carry(pe_csv_t *c, const char *data, size_t len) {
  if (c->carry_overlong) {
    return;
  }
  size_t room = pe__carry_limit(c) - c->carry_len;
  if (len > room) {
    /* Keep the first bytes for the reject record, drop the rest. */
    memcpy(c->carry + c->carry_len, data, room);
    c->carry_len = pe__carry_limit(c);
    c->carry_overlong = 1;
    return;
  }
  memcpy(c->carry + c->carry_len, data, len);
  c->carry_len += len;
}

static int pe__feed(pe_csv_t *c, const char *data, size_t len,
                    const pe__handler_t *h) {
  const char *p = data;
  const char *end = data + len;
  if (c->carry_len > 0 || c->carry_overlong) {
    const char *nl = pe__record_end(c, p, end);
    if (nl == NULL) {
      pe__carry(c, p, len);
      return PE_OK;
    }
    int rc = pe__carried_line(c, p, (size_t)(nl - p), h);
    pe__count_embedded(c);
    if (rc != 0) {
      return rc;
    }
    p = nl + 1;
  }
  while (p < end) {
    if (c->fused && c->seen_first) {
      pe_tick_t local;
      pe_tick_t *tick = pe__tick_slot(c, h, &local);
      size_t n;
      const char *nl = pe__fused_line(c, p, end, tick, &n);
      if (nl != NULL) {
        c->line_no += 1;
        int rc;
        /* For x > 0 (or >= 0), x <= DBL_MAX is isfinite(x); NaN fails
         * both: one comparison a bound for a valid row. */
        if (tick->price > 0.0 && tick->price <= DBL_MAX &&
            tick->volume >= 0.0 && tick->volume <= DBL_MAX) {
          rc = pe__emit(c, h, tick, p, n);
        } else if (!(tick->price > 0.0) || !isfinite(tick->price)) {
          rc = pe__reject(c, h, PE_EPRICE, c->line_no, p, n);
        } else {
          rc = pe__reject(c, h, PE_EVOLUME, c->line_no, p, n);
        }
        if (rc != 0) {
          return rc;
        }
        p = nl + 1;
        continue;
      }
    }
    const char *nl = pe__record_end(c, p, end);
    if (nl == NULL) {
      /* The batch may hold the line in the carry buffer: out first. */
      int rc = pe__flush(c, h);
      if (rc != 0) {
        return rc;
      }
      pe__carry(c, p, (size_t)(end - p));
      return PE_OK;
    }
    int rc = pe__line(c, p, (size_t)(nl - p), h);
    pe__count_embedded(c);
    if (rc != 0) {
      return rc;
    }
    p = nl + 1;
  }
  return pe__flush(c, h);
}

/* A last record without its LF is parsed as it stands: complete when its
 * fields pass their checks, field_count when some are missing, and
 * bad_quoting when it ends inside a quoted field (input cut mid-record). */
static int pe__finish(pe_csv_t *c, const pe__handler_t *h) {
  if (c->carry_len == 0 && !c->carry_overlong) {
    return PE_OK;
  }
  c->qstate = PE__Q_START;
  int rc = pe__carried_line(c, "", 0, h);
  pe__count_embedded(c);
  return rc != 0 ? rc : pe__flush(c, h);
}

int pe_csv_feed(pe_csv_t *c, const char *data, size_t len,
                const pe_csv_handler_t *handler) {
  pe__handler_t h = {handler->ctx, handler->on_tick, handler->on_reject, NULL};
  return pe__feed(c, data, len, &h);
}

int pe_csv_finish(pe_csv_t *c, const pe_csv_handler_t *handler) {
  pe__handler_t h = {handler->ctx, handler->on_tick, handler->on_reject, NULL};
  return pe__finish(c, &h);
}

int pe_csv_feed_batch(pe_csv_t *c, const char *data, size_t len,
                      const pe_csv_batch_handler_t *handler) {
  pe__handler_t h = {handler->ctx, NULL, handler->on_reject, handler->on_ticks};
  return pe__feed(c, data, len, &h);
}

int pe_csv_finish_batch(pe_csv_t *c, const pe_csv_batch_handler_t *handler) {
  pe__handler_t h = {handler->ctx, NULL, handler->on_reject, handler->on_ticks};
  return pe__finish(c, &h);
}
