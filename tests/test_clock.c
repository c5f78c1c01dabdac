/* Clocks (src/core/clock.c): the cycle-counter rate is measured once, even
 * when several threads ask for it first at the same moment, and agrees with
 * the monotonic clock. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "pe/clock.h"
#include "pe_test.h"

#define PE__THREADS 8

static pthread_barrier_t pe__start;
static double pe__seen[PE__THREADS];

static void *pe__ask(void *arg) {
  double *out = arg;
  pthread_barrier_wait(&pe__start);
  *out = pe_cycles_per_ns();
  return NULL;
}

/* Every thread that raced for the first measurement gets the same rate, and
 * later calls return it again. */
static void test_rate_measured_once(void) {
  pthread_t t[PE__THREADS];
  PE_CHECK(pthread_barrier_init(&pe__start, NULL, PE__THREADS) == 0);
  for (int i = 0; i < PE__THREADS; i++) {
    PE_CHECK(pthread_create(&t[i], NULL, pe__ask, &pe__seen[i]) == 0);
  }
  for (int i = 0; i < PE__THREADS; i++) {
    pthread_join(t[i], NULL);
  }
  pthread_barrier_destroy(&pe__start);
  for (int i = 1; i < PE__THREADS; i++) {
    if (pe__seen[i] != pe__seen[0]) {
      fprintf(stderr, "thread %d got %.9f, thread 0 %.9f\n", i, pe__seen[i],
              pe__seen[0]);
    }
    PE_CHECK(pe__seen[i] == pe__seen[0]);
  }
  PE_CHECK(pe_cycles_per_ns() == pe__seen[0]);
}

/* The rate converts cycles to nanoseconds: 50 ms of sleep, timed both ways,
 * agree within 5%. */
static void test_rate_matches_clock(void) {
  double rate = pe_cycles_per_ns();
  PE_CHECK(rate > 0.0);
  uint64_t t0 = pe_clock_ns();
  uint64_t c0 = pe_cycles();
  struct timespec ts = {0, 50000000};
  nanosleep(&ts, NULL);
  uint64_t c1 = pe_cycles();
  uint64_t t1 = pe_clock_ns();
  double ns = (double)(t1 - t0);
  double from_cycles = (double)(c1 - c0) / rate;
  PE_CHECK(from_cycles > 0.95 * ns && from_cycles < 1.05 * ns);
}

/* The race needs the first call: measured_once runs first. */
PE_TEST_MAIN(PE_TEST(test_rate_measured_once), PE_TEST(test_rate_matches_clock))
