/* Redis connections over hiredis (see pe/redis.h).
 *
 * hiredis does the connecting and the protocol parsing; its reader is given
 * our own reply-object functions, which build pe_redis_value_t trees in an
 * arena owned by the connection instead of calling malloc per element. The
 * arena is rewound before each reply, and the reader's buffer is kept
 * (maxbuf 0), so reading a steady stream of replies allocates nothing once
 * the largest reply has been seen. Commands are written straight to the
 * socket from the caller's buffer, bypassing hiredis's output buffer. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pe/error.h"
#include "pe/redis.h"

/* ---- the reply arena
 * ------------------------------------------------------------ */

typedef struct pe__block {
  struct pe__block *next;
  size_t cap;
  size_t used;
  max_align_t data[];
} pe__block_t;

typedef struct pe__arena {
  pe__block_t *head; /* current block; older ones follow */
  size_t total;      /* bytes handed out since the last rewind */
  int failed;
} pe__arena_t;

static pe__block_t *pe__block_new(size_t cap) {
  pe__block_t *b = malloc(sizeof *b + cap);
  if (b != NULL) {
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
  }
  return b;
}

static void pe__arena_free(pe__arena_t *a) {
  while (a->head != NULL) {
    pe__block_t *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}

/* Starts a new reply. When the last one spilled over several blocks, they
 * are replaced by one block big enough for it, so the next reply of that
 * size fits in one block. */
static void pe__arena_rewind(pe__arena_t *a) {
  if (a->head != NULL && a->head->next != NULL) {
    size_t want = a->total * 2;
    pe__arena_free(a);
    a->head = pe__block_new(want);
  }
  if (a->head != NULL) {
    a->head->used = 0;
  }
  a->total = 0;
  a->failed = 0;
}

static void *pe__arena_alloc(pe__arena_t *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  pe__block_t *b = a->head;
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = b ? b->cap * 2 : (size_t)1 << 20;
    while (cap < n) {
      cap *= 2;
    }
    pe__block_t *nb = pe__block_new(cap);
    if (nb == NULL) {
      a->failed = 1;
      return NULL;
    }
    nb->next = b;
    a->head = b = nb;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  a->total += n;
  return p;
}

/* The value a read task fills: the root, or its slot in the parent array. */
static pe_redis_value_t *pe__slot(const redisReadTask *task) {
  pe__arena_t *a = task->privdata;
  pe_redis_value_t *v;
  if (task->parent == NULL) {
    v = pe__arena_alloc(a, sizeof *v);
  } else {
    pe_redis_value_t *parent = task->parent->obj;
    v = &parent->elem[task->idx];
  }
  if (v != NULL) {
    memset(v, 0, sizeof *v);
  }
  return v;
}

static void *pe__create_string(const redisReadTask *task, char *str,
                               size_t len) {
  pe_redis_value_t *v = pe__slot(task);
  char *copy = pe__arena_alloc(task->privdata, len + 1);
  if (v == NULL || copy == NULL) {
    return NULL;
  }
  memcpy(copy, str, len);
  copy[len] = '\0';
  v->type = task->type == REDIS_REPLY_ERROR    ? PE_REDIS_ERROR
            : task->type == REDIS_REPLY_STATUS ? PE_REDIS_STATUS
                                               : PE_REDIS_STRING;
  v->str = copy;
  v->len = len;
  return v;
}

static void *pe__create_array(const redisReadTask *task, int elements) {
  pe_redis_value_t *v = pe__slot(task);
  if (v == NULL) {
    return NULL;
  }
  v->type = PE_REDIS_ARRAY;
  v->n = elements > 0 ? (uint32_t)elements : 0;
  if (v->n > 0) {
    v->elem = pe__arena_alloc(task->privdata, v->n * sizeof *v->elem);
    if (v->elem == NULL) {
      return NULL;
    }
  }
  return v;
}

static void *pe__create_integer(const redisReadTask *task, long long value) {
  pe_redis_value_t *v = pe__slot(task);
  if (v != NULL) {
    v->type = PE_REDIS_INTEGER;
    v->integer = value;
  }
  return v;
}

static void *pe__create_nil(const redisReadTask *task) {
  pe_redis_value_t *v = pe__slot(task);
  if (v != NULL) {
    v->type = PE_REDIS_NIL;
  }
  return v;
}

/* Values live in the arena: nothing to free one by one. */
static void pe__free_object(void *obj) { (void)obj; }

static redisReplyObjectFunctions pe__reply_fns = {
    pe__create_string, pe__create_array, pe__create_integer, pe__create_nil,
    pe__free_object};

/* ---- connections
 * --------------------------------------------------------------------- */

struct pe_redis {
  pe_redis_url_t url;
  pe_redis_options_t opt;
  redisContext *ctx;
  pe__arena_t arena;
  uint64_t connects;
  uint64_t rng;
  char errmsg[512];
};

int pe_redis_create(const pe_redis_url_t *url,
                    const pe_redis_options_t *options, pe_redis_t **out) {
  *out = NULL;
  pe_redis_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    return PE_ENOMEM;
  }
  r->url = *url;
  if (options != NULL) {
    r->opt = *options;
  }
  if (r->opt.connect_timeout_ms == 0) {
    r->opt.connect_timeout_ms = 2000;
  }
  if (r->opt.io_timeout_ms == 0) {
    r->opt.io_timeout_ms = 5000;
  }
  if (r->opt.backoff_min_ms == 0) {
    r->opt.backoff_min_ms = 100;
  }
  if (r->opt.backoff_max_ms < r->opt.backoff_min_ms) {
    r->opt.backoff_max_ms = 5000;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  r->rng = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull + 1;
  *out = r;
  return PE_OK;
}

void pe_redis_disconnect(pe_redis_t *r) {
  if (r->ctx != NULL) {
    redisFree(r->ctx);
    r->ctx = NULL;
  }
}

void pe_redis_destroy(pe_redis_t *r) {
  if (r == NULL) {
    return;
  }
  pe_redis_disconnect(r);
  pe__arena_free(&r->arena);
  free(r);
}

int pe_redis_is_connected(const pe_redis_t *r) { return r->ctx != NULL; }

uint64_t pe_redis_reconnects(const pe_redis_t *r) {
  return r->connects > 0 ? r->connects - 1 : 0;
}

const char *pe_redis_errmsg(const pe_redis_t *r) { return r->errmsg; }

static struct timeval pe__tv(uint32_t ms) {
  struct timeval tv;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  return tv;
}

static const char *pe__where(const pe_redis_t *r, char *buf, size_t cap) {
  if (r->url.unix_path[0] != '\0') {
    snprintf(buf, cap, "unix:%s", r->url.unix_path);
  } else {
    snprintf(buf, cap, "%s:%d", r->url.host, r->url.port);
  }
  return buf;
}

static int pe__fail(pe_redis_t *r, const char *what) {
  char where[300];
  snprintf(r->errmsg, sizeof r->errmsg, "Redis at %s: %s%s%s",
           pe__where(r, where, sizeof where), what,
           r->ctx && r->ctx->errstr[0] ? ": " : "",
           r->ctx ? r->ctx->errstr : "");
  pe_redis_disconnect(r);
  return PE_ECONN;
}

int pe_redis_read(pe_redis_t *r, const pe_redis_value_t **reply) {
  *reply = NULL;
  if (r->ctx == NULL) {
    snprintf(r->errmsg, sizeof r->errmsg, "not connected");
    return PE_ECONN;
  }
  pe__arena_rewind(&r->arena);
  void *obj = NULL;
  if (redisGetReply(r->ctx, &obj) != REDIS_OK || obj == NULL) {
    /* Out of memory is no lost connection: reconnecting would not end. */
    int oom = r->arena.failed || r->ctx->err == REDIS_ERR_OOM;
    int rc = pe__fail(r, oom ? "out of memory for a reply" : "connection lost");
    return oom ? PE_ENOMEM : rc;
  }
  *reply = obj;
  return PE_OK;
}

int pe_redis_write(pe_redis_t *r, const char *data, size_t len) {
  if (r->ctx == NULL) {
    snprintf(r->errmsg, sizeof r->errmsg, "not connected");
    return PE_ECONN;
  }
  while (len > 0) {
    ssize_t n = send(r->ctx->fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      snprintf(r->ctx->errstr, sizeof r->ctx->errstr, "%s",
               n < 0 ? strerror(errno) : "closed");
      return pe__fail(r, "write failed");
    }
    data += n;
    len -= (size_t)n;
  }
  return PE_OK;
}

int pe_redis_command(pe_redis_t *r, const pe_resp_buf_t *command,
                     const pe_redis_value_t **reply) {
  if (command->failed) {
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory for a command");
    return PE_ENOMEM;
  }
  int rc = pe_redis_write(r, command->data, command->len);
  return rc != PE_OK ? rc : pe_redis_read(r, reply);
}

/* Runs a setup command (AUTH, SELECT). An error reply is sorted by
 * pe_redis_is_transient: PE_ECONN (retried) for a server that cannot serve
 * for a while, PE_EINVAL (fatal) for any other (WRONGPASS, a bad database
 * index): retrying cannot mend credentials. The message never holds the
 * password. */
static int pe__setup(pe_redis_t *r, const char *what, const char *a0,
                     const char *a1, const char *a2) {
  pe_resp_buf_t b = {0};
  uint32_t n = a2 ? 3 : 2;
  pe_resp_begin(&b, n);
  pe_resp_arg_str(&b, a0);
  pe_resp_arg_str(&b, a1);
  if (a2) {
    pe_resp_arg_str(&b, a2);
  }
  const pe_redis_value_t *v;
  int rc = pe_redis_command(r, &b, &v);
  pe_resp_free(&b);
  if (rc != PE_OK) {
    return rc;
  }
  if (v->type == PE_REDIS_ERROR) {
    char where[300];
    int transient = pe_redis_is_transient(v->str);
    snprintf(r->errmsg, sizeof r->errmsg, "Redis at %s: %s failed: %s%s",
             pe__where(r, where, sizeof where), what, v->str,
             transient ? "" : " (not retried: fix the URL or the server)");
    pe_redis_disconnect(r);
    return transient ? PE_ECONN : PE_EINVAL;
  }
  return PE_OK;
}

int pe_redis_connect(pe_redis_t *r) {
  pe_redis_disconnect(r);
  struct timeval ctv = pe__tv(r->opt.connect_timeout_ms);
  if (r->url.unix_path[0] != '\0') {
    r->ctx = redisConnectUnixWithTimeout(r->url.unix_path, ctv);
  } else {
    r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, ctv);
  }
  if (r->ctx == NULL) {
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
    return PE_ENOMEM;
  }
  if (r->ctx->err) {
    return pe__fail(r, "cannot connect");
  }
  if (redisSetTimeout(r->ctx, pe__tv(r->opt.io_timeout_ms)) != REDIS_OK) {
    return pe__fail(r, "cannot set the socket timeout");
  }
  /* TCP only: on a Unix socket hiredis fails to set the keep-alive
   * interval and leaves the context in an error state that the next
   * command reports. */
  if (r->url.unix_path[0] == '\0') {
    (void)redisEnableKeepAlive(r->ctx);
  }
  r->ctx->reader->fn = &pe__reply_fns;
  r->ctx->reader->privdata = &r->arena;
  r->ctx->reader->maxbuf = 0;
  if (r->url.password[0] != '\0') {
    int rc = r->url.user[0] != '\0'
                 ? pe__setup(r, "AUTH", "AUTH", r->url.user, r->url.password)
                 : pe__setup(r, "AUTH", "AUTH", r->url.password, NULL);
    if (rc != PE_OK) {
      return rc;
    }
  }
  if (r->url.db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->url.db);
    int rc = pe__setup(r, "SELECT", "SELECT", db, NULL);
    if (rc != PE_OK) {
      return rc;
    }
  }
  r->connects += 1;
  return PE_OK;
}

