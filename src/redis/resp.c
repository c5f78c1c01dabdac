/* RESP commands, reply walkers and the signal stream shape (see pe/redis.h).
 * Pure: no socket here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/textfmt.h"
#include "pe/error.h"
#include "pe/redis.h"

/* ---- the command buffer
 * ------------------------------------------------------- */

void pe_resp_reset(pe_resp_buf_t *b) {
  b->len = 0;
  b->commands = 0;
  b->failed = 0;
}

void pe_resp_free(pe_resp_buf_t *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* Makes room for n more bytes; grows by doubling, so a buffer that has held
 * the largest batch allocates nothing more. */
static int pe__room(pe_resp_buf_t *b, size_t n) {
  if (b->failed) {
    return 0;
  }
  if (b->len + n <= b->cap) {
    return 1;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + n) {
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = 1;
    return 0;
  }
  b->data = p;
  b->cap = cap;
  return 1;
}

static void pe__put(pe_resp_buf_t *b, const char *s, size_t n) {
  if (pe__room(b, n)) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
  }
}

static void pe__header(pe_resp_buf_t *b, char kind, uint64_t n) {
  char tmp[24];
  tmp[0] = kind;
  size_t k = (size_t)(pe__u64_put(tmp + 1, n) - tmp);
  tmp[k++] = '\r';
  tmp[k++] = '\n';
  pe__put(b, tmp, k);
}

void pe_resp_begin(pe_resp_buf_t *b, uint32_t n_args) {
  pe__header(b, '*', n_args);
  b->commands += 1;
}

void pe_resp_arg(pe_resp_buf_t *b, const char *s, size_t len) {
  pe__header(b, '$', len);
  pe__put(b, s, len);
  pe__put(b, "\r\n", 2);
}

void pe_resp_arg_str(pe_resp_buf_t *b, const char *s) {
  pe_resp_arg(b, s, strlen(s));
}

void pe_resp_arg_u64(pe_resp_buf_t *b, uint64_t v) {
  char tmp[24];
  pe_resp_arg(b, tmp, (size_t)(pe__u64_put(tmp, v) - tmp));
}

void pe_resp_arg_i64(pe_resp_buf_t *b, int64_t v) {
  char tmp[24];
  size_t n = 0;
  pe__put_i64(tmp, sizeof tmp, &n, v);
  pe_resp_arg(b, tmp, n);
}

void pe_resp_arg_double(pe_resp_buf_t *b, double v) {
  char tmp[32];
  size_t n = 0;
  pe__put_double(tmp, sizeof tmp, &n, v); /* at most 24 bytes */
  pe_resp_arg(b, tmp, n);
}

void pe_resp_arg_id(pe_resp_buf_t *b, pe_stream_id_t id) {
  char tmp[PE_STREAM_ID_MAX];
  pe_resp_arg(b, tmp, pe_stream_id_format(id, tmp, sizeof tmp));
}

void pe_resp_xadd_begin(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                        const pe_stream_id_t *id, uint32_t pairs) {
  pe_resp_begin(b, 3u + (maxlen ? 3u : 0u) + 2u * pairs);
  pe_resp_arg(b, "XADD", 4);
  pe_resp_arg_str(b, stream);
  if (maxlen) {
    pe_resp_arg(b, "MAXLEN", 6);
    pe_resp_arg(b, "~", 1);
    pe_resp_arg_u64(b, maxlen);
  }
  if (id == NULL) {
    pe_resp_arg(b, "*", 1);
  } else {
    pe_resp_arg_id(b, *id);
  }
}

void pe_resp_append(pe_resp_buf_t *b, const pe_resp_buf_t *other) {
  if (other->failed) {
    b->failed = 1;
    return;
  }
  pe__put(b, other->data, other->len);
  b->commands += other->commands;
}

/* ---- replies
 * ---------------------------------------------------------------------- */

