/* Symbol partitions: the hash, the packed map, its canonical text and
 * digest (pe/partition.h). */
#include "pe/partition.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/file.h"
#include "pe/parse.h"
#include "pe/tick.h"

#define PE_FNV_OFFSET 0xcbf29ce484222325ull
#define PE_FNV_PRIME 0x100000001b3ull

uint64_t pe_fnv1a64(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = PE_FNV_OFFSET;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= PE_FNV_PRIME;
  }
  return h;
}

uint32_t pe_partition_of(const char *sym, size_t len, uint32_t P) {
  if (P <= 1)
    return 0;
  return (uint32_t)(pe_fnv1a64(sym, len) % P);
}

int pe_partition_key(char *out, size_t cap, const char *prefix, uint32_t p) {
  int n = snprintf(out, cap, "%s:{p%u}", prefix, p);
  if (n < 0 || (size_t)n >= cap)
    return PE_EFULL;
  return n;
}

static void pe__perr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pe__perr(char *err, size_t cap, const char *fmt, ...) {
  if (!err || cap == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* A count in 1 .. PE_PARTITION_MAX from decimal digits only. */
static int pe__parse_count(const char *s, size_t len, uint32_t *out) {
  if (len == 0 || len > 6)
    return PE_EINVAL;
  uint32_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return PE_EINVAL;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v == 0 || v > PE_PARTITION_MAX)
    return PE_EINVAL;
  *out = v;
  return PE_OK;
}

int pe_partition_options_from_env(pe_partition_options_t *o, char *err,
                                  size_t err_cap) {
  if (o->count == 0) {
    const char *c = getenv("PARTITION_COUNT");
    if (c && *c && pe__parse_count(c, strlen(c), &o->count) != PE_OK) {
      pe__perr(err, err_cap,
               "PARTITION_COUNT '%.32s' is not a count from 1 to %u", c,
               PE_PARTITION_MAX);
      return PE_EINVAL;
    }
  }
  if (!o->weights_path) {
    const char *w = getenv("SYMBOL_WEIGHTS_FILE");
    if (w && *w)
      o->weights_path = w;
  }
  if (!o->hot_symbols) {
    const char *h = getenv("HOT_SYMBOLS");
    if (h && *h)
      o->hot_symbols = h;
  }
  return PE_OK;
}

/* ---- the map -------------------------------------------------------------
 */

typedef struct pe__psym {
  const char *sym; /* into the map's symbol arena */
  uint32_t len;
  uint32_t partition;
  double weight;
  int hot; /* order among the hot symbols + 1; 0: not hot */
} pe__psym_t;

struct pe_partition_map {
  uint32_t count;
  size_t n; /* placed symbols, sorted by bytes */
  pe__psym_t *syms;
  char *arena;
  uint32_t *table; /* open addressing: index + 1 into syms, 0 empty */
  size_t table_mask;
  double *load; /* [count] */
  char *text;
  size_t text_len;
  uint64_t digest;
  char digest_hex[17];
};

void pe_partition_map_destroy(pe_partition_map_t *m) {
  if (!m)
    return;
  free(m->syms);
  free(m->arena);
  free(m->table);
  free(m->load);
  free(m->text);
  free(m);
}

static int pe__sym_cmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = memcmp(a, b, n);
  if (c)
    return c;
  return al < bl ? -1 : (al > bl ? 1 : 0);
}

static int pe__by_bytes(const void *x, const void *y) {
  const pe__psym_t *a = x, *b = y;
  return pe__sym_cmp(a->sym, a->len, b->sym, b->len);
}

/* Packing order: hot symbols in the order given, then heaviest first, ties
 * in byte order. */
static int pe__by_packing(const void *x, const void *y) {
  const pe__psym_t *a = x, *b = y;
  if (a->hot || b->hot) {
    if (!a->hot)
      return 1;
    if (!b->hot)
      return -1;
    return a->hot < b->hot ? -1 : 1;
  }
  if (a->weight != b->weight)
    return a->weight > b->weight ? -1 : 1;
  return pe__sym_cmp(a->sym, a->len, b->sym, b->len);
}

