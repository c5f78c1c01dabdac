/* The live service's figures: filled from the handle, published to the HTTP
 * server, and written as Prometheus text, /health JSON and run summaries.
 * Everything here runs off the per-tick path. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "live/live_impl.h"
#include "pe/clock.h"
#include "pe/error.h"

#define PE__METRICS_EVERY_NS 100000000ull

void pe_live_metrics(const pe_live_t *L, pe_live_metrics_t *m) {
  pe_engine_stats_t st;
  pe_engine_stats(L->engine, &st);
  m->status = L->status;
  m->entries = L->counter[PE__C_ENTRIES];
  m->entries_run = L->entries_run;
  m->ticks = st.ticks;
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    m->rejected[r] = L->counter[PE__C_REJECTED + r];
  }
  memcpy(m->signals, st.signals, sizeof m->signals);
  m->duplicates = L->duplicates;
  m->reconnects = pe_redis_reconnects(L->redis);
  m->checkpoints = L->checkpoints;
  m->checkpoint_failures = L->checkpoint_failures;
  m->checkpoint_wall_ns = L->checkpoint_wall;
  m->lag_known = L->info_valid && L->info.has_entries_added;
  m->lag_entries = 0;
  m->lag_ms = 0;
  if (L->info_valid) {
    if (L->info.entries_added > L->position) {
      m->lag_entries = L->info.entries_added - L->position;
    }
    if (L->info.last_generated.ms > L->last_id.ms) {
      m->lag_ms = L->info.last_generated.ms - L->last_id.ms;
    }
  }
  m->gaps = L->counter[PE__C_GAPS];
  m->gap_entries = L->counter[PE__C_GAP_ENTRIES];
  m->symbols = st.symbols;
  pe__live_id_text(L->last_id, m->last_id);
  m->wall_ns = pe_clock_ns() - L->created_mono;
  m->active_ns =
      L->last_mono > L->first_mono ? L->last_mono - L->first_mono : 0;
  m->latency_ns = L->latency;
  m->worker_id[0] = '\0';
  m->partitions = 0;
  m->workers_alive = 0;
  m->target = 0;
  m->n_owned = 0;
  m->acquired = m->released = m->lost = 0;
}

/* At most every 100 ms, or when forced (a change of status). */
void pe__metrics_publish(pe_live_t *L, int force) {
  if (L->http == NULL) {
    return;
  }
  uint64_t now = pe_clock_ns();
  if (!force && now - L->metrics_mono < PE__METRICS_EVERY_NS) {
    return;
  }
  pe_live_metrics(L, &L->metrics);
  if (pe_live_http_publish(L->http, &L->metrics)) {
    L->metrics_mono = now;
  }
}

/* ---- formatting
 * ---------------------------------------------------------------- */

typedef struct pe__out {
  char *buf;
  size_t cap;
  size_t len;
} pe__out_t;

static void pe__printf(pe__out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pe__printf(pe__out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->len < o->cap ? o->cap - o->len : 0;
  int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0) {
    o->len += (size_t)n;
  }
}

static void pe__metric(pe__out_t *o, const char *name, const char *type,
                       const char *help) {
  pe__printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Count of recorded values <= limit: the buckets whose upper edge is at or
 * under it (within the histogram's 1/32 resolution). */
static uint64_t pe__hist_le(const pe_hist_t *h, uint64_t limit) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < PE_HIST_BUCKETS; i++) {
    if (h->bucket[i] == 0) {
      continue;
    }
    uint64_t upper;
    if (i < PE_HIST_SUB) {
      upper = i;
    } else {
      uint32_t shift = i / PE_HIST_SUB - 1;
      uint64_t sub = (uint64_t)(i % PE_HIST_SUB) + PE_HIST_SUB;
      upper = shift >= 58 ? UINT64_MAX : ((sub + 1) << shift) - 1;
    }
    if (upper <= limit) {
      n += h->bucket[i];
    }
  }
  return n;
}

static double pe__age_s(const pe_live_metrics_t *m, int64_t now) {
  return m->checkpoint_wall_ns > 0
             ? (double)(now - m->checkpoint_wall_ns) * 1e-9
             : NAN;
}

static const char *pe__status_name(int status) {
  switch (status) {
  case PE_LIVE_OK:
    return "ok";
  case PE_LIVE_DISCONNECTED:
    return "disconnected";
  case PE_LIVE_STOPPING:
    return "stopping";
  default:
    return "starting";
  }
}

