/* The engine's insides, shared by engine.c and snapshot.c (internal). */
#ifndef PE_CORE_ENGINE_IMPL_H
#define PE_CORE_ENGINE_IMPL_H

#include "core/symstate.h"
#include "core/symtab.h"
#include "pe/engine.h"

struct pe_engine {
  pe_engine_config_t config;
  pe__symtab_t symtab;
  pe__symstate_t *states; /* [max_symbols], by symbol id */
  float *windows;         /* [max_symbols][window][PE_FEATURE_COUNT] rows,
                             a ring per symbol; NULL without windows */
  uint32_t window;
  int all_features;      /* config.all_features, or forced on by windows */
  pe_backend_t *backend; /* borrowed */
  const pe_model_info_t *model;
  float *model_in;  /* [n_features][window] */
  float *model_out; /* [n_outputs] */
  pe_engine_stats_t stats;
  int started; /* a tick has been pushed */
  char errmsg[256];
};

#endif
