/* Stream entry decoding and entry ids (see pe/stream.h).
 *
 * Both entry shapes, flat fields and one `data` JSON object, are first
 * reduced to one value slot per tick field; the slots are then checked in a
 * fixed order, so the reason an entry gets does not depend on its shape or
 * its field order. The JSON reader is a small recursive-descent scanner over
 * the value bytes: it finds the top-level keys, skips everything else
 * (nesting at most PE__JSON_DEPTH deep) and copies nothing but escaped
 * strings, into buffers on the stack. */
#include "pe/stream.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/textfmt.h"
#include "io/tick_fields.h"
#include "pe/error.h"

/* ---- entry ids
 * --------------------------------------------------------------- */

static int pe__parse_u64(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || len > 20) {
    return PE_EPARSE;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') {
      return PE_EPARSE;
    }
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) {
      return PE_EPARSE;
    }
    v = v * 10 + d;
  }
  *out = v;
  return PE_OK;
}

int pe_stream_id_parse(const char *s, size_t len, pe_stream_id_t *id) {
  const char *dash = memchr(s, '-', len);
  pe_stream_id_t v = {0, 0};
  if (dash == NULL) {
    if (pe__parse_u64(s, len, &v.ms) != PE_OK) {
      return PE_EPARSE;
    }
  } else if (pe__parse_u64(s, (size_t)(dash - s), &v.ms) != PE_OK ||
             pe__parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &v.seq) !=
                 PE_OK) {
    return PE_EPARSE;
  }
  *id = v;
  return PE_OK;
}

size_t pe_stream_id_format(pe_stream_id_t id, char *buf, size_t cap) {
  char tmp[PE_STREAM_ID_MAX];
  char *p = pe__u64_put(tmp, id.ms);
  *p++ = '-';
  p = pe__u64_put(p, id.seq);
  size_t n = (size_t)(p - tmp);
  if (cap > 0) { /* cut as snprintf cuts */
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(buf, tmp, k);
    buf[k] = '\0';
  }
  return n;
}

int pe_stream_id_cmp(pe_stream_id_t a, pe_stream_id_t b) {
  if (a.ms != b.ms) {
    return a.ms < b.ms ? -1 : 1;
  }
  if (a.seq != b.seq) {
    return a.seq < b.seq ? -1 : 1;
  }
  return 0;
}

/* ---- reasons
 * ----------------------------------------------------------------- */

static const char *const pe__stream_reject_names[] = {
#define PE__STREAM_REJECT_NAME(id, name) name,
    PE_STREAM_REJECT_MAP(PE__STREAM_REJECT_NAME)
#undef PE__STREAM_REJECT_NAME
};

const char *pe_stream_reject_name(int reason) {
  if (reason < 0 || reason >= PE_STREAM_REJECT_COUNT) {
    return "unknown";
  }
  return pe__stream_reject_names[reason];
}

int pe_stream_reject_from_error(int err) {
  switch (err) {
  case PE_ENOENT:
    return PE_STREAM_REJECT_MISSING_FIELD;
  case PE_EFIELDS:
    return PE_STREAM_REJECT_DUPLICATE_FIELD;
  case PE_EPARSE:
    return PE_STREAM_REJECT_BAD_JSON;
  case PE_ENUMBER:
    return PE_STREAM_REJECT_BAD_NUMBER;
  case PE_ETIMESTAMP:
    return PE_STREAM_REJECT_BAD_TIMESTAMP;
  case PE_EPRICE:
    return PE_STREAM_REJECT_BAD_PRICE;
  case PE_EVOLUME:
    return PE_STREAM_REJECT_BAD_VOLUME;
  case PE_ESYMBOL:
    return PE_STREAM_REJECT_EMPTY_SYMBOL;
  case PE_ESYMLEN:
    return PE_STREAM_REJECT_SYMBOL_TOO_LONG;
  case PE_ESYMNUL:
    return PE_STREAM_REJECT_SYMBOL_NUL;
  case PE_ELINELEN:
    return PE_STREAM_REJECT_TOO_MANY_FIELDS;
  case PE_EORDER:
    return PE_STREAM_REJECT_OUT_OF_ORDER;
  case PE_EFULL:
    return PE_STREAM_REJECT_SYMBOL_TABLE_FULL;
  default:
    return -1;
  }
}

