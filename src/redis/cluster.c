/* Redis Cluster routing (see pe/rcluster.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pe/clock.h"
#include "pe/error.h"
#include "pe/rcluster.h"

/* ---- slots ------------------------------------------------------------------
 */

uint16_t pe_crc16(const void *data, size_t len) {
  const unsigned char *p = data;
  uint32_t crc = 0; /* 16 bits kept */
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint32_t)p[i] << 8;
    for (int b = 0; b < 8; b++) {
      crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) & 0xFFFFu
                            : (crc << 1) & 0xFFFFu;
    }
  }
  return (uint16_t)crc;
}

uint16_t pe_redis_key_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open != NULL) {
    size_t start = (size_t)(open - key) + 1;
    const char *close = memchr(key + start, '}', len - start);
    if (close != NULL && close > key + start) {
      return (uint16_t)(pe_crc16(key + start, (size_t)(close - key) - start) &
                        (PE_RCLUSTER_SLOTS - 1));
    }
  }
  return (uint16_t)(pe_crc16(key, len) & (PE_RCLUSTER_SLOTS - 1));
}

int pe_redis_redirect_parse(const pe_redis_value_t *v,
                            pe_redis_redirect_t *out) {
  if (v == NULL || v->type != PE_REDIS_ERROR) {
    return 0;
  }
  const char *s = v->str;
  int ask;
  if (strncmp(s, "MOVED ", 6) == 0) {
    ask = 0;
    s += 6;
  } else if (strncmp(s, "ASK ", 4) == 0) {
    ask = 1;
    s += 4;
  } else {
    return 0;
  }
  char *end = NULL;
  unsigned long slot = strtoul(s, &end, 10);
  if (end == s || *end != ' ' || slot >= PE_RCLUSTER_SLOTS) {
    return 0;
  }
  const char *addr = end + 1;
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= sizeof out->host) {
    return 0;
  }
  char *pend = NULL;
  long port = strtol(colon + 1, &pend, 10);
  if (pend == colon + 1 || *pend != '\0' || port <= 0 || port > 65535) {
    return 0;
  }
  out->ask = ask;
  out->slot = (uint16_t)slot;
  memcpy(out->host, addr, (size_t)(colon - addr));
  out->host[colon - addr] = '\0';
  out->port = (int)port;
  return 1;
}

/* ---- the router -------------------------------------------------------------
 */

#define PE__NO_NODE 0xFFFFu

typedef struct pe__node {
  char host[256];
  int port;
  char name[280];
  pe_redis_t *conn;
  uint32_t replicas;
  uint64_t connects; /* successful connections */
} pe__node_t;

struct pe_rcluster {
  pe_redis_url_t seed;
  pe_rcluster_options_t opt;
  int cluster;
  uint64_t epoch;
  uint32_t n_nodes;
  pe__node_t nodes[PE_RCLUSTER_MAX_NODES];
  uint16_t slots[PE_RCLUSTER_SLOTS]; /* node index, PE__NO_NODE */
  uint16_t next_slots[PE_RCLUSTER_SLOTS];
  uint32_t next_replicas[PE_RCLUSTER_MAX_NODES];
  pe_resp_buf_t asking;
  char errmsg[768];
};

