/* Clocks for measuring latency on the hot path.
 *
 * pe_clock_ns reads CLOCK_MONOTONIC (a vDSO call, no system call on Linux).
 * pe_cycles reads the CPU's time-stamp counter where there is an invariant
 * one (x86-64), a few nanoseconds cheaper; pe_cycles_per_ns converts. */
#ifndef PE_CLOCK_H
#define PE_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint64_t pe_clock_ns(void);

/* Wall clock, ns since the epoch (CLOCK_REALTIME). */
int64_t pe_wall_ns(void);

#if defined(__x86_64__)
static inline uint64_t pe_cycles(void) { return __builtin_ia32_rdtsc(); }
#else
static inline uint64_t pe_cycles(void) { return pe_clock_ns(); }
#endif

/* Counter ticks per nanosecond. Measured once, over 20 ms of wall time, by
 * the first call in the process; calls from other threads meanwhile wait for
 * that one measurement, and every call returns the same value. Call it once
 * before timing anything so that no timed section pays for it. */
double pe_cycles_per_ns(void);

#ifdef __cplusplus
}
#endif
#endif