/* ---- value slots
 * -------------------------------------------------------------- */

enum {
  PE__K_TS = PE__FIELD_TS,
  PE__K_SYMBOL = PE__FIELD_SYMBOL,
  PE__K_PRICE = PE__FIELD_PRICE,
  PE__K_VOLUME = PE__FIELD_VOLUME,
  PE__K_RECV_TS = PE__FIELD_RECV_TS,
  PE__K_COUNT = PE__FIELD_COUNT
};

static const char *const pe__key_names[PE__K_COUNT] = {
    "timestamp", "symbol", "price", "volume", "recv_ts"};

/* Where a slot's value came from. */
enum {
  PE__V_ABSENT = 0,
  PE__V_TEXT,    /* a flat field's bytes, or a JSON string without escapes */
  PE__V_ESCAPED, /* a JSON string with backslash escapes: decode first */
  PE__V_NUMBER,  /* a JSON number token */
  PE__V_OTHER    /* a JSON literal, object or array */
};

typedef struct pe__slot {
  int kind;
  const char *p;
  size_t len;
} pe__slot_t;

/* Which tick field a name stands for, -1 for none. */
static int pe__key_of(const char *s, size_t len) {
  return pe__tick_field_of(s, len);
}

static int pe__why(pe_stream_why_t *why, int err, const char *field,
                   size_t len) {
  why->reason = pe_stream_reject_from_error(err);
  if (len >= sizeof why->field) {
    len = sizeof why->field - 1;
  }
  memcpy(why->field, field, len);
  why->field[len] = '\0';
  return err;
}

static int pe__why_key(pe_stream_why_t *why, int err, int key) {
  return pe__why(why, err, pe__key_names[key], strlen(pe__key_names[key]));
}

/* ---- the JSON scanner
 * ---------------------------------------------------------- */

#define PE__JSON_DEPTH 32

typedef struct pe__json {
  const char *p;
  const char *end;
} pe__json_t;

static void pe__json_ws(pe__json_t *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
    j->p++;
  }
}

/* A string starting at the quote; [*s, *s + *len) gets its inside, *escaped
 * whether it holds a backslash. Checks escapes for form only. */
static int pe__json_string(pe__json_t *j, const char **s, size_t *len,
                           int *escaped) {
  j->p++; /* the opening quote */
  const char *start = j->p;
  *escaped = 0;
  while (j->p < j->end) {
    unsigned char c = (unsigned char)*j->p;
    if (c == '"') {
      *s = start;
      *len = (size_t)(j->p - start);
      j->p++;
      return PE_OK;
    }
    if (c < 0x20) {
      return PE_EPARSE;
    }
    if (c == '\\') {
      *escaped = 1;
      j->p++;
      if (j->p == j->end) {
        return PE_EPARSE;
      }
      char e = *j->p;
      if (e == 'u') {
        for (int k = 1; k <= 4; k++) {
          if (j->p + k >= j->end) {
            return PE_EPARSE;
          }
          char h = j->p[k];
          if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                (h >= 'A' && h <= 'F'))) {
            return PE_EPARSE;
          }
        }
        j->p += 4;
      } else if (strchr("\"\\/bfnrt", e) == NULL || e == '\0') {
        return PE_EPARSE;
      }
    }
    j->p++;
  }
  return PE_EPARSE;
}

static int pe__is_num_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
         c == 'e' || c == 'E';
}