int pe_redis_value_is(const pe_redis_value_t *v, const char *s) {
  return v != NULL &&
         (v->type == PE_REDIS_STRING || v->type == PE_REDIS_STATUS) &&
         v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

int pe_redis_is_duplicate_id(const pe_redis_value_t *v) {
  return v != NULL && v->type == PE_REDIS_ERROR &&
         strstr(v->str, "equal or smaller than the target stream top") != NULL;
}

int pe_redis_xread_entries(const pe_redis_value_t *reply,
                           const pe_redis_value_t **entries, size_t *n) {
  *entries = NULL;
  *n = 0;
  if (reply->type == PE_REDIS_NIL) {
    return PE_OK;
  }
  /* [[stream, [entry, ...]]] */
  if (reply->type != PE_REDIS_ARRAY || reply->n != 1 ||
      reply->elem[0].type != PE_REDIS_ARRAY || reply->elem[0].n != 2 ||
      reply->elem[0].elem[1].type != PE_REDIS_ARRAY) {
    return PE_EPARSE;
  }
  const pe_redis_value_t *list = &reply->elem[0].elem[1];
  *entries = list->elem;
  *n = list->n;
  return PE_OK;
}

int pe_redis_entry_fields(const pe_redis_value_t *entry, pe_stream_id_t *id,
                          pe_stream_field_t *fields, size_t cap, size_t *n) {
  *n = 0;
  if (entry->type != PE_REDIS_ARRAY || entry->n != 2 ||
      entry->elem[0].type != PE_REDIS_STRING ||
      pe_stream_id_parse(entry->elem[0].str, entry->elem[0].len, id) != PE_OK) {
    return PE_EINVAL;
  }
  const pe_redis_value_t *f = &entry->elem[1];
  if (f->type == PE_REDIS_NIL) {
    return PE_EPARSE; /* a deleted entry still pending in a group */
  }
  if (f->type != PE_REDIS_ARRAY || f->n % 2 != 0) {
    return PE_EPARSE;
  }
  if (f->n / 2 > cap) {
    return PE_ELINELEN;
  }
  for (uint32_t i = 0; i < f->n; i += 2) {
    const pe_redis_value_t *k = &f->elem[i];
    const pe_redis_value_t *v = &f->elem[i + 1];
    if (k->type != PE_REDIS_STRING || v->type != PE_REDIS_STRING) {
      return PE_EPARSE;
    }
    fields[i / 2].name = k->str;
    fields[i / 2].name_len = k->len;
    fields[i / 2].value = v->str;
    fields[i / 2].value_len = v->len;
  }
  *n = f->n / 2;
  return PE_OK;
}

static int pe__info_id(const pe_redis_value_t *v, pe_stream_id_t *id) {
  if (v->type == PE_REDIS_NIL) {
    id->ms = 0;
    id->seq = 0;
    return PE_OK;
  }
  if (v->type == PE_REDIS_STRING) {
    return pe_stream_id_parse(v->str, v->len, id);
  }
  /* first-entry is [id, fields] */
  if (v->type == PE_REDIS_ARRAY && v->n == 2 &&
      v->elem[0].type == PE_REDIS_STRING) {
    return pe_stream_id_parse(v->elem[0].str, v->elem[0].len, id);
  }
  return PE_EPARSE;
}

int pe_redis_stream_info_parse(const pe_redis_value_t *reply,
                               pe_redis_stream_info_t *info) {
  memset(info, 0, sizeof *info);
  if (reply->type == PE_REDIS_ERROR) {
    return strstr(reply->str, "no such key") != NULL ? PE_OK : PE_EPARSE;
  }
  if (reply->type != PE_REDIS_ARRAY || reply->n % 2 != 0) {
    return PE_EPARSE;
  }
  info->exists = 1;
  for (uint32_t i = 0; i < reply->n; i += 2) {
    const pe_redis_value_t *k = &reply->elem[i];
    const pe_redis_value_t *v = &reply->elem[i + 1];
    int rc = PE_OK;
    if (pe_redis_value_is(k, "length") && v->type == PE_REDIS_INTEGER) {
      info->length = (uint64_t)v->integer;
    } else if (pe_redis_value_is(k, "first-entry")) {
      rc = pe__info_id(v, &info->first);
    } else if (pe_redis_value_is(k, "last-entry")) {
      rc = pe__info_id(v, &info->last);
    } else if (pe_redis_value_is(k, "last-generated-id")) {
      rc = pe__info_id(v, &info->last_generated);
    } else if (pe_redis_value_is(k, "max-deleted-entry-id")) {
      rc = pe__info_id(v, &info->max_deleted);
    } else if (pe_redis_value_is(k, "entries-added") &&
               v->type == PE_REDIS_INTEGER) {
      info->entries_added = (uint64_t)v->integer;
      info->has_entries_added = 1;
    }
    if (rc != PE_OK) {
      return PE_EPARSE;
    }
  }
  return PE_OK;
}

/* ---- signals
 * ------------------------------------------------------------------------ */

#define PE__SIGNALS_PER_TICK_ID 4u
_Static_assert(PE_MAX_SIGNALS_PER_TICK <= PE__SIGNALS_PER_TICK_ID,
               "signal stream ids leave room for 4 signals per tick");

int pe_signal_stream_id(pe_stream_id_t tick, uint32_t k, pe_stream_id_t *out) {
  if (k >= PE__SIGNALS_PER_TICK_ID ||
      tick.seq > (UINT64_MAX - (PE__SIGNALS_PER_TICK_ID - 1)) /
                     PE__SIGNALS_PER_TICK_ID) {
    return PE_EFULL;
  }
  out->ms = tick.ms;
  out->seq = tick.seq * PE__SIGNALS_PER_TICK_ID + k;
  return PE_OK;
}

void pe_resp_xadd_signal(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                         pe_stream_id_t id, const pe_signal_t *s,
                         pe_stream_id_t tick_id) {
  uint32_t n_fired = 0;
  char fired[128];
  size_t fired_len = 0;
  for (int r = 0; r < PE_RULE_COUNT; r++) {
    if (s->fired & (1u << r)) {
      const char *name = pe_rule_name(r);
      size_t k = strlen(name);
      if (fired_len + k + 1 < sizeof fired) {
        if (fired_len > 0) {
          fired[fired_len++] = ',';
        }
        memcpy(fired + fired_len, name, k);
        fired_len += k;
      }
      n_fired++;
    }
  }
  int model = s->pattern == PE_PATTERN_MODEL;
  /* XADD key [MAXLEN ~ n] id + 9 pairs + 2 per fired rule + model_class */
  uint32_t pairs = 9u + 2u * n_fired + (model ? 1u : 0u);
  pe_resp_xadd_begin(b, stream, maxlen, &id, pairs);
  pe_resp_arg(b, "id", 2);
  pe_resp_arg_str(b, s->id);
  pe_resp_arg(b, "symbol", 6);
  pe_resp_arg_str(b, s->symbol);
  pe_resp_arg(b, "score", 5);
  pe_resp_arg_double(b, s->score);
  pe_resp_arg(b, "pattern", 7);
  pe_resp_arg_str(b, s->label);
  pe_resp_arg(b, "timestamp", 9);
  pe_resp_arg_i64(b, s->ts_ns);
  pe_resp_arg(b, "confidence", 10);
  pe_resp_arg_double(b, s->confidence);
  pe_resp_arg(b, "price", 5);
  pe_resp_arg_double(b, s->price);
  pe_resp_arg(b, "fired", 5);
  pe_resp_arg(b, fired, fired_len);
  for (int r = 0; r < PE_RULE_COUNT; r++) {
    if (s->fired & (1u << r)) {
      char name[64];
      int k = snprintf(name, sizeof name, "%s", pe_rule_name(r));
      pe_resp_arg(b, name, (size_t)k);
      pe_resp_arg_double(b, s->value[r]);
      k = snprintf(name, sizeof name, "%s_contribution", pe_rule_name(r));
      pe_resp_arg(b, name, (size_t)k);
      pe_resp_arg_double(b, s->contribution[r]);
    }
  }
  if (model) {
    pe_resp_arg(b, "model_class", 11);
    pe_resp_arg_i64(b, s->model_class);
  }
  pe_resp_arg(b, "tick_id", 7);
  pe_resp_arg_id(b, tick_id);
}
