/* /health and /metrics of the live service, served by libmicrohttpd from
 * its own thread (see http.h). Without PE_WITH_HTTP the server is refused.
 *
 * Slow clients: a client that sends its request a byte at a time keeps its
 * connection, and MHD's idle timeout never fires while bytes trickle in,
 * so enough of them would hold every slot and leave /health unanswered.
 * The server keeps a reserve instead: once all but PE__HTTP_RESERVE slots
 * are taken, each new connection cuts the oldest one still open
 * (shutdown(2); MHD closes it on its next turn). A request for /health is
 * answered within milliseconds, so it is never the oldest; what is cut is
 * whoever has held a slot longest. All of it runs on MHD's one thread. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live/http.h"
#include "pe/clock.h"
#include "pe/error.h"

#ifdef PE_WITH_HTTP
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

/* ---- the server
 * ---------------------------------------------------------------- */

#ifdef PE_WITH_HTTP

#define PE__HTTP_SLOTS 64  /* connections at once */
#define PE__HTTP_RESERVE 8 /* kept free: beyond, the oldest is cut */
#define PE__HTTP_IDLE_S 10 /* a connection silent this long is closed */

typedef struct pe__http_conn {
  int fd; /* -1: free slot */
  int cut;
  uint64_t since_mono;
} pe__http_conn_t;

struct pe_live_http {
  struct MHD_Daemon *daemon;
  pe__http_conn_t conns[PE__HTTP_SLOTS]; /* MHD's thread only */
  uint64_t cut_total;                    /* connections cut for room */
  char where[128];                       /* what it listens on, in words */
  pthread_mutex_t lock;
  pe_live_metrics_t slot; /* guarded by lock */
  pe_live_metrics_t view; /* the HTTP thread's copy */
  char body[64 * 1024];   /* HTTP thread only */
};

static enum MHD_Result pe__reply(struct MHD_Connection *conn, unsigned status,
                                 const char *type, const char *body,
                                 size_t len) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) {
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", type);
  enum MHD_Result rc = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result pe__handle(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  pe_live_http_t *h = cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char msg[] = "only GET\n";
    return pe__reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", msg,
                     sizeof msg - 1);
  }
  int health = strcmp(url, "/health") == 0;
  if (!health && strcmp(url, "/metrics") != 0) {
    static const char msg[] = "not found: try /health or /metrics\n";
    return pe__reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", msg,
                     sizeof msg - 1);
  }
  pthread_mutex_lock(&h->lock);
  h->view = h->slot;
  pthread_mutex_unlock(&h->lock);
  int64_t now = pe_wall_ns();
  size_t n;
  if (health) {
    n = pe_live_health_format(&h->view, now, h->body, sizeof h->body);
  } else {
    n = pe_live_metrics_format(&h->view, now, h->body, sizeof h->body);
  }
  if (n >= sizeof h->body) {
    n = sizeof h->body - 1;
  }
  unsigned status = MHD_HTTP_OK;
  if (health && h->view.status != PE_LIVE_OK) {
    status = MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  return pe__reply(conn, status,
                   health ? "application/json"
                          : "text/plain; version=0.0.4; charset=utf-8",
                   h->body, n);
}

/* "http://127.0.0.1:8005 (loopback only)": the address and who can reach
 * it, for the startup line. */
static void pe__describe(const struct sockaddr_storage *ss, char *buf,
                         size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  const char *reach;
  int port;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip);
    port = ntohs(a6->sin6_port);
    reach = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ? "loopback only"
            : IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)
                ? "every interface: reachable from other hosts"
                : "one interface: reachable from other hosts";
    snprintf(buf, cap, "http://[%s]:%d (%s)", ip, port, reach);
    return;
  }
  const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
  inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof ip);
  port = ntohs(a4->sin_port);
  uint32_t a = ntohl(a4->sin_addr.s_addr);
  reach = (a >> 24) == 127  ? "loopback only"
          : a == INADDR_ANY ? "every IPv4 interface: reachable from other hosts"
                            : "one interface: reachable from other hosts";
  snprintf(buf, cap, "http://%s:%d (%s)", ip, port, reach);
}