/* Builds the lookup table, the canonical text and the digest of a map
 * whose syms hold their partitions. Sorts syms by bytes. */
static int pe__map_finish(pe_partition_map_t *m, char *err, size_t err_cap) {
  qsort(m->syms, m->n, sizeof *m->syms, pe__by_bytes);
  for (size_t i = 1; i < m->n; i++) {
    if (pe__by_bytes(&m->syms[i - 1], &m->syms[i]) == 0) {
      pe__perr(err, err_cap, "symbol '%.*s' is named twice",
               (int)m->syms[i].len, m->syms[i].sym);
      return PE_EINVAL;
    }
  }
  size_t cap = 16;
  while (cap < m->n * 2)
    cap *= 2;
  m->table = calloc(cap, sizeof *m->table);
  if (!m->table)
    return PE_ENOMEM;
  m->table_mask = cap - 1;
  for (size_t i = 0; i < m->n; i++) {
    size_t h = (size_t)pe_fnv1a64(m->syms[i].sym, m->syms[i].len);
    while (m->table[h & m->table_mask])
      h++;
    m->table[h & m->table_mask] = (uint32_t)(i + 1);
  }
  size_t text_cap = 64;
  for (size_t i = 0; i < m->n; i++)
    text_cap += m->syms[i].len + 8;
  m->text = malloc(text_cap);
  if (!m->text)
    return PE_ENOMEM;
  int k = snprintf(m->text, text_cap,
                   "pe-partitions 1\ncount %u\nhash fnv1a64\n", m->count);
  size_t len = (size_t)k;
  for (size_t i = 0; i < m->n; i++) {
    k = snprintf(m->text + len, text_cap - len, "%u ", m->syms[i].partition);
    len += (size_t)k;
    memcpy(m->text + len, m->syms[i].sym, m->syms[i].len);
    len += m->syms[i].len;
    m->text[len++] = '\n';
  }
  m->text[len] = '\0';
  m->text_len = len;
  m->digest = pe_fnv1a64(m->text, len);
  snprintf(m->digest_hex, sizeof m->digest_hex, "%016llx",
           (unsigned long long)m->digest);
  return PE_OK;
}

static pe_partition_map_t *pe__map_new(uint32_t count) {
  pe_partition_map_t *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->count = count;
  m->load = calloc(count, sizeof *m->load);
  if (!m->load) {
    free(m);
    return NULL;
  }
  return m;
}

/* A symbol as a weights file or a hot list may name it: 1..PE_SYMBOL_MAX
 * bytes, no NUL, no line break. */
static int pe__sym_ok(const char *s, size_t len) {
  if (len == 0 || len > PE_SYMBOL_MAX)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\0' || s[i] == '\n' || s[i] == '\r')
      return 0;
  return 1;
}

/* The index of a symbol among syms[0, n) sorted by bytes, or -1. */
static long pe__bsearch(const pe__psym_t *syms, size_t n, const char *s,
                        size_t len) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = pe__sym_cmp(syms[mid].sym, syms[mid].len, s, len);
    if (c == 0)
      return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Reads the weights file into m->syms (weights set, not placed yet). The
 * symbols point into the file's buffer, kept as m->arena. */