/* The partitions a cluster worker owns, after the totals. */
static void pe__worker_metrics(pe__out_t *o, const pe_live_metrics_t *m) {
  pe__metric(o, "pe_live_worker_partitions", "gauge",
             "Partitions of the deployment (P)");
  pe__printf(o, "pe_live_worker_partitions %u\n", m->partitions);
  pe__metric(o, "pe_live_worker_alive", "gauge",
             "Workers whose heartbeat has not expired");
  pe__printf(o, "pe_live_worker_alive %u\n", m->workers_alive);
  pe__metric(o, "pe_live_worker_target", "gauge",
             "Partitions this worker aims to own: ceil(P / alive)");
  pe__printf(o, "pe_live_worker_target %u\n", m->target);
  pe__metric(o, "pe_live_worker_owned", "gauge", "Partitions this worker owns");
  pe__printf(o, "pe_live_worker_owned %u\n", m->n_owned);
  pe__metric(o, "pe_live_worker_leases_total", "counter",
             "Partition leases granted, released and lost by this worker");
  pe__printf(o, "pe_live_worker_leases_total{event=\"acquired\"} %llu\n",
             (unsigned long long)m->acquired);
  pe__printf(o, "pe_live_worker_leases_total{event=\"released\"} %llu\n",
             (unsigned long long)m->released);
  pe__printf(o, "pe_live_worker_leases_total{event=\"lost\"} %llu\n",
             (unsigned long long)m->lost);
  uint32_t shown = m->n_owned < PE_LIVE_PARTITIONS_SHOWN
                       ? m->n_owned
                       : PE_LIVE_PARTITIONS_SHOWN;
  pe__metric(o, "pe_live_partition_lag_entries", "gauge",
             "Entries of an owned partition's ticks stream not read yet");
  for (uint32_t i = 0; i < shown; i++) {
    const pe_live_partition_view_t *p = &m->owned[i];
    if (p->lag_known) {
      pe__printf(o, "pe_live_partition_lag_entries{partition=\"%u\"} %llu\n",
                 p->partition, (unsigned long long)p->lag_entries);
    } else {
      pe__printf(o, "pe_live_partition_lag_entries{partition=\"%u\"} NaN\n",
                 p->partition);
    }
  }
  pe__metric(o, "pe_live_partition_lag_seconds", "gauge",
             "Newest entry time minus last read entry time, per partition");
  for (uint32_t i = 0; i < shown; i++) {
    pe__printf(o, "pe_live_partition_lag_seconds{partition=\"%u\"} %.3f\n",
               m->owned[i].partition, (double)m->owned[i].lag_ms * 1e-3);
  }
  pe__metric(o, "pe_live_partition_entries_total", "counter",
             "Entries read from an owned partition over its stream's life");
  for (uint32_t i = 0; i < shown; i++) {
    pe__printf(o, "pe_live_partition_entries_total{partition=\"%u\"} %llu\n",
               m->owned[i].partition, (unsigned long long)m->owned[i].entries);
  }
}

/* The "worker" object of /health. */
static void pe__worker_health(pe__out_t *o, const pe_live_metrics_t *m) {
  pe__printf(o,
             ",\"worker\":{\"id\":\"%s\",\"partitions\":%u,\"alive\":%u,"
             "\"target\":%u,\"owned\":%u,\"acquired\":%llu,"
             "\"released\":%llu,\"lost\":%llu,\"owned_partitions\":[",
             m->worker_id, m->partitions, m->workers_alive, m->target,
             m->n_owned, (unsigned long long)m->acquired,
             (unsigned long long)m->released, (unsigned long long)m->lost);
  uint32_t shown = m->n_owned < PE_LIVE_PARTITIONS_SHOWN
                       ? m->n_owned
                       : PE_LIVE_PARTITIONS_SHOWN;
  for (uint32_t i = 0; i < shown; i++) {
    const pe_live_partition_view_t *p = &m->owned[i];
    pe__printf(o,
               "%s{\"partition\":%u,\"fence\":%llu,\"last_entry_id\":"
               "\"%s\",\"entries\":%llu,\"lag\":{\"entries\":",
               i ? "," : "", p->partition, (unsigned long long)p->fence,
               p->last_id, (unsigned long long)p->entries);
    if (p->lag_known) {
      pe__printf(o, "%llu", (unsigned long long)p->lag_entries);
    } else {
      pe__printf(o, "null");
    }
    pe__printf(o, ",\"ms\":%llu}}", (unsigned long long)p->lag_ms);
  }
  pe__printf(o, "]}");
}

