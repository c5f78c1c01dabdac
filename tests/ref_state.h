/* Slow reference forms of the per-symbol statistics: each recomputes the
 * value from the whole history, in long double and by a different formula
 * from the incremental one, so the two can be checked against each other. */
#ifndef PE_TESTS_REF_STATE_H
#define PE_TESTS_REF_STATE_H

#include <stddef.h>
#include <stdint.h>

/* EMA seeded with x[0]: closed-form weights (1-a)^(n-1) and a(1-a)^(n-1-i). */
double pe_ref_ema(const double *x, size_t n, double alpha);

/* Time-decayed EMA after n values at times ts[] (ns), half-life in s. */
double pe_ref_ema_td(const double *x, const int64_t *ts, size_t n,
                     double half_life_s);

/* VWAP of the ticks [0, n) that fall in the session of tick n-1. */
double pe_ref_vwap(const double *p, const double *v, const int64_t *ts,
                   size_t n, int reset_minute_utc);

/* Rolling VWAP at tick n-1: the ticks whose bucket (ts / (window/32)) is
 * within 31 buckets of tick n-1's. */
double pe_ref_vwap_roll(const double *p, const double *v, const int64_t *ts,
                        size_t n, double window_s);

/* Two-pass mean and sample variance. */
double pe_ref_mean(const double *x, size_t n);
double pe_ref_var_sample(const double *x, size_t n);

/* EW mean and variance with the weights of pe_ref_ema. */
double pe_ref_ew_mean(const double *x, size_t n, double alpha);
double pe_ref_ew_var(const double *x, size_t n, double alpha);

#endif
