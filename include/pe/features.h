/* The standard feature set and per-symbol feature windows.
 *
 * docs/features.md gives each feature's formula, unit and warm-up. The list
 * below is the single source of the names, their order (the column order of
 * --features-out and the index used by windows) and their warm-up. */
#ifndef PE_FEATURES_H
#define PE_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(ID, name, warm-up in ticks of the symbol). A feature is NaN before its
 * warm-up has passed. */
#define PE_FEATURE_MAP(X)                                                      \
  X(LOG_RETURN, "log_return", 2)                                               \
  X(RETURN_Z, "return_z", 2)                                                   \
  X(EMA_GAP, "ema_gap", 1)                                                     \
  X(VWAP_DEV, "vwap_dev", 1)                                                   \
  X(VWAP_ROLL_DEV, "vwap_roll_dev", 1)                                         \
  X(LOG_VOLUME, "log_volume", 1)                                               \
  X(VOLUME_RATIO, "volume_ratio", 2)                                           \
  X(RET_VOL, "ret_vol", 2)                                                     \
  X(LOG_DT, "log_dt", 2)                                                       \
  X(EMA_FAST_DEV, "ema_fast_dev", 1)                                           \
  X(EMA_TD_DEV, "ema_td_dev", 1)                                               \
  X(SIGNED_VOLUME, "signed_volume", 2)

typedef enum pe_feature {
#define PE__FEATURE_ENUM(id, name, warmup) PE_FEAT_##id,
  PE_FEATURE_MAP(PE__FEATURE_ENUM)
#undef PE__FEATURE_ENUM
      PE_FEATURE_COUNT
} pe_feature_t;

/* Ticks of a symbol after which every standard feature is defined. */
#define PE_FEATURE_WARMUP 2

/* Name of a feature ("log_return"), NULL when out of range. Static. */
const char *pe_feature_name(int feature);

/* Warm-up of a feature in ticks, 0 when out of range. */
int pe_feature_warmup(int feature);

/* Index of a feature by name (len bytes, not NUL-terminated), or PE_ENOENT. */
int pe_feature_find(const char *name, size_t len);

/* Parses a comma-separated list of feature names into indices, in order.
 * Returns the count (>= 1), PE_ENOENT for an unknown name (its position in
 * *bad_index), PE_EFULL for more than cap names, PE_EINVAL for an empty list.
 */
int pe_feature_parse_list(const char *list, int *indices, int cap,
                          int *bad_index);

#ifdef __cplusplus
}
#endif
#endif