/* Scans one value of any type; strings and numbers come back in *slot. */
static int pe__json_value(pe__json_t *j, int depth, pe__slot_t *slot) {
  pe__json_ws(j);
  if (j->p == j->end) {
    return PE_EPARSE;
  }
  char c = *j->p;
  if (c == '"') {
    int escaped;
    int rc = pe__json_string(j, &slot->p, &slot->len, &escaped);
    slot->kind = escaped ? PE__V_ESCAPED : PE__V_TEXT;
    return rc;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    slot->p = j->p;
    while (j->p < j->end && pe__is_num_char(*j->p)) {
      j->p++;
    }
    slot->len = (size_t)(j->p - slot->p);
    slot->kind = PE__V_NUMBER;
    return PE_OK;
  }
  slot->kind = PE__V_OTHER;
  static const char *const lits[] = {"true", "false", "null"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(lits[i]);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
      j->p += n;
      return PE_OK;
    }
  }
  if ((c != '{' && c != '[') || depth >= PE__JSON_DEPTH) {
    return PE_EPARSE;
  }
  char close = c == '{' ? '}' : ']';
  j->p++;
  pe__json_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return PE_OK;
  }
  for (;;) {
    pe__slot_t inner;
    if (close == '}') {
      pe__json_ws(j);
      const char *ks;
      size_t klen;
      int kesc;
      if (j->p == j->end || *j->p != '"' ||
          pe__json_string(j, &ks, &klen, &kesc) != PE_OK) {
        return PE_EPARSE;
      }
      pe__json_ws(j);
      if (j->p == j->end || *j->p != ':') {
        return PE_EPARSE;
      }
      j->p++;
    }
    if (pe__json_value(j, depth + 1, &inner) != PE_OK) {
      return PE_EPARSE;
    }
    pe__json_ws(j);
    if (j->p == j->end) {
      return PE_EPARSE;
    }
    if (*j->p == ',') {
      j->p++;
      continue;
    }
    if (*j->p == close) {
      j->p++;
      return PE_OK;
    }
    return PE_EPARSE;
  }
}

/* Fills the slots from the top-level keys of a JSON object. */
static int pe__json_object(const char *s, size_t len, pe__slot_t *slot,
                           pe_stream_why_t *why) {
  pe__json_t j = {s, s + len};
  pe__json_ws(&j);
  if (j.p == j.end || *j.p != '{') {
    return pe__why(why, PE_EPARSE, "data", 4);
  }
  j.p++;
  pe__json_ws(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
  } else {
    for (;;) {
      pe__json_ws(&j);
      const char *ks;
      size_t klen;
      int kesc;
      if (j.p == j.end || *j.p != '"' ||
          pe__json_string(&j, &ks, &klen, &kesc) != PE_OK) {
        return pe__why(why, PE_EPARSE, "data", 4);
      }
      pe__json_ws(&j);
      if (j.p == j.end || *j.p != ':') {
        return pe__why(why, PE_EPARSE, "data", 4);
      }
      j.p++;
      pe__slot_t v;
      if (pe__json_value(&j, 1, &v) != PE_OK) {
        return pe__why(why, PE_EPARSE, "data", 4);
      }
      /* An escaped key is never one of ours: none of our names needs one. */
      int k = kesc ? -1 : pe__key_of(ks, klen);
      if (k >= 0) {
        if (slot[k].kind != PE__V_ABSENT) {
          return pe__why_key(why, PE_EFIELDS, k);
        }
        slot[k] = v;
      }
      pe__json_ws(&j);
      if (j.p < j.end && *j.p == ',') {
        j.p++;
        continue;
      }
      if (j.p < j.end && *j.p == '}') {
        j.p++;
        break;
      }
      return pe__why(why, PE_EPARSE, "data", 4);
    }
  }
  pe__json_ws(&j);
  if (j.p != j.end) {
    return pe__why(why, PE_EPARSE, "data", 4);
  }
  return PE_OK;
}

static int pe__hex(char h) {
  if (h >= '0' && h <= '9') {
    return h - '0';
  }
  if (h >= 'a' && h <= 'f') {
    return h - 'a' + 10;
  }
  return h - 'A' + 10;
}