static void pe__sleep_ms(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  (void)nanosleep(&ts, NULL); /* a signal ends it early: the caller then
                                 looks at its stop flag */
}

int pe_redis_connect_retry(pe_redis_t *r, volatile sig_atomic_t *stop) {
  uint32_t wait = r->opt.backoff_min_ms;
  for (;;) {
    if (stop != NULL && *stop) {
      return PE_EAGAIN;
    }
    int rc = pe_redis_connect(r);
    if (rc != PE_ECONN) {
      return rc;
    }
    /* Waits of 75%..125% of the doubling step, so many clients that lost
     * the same server do not come back all at once. */
    r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t jitter = (uint32_t)((r->rng >> 33) % (wait / 2 + 1));
    uint32_t ms = wait - wait / 4 + jitter;
    for (uint32_t slept = 0; slept < ms; slept += 50) {
      if (stop != NULL && *stop) {
        return PE_EAGAIN;
      }
      pe__sleep_ms(ms - slept < 50 ? ms - slept : 50);
    }
    wait = wait * 2 > r->opt.backoff_max_ms ? r->opt.backoff_max_ms : wait * 2;
  }
}

int pe_redis_open(const char *url, const pe_redis_options_t *options,
                  pe_redis_t **out, char *err, size_t err_cap) {
  *out = NULL;
  pe_redis_url_t u;
  int rc = pe_redis_url_parse(url, &u, err, err_cap);
  if (rc != PE_OK) {
    return rc;
  }
  rc = pe_redis_create(&u, options, out);
  if (rc != PE_OK) {
    snprintf(err, err_cap, "out of memory");
  }
  return rc;
}

