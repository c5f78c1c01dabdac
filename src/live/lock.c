/* One worker per checkpoint.
 *
 * Two workers on one checkpoint would overwrite each other's state and
 * race on its temporary file, so the checkpoint is held exclusively for the
 * handle's life:
 *   - a file checkpoint PATH by an flock(2) on PATH.lock, which names the
 *     holder (host:pid). The kernel drops the lock when the holder dies,
 *     however it dies, so a killed worker never blocks the next one. The
 *     lock file stays (removing it would let two workers lock two files);
 *   - a Redis checkpoint KEY by a lease, the key KEY:lock set with
 *     SET NX PX to "host:pid pidns=N token=T", renewed every third of the
 *     lease by a script that extends it only while it still holds our value.
 *     A holder that died lets the lease expire (lease_ms at most); one that
 *     died on this host (same host name and pid namespace, pid gone) is
 *     taken over at once. A worker whose renewal finds another holder stops
 *     (PE_ESTATE); the batch already sent with that renewal is harmless,
 *     its signal ids being the same whoever derives them.
 * Off the hot path: one command now and then, in the step's round trip. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "live/live_impl.h"
#include "pe/clock.h"
#include "pe/error.h"

#define PE__LEASE_MIN_MS 10000u

/* "host:pid" and, for leases, what tells this process from another with
 * the same pid: its pid namespace and a token. */
static void pe__identity(pe_live_t *L) {
  char host[256] = "?";
  (void)gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  char ns[64] = "";
  ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  ns[n > 0 ? n : 0] = '\0';
  snprintf(L->holder, sizeof L->holder, "%s:%ld", host, (long)getpid());
  snprintf(L->lease_value, sizeof L->lease_value, "%s ns=%s token=%llx",
           L->holder, ns, (unsigned long long)(pe_clock_ns() ^ L->rng));
}

/* ---- file checkpoints
 * ---------------------------------------------------------- */

int pe__lock_file(pe_live_t *L, char *err, size_t cap) {
  pe__identity(L);
  char path[PE__LIVE_NAME_MAX + 8];
  snprintf(path, sizeof path, "%s.lock", L->ckpt_path);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    snprintf(err, cap, "cannot open the checkpoint's lock file %s: %s", path,
             strerror(errno));
    return PE_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, cap, "the checkpoint's lock file %s is not a regular file",
             path);
    close(fd);
    return PE_EIO;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char who[160] = "";
    /* The holder writes its name just after locking: wait up to 0.5 s for a
     * whole line. */
    for (int i = 0; i < 50 && strchr(who, '\n') == NULL; i++) {
      if (i > 0) {
        struct timespec ts = {0, 10000000L};
        (void)nanosleep(&ts, NULL);
      }
      ssize_t n = pread(fd, who, sizeof who - 1, 0);
      who[n > 0 ? n : 0] = '\0';
    }
    who[strcspn(who, "\n")] = '\0';
    close(fd);
    if (e == EWOULDBLOCK) {
      snprintf(err, cap,
               "checkpoint %s is in use by another worker (%s holds %s): one "
               "checkpoint serves one worker",
               L->ckpt_path, who[0] ? who : "holder unknown", path);
      return PE_ESTATE;
    }
    snprintf(err, cap, "cannot lock %s: %s", path, strerror(e));
    return PE_EIO;
  }
  /* The name only informs a worker that is refused: on a full disk the
   * lock holds without it. */
  char line[sizeof L->holder + 2];
  int len = snprintf(line, sizeof line, "%s\n", L->holder);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
    pe__live_log(L, PE_LIVE_LOG_WARN,
                 "cannot write this worker's name into %s (%s); the "
                 "checkpoint is locked all the same",
                 path, strerror(errno));
    (void)ftruncate(fd, 0);
  }
  L->lock_fd = fd;
  return PE_OK;
}

void pe__lock_file_release(pe_live_t *L) {
  if (L->lock_fd >= 0) {
    close(L->lock_fd); /* drops the flock */
    L->lock_fd = -1;
  }
}

