/* The HTTP server of the live service: /health and /metrics, served by
 * libmicrohttpd from its own thread (internal to src/live/).
 *
 * The worker owns the live figures. Now and then (off the per-tick path) it
 * copies them into the server's slot with pe_live_http_publish, which only
 * ever try-locks: the worker never waits for the HTTP thread. */
#ifndef PE_LIVE_HTTP_H
#define PE_LIVE_HTTP_H

#include <stddef.h>

#include "pe/live.h"

typedef struct pe_live_http pe_live_http_t;

/* Starts serving on addr: "127.0.0.1:8005", "[::1]:80", ":8005" (loopback
 * only, 127.0.0.1), "0.0.0.0:8005" or "[::]:8005" (every interface).
 * PE_EINVAL (not such an address), PE_EIO (cannot listen), PE_ENOMEM,
 * PE_EUNSUPPORTED (a build without libmicrohttpd); the reason in err. At
 * most 64 connections at once, 8 of them kept free for new ones by cutting
 * the oldest (a slow client cannot starve /health); a connection silent for
 * 10 s is closed. */
int pe_live_http_start(const char *addr, pe_live_http_t **out, char *err,
                       size_t err_cap);

/* Copies m into the server's slot unless the server is reading it right
 * now; returns 1 when copied. NULL server: no-op. */
int pe_live_http_publish(pe_live_http_t *http, const pe_live_metrics_t *m);

/* What it listens on and who can reach it, in words:
 * "http://127.0.0.1:8005 (loopback only)". */
const char *pe_live_http_where(const pe_live_http_t *http);

/* Stops the server and frees it; NULL is a no-op. */
void pe_live_http_stop(pe_live_http_t *http);

#endif