static void pe__err(pe_rcluster_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pe__err(pe_rcluster_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
  va_end(ap);
}

int pe_rcluster_open(const char *url, const pe_rcluster_options_t *options,
                     pe_rcluster_t **out, char *err, size_t err_cap) {
  *out = NULL;
  pe_redis_url_t u;
  int rc = pe_redis_url_parse(url, &u, err, err_cap);
  if (rc != PE_OK) {
    return rc;
  }
  pe_rcluster_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  c->seed = u;
  if (options != NULL) {
    c->opt = *options;
  }
  if (c->opt.retry_ms == 0) {
    c->opt.retry_ms = 60000;
  }
  for (size_t i = 0; i < PE_RCLUSTER_SLOTS; i++) {
    c->slots[i] = PE__NO_NODE;
  }
  pe_resp_begin(&c->asking, 1);
  pe_resp_arg(&c->asking, "ASKING", 6);
  if (c->asking.failed) {
    pe_rcluster_destroy(c);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  *out = c;
  return PE_OK;
}

void pe_rcluster_destroy(pe_rcluster_t *c) {
  if (c == NULL) {
    return;
  }
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    pe_redis_destroy(c->nodes[i].conn);
  }
  pe_resp_free(&c->asking);
  free(c);
}

/* The index of the node at host:port, added when new; -1 when the table is
 * full or out of memory. The seed's credentials go with every node. */
static int pe__node_index(pe_rcluster_t *c, const char *host, int port) {
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0) {
      return (int)i;
    }
  }
  if (c->n_nodes >= PE_RCLUSTER_MAX_NODES || strlen(host) >= 256) {
    pe__err(c, "more than %u Redis nodes", PE_RCLUSTER_MAX_NODES);
    return -1;
  }
  pe__node_t *n = &c->nodes[c->n_nodes];
  memset(n, 0, sizeof *n);
  pe_redis_url_t u = c->seed;
  snprintf(u.host, sizeof u.host, "%s", host);
  u.port = port;
  u.unix_path[0] = '\0';
  if (pe_redis_create(&u, &c->opt.conn, &n->conn) != PE_OK) {
    pe__err(c, "out of memory");
    return -1;
  }
  snprintf(n->host, sizeof n->host, "%s", host);
  n->port = port;
  snprintf(n->name, sizeof n->name, "%s:%d", host, port);
  return (int)c->n_nodes++;
}

/* The seed itself as node 0 of a single node (keeps a unix socket). */
static int pe__seed_node(pe_rcluster_t *c) {
  if (c->n_nodes > 0) {
    return 0;
  }
  pe__node_t *n = &c->nodes[0];
  memset(n, 0, sizeof *n);
  if (pe_redis_create(&c->seed, &c->opt.conn, &n->conn) != PE_OK) {
    pe__err(c, "out of memory");
    return -1;
  }
  snprintf(n->host, sizeof n->host, "%s",
           c->seed.unix_path[0] ? c->seed.unix_path : c->seed.host);
  n->port = c->seed.unix_path[0] ? 0 : c->seed.port;
  if (c->seed.unix_path[0]) {
    snprintf(n->name, sizeof n->name, "unix:%s", c->seed.unix_path);
  } else {
    snprintf(n->name, sizeof n->name, "%s:%d", n->host, n->port);
  }
  c->n_nodes = 1;
  return 0;
}

int pe_rcluster_node_conn(pe_rcluster_t *c, uint32_t node, pe_redis_t **out) {
  *out = NULL;
  if (node >= c->n_nodes) {
    pe__err(c, "no Redis node %u", node);
    return PE_EINVAL;
  }
  pe__node_t *n = &c->nodes[node];
  if (!pe_redis_is_connected(n->conn)) {
    int rc = pe_redis_connect(n->conn);
    if (rc != PE_OK) {
      pe__err(c, "%s", pe_redis_errmsg(n->conn));
      return rc;
    }
    n->connects++;
  }
  *out = n->conn;
  return PE_OK;
}

static int pe__int(const pe_redis_value_t *v, long long *out) {
  if (v->type == PE_REDIS_INTEGER) {
    *out = v->integer;
    return 1;
  }
  if (v->type == PE_REDIS_STRING && v->len > 0 && v->len < 20) {
    char *end = NULL;
    *out = strtoll(v->str, &end, 10);
    return *end == '\0';
  }
  return 0;
}