/* ---- the Redis lease
 * ----------------------------------------------------------- */

/* Extends our lease, or takes the key back when it expired meanwhile;
 * returns 1, or the value of the key's other holder. */
static const char pe__renew_lua[] =
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end "
    "if not v then redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) "
    "return 1 end "
    "return v";

/* Replaces the value ARGV[1] (a dead holder's) by ours: 1, or 0. */
static const char pe__takeover_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'px', ARGV[3]) return 1 end "
    "return 0";

static const char pe__release_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) end return 0";

static void pe__eval(pe_resp_buf_t *b, const char *script, const char *key,
                     const char *a1, const char *a2, uint64_t a3) {
  uint32_t n = 4u + (a1 != NULL ? 1u : 0u) + (a2 != NULL ? 1u : 0u) +
               (a3 != 0 ? 1u : 0u);
  pe_resp_begin(b, n);
  pe_resp_arg(b, "EVAL", 4);
  pe_resp_arg_str(b, script);
  pe_resp_arg(b, "1", 1);
  pe_resp_arg_str(b, key);
  if (a1 != NULL) {
    pe_resp_arg_str(b, a1);
  }
  if (a2 != NULL) {
    pe_resp_arg_str(b, a2);
  }
  if (a3 != 0) {
    pe_resp_arg_u64(b, a3);
  }
}

/* The holder's host:pid: the value up to its first space. */
static void pe__holder_text(const char *value, size_t len, char *out,
                            size_t cap) {
  size_t n = 0;
  while (n < len && value[n] != ' ') {
    n++;
  }
  snprintf(out, cap, "%.*s", (int)n, value);
}

/* 1 when the lease value names a process of this host and pid namespace
 * that no longer exists. */
