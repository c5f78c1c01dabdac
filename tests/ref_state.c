/* Slow reference forms (see ref_state.h). */
#include "ref_state.h"

#include <math.h>

static long double pe__weight(size_t i, size_t n, long double a) {
  /* Weight of value i among n under the seeded EMA. */
  long double keep = powl(1.0L - a, (long double)(n - 1 - i));
  return i == 0 ? keep : a * keep;
}

double pe_ref_ema(const double *x, size_t n, double alpha) {
  long double s = 0.0L;
  for (size_t i = 0; i < n; i++) {
    s += pe__weight(i, n, alpha) * x[i];
  }
  return (double)s;
}

double pe_ref_ema_td(const double *x, const int64_t *ts, size_t n,
                     double half_life_s) {
  /* Weight of value i: product of the decays of the later steps. */
  long double s = 0.0L;
  long double rate = logl(2.0L) / ((long double)half_life_s * 1e9L);
  for (size_t i = 0; i < n; i++) {
    long double w = 1.0L;
    for (size_t j = i + 1; j < n; j++) {
      long double a = 1.0L - expl(-(long double)(ts[j] - ts[j - 1]) * rate);
      w *= 1.0L - a;
    }
    if (i > 0) {
      w *= 1.0L - expl(-(long double)(ts[i] - ts[i - 1]) * rate);
    }
    s += w * x[i];
  }
  return (double)s;
}

static int64_t pe__session(int64_t ts, int reset_minute) {
  if (reset_minute < 0) {
    return 0;
  }
  const int64_t day = 86400LL * 1000000000LL;
  int64_t t = ts - (int64_t)reset_minute * 60 * 1000000000LL;
  return t >= 0 ? t / day : -((-t + day - 1) / day);
}

double pe_ref_vwap(const double *p, const double *v, const int64_t *ts,
                   size_t n, int reset_minute_utc) {
  int64_t session = pe__session(ts[n - 1], reset_minute_utc);
  long double pv = 0.0L, vs = 0.0L;
  for (size_t i = 0; i < n; i++) {
    if (pe__session(ts[i], reset_minute_utc) == session) {
      pv += (long double)p[i] * v[i];
      vs += v[i];
    }
  }
  return vs > 0 ? (double)(pv / vs) : NAN;
}

double pe_ref_vwap_roll(const double *p, const double *v, const int64_t *ts,
                        size_t n, double window_s) {
  int64_t width = (int64_t)(window_s * 1e9 / 32);
  int64_t last = ts[n - 1] / width;
  long double pv = 0.0L, vs = 0.0L;
  for (size_t i = 0; i < n; i++) {
    if (ts[i] / width >= last - 31) {
      pv += (long double)p[i] * v[i];
      vs += v[i];
    }
  }
  return vs > 0 ? (double)(pv / vs) : NAN;
}

double pe_ref_mean(const double *x, size_t n) {
  long double s = 0.0L;
  for (size_t i = 0; i < n; i++) {
    s += x[i];
  }
  return (double)(s / (long double)n);
}

double pe_ref_var_sample(const double *x, size_t n) {
  if (n < 2) {
    return NAN;
  }
  long double m = 0.0L;
  for (size_t i = 0; i < n; i++) {
    m += x[i];
  }
  m /= (long double)n;
  long double s = 0.0L;
  for (size_t i = 0; i < n; i++) {
    s += (x[i] - m) * (x[i] - m);
  }
  return (double)(s / (long double)(n - 1));
}

double pe_ref_ew_mean(const double *x, size_t n, double alpha) {
  return pe_ref_ema(x, n, alpha);
}

double pe_ref_ew_var(const double *x, size_t n, double alpha) {
  long double m = pe_ref_ema(x, n, alpha);
  long double s = 0.0L;
  for (size_t i = 0; i < n; i++) {
    long double d = x[i] - m;
    s += pe__weight(i, n, alpha) * d * d;
  }
  return (double)s;
}