/* Records slots [lo, hi] for the master at host:port. */
static int pe__assign(pe_rcluster_t *c, long long lo, long long hi,
                      const char *host, size_t host_len, long long port,
                      uint32_t replicas) {
  if (lo < 0 || hi < lo || hi >= PE_RCLUSTER_SLOTS || port <= 0 ||
      port > 65535 || host_len == 0 || host_len >= 256) {
    return PE_EPARSE;
  }
  char h[256];
  memcpy(h, host, host_len);
  h[host_len] = '\0';
  int idx = pe__node_index(c, h, (int)port);
  if (idx < 0) {
    return PE_ENOMEM;
  }
  for (long long s = lo; s <= hi; s++) {
    c->next_slots[s] = (uint16_t)idx;
  }
  c->next_replicas[idx] = replicas;
  return PE_OK;
}

/* A flat [key, value, ...] array's value for key, or NULL. */
static const pe_redis_value_t *pe__field(const pe_redis_value_t *map,
                                         const char *key) {
  if (map->type != PE_REDIS_ARRAY) {
    return NULL;
  }
  for (uint32_t i = 0; i + 1 < map->n; i += 2) {
    if (pe_redis_value_is(&map->elem[i], key)) {
      return &map->elem[i + 1];
    }
  }
  return NULL;
}

/* CLUSTER SHARDS: [[ "slots", [lo, hi, ...], "nodes", [{id, port, ip,
 * endpoint, role, health, ...}, ...] ], ...]. The master is the node whose
 * role is master and whose health is online; a shard without one leaves its
 * slots unserved (a failover under way). */
static int pe__parse_shards(pe_rcluster_t *c, const pe_redis_value_t *v) {
  if (v->type != PE_REDIS_ARRAY) {
    return PE_EPARSE;
  }
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *slots = pe__field(&v->elem[i], "slots");
    const pe_redis_value_t *nodes = pe__field(&v->elem[i], "nodes");
    if (slots == NULL || nodes == NULL || slots->type != PE_REDIS_ARRAY ||
        nodes->type != PE_REDIS_ARRAY || slots->n % 2 != 0) {
      return PE_EPARSE;
    }
    const pe_redis_value_t *master = NULL;
    uint32_t replicas = 0;
    for (uint32_t k = 0; k < nodes->n; k++) {
      const pe_redis_value_t *role = pe__field(&nodes->elem[k], "role");
      const pe_redis_value_t *health = pe__field(&nodes->elem[k], "health");
      int online = health == NULL || pe_redis_value_is(health, "online");
      if (pe_redis_value_is(role, "master") && online) {
        master = &nodes->elem[k];
      } else if (pe_redis_value_is(role, "replica") &&
                 (online || pe_redis_value_is(health, "loading"))) {
        /* "loading" too: Redis 7.0 says so of a replica in sync until
         * the master's next ping moves its offset. A dead one is "fail"
         * (7.0) or "failed" (as documented). */
        replicas++;
      }
    }
    if (master == NULL || slots->n == 0) {
      continue;
    }
    const pe_redis_value_t *ip = pe__field(master, "ip");
    const pe_redis_value_t *endpoint = pe__field(master, "endpoint");
    const pe_redis_value_t *port = pe__field(master, "port");
    if (endpoint != NULL && endpoint->type == PE_REDIS_STRING &&
        endpoint->len > 0 && !pe_redis_value_is(endpoint, "?")) {
      ip = endpoint;
    }
    long long p = 0;
    if (ip == NULL || ip->type != PE_REDIS_STRING || port == NULL ||
        !pe__int(port, &p)) {
      return PE_EPARSE;
    }
    for (uint32_t k = 0; k < slots->n; k += 2) {
      long long lo, hi;
      if (!pe__int(&slots->elem[k], &lo) ||
          !pe__int(&slots->elem[k + 1], &hi)) {
        return PE_EPARSE;
      }
      int rc = pe__assign(c, lo, hi, ip->str, ip->len, p, replicas);
      if (rc != PE_OK) {
        return rc;
      }
    }
  }
  return PE_OK;
}