size_t pe_live_metrics_format(const pe_live_metrics_t *m, int64_t now,
                              char *buf, size_t cap) {
  pe__out_t o = {buf, cap, 0};
  pe__metric(&o, "pe_live_up", "gauge",
             "1 while the engine runs and Redis is reachable");
  pe__printf(&o, "pe_live_up %d\n", m->status == PE_LIVE_OK);
  pe__metric(&o, "pe_live_entries_total", "counter",
             "Entries read from the ticks stream, accepted or rejected");
  pe__printf(&o, "pe_live_entries_total %llu\n",
             (unsigned long long)m->entries);
  pe__metric(&o, "pe_live_ticks_total", "counter",
             "Ticks accepted by the engine");
  pe__printf(&o, "pe_live_ticks_total %llu\n", (unsigned long long)m->ticks);
  pe__metric(&o, "pe_live_rejections_total", "counter",
             "Entries rejected, by reason");
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    pe__printf(&o, "pe_live_rejections_total{reason=\"%s\"} %llu\n",
               pe_stream_reject_name(r), (unsigned long long)m->rejected[r]);
  }
  pe__metric(&o, "pe_live_signals_total", "counter",
             "Signals emitted, by pattern");
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    pe__printf(&o, "pe_live_signals_total{pattern=\"%s\"} %llu\n",
               p < PE_RULE_COUNT ? pe_rule_name(p) : "model",
               (unsigned long long)m->signals[p]);
  }
  pe__metric(&o, "pe_live_duplicates_total", "counter",
             "Writes Redis refused because the entry id was already there "
             "(re-derived after a restart or reconnect)");
  pe__printf(&o, "pe_live_duplicates_total %llu\n",
             (unsigned long long)m->duplicates);
  pe__metric(&o, "pe_live_tick_to_signal_latency_seconds", "histogram",
             "From a batch of ticks arriving from Redis to its signals "
             "acknowledged by Redis, one sample per signal");
  static const double le[] = {25e-6,  50e-6,  100e-6, 250e-6, 500e-6, 1e-3,
                              2.5e-3, 5e-3,   10e-3,  25e-3,  50e-3,  100e-3,
                              250e-3, 500e-3, 1.0,    2.5,    5.0};
  for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
    pe__printf(
        &o, "pe_live_tick_to_signal_latency_seconds_bucket{le=\"%g\"} %llu\n",
        le[i],
        (unsigned long long)pe__hist_le(&m->latency_ns,
                                        (uint64_t)llround(le[i] * 1e9)));
  }
  pe__printf(&o,
             "pe_live_tick_to_signal_latency_seconds_bucket{le=\"+Inf\"} "
             "%llu\n",
             (unsigned long long)m->latency_ns.count);
  pe__printf(&o, "pe_live_tick_to_signal_latency_seconds_sum %.9f\n",
             pe_hist_mean(&m->latency_ns) * (double)m->latency_ns.count * 1e-9);
  pe__printf(&o, "pe_live_tick_to_signal_latency_seconds_count %llu\n",
             (unsigned long long)m->latency_ns.count);
  pe__metric(&o, "pe_live_reconnects_total", "counter",
             "Connections to Redis made again after one was lost");
  pe__printf(&o, "pe_live_reconnects_total %llu\n",
             (unsigned long long)m->reconnects);
  pe__metric(&o, "pe_live_checkpoints_total", "counter",
             "Checkpoints written by this process");
  pe__printf(&o, "pe_live_checkpoints_total %llu\n",
             (unsigned long long)m->checkpoints);
  pe__metric(&o, "pe_live_checkpoint_failures_total", "counter",
             "Checkpoints that could not be written");
  pe__printf(&o, "pe_live_checkpoint_failures_total %llu\n",
             (unsigned long long)m->checkpoint_failures);
  pe__metric(&o, "pe_live_checkpoint_age_seconds", "gauge",
             "Seconds since the last checkpoint was taken (NaN: none yet)");
  double age = pe__age_s(m, now);
  if (isnan(age)) {
    pe__printf(&o, "pe_live_checkpoint_age_seconds NaN\n");
  } else {
    pe__printf(&o, "pe_live_checkpoint_age_seconds %.3f\n", age);
  }
  pe__metric(&o, "pe_live_stream_lag_entries", "gauge",
             "Entries in the ticks stream not read yet (NaN before Redis 7)");
  if (m->lag_known) {
    pe__printf(&o, "pe_live_stream_lag_entries %llu\n",
               (unsigned long long)m->lag_entries);
  } else {
    pe__printf(&o, "pe_live_stream_lag_entries NaN\n");
  }
  pe__metric(&o, "pe_live_stream_lag_seconds", "gauge",
             "Time between the newest entry id and the last one read");
  pe__printf(&o, "pe_live_stream_lag_seconds %.3f\n", (double)m->lag_ms * 1e-3);
  pe__metric(&o, "pe_live_gaps_total", "counter",
             "Times entries were found trimmed or deleted before being read");
  pe__printf(&o, "pe_live_gaps_total %llu\n", (unsigned long long)m->gaps);
  pe__metric(&o, "pe_live_gap_entries_total", "counter",
             "Entries lost in those gaps");
  pe__printf(&o, "pe_live_gap_entries_total %llu\n",
             (unsigned long long)m->gap_entries);
  pe__metric(&o, "pe_live_symbols", "gauge", "Symbols the engine tracks");
  pe__printf(&o, "pe_live_symbols %u\n", m->symbols);
  if (m->worker_id[0] != '\0') {
    pe__worker_metrics(&o, m);
  }
  return o.len;
}

