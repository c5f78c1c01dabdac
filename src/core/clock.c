/* Clocks (see pe/clock.h). */
#define _POSIX_C_SOURCE 200809L
#include "pe/clock.h"

#include <pthread.h>
#include <time.h>

uint64_t pe_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t pe_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

/* The rate, measured by the first caller while any others wait in
 * pthread_once; read only after pthread_once has returned, which orders the
 * write before every read. */
static pthread_once_t pe__rate_once = PTHREAD_ONCE_INIT;
static double pe__rate;

static void pe__rate_measure(void) {
  uint64_t t0 = pe_clock_ns();
  uint64_t c0 = pe_cycles();
  uint64_t t1;
  do {
    t1 = pe_clock_ns();
  } while (t1 - t0 < 20000000u);
  uint64_t c1 = pe_cycles();
  pe__rate = (double)(c1 - c0) / (double)(t1 - t0);
}

double pe_cycles_per_ns(void) {
  pthread_once(&pe__rate_once, pe__rate_measure);
  return pe__rate;
}