/* Decodes a JSON string's inside (already checked for form) into dst as
 * UTF-8. Returns the decoded length, or cap + 1 when it does not fit. An
 * unpaired surrogate becomes U+FFFD. */
static size_t pe__json_unescape(const char *s, size_t len, char *dst,
                                size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    if (s[i] != '\\') {
      if (n == cap) {
        return cap + 1;
      }
      dst[n++] = s[i++];
      continue;
    }
    char e = s[i + 1];
    i += 2;
    if (e != 'u') {
      static const char from[] = "\"\\/bfnrt";
      static const char to[] = "\"\\/\b\f\n\r\t";
      cp = (uint32_t)(unsigned char)to[strchr(from, e) - from];
    } else {
      cp = (uint32_t)(pe__hex(s[i]) << 12 | pe__hex(s[i + 1]) << 8 |
                      pe__hex(s[i + 2]) << 4 | pe__hex(s[i + 3]));
      i += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= len && s[i] == '\\' &&
          s[i + 1] == 'u') {
        uint32_t lo =
            (uint32_t)(pe__hex(s[i + 2]) << 12 | pe__hex(s[i + 3]) << 8 |
                       pe__hex(s[i + 4]) << 4 | pe__hex(s[i + 5]));
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD;
      }
    }
    unsigned char u[4];
    size_t k;
    if (cp < 0x80) {
      u[0] = (unsigned char)cp;
      k = 1;
    } else if (cp < 0x800) {
      u[0] = (unsigned char)(0xC0 | (cp >> 6));
      u[1] = (unsigned char)(0x80 | (cp & 0x3F));
      k = 2;
    } else if (cp < 0x10000) {
      u[0] = (unsigned char)(0xE0 | (cp >> 12));
      u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
      u[2] = (unsigned char)(0x80 | (cp & 0x3F));
      k = 3;
    } else {
      u[0] = (unsigned char)(0xF0 | (cp >> 18));
      u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
      u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
      u[3] = (unsigned char)(0x80 | (cp & 0x3F));
      k = 4;
    }
    if (n + k > cap) {
      return cap + 1;
    }
    memcpy(dst + n, u, k);
    n += k;
  }
  return n;
}

/* The bytes of a number or timestamp slot, unescaped into buf when needed.
 * Returns 0 when the slot cannot hold one (a literal, an object, too long). */
static int pe__slot_text(const pe__slot_t *slot, char *buf, size_t cap,
                         const char **s, size_t *len) {
  if (slot->kind == PE__V_TEXT || slot->kind == PE__V_NUMBER) {
    *s = slot->p;
    *len = slot->len;
    return 1;
  }
  if (slot->kind == PE__V_ESCAPED) {
    size_t n = pe__json_unescape(slot->p, slot->len, buf, cap);
    if (n > cap) {
      return 0;
    }
    *s = buf;
    *len = n;
    return 1;
  }
  return 0;
}

/* ---- decoding
 * --------------------------------------------------------------------- */