size_t pe_live_health_format(const pe_live_metrics_t *m, int64_t now, char *buf,
                             size_t cap) {
  pe__out_t o = {buf, cap, 0};
  double age = pe__age_s(m, now);
  pe__printf(&o,
             "{\"status\":\"%s\",\"symbols\":%u,\"last_entry_id\":\"%s\","
             "\"lag\":{\"entries\":",
             pe__status_name(m->status), m->symbols, m->last_id);
  if (m->lag_known) {
    pe__printf(&o, "%llu", (unsigned long long)m->lag_entries);
  } else {
    pe__printf(&o, "null");
  }
  pe__printf(&o,
             ",\"ms\":%llu},\"entries\":%llu,\"ticks\":%llu,"
             "\"reconnects\":%llu,\"gaps\":%llu,\"checkpoint_age_s\":",
             (unsigned long long)m->lag_ms, (unsigned long long)m->entries,
             (unsigned long long)m->ticks, (unsigned long long)m->reconnects,
             (unsigned long long)m->gaps);
  if (isnan(age)) {
    pe__printf(&o, "null");
  } else {
    pe__printf(&o, "%.3f", age);
  }
  if (m->worker_id[0] != '\0') {
    pe__worker_health(&o, m);
  }
  pe__printf(&o, "}\n");
  return o.len;
}

/* ---- summaries
 * ------------------------------------------------------------------ */

static double pe__active_s(const pe_live_metrics_t *m) {
  return (double)m->active_ns * 1e-9;
}

static double pe__rate(const pe_live_metrics_t *m) {
  double active = pe__active_s(m);
  return active > 0 ? (double)m->entries_run / active : 0.0;
}

size_t pe_live_summary_json(const pe_live_metrics_t *m, char *buf, size_t cap) {
  pe__out_t o = {buf, cap, 0};
  pe__printf(&o,
             "{\"last_id\":\"%s\",\"entries\":%llu,\"entries_run\":%llu,"
             "\"accepted\":%llu,\"rejected\":{",
             m->last_id, (unsigned long long)m->entries,
             (unsigned long long)m->entries_run, (unsigned long long)m->ticks);
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    pe__printf(&o, "%s\"%s\":%llu", r ? "," : "", pe_stream_reject_name(r),
               (unsigned long long)m->rejected[r]);
  }
  pe__printf(&o, "},\"symbols\":%u,\"signals\":{", m->symbols);
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    pe__printf(&o, "%s\"%s\":%llu", p ? "," : "",
               p < PE_RULE_COUNT ? pe_rule_name(p) : "model",
               (unsigned long long)m->signals[p]);
  }
  const pe_hist_t *h = &m->latency_ns;
  pe__printf(
      &o,
      "},\"duplicates\":%llu,\"reconnects\":%llu,\"checkpoints\":%llu,"
      "\"checkpoint_failures\":%llu,\"gaps\":%llu,\"gap_entries\":%llu,"
      "\"wall_s\":%.6f,\"active_s\":%.6f,\"entries_per_s\":%.1f,"
      "\"latency_us\":{\"count\":%llu,\"p50\":%.3f,\"p99\":%.3f,"
      "\"max\":%.3f}}\n",
      (unsigned long long)m->duplicates, (unsigned long long)m->reconnects,
      (unsigned long long)m->checkpoints,
      (unsigned long long)m->checkpoint_failures, (unsigned long long)m->gaps,
      (unsigned long long)m->gap_entries, (double)m->wall_ns * 1e-9,
      pe__active_s(m), pe__rate(m), (unsigned long long)h->count,
      (double)pe_hist_quantile(h, 0.5) * 1e-3,
      (double)pe_hist_quantile(h, 0.99) * 1e-3, (double)h->max * 1e-3);
  return o.len;
}