/* CLUSTER SLOTS: [[lo, hi, [ip, port, id], [replica...]...], ...]. */
static int pe__parse_slots(pe_rcluster_t *c, const pe_redis_value_t *v) {
  if (v->type != PE_REDIS_ARRAY) {
    return PE_EPARSE;
  }
  for (uint32_t i = 0; i < v->n; i++) {
    const pe_redis_value_t *e = &v->elem[i];
    long long lo, hi, port;
    if (e->type != PE_REDIS_ARRAY || e->n < 3 || !pe__int(&e->elem[0], &lo) ||
        !pe__int(&e->elem[1], &hi) || e->elem[2].type != PE_REDIS_ARRAY ||
        e->elem[2].n < 2 || e->elem[2].elem[0].type != PE_REDIS_STRING ||
        !pe__int(&e->elem[2].elem[1], &port)) {
      return PE_EPARSE;
    }
    int rc = pe__assign(c, lo, hi, e->elem[2].elem[0].str,
                        e->elem[2].elem[0].len, port, e->n - 3);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}

/* Runs CLUSTER SHARDS (or SLOTS) on one connection into next_slots.
 * PE_EUNSUPPORTED when cluster support is disabled there; PE_ECONN;
 * PE_EPARSE. */
static int pe__load_map(pe_rcluster_t *c, pe_redis_t *r) {
  static const char *const which[] = {"SHARDS", "SLOTS"};
  for (int w = 0; w < 2; w++) {
    pe_resp_buf_t b = {0};
    pe_resp_begin(&b, 2);
    pe_resp_arg(&b, "CLUSTER", 7);
    pe_resp_arg_str(&b, which[w]);
    const pe_redis_value_t *v = NULL;
    int rc = pe_redis_command(r, &b, &v);
    pe_resp_free(&b);
    if (rc != PE_OK) {
      pe__err(c, "%s", pe_redis_errmsg(r));
      return rc;
    }
    if (v->type == PE_REDIS_ERROR) {
      if (strstr(v->str, "cluster support disabled") != NULL) {
        return PE_EUNSUPPORTED;
      }
      if (w == 0 && (strstr(v->str, "unknown subcommand") != NULL ||
                     strstr(v->str, "Unknown subcommand") != NULL)) {
        continue; /* before Redis 7: CLUSTER SLOTS */
      }
      pe__err(c, "CLUSTER %s: %s", which[w], v->str);
      return pe_redis_is_transient(v->str) ? PE_ECONN : PE_EPARSE;
    }
    for (size_t s = 0; s < PE_RCLUSTER_SLOTS; s++) {
      c->next_slots[s] = PE__NO_NODE;
    }
    memset(c->next_replicas, 0, sizeof c->next_replicas);
    rc = w == 0 ? pe__parse_shards(c, v) : pe__parse_slots(c, v);
    if (rc == PE_EPARSE) {
      pe__err(c, "CLUSTER %s: a reply of unexpected shape", which[w]);
    }
    return rc;
  }
  return PE_EPARSE;
}

static void pe__install_map(pe_rcluster_t *c) {
  int changed = memcmp(c->slots, c->next_slots, sizeof c->slots) != 0;
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    changed |= c->nodes[i].replicas != c->next_replicas[i];
    c->nodes[i].replicas = c->next_replicas[i];
  }
  if (changed) {
    memcpy(c->slots, c->next_slots, sizeof c->slots);
    c->epoch++;
  }
}

/* One attempt to load the map through node i. */
static int pe__refresh_via(pe_rcluster_t *c, uint32_t i) {
  pe_redis_t *r;
  int rc = pe_rcluster_node_conn(c, i, &r);
  if (rc != PE_OK) {
    return rc;
  }
  rc = pe__load_map(c, r);
  if (rc == PE_OK) {
    pe__install_map(c);
  }
  return rc;
}