static int pe__decode_slots(const pe__slot_t *slot,
                            const pe_stream_options_t *opt, pe_tick_t *tick,
                            pe_stream_why_t *why) {
  for (int k = PE__K_TS; k <= PE__K_VOLUME; k++) {
    if (slot[k].kind == PE__V_ABSENT) {
      return pe__why_key(why, PE_ENOENT, k);
    }
  }
  char buf[128];
  const char *s;
  size_t len;
  if (!pe__slot_text(&slot[PE__K_TS], buf, sizeof buf, &s, &len) ||
      pe_parse_timestamp(s, len, opt->ts_unit, &tick->ts_ns) != PE_OK) {
    return pe__why_key(why, PE_ETIMESTAMP, PE__K_TS);
  }

  const pe__slot_t *sym = &slot[PE__K_SYMBOL];
  if (sym->kind == PE__V_ESCAPED) {
    len = pe__json_unescape(sym->p, sym->len, tick->symbol, PE_SYMBOL_MAX);
    s = tick->symbol;
  } else if (sym->kind == PE__V_TEXT) {
    s = sym->p;
    len = sym->len;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
      s++;
      len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
      len--;
    }
  } else {
    len = 0; /* a number, literal or object is no symbol */
  }
  if (len == 0) {
    return pe__why_key(why, PE_ESYMBOL, PE__K_SYMBOL);
  }
  if (len > PE_SYMBOL_MAX) {
    return pe__why_key(why, PE_ESYMLEN, PE__K_SYMBOL);
  }
  if (memchr(s, '\0', len) != NULL) {
    return pe__why_key(why, PE_ESYMNUL, PE__K_SYMBOL); /* as the engine */
  }
  memmove(tick->symbol, s, len);
  memset(tick->symbol + len, 0, sizeof tick->symbol - len);
  tick->symbol_len = (uint32_t)len;

  if (!pe__slot_text(&slot[PE__K_PRICE], buf, sizeof buf, &s, &len) ||
      pe_parse_double(s, len, &tick->price) != PE_OK) {
    return pe__why_key(why, PE_ENUMBER, PE__K_PRICE);
  }
  if (!(tick->price > 0.0) || !isfinite(tick->price)) {
    return pe__why_key(why, PE_EPRICE, PE__K_PRICE);
  }
  if (!pe__slot_text(&slot[PE__K_VOLUME], buf, sizeof buf, &s, &len) ||
      pe_parse_double(s, len, &tick->volume) != PE_OK) {
    return pe__why_key(why, PE_ENUMBER, PE__K_VOLUME);
  }
  if (!(tick->volume >= 0.0) || !isfinite(tick->volume)) {
    return pe__why_key(why, PE_EVOLUME, PE__K_VOLUME);
  }
  tick->recv_ts_ns = PE_TS_NONE;
  const pe__slot_t *recv = &slot[PE__K_RECV_TS];
  if (recv->kind != PE__V_ABSENT) {
    int empty = (recv->kind == PE__V_TEXT && recv->len == 0) ||
                (recv->kind == PE__V_OTHER); /* "" or null: no receive time */
    if (!empty && (!pe__slot_text(recv, buf, sizeof buf, &s, &len) ||
                   pe_parse_timestamp(s, len, opt->ts_unit,
                                      &tick->recv_ts_ns) != PE_OK)) {
      return pe__why_key(why, PE_ETIMESTAMP, PE__K_RECV_TS);
    }
  }
  why->reason = -1;
  why->field[0] = '\0';
  return PE_OK;
}

int pe_stream_entry_decode(const pe_stream_field_t *fields, size_t n,
                           const pe_stream_options_t *options, pe_tick_t *tick,
                           pe_stream_why_t *why) {
  static const pe_stream_options_t defaults = {PE_TS_AUTO};
  const pe_stream_options_t *opt = options != NULL ? options : &defaults;
  pe__slot_t slot[PE__K_COUNT];
  memset(slot, 0, sizeof slot);
  const pe_stream_field_t *data = NULL;
  int flat = 0;
  for (size_t i = 0; i < n; i++) {
    const pe_stream_field_t *f = &fields[i];
    if (pe__name_is(f->name, f->name_len, "data")) {
      if (data != NULL) {
        return pe__why(why, PE_EFIELDS, "data", 4);
      }
      data = f;
      continue;
    }
    int k = pe__key_of(f->name, f->name_len);
    if (k < 0) {
      continue;
    }
    if (slot[k].kind != PE__V_ABSENT) {
      return pe__why_key(why, PE_EFIELDS, k);
    }
    slot[k].kind = PE__V_TEXT;
    slot[k].p = f->value;
    slot[k].len = f->value_len;
    flat = 1;
  }
  if (data != NULL) {
    if (flat) {
      return pe__why(why, PE_EFIELDS, "data", 4);
    }
    int rc = pe__json_object(data->value, data->value_len, slot, why);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return pe__decode_slots(slot, opt, tick, why);
}