static int pe__holder_dead(pe_live_t *L, const char *value) {
  const char *mine_ns = strstr(L->lease_value, " ns=");
  const char *its_ns = strstr(value, " ns=");
  const char *colon = strrchr(L->holder, ':');
  if (mine_ns == NULL || its_ns == NULL || colon == NULL) {
    return 0;
  }
  size_t host_len = (size_t)(colon - L->holder) + 1; /* "host:" */
  if (strncmp(value, L->holder, host_len) != 0) {
    return 0;
  }
  size_t ns_len = strcspn(mine_ns + 4, " ");
  if (strncmp(mine_ns, its_ns, ns_len + 4) != 0 || its_ns[ns_len + 4] != ' ') {
    return 0;
  }
  char *end;
  long pid = strtol(value + host_len, &end, 10);
  if (end == value + host_len || *end != ' ' || pid <= 0) {
    return 0;
  }
  return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

uint64_t pe__lease_ms(const pe_live_t *L) {
  uint64_t ms = 4ull * L->cfg.block_ms + 1000;
  return ms > PE__LEASE_MIN_MS ? ms : PE__LEASE_MIN_MS;
}

/* One command on the connection: PE_OK with *v, or PE_ECONN. */
static int pe__cmd(pe_live_t *L, const pe_redis_value_t **v) {
  return pe_redis_command(L->redis, &L->req, v);
}

int pe__lease_acquire(pe_live_t *L) {
  if (L->lease_value[0] == '\0') {
    pe__identity(L);
  }
  snprintf(L->lease_key, sizeof L->lease_key, "%s:lock", L->ckpt_key);
  uint64_t ms = pe__lease_ms(L);
  for (int attempt = 0; attempt < 5; attempt++) {
    const pe_redis_value_t *v;
    pe_resp_reset(&L->req);
    pe_resp_begin(&L->req, 6);
    pe_resp_arg(&L->req, "SET", 3);
    pe_resp_arg_str(&L->req, L->lease_key);
    pe_resp_arg_str(&L->req, L->lease_value);
    pe_resp_arg(&L->req, "NX", 2);
    pe_resp_arg(&L->req, "PX", 2);
    pe_resp_arg_u64(&L->req, ms);
    int rc = pe__cmd(L, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (pe_redis_value_is(v, "OK")) {
      break;
    }
    if (v->type != PE_REDIS_NIL) {
      return pe__live_fail(L, PE_EPARSE, "SET %s NX: %s", L->lease_key,
                           v->type == PE_REDIS_ERROR ? v->str
                                                     : "unexpected reply");
    }
    pe_resp_reset(&L->req);
    pe_resp_begin(&L->req, 2);
    pe_resp_arg(&L->req, "GET", 3);
    pe_resp_arg_str(&L->req, L->lease_key);
    rc = pe__cmd(L, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type == PE_REDIS_NIL) {
      continue; /* expired meanwhile: try again */
    }
    if (v->type != PE_REDIS_STRING) {
      return pe__live_fail(L, PE_EPARSE, "GET %s: %s", L->lease_key,
                           v->type == PE_REDIS_ERROR ? v->str
                                                     : "unexpected reply");
    }
    char who[256];
    pe__holder_text(v->str, v->len, who, sizeof who);
    char its[512];
    snprintf(its, sizeof its, "%s", v->str);
    if (!pe__holder_dead(L, its)) {
      return pe__live_fail(
          L, PE_ESTATE,
          "checkpoint key %s is in use by another worker (%s holds the lease "
          "%s, renewed every %llu ms while it runs; it expires %llu ms after "
          "its holder stops): one checkpoint serves one worker",
          L->ckpt_key, who, L->lease_key, (unsigned long long)(ms / 3),
          (unsigned long long)ms);
    }
    pe_resp_reset(&L->req);
    pe__eval(&L->req, pe__takeover_lua, L->lease_key, its, L->lease_value, ms);
    rc = pe__cmd(L, &v);
    if (rc != PE_OK) {
      return rc;
    }
    if (v->type == PE_REDIS_INTEGER && v->integer == 1) {
      pe__live_log(L, PE_LIVE_LOG_INFO,
                   "took over the checkpoint lease %s from %s, which is no "
                   "longer running",
                   L->lease_key, who);
      break;
    }
    if (v->type == PE_REDIS_ERROR) {
      return pe__live_fail(L, PE_EPARSE, "EVAL (lease %s): %s", L->lease_key,
                           v->str);
    }
  }
  L->lease_held = 1;
  L->lease_mono = pe_clock_ns();
  return PE_OK;
}

int pe__lease_due(const pe_live_t *L, uint64_t now) {
  return L->lease_held &&
         now - L->lease_mono >= pe__lease_ms(L) / 3 * 1000000ull;
}

void pe__lease_renew_cmd(pe_live_t *L, pe_resp_buf_t *b) {
  char ms[24];
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)pe__lease_ms(L));
  pe__eval(b, pe__renew_lua, L->lease_key, L->lease_value, ms, 0);
}

int pe__lease_take(pe_live_t *L, const pe_redis_value_t *v, uint64_t sent) {
  if (v->type == PE_REDIS_INTEGER && v->integer == 1) {
    L->lease_mono = sent;
    return PE_OK;
  }
  if (v->type == PE_REDIS_STRING) {
    char who[256];
    pe__holder_text(v->str, v->len, who, sizeof who);
    L->lease_held = 0;
    return pe__live_fail(L, PE_ESTATE,
                         "lost the checkpoint lease %s to %s (this worker was "
                         "cut off from Redis longer than the lease, %llu ms): "
                         "stopping, one checkpoint serves one worker",
                         L->lease_key, who,
                         (unsigned long long)pe__lease_ms(L));
  }
  return pe__live_fail(L, PE_EPARSE, "EVAL (lease %s): %s", L->lease_key,
                       v->type == PE_REDIS_ERROR ? v->str : "unexpected reply");
}

void pe__lease_release(pe_live_t *L) {
  if (!L->lease_held || !pe_redis_is_connected(L->redis)) {
    return;
  }
  pe_resp_reset(&L->req);
  pe__eval(&L->req, pe__release_lua, L->lease_key, L->lease_value, NULL, 0);
  const pe_redis_value_t *v;
  (void)pe__cmd(L, &v); /* at worst the lease expires by itself */
  L->lease_held = 0;
}
