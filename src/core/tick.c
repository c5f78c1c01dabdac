/* Rejection reasons and tick helpers. */
#include "pe/tick.h"

#include <math.h>
#include <string.h>

#include "pe/error.h"

static const char *const pe__reject_names[] = {
#define PE__REJECT_NAME(id, name, err) name,
    PE_REJECT_MAP(PE__REJECT_NAME)
#undef PE__REJECT_NAME
};

static const int pe__reject_errors[] = {
#define PE__REJECT_ERR(id, name, err) err,
    PE_REJECT_MAP(PE__REJECT_ERR)
#undef PE__REJECT_ERR
};

const char *pe_reject_name(int reason) {
  if (reason < 0 || reason >= PE_REJECT_COUNT) {
    return "unknown";
  }
  return pe__reject_names[reason];
}

int pe_reject_from_error(int err) {
  for (int r = 0; r < PE_REJECT_COUNT; r++) {
    if (pe__reject_errors[r] == err) {
      return r;
    }
  }
  return -1;
}

int pe_reject_count(uint64_t counts[PE_REJECT_COUNT], int err) {
  int r = pe_reject_from_error(err);
  if (r >= 0) {
    counts[r] += 1;
  }
  return r;
}

int pe_tick_check(const pe_tick_t *tick) {
  if (!(tick->price > 0.0) || !isfinite(tick->price)) {
    return PE_EPRICE;
  }
  if (!(tick->volume >= 0.0) || !isfinite(tick->volume)) {
    return PE_EVOLUME;
  }
  if (tick->symbol_len == 0) {
    return PE_ESYMBOL;
  }
  if (tick->symbol_len > PE_SYMBOL_MAX) {
    return PE_ESYMLEN;
  }
  if (memchr(tick->symbol, '\0', tick->symbol_len) != NULL) {
    return PE_ESYMNUL;
  }
  return PE_OK;
}

int pe_tick_set_symbol(pe_tick_t *tick, const char *symbol, uint32_t len) {
  if (len == 0) {
    return PE_ESYMBOL;
  }
  if (len > PE_SYMBOL_MAX) {
    return PE_ESYMLEN;
  }
  if (memchr(symbol, '\0', len) != NULL) {
    return PE_ESYMNUL;
  }
  memcpy(tick->symbol, symbol, len);
  memset(tick->symbol + len, 0, sizeof tick->symbol - len);
  tick->symbol_len = len;
  return PE_OK;
}
