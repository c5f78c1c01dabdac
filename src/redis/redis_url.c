/* Redis URL parsing (see pe/redis.h). Pure: no I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/redis.h"

/* Copies [s, s + len) into dst (cap bytes), decoding %XX escapes. Returns 0
 * when it does not fit or an escape is bad. */
static int pe__copy_part(char *dst, size_t cap, const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len) {
        return 0;
      }
      char hex[3] = {s[i + 1], s[i + 2], '\0'};
      char *end;
      long v = strtol(hex, &end, 16);
      if (end != hex + 2) {
        return 0;
      }
      c = (char)v;
      i += 2;
    }
    if (n + 1 >= cap) {
      return 0;
    }
    dst[n++] = c;
  }
  dst[n] = '\0';
  return 1;
}

static int pe__parse_int(const char *s, size_t len, long lo, long hi,
                         int *out) {
  if (len == 0 || len > 9) {
    return 0;
  }
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') {
      return 0;
    }
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi) {
    return 0;
  }
  *out = (int)v;
  return 1;
}

void pe_redis_url_redact(const char *url, char *out, size_t cap) {
  if (cap == 0) {
    return;
  }
  const char *scheme = strstr(url, "://");
  const char *p = scheme ? scheme + 3 : url;
  /* The userinfo ends at the last '@' before the path; anything that looks
   * like one, even in a URL that does not parse, is treated as one. */
  const char *slash = strchr(p, '/');
  const char *at = NULL;
  for (const char *a = p; *a && a != slash; a++) {
    if (*a == '@') {
      at = a;
    }
  }
  if (at == NULL) {
    snprintf(out, cap, "%s", url);
    return;
  }
  const char *colon = memchr(p, ':', (size_t)(at - p));
  /* user:password@ keeps the user; password@ (no colon) is all secret */
  int keep = colon ? (int)(colon - p) : 0;
  snprintf(out, cap, "%.*s%.*s%s***%s", (int)(p - url), url, keep, p,
           colon ? ":" : "", at);
}

static int pe__bad(char *err, size_t cap, const char *url, const char *why) {
  char shown[512];
  pe_redis_url_redact(url, shown, sizeof shown);
  snprintf(err, cap, "bad Redis URL '%s': %s", shown, why);
  return PE_EINVAL;
}

int pe_redis_url_parse(const char *url, pe_redis_url_t *out, char *err,
                       size_t err_cap) {
  pe_redis_url_t u;
  memset(&u, 0, sizeof u);
  u.port = 6379;
  if (strncmp(url, "rediss://", 9) == 0) {
    return pe__bad(err, err_cap, url,
                   "TLS (rediss://) is not supported by "
                   "this build; use redis://");
  }
  if (strncmp(url, "unix://", 7) == 0) {
    const char *path = url + 7;
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    if (plen == 0 ||
        !pe__copy_part(u.unix_path, sizeof u.unix_path, path, plen)) {
      return pe__bad(err, err_cap, url, "expected unix:///path/to/socket");
    }
    if (q != NULL) {
      if (strncmp(q, "?db=", 4) != 0 ||
          !pe__parse_int(q + 4, strlen(q + 4), 0, 1000000, &u.db)) {
        return pe__bad(err, err_cap, url, "the only query is ?db=N");
      }
    }
    *out = u;
    return PE_OK;
  }
  if (strncmp(url, "redis://", 8) != 0) {
    return pe__bad(err, err_cap, url,
                   "expected redis://[[user]:password@]host[:port][/db] or "
                   "unix:///path");
  }
  const char *p = url + 8;
  const char *slash = strchr(p, '/');
  const char *auth_end = NULL;
  for (const char *a = p; *a && a != slash; a++) {
    if (*a == '@') {
      auth_end = a; /* the last '@' before the path */
    }
  }
  if (auth_end != NULL) {
    /* user:password@, :password@, or password@ as some tools write it */
    const char *colon = memchr(p, ':', (size_t)(auth_end - p));
    const char *pass = colon ? colon + 1 : p;
    size_t user_len = colon ? (size_t)(colon - p) : 0;
    if (!pe__copy_part(u.user, sizeof u.user, p, user_len) ||
        !pe__copy_part(u.password, sizeof u.password, pass,
                       (size_t)(auth_end - pass))) {
      return pe__bad(err, err_cap, url, "user or password too long");
    }
    p = auth_end + 1;
  }
  const char *host_end = slash ? slash : p + strlen(p);
  const char *port = NULL;
  if (*p == '[') { /* [IPv6]:port */
    const char *close = memchr(p, ']', (size_t)(host_end - p));
    if (close == NULL) {
      return pe__bad(err, err_cap, url, "unclosed [ in the host");
    }
    if (!pe__copy_part(u.host, sizeof u.host, p + 1, (size_t)(close - p - 1))) {
      return pe__bad(err, err_cap, url, "host too long");
    }
    if (close + 1 < host_end) {
      if (close[1] != ':') {
        return pe__bad(err, err_cap, url, "expected :port after ]");
      }
      port = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', (size_t)(host_end - p));
    const char *he = colon ? colon : host_end;
    if (!pe__copy_part(u.host, sizeof u.host, p, (size_t)(he - p))) {
      return pe__bad(err, err_cap, url, "host too long");
    }
    port = colon ? colon + 1 : NULL;
  }
  if (u.host[0] == '\0') {
    snprintf(u.host, sizeof u.host, "localhost");
  }
  if (port != NULL &&
      !pe__parse_int(port, (size_t)(host_end - port), 1, 65535, &u.port)) {
    return pe__bad(err, err_cap, url, "the port must be a number 1..65535");
  }
  if (slash != NULL && slash[1] != '\0' &&
      !pe__parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &u.db)) {
    return pe__bad(err, err_cap, url, "the path must be a database number");
  }
  *out = u;
  return PE_OK;
}
