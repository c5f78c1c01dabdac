/* Ticks routed to their partitions' streams, pipelined per node (see
 * route.h). */
#define _POSIX_C_SOURCE 200809L
#include "publish/route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pe/clock.h"
#include "pe/error.h"
#include "pe/partition.h"
#include "pe/rcluster.h"

void pe__publish_xadd(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                      const pe_stream_id_t *id, const pe_tick_t *t) {
  int recv = t->recv_ts_ns != PE_TS_NONE;
  pe_resp_xadd_begin(b, stream, maxlen, id, 4u + (recv ? 1u : 0u));
  pe_resp_arg(b, "symbol", 6);
  pe_resp_arg(b, t->symbol, t->symbol_len);
  pe_resp_arg(b, "price", 5);
  pe_resp_arg_double(b, t->price);
  pe_resp_arg(b, "volume", 6);
  pe_resp_arg_double(b, t->volume);
  pe_resp_arg(b, "timestamp", 9);
  pe_resp_arg_i64(b, t->ts_ns);
  if (recv) {
    pe_resp_arg(b, "recv_ts", 7);
    pe_resp_arg_i64(b, t->recv_ts_ns);
  }
}

/* One partition's batch. */
typedef struct pe__part {
  char key[32];    /* ticks:{pN} */
  uint16_t slot;   /* of key */
  pe_resp_buf_t b; /* the XADDs */
  uint32_t count;  /* XADDs in b */
  uint32_t sends;  /* times b was sent */
  uint32_t added;  /* of the last send: entries Redis added */
  uint32_t dups;   /* of the last send: ids it already had */
  int exec_ok;     /* the last send's EXEC succeeded */
  int32_t node;    /* the node of the last send */
} pe__part_t;

/* MOVED replies kept from one attempt to apply after the map's reload. */
#define PE__MOVED_MAX 64

struct pe__route {
  pe_rcluster_t *cluster;
  pe_partition_map_t *map;
  uint32_t n_parts;
  pe__part_t *parts;
  uint32_t *order;  /* partitions of this attempt, grouped by node */
  uint32_t pending; /* ticks queued */
  uint64_t maxlen;
  volatile sig_atomic_t *stop;
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
  pe_resp_buf_t node_buf[PE_RCLUSTER_MAX_NODES];
  pe_resp_buf_t wait;
  uint64_t published, duplicates, resent;
  uint32_t retry_ms;
  pe_redis_redirect_t moved[PE__MOVED_MAX];
  uint32_t moved_from[PE__MOVED_MAX];
  uint32_t n_moved;
  char errmsg[768];
};