static int pe__read_weights(pe_partition_map_t *m, const char *path,
                            size_t extra, char *err, size_t err_cap) {
  void *data = NULL;
  size_t size = 0;
  int rc = pe_file_read_all(path, &data, &size, err, err_cap);
  if (rc != PE_OK)
    return rc;
  m->arena = data;
  char *text = data;
  size_t lines = 1;
  for (size_t i = 0; i < size; i++)
    lines += text[i] == '\n';
  m->syms = calloc(lines + extra, sizeof *m->syms);
  if (!m->syms)
    return PE_ENOMEM;
  size_t pos = 0, line_no = 0;
  while (pos < size) {
    size_t end = pos;
    while (end < size && text[end] != '\n')
      end++;
    line_no++;
    size_t len = end - pos;
    const char *line = text + pos;
    pos = end + 1;
    if (len > 0 && line[len - 1] == '\r')
      len--;
    if (len == 0 || line[0] == '#')
      continue;
    const char *comma = NULL;
    for (size_t i = len; i-- > 0;)
      if (line[i] == ',') {
        comma = line + i;
        break;
      }
    double w = 0;
    size_t sym_len = comma ? (size_t)(comma - line) : 0;
    size_t wlen = comma ? len - sym_len - 1 : 0;
    int num_ok = comma && pe_parse_double(comma + 1, wlen, &w) == PE_OK;
    if (!num_ok && m->n == 0 && line_no == 1)
      continue; /* a header */
    if (!comma || !pe__sym_ok(line, sym_len)) {
      pe__perr(err, err_cap,
               "%s:%zu: expected 'symbol,weight' with a symbol of 1 to %d "
               "bytes",
               path, line_no, PE_SYMBOL_MAX);
      return PE_EINVAL;
    }
    if (!num_ok || !isfinite(w) || w < 0) {
      pe__perr(err, err_cap,
               "%s:%zu: weight '%.*s' is not a finite number >= 0", path,
               line_no, (int)(wlen > 40 ? 40 : wlen), comma + 1);
      return PE_EINVAL;
    }
    pe__psym_t *s = &m->syms[m->n++];
    s->sym = line;
    s->len = (uint32_t)sym_len;
    s->weight = w;
  }
  return PE_OK;
}

/* The symbols of the arena are moved into one owned buffer, so that the
 * map does not keep the whole file. */
static int pe__compact_arena(pe_partition_map_t *m) {
  size_t total = 0;
  for (size_t i = 0; i < m->n; i++)
    total += m->syms[i].len;
  char *arena = malloc(total + 1);
  if (!arena)
    return PE_ENOMEM;
  size_t at = 0;
  for (size_t i = 0; i < m->n; i++) {
    memcpy(arena + at, m->syms[i].sym, m->syms[i].len);
    m->syms[i].sym = arena + at;
    at += m->syms[i].len;
  }
  free(m->arena);
  m->arena = arena;
  return PE_OK;
}

