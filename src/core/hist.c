/* Latency histogram: quantiles and merging (see pe/hist.h). */
#include "pe/hist.h"

#include <string.h>

void pe_hist_init(pe_hist_t *hist) {
  memset(hist, 0, sizeof *hist);
  hist->min = UINT64_MAX;
}

/* Smallest and largest value that land in bucket i. */
static void pe__hist_bounds(uint32_t i, uint64_t *lo, uint64_t *hi) {
  if (i < PE_HIST_SUB) {
    *lo = *hi = i;
    return;
  }
  uint32_t shift = i / PE_HIST_SUB - 1u;
  uint64_t sub = (uint64_t)(i % PE_HIST_SUB) + PE_HIST_SUB;
  *lo = sub << shift;
  *hi = *lo + ((1ull << shift) - 1u);
}

uint64_t pe_hist_quantile(const pe_hist_t *hist, double q) {
  if (hist->count == 0) {
    return 0;
  }
  if (q <= 0.0) {
    return hist->min;
  }
  /* The rank of the value asked for, 1-based, rounded up. */
  double want = q * (double)hist->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want) {
    rank += 1;
  }
  if (rank > hist->count) {
    rank = hist->count;
  }
  uint64_t seen = 0;
  for (uint32_t i = 0; i < PE_HIST_BUCKETS; i++) {
    seen += hist->bucket[i];
    if (seen >= rank) {
      uint64_t lo, hi;
      pe__hist_bounds(i, &lo, &hi);
      return hi < hist->max ? hi : hist->max;
    }
  }
  return hist->max;
}

double pe_hist_mean(const pe_hist_t *hist) {
  if (hist->count == 0) {
    return 0.0;
  }
  double sum = 0.0;
  for (uint32_t i = 0; i < PE_HIST_BUCKETS; i++) {
    if (hist->bucket[i] != 0) {
      uint64_t lo, hi;
      pe__hist_bounds(i, &lo, &hi);
      sum += (double)hist->bucket[i] * ((double)lo + (double)hi) * 0.5;
    }
  }
  return sum / (double)hist->count;
}

void pe_hist_merge(pe_hist_t *into, const pe_hist_t *other) {
  for (uint32_t i = 0; i < PE_HIST_BUCKETS; i++) {
    into->bucket[i] += other->bucket[i];
  }
  into->count += other->count;
  if (other->max > into->max) {
    into->max = other->max;
  }
  if (other->min < into->min) {
    into->min = other->min;
  }
}