int pe_rcluster_refresh(pe_rcluster_t *c) {
  if (!c->cluster) {
    return PE_OK;
  }
  int rc = PE_ECONN;
  /* Masters first (the nodes serving slots), then every other known node:
   * the seed and the replicas seen are among them. */
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < c->n_nodes; i++) {
      int serving = 0;
      for (size_t s = 0; s < PE_RCLUSTER_SLOTS && !serving; s += 1) {
        serving = c->slots[s] == i;
      }
      if (serving != (pass == 0)) {
        continue;
      }
      rc = pe__refresh_via(c, i);
      if (rc == PE_OK || rc == PE_ENOMEM) {
        return rc;
      }
    }
  }
  return rc == PE_EUNSUPPORTED ? PE_EPARSE : rc;
}

static void pe__sleep_ms(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  (void)nanosleep(&ts, NULL);
}

/* Sleeps a step of the retry backoff (doubling 50 ms .. 1 s); 0 when the
 * deadline has passed or stop is set. */
static int pe__backoff(uint32_t *wait_ms, uint64_t deadline,
                       volatile sig_atomic_t *stop) {
  if ((stop != NULL && *stop) || pe_clock_ns() >= deadline) {
    return 0;
  }
  pe__sleep_ms(*wait_ms);
  *wait_ms = *wait_ms * 2 > 1000 ? 1000 : *wait_ms * 2;
  return 1;
}

int pe_rcluster_connect(pe_rcluster_t *c, volatile sig_atomic_t *stop) {
  uint64_t deadline = pe_clock_ns() + (uint64_t)c->opt.retry_ms * 1000000u;
  uint32_t wait = 50;
  if (pe__seed_node(c) != 0) {
    return PE_ENOMEM;
  }
  for (;;) {
    pe_redis_t *r;
    int rc = pe_rcluster_node_conn(c, 0, &r);
    if (rc == PE_OK) {
      rc = pe__load_map(c, r);
      if (rc == PE_EUNSUPPORTED) {
        c->cluster = 0;
        for (size_t s = 0; s < PE_RCLUSTER_SLOTS; s++) {
          c->slots[s] = 0;
        }
        c->epoch++;
        return PE_OK;
      }
      if (rc == PE_OK) {
        if (c->seed.db != 0) {
          pe__err(c, "Redis Cluster has database 0 only; the URL asks for %d",
                  c->seed.db);
          return PE_EINVAL;
        }
        c->cluster = 1;
        pe__install_map(c);
        if (pe_rcluster_masters(c) > 0) {
          return PE_OK;
        }
        pe__err(c, "Redis Cluster at %s: no slot is served yet",
                c->nodes[0].name);
      }
    }
    if (rc != PE_ECONN && rc != PE_OK) {
      return rc;
    }
    if (!pe__backoff(&wait, deadline, stop)) {
      return stop != NULL && *stop ? PE_EAGAIN : PE_ECONN;
    }
  }
}

int pe_rcluster_is_cluster(const pe_rcluster_t *c) { return c->cluster; }

uint64_t pe_rcluster_epoch(const pe_rcluster_t *c) { return c->epoch; }

int pe_rcluster_slot_node(const pe_rcluster_t *c, uint16_t slot) {
  uint16_t n = c->slots[slot & (PE_RCLUSTER_SLOTS - 1)];
  return n == PE__NO_NODE ? -1 : (int)n;
}

uint32_t pe_rcluster_nodes(const pe_rcluster_t *c) { return c->n_nodes; }

uint32_t pe_rcluster_masters(const pe_rcluster_t *c) {
  uint8_t seen[PE_RCLUSTER_MAX_NODES] = {0};
  uint32_t n = 0;
  for (size_t s = 0; s < PE_RCLUSTER_SLOTS; s++) {
    uint16_t i = c->slots[s];
    if (i != PE__NO_NODE && !seen[i]) {
      seen[i] = 1;
      n++;
    }
  }
  return n;
}

uint32_t pe_rcluster_node_replicas(const pe_rcluster_t *c, uint32_t node) {
  return node < c->n_nodes ? c->nodes[node].replicas : 0;
}