/* The one list of error replies that are waited out. Everything else a
 * server answers is fatal to the caller: credentials (WRONGPASS, NOAUTH,
 * NOPERM), a bad database index, WRONGTYPE, an unknown command, a READONLY
 * replica are mistakes of configuration that a retry cannot mend. Lost,
 * refused, reset or timed-out connections are not replies: they come back
 * as PE_ECONN and are retried. */
int pe_redis_is_transient(const char *err) {
  static const char *const prefixes[] = {
      "LOADING",    "BUSY",        "TRYAGAIN",   "OOM",
      "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0) {
      return 1;
    }
  }
  return 0;
}

/* One XINFO STREAM on a fresh connection, transient errors waited out. */
static int pe__stream_info(pe_redis_t *r, const char *stream,
                           volatile sig_atomic_t *stop,
                           pe_redis_stream_info_t *info) {
  pe_resp_buf_t b = {0};
  pe_resp_begin(&b, 3);
  pe_resp_arg(&b, "XINFO", 5);
  pe_resp_arg(&b, "STREAM", 6);
  pe_resp_arg_str(&b, stream);
  int rc;
  for (;;) {
    const pe_redis_value_t *v;
    rc = pe_redis_command(r, &b, &v);
    if (rc != PE_OK) {
      break;
    }
    if (v->type == PE_REDIS_ERROR && pe_redis_is_transient(v->str)) {
      if (stop != NULL && *stop) {
        rc = PE_EAGAIN;
        break;
      }
      pe__sleep_ms(100);
      continue;
    }
    rc = pe_redis_stream_info_parse(v, info);
    if (rc != PE_OK) {
      snprintf(r->errmsg, sizeof r->errmsg, "XINFO STREAM %s: %s", stream,
               v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
      rc = PE_EPARSE;
    }
    break;
  }
  pe_resp_free(&b);
  return rc;
}

int pe_redis_connect_stream(pe_redis_t *r, const char *stream,
                            volatile sig_atomic_t *stop,
                            void (*on_retry)(void *ctx, const char *reason),
                            void *ctx, pe_redis_stream_info_t *info) {
  for (;;) {
    int rc = pe_redis_connect(r);
    if (rc == PE_ECONN) {
      if (on_retry != NULL) {
        on_retry(ctx, r->errmsg);
      }
      rc = pe_redis_connect_retry(r, stop);
    }
    if (rc != PE_OK) {
      return rc;
    }
    rc = pe__stream_info(r, stream, stop, info);
    if (rc != PE_ECONN) {
      return rc;
    }
  }
}