int pe_partition_map_create(const pe_partition_options_t *o,
                            pe_partition_map_t **out, char *err,
                            size_t err_cap) {
  *out = NULL;
  if (o->count == 0 || o->count > PE_PARTITION_MAX) {
    pe__perr(err, err_cap, "partition count %u is not from 1 to %u", o->count,
             PE_PARTITION_MAX);
    return PE_EINVAL;
  }
  pe_partition_map_t *m = pe__map_new(o->count);
  if (!m)
    return PE_ENOMEM;
  const char *hot = o->hot_symbols ? o->hot_symbols : "";
  size_t n_hot = *hot ? 1 : 0;
  for (const char *c = hot; *c; c++)
    n_hot += *c == ',';
  int rc = PE_OK;
  if (o->weights_path) {
    rc = pe__read_weights(m, o->weights_path, n_hot, err, err_cap);
  } else {
    m->syms = calloc(n_hot + 1, sizeof *m->syms);
    if (!m->syms)
      rc = PE_ENOMEM;
  }
  if (rc != PE_OK)
    goto fail;
  double heaviest = m->n ? 0 : 1;
  for (size_t i = 0; i < m->n; i++)
    if (m->syms[i].weight > heaviest)
      heaviest = m->syms[i].weight;
  /* The file's symbols in byte order, a symbol named twice refused. */
  qsort(m->syms, m->n, sizeof *m->syms, pe__by_bytes);
  for (size_t i = 1; i < m->n; i++) {
    if (pe__by_bytes(&m->syms[i - 1], &m->syms[i]) == 0) {
      pe__perr(err, err_cap, "%s: symbol '%.*s' is named twice",
               o->weights_path, (int)m->syms[i].len, m->syms[i].sym);
      rc = PE_EINVAL;
      goto fail;
    }
  }
  /* The hot symbols: marked in their order; those the file lacks added
   * (they point into o->hot_symbols until the arena is compacted). */
  size_t n_file = m->n;
  int order = 0;
  for (const char *c = hot; *c;) {
    const char *e = strchr(c, ',');
    size_t len = e ? (size_t)(e - c) : strlen(c);
    if (!pe__sym_ok(c, len)) {
      pe__perr(err, err_cap,
               "hot symbol '%.*s' is not a symbol of 1 to %d bytes",
               (int)(len > 40 ? 40 : len), c, PE_SYMBOL_MAX);
      rc = PE_EINVAL;
      goto fail;
    }
    long at = pe__bsearch(m->syms, n_file, c, len);
    for (size_t i = n_file; at < 0 && i < m->n; i++)
      if (pe__sym_cmp(m->syms[i].sym, m->syms[i].len, c, len) == 0)
        at = (long)i;
    if (at >= 0 && m->syms[at].hot) {
      pe__perr(err, err_cap, "hot symbol '%.*s' is named twice", (int)len, c);
      rc = PE_EINVAL;
      goto fail;
    }
    if (at < 0) {
      at = (long)m->n++;
      m->syms[at].sym = c;
      m->syms[at].len = (uint32_t)len;
      m->syms[at].weight = heaviest;
    }
    m->syms[at].hot = ++order;
    c = e ? e + 1 : c + len;
  }
  rc = pe__compact_arena(m);
  if (rc != PE_OK)
    goto fail;
  /* Greedy packing: each symbol onto the lightest partition so far. */
  qsort(m->syms, m->n, sizeof *m->syms, pe__by_packing);
  for (size_t i = 0; i < m->n; i++) {
    uint32_t best = 0;
    for (uint32_t p = 1; p < m->count; p++)
      if (m->load[p] < m->load[best])
        best = p;
    m->syms[i].partition = best;
    m->load[best] += m->syms[i].weight;
  }
  rc = pe__map_finish(m, err, err_cap);
  if (rc != PE_OK)
    goto fail;
  *out = m;
  return PE_OK;
fail:
  if (rc == PE_ENOMEM)
    pe__perr(err, err_cap, "out of memory building the partition map");
  pe_partition_map_destroy(m);
  return rc;
}

/* One line of text[*pos, len), without its '\n'; 0 at the end. */
static int pe__next_line(const char *text, size_t len, size_t *pos,
                         const char **line, size_t *line_len) {
  if (*pos >= len)
    return 0;
  size_t end = *pos;
  while (end < len && text[end] != '\n')
    end++;
  if (end == len)
    return -1; /* not terminated */
  *line = text + *pos;
  *line_len = end - *pos;
  *pos = end + 1;
  return 1;
}

static int pe__line_is(const char *line, size_t len, const char *want) {
  return len == strlen(want) && memcmp(line, want, len) == 0;
}

