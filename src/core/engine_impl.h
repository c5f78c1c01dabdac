/* The engine's insides, shared by engine.c and snapshot.c (internal). */
#ifndef PE_CORE_ENGINE_IMPL_H
#define PE_CORE_ENGINE_IMPL_H

#include "core/symstate.h"
#include "core/symtab.h"
#include "pe/engine.h"

/* A tick's report held for its model batch (or behind one that is). */
typedef struct pe__held {
  pe_tick_t tick;
  pe_tick_out_t out;
  int rc;         /* PE_OK, or PE_EBACKEND when its batch failed */
  uint32_t slot;  /* its window's index in the batch; UINT32_MAX: none */
  uint32_t fired; /* the rules' measures, for the model signal */
  double value[PE_RULE_COUNT];
  double contribution[PE_RULE_COUNT];
} pe__held_t;

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
  float *model_in;  /* [batch][n_features][window]; batch 1 unbatched */
  float *model_out; /* [batch][n_outputs] */
  /* micro-batching (pe_engine_batched): the held reports in push order;
   * the first is always one whose window waits in model_in, and a flush
   * empties them all */
  int batched;
  int64_t max_delay_ns;
  pe__held_t *held; /* [held_cap] */
  uint32_t held_cap, held_n;
  uint32_t batch_n;       /* windows waiting in model_in */
  int64_t batch_first_ns; /* tick time of the first of them */
  pe_engine_report_t report;
  void *report_ctx;
  pe_engine_batch_stats_t batch_stats;
  pe_engine_stats_t stats;
  int started; /* a tick has been pushed */
  char errmsg[256];
};

#endif