/* Keeps the table of open connections, and the reserve (see above). */
static void pe__notify(void *cls, struct MHD_Connection *conn, void **ctx,
                       enum MHD_ConnectionNotificationCode what) {
  pe_live_http_t *h = cls;
  if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
    pe__http_conn_t *c = *ctx;
    if (c != NULL) {
      c->fd = -1;
    }
    return;
  }
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  pe__http_conn_t *slot = NULL, *oldest = NULL;
  unsigned open = 0;
  for (unsigned i = 0; i < PE__HTTP_SLOTS; i++) {
    pe__http_conn_t *c = &h->conns[i];
    if (c->fd < 0) {
      slot = slot ? slot : c;
    } else if (!c->cut) {
      open += 1;
      if (oldest == NULL || c->since_mono < oldest->since_mono) {
        oldest = c;
      }
    }
  }
  if (open + 1 > PE__HTTP_SLOTS - PE__HTTP_RESERVE && oldest != NULL) {
    (void)shutdown(oldest->fd, SHUT_RDWR);
    oldest->cut = 1;
    h->cut_total += 1;
  }
  *ctx = slot;
  if (slot != NULL && info != NULL) {
    slot->fd = info->connect_fd;
    slot->cut = 0;
    slot->since_mono = pe_clock_ns();
  }
}

int pe_live_http_start(const char *addr, pe_live_http_t **out, char *err,
                       size_t err_cap) {
  *out = NULL;
  const char *colon = strrchr(addr, ':');
  char host[64];
  int port = colon ? atoi(colon + 1) : 0;
  size_t hlen = colon ? (size_t)(colon - addr) : 0;
  if (colon == NULL || port <= 0 || port > 65535 || hlen >= sizeof host) {
    snprintf(err, err_cap, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8005)", addr);
    return PE_EINVAL;
  }
  memcpy(host, addr, hlen);
  host[hlen] = '\0';
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    host[hlen - 1] = '\0';
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
      hlen = 0;
    }
    flags |= MHD_USE_IPv6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (hlen == 0) { /* ":PORT": this host only */
      a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      hlen = 1;
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
      hlen = 0;
    }
  }
  if (hlen == 0) {
    snprintf(err, err_cap,
             "'%s' is not a numeric address (use 127.0.0.1:PORT, "
             "[::1]:PORT or :PORT)",
             addr);
    return PE_EINVAL;
  }
  pe_live_http_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  pthread_mutex_init(&h->lock, NULL);
  pe_hist_init(&h->slot.latency_ns);
  for (unsigned i = 0; i < PE__HTTP_SLOTS; i++) {
    h->conns[i].fd = -1;
  }
  pe__describe(&ss, h->where, sizeof h->where);
  h->daemon = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, pe__handle, h, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)PE__HTTP_SLOTS, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)PE__HTTP_IDLE_S, MHD_OPTION_NOTIFY_CONNECTION, pe__notify, h,
      MHD_OPTION_END);
  if (h->daemon == NULL) {
    snprintf(err, err_cap, "cannot listen on %s (in use, or no such address)",
             addr);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return PE_EIO;
  }
  *out = h;
  return PE_OK;
}

int pe_live_http_publish(pe_live_http_t *h, const pe_live_metrics_t *m) {
  if (h == NULL || pthread_mutex_trylock(&h->lock) != 0) {
    return 0;
  }
  h->slot = *m;
  pthread_mutex_unlock(&h->lock);
  return 1;
}

const char *pe_live_http_where(const pe_live_http_t *h) { return h->where; }

void pe_live_http_stop(pe_live_http_t *h) {
  if (h == NULL) {
    return;
  }
  MHD_stop_daemon(h->daemon);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

#else /* !PE_WITH_HTTP */

int pe_live_http_start(const char *addr, pe_live_http_t **out, char *err,
                       size_t err_cap) {
  *out = NULL;
  snprintf(err, err_cap,
           "%s: this build has no HTTP server; rebuild with "
           "libmicrohttpd-dev installed (PE_WITH_HTTP)",
           addr);
  return PE_EUNSUPPORTED;
}

int pe_live_http_publish(pe_live_http_t *h, const pe_live_metrics_t *m) {
  (void)h;
  (void)m;
  return 0;
}

const char *pe_live_http_where(const pe_live_http_t *h) {
  (void)h;
  return "";
}

void pe_live_http_stop(pe_live_http_t *h) { (void)h; }

#endif
