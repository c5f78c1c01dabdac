/* Log-linear latency histogram with fixed memory.
 *
 * Values below 32 are counted exactly; above, each power of two is split into
 * 32 buckets, so a quantile is within 1/32 (about 3%) of the true value. A
 * record is a few instructions and allocates nothing: made for per-tick
 * latency on the hot path. The struct is plain data the caller owns. */
#ifndef PE_HIST_H
#define PE_HIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PE_HIST_SUB_BITS 5
#define PE_HIST_SUB (1u << PE_HIST_SUB_BITS)
#define PE_HIST_BUCKETS ((64u - PE_HIST_SUB_BITS + 1u) * PE_HIST_SUB)

typedef struct pe_hist {
  uint64_t count;
  uint64_t min;
  uint64_t max;
  uint64_t bucket[PE_HIST_BUCKETS];
} pe_hist_t;

void pe_hist_init(pe_hist_t *hist);

static inline uint32_t pe__hist_index(uint64_t v) {
  if (v < PE_HIST_SUB) {
    return (uint32_t)v;
  }
  uint32_t top = 63u - (uint32_t)__builtin_clzll(v); /* >= PE_HIST_SUB_BITS */
  uint32_t shift = top - PE_HIST_SUB_BITS;
  return (shift + 1u) * PE_HIST_SUB + (uint32_t)(v >> shift) - PE_HIST_SUB;
}

static inline void pe_hist_record(pe_hist_t *hist, uint64_t v) {
  hist->bucket[pe__hist_index(v)] += 1;
  hist->count += 1;
  if (v > hist->max) {
    hist->max = v;
  }
  if (v < hist->min) {
    hist->min = v;
  }
}

/* n records of the same value v (n >= 1). */
static inline void pe_hist_record_n(pe_hist_t *hist, uint64_t v, uint64_t n) {
  hist->bucket[pe__hist_index(v)] += n;
  hist->count += n;
  if (v > hist->max) {
    hist->max = v;
  }
  if (v < hist->min) {
    hist->min = v;
  }
}

/* Value at quantile q in [0, 1]: the upper edge of the bucket holding it,
 * capped at the largest value seen. 0 for an empty histogram. */
uint64_t pe_hist_quantile(const pe_hist_t *hist, double q);

/* Mean of the recorded values, from bucket midpoints. */
double pe_hist_mean(const pe_hist_t *hist);

/* into += other. */
void pe_hist_merge(pe_hist_t *into, const pe_hist_t *other);

#ifdef __cplusplus
}
#endif
#endif