/* " (name n, name n)" for the non-zero counts, or "" when all are zero. */
static void pe__breakdown(pe__out_t *o, const uint64_t *n, int count,
                          const char *(*name)(int)) {
  const char *sep = " (";
  for (int i = 0; i < count; i++) {
    if (n[i]) {
      pe__printf(o, "%s%s %llu", sep, name(i), (unsigned long long)n[i]);
      sep = ", ";
    }
  }
  pe__printf(o, "%s\n", sep[0] == ',' ? ")" : "");
}

static const char *pe__pattern_name(int p) {
  return p < PE_RULE_COUNT ? pe_rule_name(p) : "model";
}

size_t pe_live_summary_text(const pe_live_t *L, const pe_live_metrics_t *m,
                            char *buf, size_t cap) {
  pe__out_t o = {buf, cap, 0};
  uint64_t rej = 0;
  for (int r = 0; r < PE_STREAM_REJECT_COUNT; r++) {
    rej += m->rejected[r];
  }
  uint64_t all = 0;
  for (int p = 0; p <= PE_RULE_COUNT; p++) {
    all += m->signals[p];
  }
  pe__printf(&o, "live %s -> %s\n", L->ticks, L->signals);
  pe__printf(&o, "  last entry   %s\n", m->last_id);
  pe__printf(&o, "  entries      %llu (this run %llu)\n",
             (unsigned long long)m->entries,
             (unsigned long long)m->entries_run);
  pe__printf(&o, "  accepted     %llu\n", (unsigned long long)m->ticks);
  pe__printf(&o, "  rejected     %llu", (unsigned long long)rej);
  pe__breakdown(&o, m->rejected, PE_STREAM_REJECT_COUNT, pe_stream_reject_name);
  pe__printf(&o, "  symbols      %u\n", m->symbols);
  pe__printf(&o, "  signals      %llu", (unsigned long long)all);
  pe__breakdown(&o, m->signals, PE_RULE_COUNT + 1, pe__pattern_name);
  pe__printf(&o, "  duplicates   %llu (writes Redis already had)\n",
             (unsigned long long)m->duplicates);
  pe__printf(&o, "  reconnects   %llu\n", (unsigned long long)m->reconnects);
  pe__printf(&o, "  checkpoints  %llu (%llu failed)\n",
             (unsigned long long)m->checkpoints,
             (unsigned long long)m->checkpoint_failures);
  pe__printf(&o, "  gaps         %llu (%llu entries)\n",
             (unsigned long long)m->gaps, (unsigned long long)m->gap_entries);
  pe__printf(&o, "  wall time    %.3f s (%.3f s from first to last entry)\n",
             (double)m->wall_ns * 1e-9, pe__active_s(m));
  pe__printf(&o, "  throughput   %.0f entries/s while entries came\n",
             pe__rate(m));
  const pe_hist_t *h = &m->latency_ns;
  if (h->count) {
    pe__printf(&o,
               "  latency      batch in -> signals acknowledged: p50 %.1f us, "
               "p99 %.1f us, max %.1f us (%llu signals)\n",
               (double)pe_hist_quantile(h, 0.5) * 1e-3,
               (double)pe_hist_quantile(h, 0.99) * 1e-3, (double)h->max * 1e-3,
               (unsigned long long)h->count);
  }
  return o.len;
}