int pe_partition_map_parse(const char *text, size_t len,
                           pe_partition_map_t **out, char *err,
                           size_t err_cap) {
  *out = NULL;
  size_t pos = 0, line_len = 0, line_no = 0;
  const char *line = NULL;
  uint32_t count = 0;
  if (pe__next_line(text, len, &pos, &line, &line_len) != 1 ||
      !pe__line_is(line, line_len, "pe-partitions 1")) {
    pe__perr(err, err_cap,
             "not a partition map: the first line is not "
             "'pe-partitions 1'");
    return PE_EPARSE;
  }
  if (pe__next_line(text, len, &pos, &line, &line_len) != 1 || line_len < 7 ||
      memcmp(line, "count ", 6) != 0 ||
      pe__parse_count(line + 6, line_len - 6, &count) != PE_OK) {
    pe__perr(err, err_cap,
             "partition map: line 2 is not 'count P' with P "
             "from 1 to %u",
             PE_PARTITION_MAX);
    return PE_EPARSE;
  }
  if (pe__next_line(text, len, &pos, &line, &line_len) != 1 ||
      !pe__line_is(line, line_len, "hash fnv1a64")) {
    pe__perr(err, err_cap, "partition map: line 3 is not 'hash fnv1a64'");
    return PE_EPARSE;
  }
  line_no = 3;
  pe_partition_map_t *m = pe__map_new(count);
  if (!m)
    return PE_ENOMEM;
  size_t lines = 0;
  for (size_t i = pos; i < len; i++)
    lines += text[i] == '\n';
  m->syms = calloc(lines + 1, sizeof *m->syms);
  m->arena = malloc(len - pos + 1);
  int rc = PE_OK;
  if (!m->syms || !m->arena) {
    rc = PE_ENOMEM;
    goto fail;
  }
  size_t at = 0;
  int more;
  while ((more = pe__next_line(text, len, &pos, &line, &line_len)) == 1) {
    line_no++;
    const char *sp = memchr(line, ' ', line_len);
    uint32_t p = 0;
    size_t digits = sp ? (size_t)(sp - line) : 0;
    int ok = sp && digits > 0 && digits <= 5;
    for (size_t i = 0; ok && i < digits; i++) {
      ok = line[i] >= '0' && line[i] <= '9';
      p = p * 10 + (uint32_t)(line[i] - '0');
    }
    size_t sym_len = sp ? line_len - digits - 1 : 0;
    if (!ok || p >= count || !pe__sym_ok(sp + 1, sym_len)) {
      pe__perr(err, err_cap,
               "partition map: line %zu is not '<partition below %u> "
               "<symbol>'",
               line_no, count);
      rc = PE_EPARSE;
      goto fail;
    }
    memcpy(m->arena + at, sp + 1, sym_len);
    pe__psym_t *s = &m->syms[m->n++];
    s->sym = m->arena + at;
    s->len = (uint32_t)sym_len;
    s->partition = p;
    at += sym_len;
  }
  if (more < 0) {
    pe__perr(err, err_cap, "partition map: the last line has no newline");
    rc = PE_EPARSE;
    goto fail;
  }
  rc = pe__map_finish(m, err, err_cap);
  if (rc == PE_EINVAL)
    rc = PE_EPARSE;
  if (rc != PE_OK)
    goto fail;
  /* The text must be canonical: parsing and writing it again gives it. */
  if (m->text_len != len || memcmp(m->text, text, len) != 0) {
    pe__perr(err, err_cap,
             "partition map: not in canonical form (symbols in byte order)");
    rc = PE_EPARSE;
    goto fail;
  }
  *out = m;
  return PE_OK;
fail:
  if (rc == PE_ENOMEM)
    pe__perr(err, err_cap, "out of memory reading the partition map");
  pe_partition_map_destroy(m);
  return rc;
}

uint32_t pe_partition_map_lookup(const pe_partition_map_t *m, const char *sym,
                                 size_t len) {
  uint64_t h = pe_fnv1a64(sym, len);
  if (m->n) {
    for (size_t i = (size_t)h;; i++) {
      uint32_t e = m->table[i & m->table_mask];
      if (!e)
        break;
      const pe__psym_t *s = &m->syms[e - 1];
      if (s->len == len && memcmp(s->sym, sym, len) == 0)
        return s->partition;
    }
  }
  return m->count <= 1 ? 0 : (uint32_t)(h % m->count);
}

uint32_t pe_partition_map_count(const pe_partition_map_t *m) {
  return m->count;
}

size_t pe_partition_map_symbols(const pe_partition_map_t *m) { return m->n; }

const char *pe_partition_map_text(const pe_partition_map_t *m, size_t *len) {
  if (len)
    *len = m->text_len;
  return m->text;
}

uint64_t pe_partition_map_digest(const pe_partition_map_t *m) {
  return m->digest;
}

const char *pe_partition_map_digest_hex(const pe_partition_map_t *m) {
  return m->digest_hex;
}

double pe_partition_map_load(const pe_partition_map_t *m, uint32_t p) {
  return p < m->count ? m->load[p] : 0;
}