static void pe__rerr(pe__route_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pe__rerr(pe__route_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
  va_end(ap);
}

static void pe__rlog(pe__route_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pe__rlog(pe__route_t *r, const char *fmt, ...) {
  if (r->log == NULL) {
    return;
  }
  char line[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  r->log(r->log_ctx, line);
}

int pe__route_create(const pe_publish_config_t *c, pe__route_t **out, char *err,
                     size_t err_cap) {
  *out = NULL;
  pe__route_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  r->maxlen = c->maxlen;
  r->stop = c->stop;
  r->log = c->log;
  r->log_ctx = c->log_ctx;
  r->retry_ms = c->retry_ms ? c->retry_ms : 60000;
  pe_partition_options_t po = {.count = c->partitions,
                               .weights_path = c->partition_weights,
                               .hot_symbols = c->hot_symbols};
  int rc = pe_partition_map_create(&po, &r->map, err, err_cap);
  if (rc == PE_OK) {
    pe_rcluster_options_t ro = {.retry_ms = r->retry_ms};
    rc = pe_rcluster_open(c->redis_url, &ro, &r->cluster, err, err_cap);
  }
  if (rc == PE_OK) {
    r->n_parts = c->partitions;
    r->parts = calloc(r->n_parts, sizeof *r->parts);
    r->order = calloc(r->n_parts, sizeof *r->order);
    if (r->parts == NULL || r->order == NULL) {
      snprintf(err, err_cap, "out of memory");
      rc = PE_ENOMEM;
    }
  }
  if (rc != PE_OK) {
    pe__route_destroy(r);
    return rc;
  }
  for (uint32_t p = 0; p < r->n_parts; p++) {
    int n = pe_partition_key(r->parts[p].key, sizeof r->parts[p].key,
                             PE_PARTITION_TICKS, p);
    r->parts[p].slot = pe_redis_key_slot(r->parts[p].key, (size_t)n);
    r->parts[p].node = -1;
  }
  pe_resp_begin(&r->wait, 3);
  pe_resp_arg(&r->wait, "WAIT", 4);
  pe_resp_arg(&r->wait, "1", 1);
  pe_resp_arg(&r->wait, "1000", 4);
  *out = r;
  return PE_OK;
}

void pe__route_destroy(pe__route_t *r) {
  if (r == NULL) {
    return;
  }
  if (r->parts != NULL) {
    for (uint32_t p = 0; p < r->n_parts; p++) {
      pe_resp_free(&r->parts[p].b);
    }
  }
  for (uint32_t i = 0; i < PE_RCLUSTER_MAX_NODES; i++) {
    pe_resp_free(&r->node_buf[i]);
  }
  pe_resp_free(&r->wait);
  free(r->parts);
  free(r->order);
  pe_rcluster_destroy(r->cluster);
  pe_partition_map_destroy(r->map);
  free(r);
}

int pe__route_connect(pe__route_t *r, pe_stream_id_t *next) {
  int rc = pe_rcluster_connect(r->cluster, r->stop);
  if (rc == PE_OK) {
    rc = pe_rcluster_partitions_agree(r->cluster, r->map, r->stop);
  }
  for (uint32_t p = 0; rc == PE_OK && p < r->n_parts; p++) {
    pe_resp_buf_t b = {0};
    pe_resp_begin(&b, 3);
    pe_resp_arg(&b, "XINFO", 5);
    pe_resp_arg(&b, "STREAM", 6);
    pe_resp_arg_str(&b, r->parts[p].key);
    const pe_redis_value_t *v = NULL;
    rc = pe_rcluster_command(r->cluster, r->parts[p].key,
                             strlen(r->parts[p].key), &b, r->stop, &v);
    pe_resp_free(&b);
    pe_redis_stream_info_t info;
    if (rc == PE_OK && pe_redis_stream_info_parse(v, &info) != PE_OK) {
      pe__rerr(r, "XINFO STREAM %s: %s", r->parts[p].key,
               v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
      return PE_EPARSE;
    }
    if (rc == PE_OK && pe_stream_id_cmp(info.last_generated, *next) > 0) {
      *next = info.last_generated;
    }
  }
  if (rc != PE_OK && r->errmsg[0] == '\0') {
    pe__rerr(r, "%s", pe_rcluster_errmsg(r->cluster));
  }
  return rc;
}

void pe__route_add(pe__route_t *r, const pe_tick_t *t, pe_stream_id_t id) {
  uint32_t p = pe_partition_map_lookup(r->map, t->symbol, t->symbol_len);
  pe__part_t *part = &r->parts[p];
  pe__publish_xadd(&part->b, part->key, r->maxlen, &id, t);
  part->count++;
  r->pending++;
}

uint32_t pe__route_pending(const pe__route_t *r) { return r->pending; }

/* What an error reply inside a batch asks for. */
enum { PE__RETRY_NOW = 1, PE__RETRY_LATER, PE__FATAL };

/* MOVED: the reloaded map sends the batch to the right node at once. ASK
 * (a slot migrating): the batch waits for the migration to end, since a
 * MULTI cannot be split between the two nodes. */
static int pe__classify(const char *err) {
  if (strncmp(err, "MOVED ", 6) == 0) {
    return PE__RETRY_NOW;
  }
  if (strncmp(err, "ASK ", 4) == 0 || pe_redis_is_transient(err)) {
    return PE__RETRY_LATER;
  }
  return PE__FATAL;
}

/* Reads one partition's replies (MULTI, one per XADD, EXEC) and counts
 * them into the partition. PE_OK with exec_ok set or not (*retry telling
 * why), PE_ECONN, PE_ENOMEM, PE_EPARSE / PE_ESTATE (fatal, errmsg set). */
static int pe__read_batch(pe__route_t *r, pe_redis_t *conn, pe__part_t *part,
                          int *retry) {
  const pe_redis_value_t *v = NULL;
  char first_err[300] = "";
  part->exec_ok = 0;
  int rc = pe_redis_read(conn, &v); /* MULTI */
  if (rc == PE_OK && v->type == PE_REDIS_ERROR) {
    snprintf(first_err, sizeof first_err, "%s", v->str);
  }
  for (uint32_t i = 0; rc == PE_OK && i < part->count; i++) {
    rc = pe_redis_read(conn, &v); /* QUEUED */
    if (rc == PE_OK && v->type == PE_REDIS_ERROR && first_err[0] == '\0') {
      snprintf(first_err, sizeof first_err, "%s", v->str);
    }
  }
  if (rc == PE_OK) {
    rc = pe_redis_read(conn, &v); /* EXEC */
  }
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type != PE_REDIS_ARRAY || v->n != part->count) {
    const char *why = first_err[0]                ? first_err
                      : v->type == PE_REDIS_ERROR ? v->str
                                                  : "unexpected EXEC reply";
    int kind = pe__classify(why);
    pe_redis_redirect_t red;
    pe_redis_value_t wv = {
        .type = PE_REDIS_ERROR, .str = why, .len = strlen(why)};
    if (kind == PE__RETRY_NOW && pe_redis_redirect_parse(&wv, &red)) {
      r->moved[r->n_moved % PE__MOVED_MAX] = red;
      r->moved_from[r->n_moved % PE__MOVED_MAX] = (uint32_t)part->node;
      r->n_moved++;
    }
    if (kind == PE__FATAL) {
      pe__rerr(r, "Redis refused a batch for %s: %s", part->key, why);
      return PE_EPARSE;
    }
    *retry = kind > *retry ? kind : *retry; /* LATER wins over NOW */
    pe__rerr(r, "%s: %s", part->key, why);
    return PE_OK;
  }
  part->added = 0;
  part->dups = 0;
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *e = &v->elem[i];
    if (e->type != PE_REDIS_ERROR) {
      part->added++;
    } else if (pe_redis_is_duplicate_id(e) && part->sends > 1) {
      part->dups++;
    } else if (pe_redis_is_duplicate_id(e)) {
      pe__rerr(r,
               "XADD %s: an id chosen here is already taken: another writer "
               "is adding to the stream",
               part->key);
      return PE_ESTATE;
    } else {
      pe__rerr(r, "XADD %s: %s", part->key, e->str);
      return PE_EPARSE;
    }
  }
  part->exec_ok = 1;
  return PE_OK;
}

static void pe__sleep_ms(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  (void)nanosleep(&ts, NULL);
}

/* One attempt: every pending partition's batch to its node, replies read.
 * Returns PE_OK (check which partitions are still pending), or a fatal
 * error. *retry gets PE__RETRY_NOW / PE__RETRY_LATER when something must be
 * sent again. */
static int pe__attempt(pe__route_t *r, int *retry) {
  /* Group the pending partitions by node. */
  uint32_t n_order = 0;
  uint32_t n_nodes = pe_rcluster_nodes(r->cluster);
  for (uint32_t node = 0; node < n_nodes; node++) {
    for (uint32_t p = 0; p < r->n_parts; p++) {
      if (r->parts[p].count > 0 &&
          pe_rcluster_slot_node(r->cluster, r->parts[p].slot) == (int)node) {
        r->order[n_order++] = p;
      }
    }
  }
  uint32_t unserved = 0;
  for (uint32_t p = 0; p < r->n_parts; p++) {
    unserved += r->parts[p].count > 0 &&
                pe_rcluster_slot_node(r->cluster, r->parts[p].slot) < 0;
  }
  if (unserved > 0) {
    pe__rerr(r,
             "no Redis node serves %u partitions' slots (a failover "
             "under way?)",
             unserved);
    *retry = PE__RETRY_LATER;
  }
  /* Write: one buffer per node. */
  uint8_t written[PE_RCLUSTER_MAX_NODES] = {0};
  for (uint32_t i = 0; i < n_order;) {
    uint32_t p = r->order[i];
    int node = pe_rcluster_slot_node(r->cluster, r->parts[p].slot);
    pe_resp_buf_t *nb = &r->node_buf[node];
    pe_resp_reset(nb);
    uint32_t j = i;
    for (; j < n_order && pe_rcluster_slot_node(
                              r->cluster, r->parts[r->order[j]].slot) == node;
         j++) {
      pe__part_t *part = &r->parts[r->order[j]];
      pe_resp_begin(nb, 1);
      pe_resp_arg(nb, "MULTI", 5);
      pe_resp_append(nb, &part->b);
      pe_resp_begin(nb, 1);
      pe_resp_arg(nb, "EXEC", 4);
      part->node = node;
      part->exec_ok = 0;
      part->sends++;
      r->resent += part->sends > 1;
    }
    if (pe_rcluster_node_replicas(r->cluster, (uint32_t)node) > 0) {
      pe_resp_append(nb, &r->wait);
    }
    if (nb->failed) {
      pe__rerr(r, "out of memory for a batch");
      return PE_ENOMEM;
    }
    pe_redis_t *conn = NULL;
    int rc = pe_rcluster_node_conn(r->cluster, (uint32_t)node, &conn);
    if (rc == PE_OK) {
      rc = pe_redis_write(conn, nb->data, nb->len);
    }
    if (rc == PE_EINVAL || rc == PE_ENOMEM) {
      pe__rerr(r, "%s", pe_rcluster_errmsg(r->cluster));
      return rc;
    }
    if (rc == PE_OK) {
      written[node] = 1;
    } else {
      pe__rerr(r, "%s",
               conn ? pe_redis_errmsg(conn) : pe_rcluster_errmsg(r->cluster));
      *retry = PE__RETRY_LATER;
    }
    i = j;
  }
  /* Read, node by node; a node's batches are done once its WAIT says so. */
  for (uint32_t i = 0; i < n_order;) {
    int node = r->parts[r->order[i]].node;
    uint32_t j = i;
    while (j < n_order && r->parts[r->order[j]].node == node) {
      j++;
    }
    if (!written[node]) {
      i = j;
      continue;
    }
    pe_redis_t *conn = NULL;
    (void)pe_rcluster_node_conn(r->cluster, (uint32_t)node, &conn);
    int rc = PE_OK;
    for (uint32_t k = i; rc == PE_OK && k < j; k++) {
      rc = pe__read_batch(r, conn, &r->parts[r->order[k]], retry);
    }
    int durable = rc == PE_OK;
    if (rc == PE_OK &&
        pe_rcluster_node_replicas(r->cluster, (uint32_t)node) > 0) {
      const pe_redis_value_t *v = NULL;
      rc = pe_redis_read(conn, &v);
      durable = rc == PE_OK && v->type == PE_REDIS_INTEGER && v->integer >= 1;
      if (rc == PE_OK && !durable) {
        pe__rerr(r, "%s: WAIT: no replica acknowledged the batches in 1 s",
                 pe_rcluster_node_name(r->cluster, (uint32_t)node));
        *retry = PE__RETRY_LATER;
      }
    }
    if (rc == PE_ECONN) {
      pe__rerr(r, "%s", pe_redis_errmsg(conn));
      *retry = PE__RETRY_LATER;
    } else if (rc != PE_OK) {
      return rc;
    }
    for (uint32_t k = i; durable && k < j; k++) {
      pe__part_t *part = &r->parts[r->order[k]];
      if (!part->exec_ok) {
        continue;
      }
      r->published += part->added;
      r->duplicates += part->dups;
      r->pending -= part->count;
      part->count = 0;
      part->sends = 0;
      pe_resp_reset(&part->b);
    }
    i = j;
  }
  return PE_OK;
}

int pe__route_flush(pe__route_t *r) {
  if (r->pending == 0) {
    return PE_OK;
  }
  for (uint32_t p = 0; p < r->n_parts; p++) {
    if (r->parts[p].b.failed) {
      pe__rerr(r, "out of memory for a batch");
      return PE_ENOMEM;
    }
  }
  uint64_t deadline = 0;
  uint32_t wait_ms = 50;
  for (;;) {
    int retry = 0;
    int rc = pe__attempt(r, &retry);
    if (rc != PE_OK || r->pending == 0) {
      return rc;
    }
    uint64_t now = pe_clock_ns();
    if (deadline == 0) {
      deadline = now + (uint64_t)r->retry_ms * 1000000u;
    }
    if (now >= deadline) {
      char last[700];
      memcpy(last, r->errmsg, sizeof last - 1);
      last[sizeof last - 1] = '\0';
      pe__rerr(r, "gave up after %u ms of retries: %s", r->retry_ms, last);
      return PE_ECONN;
    }
    if (r->stop != NULL && *r->stop && retry == PE__RETRY_LATER) {
      pe__rerr(r, "stopped with %u ticks not acknowledged", r->pending);
      return PE_EAGAIN;
    }
    pe__rlog(r, "%s; sending %u ticks again", r->errmsg, r->pending);
    if (retry != PE__RETRY_NOW) {
      pe__sleep_ms(wait_ms);
      wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
    }
    (void)pe_rcluster_refresh(r->cluster);
    uint32_t n = r->n_moved < PE__MOVED_MAX ? r->n_moved : PE__MOVED_MAX;
    for (uint32_t i = 0; i < n; i++) {
      if (pe_rcluster_redirected(r->cluster, &r->moved[i], r->moved_from[i]) <
          0) {
        pe__rerr(r, "%s", pe_rcluster_errmsg(r->cluster));
        return PE_ENOMEM;
      }
    }
    r->n_moved = 0;
  }
}

void pe__route_stats(const pe__route_t *r, pe_publish_stats_t *st) {
  st->published += r->published;
  st->duplicates += r->duplicates;
  st->resent += r->resent;
  st->reconnects += pe_rcluster_reconnects(r->cluster);
}

const char *pe__route_errmsg(const pe__route_t *r) { return r->errmsg; }

const char *pe__route_digest(const pe__route_t *r) {
  return pe_partition_map_digest_hex(r->map);
}

uint32_t pe__route_masters(const pe__route_t *r) {
  return pe_rcluster_masters(r->cluster);
}