const char *pe_rcluster_node_name(const pe_rcluster_t *c, uint32_t node) {
  return node < c->n_nodes ? c->nodes[node].name : "?";
}

const char *pe_rcluster_errmsg(const pe_rcluster_t *c) { return c->errmsg; }

uint64_t pe_rcluster_reconnects(const pe_rcluster_t *c) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    n += c->nodes[i].connects > 1 ? c->nodes[i].connects - 1 : 0;
  }
  return n;
}

int pe_rcluster_redirected(pe_rcluster_t *c, const pe_redis_redirect_t *red,
                           uint32_t from) {
  char host[256];
  snprintf(host, sizeof host, "%s",
           red->host[0] != '\0' || from >= c->n_nodes ? red->host
                                                      : c->nodes[from].host);
  int to = pe__node_index(c, host, red->port);
  if (to < 0) {
    return PE_ENOMEM;
  }
  if (!red->ask && c->slots[red->slot] != (uint16_t)to) {
    c->slots[red->slot] = (uint16_t)to;
    c->epoch++;
  }
  return to;
}

int pe_rcluster_command(pe_rcluster_t *c, const char *key, size_t key_len,
                        const pe_resp_buf_t *command,
                        volatile sig_atomic_t *stop,
                        const pe_redis_value_t **reply) {
  *reply = NULL;
  if (command->failed) {
    pe__err(c, "out of memory for a command");
    return PE_ENOMEM;
  }
  uint16_t slot = pe_redis_key_slot(key, key_len);
  uint64_t deadline = pe_clock_ns() + (uint64_t)c->opt.retry_ms * 1000000u;
  uint32_t wait = 50;
  int ask_node = -1;
  for (;;) {
    if (stop != NULL && *stop) {
      return PE_EAGAIN;
    }
    int node = ask_node >= 0 ? ask_node : pe_rcluster_slot_node(c, slot);
    int rc = PE_ECONN;
    const pe_redis_value_t *v = NULL;
    pe_redis_t *r = NULL;
    if (node < 0) {
      pe__err(c, "no Redis node serves slot %u (a failover under way?)", slot);
    } else {
      rc = pe_rcluster_node_conn(c, (uint32_t)node, &r);
    }
    if (rc == PE_OK && ask_node >= 0) {
      rc = pe_redis_command(r, &c->asking, &v);
    }
    if (rc == PE_OK) {
      rc = pe_redis_command(r, command, &v);
      if (rc != PE_OK) {
        pe__err(c, "%s", pe_redis_errmsg(r));
      }
    }
    ask_node = -1;
    if (rc == PE_ENOMEM || rc == PE_EINVAL) {
      return rc;
    }
    if (rc == PE_OK) {
      pe_redis_redirect_t red;
      if (!pe_redis_redirect_parse(v, &red)) {
        if (v->type != PE_REDIS_ERROR || !pe_redis_is_transient(v->str)) {
          *reply = v;
          return PE_OK;
        }
        pe__err(c, "%s: %s", pe_rcluster_node_name(c, (uint32_t)node), v->str);
      } else {
        if (!red.ask) {
          (void)pe_rcluster_refresh(c);
        }
        int to = pe_rcluster_redirected(c, &red, (uint32_t)node);
        if (to < 0) {
          return PE_ENOMEM;
        }
        ask_node = red.ask ? to : -1;
        continue;
      }
    } else {
      (void)pe_rcluster_refresh(c);
    }
    if (!pe__backoff(&wait, deadline, stop)) {
      if (stop != NULL && *stop) {
        return PE_EAGAIN;
      }
      char last[sizeof c->errmsg];
      memcpy(last, c->errmsg, sizeof last);
      pe__err(c, "gave up after %u ms: %.700s", c->opt.retry_ms, last);
      return PE_ECONN;
    }
  }
}

/* ---- the partition map in Redis ---------------------------------------------
 */

