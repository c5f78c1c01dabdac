/* Where the service is in the ticks stream, and what went missing.
 *
 * The position is how many entries the stream ever held up to the last id
 * read: placed at the start (from XINFO STREAM's entries-added and the
 * start id), one more per entry read, and kept in checkpoints. Comparing it
 * with entries-added finds entries trimmed or deleted before they were
 * read (a gap), which a plain XREAD would skip silently. Redis before 7.0
 * reports no entries-added: there, gaps cannot be seen. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "live/live_impl.h"
#include "pe/error.h"

/* Appends XINFO STREAM stream. */
void pe__xinfo(pe_resp_buf_t *b, const char *stream) {
  pe_resp_begin(b, 3);
  pe_resp_arg(b, "XINFO", 5);
  pe_resp_arg(b, "STREAM", 6);
  pe_resp_arg_str(b, stream);
}

/* Keeps an XINFO STREAM reply received at now. PE_EPARSE (message set) for
 * a reply of another shape. */
int pe__xinfo_take(pe_live_t *L, const pe_redis_value_t *v, uint64_t now) {
  if (v->type == PE_REDIS_ERROR && pe_redis_is_transient(v->str)) {
    return PE_EAGAIN; /* CLUSTERDOWN during a failover, LOADING: retried */
  }
  if (pe_redis_stream_info_parse(v, &L->info) != PE_OK) {
    return pe__live_fail(L, PE_EPARSE, "XINFO STREAM %s: %s", L->ticks,
                         v->type == PE_REDIS_ERROR ? v->str
                                                   : "unexpected reply");
  }
  L->info_valid = 1;
  L->info_mono = now;
  return PE_OK;
}

#define PE__GAP_TEXT                                                           \
  "gap: %llu entries of '%s' after %s were trimmed or deleted before they "    \
  "were read (first entry now %s)%s"

/* Looks at fresh stream info: a stream behind the checkpoint, gaps.
 * Returns PE_OK, or PE_EGAP / PE_ESTATE (fatal, message set). */
int pe__gap_check(pe_live_t *L) {
  const pe_redis_stream_info_t *in = &L->info;
  char a[PE_STREAM_ID_MAX], b[PE_STREAM_ID_MAX];
  pe_stream_id_t zero = {0, 0};
  if (L->last_id_seen && pe_stream_id_cmp(L->last_id, zero) > 0 &&
      (!in->exists || pe_stream_id_cmp(in->last_generated, L->last_id) < 0)) {
    return pe__live_fail(
        L, PE_ESTATE,
        "the ticks stream '%s' %s%s%s, but this engine has read up to %s: "
        "Redis lost data or the stream was recreated. Nothing was read. "
        "Start over by removing the checkpoint (and the signals stream), or "
        "restore Redis's data",
        L->ticks, in->exists ? "ends before that id (its last id is " : "",
        in->exists ? pe__live_id_text(in->last_generated, b) : "does not exist",
        in->exists ? ")" : "", pe__live_id_text(L->last_id, a));
  }
  if (!in->exists || !in->has_entries_added || in->entries_added < in->length) {
    return PE_OK; /* Redis < 7.0: nothing to count with */
  }
  /* Entries gone unread = ever added - accounted for (position) - still to
   * read. "Still to read" is known when nothing is (caught up) or when all
   * of the stream is (its head is past us); in between the head is behind
   * us, so nothing unread was trimmed since the last look, and a gap from
   * earlier is found once caught up. */
  uint64_t unread;
  if (in->length == 0 || pe_stream_id_cmp(in->last, L->last_id) <= 0) {
    unread = 0;
  } else if (pe_stream_id_cmp(in->first, L->last_id) > 0) {
    unread = in->length;
  } else {
    return PE_OK;
  }
  if (in->entries_added <= L->position + unread) {
    return PE_OK;
  }
  uint64_t missing = in->entries_added - L->position - unread;
  if (L->cfg.on_gap != PE_LIVE_GAP_SKIP) {
    /* Nothing counted: the next start finds the same gap, until someone
     * decides to skip it. */
    return pe__live_fail(L, PE_EGAP, PE__GAP_TEXT, (unsigned long long)missing,
                         L->ticks, pe__live_id_text(L->last_id, a),
                         in->length ? pe__live_id_text(in->first, b) : "none",
                         "; stopping, nothing counted");
  }
  pe__live_log(L, PE_LIVE_LOG_WARN, PE__GAP_TEXT, (unsigned long long)missing,
               L->ticks, pe__live_id_text(L->last_id, a),
               in->length ? pe__live_id_text(in->first, b) : "none",
               "; counted and skipped");
  L->counter[PE__C_GAPS] += 1;
  L->counter[PE__C_GAP_ENTRIES] += missing;
  L->position += missing;
  return PE_OK;
}

/* Counts the entries after id (the start point of a fresh start). */
static int pe__count_after(pe_live_t *L, pe_stream_id_t id, uint64_t *count) {
  *count = 0;
  for (;;) {
    pe_resp_buf_t *b = &L->req;
    char start[PE_STREAM_ID_MAX + 1];
    start[0] = '(';
    pe_stream_id_format(id, start + 1, PE_STREAM_ID_MAX);
    pe_resp_reset(b);
    pe_resp_begin(b, 6);
    pe_resp_arg(b, "XRANGE", 6);
    pe_resp_arg_str(b, L->ticks);
    pe_resp_arg_str(b, start);
    pe_resp_arg(b, "+", 1);
    pe_resp_arg(b, "COUNT", 5);
    pe_resp_arg(b, "10000", 5);
    const pe_redis_value_t *v;
    int rc = pe_redis_command(L->redis, b, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type != PE_REDIS_ARRAY) {
      return PE_EPARSE;
    }
    if (v->n == 0) {
      return PE_OK;
    }
    *count += v->n;
    pe_stream_field_t f[1];
    size_t nf;
    if (pe_redis_entry_fields(&v->elem[v->n - 1], &id, f, 0, &nf) ==
        PE_EINVAL) {
      return PE_EPARSE;
    }
  }
}

/* Without a checkpoint: sets last_id and position from the start id. */
int pe__gap_fresh_start(pe_live_t *L) {
  const pe_redis_stream_info_t *in = &L->info;
  if (strcmp(L->start_id, "$") == 0) {
    L->last_id = in->last_generated;
    L->position = in->entries_added;
    return PE_OK;
  }
  if (pe_stream_id_parse(L->start_id, strlen(L->start_id), &L->last_id) !=
      PE_OK) {
    return pe__live_fail(L, PE_EINVAL,
                         "start id '%s' is not 0, $ or an entry id MS-SEQ",
                         L->start_id);
  }
  if (!in->exists || !in->has_entries_added) {
    L->position = 0;
    return PE_OK;
  }
  uint64_t after = in->length;
  pe_stream_id_t zero = {0, 0};
  if (pe_stream_id_cmp(L->last_id, zero) > 0) {
    int rc = pe__count_after(L, L->last_id, &after);
    if (rc != PE_OK) {
      return pe__live_fail(L, rc,
                           "cannot count the entries after the start id: %s",
                           pe_redis_errmsg(L->redis));
    }
  }
  /* Entries at or before the start, or trimmed before we came: not ours. */
  L->position = in->entries_added - after;
  return PE_OK;
}