static int pe__get_map(pe_rcluster_t *c, volatile sig_atomic_t *stop,
                       const pe_redis_value_t **v) {
  pe_resp_buf_t b = {0};
  pe_resp_begin(&b, 2);
  pe_resp_arg(&b, "GET", 3);
  pe_resp_arg_str(&b, PE_PARTITIONS_KEY);
  int rc = pe_rcluster_command(c, PE_PARTITIONS_KEY, strlen(PE_PARTITIONS_KEY),
                               &b, stop, v);
  pe_resp_free(&b);
  if (rc == PE_OK && (*v)->type == PE_REDIS_ERROR) {
    pe__err(c, "GET %s: %s", PE_PARTITIONS_KEY, (*v)->str);
    return PE_EPARSE;
  }
  return rc;
}

int pe_rcluster_partitions_agree(pe_rcluster_t *c,
                                 const pe_partition_map_t *map,
                                 volatile sig_atomic_t *stop) {
  size_t len = 0;
  const char *text = pe_partition_map_text(map, &len);
  pe_resp_buf_t b = {0};
  pe_resp_begin(&b, 4);
  pe_resp_arg(&b, "SET", 3);
  pe_resp_arg_str(&b, PE_PARTITIONS_KEY);
  pe_resp_arg(&b, text, len);
  pe_resp_arg(&b, "NX", 2);
  const pe_redis_value_t *v = NULL;
  int rc = pe_rcluster_command(c, PE_PARTITIONS_KEY, strlen(PE_PARTITIONS_KEY),
                               &b, stop, &v);
  pe_resp_free(&b);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type == PE_REDIS_ERROR) {
    pe__err(c, "SET %s: %s", PE_PARTITIONS_KEY, v->str);
    return PE_EPARSE;
  }
  rc = pe__get_map(c, stop, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type == PE_REDIS_STRING && v->len == len &&
      memcmp(v->str, text, len) == 0) {
    return PE_OK;
  }
  char theirs[80] = "not a partition map";
  if (v->type == PE_REDIS_STRING) {
    pe_partition_map_t *stored = NULL;
    char perr[200];
    if (pe_partition_map_parse(v->str, v->len, &stored, perr, sizeof perr) ==
        PE_OK) {
      snprintf(theirs, sizeof theirs, "digest %s, %u partitions",
               pe_partition_map_digest_hex(stored),
               pe_partition_map_count(stored));
    } else {
      snprintf(theirs, sizeof theirs, "digest %016llx, not readable",
               (unsigned long long)pe_fnv1a64(v->str, v->len));
    }
    pe_partition_map_destroy(stored);
  }
  pe__err(c,
          "the partition map stored in Redis (%s: %s) differs from this "
          "process's (digest %s, %u partitions): every process must use the "
          "same --partitions, weights and hot symbols, or %s must be deleted "
          "while nothing runs",
          PE_PARTITIONS_KEY, theirs, pe_partition_map_digest_hex(map),
          pe_partition_map_count(map), PE_PARTITIONS_KEY);
  return PE_ESTATE;
}

int pe_rcluster_partitions_load(pe_rcluster_t *c, volatile sig_atomic_t *stop,
                                pe_partition_map_t **out) {
  *out = NULL;
  const pe_redis_value_t *v = NULL;
  int rc = pe__get_map(c, stop, &v);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type == PE_REDIS_NIL) {
    pe__err(c, "no partition map is stored under %s", PE_PARTITIONS_KEY);
    return PE_ENOENT;
  }
  char perr[300];
  rc = v->type == PE_REDIS_STRING
           ? pe_partition_map_parse(v->str, v->len, out, perr, sizeof perr)
           : PE_EPARSE;
  if (rc == PE_EPARSE) {
    pe__err(c, "%s: %s", PE_PARTITIONS_KEY,
            v->type == PE_REDIS_STRING ? perr : "not a string");
  }
  return rc;
}
